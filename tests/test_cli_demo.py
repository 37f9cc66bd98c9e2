"""`redisguard demo` (what `./dev demo` runs): emulator up, one instance drifted, the report, emulator down."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def demo_processes() -> list[str]:
    """Command lines of processes still using a demo state folder (the emulator or its redis-servers)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "redisguard-demo-" in cmdline:
            found.append(cmdline)
    return found


@pytest.mark.slow
def test_demo_reports_the_drift_it_made_and_cleans_up() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "redisguard.daemon.cli", "demo"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "starting the emulator with the staging fleet (3 instances: redis-sidekiq, redis-cache, redis-sessions)" in out
    assert (
        "changed redis-sidekiq behind Pulumi's back through the Memorystore API: "
        "memory_size_gb 2 -> 3, maxmemory-policy noeviction -> allkeys-lru"
    ) in out
    rows = [[cell.strip() for cell in line.split("│")[1:6]] for line in out.splitlines() if "│" in line]
    start = rows.index(["redis-sidekiq", "changed", "memorySizeGb", "2", "3"])
    assert rows[start + 1] == ["", "", "redisConfigs.maxmemory-policy", "noeviction", "allkeys-lru"]
    assert len(rows) == start + 2  # nothing else drifted
    assert "drift-report would exit with code 2 (drift found). That is expected here" in out
    assert "emulator stopped (exit status 0)" in out
    assert demo_processes() == []
