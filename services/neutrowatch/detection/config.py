"""Detection settings: named threshold profiles, the drug watch list, rule windows, per-patient overrides.

One frozen object, built from a mapping (a YAML/JSON settings file) with ``from_mapping``.
Every number has a default taken from docs/clinical-reference (shared/clinical-reference.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
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
    an explicit lower limit of normal. profile: a profile name for this patient."""

    baseline_anc: float | None = None
    normal_threshold: float | None = None
    profile: str | None = None


@dataclass(frozen=True)
class DetectionConfig:
    profile: str = "us"
    profiles: Mapping[str, Profile] = field(default_factory=lambda: dict(DEFAULT_PROFILES))
    watch_list: tuple[DrugWatch, ...] = DEFAULT_WATCH_LIST
    patients: Mapping[str, PatientOverride] = field(default_factory=dict)
    baseline_fraction: float = 0.8
    confirmations: int = 2  # results needed to confirm recovery / an improvement in grade
    episode_gap_days: float = 14.0  # a result back at/above a limit, then none below it for this long, ends the episode
    severe_below: float = 500.0
    rapid_decline_hours: float = 72.0
    rapid_decline_fraction: float = 0.5
    rapid_decline_below: float = 1000.0
    chronic_days: float = 90.0
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

    def watch_for(self, drug_class: str | None) -> DrugWatch | None:
        return next((w for w in self.watch_list if w.drug_class == drug_class), None)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> "DetectionConfig":
        """Build from a settings mapping; unknown keys are an error (typos must not pass silently).

        Shape: {profile: us, profiles: {name: {normal, mild, moderate, agranulocytosis,
        age_bands: [{max_age_days, normal, mild}]}}, watch_list: [{drug_class, windows_days}] or
        [name], patients: {patient_key: {baseline_anc, normal_threshold, profile}}, <any scalar
        window above>: value}. ``detection:`` as the top-level key is accepted too."""
        data = dict(data or {})
        if set(data) == {"detection"}:
            data = dict(data["detection"] or {})
        config = cls()
        kwargs: dict[str, Any] = {}
        profiles = dict(DEFAULT_PROFILES)
        for name, spec in (data.pop("profiles", None) or {}).items():
            profiles[name] = _profile(name, spec or {})
        kwargs["profiles"] = profiles
        if "watch_list" in data:
            kwargs["watch_list"] = tuple(_watch(w) for w in data.pop("watch_list") or ())
        kwargs["patients"] = {str(k): PatientOverride(**(v or {}))
                              for k, v in (data.pop("patients", None) or {}).items()}
        known = {f for f in cls.__dataclass_fields__} - {"cache"}
        for key, value in data.items():
            if key not in known:
                raise ValueError(f"unknown detection setting {key!r}")
            kwargs[key] = tuple(value) if isinstance(value, list) else value
        config = replace(config, **kwargs)
        config.profile_for("")  # the default profile must exist
        for key in config.patients:
            config.profile_for(key)
        return config


_NO_OVERRIDE = PatientOverride()


def _profile(name: str, spec: Mapping[str, Any]) -> Profile:
    spec = dict(spec)
    bands = tuple(AgeBand(**b) for b in spec.pop("age_bands", None) or ())
    base = DEFAULT_PROFILES.get(name, Profile(name))
    return replace(base, name=name, age_bands=bands or base.age_bands, **spec)


def _watch(spec: Any) -> DrugWatch:
    if isinstance(spec, str):
        return DrugWatch(spec)
    windows = tuple(tuple(float(x) for x in w) for w in spec.get("windows_days", ((0, 7),)))
    return DrugWatch(str(spec["drug_class"]), windows)  # type: ignore[arg-type]
