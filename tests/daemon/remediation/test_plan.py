"""The one exit-code rule of every command that proposes stack-file edits (codify, adopt, memory-report --recommend)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from redisguard.daemon.cli.main import main
from redisguard.daemon.cli.options import PROPOSAL_EXIT_CODES_HELP
from redisguard.daemon.fleet.stack_edit import StackFile
from redisguard.daemon.remediation.plan import Note, Plan, emit
from tests.fixtures.repo import STAGING

PROPOSING = (["codify"], ["adopt"], ["memory-report", "--recommend"])


def _plan(tmp_path: Path) -> tuple[Plan, Path]:
    path = tmp_path / "Pulumi.staging.yaml"
    shutil.copy(STAGING, path)
    plan = Plan(files={"staging": StackFile(path)})
    return plan, path


def test_nothing_to_propose_is_0_even_with_notes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan, _ = _plan(tmp_path)
    plan.notes.append(Note("redis-cache", "refused", "authEnabled: AUTH is off"))
    assert emit("adopt", plan, write=False) == 0
    out, err = capsys.readouterr()
    assert out == "" and "refused: redis-cache" in err and "nothing to change" in err


@pytest.mark.parametrize("write", [False, True], ids=["printed", "written"])
def test_a_change_printed_or_written_is_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], write: bool) -> None:
    plan, path = _plan(tmp_path)
    plan.files["staging"].set_key("redis-cache", "memory_gb", 3)
    assert emit("adopt", plan, write=write) == 2
    out, err = capsys.readouterr()
    assert ("+      memory_gb: 3\n" in out) is not write
    assert (f"wrote {path}" in err) is write
    assert ("memory_gb: 3\n" in path.read_text()) is write


@pytest.mark.parametrize("argv", PROPOSING, ids=lambda a: " ".join(a))
def test_every_proposing_command_says_the_rule_in_its_help(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # argparse wraps at the terminal's width, breaking words at hyphens
    with pytest.raises(SystemExit):
        main([argv[0], "--help"])
    assert " ".join(PROPOSAL_EXIT_CODES_HELP.split()) in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("argv", PROPOSING, ids=lambda a: " ".join(a))
def test_an_error_is_1_never_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    """A bad argument stops each of them before any API call, with exit 1."""
    config = tmp_path / "redisguard.yaml"
    config.write_text(yaml.safe_dump({"pulumi": {"work_dir": str(STAGING.parent), "stacks": ["staging"]}}))
    assert main([*argv, "--config", str(config), "--stack", "stagign"]) == 1
    assert "did you mean staging?" in capsys.readouterr().err
