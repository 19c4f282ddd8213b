"""Grouping (which due notices share one message), retraction notices racing a delivery in
flight, re-sends after an unclear end, and what a grouped message says. All pure."""
from neutrowatch.notify import decisions as d
from neutrowatch.notify import grouping, messages, routing
from neutrowatch.notify.receivers import with_dedup_key

TREE = routing.parse("""\
receivers:
  mail: {type: email, to: m@x.example}
  hook: {type: webhook, url: "http://127.0.0.1:1/", secret_env: S}
route:
  receiver: mail
  routes:
    - match: {severity: critical}
      receiver: hook
      continue: true
    - match: {severity: critical}
      receiver: mail
      group_wait: 30s
    - match: {kind: [grade_change, rapid_decline]}
      receiver: mail
      group_wait: 30s
    - match: {kind: post_ivig_neutropenia_pattern}
      receiver: mail
      group_wait: 2m
""")
T0 = 1_700_000_000.0


def alert(n: int, kind="grade_change", severity="warning", patient="123"):
    return {"alert_id": f"{n:032x}", "patient_id": patient, "patient_key": f"H|{patient}", "kind": kind,
            "severity": severity, "observed_at": f"2023-11-14T22:{n:02d}:00Z", "summary": f"Alert {n}.",
            "evidence": {"rule": kind}}


def first(a, at=T0, receiver="mail"):
    return next(j for j in d.plan(a, TREE, at) if j.receiver == receiver)


def keys(unit):
    return [j.alert_id[-1] for j in unit]


def test_plan_marks_grouped_notices_and_never_holds_a_critical():
    w = first(alert(1))
    assert (w.due, w.group, w.window, w.critical, w.joinable) == (T0 + 30, "mail|H|123", 30.0, False, True)
    c = first(alert(2, "agranulocytosis", "critical"))
    assert (c.due, c.window, c.critical) == (T0, 30.0, True)  # due at once despite the 30 s window
    h = first(alert(3, "agranulocytosis", "critical"), receiver="hook")
    assert (h.due, h.window, h.joinable) == (T0, 0.0, False)  # no window on this route: never joins
    info = first(alert(4, "missing_baseline", "info"))
    assert (info.due, info.joinable) == (T0, False)
    assert d.Job.from_dict(w.to_dict()) == w
    old = {k: v for k, v in w.to_dict().items() if k not in ("group", "route", "window", "critical")}
    assert d.Job.from_dict(old).group is None  # jobs stored before grouping still load


def test_notices_of_one_patient_and_route_within_the_window_are_one_message():
    a1, a2, a3 = first(alert(1)), first(alert(2, "rapid_decline"), T0 + 10), first(alert(3), T0 + 29)
    other_patient = first(alert(4, patient="999"), T0 + 5)
    other_route = first(alert(5, "post_ivig_neutropenia_pattern"), T0 + 5)
    units, unused = grouping.units([a1], [a2, a3, other_route])
    assert [keys(u) for u in units] == [["1", "2", "3"]] and unused == [other_route]
    assert not grouping.joins(a1, other_patient)


def test_a_critical_goes_at_once_and_takes_the_patients_waiting_notices_along():
    w1, w2 = first(alert(1)), first(alert(2, "post_ivig_neutropenia_pattern"))
    crit = first(alert(3, "agranulocytosis", "critical"), T0 + 3)
    other = first(alert(4, patient="999"))
    units, unused = grouping.units([crit], [w1, w2])
    assert [keys(u) for u in units] == [["3", "1", "2"]] and unused == []  # any route of the patient
    assert not grouping.joins(crit, other)
    hook_crit = first(alert(5, "agranulocytosis", "critical"), receiver="hook")
    assert grouping.units([hook_crit], [w1])[0] == [[hook_crit]]  # another receiver's notices stay


def test_escalations_notices_and_retries_go_alone():
    w1, w2, w3 = first(alert(1)), first(alert(2)), first(alert(3))
    esc = d.Job(w1.alert_id, "mail", d.ESCALATION, 1, group=w1.group)
    retried = d.Job(w2.alert_id, "mail", attempt=1, group=w2.group, window=30.0)
    units, unused = grouping.units([esc, retried], [w3])
    assert [keys(u) for u in units] == [["1"], ["2"]] and unused == [w3]
    assert grouping.units([w1], [retried])[0] == [[w1]]  # a retried notice joins no new message
    assert not retried.joinable and not grouping.leads_a_group(esc)


def test_due_together_in_one_claim_share_one_message_criticals_lead():
    w1, w2 = first(alert(1)), first(alert(2), T0 + 1)
    crit = first(alert(3, "agranulocytosis", "critical"), T0 + 31)
    units, _ = grouping.units([w1, w2, crit], [])
    assert [keys(u) for u in units] == [["3", "1", "2"]]


def flight(state, at=T0):
    return d.InFlight("f" * 32, ("k",), state, at)


def test_a_retraction_notice_waits_for_the_alerts_own_delivery_then_goes_to_whoever_may_know():
    a = alert(1)
    notice = d.Job(a["alert_id"], "hook", d.RETRACTION)
    key = d.Job(a["alert_id"], "hook").key
    sending = d.AlertState(retracted=True, in_flight=((key, flight(d.SENDING)),))
    assert d.decide(notice, a, sending, TREE, T0 + 1, 30).reason == "waiting_for_in_flight"
    assert d.decide(notice, a, sending, TREE, T0 + 31, 30).reason == "deliver"  # its sender died
    unknown = d.AlertState(retracted=True, in_flight=((key, flight(d.UNKNOWN)),))
    assert d.retraction_gate(notice, unknown, T0, 30) == d.Decision(True, "may_have_been_told")
    told = d.AlertState(retracted=True, sent=frozenset({key}))
    assert d.retraction_gate(notice, told, T0, 30) == d.Decision(True, "was_told")
    refused = d.AlertState(retracted=True, in_flight=((key, flight(d.FAILED)),))
    assert d.decide(notice, a, refused, TREE, T0, 30).reason == "not_told"
    assert d.decide(notice, a, d.AlertState(retracted=True), TREE, T0, 30).reason == "not_told"
    # another receiver's delivery in flight does not hold this notice
    other = d.AlertState(retracted=True, sent=frozenset({key}),
                         in_flight=((d.Job(a["alert_id"], "mail").key, flight(d.SENDING)),))
    assert d.retraction_gate(notice, other, T0, 30).go


def test_whom_a_retraction_tells():
    a = "a" * 32
    sent = {f"{a}|mail|alert|0", f"{a}|pager|escalation|1", f"{a}|x|retraction|0"}
    flying = [(f"{a}|hook|alert|0", flight(d.SENDING)), (f"{a}|chat|alert|0", flight(d.UNKNOWN)),
              (f"{a}|sms|alert|0", flight(d.FAILED))]
    assert d.told_receivers(sent, flying) == {"mail", "pager", "hook", "chat"}
    assert d.plan_retraction(a, d.told_receivers(sent, flying), T0)[0].purpose == d.RETRACTION


def test_an_unclear_end_makes_every_later_resend_a_possible_duplicate():
    assert d.in_flight_state(d.DeliveryError("timeout")) == d.UNKNOWN
    assert d.in_flight_state(d.DeliveryError("connection", maybe_delivered=True)) == d.UNKNOWN
    assert d.in_flight_state(d.DeliveryError("connection")) == d.FAILED
    assert d.in_flight_state(d.DeliveryError("http", 503)) == d.FAILED
    assert d.in_flight_state(d.DeliveryError("http", 503), earlier_maybe_sent=True) == d.UNKNOWN
    assert flight(d.SENDING).maybe_sent and not flight(d.FAILED).maybe_sent


def test_a_grouped_message_lists_every_alert_each_with_its_own_ack_link():
    w, c = alert(1), alert(2, "agranulocytosis", "critical")
    items = [(w, first(w), "TOK1"), (c, first(c), "TOK2")]
    keys_ = [j.key for _, j, _ in items]
    m = messages.render_unit(items, "https://nw.example", messages.unit_delivery_id(keys_))
    assert "2 alerts for 123" in m.subject and m.subject.index("CRITICAL") < m.subject.index("grade change")
    for part in ("Alert 1.", "Alert 2.", "ack?token=TOK1", "ack?token=TOK2", f"/alerts/{w['alert_id']}",
                 f"/alerts/{c['alert_id']}"):
        assert part in m.text
    assert [e["alert_id"] for e in m.payload["alerts"]] == [c["alert_id"], w["alert_id"]]
    assert m.payload["alerts"][1]["ack_url"].endswith("TOK1") and m.payload["count"] == 2
    assert m.payload["alert"] == c and m.payload["redelivery"] is False
    assert messages.unit_delivery_id(keys_) == messages.unit_delivery_id(list(reversed(keys_)))
    single = messages.render_unit(items[:1], "https://nw.example", messages.unit_delivery_id(keys_[:1]))
    assert single.payload["delivery_id"] == messages.delivery_id(items[0][1])  # unchanged for one alert
    again = messages.render_unit(items, "https://nw.example", "D", redelivery=True)
    assert again.subject.startswith("(possible duplicate)") and again.text.startswith("Possible duplicate")
    assert again.payload["redelivery"] is True and again.payload["delivery_id"] == "D"


def test_apprise_services_with_an_idempotency_key_get_the_delivery_id():
    assert with_dedup_key("pagerduty://ik@ak/src?region=eu", "D1").endswith("?region=eu&dedup=D1")
    assert with_dedup_key("opsgenie://apikey/@team", "D1").endswith("?alias=D1")
    assert with_dedup_key("pagerduty://ik@ak/?dedup=mine", "D1").endswith("?dedup=mine")
    assert with_dedup_key("ntfy://topic", "D1") == "ntfy://topic"
