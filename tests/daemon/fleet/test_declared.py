"""The declared side of a stack from its config (under any key) or its deployed state (fleet/declared.py), and
what the live engine's compare makes of each: no false drift for what a program leaves to its defaults."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from google.cloud import redis_v1

from redisguard.core.pulumi import SECRET_SIG, SECRET_SIG_KEY
from redisguard.daemon.checks.drift_live import compare
from redisguard.daemon.checks.ignore import IgnoreRules
from redisguard.daemon.config import config_from_mapping
from redisguard.daemon.fleet.declared import from_cluster, from_resource, pending_changes
from redisguard.daemon.fleet.inventory import LiveKey
from redisguard.daemon.fleet.pending import PendingChange, PendingProperty
from redisguard.daemon.fleet.properties import input_properties
from redisguard.daemon.fleet.stacks import choose_source, read_stack_files
from redisguard.daemon.fleet.state import StateResource
from redisguard.daemon.reports.drift import PropertyDrift
from redisguard.program.config import parse_stack_file

PROJECT, REGION = "ampledash-staging", "europe-west1"
URN = "urn:pulumi:staging::ampledash-infra::gcp:redis/instance:Instance::redis-sidekiq"

# The background team's entry, as its own stack file holds it under its own key.
TEAM_STACK = f"""config:
  gcp:project: {PROJECT}
  gcp:region: {REGION}
  ampledash-infra:redis:
    - name: redis-sidekiq
      active_defrag: true
      maintenance_start_hours: 8
      maintenance_start_minutes: 0
      maintenance_window_day: SUNDAY
      max_memory_policy: noeviction
      memory_gb: 2
      redis_version: REDIS_6_X
      tier: BASIC
"""

# What the team's TypeScript createRedis sends for that entry, as the state records it (the
# provider's Check filled in transitEncryptionMode, as the real one does).
TEAM_INPUTS: dict[str, Any] = {
    "name": "redis-sidekiq",
    "displayName": "redis-sidekiq",
    "memorySizeGb": 2.0,
    "authEnabled": True,
    "tier": "BASIC",
    "maintenancePolicy": {"weeklyMaintenanceWindows": [{"day": "SUNDAY", "startTime": {"hours": 8, "minutes": 0}}]},
    "redisConfigs": {"maxmemory-policy": "noeviction", "activedefrag": "yes"},
    "redisVersion": "REDIS_6_X",
    "transitEncryptionMode": "DISABLED",
}


def live(**overrides: Any) -> redis_v1.Instance:
    """The instance the team's program created, as the Memorystore API lists it (TLS and persistence left unset)."""
    fields: dict[str, Any] = {
        "name": f"projects/{PROJECT}/locations/{REGION}/instances/redis-sidekiq",
        "display_name": "redis-sidekiq",
        "memory_size_gb": 2,
        "tier": "BASIC",
        "redis_version": "REDIS_6_X",
        "auth_enabled": True,
        "redis_configs": {"maxmemory-policy": "noeviction", "activedefrag": "yes"},
        "maintenance_policy": {"weekly_maintenance_window": [{"day": "SUNDAY", "start_time": {"hours": 8}}]},
        "state": "READY",
    }
    return redis_v1.Instance(**{**fields, **overrides})


def resource(inputs: dict[str, Any] | None = None, **fields: Any) -> StateResource:
    return StateResource(
        urn=URN,
        type="gcp:redis/instance:Instance",
        id=fields.get("id", f"projects/{PROJECT}/locations/{REGION}/instances/redis-sidekiq"),
        inputs=TEAM_INPUTS if inputs is None else inputs,
        outputs=fields.get("outputs", {}),
        parent=None,
        provider=None,
    )


def team_stack(key: str = "ampledash-infra:redis") -> Any:
    return parse_stack_file(TEAM_STACK.replace("ampledash-infra:redis", key), Path("Pulumi.staging.yaml"), key=key)


# --- the state of any program ------------------------------------------------------------------


def test_state_inputs_are_read_at_the_property_readers_paths() -> None:
    props, secret = input_properties(TEAM_INPUTS)
    assert props == {
        "displayName": "redis-sidekiq",
        "memorySizeGb": 2,  # the export's 2.0 is the API's 2
        "tier": "BASIC",
        "redisVersion": "REDIS_6_X",
        "authEnabled": True,
        "transitEncryptionMode": "DISABLED",
        "maintenancePolicy.weeklyMaintenanceWindows[0].day": "SUNDAY",
        "maintenancePolicy.weeklyMaintenanceWindows[0].startTime.hours": 8,
        "maintenancePolicy.weeklyMaintenanceWindows[0].startTime.minutes": 0,
        "redisConfigs.maxmemory-policy": "noeviction",
        "redisConfigs.activedefrag": "yes",
    }
    assert secret == []


def test_what_the_team_deployed_is_in_sync_with_what_runs() -> None:
    declared = from_resource(resource(), None)
    assert declared is not None
    assert (declared.resource, declared.urn, declared.project, declared.region) == ("redis-sidekiq", URN, PROJECT, REGION)
    assert compare(declared, live(), IgnoreRules()) == []


def test_out_of_band_changes_are_drift_at_the_property_level() -> None:
    declared = from_resource(resource(), None)
    assert declared is not None
    changed = live(memory_size_gb=3, redis_configs={"maxmemory-policy": "allkeys-lru", "activedefrag": "yes", "notify-keyspace-events": "Ex"})
    assert compare(declared, changed, IgnoreRules()) == [
        PropertyDrift(path="memorySizeGb", expected=2, actual=3),
        PropertyDrift(path="redisConfigs.maxmemory-policy", expected="noeviction", actual="allkeys-lru"),
        # The provider sets the whole redisConfigs map the program gives: a config added by hand is drift.
        PropertyDrift(path="redisConfigs.notify-keyspace-events", expected=None, actual="Ex"),
    ]


def test_what_a_program_leaves_to_defaults_is_never_drift() -> None:
    """No persistence, no labels in the inputs: the live values are not compared, and a label added
    by hand is not drift (the gcp provider manages only the labels a program sets)."""
    declared = from_resource(resource(), None)
    assert declared is not None
    running = live(persistence_config={"persistence_mode": "RDB"}, labels={"owner": "data-team"}, location_id=f"{REGION}-b")
    assert compare(declared, running, IgnoreRules()) == []


def test_a_secret_input_is_not_compared_and_never_read() -> None:
    secret = {SECRET_SIG_KEY: SECRET_SIG, "ciphertext": "v1:abc"}
    declared = from_resource(resource({**TEAM_INPUTS, "displayName": secret, "labels": secret}), None)
    assert declared is not None
    assert declared.secret_paths == ("displayName", "labels")
    assert "displayName" not in declared.properties
    assert compare(declared, live(display_name="changed"), IgnoreRules()) == []


def test_a_resource_without_an_id_says_where_from_its_outputs_or_not_at_all() -> None:
    by_outputs = from_resource(resource(id=None, outputs={"project": PROJECT, "region": REGION, "name": "redis-sidekiq"}), None)
    assert by_outputs is not None and by_outputs.holds(LiveKey(PROJECT, REGION, "redis-sidekiq"))
    assert from_resource(resource(id=None, outputs={}), None) is None


# --- our flat format under a team's own key ------------------------------------------------------


def test_under_a_teams_key_only_what_the_entry_states_is_compared() -> None:
    """The team's program sets no TLS and no persistence: redisguard's own defaults (TLS on, RDB)
    must not become drift for a program that never had them."""
    stack = team_stack()
    (cluster,) = stack.clusters
    declared = from_cluster(cluster, stack, PROJECT)
    assert "transitEncryptionMode" not in declared.properties
    assert "persistenceConfig.persistenceMode" not in declared.properties
    assert compare(declared, live(), IgnoreRules()) == []
    assert compare(declared, live(memory_size_gb=4), IgnoreRules()) == [PropertyDrift(path="memorySizeGb", expected=2, actual=4)]


def test_under_redisguards_own_key_the_programs_defaults_are_declared() -> None:
    stack = team_stack("redis-fleet:redis")
    (cluster,) = stack.clusters
    drifts = {d.path for d in compare(from_cluster(cluster, stack, PROJECT), live(), IgnoreRules())}
    assert {"transitEncryptionMode", "persistenceConfig.persistenceMode"} <= drifts


# --- pending: the config ahead of the state --------------------------------------------------------


def test_pending_is_the_config_not_yet_applied_never_drift() -> None:
    stack = team_stack()
    (cluster,) = stack.clusters
    bigger = cluster.model_copy(update={"memory_gb": 4})
    new = cluster.model_copy(update={"name": "redis-queue"})
    configured = [from_cluster(c, stack, PROJECT) for c in (bigger, new)]
    deployed = [d for d in (from_resource(resource(), None), from_resource(resource(id=f"projects/{PROJECT}/locations/{REGION}/instances/redis-old"), None)) if d]
    assert pending_changes(configured, deployed) == [
        PendingChange(resource="redis-sidekiq", change="update", properties=(PendingProperty(path="memorySizeGb", config=4, deployed=2),)),
        PendingChange(resource="redis-queue", change="create"),
        PendingChange(resource="redis-sidekiq", change="delete"),  # the old instance: its logical name is the URN's
    ]
    assert pending_changes([from_cluster(cluster, stack, PROJECT)], deployed[:1]) == []


# --- which source, per stack -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "settings", "expected"),
    [
        ({"staging": TEAM_STACK}, {"config_key": "ampledash-infra:redis"}, ("config", "auto: Pulumi.staging.yaml has ampledash-infra:redis")),
        ({"staging": TEAM_STACK}, {}, ("state", "auto: Pulumi.staging.yaml has no redis-fleet:redis")),
        ({}, {}, ("state", "auto: Pulumi.staging.yaml does not exist")),
        ({"staging": TEAM_STACK.replace("memory_gb: 2", "memory_gb: two")}, {"config_key": "ampledash-infra:redis"},
         ("config", "auto: Pulumi.staging.yaml cannot be read")),
        ({"staging": TEAM_STACK}, {"config_key": "ampledash-infra:redis", "stack_sources": {"staging": "state"}},
         ("state", "pulumi.stack_sources.staging is state")),
        ({"staging": TEAM_STACK}, {"source": "both"}, ("both", "pulumi.source is both")),
    ],
    ids=["own-key", "other-key", "no-file", "broken-file", "override", "named"],
)
def test_each_stack_gets_its_source_and_why(tmp_path: Path, files: dict[str, str], settings: dict[str, Any], expected: tuple[str, str]) -> None:
    for name, text in files.items():
        (tmp_path / f"Pulumi.{name}.yaml").write_text(text)
    config = config_from_mapping({"pulumi": {"work_dir": str(tmp_path), "stacks": ["staging"], **settings}})
    (file,) = read_stack_files(config)
    assert choose_source(config, file) == expected


def test_a_stack_file_is_required_to_have_the_key_only_when_its_source_is_the_config(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.staging.yaml").write_text(TEAM_STACK)
    state = config_from_mapping({"pulumi": {"work_dir": str(tmp_path), "stacks": ["staging"]}})
    (file,) = read_stack_files(state)
    assert file.stack is not None and not file.stack.has_key and file.stack.project == PROJECT
    named = config_from_mapping({"pulumi": {"work_dir": str(tmp_path), "stacks": ["staging"], "source": "config"}})
    (file,) = read_stack_files(named)
    assert file.stack is None and file.problem is not None and "redis-fleet:redis: required key is missing" in file.problem


def test_a_stack_file_rewritten_with_the_same_size_and_mtime_is_parsed_again(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.staging.yaml"
    path.write_text(TEAM_STACK)
    config = config_from_mapping({"pulumi": {"work_dir": str(tmp_path), "stacks": ["staging"], "config_key": "ampledash-infra:redis"}})
    (first,) = read_stack_files(config)
    before = path.stat()
    path.write_text(TEAM_STACK.replace("memory_gb: 2", "memory_gb: 3"))  # same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))

    (again,) = read_stack_files(config)

    assert first.stack is not None and again.stack is not None
    assert [c.memory_gb for c in first.stack.clusters] == [2] and [c.memory_gb for c in again.stack.clusters] == [3]
