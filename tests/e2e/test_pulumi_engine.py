"""The real Pulumi engine runs the shipped program, the policy pack and the drift report against the emulator, as a user does.

Everything goes through the real `pulumi` CLI in `program/` of a copy of the repository laid out
as a user's clone (tests.fixtures.pulumi_engine.user_checkout): `pulumi stack init`, `config set`,
`preview --policy-pack ../policies`, `up`, `refresh --preview-only`, `destroy`, with the shipped
Pulumi.yaml and PulumiPolicy.yaml, so the real Python language host starts the program and the
pack from `../.venv` with the uv toolchain. One emulator and one staging stack for the module; the
tests run in file order and build on each other (up, the pack's verdicts, out-of-band changes and
the drift report, an in-place update, destroy).
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

from redisguard.policies.check import judge_stacks
from tests.fixtures.emulator import EmulatorHandle, start_emulator
from tests.fixtures.engine_events import Verdicts, json_lines, policy_verdicts
from tests.fixtures.policy_inputs import BAD_PRODUCTION
from tests.fixtures.pulumi_engine import Engine, engine_bin_dirs, user_checkout
from tests.fixtures.repo import STAGING_INSTANCES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory, engine: Engine) -> Iterator[EmulatorHandle]:
    handle = start_emulator(tmp_path_factory.mktemp("engine-emulator"), project="redisguard-staging")
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def client(emulator: EmulatorHandle) -> redis_v1.CloudRedisClient:
    return emulator.redis_client()


def _ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"
    return result


def _new_stack(engine: Engine, program: Path, stack: str, emulator: EmulatorHandle) -> None:
    """`pulumi stack init` on the stack file in program/, and the one setting a user would not
    have: the provider's endpoint pointed at the emulator."""
    _ok(engine.pulumi(program, "stack", "init", stack))
    _ok(engine.pulumi(program, "config", "set", "gcp:redisCustomEndpoint", f"{emulator.redis_endpoint}/v1/"))


@pytest.fixture(scope="module")
def staging(engine: Engine, emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """program/ of a user's checkout, with the staging stack selected."""
    program = user_checkout(tmp_path_factory.mktemp("staging") / "redisguard") / "program"
    _new_stack(engine, program, "staging", emulator)
    return program


def _parent(project: str = "redisguard-staging") -> str:
    return f"projects/{project}/locations/europe-west1"


def _live(client: redis_v1.CloudRedisClient) -> dict[str, redis_v1.Instance]:
    return {i.name.rsplit("/", 1)[-1]: i for i in client.list_instances(parent=_parent())}


def _update_summary(text: str) -> dict[str, Any]:
    """The summary event of the update (not of its preview) in `pulumi up --json`'s output."""
    (summary,) = [
        e["summaryEvent"] for e in json_lines(text) if "summaryEvent" in e and not e["summaryEvent"].get("isPreview")
    ]
    return dict(summary)


def test_up_creates_the_declared_instances_with_the_auth_string_only_as_a_secret(
    engine: Engine, staging: Path, client: redis_v1.CloudRedisClient
) -> None:
    up = _ok(engine.pulumi(staging, "up", "--yes"))

    live = _live(client)
    assert set(live) == STAGING_INSTANCES
    sidekiq = live["redis-sidekiq"]
    assert (sidekiq.memory_size_gb, sidekiq.tier.name, sidekiq.redis_version) == (2, "BASIC", "REDIS_6_X")
    assert sidekiq.auth_enabled is True
    assert dict(sidekiq.redis_configs) == {"maxmemory-policy": "noeviction", "activedefrag": "yes"}
    assert live["redis-sessions"].tier.name == "STANDARD_HA"
    assert dict(live["redis-cache"].labels) == {"env": "staging", "team": "platform", "service": "cache"}

    # Outputs as documented: host, port, zone; the AUTH string masked wherever it is shown.
    outputs = json.loads(_ok(engine.pulumi(staging, "stack", "output", "--json")).stdout)
    assert set(outputs) == STAGING_INSTANCES
    cache = outputs["redis-cache"]
    assert cache["host"] == "127.0.0.1" and cache["port"] == live["redis-cache"].port
    assert cache["current_location_id"] == live["redis-cache"].current_location_id
    assert cache["auth_string"] == "[secret]"
    auth = client.get_instance_auth_string(name=live["redis-cache"].name).auth_string
    state_text = engine.state_file("staging").read_text()
    assert auth and auth not in state_text  # encrypted with the passphrase in the state
    assert auth not in up.stdout and auth not in up.stderr
    shown = json.loads(_ok(engine.pulumi(staging, "stack", "output", "--json", "--show-secrets")).stdout)
    assert shown["redis-cache"]["auth_string"] == auth  # only with --show-secrets


def _preview_with_pack(engine: Engine, program: Path, config: str) -> tuple[subprocess.CompletedProcess[str], Verdicts]:
    """`pulumi preview --policy-pack ../policies --policy-pack-config ../policies/config/<config>`,
    its engine events streamed as JSON (the switch `pulumi preview --help` names)."""
    result = engine.pulumi(
        program, "preview", "--policy-pack", "../policies", "--policy-pack-config", f"../policies/config/{config}",
        "--json", env={"PULUMI_ENABLE_STREAMING_JSON_PREVIEW": "true"},
    )  # fmt: skip
    return result, policy_verdicts(result.stdout)


def _check_verdicts(stack: str, stack_file: Path, config: Path | None) -> Verdicts:
    (verdict,) = judge_stacks([(stack, stack_file)], config).stacks
    assert verdict.error is None, verdict.error
    return {(v.policy, v.resource, v.level) for v in verdict.violations}


def test_shipped_staging_stack_passes_the_pack_under_the_real_engine_as_policy_check_says(
    engine: Engine, staging: Path
) -> None:
    result, engine_verdicts = _preview_with_pack(engine, staging, "staging.json")

    assert result.returncode == 0, result.stdout + result.stderr
    assert engine_verdicts, "the pack ran: staging gets advisory findings"
    assert {level for _, _, level in engine_verdicts} == {"advisory"}
    config = staging.parent / "policies" / "config" / "staging.json"
    assert engine_verdicts == _check_verdicts("staging", staging / "Pulumi.staging.yaml", config)


def test_pulumi_policy_analyze_of_the_deployed_stack_agrees_with_policy_check(engine: Engine, staging: Path) -> None:
    """A second witness: the CLI judges the deployed state (no program, no provider calls)."""
    analyze = engine.pulumi(
        staging, "policy", "analyze", "--stack", "staging", "--policy-pack", "../policies",
        "--policy-pack-config", "../policies/config/staging.json", "--json",
    )  # fmt: skip

    assert analyze.returncode == 0, analyze.stdout + analyze.stderr  # advisory findings only
    analyzed = policy_verdicts(analyze.stdout)
    config = staging.parent / "policies" / "config" / "staging.json"
    assert analyzed == _check_verdicts("staging", staging / "Pulumi.staging.yaml", config)


def test_a_bad_production_cluster_is_blocked_by_the_real_engine_with_the_same_verdicts(
    engine: Engine, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    program = user_checkout(tmp_path / "redisguard") / "program"
    (program / "Pulumi.production.yaml").write_text(BAD_PRODUCTION)
    _new_stack(engine, program, "production", emulator)

    result, engine_verdicts = _preview_with_pack(engine, program, "production.json")

    assert result.returncode != 0
    mandatory = {(p, r) for p, r, level in engine_verdicts if level == "mandatory"}
    assert {
        ("memorystore-high-availability-in-production", "redis-shortcut"),
        ("memorystore-persistence-in-production", "redis-shortcut"),
        ("memorystore-transit-encryption-required", "redis-shortcut"),
    } <= mandatory
    assert "'redis-shortcut': tier must be STANDARD_HA in production" in result.stdout
    config = program.parent / "policies" / "config" / "production.json"
    assert engine_verdicts == _check_verdicts("production", program / "Pulumi.production.yaml", config)


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
    engine: Engine, staging: Path, client: redis_v1.CloudRedisClient, tmp_path: Path, emulator: EmulatorHandle
) -> None:
    emulator.reset_counts()
    in_sync = _drift_report(engine, tmp_path, staging)
    assert in_sync.returncode == 0, in_sync.stdout + in_sync.stderr
    # What a refresh asks Google for (docs/daemon.md's custom role for drift_pulumi): the gcp
    # provider's read of each instance, and of each one's AUTH string (AUTH is always on here).
    assert emulator.request_counts()["redis"] == {
        "GetInstance": len(STAGING_INSTANCES), "GetInstanceAuthString": len(STAGING_INSTANCES),
    }  # fmt: skip

    live = _live(client)
    changed = redis_v1.Instance(name=live["redis-cache"].name, memory_size_gb=2, labels={**live["redis-cache"].labels, "team": "growth"})
    client.update_instance(update_mask=field_mask_pb2.FieldMask(paths=["memory_size_gb", "labels"]), instance=changed).result(timeout=60)
    client.delete_instance(name=live["redis-sessions"].name).result(timeout=60)
    auths = [client.get_instance_auth_string(name=i.name).auth_string for n, i in live.items() if n != "redis-sessions"]
    state_before = engine.state_file("staging").read_bytes()

    drifted = _drift_report(engine, tmp_path, staging)

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

    # What the report runs, typed by hand: the same two resources, and still nothing written.
    by_hand = _ok(engine.pulumi(staging, "refresh", "--preview-only"))
    assert "redis-cache" in by_hand.stdout and "redis-sessions" in by_hand.stdout
    assert "~ 1 to update" in by_hand.stdout and "- 1 to delete" in by_hand.stdout, by_hand.stdout
    assert engine.state_file("staging").read_bytes() == state_before


def test_a_refresh_without_the_get_auth_string_permission_fails_naming_it(
    engine: Engine, staging: Path, tmp_path: Path, emulator: EmulatorHandle
) -> None:
    """What `roles/redis.viewer` alone gets: the provider's read of an auth-enabled instance is refused."""
    emulator.inject_fault("redis", "403", method="GetInstanceAuthString")
    try:
        denied = _drift_report(engine, tmp_path, staging)
    finally:
        emulator.clear_faults()

    assert denied.returncode == 1, denied.stdout + denied.stderr
    (stack,) = json.loads(denied.stdout)["stacks"]
    assert stack["status"] == "error"
    assert "Error reading AuthString" in stack["error"] and "redis.instances.getAuthString" in stack["error"], stack


def _cluster_index(engine: Engine, program: Path, name: str) -> tuple[int, dict[str, Any]]:
    clusters = json.loads(_ok(engine.pulumi(program, "config", "get", "redis-fleet:redis", "--json")).stdout)
    value = clusters["value"] if isinstance(clusters, dict) else clusters
    if isinstance(value, str):
        value = json.loads(value)
    return next((i, c) for i, c in enumerate(value) if c["name"] == name)


def test_a_version_and_size_change_updates_in_place_through_patch_then_upgrade(
    engine: Engine, staging: Path, client: redis_v1.CloudRedisClient, emulator: EmulatorHandle
) -> None:
    before = _live(client)["redis-sidekiq"]
    index, sidekiq = _cluster_index(engine, staging, "redis-sidekiq")
    assert (sidekiq["redis_version"], sidekiq["memory_gb"]) == ("REDIS_6_X", 2)
    _ok(engine.pulumi(staging, "config", "set", "--path", f"redis[{index}].redis_version", "REDIS_7_0"))
    _ok(engine.pulumi(staging, "config", "set", "--path", f"redis[{index}].memory_gb", "3"))
    emulator.reset_counts()

    up = _ok(engine.pulumi(staging, "up", "--yes", "--skip-preview", "--json"))

    summary = _update_summary(up.stdout)
    assert summary["result"] == "succeeded"
    assert summary["resourceChanges"].get("update") == 1
    calls = emulator.request_counts()["redis"]
    # The provider's calls for this change: PATCH memorySizeGb, then :upgrade (no replacement).
    assert {rpc: n for rpc, n in calls.items() if not rpc.startswith("Get")} == {"UpdateInstance": 1, "UpgradeInstance": 1}
    assert calls["GetOperation"] >= 2
    after = _live(client)["redis-sidekiq"]
    assert (after.redis_version, after.memory_size_gb) == ("REDIS_7_0", 3)
    assert after.create_time == before.create_time and after.port == before.port


def test_destroy_honours_deletion_protection_until_it_is_turned_off_then_leaves_the_emulator_empty(
    engine: Engine, staging: Path, client: redis_v1.CloudRedisClient
) -> None:
    refused = engine.pulumi(staging, "destroy", "--yes")
    assert refused.returncode != 0
    assert "deletion_protection" in refused.stdout + refused.stderr
    assert "redis-sidekiq" in _live(client)

    index, _ = _cluster_index(engine, staging, "redis-sidekiq")
    _ok(engine.pulumi(staging, "config", "set", "--path", f"redis[{index}].deletion_protection", "false"))
    _ok(engine.pulumi(staging, "up", "--yes", "--skip-preview"))  # the preview is test_up's; here only the change counts
    _ok(engine.pulumi(staging, "destroy", "--yes"))

    assert _live(client) == {}


def test_without_the_virtualenv_the_update_fails_saying_pulumi_could_not_create_it(
    engine: Engine, tmp_path: Path
) -> None:
    """A clone where `uv sync` has not run: with `toolchain: uv` the Python host runs `uv sync`
    itself to make ../.venv before the program starts. Offline, with nothing cached, that fails,
    and the user sees uv's reason under Pulumi's "error creating virtual environment"."""
    program = user_checkout(tmp_path / "redisguard", venv=False) / "program"
    no_cache = {"UV_CACHE_DIR": str(tmp_path / "empty-uv-cache")}
    _ok(engine.pulumi(program, "stack", "init", "no-venv"))

    result = engine.pulumi(program, "preview", env=no_cache)

    assert result.returncode != 0
    assert "error creating virtual environment" in result.stdout
    assert "Network connectivity is disabled" in result.stdout  # uv's reason: it would have downloaded the lock's packages


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
