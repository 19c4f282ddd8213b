"""Events for the clinical unit tests: a patient's counts, temperatures and IVIG infusions."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from neutrowatch.domain.events import Coding, LabResult, MedicationAdministration, Source
from neutrowatch.domain.medications import normalise_dose

T0 = datetime(2024, 1, 1, 8, tzinfo=timezone.utc)
SRC = Source("canonical")
_n = iter(range(10**9))


def reading(analyte: str, after: timedelta, value: float) -> LabResult:
    """A final result of patient p1 collected ``after`` T0: an ANC (cells/uL) or a body
    temperature (Cel), with an id of its own."""
    i = next(_n)
    name, unit = ("anc", "cells/uL") if analyte == "anc" else ("temp", "Cel")
    return LabResult(f"{name}-{i}", f"ev-{name}-{i}", "p1", None, analyte, value, unit, "F", T0 + after, SRC)


def anc(day: float, value: float) -> LabResult:
    return reading("anc", timedelta(days=day), value)


def count(key: str, day: float, value: float, pid: str) -> LabResult:
    """An ANC of patient ``pid`` whose observation is named by ``key`` (the same key again is a
    version of the same result)."""
    return LabResult(f"obs-{pid}-{key}", f"ev-{pid}-{key}", pid, None, "anc", value, "cells/uL", "F",
                     T0 + timedelta(days=day), SRC)


def series(points: list[tuple[float, float]], pid: str) -> list[LabResult]:
    """(day, value) counts of one patient, one observation each."""
    return [count(f"{i:04d}", day, value, pid) for i, (day, value) in enumerate(points)]


def ivig(day: float, value: float, unit: str = "g") -> MedicationAdministration:
    """An IVIG infusion started at 10:00 on ``day``, 4 h long, of ``value`` ``unit``."""
    i = next(_n)
    start = T0 + timedelta(days=day, hours=2)
    return MedicationAdministration(f"adm-{i}", f"ev-adm-{i}", "p1", None, Coding("J06BA02"), "ivig",
                                    start, "completed", SRC, start + timedelta(hours=4),
                                    normalise_dose(value, unit))


def of_kind(alerts, kind):
    return [a for a in alerts if a.kind == kind]
