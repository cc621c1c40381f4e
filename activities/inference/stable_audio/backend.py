"""`StableAudioBackend`: stable-audio-tools `diffusion_cond` models (Stable Audio Open and kin).

Text + timing conditioning (`seconds_start` = 0, `seconds_total` = the requested duration),
k-diffusion sampling with the card's steps / cfg scale / sampler, and audio-to-audio from the
request's reference audio (init audio at `init_noise_level`, the strength). The latent length
is the requested duration rounded up to the autoencoder's downsampling ratio (not the model's
full `sample_size`): cheaper, and `seconds_total` tells the model where the piece ends anyway.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from activities.inference.backend import (
    Capabilities,
    GeneratedAudio,
    ProgressCallback,
    UnsupportedControlsError,
)
from activities.inference.failures import ModelWeightsMissingError
from activities.inference.prompt import build_prompt
from activities.inference.reference_audio import ReferenceLoader, load_local_reference
from activities.models.cards import ModelCard
from schemas.controls import ControlTokens

CHECKPOINTS = ("model.safetensors", "model.ckpt")


def _resolve_local_conditioners(config: dict[str, Any], weights_dir: Path) -> None:
    """Point text conditioners at files inside the weights dir, so nothing is fetched.

    `lut`: a relative `tokenizer_name` is a folder of the weights dir. `t5`: a relative
    `t5_model_name` naming a folder of the weights dir is registered with T5Conditioner (its
    name check only knows hub names).
    """
    for cond in config.get("model", {}).get("conditioning", {}).get("configs", []):
        cfg = cond.get("config", {})
        if cond.get("type") == "lut" and (weights_dir / cfg.get("tokenizer_name", "")).is_dir():
            cfg["tokenizer_name"] = str(weights_dir / cfg["tokenizer_name"])
        if cond.get("type") == "t5" and (weights_dir / cfg.get("t5_model_name", "")).is_dir():
            from stable_audio_tools.models.conditioners import T5Conditioner

            local = str(weights_dir / cfg["t5_model_name"])
            t5_config = json.loads((Path(local) / "config.json").read_text())
            if local not in T5Conditioner.T5_MODELS:
                T5Conditioner.T5_MODELS.append(local)
            T5Conditioner.T5_MODEL_DIMS[local] = int(t5_config["d_model"])
            cfg["t5_model_name"] = local


class StableAudioBackend:
    """A stable-audio-tools diffusion model loaded once from a local checkpoint.

    Thread-safe: generations run one at a time (stable-audio-tools seeds torch's global RNG).
    """

    def __init__(
        self,
        card: ModelCard,
        weights_dir: Path,
        *,
        device: str = "auto",
        half: bool = True,
        reference_loader: ReferenceLoader | None = None,
    ) -> None:
        """Build the model from `model_config.json` and load its weights (never downloads).

        Raises:
            ModelWeightsMissingError: no config or checkpoint in `weights_dir`.
        """
        weights_dir = Path(weights_dir)
        config_path = weights_dir / "model_config.json"
        checkpoint = next(
            (weights_dir / n for n in CHECKPOINTS if (weights_dir / n).is_file()), None
        )
        if not config_path.is_file() or checkpoint is None:
            raise ModelWeightsMissingError(
                f"{card.id}: need model_config.json and one of {CHECKPOINTS} in {weights_dir}"
            )
        import torch

        from activities.inference.stable_audio.compat import import_stable_audio_tools

        import_stable_audio_tools()
        from stable_audio_tools.models.factory import create_model_from_config
        from stable_audio_tools.models.utils import load_ckpt_state_dict

        self._torch = torch
        self.card = card
        self.model_id = card.id
        self.model_version = card.version
        self.weights_dir = weights_dir
        self.reference_loader = reference_loader or load_local_reference
        self.device = torch.device(
            ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        )
        config = json.loads(config_path.read_text())
        _resolve_local_conditioners(config, weights_dir)
        model = create_model_from_config(config)
        model.load_state_dict(load_ckpt_state_dict(str(checkpoint)))
        model = model.to(self.device).eval().requires_grad_(False)
        if half and self.device.type == "cuda":
            model = model.to(torch.float16)
        self.model = model
        self.sample_rate = int(config["sample_rate"])
        self.channels = int(config.get("audio_channels", 2))
        self.model_sample_size = int(config["sample_size"])
        pretransform = model.pretransform
        self.downsampling_ratio = int(pretransform.downsampling_ratio) if pretransform else 1
        self.max_duration_s = min(card.max_duration_s, self.model_sample_size / self.sample_rate)
        self.capabilities = Capabilities(
            melody=False,
            stems=False,
            native_loops=False,
            reference_audio=True,
            max_window_s=self.max_duration_s,
        )
        self.sampling: dict[str, Any] = {
            "steps": 100,
            "cfg_scale": 7.0,
            "sampler": "dpmpp-3m-sde",
            "sigma_min": 0.3,
            "sigma_max": 500.0,
            "init_noise_level": 1.0,
        }
        self.sampling.update(card.sampling)
        self._lock = threading.Lock()

    def generate(
        self, tokens: ControlTokens, progress: ProgressCallback | None = None
    ) -> GeneratedAudio:
        """Render `tokens` to exactly round(duration_s * sample_rate) frames, stereo.

        Raises:
            UnsupportedControlsError: duration over the model's window, or a melody.
        """
        return self.generate_batch([tokens], progress)[0]

    def batch_key(self, tokens: ControlTokens) -> tuple[object, ...]:
        """Requests with equal keys can share one `generate_batch` call."""
        ref = tokens.reference.uri if tokens.reference else None
        return (tokens.model_id, round(tokens.duration_s, 3), ref)

    def generate_batch(
        self, batch: Sequence[ControlTokens], progress: ProgressCallback | None = None
    ) -> list[GeneratedAudio]:
        """Render compatible requests (same `batch_key`) in one diffusion pass.

        stable-audio-tools draws the whole batch's noise from one seed, so a batched request
        is reproducible only as the same batch: the first request's seed seeds it. Batch only
        where that is acceptable (e.g. several takes of one request).
        """
        if not batch:
            return []
        for tokens in batch:
            self._validate(tokens)
        if len({self.batch_key(t) for t in batch}) != 1:
            raise ValueError("generate_batch needs one duration and one reference")
        with self._lock:
            audio = self._render(list(batch), progress)
        return [GeneratedAudio(samples=a, sample_rate=self.sample_rate) for a in audio]

    def _validate(self, tokens: ControlTokens) -> None:
        if not (0.0 < tokens.duration_s <= self.max_duration_s):
            raise UnsupportedControlsError(
                f"{self.model_id}: duration_s must be in (0, {self.max_duration_s:g}] "
                f"(one window; no continuation), got {tokens.duration_s}"
            )
        if tokens.melody or tokens.melody_chroma:
            raise UnsupportedControlsError(
                f"{self.model_id} cannot follow a melody; use a melody model (musicgen-melody)"
            )

    def _init_audio(self, tokens: ControlTokens, n_samples: int) -> Any:
        """The reference as a (channels, n_samples) tensor at the model's rate, or None."""
        if tokens.reference is None:
            return None
        import soxr

        samples, rate = self.reference_loader(tokens.reference.uri)
        if rate != self.sample_rate:
            samples = soxr.resample(samples, rate, self.sample_rate)
        samples = np.asarray(samples, dtype=np.float32).reshape(len(samples), -1)
        if samples.shape[1] != self.channels:
            samples = np.repeat(samples.mean(axis=1, keepdims=True), self.channels, axis=1)
        samples = samples[:n_samples]
        samples = np.pad(samples, ((0, n_samples - len(samples)), (0, 0)))
        return self._torch.from_numpy(np.ascontiguousarray(samples.T))

    def _render(
        self, batch: list[ControlTokens], progress: ProgressCallback | None
    ) -> list[np.ndarray]:
        from stable_audio_tools.inference.generation import generate_diffusion_cond

        torch = self._torch
        duration = batch[0].duration_s
        n_samples = round(duration * self.sample_rate)
        ratio = self.downsampling_ratio * int(getattr(self.model, "min_input_length", 1) or 1)
        sample_size = math.ceil(n_samples / ratio) * ratio
        steps = int(self.sampling["steps"])
        conditioning = [
            {"prompt": build_prompt(t), "seconds_start": 0.0, "seconds_total": float(duration)}
            for t in batch
        ]
        init = self._init_audio(batch[0], sample_size)
        kwargs: dict[str, Any] = {}
        if init is not None:
            kwargs["init_audio"] = (self.sample_rate, init.to(self.device))
            kwargs["init_noise_level"] = float(self.sampling["init_noise_level"])

        def callback(info: dict[str, Any]) -> None:
            if progress is not None:
                progress(min((int(info.get("i", 0)) + 1) / steps, 0.999))

        fork_devices = [self.device] if self.device.type == "cuda" else []
        # generate_diffusion_cond seeds torch's global RNG: fork it so no one else's draws move.
        with (
            torch.random.fork_rng(devices=fork_devices),
            torch.inference_mode(),
            contextlib.redirect_stdout(io.StringIO()),  # it prints the seed
            contextlib.redirect_stderr(io.StringIO()),  # and k-diffusion draws a tqdm bar
        ):
            audio = generate_diffusion_cond(
                self.model,
                steps=steps,
                cfg_scale=float(self.sampling["cfg_scale"]),
                conditioning=conditioning,
                batch_size=len(batch),
                sample_size=sample_size,
                seed=int(batch[0].seed) % (2**32 - 1),
                device=str(self.device),
                sampler_type=str(self.sampling["sampler"]),
                sigma_min=float(self.sampling["sigma_min"]),
                sigma_max=float(self.sampling["sigma_max"]),
                callback=callback,
                **kwargs,
            )
        if progress is not None:
            progress(1.0)
        out = audio.float().clamp(-1.0, 1.0).cpu().numpy()[:, :, :n_samples]
        return [np.ascontiguousarray(a.T, dtype=np.float32) for a in out]
