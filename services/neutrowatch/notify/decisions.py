"""The delivery stages as pure functions: each returns a Decision with a reason code that appears
in the log, the metrics and the audit record. Time is always passed in (epoch seconds)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Iterable, Mapping

from neutrowatch.notify.routing import Escalation, Routing, matches, targets

ALERT, ESCALATION, RETRACTION = "alert", "escalation", "retraction"


@dataclass(frozen=True)
class Decision:
    go: bool
    reason: str
    detail: str | None = None  # e.g. the silence id


@dataclass(frozen=True)
class Job:
    """One notification to make: an alert to a receiver for a purpose, at a level (0 = first)."""
    alert_id: str
    receiver: str
    purpose: str = ALERT
    level: int = 0
    due: float = 0.0
    attempt: int = 0
    first_try_at: float | None = None
    escalation: Escalation | None = None

    @property
    def key(self) -> str:
        """Identity for dedup: one notification per alert, receiver, purpose and level, ever."""
        return f"{self.alert_id}|{self.receiver}|{self.purpose}|{self.level}"

    def to_dict(self) -> dict[str, Any]:
        return {"alert_id": self.alert_id, "receiver": self.receiver, "purpose": self.purpose,
                "level": self.level, "due": self.due, "attempt": self.attempt,
                "first_try_at": self.first_try_at,
                "escalation": self.escalation.to_dict() if self.escalation else None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Job":
        return cls(d["alert_id"], d["receiver"], d["purpose"], d["level"], d["due"], d["attempt"],
                   d.get("first_try_at"), Escalation.from_dict(d.get("escalation")))


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[tuple[str, frozenset[str]], ...]
    ends_at: float
    starts_at: float = 0.0
    created_by: str = ""
    comment: str = ""

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at


@dataclass(frozen=True)
class Critical:
    """A critical alert already seen for the patient (inhibition source)."""
    alert_id: str
    observed_at: float
    episode: str | None = None


@dataclass(frozen=True)
class AlertState:
    """What the store knows about one alert when a job falls due."""
    sent: frozenset[str] = frozenset()  # job keys delivered
    acked: bool = False
    retracted: bool = False
    criticals: tuple[Critical, ...] = ()
    silences: tuple[Silence, ...] = field(default=())


# ----------------------------------------------------------------------------- planning

def plan(alert: Mapping[str, Any], routing: Routing, now: float) -> list[Job]:
    """The first notifications of an alert, due after each route's group_wait."""
    return [Job(alert["alert_id"], t.receiver, ALERT, 0, now + t.group_wait_seconds, escalation=t.escalation)
            for t in targets(routing, alert)]


def plan_retraction(retracted_id: str, told: Iterable[str], now: float) -> list[Job]:
    """A retraction notice to every receiver that was told about the retracted alert."""
    return [Job(retracted_id, r, RETRACTION, 0, now) for r in sorted(set(told))]


def next_escalation(job: Job, sent_at: float) -> Job | None:
    """After a first notification (or an escalation) was sent: the next level, if the chain has one."""
    esc = job.escalation
    if esc is None or job.purpose not in (ALERT, ESCALATION) or job.level >= esc.levels:
        return None
    level = job.level + 1
    return Job(job.alert_id, esc.receiver_at(level), ESCALATION, level, sent_at + esc.delay_seconds,
               escalation=esc)


# ----------------------------------------------------------------------------- stages

def dedup(job: Job, state: AlertState) -> Decision:
    return Decision(False, "duplicate") if job.key in state.sent else Decision(True, "new")


def lifecycle(job: Job, state: AlertState) -> Decision:
    """Retraction cancels what is pending; an acknowledgement stops escalation."""
    if job.purpose == RETRACTION:
        return Decision(True, "retraction_notice")
    if state.retracted:
        return Decision(False, "retracted")
    if job.purpose == ESCALATION and state.acked:
        return Decision(False, "acknowledged")
    return Decision(True, "due")


def silenced(alert: Mapping[str, Any], silences: Iterable[Silence], now: float) -> Decision:
    for s in silences:
        if s.active(now) and matches(s.matchers, alert):
            return Decision(False, "silenced", s.id)
    return Decision(True, "not_silenced")


# Warnings that only restate a count the critical already reported. Pattern findings (post-IVIG,
# cyclic, chronic, drug-associated, missing baseline) add what the critical cannot say, so a
# critical never hides them.
EPISODE_WARNINGS = frozenset({"grade_change", "rapid_decline"})


def inhibited(alert: Mapping[str, Any], criticals: Iterable[Critical], window_seconds: float) -> Decision:
    """A critical alert for the patient suppresses that patient's count-level warnings of the same
    episode (same episode id when both have one, else observed within the window of each other)."""
    if alert.get("severity") != "warning" or alert.get("kind") not in EPISODE_WARNINGS:
        return Decision(True, "not_inhibited")
    t, episode = observed_epoch(alert), episode_of(alert)
    for c in criticals:
        if c.alert_id == alert.get("alert_id"):
            continue
        same = (episode == c.episode) if episode and c.episode else abs(t - c.observed_at) <= window_seconds
        if same:
            return Decision(False, "inhibited_by_critical", c.alert_id)
    return Decision(True, "not_inhibited")


def decide(job: Job, alert: Mapping[str, Any], state: AlertState, routing: Routing, now: float) -> Decision:
    """The chain for a due job: lifecycle -> dedup -> silence -> inhibit. First 'no' wins."""
    stages = [lifecycle(job, state), dedup(job, state)]
    if job.purpose != RETRACTION:  # a retraction notice always reaches those who were told
        stages += [silenced(alert, state.silences, now)]
        if job.purpose == ALERT:
            stages += [inhibited(alert, state.criticals, routing.inhibit_window_seconds)]
    return next((d for d in stages if not d.go), Decision(True, "deliver"))


# ----------------------------------------------------------------------------- retries

@dataclass(frozen=True)
class DeliveryError(Exception):
    """What a receiver adapter reports: ``kind`` connection | timeout | http | smtp | config | rejected."""
    kind: str
    code: int | None = None
    text: str = ""

    def __str__(self) -> str:
        return f"{self.kind}{'' if self.code is None else ' ' + str(self.code)}: {self.text}"


def classify(error: DeliveryError) -> Decision:
    """go=True: recoverable (retry). Only transient conditions are retried."""
    reason = error.kind if error.code is None else f"{error.kind}_{error.code}"
    if error.kind in ("connection", "timeout"):
        return Decision(True, reason)
    if error.kind == "http" and error.code is not None:
        return Decision(error.code >= 500 or error.code in (408, 425, 429), reason)
    if error.kind == "smtp" and error.code is not None:
        return Decision(400 <= error.code < 500, reason)
    if error.kind == "unavailable":  # e.g. apprise: a notifier said no without a code
        return Decision(True, reason)
    return Decision(False, reason)


def retry(job: Job, now: float, initial: float, maximum: float, give_up_after: float) -> Job | None:
    """The job again after exponential back-off, or None once it has been failing too long."""
    first = job.first_try_at if job.first_try_at is not None else now
    if now - first >= give_up_after:
        return None
    delay = min(maximum, initial * (2 ** job.attempt))
    return replace(job, attempt=job.attempt + 1, due=now + delay, first_try_at=first)


def fallback(job: Job, routing: Routing, now: float) -> Job | None:
    """Failed for good: the fallback receiver is told instead (never a fallback of the fallback)."""
    fb = routing.fallback_receiver
    if fb is None or fb == job.receiver:
        return None
    return Job(job.alert_id, fb, job.purpose, job.level, now)


# ----------------------------------------------------------------------------- alert facts

def observed_epoch(alert: Mapping[str, Any]) -> float:
    return parse_time(alert["observed_at"])


def parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def episode_of(alert: Mapping[str, Any]) -> str | None:
    start = (alert.get("evidence") or {}).get("episode_start")
    return start.get("observation_id") if isinstance(start, Mapping) else None
