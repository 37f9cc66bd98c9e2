"""Files: the ones a command writes for a user to review (replaced atomically, never left half-written), and
what a file's stat says about its content (so a file read on every run is read again only when it changed)."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# How long after a change a file's stat cannot yet tell it from a later change: timestamps are as
# coarse as the kernel's clock tick, or a second or two on some filesystems (ext3, FAT, NFS).
RACY_SECONDS = 2.0


def stat_signature(found: os.stat_result) -> tuple[int, int, int, int] | None:
    """What a file's stat says about its content (inode, mtime, ctime, size), or None when it changed
    too recently for the stat to tell: a rewrite of the same size within the same timestamp tick
    would leave all four as they were (git's "racily clean" files), so only its content can."""
    if time.time() - max(found.st_mtime, found.st_ctime) < RACY_SECONDS:
        return None
    return (found.st_ino, found.st_mtime_ns, found.st_ctime_ns, found.st_size)


# folder -> its stat signature and the names it held then (names_in).
_listings: dict[str, tuple[tuple[int, int, int, int], frozenset[str]]] = {}


def names_in(folder: str, stat: Callable[[str], os.stat_result] = os.stat) -> frozenset[str] | None:
    """The names in `folder`, listed again only when the folder changed (a file created, renamed
    over or removed in it changes its mtime and ctime); None when its stat cannot tell (missing, or
    changed too recently: stat_signature), so the caller looks at each path itself. One stat of
    the folder tells which of many files in it exist, instead of one stat (or error) per file.
    `stat`: how to stat the folder (a caller may share one stat among many asks)."""
    try:
        signature = stat_signature(stat(folder))
    except OSError:
        return None
    if signature is None:
        return None
    listed = _listings.get(folder)
    if listed is None or listed[0] != signature:
        try:
            # Listed after the stat: a change in between gives the folder a newer signature, so
            # the next ask lists it again.
            listed = (signature, frozenset(os.listdir(folder)))
        except OSError:
            return None
        _listings[folder] = listed
    return listed[1]


def forget_listings() -> None:
    """Forget every folder listing names_in remembers (tests)."""
    _listings.clear()


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
