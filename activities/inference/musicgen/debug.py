"""Tiny random-weight MusicGen checkpoints (`musicgen-debug`, `musicgen-melody-debug`).

In the spirit of audiocraft's debug MusicGen: the real architecture at ~240k parameters, so
tests and benchmarks run the real loading and generation code on CPU in well under a second.
The tokenizer is a sentencepiece unigram model trained in memory (no download). Same seed →
byte-identical weights, hence a stable weights hash.
"""

from __future__ import annotations

from pathlib import Path

from activities.inference.debug_tokenizer import build_debug_tokenizer

CODEBOOK_SIZE = 64
NUM_CODEBOOKS = 4  # 1.2 kbps at 50 Hz with 6-bit codebooks


def build_debug_musicgen(out_dir: Path, *, melody: bool = False, seed: int = 0) -> Path:
    """Write a tiny MusicGen (or MusicGen-melody) model + tokenizer to `out_dir`; returns it."""
    import torch
    from transformers import (
        EncodecConfig,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        MusicgenMelodyConfig,
        MusicgenMelodyDecoderConfig,
        MusicgenMelodyForConditionalGeneration,
        T5Config,
    )

    out_dir = Path(out_dir)
    tokenizer = build_debug_tokenizer(out_dir)
    text = T5Config(
        vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4
    )
    audio = EncodecConfig(
        sampling_rate=32000,
        upsampling_ratios=[8, 5, 4, 4],
        codebook_size=CODEBOOK_SIZE,
        target_bandwidths=[1.2],
        hidden_size=16,
        num_filters=4,
        num_lstm_layers=1,
    )
    decoder_kwargs = {
        "vocab_size": CODEBOOK_SIZE,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "ffn_dim": 64,
        "num_codebooks": NUM_CODEBOOKS,
        "max_position_embeddings": 4096,
        "pad_token_id": CODEBOOK_SIZE,
        "bos_token_id": CODEBOOK_SIZE,
    }
    torch.manual_seed(seed)
    model: MusicgenForConditionalGeneration | MusicgenMelodyForConditionalGeneration
    if melody:
        config = MusicgenMelodyConfig(
            text_encoder=text,
            audio_encoder=audio,
            decoder=MusicgenMelodyDecoderConfig(**decoder_kwargs),
        )
        model = MusicgenMelodyForConditionalGeneration(config)
    else:
        config = MusicgenConfig(
            text_encoder=text, audio_encoder=audio, decoder=MusicgenDecoderConfig(**decoder_kwargs)
        )
        model = MusicgenForConditionalGeneration(config)
    # EnCodec's codebooks start as zeros (real checkpoints load them): every code would decode
    # to the same vector and the audio would not depend on the tokens at all.
    with torch.no_grad():
        for layer in model.audio_encoder.quantizer.layers:
            layer.codebook.embed.normal_()
            layer.codebook.embed_avg.copy_(layer.codebook.embed)
        if melody:
            # At init scale (std 0.02) the chroma barely moves the logits; make it audible.
            model.audio_enc_to_dec_proj.weight.normal_(std=1.0)
    gen = model.generation_config
    gen.decoder_start_token_id = CODEBOOK_SIZE
    gen.pad_token_id = CODEBOOK_SIZE
    gen.bos_token_id = CODEBOOK_SIZE
    gen.do_sample = True
    gen.max_length = 1500
    model.save_pretrained(out_dir)
    return out_dir
