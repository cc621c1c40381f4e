"""The draft backend: weight-free symbolic composition rendered with a General MIDI SoundFont."""

from activities.inference.draft.backend import DRAFT_MODEL_VERSION, DraftBackend
from activities.inference.draft.composer import (
    STEM_GROUPS,
    Composition,
    Meter,
    Note,
    Part,
    compose,
    make_meter,
)
from activities.inference.draft.renderer import DEFAULT_SOUNDFONT, SoundFontRenderer

__all__ = [
    "DEFAULT_SOUNDFONT",
    "DRAFT_MODEL_VERSION",
    "STEM_GROUPS",
    "Composition",
    "DraftBackend",
    "Meter",
    "Note",
    "Part",
    "SoundFontRenderer",
    "compose",
    "make_meter",
]
