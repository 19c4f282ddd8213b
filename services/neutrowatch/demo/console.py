"""What the demo prints: one line per alert, section headings, the closing block of URLs."""
from __future__ import annotations

import os
import sys
from datetime import datetime
from typing import TextIO
from urllib.parse import quote

SEVERITY_COLOUR = {"critical": "\033[1;31m", "warning": "\033[33m", "info": "\033[36m"}
DIM, BOLD, RESET = "\033[2m", "\033[1m", "\033[0m"


class Console:
    def __init__(self, out: TextIO = sys.stdout, colour: bool | None = None):
        self.out = out
        if colour is None:
            colour = out.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        self.colour = colour
        self._bar = None  # a tqdm bar while the replay runs: lines go above it

    def paint(self, text: str, style: str) -> str:
        return f"{style}{text}{RESET}" if self.colour and style else text

    def line(self, text: str = "") -> None:
        if self._bar is not None:
            self._bar.write(text, file=self.out)
        else:
            print(text, file=self.out, flush=True)

    def attach(self, bar) -> None:
        self._bar = bar

    def detach(self) -> None:
        self._bar = None

    # ------------------------------------------------------------------ content
    def heading(self, text: str) -> None:
        self.line()
        self.line(self.paint(text, BOLD))

    def alert(self, alert: dict) -> None:
        self.line(alert_line(alert, self))


def when(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso[:16]


def alert_line(alert: dict, console: Console | None = None) -> str:
    """``2025-01-07 08:00  CRITICAL  DEMOHOSP|IVIG-01  severe_neutropenia  Severe neutropenia: ...``
    (the time is the collection time of the deciding result)."""
    severity = alert.get("severity", "?")
    sev = f"{severity.upper():8}"
    if console is not None:
        sev = console.paint(sev, SEVERITY_COLOUR.get(severity, ""))
    return (f"  {when(alert.get('observed_at', ''))}  {sev}  {alert.get('patient_key', '?'):17}  "
            f"{alert.get('kind', '?'):30}  {alert.get('summary', '')}")


def patient_url(base: str, key: str) -> str:
    return f"{base}/patients/{quote(key, safe='')}"


def delivery_line(receiver: str, purpose: str, level: int, alert: dict, count: int = 1) -> str:
    """A notification the demo's receivers got after the replay (escalations, retractions)."""
    what = {"escalation": f"ESCALATION {level} (not acknowledged)", "retraction": "retraction notice"}.get(
        purpose, "notification")
    more = f" and {count - 1} more" if count > 1 else ""
    return (f"  notify → {receiver}: {what}: {alert.get('severity', '').upper()} {alert.get('kind', '')} "
            f"for {alert.get('patient_key', '')} ({when(alert.get('observed_at', ''))}){more}")
