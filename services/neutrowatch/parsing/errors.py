"""The one exception every parser raises for input it cannot use."""
from __future__ import annotations

from neutrowatch.domain.events import Rejection


class InputRejected(Exception):
    """The input is understood well enough to say exactly why it cannot be used."""

    def __init__(self, code: str, reason: str, field: str | None = None):
        super().__init__(reason)
        self.rejection = Rejection(code=code, reason=reason, field=field)
