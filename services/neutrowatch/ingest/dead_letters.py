"""Build the dead-letter record for a refused input: the reason plus the input as received."""
from __future__ import annotations

import base64
from datetime import datetime

from neutrowatch.domain.events import DeadLetter, Rejection, Source
from neutrowatch.platform.kafka import OutRecord


def dead_letter(raw: bytes, rejection: Rejection, source: Source, received_at: datetime,
                patient_id: str | None = None) -> OutRecord:
    try:
        text, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(raw).decode("ascii"), "base64"
    letter = DeadLetter(received_at=received_at, source=source, rejection=rejection, raw=text,
                        raw_encoding=encoding, patient_id=patient_id)
    key = patient_id or source.sending_facility or source.type
    return OutRecord.of(letter.to_record(), key)
