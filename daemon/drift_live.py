"""The live drift engine: the clusters declared in the stack files compared with the instances the Memorystore API lists."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import requests
import urllib3
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry, if_exception_type
from google.auth import exceptions as auth_exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import redis_v1
from google.protobuf import json_format
from google.type import dayofweek_pb2

from redisguard.daemon.config import GcpSettings
from redisguard.daemon.errors import PermanentError, TransientError
from redisguard.daemon.ignore import IgnoreRules
from redisguard.daemon.report import REDIS_INSTANCE_TYPE, DriftItem, PropertyDrift
from redisguard.program.config import ClusterConfig, StackConfig

log = logging.getLogger(__name__)

# The Memorystore API's own maximum page size: a project of up to 1000 instances is one call.
PAGE_SIZE = 1000
# Over REST the client raises the HTTP-status classes (BadRequest, Forbidden, GatewayTimeout),
# the parents of the gRPC-status ones (InvalidArgument, PermissionDenied, DeadlineExceeded).
_TRANSIENT = (gexc.ServiceUnavailable, gexc.TooManyRequests, gexc.GatewayTimeout, gexc.InternalServerError)
_REST_PREFIX = re.compile(r"^(?:GET|POST|PATCH|PUT|DELETE) \S+: ")


# An API message is a sentence or two; anything longer is not the API talking.
_MAX_DETAIL = 200


def _one_line(text: str) -> str:
    """`text` on one line, cut at _MAX_DETAIL characters (a report cell, a CI log line)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_DETAIL else flat[: _MAX_DETAIL - 1] + "…"


def _api_message(exc: gexc.GoogleAPICallError) -> str:
    """The API's own message, without the request URL the REST transport puts in front of it."""
    return f"{type(exc).__name__}: {_one_line(_REST_PREFIX.sub('', exc.message or ''))}"


def _answered_as_the_api(exc: gexc.GoogleAPICallError) -> bool:
    """Whether an HTTP error came from something speaking the API's JSON (not some web server's HTML page)."""
    response = getattr(exc, "response", None)
    if response is None or not hasattr(response, "headers"):
        return True  # raised by the client itself, not read off the wire
    return "json" in response.headers.get("Content-Type", "").lower()


def _not_the_api(parent: str, where: str, detail: str) -> PermanentError:
    # Something listens at the endpoint but it is not the Memorystore API (a wrong port in
    # gcp.redis_endpoint: a web server, the emulator's gRPC port, a redis-server).
    return PermanentError(f"list_instances {parent}: {where} did not answer as the Memorystore API does ({detail})")


def _refused(exc: requests.ConnectionError) -> bool:
    """True when no connection was made at all (refused, unknown host), not when a connection broke."""
    reason = getattr(exc.args[0] if exc.args else None, "reason", None)
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


# --- the client and one listing per project ----------------------------------------------------


def make_client(gcp: GcpSettings) -> redis_v1.CloudRedisClient:
    """A REST client for the configured endpoint (anonymous, for the emulator) or the real API."""
    if gcp.redis_endpoint:
        return redis_v1.CloudRedisClient(
            transport="rest",
            client_options={"api_endpoint": gcp.redis_endpoint},
            credentials=AnonymousCredentials(),
        )
    try:
        return redis_v1.CloudRedisClient(transport="rest")
    except auth_exceptions.DefaultCredentialsError as exc:
        raise PermanentError(
            "no Google Cloud credentials: set GOOGLE_APPLICATION_CREDENTIALS or run "
            "`gcloud auth application-default login` (or set gcp.redis_endpoint for the emulator)"
        ) from exc


def _retry(timeout: float) -> Retry:
    # A 503/429 from the API is usually gone a moment later; a bounded retry keeps one blip
    # from turning a whole scan into an error, the deadline keeps a real outage visible.
    return Retry(
        predicate=if_exception_type(gexc.ServiceUnavailable, gexc.TooManyRequests),
        initial=0.2,
        maximum=2.0,
        multiplier=2.0,
        timeout=timeout,
    )


def list_project_instances(
    client: redis_v1.CloudRedisClient, project: str, gcp: GcpSettings
) -> list[redis_v1.Instance]:
    """Every instance of a project in every region: one paged `list_instances(locations/-)`."""
    parent = f"projects/{project}/locations/-"
    where = gcp.redis_endpoint or "the Memorystore API"
    try:
        pager = client.list_instances(
            request=redis_v1.ListInstancesRequest(parent=parent, page_size=PAGE_SIZE),
            retry=_retry(gcp.request_timeout_seconds),
            timeout=gcp.request_timeout_seconds,
        )
        instances: list[redis_v1.Instance] = []
        for page in pager.pages:
            if page.unreachable:
                # A partial listing would report the unreachable regions' instances as missing.
                raise TransientError(f"{parent}: regions unreachable: {', '.join(page.unreachable)}")
            instances.extend(page.instances)
        return instances
    except gexc.GoogleAPICallError as exc:
        if not _answered_as_the_api(exc):
            response = exc.response  # type: ignore[attr-defined]
            kind = response.headers.get("Content-Type", "no content type").split(";")[0]
            raise _not_the_api(parent, where, f"HTTP {response.status_code}, {kind}") from exc
        if isinstance(exc, _TRANSIENT):
            raise TransientError(f"list_instances {parent}: {_api_message(exc)}") from exc
        raise PermanentError(f"list_instances {parent}: {_api_message(exc)}") from exc
    except gexc.RetryError as exc:
        cause = exc.cause
        detail = _api_message(cause) if isinstance(cause, gexc.GoogleAPICallError) else _one_line(str(cause))
        raise TransientError(f"list_instances {parent}: still failing after retries ({detail})") from exc
    except requests.Timeout as exc:
        raise TransientError(f"list_instances {parent}: no answer from {where} within {gcp.request_timeout_seconds:g}s") from exc
    except requests.ConnectionError as exc:
        if not _refused(exc):
            raise _not_the_api(parent, where, "the connection closed without an HTTP answer") from exc
        raise TransientError(f"list_instances {parent}: cannot connect to {where}") from exc
    except auth_exceptions.GoogleAuthError as exc:
        raise PermanentError(f"list_instances {parent}: the Google credentials were refused: {exc}") from exc
    except json_format.ParseError as exc:
        # Something answers, but not as the Memorystore API does (a wrong port in gcp.redis_endpoint).
        raise _not_the_api(parent, where, _one_line(str(exc))) from exc


class Inventory:
    """The live instances of each watched project, listed at most once per scan (shared by stacks running in parallel)."""

    def __init__(self, gcp: GcpSettings, client_factory: Callable[[GcpSettings], redis_v1.CloudRedisClient] = make_client) -> None:
        self._gcp = gcp
        self._client_factory = client_factory
        self._client: redis_v1.CloudRedisClient | None = None
        self._lock = threading.Lock()
        self._listings: dict[str, Future[list[redis_v1.Instance]]] = {}

    def _get_client(self) -> redis_v1.CloudRedisClient:
        with self._lock:
            if self._client is None:
                self._client = self._client_factory(self._gcp)
            return self._client

    def instances(self, project: str) -> list[redis_v1.Instance]:
        with self._lock:
            future = self._listings.get(project)
            owner = future is None
            if owner:
                future = self._listings[project] = Future()
        assert future is not None
        if owner:
            try:
                future.set_result(list_project_instances(self._get_client(), project, self._gcp))
            except BaseException as exc:
                future.set_exception(exc)
        return future.result()


# --- declared vs live properties ----------------------------------------------------------------


_WINDOW = "maintenancePolicy.weeklyMaintenanceWindows[0]"
_WINDOW_DAY, _WINDOW_HOURS, _WINDOW_MINUTES = (f"{_WINDOW}.day", f"{_WINDOW}.startTime.hours", f"{_WINDOW}.startTime.minutes")


def expected_properties(cluster: ClusterConfig) -> dict[str, Any]:
    """The compared properties as the program declares them (program/fleet.py instance_args), camelCase paths."""
    props: dict[str, Any] = {
        "memorySizeGb": cluster.memory_gb,
        "tier": cluster.tier,
        "redisVersion": cluster.redis_version,
        "authEnabled": True,  # enforced by the program whatever the config says
        "transitEncryptionMode": cluster.transit_encryption,
        "persistenceConfig.persistenceMode": cluster.persistence_mode,
    }
    period = cluster.effective_snapshot_period()
    if period is not None:
        props["persistenceConfig.rdbSnapshotPeriod"] = period
    if cluster.maintenance_window_day is not None:
        props[_WINDOW_DAY] = cluster.maintenance_window_day
        props[_WINDOW_HOURS] = cluster.maintenance_start_hours or 0
        props[_WINDOW_MINUTES] = cluster.maintenance_start_minutes or 0
    if cluster.tier == "STANDARD_HA":
        props["replicaCount"] = cluster.effective_replica_count()
        props["readReplicasMode"] = "READ_REPLICAS_ENABLED" if cluster.read_replicas else "READ_REPLICAS_DISABLED"
    for key, value in cluster.redis_configs().items():
        props[f"redisConfigs.{key}"] = value
    for key, value in cluster.labels.items():
        props[f"labels.{key}"] = value
    return props


def _enum_name(value: Any, unspecified_as: str | None) -> str | None:
    name = getattr(value, "name", None) or str(value)
    return unspecified_as if name.endswith("_UNSPECIFIED") else name


def live_properties(instance: redis_v1.Instance) -> dict[str, Any]:
    """The same properties read from a live instance (the AUTH string is never read)."""
    persistence = instance.persistence_config
    props: dict[str, Any] = {
        "memorySizeGb": instance.memory_size_gb,
        "tier": _enum_name(instance.tier, None),
        "redisVersion": instance.redis_version or None,
        "authEnabled": bool(instance.auth_enabled),
        # Memorystore leaves these unset when they are off; unset and off are the same state.
        "transitEncryptionMode": _enum_name(instance.transit_encryption_mode, "DISABLED"),
        "persistenceConfig.persistenceMode": _enum_name(persistence.persistence_mode, "DISABLED"),
        "persistenceConfig.rdbSnapshotPeriod": _enum_name(persistence.rdb_snapshot_period, None),
        "replicaCount": instance.replica_count,
        "readReplicasMode": _enum_name(instance.read_replicas_mode, "READ_REPLICAS_DISABLED"),
    }
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


def compare(cluster: ClusterConfig, instance: redis_v1.Instance, rules: IgnoreRules) -> list[PropertyDrift]:
    """Differences on the declared properties, plus redis configs and labels present only live."""
    expected = expected_properties(cluster)
    actual = live_properties(instance)
    paths = set(expected)
    # A config or label someone added by hand is drift too: the program would remove it.
    paths |= {p for p in actual if p.startswith(("redisConfigs.", "labels."))}
    drifts = []
    for path in sorted(paths):
        want, have = expected.get(path), actual.get(path)
        if want == have or rules.ignored(REDIS_INSTANCE_TYPE, cluster.name, path):
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
    parts = name.split("/")
    if len(parts) != 6 or parts[0] != "projects" or parts[2] != "locations" or parts[4] != "instances":
        raise PermanentError(f"the API returned an instance name of an unknown form: {name!r}")
    return LiveKey(project=parts[1], region=parts[3], instance_id=parts[5])


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


def check_stack(
    stack: StackConfig,
    inventory: Inventory,
    rules: IgnoreRules,
    *,
    watched: Sequence[StackConfig] = (),
    report_unmanaged: bool = True,
) -> list[DriftItem]:
    """Drift of one stack: changed and missing clusters, and (when `report_unmanaged`) the
    instances of its project that no watched stack declares."""
    project = _stack_project(stack)
    live = inventory.instances(project)
    by_id: dict[str, redis_v1.Instance] = {}
    for instance in live:
        key = split_instance_name(instance.name)
        if stack.region is None or key.region == stack.region:
            by_id[key.instance_id] = instance
    items: list[DriftItem] = []
    for cluster in stack.clusters:
        instance = by_id.get(cluster.name)
        if instance is None:
            items.append(DriftItem(resource=cluster.name, kind="missing"))
            continue
        drifts = compare(cluster, instance, rules)
        if drifts:
            items.append(DriftItem(resource=cluster.name, kind="changed", properties=tuple(drifts)))
    if report_unmanaged:
        declaring = [stack, *watched]
        for instance in live:
            key = split_instance_name(instance.name)
            if not any(_declared(s, key) for s in declaring):
                items.append(DriftItem(resource=instance.name, kind="unmanaged"))
    return items


def unmanaged_owners(stacks: Iterable[tuple[str, StackConfig]]) -> dict[str, str]:
    """For each project, the name of the first stack that watches it: that stack alone reports the
    project's unmanaged instances, so two stacks in one project do not report them twice."""
    owners: dict[str, str] = {}
    for name, stack in stacks:
        if stack.project and stack.project not in owners:
            owners[stack.project] = name
    return owners

