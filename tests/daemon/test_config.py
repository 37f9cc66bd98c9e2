"""redisguard.yaml: validation with every problem named at once, environment overrides, path resolution."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from redisguard.core.errors import ConfigError
from redisguard.daemon.config import RedisguardConfig, default_stack_names, load_config
from tests.fixtures.repo import REPO


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "redisguard.daemon.cli", *args], capture_output=True, text=True, env=env, timeout=120, cwd=REPO
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "redisguard.yaml"
    path.write_text(text)
    return path


def test_repository_example_config_is_valid_and_points_at_the_program_and_emulator() -> None:
    config = load_config(REPO / "redisguard.yaml")
    assert config.pulumi.work_dir == REPO / "program"
    assert config.pulumi.stacks == ("staging", "production")
    assert config.gcp.redis_endpoint == "http://127.0.0.1:8470"
    assert config.gcp.monitoring_endpoint == "127.0.0.1:8471"
    assert [(r.type, r.path) for r in config.ignore] == [("gcp:redis/instance:Instance", "labels.last-touched-by")]


def test_defaults_fill_an_empty_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.parallelism == 4
    assert config.pulumi.refresh_timeout_seconds == 600
    assert config.pulumi.work_dir == tmp_path / "program"
    assert config.gcp.redis_endpoint is None


def test_every_problem_is_named_with_file_key_path_value_and_allowed_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
pulumi:
  stacks: [staging, "bad name", staging]
  backend_url: ftp://state
  refresh_timout_seconds: 5
parallelism: 0
gcp:
  redis_endpoint: 127.0.0.1:8470
ignore:
  - {type: "gcp:redis/instance:Instance"}
engine: live
""",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: 7 problems in config")
    expected_lines = [
        "pulumi.stacks: stack name 'bad name' may only hold letters, digits, '_', '.', '-' (optionally org/ or org/project/ before it); stack listed more than once: staging",
        "pulumi.backend_url: backend_url must start with one of file://, gs://, s3://, azblob://, https://, http:// (got 'ftp://state')",
        "pulumi.refresh_timout_seconds: unknown key; did you mean 'refresh_timeout_seconds'? allowed keys: backend_url, config_key, refresh_timeout_seconds, source, stack_sources, stacks, work_dir",
        "parallelism: 0 is out of range; allowed: 1 to 64",
        "gcp.redis_endpoint: redis_endpoint must look like http://HOST:PORT or https://HOST (got '127.0.0.1:8470')",
        "ignore[0]: a rule needs path (ignore one property) or kind (ignore whole resources: changed, deleted, missing, unmanaged, *)",
        "engine: unknown key; allowed keys: audit, gcp, ignore, log_format, parallelism, pulumi, schedules, server, sharding, thresholds",
    ]
    for line in expected_lines:
        assert line in message


def test_environment_overrides_win_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "parallelism: 2\npulumi:\n  stacks: [staging]\ngcp:\n  redis_endpoint: http://127.0.0.1:8470\n")
    monkeypatch.setenv("REDISGUARD_PARALLELISM", "8")
    monkeypatch.setenv("REDISGUARD_PULUMI__STACKS", "staging,production")
    monkeypatch.setenv("REDISGUARD_PULUMI__BACKEND_URL", "gs://bucket/state")
    monkeypatch.setenv("REDISGUARD_GCP__MONITORING_ENDPOINT", "127.0.0.1:9999")
    config = load_config(path)
    assert config.parallelism == 8
    assert config.pulumi.stacks == ("staging", "production")
    assert config.pulumi.backend_url == "gs://bucket/state"
    # Keys the environment does not set keep the file's values.
    assert config.gcp.redis_endpoint == "http://127.0.0.1:8470"
    assert config.gcp.monitoring_endpoint == "127.0.0.1:9999"


def test_a_bad_environment_override_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDISGUARD_PULUMI__REFRESH_TIMEOUT_SECONDS", "soon")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, ""))
    assert "pulumi.refresh_timeout_seconds: 'soon' is not a number" in str(info.value)
    assert "(from REDISGUARD_PULUMI__REFRESH_TIMEOUT_SECONDS)" in str(info.value)


def test_relative_work_dir_from_the_environment_is_taken_from_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REDISGUARD_PULUMI__WORK_DIR", "infra")
    config = load_config(write(tmp_path, "pulumi: {work_dir: elsewhere}\n"))
    assert config.pulumi.work_dir == tmp_path / "infra"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pulumi: [unclosed\n", "line 1, column 9: in the flow sequence that starts here: did not find expected ',' or ']' \\(noticed at line 2, column 1\\)"),
        ("- just\n- a list\n", "the top level must be a mapping"),
    ],
)
def test_unreadable_yaml_is_one_clear_error(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, text))


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_the_model_is_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    with pytest.raises(ValueError):
        config.parallelism = 9  # type: ignore[misc]  # the assignment a frozen model refuses is what is tested
    assert isinstance(config, RedisguardConfig)


def test_selected_stacks_must_be_configured(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "pulumi: {stacks: [staging, production]}\n"))
    assert default_stack_names(config, None) == ("staging", "production")
    assert default_stack_names(config, ["production", "production"]) == ("production",)
    with pytest.raises(ConfigError, match="--stack dev: not in pulumi.stacks; allowed: staging, production"):
        default_stack_names(config, ["dev"])


def test_a_pulumi_cloud_stack_may_name_its_org(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "pulumi: {stacks: [acme/staging, acme/redis-fleet/production]}\n"))
    assert config.pulumi.stack_file("acme/staging") == tmp_path / "program" / "Pulumi.staging.yaml"
    assert config.pulumi.stack_file("acme/redis-fleet/production") == tmp_path / "program" / "Pulumi.production.yaml"


BACKEND_WITH_CREDENTIALS = "https://user:hunter3pw@api.example.internal/state?sas_token=SASSECRET42&region=eu"


def test_check_config_and_the_debug_log_redact_backend_credentials(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "REDISGUARD_PULUMI__BACKEND_URL": BACKEND_WITH_CREDENTIALS,
        "REDISGUARD_GCP__REDIS_ENDPOINT": "http://127.0.0.1:9",
    }
    check = run_cli("check-config", "--config", str(REPO / "redisguard.yaml"), env=env)
    report = run_cli(
        "--log-level", "DEBUG", "drift-report", "--config", str(REPO / "redisguard.yaml"),
        "--engine", "live", "--stack", "staging", env=env,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert [line.split() for line in check.stdout.splitlines() if line.startswith("  pulumi.backend_url")] == [
        ["pulumi.backend_url", "https://user:[redacted]@api.example.internal/state?sas_token=[redacted]&region=eu"]
    ]
    assert "effective config" in report.stderr
    for result in (check, report):
        assert "hunter3pw" not in result.stdout + result.stderr
        assert "SASSECRET42" not in result.stdout + result.stderr


def test_a_rejected_backend_url_is_named_without_its_password(tmp_path: Path) -> None:
    env = {**os.environ, "REDISGUARD_PULUMI__BACKEND_URL": "ftp://user:hunter3pw@example.internal"}
    result = run_cli("check-config", "--config", str(REPO / "redisguard.yaml"), env=env)
    assert result.returncode == 1
    assert "ftp://user:[redacted]@example.internal" in result.stderr
    assert "hunter3pw" not in result.stderr


# --- the daemon's sections ----------------------------------------------------------------------


def test_daemon_sections_default_to_the_documented_values(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert (config.server.host, config.server.port, config.server.web_config_file) == ("127.0.0.1", 9464, None)
    assert {name: s.text for name, s in config.schedules} == {"drift_pulumi": "1h", "drift_live": "5m", "memory": "1m", "compliance": "15m"}
    assert config.thresholds.memory_warning_ratio == 0.8
    assert config.thresholds.memory_critical_ratio == 0.9
    assert config.thresholds.trend_window.total_seconds() == 6 * 3600
    assert config.log_format == "text"
    # The effective-config log shows schedules and durations as they are written.
    dumped = config.redacted()
    assert dumped["schedules"] == {"drift_pulumi": "1h", "drift_live": "5m", "memory": "1m", "compliance": "15m"}
    assert dumped["thresholds"]["trend_window"] == "6h"


@pytest.mark.parametrize(
    ("written", "interval", "cron", "enabled"),
    [
        ("30s", 30, None, True),
        ("1h30m", 5400, None, True),
        ("'*/5 * * * *'", None, "*/5 * * * *", True),
        ("off", None, None, False),  # YAML reads a bare off as false
        ("'off'", None, None, False),
        ("false", None, None, False),
    ],
)
def test_a_schedule_is_a_duration_a_cron_expression_or_off(
    tmp_path: Path, written: str, interval: int | None, cron: str | None, enabled: bool
) -> None:
    config = load_config(write(tmp_path, f"schedules:\n  memory: {written}\n"))
    schedule = config.schedules.memory
    assert (schedule.interval.total_seconds() if schedule.interval else None) == interval
    assert schedule.cron == cron
    assert schedule.enabled is enabled
    assert ("memory" in config.schedules.enabled()) is enabled


def test_a_cron_schedule_knows_its_period(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "schedules: {drift_live: '*/10 * * * *', drift_pulumi: '0 3 * * *'}\n"))
    assert config.schedules.drift_live.period_seconds() == 600
    assert config.schedules.drift_pulumi.period_seconds() == 86400


@pytest.mark.parametrize("listen", ["[::1]:9464", "0.0.0.0:9100", ":9464", "localhost:8080"])
def test_listen_takes_ipv4_ipv6_and_names(tmp_path: Path, listen: str) -> None:
    config = load_config(write(tmp_path, f"server: {{listen: '{listen}'}}\n"))
    expected_host = {"[::1]:9464": "::1", ":9464": "0.0.0.0"}.get(listen, listen.rsplit(":", 1)[0])
    assert (config.server.host, config.server.port) == (expected_host, int(listen.rsplit(":", 1)[1]))


def test_web_config_file_is_taken_from_the_config_files_folder(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "server: {web_config_file: web.yml}\n"))
    assert config.server.web_config_file == tmp_path / "web.yml"


def test_every_daemon_problem_is_named_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
server: {listen: localhost, web_config: web.yml}
schedules: {drift_pulumi: 61 * * * *, drift_live: 300, memory: 5x}
thresholds: {memory_warning_ratio: 0.95, trend_window: 1m}
log_format: xml
""",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: 7 problems in config")
    for line in [
        "server.listen: listen must look like HOST:PORT, [IPV6]:PORT or :PORT (got 'localhost')",
        "server.web_config: unknown key; did you mean 'web_config_file'? allowed keys: listen, web_config_file",
        "schedules.drift_pulumi: not a valid cron expression: Error validating expression '61': the last value (61) is higher than the maximum value (59) (got '61 * * * *')",
        "schedules.drift_live: not a duration such as 30s, 5m, 1h or 1h30m, a cron expression of 5 fields (e.g. '*/5 * * * *', in UTC), or off (got 300)",
        "schedules.memory: not a duration such as 30s, 5m, 1h or 1h30m, a cron expression of 5 fields",
        "thresholds.trend_window: trend_window must be from 10m to 6w (got '1m')",
        "log_format: 'xml' is not allowed; allowed values: text, json",
    ]:
        assert line in message


def test_warning_ratio_must_not_be_above_critical(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"memory_warning_ratio \(0.95\) must not be above memory_critical_ratio \(0.9\)"):
        load_config(write(tmp_path, "thresholds: {memory_warning_ratio: 0.95}\n"))


def test_a_schedule_can_be_turned_off_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDISGUARD_SCHEDULES__DRIFT_PULUMI", "off")
    monkeypatch.setenv("REDISGUARD_SERVER__LISTEN", "[::1]:9999")
    config = load_config(write(tmp_path, ""))
    assert not config.schedules.drift_pulumi.enabled
    assert config.server.port == 9999


def test_values_in_messages_are_spelled_as_yaml_writes_them(tmp_path: Path) -> None:
    # A user wrote `false` and `null`; Python's False/None would read as a different value.
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "gcp:\n  redis_endpoint: false\n  request_timeout_seconds: [1, true]\n"))
    message = str(info.value)
    assert "gcp.redis_endpoint: false is not a string" in message
    assert "gcp.request_timeout_seconds: [1, true] is not a number" in message
    assert "False" not in message and "True" not in message


def test_an_ignore_rule_with_a_path_cannot_name_a_whole_resource_kind(tmp_path: Path) -> None:
    path = write(tmp_path, 'ignore:\n  - {kind: unmanaged, path: labels.team}\n  - {kind: stray}\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "ignore[0]: path only applies to changed resources; drop path to ignore whole unmanaged resources" in message
    assert "ignore[1].kind: 'stray' is not allowed; allowed values: changed, deleted, missing, unmanaged, *" in message


def test_an_environment_variable_that_sets_no_key_is_an_error_with_did_you_mean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "pulumi:\n  stacks: [staging]\n")
    monkeypatch.setenv("REDISGUARD_GCP_REDIS_ENDPOINT", "http://127.0.0.1:8470")  # one _ where __ belongs
    monkeypatch.setenv("REDISGUARD_PARALELISM", "2")
    monkeypatch.setenv("REDISGUARD_PULUMI__STAKS", "staging")  # a known section: validation names it
    monkeypatch.setenv("REDISGUARD_HEALTHCHECK_URL", "http://127.0.0.1:9464/healthz")  # the image's, not a key
    monkeypatch.setenv("REDISGUARD_CACHE_DIR", str(tmp_path / "cache"))  # ./dev's, not a key
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = str(info.value).splitlines()
    assert lines[0] == f"{path}: 3 problems in config"
    assert "  REDISGUARD_GCP_REDIS_ENDPOINT: environment variable sets no config key (REDISGUARD_ then the key, __ between levels); did you mean REDISGUARD_GCP__REDIS_ENDPOINT?" in lines
    assert "  REDISGUARD_PARALELISM: environment variable sets no config key (REDISGUARD_ then the key, __ between levels); did you mean REDISGUARD_PARALLELISM?" in lines
    assert any(
        line.startswith("  pulumi.staks: unknown key") and line.endswith("(from REDISGUARD_PULUMI__STAKS)") for line in lines
    )


def test_every_redisguard_variable_the_dev_tools_read_is_not_taken_for_a_config_key() -> None:
    """A developer or CI that sets ./dev's REDISGUARD_CACHE_DIR (say) must still be able to run redisguard."""
    import re

    from redisguard.daemon.config import NOT_CONFIG_ENV_VARS
    from tests.fixtures.repo import REPO

    read = {
        name
        for path in (REPO / "tools").rglob("*.py")
        if "node_modules" not in path.parts
        for name in re.findall(r"""environ(?:\.get\(|\[)["'](REDISGUARD_\w+)""", path.read_text())
    }
    assert read and read <= NOT_CONFIG_ENV_VARS, read - NOT_CONFIG_ENV_VARS


def test_a_misspelt_override_alone_fails_the_otherwise_valid_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "pulumi:\n  stacks: [staging]\n")
    monkeypatch.setenv("REDISGUARD_PARALELISM", "2")
    with pytest.raises(ConfigError, match=r"1 problem in config\n  REDISGUARD_PARALELISM: .*did you mean REDISGUARD_PARALLELISM\?"):
        load_config(path)
