"""Cheap quality checks on a master: each finding is a reason a human should listen."""

from __future__ import annotations

import numpy as np


def quality_findings(
    samples: np.ndarray, sample_rate: int, *, requested_duration_s: float
) -> list[str]:
    """Reasons to flag this audio for review; empty when nothing looks wrong."""
    findings: list[str] = []
    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    duration = mono.shape[0] / sample_rate
    if abs(duration - requested_duration_s) > 0.05:
        findings.append(
            f"duration {duration:.2f} s differs from the requested {requested_duration_s:.2f} s"
        )
    # Silence: share of 50 ms windows whose RMS is under -60 dBFS.
    win = max(1, int(0.05 * sample_rate))
    n = mono.shape[0] // win
    if n:
        rms = np.sqrt(np.mean(mono[: n * win].reshape(n, win) ** 2, axis=1))
        silent = float(np.mean(rms < 10 ** (-60 / 20)))
        if silent > 0.2:
            findings.append(f"{silent:.0%} of the audio is silent")
    clipped = float(np.mean(np.abs(samples) >= 0.999))
    if clipped > 1e-4:
        findings.append(f"{clipped:.3%} of samples are clipped")
    dc = float(np.max(np.abs(samples.mean(axis=0))))
    if dc > 0.01:
        findings.append(f"DC offset {dc:.3f}")
    return findings
