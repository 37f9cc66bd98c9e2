"""The policy pack through the engine's Analyzer protocol: every policy, passing and failing, in production and staging."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.analyzer import (
    PACK_DIR,
    secret,
    start_policy_pack,
    unknown,
)
from tests.fixtures.policy_inputs import COMPLIANT, CONTRACT, instance, production_stack
from tests.fixtures.processes import alive, wait_for
from tests.fixtures.wire import INSTANCE_TYPE

pytestmark = pytest.mark.slow

PRODUCTION_ONLY = {
    "memorystore-persistence-in-production",
    "memorystore-high-availability-in-production",
    "memorystore-cmek-in-production",
    "memorystore-deletion-protection-in-production",
}


def assert_cli_accepts(command: str) -> None:
    from redisguard.daemon.cli.main import build_parser

    parser = build_parser()
    try:
        parser.parse_args(shlex.split(command)[1:])
    except SystemExit as exc:  # argparse's way to refuse a command line
        raise AssertionError(f"`{command}` is not a command redisguard accepts") from exc


def test_pack_announces_every_contract_policy_with_its_level_docs_and_schema(pack_for: Any) -> None:
    pack = pack_for("production")
    info = pack.info()
    declared = yaml.safe_load((PACK_DIR / "PulumiPolicy.yaml").read_text())

    assert info.name == "redisguard-memorystore"
    assert info.version == declared["version"] == "0.1.0"
    assert info.supports_config
    assert {name: meta.level for name, meta in info.policies.items()} == CONTRACT
    assert info.policies["memorystore-stack-memory-budget"].kind == "stack"
    for meta in info.policies.values():
        assert meta.description and meta.display_name and meta.severity, meta.name
        assert len(meta.remediation) > 40, meta.name
        assert meta.url.startswith("https://cloud.google.com/"), meta.name
        assert "exemptResources" in meta.config_schema, meta.name
    # A command a remediation names is one `redisguard` runs, with options it takes.
    named = [
        command
        for meta in info.policies.values()
        for command in re.findall(r"`(redisguard [^`]+)`", f"{meta.description} {meta.remediation}")
    ]
    assert named, "the memory budget's remediation names memory-report"
    for command in named:
        assert_cli_accepts(command.replace("STACK", "production"))
    assert info.policies["memorystore-memory-bounds"].config_schema["maxMemoryGb"]["default"] == 300
    assert info.policies["memorystore-supported-redis-version"].config_schema["allowedVersions"]["default"] == [
        "REDIS_7_0",
        "REDIS_7_2",
    ]
    assert info.policies["memorystore-required-labels"].config_schema["requiredLabels"]["default"] == ["env", "team"]
    assert info.policies["memorystore-persistence-in-production"].config_schema["productionStacks"]["default"] == [
        "production",
        "prod",
        "prod-*",
        "*-prod",
        "*-production",
    ]


def test_pack_runs_in_the_virtualenv_its_pulumipolicy_yaml_names(pack_for: Any) -> None:
    # Pulumi's `pulumi-analyzer-policy-python` shim runs `<virtualenv>/bin/python -u -m pulumi.policy`
    # with the virtualenv relative to the pack folder: ../.venv must be this repository's environment.
    pack = pack_for("production")
    assert os.path.samefile(pack.interpreter, PACK_DIR.parent / ".venv" / "bin" / "python")


def test_pack_starts_with_the_stack_config_the_engine_passes(tmp_path: Path) -> None:
    # Every real stack has config (gcp:project at least); the engine hands it over as PULUMI_CONFIG
    # and in ConfigureStack, and the pack must start and judge as usual with it.
    config = {"gcp:project": "redisguard-production", "gcp:region": "europe-west1"}
    pack = start_policy_pack("production", stack_config=config, stack_tags={"team": "platform"})
    try:
        pack.configure(None)
        assert pack.analyze(INSTANCE_TYPE, "redis-orders", instance()).diagnostics == ()
    finally:
        pack.stop()


def test_a_pack_whose_virtualenv_is_missing_does_not_start(tmp_path: Path) -> None:
    pack_dir = tmp_path / "policies"
    shutil.copytree(PACK_DIR, pack_dir, ignore=shutil.ignore_patterns("__pycache__"))
    declared = yaml.safe_load((pack_dir / "PulumiPolicy.yaml").read_text())
    declared["runtime"]["options"]["virtualenv"] = "../no-such-venv"
    (pack_dir / "PulumiPolicy.yaml").write_text(yaml.safe_dump(declared))

    with pytest.raises(RuntimeError, match="no-such-venv\" doesn't appear to be a virtual environment"):
        start_policy_pack("production", pack_dir=pack_dir)


@pytest.mark.parametrize("stack", ["production", "staging"])
def test_compliant_instance_passes_every_policy(pack_for: Any, stack: str) -> None:
    result = pack_for(stack).analyze(INSTANCE_TYPE, "redis-orders", instance(labels={"env": stack, "team": "platform"}))
    assert result.diagnostics == ()


# (policy, changes to COMPLIANT, fragments the message must contain: what is required and the offending value)
VIOLATIONS = [
    ("memorystore-auth-required", {"authEnabled": False}, ["authEnabled must be true", "found false"]),
    (
        "memorystore-auth-required",
        {"authEnabled": None},
        ["authEnabled must be true", "not set (Memorystore's default is false)"],
    ),
    (
        "memorystore-transit-encryption-required",
        {"transitEncryptionMode": "DISABLED"},
        ["transitEncryptionMode must be SERVER_AUTHENTICATION", "found 'DISABLED'"],
    ),
    (
        "memorystore-transit-encryption-required",
        {"transitEncryptionMode": None},
        ["must be SERVER_AUTHENTICATION", "not set (Memorystore's default is DISABLED)"],
    ),
    (
        "memorystore-persistence-in-production",
        {"persistenceConfig": {"persistenceMode": "DISABLED"}},
        ["persistenceMode must be RDB in production", "stack 'production' matches 'production'", "found 'DISABLED'"],
    ),
    (
        "memorystore-persistence-in-production",
        {"persistenceConfig": {"persistenceMode": "RDB", "rdbSnapshotPeriod": "TWENTY_FOUR_HOURS"}},
        ["rdbSnapshotPeriod must be TWELVE_HOURS or shorter", "found 'TWENTY_FOUR_HOURS'"],
    ),
    (
        "memorystore-persistence-in-production",
        {"persistenceConfig": {"persistenceMode": "RDB"}},
        ["rdbSnapshotPeriod must be TWELVE_HOURS or shorter", "not set (Memorystore's default is TWENTY_FOUR_HOURS)"],
    ),
    ("memorystore-memory-bounds", {"memorySizeGb": 301}, ["memorySizeGb must be between 1 and 300 GB", "found 301"]),
    ("memorystore-memory-bounds", {"memorySizeGb": 0.5}, ["memorySizeGb must be between 1 and 300 GB", "found 0.5"]),
    (
        "memorystore-memory-bounds",
        {"memorySizeGb": 4, "readReplicasMode": "READ_REPLICAS_ENABLED"},
        ["at least 5 GB with read replicas", "found 4"],
    ),
    ("memorystore-memory-bounds", {"memorySizeGb": "8"}, ["memorySizeGb must be a number", "found '8'"]),
    (
        "memorystore-high-availability-in-production",
        {"tier": "BASIC"},
        ["tier must be STANDARD_HA in production", "found 'BASIC'"],
    ),
    (
        "memorystore-high-availability-in-production",
        {"tier": None},
        ["tier must be STANDARD_HA", "not set (Memorystore's default is BASIC)"],
    ),
    (
        "memorystore-cmek-in-production",
        {"customerManagedKey": None},
        ["customerManagedKey must name a Cloud KMS key", "not set (Google-managed encryption)"],
    ),
    (
        "memorystore-maintenance-window-required",
        {"maintenancePolicy": None},
        ["a weekly maintenance window must be declared", "found none"],
    ),
    (
        "memorystore-maintenance-window-required",
        {"maintenancePolicy": {"weeklyMaintenanceWindows": [{"day": "SUNDAY"}]}},
        ["weeklyMaintenanceWindows[0].startTime must be set", "found not set"],
    ),
    (
        "memorystore-supported-redis-version",
        {"redisVersion": "REDIS_6_X"},
        ["redisVersion must be one of REDIS_7_0, REDIS_7_2", "found 'REDIS_6_X'"],
    ),
    ("memorystore-supported-redis-version", {"redisVersion": None}, ["redisVersion must be one of", "not set"]),
    (
        "memorystore-eviction-policy-explicit",
        {"redisConfigs": {"activedefrag": "yes"}},
        ['redisConfigs["maxmemory-policy"] must be set explicitly', "found not set"],
    ),
    (
        "memorystore-eviction-policy-explicit",
        {"redisConfigs": {"maxmemory-policy": "allkeys-fifo"}},
        ['redisConfigs["maxmemory-policy"] must be one of', "found 'allkeys-fifo'"],
    ),
    (
        "memorystore-private-networking",
        {"connectMode": "DIRECT_PEERING"},
        ["connectMode must be PRIVATE_SERVICE_ACCESS", "found 'DIRECT_PEERING'"],
    ),
    (
        "memorystore-private-networking",
        {"authorizedNetwork": None},
        ["authorizedNetwork must name a VPC network explicitly", "not set"],
    ),
    (
        "memorystore-private-networking",
        {"authorizedNetwork": "projects/p/global/networks/default"},
        ["authorizedNetwork must not be default", "found 'projects/p/global/networks/default'"],
    ),
    (
        "memorystore-required-labels",
        {"labels": {"env": "production", "team": ""}},
        ["labels must include env, team with non-empty values", "missing team", "found env=production, team="],
    ),
    (
        "memorystore-deletion-protection-in-production",
        {"deletionProtection": False},
        ["deletionProtection must be true in production", "found false"],
    ),
]


@pytest.mark.parametrize(
    ("policy", "changes", "fragments"), VIOLATIONS, ids=lambda v: v if isinstance(v, str) else None
)
def test_each_violation_is_reported_at_its_default_level_with_the_requirement_and_value(
    pack_for: Any, policy: str, changes: dict[str, Any], fragments: list[str]
) -> None:
    result = pack_for("production").analyze(INSTANCE_TYPE, "redis-orders", instance(**changes))

    assert result.policies == {policy}
    assert result.level(policy) == CONTRACT[policy]
    (message,) = result.messages(policy)
    assert message.startswith(pack_for("production").info().policies[policy].description)
    assert "'redis-orders'" in message
    for fragment in fragments:
        assert fragment in message
    diagnostic = result.diagnostics[0]
    assert diagnostic.pack == "redisguard-memorystore" and diagnostic.version == "0.1.0"


@pytest.mark.parametrize(
    ("policy", "changes"),
    [(p, c) for p, c, _ in VIOLATIONS if p not in PRODUCTION_ONLY],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_general_policies_apply_in_staging_too(pack_for: Any, policy: str, changes: dict[str, Any]) -> None:
    props = instance(**changes)
    if "labels" not in changes:
        props["labels"] = {"env": "staging", "team": "platform"}
    result = pack_for("staging").analyze(INSTANCE_TYPE, "redis-orders", props)
    assert result.policies == {policy}
    assert result.level(policy) == CONTRACT[policy]


def test_production_only_policies_do_not_apply_to_a_staging_instance(pack_for: Any) -> None:
    lax = instance(
        tier="BASIC",
        persistenceConfig={"persistenceMode": "DISABLED"},
        customerManagedKey=None,
        deletionProtection=False,
        labels={"env": "staging", "team": "platform"},
    )
    result = pack_for("staging").analyze(INSTANCE_TYPE, "redis-cache", lax)

    assert result.diagnostics == ()
    assert set(result.not_applicable) == PRODUCTION_ONLY
    reason = result.not_applicable["memorystore-high-availability-in-production"]
    assert "'redis-cache' is not production: stack 'staging' matches none of production, prod" in reason


def test_env_production_label_makes_an_instance_production_in_any_stack(pack_for: Any) -> None:
    labelled = instance(tier="BASIC", persistenceConfig={"persistenceMode": "DISABLED"}, customerManagedKey=None)
    result = pack_for("staging").analyze(INSTANCE_TYPE, "redis-cache", labelled)

    assert result.policies == {
        "memorystore-high-availability-in-production",
        "memorystore-persistence-in-production",
        "memorystore-cmek-in-production",
    }
    assert "in production (label env=production)" in result.messages("memorystore-high-availability-in-production")[0]
    assert result.blocks


def test_a_bad_instance_gets_every_violation_at_once_and_blocks(pack_for: Any) -> None:
    bad = {"memorySizeGb": 400, "tier": "BASIC", "redisVersion": "REDIS_5_0", "labels": {"env": "production"}}
    result = pack_for("production").analyze(INSTANCE_TYPE, "redis-legacy", bad)

    assert result.mandatory == {name for name, level in CONTRACT.items() if level == "mandatory"}
    assert result.advisory == {
        "memorystore-cmek-in-production",
        "memorystore-maintenance-window-required",
        "memorystore-supported-redis-version",
        "memorystore-eviction-policy-explicit",
        "memorystore-private-networking",
        "memorystore-required-labels",
    }
    assert result.blocks


def test_protect_resource_option_counts_as_deletion_protection(pack_for: Any) -> None:
    pack = pack_for("production")
    assert pack.analyze(INSTANCE_TYPE, "redis-orders", instance(deletionProtection=False), protect=True).diagnostics == ()
    # Unset means the provider's default (on); only an explicit false is a violation by default.
    assert pack.analyze(INSTANCE_TYPE, "redis-orders", instance(deletionProtection=None)).diagnostics == ()


def test_null_inputs_count_as_unset(pack_for: Any) -> None:
    # The engine passes nulls through to analyzers; an explicit null is the provider's default.
    props = dict(COMPLIANT, authEnabled=None, persistenceConfig={"persistenceMode": "RDB", "rdbSnapshotPeriod": None})
    result = pack_for("production").analyze(INSTANCE_TYPE, "redis-orders", props)

    assert result.policies == {"memorystore-auth-required", "memorystore-persistence-in-production"}
    assert "found not set (Memorystore's default is false)" in result.messages("memorystore-auth-required")[0]
    assert "not set (Memorystore's default is TWENTY_FOUR_HOURS)" in result.messages(
        "memorystore-persistence-in-production"
    )[0]


def test_other_resource_types_are_ignored(pack_for: Any) -> None:
    result = pack_for("production").analyze("gcp:storage/bucket:Bucket", "assets", {"location": "EU"})
    assert result.diagnostics == ()
    assert result.not_applicable == {}


# --- values unknown during preview ----------------------------------------------------------------


@pytest.mark.parametrize("sentinels", ["typed", "string"])
def test_every_property_unknown_during_preview_neither_crashes_nor_blocks(pack_for: Any, sentinels: str) -> None:
    # Engines mark a computed input with the string sentinel whatever its type ("string"); the typed
    # sentinels ("typed") are the older spelling. Either way nothing about the instance is known.
    if sentinels == "string":
        props = {key: unknown() for key in COMPLIANT}
    else:
        props = {key: unknown("object" if isinstance(value, dict) else "string") for key, value in COMPLIANT.items()}
        props["memorySizeGb"] = unknown("number")
        props["authEnabled"] = unknown("bool")
    result = pack_for("production").analyze(INSTANCE_TYPE, "redis-orders", props)

    assert result.diagnostics == ()
    assert set(result.not_applicable) == set(CONTRACT) - {"memorystore-stack-memory-budget"}
    assert (
        "authEnabled of 'redis-orders' not known during preview; checked again during update"
        in (result.not_applicable["memorystore-auth-required"])
    )


# (policy, a change to COMPLIANT with an unknown inside, the unknown path the reason names)
NESTED_UNKNOWNS = [
    ("memorystore-persistence-in-production", {"persistenceConfig": unknown()}, "persistenceConfig.persistenceMode"),
    (
        "memorystore-persistence-in-production",
        {"persistenceConfig": {"persistenceMode": unknown(), "rdbSnapshotPeriod": "ONE_HOUR"}},
        "persistenceConfig.persistenceMode",
    ),
    ("memorystore-maintenance-window-required", {"maintenancePolicy": unknown()}, "weeklyMaintenanceWindows"),
    (
        "memorystore-maintenance-window-required",
        {"maintenancePolicy": {"weeklyMaintenanceWindows": [unknown()]}},
        "weeklyMaintenanceWindows[0]",
    ),
    (
        "memorystore-maintenance-window-required",
        {"maintenancePolicy": {"weeklyMaintenanceWindows": [{"day": "SUNDAY", "startTime": unknown()}]}},
        "weeklyMaintenanceWindows[0].startTime",
    ),
    ("memorystore-required-labels", {"labels": unknown()}, "labels"),
    ("memorystore-eviction-policy-explicit", {"redisConfigs": unknown()}, "redisConfigs.maxmemory-policy"),
    ("memorystore-cmek-in-production", {"customerManagedKey": unknown()}, "customerManagedKey"),
]


@pytest.mark.parametrize(
    ("policy", "changes", "path"), NESTED_UNKNOWNS, ids=lambda v: v if isinstance(v, str) else None
)
def test_an_unknown_inside_an_object_is_skipped_not_reported(
    pack_for: Any, policy: str, changes: dict[str, Any], path: str
) -> None:
    result = pack_for("production").analyze(INSTANCE_TYPE, "redis-orders", instance(**changes))

    assert result.diagnostics == ()
    assert set(result.not_applicable) == {policy}
    assert path in result.not_applicable[policy] and "not known during preview" in result.not_applicable[policy]


def test_a_known_maintenance_day_is_checked_while_its_start_time_is_unknown(pack_for: Any) -> None:
    pack = pack_for("production", {"memorystore-maintenance-window-required": {"allowedDays": ["SUNDAY"]}})
    windows = [{"day": "MONDAY", "startTime": unknown()}]
    result = pack.analyze(INSTANCE_TYPE, "redis-orders", instance(maintenancePolicy={"weeklyMaintenanceWindows": windows}))

    (message,) = result.messages("memorystore-maintenance-window-required")
    assert "weeklyMaintenanceWindows[0].day must be one of SUNDAY; found 'MONDAY'" in message


def test_an_unknown_replica_mode_does_not_hold_up_a_size_fine_either_way(pack_for: Any) -> None:
    pack = pack_for("production")
    assert pack.analyze(INSTANCE_TYPE, "r", instance(readReplicasMode=unknown(), memorySizeGb=8)).not_applicable == {}
    result = pack.analyze(INSTANCE_TYPE, "r", instance(readReplicasMode=unknown(), memorySizeGb=2))
    assert result.diagnostics == ()
    assert "readReplicasMode" in result.not_applicable["memorystore-memory-bounds"]


def test_unknown_nested_values_leave_the_known_ones_checked(pack_for: Any) -> None:
    props = instance(
        persistenceConfig={"persistenceMode": "RDB", "rdbSnapshotPeriod": unknown()},
        maintenancePolicy={"weeklyMaintenanceWindows": [unknown("object")]},
        labels={"env": "production", "team": unknown()},
        # The network id of a VPC created in the same program: unknown, but explicit.
        authorizedNetwork=unknown(),
        connectMode="DIRECT_PEERING",
        memorySizeGb=unknown("number"),
        tier="BASIC",
    )
    result = pack_for("production").analyze(INSTANCE_TYPE, "redis-orders", props)

    assert result.policies == {"memorystore-private-networking", "memorystore-high-availability-in-production"}
    assert "found 'DIRECT_PEERING'" in result.messages("memorystore-private-networking")[0]
    assert "authorizedNetwork" not in result.messages("memorystore-private-networking")[0]
    assert "rdbSnapshotPeriod" in result.not_applicable["memorystore-persistence-in-production"]
    assert "labels.team" in result.not_applicable["memorystore-required-labels"]


def test_unknown_labels_in_a_staging_stack_do_not_block(pack_for: Any) -> None:
    props = instance(labels=unknown("object"), tier="BASIC", persistenceConfig={"persistenceMode": "DISABLED"})
    result = pack_for("staging").analyze(INSTANCE_TYPE, "redis-cache", props)

    assert not result.blocks
    reason = result.not_applicable["memorystore-high-availability-in-production"]
    assert "is not production" in reason and "labels of 'redis-cache' not known during preview" in reason


def test_secret_values_are_read_and_never_echoed(pack_for: Any) -> None:
    props = instance(authEnabled=secret(True), authString=secret("s3cr3t-auth"), tier="BASIC")
    result = pack_for("production").analyze(INSTANCE_TYPE, "redis-orders", props)

    assert result.policies == {"memorystore-high-availability-in-production"}
    assert all("s3cr3t" not in d.message for d in result.diagnostics)


def test_odd_shapes_are_reported_not_crashed_on(pack_for: Any) -> None:
    props = instance(maintenancePolicy={"weeklyMaintenanceWindows": "SUNDAY"}, labels=["env"], authorizedNetwork=7)
    result = pack_for("production").analyze(INSTANCE_TYPE, "redis-orders", props)

    assert (
        "weeklyMaintenanceWindows must be a list; found 'SUNDAY'"
        in result.messages("memorystore-maintenance-window-required")[0]
    )
    assert "missing env, team (found no labels)" in result.messages("memorystore-required-labels")[0]
    assert (
        "authorizedNetwork must be a network name or path; found 7"
        in result.messages("memorystore-private-networking")[0]
    )


# --- the stack policy ------------------------------------------------------------------------------


def test_stack_memory_budget_passes_within_and_warns_above(pack_for: Any) -> None:
    pack = pack_for("production")
    assert pack.analyze_stack(production_stack(200, 300)).diagnostics == ()

    result = pack.analyze_stack(production_stack(200, 300, 8))
    assert result.policies == {"memorystore-stack-memory-budget"}
    assert result.level("memorystore-stack-memory-budget") == "advisory"
    (message,) = result.messages("memorystore-stack-memory-budget")
    assert "must be at most 500 GB; found 508 GB (redis-1 300, redis-0 200, redis-2 8)" in message


def test_stack_memory_budget_counts_only_known_sizes_during_preview(pack_for: Any) -> None:
    pack = pack_for("production")
    assert pack.analyze_stack(production_stack(300, unknown("number"))).diagnostics == ()

    (message,) = pack.analyze_stack(production_stack(300, 300, unknown("number"))).messages("memorystore-stack-memory-budget")
    assert "found 600 GB" in message and "1 more not yet known: redis-2" in message


def test_a_killed_test_run_leaves_no_pack_behind() -> None:
    # A pack serves until it is stopped; if the process that started it dies without stopping it
    # (pytest killed, a CI timeout), the pack must die too rather than listen forever.
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from tests.fixtures.analyzer import start_policy_pack; "
            "print(start_policy_pack('production')._proc.pid, flush=True); time.sleep(120)",
        ],
        cwd=PACK_DIR.parent,
        stdout=subprocess.PIPE,
        text=True,
    ) as runner:
        try:
            assert runner.stdout is not None
            pack_pid = int(runner.stdout.readline())
            assert alive(pack_pid)
        finally:
            runner.kill()
    wait_for(lambda: not alive(pack_pid), timeout=10, what="the pack to die with the process that started it")


# --- startup: Pulumi users complain of multi-second policy startup ---------------------------------


def test_pack_starts_and_analyses_100_resources_promptly(capsys: pytest.CaptureFixture[str]) -> None:
    began = time.monotonic()
    pack = start_policy_pack("production")
    try:
        pack.configure(Path(PACK_DIR / "config" / "production.json"))
        for i in range(100):
            result = pack.analyze(
                INSTANCE_TYPE, f"redis-{i}", instance(labels={"env": "production", "team": "t", "service": "s"})
            )
            assert not result.blocks
        total = time.monotonic() - began
    finally:
        pack.stop()
    with capsys.disabled():
        print(f"\npolicy pack: startup {pack.startup_seconds:.2f}s, startup + 100 resources {total:.2f}s")
    # A hang check, not a benchmark (bench/policy_startup.py measures).
    assert total < 60
    # Nothing went wrong on the way: a failing pack logs to the engine (what `pulumi preview` prints).
    assert [log for log in pack.engine.logs if log[0] in ("WARNING", "ERROR")] == []
