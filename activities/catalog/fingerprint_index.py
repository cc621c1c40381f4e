"""Chromaprint matching: inverted-index keys, offset voting and sliding bit-error verification.

Pure numpy; the database side (postings lookup) lives in `store`.

Measured on draft-backend music spliced into other tracks at arbitrary sample offsets (see
`tunesmith eval similarity`): inside a copied stretch 40-55 % of the 32-bit items survive MP3,
gain and 10 dB SNR noise bit-exact, so the *whole item* is the index key. That key is far more
selective than a 16-bit sub-band (which survived only slightly more often), so a lookup returns
the true matches plus few random collisions and query time barely grows with the catalog.
Verification then compares every aligned item, so a key that did not survive costs nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

# fpcalc: 11025 Hz, 4096-sample frames with 2/3 overlap → one item every 1365 samples.
ITEM_SECONDS = 1365 / 11025
# Per-item bit-error rates are smoothed over this many items before looking for copied runs.
SMOOTH_ITEMS = 8
# A smoothed BER under this marks an item as "inside a copied stretch" (unrelated audio ≈ 0.4).
RUN_BER = 0.25
# The shortest run reported (3.8 s). Measured: 5-6.5 s excerpts through MP3/gain/noise gave runs
# of ≥ 4.1 s; unrelated draft tracks share intros and cadences that verify for up to 3.7 s.
MIN_RUN_ITEMS = 31
# Generated tracks open and end alike (a lone chord or pad, a count-in, a final cadence), so
# the first seconds of two unrelated drafts verified for 3.8-4.5 s at BER 0.08-0.15 (6 of 200
# clean tracks over two eval seeds, all starting within 0.7 s of both files' starts), and one
# ending 3.6 s before the end of both at BER 0.18. A run that starts inside the first
# `EDGE_ITEMS` of both files, or ends inside the last `EDGE_ITEMS` of both, must be
# `MIN_EDGE_RUN_ITEMS` long (6 s) to count as a copy; anywhere else the 3.8 s minimum holds.
EDGE_ITEMS = 32  # 4.0 s
MIN_EDGE_RUN_ITEMS = 48
# How many (recording, offset) vote winners are verified item by item.
MAX_CANDIDATES = 20
MIN_VOTES = 6  # pooled score: 3 exact hits


@dataclass(frozen=True)
class FingerprintAlignment:
    """A verified stretch where the query repeats a reference fingerprint."""

    query_start: int  # item index in the query
    reference_start: int  # item index in the reference
    items: int
    bit_error_rate: float

    @property
    def query_offset_s(self) -> float:
        return self.query_start * ITEM_SECONDS

    @property
    def reference_offset_s(self) -> float:
        return self.reference_start * ITEM_SECONDS

    @property
    def duration_s(self) -> float:
        return self.items * ITEM_SECONDS


def as_items(items: Iterable[int] | np.ndarray) -> np.ndarray:
    return np.asarray(items, dtype=np.int64).astype(np.int32)


def index_entries(items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(keys, positions) to store for a reference fingerprint.

    Runs of an identical item (silence, sustained notes) are stored once: they add postings
    without adding evidence.
    """
    items = as_items(items)
    if items.size == 0:
        return items, np.zeros(0, dtype=np.int32)
    keep = np.ones(items.size, dtype=bool)
    keep[1:] = items[1:] != items[:-1]
    positions = np.nonzero(keep)[0].astype(np.int32)
    return items[keep], positions


def query_keys(items: np.ndarray) -> list[int]:
    """Distinct keys of a query, the values to look up with `= ANY($1)`."""
    return np.unique(as_items(items)).tolist()


def vote(query: np.ndarray, postings: Iterable[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Rank (recording, offset) pairs by how many query items hit them.

    Args:
        query: the query's items.
        postings: (key, recording, position) rows returned by the index lookup.

    Returns:
        (recording, offset, score) best first, where offset = reference position − query
        position; votes one item apart are pooled since a splice rarely lands on the grid.
    """
    positions: dict[int, list[int]] = {}
    for i, key in enumerate(as_items(query).tolist()):
        positions.setdefault(key, []).append(i)
    votes: Counter[tuple[int, int]] = Counter()
    for key, recording, position in postings:
        for qpos in positions.get(key, ()):
            votes[(recording, position - qpos)] += 1
    pooled: Counter[tuple[int, int]] = Counter()
    for (recording, offset), n in votes.items():
        pooled[(recording, offset)] += 2 * n  # ties between neighbours go to the exact offset
        pooled[(recording, offset - 1)] += n
        pooled[(recording, offset + 1)] += n
    return [(rec, off, n) for (rec, off), n in pooled.most_common(MAX_CANDIDATES) if n >= MIN_VOTES]


def bit_errors(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Number of differing bits per item pair."""
    x = np.bitwise_xor(as_items(a), as_items(b)).view(np.uint32)
    return np.unpackbits(x.view(np.uint8).reshape(-1, 4), axis=1).sum(axis=1)


def verify(
    query: np.ndarray, reference: np.ndarray, offset: int, max_ber: float
) -> FingerprintAlignment | None:
    """The best copied run when `reference[i + offset]` is aligned with `query[i]`.

    Tries offset ± 1 too, and returns the longest run whose mean BER is at most `max_ber`.
    A run at the opening or the end of both files needs `MIN_EDGE_RUN_ITEMS` (common intros).
    """
    query, reference = as_items(query), as_items(reference)
    best: FingerprintAlignment | None = None
    for off in (offset - 1, offset, offset + 1):
        q_lo, q_hi = max(0, -off), min(query.size, reference.size - off)
        if q_hi - q_lo < MIN_RUN_ITEMS:
            continue
        errors = bit_errors(query[q_lo:q_hi], reference[q_lo + off : q_hi + off]) / 32.0
        kernel = np.ones(SMOOTH_ITEMS) / SMOOTH_ITEMS
        smooth = np.convolve(errors, kernel, mode="same")
        for start, end in _runs(smooth <= RUN_BER):
            q_start, r_start = q_lo + start, q_lo + start + off
            q_left, r_left = query.size - (q_lo + end), reference.size - (q_lo + end + off)
            if end - start < min_run_items(q_start, r_start, q_left, r_left):
                continue
            ber = float(errors[start:end].mean())
            if ber > max_ber or _is_static(query[q_lo + start : q_lo + end]):
                continue
            if best is None or (end - start, -ber) > (best.items, -best.bit_error_rate):
                best = FingerprintAlignment(q_lo + start, q_lo + start + off, end - start, ber)
    return best


def min_run_items(
    query_start: int, reference_start: int, query_left: int, reference_left: int
) -> int:
    """Shortest run that counts as a copy, given its start and the items after it in each file."""
    opening = query_start < EDGE_ITEMS and reference_start < EDGE_ITEMS
    ending = query_left < EDGE_ITEMS and reference_left < EDGE_ITEMS
    return MIN_EDGE_RUN_ITEMS if opening or ending else MIN_RUN_ITEMS


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.diff(padded)
    return list(zip(np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0], strict=True))


def _is_static(items: np.ndarray) -> bool:
    """Silence or a drone matches any other silence: demand varied items before calling a copy."""
    return len(np.unique(items)) < len(items) // 3
