"""Reference audio: measure an uploaded track so a request can borrow its tempo, key and colour.

`analyse_reference` is deterministic (same bytes → same summary): no randomness, fixed analysis
rate and parameters, values rounded so float noise does not leak into cache keys.

Rules:

* Files are decoded with libsndfile (WAV, FLAC, OGG/Vorbis/Opus, MP3, AIFF...); anything it
  cannot decode is "not a readable audio file".
* Duration limits apply to the whole file; the analysis reads only its first
  `ANALYSIS_WINDOW_S` seconds (tempo, key, colour and loudness are taken from there), which
  bounds memory and time for long uploads and covers the part a listener hears first.
* Silence: a peak under -60 dBFS or an integrated loudness under -70 LUFS (the EBU R128
  absolute gate) in the analysed window.
* Tempo: librosa's onset-envelope tempogram picks the metrical level (its prior favours
  ~120 BPM, so a pattern equally plausible at half or double speed may be reported at the
  level nearer 120); the period is then refined on the onset autocorrelation.
  The tempo is folded by octaves into the request range (30..300 BPM). The beat tracker always
  answers: audio with no clear pulse (a drone) still gets a tempo, just not a meaningful one.
* Key: Krumhansl-Schmuckler on the mean CQT chroma; `key_confidence` is the correlation of
  the winning key profile (clipped to 0..1).
"""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pyloudnorm
import soundfile as sf

from activities.audio_io import sha256_file
from activities.controls.midi import estimate_key
from schemas.controls import ReferenceSummary
from schemas.errors import InvalidRequestError
from schemas.music import key_name
from schemas.request import MAX_TEMPO_BPM, MIN_TEMPO_BPM

MAX_REFERENCE_BYTES = 100 << 20  # 100 MiB: ~10 min of CD-quality WAV; FLAC/MP3 much more
MAX_REFERENCE_S = 15 * 60.0
MIN_REFERENCE_S = 2.0
MIN_SAMPLE_RATE = 8000  # below this the loudness filters and the CQT chroma are meaningless
ANALYSIS_WINDOW_S = 120.0
ANALYSIS_RATE = 22050
HOP = 512
SILENT_PEAK_DBFS = -60.0
SILENT_LUFS = -70.0


def analyse_reference(path: Path, uri: str) -> ReferenceSummary:
    """Analyse the reference audio file at `path` (stored at `uri`); `filled` is left empty.

    Raises:
        InvalidRequestError: empty, too big, not audio, too short or long, or silent.
    """
    size = path.stat().st_size
    if size == 0:
        raise InvalidRequestError("reference audio file is empty")
    if size > MAX_REFERENCE_BYTES:
        raise InvalidRequestError(
            f"reference audio is {size / 2**20:.1f} MiB; the limit is "
            f"{MAX_REFERENCE_BYTES / 2**20:g} MiB"
        )
    samples, sample_rate, duration_s = _decode(path)
    if duration_s < MIN_REFERENCE_S:
        raise InvalidRequestError(
            f"reference audio is {duration_s:.2f} s long; it must be at least {MIN_REFERENCE_S:g} s"
        )
    if duration_s > MAX_REFERENCE_S:
        raise InvalidRequestError(
            f"reference audio is {duration_s:.0f} s long; the limit is {MAX_REFERENCE_S:g} s "
            f"({MAX_REFERENCE_S / 60:g} min)"
        )

    if sample_rate < MIN_SAMPLE_RATE:
        raise InvalidRequestError(
            f"reference audio is sampled at {sample_rate} Hz; at least {MIN_SAMPLE_RATE} Hz "
            "is needed"
        )

    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    peak_dbfs = 20 * np.log10(peak) if peak > 0 else -np.inf
    # pyloudnorm weights up to 5 channels (5.0 surround); wider layouts are measured as mono.
    measured = samples if samples.shape[1] <= 5 else samples.mean(axis=1, keepdims=True)
    lufs = float(pyloudnorm.Meter(sample_rate).integrated_loudness(measured.astype(np.float64)))
    if not np.isfinite(lufs) or peak_dbfs < SILENT_PEAK_DBFS or lufs < SILENT_LUFS:
        raise InvalidRequestError("reference audio is silent")

    mono = samples.mean(axis=1, dtype=np.float64).astype(np.float32)
    if sample_rate != ANALYSIS_RATE:
        mono = librosa.resample(
            mono, orig_sr=sample_rate, target_sr=ANALYSIS_RATE, res_type="soxr_hq"
        )
    tempo = estimate_tempo(mono, ANALYSIS_RATE)
    while tempo > MAX_TEMPO_BPM:  # fold by octaves into what a request may ask for
        tempo /= 2
    while 0 < tempo < MIN_TEMPO_BPM:
        tempo *= 2
    chroma = librosa.feature.chroma_cqt(y=mono, sr=ANALYSIS_RATE, hop_length=HOP).mean(axis=1)
    tonic, mode, r = estimate_key(chroma)
    total = float(chroma.sum())
    profile = chroma / total if total > 0 else np.full(12, 1 / 12)

    return ReferenceSummary(
        uri=uri,
        sha256=sha256_file(path),
        duration_s=round(duration_s, 3),
        tempo_bpm=round(tempo, 2),
        key=key_name(tonic, mode),
        key_confidence=round(min(1.0, max(0.0, r)), 3),
        chroma=[round(float(v), 4) for v in profile],
        integrated_lufs=round(lufs, 2),
        spectral=_spectral(mono, ANALYSIS_RATE),
    )


def estimate_tempo(mono: np.ndarray, sr: int) -> float:
    """Tempo in BPM: the tempogram's metrical level, refined on the onset autocorrelation.

    librosa's tempo estimate is quantized to whole lags (about 1.5% at 140 BPM with this hop),
    so the period is refined from the autocorrelation peaks near 1..4 times the coarse lag
    (parabolic interpolation each, then a least-squares fit through the origin): four periods
    pin the beat down four times finer than one.
    """
    onset_env = librosa.onset.onset_strength(y=mono, sr=sr, hop_length=HOP)
    coarse = float(
        np.atleast_1d(librosa.feature.tempo(onset_envelope=onset_env, sr=sr, hop_length=HOP))[0]
    )
    if not coarse > 0:
        return 0.0
    fps = sr / HOP
    lag = 60.0 * fps / coarse
    ac = librosa.autocorrelate(onset_env - onset_env.mean())
    ks, lags = [], []
    for k in range(1, 5):
        centre = round(k * lag)
        lo, hi = max(1, centre - 2 - k), min(len(ac) - 2, centre + 2 + k)
        if hi <= lo:
            break
        i = lo + int(np.argmax(ac[lo : hi + 1]))
        a, b, c = ac[i - 1], ac[i], ac[i + 1]
        denom = a - 2 * b + c
        offset = 0.5 * (a - c) / denom if denom < 0 else 0.0  # vertex of the parabola
        ks.append(k)
        lags.append(i + float(np.clip(offset, -0.5, 0.5)))
    if not ks:
        return coarse
    k_arr, lag_arr = np.array(ks, dtype=np.float64), np.array(lags)
    refined_lag = float((k_arr * lag_arr).sum() / (k_arr**2).sum())
    refined = 60.0 * fps / refined_lag
    # Refinement only sharpens the estimate; it must not move to another metrical level.
    return refined if abs(refined / coarse - 1) < 0.04 else coarse


def _decode(path: Path) -> tuple[np.ndarray, int, float]:
    """(first ANALYSIS_WINDOW_S of samples as float32 (frames, channels), rate, full duration)."""
    try:
        with sf.SoundFile(path) as f:
            sample_rate = int(f.samplerate)
            frames = int(f.frames)
            samples = f.read(
                frames=min(frames, int(ANALYSIS_WINDOW_S * sample_rate)),
                dtype="float32",
                always_2d=True,
            )
    except Exception:  # libsndfile: sf.LibsndfileError, RuntimeError, ValueError...
        raise InvalidRequestError("reference is not a readable audio file") from None
    if sample_rate <= 0 or frames <= 0 or samples.size == 0:
        raise InvalidRequestError("reference audio file has no audio frames")
    if not np.all(np.isfinite(samples)):
        raise InvalidRequestError("reference is not a readable audio file (non-finite samples)")
    return samples, sample_rate, frames / sample_rate


def _spectral(mono: np.ndarray, sr: int) -> dict[str, float]:
    f = librosa.feature
    centroid = f.spectral_centroid(y=mono, sr=sr, hop_length=HOP)
    rolloff = f.spectral_rolloff(y=mono, sr=sr, hop_length=HOP)
    bandwidth = f.spectral_bandwidth(y=mono, sr=sr, hop_length=HOP)
    flatness = f.spectral_flatness(y=mono, hop_length=HOP)
    return {
        "centroid_hz": round(float(centroid.mean()), 1),
        "rolloff_hz": round(float(rolloff.mean()), 1),
        "bandwidth_hz": round(float(bandwidth.mean()), 1),
        "flatness": round(float(flatness.mean()), 5),
    }
