"""Policy-pack config through `--policy-pack-config` semantics: levels, bounds, allow-lists, production globs, invalid config."""

from __future__ import annotations

import json
from typing import Any, get_args

import pytest

from redisguard.core.memorystore import SNAPSHOT_PERIOD_HOURS, SnapshotPeriod
from redisguard.policies.config import (
    MemoryBoundsConfig,
    PersistenceConfig,
    PolicyConfigError,
    is_production,
    parse_config,
)
from tests.fixtures.analyzer import PACK_DIR, AnalyzerFailed, PolicyConfigInvalid
from tests.fixtures.policy_inputs import CONTRACT, instance, production_stack
from tests.fixtures.wire import INSTANCE_TYPE

slow = pytest.mark.slow


# --- levels ------------------------------------------------------------------------------------------


@slow
def test_disabled_policy_does_not_run(pack_for: Any) -> None:
    pack = pack_for("production", {"memorystore-auth-required": "disabled"})
    result = pack.analyze(INSTANCE_TYPE, "redis-orders", instance(authEnabled=False))
    assert result.diagnostics == ()
    assert "memorystore-auth-required" not in result.not_applicable


@slow
def test_advisory_policy_raised_to_mandatory_blocks(pack_for: Any) -> None:
    pack = pack_for("production", {"memorystore-cmek-in-production": {"enforcementLevel": "mandatory"}})
    result = pack.analyze(INSTANCE_TYPE, "redis-orders", instance(customerManagedKey=None))
    assert result.mandatory == {"memorystore-cmek-in-production"}


@slow
def test_mandatory_policy_lowered_to_advisory_warns_only(pack_for: Any) -> None:
    pack = pack_for("production", {"memorystore-high-availability-in-production": "advisory"})
    result = pack.analyze(INSTANCE_TYPE, "redis-orders", instance(tier="BASIC"))
    assert result.advisory == {"memorystore-high-availability-in-production"}
    assert not result.blocks


@slow
def test_all_sets_every_level_and_a_named_policy_still_wins(pack_for: Any) -> None:
    pack = pack_for("production", {"all": "advisory", "memorystore-auth-required": "mandatory"})
    result = pack.analyze(INSTANCE_TYPE, "redis-orders", instance(authEnabled=False, tier="BASIC", memorySizeGb=400))
    assert result.mandatory == {"memorystore-auth-required"}
    assert result.advisory == {"memorystore-high-availability-in-production", "memorystore-memory-bounds"}


# --- thresholds and lists -------------------------------------------------------------------------


@slow
def test_memory_bounds_follow_config(pack_for: Any) -> None:
    pack = pack_for("production", {"memorystore-memory-bounds": {"minMemoryGb": 4, "maxMemoryGb": 16}})
    assert pack.analyze(INSTANCE_TYPE, "r", instance(memorySizeGb=16)).diagnostics == ()
    (message,) = pack.analyze(INSTANCE_TYPE, "r", instance(memorySizeGb=32)).messages("memorystore-memory-bounds")
    assert "memorySizeGb must be between 4 and 16 GB; found 32" in message
    (message,) = pack.analyze(INSTANCE_TYPE, "r", instance(memorySizeGb=2)).messages("memorystore-memory-bounds")
    assert "between 4 and 16 GB; found 2" in message


@slow
def test_read_replica_minimum_follows_config(pack_for: Any) -> None:
    pack = pack_for("production", {"memorystore-memory-bounds": {"minMemoryGbWithReadReplicas": 10}})
    props = instance(memorySizeGb=8, readReplicasMode="READ_REPLICAS_ENABLED")
    (message,) = pack.analyze(INSTANCE_TYPE, "r", props).messages("memorystore-memory-bounds")
    assert "at least 10 GB with read replicas (readReplicasMode READ_REPLICAS_ENABLED); found 8" in message


@slow
def test_version_allow_list_follows_config(pack_for: Any) -> None:
    pack = pack_for("production", {"memorystore-supported-redis-version": {"allowedVersions": ["REDIS_7_2"]}})
    (message,) = pack.analyze(INSTANCE_TYPE, "r", instance(redisVersion="REDIS_7_0")).messages(
        "memorystore-supported-redis-version"
    )
    assert "redisVersion must be one of REDIS_7_2; found 'REDIS_7_0'" in message

    pack = pack_for(
        "production", {"memorystore-supported-redis-version": {"allowedVersions": ["REDIS_6_X", "REDIS_7_2"]}}
    )
    assert pack.analyze(INSTANCE_TYPE, "r", instance(redisVersion="REDIS_6_X")).diagnostics == ()


@slow
def test_snapshot_period_limit_follows_config(pack_for: Any) -> None:
    pack = pack_for("production", {"memorystore-persistence-in-production": {"maxSnapshotPeriod": "ONE_HOUR"}})
    props = instance(persistenceConfig={"persistenceMode": "RDB", "rdbSnapshotPeriod": "SIX_HOURS"})
    (message,) = pack.analyze(INSTANCE_TYPE, "r", props).messages("memorystore-persistence-in-production")
    assert "rdbSnapshotPeriod must be ONE_HOUR or shorter in production; found 'SIX_HOURS'" in message


@slow
def test_labels_days_networks_and_eviction_lists_follow_config(pack_for: Any) -> None:
    pack = pack_for(
        "production",
        {
            "memorystore-required-labels": {"requiredLabels": ["env", "team", "cost-center"]},
            "memorystore-maintenance-window-required": {"allowedDays": ["SATURDAY"]},
            "memorystore-private-networking": {"forbiddenNetworks": ["default", "prod-vpc"]},
            "memorystore-eviction-policy-explicit": {"allowedPolicies": ["allkeys-lru"]},
        },
    )
    result = pack.analyze(INSTANCE_TYPE, "r", instance())
    assert "missing cost-center" in result.messages("memorystore-required-labels")[0]
    assert (
        "day must be one of SATURDAY; found 'SUNDAY'" in result.messages("memorystore-maintenance-window-required")[0]
    )
    assert "must not be default, prod-vpc" in result.messages("memorystore-private-networking")[0]
    assert (
        "must be one of allkeys-lru; found 'noeviction'" in result.messages("memorystore-eviction-policy-explicit")[0]
    )


@slow
def test_exempt_resources_skip_one_instance_only(pack_for: Any) -> None:
    pack = pack_for("production", {"memorystore-auth-required": {"exemptResources": ["legacy-*"]}})
    assert pack.analyze(INSTANCE_TYPE, "legacy-cache", instance(authEnabled=False)).diagnostics == ()
    assert pack.analyze(INSTANCE_TYPE, "redis-cache", instance(authEnabled=False)).mandatory == {"memorystore-auth-required"}


@slow
def test_deletion_protection_can_require_an_explicit_setting(pack_for: Any) -> None:
    pack = pack_for("production", {"memorystore-deletion-protection-in-production": {"requireExplicit": True}})
    (message,) = pack.analyze(INSTANCE_TYPE, "r", instance(deletionProtection=None)).messages(
        "memorystore-deletion-protection-in-production"
    )
    assert "found not set (requireExplicit is on)" in message


@slow
def test_production_globs_and_labels_follow_config(pack_for: Any) -> None:
    config = {"memorystore-high-availability-in-production": {"productionStacks": ["stag*"], "productionLabels": {}}}
    pack = pack_for("staging", config)
    (message,) = pack.analyze(INSTANCE_TYPE, "r", instance(tier="BASIC")).messages(
        "memorystore-high-availability-in-production"
    )
    assert "in production (stack 'staging' matches 'stag*')" in message

    pack = pack_for("production", {"memorystore-high-availability-in-production": {"productionStacks": []}})
    props = instance(tier="BASIC", labels={"env": "prod", "team": "x"})
    assert pack.analyze(INSTANCE_TYPE, "r", props).diagnostics == ()


@slow
def test_stack_budget_follows_config_and_can_be_disabled(pack_for: Any) -> None:
    pack = pack_for("production", {"memorystore-stack-memory-budget": {"maxTotalMemoryGb": 10}})
    (message,) = pack.analyze_stack(production_stack(8, 4)).messages("memorystore-stack-memory-budget")
    assert "must be at most 10 GB; found 12 GB" in message

    pack = pack_for("production", {"memorystore-stack-memory-budget": "disabled"})
    assert pack.analyze_stack(production_stack(300, 300)).diagnostics == ()


@slow
@pytest.mark.parametrize("stack", ["production", "staging"])
def test_example_config_files_are_valid_and_name_only_real_policies(pack_for: Any, stack: str) -> None:
    path = PACK_DIR / "config" / f"{stack}.json"
    assert set(json.loads(path.read_text())) <= set(CONTRACT)
    effective = pack_for(stack).configure(path)
    assert effective["memorystore-auth-required"][0] == "mandatory"
    assert (
        effective["memorystore-stack-memory-budget"][1]["maxTotalMemoryGb"]
        == json.loads(path.read_text())["memorystore-stack-memory-budget"]["maxTotalMemoryGb"]
    )


# --- invalid config: refused with a clear message ------------------------------------------------


@slow
@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {"memorystore-memory-bounds": {"maxMemoryGb": "big"}},
            "memorystore-memory-bounds: maxMemoryGb: 'big' is not of type 'integer'",
        ),
        (
            {"memorystore-memory-bounds": {"maxMemoryGb": 500}},
            "memorystore-memory-bounds: maxMemoryGb: 500 is greater than the maximum of 300",
        ),
        (
            {"memorystore-supported-redis-version": {"allowedVersions": ["7.2"]}},
            "memorystore-supported-redis-version: allowedVersions.0: '7.2' does not match",
        ),
        (
            {"memorystore-persistence-in-production": {"maxSnapshotPeriod": "WEEKLY"}},
            "memorystore-persistence-in-production: maxSnapshotPeriod: 'WEEKLY' is not one of",
        ),
        ({"memorystore-required-labels": {"requiredLabels": "env"}}, "requiredLabels: 'env' is not of type 'array'"),
        ({"memorystore-auth-required": "strict"}, '"strict" is not a valid enforcement level'),
        ({"memorystore-auth-required": 3}, "is not a valid value; must be a string or object"),
    ],
)
def test_config_violating_a_schema_is_refused_before_the_pack_runs(pack_for: Any, config: Any, expected: str) -> None:
    pack = pack_for("production")
    with pytest.raises(PolicyConfigInvalid) as excinfo:
        pack.configure(config)
    assert any(expected in error for error in excinfo.value.errors), excinfo.value.errors


@slow
def test_a_misspelt_policy_name_is_refused_only_without_a_level(pack_for: Any) -> None:
    # As in the engine: an entry naming no policy and setting no level fails Configure, but one that
    # sets a level is passed on and read by no policy - a typo there silently does nothing, which is
    # why the team's files are checked against the pack's policy names above.
    pack = pack_for("production")
    with pytest.raises(PolicyConfigInvalid, match='invalid enforcement level "" \\(entry "memorystore-auth-requried"\\)'):
        pack.configure({"memorystore-auth-requried": {"exemptResources": ["x"]}})
    pack.configure({"memorystore-auth-requried": "disabled"})
    assert pack.analyze(INSTANCE_TYPE, "r", instance(authEnabled=False)).mandatory == {"memorystore-auth-required"}


@slow
@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {"memorystore-memory-bounds": {"maxMemoryGB": 64}},
            "policy config for 'memorystore-memory-bounds' is invalid: maxMemoryGB: unknown option; did you mean "
            "'maxMemoryGb'? allowed options: exemptResources, maxMemoryGb, minMemoryGb, minMemoryGbWithReadReplicas, "
            "enforcementLevel",
        ),
        (
            {"memorystore-memory-bounds": {"minMemoryGb": 64, "maxMemoryGb": 16}},
            "policy config for 'memorystore-memory-bounds' is invalid: (config): minMemoryGb (64) must not exceed maxMemoryGb (16)",
        ),
    ],
)
def test_config_the_schema_cannot_catch_fails_the_analysis_with_a_clear_message(
    pack_for: Any, config: Any, expected: str
) -> None:
    # The engine's schema check allows unknown keys and cannot compare two options; the pack
    # refuses such config itself, and the engine then fails the preview with this message.
    pack = pack_for("production", config)
    with pytest.raises(AnalyzerFailed) as excinfo:
        pack.analyze(INSTANCE_TYPE, "r", instance())
    assert expected in excinfo.value.details


# --- the production decision and config parsing, directly ------------------------------------------


@pytest.mark.parametrize(
    ("stack", "production"),
    [
        ("production", True),
        ("prod", True),
        ("prod-eu", True),
        ("eu-prod", True),
        ("eu-production", True),
        ("acme/redis-fleet/production", True),
        ("staging", False),
        ("preprod", False),
        ("productions", False),
        ("dev", False),
    ],
)
def test_default_production_stack_globs(stack: str, production: bool) -> None:
    assert is_production(stack, {}, PersistenceConfig()).production is production


def test_env_production_label_decides_outside_production_stacks() -> None:
    decision = is_production("staging", {"env": "production"}, PersistenceConfig())
    assert decision.production and decision.reason == "label env=production"
    assert not is_production("staging", {"env": "Production"}, PersistenceConfig()).production


def test_integral_numbers_from_the_wire_are_accepted_as_integers() -> None:
    # Config crosses gRPC as a protobuf Struct: 16 arrives as 16.0.
    assert parse_config("memorystore-memory-bounds", MemoryBoundsConfig, {"maxMemoryGb": 16.0}).max_memory_gb == 16
    with pytest.raises(PolicyConfigError, match="maxMemoryGb: 16.5 is not a whole number"):
        parse_config("memorystore-memory-bounds", MemoryBoundsConfig, {"maxMemoryGb": 16.5})


def test_every_snapshot_period_the_program_knows_has_a_length() -> None:
    # One module holds both; a period added to the enum must be rankable, or the persistence policy
    # would call a valid period invalid.
    assert set(SNAPSHOT_PERIOD_HOURS) == set(get_args(SnapshotPeriod))
