"""`redisguard drift-report` as a user runs it: its arguments, config errors, output and interrupts, each one clear line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from redisguard.daemon.cli.main import main
from tests.fixtures.cli import run_cli
from tests.fixtures.processes import wait_for
from tests.fixtures.repo import REPO


def test_missing_pulumi_cli_exits_1_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "redisguard.yaml"
    config.write_text(f"pulumi:\n  work_dir: {REPO / 'program'}\n  stacks: [staging]\n")
    env = {**os.environ, "PATH": str(tmp_path)}  # no pulumi on PATH
    result = run_cli("drift-report", "--config", str(config), "--engine", "pulumi", "--format", "json", env=env)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert errors == [
        "redisguard drift-report: error: stack staging (pulumi): the pulumi CLI was not found on PATH; "
        "install it (https://www.pulumi.com/docs/install/) or use --engine live"
    ]
    report = json.loads(result.stdout)
    assert report["stacks"][0]["status"] == "error"


def test_unknown_stack_argument_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["drift-report", "--config", str(REPO / "redisguard.yaml"), "--stack", "qa", "--engine", "live"])
    assert code == 1
    assert "--stack qa: not in pulumi.stacks; allowed: staging, production" in capsys.readouterr().err


def test_report_goes_to_the_output_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "redisguard.yaml"
    # An endpoint nobody listens on: the live check fails, and the report still lands in the file.
    config.write_text(
        f"pulumi:\n  work_dir: {REPO / 'program'}\n  stacks: [staging]\n"
        "gcp:\n  redis_endpoint: http://127.0.0.1:9\n  request_timeout_seconds: 2\n"
    )
    out = tmp_path / "drift.md"
    code = main(["drift-report", "--config", str(config), "--engine", "live", "--format", "markdown", "--output", str(out)])
    assert code == 1
    text = out.read_text()
    assert text.startswith("## redisguard drift report")
    assert "cannot connect to http://127.0.0.1:9" in text
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "terraform"], "argument --engine: invalid choice: 'terraform' (choose from 'pulumi', 'live', 'all')"),
        (["--format", "xml"], "argument --format: invalid choice: 'xml' (choose from 'table', 'json', 'markdown')"),
    ],
)
def test_a_bad_argument_exits_1_not_2_with_one_line_naming_the_allowed_values(args: list[str], message: str) -> None:
    # 2 means "drift found" to CI; argparse's own usage-error status would read as drift.
    result = run_cli("drift-report", "--config", str(REPO / "redisguard.yaml"), *args)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"redisguard drift-report: error: {message} (see redisguard drift-report --help)"]
    assert result.stdout == ""


def test_invalid_yaml_is_one_line_with_its_position(tmp_path: Path) -> None:
    config = tmp_path / "redisguard.yaml"
    # The unclosed `[` is on line 3; the parser only notices at line 4. The line to fix comes first.
    config.write_text("pulumi:\n  work_dir: program\n  stacks: [staging\n")
    result = run_cli("drift-report", "--config", str(config))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"redisguard drift-report: error: {config}: line 3, column 11: in the flow sequence that starts here: "
        "did not find expected ',' or ']' (noticed at line 4, column 1)"
    ]


def test_a_missing_config_file_is_one_line(tmp_path: Path) -> None:
    result = run_cli("drift-report", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"redisguard drift-report: error: {tmp_path / 'nope.yaml'}: config file not found"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_a_hung_api_call_exits_at_once_with_one_line(tmp_path: Path, sig: signal.Signals) -> None:
    # An endpoint that accepts the connection and never answers: the listing would wait for
    # the whole request timeout (120 s here) if an interrupt waited for the running checks.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    config = tmp_path / "redisguard.yaml"
    config.write_text(
        f"pulumi:\n  work_dir: {REPO / 'program'}\n  stacks: [staging]\n"
        f"gcp:\n  redis_endpoint: http://127.0.0.1:{listener.getsockname()[1]}\n  request_timeout_seconds: 120\n"
    )
    scan = subprocess.Popen(
        [sys.executable, "-m", "redisguard.daemon.cli", "drift-report", "--config", str(config), "--engine", "live", "--format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: accepted, timeout=30, what="the listing request")
        scan.send_signal(sig)
        stdout, stderr = scan.communicate(timeout=15)  # a hang guard, far below the 120 s request timeout
    finally:
        scan.kill()
        listener.close()
        for conn in accepted:
            conn.close()
    assert scan.returncode == 128 + sig
    assert stdout == ""
    assert stderr.splitlines() == [
        f"redisguard drift-report: interrupted by {sig.name}; running checks were stopped, no report written"
    ]


@pytest.mark.parametrize(
    ("args", "unrecognized"),
    [
        (["drift-report", "--engin", "live"], "--engin live"),
        (["drift-report", "--form", "json"], "--form json"),
        (["check-config", "--conf", "redisguard.yaml"], "--conf redisguard.yaml"),
        (["demo", "--onc"], "--onc"),
        (["emulator", "--redis-api-p", "0"], "--redis-api-p 0"),
    ],
)
def test_abbreviated_options_are_rejected(args: list[str], unrecognized: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"redisguard: error: unrecognized arguments: {unrecognized} (see redisguard --help)"]


def test_output_dash_is_stdout_not_a_file_named_dash(tmp_path: Path) -> None:
    config = tmp_path / "redisguard.yaml"
    config.write_text(
        f"pulumi:\n  work_dir: {REPO / 'program'}\n  stacks: [staging]\n"
        "gcp:\n  redis_endpoint: http://127.0.0.1:9\n  request_timeout_seconds: 2\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "redisguard.daemon.cli", "drift-report", "--config", str(config), "--engine", "live",
         "--format", "json", "--output", "-"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    assert json.loads(result.stdout)["stacks"][0]["stack"] == "staging"
    assert not (tmp_path / "-").exists()


def test_a_misspelt_stack_gets_did_you_mean(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["drift-report", "--config", str(REPO / "redisguard.yaml"), "--stack", "stagin", "--engine", "live"])
    assert code == 1
    assert capsys.readouterr().err.strip().endswith(
        "--stack stagin: not in pulumi.stacks; allowed: staging, production; did you mean staging?"
    )


def test_log_level_is_accepted_after_the_subcommand(tmp_path: Path) -> None:
    config = tmp_path / "redisguard.yaml"
    config.write_text(f"pulumi:\n  work_dir: {REPO / 'program'}\n  stacks: [staging]\n")
    result = run_cli("check-config", "--config", str(config), "--log-level", "DEBUG")
    assert result.returncode == 0, result.stderr
    result = run_cli("drift-report", "--log-level", "DEBUG", "--config", str(config), "--engine", "pulumi",
                     env={**os.environ, "PATH": str(tmp_path)})  # fmt: skip
    assert "DEBUG redisguard.daemon.cli.reports effective config" in result.stderr


def test_markdown_and_json_show_paths_relative_to_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "program").mkdir()
    config = tmp_path / "redisguard.yaml"
    config.write_text("pulumi:\n  work_dir: program\n  stacks: [qa]\n")
    for fmt in ("markdown", "json"):
        out = tmp_path / f"drift.{fmt}"
        assert main(["drift-report", "--config", str(config), "--engine", "live", "--format", fmt, "--output", str(out)]) == 1
        text = out.read_text()
        assert "'qa' has no stack file program/Pulumi.qa.yaml" in text
        assert str(tmp_path) not in text
