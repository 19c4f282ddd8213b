"""The demo's input: the bundled synthetic patients (data/, written by generate.py) and, from a
repository checkout, the real public sample messages in tests/fixtures. Each becomes a Section:
one patient's (or one sample set's) messages in the order a feed would send them."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

DATA = Path(__file__).resolve().parent / "data"
REPO = Path(__file__).resolve().parents[3]
SAMPLES = REPO / "tests" / "fixtures"
LOCAL_CODES = REPO / "config" / "local-codes.example.yaml"
DETECTION_CONFIG = DATA / "detection.yaml"
ROUTING_TEMPLATE = DATA / "routing.yaml"


@dataclass(frozen=True)
class Item:
    """One message exactly as a feed sends it."""
    channel: Literal["hl7", "fhir"]
    payload: str  # HL7: segments joined by \r; FHIR: the JSON text
    label: str  # what to call it when it is refused (file and position)
    endpoint: str = ""  # FHIR: /fhir/Observation, /fhir/MedicationAdministration or /fhir

    @property
    def kind(self) -> str:
        """ORU^R01, RAS^O17, Observation, Bundle, ..."""
        if self.channel == "hl7":
            fields = self.payload.split("\r", 1)[0].split("|")
            return "^".join(fields[8].split("^")[:2]) if len(fields) > 8 else "HL7"
        return self.endpoint.rsplit("/", 1)[-1] if self.endpoint != "/fhir" else "Bundle"


@dataclass
class Section:
    title: str
    story: str
    feed: str
    items: list[Item]
    key: str | None = None  # the patient key (synthetic patients)
    expect: list[str] = field(default_factory=list)  # alert kinds `analyze` finds

    @property
    def synthetic(self) -> bool:
        return self.key is not None


def hl7_items(path: Path) -> list[Item]:
    from neutrowatch.parsing.hl7v2 import split_messages
    return [Item("hl7", text, f"{path.name} message {n}")
            for n, text in enumerate(split_messages(path.read_bytes()), 1)]


def fhir_items(path: Path) -> list[Item]:
    """A FHIR JSON file (one resource) or NDJSON (one resource a line): one POST each."""
    text = path.read_text(encoding="utf-8-sig")
    try:
        resources = [json.loads(text)]
        lines = [text]
    except json.JSONDecodeError:
        lines = [line for line in text.splitlines() if line.strip()]
        resources = [json.loads(line) for line in lines]
    items = []
    for n, (resource, raw) in enumerate(zip(resources, lines), 1):
        rtype = resource.get("resourceType") if isinstance(resource, dict) else None
        endpoint = "/fhir" if rtype == "Bundle" else f"/fhir/{rtype}"
        label = path.name if len(lines) == 1 else f"{path.name} line {n}"
        items.append(Item("fhir", raw.strip(), label, endpoint))
    return items


def manifest() -> dict:
    return json.loads((DATA / "manifest.json").read_text(encoding="utf-8"))


def synthetic_sections() -> list[Section]:
    sections = []
    for p in manifest()["patients"]:
        path = DATA / p["file"]
        items = hl7_items(path) if path.suffix == ".hl7" else fhir_items(path)
        sections.append(Section(p["title"], p["story"], p["feed"], items, p["key"], list(p["expect"])))
    return sections


def sample_section() -> Section | None:
    """The real public sample messages (NIST, SimHospital, FHIR examples) from a checkout."""
    if not SAMPLES.is_dir():
        return None
    items = [i for path in sorted((SAMPLES / "hl7").glob("*.hl7")) for i in hl7_items(path)]
    items += [i for path in sorted((SAMPLES / "fhir").glob("*.json")) for i in fhir_items(path)]
    if not items:
        return None
    return Section("public sample messages", "real HL7 v2 and FHIR samples from public test suites "
                   "(tests/fixtures/SOURCES.md)", "HL7 v2 over MLLP and FHIR R4 over HTTP", items)


def sections(include_samples: bool = True) -> list[Section]:
    out = synthetic_sections()
    sample = sample_section() if include_samples else None
    return out + ([sample] if sample else [])
