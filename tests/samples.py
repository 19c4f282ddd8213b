"""Shared test samples: fixture loading and the code maps the samples need."""
from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path

from neutrowatch.domain.codes import CodeMap

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).parent.parent
SCHEMAS = REPO / "schemas"

NIST_CBC = "fhirconverter__LRI_2.0-NG_CBC_Typ_Message.hl7"
LAB_ORU_1 = "fhirconverter__LAB-ORU-1.hl7"
LAB_ORU_2 = "fhirconverter__LAB-ORU-2.hl7"
GLUCOSE_ORU = "fhirconverter__ORU-R01-RMGEAD.hl7"
SIMHOSPITAL = [f"simhospital__messages_out_oru_fbc_{n}.hl7" for n in range(1, 6)]
RAS_IVIG = "neutrowatch__ras_o17_ivig_privigen.hl7"
ORU_PRELIMINARY = "neutrowatch__oru_anc_preliminary.hl7"
ORU_CORRECTED = "neutrowatch__oru_anc_corrected.hl7"
ORU_TEMPERATURE_F = "neutrowatch__oru_temperature_degf.hl7"
HL7_ALL = sorted(p.name for p in (FIXTURES / "hl7").iterdir())

GHP_BUNDLE = "fhir3.6.0__diagnosticreport-example-ghp.json"
R7_WBC = "fhir3.6.0__diagnosticreport-example-ghp__Observation-r7_6690-2.json"
R8_NEUT_PCT = "fhir3.6.0__diagnosticreport-example-ghp__Observation-r8_770-8.json"
R9_ANC = "fhir3.6.0__diagnosticreport-example-ghp__Observation-r9_751-8.json"
FHIR_MEDADMIN_KCL = "fhir3.6.0__medicationadministration0302.json"
NIST_BUNDLE = "fhirconverter__LRI_2.0-NG_CBC_Typ_Message-expected.json"
USCORE_NEUT_PCT = "uscore-derived__TEMPUSCORE4__Observation-neutrophils.json"
FHIR_IVIG = "neutrowatch__medicationadministration-ivig-privigen.json"
FHIR_ALL = sorted(p.name for p in (FIXTURES / "fhir").iterdir())

# SimHospital's WinPath codes, as in config/local-codes.example.yaml.
SIMHOSPITAL_CODES = CodeMap.from_mapping({"local_codes": [
    {"code": "tt-0002-09", "system": "WinPath", "role": "anc_direct"},
    {"code": "tt-0002-07", "system": "WinPath", "role": "wbc"},
    {"code": "tt-0002-08", "system": "WinPath", "role": "neutrophils_percent"},
]})
# LAB-ORU-1/2 report the leukocyte count under 11156-7 (a morphology code in LOINC), so a site
# feeding them must map it explicitly; the built-in LOINC table does not guess.
LAB_ORU_CODES = CodeMap.from_mapping({"local_codes": [
    {"code": "11156-7", "system": "LN", "role": "wbc"},
]})


@lru_cache(maxsize=None)
def _hl7_bytes(name: str) -> bytes:
    return (FIXTURES / "hl7" / name).read_bytes()


def hl7_bytes(name: str) -> bytes:
    return _hl7_bytes(name)


def hl7_text(name: str) -> str:
    return _hl7_bytes(name).decode("utf-8-sig")


@lru_cache(maxsize=None)
def _fhir(name: str) -> str:
    return (FIXTURES / "fhir" / name).read_text(encoding="utf-8")


def fhir(name: str) -> dict:
    """A fresh copy of a FHIR fixture (tests may mutate it)."""
    return copy.deepcopy(json.loads(_fhir(name)))


def bundle_of(*resources: dict, kind: str = "collection") -> dict:
    return {"resourceType": "Bundle", "type": kind,
            "entry": [{"fullUrl": f"urn:uuid:00000000-0000-0000-0000-{i:012d}", "resource": r}
                      for i, r in enumerate(resources)]}


def replace_segment(text: str, prefix: str, new: str | None) -> str:
    """The message with the first segment starting with ``prefix`` replaced (None: removed)."""
    segments = text.replace("\r\n", "\r").replace("\n", "\r").split("\r")
    for i, seg in enumerate(segments):
        if seg.startswith(prefix):
            if new is None:
                del segments[i]
            else:
                segments[i] = new
            break
    else:
        raise AssertionError(f"no segment starting with {prefix!r}")
    return "\r".join(segments)
