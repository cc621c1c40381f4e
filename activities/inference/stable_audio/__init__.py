"""Stable Audio backend (torch + stable-audio-tools: install the `models` extra)."""

from activities.inference.stable_audio.backend import StableAudioBackend

__all__ = ["StableAudioBackend"]
