"""Form: the piece's sections and its plan of bars (chords, section, level).

A song has an intro (thin texture), a body of verse/chorus sections and a final tonic bar
after a dominant; `tokens.structure` (intro, verse, chorus, bridge, breakdown, drop, outro),
when given, sets the section order instead, bars shared out in whole bars (intro and outro
short). A loop (`tokens.loop`) is exactly round(duration_s / bar_seconds) bars with no intro,
outro or final chord, and its last chord leads back to its first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from activities.inference.backend import UnsupportedControlsError
from activities.inference.draft.theory import DOMINANT, LEADS_HOME, Chord, Meter
from schemas.controls import ControlTokens

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


def bar_count(tokens: ControlTokens, bar_s: float) -> int:
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


def plan_sections(
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


def plan_bars(
    progressions: dict[Material, tuple[Chord, ...]],
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
                prog = progressions[material]
                chord = prog[(j // bars_per_chord) % len(prog)]
            bars.append(
                Bar(i, i * bar_s, ((0.0, chord),), kind, material, number, j, length, level, final)
            )
    if loop:
        last = bars[-1]
        if n == 1 and meter.half is not None:
            bars[-1] = replace(last, chords=((0.0, Chord(0)), (meter.half, DOMINANT)))
        elif n > 1 and last.chord.degree not in LEADS_HOME:
            bars[-1] = replace(last, chords=((0.0, DOMINANT),))
    elif len(bars) >= 2 and bars[-2].section != "intro":
        # Cadence: the last body bar turns to the dominant so the final tonic resolves.
        bars[-2] = replace(bars[-2], chords=((0.0, DOMINANT),))
    return bars
