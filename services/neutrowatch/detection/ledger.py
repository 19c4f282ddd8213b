"""The ledger: what the engine has emitted for one patient, alert id -> Entry.

An entry is one of:
- SENT: the alert went out and still stands; a correction, deletion or late result can withdraw it.
  ``sent_as`` names the id it went out under when that is not its own (a late result moved the
  episode's start, and so its id, earlier; or it was sent again after a withdrawal).
- KEPT: sent, and its evidence has since left the bounded history: it stands, is never withdrawn
  and can no longer be rendered.
- UNSENT: held only on the history the bound had just cut, an artefact of the cut: never sent.
- WITHDRAWN: sent (as ``sent_as``), then withdrawn. Should it hold again it is news, sent under
  ``alerts.again_id(sent_as)``.

A grade change records the transition it announced (``grades``: from, to), so a late result that
only dates the same change differently keeps it standing instead of sending it twice.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Mapping

SENT, KEPT, UNSENT, WITHDRAWN = "sent", "kept", "unsent", "withdrawn"


@dataclass(frozen=True, slots=True)
class Entry:
    kind: str
    t: int  # collection time of the deciding result (epoch seconds)
    status: str = SENT
    sent_as: str | None = None
    grades: tuple[str | None, str] | None = None

    @property
    def is_news(self) -> bool:
        """Holding again after a withdrawal is news (as a new alert, under an id of its own)."""
        return self.status == WITHDRAWN

    def withdrawn(self, own_id: str) -> "Entry":
        return Entry(self.kind, self.t, WITHDRAWN, self.sent_as or own_id)

    def settled(self, status: str) -> "Entry":
        """KEPT or UNSENT: decided by the history bound, never withdrawn."""
        return Entry(self.kind, self.t, status)


@dataclass(frozen=True)
class Ledger:
    entries: Mapping[str, Entry] = field(default_factory=dict)

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def news(self, aid: str) -> bool:
        """Not sent, or sent and withdrawn since: holding, it is news."""
        entry = self.entries.get(aid)
        return entry is None or entry.is_news

    def standing(self) -> list[str]:
        """Ids of the alerts sent that still stand and can be withdrawn."""
        return [aid for aid, e in self.entries.items() if e.status == SENT]

    def recorded(self) -> dict[str, Entry]:
        """The entries less those of alerts withdrawn (which differ with the arrival order)."""
        return {aid: e for aid, e in self.entries.items() if e.status != WITHDRAWN}

    def sent_ids(self) -> set[str]:
        """Every id an alert has gone out under (a consumer keeps one alert per id): no other
        alert may be sent under one of them."""
        return {e.sent_as or aid for aid, e in self.entries.items() if e.status != UNSENT}

    def with_status(self, status: str) -> set[str]:
        return {aid for aid, e in self.entries.items() if e.status == status}

    def standing_count(self) -> int:
        """Alerts sent that still stand (neither withdrawn, nor kept from being sent by the bound)."""
        return sum(1 for e in self.entries.values() if e.status in (SENT, KEPT))

    def after(self, horizon: int | None) -> "Ledger":
        """The entries whose deciding result is newer than ``horizon`` (the rest left the history)."""
        if horizon is None:
            return self
        return Ledger({aid: e for aid, e in self.entries.items() if e.t > horizon})

    def updated(self, changes: Mapping[str, Entry]) -> "Ledger":
        return Ledger({**self.entries, **changes}) if changes else self
