"""Who changed a drifted instance: the emulator's Admin Activity audit log read by the live engine, shown in every rendering."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.cloud import redis_v1
from google.protobuf import field_mask_pb2

from redisguard.daemon.checks.audit import LAST_IN_SYNC
from redisguard.daemon.cli.main import main
from redisguard.daemon.service.results import Results
from redisguard.daemon.service.webconfig import WebConfig
from tests.fixtures.emulator import EmulatorHandle, caller
from tests.fixtures.http_server import serve
from tests.fixtures.repo import REPO, STAGING

pytestmark = pytest.mark.slow

ALICE = "alice@example.com"
GCLOUD = "google-cloud-sdk gcloud/470.0.0 command/gcloud.redis.instances.update invocation-id/4f1c environment/None"
PULUMI_SA = "pulumi-deployer@redisguard-staging.iam.gserviceaccount.com"
PULUMI_AGENT = "Pulumi/3.0 (https://www.pulumi.com) Terraform-Plugin-SDK/2.33.0 terraform-provider-google/6.8.0"
UPDATE = "google.cloud.redis.v1.CloudRedis.UpdateInstance"


@pytest.fixture
def fresh_memory() -> Iterator[None]:
    """Each test's instances are new to this process: none was seen in sync by another test."""
    LAST_IN_SYNC._seen.clear()
    yield
    LAST_IN_SYNC._seen.clear()


def write_config(tmp_path: Path, emulator: EmulatorHandle) -> Path:
    path = tmp_path / "redisguard.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "pulumi": {"work_dir": str(REPO / "program"), "stacks": ["staging"]},
                "gcp": {
                    "redis_endpoint": emulator.redis_endpoint,
                    "monitoring_endpoint": emulator.monitoring_endpoint,
                    "logging_endpoint": emulator.monitoring_endpoint,
                    "request_timeout_seconds": 5,
                },
                "audit": {"pulumi_principals": [PULUMI_SA]},
            }
        )
    )
    return path


def report(config: Path, tmp_path: Path, fmt: str = "json") -> tuple[int, str]:
    out = tmp_path / f"drift.{fmt}"
    code = main(["drift-report", "--config", str(config), "--engine", "live", "--format", fmt, "--output", str(out)])
    return code, out.read_text()


def update(emulator: EmulatorHandle, instance_id: str, memory_gb: int, who: str, agent: str) -> None:
    emulator.redis_client().update_instance(
        update_mask=field_mask_pb2.FieldMask(paths=["memory_size_gb"]),
        instance=redis_v1.Instance(name=emulator.instance_name(instance_id), memory_size_gb=memory_gb),
        metadata=caller(who, agent),
    ).result(timeout=60)


def items_of(text: str) -> dict[str, dict[str, Any]]:
    [stack] = json.loads(text)["stacks"]
    return {item["resource"]: item for item in stack["items"]}


def test_an_out_of_band_change_names_who_when_how_and_which_fields_in_every_rendering(
    emulator_factory: Callable[..., EmulatorHandle], tmp_path: Path, fresh_memory: None
) -> None:
    emulator = emulator_factory(fleet=STAGING, processes=False)
    config = write_config(tmp_path, emulator)
    before = datetime.now(UTC).replace(microsecond=0)
    update(emulator, "redis-sidekiq", 3, ALICE, GCLOUD)
    update(emulator, "redis-sessions", 5, PULUMI_SA, PULUMI_AGENT)
    emulator.reset_counts()

    code, text = report(config, tmp_path)
    assert code == 2
    # One filtered, paged call for the project, however many of its instances drifted.
    assert emulator.request_counts()["logging"] == {"ListLogEntries": 1}
    items = items_of(text)
    sidekiq = items["redis-sidekiq"]
    assert sidekiq["instance"] == emulator.instance_name("redis-sidekiq")
    [change] = sidekiq["cause"]["changes"]
    assert {k: change[k] for k in ("method", "principal", "via", "fields", "by_pulumi", "user_agent")} == {
        "method": UPDATE,
        "principal": ALICE,
        "via": "gcloud",
        "fields": ["memorySizeGb"],
        "by_pulumi": False,
        "user_agent": GCLOUD,
    }
    assert before <= datetime.fromisoformat(change["at"]) <= datetime.now(UTC)
    assert sidekiq["cause"]["unknown"] is None
    [by_pulumi] = items["redis-sessions"]["cause"]["changes"]
    assert (by_pulumi["principal"], by_pulumi["via"], by_pulumi["by_pulumi"]) == (PULUMI_SA, "pulumi", True)

    _, markdown = report(config, tmp_path, "markdown")
    assert "**Who changed it**" in markdown
    assert f"UpdateInstance [memorySizeGb] by {ALICE} via gcloud" in markdown
    assert f"by {PULUMI_SA} (the identity that runs pulumi up) via pulumi" in markdown
    _, table = report(config, tmp_path, "table")
    assert "who changed it" in table and ALICE in table and "gcloud" in table

    # The daemon's pages show it; its metrics never name a person.
    from redisguard.daemon.checks.drift import run_scan
    from redisguard.daemon.config import load_config

    scan = run_scan(load_config(config), ["staging"], ["live"])
    results = Results()
    served = serve(results, WebConfig.none(), [])
    try:
        results.publish("drift_live", "staging", scan.stacks[0])
        assert ALICE in served.get("/report")[1] and ALICE in served.get("/report?format=markdown")[1]
        page = served.get("/")[1]
        assert "who changed it (audit log)" in page and ALICE in page and "memorySizeGb" in page
        status, metrics, _ = served.get("/metrics")
        assert status == 200 and "redisguard_drifted_resource{" in metrics
        assert ALICE not in metrics and PULUMI_SA not in metrics and "@" not in metrics
    finally:
        served.server.shutdown()
        served.server.server_close()


def test_a_project_whose_log_is_refused_keeps_its_drift_with_the_cause_unknown(
    emulator_factory: Callable[..., EmulatorHandle], tmp_path: Path, fresh_memory: None
) -> None:
    emulator = emulator_factory(fleet=STAGING, processes=False)
    config = write_config(tmp_path, emulator)
    update(emulator, "redis-sidekiq", 3, ALICE, GCLOUD)
    emulator.inject_fault("logging", "403")

    code, text = report(config, tmp_path)
    assert code == 2  # the drift, not an error: the cause is an extra
    [stack] = json.loads(text)["stacks"]
    assert (stack["status"], stack["error"]) == ("drift", None)
    cause = items_of(text)["redis-sidekiq"]["cause"]
    assert cause["changes"] == []
    assert "PermissionDenied" in cause["unknown"] and "logging.logEntries.list" in cause["unknown"]
    assert "roles/logging.viewer" in cause["unknown"]
    emulator.inject_fault("logging", "403")  # each run reads the log once: one fault per run
    _, markdown = report(config, tmp_path, "markdown")
    assert "unknown: list_log_entries projects/redisguard-staging: PermissionDenied" in markdown
