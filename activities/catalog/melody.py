"""The musical detector: tonal semitone spectra matched across transposition and tempo change.

Chromaprint items change when pitch or tempo move by 2 %; a copied tune transposed or sped up
is still the same tune. Each recording is reduced to a semitone spectrum (MIDI 55-100, 196 Hz
to 2.6 kHz, where melody and chord voicings sit) of its *harmonic* part on a fixed 93 ms grid:

- harmonic/percussive separation first, and frames with little tonal energy are blanked
  (they score 0): drum-only bars and silences are alike in every track of a genre, and with
  them in, unrelated generated tracks matched at 0.97-0.99;
- unfolded semitone bands rather than 12-bin chroma: a copy keeps the voicing, register and
  timbre, which chroma folds away; chroma windows of unrelated drafts that share a chord
  progression scored as high as copies;
- a transposition is a shift along the bands (all 13 shifts from −6 to +6 are tried);
- a tempo change is a stretch of the time axis: the query is resampled at each of
  `TEMPO_RATIOS` and every window may drift by one frame, which covers ±10 % continuously.
  (Beat tracking was tried first: inside a 5-10 s excerpt spliced into another track the
  tracker often followed the host or found no beats, and 12 beats of a slow piece outlast a
  5 s excerpt.)

The score is the mean cosine along the best `WINDOW_FRAMES` diagonal (4.6 s) of the query ×
reference frame-similarity matrix, over the frames that are tonal in both. Openings and
endings are formulaic (a lone chord, a final cadence), so a window at the opening of both
files, or at the end of both, is not counted.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

SAMPLE_RATE = 11025
N_FFT = 2048  # 5.4 Hz bins: a semitone apart from 196 Hz up
STFT_HOP = 256
FRAMES_PER_STEP = 4  # profile step = 4 STFT hops = 92.9 ms
STEP_S = STFT_HOP * FRAMES_PER_STEP / SAMPLE_RATE
LOW_MIDI, HIGH_MIDI = 55, 100
BANDS = HIGH_MIDI - LOW_MIDI
MAX_SHIFT = 6  # semitones either way; stored profiles carry this margin of bands on each side
STORED_BANDS = BANDS + 2 * MAX_SHIFT
WINDOW_FRAMES = 50  # 4.6 s: excerpts of ≥ 5 s must be found, with a splice edge to spare
TEMPO_RATIOS = (0.92, 0.96, 1.0, 1.04, 1.08)
COARSE_RATIOS = (0.92, 1.0, 1.08)  # at 186 ms frames one frame of slack spans ±4 %
COARSE_MARGIN = 0.04  # copies' coarse scores sat at most 0.02 below their fine scores
SLACK_FRAMES = 1  # each cell may take its best neighbour along the reference: drift of ±2 %
TONAL_FLOOR = 0.1  # of the 75th-percentile frame energy: below it a frame is blanked
# Each file's floor follows its own level, so a decaying note may be blank in one and not the
# other: a window's score is its mean over frames tonal in both, and at least this share of
# the window must be such frames.
MIN_TONAL_SHARE = 0.6
EDGE_S = 4.0  # windows inside the first (or last) EDGE_S of both files are not counted
BLOCK_FRAMES = 512  # window starts per side compared at once (48 s; 13 × 0.3 M cells)
FORMAT = b"TSM2"  # profile bytes: magic, frames (uint32), scale (float32), uint8 bands

_FILTERS: np.ndarray | None = None


class MelodyError(ValueError):
    """No usable profile (too short, silent, atonal, or stored in an older format)."""


@dataclass(frozen=True)
class MelodyAlignment:
    """Where and how well the query's melody/harmony follows a reference."""

    score: float  # mean cosine of the aligned frames over the window, 0..1
    query_frame: int
    reference_frame: int
    semitones: int  # the query sits this many semitones above the reference
    tempo_factor: float  # query tempo ÷ reference tempo

    @property
    def query_offset_s(self) -> float:
        return self.query_frame * STEP_S / self.tempo_factor

    @property
    def reference_offset_s(self) -> float:
        return self.reference_frame * STEP_S

    @property
    def duration_s(self) -> float:
        return WINDOW_FRAMES * STEP_S


@dataclass(frozen=True)
class MelodyProfile:
    """Log semitone spectrum of the harmonic part, frames × `STORED_BANDS`, 0 = blank frame."""

    bands: np.ndarray

    @property
    def frames(self) -> int:
        return int(self.bands.shape[0])

    @property
    def duration_s(self) -> float:
        return self.frames * STEP_S

    def to_bytes(self) -> bytes:
        scale = float(self.bands.max()) / 255 or 1.0
        quantized = np.round(self.bands / scale).astype(np.uint8)
        return FORMAT + struct.pack("<If", self.frames, scale) + quantized.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> MelodyProfile:
        """Raises MelodyError for profiles stored by an older detector (re-ingest those)."""
        if data[:4] != FORMAT:
            raise MelodyError("melody profile in an older format: re-ingest the recording")
        frames, scale = struct.unpack("<If", data[4:12])
        quantized = np.frombuffer(data, dtype=np.uint8, offset=12)
        bands = quantized.reshape(frames, STORED_BANDS).astype(np.float32) * scale
        return cls(bands=bands)


def profile(samples: np.ndarray, sample_rate: int) -> MelodyProfile:
    """Tonal semitone spectrum of mono or (frames, channels) audio.

    Raises:
        MelodyError: silent, atonal or shorter than one window.
    """
    import librosa  # heavy import; only the similarity paths need it

    y = np.asarray(samples, dtype=np.float32)
    if y.ndim == 2:
        y = y.mean(axis=1)
    if sample_rate != SAMPLE_RATE:
        y = librosa.resample(y, orig_sr=sample_rate, target_sr=SAMPLE_RATE, res_type="polyphase")
    if not np.any(np.abs(y) > 1e-4):
        raise MelodyError("audio is silent")
    magnitude = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=STFT_HOP))
    harmonic = _harmonic(magnitude)
    steps = harmonic.shape[1] // FRAMES_PER_STEP
    if steps < WINDOW_FRAMES:
        raise MelodyError(f"{steps * STEP_S:.1f} s of audio; need {WINDOW_FRAMES * STEP_S:.1f} s")
    power = (harmonic[:, : steps * FRAMES_PER_STEP] ** 2).reshape(-1, steps, FRAMES_PER_STEP)
    bands = (_filters() @ power.mean(axis=2)).T  # (steps, STORED_BANDS)
    energy = bands[:, MAX_SHIFT : MAX_SHIFT + BANDS].sum(axis=1)
    if not np.any(energy > 0):
        raise MelodyError("no tonal content")
    tonal = energy >= TONAL_FLOOR * np.percentile(energy, 75)
    bands = np.log1p(100 * bands / bands.mean())
    bands[~tonal] = 0.0
    return MelodyProfile(bands=bands.astype(np.float32))


_HPSS_KERNEL = 17  # librosa.decompose.hpss(kernel_size=(17, 17)): 1.6 s × 94 Hz medians


@cache
def _median_network(n: int) -> tuple[tuple[int, int], ...]:
    """Compare-exchange pairs that leave the median of `n` values at index n // 2: Batcher's
    merge-exchange sort (Knuth 5.2.2 M), less the pairs the middle output does not depend on."""
    t = max(1, (n - 1).bit_length())
    pairs: list[tuple[int, int]] = []
    p = 1 << (t - 1)
    while p > 0:
        q, r, d = 1 << (t - 1), 0, p
        while d > 0:
            pairs += [(i, i + d) for i in range(n - d) if (i & p) == r]
            d, q, r = q - p, q >> 1, p
        p >>= 1
    needed, kept = {n // 2}, []
    for i, j in reversed(pairs):
        if i in needed or j in needed:
            kept.append((i, j))
            needed |= {i, j}
    return tuple(reversed(kept))


def _sliding_median(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    """`scipy.ndimage.median_filter(x, size along axis, mode="reflect")` of a 2-D array: the
    same numbers (a median is one of the inputs) from a sorting network of elementwise
    min/max over shifted copies, ~10x faster than ndimage's generic rank filter."""
    half = size // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (half, half)
    padded = np.pad(x, pad, mode="symmetric")  # = ndimage's "reflect"
    n = x.shape[axis]
    values = [
        (padded[:, k : k + n] if axis == 1 else padded[k : k + n]).copy() for k in range(size)
    ]
    for i, j in _median_network(size):
        low = np.minimum(values[i], values[j])
        np.maximum(values[i], values[j], out=values[j])
        values[i] = low
    return values[half]


def _blocked_median(x: np.ndarray, size: int, axis: int, block: int = 64) -> np.ndarray:
    """`_sliding_median` in blocks across the other axis, so the shifted copies stay in cache."""
    if axis == 1:
        parts = [_sliding_median(x[r : r + block], size, 1) for r in range(0, x.shape[0], block)]
        return np.concatenate(parts, axis=0) if parts else x.copy()
    step = block * 3
    parts = [_sliding_median(x[:, c : c + step], size, 0) for c in range(0, x.shape[1], step)]
    return np.concatenate(parts, axis=1) if parts else x.copy()


def _harmonic(magnitude: np.ndarray) -> np.ndarray:
    """The harmonic part of `librosa.decompose.hpss(magnitude, kernel_size=(17, 17))`, in the
    STFT bins the semitone filters read (zero elsewhere: those bins are weighted 0).

    The same numbers as librosa's: its median filters, its soft mask, on the bins that count.
    """
    from librosa.util import softmask

    used = np.flatnonzero(_filters().any(axis=0))
    lo, hi = int(used[0]), int(used[-1]) + 1
    half = _HPSS_KERNEL // 2
    # The frequency median of bin b reads bins b ± 8: give it those rows, mirrored at the
    # spectrum's ends as ndimage's "reflect" would.
    rows = np.pad(magnitude, [(half, half), (0, 0)], mode="symmetric")[lo : hi + 2 * half]
    perc = _blocked_median(rows, _HPSS_KERNEL, axis=0)[half : half + hi - lo]
    harm = _blocked_median(magnitude[lo:hi], _HPSS_KERNEL, axis=1)
    harmonic = np.zeros_like(magnitude)
    harmonic[lo:hi] = magnitude[lo:hi] * softmask(harm, perc * 1.0, power=2.0, split_zeros=True)
    return harmonic


def _filters() -> np.ndarray:
    """Triangular semitone filters over the STFT bins, `STORED_BANDS` × bins."""
    global _FILTERS
    if _FILTERS is None:
        freqs = np.fft.rfftfreq(N_FFT, 1 / SAMPLE_RATE)
        midi = 69 + 12 * np.log2(np.maximum(freqs, 1e-3) / 440)
        notes = np.arange(LOW_MIDI - MAX_SHIFT, HIGH_MIDI + MAX_SHIFT)
        _FILTERS = np.maximum(0, 1 - np.abs(midi[None, :] - notes[:, None])).astype(np.float32)
    return _FILTERS


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Centre and scale each frame to unit length; blank frames stay all-zero."""
    centred = x - x.mean(axis=-1, keepdims=True)
    norms = np.linalg.norm(centred, axis=-1, keepdims=True)
    blank = ~np.any(x != 0, axis=-1, keepdims=True)
    return np.where(blank, 0.0, centred / np.maximum(norms, 1e-6)).astype(np.float32)


def _stretch(bands: np.ndarray, ratio: float) -> np.ndarray:
    """Frames resampled to `ratio` × as many (a query `ratio` × faster, on the reference clock).

    Nearest frame, not interpolation: interpolated frames are smoother and matched unrelated
    music better (most false positives of the eval came from the 1.08 ratio); the one frame
    of slack absorbs the half-frame rounding.
    """
    n = bands.shape[0]
    m = int((n - 1) * ratio) + 1
    return bands[np.minimum(np.round(np.arange(m) / ratio).astype(int), n - 1)]


def _diagonal_means(sim: np.ndarray, length: int) -> np.ndarray:
    """(k, n, m) → (k, n − length + 1, m − length + 1): mean of sim[:, i + t, j + t], t < length.

    Sums of power-of-two runs are built by doubling and combined by the bits of `length`.
    """
    n_out, m_out = sim.shape[1] - length + 1, sim.shape[2] - length + 1
    out: np.ndarray | None = None
    block, size, pos, rest = sim, 1, 0, length
    while True:
        if rest & 1:
            part = block[:, pos : pos + n_out, pos : pos + m_out]
            out = part.copy() if out is None else out + part
            pos += size
        rest >>= 1
        if not rest:
            break
        block = block[:, :-size, :-size] + block[:, size:, size:]
        size *= 2
    assert out is not None
    return out / length


def best_alignment(
    query: MelodyProfile, reference: MelodyProfile, at_least: float | None = None
) -> MelodyAlignment | None:
    """The best `WINDOW_FRAMES` stretch of the query following the reference.

    Tries every shift in ±`MAX_SHIFT` semitones and every ratio in `TEMPO_RATIOS`; None when
    either profile is shorter than a window. With `at_least`, a coarse pass at half the frame
    rate first (a sixth of the work) returns None for references that cannot reach it.
    """
    if at_least is not None:
        coarse = _search(
            _pool(query.bands), _pool(reference.bands), WINDOW_FRAMES // 2, COARSE_RATIOS, _SHIFTS
        )
        if coarse is None or coarse.score < at_least - COARSE_MARGIN:
            return None
    return _search(query.bands, reference.bands, WINDOW_FRAMES, TEMPO_RATIOS, _SHIFTS)


def coarse_score(query: MelodyProfile, reference: MelodyProfile) -> float:
    """The coarse pass's score (for calibrating `COARSE_MARGIN`)."""
    found = _search(
        _pool(query.bands), _pool(reference.bands), WINDOW_FRAMES // 2, COARSE_RATIOS, _SHIFTS
    )
    return found.score if found else -1.0


def _pool(bands: np.ndarray) -> np.ndarray:
    """Pairs of frames averaged; a pair with a blank frame is blank."""
    pairs = bands[: bands.shape[0] // 2 * 2].reshape(-1, 2, bands.shape[1])
    out = pairs.mean(axis=1)
    tonal: np.ndarray = np.all(np.any(pairs != 0, axis=2), axis=1)
    out[~tonal] = 0.0
    return out


def _search(
    query: np.ndarray,
    reference: np.ndarray,
    length: int,
    ratios: tuple[float, ...],
    shifts: tuple[int, ...],
) -> MelodyAlignment | None:
    """Best diagonal window of `length` frames over `ratios` × `shifts` (frames of any rate).

    Long files are compared in blocks of `BLOCK_FRAMES` window starts per side, so memory
    stays bounded (a 30-minute reference would otherwise need gigabytes per ratio).
    """
    step = STEP_S * WINDOW_FRAMES / length
    ref = _unit_rows(reference[:, MAX_SHIFT : MAX_SHIFT + BANDS])
    m = ref.shape[0]
    best: MelodyAlignment | None = None
    for ratio in ratios:
        q = _stretch(query, ratio)
        n = q.shape[0]
        if n < length or m < length:
            continue
        shifted = _unit_rows(
            np.stack([q[:, MAX_SHIFT + s : MAX_SHIFT + s + BANDS] for s in shifts])
        )
        q_tonal: np.ndarray = np.any(q != 0, axis=1)
        edges = _edge_mask(n, m, ratio, length, step)
        for i0 in range(0, n - length + 1, BLOCK_FRAMES):
            qb = shifted[:, i0 : i0 + BLOCK_FRAMES + length - 1]
            for j0 in range(0, m - length + 1, BLOCK_FRAMES):
                rb = ref[j0 : j0 + BLOCK_FRAMES + length - 1]
                tb = q_tonal[i0 : i0 + BLOCK_FRAMES + length - 1]
                score, k, i, j = _best_window(qb, tb, rb, length, edges, i0, j0)
                if best is None or score > best.score:
                    scale = WINDOW_FRAMES // length
                    best = MelodyAlignment(
                        score, (i0 + i) * scale, (j0 + j) * scale, shifts[k], ratio
                    )
    return best


def _best_window(
    query: np.ndarray,
    q_tonal: np.ndarray,
    reference: np.ndarray,
    length: int,
    edges: np.ndarray,
    i0: int,
    j0: int,
) -> tuple[float, int, int, int]:
    """(score, shift index, i, j) of the best window in one block of the comparison."""
    k_shifts, n, bands = query.shape
    m = reference.shape[0]
    sim = (query.reshape(-1, bands) @ reference.T).reshape(k_shifts, n, m)
    r_tonal: np.ndarray = np.any(reference != 0, axis=1)
    both = (q_tonal[:, None] & r_tonal[None, :]).astype(np.float32)
    tonal = _diagonal_means(_with_slack(both[None]), length)[0]
    window = _diagonal_means(_with_slack(sim), length) / np.maximum(tonal, 1e-6)
    blocked = edges[i0 : i0 + window.shape[1], j0 : j0 + window.shape[2]]
    window[:, (tonal < MIN_TONAL_SHARE) | blocked] = -1.0
    k, i, j = np.unravel_index(int(np.argmax(window)), window.shape)
    return float(window[k, i, j]), int(k), int(i), int(j)


_SHIFTS = tuple(range(-MAX_SHIFT, MAX_SHIFT + 1))


def _with_slack(sim: np.ndarray) -> np.ndarray:
    """Each cell takes the best of its `SLACK_FRAMES` neighbours along the reference axis."""
    out = sim.copy()
    for k in range(1, SLACK_FRAMES + 1):
        np.maximum(out[:, :, k:], sim[:, :, :-k], out=out[:, :, k:])
        np.maximum(out[:, :, :-k], sim[:, :, k:], out=out[:, :, :-k])
    return out


def _edge_mask(n: int, m: int, ratio: float, length: int, step: float) -> np.ndarray:
    """Windows (query start i, reference start j) inside both openings or both endings."""
    span = length * step
    q_start = np.arange(n - length + 1) * step / ratio
    r_start = np.arange(m - length + 1) * step
    q_left = n * step / ratio - q_start - span / ratio
    r_left = m * step - r_start - span
    opening = (q_start[:, None] < EDGE_S) & (r_start[None, :] < EDGE_S)
    ending = (q_left[:, None] < EDGE_S) & (r_left[None, :] < EDGE_S)
    return opening | ending


def describe(alignment: MelodyAlignment) -> dict[str, Any]:
    return {"semitones": alignment.semitones, "tempo_factor": alignment.tempo_factor}
