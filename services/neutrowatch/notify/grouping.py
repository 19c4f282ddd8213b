"""Which due notifications go out together as one message. Pure.

A route with a grouping window (``group_wait: 30s``) holds a patient's first notices to a
receiver: the first one waits for the window, and every notice for the same patient, receiver and
route that arrives before it is sent goes in the same message (one message listing every alert,
each with its own ack link). A critical alert is never held: it is due at once and carries every
notice of the patient to that receiver that is waiting in a group (on any route), so nothing
waits longer than its window and a critical reaches the receiver without delay.

Escalations, retraction notices, retries and fallbacks go alone; deliveries in flight are
re-sent exactly as they were first sent (the service handles those before calling ``units``).
"""
from __future__ import annotations

from typing import Sequence

from neutrowatch.notify.decisions import ALERT, Job


def leads_a_group(job: Job) -> bool:
    """A due job that takes waiting notices along: a first notice that is critical or joinable."""
    return job.purpose == ALERT and job.level == 0 and job.group is not None and job.attempt == 0 \
        and (job.critical or job.window > 0)


def joins(lead: Job, other: Job) -> bool:
    """``other`` goes in ``lead``'s message: same receiver and patient, waiting in a group, and on
    the lead's route unless the lead is critical (a critical takes all the patient's notices)."""
    return (other.key != lead.key and other.joinable and other.group == lead.group
            and other.receiver == lead.receiver and (lead.critical or other.route == lead.route))


def units(due: Sequence[Job], waiting: Sequence[Job]) -> tuple[list[list[Job]], list[Job]]:
    """(messages, each a list of jobs with the lead first; the waiting jobs no message took).

    ``due``: jobs that fell due (none in flight); ``waiting``: joinable jobs of the same groups
    that are not due yet. Criticals lead first, then the earliest due."""
    used: set[str] = set()
    messages: list[list[Job]] = []
    order = sorted(due, key=lambda j: (not j.critical, j.due))
    pool = [*order, *waiting]
    for lead in order:
        if lead.key in used:
            continue
        used.add(lead.key)
        message = [lead]
        if leads_a_group(lead):
            for other in pool:
                if other.key not in used and joins(lead, other):
                    message.append(other)
                    used.add(other.key)
        messages.append(message)
    return messages, [j for j in waiting if j.key not in used]
