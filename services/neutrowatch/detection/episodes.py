"""The causal fold over the ANC series: grades, episodes (neutropenia, severe, agranulocytosis),
recovery, chronicity and rapid decline.

An episode below a limit begins at the first result under it and ends when
``config.confirmations`` consecutive results are back at or above it (one normal value inside an
episode does not end it, so an ongoing episode, or counts flapping around a limit, never re-alert).
It also ends when a result back at or above the limit is followed by a long silence: when a result
below the limit arrives, the previous result was at or above it and the episode's last result
below it was collected more than ``config.episode_gap_days`` earlier, the episode is over (ended at
the first result back above it, as a confirmed recovery would be) and the new result opens a new
episode, which alerts like any new one. (Otherwise one normal count followed by months without a
count would keep the episode open for ever: the new low count would not alert, and the episode
would turn "chronic" across the recovery.) Such an ending is only known when the next low result
arrives, weeks later: it gets no ``recovery`` finding (that would be an alert about an old result,
sent together with the new episode's); the grade machine takes the improvement the results back
above showed as settled, so the new episode's grade change reads as after a recovery.

Chronic neutropenia is decided on a result below the normal limit collected more than
``config.chronic_days`` after the episode's start (the neutropenia is still there), never on a
normal count inside the episode.

The fold is causal: a finding at a result depends only on results collected up to it
(confirmation flags aside), so appending later results never changes earlier conclusions. The fold
state (``Carry``) is what summarises results dropped from the bounded history.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from neutrowatch.detection.config import DetectionConfig
from neutrowatch.detection.findings import Finding, Obs
from neutrowatch.detection.grades import RANK, Limits, worse

DAY = 86400


@dataclass(slots=True)
class Track:
    """Hysteresis episode below one limit: open, start (t, oid, v), nadir, run of results
    above; ``last``: collection time of the episode's last result below the limit, and
    ``back``: (t, oid, v) of the first result back at or above it since then (() while the last
    result is below): what the episode-gap rule needs (see the module docstring)."""

    open: bool = False
    start: tuple = ()  # (t, oid, v)
    nadir: tuple = ()  # (t, oid, v)
    above: int = 0
    last: int = 0  # t of the last result below the limit
    back: tuple = ()  # (t, oid, v) of the first result back at/above the limit after ``last``

    def copy(self) -> "Track":
        return Track(self.open, self.start, self.nadir, self.above, self.last, self.back)

    def to_tuple(self) -> tuple:
        return (self.open, self.start, self.nadir, self.above, self.last, self.back)


@dataclass(slots=True)
class Stretch:
    """The chronic clock: one stretch of counts below the normal limit, which a transient rise
    (back at or above normal for at most ``chronic_rise_max_days``, such as an infection
    response) does not end, but a longer rise, or a silence of more than ``chronic_max_gap_days``
    between two counts, does. ``start``/``nadir``: (t, oid, v); ``prev``: time of the last count
    seen; ``rise_from``: time of the first count back at or above normal since the last one below
    (0 while the last count is below); ``peak``: (t, oid, v) of the highest count of that rise;
    ``rise``: the highest transient rise the stretch has lasted through, (from t, to t, peak
    (t, oid, v)), for the evidence."""

    start: tuple = ()
    nadir: tuple = ()
    chronic: bool = False
    prev: int = 0
    rise_from: int = 0
    peak: tuple = ()
    rise: tuple = ()

    def copy(self) -> "Stretch":
        return Stretch(self.start, self.nadir, self.chronic, self.prev, self.rise_from, self.peak, self.rise)

    def to_tuple(self) -> tuple:
        return (self.start, self.nadir, self.chronic, self.prev, self.rise_from, self.peak, self.rise)


@dataclass(slots=True)
class Carry:
    """Fold state: the summary of every result before the current one."""

    grade: str | None = None
    pending: int = 0  # consecutive results better than ``grade``
    pending_grade: str = "normal"
    seen_normal: bool = False  # a normal count preceded (an onset time is known)
    neutropenia: Track = field(default_factory=Track)
    severe: Track = field(default_factory=Track)
    agran: Track = field(default_factory=Track)
    stretch: Stretch = field(default_factory=Stretch)

    def to_tuple(self) -> tuple:
        return (self.grade, self.pending, self.pending_grade, self.seen_normal,
                self.neutropenia.to_tuple(), self.severe.to_tuple(), self.agran.to_tuple(),
                self.stretch.to_tuple())

    @classmethod
    def from_tuple(cls, t: tuple) -> "Carry":
        return cls(t[0], t[1], t[2], t[3], Track(*t[4]), Track(*t[5]), Track(*t[6]), Stretch(*t[7]))

    def copy(self) -> "Carry":
        return Carry(self.grade, self.pending, self.pending_grade, self.seen_normal,
                     self.neutropenia.copy(), self.severe.copy(), self.agran.copy(), self.stretch.copy())


@dataclass(slots=True)
class Episode:
    """A neutropenia episode as the other rules see it."""

    start: tuple  # (t, oid, v)
    onset_known: bool  # a normal count preceded it
    end: tuple | None = None  # (t, oid, v): the result that confirmed recovery; for an episode
    # ended by the gap rule, the first result back at or above the limit (None if a state stored
    # before that was recorded does not know it)
    nadir: tuple = ()


@dataclass
class FoldResult:
    carry: Carry
    findings: list[Finding]
    episodes: list[Episode]


@dataclass(slots=True)
class Checkpoint:
    """Where a fold over ``entries`` stopped, so that a later fold over the same entries plus
    newer ones (from the same carry, limits and config: the caller checks those) resumes here
    instead of starting again. The fold is causal, so that gives exactly the FoldResult of a fold
    over all of them.

    ``findings`` are as the fold made them. Most are final (confirmed by the entry after theirs)
    and shared between evaluations; those at ``reopen`` are kept pristine and copied on every use:
    recoveries (``engine.evaluate`` annotates them) and the findings of the last entry (from
    ``tail`` on), which the next entry may still confirm. Everything else is kept as tuples of
    plain values, which the garbage collector stops tracking: a worker keeps a checkpoint per
    patient it remembers."""

    entries: tuple[Obs, ...]
    carry: tuple  # Carry.to_tuple()
    findings: tuple[Finding, ...]
    tail: int
    recoveries: tuple[int, ...]
    reopen: tuple[int, ...]
    episodes: tuple[tuple, ...]  # (start, onset_known, end, nadir)
    grades: tuple[str, ...]
    rapid_prev: bool


def fold_resume(entries: list[Obs] | tuple[Obs, ...], limits_at: Callable[[int], Limits],
                carry: Carry | None, config: DetectionConfig, prev: Checkpoint | None
                ) -> tuple[FoldResult, Checkpoint]:
    """``fold(entries, limits_at, carry or Carry(), config)`` and a checkpoint for the next
    call; ``prev`` (a checkpoint made with the same carry, limits and config) is resumed when its
    entries are a prefix of ``entries``."""
    if entries.__class__ is not tuple:
        entries = tuple(entries)
    m = 0
    if prev is not None:
        m = len(prev.entries)
        if m > len(entries) or entries[:m] != prev.entries:
            prev, m = None, 0
    if prev is None:
        c = carry.copy() if carry is not None else Carry()
        base: tuple[Finding, ...] = ()
        findings: list[Finding] = []
        episodes: list[Episode] = []
        grades: list[str] = []
        if c.neutropenia.open:
            episodes.append(Episode(c.neutropenia.start, True, None, c.neutropenia.nadir))
        rapid_prev, confirm_from, recoveries = False, 0, []
    else:
        c = Carry.from_tuple(prev.carry)
        base = prev.findings
        findings = list(base)
        for j in prev.reopen:
            findings[j] = _pristine(base[j])
        episodes = [Episode(*e) for e in prev.episodes]
        grades, rapid_prev = list(prev.grades), prev.rapid_prev
        confirm_from, recoveries = prev.tail, list(prev.recoveries)
    k0 = len(findings)
    rapid_prev = _run(c, entries, m, limits_at, config, True, findings, episodes, grades, rapid_prev)
    n = len(findings)
    for j in range(k0, n):
        if findings[j].kind == "recovery":
            recoveries.append(j)
    last_entry = len(entries) - 1
    tail = n
    while tail > 0 and _entry_of(findings[tail - 1]) == last_entry:
        tail -= 1
    reopen = [j for j in recoveries if j < tail] + list(range(tail, n))  # both ascending
    kept = list(findings)
    for j in reopen:
        kept[j] = base[j] if j < k0 else _pristine(findings[j])
    for j in range(confirm_from, n):
        _confirm(findings[j], grades)
    checkpoint = Checkpoint(entries, c.to_tuple(), tuple(kept), tail, tuple(recoveries),
                            tuple(reopen), tuple((e.start, e.onset_known, e.end, e.nadir)
                                                 for e in episodes), tuple(grades), rapid_prev)
    return FoldResult(c, findings, episodes), checkpoint


def _entry_of(f: Finding) -> int:
    ctx = f.ctx
    return ctx["index"] if "index" in ctx else ctx["end_index"]


def _pristine(f: Finding) -> Finding:
    return Finding(f.kind, f.anchor, f.t, f.value, f.severity, dict(f.ctx))


def fold(entries: list[Obs], limits_at: Callable[[int], Limits], carry: Carry,
         config: DetectionConfig, emit: bool = True) -> FoldResult:
    """Run the machines over ``entries`` (live, time-ordered) starting from ``carry``."""
    c = carry.copy()
    findings: list[Finding] = []
    episodes: list[Episode] = []
    grades: list[str] = []
    if c.neutropenia.open:
        episodes.append(Episode(c.neutropenia.start, True, None, c.neutropenia.nadir))
    _run(c, entries, 0, limits_at, config, emit, findings, episodes, grades, False)
    if emit:
        for f in findings:
            _confirm(f, grades)
    return FoldResult(c, findings, episodes)


def _run(c: Carry, entries: list[Obs] | tuple[Obs, ...], start: int,
         limits_at: Callable[[int], Limits], config: DetectionConfig, emit: bool,
         findings: list[Finding], episodes: list[Episode], grades: list[str],
         rapid_prev: bool) -> bool:
    """The fold loop from ``entries[start]`` on (state in ``c`` and the lists); returns whether
    the last entry was in a rapid decline (the next one's ``rapid_prev``)."""
    window = config.rapid_decline_hours * 3600
    confirmations = config.confirmations
    rapid_below = config.rapid_decline_below
    rapid_fraction = config.rapid_decline_fraction
    chronic_s = config.chronic_days * DAY
    rise_s = config.chronic_rise_max_days * DAY
    silence_s = config.chronic_max_gap_days * DAY
    gap_s = config.episode_gap_days * DAY
    # a severe (agranulocytosis) episode whose count came back above 500 (100) but not to normal
    # ends by silence only after chronic_days: a chronically neutropenic patient counted monthly
    # (an infant's autoimmune neutropenia: 300, 510, 300, ...) is one episode, not a page a month
    still_low_gap_s = max(gap_s, config.chronic_days * DAY)
    agran, severe, n, low = c.agran, c.severe, c.neutropenia, c.stretch
    last_lim = None
    for i in range(start, len(entries)):
        e = entries[i]
        et = e.t
        lim = limits_at(et)
        v = float(e.v)  # type: ignore[arg-type]
        if lim is not last_lim:
            last_lim = lim
            l_normal, l_mild, l_moderate, l_agran = lim.normal, lim.mild, lim.moderate, lim.agranulocytosis
            l_severe = lim.severe
        # lim.grade(v), inlined
        if v >= l_normal:
            g = "normal"
        elif v >= l_mild:
            g = "mild"
        elif v >= l_moderate:
            g = "moderate"
        elif v >= l_agran:
            g = "severe"
        else:
            g = "agranulocytosis"
        grades.append(g)
        here: list[Finding] = []
        # --- episodes
        deep_gap = gap_s if n.above else still_low_gap_s  # n.above: the previous result was normal
        # inside a severe episode that already reached agranulocytosis, counts crossing 100 again
        # (90, 110, 220, 80) page no one: the episode paged when it began and when it got there
        in_severe = severe.open
        was_agran = in_severe and severe.nadir[2] < l_agran
        agran_on = _track(agran, e, v, v < l_agran, confirmations, deep_gap)
        severe_on = _track(severe, e, v, v < l_severe, confirmations, deep_gap)
        was_open, back = n.open, n.back
        n_on = _track(n, e, v, v < l_normal, confirmations, gap_s)
        recovered = n_on == "end"
        if n_on == "restart":  # the gap rule ended the episode at its first result back above
            if episodes:
                episodes[-1].end = back or None
            episodes.append(Episode(n.start, c.seen_normal, None, n.nadir))
        elif n.open and not was_open:
            episodes.append(Episode(n.start, c.seen_normal, None, n.nadir))
        elif n.open and episodes:
            episodes[-1].nadir = n.nadir
        if recovered and episodes:
            episodes[-1].end, episodes[-1].nadir = (et, e.oid, v), n.nadir
        if recovered:
            here.append(Finding("recovery", n.start[1], et, v, "info",
                                {"start": n.start, "nadir": n.nadir, "end_index": i,
                                 "limits": lim, "episode": len(episodes) - 1}))
        # chronic: the neutropenia is still there after chronic_days, so only a count below the
        # limit decides it (a normal count inside the stretch shows no such thing)
        if _stretch(low, e, v, v < l_normal, rise_s, silence_s) and not low.chronic \
                and et - low.start[0] > chronic_s:
            low.chronic = True
            here.append(Finding("chronic_neutropenia", low.start[1], et, v, "warning",
                                {"start": low.start, "nadir": low.nadir, "index": i, "limits": lim,
                                 "rise": low.rise}))
        if v >= l_normal:
            c.seen_normal = True
        # --- rapid decline
        ref = None
        if v < rapid_below:
            j = i - 1
            while j >= 0 and et - entries[j].t <= window:
                before = float(entries[j].v)  # type: ignore[arg-type]
                if before > v and before * rapid_fraction >= v:  # 0 after 0 is no decline
                    if ref is None or float(entries[j].v) > float(entries[ref].v):  # type: ignore[arg-type]
                        ref = j
                j -= 1
        rapid = ref is not None and not rapid_prev
        rapid_prev = ref is not None
        # --- grade machine
        if c.pending and RESTART in (agran_on, severe_on, n_on):
            # an episode ended by the gap: the improvement the results back above it showed is
            # settled (as two of them would have), so the new episode's grade reads from there
            c.grade, c.pending = c.pending_grade, 0
        change = _grade_step(c, g)
        new_severe = severe_on in STARTS
        onset = "agranulocytosis" if agran_on in STARTS and (new_severe or not was_agran) else (
            "severe_neutropenia" if new_severe else None)
        in_paged = in_severe and not new_severe  # inside a severe episode that has paged
        if onset:
            here.append(Finding(onset, e.oid, et, v, "critical",
                                {"index": i, "limits": lim, "from": change[0] if change else None,
                                 "rapid_from": ref, "episode": severe.start}))
        elif rapid and not in_paged and float(entries[ref].v) >= l_severe:  # type: ignore[arg-type,index]
            # a fall inside a severe episode, or from one severe count to another, is that
            # episode's, already paged: recorded in its nadir, not raised again
            here.append(Finding("rapid_decline", e.oid, et, v, "warning",
                                {"index": i, "ref": ref, "limits": lim,
                                 "from": change[0] if change else None}))
        elif change and change[1] != "normal" and not (in_paged and RANK[change[1]] >= RANK["severe"]):
            frm, to = change
            sev = "warning" if frm is None or RANK[to] > RANK[frm] else "info"
            here.append(Finding("grade_change", f"{e.oid}:{to}", et, v, sev,
                                {"index": i, "from": frm, "to": to, "limits": lim,
                                 "improving": sev == "info"}))
        if emit and here:
            findings.extend(here)
    return rapid_prev


RESTART = "restart"
STARTS = ("start", RESTART)


def _stretch(s: Stretch, e: Obs, v: float, below: bool, rise_s: float, silence_s: float) -> bool:
    """One count through the chronic clock; True when it is below the limit (a count that can
    decide chronicity). A count below after a rise longer than ``rise_s``, or after a silence
    longer than ``silence_s``, starts a new stretch."""
    et = e.t
    prev, s.prev = s.prev, et
    if s.start and et - prev > silence_s:  # nothing is known of the time between: over
        s.start, s.nadir, s.chronic, s.rise_from, s.peak, s.rise = (), (), False, 0, (), ()
    if not below:
        if s.start:
            if not s.rise_from:
                s.rise_from, s.peak = et, (et, e.oid, v)
            elif v > s.peak[2]:
                s.peak = (et, e.oid, v)
        return False
    if not s.start or et - prev > silence_s or (s.rise_from and et - s.rise_from > rise_s):
        s.start, s.nadir, s.chronic, s.rise_from, s.peak, s.rise = (et, e.oid, v), (et, e.oid, v), False, 0, (), ()
        return True
    if s.rise_from:
        if not s.rise or s.peak[2] > s.rise[2][2]:
            s.rise = (s.rise_from, et, s.peak)
        s.rise_from, s.peak = 0, ()
    if v < s.nadir[2]:
        s.nadir = (et, e.oid, v)
    return True


def _track(tr: Track, e: Obs, v: float, below: bool, confirmations: int, gap_s: float) -> str | None:
    """One result through one episode track: "start" (a new episode), "end" (recovery confirmed
    by ``confirmations`` results back at or above the limit), "restart" (this result is below the
    limit, the previous one was back at or above it and the episode's last result below it is more
    than ``gap_s`` seconds older: the episode ended at its first result back above, ``back``, and
    this result opens a new one) or None."""
    et = e.t
    if below:
        if not tr.open or (tr.above and et - tr.last > gap_s):
            how = RESTART if tr.open else "start"
            tr.open, tr.start, tr.nadir = True, (et, e.oid, v), (et, e.oid, v)
            tr.above, tr.last, tr.back = 0, et, ()
            return how
        tr.above, tr.last, tr.back = 0, et, ()
        if v < tr.nadir[2]:
            tr.nadir = (et, e.oid, v)
        return None
    if tr.open:
        if not tr.above:
            tr.back = (et, e.oid, v)
        tr.above += 1
        if tr.above >= confirmations:
            tr.open, tr.above, tr.back = False, 0, ()
            return "end"
    return None


def _grade_step(c: Carry, g: str) -> tuple[str | None, str] | None:
    """Worsening counts at once; an improvement needs ``2`` consecutive better results."""
    if c.grade is None:
        c.grade = g
        return (None, g)
    if RANK[g] > RANK[c.grade]:
        frm, c.grade, c.pending = c.grade, g, 0
        return (frm, g)
    if RANK[g] < RANK[c.grade]:
        c.pending_grade = worse(c.pending_grade, g) if c.pending else g
        c.pending += 1
        if c.pending >= 2:
            frm, c.grade, c.pending = c.grade, c.pending_grade, 0
            return (frm, c.grade)
        return None
    c.pending = 0
    return None


def _confirm(f: Finding, grades: list[str]) -> Finding:
    """A worsening is confirmed when the next result is at least as bad."""
    i = f.ctx.get("index")
    if i is None or f.kind in ("recovery", "chronic_neutropenia"):
        return f
    target = RANK[grades[i]]
    nxt = grades[i + 1] if i + 1 < len(grades) else None
    f.ctx["confirmed"] = f.ctx.get("improving", False) or (nxt is not None and RANK[nxt] >= target)
    f.ctx["confirming_index"] = i + 1 if nxt is not None else None
    return f
