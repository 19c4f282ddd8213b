"""step(state, event, config) -> (state, alerts): merge, bound, evaluate, emit the difference.

The alert set is a deterministic function of the normalised history (evaluate); what is emitted
is its difference against the alerts already emitted: newly holding -> the alert; emitted but no
longer holding (a correction, deletion or late result removed its basis) -> alert_retracted.
Alert ids come from patient, kind and the episode anchor, so any arrival order and any replay
give the same ids, and a duplicate event changes nothing.

The history is bounded (days and rows). When the bound drops rows, the alerts are judged against
the history before the cut: one that stops holding only because its evidence left the bound (a
rapid decline whose baseline count was dropped, a febrile neutropenia whose fever aged out of the
kept temperatures) is kept and never withdrawn, and one that would hold only because its
predecessor was dropped (a months-old "grade change") is never sent. Alerts change only when the
history does.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Iterable

from neutrowatch.detection import cyclic, drugs, expected, febrile, ivig
from neutrowatch.detection.alerts import Alert, again_id, alert_id, render, retraction
from neutrowatch.detection.config import DetectionConfig
from neutrowatch.detection.episodes import Carry, fold, fold_resume
from neutrowatch.detection.findings import Finding, Obs
from neutrowatch.detection.grades import Limits, limits_for
from neutrowatch.detection.history import (DAY, Change, adm_row, cause_of, lab_obs, merge_adm,
                                           merge_obs, relevant_drug)
from neutrowatch.detection.ledger import KEPT, SENT, UNSENT, Entry, Ledger
from neutrowatch.detection.state import PatientState
from neutrowatch.domain.events import Event, LabResult, MedicationAdministration


def step(state: PatientState, event: Event, config: DetectionConfig | None = None
         ) -> tuple[PatientState, list[Alert]]:
    config = config or DEFAULT_CONFIG
    merged, change = _merge(_identify(state, event), event, config)
    if change is None:
        return merged, []
    state = _compact(merged, config)
    findings, state = evaluate(state, config)
    current = _holding(state, findings)
    if state.anc is not merged.anc or state.temps is not merged.temps or state.adms is not merged.adms:
        state, current = _settle(state, current, merged, config)  # the bound dropped rows
    return _diff(state, current, change, event, config)


def run(events: Iterable[Event], config: DetectionConfig | None = None,
        states: dict[str, PatientState] | None = None) -> list[Alert]:
    """Step every event in the given order (per patient_key); all alerts emitted, in order."""
    states = {} if states is None else states
    out: list[Alert] = []
    for ev in events:
        key = ev.patient_key
        states[key], alerts = step(states.get(key) or PatientState.empty(), ev, config)
        out.extend(alerts)
    return out


DEFAULT_CONFIG = DetectionConfig()


# ---------------------------------------------------------------------------- merge

def _identify(state: PatientState, ev: Event) -> PatientState:
    if state.patient_key:
        bd = getattr(ev, "birth_date", None)
        if bd and (state.birth_date is None or bd > state.birth_date):
            return state.evolve(birth_date=bd)
        return state
    return state.evolve(patient_key=ev.patient_key, patient_id=ev.patient_id,
                        assigning_authority=ev.assigning_authority,
                        birth_date=getattr(ev, "birth_date", None))


def _merge(state: PatientState, ev: Event, config: DetectionConfig
           ) -> tuple[PatientState, Change | None]:
    if isinstance(ev, MedicationAdministration):
        if not relevant_drug(ev, config):
            return state, None
        row = adm_row(ev)
        if state.horizon is not None and row.t <= state.horizon:
            return state.evolve(late_ignored=state.late_ignored + 1), None
        rows, t = merge_adm(state.adms, row)
        return state.evolve(adms=rows), None if t is None else Change("adm", t, cause_of(ev))
    if not isinstance(ev, LabResult) or ev.analyte not in ("anc", "body_temperature"):
        return state, None
    if ev.status not in ("X", "D") and ev.value is None:
        return state, None
    new = lab_obs(ev)
    if state.horizon is not None and new.t <= state.horizon:
        return state.evolve(late_ignored=state.late_ignored + 1), None
    if ev.analyte == "anc":
        rows, t = merge_obs(state.anc, new)
        if rows is state.anc:
            return state, None
        state = state.evolve(anc=rows)
        if t is not None and state.cyclic:
            state = state.evolve(cyclic=cyclic.CyclicCache.from_list(state.cyclic)
                                 .invalidate_from(t).to_list())
        return state, None if t is None else Change("anc", t, cause_of(ev))
    rows, t = merge_obs(state.temps, new, low_alarms=False)
    if rows is state.temps:
        return state, None
    return state.evolve(temps=rows), None if t is None else Change("temp", t, cause_of(ev))


# ---------------------------------------------------------------------------- bound

def _compact(state: PatientState, config: DetectionConfig) -> PatientState:
    anc, temps, adms = state.anc, state.temps, state.adms
    newest = max([x[-1].t for x in (anc, temps, adms) if x], default=0)
    keep_from = newest - int(config.history_days * DAY)
    newest_lab = max([x[-1].t for x in (anc, temps) if x], default=0)
    if not ((anc and (anc[0].t < keep_from or len(anc) > config.history_max_anc))
            or (temps and (temps[0].t < newest_lab - int(config.history_temperature_days * DAY)
                           or len(temps) > config.history_max_temperatures))
            or (adms and (adms[0].t < keep_from or len(adms) > config.history_max_administrations))):
        return state  # nothing to cut (what the _cut calls below would find)
    cut = _cut(anc, keep_from, config.history_max_anc)
    horizon, carry, prior = state.horizon, state.carry, state.ivig_prior
    if cut:
        dropped = anc[:cut]
        live = [o for o in dropped if o.v is not None]
        if live:
            limits_at = _limits_fn(state, config)
            carry = fold(live, limits_at, carry or Carry(), config, emit=False).carry
        horizon = max(horizon or 0, dropped[-1].t)
        anc = anc[cut:]
    newest_lab = max([x[-1].t for x in (anc, temps) if x], default=0)
    tcut = _cut(temps, newest_lab - int(config.history_temperature_days * DAY),
                config.history_max_temperatures)
    temps = temps[tcut:]
    acut = _cut(adms, keep_from, config.history_max_administrations)
    if acut:
        gone = ivig.courses(list(adms[:acut]), config)
        prior = (tuple(prior) + tuple((c.start, c.mgkg, c.mg) for c in gone))[-2:]
        horizon = max(horizon or 0, adms[acut - 1].t)
        adms = adms[acut:]
    if not (cut or tcut or acut):
        return state
    ledger = state.ledger.after(horizon)
    if tcut:
        ledger = _without_febrile_unsent(ledger, temps)
    return state.evolve(anc=anc, temps=temps, adms=adms, carry=carry, horizon=horizon,
                        ivig_prior=prior, ledger=ledger)


def _without_febrile_unsent(ledger: Ledger, temps: tuple) -> Ledger:
    """``ledger`` less the febrile neutropenia alerts never sent (UNSENT) whose fever has left
    the kept temperatures. During a long fever on a dense feed the cap drops the first kept fever
    with every reading and the episode, seen from what is kept, begins at the next one: an alert
    held only on the cut history, recorded UNSENT once per reading (it grew the state by a row a
    minute). A dropped reading never comes back (arriving again it is again the oldest, cut at
    once), so neither can an alert on it: the entry has no use left. A finding's time is that of
    its fever or of a count after it, so one older than every kept temperature names a fever gone."""
    first = temps[0].t if temps else None
    return Ledger({k: e for k, e in ledger.entries.items()
                   if not (e.kind == "febrile_neutropenia" and e.status == UNSENT
                           and (first is None or e.t < first))})


def _cut(rows: tuple, keep_from: int, max_rows: int) -> int:
    n = 0
    while n < len(rows) and (rows[n][0] < keep_from or len(rows) - n > max_rows):
        n += 1
    return n


# ---------------------------------------------------------------------------- evaluate

def _limits_fn(state: PatientState, config: DetectionConfig) -> Callable[[int], Limits]:
    if not state.birth_date:
        lim = _const_limits(config, state.patient_key)
        return lambda t: lim
    return lambda t: _aged_limits(config, state.patient_key, state.birth_date, t // DAY)


def _const_limits(config: DetectionConfig, key: str) -> Limits:
    cache = config.cache
    lim = cache.get(key)
    if lim is None:
        if len(cache) > 65536:
            cache.clear()
        lim = cache[key] = limits_for(config, key, None, 0)
    return lim


def _aged_limits(config: DetectionConfig, key: str, bd: str, day: int) -> Limits:
    cache = config.cache
    lim = cache.get((key, bd, day))
    if lim is None:
        if len(cache) > 65536:
            cache.clear()
        lim = cache[(key, bd, day)] = limits_for(config, key, bd, day * DAY)
    return lim


# From this many live results on, evaluate keeps the fold's checkpoint on the state (resumed by
# the next event) instead of folding the whole history again: below it, the fold is cheaper than
# the checkpoint's upkeep (mostly garbage-collector work in a worker that remembers many states).
RESUME_MIN_ENTRIES = 24


def evaluate(state: PatientState, config: DetectionConfig) -> tuple[list[Finding], PatientState]:
    """Every finding that holds for the history in ``state`` (and the refreshed cyclic cache)."""
    anc = state.anc
    live = [o for o in anc if o.v is not None]
    if len(live) == len(anc):
        live = anc  # the tuple itself: the fold's checkpoint keeps it without a copy
    times = [o.t for o in live]
    adms = [a for a in state.adms if a.st != "x"]
    limits_at = _limits_fn(state, config)
    if len(live) >= RESUME_MIN_ENTRIES:
        memo = state.memo
        prev = None
        if (memo is not None and memo[0] is config and memo[1] == state.patient_key
                and memo[2] == state.birth_date and memo[3] == state.carry):
            prev = memo[4]
        res, checkpoint = fold_resume(live, limits_at, state.carry, config, prev)
        memo = (config, state.patient_key, state.birth_date, state.carry, checkpoint)
        findings = res.findings
        recoveries = [findings[j] for j in checkpoint.recoveries]
    else:  # a short history: folding it again is cheaper than keeping a checkpoint alive
        res = fold(live, limits_at, state.carry or Carry(), config)
        memo = None
        findings = res.findings
        recoveries = [f for f in findings if f.kind == "recovery"]
    findings = [f for f in findings if f.kind != "grade_change" or _worth_sending(f, live, config)]
    if adms:
        for f in recoveries:
            assoc = drugs.association(res.episodes[f.ctx["episode"]], adms, config)
            if assoc:
                f.ctx["association"] = assoc
        findings += drugs.suspected(res.episodes, adms, config)
    cs = ivig.courses(adms, config)
    pattern = None
    if cs:
        ivig.measure(cs, live, times, limits_at, config)
        pattern = ivig.pattern(cs, config)
        if pattern:
            findings.append(pattern)
            for f in recoveries:
                if f.t > pattern.t:
                    f.ctx["ivig_pattern"] = True
            if config.expected_dips_for(state.patient_key):
                findings = expected.apply(findings, cs, pattern, live, times, limits_at, config)
        findings += ivig.baseline_missing(cs, times, config, list(state.ivig_prior))
    if len(live) >= config.cyclic_min_points or state.cyclic:
        cache = cyclic.search(live, times, cyclic.CyclicCache.from_list(state.cyclic), limits_at, config)
        state = state.evolve(cyclic=cache.to_list(), memo=memo)
        hit = cache.hit
        if hit is not None and pattern is None and not _locked(hit.period_days, cs, config):
            findings.append(Finding("cyclic_neutropenia_suspected", "cyclic", hit.t, hit.value,
                                    "warning", {"hit": hit}))
        if hit is not None and config.expected_dips_for(state.patient_key):
            # the troughs a periodicity predicts stay expected when IVIG explains the cycle (the
            # suspicion is withdrawn; the counts did not change): never a late page for them
            findings = expected.cyclic(findings, hit, live, times, limits_at, config)
    elif memo is not state.memo:
        state = state.evolve(memo=memo)
    if state.temps:
        temps = [o for o in state.temps if o.v is not None]
        findings += febrile.febrile(temps, live, times, limits_at, config)
    return findings, state


def _worth_sending(f: Finding, live, config: DetectionConfig) -> bool:
    """Whether a grade change is sent. An improvement is (two results confirmed it), and so is a
    change to severe or worse (the onset rules page for those); a worsening to mild or moderate
    waits for the next count to confirm it within ``grade_confirm_days``, and is not sent when that
    count is already severe (its page says more). One count may be noise, and two counts years
    apart say nothing of the time between."""
    c = f.ctx
    if c.get("improving") or c["to"] not in ("mild", "moderate"):
        return True
    nxt = c.get("confirming_index")
    if not c.get("confirmed") or nxt is None:
        return False
    after = live[nxt]
    return after.t - f.t <= config.grade_confirm_days * DAY and after.v >= c["limits"].severe


def _locked(period: float, cs: list, config: DetectionConfig) -> bool:
    gap = ivig.locked_period_days(cs, config)
    return gap is not None and abs(gap - period) <= config.cyclic_lock_tolerance * period


def active_alerts(state: PatientState, config: DetectionConfig | None = None) -> list[Alert]:
    """The alerts that hold now, rendered (for inspection and tests; step emits differences),
    less those the history bound kept from being sent."""
    config = config or DEFAULT_CONFIG
    findings, state = evaluate(state, config)
    live = [o for o in state.anc if o.v is not None]
    unsent = state.ledger.with_status(UNSENT)
    return [render(f, state.patient_key, state.patient_id, state.assigning_authority, live,
                   list(state.adms), config) for f in findings
            if not unsent or alert_id(state.patient_key, f.kind, f.anchor) not in unsent]


def kept_ids(state: PatientState) -> set[str]:
    """Alerts sent whose evidence has left the history: they still stand, but cannot be rendered."""
    return state.ledger.with_status(KEPT)


# ---------------------------------------------------------------------------- diff

# alerts about an episode as a whole: a late result moving its start earlier does not make it new
EPISODE_ALERTS = ("severe_neutropenia", "agranulocytosis", "chronic_neutropenia")
# alerts decided by the counts up to their own, the count their id names (episodes.py): a later
# count cannot change them. (A recovery's or a chronic alert's id names its episode's start: the
# count that decides it can move later.)
CAUSAL_ALERTS = ("severe_neutropenia", "agranulocytosis", "rapid_decline", "grade_change")


def _holding(state: PatientState, findings: list[Finding]) -> dict[str, Finding]:
    """The findings that are alerts (after the horizon), by alert id (first of each id)."""
    key, horizon = state.patient_key, state.horizon
    current: dict[str, Finding] = {}
    for f in findings:
        if horizon is None or f.t > horizon:
            aid = alert_id(key, f.kind, f.anchor)
            if aid not in current:
                current[aid] = f
    return current


def _settle(state: PatientState, current: dict[str, Finding], merged: PatientState,
            config: DetectionConfig) -> tuple[PatientState, dict[str, Finding]]:
    """The bound just dropped rows. Judged against the history before the cut: an emitted alert
    that no longer holds on what is kept but held before lost its evidence, not its basis; an
    alert that holds only on what is kept (its predecessor count was dropped) is an artefact of
    the cut. Both are settled, kept on record and never withdrawn: the first as KEPT, the second
    as UNSENT (never sent). A pattern that holds on both but was decided later on the history
    before the cut is sent as decided there."""
    ledger = state.ledger
    lost = [aid for aid in ledger.standing() if aid not in current]
    fresh = [aid for aid in current if ledger.news(aid)]
    if not lost and not fresh:
        return state, current
    uncut, _ = evaluate(_with_search_of(state, merged, config), config)
    held = {alert_id(merged.patient_key, f.kind, f.anchor): f for f in uncut}
    current = dict(current)
    for aid in fresh:
        f = held.get(aid)
        if f is not None and f.kind == "post_ivig_neutropenia_pattern" and f.t > current[aid].t:
            # decided now on the history before the cut, which only made it look older (a course
            # that weighed against the pattern lost its counts); its finding carries its evidence
            current[aid] = f
    settled = {aid: ledger.entries[aid].settled(KEPT) for aid in lost if aid in held}
    settled.update((aid, Entry(current[aid].kind, current[aid].t, UNSENT)) for aid in fresh if aid not in held)
    return (state.evolve(ledger=ledger.updated(settled)) if settled else state), current


def _with_search_of(state: PatientState, merged: PatientState, config: DetectionConfig) -> PatientState:
    """``merged`` with the periodicity search just run on the kept rows when every dropped row
    is older than every window that search looked at (a periodogram per new result is the
    costliest part of a dense history; with daily counts the bound drops rows months before it)."""
    searched_from = cyclic.CyclicCache.from_list(merged.cyclic).upto + 1
    if merged.cyclic and state.horizon is not None and \
            state.horizon < searched_from - int(config.cyclic_window_days * DAY):
        return merged.evolve(cyclic=state.cyclic)
    return merged


def _diff(state: PatientState, current: dict[str, Finding], change: Change, event: Event,
          config: DetectionConfig) -> tuple[PatientState, list[Alert]]:
    key = state.patient_key
    ledger = state.ledger
    gone = [aid for aid in ledger.standing() if aid not in current
            and not _settled_by_rules_before(ledger.entries[aid], change, state.anc)]
    new = [(aid, f) for aid, f in current.items() if ledger.news(aid)]
    if not gone and not new:
        return state, []
    entries = dict(ledger.entries)
    if gone and new:
        gone, new = _moved_earlier(gone, new, entries, change)
    dips = any(f.kind == "expected_dip" for _, f in new)
    out: list[Alert] = []
    for aid in sorted(gone, key=lambda i: (entries[i].t, i)):
        entry = entries.pop(aid)  # re-inserted below, withdrawn: last in the ledger's order
        cause = change.cause if change.cause != "new_result" else (
            "late_result" if change.t <= entry.t else "re-evaluation")
        if entry.kind in ("cyclic_neutropenia_suspected", "expected_dip") \
                and cause in ("re-evaluation", "administration"):
            # a periodicity (and the troughs it predicted) once found stays found: only the IVIG
            # rules set it aside
            cause = "explained_by_ivig"
        elif cause == "administration" and entry.kind in expected.REPLACED and dips:
            cause = "expected_post_ivig_dip"  # infusion records arriving after the counts
        entries[aid] = entry.withdrawn(aid)
        out.append(retraction(entries[aid].sent_as, entry.kind, entry.t, cause, event.event_id, key,
                              state.patient_id, state.assigning_authority))
    if new:
        live = [o for o in state.anc if o.v is not None]
        adms = list(state.adms)
        used = Ledger(entries).sent_ids()
        for aid, f in sorted(new, key=lambda kv: (kv[1].t, kv[1].kind, kv[0])):
            alert = render(f, key, state.patient_id, state.assigning_authority, live, adms, config)
            before = entries.get(aid)
            sent_as = _fresh_id(before.sent_as if before is not None and before.is_news else aid, used)
            used.add(sent_as)
            if sent_as != aid:
                alert = replace(alert, alert_id=sent_as)
            entries[aid] = _sent(f, sent_as=None if sent_as == aid else sent_as)
            out.append(alert)
    return state.evolve(ledger=Ledger(entries)), out


def _fresh_id(aid: str, used: set[str]) -> str:
    """The id news at ``aid`` goes out under: ``aid`` itself, unless it was sent before (for
    another alert, or for this one before it was withdrawn), else the next of its again_id chain
    that was not. An id of the chain is only ever made after the one before it was sent, so all
    before the last one on record were sent too, even if the ledger no longer names them (an
    alert sent again and then moved by a late result keeps only the id it was sent as)."""
    chain, fresh = aid, aid
    for _ in range(min(len(used), 16) + 1):
        if chain in used:
            fresh = again_id(chain)
        chain = again_id(chain)
    return fresh


def _settled_by_rules_before(entry: Entry, change: Change, anc: tuple[Obs, ...]) -> bool:
    """An alert of a causal rule (decided by the counts and infusions up to its own; a grade
    change also by the next count, which confirms it) that no longer holds after a count or an
    infusion dated after what it stood on was sent under rules since changed (a state stored
    before an upgrade of the paging policy): that has not changed, so it stands. Corrections and
    deletions still withdraw it, as does a result or an infusion record arriving late, dated
    before its own count (or a grade change's next)."""
    if change.cause not in ("new_result", "administration") or entry.kind not in CAUSAL_ALERTS:
        return False
    basis = entry.t
    if entry.kind == "grade_change":
        basis = next((o.t for o in anc if o.t > entry.t and o.v is not None and o.t != change.t), None)
    return basis is not None and change.t > basis


def _sent(f: Finding, sent_as: str | None = None) -> Entry:
    """The ledger entry of an alert sent (as ``sent_as`` when that is not its own id); a grade
    change with the transition it announced."""
    grades = (f.ctx["from"], f.ctx["to"]) if f.kind == "grade_change" else None
    return Entry(f.kind, f.t, SENT, sent_as, grades)


def _moved_earlier(gone: list[str], new: list[tuple[str, Finding]], entries: dict[str, Entry],
                   change: Change) -> tuple[list[str], list[tuple[str, Finding]]]:
    """A late result collected before an episode's paging count (a severe 400 from the day before
    the 300 that paged) moves the episode's start, and so its alert id, earlier: the episode is
    the one already paged for, so the alert sent stays standing under the new id (no retraction
    and no second page), and is withdrawn in its own name should the episode go. Should the late
    result go again, the alert is back under the id it was sent as.

    So too a grade change whose transition (from -> to) a late result only dates differently: a
    moderate count from before the one that changed normal -> moderate dates that change earlier,
    an intervening count can date an improvement later; it stays standing as the nearest change
    of the same grades. A late result that changes the grades (mild -> moderate becomes mild ->
    severe) is news: the alert sent is withdrawn and the new one sent. As for episodes, only a new
    result moves an alert: after a correction or deletion the count an alert cited has changed."""
    for aid in [g for g in gone if entries[g].sent_as is not None]:
        back = next(((nid, f) for nid, f in new if nid == entries[aid].sent_as), None)
        if back is not None:
            entries.pop(aid)
            entries[back[0]] = _sent(back[1])
            gone = [g for g in gone if g != aid]
            new = [n for n in new if n[0] != back[0]]
    if change.cause != "new_result":
        return gone, new
    for aid in sorted(gone, key=lambda i: entries[i].t):
        kind, t, grades = entries[aid].kind, entries[aid].t, entries[aid].grades
        if change.t > t or (kind not in EPISODE_ALERTS and grades is None):
            continue
        if grades is None:
            match = next(((nid, f) for nid, f in new if f.kind == kind and f.t <= t), None)
        else:
            match = min(((nid, f) for nid, f in new if f.kind == kind
                         and (f.ctx["from"], f.ctx["to"]) == grades), key=lambda kv: abs(kv[1].t - t),
                        default=None)
        if match is None:
            continue
        entry = entries.pop(aid)
        entries[match[0]] = _sent(match[1], sent_as=entry.sent_as or aid)
        gone = [g for g in gone if g != aid]
        new = [n for n in new if n[0] != match[0]]
    return gone, new
