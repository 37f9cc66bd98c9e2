"""Type-check the five packages, tests/, bench/ and tools/ with mypy, as `./dev test` does before pytest (`./dev typecheck` alone).

The parts live in top-level folders (core/, program/, ...) but install as `redisguard.<part>`
through setuptools' editable finder, an import hook mypy cannot follow. So mypy is pointed at
a tree of links named the way the code imports itself (`redisguard/core -> core/`), and the
paths it prints are mapped back to the repository's own (`core/gcp.py:82: error: ...`), so an
editor or a reader finds the line. tests/, bench/ and tools/ are checked as the files they are,
with the same settings (pyproject.toml, `[tool.mypy]`), under the names they run as: the
repository root is a package base (`tests.fixtures.processes`, `tools.typecheck`), and so is
bench/, whose scripts run with their own folder first on sys.path (`from _args import ...`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("core", "program", "policies", "daemon", "emulator")
# Checked as files, not as installed packages.
FOLDERS = ("tests", "bench", "tools")
# Inside the virtual environment: per checkout, ignored by git, ruff and pytest.
LINKS = ROOT / ".venv" / "typecheck"


def link_tree() -> Path:
    """`LINKS/redisguard/<part>` -> `<part>/` for each part; idempotent."""
    package = LINKS / "redisguard"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").touch()
    for part in PARTS:
        link = package / part
        if not link.is_symlink() or link.resolve() != ROOT / part:
            link.unlink(missing_ok=True)
            link.symlink_to(ROOT / part, target_is_directory=True)
    return LINKS


def main(argv: list[str]) -> int:
    links = link_tree()
    # Package bases: the nearest one above a file names its module, so bench/daemon_scale.py is
    # `daemon_scale` (as it runs, its folder first on sys.path: `from _args import ...`), not
    # `bench.daemon_scale`, and tests/ under the root is `tests`.
    os.environ["MYPYPATH"] = os.pathsep.join(str(path) for path in (links, ROOT / "bench", ROOT))
    stdout, stderr, status = api.run(
        [
            "--config-file", str(ROOT / "pyproject.toml"),
            "--python-executable", sys.executable,
            "--cache-dir", str(ROOT / ".venv" / "mypy_cache"),
            "--explicit-package-bases",
            # Files, not `--package=redisguard.<part>`: mypy takes packages or files, not both.
            *(os.path.relpath(links / "redisguard" / part) for part in PARTS),
            *(os.path.relpath(ROOT / folder) for folder in FOLDERS),
            *argv,
        ],
    )
    sys.stdout.write(_repository_paths(stdout, links))
    sys.stderr.write(_repository_paths(stderr, links))
    return status


def _repository_paths(text: str, links: Path) -> str:
    """mypy names files by the link tree (absolute or relative to here); name them as the repository does."""
    for prefix in (f"{links}/redisguard/", f"{links.relative_to(ROOT)}/redisguard/"):
        text = text.replace(prefix, "")
    return text


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
