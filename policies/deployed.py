"""A stack's deployed resources as `policy-check --state` hands them to the pack; light to import (no Pulumi), so the command builds them before it imports the SDK."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class JudgedResource:
    """One resource as the pack is asked about it, as the engine asks: `Analyze` with its inputs,
    `AnalyzeStack` with its outputs (a program under mocks has only inputs: both are those). From a
    stack's state (`pulumi stack export`), whatever program deployed it, secret values are the
    engine's encrypted secret objects."""

    type: str
    name: str
    inputs: Mapping[str, Any]
    outputs: Mapping[str, Any]
    protect: bool = False


@dataclass(frozen=True)
class DeployedStack:
    """A stack's deployed resources, or why they could not be read."""

    stack: str
    project: str = ""
    """The Pulumi project its URNs name (the pack is told it, as the engine does)."""
    resources: Sequence[JudgedResource] = ()
    source: str = "backend"
    """Where the resources came from: "backend" (the stack's), or an export file."""
    error: str | None = None
