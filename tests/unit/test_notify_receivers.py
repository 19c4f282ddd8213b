"""Receiver adapters without a network: apprise services stood in for by apprise's own custom
notification decorator (a `nwtest-*://` URL calls a function here)."""
import asyncio

import apprise
import pytest
from apprise.decorators import notify

from neutrowatch.notify import decisions as d
from neutrowatch.notify import messages
from neutrowatch.notify.receivers import AppriseSender

CALLS: list[tuple[str, str, str]] = []  # (url, notify type, title)
DOWN: set[str] = set()


@notify(on="nwtestpager")
def _pager(body, title, notify_type, *args, meta=None, **kwargs):
    url = meta["url"]
    CALLS.append((url.split("?")[0], str(notify_type.value if hasattr(notify_type, "value") else notify_type), title))
    return url.split("?")[0] not in DOWN


@pytest.fixture(autouse=True)
def _reset():
    CALLS.clear()
    DOWN.clear()


def alert(severity="critical", kind="agranulocytosis", n=1):
    return {"alert_id": f"{n:032x}", "patient_id": "123", "patient_key": "H|123", "kind": kind,
            "severity": severity, "observed_at": "2023-11-14T22:00:00Z", "summary": f"{kind}.",
            "evidence": {"rule": kind}, "anc_cells_per_ul": 50.0}


def message(a, purpose=d.ALERT, level=0):
    job = d.Job(a["alert_id"], "pager", purpose, level)
    return messages.render_unit([(a, job, None if purpose == d.RETRACTION else "TOK")], "https://nw.example",
                                messages.delivery_id(job))


def send(sender, m):
    asyncio.run(sender.send(m))


def test_a_critical_reaches_paging_services_as_critical_and_a_retraction_or_recovery_as_information():
    """Apprise maps its notification type to PagerDuty's severity (info/warning/critical) and to
    Opsgenie's action; PagerDuty decides from the severity whether to phone the on-call at night.
    Everything went as 'info' before: a critical agranulocytosis could stay a low-urgency incident."""
    sender = AppriseSender(["nwtestpager://a"], 5)
    send(sender, message(alert()))
    send(sender, message(alert(), d.ESCALATION, 1))
    send(sender, message(alert("warning", "chronic_neutropenia", 2)))
    send(sender, message(alert("info", "recovery", 3)))
    send(sender, message(alert(), d.RETRACTION))
    assert [c[1] for c in CALLS] == [apprise.NotifyType.FAILURE.value, apprise.NotifyType.FAILURE.value,
                                     apprise.NotifyType.WARNING.value, apprise.NotifyType.INFO.value,
                                     apprise.NotifyType.INFO.value]
    assert CALLS[-1][2].startswith("[NeutroWatch] RETRACTED")


def test_a_retry_after_one_service_failed_goes_only_to_the_services_that_did_not_get_it():
    """One apprise receiver with two services: the chat took the critical, the pager is down. The
    retries (every few seconds to minutes for up to an hour) must not post it to the chat again
    each time."""
    sender = AppriseSender(["nwtestpager://chat", "nwtestpager://pager"], 5)
    DOWN.add("nwtestpager://pager")
    m = message(alert())
    for _ in range(3):
        with pytest.raises(d.DeliveryError) as err:
            send(sender, m)
        assert d.classify(err.value).go  # retried
    DOWN.clear()
    send(sender, m)
    urls = [c[0] for c in CALLS]
    assert urls.count("nwtestpager://chat") == 1 and urls.count("nwtestpager://pager") == 4
    send(sender, message(alert(n=2)))  # the next message goes to both again
    assert [c[0] for c in CALLS[-2:]] == ["nwtestpager://chat", "nwtestpager://pager"]


def test_only_services_keyed_by_notifys_delivery_id_have_incidents_a_retraction_closes():
    """A URL that sets its own dedup key / alias puts every message in one incident: withdrawing
    one alert must not close it. Services without a key (chat) only ever get the notice."""
    from neutrowatch.notify.receivers import closes_incidents
    assert closes_incidents("pagerduty://ik@ak/?region=eu") and closes_incidents("opsgenie://apikey/@team")
    assert not closes_incidents("pagerduty://ik@ak/?dedup=ward-7") and not closes_incidents("opsgenie://k?alias=x")
    assert not closes_incidents("slack://T1/B1/C1") and not closes_incidents("nwtestpager://a")
