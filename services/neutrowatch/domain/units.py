"""Unit tables and conversion to the product's canonical units.

Counts go to cells/uL, percentages stay percent (a decimal fraction becomes percent), body
temperature goes to Cel. Matching forgives case, spaces, 'µ' and '^'; a unit that is missing
or not in a table is refused with :class:`UnitError`, never guessed.
"""
from __future__ import annotations

import re
from typing import Literal

Quantity = Literal["count", "percent", "temperature"]
CANONICAL_UNIT: dict[str, str] = {"count": "cells/uL", "percent": "%", "temperature": "Cel"}


class UnitError(ValueError):
    """A unit is missing (``kind == "missing"``) or not known for the quantity (``"unknown"``)."""

    def __init__(self, kind: Literal["missing", "unknown"], unit: str | None, quantity: Quantity):
        self.kind = kind
        self.unit = unit
        self.quantity = quantity
        super().__init__(f"{kind} unit {unit!r} for a {quantity}")


# Multiplier from the unit to cells/uL. Keys are normalised with normalise_unit().
_COUNT_FACTORS: dict[str, float] = {
    **dict.fromkeys([
        "10*3/ul", "x10*3/ul", "10*3/mm3", "x10*3/mm3", "10e3/ul", "x10e3/ul", "k/ul", "k/mm3",
        "thou/ul", "thou/mm3", "thousand/ul", "thousandperul", "thousandpermicroliter",
        "thousandspermicroliter", "10*9/l", "x10*9/l", "10e9/l", "x10e9/l", "giga/l",
        "giga.l-1", "gpt/l", "/nl", "10*3/ul{cells}", "10*3{cells}/ul", "10*9{cells}/l",
    ], 1000.0),
    **dict.fromkeys([
        "/ul", "1/ul", "#/ul", "/mm3", "1/mm3", "#/mm3", "/cumm", "cells/ul", "{cells}/ul",
        "cells/mm3", "cells/cumm", "cellspermicroliter", "10*6/l", "x10*6/l",
    ], 1.0),
}
# "G/L" (giga per litre) is only a count in capitals: lower-case "g/l" is grams per litre.
_COUNT_CASE_SENSITIVE: dict[str, float] = {"G/L": 1000.0, "G/l": 1000.0}

_PERCENT_FACTORS: dict[str, float] = {
    **dict.fromkeys([
        "%", "percent", "pct", "%{wbcs}", "%{wbc}", "%{leukocytes}", "%{cells}", "%{wbc's}",
        "%ofwbc", "%ofwbcs", "%ofleukocytes",
    ], 1.0),
    # A decimal fraction (LOINC 71676-1) is a percent divided by 100.
    **dict.fromkeys(["1", "{fraction}", "fraction", "{ratio}", "ratio", "{decimal}"], 100.0),
}

_CELSIUS = frozenset(["cel", "c", "degc", "°c", "deg.c", "degreesc", "celsius"])
_FAHRENHEIT = frozenset(["[degf]", "f", "degf", "°f", "deg.f", "degreesf", "fahrenheit"])


_SUPERSCRIPT = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")
_SUPERSCRIPT_POWER = re.compile(r"10([⁰¹²³⁴⁵⁶⁷⁸⁹]+)")


def normalise_unit(unit: str) -> str:
    """The lookup key of a unit: lower case, no spaces, 'u' for micro (µ, μ, 'mc' in '/mcL'),
    '*' for '^' and for a superscript power ('10³' -> '10*3')."""
    text = "".join(unit.split())
    text = _SUPERSCRIPT_POWER.sub(lambda m: "10*" + m.group(1).translate(_SUPERSCRIPT), text)
    text = text.lower()
    for micro in ("µ", "μ"):
        text = text.replace(micro, "u")
    text = text.replace("/mcl", "/ul")
    return text.replace("^", "*").replace("×", "x")


def _require(unit: str | None, quantity: Quantity) -> str:
    if unit is None or not unit.strip():
        raise UnitError("missing", unit, quantity)
    return unit.strip()


def count_factor(unit: str | None) -> float:
    """Multiplier taking a count in ``unit`` to cells/uL."""
    text = _require(unit, "count")
    if text in _COUNT_CASE_SENSITIVE:
        return _COUNT_CASE_SENSITIVE[text]
    try:
        return _COUNT_FACTORS[normalise_unit(text)]
    except KeyError:
        raise UnitError("unknown", unit, "count") from None


def percent_factor(unit: str | None) -> float:
    """Multiplier taking a percent or decimal fraction in ``unit`` to percent."""
    text = _require(unit, "percent")
    try:
        return _PERCENT_FACTORS[normalise_unit(text)]
    except KeyError:
        raise UnitError("unknown", unit, "percent") from None


def _is_fahrenheit(unit: str | None) -> bool:
    key = normalise_unit(_require(unit, "temperature"))
    if key in _CELSIUS:
        return False
    if key in _FAHRENHEIT:
        return True
    raise UnitError("unknown", unit, "temperature")


def to_canonical(quantity: Quantity, value: float, unit: str | None) -> float:
    """``value`` in ``unit`` expressed in CANONICAL_UNIT[quantity]; UnitError when unknown."""
    if quantity == "count":
        return value * count_factor(unit)
    if quantity == "percent":
        return value * percent_factor(unit)
    if quantity == "temperature":
        return (value - 32.0) * 5.0 / 9.0 if _is_fahrenheit(unit) else value
    raise ValueError(f"unknown quantity {quantity!r}")


def from_canonical(quantity: Quantity, value: float, unit: str | None) -> float:
    """Inverse of :func:`to_canonical`: a canonical value expressed in ``unit``."""
    if quantity == "count":
        return value / count_factor(unit)
    if quantity == "percent":
        return value / percent_factor(unit)
    if quantity == "temperature":
        return value * 9.0 / 5.0 + 32.0 if _is_fahrenheit(unit) else value
    raise ValueError(f"unknown quantity {quantity!r}")


def known_units(quantity: Quantity) -> tuple[str, ...]:
    """Every spelling a quantity accepts (normalised keys plus case-sensitive ones)."""
    if quantity == "count":
        return tuple(_COUNT_FACTORS) + tuple(_COUNT_CASE_SENSITIVE)
    if quantity == "percent":
        return tuple(_PERCENT_FACTORS)
    return tuple(sorted(_CELSIUS | _FAHRENHEIT))


__all__ = ["CANONICAL_UNIT", "Quantity", "UnitError", "count_factor", "from_canonical",
           "known_units", "normalise_unit", "percent_factor", "to_canonical"]
