"""The live drift engine over stacks read from their Pulumi state, against a bare listing of the same instances.

Run: ./dev bench state_drift   (or .venv/bin/python bench/state_drift.py --stacks 50 --runs 7)

Sets up `--stacks` stacks of a project `bench` on a file:// backend with the real `pulumi` CLI
(`pulumi stack init`, then `pulumi stack import --force` of a checkpoint holding one
`gcp:redis/instance:Instance`, as a deployed program would; `--force` because the checkpoints are
written here, not by an engine), and the same instances in `redisguard emulator --no-processes`
(API only). Then, side by side in one run:

- baseline: the official `google-cloud-redis` client listing the project's instances (one paged
  `list_instances`, what the live engine itself costs at the least);
- first run: one live drift scan of every stack with nothing cached (a `pulumi stack export`
  per stack, `parallelism` at a time);
- cached runs: the same scan again with the exports cached (nothing changed: a few `stat`s per
  stack), median and worst of `--runs`.

The bare listings and the cached runs alternate, one of each per run, and the ratio is the median
of each run's pair, so a change of the machine's load during the bench falls on both sides alike.

Figures only: nothing is asserted. Goal (issue 20): a cached run within 1.3x the bare listing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _args import positive_int  # bench/ is first on sys.path: the script's own folder

from redisguard.core.pulumi import INSTANCE_TYPE
from redisguard.daemon.checks.drift import run_scan
from redisguard.daemon.config import RedisguardConfig, config_from_mapping
from redisguard.daemon.fleet import state as fleet_state
from redisguard.emulator.launcher import LaunchedEmulator, launch

PROJECT, REGION = "redisguard-bench-state", "europe-west1"
REPO = Path(__file__).resolve().parent.parent


def pulumi_cli() -> Path:
    """The CLI ./dev builds (tools/pulumi/build.py), else the one on PATH."""
    built = sorted((Path.home() / ".cache" / "redisguard" / "pulumi").glob("v*/bin/pulumi"))
    found = built[-1] if built else shutil.which("pulumi")
    if not found:
        sys.exit("state_drift: no pulumi CLI: run ./dev pulumi (or install Pulumi)")
    return Path(found)


def checkpoint(stack: str, instance: str) -> dict[str, object]:
    """A deployment holding one instance, as a program that created it would have recorded it."""
    stack_urn = f"urn:pulumi:{stack}::bench::pulumi:pulumi:Stack::bench-{stack}"
    provider = f"urn:pulumi:{stack}::bench::pulumi:providers:gcp::default"
    inputs = {
        "name": instance, "displayName": instance, "memorySizeGb": 1, "tier": "BASIC", "authEnabled": True,
        "redisVersion": "REDIS_7_2", "transitEncryptionMode": "DISABLED", "redisConfigs": {"maxmemory-policy": "allkeys-lru"},
    }  # fmt: skip
    return {
        "version": 3,
        "deployment": {
            "manifest": {"time": "2026-12-06T00:00:00Z", "magic": "", "version": "v3.274.1"},
            "resources": [
                {"urn": stack_urn, "custom": False, "type": "pulumi:pulumi:Stack"},
                {"urn": provider, "custom": True, "id": "bench", "type": "pulumi:providers:gcp", "inputs": {}, "outputs": {}},
                {
                    "urn": f"urn:pulumi:{stack}::bench::{INSTANCE_TYPE}::{instance}", "custom": True,
                    "id": f"projects/{PROJECT}/locations/{REGION}/instances/{instance}", "type": INSTANCE_TYPE,
                    "inputs": inputs, "outputs": {**inputs, "project": PROJECT, "region": REGION},
                    "parent": stack_urn, "provider": f"{provider}::bench",
                },  # fmt: skip
            ],
        },
    }


def set_up(folder: Path, stacks: int) -> tuple[Path, dict[str, str], list[str]]:
    """The project folder, the environment the CLI needs, and the stack names."""
    work, backend = folder / "bench", folder / "state"
    work.mkdir()
    backend.mkdir()
    (work / "Pulumi.yaml").write_text("name: bench\nruntime: nodejs\n")
    cli = pulumi_cli()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")},
        "PATH": f"{cli.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PULUMI_HOME": str(folder / "home"), "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_BACKEND_URL": f"file://{backend}", "PULUMI_CONFIG_PASSPHRASE": "bench",
    }  # fmt: skip
    names = [f"s{n:03d}" for n in range(stacks)]
    for n, name in enumerate(names):
        export = folder / f"{name}.json"
        export.write_text(json.dumps(checkpoint(name, f"redis-{n:03d}")))
        for args in (["stack", "init", name], ["stack", "import", "--force", "--file", str(export), "--stack", name]):
            subprocess.run([str(cli), *args, "--non-interactive"], cwd=work, env=env, check=True, capture_output=True)
    return work, env, names


def fleet_file(folder: Path, stacks: int) -> Path:
    """The same instances for the emulator's --fleet."""
    clusters = [{"name": f"redis-{n:03d}", "memory_gb": 1, "tier": "BASIC", "redis_version": "REDIS_7_2",
                 "max_memory_policy": "allkeys-lru", "persistence_mode": "DISABLED", "transit_encryption": "DISABLED"}
                for n in range(stacks)]  # fmt: skip
    path = folder / "Pulumi.fleet.yaml"
    path.write_text(yaml.safe_dump({"config": {"gcp:project": PROJECT, "gcp:region": REGION, "redis-fleet:redis": clusters}}))
    return path


def bare_listing(config: RedisguardConfig) -> float:
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import redis_v1

    client = redis_v1.CloudRedisClient(
        credentials=AnonymousCredentials(), transport="rest",
        client_options=ClientOptions(api_endpoint=config.gcp.redis_endpoint),
    )  # fmt: skip
    started = time.perf_counter()
    listed = list(client.list_instances(request={"parent": f"projects/{PROJECT}/locations/-", "page_size": 1000}))
    seconds = time.perf_counter() - started
    client.transport.close()
    assert listed, "the emulator listed no instance"
    return seconds


def scan(config: RedisguardConfig) -> float:
    started = time.perf_counter()
    report = run_scan(config, config.pulumi.stacks, ["live"])
    seconds = time.perf_counter() - started
    bad = [s for s in report.stacks if s.status != "in_sync"]
    assert not bad, f"{bad[0].stack}: {bad[0].status} {bad[0].error or bad[0].items}"
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", type=positive_int, default=50)
    parser.add_argument("--runs", type=positive_int, default=15, help="paired runs (default: %(default)s)")
    parser.add_argument("--parallelism", type=positive_int, default=4, help="stack checks at once (redisguard.yaml's parallelism)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="redisguard-bench-state-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        work, env, names = set_up(folder, args.stacks)
        print(f"set-up: {args.stacks} stacks imported with the real CLI in {time.perf_counter() - started:.1f}s")
        options = [
            "emulator", "--host", "127.0.0.1", "--redis-api-port", "0", "--monitoring-port", "0",
            "--state-dir", str(folder / "emulator"), "--no-processes", "--fleet", str(fleet_file(folder, args.stacks)),
        ]  # fmt: skip
        emulator: LaunchedEmulator = launch(options, timeout=120)
        try:
            # The daemon host's environment: the CLI on PATH, no backend URL (the config names it), no passphrase.
            os.environ["PATH"] = env["PATH"]
            os.environ["PULUMI_HOME"] = env["PULUMI_HOME"]
            config = config_from_mapping({
                "pulumi": {"work_dir": str(work), "stacks": names, "backend_url": env["PULUMI_BACKEND_URL"]},
                "gcp": {"redis_endpoint": emulator.redis_endpoint, "request_timeout_seconds": 30},
                "parallelism": args.parallelism,
            })  # fmt: skip
            bare_listing(config)  # the emulator's first answer (its caches) is nobody's figure
            fleet_state.clear_cache()
            first = scan(config)
            bare: list[float] = []
            cached: list[float] = []
            for _ in range(args.runs):
                bare.append(bare_listing(config))
                cached.append(scan(config))
        finally:
            emulator.stop()
    base = statistics.median(bare)
    paired = statistics.median(c / b for b, c in zip(bare, cached, strict=True))
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    print(f"{'':32} {'median':>9} {'worst':>9} {'x bare':>8}")
    print(f"{'bare listing (official client)':32} {base * 1000:8.1f}ms {max(bare) * 1000:8.1f}ms {1.0:8.2f}")
    print(f"{'live drift, exports cached':32} {statistics.median(cached) * 1000:8.1f}ms {max(cached) * 1000:8.1f}ms "
          f"{paired:8.2f}  (median of the paired runs)")  # fmt: skip
    print(f"{'live drift, first run (export)':32} {first * 1000:8.1f}ms {'':>9} {first / base:8.2f}")
    verdict = "met" if paired <= 1.3 else "not met"
    print(f"goal: cached within 1.3x the bare listing: {verdict} ({args.stacks} stacks, parallelism {args.parallelism}, "
          f"{args.runs} runs each)")  # fmt: skip


if __name__ == "__main__":
    main()
