"""The draft backend: weight-free symbolic composition rendered with a General MIDI SoundFont."""

from activities.inference.draft.backend import DRAFT_MODEL_VERSION, DraftBackend
from activities.inference.draft.composer import Composition, compose
from activities.inference.draft.context import Note
from activities.inference.draft.parts import STEM_GROUPS, Part
from activities.inference.draft.renderer import DEFAULT_SOUNDFONT, SoundFontRenderer
from activities.inference.draft.theory import Meter, make_meter

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
