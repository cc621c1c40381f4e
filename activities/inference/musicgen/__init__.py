"""MusicGen backend (torch + transformers: install the `models` extra)."""

from activities.inference.musicgen.backend import MusicGenBackend, build_prompt

__all__ = ["MusicGenBackend", "build_prompt"]
