"""`redisguard policy-check`: the configured stacks through the policy pack (policies/check.py).

Apart from daemon/cli/reports.py so that the command imports the program, the pack and the config
only, not the drift engines' Google clients and Automation API.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from redisguard.core.errors import ConfigError
from redisguard.daemon.config import DEFAULT_CONFIG_FILE, config_from_mapping, default_stack_names, load_config
from redisguard.policies import check as policy_check


def run_policy_check(args: argparse.Namespace) -> int:
    if args.config is None and not Path(DEFAULT_CONFIG_FILE).exists():
        config = config_from_mapping({}, base_dir=Path.cwd())
    else:
        config = load_config(args.config)
    stacks = default_stack_names(config, args.stack)
    if args.policy_config is not None and not args.policy_config.is_file():
        raise ConfigError(f"--policy-config {args.policy_config}: file not found")
    report = policy_check.run_policy_check([(name, config.pulumi.stack_file(name)) for name in stacks], args.policy_config)
    if args.format == "json":
        print(policy_check.render_json(report))
    elif args.format == "markdown":
        print(policy_check.render_markdown(report))
    else:
        policy_check.print_table(report, Console(file=sys.stdout, soft_wrap=not sys.stdout.isatty()))
    return report.exit_code
