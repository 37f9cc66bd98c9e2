"""`redisguard demo --once` (what `./dev demo` runs, without waiting for Ctrl-C): the emulator, the daemon,
Prometheus and Alertmanager on loopback, the pack's verdict, the drift and memory reports, the alerts
Alertmanager holds, and nothing left running however the demo ends."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.repo import REPO

# Runs the demo as a child subreaper (PR_SET_CHILD_SUBREAPER): whatever the demo leaves behind
# is re-parented here instead of to init, so it can be found by ancestry. Looking for a state
# folder in command lines cannot work: redis-server rewrites its title to
# `redis-server 127.0.0.1:PORT`. Optionally signals the demo once the emulator (and its
# redis-servers), the daemon, Alertmanager and Prometheus run, then waits (with a deadline) for every descendant to be gone.
SUBREAPER = textwrap.dedent(
    """\
    import ctypes, json, os, signal, subprocess, sys, time

    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    mode = sys.argv[1]

    def descendants():
        parents = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read().replace(b"\\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry)] = (int(fields[1]), cmdline)
        found, frontier = {}, {os.getpid()}
        while frontier:
            frontier = {pid for pid, (ppid, _) in parents.items() if ppid in frontier and pid not in found}
            found.update({pid: parents[pid][1] for pid in frontier})
        return found

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("COLUMNS", None)  # the width rich assumes off a terminal, as in CI logs
    demo = subprocess.Popen([sys.executable, "-m", "redisguard.daemon.cli", "demo", "--once"], stdout=subprocess.PIPE, text=True, env=env)
    out, running = [], {}
    for line in demo.stdout:
        out.append(line)
        if "   Prometheus: http" in line:  # the last of the four started
            running = descendants()
            if mode != "finish":
                demo.send_signal({"kill": signal.SIGKILL, "int": signal.SIGINT}.get(mode, signal.SIGTERM))
    demo.wait()
    deadline = time.monotonic() + 20
    while True:
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
        left = descendants()
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    print(json.dumps({"returncode": demo.returncode, "stdout": "".join(out),
                      "running": list(running.values()), "left": list(left.values())}))
    """
)


def run_demo(mode: str) -> dict[str, Any]:
    """One `demo --once` under the subreaper; unless `mode` is `finish`, signalled once all four run."""
    result = subprocess.run(
        [sys.executable, "-c", SUBREAPER, mode], capture_output=True, text=True, timeout=240, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    return {**json.loads(result.stdout.splitlines()[-1]), "stderr": result.stderr}


def started(running: list[str]) -> dict[str, int]:
    """How many of each process the demo had started when the snapshot was taken."""
    return {
        "redis-server": sum(cmd.startswith("redis-server 127.0.0.1:") for cmd in running),
        "emulator": sum(" emulator " in cmd for cmd in running),
        "daemon": sum(" daemon --config " in cmd for cmd in running),
        "prometheus": sum("/prometheus --config.file=" in cmd for cmd in running),
        "alertmanager": sum("/prometheus-alertmanager --config.file=" in cmd for cmd in running),
    }


EVERYTHING = {"redis-server": 3, "emulator": 1, "daemon": 1, "prometheus": 1, "alertmanager": 1}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
"""The shape of the emulator's AUTH strings (as Memorystore's)."""


def state_dir(running: list[str]) -> Path:
    [emulator] = [cmd for cmd in running if " emulator " in cmd]
    args = emulator.split()
    return Path(args[args.index("--state-dir") + 1])


def section(out: str, number: int) -> str:
    """The output of step `number` (from its heading to the next one)."""
    start = out.index(f"\n{number}. ")
    end = out.find(f"\n{number + 1}. ", start)
    return out[start : end if end != -1 else None]


@pytest.mark.slow
def test_demo_once_shows_the_whole_monitor_and_cleans_up() -> None:
    run = run_demo("finish")
    out = run["stdout"]
    assert run["returncode"] == 0, run["stderr"] + out
    assert started(run["running"]) == EVERYTHING

    # 1: every address printed, all on loopback; the demo's own settings said to be generated.
    first = section(out, 1)
    for what in ("emulator: Memorystore API http://127.0.0.1:", "daemon: http://127.0.0.1:",
                 "Alertmanager: http://127.0.0.1:", "Prometheus: http://127.0.0.1:"):  # fmt: skip
        assert what in first, first
    assert "from the shipped alerts/rules.yml, prometheus.yml and alertmanager.yml (never edited): every alert's for: 2s" in first

    # 2: the pack blocks the bad stack, each mandatory violation on its line.
    policy = section(out, 2)
    assert "mandatory memorystore-high-availability-in-production: 'redis-payments': tier must be STANDARD_HA" in policy
    assert "mandatory memorystore-persistence-in-production: 'redis-payments'" in policy
    assert "BLOCKED: 6 mandatory violations" in policy
    assert "[advisory]" not in policy and "advisory memorystore" not in policy

    # 3: the out-of-band change and the real writes.
    change = section(out, 3)
    assert ("redis-sidekiq changed behind Pulumi's back through the Memorystore API: "
            "memory_size_gb 2 -> 3, maxmemory-policy noeviction -> allkeys-lru") in change  # fmt: skip
    assert re.search(r"redis-cache filled with real writes to 8[5-9]% of its maxmemory", change), change

    # 4: the drift report names exactly the change; the memory report shows redis-cache at warning.
    reports = section(out, 4)
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in reports.splitlines() if "│" in line]
    assert ["redis-sidekiq", "changed", "memorySizeGb", "2", "3"] in rows
    assert ["", "", "redisConfigs.maxmemory-policy", "noeviction", "allkeys-lru"] in rows
    [cache] = [r for r in rows if len(r) > 3 and r[2] == "redis-cache"]
    assert cache[-1] == "warning"

    # 5: the alerts Alertmanager holds, as on-call sees them.
    alerts = section(out, 5)
    assert "RedisguardDriftDetected (warning): Stack staging drifted from its declared config (live engine)." in alerts
    assert re.search(r"RedisguardMemoryHigh \(warning\): Redis redis-cache uses 8\d\.\d+% of its maxmemory\.", alerts)
    assert "runbook: " in alerts and "runbooks.md#redisguardmemoryhigh" in alerts
    assert "runbooks.md#redisguarddriftdetected" in alerts

    # The time, the URLs to keep looking at, and everything stopped.
    [took] = re.findall(r"scenario done in (\d+\.\d) s", out)
    print(f"demo --once scenario: {took} s")
    for url in ("status page   http://127.0.0.1:", "metrics       http://127.0.0.1:", "/metrics",
                "Prometheus    http://127.0.0.1:", "Alertmanager  http://127.0.0.1:"):  # fmt: skip
        assert url in out
    assert out.rstrip().endswith("stopped the emulator, the daemon, Prometheus and Alertmanager")
    assert run["left"] == []
    assert not state_dir(run["running"]).exists()
    # The AUTH string the writes used is never shown.
    assert not UUID.search(out + run["stderr"])


@pytest.mark.slow
def test_a_killed_demo_leaves_nothing_running() -> None:
    run = run_demo("kill")
    assert run["returncode"] == -9
    assert started(run["running"]) == EVERYTHING
    assert run["left"] == []


@pytest.mark.slow
def test_sigterm_stops_the_demo_and_everything_it_started() -> None:
    run = run_demo("term")
    assert run["returncode"] == 128 + 15
    assert started(run["running"]) == EVERYTHING
    assert run["left"] == []
    assert not state_dir(run["running"]).exists()
    assert run["stdout"].rstrip().endswith("stopped the emulator, the daemon, Prometheus and Alertmanager")
    assert run["stderr"].splitlines()[-1] == (
        "redisguard demo: interrupted by SIGTERM; every process the demo started was stopped"
    )


@pytest.mark.slow
def test_ctrl_c_stops_the_demo_and_says_so_in_one_line() -> None:
    run = run_demo("int")
    assert run["returncode"] == 128 + 2
    assert run["left"] == []
    assert run["stderr"].splitlines()[-1] == (
        "redisguard demo: interrupted by SIGINT; every process the demo started was stopped"
    )


def _demo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "redisguard.daemon.cli", "demo", *args],
        capture_output=True, text=True, timeout=120, cwd=REPO, env=env,
    )  # fmt: skip


def test_without_alertmanager_on_path_step_1_fails_naming_it_before_starting_anything(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("redis-server", "prometheus"):  # everything else the demo runs, Alertmanager left out
        found = shutil.which(name)
        assert found is not None, f"{name} is not installed (./dev test installs it)"
        (bin_dir / name).symlink_to(found)
    result = _demo("--once", env={**os.environ, "PATH": str(bin_dir)})
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "redisguard demo: step 1/5 (start): start the emulator, the daemon, Prometheus and Alertmanager failed: "
        "prometheus-alertmanager is not on PATH: `./dev demo` installs Debian's prometheus and prometheus-alertmanager"
    )
    assert "emulator: Memorystore API" not in result.stdout  # failed before anything started


def test_demo_rejects_a_fleet_file_not_named_like_a_stack_before_starting_anything(tmp_path: Path) -> None:
    fleet = tmp_path / "nosk.yaml"
    fleet.write_text((REPO / "program" / "Pulumi.staging.yaml").read_text())
    result = _demo("--fleet", str(fleet))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"redisguard demo: error: --fleet {fleet}: the file must be named Pulumi.<stack>.yaml, as Pulumi names stack files"
    ]
    assert result.stdout == ""  # nothing was started
