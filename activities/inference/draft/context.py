"""What every part writer reads: the note type, the style drawn from the seed, and `Context`
(the planned bars on the clock, with how a note is placed and struck)."""

from __future__ import annotations

from dataclasses import dataclass

from activities.inference.draft.form import Bar, Material
from activities.inference.draft.theory import Chord, Key, Meter


@dataclass(frozen=True)
class Note:
    start_s: float
    end_s: float
    pitch: int
    velocity: int


@dataclass(frozen=True)
class Motif:
    rhythm: tuple[tuple[float, float], ...]  # (onset, length) in quarters within a bar
    steps: tuple[int, ...]  # diatonic step into each note
    centre: int  # diatonic index the phrase starts near


@dataclass
class Style:
    """Per-piece choices drawn once from the seed, so repeated sections sound alike."""

    progressions: dict[Material, tuple[Chord, ...]]
    motifs: dict[Material, Motif]
    drum_kick: dict[Material, str]
    bass_pattern: dict[Material, str]
    harmony_pattern: dict[Material, str]
    arp_order: tuple[int, ...]
    fill_toms: bool
    register: int  # scale steps the melody sits above/below its default range


@dataclass
class Context:
    """The planned piece on the clock, as the part writers read it."""

    key: Key
    meter: Meter
    quarter_s: float
    duration_s: float
    final_end_s: float
    bars: list[Bar]
    style: Style
    seed: int
    loop: bool

    @property
    def bar_s(self) -> float:
        return self.meter.bar_q * self.quarter_s

    def at(self, bar: Bar, q: float) -> float:
        """Seconds at bar offset `q` (quarters) of `bar`."""
        return bar.start_s + q * self.quarter_s

    def bar_end(self, bar: Bar) -> float:
        return self.final_end_s if bar.final else self.at(bar, self.meter.bar_q)

    def bar_at(self, t: float) -> Bar:
        i = min(len(self.bars) - 1, max(0, int(t / self.bar_s + 1e-9)))
        return self.bars[i]

    def next_chord(self, i: int, bar: Bar, q: float) -> Chord:
        """The chord after the span that contains bar offset `q` (wrapping round in a loop)."""
        for on, chord in bar.chords:
            if on > q + 1e-9:
                return chord
        if i + 1 < len(self.bars):
            return self.bars[i + 1].chord
        return self.bars[0].chord if self.loop else Chord(0)

    def note(
        self,
        salt: int,
        start: float,
        end: float,
        pitch: int,
        base: float,
        level: float,
        jitter: float = 4.0,
    ) -> Note:
        """A note struck at `base` velocity scaled by `level`, humanized by a hash, not a draw."""
        u = _hash_unit(self.seed, salt, round(start * 1000), pitch)
        vel = round(base * (0.6 + 0.4 * level) + (2 * u - 1) * jitter)
        return Note(start, end, pitch, vel)

    def clip(self, notes: list[Note]) -> list[Note]:
        """Drop notes past the end, clip the rest to it and sort by onset."""
        out = []
        last_onset = self.duration_s - (1e-6 if self.loop else 0.01)
        for n in notes:
            if n.start_s >= max(0.0, last_onset) > 0.0 or not 0 <= n.pitch <= 127:
                continue
            out.append(
                Note(
                    n.start_s, min(n.end_s, self.duration_s), n.pitch, max(1, min(127, n.velocity))
                )
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
