"""The pure delivery stages: each returns a reason."""
import pytest

from neutrowatch.notify import decisions as d
from neutrowatch.notify import messages, routing

TREE = routing.parse("""\
receivers:
  mail: {type: email, to: m@x.example}
  hook: {type: webhook, url: "http://127.0.0.1:1/", secret_env: S}
  pager: {type: apprise, urls: ["json://127.0.0.1:1/"]}
fallback_receiver: mail
inhibit: {window: 6h}
route:
  receiver: mail
  routes:
    - match: {severity: critical}
      receiver: hook
      continue: true
      escalation: {receivers: [pager, mail], delay: 10m}
    - match: {severity: warning}
      receiver: mail
      group_wait: 60
""")
A = "a" * 32
T0 = 1_700_000_000.0


def alert(**kw):
    return {"alert_id": A, "patient_id": "123", "patient_key": "H|123", "kind": "grade_change",
            "severity": "warning", "observed_at": "2023-11-14T22:13:20Z", "summary": "ANC 800.",
            "evidence": {"rule": "grade_change"}, **kw}


def test_plan_applies_group_wait_and_carries_the_escalation():
    jobs = d.plan(alert(severity="critical", kind="agranulocytosis"), TREE, T0)
    assert [(j.receiver, j.due, j.escalation is not None) for j in jobs] == [("hook", T0, True)]
    [w] = d.plan(alert(), TREE, T0)
    assert (w.receiver, w.due, w.purpose, w.level) == ("mail", T0 + 60, "alert", 0)


def test_dedup_one_notification_per_alert_receiver_purpose_level():
    job = d.Job(A, "mail")
    assert d.dedup(job, d.AlertState()) == d.Decision(True, "new")
    assert d.dedup(job, d.AlertState(sent=frozenset({job.key}))) == d.Decision(False, "duplicate")
    assert d.dedup(d.Job(A, "mail", d.ESCALATION, 1), d.AlertState(sent=frozenset({job.key}))).go


def test_escalation_chain_then_stops():
    [job] = d.plan(alert(severity="critical", kind="agranulocytosis"), TREE, T0)
    e1 = d.next_escalation(job, T0 + 5)
    assert (e1.receiver, e1.level, e1.due, e1.purpose) == ("pager", 1, T0 + 605, "escalation")
    e2 = d.next_escalation(e1, T0 + 700)
    assert (e2.receiver, e2.level) == ("mail", 2)
    assert d.next_escalation(e2, T0 + 1400) is None
    assert d.next_escalation(d.Job(A, "mail"), T0) is None  # no escalation configured


def test_ack_stops_escalation_and_retraction_cancels_everything_but_the_notice():
    esc = d.Job(A, "pager", d.ESCALATION, 1)
    assert d.lifecycle(esc, d.AlertState(acked=True)) == d.Decision(False, "acknowledged")
    assert d.lifecycle(d.Job(A, "hook"), d.AlertState(acked=True)).go  # first notice still goes
    assert d.lifecycle(esc, d.AlertState(retracted=True)) == d.Decision(False, "retracted")
    assert d.lifecycle(d.Job(A, "hook", d.RETRACTION), d.AlertState(retracted=True)).go


def test_retraction_notifies_each_receiver_that_was_told_once():
    jobs = d.plan_retraction(A, ["hook", "pager", "hook"], T0)
    assert [(j.receiver, j.purpose) for j in jobs] == [("hook", "retraction"), ("pager", "retraction")]


def test_silence_matches_and_expires():
    s = d.Silence("s1", (("patient_key", frozenset({"H|123"})),), ends_at=T0 + 100, starts_at=T0)
    assert d.silenced(alert(), [s], T0 + 1) == d.Decision(False, "silenced", "s1")
    assert d.silenced(alert(), [s], T0 + 100).go
    assert d.silenced(alert(patient_key="H|9"), [s], T0 + 1).go


def test_inhibition_same_episode_or_window():
    crit = d.Critical("c" * 32, d.parse_time("2023-11-14T20:00:00Z"))
    assert d.inhibited(alert(), [crit], 6 * 3600) == d.Decision(False, "inhibited_by_critical", "c" * 32)
    assert d.inhibited(alert(), [crit], 3600).go  # outside the window
    assert d.inhibited(alert(severity="critical"), [crit], 6 * 3600).go  # criticals are never inhibited
    # a pattern finding says what the critical cannot: never hidden by it
    assert d.inhibited(alert(kind="post_ivig_neutropenia_pattern"), [crit], 6 * 3600).go
    ep = {"rule": "x", "episode_start": {"observation_id": "o1"}}
    other = d.Critical("c" * 32, crit.observed_at, "o2")
    assert d.inhibited(alert(evidence=ep), [other], 6 * 3600).go  # a different episode
    assert not d.inhibited(alert(evidence=ep), [d.Critical("c" * 32, 0, "o1")], 60).go


def test_decide_runs_the_chain_in_order():
    job = d.Job(A, "mail")
    s = d.Silence("s1", (("severity", frozenset({"warning"})),), ends_at=T0 + 100)
    state = d.AlertState(silences=(s,), criticals=(d.Critical("c" * 32, d.parse_time(alert()["observed_at"])),))
    assert d.decide(job, alert(), state, TREE, T0).reason == "silenced"
    assert d.decide(job, alert(), d.AlertState(criticals=state.criticals), TREE, T0).reason == "inhibited_by_critical"
    assert d.decide(job, alert(), d.AlertState(sent=frozenset({job.key}), silences=(s,)), TREE, T0).reason == "duplicate"
    assert d.decide(job, alert(), d.AlertState(), TREE, T0) == d.Decision(True, "deliver")
    retr = d.Job(A, "mail", d.RETRACTION)
    told = frozenset({d.Job(A, "mail").key})
    assert d.decide(retr, alert(), d.AlertState(sent=told, retracted=True, silences=(s,)), TREE, T0).go


@pytest.mark.parametrize("error, retry, reason", [
    (d.DeliveryError("connection"), True, "connection"),
    (d.DeliveryError("timeout"), True, "timeout"),
    (d.DeliveryError("http", 503), True, "http_503"),
    (d.DeliveryError("http", 429), True, "http_429"),
    (d.DeliveryError("http", 400), False, "http_400"),
    (d.DeliveryError("http", 401), False, "http_401"),
    (d.DeliveryError("smtp", 451), True, "smtp_451"),
    (d.DeliveryError("smtp", 550), False, "smtp_550"),
    (d.DeliveryError("config"), False, "config"),
])
def test_only_recoverable_errors_are_retried(error, retry, reason):
    assert d.classify(error) == d.Decision(retry, reason)


def test_retry_backs_off_then_gives_up_to_the_fallback():
    job = d.Job(A, "hook", due=T0)
    r1 = d.retry(job, T0, 2, 10, 60)
    r2 = d.retry(r1, T0 + 2, 2, 10, 60)
    r4 = d.retry(d.retry(r2, T0 + 6, 2, 10, 60), T0 + 14, 2, 10, 60)
    assert (r1.due, r2.due, r4.due, r4.attempt) == (T0 + 2, T0 + 6, T0 + 24, 4)
    assert d.retry(r4, T0 + 60, 2, 10, 60) is None
    fb = d.fallback(r4, TREE, T0 + 60)
    assert (fb.receiver, fb.attempt, fb.purpose) == ("mail", 0, "alert")
    assert d.fallback(d.Job(A, "mail"), TREE, T0) is None


def test_job_round_trips():
    [job] = d.plan(alert(severity="critical", kind="agranulocytosis"), TREE, T0)
    assert d.Job.from_dict(job.to_dict()) == job


def test_ack_token_signed_and_expiring():
    tok = messages.sign_ack(b"k", A, "hook", T0 + 10)
    assert messages.verify_ack(b"k", tok, T0) == (A, "hook")
    for secret, now, why in ((b"other", T0, "bad_signature"), (b"k", T0 + 10, "expired")):
        with pytest.raises(messages.InvalidToken, match=why):
            messages.verify_ack(secret, tok, now)
    with pytest.raises(messages.InvalidToken, match="malformed"):
        messages.verify_ack(b"k", "garbage", T0)


def test_webhook_signature_is_hmac_of_timestamp_dot_body():
    import hashlib, hmac
    sig = messages.webhook_signature(b"s", "1700000000", b'{"a":1}')
    assert sig == "sha256=" + hmac.new(b"s", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()


def test_message_carries_summary_severity_kind_time_and_links():
    m = messages.render(alert(severity="critical", kind="agranulocytosis"), d.Job(A, "hook"),
                        "https://nw.example/", "TOKEN")
    for part in ("ANC 800.", "critical", "agranulocytosis", "2023-11-14T22:13:20Z",
                 f"https://nw.example/alerts/{A}", "https://nw.example/ack?token=TOKEN"):
        assert part in m.text
    assert m.payload["ack_url"] == "https://nw.example/ack?token=TOKEN"
    retr = messages.render(alert(), d.Job(A, "hook", d.RETRACTION), "https://nw.example", "TOKEN")
    assert "RETRACTED" in retr.subject and "ack?token" not in retr.text


def test_only_a_critical_alert_carries_the_routes_escalation_chain():
    tree = routing.parse("""\
receivers:
  mail: {type: email, to: m@x.example}
  pager: {type: apprise, urls: ["json://127.0.0.1:1/"]}
route:
  receiver: mail
  escalation: {receivers: [pager], delay: 30m}
""")
    for severity, kind in (("info", "recovery"), ("warning", "chronic_neutropenia"), ("info", "grade_change")):
        [job] = d.plan(alert(severity=severity, kind=kind), tree, T0)
        assert job.escalation is None and d.next_escalation(job, T0) is None, kind
    [crit] = d.plan(alert(severity="critical", kind="febrile_neutropenia"), tree, T0)
    assert d.next_escalation(crit, T0).receiver == "pager"


def test_a_failed_first_attempt_starts_the_escalation_chain_once():
    [job] = d.plan(alert(severity="critical", kind="agranulocytosis"), TREE, T0)
    e1 = d.escalation_while_undelivered(job, T0 + 1)
    assert (e1.receiver, e1.level, e1.due) == ("pager", 1, T0 + 601)
    assert d.escalation_while_undelivered(d.retry(job, T0 + 1, 2, 10, 60), T0 + 3) is None  # retries: already planned
    assert d.escalation_while_undelivered(d.Job(A, "mail"), T0) is None  # no chain


def test_a_retraction_closes_the_receivers_messages_that_carry_only_withdrawn_alerts():
    """What a paging service's incidents are: one per message, keyed by its delivery id. A
    retraction closes those that told this receiver about the alert once every alert in them is
    withdrawn; a message that also carries a standing alert stays open and the notice goes too."""
    x, y = "1" * 32, "2" * 32
    first, esc, other, mail = f"{x}|pager|alert|0", f"{x}|pager|escalation|1", f"{y}|pager|alert|0", f"{x}|mail|alert|0"

    def msg(did, *keys, state=d.SENDING):
        return d.InFlight(did, tuple(sorted(keys)), state, T0)

    told = d.AlertState(sent=frozenset({first, esc, mail}))
    sent_in = {first: msg("D0", first), esc: msg("D1", esc), mail: msg("DM", mail)}
    assert d.withdrawn("pager", told, sent_in, {x}) == (("D0", "D1"), False)
    sent_in[first] = msg("G", first, other)  # the first notice went in a group with y's
    assert d.withdrawn("pager", told, sent_in, {x}) == (("D1",), True)  # y still stands
    assert d.withdrawn("pager", told, sent_in, {x, y}) == (("G", "D1"), False)
    # a delivery that may have arrived counts, one the receiver refused does not
    flying = d.AlertState(in_flight=((first, msg("D0", first, state=d.UNKNOWN)), (esc, msg("D1", esc, state=d.FAILED))))
    assert d.withdrawn("pager", flying, {first: msg("D0", first), esc: msg("D1", esc)}, {x}) == (("D0",), False)
    # a message whose delivery id is not known (sent before it was kept): the notice instead
    assert d.withdrawn("pager", d.AlertState(sent=frozenset({first})), {}, {x}) == ((), True)
