"""`redisguard policy-check` as a user runs it: the pack's verdict on each stack, without a cloud or a Pulumi CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from redisguard.core.pulumi import SECRET_SIG, SECRET_SIG_KEY
from tests.fixtures.policy_inputs import BAD_PRODUCTION
from tests.fixtures.repo import REPO
from tests.fixtures.wire import INSTANCE_TYPE

pytestmark = pytest.mark.slow



def policy_check(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "redisguard.daemon.cli", "policy-check", *args],
        cwd=cwd, capture_output=True, text=True, timeout=240, check=False, env=env,
    )  # fmt: skip


def _project(tmp_path: Path, stack_text: str, stack: str = "production") -> Path:
    (tmp_path / "program").mkdir()
    (tmp_path / "program" / f"Pulumi.{stack}.yaml").write_text(stack_text)
    config = tmp_path / "redisguard.yaml"
    config.write_text(f"pulumi:\n  work_dir: program\n  stacks: [{stack}]\n")
    return config


def test_shipped_stacks_pass_with_their_policy_configs_and_staging_gets_advice() -> None:
    result = policy_check("--format", "json")

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    by_stack = {s["stack"]: s for s in report["stacks"]}
    assert set(by_stack) == {"staging", "production"}
    assert by_stack["production"]["violations"] == []
    assert by_stack["production"]["policy_config"].endswith("policies/config/production.json")
    staging = by_stack["staging"]
    assert {v["level"] for v in staging["violations"]} == {"advisory"}
    assert any(
        v["policy"] == "memorystore-supported-redis-version" and v["resource"] == "redis-sidekiq"
        for v in staging["violations"]
    )
    assert report["exit_code"] == 0


def test_a_mandatory_violation_exits_2_and_lists_policy_level_resource_and_message(tmp_path: Path) -> None:
    config = _project(tmp_path, BAD_PRODUCTION)

    result = policy_check("--config", str(config))

    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    # policies/config/production.json is the default for a stack named production.
    assert lines[0].startswith("stack production: BLOCKED (2 resources, ")
    assert "config " + str(REPO / "policies" / "config" / "production.json") in lines[0]
    for policy in (
        "memorystore-high-availability-in-production",
        "memorystore-persistence-in-production",
        "memorystore-transit-encryption-required",
    ):
        assert f"  [mandatory] {policy}  (redis-shortcut)" in lines
    assert "'redis-shortcut': tier must be STANDARD_HA in production" in result.stdout


def test_policy_config_flag_replaces_the_default_file_and_can_turn_a_policy_off(tmp_path: Path) -> None:
    config = _project(tmp_path, BAD_PRODUCTION)
    relaxed = tmp_path / "relaxed.json"
    relaxed.write_text(json.dumps({
        "memorystore-high-availability-in-production": "advisory",
        "memorystore-persistence-in-production": "disabled",
        "memorystore-transit-encryption-required": "advisory",
    }))  # fmt: skip

    result = policy_check("--config", str(config), "--policy-config", str(relaxed), "--format", "json")

    assert result.returncode == 0, result.stdout + result.stderr
    (stack,) = json.loads(result.stdout)["stacks"]
    levels = {v["policy"]: v["level"] for v in stack["violations"]}
    assert levels["memorystore-high-availability-in-production"] == "advisory"
    assert "memorystore-persistence-in-production" not in levels
    assert stack["policy_config"] == str(relaxed)


def test_the_checkouts_own_policy_configs_decide_and_the_command_says_which_it_used(tmp_path: Path) -> None:
    # Another checkout (not this repository, not its cwd): its policies/config/production.json
    # relaxes what the installed pack's file keeps mandatory, and the verdict follows it.
    (tmp_path / "checkout").mkdir()
    config = _project(tmp_path / "checkout", BAD_PRODUCTION)
    own = tmp_path / "checkout" / "policies" / "config" / "production.json"
    own.parent.mkdir(parents=True)
    own.write_text(json.dumps({
        "memorystore-high-availability-in-production": "advisory",
        "memorystore-persistence-in-production": "disabled",
        "memorystore-transit-encryption-required": "advisory",
    }))  # fmt: skip

    result = policy_check("--config", str(config), "--format", "json", cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    (stack,) = report["stacks"]
    assert stack["policy_config"] == str(own)
    levels = {v["policy"]: v["level"] for v in stack["violations"]}
    assert levels["memorystore-high-availability-in-production"] == "advisory"
    assert "memorystore-persistence-in-production" not in levels
    # The checkout has configs but no pack of its own: the installed pack judges, and says so.
    assert report["from_checkout"] is True and report["pack"] == str(REPO / "policies")
    assert f"policy-check: policy configs from {own.parent} (the checkout's)" in result.stderr

    # Without the checkout's file, the installed redisguard's production.json blocks the same stack.
    shutil.rmtree(tmp_path / "checkout" / "policies")
    blocked = policy_check("--config", str(config), "--format", "json", cwd=tmp_path)
    assert blocked.returncode == 2, blocked.stdout + blocked.stderr
    assert json.loads(blocked.stdout)["stacks"][0]["policy_config"] == str(REPO / "policies" / "config" / "production.json")
    assert "(the installed redisguard's: no policies/ beside the program or the redisguard.yaml)" in blocked.stderr


def test_invalid_policy_config_is_a_one_line_error_naming_the_file_and_the_policy(tmp_path: Path) -> None:
    config = _project(tmp_path, BAD_PRODUCTION)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"memorystore-memory-bounds": {"maxMemoryGb": "lots"}}))

    result = policy_check("--config", str(config), "--policy-config", str(bad))

    assert result.returncode == 1
    assert f"stack production: error: {bad}: memorystore-memory-bounds: maxMemoryGb: 'lots' is not of type" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_unknown_stack_and_missing_files_are_clear_errors(tmp_path: Path) -> None:
    config = _project(tmp_path, BAD_PRODUCTION)

    unknown = policy_check("--config", str(config), "--stack", "prod")
    assert unknown.returncode == 1
    assert "--stack prod: not in pulumi.stacks; allowed: production" in unknown.stderr

    missing = policy_check("--config", str(config), "--policy-config", str(tmp_path / "nope.json"))
    assert missing.returncode == 1
    assert f"--policy-config {tmp_path / 'nope.json'}: file not found" in missing.stderr

    (tmp_path / "program" / "Pulumi.production.yaml").write_text(
        BAD_PRODUCTION.replace("memory_gb: 1", "memory_gb: 1000")
    )
    invalid = policy_check("--config", str(config))
    assert invalid.returncode == 1
    assert "stack production: error: invalid redis-fleet:redis config in" in invalid.stdout
    assert "Traceback" not in invalid.stdout + invalid.stderr


def test_every_run_ends_with_a_clean_stderr() -> None:
    # The SDK's mocks make event loops (one per executor thread) that, left open, were closed by
    # their __del__ at interpreter exit after their self-pipe was gone: "Exception ignored in
    # BaseEventLoop.__del__ ... Invalid file descriptor: -1" in some runs. ResourceWarning shown
    # makes an unclosed loop visible in every run, not only in the unlucky ones.
    env = {**os.environ, "PYTHONWARNINGS": "default::ResourceWarning"}
    for _ in range(4):
        result = policy_check("--stack", "staging", env=env)

        assert result.returncode == 0, result.stdout + result.stderr
        assert "Exception ignored" not in result.stderr
        assert "unclosed event loop" not in result.stderr


def _export_file(path: Path, transit: object) -> Path:
    """An export as `pulumi stack export --file` writes it: another team's staging stack (project
    ampledash-infra) with one instance whose transitEncryptionMode is `transit`."""
    inputs = {"name": "redis-sidekiq", "memorySizeGb": 2, "tier": "BASIC", "authEnabled": True,
              "redisVersion": "REDIS_7_2", "transitEncryptionMode": transit}  # fmt: skip
    resource = {"urn": f"urn:pulumi:staging::ampledash-infra::{INSTANCE_TYPE}::redis-sidekiq", "custom": True,
                "type": INSTANCE_TYPE, "id": "projects/p/locations/r/instances/redis-sidekiq",
                "inputs": inputs, "outputs": inputs}  # fmt: skip
    path.write_text(json.dumps({"version": 3, "deployment": {"manifest": {}, "resources": [resource]}}))
    return path


def test_a_state_file_is_judged_as_deployed_and_an_encrypted_input_is_not_judged(tmp_path: Path) -> None:
    plain = _export_file(tmp_path / "plain.json", "DISABLED")
    encrypted = _export_file(tmp_path / "encrypted.json", {SECRET_SIG_KEY: SECRET_SIG, "ciphertext": "v1:AAAA"})

    blocked = policy_check("--state-file", str(plain), cwd=tmp_path)
    passed = policy_check("--state-file", str(encrypted), "--format", "json", cwd=tmp_path)

    assert blocked.returncode == 2, blocked.stdout + blocked.stderr
    assert blocked.stdout.startswith("stack staging: BLOCKED (1 resources, 1 mandatory, ")
    assert f"deployed state from {plain}" in blocked.stdout
    assert "  [mandatory] memorystore-transit-encryption-required  (redis-sidekiq)" in blocked.stdout
    assert passed.returncode == 0, passed.stdout + passed.stderr
    (stack,) = json.loads(passed.stdout)["stacks"]
    assert "memorystore-transit-encryption-required" not in {v["policy"] for v in stack["violations"]}


def test_a_state_file_that_is_not_an_export_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"version": 3, "deployment": {"resources": [{"type": "x"}]}}')

    result = policy_check("--state-file", str(broken), cwd=tmp_path)
    with_stack = policy_check("--state-file", str(broken), "--stack", "staging", cwd=tmp_path)
    both = policy_check("--state-file", str(broken), "--state", cwd=tmp_path)

    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"redisguard policy-check: error: {broken}: not a Pulumi deployment export: "
        "deployment.resources[0].urn is missing or not a Pulumi URN"
    )
    assert with_stack.returncode == 1 and "--stack cannot be used with --state-file" in with_stack.stderr
    assert both.returncode == 1 and "argument --state: not allowed with argument --state-file" in both.stderr
    assert "Traceback" not in result.stderr + with_stack.stderr + both.stderr
