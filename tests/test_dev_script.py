"""`./dev` as a developer runs it: what it prints when a command is incomplete."""

from __future__ import annotations

import subprocess

import pytest

from tests.fixtures.repo import REPO


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


def test_documented_report_files_are_written_outside_the_checkout_or_ignored_by_git() -> None:
    # A user who copies an example from the repository root must not end up with an untracked
    # report file that a later `git add -A` commits.
    import re

    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"redisguard [a-z-]+ [^\n`]*--(?:output|import-file) (\S+)", doc.read_text()):
            target = target.strip("\"'[]")
            # A usage line's placeholder (FILE, REPORT) names no file.
            if target == "-" or target.isupper() or target.startswith(("/", "$")):
                continue
            ignored = subprocess.run(["git", "check-ignore", "-q", target], cwd=REPO, timeout=30)
            assert ignored.returncode == 0, f"{doc.name}: {target} would land in the checkout, not ignored"
