"""The rules that keep noisy properties out of drift reports: the built-in ones plus the config's `ignore:` rules."""

from __future__ import annotations

from collections.abc import Iterable

from redisguard.core.pulumi import INSTANCE_TYPE
from redisguard.daemon.config import IgnoreRule
from redisguard.daemon.fleet.paths import normalize_path
from redisguard.daemon.reports.drift import DriftItem

# Properties Memorystore changes by itself (placement after a failover, scheduled maintenance,
# snapshot times, node lists, rotated CA certs) or that only ever exist as outputs. Reporting
# them would make every scan "drift" and teach people to ignore the report.
BUILTIN_IGNORED_PATHS: dict[str, tuple[str, ...]] = {
    INSTANCE_TYPE: (
        "currentLocationId",
        "maintenanceSchedule",
        "maintenanceSchedules",
        "maintenanceVersion",
        "persistenceConfig.rdbNextSnapshotTime",
        "persistenceConfig.rdbSnapshotStartTime",
        "nodes",
        "serverCaCerts",
        "host",
        "port",
        "readEndpoint",
        "readEndpointPort",
        "persistenceIamIdentity",
        "createTime",
        "maintenancePolicy.createTime",
        "maintenancePolicy.updateTime",
        "maintenancePolicy.weeklyMaintenanceWindows[*].duration",
    ),
}

_BUILTIN_RULES = tuple(IgnoreRule(type=type_, path=p) for type_, paths in BUILTIN_IGNORED_PATHS.items() for p in paths)


class IgnoreRules:
    """The built-in rules plus the user's `ignore:` rules from redisguard.yaml (`RedisguardConfig.ignore`)."""

    def __init__(self, user_rules: Iterable[IgnoreRule] = (), builtins: bool = True) -> None:
        # A rule written with Pulumi's quoted form (labels["a.b"]) is brought to the canonical
        # form; one with wildcards is kept as written (`[*]` is not a path Pulumi prints).
        user = tuple(
            r.model_copy(update={"path": normalize_path(r.path)}) if r.path and '"' in r.path else r for r in user_rules
        )
        self.rules: tuple[IgnoreRule, ...] = (_BUILTIN_RULES if builtins else ()) + user

    def ignored(self, resource_type: str, resource: str, path: str) -> bool:
        """Whether one property of a changed resource is never reported."""
        canonical = normalize_path(path)
        return any(rule.matches(resource_type, resource, canonical) for rule in self.rules)

    def resource_ignored(self, item: DriftItem) -> bool:
        """Whether a whole drifted resource (a missing cluster, an unmanaged instance, ...) is never reported."""
        return any(rule.matches_resource(item.type, item.resource, item.kind) for rule in self.rules)
