"""The plain description of what the program registers (program/resources.py) is what it registers under the SDK's mocks.

`policy-check` judges the description without running the program, so any difference here
would be a verdict on resources `pulumi preview` never sends to the pack.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest

from redisguard.program.config import StackConfigError, stack_config_values, stack_from_config_values
from redisguard.program.resources import stack_resources
from tests.fixtures.policy_inputs import BAD_PRODUCTION
from tests.fixtures.pulumi_program import run_program
from tests.fixtures.repo import REPO

STACK_FILES = [REPO / "program" / "Pulumi.staging.yaml", REPO / "program" / "Pulumi.production.yaml"]

# Every branch of the description: HA with and without read replicas and an explicit count,
# persistence off (no snapshot period), no maintenance window, a window at a given minute, an
# explicit empty display name, CMEK, private services access, a zone, beta flags with and without
# a revert, and the import option (an option, not an input).
ENTRIES: list[dict[str, Any]] = [
    {"name": "redis-a", "memory_gb": 5, "tier": "STANDARD_HA", "read_replicas": True, "replica_count": 3,
     "redis_version": "REDIS_7_2", "maintenance_window_day": "MONDAY", "maintenance_start_hours": 1,
     "maintenance_start_minutes": 30, "snapshot_period": "ONE_HOUR", "labels": {"team": "a"}},
    {"name": "redis-b", "memory_gb": 1, "tier": "BASIC", "persistence_mode": "DISABLED", "display_name": "",
     "transit_encryption": "DISABLED", "deletion_protection": False, "max_memory_policy": "allkeys-lfu",
     "active_defrag": False, "beta_flags": {"apply": {"maintenance-version": "20240101", "x": True}}},
    {"name": "redis-c", "memory_gb": 2, "tier": "STANDARD_HA", "connect_mode": "PRIVATE_SERVICE_ACCESS",
     "authorized_network": "projects/p/global/networks/v", "location_id": "europe-west1-c",
     "customer_managed_key": "projects/p/locations/europe-west1/keyRings/r/cryptoKeys/k", "import_existing": True,
     "beta_flags": {"apply": {"y": 1, "z": False}, "revert": {"y": 0}}},
]  # fmt: skip


def _registered(values: dict[str, str], stack: str) -> list[tuple[str, str, str]]:
    return sorted((r.type, r.name, json.dumps(r.inputs, sort_keys=True)) for r in run_program(values, stack=stack, preview=True).resources)


def _described(values: dict[str, str], stack: str) -> list[tuple[str, str, str]]:
    # The engine's numbers are doubles: 2 and 2.0 are the same value on the wire.
    def doubles(value: Any) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return float(value)
        if isinstance(value, dict):
            return {k: doubles(v) for k, v in value.items()}
        if isinstance(value, list):
            return [doubles(v) for v in value]
        return value

    resources = stack_resources(stack_from_config_values(stack, values))
    return sorted((r.type, r.name, json.dumps(doubles(r.inputs), sort_keys=True)) for r in resources)


@pytest.mark.parametrize("stack_file", STACK_FILES, ids=lambda p: p.name)
def test_the_shipped_stacks_are_described_as_the_program_registers_them(stack_file: Path) -> None:
    values = stack_config_values(stack_file)
    stack = stack_file.name.split(".")[1]

    assert _described(values, stack) == _registered(values, stack)


@pytest.mark.parametrize("region", ["europe-west1", None], ids=["region", "provider-default-region"])
def test_every_branch_is_described_as_the_program_registers_it(region: str | None) -> None:
    values = {"redis-fleet:redis": json.dumps(ENTRIES), "gcp:project": "p"}
    if region is not None:
        values["gcp:region"] = region

    described = _described(values, "staging")

    assert described == _registered(values, "staging")
    assert [t for t, _, _ in described].count("command:local:Command") == 2


@pytest.mark.parametrize(
    "raw",
    [BAD_PRODUCTION.replace("memory_gb: 1", "memory_gb: 1000"), "config:\n  redis-fleet:redis: cache\n", "config: {}\n"],
    ids=["out-of-bounds", "not-a-list", "missing"],
)
def test_an_invalid_stack_config_is_refused_with_the_programs_own_words(tmp_path: Path, raw: str) -> None:
    stack_file = tmp_path / "Pulumi.production.yaml"
    stack_file.write_text(raw)
    values = stack_config_values(stack_file)

    with pytest.raises(pulumi.RunError) as program:
        run_program(values, stack="production", preview=True)
    with pytest.raises(StackConfigError) as described:
        stack_from_config_values("production", values)

    assert str(program.value) == f"invalid redis-fleet:redis config in {described.value}"
