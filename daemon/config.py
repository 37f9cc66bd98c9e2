"""The `redisguard.yaml` model: one parse at the boundary into frozen, validated settings."""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from redisguard.core import secrets as core_secrets
from redisguard.core.errors import ConfigError
from redisguard.core.secrets import redact_url
from redisguard.core.validation import (
    YamlSyntaxError,
    closest,
    describe,
    field_bounds,
    format_loc,
    load_yaml,
    model_at,
    problem_list,
    unknown_argument,
    unknown_key,
)
from redisguard.program.config import CONFIG_KEY

ENV_PREFIX = "REDISGUARD_"
ENV_NESTED_DELIMITER = "__"
DEFAULT_CONFIG_FILE = "redisguard.yaml"

BACKEND_SCHEMES = ("file://", "gs://", "s3://", "azblob://", "https://", "http://")
# A stack name, optionally qualified for Pulumi Cloud as org/stack or org/project/stack.
_STACK_NAME = re.compile(r"^(?:[A-Za-z0-9_.-]+/){0,2}[A-Za-z0-9_.-]+$")
_PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_CONFIG_KEY = re.compile(r"^[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+$")

# Where a stack's declared side comes from (PulumiSettings.source).
Source = Literal["auto", "config", "state", "both"]
# A stack's source once `auto` is decided (fleet/declared.py).
SourceName = Literal["config", "state", "both"]


def split_list(value: Any, what: str) -> Any:
    """A list setting given as one string (an environment variable): comma-separated or a JSON list."""
    if isinstance(value, str):
        if value.lstrip().startswith("["):
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                raise ValueError(f"not a valid JSON list; use a comma-separated list of {what}") from None
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PulumiSettings(_Section):
    """Where the Pulumi program lives and which of its stacks redisguard watches."""

    work_dir: Path = Field(
        default=Path("program"),
        description="The Pulumi project folder (holds Pulumi.yaml and Pulumi.<stack>.yaml). "
        "A relative path is taken from the config file's folder.",
    )
    stacks: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("staging", "production"),
        min_length=1,
        description="Stacks to check, each with a Pulumi.<stack>.yaml in work_dir. Both engines "
        "read these; the live engine also treats their projects as the watched projects. A Pulumi "
        "Cloud stack may be written org/stack; its file is still Pulumi.<stack>.yaml.",
    )
    backend_url: str | None = Field(
        default=None,
        description="State backend (file://, gs://, s3://, azblob:// or a Pulumi Cloud https:// URL), "
        "passed as PULUMI_BACKEND_URL. Unset: the project's own settings or `pulumi login`. "
        "Pulumi Cloud reads PULUMI_ACCESS_TOKEN from the environment; it is never logged.",
    )
    config_key: str = Field(
        default=CONFIG_KEY,
        description="The stack-config key holding the flat list of clusters (the format of "
        f"{CONFIG_KEY}). A team whose own program reads the same format under its own key names it "
        "here, e.g. ampledash-infra:redis. Under a key other than redisguard's own program's, only "
        "the keys an entry states are compared: what your program sets by default is not known.",
    )
    source: Source = Field(
        default="auto",
        description="Where each stack's declared side comes from. `config`: the stack file's config_key. "
        "`state`: the stack's deployed resources, read from its backend with `pulumi stack export` "
        "(any program, any language; no stack file needed). `both`: state for drift, and the config's "
        "clusters not yet deployed or not yet applied as pending. `auto`: config when the stack file "
        "has config_key, else state.",
    )
    stack_sources: dict[str, Source] = Field(
        default_factory=dict,
        description="Per-stack overrides of `source`, e.g. {production: state}. Each key must be one of `stacks`.",
    )
    refresh_timeout_seconds: float = Field(
        default=600,
        gt=0,
        le=86400,
        description="Per-stack limit for `pulumi refresh --preview-only`, in seconds. At the limit the "
        "CLI and every process it started are killed and the stack reports a transient error. "
        "Ten minutes covers a large stack over a slow link; a hung provider should not block the "
        "next scheduled run.",
    )

    @field_validator("stacks", mode="before")
    @classmethod
    def _split_stacks(cls, value: Any) -> Any:
        # From the environment: REDISGUARD_PULUMI__STACKS=staging,production or a JSON list.
        return split_list(value, "stack names")

    @field_validator("stacks")
    @classmethod
    def _check_stacks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        problems = [
            f"stack name {name!r} may only hold letters, digits, '_', '.', '-' (optionally org/ or org/project/ before it)"
            for name in value
            if not _STACK_NAME.match(name)
        ]
        duplicates = sorted({name for name in value if value.count(name) > 1})
        if duplicates:
            problems.append(f"stack listed more than once: {', '.join(duplicates)}")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("config_key")
    @classmethod
    def _check_config_key(cls, value: str) -> str:
        if not _CONFIG_KEY.match(value):
            raise ValueError(f"{value!r} is not a stack-config key; expected PROJECT:KEY, e.g. {CONFIG_KEY}")
        return value

    @model_validator(mode="after")
    def _check_stack_sources(self) -> PulumiSettings:
        unknown = [name for name in self.stack_sources if name not in self.stacks]
        if unknown:
            raise ValueError(
                f"stack_sources names {', '.join(map(repr, unknown))}, not in stacks; allowed: {', '.join(self.stacks)}"
            )
        return self

    def source_of(self, stack: str) -> Source:
        """The configured source of one stack (its override, else `source`)."""
        return self.stack_sources.get(stack, self.source)

    @field_validator("backend_url")
    @classmethod
    def _check_backend(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(BACKEND_SCHEMES):
            raise ValueError(f"backend_url must start with one of {', '.join(BACKEND_SCHEMES)}")
        return value

    def stack_file(self, stack: str) -> Path:
        """The stack's config file, `<work_dir>/Pulumi.<stack>.yaml` (without any org/ prefix)."""
        return self.work_dir / f"Pulumi.{stack.rsplit('/', 1)[-1]}.yaml"


class GcpSettings(_Section):
    """How redisguard reaches the Google Cloud APIs (or the local emulator)."""

    redis_endpoint: str | None = Field(
        default=None,
        description="Memorystore admin API endpoint, e.g. http://127.0.0.1:8470 for the emulator. "
        "When set, requests go there with anonymous credentials; unset, the real API with "
        "Application Default Credentials.",
    )
    monitoring_endpoint: str | None = Field(
        default=None,
        description="Cloud Monitoring gRPC endpoint as host:port, e.g. 127.0.0.1:8471 for the emulator "
        "(insecure channel). Unset: the real API with Application Default Credentials. Read by the "
        "memory check (memory-report, the daemon).",
    )
    logging_endpoint: str | None = Field(
        default=None,
        description="Cloud Logging gRPC endpoint as host:port (insecure channel). Unset: "
        "monitoring_endpoint when that is set (the emulator serves both APIs on its gRPC port), else "
        "the real API with Application Default Credentials (unless redis_endpoint is set: then no log is read). Read for the Admin Activity audit log "
        "entries that explain a drift finding (needs roles/logging.viewer).",
    )
    projects: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Projects to watch besides the stacks' own (a stack's project is its gcp:project, "
        "or where its deployed instances are). Their instances are listed for the memory check, and "
        "the ones no watched stack holds are unmanaged.",
    )
    request_timeout_seconds: float = Field(
        default=30,
        gt=0,
        le=600,
        description="Timeout of one admin API or Monitoring call, in seconds (a 503 or 429 is retried "
        "within it); a listing of a whole project is a few paged calls, so 30 s leaves room for a "
        "slow API without hiding a hung one.",
    )

    @property
    def logging_target(self) -> str | None:
        """Where the audit log is read: logging_endpoint, else monitoring_endpoint (the emulator's one gRPC port), else Google."""
        return self.logging_endpoint or self.monitoring_endpoint

    @field_validator("projects", mode="before")
    @classmethod
    def _split_projects(cls, value: Any) -> Any:
        # From the environment: REDISGUARD_GCP__PROJECTS=team-a-prod,team-b-prod or a JSON list.
        return split_list(value, "project ids")

    @field_validator("projects")
    @classmethod
    def _check_projects(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [name for name in value if not _PROJECT_ID.match(name)]
        if bad:
            raise ValueError(
                f"{', '.join(map(repr, bad))}: not a project id (6 to 30 lowercase letters, digits and hyphens)"
            )
        return tuple(dict.fromkeys(value))

    @field_validator("redis_endpoint")
    @classmethod
    def _check_redis_endpoint(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+/?$", value):
            raise ValueError("redis_endpoint must look like http://HOST:PORT or https://HOST")
        return value.rstrip("/") if value else value

    @field_validator("monitoring_endpoint", "logging_endpoint")
    @classmethod
    def _check_grpc_endpoint(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not re.match(r"^[^/\s:]+(:\d+)?$", value):
            raise ValueError(f"{info.field_name} must look like HOST:PORT (no scheme)")
        return value


# The kinds of drift the engines report (a DriftItem's kind, reports/drift.py): `changed` (properties
# differ), `deleted` (in the Pulumi state, gone from the cloud), `missing` (declared, not live),
# `unmanaged` (live, declared nowhere). An ignore rule names one, or `*` for any.
DriftKind = Literal["changed", "deleted", "missing", "unmanaged"]
IgnoreKind = Literal[DriftKind, "*"]
IGNORE_KINDS: tuple[IgnoreKind, ...] = get_args(IgnoreKind)


@lru_cache(maxsize=512)
def _rule_pattern(rule_path: str) -> re.Pattern[str]:
    # `*` stands for one key or one index and never crosses a `.`; the rule also covers every
    # path below the one it names (ignoring `nodes` ignores `nodes[0].id`).
    text = re.escape(rule_path).replace(r"\*", r"[^.\[\]]*")
    return re.compile(rf"{text}(?:[.\[].*)?")


class IgnoreRule(_Section):
    """Something the drift engines never report: one property (`path`) of resources of one type
    (and name), or whole resources of one drift `kind` (no `path`), as driftctl's .driftignore does.

    The rule the engines apply as well (daemon/checks/ignore.py holds the built-in ones): a path is
    matched in the canonical form of daemon/fleet/paths.py."""

    type: str = Field(default="*", description="Pulumi type token, e.g. gcp:redis/instance:Instance; * for any.")
    path: str | None = Field(
        default=None,
        min_length=1,
        description="Property path in the engine's camelCase form, e.g. labels.last-touched-by or "
        "maintenancePolicy.weeklyMaintenanceWindows[*].duration. Covers everything below it; * is a wildcard. "
        "Leave it out (and set kind) to ignore whole resources.",
    )
    resource: str = Field(
        default="*",
        description="Resource name (glob); * for every resource of the type. An unmanaged instance's name is "
        "its full name (projects/P/locations/R/instances/ID); its short id matches too.",
    )
    kind: IgnoreKind | None = Field(
        default=None,
        description="Without path: ignore whole resources of this drift kind ("
        + ", ".join(get_args(DriftKind))
        + ", or * for any) whose name matches resource.",
    )

    @model_validator(mode="after")
    def _path_or_kind(self) -> IgnoreRule:
        if self.path is None and self.kind is None:
            raise ValueError(
                "a rule needs path (ignore one property) or kind (ignore whole resources: "
                + ", ".join(IGNORE_KINDS)
                + ")"
            )
        if self.path is not None and self.kind not in (None, "changed"):
            raise ValueError(f"path only applies to changed resources; drop path to ignore whole {self.kind} resources")
        return self

    def _matches_resource(self, resource_type: str, resource: str) -> bool:
        if self.type != "*" and not fnmatch.fnmatchcase(resource_type, self.type):
            return False
        if self.resource == "*":
            return True
        # An unmanaged instance is named in full (projects/P/locations/R/instances/ID); a rule
        # may name it so, or by the short id people call it by.
        return fnmatch.fnmatchcase(resource, self.resource) or fnmatch.fnmatchcase(
            resource.rsplit("/", 1)[-1], self.resource
        )

    def matches(self, resource_type: str, resource: str, path: str) -> bool:
        """Whether this property rule covers the (canonical) `path` of the resource."""
        if self.path is None or not self._matches_resource(resource_type, resource):
            return False
        return _rule_pattern(self.path).fullmatch(path) is not None

    def matches_resource(self, resource_type: str, resource: str, kind: DriftKind) -> bool:
        """Whether this whole-resource rule covers the resource drifted in this `kind`."""
        if self.path is not None or self.kind not in ("*", kind):
            return False
        return self._matches_resource(resource_type, resource)


# --- durations and schedules (the daemon's sections) -----------------------------------------

# Prometheus-style durations: one or more <number><unit> parts, largest unit first.
_DURATION = re.compile(r"^(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
DURATION_HELP = "a duration such as 30s, 5m, 1h or 1h30m"


def parse_duration(text: str) -> timedelta:
    """`30s`, `5m`, `1h`, `1h30m`, `2d` as a timedelta; ValueError naming the accepted forms."""
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None:
        raise ValueError(f"not {DURATION_HELP} (units d, h, m, s)")
    seconds = sum(int(value) * _UNIT_SECONDS[unit] for unit, value in match.groupdict().items() if value)
    return timedelta(seconds=seconds)


def format_duration_text(value: timedelta) -> str:
    """A timedelta as the config writes it (`1h30m`), for check-config and the effective-config log."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in _UNIT_SECONDS.items():
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _duration_input(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, str):
        # A bare number is ambiguous (seconds? minutes?); Prometheus refuses it too.
        raise ValueError(f"not {DURATION_HELP}: write the unit")
    return parse_duration(value)


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration_input),
    PlainSerializer(format_duration_text, return_type=str, when_used="json"),
]

SCHEDULE_HELP = f"{DURATION_HELP}, a cron expression of 5 fields (e.g. '*/5 * * * *', in UTC), or off"
MIN_INTERVAL = timedelta(seconds=1)


class Schedule(BaseModel):
    """When a check runs: every `interval`, on a `cron` expression (UTC), or never (`off`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    interval: timedelta | None = None
    cron: str | None = None

    @property
    def enabled(self) -> bool:
        return self.interval is not None or self.cron is not None

    @property
    def text(self) -> str:
        if self.interval is not None:
            return format_duration_text(self.interval)
        return self.cron if self.cron is not None else "off"

    def period_seconds(self) -> float | None:
        """Seconds between two runs (for a cron expression, between its next two fire times); None when off."""
        if self.interval is not None:
            return self.interval.total_seconds()
        if self.cron is None:
            return None
        trigger = cron_trigger(self.cron)
        now = datetime.now(UTC)
        first = trigger.get_next_fire_time(None, now)
        second = trigger.get_next_fire_time(first, first + timedelta(seconds=1)) if first else None
        if first is None or second is None:
            return None
        return (second - first).total_seconds()

    @model_serializer
    def _as_text(self) -> str:
        return self.text

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, Schedule | dict):
            return value
        # YAML 1.1 reads a bare `off` (and `no`, `false`) as False: accept it as off.
        if value is False:
            return {}
        if not isinstance(value, str):
            raise ValueError(f"not {SCHEDULE_HELP}")
        text = value.strip()
        if text.lower() in ("off", "false", "no", "never"):
            return {}
        if _DURATION.match(text) and text:
            interval = parse_duration(text)
            if interval < MIN_INTERVAL:
                raise ValueError("the interval must be at least 1s")
            return {"interval": interval}
        if len(text.split()) == 5:
            try:
                cron_trigger(text)
            except ValueError as exc:
                raise ValueError(f"not a valid cron expression: {exc}") from None
            return {"cron": text}
        raise ValueError(f"not {SCHEDULE_HELP}")


def cron_trigger(expression: str) -> Any:
    """APScheduler's trigger for a 5-field crontab line, in UTC (a server's clock, not a person's)."""
    from apscheduler.triggers.cron import CronTrigger

    return CronTrigger.from_crontab(expression, timezone=UTC)


def _schedule(default: str, description: str) -> Any:
    return Field(default_factory=lambda: Schedule.model_validate(default), description=description)


class ScheduleSettings(_Section):
    """When each check of the daemon runs. The key is also the check's name in metrics
    (the `check` label), /healthz, logs and `--once`."""

    # NoDecode: from the environment a schedule is the text (REDISGUARD_SCHEDULES__MEMORY=off), not JSON.
    drift_pulumi: Annotated[Schedule, NoDecode] = _schedule(
        "1h",
        f"`pulumi refresh --preview-only` per stack ({SCHEDULE_HELP}). Hourly: a refresh calls the "
        "provider for every resource and takes minutes on a large stack.",
    )
    drift_live: Annotated[Schedule, NoDecode] = _schedule(
        "5m",
        f"Declared config compared with the live instances, one listing per project ({SCHEDULE_HELP}). "
        "Every 5 minutes: one cheap API call per project.",
    )
    memory: Annotated[Schedule, NoDecode] = _schedule(
        "1m",
        f"Cloud Monitoring memory metrics per project ({SCHEDULE_HELP}). Every minute: Memorystore "
        "samples memory every 60 s, so more often reads the same points.",
    )
    compliance: Annotated[Schedule, NoDecode] = _schedule(
        "15m",
        f"The policy pack judges every live instance with its stack's policy config, one listing per "
        f"project ({SCHEDULE_HELP}). Every 15 minutes: one pack process per run (seconds to start), "
        "then about a millisecond per instance.",
    )

    def enabled(self) -> dict[str, Schedule]:
        """The enabled checks by name, in a fixed order."""
        return {name: schedule for name, schedule in self if schedule.enabled}


class ThresholdSettings(_Section):
    """When the memory check flags an instance."""

    memory_warning_ratio: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="Used memory over maxmemory at which an instance is flagged `warning`, 0 to 1. "
        "0.8 is Google's guidance for Memorystore: above it, scale up before eviction or OOM.",
    )
    memory_critical_ratio: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="Used memory over maxmemory at which an instance is flagged `critical`, 0 to 1; "
        "at least memory_warning_ratio.",
    )
    trend_window: Duration = Field(
        default=timedelta(hours=6),
        description="How far back the time-to-full estimate looks (a least-squares slope over the "
        "Monitoring series of that window): from 10m (a few 60 s samples) to 6w (Monitoring keeps "
        "6 weeks). 6h smooths a daily batch job without hiding a steady leak.",
    )

    @field_validator("trend_window")
    @classmethod
    def _check_window(cls, value: timedelta) -> timedelta:
        if not timedelta(minutes=10) <= value <= timedelta(weeks=6):
            raise ValueError("trend_window must be from 10m to 6w")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> ThresholdSettings:
        if self.memory_warning_ratio > self.memory_critical_ratio:
            raise ValueError(
                f"memory_warning_ratio ({self.memory_warning_ratio:g}) must not be above "
                f"memory_critical_ratio ({self.memory_critical_ratio:g})"
            )
        return self


class AuditSettings(_Section):
    """Who changed a drifted instance: the Admin Activity audit log (Cloud Audit Logs) of its project."""

    enabled: bool = Field(
        default=True,
        description="Read each drifted project's Admin Activity audit log once per run (one paged "
        "ListLogEntries call) and show who changed each drifted instance, when, how and which fields. "
        "Needs roles/logging.viewer; a project whose log cannot be read keeps its findings, with the "
        "cause unknown.",
    )
    pulumi_principals: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="The identities (service account or user emails) that run `pulumi up`: their "
        "changes are labelled as Pulumi's in the reports.",
    )
    lookback: Duration = Field(
        default=timedelta(days=7),
        description="How far back the audit log is read for an instance not seen in sync since "
        "redisguard started (a one-off drift-report, the daemon's first run): from 1h to 400d "
        "(Admin Activity logs are kept 400 days). Later runs of the daemon read from when the "
        "instance was last seen in sync.",
    )
    max_changes: int = Field(
        default=5, ge=1, le=100, description="The newest entries shown per finding; older ones are counted, not listed."
    )

    @field_validator("pulumi_principals", mode="before")
    @classmethod
    def _split_principals(cls, value: Any) -> Any:
        return split_list(value, "principals")

    @field_validator("lookback")
    @classmethod
    def _check_lookback(cls, value: timedelta) -> timedelta:
        if not timedelta(hours=1) <= value <= timedelta(days=400):
            raise ValueError("lookback must be from 1h to 400d")
        return value


DEFAULT_LISTEN = "127.0.0.1:9464"
_LISTEN = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.%\w]+)\]|(?P<host>[^:\[\]\s]*)):(?P<port>\d{1,5})$")


class ServerSettings(_Section):
    """Where the daemon serves /metrics, /healthz, /report and the status page."""

    listen: str = Field(
        default=DEFAULT_LISTEN,
        description="host:port to listen on; [::1]:9464 for IPv6, :9464 for every IPv4 interface. "
        "Loopback by default, so nothing is reachable from another host before TLS or basic auth is set up.",
    )
    web_config_file: Path | None = Field(
        default=None,
        description="Optional Prometheus exporter-toolkit web config (tls_server_config, "
        "basic_auth_users, http_server_config, rate_limit) for TLS, basic auth, headers and a rate limit. A relative path is "
        "taken from the config file's folder. Checked at start: a bad file stops the daemon.",
    )

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        match = _LISTEN.match(value.strip())
        if match is None:
            raise ValueError("listen must look like HOST:PORT, [IPV6]:PORT or :PORT")
        if int(match["port"]) > 65535:
            raise ValueError(f"port {match['port']} is above 65535")
        return value.strip()

    @property
    def host(self) -> str:
        match = _LISTEN.match(self.listen)
        assert match is not None
        return match["v6"] or match["host"] or "0.0.0.0"

    @property
    def port(self) -> int:
        match = _LISTEN.match(self.listen)
        assert match is not None
        return int(match["port"])


# RedisguardShardsMissing sums 2^ordinal in floating point: exact up to 2^53, so at most 50 shards.
MAX_SHARDS = 50


class ShardingSettings(_Section):
    """Which part of the fleet this daemon checks when several run side by side, as kube-state-metrics
    shards (daemon/sharding.py; docs/daemon.md, "Sharding"). Only `redisguard daemon` reads it: the
    report commands always cover every stack; `--shard`, `--total-shards` and `--pod` override it."""

    shard: int | Literal["auto"] = Field(
        default=0,
        description="This daemon's shard, 0 to total_shards - 1, or auto: the trailing -N of `pod` "
        "(a StatefulSet pod's ordinal; default the hostname, which is the pod's name in a StatefulSet).",
    )
    total_shards: int = Field(
        default=1,
        ge=1,
        le=MAX_SHARDS,
        description="How many daemons share the fleet (a StatefulSet's replicas). Every daemon must be "
        "given the same number: RedisguardShardingMismatch fires when they disagree.",
    )
    pod: str | None = Field(
        default=None,
        description="The pod name whose trailing -N is the shard when shard is auto (the Downward API's "
        "metadata.name); unset: the hostname.",
    )

    @field_validator("shard")
    @classmethod
    def _check_shard(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 0:
            raise ValueError("shard must be auto or a number from 0 to total_shards - 1")
        return value

    @model_validator(mode="after")
    def _shard_in_range(self) -> ShardingSettings:
        if isinstance(self.shard, int) and self.shard >= self.total_shards:
            raise ValueError(
                f"shard {self.shard} is not below total_shards {self.total_shards}: allowed shards are 0 to {self.total_shards - 1}"
            )
        return self


LogFormat = Literal["text", "json"]


class RedisguardConfig(BaseSettings):
    """Everything redisguard reads from `redisguard.yaml`, with `REDISGUARD_*` environment overrides."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        case_sensitive=False,
    )

    pulumi: PulumiSettings = Field(default_factory=PulumiSettings)
    parallelism: int = Field(
        default=4,
        ge=1,
        le=64,
        description="How many stack checks run at once. Each pulumi check is a CLI process plus "
        "provider plugins, so keep it near the core count.",
    )
    gcp: GcpSettings = Field(default_factory=GcpSettings)
    ignore: tuple[IgnoreRule, ...] = Field(
        default=(), description="Properties, or whole resources of one drift kind, never reported as drift."
    )
    server: ServerSettings = Field(default_factory=ServerSettings)
    schedules: ScheduleSettings = Field(default_factory=ScheduleSettings)
    thresholds: ThresholdSettings = Field(default_factory=ThresholdSettings)
    sharding: ShardingSettings = Field(default_factory=ShardingSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    log_format: LogFormat = Field(
        default="text",
        description="Daemon log lines on stderr: text (key=value fields) or json (one object per line).",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values come in as init kwargs; the environment must win over them so a
        # deployment can override one key without editing the file.
        return env_settings, init_settings

    def redacted(self) -> dict[str, Any]:
        """The effective config for a log line: a password or token in backend_url redacted,
        the access token (from the environment) only as set/unset."""
        data = self.model_dump(mode="json")
        if self.pulumi.backend_url:
            data["pulumi"]["backend_url"] = redact_url(self.pulumi.backend_url)
        data["pulumi"]["access_token"] = "[set]" if os.environ.get("PULUMI_ACCESS_TOKEN") else "[unset]"
        return data

    def with_sharding(self, overrides: Mapping[str, Any]) -> RedisguardConfig:
        """This config with the command line's sharding keys (--shard, --total-shards, --pod) over its own."""
        try:
            sharding = ShardingSettings.model_validate({**self.sharding.model_dump(), **overrides})
        except ValidationError as exc:
            flags = ", ".join(f"--{key.replace('_', '-')} {value}" for key, value in overrides.items())
            problems = "; ".join(error["msg"].removeprefix("Value error, ") for error in exc.errors())
            raise ConfigError(f"{flags}: {problems}") from None
        return self.model_copy(update={"sharding": sharding})

    def secrets(self) -> tuple[str, ...]:
        """Every credential this config knows of, to scrub from text: the secret environment
        variables (core.secrets) and the ones in the backend URL."""
        return core_secrets.secret_values([self.pulumi.backend_url])


def load_config(path: str | os.PathLike[str] | None = None) -> RedisguardConfig:
    """Read, validate and resolve a config file; raise ConfigError listing every problem at once.

    `path` None means `./redisguard.yaml`. `REDISGUARD_*` environment variables override its keys.
    """
    file = Path(path) if path is not None else Path(DEFAULT_CONFIG_FILE)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        hint = "" if path is not None else " (pass --config FILE)"
        raise ConfigError(f"{file}: config file not found{hint}") from exc
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read config file: {exc.strerror}") from exc
    try:
        data = load_yaml(text)
    except YamlSyntaxError as exc:
        raise ConfigError(f"{file}: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: the top level must be a mapping of keys ({', '.join(RedisguardConfig.model_fields)}), got {type(data).__name__}")
    return config_from_mapping(data, source=str(file), base_dir=file.resolve().parent)


def config_from_mapping(
    data: Mapping[str, Any],
    *,
    source: str = "<config>",
    base_dir: Path | None = None,
) -> RedisguardConfig:
    """Validate an already-parsed mapping (the demo builds one in memory)."""
    environ = dict(os.environ)
    env_problems = _unknown_env_vars(environ)
    try:
        config = RedisguardConfig(**dict(data))
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source, environ, extra=env_problems)) from exc
    except SettingsError as exc:
        # pydantic-settings could not even decode an environment value (e.g. bad JSON).
        cause = f": {exc.__cause__}" if exc.__cause__ else ""
        raise ConfigError(f"{source}: a {ENV_PREFIX}* environment override is invalid: {exc}{cause}") from exc
    if env_problems:
        raise ConfigError(problem_list(source, "config", env_problems))
    env_keys = {k.upper() for k in environ}

    def resolve(path: Path, loc: tuple[str, str]) -> Path:
        # Relative to the config file, unless the path came from the environment (then the current folder).
        anchor = Path.cwd() if _env_name(loc) in env_keys or base_dir is None else base_dir
        return (anchor / path).resolve()

    if not config.pulumi.work_dir.is_absolute():
        work_dir = resolve(config.pulumi.work_dir, ("pulumi", "work_dir"))
        config = config.model_copy(update={"pulumi": config.pulumi.model_copy(update={"work_dir": work_dir})})
    web_config = config.server.web_config_file
    if web_config is not None and not web_config.is_absolute():
        web_config = resolve(web_config, ("server", "web_config_file"))
        config = config.model_copy(update={"server": config.server.model_copy(update={"web_config_file": web_config})})
    return config


def _env_name(loc: Sequence[str | int]) -> str:
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(str(part) for part in loc).upper()


# REDISGUARD_* variables that are not config keys: the container image's health check URL
# (Dockerfile), read by its HEALTHCHECK, never by redisguard; and ./dev's build settings
# (tools/pulumi/build.py, docs/testing.md), which a developer's or CI's shell may hold while it
# runs redisguard (tests/daemon/test_config.py holds this list to what tools/ reads).
NOT_CONFIG_ENV_VARS = frozenset(
    {"REDISGUARD_HEALTHCHECK_URL", "REDISGUARD_CACHE_DIR", "REDISGUARD_THIRD_PARTY", "REDISGUARD_GO_BUILD_JOBS"}
)


def _config_env_names(model: type[BaseModel] = RedisguardConfig, loc: tuple[str, ...] = ()) -> dict[str, bool]:
    """Every REDISGUARD_* name that sets a config key, each mapped to whether it names a section."""
    names: dict[str, bool] = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        section = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        names[_env_name((*loc, name))] = section is not None
        if section is not None:
            names.update(_config_env_names(section, (*loc, name)))
    return names


def _unknown_env_vars(environ: Mapping[str, str]) -> list[str]:
    """REDISGUARD_* variables that set no config key: pydantic-settings would silently ignore
    REDISGUARD_PARALELISM or REDISGUARD_GCP_REDIS_ENDPOINT (one _ where __ belongs)."""
    names = _config_env_names()
    problems = []
    for var in sorted({key.upper() for key in environ if key.upper().startswith(ENV_PREFIX)}):
        if var in names or var in NOT_CONFIG_ENV_VARS:
            continue
        parent = var.rsplit(ENV_NESTED_DELIMITER, 1)[0] if ENV_NESTED_DELIMITER in var[len(ENV_PREFIX) :] else None
        if parent is not None and names.get(parent):
            continue  # an unknown key in a known section: validation names it, with the section's allowed keys
        close = closest(var, sorted(names))
        hint = f"; did you mean {close}?" if close else ""
        problems.append(
            f"{var}: environment variable sets no config key (REDISGUARD_ then the key, "
            f"{ENV_NESTED_DELIMITER} between levels){hint}"
        )
    return problems


def _model_at(loc: Sequence[str | int]) -> type[BaseModel] | None:
    return model_at(RedisguardConfig, loc)


def _format_errors(exc: ValidationError, source: str, environ: Mapping[str, str], extra: Sequence[str] = ()) -> str:
    env_keys = {k.upper() for k in environ}
    lines = []
    for err in exc.errors(include_url=False):
        loc = tuple(part for part in err["loc"] if not (isinstance(part, str) and part.startswith("function-")))
        where = format_loc(loc) or "(top level)"
        env_name = _env_name([p for p in loc if isinstance(p, str)])
        origin = f" (from {env_name})" if env_name in env_keys else ""
        if err["type"] == "extra_forbidden":
            parent = _model_at(loc[:-1])
            allowed = sorted(parent.model_fields) if parent else []
            lines.append(f"{where}: {unknown_key(str(loc[-1]) if loc else '', allowed)}{origin}")
            continue
        value = err.get("input")
        if isinstance(value, str):
            err = {**err, "input": redact_url(value)}  # a backend URL's password never reaches a message
        bounds = field_bounds(_model_at(loc[:-1]), str(loc[-1])) if loc else None
        lines.append(f"{where}: {describe(err, bounds=bounds)}{origin}")
    return problem_list(source, "config", [*lines, *extra])


def default_stack_names(config: RedisguardConfig, selected: Sequence[str] | None) -> tuple[str, ...]:
    """The configured stacks, or the selected subset; an unknown name is a ConfigError."""
    if not selected:
        return config.pulumi.stacks
    unknown = [name for name in selected if name not in config.pulumi.stacks]
    if unknown:
        raise ConfigError(unknown_argument("--stack", unknown, "not in pulumi.stacks", config.pulumi.stacks))
    return tuple(dict.fromkeys(selected))

