"""The patient state view (GET /patients/{key}/state) over histories longer than the engine keeps."""
from __future__ import annotations

import json

from neutrowatch.detection import DetectionConfig, PatientState, step
from neutrowatch.detection.engine import kept_ids
from neutrowatch.detection.ledger import UNSENT
from neutrowatch.monitor.views import patient_state
from tests import scenario_builder
from tests.unit.test_detection_engine import long_history


def streamed(events, config=DetectionConfig()):
    """(state, alert records sent so far) after each event, as the monitor would hold them."""
    state, sent = PatientState.empty(), {}
    for ev in events:
        state, alerts = step(state, ev, config)
        for a in alerts:
            sent[a.alert_id] = json.loads(json.dumps(a.to_record()))
        yield state, dict(sent)


def test_a_pattern_whose_infusions_left_the_history_is_still_listed_as_it_was_sent():
    # The IVIG case (six courses), then a year of weekly normal counts: the courses leave the kept
    # history, the post-IVIG pattern cannot be re-evaluated, and it still stands.
    p = scenario_builder.ivig_case()
    for week in range(19, 80):
        p.anc(7 * week, 2600)
    kept = [(state, sent) for state, sent in streamed(p.events) if kept_ids(state)]
    assert kept
    state, sent = kept[0]
    [pattern] = [aid for aid, a in sent.items() if a["kind"] == "post_ivig_neutropenia_pattern"]
    assert pattern in kept_ids(state)
    view = patient_state(state, DetectionConfig(), sent)
    patterns = [(p["kind"], p["alert_id"], p["summary"]) for p in view["detected_patterns"]]
    assert ("post_ivig_neutropenia_pattern", pattern, sent[pattern]["summary"]) in patterns
    assert {k for k, _, _ in patterns} == {"post_ivig_neutropenia_pattern", "chronic_neutropenia"}


def test_alerts_emitted_counts_only_alerts_that_were_sent_and_stand():
    checked = 0
    for state, sent in (x for seed in range(3, 9) for x in streamed(long_history(seed=seed))):
        if not state.ledger.with_status(UNSENT):
            continue
        # the bound produced artefacts, which were never sent: not counted
        withdrawn = {a["evidence"]["retracted_alert_id"] for a in sent.values() if a["kind"] == "alert_retracted"}
        standing = {aid for aid, a in sent.items() if a["kind"] != "alert_retracted"} - withdrawn
        view = patient_state(state, DetectionConfig(), sent)
        assert view["alerts_emitted"] == len(standing & state.ledger.entries.keys()) < len(state.ledger)
        checked += 1
    assert checked > 2  # states in which the bound produced artefacts
