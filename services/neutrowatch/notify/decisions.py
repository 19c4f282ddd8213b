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
    """One notification to make: an alert to a receiver for a purpose, at a level (0 = first).

    First notices carry what grouping needs (grouping.py): ``group`` is receiver and patient (the
    notices that may share one message), ``route`` the line of the route that planned it,
    ``window`` that route's group_wait (> 0: the notice waits for, and joins, a group) and
    ``critical`` (a critical notice is sent at once and takes the patient's waiting notices along)."""
    alert_id: str
    receiver: str
    purpose: str = ALERT
    level: int = 0
    due: float = 0.0
    attempt: int = 0
    first_try_at: float | None = None
    escalation: Escalation | None = None
    group: str | None = None
    route: int = 0
    window: float = 0.0
    critical: bool = False

    @property
    def key(self) -> str:
        """Identity for dedup: one notification per alert, receiver, purpose and level, ever."""
        return f"{self.alert_id}|{self.receiver}|{self.purpose}|{self.level}"

    @property
    def joinable(self) -> bool:
        """A first notice on a route with a grouping window, never tried yet: may join a group."""
        return (self.purpose == ALERT and self.level == 0 and self.group is not None and self.window > 0
                and self.attempt == 0)

    def to_dict(self) -> dict[str, Any]:
        return {"alert_id": self.alert_id, "receiver": self.receiver, "purpose": self.purpose,
                "level": self.level, "due": self.due, "attempt": self.attempt,
                "first_try_at": self.first_try_at,
                "escalation": self.escalation.to_dict() if self.escalation else None,
                "group": self.group, "route": self.route, "window": self.window, "critical": self.critical}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Job":
        return cls(d["alert_id"], d["receiver"], d["purpose"], d["level"], d["due"], d["attempt"],
                   d.get("first_try_at"), Escalation.from_dict(d.get("escalation")), d.get("group"),
                   d.get("route", 0), d.get("window", 0.0), d.get("critical", False))


# In-flight states of a delivery (a message to one receiver, about one or more alerts):
SENDING = "sending"   # handed to the receiver, no answer recorded (a crash here: maybe sent)
UNKNOWN = "unknown"   # the attempt ended without a clear answer (timeout, connection lost): maybe sent
FAILED = "failed"     # the receiver said no (HTTP/SMTP error, connection refused): not sent


@dataclass(frozen=True)
class InFlight:
    """A delivery that was started and not yet recorded as sent. Kept per job; a grouped message
    records the same delivery id and member keys for every alert in it, so a re-send after a
    crash or an unclear failure is the same message with the same id."""
    delivery_id: str
    keys: tuple[str, ...]
    state: str
    at: float

    @property
    def maybe_sent(self) -> bool:
        return self.state in (SENDING, UNKNOWN)

    def to_dict(self) -> dict[str, Any]:
        return {"delivery_id": self.delivery_id, "keys": list(self.keys), "state": self.state, "at": self.at}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "InFlight":
        return cls(d["delivery_id"], tuple(d["keys"]), d["state"], d["at"])


def alert_of(job_key: str) -> str:
    return job_key.split("|")[0]


def receiver_of(job_key: str) -> str:
    return job_key.split("|")[1]


def purpose_of(job_key: str) -> str:
    return job_key.split("|")[2]


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
    in_flight: tuple[tuple[str, InFlight], ...] = ()  # (job key, record) of deliveries not recorded as sent


# ----------------------------------------------------------------------------- planning

def plan(alert: Mapping[str, Any], routing: Routing, now: float) -> list[Job]:
    """The first notifications of an alert, due after each route's group_wait; a critical alert is
    due at once whatever the window (it is never held back to group, and it carries the
    patient's notices that are waiting in a group: grouping.py). Only a critical alert carries
    the route's escalation chain: a warning or a recovery left unacknowledged pages no one."""
    critical = alert.get("severity") == "critical"
    return [Job(alert["alert_id"], t.receiver, ALERT, 0, now if critical else now + t.group_wait_seconds,
                escalation=t.escalation if critical else None, group=f"{t.receiver}|{alert['patient_key']}", route=t.route_line,
                window=t.group_wait_seconds, critical=critical)
            for t in targets(routing, alert)]


def plan_retraction(retracted_id: str, told: Iterable[str], now: float) -> list[Job]:
    """A retraction notice to every receiver that was (or may have been) told about the alert."""
    return [Job(retracted_id, r, RETRACTION, 0, now) for r in sorted(set(told))]


def told_receivers(sent: Iterable[str], in_flight: Iterable[tuple[str, InFlight]]) -> set[str]:
    """Receivers that were told about an alert (first notice or escalation recorded as sent) or
    may have been (a delivery in flight or with an unclear end)."""
    told = {receiver_of(k) for k in sent if purpose_of(k) in (ALERT, ESCALATION)}
    return told | {receiver_of(k) for k, r in in_flight if purpose_of(k) in (ALERT, ESCALATION) and r.maybe_sent}


def retraction_gate(job: Job, state: AlertState, now: float, stale_after: float) -> Decision:
    """A retraction notice goes after the receiver's own delivery of the alert has ended (never
    before the alert it withdraws) and only to a receiver that was or may have been told."""
    mine = [r for k, r in state.in_flight
            if receiver_of(k) == job.receiver and purpose_of(k) in (ALERT, ESCALATION)]
    if any(r.state == SENDING and now - r.at < stale_after for r in mine):
        return Decision(False, "waiting_for_in_flight")
    if job.receiver in told_receivers(state.sent, ()):
        return Decision(True, "was_told")
    if any(r.maybe_sent for r in mine):
        return Decision(True, "may_have_been_told")
    return Decision(False, "not_told")


def withdrawn(receiver: str, state: AlertState, sent_in: Mapping[str, InFlight],
              retracted: Iterable[str]) -> tuple[tuple[str, ...], bool]:
    """For a retraction notice to ``receiver``: (the delivery ids of the messages that told it
    about the alert and now carry only withdrawn alerts, whether the notice itself must go too).

    Each message that told the receiver (the first notice, an escalation; delivered or maybe
    delivered) is one incident on a paging service, its delivery id the dedup key / alias
    (``sent_in``: job key -> the message it went out in). It is closed once every alert in it has
    been withdrawn. One that also carries an alert that still stands (a group), or whose delivery
    id is not known, stays open, and the receiver gets the retraction notice instead."""
    gone = set(retracted)
    told = [k for k in sorted(state.sent) if receiver_of(k) == receiver and purpose_of(k) in (ALERT, ESCALATION)]
    told += [k for k, r in state.in_flight
             if receiver_of(k) == receiver and purpose_of(k) in (ALERT, ESCALATION) and r.maybe_sent]
    closes: list[str] = []
    stays_open = False
    for key in told:
        m = sent_in.get(key)
        if m is None or not all(alert_of(k) in gone for k in m.keys):
            stays_open = True
        elif m.delivery_id not in closes:
            closes.append(m.delivery_id)
    return tuple(closes), stays_open or not closes


def next_escalation(job: Job, sent_at: float) -> Job | None:
    """After a first notification (or an escalation) was sent: the next level, if the chain has one."""
    esc = job.escalation
    if esc is None or job.purpose not in (ALERT, ESCALATION) or job.level >= esc.levels:
        return None
    level = job.level + 1
    return Job(job.alert_id, esc.receiver_at(level), ESCALATION, level, sent_at + esc.delay_seconds,
               escalation=esc)


def escalation_while_undelivered(job: Job, failed_at: float) -> Job | None:
    """The first attempt of a notice with an escalation chain failed: the next level is due the
    chain's delay after that attempt, as if the notice had been delivered then (no one has
    acknowledged it), so a receiver that is down does not hold the chain up for its retries, or
    for ever when it fails for good. Should the notice be delivered later, the next level is
    planned again, the delay after that delivery (and an escalation already sent is not repeated)."""
    return next_escalation(job, failed_at) if job.attempt == 0 else None


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


def decide(job: Job, alert: Mapping[str, Any], state: AlertState, routing: Routing, now: float,
           stale_after: float = 60.0) -> Decision:
    """The chain for a due job: lifecycle -> dedup -> silence -> inhibit (a retraction notice:
    lifecycle -> dedup -> retraction_gate). First 'no' wins; ``waiting_for_in_flight`` means
    "not yet" (the job is looked at again shortly), every other 'no' is final."""
    stages = [lifecycle(job, state), dedup(job, state)]
    if job.purpose == RETRACTION:  # a retraction notice reaches everyone who was told, unsilenced
        stages += [retraction_gate(job, state, now, stale_after)]
    else:
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
    maybe_delivered: bool = False  # the receiver may have taken the message (timeout, connection lost)

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


def in_flight_state(error: DeliveryError, earlier_maybe_sent: bool = False) -> str:
    """After a failed attempt: UNKNOWN when the receiver may have the message (this attempt or an
    earlier one: every later re-send is marked as a possible duplicate), FAILED when it said no or
    was never reached."""
    return UNKNOWN if earlier_maybe_sent or error.maybe_delivered or error.kind == "timeout" else FAILED


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
