"""The redis-fleet program's own resource inputs (from a mocks run of each stack file) sent to the policy pack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.analyzer import PACK_DIR, StackResource
from tests.fixtures.policy_inputs import BAD_PRODUCTION
from tests.fixtures.pulumi_program import RegisteredResource, run_stack
from tests.fixtures.repo import REPO
from tests.fixtures.wire import INSTANCE_TYPE

pytestmark = pytest.mark.slow



def _analyze_all(pack: Any, resources: list[RegisteredResource]) -> dict[str, Any]:
    return {r.name: pack.analyze(r.type, r.name, r.inputs) for r in resources if r.type == INSTANCE_TYPE}


def _stack_resources(resources: list[RegisteredResource]) -> list[StackResource]:
    return [StackResource(r.type, r.name, r.inputs) for r in resources]


@pytest.mark.parametrize("config", [None, PACK_DIR / "config" / "production.json"], ids=["defaults", "production.json"])
def test_production_stack_passes_every_policy(pack_for: Any, config: Path | None) -> None:
    resources = run_stack(REPO / "program" / "Pulumi.production.yaml")
    pack = pack_for("production", config)

    results = _analyze_all(pack, resources)

    assert sorted(results) == ["redis-cache", "redis-ratelimit", "redis-sessions", "redis-sidekiq"]
    for name, result in results.items():
        assert result.diagnostics == (), (name, [d.message for d in result.diagnostics])
        # Production policies did run: none was skipped as "not production" or "unknown".
        assert result.not_applicable == {}, name
    assert pack.analyze_stack(_stack_resources(resources)).diagnostics == ()


def test_staging_stack_passes_mandatory_policies_and_gets_advice(pack_for: Any) -> None:
    resources = run_stack(REPO / "program" / "Pulumi.staging.yaml")
    pack = pack_for("staging", PACK_DIR / "config" / "staging.json")

    results = _analyze_all(pack, resources)

    assert set(results) == {"redis-sidekiq", "redis-cache", "redis-sessions"}
    for name, result in results.items():
        assert not result.blocks, (name, result.mandatory)
    sidekiq = results["redis-sidekiq"]
    assert (
        "redisVersion must be one of REDIS_7_0, REDIS_7_2; found 'REDIS_6_X'"
        in sidekiq.messages("memorystore-supported-redis-version")[0]
    )
    assert "missing env, team" in sidekiq.messages("memorystore-required-labels")[0]
    # Production-only rules leave staging's BASIC, unpersisted cache alone.
    assert "memorystore-high-availability-in-production" in results["redis-cache"].not_applicable
    assert pack.analyze_stack(_stack_resources(resources)).diagnostics == ()


def test_a_deliberately_bad_production_cluster_is_blocked_with_the_expected_messages(
    pack_for: Any, tmp_path: Path
) -> None:
    stack_file = tmp_path / "Pulumi.production.yaml"
    stack_file.write_text(BAD_PRODUCTION)
    resources = run_stack(stack_file)
    pack = pack_for("production")

    (result,) = _analyze_all(pack, resources).values()

    assert result.mandatory == {
        "memorystore-high-availability-in-production",
        "memorystore-persistence-in-production",
        "memorystore-transit-encryption-required",
    }
    expected = {
        "memorystore-high-availability-in-production": "'redis-shortcut': tier must be STANDARD_HA in production "
        "(stack 'production' matches 'production'); found 'BASIC'.",
        "memorystore-persistence-in-production": "'redis-shortcut': persistenceConfig.persistenceMode must be RDB "
        "in production (stack 'production' matches 'production'); found 'DISABLED'.",
        "memorystore-transit-encryption-required": "'redis-shortcut': transitEncryptionMode must be "
        "SERVER_AUTHENTICATION (TLS in transit); found 'DISABLED'.",
    }
    for policy, message in expected.items():
        (got,) = result.messages(policy)
        assert got.endswith(message), got
    assert "memorystore-cmek-in-production" in result.advisory
    assert "memorystore-private-networking" in result.advisory
