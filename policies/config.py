"""Policy-config schemas (one frozen model per policy) and the "is this instance production?" decision."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from pulumi_policy import PolicyConfigSchema
from pydantic import ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from redisguard.core.errors import ConfigError
from redisguard.core.memorystore import (
    ALL_DAYS,
    ALL_EVICTION_POLICIES,
    LABEL_KEY_PATTERN,
    MAX_MEMORY_GB,
    MIN_MEMORY_GB,
    MIN_MEMORY_GB_WITH_READ_REPLICAS,
    REDIS_VERSION_PATTERN,
    DayOfWeek,
    MaxMemoryPolicy,
    SnapshotPeriod,
)
from redisguard.core.models import Frozen
from redisguard.core.validation import describe, format_loc, unknown_key

# Memorystore's spelling of a Redis version as a pattern, not the list of versions the program can
# create, so a newer version can be allowed by config without a new release of the pack.
RedisVersion = Annotated[str, Field(pattern=REDIS_VERSION_PATTERN)]
LabelKey = Annotated[str, Field(pattern=LABEL_KEY_PATTERN)]
NonEmpty = Annotated[str, Field(min_length=1)]

DEFAULT_PRODUCTION_STACKS: tuple[str, ...] = ("production", "prod", "prod-*", "*-prod", "*-production")
DEFAULT_PRODUCTION_LABELS: dict[str, str] = {"env": "production"}


class PolicyConfigError(ConfigError):
    """A policy's config (from `--policy-pack-config`) is invalid; the message lists every problem."""


class PolicyConfig(Frozen):
    """Options every resource policy has; the keys in the config file are camelCase, as Pulumi's are."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    exempt_resources: tuple[str, ...] = Field(
        default=(),
        description="Resource names (globs, e.g. `legacy-*`) this policy skips. Each exemption should "
        "name a ticket in the config file's history; prefer fixing the instance.",
    )

    def exempts(self, resource_name: str) -> bool:
        return any(fnmatch.fnmatchcase(resource_name, pattern) for pattern in self.exempt_resources)


class ProductionScopedConfig(PolicyConfig):
    """Options of the policies that apply to production instances only."""

    production_stacks: tuple[str, ...] = Field(
        default=DEFAULT_PRODUCTION_STACKS,
        description="Stack-name globs that make every instance in the stack production.",
    )
    production_labels: dict[str, str] = Field(
        default=DEFAULT_PRODUCTION_LABELS,
        description="Labels (key: value) any one of which makes an instance production, whatever its stack.",
    )


class AuthRequiredConfig(PolicyConfig):
    """Config of `memorystore-auth-required`."""


class TransitEncryptionConfig(PolicyConfig):
    """Config of `memorystore-transit-encryption-required`."""


class PersistenceConfig(ProductionScopedConfig):
    """Config of `memorystore-persistence-in-production`."""

    max_snapshot_period: SnapshotPeriod = Field(
        default="TWELVE_HOURS",
        description="Longest accepted `rdbSnapshotPeriod`: at most this much data is lost when an instance "
        "is restored from its last snapshot. An unset period means 24 hours (Memorystore's default).",
    )


class MemoryBoundsConfig(PolicyConfig):
    """Config of `memorystore-memory-bounds`."""

    min_memory_gb: int = Field(
        default=MIN_MEMORY_GB,
        ge=MIN_MEMORY_GB,
        le=MAX_MEMORY_GB,
        description="Smallest accepted `memorySizeGb` (GB).",
    )
    max_memory_gb: int = Field(
        default=MAX_MEMORY_GB,
        ge=MIN_MEMORY_GB,
        le=MAX_MEMORY_GB,
        description="Largest accepted `memorySizeGb` (GB); 300 is Memorystore's limit.",
    )
    min_memory_gb_with_read_replicas: int = Field(
        default=MIN_MEMORY_GB_WITH_READ_REPLICAS,
        ge=MIN_MEMORY_GB_WITH_READ_REPLICAS,
        le=MAX_MEMORY_GB,
        description="Smallest accepted `memorySizeGb` (GB) when `readReplicasMode` is READ_REPLICAS_ENABLED; "
        "Memorystore refuses read replicas below 5 GB.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> MemoryBoundsConfig:
        if self.min_memory_gb > self.max_memory_gb:
            raise ValueError(f"minMemoryGb ({self.min_memory_gb}) must not exceed maxMemoryGb ({self.max_memory_gb})")
        return self


class HighAvailabilityConfig(ProductionScopedConfig):
    """Config of `memorystore-high-availability-in-production`."""


class CmekConfig(ProductionScopedConfig):
    """Config of `memorystore-cmek-in-production`."""


class MaintenanceWindowConfig(PolicyConfig):
    """Config of `memorystore-maintenance-window-required`."""

    allowed_days: tuple[DayOfWeek, ...] = Field(
        default=ALL_DAYS,
        min_length=1,
        description="Days a weekly maintenance window may start on (e.g. only weekend days).",
    )


class SupportedVersionConfig(PolicyConfig):
    """Config of `memorystore-supported-redis-version`."""

    allowed_versions: tuple[RedisVersion, ...] = Field(
        default=("REDIS_7_0", "REDIS_7_2"),
        min_length=1,
        description="Accepted `redisVersion` values, in Memorystore's spelling (REDIS_7_2).",
    )


class EvictionPolicyConfig(PolicyConfig):
    """Config of `memorystore-eviction-policy-explicit`."""

    allowed_policies: tuple[MaxMemoryPolicy, ...] = Field(
        default=ALL_EVICTION_POLICIES,
        min_length=1,
        description="Accepted `maxmemory-policy` values.",
    )


class PrivateNetworkingConfig(PolicyConfig):
    """Config of `memorystore-private-networking`."""

    forbidden_networks: tuple[NonEmpty, ...] = Field(
        default=("default",),
        description="VPC network names (the last segment of `authorizedNetwork`) that do not count as an "
        "explicit private network.",
    )


class RequiredLabelsConfig(PolicyConfig):
    """Config of `memorystore-required-labels`."""

    required_labels: tuple[LabelKey, ...] = Field(
        default=("env", "team"),
        description="Label keys every instance must carry with a non-empty value.",
    )


class DeletionProtectionConfig(ProductionScopedConfig):
    """Config of `memorystore-deletion-protection-in-production`."""

    require_explicit: bool = Field(
        default=False,
        description="When true, an unset `deletionProtection` is a violation too (the provider treats unset as "
        "on); `protect: true` on the resource always counts as protected.",
    )


class StackMemoryBudgetConfig(PolicyConfig):
    """Config of `memorystore-stack-memory-budget`."""

    max_total_memory_gb: int = Field(
        default=500,
        ge=1,
        description="Largest accepted sum of `memorySizeGb` over every Memorystore instance in the stack (GB).",
    )


C = TypeVar("C", bound=PolicyConfig)


def config_schema(model: type[PolicyConfig]) -> PolicyConfigSchema:
    """The JSON schema the engine validates `--policy-pack-config` against, with defaults it fills in."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    properties: dict[str, dict[str, Any]] = {}
    for name, prop in schema.get("properties", {}).items():
        prop = {k: v for k, v in prop.items() if k != "title"}
        if "items" in prop and isinstance(prop["items"], dict):
            prop["items"] = {k: v for k, v in prop["items"].items() if k != "title"}
        # Round-trip through JSON: tuples become lists, as in the config file.
        properties[name] = json.loads(json.dumps(prop))
    return PolicyConfigSchema(properties=properties)


_CACHE: dict[tuple[type, str], Any] = {}


def parse_config(policy_name: str, model: type[C], raw: Mapping[str, Any] | None) -> C:
    """One policy's config from what the engine sent to Configure; every problem in one error."""
    data = dict(raw or {})
    key = (model, json.dumps(data, sort_keys=True, default=str))
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    try:
        parsed = model.model_validate(_integral_floats(data))
    except ValidationError as exc:
        problems = []
        errors = exc.errors(include_url=False)
        item_errors = {err["loc"][0] for err in errors if len(err["loc"]) > 1}
        for err in errors:
            if err["type"] == "too_short" and err["loc"] and err["loc"][0] in item_errors:
                continue  # pydantic's echo of a bad item ("not 0 items after validation")
            where = format_loc(err["loc"]) or "(config)"
            if err["type"] == "extra_forbidden":
                options = [*sorted(f.alias or n for n, f in model.model_fields.items()), "enforcementLevel"]
                problems.append(f"{where}: {unknown_key(str(err['loc'][-1]), options, noun='option')}")
            else:
                problems.append(f"{where}: {describe(err)}")
        raise PolicyConfigError(f"policy config for '{policy_name}' is invalid: " + "; ".join(problems)) from exc
    _CACHE[key] = parsed
    return parsed


def _integral_floats(value: Any) -> Any:
    # Config crosses the wire as a protobuf Struct, where every number is a double: 300 arrives
    # as 300.0. Give integral numbers back their int type so int options validate.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral_floats(v) for v in value]
    return value


@dataclass(frozen=True)
class ProductionDecision:
    """Whether an instance counts as production, and why (shown in messages)."""

    production: bool
    reason: str


def is_production(stack: str, labels: Mapping[str, Any] | None, config: ProductionScopedConfig) -> ProductionDecision:
    """Production when the stack name matches a configured glob or the instance carries a production label."""
    # A fully qualified name (org/project/stack) is matched by its stack part.
    short = stack.rsplit("/", 1)[-1]
    for pattern in config.production_stacks:
        if fnmatch.fnmatchcase(short, pattern):
            return ProductionDecision(True, f"stack '{short}' matches '{pattern}'")
    for key, value in config.production_labels.items():
        if labels is not None and labels.get(key) == value:
            return ProductionDecision(True, f"label {key}={value}")
    return ProductionDecision(
        False,
        f"stack '{short}' matches none of {', '.join(config.production_stacks) or '(no globs)'} "
        f"and no production label ({', '.join(f'{k}={v}' for k, v in config.production_labels.items()) or 'none'})",
    )
