"""Cyclic neutropenia means repeated nadirs within 14-35 days: a steady fall, a single dip (the
shape of a drug reaction) or a slower swing is not reported as a cycle."""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

from neutrowatch.detection import run
from neutrowatch.domain.events import LabResult, Source

T0 = datetime(2024, 1, 1, 8, tzinfo=timezone.utc)


def daily(shape, days: int) -> list[LabResult]:
    return [LabResult(f"o{d}", f"ev{d}", "p1", None, "anc", round(shape(d)), "cells/uL", "F",
                      T0 + timedelta(days=d), Source("canonical")) for d in range(days + 1)]


def cyclic(events):
    return [a for a in run(events) if a.kind == "cyclic_neutropenia_suspected"]


def dip(d: int) -> float:
    """3000, falling over a week to 300 from day 14, a week at 300, back to 3000 by day 35."""
    if d < 14:
        return 3000
    if d < 21:
        return 3000 - (d - 14) * 385
    if d < 28:
        return 300
    return min(3000, 300 + (d - 28) * 385)


def test_a_steady_fall_is_not_a_cycle():
    assert cyclic(daily(lambda d: max(300, 3000 - 67.5 * d), 60)) == []


def test_a_single_dip_and_recovery_is_not_a_cycle():
    assert cyclic(daily(dip, 84)) == []


def test_a_45_day_swing_is_not_reported_as_a_35_day_cycle():
    assert cyclic(daily(lambda d: 1700 + 1300 * math.cos(2 * math.pi * d / 45), 120)) == []


def test_a_21_day_oscillation_is_reported_once_two_nadirs_were_seen():
    alerts = cyclic(daily(lambda d: 1700 + 1300 * math.cos(2 * math.pi * d / 21), 84))
    assert len(alerts) == 1
    assert abs(alerts[0].evidence["period_days"] - 21) <= 1
    assert alerts[0].observed_at >= (T0 + timedelta(days=32)).isoformat().replace("+00:00", "Z")


def test_ivig_given_at_the_nadirs_does_not_explain_the_cycle_away():
    """IVIG every 21 days at the nadir (a treatment: counts rise after each infusion) is not the
    post-IVIG pattern (counts falling after infusions): the cycle stays reported, not withdrawn."""
    from neutrowatch.domain.events import Coding, Dose, MedicationAdministration
    counts = daily(lambda d: 1700 - 1300 * math.cos(2 * math.pi * d / 21), 84)
    infusions = [MedicationAdministration(f"a{d}", f"ev-a{d}", "p1", None, Coding("ivig"), "ivig",
                                          T0 + timedelta(days=d, hours=1), "completed", Source("canonical"),
                                          dose=Dose(1000, "mg/kg", mg_per_kg=1000))
                 for d in (0, 21, 42, 63, 84)]
    events = sorted(counts + infusions, key=lambda e: getattr(e, "collected_at", None) or e.started_at)
    alerts = run(events)
    assert [a.kind for a in alerts].count("cyclic_neutropenia_suspected") == 1
    assert not [a for a in alerts if a.kind in ("alert_retracted", "post_ivig_neutropenia_pattern")]
