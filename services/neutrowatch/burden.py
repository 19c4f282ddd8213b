"""Alert burden: what an alert stream costs the people it pages, per patient and overall.

Pure computation over alert records (as ``Alert.to_record()`` gives them) and each patient's
observed time span; ``neutrowatch analyze --burden`` prints :func:`format_table` of
:func:`alert_burden`.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

DAYS_PER_MONTH = 30.44
MIN_SPAN_DAYS = 1.0
EPISODE_KINDS = frozenset({"severe_neutropenia", "agranulocytosis", "expected_dip"})
EXPECTED_DIP = "expected_dip"
RETRACTED = "alert_retracted"
CRITICAL = "critical"


@dataclass(frozen=True)
class Span:
    """A patient's earliest and latest event time (lab collection, administration start)."""
    first: datetime
    last: datetime

    def including(self, t: datetime) -> Span:
        return Span(min(self.first, t), max(self.last, t))

    @property
    def months(self) -> float:
        days = (self.last - self.first).total_seconds() / 86400
        return max(days, MIN_SPAN_DAYS) / DAYS_PER_MONTH


@dataclass(frozen=True)
class BurdenRow:
    label: str
    alerts: int
    critical_pages: int
    episodes: int
    patient_months: float | None
    expected_dips: int
    retracted: int

    @property
    def pages_per_episode(self) -> float | None:
        return self.critical_pages / self.episodes if self.episodes else None

    @property
    def pages_per_patient_month(self) -> float | None:
        return self.critical_pages / self.patient_months if self.patient_months else None


@dataclass(frozen=True)
class Burden:
    patients: tuple[BurdenRow, ...]
    overall: BurdenRow

    @property
    def rows(self) -> tuple[BurdenRow, ...]:
        return (*self.patients, self.overall)


@dataclass
class _Tally:
    alerts: int = 0
    critical_pages: int = 0
    expected_dips: int = 0
    retracted: int = 0
    episode_starts: set[datetime | str] = field(default_factory=set)

    def add(self, record: Mapping[str, Any]) -> None:
        kind = record["kind"]
        self.alerts += 1
        self.critical_pages += int(record.get("severity") == CRITICAL)
        self.expected_dips += int(kind == EXPECTED_DIP)
        self.retracted += int(kind == RETRACTED)
        if kind in EPISODE_KINDS:
            self.episode_starts.add(episode_start(record))

    def row(self, label: str, months: float | None) -> BurdenRow:
        return BurdenRow(label, self.alerts, self.critical_pages, len(self.episode_starts), months,
                         self.expected_dips, self.retracted)


def episode_start(record: Mapping[str, Any]) -> datetime | str:
    """When the alert's episode began: evidence.episode_start.collected_at, else observed_at."""
    start = (record.get("evidence") or {}).get("episode_start") or {}
    text = start.get("collected_at") or record["observed_at"]
    try:
        return datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return str(text)


def alert_burden(records: Iterable[Mapping[str, Any]], spans: Mapping[str, Span]) -> Burden:
    """One row per patient (every patient with alerts or a span, by key) and an overall row.

    A patient without a span has no patient-months; the overall patient-months (the sum) is then
    unknown too, rather than understated.
    """
    tallies: dict[str, _Tally] = {key: _Tally() for key in spans}
    for record in records:
        tallies.setdefault(record["patient_key"], _Tally()).add(record)
    patients = tuple(tallies[key].row(key, spans[key].months if key in spans else None)
                     for key in sorted(tallies))
    months = [p.patient_months for p in patients]
    known = [m for m in months if m is not None]
    overall_months = sum(known) if patients and len(known) == len(months) else None
    overall = BurdenRow(f"overall ({len(patients)} patient{'s' * (len(patients) != 1)})",
                        sum(p.alerts for p in patients), sum(p.critical_pages for p in patients),
                        sum(p.episodes for p in patients), overall_months,
                        sum(p.expected_dips for p in patients), sum(p.retracted for p in patients))
    return Burden(patients, overall)


COLUMNS = ("patient", "alerts", "critical pages", "episodes", "pages/episode", "patient-months",
           "pages/patient-month", "expected dips", "retracted")


def _cells(row: BurdenRow) -> list[str]:
    return [row.label, str(row.alerts), str(row.critical_pages), str(row.episodes),
            _ratio(row.pages_per_episode), _ratio(row.patient_months),
            _ratio(row.pages_per_patient_month), str(row.expected_dips), str(row.retracted)]


def _ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def format_table(burden: Burden) -> str:
    """An aligned plain-text table: a header, the patients, a rule, the overall row."""
    lines = [list(COLUMNS), *(_cells(r) for r in burden.patients)]
    total = _cells(burden.overall)
    widths = [max(len(line[i]) for line in [*lines, total]) for i in range(len(COLUMNS))]

    def render(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:]))]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([render(lines[0]), rule, *(render(c) for c in lines[1:]), rule, render(total)]) + "\n"
