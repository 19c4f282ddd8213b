"""Versions of one result (same observation_id) that status and reported_at cannot tell apart.

clinical-reference.md, "Result status": a corrected value replaces the earlier one and every
conclusion drawn from it is re-evaluated. When two versions have the same status and no
reported_at (OBR-22 / FHIR ``issued`` are optional), the one ingest received later
(``ingested_at``, stamped on every record it puts on Kafka) replaces the earlier one. The events
are built the way the monitor gets them: a record stamped by ingest, decoded by
``event_from_record``, stepped one at a time. What is asserted is what a clinician sees: the
severe neutropenia alert raised, or retracted.
"""
from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from neutrowatch.detection import DetectionConfig, PatientState, codec, step
from neutrowatch.detection.ledger import Entry, Ledger
from neutrowatch.domain.events import LabResult, Source, event_from_record, with_ingested_at

CONFIG = DetectionConfig()
T0 = datetime(2024, 3, 4, 8, 0, tzinfo=timezone.utc)
SRC = Source("hl7v2", "LAB", "HOSP")
SEVERE = "severe_neutropenia"
RETRACTED = "alert_retracted"


def anc_record(oid: str, value: float | None, status: str = "F", *, hours: float = 0.0,
               ingested_min: float | None = None, reported_min: float | None = None,
               version: str = "") -> dict:
    """One canonical ANC record; ``ingested_min`` / ``reported_min`` are minutes after T0 + 1 day."""
    base = T0 + timedelta(days=1)
    ev = LabResult(oid, f"ev-{oid}-{status}-{value}-{version}", "p-corr", "H", "anc", value,
                   "cells/uL", status, T0 + timedelta(hours=hours), SRC,
                   reported_at=None if reported_min is None else base + timedelta(minutes=reported_min))
    rec = ev.to_record()
    if ingested_min is not None:
        rec = with_ingested_at(rec, base + timedelta(minutes=ingested_min))
    return json.loads(json.dumps(rec))  # through JSON, as on the topic


def baseline() -> dict:
    """A normal count three days before: the result under test opens a new episode."""
    return anc_record("obs-base-0001", 2000, hours=-72, ingested_min=-4000)


def play(records: list[dict], state: PatientState | None = None):
    state = state or PatientState.empty()
    alerts = []
    for rec in records:
        state, new = step(state, event_from_record(rec), CONFIG)
        alerts += new
    return state, alerts


def kinds(alerts) -> list[str]:
    return [a.kind for a in alerts]


def anc_of(state: PatientState, oid: str) -> float | None:
    return next(o.v for o in state.anc if o.oid == oid)


# ------------------------------------------------------------------ the defect

def test_a_second_correction_lowering_the_count_to_severe_raises_the_alert():
    # F 1900 -> C 1800 -> C 300: the second correction is the lab's last word
    _, alerts = play([baseline(),
                      anc_record("obs-r-0001", 1900, "F", ingested_min=0),
                      anc_record("obs-r-0001", 1800, "C", ingested_min=30),
                      anc_record("obs-r-0001", 300, "C", ingested_min=60)])
    assert kinds(alerts) == [SEVERE]
    assert alerts[0].anc_cells_per_ul == 300


def test_a_final_resent_with_a_severe_count_raises_the_alert():
    # F 1900 re-sent as F 300 (no correction status, no reported_at)
    _, alerts = play([baseline(),
                      anc_record("obs-r-0002", 1900, "F", ingested_min=0),
                      anc_record("obs-r-0002", 300, "F", ingested_min=20, version="resend")])
    assert kinds(alerts) == [SEVERE]


def test_a_second_correction_raising_the_count_back_retracts_the_alert():
    # F 1900 -> C 300 (alert) -> C 1800 (the 300 was wrong): the alert is withdrawn
    state, alerts = play([baseline(),
                          anc_record("obs-r-0003", 1900, "F", ingested_min=0),
                          anc_record("obs-r-0003", 300, "C", ingested_min=30)])
    assert kinds(alerts) == [SEVERE]
    state, alerts = play([anc_record("obs-r-0003", 1800, "C", ingested_min=60)], state)
    assert kinds(alerts) == [RETRACTED]
    assert alerts[0].evidence["retracted_kind"] == SEVERE
    assert alerts[0].evidence["cause"] == "corrected_result"
    assert anc_of(state, "obs-r-0003") == 1800


def test_an_alert_withdrawn_then_holding_again_is_sent_again_under_an_id_of_its_own():
    # F 300 (page) -> C 1800 (withdrawn) -> C 300 (page again) -> C 1800 -> C 300: each page is
    # news to the consumers, which keep one alert per id and drop a repeat as already seen
    state, alerts = play([baseline()] + [anc_record("obs-r-0020", v, s, ingested_min=i * 30) for i, (s, v) in
                                         enumerate([("F", 300), ("C", 1800), ("C", 300), ("C", 1800), ("C", 300)])])
    assert kinds(alerts) == [SEVERE, RETRACTED, SEVERE, RETRACTED, SEVERE]
    pages = [a.alert_id for a in alerts if a.kind == SEVERE]
    assert len(set(pages)) == 3
    assert [a.retracts_alert_id for a in alerts if a.kind == RETRACTED] == pages[:2]
    # and replaying the same versions gives the same ids (a restarted monitor re-sends nothing new)
    _, replayed = play([baseline()] + [anc_record("obs-r-0020", v, s, ingested_min=i * 30) for i, (s, v) in
                                       enumerate([("F", 300), ("C", 1800), ("C", 300), ("C", 1800), ("C", 300)])])
    assert [a.alert_id for a in replayed] == [a.alert_id for a in alerts]
    # the last page stands, and is withdrawn by its own id
    state, alerts = play([anc_record("obs-r-0020", 1800, "C", ingested_min=200)], state)
    assert [a.retracts_alert_id for a in alerts] == [pages[2]]


def test_the_later_version_wins_whatever_order_the_engine_sees_them_in():
    # Kafka keeps a patient's order, but a version may be delayed at ingest's edge: the ingest
    # stamp, not the engine's arrival order, decides between versions of equal status
    versions = [anc_record("obs-r-0004", 1900, "F", ingested_min=0),
                anc_record("obs-r-0004", 1800, "C", ingested_min=30),
                anc_record("obs-r-0004", 300, "C", ingested_min=60)]
    for order in itertools.permutations(versions):
        state, _ = play([baseline(), *order])
        assert anc_of(state, "obs-r-0004") == 300
        assert {e.kind for e in state.ledger.entries.values()} >= {SEVERE}


# ------------------------------------------------------------------ idempotence, duplicates

def test_redelivering_an_earlier_version_after_a_later_one_changes_nothing():
    earlier = anc_record("obs-r-0005", 1800, "C", ingested_min=30)
    later = anc_record("obs-r-0005", 300, "C", ingested_min=60)
    state, alerts = play([baseline(), anc_record("obs-r-0005", 1900, "F", ingested_min=0),
                          earlier, later])
    assert kinds(alerts) == [SEVERE]
    before = codec.dump(state)
    # at-least-once delivery: the same records (same event_id, same ingest stamp) again, in order
    again, alerts = play([earlier], state)
    assert alerts == [] and codec.dump(again) == before
    again, alerts = play([earlier, later], state)
    assert alerts == [] and codec.dump(again) == before


def test_an_identical_duplicate_emits_nothing_and_keeps_the_value():
    state, alerts = play([baseline(), anc_record("obs-r-0006", 300, "C", ingested_min=30)])
    assert kinds(alerts) == [SEVERE]
    # the same value sent again by the lab (a new message, received later)
    again, alerts = play([anc_record("obs-r-0006", 300, "C", ingested_min=90, version="again")], state)
    assert alerts == []
    assert [(o.oid, o.v, o.st) for o in again.anc] == [(o.oid, o.v, o.st) for o in state.anc]
    assert again.ledger == state.ledger


# ------------------------------------------------------------------ what still decides first

def test_reported_at_still_decides_regardless_of_arrival():
    # the 300 was reported later (OBR-22) but ingest received it first: it still stands
    for ing_300, ing_1800 in ((60, 30), (30, 60)):
        _, alerts = play([baseline(),
                          anc_record("obs-r-0007", 1900, "F", reported_min=0, ingested_min=0),
                          anc_record("obs-r-0007", 300, "C", reported_min=9, ingested_min=ing_300),
                          anc_record("obs-r-0007", 1800, "C", reported_min=5, ingested_min=ing_1800)])
        assert SEVERE in kinds(alerts)
        assert kinds(alerts)[-1] == SEVERE  # not retracted by the 1800 received after it


def test_a_preliminary_received_later_never_replaces_the_final():
    _, alerts = play([baseline(),
                      anc_record("obs-r-0008", 1900, "F", ingested_min=0),
                      anc_record("obs-r-0008", 300, "P", ingested_min=60)])
    assert alerts == []


def test_a_deletion_still_wins_over_a_version_received_later():
    state, alerts = play([baseline(),
                          anc_record("obs-r-0009", 300, "F", ingested_min=0),
                          anc_record("obs-r-0009", None, "D", ingested_min=30),
                          anc_record("obs-r-0009", 250, "C", ingested_min=60)])
    assert kinds(alerts) == [SEVERE, RETRACTED]
    assert anc_of(state, "obs-r-0009") is None


def test_without_any_stamp_a_tie_resolves_to_the_lower_count():
    # records from before ingest stamped them (or a producer that does not): nothing says which
    # version came later, and the tie goes the safe way, to the more alarming count
    for order in ((1800, 300), (300, 1800)):
        _, alerts = play([baseline(), anc_record("obs-r-0010", 1900, "F")]
                         + [anc_record("obs-r-0010", v, "C") for v in order])
        assert kinds(alerts) == [SEVERE]


def test_temperature_versions_follow_the_same_rule_and_an_unstamped_tie_keeps_the_fever():
    def temp(value, ingested_min=None, version=""):
        ev = LabResult("obs-t-0001", f"ev-t-{value}-{version}", "p-corr", "H", "body_temperature",
                       value, "Cel", "F", T0 + timedelta(hours=1), SRC)
        rec = ev.to_record()
        if ingested_min is not None:
            rec = with_ingested_at(rec, T0 + timedelta(days=1, minutes=ingested_min))
        return rec

    def kept(records):
        state, _ = play([baseline(), *records])
        return next(o.v for o in state.temps if o.oid == "obs-t-0001")

    assert kept([temp(39.0, 0), temp(37.0, 30)]) == 37.0  # received later: replaces
    assert kept([temp(37.0, 30), temp(39.0, 0)]) == 37.0
    assert kept([temp(37.0), temp(39.0)]) == kept([temp(39.0), temp(37.0)]) == 39.0


# ------------------------------------------------------------------ stored states

def test_the_state_round_trips_through_json_with_ingest_stamps():
    state, _ = play([baseline(),
                     anc_record("obs-r-0011", 1900, "F", ingested_min=0, reported_min=0),
                     anc_record("obs-r-0011", 300, "C", ingested_min=60)])
    loaded = codec.load(json.loads(json.dumps(codec.dump(state))))
    assert loaded == state
    # a redelivery of the earlier version after a reload changes nothing either
    again, alerts = play([anc_record("obs-r-0011", 1900, "F", ingested_min=0, reported_min=0)], loaded)
    assert alerts == [] and codec.dump(again) == codec.dump(state)


def test_a_state_stored_before_ingest_stamps_were_kept_still_orders_by_reported_at():
    # stored before this change: rep held the reported-at epoch seconds alone
    rep = int((T0 + timedelta(days=1, minutes=9)).timestamp())
    old = {"v": 1, "pk": "H|p-corr", "pid": "p-corr", "aa": "H",
           "a": {"t": [int(T0.timestamp())], "v": [300], "o": ["obs-r-0012"], "s": "C",
                 "r": [[0, rep]]}}
    state = codec.load(old)
    assert codec.load(json.loads(json.dumps(codec.dump(state)))) == state
    # an earlier-reported correction received now does not replace it ...
    same, alerts = play([anc_record("obs-r-0012", 1800, "C", reported_min=5, ingested_min=90)], state)
    assert alerts == [] and anc_of(same, "obs-r-0012") == 300
    # ... a later-reported one does
    newer, _ = play([anc_record("obs-r-0012", 1800, "C", reported_min=12, ingested_min=90)], state)
    assert anc_of(newer, "obs-r-0012") == 1800


# ------------------------------------------------------------------ any order at the engine

@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["P", "F", "C", "D"]),
                          st.sampled_from([90, 300, 450, 1200, 1800, 2400]),
                          st.one_of(st.none(), st.integers(0, 3))),
                min_size=1, max_size=5),
       st.randoms(use_true_random=False))
def test_stamped_versions_give_the_same_result_in_any_engine_order(versions, rnd):
    # every version stamped by ingest (one after the other): the engine's order does not matter,
    # and the version kept is the greatest by (status, reported_at, received)
    records = [anc_record("obs-r-0013", None if s == "D" else v, s, ingested_min=i,
                          reported_min=rep, version=str(i))
               for i, (s, v, rep) in enumerate(versions)]
    shuffled = list(records)
    rnd.shuffle(shuffled)
    a, _ = play([baseline(), *records])
    b, _ = play([baseline(), *shuffled])
    # the same state and alerts on record; the alerts withdrawn on the way, and the ids the
    # standing ones were sent under, depend on the order
    def on_record(state):
        return codec.dump(state.evolve(ledger=Ledger({k: Entry(e.kind, e.t)
                                                      for k, e in state.ledger.recorded().items()})))
    assert on_record(a) == on_record(b)
    rank = {"P": 0, "F": 1, "C": 2, "D": 3}
    best = max(range(len(versions)),
               key=lambda i: (rank[versions[i][0]], -1 if versions[i][2] is None else versions[i][2], i))
    want = None if versions[best][0] == "D" else versions[best][1]
    assert anc_of(a, "obs-r-0013") == want


def test_the_ingest_stamp_survives_the_record_and_is_not_part_of_the_identity():
    rec = anc_record("obs-r-0014", 300, "C", ingested_min=5)
    ev = event_from_record(rec)
    assert ev.ingested_at == datetime.fromisoformat(rec["ingested_at"])
    assert event_from_record(ev.to_record()).to_record() == rec
    unstamped = event_from_record({k: v for k, v in rec.items() if k != "ingested_at"})
    assert unstamped.ingested_at is None and unstamped == ev
