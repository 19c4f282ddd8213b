"""The OpenAPI 3.1 document of the monitor's HTTP API (served at /openapi.json)."""
from __future__ import annotations

import json
from functools import cache
from typing import Any

from neutrowatch.detection import KINDS
from neutrowatch.schemas import schemas_dir

_PATIENT = {"name": "patient", "in": "path", "required": True, "schema": {"type": "string"},
            "description": "The patient_key (`authority|id`, or the bare id), URL-encoded (`|` is %7C)."}
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
                                                "days_after_start": {"type": "number"}}}}}}
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
                "responses": {"200": _json("AlertPage", "A page of alerts"), "400": _PROBLEM}}},
            "/alerts/{alert_id}": {"get": {
                "summary": "One alert",
                "parameters": [{"name": "alert_id", "in": "path", "required": True,
                                "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}}],
                "responses": {"200": _json("Alert", "The alert"), "404": _PROBLEM}}},
            "/patients/{patient}/anc": {"get": {
                "summary": "Normalised ANC timeline (within the engine's bounded history)",
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
            "AncTimeline": {"type": "object", "properties": {
                "patient_key": {"type": "string"}, "unit": {"const": "cells/uL"},
                "anc": {"type": "array", "items": {"$ref": "#/components/schemas/AncObservation"}}}},
            "Episode": episode,
            "PatientState": {"type": "object", "properties": {
                "patient_key": {"type": "string"},
                "current_grade": {"enum": ["normal", "mild", "moderate", "severe", "agranulocytosis", None]},
                "last_anc": {"type": ["object", "null"]},
                "open_episodes": {"type": "array", "items": {"$ref": "#/components/schemas/Episode"}},
                "detected_patterns": {"type": "array", "items": {"type": "object", "properties": {
                    "kind": {"type": "string"}, "alert_id": {"type": "string"}, "severity": {"type": "string"},
                    "observed_at": {"type": "string"}, "summary": {"type": "string"}}}},
                "history": {"type": "object"}, "alerts_emitted": {"type": "integer"}}},
            "Readiness": {"type": "object", "properties": {
                "ready": {"type": "boolean"}, "checks": {"type": "object", "additionalProperties": {"type": "boolean"}}}},
            "Problem": {"type": "object", "required": ["status", "detail"], "properties": {
                "status": {"type": "integer"}, "detail": {"type": "string"}}},
        }},
    }
