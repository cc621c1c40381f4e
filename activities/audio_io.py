"""Audio file helpers shared by the pipeline steps: write, read, hash, describe."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import soundfile as sf

from schemas.jobs import AudioRef

CONTENT_TYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "json": "application/json",
}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_audio(path: Path, samples: np.ndarray, sample_rate: int, *, fmt: str) -> None:
    """Write `samples` (frames, channels) as WAV (24-bit PCM) or MP3 (VBR, high quality)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "wav":
        sf.write(path, samples, sample_rate, format="WAV", subtype="PCM_24")
    elif fmt == "mp3":
        # soundfile's MP3 writer (libsndfile ≥ 1.1, bundled in the wheel): no LAME binary needed.
        # compression_level 0.2 ≈ 190-200 kbit/s VBR (0 = best quality / highest bitrate).
        sf.write(path, samples, sample_rate, format="MP3", subtype="MPEG_LAYER_III",
                 compression_level=0.2, bitrate_mode="VARIABLE")  # fmt: skip
    else:
        raise ValueError(f"unsupported audio format {fmt!r}")


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Read any soundfile-supported file as float32 (frames, channels)."""
    samples, sample_rate = sf.read(path, dtype="float32", always_2d=True)
    return samples, int(sample_rate)


def describe(path: Path, uri: str, fmt: str) -> AudioRef:
    """An AudioRef for a file already uploaded to `uri`."""
    info = sf.info(path)
    return AudioRef(
        uri=uri,
        sha256=sha256_file(path),
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        duration_s=float(info.frames) / float(info.samplerate),
        format=fmt,
        size_bytes=path.stat().st_size,
    )
