"""Replica nodes and failover in the emulator, as Google's Monitoring reports them for redis_instance metrics."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from google.api_core import exceptions
from google.cloud import monitoring_v3, redis_v1

from tests.fixtures.emulator import EmulatorHandle, start_emulator, timestamp_seconds
from tests.fixtures.processes import wait_for

pytestmark = pytest.mark.slow

USAGE = "redis.googleapis.com/stats/memory/usage"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    handle = start_emulator(tmp_path_factory.mktemp("emulator-nodes"), sample_interval=0.1)
    client = handle.redis_client()
    instances = {
        "basic": redis_v1.Instance(tier="BASIC", memory_size_gb=1),
        "ha": redis_v1.Instance(tier="STANDARD_HA", memory_size_gb=1),
        "readers": redis_v1.Instance(
            tier="STANDARD_HA", memory_size_gb=5, read_replicas_mode="READ_REPLICAS_ENABLED", replica_count=2
        ),
    }
    for instance_id, instance in instances.items():
        client.create_instance(parent=handle.parent(), instance_id=instance_id, instance=instance).result(timeout=30)
    yield handle
    handle.stop()


def _series(emulator: EmulatorHandle, instance_id: str, seconds_back: float = 30) -> list[monitoring_v3.TimeSeries]:
    now = time.time()
    return list(
        emulator.monitoring_client().list_time_series(
            request={
                "name": f"projects/{emulator.project}",
                "filter": f'metric.type = "{USAGE}" AND resource.labels.instance_id = "{emulator.instance_name(instance_id)}"',
                "interval": {"end_time": {"seconds": int(now) + 1}, "start_time": {"seconds": int(now - seconds_back)}},
            }
        )
    )


def _nodes_by_role(series: list[monitoring_v3.TimeSeries]) -> set[tuple[str, str]]:
    return {(s.resource.labels["node_id"], s.metric.labels["role"]) for s in series}


def _newest_primary(series: list[monitoring_v3.TimeSeries]) -> str:
    """The node of the newest role=primary point."""
    primaries = [s for s in series if s.metric.labels["role"] == "primary"]
    newest = max(primaries, key=lambda s: timestamp_seconds(s.points[0].interval.end_time))
    return newest.resource.labels["node_id"]


def test_nodes_per_tier(emulator: EmulatorHandle) -> None:
    client = emulator.redis_client()
    wait_for(lambda: _series(emulator, "readers"), what="first samples")
    assert _nodes_by_role(_series(emulator, "basic")) == {("node-0", "primary")}
    assert _nodes_by_role(_series(emulator, "ha")) == {("node-0", "primary"), ("node-1", "replica")}
    assert _nodes_by_role(_series(emulator, "readers")) == {
        ("node-0", "primary"),
        ("node-1", "replica"),
        ("node-2", "replica"),
    }
    ha = client.get_instance(name=emulator.instance_name("ha"))
    assert [n.id for n in ha.nodes] == ["node-0", "node-1"]
    assert ha.current_location_id == ha.nodes[0].zone == ha.location_id
    assert ha.nodes[1].zone == ha.alternative_location_id
    readers = client.get_instance(name=emulator.instance_name("readers"))
    assert [n.id for n in readers.nodes] == ["node-0", "node-1", "node-2"]


def test_replica_trails_the_primary(emulator: EmulatorHandle) -> None:
    """A replica reports the primary's previous reading: the same data, one sample behind."""
    series = wait_for(lambda: [s for s in _series(emulator, "ha", 5) if len(s.points) > 3], what="a few samples")
    primary = next(s for s in series if s.metric.labels["role"] == "primary")
    replica = next(s for s in series if s.metric.labels["role"] == "replica")
    primary_points = {timestamp_seconds(p.interval.end_time): p.value.int64_value for p in primary.points}
    replica_points = {timestamp_seconds(p.interval.end_time): p.value.int64_value for p in replica.points}
    assert set(primary_points) == set(replica_points)
    times = sorted(primary_points)
    assert [replica_points[t] for t in times[1:]] == [primary_points[t] for t in times[:-1]]


def test_failover_moves_the_primary(emulator: EmulatorHandle) -> None:
    client = emulator.redis_client()
    name = emulator.instance_name("ha")
    # Through the API's own route, as `gcloud redis instances failover` calls it.
    client.failover_instance(name=name).result(timeout=30)
    after = client.get_instance(name=name)
    assert after.current_location_id == after.nodes[1].zone
    wait_for(lambda: _newest_primary(_series(emulator, "ha", 5)) == "node-1", what="node-1 to report as primary")
    # node-0 carries on as a replica: one node, two series over the failover.
    assert {("node-0", "replica"), ("node-1", "primary")} <= _nodes_by_role(_series(emulator, "ha", 5))
    # And back: with two nodes the next one is node-0 again.
    assert emulator.failover(emulator.region, "ha").current_location_id == after.location_id
    assert client.get_instance(name=name).current_location_id == after.location_id
    wait_for(lambda: _newest_primary(_series(emulator, "ha", 5)) == "node-0", what="node-0 to be primary again")
    # Read replicas: the primary moves to the next node.
    readers = emulator.failover(emulator.region, "readers")
    assert readers.current_location_id == readers.nodes[1].zone != readers.nodes[0].zone
    wait_for(lambda: _newest_primary(_series(emulator, "readers", 5)) == "node-1", what="node-1 of readers to be primary")


def test_failover_of_basic_is_refused(emulator: EmulatorHandle) -> None:
    with pytest.raises(exceptions.BadRequest, match="STANDARD_HA"):
        emulator.redis_client().failover_instance(name=emulator.instance_name("basic")).result(timeout=30)


def test_partial_listings(emulator: EmulatorHandle) -> None:
    client = emulator.redis_client()
    emulator.inject_fault("redis", "partial")
    # A get is not a listing: it answers whole, and the fault waits for the next listing.
    assert client.get_instance(name=emulator.instance_name("basic")).name
    pager = client.list_instances(parent=f"projects/{emulator.project}/locations/-")
    page = next(iter(pager.pages))
    assert list(page.unreachable) == [emulator.parent()]
    assert list(page.instances) == []
    assert len(list(client.list_instances(parent=f"projects/{emulator.project}/locations/-"))) == 3

    emulator.inject_fault("monitoring", "partial")
    now = time.time()
    response = emulator.monitoring_client().list_time_series(
        request={
            "name": f"projects/{emulator.project}",
            "filter": f'metric.type = "{USAGE}"',
            "interval": {"end_time": {"seconds": int(now) + 1}, "start_time": {"seconds": int(now - 5)}},
        }
    )
    first = next(iter(response.pages))
    assert first.execution_errors and first.execution_errors[0].code == 14
    assert 0 < len(first.time_series) < 6
