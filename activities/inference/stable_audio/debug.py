"""Tiny random-weight stable-audio-tools `diffusion_cond` checkpoint (`stable-audio-debug`).

Same shape of model as Stable Audio Open (Oobleck VAE → DiT with cross-attention on a text
conditioner and global seconds_start/seconds_total conditioning) at ~210k parameters. Text goes
through a `lut` conditioner over a locally trained tokenizer, since the `t5` conditioner would
fetch t5-base.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SAMPLE_RATE = 44100
DOWNSAMPLING_RATIO = 32  # prod(strides) of the Oobleck encoder below
COND_DIM = 32


def debug_config(sample_size: int) -> dict[str, Any]:
    """The model_config.json of the tiny model (tokenizer path relative to the weights dir)."""
    seconds = {"min_val": 0, "max_val": 512}
    oobleck = {"channels": 8, "c_mults": [1, 2], "strides": [4, 8], "use_snake": True}
    return {
        "model_type": "diffusion_cond",
        "sample_size": sample_size,
        "sample_rate": SAMPLE_RATE,
        "audio_channels": 2,
        "model": {
            "pretransform": {
                "type": "autoencoder",
                "iterate_batch": False,
                "config": {
                    "encoder": {
                        "type": "oobleck",
                        "config": {"in_channels": 2, "latent_dim": 8, **oobleck},
                    },
                    "decoder": {
                        "type": "oobleck",
                        "config": {
                            "out_channels": 2,
                            "latent_dim": 4,
                            "final_tanh": False,
                            **oobleck,
                        },
                    },
                    "bottleneck": {"type": "vae"},
                    "latent_dim": 4,
                    "downsampling_ratio": DOWNSAMPLING_RATIO,
                    "io_channels": 2,
                },
            },
            "conditioning": {
                "configs": [
                    {
                        "id": "prompt",
                        "type": "lut",
                        "config": {"tokenizer_name": "tokenizer", "max_length": 32},
                    },
                    {
                        "id": "seconds_start",
                        "type": "number",
                        "config": seconds,
                    },
                    {
                        "id": "seconds_total",
                        "type": "number",
                        "config": seconds,
                    },
                ],
                "cond_dim": COND_DIM,
            },
            "diffusion": {
                "cross_attention_cond_ids": ["prompt", "seconds_start", "seconds_total"],
                "global_cond_ids": ["seconds_start", "seconds_total"],
                "type": "dit",
                "config": {
                    "io_channels": 4,
                    "embed_dim": 64,
                    "depth": 2,
                    "num_heads": 2,  # head dim 32: the attention kernels need >= 32
                    "cond_token_dim": COND_DIM,
                    "global_cond_dim": 2 * COND_DIM,  # two number conditioners, concatenated
                    "project_cond_tokens": False,
                    "transformer_type": "continuous_transformer",
                },
            },
            "io_channels": 4,
        },
    }


def build_debug_stable_audio(out_dir: Path, *, seed: int = 0, max_seconds: float = 6.0) -> Path:
    """Write model_config.json, model.safetensors and tokenizer/ to `out_dir`; returns it."""
    import torch
    from safetensors.torch import save_file

    from activities.inference.debug_tokenizer import build_debug_tokenizer
    from activities.inference.stable_audio.compat import import_stable_audio_tools

    import_stable_audio_tools()
    from stable_audio_tools.models.factory import create_model_from_config

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    build_debug_tokenizer(out_dir / "tokenizer")
    frames = int(max_seconds * SAMPLE_RATE)
    sample_size = -(-frames // DOWNSAMPLING_RATIO) * DOWNSAMPLING_RATIO
    config = debug_config(sample_size)
    (out_dir / "model_config.json").write_text(json.dumps(config, indent=2))
    resolved = json.loads(json.dumps(config))
    resolved["model"]["conditioning"]["configs"][0]["config"]["tokenizer_name"] = str(
        out_dir / "tokenizer"
    )
    torch.manual_seed(seed)
    model = create_model_from_config(resolved)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out_dir / "model.safetensors"))
    return out_dir
