"""Start `redisguard emulator` as a child process, wait for its ready line, and stop it in order.

The demo, the benchmarks and the test fixture all run the emulator this way, as a user
would, so the ready line below is the one contract they share with `server.py`.
"""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from redisguard.core.errors import PermanentError, TransientError
from redisguard.core.processes import die_with_parent_argv

READY_RE = re.compile(
    r"^redisguard emulator ready redis_api=(?P<redis>http://\S+) monitoring=(?P<monitoring>\S+) "
    r"project=(?P<project>\S+) region=(?P<region>\S+) instances=(?P<instances>\d+)$"
)
START_TIMEOUT = 90.0
"""Seconds to wait for the ready line: a fleet of real redis-servers on a busy 2-core machine."""
STOP_TIMEOUT = 20.0
"""Seconds between SIGTERM and SIGKILL: enough for every instance's final RDB save."""
_STDERR_TAIL_LINES = 20


def format_ready_line(*, host: str, redis_api_port: int, monitoring_port: int, project: str, region: str, instances: int) -> str:
    """The one line the emulator prints on stdout once both APIs serve."""
    return (
        f"redisguard emulator ready redis_api=http://{host}:{redis_api_port} "
        f"monitoring={host}:{monitoring_port} project={project} region={region} instances={instances}"
    )


@dataclass
class LaunchedEmulator:
    """A running `redisguard emulator` child and what its ready line said."""

    process: subprocess.Popen[str]
    redis_endpoint: str
    """http://127.0.0.1:PORT of the REST Memorystore API."""
    monitoring_endpoint: str
    """127.0.0.1:PORT of the gRPC Monitoring API."""
    project: str
    region: str
    instances: int
    """Instance count from the ready line."""
    argv: list[str]
    stderr_tail: list[str] = field(default_factory=list)
    _readers: list[threading.Thread] = field(default_factory=list)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Signal the emulator, wait up to `timeout` s for its orderly stop, then SIGKILL; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for reader in self._readers:
            reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode


def launch(
    options: Sequence[str],
    *,
    stderr: IO[bytes] | None = None,
    die_signal: int = signal.SIGKILL,
    new_session: bool = False,
    timeout: float = START_TIMEOUT,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> LaunchedEmulator:
    """Run `redisguard [global options] emulator ...` (`options` after the interpreter) and wait until ready.

    `stderr` receives the emulator's log; without it the last lines are kept for the error
    message. The child gets `die_signal` if this process dies, however it dies. With
    `new_session`, a Ctrl-C on the terminal reaches only this process, which then stops the
    emulator in order. Raises TransientError when no ready line comes within `timeout`
    seconds and PermanentError when the emulator exits first; either way it is stopped.
    """
    argv = [sys.executable, "-m", "redisguard.daemon.cli", *options]
    process = subprocess.Popen(
        die_with_parent_argv(argv, die_signal),
        stdout=subprocess.PIPE,
        stderr=stderr if stderr is not None else subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        start_new_session=new_session,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    stderr_tail: list[str] = []
    readers = _start_readers(process, lines, stderr_tail if stderr is None else None)
    launched = LaunchedEmulator(process, "", "", "", "", 0, argv, stderr_tail, readers)
    try:
        match = _wait_for_ready_line(process, lines, stderr_tail, timeout)
    except BaseException:
        # A timeout, a failed start, or Ctrl-C/SIGTERM while the fleet starts: stop it in order.
        launched.stop()
        raise
    launched.redis_endpoint = match["redis"]
    launched.monitoring_endpoint = match["monitoring"]
    launched.project = match["project"]
    launched.region = match["region"]
    launched.instances = int(match["instances"])
    return launched


def _start_readers(
    process: subprocess.Popen[str], lines: queue.Queue[str | None], stderr_tail: list[str] | None
) -> list[threading.Thread]:
    """Threads that put each stdout line in `lines` (None at the end) and, given `stderr_tail`, keep stderr's last lines."""

    def pump_stdout() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    def pump_stderr(tail: list[str]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            tail.append(line.rstrip("\n"))
            del tail[:-_STDERR_TAIL_LINES]

    readers = [threading.Thread(target=pump_stdout, daemon=True)]
    if stderr_tail is not None:
        readers.append(threading.Thread(target=pump_stderr, args=(stderr_tail,), daemon=True))
    for reader in readers:
        reader.start()
    return readers


def _wait_for_ready_line(
    process: subprocess.Popen[str], lines: queue.Queue[str | None], stderr_tail: list[str], timeout: float
) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TransientError(f"the emulator printed no ready line within {timeout:g}s")
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            continue
        if line is None:
            process.wait()
            detail = stderr_tail[-1] if stderr_tail else "see its log"
            raise PermanentError(f"the emulator exited with status {process.returncode} before it was ready: {detail}")
        match = READY_RE.match(line)
        if match:
            return match
