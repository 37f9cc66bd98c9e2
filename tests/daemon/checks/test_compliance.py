"""The compliance check: the real policy pack over the Analyzer protocol judges what the emulator runs, through compliance-report and the daemon."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.cloud import redis_v1
from google.protobuf import field_mask_pb2

from redisguard.daemon.checks.compliance import run_compliance_check
from redisguard.daemon.config import config_from_mapping
from redisguard.daemon.reports.compliance import ComplianceReport, InstanceCompliance, render
from tests.fixtures.daemon import DaemonHandle, daemon_config
from tests.fixtures.emulator import EmulatorHandle, start_emulator
from tests.fixtures.repo import PRODUCTION, REPO

pytestmark = pytest.mark.slow

PERSISTENCE = "memorystore-persistence-in-production"
CONSOLE_PROJECT = "console-made-project"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    # No redis-servers: the check reads only the admin API.
    handle = start_emulator(tmp_path_factory.mktemp("compliance"), fleet=PRODUCTION, processes=False)
    yield handle
    handle.stop()


def _config(emulator: EmulatorHandle, **extra: Any) -> dict[str, Any]:
    return {
        "pulumi": {"work_dir": str(REPO / "program"), "stacks": ["production"]},
        "gcp": {"redis_endpoint": emulator.redis_endpoint, "monitoring_endpoint": emulator.monitoring_endpoint, **extra},
    }


def _compliance_report(tmp_path: Path, config: dict[str, Any], *args: str) -> tuple[int, dict[str, Any], str]:
    config_file = tmp_path / "redisguard.yaml"
    config_file.write_text(yaml.safe_dump(config))
    cli = [sys.executable, "-m", "redisguard.daemon.cli", "compliance-report", "--config", str(config_file), *args]
    result = subprocess.run(cli, capture_output=True, text=True, timeout=120, cwd=REPO)
    return result.returncode, json.loads(result.stdout) if "--format" in args else {}, result.stdout + result.stderr


def _set_persistence(emulator: EmulatorHandle, instance_id: str, persistence: redis_v1.PersistenceConfig) -> redis_v1.PersistenceConfig:
    """An out-of-band change, as the console makes it (the admin API's UpdateInstance); returns what it replaced."""
    client = emulator.redis_client()
    instance = client.get_instance(name=emulator.instance_name(instance_id))
    before = redis_v1.PersistenceConfig(persistence_mode=instance.persistence_config.persistence_mode,
                                        rdb_snapshot_period=instance.persistence_config.rdb_snapshot_period)  # fmt: skip
    instance.persistence_config = persistence
    mask = field_mask_pb2.FieldMask(paths=["persistence_config"])
    client.update_instance(update_mask=mask, instance=instance).result(timeout=60)
    return before


@pytest.fixture
def persistence_off(emulator: EmulatorHandle) -> Iterator[str]:
    before = _set_persistence(emulator, "redis-sessions", redis_v1.PersistenceConfig(persistence_mode="DISABLED"))
    yield "redis-sessions"
    _set_persistence(emulator, "redis-sessions", before)


def test_persistence_turned_off_out_of_band_in_production_is_a_mandatory_violation(
    emulator: EmulatorHandle, tmp_path: Path, persistence_off: str
) -> None:
    started = time.monotonic()
    code, report, output = _compliance_report(tmp_path, _config(emulator), "--format", "json")
    print(f"compliance-report over the production fleet: {time.monotonic() - started:.2f}s, exit {code}")
    assert code == 2, output
    (project,) = report["projects"]
    assert project["status"] == "violation"
    findings = [(i["instance_id"], f) for i in project["instances"] for f in i["findings"]]
    mandatory = [(name, f) for name, f in findings if f["level"] == "mandatory"]
    assert [(name, f["policy"]) for name, f in mandatory] == [(persistence_off, PERSISTENCE)]
    message = mandatory[0][1]["message"]
    assert "persistenceMode must be RDB in production (stack 'production' matches 'production'); found 'DISABLED'" in message
    sessions = next(i for i in project["instances"] if i["instance_id"] == persistence_off)
    assert sessions["stack"] == "production" and sessions["production"] is True
    assert sessions["policy_config"].endswith("policies/config/production.json")
    assert report["summary"]["mandatory_violations"] == 1
    assert report["pack"]["starts"] == 1
    # Who turned it off: the newest change in the project's Admin Activity audit log (the emulator
    # writes one per call it serves), with the fields the request changed.
    (change, *_) = sessions["cause"]["changes"]
    assert change["method"].endswith("CloudRedis.UpdateInstance") and change["fields"] == ["persistenceConfig"]
    assert change["principal"]
    assert all(i["cause"] is None for i in project["instances"] if not i["findings"])

    # The table and Markdown say the same, with the pack's message.
    code, _, table = _compliance_report(tmp_path, _config(emulator))
    assert code == 2
    assert "violation" in table and PERSISTENCE in table and "found 'DISABLED'" in table
    assert "Who changed it (Admin Activity audit log)" in table and "UpdateInstance [persistenceConfig]" in table


def test_the_production_fleet_in_sync_complies(emulator: EmulatorHandle, tmp_path: Path) -> None:
    """What `pulumi up` deployed passes the pack live as it passed it before the change: no false finding."""
    code, report, output = _compliance_report(tmp_path, _config(emulator), "--format", "json")
    assert code == 0, output
    (project,) = report["projects"]
    assert project["status"] == "compliant"
    assert [f for i in project["instances"] for f in i["findings"]] == []
    assert {i["instance_id"] for i in project["instances"]} == {"redis-cache", "redis-ratelimit", "redis-sessions", "redis-sidekiq"}


@pytest.fixture
def console_instance(emulator: EmulatorHandle) -> Iterator[str]:
    """An instance nobody declares, in a project only `gcp.projects` watches: AUTH off, no persistence,
    labelled production."""
    client = emulator.redis_client()
    parent = f"projects/{CONSOLE_PROJECT}/locations/europe-west1"
    instance = redis_v1.Instance(tier="BASIC", memory_size_gb=1, labels={"env": "production"})
    client.create_instance(parent=parent, instance_id="hand-made", instance=instance).result(timeout=60)
    yield "hand-made"
    client.delete_instance(name=f"{parent}/instances/hand-made").result(timeout=60)


def _by_id(report: ComplianceReport) -> dict[str, InstanceCompliance]:
    return {i.instance_id: i for p in report.projects for i in p.instances}


def test_an_unmanaged_instance_is_judged_with_the_pack_defaults_and_one_pack_serves_the_run(
    emulator: EmulatorHandle, console_instance: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = config_from_mapping({**_config(emulator, projects=[CONSOLE_PROJECT]), "parallelism": 2})
    with caplog.at_level(logging.INFO, logger="redisguard.daemon.checks.compliance"):
        report = run_compliance_check(config)
    assert [p.project_id for p in report.projects] == [CONSOLE_PROJECT, "redisguard-production"]
    assert all(p.status != "error" for p in report.projects), [p.error for p in report.projects]
    # One pack process judged both projects (five instances): its start paid once.
    assert report.pack is not None and report.pack.starts == 1
    assert len([r for r in caplog.records if "policy pack stopped" in r.getMessage()]) == 1

    hand_made = _by_id(report)[console_instance]
    assert (hand_made.stack, hand_made.ownership, hand_made.policy_config) == ("", "unmanaged", None)
    assert hand_made.production  # by its label, as the pack decides
    levels = {f.policy: f.level for f in hand_made.findings}
    assert levels["memorystore-auth-required"] == "mandatory"
    assert levels[PERSISTENCE] == "mandatory"
    assert "label env=production" in next(f.message for f in hand_made.findings if f.policy == PERSISTENCE)
    # The pack's default level, not production.json's (which makes CMEK mandatory).
    assert levels["memorystore-cmek-in-production"] == "advisory"
    assert report.exit_code == 2
    assert "(unmanaged)" in render(report, "table") and "(unmanaged)" in render(report, "markdown")


def test_the_daemon_exports_the_violation_and_report_shows_it(
    emulator: EmulatorHandle, persistence_off: str, daemon_factory: Callable[..., DaemonHandle]
) -> None:
    daemon = daemon_factory(lambda port: daemon_config(
        emulator, port, stacks=("production",), schedules={"drift_live": "off", "compliance": "2s"}
    ))  # fmt: skip
    where = {"project_id": "redisguard-production", "region": "europe-west1", "instance_id": persistence_off}
    daemon.wait_value("redisguard_policy_violation", 1, timeout=60, **where, stack="production",
                      policy=PERSISTENCE, level="mandatory", production="true")  # fmt: skip
    assert daemon.value("redisguard_policy_violations", project_id="redisguard-production", level="mandatory") == 1
    assert daemon.value("redisguard_policy_violations", project_id="redisguard-production", level="advisory") == 0
    status, body = daemon.get("/report")
    assert status == 200
    compliance = json.loads(body)["compliance"]
    assert compliance["exit_code"] == 2 and compliance["summary"]["mandatory_violations"] == 1
    (violating,) = [i for p in compliance["projects"] for i in p["instances"] if i["findings"]]
    assert [c["fields"] for c in violating["cause"]["changes"]][:1] == [["persistenceConfig"]]
    status, page = daemon.get("/")
    assert status == 200 and f'data-instance="{persistence_off}" data-level="mandatory" data-policy="{PERSISTENCE}"' in page
    # Who changed it, beside the finding; never in a metric.
    assert f'<p class="cause" data-instance="{persistence_off}">' in page and "UpdateInstance [persistenceConfig]" in page
    assert "@" not in daemon.get("/metrics")[1]
