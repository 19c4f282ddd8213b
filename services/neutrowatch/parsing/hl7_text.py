"""HL7 v2 text handling: message splitting, the MSH header, and safe field access.

Pure functions over strings; python-hl7 does the segment/field parsing.
"""
from __future__ import annotations

from typing import Callable

import logging
import re
from dataclasses import dataclass

import hl7
import hl7.util

from neutrowatch.parsing.errors import InputRejected

# python-hl7 logs the whole field (a patient identifier, a name, a value) when it meets a
# malformed escape sequence; nothing with patient data may reach the logs, so its logger is off.
# The parse itself goes on (the sequence is dropped) and our own checks judge the result.
logging.getLogger(hl7.util.__file__).disabled = True
hl7.util.logger.disabled = True

MLLP_START, MLLP_END = "\x0b", "\x1c"
BOM = "\ufeff"


def decode(data: bytes | str) -> str:
    """Bytes as text (UTF-8, else Latin-1), without byte-order marks."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    else:
        text = data
    return text.replace(BOM, "")


def normalise(text: str) -> str:
    """One message with '\\r' segment ends, no BOM, no MLLP framing, no blank segments."""
    text = decode(text).replace(MLLP_START, "").replace(MLLP_END, "")
    segments = re.split(r"\r\n|\r|\n", text)
    return "\r".join(s for s in segments if s.strip())


def split_messages(data: bytes | str) -> list[str]:
    """Every message in a file or stream (MLLP-framed or not, any segment ends)."""
    text = decode(data).replace(MLLP_START, "\r").replace(MLLP_END, "\r")
    messages: list[list[str]] = []
    for segment in re.split(r"\r\n|\r|\n", text):
        if not segment.strip():
            continue
        if segment.startswith("MSH") or not messages:
            messages.append([segment])
        else:
            messages[-1].append(segment)
    return ["\r".join(m) for m in messages]


@dataclass(frozen=True)
class Hl7Header:
    sending_application: str | None = None
    sending_facility: str | None = None
    receiving_application: str | None = None
    receiving_facility: str | None = None
    message_id: str | None = None  # MSH-10
    message_type: str | None = None  # "ORU^R01"
    version: str | None = None
    processing_id: str | None = None
    message_time: str | None = None  # MSH-7 as sent (its offset is the sender's time zone)


def _encoding(text: str) -> tuple[str, str]:
    """(field separator, encoding characters) of a message starting with MSH, or not_hl7."""
    if not text.startswith("MSH") or len(text) < 8:
        raise InputRejected("not_hl7", "the input does not start with an HL7 v2 MSH segment", "MSH")
    sep = text[3]
    enc = text[4:].split(sep, 1)[0] if sep in text[4:] else ""
    chars = sep + enc
    if (sep.isalnum() or sep.isspace() or len(enc) not in (4, 5) or len(set(chars)) != len(chars)
            or any(c.isalnum() or c.isspace() for c in enc)):
        raise InputRejected("not_hl7", "MSH-1/MSH-2 do not hold a field separator and four "
                            "encoding characters", "MSH-2")
    return sep, enc


def _unescape(value: str, sep: str, enc: str) -> str:
    comp, rep, esc, sub = enc[0], enc[1], enc[2], enc[3]
    table = {"F": sep, "S": comp, "R": rep, "E": esc, "T": sub}
    return re.sub(re.escape(esc) + r"([FSRET])" + re.escape(esc), lambda m: table[m.group(1)], value)


def read_header(text: str | bytes) -> Hl7Header:
    """The MSH fields an acknowledgement needs; raises not_hl7 when there is no valid MSH."""
    text = normalise(text if isinstance(text, str) else decode(text))
    sep, enc = _encoding(text)
    fields = text.split("\r", 1)[0].split(sep)
    # fields[0] == "MSH", fields[1] == encoding characters, fields[n - 1] == MSH-n for n >= 3.

    def first(n: int, component: int = 1) -> str | None:
        if n - 1 >= len(fields):
            return None
        value = fields[n - 1].split(enc[1])[0]
        parts = value.split(enc[0])
        if component > len(parts):
            return None
        result = _unescape(parts[component - 1].split(enc[3])[0], sep, enc).strip()
        return result or None

    kind, trigger = first(9, 1), first(9, 2)
    message_type = f"{kind}^{trigger}" if kind and trigger else kind
    return Hl7Header(
        sending_application=first(3), sending_facility=first(4),
        receiving_application=first(5), receiving_facility=first(6),
        message_id=first(10), message_type=message_type, version=first(12),
        processing_id=first(11), message_time=first(7),
    )


def parse_message(text: str) -> hl7.Message:
    """python-hl7's parse of a normalised message; anything it cannot parse is not_hl7."""
    _encoding(text)
    try:
        return hl7.parse(text)
    except Exception as exc:  # python-hl7 raises assorted errors on malformed input
        raise InputRejected("not_hl7", f"the message cannot be parsed as HL7 v2 ({type(exc).__name__})",
                            "MSH") from None


class Seg:
    """Read-only, 1-based, exception-free access to one parsed segment's values (unescaped)."""

    def __init__(self, segment: hl7.Segment, occurrence: int):
        self._segment = segment
        self.name = str(segment[0]) if len(segment) else ""
        self.occurrence = occurrence  # 1-based position among segments with this name

    def get(self, field: int, rep: int = 1, comp: int = 1, sub: int = 1) -> str:
        try:
            value = self._segment.extract_field(1, field, rep, comp, sub)
        except Exception:  # absent path: python-hl7 raises IndexError (or others on odd trees)
            return ""
        return str(value).strip() if value is not None else ""

    def raw(self, field: int) -> str:
        """A whole field as sent (every repetition and component), '' when absent."""
        try:
            return str(self._segment[field]).strip()
        except Exception:
            return ""

    def repetitions(self, field: int) -> int:
        """How many repetitions a field has (0 when absent or empty)."""
        try:
            value = self._segment[field]
        except Exception:
            return 0
        if not str(value):
            return 0
        return max(1, sum(1 for item in value if isinstance(item, hl7.Repetition)))

    def label(self, field: int) -> str:
        """The field's name in rejections: OBX[3]-5 for repeating segments, PID-3 otherwise."""
        if self.name == "OBX":
            return f"OBX[{self.occurrence}]-{field}"
        return f"{self.name}-{field}"


def segments(text: str, keep: Callable[[str, list[str]], bool] = lambda name, fields: True) -> list[Seg]:
    """The segments ``keep(name, raw_fields)`` wants, parsed by python-hl7, numbered as in the
    whole message (so OBX[7] still names the seventh OBX). Parsing only what is read matters:
    python-hl7 builds a full tree per segment, most of a CBC is analytes nobody reads here."""
    lines = text.split("\r")
    field_sep = lines[0][3:4] or "|"
    counts: dict[str, int] = {}
    kept, numbers = [], []
    for index, line in enumerate(lines):
        name = line[:3]
        counts[name] = counts.get(name, 0) + 1
        if index == 0 or keep(name, line.split(field_sep)):
            kept.append(line)
            numbers.append(counts[name])
    return [Seg(segment, number) for segment, number in zip(parse_message("\r".join(kept)), numbers)]


__all__ = ["Hl7Header", "Seg", "decode", "normalise", "parse_message", "read_header", "segments",
           "split_messages"]
