"""Paging as both emulated APIs do it: bounded page sizes and opaque page tokens."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence

from redisguard.emulator.errors import invalid


def page_size(requested: int, maximum: int) -> int:
    """How much a page holds: `requested`, at most `maximum`; 0 (not set) means `maximum`."""
    if requested < 0:
        raise invalid("page_size must not be negative.")
    return min(requested or maximum, maximum)


def encode_token(position: Sequence[int], request: str = "") -> str:
    """The token of the page that starts at `position`, for the request identified by `request`."""
    return base64.urlsafe_b64encode(json.dumps({"p": list(position), "r": request}).encode()).decode()


def decode_token(token: str, length: int, request: str = "") -> tuple[int, ...]:
    """Where the page of `token` starts (zeros for no token); ValueError unless encode_token made it for `request`.

    Each API words its own INVALID_ARGUMENT message, so the caller turns the ValueError into it.
    """
    if not token:
        return (0,) * length
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        position = tuple(data["p"])
        if data["r"] != request:
            raise ValueError("the token belongs to another request")
    except (KeyError, TypeError) as exc:  # not base64 or not JSON is a ValueError already
        raise ValueError(f"not a page token: {exc}") from exc
    if len(position) != length or not all(isinstance(n, int) and n >= 0 for n in position):
        raise ValueError("not a page token: bad position")
    return position
