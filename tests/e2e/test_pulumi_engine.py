"""The real Pulumi engine (CLI built from Go modules) runs the program, the policy pack and the drift report against the emulator.

One emulator and one staging stack for the module; the tests run in file order and build on each
other (up, policy preview, out-of-band changes + drift report, destroy). The program runs as an
Automation API inline program: the real CLI with the SDK's own language server, because the real
`pulumi-language-python` cannot be built here (docs/testing.md says why).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.cloud import redis_v1
from google.protobuf import field_mask_pb2
from pulumi.automation import CommandError, ConfigValue, EngineEvent, OpType, Stack, create_stack

from redisguard.policies.check import judge_stacks
from redisguard.program import fleet
from tests.fixtures.emulator import EmulatorHandle, start_emulator
from tests.fixtures.policy_inputs import BAD_PRODUCTION
from tests.fixtures.policy_pack_launcher import policy_pack_launcher
from tests.fixtures.pulumi_engine import Engine, engine_bin_dirs, make_project
from tests.fixtures.repo import REPO, STAGING_INSTANCES

pytestmark = pytest.mark.slow

PACK = REPO / "policies"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory, engine: Engine) -> Iterator[EmulatorHandle]:
    handle = start_emulator(tmp_path_factory.mktemp("engine-emulator"), project="redisguard-staging")
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def client(emulator: EmulatorHandle) -> redis_v1.CloudRedisClient:
    return emulator.redis_client()


def _endpoint(emulator: EmulatorHandle) -> dict[str, str]:
    return {"gcp:redisCustomEndpoint": f"{emulator.redis_endpoint}/v1/"}


def _fleet_program() -> None:
    """The program as the engine runs it: the clusters fleet.main returns are registered, not used."""
    fleet.main()


@pytest.fixture(scope="module")
def staging(engine: Engine, emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    project = make_project(
        tmp_path_factory.mktemp("staging-project"), REPO / "program" / "Pulumi.staging.yaml", _endpoint(emulator)
    )
    return create_stack(
        "staging", project_name="redis-fleet", program=_fleet_program, opts=engine.workspace_options(project)
    )


def _parent(project: str = "redisguard-staging") -> str:
    return f"projects/{project}/locations/europe-west1"


def _live(client: redis_v1.CloudRedisClient) -> dict[str, redis_v1.Instance]:
    return {i.name.rsplit("/", 1)[-1]: i for i in client.list_instances(parent=_parent())}


def _stack_output(engine: Engine, project_dir: Path) -> dict[str, Any]:
    out = subprocess.run(
        [str(engine.bin_dirs[0] / "pulumi"), "stack", "output", "--json", "--stack", "staging"],
        cwd=project_dir, env=engine.subprocess_env(), capture_output=True, text=True, check=True, timeout=120,
    )
    return json.loads(out.stdout)


def test_up_creates_the_declared_instances_with_the_auth_string_only_as_a_secret(
    engine: Engine, staging: Stack, client: redis_v1.CloudRedisClient
) -> None:
    events: list[EngineEvent] = []
    result = staging.up(on_event=events.append, color="never")

    assert result.summary.result == "succeeded"
    live = _live(client)
    assert set(live) == STAGING_INSTANCES
    sidekiq = live["redis-sidekiq"]
    assert (sidekiq.memory_size_gb, sidekiq.tier.name, sidekiq.redis_version) == (2, "BASIC", "REDIS_6_X")
    assert sidekiq.auth_enabled is True
    assert dict(sidekiq.redis_configs) == {"maxmemory-policy": "noeviction", "activedefrag": "yes"}
    assert live["redis-sessions"].tier.name == "STANDARD_HA"
    assert dict(live["redis-cache"].labels) == {"env": "staging", "team": "platform", "service": "cache"}

    # Outputs as documented: host, port, zone; the AUTH string masked wherever it is shown.
    outputs = _stack_output(engine, Path(staging.workspace.work_dir))
    assert set(outputs) == STAGING_INSTANCES
    cache = outputs["redis-cache"]
    assert cache["host"] == "127.0.0.1" and cache["port"] == live["redis-cache"].port
    assert cache["current_location_id"] == live["redis-cache"].current_location_id
    assert cache["auth_string"] == "[secret]"
    auth = client.get_instance_auth_string(name=live["redis-cache"].name).auth_string
    state_text = engine.state_file("staging").read_text()
    assert auth and auth not in state_text  # encrypted with the passphrase in the state
    assert auth not in result.stdout and auth not in json.dumps([e.__dict__ for e in events], default=str)
    assert staging.outputs()["redis-cache"].value["auth_string"] == auth  # only with --show-secrets


def _violations(events: list[EngineEvent]) -> set[tuple[str, str, str]]:
    found = set()
    for event in events:
        policy = event.policy_event
        if policy is not None:
            found.add((policy.policy_name, policy.resource_urn.rsplit("::", 1)[-1] if policy.resource_urn else "", policy.enforcement_level.lower()))
    return found


def _check_verdicts(stack: str, stack_file: Path, config: Path | None) -> set[tuple[str, str, str]]:
    (verdict,) = judge_stacks([(stack, stack_file)], config).stacks
    assert verdict.error is None, verdict.error
    return {(v.policy, v.resource, v.level) for v in verdict.violations}


@pytest.fixture(scope="module")
def pack_launcher(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(policy_pack_launcher(PACK, tmp_path_factory.mktemp("policy-pack")))


def test_shipped_staging_stack_passes_the_pack_under_the_real_engine_as_policy_check_says(
    staging: Stack, pack_launcher: str
) -> None:
    events: list[EngineEvent] = []
    config = PACK / "config" / "staging.json"
    staging.preview(on_event=events.append, policy_packs=[pack_launcher], policy_pack_configs=[str(config)], color="never")

    engine_verdicts = _violations(events)
    assert engine_verdicts, "the pack ran: staging gets advisory findings"
    assert {level for _, _, level in engine_verdicts} == {"advisory"}
    assert engine_verdicts == _check_verdicts("staging", Path(staging.workspace.work_dir) / "Pulumi.staging.yaml", config)


def test_a_bad_production_cluster_is_blocked_by_the_real_engine_with_the_same_verdicts(
    engine: Engine, emulator: EmulatorHandle, pack_launcher: str, tmp_path: Path
) -> None:
    stack_file = tmp_path / "src" / "Pulumi.production.yaml"
    stack_file.parent.mkdir()
    stack_file.write_text(BAD_PRODUCTION)
    project = make_project(tmp_path / "project", stack_file, _endpoint(emulator))
    stack = create_stack(
        "production", project_name="redis-fleet", program=_fleet_program, opts=engine.workspace_options(project)
    )
    events: list[EngineEvent] = []
    config = PACK / "config" / "production.json"

    with pytest.raises(CommandError) as failure:
        stack.preview(on_event=events.append, policy_packs=[pack_launcher], policy_pack_configs=[str(config)], color="never")

    engine_verdicts = _violations(events)
    mandatory = {(p, r) for p, r, level in engine_verdicts if level == "mandatory"}
    assert {
        ("memorystore-high-availability-in-production", "redis-shortcut"),
        ("memorystore-persistence-in-production", "redis-shortcut"),
        ("memorystore-transit-encryption-required", "redis-shortcut"),
    } <= mandatory
    assert "'redis-shortcut': tier must be STANDARD_HA in production" in str(failure.value)
    assert engine_verdicts == _check_verdicts("production", project / "Pulumi.production.yaml", config)


def _drift_report(engine: Engine, tmp_path: Path, work_dir: Path) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "redisguard.yaml"
    config.write_text(
        f"pulumi:\n  work_dir: {work_dir}\n  stacks: [staging]\n  backend_url: file://{engine.backend}\n"
    )
    return subprocess.run(
        [sys.executable, "-m", "redisguard.daemon.cli", "drift-report", "--config", str(config),
         "--engine", "pulumi", "--format", "json"],
        env=engine.subprocess_env(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_drift_report_through_the_real_cli_finds_exactly_the_out_of_band_changes(
    engine: Engine, staging: Stack, client: redis_v1.CloudRedisClient, tmp_path: Path
) -> None:
    work_dir = Path(staging.workspace.work_dir)
    in_sync = _drift_report(engine, tmp_path, work_dir)
    assert in_sync.returncode == 0, in_sync.stdout + in_sync.stderr

    live = _live(client)
    changed = redis_v1.Instance(name=live["redis-cache"].name, memory_size_gb=2, labels={**live["redis-cache"].labels, "team": "growth"})
    client.update_instance(update_mask=field_mask_pb2.FieldMask(paths=["memory_size_gb", "labels"]), instance=changed).result(timeout=60)
    client.delete_instance(name=live["redis-sessions"].name).result(timeout=60)
    auths = [client.get_instance_auth_string(name=i.name).auth_string for n, i in live.items() if n != "redis-sessions"]
    state_before = engine.state_file("staging").read_bytes()

    drifted = _drift_report(engine, tmp_path, work_dir)

    assert drifted.returncode == 2, drifted.stdout + drifted.stderr
    report = json.loads(drifted.stdout)
    (stack,) = report["stacks"]
    items = {item["resource"]: item for item in stack["items"]}
    assert set(items) == {"redis-cache", "redis-sessions"}, items
    assert items["redis-sessions"]["kind"] == "deleted"
    properties = {p["path"]: (p["expected"], p["actual"]) for p in items["redis-cache"]["properties"]}
    assert properties == {"memorySizeGb": (1, 2), "labels.team": ("platform", "growth")}
    for auth in auths:
        assert auth not in drifted.stdout and auth not in drifted.stderr
    assert engine.state_file("staging").read_bytes() == state_before  # refresh --preview-only wrote nothing


def test_a_version_and_size_change_updates_in_place_through_patch_then_upgrade(
    staging: Stack, client: redis_v1.CloudRedisClient, emulator: EmulatorHandle
) -> None:
    before = _live(client)["redis-sidekiq"]
    clusters = json.loads(staging.get_config("redis-fleet:redis").value)
    (sidekiq,) = [c for c in clusters if c["name"] == "redis-sidekiq"]
    assert (sidekiq["redis_version"], sidekiq["memory_gb"]) == ("REDIS_6_X", 2)
    sidekiq.update(redis_version="REDIS_7_0", memory_gb=3)
    staging.set_config("redis-fleet:redis", ConfigValue(json.dumps(clusters)))
    emulator.reset_counts()

    result = staging.up(color="never")

    assert result.summary.result == "succeeded"
    assert (result.summary.resource_changes or {}).get(OpType.UPDATE) == 1
    calls = emulator.request_counts()["redis"]
    # The provider's calls for this change: PATCH memorySizeGb, then :upgrade (no replacement).
    assert {rpc: n for rpc, n in calls.items() if not rpc.startswith("Get")} == {"UpdateInstance": 1, "UpgradeInstance": 1}
    assert calls["GetOperation"] >= 2
    after = _live(client)["redis-sidekiq"]
    assert (after.redis_version, after.memory_size_gb) == ("REDIS_7_0", 3)
    assert after.create_time == before.create_time and after.port == before.port


def test_destroy_honours_deletion_protection_until_it_is_turned_off_then_leaves_the_emulator_empty(
    staging: Stack, client: redis_v1.CloudRedisClient
) -> None:
    with pytest.raises(CommandError) as refused:
        staging.destroy(color="never")
    assert "deletion_protection" in str(refused.value)
    assert "redis-sidekiq" in _live(client)

    clusters = json.loads(staging.get_config("redis-fleet:redis").value)
    for cluster in clusters:
        cluster["deletion_protection"] = False
    staging.set_config("redis-fleet:redis", ConfigValue(json.dumps(clusters)))
    staging.up(color="never")
    staging.destroy(color="never")

    assert _live(client) == {}


def test_without_go_or_a_pulumi_install_these_tests_skip_with_one_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no `go` and no `pulumi` anywhere

    assert engine_bin_dirs() == (
        [],
        "go is not installed and no pulumi is on PATH: the real Pulumi engine cannot be built (./dev builds it)",
    )


def test_without_third_party_sources_the_plugins_come_from_a_pulumi_install_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user's clone has no ../shared/third_party: the plugins of a real Pulumi install on PATH
    serve, and with none of them the tests skip naming what is missing."""
    monkeypatch.setenv("REDISGUARD_THIRD_PARTY", str(tmp_path / "absent"))
    found, reason = engine_bin_dirs()
    if found:  # this machine has them on PATH after all
        return
    assert reason == (
        "pulumi-language-python, pulumi-language-nodejs, pulumi-resource-command not built and not on PATH: "
        "install Pulumi (no ../shared/third_party to build them from)"
    )
    install = tmp_path / "pulumi-install"
    install.mkdir()
    for name in ("pulumi-language-python", "pulumi-language-nodejs", "pulumi-resource-command"):
        (install / name).write_text("#!/bin/sh\n")
        (install / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{install}{os.pathsep}{os.environ['PATH']}")
    found, reason = engine_bin_dirs()
    assert (reason, found[1:]) == ("", [install])
