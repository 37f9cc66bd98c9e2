"""The filter language both emulated APIs parse (Monitoring's and Logging's share its grammar): text to a predicate.

Each API names its own selectors (`selector`: the selector as written -> the key the predicate
reads, or INVALID_ARGUMENT) and, where it compares by order (Logging's `timestamp >= "..."`),
how values sort (`order`).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

from redisguard.emulator.errors import invalid

Predicate = Callable[[dict[str, str]], bool]
Order = Callable[[str, str], Any]
"""(key, value) -> a sort key for `<`, `<=`, `>`, `>=` on that key."""
_ORDERED: dict[str, Callable[[Any, Any], bool]] = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<op>!=~|=~|!=|<=|>=|=|:|<|>)
      | (?P<punct>[(),])
      | (?P<word>[A-Za-z_][A-Za-z0-9_./-]*|-?[0-9]+(?:\.[0-9]+)?)
    )""",
    re.VERBOSE,
)
_FUNCTIONS = ("starts_with", "ends_with", "has_substring", "one_of", "monitoring.regex.full_match")


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise invalid(f"Invalid filter: unexpected character at position {pos}: {text[pos : pos + 20]!r}")
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "string":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append((kind, value))
        pos = m.end()
    return tokens



class Parser:
    """Recursive descent over: expr := and (OR and)*; and := unary ([AND] unary)*; unary := NOT unary | (expr) | cmp."""

    def __init__(self, text: str, selector: Callable[[str], str], order: Order | None = None) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0
        self.selector = selector
        self.order = order
        self.equals: dict[str, list[str]] = {}
        """key -> the values `key = value` asks for (`*` for a function), in order of appearance."""
        self.keys: dict[str, None] = {}
        """The keys the filter reads, in order of appearance."""

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise invalid("Invalid filter: unexpected end of filter.")
        self.pos += 1
        return tok

    def expect(self, value: str) -> None:
        tok = self.take()
        if tok[1] != value:
            raise invalid(f"Invalid filter: expected '{value}', got '{tok[1]}'.")

    def parse(self) -> Predicate:
        if not self.tokens:
            raise invalid("Request is missing required field filter.")
        pred = self.or_expr()
        if (extra := self.peek()) is not None:
            raise invalid(f"Invalid filter: unexpected '{extra[1]}'.")
        return pred

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.peek() == ("word", "OR"):
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else (lambda labels: any(p(labels) for p in parts))

    def and_expr(self) -> Predicate:
        parts = [self.unary()]
        while (tok := self.peek()) is not None and tok != ("word", "OR") and tok[1] != ")":
            if tok == ("word", "AND"):
                self.take()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else (lambda labels: all(p(labels) for p in parts))

    def unary(self) -> Predicate:
        tok = self.take()
        if tok == ("word", "NOT"):
            inner = self.unary()
            return lambda labels: not inner(labels)
        if tok[1] == "(":
            inner = self.or_expr()
            self.expect(")")
            return inner
        if tok[0] != "word":
            raise invalid(f"Invalid filter: expected a selector, got '{tok[1]}'.")
        return self.comparison(tok[1])

    def comparison(self, selector: str) -> Predicate:
        key = self.selector(selector)
        self.keys[key] = None
        kind, op = self.take()
        if kind != "op":
            raise invalid(f"Invalid filter: expected an operator after '{selector}', got '{op}'.")
        match = self.value()
        if op == "=":
            self.equals.setdefault(key, []).append(match if isinstance(match, str) else "*")
        order = self.order
        if op in ("<", "<=", ">", ">=") and order is not None and isinstance(match, str):
            bound = order(key, match)
            compare = _ORDERED[op]
            return lambda labels: compare(order(key, labels.get(key, "")), bound)

        def test(value: str) -> bool:
            if op in ("=", "!="):
                ok = match(value) if callable(match) else value == match
            elif op in ("=~", "!=~"):
                ok = re.fullmatch(str(match), value) is not None
            elif op == ":":
                ok = match(value) if callable(match) else str(match) in value
            else:
                raise invalid(f"Invalid filter: operator '{op}' is not supported for '{selector}'.")
            return not ok if op.startswith("!") else ok

        return lambda labels: test(labels.get(key, ""))

    def value(self) -> str | Callable[[str], bool]:
        kind, value = self.take()
        if kind == "string" or (kind == "word" and self.peek() != ("punct", "(")):
            return value
        if kind != "word" or value not in _FUNCTIONS:
            raise invalid(f"Invalid filter: unknown function or value '{value}'.")
        self.expect("(")
        args: list[str] = []
        while True:
            akind, arg = self.take()
            if akind != "string":
                raise invalid(f"Invalid filter: {value}() takes quoted strings, got '{arg}'.")
            args.append(arg)
            if self.take()[1] == ")":
                break
        if value == "one_of":
            return lambda v: v in args
        if len(args) != 1:
            raise invalid(f"Invalid filter: {value}() takes one argument.")
        a = args[0]
        return {
            "starts_with": lambda v: v.startswith(a),
            "ends_with": lambda v: v.endswith(a),
            "has_substring": lambda v: a in v,
            "monitoring.regex.full_match": lambda v: re.fullmatch(a, v) is not None,
        }[value]
