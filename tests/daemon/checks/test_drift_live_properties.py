"""Every property the program sets and the API can change after creation, changed out of band through the official client: the live engine reports it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from google.cloud import redis_v1
from google.protobuf import field_mask_pb2

from redisguard.daemon.checks.drift import run_scan
from redisguard.daemon.config import RedisguardConfig, config_from_mapping
from tests.fixtures.emulator import EmulatorHandle, start_emulator

pytestmark = pytest.mark.slow

PROJECT = "redisguard-props"
REGION = "europe-west1"
OPERATION_TIMEOUT = 60
BASE: dict[str, Any] = {
    "memory_gb": 5,
    "tier": "STANDARD_HA",
    "redis_version": "REDIS_7_2",
    "max_memory_policy": "allkeys-lru",
    "persistence_mode": "RDB",
    "snapshot_period": "SIX_HOURS",
    "maintenance_window_day": "SUNDAY",
    "maintenance_start_hours": 3,
    "maintenance_start_minutes": 30,
    "labels": {"env": "staging", "team": "platform"},
    "deletion_protection": False,
}
_WINDOW = {"day": "SUNDAY", "start_time": {"hours": 3, "minutes": 30}}
_W = "maintenancePolicy.weeklyMaintenanceWindows[0]"

# (instance id, its cluster entry changes, the API change: update_mask paths and fields or an upgrade, the drifted paths)
CASES: list[tuple[str, dict[str, Any], Any, set[str]]] = [
    ("p-display-name", {"display_name": "Sidekiq jobs"}, (["display_name"], {"display_name": "renamed in the console"}), {"displayName"}),
    ("p-memory", {}, (["memory_size_gb"], {"memory_size_gb": 6}), {"memorySizeGb"}),
    ("p-label-changed", {}, (["labels"], {"labels": {"env": "staging", "team": "data"}}), {"labels.team"}),
    ("p-label-added", {}, (["labels"], {"labels": {**BASE["labels"], "owner": "alice"}}), {"labels.owner"}),
    ("p-label-removed", {}, (["labels"], {"labels": {"env": "staging"}}), {"labels.team"}),
    ("p-config-changed", {}, (["redis_configs"], {"redis_configs": {"maxmemory-policy": "noeviction"}}), {"redisConfigs.maxmemory-policy"}),
    ("p-config-added", {}, (["redis_configs"], {"redis_configs": {"maxmemory-policy": "allkeys-lru", "notify-keyspace-events": "Ex"}}), {"redisConfigs.notify-keyspace-events"}),
    ("p-auth", {}, (["auth_enabled"], {"auth_enabled": False}), {"authEnabled"}),
    (
        "p-persistence",
        {},
        (["persistence_config"], {"persistence_config": {"persistence_mode": "DISABLED"}}),
        {"persistenceConfig.persistenceMode", "persistenceConfig.rdbSnapshotPeriod"},
    ),
    (
        "p-snapshot-period",
        {},
        (["persistence_config"], {"persistence_config": {"persistence_mode": "RDB", "rdb_snapshot_period": "ONE_HOUR"}}),
        {"persistenceConfig.rdbSnapshotPeriod"},
    ),
    ("p-window-day", {}, (["maintenance_policy"], {"maintenance_policy": {"weekly_maintenance_window": [{**_WINDOW, "day": "MONDAY"}]}}), {f"{_W}.day"}),
    (
        "p-window-hours",
        {},
        (["maintenance_policy"], {"maintenance_policy": {"weekly_maintenance_window": [{**_WINDOW, "start_time": {"hours": 9, "minutes": 30}}]}}),
        {f"{_W}.startTime.hours"},
    ),
    (
        "p-window-minutes",
        {},
        (["maintenance_policy"], {"maintenance_policy": {"weekly_maintenance_window": [{**_WINDOW, "start_time": {"hours": 3}}]}}),
        {f"{_W}.startTime.minutes"},
    ),
    ("p-replica-count", {"read_replicas": True, "replica_count": 2}, (["replica_count"], {"replica_count": 3}), {"replicaCount"}),
    (
        "p-read-replicas",
        {},
        (["read_replicas_mode"], {"read_replicas_mode": "READ_REPLICAS_ENABLED"}),
        {"readReplicasMode"},
    ),
    ("p-version", {"redis_version": "REDIS_7_0"}, "REDIS_7_2", {"redisVersion"}),
]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmulatorHandle, RedisguardConfig]]:
    tmp = tmp_path_factory.mktemp("properties")
    clusters = [{"name": name, **BASE, **changes} for name, changes, _, _ in CASES]
    stack_file = tmp / "Pulumi.props.yaml"
    stack_file.write_text(yaml.safe_dump({"config": {"gcp:project": PROJECT, "gcp:region": REGION, "redis-fleet:redis": clusters}}))
    emulator = start_emulator(tmp, stack_file, processes=False)
    config = config_from_mapping({"pulumi": {"work_dir": str(tmp), "stacks": ["props"]}, "gcp": {"redis_endpoint": emulator.redis_endpoint}})
    try:
        yield emulator, config
    finally:
        emulator.stop()


def test_the_fleet_as_declared_is_in_sync(fleet: tuple[EmulatorHandle, RedisguardConfig]) -> None:
    # Run first (file order): every later test changes its own instance only.
    _, config = fleet
    [stack] = run_scan(config, ["props"], ["live"]).stacks
    assert (stack.status, stack.items) == ("in_sync", ())


@pytest.mark.parametrize(("instance_id", "changes", "change", "paths"), CASES, ids=[c[0] for c in CASES])
def test_a_property_changed_out_of_band_is_reported(
    fleet: tuple[EmulatorHandle, RedisguardConfig], instance_id: str, changes: dict[str, Any], change: Any, paths: set[str]
) -> None:
    emulator, config = fleet
    client = emulator.redis_client()
    name = client.instance_path(PROJECT, REGION, instance_id)
    if isinstance(change, str):
        client.upgrade_instance(name=name, redis_version=change).result(timeout=OPERATION_TIMEOUT)
    else:
        mask, fields = change
        client.update_instance(
            update_mask=field_mask_pb2.FieldMask(paths=mask), instance=redis_v1.Instance(name=name, **fields)
        ).result(timeout=OPERATION_TIMEOUT)
    [stack] = run_scan(config, ["props"], ["live"]).stacks
    [item] = [i for i in stack.items if i.resource == instance_id]
    assert item.kind == "changed"
    assert {p.path for p in item.properties} == paths
