"""Neutropenia detection: pure, deterministic, standard library only.

    state, alerts = step(state, event, config)   # one event for one patient
    alerts = run(events, config)                  # many patients, offline

See engine.py for the emit-the-difference design and state.py for the history bound.
"""
from neutrowatch.detection.alerts import SCHEMA, Alert
from neutrowatch.detection.config import (AgeBand, DetectionConfig, DetectionConfigError, DrugWatch,
                                          PatientOverride, Profile)
from neutrowatch.detection.engine import active_alerts, evaluate, run, step
from neutrowatch.detection.findings import KINDS, SEVERITY
from neutrowatch.detection.state import PatientState

__all__ = ["Alert", "AgeBand", "DetectionConfig", "DetectionConfigError", "DrugWatch", "KINDS",
           "PatientOverride", "PatientState", "Profile", "SCHEMA", "SEVERITY", "active_alerts",
           "evaluate", "run", "step"]
