"""CLAP audio embeddings from a local transformers checkpoint (`TUNESMITH_CLAP_MODEL_DIR`).

The dir holds what `ClapModel.save_pretrained` and `ClapFeatureExtractor.save_pretrained` (or
`ClapProcessor`) write, e.g. a snapshot of `laion/clap-htsat-unfused`: `config.json`, the weights
and `preprocessor_config.json`. It is loaded with `local_files_only`: a worker never downloads.

A whole track is embedded: the mono mix is resampled with soxr to the feature extractor's rate
(48 kHz for LAION CLAP), cut into consecutive windows of the extractor's `max_length_s` (10 s),
each window embedded with `get_audio_features` (log-mel front end of the checkpoint's own
feature extractor), and the duration-weighted mean of the window vectors L2-normalised. No
window is longer than `max_length_s`, so the extractor's random crop / random fusion chunks are
never used and the same audio always gives the same vector. A tail shorter than 1 s is dropped
unless it is the whole track; a short window is repeat-padded by the extractor, as in training.

The id stored with the vectors is `clap:<dir name>@<first 12 hex of the sha256 over every file
in the dir>`, so two checkpoints never share an id, even in folders with the same name.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from activities.postprocess.embedding_errors import EmbeddingExtractorError

MIN_TAIL_S = 1.0
BATCH_WINDOWS = 8  # windows per forward pass (bounds memory on long tracks)
_AUDIO_KEYS = ("audio_model.", "audio_projection.")


class ClapEmbedding:
    """A CLAP checkpoint's audio tower as an `EmbeddingExtractor`; CPU, thread-safe."""

    def __init__(self, model: Any, feature_extractor: Any, model_id: str) -> None:
        """Wrap a loaded `ClapModel` (eval mode) and its `ClapFeatureExtractor`; see `load`."""
        import torch

        self._torch = torch
        self.model = model
        self.feature_extractor = feature_extractor
        self.model_id = model_id
        self.dimension = int(model.config.projection_dim)
        self.sample_rate = int(feature_extractor.sampling_rate)
        self.window = int(feature_extractor.nb_max_samples)
        self._lock = threading.Lock()

    @classmethod
    def load(cls, weights_dir: Path) -> ClapEmbedding:
        """Load model and feature extractor from `weights_dir` (never downloads).

        Raises:
            EmbeddingExtractorError: torch/transformers missing, the dir missing, no CLAP
                `config.json`, no `preprocessor_config.json`, or weights missing/incomplete.
        """
        weights_dir = Path(weights_dir)
        where = f"TUNESMITH_CLAP_MODEL_DIR={weights_dir}"
        try:
            import torch  # noqa: F401  (fail here, not halfway through loading)
            from transformers import ClapFeatureExtractor, ClapModel
        except ImportError as exc:
            raise EmbeddingExtractorError(
                f"{where}: the CLAP extractor needs the `models` extra (torch, transformers): {exc}"
            ) from exc
        if not weights_dir.is_dir():
            raise EmbeddingExtractorError(f"{where}: no such directory")
        config = weights_dir / "config.json"
        if not config.is_file():
            raise EmbeddingExtractorError(f"{where}: no transformers checkpoint (config.json)")
        try:
            model_type = json.loads(config.read_text()).get("model_type")
        except (OSError, ValueError) as exc:
            raise EmbeddingExtractorError(f"{where}: unreadable config.json: {exc}") from exc
        if model_type != "clap":  # another architecture would load as a randomly-initialised CLAP
            raise EmbeddingExtractorError(f"{where}: model_type {model_type!r}, not 'clap'")
        if not (weights_dir / "preprocessor_config.json").is_file():
            raise EmbeddingExtractorError(
                f"{where}: no preprocessor_config.json (save the ClapFeatureExtractor or"
                " ClapProcessor beside the model)"
            )
        try:
            model, info = ClapModel.from_pretrained(
                weights_dir, local_files_only=True, output_loading_info=True
            )
            feature_extractor = ClapFeatureExtractor.from_pretrained(
                weights_dir, local_files_only=True
            )
        except Exception as exc:  # no weight file, a truncated one (SafetensorError), ...
            raise EmbeddingExtractorError(f"{where}: {type(exc).__name__}: {exc}") from exc
        # Missing audio weights would be randomly initialised: vectors that mean nothing. (The
        # text tower is never used here.)
        missing = sorted(k for k in info.get("missing_keys", ()) if k.startswith(_AUDIO_KEYS))
        if missing:
            raise EmbeddingExtractorError(
                f"{where}: {len(missing)} weights missing from the checkpoint, e.g. {missing[:3]}"
            )
        from activities.models.cards import weights_sha256

        model_id = f"clap:{weights_dir.name}@{weights_sha256(weights_dir)[:12]}"
        return cls(model.to("cpu").eval(), feature_extractor, model_id)

    def windows(self, mono: np.ndarray) -> list[np.ndarray]:
        """Consecutive windows of at most `max_length_s` of `mono` (at `sample_rate`)."""
        starts = range(0, mono.size, self.window)
        chunks = [mono[s : s + self.window] for s in starts]
        if len(chunks) > 1 and chunks[-1].size < MIN_TAIL_S * self.sample_rate:
            chunks.pop()
        return chunks

    def embed(self, mono: np.ndarray, sample_rate: int) -> list[float]:
        """The L2-normalised CLAP audio embedding of a whole mono signal (module docstring).

        Raises:
            ValueError: empty or non-1-D audio.
        """
        import soxr

        x = np.asarray(mono, dtype=np.float32)
        if x.ndim != 1 or x.size == 0:
            raise ValueError(f"CLAP embedding needs non-empty mono audio, got shape {x.shape}")
        if sample_rate != self.sample_rate:
            x = soxr.resample(x, sample_rate, self.sample_rate, quality="VHQ").astype(np.float32)
        chunks = self.windows(x)
        features = [self.feature_extractor(c.astype(np.float64), sampling_rate=self.sample_rate,
                                           return_tensors="np") for c in chunks]  # fmt: skip
        torch = self._torch
        vectors = []
        with self._lock, torch.inference_mode():
            for i in range(0, len(features), BATCH_WINDOWS):
                batch = features[i : i + BATCH_WINDOWS]
                out = self.model.get_audio_features(
                    input_features=torch.from_numpy(
                        np.concatenate([f["input_features"] for f in batch])
                    ).float(),
                    is_longer=torch.from_numpy(np.concatenate([f["is_longer"] for f in batch])),
                )
                # transformers 5 returns a model output (pooler_output), 4.x the tensor itself.
                emb = out if isinstance(out, torch.Tensor) else out.pooler_output
                vectors.append(emb.double().cpu().numpy())
        v = np.concatenate(vectors)
        v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        weights = np.array([c.size for c in chunks], dtype=np.float64)
        mean = (v * weights[:, None]).sum(axis=0) / weights.sum()
        norm = float(np.linalg.norm(mean))
        return [round(float(e), 6) for e in (mean / norm if norm > 0 else mean)]
