"""The real `redisguard daemon` process against the emulator: metrics, drift, faults and recovery, signals, --once, TLS."""

from __future__ import annotations

import json
import re
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml
from google.cloud import redis_v1
from google.protobuf import field_mask_pb2

from tests.fixtures.daemon import DaemonHandle, daemon_config, launch_daemon
from tests.fixtures.emulator import EmulatorHandle, connect_redis, start_emulator
from tests.fixtures.processes import alive, children_of, free_port, wait_for
from tests.fixtures.pulumi_cli import install_fake_pulumi
from tests.fixtures.repo import STAGING, STAGING_INSTANCES
from tests.fixtures.tls import make_certificates

pytestmark = pytest.mark.slow

PROJECT = "redisguard-staging"
REGION = "europe-west1"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    """The staging fleet, API only: the drift checks need no redis-server behind the instances."""
    handle = start_emulator(tmp_path_factory.mktemp("emulator"), STAGING, processes=False)
    yield handle
    handle.stop()


@pytest.fixture
def fake_pulumi_cli(tmp_path: Path) -> Callable[[dict[str, Any]], dict[str, str]]:
    """A stand-in `pulumi` on PATH for the daemon's environment; returns the env to start it with."""
    fake = install_fake_pulumi(tmp_path)
    (fake.work_dir / "Pulumi.staging.yaml").write_text(STAGING.read_text())

    def scenario(stacks: dict[str, Any]) -> dict[str, str]:
        fake(stacks)
        return {**fake.env, "PULUMI_WORK_DIR": str(fake.work_dir)}

    return scenario


def instance_name(instance_id: str) -> str:
    return f"projects/{PROJECT}/locations/{REGION}/instances/{instance_id}"


def test_metrics_for_the_fleet_then_drift_unmanaged_and_deletion_as_they_happen(
    emulator: EmulatorHandle, daemon_factory: Callable[..., DaemonHandle]
) -> None:
    daemon = daemon_factory(lambda port: daemon_config(emulator, port))
    daemon.wait_value("redisguard_check_up", 1, check="drift_live", target="staging")
    assert daemon.value("redisguard_drift_status", stack="staging", engine="live") == 0
    assert daemon.value("redisguard_unmanaged_instances", project_id=PROJECT) == 0
    assert daemon.value("redisguard_build_info", version=_version()) == 1
    wait_for(lambda: daemon.healthz()[0] == 200, timeout=30, what="/healthz 200")

    client = emulator.redis_client()
    # Out of band, through the official client, as someone in the console would.
    before = client.get_instance(name=instance_name("redis-sidekiq"))
    client.update_instance(
        update_mask=field_mask_pb2.FieldMask(paths=["memory_size_gb"]),
        instance=redis_v1.Instance(name=before.name, memory_size_gb=before.memory_size_gb + 1),
    ).result(timeout=60)
    daemon.wait_value("redisguard_drift_status", 1, stack="staging", engine="live")
    drifted = daemon.series("redisguard_drifted_resource")
    assert {"stack": "staging", "engine": "live", "resource": "redis-sidekiq", "type": "gcp:redis/instance:Instance", "kind": "changed"} in drifted

    client.create_instance(
        parent=f"projects/{PROJECT}/locations/{REGION}",
        instance_id="redis-stray",
        instance=redis_v1.Instance(tier=redis_v1.Instance.Tier.BASIC, memory_size_gb=1),
    ).result(timeout=60)
    daemon.wait_value("redisguard_unmanaged_instances", 1, project_id=PROJECT)
    unmanaged = {"stack": "staging", "engine": "live", "resource": instance_name("redis-stray"),
                 "type": "gcp:redis/instance:Instance", "kind": "unmanaged"}  # fmt: skip
    assert unmanaged in daemon.series("redisguard_drifted_resource")

    client.delete_instance(name=instance_name("redis-stray")).result(timeout=60)
    daemon.wait_value("redisguard_unmanaged_instances", 0, project_id=PROJECT)
    assert unmanaged not in daemon.series("redisguard_drifted_resource")
    assert not [s for s in daemon.series("redisguard_drifted_resource") if "redis-stray" in s["resource"]]

    # Put the fleet back for the other tests of this module.
    client.update_instance(
        update_mask=field_mask_pb2.FieldMask(paths=["memory_size_gb"]),
        instance=redis_v1.Instance(name=before.name, memory_size_gb=before.memory_size_gb),
    ).result(timeout=60)
    daemon.wait_value("redisguard_drift_status", 0, stack="staging", engine="live")
    emulator.close_clients()


@pytest.mark.parametrize("mode", ["503", "429", "hang"])
def test_an_api_fault_fails_that_check_only_and_it_recovers_without_a_restart(
    emulator: EmulatorHandle,
    daemon_factory: Callable[..., DaemonHandle],
    fake_pulumi_cli: Callable[[dict[str, Any]], dict[str, str]],
    mode: str,
) -> None:
    env = fake_pulumi_cli({"staging": {"events": []}})
    daemon = daemon_factory(
        lambda port: daemon_config(
            emulator, port, schedules={"drift_pulumi": "1s"}, pulumi={"work_dir": env["PULUMI_WORK_DIR"]}
        ),
        env=env,
    )
    daemon.wait_value("redisguard_check_up", 1, check="drift_live", target="staging")
    daemon.wait_value("redisguard_check_up", 1, check="drift_pulumi", target="staging")
    wait_for(lambda: daemon.healthz()[0] == 200, timeout=30, what="/healthz 200")

    # Longer than the client's retries within gcp.request_timeout_seconds (2 s): the check fails.
    emulator.inject_fault("redis", mode, count=100_000, seconds=5 if mode == "hang" else None)
    try:
        daemon.wait_value("redisguard_check_up", 0, check="drift_live", target="staging")
        status, health = daemon.healthz()
        assert status == 503
        failing = [p for p in health["problems"] if p["status"] == "failed"]
        assert [(p["check"], p["target"]) for p in failing] == [("drift_live", "staging")]
        assert failing[0]["reason"]
        # The failing check's findings are unknown, not stale; the other check keeps its values.
        assert daemon.value("redisguard_drift_status", stack="staging", engine="live") is None
        assert daemon.value("redisguard_drift_status", stack="staging", engine="pulumi") == 0
        assert daemon.value("redisguard_check_up", check="drift_pulumi", target="staging") == 1
        assert (daemon.value("redisguard_check_failures_total", check="drift_live", target="staging") or 0) >= 1
        assert "check=drift_live target=staging status=error" in daemon.log()
    finally:
        emulator.clear_faults()
    daemon.wait_value("redisguard_check_up", 1, check="drift_live", target="staging")
    assert daemon.value("redisguard_drift_status", stack="staging", engine="live") == 0
    wait_for(lambda: daemon.healthz()[0] == 200, timeout=30, what="/healthz 200 again")


def test_sigterm_while_a_refresh_runs_exits_0_within_10s_leaving_no_child(
    tmp_path: Path, daemon_factory: Callable[..., DaemonHandle], fake_pulumi_cli: Callable[[dict[str, Any]], dict[str, str]]
) -> None:
    pid_file = tmp_path / "pids"
    env = fake_pulumi_cli({"staging": {"mode": "hang", "pid_file": str(pid_file)}})
    daemon = daemon_factory(
        lambda port: {
            "pulumi": {"work_dir": env["PULUMI_WORK_DIR"], "stacks": ["staging"]},
            "server": {"listen": f"127.0.0.1:{port}"},
            "schedules": {"drift_pulumi": "1h", "drift_live": "off", "memory": "off", "compliance": "off"},
        },
        env=env,
    )
    wait_for(lambda: pid_file.exists() and len(pid_file.read_text().split()) == 2, timeout=30, what="the refresh to run")
    cli_pid, grandchild = (int(p) for p in pid_file.read_text().split())
    descendants = children_of(daemon.process.pid)
    assert cli_pid in descendants and grandchild in descendants
    started = time.monotonic()
    code = daemon.stop(signal.SIGTERM, timeout=12)
    elapsed = time.monotonic() - started
    assert code == 0, daemon.log()[-2000:]
    assert elapsed < 10, elapsed
    wait_for(lambda: not any(alive(pid) for pid in descendants), timeout=5, what="every child of the daemon to be gone")
    assert "stopping signal=SIGTERM" in daemon.log()


def test_sighup_applies_a_good_config_and_refuses_a_broken_one(
    emulator: EmulatorHandle, daemon_factory: Callable[..., DaemonHandle]
) -> None:
    daemon = daemon_factory(lambda port: daemon_config(emulator, port))
    daemon.wait_value("redisguard_check_up", 1, check="drift_live", target="staging")
    # The schedules in use, which RedisguardChecksStale counts in: drift_live every 1s, memory off.
    assert daemon.value("redisguard_check_interval_seconds", check="drift_live") == 1
    assert daemon.value("redisguard_check_interval_seconds", check="memory") is None
    config = yaml.safe_load(daemon.config_path.read_text())

    # Good: drift_live off -> its series go; the other settings apply.
    config["schedules"]["drift_live"] = "off"
    daemon.write_config(config)
    daemon.send(signal.SIGHUP)
    daemon.wait_value("redisguard_check_up", None, check="drift_live", target="staging")
    wait_for(lambda: "config reloaded" in daemon.log(), timeout=10, what="the reload line")
    assert daemon.value("redisguard_check_interval_seconds", check="drift_live") is None

    # Broken: refused in one line naming every problem; the old config keeps running.
    config["schedules"]["drift_live"] = "1s"
    broken = {**config, "parallelism": 0, "schedules": {**config["schedules"], "memory": "often"}}
    daemon.write_config(broken)
    daemon.send(signal.SIGHUP)
    wait_for(lambda: "config reload refused" in daemon.log(), timeout=10, what="the refusal")
    refusal = [line for line in daemon.log().splitlines() if "config reload refused" in line]
    assert len(refusal) == 1
    assert "2 problems in config; parallelism: 0 is out of range; allowed: 1 to 64; schedules.memory: not a duration" in refusal[0]
    assert daemon.process.poll() is None
    assert daemon.get("/metrics")[0] == 200
    assert daemon.value("redisguard_check_up", check="drift_live", target="staging") is None  # still the old (off)

    # Fixed again: drift_live comes back.
    daemon.write_config(config)
    daemon.send(signal.SIGHUP)
    daemon.wait_value("redisguard_check_up", 1, check="drift_live", target="staging")


def _pids(argv: list[str]) -> list[int]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    return [int(pid) for pid in result.stdout.split()]


def test_the_daemon_is_named_redisguard_and_reloads_when_found_by_name(
    emulator: EmulatorHandle, daemon_factory: Callable[..., DaemonHandle]
) -> None:
    """docs/daemon.md's `kill -HUP $(pidof redisguard)`: the lookups find this daemon (among any
    other daemon the machine runs; only ours is signalled) and the HUP reloads it."""
    daemon = daemon_factory(lambda port: daemon_config(emulator, port))
    pid = daemon.process.pid
    assert pid in _pids(["pidof", "redisguard"])
    assert pid in _pids(["pgrep", "-x", "redisguard"])
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode()
    assert cmdline == f"redisguard daemon --config {daemon.config_path}"
    subprocess.run(["kill", "-HUP", str(pid)], check=True, timeout=10)
    wait_for(lambda: "config reloaded" in daemon.log(), timeout=10, what="the reload line")
    assert daemon.process.poll() is None


def test_once_exits_0_in_sync_2_on_drift_1_on_a_failure(tmp_path: Path, emulator_factory: Callable[..., EmulatorHandle]) -> None:
    fresh = emulator_factory(STAGING, processes=False)

    def once(config: dict[str, Any], name: str) -> subprocess.CompletedProcess[bytes]:
        process = launch_daemon(tmp_path, config, once=True, name=name)
        process.wait(timeout=120)
        return subprocess.CompletedProcess(process.args, process.returncode)

    port = free_port()  # never listened on: --once starts no server
    assert once(daemon_config(fresh, port), "in-sync").returncode == 0
    log = (tmp_path / "in-sync.log").read_text()
    assert "check finished check=drift_live target=staging status=in_sync" in log
    assert "listening" not in log

    client = fresh.redis_client()
    before = client.get_instance(name=instance_name("redis-cache"))
    client.update_instance(
        update_mask=field_mask_pb2.FieldMask(paths=["memory_size_gb"]),
        instance=redis_v1.Instance(name=before.name, memory_size_gb=before.memory_size_gb + 1),
    ).result(timeout=60)
    assert once(daemon_config(fresh, port), "drift").returncode == 2
    drift_log = (tmp_path / "drift.log").read_text()
    assert "status=drift duration=" in drift_log and ' drifted=1 resources="redis-cache (changed)"' in drift_log, drift_log

    unreachable = daemon_config(fresh, port, gcp={"redis_endpoint": f"http://127.0.0.1:{free_port()}"})
    assert once(unreachable, "failing").returncode == 1
    assert "status=error" in (tmp_path / "failing.log").read_text()


def test_tls_and_basic_auth_on_the_real_daemon(
    tmp_path: Path, emulator: EmulatorHandle, daemon_factory: Callable[..., DaemonHandle]
) -> None:
    certs = make_certificates(tmp_path / "certs")
    web = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(b"s3cret-scrape", bcrypt.gensalt(rounds=4)).decode()
    web.write_text(yaml.safe_dump({
        "tls_server_config": {"cert_file": str(certs.server_cert), "key_file": str(certs.server_key)},
        "basic_auth_users": {"prometheus": hashed},
    }))  # fmt: skip
    context = ssl.create_default_context(cafile=str(certs.ca))
    daemon = daemon_factory(
        lambda port: daemon_config(emulator, port, server={"web_config_file": str(web)}),
        scheme="https",
        auth=("prometheus", "s3cret-scrape"),
        context=context,
    )
    daemon.wait_value("redisguard_check_up", 1, check="drift_live", target="staging")
    assert daemon.get("/metrics", auth=("prometheus", "wrong"))[0] == 401
    assert daemon.get("/healthz", auth=("nobody", "s3cret-scrape"))[0] == 401
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as plain:
        plain.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert plain.recv(100).startswith(b"HTTP/1.0 400")
    assert daemon.get("/metrics")[0] == 200
    assert hashed not in daemon.log() and "s3cret-scrape" not in daemon.log()


def test_start_errors_are_one_message_a_port_in_use_exits_1_a_bad_config_78(tmp_path: Path, emulator: EmulatorHandle) -> None:
    """78 (EX_CONFIG) is what the systemd unit does not restart (RestartPreventExitStatus); a port in use may free up."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = launch_daemon(tmp_path, daemon_config(emulator, port), name="port-in-use")
        assert process.wait(timeout=60) == 1
    log = (tmp_path / "port-in-use.log").read_text()
    assert f"server.listen 127.0.0.1:{port}: cannot listen: address already in use" in log
    assert "Traceback" not in log

    bad = daemon_config(emulator, free_port(), schedules={"memory": "5x"}, log_format="xml")
    process = launch_daemon(tmp_path, bad, name="bad-config")
    assert process.wait(timeout=60) == 78
    log = (tmp_path / "bad-config.log").read_text()
    assert "2 problems in config" in log
    assert "schedules.memory: not a duration" in log and "log_format: 'xml' is not allowed; allowed values: text, json" in log


def test_json_logs_carry_the_effective_config_once_with_secrets_redacted(
    emulator: EmulatorHandle, daemon_factory: Callable[..., DaemonHandle]
) -> None:
    daemon = daemon_factory(
        lambda port: daemon_config(emulator, port, log_format="json",
                                   pulumi={"backend_url": "https://user:hunter3pw@state.example.internal/p"}),  # fmt: skip
        env={"PULUMI_ACCESS_TOKEN": "pul-t0ken-value-1234"},
    )
    daemon.wait_value("redisguard_check_up", 1, check="drift_live", target="staging")
    lines = [json.loads(line) for line in daemon.log().splitlines() if line.startswith("{")]
    configs = [line for line in lines if line["message"] == "effective config"]
    assert len(configs) == 1
    assert configs[0]["config"]["pulumi"]["backend_url"] == "https://user:[redacted]@state.example.internal/p"
    assert configs[0]["config"]["pulumi"]["access_token"] == "[set]"
    results = [line for line in lines if line["message"] == "check finished"]
    assert {"check", "target", "status", "duration"} <= set(results[0])
    assert "hunter3pw" not in daemon.log() and "pul-t0ken-value-1234" not in daemon.log()


def _version() -> str:
    from importlib.metadata import version

    return version("redisguard")


# --- the memory check, on real redis-servers -------------------------------------------------------


@pytest.fixture(scope="module")
def redis_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    """The staging fleet with a real redis-server behind every instance, sampled often."""
    handle = start_emulator(tmp_path_factory.mktemp("redis-emulator"), STAGING, sample_interval=0.1)
    yield handle
    handle.stop()


def instance_labels(instance_id: str) -> dict[str, Any]:
    return {"project_id": PROJECT, "region": REGION, "instance_id": instance_id}


def has_ratio(daemon: DaemonHandle, instance_id: str) -> bool:
    return daemon.value("redisguard_memory_usage_ratio", **instance_labels(instance_id)) is not None


def test_memory_gauges_for_the_fleet_follow_real_writes_kills_and_faults(
    redis_emulator: EmulatorHandle, daemon_factory: Callable[..., DaemonHandle]
) -> None:
    emulator = redis_emulator
    daemon = daemon_factory(lambda port: daemon_config(emulator, port, schedules={"memory": "1s"}))
    for instance in STAGING_INSTANCES:
        labels = instance_labels(instance)
        daemon.wait_value("redisguard_instance_ready", 1, **labels)
        wait_for(partial(has_ratio, daemon, instance), timeout=30, what=f"{instance}'s usage ratio")
        assert (daemon.value("redisguard_memory_capacity_bytes", **labels) or 0) >= 2**30
        assert (daemon.value("redisguard_memory_max_bytes", **labels) or 0) > 0
    info = daemon.series("redisguard_instance_info")
    assert {i["instance_id"]: i["stack"] for i in info} == dict.fromkeys(STAGING_INSTANCES, "staging")
    wait_for(lambda: daemon.healthz()[0] == 200, timeout=30, what="/healthz 200")

    # Real writes to about 85 % of maxmemory.
    emulator.fill("redis-cache", 0.85)
    client = emulator.redis_client()
    cache = client.get_instance(name=instance_name("redis-cache"))
    auth = client.get_instance_auth_string(name=cache.name).auth_string
    cache_labels = instance_labels("redis-cache")
    wait_for(lambda: (daemon.value("redisguard_memory_usage_ratio", **cache_labels) or 0) >= 0.8,
             timeout=60, what="redis-cache's usage ratio >= 0.8")  # fmt: skip
    assert auth not in daemon.log() and auth not in daemon.get("/report")[1]
    status, report = daemon.get("/report")
    levels = {i["instance_id"]: i["level"] for p in json.loads(report)["memory"]["projects"] for i in p["instances"]}
    assert levels["redis-cache"] == "warning"
    data = connect_redis(cache.host, cache.port, auth)
    data.flushall()
    data.close()

    # A killed redis-server: the API says REPAIRING; that instance is not ready, the others keep their values.
    emulator.kill_instance(REGION, "redis-sessions")
    sessions = instance_labels("redis-sessions")
    daemon.wait_value("redisguard_instance_ready", 0, **sessions)
    sidekiq = instance_labels("redis-sidekiq")
    assert daemon.value("redisguard_instance_ready", **sidekiq) == 1
    assert daemon.value("redisguard_memory_usage_ratio", **sidekiq) is not None
    emulator.start_instance(REGION, "redis-sessions")
    daemon.wait_value("redisguard_instance_ready", 1, **sessions)

    # Monitoring faults: the memory check fails, the drift check keeps its values; both recover.
    daemon.wait_value("redisguard_check_up", 1, check="drift_live", target="staging")
    emulator.inject_fault("monitoring", "503", count=100_000)
    try:
        daemon.wait_value("redisguard_check_up", 0, check="memory", target=PROJECT)
        status, health = daemon.healthz()
        assert status == 503
        assert [(p["check"], p["target"]) for p in health["problems"] if p["status"] == "failed"] == [("memory", PROJECT)]
        assert daemon.value("redisguard_memory_usage_ratio", **sidekiq) is None  # unknown, not stale
        assert daemon.value("redisguard_check_up", check="drift_live", target="staging") == 1
        assert daemon.value("redisguard_drift_status", stack="staging", engine="live") is not None
    finally:
        emulator.clear_faults()
    daemon.wait_value("redisguard_check_up", 1, check="memory", target=PROJECT)
    assert daemon.value("redisguard_memory_usage_ratio", **sidekiq) is not None

    # An instance created out of band is unmanaged; deleted, it leaves no series.
    client.create_instance(
        parent=f"projects/{PROJECT}/locations/{REGION}",
        instance_id="redis-stray",
        instance=redis_v1.Instance(tier=redis_v1.Instance.Tier.BASIC, memory_size_gb=1),
    ).result(timeout=60)
    wait_for(lambda: {"instance_id": "redis-stray", "stack": ""}.items() <= next(
        (i for i in daemon.series("redisguard_instance_info") if i["instance_id"] == "redis-stray"), {}).items(),
        timeout=30, what="redis-stray as an unmanaged instance")  # fmt: skip
    client.delete_instance(name=instance_name("redis-stray")).result(timeout=60)
    wait_for(lambda: not [k for k in daemon.samples() if ("instance_id", "redis-stray") in k[1] or
                          any(v.endswith("/redis-stray") for _, v in k[1])],
             timeout=30, what="every redis-stray series to be gone")  # fmt: skip
    emulator.close_clients()


def test_once_exits_2_when_a_memory_threshold_is_crossed(tmp_path: Path, redis_emulator: EmulatorHandle) -> None:
    emulator = redis_emulator
    low = daemon_config(emulator, free_port(), schedules={"drift_live": "off", "memory": "1s"},
                        thresholds={"memory_warning_ratio": 0.000001, "memory_critical_ratio": 0.9})  # fmt: skip
    process = launch_daemon(tmp_path, low, once=True, name="threshold")
    assert process.wait(timeout=120) == 2, (tmp_path / "threshold.log").read_text()[-2000:]
    log = (tmp_path / "threshold.log").read_text()
    assert "check finished check=memory target=redisguard-staging status=threshold" in log
    # Which instances: every one is above a warning ratio this low, the first three named.
    assert re.search(r"status=threshold duration=\S+ crossed=3 instances=\"redis-\S+ \(warning\), redis-\S+ \(warning\), redis-\S+ \(warning\)\"", log), log[-2000:]



def test_a_broken_stack_file_does_not_stop_the_daemon_and_memory_keeps_every_series(
    tmp_path: Path, redis_emulator: EmulatorHandle, daemon_factory: Callable[..., DaemonHandle]
) -> None:
    """A typo in one stack file: the daemon starts, that stack's live check fails and says why, and
    every instance keeps its memory series (owner unknown, never "unmanaged"), so a filling instance still pages."""
    work = tmp_path / "program"
    work.mkdir()
    (work / "Pulumi.staging.yaml").write_text(STAGING.read_text().replace("memory_gb: 2\n", "memory_gb: two\n", 1))
    config = partial(daemon_config, redis_emulator, schedules={"memory": "1s"}, pulumi={"work_dir": str(work)})
    daemon = daemon_factory(config)

    for instance in STAGING_INSTANCES:
        wait_for(partial(has_ratio, daemon, instance), timeout=30, what=f"{instance}'s usage ratio")
    info = daemon.series("redisguard_instance_info")
    assert {i["instance_id"]: (i["stack"], i["ownership"]) for i in info} == dict.fromkeys(STAGING_INSTANCES, ("", "unknown"))
    daemon.wait_value("redisguard_check_up", 0, check="drift_live", target="staging")
    assert daemon.value("redisguard_unmanaged_instances", project_id=PROJECT) is None  # not decided, never a false 3
    status, health = daemon.healthz()
    assert status == 503
    assert "memory_gb" in json.dumps(health)
    report = json.loads(daemon.get("/report")[1])
    (project,) = report["memory"]["projects"]
    assert {i["ownership"] for i in project["instances"]} == {"unknown"}
    assert all(i["unreadable_stacks"] == ["staging"] for i in project["instances"])
