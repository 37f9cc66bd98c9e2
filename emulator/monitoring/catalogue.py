"""The metrics the emulated Cloud Monitoring serves for redis_instance, and the time series they form."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from google.api import metric_pb2

from redisguard.emulator.memorystore.store import PRIMARY_NODE, split_name
from redisguard.emulator.monitoring.sampler import Sample

Kind = metric_pb2.MetricDescriptor.MetricKind
ValueType = metric_pb2.MetricDescriptor.ValueType

RESOURCE_TYPE = "redis_instance"
METRIC_PREFIX = "redis.googleapis.com/"


@dataclass(frozen=True)
class MetricDef:
    type: str
    kind: int
    value_type: int
    unit: str
    description: str
    value: Callable[[Sample, Sample | None], float | int | None]
    """From the sample (and the previous one, for DELTA metrics) to the point's value."""


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _delta(field: str) -> Callable[[Sample, Sample | None], int | None]:
    def value(cur: Sample, prev: Sample | None) -> int | None:
        if prev is None:
            return None
        now, before = getattr(cur, field), getattr(prev, field)
        # A restarted redis-server starts its counters at 0 again.
        return now - before if now >= before else now

    return value


def _gauge(field: str) -> Callable[[Sample, Sample | None], int]:
    return lambda cur, prev: getattr(cur, field)


_G, _D, _I, _F = Kind.GAUGE, Kind.DELTA, ValueType.INT64, ValueType.DOUBLE

METRICS: dict[str, MetricDef] = {
    m.type: m
    for m in (
        MetricDef(
            METRIC_PREFIX + "stats/memory/usage",
            _G,
            _I,
            "By",
            "Total number of bytes allocated by Redis.",
            _gauge("used_memory"),
        ),
        MetricDef(
            METRIC_PREFIX + "stats/memory/maxmemory",
            _G,
            _I,
            "By",
            "Maximum amount of memory Redis can consume.",
            _gauge("maxmemory"),
        ),
        MetricDef(
            METRIC_PREFIX + "stats/memory/usage_ratio",
            _G,
            _F,
            "1",
            "Memory usage as a ratio of maximum memory.",
            lambda c, p: _ratio(c.used_memory, c.maxmemory),
        ),
        MetricDef(
            METRIC_PREFIX + "stats/memory/system_memory_usage_ratio",
            _G,
            _F,
            "1",
            "Memory usage as a ratio of the system memory.",
            lambda c, p: _ratio(c.used_memory_rss, c.capacity),
        ),
        MetricDef(
            METRIC_PREFIX + "clients/connected",
            _G,
            _I,
            "1",
            "Number of client connections.",
            _gauge("connected_clients"),
        ),
        MetricDef(
            METRIC_PREFIX + "clients/blocked", _G, _I, "1", "Number of blocked clients.", _gauge("blocked_clients")
        ),
        MetricDef(METRIC_PREFIX + "server/uptime", _G, _I, "s", "Uptime in seconds.", _gauge("uptime")),
        MetricDef(
            METRIC_PREFIX + "keyspace/keys", _G, _I, "1", "Number of keys stored in the instance.", _gauge("keys")
        ),
        MetricDef(
            METRIC_PREFIX + "stats/cache_hit_ratio",
            _G,
            _F,
            "1",
            "Cache hit ratio as a fraction.",
            lambda c, p: _ratio(c.keyspace_hits, c.keyspace_hits + c.keyspace_misses),
        ),
        MetricDef(
            METRIC_PREFIX + "stats/evicted_keys",
            _D,
            _I,
            "1",
            "Number of evicted keys due to maxmemory limit.",
            _delta("evicted_keys"),
        ),
        MetricDef(
            METRIC_PREFIX + "stats/expired_keys",
            _D,
            _I,
            "1",
            "Total number of key expiration events.",
            _delta("expired_keys"),
        ),
        MetricDef(
            METRIC_PREFIX + "stats/keyspace_hits",
            _D,
            _I,
            "1",
            "Number of successful lookup of keys.",
            _delta("keyspace_hits"),
        ),
        MetricDef(
            METRIC_PREFIX + "stats/keyspace_misses",
            _D,
            _I,
            "1",
            "Number of failed lookup of keys.",
            _delta("keyspace_misses"),
        ),
        MetricDef(
            METRIC_PREFIX + "stats/connections/total",
            _D,
            _I,
            "1",
            "Total number of connections accepted by the server.",
            _delta("connections_received"),
        ),
        MetricDef(
            METRIC_PREFIX + "commands/total_calls",
            _D,
            _I,
            "1",
            "Total number of commands processed.",
            _delta("commands_processed"),
        ),
    )
}



@dataclass
class Series:
    metric_type: str
    metric_labels: dict[str, str]
    resource_labels: dict[str, str]
    kind: int
    value_type: int
    unit: str
    points: list[tuple[float, float, float | int]]
    """(start, end, value), oldest first; start == end for GAUGE points."""

    def label(self, key: str) -> str:
        """The value a filter's (normalized) selector reads; "" for a label the series does not have."""
        if key == "metric.type":
            return self.metric_type
        if key == "resource.type":
            return RESOURCE_TYPE
        if key == "project":
            return self.resource_labels.get("project_id", "")
        if key.startswith("metric.label."):
            return self.metric_labels.get(key.removeprefix("metric.label."), "")
        return self.resource_labels.get(key.removeprefix("resource.label."), "")


def resource_labels(name: str, node_id: str = PRIMARY_NODE) -> dict[str, str]:
    """Labels Google sets on redis_instance: instance_id is the full instance resource name, node_id the node."""
    project, region, _ = split_name(name)
    return {"project_id": project, "region": region, "instance_id": name, "node_id": node_id}
