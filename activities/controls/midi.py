"""User melodies from Standard MIDI Files: parse, pick one monophonic line, fit it to a request.

Pure functions (bytes in, values out); every bad input raises `InvalidRequestError` with a
one-line message.

Rules (kept stable: they decide what a request means, see `CONTROLS_VERSION`):

* Melody track: among the non-drum instruments (pretty_midi splits a file into one instrument
  per track/channel/program) whose note count is at least half that of the busiest one, the
  one with the highest mean pitch; ties go to more notes, then to file order. Melodies usually
  sit on top, and the "busy" floor keeps a sparse high counter-line or a few sustained high pad
  notes from winning over the real tune.
* Monophony: skyline. At equal onsets the highest note wins; a note starting while another
  sounds cuts that note short if it is at least as high, and is dropped if it is lower.
* Time: quarter-note beats from the file's own tempo map (ticks / resolution), shifted so
  beat 0 is the downbeat of the bar holding the first melody note; the first note keeps its
  position inside that bar (a pickup stays a pickup). Bars follow the file's time signatures
  (4/4 if none).
* Key: the file's first key signature event if it has one, else Krumhansl-Schmuckler on the
  duration-weighted pitch-class histogram of all non-drum notes (harmony makes the key far
  clearer than the tune alone).
* Transposition (`fit_melody`): the smallest shift (-6..+5 semitones) from the melody's tonic
  to the requested tonic. If the modes differ, the melody's relative key in the requested mode
  is used (A minor → C major is a shift of 0): the notes keep their scale, only the tonal
  centre is re-read, so no note is bent into another mode. If the smallest shift leaves the
  MIDI piano range (21..108), the shift an octave the other way is tried.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import mido
import numpy as np
import pretty_midi

from schemas.controls import MelodyNote
from schemas.errors import InvalidRequestError
from schemas.music import Mode, key_name

MAX_MIDI_BYTES = 1 << 20  # 1 MiB: far more than any melody needs
MAX_MIDI_TRACKS = 64
MAX_MIDI_NOTES = 20_000  # all notes in the file, drums included
# Longest file in quarter notes (~34 min at 120 BPM). Checked before pretty_midi allocates its
# per-tick time table, which a hostile file could make huge.
MAX_MIDI_BEATS = 4096
MIN_PITCH, MAX_PITCH = 21, 108  # A0..C8, the piano range
STEPS_PER_BEAT = 4  # melody_chroma resolution: sixteenth notes

# Krumhansl-Kessler key profiles (major, minor), tonic first.
_MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


@dataclass(frozen=True)
class ParsedMelody:
    """The melody found in a MIDI file, before it is fitted to a request.

    `notes` are in quarter-note beats from the downbeat of the first melody bar (so a pickup
    note starts after 0), pitches as in the file.
    """

    notes: tuple[MelodyNote, ...]
    length_beats: float  # end of the last note
    tempo_bpm: float  # the file's first tempo (quarter notes per minute; 120 if none)
    beats_per_bar: int  # time signature in force at the first melody note (4/4 if none)
    beat_unit: int
    tonic_pc: int
    mode: Mode
    key_source: str  # "key_signature" or "estimated"
    note_count: int  # notes in the extracted melody
    track_name: str  # name of the track the melody came from ("" if unnamed)

    @property
    def key_name(self) -> str:
        return key_name(self.tonic_pc, self.mode)


def estimate_key(histogram: Sequence[float] | np.ndarray) -> tuple[int, Mode, float]:
    """Krumhansl-Schmuckler: (tonic pitch class, mode, correlation) best matching `histogram`.

    `histogram` has 12 weights, C..B. Ties go to the first key in C..B order, major first.
    A flat (or empty) histogram gives C major with correlation 0.
    """
    h = np.asarray(histogram, dtype=np.float64)
    if h.shape != (12,):
        raise ValueError("histogram must have 12 values")
    if float(h.std()) == 0.0:
        return 0, "major", 0.0
    best: tuple[int, Mode, float] = (0, "major", -2.0)
    for tonic in range(12):
        for mode, profile in (("major", _MAJOR_PROFILE), ("minor", _MINOR_PROFILE)):
            r = float(np.corrcoef(h, np.roll(profile, tonic))[0, 1])
            if r > best[2] + 1e-12:
                best = (tonic, mode, r)  # type: ignore[assignment]
    return best


def parse_midi(data: bytes) -> ParsedMelody:
    """Parse a Standard MIDI File and extract one monophonic melody (see the module rules).

    Raises:
        InvalidRequestError: empty, too big, corrupt or unsupported file; no non-drum notes;
            too many tracks or notes.
    """
    if not data:
        raise InvalidRequestError("MIDI file is empty")
    if len(data) > MAX_MIDI_BYTES:
        raise InvalidRequestError(
            f"MIDI file is {len(data)} bytes; the limit is {MAX_MIDI_BYTES} bytes (1 MiB)"
        )
    midi_file = _read_smf(data)
    pm = _to_pretty_midi(midi_file)

    total_notes = sum(len(inst.notes) for inst in pm.instruments)
    if total_notes > MAX_MIDI_NOTES:
        raise InvalidRequestError(
            f"MIDI file has {total_notes} notes; the limit is {MAX_MIDI_NOTES}"
        )
    pitched = [
        (i, inst)
        for i, inst in enumerate(pm.instruments)
        if not inst.is_drum and any(n.end > n.start for n in inst.notes)
    ]
    if not pitched:
        raise InvalidRequestError("MIDI file has no non-drum notes to use as a melody")

    # Melody track: highest mean pitch among the busy ones (module docstring).
    def count(inst: pretty_midi.Instrument) -> int:
        return sum(1 for n in inst.notes if n.end > n.start)

    busiest = max(count(inst) for _, inst in pitched)
    busy = [(i, inst) for i, inst in pitched if 2 * count(inst) >= busiest]
    _, chosen = max(
        busy,
        key=lambda item: (
            float(np.mean([n.pitch for n in item[1].notes if n.end > n.start])),
            count(item[1]),
            -item[0],
        ),
    )

    resolution = float(pm.resolution)
    raw = [
        (pm.time_to_tick(n.start), pm.time_to_tick(n.end), int(n.pitch), int(n.velocity))
        for n in chosen.notes
    ]
    line = _skyline([(s, e, p, v) for s, e, p, v in raw if e > s])
    if not line:
        raise InvalidRequestError("MIDI file has no non-drum notes to use as a melody")

    first_tick = line[0][0]
    bar_start, beats_per_bar, beat_unit = _bar_at(pm, first_tick)
    notes = tuple(
        MelodyNote(
            start_beat=round((s - bar_start) / resolution, 6),
            duration_beats=round((e - s) / resolution, 6),
            pitch=p,
            velocity=max(1, min(127, v)),
        )
        for s, e, p, v in line
    )
    tonic_pc, mode, key_source = _file_key(pm)
    _, tempi = pm.get_tempo_changes()
    return ParsedMelody(
        notes=notes,
        length_beats=round((line[-1][1] - bar_start) / resolution, 6),
        tempo_bpm=round(float(tempi[0]) if len(tempi) else 120.0, 3),
        beats_per_bar=beats_per_bar,
        beat_unit=beat_unit,
        tonic_pc=tonic_pc,
        mode=mode,
        key_source=key_source,
        note_count=len(notes),
        track_name=(chosen.name or "").strip(),
    )


def transpose_shift(from_tonic: int, from_mode: Mode, to_tonic: int, to_mode: Mode) -> int:
    """Smallest shift (-6..+5 semitones) taking a melody's key onto the requested key.

    Differing modes compare the melody's relative key in the requested mode.
    """
    if from_mode != to_mode:
        # Relative major is 3 semitones above a minor tonic; relative minor 3 below a major.
        from_tonic = from_tonic + 3 if from_mode == "minor" else from_tonic - 3
    diff = (to_tonic - from_tonic) % 12
    return diff if diff <= 5 else diff - 12


def fit_melody(
    parsed: ParsedMelody, *, tonic_pc: int, mode: Mode, transpose: bool
) -> tuple[list[MelodyNote], int]:
    """The melody's notes for a request in `tonic_pc`/`mode`, and the semitone shift applied.

    With `transpose=False` the notes are returned as they are (shift 0).

    Raises:
        InvalidRequestError: a note falls outside the MIDI piano range (21..108).
    """
    lo = min(n.pitch for n in parsed.notes)
    hi = max(n.pitch for n in parsed.notes)
    shift = 0
    if transpose:
        shift = transpose_shift(parsed.tonic_pc, parsed.mode, tonic_pc % 12, mode)
        if not (MIN_PITCH <= lo + shift and hi + shift <= MAX_PITCH):
            other = shift - 12 if shift >= 0 else shift + 12
            if MIN_PITCH <= lo + other and hi + other <= MAX_PITCH:
                shift = other
    if lo + shift < MIN_PITCH or hi + shift > MAX_PITCH:
        moved = f" after transposing by {shift:+d} semitones" if shift else ""
        raise InvalidRequestError(
            f"melody spans MIDI notes {lo + shift}..{hi + shift}{moved}; "
            f"notes must lie within {MIN_PITCH}..{MAX_PITCH} (A0..C8)"
        )
    notes = [n.model_copy(update={"pitch": n.pitch + shift}) for n in parsed.notes]
    return notes, shift


def melody_chroma(notes: Sequence[MelodyNote], total_beats: float) -> list[int]:
    """Pitch class per sixteenth note (4 steps per quarter beat), -1 where nothing sounds.

    Length `ceil(total_beats * 4)`. Note edges are rounded to the nearest step; a note always
    covers at least one step, and a later note overwrites an earlier one where they meet.
    """
    steps = max(0, math.ceil(total_beats * STEPS_PER_BEAT - 1e-9))
    chroma = [-1] * steps
    for note in sorted(notes, key=lambda n: n.start_beat):
        start = round(note.start_beat * STEPS_PER_BEAT)
        end = max(start + 1, round((note.start_beat + note.duration_beats) * STEPS_PER_BEAT))
        for i in range(max(0, start), min(steps, end)):
            chroma[i] = note.pitch % 12
    return chroma


def check_melody_fits(notes: Sequence[MelodyNote], total_beats: float, *, tempo_bpm: float) -> None:
    """Raise if the melody runs past the end of a piece of `total_beats` quarter notes.

    Raises:
        InvalidRequestError: the melody is longer than the piece.
    """
    if not notes:
        return
    end = max(n.start_beat + n.duration_beats for n in notes)
    if end > total_beats + 1e-6:
        seconds = 60.0 / tempo_bpm
        raise InvalidRequestError(
            f"melody is {end:g} beats ({end * seconds:.1f} s at {tempo_bpm:g} BPM) but the "
            f"track is only {total_beats:g} beats ({total_beats * seconds:.1f} s); "
            "ask for a longer duration or a faster tempo, or upload a shorter melody"
        )


def _read_smf(data: bytes) -> mido.MidiFile:
    """Parse with mido and apply the structural limits before pretty_midi does any work."""
    try:
        midi_file = mido.MidiFile(file=io.BytesIO(data))
    except Exception as exc:  # mido raises OSError, EOFError, ValueError, KeyError... on garbage
        raise InvalidRequestError(
            f"MIDI file is not a valid Standard MIDI File: {_describe(exc)}"
        ) from None
    if midi_file.type == 2:
        raise InvalidRequestError("MIDI file is type 2 (independent sequences); use type 0 or 1")
    if not 0 < midi_file.ticks_per_beat < 0x8000:
        raise InvalidRequestError(
            "MIDI file uses SMPTE time division; only ticks-per-quarter-note files are supported"
        )
    if len(midi_file.tracks) > MAX_MIDI_TRACKS:
        raise InvalidRequestError(
            f"MIDI file has {len(midi_file.tracks)} tracks; the limit is {MAX_MIDI_TRACKS}"
        )
    max_tick = max((sum(msg.time for msg in track) for track in midi_file.tracks), default=0)
    if max_tick > MAX_MIDI_BEATS * midi_file.ticks_per_beat:
        raise InvalidRequestError(
            f"MIDI file is {max_tick / midi_file.ticks_per_beat:.0f} quarter notes long; "
            f"the limit is {MAX_MIDI_BEATS}"
        )
    return midi_file


def _to_pretty_midi(midi_file: mido.MidiFile) -> pretty_midi.PrettyMIDI:
    try:
        with warnings.catch_warnings():
            # pretty_midi warns about meta events on non-zero tracks; it still reads them.
            warnings.simplefilter("ignore")
            return pretty_midi.PrettyMIDI(mido_object=midi_file)
    except Exception as exc:
        raise InvalidRequestError(
            f"MIDI file is not a valid Standard MIDI File: {_describe(exc)}"
        ) from None


def _describe(exc: Exception) -> str:
    text = " ".join(str(exc).split())[:200]
    return text or type(exc).__name__


def _skyline(notes: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Reduce (start, end, pitch, velocity) notes in ticks to one voice (module rules)."""
    out: list[tuple[int, int, int, int]] = []
    for start, end, pitch, velocity in sorted(notes, key=lambda n: (n[0], -n[2], -n[1])):
        if out:
            p_start, p_end, p_pitch, p_velocity = out[-1]
            if start == p_start:
                continue  # same onset: the higher note (sorted first) already won
            if start < p_end:
                if pitch < p_pitch:
                    continue  # under a sounding higher note: dropped
                out[-1] = (p_start, start, p_pitch, p_velocity)  # cut the lower note short
        out.append((start, end, pitch, velocity))
    return out


def _bar_at(pm: pretty_midi.PrettyMIDI, tick: int) -> tuple[int, int, int]:
    """(tick of the downbeat at or before `tick`, numerator, denominator) of the bar there."""
    changes = sorted(
        ((pm.time_to_tick(ts.time), ts.numerator, ts.denominator)
         for ts in pm.time_signature_changes),
        key=lambda c: c[0],
    )  # fmt: skip
    if not changes or changes[0][0] > 0:
        changes.insert(0, (0, 4, 4))  # before the first time signature: 4/4 (the SMF default)
    origin, num, den = changes[0]
    for change in changes[1:]:
        if change[0] > tick:
            break
        origin, num, den = change
    bar_ticks = max(1, round(pm.resolution * num * 4 / den))
    return origin + (tick - origin) // bar_ticks * bar_ticks, num, den


def _file_key(pm: pretty_midi.PrettyMIDI) -> tuple[int, Mode, str]:
    if pm.key_signature_changes:
        first = min(pm.key_signature_changes, key=lambda k: k.time)
        # pretty_midi key numbers: 0..11 = C..B major, 12..23 = C..B minor.
        mode: Mode = "minor" if first.key_number >= 12 else "major"
        return first.key_number % 12, mode, "key_signature"
    histogram = np.zeros(12)
    for inst in pm.instruments:
        if inst.is_drum:
            continue
        for n in inst.notes:
            histogram[n.pitch % 12] += max(0.0, n.end - n.start)
    tonic, mode, _ = estimate_key(histogram)
    return tonic, mode, "estimated"
