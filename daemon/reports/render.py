"""The table and Markdown toolkit every report rendering shares (drift, memory, the status page):
values, durations and sizes as people read them, rich tables printed at their natural width,
and a failed check's error as a block."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
_UNBOUNDED = 100_000


def format_duration(seconds: float) -> str:
    """A check's duration for people: milliseconds below a second (a live check takes a few),
    so a fast check does not read as "0.00s", as if it never ran."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms" if seconds >= 0.001 else "<1 ms"
    return f"{seconds:.2f} s"


def format_value(value: Any) -> str:
    """A property value as people read it: strings bare, absent as a dash, the rest as JSON."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def format_bytes(value: float | None) -> str:
    """Bytes in binary units (Memorystore sizes are GiB): `13.6 MiB`; a dash when unknown."""
    if value is None:
        return "—"
    size = float(value)
    for unit in _UNITS:
        if abs(size) < 1024 or unit == _UNITS[-1]:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def format_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def format_time_to_full(seconds: float | None) -> str:
    """Days and hours, hours and minutes, or minutes; "—" when there is no estimate (not growing)."""
    if seconds is None:
        return "—"
    minutes = int(seconds // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m"


# --- errors ----------------------------------------------------------------------------------


def first_few(labels: Sequence[str], limit: int = 3) -> str:
    """`a, b, c and 4 more`: the first `limit` labels and how many are left out (a log line's summary)."""
    shown = ", ".join(labels[:limit])
    return f"{shown} and {len(labels) - limit} more" if len(labels) > limit else shown


def error_block(heading: str, error: str | None) -> list[str]:
    """A failed check's error as it reads in a log: the heading, then the message indented (each
    line of a multi-line one, as a stack file's problem list)."""
    return [heading, *(f"  {line}" for line in (error or "unknown error").splitlines())]


def md_error_block(heading: str, error: str | None) -> list[str]:
    """A failed check's error in Markdown: a heading, then the message as written in a fenced block."""
    text = (error or "unknown error").replace("```", "'" * 3)
    return ["", f"### {heading}", "", "```text", text, "```"]


# --- tables (rich) ---------------------------------------------------------------------------


def print_tables(console: Console, tables: Sequence[tuple[str, Table]], errors: Sequence[str]) -> None:
    """Print (title, table) pairs, then the error lines; off a terminal (CI logs, `| cat`, a file)
    each table gets its natural width.

    Rich assumes 80 columns when stdout is not a terminal; folding long paths and values into
    that width makes CI logs hard to read and to grep, and nobody's window is that narrow there.
    """
    for title, table in tables:
        console.print(Text(title, style="italic"))
        # Cells hold what the fleet says (names, values, messages, an update mask's `[fields]`): shown
        # as written, never read as rich markup, which would drop anything in square brackets.
        if console.is_terminal:
            console.print(table, markup=False)
            continue
        natural = console.measure(table, options=console.options.update(markup=False).update_width(_UNBOUNDED)).maximum
        saved = console.width
        console.width = max(saved, natural)
        try:
            console.print(table, markup=False)
        finally:
            console.width = saved
    if errors:
        # Plain text, never wrapped by rich: a message is read (and grepped) as the check wrote it.
        console.print(Text("\n".join(errors)), soft_wrap=True)


def plain_text(printer: Callable[[Console], None]) -> str:
    """What `printer` prints, as plain text without colours."""
    buffer = io.StringIO()
    printer(Console(file=buffer, color_system=None, force_terminal=False))
    return buffer.getvalue()
