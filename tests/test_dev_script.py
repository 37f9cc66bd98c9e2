"""`./dev` as a developer runs it: what it prints when a command is incomplete."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("args", "first"), [([], None), (["nope"], "dev bench: no benchmark named 'nope'")])
def test_dev_bench_without_a_known_name_lists_the_benchmarks(args: list[str], first: str | None) -> None:
    result = subprocess.run([str(REPO / "dev"), "bench", *args], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 64
    lines = result.stderr.splitlines()
    if first:
        assert lines.pop(0) == first
    assert lines[0] == "usage: ./dev bench NAME [ARGS...]; benchmarks:"
    names = {line.split()[0] for line in lines[1:]}
    assert names == {p.stem for p in (REPO / "bench").glob("*.py") if not p.name.startswith("_")}
    assert "Traceback" not in result.stderr and "unbound variable" not in result.stderr
    assert any(line.startswith("  drift_scan ") and "Live-engine drift scan" in line for line in lines)
