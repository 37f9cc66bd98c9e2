"""ListTimeSeries semantics: metric catalogue, monitoring filter language, alignment, reduction, paging."""

from __future__ import annotations

import base64
import bisect
import functools
import hashlib
import json
import math
import re
import statistics
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from google.api import metric_pb2
from google.cloud.monitoring_v3.types import common, metric, metric_service

from redisguard.emulator import state as st
from redisguard.emulator.errors import ApiError, invalid
from redisguard.emulator.sampler import Sample

ListTimeSeriesRequest = metric_service.ListTimeSeriesRequest.pb()
ListTimeSeriesResponse = metric_service.ListTimeSeriesResponse.pb()
TimeSeries = metric.TimeSeries.pb()
Point = metric.Point.pb()
Aggregation = common.Aggregation.pb()
Aligner = Aggregation.Aligner
Reducer = Aggregation.Reducer
Kind = metric_pb2.MetricDescriptor.MetricKind
ValueType = metric_pb2.MetricDescriptor.ValueType

RESOURCE_TYPE = "redis_instance"
METRIC_PREFIX = "redis.googleapis.com/"
MAX_PAGE_SIZE = 100_000
MIN_ALIGNMENT_SECONDS = 60


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


# ----- filter language -----------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<op>!=~|=~|!=|<=|>=|=|:|<|>)
      | (?P<punct>[(),])
      | (?P<word>[A-Za-z_][A-Za-z0-9_./-]*|-?[0-9]+(?:\.[0-9]+)?)
    )""",
    re.VERBOSE,
)
_FUNCTIONS = ("starts_with", "ends_with", "has_substring", "one_of", "monitoring.regex.full_match")


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise invalid(f"Invalid filter: unexpected character at position {pos}: {text[pos : pos + 20]!r}")
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "string":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append((kind, value))
        pos = m.end()
    return tokens


Predicate = Callable[[dict[str, str]], bool]


class _Parser:
    """Recursive descent over: expr := and (OR and)*; and := unary ([AND] unary)*; unary := NOT unary | (expr) | cmp."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0
        self.metric_types: list[str] = []
        self.keys: dict[str, None] = {}
        """The label keys the filter reads, in order of appearance."""

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise invalid("Invalid filter: unexpected end of filter.")
        self.pos += 1
        return tok

    def expect(self, value: str) -> None:
        tok = self.take()
        if tok[1] != value:
            raise invalid(f"Invalid filter: expected '{value}', got '{tok[1]}'.")

    def parse(self) -> Predicate:
        if not self.tokens:
            raise invalid("Request is missing required field filter.")
        pred = self.or_expr()
        if (extra := self.peek()) is not None:
            raise invalid(f"Invalid filter: unexpected '{extra[1]}'.")
        return pred

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.peek() == ("word", "OR"):
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else (lambda labels: any(p(labels) for p in parts))

    def and_expr(self) -> Predicate:
        parts = [self.unary()]
        while (tok := self.peek()) is not None and tok != ("word", "OR") and tok[1] != ")":
            if tok == ("word", "AND"):
                self.take()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else (lambda labels: all(p(labels) for p in parts))

    def unary(self) -> Predicate:
        tok = self.take()
        if tok == ("word", "NOT"):
            inner = self.unary()
            return lambda labels: not inner(labels)
        if tok[1] == "(":
            inner = self.or_expr()
            self.expect(")")
            return inner
        if tok[0] != "word":
            raise invalid(f"Invalid filter: expected a selector, got '{tok[1]}'.")
        return self.comparison(tok[1])

    def comparison(self, selector: str) -> Predicate:
        key = _normalize_selector(selector)
        self.keys[key] = None
        kind, op = self.take()
        if kind != "op":
            raise invalid(f"Invalid filter: expected an operator after '{selector}', got '{op}'.")
        match = self.value()
        if key == "metric.type" and op == "=" and isinstance(match, str):
            self.metric_types.append(match)
        elif key == "metric.type" and op == "=":
            self.metric_types.append("*")

        def test(value: str) -> bool:
            if op in ("=", "!="):
                ok = match(value) if callable(match) else value == match
            elif op in ("=~", "!=~"):
                ok = re.fullmatch(str(match), value) is not None
            elif op == ":":
                ok = match(value) if callable(match) else str(match) in value
            else:
                raise invalid(f"Invalid filter: operator '{op}' is not supported for '{selector}'.")
            return not ok if op.startswith("!") else ok

        return lambda labels: test(labels.get(key, ""))

    def value(self) -> str | Callable[[str], bool]:
        kind, value = self.take()
        if kind == "string" or (kind == "word" and self.peek() != ("punct", "(")):
            return value
        if kind != "word" or value not in _FUNCTIONS:
            raise invalid(f"Invalid filter: unknown function or value '{value}'.")
        self.expect("(")
        args: list[str] = []
        while True:
            akind, arg = self.take()
            if akind != "string":
                raise invalid(f"Invalid filter: {value}() takes quoted strings, got '{arg}'.")
            args.append(arg)
            if self.take()[1] == ")":
                break
        if value == "one_of":
            return lambda v: v in args
        if len(args) != 1:
            raise invalid(f"Invalid filter: {value}() takes one argument.")
        a = args[0]
        return {
            "starts_with": lambda v: v.startswith(a),
            "ends_with": lambda v: v.endswith(a),
            "has_substring": lambda v: a in v,
            "monitoring.regex.full_match": lambda v: re.fullmatch(a, v) is not None,
        }[value]


def _normalize_selector(selector: str) -> str:
    """metric.labels.x / metric.label.x -> metric.label.x; resource likewise; errors name the selector."""
    if selector in ("metric.type", "resource.type", "project"):
        return selector
    for prefix in ("metric", "resource"):
        for form in (f"{prefix}.labels.", f"{prefix}.label."):
            if selector.startswith(form) and len(selector) > len(form):
                return f"{prefix}.label.{selector[len(form) :]}"
    raise invalid(
        f"Invalid filter: '{selector}' is not a selector the emulator supports "
        "(metric.type, resource.type, project, metric.labels.*, resource.labels.*)."
    )


@dataclass(frozen=True)
class Filter:
    """A parsed filter: the predicate over a series' labels, and the label keys it reads."""

    predicate: Predicate
    keys: tuple[str, ...]

    def selects(self, series: Series, verdicts: dict[tuple[str, ...], bool]) -> bool:
        """Whether the filter selects `series`. The verdict depends on the values of `keys` alone, so
        it is computed once per distinct values and kept in `verdicts` (one dict per request): a
        request over 1000 instances evaluates the filter a few dozen times, not for every series."""
        values = tuple(series.label(key) for key in self.keys)
        verdict = verdicts.get(values)
        if verdict is None:
            verdict = verdicts[values] = self.predicate(dict(zip(self.keys, values, strict=True)))
        return verdict


def parse_filter(text: str) -> Filter:
    parser = _Parser(text)
    predicate = parser.parse()
    if not parser.metric_types:
        raise invalid('The filter must specify a metric type (metric.type = "...").')
    return Filter(predicate, tuple(parser.keys))


# ----- series ----------------------------------------------------------------------------


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


def resource_labels(name: str, node_id: str = st.PRIMARY_NODE) -> dict[str, str]:
    """Labels Google sets on redis_instance: instance_id is the full instance resource name, node_id the node."""
    project, region, _ = st.split_name(name)
    return {"project_id": project, "region": region, "instance_id": name, "node_id": node_id}


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
        project_id, _, _ = st.split_name(name)
        if project_id != project:
            continue
        samples = histories[name]
        # Samples are in time order: skip straight to the interval (one earlier for DELTA's start).
        lo = max(bisect.bisect_left(samples, start, key=_sample_time) - 1, 0)
        hi = bisect.bisect_right(samples, end, key=_sample_time)
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
            if mdef.kind == _D:
                # A DELTA point spans from the node's previous reading (in any role) to this one.
                if prev is not None and (value := value_of(cur, prev[1])) is not None:
                    series.points.append((prev[0], t, value))
            else:
                value = value_of(cur, None)
                if value is not None:
                    series.points.append((t, t, value))
        prev = (t, cur)


def _sample_time(sample: Sample) -> float:
    return sample.time


# ----- aggregation -----------------------------------------------------------------------


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    rank = max(0, math.ceil(pct / 100 * len(ordered)) - 1)
    return float(ordered[rank])


# The statistics aligners and reducers share, by the suffix of their enum names.
_STATISTICS: dict[str, Callable[[list[Any]], Any]] = {
    "MEAN": lambda v: float(statistics.fmean(v)),
    "MAX": max,
    "MIN": min,
    "SUM": sum,
    "COUNT": len,
    "STDDEV": lambda v: float(statistics.pstdev(v)),
    **{f"PERCENTILE_{pct:02d}": functools.partial(_percentile, pct=pct) for pct in (99, 95, 50, 5)},
}
_ALIGN_FUNCS: dict[int, Callable[[list[Any]], Any]] = {
    **{Aligner.Value(f"ALIGN_{name}"): func for name, func in _STATISTICS.items()},
    Aligner.ALIGN_DELTA: sum,
    Aligner.ALIGN_NEXT_OLDER: lambda v: v[-1],
}
_DELTA_ONLY = (Aligner.ALIGN_DELTA, Aligner.ALIGN_RATE)
_REDUCE_FUNCS: dict[int, Callable[[list[Any]], Any]] = {
    Reducer.Value(f"REDUCE_{name}"): func for name, func in _STATISTICS.items()
}


def _output_type(operation: str, value_type: int) -> int:
    """The value type an aligner or reducer (by enum name) produces from `value_type`."""
    kind = operation.split("_", 1)[1]
    if kind in ("MEAN", "RATE", "STDDEV") or kind.startswith("PERCENTILE"):
        return _F
    if kind == "COUNT":
        return _I
    return value_type


def validate_aggregation(agg: Any) -> None:
    aligner, reducer = agg.per_series_aligner, agg.cross_series_reducer
    if aligner == Aligner.ALIGN_NONE:
        if reducer != Reducer.REDUCE_NONE:
            raise invalid("A cross_series_reducer requires a per_series_aligner other than ALIGN_NONE.")
        return
    if aligner not in _ALIGN_FUNCS and aligner != Aligner.ALIGN_RATE:
        raise ApiError("UNIMPLEMENTED", f"The aligner {Aligner.Name(aligner)} is not emulated.")
    if reducer != Reducer.REDUCE_NONE and reducer not in _REDUCE_FUNCS:
        raise ApiError("UNIMPLEMENTED", f"The reducer {Reducer.Name(reducer)} is not emulated.")
    period = agg.alignment_period.seconds + agg.alignment_period.nanos / 1e9
    if not agg.HasField("alignment_period"):
        raise invalid("The alignment_period is required when per_series_aligner is not ALIGN_NONE.")
    if period < MIN_ALIGNMENT_SECONDS:
        raise invalid(f"The alignment_period must be at least {MIN_ALIGNMENT_SECONDS} seconds, got {period:g}s.")


def align(series: Series, agg: Any, start: float, end: float) -> Series:
    aligner = agg.per_series_aligner
    if aligner in _DELTA_ONLY and series.kind == Kind.GAUGE:
        raise invalid(
            f"The aligner {Aligner.Name(aligner)} cannot be applied to {series.metric_type}: "
            "its kind is GAUGE (use it with DELTA or CUMULATIVE metrics)."
        )
    period = agg.alignment_period.seconds + agg.alignment_period.nanos / 1e9
    out_kind = (
        Kind.DELTA
        if (aligner == Aligner.ALIGN_DELTA or (aligner == Aligner.ALIGN_SUM and series.kind == Kind.DELTA))
        else Kind.GAUGE
    )
    out_type = _output_type(Aligner.Name(aligner), series.value_type)
    points: list[tuple[float, float, Any]] = []
    # Points are oldest first: each window (window_end - period, window_end] is a slice found by bisection.
    ends = [t for _, t, _ in series.points]
    window_end = end
    while True:
        window_start = window_end - period
        lo = bisect.bisect_right(ends, window_start)
        hi = bisect.bisect_right(ends, window_end)
        values = [series.points[i][2] for i in range(lo, hi)]
        if values:
            if aligner == Aligner.ALIGN_RATE:
                value: Any = sum(values) / period
            else:
                value = _ALIGN_FUNCS[aligner](values)
            if out_type == ValueType.INT64:
                value = int(value)
            points.append((window_start if out_kind == Kind.DELTA else window_end, window_end, value))
        window_end -= period
        # lo == 0: no point at or before this window's start, so every earlier window is empty too.
        if window_end <= start or lo == 0:
            break
    points.reverse()
    return Series(
        series.metric_type, series.metric_labels, series.resource_labels, out_kind, out_type, series.unit, points
    )


def _group_value(series: Series, field: str) -> tuple[str, str, str] | None:
    key = _normalize_selector(field) if field not in ("metric.type", "resource.type") else field
    if key.startswith("metric.label."):
        return ("metric", key[len("metric.label.") :], series.metric_labels.get(key[len("metric.label.") :], ""))
    if key.startswith("resource.label."):
        return (
            "resource",
            key[len("resource.label.") :],
            series.resource_labels.get(key[len("resource.label.") :], ""),
        )
    return None


def reduce(series: list[Series], agg: Any) -> list[Series]:
    func = _REDUCE_FUNCS[agg.cross_series_reducer]
    groups: dict[tuple[Any, ...], list[Series]] = {}
    for s in series:
        key = (s.metric_type, *(_group_value(s, f) for f in agg.group_by_fields))
        groups.setdefault(key, []).append(s)
    out = []
    for key, members in groups.items():
        first = members[0]
        metric_labels = {g[1]: g[2] for g in key[1:] if g and g[0] == "metric"}
        res_labels = {g[1]: g[2] for g in key[1:] if g and g[0] == "resource"}
        by_time: dict[float, list[Any]] = {}
        starts: dict[float, float] = {}
        for m in members:
            for p_start, p_end, value in m.points:
                by_time.setdefault(p_end, []).append(value)
                starts[p_end] = p_start
        out_type = _output_type(Reducer.Name(agg.cross_series_reducer), first.value_type)
        points = []
        for t in sorted(by_time):
            value = func(by_time[t])
            points.append((starts[t], t, int(value) if out_type == ValueType.INT64 else value))
        out.append(Series(first.metric_type, metric_labels, res_labels, first.kind, out_type, first.unit, points))
    return out


# ----- the request -----------------------------------------------------------------------


def _seconds(ts: Any) -> float:
    return ts.seconds + ts.nanos / 1e9


def _set_ts(target: Any, t: float) -> None:
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
            if series.kind != _G:
                _set_ts(point.interval.start_time, start)
            if series.value_type == _F:
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


def _decode_page_token(token: str, fingerprint: str) -> tuple[int, int]:
    if not token:
        return 0, 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        if data["h"] != fingerprint:
            raise ValueError
        return int(data["s"]), int(data["p"])
    except (ValueError, KeyError, TypeError) as exc:
        raise invalid("Invalid page_token: it does not belong to this request.") from exc


def _encode_page_token(series_index: int, point_index: int, fingerprint: str) -> str:
    return base64.urlsafe_b64encode(
        json.dumps({"s": series_index, "p": point_index, "h": fingerprint}).encode()
    ).decode()


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
    if req.page_size < 0:
        raise invalid("page_size must not be negative.")
    if req.HasField("secondary_aggregation") and req.secondary_aggregation.per_series_aligner:
        raise ApiError("UNIMPLEMENTED", "secondary_aggregation is not emulated.")
    agg = req.aggregation
    validate_aggregation(agg)

    fingerprint = _request_fingerprint(req)
    si, pi = _decode_page_token(req.page_token, fingerprint)
    # Later pages read the result the first page computed: the same data, and no recomputation.
    series = _PAGES.get(fingerprint) if req.page_token else None
    if series is None:
        series = _compute(samples, project, start, end, selected, req.aggregation)

    headers_only = req.view == ListTimeSeriesRequest.TimeSeriesView.HEADERS
    budget = min(req.page_size or MAX_PAGE_SIZE, MAX_PAGE_SIZE)
    resp = ListTimeSeriesResponse()
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
    if si < len(series):
        resp.next_page_token = _encode_page_token(si, pi, fingerprint)
        _PAGES.put(fingerprint, series)
    if series:
        resp.unit = series[0].unit
    return resp


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
