"""A TCP forwarder on a loopback port that can be closed and opened again, to make a server unreachable,
or slowed down, to make it slow.

Closed, its port refuses connections exactly like a stopped server's; opened, it forwards to the target.
The target keeps its state meanwhile, so a test can check what was (not) written during the outage.
`delay` seconds are waited before each chunk a client sends is forwarded (0: none).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from sovereign_devstack.processes import free_loopback_port


class SwitchableProxy:
    delay = 0.0

    def __init__(self, target_host: str, target_port: int, scheme: str = "http") -> None:
        self.target = (target_host, target_port)
        self.scheme = scheme  # the target's: TLS passes through the forwarder untouched
        self.port = free_loopback_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="proxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def open(self) -> None:
        asyncio.run_coroutine_threadsafe(self._open(), self._loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)

    def shutdown(self) -> None:
        self.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _open(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._forward, "127.0.0.1", self.port, reuse_address=True
            )

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):  # kept-alive connections end too, as with a dead server
            writer.close()

    async def _forward(self, client: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            target_reader, target_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        self._writers |= {client_writer, target_writer}
        await asyncio.gather(
            self._pipe(client, target_writer, self.delay), self._pipe(target_reader, client_writer)
        )
        self._writers -= {client_writer, target_writer}

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float = 0.0) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if delay:
                    await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()
        writer.close()
