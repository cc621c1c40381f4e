"""Spread-spectrum watermark: round trip, robustness, no false detections, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from activities.disclosure import watermark as wm
from activities.evaluation.watermark import mp3_128k, synthetic_clip

KEY = b"unit-test-key"
RATE = 48_000


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    return synthetic_clip(3, duration_s=12.0, rate=RATE)


@pytest.fixture(scope="module")
def payload() -> int:
    return wm.payload_for_job("job-0001")


@pytest.fixture(scope="module")
def marked(clean: np.ndarray, payload: int) -> np.ndarray:
    return wm.embed(clean, RATE, payload, KEY)


def test_payload_for_job_is_first_32_bits_of_sha256() -> None:
    import hashlib

    assert wm.payload_for_job("abc") == int(hashlib.sha256(b"abc").hexdigest()[:8], 16)
    assert 0 <= wm.payload_for_job("x" * 100) < 2**32


def test_embed_keeps_shape_and_snr(clean: np.ndarray, marked: np.ndarray) -> None:
    assert marked.shape == clean.shape and marked.dtype == np.float32
    noise = np.mean((marked.astype(np.float64) - clean) ** 2)
    snr = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / noise)
    assert snr >= 35.0


def test_round_trip(marked: np.ndarray, payload: int) -> None:
    det = wm.detect(marked, RATE, KEY)
    assert det.found and det.payload == payload and det.crc_ok
    assert det.confidence > 0.99 and det.sync_z > wm.DETECTION_Z


def test_survives_mp3_resample_and_gain(marked: np.ndarray, payload: int) -> None:
    rng = np.random.default_rng(0)
    y, rate = mp3_128k(marked, RATE, rng)
    y = np.asarray(soxr.resample(y, rate, 44_100), np.float32) * np.float32(0.5)  # −6 dB
    det = wm.detect(y, 44_100, KEY)
    assert det.found and det.payload == payload


def test_survives_excerpt_at_odd_offset(marked: np.ndarray, payload: int) -> None:
    start = 12_345  # not a multiple of any hop
    det = wm.detect(marked[start : start + int(6.0 * RATE)], RATE, KEY)
    assert det.found and det.payload == payload


def test_mono_input(clean: np.ndarray, payload: int) -> None:
    mono = clean[:, 0]
    out = wm.embed(mono, RATE, payload, KEY)
    assert out.shape == mono.shape
    assert wm.detect(out, RATE, KEY).payload == payload


def test_clean_audio_is_not_detected(clean: np.ndarray) -> None:
    for seed in range(4):
        det = wm.detect(synthetic_clip(100 + seed, duration_s=10.0), RATE, KEY)
        assert not det.found and det.payload is None
    assert not wm.detect(clean, RATE, KEY).found


def test_wrong_key_does_not_detect(marked: np.ndarray) -> None:
    det = wm.detect(marked, RATE, b"some-other-key")
    assert not det.found and det.payload is None


def test_silence_is_not_detected() -> None:
    det = wm.detect(np.zeros((RATE * 6, 2), np.float32), RATE, KEY)
    assert not det.found


def test_too_short_audio_is_a_clear_error(clean: np.ndarray) -> None:
    short = clean[: RATE * 2]
    with pytest.raises(wm.AudioTooShortError, match="at least"):
        wm.embed(short, RATE, 1, KEY)
    with pytest.raises(wm.AudioTooShortError, match="at least"):
        wm.detect(short, RATE, KEY)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"payload": 2**32}, "32 bits"),
        ({"payload": -1}, "32 bits"),
        ({"key": b""}, "key"),
        ({"rate": 0}, "sample rate"),
        ({"samples": np.full((RATE * 6, 2), np.nan, np.float32)}, "NaN"),
        ({"samples": np.zeros((RATE * 6, 2), np.int16)}, "floating point"),
        ({"samples": np.zeros((2, RATE * 6, 2), np.float32)}, "frames, channels"),
    ],
)
def test_bad_input(clean: np.ndarray, kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"samples": clean, "rate": RATE, "payload": 7, "key": KEY}
    args.update(kwargs)
    with pytest.raises(wm.WatermarkError, match=message):
        wm.embed(**args)  # type: ignore[arg-type]
