"""The live engine's comparison: declared clusters against Memorystore instances, property by property."""

from __future__ import annotations

from typing import Any

import pytest
from google.cloud import redis_v1
from google.protobuf import duration_pb2

from redisguard.daemon.checks.drift_live import compare
from redisguard.daemon.checks.ignore import IgnoreRules
from redisguard.daemon.config import IgnoreRule
from redisguard.daemon.fleet.declared import DeclaredInstance, from_cluster
from redisguard.daemon.reports.drift import PropertyDrift
from redisguard.program.config import ClusterConfig, load_stack_file
from redisguard.program.instance import declared_instance
from tests.fixtures.repo import REPO

STACK_FILES = [REPO / "program" / "Pulumi.staging.yaml", REPO / "program" / "Pulumi.production.yaml"]


def declared(cluster: ClusterConfig) -> DeclaredInstance:
    """The cluster as the config source declares it (redisguard's own key: every compared property)."""
    stack = load_stack_file(STACK_FILES[0])
    return from_cluster(cluster, stack, stack.project or "")


def instance_like(cluster: ClusterConfig, **overrides: Any) -> redis_v1.Instance:
    """An instance as Memorystore reports one built from the cluster: the declared instance with
    the output fields filled in and the "off" enums left unset, as the API leaves them."""
    instance = declared_instance(cluster, name=redis_v1.CloudRedisClient.instance_path("p", "europe-west1", cluster.name))
    instance.current_location_id = "europe-west1-c"
    instance.host = "10.0.0.3"
    # mode(mode.X): type checkers see a proto-plus enum's members as plain ints (as in program/instance.py).
    if cluster.transit_encryption == "DISABLED":
        transit = redis_v1.Instance.TransitEncryptionMode
        instance.transit_encryption_mode = transit(transit.TRANSIT_ENCRYPTION_MODE_UNSPECIFIED)
    if cluster.persistence_mode == "DISABLED":
        instance.persistence_config = redis_v1.PersistenceConfig()
    if not cluster.read_replicas:
        replicas = redis_v1.Instance.ReadReplicasMode
        instance.read_replicas_mode = replicas(replicas.READ_REPLICAS_MODE_UNSPECIFIED)
    for window in instance.maintenance_policy.weekly_maintenance_window:
        window.duration = duration_pb2.Duration(seconds=3600)
    for name, value in overrides.items():
        setattr(instance, name, value)
    return instance


def clusters() -> list[ClusterConfig]:
    return [c for f in STACK_FILES for c in load_stack_file(f).clusters]


@pytest.mark.parametrize("cluster", clusters(), ids=lambda c: c.name)
def test_an_instance_built_as_declared_is_in_sync(cluster: ClusterConfig) -> None:
    # Unset enums (persistence off, TLS off, no read replicas) equal their declared "off" values.
    assert compare(declared(cluster), instance_like(cluster), IgnoreRules()) == []


def test_changed_properties_name_path_expected_and_actual() -> None:
    sidekiq = load_stack_file(STACK_FILES[0]).cluster("redis-sidekiq")
    live = instance_like(
        sidekiq,
        memory_size_gb=3,
        redis_configs={"maxmemory-policy": "allkeys-lru", "activedefrag": "yes"},
        persistence_config={"persistence_mode": "DISABLED"},
        auth_enabled=False,
        maintenance_policy={"weekly_maintenance_window": [{"day": "MONDAY", "start_time": {"hours": 8}}]},
    )
    assert compare(declared(sidekiq), live, IgnoreRules()) == [
        PropertyDrift(path="authEnabled", expected=True, actual=False),
        PropertyDrift(path="maintenancePolicy.weeklyMaintenanceWindows[0].day", expected="SUNDAY", actual="MONDAY"),
        PropertyDrift(path="memorySizeGb", expected=2, actual=3),
        PropertyDrift(path="persistenceConfig.persistenceMode", expected="RDB", actual="DISABLED"),
        PropertyDrift(path="persistenceConfig.rdbSnapshotPeriod", expected="TWENTY_FOUR_HOURS", actual=None),
        PropertyDrift(path="redisConfigs.maxmemory-policy", expected="noeviction", actual="allkeys-lru"),
    ]


def test_labels_and_configs_added_by_hand_are_drift_unless_ignored() -> None:
    cache = load_stack_file(STACK_FILES[0]).cluster("redis-cache")
    live = instance_like(
        cache,
        labels={**cache.labels, "last-touched-by": "alice", "team": "data"},
        redis_configs={**cache.redis_configs(), "notify-keyspace-events": "Ex"},
    )
    assert compare(declared(cache), live, IgnoreRules()) == [
        PropertyDrift(path="labels.last-touched-by", expected=None, actual="alice"),
        PropertyDrift(path="labels.team", expected="platform", actual="data"),
        PropertyDrift(path="redisConfigs.notify-keyspace-events", expected=None, actual="Ex"),
    ]
    rules = IgnoreRules([IgnoreRule(type="gcp:redis/instance:Instance", path="labels.last-touched-by"), IgnoreRule(type="*", path="redisConfigs.notify-*")])
    assert compare(declared(cache), live, rules) == [PropertyDrift(path="labels.team", expected="platform", actual="data")]


def test_replicas_and_tls_are_compared_on_ha_instances() -> None:
    sessions = load_stack_file(STACK_FILES[0]).cluster("redis-sessions")
    live = instance_like(sessions, replica_count=0, transit_encryption_mode="DISABLED", read_replicas_mode="READ_REPLICAS_ENABLED")
    assert compare(declared(sessions), live, IgnoreRules()) == [
        PropertyDrift(path="readReplicasMode", expected="READ_REPLICAS_DISABLED", actual="READ_REPLICAS_ENABLED"),
        PropertyDrift(path="replicaCount", expected=1, actual=0),
        PropertyDrift(path="transitEncryptionMode", expected="SERVER_AUTHENTICATION", actual="DISABLED"),
    ]
