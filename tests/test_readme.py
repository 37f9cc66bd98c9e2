"""The README cannot go stale: every `redisguard` and `./dev` command it shows runs (or says why it
cannot), its commands table is the parser's, `--help` opens with its first paragraph, and every
relative link in it and in docs/ lands on a file and heading that exist."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from redisguard.core.links import anchor
from redisguard.daemon.cli.main import build_parser
from redisguard.emulator.launcher import LaunchedEmulator, launch
from tests.fixtures.repo import REPO

README = REPO / "README.md"
NOT_RUN = re.compile(r"<!--\s*not run:\s*(.*?)\s*-->")
# What the README's commands read: its redisguard.yaml, the program's stack files, the pack.
CHECKOUT_PARTS = ["redisguard.yaml", "program", "policies"]


@dataclass(frozen=True)
class Command:
    line: str
    """As the README shows it (continuations joined), without a console's `$ `."""
    block: int
    """The fenced block's first line in README.md."""
    not_run: str | None
    """Why it is not run (the block's `<!-- not run: ... -->`), or None."""

    @property
    def expected_exit(self) -> int:
        """The exit status the README's comment promises (`# exit 2: ...`), else 0."""
        _, _, comment = self.line.partition("#")
        found = re.search(r"\bexit (\d)\b", comment)
        return int(found.group(1)) if found else 0


def is_ours(line: str) -> bool:
    words = shlex.split(line, comments=True)
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):  # VAR=value redisguard ...
        words.pop(0)
    return bool(words) and words[0] in ("redisguard", "./dev")


def readme_commands(text: str) -> list[Command]:
    """Every `redisguard` and `./dev` command of the README's bash and console blocks, in order."""
    commands: list[Command] = []
    lines = text.splitlines()
    comments: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = re.fullmatch(r"```(\w*)\s*", line)
        if not fence:
            comments = comments + [line] if line.startswith("<!--") else []
            i += 1
            continue
        start, language = i + 1, fence.group(1)
        body: list[str] = []
        i += 1
        while not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        i += 1
        reasons = [m.group(1) for c in comments for m in [NOT_RUN.search(c)] if m]
        comments = []
        if language not in ("bash", "sh", "console"):
            continue
        for joined in join_continuations(body, console=language == "console"):
            if is_ours(joined):
                commands.append(Command(joined, start, reasons[0] if reasons else None))
    return commands


def join_continuations(body: list[str], *, console: bool) -> Iterator[str]:
    pending = ""
    for raw in body:
        if console and not pending:
            if not raw.startswith("$ "):
                continue  # what the command printed
            raw = raw[2:]
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        yield (pending + raw).strip()
        pending = ""


COMMANDS = readme_commands(README.read_text())


def test_the_readme_shows_both_first_commands_and_says_why_any_command_is_not_run() -> None:
    shown = [c.line.split("#")[0].strip() for c in COMMANDS]
    assert shown[:2] == ["./dev demo", "./dev test"], "the README opens with the two commands"
    for command in COMMANDS:
        if command.not_run is not None:
            assert len(command.not_run.split()) >= 3, f"README.md:{command.block}: `{command.line}` is not run without saying why"
    run = [c for c in COMMANDS if c.not_run is None]
    assert len(run) >= 5 and any(c.line.startswith("redisguard emulator") for c in run)


def test_the_extractor_reads_blocks_markers_and_exit_codes() -> None:
    text = (
        "<!-- not run: needs Google Cloud -->\n```bash\nredisguard daemon --config x.yaml\n```\n\n"
        "```console\n$ redisguard check-config \\\n    --config c.yaml\nc.yaml: valid\n$ ls\n```\n"
        "```bash\nA=1 redisguard drift-report   # exit 2: drift\npulumi up\n```\n```yaml\nredisguard: no\n```\n"
    )
    assert [(c.line, c.not_run, c.expected_exit) for c in readme_commands(text)] == [
        ("redisguard daemon --config x.yaml", "needs Google Cloud", 0),
        ("redisguard check-config      --config c.yaml", None, 0),
        ("A=1 redisguard drift-report   # exit 2: drift", None, 2),
    ]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of what the commands read, so a `--write` never touches the repository."""
    root = tmp_path_factory.mktemp("readme")
    for part in CHECKOUT_PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, root / part, ignore=shutil.ignore_patterns("__pycache__", ".venv"))
        else:
            shutil.copy2(source, root / part)
    # The pack's PulumiPolicy.yaml runs it in the checkout's .venv, as in a user's clone.
    (root / ".venv").symlink_to(Path(sys.prefix))
    return root


def start_background(line: str, cwd: Path, env: dict[str, str]) -> LaunchedEmulator:
    """A `... &` line: only the emulator runs in the background, here on free ports."""
    words = shlex.split(line.split("&")[0])
    assert words[:2] == ["redisguard", "emulator"], f"`{line}`: the test can only start the emulator in the background"
    options = [*words[1:], "--redis-api-port", "0", "--monitoring-port", "0", "--state-dir", str(cwd / "emulator-state")]
    with open(cwd / "emulator.log", "ab") as log:
        return launch(options, stderr=log, die_signal=signal.SIGTERM, cwd=cwd, env=env)


@pytest.mark.slow
def test_every_readme_command_runs_as_shown(checkout: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "NO_COLOR": "1"}
    env = {k: v for k, v in env.items() if not k.startswith("REDISGUARD_")}
    background: list[LaunchedEmulator] = []
    try:
        for command in [c for c in COMMANDS if c.not_run is None]:
            if re.search(r"&\s*(#.*)?$", command.line):
                for running in background:
                    running.stop()
                emulator = start_background(command.line, checkout, env)
                background.append(emulator)
                env["REDISGUARD_GCP__REDIS_ENDPOINT"] = emulator.redis_endpoint
                env["REDISGUARD_GCP__MONITORING_ENDPOINT"] = emulator.monitoring_endpoint
                continue
            result = subprocess.run(command.line, shell=True, cwd=checkout, env=env, capture_output=True, text=True, timeout=120)
            where = f"README.md:{command.block}: `{command.line}`"
            assert result.returncode == command.expected_exit, f"{where} exited {result.returncode}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            assert "Traceback" not in result.stderr, where
    finally:
        for running in background:
            running.stop()


# --- the commands table and --help -------------------------------------------------------------


def table_commands(prefix: str) -> set[str]:
    section = README.read_text().split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(rf"^\| `{re.escape(prefix)} ([\w-]+)` \|", section, flags=re.MULTILINE))


def test_the_commands_table_is_every_redisguard_command() -> None:
    parser = build_parser()
    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert table_commands("redisguard") == set(subcommands.choices)


def test_the_commands_table_is_every_dev_command() -> None:
    usage = subprocess.run([str(REPO / "dev"), "--help"], capture_output=True, text=True, timeout=30, cwd=REPO)
    assert usage.returncode == 0
    assert table_commands("./dev") == set(re.findall(r"^  ([a-z]+)\b", usage.stdout, flags=re.MULTILINE))


def first_paragraph() -> str:
    text = README.read_text().split("\n\n")[1]
    return " ".join(text.replace("`", "").split())


def test_help_says_what_the_readme_opens_with() -> None:
    assert build_parser().description == first_paragraph()


# --- links ---------------------------------------------------------------------------------------


def headings(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.MULTILINE | re.DOTALL)
    return {anchor(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)}


@pytest.mark.parametrize("doc", [README, *sorted((REPO / "docs").glob("*.md"))], ids=lambda p: p.name)
def test_every_relative_link_lands(doc: Path) -> None:
    text = re.sub(r"^```.*?^```", "", doc.read_text(), flags=re.MULTILINE | re.DOTALL)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, section = target.partition("#")
        landing = (doc.parent / path).resolve() if path else doc
        assert landing.exists(), f"{doc.name}: link {target} names a file that does not exist"
        if section and landing.suffix == ".md":
            assert section in headings(landing), f"{doc.name}: link {target}: {landing.name} has no such heading"
