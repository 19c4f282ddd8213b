"""Routing tree: matching with continue semantics, inheritance, and load-time validation with lines."""
from pathlib import Path

import pytest

from neutrowatch.notify import routing
from neutrowatch.notify.routing import RoutingError

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "routing.example.yaml"

TREE = """\
receivers:
  a: {type: email, to: a@x.example}
  b: {type: webhook, url: "http://127.0.0.1:1/h", secret_env: S}
  c: {type: apprise, urls: ["json://127.0.0.1:1/"]}
fallback_receiver: a
route:
  receiver: a
  group_wait: 5
  escalation: {receivers: [c]}
  routes:
    - match: {severity: critical}
      receiver: b
      continue: true
      escalation: {receivers: [c, a], delay: 2m, max_repeats: 2}
    - match: {severity: [critical, warning], kind: febrile_neutropenia}
      receiver: c
    - match: {patient_key: ["H|1", "H|2"]}
      receiver: b
      group_wait: 0
    - match: {ward: ONC-4}
      receiver: c
"""


def alert(**kw):
    return {"alert_id": "0" * 32, "kind": "grade_change", "severity": "info", "patient_key": "H|9", **kw}


def names(r, a):
    return [t.receiver for t in routing.targets(r, a)]


def test_default_route_when_nothing_matches():
    r = routing.parse(TREE)
    [t] = routing.targets(r, alert())
    assert (t.receiver, t.group_wait_seconds, t.escalation.receivers) == ("a", 5.0, ("c",))


def test_continue_lets_later_siblings_match_and_first_non_continue_stops():
    r = routing.parse(TREE)
    assert names(r, alert(severity="critical", kind="febrile_neutropenia")) == ["b", "c"]
    assert names(r, alert(severity="critical")) == ["b"]  # b matched (continue), nothing else, no default
    assert names(r, alert(severity="warning", kind="febrile_neutropenia", patient_key="H|1")) == ["c"]


def test_children_inherit_and_override():
    r = routing.parse(TREE)
    [t] = routing.targets(r, alert(patient_key="H|2"))
    assert (t.receiver, t.group_wait_seconds, t.escalation.receivers) == ("b", 0.0, ("c",))
    crit = routing.targets(r, alert(severity="critical"))[0]
    assert crit.escalation == routing.Escalation(("c", "a"), 120.0, 2)
    assert crit.escalation.levels == 6 and crit.escalation.receiver_at(3) == "c"


def test_location_matchers_only_match_alerts_that_carry_a_location():
    r = routing.parse(TREE)
    assert names(r, alert(location={"ward": "ONC-4"})) == ["c"]
    assert names(r, alert(evidence={"location": {"ward": "ONC-4"}})) == ["c"]
    assert names(r, alert()) == ["a"]


def test_escalation_delay_defaults_to_30_minutes():
    r = routing.parse(TREE)
    assert r.route.escalation.delay_seconds == 1800 and r.fallback_receiver == "a"


def test_example_file_loads():
    r = routing.load(EXAMPLE)
    assert names(r, alert(severity="critical", kind="agranulocytosis")) == ["ward-board", "haem-oncall-email"]


@pytest.mark.parametrize("text, line, problem", [
    ("receivers:\n  a: {type: email, to: a@x.example}\nroute:\n  receiver: nobody\n", 4, "unknown receiver 'nobody'"),
    ("receivers:\n  a: {type: email, to: a@x.example}\nroute:\n  receiver: a\n  routes:\n"
     "    - match: {severity: urgent}\n      receiver: a\n", 6, "'urgent' is not info, warning or critical"),
    ("receivers:\n  a: {type: email, to: a@x.example}\nroute:\n  receiver: a\n  routes:\n"
     "    - match: {colour: red}\n      receiver: a\n", 6, "unknown key 'colour'"),
    ("receivers:\n  a: {type: email, to: a@x.example}\nroute:\n  receiver: a\n  routes:\n"
     "    - match: {kind: [agranulocytosis, febrile_neutropaenia]}\n      receiver: a\n", 6,
     "'febrile_neutropaenia' is not an alert kind"),
    ("receivers:\n  a: {type: email, to: a@x.example}\nroute:\n  receiver: a\n  routes:\n"
     "    - match: {kind: alert_retracted}\n      receiver: a\n", 6, "retraction notices go to the receivers"),
    ("receivers:\n  a: {type: fax, to: a@x.example}\nroute:\n  receiver: a\n", 2, "unknown type 'fax'"),
    ("receivers:\n  a: {type: webhook, url: 'http://h/'}\nroute:\n  receiver: a\n", 2,
     "exactly one of 'secret_env' or 'secret_file'"),
    ("receivers:\n  a: {type: email, to: nope}\nroute:\n  receiver: a\n", 2, "'nope' is not an email address"),
    ("receivers:\n  a: {type: email, to: a@x.example}\nroute:\n  receiver: a\n  escalation:\n"
     "    receivers: [a]\n    delay: soon\n", 7, "must be a duration"),
    ("receivers:\n  a: {type: email, to: a@x.example}\nroute:\n  receiver: a\n  routes:\n"
     "    - receiver: a\n", 6, "needs 'match'"),
    ("receivers:\n  a: {type: email, to: a@x.example\nroute:\n", 3, "not valid YAML"),
    ("route:\n  receiver: a\n", 1, "missing 'receivers'"),
    ("", 0, "empty"),
])
def test_bad_files_fail_with_line_and_problem(text, line, problem):
    with pytest.raises(RoutingError) as err:
        routing.parse(text, "r.yaml")
    assert err.value.line == line and problem in err.value.problem, str(err.value)
    assert str(err.value).startswith(f"r.yaml:{line}: " if line else "r.yaml: ")
