"""Files a command writes for a user to review: replaced atomically, never left half-written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, text: str) -> None:
    """Replace (or create) `path` with `text` through a temporary file in its folder and a rename,
    so a reader sees the old file or the new one, never a part. The file keeps its permission
    bits; a new one gets what the umask allows (the temporary file alone would be 0600)."""
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        # Reading the umask means setting it: fine for the commands that write, which write from one thread.
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
