"""A documented DSP embedding for "sounds like" search (no model weights needed).

dsp-v1 (48 dims): mean and standard deviation of 13 MFCCs (timbre, 26), mean chroma rotated to
its strongest pitch class (harmony, key-invariant, 12), mean spectral contrast (7), and
log-tempo-free rhythm summary: onset-strength mean/std and pulse clarity (3). Each block is
standardised and weighted, then the vector is L2-normalised, so cosine distance in pgvector
compares timbre, harmony and texture. A learned embedding (e.g. CLAP) can replace it through the
same `embedding_model` column; vectors are only compared within one model.
"""

from __future__ import annotations

import numpy as np

EMBEDDING_DIM = 48


def dsp_embedding(mono: np.ndarray, sample_rate: int, *, chroma: np.ndarray) -> list[float]:
    """The dsp-v1 embedding of a mono signal (see module docstring)."""
    import librosa

    mfcc = librosa.feature.mfcc(y=mono, sr=sample_rate, n_mfcc=13)
    timbre = np.concatenate([mfcc.mean(axis=1) / 100.0, mfcc.std(axis=1) / 50.0])
    profile = chroma.mean(axis=1)
    harmony = np.roll(profile, -int(np.argmax(profile))) / (profile.max() + 1e-9)
    contrast = librosa.feature.spectral_contrast(y=mono, sr=sample_rate).mean(axis=1) / 50.0
    onset = librosa.onset.onset_strength(y=mono, sr=sample_rate)
    ac = np.correlate(onset - onset.mean(), onset - onset.mean(), mode="full")[onset.size - 1 :]
    clarity = float(ac[1:].max() / (ac[0] + 1e-9)) if ac.size > 1 else 0.0
    rhythm = np.array([onset.mean() / 5.0, onset.std() / 5.0, clarity])
    vector = np.concatenate([timbre, harmony, contrast, rhythm]).astype(np.float64)
    norm = float(np.linalg.norm(vector))
    return [round(float(v), 6) for v in (vector / norm if norm > 0 else vector)]
