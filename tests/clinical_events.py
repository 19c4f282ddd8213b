"""Events for the clinical unit tests: one patient's counts and IVIG infusions, by day."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from neutrowatch.domain.events import Coding, LabResult, MedicationAdministration, Source
from neutrowatch.domain.medications import normalise_dose

T0 = datetime(2024, 1, 1, 8, tzinfo=timezone.utc)
_n = iter(range(10**9))


def anc(day: float, value: float) -> LabResult:
    i = next(_n)
    return LabResult(f"anc-{i}", f"ev-anc-{i}", "p1", None, "anc", value, "cells/uL", "F",
                     T0 + timedelta(days=day), Source("canonical"))


def ivig(day: float, value: float, unit: str = "g") -> MedicationAdministration:
    """An IVIG infusion started at 10:00 on ``day``, 4 h long, of ``value`` ``unit``."""
    i = next(_n)
    start = T0 + timedelta(days=day, hours=2)
    return MedicationAdministration(f"adm-{i}", f"ev-adm-{i}", "p1", None, Coding("J06BA02"), "ivig",
                                    start, "completed", Source("canonical"), start + timedelta(hours=4),
                                    normalise_dose(value, unit))


def of_kind(alerts, kind):
    return [a for a in alerts if a.kind == kind]
