"""`redisguard check-config`: the config file, the stack files it names and the web config, every
problem at once; when valid, every effective key with its value."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from redisguard.core.errors import ConfigError, RedisguardError
from redisguard.core.validation import problem_list
from redisguard.daemon.cli.options import Subcommands, add_config
from redisguard.daemon.config import DEFAULT_CONFIG_FILE, RedisguardConfig, load_config

if TYPE_CHECKING:
    from redisguard.daemon.fleet.stacks import StackFileRead
    from redisguard.daemon.service.webconfig import WebConfig
    from redisguard.daemon.sharding import Shard


def register(sub: Subcommands) -> None:
    check = sub.add_parser(
        "check-config",
        help="validate redisguard.yaml and the stack files it points at",
        description="Validate the config file (with REDISGUARD_* environment overrides applied) and "
        "every Pulumi.<stack>.yaml it names (or, for a stack read from its Pulumi state, the state: "
        "`pulumi stack export`), and show each stack's source and why; list every problem at once. A scheduled "
        "check whose command is not on PATH here (drift_pulumi without `pulumi`) is a warning on stderr: the "
        "config is valid, but every run of that check will fail. Exit 0 valid (warnings too), 1 invalid.",
    )
    add_config(check)
    check.set_defaults(func=run_check_config)


def run_check_config(args: argparse.Namespace) -> int:
    # Imported here: the web config's models and the stack reader cost every other command's
    # start-up (policy-check starts its packs only once the parser is built).
    from redisguard.daemon.fleet.stacks import choose_source, read_stack_files
    from redisguard.daemon.service.webconfig import load_web_config

    config = load_config(args.config)
    shard, shard_text, shard_warning = resolve_shard(config)
    problems: list[str] = []
    summaries: list[tuple[str, str]] = []
    # A state that cannot be read here is a warning, as a missing command is: the backend login
    # and the CLI may be where the daemon runs, not where the config is checked.
    unread: list[str] = []
    for file in read_stack_files(config):
        chosen, why = choose_source(config, file)
        parts: list[str] = []
        if chosen in ("config", "both"):
            summary, problem = _config_stack(config, file)
            problems += [problem] if problem is not None else []
            parts += [summary] if summary is not None else []
        if chosen in ("state", "both"):
            summary, problem, fallback = _state_stack(config, file)
            if problem is not None and fallback:
                problems.append(problem)  # no stack file: most often a stack name or work_dir to fix
            elif problem is not None:
                unread.append(f"{problem}; every live drift run of this stack will fail until it can be read")
            parts.append(summary if summary is not None else "state not read")
        summaries.append((file.name, f"{chosen} ({why}): {'; '.join(p for p in parts if p)}{_shard_note(config, shard, file.name)}"))
    what = "the stacks it names"
    try:
        web = load_web_config(config.server.web_config_file)
    except ConfigError as exc:
        problems.append(str(exc))
        what = "the files it names"
    source = args.config or DEFAULT_CONFIG_FILE
    if problems:
        raise ConfigError(problem_list(source, what, problems))
    warnings = missing_commands(config) + unread + ([shard_warning] if shard_warning else [])
    for warning in warnings:
        print(f"redisguard check-config: warning: {warning}", file=sys.stderr)
    verdict = f"valid ({len(warnings)} warning{'s' if len(warnings) != 1 else ''} on stderr)" if warnings else "valid"
    print("\n".join([f"{source}: {verdict}", *config_summary_lines(config, summaries, web, shard_text)]))
    return 0


def resolve_shard(config: RedisguardConfig) -> tuple[Shard | None, str, str | None]:
    """(this host's shard or None, how check-config shows it, a warning): the shard the daemon would
    take here. `shard: auto` that this host's name cannot resolve is a warning, not an error: the
    config is checked where it is written (a laptop, a CI job), the pod's name is the daemon's."""
    import socket

    from redisguard.daemon.sharding import Shard

    settings = config.sharding
    try:
        shard = Shard.of(settings)
    except ConfigError as exc:
        return None, f"auto of {settings.total_shards}: not resolved here", str(exc)
    if shard.whole:
        return shard, "none: this daemon checks every stack and project", None
    how = f" (auto: from {settings.pod or socket.gethostname()})" if settings.shard == "auto" else ""
    return shard, f"{shard}{how}: checks the stacks and projects that hash to it", None


def _shard_note(config: RedisguardConfig, shard: Shard | None, stack: str) -> str:
    """Which shard checks `stack`'s drift, when several daemons share the fleet."""
    from redisguard.daemon.sharding import shard_of

    total = config.sharding.total_shards
    if total == 1:
        return ""
    owner = shard_of(stack, total)
    if shard is not None and owner == shard.ordinal:
        return f" (drift checked by this shard, {owner})"
    return f" (drift checked by shard {owner})"


def missing_commands(config: RedisguardConfig) -> list[str]:
    """What will fail because a scheduled check's command is not on PATH here, one line each.

    A warning, not an error: the config is valid, and check-config may run elsewhere than the
    daemon (a CI job, a laptop) with another PATH.
    """
    from redisguard.daemon.checks.registry import CHECKS

    lines = []
    for name, schedule in config.schedules.enabled().items():
        command = CHECKS[name].cli
        if command is not None and shutil.which(command) is None:
            lines.append(
                f"schedules.{name} is {schedule.text} but no `{command}` is on PATH: every {name} run will fail "
                f"(\"the {command} CLI was not found on PATH\"; redisguard_check_up 0, /healthz 503). Install the "
                f"{command.capitalize()} CLI where the daemon runs, or set schedules.{name}: off "
                f"(REDISGUARD_SCHEDULES__{name.upper()}=off)"
            )
    return lines


def _config_stack(config: RedisguardConfig, file: StackFileRead) -> tuple[str | None, str | None]:
    """(what the stack file declares, its problem) for a stack whose source is its config."""
    stack = file.stack
    if stack is None:
        # The key that names the missing file, since check-config is where config gets fixed.
        return None, str(file.error) if file.error else f"pulumi.stacks: {file.name!r} has no stack file {file.path}"
    where = f"{stack.project or 'gcp:project unset'}/{stack.region or 'gcp:region unset'}"
    summary = f"{where}, {len(stack.clusters)} cluster{'s' if len(stack.clusters) != 1 else ''}"
    if not stack.project:
        return summary, f"{file.path}: gcp:project is not set; the live engine needs it"
    return summary, None


def _state_stack(config: RedisguardConfig, file: StackFileRead) -> tuple[str | None, str | None, bool]:
    """(what the stack's state holds, why it cannot be read, whether `auto` chose the state only because
    the stack file is missing) for a stack read from its Pulumi state: read now, as the checks will
    read it, so a missing CLI or backend login shows here first."""
    from redisguard.core.pulumi import INSTANCE_TYPE
    from redisguard.daemon.fleet.stacks import with_fallback_context
    from redisguard.daemon.fleet.state import read_stack_state

    try:
        state = read_stack_state(config.pulumi, file.name)
    except RedisguardError as exc:
        error = with_fallback_context(config, file, exc)
        return None, str(error) if error is not exc else f"pulumi.stacks: {file.name}: {exc}", error is not exc
    count = len(state.of_type(INSTANCE_TYPE))
    projects = sorted({r.id.split("/")[1] for r in state.of_type(INSTANCE_TYPE) if r.id and r.id.startswith("projects/")})
    where = ", ".join(projects) if projects else "no project yet"
    return f"{where}, {count} deployed instance{'s' if count != 1 else ''}", None, False


# What an unset (None) key means, as check-config shows it.
_UNSET_MEANS = {
    "pulumi.backend_url": "(from Pulumi.yaml or `pulumi login`)",
    "gcp.redis_endpoint": "(Google Cloud, default credentials)",
    "gcp.monitoring_endpoint": "(Google Cloud, default credentials)",
}


def config_summary_lines(
    config: RedisguardConfig, stacks: Sequence[tuple[str, str]], web: WebConfig, shard: str = ""
) -> list[str]:
    """Every effective key (defaults, file and environment applied) with its value, secrets redacted.

    Generated from the model, so a key added to it is shown without anyone remembering to.
    """
    from redisguard.daemon.checks.ignore import BUILTIN_IGNORED_PATHS

    builtin = sum(len(v) for v in BUILTIN_IGNORED_PATHS.values())
    rows: list[tuple[str, str]] = []
    for key, value in _flat(config.redacted()):
        if key == "pulumi.stacks":
            # The names, then one row per stack: its source, why, and what it holds.
            rows.append((key, ", ".join(name for name, _ in stacks)))
            rows += [(f"  stack {name}", summary) for name, summary in stacks]
            continue
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
        elif isinstance(value, dict):
            text = "(none)"
        elif isinstance(value, list):
            text = ", ".join(str(v) for v in value)
        else:
            text = str(value)
        rows.append((key, text))
        if key == "sharding.pod" and shard:
            rows.append(("  resolved", shard))
    width = max(len(key) for key, _ in rows)
    return [f"  {key.ljust(width)}  {text}" for key, text in rows]


def _flat(data: dict[str, object], prefix: str = "") -> Iterator[tuple[str, object]]:
    for key, value in data.items():
        if isinstance(value, dict) and value:
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _web_summary(web: WebConfig) -> str:
    if web.source is None:
        return "(none: plain HTTP, no auth)"
    info = web.summary()
    tls = f"TLS, client certificates: {info['client_auth']}" if info["tls"] else "no TLS"
    users = f"basic auth for {', '.join(info['basic_auth_users'])}" if info["basic_auth_users"] else "no basic auth"
    limit = f"; rate limit {info['rate_limit']}" if info["rate_limit"] else ""
    return f"{web.source} ({tls}; {users}{limit})"
