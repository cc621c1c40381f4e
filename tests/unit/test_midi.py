"""User melodies from MIDI: parsing, melody-track choice, skyline, timing, key, fitting, limits."""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

import mido
import pytest

from activities.controls.midi import (
    MAX_MIDI_BYTES,
    MAX_MIDI_NOTES,
    MAX_MIDI_TRACKS,
    ParsedMelody,
    check_melody_fits,
    estimate_key,
    fit_melody,
    melody_chroma,
    parse_midi,
    transpose_shift,
)
from schemas.controls import MelodyNote
from schemas.errors import InvalidRequestError

TPQ = 480  # ticks per quarter note in the fixtures


@dataclass
class Track:
    """A fixture track: notes as (start beat, duration beats, pitch), on one channel."""

    notes: Sequence[tuple[float, float, int]]
    channel: int = 0
    program: int = 0
    name: str = ""


@dataclass
class Meta:
    """Conductor-track events, at beats: tempos (bpm), time signatures, key signatures."""

    tempos: list[tuple[float, float]] = field(default_factory=lambda: [(0.0, 120.0)])
    time_signatures: list[tuple[float, int, int]] = field(default_factory=list)
    keys: list[tuple[float, str]] = field(default_factory=list)


def make_midi(tracks: list[Track], meta: Meta | None = None, tpq: int = TPQ) -> bytes:
    """A type-1 Standard MIDI File: one conductor track, then one track per `Track`."""
    meta = meta or Meta()
    mid = mido.MidiFile(type=1, ticks_per_beat=tpq)
    events: list[tuple[int, int, mido.MetaMessage]] = []
    for beat, bpm in meta.tempos:
        events.append((round(beat * tpq), 0, mido.MetaMessage("set_tempo", tempo=round(6e7 / bpm))))
    for beat, num, den in meta.time_signatures:
        msg = mido.MetaMessage("time_signature", numerator=num, denominator=den)
        events.append((round(beat * tpq), 1, msg))
    for beat, key in meta.keys:
        events.append((round(beat * tpq), 2, mido.MetaMessage("key_signature", key=key)))
    mid.tracks.append(_delta_track(events))
    for track in tracks:
        ev: list[tuple[int, int, mido.Message | mido.MetaMessage]] = []
        if track.name:
            ev.append((0, 0, mido.MetaMessage("track_name", name=track.name)))
        ch = track.channel
        ev.append((0, 1, mido.Message("program_change", program=track.program, channel=ch)))
        for start, dur, pitch in track.notes:
            on, off = round(start * tpq), round((start + dur) * tpq)
            ev.append((on, 3, mido.Message("note_on", note=pitch, velocity=90, channel=ch)))
            ev.append((off, 2, mido.Message("note_off", note=pitch, velocity=0, channel=ch)))
        mid.tracks.append(_delta_track(ev))
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def _delta_track(events: list) -> mido.MidiTrack:
    track = mido.MidiTrack()
    now = 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=tick - now))
        now = tick
    return track


def _simple(notes: Sequence[tuple[float, float, int]], **meta: object) -> ParsedMelody:
    return parse_midi(make_midi([Track(notes)], Meta(**meta) if meta else None))  # type: ignore[arg-type]


def _triples(parsed: ParsedMelody) -> list[tuple[float, float, int]]:
    return [(n.start_beat, n.duration_beats, n.pitch) for n in parsed.notes]


C_MAJOR_TUNE = [(0, 1, 60), (1, 1, 62), (2, 1, 64), (3, 1, 65), (4, 2, 67), (6, 2, 72)]


# --- parsing and timing ---------------------------------------------------------------------


def test_simple_melody_round_trips_in_beats() -> None:
    parsed = _simple(C_MAJOR_TUNE, tempos=[(0, 90.0)])
    assert _triples(parsed) == C_MAJOR_TUNE
    assert parsed.tempo_bpm == 90.0
    assert (parsed.beats_per_bar, parsed.beat_unit) == (4, 4)
    assert parsed.length_beats == 8.0
    assert parsed.note_count == 6
    assert all(n.velocity == 90 for n in parsed.notes)


def test_tempo_changes_are_honoured() -> None:
    # Three tempos: the note times in beats must come out exactly as written, not in seconds.
    notes = [(float(b), 0.5, 60 + b) for b in range(12)]
    parsed = _simple(notes, tempos=[(0, 120.0), (4, 60.0), (8, 173.0)])
    assert _triples(parsed) == notes
    assert parsed.tempo_bpm == 120.0  # the first tempo


def test_odd_resolution_and_fractional_beats() -> None:
    notes = [(0.0, 1 / 3, 60), (1 / 3, 1 / 3, 62), (2 / 3, 1 / 3, 64), (1.0, 0.25, 65)]
    parsed = parse_midi(make_midi([Track(notes)], tpq=96))
    assert [(n.start_beat, n.pitch) for n in parsed.notes] == [
        (0.0, 60), (0.333333, 62), (0.666667, 64), (1.0, 65)
    ]  # fmt: skip


def test_melody_is_shifted_to_its_first_bar_keeping_the_pickup() -> None:
    # First note on beat 4 of bar 3 (4/4): it becomes beat 3 of the first bar.
    parsed = _simple([(11, 1, 67), (12, 2, 72)])
    assert _triples(parsed) == [(3.0, 1.0, 67), (4.0, 2.0, 72)]
    assert parsed.length_beats == 6.0


def test_bars_follow_the_time_signature() -> None:
    # 3/4: bars start at 0, 3, 6; a first note at beat 7.5 is 1.5 into its bar.
    parsed = _simple([(7.5, 0.5, 64), (8, 1, 65)], time_signatures=[(0, 3, 4)])
    assert (parsed.beats_per_bar, parsed.beat_unit) == (3, 4)
    assert _triples(parsed)[0] == (1.5, 0.5, 64)
    # 6/8: a bar is 3 quarter notes too.
    parsed = _simple([(4, 1, 64)], time_signatures=[(0, 6, 8)])
    assert (parsed.beats_per_bar, parsed.beat_unit, parsed.notes[0].start_beat) == (6, 8, 1.0)


def test_time_signature_changes_move_the_bar_lines() -> None:
    # Two bars of 4/4 (0..8), then 3/4 bars at 8, 11, 14: beat 12 is 1 into the bar at 11.
    ts = [(0, 4, 4), (8, 3, 4)]
    parsed = _simple([(12, 1, 60)], time_signatures=ts)
    assert (parsed.beats_per_bar, parsed.notes[0].start_beat) == (3, 1.0)
    parsed = _simple([(5, 1, 60)], time_signatures=ts)
    assert (parsed.beats_per_bar, parsed.notes[0].start_beat) == (4, 1.0)


# --- melody track and monophony -------------------------------------------------------------


def test_melody_track_is_the_highest_busy_non_drum_track() -> None:
    bass = Track([(b, 1, 36 + b % 5) for b in range(16)], channel=1, program=33, name="Bass")
    tune = Track([(b, 1, 72 + b % 3) for b in range(0, 16, 2)], channel=2, name="Lead")
    # Higher still but sparse (under half the busiest count): a counter-line, not the tune.
    sparkle = Track([(0, 8, 96), (8, 8, 98)], channel=3, name="Bells")
    drums = Track([(b / 2, 0.25, 81) for b in range(32)], channel=9, name="Drums")
    parsed = parse_midi(make_midi([bass, tune, sparkle, drums]))
    assert parsed.track_name == "Lead"
    assert [n.pitch for n in parsed.notes] == [72 + b % 3 for b in range(0, 16, 2)]


def test_equal_mean_pitch_tie_goes_to_the_busier_track() -> None:
    a = Track([(b, 1, 70) for b in range(6)], channel=0, name="A")
    b = Track([(b, 0.5, 70) for b in range(8)], channel=1, name="B")
    assert parse_midi(make_midi([a, b])).track_name == "B"


def test_skyline_keeps_the_top_note() -> None:
    notes = [
        # A C-major chord: only the top E survives.
        (0, 2, 60), (0, 2, 64), (0, 2, 55),
        # A higher note entering over a held one cuts it short.
        (2, 2, 62), (3, 1, 69),
        # A lower note entering under a held one is dropped.
        (4, 2, 71), (5, 2, 59),
        # A repeated pitch re-articulates.
        (8, 2, 65), (9, 1, 65),
    ]  # fmt: skip
    parsed = _simple(notes)
    assert _triples(parsed) == [
        (0, 2, 64), (2, 1, 62), (3, 1, 69), (4, 2, 71), (8, 1, 65), (9, 1, 65)
    ]  # fmt: skip
    starts = [n.start_beat for n in parsed.notes]
    ends = [n.start_beat + n.duration_beats for n in parsed.notes]
    assert all(e <= s for e, s in zip(ends, starts[1:], strict=False))  # monophonic


# --- key ------------------------------------------------------------------------------------


def test_key_signature_is_used_when_present() -> None:
    parsed = _simple(C_MAJOR_TUNE, keys=[(0, "Em")])
    assert (parsed.tonic_pc, parsed.mode, parsed.key_source) == (4, "minor", "key_signature")
    assert parsed.key_name == "E minor"
    parsed = _simple(C_MAJOR_TUNE, keys=[(0, "Bb")])
    assert (parsed.tonic_pc, parsed.mode, parsed.key_name) == (10, "major", "Bb major")


@pytest.mark.parametrize(
    ("tonic", "mode", "expected"),
    [(9, "minor", "A minor"), (7, "major", "G major"), (2, "minor", "D minor")],
)
def test_key_is_estimated_without_a_key_signature(tonic: int, mode: str, expected: str) -> None:
    # Tonic-heavy tune (tonic, third, fifth, scale run) over a tonic pedal in the bass.
    third = 4 if mode == "major" else 3
    scale = [0, 2, 4, 5, 7, 9, 11] if mode == "major" else [0, 2, 3, 5, 7, 8, 10]
    tune = [(i, 1, 60 + tonic + s) for i, s in enumerate(scale)]
    tune += [(7, 2, 60 + tonic + third), (9, 2, 60 + tonic + 7), (11, 4, 60 + tonic)]
    bass = Track([(b * 4, 4, 36 + tonic) for b in range(4)], channel=1)
    parsed = parse_midi(make_midi([Track(tune), bass]))
    assert (parsed.key_name, parsed.key_source) == (expected, "estimated")


def test_estimate_key_flat_histogram_is_c_major_with_no_confidence() -> None:
    assert estimate_key([1.0] * 12) == (0, "major", 0.0)


# --- fitting --------------------------------------------------------------------------------


@pytest.mark.parametrize("from_mode", ["major", "minor"])
@pytest.mark.parametrize("to_mode", ["major", "minor"])
def test_transpose_shift_is_smallest_and_lands_on_the_key(from_mode: str, to_mode: str) -> None:
    for src in range(12):
        for dst in range(12):
            shift = transpose_shift(src, from_mode, dst, to_mode)  # type: ignore[arg-type]
            assert -6 <= shift <= 5
            if from_mode == to_mode:
                assert (src + shift) % 12 == dst
            elif from_mode == "minor":  # relative major of the source lands on the target
                assert (src + 3 + shift) % 12 == dst
            else:
                assert (src - 3 + shift) % 12 == dst


def test_fit_melody_transposes_by_the_smallest_shift() -> None:
    g_major = _simple([(0, 1, 67), (1, 1, 71), (2, 1, 74)], keys=[(0, "G")])
    notes, shift = fit_melody(g_major, tonic_pc=0, mode="major", transpose=True)
    assert shift == 5 and [n.pitch for n in notes] == [72, 76, 79]
    notes, shift = fit_melody(g_major, tonic_pc=5, mode="major", transpose=True)  # F: down 2
    assert shift == -2 and [n.pitch for n in notes] == [65, 69, 72]
    notes, shift = fit_melody(g_major, tonic_pc=1, mode="major", transpose=True)  # Db: -6
    assert shift == -6
    # Relative keys: G major → E minor needs no shift.
    assert fit_melody(g_major, tonic_pc=4, mode="minor", transpose=True)[1] == 0
    # transpose=False leaves the notes alone.
    notes, shift = fit_melody(g_major, tonic_pc=0, mode="major", transpose=False)
    assert shift == 0 and notes == list(g_major.notes)
    assert [n.start_beat for n in notes] == [0.0, 1.0, 2.0]


def test_fit_melody_goes_the_other_way_at_the_top_of_the_range() -> None:
    high = _simple([(0, 1, 103), (1, 1, 106)], keys=[(0, "G")])
    notes, shift = fit_melody(high, tonic_pc=0, mode="major", transpose=True)  # +5 → 111: no
    assert shift == -7 and [n.pitch for n in notes] == [96, 99]


def test_fit_melody_rejects_notes_outside_the_piano_range() -> None:
    wide = _simple([(0, 1, 22), (1, 1, 106)], keys=[(0, "G")])  # no shift fits
    with pytest.raises(InvalidRequestError, match=r"within 21\.\.108"):
        fit_melody(wide, tonic_pc=0, mode="major", transpose=True)
    low = _simple([(0, 1, 12)])
    with pytest.raises(InvalidRequestError, match=r"MIDI notes 12\.\.12"):
        fit_melody(low, tonic_pc=0, mode="major", transpose=False)


def test_melody_chroma_per_sixteenth() -> None:
    notes = [
        MelodyNote(start_beat=0, duration_beats=1, pitch=69),
        MelodyNote(start_beat=1.5, duration_beats=0.25, pitch=72),
        MelodyNote(start_beat=2, duration_beats=0.01, pitch=76),  # shorter than a step: 1 step
        MelodyNote(start_beat=2.5, duration_beats=4, pitch=61),  # runs past the end: cut
    ]
    chroma = melody_chroma(notes, 3.1)
    assert len(chroma) == 13  # ceil(3.1 * 4)
    assert chroma == [9, 9, 9, 9, -1, -1, 0, -1, 4, -1, 1, 1, 1]
    assert melody_chroma([], 2) == [-1] * 8
    assert len(melody_chroma(notes, 3.0)) == 12  # exact: no extra step from float noise


def test_check_melody_fits() -> None:
    notes = [MelodyNote(start_beat=0, duration_beats=4, pitch=60),
             MelodyNote(start_beat=30, duration_beats=2, pitch=62)]  # fmt: skip
    check_melody_fits(notes, 32.0, tempo_bpm=120)  # exactly fills the track
    with pytest.raises(InvalidRequestError) as err:
        check_melody_fits(notes, 16.0, tempo_bpm=120)
    assert str(err.value).startswith(
        "melody is 32 beats (16.0 s at 120 BPM) but the track is only 16 beats (8.0 s)"
    )
    check_melody_fits([], 1.0, tempo_bpm=120)


# --- bad files ------------------------------------------------------------------------------


def _header(fmt: int, ntracks: int, division: int) -> bytes:
    return b"MThd" + struct.pack(">IHHH", 6, fmt, ntracks, division)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "MIDI file is empty"),
        (b"\0" * (MAX_MIDI_BYTES + 1), "limit is 1048576 bytes"),
        (b"hello, this is not a MIDI file at all", "not a valid Standard MIDI File"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "not a valid Standard MIDI File"),
        (_header(1, 1, 480) + b"MTrk\x00\x00\x00\x10\x00\x90", "not a valid Standard MIDI File"),
        (_header(1, 1, 0xE728) + b"MTrk\x00\x00\x00\x04\x00\xff\x2f\x00", "SMPTE"),
        (_header(2, 1, 480) + b"MTrk\x00\x00\x00\x04\x00\xff\x2f\x00", "type 2"),
    ],
    ids=["empty", "too-big", "text", "wav", "truncated", "smpte", "type2"],
)
def test_bad_files_are_rejected(data: bytes, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        parse_midi(data)


def test_truncated_real_file_is_rejected() -> None:
    data = make_midi([Track(C_MAJOR_TUNE)])
    for cut in (10, 20, len(data) // 2, len(data) - 3):
        with pytest.raises(InvalidRequestError, match="not a valid Standard MIDI File"):
            parse_midi(data[:cut])


def test_no_pitched_notes() -> None:
    with pytest.raises(InvalidRequestError, match="no non-drum notes"):
        parse_midi(make_midi([Track([(b, 0.5, 36) for b in range(8)], channel=9)]))
    with pytest.raises(InvalidRequestError, match="no non-drum notes"):
        parse_midi(make_midi([]))


def test_too_many_tracks() -> None:
    tracks = [Track([(0, 1, 60)], channel=t % 9) for t in range(MAX_MIDI_TRACKS)]  # + conductor
    with pytest.raises(InvalidRequestError, match=f"{MAX_MIDI_TRACKS + 1} tracks"):
        parse_midi(make_midi(tracks))
    parse_midi(make_midi(tracks[:-1]))  # exactly at the limit is fine


def test_too_many_notes() -> None:
    notes = [(i / 8, 1 / 8, 60 + i % 12) for i in range(MAX_MIDI_NOTES + 1)]
    data = make_midi([Track(notes)])
    assert len(data) < MAX_MIDI_BYTES
    with pytest.raises(InvalidRequestError, match=f"{MAX_MIDI_NOTES + 1} notes"):
        parse_midi(data)


def test_absurdly_long_file_is_rejected_before_parsing() -> None:
    with pytest.raises(InvalidRequestError, match="quarter notes long"):
        parse_midi(make_midi([Track([(0, 1, 60), (100_000, 1, 62)])]))
