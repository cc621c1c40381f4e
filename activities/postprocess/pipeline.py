"""The mastering pipeline on local files: raw render in, delivery files and measurements out.

Pure of any store or DB so it can be tested and benchmarked directly; the `postprocess` activity
wraps it with download, upload and bookkeeping.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr
from pedalboard import HighpassFilter, Pedalboard

from activities.postprocess.features import extract_features
from activities.postprocess.formats import FORMATS, AudioTags, encode, write_tags
from activities.postprocess.loudness import normalize_loudness
from activities.postprocess.preview import preview_clip, render_overview_png
from activities.postprocess.profiles import DeliveryProfile
from activities.postprocess.quality import assess_quality
from schemas.jobs import AudioFeatures, AudioMeasurements, QualityReport
from schemas.request import DeliveryFormat

# Rumble and DC sit below anything musical; removing them first keeps them from eating headroom.
HIGHPASS_HZ = 20.0


@dataclass(frozen=True)
class MasteringJob:
    """What to make of one raw render."""

    profile: DeliveryProfile
    formats: list[DeliveryFormat]
    tags: AudioTags
    requested_duration_s: float
    instruments: list[str]
    seed: int


@dataclass(frozen=True)
class MasteredFiles:
    """Files written under the work dir, plus what was measured on the way."""

    master: Path  # 24-bit WAV master, always written (the checks analyse it)
    deliverables: list[tuple[DeliveryFormat, Path]]
    preview: Path
    overview: Path
    measurements: AudioMeasurements
    features: AudioFeatures
    quality: QualityReport


def master_files(raw: np.ndarray, rate: int, job: MasteringJob, workdir: Path) -> MasteredFiles:
    """High-pass, resample, loudness-normalize, encode and analyse `raw` (frames, channels).

    Raises:
        ValueError: the audio is silent (nothing to master).
    """
    profile = job.profile
    cleaned = Pedalboard([HighpassFilter(cutoff_frequency_hz=HIGHPASS_HZ)])(raw.T.copy(), rate).T
    if rate != profile.sample_rate:
        cleaned = soxr.resample(cleaned, rate, profile.sample_rate, quality="VHQ")
        rate = profile.sample_rate
    result = normalize_loudness(cleaned, rate, target_lufs=profile.target_lufs,
                                ceiling_dbtp=profile.true_peak_dbtp)  # fmt: skip
    master = result.samples

    def write(samples: np.ndarray, fmt: DeliveryFormat, name: str) -> Path:
        path = workdir / name
        encode(samples, rate, fmt, path, seed=job.seed, preview=name == "preview.mp3")
        write_tags(path, fmt, job.tags)
        return path

    master_path = write(master, "wav24", "master.wav")
    deliverables = [(fmt, master_path if fmt == "wav24" else
                     write(master, fmt, f"master.{FORMATS[fmt].extension}"))
                    for fmt in job.formats]  # fmt: skip
    preview = write(preview_clip(master, rate), "mp3", "preview.mp3")
    overview = workdir / "overview.png"
    render_overview_png(master, rate, overview, title=f"{job.tags.job_id} · {job.tags.title[:60]}")
    features = extract_features(master, rate, instruments=job.instruments)
    measurements = AudioMeasurements(
        integrated_lufs=round(result.integrated_lufs, 2),
        true_peak_dbtp=round(result.true_peak_dbtp, 2),
        duration_s=master.shape[0] / rate,
        sample_rate=rate,
        loudness_range_lu=features.loudness_range_lu,
        target_lufs=profile.target_lufs,
    )
    quality = assess_quality(
        raw, master, rate,
        requested_duration_s=job.requested_duration_s,
        integrated_lufs=result.integrated_lufs, target_lufs=profile.target_lufs,
    )  # fmt: skip
    return MasteredFiles(master_path, deliverables, preview, overview, measurements, features,
                         quality)  # fmt: skip
