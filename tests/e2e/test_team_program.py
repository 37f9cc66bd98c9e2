"""A team's own Pulumi program (TypeScript, tests/fixtures/team_program/) under the real engine and redisguard.

The real CLI runs it through the real Node.js host (TypeScript compiled by the fixture's pinned
typescript, through @pulumi/pulumi's vendored ts-node), with the stand-in gcp provider against one
emulator; the real Python host starts redisguard's pack from the repository's policies/ folder,
exactly as `pulumi preview --policy-pack <redisguard>/policies` does for a team. One staging
stack for the module, deployed once (the `deployed` fixture); no test depends on another's order.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.cloud import redis_v1
from google.protobuf import field_mask_pb2
from google.type import dayofweek_pb2

from tests.fixtures.emulator import EmulatorHandle
from tests.fixtures.pulumi_engine import TEAM_PROGRAM, TEAM_PROJECT, TEAM_REGION, Engine, team_program_copy
from tests.fixtures.repo import REPO

pytestmark = pytest.mark.slow

FIXTURE = TEAM_PROGRAM
PACK = REPO / "policies"
PROJECT = TEAM_PROJECT
REGION = TEAM_REGION
TRANSIT = "memorystore-transit-encryption-required"


@pytest.fixture(scope="module")
def emulator(team_emulator: EmulatorHandle) -> EmulatorHandle:
    return team_emulator


@pytest.fixture(scope="module")
def client(emulator: EmulatorHandle) -> redis_v1.CloudRedisClient:
    return emulator.redis_client()


def _pulumi(
    engine: Engine, cwd: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(engine.bin_dirs[0] / "pulumi"), *args, "--non-interactive", "--color", "never"],
        cwd=cwd, env={**engine.subprocess_env(), **(env or {})}, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if check:
        assert done.returncode == 0, f"pulumi {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def program(engine: Engine, emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the team's program (its installed node_modules linked, not copied) with a staging
    stack whose gcp endpoint is the emulator, set the way the team would: `pulumi config set`."""
    return team_program_copy(engine, tmp_path_factory.mktemp("team-program"), emulator.redis_endpoint)


def _policy_config(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "staging.json"
    path.write_text(json.dumps(document))
    return path


def _preview(engine: Engine, program: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], set[tuple[str, str, str]]]:
    """`pulumi preview --policy-pack <repo>/policies` and the verdicts it reported, read from its streamed engine events."""
    done = _pulumi(
        engine, program, "preview", "--stack", "staging", "--policy-pack", str(PACK), "--json", *extra,
        check=False, env={"PULUMI_ENABLE_STREAMING_JSON_PREVIEW": "true"},
    )  # one engine event per line
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert events, f"the engine did not start:\n{done.stdout}\n{done.stderr}"
    verdicts = set()
    for event in events:
        policy = event.get("policyEvent")
        if policy is not None:
            resource = policy.get("resourceUrn", "").rsplit("::", 1)[-1]
            verdicts.add((policy["policyName"], resource, policy["enforcementLevel"]))
    return done, verdicts


def test_the_pack_blocks_the_teams_entry_without_tls_with_the_mandatory_transit_encryption_policy(
    engine: Engine, program: Path, tmp_path: Path
) -> None:
    done, verdicts = _preview(engine, program)

    assert done.returncode != 0, done.stdout
    mandatory = {(name, resource) for name, resource, level in verdicts if level == "mandatory"}
    assert mandatory == {(TRANSIT, "redis-sidekiq")}, verdicts
    assert "transitEncryptionMode must be SERVER_AUTHENTICATION" in done.stdout


def test_a_policy_config_that_relaxes_transit_encryption_for_staging_lets_the_preview_pass(
    engine: Engine, program: Path, tmp_path: Path
) -> None:
    config = _policy_config(tmp_path, {TRANSIT: "advisory"})

    done, verdicts = _preview(engine, program, "--policy-pack-config", str(config))

    assert done.returncode == 0, done.stdout + done.stderr
    assert (TRANSIT, "redis-sidekiq", "advisory") in verdicts
    assert {level for _, _, level in verdicts} == {"advisory"}


def _live(client: redis_v1.CloudRedisClient) -> dict[str, redis_v1.Instance]:
    parent = f"projects/{PROJECT}/locations/{REGION}"
    return {i.name.rsplit("/", 1)[-1]: i for i in client.list_instances(parent=parent)}


@pytest.fixture(scope="module")
def deployed(engine: Engine, program: Path, tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    """`pulumi up` of the team's staging stack, judged by the pack with transit encryption relaxed."""
    config = _policy_config(tmp_path_factory.mktemp("team-policy-config"), {TRANSIT: "advisory"})
    return _pulumi(
        engine, program, "up", "--yes", "--stack", "staging", "--policy-pack", str(PACK), "--policy-pack-config", str(config)
    )


def test_up_deploys_the_teams_program_to_the_emulator(
    deployed: subprocess.CompletedProcess[str], client: redis_v1.CloudRedisClient
) -> None:
    live = _live(client)

    assert set(live) == {"redis-sidekiq"}, deployed.stdout
    sidekiq = live["redis-sidekiq"]
    assert (sidekiq.memory_size_gb, sidekiq.tier.name, sidekiq.redis_version) == (2, "BASIC", "REDIS_6_X")
    assert sidekiq.auth_enabled is True and sidekiq.display_name == "redis-sidekiq"
    assert dict(sidekiq.redis_configs) == {"maxmemory-policy": "noeviction", "activedefrag": "yes"}
    (window,) = sidekiq.maintenance_policy.weekly_maintenance_window
    assert (window.day, window.start_time.hours, window.start_time.minutes) == (dayofweek_pb2.SUNDAY, 8, 0)
    assert sidekiq.transit_encryption_mode.name != "SERVER_AUTHENTICATION"


def _drift_report(engine: Engine, tmp_path: Path, work_dir: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`redisguard drift-report --engine pulumi` as the team would run it: the installed command,
    a redisguard.yaml naming their program's folder, their stack and the engine's file:// backend."""
    config = tmp_path / "redisguard.yaml"
    pulumi_settings = {"work_dir": str(work_dir), "stacks": ["staging"], "backend_url": f"file://{engine.backend}"}
    config.write_text(yaml.safe_dump({"pulumi": pulumi_settings}))
    command = [str(Path(sys.executable).parent / "redisguard"), "drift-report", "--config", str(config), "--engine", "pulumi", "--format", "json"]
    env = env or engine.subprocess_env()
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)


def _path_without_node(engine: Engine, folder: Path) -> str:
    """The engine's PATH with Node.js (node, npm, npx) taken out, as the image has it: the system
    folders are replaced by `folder`, which links everything else they hold."""
    system = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
    folder.mkdir()
    for directory in system:
        for tool in Path(directory).iterdir() if Path(directory).is_dir() else ():
            if tool.name not in ("node", "nodejs", "npm", "npx") and not (folder / tool.name).exists():
                (folder / tool.name).symlink_to(tool)
    kept = [p for p in engine.subprocess_env()["PATH"].split(os.pathsep) if p not in system and not (Path(p) / "node").exists()]
    path = os.pathsep.join([*kept, str(folder)])
    assert shutil.which("node", path=path) is None
    return path


def test_a_refresh_of_the_teams_program_needs_no_node_on_path(
    engine: Engine, program: Path, deployed: subprocess.CompletedProcess[str], tmp_path: Path
) -> None:
    """The image ships the Node.js language host but no Node.js (Dockerfile, docs/deployment.md):
    `pulumi refresh` of a TypeScript program starts the host, which reads the program's packages
    without running node, so drift_pulumi works there on the team's stack."""
    env = {**engine.subprocess_env(), "PATH": _path_without_node(engine, tmp_path / "bin")}
    done = _drift_report(engine, tmp_path, program, env)
    assert done.returncode == 0, done.stdout + done.stderr
    (stack,) = json.loads(done.stdout)["stacks"]
    assert (stack["engine"], stack["status"]) == ("pulumi", "in_sync")


def test_drift_report_on_the_teams_stack_finds_an_out_of_band_change(
    engine: Engine, program: Path, deployed: subprocess.CompletedProcess[str], client: redis_v1.CloudRedisClient,
    tmp_path: Path,
) -> None:  # fmt: skip
    in_sync = _drift_report(engine, tmp_path, program)
    assert in_sync.returncode == 0, in_sync.stdout + in_sync.stderr

    sidekiq = _live(client)["redis-sidekiq"]
    changed = redis_v1.Instance(name=sidekiq.name, memory_size_gb=3)
    client.update_instance(update_mask=field_mask_pb2.FieldMask(paths=["memory_size_gb"]), instance=changed).result(timeout=60)
    try:
        drifted = _drift_report(engine, tmp_path, program)
    finally:  # put it back: the deployed stack stays as the program declares it
        restored = redis_v1.Instance(name=sidekiq.name, memory_size_gb=2)
        client.update_instance(update_mask=field_mask_pb2.FieldMask(paths=["memory_size_gb"]), instance=restored).result(timeout=60)

    assert drifted.returncode == 2, drifted.stdout + drifted.stderr
    report = json.loads(drifted.stdout)
    (stack,) = report["stacks"]
    (item,) = stack["items"]
    assert item["resource"] == "redis-sidekiq"
    assert {p["path"]: (p["expected"], p["actual"]) for p in item["properties"]} == {"memorySizeGb": (2, 3)}
    auth = client.get_instance_auth_string(name=sidekiq.name).auth_string
    assert auth and auth not in drifted.stdout and auth not in drifted.stderr


def test_the_fixture_pins_its_packages_through_its_lock_file() -> None:
    """Exact versions in package.json, and the lock file (what `npm ci` installs) holds the same ones."""
    lock = json.loads((FIXTURE / "package-lock.json").read_text())["packages"]
    manifest = json.loads((FIXTURE / "package.json").read_text())
    for name, version in {**manifest["dependencies"], **manifest["devDependencies"]}.items():
        assert lock[f"node_modules/{name}"]["version"] == version, name
