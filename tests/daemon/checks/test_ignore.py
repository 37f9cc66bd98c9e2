"""Ignore rules: the built-in ones and the config's, on paths in whatever form the engine prints them."""

from __future__ import annotations

import pytest

from redisguard.daemon.checks.ignore import IgnoreRules
from redisguard.daemon.config import IgnoreRule
from tests.fixtures.wire import INSTANCE_TYPE


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        ("currentLocationId", True),
        ("nodes[1].zone", True),  # everything below an ignored path
        ("maintenancePolicy.weeklyMaintenanceWindows[0].duration", True),  # [*] wildcard
        ("persistenceConfig.rdbNextSnapshotTime", True),
        ("maintenancePolicy.weeklyMaintenanceWindows[0].day", False),
        ("persistenceConfig.persistenceMode", False),
        ("nodesCount", False),  # a prefix of a key is not a parent path
        ("memorySizeGb", False),
    ],
)
def test_builtin_rules_cover_what_the_service_changes_by_itself(path: str, ignored: bool) -> None:
    assert IgnoreRules().ignored(INSTANCE_TYPE, "redis-cache", path) is ignored


def test_builtins_apply_only_to_memorystore_instances() -> None:
    assert not IgnoreRules().ignored("gcp:compute/instance:Instance", "vm", "currentLocationId")


def test_user_rules_match_type_resource_and_quoted_paths() -> None:
    rules = IgnoreRules(
        [
            IgnoreRule(type=INSTANCE_TYPE, path='labels["last-touched-by"]'),
            IgnoreRule(type="gcp:redis/*", path="redisConfigs.notify-*", resource="redis-cache"),
        ],
        builtins=False,
    )
    assert rules.ignored(INSTANCE_TYPE, "redis-sidekiq", "labels.last-touched-by")
    assert rules.ignored(INSTANCE_TYPE, "redis-sidekiq", 'labels["last-touched-by"]')
    assert not rules.ignored(INSTANCE_TYPE, "redis-sidekiq", "labels.team")
    assert rules.ignored(INSTANCE_TYPE, "redis-cache", "redisConfigs.notify-keyspace-events")
    assert not rules.ignored(INSTANCE_TYPE, "redis-sidekiq", "redisConfigs.notify-keyspace-events")
    assert not rules.ignored(INSTANCE_TYPE, "redis-cache", "currentLocationId")


def test_whole_resources_are_ignored_by_kind_and_name_glob() -> None:
    from redisguard.daemon.config import config_from_mapping
    from redisguard.daemon.reports.drift import DriftItem

    config = config_from_mapping(
        {
            "ignore": [
                {"kind": "unmanaged", "resource": "*scratch*"},
                {"kind": "missing", "resource": "redis-canary-*"},
                {"type": "*", "path": "*", "resource": "redis-noisy"},  # a property rule: hides no resource
            ]
        }
    )
    rules = IgnoreRules(config.ignore)
    scratch = "projects/p/locations/europe-west1/instances/redis-scratch-1"
    assert rules.resource_ignored(DriftItem(resource=scratch, kind="unmanaged"))
    assert rules.resource_ignored(DriftItem(resource="redis-canary-7", kind="missing"))
    # Only the kind the rule names.
    assert not rules.resource_ignored(DriftItem(resource="redis-canary-7", kind="changed"))
    assert not rules.resource_ignored(DriftItem(resource="projects/p/locations/r/instances/redis-prod", kind="unmanaged"))
    assert not rules.resource_ignored(DriftItem(resource="redis-noisy", kind="unmanaged"))
    assert rules.ignored(INSTANCE_TYPE, "redis-noisy", "labels.team")
