"""Where the project's documentation lives: every link the product prints is built here.

One base, the `Documentation` URL of pyproject.toml's `[project.urls]` (a test holds the two, the
shipped alert rules' `runbook_url`s and every printed docs link to it), so a fork that hosts its
docs elsewhere changes one line here and one in pyproject.toml, and the test shows what else.
"""

from __future__ import annotations

DOCS_URL = "https://github.com/redisguard/redisguard/blob/main/docs/"
"""The `docs/` folder of the project's repository on its default branch."""


def doc_url(page: str, section: str = "") -> str:
    """The URL of `docs/<page>`, at the heading `section` (as GitHub anchors it) when given.

    >>> doc_url("runbooks.md", "RedisguardDaemonDown")
    'https://github.com/redisguard/redisguard/blob/main/docs/runbooks.md#redisguarddaemondown'
    """
    return DOCS_URL + page + (f"#{anchor(section)}" if section else "")


def anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    kept = "".join(c for c in heading.strip().lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")
