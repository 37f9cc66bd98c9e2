"""The `drift-report`, `memory-report`, `check-config` and `demo` subcommands."""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import re
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from redisguard.core.errors import ConfigError, PermanentError
from redisguard.core.reports import EXIT_DRIFT, EXIT_ERROR
from redisguard.core.validation import problem_list
from redisguard.daemon.checks.drift import engines_for, run_scan
from redisguard.daemon.checks.ignore import BUILTIN_IGNORED_PATHS
from redisguard.daemon.config import (
    DEFAULT_CONFIG_FILE,
    RedisguardConfig,
    config_from_mapping,
    default_stack_names,
    load_config,
)
from redisguard.daemon.fleet.stacks import read_stack_files
from redisguard.daemon.reports.drift import DriftReport, StackReport, print_table, render
from redisguard.daemon.service.webconfig import WebConfig, load_web_config
from redisguard.emulator.launcher import LaunchedEmulator, launch
from redisguard.program.config import load_stack_file

if TYPE_CHECKING:
    from redisguard.daemon.reports.memory import MemoryReport

log = logging.getLogger(__name__)

@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """Let SIGTERM unwind the stack as Ctrl-C does, so `finally` blocks run: the demo stops its
    emulator and removes its folder, a scan kills its pulumi CLIs (the default action would
    exit on the spot)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def unwind(signum: int, _frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, unwind)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- drift-report ------------------------------------------------------------------------------


@contextlib.contextmanager
def _progress(total: int) -> Iterator[Callable[[StackReport], None] | None]:
    """A progress bar on stderr when it is a terminal and more than one check runs: yields the
    callback that advances it (None when there is no bar)."""
    err = Console(stderr=True)
    if total < 2 or not err.is_terminal:
        yield None
        return
    with Progress(
        TextColumn("drift"), BarColumn(), TextColumn("{task.completed}/{task.total} checks"), TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("drift", total=total)

        def advance(_: StackReport) -> None:
            progress.advance(task)

        yield advance


def emit_report(
    report: DriftReport | MemoryReport, fmt: str, output: str | None, config_dir: Path | None = None
) -> None:
    """Print the report, or write it to `output` (`-` is stdout, as for most CLI tools).

    JSON and Markdown travel (CI artifacts, PR comments): a drift report's paths are relative to
    `config_dir`, the config file's folder. The table is read where it ran and keeps them whole.
    """
    if isinstance(report, DriftReport):
        if config_dir is not None and fmt in ("json", "markdown"):
            report = report.with_paths_relative_to(config_dir)
        text, table = functools.partial(render, report, fmt), functools.partial(print_table, report)
    else:
        from redisguard.daemon.reports import memory as memory_report

        text, table = functools.partial(memory_report.render, report, fmt), functools.partial(memory_report.print_table, report)
    if output and output != "-":
        try:
            Path(output).write_text(text(), encoding="utf-8")
        except OSError as exc:
            raise PermanentError(f"cannot write the report to {output}: {exc.strerror}") from exc
        return
    if fmt == "table":
        table(Console(soft_wrap=False))
    else:
        sys.stdout.write(text())
        sys.stdout.flush()


def _print_errors(command: str, report: DriftReport) -> None:
    for s in report.stacks:
        if s.status == "error":
            print(f"redisguard {command}: error: stack {s.stack} ({s.engine}): {s.error}", file=sys.stderr)


def _interruptible(
    command: str,
    body: Callable[[argparse.Namespace], int],
    args: argparse.Namespace,
    what: str = "running checks were stopped, no report written",
) -> int:
    """`body(args)` with SIGTERM unwinding as Ctrl-C does; after either, one line on stderr says
    what happened and the exit status says which signal (128 + its number).

    The report of the checks that finished is not printed after an interrupt: a partial report
    would read as an answer.
    """
    try:
        with _sigterm_unwinds():
            return body(args)
    except KeyboardInterrupt:
        _print_interrupted(command, signal.SIGINT, what)
        return 128 + signal.SIGINT
    except SystemExit as exc:
        if exc.code == 128 + signal.SIGTERM:
            _print_interrupted(command, signal.SIGTERM, what)
        raise


def _print_interrupted(command: str, signum: signal.Signals, what: str) -> None:
    print(f"redisguard {command}: interrupted by {signum.name}; {what}", file=sys.stderr, flush=True)


def run_drift_report(args: argparse.Namespace) -> int:
    return _interruptible("drift-report", _drift_report, args)


def _drift_report(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    stacks = default_stack_names(config, args.stack)
    engines = engines_for(args.engine)
    log.debug("effective config %s", config.redacted())
    with _progress(len(stacks) * len(engines)) as advance:
        report = run_scan(config, stacks, engines, on_done=advance)
    config_dir = Path(args.config or DEFAULT_CONFIG_FILE).resolve().parent
    emit_report(report, args.format, args.output, config_dir)
    _print_errors("drift-report", report)
    return report.exit_code


# --- memory-report -----------------------------------------------------------------------------


def run_memory_report(args: argparse.Namespace) -> int:
    return _interruptible("memory-report", _memory_report, args)


def _memory_report(args: argparse.Namespace) -> int:
    # Imported here: the Monitoring client (gRPC) costs every other command's start-up otherwise.
    from redisguard.daemon.checks.memory import run_memory_check

    config = load_config(args.config)
    stacks = default_stack_names(config, args.stack)
    log.debug("effective config %s", config.redacted())
    if args.recommend:
        from redisguard.daemon.remediation.recommend import check_arguments

        check_arguments(args)
    report = run_memory_check(config, stacks)
    if args.recommend:
        from redisguard.daemon.remediation.recommend import run_recommend

        if args.output:
            emit_report(report, args.format, args.output)
        run_recommend(config, report, stacks, args)
    else:
        emit_report(report, args.format, args.output)
    for p in report.projects:
        if p.status == "error":
            print(f"redisguard memory-report: error: project {p.project_id}: {p.error}", file=sys.stderr)
    return report.exit_code


# --- check-config ------------------------------------------------------------------------------


def run_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    problems: list[str] = []
    summaries: list[str] = []
    for file in read_stack_files(config):
        stack = file.stack
        if stack is None:
            # The key that names the missing file, since check-config is where config gets fixed.
            problems.append(str(file.error) if file.error else f"pulumi.stacks: {file.name!r} has no stack file {file.path}")
            continue
        where = f"{stack.project or 'gcp:project unset'}/{stack.region or 'gcp:region unset'}"
        summaries.append(f"{file.name} ({where}, {len(stack.clusters)} cluster{'s' if len(stack.clusters) != 1 else ''})")
        if not stack.project:
            problems.append(f"{file.path}: gcp:project is not set; the live engine needs it")
    what = "the stacks it names"
    try:
        web = load_web_config(config.server.web_config_file)
    except ConfigError as exc:
        problems.append(str(exc))
        what = "the files it names"
    source = args.config or DEFAULT_CONFIG_FILE
    if problems:
        raise ConfigError(problem_list(source, what, problems))
    _print_config_summary(source, config, summaries, web)
    return 0


def _web_summary(web: WebConfig) -> str:
    if web.source is None:
        return "(none: plain HTTP, no auth)"
    info = web.summary()
    tls = f"TLS, client certificates: {info['client_auth']}" if info["tls"] else "no TLS"
    users = f"basic auth for {', '.join(info['basic_auth_users'])}" if info["basic_auth_users"] else "no basic auth"
    return f"{web.source} ({tls}; {users})"


# What an unset (None) key means, as check-config shows it.
_UNSET_MEANS = {
    "pulumi.backend_url": "(from Pulumi.yaml or `pulumi login`)",
    "gcp.redis_endpoint": "(Google Cloud, default credentials)",
    "gcp.monitoring_endpoint": "(Google Cloud, default credentials)",
}


def _flat(data: dict[str, object], prefix: str = "") -> Iterator[tuple[str, object]]:
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def config_summary_lines(config: RedisguardConfig, stacks: Sequence[str], web: WebConfig) -> list[str]:
    """Every effective key (defaults, file and environment applied) with its value, secrets redacted.

    Generated from the model, so a key added to it is shown without anyone remembering to.
    """
    builtin = sum(len(v) for v in BUILTIN_IGNORED_PATHS.values())
    rows: list[tuple[str, str]] = []
    for key, value in _flat(config.redacted()):
        if key == "pulumi.stacks":
            text = ", ".join(stacks)
        elif key == "pulumi.access_token":
            key, text = "PULUMI_ACCESS_TOKEN", "set" if os.environ.get("PULUMI_ACCESS_TOKEN") else "not set"
        elif key == "ignore":
            text = f"{len(config.ignore)} configured + {builtin} built-in"
        elif key == "server.web_config_file":
            text = _web_summary(web)
        elif value is None:
            text = _UNSET_MEANS.get(key, "(unset)")
        elif isinstance(value, float):
            text = f"{value:g}"
        elif isinstance(value, list):
            text = ", ".join(str(v) for v in value)
        else:
            text = str(value)
        rows.append((key, text))
    width = max(len(key) for key, _ in rows)
    return [f"  {key.ljust(width)}  {text}" for key, text in rows]


def _print_config_summary(source: str, config: RedisguardConfig, stacks: Sequence[str], web: WebConfig) -> None:
    print("\n".join([f"{source}: valid", *config_summary_lines(config, stacks, web)]))


# --- demo ----------------------------------------------------------------------------------------

DEMO_INSTANCE = "redis-sidekiq"
_STACK_FILE_NAME = re.compile(r"Pulumi\.[A-Za-z0-9_.-]+\.yaml")


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


def run_demo(args: argparse.Namespace) -> int:
    # The emulator is stopped by the time the line is printed (its `finally` has run).
    return _interruptible("demo", _demo, args, "the emulator was stopped")


def _demo(args: argparse.Namespace) -> int:
    # soft_wrap: the narration is not cut into 80-column pieces when stdout is a pipe. With a
    # machine-readable format stdout is the report alone (`demo --format json | jq` works).
    out = Console(soft_wrap=True, stderr=args.format != "table")
    fleet = Path(args.fleet)
    # Checked before anything starts: the report finds a stack's file by this name.
    if not _STACK_FILE_NAME.fullmatch(fleet.name):
        raise ConfigError(f"--fleet {fleet}: the file must be named Pulumi.<stack>.yaml, as Pulumi names stack files")
    if not fleet.is_file():
        raise ConfigError(f"--fleet {fleet}: stack file not found")
    stack = load_stack_file(fleet)
    if not stack.project or not stack.region:
        raise ConfigError(f"{fleet}: the demo needs gcp:project and gcp:region in the stack file")
    names = [c.name for c in stack.clusters]
    target = DEMO_INSTANCE if DEMO_INSTANCE in names else names[0]
    with tempfile.TemporaryDirectory(prefix="redisguard-demo-") as state_dir:
        out.print(f"[bold]1.[/] starting the emulator with the {stack.stack} fleet ({len(names)} instances: {', '.join(names)})")
        emulator = start_emulator(
            fleet, Path(state_dir), project=stack.project, region=stack.region, no_processes=args.no_processes
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
        _print_errors("demo", report)
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
