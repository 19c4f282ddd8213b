"""HL7 v2 acknowledgements (ACK) for an accepted or refused message. Pure string building."""
from __future__ import annotations

import re
from typing import Literal, Sequence

from neutrowatch.domain.events import Rejection
from neutrowatch.parsing.hl7_text import Hl7Header

# HL7 table 0357 (message error condition codes).
ERROR_CODES: dict[str, tuple[str, str]] = {
    "100": ("100", "Segment sequence error"),
    "101": ("101", "Required field missing"),
    "102": ("102", "Data type error"),
    "103": ("103", "Table value not found"),
    "200": ("200", "Unsupported message type"),
    "207": ("207", "Application internal error"),
}
_CODE_FOR_REJECTION: dict[str, str] = {
    "not_hl7": "100",
    "unsupported_message_type": "200",
    "non_numeric_value": "102", "bad_timestamp": "102", "bad_dose": "102",
    "unknown_unit": "103", "unknown_result_status": "103",
    "unknown_administration_status": "103",
}


def error_code(rejection_code: str) -> str:
    """The table 0357 code for a rejection code: missing_* -> 101, unknown -> 207."""
    if rejection_code in _CODE_FOR_REJECTION:
        return _CODE_FOR_REJECTION[rejection_code]
    if rejection_code.startswith("missing_"):
        return "101"
    return "207"


def escape(text: str) -> str:
    """HL7 escaping of the default delimiters; line breaks become spaces."""
    text = text.replace("\\", "\\E\\")
    for char, seq in (("|", "\\F\\"), ("^", "\\S\\"), ("~", "\\R\\"), ("&", "\\T\\")):
        text = text.replace(char, seq)
    return re.sub(r"[\r\n\x0b\x1c]+", " ", text)


def error_location(field: str | None) -> str:
    """"OBX[3]-6" -> "OBX^3^6", "PID-3" -> "PID^1^3"; anything else -> ""."""
    if not field:
        return ""
    match = re.match(r"^([A-Z][A-Z0-9]{2})(?:\[(\d+)\])?-(\d+)$", field)
    if not match:
        return ""
    segment, sequence, position = match.groups()
    return f"{segment}^{sequence or 1}^{position}"


def _version_before_25(version: str) -> bool:
    parts = re.findall(r"\d+", version)
    return len(parts) >= 2 and (int(parts[0]), int(parts[1])) < (2, 5)


def build_ack(header: Hl7Header | None, code: Literal["AA", "AE", "AR"],
              rejection: Rejection | None, control_id: str, timestamp: str,
              warnings: Sequence[Rejection] = ()) -> str:
    """An ACK (segments joined by '\\r') answering ``header``'s message: MSA-3 and an ERR of
    severity E for a ``rejection``; for an AA that kept only part of the message, an ERR of
    severity W per result not kept (``warnings``) and MSA-3 counting them."""
    h = header or Hl7Header()
    version = h.version or "2.5.1"
    trigger = (h.message_type or "").split("^")[1] if "^" in (h.message_type or "") else ""
    msh = "|".join([
        "MSH", "^~\\&", escape(h.receiving_application or ""), escape(h.receiving_facility or ""),
        escape(h.sending_application or ""), escape(h.sending_facility or ""), escape(timestamp), "",
        f"ACK^{escape(trigger)}^ACK", escape(control_id), escape(h.processing_id or "P"),
        escape(version),
    ])
    if rejection is not None:
        text = rejection.reason
    elif warnings:
        text = (f"accepted; {len(warnings)} result(s) could not be used and were not kept "
                f"(see ERR): " + "; ".join(w.reason for w in warnings))
    else:
        text = ""
    segments = [msh, "|".join(["MSA", code, escape(h.message_id or ""), escape(text)])]
    issues = [(rejection, "E")] if rejection is not None else []
    segments += [_err(r, severity, version) for r, severity in issues + [(w, "W") for w in warnings]]
    return "\r".join(segments)


def _err(rejection: Rejection, severity: str, version: str) -> str:
    err_code, err_text = ERROR_CODES[error_code(rejection.code)]
    location = error_location(rejection.field)
    eld = ""
    if _version_before_25(version):
        eld = f"{location}^{err_code}&{escape(err_text)}&HL70357" if location else ""
    return "|".join(["ERR", eld, location, f"{err_code}^{escape(err_text)}^HL70357", severity,
                     escape(rejection.code), "", "", escape(rejection.reason)])


__all__ = ["build_ack", "error_code", "error_location", "escape"]
