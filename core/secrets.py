"""Secret handling every part shares: which values are credentials, and text with them scrubbed."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from urllib.parse import parse_qsl, quote, urlsplit

# Environment variables whose values are credentials: never shown, and scrubbed from any
# message a child process (the pulumi CLI, its plugins) writes.
SECRET_ENV_VARS = (
    "PULUMI_ACCESS_TOKEN",
    "PULUMI_CONFIG_PASSPHRASE",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_KEY",
    "GOOGLE_OAUTH_ACCESS_TOKEN",
)
REDACTED = "[redacted]"
# How a diff or a report shows a secret property's value (an AUTH string).
SECRET = "[secret]"
# Query-string keys that carry credentials in backend URLs (e.g. SAS tokens, access keys).
_SECRET_QUERY_KEY = re.compile(r"token|key|secret|pass|pwd|sig|credential|auth", re.IGNORECASE)
# Shorter values are not scrubbed: replacing every "ab" in a message would hide the message, and a
# credential that short is not one.
_MIN_SECRET_LENGTH = 4


def url_secrets(url: str) -> list[str]:
    """The credential parts of a URL: the userinfo password and credential-like query values."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL at all (a bad port, an unclosed [): no credentials to find
        return []
    found = [password] if password else []
    found += [value for key, value in parse_qsl(parts.query) if value and _SECRET_QUERY_KEY.search(key)]
    return found


def redact_url(url: str) -> str:
    """`url` with its userinfo password and credential-like query values replaced by [redacted]."""
    for secret in url_secrets(url):
        url = url.replace(secret, REDACTED)
        url = url.replace(quote(secret, safe=""), REDACTED)
    return url


def secret_values(urls: Iterable[str | None] = ()) -> tuple[str, ...]:
    """Every credential redisguard knows of: the secret environment variables, and those in `urls`
    (a config's backend URL)."""
    values = [os.environ.get(name, "") for name in SECRET_ENV_VARS]
    for url in urls:
        if url:
            values += url_secrets(url)
    # Longest first, so a secret that contains another is replaced whole.
    return tuple(sorted({v for v in values if len(v) >= _MIN_SECRET_LENGTH}, key=len, reverse=True))


def scrub(text: str, secrets: Sequence[str]) -> str:
    """`text` with every known secret value replaced by [redacted] (for error messages a child process wrote)."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text
