"""ListTimeSeries over the sampled histories: the request, its series, paging and partial responses."""

from __future__ import annotations

import bisect
import hashlib
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from google.cloud.monitoring_v3.types import metric, metric_service
from google.protobuf import timestamp_pb2

from redisguard.emulator import paging
from redisguard.emulator.errors import ApiError, invalid
from redisguard.emulator.memorystore.store import split_name
from redisguard.emulator.monitoring.aggregation import Aligner, Reducer, align, reduce, validate_aggregation
from redisguard.emulator.monitoring.catalogue import (
    METRICS,
    RESOURCE_TYPE,
    Kind,
    MetricDef,
    Series,
    ValueType,
    resource_labels,
)
from redisguard.emulator.monitoring.filters import Filter, parse_filter
from redisguard.emulator.monitoring.sampler import Sample, sample_time

ListTimeSeriesRequest = metric_service.ListTimeSeriesRequest.pb()
ListTimeSeriesResponse = metric_service.ListTimeSeriesResponse.pb()
TimeSeries = metric.TimeSeries.pb()
MAX_PAGE_SIZE = 100_000


def node_views(samples: list[Sample], node: str) -> list[tuple[str, float, Sample]]:
    """What `node` reported at each sample time: (role, time, reading), oldest first.

    One redis-server serves every node of an instance. The primary reports the sample; a
    replica reports the primary's previous sample (it trails replication by one sampling
    interval), so primary and replica series differ the way a lagging replica's do. Without
    processes each node has its own synthetic reading.
    """
    out: list[tuple[str, float, Sample]] = []
    for i, cur in enumerate(samples):
        if node not in cur.nodes:
            continue
        if node == cur.primary_node:
            out.append(("primary", cur.time, cur))
            continue
        own = dict(cur.replica_readings).get(node) if cur.replica_readings else None
        out.append(("replica", cur.time, own if own is not None else samples[i - 1] if i > 0 else cur))
    return out


def raw_series(
    histories: dict[str, list[Sample]], project: str, start: float, end: float, selected: Filter
) -> list[Series]:
    """One series per (instance, node, role) and metric: a failover moves a node from one role's series to the other's."""
    out = []
    verdicts: dict[tuple[str, ...], bool] = {}
    for name in sorted(histories):
        project_id, _, _ = split_name(name)
        if project_id != project:
            continue
        samples = histories[name]
        # Samples are in time order: skip straight to the interval (one earlier for DELTA's start).
        lo = max(bisect.bisect_left(samples, start, key=sample_time) - 1, 0)
        hi = bisect.bisect_right(samples, end, key=sample_time)
        window = samples[lo:hi]
        nodes = dict.fromkeys(node for ids in dict.fromkeys(sample.nodes for sample in window) for node in ids)
        for node in nodes:
            labels = resource_labels(name, node)
            views: list[tuple[str, float, Sample]] | None = None
            for role in ("primary", "replica"):
                for mdef in METRICS.values():
                    series = Series(mdef.type, {"role": role}, labels, mdef.kind, mdef.value_type, mdef.unit, [])
                    if not selected.selects(series, verdicts):
                        continue
                    if views is None:
                        views = node_views(window, node)
                    _fill_points(series, mdef, views, role, start)
                    if series.points:
                        out.append(series)
    return out


def _fill_points(
    series: Series, mdef: MetricDef, views: list[tuple[str, float, Sample]], role: str, start: float
) -> None:
    value_of = mdef.value
    prev: tuple[float, Sample] | None = None
    for view_role, t, cur in views:
        if view_role == role and t >= start:
            if mdef.kind == Kind.DELTA:
                # A DELTA point spans from the node's previous reading (in any role) to this one.
                if prev is not None and (value := value_of(cur, prev[1])) is not None:
                    series.points.append((prev[0], t, value))
            else:
                value = value_of(cur, None)
                if value is not None:
                    series.points.append((t, t, value))
        prev = (t, cur)


def _seconds(ts: timestamp_pb2.Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9


def _set_ts(target: timestamp_pb2.Timestamp, t: float) -> None:
    # Microsecond precision: float seconds carry no more.
    target.FromMicroseconds(round(t * 1_000_000))


def _to_pb(series: Series, with_points: bool, points: Iterable[tuple[float, float, Any]]) -> Any:
    ts = TimeSeries(metric_kind=series.kind, value_type=series.value_type, unit=series.unit)
    ts.metric.type = series.metric_type
    ts.metric.labels.update(series.metric_labels)
    ts.resource.type = RESOURCE_TYPE
    ts.resource.labels.update(series.resource_labels)
    if with_points:
        # Google returns points newest first.
        for start, end, value in sorted(points, key=lambda p: p[1], reverse=True):
            point = ts.points.add()
            _set_ts(point.interval.end_time, end)
            if series.kind != Kind.GAUGE:
                _set_ts(point.interval.start_time, start)
            if series.value_type == ValueType.DOUBLE:
                point.value.double_value = float(value)
            else:
                point.value.int64_value = int(value)
    return ts


def _request_fingerprint(req: Any) -> str:
    copy = ListTimeSeriesRequest()
    copy.CopyFrom(req)
    copy.page_token = ""
    copy.page_size = 0
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()[:16]


class _PageCache:
    """Results of requests with more pages, by request fingerprint, for a minute."""

    def __init__(self, ttl: float = 60.0, size: int = 32) -> None:
        self.ttl, self.size = ttl, size
        self._items: OrderedDict[str, tuple[float, list[Series]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> list[Series] | None:
        with self._lock:
            item = self._items.get(key)
            if item is None or time.monotonic() - item[0] > self.ttl:
                return None
            return item[1]

    def put(self, key: str, series: list[Series]) -> None:
        with self._lock:
            self._items[key] = (time.monotonic(), series)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


_PAGES = _PageCache()


def _compute(
    samples: SampleSource, project: str, start: float, end: float, selected: Filter, agg: Any
) -> list[Series]:
    aligned = agg.per_series_aligner != Aligner.ALIGN_NONE
    # Aligned windows may reach back one period before start_time.
    data_start = start - (agg.alignment_period.seconds if aligned else 0)
    series = raw_series(samples(data_start), project, data_start, end, selected)
    if aligned:
        series = [align(s, agg, start, end) for s in series]
        if agg.cross_series_reducer != Reducer.REDUCE_NONE:
            series = reduce(series, agg)
    series = [s for s in series if s.points]
    series.sort(key=lambda s: (s.metric_type, sorted(s.resource_labels.items()), sorted(s.metric_labels.items())))
    return series


SampleSource = Callable[[float], dict[str, list[Sample]]]
"""Per instance name, the samples from (shortly before) a given time on, oldest first."""


def list_time_series(req: Any, samples: SampleSource) -> Any:
    """The ListTimeSeriesResponse for `req` over the sampled histories."""
    query = _read_request(req)
    fingerprint = _request_fingerprint(req)
    try:
        si, pi = paging.decode_token(req.page_token, 2, request=fingerprint)
    except ValueError as exc:
        raise invalid("Invalid page_token: it does not belong to this request.") from exc
    # Later pages read the result the first page computed: the same data, and no recomputation.
    series = _PAGES.get(fingerprint) if req.page_token else None
    if series is None:
        series = _compute(samples, query.project, query.start, query.end, query.selected, req.aggregation)
    resp = ListTimeSeriesResponse()
    headers_only = req.view == ListTimeSeriesRequest.TimeSeriesView.HEADERS
    si, pi = _fill_page(resp, series, si, pi, query.page_size, headers_only)
    if si < len(series):
        resp.next_page_token = paging.encode_token([si, pi], request=fingerprint)
        _PAGES.put(fingerprint, series)
    if series:
        resp.unit = series[0].unit
    return resp


@dataclass(frozen=True)
class _Query:
    project: str
    selected: Filter
    start: float
    end: float
    page_size: int


def _read_request(req: Any) -> _Query:
    """What `req` asks for, checked as Monitoring checks it (INVALID_ARGUMENT, UNIMPLEMENTED)."""
    if not re.fullmatch(r"projects/[^/]+", req.name):
        raise invalid(f"Invalid resource name '{req.name}': expected projects/PROJECT_ID_OR_NUMBER.")
    project = req.name.split("/")[1]
    selected = parse_filter(req.filter)
    if not req.HasField("interval") or not req.interval.HasField("end_time"):
        raise invalid("Request is missing required field interval.end_time.")
    end = _seconds(req.interval.end_time)
    start = _seconds(req.interval.start_time) if req.interval.HasField("start_time") else end
    if start > end:
        raise invalid("The interval start_time must not be later than its end_time.")
    page_size = paging.page_size(req.page_size, MAX_PAGE_SIZE)
    if req.HasField("secondary_aggregation") and req.secondary_aggregation.per_series_aligner:
        raise ApiError("UNIMPLEMENTED", "secondary_aggregation is not emulated.")
    validate_aggregation(req.aggregation)
    return _Query(project, selected, start, end, page_size)


def _fill_page(resp: Any, series: list[Series], si: int, pi: int, budget: int, headers_only: bool) -> tuple[int, int]:
    """Add to `resp` the page that starts at point `pi` of series `si`; where the next page starts."""
    while si < len(series) and budget > 0:
        s = series[si]
        if headers_only:
            resp.time_series.append(_to_pb(s, False, ()))
            budget -= 1
            si += 1
            continue
        # Page size counts points in FULL view: a long series continues on the next page.
        newest_first = sorted(s.points, key=lambda p: p[1], reverse=True)
        chunk = newest_first[pi : pi + budget]
        resp.time_series.append(_to_pb(s, True, chunk))
        budget -= len(chunk)
        pi += len(chunk)
        if pi >= len(newest_first):
            si, pi = si + 1, 0
    return si, pi


def partial_response(resp: Any) -> Any:
    """`resp` as Monitoring answers when part of the data could not be read: every other series
    left out, and an execution error saying the result is incomplete."""
    out = ListTimeSeriesResponse()
    out.CopyFrom(resp)
    del out.time_series[:]
    out.time_series.extend(resp.time_series[::2])
    error = out.execution_errors.add()
    error.code = 14  # UNAVAILABLE
    error.message = "Some time series could not be read (injected partial result); the data may be incomplete."
    return out
