"""Cyclic neutropenia: a periodic oscillation (14-35 days) in the irregular ANC series.

The strongest periodicity up to 1.5 x the longest period must lie in the range, and the counts
must span ``cyclic_min_cycles`` (2) periods with as many troughs: a trend, a single dip or a
slower swing is not a cycle.

Lomb-Scargle periodogram (standard normalisation, floating mean removed) over the counts of the
last ``cyclic_window_days`` before each result, with a false-alarm probability
FAP = 1 - (1 - (1 - p)^((N-3)/2))^M, M ~ span * (f_max - f_min) independent frequencies.
Only dense series are analysed (>= cyclic_min_points over >= cyclic_min_span_days at
>= cyclic_min_per_week counts a week, the diagnostic practice of ~3 counts a week for 4-6 weeks);
sparse series say nothing. The search is causal: the finding is the first result at which the
series up to it is periodic; the cache (``CyclicCache``) remembers how far the series has been
searched so a new result costs one periodogram at most, and nothing when the gate fails.
"""
from __future__ import annotations

import cmath
import math
from operator import mul
from bisect import bisect_left
from dataclasses import dataclass
from typing import Callable

from neutrowatch.detection.config import DetectionConfig
from neutrowatch.detection.findings import Obs
from neutrowatch.detection.grades import Limits

DAY = 86400
EXTENDED = 1.5  # the periodogram is computed up to this many times the longest period searched


@dataclass(frozen=True)
class Periodicity:
    t: int  # collection time of the result at which it was first found
    oid: str
    value: float
    period_days: float
    power: float
    fap: float
    points: int
    span_days: float
    nadir: float
    peak: float


@dataclass(frozen=True)
class CyclicCache:
    """Searched through ``upto`` (epoch s, inclusive); ``hit`` the first periodic prefix."""

    upto: int = -1
    hit: Periodicity | None = None

    def to_list(self) -> list:
        h = self.hit
        return [self.upto, None if h is None else [h.t, h.oid, h.value, h.period_days, h.power,
                                                    h.fap, h.points, h.span_days, h.nadir, h.peak]]

    @classmethod
    def from_list(cls, d: list | None) -> "CyclicCache":
        if not d:
            return cls()
        return cls(d[0], Periodicity(*d[1]) if d[1] else None)

    def invalidate_from(self, t: int) -> "CyclicCache":
        """A result at/after ``t`` changed: search again from there."""
        if t > self.upto:
            return self
        hit = self.hit if self.hit is not None and self.hit.t < t else None
        return CyclicCache(min(self.upto, t - 1), hit)


def search(anc: list[Obs], times: list[int], cache: CyclicCache,
           limits_at: Callable[[int], Limits], config: DetectionConfig) -> CyclicCache:
    if cache.hit is not None:
        return CyclicCache(max(cache.upto, times[-1] if times else -1), cache.hit)
    start = bisect_left(times, cache.upto + 1)
    for k in range(start, len(anc)):
        hit = analyse(anc, times, k, limits_at, config)
        if hit is not None:
            return CyclicCache(times[-1], hit)
    return CyclicCache(times[-1] if times else cache.upto, None)


def analyse(anc: list[Obs], times: list[int], k: int, limits_at: Callable[[int], Limits],
            config: DetectionConfig) -> Periodicity | None:
    end = anc[k].t
    lo = bisect_left(times, end - int(config.cyclic_window_days * DAY))
    pts = anc[lo:k + 1]
    n = len(pts)
    if n < config.cyclic_min_points:
        return None
    span = (pts[-1].t - pts[0].t) / DAY
    if span < config.cyclic_min_span_days or n / (span / 7.0) < config.cyclic_min_per_week:
        return None
    ys = [float(p.v) for p in pts]  # type: ignore[arg-type]
    if min(ys) >= limits_at(end).normal:
        return None  # oscillating within normal limits is not neutropenia
    ts = [(p.t - pts[0].t) / DAY for p in pts]
    # The peak is sought beyond the longest period too: when the strongest periodicity is longer
    # than the range (a steady fall, a 45-day swing) the counts do not oscillate within it, and
    # the in-range maximum would only be that trend's edge. And an oscillation is repeated
    # nadirs: a single dip and recovery spans one "period" only.
    period, power = periodogram_peak(ts, ys, config.cyclic_min_period_days,
                                     config.cyclic_max_period_days * EXTENDED)
    if (period is None or period > config.cyclic_max_period_days
            or span < config.cyclic_min_cycles * period
            or troughs(ts, ys, period) < config.cyclic_min_cycles):
        return None
    fap = false_alarm_probability(power, n, span, config)
    if fap > config.cyclic_max_fap:
        return None
    return Periodicity(end, anc[k].oid, ys[-1], round(period, 1), round(power, 3),
                       float(f"{fap:.2g}"), n, round(span, 1), min(ys), max(ys))


def troughs(ts: list[float], ys: list[float], period: float) -> int:
    """Runs of counts below the series' midrange, a new one only half a period or more after the
    previous one began (noise around the midrange does not make a second trough)."""
    mid = (min(ys) + max(ys)) / 2
    count, began, below = 0, None, False
    for t, y in zip(ts, ys):
        if y < mid and not below and (began is None or t - began >= period / 2):
            count, began = count + 1, t
        below = y < mid
    return count


def periodogram_peak(ts: list[float], ys: list[float], pmin: float, pmax: float,
                     oversample: int = 5) -> tuple[float | None, float]:
    """The Lomb-Scargle peak over periods [pmin, pmax]. Per frequency w it needs the sums of
    y e^{iwt} and e^{2iwt}; e^{iwt} is carried from one frequency to the next by multiplying with
    e^{i dw t} (no trigonometry per point), and the tau-shifted sums follow from the identities
    sum y cos(wt - wtau) = cos(wtau) YC + sin(wtau) YS, sum cos^2(wt - wtau) = N/2 + (C2 cos(2wtau)
    + S2 sin(2wtau)) / 2."""
    mean = sum(ys) / len(ys)
    y = [v - mean for v in ys]
    yy = sum(v * v for v in y)
    if yy <= 0:
        return None, 0.0
    n = len(ts)
    span = ts[-1] - ts[0]
    fmin, fmax = 1.0 / pmax, 1.0 / pmin
    df = 1.0 / (oversample * span)
    two_pi = 2 * math.pi
    z = [cmath.exp(1j * two_pi * fmin * t) for t in ts]  # e^{iwt} at the current frequency
    step = [cmath.exp(1j * two_pi * df * t) for t in ts]
    best_f, best_p = None, 0.0
    f = fmin
    while f <= fmax + 1e-12:
        z1 = sum(map(mul, y, z))  # YC + i YS
        z2 = sum(map(mul, z, z))  # C2 + i S2
        tau2 = math.atan2(z2.imag, z2.real)  # 2 w tau
        c, s_ = math.cos(tau2 / 2), math.sin(tau2 / 2)
        yc = c * z1.real + s_ * z1.imag
        ys_ = c * z1.imag - s_ * z1.real
        cc = n / 2 + (math.cos(tau2) * z2.real + math.sin(tau2) * z2.imag) / 2
        ss = n - cc
        p = ((yc * yc / cc if cc > 1e-12 else 0.0) + (ys_ * ys_ / ss if ss > 1e-12 else 0.0)) / yy
        if p > best_p:
            best_f, best_p = f, p
        f += df
        z = list(map(mul, z, step))
    return (None if best_f is None else 1.0 / best_f), min(best_p, 1.0)


def false_alarm_probability(power: float, n: int, span_days: float,
                            config: DetectionConfig) -> float:
    single = (1.0 - power) ** ((n - 3) / 2.0)
    m = max(1.0, span_days * (1 / config.cyclic_min_period_days - 1 / config.cyclic_max_period_days))
    return 1.0 - (1.0 - single) ** m
