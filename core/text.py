"""Text in Markdown as every report writes it (drift, memory, policy-check): one escaper for a table cell."""

from __future__ import annotations


def md_cell(text: str, *, markdown: bool = False) -> str:
    """`text` for one cell of a GitHub Markdown table: a pipe would end the cell, a newline the row.

    Plain text (a name, a value) also gets its backslashes escaped and its backticks turned into
    quotes, so it reads as written and opens no code span. `markdown=True` is for text that is
    Markdown already (a policy message's `code` spans), which keeps its backticks and backslashes.
    """
    if not markdown:
        text = text.replace("\\", "\\\\").replace("`", "'")
    return text.replace("|", "\\|").replace("\n", " ")
