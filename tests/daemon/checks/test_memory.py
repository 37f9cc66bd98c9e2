"""The memory check through the official Monitoring and Memorystore clients against the real emulator."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.cloud import redis_v1

from redisguard.core.memorystore import GIB
from redisguard.daemon.checks import memory
from redisguard.daemon.checks.memory import MemoryCheck, run_memory_check, time_to_full
from redisguard.daemon.config import RedisguardConfig, config_from_mapping
from redisguard.daemon.reports.memory import MemoryReport
from tests.fixtures.emulator import EmulatorHandle, start_emulator
from tests.fixtures.processes import free_port, wait_for
from tests.fixtures.repo import STAGING, STAGING_INSTANCES

# The API calls of one project's memory check: one listing, four current metrics, one trend.
# The memory check reads no audit log: the Logging API is never called.
CALLS_PER_PROJECT = {"redis": {"ListInstances": 1}, "monitoring": {"ListTimeSeries": 5}, "logging": {}}


def _config(emulator: EmulatorHandle, **gcp: Any) -> RedisguardConfig:
    return config_from_mapping(
        {
            "pulumi": {"work_dir": str(STAGING.parent), "stacks": ["staging"]},
            "gcp": {
                "redis_endpoint": emulator.redis_endpoint,
                "monitoring_endpoint": emulator.monitoring_endpoint,
                **gcp,
            },
        }
    )


def _by_id(report: MemoryReport) -> dict[str, Any]:
    return {i.instance_id: i for p in report.projects for i in p.instances}


def _sampled(emulator: EmulatorHandle, config: RedisguardConfig) -> bool:
    return all(i.usage_ratio is not None for i in _by_id(run_memory_check(config)).values())


# --- the staging fleet on real redis-servers ---------------------------------------------------


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    handle = start_emulator(tmp_path_factory.mktemp("memory"), fleet=STAGING, sample_interval=0.1)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def config(emulator: EmulatorHandle) -> RedisguardConfig:
    cfg = _config(emulator)
    wait_for(lambda: _sampled(emulator, cfg), what="every staging instance sampled")
    return cfg


@pytest.mark.slow
def test_report_covers_the_fleet_with_few_calls(emulator: EmulatorHandle, config: RedisguardConfig) -> None:
    check = MemoryCheck(config)
    assert check.targets == ("redisguard-staging",)
    run_memory_check(config, check=check)  # the clients' connections are made once, outside the count
    emulator.reset_counts()
    (project,) = run_memory_check(config, check=check).projects
    assert emulator.request_counts() == CALLS_PER_PROJECT
    assert project.status == "ok", project.error
    instances = {i.instance_id: i for i in project.instances}
    assert set(instances) == STAGING_INSTANCES
    sidekiq = instances["redis-sidekiq"]
    assert (sidekiq.stack, sidekiq.tier, sidekiq.redis_version, sidekiq.state) == (
        "staging",
        "BASIC",
        "REDIS_6_X",
        "READY",
    )
    assert sidekiq.capacity_bytes == 2 * GIB
    # The emulator's maxmemory is memorySizeGb x --memory-scale (16 MiB).
    assert sidekiq.max_bytes == 2 * 16 * 2**20
    assert sidekiq.used_bytes is not None and sidekiq.usage_ratio is not None
    assert sidekiq.usage_ratio == pytest.approx(sidekiq.used_bytes / sidekiq.max_bytes, rel=0.02)
    assert sidekiq.system_memory_usage_ratio is not None
    # A few seconds of history: no trend to speak of.
    assert sidekiq.time_to_full_seconds is None
    assert all(i.level == "ok" for i in instances.values())
    assert instances["redis-sessions"].tier == "STANDARD_HA"


@pytest.mark.slow
def test_failover_keeps_one_reading_per_instance(emulator: EmulatorHandle, config: RedisguardConfig) -> None:
    name = emulator.instance_name("redis-sessions")
    emulator.redis_client().failover_instance(name=name).result(timeout=30)
    try:
        # Both nodes are primary within the newest minute now; every run reads the API's primary.
        for _ in range(3):
            report = run_memory_check(config)
            sessions = [i for i in report.projects[0].instances if i.instance_id == "redis-sessions"]
            assert len(sessions) == 1 and sessions[0].usage_ratio is not None
    finally:
        emulator.failover(emulator.region, "redis-sessions")


@pytest.mark.slow
def test_unmanaged_instance_has_no_stack(emulator: EmulatorHandle, config: RedisguardConfig) -> None:
    client = emulator.redis_client()
    client.create_instance(
        parent=emulator.parent(),
        instance_id="console-made",
        instance=redis_v1.Instance(tier="BASIC", memory_size_gb=1),
    ).result(timeout=30)
    try:
        found = wait_for(
            lambda: (i := _by_id(run_memory_check(config)).get("console-made")) and i.usage_ratio is not None and i,
            what="the out-of-band instance sampled",
        )
        assert found.stack == ""
        assert found.state == "READY"
    finally:
        client.delete_instance(name=emulator.instance_name("console-made")).result(timeout=30)
    assert "console-made" not in _by_id(run_memory_check(config))


@pytest.mark.slow
def test_a_cluster_declared_while_the_check_runs_is_owned_at_its_next_run(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """The daemon keeps one check for its life: a stack file edited since must be read, or the
    instance the team just declared (and created with `pulumi up`) stays "unmanaged"."""
    stack_file = tmp_path / STAGING.name
    stack_file.write_text(STAGING.read_text())
    cfg = config_from_mapping(
        {
            "pulumi": {"work_dir": str(tmp_path), "stacks": ["staging"]},
            "gcp": {"redis_endpoint": emulator.redis_endpoint, "monitoring_endpoint": emulator.monitoring_endpoint},
        }
    )
    check = MemoryCheck(cfg)
    client = emulator.redis_client()
    client.create_instance(
        parent=emulator.parent(), instance_id="declared-late", instance=redis_v1.Instance(tier="BASIC", memory_size_gb=1)
    ).result(timeout=30)
    try:
        assert _by_id(run_memory_check(cfg, check=check))["declared-late"].stack == ""
        document = yaml.safe_load(stack_file.read_text())
        document["config"]["redis-fleet:redis"].append({"name": "declared-late", "memory_gb": 1})
        stack_file.write_text(yaml.safe_dump(document, sort_keys=False))
        assert _by_id(run_memory_check(cfg, check=check))["declared-late"].stack == "staging"
        # A stack file that breaks meanwhile (not even YAML: its project cannot be read from it) never
        # removes a figure: the project it watched when last read is still checked, and which stack
        # holds each instance is unknown, never "unmanaged" (a guess that would become an alert).
        stack_file.write_text("config: [")
        (project,) = run_memory_check(cfg, check=check).projects
        assert (project.project_id, project.status) == (emulator.project, "ok")
        assert {i.instance_id for i in project.instances} >= {"declared-late", "redis-sidekiq"}
        assert {(i.ownership, i.unreadable_stacks) for i in project.instances} == {("unknown", ("staging",))}
    finally:
        client.delete_instance(name=emulator.instance_name("declared-late")).result(timeout=30)


@pytest.mark.slow
def test_a_killed_node_shows_its_state_not_its_last_figures(emulator: EmulatorHandle, config: RedisguardConfig) -> None:
    emulator.kill_instance(emulator.region, "redis-sidekiq")
    try:
        report = run_memory_check(config)
        sidekiq = _by_id(report)["redis-sidekiq"]
        # Monitoring still holds its points of the last minutes, from before the crash.
        assert sidekiq.state == "REPAIRING"
        # No figures, so no level: "unknown", never "ok".
        assert (sidekiq.used_bytes, sidekiq.usage_ratio, sidekiq.level) == (None, None, "unknown")
        # One instance down is that instance's state, not a failed check of the project.
        assert report.projects[0].status == "ok"
        assert _by_id(report)["redis-cache"].usage_ratio is not None
        _every_rendering_says_unknown(report, "redis-sidekiq")
    finally:
        emulator.start_instance(emulator.region, "redis-sidekiq")
    wait_for(lambda: _by_id(run_memory_check(config))["redis-sidekiq"].usage_ratio is not None, what="sidekiq back")


def _every_rendering_says_unknown(report: MemoryReport, instance_id: str) -> None:
    """The table, the JSON, the Markdown and the status page all say the instance's level is unknown."""
    from redisguard.daemon.reports.memory import render
    from redisguard.daemon.service.metrics import Exposition
    from redisguard.daemon.service.results import Results
    from redisguard.daemon.service.site import Site

    row = next(line for line in render(report, "table").splitlines() if instance_id in line)
    assert row.split()[-2:] == ["unknown", "│"] and " ok " not in row, row
    data = json.loads(render(report, "json"))
    (shown,) = [i for p in data["projects"] for i in p["instances"] if i["instance_id"] == instance_id]
    assert shown["level"] == "unknown" and data["summary"]["unknown_instances"] == 1
    assert data["summary"]["warning_instances"] == data["summary"]["critical_instances"] == 0
    md_row = next(line for line in render(report, "markdown").splitlines() if f"`{instance_id}`" in line)
    assert md_row.endswith("| ❔ unknown |"), md_row
    results = Results()
    for project in report.projects:
        results.publish("memory", project.project_id, project)
    page = Site(results, Exposition(results, dict), lambda: ([], 0.0)).index_html().decode()
    row_start = page.index(f'data-instance="{instance_id}"')
    html_row = page[row_start:page.index("</tr>", row_start)]
    assert 'data-level="unknown"' in html_row and '<span class="badge unknown">unknown</span>' in html_row, html_row


@pytest.mark.slow
@pytest.mark.parametrize(
    ("api", "mode", "message"),
    [
        ("monitoring", "503", "still failing after retries"),
        ("monitoring", "429", "still failing after retries"),
        ("monitoring", "hang", "no answer from"),
        ("monitoring", "partial", "incomplete data"),
        ("redis", "503", "still failing after retries"),
        ("redis", "429", "still failing after retries"),
        ("redis", "hang", "no answer from"),
        ("redis", "partial", "regions unreachable"),
    ],
)
def test_faults_fail_the_project_visibly(
    emulator: EmulatorHandle, config: RedisguardConfig, api: str, mode: str, message: str
) -> None:
    fast = _config(emulator, request_timeout_seconds=1)
    emulator.inject_fault(api, mode, count=1 if mode in ("hang", "partial") else 1000, seconds=5)
    started = time.monotonic()
    try:
        report = run_memory_check(fast)
    finally:
        emulator.clear_faults()
    project = report.projects[0]
    assert project.status == "error"
    assert project.error_kind == "transient"
    assert message in (project.error or "")
    # Never figures from a failed read: no instances at all.
    assert project.instances == ()
    assert report.exit_code == 1
    # The hang is cut at the request timeout (plus a retry's backoff), not at the hang's 5 s.
    assert time.monotonic() - started < 4.5
    # The fault over, the next run is whole again.
    assert run_memory_check(fast).projects[0].status == "ok"


def test_memory_report_against_closed_ports_fails_at_once_as_a_configuration_problem(tmp_path: Path) -> None:
    """Nothing listens at either endpoint: no retries (nobody is there to answer), the endpoint named,
    and `permanent`: an endpoint that never answered is misconfigured, not having a bad minute."""
    port = free_port()  # closed again: nothing listens there
    config_file = tmp_path / "redisguard.yaml"
    config_file.write_text(yaml.safe_dump({
        "pulumi": {"work_dir": str(STAGING.parent), "stacks": ["staging"]},
        "gcp": {"redis_endpoint": f"http://127.0.0.1:{port}", "monitoring_endpoint": f"127.0.0.1:{port}"},
    }))  # fmt: skip
    cli = [sys.executable, "-m", "redisguard.daemon.cli", "memory-report", "--config", str(config_file), "--format", "json"]
    started = time.monotonic()
    # The guard: with the API's retry budget (30 s) spent on a refused connection this took 30-40 s.
    result = subprocess.run(cli, capture_output=True, text=True, timeout=20)
    print(f"memory-report against a closed port: exit {result.returncode} after {time.monotonic() - started:.2f}s")

    assert result.returncode == 1
    (project,) = json.loads(result.stdout)["projects"]
    assert project["error_kind"] == "permanent"
    assert f"cannot connect to http://127.0.0.1:{port} (connection refused), which has not answered since redisguard started" in project["error"]
    assert "check gcp.redis_endpoint in the config" in project["error"]
    assert "transient" not in result.stderr and "retries" not in result.stderr
    assert project["duration_seconds"] < 5  # the check itself; the rest is the interpreter's start


@pytest.mark.slow
def test_a_closed_monitoring_port_is_named_and_one_that_answered_before_is_transient(tmp_path: Path) -> None:
    own = start_emulator(tmp_path, fleet=STAGING, processes=False)
    try:
        closed = free_port()
        (project,) = run_memory_check(_config(own, monitoring_endpoint=f"127.0.0.1:{closed}")).projects
        assert (project.status, project.error_kind) == ("error", "permanent")
        assert f"cannot connect to 127.0.0.1:{closed} (connection refused), which has not answered" in (project.error or "")
        assert "check gcp.monitoring_endpoint in the config" in (project.error or "")

        config = _config(own)
        assert run_memory_check(config).projects[0].status == "ok"
    finally:
        own.stop()
    # The same endpoints, answering a moment ago, now refuse: a restart or an outage, not the config.
    started = time.monotonic()
    (project,) = run_memory_check(config).projects
    print(f"memory check against a stopped emulator: {time.monotonic() - started:.2f}s")
    assert (project.status, project.error_kind) == ("error", "transient")
    assert "(connection refused); it answered earlier, so it may be restarting" in (project.error or "")


@pytest.mark.slow
def test_a_failed_run_makes_no_calls_after_its_report(emulator: EmulatorHandle) -> None:
    """Retried calls of a failed run end with it: stragglers would overlap the next run and take its answers."""
    fast = _config(emulator, request_timeout_seconds=1)
    emulator.inject_fault("monitoring", "503", count=1000)
    try:
        emulator.reset_counts()
        assert run_memory_check(fast).projects[0].status == "error"
        at_report = emulator.request_counts()
        # Longer than any call's retry budget (the request timeout): a straggler would call by then.
        time.sleep(2)
        assert emulator.request_counts() == at_report
    finally:
        emulator.clear_faults()


@pytest.mark.slow
def test_a_bug_in_the_check_is_logged_once_at_error_and_is_the_projects_failure(
    config: RedisguardConfig, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object) -> None:
        raise KeyError("no such node")

    monkeypatch.setattr(memory, "pick_newest", broken)
    with caplog.at_level(logging.DEBUG, logger="redisguard"):
        report = run_memory_check(config)
    project = report.projects[0]
    assert (project.status, project.error_kind, project.instances) == ("error", "permanent", ())
    assert project.error == "unexpected KeyError: 'no such node'"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert "check=memory target=redisguard-staging" in errors[0].getMessage()


@pytest.mark.slow
def test_filled_instance_crosses_the_warning_ratio(
    emulator: EmulatorHandle, config: RedisguardConfig, tmp_path: Path
) -> None:
    """Last in the module: the filled instance stays above the ratio for the minute's peak."""
    # Real writes until INFO says 85 % of maxmemory.
    emulator.fill("redis-cache", 0.85)
    report = wait_for(
        lambda: (r := run_memory_check(config)) and (_by_id(r)["redis-cache"].usage_ratio or 0) >= 0.8 and r,
        what="redis-cache's usage ratio to reach 0.8",
    )
    cache = _by_id(report)["redis-cache"]
    assert cache.level == "warning"
    assert report.projects[0].status == "threshold"
    assert report.exit_code == 2
    assert all(i.level == "ok" for i in report.projects[0].instances if i.instance_id != "redis-cache")

    config_file = tmp_path / "redisguard.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "pulumi": {"work_dir": str(STAGING.parent), "stacks": ["staging"]},
                "gcp": {"redis_endpoint": emulator.redis_endpoint, "monitoring_endpoint": emulator.monitoring_endpoint},
            }
        )
    )
    cli = [sys.executable, "-m", "redisguard.daemon.cli", "memory-report", "--config", str(config_file)]
    table = subprocess.run(cli, capture_output=True, text=True, timeout=60)
    assert table.returncode == 2, table.stderr
    line = next(line for line in table.stdout.splitlines() if "redis-cache" in line)
    assert "warning" in line
    as_json = subprocess.run([*cli, "--format", "json"], capture_output=True, text=True, timeout=60)
    assert as_json.returncode == 2
    instances = {i["instance_id"]: i for p in json.loads(as_json.stdout)["projects"] for i in p["instances"]}
    assert instances["redis-cache"]["level"] == "warning"
    assert instances["redis-cache"]["usage_ratio"] >= 0.8


# --- nodes with figures of their own (no processes) --------------------------------------------

# The amplitude of the emulator's synthetic wave (emulator/monitoring/sampler.py): a minute's peak and its
# last point differ by less.
WAVE = 0.02


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    handle = start_emulator(
        tmp_path_factory.mktemp("memory-synthetic"), fleet=STAGING, processes=False, sample_interval=0.1
    )
    yield handle
    handle.stop()


def _raw_ratio(emulator: EmulatorHandle, node: str, role: str) -> float:
    """The newest raw usage_ratio point of one node's series, read with the official client.

    The check reports the minute's peak; the synthetic figures wave by at most WAVE within a minute.
    """
    now = time.time()
    series = emulator.monitoring_client().list_time_series(
        request={
            "name": f"projects/{emulator.project}",
            "filter": (
                'metric.type = "redis.googleapis.com/stats/memory/usage_ratio" '
                f'AND resource.labels.instance_id = "{emulator.instance_name("redis-sessions")}" '
                f'AND resource.labels.node_id = "{node}" AND metric.labels.role = "{role}"'
            ),
            # Up to the last whole second, as the check reads: a point of this very second is not in its view yet.
            "interval": {"end_time": {"seconds": int(now)}, "start_time": {"seconds": int(now) - 2}},
        }
    )
    return next(iter(series)).points[0].value.double_value


@pytest.mark.slow
def test_the_primary_node_is_the_instance(synthetic: EmulatorHandle) -> None:
    config = _config(synthetic)
    wait_for(lambda: _sampled(synthetic, config), what="every staging instance sampled")
    before = _by_id(run_memory_check(config))["redis-sessions"].usage_ratio
    assert before == pytest.approx(_raw_ratio(synthetic, "node-0", "primary"), abs=WAVE)
    # The replica has figures of its own, and they are not the instance's.
    assert abs(_raw_ratio(synthetic, "node-1", "replica") - before) > 0.05
    synthetic.failover(synthetic.region, "redis-sessions")
    wait_for(lambda: _raw_ratio(synthetic, "node-1", "primary"), what="node-1 sampled as primary")
    # Within the failover's minute node-0 and node-1 both have primary points: every run reads
    # node-1, the node the API shows as primary, never node-0's older figures.
    after = [_by_id(run_memory_check(config))["redis-sessions"].usage_ratio for _ in range(3)]
    expected = _raw_ratio(synthetic, "node-1", "primary")
    assert after == pytest.approx([expected] * 3, abs=WAVE)
    assert abs(expected - before) > 0.05


# --- time to full ----------------------------------------------------------------------------


def test_time_to_full_from_the_slope() -> None:
    max_bytes = 1000.0
    growing = [(t * 60.0, 100.0 + t * 6.0) for t in range(10)]  # 0.1 byte/s
    assert time_to_full(growing, used=154.0, max_bytes=max_bytes, window_seconds=3600) == pytest.approx(8460)
    assert time_to_full(growing, used=1200.0, max_bytes=max_bytes, window_seconds=3600) == 0.0
    flat = [(t * 60.0, 500.0 + (1.0 if t == 5 else 0.0)) for t in range(10)]  # noise, no growth
    assert time_to_full(flat, used=500.0, max_bytes=max_bytes, window_seconds=3600) is None
    shrinking = [(t * 60.0, 900.0 - t * 6.0) for t in range(10)]
    assert time_to_full(shrinking, used=846.0, max_bytes=max_bytes, window_seconds=3600) is None
    assert time_to_full(growing[:4], used=154.0, max_bytes=max_bytes, window_seconds=3600) is None
    assert time_to_full(growing, used=None, max_bytes=max_bytes, window_seconds=3600) is None
