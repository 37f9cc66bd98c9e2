"""The Memorystore policies: one plain check per policy, wrapped so a value unknown during preview never crashes or blocks."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
)

from redisguard.core.memorystore import DEFAULT_SNAPSHOT_PERIOD, SNAPSHOT_PERIOD_HOURS
from redisguard.core.pulumi import INSTANCE_TYPE
from redisguard.policies.config import (
    AuthRequiredConfig,
    CmekConfig,
    DeletionProtectionConfig,
    EvictionPolicyConfig,
    HighAvailabilityConfig,
    MaintenanceWindowConfig,
    MemoryBoundsConfig,
    PersistenceConfig,
    PolicyConfig,
    PrivateNetworkingConfig,
    ProductionScopedConfig,
    RequiredLabelsConfig,
    StackMemoryBudgetConfig,
    SupportedVersionConfig,
    TransitEncryptionConfig,
    config_schema,
    is_production,
    parse_config,
)

if TYPE_CHECKING:
    from redisguard.policies.pack_config import StackPolicyConfig

PACK_NAME = "redisguard-memorystore"
PACK_DISPLAY_NAME = "redisguard: Memorystore for Redis"
PACK_DESCRIPTION = (
    "Blocks Memorystore Redis instances without AUTH, TLS, persistence, HA or sane memory bounds, "
    "and advises on keys, maintenance windows, versions, eviction, networking, labels and budgets."
)
TAGS = ["gcp", "memorystore", "redis"]

_UNKNOWN_SENTINELS = frozenset(
    {
        UNKNOWN_BOOLEAN_VALUE,
        UNKNOWN_NUMBER_VALUE,
        UNKNOWN_STRING_VALUE,
        UNKNOWN_ARRAY_VALUE,
        UNKNOWN_ASSET_VALUE,
        UNKNOWN_ARCHIVE_VALUE,
        UNKNOWN_OBJECT_VALUE,
    }
)


class _Marker:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


MISSING: Any = _Marker("MISSING")
"""The property is absent or null: the provider's default applies."""
UNKNOWN: Any = _Marker("UNKNOWN")
"""The property's value is not known yet (preview of a value computed from another resource)."""


def lookup(node: Any, path: Sequence[str | int]) -> Any:
    """The value at `path` below `node`, or MISSING, or UNKNOWN; never raises for odd shapes."""
    for key in path:
        try:
            if isinstance(node, str) and node in _UNKNOWN_SENTINELS:
                return UNKNOWN
            if isinstance(key, int):
                if not isinstance(node, Sequence) or isinstance(node, str) or key >= len(node):
                    return MISSING
                node = node[key]
            else:
                if not isinstance(node, Mapping) or key not in node:
                    return MISSING
                node = node[key]
        except UnknownValueError:
            return UNKNOWN
    if isinstance(node, str) and node in _UNKNOWN_SENTINELS:
        return UNKNOWN
    return MISSING if node is None else node


def show(value: Any) -> str:
    """A property value as a user reads it in a message."""
    if value is MISSING:
        return "not set"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return f"'{value}'"
    try:
        return json.dumps(_plain(value), sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(lookup(value, [k])) for k in value}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(lookup(value, [i])) for i in range(len(value))]
    if value is UNKNOWN:
        return "<unknown>"
    return value


def as_number(value: Any) -> float | None:
    """A numeric property as a number; None for anything else (bool included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def _gb(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def current_stack() -> str:
    """The stack being deployed, as the engine tells the pack ("" when run outside Pulumi)."""
    # The engine sets PULUMI_STACK for every policy pack it starts; reading it directly avoids the
    # SDK's placeholder name ("stack") when the pack runs outside Pulumi.
    return os.environ.get("PULUMI_STACK", "")


def stack_of(urn: str) -> str:
    """The stack a resource belongs to: its URN's (`urn:pulumi:<stack>::<project>::<type>::<name>`),
    which is the engine's PULUMI_STACK for every resource it asks about; else current_stack(). One
    pack process can so judge resources of many stacks (the daemon's compliance check)."""
    head, sep, _ = urn.partition("::")
    if sep and head.startswith("urn:pulumi:"):
        stack = head.removeprefix("urn:pulumi:")
        if stack:
            return stack
    return current_stack()


class Instance:
    """One Memorystore instance as a policy sees it: its inputs, its stack, what could not be read."""

    def __init__(self, name: str, props: Mapping[str, Any], stack: str, protect: bool = False) -> None:
        self.name = name
        self.props = props
        self.stack = stack
        self.protect = protect
        self.unknown: list[str] = []
        self.not_applicable: str | None = None
        self.production_reason = ""

    def get(self, path: str) -> Any:
        value = lookup(self.props, path.split("."))
        if value is UNKNOWN:
            self.unknown.append(path)
        return value

    def labels(self) -> Mapping[str, Any] | None:
        """The instance's labels with known values; None while the whole map is unknown."""
        labels = self.get("labels")
        if labels is UNKNOWN:
            return None
        if not isinstance(labels, Mapping):
            return {}
        known = {}
        for key in labels:
            value = lookup(labels, [key])
            if value is UNKNOWN:
                self.unknown.append(f"labels.{key}")
            elif value is not MISSING:
                known[str(key)] = value
        return known

    def production(self, config: ProductionScopedConfig) -> bool:
        decision = is_production(self.stack, None, config)
        if not decision.production:
            # Labels are read only when the stack name does not decide: an unknown label
            # must not hold up a policy in a production stack.
            decision = is_production(self.stack, self.labels(), config)
        if not decision.production:
            self.not_applicable = f"'{self.name}' is not production: {decision.reason}"
        else:
            self.production_reason = decision.reason
        return decision.production


C = TypeVar("C", bound=PolicyConfig)


# --- the checks: each returns the violation messages for one instance -------------------------


def _expect(inst: Instance, prop: str, required: Any, provider_default: str, requirement: str) -> list[str]:
    """One property that must have one value; unset means Memorystore's default."""
    value = inst.get(prop)
    if value is UNKNOWN or (type(value) is type(required) and value == required):
        return []
    found = f"not set (Memorystore's default is {provider_default})" if value is MISSING else show(value)
    return [f"'{inst.name}': {requirement}; found {found}."]


def check_auth(inst: Instance, _config: AuthRequiredConfig) -> list[str]:
    return _expect(inst, "authEnabled", True, "false", "authEnabled must be true so every client needs the AUTH string")


def check_transit_encryption(inst: Instance, _config: TransitEncryptionConfig) -> list[str]:
    return _expect(
        inst,
        "transitEncryptionMode",
        "SERVER_AUTHENTICATION",
        "DISABLED",
        "transitEncryptionMode must be SERVER_AUTHENTICATION (TLS in transit)",
    )


def check_persistence(inst: Instance, config: PersistenceConfig) -> list[str]:
    if not inst.production(config):
        return []
    mode = inst.get("persistenceConfig.persistenceMode")
    if mode is UNKNOWN:
        return []
    if mode != "RDB":
        found = "not set (Memorystore's default is DISABLED)" if mode is MISSING else show(mode)
        return [
            f"'{inst.name}': persistenceConfig.persistenceMode must be RDB in production "
            f"({inst.production_reason}); found {found}."
        ]
    period = inst.get("persistenceConfig.rdbSnapshotPeriod")
    if period is UNKNOWN:
        return []
    effective = DEFAULT_SNAPSHOT_PERIOD if period is MISSING else period
    limit = config.max_snapshot_period
    hours = SNAPSHOT_PERIOD_HOURS.get(effective) if isinstance(effective, str) else None
    if hours is None:
        return [
            f"'{inst.name}': persistenceConfig.rdbSnapshotPeriod must be one of "
            f"{', '.join(SNAPSHOT_PERIOD_HOURS)}; found {show(period)}."
        ]
    if hours > SNAPSHOT_PERIOD_HOURS[limit]:
        found = f"not set (Memorystore's default is {DEFAULT_SNAPSHOT_PERIOD})" if period is MISSING else show(period)
        return [
            f"'{inst.name}': persistenceConfig.rdbSnapshotPeriod must be {limit} or shorter in production; "
            f"found {found}."
        ]
    return []


def check_memory_bounds(inst: Instance, config: MemoryBoundsConfig) -> list[str]:
    raw = inst.get("memorySizeGb")
    if raw is UNKNOWN:
        return []
    size = as_number(raw)
    if size is None:
        return [f"'{inst.name}': memorySizeGb must be a number of GB; found {show(raw)}."]
    problems = []
    if not config.min_memory_gb <= size <= config.max_memory_gb:
        problems.append(
            f"'{inst.name}': memorySizeGb must be between {config.min_memory_gb} and {config.max_memory_gb} GB; "
            f"found {_gb(size)}."
        )
    # Read only when it matters, so an unknown mode does not hold up a size that is fine either way.
    if size < config.min_memory_gb_with_read_replicas and inst.get("readReplicasMode") == "READ_REPLICAS_ENABLED":
        problems.append(
            f"'{inst.name}': memorySizeGb must be at least {config.min_memory_gb_with_read_replicas} GB with "
            f"read replicas (readReplicasMode READ_REPLICAS_ENABLED); found {_gb(size)}."
        )
    return problems


def check_high_availability(inst: Instance, config: HighAvailabilityConfig) -> list[str]:
    if not inst.production(config):
        return []
    return _expect(
        inst, "tier", "STANDARD_HA", "BASIC", f"tier must be STANDARD_HA in production ({inst.production_reason})"
    )


def check_cmek(inst: Instance, config: CmekConfig) -> list[str]:
    if not inst.production(config):
        return []
    key = inst.get("customerManagedKey")
    if key is UNKNOWN or (isinstance(key, str) and key.strip()):
        return []
    found = "not set (Google-managed encryption)" if key is MISSING or key == "" else show(key)
    return [
        f"'{inst.name}': customerManagedKey must name a Cloud KMS key "
        f"(projects/P/locations/L/keyRings/R/cryptoKeys/K) in production; found {found}."
    ]


def check_maintenance_window(inst: Instance, config: MaintenanceWindowConfig) -> list[str]:
    windows = inst.get("maintenancePolicy.weeklyMaintenanceWindows")
    if windows is UNKNOWN:
        return []
    if windows is MISSING or (isinstance(windows, Sequence) and not isinstance(windows, str) and len(windows) == 0):
        return [
            f"'{inst.name}': a weekly maintenance window must be declared "
            "(maintenancePolicy.weeklyMaintenanceWindows with a day and a startTime); found none."
        ]
    if not isinstance(windows, Sequence) or isinstance(windows, str):
        return [f"'{inst.name}': maintenancePolicy.weeklyMaintenanceWindows must be a list; found {show(windows)}."]
    problems = []
    for index in range(len(windows)):
        where = f"maintenancePolicy.weeklyMaintenanceWindows[{index}]"
        if lookup(windows, [index]) is UNKNOWN:
            inst.unknown.append(where)
            continue
        # Each half is checked on its own: a known day outside the allowed days is wrong whatever
        # the start time turns out to be.
        day = lookup(windows, [index, "day"])
        start = lookup(windows, [index, "startTime"])
        if day is UNKNOWN:
            inst.unknown.append(f"{where}.day")
        elif day is MISSING:
            problems.append(f"'{inst.name}': {where}.day must be set; found not set.")
        elif day not in config.allowed_days:
            problems.append(
                f"'{inst.name}': {where}.day must be one of {', '.join(config.allowed_days)}; found {show(day)}."
            )
        if start is UNKNOWN:
            inst.unknown.append(f"{where}.startTime")
        elif start is MISSING:
            problems.append(f"'{inst.name}': {where}.startTime must be set (hours and minutes, UTC); found not set.")
    return problems


def check_supported_version(inst: Instance, config: SupportedVersionConfig) -> list[str]:
    version = inst.get("redisVersion")
    if version is UNKNOWN or version in config.allowed_versions:
        return []
    found = (
        "not set (Memorystore picks its current default, so upgrades happen unplanned)"
        if version is MISSING
        else show(version)
    )
    return [f"'{inst.name}': redisVersion must be one of {', '.join(config.allowed_versions)}; found {found}."]


def check_eviction_policy(inst: Instance, config: EvictionPolicyConfig) -> list[str]:
    policy = inst.get("redisConfigs.maxmemory-policy")
    if policy is UNKNOWN or policy in config.allowed_policies:
        return []
    if policy is MISSING:
        return [
            f"'{inst.name}': redisConfigs[\"maxmemory-policy\"] must be set explicitly "
            f"(one of {', '.join(config.allowed_policies)}); found not set (Memorystore's default volatile-lru "
            "evicts only keys with a TTL and fails writes once those are gone)."
        ]
    return [
        f"'{inst.name}': redisConfigs[\"maxmemory-policy\"] must be one of {', '.join(config.allowed_policies)}; "
        f"found {show(policy)}."
    ]


def check_private_networking(inst: Instance, config: PrivateNetworkingConfig) -> list[str]:
    problems = []
    mode = inst.get("connectMode")
    if mode is not UNKNOWN and mode != "PRIVATE_SERVICE_ACCESS":
        found = "not set (Memorystore's default is DIRECT_PEERING)" if mode is MISSING else show(mode)
        problems.append(f"'{inst.name}': connectMode must be PRIVATE_SERVICE_ACCESS; found {found}.")
    network = inst.get("authorizedNetwork")
    # An unknown network is a reference to a network created in the same program: explicit.
    if network is MISSING or (isinstance(network, str) and not network.strip()):
        problems.append(
            f"'{inst.name}': authorizedNetwork must name a VPC network explicitly; "
            "found not set (Memorystore attaches the project's 'default' network)."
        )
    elif network is not UNKNOWN:
        short = network.rstrip("/").rsplit("/", 1)[-1] if isinstance(network, str) else None
        if short is None:
            problems.append(f"'{inst.name}': authorizedNetwork must be a network name or path; found {show(network)}.")
        elif short in config.forbidden_networks or network in config.forbidden_networks:
            problems.append(
                f"'{inst.name}': authorizedNetwork must not be {', '.join(config.forbidden_networks)} "
                f"(a shared, default network); found {show(network)}."
            )
    return problems


def check_required_labels(inst: Instance, config: RequiredLabelsConfig) -> list[str]:
    labels = inst.labels()
    if labels is None:
        return []
    unknown_keys = {u.removeprefix("labels.") for u in inst.unknown if u.startswith("labels.")}
    missing = [
        key
        for key in config.required_labels
        if key not in unknown_keys and not (isinstance(value := labels.get(key), str) and value.strip())
    ]
    if not missing:
        return []
    found = ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "no labels"
    return [
        f"'{inst.name}': labels must include {', '.join(config.required_labels)} with non-empty values; "
        f"missing {', '.join(missing)} (found {found})."
    ]


def check_deletion_protection(inst: Instance, config: DeletionProtectionConfig) -> list[str]:
    if not inst.production(config):
        return []
    if inst.protect:
        return []
    value = inst.get("deletionProtection")
    if value is UNKNOWN or value is True or (value is MISSING and not config.require_explicit):
        return []
    found = "not set (requireExplicit is on)" if value is MISSING else show(value)
    return [
        f"'{inst.name}': deletionProtection must be true in production ({inst.production_reason}), "
        f"or the resource protected with `protect: true`; found {found}."
    ]


# --- stack policy -------------------------------------------------------------------------------


def validate_stack_memory_budget(args: StackValidationArgs, report: ReportViolation) -> None:
    config = parse_config(STACK_MEMORY_BUDGET, StackMemoryBudgetConfig, args.get_config())
    sizes: list[tuple[str, float]] = []
    unknown: list[str] = []
    for resource in args.resources:
        if resource.resource_type != INSTANCE_TYPE or config.exempts(resource.name):
            continue
        size = lookup(resource.props, ["memorySizeGb"])
        if size is UNKNOWN:
            unknown.append(resource.name)
        elif (number := as_number(size)) is not None:
            sizes.append((resource.name, number))
    total = sum(size for _, size in sizes)
    if total > config.max_total_memory_gb:
        breakdown = ", ".join(f"{name} {_gb(size)}" for name, size in sorted(sizes, key=lambda s: (-s[1], s[0])))
        note = f"; {len(unknown)} more not yet known: {', '.join(unknown)}" if unknown else ""
        report(
            f"total memorySizeGb of the stack's Memorystore instances must be at most "
            f"{config.max_total_memory_gb} GB; found {_gb(total)} GB ({breakdown}{note}).",
            None,
        )


# --- the policy table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule(Generic[C]):
    """One resource policy: its contract metadata and its check."""

    name: str
    display_name: str
    description: str
    level: EnforcementLevel
    severity: Severity
    config: type[C]
    check: Callable[[Instance, C], list[str]]
    remediation: str
    url: str


def production_in(stack: str, labels: Mapping[str, Any], policy_config: StackPolicyConfig) -> bool:
    """Whether the pack holds an instance of `stack` with `labels` to be production under that stack's
    policy config: the one decision (policies/config.py's is_production) with the settings of each
    production-scoped policy (production when any of them says so). For who is told of a finding
    (the daemon's alert on a mandatory violation in production), not for a verdict."""
    return any(
        is_production(stack, labels, policy_config.options(rule.name, rule.config)).production
        for rule in RULES
        if issubclass(rule.config, ProductionScopedConfig)
    )


def _validator(rule: Rule[Any]) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        if args.resource_type != INSTANCE_TYPE:
            return
        config = parse_config(rule.name, rule.config, args.get_config())
        if config.exempts(args.name):
            args.not_applicable(f"'{args.name}' is listed in exemptResources")
        protect = bool(getattr(args.opts, "protect", False))
        inst = Instance(args.name, args.props, stack_of(args.urn), protect=protect)
        messages = rule.check(inst, config)
        for message in messages:
            report(message, None)
        if messages:
            return
        reasons = [inst.not_applicable] if inst.not_applicable else []
        if inst.unknown:
            # `pulumi up` analyses the resource again once the values are known.
            reasons.append(
                f"{', '.join(dict.fromkeys(inst.unknown))} of '{args.name}' not known during preview; "
                "checked again during update"
            )
        if reasons:
            args.not_applicable("; ".join(reasons))

    return validate


AUTH_REQUIRED = "memorystore-auth-required"
TRANSIT_ENCRYPTION_REQUIRED = "memorystore-transit-encryption-required"
PERSISTENCE_IN_PRODUCTION = "memorystore-persistence-in-production"
MEMORY_BOUNDS = "memorystore-memory-bounds"
HIGH_AVAILABILITY_IN_PRODUCTION = "memorystore-high-availability-in-production"
CMEK_IN_PRODUCTION = "memorystore-cmek-in-production"
MAINTENANCE_WINDOW_REQUIRED = "memorystore-maintenance-window-required"
SUPPORTED_REDIS_VERSION = "memorystore-supported-redis-version"
EVICTION_POLICY_EXPLICIT = "memorystore-eviction-policy-explicit"
PRIVATE_NETWORKING = "memorystore-private-networking"
REQUIRED_LABELS = "memorystore-required-labels"
DELETION_PROTECTION_IN_PRODUCTION = "memorystore-deletion-protection-in-production"
STACK_MEMORY_BUDGET = "memorystore-stack-memory-budget"

_MANDATORY = EnforcementLevel.MANDATORY
_ADVISORY = EnforcementLevel.ADVISORY
STACK_MEMORY_BUDGET_LEVEL = _ADVISORY

RULES: tuple[Rule[Any], ...] = (
    Rule(
        AUTH_REQUIRED,
        "Redis AUTH required",
        "Memorystore instances must require Redis AUTH (authEnabled: true).",
        _MANDATORY,
        Severity.HIGH,
        AuthRequiredConfig,
        check_auth,
        "Set `authEnabled: true` (Python: `auth_enabled=True`). Clients then read the AUTH string from the "
        "instance's `authString` output (a secret) and send it with AUTH on connect.",
        "https://cloud.google.com/memorystore/docs/redis/about-redis-auth",
    ),
    Rule(
        TRANSIT_ENCRYPTION_REQUIRED,
        "TLS in transit required",
        "Memorystore instances must encrypt traffic in transit (transitEncryptionMode: SERVER_AUTHENTICATION).",
        _MANDATORY,
        Severity.HIGH,
        TransitEncryptionConfig,
        check_transit_encryption,
        "Set `transitEncryptionMode: SERVER_AUTHENTICATION`. It can only be set when the instance is created, "
        "so an existing instance is replaced: plan a migration. Clients connect with TLS and trust the "
        "instance's `serverCaCerts`.",
        "https://cloud.google.com/memorystore/docs/redis/about-in-transit-encryption",
    ),
    Rule(
        PERSISTENCE_IN_PRODUCTION,
        "RDB persistence in production",
        "Production Memorystore instances must take RDB snapshots, at least as often as configured "
        "(default: every 12 hours).",
        _MANDATORY,
        Severity.HIGH,
        PersistenceConfig,
        check_persistence,
        "Set `persistenceConfig: {persistenceMode: RDB, rdbSnapshotPeriod: ONE_HOUR|SIX_HOURS|TWELVE_HOURS}` "
        "(no longer than the policy's maxSnapshotPeriod). In the redis-fleet program: `persistence_mode: RDB` "
        "and `snapshot_period` in the stack file.",
        "https://cloud.google.com/memorystore/docs/redis/about-rdb-snapshots",
    ),
    Rule(
        MEMORY_BOUNDS,
        "Memory within bounds",
        "Memorystore instances must have memorySizeGb within the configured bounds (default 1-300 GB), "
        "and at least 5 GB with read replicas.",
        _MANDATORY,
        Severity.MEDIUM,
        MemoryBoundsConfig,
        check_memory_bounds,
        "Set `memorySizeGb` within the bounds; scale an instance up before it runs out rather than sizing it "
        "to the limit. With `readReplicasMode: READ_REPLICAS_ENABLED` use at least 5 GB or disable replicas.",
        "https://cloud.google.com/memorystore/docs/redis/memory-management-best-practices",
    ),
    Rule(
        HIGH_AVAILABILITY_IN_PRODUCTION,
        "High availability in production",
        "Production Memorystore instances must use the STANDARD_HA tier (a replica in another zone, automatic failover).",
        _MANDATORY,
        Severity.HIGH,
        HighAvailabilityConfig,
        check_high_availability,
        "Set `tier: STANDARD_HA`. The tier cannot be changed in place: create a STANDARD_HA instance, "
        "migrate the data (RDB export/import) and switch clients over.",
        "https://cloud.google.com/memorystore/docs/redis/redis-tiers",
    ),
    Rule(
        CMEK_IN_PRODUCTION,
        "Customer-managed key in production",
        "Production Memorystore instances should be encrypted at rest with a customer-managed Cloud KMS key.",
        _ADVISORY,
        Severity.MEDIUM,
        CmekConfig,
        check_cmek,
        "Create a Cloud KMS key in the instance's region, grant the Memorystore service agent "
        "roles/cloudkms.cryptoKeyEncrypterDecrypter on it, and set `customerManagedKey` to its full name. "
        "Set at creation only: an existing instance is replaced.",
        "https://cloud.google.com/memorystore/docs/redis/about-cmek",
    ),
    Rule(
        MAINTENANCE_WINDOW_REQUIRED,
        "Weekly maintenance window",
        "Memorystore instances should declare a weekly maintenance window, so Google's upgrades happen at a known time.",
        _ADVISORY,
        Severity.LOW,
        MaintenanceWindowConfig,
        check_maintenance_window,
        "Set `maintenancePolicy.weeklyMaintenanceWindows: [{day: SUNDAY, startTime: {hours: 8, minutes: 0}}]` "
        "(UTC), on a day the policy allows, at the quietest hour of your traffic.",
        "https://cloud.google.com/memorystore/docs/redis/maintenance-policy",
    ),
    Rule(
        SUPPORTED_REDIS_VERSION,
        "Supported Redis version",
        "Memorystore instances should pin a Redis version from the allow-list (default REDIS_7_0, REDIS_7_2).",
        _ADVISORY,
        Severity.MEDIUM,
        SupportedVersionConfig,
        check_supported_version,
        "Set `redisVersion` to an allowed version. The upgrade is in place: a BASIC instance blocks and then "
        "flushes its data, a STANDARD_HA instance fails over. Export first and schedule it at low traffic.",
        "https://cloud.google.com/memorystore/docs/redis/supported-versions",
    ),
    Rule(
        EVICTION_POLICY_EXPLICIT,
        "Explicit eviction policy",
        'Memorystore instances should set redisConfigs["maxmemory-policy"] explicitly, so behaviour when memory '
        "is full is a decision.",
        _ADVISORY,
        Severity.LOW,
        EvictionPolicyConfig,
        check_eviction_policy,
        'Set `redisConfigs: {"maxmemory-policy": ...}`: `noeviction` for queues and data that must not '
        "vanish, `allkeys-lru` for caches, `volatile-*` when only keys with a TTL may go.",
        "https://cloud.google.com/memorystore/docs/redis/supported-redis-configurations",
    ),
    Rule(
        PRIVATE_NETWORKING,
        "Private networking",
        "Memorystore instances should connect through private services access to an explicit, non-default VPC network.",
        _ADVISORY,
        Severity.MEDIUM,
        PrivateNetworkingConfig,
        check_private_networking,
        "Set `connectMode: PRIVATE_SERVICE_ACCESS` and `authorizedNetwork` to your VPC "
        "(projects/P/global/networks/N) with a private services access range allocated. Both are set at "
        "creation: an existing instance is replaced.",
        "https://cloud.google.com/memorystore/docs/redis/networking",
    ),
    Rule(
        REQUIRED_LABELS,
        "Required labels",
        "Memorystore instances should carry the configured labels (default env and team).",
        _ADVISORY,
        Severity.LOW,
        RequiredLabelsConfig,
        check_required_labels,
        "Add the missing keys under `labels`, e.g. `labels: {env: production, team: platform}`. Labels "
        "change in place, without a restart.",
        "https://cloud.google.com/resource-manager/docs/creating-managing-labels",
    ),
    Rule(
        DELETION_PROTECTION_IN_PRODUCTION,
        "Deletion protection in production",
        "Production Memorystore instances should be protected from deletion (deletionProtection, or protect: true).",
        _ADVISORY,
        Severity.MEDIUM,
        DeletionProtectionConfig,
        check_deletion_protection,
        "Set `deletionProtection: true` on the instance (and/or the `protect: true` resource option). To "
        "delete a protected instance on purpose, turn it off in one reviewed change first.",
        "https://cloud.google.com/memorystore/docs/redis/general-best-practices",
    ),
)

STACK_RULE_URL = "https://cloud.google.com/memorystore/docs/redis/pricing"


def all_policies() -> list[Policy]:
    """Every policy of the pack, in the order of the contract table."""
    policies: list[Policy] = [
        ResourceValidationPolicy(
            name=rule.name,
            description=rule.description,
            validate=_validator(rule),
            enforcement_level=rule.level,
            config_schema=config_schema(rule.config),
            display_name=rule.display_name,
            severity=rule.severity,
            tags=TAGS,
            remediation_steps=rule.remediation,
            url=rule.url,
        )
        for rule in RULES
    ]
    policies.append(
        StackValidationPolicy(
            name=STACK_MEMORY_BUDGET,
            description="The Memorystore instances of a stack should not add up to more memory than the configured "
            "budget (default 500 GB).",
            validate=validate_stack_memory_budget,
            enforcement_level=STACK_MEMORY_BUDGET_LEVEL,
            config_schema=config_schema(StackMemoryBudgetConfig),
            display_name="Stack memory budget",
            severity=Severity.LOW,
            tags=TAGS,
            remediation_steps="Shrink over-provisioned instances (`redisguard memory-report --stack STACK` shows "
            "each instance's used memory and usage ratio against its capacity), remove unused ones, or raise "
            "maxTotalMemoryGb in the stack's policy config after a cost review.",
            url=STACK_RULE_URL,
        )
    )
    return policies
