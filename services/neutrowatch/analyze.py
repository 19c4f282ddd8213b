"""`neutrowatch analyze FILE...`: run the detection engine offline over files.

Reads HL7 v2 (one or many messages, \\r or \\n segment ends, MLLP framing or not), FHIR JSON /
NDJSON / Bundles, and canonical NDJSON (neutrowatch.lab-result.v1 /
neutrowatch.medication-administration.v1 records). Events are stepped in file order, per patient,
through exactly the engine the streaming monitor uses. Alerts go to stdout as NDJSON; a summary
(files, events, alerts by kind, rejected inputs with reasons) and a progress bar go to stderr.
With --burden, stdout gets an alert-burden table (neutrowatch.burden) instead of the alerts.
Exit status: 0, or 1 when a file cannot be read or nothing in the input could be analysed.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import Any, Iterator
from zoneinfo import ZoneInfo

from neutrowatch.burden import Span, alert_burden, format_table
from neutrowatch.detection import Alert, DetectionConfig, PatientState, step
from neutrowatch.domain.events import Event, LabResult, event_from_record
from neutrowatch.domain.timing import DEFAULT_TOLERANCE, implausible_time

PROGRESS_MIN_EVENTS = 2000
CANONICAL = ("neutrowatch.lab-result.v1", "neutrowatch.medication-administration.v1")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", type=Path,
                        help="HL7 v2, FHIR JSON/NDJSON/Bundle or canonical NDJSON files")
    parser.add_argument("--config", type=Path, default=None, metavar="FILE",
                        help="detection settings (YAML or JSON): profile, profiles, watch_list, "
                             "patients (per-patient baseline_anc / normal_threshold / profile), windows")
    parser.add_argument("--local-codes", type=Path, default=None, metavar="FILE",
                        help="local code mapping (YAML/JSON) for HL7/FHIR results with local codes")
    parser.add_argument("--hl7-default-timezone", default="UTC", metavar="ZONE",
                        help="IANA time zone of HL7 v2 timestamps without a UTC offset when MSH-7 "
                             "has none either (as the ingest setting of that name; default UTC)")
    parser.add_argument("--fhir-patient-identity", default="reference", choices=("reference", "identifier"),
                        help="how a FHIR subject becomes a patient key (as the ingest setting of that "
                             "name; default reference)")
    parser.add_argument("--fhir-identifier-systems", default="{}", metavar="JSON",
                        help="JSON object of FHIR identifier system -> HL7 assigning authority (as the "
                             "ingest setting of that name)")
    parser.add_argument("--as-of", type=_aware_time, default=None, metavar="TIME",
                        help="judge 'dated in the future' against this ISO 8601 time with an offset "
                             "instead of now (a date-shifted research export, e.g. 2125-01-01T00:00:00Z)")
    parser.add_argument("--burden", action="store_true",
                        help="print an alert-burden table to stdout INSTEAD of the alert NDJSON: per "
                             "patient and overall, alerts (retractions included), critical pages, "
                             "episodes (distinct severe/agranulocytosis/expected-dip episode starts), "
                             "pages per episode, patient-months (first to last event, at least 1 day, "
                             "/30.44), pages per patient-month, expected dips, alerts retracted; the "
                             "summary still goes to stderr")


@dataclass
class Rejected:
    file: str
    where: str
    code: str
    reason: str
    field: str | None = None


@dataclass
class Report:
    files: int = 0
    unreadable: list[str] = field(default_factory=list)
    events: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    alerts: Counter = field(default_factory=Counter)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        codes = load_codes(getattr(args, "local_codes", None))
        zone = ZoneInfo(args.hl7_default_timezone)
        identity = _identity(args)
    except (OSError, ValueError, KeyError) as exc:  # an unknown zone is a KeyError
        print(f"neutrowatch analyze: {exc}", file=sys.stderr)
        return 1
    report = Report()
    events: list[Event] = []
    for path in args.files:
        try:
            data = path.read_bytes()
        except OSError as exc:
            report.unreadable.append(f"{path}: {exc.strerror or exc}")
            continue
        report.files += 1
        events.extend(_plausible(read_events(data, str(path), codes, report, zone, identity), str(path),
                                 report, getattr(args, "as_of", None) or datetime.now(timezone.utc)))
    report.events = len(events)
    out, burden = sys.stdout, getattr(args, "burden", False)
    records: list[dict[str, Any]] = []
    for alert in analyze_events(events, config):
        report.alerts[alert.kind] += 1
        if burden:
            records.append(alert.to_record())
        else:
            out.write(json.dumps(alert.to_record(), separators=(",", ":"), sort_keys=True) + "\n")
    if burden:
        out.write(format_table(alert_burden(records, event_spans(events))))
    out.flush()
    print_summary(report, sys.stderr)
    if report.files and not report.events:
        print("neutrowatch analyze: nothing in the input could be analysed", file=sys.stderr)
        return 1
    return 1 if report.unreadable else 0


def _aware_time(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset (e.g. 2125-01-01T00:00:00Z)")
    return when


def _plausible(events: list[Event], name: str, report: Report, now: datetime) -> list[Event]:
    """The events dated plausibly as of ``now`` (the others are refused, as ingest refuses them)."""
    kept = []
    for ev in events:
        refused = implausible_time(ev, now, DEFAULT_TOLERANCE)
        if refused is None:
            kept.append(ev)
        else:
            report.rejected.append(Rejected(name, f"event {ev.event_id}", refused.code, refused.reason,
                                            refused.field))
    return kept


def analyze_events(events: list[Event], config: DetectionConfig) -> Iterator[Alert]:
    states: dict[str, PatientState] = {}
    for ev in _progress(events):
        key = ev.patient_key
        states[key], alerts = step(states.get(key) or PatientState.empty(), ev, config)
        yield from alerts


def event_spans(events: list[Event]) -> dict[str, Span]:
    """Each patient's earliest and latest lab collection / administration start."""
    spans: dict[str, Span] = {}
    for ev in events:
        t = ev.collected_at if isinstance(ev, LabResult) else ev.started_at
        span = spans.get(ev.patient_key)
        spans[ev.patient_key] = Span(t, t) if span is None else span.including(t)
    return spans


def _progress(events: list[Event]):
    if len(events) < PROGRESS_MIN_EVENTS:
        return events
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return events
    return tqdm(events, desc="analyze", unit="event", file=sys.stderr, leave=False)


# ---------------------------------------------------------------------------- inputs

def load_config(path: Path | None) -> DetectionConfig:
    if path is None:
        return DetectionConfig()
    return DetectionConfig.from_mapping(_load_mapping(path))


def load_codes(path: Path | None) -> Any:
    from neutrowatch.domain.codes import CodeMap
    return CodeMap.from_mapping(_load_mapping(path) if path is not None else {})


def _load_mapping(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
    else:
        import yaml
        data = yaml.safe_load(text)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data


def _identity(args: argparse.Namespace) -> Any:
    from neutrowatch.parsing.fhir import PatientIdentity
    from neutrowatch.platform.settings import identifier_systems
    try:
        systems = identifier_systems(getattr(args, "fhir_identifier_systems", "{}"))
    except ValueError as exc:
        raise ValueError(f"--fhir-identifier-systems: {exc}") from None
    return PatientIdentity(getattr(args, "fhir_patient_identity", "reference"), systems)


def read_events(data: bytes, name: str, codes: Any, report: Report, zone: tzinfo = timezone.utc,
                identity: Any = None) -> list[Event]:
    text = data.decode("utf-8", errors="replace").lstrip("\ufeff")
    head = text.lstrip("\x0b \t\r\n")
    if head.startswith("MSH"):
        return _hl7(data, name, codes, report, zone)
    stripped = text.strip()
    if not stripped:
        return []
    try:
        whole = json.loads(stripped)
    except json.JSONDecodeError:
        whole = None
    if whole is not None:
        items = whole if isinstance(whole, list) else [whole]
        return [ev for i, item in enumerate(items)
                for ev in _json_item(item, name, f"item {i + 1}", codes, report, identity)]
    out: list[Event] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            report.rejected.append(Rejected(name, f"line {n}", "not_json", f"not JSON: {exc.msg}"))
            continue
        out.extend(_json_item(item, name, f"line {n}", codes, report, identity))
    return out


def _json_item(item: Any, name: str, where: str, codes: Any, report: Report,
               identity: Any = None) -> list[Event]:
    if isinstance(item, dict) and item.get("schema") in CANONICAL:
        try:
            ev = event_from_record(item)
            _check_canonical(ev)
            return [ev]
        except (KeyError, TypeError, ValueError) as exc:
            report.rejected.append(Rejected(name, where, "invalid_record",
                                            f"not a valid {item['schema']} record: {exc!s}"[:300]))
            return []
    if isinstance(item, dict) and "resourceType" in item:
        from neutrowatch.parsing.errors import InputRejected
        from neutrowatch.parsing.fhir import BY_REFERENCE, parse_fhir
        try:
            return list(parse_fhir(item, codes, identity=identity or BY_REFERENCE))
        except InputRejected as exc:
            r = exc.rejection
            report.rejected.append(Rejected(name, where, r.code, r.reason, r.field))
            return []
    report.rejected.append(Rejected(name, where, "unknown_record",
                                    "neither a canonical neutrowatch record nor a FHIR resource"))
    return []


def _check_canonical(ev: Event) -> None:
    when = getattr(ev, "collected_at", None) or getattr(ev, "started_at", None)
    if when is None or when.tzinfo is None:
        raise ValueError("the collection/start time has no time zone")
    if getattr(ev, "analyte", None) == "anc" and ev.value is not None and not 0 <= ev.value <= 200000:  # type: ignore[union-attr]
        raise ValueError(f"ANC {ev.value} cells/uL is implausible (0..200000)")  # type: ignore[union-attr]


def _hl7(data: bytes, name: str, codes: Any, report: Report, zone: tzinfo) -> list[Event]:
    from neutrowatch.parsing.errors import InputRejected
    from neutrowatch.parsing.hl7v2 import parse_hl7, split_messages
    out: list[Event] = []
    for n, message in enumerate(split_messages(data), 1):
        try:
            result = parse_hl7(message, codes, zone)
            out.extend(result.events)
            report.rejected.extend(Rejected(name, f"message {n}", p.code, p.reason, p.field)
                                   for p in result.problems)
        except InputRejected as exc:
            r = exc.rejection
            report.rejected.append(Rejected(name, f"message {n}", r.code, r.reason, r.field))
    return out


def print_summary(report: Report, stream) -> None:
    total = sum(report.alerts.values())
    lines = [f"analyze: {report.files} file(s), {report.events} event(s), {total} alert(s), "
             f"{len(report.rejected)} rejected input(s)"]
    for kind, n in sorted(report.alerts.items()):
        lines.append(f"  {kind}: {n}")
    for r in report.rejected:
        at = f" [{r.field}]" if r.field else ""
        lines.append(f"  rejected {r.file} {r.where}: {r.code}: {r.reason}{at}")
    for u in report.unreadable:
        lines.append(f"  unreadable: {u}")
    stream.write("\n".join(lines) + "\n")
    stream.flush()
