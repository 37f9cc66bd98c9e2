"""The policy pack's mandatory rules in process: what a codified or adopted entry would be
blocked for by `pulumi up`, with the stack's own policy config (policies/pack_config.py).
A live instance's inputs come from fleet/inverse.py's live_policy_inputs (the daemon's
compliance check judges the same inputs over the Analyzer protocol)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redisguard.daemon.fleet.inverse import nest_properties
from redisguard.daemon.fleet.properties import expected_properties
from redisguard.program.config import ClusterConfig


def policy_inputs(cluster: ClusterConfig) -> dict[str, Any]:
    """The inputs the program registers for a cluster, as far as the pack's mandatory rules read them."""
    inputs = nest_properties(expected_properties(cluster))
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
