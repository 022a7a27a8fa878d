"""Air-gap egress guard, loaded by Python at interpreter start when this directory is first on PYTHONPATH.

Inactive unless SOVEREIGN_EGRESS_LOG names a file. When active, it wraps `socket.socket.connect`,
`connect_ex`, `sendto`, and `socket.getaddrinfo`/`gethostbyname`/`gethostbyname_ex`: a destination that is not
loopback, not an address of this machine's interfaces, and not an AF_UNIX path (or, for name look-ups, a
name other than localhost, this machine's hostname or an allowed IP literal) is refused with ENETUNREACH
(look-ups with a gaierror) and recorded as one JSON line in SOVEREIGN_EGRESS_LOG: pid, argv, family,
destination, and the module names on the stack; never a payload. Each activated process also appends one
`guard-active` line to SOVEREIGN_EGRESS_LOG + ".active", so a test can prove which processes ran it.

It covers Python code only: sockets opened by native code (Ray's C++ raylet and GCS, gRPC core inside
Python processes, any C library doing its own DNS) do not pass through `socket`.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import os
import socket
import sys
import threading

_LOG = os.environ.get("SOVEREIGN_EGRESS_LOG")
_LOCAL_NAMES = {"", "localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
_state = threading.local()
_local_addresses: set[ipaddress.IPv4Address | ipaddress.IPv6Address] | None = None


def _argv() -> list[str]:
    try:
        with open("/proc/self/cmdline", "rb") as cmdline:
            return [part.decode(errors="replace") for part in cmdline.read().split(b"\0") if part][:2]
    except OSError:
        return list(getattr(sys, "argv", [])[:2])


def _append(path: str, record: dict[str, object]) -> None:
    line = (json.dumps(record, default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)  # one write with O_APPEND: concurrent writers do not interleave lines
    finally:
        os.close(fd)


def _interface_addresses() -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """This machine's own addresses, read once from /proc (no subprocess, no socket)."""
    global _local_addresses
    if _local_addresses is not None:
        return _local_addresses
    found: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    try:
        with open("/proc/net/fib_trie") as trie:
            previous = ""
            for line in trie:
                if "/32 host LOCAL" in line and "|--" in previous:
                    found.add(ipaddress.ip_address(previous.split("|--")[1].strip()))
                previous = line
    except (OSError, ValueError):
        pass
    try:
        with open("/proc/net/if_inet6") as inet6:
            for line in inet6:
                digits = line.split()[0]
                found.add(ipaddress.IPv6Address(int(digits, 16)))
    except (OSError, ValueError, IndexError):
        pass
    _local_addresses = found
    return found


def _allowed_ip(text: str) -> bool | None:
    """True/False for an IP literal; None if `text` is not one."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified or address in _interface_addresses()


def _allowed_host(host: object) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if not isinstance(host, str):
        return False
    host = host.strip().rstrip(".").lower()
    literal = _allowed_ip(host)
    if literal is not None:
        return literal
    own = socket.gethostname().lower()
    return host in _LOCAL_NAMES or host.endswith(".localhost") or host in {own, own.split(".")[0]}


def _stack() -> list[str]:
    modules: list[str] = []
    frame = sys._getframe(3)
    while frame is not None and len(modules) < 25:
        name = frame.f_globals.get("__name__", "?")
        if name != __name__ and (not modules or modules[-1] != name):
            modules.append(name)
        frame = frame.f_back
    return modules


def _refuse(kind: str, family: object, host: object, port: object) -> None:
    record = {
        "event": "egress-refused",
        "call": kind,
        "pid": os.getpid(),
        "argv": _argv(),
        "family": getattr(family, "name", family),
        "host": host,
        "port": port,
        "stack": _stack(),
    }
    with contextlib.suppress(Exception):  # recording must never be what breaks the caller
        _append(_LOG, record)  # type: ignore[arg-type]


def _check_address(kind: str, sock: socket.socket, address: object) -> None:
    if getattr(_state, "busy", False) or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    if not isinstance(address, tuple) or not address:
        return
    _state.busy = True
    try:
        if _allowed_host(address[0]):
            return
        port = address[1] if len(address) > 1 else None
        _refuse(kind, sock.family, address[0], port)
    finally:
        _state.busy = False
    raise OSError(errno.ENETUNREACH, f"egress refused by the air-gap guard: {address[0]}:{port}")


def _check_name(kind: str, host: object, port: object = None, family: object = 0) -> None:
    if getattr(_state, "busy", False):
        return
    _state.busy = True
    try:
        if _allowed_host(host):
            return
        _refuse(kind, family, host, port)
    finally:
        _state.busy = False
    raise socket.gaierror(socket.EAI_NONAME, f"name look-up refused by the air-gap guard: {host}")


def _install() -> None:
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_sendto = socket.socket.sendto
    real_getaddrinfo = socket.getaddrinfo
    real_gethostbyname = socket.gethostbyname
    real_gethostbyname_ex = socket.gethostbyname_ex

    def connect(self: socket.socket, address: object) -> None:
        _check_address("connect", self, address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: object) -> int:
        _check_address("connect_ex", self, address)
        return real_connect_ex(self, address)

    def sendto(self: socket.socket, data: object, *args: object) -> int:
        if args:
            _check_address("sendto", self, args[-1])
        return real_sendto(self, data, *args)  # type: ignore[arg-type]

    def getaddrinfo(host: object, port: object, family: int = 0, *args: object, **kwargs: object) -> list:
        _check_name("getaddrinfo", host, port, family)
        return real_getaddrinfo(host, port, family, *args, **kwargs)  # type: ignore[arg-type]

    def gethostbyname(host: str) -> str:
        _check_name("gethostbyname", host)
        return real_gethostbyname(host)

    def gethostbyname_ex(host: str) -> tuple:
        _check_name("gethostbyname_ex", host)
        return real_gethostbyname_ex(host)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.socket.sendto = sendto  # type: ignore[assignment]
    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    socket.gethostbyname = gethostbyname
    socket.gethostbyname_ex = gethostbyname_ex  # type: ignore[assignment]


if _LOG:
    try:
        _install()
        _append(_LOG + ".active", {"event": "guard-active", "pid": os.getpid(), "argv": _argv()})
    except Exception as error:  # noqa: BLE001  (a broken guard must not break the process...)
        print(f"sovereign egress guard failed to start: {error!r}", file=sys.stderr)  # ...but must be seen
