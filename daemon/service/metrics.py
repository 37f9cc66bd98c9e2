"""Prometheus metrics: a custom collector on a private registry that reads the latest published results on each scrape, and the /metrics body built from the same samples."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import version

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from redisguard.core.memorystore import READY
from redisguard.daemon.checks.names import CHECK_NAMES, DRIFT_LIVE
from redisguard.daemon.checks.registry import kind_of
from redisguard.daemon.service.results import Key, Results, TargetState
from redisguard.daemon.sharding import WHOLE, Shard

PREFIX = "redisguard_"
# The levels redisguard_policy_violations always has a sample for (0 when none), so an alert or a
# dashboard reads a zero rather than nothing.
VIOLATION_LEVELS = ("mandatory", "advisory")
_INSTANCE = ("project_id", "region", "instance_id")
_TARGET = ("check", "target")


@dataclass(frozen=True)
class Family:
    name: str
    """Without the prefix; a counter's samples get `_total`."""
    kind: str
    """gauge or counter"""
    labels: tuple[str, ...]
    help: str

    @property
    def full_name(self) -> str:
        return PREFIX + self.name

    @property
    def sample_name(self) -> str:
        return self.full_name + ("_total" if self.kind == "counter" else "")


# Every metric, in the order /metrics lists them. HELP says what a value means and its unit.
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("check_up", "gauge", _TARGET,
               "1 when the latest run of the check for this target succeeded, 0 when it failed (the target's "
               f"other series are then absent until it succeeds again). check is the schedule key ({', '.join(CHECK_NAMES)}); "
               "target the stack or project id."),
        Family("check_last_success_timestamp_seconds", "gauge", _TARGET,
               "Unix time in seconds when the check last succeeded for this target (absent before the first success)."),
        Family("check_duration_seconds", "gauge", _TARGET,
               "How long the latest run of the check took for this target, in seconds."),
        Family("check_failures", "counter", _TARGET,
               "Runs of the check that failed for this target since the daemon started."),
        Family("check_interval_seconds", "gauge", ("check",),
               "Seconds between two scheduled runs of the check (for a cron schedule, between its next two fire "
               "times), from the config in use; absent when the check is off. RedisguardChecksStale counts in these."),
        Family("drift_status", "gauge", ("stack", "engine"),
               "1 when the stack drifted from what it declares (engine live: its config or deployed state, by its "
               "source) or from its Pulumi state (engine pulumi) "
               "at the latest successful check, 0 when in sync."),
        Family("drifted_resources", "gauge", ("stack", "engine"),
               "Number of drifted resources (changed, deleted, missing or unmanaged) found by the latest check."),
        Family("drifted_resource", "gauge", ("stack", "engine", "resource", "type", "kind"),
               "1 for each drifted resource: resource is the Pulumi resource name or instance id (the full instance "
               "name for an unmanaged one), type the Pulumi type token, kind changed, deleted, missing or unmanaged."),
        Family("pending_changes", "gauge", ("stack",),
               "Instances whose stack config is ahead of the deployed state (to create, update or delete at the "
               "next `pulumi up`), from the latest live check of a stack whose source is `both`. Not drift."),
        Family("unmanaged_instances", "gauge", ("project_id",),
               "Instances in the project that no watched stack declares, from the latest live check."),
        Family("memory_usage_ratio", "gauge", _INSTANCE,
               "Used memory over maxmemory of the instance's primary node, 0 to 1."),
        Family("system_memory_usage_ratio", "gauge", _INSTANCE,
               "Memory the primary node's Redis process uses over the memory of its VM, 0 to 1 (near 1 risks OOM)."),
        Family("memory_used_bytes", "gauge", _INSTANCE, "Memory used by Redis on the primary node, in bytes."),
        Family("memory_max_bytes", "gauge", _INSTANCE,
               "The primary node's maxmemory, in bytes (where eviction or OOM errors start)."),
        Family("memory_capacity_bytes", "gauge", _INSTANCE,
               "The instance's provisioned memory size (memorySizeGb), in bytes."),
        Family("memory_time_to_full_seconds", "gauge", _INSTANCE,
               "Seconds until used memory reaches maxmemory at the trend over thresholds.trend_window; absent when "
               "memory is flat or shrinking or too few points exist."),
        Family("instance_ready", "gauge", _INSTANCE,
               "1 when the Memorystore API shows the instance READY, 0 in any other state (REPAIRING, MAINTENANCE, ...)."),
        Family("instance_info", "gauge", (*_INSTANCE, "tier", "redis_version", "stack", "ownership"),
               "Always 1: the instance's tier, Redis version, the stack that holds it (empty when none or not known) "
               "and ownership: declared, unmanaged, or unknown (a stack that may hold it cannot be read)."),
        Family("shard_ordinal", "gauge", ("shard_ordinal",),
               "This daemon's shard, 0 to total_shards - 1 (as the label and the value): it checks the stacks and "
               "projects whose stable hash falls in it. RedisguardShardsMissing sums these over the daemons."),
        Family("total_shards", "gauge", (),
               "How many shards this daemon was told share the fleet; every daemon must say the same "
               "(RedisguardShardingMismatch)."),
        Family("policy_violations", "gauge", ("project_id", "level"),
               "Findings of the policy pack on the project's live instances at the latest compliance check, per "
               "enforcement level (mandatory, advisory), each instance judged with its stack's policy config."),
        Family("policy_violation", "gauge", (*_INSTANCE, "stack", "policy", "level", "production"),
               "1 for each policy a live instance breaks: stack the stack that holds it (empty when unmanaged), "
               "level the policy's enforcement level for it, production true when the pack holds it to be "
               "production. The pack's message is in /report."),
        Family("build_info", "gauge", ("version",), "Always 1; the version label is the running redisguard's version."),
    )
}  # fmt: skip

Sample = tuple[str, tuple[str, ...], float]
"""(family name, label values in the family's label order, value)"""

# InstanceMemory field -> family
_MEMORY_FIELDS = (
    ("memory_usage_ratio", "usage_ratio"),
    ("system_memory_usage_ratio", "system_memory_usage_ratio"),
    ("memory_used_bytes", "used_bytes"),
    ("memory_max_bytes", "max_bytes"),
    ("memory_capacity_bytes", "capacity_bytes"),
    ("memory_time_to_full_seconds", "time_to_full_seconds"),
)


def state_samples(check: str, target: str, state: TargetState) -> Iterator[Sample]:
    """Every sample one published target result gives."""
    labels = (check, target)
    yield "check_up", labels, 1.0 if state.ok else 0.0
    if state.last_success_at is not None:
        yield "check_last_success_timestamp_seconds", labels, state.last_success_at
    yield "check_duration_seconds", labels, float(state.result.duration_seconds)
    yield "check_failures", labels, float(state.failures_total)
    if not state.ok:
        return  # a failed target's findings are unknown now: absent, never stale or zero
    kind = kind_of(check)
    if kind == "drift":
        report = state.result
        stack = (report.stack, report.engine)
        yield "drift_status", stack, 1.0 if report.items else 0.0
        yield "drifted_resources", stack, float(len(report.items))
        for item in report.items:
            yield "drifted_resource", (*stack, item.resource, item.type, item.kind), 1.0
        if report.source == "both":
            yield "pending_changes", (report.stack,), float(len(report.pending))
    elif kind == "memory":
        for instance in state.result.instances:
            where = (instance.project_id, instance.region, instance.instance_id)
            for family, field in _MEMORY_FIELDS:
                value = getattr(instance, field)
                if value is not None:  # no point: no sample, never a zero
                    yield family, where, float(value)
            yield "instance_ready", where, 1.0 if instance.state == READY else 0.0
            yield "instance_info", (*where, instance.tier, instance.redis_version, instance.stack, instance.ownership), 1.0
    elif kind == "compliance":
        counts = dict.fromkeys(VIOLATION_LEVELS, 0)
        for instance in state.result.instances:
            where = (instance.project_id, instance.region, instance.instance_id)
            for finding in instance.findings:
                counts[finding.level] = counts.get(finding.level, 0) + 1
                production = "true" if instance.production else "false"
                yield "policy_violation", (*where, instance.stack, finding.policy, finding.level, production), 1.0
        for level, count in counts.items():
            yield "policy_violations", (target, level), float(count)


def global_samples(states: Mapping[Key, TargetState], intervals: Mapping[str, float], shard: Shard = WHOLE) -> Iterator[Sample]:
    """Samples that span targets: each enabled check's schedule, unmanaged instances per project (from
    the live check of the stack that reported that project's unmanaged instances), the shard and the build."""
    for check, seconds in intervals.items():
        yield "check_interval_seconds", (check,), float(seconds)
    unmanaged: dict[str, int] = {}
    for (check, _), state in states.items():
        if check == DRIFT_LIVE and state.ok:
            for project in state.result.unmanaged_projects:
                prefix = f"projects/{project}/"
                unmanaged[project] = sum(1 for i in state.result.items if i.kind == "unmanaged" and i.resource.startswith(prefix))
    for project, count in sorted(unmanaged.items()):
        yield "unmanaged_instances", (project,), float(count)
    yield "shard_ordinal", (str(shard.ordinal),), float(shard.ordinal)
    yield "total_shards", (), float(shard.total)
    yield "build_info", (version("redisguard"),), 1.0


def all_samples(states: Mapping[Key, TargetState], intervals: Mapping[str, float], shard: Shard = WHOLE) -> Iterator[Sample]:
    for (check, target), state in sorted(states.items()):
        yield from state_samples(check, target, state)
    yield from global_samples(states, intervals, shard)


class SnapshotCollector(Collector):
    """The custom collector: on each collect, the metric families of the latest published results,
    so a target, instance or stack that disappeared is gone at the next scrape."""

    def __init__(
        self, results: Results, intervals: Callable[[], Mapping[str, float]] = dict, shard: Callable[[], Shard] = lambda: WHOLE
    ) -> None:
        self.results = results
        # enabled check -> seconds between its scheduled runs (the config in use)
        self.intervals = intervals
        self.shard = shard

    def collect(self) -> Iterator[Metric]:
        families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}
        for name, family in FAMILIES.items():
            cls = CounterMetricFamily if family.kind == "counter" else GaugeMetricFamily
            families[name] = cls(family.full_name, family.help, labels=list(family.labels))
        for name, labels, value in all_samples(self.results.snapshot(), self.intervals(), self.shard()):
            families[name].add_metric(list(labels), value)
        yield from families.values()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _line(family: Family, labels: tuple[str, ...], value: float) -> str:
    pairs = ",".join(f'{name}="{_escape(v)}"' for name, v in zip(family.labels, labels, strict=True))
    return f"{family.sample_name}{{{pairs}}} {floatToGoString(value)}\n"


class Exposition:
    """The /metrics body, in the Prometheus text format or OpenMetrics as the scraper asks, from the same samples as the collector.

    A target's lines are formatted once per published result and kept with it (1000 instances are
    ~8000 lines: formatting them at every scrape costs ~100 ms, joining kept ones ~1 ms), so a
    scrape stays cheap whatever the fleet size, and still shows exactly the latest snapshot. Both
    formats write a gauge's or counter's sample line the same way (name, labels, Go float), so the
    kept lines serve both; only the HELP/TYPE lines and the `# EOF` end differ. The daemon's
    process_* metrics are collected fresh each time.
    """

    def __init__(
        self, results: Results, intervals: Callable[[], Mapping[str, float]] = dict, shard: Callable[[], Shard] = lambda: WHOLE
    ) -> None:
        # The collector holds the sources; the text below is built from the same samples.
        self.collector = SnapshotCollector(results, intervals, shard)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        self.process = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self.process)
        self._lock = threading.Lock()
        self._lines: dict[Key, tuple[TargetState, dict[str, str]]] = {}

    def _target_lines(self, key: Key, state: TargetState) -> dict[str, str]:
        with self._lock:
            kept = self._lines.get(key)
        if kept is not None and kept[0] is state:
            return kept[1]
        by_family: dict[str, list[str]] = {}
        for name, labels, value in state_samples(key[0], key[1], state):
            by_family.setdefault(name, []).append(_line(FAMILIES[name], labels, value))
        lines = {name: "".join(parts) for name, parts in by_family.items()}
        with self._lock:
            self._lines[key] = (state, lines)
        return lines

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The body and its Content-Type for a scrape whose Accept header is `accept`: OpenMetrics when
        it asks for it, the text format otherwise (prometheus_client's own negotiation, `choose_encoder`)."""
        _, content_type = choose_encoder(accept or "")
        is_openmetrics = content_type.startswith("application/openmetrics-text")
        states = self.collector.results.snapshot()
        per_target = [self._target_lines(key, state) for key, state in sorted(states.items())]
        with self._lock:
            for key in [k for k in self._lines if k not in states]:
                del self._lines[key]
        spanning: dict[str, list[str]] = {}
        for name, labels, value in global_samples(states, self.collector.intervals(), self.collector.shard()):
            spanning.setdefault(name, []).append(_line(FAMILIES[name], labels, value))
        out: list[str] = []
        for name, family in FAMILIES.items():
            # As prometheus_client writes each format: OpenMetrics names the family (a counter's samples
            # carry _total) and escapes quotes in HELP; the text format names a counter by its samples.
            named = family.full_name if is_openmetrics else family.sample_name
            text = _escape(family.help) if is_openmetrics else family.help.replace("\\", "\\\\").replace("\n", "\\n")
            out.append(f"# HELP {named} {text}\n# TYPE {named} {family.kind}\n")
            out.extend(lines[name] for lines in per_target if name in lines)
            out.extend(spanning.get(name, ()))
        body = "".join(out).encode()
        if is_openmetrics:
            return body + openmetrics.generate_latest(self.process), content_type  # it ends with the one `# EOF`
        return body + generate_latest(self.process), content_type
