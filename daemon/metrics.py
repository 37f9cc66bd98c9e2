"""Prometheus metrics: custom collectors on a private registry that read the latest published results on each scrape."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib.metadata import version
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from redisguard.daemon.report import Engine
from redisguard.daemon.results import Results

PREFIX = "redisguard_"
# The schedule key of each drift check and the engine its reports carry.
DRIFT_CHECKS: dict[str, Engine] = {"drift_pulumi": "pulumi", "drift_live": "live"}
MEMORY_CHECK = "memory"
_INSTANCE_LABELS = ["project_id", "region", "instance_id"]


def _gauge(name: str, documentation: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, documentation, labels=labels)


class CheckCollector(Collector):
    """`redisguard_check_*`: how each check's last run went, per target, and the build."""

    def __init__(self, results: Results) -> None:
        self.results = results

    def collect(self) -> Iterator[Metric]:
        up = _gauge(
            "check_up",
            "1 when the latest run of the check for this target succeeded, 0 when it failed (the "
            "target's other series are then absent until it succeeds again). check is the schedule "
            "key (drift_pulumi, drift_live, memory); target the stack or project id.",
            ["check", "target"],
        )
        last_success = _gauge(
            "check_last_success_timestamp_seconds",
            "Unix time in seconds when the check last succeeded for this target (absent before the first success).",
            ["check", "target"],
        )
        duration = _gauge(
            "check_duration_seconds",
            "How long the latest run of the check took for this target, in seconds.",
            ["check", "target"],
        )
        failures = CounterMetricFamily(
            PREFIX + "check_failures",
            "Runs of the check that failed for this target since the daemon started.",
            labels=["check", "target"],
        )
        for (check, target), state in sorted(self.results.snapshot().items()):
            labels = [check, target]
            up.add_metric(labels, 1.0 if state.ok else 0.0)
            if state.last_success_at is not None:
                last_success.add_metric(labels, state.last_success_at)
            duration.add_metric(labels, float(state.result.duration_seconds))
            failures.add_metric(labels, float(state.failures_total))
        build = _gauge("build_info", "Always 1; the version label is the running redisguard's version.", ["version"])
        build.add_metric([version("redisguard")], 1.0)
        yield from (up, last_success, duration, failures, build)


class DriftCollector(Collector):
    """`redisguard_drift_*` and `redisguard_unmanaged_instances` from the latest drift reports."""

    def __init__(self, results: Results, unmanaged_owners: Callable[[], Mapping[str, str]]) -> None:
        self.results = results
        # project id -> the stack whose live check reports that project's unmanaged instances
        self.unmanaged_owners = unmanaged_owners

    def collect(self) -> Iterator[Metric]:
        status = _gauge(
            "drift_status",
            "1 when the stack drifted from its declared config (engine live) or its Pulumi state "
            "(engine pulumi) at the latest successful check, 0 when in sync.",
            ["stack", "engine"],
        )
        count = _gauge(
            "drifted_resources",
            "Number of drifted resources (changed, deleted, missing or unmanaged) found by the latest check.",
            ["stack", "engine"],
        )
        resource = _gauge(
            "drifted_resource",
            "1 for each drifted resource: resource is the Pulumi resource name or instance id (the full "
            "instance name for an unmanaged one), type the Pulumi type token, kind changed, deleted, missing "
            "or unmanaged.",
            ["stack", "engine", "resource", "type", "kind"],
        )
        unmanaged = _gauge(
            "unmanaged_instances",
            "Instances in the project that no watched stack declares, from the latest live check.",
            ["project_id"],
        )
        states = self.results.snapshot()
        for (check, _target), state in sorted(states.items()):
            if check not in DRIFT_CHECKS or not state.ok:
                continue
            report = state.result
            labels = [report.stack, report.engine]
            status.add_metric(labels, 1.0 if report.items else 0.0)
            count.add_metric(labels, float(len(report.items)))
            for item in report.items:
                resource.add_metric([report.stack, report.engine, item.resource, item.type, item.kind], 1.0)
        for project, stack in sorted(self.unmanaged_owners().items()):
            state = states.get(("drift_live", stack))
            if state is None or not state.ok:
                continue
            found = sum(1 for item in state.result.items if item.kind == "unmanaged")
            unmanaged.add_metric([project], float(found))
        yield from (status, count, resource, unmanaged)


class MemoryCollector(Collector):
    """`redisguard_memory_*` and `redisguard_instance_*` from the latest memory check per project."""

    def __init__(self, results: Results) -> None:
        self.results = results

    def collect(self) -> Iterator[Metric]:
        families: dict[str, GaugeMetricFamily] = {
            "memory_usage_ratio": _gauge(
                "memory_usage_ratio", "Used memory over maxmemory of the instance's primary node, 0 to 1.", _INSTANCE_LABELS
            ),
            "system_memory_usage_ratio": _gauge(
                "system_memory_usage_ratio",
                "Memory the primary node's Redis process uses over the memory of its VM, 0 to 1 "
                "(Memorystore's redis.googleapis.com/stats/memory/system_memory_usage_ratio; near 1 risks OOM).",
                _INSTANCE_LABELS,
            ),
            "used_bytes": _gauge(
                "memory_used_bytes", "Memory used by Redis on the primary node, in bytes.", _INSTANCE_LABELS
            ),
            "max_bytes": _gauge(
                "memory_max_bytes", "The primary node's maxmemory, in bytes (what eviction or OOM errors start at).", _INSTANCE_LABELS
            ),
            "capacity_bytes": _gauge(
                "memory_capacity_bytes", "The instance's provisioned memory size (memorySizeGb), in bytes.", _INSTANCE_LABELS
            ),
            "time_to_full_seconds": _gauge(
                "memory_time_to_full_seconds",
                "Seconds until used memory reaches maxmemory at the trend over thresholds.trend_window; "
                "absent when memory is flat or shrinking or too few points exist.",
                _INSTANCE_LABELS,
            ),
            "ready": _gauge(
                "instance_ready",
                "1 when the Memorystore API shows the instance READY, 0 in any other state (REPAIRING, MAINTENANCE, ...).",
                _INSTANCE_LABELS,
            ),
            "info": _gauge(
                "instance_info",
                "Always 1: the instance's tier, Redis version and the stack that declares it (empty when unmanaged).",
                [*_INSTANCE_LABELS, "tier", "redis_version", "stack"],
            ),
        }
        for (check, _target), state in sorted(self.results.snapshot().items()):
            if check != MEMORY_CHECK or not state.ok:
                continue
            for instance in state.result.instances:
                _add_instance(families, instance)
        yield from families.values()


def _add_instance(families: Mapping[str, GaugeMetricFamily], instance: Any) -> None:
    labels = [instance.project_id, instance.region, instance.instance_id]
    values = {
        "memory_usage_ratio": instance.usage_ratio,
        "system_memory_usage_ratio": instance.system_memory_usage_ratio,
        "used_bytes": instance.used_bytes,
        "max_bytes": instance.max_bytes,
        "capacity_bytes": instance.capacity_bytes,
        "time_to_full_seconds": instance.time_to_full_seconds,
    }
    for key, value in values.items():
        if value is not None:  # no point: no sample, never a zero
            families[key].add_metric(labels, float(value))
    families["ready"].add_metric(labels, 1.0 if instance.state == "READY" else 0.0)
    families["info"].add_metric([*labels, instance.tier, instance.redis_version, instance.stack], 1.0)


def build_registry(results: Results, unmanaged_owners: Callable[[], Mapping[str, str]]) -> CollectorRegistry:
    """A private registry: redisguard's collectors and the process_* metrics (RSS, CPU, open
    files) of this process, nothing another library registered in the global one."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors(results, unmanaged_owners):
        registry.register(collector)
    ProcessCollector(registry=registry)
    return registry


def collectors(results: Results, unmanaged_owners: Callable[[], Mapping[str, str]]) -> Iterable[Collector]:
    return (CheckCollector(results), DriftCollector(results, unmanaged_owners), MemoryCollector(results))

