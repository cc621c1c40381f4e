"""The tiny sentencepiece text tokenizer of the debug checkpoints (`musicgen-debug`,
`musicgen-melody-debug`, `stable-audio-debug`): trained in memory on a fixed corpus, no
download. Shared by the backends' debug builders, so neither imports the other."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

# A few hundred words so the unigram trainer has something to split.
_CORPUS = [
    f"{mood} {genre} track with {instrument} at {tempo} bpm in {key}"
    for mood in ("warm", "dark", "bright", "calm", "epic", "lo-fi")
    for genre in ("jazz", "rock", "ambient", "techno", "folk")
    for instrument in ("piano", "bass", "drums", "guitar", "strings", "synth")
    for tempo, key in (("90", "A minor"), ("120", "C major"), ("140", "F sharp minor"))
]


def build_debug_tokenizer(out_dir: Path) -> Any:
    """Train a tiny sentencepiece unigram tokenizer in memory; save it (T5 format) to `out_dir`."""
    import sentencepiece as spm
    from transformers import AutoTokenizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_CORPUS),
        model_writer=model_buf,
        vocab_size=48,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    (out_dir / "spiece.model").write_bytes(model_buf.getvalue())
    # T5Tokenizer(vocab_file=...) silently yields a 4-token vocab in transformers 5.
    tokenizer = AutoTokenizer.from_pretrained(out_dir, tokenizer_type="t5", extra_ids=0)
    tokenizer.save_pretrained(out_dir)
    return tokenizer
