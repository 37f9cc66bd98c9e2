"""Typed stack config of the redis-fleet program: one parse of `redis-fleet:redis` into frozen models."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from redisguard.core.errors import ConfigError
from redisguard.core.memorystore import (
    DEFAULT_REDIS_VERSION,
    DEFAULT_REPLICAS_STANDARD_HA,
    DEFAULT_REPLICAS_WITH_READ_REPLICAS,
    DEFAULT_SNAPSHOT_PERIOD,
    INSTANCE_ID,
    KMS_KEY,
    LABEL_KEY,
    LABEL_VALUE,
    LFU_AND_DEFRAG_VERSIONS,
    MAX_MEMORY_GB,
    MAX_READ_REPLICAS,
    MIN_MEMORY_GB,
    MIN_MEMORY_GB_WITH_READ_REPLICAS,
    READ_REPLICA_VERSIONS,
    ZONE,
    ConnectMode,
    DayOfWeek,
    MaxMemoryPolicy,
    PersistenceMode,
    RedisVersion,
    SnapshotPeriod,
    Tier,
    TransitEncryption,
)
from redisguard.core.models import Frozen
from redisguard.core.validation import (
    YamlSyntaxError,
    describe,
    field_bounds,
    load_yaml,
    problem_list,
    unknown_key,
    yaml_value,
)

PROJECT_NAME = "redis-fleet"
CONFIG_KEY = f"{PROJECT_NAME}:redis"

FlagValue = str | int | bool

_FLAG_NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
# Flags redisguard sets itself on every `gcloud beta redis instances update`.
_RESERVED_FLAGS = frozenset({"project", "region", "quiet", "async", "format", "account", "configuration"})


class StackConfigError(ConfigError):
    """The stack config is invalid; `problems` holds one line per problem, all of them.

    `project` is the file's `gcp:project` when the file could be read that far (None when it is
    missing, not YAML or has no project): the live engine needs to know which project an
    unreadable stack watches before it may call any instance there unmanaged.
    """

    def __init__(self, source: str, problems: Sequence[str], *, project: str | None = None) -> None:
        self.source = source
        self.problems = list(problems)
        self.project = project
        super().__init__(problem_list(source, "the stack config", self.problems, bullet="- "))


def _several(problems: Sequence[tuple[str, str]]) -> PydanticCustomError:
    """One pydantic error carrying several (key, message) problems; _format_error splits them again."""
    return PydanticCustomError("several", "{problems}", {"problems": "\n".join(f"{k}\t{m}" for k, m in problems)})


Problem = tuple[str, str]
"""(key, message): one problem of a cluster, named by the key a user fixes."""


def _read_replicas_need_standard_ha(values: Mapping[str, Any]) -> Problem | None:
    if values.get("tier") == "BASIC" and values.get("read_replicas") is True:
        return "read_replicas", "true needs tier STANDARD_HA (tier is BASIC); allowed with BASIC: false"
    return None


def _basic_has_no_replicas(values: Mapping[str, Any]) -> Problem | None:
    count = values.get("replica_count", 0)
    if values.get("tier") == "BASIC" and "replica_count" in values and count not in (None, 0):
        return "replica_count", f"{count} does not fit tier BASIC; allowed: 0 or unset"
    return None


def _with_read_replicas(values: Mapping[str, Any]) -> bool:
    return values.get("tier") == "STANDARD_HA" and values.get("read_replicas") is True


def _replica_count_with_read_replicas(values: Mapping[str, Any]) -> Problem | None:
    count = values.get("replica_count", 0)
    if _with_read_replicas(values) and "replica_count" in values and count is not None and not 1 <= count <= MAX_READ_REPLICAS:
        return "replica_count", f"{count} does not fit STANDARD_HA with read replicas; allowed: 1 to {MAX_READ_REPLICAS}"
    return None


def _memory_for_read_replicas(values: Mapping[str, Any]) -> Problem | None:
    memory_gb = values.get("memory_gb")
    if _with_read_replicas(values) and isinstance(memory_gb, int) and memory_gb < MIN_MEMORY_GB_WITH_READ_REPLICAS:
        return (
            "memory_gb",
            f"{memory_gb} is too small for read replicas; allowed: {MIN_MEMORY_GB_WITH_READ_REPLICAS} to {MAX_MEMORY_GB}",
        )
    return None


def _version_for_read_replicas(values: Mapping[str, Any]) -> Problem | None:
    version = values.get("redis_version")
    if _with_read_replicas(values) and "redis_version" in values and version not in READ_REPLICA_VERSIONS:
        return (
            "redis_version",
            f"{version} does not support read replicas; allowed with read_replicas: {', '.join(READ_REPLICA_VERSIONS)}",
        )
    return None


def _replica_count_without_read_replicas(values: Mapping[str, Any]) -> Problem | None:
    count = values.get("replica_count", 0)
    if (
        values.get("tier") == "STANDARD_HA"
        and values.get("read_replicas") is False
        and "replica_count" in values
        and count not in (None, 1)
    ):
        return "replica_count", f"{count} needs read_replicas: true; allowed without read replicas: 1 or unset"
    return None


def _before_redis_4(values: Mapping[str, Any]) -> bool:
    return "redis_version" in values and values.get("redis_version") not in LFU_AND_DEFRAG_VERSIONS


def _lfu_needs_redis_4(values: Mapping[str, Any]) -> Problem | None:
    policy, version = values.get("max_memory_policy"), values.get("redis_version")
    if _before_redis_4(values) and isinstance(policy, str) and policy.endswith("-lfu"):
        return (
            "max_memory_policy",
            f"{policy} needs Redis 4.0 or later (redis_version is {version}); allowed with "
            f"{version}: the -lru, -random and -ttl policies and noeviction",
        )
    return None


def _active_defrag_needs_redis_4(values: Mapping[str, Any]) -> Problem | None:
    version = values.get("redis_version")
    if _before_redis_4(values) and values.get("active_defrag") is not None:
        return (
            "active_defrag",
            f"needs Redis 4.0 or later (redis_version is {version}); remove the key or use "
            f"redis_version {', '.join(LFU_AND_DEFRAG_VERSIONS)}",
        )
    return None


def _snapshot_period_needs_persistence(values: Mapping[str, Any]) -> Problem | None:
    if values.get("persistence_mode") == "DISABLED" and values.get("snapshot_period") is not None:
        return (
            "snapshot_period",
            f"{values['snapshot_period']} is set but persistence_mode is DISABLED; "
            "set persistence_mode: RDB or remove snapshot_period",
        )
    return None


def _maintenance_day_with_start_time(values: Mapping[str, Any]) -> Problem | None:
    start_set = values.get("maintenance_start_hours") is not None or values.get("maintenance_start_minutes") is not None
    if "maintenance_window_day" in values and values.get("maintenance_window_day") is None and start_set:
        return "maintenance_window_day", "is required when a maintenance start time is set"
    return None


# The rules that span several keys of one cluster, in the order their problems are listed.
CROSS_FIELD_RULES: tuple[Callable[[Mapping[str, Any]], Problem | None], ...] = (
    _read_replicas_need_standard_ha,
    _basic_has_no_replicas,
    _replica_count_with_read_replicas,
    _memory_for_read_replicas,
    _version_for_read_replicas,
    _replica_count_without_read_replicas,
    _lfu_needs_redis_4,
    _active_defrag_needs_redis_4,
    _snapshot_period_needs_persistence,
    _maintenance_day_with_start_time,
)


def cross_field_problems(values: Mapping[str, Any]) -> list[Problem]:
    """The (key, message) problems of rules that span several keys of one cluster (CROSS_FIELD_RULES).

    `values` holds the cluster's keys with defaults filled in. A key whose own value is
    invalid is left out, and every rule that needs it is skipped: that key is already
    reported, and the other rules still are, so one run lists every problem.
    """
    return [problem for rule in CROSS_FIELD_RULES if (problem := rule(values)) is not None]


class BetaFlags(Frozen):
    """Extra `gcloud beta redis instances update` flags for features the provider lacks.

    `apply` runs once when the instance is created, and again when the flags change or
    the instance is replaced; `revert` runs with the old flags before such a re-apply, and
    when the flags or the cluster are removed.
    """

    model_config = ConfigDict(strict=True)  # a YAML 1 is not a true, a "5" not a 5

    apply: dict[str, FlagValue] = Field(min_length=1)
    revert: dict[str, FlagValue] = Field(default_factory=dict)

    @field_validator("apply", "revert")
    @classmethod
    def _flag_names(cls, flags: dict[str, FlagValue]) -> dict[str, FlagValue]:
        for name in flags:
            if not _FLAG_NAME.match(name):
                raise PydanticCustomError(
                    "flag_name",
                    "flag name {name} is invalid; write it without leading dashes, as lowercase "
                    "words joined by hyphens (e.g. persistence-mode)",
                    {"name": yaml_value(name)},
                )
            if name in _RESERVED_FLAGS:
                raise PydanticCustomError(
                    "flag_reserved",
                    "flag {name} is set by redisguard itself; not allowed: {reserved}",
                    {"name": yaml_value(name), "reserved": ", ".join(sorted(_RESERVED_FLAGS))},
                )
        return flags


class ClusterConfig(Frozen):
    """One Memorystore Redis instance, in the flat snake_case format of the original team."""

    model_config = ConfigDict(strict=True)  # a YAML 1 is not a true, a "5" not a 5

    name: str
    memory_gb: int = Field(ge=MIN_MEMORY_GB, le=MAX_MEMORY_GB)
    tier: Tier = "STANDARD_HA"
    redis_version: RedisVersion = DEFAULT_REDIS_VERSION
    display_name: str | None = None
    location_id: str | None = None
    maintenance_window_day: DayOfWeek | None = None
    maintenance_start_hours: int | None = Field(default=None, ge=0, le=23)
    maintenance_start_minutes: int | None = Field(default=None, ge=0, le=59)
    max_memory_policy: MaxMemoryPolicy | None = None
    active_defrag: bool | None = None
    # RDB snapshots by default: backups are one of the properties the fleet must keep.
    persistence_mode: PersistenceMode = "RDB"
    snapshot_period: SnapshotPeriod | None = None
    # AUTH cannot be turned off; the key is accepted only so `auth_enabled: true` stays valid.
    auth_enabled: bool = True
    transit_encryption: TransitEncryption = "SERVER_AUTHENTICATION"
    replica_count: int | None = Field(default=None, ge=0, le=MAX_READ_REPLICAS)
    read_replicas: bool = False
    customer_managed_key: str | None = None
    connect_mode: ConnectMode = "DIRECT_PEERING"
    authorized_network: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    deletion_protection: bool = True
    beta_flags: BetaFlags | None = None
    # Adopt the existing instance of this name on the next `pulumi up` instead of creating one
    # (Pulumi's `import` resource option); remove the key once that `up` has run.
    import_existing: bool = False

    @field_validator("name")
    @classmethod
    def _instance_name(cls, name: str) -> str:
        if not INSTANCE_ID.match(name):
            raise PydanticCustomError(
                "instance_name",
                "{name} is not a valid instance name; it must start with a lowercase letter, "
                "hold only lowercase letters, digits and hyphens, be at most 40 characters "
                "long and not end with a hyphen",
                {"name": yaml_value(name)},
            )
        return name

    @field_validator("location_id")
    @classmethod
    def _zone(cls, zone: str | None) -> str | None:
        if zone is not None and not ZONE.match(zone):
            raise PydanticCustomError(
                "zone", "{zone} is not a zone; expected a zone such as europe-west1-b", {"zone": yaml_value(zone)}
            )
        return zone

    @field_validator("customer_managed_key")
    @classmethod
    def _kms_key(cls, key: str | None) -> str | None:
        if key is not None and not KMS_KEY.match(key):
            raise PydanticCustomError(
                "kms_key",
                "{key} is not a Cloud KMS key name; expected "
                "projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY",
                {"key": yaml_value(key)},
            )
        return key

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: dict[str, str]) -> dict[str, str]:
        # Every bad label at once, each under its own key path (labels.KEY).
        problems: list[tuple[str, str]] = []
        for key, value in labels.items():
            if not LABEL_KEY.match(key):
                problems.append(
                    (
                        key,
                        f"label key {yaml_value(key)} is invalid; it must start with a lowercase letter and hold at "
                        "most 63 lowercase letters, digits, underscores and hyphens",
                    )
                )
            elif not LABEL_VALUE.match(value):
                problems.append(
                    (
                        key,
                        f"{yaml_value(value)} is not a valid label value; values hold at most 63 "
                        "lowercase letters, digits, underscores and hyphens",
                    )
                )
        if problems:
            raise _several(problems)
        return labels

    @field_validator("auth_enabled", mode="before")
    @classmethod
    def _auth_cannot_be_disabled(cls, value: Any) -> Any:
        if value is not True:
            raise PydanticCustomError(
                "auth_required",
                "{value} is not allowed; AUTH is always on for redisguard instances "
                "(remove the key or set it to true)",
                {"value": yaml_value(value)},
            )
        return value

    @model_validator(mode="after")
    def _cross_field_rules(self) -> ClusterConfig:
        problems = cross_field_problems({name: getattr(self, name) for name in type(self).model_fields})
        if problems:
            raise _several(problems)
        return self

    def effective_display_name(self) -> str:
        # An explicit "" is kept: an imported instance without a display name must stay without one.
        return self.name if self.display_name is None else self.display_name

    def effective_snapshot_period(self) -> SnapshotPeriod | None:
        if self.persistence_mode != "RDB":
            return None
        return self.snapshot_period or DEFAULT_SNAPSHOT_PERIOD

    def effective_replica_count(self) -> int:
        """The replica count Memorystore will run, with its own defaults filled in."""
        if self.tier == "BASIC":
            return 0
        if self.replica_count is not None:
            return self.replica_count
        return DEFAULT_REPLICAS_WITH_READ_REPLICAS if self.read_replicas else DEFAULT_REPLICAS_STANDARD_HA

    def redis_configs(self) -> dict[str, str]:
        """The `redisConfigs` map Memorystore applies to the Redis process."""
        configs: dict[str, str] = {}
        if self.max_memory_policy is not None:
            configs["maxmemory-policy"] = self.max_memory_policy
        if self.active_defrag is not None:
            configs["activedefrag"] = "yes" if self.active_defrag else "no"
        return configs


@dataclass(frozen=True)
class StackConfig:
    """A whole stack file: where it came from, its GCP settings and its clusters."""

    stack: str
    source: str
    project: str | None
    region: str | None
    clusters: tuple[ClusterConfig, ...]
    key: str = CONFIG_KEY
    """The config key the clusters were read from."""
    has_key: bool = True
    """Whether the file has that key (False only when read with `required=False`)."""

    def cluster(self, name: str) -> ClusterConfig:
        for cluster in self.clusters:
            if cluster.name == name:
                return cluster
        raise KeyError(name)


def _format_error(prefix: str, error: ErrorDetails) -> list[str]:
    loc = [str(part) for part in error["loc"]]
    where = ".".join(loc)
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx", {})
    if kind == "several":
        return [
            f"{prefix}.{'.'.join([*loc, key])}: {message}"
            for key, message in (line.split("\t", 1) for line in str(ctx["problems"]).splitlines())
        ]
    if "beta_flags" in loc and loc[-1] in _FLAG_VALUE_BRANCHES:
        # pydantic reports a failed `str | int | bool` once per branch; the user wrote one value.
        where = ".".join(loc[:-1])
        return [
            f"{prefix}.{where}: {yaml_value(value)} is not a flag value; allowed: a string, a whole number, true or false"
        ]
    if kind == "extra_forbidden":
        return [f"{prefix}.{where}: {unknown_key(loc[-1], _fields_at(loc[:-1]))}"]
    message = describe(error, bounds=field_bounds(ClusterConfig, loc[-1]) if len(loc) == 1 else None)
    return [f"{prefix}.{where}: {message}" if where else f"{prefix}: {message}"]


_FLAG_VALUE_BRANCHES = frozenset({"str", "int", "bool"})

def _fields_at(loc: Sequence[str]) -> list[str]:
    """The keys allowed at a location inside a cluster entry (for "did you mean")."""
    if loc and loc[-1] == "beta_flags":
        return list(BetaFlags.model_fields)
    return [name for name in ClusterConfig.model_fields if name != "auth_enabled"]


def _partial_cross_field_problems(entry: Mapping[str, Any], errors: Sequence[ErrorDetails]) -> list[Problem]:
    """Cross-field problems of an entry that failed validation, from its valid keys only."""
    invalid = {str(error["loc"][0]) for error in errors if error["loc"]}
    values: dict[str, Any] = {}
    for name, field in ClusterConfig.model_fields.items():
        if name in invalid:
            continue
        if name in entry:
            values[name] = entry[name]
        elif not field.is_required():
            values[name] = field.get_default(call_default_factory=True)
    return cross_field_problems(values)


def _region_problems(entry: Mapping[str, Any], region: str | None, invalid: set[str]) -> list[tuple[str, str]]:
    """Keys that must agree with the stack's `gcp:region`: the zone and the Cloud KMS key's location."""
    if not region:
        return []
    problems: list[tuple[str, str]] = []
    zone = entry.get("location_id")
    if isinstance(zone, str) and "location_id" not in invalid and not zone.startswith(f"{region}-"):
        problems.append(
            ("location_id", f"{yaml_value(zone)} is not a zone of gcp:region {region}; allowed: a zone such as {region}-b")
        )
    key = entry.get("customer_managed_key")
    if isinstance(key, str) and "customer_managed_key" not in invalid:
        location = key.split("/")[3]
        if location != region:
            problems.append(
                (
                    "customer_managed_key",
                    f"the key is in {yaml_value(location)}, not in gcp:region {region}; Memorystore needs a key in "
                    "the instance's region",
                )
            )
    return problems


def parse_clusters(
    raw: Any, source: str, *, region: str | None = None, key: str = CONFIG_KEY
) -> tuple[ClusterConfig, ...]:
    """Validate the value of `redis-fleet:redis` (or the same format under `key`); raise StackConfigError with every problem.

    With `region` (the stack's `gcp:region`) the zone and Cloud KMS key are checked against it too.
    """
    if raw is None:
        raise StackConfigError(source, [f"{key}: required key is missing"])
    if not isinstance(raw, list):
        raise StackConfigError(source, [f"{key}: expected a list of clusters, got {yaml_value(raw)}"])
    problems: list[str] = []
    clusters: list[ClusterConfig] = []
    first_index: dict[str, int] = {}
    for index, entry in enumerate(raw):
        name = entry.get("name") if isinstance(entry, Mapping) else None
        prefix = f"{key}[{index}]" + (f" ({name})" if isinstance(name, str) else "")
        if not isinstance(entry, Mapping):
            problems.append(f"{prefix}: expected a mapping of cluster keys, got {yaml_value(entry)}")
            continue
        # Checked on the raw names so a duplicate is reported even next to other problems.
        if isinstance(name, str):
            if name in first_index:
                problems.append(
                    f"{prefix}.name: {yaml_value(name)} is already used by {key}[{first_index[name]}]; "
                    "instance names must be unique"
                )
            else:
                first_index[name] = index
        lines: list[str] = []
        invalid: set[str] = set()
        try:
            clusters.append(ClusterConfig.model_validate(dict(entry)))
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            invalid = {str(error["loc"][0]) for error in errors if error["loc"]}
            for error in errors:
                lines.extend(_format_error(prefix, error))
            # pydantic skips the cross-field rules once a key is invalid; run them on the keys
            # that are valid so one run still lists every problem.
            if not any(error["type"] == "several" and not error["loc"] for error in errors):
                partial = _partial_cross_field_problems(entry, errors)
                lines.extend(f"{prefix}.{key}: {message}" for key, message in partial)
        lines.extend(f"{prefix}.{key}: {message}" for key, message in _region_problems(entry, region, invalid))
        problems.extend(dict.fromkeys(lines))
    if problems:
        raise StackConfigError(source, problems)
    return tuple(clusters)


def stack_name_from_path(path: Path) -> str:
    """`Pulumi.staging.yaml` -> `staging`."""
    name = path.name
    if name.startswith("Pulumi.") and name.endswith((".yaml", ".yml")) and name.count(".") >= 2:
        return name.split(".", 1)[1].rsplit(".", 1)[0]
    return path.stem


def load_stack_file(path: str | Path) -> StackConfig:
    """Read a `Pulumi.<stack>.yaml` file and validate its redisguard config."""
    path = Path(path)
    return parse_stack_file(read_stack_text(path), path)


def read_stack_text(path: Path) -> str:
    """A stack file's text; StackConfigError naming the file when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StackConfigError(str(path), ["file not found"]) from None
    except OSError as exc:
        raise StackConfigError(str(path), [f"cannot read the file: {exc.strerror}"]) from None


def parse_stack_file(text: str, path: Path, *, key: str = CONFIG_KEY, required: bool = True) -> StackConfig:
    """Validate the redisguard config in the text of the stack file at `path` (errors name it).

    The clusters are read from `key`; without it the file is an error, or with `required=False` a
    stack with no clusters and `has_key` False (a stack whose clusters come from elsewhere).
    """
    source = str(path)
    try:
        document = load_yaml(text)
    except YamlSyntaxError as exc:
        raise StackConfigError(source, [f"not valid YAML at {exc}"]) from None
    if not isinstance(document, Mapping):
        raise StackConfigError(source, ["expected a mapping with a `config:` key"])
    # Pulumi stack files keep settings under `config:`; a bare mapping is accepted too so
    # a snippet in the original team's format works as it is.
    config = document.get("config", document)
    if not isinstance(config, Mapping):
        raise StackConfigError(source, ["config: expected a mapping of settings"])
    problems: list[str] = []
    project = config.get("gcp:project")
    region = config.get("gcp:region")
    for name, value in (("gcp:project", project), ("gcp:region", region)):
        if value is not None and not isinstance(value, str):
            problems.append(f"config.{name}: expected a string, got {yaml_value(value)}")
    has_key = key in config
    clusters: tuple[ClusterConfig, ...] = ()
    if has_key or required:
        try:
            clusters = parse_clusters(config.get(key), source, region=region if isinstance(region, str) else None, key=key)
        except StackConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise StackConfigError(source, problems, project=project if isinstance(project, str) else None)
    return StackConfig(
        stack=stack_name_from_path(path),
        source=source,
        project=project if isinstance(project, str) else None,
        region=region if isinstance(region, str) else None,
        clusters=clusters,
        key=key,
        has_key=has_key,
    )


def stack_from_config_values(stack: str, values: Mapping[str, str]) -> StackConfig:
    """The stack's clusters as the program reads them from the engine's config (`values`: every
    value a string, as `pulumi config`, PULUMI_CONFIG and `stack_config_values` hold them), with the
    program's error wording (`Pulumi.<stack>.yaml`); StackConfigError with every problem.

    `redis-fleet:redis` is parsed as JSON (Pulumi's `Config.get_object`); a value that is not JSON
    (`redis-fleet:redis: cache`) is left as it is, for validation to say what is expected."""
    source = f"Pulumi.{stack}.yaml"
    raw: Any = values.get(CONFIG_KEY)
    if raw is not None:
        try:
            raw = json.loads(raw)
        except ValueError:
            pass
    region = values.get("gcp:region")
    clusters = parse_clusters(raw, source, region=region)
    return StackConfig(stack=stack, source=source, project=values.get("gcp:project"), region=region, clusters=clusters)


def stack_config_values(stack_file: Path) -> dict[str, str]:
    """The stack file's config as the engine hands it to a program (and to a policy pack, as
    PULUMI_CONFIG): every value a string."""
    document = yaml.safe_load(stack_file.read_text(encoding="utf-8"))
    config = document.get("config", {})
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()}
