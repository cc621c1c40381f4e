"""The melody: motifs, the composer's own tune, and a user's melody with its harmonization.

User melody (`tokens.melody`): the melody voice plays exactly those notes (times in quarters at
`tempo_bpm` from the piece start). If the melody ends before the piece does, it is repeated
from the first bar line at or after its end (period = its length rounded up to whole bars),
as often as fits; notes past the end are dropped or cut. Each bar's chord (or each half-bar's,
where the meter has a middle group boundary) is the diatonic triad under which the melody's
notes - weighted by metric strength and length - are chord tones, the planned progression
breaking ties.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from activities.inference.backend import UnsupportedControlsError
from activities.inference.draft.context import Context, Motif, Note
from activities.inference.draft.form import Bar
from activities.inference.draft.theory import Chord, Key, Meter
from schemas.controls import ControlTokens

DOUBLING_ON = 0.5  # bar level from which second melody instruments join in choruses
# Mood words bias the melody lightly: (register shift in scale steps, rhythmic activity -1..1).
MOOD_BIAS: dict[str, tuple[int, float]] = {
    "calm": (0, -0.8),
    "dreamy": (1, -0.7),
    "warm": (0, -0.4),
    "sad": (-1, -0.6),
    "melancholic": (-1, -0.5),
    "dark": (-2, -0.2),
    "tense": (-1, 0.5),
    "aggressive": (-1, 0.8),
    "epic": (0, 0.2),
    "happy": (2, 0.6),
    "uplifting": (2, 0.4),
    "playful": (1, 1.0),
}


# --- motifs -------------------------------------------------------------------------------

# Rhythm cells as fractions of one pulse: (onset, length); a length past 1 spans two pulses.
_SIMPLE_CELLS: tuple[tuple[tuple[float, float], ...], ...] = (
    ((0.0, 1.0),),
    ((0.0, 0.5), (0.5, 0.5)),
    ((0.0, 2.0),),
    (),
    ((0.5, 0.5),),
    ((0.0, 0.75), (0.75, 0.25)),
)
_COMPOUND_CELLS: tuple[tuple[tuple[float, float], ...], ...] = (
    ((0.0, 1.0),),
    ((0.0, 2 / 3), (2 / 3, 1 / 3)),
    ((0.0, 2.0),),
    (),
    ((1 / 3, 2 / 3),),
    ((0.0, 1 / 3), (1 / 3, 1 / 3), (2 / 3, 1 / 3)),
)
# Base weights; mood activity moves weight from long notes and rests (index 0, 2, 3) to short
# ones (index 1, 4, 5).
_CELL_WEIGHTS = (3.0, 3.0, 1.5, 1.0, 1.0, 1.5)
_CELL_ACTIVITY = (-0.4, 0.5, -0.6, -0.4, 0.3, 0.6)

_STEP_P = np.array([1.2, 3.0, 0.8, 3.0, 1.2]) / 9.2  # mostly steps, some leaps, few repeats


def draw_motif(
    rng: np.random.Generator, meter: Meter, quarter_s: float, centre: int, activity: float
) -> Motif:
    """One bar of tune: a rhythm cell per pulse, and a diatonic step into each note."""
    rhythm: list[tuple[float, float]] = []
    pulses = meter.pulses
    i = 0
    while i < len(pulses):
        on, length = pulses[i]
        compound = meter.pulse_units[i] == 3
        cells = _COMPOUND_CELLS if compound else _SIMPLE_CELLS
        weights = np.array(
            [
                max(0.1, w * (1.0 + a * activity))
                for w, a in zip(_CELL_WEIGHTS, _CELL_ACTIVITY, strict=True)
            ]
        )
        shortest = length * quarter_s * (1 / 3 if compound else 0.25)
        if shortest < 0.09:  # sixteenths only where they are playable and audible
            weights[5] = 0.0
        cell = cells[int(rng.choice(len(cells), p=weights / weights.sum()))]
        spans_two = any(o + d > 1.0 for o, d in cell)
        same_next = i + 1 < len(pulses) and abs(pulses[i + 1][1] - length) < 1e-9
        if (spans_two and not same_next) or (i == 0 and not cell):
            cell, spans_two = cells[0], False
        rhythm.extend((on + o * length, d * length) for o, d in cell)
        i += 2 if spans_two else 1
    if len(rhythm) < 2 and len(pulses) > 1:
        rhythm = list(pulses)
    steps = tuple(int(s) for s in rng.choice([-2, -1, 0, 1, 2], size=len(rhythm), p=_STEP_P))
    return Motif(rhythm=tuple(rhythm), steps=steps, centre=centre)


# --- a user's melody ----------------------------------------------------------------------


def user_melody(tokens: ControlTokens, meter: Meter, quarter_s: float) -> list[Note]:
    """The user's notes on the piece's clock, repeated from the next bar line (see module)."""
    if not tokens.melody:
        return []
    for m in tokens.melody:
        ok = m.start_beat >= 0 and m.duration_beats > 0 and 0 <= m.pitch <= 127
        if not (ok and math.isfinite(m.start_beat) and math.isfinite(m.duration_beats)):
            raise UnsupportedControlsError(
                f"melody note {m.model_dump()} needs start_beat >= 0, duration_beats > 0 and "
                "a MIDI pitch 0-127"
            )
    src = sorted(tokens.melody, key=lambda m: (m.start_beat, m.pitch))
    end_q = max(m.start_beat + m.duration_beats for m in src)
    period_q = max(1, math.ceil(end_q / meter.bar_q - 1e-9)) * meter.bar_q
    total = tokens.duration_s
    out: list[Note] = []
    k = 0
    while k * period_q * quarter_s < total - 1e-9:
        offset = k * period_q
        for m in src:
            start = (m.start_beat + offset) * quarter_s
            if start >= total - 1e-6:
                continue
            end = min(total, (m.start_beat + m.duration_beats + offset) * quarter_s)
            out.append(Note(start, end, m.pitch, max(1, min(127, m.velocity))))
        k += 1
    return out


def harmonize(
    key: Key, meter: Meter, bars: list[Bar], melody: list[Note], quarter_s: float
) -> list[Bar]:
    """Re-choose each bar's chord(s) so the melody's strong notes are chord tones."""
    bar_q = meter.bar_q
    bar_s = bar_q * quarter_s
    by_bar: dict[int, list[tuple[float, float, int]]] = {}  # notes as (on, off) bar quarters
    for n in melody:
        first = int(n.start_s / bar_s + 1e-9)
        last = int(max(n.start_s, n.end_s - 1e-6) / bar_s + 1e-9)
        for b in range(first, min(last, len(bars) - 1) + 1):
            base = b * bar_q
            by_bar.setdefault(b, []).append(
                (n.start_s / quarter_s - base, n.end_s / quarter_s - base, n.pitch % 12)
            )
    chords = key.triads()
    pcs = {c: set(key.chord_pcs(c)) for c in chords}

    def fit(pc: int, chord: Chord) -> float:
        tones = pcs[chord]
        if pc in tones:
            return 1.0
        if any((pc - t) % 12 in (1, 11) for t in tones):
            return -0.6  # a semitone against a chord tone: a clash
        return -0.15

    def best(
        notes: list[tuple[float, float, int]], lo: float, hi: float, planned: Chord, prior: float
    ) -> tuple[float, Chord]:
        weighted = []
        for on, off, pc in notes:
            overlap = min(hi, off) - max(lo, on)
            if overlap <= 1e-9:
                continue
            metric = meter.metric_weight(on) if on >= lo - 1e-9 else 0.6
            weighted.append((metric * (0.5 + min(2.0, overlap)), pc))
        top = (-math.inf, planned)
        for chord in (planned, *[c for c in chords if c != planned]):
            score = sum(w * fit(pc, chord) for w, pc in weighted)
            score += prior if chord == planned else 0.0
            if score > top[0] + 1e-9:
                top = (score, chord)
        return top

    out = list(bars)
    for b, notes in by_bar.items():
        bar = bars[b]
        planned = bar.chord
        prior = 1.5 if bar.final else 0.6
        whole = best(notes, 0.0, bar_q, planned, prior)
        chosen: tuple[tuple[float, Chord], ...] = ((0.0, whole[1]),)
        if meter.half is not None and bar_s >= 1.0 and not bar.final:
            planned2 = bar.chord_at(meter.half)
            head = best(notes, 0.0, meter.half, planned, prior / 2)
            tail = best(notes, meter.half, bar_q, planned2, prior / 2)
            if head[1] != tail[1] and head[0] + tail[0] - 0.5 > whole[0]:
                chosen = ((0.0, head[1]), (meter.half, tail[1]))
        out[b] = replace(bar, chords=chosen)
    return out


# --- the composer's own melody ------------------------------------------------------------


@dataclass
class TuneNote:
    """A note of the composer's tune: diatonic index `d` over `chord`, not yet a pitch."""

    start_s: float
    end_s: float
    d: int
    chord: Chord
    velocity: int
    bar: Bar


def melody_line(ctx: Context, rng: np.random.Generator) -> list[TuneNote]:
    """The tune in diatonic indices (0 = tonic of the melody octave), phrased in 4-bar units."""
    out: list[TuneNote] = []
    lo, hi = -3 + ctx.style.register, 9 + ctx.style.register
    m = ctx.meter
    prev: int | None = None
    for i, bar in enumerate(ctx.bars):
        if bar.section == "intro":
            continue
        if bar.final:
            d = 7 if prev is None or prev >= 4 else 0
            out.append(TuneNote(bar.start_s, ctx.final_end_s, d, bar.chord, 96, bar))
            continue

        def snap(d: int, q: float, bar: Bar = bar) -> int:
            tones = {x % 7 for x in bar.chord_at(q).degrees}
            for delta in (0, -1, 1, -2, 2, -3, 3):
                if (d + delta) % 7 in tones and lo <= d + delta <= hi:
                    return d + delta
            return d

        motif = ctx.style.motifs[bar.material]
        phrase_pos = bar.bar_in_section % 4
        next_is_final = i + 1 < len(ctx.bars) and ctx.bars[i + 1].final
        at_loop_end = ctx.loop and i == len(ctx.bars) - 1
        if phrase_pos == 3 or next_is_final or at_loop_end:
            # Cadence bar: a long chord tone, then a pickup into the next phrase.
            d = snap(prev if prev is not None else motif.centre, 0.0)
            last_on, last_len = m.pulses[-1]
            long_q = last_on if len(m.pulses) > 1 else m.bar_q
            out.append(TuneNote(bar.start_s, ctx.at(bar, long_q * 0.95), d, bar.chord, 96, bar))
            prev = d
            if len(m.pulses) > 1 and not next_is_final:
                pick = d + (1 if d < motif.centre else -1)
                pick_on = last_on + last_len * (2 / 3 if m.pulse_units[-1] == 3 else 0.5)
                end = ctx.at(bar, m.bar_q) - 0.05 * ctx.quarter_s
                out.append(
                    TuneNote(ctx.at(bar, pick_on), end, pick, bar.chord_at(pick_on), 84, bar)
                )
                prev = pick
            continue
        steps = list(motif.steps)
        if phrase_pos == 2:  # variation: the contour turned upside down
            steps = [-s for s in steps]
        if rng.random() < 0.3 and len(steps) > 1:  # small per-bar ornament
            j = int(rng.integers(1, len(steps)))
            steps[j] += int(rng.choice([-1, 1]))
        for j, ((onset, length), step) in enumerate(zip(motif.rhythm, steps, strict=True)):
            if prev is None or (phrase_pos == 0 and j == 0):
                d = snap(motif.centre, onset)
            else:
                d = prev + step
                if d > hi:
                    d = 2 * hi - d
                if d < lo:
                    d = 2 * lo - d
                p = m.pulse_index(onset)
                on_pulse = abs(onset - m.pulses[p][0]) < 1e-6
                if on_pulse and (m.stress[p] > 0 or length >= m.pulses[p][1] - 1e-9):
                    d = snap(d, onset)
                if len(out) >= 2 and out[-1].d == out[-2].d == d:
                    # A third repeat in a row drones: step towards the phrase centre instead.
                    d += 1 if d < motif.centre else -1
            weight = m.metric_weight(onset)
            accent = 10 if weight >= 2 else 4 if weight >= 1 else 0
            out.append(
                TuneNote(
                    ctx.at(bar, onset),
                    ctx.at(bar, onset + length * 0.92),
                    d,
                    bar.chord_at(onset),
                    86 + accent,
                    bar,
                )
            )
            prev = d
    return out


def realize_melody(ctx: Context, line: list[TuneNote], k: int, salt: int) -> list[Note]:
    """Pitches for the k-th melody instrument: the tune, then a third / an octave below."""
    tonic = 60 + ctx.key.tonic_pc + (12 if ctx.key.tonic_pc < 6 else 0)
    notes: list[Note] = []
    for m in line:
        d = m.d
        octave = 0
        if k:
            if not (m.bar.final or (m.bar.material == "B" and m.bar.level >= DOUBLING_ON)):
                continue
            if k % 2 == 1:
                d -= 2
            else:
                octave = -12
        pitch = tonic + octave + ctx.key.semitones(d, m.chord)
        notes.append(
            ctx.note(salt, m.start_s, m.end_s, pitch, m.velocity - (8 if k else 0), m.bar.level)
        )
    return notes


def double_user(ctx: Context, melody: list[Note], salt: int) -> list[Note]:
    """A second melody instrument doubles the user's tune an octave down in choruses."""
    out = []
    for n in melody:
        bar = ctx.bar_at(n.start_s)
        if bar.material == "B" and bar.level >= DOUBLING_ON:
            out.append(ctx.note(salt, n.start_s, n.end_s, n.pitch - 12, n.velocity - 8, 1.0))
    return out
