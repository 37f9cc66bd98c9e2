"""Child-process helpers shared by every part: tie a child's life to the process that started it, and kill a child's process group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

# Runs in a tiny interpreter between fork and exec of the real child: sets
# PR_SET_PDEATHSIG so the child gets `signal` when its parent dies (even by SIGKILL), checks
# the parent did not die before that, then execs. A preexec_fn would do the same inside
# the forked child, but forking a process that has gRPC threads and running Python there
# aborts in gRPC's fork handlers.
_EXEC_WITH_PDEATHSIG = (
    "import ctypes, os, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, int(sys.argv[2]), 0, 0, 0)\n"
    "if os.getppid() != int(sys.argv[1]): sys.exit(1)\n"
    "os.execvp(sys.argv[3], sys.argv[3:])\n"
)


def die_with_parent_argv(argv: Sequence[str], sig: int = signal.SIGKILL) -> list[str]:
    """`argv` wrapped so that the child receives `sig` when this process exits, however it exits.

    Linux delivers the signal when the *thread* that forked the child ends, so start such
    children from a thread that lives as long as they should (the main thread, or a
    long-lived supervisor thread). SIGKILL suits children that keep no state; SIGTERM lets
    a child that saves state on exit (the emulator) shut down in order.
    """
    return [sys.executable, "-I", "-S", "-c", _EXEC_WITH_PDEATHSIG, str(os.getpid()), str(int(sig)), *argv]


# After SIGKILL, how long a group gets to be gone (and the child to be reaped).
_REAP_SECONDS = 5.0


def signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to a process group; False when the group is gone."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def group_alive(pgid: int) -> bool:
    return signal_group(pgid, 0)


def _wait_group_gone(process: subprocess.Popen[Any], seconds: float) -> bool:
    """Wait up to `seconds` for every process of the child's group to exit; True when none is left."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        process.poll()  # reap the child itself, or its zombie keeps the group alive
        if not group_alive(process.pid):
            return True
        time.sleep(0.05)
    return not group_alive(process.pid)


def kill_group(process: subprocess.Popen[Any], grace: float) -> None:
    """SIGTERM the process group of a child started with `start_new_session=True`, SIGKILL whatever
    is left after `grace` seconds, and reap the child."""
    pgid = process.pid  # start_new_session: the group id is the child's pid
    if signal_group(pgid, signal.SIGTERM) and not _wait_group_gone(process, grace):
        signal_group(pgid, signal.SIGKILL)
        _wait_group_gone(process, _REAP_SECONDS)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=_REAP_SECONDS)
