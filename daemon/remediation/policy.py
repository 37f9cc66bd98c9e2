"""The policy pack's mandatory rules in process: what a codified or adopted entry would be
blocked for by `pulumi up`, with the stack's own policy config (policies/pack_config.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from redisguard.daemon.fleet.properties import expected_properties, instance_properties
from redisguard.program.config import ClusterConfig

if TYPE_CHECKING:
    from google.cloud import redis_v1


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted property paths as the nested camelCase inputs the pack reads."""
    nested: dict[str, Any] = {}
    for path, value in flat.items():
        head, _, rest = path.partition(".")
        if head in ("redisConfigs", "labels"):
            nested.setdefault(head, {})[rest] = value
        elif rest:
            nested.setdefault(head, {})[rest] = value
        else:
            nested[head] = value
    return nested


def policy_inputs(cluster: ClusterConfig) -> dict[str, Any]:
    """The inputs the program registers for a cluster, as far as the pack's mandatory rules read them."""
    inputs = _nest(expected_properties(cluster))
    inputs.update(
        connectMode=cluster.connect_mode,
        deletionProtection=cluster.deletion_protection,
        labels=dict(cluster.labels),
    )
    for key, value in (
        ("authorizedNetwork", cluster.authorized_network),
        ("customerManagedKey", cluster.customer_managed_key),
        ("locationId", cluster.location_id),
    ):
        if value is not None:
            inputs[key] = value
    return inputs


def live_policy_inputs(instance: redis_v1.Instance, entry: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs a codified `entry` registers for the live `instance` it declares."""
    inputs = _nest(instance_properties(instance))
    inputs["labels"] = dict(instance.labels)
    for key, value in (
        ("authorizedNetwork", instance.authorized_network),
        ("customerManagedKey", instance.customer_managed_key),
        ("locationId", instance.location_id),
        ("connectMode", entry.get("connect_mode", "DIRECT_PEERING")),
    ):
        if value:
            inputs[key] = value
    inputs["deletionProtection"] = True
    return inputs


def mandatory_violations(name: str, inputs: Mapping[str, Any], stack: str) -> dict[str, list[str]]:
    """Policy name -> messages of the pack's rules that are mandatory for `stack` (its policies/config file)."""
    from redisguard.policies.pack_config import stack_policy_config
    from redisguard.policies.rules import RULES, Instance

    config = stack_policy_config(stack)
    found: dict[str, list[str]] = {}
    for rule in RULES:
        if config.level(rule.name, rule.level.value) != "mandatory":
            continue
        options = config.options(rule.name, rule.config)
        if options.exempts(name):
            continue
        messages = rule.check(Instance(name, inputs, stack), options)
        if messages:
            found[rule.name] = messages
    return found
