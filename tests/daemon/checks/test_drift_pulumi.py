"""The pulumi drift engine through the real Automation API call path up to a stand-in `pulumi`
executable: the refresh it runs, its errors, parallel stacks, and credentials kept out of reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from redisguard.core.errors import PermanentError, TransientError
from redisguard.daemon.checks import drift_pulumi
from redisguard.daemon.checks.drift import run_scan
from redisguard.daemon.checks.ignore import IgnoreRules
from redisguard.daemon.config import PulumiSettings, config_from_mapping
from redisguard.daemon.reports.drift import DriftItem, PropertyDrift
from tests.fixtures.engine_events import BASE, json_outputs_event, with_changes
from tests.fixtures.pulumi_cli import FakePulumi, logged_calls


@pytest.mark.parametrize("version", ["3.210.0", "3.200.0"], ids=["grpc-event-stream", "event-log-file"])
def test_refresh_preview_through_the_automation_api(fake_pulumi: FakePulumi, version: str) -> None:
    live = with_changes(BASE, memorySizeGb=3, authString="[secret]")
    events = [
        json_outputs_event("same", "redis-cache", BASE, BASE, {}),
        json_outputs_event("update", "redis-sidekiq", BASE, live, {"memorySizeGb": "update", "currentLocationId": "update"}),
        json_outputs_event("delete", "redis-sessions", BASE, None, {}),
    ]
    log = fake_pulumi({"staging": {"events": events}}, version=version)
    settings = PulumiSettings(work_dir=fake_pulumi.work_dir, stacks=("staging",), backend_url="file:///tmp/state")

    items = drift_pulumi.refresh_stack("staging", settings, IgnoreRules())

    assert sorted(items, key=lambda i: i.resource) == [
        DriftItem(resource="redis-sessions", kind="deleted"),
        DriftItem(resource="redis-sidekiq", kind="changed", properties=(PropertyDrift(path="memorySizeGb", expected=2, actual=3),)),
    ]
    refresh = [c for c in logged_calls(log) if c.get("args", [])[:1] == ["refresh"]]
    assert len(refresh) == 1
    args = refresh[0]["args"]
    assert args[:2] == ["refresh", "--preview-only"]
    assert args[args.index("--stack") + 1] == "staging"
    assert "--show-secrets" not in args
    assert refresh[0]["cwd"] == str(fake_pulumi.work_dir)
    assert refresh[0]["backend"] == "file:///tmp/state"


def test_locked_stack_is_a_transient_error(fake_pulumi: FakePulumi) -> None:
    fake_pulumi({"staging": {"mode": "locked"}})
    settings = PulumiSettings(work_dir=fake_pulumi.work_dir, stacks=("staging",))
    with pytest.raises(TransientError, match="stack is locked by another update"):
        drift_pulumi.refresh_stack("staging", settings, IgnoreRules())


def test_unknown_stack_is_a_permanent_error(fake_pulumi: FakePulumi) -> None:
    fake_pulumi({})
    settings = PulumiSettings(work_dir=fake_pulumi.work_dir, stacks=("staging",))
    with pytest.raises(PermanentError, match="no stack named 'staging' found"):
        drift_pulumi.refresh_stack("staging", settings, IgnoreRules())


def test_parallel_stacks_report_each_their_own_status(fake_pulumi: FakePulumi) -> None:
    live = with_changes(BASE, memorySizeGb=3)
    fake_pulumi(
        {
            "staging": {"events": [json_outputs_event("update", "redis-sidekiq", BASE, live, {"memorySizeGb": "update"})]},
            "production": {"mode": "locked"},
            "dev": {"events": [json_outputs_event("same", "redis-cache", BASE, BASE, {})]},
        }
    )
    config = config_from_mapping(
        {"pulumi": {"work_dir": str(fake_pulumi.work_dir), "stacks": ["staging", "production", "dev"]}, "parallelism": 3}
    )
    report = run_scan(config, ["staging", "production", "dev"], ["pulumi"])
    status = {s.stack: s.status for s in report.stacks}
    assert status == {"staging": "drift", "production": "error", "dev": "in_sync"}
    assert report.exit_code == 1
    assert "locked" in (report.stacks[1].error or "")


@pytest.mark.parametrize("parallelism", [1, 3])
def test_stacks_run_in_parallel_up_to_the_configured_bound(fake_pulumi: FakePulumi, parallelism: int) -> None:
    stacks = ["a", "b", "c"]
    # Each refresh holds until `parallelism` of them have started: run together they overlap
    # whatever the machine's load; run one at a time (bound 1) they cannot.
    barrier_dir = fake_pulumi.work_dir.parent / "barrier"
    barrier = {"dir": str(barrier_dir), "size": parallelism}
    barrier_dir.mkdir()
    log = fake_pulumi({name: {"events": [], "barrier": barrier} for name in stacks})
    config = config_from_mapping(
        {"pulumi": {"work_dir": str(fake_pulumi.work_dir), "stacks": stacks}, "parallelism": parallelism}
    )
    report = run_scan(config, stacks, ["pulumi"])
    assert [s.status for s in report.stacks] == ["in_sync"] * 3
    runs = [c for c in logged_calls(log) if "refresh" in c]
    events = sorted([(r["start"], 1) for r in runs] + [(r["end"], -1) for r in runs])
    running = most = 0
    for _, delta in events:
        running += delta
        most = max(most, running)
    assert most == parallelism


def test_missing_cli_is_a_one_line_permanent_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no pulumi anywhere
    settings = PulumiSettings(work_dir=tmp_path, stacks=("staging",))
    with pytest.raises(PermanentError) as info:
        drift_pulumi.refresh_stack("staging", settings, IgnoreRules())
    message = str(info.value)
    assert "pulumi CLI was not found on PATH" in message
    assert "\n" not in message


def test_access_token_reaches_the_cli_and_nothing_else(
    fake_pulumi: FakePulumi,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from redisguard.daemon.cli.main import main

    caplog.set_level("DEBUG")
    token = "pul-0123456789abcdef-not-for-logs"
    monkeypatch.setenv("PULUMI_ACCESS_TOKEN", token)
    live = with_changes(BASE, memorySizeGb=3)
    log = fake_pulumi({"staging": {"events": [json_outputs_event("update", "redis-sidekiq", BASE, live, {"memorySizeGb": "update"})]}})
    config = tmp_path / "redisguard.yaml"
    config.write_text(f"pulumi:\n  work_dir: {fake_pulumi.work_dir}\n  stacks: [staging]\n  backend_url: https://api.pulumi.com\n")
    for fmt in ("table", "json", "markdown"):
        code = main(["--log-level", "DEBUG", "drift-report", "--config", str(config), "--engine", "pulumi", "--format", fmt])
        assert code == 2
        captured = capsys.readouterr()
        assert "memorySizeGb" in captured.out
        assert token not in captured.out + captured.err
    assert "effective config" in caplog.text and "'access_token': '[set]'" in caplog.text
    assert token not in caplog.text
    assert {c["token"] for c in logged_calls(log) if "args" in c} == {token}


def test_credentials_a_cli_echoes_never_reach_the_report_or_stderr(
    fake_pulumi: FakePulumi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from redisguard.daemon.cli.main import main

    token, passphrase, password = "pul-SECRETTOKEN123", "correct-horse-battery", "hunter3pw"
    monkeypatch.setenv("PULUMI_ACCESS_TOKEN", token)
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", passphrase)
    fake_pulumi({"staging": {"mode": "leak"}})
    config = tmp_path / "redisguard.yaml"
    config.write_text(
        f"pulumi:\n  work_dir: {fake_pulumi.work_dir}\n  stacks: [staging]\n"
        f"  backend_url: https://user:{password}@api.example.internal\n"
    )
    code = main(["drift-report", "--config", str(config), "--engine", "pulumi", "--format", "json"])
    captured = capsys.readouterr()
    assert code == 1
    [stack] = json.loads(captured.out)["stacks"]
    assert stack["error"] == (
        "pulumi refresh failed: backend https://user:[redacted]@api.example.internal refused token=[redacted] "
        "passphrase=[redacted]"
    )
    for secret in (token, passphrase, password):
        assert secret not in captured.out + captured.err
