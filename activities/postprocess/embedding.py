"""Pluggable audio embeddings for "sounds like" search: dsp-v1 by default, CLAP when configured.

Every extractor has a `model_id` that is stored beside each vector (`artifacts.embedding_model`);
search only compares vectors with the same id, so switching extractor or checkpoint never mixes
incomparable spaces (older rows simply stop matching until they are re-embedded).

dsp-v1 (48 dims, no weights): mean and standard deviation of 13 MFCCs (timbre, 26), mean chroma
rotated to its strongest pitch class (harmony, key-invariant, 12), mean spectral contrast (7),
and log-tempo-free rhythm summary: onset-strength mean/std and pulse clarity (3). Each block is
standardised and weighted, then the vector is L2-normalised, so cosine distance in pgvector
compares timbre, harmony and texture.

CLAP (`TUNESMITH_CLAP_MODEL_DIR`, see `clap_embedding.py`): a local transformers CLAP checkpoint's
audio embedding, id `clap:<dir name>@<weights hash>`. A configured CLAP that cannot be loaded is
an `EmbeddingExtractorError`, never a silent fallback to dsp-v1: the operator asked for CLAP
vectors, and a worker quietly storing dsp-v1 ones would split the catalog without anyone noticing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from activities.postprocess.embedding_errors import (
    EmbeddingExtractorError as EmbeddingExtractorError,  # re-exported: part of this API
)

if TYPE_CHECKING:
    from infra.settings import Settings

EMBEDDING_DIM = 48
DSP_MODEL_ID = "dsp-v1"
DSP_SAMPLE_RATE = 22050  # the features' analysis rate


class EmbeddingExtractor(Protocol):
    """Turns mono audio into a fixed-length, L2-normalised vector for cosine search."""

    @property
    def model_id(self) -> str:
        """Stored as `embedding_model`; equal ids ⇔ comparable vectors."""
        ...

    @property
    def dimension(self) -> int:
        """Length of every vector `embed` returns."""
        ...

    def embed(self, mono: np.ndarray, sample_rate: int) -> list[float]:
        """The embedding of a 1-D float signal at `sample_rate` Hz (any rate; resampled inside)."""
        ...


@dataclass(frozen=True)
class Spectra:
    """librosa's default STFT magnitude of a signal and what is derived from it, computed once
    for all the features that would each recompute them (n_fft 2048, hop 512, centred)."""

    sample_rate: int
    magnitude: np.ndarray  # |STFT|
    mel_db: np.ndarray  # power_to_db(melspectrogram(power 2)): mfcc and onset strength's input
    onset_strength: np.ndarray

    @classmethod
    def of(cls, mono: np.ndarray, sample_rate: int) -> Spectra:
        import librosa

        magnitude = np.abs(librosa.stft(mono))
        mel = librosa.feature.melspectrogram(S=magnitude**2, sr=sample_rate)
        mel_db = librosa.power_to_db(mel)
        onset = librosa.onset.onset_strength(S=mel_db, sr=sample_rate)
        return cls(sample_rate, magnitude, mel_db, onset)


def dsp_embedding(
    mono: np.ndarray, sample_rate: int, *, chroma: np.ndarray, spectra: Spectra | None = None
) -> list[float]:
    """The dsp-v1 embedding of a mono signal (see module docstring)."""
    import librosa

    if spectra is None or spectra.sample_rate != sample_rate:
        spectra = Spectra.of(mono, sample_rate)
    mfcc = librosa.feature.mfcc(S=spectra.mel_db, sr=sample_rate, n_mfcc=13)
    timbre = np.concatenate([mfcc.mean(axis=1) / 100.0, mfcc.std(axis=1) / 50.0])
    profile = chroma.mean(axis=1)
    harmony = np.roll(profile, -int(np.argmax(profile))) / (profile.max() + 1e-9)
    contrast = librosa.feature.spectral_contrast(S=spectra.magnitude, sr=sample_rate)
    contrast = contrast.mean(axis=1) / 50.0
    onset = spectra.onset_strength
    ac = np.correlate(onset - onset.mean(), onset - onset.mean(), mode="full")[onset.size - 1 :]
    clarity = float(ac[1:].max() / (ac[0] + 1e-9)) if ac.size > 1 else 0.0
    rhythm = np.array([onset.mean() / 5.0, onset.std() / 5.0, clarity])
    vector = np.concatenate([timbre, harmony, contrast, rhythm]).astype(np.float64)
    norm = float(np.linalg.norm(vector))
    return [round(float(v), 6) for v in (vector / norm if norm > 0 else vector)]


@dataclass(frozen=True)
class DspEmbedding:
    """dsp-v1 as an `EmbeddingExtractor` (the default)."""

    model_id: str = DSP_MODEL_ID
    dimension: int = EMBEDDING_DIM

    def embed(
        self,
        mono: np.ndarray,
        sample_rate: int,
        *,
        chroma: np.ndarray | None = None,
        spectra: Spectra | None = None,
    ) -> list[float]:
        """dsp-v1 of `mono`.

        Args:
            chroma: `librosa.feature.chroma_cqt` of `mono` at `DSP_SAMPLE_RATE`, when the caller
                has it already (it is the slow part: seconds per minute of audio).
            spectra: `Spectra.of(mono, DSP_SAMPLE_RATE)`, when the caller has it.
        """
        import librosa

        mono = np.asarray(mono, dtype=np.float32)
        if sample_rate != DSP_SAMPLE_RATE:
            mono = librosa.resample(mono, orig_sr=sample_rate, target_sr=DSP_SAMPLE_RATE,
                                    res_type="soxr_hq")  # fmt: skip
            chroma = spectra = None
        if chroma is None:
            chroma = librosa.feature.chroma_cqt(y=mono, sr=DSP_SAMPLE_RATE)
        return dsp_embedding(mono, DSP_SAMPLE_RATE, chroma=chroma, spectra=spectra)


DSP_V1 = DspEmbedding()

_lock = threading.Lock()
_loaded: dict[Path, EmbeddingExtractor] = {}


def embedding_extractor(settings: Settings | None = None) -> EmbeddingExtractor:
    """The process's embedding extractor: CLAP from `settings.clap_model_dir` if set, else dsp-v1.

    A CLAP checkpoint is loaded once per process and dir (later calls return the same object),
    so call this at worker start to fail fast and to keep the load off the first job.

    Raises:
        EmbeddingExtractorError: `clap_model_dir` is set but transformers/torch are not
            installed (the `models` extra) or the dir holds no loadable CLAP checkpoint.
    """
    if settings is None:
        from infra.settings import get_settings

        settings = get_settings()
    if settings.clap_model_dir is None:
        return DSP_V1
    weights_dir = settings.clap_model_dir.expanduser().resolve()
    with _lock:  # activities run in threads; two first jobs must not load the model twice
        extractor = _loaded.get(weights_dir)
        if extractor is None:
            from activities.postprocess.clap_embedding import ClapEmbedding

            extractor = _loaded[weights_dir] = ClapEmbedding.load(weights_dir)
        return extractor
