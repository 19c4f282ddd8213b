"""Detection settings: named threshold profiles, the drug watch list, rule windows, per-patient overrides.

One frozen object, built from a mapping (a YAML/JSON settings file) with ``from_mapping``.
Every number has a default taken from docs/clinical-reference (shared/clinical-reference.md).
``from_mapping`` validates what it reads (``DetectionConfig.validate``): a setting of the wrong
type, out of range, in the wrong unit or out of order raises DetectionConfigError (a ValueError)
naming the setting and what is wrong, so a bad file stops the process at start instead of
making every event fail (a quoted "500") or silently disabling alerts (1.5 for 1500 cells/uL).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping


@dataclass(frozen=True)
class AgeBand:
    """Grade limits for patients younger than ``max_age_days`` (only the limits given change)."""

    max_age_days: int
    normal: float | None = None
    mild: float | None = None


@dataclass(frozen=True)
class Profile:
    """Lower limits (cells/uL) of each grade: normal >= normal, mild >= mild, moderate >= moderate,
    severe >= agranulocytosis, agranulocytosis below that."""

    name: str
    normal: float = 1500.0
    mild: float = 1000.0
    moderate: float = 500.0
    agranulocytosis: float = 100.0
    age_bands: tuple[AgeBand, ...] = ()


# Infants (2 weeks to 1 year) have a lower limit of normal around 1000 cells/uL.
_INFANT = (AgeBand(max_age_days=365, normal=1000.0),)

DEFAULT_PROFILES: dict[str, Profile] = {
    "us": Profile("us", normal=1500.0, age_bands=_INFANT),
    "eu": Profile("eu", normal=1800.0, age_bands=_INFANT),
}


@dataclass(frozen=True)
class DrugWatch:
    """A drug class whose exposure makes a new neutropenia episode suspicious.

    ``windows_days``: onset-minus-last-dose windows (days) that count, e.g. (0, 7) for the
    idiosyncratic reaction during or within 7 days of treatment, (21, 180) for late-onset
    neutropenia after rituximab."""

    drug_class: str
    windows_days: tuple[tuple[float, float], ...] = ((0.0, 7.0),)


DEFAULT_WATCH_LIST: tuple[DrugWatch, ...] = (
    DrugWatch("rituximab", ((0.0, 7.0), (21.0, 180.0))),
    DrugWatch("clozapine"), DrugWatch("antithyroid"), DrugWatch("metamizole"),
    DrugWatch("sulfasalazine"), DrugWatch("cotrimoxazole"), DrugWatch("deferiprone"),
)


@dataclass(frozen=True)
class PatientOverride:
    """Per-patient settings, keyed by patient_key in DetectionConfig.patients.

    baseline_anc: the patient's own stable count (benign ethnic neutropenia); the patient's normal
    limit becomes baseline_anc * baseline_fraction (never above the profile's). normal_threshold:
    an explicit lower limit of normal. profile: a profile name for this patient. expected_dips:
    false turns expected-dip handling off for this patient (every dip pages as a new episode)."""

    baseline_anc: float | None = None
    normal_threshold: float | None = None
    profile: str | None = None
    expected_dips: bool | None = None


@dataclass(frozen=True)
class DetectionConfig:
    profile: str = "us"
    profiles: Mapping[str, Profile] = field(default_factory=lambda: dict(DEFAULT_PROFILES))
    watch_list: tuple[DrugWatch, ...] = DEFAULT_WATCH_LIST
    patients: Mapping[str, PatientOverride] = field(default_factory=dict)
    baseline_fraction: float = 0.8
    confirmations: int = 2  # results needed to confirm recovery / an improvement in grade
    grade_confirm_days: float = 30.0  # a worsening to mild/moderate is sent once the next count, this soon, confirms it
    episode_gap_days: float = 14.0  # a result back at/above a limit, then none below it for this long, ends the episode
    severe_below: float = 500.0
    rapid_decline_hours: float = 72.0
    rapid_decline_fraction: float = 0.5
    rapid_decline_below: float = 1000.0
    chronic_days: float = 90.0
    # the chronic clock runs on through a rise back to normal lasting at most this long (an
    # infection response: the IVIG case rose to 2400/uL for three weeks during COVID-19) ...
    chronic_rise_max_days: float = 30.0
    # ... and stops at a silence longer than this between two counts: chronicity needs counts
    # below the limit that span the period (1200/uL one year and 300/uL two years later say nothing
    # of the time between); monthly counts of a chronically neutropenic infant span it
    chronic_max_gap_days: float = 60.0
    febrile_single_c: float = 38.3
    febrile_sustained_c: float = 38.0
    febrile_sustained_minutes: float = 60.0
    # Consecutive readings of a sustained run are at most this far apart; a longer silence starts
    # a new run. The IDSA rule is a fever *sustained over* an hour, so the readings must cover the
    # hour: two 38.1 C readings two days apart are two isolated readings, not a sustained fever.
    # 120 min (twice the sustained window) still takes hourly (or 30-60 min) observations charted
    # a little late, and observations every 90 min, as sustained; readings further apart than two
    # hours leave too much unobserved between them to call the fever sustained.
    febrile_sustained_max_gap_minutes: float = 120.0
    febrile_anc_hours: float = 24.0  # counts collected this long after a fever count for it
    febrile_anc_lookback_hours: float = 72.0  # the latest count before a fever counts if this recent
    febrile_falling_days: float = 7.0  # "falling": lower than a count at most this much earlier
    febrile_falling_below: float = 1000.0
    febrile_episode_gap_hours: float = 72.0
    ivig_drug_class: str = "ivig"
    ivig_course_gap_days: float = 4.0  # administrations closer than this form one course
    ivig_pre_days: float = 4.0
    ivig_early_hours: tuple[float, float] = (12.0, 60.0)
    ivig_nadir_days: float = 8.5
    ivig_dip_fraction: float = 0.6  # nadir <= pre * fraction is a dip
    ivig_recovered_fraction: float = 0.8
    ivig_min_cycles: int = 2
    ivig_min_share: float = 0.6  # dips / evaluable cycles; tolerates one outlier cycle
    ivig_baseline_days: float = 30.0
    ivig_restart_days: float = 90.0
    ivig_escalation_ratio: float = 1.05
    # Expected dips (expected.py): once a post-IVIG pattern holds, a dip after a later infusion
    # that stays within the patient's own course is recorded (info), not paged. Off: every dip
    # pages as before. Deviations page: a count more than ivig_expected_margin below the deepest
    # nadir of the pattern's dips so far (or below the agranulocytosis limit), or one still below
    # the severe limit more than ivig_expected_recovery_days after the infusion (the case report's
    # dips recovered by day 15, before the next infusion).
    expected_dips: bool = True
    ivig_expected_margin: float = 100.0
    ivig_expected_recovery_days: float = 14.0
    ivig_shortened_ratio: float = 0.85
    drug_recovery_days: float = 30.0
    cyclic_min_period_days: float = 14.0
    cyclic_max_period_days: float = 35.0
    cyclic_window_days: float = 84.0
    cyclic_min_points: int = 12
    cyclic_min_span_days: float = 28.0
    cyclic_min_cycles: float = 2.0  # the counts searched must span this many periods (repeated nadirs)
    cyclic_min_per_week: float = 2.5
    cyclic_max_fap: float = 0.01
    cyclic_lock_tolerance: float = 0.25
    history_days: float = 400.0
    history_max_anc: int = 96
    # Temperatures kept (within history_temperature_days). The sustained-fever rule can only see
    # an hour of fever that the kept readings span, so the cap must hold an hour of the densest
    # feed: 240 is an hour of readings every 15 s, four hours of a bedside feed every minute, and
    # more than three days (the window) of observations every 20 min. Only patients with such a
    # feed come near it (about 60 bytes of stored state a reading with long HL7 ids and ingest
    # stamps, 14 KiB at the cap); ward observations every 4 h keep 18.
    history_max_temperatures: int = 240
    history_temperature_days: float = 3.0
    history_max_administrations: int = 40
    cache: dict = field(default_factory=dict, compare=False, repr=False)  # derived limits, per process

    def override_for(self, patient_key: str) -> PatientOverride:
        return self.patients.get(patient_key) or _NO_OVERRIDE

    def profile_for(self, patient_key: str) -> Profile:
        name = self.override_for(patient_key).profile or self.profile
        try:
            return self.profiles[name]
        except KeyError:
            raise ValueError(f"unknown threshold profile {name!r}") from None

    def expected_dips_for(self, patient_key: str) -> bool:
        own = self.override_for(patient_key).expected_dips
        return self.expected_dips if own is None else own

    def watch_for(self, drug_class: str | None) -> DrugWatch | None:
        return next((w for w in self.watch_list if w.drug_class == drug_class), None)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> "DetectionConfig":
        """Build from a settings mapping; unknown keys are an error (typos must not pass silently),
        and so is a value that is not valid (``validate``): DetectionConfigError, a ValueError.

        Shape: {profile: us, profiles: {name: {normal, mild, moderate, agranulocytosis,
        age_bands: [{max_age_days, normal, mild}]}}, watch_list: [{drug_class, windows_days}] or
        [name], patients: {patient_key: {baseline_anc, normal_threshold, profile}}, <any scalar
        window above>: value}. ``detection:`` as the top-level key is accepted too. ANC figures
        are in cells/uL (1500, not 1.5), temperatures in degrees Celsius."""
        data = dict(_mapping("detection settings", data or {}))
        if set(data) == {"detection"}:
            data = dict(_mapping("detection", data["detection"] or {}))
        config = cls()
        kwargs: dict[str, Any] = {}
        profiles = dict(DEFAULT_PROFILES)
        for name, spec in _mapping("profiles", data.pop("profiles", None) or {}).items():
            profiles[name] = _profile(name, spec or {})
        kwargs["profiles"] = profiles
        if "watch_list" in data:
            watch = data.pop("watch_list") or ()
            if not isinstance(watch, (list, tuple)):
                raise _bad("watch_list", "must be a list of drug classes")
            kwargs["watch_list"] = tuple(_watch(f"watch_list[{i}]", w) for i, w in enumerate(watch))
        kwargs["patients"] = {str(k): _override(f"patients.{k}", v or {})
                              for k, v in _mapping("patients", data.pop("patients", None) or {}).items()}
        known = {f for f in cls.__dataclass_fields__} - {"cache"}
        for key, value in data.items():
            if key not in known:
                raise ValueError(f"unknown detection setting {key!r}")
            kwargs[key] = tuple(value) if isinstance(value, list) else value
        return replace(config, **kwargs).validate()

    def validate(self) -> "DetectionConfig":
        """This config, if every setting is valid; else DetectionConfigError (a ValueError) naming
        the first setting that is not and why. Numbers must be numbers (a quoted "500" is text),
        finite, and in range: ANC thresholds in cells/uL (at least 10: 1500, not the 1.5 of
        10^9/L or K/uL), temperatures in degrees Celsius, windows positive, fractions in (0, 1],
        counts whole. The grade limits of every profile are ordered agranulocytosis < moderate <
        mild <= normal, severe_below lies above every profile's agranulocytosis and at most at
        its mild limit, and per-patient overrides and age bands are checked likewise."""
        for f in fields(self):
            name, value = f.name, getattr(self, f.name)
            if name in _WHOLE:
                _whole(name, value, _WHOLE[name])
            elif name in _ANC_SETTINGS:
                _anc(name, value)
            elif name in _CELSIUS:
                _celsius(name, value)
            elif name in _FRACTIONS:
                if not 0 < _number(name, value) <= 1:
                    raise _bad(name, f"must be a fraction above 0 and at most 1, not {value!r}")
            elif name in _NOT_NEGATIVE:
                if _number(name, value) < 0:
                    raise _bad(name, f"must not be negative, not {value!r}")
            elif isinstance(f.default, float):
                if _number(name, value) <= 0:
                    raise _bad(name, f"must be above 0, not {value!r}")
        if not isinstance(self.expected_dips, bool):
            raise _bad("expected_dips", f"must be true or false, not {self.expected_dips!r}")
        if self.ivig_escalation_ratio < 1:
            raise _bad("ivig_escalation_ratio",
                       f"must be at least 1 (a higher dose), not {self.ivig_escalation_ratio!r}")
        early = self.ivig_early_hours
        if not isinstance(early, (tuple, list)) or len(early) != 2:
            raise _bad("ivig_early_hours", f"must be two numbers of hours [from, to], not {early!r}")
        if not 0 <= _number("ivig_early_hours", early[0]) < _number("ivig_early_hours", early[1]):
            raise _bad("ivig_early_hours",
                       f"must be [from, to] hours with 0 <= from < to, not {list(early)!r}")
        if self.febrile_sustained_c > self.febrile_single_c:
            raise _bad("febrile_sustained_c", f"{self.febrile_sustained_c!r} is above febrile_single_c "
                       f"{self.febrile_single_c!r} (a sustained fever is the lower one, e.g. 38.0 and 38.3)")
        if self.history_temperature_days * 1440 < self.febrile_sustained_minutes:
            raise _bad("history_temperature_days",
                       f"{self.history_temperature_days!r} days keeps less than the febrile_sustained_minutes "
                       f"({self.febrile_sustained_minutes!r}) a sustained fever needs")
        if self.cyclic_min_period_days >= self.cyclic_max_period_days:
            raise _bad("cyclic_min_period_days", f"{self.cyclic_min_period_days!r} is not below "
                       f"cyclic_max_period_days {self.cyclic_max_period_days!r}")
        for attr in ("profile", "ivig_drug_class"):
            if not isinstance(getattr(self, attr), str) or not getattr(self, attr):
                raise _bad(attr, f"must be a name, not {getattr(self, attr)!r}")
        if not isinstance(self.profiles, Mapping):
            raise _bad("profiles", "must be a mapping of profile names to grade limits")
        for name, profile in self.profiles.items():
            _check_profile(f"profiles.{name}", profile)
            if not profile.agranulocytosis < self.severe_below <= profile.mild:
                raise _bad("severe_below", f"{self.severe_below!r} must lie above the agranulocytosis limit "
                           f"({profile.agranulocytosis:g}) and at most at the mild limit ({profile.mild:g}) "
                           f"of profile {name!r}")
        if self.profile not in self.profiles:
            raise _bad("profile", f"unknown threshold profile {self.profile!r}")
        if not isinstance(self.watch_list, (tuple, list)):
            raise _bad("watch_list", "must be a list of drug classes")
        for i, w in enumerate(self.watch_list):
            _check_watch(f"watch_list[{i}]", w)
        if not isinstance(self.patients, Mapping):
            raise _bad("patients", "must be a mapping of patient keys to overrides")
        for key, override in self.patients.items():
            where = f"patients.{key}"
            if override.profile is not None and override.profile not in self.profiles:
                raise _bad(f"{where}.profile", f"unknown threshold profile {override.profile!r}")
            if override.expected_dips is not None and not isinstance(override.expected_dips, bool):
                raise _bad(f"{where}.expected_dips", f"must be true or false, not {override.expected_dips!r}")
            profile = self.profile_for(key)
            for attr in ("baseline_anc", "normal_threshold"):
                value = getattr(override, attr)
                if value is not None:
                    _anc(f"{where}.{attr}", value)
            lowest = override.normal_threshold
            if lowest is None and override.baseline_anc is not None:
                lowest = override.baseline_anc * self.baseline_fraction
            if lowest is not None and lowest <= profile.agranulocytosis:
                attr = "normal_threshold" if override.normal_threshold is not None else "baseline_anc"
                raise _bad(f"{where}.{attr}",
                           f"gives a lower limit of normal of {lowest:g} cells/uL, not above the "
                           f"agranulocytosis limit ({profile.agranulocytosis:g}) of profile {profile.name!r}")
        return self


class DetectionConfigError(ValueError):
    """An invalid detection setting; the message names the setting and what is wrong with it."""


# Settings checked by kind (validate); every other float setting (a window, a duration) must be
# above 0.
_ANC_SETTINGS = frozenset({"severe_below", "rapid_decline_below", "febrile_falling_below",
                           "ivig_expected_margin"})
_CELSIUS = frozenset({"febrile_single_c", "febrile_sustained_c"})
_FRACTIONS = frozenset({"baseline_fraction", "rapid_decline_fraction", "ivig_dip_fraction",
                        "ivig_recovered_fraction", "ivig_min_share", "ivig_shortened_ratio",
                        "cyclic_max_fap"})
_NOT_NEGATIVE = frozenset({"febrile_anc_hours", "febrile_anc_lookback_hours", "febrile_episode_gap_hours",
                           "cyclic_lock_tolerance"})
_WHOLE = {"confirmations": 1, "ivig_min_cycles": 1, "cyclic_min_points": 3, "history_max_anc": 1,
          "history_max_temperatures": 2, "history_max_administrations": 1}  # the least allowed
ANC_MIN, ANC_MAX = 10.0, 100000.0  # cells/uL: below, a figure in 10^9/L or K/uL; above, per litre
CELSIUS_MIN, CELSIUS_MAX = 35.0, 42.0


def _bad(where: str, why: str) -> DetectionConfigError:
    return DetectionConfigError(f"detection setting {where!r}: {why}")


def _mapping(where: str, value: Any) -> Mapping:
    if not isinstance(value, Mapping):
        raise _bad(where, f"must be a mapping, not {type(value).__name__} {value!r}")
    return value


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str):
            raise _bad(where, f"must be a number, not the text {value!r} (write it without quotes)")
        raise _bad(where, f"must be a number, not {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise _bad(where, f"must be a finite number, not {value!r}")
    return value


def _whole(where: str, value: Any, least: int) -> int:
    _number(where, value)
    if not isinstance(value, int):
        raise _bad(where, f"must be a whole number, not {value!r}")
    if value < least:
        raise _bad(where, f"must be at least {least}, not {value!r}")
    return value


def _anc(where: str, value: Any) -> float:
    _number(where, value)
    if value < ANC_MIN:
        raise _bad(where, f"{value!r} is below {ANC_MIN:g} cells/uL: ANC thresholds are in cells/uL, "
                   f"so 1500 not 1.5 (10^9/L or K/uL)")
    if value > ANC_MAX:
        raise _bad(where, f"{value!r} is above {ANC_MAX:g} cells/uL: ANC thresholds are in cells/uL "
                   f"(1500, not 1.5e9 cells/L)")
    return value


def _celsius(where: str, value: Any) -> float:
    _number(where, value)
    if not CELSIUS_MIN <= value <= CELSIUS_MAX:
        raise _bad(where, f"{value!r} is not a body temperature in degrees Celsius "
                   f"({CELSIUS_MIN:g}-{CELSIUS_MAX:g}): write 38.3, not 101 (Fahrenheit)")
    return value


def _check_profile(where: str, p: Profile) -> None:
    for attr in ("normal", "mild", "moderate", "agranulocytosis"):
        _anc(f"{where}.{attr}", getattr(p, attr))
    if not p.agranulocytosis < p.moderate < p.mild <= p.normal:
        raise _bad(where, f"grade limits must be ordered agranulocytosis < moderate < mild <= normal, not "
                   f"agranulocytosis {p.agranulocytosis:g}, moderate {p.moderate:g}, mild {p.mild:g}, "
                   f"normal {p.normal:g} (cells/uL)")
    for i, band in enumerate(p.age_bands):
        at = f"{where}.age_bands[{i}]"
        _whole(f"{at}.max_age_days", band.max_age_days, 1)
        for attr in ("normal", "mild"):
            value = getattr(band, attr)
            if value is not None:
                _anc(f"{at}.{attr}", value)
                if value <= p.agranulocytosis:
                    raise _bad(f"{at}.{attr}", f"{value:g} is not above the profile's agranulocytosis "
                               f"limit ({p.agranulocytosis:g} cells/uL)")
        if band.normal is not None and band.mild is not None and band.mild > band.normal:
            raise _bad(at, f"mild ({band.mild:g}) is above normal ({band.normal:g})")


def _check_watch(where: str, w: DrugWatch) -> None:
    if not isinstance(w.drug_class, str) or not w.drug_class:
        raise _bad(f"{where}.drug_class", f"must be a drug class name, not {w.drug_class!r}")
    for j, window in enumerate(w.windows_days):
        at = f"{where}.windows_days[{j}]"
        if not isinstance(window, (tuple, list)) or len(window) != 2:
            raise _bad(at, f"must be two numbers of days [from, to], not {window!r}")
        lo, hi = (_number(at, x) for x in window)
        if not 0 <= lo <= hi:
            raise _bad(at, f"must be [from, to] days after the last dose with 0 <= from <= to, "
                           f"not {list(window)!r}")


_NO_OVERRIDE = PatientOverride()


def _fields(where: str, spec: Any, cls: type) -> dict[str, Any]:
    """``spec`` as keyword arguments of ``cls``; an unknown key names where it is."""
    spec = dict(_mapping(where, spec))
    known = set(cls.__dataclass_fields__) - {"name", "age_bands"}  # type: ignore[attr-defined]
    for key in spec:
        if key not in known:
            raise _bad(f"{where}.{key}", f"unknown setting (known: {', '.join(sorted(known))})")
    return spec


def _profile(name: str, spec: Mapping[str, Any]) -> Profile:
    spec = dict(_mapping(f"profiles.{name}", spec))
    bands_spec = spec.pop("age_bands", None) or ()
    if not isinstance(bands_spec, (list, tuple)):
        raise _bad(f"profiles.{name}.age_bands", "must be a list of {max_age_days, normal, mild}")
    bands = []
    for i, b in enumerate(bands_spec):
        b = _fields(f"profiles.{name}.age_bands[{i}]", b, AgeBand)
        if "max_age_days" not in b:
            raise _bad(f"profiles.{name}.age_bands[{i}]", "max_age_days is missing")
        bands.append(AgeBand(**b))
    base = DEFAULT_PROFILES.get(name, Profile(name))
    return replace(base, name=name, age_bands=tuple(bands) or base.age_bands,
                   **_fields(f"profiles.{name}", spec, Profile))


def _override(where: str, spec: Any) -> PatientOverride:
    return PatientOverride(**_fields(where, spec, PatientOverride))


def _watch(where: str, spec: Any) -> DrugWatch:
    if isinstance(spec, str):
        return DrugWatch(spec)
    spec = _mapping(where, spec)
    unknown = set(spec) - {"drug_class", "windows_days"}
    if unknown:
        raise _bad(f"{where}.{sorted(unknown)[0]}", "unknown setting (known: drug_class, windows_days)")
    if "drug_class" not in spec:
        raise _bad(where, "drug_class is missing")
    windows = spec.get("windows_days", ((0, 7),))
    if not isinstance(windows, (list, tuple)):
        raise _bad(f"{where}.windows_days", f"must be a list of [from, to] days, not {windows!r}")
    return DrugWatch(spec["drug_class"], tuple(tuple(_float(x) for x in w) if isinstance(w, (list, tuple))
                                               else w for w in windows))  # type: ignore[misc]


def _float(x: Any) -> Any:
    """A number as a float (as the defaults are); anything else as it is, for validate to name."""
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else x
