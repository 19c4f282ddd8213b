"""How a stored value reads: its figure, and whether it was reported as a bound.

history.lab_obs keeps a count reported as "<100" as the float just below 100 (and ">X" just
above X), so that every rule reads it as strictly below 100; what people see is the figure 100
with its comparator. Shared by the alert texts and the API views."""
from __future__ import annotations

import math


def bound(v: float | None) -> str:
    """"<" for a value reported as "<X" (the float just below X, a figure of at most 6 decimals),
    ">" for ">X", "" for a value as measured."""
    if v is None or not math.isfinite(v):
        return ""
    x = float(v)
    figure = round(x, 6)
    if figure == x:
        return ""
    return "<" if math.nextafter(x, math.inf) == figure else (
        ">" if math.nextafter(x, -math.inf) == figure else "")


def num(v: float | None) -> float | int | None:
    """The figure: an int when whole, else rounded to 2 decimals ("<100" reads 100)."""
    if v is None:
        return None
    if bound(v):
        v = round(float(v), 6)
    return int(v) if float(v).is_integer() else round(float(v), 2)
