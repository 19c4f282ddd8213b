"""Stable identifiers: the same inputs give the same id on every machine and every replay."""
from __future__ import annotations

import hashlib


def stable_id(*parts: object) -> str:
    """32 hex characters of SHA-256 over the parts (None counts as empty)."""
    text = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
