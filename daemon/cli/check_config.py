"""`redisguard check-config`: the config file, the stack files it names and the web config, every
problem at once; when valid, every effective key with its value."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from redisguard.core.errors import ConfigError
from redisguard.core.validation import problem_list
from redisguard.daemon.cli.options import Subcommands, add_config
from redisguard.daemon.config import DEFAULT_CONFIG_FILE, RedisguardConfig, load_config

if TYPE_CHECKING:
    from redisguard.daemon.service.webconfig import WebConfig


def register(sub: Subcommands) -> None:
    check = sub.add_parser(
        "check-config",
        help="validate redisguard.yaml and the stack files it points at",
        description="Validate the config file (with REDISGUARD_* environment overrides applied) and "
        "every Pulumi.<stack>.yaml it names; list every problem at once. A scheduled check whose command "
        "is not on PATH here (drift_pulumi without `pulumi`) is a warning on stderr: the config is valid, but "
        "every run of that check will fail. Exit 0 valid (warnings too), 1 invalid.",
    )
    add_config(check)
    check.set_defaults(func=run_check_config)


def run_check_config(args: argparse.Namespace) -> int:
    # Imported here: the web config's models and the stack reader cost every other command's
    # start-up (policy-check starts its packs only once the parser is built).
    from redisguard.daemon.fleet.stacks import read_stack_files
    from redisguard.daemon.service.webconfig import load_web_config

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
    warnings = missing_commands(config)
    for warning in warnings:
        print(f"redisguard check-config: warning: {warning}", file=sys.stderr)
    verdict = f"valid ({len(warnings)} warning{'s' if len(warnings) != 1 else ''} on stderr)" if warnings else "valid"
    print("\n".join([f"{source}: {verdict}", *config_summary_lines(config, summaries, web)]))
    return 0


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


# What an unset (None) key means, as check-config shows it.
_UNSET_MEANS = {
    "pulumi.backend_url": "(from Pulumi.yaml or `pulumi login`)",
    "gcp.redis_endpoint": "(Google Cloud, default credentials)",
    "gcp.monitoring_endpoint": "(Google Cloud, default credentials)",
}


def config_summary_lines(config: RedisguardConfig, stacks: Sequence[str], web: WebConfig) -> list[str]:
    """Every effective key (defaults, file and environment applied) with its value, secrets redacted.

    Generated from the model, so a key added to it is shown without anyone remembering to.
    """
    from redisguard.daemon.checks.ignore import BUILTIN_IGNORED_PATHS

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


def _flat(data: dict[str, object], prefix: str = "") -> Iterator[tuple[str, object]]:
    for key, value in data.items():
        if isinstance(value, dict):
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
