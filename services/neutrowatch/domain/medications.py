"""Drug classes the monitor watches, and dose normalisation.

A medication is classified by ATC code first, then by its name or brand (case-insensitive);
anything else has no class (None), which is not an error.
"""
from __future__ import annotations

from neutrowatch.domain.events import Coding, Dose

_ATC_CLASSES: dict[str, str] = {
    "J06BA02": "ivig",
    "L03AA02": "gcsf", "L03AA13": "gcsf", "L03AA10": "gcsf", "L03AA14": "gcsf",
    "L01FA01": "rituximab", "L01XC02": "rituximab",
}

_NAME_CLASSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("gcsf", ("filgrastim", "pegfilgrastim", "lenograstim", "lipegfilgrastim", "neupogen",
              "neulasta", "granocyte", "zarxio", "nivestim", "g-csf",
              "granulocyte colony-stimulating factor", "granulocyte colony stimulating factor")),
    ("rituximab", ("rituximab", "rituxan", "mabthera", "truxima", "ruxience", "riabni")),
    ("ivig", ("ivig", "immune globulin", "immunoglobulin", "immune globuline", "privigen",
              "gamunex", "gammagard", "octagam", "panzyga", "flebogamma", "gammaplex",
              "intratect", "kiovig", "bivigam", "asceniv")),
)

# Hyperimmune globulins (ATC J06BB) are immunoglobulins but not IVIG.
_NOT_IVIG = ("hepatitis", "rabies", "tetanus", "anti-d", "rho(d)", "rh(d)", "varicella",
             "zoster", "cytomegalovirus", "botulism", "anthrax", "vaccinia", "antithymocyte",
             "anti-thymocyte", "lymphocyte immune globulin")

ATC_SYSTEMS = frozenset({"atc", "whoatc", "http://www.whocc.no/atc", "urn:oid:2.16.840.1.113883.6.73",
                         "2.16.840.1.113883.6.73"})


def classify(coding: Coding | None, *names: str | None) -> str | None:
    """"ivig", "gcsf", "rituximab" or None, from the code, the display and any extra names."""
    if coding is not None:
        code = coding.code.strip().upper()
        if code in _ATC_CLASSES:
            return _ATC_CLASSES[code]
    texts = [t for t in ((coding.display, coding.code) if coding else ()) + names if t]
    for text in texts:
        lowered = text.lower()
        for drug_class, words in _NAME_CLASSES:
            if any(word in lowered for word in words):
                if drug_class == "ivig" and any(word in lowered for word in _NOT_IVIG):
                    continue
                return drug_class
    return None


# Multiplier to mg (mass) or mg/kg (mass per body weight).
_MASS = {"g": 1000.0, "gm": 1000.0, "gram": 1000.0, "grams": 1000.0, "mg": 1.0,
         "milligram": 1.0, "milligrams": 1.0, "ug": 0.001, "mcg": 0.001, "µg": 0.001,
         "microgram": 0.001, "micrograms": 0.001}
_PER_KG_SUFFIXES = ("/kg", "/kg{body weight}", "/kg{bw}", "/kilogram", "perkg")


def normalise_dose(value: float, unit: str) -> Dose:
    """Dose as given plus mg (for a mass) or mg_per_kg (for a mass per kg); other units stay raw."""
    key = "".join(unit.split()).lower().replace("μ", "µ")
    for suffix in _PER_KG_SUFFIXES:
        if key.endswith(suffix) and key[: -len(suffix)] in _MASS:
            return Dose(value=value, unit=unit, mg_per_kg=value * _MASS[key[: -len(suffix)]])
    if key in _MASS:
        return Dose(value=value, unit=unit, mg=value * _MASS[key])
    return Dose(value=value, unit=unit)


__all__ = ["ATC_SYSTEMS", "classify", "normalise_dose"]
