"""Live-engine drift scan time for 10, 100 and 1000 declared instances against the emulator (API only).

Run: ./dev bench drift_scan   (or .venv/bin/python bench/drift_scan.py --sizes 10 100 1000 --runs 5)

For each size it writes a stack file with that many clusters, starts `redisguard emulator
--no-processes` with it as the fleet (instances exist in the API only, no redis-server), and times
`run_scan(..., engines=["live"])` the way `redisguard drift-report --engine live` runs it. It prints
the median and best scan time and the admin API calls one scan made, counted by the emulator.
Figures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml
from _args import positive_int  # bench/ is first on sys.path: the script's own folder

from redisguard.daemon.checks.drift import run_scan
from redisguard.daemon.config import config_from_mapping
from redisguard.daemon.demo.scenario import start_emulator

PROJECT = "redisguard-bench"
REGION = "europe-west1"


def write_stack(work_dir: Path, stack: str, size: int) -> Path:
    clusters = [
        {
            "name": f"bench-{i:04d}",
            "memory_gb": 1 + i % 4,
            "tier": "BASIC",
            "redis_version": "REDIS_7_2",
            "max_memory_policy": "allkeys-lru",
            "persistence_mode": "RDB",
            "snapshot_period": "SIX_HOURS",
            "maintenance_window_day": "SUNDAY",
            "maintenance_start_hours": 3,
            "labels": {"env": "bench", "team": f"t{i % 7}"},
        }
        for i in range(size)
    ]
    path = work_dir / f"Pulumi.{stack}.yaml"
    document = {"config": {"gcp:project": PROJECT, "gcp:region": REGION, "redis-fleet:redis": clusters}}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def request_counts(endpoint: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{endpoint}/_emulator/requests", timeout=10) as response:
        return json.load(response).get("redis", {})


def reset_counts(endpoint: str) -> None:
    request = urllib.request.Request(f"{endpoint}/_emulator/requests", method="DELETE")
    urllib.request.urlopen(request, timeout=10).close()


def bench_size(size: int, runs: int, base: Path) -> tuple[float, float, int, int]:
    work_dir = base / f"program-{size}"
    work_dir.mkdir()
    stack = f"bench{size}"
    fleet = write_stack(work_dir, stack, size)
    emulator = start_emulator(fleet, base / f"state-{size}", project=PROJECT, region=REGION, no_processes=True)
    try:
        config = config_from_mapping(
            {"pulumi": {"work_dir": str(work_dir), "stacks": [stack]}, "gcp": {"redis_endpoint": emulator.redis_endpoint}}
        )
        run_scan(config, [stack], ["live"])  # warm-up: imports, client, connection
        times = []
        calls = 0
        drifted = 0
        for _ in range(runs):
            reset_counts(emulator.redis_endpoint)
            started = time.perf_counter()
            report = run_scan(config, [stack], ["live"])
            times.append(time.perf_counter() - started)
            calls = sum(request_counts(emulator.redis_endpoint).values())
            if report.exit_code == 1:
                raise SystemExit(f"scan of {size} instances failed: {report.stacks[0].error}")
            drifted = len(report.stacks[0].items)
        return statistics.median(times), min(times), calls, drifted
    finally:
        emulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=positive_int, nargs="+", default=[10, 100, 1000], help="declared instances per run")
    parser.add_argument("--runs", type=positive_int, default=5, help="timed scans per size (default: 5)")
    args = parser.parse_args()
    print(f"{'instances':>9}  {'median s':>9}  {'best s':>7}  {'API calls/scan':>14}  {'drifted':>7}")
    with tempfile.TemporaryDirectory(prefix="redisguard-bench-") as tmp:
        for size in args.sizes:
            median, best, calls, drifted = bench_size(size, args.runs, Path(tmp))
            print(f"{size:>9}  {median:>9.3f}  {best:>7.3f}  {calls:>14}  {drifted:>7}", flush=True)


if __name__ == "__main__":
    main()
