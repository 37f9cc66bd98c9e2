"""`redisguard policy-check`: the configured stacks through the policy pack (policies/check.py).

Imports the program, the pack and the config only (with --state, fleet/state.py's export reader),
never the drift engines' Google clients or Automation API: pre-commit runs it on every commit.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from redisguard.core.errors import ConfigError
from redisguard.core.reports import FORMATS
from redisguard.core.secrets import secret_values
from redisguard.daemon.cli.options import Subcommands, add_stacks
from redisguard.daemon.config import (
    DEFAULT_CONFIG_FILE,
    PulumiSettings,
    config_from_mapping,
    default_stack_names,
    load_config,
)
from redisguard.policies.pack_config import choose_pack

if TYPE_CHECKING:
    from redisguard.daemon.fleet.state import StackState
    from redisguard.policies.deployed import DeployedStack

POLICY_EXIT_CODES_HELP = (
    "exit status: 0 no mandatory violation, 2 a mandatory violation (the preview would be blocked), "
    "1 a stack could not be checked (an error wins over a violation)"
)


def register(sub: Subcommands) -> None:
    """`policy-check`: the pack (policies/check.py) over the resources the program registers."""
    parser = sub.add_parser(
        "policy-check",
        help="run the policy pack on each stack's resources, without a cloud or a Pulumi CLI",
        description="Build the resources the program registers for each stack from its stack file and have "
        "the policy pack judge them as `pulumi preview --policy-pack` does (the pack started as "
        "Pulumi's Python host starts it, over the Analyzer protocol). For pre-commit and CI before "
        "any preview. With --state or --state-file, judge what a stack has deployed instead, whatever "
        "program deployed it, as `pulumi policy analyze` does. " + POLICY_EXIT_CODES_HELP + ".",
    )
    parser.add_argument("--config", metavar="FILE", help="redisguard config file for pulumi.work_dir and "
                        "pulumi.stacks (default: ./redisguard.yaml if it exists, else program/ with "
                        "staging and production)")  # fmt: skip
    add_stacks(parser, "check only this stack")
    parser.add_argument("--policy-config", metavar="FILE", type=Path,
                        help="--policy-pack-config file for every checked stack (default: "
                        "policies/config/<stack>.json where it exists, else the pack's defaults)")  # fmt: skip
    judged = parser.add_mutually_exclusive_group()
    judged.add_argument("--state", action="store_true",
                        help="judge what each stack has deployed, for any program in any language: the "
                        "gcp:redis/instance:Instance inputs of its state (`pulumi stack export` from "
                        "pulumi.backend_url; needs the pulumi CLI and the backend's credentials, never a "
                        "preview or the stack's passphrase; secret inputs stay encrypted and policies "
                        "reading them are not applicable)")  # fmt: skip
    judged.add_argument("--state-file", metavar="FILE", type=Path, action="append",
                        help="judge the deployed resources of an export file (`pulumi stack export --file "
                        "FILE`), its stack named by its URNs; repeatable; needs no CLI and no config")  # fmt: skip
    parser.add_argument("--format", choices=list(FORMATS), default="table", help="output format (default: %(default)s)")
    parser.set_defaults(func=run_policy_check)


def run_policy_check(args: argparse.Namespace) -> int:
    # The packs start first (launch is light: no gRPC, no Pulumi), then this process imports
    # and the program while they start: each takes about as long as the other.
    from redisguard.policies.launch import launch_stack_packs, launch_state_packs

    if args.config is None and not Path(DEFAULT_CONFIG_FILE).exists():
        config = config_from_mapping({}, base_dir=Path.cwd())
        config_dir = Path.cwd()
    else:
        config = load_config(args.config)
        config_dir = Path(args.config or DEFAULT_CONFIG_FILE).resolve().parent
    if args.state_file and args.stack:
        raise ConfigError("--stack cannot be used with --state-file: an export file names its own stack")
    names = default_stack_names(config, args.stack)
    if args.policy_config is not None and not args.policy_config.is_file():
        raise ConfigError(f"--policy-config {args.policy_config}: file not found")
    # The checkout's policies/ (beside its program or its redisguard.yaml), else the installed pack.
    pack = choose_pack(config.pulumi.work_dir, config_dir)
    print(f"policy-check: {pack.describe()}", file=sys.stderr)
    if args.state or args.state_file:
        deployed = _state_files(args.state_file) if args.state_file else _stack_states(config.pulumi, names)
        launched = launch_state_packs([(s.stack, s.project) for s in deployed if s.error is None], pack.pack_dir)

        from redisguard.policies import check as policy_check

        report = policy_check.judge_deployed(deployed, args.policy_config, pack, launched)
    else:
        stacks = [(name, config.pulumi.stack_file(name)) for name in names]
        launched = launch_stack_packs(stacks, pack.pack_dir)

        from redisguard.policies import check as policy_check

        report = policy_check.judge_stacks(stacks, args.policy_config, pack, launched)

    from rich.console import Console

    if args.format == "json":
        print(policy_check.render_json(report))
    elif args.format == "markdown":
        print(policy_check.render_markdown(report))
    else:
        policy_check.print_table(report, Console(file=sys.stdout, soft_wrap=not sys.stdout.isatty()))
    return report.exit_code


def _deployed(state: StackState, source: str) -> DeployedStack:
    """A stack's state as the pack judges it: its resources' inputs and outputs, nothing of redisguard's."""
    from redisguard.policies.deployed import DeployedStack, JudgedResource

    resources = [JudgedResource(r.type, r.name, r.inputs, r.outputs, r.protect) for r in state.resources]
    projects = {r.project for r in state.resources if r.project}
    return DeployedStack(state.stack, projects.pop() if len(projects) == 1 else "", resources, source)


def _stack_states(settings: PulumiSettings, names: Sequence[str]) -> list[DeployedStack]:
    """Each stack's deployed state, read side by side; a stack that cannot be read is its own error."""
    from redisguard.core.errors import RedisguardError
    from redisguard.core.secrets import scrub
    from redisguard.core.threads import run_on_daemon_threads
    from redisguard.daemon.fleet.state import read_stack_state
    from redisguard.policies.deployed import DeployedStack

    secrets = secret_values([settings.backend_url])

    def read(name: str) -> DeployedStack:
        try:
            return _deployed(read_stack_state(settings, name), "backend")
        except RedisguardError as exc:
            return DeployedStack(name, error=f"cannot read the stack's state: {scrub(str(exc), secrets)}")

    return run_on_daemon_threads([functools.partial(read, name) for name in names], names="policy-check-state")


def _state_files(paths: Sequence[Path]) -> list[DeployedStack]:
    """Each export file's deployed state (ConfigError naming the file when it is not an export)."""
    from redisguard.daemon.fleet.state import read_export_file

    stacks = [_deployed(read_export_file(path), str(path)) for path in paths]
    names = [s.stack for s in stacks]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"--state-file: more than one file holds stack {', '.join(twice)}; check them one at a time")
    return stacks
