"""The compliance check's judgement of 1000 live instances once the pack has started (goal: under 2 s), and a whole run against the emulator.

Run: ./dev bench compliance   (or .venv/bin/python bench/compliance.py --size 1000 --runs 5)

First, in process: `--size` live instances (the admin API's messages, as a listing returns them)
turned into the provider's inputs (fleet/inverse.py's live_policy_inputs) and judged by one
started pack over the Analyzer protocol with the production policy config (policies/check.py's
PackSession, as the daemon's check uses it): the pack's start-up is timed apart, then each run's
judgement. Then the whole check, `run_compliance_check` as `redisguard compliance-report` runs it,
against `redisguard emulator --no-processes` holding the same number of declared instances: the
listing, the stacks, the pack's start and the judgements. Figures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _args import positive_int  # bench/ is first on sys.path: the script's own folder
from drift_scan import PROJECT, REGION, write_stack
from google.cloud import redis_v1

from redisguard.core.pulumi import INSTANCE_TYPE
from redisguard.daemon.checks.compliance import run_compliance_check
from redisguard.daemon.config import config_from_mapping
from redisguard.daemon.demo.scenario import start_emulator
from redisguard.daemon.fleet.inverse import live_policy_inputs
from redisguard.policies.analyzer import unknown
from redisguard.policies.check import PackSession
from redisguard.policies.deployed import JudgedResource
from redisguard.policies.pack_config import PACK_DIR, default_config_file

GOAL_SECONDS = 2.0


def live_instances(size: int) -> list[redis_v1.Instance]:
    """What a listing of `size` production instances returns (one in ten with persistence off)."""
    return [
        redis_v1.Instance(
            name=f"projects/{PROJECT}/locations/{REGION}/instances/bench-{i:04d}",
            tier="STANDARD_HA", memory_size_gb=2 + i % 8, redis_version="REDIS_7_2", auth_enabled=True,
            transit_encryption_mode="SERVER_AUTHENTICATION", replica_count=1, read_replicas_mode="READ_REPLICAS_DISABLED",
            persistence_config=redis_v1.PersistenceConfig(persistence_mode="DISABLED" if i % 10 == 0 else "RDB",
                                                          rdb_snapshot_period="SIX_HOURS"),
            redis_configs={"maxmemory-policy": "allkeys-lru"},
            labels={"env": "production", "team": f"t{i % 7}", "service": "bench"},
            location_id=f"{REGION}-b",
        )  # fmt: skip
        for i in range(size)
    ]


def judge(session: PackSession, instances: list[redis_v1.Instance]) -> int:
    resources = []
    for instance in instances:
        inputs = live_policy_inputs(instance, deletion_protection=unknown("bool"))
        resources.append(JudgedResource(INSTANCE_TYPE, instance.name.rsplit("/", 1)[-1], inputs, inputs))
    return len(session.judge("production", default_config_file("production"), resources))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=positive_int, default=1000, help="live instances (default: %(default)s)")
    parser.add_argument("--runs", type=positive_int, default=5, help="runs to measure (default: %(default)s)")
    args = parser.parse_args()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores; "
          f"{args.size} instances, {args.runs} runs")  # fmt: skip

    instances = live_instances(args.size)
    session = PackSession(PACK_DIR)
    try:
        began = time.monotonic()
        judge(session, instances[:1])
        print(f"{'the pack: start-up and a first judgement':58s} {time.monotonic() - began:6.3f}s")
        times, found = [], 0
        for _ in range(args.runs):
            began = time.monotonic()
            found = judge(session, instances)
            times.append(time.monotonic() - began)
    finally:
        session.stop()
    median = statistics.median(times)
    print(f"{f'{args.size} instances judged (inputs + Analyze each)':58s} median {median:6.3f}s  "
          f"min {min(times):6.3f}s  max {max(times):6.3f}s  ({found} violations; goal < {GOAL_SECONDS:g}s: "
          f"{'met' if median < GOAL_SECONDS else 'not met'})")  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        work_dir = Path(tmp)
        fleet = write_stack(work_dir, "production", args.size)
        emulator = start_emulator(fleet, work_dir / "state", project=PROJECT, region=REGION, no_processes=True)
        try:
            config = config_from_mapping({
                "pulumi": {"work_dir": str(work_dir), "stacks": ["production"]},
                "gcp": {"redis_endpoint": emulator.redis_endpoint},
            })  # fmt: skip
            whole, startup = [], []
            for _ in range(args.runs):
                began = time.monotonic()
                report = run_compliance_check(config)
                whole.append(time.monotonic() - began)
                assert report.pack is not None and report.exit_code != 1, report.projects[0].error
                startup.append(report.pack.startup_seconds)
        finally:
            emulator.stop()
    for label, values in (
        (f"the whole check over {args.size} instances (emulator)", whole),
        ("  of which the pack's start-up", startup),
    ):
        print(f"{label:58s} median {statistics.median(values):6.3f}s  min {min(values):6.3f}s  max {max(values):6.3f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
