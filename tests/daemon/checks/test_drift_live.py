"""The live engine end to end: the emulator (real redis-server instances) changed out-of-band with the official client, then `redisguard drift-report`."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.cloud import redis_v1
from google.protobuf import field_mask_pb2

from redisguard.daemon.checks.drift import run_scan
from redisguard.daemon.cli.main import main
from redisguard.daemon.config import config_from_mapping
from tests.fixtures.emulator import EmulatorHandle
from tests.fixtures.repo import REPO, STAGING
from tests.fixtures.wire import INSTANCE_TYPE

OPERATION_TIMEOUT = 60

pytestmark = pytest.mark.slow


def write_config(tmp_path: Path, emulator: EmulatorHandle, work_dir: Path, stacks: list[str], **gcp: Any) -> Path:
    path = tmp_path / "redisguard.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "pulumi": {"work_dir": str(work_dir), "stacks": stacks},
                "gcp": {"redis_endpoint": emulator.redis_endpoint, "monitoring_endpoint": emulator.monitoring_endpoint, **gcp},
            }
        )
    )
    return path


def drift_json(config: Path, tmp_path: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    out = tmp_path / "drift.json"
    code = main(["drift-report", "--config", str(config), "--engine", "live", "--format", "json", "--output", str(out), *extra])
    return code, json.loads(out.read_text())


def update(client: redis_v1.CloudRedisClient, name: str, paths: list[str], **fields: Any) -> None:
    client.update_instance(
        update_mask=field_mask_pb2.FieldMask(paths=paths), instance=redis_v1.Instance(name=name, **fields)
    ).result(timeout=OPERATION_TIMEOUT)


def test_out_of_band_changes_are_reported_property_by_property(
    emulator_factory: Callable[..., EmulatorHandle], tmp_path: Path
) -> None:
    emulator = emulator_factory(fleet=STAGING)
    config = write_config(tmp_path, emulator, REPO / "program", ["staging"])

    code, report = drift_json(config, tmp_path)
    assert code == 0, report
    assert report["stacks"][0]["status"] == "in_sync"

    client = emulator.redis_client()
    update(
        client,
        emulator.instance_name("redis-sidekiq"),
        ["memory_size_gb", "redis_configs"],
        memory_size_gb=3,
        redis_configs={"maxmemory-policy": "allkeys-lru", "activedefrag": "yes"},
    )
    update(
        client,
        emulator.instance_name("redis-sessions"),
        ["persistence_config"],
        persistence_config=redis_v1.PersistenceConfig(persistence_mode="DISABLED"),
    )
    client.delete_instance(name=emulator.instance_name("redis-cache")).result(timeout=OPERATION_TIMEOUT)
    client.create_instance(
        parent=emulator.parent(),
        instance_id="redis-stray",
        instance=redis_v1.Instance(tier="BASIC", memory_size_gb=1, redis_version="REDIS_7_2"),
    ).result(timeout=OPERATION_TIMEOUT)

    code, report = drift_json(config, tmp_path)
    assert code == 2
    [stack] = report["stacks"]
    assert (stack["stack"], stack["engine"], stack["status"], stack["error"]) == ("staging", "live", "drift", None)
    # Each finding's cause: the newest audit log entry of its instance (the emulator's default caller).
    causes = {item["resource"]: item.pop("cause") for item in stack["items"]}
    stray = f"projects/{emulator.project}/locations/{emulator.region}/instances/redis-stray"
    assert {resource: [c["method"].rsplit(".", 1)[1] for c in cause["changes"]] for resource, cause in causes.items()} == {
        "redis-sessions": ["UpdateInstance"],
        "redis-sidekiq": ["UpdateInstance"],
        "redis-cache": ["DeleteInstance"],
        stray: ["CreateInstance"],
    }
    assert causes["redis-sidekiq"]["changes"][0]["fields"] == ["memorySizeGb", "redisConfigs"]
    assert stack["items"] == [
        {
            "resource": "redis-sessions",
            "type": INSTANCE_TYPE,
            "kind": "changed",
            "properties": [
                {"path": "persistenceConfig.persistenceMode", "expected": "RDB", "actual": "DISABLED"},
                {"path": "persistenceConfig.rdbSnapshotPeriod", "expected": "SIX_HOURS", "actual": None},
            ],
            "instance": emulator.instance_name("redis-sessions"),
        },
        {
            "resource": "redis-sidekiq",
            "type": INSTANCE_TYPE,
            "kind": "changed",
            "properties": [
                {"path": "memorySizeGb", "expected": 2, "actual": 3},
                {"path": "redisConfigs.maxmemory-policy", "expected": "noeviction", "actual": "allkeys-lru"},
            ],
            "instance": emulator.instance_name("redis-sidekiq"),
        },
        {
            "resource": "redis-cache",
            "type": INSTANCE_TYPE,
            "kind": "missing",
            "properties": [],
            "instance": emulator.instance_name("redis-cache"),
        },
        {"resource": stray, "type": INSTANCE_TYPE, "kind": "unmanaged", "properties": [], "instance": stray},
    ]


def test_an_unavailable_api_exits_1_with_one_line(
    emulator_factory: Callable[..., EmulatorHandle], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator = emulator_factory(fleet=STAGING, processes=False)
    config = write_config(tmp_path, emulator, REPO / "program", ["staging"], request_timeout_seconds=1)
    emulator.inject_fault("redis", "503", count=1000)
    code, report = drift_json(config, tmp_path)
    assert code == 1
    assert report["stacks"][0]["status"] == "error"
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1
    assert errors[0].startswith("redisguard drift-report: error: stack staging (live): list_instances projects/redisguard-staging/locations/-: still failing after retries (ServiceUnavailable: The service is currently unavailable")


def test_a_rejected_listing_is_a_permanent_error_naming_the_api_message(
    emulator_factory: Callable[..., EmulatorHandle], tmp_path: Path
) -> None:
    emulator = emulator_factory(fleet=STAGING, processes=False)
    work_dir = tmp_path / "program"
    work_dir.mkdir()
    generated_stack(work_dir, "broken", "Bad_Project!", 1, "x")
    config = config_from_mapping({"pulumi": {"work_dir": str(work_dir), "stacks": ["broken"]}, "gcp": {"redis_endpoint": emulator.redis_endpoint}})
    [stack] = run_scan(config, ["broken"], ["live"]).stacks
    assert (stack.status, stack.error_kind) == ("error", "permanent")
    # The API's own words, without the request URL the REST transport puts in front of them.
    assert (stack.error or "").startswith("list_instances projects/Bad_Project!/locations/-: BadRequest: ")
    assert "Bad_Project!" in (stack.error or "")[60:]
    assert "http://" not in (stack.error or "")


def test_a_hung_api_is_a_transient_error_after_the_request_timeout(
    emulator_factory: Callable[..., EmulatorHandle], tmp_path: Path
) -> None:
    emulator = emulator_factory(fleet=STAGING, processes=False)
    config = write_config(tmp_path, emulator, REPO / "program", ["staging"], request_timeout_seconds=1)
    emulator.inject_fault("redis", "hang", count=1)
    code, report = drift_json(config, tmp_path)
    assert code == 1
    assert report["stacks"][0]["error"] == (
        f"list_instances projects/redisguard-staging/locations/-: no answer from {emulator.redis_endpoint} within 1s"
    )
    # What a daemon and a CI job read to decide whether to retry.
    assert report["stacks"][0]["error_kind"] == "transient"
    assert report["summary"]["errors"] == 1 and report["exit_code"] == 1


@pytest.mark.parametrize("mode", ["503", "429", "504"])
def test_a_single_transient_answer_is_retried_and_the_scan_succeeds(
    emulator_factory: Callable[..., EmulatorHandle], tmp_path: Path, mode: str
) -> None:
    emulator = emulator_factory(fleet=STAGING, processes=False)
    config = write_config(tmp_path, emulator, REPO / "program", ["staging"])
    emulator.inject_fault("redis", mode, count=1)
    code, report = drift_json(config, tmp_path)
    assert code == 0, report
    assert emulator.request_counts()["redis"]["ListInstances"] == 2  # the fault, then the retry


def test_a_persistent_504_is_retried_within_the_request_budget_then_transient(
    emulator_factory: Callable[..., EmulatorHandle], tmp_path: Path
) -> None:
    emulator = emulator_factory(fleet=STAGING, processes=False)
    config = write_config(tmp_path, emulator, REPO / "program", ["staging"], request_timeout_seconds=1)
    emulator.inject_fault("redis", "504", count=1000)
    code, report = drift_json(config, tmp_path)
    assert code == 1
    assert report["stacks"][0]["error"].startswith(
        "list_instances projects/redisguard-staging/locations/-: still failing after retries (GatewayTimeout: "
    )
    assert emulator.request_counts()["redis"]["ListInstances"] > 1


def generated_stack(work_dir: Path, stack: str, project: str, count: int, prefix: str) -> Path:
    clusters = [
        {"name": f"{prefix}-{i:04d}", "memory_gb": 1, "tier": "BASIC", "redis_version": "REDIS_7_2", "persistence_mode": "DISABLED"}
        for i in range(count)
    ]
    path = work_dir / f"Pulumi.{stack}.yaml"
    path.write_text(
        yaml.safe_dump({"config": {"gcp:project": project, "gcp:region": "europe-west1", "redis-fleet:redis": clusters}})
    )
    return path


@pytest.mark.parametrize("count", [3, 300])
def test_admin_api_calls_do_not_grow_with_instances(
    emulator_factory: Callable[..., EmulatorHandle], tmp_path: Path, count: int
) -> None:
    work_dir = tmp_path / "program"
    work_dir.mkdir()
    # Two stacks in one project: still one listing for the project.
    blue = generated_stack(work_dir, "blue", "redisguard-load", count, "blue")
    green = generated_stack(work_dir, "green", "redisguard-load", count, "green")
    emulator = emulator_factory(fleet=[blue, green], processes=False)
    assert emulator.instances == 2 * count
    config = config_from_mapping(
        {"pulumi": {"work_dir": str(work_dir), "stacks": ["blue", "green"]}, "gcp": {"redis_endpoint": emulator.redis_endpoint}}
    )
    emulator.reset_counts()
    threads: list[str] = []
    report = run_scan(config, ["blue", "green"], ["live"], on_done=lambda _: threads.append(threading.current_thread().name))
    assert [s.status for s in report.stacks] == ["in_sync", "in_sync"]
    assert emulator.request_counts()["redis"] == {"ListInstances": 1}
    # Stack files are read without the pulumi CLI: the checks run on the calling thread, no worker's.
    assert threads == [threading.current_thread().name] * 2


def test_unmanaged_instances_are_reported_once_per_project(
    emulator_factory: Callable[..., EmulatorHandle], tmp_path: Path
) -> None:
    work_dir = tmp_path / "program"
    work_dir.mkdir()
    blue = generated_stack(work_dir, "blue", "redisguard-load", 2, "blue")
    green = generated_stack(work_dir, "green", "redisguard-load", 2, "green")
    emulator = emulator_factory(fleet=[blue, green], processes=False)
    emulator.redis_client().create_instance(
        parent=emulator.parent(), instance_id="stray", instance=redis_v1.Instance(tier="BASIC", memory_size_gb=1)
    ).result(timeout=OPERATION_TIMEOUT)
    config = config_from_mapping(
        {"pulumi": {"work_dir": str(work_dir), "stacks": ["blue", "green"]}, "gcp": {"redis_endpoint": emulator.redis_endpoint}}
    )
    report = run_scan(config, ["green", "blue"], ["live"])
    items = {s.stack: [(i.kind, i.resource) for i in s.items] for s in report.stacks}
    # Each stack's clusters are declared (by the other stack too): only the stray one is unmanaged,
    # listed under the first selected stack.
    assert items == {"green": [("unmanaged", emulator.instance_name("stray"))], "blue": []}


def test_auth_strings_appear_in_no_output_format_and_no_debug_log(
    emulator_factory: Callable[..., EmulatorHandle],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulator = emulator_factory(fleet=STAGING)
    client = emulator.redis_client()
    names = [emulator.instance_name(n) for n in ("redis-sidekiq", "redis-cache", "redis-sessions")]
    secrets = [client.get_instance_auth_string(name=name).auth_string for name in names]
    assert all(len(s) >= 16 for s in secrets)  # the emulator really has AUTH strings to leak
    # Drift on the instance, so the report prints its properties.
    update(client, names[0], ["memory_size_gb", "labels"], memory_size_gb=3, labels={"env": "staging", "owner": "bob"})
    config = write_config(tmp_path, emulator, REPO / "program", ["staging"])
    caplog.set_level("DEBUG")
    seen = []
    for fmt in ("table", "json", "markdown"):
        code = main(["--log-level", "DEBUG", "drift-report", "--config", str(config), "--engine", "live", "--format", fmt])
        assert code == 2
        captured = capsys.readouterr()
        assert "memorySizeGb" in captured.out
        seen += [captured.out, captured.err]
        out = tmp_path / f"drift.{fmt}"
        assert main(["drift-report", "--config", str(config), "--engine", "live", "--format", fmt, "--output", str(out)]) == 2
        seen.append(out.read_text())
    seen.append(caplog.text)
    assert "list_instances" in caplog.text or "GET /v1/projects" in caplog.text  # DEBUG logging did run
    for secret in secrets:
        assert not any(secret in text for text in seen)


@pytest.mark.parametrize(
    ("breakage", "problem"),
    [
        ("bad-enum", "tier: 'BASIK' is not allowed; allowed values: BASIC, STANDARD_HA"),
        # With no stack file `auto` reads the stack's state, which this machine cannot (no backend):
        # still a stack that may declare them, named with the file it lacks.
        ("deleted", "has no stack file"),
        ("not-yaml", "not valid YAML"),
    ],
)
def test_a_sibling_stacks_broken_file_never_makes_its_clusters_unmanaged(
    emulator_factory: Callable[..., EmulatorHandle],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    breakage: str,
    problem: str,
) -> None:
    work_dir = tmp_path / "program"
    work_dir.mkdir()
    a = generated_stack(work_dir, "a", "redisguard-load", 2, "a")
    b = generated_stack(work_dir, "b", "redisguard-load", 2, "b")
    emulator = emulator_factory(fleet=[a, b], processes=False)
    client = emulator.redis_client()
    update(client, emulator.instance_name("a-0000"), ["memory_size_gb"], memory_size_gb=2)
    if breakage == "bad-enum":
        b.write_text(b.read_text().replace("tier: BASIC", "tier: BASIK", 1))
    elif breakage == "deleted":
        b.unlink()
    else:
        b.write_text("config:\n  gcp:project: [redisguard-load\n")
    config = write_config(tmp_path, emulator, work_dir, ["a", "b"])

    code, report = drift_json(config, tmp_path, "--stack", "a")
    # Not drift: the unmanaged part of the project failed, and a's own findings are still there.
    assert code == 1
    [stack] = report["stacks"]
    assert stack["status"] == "error"
    assert [(i["kind"], i["resource"]) for i in stack["items"]] == [("changed", "a-0000")]
    assert not [i for i in stack["items"] if i["kind"] == "unmanaged"]
    assert stack["error"].startswith(
        "unmanaged instances of project redisguard-load not checked: a stack that may declare them cannot be read"
    )
    # Relative to the config file's folder: the JSON goes into CI artifacts and PR comments.
    assert "\n  stack b" in stack["error"] and "program/Pulumi.b.yaml" in stack["error"] and problem in stack["error"]
    assert str(tmp_path) not in stack["error"]
    # The table a user reads says the same.
    assert main(["drift-report", "--config", str(config), "--engine", "live", "--stack", "a"]) == 1
    out = capsys.readouterr()
    assert "instances/b-0000" not in out.out + out.err and "unmanaged" not in out.out.split("a (live): error")[0]
    assert "a (live): error" in out.out and problem in out.out and str(b) in out.out  # the table, read where it ran
    assert "redisguard drift-report: error: stack a (live): unmanaged instances of project redisguard-load" in out.err


def test_ignore_rules_hide_whole_unmanaged_and_missing_instances_by_name(
    emulator_factory: Callable[..., EmulatorHandle], tmp_path: Path
) -> None:
    work_dir = tmp_path / "program"
    work_dir.mkdir()
    blue = generated_stack(work_dir, "blue", "redisguard-load", 2, "blue")
    emulator = emulator_factory(fleet=[blue], processes=False)
    client = emulator.redis_client()
    for instance_id in ("redis-scratch", "redis-stray"):
        client.create_instance(
            parent=emulator.parent(), instance_id=instance_id, instance=redis_v1.Instance(tier="BASIC", memory_size_gb=1)
        ).result(timeout=OPERATION_TIMEOUT)
    client.delete_instance(name=emulator.instance_name("blue-0001")).result(timeout=OPERATION_TIMEOUT)
    config = write_config(tmp_path, emulator, work_dir, ["blue"])
    code, report = drift_json(config, tmp_path)
    assert code == 2
    assert [(i["kind"], i["resource"].rsplit("/", 1)[-1]) for i in report["stacks"][0]["items"]] == [
        ("missing", "blue-0001"),
        ("unmanaged", "redis-scratch"),
        ("unmanaged", "redis-stray"),
    ]
    data = yaml.safe_load(config.read_text())
    data["ignore"] = [{"kind": "unmanaged", "resource": "*scratch"}, {"kind": "missing", "resource": "blue-0001"}]
    config.write_text(yaml.safe_dump(data))
    code, report = drift_json(config, tmp_path)
    assert code == 2
    assert [(i["kind"], i["resource"]) for i in report["stacks"][0]["items"]] == [
        ("unmanaged", emulator.instance_name("redis-stray"))
    ]
    data["ignore"].append({"kind": "unmanaged", "resource": "projects/redisguard-load/*/redis-stray"})
    config.write_text(yaml.safe_dump(data))
    code, report = drift_json(config, tmp_path)
    assert (code, report["stacks"][0]["status"], report["stacks"][0]["items"]) == (0, "in_sync", [])


def test_an_instance_that_is_not_ready_is_shown_in_every_format(
    emulator_factory: Callable[..., EmulatorHandle], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator = emulator_factory(fleet=STAGING)
    emulator.kill_instance(emulator.region, "redis-cache")  # its redis-server crashes: REPAIRING
    config = write_config(tmp_path, emulator, REPO / "program", ["staging"])
    code, report = drift_json(config, tmp_path)
    # Health, not drift: the config still matches, so the exit code does not change; the state is shown.
    assert code == 0
    [stack] = report["stacks"]
    assert (stack["status"], stack["not_ready"]) == ("in_sync", [{"resource": "redis-cache", "state": "REPAIRING"}])
    assert report["summary"]["not_ready_instances"] == 1
    assert main(["drift-report", "--config", str(config), "--engine", "live"]) == 0
    table = capsys.readouterr().out
    assert "staging (live): instances not READY" in table
    assert any("redis-cache" in line and "REPAIRING" in line for line in table.splitlines())
    assert main(["drift-report", "--config", str(config), "--engine", "live", "--format", "markdown"]) == 0
    markdown = capsys.readouterr().out
    assert "**all stacks in sync; 1 instance not READY**" in markdown
    assert "| `redis-cache` | REPAIRING |" in markdown



def test_a_stack_found_in_sync_is_checked_again_each_scan(emulator_factory: Callable[..., EmulatorHandle], tmp_path: Path) -> None:
    """An unchanged in-sync stack's report is reused (daemon scans): any change to one of its
    instances, to its stack file or to the ignore rules is still reported in the next scan."""
    work_dir = tmp_path / "program"
    work_dir.mkdir()
    # a reports the project's unmanaged instances; b's result is its own instances' only.
    a = generated_stack(work_dir, "a", "redisguard-load", 1, "a")
    b = generated_stack(work_dir, "b", "redisguard-load", 2, "b")
    emulator = emulator_factory(fleet=[a, b], processes=False)
    client = emulator.redis_client()
    mapping: dict[str, Any] = {
        "pulumi": {"work_dir": str(work_dir), "stacks": ["a", "b"]},
        "gcp": {"redis_endpoint": emulator.redis_endpoint},
    }
    config = config_from_mapping(mapping)

    def b_report(config: Any = config) -> tuple[str, list[tuple[str, str, list[str]]]]:
        [report] = [s for s in run_scan(config, ["a", "b"], ["live"]).stacks if s.stack == "b"]
        return report.status, [(i.kind, i.resource, [p.path for p in i.properties]) for i in report.items]

    for _ in range(3):  # the first scan, then scans that find nothing changed
        assert b_report() == ("in_sync", [])
    update(client, emulator.instance_name("b-0001"), ["memory_size_gb"], memory_size_gb=2)
    assert b_report() == ("drift", [("changed", "b-0001", ["memorySizeGb"])])
    update(client, emulator.instance_name("b-0001"), ["memory_size_gb"], memory_size_gb=1)
    assert b_report() == ("in_sync", [])
    # A label and a config added by hand (the program manages both maps whole).
    update(client, emulator.instance_name("b-0000"), ["labels"], labels={"team": "payments"})
    assert b_report() == ("drift", [("changed", "b-0000", ["labels.team"])])
    update(client, emulator.instance_name("b-0000"), ["labels", "redis_configs"], labels={}, redis_configs={"activedefrag": "yes"})
    assert b_report() == ("drift", [("changed", "b-0000", ["redisConfigs.activedefrag"])])
    # New ignore rules (a new config) judge the same listing again.
    ignoring = config_from_mapping({**mapping, "ignore": [{"type": INSTANCE_TYPE, "path": "redisConfigs.activedefrag"}]})
    assert b_report(ignoring) == b_report(ignoring) == ("in_sync", [])
    assert b_report() == ("drift", [("changed", "b-0000", ["redisConfigs.activedefrag"])])
    # The stack file changed: its declared side is read again.
    update(client, emulator.instance_name("b-0000"), ["redis_configs"], redis_configs={})
    assert b_report() == b_report() == ("in_sync", [])
    b.write_text(b.read_text().replace("memory_gb: 1", "memory_gb: 4", 1))
    assert b_report() == ("drift", [("changed", "b-0000", ["memorySizeGb"])])
