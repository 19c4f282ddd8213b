"""The stored patient state across the paging-policy upgrade (codec version 1 -> 2).

tests/fixtures/states/v1_before_paging_policy.json holds states written by the engine before the
policy (state version 1, as Redis holds them), after every prefix of two streams (the IVIG case
report, and counts flapping around 100), with the alerts that engine had sent by then. Each is
loaded by today's codec and the stream goes on with today's engine: the upgrade must page nobody
again, withdraw no page the old rules sent, and never reuse an id already sent.
"""
from __future__ import annotations

import json
from pathlib import Path

import clinical_events
import pytest
from neutrowatch.detection import PatientState, codec, step
from tests import scenario_builder

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "states" / "v1_before_paging_policy.json"
STREAMS = {
    "ivig_case": scenario_builder.ivig_case().events,
    "flapping": clinical_events.series([(0, 2000), (1, 300), (4, 90), (7, 110), (10, 220), (13, 80),
                                        (16, 180), (19, 80)], "p-flap"),
}
STORED = json.loads(FIXTURE.read_text())


@pytest.mark.parametrize("key", sorted(STORED))
def test_a_state_stored_before_the_upgrade_goes_on_without_paging_again(key):
    name, cut = key.split("@")
    events, doc = STREAMS[name], STORED[key]
    assert doc["state"]["v"] == 1
    state = codec.load(doc["state"])
    state, again = step(state, events[int(cut) - 1])  # redelivered after the upgrade
    assert again == []
    after = []
    for ev in events[int(cut):]:
        state, alerts = step(state, ev)
        after += alerts
    sent_before = {a["alert_id"]: a for a in doc["sent"]}
    # only a mild/moderate change the old rules sent on one count can go, when the next count
    # does not confirm it (today's rules wait for that count)
    withdrawn = [a.evidence["retracted_kind"] for a in after if a.kind == "alert_retracted"]
    assert set(withdrawn) <= {"grade_change"}
    assert [a.alert_id for a in after if a.alert_id in sent_before] == []
    last_before = max(getattr(e, "collected_at", None) or e.started_at for e in events[:int(cut)])
    # a page after the upgrade is about a count that arrived after it
    assert all(a.observed_at > last_before.isoformat().replace("+00:00", "Z")
               for a in after if a.severity == "critical"), [a.summary for a in after]
    assert codec.load(json.loads(json.dumps(codec.dump(state)))) == state


def test_the_upgraded_ivig_case_pages_no_more_than_the_old_engine_had():
    # upgraded mid-way (after the 4th infusion's dip paged under the old rules): the 5th and 6th
    # dips are expected, recorded not paged
    key = "ivig_case@24"
    events, doc = STREAMS["ivig_case"], STORED[key]
    state = codec.load(doc["state"])
    after = []
    for ev in events[24:]:
        state, alerts = step(state, ev)
        after += alerts
    assert [a.severity for a in after if a.severity == "critical"] == []
    assert [a.kind for a in after].count("expected_dip") >= 2


def test_the_current_version_round_trips_the_chronic_clock_and_the_ledger():
    state = PatientState.empty()
    for ev in scenario_builder.ivig_case().events:
        state, _ = step(state, ev)
    doc = json.loads(json.dumps(codec.dump(state)))
    assert doc["v"] == codec.VERSION == 2
    assert codec.load(doc) == state


def test_an_unknown_version_is_refused():
    with pytest.raises(ValueError, match="unsupported patient state version 3"):
        codec.load({"v": 3})


def test_version_1_packed_stamps_load_as_reported_and_ingested_times():
    # version 1 packed both stamps of a version into one integer: reported * 10^16 + ingested us
    reported, ingested_us = 1_704_103_200, 1_704_106_800_123_456
    old = {"v": 1, "pk": "H|p", "pid": "p", "a": {"t": [1_704_099_600, 60], "v": [300, 2000],
                                                   "o": ["a", "b"], "s": "CF",
                                                   "r": [[0, reported * 10 ** 16 + ingested_us], [1, reported]]}}
    state = codec.load(old)
    assert [(o.rep, o.ing) for o in state.anc] == [(reported, ingested_us), (reported, 0)]
    doc = codec.dump(state)
    assert doc["a"]["r"] == [[0, reported], [1, reported]] and doc["a"]["n"] == [[0, ingested_us]]
    assert codec.load(json.loads(json.dumps(doc))) == state
