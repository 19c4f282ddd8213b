"""Builds the scenario library (tests/scenarios/*.ndjson, canonical records) from the clinical
reference. Run `python -m tests.scenario_builder` (from the repo root) to regenerate; the files are
committed so that `neutrowatch analyze tests/scenarios/X.ndjson` shows each case.

Each scenario: NAME.ndjson (events in arrival order), optionally NAME.config.json (detection
settings), and EXPECTED[NAME] = the exact set of alert kinds `analyze` emits."""
from __future__ import annotations

import json
import math
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

from neutrowatch.domain.events import (Coding, Dose, LabResult, MedicationAdministration, Source)

HERE = Path(__file__).parent / "scenarios"
T0 = datetime(2024, 1, 1, 8, 0, tzinfo=timezone.utc)
SRC = Source("canonical", "scenario-builder")


class Patient:
    def __init__(self, name: str, birth_date: str | None = None):
        self.name, self.birth_date, self.events, self.n = name, birth_date, [], 0

    def anc(self, day: float, value: float | None, status: str = "F", oid: str | None = None):
        self.n += 1
        oid = oid or f"{self.name}-o{self.n:03d}"
        self.events.append(LabResult(oid, f"{oid}-{status}{self.n}", self.name, "SCEN", "anc",
                                     value, "cells/uL", status, T0 + timedelta(days=day), SRC,
                                     birth_date=self.birth_date))
        return oid

    def temp(self, day: float, celsius: float):
        self.n += 1
        oid = f"{self.name}-t{self.n:03d}"
        self.events.append(LabResult(oid, f"{oid}-F", self.name, "SCEN", "body_temperature",
                                     celsius, "Cel", "F", T0 + timedelta(days=day), SRC))

    def give(self, day: float, drug_class: str, mg_per_kg: float | None = None,
             code: str = "J06BA02", hours: float = 4):
        self.n += 1
        aid = f"{self.name}-a{self.n:03d}"
        dose = Dose(mg_per_kg, "mg/kg", mg_per_kg=mg_per_kg) if mg_per_kg else None
        start = T0 + timedelta(days=day)
        self.events.append(MedicationAdministration(
            aid, f"{aid}-e", self.name, "SCEN", Coding(code, "http://www.whocc.no/atc", drug_class),
            drug_class, start, "completed", SRC, start + timedelta(hours=hours), dose))


def ivig_case() -> Patient:
    """eJHaem 2025: 1 g/kg every 21 days, six cycles; cycle 3 with an infection rise to 2400."""
    p = Patient("ivig-case")
    cycles = [(800, 400, 350, 300, 800), (1100, 400, 380, 300, 900), (2400, 1900, 1700, 1600, 1200),
              (1600, 800, 500, 300, 1000), (1100, 400, 400, 320, 900), (700, 400, 350, 300, 800)]
    for k, (pre, d1, d4, d8, d15) in enumerate(cycles):
        d0 = 21 * k
        p.anc(d0 - 0.05, pre)
        p.give(d0, "ivig", 1000)
        for day, v in ((1, d1), (4, d4), (8, d8), (15, d15)):
            p.anc(d0 + day, v)
    p.anc(126 - 0.05, 1100)
    return p


def ivig_transient() -> Patient:
    """ITP child: one transient mild dip 36-48 h after 1 g/kg x 2 days, not recurring."""
    p = Patient("ivig-transient")
    p.anc(-3, 2600)
    p.give(0, "ivig", 1000)
    p.give(1, "ivig", 1000)
    p.anc(2, 1200)
    p.anc(4, 1900)
    p.anc(7, 2500)
    p.anc(27, 2600)
    p.give(28, "ivig", 1000)
    p.anc(30, 2300)
    p.anc(35, 2700)
    return p


def _cyclic_value(day: float, rng: random.Random) -> float:
    v = 1900 + 1650 * math.cos(2 * math.pi * (day - 3) / 21) + rng.uniform(-150, 150)
    return float(max(40, round(v, -1)))


def cyclic_dense() -> Patient:
    """Cyclic neutropenia, 21-day period, counts Mon/Wed/Fri for 9 weeks; no IVIG."""
    p, rng = Patient("cyclic-dense"), random.Random(21)
    for week in range(9):
        for dow in (0, 2, 4):
            day = 7 * week + dow
            p.anc(day, _cyclic_value(day, rng))
    return p


def cyclic_sparse() -> Patient:
    """The same patient sampled weekly: insufficient data, no periodicity claimed."""
    p, rng = Patient("cyclic-sparse"), random.Random(21)
    for week in range(12):
        p.anc(7 * week, _cyclic_value(7 * week, rng))
    return p


def infant_autoimmune() -> Patient:
    """Primary autoimmune neutropenia, diagnosed at ~8 months, counts for 6 months."""
    p = Patient("infant-ain", birth_date="2023-05-01")
    for day, v in ((0, 1300), (12, 420), (26, 380), (40, 510), (61, 300), (83, 450), (104, 350),
                   (130, 600), (160, 480)):
        p.anc(day, v)
    return p


def ben_stable() -> Patient:
    """Benign ethnic neutropenia, own baseline ~1000: stable counts page nobody."""
    p, rng = Patient("ben-stable"), random.Random(7)
    for week in range(16):
        p.anc(7 * week, float(round(1000 + rng.uniform(-120, 120), -1)))
    return p


def ben_fall() -> Patient:
    """The same kind of patient falling below her own baseline, then back."""
    p, rng = Patient("ben-fall"), random.Random(8)
    for week in range(8):
        p.anc(7 * week, float(round(1000 + rng.uniform(-120, 120), -1)))
    for day, v in ((57, 600), (60, 560), (70, 980), (77, 1010)):
        p.anc(day, v)
    return p


def drug_induced() -> Patient:
    """Clozapine (watch list): onset during treatment, recovery within a month of stopping."""
    p = Patient("drug-clozapine")
    p.anc(-2, 3500)
    for day in range(0, 17):
        p.give(day, "clozapine", None, code="N05AH02", hours=0.1)
    for day, v in ((7, 3100), (14, 1100), (16, 700), (21, 900), (28, 1600), (32, 2100)):
        p.anc(day, v)
    return p


def rituximab_late() -> Patient:
    """Late-onset neutropenia ~6 weeks after rituximab."""
    p = Patient("drug-rituximab")
    p.anc(-5, 3000)
    p.give(0, "rituximab", None, code="L01FA01")
    p.give(14, "rituximab", None, code="L01FA01")
    for day, v in ((28, 2900), (56, 900), (60, 850), (90, 2200), (97, 2400)):
        p.anc(day, v)
    return p


def febrile() -> Patient:
    p = Patient("febrile")
    p.anc(0, 2500)
    p.anc(5, 800)
    p.anc(6, 400)
    p.temp(6.25, 37.6)
    p.temp(6.30, 38.5)
    p.temp(6.32, 38.6)  # the same febrile episode: one alert
    return p


def febrile_sustained() -> Patient:
    """38.0-38.2 sustained over an hour, ANC 700 and falling."""
    p = Patient("febrile-sustained")
    p.anc(0, 1600)
    p.anc(1, 700)
    for minutes, c in ((0, 38.0), (30, 38.1), (70, 38.2)):
        p.temp(1.2 + minutes / 1440, c)
    return p


def corrected() -> Patient:
    """A final 450 corrected to 1450: the severe alert is retracted, a mild grade change holds."""
    p = Patient("corrected")
    p.anc(0, 2000)
    p.anc(7, 1900)
    oid = p.anc(14, 450)
    p.anc(14, 1450, status="C", oid=oid)
    return p


def deleted() -> Patient:
    """A result entered on the wrong patient is deleted (D): its alert is retracted."""
    p = Patient("deleted")
    p.anc(0, 2100)
    oid = p.anc(3, 90)
    p.anc(3, None, status="D", oid=oid)
    p.anc(5, 2000)
    return p


def late_and_duplicated() -> Patient:
    """Out-of-order delivery, redeliveries and P -> F of the same value."""
    p = Patient("late-dup")
    a = p.anc(0, 2200)
    b = p.anc(3, 420, status="P")
    p.anc(3, 420, status="F", oid=b)
    c = p.anc(7, 380)
    d = p.anc(10, 900)
    e = p.anc(14, 1700)
    f = p.anc(17, 1800)
    ev = p.events
    order = [ev[4], ev[0], ev[6], ev[1], ev[1], ev[3], ev[5], ev[2], ev[2], ev[3], ev[0]]
    p.events = order
    del a, c, d, e, f
    return p


def ivig_escalation_no_baseline() -> Patient:
    """600 mg/kg every 4 weeks, then 1 g/kg every 3 weeks with no CBC since the start."""
    p = Patient("ivig-escalation")
    p.anc(-3, 1900)
    for k in range(3):
        p.give(28 * k, "ivig", 600)
    for k in range(3):
        p.give(56 + 21 * (k + 1), "ivig", 1000)
    return p


SCENARIOS = {
    "ivig_case": (ivig_case, None),
    "ivig_transient": (ivig_transient, None),
    "cyclic_dense": (cyclic_dense, None),
    "cyclic_sparse": (cyclic_sparse, None),
    "infant_autoimmune": (infant_autoimmune, None),
    "ben_stable": (ben_stable, {"patients": {"SCEN|ben-stable": {"baseline_anc": 1000}}}),
    "ben_fall": (ben_fall, {"patients": {"SCEN|ben-fall": {"baseline_anc": 1000}}}),
    "drug_induced": (drug_induced, {"watch_list": [{"drug_class": "clozapine", "windows_days": [[0, 7]]},
                                                   {"drug_class": "rituximab",
                                                    "windows_days": [[0, 7], [21, 180]]}]}),
    "rituximab_late": (rituximab_late, None),
    "febrile": (febrile, None),
    "febrile_sustained": (febrile_sustained, None),
    "corrected": (corrected, None),
    "deleted": (deleted, None),
    "late_and_duplicated": (late_and_duplicated, None),
    "ivig_escalation_no_baseline": (ivig_escalation_no_baseline, None),
}


def build(directory: Path = HERE) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (make, config) in SCENARIOS.items():
        path = directory / f"{name}.ndjson"
        lines = [json.dumps(e.to_record(), sort_keys=True) for e in make().events]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        written.append(path)
        if config is not None:
            (directory / f"{name}.config.json").write_text(json.dumps(config, indent=1) + "\n")
    return written


if __name__ == "__main__":
    for p in build():
        print(p)
