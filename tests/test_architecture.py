"""The import direction docs/architecture.md promises: core imports no part, and no part imports the daemon."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.fixtures.repo import REPO

PARTS = ("core", "program", "policies", "daemon", "emulator")
# What each part may import besides core and itself (docs/architecture.md, "Imports point one way").
ALLOWED = {
    "core": set(),
    "program": set(),
    "policies": {"program"},
    "emulator": {"program"},
    "daemon": {"program", "policies", "emulator"},
}


def _imported_parts(path: Path) -> set[tuple[str, int]]:
    """(part, line) for every `redisguard.<part>` the module imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "redisguard" and len(parts) > 1 and parts[1] in PARTS:
                found.add((parts[1], node.lineno))
    return found


@pytest.mark.parametrize("part", PARTS)
def test_a_part_imports_only_core_and_the_parts_below_it(part: str) -> None:
    wrong = sorted(
        f"{path.relative_to(REPO)}:{line} imports redisguard.{imported}"
        for path in (REPO / part).rglob("*.py")
        for imported, line in _imported_parts(path)
        if imported not in {part, "core"} | ALLOWED[part]
    )
    assert wrong == []
