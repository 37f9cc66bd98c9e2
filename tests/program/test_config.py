"""Stack config validation: every rule fails with the exact message a user reads, and nothing is registered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest

from redisguard.program.config import StackConfigError, load_stack_file, parse_clusters
from tests.fixtures.pulumi_program import run_program
from tests.fixtures.repo import REPO

BASE = {"name": "cache", "memory_gb": 2, "tier": "BASIC"}
P = "redis-fleet:redis[0] (cache)"


def problems_of(*entries: dict) -> list[str]:
    with pytest.raises(StackConfigError) as caught:
        parse_clusters(list(entries), "Pulumi.staging.yaml")
    return caught.value.problems


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"name": "Redis"},
            "redis-fleet:redis[0] (Redis).name: 'Redis' is not a valid instance name; it must start with a "
            "lowercase letter, hold only lowercase letters, digits and hyphens, be at most 40 characters "
            "long and not end with a hyphen",
        ),
        ({"name": "1cache"}, "redis-fleet:redis[0] (1cache).name: '1cache' is not a valid instance name; "),
        ({"name": "cache-"}, "redis-fleet:redis[0] (cache-).name: 'cache-' is not a valid instance name; "),
        ({"name": "cache_1"}, "redis-fleet:redis[0] (cache_1).name: 'cache_1' is not a valid instance name; "),
        ({"name": "a" * 41}, f"redis-fleet:redis[0] ({'a' * 41}).name: '{'a' * 41}' is not a valid instance name; "),
        ({"tier": "GOLD"}, f"{P}.tier: 'GOLD' is not allowed; allowed values: BASIC, STANDARD_HA"),
        (
            {"redis_version": "REDIS_8_0"},
            f"{P}.redis_version: 'REDIS_8_0' is not allowed; allowed values: REDIS_3_2, REDIS_4_0, REDIS_5_0, "
            "REDIS_6_X, REDIS_7_0, REDIS_7_2",
        ),
        (
            {"maintenance_window_day": "SUN"},
            f"{P}.maintenance_window_day: 'SUN' is not allowed; allowed values: MONDAY, TUESDAY, WEDNESDAY, "
            "THURSDAY, FRIDAY, SATURDAY, SUNDAY",
        ),
        (
            {"persistence_mode": "AOF"},
            f"{P}.persistence_mode: 'AOF' is not allowed; allowed values: DISABLED, RDB",
        ),
        (
            {"snapshot_period": "ONE_DAY"},
            f"{P}.snapshot_period: 'ONE_DAY' is not allowed; allowed values: ONE_HOUR, SIX_HOURS, "
            "TWELVE_HOURS, TWENTY_FOUR_HOURS",
        ),
        (
            {"transit_encryption": "MUTUAL"},
            f"{P}.transit_encryption: 'MUTUAL' is not allowed; allowed values: SERVER_AUTHENTICATION, DISABLED",
        ),
        (
            {"connect_mode": "VPC"},
            f"{P}.connect_mode: 'VPC' is not allowed; allowed values: DIRECT_PEERING, PRIVATE_SERVICE_ACCESS",
        ),
        (
            {"max_memory_policy": "lru"},
            f"{P}.max_memory_policy: 'lru' is not allowed; allowed values: noeviction, allkeys-lru, "
            "volatile-lru, allkeys-lfu, volatile-lfu, allkeys-random, volatile-random, volatile-ttl",
        ),
        ({"memory_gb": 0}, f"{P}.memory_gb: 0 is out of range; allowed: 1 to 300"),
        ({"memory_gb": 301}, f"{P}.memory_gb: 301 is out of range; allowed: 1 to 300"),
        ({"memory_gb": "2"}, f"{P}.memory_gb: '2' is not a whole number; allowed: a whole number from 1 to 300"),
        ({"memory_gb": 2.5}, f"{P}.memory_gb: 2.5 is not a whole number; allowed: a whole number from 1 to 300"),
        (
            {"maintenance_window_day": "SUNDAY", "maintenance_start_hours": "8"},
            f"{P}.maintenance_start_hours: '8' is not a whole number; allowed: a whole number from 0 to 23",
        ),
        (
            {"maintenance_window_day": "SUNDAY", "maintenance_start_hours": 24},
            f"{P}.maintenance_start_hours: 24 is out of range; allowed: 0 to 23",
        ),
        (
            {"maintenance_window_day": "SUNDAY", "maintenance_start_minutes": 60},
            f"{P}.maintenance_start_minutes: 60 is out of range; allowed: 0 to 59",
        ),
        (
            {"maintenance_start_hours": 3},
            f"{P}.maintenance_window_day: is required when a maintenance start time is set",
        ),
        ({"active_defrag": "yes"}, f"{P}.active_defrag: 'yes' is not a boolean; allowed values: true, false"),
        (
            {"auth_enabled": False},
            f"{P}.auth_enabled: false is not allowed; AUTH is always on for redisguard instances "
            "(remove the key or set it to true)",
        ),
        (
            {"read_replicas": True},
            f"{P}.read_replicas: true needs tier STANDARD_HA (tier is BASIC); allowed with BASIC: false",
        ),
        (
            {"tier": "STANDARD_HA", "read_replicas": True, "memory_gb": 5, "redis_version": "REDIS_4_0"},
            f"{P}.redis_version: REDIS_4_0 does not support read replicas; allowed with read_replicas: "
            "REDIS_5_0, REDIS_6_X, REDIS_7_0, REDIS_7_2",
        ),
        (
            {"redis_version": "REDIS_3_2", "max_memory_policy": "allkeys-lfu"},
            f"{P}.max_memory_policy: allkeys-lfu needs Redis 4.0 or later (redis_version is REDIS_3_2); "
            "allowed with REDIS_3_2: the -lru, -random and -ttl policies and noeviction",
        ),
        (
            {"redis_version": "REDIS_3_2", "active_defrag": True},
            f"{P}.active_defrag: needs Redis 4.0 or later (redis_version is REDIS_3_2); remove the key or use "
            "redis_version REDIS_4_0, REDIS_5_0, REDIS_6_X, REDIS_7_0, REDIS_7_2",
        ),
        ({"replica_count": 1}, f"{P}.replica_count: 1 does not fit tier BASIC; allowed: 0 or unset"),
        (
            {"tier": "STANDARD_HA", "replica_count": 3},
            f"{P}.replica_count: 3 needs read_replicas: true; allowed without read replicas: 1 or unset",
        ),
        (
            {"tier": "STANDARD_HA", "read_replicas": True, "memory_gb": 4},
            f"{P}.memory_gb: 4 is too small for read replicas; allowed: 5 to 300",
        ),
        (
            {"tier": "STANDARD_HA", "read_replicas": True, "memory_gb": 5, "replica_count": 0},
            f"{P}.replica_count: 0 does not fit STANDARD_HA with read replicas; allowed: 1 to 5",
        ),
        ({"replica_count": 6}, f"{P}.replica_count: 6 is out of range; allowed: 0 to 5"),
        (
            {"persistence_mode": "DISABLED", "snapshot_period": "ONE_HOUR"},
            f"{P}.snapshot_period: ONE_HOUR is set but persistence_mode is DISABLED; set persistence_mode: RDB "
            "or remove snapshot_period",
        ),
        (
            {"memory_gbs": 3},
            f"{P}.memory_gbs: unknown key; did you mean 'memory_gb'?",
        ),
        (
            {"location_id": "europe-west1"},
            f"{P}.location_id: 'europe-west1' is not a zone; expected a zone such as europe-west1-b",
        ),
        (
            {"customer_managed_key": "my-key"},
            f"{P}.customer_managed_key: 'my-key' is not a Cloud KMS key name; expected "
            "projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY",
        ),
        (
            {"labels": {"Team": "x"}},
            f"{P}.labels.Team: label key 'Team' is invalid; it must start with a lowercase letter and hold at "
            "most 63 lowercase letters, digits, underscores and hyphens",
        ),
        (
            {"labels": {"team": "Platform"}},
            f"{P}.labels.team: 'Platform' is not a valid label value; values hold at most 63 lowercase letters, "
            "digits, underscores and hyphens",
        ),
        (
            {"beta_flags": {"apply": {"some-flag": 1.5}}},
            f"{P}.beta_flags.apply.some-flag: 1.5 is not a flag value; allowed: a string, a whole number, "
            "true or false",
        ),
        (
            {"beta_flags": {"apply": {"--persistence-mode": "RDB"}}},
            f"{P}.beta_flags.apply: flag name '--persistence-mode' is invalid; write it without leading "
            "dashes, as lowercase words joined by hyphens (e.g. persistence-mode)",
        ),
        (
            {"beta_flags": {"apply": {"region": "us-east1"}}},
            f"{P}.beta_flags.apply: flag 'region' is set by redisguard itself; not allowed: account, async, "
            "configuration, format, project, quiet, region",
        ),
    ],
)
def test_each_rule_reports_file_cluster_key_value_and_allowed_values(change: dict, expected: str) -> None:
    (problem,) = problems_of({**BASE, **change})
    assert problem.startswith(expected)


def test_rules_across_keys_are_reported_next_to_an_invalid_key() -> None:
    # pydantic alone would stop at memory_gb; the read-replica and label problems must show in the same run.
    entry = {**BASE, "memory_gb": 0, "read_replicas": True, "labels": {"A": "x", "b": "Y"}}
    assert problems_of(entry) == [
        f"{P}.memory_gb: 0 is out of range; allowed: 1 to 300",
        f"{P}.labels.A: label key 'A' is invalid; it must start with a lowercase letter and hold at most 63 "
        "lowercase letters, digits, underscores and hyphens",
        f"{P}.labels.b: 'Y' is not a valid label value; values hold at most 63 lowercase letters, digits, "
        "underscores and hyphens",
        f"{P}.read_replicas: true needs tier STANDARD_HA (tier is BASIC); allowed with BASIC: false",
    ]


def test_an_invalid_key_does_not_trigger_rules_that_depend_on_it() -> None:
    # tier is invalid: no replica rule may guess a tier and report a second, misleading problem.
    assert problems_of({**BASE, "tier": "GOLD", "replica_count": 3}) == [
        f"{P}.tier: 'GOLD' is not allowed; allowed values: BASIC, STANDARD_HA"
    ]


def test_zone_and_kms_key_must_be_in_the_stack_region_under_pulumi() -> None:
    entry = {
        **BASE,
        "location_id": "us-east1-b",
        "customer_managed_key": "projects/p/locations/us-east1/keyRings/r/cryptoKeys/k",
    }
    config = {"redis-fleet:redis": json.dumps([entry]), "gcp:region": "europe-west1"}
    with pytest.raises(pulumi.RunError) as caught:
        run_program(config)
    assert str(caught.value).splitlines()[1:] == [
        f"  - {P}.location_id: 'us-east1-b' is not a zone of gcp:region europe-west1; allowed: a zone such as "
        "europe-west1-b",
        f"  - {P}.customer_managed_key: the key is in 'us-east1', not in gcp:region europe-west1; Memorystore "
        "needs a key in the instance's region",
    ]


def test_stack_file_checks_zones_against_its_own_region(tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.qa.yaml"
    stack.write_text(
        "config:\n  gcp:region: europe-west1\n  redis-fleet:redis:\n"
        "    - {name: cache, memory_gb: 2, tier: BASIC, location_id: europe-west1-c}\n"
        "    - {name: other, memory_gb: 2, tier: BASIC, location_id: europe-west2-a}\n"
    )
    with pytest.raises(StackConfigError) as caught:
        load_stack_file(stack)
    assert caught.value.problems == [
        "redis-fleet:redis[1] (other).location_id: 'europe-west2-a' is not a zone of gcp:region europe-west1; "
        "allowed: a zone such as europe-west1-b"
    ]


def test_misspelt_beta_flags_key_gets_a_suggestion_and_the_missing_key() -> None:
    assert problems_of({**BASE, "beta_flags": {"aply": {"x": "1"}}}) == [
        f"{P}.beta_flags.apply: required key is missing",
        f"{P}.beta_flags.aply: unknown key; did you mean 'apply'? allowed keys: apply, revert",
    ]


def test_duplicate_names_are_reported_with_both_positions() -> None:
    assert problems_of(BASE, {**BASE, "memory_gb": 3}) == [
        "redis-fleet:redis[1] (cache).name: 'cache' is already used by redis-fleet:redis[0]; "
        "instance names must be unique"
    ]


def test_every_problem_is_reported_at_once_with_the_file_name() -> None:
    with pytest.raises(StackConfigError) as caught:
        parse_clusters([{**BASE, "tier": "GOLD"}, {"name": "b", "memory_gb": 0}, "oops"], "Pulumi.prod.yaml")
    assert str(caught.value) == (
        "Pulumi.prod.yaml: 3 problems in the stack config\n"
        f"  - {P}.tier: 'GOLD' is not allowed; allowed values: BASIC, STANDARD_HA\n"
        "  - redis-fleet:redis[1] (b).memory_gb: 0 is out of range; allowed: 1 to 300\n"
        "  - redis-fleet:redis[2]: expected a mapping of cluster keys, got 'oops'"
    )


def test_missing_and_misshapen_cluster_lists(tmp_path: Path) -> None:
    empty = tmp_path / "Pulumi.dev.yaml"
    empty.write_text("config:\n  gcp:project: p\n")
    with pytest.raises(StackConfigError, match=r"redis-fleet:redis: required key is missing"):
        load_stack_file(empty)
    scalar = tmp_path / "Pulumi.qa.yaml"
    scalar.write_text("config:\n  redis-fleet:redis: cache\n")
    with pytest.raises(StackConfigError, match=r"redis-fleet:redis: expected a list of clusters, got 'cache'"):
        load_stack_file(scalar)
    broken = tmp_path / "Pulumi.bad.yaml"
    broken.write_text("config:\n  redis-fleet:redis: [\n")
    with pytest.raises(StackConfigError, match=r"(?s)Pulumi.bad.yaml: 1 problem.*not valid YAML at line 3, column 1"):
        load_stack_file(broken)


def test_invalid_config_registers_no_resource_and_fails_without_traceback() -> None:
    config = {"redis-fleet:redis": json.dumps([BASE, {**BASE, "name": "b", "tier": "GOLD", "memory_gb": 0}])}
    with pytest.raises(pulumi.RunError) as caught:
        run_program(config)
    assert str(caught.value).startswith(
        "invalid redis-fleet:redis config in Pulumi.staging.yaml: 2 problems in the stack config\n"
        "  - redis-fleet:redis[1] (b).memory_gb: 0 is out of range; allowed: 1 to 300\n"
        "  - redis-fleet:redis[1] (b).tier: 'GOLD' is not allowed; allowed values: BASIC, STANDARD_HA"
    )


def test_a_cluster_list_written_as_a_plain_string_gets_the_same_message_under_pulumi() -> None:
    with pytest.raises(pulumi.RunError) as caught:
        run_program({"redis-fleet:redis": "cache"})
    assert str(caught.value) == (
        "invalid redis-fleet:redis config in Pulumi.staging.yaml: 1 problem in the stack config\n"
        "  - redis-fleet:redis: expected a list of clusters, got 'cache'"
    )


def test_invalid_config_registers_nothing_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fixtures import pulumi_program

    registered: list[str] = []
    original = pulumi_program.RecordingMocks.new_resource

    def spy(self: pulumi_program.RecordingMocks, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        registered.append(args.name)
        return original(self, args)

    monkeypatch.setattr(pulumi_program.RecordingMocks, "new_resource", spy)
    with pytest.raises(pulumi.RunError):
        run_program({"redis-fleet:redis": json.dumps([BASE, {"name": "x", "memory_gb": 999}])})
    assert registered == []


def test_auth_enabled_true_is_accepted_as_written() -> None:
    (cluster,) = parse_clusters([{**BASE, "auth_enabled": True}], "Pulumi.staging.yaml")
    assert cluster.auth_enabled is True


def _doc_table(heading: str) -> dict[str, list[str]]:
    text = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `"):
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def test_configuration_doc_lists_every_cluster_key_with_type_default_and_allowed_values() -> None:
    from typing import get_args

    from redisguard.program.config import ClusterConfig

    rows = _doc_table("Keys of a cluster")
    assert set(rows) == set(ClusterConfig.model_fields)
    for key, (type_, default, allowed, *_) in rows.items():
        assert type_ and default and allowed, key
        # Every value an enum key accepts is written in its row.
        annotation = ClusterConfig.model_fields[key].annotation
        for candidate in (annotation, *get_args(annotation)):
            values = get_args(candidate)
            if values and all(isinstance(value, str) for value in values):
                for value in values:
                    assert f"`{value}`" in allowed, (key, value)
    assert set(_doc_table("Keys of a stack file")) == {"gcp:project", "gcp:region", "redis-fleet:redis"}
