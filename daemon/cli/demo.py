"""`redisguard demo`: the emulator with the staging fleet, one instance changed behind Pulumi's back, and the live drift report on it."""

from __future__ import annotations

import argparse
import re
import signal
import tempfile
from pathlib import Path

from rich.console import Console

from redisguard.core.errors import ConfigError, PermanentError
from redisguard.core.reports import EXIT_DRIFT, EXIT_ERROR
from redisguard.daemon.cli.options import Subcommands
from redisguard.daemon.cli.output import emit_report, interruptible, print_errors
from redisguard.daemon.config import config_from_mapping
from redisguard.daemon.reports.drift import FORMATS
from redisguard.emulator.launcher import LaunchedEmulator, launch
from redisguard.program.config import StackConfig, load_stack_file

DEMO_INSTANCE = "redis-sidekiq"
_STACK_FILE_NAME = re.compile(r"Pulumi\.[A-Za-z0-9_.-]+\.yaml")


def register(sub: Subcommands) -> None:
    demo = sub.add_parser(
        "demo",
        help="start the emulator with the staging fleet, drift one instance and report it",
        description="Start the local emulator with the staging fleet on free ports in a temporary "
        "state folder, change one instance behind Pulumi's back through the Memorystore API, run the "
        "live drift report against it and stop the emulator. Exits 0 when the demo ran (the drift "
        "report's own exit code 2 is expected there).",
    )
    demo.add_argument(
        "--fleet",
        metavar="FILE",
        default=str(_program_dir() / "Pulumi.staging.yaml"),
        help="stack file whose clusters the emulator starts with, named Pulumi.<stack>.yaml as Pulumi "
        "names it (the report looks for the stack's file by that name; default: the staging stack)",
    )
    demo.add_argument(
        "--format",
        choices=list(FORMATS),
        default="table",
        help="report format (default: table); with json or markdown stdout holds only the report and "
        "the narration goes to stderr",
    )
    demo.add_argument(
        "--no-processes",
        action="store_true",
        help="run the emulator without redis-server processes (API only)",
    )
    demo.set_defaults(func=run_demo)


def _program_dir() -> Path:
    import redisguard.program

    return Path(redisguard.program.__file__).resolve().parent


def start_emulator(
    fleet: Path, state_dir: Path, *, project: str, region: str, no_processes: bool = False
) -> LaunchedEmulator:
    """Start `redisguard emulator` with `fleet` on free ports and wait for its ready line.

    SIGKILL reaches the emulator if this process dies, however it dies, so no emulator and,
    through the emulator's own wrapper, no redis-server outlives the demo. Its own session:
    a Ctrl-C on the terminal reaches the demo only, which then stops the emulator in order.
    """
    options = [
        "emulator",
        "--host", "127.0.0.1", "--redis-api-port", "0", "--monitoring-port", "0",
        "--project", project, "--region", region,
        "--state-dir", str(state_dir), "--fleet", str(fleet),
    ]  # fmt: skip
    if no_processes:
        options.append("--no-processes")
    return launch(options, die_signal=signal.SIGKILL, new_session=True)


def change_out_of_band(emulator: LaunchedEmulator, instance_id: str) -> list[str]:
    """Grow one instance's memory and switch its eviction policy through the official client, as
    someone in the console would; returns what changed, for the demo's output."""
    from google.api_core import exceptions as gexc
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import redis_v1
    from google.protobuf import field_mask_pb2

    client = redis_v1.CloudRedisClient(
        transport="rest",
        client_options={"api_endpoint": emulator.redis_endpoint},
        credentials=AnonymousCredentials(),
    )
    name = client.instance_path(emulator.project, emulator.region, instance_id)
    try:
        before = client.get_instance(name=name)
        configs = dict(before.redis_configs)
        old_policy = configs.get("maxmemory-policy", "unset")
        configs["maxmemory-policy"] = "allkeys-lru" if old_policy != "allkeys-lru" else "allkeys-lfu"
        operation = client.update_instance(
            update_mask=field_mask_pb2.FieldMask(paths=["memory_size_gb", "redis_configs"]),
            instance=redis_v1.Instance(name=name, memory_size_gb=before.memory_size_gb + 1, redis_configs=configs),
        )
        operation.result(timeout=60)
    except gexc.GoogleAPICallError as exc:
        raise PermanentError(f"the demo could not change {instance_id}: {exc.message}") from exc
    return [
        f"memory_size_gb {before.memory_size_gb} -> {before.memory_size_gb + 1}",
        f"maxmemory-policy {old_policy} -> {configs['maxmemory-policy']}",
    ]


def _demo_stack(fleet: Path) -> tuple[StackConfig, str, str]:
    """The --fleet stack file with its project and region, checked before anything starts (the
    report finds a stack's file by its name)."""
    if not _STACK_FILE_NAME.fullmatch(fleet.name):
        raise ConfigError(f"--fleet {fleet}: the file must be named Pulumi.<stack>.yaml, as Pulumi names stack files")
    if not fleet.is_file():
        raise ConfigError(f"--fleet {fleet}: stack file not found")
    stack = load_stack_file(fleet)
    if not stack.project or not stack.region:
        raise ConfigError(f"{fleet}: the demo needs gcp:project and gcp:region in the stack file")
    return stack, stack.project, stack.region


# The emulator is stopped by the time the line is printed (its `finally` has run).
@interruptible("the emulator was stopped")
def run_demo(args: argparse.Namespace) -> int:
    from redisguard.daemon.checks.drift import run_scan

    # soft_wrap: the narration is not cut into 80-column pieces when stdout is a pipe. With a
    # machine-readable format stdout is the report alone (`demo --format json | jq` works).
    out = Console(soft_wrap=True, stderr=args.format != "table")
    fleet = Path(args.fleet)
    stack, project, region = _demo_stack(fleet)
    names = [c.name for c in stack.clusters]
    target = DEMO_INSTANCE if DEMO_INSTANCE in names else names[0]
    with tempfile.TemporaryDirectory(prefix="redisguard-demo-") as state_dir:
        out.print(f"[bold]1.[/] starting the emulator with the {stack.stack} fleet ({len(names)} instances: {', '.join(names)})")
        emulator = start_emulator(
            fleet, Path(state_dir), project=project, region=region, no_processes=args.no_processes
        )
        try:
            out.print(f"   ready: Memorystore API {emulator.redis_endpoint}, Cloud Monitoring {emulator.monitoring_endpoint}")
            changes = change_out_of_band(emulator, target)
            out.print(
                f"[bold]2.[/] changed {target} behind Pulumi's back through the Memorystore API: {', '.join(changes)}"
            )
            config = config_from_mapping(
                {
                    "pulumi": {"work_dir": str(fleet.resolve().parent), "stacks": [stack.stack]},
                    "gcp": {"redis_endpoint": emulator.redis_endpoint, "monitoring_endpoint": emulator.monitoring_endpoint},
                },
                source="demo config",
            )
            out.print(f"[bold]3.[/] redisguard drift-report --engine live --stack {stack.stack}")
            report = run_scan(config, [stack.stack], ["live"])
            emit_report(report, args.format, None)
        finally:
            status = emulator.stop()
            out.print(f"[bold]4.[/] emulator stopped (exit status {status})")
    code = report.exit_code
    if code == EXIT_ERROR:
        print_errors("demo", report)
        return EXIT_ERROR
    if code == EXIT_DRIFT:
        out.print(
            f"drift-report would exit with code {EXIT_DRIFT} (drift found). That is expected here: the demo "
            f"changed {target} itself. In CI, exit code 2 is a report, not a failure: the pull-request workflow "
            "posts it as a comment, and a scheduled drift job fails on it (docs/drift.md, In CI)."
        )
    else:
        out.print("[yellow]no drift found, although the demo changed an instance: check the emulator[/]")
        return EXIT_ERROR
    return 0
