"""Pay the CPU steps' first-call costs when a worker starts, not inside the first job.

The first `postprocess` in a fresh process used to take ~2x a warm one: importing librosa and
matplotlib, numba compiling librosa's kernels, the MP3 encoder, font and colormap loading,
scipy filter design. `warm_cpu_steps` runs the real mastering pipeline (every delivery format,
watermark, preview, overview image, features, quality) and the similarity check's melody
profile once on a few seconds of synthetic audio, so all of that is done before the worker
polls.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

WARMUP_SECONDS = 8.0  # ≥ one watermark period and one melody window


def _synthetic(seconds: float, rate: int) -> np.ndarray:
    """A few chords over a pulse, stereo float32: tonal and rhythmic enough for every feature."""
    t = np.arange(int(seconds * rate)) / rate
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6, 440.0)) * 0.08
    chord *= 1.0 + 0.5 * np.sign(np.sin(2 * np.pi * 0.5 * t))
    pulse = np.sin(2 * np.pi * 60.0 * t) * np.exp(-((t % 0.5) * 20.0)) * 0.5
    fade = np.minimum(1.0, (t[-1] - t) / 0.5)
    left = (chord + pulse) * fade
    return np.stack([left, 0.9 * left], axis=1).astype(np.float32)


def warm_cpu_steps() -> float:
    """Run post-processing and the melody profile once on synthetic audio; returns seconds."""
    from activities.catalog import melody
    from activities.postprocess.formats import AudioTags
    from activities.postprocess.pipeline import MasteringJob, master_files
    from activities.postprocess.profiles import PROFILES

    started = time.perf_counter()
    profile = PROFILES["streaming"]
    audio = _synthetic(WARMUP_SECONDS, profile.sample_rate)
    job = MasteringJob(
        profile=profile,
        formats=["wav24", "wav16", "flac", "mp3", "opus"],
        tags=AudioTags("warm-up", "warm-up", "warm-up"),
        requested_duration_s=WARMUP_SECONDS,
        instruments=["piano"],
        seed=0,
        watermark=(b"warm-up", 0),
    )
    with tempfile.TemporaryDirectory(prefix="tunesmith-warm-") as tmp:
        files = master_files(audio, profile.sample_rate, job, Path(tmp))
        from activities.audio_io import read_audio

        master, rate = read_audio(files.master)
    try:
        melody.profile(master, rate)
    except melody.MelodyError:
        pass  # the synthetic tune is too plain for a profile: the kernels still ran
    return time.perf_counter() - started
