"""A team's deployed stack read from its backend (daemon/fleet/state.py), and judged by the pack as deployed (`policy-check --state`).

The team's TypeScript program (tests/fixtures/team_program/) is deployed once for the module by the
real CLI through the Node.js host against one emulator; every test reads that stack the way the
daemon would: `pulumi stack export` from the file:// backend, no passphrase, no provider plugin.
One test changes the deployment (`maintenance_start_minutes`); no other test looks at that value.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from redisguard.core.errors import ConfigError, PermanentError
from redisguard.core.pulumi import INSTANCE_TYPE, is_secret
from redisguard.daemon.config import PulumiSettings
from redisguard.daemon.fleet import state as fleet_state
from redisguard.daemon.fleet.state import read_stack_state
from tests.fixtures.emulator import EmulatorHandle
from tests.fixtures.engine_events import Verdicts, policy_verdicts
from tests.fixtures.processes import command_on_path
from tests.fixtures.pulumi_engine import TEAM_PROJECT, TEAM_REGION, Engine, team_program_copy
from tests.fixtures.repo import REPO

pytestmark = pytest.mark.slow

INSTANCE_ID = f"projects/{TEAM_PROJECT}/locations/{TEAM_REGION}/instances/redis-sidekiq"
PACK = REPO / "policies"
TRANSIT = "memorystore-transit-encryption-required"


@pytest.fixture(scope="module")
def emulator(team_emulator: EmulatorHandle) -> EmulatorHandle:
    return team_emulator


def _auth_string(emulator: EmulatorHandle) -> str:
    """The instance's AUTH string, from the API (what must never appear in anything read or said)."""
    auth: str = emulator.redis_client().get_instance_auth_string(name=INSTANCE_ID).auth_string
    assert auth
    return auth


@pytest.fixture(scope="module")
def program(engine: Engine, emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The team's program with its staging stack deployed by `pulumi up`."""
    work = team_program_copy(engine, tmp_path_factory.mktemp("state-program"), emulator.redis_endpoint)
    engine.pulumi_ok(work, "up", "--yes", "--stack", "staging")
    return work


@pytest.fixture
def reader_env(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """This process's environment as the daemon's: the engine's PATH and Pulumi home, and neither a
    backend URL (the config names it) nor the stack's passphrase (reading state needs none)."""
    engine.as_reader(monkeypatch)
    fleet_state.clear_cache()
    return engine


def _settings(engine: Engine, work_dir: Path) -> PulumiSettings:
    return PulumiSettings(work_dir=work_dir, stacks=("staging",), backend_url=f"file://{engine.backend}")


def _counting_pulumi(engine: Engine, folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `pulumi` first on PATH that logs each run to a file and runs the real CLI; returns the log."""
    runs = folder / "pulumi-runs.log"
    command_on_path(folder, "pulumi", f'#!/bin/sh\necho "$*" >> {runs}\nexec {engine.bin_dirs[0] / "pulumi"} "$@"\n', monkeypatch)
    return runs


def test_reads_the_deployed_instance_with_its_inputs_id_and_urn(reader_env: Engine, program: Path) -> None:
    state = read_stack_state(_settings(reader_env, program), "staging")

    (instance,) = state.of_type(INSTANCE_TYPE)
    assert (state.stack, state.cached) == ("staging", False)
    assert instance.name == "redis-sidekiq"
    assert instance.urn == f"urn:pulumi:staging::ampledash-infra::{INSTANCE_TYPE}::redis-sidekiq"
    assert instance.id == INSTANCE_ID
    assert instance.provider is not None and instance.provider.startswith("urn:pulumi:staging::ampledash-infra::pulumi:providers:gcp::")
    assert instance.inputs["memorySizeGb"] == 2
    assert instance.inputs["redisConfigs"] == {"maxmemory-policy": "noeviction", "activedefrag": "yes"}
    (window,) = instance.inputs["maintenancePolicy"]["weeklyMaintenanceWindows"]
    assert (window["day"], window["startTime"]["hours"]) == ("SUNDAY", 8)
    assert instance.inputs["transitEncryptionMode"] == "DISABLED"  # the provider's default, filled in by its Check
    assert {r.type for r in state.resources} >= {"pulumi:pulumi:Stack", INSTANCE_TYPE}


def test_the_auth_string_stays_encrypted_in_what_is_read(
    reader_env: Engine, program: Path, emulator: EmulatorHandle
) -> None:
    state = read_stack_state(_settings(reader_env, program), "staging")

    (instance,) = state.of_type(INSTANCE_TYPE)
    assert is_secret(instance.outputs["authString"])
    assert "ciphertext" in instance.outputs["authString"] and "plaintext" not in instance.outputs["authString"]
    assert _auth_string(emulator) not in json.dumps([dict(r.outputs) | dict(r.inputs) for r in state.resources], default=str)


def test_an_unchanged_stack_is_not_exported_again_and_a_changed_one_is(
    reader_env: Engine, program: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = _counting_pulumi(reader_env, tmp_path, monkeypatch)
    settings = _settings(reader_env, program)

    first = read_stack_state(settings, "staging")
    again = read_stack_state(settings, "staging")

    assert (first.cached, again.cached) == (False, True)
    assert again.resources == first.resources and again.version == first.version
    assert runs.read_text().splitlines() == ["stack export --stack staging --non-interactive --color never"]

    reader_env.pulumi_ok(program, "config", "set", "--path", "ampledash-infra:redis[0].maintenance_start_minutes", "30",
            "--stack", "staging")  # fmt: skip
    reader_env.pulumi_ok(program, "up", "--yes", "--stack", "staging")
    changed = read_stack_state(settings, "staging")

    assert changed.cached is False and changed.version != first.version
    (instance,) = changed.of_type(INSTANCE_TYPE)
    (window,) = instance.inputs["maintenancePolicy"]["weeklyMaintenanceWindows"]
    assert window["startTime"]["minutes"] == 30
    assert len(runs.read_text().splitlines()) == 2


def test_an_unknown_stack_is_an_error_naming_it_with_a_suggestion(
    reader_env: Engine, program: Path, emulator: EmulatorHandle
) -> None:
    with pytest.raises(PermanentError) as caught:
        read_stack_state(_settings(reader_env, program), "stagin")

    message = str(caught.value)
    assert "'stagin' not found" in message and "did you mean staging?" in message, message
    assert _auth_string(emulator) not in message


def test_without_a_project_folder_the_stack_is_named_in_full(reader_env: Engine, program: Path, tmp_path: Path) -> None:
    settings = _settings(reader_env, tmp_path)

    with pytest.raises(ConfigError, match=r"holds no Pulumi\.yaml, so the stack must be named in full as org/project/stack"):
        read_stack_state(settings, "staging")
    state = read_stack_state(settings, "organization/ampledash-infra/staging")

    assert [r.name for r in state.of_type(INSTANCE_TYPE)] == ["redis-sidekiq"]


def test_without_the_pulumi_cli_the_error_says_so(
    reader_env: Engine, program: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(PermanentError, match="the pulumi CLI was not found on PATH"):
        read_stack_state(_settings(reader_env, program), "staging")


# --- policy-check on what is deployed ---------------------------------------------------------


def _policy_check(engine: Engine, tmp_path: Path, program: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Verdicts]:
    """`redisguard policy-check ARGS --format json` as the team runs it (the installed command, a
    redisguard.yaml naming their program, stack and backend; no passphrase), and its verdicts."""
    config = tmp_path / "redisguard.yaml"
    settings = {"work_dir": str(program), "stacks": ["staging"], "backend_url": f"file://{engine.backend}"}
    config.write_text(yaml.safe_dump({"pulumi": settings}))
    env = {k: v for k, v in engine.subprocess_env().items() if k not in ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_BACKEND_URL")}
    command = [str(Path(sys.executable).parent / "redisguard"), "policy-check", "--config", str(config), *args, "--format", "json"]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert done.stdout.startswith("{"), done.stdout + done.stderr
    (stack,) = json.loads(done.stdout)["stacks"]
    assert stack["error"] is None, stack["error"]
    return done, {(v["policy"], v["resource"], v["level"]) for v in stack["violations"]}


def test_policy_check_of_the_deployed_stack_blocks_the_entry_without_tls_as_pulumi_policy_analyze_does(
    engine: Engine, program: Path, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    checked, verdicts = _policy_check(engine, tmp_path, program, "--state", "--stack", "staging")
    analyze = engine.pulumi(program, "policy", "analyze", "--stack", "staging", "--policy-pack", str(PACK), "--json")

    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert {(name, resource) for name, resource, level in verdicts if level == "mandatory"} == {(TRANSIT, "redis-sidekiq")}
    assert {level for _, _, level in verdicts} == {"mandatory", "advisory"}
    assert analyze.returncode != 0 and "mandatory policy violations were found" in analyze.stderr, analyze.stderr
    assert verdicts == policy_verdicts(analyze.stdout)
    assert json.loads(checked.stdout)["stacks"][0]["state"] == "backend"
    assert _auth_string(emulator) not in checked.stdout + checked.stderr


def test_policy_check_of_an_export_file_gives_the_same_verdicts(engine: Engine, program: Path, tmp_path: Path) -> None:
    export = tmp_path / "staging-export.json"
    engine.pulumi_ok(program, "stack", "export", "--stack", "staging", "--file", str(export))

    from_file, file_verdicts = _policy_check(engine, tmp_path, program, "--state-file", str(export))
    _, backend_verdicts = _policy_check(engine, tmp_path, program, "--state")

    assert from_file.returncode == 2, from_file.stdout + from_file.stderr
    assert file_verdicts == backend_verdicts and (TRANSIT, "redis-sidekiq", "mandatory") in file_verdicts
    (stack,) = json.loads(from_file.stdout)["stacks"]
    assert (stack["stack"], stack["state"]) == ("staging", str(export))
