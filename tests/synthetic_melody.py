"""Synthetic melody profiles for the melody index's tests and bench (no audio rendering)."""

from __future__ import annotations

import numpy as np

from activities.catalog import melody


def synthetic_profile(rng: np.random.Generator, frames: int) -> np.ndarray:
    """Bands (frames × `melody.STORED_BANDS`) shaped like `melody.profile`'s: a random tune of
    notes with two overtones over a triad that changes every 1.5 s, on the 93 ms grid."""
    bands = np.zeros((frames, melody.STORED_BANDS), dtype=np.float32)
    root = int(rng.integers(12, 24))
    t = 0
    while t < frames:
        length = int(rng.integers(3, 7))
        note = root + int(rng.choice([0, 2, 4, 5, 7, 9, 11, 12, 14, 16]))
        for band, gain in ((note, 1.0), (note + 12, 0.5), (note + 19, 0.3)):
            if band < melody.STORED_BANDS:
                bands[t : t + length, band] += gain
        t += length
    for start in range(0, frames, 16):
        chord = int(rng.integers(0, 12))
        for step in (0, 4, 7):
            bands[start : start + 16, chord + step] += 0.4
    bands += rng.random(bands.shape).astype(np.float32) * 0.05
    return np.log1p(100 * bands / bands.mean()).astype(np.float32)
