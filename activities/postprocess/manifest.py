"""The manifest of a multi-file or looping product: the grid a game engine or DAW needs."""

from __future__ import annotations

from typing import Any

from schemas.controls import ControlTokens
from schemas.jobs import AudioRef, PartOutput

MANIFEST_VERSION = 1


def build_manifest(
    tokens: ControlTokens, master: AudioRef, parts: list[PartOutput], main_part: str
) -> dict[str, Any]:
    """Describe the product: tempo, meter, key, bar grid in samples at the delivery rate, and
    one entry per part. Published as `manifest.json` beside the files (file names added then).

    Bar lines fall at `round(k * bar_length_samples)`; for loops and layers every bar line is a
    switch point, and `loop_length_samples` is exactly the length of every file.
    """
    rate = master.sample_rate
    bar_samples = tokens.bar_seconds * rate
    frames = round(master.duration_s * rate)
    bars = round(frames / bar_samples) if tokens.loop else tokens.bars
    energy = {layer.name: layer.energy for layer in tokens.layers}
    return {
        "manifest_version": MANIFEST_VERSION,
        "product": tokens.product,
        "tempo_bpm": tokens.tempo_bpm,
        "meter": tokens.meter,
        "key": tokens.key_name,
        "sample_rate": rate,
        "channels": master.channels,
        "frames": frames,
        "bars": bars,
        "bar_length_samples": round(bar_samples, 6),
        "loop": tokens.loop,
        "loop_length_samples": frames if tokens.loop else None,
        "switch_points_samples": [round(k * bar_samples) for k in range(bars)]
        if tokens.loop
        else [],
        "main": {"name": main_part, "sha256": master.sha256},
        "parts": [
            {
                "name": p.name,
                "sha256": p.master.sha256,
                "frames": round(p.master.duration_s * p.master.sample_rate),
                "integrated_lufs": round(p.integrated_lufs, 2),
                "true_peak_dbtp": round(p.true_peak_dbtp, 2),
                **({"energy": energy[p.name]} if p.name in energy else {}),
            }
            for p in parts
        ],
        # Stems: the parts sum to the mix (the main file), sample for sample, up to 24-bit
        # rounding; layers: independent loops on one grid.
        "parts_sum_to_main": tokens.product == "stems",
    }
