"""redisguard watching a team's own Pulumi program (TypeScript, tests/fixtures/team_program/), with no stack
file in redisguard's format: the declared side comes from the stack's deployed state (fleet/declared.py).

The real CLI deploys the program once for the module through the real Node.js host against one
emulator (real redis-server processes behind the instances, so memory has figures); every
redisguard command then runs as a user's process would, with the CLI on PATH and the backend
named in redisguard.yaml, no passphrase. Each test puts back what it changed out of band.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.cloud import redis_v1
from google.protobuf import field_mask_pb2

from redisguard.daemon.fleet import state as fleet_state
from tests.fixtures.daemon import DaemonHandle
from tests.fixtures.emulator import EmulatorHandle, start_emulator
from tests.fixtures.processes import wait_for
from tests.fixtures.pulumi_engine import TEAM_PROJECT, TEAM_REGION, Engine, team_program_copy

pytestmark = pytest.mark.slow

SIDEKIQ = f"projects/{TEAM_PROJECT}/locations/{TEAM_REGION}/instances/redis-sidekiq"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory, engine: Engine) -> Iterator[EmulatorHandle]:
    handle = start_emulator(tmp_path_factory.mktemp("any-emulator"), project=TEAM_PROJECT, region=TEAM_REGION, sample_interval=0.1)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def program(engine: Engine, emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = team_program_copy(engine, tmp_path_factory.mktemp("any-program"), emulator.redis_endpoint)
    done = engine.pulumi(work, "up", "--yes", "--stack", "staging")
    assert done.returncode == 0, done.stdout + done.stderr
    return work


def settings(engine: Engine, emulator: EmulatorHandle, program: Path, **pulumi: Any) -> dict[str, Any]:
    """The team's redisguard.yaml: its program folder, its stack, its backend; nothing in redisguard's format."""
    return {
        "pulumi": {"work_dir": str(program), "stacks": ["staging"], "backend_url": f"file://{engine.backend}", **pulumi},
        "gcp": {
            "redis_endpoint": emulator.redis_endpoint,
            "monitoring_endpoint": emulator.monitoring_endpoint,
            "request_timeout_seconds": 5,
        },
    }


@pytest.fixture
def redisguard(engine: Engine, emulator: EmulatorHandle, program: Path, tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`redisguard ARGS` with the team's redisguard.yaml (plus `pulumi` overrides), as a user runs it."""

    def run(*args: str, **pulumi: Any) -> subprocess.CompletedProcess[str]:
        config = tmp_path / "redisguard.yaml"
        config.write_text(yaml.safe_dump(settings(engine, emulator, program, **pulumi)))
        return subprocess.run(
            [sys.executable, "-m", "redisguard.daemon.cli", *args, "--config", str(config)],
            capture_output=True, text=True, timeout=180, cwd=tmp_path, env=engine.reader_env(),
        )  # fmt: skip

    return run


def drift(redisguard: Callable[..., subprocess.CompletedProcess[str]], **pulumi: Any) -> tuple[int, dict[str, Any]]:
    done = redisguard("drift-report", "--engine", "live", "--format", "json", **pulumi)
    assert done.returncode in (0, 2), done.stderr
    report = json.loads(done.stdout)
    (stack,) = report["stacks"]
    return done.returncode, stack


def update(client: redis_v1.CloudRedisClient, paths: list[str], **fields: Any) -> None:
    client.update_instance(
        update_mask=field_mask_pb2.FieldMask(paths=paths), instance=redis_v1.Instance(name=SIDEKIQ, **fields)
    ).result(timeout=60)


def test_check_config_shows_the_stack_read_from_its_state_and_why(redisguard: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    done = redisguard("check-config")
    assert done.returncode == 0, done.stderr
    assert (
        "    stack staging                   state (auto: Pulumi.staging.yaml has no redis-fleet:redis): "
        f"{TEAM_PROJECT}, 1 deployed instance"
    ) in done.stdout.splitlines()


def test_out_of_band_changes_are_drift_at_the_property_level_and_nothing_else_is(
    redisguard: Callable[..., subprocess.CompletedProcess[str]], emulator: EmulatorHandle
) -> None:
    code, stack = drift(redisguard)
    # What the team deployed is what runs: no false drift from what its program leaves to defaults.
    assert (code, stack["status"], stack["source"], stack["items"]) == (0, "in_sync", "state", []), stack

    client = emulator.redis_client()
    update(client, ["memory_size_gb", "redis_configs"], memory_size_gb=3, redis_configs={"maxmemory-policy": "allkeys-lru", "activedefrag": "yes"})
    try:
        code, stack = drift(redisguard)
        assert code == 2
        (item,) = stack["items"]
        assert (item["resource"], item["kind"]) == ("redis-sidekiq", "changed")
        assert item["properties"] == [
            {"path": "memorySizeGb", "expected": 2, "actual": 3},
            {"path": "redisConfigs.maxmemory-policy", "expected": "noeviction", "actual": "allkeys-lru"},
        ]

        adopt = redisguard("adopt", "--stack", "staging")
        assert adopt.returncode == 2, adopt.stderr
        urn = "urn:pulumi:staging::ampledash-infra::gcp:redis/instance:Instance::redis-sidekiq"
        assert f"stack staging (state): {urn}" in adopt.stdout
        assert "  memorySizeGb: the program declares 2, the instance runs 3" in adopt.stdout
        assert f"  to revert the instance: pulumi up --target '{urn}' --stack staging" in adopt.stdout
    finally:
        update(client, ["memory_size_gb", "redis_configs"], memory_size_gb=2, redis_configs={"maxmemory-policy": "noeviction", "activedefrag": "yes"})
    assert drift(redisguard)[0] == 0


def test_an_instance_created_out_of_band_is_unmanaged_until_imported(
    redisguard: Callable[..., subprocess.CompletedProcess[str]], emulator: EmulatorHandle, engine: Engine, program: Path, tmp_path: Path
) -> None:
    client = emulator.redis_client()
    client.create_instance(
        parent=f"projects/{TEAM_PROJECT}/locations/{TEAM_REGION}",
        instance_id="redis-by-hand",
        instance=redis_v1.Instance(tier="BASIC", memory_size_gb=1, redis_version="REDIS_7_2"),
    ).result(timeout=60)
    imported = False
    try:
        code, stack = drift(redisguard)
        assert code == 2
        assert [(i["resource"], i["kind"]) for i in stack["items"]] == [
            (f"projects/{TEAM_PROJECT}/locations/{TEAM_REGION}/instances/redis-by-hand", "unmanaged")
        ]
        assert stack["unmanaged_projects"] == [TEAM_PROJECT]

        # No stack file to write into: codify says so and points at the import file.
        done = redisguard("codify")
        assert "read from its Pulumi state" in done.stderr and "--import-file" in done.stderr

        import_file = tmp_path / "import.json"
        done = redisguard("codify", "--stack", "staging", "--import-file", str(import_file))
        assert done.returncode == 2, done.stderr
        pulled = engine.pulumi(program, "import", "--file", str(import_file), "--stack", "staging", "--yes", "--generate-code=false")
        assert pulled.returncode == 0, pulled.stdout + pulled.stderr
        imported = True

        code, stack = drift(redisguard)
        assert (code, stack["items"]) == (0, []), stack  # held by the stack's state now, and as it runs
    finally:
        if imported:
            engine.pulumi(program, "state", "delete", "--stack", "staging", "--yes", "--force",
                          "urn:pulumi:staging::ampledash-infra::gcp:redis/instance:Instance::redis-by-hand")  # fmt: skip
        client.delete_instance(name=f"projects/{TEAM_PROJECT}/locations/{TEAM_REGION}/instances/redis-by-hand").result(timeout=60)


def test_memory_report_names_the_stack_that_holds_each_instance(redisguard: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    done = redisguard("memory-report", "--format", "json")
    assert done.returncode == 0, done.stderr
    (project,) = json.loads(done.stdout)["projects"]
    (instance,) = project["instances"]
    assert (instance["instance_id"], instance["stack"], instance["ownership"]) == ("redis-sidekiq", "staging", "declared")
    assert instance["max_bytes"] and instance["usage_ratio"] is not None


def test_with_both_sources_the_config_ahead_of_the_state_is_pending_not_drift(
    redisguard: Callable[..., subprocess.CompletedProcess[str]], program: Path
) -> None:
    stack_file = program / "Pulumi.staging.yaml"
    before = stack_file.read_text()
    stack_file.write_text(before.replace("memory_gb: 2", "memory_gb: 4"))
    try:
        code, stack = drift(redisguard, config_key="ampledash-infra:redis", source="both")
        assert (code, stack["status"], stack["source"], stack["items"]) == (0, "in_sync", "both", [])
        assert stack["pending"] == [
            {"resource": "redis-sidekiq", "change": "update", "properties": [{"path": "memorySizeGb", "config": 4, "deployed": 2}]}
        ]
        # The team's key with the config alone: its entry is compared as it states it (no TLS asked, none expected).
        code, stack = drift(redisguard, config_key="ampledash-infra:redis")
        assert stack["source"] == "config"
        assert [(i["resource"], [p["path"] for p in i["properties"]]) for i in stack["items"]] == [("redis-sidekiq", ["memorySizeGb"])]
    finally:
        stack_file.write_text(before)


def test_the_daemon_watches_the_stack_from_its_state(
    engine: Engine, emulator: EmulatorHandle, program: Path, daemon_factory: Callable[..., DaemonHandle]
) -> None:
    def config(port: int) -> dict[str, Any]:
        body = settings(engine, emulator, program)
        return {**body, "server": {"listen": f"127.0.0.1:{port}"},
                "schedules": {"drift_pulumi": "off", "drift_live": "1s", "memory": "1s", "compliance": "off"}}  # fmt: skip

    fleet_state.clear_cache()
    daemon = daemon_factory(config, env=engine.reader_env())
    daemon.wait_value("redisguard_drift_status", 0, stack="staging", engine="live")
    labels = {"project_id": TEAM_PROJECT, "region": TEAM_REGION, "instance_id": "redis-sidekiq"}
    wait_for(lambda: daemon.value("redisguard_memory_usage_ratio", **labels) is not None, timeout=30, what="a usage ratio")
    (info,) = daemon.series("redisguard_instance_info")
    assert (info["stack"], info["ownership"]) == ("staging", "declared")
    assert daemon.value("redisguard_unmanaged_instances", project_id=TEAM_PROJECT) == 0
    wait_for(lambda: daemon.healthz()[0] == 200, timeout=30, what="/healthz 200")
