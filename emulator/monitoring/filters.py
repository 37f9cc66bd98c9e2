"""The Cloud Monitoring filter language, as far as ListTimeSeries callers use it: parsed into a predicate."""

from __future__ import annotations

from dataclasses import dataclass

from redisguard.emulator.errors import invalid
from redisguard.emulator.filters import Parser, Predicate
from redisguard.emulator.monitoring.catalogue import Series


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
    parser = Parser(text, normalize_selector)
    predicate = parser.parse()
    if not parser.equals.get("metric.type"):
        raise invalid('The filter must specify a metric type (metric.type = "...").')
    return Filter(predicate, tuple(parser.keys))
