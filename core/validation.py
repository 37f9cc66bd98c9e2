"""How every part words bad input: YAML syntax errors, pydantic validation errors and "did you mean", with values in YAML spelling."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, get_args

import yaml
from pydantic import BaseModel
from pydantic_core import ErrorDetails
from pydantic_core.core_schema import ErrorType

from redisguard.core.errors import ConfigError

# libyaml's parser where PyYAML was built with it: a fleet of 1000 clusters loads about ten
# times faster, which is most of a live drift scan.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# pydantic's own error types; any other type is a PydanticCustomError whose message already
# quotes the value.
_BUILTIN_ERROR_TYPES = frozenset(get_args(ErrorType))


class YamlSyntaxError(ConfigError):
    """A file is not valid YAML; the message says where the broken construct began and where the parser noticed."""


def yaml_value(value: Any) -> str:
    """`value` as a user wrote it in YAML (false, null, 'text', [a, b]), for a message."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    try:
        text = yaml.safe_dump(_plain(value), default_flow_style=True, allow_unicode=True, width=2**31)
    except yaml.YAMLError:
        return repr(value)
    return text.strip().removesuffix("...").strip()


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _position(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def yaml_error_message(exc: yaml.YAMLError) -> str:
    """One line for a YAML syntax error, starting where the broken construct began (an unclosed
    `[` on line 3), with where the parser noticed (often the next line)."""
    problem = getattr(exc, "problem", None) or "not valid YAML"
    problem_mark = getattr(exc, "problem_mark", None)
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    if context_mark is not None and context and (
        problem_mark is None or (context_mark.line, context_mark.column) != (problem_mark.line, problem_mark.column)
    ):
        noticed = f" (noticed at {_position(problem_mark)})" if problem_mark is not None else ""
        construct = context.removeprefix("while ").removeprefix("parsing ").removeprefix("scanning ")
        construct = "the " + construct.removeprefix("a ").removeprefix("an ")
        return f"{_position(context_mark)}: in {construct} that starts here: {problem}{noticed}"
    if problem_mark is not None:
        return f"{_position(problem_mark)}: {problem}"
    return str(problem)


def load_yaml(text: str) -> Any:
    """Parse YAML with the safe loader; YamlSyntaxError (message without the file name) when it is not valid."""
    try:
        return yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(yaml_error_message(exc)) from None


def problem_list(source: str, what: str, problems: Sequence[str], *, bullet: str = "") -> str:
    """`source: N problems in what`, then every problem indented under it, each line of a multi-line
    one too (a stack file's own list one level deeper); `bullet` starts each problem (`- `)."""
    count = len(problems)
    lines = [f"{source}: {count} problem{'s' if count != 1 else ''} in {what}"]
    for problem in problems:
        first, *rest = problem.splitlines() or [""]
        lines.append(f"  {bullet}{first}")
        lines += [f"  {' ' * len(bullet)}{line}" for line in rest]
    return "\n".join(lines)


def format_loc(loc: Sequence[str | int]) -> str:
    """A pydantic location as a key path: `pulumi.stacks[0]`, `ignore[2].path`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def closest(value: str, allowed: Iterable[str]) -> str | None:
    """The allowed value a typo most likely meant ("did you mean"); None when none is close."""
    close = difflib.get_close_matches(value, list(allowed), n=1)
    return close[0] if close else None


def model_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class whose fields a location's last key should be one of (through nested models and
    tuples or lists of them), or None where the location leaves the models."""
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        args = [a for a in getattr(annotation, "__args__", ()) if a is not type(None)]  # X | None, tuple[X, ...]
        candidate = args[0] if args else annotation
        if not (isinstance(candidate, type) and issubclass(candidate, BaseModel)):
            return None
        model = candidate
    return model


def unknown_key(key: str, allowed: Sequence[str], *, noun: str = "key") -> str:
    """The message for a key no model knows: the closest allowed key first, then every allowed one."""
    close = closest(key, allowed)
    hint = f"did you mean {yaml_value(close)}? " if close else ""
    return f"unknown {noun}; {hint}allowed {noun}s: {', '.join(allowed)}"


def unknown_argument(option: str, values: Sequence[str], problem: str, allowed: Sequence[str]) -> str:
    """The message for command-line values outside a known set (`--stack stagign: not in
    pulumi.stacks; allowed: production, staging; did you mean staging?`)."""
    close = [c for c in (closest(v, allowed) for v in values) if c is not None]
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"{option} {', '.join(values)}: {problem}; allowed: {', '.join(allowed)}{hint}"


def field_bounds(model: type[BaseModel] | None, name: str) -> tuple[float, float] | None:
    """The (low, high) a model's numeric field allows, when it declares both (Field(ge=..., le=...))."""
    field = model.model_fields.get(name) if model is not None else None
    if field is None:
        return None
    low = high = None
    for item in field.metadata:
        low = getattr(item, "ge", None) if getattr(item, "ge", None) is not None else low
        high = getattr(item, "le", None) if getattr(item, "le", None) is not None else high
    return (low, high) if low is not None and high is not None else None


def describe(error: ErrorDetails, *, bounds: tuple[float, float] | None = None) -> str:
    """What is wrong with one value, without its location: the bad value in YAML spelling and the allowed values.

    `bounds` (low, high) words a range error or a non-number as "allowed: low to high" where
    pydantic knows only the bound that failed.
    """
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    shown = yaml_value(value)
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        allowed = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"{shown} is not allowed; allowed values: {allowed}"
    if kind in {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}:
        if bounds is not None:
            return f"{shown} is out of range; allowed: {bounds[0]:g} to {bounds[1]:g}"
        words = {"ge": "at least", "le": "at most", "gt": "more than", "lt": "less than"}
        limits = [f"{words[k]} {ctx[k]}" for k in ("gt", "ge", "lt", "le") if k in ctx]
        return f"{shown} is out of range; allowed: {' and '.join(limits)}"
    if kind in {"int_type", "int_parsing", "int_from_float"}:
        allowed = f"; allowed: a whole number from {bounds[0]:g} to {bounds[1]:g}" if bounds else ""
        return f"{shown} is not a whole number{allowed}"
    if kind in {"float_type", "float_parsing"}:
        return f"{shown} is not a number"
    if kind in {"bool_type", "bool_parsing"}:
        return f"{shown} is not a boolean; allowed values: true, false"
    if kind == "string_type":
        return f"{shown} is not a string"
    if kind in {"dict_type", "model_type", "model_attributes_type"}:
        return f"expected a mapping of keys to values, got {shown}"
    if kind in {"list_type", "tuple_type"}:
        return f"expected a list, got {shown}"
    if kind == "too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    message = error["msg"].removeprefix("Value error, ")
    if kind in _BUILTIN_ERROR_TYPES and "input" in error and error["loc"]:
        return f"{message} (got {shown})"  # (a rule across keys has the whole mapping as its input)
    return message  # a custom error: its message already quotes the value
