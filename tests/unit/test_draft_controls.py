"""The draft backend's control layer: meter, user melody, energy/mood/structure, loops, layers
and stems - checked on the note events and, where it matters, on the rendered audio."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from test_draft_backend import BAND, DRUMS, FLUTE, PIANO, STRINGS, measure_tempo, mono

from activities.inference.backend import UnsupportedControlsError
from activities.inference.draft import DraftBackend, compose, make_meter
from activities.inference.draft.accompaniment import KICK
from activities.inference.draft.composer import Composition
from schemas.controls import ControlTokens, InstrumentToken, MelodyNote
from schemas.music import parse_key

SR = 44100
BASS = InstrumentToken(name="bass", program=33, is_drum=False, role="bass")
FULL = (*BAND, STRINGS, FLUTE)


def tokens(
    *,
    duration_s: float = 12.0,
    tempo_bpm: float = 120.0,
    key: str = "A minor",
    meter: tuple[int, int] = (4, 4),
    instruments: tuple[InstrumentToken, ...] = FULL,
    seed: int = 7,
    energy: float = 0.6,
    mood: str | None = None,
    structure: tuple[str, ...] = (),
    melody: tuple[MelodyNote, ...] = (),
    loop: bool = False,
    product: str = "song",
) -> ControlTokens:
    tonic_pc, mode = parse_key(key)
    bar_s = meter[0] * 4 / meter[1] * 60 / tempo_bpm
    return ControlTokens(
        prompt="test",
        duration_s=duration_s,
        tempo_bpm=tempo_bpm,
        tonic_pc=tonic_pc,
        mode=mode,
        key_name=key,
        beats_per_bar=meter[0],
        beat_unit=meter[1],
        bars=max(1, round(duration_s / bar_s)),
        instruments=list(instruments),
        seed=seed,
        tier="draft",
        model_id="draft",
        product=product,
        mood=mood,
        energy=energy,
        structure=list(structure),
        melody=list(melody),
        loop=loop,
    )


def loop_tokens(bars: int = 4, meter: tuple[int, int] = (4, 4), **kw: object) -> ControlTokens:
    """A loop of exactly `bars` bars at 120 BPM (`kw` as for `tokens`)."""
    bar_s = meter[0] * 4 / meter[1] * 60 / 120.0
    kw.setdefault("product", "loop")
    return tokens(duration_s=bars * bar_s, meter=meter, loop=True, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def backend() -> DraftBackend:
    return DraftBackend()


def sounding(comp: Composition) -> set[int]:
    return {i for i, p in enumerate(comp.parts) if p.notes}


# --- meter ----------------------------------------------------------------------------------


def test_meter_grids() -> None:
    m44, m34, m68, m128 = make_meter(4, 4), make_meter(3, 4), make_meter(6, 8), make_meter(12, 8)
    assert m44.drum_roles == ("K", "S", "K", "S") and m44.half == 2.0
    assert m34.drum_roles == ("K", "S", "S") and m34.half is None  # waltz: no mid-bar change
    assert m68.compound and m68.pulses == ((0.0, 1.5), (1.5, 1.5))  # dotted-quarter pulse
    assert m68.subdivisions[1] == (1.5, 2.0, 2.5)  # in eighths
    assert m128.bar_q == 6.0 and len(m128.pulses) == 4 and m128.drum_roles == tuple("KSKS")
    assert make_meter(7, 8).pulse_units == (2, 2, 3)  # irregular: 2+2+3 eighths
    assert make_meter(5, 4).groups == (3, 2) and make_meter(5, 4).stress == (2, 0, 0, 1, 0)
    assert make_meter(2, 2).pulses == ((0.0, 2.0), (2.0, 2.0))
    assert make_meter(16, 16).bar_q == 4.0 and make_meter(1, 16).bar_q == 0.25


@pytest.mark.parametrize(
    "meter",
    [
        *((4, 4), (3, 4), (2, 4), (6, 8), (12, 8), (5, 4), (7, 8), (9, 8), (2, 2), (5, 8)),
        *((11, 16), (1, 4), (16, 16), (1, 16), (16, 2), (13, 8), (3, 8), (7, 4)),
    ],
)
def test_every_meter_follows_its_bar_grid(backend: DraftBackend, meter: tuple[int, int]) -> None:
    t = tokens(duration_s=10.0, meter=meter, energy=0.7)
    comp = compose(t)
    m, q = comp.meter, comp.quarter_s
    assert comp.bar_s == pytest.approx(t.bar_seconds)
    assert all(b.start_s == pytest.approx(i * comp.bar_s) for i, b in enumerate(comp.bars))
    grid = 4.0 / meter[1] / 8  # a 32nd of the beat unit: every onset lies on it
    for part in comp.parts:
        for n in part.notes:
            if part.carries_melody and n.start_s >= comp.bars[-1].start_s:
                continue  # the final note
            pos = n.start_s / q / grid
            assert abs(pos - round(pos)) < 1e-6, (part.instrument.name, n)
    drums = next(p for p in comp.parts if p.instrument.is_drum)
    for bar in comp.bars:
        if bar.section == "intro" or bar.final:
            continue
        # Chords change only on a bar line or the meter's mid-bar group boundary.
        assert all(on in (0.0, m.half) for on, _ in bar.chords)
        end = bar.start_s + comp.bar_s - 1e-9
        kicks = [
            n for n in drums.notes if n.pitch == KICK and bar.start_s - 1e-9 <= n.start_s < end
        ]
        downbeat = [n for n in kicks if abs(n.start_s - bar.start_s) < 1e-9]
        assert downbeat, f"no kick on the downbeat of bar {bar.index}"
        # The downbeat is the accent: no kick in the bar is clearly louder than it.
        assert downbeat[0].velocity >= max(n.velocity for n in kicks) - 10
    audio = backend.generate(t)
    assert audio.samples.shape == (round(10.0 * SR), 2)
    assert np.isfinite(audio.samples).all() and 0.1 < np.abs(audio.samples).max() <= 1.0


@pytest.mark.parametrize(
    ("meter", "tempo_bpm", "pulse_quarters"),
    [((3, 4), 90.0, 1.0), ((3, 4), 140.0, 1.0), ((6, 8), 120.0, 1.5), ((6, 8), 150.0, 1.5)],
)
def test_tempo_in_other_meters(
    backend: DraftBackend, meter: tuple[int, int], tempo_bpm: float, pulse_quarters: float
) -> None:
    """3/4 is felt in quarters; 6/8 in dotted quarters (tempo_bpm still counts quarters)."""
    audio = backend.generate(tokens(duration_s=20.0, tempo_bpm=tempo_bpm, meter=meter, seed=3))
    measured = measure_tempo(mono(audio))
    assert measured == pytest.approx(tempo_bpm / pulse_quarters, rel=0.02)


@pytest.mark.parametrize("meter", [(0, 4), (17, 4), (4, 3), (4, 32), (4, 1), (-3, 4)])
def test_unsupported_meter_raises(backend: DraftBackend, meter: tuple[int, int]) -> None:
    t = tokens(meter=(4, 4)).model_copy(update={"beats_per_bar": meter[0], "beat_unit": meter[1]})
    with pytest.raises(UnsupportedControlsError, match="meter"):
        backend.generate(t)


@pytest.mark.parametrize(
    "update",
    [
        {"energy": 1.5},
        {"energy": math.nan},
        {"loop": True, "duration_s": 9.1},  # 4.55 bars of 4/4 at 120
        {"melody": [MelodyNote(start_beat=0.0, duration_beats=0.0, pitch=60)]},
        {"melody": [MelodyNote(start_beat=-1.0, duration_beats=1.0, pitch=60)]},
    ],
)
def test_unsupported_controls_raise(backend: DraftBackend, update: dict[str, object]) -> None:
    with pytest.raises(UnsupportedControlsError):
        backend.generate(tokens().model_copy(update=update))


# --- user melody -------------------------------------------------------------------------------

# (start beat, beats, pitch) in A minor from beat 1: 15 beats long, so it repeats every 4 bars.
TUNE = [(1, 1, 69), (2, 1, 72), (3, 1, 76), (4, 2, 74), (6, 1, 72), (7, 1, 71), (8, 2, 69)]
TUNE += [(10, 1, 64), (11, 1, 68), (12, 3, 69)]
USER = tuple(MelodyNote(start_beat=s, duration_beats=d, pitch=p, velocity=100) for s, d, p in TUNE)


def expected_user_notes(duration_s: float, quarter_s: float = 0.5) -> list[tuple[float, int]]:
    """The documented rule: repeat from the first bar line at/after the end (16 beats here)."""
    out = []
    for k in range(10):
        for s, _, p in TUNE:
            start = (s + 16 * k) * quarter_s
            if start < duration_s - 1e-6:
                out.append((round(start, 6), p))
    return sorted(out)


@pytest.mark.parametrize(
    ("instruments", "program", "split"),
    [(FULL, FLUTE.program, False), (BAND, PIANO.program, True), ((BASS, DRUMS, STRINGS), 0, False)],
)
def test_user_melody_is_played_exactly(
    instruments: tuple[InstrumentToken, ...], program: int, split: bool
) -> None:
    comp = compose(tokens(duration_s=20.0, melody=USER, instruments=instruments))
    voice = next(p for p in comp.parts if p.carries_melody)
    # Melody role first, else the first harmony instrument, else an added piano.
    assert voice.instrument.program == program and voice.stem == "melody"
    if split:
        assert any(p.instrument == PIANO and p.stem == "harmony" for p in comp.parts)
    got = sorted((round(n.start_s, 6), n.pitch) for n in voice.notes)
    assert got == expected_user_notes(20.0)
    assert voice.notes == comp.melody
    durations = {round(n.start_s, 6): n.end_s - n.start_s for n in voice.notes}
    assert durations[0.5] == pytest.approx(0.5) and durations[6.0] == pytest.approx(1.5)


def test_user_melody_is_harmonized() -> None:
    comp = compose(tokens(duration_s=32.0, melody=USER, instruments=BAND, energy=0.7))
    bar_s = comp.bar_s
    hits = total = 0
    for n in comp.melody:
        bar = comp.bars[int(n.start_s / bar_s + 1e-9)]
        q = (n.start_s - bar.start_s) / comp.quarter_s
        if bar.final or comp.meter.metric_weight(q) < 1.5:
            continue  # only strong beats: the downbeat and group starts
        total += 1
        hits += n.pitch % 12 in comp.key.chord_pcs(bar.chord_at(q))
    assert total >= 8 and hits == total
    # The leading tone G# (beat 11) is harmonized by the dominant, not clashed against.
    bar = comp.bars[2]
    assert 8 in comp.key.chord_pcs(bar.chord_at(3.0 - 0.0))
    # Bass and harmony follow the chosen chords.
    bass = next(p for p in comp.parts if p.instrument.role == "bass")
    for n in bass.notes:
        b = comp.bars[min(len(comp.bars) - 1, int(n.start_s / bar_s + 1e-9))]
        q = (n.start_s - b.start_s) / comp.quarter_s
        if abs(q) < 1e-9 and not b.final:
            assert n.pitch % 12 == comp.key.chord_pcs(b.chord_at(0.0))[0]


def test_user_melody_audible_in_its_stem(backend: DraftBackend) -> None:
    """The melody stem sounds the user's pitches, starting when the user's first note does."""
    audio = backend.generate(tokens(duration_s=8.0, melody=USER, instruments=BAND, product="stems"))
    assert audio.stems is not None
    y = audio.stems["melody"].mean(axis=1).astype(np.float64)
    first = int(np.argmax(np.abs(y) > 0.02 * np.abs(y).max()))
    assert abs(first / SR - 0.5) < 0.02  # the tune starts on beat 1, i.e. at 0.5 s
    for s, d, p in TUNE:
        a, b = round((s * 0.5 + 0.03) * SR), round((s * 0.5 + min(0.4, d * 0.5 - 0.02)) * SR)
        spec = np.abs(np.fft.rfft(y[a:b] * np.hanning(b - a), 1 << 15))
        freqs = np.fft.rfftfreq(1 << 15, 1 / SR)

        def salience(midi: int, spec: np.ndarray = spec, freqs: np.ndarray = freqs) -> float:
            f0 = 440.0 * 2 ** ((midi - 69) / 12)
            return sum(
                math.log(spec[np.abs(freqs - h * f0) < h * f0 * 0.02].max() + 1e-9)
                for h in (1, 2, 3)
            )

        heard = max(range(45, 97), key=salience)
        assert heard % 12 == p % 12, (s, p, heard)


# --- energy, mood, structure ---------------------------------------------------------------------


def test_energy_scales_density_without_changing_identity() -> None:
    comps = [compose(tokens(duration_s=30.0, energy=e, seed=5)) for e in (0.1, 0.3, 0.55, 0.9)]
    counts = [sum(len(p.notes) for p in c.parts) for c in comps]
    assert counts == sorted(counts) and counts[-1] > 2 * counts[0]
    for lo, hi in itertools.pairwise(comps):
        assert lo.progression == hi.progression
        assert [(n.start_s, n.pitch) for n in lo.melody] == [
            (n.start_s, n.pitch) for n in hi.melody
        ]
        assert sounding(lo) <= sounding(hi)
    velocity = [np.mean([n.velocity for p in c.parts for n in p.notes]) for c in comps]
    assert velocity == sorted(velocity)


def test_mood_biases_register() -> None:
    for seed in (1, 2, 3):
        happy, sad = (compose(tokens(duration_s=30.0, seed=seed, mood=m)) for m in ("happy", "sad"))
        assert np.mean([n.pitch for n in happy.melody]) > np.mean([n.pitch for n in sad.melody])
        assert happy.progression == sad.progression  # mood biases the tune, not the harmony
    assert compose(tokens(mood="whatever")).parts == compose(tokens(mood=None)).parts


def test_structure_sets_section_order() -> None:
    hints = ("intro", "verse", "chorus", "bridge", "chorus", "outro")
    comp = compose(tokens(duration_s=80.0, structure=hints))  # 40 bars of 4/4 at 120
    runs: list[tuple[str, int]] = []
    for bar in comp.bars:
        if runs and bar.section_number == len(runs) - 1:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((bar.section, 1))
    assert [k for k, _ in runs] == list(hints)
    lengths = dict(enumerate(n for _, n in runs))
    assert sum(lengths.values()) == 40
    assert lengths[0] <= 4 and lengths[5] <= 2  # short intro and outro
    body = [lengths[i] for i in range(1, 5)]
    assert max(body) - min(body) <= 1
    assert comp.bars[-1].final and comp.bars[-1].chord.degree == 0
    # More hints than bars: intro/outro go first, then the tail of the list.
    few = compose(tokens(duration_s=6.0, structure=hints))  # 3 bars
    assert [b.section for b in few.bars] == ["verse", "chorus", "bridge"]


# --- loops and layers ----------------------------------------------------------------------------


@pytest.mark.parametrize(("bars", "meter"), [(4, (4, 4)), (3, (6, 8)), (1, (4, 4)), (6, (7, 8))])
def test_loop_composition(bars: int, meter: tuple[int, int]) -> None:
    comp = compose(loop_tokens(bars, meter, structure=("intro", "verse", "outro")))
    assert len(comp.bars) == bars and comp.loop
    assert all(b.section not in ("intro", "outro") and not b.final for b in comp.bars)
    assert comp.bars[0].chord.degree == 0  # starts on the tonic ...
    last = comp.bars[-1].chords[-1][1]
    assert last.degree in (3, 4, 6)  # ... and the last chord leads back to it
    assert all(n.end_s <= comp.duration_s + 1e-9 for p in comp.parts for n in p.notes)


def seam_stats(x: np.ndarray, bar_frames: int) -> list[tuple[float, float]]:
    """(sample jump, 10 ms RMS change in dB) at each bar line of `x` played twice in a row;
    the last entry is the seam."""
    n = len(x)
    y = np.concatenate([x, x]).mean(axis=1).astype(np.float64)
    win = SR // 100

    def db(a: np.ndarray) -> float:
        return 20 * math.log10(math.sqrt(float(np.mean(a**2))) + 1e-9)

    lines = [*range(bar_frames, n - bar_frames // 2, bar_frames), n]
    return [(abs(y[b] - y[b - 1]), abs(db(y[b : b + win]) - db(y[b - win : b]))) for b in lines]


def seam_stands_out(x: np.ndarray, bar_frames: int) -> bool:
    *inner, (jump, rms) = seam_stats(x, bar_frames)
    max_jump = max(j for j, _ in inner)
    max_rms = max(r for _, r in inner)
    return jump > 2 * max_jump + 0.005 or rms > max_rms + 6.0


@pytest.mark.parametrize(
    ("meter", "energy", "instruments"),
    [((4, 4), 0.9, FULL), ((4, 4), 0.25, FULL), ((6, 8), 0.6, (PIANO, STRINGS, FLUTE))],
)
def test_loop_has_no_seam(
    backend: DraftBackend,
    meter: tuple[int, int],
    energy: float,
    instruments: tuple[InstrumentToken, ...],
) -> None:
    t = loop_tokens(4, meter, energy=energy, instruments=instruments)
    n = round(t.duration_s * SR)
    audio = backend.generate(t)
    assert audio.samples.shape == (n, 2)
    comp = compose(t)
    bar_frames = round(comp.bar_s * SR)
    assert not seam_stands_out(audio.samples, bar_frames)
    # The same statistics catch a loop rendered naively: cut without its folded tail (a click)
    # or rendered as a song (faded out and in: a level hole).
    naive = backend._renderer.render(comp, n, tail_s=0.0)
    faded = backend._renderer.render(comp, n, loop=False)
    assert seam_stands_out(naive, bar_frames)
    assert seam_stands_out(faded, bar_frames)


def test_layers_share_grid_harmony_and_melody(backend: DraftBackend) -> None:
    """A `layers` product: the same loop at several energies; a game may switch on any bar."""
    layers = {
        e: loop_tokens(8, energy=e, seed=9, product="layers", instruments=(*FULL, STRINGS))
        for e in (0.25, 0.55, 0.9)
    }
    comps = {e: compose(t) for e, t in layers.items()}
    calm, tense, combat = comps[0.25], comps[0.55], comps[0.9]
    for c in (tense, combat):
        assert c.progression == calm.progression
        assert c.melody and [(n.start_s, n.end_s, n.pitch) for n in c.melody] == [
            (n.start_s, n.end_s, n.pitch) for n in calm.melody
        ]
        assert [b.start_s for b in c.bars] == [b.start_s for b in calm.bars]
    assert sounding(calm) <= sounding(tense) <= sounding(combat)
    assert not any(calm.parts[i].instrument.is_drum for i in sounding(calm))  # calm: no drums
    count = {e: sum(len(p.notes) for p in c.parts) for e, c in comps.items()}
    assert count[0.9] > 2.5 * count[0.25]
    rms = {
        e: float(np.sqrt(np.mean(backend.generate(t).samples.astype(np.float64) ** 2)))
        for e, t in layers.items()
    }
    assert rms[0.25] < rms[0.55] < rms[0.9] and rms[0.9] > 1.5 * rms[0.25]


# --- stems ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instruments", "groups"),
    [
        (FULL, {"drums", "bass", "harmony", "melody"}),
        (BAND, {"drums", "bass", "harmony", "melody"}),  # the piano's tune gets its own stem
        ((PIANO, STRINGS), {"harmony", "melody"}),
    ],
)
def test_stems_sum_to_the_mix(
    backend: DraftBackend, instruments: tuple[InstrumentToken, ...], groups: set[str]
) -> None:
    t = tokens(duration_s=8.0, instruments=instruments, product="stems")
    audio = backend.generate(t)
    assert audio.stems is not None and set(audio.stems) == groups
    mix = audio.samples
    total = np.zeros(mix.shape, dtype=np.float64)
    for name, stem in audio.stems.items():
        assert stem.shape == mix.shape and stem.dtype == np.float32
        assert float(np.sqrt(np.mean(stem.astype(np.float64) ** 2))) > 1e-3, name
        total += stem
    assert float(np.max(np.abs(total - mix))) < 1e-5
    assert 0.1 < np.abs(mix).max() <= 1.0
    # Stems do not change the music: the plain render of the same tokens is the same mix.
    plain = backend.generate(t.model_copy(update={"product": "song"})).samples
    assert plain.shape == mix.shape and audio.stems is not None
    assert backend.generate(t.model_copy(update={"product": "song"})).stems is None
    assert float(np.max(np.abs(plain - mix))) < 0.05


def test_all_controls_deterministic(backend: DraftBackend) -> None:
    t = loop_tokens(
        4, (6, 8), melody=USER, mood="tense", structure=("verse", "chorus"), product="stems"
    )
    a, b = backend.generate(t), backend.generate(t)
    assert np.array_equal(a.samples, b.samples)
    assert a.stems is not None and b.stems is not None
    assert all(np.array_equal(a.stems[k], b.stems[k]) for k in a.stems)
