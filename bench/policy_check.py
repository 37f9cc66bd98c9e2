"""`redisguard policy-check --stack S` beside its floor: two bare Python processes that import Pulumi.

Usage: ./dev bench policy_check [--runs N] [--stack NAME]
Prints figures only. The floor is the issue's (19, item 6): two Pythons importing Pulumi one
after the other, `python -c "import pulumi"` twice (the command's work when it ran the program
under the SDK's mocks beside the pack; the pack's process is now the only one that imports
Pulumi), measured in the same run, interleaved with the command so that both see the same load
(goal: the command within 1.2x the floor). Then the stack verdict in process (the program's
resources, pack ready, analysis).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _args import positive_int  # noqa: E402 - bench/ is first on sys.path: the script's own folder

from redisguard.policies.check import judge_stacks  # noqa: E402

GOAL = 1.2


def _timed(argv: list[str]) -> float:
    began = time.monotonic()
    subprocess.run(argv, cwd=REPO, check=True, capture_output=True)
    return time.monotonic() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=positive_int, default=5, help="runs to measure (default: 5)")
    parser.add_argument("--stack", default="staging", help="the shipped stack to check (default: %(default)s)")
    args = parser.parse_args()

    floor, command = [], []
    bare = [sys.executable, "-c", "import pulumi"]
    check = [sys.executable, "-m", "redisguard.daemon.cli", "policy-check", "--stack", args.stack]
    _timed(bare)  # a first start reads the files from disk; the figures are for a warm cache
    for _ in range(args.runs):
        floor.append(_timed(bare) + _timed(bare))
        command.append(_timed(check))
    ratios = [c / f for c, f in zip(command, floor, strict=True)]

    judged = []
    stack_file = REPO / "program" / f"Pulumi.{args.stack}.yaml"
    for _ in range(args.runs):
        (verdict,) = judge_stacks([(args.stack, stack_file)]).stacks
        assert verdict.error is None, verdict
        judged.append(verdict.duration_seconds)

    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores; {args.runs} runs")
    for label, values in (
        ('floor: two `python -c "import pulumi"`', floor),
        (f"the command: policy-check --stack {args.stack}", command),
        ("  in process: the verdict (resources, pack, analysis)", judged),
    ):
        print(f"{label:58s} median {statistics.median(values):6.3f}s  min {min(values):6.3f}s  max {max(values):6.3f}s")
    ratio = statistics.median(ratios)
    print(f"{'the command / the floor (same run, paired)':58s} median {ratio:6.2f}x  (goal <= {GOAL}x: "
          f"{'met' if ratio <= GOAL else 'not met'})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
