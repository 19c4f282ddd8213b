"""Writes the demo data set (services/neutrowatch/demo/data/) the way real feeds send it.

    python -m neutrowatch.demo.generate          # regenerate (deterministic: same bytes every run)

Four synthetic patients of a made-up hospital, DEMOHOSP (identifiers, names and values are
invented; the IVIG case follows the numbers of the eJHaem 2025 case report):

- DEMOHOSP|IVIG-01: HL7 v2 over MLLP. CBCs as ORU^R01 (WBC, neutrophils %, ANC in 10*3/uL) and
  each IVIG infusion (Privigen 1 g/kg every 21 days) as RAS^O17: the post-IVIG cyclical pattern.
- CYCLIC-02: FHIR R4 over HTTP, one Observation (ANC, LOINC 751-8, in 10*9/L) per draw, Mon/Wed/Fri
  for nine weeks: counts that oscillate with a 21-day period (cyclic neutropenia).
- FEBRILE-03: FHIR R4 over HTTP. Each CBC is a transaction Bundle (Specimen, WBC 6690-2,
  neutrophils % 770-8, DiagnosticReport: the ANC is derived) and each bedside temperature an
  Observation (8310-5, Cel): severe neutropenia after chemotherapy, then a fever of 38.6 °C.
  The story stops three days after the fever (see febrile()).
- DEMOHOSP|BEN-04: HL7 v2 over MLLP. Weekly CBCs with a stable ANC around 1000/uL: benign ethnic
  neutropenia, kept quiet by her own baseline in detection.yaml (without it she would be paged).

Dates are fixed (2025), so the files and the alerts they produce never change; the engine decides
on collection times, not on the time the demo sends them. ``manifest.json`` lists each patient with
its feed, files and the alert kinds `neutrowatch analyze` must find (tests/unit/test_demo_data.py).
"""
from __future__ import annotations

import json
import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
NS = uuid.UUID("6f1c2f0e-5d5b-4d8e-9a51-0b7a2c1e4d20")  # uuid5 namespace: stable resource ids
UTC = timezone.utc
FACILITY = "DEMOHOSP"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
RESULTS_SYSTEM = "https://lab.demohosp.example/results"


@dataclass
class DemoPatient:
    key: str
    title: str
    story: str
    feed: str
    file: str
    expect: list[str]
    messages: list[tuple[datetime, str]] = field(default_factory=list)  # (collection time, text)

    def manifest(self) -> dict:
        return {"key": self.key, "title": self.title, "story": self.story, "feed": self.feed,
                "file": self.file, "messages": len(self.messages), "expect": sorted(self.expect)}


# ------------------------------------------------------------------------------------ HL7 v2

def hl7_ts(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y%m%d%H%M%S") + "+0000"


def _k(cells_per_ul: float) -> str:
    """cells/uL -> the x10^3/uL text a lab analyser sends (0.35, 1.1, 2.4)."""
    return f"{cells_per_ul / 1000:.2f}".rstrip("0").rstrip(".")


class Hl7Feed:
    def __init__(self, app: str, prefix: str):
        self.app, self.prefix, self.n = app, prefix, 0

    def msh(self, sent: datetime, kind: str) -> str:
        self.n += 1
        return (f"MSH|^~\\&|{self.app}|{FACILITY}|NEUTROWATCH|{FACILITY}|{hl7_ts(sent)}||{kind}|"
                f"{self.prefix}{self.n:05d}|P|2.5.1")


def cbc_oru(feed: Hl7Feed, pid: str, pv1: str, accession: str, collected: datetime, anc: float,
            wbc: float) -> str:
    """One CBC: WBC, neutrophils %, ANC (direct, wins over the derived value), as a lab sends it."""
    reported = collected + timedelta(hours=1, minutes=25)
    percent = round(100 * anc / wbc, 1)
    flag = "LL" if anc < 500 else "L" if anc < 1500 else "N"
    wflag = "L" if wbc < 4000 else "N"
    segments = [
        feed.msh(reported, "ORU^R01^ORU_R01"), pid, pv1,
        f"ORC|RE|{accession}^DEMOLAB|{accession}^DEMOLAB||CM",
        f"OBR|1|{accession}^DEMOLAB|{accession}^DEMOLAB|58410-2^CBC panel - Blood by Automated count^LN"
        f"|||{hl7_ts(collected)}|||||||||||||||{hl7_ts(reported)}|||F",
        f"OBX|1|NM|6690-2^Leukocytes [#/volume] in Blood by Automated count^LN||{_k(wbc)}"
        f"|10*3/uL^thousand per microliter^UCUM|4.0-11.0|{wflag}|||F|||{hl7_ts(collected)}",
        f"OBX|2|NM|770-8^Neutrophils/100 leukocytes in Blood by Automated count^LN||{percent}"
        f"|%^percent^UCUM|40-75||||F|||{hl7_ts(collected)}",
        f"OBX|3|NM|751-8^Neutrophils [#/volume] in Blood by Automated count^LN||{_k(anc)}"
        f"|10*3/uL^thousand per microliter^UCUM|1.5-7.0|{flag}|||F|||{hl7_ts(collected)}",
    ]
    return "\n".join(segments)


def ivig_ras(feed: Hl7Feed, pid: str, order: str, start: datetime, hours: float) -> str:
    end = start + timedelta(hours=hours)
    return "\n".join([
        feed.msh(end + timedelta(minutes=10), "RAS^O17^RAS_O17"), pid,
        f"PV1|1|O|INFUSION^CHAIR2^^{FACILITY}||||||||NEU",
        f"ORC|RE|{order}^PHARMSYS|{order}^PHARMSYS||CM",
        f"RXA|0|1|{hl7_ts(start)}|{hl7_ts(end)}|J06BA02^Privigen 10% human normal immunoglobulin IV^ATC"
        "|1|g/kg^gram per kilogram^UCUM|||||||||||||CP|A",
        "RXR|IV^Intravenous^HL70162",
    ])


# ---------------------------------------------------------------------------------- patients

def ivig_case() -> DemoPatient:
    """eJHaem 2025: 56-year-old man, multifocal motor neuropathy, IVIG 1 g/kg every 3 weeks.
    Per cycle (x10^3/uL): pre-infusion, day 1, day 4, day 8 (nadir), day 15; cycle 3 has a COVID-19
    infection (2.4 before the infusion) and still dips. The numbers of tests/scenarios/ivig_case."""
    p = DemoPatient(
        key=f"{FACILITY}|IVIG-01", title="IVIG case",
        story="56-year-old man on IVIG 1 g/kg every 3 weeks for multifocal motor neuropathy "
              "(the eJHaem 2025 case report)",
        feed="HL7 v2 over MLLP: ORU^R01 CBCs and RAS^O17 infusions", file="hl7/ivig-case.hl7",
        expect=["grade_change", "severe_neutropenia", "recovery", "post_ivig_neutropenia_pattern",
                "expected_dip", "chronic_neutropenia"])
    lab, pharmacy = Hl7Feed("DEMOLAB", "IVL"), Hl7Feed("PHARMSYS", "IVP")
    pid = f"PID|1||IVIG-01^^^{FACILITY}^MR||SYNTHETIC^IVIG CASE||19690312|M"
    pv1 = f"PV1|1|O|NEURO-OPD^^^{FACILITY}||||||||NEU"
    t0 = datetime(2025, 1, 6, 8, 0, tzinfo=UTC)
    cycles = [(800, 400, 350, 300, 800), (1100, 400, 380, 300, 900), (2400, 1900, 1700, 1600, 1200),
              (1600, 800, 500, 300, 1000), (1100, 400, 400, 320, 900), (700, 400, 350, 300, 800)]
    n = 0

    def cbc(t: datetime, anc: float) -> None:
        nonlocal n
        n += 1
        p.messages.append((t, cbc_oru(lab, pid, pv1, f"IV{n:04d}", t, anc, anc + 1300)))

    for k, (pre, d1, d4, d8, d15) in enumerate(cycles):
        day0 = t0 + timedelta(days=21 * k)
        cbc(day0 - timedelta(hours=1, minutes=12), pre)
        p.messages.append((day0, ivig_ras(pharmacy, pid, f"IVIG{k + 1:03d}", day0, 4)))
        for day, anc in ((1, d1), (4, d4), (8, d8), (15, d15)):
            cbc(day0 + timedelta(days=day), anc)
    cbc(t0 + timedelta(days=126) - timedelta(hours=1, minutes=12), 1100)
    return p


def _cyclic_anc(day: float, rng: random.Random) -> float:
    v = 1900 + 1650 * math.cos(2 * math.pi * (day - 3) / 21) + rng.uniform(-150, 150)
    return float(max(40, round(v, -1)))


def fhir_anc(patient: str, accession: str, collected: datetime, anc: float) -> dict:
    return {
        "resourceType": "Observation",
        "id": str(uuid.uuid5(NS, f"{patient}/{accession}/751-8")),
        "identifier": [{"system": RESULTS_SYSTEM, "value": f"{accession}-751-8"}],
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "laboratory", "display": "Laboratory"}]}],
        "code": {"coding": [{"system": LOINC, "code": "751-8",
                             "display": "Neutrophils [#/volume] in Blood by Automated count"}],
                 "text": "Neutrophils, absolute"},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": collected.isoformat().replace("+00:00", "Z"),
        "issued": (collected + timedelta(hours=2)).isoformat().replace("+00:00", "Z"),
        "valueQuantity": {"value": round(anc / 1000, 2), "unit": "10^9/L", "system": UCUM, "code": "10*9/L"},
        "referenceRange": [{"low": {"value": 1.5, "unit": "10^9/L", "system": UCUM, "code": "10*9/L"},
                            "high": {"value": 7.0, "unit": "10^9/L", "system": UCUM, "code": "10*9/L"}}],
    }


def cyclic() -> DemoPatient:
    """Counts oscillating with a 21-day period (nadir about day 13 of each cycle), sampled
    Monday/Wednesday/Friday for nine weeks: dense enough for the period search."""
    p = DemoPatient(
        key="CYCLIC-02", title="cyclic neutropenia",
        story="19-year-old with recurrent mouth ulcers every few weeks; counts three times a week "
              "for nine weeks",
        feed="FHIR R4 over HTTP: one Observation (ANC 751-8, 10*9/L) per draw",
        file="fhir/cyclic.ndjson",
        expect=["grade_change", "severe_neutropenia", "recovery", "cyclic_neutropenia_suspected",
                "expected_dip"])
    rng, t0 = random.Random(21), datetime(2025, 2, 3, 9, 0, tzinfo=UTC)
    for week in range(9):
        for dow in (0, 2, 4):
            day = 7 * week + dow
            t = t0 + timedelta(days=day)
            resource = fhir_anc("CYCLIC-02", f"CY{day:03d}", t, _cyclic_anc(day, rng))
            p.messages.append((t, json.dumps(resource, separators=(",", ":"))))
    return p


def cbc_bundle(patient: str, accession: str, collected: datetime, wbc: float, percent: float) -> dict:
    """A transaction Bundle as a FHIR lab interface posts it: the specimen, WBC and neutrophils %
    (no direct ANC: NeutroWatch derives it from the same specimen) and the CBC report."""
    def uid(what: str) -> str:
        return "urn:uuid:" + str(uuid.uuid5(NS, f"{patient}/{accession}/{what}"))

    when = collected.isoformat().replace("+00:00", "Z")
    issued = (collected + timedelta(minutes=95)).isoformat().replace("+00:00", "Z")
    subject = {"reference": f"Patient/{patient}"}
    lab = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory"}]}]

    def obs(what: str, code: str, display: str, value: float, unit: str, ucum: str) -> dict:
        return {"fullUrl": uid(what), "request": {"method": "POST", "url": "Observation"},
                "resource": {"resourceType": "Observation",
                             "identifier": [{"system": RESULTS_SYSTEM, "value": f"{accession}-{code}"}],
                             "status": "final", "category": lab,
                             "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
                             "subject": subject, "effectiveDateTime": when, "issued": issued,
                             "specimen": {"reference": uid("specimen")},
                             "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": ucum}}}

    return {
        "resourceType": "Bundle", "id": str(uuid.uuid5(NS, f"{patient}/{accession}")), "type": "transaction",
        "entry": [
            {"fullUrl": uid("specimen"), "request": {"method": "POST", "url": "Specimen"},
             "resource": {"resourceType": "Specimen",
                          "accessionIdentifier": {"system": RESULTS_SYSTEM, "value": accession},
                          "type": {"coding": [{"system": "http://snomed.info/sct", "code": "119297000",
                                               "display": "Blood specimen"}]},
                          "subject": subject, "collection": {"collectedDateTime": when}}},
            obs("wbc", "6690-2", "Leukocytes [#/volume] in Blood by Automated count", wbc / 1000,
                "10^3/uL", "10*3/uL"),
            obs("neut", "770-8", "Neutrophils/100 leukocytes in Blood by Automated count", percent, "%", "%"),
            {"fullUrl": uid("report"), "request": {"method": "POST", "url": "DiagnosticReport"},
             "resource": {"resourceType": "DiagnosticReport", "status": "final", "subject": subject,
                          "code": {"coding": [{"system": LOINC, "code": "58410-2",
                                               "display": "CBC panel - Blood by Automated count"}]},
                          "effectiveDateTime": when, "issued": issued,
                          "result": [{"reference": uid("wbc")}, {"reference": uid("neut")}]}},
        ]}


def fhir_temperature(patient: str, n: int, taken: datetime, celsius: float) -> dict:
    return {
        "resourceType": "Observation",
        "id": str(uuid.uuid5(NS, f"{patient}/temp/{n}")),
        "identifier": [{"system": "https://vitals.demohosp.example/observations", "value": f"T{n:04d}"}],
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "vital-signs", "display": "Vital Signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": "8310-5", "display": "Body temperature"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": taken.isoformat().replace("+00:00", "Z"),
        "valueQuantity": {"value": celsius, "unit": "C", "system": UCUM, "code": "Cel"},
    }


def febrile() -> DemoPatient:
    """Day 0 chemotherapy (not in the feed); the counts fall, ANC 400 on day 6 and a fever of
    38.6 °C that evening: febrile neutropenia. Admitted on antibiotics, afebrile by day 8, still
    severely neutropenic on day 9. The data set stops there, within three days of the fever: the
    engine keeps three days of temperatures (history_temperature_days) and, as of this writing,
    retracts a febrile alert once its fever ages out of that window; a longer story would show a
    misleading "retracted" line."""
    p = DemoPatient(
        key="FEBRILE-03", title="febrile neutropenia",
        story="62-year-old on chemotherapy for lymphoma: counts fall in the second week, then a fever",
        feed="FHIR R4 over HTTP: CBCs as transaction Bundles (ANC derived), temperatures as Observations",
        file="fhir/febrile.ndjson",
        expect=["severe_neutropenia", "febrile_neutropenia"])
    day0 = datetime(2025, 4, 7, tzinfo=UTC)
    # (day, hour, WBC cells/uL, neutrophils %): ANC = WBC x % / 100
    cbcs = [(0, 7.5, 5200, 58.0), (4, 7.5, 2900, 41.0), (6, 7.5, 1600, 25.0), (7, 7.5, 1250, 20.0),
            (9, 7.5, 1500, 20.0)]
    temps = [(5, 20.0, 37.1), (6, 14.0, 37.4), (6, 18.0, 37.9), (6, 19.2, 38.6), (6, 20.0, 38.7),
             (7, 6.0, 38.1), (8, 6.0, 37.4)]
    items = [(day0 + timedelta(days=d, hours=h), "cbc", (w, pct)) for d, h, w, pct in cbcs]
    items += [(day0 + timedelta(days=d, hours=h), "temp", c) for d, h, c in temps]
    for n, (t, what, data) in enumerate(sorted(items, key=lambda x: x[0]), 1):
        if what == "cbc":
            resource = cbc_bundle("FEBRILE-03", f"FB{n:04d}", t, *data)
        else:
            resource = fhir_temperature("FEBRILE-03", n, t, data)
        p.messages.append((t, json.dumps(resource, separators=(",", ":"))))
    return p


def ben() -> DemoPatient:
    """Benign ethnic neutropenia (Duffy-null): ANC 880-1120/uL every week for four months, no
    infections. The default US profile calls < 1500 'mild'; her own baseline (1000, normal limit
    0.8 x 1000) in detection.yaml keeps her quiet, while a fall below 800 would still alert."""
    p = DemoPatient(
        key=f"{FACILITY}|BEN-04", title="benign ethnic neutropenia (stays quiet)",
        story="34-year-old woman of West African descent, Duffy-null, ANC ~1000/uL for years, no infections",
        feed="HL7 v2 over MLLP: ORU^R01 CBCs", file="hl7/ben.hl7", expect=[])
    lab = Hl7Feed("DEMOLAB", "BNL")
    pid = f"PID|1||BEN-04^^^{FACILITY}^MR||SYNTHETIC^BEN||19910527|F||2054-5^Black or African American^CDCREC"
    pv1 = f"PV1|1|O|HAEM-OPD^^^{FACILITY}||||||||HAE"
    rng, t0 = random.Random(7), datetime(2025, 1, 13, 10, 15, tzinfo=UTC)
    for week in range(16):
        t = t0 + timedelta(days=7 * week)
        anc = float(round(1000 + rng.uniform(-120, 120), -1))
        p.messages.append((t, cbc_oru(lab, pid, pv1, f"BN{week + 1:04d}", t, anc, anc + 2600)))
    return p


PATIENTS = (ivig_case, cyclic, febrile, ben)

DETECTION = """\
# Detection settings of the demo (neutrowatch demo passes this file as --detection-config-file).
# Keys: services/neutrowatch/detection/config.py. Everything not set here keeps its default.
profile: us            # lower limit of normal 1500 cells/uL

patients:
  # Benign ethnic neutropenia: her own stable count is her baseline. Her lower limit of normal
  # becomes baseline_anc x baseline_fraction (0.8) = 800 cells/uL, so her usual ~1000 pages
  # nobody, while a fall below 800 still does.
  "DEMOHOSP|BEN-04":
    baseline_anc: 1000
"""


def build(directory: Path = DATA) -> list[Path]:
    written = []

    def write(rel: str, text: str) -> None:
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
        written.append(path)

    manifest = []
    for make in PATIENTS:
        p = make()
        p.messages.sort(key=lambda m: m[0])
        sep = "\n\n" if p.file.endswith(".hl7") else "\n"
        write(p.file, sep.join(text for _, text in p.messages) + "\n")
        manifest.append(p.manifest())
    write("manifest.json", json.dumps({"detection_config": "detection.yaml", "patients": manifest},
                                      indent=1) + "\n")
    write("detection.yaml", DETECTION)
    return written


if __name__ == "__main__":
    for path in build():
        print(path)
