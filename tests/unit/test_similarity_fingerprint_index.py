"""Inverted-index keys, voting and sliding bit-error verification on synthetic fingerprints."""

import numpy as np

from activities.catalog import fingerprint_index as fi


def _random_items(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(-(2**31), 2**31, size=n, dtype=np.int64).astype(np.int32)


def _flip_bits(rng: np.random.Generator, items: np.ndarray, rate: float) -> np.ndarray:
    bits = np.unpackbits(items.view(np.uint8))
    flips = (rng.random(bits.size) < rate).astype(np.uint8)
    return np.packbits(bits ^ flips).view(np.int32)


def _postings(reference: np.ndarray, recording: int) -> dict[int, list[tuple[int, int, int]]]:
    keys, positions = fi.index_entries(reference)
    out: dict[int, list[tuple[int, int, int]]] = {}
    for k, p in zip(keys.tolist(), positions.tolist(), strict=True):
        out.setdefault(k, []).append((k, recording, p))
    return out


def test_index_entries_skip_repeated_items() -> None:
    keys, positions = fi.index_entries(np.array([5, 5, 5, 7, 7, 5], dtype=np.int32))
    assert keys.tolist() == [5, 7, 5]
    assert positions.tolist() == [0, 3, 5]


def test_excerpt_anywhere_in_the_query_is_found_with_offsets() -> None:
    rng = np.random.default_rng(1)
    reference = _random_items(rng, 400)
    query = _random_items(rng, 300)
    query[120:180] = _flip_bits(rng, reference[250:310], 0.03)  # a 7.4 s copy, 3 % bit errors
    index = _postings(reference, recording=9)
    rows = [row for key in fi.query_keys(query) for row in index.get(key, [])]
    candidates = fi.vote(query, rows)
    assert candidates[0][:2] == (9, 130)
    found = fi.verify(query, reference, candidates[0][1], max_ber=0.15)
    assert found is not None
    assert abs(found.query_start - 120) <= 4 and abs(found.reference_start - 250) <= 4
    assert found.items >= 50 and found.bit_error_rate < 0.06
    assert abs(found.query_offset_s - 120 * fi.ITEM_SECONDS) < 0.5


def test_unrelated_fingerprints_do_not_verify() -> None:
    rng = np.random.default_rng(2)
    a, b = _random_items(rng, 300), _random_items(rng, 300)
    assert all(fi.verify(a, b, off, max_ber=0.2) is None for off in range(-50, 50, 7))


def test_too_short_or_static_stretches_are_not_copies() -> None:
    rng = np.random.default_rng(3)
    reference = _random_items(rng, 200)
    query = _random_items(rng, 200)
    query[50:65] = reference[50:65]  # 1.9 s: below the shortest reported run
    assert fi.verify(query, reference, 0, max_ber=0.15) is None
    silence = np.zeros(200, dtype=np.int32)
    assert fi.verify(silence, silence, 0, max_ber=0.15) is None


def test_shared_opening_needs_a_longer_run() -> None:
    # Unrelated drafts open alike: a 4.5 s match at the start of both files is not a copy...
    rng = np.random.default_rng(4)
    reference = _random_items(rng, 300)
    query = _random_items(rng, 300)
    query[0:36] = _flip_bits(rng, reference[0:36], 0.03)
    assert fi.verify(query, reference, 0, max_ber=0.15) is None
    # ...while the same 4.5 s copied from the middle of the recording is.
    query[0:36] = _flip_bits(rng, reference[100:136], 0.03)
    found = fi.verify(query, reference, 100, max_ber=0.15)
    assert found is not None and found.items >= fi.MIN_RUN_ITEMS
    # A long copy of the opening still counts.
    query[0:60] = _flip_bits(rng, reference[0:60], 0.03)
    assert fi.verify(query, reference, 0, max_ber=0.15) is not None


def test_shared_ending_needs_a_longer_run() -> None:
    # Endings are formulaic too: 4.5 s matching 2 s before the end of both files is not a copy.
    rng = np.random.default_rng(5)
    reference = _random_items(rng, 360)
    query = _random_items(rng, 240)
    query[188:224] = _flip_bits(rng, reference[308:344], 0.03)
    assert fi.verify(query, reference, 120, max_ber=0.15) is None
    # The same stretch in the middle of the query, from the end of the recording, is a copy.
    query[188:224] = _random_items(rng, 36)
    query[100:136] = _flip_bits(rng, reference[308:344], 0.03)
    assert fi.verify(query, reference, 208, max_ber=0.15) is not None
