"""`tunesmith eval similarity`: recall per transformation and false-positive rate.

From any folder of recordings: each recording gives excerpts (5-20 s) that are transformed
(MP3, gain, noise, pitch ±1 semitone, tempo ±5 %) and spliced into freshly generated draft
tracks; clean generated tracks measure false positives. Checking uses the production
`SimilarityChecker` (its thresholds from `risk`, its melody window index from `melody_index`)
over an in-memory catalog, so no stack is needed: recall and false positives are the figures
at the production thresholds. Each case also scores the melody of its source recording
directly, so the report shows what the window index lost against a full scan.

Pitch and tempo transforms use librosa.effects (the dev/eval dependency).
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from activities.catalog import fingerprint_index, melody_index
from activities.catalog.chromaprint import fingerprint_file
from activities.catalog.ingest import IngestError, analyse, expand_paths, file_sha256
from activities.catalog.melody import MelodyError, MelodyProfile, best_alignment
from activities.similarity import risk
from activities.similarity.checker import SimilarityChecker, profile_file

SAMPLE_RATE = 44100
HOST_SECONDS = 30.0
TRANSFORMS = ("mp3", "gain", "noise", "pitch+1", "pitch-1", "tempo+5", "tempo-5")
THRESHOLDS = {
    "fingerprint_block_ber": risk.FINGERPRINT_BLOCK_BER,
    "fingerprint_review_ber": risk.FINGERPRINT_REVIEW_BER,
    "melody_review_score": risk.MELODY_REVIEW_SCORE,
}


class InMemoryCatalog:
    """The `CatalogReader` protocol over dicts: same matching code, no database.

    Melody windows are searched exactly (pgvector's HNSW search is approximate, nearly exact
    at this size). `add(..., indexed=False)` stands for a recording ingested before the index.
    """

    def __init__(self) -> None:
        self._index: dict[int, list[tuple[int, int]]] = {}
        self._fingerprints: dict[int, np.ndarray] = {}
        self._melodies: dict[int, bytes] = {}
        self._unindexed: set[int] = set()
        self._names: dict[int, dict[str, Any]] = {}
        self._window_owner: list[np.ndarray] = []
        self._window_start: list[np.ndarray] = []
        self._window_vectors: list[np.ndarray] = []

    def add(
        self,
        recording_id: str,
        title: str,
        items: list[int],
        melody: bytes | None,
        *,
        indexed: bool = True,
    ) -> int:
        rid = len(self._names) + 1
        fp = fingerprint_index.as_items(items)
        keys, positions = fingerprint_index.index_entries(fp)
        for key, pos in zip(keys.tolist(), positions.tolist(), strict=True):
            self._index.setdefault(key, []).append((rid, pos))
        self._fingerprints[rid] = fp
        if melody is not None:
            self._melodies[rid] = melody
            if indexed:
                self.index_melody(rid)
            else:
                self._unindexed.add(rid)
        self._names[rid] = {"recording_id": recording_id, "title": title}
        return rid

    def index_melody(self, rid: int) -> None:
        """What `catalog reindex` does for one recording."""
        self._unindexed.discard(rid)
        try:
            starts, vectors = melody_index.reference_vectors(
                MelodyProfile.from_bytes(self._melodies[rid])
            )
        except MelodyError:
            return
        self._window_owner.append(np.full(len(starts), rid))
        self._window_start.append(starts)
        self._window_vectors.append(vectors)

    async def postings(self, keys: list[int]) -> list[tuple[int, int, int]]:
        return [(k, r, p) for k in keys for r, p in self._index.get(k, ())]

    async def fingerprints(self, ids: list[int]) -> dict[int, np.ndarray]:
        return {i: self._fingerprints[i] for i in ids}

    async def describe(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        return {i: self._names[i] for i in ids}

    async def nearest_melody_windows(
        self, vectors: np.ndarray, k: int
    ) -> list[tuple[int, int, int, float]]:
        if not self._window_vectors:
            return []
        owner = np.concatenate(self._window_owner)
        start = np.concatenate(self._window_start)
        found = melody_index.nearest(vectors, np.concatenate(self._window_vectors), k)
        return [(q, int(owner[r]), int(start[r]), sim) for q, r, sim in found]

    async def melodies_of(self, ids: list[int]) -> dict[int, bytes]:
        return {i: self._melodies[i] for i in ids if i in self._melodies}

    async def unindexed_melodies(self, batch: int = 500) -> AsyncIterator[list[tuple[int, bytes]]]:
        items = [(i, self._melodies[i]) for i in sorted(self._unindexed)]
        for start in range(0, len(items), batch):
            yield items[start : start + batch]


@dataclass
class EvalReport:
    recordings: int = 0
    skipped: list[str] = field(default_factory=list)
    cases: dict[str, int] = field(default_factory=dict)
    detected: dict[str, int] = field(default_factory=dict)  # right recording, risk ≥ review
    blocked: dict[str, int] = field(default_factory=dict)  # right recording, risk block
    clean_tracks: int = 0
    false_positives: int = 0
    # Melody alone: the source scored directly ≥ the review threshold (what a full scan of
    # the catalog finds), and found through the window index by the production check.
    melody_scan: dict[str, int] = field(default_factory=dict)
    melody_found: dict[str, int] = field(default_factory=dict)
    scores: dict[str, list[float]] = field(default_factory=dict)  # best score per case
    clean_scores: list[float] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=lambda: dict(THRESHOLDS))

    def recall(self, transform: str) -> float:
        return self.detected.get(transform, 0) / max(1, self.cases.get(transform, 0))

    @property
    def false_positive_rate(self) -> float:
        return self.false_positives / max(1, self.clean_tracks)


def render_demo_catalog(folder: Path, count: int, seed: int = 1000) -> list[Path]:
    """Render `count` distinct draft pieces (varied seed, key, tempo, instruments) as WAVs."""
    from activities.inference.draft import DraftBackend

    folder.mkdir(parents=True, exist_ok=True)
    backend = DraftBackend()
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"piece-{i:04d}.wav"
        if not path.exists():
            audio = backend.generate(_random_tokens(rng, seed + i, 45.0))
            sf.write(path, audio.samples, audio.sample_rate, subtype="PCM_16")
        paths.append(path)
    return paths


_KEYS = [
    f"{t} {m}" for t in ("C", "D", "E", "F", "G", "A", "B", "Eb", "Bb") for m in ("major", "minor")
]
_ENSEMBLES = [["piano", "bass", "drums"], ["strings", "guitar", "bass", "drums"],
              ["piano", "strings", "bass"], ["guitar", "bass", "drums"]]  # fmt: skip


def _random_tokens(rng: np.random.Generator, seed: int, duration_s: float) -> Any:
    from activities.controls.normalize import normalize_request

    _, tokens = normalize_request({
        "prompt": "similarity eval", "duration_s": duration_s,
        "tempo_bpm": float(rng.integers(80, 150)), "key": _KEYS[rng.integers(len(_KEYS))],
        "instruments": _ENSEMBLES[rng.integers(len(_ENSEMBLES))], "seed": seed,
    })  # fmt: skip
    return tokens


def _transform(name: str, x: np.ndarray, rng: np.random.Generator, tmp: Path) -> np.ndarray:
    """One transformation of a mono excerpt."""
    import librosa

    if name == "mp3":
        path = tmp / "excerpt.mp3"
        sf.write(path, x, SAMPLE_RATE, format="MP3", compression_level=0.6)  # ≈ 128 kbit/s
        return sf.read(path, dtype="float32")[0]
    if name == "gain":
        return x * 10 ** (rng.uniform(-9, 6) / 20)
    if name == "noise":
        power = float(np.mean(x**2)) or 1e-9
        return x + rng.normal(0, np.sqrt(power / 10 ** (10 / 10)), x.shape).astype(np.float32)
    if name.startswith("pitch"):
        return librosa.effects.pitch_shift(x, sr=SAMPLE_RATE, n_steps=int(name[5:]))
    rate = 1 + int(name[5:]) / 100
    return librosa.effects.time_stretch(x, rate=rate)


def _mono(path: Path) -> np.ndarray:
    import librosa

    samples, sr = sf.read(str(path), dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    if sr != SAMPLE_RATE:
        mono = librosa.resample(mono, orig_sr=sr, target_sr=SAMPLE_RATE)
    return np.asarray(mono, dtype=np.float32)


async def evaluate(
    catalog_dir: Path,
    *,
    limit: int | None = None,
    clean_tracks: int | None = None,
    seed: int = 7,
    transforms: tuple[str, ...] = TRANSFORMS,
    progress: Callable[[str], None] | None = None,
) -> EvalReport:
    """Build the test cases from `catalog_dir` and check each one."""
    from activities.inference.draft import DraftBackend

    rng = np.random.default_rng(seed)
    report = EvalReport()
    catalog = InMemoryCatalog()
    sources: list[tuple[str, Path]] = []
    source_melody: dict[str, MelodyProfile | None] = {}
    for path in expand_paths([catalog_dir]):
        try:
            analysis = analyse(path)
        except (IngestError, OSError) as exc:
            report.skipped.append(f"{path}: {exc}")
            continue
        rec_id = file_sha256(path)
        melody = analysis.melody.to_bytes() if analysis.melody else None
        catalog.add(rec_id, path.stem, analysis.fingerprint, melody)
        sources.append((rec_id, path))
        source_melody[rec_id] = analysis.melody
        if progress:
            progress(f"catalog {len(sources)}: {path.name}")
    report.recordings = len(sources)
    cases = sources[:limit] if limit else sources
    checker = SimilarityChecker(catalog)
    backend = DraftBackend()
    host_seed = 900_000 + seed * 1000
    with tempfile.TemporaryDirectory(prefix="tunesmith-eval-") as tmp_name:
        tmp = Path(tmp_name)
        query = tmp / "query.wav"
        for n, (rec_id, path) in enumerate(cases):
            audio = _mono(path)
            for name in transforms:
                host_seed += 1
                host = backend.generate(_random_tokens(rng, host_seed, HOST_SECONDS)).samples
                host = host.mean(axis=1)
                length = int(min(rng.uniform(5.0, 20.0), len(audio) / SAMPLE_RATE) * SAMPLE_RATE)
                start = int(rng.integers(0, max(1, len(audio) - length)))
                excerpt = _transform(name, audio[start : start + length], rng, tmp)
                at = int(rng.integers(0, max(1, len(host) - len(excerpt))))
                spliced = host.copy()
                spliced[at : at + len(excerpt)] = excerpt[: len(host) - at]
                sf.write(query, np.clip(spliced, -1, 1), SAMPLE_RATE, subtype="PCM_16")
                profile = profile_file(query)
                result = await checker.check(fingerprint_file(query).items, profile)
                hits = [m for m in result.matches if m.recording_id == rec_id and m.risk != "clear"]
                report.cases[name] = report.cases.get(name, 0) + 1
                report.detected[name] = report.detected.get(name, 0) + bool(hits)
                source = source_melody[rec_id]
                direct = best_alignment(profile, source) if profile and source else None
                scanned = direct is not None and direct.score >= risk.MELODY_REVIEW_SCORE
                report.melody_scan[name] = report.melody_scan.get(name, 0) + scanned
                via_index = profile is not None and any(
                    m.recording_id == rec_id for m in await checker.melody_matches(profile)
                )
                report.melody_found[name] = report.melody_found.get(name, 0) + via_index
                report.blocked[name] = report.blocked.get(name, 0) + any(
                    m.risk == "block" for m in hits
                )
                report.scores.setdefault(name, []).append(max((m.score for m in hits), default=0))
            if progress:
                progress(f"cases for recording {n + 1}/{len(cases)}")
        for i in range(clean_tracks if clean_tracks is not None else max(20, len(cases) * 2)):
            clean = backend.generate(_random_tokens(rng, 500_000 + seed * 1000 + i, HOST_SECONDS))
            sf.write(query, clean.samples, SAMPLE_RATE, subtype="PCM_16")
            result = await checker.check(fingerprint_file(query).items, profile_file(query))
            report.clean_tracks += 1
            report.false_positives += result.risk != "clear"
            if result.risk != "clear" and progress:
                progress(f"false positive on clean track {i}: {'; '.join(result.reasons)}")
            report.clean_scores.append(max((m.score for m in result.matches), default=0))
    return report
