"""The head every redisguard report shares (schema and tool version, time, exit code, summary) and the
exit-code convention of every command that reports findings."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from pydantic import Field

from redisguard.core.models import Frozen

# The version of the JSON layout of every redisguard report; raised when a field changes meaning
# or goes away (new fields do not raise it), so CI tooling can refuse a layout it does not know.
SCHEMA_VERSION = 1

# The `terraform plan -detailed-exitcode` convention every report command follows (drift-report,
# memory-report, daemon --once): 0 nothing found, 2 findings, 1 a check failed.
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_FINDINGS = 2
# The daemon's own: its config (redisguard.yaml or its web config) is invalid at start. sysexits.h's
# EX_CONFIG, so a service manager can tell "fix the file" (do not restart) from a crash (restart).
EXIT_CONFIG = 78
EXIT_IN_SYNC = EXIT_OK
EXIT_DRIFT = EXIT_FINDINGS
# Every report's output formats (`--format`): a table on the terminal, JSON and Markdown that travel.
FORMATS: tuple[str, ...] = ("table", "json", "markdown")
# The per-target statuses that are findings: drift (drift checks), a memory threshold crossed, a
# mandatory policy violated by what runs (compliance).
FINDING_STATUSES = frozenset({"drift", "threshold", "violation"})

def exit_code_of(statuses: Iterable[str]) -> int:
    """1 if any target's check failed (a partial answer is not an answer), else 2 if any found
    something (FINDING_STATUSES), else 0."""
    seen = set(statuses)
    if "error" in seen:
        return EXIT_ERROR
    if seen & FINDING_STATUSES:
        return EXIT_FINDINGS
    return EXIT_OK


@cache
def tool_version() -> str:
    """The installed redisguard's version, as `redisguard --version` prints it."""
    try:
        return version("redisguard")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


class JsonReport(Frozen):
    """What every redisguard report (drift, memory) holds and its JSON starts with: the schema
    and tool version, when it was made, the exit code and a summary CI tooling reads first."""

    generated_at: str = Field(default_factory=lambda: now_iso())

    @property
    def exit_code(self) -> int:
        raise NotImplementedError

    def summary(self) -> Mapping[str, int]:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        head = {
            "schema_version": SCHEMA_VERSION,
            "tool_version": tool_version(),
            "generated_at": data.pop("generated_at"),
            "exit_code": self.exit_code,
            "summary": dict(self.summary()),
        }
        return {**head, **data}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"


def now_iso() -> str:
    """Now in UTC to the second, as every report's `generated_at` shows it (2026-11-27T14:00:00Z)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
