"""One ANC from the parts a single specimen reported, and plausibility guards.

Precedence: a directly reported ANC; else segmented neutrophils plus absolute bands; else
WBC x (neutrophils % + bands %) / 100 (a decimal fraction counts as fraction x 100 percent).
Parts are grouped by specimen before they get here: this module never mixes specimens.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from neutrowatch.domain.events import Coding, Component
from neutrowatch.parsing.errors import InputRejected

ANC_RANGE = (0.0, 200_000.0)  # cells/uL
WBC_RANGE = (0.0, 1_000_000.0)  # cells/uL
PERCENT_RANGE = (0.0, 100.0)
TEMPERATURE_RANGE = (25.0, 46.0)  # Cel

_COUNT_ROLES = frozenset({"anc_direct", "anc_segmented", "bands_absolute"})
_PERCENT_ROLES = frozenset({"neutrophils_percent", "bands_percent", "neutrophils_fraction"})
_ROLE_TEXT = {
    "anc_direct": "neutrophil count", "anc_segmented": "segmented neutrophil count",
    "bands_absolute": "band neutrophil count", "wbc": "white cell count",
    "neutrophils_percent": "neutrophil percentage", "bands_percent": "band percentage",
    "neutrophils_fraction": "neutrophil fraction", "body_temperature": "body temperature",
}


@dataclass(frozen=True)
class Part:
    """One reported result that feeds an ANC (or a temperature), already in canonical units.

    ``value`` is cells/uL for counts, percent for percent and fraction roles, Cel for
    temperature; None only for a cancelled/deleted (X/D) result. ``reported_number`` and
    ``original_unit`` are the number and unit as the sender wrote them.
    """

    role: str
    value: float | None
    status: str
    code: Coding
    collected_at: datetime
    value_field: str
    reported_number: float | None = None
    original_value: str | None = None
    original_unit: str | None = None
    reported_at: datetime | None = None
    key: str | None = None  # sender's identity of this result, when it has one


@dataclass(frozen=True)
class AncFinding:
    value: float | None
    status: str
    provenance: str  # "direct" | "derived"
    anchor: Part  # the direct part, or the WBC / segmented part of a derivation
    parts: tuple[Part, ...]
    components: tuple[Component, ...]
    collected_at: datetime
    reported_at: datetime | None


def check_plausible(part: Part) -> None:
    """Raise InputRejected("implausible_value") when a part's value cannot be a real result."""
    if part.value is None:
        return
    if part.role in _COUNT_ROLES:
        low, high, unit = *ANC_RANGE, "cells/uL"
    elif part.role == "wbc":
        low, high, unit = *WBC_RANGE, "cells/uL"
    elif part.role in _PERCENT_ROLES:
        low, high, unit = *PERCENT_RANGE, "%"
    elif part.role == "body_temperature":
        low, high, unit = *TEMPERATURE_RANGE, "Cel"
    else:
        return
    if not low <= part.value <= high:
        raise InputRejected(
            "implausible_value",
            f"{part.value_field} {_ROLE_TEXT.get(part.role, part.role)} ({part.code.code}) is "
            f"outside the plausible range {low:g} to {high:g} {unit}",
            part.value_field,
        )


def combined_status(statuses: list[str]) -> str:
    """D or X if any part is deleted/cancelled, else P if any is preliminary, else C, else F."""
    for status in ("D", "X", "P", "C"):
        if status in statuses:
            return status
    return "F"


def _first(parts: list[Part], role: str) -> Part | None:
    return next((p for p in parts if p.role == role), None)


def _component(part: Part) -> Component | None:
    if part.reported_number is None or part.role not in _COMPONENT_ROLES:
        return None
    return Component(role=part.role, code=part.code.code, value=part.reported_number,  # type: ignore[arg-type]
                     unit=part.original_unit or "")


_COMPONENT_ROLES = frozenset({"wbc", "neutrophils_percent", "bands_percent", "neutrophils_fraction",
                              "anc_segmented", "bands_absolute"})


def _finding(provenance: str, anchor: Part, used: list[Part], compute) -> AncFinding:
    status = combined_status([p.status for p in used])
    value = None
    if status not in ("X", "D") and all(p.value is not None for p in used):
        value = round(compute(), 6)
    components = tuple(c for c in (_component(p) for p in used) if c) if provenance == "derived" else ()
    reported = [p.reported_at for p in used if p.reported_at is not None]
    return AncFinding(
        value=value, status=status, provenance=provenance, anchor=anchor, parts=tuple(used),
        components=components, collected_at=min(p.collected_at for p in used),
        reported_at=max(reported) if reported else None,
    )


# Segmented neutrophils % (LOINC): the part that bands % completes. A total neutrophil % (770-8
# automated, 26511-6) already holds the bands an analyser cannot tell apart.
_SEGMENTED_PERCENT = frozenset({"26505-8"})


def _neutrophil_percent(parts: list[Part], with_bands: bool) -> Part | None:
    """The neutrophil % of a derivation, whatever the order of the results: with bands %, the
    segmented % (segs + bands); without, a total neutrophil % before a segmented-only one."""
    percents = [p for p in parts if p.role == "neutrophils_percent"]
    segmented = [p for p in percents if p.code.code in _SEGMENTED_PERCENT]
    total = [p for p in percents if p.code.code not in _SEGMENTED_PERCENT]
    ordered = segmented + total if with_bands else total + segmented
    return ordered[0] if ordered else _first(parts, "neutrophils_fraction")


def anc_from_parts(parts: list[Part]) -> AncFinding | None:
    """The ANC of one specimen, or None when its parts do not give one. Checks plausibility."""
    for part in parts:
        check_plausible(part)
    direct = _first(parts, "anc_direct")
    if direct is not None:
        return _finding("direct", direct, [direct], lambda: direct.value)
    segmented, bands_abs = _first(parts, "anc_segmented"), _first(parts, "bands_absolute")
    if segmented is not None and bands_abs is not None:
        finding = _finding("derived", segmented, [segmented, bands_abs],
                           lambda: segmented.value + bands_abs.value)
    elif segmented is not None:
        finding = _finding("direct", segmented, [segmented], lambda: segmented.value)
    else:
        wbc = _first(parts, "wbc")
        bands = _first(parts, "bands_percent")
        neut = _neutrophil_percent(parts, with_bands=bands is not None)
        if wbc is None or neut is None:
            return None
        used = [wbc, neut] + ([bands] if bands else [])
        finding = _finding("derived", wbc, used, lambda: wbc.value * (
            neut.value + (bands.value if bands else 0.0)) / 100.0)
    if finding.value is not None and not ANC_RANGE[0] <= finding.value <= ANC_RANGE[1]:
        raise InputRejected(
            "implausible_value",
            f"{finding.anchor.value_field} gives a derived neutrophil count outside the plausible "
            f"range 0 to 200000 cells/uL",
            finding.anchor.value_field,
        )
    return finding


__all__ = ["ANC_RANGE", "AncFinding", "Part", "TEMPERATURE_RANGE", "anc_from_parts",
           "check_plausible", "combined_status"]
