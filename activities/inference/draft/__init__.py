"""The draft backend: weight-free symbolic composition rendered with a General MIDI SoundFont."""

from activities.inference.draft.backend import DRAFT_MODEL_VERSION, DraftBackend
from activities.inference.draft.composer import Composition, Note, Part, compose
from activities.inference.draft.renderer import DEFAULT_SOUNDFONT, SoundFontRenderer

__all__ = [
    "DEFAULT_SOUNDFONT",
    "DRAFT_MODEL_VERSION",
    "Composition",
    "DraftBackend",
    "Note",
    "Part",
    "SoundFontRenderer",
    "compose",
]
