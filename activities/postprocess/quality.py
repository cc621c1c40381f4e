"""Automatic quality checks on a render and its master: a score and a reason per finding."""

from __future__ import annotations

import numpy as np

from activities.audio_io import mono_mix
from schemas.jobs import QualityReport

# Penalty per kind of finding; the score is 1 minus their sum (never below 0).
_PENALTY = {
    "duration": 0.5,
    "silence": 0.4,
    "clipping": 0.3,
    "dc": 0.2,
    "loudness": 0.3,
    "ending": 0.2,
}


def _window_rms(mono: np.ndarray, win: int) -> np.ndarray:
    n = mono.shape[0] // win
    if n == 0:
        return np.zeros(0)
    return np.sqrt(np.mean(mono[: n * win].reshape(n, win) ** 2, axis=1))


def assess_quality(
    raw: np.ndarray,
    master: np.ndarray,
    sample_rate: int,
    *,
    requested_duration_s: float,
    integrated_lufs: float,
    target_lufs: float,
    loop: bool = False,
) -> QualityReport:
    """Check the raw render (clipping, DC) and the master (length, silence, loudness, ending).

    Args:
        raw: the model's output before mastering, (frames, channels).
        master: the loudness-normalized master, (frames, channels).
        loop: the master is a loop: it must not decay at its end, it must wrap without a
            click (the jump from its last sample to its first is checked instead).
    """
    found: list[tuple[str, str]] = []
    duration = master.shape[0] / sample_rate
    if abs(duration - requested_duration_s) > 0.05:
        found.append(("duration", f"duration {duration:.2f} s differs from the requested "
                                  f"{requested_duration_s:.2f} s"))  # fmt: skip
    mono = mono_mix(master)
    rms = _window_rms(mono, max(1, int(0.05 * sample_rate)))  # 50 ms windows
    if rms.size:
        silent = float(np.mean(rms < 10 ** (-60 / 20)))
        if silent > 0.2:
            found.append(("silence", f"{silent:.0%} of the audio is silent"))
    clipped = float(np.mean(np.abs(raw) >= 0.999))
    if clipped > 1e-4:
        found.append(("clipping", f"{clipped:.3%} of the raw render's samples are clipped"))
    dc = float(np.max(np.abs(raw.mean(axis=0))))
    if dc > 0.01:
        found.append(("dc", f"DC offset {dc:.3f} in the raw render"))
    if abs(integrated_lufs - target_lufs) > 1.0:
        found.append(("loudness", f"loudness {integrated_lufs:.1f} LUFS is off the "
                                  f"{target_lufs:.1f} LUFS target"))  # fmt: skip
    if loop:
        # A click at the wrap: the jump from the last sample to the first is larger than
        # nearly every step inside the loop.
        steps = np.abs(np.diff(mono))
        if steps.size and abs(mono[0] - mono[-1]) > float(np.percentile(steps, 99.9)):
            found.append(("ending", "the loop clicks where it wraps around"))
    else:
        # An abrupt ending: the last 20 ms are still loud compared with the piece as a whole.
        tail = mono[-max(1, int(0.02 * sample_rate)) :]
        body = float(np.median(rms)) if rms.size else 0.0
        if body > 0 and float(np.sqrt(np.mean(tail**2))) > 0.5 * body:
            found.append(("ending", "the audio ends abruptly (no decay in the last 20 ms)"))
    score = max(0.0, 1.0 - sum(_PENALTY[kind] for kind, _ in found))
    return QualityReport(score=round(score, 3), findings=[text for _, text in found])
