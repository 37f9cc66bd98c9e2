"""The one property reader: the declared side reads exactly the inputs the program registers with the Pulumi engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from redisguard.daemon.fleet.paths import parse_path
from redisguard.daemon.fleet.properties import NOT_COMPARED, expected_properties
from redisguard.program.config import load_stack_file
from tests.fixtures.pulumi_program import run_stack
from tests.fixtures.repo import REPO
from tests.fixtures.wire import INSTANCE_TYPE

STACK_FILES = [REPO / "program" / "Pulumi.staging.yaml", REPO / "program" / "Pulumi.production.yaml"]


def _lookup(inputs: dict[str, Any], path: str) -> Any:
    """The input at `path`; None where the program leaves it unset (as the reader shows an unset field)."""
    value: Any = inputs
    for part in parse_path(path):
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value


@pytest.mark.parametrize("stack_file", STACK_FILES, ids=lambda p: p.name)
def test_expected_values_are_the_inputs_the_program_registers(stack_file: Path) -> None:
    """The live engine must expect exactly what `pulumi up` would set, or it reports phantom drift."""
    registered = {r.name: r.inputs for r in run_stack(stack_file) if r.type == INSTANCE_TYPE}
    stack = load_stack_file(stack_file)
    assert set(registered) == {c.name for c in stack.clusters}
    for cluster in stack.clusters:
        inputs = registered[cluster.name]
        for path, value in expected_properties(cluster).items():
            assert _lookup(inputs, path) == value, (cluster.name, path)
        # Every redis config and label the program sets is compared.
        assert {f"redisConfigs.{k}" for k in inputs.get("redisConfigs") or {}} <= set(expected_properties(cluster))
        assert {f"labels.{k}" for k in inputs.get("labels") or {}} <= set(expected_properties(cluster))
        # Every other input the program sets is compared, or listed with the reason it is not.
        compared_roots = {parse_path(path)[0] for path in expected_properties(cluster)}
        assert set(inputs) - compared_roots <= set(NOT_COMPARED), (cluster.name, set(inputs) - compared_roots)
