"""Every link to the project's docs that the product prints starts at core/links.py's DOCS_URL, the
Documentation URL pyproject.toml publishes, and lands on a page and heading that exist."""

from __future__ import annotations

import argparse
import re
import tomllib

import yaml

from redisguard.core.links import DOCS_URL, anchor, doc_url
from redisguard.daemon.cli.main import build_parser
from tests.fixtures.repo import REPO

DOCS = REPO / "docs"
# What ships and prints links: the packages, the alert rules and the deployment files.
PRODUCT = ["core", "daemon", "emulator", "policies", "program", "alerts", "deploy", "Dockerfile", "docker-compose.yml"]
PROJECT_DOC_LINK = re.compile(r"https?://[^\s\"'<>()]*?/docs/[\w.-]+\.md(?:#[\w-]*)?")


def headings(page: str) -> set[str]:
    text = (DOCS / page).read_text()
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)  # a shell comment is no heading
    return {anchor(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)}


def assert_lands(url: str, where: str) -> None:
    assert url.startswith(DOCS_URL), f"{where}: {url} is not under {DOCS_URL} (core/links.py)"
    page, _, section = url.removeprefix(DOCS_URL).partition("#")
    assert (DOCS / page).is_file(), f"{where}: {url} names docs/{page}, which does not exist"
    assert not section or section in headings(page), f"{where}: docs/{page} has no heading anchored #{section}"


def help_texts() -> dict[str, str]:
    """What `--help` prints of each command, unwrapped (argparse wraps lines at a URL's hyphens)."""

    def texts_of(parser: argparse.ArgumentParser) -> str:
        return " ".join([parser.description or "", parser.epilog or "", *(a.help or "" for a in parser._actions)])

    parser = build_parser()
    texts = {"redisguard --help": texts_of(parser)}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                texts[f"redisguard {name} --help"] = texts_of(sub)
    return texts


def test_the_docs_base_is_the_one_pyproject_publishes() -> None:
    urls = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["urls"]
    assert urls["Documentation"] == DOCS_URL
    assert DOCS_URL.startswith(urls["Repository"] + "/")


def test_every_runbook_url_is_the_alerts_section_of_the_runbooks() -> None:
    rules = yaml.safe_load((REPO / "alerts" / "rules.yml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]
    assert alerts
    for rule in alerts:
        url = rule["annotations"]["runbook_url"]
        assert url == doc_url("runbooks.md", rule["alert"])
        assert_lands(url, f"alerts/rules.yml {rule['alert']}")


def test_every_docs_link_in_the_shipped_files_starts_at_the_one_base() -> None:
    found = 0
    for root in PRODUCT:
        for path in [REPO / root] if (REPO / root).is_file() else sorted((REPO / root).rglob("*")):
            if not path.is_file() or path.suffix not in {"", ".py", ".yml", ".yaml", ".html", ".service", ".json"}:
                continue
            for url in PROJECT_DOC_LINK.findall(path.read_text(errors="replace")):
                found += 1
                assert_lands(url, str(path.relative_to(REPO)))
    assert found >= 9  # the runbooks at least


def test_help_names_docs_by_their_url_never_by_a_path_only_a_checkout_has() -> None:
    links = 0
    for command, text in help_texts().items():
        for url in PROJECT_DOC_LINK.findall(text):
            links += 1
            assert_lands(url, command)
        bare = re.findall(r"(?<![\w/])docs/[\w.-]+\.md", PROJECT_DOC_LINK.sub("", text))
        assert not bare, f"{command} names {bare}: an installed redisguard has no docs/ folder"
    assert links >= 1

