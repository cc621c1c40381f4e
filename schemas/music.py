"""Musical vocabulary: keys and General MIDI instruments. Pure data and parsing, no I/O."""

from __future__ import annotations

import re
from typing import Literal

Mode = Literal["major", "minor"]

_PITCH_CLASSES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
NOTE_NAMES_SHARP = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
NOTE_NAMES_FLAT = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
_KEY_RE = re.compile(r"^\s*([A-Ga-g])\s*([#b♯♭]?)\s*(major|minor|maj|min|m|)?\s*$", re.IGNORECASE)


def parse_key(text: str) -> tuple[int, Mode]:
    """Parse a key such as "A minor", "F# major", "Bbm" or "C" into (tonic pitch class, mode).

    Raises:
        ValueError: the text is not a key.
    """
    m = _KEY_RE.match(text)
    if not m:
        raise ValueError(f"unknown key {text!r}; expected e.g. 'A minor', 'F# major', 'Bb'")
    letter, accidental, mode_text = m.group(1).upper(), m.group(2), (m.group(3) or "").lower()
    pc = _PITCH_CLASSES[letter] + (1 if accidental in ("#", "♯") else -1 if accidental else 0)
    # "m" alone means minor, but a bare "B" followed by nothing is major.
    mode: Mode = "minor" if mode_text in ("minor", "min", "m") else "major"
    return pc % 12, mode


def key_name(tonic_pc: int, mode: Mode) -> str:
    """Canonical name of a key: sharps for sharp keys, flats for flat keys."""
    flat_majors = {5, 10, 3, 8, 1}  # F, Bb, Eb, Ab, Db
    relative_major = (tonic_pc + 3) % 12 if mode == "minor" else tonic_pc
    names = NOTE_NAMES_FLAT if relative_major in flat_majors else NOTE_NAMES_SHARP
    return f"{names[tonic_pc % 12]} {mode}"


# A practical subset of General MIDI: name -> (program, role). Drums use channel 10.
# The role tells the draft composer what part to write for the instrument.
InstrumentRole = Literal["drums", "bass", "harmony", "melody", "pad"]
GM_INSTRUMENTS: dict[str, tuple[int, InstrumentRole]] = {
    "piano": (0, "harmony"),
    "electric-piano": (4, "harmony"),
    "harpsichord": (6, "harmony"),
    "vibraphone": (11, "melody"),
    "marimba": (12, "melody"),
    "organ": (16, "harmony"),
    "accordion": (21, "melody"),
    "acoustic-guitar": (24, "harmony"),
    "guitar": (25, "harmony"),
    "electric-guitar": (27, "harmony"),
    "distortion-guitar": (30, "harmony"),
    "bass": (33, "bass"),
    "acoustic-bass": (32, "bass"),
    "synth-bass": (38, "bass"),
    "violin": (40, "melody"),
    "viola": (41, "melody"),
    "cello": (42, "bass"),
    "contrabass": (43, "bass"),
    "harp": (46, "harmony"),
    "strings": (48, "pad"),
    "choir": (52, "pad"),
    "trumpet": (56, "melody"),
    "trombone": (57, "melody"),
    "horn": (60, "pad"),
    "brass": (61, "pad"),
    "saxophone": (65, "melody"),
    "oboe": (68, "melody"),
    "clarinet": (71, "melody"),
    "flute": (73, "melody"),
    "synth-lead": (81, "melody"),
    "synth-pad": (88, "pad"),
    "drums": (0, "drums"),
}
_ALIASES = {
    "grand-piano": "piano",
    "keys": "electric-piano",
    "e-piano": "electric-piano",
    "electric-bass": "bass",
    "bass-guitar": "bass",
    "sax": "saxophone",
    "lead": "synth-lead",
    "pad": "synth-pad",
    "percussion": "drums",
    "drum-kit": "drums",
    "string-ensemble": "strings",
}


def normalize_instrument(name: str) -> str:
    """Return the canonical instrument name for `name` (case, spaces, aliases folded).

    Raises:
        ValueError: the instrument is unknown.
    """
    slug = re.sub(r"[\s_]+", "-", name.strip().lower())
    slug = _ALIASES.get(slug, slug)
    if slug not in GM_INSTRUMENTS:
        known = ", ".join(sorted(GM_INSTRUMENTS))
        raise ValueError(f"unknown instrument {name!r}; known instruments: {known}")
    return slug


# Instrument families: one word for a group of General MIDI instruments. "strings" and "drums"
# stay single instruments (the GM ensemble programs); families name combinations.
INSTRUMENT_FAMILIES: dict[str, tuple[str, ...]] = {
    "band": ("electric-guitar", "bass", "drums"),
    "brass-section": ("trumpet", "trombone", "horn"),
    "guitars": ("acoustic-guitar", "electric-guitar"),
    "orchestra": ("strings", "horn", "flute", "contrabass"),
    "rhythm-section": ("piano", "bass", "drums"),
    "string-quartet": ("violin", "viola", "cello"),
    "synths": ("synth-lead", "synth-pad", "synth-bass"),
    "woodwinds": ("flute", "clarinet", "oboe"),
}


def expand_instruments(names: list[str]) -> list[str]:
    """Canonical instrument names for `names`, families expanded, order kept, duplicates dropped.

    Raises:
        ValueError: a name is neither an instrument nor a family.
    """
    out: list[str] = []
    for name in names:
        slug = re.sub(r"[\s_]+", "-", name.strip().lower())
        out.extend(INSTRUMENT_FAMILIES.get(slug) or (normalize_instrument(name),))
    return list(dict.fromkeys(out))


# Moods a request may name: each sets a default energy and a default mode when the request
# leaves those open (explicit controls always win).
MOODS: dict[str, tuple[float, Mode]] = {
    "calm": (0.25, "major"),
    "warm": (0.4, "major"),
    "dreamy": (0.3, "major"),
    "happy": (0.65, "major"),
    "uplifting": (0.7, "major"),
    "playful": (0.6, "major"),
    "sad": (0.3, "minor"),
    "melancholic": (0.35, "minor"),
    "dark": (0.5, "minor"),
    "tense": (0.65, "minor"),
    "epic": (0.85, "minor"),
    "aggressive": (0.95, "minor"),
}

STRUCTURE_SECTIONS = ("intro", "verse", "chorus", "bridge", "breakdown", "drop", "outro")


def normalize_structure(sections: list[str]) -> list[str]:
    """Section hints folded to lower case, in order.

    Raises:
        ValueError: a section is not one of `STRUCTURE_SECTIONS`.
    """
    folded = [s.strip().lower() for s in sections]
    unknown = [s for s in folded if s not in STRUCTURE_SECTIONS]
    if unknown:
        raise ValueError(
            f"unknown structure section(s) {unknown}; known: {', '.join(STRUCTURE_SECTIONS)}"
        )
    return folded


_METER_RE = re.compile(r"^\s*(\d{1,2})\s*/\s*(\d{1,2})\s*$")
METER_DENOMINATORS = (2, 4, 8, 16)


def parse_meter(text: str) -> tuple[int, int]:
    """Parse a time signature such as "4/4", "3/4", "6/8" or "7/8" into (numerator, denominator).

    Raises:
        ValueError: not a time signature, a numerator outside 1..16, or a denominator that is
            not 2, 4, 8 or 16.
    """
    m = _METER_RE.match(text)
    if not m:
        raise ValueError(f"meter {text!r} is not a time signature like '4/4', '3/4' or '6/8'")
    num, den = int(m.group(1)), int(m.group(2))
    if not 1 <= num <= 16:
        raise ValueError(f"meter {text!r}: beats per bar must be 1-16, not {num}")
    if den not in METER_DENOMINATORS:
        raise ValueError(f"meter {text!r}: the beat unit must be 2, 4, 8 or 16, not {den}")
    return num, den
