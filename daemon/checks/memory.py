"""The memory check: per project, Cloud Monitoring's memory metrics joined with the Memorystore listing and the stacks."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from google.cloud import monitoring_v3, redis_v1

from redisguard.core.errors import RedisguardError, TransientError, error_kind
from redisguard.core.gcp import api_errors, monitoring_client, one_line, retry_policy
from redisguard.core.memorystore import GIB, NOT_SERVING
from redisguard.core.secrets import scrub
from redisguard.core.threads import run_on_daemon_threads
from redisguard.daemon.checks.names import MEMORY
from redisguard.daemon.checks.protocol import CancelToken, Job, run_check
from redisguard.daemon.config import GcpSettings, RedisguardConfig, ThresholdSettings
from redisguard.daemon.fleet.declared import Declared, RunOwners, WatchedProjects, owner_and_ownership
from redisguard.daemon.fleet.inventory import LiveKey, list_project_instances, make_client, split_instance_name
from redisguard.daemon.fleet.properties import enum_name
from redisguard.daemon.reports.memory import CROSSED, InstanceMemory, Level, MemoryReport, ProjectMemoryReport
from redisguard.daemon.sharding import WHOLE, Shard

log = logging.getLogger(__name__)

METRIC_PREFIX = "redis.googleapis.com/stats/memory/"
USED = METRIC_PREFIX + "usage"
MAX = METRIC_PREFIX + "maxmemory"
RATIO = METRIC_PREFIX + "usage_ratio"
SYSTEM_RATIO = METRIC_PREFIX + "system_memory_usage_ratio"
CURRENT_METRICS = (RATIO, USED, MAX, SYSTEM_RATIO)

# Memorystore samples these metrics every 60 s, and a point can take up to 240 s to become
# visible: one-minute windows over the last 6 minutes always hold the newest visible point.
ALIGNMENT_SECONDS = 60
VISIBILITY_DELAY_SECONDS = 240
LOOKBACK_SECONDS = ALIGNMENT_SECONDS + VISIBILITY_DELAY_SECONDS + ALIGNMENT_SECONDS
# The trend window in this many aligned points (at least one per minute): enough for a
# slope, few enough that 1000 instances stay within one page of 100 000 points.
TREND_POINTS = 60
MIN_TREND_POINTS = 5
# Growth below this share of maxmemory over the whole trend window counts as flat: no
# time-to-full from noise.
FLAT_GROWTH_FRACTION = 0.001

def level_of(ratio: float | None, thresholds: ThresholdSettings) -> Level:
    """The instance's level by its usage ratio; `unknown` without one (a node down, no points yet)."""
    if ratio is None:
        return "unknown"
    if ratio >= thresholds.memory_critical_ratio:
        return "critical"
    if ratio >= thresholds.memory_warning_ratio:
        return "warning"
    return "ok"


def time_to_full(
    points: Sequence[tuple[float, float]], used: float | None, max_bytes: float | None, window_seconds: float
) -> float | None:
    """Seconds until `used` reaches `max_bytes` at the least-squares slope of `points` (time, used bytes).

    None with fewer than MIN_TREND_POINTS points, or when the fitted growth over the window is
    below FLAT_GROWTH_FRACTION of maxmemory (flat or shrinking): an estimate from noise would be
    a false alarm. 0 when the instance is already full.
    """
    if used is None or not max_bytes or len(points) < MIN_TREND_POINTS:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    sxx = sum((t - mean_t) ** 2 for t, _ in points)
    if sxx == 0:
        return None
    slope = sum((t - mean_t) * (v - mean_v) for t, v in points) / sxx
    if slope * window_seconds < FLAT_GROWTH_FRACTION * max_bytes:
        return None
    return max(0.0, (max_bytes - used) / slope)


# --- clients -----------------------------------------------------------------------------------


def make_monitoring_client(gcp: GcpSettings) -> monitoring_v3.MetricServiceClient:
    """The process's Monitoring client: gRPC on an insecure channel to gcp.monitoring_endpoint (the emulator), else the real API with ADC."""
    return monitoring_client(gcp.monitoring_endpoint)


# --- Monitoring reads --------------------------------------------------------------------------

# instance resource name -> node id -> aligned end time -> value
Points = dict[str, dict[str, dict[float, float]]]


def _check_cancel(cancel: CancelToken | None) -> None:
    if cancel is not None:
        cancel.raise_if_cancelled()


def _value(point: Any) -> float:
    kind = point.value.WhichOneof("value")
    return float(getattr(point.value, kind)) if kind else 0.0


def read_series(
    client: monitoring_v3.MetricServiceClient,
    project: str,
    metric_type: str,
    *,
    start: float,
    end: float,
    alignment_seconds: int,
    aligner: int,  # an Aggregation.Aligner member (proto-plus enums are typed as their int values)
    gcp: GcpSettings,
    cancel: CancelToken | None = None,
) -> Points:
    """One `list_time_series` for one metric type over the project's primary nodes, every page read.

    The filter keeps role=primary only: a replica's memory is not the instance's.
    """
    where = gcp.monitoring_endpoint or "Cloud Monitoring"
    what = f"list_time_series projects/{project} {metric_type.removeprefix('redis.googleapis.com/')}"
    request = monitoring_v3.ListTimeSeriesRequest(
        name=f"projects/{project}",
        filter=(
            f'metric.type = "{metric_type}" AND resource.type = "redis_instance" AND metric.labels.role = "primary"'
        ),
        interval=monitoring_v3.TimeInterval(
            start_time={"seconds": int(start)},
            end_time={"seconds": int(end)},
        ),
        aggregation=monitoring_v3.Aggregation(
            alignment_period={"seconds": alignment_seconds},
            per_series_aligner=aligner,
        ),
        view=monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL,
    )
    out: Points = {}
    setting = "gcp.monitoring_endpoint" if gcp.monitoring_endpoint else None
    with api_errors(what, where=where, api="Cloud Monitoring API", timeout=gcp.request_timeout_seconds, setting=setting):
        pager = client.list_time_series(
            request=request,
            retry=retry_policy(gcp.request_timeout_seconds),
            timeout=gcp.request_timeout_seconds,
        )
        for page in pager.pages:
            _check_cancel(cancel)
            raw = type(page).pb(page)
            if raw.execution_errors:
                # Part of the data could not be read: figures from the rest would pass for the whole.
                first = raw.execution_errors[0]
                raise TransientError(f"{what}: Monitoring returned incomplete data ({one_line(first.message)})")
            for series in raw.time_series:
                name = series.resource.labels.get("instance_id", "")
                node = series.resource.labels.get("node_id", "")
                points = out.setdefault(name, {}).setdefault(node, {})
                for point in series.points:
                    points[point.interval.end_time.seconds + point.interval.end_time.nanos / 1e9] = _value(point)
    return out


def _preferred_node(instance: redis_v1.Instance) -> str | None:
    """The node the admin API shows as primary: the only node in currentLocationId's zone."""
    nodes = [n.id for n in instance.nodes if n.zone == instance.current_location_id]
    return nodes[0] if len(nodes) == 1 else None


def pick_newest(by_node: Mapping[str, Mapping[float, float]], preferred: str | None) -> tuple[str, float] | None:
    """(node, time) of the newest primary point. Two primaries at one time (a failover inside that
    minute): the API's current primary, else the lowest node id, so a run never mixes nodes and
    consecutive runs do not flap."""
    newest_by_node = {node: max(points) for node, points in by_node.items() if points}
    if not newest_by_node:
        return None
    newest = max(newest_by_node.values())
    candidates = [node for node, t in newest_by_node.items() if t == newest]
    return (preferred if preferred in candidates else min(candidates)), newest


def _timeline(by_node: Mapping[str, Mapping[float, float]], preferred: str | None) -> list[tuple[float, float]]:
    """One (time, value) per aligned time over all primary nodes (the primary moves on failover)."""
    times = sorted({t for points in by_node.values() for t in points})
    out = []
    for t in times:
        candidates = [n for n, p in by_node.items() if t in p]
        node = preferred if preferred in candidates else min(candidates)
        out.append((t, by_node[node][t]))
    return out


# --- the check ---------------------------------------------------------------------------------


class MemoryCheck:
    """The `memory` check: targets are project ids, a job gives that project's report (run it with run_memory_check).

    Clients are built once per process (core/gcp.py) and shared by every run and thread. The figures
    need only the projects; which stack holds an instance is enrichment from the stacks whose
    declared side could be read (fleet/declared.py), read once per run beside the figures. A stack
    that cannot be read never removes a figure: the instances it may hold show their owner unknown.
    """

    name = MEMORY

    def __init__(
        self,
        config: RedisguardConfig,
        *,
        selected_stacks: Sequence[str] | None = None,
        shard: Shard = WHOLE,
    ) -> None:
        self.config = config
        self.shard = shard
        self.gcp = config.gcp
        self.thresholds = config.thresholds
        self.selected = tuple(selected_stacks) if selected_stacks else config.pulumi.stacks
        self._secrets = config.secrets()
        # A stack that cannot be read now (a typo that is not even YAML) keeps its projects' figures,
        # so a filling instance still pages.
        self._projects = WatchedProjects(config, self.selected)

    @property
    def targets(self) -> tuple[str, ...]:
        """The watched projects (fleet/declared.py's WatchedProjects), read at every run, those this
        daemon's shard owns."""
        return tuple(project for project in self._projects.read() if self.shard.owns(project))

    def jobs(self, targets: Sequence[str], cancel: CancelToken) -> list[Job[ProjectMemoryReport]]:
        """One job per project (daemon/checks/protocol.py's protocol); the clients and this run's owners are shared.

        The stacks are read for each run (the first job to need them reads them, beside its figures):
        an instance declared since the last run is owned by its stack, not "unmanaged".
        """
        owners = _Owners(self.config)
        return [
            Job(
                check=self.name,
                target=project,
                run=functools.partial(self._report, project, owners, cancel),
                failed=functools.partial(self._failed, project),
            )
            for project in targets
        ]

    def _failed(self, project: str, error: RedisguardError, duration: float) -> ProjectMemoryReport:
        return ProjectMemoryReport.failed(project, scrub(str(error), self._secrets), duration, kind=error_kind(error))

    def _report(self, project: str, owners: _Owners, cancel: CancelToken) -> ProjectMemoryReport:
        """The project's memory report. A failure raises: the check runner (daemon/checks/protocol.py) turns it
        into the report's error, and logs an unexpected one with its traceback, once."""
        started = time.monotonic()
        instances = self._check(project, owners, cancel)
        crossed = any(i.level in CROSSED for i in instances)
        report = ProjectMemoryReport(
            project_id=project,
            status="threshold" if crossed else "ok",
            duration_seconds=round(time.monotonic() - started, 3),
            instances=tuple(instances),
        )
        log.debug(
            "memory check project=%s status=%s instances=%d duration=%.3fs",
            project,
            report.status,
            len(report.instances),
            report.duration_seconds,
        )
        return report

    def _check(self, project: str, owners: _Owners, cancel: CancelToken) -> list[InstanceMemory]:
        # Built once per process (core/gcp.py) and shared by every run and thread.
        redis_client, monitoring_client = make_client(self.gcp), make_monitoring_client(self.gcp)
        end = float(int(time.time()))
        _check_cancel(cancel)
        window = self.thresholds.trend_window.total_seconds()
        trend_alignment = max(ALIGNMENT_SECONDS, int(window // TREND_POINTS) // ALIGNMENT_SECONDS * ALIGNMENT_SECONDS)

        def series(metric_type: str, seconds: float, alignment: int, aligner: int) -> Callable[[], Points]:
            return lambda: read_series(
                monitoring_client, project, metric_type,
                start=end - seconds, end=end, alignment_seconds=alignment,
                aligner=monitoring_v3.Aggregation.Aligner(aligner), gcp=self.gcp, cancel=cancel,
            )  # fmt: skip

        # Now: the minute's peak (with Memorystore's one sample a minute it is that sample, and with
        # denser data a spike inside the minute is not averaged away). The trend: the mean.
        current = [
            series(metric, LOOKBACK_SECONDS, ALIGNMENT_SECONDS, monitoring_v3.Aggregation.Aligner.ALIGN_MAX)
            for metric in CURRENT_METRICS
        ]
        trend = series(USED, window, trend_alignment, monitoring_v3.Aggregation.Aligner.ALIGN_MEAN)
        # The six reads are independent: in parallel, a run takes as long as its slowest call. A
        # failed read waits for its siblings: retrying after the run reported, they would overlap
        # the next run and take its answers (each ends within its timeout, so no run is longer).
        # Who holds which instance is read beside the figures, never before them.
        reads: list[Callable[[], Any]] = [
            lambda: list_project_instances(redis_client, project, self.gcp), trend, *current, owners.read
        ]
        listed, history, *figures, stacks = run_on_daemon_threads(reads, names="memory-read")
        now = dict(zip(CURRENT_METRICS, figures, strict=True))
        instances = [owners.enrich(self._instance(inst, now, history), stacks) for inst in listed]
        return [i for i in instances if self._shown(i)]

    def _shown(self, instance: InstanceMemory) -> bool:
        if self.selected == self.config.pulumi.stacks:
            return True
        # --stack: that stack's instances, and the project's unmanaged ones (and those whose owner is unknown).
        return instance.ownership != "declared" or instance.stack in self.selected

    def _instance(self, instance: redis_v1.Instance, current: Mapping[str, Points], trend: Points) -> InstanceMemory:
        key = split_instance_name(instance.name)
        preferred = _preferred_node(instance)
        figures: dict[str, float | None] = dict.fromkeys(CURRENT_METRICS)
        anchor_metric = RATIO if current[RATIO].get(instance.name) else USED
        state = enum_name(instance.state)
        # A node that is down (REPAIRING) or an instance not serving yet or any more reported its
        # last points before that: they are not its memory now.
        picked = None if state in NOT_SERVING else pick_newest(current[anchor_metric].get(instance.name, {}), preferred)
        if picked is not None:
            node, at = picked
            # Every figure from the same node at the same minute: one consistent reading.
            for metric_type in CURRENT_METRICS:
                figures[metric_type] = current[metric_type].get(instance.name, {}).get(node, {}).get(at)
        used, max_bytes, ratio = figures[USED], figures[MAX], figures[RATIO]
        if ratio is None and used is not None and max_bytes:
            ratio = used / max_bytes
        history = _timeline(trend.get(instance.name, {}), preferred)
        return InstanceMemory(
            project_id=key.project,
            region=key.region,
            instance_id=key.instance_id,
            tier=enum_name(instance.tier),
            redis_version=instance.redis_version,
            state=state,
            capacity_bytes=int(instance.memory_size_gb) * GIB,
            used_bytes=used,
            max_bytes=max_bytes,
            usage_ratio=ratio,
            system_memory_usage_ratio=figures[SYSTEM_RATIO],
            time_to_full_seconds=time_to_full(history, used, max_bytes, self.thresholds.trend_window.total_seconds()),
            level=level_of(ratio, self.thresholds),
        )


class _Owners(RunOwners):
    """Which stack holds each instance, for one run (fleet/declared.py's RunOwners), on the memory figures."""

    @staticmethod
    def enrich(instance: InstanceMemory, stacks: Mapping[str, Declared]) -> InstanceMemory:
        """The instance with its stack; owner unknown (not unmanaged) when a stack that may hold it cannot be read."""
        key = LiveKey(project=instance.project_id, region=instance.region, instance_id=instance.instance_id)
        owner = owner_and_ownership(stacks, key)
        return instance.model_copy(
            update={"stack": owner.stack, "ownership": owner.ownership, "unreadable_stacks": owner.unreadable}
        )


def run_memory_check(
    config: RedisguardConfig,
    selected_stacks: Sequence[str] | None = None,
    *,
    check: MemoryCheck | None = None,
    cancel: CancelToken | None = None,
    publish: Callable[[ProjectMemoryReport], None] | None = None,
) -> MemoryReport:
    """Every target project of the check, at most `config.parallelism` at once, into one report
    (the check protocol's run_check; each project's result goes to `publish` as soon as it is known)."""
    check = check or MemoryCheck(config, selected_stacks=selected_stacks)
    results = run_check(check, cancel or CancelToken(), parallelism=config.parallelism, publish=publish)
    return MemoryReport(projects=tuple(results))
