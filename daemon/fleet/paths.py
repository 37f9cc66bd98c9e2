"""Property paths in one canonical form: what the drift engines report, ignore rules name and the inverse mapping reads."""

from __future__ import annotations

import re
from collections.abc import Sequence

PathPart = str | int

_SEGMENT = re.compile(r'\.?([^.\[\]"]+)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]')


def parse_path(path: str) -> tuple[PathPart, ...]:
    """Split a Pulumi property path (`a.b[0]["c.d"]`) into keys and list indexes."""
    parts: list[PathPart] = []
    pos = 0
    while pos < len(path):
        m = _SEGMENT.match(path, pos)
        if not m or m.end() == pos:
            # Not a path Pulumi would print; keep the rest as one opaque key rather than fail a scan.
            parts.append(path[pos:].lstrip("."))
            break
        key, index, quoted = m.group(1), m.group(2), m.group(3)
        if key is not None:
            parts.append(key)
        elif index is not None:
            parts.append(int(index))
        else:
            parts.append(quoted.replace('\\"', '"').replace("\\\\", "\\"))
        pos = m.end()
    return tuple(parts)


def format_path(parts: Sequence[PathPart]) -> str:
    """The canonical text of a path: dotted keys, `[n]` indexes, `["k.ey"]` for keys with . [ ] or "."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "" or any(c in part for c in '.[]"'):
            escaped = part.replace("\\", "\\\\").replace('"', '\\"')
            out += f'["{escaped}"]'
        else:
            out += ("." if out else "") + part
    return out


def normalize_path(path: str) -> str:
    """A path in its canonical text (`labels["a"]` -> `labels.a`)."""
    return format_path(parse_path(path))
