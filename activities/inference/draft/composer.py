"""Draft composer: a seeded, rule-based arranger that turns control tokens into note events.

Pure and deterministic: the same tokens always give the same `Composition`.

Order of decisions (what makes `layers` work): everything that gives the piece its identity -
the bar grid, progressions, motifs, patterns, the section plan, the harmonization of a user
melody and the composer's own melody - is drawn from `numpy.random.default_rng(seed)` before
`energy` is looked at. Energy then only decides which roles play, how busy their patterns are
and how hard notes are struck; velocity humanization is a hash of (seed, part, onset, pitch),
not a generator draw, so it does not depend on which other notes play either. Two renders that
differ only in energy therefore share progression, melody and bar grid, and the louder one's
sounding roles are a superset of the softer one's.

Meter: `tempo_bpm` counts quarter notes whatever the meter, a bar lasts
`beats_per_bar * 4 / beat_unit` quarters. The bar is cut into felt pulses (`Meter`): one per
beat unit for /2 and /4; for /8 and /16 the units are grouped - dotted-quarter pulses in
compound meters (6/8, 9/8, 12/8), otherwise twos with a three at the end (7/8 = 2+2+3,
5/8 = 2+3). Pulses group into accent groups (4/4 = 2+2, 5/4 = 3+2, 7/4 = 3+2+2) whose first
pulse is stressed: the kick, bass roots and chord changes fall on group starts.

Form: a song has an intro (thin texture), a body of verse/chorus sections and a final tonic bar
after a dominant; `tokens.structure` (intro, verse, chorus, bridge, breakdown, drop, outro),
when given, sets the section order instead, bars shared out in whole bars (intro and outro
short). A loop (`tokens.loop`) is exactly round(duration_s / bar_seconds) bars with no intro,
outro or final chord, and its last chord leads back to its first.

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
from collections.abc import Sequence
from dataclasses import dataclass, replace
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
MAX_BEATS_PER_BAR = 16
BEAT_UNITS = (2, 4, 8, 16)
MIN_LOOP_TOLERANCE_S = 0.01  # a loop's duration may miss a whole number of bars by this much

SectionKind = Literal["intro", "verse", "chorus", "bridge", "breakdown", "drop", "outro"]
SECTION_KINDS: tuple[SectionKind, ...] = (
    "intro",
    "verse",
    "chorus",
    "bridge",
    "breakdown",
    "drop",
    "outro",
)
Material = Literal["A", "B", "C"]  # which progression, motif and patterns a section uses
_MATERIAL: dict[SectionKind, Material] = {
    "intro": "A",
    "verse": "A",
    "chorus": "B",
    "bridge": "C",
    "breakdown": "A",
    "drop": "B",
    "outro": "A",
}
# How hard a section pushes (0..1); scales `energy` into a bar's level.
SECTION_INTENSITY: dict[SectionKind, float] = {
    "intro": 0.45,
    "verse": 0.75,
    "chorus": 1.0,
    "bridge": 0.65,
    "breakdown": 0.35,
    "drop": 1.0,
    "outro": 0.55,
}
# Stem groups, in output order, and the role each instrument role belongs to.
STEM_GROUPS = ("drums", "bass", "harmony", "melody")
ROLE_STEM = {
    "drums": "drums",
    "bass": "bass",
    "harmony": "harmony",
    "pad": "harmony",
    "melody": "melody",
}

# Bar level (energy shaped by the section) from which each texture plays. Monotonic, so a
# higher energy never drops a role that a lower one plays.
DRUMS_LIGHT = 0.3  # kick on the downbeat, cymbal on pulses, side stick
DRUMS_FULL = 0.45  # the groove: kick/snare pattern, cymbal on subdivisions, fills
BUSY = 0.75  # pushes, ghost notes, finer cymbals, bass in eighths
BASS_ON = 0.2  # held roots
BASS_PATTERN = 0.45
HARMONY_PATTERN = 0.35  # below: held chords
PERCUSSION_ON = 0.6
DOUBLING_ON = 0.5  # second melody instruments join in choruses

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
_PIANO_MELODY = InstrumentToken(name="piano", program=0, is_drum=False, role="melody")


# --- meter --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Meter:
    """A time signature's bar grid in quarter notes: felt pulses and their accent groups."""

    beats_per_bar: int
    beat_unit: int
    pulses: tuple[tuple[float, float], ...]  # (onset, length) of each felt beat
    pulse_units: tuple[int, ...]  # beat units in each pulse
    groups: tuple[int, ...]  # pulses per accent group
    stress: tuple[int, ...]  # per pulse: 2 bar downbeat, 1 group start, 0 weak
    drum_roles: tuple[str, ...]  # per pulse: "K" kick, "S" snare/backbeat, "-" neither
    subdivisions: tuple[tuple[float, ...], ...]  # per pulse, onsets of its subdivisions
    half: float | None  # where a bar can change chord halfway (a group start), if anywhere

    @property
    def bar_q(self) -> float:
        return self.beats_per_bar * 4.0 / self.beat_unit

    @property
    def compound(self) -> bool:
        return self.beat_unit >= 8 and self.beats_per_bar % 3 == 0

    def pulse_index(self, q: float) -> int:
        """Index of the pulse sounding at bar offset `q` (quarters)."""
        for i in range(len(self.pulses) - 1, -1, -1):
            if q >= self.pulses[i][0] - 1e-9:
                return i
        return 0

    def metric_weight(self, q: float) -> float:
        """How strong an onset at bar offset `q` is: 2 downbeat .. 0.5 off the pulse."""
        i = self.pulse_index(q)
        if abs(q - self.pulses[i][0]) > 1e-6:
            return 0.5
        return (1.0, 1.5, 2.0)[self.stress[i]]


def _split_units(n: int, size: int) -> tuple[int, ...]:
    """`n` beat units in groups of `size`, any remainder absorbed at the end as 2s and 3s."""
    if n <= size:
        return (n,)
    k, r = divmod(n, size)
    parts = [size] * k
    if r == 1 and size == 2:
        parts[-1] = 3  # 7/8 = 2+2+3
    elif r == 1:
        parts[-1:] = [size - 1, 2]  # 5/16 = 3+2, 9/16 = 4+3+2
    elif r:
        parts.append(r)
    return tuple(parts)


def _pulse_groups(p: int) -> tuple[int, ...]:
    if p <= 3:
        return (p,)
    if p % 2 == 0:
        return (2,) * (p // 2)
    if p % 3 == 0:
        return (3,) * (p // 3)
    return (3,) + (2,) * ((p - 3) // 2)  # 5 = 3+2, 7 = 3+2+2


def make_meter(beats_per_bar: int, beat_unit: int) -> Meter:
    """The bar grid of `beats_per_bar`/`beat_unit`.

    Raises:
        UnsupportedControlsError: numerator outside 1..16 or denominator not 2, 4, 8 or 16.
    """
    if not 1 <= beats_per_bar <= MAX_BEATS_PER_BAR or beat_unit not in BEAT_UNITS:
        raise UnsupportedControlsError(
            f"meter {beats_per_bar}/{beat_unit} is not supported: beats per bar must be "
            f"1-{MAX_BEATS_PER_BAR} and the beat unit one of {', '.join(map(str, BEAT_UNITS))}"
        )
    n, unit_q = beats_per_bar, 4.0 / beat_unit
    if beat_unit <= 4:
        units: tuple[int, ...] = (1,) * n
    elif beat_unit == 8:
        units = _split_units(n, 3 if n % 3 == 0 else 2)
    else:
        units = _split_units(n, 4 if n % 4 == 0 or n % 3 else 3)
    pulses: list[tuple[float, float]] = []
    onset = 0.0
    for u in units:
        pulses.append((onset, u * unit_q))
        onset += u * unit_q
    groups = _pulse_groups(len(pulses))
    stress: list[int] = []
    roles: list[str] = []
    for g in groups:
        stress += [1] + [0] * (g - 1)
        if g == 3:
            roles += list("KSS" if len(groups) == 1 else "K-S")  # waltz vs. 3 of 3+2
        else:
            roles += list("KS"[:g]) + ["-"] * max(0, g - 2)
    stress[0] = 2
    subdivisions = []
    for (on, length), u in zip(pulses, units, strict=True):
        k = u if u in (2, 3) else 2  # eighths of a quarter pulse, dotted pulses in threes
        subdivisions.append(tuple(on + j * length / k for j in range(k)))
    half: float | None = None
    starts = [pulses[i][0] for i in range(len(pulses)) if stress[i] == 1]
    if starts:
        half = min(starts, key=lambda s: abs(s - n * unit_q / 2))
    elif len(pulses) >= 2 and len(pulses) % 2 == 0:
        half = pulses[len(pulses) // 2][0]
    return Meter(
        beats_per_bar=n,
        beat_unit=beat_unit,
        pulses=tuple(pulses),
        pulse_units=units,
        groups=groups,
        stress=tuple(stress),
        drum_roles=tuple(roles),
        subdivisions=tuple(subdivisions),
        half=half,
    )


# --- harmony ------------------------------------------------------------------------------


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

    def triads(self) -> tuple[Chord, ...]:
        """The diatonic triads a melody may be harmonized with (no diminished ones)."""
        if self.mode == "major":
            return tuple(Chord(d) for d in range(6))
        return (Chord(0), Chord(2), Chord(3), _V, Chord(5), Chord(6))


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
_LEADS_HOME = {3, 4, 6}  # IV, V, VII: chords that lead back to the tonic at a loop's seam


# --- the result ---------------------------------------------------------------------------


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
    stem: str = "harmony"  # one of STEM_GROUPS


@dataclass(frozen=True)
class Bar:
    index: int
    start_s: float
    chords: tuple[tuple[float, Chord], ...]  # (bar offset in quarters, chord); first at 0
    section: SectionKind
    material: Material
    section_number: int
    bar_in_section: int
    section_length: int
    level: float  # 0..1: the tokens' energy shaped by the section; decides what plays
    final: bool = False  # a song's closing tonic bar

    @property
    def chord(self) -> Chord:
        return self.chords[0][1]

    @property
    def is_section_end(self) -> bool:
        return self.bar_in_section == self.section_length - 1

    def chord_at(self, q: float) -> Chord:
        chord = self.chords[0][1]
        for on, c in self.chords:
            if q >= on - 1e-9:
                chord = c
        return chord

    def spans(self, bar_q: float) -> list[tuple[float, float, Chord]]:
        """(start, end, chord) in bar quarters for each chord of the bar."""
        ons = [on for on, _ in self.chords] + [bar_q]
        return [(ons[i], ons[i + 1], c) for i, (_, c) in enumerate(self.chords)]


@dataclass(frozen=True)
class Composition:
    """A complete arrangement: timing grid, harmony plan and one `Part` per instrument."""

    tempo_bpm: float
    meter: Meter
    duration_s: float
    key: Key
    bars: tuple[Bar, ...]
    parts: tuple[Part, ...]
    melody: tuple[Note, ...]  # the lead line as played by the melody-carrying part
    loop: bool = False
    energy: float = 0.6
    quarter_s: float = 0.5  # seconds per quarter (a loop stretches it to fit exactly)

    @property
    def beats_per_bar(self) -> int:
        return self.meter.beats_per_bar

    @property
    def beat_unit(self) -> int:
        return self.meter.beat_unit

    @property
    def beat_s(self) -> float:
        """Seconds per quarter note."""
        return self.quarter_s

    @property
    def bar_s(self) -> float:
        return self.meter.bar_q * self.quarter_s

    @property
    def progression(self) -> tuple[tuple[tuple[float, Chord], ...], ...]:
        """Each bar's chords: equal for two renders that differ only in energy."""
        return tuple(b.chords for b in self.bars)

    def stem_parts(self) -> dict[str, tuple[Part, ...]]:
        """Parts by stem group, in `STEM_GROUPS` order, groups without parts left out."""
        out = {g: tuple(p for p in self.parts if p.stem == g) for g in STEM_GROUPS}
        return {g: parts for g, parts in out.items() if parts}

    def to_pretty_midi(self) -> pretty_midi.PrettyMIDI:
        """The composition as a MIDI object (for export or inspection; channels are implicit)."""
        pm = pretty_midi.PrettyMIDI(initial_tempo=60.0 / self.quarter_s)
        pm.time_signature_changes.append(
            pretty_midi.TimeSignature(self.beats_per_bar, self.beat_unit, 0.0)
        )
        for part in self.parts:
            name = part.instrument.name
            inst = pretty_midi.Instrument(
                program=0 if part.instrument.is_drum else part.instrument.program,
                is_drum=part.instrument.is_drum,
                name=f"{name} (melody)" if part.stem == "melody" and part.carries_melody else name,
            )
            inst.notes = [
                pretty_midi.Note(n.velocity, n.pitch, n.start_s, n.end_s) for n in part.notes
            ]
            pm.instruments.append(inst)
        return pm


# --- planning state -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Motif:
    rhythm: tuple[tuple[float, float], ...]  # (onset, length) in quarters within a bar
    steps: tuple[int, ...]  # diatonic step into each note
    centre: int  # diatonic index the phrase starts near


@dataclass
class _Style:
    """Per-piece choices drawn once from the seed, so repeated sections sound alike."""

    progressions: dict[Material, tuple[Chord, ...]]
    motifs: dict[Material, _Motif]
    drum_kick: dict[Material, str]
    bass_pattern: dict[Material, str]
    harmony_pattern: dict[Material, str]
    arp_order: tuple[int, ...]
    fill_toms: bool
    register: int  # scale steps the melody sits above/below its default range


@dataclass
class _MelodyNote:
    start_s: float
    end_s: float
    d: int
    chord: Chord
    velocity: int
    bar: Bar


@dataclass
class _Ctx:
    key: Key
    meter: Meter
    quarter_s: float
    duration_s: float
    final_end_s: float
    bars: list[Bar]
    style: _Style
    seed: int
    loop: bool

    @property
    def bar_s(self) -> float:
        return self.meter.bar_q * self.quarter_s


def compose(tokens: ControlTokens) -> Composition:
    """Arrange a piece honouring tempo, key, meter, duration, instruments, seed and the
    control layer (melody, energy, mood, structure, loop).

    Raises:
        UnsupportedControlsError: non-positive duration or tempo, an unsupported meter, energy
            outside 0..1, a malformed melody, a loop that is not a whole number of bars, or
            more than 15 melodic instruments.
    """
    if not (tokens.duration_s > 0 and math.isfinite(tokens.duration_s)):
        raise UnsupportedControlsError(f"duration_s must be positive, got {tokens.duration_s}")
    if not (tokens.tempo_bpm > 0 and math.isfinite(tokens.tempo_bpm)):
        raise UnsupportedControlsError(f"tempo_bpm must be positive, got {tokens.tempo_bpm}")
    if not 0.0 <= tokens.energy <= 1.0:  # also rejects NaN
        raise UnsupportedControlsError(f"energy must be in [0, 1], got {tokens.energy}")
    meter = make_meter(tokens.beats_per_bar, tokens.beat_unit)
    quarter_s = 60.0 / tokens.tempo_bpm
    n_bars = _bar_count(tokens, meter.bar_q * quarter_s)
    if tokens.loop:
        # Stretch the grid by the (tolerated, tiny) difference so the cycle closes exactly.
        quarter_s = tokens.duration_s / (n_bars * meter.bar_q)
    bar_s = meter.bar_q * quarter_s
    key = Key(tokens.tonic_pc % 12, tokens.mode)
    seed = tokens.seed % 2**64
    rng = np.random.default_rng(seed)
    # The tune has a generator of its own, so mood (which shapes the tune) leaves the form
    # and harmony of a seed alone.
    tune_rng = np.random.default_rng([seed, 1])

    # 1. Identity: all generator draws happen here, none depends on energy.
    style = _draw_style(rng, tune_rng, key, meter, quarter_s, tokens.mood)
    layout = _layout(rng, n_bars, tokens.structure, tokens.loop)
    bars = _plan_bars(style, meter, layout, bar_s, tokens.energy, tokens.loop)
    user = _user_melody(tokens, meter, quarter_s)
    if user:
        bars = _harmonize(key, meter, bars, user, quarter_s)
    if tokens.loop:
        final_end = tokens.duration_s
    else:
        # The final chord is released early enough for its natural decay to be heard before
        # the renderer's end fade.
        last_start = bars[-1].start_s
        final_end = tokens.duration_s - min(0.75, 0.3 * (tokens.duration_s - last_start))
    ctx = _Ctx(
        key=key,
        meter=meter,
        quarter_s=quarter_s,
        duration_s=tokens.duration_s,
        final_end_s=final_end,
        bars=bars,
        style=style,
        seed=seed,
        loop=tokens.loop,
    )
    own_line = [] if user else _melody_line(ctx, tune_rng)

    # 2. Arrangement: energy (via each bar's level) decides what plays; no draws.
    instruments = list(tokens.instruments) or [
        InstrumentToken(name="piano", program=0, is_drum=False, role="harmony")
    ]
    parts, lead = _arrange(ctx, instruments, own_line, user)
    return Composition(
        tempo_bpm=tokens.tempo_bpm,
        meter=meter,
        duration_s=tokens.duration_s,
        key=key,
        bars=tuple(bars),
        parts=tuple(parts),
        melody=tuple(lead),
        loop=tokens.loop,
        energy=tokens.energy,
        quarter_s=quarter_s,
    )


# --- planning -----------------------------------------------------------------------------


def _bar_count(tokens: ControlTokens, bar_s: float) -> int:
    if not tokens.loop:
        return max(1, int(tokens.duration_s / bar_s + 1e-9))
    n = round(tokens.duration_s / bar_s)
    tolerance = max(MIN_LOOP_TOLERANCE_S, 0.005 * tokens.duration_s)
    if n < 1 or abs(n * bar_s - tokens.duration_s) > tolerance:
        raise UnsupportedControlsError(
            f"a loop must last a whole number of bars: {tokens.duration_s:g} s is "
            f"{tokens.duration_s / bar_s:.3f} bars of {tokens.meter} at {tokens.tempo_bpm:g} BPM"
        )
    return n


def _draw_style(
    rng: np.random.Generator,
    tune_rng: np.random.Generator,
    key: Key,
    meter: Meter,
    quarter_s: float,
    mood: str | None,
) -> _Style:
    register, activity = MOOD_BIAS.get((mood or "").strip().lower(), (0, 0.0))
    progs = MAJOR_PROGRESSIONS if key.mode == "major" else MINOR_PROGRESSIONS
    a, b, c = (int(i) for i in rng.choice(len(progs), size=3, replace=False))
    harmony_styles = ("arp", "block", "comp")
    hs = [harmony_styles[int(i)] for i in rng.permutation(3)]
    kicks = ("basic", "push", "floor", "syncop")
    bass = ("root_fifth", "eighths", "walk", "sync")
    bs = [bass[int(i)] for i in rng.choice(len(bass), size=3, replace=False)]
    arp_orders = ((0, 1, 2, 1), (0, 1, 2, 3), (0, 2, 1, 2), (0, 2, 3, 1))
    materials: tuple[Material, ...] = ("A", "B", "C")
    motif_centres = {"A": 2, "B": 4, "C": 3}
    return _Style(
        progressions={"A": progs[a], "B": progs[b], "C": progs[c]},
        motifs={
            m: _draw_motif(tune_rng, meter, quarter_s, motif_centres[m] + register, activity)
            for m in materials
        },
        drum_kick={m: kicks[int(rng.integers(len(kicks)))] for m in materials},
        bass_pattern=dict(zip(materials, bs, strict=True)),
        harmony_pattern=dict(zip(materials, hs, strict=True)),
        arp_order=arp_orders[int(rng.integers(len(arp_orders)))],
        fill_toms=bool(rng.random() < 0.5),
        register=register,
    )


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


def _draw_motif(
    rng: np.random.Generator, meter: Meter, quarter_s: float, centre: int, activity: float
) -> _Motif:
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
    return _Motif(rhythm=tuple(rhythm), steps=steps, centre=centre)


_STEP_P = np.array([1.2, 3.0, 0.8, 3.0, 1.2]) / 9.2  # mostly steps, some leaps, few repeats


def _layout(
    rng: np.random.Generator, n: int, structure: Sequence[str], loop: bool
) -> list[tuple[SectionKind, int]]:
    """Sections and their lengths in bars, summing to `n`."""
    hints: list[SectionKind] = []
    for h in structure:
        word = h.strip().lower()
        for kind in SECTION_KINDS:
            if kind == word and not (loop and kind in ("intro", "outro")):
                hints.append(kind)
    if hints:
        return _layout_from_hints(hints, n)
    if loop:
        return [("verse", n)] if n < 16 else [("verse", n // 2), ("chorus", n - n // 2)]
    intro = 0 if n < 6 else 1 if n < 12 else 2 if n < 32 else 4
    body = n - intro - 1
    layout: list[tuple[SectionKind, int]] = [("intro", intro)] if intro else []
    if body > 0:
        sec_len = 8 if body >= 16 else 4
        count = max(1, body // sec_len)
        forms = ("AB", "AAB", "ABB")
        form = forms[int(rng.integers(len(forms)))]
        for i in range(count):
            length = sec_len + (body - count * sec_len if i == count - 1 else 0)
            body_kind: SectionKind = "verse" if i == 0 or form[i % len(form)] == "A" else "chorus"
            layout.append((body_kind, length))
    layout.append(("outro", 1))
    return layout


def _layout_from_hints(hints: list[SectionKind], n: int) -> list[tuple[SectionKind, int]]:
    """Sections in the hinted order: intro/outro short, the rest sharing the bars equally."""
    hints = list(hints)
    while len(hints) > n and ("intro" in hints or "outro" in hints):
        hints.remove("intro" if "intro" in hints else "outro")
    hints = hints[:n]
    short = {"intro": min(4, max(1, round(n / 12))), "outro": min(2, max(1, round(n / 16)))}
    body = [h for h in hints if h not in short]
    if not body:  # only intro/outro hinted: split the bars between them
        lengths = [n // len(hints)] * len(hints)
        lengths[0] += n - sum(lengths)
        return list(zip(hints, lengths, strict=True))
    fixed = {h: short[h] for h in hints if h in short}
    while sum(fixed.values()) + len(body) > n:  # shrink intro/outro first (never below 1)
        longest = max(fixed, key=lambda h: fixed[h])
        fixed[longest] -= 1
    remaining = n - sum(fixed.values())
    base, extra = divmod(remaining, len(body))
    out: list[tuple[SectionKind, int]] = []
    j = 0
    for h in hints:
        if h in fixed:
            out.append((h, fixed[h]))
        else:
            out.append((h, base + (1 if j < extra else 0)))
            j += 1
    return out


def _plan_bars(
    style: _Style,
    meter: Meter,
    layout: list[tuple[SectionKind, int]],
    bar_s: float,
    energy: float,
    loop: bool,
) -> list[Bar]:
    # Slow harmonic rhythm at fast tempi keeps chords from flashing by.
    bars_per_chord = 2 if bar_s < 1.2 else 1
    n = sum(length for _, length in layout)
    bars: list[Bar] = []
    for number, (kind, length) in enumerate(layout):
        material = _MATERIAL[kind]
        level = float(np.clip(energy * (0.4 + 0.8 * SECTION_INTENSITY[kind]), 0.0, 1.0))
        for j in range(length):
            i = len(bars)
            final = not loop and i == n - 1
            if kind == "intro" or final:
                chord = Chord(0)
            else:
                prog = style.progressions[material]
                chord = prog[(j // bars_per_chord) % len(prog)]
            bars.append(
                Bar(i, i * bar_s, ((0.0, chord),), kind, material, number, j, length, level, final)
            )
    if loop:
        last = bars[-1]
        if n == 1 and meter.half is not None:
            bars[-1] = replace(last, chords=((0.0, Chord(0)), (meter.half, _V)))
        elif n > 1 and last.chord.degree not in _LEADS_HOME:
            bars[-1] = replace(last, chords=((0.0, _V),))
    elif len(bars) >= 2 and bars[-2].section != "intro":
        # Cadence: the last body bar turns to the dominant so the final tonic resolves.
        bars[-2] = replace(bars[-2], chords=((0.0, _V),))
    return bars


def _user_melody(tokens: ControlTokens, meter: Meter, quarter_s: float) -> list[Note]:
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


def _harmonize(
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


# --- the composer's own melody --------------------------------------------------------------


def _melody_line(ctx: _Ctx, rng: np.random.Generator) -> list[_MelodyNote]:
    """The tune in diatonic indices (0 = tonic of the melody octave), phrased in 4-bar units."""
    out: list[_MelodyNote] = []
    lo, hi = -3 + ctx.style.register, 9 + ctx.style.register
    m = ctx.meter
    prev: int | None = None
    for i, bar in enumerate(ctx.bars):
        if bar.section == "intro":
            continue
        if bar.final:
            d = 7 if prev is None or prev >= 4 else 0
            out.append(_MelodyNote(bar.start_s, ctx.final_end_s, d, bar.chord, 96, bar))
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
            out.append(_MelodyNote(bar.start_s, _t(ctx, bar, long_q * 0.95), d, bar.chord, 96, bar))
            prev = d
            if len(m.pulses) > 1 and not next_is_final:
                pick = d + (1 if d < motif.centre else -1)
                pick_on = last_on + last_len * (2 / 3 if m.pulse_units[-1] == 3 else 0.5)
                end = _t(ctx, bar, m.bar_q) - 0.05 * ctx.quarter_s
                out.append(
                    _MelodyNote(_t(ctx, bar, pick_on), end, pick, bar.chord_at(pick_on), 84, bar)
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
                _MelodyNote(
                    _t(ctx, bar, onset),
                    _t(ctx, bar, onset + length * 0.92),
                    d,
                    bar.chord_at(onset),
                    86 + accent,
                    bar,
                )
            )
            prev = d
    return out


def _realize_melody(ctx: _Ctx, line: list[_MelodyNote], k: int, salt: int) -> list[Note]:
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
            _note(ctx, salt, m.start_s, m.end_s, pitch, m.velocity - (8 if k else 0), m.bar.level)
        )
    return notes


def _double_user(ctx: _Ctx, melody: list[Note], salt: int) -> list[Note]:
    """A second melody instrument doubles the user's tune an octave down in choruses."""
    out = []
    for n in melody:
        bar = _bar_at(ctx, n.start_s)
        if bar.material == "B" and bar.level >= DOUBLING_ON:
            out.append(_note(ctx, salt, n.start_s, n.end_s, n.pitch - 12, n.velocity - 8, 1.0))
    return out


# --- arranging ----------------------------------------------------------------------------


def _arrange(
    ctx: _Ctx,
    instruments: Sequence[InstrumentToken],
    own_line: list[_MelodyNote],
    user: list[Note],
) -> tuple[list[Part], list[Note]]:
    """One part per instrument (plus a melody voice where needed), and the lead line."""
    melodic = [i for i in instruments if not i.is_drum]
    if len(melodic) > MAX_MELODIC_CHANNELS:
        raise UnsupportedControlsError(
            f"at most {MAX_MELODIC_CHANNELS} non-drum instruments are supported"
        )
    roles = [("drums" if i.is_drum else i.role) for i in instruments]
    carrier: int | None = None  # index of the instrument whose program plays the melody
    wanted = ("melody", "harmony") if user else ("melody", "harmony", "pad", "bass")
    for role in wanted:
        if role in roles:
            carrier = roles.index(role)
            break
    instruments = list(instruments)
    if user and carrier is None:
        instruments.append(_PIANO_MELODY)
        roles.append("melody")
        carrier = len(instruments) - 1
    # A carrier from another role gets its own melody channel (so the melody has its own stem)
    # when a channel is free; otherwise it plays the tune on its own channel.
    n_melodic = sum(1 for r in roles if r != "drums")
    split = carrier is not None and roles[carrier] != "melody"
    split = split and n_melodic < MAX_MELODIC_CHANNELS
    if carrier is not None and not user and not own_line:
        carrier = None

    channels = iter([c for c in range(16) if c != DRUM_CHANNEL])
    parts: list[Part] = []
    lead: list[Note] = []
    seen: dict[str, int] = {}
    for idx, (inst, role) in enumerate(zip(instruments, roles, strict=True)):
        k = seen.get(role, 0)
        seen[role] = k + 1
        channel = DRUM_CHANNEL if role == "drums" else next(channels)
        salt = idx + 1
        notes: list[Note] = []
        melody_here: list[Note] = []
        if carrier is not None and (idx == carrier or (role == "melody" and k > 0)):
            kk = 0 if idx == carrier else k
            if user:
                melody_here = list(user) if kk == 0 else _double_user(ctx, user, salt)
            else:
                melody_here = _realize_melody(ctx, own_line, kk, salt)
            melody_here = _clip(ctx, melody_here)
            if idx == carrier:
                lead = melody_here
        if role == "drums":
            notes = _drums(ctx, salt) if k == 0 else _percussion(ctx, salt)
        elif role == "bass":
            notes = _bass(ctx, k, salt)
        elif role == "pad":
            notes = _pad(ctx, k, salt)
        elif role == "harmony":
            notes = _harmony(ctx, k, light=idx == carrier, salt=salt)
        notes = _clip(ctx, notes)
        pans = ROLE_PANS[role]
        level = ROLE_LEVEL_DB[role] - 2.0 * k  # doubled roles must not swamp the mix
        pan = pans[k % len(pans)]
        stem = ROLE_STEM[role]
        if role == "melody":
            parts.append(Part(inst, channel, level, pan, tuple(melody_here), idx == carrier, stem))
            continue
        if idx == carrier and not split:
            merged = sorted([*notes, *melody_here], key=lambda n: (n.start_s, n.pitch))
            parts.append(Part(inst, channel, level, pan, tuple(merged), True, stem))
            continue
        parts.append(Part(inst, channel, level, pan, tuple(notes), False, stem))
        if idx == carrier:
            melody_channel = next(channels)
            voice = InstrumentToken(
                name=inst.name, program=inst.program, is_drum=False, role="melody"
            )
            parts.append(
                Part(
                    voice,
                    melody_channel,
                    ROLE_LEVEL_DB["melody"],
                    0.0,
                    tuple(melody_here),
                    True,
                    "melody",
                )
            )
    return parts, lead


def _clip(ctx: _Ctx, notes: list[Note]) -> list[Note]:
    """Drop notes past the end, clip the rest to it and sort by onset."""
    out = []
    last_onset = ctx.duration_s - (1e-6 if ctx.loop else 0.01)
    for n in notes:
        if n.start_s >= max(0.0, last_onset) > 0.0 or not 0 <= n.pitch <= 127:
            continue
        out.append(
            Note(n.start_s, min(n.end_s, ctx.duration_s), n.pitch, max(1, min(127, n.velocity)))
        )
    return sorted(out, key=lambda n: (n.start_s, n.pitch))


_MASK64 = (1 << 64) - 1


def _hash_unit(*values: int) -> float:
    """A uniform number in [0, 1) from integers (splitmix64): humanization without draws."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = ((h ^ (v & _MASK64)) * 0xBF58476D1CE4E5B9) & _MASK64
        h ^= h >> 31
        h = (h * 0x94D049BB133111EB) & _MASK64
        h ^= h >> 29
    return (h >> 11) / float(1 << 53)


def _note(
    ctx: _Ctx,
    salt: int,
    start: float,
    end: float,
    pitch: int,
    base: float,
    level: float,
    jitter: float = 4.0,
) -> Note:
    u = _hash_unit(ctx.seed, salt, round(start * 1000), pitch)
    vel = round(base * (0.6 + 0.4 * level) + (2 * u - 1) * jitter)
    return Note(start, end, pitch, vel)


def _t(ctx: _Ctx, bar: Bar, q: float) -> float:
    return bar.start_s + q * ctx.quarter_s


def _bar_end(ctx: _Ctx, bar: Bar) -> float:
    return ctx.final_end_s if bar.final else _t(ctx, bar, ctx.meter.bar_q)


def _bar_at(ctx: _Ctx, t: float) -> Bar:
    i = min(len(ctx.bars) - 1, max(0, int(t / ctx.bar_s + 1e-9)))
    return ctx.bars[i]


def _next_chord(ctx: _Ctx, i: int, bar: Bar, q: float) -> Chord:
    """The chord after the span that contains bar offset `q` (wrapping round in a loop)."""
    for on, chord in bar.chords:
        if on > q + 1e-9:
            return chord
    if i + 1 < len(ctx.bars):
        return ctx.bars[i + 1].chord
    return ctx.bars[0].chord if ctx.loop else Chord(0)


def _nearest(pc: int, centre: int) -> int:
    """The pitch with pitch class `pc` nearest to MIDI pitch `centre`."""
    return centre + ((pc - centre + 6) % 12) - 6


def _voicing(ctx: _Ctx, chord: Chord, centre: int) -> list[int]:
    # Each chord tone nearest a fixed centre: close voicings with smooth voice leading.
    return sorted(_nearest(pc, centre) for pc in ctx.key.chord_pcs(chord))


def _bass(ctx: _Ctx, k: int, salt: int) -> list[Note]:
    notes: list[Note] = []
    m = ctx.meter
    group_starts = [m.pulses[j][0] for j in range(len(m.pulses)) if m.stress[j] > 0]
    for i, bar in enumerate(ctx.bars):
        lvl = bar.level

        def tones(chord: Chord) -> tuple[int, int, int]:
            pcs = ctx.key.chord_pcs(chord)
            root = 36 + pcs[0] + (12 if k % 2 else 0)  # a second bass doubles an octave up
            return root, root + (pcs[1] - pcs[0]) % 12, root + (pcs[2] - pcs[0]) % 12

        if bar.final:
            root = tones(bar.chord)[0]
            notes.append(_note(ctx, salt, bar.start_s, ctx.final_end_s, root, 100, lvl))
            continue
        if bar.section == "intro":
            if bar.bar_in_section >= bar.section_length // 2 and lvl >= BASS_ON / 2:
                root = tones(bar.chord)[0]
                notes.append(_note(ctx, salt, bar.start_s, _bar_end(ctx, bar), root, 85, lvl))
            continue
        if lvl < BASS_ON:
            continue
        spans = bar.spans(m.bar_q)
        if lvl < BASS_PATTERN:
            for a, b, chord in spans:
                root = tones(chord)[0]
                notes.append(
                    _note(ctx, salt, _t(ctx, bar, a), _t(ctx, bar, b) - 0.03, root, 88, lvl)
                )
            continue
        pattern = ctx.style.bass_pattern[bar.material] if k == 0 else "root_fifth"
        if lvl >= BUSY and pattern == "root_fifth":
            pattern = "eighths"
        hits: list[tuple[float, float, str]] = []  # (onset, length, tone) in bar quarters
        span_starts = {a for a, _, _ in spans}
        if pattern == "root_fifth":
            starts = sorted(set(group_starts) | span_starts)
            for j, on in enumerate(starts):
                end = starts[j + 1] if j + 1 < len(starts) else m.bar_q
                tone = "root" if on in span_starts or j % 2 == 0 else "fifth"
                hits.append((on, end - on, tone))
        elif pattern == "eighths":
            for subs, (_, length) in zip(m.subdivisions, m.pulses, strict=True):
                step = length / len(subs)
                hits += [(s, step * 0.9, "root") for s in subs]
        elif pattern == "walk":
            cycle = ("root", "third", "fifth")
            j = 0
            for p, (on, length) in enumerate(m.pulses):
                if on in span_starts:
                    j = 0
                last = p == len(m.pulses) - 1
                hits.append((on, length * 0.9, "approach" if last and p else cycle[j % 3]))
                j += 1
        else:  # "sync": long root, a pushed root, the third on the last pulse
            p0 = m.pulses[0]
            hits.append((0.0, p0[1] * 1.4, "root"))
            if len(m.pulses) >= 2:
                on1, len1 = m.pulses[1]
                hits.append((on1 + len1 * 0.5, len1 * 0.45, "root"))
            if len(m.pulses) >= 3:
                # The chord's third, not only roots and fifths: a bass whose overtones are the
                # only thirds around makes minor chords read as major.
                on, length = m.pulses[-1]
                hits.append((on, length * 0.9, "third"))
        for on, length, tone in hits:
            chord = bar.chord_at(on)
            root, third, fifth = tones(chord)
            span_end = next(b for a, b, _ in spans if a <= on + 1e-9 < b + 1e-9)
            if tone == "approach":
                nxt = _next_chord(ctx, i, bar, on)
                target = tones(nxt)[0]
                nd = nxt.degree
                # Diatonic step into the next root (from below when rising, else from above),
                # spelled in the current chord: over V in minor, the leading tone rises to i.
                if target > root:
                    pitch = target - (ctx.key.semitones(nd) - ctx.key.semitones(nd - 1, chord))
                elif target < root:
                    pitch = target + (ctx.key.semitones(nd + 1, chord) - ctx.key.semitones(nd))
                else:
                    pitch = fifth
            else:
                pitch = {"root": root, "third": third, "fifth": fifth}[tone]
            end = min(on + length, span_end)
            accent = 10 if on == 0 else 0
            notes.append(
                _note(ctx, salt, _t(ctx, bar, on), _t(ctx, bar, end), pitch, 92 + accent, lvl)
            )
    return notes


def _pad(ctx: _Ctx, k: int, salt: int) -> list[Note]:
    """Held chords, one per chord change (across bar lines within a section)."""
    notes: list[Note] = []
    centre = 57 + (12 if k % 2 else 0)
    spans: list[tuple[float, float, Chord, Bar]] = []
    for bar in ctx.bars:
        for a, b, chord in bar.spans(ctx.meter.bar_q):
            end = ctx.final_end_s if bar.final else _t(ctx, bar, b)
            prev = spans[-1] if spans else None
            if prev and prev[2] == chord and prev[3].section_number == bar.section_number:
                spans[-1] = (prev[0], end, chord, prev[3])
            else:
                spans.append((_t(ctx, bar, a), end, chord, bar))
    for start, end, chord, first in spans:
        voicing = _voicing(ctx, chord, centre)
        voicing.insert(0, _nearest(ctx.key.chord_pcs(chord)[0], centre - 12))
        stop = end if (first.final or end >= ctx.duration_s - 1e-6) else end - 0.03
        base = 70 if first.material == "A" else 80
        for p in voicing:
            notes.append(_note(ctx, salt, start, stop, p, base, first.level, 2))
    return notes


def _harmony(ctx: _Ctx, k: int, light: bool, salt: int) -> list[Note]:
    notes: list[Note] = []
    m, q = ctx.meter, ctx.quarter_s
    centre = 62 + (0, 12, -7)[k % 3]
    base_vel = 72 if light else 84
    materials: tuple[Material, ...] = ("A", "B", "C")
    for bar in ctx.bars:
        lvl = bar.level
        spans = bar.spans(m.bar_q)
        if bar.section == "intro" or bar.final or lvl < HARMONY_PATTERN:
            for a, b, chord in spans:
                end = ctx.final_end_s if bar.final else _t(ctx, bar, b)
                for p in _voicing(ctx, chord, centre):
                    notes.append(_note(ctx, salt, _t(ctx, bar, a), end, p, base_vel, lvl))
            continue
        # A second harmony instrument takes another material's pattern so the two interlock.
        mat = materials[(materials.index(bar.material) + k) % 3]
        pattern = ctx.style.harmony_pattern[mat]
        span_end = {a: b for a, b, _ in spans}

        def end_of(on: float, length: float, ends: dict[float, float] = span_end) -> float:
            # A note ends where its chord does.
            return min(on + length, min(b for a, b in ends.items() if a <= on + 1e-9 < b))

        if pattern == "arp":
            steps: list[tuple[float, float]] = []
            for subs, (on, length) in zip(m.subdivisions, m.pulses, strict=True):
                sub = length / len(subs)
                if sub * q >= 0.16:
                    steps += [(s, sub) for s in subs]
                else:
                    steps.append((on, length))
            for j, (on, step) in enumerate(steps):
                tones = _voicing(ctx, bar.chord_at(on), centre)
                tones.append(tones[0] + 12)
                p = tones[ctx.style.arp_order[j % len(ctx.style.arp_order)] % len(tones)]
                accent = 8 if on == 0 else 0
                end = _t(ctx, bar, end_of(on, 2 * step))
                notes.append(_note(ctx, salt, _t(ctx, bar, on), end, p, base_vel + accent - 6, lvl))
        elif pattern == "block":
            for p_i, (on, length) in enumerate(m.pulses):
                accent = 8 if m.stress[p_i] == 2 else 4 if m.stress[p_i] else 0
                end = _t(ctx, bar, end_of(on, 0.85 * length))
                for p in _voicing(ctx, bar.chord_at(on), centre):
                    notes.append(
                        _note(ctx, salt, _t(ctx, bar, on), end, p, base_vel - 8 + accent, lvl)
                    )
        else:  # "comp": a long chord on each chord change, off-beat stabs on backbeat pulses
            hits = [(a, 1.4 * m.pulses[m.pulse_index(a)][1], 0) for a in span_end]
            for p_i, (on, length) in enumerate(m.pulses):
                if m.drum_roles[p_i] == "S":
                    off = on + length * (2 / 3 if m.pulse_units[p_i] == 3 else 0.5)
                    hits.append((off, 0.4 * length, 10))
            for on, length, soft in hits:
                end = _t(ctx, bar, end_of(on, length))
                for p in _voicing(ctx, bar.chord_at(on), centre):
                    notes.append(_note(ctx, salt, _t(ctx, bar, on), end, p, base_vel - soft, lvl))
    return notes


def _drums(ctx: _Ctx, salt: int) -> list[Note]:
    notes: list[Note] = []
    m, q = ctx.meter, ctx.quarter_s
    n_pulses = len(m.pulses)
    shortest_pulse = min(length for _, length in m.pulses) * q
    hit_s = min(0.2, shortest_pulse / 2)

    for bar in ctx.bars:
        lvl = bar.level

        def hit(on: float, key: int, vel: float, length: float = hit_s, bar: Bar = bar) -> None:
            start = _t(ctx, bar, on)
            notes.append(_note(ctx, salt, start, start + length, key, vel, bar.level, 5))

        if bar.final:
            hit(0, KICK, 105)
            hit(0, CRASH, 100, ctx.final_end_s - bar.start_s)
            continue
        if bar.section == "intro":
            if lvl < DRUMS_LIGHT / 2:
                continue
            for pulse_subs in m.subdivisions:
                for j, s in enumerate(pulse_subs if lvl >= DRUMS_FULL else pulse_subs[:1]):
                    hit(s, CLOSED_HAT, 70 if j == 0 else 52)
            if bar.bar_in_section >= bar.section_length // 2:
                hit(0, KICK, 90)
            continue
        if lvl < DRUMS_LIGHT:
            continue
        full, busy = lvl >= DRUMS_FULL, lvl >= BUSY
        kick = ctx.style.drum_kick[bar.material]
        cymbal = RIDE if bar.material == "B" and full else CLOSED_HAT
        fill = full and bar.is_section_end and n_pulses >= 2
        fill_from = n_pulses - (2 if ctx.style.fill_toms and n_pulses >= 4 else 1)
        fill_from = fill_from if fill else n_pulses
        starts_section = bar.bar_in_section == 0 and (bar.section_number > 0 or ctx.loop)
        if full and starts_section and (bar.section_number > 0 or busy):
            hit(0, CRASH, 95, min(2.0, ctx.bar_s))
        for p_i in range(fill_from):
            on, length = m.pulses[p_i]
            role, stress = m.drum_roles[p_i], m.stress[p_i]
            subs: list[float] = list(m.subdivisions[p_i])
            sub = length / len(subs)
            if role == "K" and (full or stress == 2):
                hit(on, KICK, 104 if stress == 2 else 96)
            elif full and kick == "floor":
                hit(on, KICK, 90)
            if role == "S":
                if full:
                    hit(on, SNARE, 98)
                else:
                    hit(on, SIDE_STICK, 84)
            if full and kick == "push" and role == "S" and p_i + 1 < n_pulses:
                hit(subs[-1], KICK, 84)
            if full and kick == "syncop" and p_i == n_pulses - 1:
                hit(subs[-1], KICK, 84)
            if busy and role == "S" and len(subs) >= 2:
                hit(subs[-1], SNARE, 48)  # ghost note
            if not full:
                subs = subs[:1]
            elif (busy or sub * q >= 0.4) and sub * q / 2 >= 0.09:
                subs = [x for s in subs for x in (s, s + sub / 2)]
            for j, s in enumerate(subs):
                last_off = (
                    bar.material == "B" and full and p_i == n_pulses - 1 and j == len(subs) - 1
                )
                vel = (76 if stress else 70) if j == 0 else 56 if j % 2 else 62
                hit(s, OPEN_HAT if last_off else cymbal, vel)
        if fill:
            start = m.pulses[fill_from][0]
            step = 0.25 if 0.25 * q >= 0.07 else 0.5
            n_steps = max(1, round((m.bar_q - start) / step))
            for j in range(n_steps):
                key = TOMS[j * len(TOMS) // n_steps] if ctx.style.fill_toms else SNARE
                hit(start + j * step, key, 72 + 30 * j / max(1, n_steps - 1))
            hit(start, KICK, 96)
    return notes


def _percussion(ctx: _Ctx, salt: int) -> list[Note]:
    """A second drum instrument adds tambourine and shaker instead of doubling the kit."""
    notes: list[Note] = []
    m = ctx.meter
    for bar in ctx.bars:
        if bar.section == "intro" or bar.final or bar.level < PERCUSSION_ON:
            continue
        for p_i, subs in enumerate(m.subdivisions):
            if m.drum_roles[p_i] == "S":
                start = _t(ctx, bar, subs[0])
                notes.append(_note(ctx, salt, start, start + 0.15, TAMBOURINE, 70, bar.level))
            for s in subs[1:]:
                start = _t(ctx, bar, s)
                notes.append(_note(ctx, salt, start, start + 0.1, SHAKER, 58, bar.level))
    return notes
