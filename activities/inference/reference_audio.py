"""Fetch the audio behind `ControlTokens.reference.uri` for models that condition on it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import soundfile as sf

ReferenceLoader = Callable[[str], tuple[np.ndarray, int]]
"""uri → (float32 samples shaped (frames, channels), sample rate)."""


class ReferenceUnavailableError(LookupError):
    """The reference audio cannot be read by this worker (scheme without a loader, missing)."""


def load_local_reference(uri: str) -> tuple[np.ndarray, int]:
    """Read a reference from a local path or `file://` URI.

    Store URIs (s3://...) need a loader that downloads them: the GPU activity passes one to the
    registry (`ModelRegistry(..., reference_loader=...)`).
    """
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = Path(unquote(parsed.path) if parsed.scheme else uri)
    else:
        raise ReferenceUnavailableError(f"no reference loader for {parsed.scheme}:// URIs")
    if not path.is_file():
        raise ReferenceUnavailableError(f"reference audio not found: {path}")
    samples, rate = sf.read(path, dtype="float32", always_2d=True)
    return samples, int(rate)


def to_mono(samples: np.ndarray) -> np.ndarray:
    return samples.mean(axis=1) if samples.ndim == 2 else samples
