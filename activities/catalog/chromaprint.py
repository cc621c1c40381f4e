"""Chromaprint raw fingerprints through the `fpcalc` tool (Debian `libchromaprint-tools`)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ALGORITHM = "chromaprint-2-raw"  # fpcalc's default algorithm, raw 32-bit items (~8 per second)


class ChromaprintUnavailableError(RuntimeError):
    """fpcalc is not installed on this worker."""


class FingerprintError(RuntimeError):
    """fpcalc could not fingerprint the file (e.g. under ~3 s of audio)."""


@dataclass(frozen=True)
class Fingerprint:
    items: list[int]  # signed 32-bit, as PostgreSQL integer[] stores them
    duration_s: float
    algorithm: str = ALGORITHM

    @property
    def sha256(self) -> str:
        return hashlib.sha256(np.asarray(self.items, dtype="<i4").tobytes()).hexdigest()


def fpcalc_path() -> str:
    path = shutil.which("fpcalc")
    if path is None:
        raise ChromaprintUnavailableError(
            "Chromaprint's fpcalc is not installed: install the Debian package "
            "'libchromaprint-tools' (`make install` does it) and restart the worker"
        )
    return path


def fingerprint_file(path: Path, timeout_s: float = 120.0) -> Fingerprint:
    """Raw Chromaprint fingerprint of the whole file.

    fpcalc 1.5.1 quirks handled: it only reads 120 s unless `-length 0`, and it exits 3 with
    "Error decoding audio frame (End of file)" on valid files unless `-ignore-errors`.

    Raises:
        ChromaprintUnavailableError: fpcalc is missing.
        FingerprintError: no fingerprint could be computed.
    """
    proc = subprocess.run(
        [fpcalc_path(), "-raw", "-json", "-length", "0", "-ignore-errors", str(path)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise FingerprintError(
            f"fpcalc failed (exit {proc.returncode}): {proc.stderr.strip() or 'no output'}"
        ) from None
    raw = data.get("fingerprint") or []
    if not raw:
        raise FingerprintError("fpcalc produced no fingerprint (audio shorter than ~3 s?)")
    # fpcalc prints unsigned 32-bit items; store them as signed int32 bit patterns.
    items = np.asarray(raw, dtype=np.uint32).view(np.int32).tolist()
    return Fingerprint(items=items, duration_s=float(data.get("duration", 0.0)))
