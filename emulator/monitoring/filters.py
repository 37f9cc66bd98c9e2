"""The Cloud Monitoring filter language, as far as ListTimeSeries callers use it: parsed into a predicate."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from redisguard.emulator.errors import invalid
from redisguard.emulator.monitoring.catalogue import Series

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


Predicate = Callable[[dict[str, str]], bool]


class _Parser:
    """Recursive descent over: expr := and (OR and)*; and := unary ([AND] unary)*; unary := NOT unary | (expr) | cmp."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0
        self.metric_types: list[str] = []
        self.keys: dict[str, None] = {}
        """The label keys the filter reads, in order of appearance."""

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
        key = normalize_selector(selector)
        self.keys[key] = None
        kind, op = self.take()
        if kind != "op":
            raise invalid(f"Invalid filter: expected an operator after '{selector}', got '{op}'.")
        match = self.value()
        if key == "metric.type" and op == "=" and isinstance(match, str):
            self.metric_types.append(match)
        elif key == "metric.type" and op == "=":
            self.metric_types.append("*")

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


def normalize_selector(selector: str) -> str:
    """metric.labels.x / metric.label.x -> metric.label.x; resource likewise; errors name the selector."""
    if selector in ("metric.type", "resource.type", "project"):
        return selector
    for prefix in ("metric", "resource"):
        for form in (f"{prefix}.labels.", f"{prefix}.label."):
            if selector.startswith(form) and len(selector) > len(form):
                return f"{prefix}.label.{selector[len(form) :]}"
    raise invalid(
        f"Invalid filter: '{selector}' is not a selector the emulator supports "
        "(metric.type, resource.type, project, metric.labels.*, resource.labels.*)."
    )


@dataclass(frozen=True)
class Filter:
    """A parsed filter: the predicate over a series' labels, and the label keys it reads."""

    predicate: Predicate
    keys: tuple[str, ...]

    def selects(self, series: Series, verdicts: dict[tuple[str, ...], bool]) -> bool:
        """Whether the filter selects `series`. The verdict depends on the values of `keys` alone, so
        it is computed once per distinct values and kept in `verdicts` (one dict per request): a
        request over 1000 instances evaluates the filter a few dozen times, not for every series."""
        values = tuple(series.label(key) for key in self.keys)
        verdict = verdicts.get(values)
        if verdict is None:
            verdict = verdicts[values] = self.predicate(dict(zip(self.keys, values, strict=True)))
        return verdict


def parse_filter(text: str) -> Filter:
    parser = _Parser(text)
    predicate = parser.parse()
    if not parser.metric_types:
        raise invalid('The filter must specify a metric type (metric.type = "...").')
    return Filter(predicate, tuple(parser.keys))
