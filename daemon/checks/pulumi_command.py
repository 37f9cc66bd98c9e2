"""Supervision of the pulumi CLI runs of one stack check: a shared deadline, a process group per run, kills on timeout and on cancel."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from typing import IO

from pulumi.automation import CommandResult, OnOutput, PulumiCommand
from pulumi.automation.errors import create_command_error

from redisguard.core.errors import Cancelled
from redisguard.core.processes import die_with_parent_argv, kill_group, signal_group
from redisguard.daemon.checks.protocol import CancelToken

# On the per-stack timeout: how long the CLI gets to exit on SIGTERM, then on SIGKILL.
KILL_GRACE_SECONDS = 5.0
# On a cancel (Ctrl-C, SIGTERM, a daemon stopping): a refresh preview writes no state, so there is
# nothing for the CLI to save, and the caller asked to stop now.
CANCEL_GRACE_SECONDS = 0.5
# How often a waiting run looks at its deadline and its cancel token.
_POLL_SECONDS = 0.1


class RefreshTimeout(Exception):
    """The per-stack deadline passed; the CLI's process group was killed."""


class BoundedPulumiCommand(PulumiCommand):
    """The SDK's PulumiCommand with a deadline shared by every command of one stack check, and a cancel token.

    Each CLI run gets its own process group so that on timeout or cancel the CLI, its language
    host and its provider plugins are killed together (the SDK's own `run` has neither).
    """

    def __init__(self, timeout_seconds: float, cancel: CancelToken) -> None:
        self.timeout_seconds = timeout_seconds
        self.deadline = time.monotonic() + timeout_seconds
        self.cancel = cancel
        super().__init__()  # runs `pulumi version`: FileNotFoundError when there is no CLI

    def run(
        self,
        args: list[str],
        cwd: str,
        additional_env: Mapping[str, str],
        on_output: OnOutput | None = None,
        on_error: OnOutput | None = None,
    ) -> CommandResult:
        self.cancel.raise_if_cancelled()
        if "--non-interactive" not in args:
            args.insert(0, "--non-interactive")
        env = {**os.environ, **additional_env, "PULUMI_AUTOMATION_API": "true"}
        stdout_chunks: list[str] = []
        stderr_chunks: list[str] = []
        with subprocess.Popen(
            # SIGKILLed when this thread's process dies, however it dies: no CLI outlives us.
            die_with_parent_argv([self.command, *args]),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
            encoding="utf-8",
            start_new_session=True,
        ) as process:
            readers = [
                threading.Thread(target=_consume, args=(process.stdout, on_output, stdout_chunks), daemon=True),
                threading.Thread(target=_consume, args=(process.stderr, on_error, stderr_chunks), daemon=True),
            ]
            for reader in readers:
                reader.start()
            # A cancel signals the group at once, from the cancelling thread; the wait below then
            # finishes the kill (SIGKILL after the grace) on this one.
            with self.cancel.on_cancel(lambda: signal_group(process.pid, signal.SIGTERM)):
                self._wait(process, args)
            for reader in readers:
                reader.join()
        result = CommandResult(stdout="\n".join(stdout_chunks), stderr="\n".join(stderr_chunks), code=process.returncode)
        if result.code != 0:
            raise create_command_error(result)
        return result

    def _wait(self, process: subprocess.Popen[str], args: list[str]) -> None:
        """Wait for the CLI; kill its group and raise on the deadline (RefreshTimeout) or a cancel (Cancelled)."""
        while True:
            try:
                process.wait(timeout=_POLL_SECONDS)
                exited = True
            except subprocess.TimeoutExpired:
                exited = False
            if self.cancel.cancelled:
                # Also when the CLI already exited on the cancel's SIGTERM: its plugins may not have.
                kill_group(process, CANCEL_GRACE_SECONDS)
                raise Cancelled("the scan was cancelled; the pulumi CLI and its child processes were killed")
            if time.monotonic() >= self.deadline:
                kill_group(process, KILL_GRACE_SECONDS)
                command = args[1] if len(args) > 1 else "pulumi"
                raise RefreshTimeout(f"{command} ran past {self.timeout_seconds:g}s")
            if exited:
                return


def _consume(stream: IO[str] | None, callback: OnOutput | None, chunks: list[str]) -> None:
    if stream is None:
        return
    for line in iter(stream.readline, ""):
        stripped = line.rstrip()
        if callback:
            callback(stripped)
        chunks.append(stripped)
    stream.close()
