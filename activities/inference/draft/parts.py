"""Arrangement: one `Part` per instrument, on its MIDI channel, with its mix level and pan.

Roles pick the writer; the first melody, harmony, pad or bass instrument carries the tune.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from activities.inference.backend import UnsupportedControlsError
from activities.inference.draft.accompaniment import (
    write_bass,
    write_drums,
    write_harmony,
    write_pad,
    write_percussion,
)
from activities.inference.draft.context import Context, Note
from activities.inference.draft.melody import TuneNote, double_user, realize_melody
from schemas.controls import InstrumentToken

DRUM_CHANNEL = 9  # General MIDI channel 10, zero-based
MAX_MELODIC_CHANNELS = 15
# Stem groups, in output order, and the stem each instrument role belongs to.
STEM_GROUPS = ("drums", "bass", "harmony", "melody")
ROLE_STEM = {
    "drums": "drums",
    "bass": "bass",
    "harmony": "harmony",
    "pad": "harmony",
    "melody": "melody",
}

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
# Plays a user melody when no instrument can carry it.
_PIANO_MELODY = InstrumentToken(name="piano", program=0, is_drum=False, role="melody")


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


def arrange(
    ctx: Context,
    instruments: Sequence[InstrumentToken],
    own_line: list[TuneNote],
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
                melody_here = list(user) if kk == 0 else double_user(ctx, user, salt)
            else:
                melody_here = realize_melody(ctx, own_line, kk, salt)
            melody_here = ctx.clip(melody_here)
            if idx == carrier:
                lead = melody_here
        if role == "drums":
            notes = write_drums(ctx, salt) if k == 0 else write_percussion(ctx, salt)
        elif role == "bass":
            notes = write_bass(ctx, k, salt)
        elif role == "pad":
            notes = write_pad(ctx, k, salt)
        elif role == "harmony":
            notes = write_harmony(ctx, k, light=idx == carrier, salt=salt)
        notes = ctx.clip(notes)
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
