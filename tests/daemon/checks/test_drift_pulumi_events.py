"""The pulumi drift engine's reading of engine events (built with the SDK's own types, and in the
CLI's JSON form) into drift items: changed and deleted resources, nested paths, secrets, ignore rules."""

from __future__ import annotations

import time
from typing import Any

from pulumi.automation import (
    DiffKind,
    EngineEvent,
    OpType,
    PropertyDiff,
    ResOutputsEvent,
    StepEventMetadata,
    StepEventStateMetadata,
)

from redisguard.daemon.checks import drift_pulumi
from redisguard.daemon.checks.ignore import IgnoreRules
from redisguard.daemon.config import IgnoreRule
from redisguard.daemon.reports.drift import DriftItem, PropertyDrift
from tests.fixtures.engine_events import BASE, urn, with_changes
from tests.fixtures.wire import INSTANCE_TYPE, SECRET_SIG, SECRET_SIG_KEY


def state(name: str, inputs: dict[str, Any], outputs: dict[str, Any] | None = None) -> StepEventStateMetadata:
    return StepEventStateMetadata(
        type=INSTANCE_TYPE,
        urn=urn(name),
        id=f"projects/redisguard-staging/locations/europe-west1/instances/{name}",
        parent="",
        provider="urn:pulumi:staging::redis-fleet::pulumi:providers:gcp::default::id",
        custom=True,
        inputs=inputs,
        outputs=outputs if outputs is not None else dict(inputs),
    )


def outputs_event(
    op: OpType,
    name: str,
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
    detailed: dict[str, DiffKind] | None = None,
    diffs: list[str] | None = None,
    type_: str = INSTANCE_TYPE,
    old_outputs: dict[str, Any] | None = None,
    new_outputs: dict[str, Any] | None = None,
) -> EngineEvent:
    metadata = StepEventMetadata(
        op=op,
        urn=urn(name, type_),
        type=type_,
        provider="",
        old=state(name, old, old_outputs) if old is not None else None,
        new=state(name, new, new_outputs) if new is not None else None,
        diffs=diffs if diffs is not None else sorted({p.split(".")[0].split("[")[0] for p in detailed or {}}),
        detailed_diff={path: PropertyDiff(kind, False) for path, kind in (detailed or {}).items()},
    )
    return EngineEvent(sequence=1, timestamp=int(time.time()), res_outputs_event=ResOutputsEvent(metadata=metadata))


def parse(events: list[EngineEvent], rules: IgnoreRules | None = None) -> list[DriftItem]:
    return drift_pulumi.items_from_events(events, rules or IgnoreRules())


def test_update_event_becomes_a_changed_item_with_state_and_live_values() -> None:
    live = with_changes(BASE, memorySizeGb=3)
    items = parse([outputs_event(OpType.UPDATE, "redis-sidekiq", BASE, live, {"memorySizeGb": DiffKind.UPDATE})])
    assert items == [
        DriftItem(
            resource="redis-sidekiq",
            type=INSTANCE_TYPE,
            kind="changed",
            properties=(PropertyDrift(path="memorySizeGb", expected=2, actual=3),),
        )
    ]


def test_live_values_come_from_the_refreshed_outputs_and_state_values_from_the_state_inputs() -> None:
    # The engine diffs the refreshed outputs (live) against the state's inputs (declared) and
    # inverts that diff; a provider may hand back the old inputs unchanged on refresh, so the
    # live side must not be read from the new inputs when the diff is not an input diff.
    live_outputs = with_changes(BASE, memorySizeGb=3, redisConfigs={"maxmemory-policy": "allkeys-lru", "activedefrag": "yes"})
    metadata = StepEventMetadata(
        op=OpType.UPDATE,
        urn=urn("redis-sidekiq"),
        type=INSTANCE_TYPE,
        provider="",
        old=state("redis-sidekiq", BASE, with_changes(BASE, memorySizeGb=2)),
        new=state("redis-sidekiq", BASE, live_outputs),  # inputs as they were, outputs as they are
        diffs=["memorySizeGb", "redisConfigs"],
        detailed_diff={
            "memorySizeGb": PropertyDiff(DiffKind.UPDATE, False),
            'redisConfigs["maxmemory-policy"]': PropertyDiff(DiffKind.UPDATE, False),
        },
    )
    event = EngineEvent(sequence=1, timestamp=0, res_outputs_event=ResOutputsEvent(metadata=metadata))
    [item] = parse([event])
    assert item.properties == (
        PropertyDrift(path="memorySizeGb", expected=2, actual=3),
        PropertyDrift(path="redisConfigs.maxmemory-policy", expected="noeviction", actual="allkeys-lru"),
    )
    # The same without a detailed diff (only the changed top-level keys).
    metadata.detailed_diff = {}
    [item] = parse([event])
    assert item.properties == (
        PropertyDrift(path="memorySizeGb", expected=2, actual=3),
        PropertyDrift(path="redisConfigs.maxmemory-policy", expected="noeviction", actual="allkeys-lru"),
    )


def test_delete_event_is_a_deleted_resource_and_same_is_nothing() -> None:
    items = parse(
        [
            outputs_event(OpType.SAME, "redis-cache", BASE, BASE),
            outputs_event(OpType.DELETE, "redis-sessions", BASE, None),
        ]
    )
    assert items == [DriftItem(resource="redis-sessions", type=INSTANCE_TYPE, kind="deleted")]


def test_nested_detailed_diff_paths_read_the_nested_values() -> None:
    live = with_changes(
        BASE,
        redisConfigs={"maxmemory-policy": "allkeys-lru", "activedefrag": "yes"},
        maintenancePolicy={"weeklyMaintenanceWindows": [{"day": "MONDAY", "startTime": {"hours": 8, "minutes": 30}}]},
        persistenceConfig={"persistenceMode": "DISABLED"},
        labels={"env": "staging", "owner": "bob"},
    )
    detailed = {
        'redisConfigs["maxmemory-policy"]': DiffKind.UPDATE,
        "maintenancePolicy.weeklyMaintenanceWindows[0].day": DiffKind.UPDATE,
        "maintenancePolicy.weeklyMaintenanceWindows[0].startTime.minutes": DiffKind.UPDATE,
        "persistenceConfig.persistenceMode": DiffKind.UPDATE,
        "persistenceConfig.rdbSnapshotPeriod": DiffKind.DELETE,
        "labels.owner": DiffKind.ADD,
    }
    [item] = parse([outputs_event(OpType.UPDATE, "redis-sidekiq", BASE, live, detailed)])
    assert item.properties == (
        PropertyDrift(path="labels.owner", expected=None, actual="bob"),
        PropertyDrift(path="maintenancePolicy.weeklyMaintenanceWindows[0].day", expected="SUNDAY", actual="MONDAY"),
        PropertyDrift(path="maintenancePolicy.weeklyMaintenanceWindows[0].startTime.minutes", expected=0, actual=30),
        PropertyDrift(path="persistenceConfig.persistenceMode", expected="RDB", actual="DISABLED"),
        PropertyDrift(path="persistenceConfig.rdbSnapshotPeriod", expected="TWENTY_FOUR_HOURS", actual=None),
        PropertyDrift(path="redisConfigs.maxmemory-policy", expected="noeviction", actual="allkeys-lru"),
    )


def test_secrets_show_as_secret_and_their_values_never_reach_the_report() -> None:
    old = with_changes(BASE)
    new = with_changes(BASE)
    old_out = with_changes(BASE, authString="[secret]")
    # An event log written with secrets shown must still not leak them into a report.
    new_out = with_changes(BASE, authString={SECRET_SIG_KEY: SECRET_SIG, "value": "hunter2-rotated"})
    new["labels"] = {"env": "staging", "token": "s3cr3t-label"}
    event = outputs_event(
        OpType.UPDATE,
        "redis-sidekiq",
        old,
        new,
        {"authString": DiffKind.UPDATE, "labels.token": DiffKind.ADD},
        old_outputs=old_out,
        new_outputs=new_out,
    )
    [item] = parse([event])
    assert item.properties == (
        PropertyDrift(path="authString", expected="[secret]", actual="[secret]"),
        PropertyDrift(path="labels.token", expected=None, actual="[secret]"),
    )
    assert "hunter2" not in item.model_dump_json()
    assert "s3cr3t" not in item.model_dump_json()


def test_builtin_and_user_ignore_rules_drop_properties_and_leave_no_phantom_drift() -> None:
    live = with_changes(
        BASE,
        labels={"env": "staging", "last-touched-by": "alice"},
        currentLocationId="europe-west1-c",
        maintenanceSchedules=[{"startTime": "2026-12-01T08:00:00Z"}],
        persistenceConfig={"persistenceMode": "RDB", "rdbSnapshotPeriod": "TWENTY_FOUR_HOURS", "rdbNextSnapshotTime": "x"},
    )
    noisy = {
        "currentLocationId": DiffKind.UPDATE,
        "maintenanceSchedules": DiffKind.ADD,
        "persistenceConfig.rdbNextSnapshotTime": DiffKind.ADD,
        'labels["last-touched-by"]': DiffKind.ADD,
        "nodes[0].zone": DiffKind.UPDATE,
    }
    rules = IgnoreRules([IgnoreRule(type=INSTANCE_TYPE, path="labels.last-touched-by")])
    only_noise = outputs_event(OpType.UPDATE, "redis-sidekiq", BASE, live, noisy)
    assert parse([only_noise], rules) == []

    live_with_memory = with_changes(live, memorySizeGb=4)
    mixed = outputs_event(OpType.UPDATE, "redis-cache", BASE, live_with_memory, {**noisy, "memorySizeGb": DiffKind.UPDATE})
    [item] = parse([mixed], rules)
    assert [p.path for p in item.properties] == ["memorySizeGb"]
    # Without the user rule the label is drift.
    [item] = parse([mixed])
    assert [p.path for p in item.properties] == ["labels.last-touched-by", "memorySizeGb"]


def test_user_rule_for_one_resource_leaves_the_others_reported() -> None:
    live = with_changes(BASE, memorySizeGb=5)
    events = [
        outputs_event(OpType.UPDATE, "redis-cache", BASE, live, {"memorySizeGb": DiffKind.UPDATE}),
        outputs_event(OpType.UPDATE, "redis-sidekiq", BASE, live, {"memorySizeGb": DiffKind.UPDATE}),
    ]
    rules = IgnoreRules([IgnoreRule(type="gcp:redis/*", path="memorySizeGb", resource="redis-cache")])
    assert [i.resource for i in parse(events, rules)] == ["redis-sidekiq"]


def test_without_detailed_diff_the_changed_keys_are_compared_down_to_the_leaves() -> None:
    live = with_changes(BASE, labels={"env": "prod"}, memorySizeGb=2)
    event = outputs_event(OpType.UPDATE, "redis-sidekiq", BASE, live, detailed=None, diffs=["labels"])
    [item] = parse([event])
    assert item.properties == (PropertyDrift(path="labels.env", expected="staging", actual="prod"),)


def test_legacy_refresh_without_any_diff_compares_outputs_and_applies_ignore_rules() -> None:
    old_out = with_changes(BASE, currentLocationId="europe-west1-b", host="10.0.0.3")
    new_out = with_changes(BASE, currentLocationId="europe-west1-c", host="10.0.0.3", memorySizeGb=4)
    event = outputs_event(OpType.UPDATE, "redis-sidekiq", BASE, BASE, detailed=None, diffs=[], old_outputs=old_out, new_outputs=new_out)
    [item] = parse([event])
    assert item.properties == (PropertyDrift(path="memorySizeGb", expected=2, actual=4),)


def test_stack_and_provider_resources_are_never_drift() -> None:
    events = [
        outputs_event(OpType.UPDATE, "redis-fleet-staging", {"a": 1}, {"a": 2}, {"a": DiffKind.UPDATE}, type_="pulumi:pulumi:Stack"),
        outputs_event(OpType.UPDATE, "default", {"project": "a"}, {"project": "b"}, {"project": DiffKind.UPDATE}, type_="pulumi:providers:gcp"),
    ]
    assert parse(events) == []


def test_events_in_the_cli_json_form_parse_to_the_same_items() -> None:
    """The event log form the CLI writes (apitype JSON), parsed by the SDK's own from_json."""
    raw = {
        "sequence": 7,
        "timestamp": 1700000000,
        "resOutputsEvent": {
            "metadata": {
                "op": "update",
                "urn": urn("redis-sidekiq"),
                "type": INSTANCE_TYPE,
                "provider": "",
                "old": {"type": INSTANCE_TYPE, "urn": urn("redis-sidekiq"), "id": "x", "parent": "", "provider": "", "inputs": BASE, "outputs": BASE},
                "new": {"type": INSTANCE_TYPE, "urn": urn("redis-sidekiq"), "id": "x", "parent": "", "provider": "", "inputs": with_changes(BASE, memorySizeGb=3), "outputs": with_changes(BASE, memorySizeGb=3)},
                "diffs": ["memorySizeGb"],
                "detailedDiff": {"memorySizeGb": {"diffKind": "update", "inputDiff": False}},
            },
            "planning": True,
        },
    }
    items = parse([EngineEvent.from_json(raw)])
    assert items[0].properties == (PropertyDrift(path="memorySizeGb", expected=2, actual=3),)
