"""The emulator as a process: --fleet, restart with state and data, clean stop, no orphans, CLI errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from google.api_core import exceptions
from google.cloud import monitoring_v3, redis_v1
from google.protobuf import field_mask_pb2
from google.type import dayofweek_pb2

from tests.fixtures.emulator import EmulatorHandle, connect_redis
from tests.fixtures.processes import alive, wait_for
from tests.fixtures.repo import PRODUCTION, REPO, STAGING

pytestmark = pytest.mark.slow


def _children(pid: int) -> set[int]:
    """PIDs whose parent is `pid` (from /proc)."""
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces; ppid follows the state.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(entry))
    return out


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _instances(emulator: EmulatorHandle) -> dict[str, redis_v1.Instance]:
    client = emulator.redis_client()
    return {i.name.rsplit("/", 1)[1]: i for i in client.list_instances(parent=emulator.parent("-"))}


def test_fleet_creates_the_stack_as_deployed(emulator_factory: Callable[..., EmulatorHandle]) -> None:
    emulator = emulator_factory(fleet=[STAGING, PRODUCTION])
    assert (emulator.project, emulator.region, emulator.instances) == ("redisguard-staging", "europe-west1", 7)
    staging = _instances(emulator)
    assert set(staging) == {"redis-sidekiq", "redis-cache", "redis-sessions"}
    sidekiq = staging["redis-sidekiq"]
    assert sidekiq.tier == redis_v1.Instance.Tier.BASIC and sidekiq.memory_size_gb == 2
    assert sidekiq.redis_version == "REDIS_6_X"
    assert sidekiq.redis_configs == {"maxmemory-policy": "noeviction", "activedefrag": "yes"}
    assert sidekiq.auth_enabled
    window = sidekiq.maintenance_policy.weekly_maintenance_window[0]
    assert (window.day, window.start_time.hours) == (dayofweek_pb2.SUNDAY, 8)
    sessions = staging["redis-sessions"]
    assert sessions.persistence_config.rdb_snapshot_period == redis_v1.PersistenceConfig.SnapshotPeriod.SIX_HOURS
    assert sessions.labels == {"env": "staging", "team": "identity"}

    client = emulator.redis_client()
    production = {
        i.name.rsplit("/", 1)[1]: i for i in client.list_instances(parent="projects/redisguard-production/locations/-")
    }
    assert len(production) == 4
    cache = production["redis-cache"]
    assert cache.read_replicas_mode == redis_v1.Instance.ReadReplicasMode.READ_REPLICAS_ENABLED
    assert (cache.replica_count, cache.read_endpoint_port) == (2, cache.port)
    assert cache.customer_managed_key.endswith("/cryptoKeys/memorystore")

    # Each instance is a live redis-server with AUTH and the configured eviction policy.
    auth = client.get_instance_auth_string(name=sidekiq.name).auth_string
    data = connect_redis(sidekiq.host, sidekiq.port, auth)
    assert data.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert data.config_get("maxmemory") == {"maxmemory": str(2 * 16 * 1024 * 1024)}
    data.close()


def test_the_staging_fleet_starts_without_a_warning(emulator_factory: Callable[..., EmulatorHandle]) -> None:
    """The original team's `active_defrag: true` asks for what Debian's redis-server cannot do (it
    needs the jemalloc Redis bundles): a documented limit of the emulator, said once, not a warning."""
    emulator = emulator_factory(fleet=STAGING)
    sidekiq = _instances(emulator)["redis-sidekiq"]
    assert sidekiq.redis_configs["activedefrag"] == "yes"  # the API keeps what the fleet declares
    data = connect_redis(sidekiq.host, sidekiq.port, emulator.redis_client().get_instance_auth_string(name=sidekiq.name).auth_string)
    applied = data.config_get("activedefrag") == {"activedefrag": "yes"}
    data.close()

    emulator.stop()
    lines = emulator.log().splitlines()
    assert [line for line in lines if " WARNING " in line or " ERROR " in line] == []
    # Applied where the build can; else one INFO line says the process runs without it.
    notices = [line for line in lines if "setting=activedefrag" in line]
    assert applied or (len(notices) == 1 and " INFO " in notices[0] and "jemalloc" in notices[0].lower()), notices


def test_restart_keeps_instances_data_and_changes(
    emulator_factory: Callable[..., EmulatorHandle], tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    first = emulator_factory(fleet=STAGING, state_dir=state_dir)
    client = first.redis_client()
    before = _instances(first)
    for instance_id in ("redis-cache", "redis-sessions"):
        inst = before[instance_id]
        data = connect_redis(inst.host, inst.port, client.get_instance_auth_string(name=inst.name).auth_string)
        data.set("survives", instance_id)
        data.close()
    # A change made through the API (drift from the stack file) must survive as well.
    client.update_instance(
        update_mask=field_mask_pb2.FieldMask(paths=["memory_size_gb"]),
        instance=redis_v1.Instance(name=before["redis-cache"].name, memory_size_gb=3),
    ).result(timeout=30)
    children = _children(first.pid)
    assert len(children) == 3
    assert first.stop() == 0
    assert not any(alive(pid) for pid in children)
    assert not any(_listening(i.port) for i in before.values())

    second = emulator_factory(fleet=STAGING, state_dir=state_dir, log_name="emulator-2.log")
    assert second.instances == 3
    after = _instances(second)
    assert after["redis-cache"].memory_size_gb == 3
    client = second.redis_client()
    for instance_id in ("redis-cache", "redis-sessions"):
        inst = after[instance_id]
        assert inst.port == before[instance_id].port, "an instance keeps its endpoint across restarts"
        data = connect_redis(inst.host, inst.port, client.get_instance_auth_string(name=inst.name).auth_string)
        assert data.get("survives") == instance_id.encode()
        data.close()

    # A crash is a node failure for every instance: redis-sessions (RDB) comes back from its
    # last snapshot, redis-cache (persistence DISABLED) comes back empty.
    second.close_clients()
    second.process.kill()
    second.process.wait()
    third = emulator_factory(fleet=STAGING, state_dir=state_dir, log_name="emulator-3.log")
    client = third.redis_client()
    after_crash = _instances(third)
    for instance_id, expected in (("redis-sessions", b"redis-sessions"), ("redis-cache", None)):
        inst = after_crash[instance_id]
        data = connect_redis(inst.host, inst.port, client.get_instance_auth_string(name=inst.name).auth_string)
        assert data.get("survives") == expected, instance_id
        data.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP], ids=["SIGINT", "SIGHUP"])
def test_interrupt_or_hangup_stops_cleanly(emulator_factory: Callable[..., EmulatorHandle], sig: int) -> None:
    emulator = emulator_factory(fleet=STAGING)
    children = _children(emulator.pid)
    assert len(children) == 3
    assert emulator.stop(sig) == 0
    assert not any(alive(pid) for pid in children)
    log = emulator.log()
    assert log.count("saved=True") == 3, "every instance saved its data before it stopped"
    assert "emulator stopped" in log


def test_crash_leaves_no_orphan_redis_server(emulator_factory: Callable[..., EmulatorHandle]) -> None:
    emulator = emulator_factory(fleet=STAGING)
    children = _children(emulator.pid)
    ports = [i.port for i in _instances(emulator).values()]
    assert len(children) == 3
    emulator.close_clients()
    emulator.process.kill()
    emulator.process.wait()
    wait_for(
        lambda: not any(alive(pid) for pid in children),
        timeout=10,
        what="redis-server children to die with the emulator",
    )
    assert not any(_listening(port) for port in ports)


def test_no_processes_mode_serves_many_instances(emulator_factory: Callable[..., EmulatorHandle]) -> None:
    emulator = emulator_factory(processes=False)
    client = emulator.redis_client()
    for n in range(120):
        client.create_instance(
            parent=emulator.parent("us-central1" if n % 2 else "europe-west1"),
            instance_id=f"load-{n:04d}",
            instance=redis_v1.Instance(tier="BASIC", memory_size_gb=1 + n % 10),
        ).result(timeout=30)
    assert _children(emulator.pid) == set(), "no redis-server in --no-processes mode"
    pages = list(client.list_instances(request={"parent": emulator.parent("-"), "page_size": 50}).pages)
    assert [len(p.instances) for p in pages] == [50, 50, 20]
    monitoring = emulator.monitoring_client()
    now = int(time.time()) + 1
    series = list(
        monitoring.list_time_series(
            request={
                "name": f"projects/{emulator.project}",
                "filter": 'metric.type = "redis.googleapis.com/stats/memory/usage_ratio"',
                "interval": {"start_time": {"seconds": now - 60}, "end_time": {"seconds": now}},
                "view": monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL,
            }
        )
    )
    assert len(series) == 120
    assert all(0.1 < s.points[0].value.double_value < 0.8 for s in series)


def _cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "redisguard.daemon.cli", "emulator", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", "0.0.0.0"], "--host 0.0.0.0: the emulator listens on IPv4 loopback only"),
        (["--host", "::1"], "--host ::1: the emulator listens on IPv4 loopback only"),
        (["--memory-scale", "10"], "--memory-scale 10: expected at least"),
        (["--redis-server", "/nonexistent/redis-server"], "not found; install redis-server or pass --no-processes"),
        (["--redis-api-port", "70000"], "--redis-api-port 70000: expected 0-65535"),
        (["--redis-api-port", "8999", "--monitoring-port", "8999"], "are both 8999: the two APIs need two ports"),
        (["--project", "Bad_Project"], "--project Bad_Project: expected a project id"),
        (["--region", "nowhere"], "--region nowhere: expected a region name such as europe-west1"),
        (["--sample-interval", "nan"], "--sample-interval nan: expected a positive number of seconds"),
    ],
)
def test_cli_rejects_bad_arguments_in_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    result = _cli("--state-dir", str(tmp_path), "--redis-api-port", "0", "--monitoring-port", "0", *args)
    _assert_one_error_line(result, message)


def _assert_one_error_line(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines()[-1].startswith("redisguard emulator: error: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_reports_a_port_in_use_and_a_bad_fleet(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _cli("--state-dir", str(tmp_path), "--redis-api-port", str(port), "--monitoring-port", "0")
    _assert_one_error_line(result, f"--redis-api-port {port}: cannot listen on 127.0.0.1:{port}: already in use")
    # A gRPC server binds with SO_REUSEPORT: a second one on its port must still be refused,
    # or the kernel would spread a client's calls over two emulators.
    other = grpc.server(ThreadPoolExecutor(max_workers=1))
    port = other.add_insecure_port("127.0.0.1:0")
    other.start()
    try:
        result = _cli("--state-dir", str(tmp_path), "--redis-api-port", "0", "--monitoring-port", str(port))
    finally:
        other.stop(grace=None)
    _assert_one_error_line(result, f"--monitoring-port {port}: cannot listen on 127.0.0.1:{port}: already in use")
    assert "Failed to add port" not in result.stderr, "no gRPC core log line around the error"
    bad = tmp_path / "Pulumi.bad.yaml"
    bad.write_text("config:\n  redis-fleet:redis:\n    - name: Bad_Name\n      memory_gb: 0\n")
    result = _cli("--state-dir", str(tmp_path), "--redis-api-port", "0", "--monitoring-port", "0", "--fleet", str(bad))
    assert result.returncode == 1
    assert "Pulumi.bad.yaml" in result.stderr and "memory_gb" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("instances/*"))


def test_cli_refuses_a_state_dir_another_emulator_uses(
    emulator_factory: Callable[..., EmulatorHandle], tmp_path: Path
) -> None:
    running = emulator_factory(processes=False)
    result = _cli("--state-dir", str(running.state_dir), "--redis-api-port", "0", "--monitoring-port", "0")
    _assert_one_error_line(result, f"--state-dir {running.state_dir}: another emulator is using it")
    assert running.process.poll() is None
    assert running.redis_client().list_instances(parent=running.parent("-")) is not None


def test_cli_reports_an_unusable_state_dir(tmp_path: Path) -> None:
    a_file = tmp_path / "state-file"
    a_file.write_text("")
    result = _cli("--state-dir", str(a_file), "--redis-api-port", "0", "--monitoring-port", "0")
    _assert_one_error_line(result, f"--state-dir {a_file}: exists and is not a directory")
    below_a_file = a_file / "state"
    result = _cli("--state-dir", str(below_a_file), "--redis-api-port", "0", "--monitoring-port", "0")
    _assert_one_error_line(result, f"--state-dir {below_a_file}: cannot use it as the emulator's state directory")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "state.json").write_text("{not json")
    result = _cli("--state-dir", str(corrupt), "--redis-api-port", "0", "--monitoring-port", "0")
    _assert_one_error_line(result, "state.json: unreadable emulator state")
    assert (corrupt / "state.json").read_text() == "{not json", "a state file that failed to load is left alone"


def test_help_lists_the_contract_options() -> None:
    result = _cli("--help")
    assert result.returncode == 0
    for option in (
        "--redis-api-port",
        "--monitoring-port",
        "--fleet",
        "--memory-scale",
        "--no-processes",
        "8470",
        "8471",
    ):
        assert option in result.stdout


def test_unknown_api_path_is_not_found(emulator_factory: Callable[..., EmulatorHandle]) -> None:
    emulator = emulator_factory(processes=False)
    client = emulator.redis_client()
    with pytest.raises(exceptions.NotFound):
        client.get_instance(name=emulator.instance_name("missing"))
