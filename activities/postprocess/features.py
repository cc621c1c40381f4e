"""Audio features stored in PostgreSQL so assets can be searched without downloading audio.

Loudness range follows EBU Tech 3342 (3 s short-term windows, K-weighted, gated at -70 LUFS and
-20 LU relative, 10th-95th percentile). Tempo and key are estimated from the audio itself (librosa
beat tracking; Krumhansl-Schmuckler profiles on the mean chroma), not copied from the request.
The embedding comes from the process's extractor (`embedding.embedding_extractor`: dsp-v1, or
CLAP when `TUNESMITH_CLAP_MODEL_DIR` is set) and is stored with that extractor's model id.
"""

from __future__ import annotations

import numpy as np
import pyloudnorm

from activities.postprocess.embedding import (
    DSP_SAMPLE_RATE,
    DspEmbedding,
    EmbeddingExtractor,
    embedding_extractor,
)
from schemas.jobs import AudioFeatures
from schemas.music import key_name

# Krumhansl-Kessler key profiles (major, minor), tonic first.
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
ANALYSIS_RATE = DSP_SAMPLE_RATE


def loudness_range_lu(samples: np.ndarray, sample_rate: int) -> float:
    """EBU Tech 3342 loudness range (LRA) in LU; 0 for audio shorter than one window."""
    meter = pyloudnorm.Meter(sample_rate)
    x = samples.astype(np.float64)
    for stage in meter._filters.values():  # the meter's own K-weighting stages
        x = stage.apply_filter(x)
    window, hop = int(3.0 * sample_rate), int(0.1 * sample_rate)  # Tech 3342 short-term loudness
    if x.shape[0] < window:
        return 0.0
    power = np.cumsum(np.concatenate([np.zeros((1, x.shape[1])), x**2]), axis=0)
    starts = np.arange(0, x.shape[0] - window + 1, hop)
    mean_square = ((power[starts + window] - power[starts]) / window).sum(axis=1)
    st = -0.691 + 10 * np.log10(mean_square + 1e-20)
    st = st[st > -70.0]
    if st.size == 0:
        return 0.0
    relative_gate = 10 * np.log10(np.mean(10 ** (st / 10))) - 20.0
    st = st[st > relative_gate]
    return float(np.percentile(st, 95) - np.percentile(st, 10))


def estimate_key(chroma_mean: np.ndarray) -> tuple[str, float]:
    """(key name, correlation) of the best-matching Krumhansl-Schmuckler profile."""
    best = ("C major", -2.0)
    for tonic in range(12):
        for mode, profile in (("major", _MAJOR), ("minor", _MINOR)):
            r = float(np.corrcoef(chroma_mean, np.roll(profile, tonic))[0, 1])
            if r > best[1]:
                best = (key_name(tonic, mode), r)  # type: ignore[arg-type]
    return best


def extract_features(
    samples: np.ndarray,
    sample_rate: int,
    *,
    instruments: list[str],
    extractor: EmbeddingExtractor | None = None,
) -> AudioFeatures:
    """Measure a master: loudness range, tempo, key, spectral summary, embedding.

    Args:
        instruments: instrumentation tags; for generated audio these are the requested
            instruments (the draft backend plays exactly those).
        extractor: the embedding; None: `embedding_extractor()` (from the settings, cached).

    Raises:
        EmbeddingExtractorError: CLAP is configured but cannot be loaded.
    """
    import librosa

    if extractor is None:
        extractor = embedding_extractor()
    mono = librosa.resample(samples.mean(axis=1).astype(np.float32), orig_sr=sample_rate,
                            target_sr=ANALYSIS_RATE, res_type="soxr_hq")  # fmt: skip
    onset_env = librosa.onset.onset_strength(y=mono, sr=ANALYSIS_RATE)
    tempo = float(
        np.atleast_1d(librosa.feature.tempo(onset_envelope=onset_env, sr=ANALYSIS_RATE))[0]
    )
    chroma = librosa.feature.chroma_cqt(y=mono, sr=ANALYSIS_RATE)
    key, key_confidence = estimate_key(chroma.mean(axis=1))
    centroid = librosa.feature.spectral_centroid(y=mono, sr=ANALYSIS_RATE)
    rolloff = librosa.feature.spectral_rolloff(y=mono, sr=ANALYSIS_RATE)
    flatness = librosa.feature.spectral_flatness(y=mono)
    if isinstance(extractor, DspEmbedding):  # reuses the chroma above (its slowest input)
        embedding = extractor.embed(mono, ANALYSIS_RATE, chroma=chroma)
    else:  # from the master's own rate: a learned model may hear above 11 kHz
        embedding = extractor.embed(samples.mean(axis=1), sample_rate)
    return AudioFeatures(
        loudness_range_lu=round(loudness_range_lu(samples, sample_rate), 2),
        tempo_bpm=round(tempo, 2),
        key=key,
        key_confidence=round(key_confidence, 3),
        spectral={
            "centroid_hz": round(float(centroid.mean()), 1),
            "rolloff_hz": round(float(rolloff.mean()), 1),
            "flatness": round(float(flatness.mean()), 5),
        },
        instruments=instruments,
        embedding=embedding,
        embedding_model=extractor.model_id,
    )
