"""Files only this user may read (keys, tokens, kubeconfigs, the unseal key): one way to write them.

Mode 0600 from the first byte (a new temporary file, never an existing one whose mode would be kept), fsynced,
then renamed over the target, so a reader sees the old content or the new, never half a key. A directory made
on the way is 0700.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(content.encode() if isinstance(content, str) else content)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    return path
