"""Child-process helpers shared by every part: tie a child's life to the process that started it."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence

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
