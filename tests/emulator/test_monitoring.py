"""The emulated Cloud Monitoring API through google-cloud-monitoring over an insecure gRPC channel."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import redis
from google.api import metric_pb2
from google.api_core import exceptions
from google.cloud import monitoring_v3, redis_v1
from google.protobuf import field_mask_pb2

from tests.fixtures.emulator import EmulatorHandle, connect_redis, start_emulator, timestamp_seconds
from tests.fixtures.processes import wait_for

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
METRIC = "redis.googleapis.com/"
# usage_ratio from Monitoring vs used_memory/maxmemory from INFO read right after the sample:
# the only difference is the few KB a client connection's buffers move between the two reads.
USAGE_RATIO_TOLERANCE = 0.005

Aligner = monitoring_v3.Aggregation.Aligner
Reducer = monitoring_v3.Aggregation.Reducer
View = monitoring_v3.ListTimeSeriesRequest.TimeSeriesView


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    handle = start_emulator(tmp_path_factory.mktemp("emulator-monitoring"), sample_interval=0.1)
    client = handle.redis_client()
    for instance_id in ("metrics-a", "metrics-b"):
        client.create_instance(
            parent=handle.parent(),
            instance_id=instance_id,
            instance=redis_v1.Instance(tier="BASIC", memory_size_gb=1, auth_enabled=True),
        ).result(timeout=30)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def monitoring(emulator: EmulatorHandle) -> monitoring_v3.MetricServiceClient:
    return emulator.monitoring_client()


def _data(emulator: EmulatorHandle, instance_id: str) -> redis.Redis:
    client = emulator.redis_client()
    inst = client.get_instance(name=emulator.instance_name(instance_id))
    auth = client.get_instance_auth_string(name=inst.name).auth_string
    return connect_redis(inst.host, inst.port, auth)


def _interval(seconds_back: float = 120, end: float | None = None) -> monitoring_v3.TimeInterval:
    end = end if end is not None else time.time() + 1
    start = end - seconds_back
    return monitoring_v3.TimeInterval(
        end_time={"seconds": int(end), "nanos": int(end % 1 * 1e9)},
        start_time={"seconds": int(start), "nanos": int(start % 1 * 1e9)},
    )


def _list(
    monitoring: monitoring_v3.MetricServiceClient, emulator: EmulatorHandle, filter_: str, **request: Any
) -> list[monitoring_v3.TimeSeries]:
    request.setdefault("interval", _interval())
    return list(
        monitoring.list_time_series(request={"name": f"projects/{emulator.project}", "filter": filter_, **request})
    )


def _metric(name: str, instance_id: str | None = None, emulator: EmulatorHandle | None = None) -> str:
    text = f'metric.type = "{METRIC}{name}" AND resource.type = "redis_instance"'
    if instance_id and emulator:
        text += f' AND resource.labels.instance_id = "{emulator.instance_name(instance_id)}"'
    return text


def test_usage_ratio_agrees_with_info_memory(
    emulator: EmulatorHandle, monitoring: monitoring_v3.MetricServiceClient
) -> None:
    data = _data(emulator, "metrics-a")
    for i in range(8):
        data.set(f"blob:{i}", b"x" * MiB)
    info = data.info("memory")
    expected = info["used_memory"] / info["maxmemory"]
    written_at = time.time()
    assert info["maxmemory"] == 16 * MiB
    assert expected > 0.5

    def fresh_point() -> monitoring_v3.Point | None:
        series = _list(monitoring, emulator, _metric("stats/memory/usage_ratio", "metrics-a", emulator))
        point = series[0].points[0]  # newest first
        return point if timestamp_seconds(point.interval.end_time) > written_at else None

    point: monitoring_v3.Point = wait_for(fresh_point, timeout=10, what="a usage_ratio sample taken after the writes")
    ratio = point.value.double_value
    print(f"usage_ratio monitoring={ratio:.5f} info={expected:.5f} diff={abs(ratio - expected):.5f}")
    assert ratio == pytest.approx(expected, abs=USAGE_RATIO_TOLERANCE)

    usage = _list(monitoring, emulator, _metric("stats/memory/usage", "metrics-a", emulator))[0]
    assert usage.value_type == metric_pb2.MetricDescriptor.ValueType.INT64
    assert usage.points[0].value.int64_value == pytest.approx(info["used_memory"], rel=0.01)
    maxmemory = _list(monitoring, emulator, _metric("stats/memory/maxmemory", "metrics-a", emulator))[0]
    assert maxmemory.points[0].value.int64_value == 16 * MiB
    # redis refreshes used_memory_rss in its cron (every 100 ms): allow a sample or two.
    wait_for(
        lambda: (
            0.3
            < _list(monitoring, emulator, _metric("stats/memory/system_memory_usage_ratio", "metrics-a", emulator))[0]
            .points[0]
            .value.double_value
            < 1.5
        ),
        what="system_memory_usage_ratio to reflect the 8 MB written",
    )
    connected = _list(monitoring, emulator, _metric("clients/connected", "metrics-a", emulator))[0]
    wait_for(
        lambda: (
            _list(monitoring, emulator, _metric("clients/connected", "metrics-a", emulator))[0]
            .points[0]
            .value.int64_value
            >= 1
        ),
        what="our redis-py connection to be counted",
    )
    assert connected.resource.labels == {
        "project_id": emulator.project,
        "region": emulator.region,
        "instance_id": emulator.instance_name("metrics-a"),
        "node_id": "node-0",
    }
    data.close()


def test_filters_select_metric_types_and_instances(
    emulator: EmulatorHandle, monitoring: monitoring_v3.MetricServiceClient
) -> None:
    wait_for(
        lambda: len(_list(monitoring, emulator, _metric("stats/memory/usage"))) == 2, what="both instances sampled"
    )
    by_instance = _list(monitoring, emulator, _metric("stats/memory/usage", "metrics-b", emulator))
    assert [s.resource.labels["instance_id"] for s in by_instance] == [emulator.instance_name("metrics-b")]

    two_types = _list(
        monitoring,
        emulator,
        f'metric.type = one_of("{METRIC}stats/memory/usage", "{METRIC}clients/connected") '
        f'AND resource.label.instance_id = ends_with("/metrics-a")',
    )
    assert sorted(s.metric.type for s in two_types) == [f"{METRIC}clients/connected", f"{METRIC}stats/memory/usage"]

    negated = _list(
        monitoring,
        emulator,
        _metric("stats/memory/usage")
        + f' AND NOT resource.labels.instance_id = "{emulator.instance_name("metrics-a")}"',
    )
    assert [s.resource.labels["instance_id"] for s in negated] == [emulator.instance_name("metrics-b")]
    assert _list(monitoring, emulator, _metric("stats/memory/usage") + ' AND resource.labels.region = "us-east1"') == []
    assert _list(monitoring, emulator, 'metric.type = "compute.googleapis.com/instance/cpu/utilization"') == []
    other_project = list(
        monitoring.list_time_series(
            request={"name": "projects/someone-else", "filter": _metric("stats/memory/usage"), "interval": _interval()}
        )
    )
    assert other_project == []

    for bad in (
        'resource.type = "redis_instance"',
        'metric.type = "x" AND',
        'metric.type = "x" AND metadata.foo = "y"',
    ):
        with pytest.raises(exceptions.InvalidArgument):
            _list(monitoring, emulator, bad)


def test_interval_and_paging(emulator: EmulatorHandle, monitoring: monitoring_v3.MetricServiceClient) -> None:
    def enough_points() -> tuple[monitoring_v3.TimeInterval, list[monitoring_v3.TimeSeries]] | None:
        # A closed interval in the past: later samples cannot change the result between pages.
        interval = _interval(3, end=time.time())
        series = _list(monitoring, emulator, _metric("stats/memory/usage"), interval=interval)
        return (interval, series) if len(series) == 2 and all(len(s.points) >= 6 for s in series) else None

    interval, whole = wait_for(enough_points, what="six samples per instance within 3 s")
    for series in whole:
        ends = [timestamp_seconds(p.interval.end_time) for p in series.points]
        assert ends == sorted(ends, reverse=True), "points come newest first"
        assert all(timestamp_seconds(interval.start_time) <= t <= timestamp_seconds(interval.end_time) for t in ends)
    total_points = sum(len(s.points) for s in whole)

    pager = monitoring.list_time_series(
        request={
            "name": f"projects/{emulator.project}",
            "filter": _metric("stats/memory/usage"),
            "interval": interval,
            "page_size": 4,
        }
    )
    pages = list(pager.pages)
    assert all(sum(len(s.points) for s in page.time_series) <= 4 for page in pages)
    assert len(pages) == -(-total_points // 4)
    assert sum(len(s.points) for page in pages for s in page.time_series) == total_points

    headers = monitoring.list_time_series(
        request={
            "name": f"projects/{emulator.project}",
            "filter": _metric("stats/memory/usage"),
            "interval": interval,
            "view": View.HEADERS,
            "page_size": 1,
        }
    )
    header_pages = list(headers.pages)
    assert [len(p.time_series) for p in header_pages] == [1, 1]
    assert all(not s.points for p in header_pages for s in p.time_series)

    with pytest.raises(exceptions.InvalidArgument, match="page_token"):
        _list(monitoring, emulator, _metric("stats/memory/usage"), interval=interval, page_token="bm90LWEtdG9rZW4=")
    with pytest.raises(exceptions.InvalidArgument, match="start_time"):
        _list(
            monitoring,
            emulator,
            _metric("stats/memory/usage"),
            interval=monitoring_v3.TimeInterval(
                start_time={"seconds": int(time.time())}, end_time={"seconds": int(time.time()) - 10}
            ),
        )


def test_alignment_mean_max_and_delta(emulator: EmulatorHandle, monitoring: monitoring_v3.MetricServiceClient) -> None:
    raw = _list(monitoring, emulator, _metric("stats/memory/usage", "metrics-b", emulator), interval=_interval(60))[0]
    values = [p.value.int64_value for p in raw.points]
    # Just after the newest point: no rounding may push that point out of the window.
    end = timestamp_seconds(raw.points[0].interval.end_time) + 0.001
    interval = _interval(0, end=end)

    def aligned(aligner: int, metric: str = "stats/memory/usage") -> monitoring_v3.TimeSeries:
        return _list(
            monitoring,
            emulator,
            _metric(metric, "metrics-b", emulator),
            interval=interval,
            aggregation={"alignment_period": {"seconds": 60}, "per_series_aligner": aligner},
        )[0]

    # One 60 s window ending at `end` holds exactly the raw points of the last 60 s.
    mean = aligned(Aligner.ALIGN_MEAN)
    window = [p.value.int64_value for p in raw.points if timestamp_seconds(p.interval.end_time) > end - 60]
    assert len(mean.points) == 1
    assert mean.points[0].value.double_value == pytest.approx(sum(window) / len(window))
    assert aligned(Aligner.ALIGN_MAX).points[0].value.int64_value == max(values)

    # Evictions: fill metrics-b past maxmemory under allkeys-lru, compare ALIGN_DELTA with INFO.
    client = emulator.redis_client()
    client.update_instance(
        update_mask=field_mask_pb2.FieldMask(paths=["redis_configs"]),
        instance=redis_v1.Instance(
            name=emulator.instance_name("metrics-b"), redis_configs={"maxmemory-policy": "allkeys-lru"}
        ),
    ).result(timeout=30)
    data = _data(emulator, "metrics-b")
    for i in range(40):
        data.set(f"evict:{i}", b"y" * (MiB // 2))
    evicted = data.info("stats")["evicted_keys"]
    assert evicted > 0
    data.close()

    def evicted_delta() -> monitoring_v3.TimeSeries | None:
        series = _list(
            monitoring,
            emulator,
            _metric("stats/evicted_keys", "metrics-b", emulator),
            interval=_interval(0),
            aggregation={"alignment_period": {"seconds": 600}, "per_series_aligner": Aligner.ALIGN_DELTA},
        )
        return series[0] if series and series[0].points[0].value.int64_value == evicted else None

    delta: monitoring_v3.TimeSeries = wait_for(
        evicted_delta, timeout=10, what="ALIGN_DELTA of evicted_keys to equal INFO evicted_keys"
    )
    assert delta.metric_kind == metric_pb2.MetricDescriptor.MetricKind.DELTA
    delta_interval = delta.points[0].interval
    assert timestamp_seconds(delta_interval.end_time) - timestamp_seconds(delta_interval.start_time) == pytest.approx(
        600
    )

    with pytest.raises(exceptions.InvalidArgument, match="GAUGE"):
        aligned(Aligner.ALIGN_DELTA)
    with pytest.raises(exceptions.InvalidArgument, match="at least 60 seconds"):
        _list(
            monitoring,
            emulator,
            _metric("stats/memory/usage"),
            aggregation={"alignment_period": {"seconds": 10}, "per_series_aligner": Aligner.ALIGN_MEAN},
        )


def test_cross_series_reduction(emulator: EmulatorHandle, monitoring: monitoring_v3.MetricServiceClient) -> None:
    per_instance = _list(
        monitoring,
        emulator,
        _metric("stats/memory/maxmemory"),
        interval=_interval(0),
        aggregation={"alignment_period": {"seconds": 60}, "per_series_aligner": Aligner.ALIGN_MAX},
    )
    summed = _list(
        monitoring,
        emulator,
        _metric("stats/memory/maxmemory"),
        interval=_interval(0),
        aggregation={
            "alignment_period": {"seconds": 60},
            "per_series_aligner": Aligner.ALIGN_MAX,
            "cross_series_reducer": Reducer.REDUCE_SUM,
            "group_by_fields": ["resource.label.region"],
        },
    )
    assert len(per_instance) == 2 and len(summed) == 1
    assert summed[0].resource.labels == {"region": emulator.region}
    assert summed[0].points[0].value.int64_value == sum(s.points[0].value.int64_value for s in per_instance)


def test_killed_instance_stops_reporting(
    emulator: EmulatorHandle, monitoring: monitoring_v3.MetricServiceClient
) -> None:
    client = emulator.redis_client()
    client.create_instance(
        parent=emulator.parent(), instance_id="metrics-kill", instance=redis_v1.Instance(tier="BASIC", memory_size_gb=1)
    ).result(timeout=30)
    wait_for(
        lambda: _list(monitoring, emulator, _metric("stats/memory/usage", "metrics-kill", emulator)),
        what="first sample",
    )
    emulator.kill_instance(emulator.region, "metrics-kill")
    killed_at = time.time()
    # Wait until the sampler has run several times since the kill (it samples metrics-a too).
    wait_for(
        lambda: (
            timestamp_seconds(
                _list(monitoring, emulator, _metric("stats/memory/usage", "metrics-a", emulator))[0]
                .points[0]
                .interval.end_time
            )
            > killed_at + 0.5
        ),
        what="samples taken after the kill",
    )
    series = _list(monitoring, emulator, _metric("stats/memory/usage", "metrics-kill", emulator), interval=_interval(5))
    assert all(timestamp_seconds(p.interval.end_time) <= killed_at + 0.05 for s in series for p in s.points)
    client.delete_instance(name=emulator.instance_name("metrics-kill")).result(timeout=30)
    wait_for(
        lambda: not _list(monitoring, emulator, _metric("stats/memory/usage", "metrics-kill", emulator)),
        what="a deleted instance to disappear from Monitoring",
    )


def test_history_is_bounded(emulator_factory: Callable[..., EmulatorHandle]) -> None:
    emulator = emulator_factory(processes=False, sample_interval=0.05, extra_args=["--history", "5"])
    emulator.redis_client().create_instance(
        parent=emulator.parent(), instance_id="bounded", instance=redis_v1.Instance(tier="BASIC", memory_size_gb=1)
    ).result(timeout=30)
    monitoring = emulator.monitoring_client()
    started = time.time()

    def points_since_start() -> Sequence[monitoring_v3.Point]:
        series = _list(monitoring, emulator, _metric("stats/memory/usage"), interval=_interval(600))
        return series[0].points if series else []

    # Wait until the oldest point kept is younger than the instance: older ones were dropped.
    points = wait_for(
        lambda: (p := points_since_start()) and timestamp_seconds(p[-1].interval.end_time) > started + 0.3 and p,
        what="samples beyond the history bound",
    )
    assert len(points) == 5
