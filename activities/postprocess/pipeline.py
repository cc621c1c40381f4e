"""The mastering pipeline on local files: raw render in, delivery files and measurements out.

Pure of any store or DB so it can be tested and benchmarked directly; the `postprocess` activity
wraps it with download, upload and bookkeeping.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import soxr
from pedalboard import HighpassFilter, Pedalboard

from activities.audio_io import FORMATS
from activities.disclosure import watermark
from activities.postprocess.features import extract_features
from activities.postprocess.formats import AudioTags, encode, write_tags
from activities.postprocess.loudness import (
    integrated_lufs,
    integrated_lufs_weighted,
    k_weighted,
    limiter_gain,
    normalize_loudness,
    peak_envelope,
    true_peak_dbtp,
)
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
    # Loops: master as one period of the endlessly repeated audio, exactly `loop_frames` frames
    # at the delivery rate, so the master repeats without a seam too.
    loop_frames: int | None = None
    # Parts (stems, layers) and how they follow the main audio's mastering: "curve" applies
    # the main's exact gain curve (stems keep summing to the mix), "static" its static gain
    # with each part's own limiter (layers keep their relative levels).
    parts: dict[str, np.ndarray] = field(default_factory=dict)
    link: Literal["curve", "static"] = "curve"
    # (key, 32-bit payload) of the inaudible watermark embedded in every master; None: none.
    watermark: tuple[bytes, int] | None = None


@dataclass(frozen=True)
class MasteredPart:
    name: str
    master: Path
    deliverables: list[tuple[DeliveryFormat, Path]]
    integrated_lufs: float
    true_peak_dbtp: float


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
    parts: list[MasteredPart] = field(default_factory=list)
    watermark: dict[str, str] | None = None  # scheme and payload, when embedded


def _condition(x: np.ndarray, rate: int, out_rate: int, loop_frames: int | None) -> np.ndarray:
    """High-pass and resample `x`. For a loop, returns the loop repeated (an odd number of
    times, ≥ 6 s) with period exactly `loop_frames`: filters see the audio that precedes and
    follows the middle copy when the loop is played in a cycle."""
    highpass = Pedalboard([HighpassFilter(cutoff_frequency_hz=HIGHPASS_HZ)])
    if loop_frames is None:
        y = highpass(x.T.copy(), rate).T
        return soxr.resample(y, rate, out_rate, quality="VHQ") if rate != out_rate else y
    n = x.shape[0]
    reps = 2 * max(1, math.ceil(3.0 * rate / n)) + 1
    y = highpass(np.tile(x, (reps, 1)).T.copy(), rate).T
    # Resampling by exactly loop_frames/n (not out_rate/rate) keeps the period a whole number
    # of samples; the difference is a pitch change of a few millionths of a semitone.
    return soxr.resample(y, n, loop_frames, quality="VHQ") if n != loop_frames else y


def _middle(x: np.ndarray, loop_frames: int | None) -> np.ndarray:
    """The middle period of a repeated loop (or `x` itself)."""
    if loop_frames is None:
        return x
    mid = (x.shape[0] // loop_frames) // 2
    return x[mid * loop_frames : (mid + 1) * loop_frames]


def master_files(raw: np.ndarray, rate: int, job: MasteringJob, workdir: Path) -> MasteredFiles:
    """High-pass, resample, loudness-normalize, encode and analyse `raw` (frames, channels),
    and master `job.parts` linked to it.

    Raises:
        ValueError: the audio is silent (nothing to master).
    """
    profile = job.profile
    raw_rate = rate
    cleaned = _condition(raw, rate, profile.sample_rate, job.loop_frames)
    rate = profile.sample_rate
    # A watermark adds up to ~0.15 dB to peaks: the limiter leaves room for it.
    result = normalize_loudness(cleaned, rate, target_lufs=profile.target_lufs,
                                ceiling_dbtp=profile.true_peak_dbtp,
                                margin_db=0.1 if job.watermark is None else 0.3)  # fmt: skip
    master = _middle(result.samples, job.loop_frames)
    mark: np.ndarray | None = None  # what the watermark added to the master
    if job.watermark is not None:
        try:
            marked = watermark.embed(master, rate, job.watermark[1], job.watermark[0])
            mark, master = marked - master, marked
        except watermark.AudioTooShortError:
            pass  # under one watermark period (~4 s): delivered unmarked, recorded as such

    def write(samples: np.ndarray, fmt: DeliveryFormat, name: str) -> Path:
        path = workdir / name
        encode(samples, rate, fmt, path, seed=job.seed, preview=name == "preview.mp3")
        write_tags(path, fmt, job.tags)
        return path

    def deliver(samples: np.ndarray, stem: str) -> tuple[Path, list[tuple[DeliveryFormat, Path]]]:
        wav = write(samples, "wav24", f"{stem}.wav")
        return wav, [(fmt, wav if fmt == "wav24" else
                      write(samples, fmt, f"{stem}.{FORMATS[fmt].extension}"))
                     for fmt in job.formats]  # fmt: skip

    master_path, deliverables = deliver(master, "master")
    parts = []
    # Stems: the mix's mark goes into the loudest stem, so the stems still sum to the mix.
    marked_stem = None
    if mark is not None and job.link == "curve" and job.parts:
        marked_stem = max(job.parts, key=lambda n: float(np.mean(job.parts[n] ** 2)))
    for name, part_raw in job.parts.items():
        part = _condition(part_raw, raw_rate, rate, job.loop_frames)
        if job.link == "curve":
            part = part * result.gain[:, None]
        else:
            part = part * 10.0 ** (result.gain_db / 20.0)
            limit_db = profile.true_peak_dbtp - 0.1
            envelope = peak_envelope(part, above=10.0 ** (limit_db / 20.0))
            part = part * limiter_gain(envelope, rate, limit_db)[:, None]
        part = _middle(part, job.loop_frames).astype(np.float32)
        if name == marked_stem and mark is not None:
            part = part + mark
        elif job.link == "static" and job.watermark is not None:  # layers: each its own mark
            with contextlib.suppress(watermark.AudioTooShortError):
                part = watermark.embed(part, rate, job.watermark[1], job.watermark[0])
        part_master, part_files = deliver(part, f"part-{name}")
        parts.append(MasteredPart(name, part_master, part_files,
                                  integrated_lufs(part.astype(np.float64), rate),
                                  true_peak_dbtp(part)))  # fmt: skip
    preview = write(preview_clip(master, rate), "mp3", "preview.mp3")
    overview = workdir / "overview.png"
    render_overview_png(master, rate, overview, title=f"{job.tags.job_id} · {job.tags.title[:60]}")
    # Measured on what ships (watermark included); a loop as it plays, repeated. One K-weighting
    # serves the integrated loudness and the loudness range.
    repeats = math.ceil(3.0 * rate / len(master))
    if repeats == 1:
        weighted = k_weighted(master, rate)
        shipped_lufs = integrated_lufs_weighted(weighted, rate)
    else:
        weighted = None
        shipped_lufs = integrated_lufs(np.tile(master.astype(np.float64), (repeats, 1)), rate)
    features = extract_features(master, rate, instruments=job.instruments, weighted=weighted)
    measurements = AudioMeasurements(
        integrated_lufs=round(shipped_lufs, 2),
        true_peak_dbtp=round(true_peak_dbtp(master), 2),
        duration_s=master.shape[0] / rate,
        sample_rate=rate,
        loudness_range_lu=features.loudness_range_lu,
        target_lufs=profile.target_lufs,
    )
    quality = assess_quality(
        raw, master, rate,
        requested_duration_s=job.requested_duration_s,
        integrated_lufs=shipped_lufs, target_lufs=profile.target_lufs,
        loop=job.loop_frames is not None,
    )  # fmt: skip
    mark_info = None
    if mark is not None and job.watermark is not None:
        mark_info = {"scheme": watermark.WATERMARK_SCHEME, "payload": f"{job.watermark[1]:08x}"}
    return MasteredFiles(master_path, deliverables, preview, overview, measurements, features,
                         quality, parts, mark_info)  # fmt: skip
