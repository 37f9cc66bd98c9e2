"""The architecture docs/architecture.md draws, held on every run: import-linter's contracts
(pyproject.toml [tool.importlinter]), which daemon modules talk to Google's API clients, and no
module reaching into another's private names."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.repo import REPO

PARTS = ("core", "program", "policies", "daemon", "emulator")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

# Daemon modules outside checks/ that may import google.cloud at run time, each with its reason.
# Everything else gets its clients from core/gcp.py and its models from reports/, so the status
# page, the reports and --help never load the client libraries.
GOOGLE_CLIENT_EXCEPTIONS = {
    # The demo plays the person in the console: it changes an instance out of band through the
    # official client, as a user would.
    "daemon/demo/console.py": "the demo's out-of-band change",
}


def _python_files(*folders: str) -> Iterator[Path]:
    for folder in folders:
        yield from sorted((REPO / folder).rglob("*.py"))


def _runtime_imports(tree: ast.Module) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import node with whether it runs (False under `if TYPE_CHECKING:`)."""
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            guarded.update(id(n) for child in node.body for n in ast.walk(child))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, id(node) not in guarded


def test_the_import_contracts_hold() -> None:
    # Layers (daemon: cli → demo → service → remediation → checks → reports → fleet → sharding → config; parts:
    # daemon → policies, emulator → program; core imports no part; the emulator's monitoring side
    # over its memorystore side). A broken contract prints the import chain that breaks it.
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_only_the_checks_and_core_gcp_import_the_google_api_clients() -> None:
    wrong = []
    for path in _python_files("daemon"):
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith("daemon/checks/") or rel in GOOGLE_CLIENT_EXCEPTIONS:
            continue
        for node, runs in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if runs and any(n == "google.cloud" or n.startswith("google.cloud.") for n in names):
                wrong.append(f"{rel}:{node.lineno}")
    assert wrong == []


@pytest.mark.parametrize("folder", [*PARTS, "tests", "bench", "tools"])
def test_no_module_imports_another_modules_private_names(folder: str) -> None:
    """`from x import _name` couples to what x may change freely; what two modules share is public."""
    wrong = []
    for path in _python_files(folder):
        for node, _ in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
                continue
            if node.module.split(".")[0] not in ("redisguard", "tests"):
                continue
            private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
            if private:
                wrong.append(f"{path.relative_to(REPO)}:{node.lineno} imports {', '.join(private)} from {node.module}")
    assert wrong == []


def test_no_test_patches_a_private_name() -> None:
    """A test that swaps out `module._helper` breaks on a rename nobody else would notice; it
    patches a public seam instead (a function the module documents, an injected dependency)."""
    wrong = []
    for path in _python_files("tests"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "setattr"):
                continue
            names = [a.value for a in node.args[:2] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if any(part.startswith("_") and not part.startswith("__") for name in names for part in name.split(".")):
                wrong.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert wrong == []


@pytest.mark.parametrize("folder", ["tests/fixtures", "tests/fixtures/bin", "bench", "tools", "tools/pulumi"])
def test_no_module_in_a_script_folder_shadows_the_standard_library(folder: str) -> None:
    """Python puts a script's own folder first on sys.path: a tests/fixtures/http.py made every
    `import http.client` of a script run from there fail ("'http' is not a package")."""
    shadowing = sorted(p.name for p in (REPO / folder).glob("*.py") if p.stem in sys.stdlib_module_names)
    assert shadowing == []
