"""The `redisguard` parser: every subcommand reaches its handler, and declaring them stays light."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from redisguard.daemon.cli.main import build_parser
from redisguard.daemon.cli.options import Handler
from tests.fixtures.repo import REPO

# Seconds of start-up between them (measured: `redisguard --help` took 2.4-2.9 s while the parser
# imported them, 0.5-0.6 s without).
HEAVY = (
    "google.cloud.redis_v1",
    "google.cloud.monitoring_v3",
    "google.api_core",
    "grpc",
    "pulumi",
    "pulumi_gcp",
    "pulumi_command",
    "prometheus_client",
    "apscheduler",
    "jinja2",
    "ruamel.yaml",
)


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _imported_by(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(__import__('json').dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    modules = set(json.loads(out.stdout))
    return [m for m in HEAVY if m in modules]


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_subcommand_reaches_its_handler(command: str) -> None:
    func = _subcommands()[command].get_default("func")
    # A renamed or moved handler would otherwise show only when a user first runs the command.
    handler = func.resolve() if isinstance(func, Handler) else func
    assert callable(handler), f"{command}: {func!r}"


def test_help_imports_no_cloud_client_engine_or_server_library() -> None:
    assert _imported_by("from redisguard.daemon.cli.main import build_parser; build_parser().format_help()") == []


def test_policy_check_does_not_import_the_drift_engines_or_the_daemon() -> None:
    # It needs gRPC (the pack), not the Google clients or the server.
    imported = _imported_by("import redisguard.daemon.cli.policy")
    assert [m for m in imported if m != "grpc"] == []


def test_policy_check_starts_its_packs_before_importing_grpc() -> None:
    # The pack's start-up is the command's critical path: it begins once the config is read, and
    # gRPC (the engine service, the Analyzer client) loads while the pack starts.
    assert _imported_by("import redisguard.daemon.cli.main, redisguard.policies.launch") == []


def test_policy_check_handler_imports_no_cloud_client_or_server() -> None:
    # What the policy-check handler imports when it runs: the pack and the program's plain description
    # of its resources, never the drift engines (nor the program's SDKs: it does not run the program).
    # Nor Pulumi: the pack's process imports it, this one speaks the protocol (policies/protocol.py).
    imported = _imported_by("import redisguard.daemon.cli.policy, redisguard.policies.check, redisguard.program.resources")
    assert [m for m in imported if m != "grpc"] == []


def test_check_config_runs_without_a_cloud_client_engine_or_server_library(tmp_path: Path) -> None:
    config = tmp_path / "redisguard.yaml"
    config.write_text(f"pulumi:\n  work_dir: {REPO / 'program'}\n  stacks: [staging]\n")

    run = (
        "import contextlib, io\nfrom redisguard.daemon.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main(['check-config', '--config', {str(config)!r}]) == 0"
    )
    assert _imported_by(run) == []
