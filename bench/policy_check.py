"""`redisguard policy-check` on the 4-cluster production stack: program under mocks, pack start, analysis.

Usage: ./dev bench policy_check [--runs N]
Prints figures only (goal: about a second for a 4-cluster stack once the pack has started).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _args import positive_int  # noqa: E402 - bench/ is first on sys.path: the script's own folder

from redisguard.policies.check import judge_stacks  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=positive_int, default=3, help="runs to measure (default: 3)")
    args = parser.parse_args()
    stack_file = REPO / "program" / "Pulumi.production.yaml"

    in_process, judged, command = [], [], []
    for _ in range(args.runs):
        began = time.monotonic()
        (verdict,) = judge_stacks([("production", stack_file)]).stacks
        in_process.append(time.monotonic() - began)
        judged.append(verdict.duration_seconds)
        assert verdict.error is None and verdict.resources == 8, verdict
    for _ in range(args.runs):
        began = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "redisguard.daemon.cli", "policy-check", "--stack", "production"],
            cwd=REPO, check=True, capture_output=True,
        )  # fmt: skip
        command.append(time.monotonic() - began)
    for label, values in (
        ("in process: pack start + program + analysis", in_process),
        ("  of which the stack verdict (program, pack ready, analysis)", judged),
        ("the command (interpreter start and imports too)", command),
    ):
        print(f"{label:50s} median {statistics.median(values):6.3f}s  min {min(values):6.3f}s  max {max(values):6.3f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
