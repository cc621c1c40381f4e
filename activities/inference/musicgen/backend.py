"""`MusicGenBackend`: Meta's MusicGen through Hugging Face transformers, text or melody.

Long tracks are made by windowed continuation: the first window is generated from the text
(and melody); each later window is prompted with the last `window_overlap_s` of audio so far
(re-encoded to EnCodec codes and passed as `decoder_input_ids`, as audiocraft's extension
does) and adds `max_window_s - window_overlap_s` seconds. The decoded prompt region is
crossfaded into the audio it came from, so the seam is smooth.

Sampling is seeded per request: instead of transformers' global-RNG multinomial, a logits
processor adds Gumbel noise from a per-request `torch.Generator` and decoding is greedy
(argmax of logits/T + Gumbel noise is an exact sample from softmax(logits/T)). Same seed →
same audio, whatever else runs in the process and whether or not the request is batched.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
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
from activities.inference.reference_audio import (
    ReferenceLoader,
    load_local_reference,
    to_mono,
)
from activities.models.cards import ModelCard
from schemas.controls import ControlTokens

# MusicGen-melody's chroma front end (audiocraft ChromaStemConditioner / transformers'
# MusicgenMelodyFeatureExtractor defaults); overridden by a preprocessor_config.json.
CHROMA_SAMPLE_RATE = 32000
CHROMA_HOP = 4096
CHROMA_N_FFT = 16384


def melody_chroma_frames(tokens: ControlTokens, frame_rate: float, n_frames: int) -> np.ndarray:
    """One-hot chroma (n_frames, 12) at `frame_rate` from `tokens.melody_chroma`.

    `melody_chroma` holds a pitch class per sixteenth note (-1 = rest); a rest frame is all
    zeros. Past the end of the melody, frames are rests.
    """
    chroma = np.zeros((n_frames, 12), dtype=np.float32)
    sixteenth_s = 60.0 / tokens.tempo_bpm / 4.0
    times = np.arange(n_frames) / frame_rate
    idx = np.floor(times / sixteenth_s + 1e-9).astype(int)
    pcs = np.asarray(tokens.melody_chroma, dtype=int)
    valid = idx < len(pcs)
    frame_pcs = np.full(n_frames, -1)
    frame_pcs[valid] = pcs[idx[valid]]
    on = frame_pcs >= 0
    chroma[np.nonzero(on)[0], frame_pcs[on] % 12] = 1.0
    return chroma


def audio_chroma_frames(samples: np.ndarray, rate: int, hop: int, n_fft: int) -> np.ndarray:
    """One-hot (argmax) chroma (frames, 12) of mono audio, as MusicGen-melody was trained on."""
    import librosa
    import soxr

    mono = to_mono(samples).astype(np.float32)
    if rate != CHROMA_SAMPLE_RATE:
        mono = soxr.resample(mono, rate, CHROMA_SAMPLE_RATE).astype(np.float32)
    if mono.size < n_fft:
        mono = np.pad(mono, (0, n_fft - mono.size))
    chroma = librosa.feature.chroma_stft(
        y=mono, sr=CHROMA_SAMPLE_RATE, n_fft=n_fft, hop_length=hop, center=True
    ).T
    onehot = np.zeros_like(chroma, dtype=np.float32)
    onehot[np.arange(len(chroma)), chroma.argmax(axis=1)] = 1.0
    return onehot


@dataclass(frozen=True)
class Window:
    """One generation call: `prompt_frames` of context from the audio so far + `new_frames`."""

    prompt_frames: int
    new_frames: int


def plan_windows(total_frames: int, window_frames: int, overlap_frames: int) -> list[Window]:
    """Split `total_frames` codec frames into windows of at most `window_frames` (incl. context)."""
    if overlap_frames >= window_frames:
        raise ValueError("overlap must be shorter than the window")
    windows = [Window(0, min(total_frames, window_frames))]
    done = windows[0].new_frames
    while done < total_frames:
        prompt = min(overlap_frames, done)
        new = min(window_frames - prompt, total_frames - done)
        windows.append(Window(prompt, new))
        done += new
    return windows


class MusicGenBackend:
    """MusicGen (text) or MusicGen-melody, loaded once from a local transformers checkpoint.

    Thread-safe: generations run one at a time (they share the model and the device).
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
        """Load the model, tokenizer and codec from `weights_dir` (never downloads).

        Raises:
            ModelWeightsMissingError: no checkpoint in `weights_dir`.
        """
        weights_dir = Path(weights_dir)
        if not (weights_dir / "config.json").is_file():
            raise ModelWeightsMissingError(
                f"{card.id}: no transformers checkpoint (config.json) in {weights_dir}"
            )
        import torch
        from transformers import (
            AutoConfig,
            AutoTokenizer,
            MusicgenForConditionalGeneration,
            MusicgenMelodyForConditionalGeneration,
        )

        self._torch = torch
        self.card = card
        self.model_id = card.id
        self.model_version = card.version
        self.weights_dir = weights_dir
        self.reference_loader = reference_loader or load_local_reference
        self.device = torch.device(
            ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        )
        self.dtype = torch.float16 if half and self.device.type == "cuda" else torch.float32
        try:
            config = AutoConfig.from_pretrained(weights_dir, local_files_only=True)
            self.is_melody = config.model_type == "musicgen_melody"
            cls: Any = (
                MusicgenMelodyForConditionalGeneration
                if self.is_melody
                else MusicgenForConditionalGeneration
            )
            model = cls.from_pretrained(weights_dir, local_files_only=True, dtype=self.dtype)
            self.tokenizer = AutoTokenizer.from_pretrained(weights_dir, local_files_only=True)
        except OSError as exc:  # a file the checkpoint needs is missing
            raise ModelWeightsMissingError(f"{card.id}: {exc}") from exc
        self.model = model.to(self.device).eval()
        audio_cfg = config.audio_encoder
        self.sample_rate = int(audio_cfg.sampling_rate)
        self.frame_rate = int(audio_cfg.frame_rate)  # codec frames (tokens) per second
        self.hop = int(np.prod(audio_cfg.upsampling_ratios))
        self.num_codebooks = int(config.decoder.num_codebooks)
        self.channels = int(config.decoder.audio_channels)
        self.max_duration_s = card.max_duration_s
        self.capabilities = Capabilities(
            melody=self.is_melody,
            stems=False,
            native_loops=False,
            reference_audio=self.is_melody,
            max_window_s=card.max_window_s,
        )
        self.chroma_hop, self.chroma_n_fft = CHROMA_HOP, CHROMA_N_FFT
        preprocessor = weights_dir / "preprocessor_config.json"
        if preprocessor.is_file():
            pre = json.loads(preprocessor.read_text())
            self.chroma_hop = int(pre.get("hop_length", CHROMA_HOP))
            self.chroma_n_fft = int(pre.get("n_fft", CHROMA_N_FFT))
        self.chroma_rate = CHROMA_SAMPLE_RATE / self.chroma_hop
        self.sampling = {"guidance_scale": 3.0, "top_k": 250, "temperature": 1.0}
        self.sampling.update(card.sampling)
        self._lock = threading.Lock()

    # -- public API ---------------------------------------------------------------------------

    def generate(
        self, tokens: ControlTokens, progress: ProgressCallback | None = None
    ) -> GeneratedAudio:
        """Render `tokens` to exactly round(duration_s * sample_rate) frames at the model's rate.

        Raises:
            UnsupportedControlsError: duration out of range, or a melody for a text-only model.
        """
        return self.generate_batch([tokens], progress)[0]

    def batch_key(self, tokens: ControlTokens) -> tuple[object, ...]:
        """Requests with equal keys can share one `generate_batch` call."""
        return (tokens.model_id, round(tokens.duration_s, 3), self._conditioning(tokens))

    def generate_batch(
        self, batch: Sequence[ControlTokens], progress: ProgressCallback | None = None
    ) -> list[GeneratedAudio]:
        """Render compatible requests (same `batch_key`) in one pass; each keeps its own seed."""
        if not batch:
            return []
        for tokens in batch:
            self._validate(tokens)
        if len({self.batch_key(t) for t in batch}) != 1:
            raise ValueError("generate_batch needs one duration and one kind of conditioning")
        with self._lock, self._torch.inference_mode():
            audio = self._render(list(batch), progress)
        return [GeneratedAudio(samples=a, sample_rate=self.sample_rate) for a in audio]

    # -- internals ----------------------------------------------------------------------------

    def _conditioning(self, tokens: ControlTokens) -> str:
        if tokens.melody_chroma:
            return "melody"
        if tokens.reference is not None and self.is_melody:
            return "reference"
        return "text"

    def _validate(self, tokens: ControlTokens) -> None:
        if not (0.0 < tokens.duration_s <= self.max_duration_s):
            raise UnsupportedControlsError(
                f"{self.model_id}: duration_s must be in (0, {self.max_duration_s:g}], "
                f"got {tokens.duration_s}"
            )
        if (tokens.melody or tokens.melody_chroma) and not self.is_melody:
            raise UnsupportedControlsError(
                f"{self.model_id} is text-only and cannot follow a melody; "
                "use a melody model (e.g. musicgen-melody)"
            )
        if tokens.melody and not tokens.melody_chroma:
            raise UnsupportedControlsError(
                f"{self.model_id}: the melody has no melody_chroma (normalize the request first)"
            )
        if not (0 < tokens.tempo_bpm < 1000):
            raise UnsupportedControlsError(f"tempo_bpm must be positive, got {tokens.tempo_bpm}")

    def _chroma(self, tokens: ControlTokens, n_frames: int) -> np.ndarray | None:
        kind = self._conditioning(tokens)
        if kind == "melody":
            return melody_chroma_frames(tokens, self.chroma_rate, n_frames)
        if kind == "reference":
            assert tokens.reference is not None
            samples, rate = self.reference_loader(tokens.reference.uri)
            chroma = audio_chroma_frames(samples, rate, self.chroma_hop, self.chroma_n_fft)
            if len(chroma) < n_frames:  # loop a short reference, as audiocraft does
                chroma = np.tile(chroma, (math.ceil(n_frames / len(chroma)), 1))
            return chroma[:n_frames]
        return None

    def _render(
        self, batch: list[ControlTokens], progress: ProgressCallback | None
    ) -> list[np.ndarray]:
        torch = self._torch
        duration = batch[0].duration_s
        n_samples = round(duration * self.sample_rate)
        total_frames = math.ceil(n_samples / self.hop)
        window_frames = max(1, int(self.card.max_window_s * self.frame_rate))
        overlap_frames = int(self.card.window_overlap_s * self.frame_rate)
        windows = plan_windows(total_frames, window_frames, overlap_frames)

        text = self.tokenizer(
            [build_prompt(t) for t in batch], return_tensors="pt", padding=True
        ).to(self.device)
        n_chroma = math.ceil(duration * self.chroma_rate) + 1
        chromas = [self._chroma(t, n_chroma) for t in batch]
        sampler = _SeededSampler(
            [t.seed for t in batch],
            top_k=int(self.sampling["top_k"]),
            temperature=float(self.sampling["temperature"]),
        )
        total_steps = sum(w.new_frames + self.num_codebooks - 1 for w in windows)
        # Progress counts decoding steps in the sampler: transformers' streamer may defer
        # its per-step puts to the end of generate().
        sampler.progress = _StepProgress(progress, total_steps)

        out = np.zeros((len(batch), self.channels, 0), dtype=np.float32)
        start_frame = 0  # codec frame at which the current window's sequence starts
        for window in windows:
            start_frame = out.shape[2] // self.hop - window.prompt_frames
            kwargs: dict[str, Any] = {}
            if window.prompt_frames:
                tail = out[:, :, -window.prompt_frames * self.hop :]
                codes = self.model.audio_encoder.encode(
                    torch.from_numpy(np.ascontiguousarray(tail)).to(self.device, self.dtype)
                ).audio_codes  # (chunks=1, batch, codebooks, frames)
                kwargs["decoder_input_ids"] = codes[0].reshape(len(batch) * self.num_codebooks, -1)
            if chromas[0] is not None:
                c0 = int(start_frame * self.hop / self.sample_rate * self.chroma_rate)
                c1 = c0 + math.ceil(
                    (window.prompt_frames + window.new_frames) / self.frame_rate * self.chroma_rate
                )
                c1 = max(c1, c0 + 1)
                window_chroma = np.stack([c[c0:c1] for c in chromas if c is not None])
                kwargs["input_features"] = torch.from_numpy(window_chroma).to(
                    self.device, self.dtype
                )
            # The delay pattern needs num_codebooks - 1 extra steps to complete the last frame.
            steps = window.new_frames + self.num_codebooks - 1
            values = self.model.generate(
                input_ids=text.input_ids,
                attention_mask=text.attention_mask,
                max_new_tokens=steps,
                do_sample=False,  # sampling happens in _SeededSampler (Gumbel-max)
                guidance_scale=float(self.sampling["guidance_scale"]),
                logits_processor=_GuidanceFirst([sampler]),
                **kwargs,
            )
            audio = values.float().cpu().numpy()  # (batch, channels, samples)
            prompt_n = window.prompt_frames * self.hop
            new_n = window.new_frames * self.hop
            if audio.shape[2] < prompt_n + new_n:  # codec edge effects: pad rather than fail
                audio = np.pad(audio, ((0, 0), (0, 0), (0, prompt_n + new_n - audio.shape[2])))
            if prompt_n:
                fade = np.linspace(0.0, 1.0, prompt_n, dtype=np.float32)
                out[:, :, -prompt_n:] = (
                    out[:, :, -prompt_n:] * (1.0 - fade) + audio[:, :, :prompt_n] * fade
                )
            out = np.concatenate([out, audio[:, :, prompt_n : prompt_n + new_n]], axis=2)
        if progress is not None:
            progress(1.0)
        out = np.clip(out[:, :, :n_samples], -1.0, 1.0)
        return [np.ascontiguousarray(a.T, dtype=np.float32) for a in out]


def _transformers_types() -> tuple[type, type, type]:
    from transformers import LogitsProcessor, LogitsProcessorList
    from transformers.generation.logits_process import ClassifierFreeGuidanceLogitsProcessor

    return LogitsProcessor, LogitsProcessorList, ClassifierFreeGuidanceLogitsProcessor


_LogitsProcessor, _LogitsProcessorList, _CFG = _transformers_types()


class _GuidanceFirst(_LogitsProcessorList):  # type: ignore[misc,valid-type]
    """MusicGen's generate appends its classifier-free-guidance processor to the caller's list;
    it must run first (it halves the doubled cond/uncond batch), so put it in front."""

    def append(self, processor: Any) -> None:
        if isinstance(processor, _CFG):
            self.insert(0, processor)
        else:
            super().append(processor)


class _SeededSampler(_LogitsProcessor):  # type: ignore[misc,valid-type]
    """Temperature + top-k + Gumbel noise from one CPU generator per request (see module doc)."""

    def __init__(self, seeds: list[int], *, top_k: int, temperature: float) -> None:
        import torch

        self._torch = torch
        self.generators = [torch.Generator().manual_seed(int(s) & (2**63 - 1)) for s in seeds]
        self.top_k = top_k
        self.temperature = max(temperature, 1e-5)
        self.progress: _StepProgress | None = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        torch = self._torch
        if self.progress is not None:
            self.progress.step()
        rows, vocab = scores.shape
        per = rows // len(self.generators)  # one row per codebook of each request
        logits = scores.float() / self.temperature
        if 0 < self.top_k < vocab:
            kth = torch.topk(logits, self.top_k, dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        uniform = torch.cat(
            [torch.rand((per, vocab), generator=g) for g in self.generators]
        ).clamp_(1e-20, 1.0 - 1e-7)
        gumbel = -torch.log(-torch.log(uniform))
        return logits + gumbel.to(logits.device)


class _StepProgress:
    """Counts decoding steps across windows and reports the fraction done (at most 100 calls)."""

    def __init__(self, callback: ProgressCallback | None, total_steps: int) -> None:
        self.callback = callback
        self.total = max(1, total_steps)
        self.steps = 0
        self._last = -1.0

    def step(self) -> None:
        self.steps += 1
        fraction = min(self.steps / self.total, 0.999)
        if self.callback is not None and fraction - self._last >= 0.01:
            self._last = fraction
            self.callback(fraction)
