"""A process that appends to FRA's audit log from several threads and prints `ack <seq>` for each append
that returned (i.e. was acknowledged as durable), until it is killed; or, with `--kill-self-after N`, kills
itself with SIGKILL right after its N-th acknowledged append.

python -m tests.audit.crash_writer DIRECTORY VAULT_URL VAULT_TOKEN THREADS [--kill-self-after N]
(Vault's certificate is verified against $VAULT_CACERT.)
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import hvac

from sovereign.audit import AuditLog
from tests.audit.samples import make_record


def main(argv: list[str]) -> None:
    directory, url, token, threads = Path(argv[0]), argv[1], argv[2], int(argv[3])
    kill_after = int(argv[5]) if len(argv) > 5 and argv[4] == "--kill-self-after" else None
    log = AuditLog(directory, "FRA", hvac.Client(url=url, token=token, verify=os.environ["VAULT_CACERT"]))
    printing = threading.Lock()
    acknowledged = 0

    def work(worker: int) -> None:
        nonlocal acknowledged
        index = 0
        while True:
            seq = log.append(make_record(worker * 1_000_000 + index))
            index += 1
            with printing:
                sys.stdout.write(f"ack {seq}\n")
                sys.stdout.flush()
                acknowledged += 1
                if kill_after is not None and acknowledged >= kill_after:
                    os.kill(os.getpid(), signal.SIGKILL)

    pool = [threading.Thread(target=work, args=(worker,), daemon=True) for worker in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


if __name__ == "__main__":
    main(sys.argv[1:])
