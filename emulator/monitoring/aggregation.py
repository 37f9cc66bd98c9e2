"""Alignment (per series) and reduction (across series) of ListTimeSeries, as Monitoring computes them."""

from __future__ import annotations

import bisect
import functools
import math
import statistics
from collections.abc import Callable
from typing import Any

from google.cloud.monitoring_v3.types import common

from redisguard.emulator.errors import ApiError, invalid
from redisguard.emulator.monitoring.catalogue import Kind, Series, ValueType
from redisguard.emulator.monitoring.filters import normalize_selector

Aggregation = common.Aggregation.pb()
Aligner = Aggregation.Aligner
Reducer = Aggregation.Reducer
MIN_ALIGNMENT_SECONDS = 60


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
        return ValueType.DOUBLE
    if kind == "COUNT":
        return ValueType.INT64
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
    key = normalize_selector(field) if field not in ("metric.type", "resource.type") else field
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
