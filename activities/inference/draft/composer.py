"""Draft composer: a seeded, rule-based arranger that turns control tokens into note events.

Pure and deterministic: the same tokens always give the same `Composition` (all choices come
from `numpy.random.default_rng(seed)`). The piece has an intro (thin texture, rising dynamics),
a body of 4/8-bar sections alternating two progressions (A/B), a V chord cadence and a final
tonic chord. Duration and tempo are authoritative; `tokens.bars` is only a hint because the
number of whole bars that fit is recomputed from them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pretty_midi

from activities.inference.backend import UnsupportedControlsError
from schemas.controls import ControlTokens, InstrumentToken
from schemas.music import Mode

DRUM_CHANNEL = 9  # General MIDI channel 10, zero-based
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)
MAX_MELODIC_CHANNELS = 15

SectionKind = Literal["intro", "A", "B", "outro"]

# GM percussion keys.
KICK, SIDE_STICK, SNARE, CLOSED_HAT, OPEN_HAT, CRASH, RIDE = 36, 37, 38, 42, 46, 49, 51
TAMBOURINE, SHAKER = 54, 70
TOMS = (50, 48, 47, 45)

# Mix levels in dB relative to the melody; the renderer first evens out the SoundFont's very
# uneven preset loudness, so these are the intended balance, whatever the programs.
ROLE_LEVEL_DB = {"drums": -7.0, "bass": -9.0, "harmony": -3.0, "pad": -12.0, "melody": 0.0}
ROLE_PANS = {  # stereo positions (-1 left .. 1 right) for the 1st, 2nd, ... instrument of a role
    "drums": (0.0, -0.3, 0.3),
    "bass": (0.0, -0.1, 0.1),
    "harmony": (-0.3, 0.3, 0.0),
    "pad": (0.3, -0.3, 0.0),
    "melody": (0.0, 0.2, -0.2),
}


@dataclass(frozen=True)
class Chord:
    """A diatonic triad on scale degree `degree` (0-based)."""

    degree: int
    leading_tone: bool = False  # minor-key V: raise the 7th degree (harmonic minor)

    @property
    def degrees(self) -> tuple[int, int, int]:
        return (self.degree, self.degree + 2, self.degree + 4)


@dataclass(frozen=True)
class Key:
    tonic_pc: int
    mode: Mode

    @property
    def scale(self) -> tuple[int, ...]:
        return MAJOR_SCALE if self.mode == "major" else MINOR_SCALE

    def semitones(self, d: int, chord: Chord | None = None) -> int:
        """Semitones above the tonic of diatonic index `d` (may be negative or > 6)."""
        raise_7th = chord is not None and chord.leading_tone and d % 7 == 6
        return 12 * (d // 7) + self.scale[d % 7] + (1 if raise_7th else 0)

    def pitch_class(self, d: int, chord: Chord | None = None) -> int:
        return (self.tonic_pc + self.semitones(d, chord)) % 12

    def chord_pcs(self, chord: Chord) -> list[int]:
        return [self.pitch_class(d, chord) for d in chord.degrees]

    def scale_pcs(self) -> set[int]:
        """Pitch classes the draft composer may use (minor adds the harmonic-minor 7th)."""
        pcs = {(self.tonic_pc + s) % 12 for s in self.scale}
        if self.mode == "minor":
            pcs.add((self.tonic_pc + 11) % 12)
        return pcs


_V = Chord(4, leading_tone=True)
MAJOR_PROGRESSIONS: tuple[tuple[Chord, ...], ...] = tuple(
    tuple(Chord(d) for d in p) for p in ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 0), (0, 3, 5, 4))
)
MINOR_PROGRESSIONS: tuple[tuple[Chord, ...], ...] = (
    (Chord(0), Chord(5), Chord(2), Chord(6)),  # i-VI-III-VII
    (Chord(0), Chord(3), _V, Chord(0)),  # i-iv-V-i
    (Chord(0), Chord(5), Chord(3), _V),  # i-VI-iv-V
    (Chord(0), Chord(6), Chord(5), _V),  # i-VII-VI-V
)


@dataclass(frozen=True)
class Note:
    start_s: float
    end_s: float
    pitch: int
    velocity: int


@dataclass(frozen=True)
class Part:
    """The notes of one instrument on its MIDI channel, with its mixer settings."""

    instrument: InstrumentToken
    channel: int
    level_db: float  # mix level after loudness calibration of the program
    pan: float  # -1 left .. 1 right
    notes: tuple[Note, ...]
    carries_melody: bool = False


@dataclass(frozen=True)
class Bar:
    index: int
    start_s: float
    chord: Chord
    section: SectionKind
    section_number: int
    bar_in_section: int
    section_length: int
    energy: float  # 0..1, scales velocities

    @property
    def is_section_end(self) -> bool:
        return self.bar_in_section == self.section_length - 1


@dataclass(frozen=True)
class Composition:
    """A complete arrangement: timing grid, harmony plan and one `Part` per instrument."""

    tempo_bpm: float
    beats_per_bar: int
    duration_s: float
    key: Key
    bars: tuple[Bar, ...]
    parts: tuple[Part, ...]
    melody: tuple[Note, ...]  # the lead line as played by the melody-carrying part

    @property
    def beat_s(self) -> float:
        return 60.0 / self.tempo_bpm

    def to_pretty_midi(self) -> pretty_midi.PrettyMIDI:
        """The composition as a MIDI object (for export or inspection; channels are implicit)."""
        pm = pretty_midi.PrettyMIDI(initial_tempo=self.tempo_bpm)
        pm.time_signature_changes.append(pretty_midi.TimeSignature(self.beats_per_bar, 4, 0.0))
        for part in self.parts:
            inst = pretty_midi.Instrument(
                program=0 if part.instrument.is_drum else part.instrument.program,
                is_drum=part.instrument.is_drum,
                name=part.instrument.name,
            )
            inst.notes = [
                pretty_midi.Note(n.velocity, n.pitch, n.start_s, n.end_s) for n in part.notes
            ]
            pm.instruments.append(inst)
        return pm


@dataclass
class _Style:
    """Per-piece choices drawn once from the seed, so repeated sections sound alike."""

    progressions: dict[str, tuple[Chord, ...]]
    motifs: dict[str, _Motif]
    drum_kick: dict[str, str]
    bass_pattern: dict[str, str]
    harmony_patterns: tuple[str, str]
    arp_order: tuple[int, ...]
    fill_toms: bool


@dataclass(frozen=True)
class _Motif:
    rhythm: tuple[tuple[float, float], ...]  # (onset beat, length in beats) within a bar
    steps: tuple[int, ...]  # diatonic step into each note
    centre: int  # diatonic index the phrase starts near


@dataclass
class _MelodyNote:
    start_s: float
    end_s: float
    d: int
    chord: Chord
    velocity: int


@dataclass
class _Ctx:
    key: Key
    beat_s: float
    bpb: int
    duration_s: float
    final_end_s: float
    bars: list[Bar]
    style: _Style
    rng: np.random.Generator
    subdiv: int = field(default=2)


def compose(tokens: ControlTokens) -> Composition:
    """Arrange a piece honouring the tokens' tempo, key, metre, duration, instruments and seed.

    Raises:
        ValueError: the duration or tempo is not positive, or more than 15 melodic instruments.
    """
    if not (tokens.duration_s > 0 and math.isfinite(tokens.duration_s)):
        raise UnsupportedControlsError(f"duration_s must be positive, got {tokens.duration_s}")
    if not (tokens.tempo_bpm > 0 and math.isfinite(tokens.tempo_bpm)):
        raise UnsupportedControlsError(f"tempo_bpm must be positive, got {tokens.tempo_bpm}")
    rng = np.random.default_rng(tokens.seed % 2**64)
    key = Key(tokens.tonic_pc % 12, tokens.mode)
    bpb = max(1, tokens.beats_per_bar)
    beat_s = 60.0 / tokens.tempo_bpm
    style = _draw_style(rng, key, bpb, beat_s)
    bars = _plan_bars(rng, style, tokens.duration_s, bpb * beat_s)
    # The final chord is released early enough for its natural decay to be heard before the
    # renderer's end fade.
    last_start = bars[-1].start_s
    final_end = tokens.duration_s - min(0.75, 0.3 * (tokens.duration_s - last_start))
    ctx = _Ctx(
        key=key,
        beat_s=beat_s,
        bpb=bpb,
        duration_s=tokens.duration_s,
        final_end_s=final_end,
        bars=bars,
        style=style,
        rng=rng,
        subdiv=4 if tokens.tempo_bpm < 70 else 2,
    )
    instruments = list(tokens.instruments) or [
        InstrumentToken(name="piano", program=0, is_drum=False, role="harmony")
    ]
    parts, melody = _arrange(ctx, instruments)
    return Composition(
        tempo_bpm=tokens.tempo_bpm,
        beats_per_bar=bpb,
        duration_s=tokens.duration_s,
        key=key,
        bars=tuple(bars),
        parts=tuple(parts),
        melody=tuple(melody),
    )


# --- planning -----------------------------------------------------------------------------


def _draw_style(rng: np.random.Generator, key: Key, bpb: int, beat_s: float) -> _Style:
    progs = MAJOR_PROGRESSIONS if key.mode == "major" else MINOR_PROGRESSIONS
    a, b = rng.choice(len(progs), size=2, replace=False)
    harmony_styles = ("arp", "block", "comp")
    ha, hb = rng.choice(len(harmony_styles), size=2, replace=False)
    kicks = ("basic", "push", "floor", "syncop")
    bass = ("root_half", "eighths", "walk", "sync")
    ba, bb = rng.choice(len(bass), size=2, replace=False)
    arp_orders = ((0, 1, 2, 1), (0, 1, 2, 3), (0, 2, 1, 2), (0, 2, 3, 1))
    return _Style(
        progressions={"A": progs[a], "B": progs[b]},
        motifs={
            "A": _draw_motif(rng, bpb, beat_s, centre=2),
            "B": _draw_motif(rng, bpb, beat_s, centre=4),
        },
        drum_kick={"A": kicks[rng.integers(len(kicks))], "B": kicks[rng.integers(len(kicks))]},
        bass_pattern={"A": bass[ba], "B": bass[bb]},
        harmony_patterns=(harmony_styles[ha], harmony_styles[hb]),
        arp_order=arp_orders[rng.integers(len(arp_orders))],
        fill_toms=bool(rng.random() < 0.5),
    )


def _draw_motif(rng: np.random.Generator, bpb: int, beat_s: float, centre: int) -> _Motif:
    cells: list[tuple[tuple[float, float], ...]] = [
        ((0.0, 1.0),),
        ((0.0, 0.5), (0.5, 0.5)),
        ((0.0, 2.0),),  # spans two beats
        (),
        ((0.5, 0.5),),
    ]
    weights = [3.0, 3.0, 1.5, 1.0, 1.0]
    if beat_s >= 0.35:  # sixteenths only where they are playable and audible
        cells.append(((0.0, 0.75), (0.75, 0.25)))
        weights.append(1.5)
    p = np.asarray(weights) / sum(weights)
    rhythm: list[tuple[float, float]] = []
    beat = 0
    while beat < bpb:
        cell = cells[rng.choice(len(cells), p=p)]
        span = 2 if any(o + d > 1.0 for o, d in cell) else 1
        if beat + span > bpb or (beat == 0 and not cell):
            cell, span = cells[0], 1
        rhythm.extend((beat + o, d) for o, d in cell)
        beat += span
    if len(rhythm) < 2 and bpb > 1:
        rhythm = [(0.0, 1.0)] + [(float(b), 1.0) for b in range(1, bpb)]
    steps = tuple(int(s) for s in rng.choice([-2, -1, 0, 1, 2], size=len(rhythm), p=_STEP_P))
    return _Motif(rhythm=tuple(rhythm), steps=steps, centre=centre)


_STEP_P = np.array([1.2, 3.0, 0.8, 3.0, 1.2]) / 9.2  # mostly steps, some leaps, few repeats


def _plan_bars(
    rng: np.random.Generator, style: _Style, duration_s: float, bar_s: float
) -> list[Bar]:
    n = max(1, int(duration_s / bar_s + 1e-9))
    intro = 0 if n < 6 else 1 if n < 12 else 2 if n < 32 else 4
    body = n - intro - 1
    layout: list[tuple[SectionKind, int]] = [("intro", intro)] if intro else []
    if body > 0:
        sec_len = 8 if body >= 16 else 4
        count = max(1, body // sec_len)
        forms = ("AB", "AAB", "ABB")
        form = forms[rng.integers(len(forms))]
        for i in range(count):
            length = sec_len + (body - count * sec_len if i == count - 1 else 0)
            kind: SectionKind = "A" if i == 0 else form[i % len(form)]  # type: ignore[assignment]
            layout.append((kind, length))
    layout.append(("outro", 1))
    # Slow harmonic rhythm at fast tempi keeps chords from flashing by.
    bars_per_chord = 2 if bar_s < 1.2 else 1

    bars: list[Bar] = []
    for number, (kind, length) in enumerate(layout):
        for j in range(length):
            i = len(bars)
            if kind in ("intro", "outro"):
                chord = Chord(0)
            else:
                prog = style.progressions[kind]
                chord = prog[(j // bars_per_chord) % len(prog)]
            if kind == "intro":
                energy = 0.5 + 0.3 * (j + 1) / length
            elif kind == "outro":
                energy = 0.8
            else:
                energy = 0.82 if kind == "A" else 0.95
            bars.append(Bar(i, i * bar_s, chord, kind, number, j, length, energy))
    # Cadence: the last body bar turns to the dominant so the final tonic resolves.
    if len(bars) >= 2 and bars[-2].section in ("A", "B"):
        b = bars[-2]
        bars[-2] = Bar(
            b.index,
            b.start_s,
            _V,
            b.section,
            b.section_number,
            b.bar_in_section,
            b.section_length,
            b.energy * 0.95,
        )
    return bars


# --- arranging ----------------------------------------------------------------------------


def _arrange(ctx: _Ctx, instruments: Sequence[InstrumentToken]) -> tuple[list[Part], list[Note]]:
    """One part per instrument, plus the lead line (empty for a drums-only line-up)."""
    melodic = [i for i in instruments if not i.is_drum]
    if len(melodic) > MAX_MELODIC_CHANNELS:
        raise UnsupportedControlsError(
            f"at most {MAX_MELODIC_CHANNELS} non-drum instruments are supported"
        )
    roles = [("drums" if i.is_drum else i.role) for i in instruments]
    carrier: int | None = None  # index of the instrument that carries the melody
    for wanted in ("melody", "harmony", "pad", "bass"):
        if wanted in roles:
            carrier = roles.index(wanted)
            break
    # No melody instrument: the first harmony (else pad, else bass) instrument carries the tune.
    melody = _melody_line(ctx) if carrier is not None else []
    lead = _clip(ctx, _realize_melody(ctx, melody, 0))

    parts: list[Part] = []
    seen: dict[str, int] = {}
    next_channel = 0
    for idx, (inst, role) in enumerate(zip(instruments, roles, strict=True)):
        k = seen.get(role, 0)
        seen[role] = k + 1
        if role == "drums":
            channel = DRUM_CHANNEL
        else:
            channel = next_channel
            next_channel += 2 if next_channel == DRUM_CHANNEL - 1 else 1
        notes: list[Note] = []
        if role == "drums":
            notes = _drums(ctx) if k == 0 else _percussion(ctx)
        elif role == "bass":
            notes = _bass(ctx, k)
        elif role == "pad":
            notes = _pad(ctx, k)
        elif role == "harmony":
            notes = _harmony(ctx, k, light=idx == carrier)
        if role == "melody" or idx == carrier:
            notes += _realize_melody(ctx, melody, k if role == "melody" else 0)
        notes = _clip(ctx, notes)
        pans = ROLE_PANS[role]
        level = ROLE_LEVEL_DB[role] - 2.0 * k  # doubled roles must not swamp the mix
        pan = pans[k % len(pans)]
        parts.append(Part(inst, channel, level, pan, tuple(notes), carries_melody=idx == carrier))
    return parts, lead


def _clip(ctx: _Ctx, notes: list[Note]) -> list[Note]:
    """Drop notes past the end, clip the rest to it and sort by onset."""
    out = []
    for n in notes:
        if n.start_s >= max(0.0, ctx.duration_s - 0.01) > 0.0 or not 0 <= n.pitch <= 127:
            continue
        out.append(
            Note(n.start_s, min(n.end_s, ctx.duration_s), n.pitch, max(1, min(127, n.velocity)))
        )
    return sorted(out, key=lambda n: (n.start_s, n.pitch))


def _vel(ctx: _Ctx, base: float, energy: float, jitter: float = 4.0) -> int:
    return round(base * (0.55 + 0.45 * energy) + ctx.rng.uniform(-jitter, jitter))


def _t(ctx: _Ctx, bar: Bar, beat: float) -> float:
    return bar.start_s + beat * ctx.beat_s


def _bar_end(ctx: _Ctx, bar: Bar) -> float:
    return ctx.final_end_s if bar.section == "outro" else _t(ctx, bar, ctx.bpb)


def _nearest(pc: int, centre: int) -> int:
    """The pitch with pitch class `pc` nearest to MIDI pitch `centre`."""
    return centre + ((pc - centre + 6) % 12) - 6


def _voicing(ctx: _Ctx, chord: Chord, centre: int) -> list[int]:
    # Each chord tone nearest a fixed centre: close voicings with smooth voice leading.
    return sorted(_nearest(pc, centre) for pc in ctx.key.chord_pcs(chord))


def _bass(ctx: _Ctx, k: int) -> list[Note]:
    notes: list[Note] = []
    bpb, sd = ctx.bpb, ctx.subdiv
    for i, bar in enumerate(ctx.bars):
        pcs = ctx.key.chord_pcs(bar.chord)
        root = 36 + pcs[0] + (12 if k % 2 else 0)  # a second bass doubles an octave up
        third = root + (pcs[1] - pcs[0]) % 12
        fifth = root + (pcs[2] - pcs[0]) % 12
        if bar.section == "outro":
            notes.append(Note(bar.start_s, ctx.final_end_s, root, _vel(ctx, 100, bar.energy)))
            continue
        if bar.section == "intro":
            if bar.bar_in_section >= bar.section_length // 2:
                notes.append(Note(bar.start_s, _bar_end(ctx, bar), root, _vel(ctx, 85, bar.energy)))
            continue
        pattern = ctx.style.bass_pattern[bar.section] if k == 0 else "root_half"
        hits: list[tuple[float, float, int]] = []  # (beat, beats, pitch)
        if pattern == "root_half":
            half = max(1, bpb // 2)
            hits = [(0.0, float(half), root)]
            if bpb > 1:
                hits.append((float(half), float(bpb - half), fifth))
        elif pattern == "eighths":
            step = 1.0 / min(sd, 2)
            hits = [(j * step, step * 0.9, root) for j in range(int(bpb / step))]
        elif pattern == "walk":
            nxt = ctx.bars[i + 1].chord if i + 1 < len(ctx.bars) else Chord(0)
            target = 36 + ctx.key.chord_pcs(nxt)[0]
            tones = [root, third, fifth]
            hits = [(float(b), 0.9, tones[b % len(tones)]) for b in range(bpb - 1)]
            # Diatonic step into the next root (from below when rising, else from above),
            # spelled in the current chord: over V in minor, the leading tone rises to i.
            nd, here = nxt.degree, bar.chord
            if target > root:
                approach = target - (ctx.key.semitones(nd) - ctx.key.semitones(nd - 1, here))
            elif target < root:
                approach = target + (ctx.key.semitones(nd + 1, here) - ctx.key.semitones(nd))
            else:
                approach = fifth
            hits.append((bpb - 1.0, 0.9, approach if bpb > 1 else root))
        else:  # "sync"
            hits = [(0.0, 1.4, root)]
            if bpb >= 2:
                hits.append((1.5, 0.45, root))
            if bpb >= 3:
                # The chord's third, not only roots and fifths: a bass whose overtones are the
                # only thirds around makes minor chords read as major.
                hits.append((bpb - 1.0, 0.9, third))
        for beat, beats, pitch in hits:
            accent = 10 if beat == 0 else 0
            notes.append(
                Note(
                    _t(ctx, bar, beat),
                    _t(ctx, bar, beat + beats),
                    pitch,
                    _vel(ctx, 92 + accent, bar.energy),
                )
            )
    return notes


def _pad(ctx: _Ctx, k: int) -> list[Note]:
    notes: list[Note] = []
    centre = 57 + (12 if k % 2 else 0)
    start_i = 0
    for i, bar in enumerate(ctx.bars):
        # Hold a chord across bars until it or the section changes.
        nxt = ctx.bars[i + 1] if i + 1 < len(ctx.bars) else None
        if nxt is not None and nxt.chord == bar.chord and nxt.section == bar.section:
            continue
        first = ctx.bars[start_i]
        start_i = i + 1
        voicing = _voicing(ctx, bar.chord, centre)
        voicing.insert(0, _nearest(ctx.key.chord_pcs(bar.chord)[0], centre - 12))
        end = _bar_end(ctx, bar) - (0.0 if bar.section == "outro" else 0.03)
        base = 70 if first.section == "A" else 80
        for p in voicing:
            notes.append(Note(first.start_s, end, p, _vel(ctx, base, first.energy, 2)))
    return notes


def _harmony(ctx: _Ctx, k: int, light: bool) -> list[Note]:
    notes: list[Note] = []
    bpb, beat_s = ctx.bpb, ctx.beat_s
    centre = 62 + (0, 12, -7)[k % 3]
    pats = ctx.style.harmony_patterns
    base_vel = 72 if light else 84
    for bar in ctx.bars:
        voicing = _voicing(ctx, bar.chord, centre)
        if bar.section in ("intro", "outro"):
            for p in voicing:
                notes.append(
                    Note(bar.start_s, _bar_end(ctx, bar), p, _vel(ctx, base_vel, bar.energy))
                )
            continue
        # A second harmony instrument takes the other pattern so the two interlock.
        pattern = pats[((0 if bar.section == "A" else 1) + k) % 2]
        if pattern == "arp":
            step = 0.5 if beat_s > 0.33 else 1.0
            tones = [*voicing, voicing[0] + 12]
            n_steps = round(bpb / step)
            for j in range(n_steps):
                p = tones[ctx.style.arp_order[j % len(ctx.style.arp_order)] % len(tones)]
                accent = 8 if j == 0 else 0
                start = _t(ctx, bar, j * step)
                notes.append(
                    Note(
                        start,
                        start + 2 * step * beat_s,
                        p,
                        _vel(ctx, base_vel + accent - 6, bar.energy),
                    )
                )
        elif pattern == "block":
            for b in range(bpb):
                accent = 8 if b == 0 else 0
                for p in voicing:
                    notes.append(
                        Note(
                            _t(ctx, bar, b),
                            _t(ctx, bar, b + 0.85),
                            p,
                            _vel(ctx, base_vel - 8 + accent, bar.energy),
                        )
                    )
        else:  # "comp": long downbeat, then off-beat stabs
            hits = [(0.0, 1.4)] + [(b + 0.5, 0.4) for b in range(1, bpb, 2)]
            for beat, beats in hits:
                for p in voicing:
                    notes.append(
                        Note(
                            _t(ctx, bar, beat),
                            _t(ctx, bar, beat + beats),
                            p,
                            _vel(ctx, base_vel - (0 if beat == 0 else 10), bar.energy),
                        )
                    )
    return notes


def _melody_line(ctx: _Ctx) -> list[_MelodyNote]:
    """The tune in diatonic indices (0 = tonic of the melody octave), phrased in 4-bar units."""
    out: list[_MelodyNote] = []
    lo, hi = -3, 9
    prev: int | None = None
    for i, bar in enumerate(ctx.bars):
        chord_tones = {d % 7 for d in bar.chord.degrees}

        def snap(d: int, tones: set[int] = chord_tones) -> int:
            for delta in (0, -1, 1, -2, 2, -3, 3):
                if (d + delta) % 7 in tones and lo <= d + delta <= hi:
                    return d + delta
            return d

        if bar.section == "intro":
            continue
        if bar.section == "outro":
            d = 7 if prev is None or prev >= 4 else 0
            out.append(
                _MelodyNote(bar.start_s, ctx.final_end_s, d, bar.chord, _vel(ctx, 96, bar.energy))
            )
            continue
        motif = ctx.style.motifs[bar.section]
        phrase_pos = bar.bar_in_section % 4
        next_is_outro = i + 1 < len(ctx.bars) and ctx.bars[i + 1].section == "outro"
        if phrase_pos == 3 or next_is_outro:
            # Cadence bar: a long chord tone, then a pickup into the next phrase.
            d = snap(prev if prev is not None else motif.centre)
            long_beats = max(1.0, ctx.bpb - 1.0) if ctx.bpb > 1 else 1.0
            out.append(
                _MelodyNote(
                    _t(ctx, bar, 0),
                    _t(ctx, bar, long_beats * 0.95),
                    d,
                    bar.chord,
                    _vel(ctx, 96, bar.energy),
                )
            )
            prev = d
            if ctx.bpb > 1 and not next_is_outro:
                pick = d + (1 if d < motif.centre else -1)
                out.append(
                    _MelodyNote(
                        _t(ctx, bar, ctx.bpb - 0.5),
                        _t(ctx, bar, ctx.bpb - 0.05),
                        pick,
                        bar.chord,
                        _vel(ctx, 84, bar.energy),
                    )
                )
                prev = pick
            continue
        steps = list(motif.steps)
        if phrase_pos == 2:  # variation: the contour turned upside down
            steps = [-s for s in steps]
        if ctx.rng.random() < 0.3 and len(steps) > 1:  # small per-bar ornament
            j = int(ctx.rng.integers(1, len(steps)))
            steps[j] += int(ctx.rng.choice([-1, 1]))
        for j, ((onset, beats), step) in enumerate(zip(motif.rhythm, steps, strict=True)):
            if prev is None or (phrase_pos == 0 and j == 0):
                d = snap(motif.centre)
            else:
                d = prev + step
                if d > hi:
                    d = 2 * hi - d
                if d < lo:
                    d = 2 * lo - d
                if onset == int(onset) and (onset % 2 == 0 or beats >= 1.0):
                    d = snap(d)
                if len(out) >= 2 and out[-1].d == out[-2].d == d:
                    # A third repeat in a row drones: step towards the phrase centre instead.
                    d += 1 if d < motif.centre else -1
            accent = 10 if onset == 0 else 4 if onset == int(onset) else 0
            out.append(
                _MelodyNote(
                    _t(ctx, bar, onset),
                    _t(ctx, bar, onset + beats * 0.92),
                    d,
                    bar.chord,
                    _vel(ctx, 86 + accent, bar.energy),
                )
            )
            prev = d
    return out


def _realize_melody(ctx: _Ctx, line: list[_MelodyNote], k: int) -> list[Note]:
    """Pitches for the k-th melody instrument: the tune, then a third / an octave below in B."""
    tonic = 60 + ctx.key.tonic_pc + (12 if ctx.key.tonic_pc < 6 else 0)
    notes: list[Note] = []
    for m in line:
        d = m.d
        octave = 0
        if k:
            section = _bar_at(ctx, m.start_s).section
            if section not in ("B", "outro"):
                continue
            if k % 2 == 1:
                d -= 2
            else:
                octave = -12
        notes.append(
            Note(
                m.start_s,
                m.end_s,
                tonic + octave + ctx.key.semitones(d, m.chord),
                m.velocity - (8 if k else 0),
            )
        )
    return notes


def _bar_at(ctx: _Ctx, t: float) -> Bar:
    i = min(len(ctx.bars) - 1, max(0, int(t / (ctx.bpb * ctx.beat_s) + 1e-9)))
    return ctx.bars[i]


def _drums(ctx: _Ctx) -> list[Note]:
    notes: list[Note] = []
    bpb, sd, beat_s = ctx.bpb, ctx.subdiv, ctx.beat_s
    hit_s = min(0.2, beat_s / 2)

    def hit(bar: Bar, beat: float, key: int, vel: float, length: float = hit_s) -> None:
        start = _t(ctx, bar, beat)
        notes.append(Note(start, start + length, key, _vel(ctx, vel, bar.energy, 5)))

    for bar in ctx.bars:
        if bar.section == "outro":
            hit(bar, 0, KICK, 105)
            hit(bar, 0, CRASH, 100, ctx.final_end_s - bar.start_s)
            continue
        if bar.section == "intro":
            for j in range(bpb * sd):
                hit(bar, j / sd, CLOSED_HAT, 70 if j % sd == 0 else 52)
            if bar.bar_in_section >= bar.section_length // 2:
                hit(bar, 0, KICK, 90)
            continue
        kick = ctx.style.drum_kick[bar.section]
        fill = bar.is_section_end and bpb >= 2
        fill_from = bpb - (2 if ctx.style.fill_toms and bpb >= 4 else 1) if fill else bpb
        if bar.bar_in_section == 0 and bar.section_number > 0:
            hit(bar, 0, CRASH, 95, beat_s * 2)
        for b in range(min(bpb, fill_from)):
            if b % 2 == 0 or kick == "floor" or bpb == 1:
                hit(bar, b, KICK, 104 if b == 0 else 96)
            if b % 2 == 1:
                hit(bar, b, SNARE, 98)
            if kick == "push" and b % 2 == 1 and b + 1 < bpb:
                hit(bar, b + 0.5, KICK, 84)
            if kick == "syncop" and b == bpb - 1:
                hit(bar, b + 0.5, KICK, 84)
            cymbal = RIDE if bar.section == "B" else CLOSED_HAT
            for j in range(sd):
                last_off = bar.section == "B" and b == bpb - 1 and j == sd - 1
                hat = OPEN_HAT if last_off else cymbal
                hit(bar, b + j / sd, hat, 76 if j == 0 else 56 if j % 2 else 62)
        if fill:
            steps = (bpb - fill_from) * 4
            for j in range(steps):
                key = SNARE if not ctx.style.fill_toms else TOMS[j * len(TOMS) // steps]
                hit(bar, fill_from + j / 4, key, 72 + 30 * j / max(1, steps - 1))
            hit(bar, fill_from, KICK, 96)
    return notes


def _percussion(ctx: _Ctx) -> list[Note]:
    """A second drum instrument adds tambourine and shaker instead of doubling the kit."""
    notes: list[Note] = []
    for bar in ctx.bars:
        if bar.section not in ("A", "B"):
            continue
        for b in range(ctx.bpb):
            if b % 2 == 1:
                start = _t(ctx, bar, b)
                notes.append(Note(start, start + 0.15, TAMBOURINE, _vel(ctx, 70, bar.energy)))
            start = _t(ctx, bar, b + 0.5)
            notes.append(Note(start, start + 0.1, SHAKER, _vel(ctx, 58, bar.energy)))
    return notes
