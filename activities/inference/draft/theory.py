"""Music theory for the draft composer: the bar grid of a meter, keys and diatonic chords.

Meter: `tempo_bpm` counts quarter notes whatever the meter, a bar lasts
`beats_per_bar * 4 / beat_unit` quarters. The bar is cut into felt pulses (`Meter`): one per
beat unit for /2 and /4; for /8 and /16 the units are grouped - dotted-quarter pulses in
compound meters (6/8, 9/8, 12/8), otherwise twos with a three at the end (7/8 = 2+2+3,
5/8 = 2+3). Pulses group into accent groups (4/4 = 2+2, 5/4 = 3+2, 7/4 = 3+2+2) whose first
pulse is stressed: the kick, bass roots and chord changes fall on group starts.
"""

from __future__ import annotations

from dataclasses import dataclass

from activities.inference.backend import UnsupportedControlsError
from schemas.music import Mode

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)
MAX_BEATS_PER_BAR = 16
BEAT_UNITS = (2, 4, 8, 16)


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
        return (Chord(0), Chord(2), Chord(3), DOMINANT, Chord(5), Chord(6))


DOMINANT = Chord(4, leading_tone=True)
MAJOR_PROGRESSIONS: tuple[tuple[Chord, ...], ...] = tuple(
    tuple(Chord(d) for d in p) for p in ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 0), (0, 3, 5, 4))
)
MINOR_PROGRESSIONS: tuple[tuple[Chord, ...], ...] = (
    (Chord(0), Chord(5), Chord(2), Chord(6)),  # i-VI-III-VII
    (Chord(0), Chord(3), DOMINANT, Chord(0)),  # i-iv-V-i
    (Chord(0), Chord(5), Chord(3), DOMINANT),  # i-VI-iv-V
    (Chord(0), Chord(6), Chord(5), DOMINANT),  # i-VII-VI-V
)
LEADS_HOME = {3, 4, 6}  # IV, V, VII: chords that lead back to the tonic at a loop's seam
