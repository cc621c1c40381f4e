"""Draft composer: a seeded, rule-based arranger that turns control tokens into note events.

Pure and deterministic: the same tokens always give the same `Composition`. The subjects live
beside it: `theory` (meter, key, chords), `form` (sections, bars), `melody`, `accompaniment`
and `parts` (the arrangement); `context` holds what the writers share.

Order of decisions (what makes `layers` work): everything that gives the piece its identity -
the bar grid, progressions, motifs, patterns, the section plan, the harmonization of a user
melody and the composer's own melody - is drawn from `numpy.random.default_rng(seed)` before
`energy` is looked at. Energy then only decides which roles play, how busy their patterns are
and how hard notes are struck; velocity humanization is a hash of (seed, part, onset, pitch),
not a generator draw, so it does not depend on which other notes play either. Two renders that
differ only in energy therefore share progression, melody and bar grid, and the louder one's
sounding roles are a superset of the softer one's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pretty_midi

from activities.inference.backend import UnsupportedControlsError
from activities.inference.draft.context import Context, Note, Style
from activities.inference.draft.form import Bar, Material, bar_count, plan_bars, plan_sections
from activities.inference.draft.melody import (
    MOOD_BIAS,
    draw_motif,
    harmonize,
    melody_line,
    user_melody,
)
from activities.inference.draft.parts import STEM_GROUPS, Part, arrange
from activities.inference.draft.theory import (
    MAJOR_PROGRESSIONS,
    MINOR_PROGRESSIONS,
    Chord,
    Key,
    Meter,
    make_meter,
)
from schemas.controls import ControlTokens, InstrumentToken


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
    n_bars = bar_count(tokens, meter.bar_q * quarter_s)
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
    layout = plan_sections(rng, n_bars, tokens.structure, tokens.loop)
    bars = plan_bars(style.progressions, meter, layout, bar_s, tokens.energy, tokens.loop)
    user = user_melody(tokens, meter, quarter_s)
    if user:
        bars = harmonize(key, meter, bars, user, quarter_s)
    if tokens.loop:
        final_end = tokens.duration_s
    else:
        # The final chord is released early enough for its natural decay to be heard before
        # the renderer's end fade.
        last_start = bars[-1].start_s
        final_end = tokens.duration_s - min(0.75, 0.3 * (tokens.duration_s - last_start))
    ctx = Context(
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
    own_line = [] if user else melody_line(ctx, tune_rng)

    # 2. Arrangement: energy (via each bar's level) decides what plays; no draws.
    instruments = list(tokens.instruments) or [
        InstrumentToken(name="piano", program=0, is_drum=False, role="harmony")
    ]
    parts, lead = arrange(ctx, instruments, own_line, user)
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


def _draw_style(
    rng: np.random.Generator,
    tune_rng: np.random.Generator,
    key: Key,
    meter: Meter,
    quarter_s: float,
    mood: str | None,
) -> Style:
    """The per-piece choices. Keep the order of the `rng` draws: moving one changes every seed."""
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
    return Style(
        progressions={"A": progs[a], "B": progs[b], "C": progs[c]},
        motifs={
            m: draw_motif(tune_rng, meter, quarter_s, motif_centres[m] + register, activity)
            for m in materials
        },
        drum_kick={m: kicks[int(rng.integers(len(kicks)))] for m in materials},
        bass_pattern=dict(zip(materials, bs, strict=True)),
        harmony_pattern=dict(zip(materials, hs, strict=True)),
        arp_order=arp_orders[int(rng.integers(len(arp_orders)))],
        fill_toms=bool(rng.random() < 0.5),
        register=register,
    )
