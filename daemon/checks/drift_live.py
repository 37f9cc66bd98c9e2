"""The live drift engine: the clusters declared in the stack files compared with the instances the Memorystore API lists."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.cloud import redis_v1
from google.type import dayofweek_pb2

from redisguard.core.errors import ConfigError, PermanentError, TransientError
from redisguard.core.gcp import api_errors, redis_client, retry_policy
from redisguard.core.memorystore import ALL_EVICTION_POLICIES, READY
from redisguard.core.pulumi import INSTANCE_TYPE
from redisguard.daemon.checks.ignore import IgnoreRules
from redisguard.daemon.config import GcpSettings, RedisguardConfig
from redisguard.daemon.reports.drift import DriftItem, InstanceState, PropertyDrift
from redisguard.program.config import ClusterConfig, StackConfig, StackConfigError, parse_stack_file, read_stack_text
from redisguard.program.instance import declared_instance

log = logging.getLogger(__name__)

# The Memorystore API's own maximum page size: a project of up to 1000 instances is one call.
PAGE_SIZE = 1000
API_NAME = "Memorystore API"


def make_client(gcp: GcpSettings) -> redis_v1.CloudRedisClient:
    """The process's admin API client for the configured endpoint (anonymous, for the emulator) or the real API."""
    return redis_client(gcp.redis_endpoint)


def list_project_instances(
    client: redis_v1.CloudRedisClient, project: str, gcp: GcpSettings
) -> list[redis_v1.Instance]:
    """Every instance of a project in every region: one paged `list_instances(locations/-)`."""
    parent = client.common_location_path(project, "-")
    where = gcp.redis_endpoint or f"the {API_NAME}"
    timeout = gcp.request_timeout_seconds
    with api_errors(f"list_instances {parent}", where=where, api=API_NAME, timeout=timeout):
        pager = client.list_instances(
            request=redis_v1.ListInstancesRequest(parent=parent, page_size=PAGE_SIZE),
            retry=retry_policy(timeout),
            timeout=timeout,
        )
        instances: list[redis_v1.Instance] = []
        for page in pager.pages:
            if page.unreachable:
                # A partial listing would report the unreachable regions' instances as missing.
                raise TransientError(f"{parent}: regions unreachable: {', '.join(page.unreachable)}")
            instances.extend(page.instances)
        return instances


class Inventory:
    """The live instances of each watched project, listed at most once per scan (shared by stacks running in parallel)."""

    def __init__(self, gcp: GcpSettings) -> None:
        self._gcp = gcp
        self._lock = threading.Lock()
        self._listings: dict[str, Future[list[redis_v1.Instance]]] = {}

    def instances(self, project: str) -> list[redis_v1.Instance]:
        with self._lock:
            future = self._listings.get(project)
            owner = future is None
            if owner:
                future = self._listings[project] = Future()
        assert future is not None
        if owner:
            try:
                # The client is built once per process (core/gcp.py); a failure to build it is this listing's.
                future.set_result(list_project_instances(make_client(self._gcp), project, self._gcp))
            except BaseException as exc:
                future.set_exception(exc)
        return future.result()


# --- declared vs live properties ----------------------------------------------------------------


_WINDOW = "maintenancePolicy.weeklyMaintenanceWindows[0]"
_WINDOW_DAY, _WINDOW_HOURS, _WINDOW_MINUTES = (f"{_WINDOW}.day", f"{_WINDOW}.startTime.hours", f"{_WINDOW}.startTime.minutes")


# Pulumi inputs the program sets that are not compared, each with why: the API cannot change them
# after creation (a change replaces the instance, which the pulumi engine reports), or they are
# not an API field. tests/test_drift_live_compare.py holds every input to this list or the reader.
NOT_COMPARED = {
    "name": "the instance id: a different one is a missing instance plus an unmanaged one",
    "project": "where the instance is listed",
    "region": "where the instance is listed",
    "connectMode": "immutable after creation",
    "authorizedNetwork": "immutable after creation",
    "customerManagedKey": "immutable after creation",
    "locationId": "immutable after creation (and chosen by Memorystore when unset)",
    "deletionProtection": "the provider's own guard against `pulumi destroy`, not an API field",
}


def expected_properties(cluster: ClusterConfig) -> dict[str, Any]:
    """The compared properties of the instance the cluster declares, read as a live instance is read."""
    return instance_properties(declared_instance(cluster))


def _enum_name(value: Any, unspecified_as: str | None) -> str | None:
    name = getattr(value, "name", None) or str(value)
    return unspecified_as if name.endswith("_UNSPECIFIED") else name


def instance_properties(instance: redis_v1.Instance) -> dict[str, Any]:
    """The compared properties of an instance, by their Pulumi input paths (camelCase); the AUTH string is never read.

    The one reader of both sides: the live instance from the API and the declared one
    (program/instance.py), so a property compared is a property read the same way twice.
    """
    persistence = instance.persistence_config
    props: dict[str, Any] = {
        "displayName": instance.display_name or None,
        "memorySizeGb": instance.memory_size_gb,
        "tier": _enum_name(instance.tier, None),
        "redisVersion": instance.redis_version or None,
        "authEnabled": bool(instance.auth_enabled),
        # Memorystore leaves these unset when they are off; unset and off are the same state.
        "transitEncryptionMode": _enum_name(instance.transit_encryption_mode, "DISABLED"),
        "persistenceConfig.persistenceMode": _enum_name(persistence.persistence_mode, "DISABLED"),
        "persistenceConfig.rdbSnapshotPeriod": _enum_name(persistence.rdb_snapshot_period, None),
    }
    if instance.tier == redis_v1.Instance.Tier.STANDARD_HA:
        # A BASIC instance has no replicas to count; the program sets neither for it.
        props["replicaCount"] = instance.replica_count
        props["readReplicasMode"] = _enum_name(instance.read_replicas_mode, "READ_REPLICAS_DISABLED")
    windows = list(instance.maintenance_policy.weekly_maintenance_window)
    if windows:
        window = windows[0]
        props[_WINDOW_DAY] = dayofweek_pb2.DayOfWeek.Name(window.day) if window.day else None
        props[_WINDOW_HOURS] = window.start_time.hours
        props[_WINDOW_MINUTES] = window.start_time.minutes
    for key, value in instance.redis_configs.items():
        props[f"redisConfigs.{key}"] = value
    for key, value in instance.labels.items():
        props[f"labels.{key}"] = value
    return props


# --- live -> declared: the inverse of expected_properties (codify, adopt) ------------------------

# The cluster keys that declare each compared property path (labels.KEY is the `labels` key).
PATH_KEYS: dict[str, tuple[str, ...]] = {
    "displayName": ("display_name",),
    "memorySizeGb": ("memory_gb",),
    "tier": ("tier", "replica_count", "read_replicas"),
    "redisVersion": ("redis_version",),
    "authEnabled": ("auth_enabled",),
    "transitEncryptionMode": ("transit_encryption",),
    "persistenceConfig.persistenceMode": ("persistence_mode", "snapshot_period"),
    "persistenceConfig.rdbSnapshotPeriod": ("snapshot_period",),
    _WINDOW_DAY: ("maintenance_window_day", "maintenance_start_hours", "maintenance_start_minutes"),
    _WINDOW_HOURS: ("maintenance_start_hours",),
    _WINDOW_MINUTES: ("maintenance_start_minutes",),
    "replicaCount": ("replica_count",),
    "readReplicasMode": ("read_replicas", "replica_count"),
    "redisConfigs.maxmemory-policy": ("max_memory_policy",),
    "redisConfigs.activedefrag": ("active_defrag",),
}


def keys_for_path(path: str) -> tuple[str, ...]:
    """The cluster keys that declare a compared property path; () when the flat config has none."""
    if path.startswith("labels."):
        return ("labels",)
    return PATH_KEYS.get(path, ())


@dataclass(frozen=True)
class LiveEntry:
    """A live instance as a cluster entry of the flat format, and what that format cannot say."""

    entry: dict[str, Any]
    """Keys in the order the shipped stack files use; compares equal to the instance (compare() == [])."""
    unexpressible: tuple[tuple[str, str], ...] = ()
    """(property path, why) for what runs but no cluster key declares."""


def cluster_entry(instance: redis_v1.Instance) -> LiveEntry:
    """The cluster entry that declares exactly what `instance` runs (the AUTH string is never read).

    `authEnabled: false` has no entry key (AUTH is always on in the program): it is reported in
    `unexpressible`, and the entry's AUTH stays on, so callers must refuse rather than write it.
    """
    key = split_instance_name(instance.name)
    live = instance_properties(instance)
    entry: dict[str, Any] = {"name": key.instance_id}
    if instance.display_name != key.instance_id:
        entry["display_name"] = instance.display_name  # "" stays "": the program sends it as it is
    entry["memory_gb"] = live["memorySizeGb"]
    entry["tier"] = live["tier"]
    if live["redisVersion"]:
        entry["redis_version"] = live["redisVersion"]
    if instance.location_id:
        entry["location_id"] = instance.location_id
    unexpressible: list[tuple[str, str]] = []
    configs = dict(instance.redis_configs)
    policy = configs.pop("maxmemory-policy", None)
    if policy is not None:
        if policy in ALL_EVICTION_POLICIES:
            entry["max_memory_policy"] = policy
        else:
            unexpressible.append(("redisConfigs.maxmemory-policy", f"{policy!r} is not an eviction policy max_memory_policy allows"))
    defrag = configs.pop("activedefrag", None)
    if defrag is not None:
        if defrag in ("yes", "no"):
            entry["active_defrag"] = defrag == "yes"
        else:
            unexpressible.append(("redisConfigs.activedefrag", f"{defrag!r} is neither yes nor no"))
    for name in sorted(configs):
        unexpressible.append(
            (f"redisConfigs.{name}", "the flat config has no key for this Redis config; the program would remove it")
        )
    entry["persistence_mode"] = live["persistenceConfig.persistenceMode"]
    if entry["persistence_mode"] == "RDB" and live["persistenceConfig.rdbSnapshotPeriod"]:
        entry["snapshot_period"] = live["persistenceConfig.rdbSnapshotPeriod"]
    entry["transit_encryption"] = live["transitEncryptionMode"]
    if live["tier"] == "STANDARD_HA":
        entry["read_replicas"] = live["readReplicasMode"] == "READ_REPLICAS_ENABLED"
        entry["replica_count"] = live["replicaCount"]
    connect_mode = _enum_name(instance.connect_mode, "DIRECT_PEERING")
    if connect_mode != "DIRECT_PEERING":
        entry["connect_mode"] = connect_mode
    if instance.authorized_network:
        entry["authorized_network"] = instance.authorized_network
    if instance.customer_managed_key:
        entry["customer_managed_key"] = instance.customer_managed_key
    if live.get(_WINDOW_DAY):
        entry["maintenance_window_day"] = live[_WINDOW_DAY]
        entry["maintenance_start_hours"] = live[_WINDOW_HOURS]
        entry["maintenance_start_minutes"] = live[_WINDOW_MINUTES]
    labels = {k[len("labels."):]: v for k, v in live.items() if k.startswith("labels.")}
    if labels:
        entry["labels"] = labels
    if not live["authEnabled"]:
        unexpressible.append(("authEnabled", "AUTH is off; the program always turns AUTH on (a secure default config cannot turn off)"))
    return LiveEntry(entry=entry, unexpressible=tuple(unexpressible))


def compare(cluster: ClusterConfig, instance: redis_v1.Instance, rules: IgnoreRules) -> list[PropertyDrift]:
    """Differences on the declared properties, plus redis configs and labels present only live."""
    expected = expected_properties(cluster)
    actual = instance_properties(instance)
    paths = set(expected)
    # A config or label someone added by hand is drift too: the program would remove it.
    paths |= {p for p in actual if p.startswith(("redisConfigs.", "labels."))}
    drifts = []
    for path in sorted(paths):
        want, have = expected.get(path), actual.get(path)
        if want == have or rules.ignored(INSTANCE_TYPE, cluster.name, path):
            continue
        drifts.append(PropertyDrift(path=path, expected=want, actual=have))
    return drifts


# --- one stack ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveKey:
    project: str
    region: str
    instance_id: str


def split_instance_name(name: str) -> LiveKey:
    """`projects/P/locations/R/instances/ID` -> its parts."""
    parts = redis_v1.CloudRedisClient.parse_instance_path(name)
    if not parts:
        raise PermanentError(f"the API returned an instance name of an unknown form: {name!r}")
    return LiveKey(project=parts["project"], region=parts["location"], instance_id=parts["instance"])


def no_project_error(stack: StackConfig) -> PermanentError:
    return PermanentError(f"{stack.source}: gcp:project is not set; the live engine needs it to list instances")


def _stack_project(stack: StackConfig) -> str:
    if not stack.project:
        raise no_project_error(stack)
    return stack.project


def _declared(stack: StackConfig, key: LiveKey) -> bool:
    return (
        stack.project == key.project
        and (stack.region is None or stack.region == key.region)
        and any(c.name == key.instance_id for c in stack.clusters)
    )


@dataclass(frozen=True)
class StackFindings:
    """What the live engine found for one stack: drift, and declared instances that are not READY."""

    items: list[DriftItem]
    not_ready: list[InstanceState]


def check_stack(
    stack: StackConfig,
    inventory: Inventory,
    rules: IgnoreRules,
    *,
    watched: Sequence[StackConfig] = (),
    report_unmanaged: bool = True,
) -> StackFindings:
    """Drift of one stack: changed and missing clusters, and (when `report_unmanaged`) the
    instances of its project that no watched stack declares; and its clusters that are not READY."""
    project = _stack_project(stack)
    live = inventory.instances(project)
    by_id: dict[str, redis_v1.Instance] = {}
    for listed in live:
        key = split_instance_name(listed.name)
        if stack.region is None or key.region == stack.region:
            by_id[key.instance_id] = listed
    items: list[DriftItem] = []
    not_ready: list[InstanceState] = []
    for cluster in stack.clusters:
        instance = by_id.get(cluster.name)
        if instance is None:
            items.append(DriftItem(resource=cluster.name, kind="missing"))
            continue
        state = _enum_name(instance.state, None) or "STATE_UNSPECIFIED"
        if state != READY:
            not_ready.append(InstanceState(resource=cluster.name, state=state))
        drifts = compare(cluster, instance, rules)
        if drifts:
            items.append(DriftItem(resource=cluster.name, kind="changed", properties=tuple(drifts)))
    if report_unmanaged:
        declaring = [stack, *watched]
        for instance in live:
            key = split_instance_name(instance.name)
            if not any(_declared(s, key) for s in declaring):
                items.append(DriftItem(resource=instance.name, kind="unmanaged"))
    return StackFindings(items=items, not_ready=not_ready)


@dataclass(frozen=True)
class StackFileRead:
    """One configured stack's file as read: its config, or why there is none (stack_edit.StackFile is the editable one)."""

    name: str
    path: Path
    stack: StackConfig | None
    error: StackConfigError | None
    """The file's problems; None with no `stack`: the file does not exist."""
    load_seconds: float

    @property
    def problem(self) -> str | None:
        """Why the file gives no config, as the reports show it; None when it does."""
        if self.stack is not None:
            return None
        return str(self.error) if self.error is not None else f"{self.path}: stack file not found"


# path -> the text last parsed, and what parsing gave.
_parsed: dict[Path, tuple[str, StackConfig | None, StackConfigError | None]] = {}
_parsed_lock = threading.Lock()


def read_stack_files(config: RedisguardConfig) -> list[StackFileRead]:
    """Every stack of pulumi.stacks, in that order, with its file read (never raising for a bad one).

    The daemon's checks call this on every run, so an edit is seen at the next run. A file whose
    text is what was parsed last time is not parsed again: a 250-cluster file takes about 30 ms
    to parse and validate, reading and comparing its text a fraction of a millisecond.
    """
    files: list[StackFileRead] = []
    for name in config.pulumi.stacks:
        path = config.pulumi.stack_file(name)
        started = time.monotonic()
        stack, error = _parse(path) if path.is_file() else (None, None)
        files.append(StackFileRead(name, path, stack, error, time.monotonic() - started))
    return files


def _parse(path: Path) -> tuple[StackConfig | None, StackConfigError | None]:
    try:
        text = read_stack_text(path)
    except StackConfigError as exc:
        return None, exc
    with _parsed_lock:
        cached = _parsed.get(path)
    if cached is not None and cached[0] == text:
        return cached[1], cached[2]
    stack: StackConfig | None = None
    error: StackConfigError | None = None
    try:
        stack = parse_stack_file(text, path)
    except StackConfigError as exc:
        error = exc
    with _parsed_lock:
        _parsed[path] = (text, stack, error)
    return stack, error


def load_stacks(config: RedisguardConfig, purpose: str) -> dict[str, StackConfig]:
    """Every configured stack's file; ConfigError listing each one that cannot be read (which instances
    are unmanaged would be guesswork). `purpose` names the command in the message."""
    files = read_stack_files(config)
    problems = [f.problem for f in files if f.problem is not None]
    if problems:
        raise ConfigError(f"{purpose} needs every stack file to tell managed from unmanaged instances:\n" + "\n".join(problems))
    return {f.name: f.stack for f in files if f.stack is not None}


def owner_of(stacks: Mapping[str, StackConfig], key: LiveKey) -> str:
    """The name of the stack that declares the instance, "" when none does."""
    for name, stack in stacks.items():
        if _declared(stack, key):
            return name
    return ""


def unmanaged_owners(stacks: Iterable[tuple[str, StackConfig]]) -> dict[str, str]:
    """For each project, the name of the first stack that watches it: that stack alone reports the
    project's unmanaged instances, so two stacks in one project do not report them twice."""
    owners: dict[str, str] = {}
    for name, stack in stacks:
        if stack.project and stack.project not in owners:
            owners[stack.project] = name
    return owners

