"""Fault injection: injected 503/429/hangs surface as the official clients' own exceptions."""

from __future__ import annotations

import time
import urllib.error
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from google.api_core import exceptions
from google.cloud import monitoring_v3, redis_v1

from tests.fixtures.emulator import EmulatorHandle, start_emulator

pytestmark = pytest.mark.slow

# Longer than any client timeout below: a call that returns earlier was given up by the client.
HANG_SECONDS = 30.0
USAGE_FILTER = (
    'metric.type = "redis.googleapis.com/stats/memory/usage" AND resource.labels.instance_id = ends_with("/faulty")'
)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    handle = start_emulator(tmp_path_factory.mktemp("emulator-faults"), processes=False)
    handle.redis_client().create_instance(
        parent=handle.parent(), instance_id="faulty", instance=redis_v1.Instance(tier="BASIC", memory_size_gb=1)
    ).result(timeout=30)
    yield handle
    handle.stop()


@pytest.fixture(autouse=True)
def fresh_counts(emulator: EmulatorHandle) -> None:
    emulator.reset_counts()


def _list(
    monitoring: monitoring_v3.MetricServiceClient, emulator: EmulatorHandle, **kwargs: Any
) -> list[monitoring_v3.TimeSeries]:
    now = int(time.time()) + 1
    request = {
        "name": f"projects/{emulator.project}",
        "filter": USAGE_FILTER,
        "interval": {"start_time": {"seconds": now - 60}, "end_time": {"seconds": now}},
    }
    return list(monitoring.list_time_series(request=request, **kwargs))


def test_redis_api_503_and_429(emulator: EmulatorHandle) -> None:
    client = emulator.redis_client()
    name = emulator.instance_name("faulty")
    emulator.inject_fault("redis", "503", count=2)
    for _ in range(2):
        with pytest.raises(exceptions.ServiceUnavailable):
            client.get_instance(name=name)
    assert client.get_instance(name=name).name == name
    emulator.inject_fault("redis", "429")
    with pytest.raises(exceptions.TooManyRequests):
        client.list_instances(parent=emulator.parent("-"))
    assert emulator.request_counts()["redis"] == {"GetInstance": 3, "ListInstances": 1}


def test_a_permission_denied_aimed_at_one_call_names_the_permission_and_spares_the_others(emulator: EmulatorHandle) -> None:
    client = emulator.redis_client()
    name = emulator.instance_name("faulty")
    emulator.inject_fault("redis", "403", method="GetInstanceAuthString")

    assert client.get_instance(name=name).name == name  # another call passes and leaves the fault queued
    with pytest.raises(exceptions.Forbidden) as denied:  # HTTP 403, PERMISSION_DENIED
        client.get_instance_auth_string(name=name)
    assert denied.value.message.endswith(  # after the URL the REST client puts first
        f": Permission 'redis.instances.getAuthString' denied on resource '//redis.googleapis.com/{name}' (or it may not exist)."
    )
    client.get_instance_auth_string(name=name)  # consumed: the next one passes
    assert emulator.request_counts()["redis"] == {"GetInstance": 1, "GetInstanceAuthString": 2}


def test_redis_api_fault_during_operation_polling_is_retried(emulator: EmulatorHandle) -> None:
    client = emulator.redis_client()
    op = client.create_instance(
        parent=emulator.parent(), instance_id="poll-fault", instance=redis_v1.Instance(tier="BASIC", memory_size_gb=1)
    )
    # Operation polling retries transient errors by itself (api_core's polling predicate).
    emulator.inject_fault("redis", "503")
    assert op.result(timeout=30).name == emulator.instance_name("poll-fault")
    assert emulator.request_counts()["redis"] == {"CreateInstance": 1, "GetOperation": 2}


def test_redis_api_hang(emulator: EmulatorHandle) -> None:
    client = emulator.redis_client()
    name = emulator.instance_name("faulty")
    # The client's own timeout fires: a hang that ended would be a 504 (GatewayTimeout) instead.
    emulator.inject_fault("redis", "hang", seconds=HANG_SECONDS)
    with pytest.raises(requests.exceptions.Timeout):
        client.get_instance(name=name, timeout=0.5)
    # A short hang the client outwaits ends in the front end's 504.
    emulator.inject_fault("redis", "hang", seconds=0.3)
    started = time.monotonic()
    with pytest.raises(exceptions.GatewayTimeout):
        client.get_instance(name=name, timeout=10)
    assert time.monotonic() - started >= 0.3
    assert client.get_instance(name=name).name == name


def test_monitoring_faults(emulator: EmulatorHandle) -> None:
    monitoring = emulator.monitoring_client()
    # The client retries UNAVAILABLE on its own (its default retry policy) ...
    emulator.inject_fault("monitoring", "503", count=2)
    assert len(_list(monitoring, emulator)) == 1
    assert emulator.request_counts()["monitoring"] == {"ListTimeSeries": 3}
    # ... and surfaces it when told not to retry.
    emulator.inject_fault("monitoring", "503")
    with pytest.raises(exceptions.ServiceUnavailable):
        _list(monitoring, emulator, retry=None)
    emulator.inject_fault("monitoring", "429")
    with pytest.raises(exceptions.ResourceExhausted):
        _list(monitoring, emulator)
    emulator.inject_fault("monitoring", "hang", seconds=HANG_SECONDS)
    started = time.monotonic()
    with pytest.raises(exceptions.DeadlineExceeded):
        _list(monitoring, emulator, timeout=0.5, retry=None)
    # The hang ends in DEADLINE_EXCEEDED too: only the time tells that the client gave up first.
    assert time.monotonic() - started < HANG_SECONDS
    assert len(_list(monitoring, emulator)) == 1


def test_bad_fault_request_is_rejected(emulator: EmulatorHandle) -> None:
    for api, mode, count, method in (
        ("billing", "503", 1, None), ("redis", "500", 1, None), ("redis", "503", 0, None), ("redis", "403", 1, "GetAuth"),
    ):  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as err:
            emulator.inject_fault(api, mode, count, method=method)
        assert err.value.code == 400
        err.value.close()
    assert emulator.redis_client().get_instance(name=emulator.instance_name("faulty"))
