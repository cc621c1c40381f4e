"""The text prompt of text-conditioned backends (MusicGen, Stable Audio), built from the
normalized controls. Shared by the neural backends, so neither imports the other."""

from __future__ import annotations

from schemas.controls import ControlTokens


def build_prompt(tokens: ControlTokens) -> str:
    """The text the model is conditioned on: the prompt plus the musical controls as words.

    MusicGen and Stable Audio only hear text, so tempo, key, meter and instruments are spelt
    out (MusicGen was trained on descriptions of this shape, e.g. "... 120 bpm, A minor").
    """
    parts = [tokens.prompt.strip().rstrip(".")]
    if tokens.mood:
        parts.append(tokens.mood)
    if tokens.instruments:
        parts.append(", ".join(i.name for i in tokens.instruments))
    parts.append(f"{tokens.tempo_bpm:g} bpm")
    parts.append(tokens.key_name)
    if tokens.meter != "4/4":
        parts.append(f"{tokens.meter} time")
    return ", ".join(p for p in parts if p)
