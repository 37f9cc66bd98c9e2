"""codify and adopt end to end: instances changed out of band through the official client, the reviewed stack-file change, the live engine in sync after it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.cloud import redis_v1
from google.protobuf import field_mask_pb2
from google.type import timeofday_pb2

from redisguard.daemon.checks.drift_live import compare
from redisguard.daemon.checks.ignore import IgnoreRules
from redisguard.daemon.cli.main import main
from redisguard.daemon.config import config_from_mapping
from redisguard.daemon.fleet import declared, inventory, inverse
from redisguard.daemon.fleet.declared import from_cluster
from redisguard.program.config import ClusterConfig, load_stack_file
from redisguard.program.mocks import run_stack
from tests.fixtures.emulator import EmulatorHandle, start_emulator
from tests.fixtures.repo import STAGING
from tests.fixtures.wire import INSTANCE_TYPE

OPERATION_TIMEOUT = 60


# --- against the emulator ------------------------------------------------------------------------

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    handle = start_emulator(tmp_path_factory.mktemp("remediation"), STAGING)
    yield handle
    handle.stop()


def _stack_dir(tmp_path: Path, emulator: EmulatorHandle) -> Path:
    """A copy of the staging stack file and a redisguard.yaml pointing at it and at the emulator."""
    work = tmp_path / "program"
    work.mkdir()
    shutil.copy(STAGING, work / "Pulumi.staging.yaml")
    (tmp_path / "redisguard.yaml").write_text(
        yaml.safe_dump(
            {
                "pulumi": {"work_dir": str(work), "stacks": ["staging"]},
                "gcp": {"redis_endpoint": emulator.redis_endpoint, "monitoring_endpoint": emulator.monitoring_endpoint},
            }
        )
    )
    return work / "Pulumi.staging.yaml"


def _drift(tmp_path: Path) -> tuple[int, dict[str, Any]]:
    out = tmp_path / "drift.json"
    code = main(["drift-report", "--config", str(tmp_path / "redisguard.yaml"), "--engine", "live", "--format", "json", "--output", str(out)])
    return code, json.loads(out.read_text())


def _run(tmp_path: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([argv[0], "--config", str(tmp_path / "redisguard.yaml"), *argv[1:]])
    out, err = capsys.readouterr()
    return code, out, err


def _create(emulator: EmulatorHandle, instance_id: str, **fields: Any) -> None:
    emulator.redis_client().create_instance(
        parent=emulator.parent(), instance_id=instance_id, instance=redis_v1.Instance(**fields)
    ).result(timeout=OPERATION_TIMEOUT)


def _delete(emulator: EmulatorHandle, instance_id: str) -> None:
    emulator.redis_client().delete_instance(name=emulator.instance_name(instance_id)).result(timeout=OPERATION_TIMEOUT)


HANDMADE = {
    "tier": "STANDARD_HA",
    "memory_size_gb": 2,
    "redis_version": "REDIS_7_0",
    "auth_enabled": True,
    "transit_encryption_mode": "SERVER_AUTHENTICATION",
    "persistence_config": redis_v1.PersistenceConfig(persistence_mode="RDB", rdb_snapshot_period="SIX_HOURS"),
    "redis_configs": {"maxmemory-policy": "allkeys-lru", "activedefrag": "yes"},
    "labels": {"env": "staging", "team": "ops"},
    "maintenance_policy": redis_v1.MaintenancePolicy(
        weekly_maintenance_window=[
            redis_v1.WeeklyMaintenanceWindow(day="SATURDAY", start_time=timeofday_pb2.TimeOfDay(hours=5, minutes=30))
        ]
    ),
}


def test_the_codified_entry_compares_equal_to_every_live_instance(emulator: EmulatorHandle) -> None:
    """The contract between the inverse mapping and the live engine's compare."""
    _create(emulator, "redis-contract", **HANDMADE)
    try:
        config = config_from_mapping({"gcp": {"redis_endpoint": emulator.redis_endpoint}})
        instances = inventory.list_project_instances(emulator.redis_client(), emulator.project, config.gcp)
        assert len(instances) == 4
        for instance in instances:
            live = inverse.cluster_entry(instance)
            assert live.unexpressible == ()
            cluster = ClusterConfig.model_validate(live.entry)
            stack = load_stack_file(STAGING)
            assert compare(from_cluster(cluster, stack, emulator.project), instance, IgnoreRules(builtins=False)) == [], instance.name
    finally:
        _delete(emulator, "redis-contract")


def test_codify_write_brings_a_handmade_instance_under_the_stack(
    emulator: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack_file = _stack_dir(tmp_path, emulator)
    _create(emulator, "redis-handmade", **HANDMADE)
    try:
        code, report = _drift(tmp_path)
        assert code == 2
        assert [i["kind"] for i in report["stacks"][0]["items"]] == ["unmanaged"]

        code, out, err = _run(tmp_path, capsys, "codify")
        assert code == 2, err
        assert stack_file.read_text() == STAGING.read_text()  # only proposed
        assert "+    - name: redis-handmade\n" in out and "+      import_existing: true\n" in out
        assert "+      labels: {env: staging, team: ops}\n" in out

        code, _, err = _run(tmp_path, capsys, "codify", "--write")
        assert code == 2, err  # a change, written
        text = stack_file.read_text()
        assert text.startswith(STAGING.read_text())  # comments, order and the old entries intact
        code, report = _drift(tmp_path)
        assert code == 0, report
        assert report["stacks"][0]["status"] == "in_sync"
        config = config_from_mapping(yaml.safe_load((tmp_path / "redisguard.yaml").read_text()))
        key = inventory.split_instance_name(emulator.instance_name("redis-handmade"))
        assert declared.owner_of(declared.read_declared(config), key) == "staging"

        code, out, err = _run(tmp_path, capsys, "codify")  # a second run proposes nothing
        assert (code, out) == (0, ""), err

        resources = {r.name: r for r in run_stack(stack_file) if r.type == INSTANCE_TYPE}
        assert resources["redis-handmade"].import_id == emulator.instance_name("redis-handmade")
        assert resources["redis-handmade"].inputs["authEnabled"] is True
    finally:
        _delete(emulator, "redis-handmade")


def test_codify_refuses_auth_off_and_warns_about_a_mandatory_policy(
    emulator: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack_file = _stack_dir(tmp_path, emulator)
    _create(emulator, "redis-noauth", tier="BASIC", memory_size_gb=1, redis_version="REDIS_7_2")
    _create(emulator, "redis-notls", tier="BASIC", memory_size_gb=1, redis_version="REDIS_7_2", auth_enabled=True)
    try:
        code, out, err = _run(tmp_path, capsys, "codify", "--instance", "redis-noauth", "--write")
        assert (code, out) == (0, "")
        assert "refused" in err and "authEnabled: AUTH is off" in err and "--enable-auth" in err
        assert "Pulumi refuses an import whose inputs differ" in err
        assert stack_file.read_text() == STAGING.read_text()

        code, out, err = _run(tmp_path, capsys, "codify")
        assert code == 2
        assert "+    - name: redis-notls\n" in out and "+      transit_encryption: DISABLED\n" in out
        assert "redis-noauth" not in out
        assert "warning: " in err and "memorystore-transit-encryption-required (mandatory in stack staging)" in err
    finally:
        _delete(emulator, "redis-noauth")
        _delete(emulator, "redis-notls")


def test_adopt_refuses_an_unknown_resource_or_path_and_says_when_nothing_drifted(
    emulator: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo is an error with "did you mean" (exit 1, as for --stack); a real property that has
    not drifted is said so (exit 0: nothing to propose)."""
    stack_file = _stack_dir(tmp_path, emulator)
    code, out, err = _run(tmp_path, capsys, "adopt", "--resource", "redis-cach", "--path", "memorySizeGb")
    assert (code, out) == (1, "")
    assert err == (
        "redisguard adopt: error: --resource redis-cach: no cluster of stack staging has this name; "
        "allowed: redis-cache, redis-sessions, redis-sidekiq; did you mean redis-cache?\n"
    )
    code, out, err = _run(tmp_path, capsys, "adopt", "--resource", "redis-cache", "--path", "memorySizeG")
    assert (code, out) == (1, "")
    assert "error: --path memorySizeG: no property of cluster redis-cache has this path; allowed: " in err
    assert "labels.service" in err and err.endswith("; did you mean memorySizeGb?\n")
    code, out, err = _run(tmp_path, capsys, "adopt", "--path", "connectMode")
    assert (code, out) == (1, "") and "not compared by the live drift engine (immutable after creation)" in err

    code, out, err = _run(tmp_path, capsys, "adopt", "--resource", "redis-cache", "--path", "memorySizeGb")
    assert (code, out) == (0, ""), err
    assert "in sync: redis-cache: memorySizeGb: no drift now" in err and "nothing to change" in err
    code, out, err = _run(tmp_path, capsys, "adopt", "--path", 'labels["team"]')  # any spelling of a path
    assert (code, out) == (0, ""), err
    assert "in sync: stack staging: labels.team: no drift now" in err
    assert stack_file.read_text() == STAGING.read_text()


def test_codify_import_file_adopts_what_the_flat_config_cannot_say_and_is_rewritten_only_with_write(
    emulator: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--import-file`: the file `pulumi import` reads, for any program; AUTH off is no refusal there."""
    stack_file = _stack_dir(tmp_path, emulator)
    import_file = tmp_path / "import.json"
    _create(emulator, "redis-noauth", tier="BASIC", memory_size_gb=1, redis_version="REDIS_7_2")
    _create(emulator, "redis-handmade", **HANDMADE)
    try:
        code, out, err = _run(tmp_path, capsys, "codify", "--stack", "staging", "--import-file", str(import_file))

        assert (code, out) == (2, ""), err
        assert json.loads(import_file.read_text()) == {
            "resources": [
                {"type": INSTANCE_TYPE, "name": name, "id": emulator.instance_name(name)}
                for name in ("redis-handmade", "redis-noauth")
            ]
        }
        assert stack_file.read_text() == STAGING.read_text()
        assert "memorystore-auth-required (mandatory in stack staging) will block `pulumi up`" in err
        assert f"pulumi import --file {import_file} --stack staging" in err

        code, out, err = _run(tmp_path, capsys, "codify", "--import-file", str(import_file), "--instance", "redis-noauth")
        assert (code, import_file.read_text().count('"id"')) == (2, 2)
        assert f'-            "id": "{emulator.instance_name("redis-handmade")}"\n' in out and "--write replaces it" in err

        code, out, err = _run(tmp_path, capsys, "codify", "--import-file", str(import_file), "--instance", "redis-noauth", "--write")
        assert (code, out) == (2, ""), err
        assert [r["name"] for r in json.loads(import_file.read_text())["resources"]] == ["redis-noauth"]
    finally:
        _delete(emulator, "redis-noauth")
        _delete(emulator, "redis-handmade")


def _update(emulator: EmulatorHandle, instance_id: str, paths: list[str], **fields: Any) -> None:
    emulator.redis_client().update_instance(
        update_mask=field_mask_pb2.FieldMask(paths=paths),
        instance=redis_v1.Instance(name=emulator.instance_name(instance_id), **fields),
    ).result(timeout=OPERATION_TIMEOUT)


def test_adopt_write_accepts_console_changes_and_refuses_auth_off(
    emulator: EmulatorHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Last in the module: it leaves the emulator's instances changed."""
    stack_file = _stack_dir(tmp_path, emulator)
    _update(emulator, "redis-sidekiq", ["memory_size_gb", "redis_configs"], memory_size_gb=3,
            redis_configs={"maxmemory-policy": "allkeys-lru", "activedefrag": "yes"})
    _update(emulator, "redis-cache", ["auth_enabled"], auth_enabled=False)

    code, out, err = _run(tmp_path, capsys, "adopt")
    assert code == 2, err
    for line in ("-      max_memory_policy: noeviction", "+      max_memory_policy: allkeys-lru",
                 "-      memory_gb: 2", "+      memory_gb: 3"):
        assert f"\n{line}\n" in out
    assert "redis-cache: authEnabled: AUTH is off on the instance" in err and "memorystore-auth-required" in err

    code, _, err = _run(tmp_path, capsys, "adopt", "--write")
    assert code == 2, err  # a change, written
    text = stack_file.read_text()
    assert "# The original team's entry, unchanged." in text and text.startswith("# Staging: small, cheap")
    code, report = _drift(tmp_path)
    assert code == 2
    assert [(i["resource"], [p["path"] for p in i["properties"]]) for i in report["stacks"][0]["items"]] == [
        ("redis-cache", ["authEnabled"])
    ]
    code, out, _ = _run(tmp_path, capsys, "adopt", "--resource", "redis-sidekiq")
    assert (code, out) == (0, "")  # adopted: nothing left to propose

    _update(emulator, "redis-cache", ["auth_enabled"], auth_enabled=True)
    code, report = _drift(tmp_path)
    assert code == 0, report
