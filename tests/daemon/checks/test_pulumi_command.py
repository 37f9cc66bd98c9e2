"""Supervision of the pulumi CLI a check runs (with a stand-in `pulumi`): a timeout, an interrupted or
cancelled scan and a killed one each end the CLI and its children, and nothing queued starts after."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from redisguard.core.errors import TransientError
from redisguard.daemon.checks import drift_pulumi
from redisguard.daemon.checks.drift import run_scan
from redisguard.daemon.checks.ignore import IgnoreRules
from redisguard.daemon.checks.protocol import CancelToken
from redisguard.daemon.config import PulumiSettings, config_from_mapping
from redisguard.daemon.reports.drift import StackReport
from tests.fixtures.processes import alive, wait_for
from tests.fixtures.pulumi_cli import FakePulumi, logged_calls


def test_timeout_kills_the_cli_and_its_children(fake_pulumi: FakePulumi, tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    fake_pulumi({"staging": {"mode": "hang", "pid_file": str(pid_file)}})
    settings = PulumiSettings(work_dir=fake_pulumi.work_dir, stacks=("staging",), refresh_timeout_seconds=3)
    started = time.monotonic()
    with pytest.raises(TransientError, match="timed out after 3s"):
        drift_pulumi.refresh_stack("staging", settings, IgnoreRules())
    elapsed = time.monotonic() - started
    cli_pid, child_pid = (int(p) for p in pid_file.read_text().split())
    assert not alive(cli_pid)
    assert not alive(child_pid)
    assert elapsed < 3 + 10  # deadline plus the kill grace period, not the CLI's 600 s


STACKS_IN_LINE = ("a", "b", "c")


def _hung_scan(fake_pulumi: FakePulumi, tmp_path: Path) -> tuple[subprocess.Popen[str], int, int]:
    """`redisguard drift-report` over three stacks, one at a time, whose CLIs hang; returns it
    once the first stack's CLI and its child run."""
    fake_pulumi({name: {"mode": "hang", "pid_file": str(tmp_path / f"pids-{name}")} for name in STACKS_IN_LINE})
    config = tmp_path / "redisguard.yaml"
    config.write_text(f"pulumi:\n  work_dir: {fake_pulumi.work_dir}\n  stacks: [a, b, c]\nparallelism: 1\n")
    scan = subprocess.Popen(
        [sys.executable, "-m", "redisguard.daemon.cli", "drift-report", "--config", str(config), "--engine", "pulumi"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pid_file = tmp_path / "pids-a"
    try:
        wait_for(lambda: pid_file.exists() and len(pid_file.read_text().split()) == 2, timeout=30, what="the CLI to start")
    except TimeoutError:
        scan.kill()
        raise
    cli_pid, child_pid = (int(p) for p in pid_file.read_text().split())
    return scan, cli_pid, child_pid


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 128 + signal.SIGTERM)])
def test_interrupting_a_scan_ends_it_at_once_with_the_cli_and_its_children(
    fake_pulumi: FakePulumi, tmp_path: Path, sig: signal.Signals, status: int
) -> None:
    # The CLI runs in its own process group (for the timeout kill), where a Ctrl-C on the
    # terminal does not reach it; without help it would run on for the whole refresh timeout.
    scan, cli_pid, child_pid = _hung_scan(fake_pulumi, tmp_path)
    try:
        scan.send_signal(sig)
        _, stderr = scan.communicate(timeout=10 + 2)  # the kill grace period, not the 600 s refresh timeout
    finally:
        scan.kill()
    assert scan.returncode == status, stderr
    assert stderr.splitlines() == [
        f"redisguard drift-report: interrupted by {sig.name}; running checks were stopped, no report written"
    ]
    assert not alive(cli_pid)
    assert not alive(child_pid)
    # The queued stacks were dropped: no CLI was started for them after the interrupt.
    calls = logged_calls(tmp_path / "pulumi-calls.jsonl")
    assert {c["args"][c["args"].index("--stack") + 1] for c in calls if "--stack" in c.get("args", [])} == {"a"}


def test_a_scan_cancelled_from_another_thread_stops_its_cli_and_the_next_scan_runs_normally(
    fake_pulumi: FakePulumi, tmp_path: Path
) -> None:
    # A daemon stops a scan from its own thread (shutdown, a newer run): no signal, no main thread.
    pid_file = tmp_path / "pids"
    fake_pulumi({"a": {"mode": "hang", "pid_file": str(pid_file)}, "b": {"events": []}})
    config = config_from_mapping({"pulumi": {"work_dir": str(fake_pulumi.work_dir), "stacks": ["a", "b"]}, "parallelism": 1})
    cancel = CancelToken()
    done: list[StackReport] = []
    result: list[Any] = []
    scan = threading.Thread(target=lambda: result.append(run_scan(config, ["a", "b"], ["pulumi"], cancel=cancel, on_done=done.append)))
    scan.start()
    wait_for(lambda: pid_file.exists() and len(pid_file.read_text().split()) == 2, timeout=30, what="the CLI to start")
    cli_pid, child_pid = (int(p) for p in pid_file.read_text().split())
    started = time.monotonic()
    cancel.cancel()
    scan.join(timeout=10)
    assert not scan.is_alive()
    assert time.monotonic() - started < 5  # the cancel grace, not the 600 s refresh timeout
    # No verdict for a stack whose check was cancelled, and the queued stack never started.
    assert result[0].stacks == () and done == []
    assert not alive(cli_pid)
    assert not alive(child_pid)
    assert {c["args"][c["args"].index("--stack") + 1] for c in logged_calls(tmp_path / "pulumi-calls.jsonl") if "--stack" in c.get("args", [])} == {"a"}

    # Nothing of the cancelled run sticks: the next scan, with its own token, checks every stack.
    fake_pulumi({"a": {"events": []}, "b": {"events": []}})
    report = run_scan(config, ["a", "b"], ["pulumi"])
    assert [(s.stack, s.status) for s in report.stacks] == [("a", "in_sync"), ("b", "in_sync")]


def test_a_killed_scan_takes_its_cli_with_it(fake_pulumi: FakePulumi, tmp_path: Path) -> None:
    scan, cli_pid, child_pid = _hung_scan(fake_pulumi, tmp_path)
    try:
        scan.kill()
        scan.communicate(timeout=10)
        wait_for(lambda: not alive(cli_pid), timeout=10, what="the CLI to die with its parent")
    finally:
        # The CLI's own children (plugins) are its business; this stand-in's is cleaned up here.
        with contextlib.suppress(ProcessLookupError):
            os.kill(child_pid, signal.SIGKILL)
