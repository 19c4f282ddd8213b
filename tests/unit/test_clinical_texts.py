"""A hospital that changes a rule's figures gets alerts whose texts and evidence give those
figures: what a clinician reads must be what the rule tested."""
from __future__ import annotations

from clinical_events import anc, ivig, of_kind
from neutrowatch.detection import DetectionConfig, run


def test_rapid_decline_and_recovery_texts_give_the_configured_figures():
    # a hospital that looks back 96 h for a 40 % fall below 1200/uL, and wants 3 counts to call
    # a recovery
    config = DetectionConfig(rapid_decline_hours=96, rapid_decline_fraction=0.6, rapid_decline_below=1200,
                             confirmations=3)
    days = [0, 3.5, 7, 10, 12, 14, 16]
    values = [1900, 1100, 1500, 400, 1600, 1700, 1800]
    alerts = run([anc(d, v) for d, v in zip(days, values)], config)
    rapid = of_kind(alerts, "rapid_decline")
    assert len(rapid) == 1 and "ANC fell 42% in 84 h: 1900/uL -> 1100/uL." == rapid[0].summary
    assert (rapid[0].evidence["window_hours"], rapid[0].evidence["fraction_threshold"],
            rapid[0].evidence["below"]) == (96, 0.6, 1200)
    severe = of_kind(alerts, "severe_neutropenia")
    assert len(severe) == 1 and "down from 1500/uL within 96 h" in severe[0].summary
    recovery = of_kind(alerts, "recovery")
    assert len(recovery) == 1
    assert "on 3 results (1600/uL, 1700/uL, 1800/uL)" in recovery[0].summary
    assert [o["value"] for o in recovery[0].evidence["observations"]] == [1600, 1700, 1800]


def test_chronic_alert_gives_the_configured_duration():
    config = DetectionConfig(chronic_days=60)
    alerts = run([anc(0, 1200), anc(30, 1300), anc(61, 1100)], config)
    chronic = of_kind(alerts, "chronic_neutropenia")
    assert len(chronic) == 1 and "for 61 days" in chronic[0].summary
    assert chronic[0].evidence["chronic_after_days"] == 60


def test_missing_baseline_alert_gives_the_configured_look_back():
    # the last count was 20 days before the first infusion: missing under a 14-day look-back
    config = DetectionConfig(ivig_baseline_days=14)
    alerts = of_kind(run([anc(-20, 2100), ivig(0, 70)], config), "ivig_baseline_missing")
    assert len(alerts) == 1
    assert "with no ANC in the preceding 14 days" in alerts[0].summary
    assert alerts[0].evidence["baseline_days"] == 14
    assert of_kind(run([anc(-20, 2100), ivig(0, 70)]), "ivig_baseline_missing") == []  # 30 by default
