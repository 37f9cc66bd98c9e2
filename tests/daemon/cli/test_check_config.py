"""`redisguard check-config` as a user runs it: the effective config, or every problem at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from redisguard.daemon.cli.main import main
from tests.fixtures.repo import REPO


def test_check_config_accepts_the_repository_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(REPO / "redisguard.yaml")]) == 0
    out = capsys.readouterr().out
    assert "redisguard.yaml: valid" in out
    lines = out.splitlines()
    # Each stack's source, why it was chosen, and what it declares.
    assert "    stack staging                   config (auto: Pulumi.staging.yaml has redis-fleet:redis): redisguard-staging/europe-west1, 3 clusters" in lines
    assert "    stack production                config (auto: Pulumi.production.yaml has redis-fleet:redis): redisguard-production/europe-west1, 4 clusters" in lines
    assert "  gcp.monitoring_endpoint           127.0.0.1:8471" in out.splitlines()
    # Every effective key, the defaults too, each on its own line.
    assert "  gcp.request_timeout_seconds       30" in out.splitlines()
    from redisguard.daemon.config import RedisguardConfig

    shown = {line.split()[0] for line in out.splitlines()[1:]}
    for section, field in RedisguardConfig.model_fields.items():
        model = field.annotation
        keys = [f"{section}.{k}" for k in model.model_fields] if isinstance(model, type) and hasattr(model, "model_fields") else [section]
        assert set(keys) <= shown, set(keys) - shown


def test_check_config_lists_every_problem_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "redisguard.yaml"
    config.write_text("parallelism: -1\npulumi:\n  stacks: [staging]\n  work_dirr: program\n")
    assert main(["check-config", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"redisguard check-config: error: {config}: 2 problems in config")
    assert "parallelism: -1 is out of range; allowed: 1 to 64" in err
    assert "pulumi.work_dirr: unknown key" in err
    assert "Traceback" not in err


def test_check_config_names_a_missing_stack_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "redisguard.yaml"
    config.write_text(f"pulumi:\n  work_dir: {REPO / 'program'}\n  stacks: [staging, qa]\n")
    assert main(["check-config", "--config", str(config)]) == 1
    assert f"'qa' has no stack file {REPO / 'program' / 'Pulumi.qa.yaml'}" in capsys.readouterr().err


def test_check_config_of_an_empty_file_lists_each_missing_stack_file_under_one_header(tmp_path: Path) -> None:
    (tmp_path / "redisguard.yaml").write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "redisguard.daemon.cli", "check-config"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "redisguard check-config: error: redisguard.yaml: 2 problems in the stacks it names"
    # With no stack file, `pulumi.source: auto` reads the stack's deployed state instead; the
    # message says both, so a mistyped stack name or work_dir is still the first thing seen.
    for line, stack in zip(lines[1:], ("staging", "production"), strict=True):
        assert line.startswith(
            f"  pulumi.stacks: {stack!r} has no stack file {tmp_path / 'program' / f'Pulumi.{stack}.yaml'}, "
            "so its deployed state was read (pulumi.source auto) and that failed: "
        )

def test_check_config_warns_that_drift_pulumi_will_fail_without_pulumi_on_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Valid (exit 0: the daemon may run elsewhere), but what will fail and why is said."""
    config = tmp_path / "redisguard.yaml"
    config.write_text(f"pulumi:\n  work_dir: {REPO / 'program'}\n  stacks: [staging]\n")
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert main(["check-config", "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{config}: valid (1 warning on stderr)\n")
    assert err == (
        "redisguard check-config: warning: schedules.drift_pulumi is 1h but no `pulumi` is on PATH: every "
        'drift_pulumi run will fail ("the pulumi CLI was not found on PATH"; redisguard_check_up 0, /healthz 503). '
        "Install the Pulumi CLI where the daemon runs, or set schedules.drift_pulumi: off "
        "(REDISGUARD_SCHEDULES__DRIFT_PULUMI=off)\n"
    )

    monkeypatch.setenv("REDISGUARD_SCHEDULES__DRIFT_PULUMI", "off")
    assert main(["check-config", "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{config}: valid\n") and err == ""

    monkeypatch.delenv("REDISGUARD_SCHEDULES__DRIFT_PULUMI")
    pulumi = empty / "pulumi"
    pulumi.write_text("#!/bin/sh\necho v3.0.0\n")
    pulumi.chmod(0o755)
    assert main(["check-config", "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{config}: valid\n") and err == ""


def test_a_reader_that_stops_early_gets_no_traceback() -> None:
    """`redisguard check-config | head -1`: the pipe closes under the command; it ends quietly with
    SIGPIPE's status (141). `true` closes it before the command writes a byte, every time."""
    result = subprocess.run(
        f"{sys.executable} -m redisguard.daemon.cli check-config --config {REPO / 'redisguard.yaml'} | true; exit ${{PIPESTATUS[0]}}",
        shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
    assert result.returncode == 141


def test_check_config_shows_this_hosts_shard_and_which_shard_checks_each_stack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With several daemons, the shard the daemon would take here and each stack's shard; `auto`
    that this host cannot resolve (a laptop, not a pod) is a warning, not an error."""
    from redisguard.daemon.sharding import shard_of

    config = tmp_path / "redisguard.yaml"
    body = f"pulumi:\n  work_dir: {REPO / 'program'}\n  stacks: [staging, production]\nschedules:\n  drift_pulumi: 'off'\n"
    config.write_text(body + "sharding:\n  shard: 1\n  total_shards: 2\n")
    assert main(["check-config", "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "    resolved                        shard 1 of 2: checks the stacks and projects that hash to it" in out.splitlines()
    for stack in ("staging", "production"):
        (row,) = [line for line in out.splitlines() if line.startswith(f"    stack {stack} ")]
        owner = shard_of(stack, 2)
        assert row.endswith("(drift checked by this shard, 1)" if owner == 1 else f"(drift checked by shard {owner})")

    config.write_text(body + "sharding:\n  shard: auto\n  total_shards: 2\n")
    monkeypatch.setattr("socket.gethostname", lambda: "laptop")
    assert main(["check-config", "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{config}: valid (1 warning on stderr)\n")
    assert err == (
        "redisguard check-config: warning: sharding.shard (--shard) is auto but the hostname 'laptop' does not end "
        "in -N (a StatefulSet pod's ordinal): set sharding.pod, or a number from 0 to total_shards - 1\n"
    )
    assert "    resolved                        auto of 2: not resolved here" in out.splitlines()
    assert f"(drift checked by shard {shard_of('staging', 2)})" in out

    monkeypatch.setattr("socket.gethostname", lambda: "redisguard-1")
    assert main(["check-config", "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "    resolved                        shard 1 of 2 (auto: from redisguard-1): checks the stacks and projects that hash to it" in out.splitlines()

    config.write_text(body)
    assert main(["check-config", "--config", str(config)]) == 0
    out, _ = capsys.readouterr()
    assert "    resolved                        none: this daemon checks every stack and project" in out.splitlines()
    assert "drift checked by" not in out
