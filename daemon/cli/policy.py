"""`redisguard policy-check`: the configured stacks through the policy pack (policies/check.py).

Imports the program, the pack and the config only, never the drift engines' Google clients or
Automation API: pre-commit runs it on every commit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from redisguard.core.errors import ConfigError
from redisguard.daemon.cli.options import Subcommands, add_stacks
from redisguard.daemon.config import DEFAULT_CONFIG_FILE, config_from_mapping, default_stack_names, load_config
from redisguard.daemon.reports.drift import FORMATS
from redisguard.policies.pack_config import choose_pack

POLICY_EXIT_CODES_HELP = (
    "exit status: 0 no mandatory violation, 2 a mandatory violation (the preview would be blocked), "
    "1 a stack could not be checked (an error wins over a violation)"
)


def register(sub: Subcommands) -> None:
    """`policy-check`: the pack (policies/check.py) over the program's resources under the SDK's mocks."""
    parser = sub.add_parser(
        "policy-check",
        help="run the policy pack on each stack's resources, without a cloud or a Pulumi CLI",
        description="Build each stack's resources from the program under the Pulumi SDK's mocks and have "
        "the policy pack judge them as `pulumi preview --policy-pack` does (the pack started as "
        "Pulumi's Python host starts it, over the Analyzer protocol). For pre-commit and CI before "
        "any preview. " + POLICY_EXIT_CODES_HELP + ".",
    )
    parser.add_argument("--config", metavar="FILE", help="redisguard config file for pulumi.work_dir and "
                        "pulumi.stacks (default: ./redisguard.yaml if it exists, else program/ with "
                        "staging and production)")  # fmt: skip
    add_stacks(parser, "check only this stack")
    parser.add_argument("--policy-config", metavar="FILE", type=Path,
                        help="--policy-pack-config file for every checked stack (default: "
                        "policies/config/<stack>.json where it exists, else the pack's defaults)")  # fmt: skip
    parser.add_argument("--format", choices=list(FORMATS), default="table", help="output format (default: %(default)s)")
    parser.set_defaults(func=run_policy_check)


def run_policy_check(args: argparse.Namespace) -> int:
    # The packs start first (launch is light: gRPC, no Pulumi), then this process imports Pulumi
    # and the program while they start: each takes about as long as the other.
    from redisguard.policies.launch import launch_stack_packs

    if args.config is None and not Path(DEFAULT_CONFIG_FILE).exists():
        config = config_from_mapping({}, base_dir=Path.cwd())
        config_dir = Path.cwd()
    else:
        config = load_config(args.config)
        config_dir = Path(args.config or DEFAULT_CONFIG_FILE).resolve().parent
    stacks = [(name, config.pulumi.stack_file(name)) for name in default_stack_names(config, args.stack)]
    if args.policy_config is not None and not args.policy_config.is_file():
        raise ConfigError(f"--policy-config {args.policy_config}: file not found")
    # The checkout's policies/ (beside its program or its redisguard.yaml), else the installed pack.
    pack = choose_pack(config.pulumi.work_dir, config_dir)
    print(f"policy-check: {pack.describe()}", file=sys.stderr)
    launched = launch_stack_packs(stacks, pack.pack_dir)

    from rich.console import Console

    from redisguard.policies import check as policy_check

    with policy_check.closed_event_loop():
        report = policy_check.judge_stacks(stacks, args.policy_config, pack, launched)
    if args.format == "json":
        print(policy_check.render_json(report))
    elif args.format == "markdown":
        print(policy_check.render_markdown(report))
    else:
        policy_check.print_table(report, Console(file=sys.stdout, soft_wrap=not sys.stdout.isatty()))
    return report.exit_code
