"""The redis-fleet Pulumi program under the SDK's mocks: inputs, stack files, secrets and beta flags."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pulumi
import pytest
import yaml

from redisguard.program import fleet
from redisguard.program.config import load_stack_file
from tests.fixtures.pulumi_program import (
    COMMAND_TYPE,
    PROGRAM_DIR,
    ProgramRun,
    RecordingMocks,
    run_program,
    stack_config_values,
)
from tests.fixtures.wire import INSTANCE_TYPE, SECRET_SIG, SECRET_SIG_KEY

ORIGINAL_ENTRY = {
    "name": "redis-sidekiq",
    "active_defrag": True,
    "maintenance_start_hours": 8,
    "maintenance_start_minutes": 0,
    "maintenance_window_day": "SUNDAY",
    "max_memory_policy": "noeviction",
    "memory_gb": 2,
    "redis_version": "REDIS_6_X",
    "tier": "BASIC",
}


def config_with(*clusters: dict, project: str = "acme-staging", region: str = "europe-west1") -> dict[str, str]:
    return {"redis-fleet:redis": json.dumps(list(clusters)), "gcp:project": project, "gcp:region": region}


def test_original_entry_produces_exactly_the_expected_instance_inputs() -> None:
    run = run_program(config_with(ORIGINAL_ENTRY))

    instance = run.named(INSTANCE_TYPE, "redis-sidekiq")
    # Every field the program sends; numbers arrive as the engine's protobuf doubles.
    assert instance.inputs == {
        "name": "redis-sidekiq",
        "displayName": "redis-sidekiq",
        "memorySizeGb": 2,
        "tier": "BASIC",
        "redisVersion": "REDIS_6_X",
        "authEnabled": True,
        "transitEncryptionMode": "SERVER_AUTHENTICATION",
        "connectMode": "DIRECT_PEERING",
        "maintenancePolicy": {
            "weeklyMaintenanceWindows": [
                {"day": "SUNDAY", "startTime": {"hours": 8, "minutes": 0, "seconds": 0, "nanos": 0}}
            ]
        },
        "persistenceConfig": {"persistenceMode": "RDB", "rdbSnapshotPeriod": "TWENTY_FOUR_HOURS"},
        "redisConfigs": {"maxmemory-policy": "noeviction", "activedefrag": "yes"},
        "deletionProtection": True,
        "project": "acme-staging",
        "region": "europe-west1",
    }
    # One component per cluster holds the instance; no command without beta flags.
    assert [r.name for r in run.of_type(fleet.COMPONENT_TYPE)] == ["redis-sidekiq"]
    assert run.of_type(COMMAND_TYPE) == []


def test_outputs_give_host_port_location_and_auth_string_only_as_a_secret() -> None:
    mocks = RecordingMocks(ProgramRun())
    pulumi.runtime.set_mocks(mocks, project="redis-fleet", stack="staging", preview=False, monitor=mocks.monitor)
    pulumi.runtime.set_all_config(config_with(ORIGINAL_ENTRY))
    seen: dict[str, object] = {}

    @pulumi.runtime.test
    def check() -> pulumi.Output[None]:
        (cluster,) = fleet.build_fleet(fleet.stack_from_pulumi_config()).values()

        async def collect() -> None:
            seen["host"] = await cluster.host.future()
            seen["port"] = await cluster.port.future()
            seen["location"] = await cluster.current_location_id.future()
            seen["auth_secret"] = await cluster.auth_string.is_secret()
            seen["host_secret"] = await cluster.host.is_secret()

        return pulumi.Output.from_input(collect())

    check()
    assert seen == {
        "host": "10.0.0.3",
        "port": 6378,
        "location": "europe-west1-b",
        "auth_secret": True,
        "host_secret": False,
    }


def test_stack_output_shows_connection_details_and_the_auth_string_only_as_a_secret() -> None:
    run = run_program(config_with(ORIGINAL_ENTRY))

    exported = run.stack_outputs["redis-sidekiq"]
    assert exported["host"] == "10.0.0.3"
    assert exported["port"] == 6378
    assert exported["current_location_id"] == "europe-west1-b"
    # Only the AUTH string carries Pulumi's secret signature (encrypted in state, `[secret]` in output).
    assert exported["auth_string"].get(SECRET_SIG_KEY) == SECRET_SIG
    assert [key for key, value in exported.items() if isinstance(value, dict)] == ["auth_string"]


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_both_stack_files_parse_and_build(stack: str) -> None:
    path = PROGRAM_DIR / f"Pulumi.{stack}.yaml"
    declared = load_stack_file(path)
    run = run_program(stack_config_values(path), stack=stack)

    instances = run.of_type(INSTANCE_TYPE)
    assert sorted(i.name for i in instances) == sorted(c.name for c in declared.clusters)
    assert set(run.exports) == {c.name for c in declared.clusters}
    assert all(i.inputs["authEnabled"] is True for i in instances)


def test_production_instances_are_ha_backed_up_encrypted_and_in_a_window() -> None:
    path = PROGRAM_DIR / "Pulumi.production.yaml"
    instances = run_program(stack_config_values(path), stack="production").of_type(INSTANCE_TYPE)

    assert len(instances) == 4
    for instance in instances:
        inputs = instance.inputs
        assert inputs["tier"] == "STANDARD_HA", instance.name
        assert inputs["persistenceConfig"]["persistenceMode"] == "RDB", instance.name
        assert inputs["transitEncryptionMode"] == "SERVER_AUTHENTICATION", instance.name
        assert len(inputs["maintenancePolicy"]["weeklyMaintenanceWindows"]) == 1, instance.name
        assert inputs["customerManagedKey"].startswith("projects/redisguard-production/"), instance.name
        assert inputs["connectMode"] == "PRIVATE_SERVICE_ACCESS", instance.name
        assert inputs["labels"]["env"] == "production", instance.name
        assert inputs["deletionProtection"] is True, instance.name


def test_staging_holds_the_original_entry_unchanged() -> None:
    text = (PROGRAM_DIR / "Pulumi.staging.yaml").read_text()
    cluster = load_stack_file(PROGRAM_DIR / "Pulumi.staging.yaml").cluster("redis-sidekiq")
    assert cluster.model_dump(exclude_unset=True) == ORIGINAL_ENTRY
    assert "max_memory_policy: noeviction" in text


def test_read_replicas_and_replica_count_reach_the_instance() -> None:
    entry = {"name": "cache", "memory_gb": 5, "tier": "STANDARD_HA", "read_replicas": True, "replica_count": 3}
    inputs = run_program(config_with(entry)).named(INSTANCE_TYPE, "cache").inputs
    assert inputs["readReplicasMode"] == "READ_REPLICAS_ENABLED"
    assert inputs["replicaCount"] == 3


def test_beta_flags_become_a_create_and_a_delete_command() -> None:
    entry = {
        **ORIGINAL_ENTRY,
        "beta_flags": {
            "apply": {"persistence-mode": "RDB", "rdb-snapshot-period": "12h", "enable-auth": True},
            "revert": {"persistence-mode": "DISABLED"},
        },
    }
    run = run_program(config_with(entry))

    command = run.named(COMMAND_TYPE, "redis-sidekiq-beta-flags")
    assert command.inputs["create"] == (
        "gcloud beta redis instances update redis-sidekiq --quiet --project=acme-staging "
        "--region=europe-west1 --persistence-mode=RDB --rdb-snapshot-period=12h --enable-auth"
    )
    assert command.inputs["delete"] == (
        "gcloud beta redis instances update redis-sidekiq --quiet --project=acme-staging "
        "--region=europe-west1 --persistence-mode=DISABLED"
    )
    # The flags are the trigger: the command re-runs only when they change.
    assert json.loads(command.inputs["triggers"][0]) == entry["beta_flags"]


def test_beta_flag_value_with_shell_metacharacters_stays_one_argument() -> None:
    hostile = "x'; rm -rf / #$(id)`id`"
    entry = {**ORIGINAL_ENTRY, "beta_flags": {"apply": {"display-name": hostile}}}
    create = run_program(config_with(entry)).named(COMMAND_TYPE, "redis-sidekiq-beta-flags").inputs["create"]

    argv = shlex.split(create)
    assert argv[-1] == f"--display-name={hostile}"
    assert len(argv) == 10


def test_beta_flags_command_run_by_a_real_shell_passes_each_value_as_one_argument(tmp_path: Path) -> None:
    # pulumi-command runs `create` with /bin/sh -c; a stand-in gcloud records the argv it gets.
    marker = tmp_path / "injected"
    hostile = f"a b'; touch {marker}; echo \"$(touch {marker})\" `touch {marker}` $HOME *"
    entry = {**ORIGINAL_ENTRY, "beta_flags": {"apply": {"display-name": hostile, "enable-x": True}}}
    create = run_program(config_with(entry)).named(COMMAND_TYPE, "redis-sidekiq-beta-flags").inputs["create"]
    gcloud = tmp_path / "gcloud"
    gcloud.write_text("#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done\n")
    gcloud.chmod(0o755)

    done = subprocess.run(
        ["/bin/sh", "-c", create], env={"PATH": f"{tmp_path}:/usr/bin:/bin"}, capture_output=True, timeout=30
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().split("\0")[:-1] == [
        "beta", "redis", "instances", "update", "redis-sidekiq", "--quiet",
        "--project=acme-staging", "--region=europe-west1", f"--display-name={hostile}", "--enable-x",
    ]  # fmt: skip
    assert not marker.exists()


def test_beta_flags_command_is_a_child_of_the_instance_and_reverts_before_reapplying() -> None:
    entry = {**ORIGINAL_ENTRY, "beta_flags": {"apply": {"x": "1"}, "revert": {"x": "0"}}}
    run = run_program(config_with(entry))
    instance = run.named(INSTANCE_TYPE, "redis-sidekiq")
    command = run.named(COMMAND_TYPE, "redis-sidekiq-beta-flags")

    assert command.parent.endswith("::redis-sidekiq") and "gcp:redis/instance:Instance" in command.parent
    assert command.parent in command.dependencies
    # On a flag change the old command's revert runs before the new flags are applied.
    assert command.delete_before_replace is True
    # A replaced instance comes up without the flags: the command is replaced with it and runs again.
    assert command.replace_with == (command.parent,)
    assert "authString" in instance.additional_secret_outputs


def test_stack_file_missing_is_reported_with_its_path(tmp_path: Path) -> None:
    from redisguard.program.config import StackConfigError

    with pytest.raises(StackConfigError) as caught:
        load_stack_file(tmp_path / "Pulumi.nope.yaml")
    assert str(caught.value) == f"{tmp_path / 'Pulumi.nope.yaml'}: 1 problem in the stack config\n  - file not found"


def test_pulumi_yaml_runs_the_program_from_its_folder_with_the_repo_venv() -> None:
    project = yaml.safe_load((PROGRAM_DIR / "Pulumi.yaml").read_text())
    assert project["name"] == "redis-fleet"
    assert project["runtime"]["name"] == "python"
    options = project["runtime"]["options"]
    # Pulumi resolves `virtualenv` against the folder of Pulumi.yaml; `uv sync` (what
    # `pulumi install` runs for the uv toolchain) finds the lock file by searching upwards.
    venv = (PROGRAM_DIR / options["virtualenv"]).resolve()
    assert venv == (PROGRAM_DIR.parent / ".venv").resolve()
    assert options["toolchain"] == "uv"
    assert (PROGRAM_DIR.parent / "uv.lock").is_file()
    # The language host runs the program folder with that venv's python: __main__.py must
    # import the package and start; with no engine here it says how to run it instead.
    python = venv / "bin" / "python"
    done = subprocess.run(
        [str(python), "-c", "import runpy; runpy.run_path('.', run_name='__main__')"],
        cwd=PROGRAM_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == fleet.NOT_UNDER_PULUMI

