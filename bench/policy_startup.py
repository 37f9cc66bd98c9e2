"""Policy pack startup and throughput: start the pack as Pulumi does, then analyse 100 resources and the stack.

Usage: ./dev bench policy_startup [--resources N] [--runs N]
Prints figures only; the test suite has a generous hang check, no timing assertions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _args import positive_int  # noqa: E402 - bench/ is first on sys.path: the script's own folder

from tests.fixtures.analyzer import (  # noqa: E402
    PACK_DIR,
    StackResource,
    start_policy_pack,
)
from tests.fixtures.policy_inputs import COMPLIANT  # noqa: E402
from tests.fixtures.wire import INSTANCE_TYPE  # noqa: E402


def one_run(resources: int) -> tuple[float, float, float]:
    began = time.monotonic()
    pack = start_policy_pack("production")
    try:
        startup = time.monotonic() - began
        pack.configure(PACK_DIR / "config" / "production.json")
        props = dict(COMPLIANT, labels={"env": "production", "team": "platform", "service": "bench"})
        analysed = time.monotonic()
        for i in range(resources):
            pack.analyze(INSTANCE_TYPE, f"redis-{i}", props)
        pack.analyze_stack([StackResource(INSTANCE_TYPE, f"redis-{i}", props) for i in range(resources)])
        analyse = time.monotonic() - analysed
    finally:
        pack.stop()
    return startup, analyse, startup + analyse


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--resources", type=positive_int, default=100, help="resources to analyse per run (default: 100)"
    )
    parser.add_argument("--runs", type=positive_int, default=3, help="fresh pack starts to measure (default: 3)")
    args = parser.parse_args()

    runs = [one_run(args.resources) for _ in range(args.runs)]
    for label, index in (
        ("startup (process start to first answer)", 0),
        (f"analyse {args.resources} + AnalyzeStack", 1),
        ("total", 2),
    ):
        values = [r[index] for r in runs]
        print(f"{label:45s} median {statistics.median(values):6.3f}s  min {min(values):6.3f}s  max {max(values):6.3f}s")
    per = statistics.median(r[1] for r in runs) / args.resources * 1000
    print(f"{'per resource (Analyze, 12 policies)':45s} median {per:6.2f}ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
