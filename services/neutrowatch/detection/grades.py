"""Severity grades: which band an ANC falls in, for this patient, at this age."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from neutrowatch.detection.config import DetectionConfig

GRADES = ("normal", "mild", "moderate", "severe", "agranulocytosis")
RANK = {g: i for i, g in enumerate(GRADES)}


@dataclass(frozen=True)
class Limits:
    """The lower limits in force for one patient at one time (cells/uL)."""

    profile: str
    normal: float
    mild: float
    moderate: float
    agranulocytosis: float
    basis: str  # "profile", "age", "baseline_override", "threshold_override"
    # A severe-neutropenia episode (a critical alert) opens below this: config.severe_below, but
    # never above this patient's normal limit (as ``moderate``), so that a benign ethnic
    # neutropenia patient's own stable count (at or above the normal limit an override sets)
    # pages nobody while a fall below it does. Agranulocytosis stays absolute.
    severe: float = 500.0

    def grade(self, anc: float) -> str:
        if anc >= self.normal:
            return "normal"
        if anc >= self.mild:
            return "mild"
        if anc >= self.moderate:
            return "moderate"
        if anc >= self.agranulocytosis:
            return "severe"
        return "agranulocytosis"

    def as_evidence(self) -> dict:
        return {"profile": self.profile, "basis": self.basis, "normal": self.normal,
                "mild": self.mild, "moderate": self.moderate,
                "agranulocytosis": self.agranulocytosis, "severe": self.severe}


def limits_for(config: DetectionConfig, patient_key: str, birth_date: str | None,
               at_epoch_s: int) -> Limits:
    profile = config.profile_for(patient_key)
    override = config.override_for(patient_key)
    normal, mild, basis = profile.normal, profile.mild, "profile"
    age = _age_days(birth_date, at_epoch_s)
    if age is not None:
        for band in sorted(profile.age_bands, key=lambda b: b.max_age_days):
            if age < band.max_age_days:
                normal = band.normal if band.normal is not None else normal
                mild = band.mild if band.mild is not None else mild
                basis = "age"
                break
    if override.normal_threshold is not None:
        normal, basis = float(override.normal_threshold), "threshold_override"
    elif override.baseline_anc is not None:
        normal = min(normal, float(override.baseline_anc) * config.baseline_fraction)
        basis = "baseline_override"
    return Limits(profile.name, normal, min(mild, normal), min(profile.moderate, normal),
                  profile.agranulocytosis, basis, min(config.severe_below, normal))


def worse(a: str, b: str) -> str:
    return a if RANK[a] >= RANK[b] else b


def _age_days(birth_date: str | None, at_epoch_s: int) -> int | None:
    if not birth_date:
        return None
    try:
        parts = [int(p) for p in birth_date.split("-")]
        born = date(parts[0], parts[1] if len(parts) > 1 else 7, parts[2] if len(parts) > 2 else 1)
    except (ValueError, IndexError):
        return None
    return (at_epoch_s // 86400) - (born - date(1970, 1, 1)).days
