"""An instance made by hand, adopted into a team's own Pulumi program (TypeScript) through the import file redisguard writes.

The team's program (tests/fixtures/team_program/) is deployed once for the module by the real CLI
through the Node.js host against one emulator; an instance is then created out of band with
`google-cloud-redis`. `redisguard codify --import-file` writes the import file for the stack (read
from its state: the team has no stack file in redisguard's format), the real `pulumi import --file`
adopts the instance and generates its TypeScript from the stand-in gcp provider's schema, and that
code added to the program previews as no change. Each fixture is one step, so no test depends on
another's order.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from google.cloud import redis_v1
from google.type import dayofweek_pb2, timeofday_pb2

from tests.fixtures.emulator import EmulatorHandle
from tests.fixtures.pulumi_engine import Engine, team_program_copy
from tests.fixtures.wire import INSTANCE_TYPE

pytestmark = pytest.mark.slow

ORPHAN = "redis-orphan"
ORPHAN_URN = f"urn:pulumi:staging::ampledash-infra::{INSTANCE_TYPE}::{ORPHAN}"


@pytest.fixture(scope="module")
def program(engine: Engine, team_emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The team's program with its staging stack deployed, and an instance made by hand beside it."""
    work = team_program_copy(engine, tmp_path_factory.mktemp("import-program"), team_emulator.redis_endpoint)
    engine.pulumi_ok(work, "up", "--yes", "--skip-preview", "--stack", "staging")
    window = redis_v1.WeeklyMaintenanceWindow(day=dayofweek_pb2.SATURDAY, start_time=timeofday_pb2.TimeOfDay(hours=5, minutes=30))
    orphan = redis_v1.Instance(
        tier=redis_v1.Instance.Tier.STANDARD_HA, memory_size_gb=3, redis_version="REDIS_7_0", auth_enabled=True,
        redis_configs={"maxmemory-policy": "allkeys-lru"}, labels={"team": "ops"},
        persistence_config=redis_v1.PersistenceConfig(persistence_mode="RDB", rdb_snapshot_period="SIX_HOURS"),
        maintenance_policy=redis_v1.MaintenancePolicy(weekly_maintenance_window=[window]),
    )  # fmt: skip
    team_emulator.redis_client().create_instance(parent=team_emulator.parent(), instance_id=ORPHAN, instance=orphan).result(timeout=60)
    return work


@dataclass(frozen=True)
class Imported:
    import_file: Path
    said: str
    """What redisguard printed on stderr."""
    run: subprocess.CompletedProcess[str]
    """`pulumi import --file`."""


@pytest.fixture(scope="module")
def imported(
    engine: Engine, team_emulator: EmulatorHandle, program: Path, tmp_path_factory: pytest.TempPathFactory
) -> Imported:
    """`redisguard codify --stack staging --import-file F` with the team's redisguard.yaml (its stack read from
    its state: no stack file in redisguard's format), then `pulumi import --file F --stack staging --yes`."""
    folder = tmp_path_factory.mktemp("import-file")
    config = folder / "redisguard.yaml"
    config.write_text(yaml.safe_dump({
        "pulumi": {"work_dir": str(program), "stacks": ["staging"], "backend_url": f"file://{engine.backend}"},
        "gcp": {"redis_endpoint": team_emulator.redis_endpoint, "request_timeout_seconds": 5},
    }))  # fmt: skip
    path = folder / "redis-import.json"
    done = subprocess.run(
        [sys.executable, "-m", "redisguard.daemon.cli", "codify", "--config", str(config), "--stack", "staging", "--import-file", str(path)],
        capture_output=True, text=True, timeout=120, cwd=folder, env=engine.reader_env(),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    return Imported(path, done.stderr, engine.pulumi_ok(program, "import", "--file", str(path), "--stack", "staging", "--yes"))


def _generated_code(stdout: str) -> str:
    """The program code `pulumi import` prints after its summary, from its first `import` line."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("import * as"))
    return "\n".join(lines[start:]) + "\n"


def test_the_import_file_names_the_hand_made_instance_by_the_gcp_providers_import_id(imported: Imported, team_emulator: EmulatorHandle) -> None:
    assert json.loads(imported.import_file.read_text()) == {
        "resources": [{"type": INSTANCE_TYPE, "name": ORPHAN, "id": team_emulator.instance_name(ORPHAN)}]
    }
    assert f"pulumi import --file {imported.import_file} --stack staging" in imported.said


def test_pulumi_import_adopts_the_instance_into_the_stacks_state(imported: Imported, engine: Engine, program: Path, team_emulator: EmulatorHandle) -> None:
    exported = json.loads(engine.pulumi_ok(program, "stack", "export", "--stack", "staging").stdout)

    resources = {r["urn"]: r for r in exported["deployment"]["resources"]}
    adopted = resources[ORPHAN_URN]
    assert adopted["id"] == team_emulator.instance_name(ORPHAN) and adopted.get("protect") is True
    assert (adopted["inputs"]["memorySizeGb"], adopted["inputs"]["tier"]) == (3, "STANDARD_HA")
    sidekiq = resources[f"urn:pulumi:staging::ampledash-infra::{INSTANCE_TYPE}::redis-sidekiq"]
    assert adopted["provider"] == sidekiq["provider"]  # the stack's own default gcp provider


def test_pulumi_import_prints_typescript_declaring_the_instance_as_it_runs(imported: Imported) -> None:
    code = _generated_code(imported.run.stdout)

    assert code.startswith('import * as pulumi from "@pulumi/pulumi";\nimport * as gcp from "@pulumi/gcp";\n')
    assert 'new gcp.redis.Instance("redis-orphan", {' in code
    for line in ("memorySizeGb: 3,", 'tier: "STANDARD_HA",', 'region: "europe-west1",', 'redisVersion: "REDIS_7_0",',
                 '"maxmemory-policy": "allkeys-lru",', 'day: "SATURDAY",', 'persistenceMode: "RDB",'):  # fmt: skip
        assert f" {line}\n" in code, line
    assert "createTime" not in code and "authString" not in code  # outputs are not inputs


def test_the_generated_code_added_to_the_program_previews_as_no_change(imported: Imported, engine: Engine, program: Path) -> None:
    code = _generated_code(imported.run.stdout)
    body = "".join(line for line in code.splitlines(keepends=True) if not line.startswith("import "))  # index.ts has them
    index = program / "index.ts"
    index.write_text(index.read_text() + "\n" + body)

    preview = json.loads(engine.pulumi_ok(program, "preview", "--stack", "staging", "--json").stdout)

    # The stack and both instances unchanged: the program now registers the adopted one exactly as it runs
    # (left out, it would be a delete; any input differing, an update or a replace).
    assert preview["changeSummary"] == {"same": 3}, preview["steps"]
