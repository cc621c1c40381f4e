"""Audio features stored in PostgreSQL so assets can be searched without downloading audio.

Loudness range follows EBU Tech 3342 (3 s short-term windows, K-weighted, gated at -70 LUFS and
-20 LU relative, 10th-95th percentile). Tempo and key are estimated from the audio itself (librosa
beat tracking; Krumhansl-Schmuckler profiles on the mean chroma), not copied from the request.
The embedding comes from the process's extractor (`embedding.embedding_extractor`: dsp-v1, or
CLAP when `TUNESMITH_CLAP_MODEL_DIR` is set) and is stored with that extractor's model id.
"""

from __future__ import annotations

import numpy as np

from activities.audio_io import mono_mix
from activities.postprocess.embedding import (
    DSP_SAMPLE_RATE,
    DspEmbedding,
    EmbeddingExtractor,
    Spectra,
    embedding_extractor,
)
from activities.postprocess.loudness import k_weighted
from schemas.jobs import AudioFeatures
from schemas.music import key_name

# Krumhansl-Kessler key profiles (major, minor), tonic first.
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
ANALYSIS_RATE = DSP_SAMPLE_RATE


def loudness_range_lu(
    samples: np.ndarray, sample_rate: int, *, weighted: np.ndarray | None = None
) -> float:
    """EBU Tech 3342 loudness range (LRA) in LU; 0 for audio shorter than one window.

    Args:
        weighted: `loudness.k_weighted(samples, sample_rate)` when the caller has it.
    """
    if weighted is None:
        weighted = k_weighted(samples, sample_rate)
    if weighted.shape[1] < int(3.0 * sample_rate):
        return 0.0
    # Tech 3342 short-term loudness: 3 s windows every 0.1 s.
    window, hop = int(3.0 * sample_rate), int(0.1 * sample_rate)
    starts = np.arange(0, weighted.shape[1] - window + 1, hop)
    power = np.zeros(weighted.shape[1] + 1)
    mean_square = np.zeros(starts.shape[0])
    for channel in weighted:
        np.cumsum(channel**2, out=power[1:])
        mean_square += (power[starts + window] - power[starts]) / window
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
    weighted: np.ndarray | None = None,
) -> AudioFeatures:
    """Measure a master: loudness range, tempo, key, spectral summary, embedding.

    Args:
        instruments: instrumentation tags; for generated audio these are the requested
            instruments (the draft backend plays exactly those).
        extractor: the embedding; None: `embedding_extractor()` (from the settings, cached).
        weighted: `loudness.k_weighted(samples, sample_rate)`, when the caller has it.

    Raises:
        EmbeddingExtractorError: CLAP is configured but cannot be loaded.
    """
    import librosa

    if extractor is None:
        extractor = embedding_extractor()
    mono = librosa.resample(mono_mix(samples).astype(np.float32), orig_sr=sample_rate,
                            target_sr=ANALYSIS_RATE, res_type="soxr_hq")  # fmt: skip
    # One STFT and one mel spectrogram for everything below (librosa's defaults, so the same
    # numbers as calling each feature on the signal).
    spectra = Spectra.of(mono, ANALYSIS_RATE)
    onset_env = spectra.onset_strength
    tempo = float(
        np.atleast_1d(librosa.feature.tempo(onset_envelope=onset_env, sr=ANALYSIS_RATE))[0]
    )
    chroma = librosa.feature.chroma_cqt(y=mono, sr=ANALYSIS_RATE)
    key, key_confidence = estimate_key(chroma.mean(axis=1))
    centroid = librosa.feature.spectral_centroid(S=spectra.magnitude, sr=ANALYSIS_RATE)
    rolloff = librosa.feature.spectral_rolloff(S=spectra.magnitude, sr=ANALYSIS_RATE)
    flatness = librosa.feature.spectral_flatness(S=spectra.magnitude)
    if isinstance(extractor, DspEmbedding):  # reuses the chroma and spectra above
        embedding = extractor.embed(mono, ANALYSIS_RATE, chroma=chroma, spectra=spectra)
    else:  # from the master's own rate: a learned model may hear above 11 kHz
        embedding = extractor.embed(mono_mix(samples), sample_rate)
    return AudioFeatures(
        loudness_range_lu=round(loudness_range_lu(samples, sample_rate, weighted=weighted), 2),
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
