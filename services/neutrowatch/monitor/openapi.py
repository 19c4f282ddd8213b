"""The OpenAPI 3.1 document of the monitor's HTTP API (served at /openapi.json)."""
from __future__ import annotations

import json
from functools import cache
from typing import Any

from neutrowatch.detection import KINDS
from neutrowatch.schemas import schemas_dir

_PATIENT = {"name": "patient", "in": "path", "required": True, "schema": {"type": "string"},
            "description": "The patient_key (`authority|id`, or the bare id), URL-encoded (`|` is %7C)."}
COMPARATOR = {"enum": ["<", ">"], "description": "the count was reported as below (or above) value, e.g. <100"}
_PROBLEM = {"description": "Problem", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def _json(ref: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def _q(name: str, schema: dict, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


@cache
def document() -> dict[str, Any]:
    alert = json.loads((schemas_dir() / "alert.v1.schema.json").read_text(encoding="utf-8"))
    alert = {k: v for k, v in alert.items() if k not in ("$schema", "$id")}
    alert_defs = alert.pop("$defs", {})
    text = json.dumps(alert).replace("#/$defs/", "#/components/schemas/")
    observation = {"type": "object", "required": ["observation_id", "value", "unit", "collected_at", "grade",
                                                  "provenance", "linked_infusions"],
                   "properties": {
                       "observation_id": {"type": "string"}, "value": {"type": "number"},
                       "comparator": COMPARATOR,
                       "unit": {"const": "cells/uL"}, "collected_at": {"type": "string", "format": "date-time"},
                       "status": {"enum": ["P", "F", "C"]},
                       "grade": {"enum": ["normal", "mild", "moderate", "severe", "agranulocytosis"]},
                       "grade_profile": {"type": "string"},
                       "provenance": {"enum": ["direct", "derived"],
                                      "description": "direct ANC, or derived from WBC x differential"},
                       "linked_infusions": {"type": "array", "description": "Administrations started within the "
                                            "post-infusion window (ivig_nadir_days) before this count.",
                                            "items": {"type": "object", "properties": {
                                                "administration_id": {"type": "string"},
                                                "drug_class": {"type": "string"},
                                                "started_at": {"type": "string", "format": "date-time"},
                                                "dose_mg_per_kg": {"type": "number"},
                                                "dose_mg": {"type": "number",
                                                            "description": "a dose given as a mass"},
                                                "days_after_start": {"type": "number"}}}}}}
    point = {"type": ["object", "null"], "properties": {
        "observation_id": {"type": "string"}, "value": {"type": "number"}, "comparator": COMPARATOR,
        "collected_at": {"type": "string", "format": "date-time"},
        "days_after_start": {"type": "number", "description": "days after the course started"}}}
    limits = {"type": "object", "description": "Grade limits (cells/uL) in force: normal >= normal, mild >= mild, "
              "moderate >= moderate, severe >= agranulocytosis, agranulocytosis below.",
              "properties": {
                  "from": {"type": ["string", "null"], "format": "date-time",
                           "description": "first count graded under these limits; null: from the start"},
                  "to": {"type": ["string", "null"], "format": "date-time", "description": "null: still in force"},
                  "profile": {"type": "string"},
                  "basis": {"enum": ["profile", "age", "baseline_override", "threshold_override"]},
                  "normal": {"type": "number"}, "mild": {"type": "number"}, "moderate": {"type": "number"},
                  "agranulocytosis": {"type": "number"}}}
    administration = {"type": "object", "properties": {
        "administration_id": {"type": "string"}, "drug_class": {"type": "string"},
        "started_at": {"type": "string", "format": "date-time"},
        "ended_at": {"type": ["string", "null"], "format": "date-time"},
        "dose_mg_per_kg": {"type": ["number", "null"]},
        "dose_mg": {"type": ["number", "null"], "description": "a dose given as a mass (70 g: 70000)"},
        "status": {"enum": ["completed", "in-progress", "stopped", "not-done"]},
        "role": {"enum": ["ivig", "watched", "other"],
                 "description": "ivig; a drug on the detection watch list; other kept classes (G-CSF)"}}}
    temperature = {"type": "object", "properties": {
        "observation_id": {"type": "string"}, "value": {"type": "number"}, "unit": {"const": "Cel"},
        "collected_at": {"type": "string", "format": "date-time"}, "status": {"enum": ["P", "F", "C"]}}}
    course = {"type": "object", "description": "One IVIG course as the post-IVIG rule measures it.", "properties": {
        "started_at": {"type": "string", "format": "date-time"},
        "administration_ids": {"type": "array", "items": {"type": "string"}},
        "dose_mg_per_kg": {"type": ["number", "null"], "description": "total of the course"},
        "dose_mg": {"type": ["number", "null"],
                    "description": "total of the course, for doses given as a mass"},
        "interval_days": {"type": ["number", "null"], "description": "since the previous course"},
        "pre": point, "early": {**point, "description": "lowest count ivig_early_hours (12-60 h) after"},
        "nadir": {**point, "description": "lowest count up to ivig_nadir_days after (or the next course)"},
        "recovery_before_next": {**point, "description": "highest count after the nadir before the next course"},
        "recovered": {"type": ["boolean", "null"]},
        "dip": {"type": ["boolean", "null"], "description": "null: not evaluable (no pre or post count)"}}}
    episode = {"type": "object", "properties": {
        "kind": {"enum": ["neutropenia", "severe", "agranulocytosis"]},
        "started_at": {"type": "string", "format": "date-time"}, "start_observation_id": {"type": "string"},
        "start_value": {"type": "number"}, "nadir_at": {"type": "string", "format": "date-time"},
        "nadir_observation_id": {"type": "string"}, "nadir_value": {"type": "number"},
        "chronic": {"type": "boolean"}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "NeutroWatch monitor API", "version": "1.0.0",
                 "description": "Alerts of the streaming monitor and each patient's ANC timeline and state, read "
                                "from the monitor's Redis. Alerts are neutrowatch.alert.v1 records."},
        "paths": {
            "/alerts": {"get": {
                "summary": "Alerts, newest observed_at first, paginated",
                "parameters": [
                    _q("patient", {"type": "string"}, "patient_key"),
                    _q("kind", {"enum": list(KINDS)}, "alert kind"),
                    _q("severity", {"enum": ["info", "warning", "critical"]}, "severity"),
                    _q("since", {"type": "string", "format": "date-time"},
                       "only alerts whose observed_at is at or after this time"),
                    _q("limit", {"type": "integer", "minimum": 1, "default": 50}, "page size"),
                    _q("offset", {"type": "integer", "minimum": 0, "default": 0},
                       "position to continue from (use `next`)")],
                "responses": {"200": {"description": "A page of alerts (JSON, the default)", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/AlertPage"}},
                    "text/html": {"schema": {"type": "string", "description": (
                        "When Accept ranks text/html above application/json (a browser): the alerts page with "
                        "each alert's delivery state and an Acknowledge button; its query parameters are "
                        "severity, patient, show (open | all) and limit.")}}}},
                    "400": _PROBLEM}}},
            "/alerts/{alert_id}": {"get": {
                "summary": "One alert",
                "parameters": [{"name": "alert_id", "in": "path", "required": True,
                                "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}}],
                "responses": {"200": _json("Alert", "The alert"), "404": _PROBLEM}}},
            "/patients/{patient}": {"get": {
                "summary": "The patient's timeline page (HTML): ANC on a log axis with grade bands, IVIG and "
                           "watched-drug administrations, temperatures, alerts, IVIG course table",
                "parameters": [_PATIENT],
                "responses": {"200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}},
                              "404": {"description": "no such patient (HTML)"}}}},
            "/patients/{patient}/anc": {"get": {
                "summary": "Normalised ANC timeline (within the engine's bounded history) with the grade limits in "
                           "force, administrations, temperatures and per-course IVIG figures",
                "parameters": [_PATIENT],
                "responses": {"200": _json("AncTimeline", "Timeline, oldest first"), "404": _PROBLEM}}},
            "/patients/{patient}/state": {"get": {
                "summary": "Current grade, open episodes, detected patterns",
                "parameters": [_PATIENT],
                "responses": {"200": _json("PatientState", "State"), "404": _PROBLEM}}},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
            "/readyz": {"get": {"summary": "Readiness with named checks (kafka, redis, mllp, monitor)",
                                "responses": {"200": _json("Readiness", "ready"),
                                              "503": _json("Readiness", "not ready")}}},
            "/metrics": {"get": {"summary": "Prometheus exposition",
                                 "responses": {"200": {"description": "text/plain; version=0.0.4"}}}},
        },
        "components": {"schemas": {
            "Alert": json.loads(text), **alert_defs,
            "AlertPage": {"type": "object", "required": ["alerts", "count", "offset", "limit"], "properties": {
                "alerts": {"type": "array", "items": {"$ref": "#/components/schemas/Alert"}},
                "count": {"type": "integer"}, "offset": {"type": "integer"}, "limit": {"type": "integer"},
                "next": {"type": "string", "description": "URL of the next page, when there is one"}}},
            "AncObservation": observation,
            "AncTimeline": {"type": "object", "required": ["patient_key", "unit", "anc", "grade_limits",
                                                           "administrations", "temperatures", "ivig_courses"],
                            "properties": {
                "patient_key": {"type": "string"}, "unit": {"const": "cells/uL"},
                "anc": {"type": "array", "items": {"$ref": "#/components/schemas/AncObservation"}},
                "grade_limits": {"type": "array", "items": {"$ref": "#/components/schemas/GradeLimits"}},
                "administrations": {"type": "array", "description": "IVIG, G-CSF and watch-list drugs kept in the "
                                    "history, oldest first", "items": {"$ref": "#/components/schemas/Administration"}},
                "temperatures": {"type": "array", "description": "body temperatures kept (within "
                                 "history_temperature_days of the newest result)",
                                 "items": {"$ref": "#/components/schemas/Temperature"}},
                "fever_c": {"type": "object", "description": "febrile-neutropenia temperature thresholds (°C)",
                            "properties": {"single": {"type": "number"}, "sustained": {"type": "number"},
                                           "sustained_minutes": {"type": "number"}}},
                "ivig_courses": {"type": "array", "items": {"$ref": "#/components/schemas/IvigCourse"}}}},
            "GradeLimits": limits,
            "Administration": administration,
            "Temperature": temperature,
            "IvigCourse": course,
            "Episode": episode,
            "PatientState": {"type": "object", "properties": {
                "patient_key": {"type": "string"},
                "current_grade": {"enum": ["normal", "mild", "moderate", "severe", "agranulocytosis", None]},
                "last_anc": {"type": ["object", "null"]},
                "open_episodes": {"type": "array", "items": {"$ref": "#/components/schemas/Episode"}},
                "detected_patterns": {"type": "array", "description": (
                    "Pattern alerts that stand (cyclic, post-IVIG, chronic, drug-associated), including "
                    "one whose evidence has left the kept history, as it was sent."),
                    "items": {"type": "object", "properties": {
                    "kind": {"type": "string"}, "alert_id": {"type": "string"}, "severity": {"type": "string"},
                    "observed_at": {"type": "string"}, "summary": {"type": "string"}}}},
                "history": {"type": "object"},
                "alerts_emitted": {"type": "integer", "description": (
                    "Alerts sent that still stand, about results after history.summarised_before.")}}},
            "Readiness": {"type": "object", "properties": {
                "ready": {"type": "boolean"}, "checks": {"type": "object", "additionalProperties": {"type": "boolean"}}}},
            "Problem": {"type": "object", "required": ["status", "detail"], "properties": {
                "status": {"type": "integer"}, "detail": {"type": "string"}}},
        }},
    }
