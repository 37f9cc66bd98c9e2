"""Sharding on loopback: three `redisguard daemon` processes (shards 0-2 of 3) and one unsharded daemon
watch one API-only emulator with several projects and stacks; together the shards export exactly
the unsharded daemon's findings, each series once; a real Prometheus scrapes the three and a second
replica of shard 0 (HA) with the shipped rules, the dashboard's queries show each finding once,
and a killed shard fires RedisguardShardsMissing while its stacks' series go stale.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from redisguard.daemon.sharding import shard_of
from tests.fixtures.alerting import (
    DASHBOARD,
    Server,
    derive_prometheus_config,
    derive_rules,
    load_yaml,
    start_prometheus,
)
from tests.fixtures.daemon import DaemonHandle, Samples, daemon_config, launch_daemon
from tests.fixtures.emulator import EmulatorHandle, start_emulator
from tests.fixtures.processes import free_port, wait_for
from tests.fixtures.repo import REPO, STAGING

pytestmark = pytest.mark.slow

TOTAL = 3
PROJECTS = ("team-amber-prod", "team-birch-prod", "team-cedar-prod", "team-dune-prod")
# Findings: what must be the same in the union of the shards as in one daemon (timings and the
# per-daemon families left out).
FINDINGS = (
    "redisguard_check_up",
    "redisguard_drift_status",
    "redisguard_drifted_resources",
    "redisguard_drifted_resource",
    "redisguard_unmanaged_instances",
    "redisguard_pending_changes",
    "redisguard_instance_info",
    "redisguard_instance_ready",
)
PER_DAEMON = ("redisguard_shard_ordinal", "redisguard_total_shards", "redisguard_build_info", "redisguard_check_interval_seconds")


def _stack_names() -> list[str]:
    """Eight stacks over the four projects, at least two in every shard (names picked by their hash)."""
    names: list[str] = []
    per_shard = dict.fromkeys(range(TOTAL), 0)
    for i in range(200):
        name = f"svc{i}"
        if per_shard[shard_of(name, TOTAL)] < 3 and len(names) < 8:
            names.append(name)
            per_shard[shard_of(name, TOTAL)] += 1
    assert min(per_shard.values()) >= 2
    return names


def _write_fleet(workdir: Path) -> tuple[Path, list[str], list[Path]]:
    """A program folder with one stack file per stack (two of staging's clusters each, in a project
    of PROJECTS), and a fleet file of instances no stack declares (unmanaged) in two projects."""
    program = workdir / "program"
    program.mkdir()
    shutil.copy(REPO / "program" / "Pulumi.yaml", program / "Pulumi.yaml")
    staging = yaml.safe_load(STAGING.read_text())["config"]
    clusters = staging["redis-fleet:redis"]
    stacks = _stack_names()
    files = []
    for index, stack in enumerate(stacks):
        entries = [{**c, "name": f"{c['name']}-{stack}"} for c in clusters[:2]]
        config = {"gcp:project": PROJECTS[index % len(PROJECTS)], "gcp:region": staging["gcp:region"], "redis-fleet:redis": entries}
        path = program / f"Pulumi.{stack}.yaml"
        path.write_text(yaml.safe_dump({"config": config}))
        files.append(path)
    # One stack declares a cluster the emulator does not have (missing: drift in that stack).
    first = yaml.safe_load(files[0].read_text())
    first["config"]["redis-fleet:redis"].append({**clusters[2], "name": "redis-never-created"})
    files[0].write_text(yaml.safe_dump(first))
    fleet = [path for path in files]
    for project in PROJECTS[1:3]:
        stray = workdir / f"stray-{project}.yaml"
        stray.write_text(yaml.safe_dump({"config": {"gcp:project": project, "gcp:region": staging["gcp:region"],
                                                     "redis-fleet:redis": [{**clusters[0], "name": "redis-by-hand"}]}}))  # fmt: skip
        fleet.append(stray)
    return program, stacks, fleet


@dataclass
class Fleet:
    emulator: EmulatorHandle
    stacks: list[str]
    whole: DaemonHandle
    shards: list[DaemonHandle]
    replica: DaemonHandle
    """A second daemon of shard 0 (HA)."""
    prometheus: Server

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.prometheus.get_json("/api/v1/query?query=" + urllib.parse.quote(expr))["data"]["result"]
        return result


def _launch(
    workdir: Path, emulator: EmulatorHandle, program: Path, stacks: list[str], name: str, argv: tuple[str, ...] = (), **extra: Any
) -> DaemonHandle:
    port = free_port()
    config = daemon_config(emulator, port, stacks=tuple(stacks), schedules={"drift_live": "1s", "memory": "2s"}, **extra)
    config["pulumi"].update({"work_dir": str(program), "source": "config"})
    config["gcp"]["projects"] = [PROJECTS[3]]  # listed: its unmanaged instances reported too
    process = launch_daemon(workdir, config, name=name, extra_args=argv)
    return DaemonHandle(process, port, workdir / f"{name}.yaml", workdir / f"{name}.log")


def _published(daemon: DaemonHandle, stacks: list[str], projects: list[str]) -> bool:
    if daemon.process.poll() is not None:
        raise AssertionError(f"a daemon exited with {daemon.process.returncode}: {daemon.log()[-3000:]}")
    try:
        samples = daemon.samples()
    except OSError:
        return False
    targets = {(dict(labels)["check"], dict(labels)["target"]) for (name, labels) in samples if name == "redisguard_check_up"}
    return targets == {("drift_live", s) for s in stacks} | {("memory", p) for p in projects}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    workdir = tmp_path_factory.mktemp("sharding")
    program, stacks, fleet_files = _write_fleet(workdir)
    started: list[Any] = []
    try:
        emulator = start_emulator(workdir, fleet_files, processes=False)
        started.append(emulator)
        whole = _launch(workdir, emulator, program, stacks, "whole")
        started.append(whole)
        shards = [_launch(workdir, emulator, program, stacks, f"shard{n}", ("--shard", str(n), "--total-shards", str(TOTAL))) for n in range(TOTAL)]
        started.extend(shards)
        replica = _launch(workdir, emulator, program, stacks, "shard0-replica", ("--shard", "0", "--total-shards", str(TOTAL)))
        started.append(replica)
        wait_for(lambda: _published(whole, stacks, list(PROJECTS)), timeout=60, what="the unsharded daemon's results")
        for n, shard in [*enumerate(shards), (0, replica)]:
            mine = [s for s in stacks if shard_of(s, TOTAL) == n]
            projects = [p for p in PROJECTS if shard_of(p, TOTAL) == n]
            wait_for(lambda shard=shard, mine=mine, projects=projects: _published(shard, mine, projects), timeout=60, what=f"shard {n}'s results")  # type: ignore[misc]
        rules = derive_rules(workdir / "rules.yml", "2s")
        config = derive_prometheus_config(workdir / "prometheus.yml", daemon_target=shards[0].url.removeprefix("http://"),
                                          alertmanager_target=f"127.0.0.1:{free_port()}", rule_files=[rules])  # fmt: skip
        doc = load_yaml(config)
        job = next(j for j in doc["scrape_configs"] if j["job_name"] == "redisguard")
        job["static_configs"] = [{"targets": [s.url.removeprefix("http://") for s in [*shards, replica]]}]
        config.write_text(yaml.safe_dump(doc, sort_keys=False))
        prometheus = start_prometheus(config, workdir)
        started.append(prometheus)
        yield Fleet(emulator, stacks, whole, shards, replica, prometheus)
    finally:
        for item in reversed(started):
            item.stop()


def _findings(samples: Samples) -> Samples:
    return {key: value for key, value in samples.items() if key[0] in FINDINGS}


def test_the_shards_together_export_exactly_one_daemons_findings_each_once(fleet: Fleet) -> None:
    whole = _findings(fleet.whole.samples())
    per_shard = [_findings(shard.samples()) for shard in fleet.shards]
    union: Samples = {}
    for samples in per_shard:
        overlap = set(union) & set(samples)
        assert not overlap, f"exported by two shards: {sorted(overlap)[:5]}"
        union.update(samples)
    assert union == whole
    # The fleet has what the comparison is about: drift in one stack, unmanaged instances in two
    # projects, memory per project.
    assert any(name == "redisguard_drift_status" and value == 1 for (name, _), value in whole.items())
    unmanaged = {dict(labels)["project_id"]: value for (name, labels), value in whole.items() if name == "redisguard_unmanaged_instances"}
    assert unmanaged == {PROJECTS[0]: 0, PROJECTS[1]: 1, PROJECTS[2]: 1, PROJECTS[3]: 0}
    for n, shard in enumerate(fleet.shards):
        samples = shard.samples()
        assert samples[("redisguard_shard_ordinal", (("shard_ordinal", str(n)),))] == n
        assert samples[("redisguard_total_shards", ())] == TOTAL


def test_each_shards_status_page_says_which_shard_and_shows_only_its_stacks(fleet: Fleet) -> None:
    """A sharded daemon's page names its shard and lists its own stacks, not the others' as never run."""
    for n, shard in enumerate(fleet.shards):
        status, page = shard.get("/")
        assert status == 200
        assert f'<span class="meta" id="shard">shard {n} of {TOTAL}:' in page
        shown = set(re.findall(r'<h3 id="stack-([^"]+)">', page))
        assert shown == {s for s in fleet.stacks if shard_of(s, TOTAL) == n}
    status, page = fleet.whole.get("/")
    assert status == 200 and 'id="shard"' not in page
    assert set(re.findall(r'<h3 id="stack-([^"]+)">', page)) == set(fleet.stacks)


def test_prometheus_shows_each_finding_once_with_a_replica_and_no_sharding_alert(fleet: Fleet) -> None:
    wait_for(lambda: len(fleet.query('up{job="redisguard"} == 1')) == TOTAL + 1, timeout=30, what="four scraped daemons")
    drift = fleet.query("count by (stack, engine) (redisguard_drift_status)")
    # Shard 0's stacks are exported by both of its replicas, every other stack once, none by two shards.
    assert {r["metric"]["stack"]: r["value"][1] for r in drift} == {s: "2" if shard_of(s, TOTAL) == 0 else "1" for s in fleet.stacks}
    # The dashboard's panels show one value per finding, as one daemon exports them.
    whole = _findings(fleet.whole.samples())
    dash = json.loads(DASHBOARD.read_text())
    checked = 0
    for query in [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]:
        family = next((f for f in FINDINGS if re.search(rf"\b{f}\{{", query)), None)
        if family is None:
            continue
        expr = re.sub(r"\$(project|stack|instance)\b", ".*", query)
        expected = sum(1 for (name, _) in whole if name == family)
        assert len(fleet.query(expr)) == expected, expr
        checked += expected > 0
    assert checked >= 3, "the fleet has drift, drifted resources and unmanaged instances to show"
    # With every shard scraped, neither sharding alert holds. (While the daemons came up one by one,
    # a rule evaluation may have seen a shard missing and left the alert pending for one evaluation:
    # what must hold is that it clears once all are there, long before its `for:`.)
    sharding = 'ALERTS{alertname=~"RedisguardShardingMismatch|RedisguardShardsMissing"}'
    wait_for(lambda: fleet.query(sharding) == [], timeout=30, what="no sharding alert once every shard is scraped")


def test_a_killed_shard_fires_shards_missing_and_its_stacks_go_stale(fleet: Fleet) -> None:
    victim = fleet.shards[2]
    gone = [s for s in fleet.stacks if shard_of(s, TOTAL) == 2]
    victim.send(signal.SIGKILL)
    victim.process.wait(10)

    def missing_fires() -> list[dict[str, Any]] | None:
        found = fleet.query('ALERTS{alertname="RedisguardShardsMissing", alertstate="firing"}')
        return found or None

    wait_for(missing_fires, timeout=60, what="RedisguardShardsMissing firing")
    assert fleet.query("2 ^ max(redisguard_total_shards) - 1 - sum(2 ^ max by (shard_ordinal) (redisguard_shard_ordinal))")[0]["value"][1] == "4"
    # Not "in sync": no series for its stacks at all, and no other shard took them over.
    for stack in gone:
        assert fleet.query(f'redisguard_drift_status{{stack="{stack}"}}') == []
        for shard in fleet.shards[:2]:
            assert not any(dict(labels).get("target") == stack for (_, labels) in shard.samples())


def _drift_targets(daemon: DaemonHandle) -> set[str]:
    return {dict(labels)["target"] for (name, labels) in daemon.samples() if name == "redisguard_check_up" and dict(labels)["check"] == "drift_live"}


def test_shard_auto_from_the_pod_name_and_a_sighup_that_changes_the_total(fleet: Fleet, tmp_path: Path) -> None:
    program = Path(yaml.safe_load(fleet.whole.config_path.read_text())["pulumi"]["work_dir"])
    # The StatefulSet's way: the ordinal from the pod's name, the total from the config.
    daemon = _launch(tmp_path, fleet.emulator, program, fleet.stacks, "auto", ("--shard", "auto", "--pod", "redisguard-1"), sharding={"total_shards": TOTAL})
    try:
        wait_for(lambda: _drift_targets(daemon) == {s for s in fleet.stacks if shard_of(s, TOTAL) == 1}, timeout=60, what="shard 1 of 3's stacks")
        assert daemon.value("redisguard_shard_ordinal", shard_ordinal="1") == 1
        # Two shards from now on: the daemon checks shard 1 of 2's stacks, and the others' series go.
        config = yaml.safe_load(daemon.config_path.read_text())
        config["sharding"] = {"total_shards": 2}
        daemon.write_config(config)
        daemon.send(signal.SIGHUP)
        wait_for(lambda: _drift_targets(daemon) == {s for s in fleet.stacks if shard_of(s, 2) == 1}, timeout=30, what="shard 1 of 2's stacks")
        assert daemon.value("redisguard_total_shards") == 2
    finally:
        daemon.stop()


def test_shard_auto_without_an_ordinal_stops_the_start_with_one_line(fleet: Fleet, tmp_path: Path) -> None:
    program = Path(yaml.safe_load(fleet.whole.config_path.read_text())["pulumi"]["work_dir"])
    daemon = _launch(tmp_path, fleet.emulator, program, fleet.stacks, "no-ordinal", ("--shard", "auto", "--pod", "redisguard", "--total-shards", "3"))
    assert daemon.process.wait(30) == 78
    assert "sharding.shard (--shard) is auto but sharding.pod (--pod) 'redisguard' does not end in -N" in daemon.log()
    assert "Traceback" not in daemon.log()
