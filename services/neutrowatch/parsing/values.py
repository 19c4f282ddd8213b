"""Reported numbers and units -> canonical parts, with rejections named after the field."""
from __future__ import annotations

import re

from neutrowatch.domain.codes import is_loinc
from neutrowatch.domain.events import Coding
from neutrowatch.domain.units import Quantity, UnitError, to_canonical
from neutrowatch.parsing.errors import InputRejected

QUANTITY_FOR_ROLE: dict[str, Quantity] = {
    "anc_direct": "count", "anc_segmented": "count", "bands_absolute": "count", "wbc": "count",
    "neutrophils_percent": "percent", "bands_percent": "percent",
    "neutrophils_fraction": "percent", "body_temperature": "temperature",
}
_ROLE_TEXT = {
    "anc_direct": "neutrophils #/volume", "anc_segmented": "segmented neutrophils #/volume",
    "bands_absolute": "band neutrophils #/volume", "wbc": "leukocytes #/volume",
    "neutrophils_percent": "neutrophils %", "bands_percent": "band neutrophils %",
    "neutrophils_fraction": "neutrophils fraction", "body_temperature": "body temperature",
}
_NUMBER = re.compile(r"^\s*(<=|>=|<|>|=)?\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*$")


def describe(code: Coding, role: str) -> str:
    """"LOINC 26499-4 (neutrophils #/volume)" or "code tt-0002-09 (neutrophils #/volume)"."""
    kind = "LOINC" if is_loinc(code.system, code.code) else "code"
    return f"{kind} {code.code} ({_ROLE_TEXT.get(role, role)})"


def parse_number(text: str, field: str, code: Coding, role: str) -> float:
    """A decimal number, optionally after a comparator (<0.1 gives 0.1); else non_numeric_value."""
    match = _NUMBER.match(text)
    if not match:
        raise InputRejected("non_numeric_value",
                            f"{field} value for {describe(code, role)} is not a number", field)
    return float(match.group(2))


_LEADING = re.compile(r"^\s*(<=|>=|<|>)(?![<>=])")


def comparator_of(text: str | None) -> str | None:
    """The comparator a reported value starts with ("<0.1" gives "<"), None when it is exact
    ("=0.1", "0.1") or has none the product reads as a bound (FHIR "ad")."""
    match = _LEADING.match(text or "")
    return match.group(1) if match else None


def combined_comparator(originals: list[str | None]) -> str | None:
    """The comparator of a value computed from several reported values that all raise it
    (WBC x (neutrophils % + bands %), segmented + band counts): below when each bound is an
    upper one ("<" if any is strict), above when each is a lower one; None when all are exact
    or the bounds point both ways (nothing better is known than the computed value)."""
    found = {c for c in (comparator_of(o) for o in originals) if c}
    if not found:
        return None
    for strict, loose in (("<", "<="), (">", ">=")):
        if found <= {strict, loose}:
            return strict if strict in found else loose
    return None


def canonical(role: str, number: float, units: list[str], field: str, code: Coding) -> tuple[float, str]:
    """(value in the role's canonical unit, the unit used); missing_unit / unknown_unit otherwise."""
    quantity = QUANTITY_FOR_ROLE[role]
    given = [u for u in units if u and u.strip()]
    if not given:
        raise InputRejected("missing_unit", f"{field} has no unit for {describe(code, role)}", field)
    for unit in given:
        try:
            return to_canonical(quantity, number, unit), unit
        except UnitError:
            continue
    raise InputRejected(
        "unknown_unit", f"{field} unit {given[0]!r} is not a known unit for {describe(code, role)}",
        field)


__all__ = ["QUANTITY_FOR_ROLE", "canonical", "combined_comparator", "comparator_of", "describe", "parse_number"]
