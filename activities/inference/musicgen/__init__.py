"""MusicGen backend (torch + transformers: install the `models` extra)."""

from activities.inference.musicgen.backend import MusicGenBackend

__all__ = ["MusicGenBackend"]
