"""`policy-check --format json|markdown` as CI reads it: the head every redisguard report starts with, then the verdicts."""

from __future__ import annotations

import json

from redisguard.core.reports import SCHEMA_VERSION, tool_version
from redisguard.policies.check import PolicyCheckReport, StackVerdict, Violation, render_json, render_markdown

BLOCKED = StackVerdict(
    stack="production",
    policy_config="policies/config/production.json",
    resources=3,
    violations=(
        Violation(policy="memorystore-auth-required", level="mandatory", resource="redis-a",
                  type="gcp:redis/instance:Instance", message="Set `authEnabled: true` | now false"),
        Violation(policy="memorystore-required-labels", level="advisory", resource="redis-a",
                  type="gcp:redis/instance:Instance", message="label team missing"),
    ),
)  # fmt: skip
PASSED = StackVerdict(stack="staging", policy_config=None, resources=2)
FAILED = StackVerdict(stack="dev", policy_config=None, resources=0, error="program/Pulumi.dev.yaml: stack file not found")


def test_json_starts_with_the_shared_head_and_keeps_every_verdict_field() -> None:
    report = PolicyCheckReport(generated_at="2026-12-06T18:00:00Z", pack="/repo/policies", stacks=(BLOCKED, PASSED))

    data = json.loads(render_json(report))

    # The head drift-report and memory-report start with, in their order, then the report's own fields.
    assert list(data) == [
        "schema_version", "tool_version", "generated_at", "exit_code", "summary", "pack", "from_checkout", "stacks"
    ]
    assert data["schema_version"] == SCHEMA_VERSION and data["tool_version"] == tool_version()
    assert data["generated_at"] == "2026-12-06T18:00:00Z" and data["exit_code"] == 2
    assert data["summary"] == {
        "stacks": 2, "passed": 1, "blocked": 1, "errors": 0, "mandatory_violations": 1, "advisory_violations": 1,
    }  # fmt: skip
    production, staging = data["stacks"]
    assert production["blocked"] is True and staging["blocked"] is False
    assert production["violations"][0] == {
        "policy": "memorystore-auth-required", "level": "mandatory", "resource": "redis-a",
        "type": "gcp:redis/instance:Instance", "message": "Set `authEnabled: true` | now false",
    }  # fmt: skip
    assert set(production) == {
        "stack", "policy_config", "resources", "state", "violations", "error", "duration_seconds", "blocked"
    }  # fmt: skip
    assert production["state"] is None  # the program's resources were judged, not a deployed state


def test_a_stack_that_could_not_be_checked_wins_over_a_violation() -> None:
    data = json.loads(render_json(PolicyCheckReport(pack="policies", stacks=(BLOCKED, FAILED))))

    assert data["exit_code"] == 1
    assert data["summary"]["errors"] == 1 and data["summary"]["blocked"] == 1
    assert data["generated_at"].endswith("Z")


def test_markdown_keeps_a_messages_code_and_escapes_its_pipes() -> None:
    text = render_markdown(PolicyCheckReport(pack="policies", stacks=(BLOCKED,)))

    assert "| mandatory | `memorystore-auth-required` | redis-a | Set `authEnabled: true` \\| now false |" in text
