"""SoundFont rendering of a `Composition` with TinySoundFont, plus a light convolution reverb.

Songs are peak-normalized and faded at both ends; loops are rendered with a tail that is
folded onto their start (no fades), so they repeat seamlessly; stems are rendered one group
at a time and share one gain, so they sum to the mix.

A renderer loads its SoundFont once and is reused for many jobs; every render starts by
resetting the synthesizer so no voice, controller or program leaks from the previous job.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pretty_midi
import scipy.fft
import scipy.signal
import tinysoundfont

from activities.inference.draft.accompaniment import CLOSED_HAT, KICK, SNARE
from activities.inference.draft.composer import Composition
from activities.inference.draft.parts import DRUM_CHANNEL, Part

DEFAULT_SOUNDFONT = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
TARGET_PEAK = 0.891  # -1 dBFS: headroom for later resampling and encoding
_BYTES_PER_FRAME = 2 * 4  # stereo float32
_FLUSH_FRAMES = 4096  # > tsf's 10 ms fast release at any common sample rate
# A loop renders this much past its end, then folds it onto its start: longer than any
# release plus the reverb's 1.4 s decay, so nothing audible is cut at the seam.
LOOP_TAIL_S = 3.0
# Energy 0 is rendered this much quieter than energy 1 (after peak normalization).
ENERGY_TRIM_DB = 6.0
_REFERENCE_DB = -30.0  # calibrated test-note level; absolute level is set by normalization

# Event ordering within one frame: note-offs before note-ons, so a note re-struck at the
# instant it ends is not cut off by its own release.
_OFF, _ON = 0, 1


class _Reverb:
    """Streaming overlap-add convolution with a fixed, seeded synthetic room response."""

    def __init__(self, sample_rate: int, block: int, rt60_s: float = 1.4, mix: float = 0.2):
        rng = np.random.default_rng(20240501)  # fixed: the room must never change
        length = int(rt60_s * sample_rate)
        t = np.arange(length) / sample_rate
        noise = rng.standard_normal((length, 2))
        # Exponential decay to -60 dB at rt60, darkened so the tail does not hiss.
        ir = noise * np.exp(-6.91 * t / rt60_s)[:, None]
        b, a = scipy.signal.butter(1, 5000 / (sample_rate / 2))
        ir = scipy.signal.lfilter(b, a, ir, axis=0)
        ir[: int(0.012 * sample_rate)] = 0.0  # pre-delay keeps attacks dry and clear
        ir /= np.sqrt(np.sum(ir**2, axis=0, keepdims=True))
        self.block = block
        self.mix = mix
        self._tail_len = length - 1
        self._n_fft = scipy.fft.next_fast_len(block + length - 1, real=True)
        self._ir_f = scipy.fft.rfft(ir, self._n_fft, axis=0)
        self._acc = np.zeros((block + self._tail_len, 2))

    def reset(self) -> None:
        self._acc[:] = 0.0

    def process(self, dry: np.ndarray) -> np.ndarray:
        """Return the wet signal for the next `len(dry) <= block` frames."""
        n = len(dry)
        wet = scipy.fft.irfft(
            scipy.fft.rfft(dry, self._n_fft, axis=0) * self._ir_f, self._n_fft, axis=0
        )
        self._acc[: n + self._tail_len] += wet[: n + self._tail_len]
        out = self._acc[:n].copy()
        self._acc[: -n or None] = self._acc[n:].copy()
        self._acc[-n:] = 0.0
        return out * self.mix


class SoundFontRenderer:
    """Renders compositions to stereo float32 audio with one preloaded SoundFont.

    Not thread-safe: one synthesizer holds the state of the render in progress.
    """

    def __init__(
        self,
        soundfont_path: Path = DEFAULT_SOUNDFONT,
        sample_rate: int = 44100,
        max_voices: int = 256,
        reverb: bool = True,
    ) -> None:
        """Load the SoundFont.

        Raises:
            FileNotFoundError: the SoundFont file does not exist.
        """
        path = Path(soundfont_path)
        if not path.is_file():
            raise FileNotFoundError(f"SoundFont not found: {path}")
        self.sample_rate = sample_rate
        self.block_frames = sample_rate  # one second: the progress and reverb granularity
        started = time.perf_counter()
        self._synth = tinysoundfont.Synth(samplerate=sample_rate)
        self._sfid = self._synth.sfload(str(path), max_voices=max_voices)
        self.load_seconds = time.perf_counter() - started
        self._reverb = _Reverb(sample_rate, self.block_frames) if reverb else None
        self._loudness: dict[tuple[int, int], float] = {}
        self._scratch = memoryview(bytearray(_FLUSH_FRAMES * _BYTES_PER_FRAME))

    def _silence(self) -> None:
        """Return the synth to its just-loaded state, so renders are bit-identical per job.

        tsf's reset frees all channel state (programs, volumes, controllers) but only starts a
        10 ms fast release on sounding voices; rendering past it retires them for good.
        """
        self._synth.soundfonts[self._sfid].reset()
        self._synth.generate_simple(_FLUSH_FRAMES, buffer=self._scratch)

    def _loudness_db(self, program: int, is_drum: bool, pitch: int) -> float:
        """RMS level (dBFS) of one preset playing a test note, cached per (program, pitch).

        TimGM6mb's presets differ by 15 dB and more (a flute drowns a piano), so each part is
        trimmed by this before its mix level applies.
        """
        key = (-1 if is_drum else program, pitch)
        if key not in self._loudness:
            self._silence()
            ch = DRUM_CHANNEL if is_drum else 0
            self._synth.program_select(ch, self._sfid, 0, 0 if is_drum else program, is_drum)
            frames = int(0.4 * self.sample_rate)
            buf = np.zeros((frames, 2), dtype=np.float32)
            hits = (KICK, SNARE, CLOSED_HAT) if is_drum else (pitch,)
            step = frames // len(hits)
            view = memoryview(buf).cast("B")  # type: ignore[arg-type]  # numpy arrays are buffers
            for j, note in enumerate(hits):
                self._synth.noteon(ch, note, 100)
                self._synth.generate_simple(
                    step,
                    buffer=view[j * step * _BYTES_PER_FRAME : (j + 1) * step * _BYTES_PER_FRAME],
                )
            rms = float(np.sqrt(np.mean(buf.astype(np.float64) ** 2)))
            self._loudness[key] = 20.0 * np.log10(max(rms, 1e-6))
        return self._loudness[key]

    def _reset(self, parts: Sequence[Part]) -> None:
        gains = {}
        for part in parts:
            drums = part.channel == DRUM_CHANNEL
            pitches = sorted(n.pitch for n in part.notes) or [60]
            measured = self._loudness_db(part.instrument.program, drums, pitches[len(pitches) // 2])
            # Clamped so a near-silent or broken preset cannot be boosted into noise.
            trim_db = float(np.clip(_REFERENCE_DB - measured, -24.0, 24.0))
            gains[part.channel] = 10.0 ** ((trim_db + part.level_db) / 20.0)
        self._silence()
        sf = self._synth.soundfonts[self._sfid]
        for part in parts:
            ch = part.channel
            drums = ch == DRUM_CHANNEL
            program = 0 if drums else part.instrument.program
            self._synth.program_select(ch, self._sfid, 0, program, is_drums=drums)
            sf.channel_set_volume(ch, gains[ch])
            sf.channel_set_pan(ch, 0.5 + 0.5 * part.pan)
        if self._reverb is not None:
            self._reverb.reset()

    def _events(self, parts: Sequence[Part], n_frames: int) -> list[tuple[int, int, int, int, int]]:
        sr = self.sample_rate
        events: list[tuple[int, int, int, int, int]] = []  # (frame, order, channel, key, vel)
        for part in parts:
            for note in part.notes:
                on = round(note.start_s * sr)
                off = max(on + 1, round(note.end_s * sr))
                if on >= n_frames:
                    continue
                events.append((on, _ON, part.channel, note.pitch, note.velocity))
                events.append((off, _OFF, part.channel, note.pitch, 0))
        events.sort()
        return events

    def render(
        self,
        composition: Composition,
        n_frames: int,
        progress: Callable[[float], None] | None = None,
        *,
        loop: bool | None = None,
        tail_s: float = LOOP_TAIL_S,
    ) -> np.ndarray:
        """Render exactly `n_frames` stereo float32 frames, peak-normalized.

        A song is faded at its very ends. A loop (`loop`, default `composition.loop`) is
        rendered `tail_s` longer, the sound ringing past its end (release and reverb) is added
        back onto its start, and it is not faded: played in a cycle it has no seam.
        `progress` receives increasing fractions after every rendered block (1 s of audio)
        and 1.0 when done.
        """
        mix, _ = self._render(composition, n_frames, progress, False, loop, tail_s)
        return mix

    def render_stems(
        self,
        composition: Composition,
        n_frames: int,
        progress: Callable[[float], None] | None = None,
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The mix and one stem per group of `composition.stem_parts()`, each rendered alone.

        Everything after the split is linear and the same for every stem (one gain, the same
        fades), and the mix is their float64 sum: the stems add up to the mix.
        """
        mix, stems = self._render(composition, n_frames, progress, True, None, LOOP_TAIL_S)
        return mix, stems

    def _render(
        self,
        composition: Composition,
        n_frames: int,
        progress: Callable[[float], None] | None,
        split: bool,
        loop: bool | None,
        tail_s: float,
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        looping = composition.loop if loop is None else loop
        tail = round(max(0.0, tail_s) * self.sample_rate) if looping else 0
        groups = composition.stem_parts() if split else {"mix": composition.parts}
        if not groups:
            groups = {"mix": ()}
        total = n_frames + tail
        work = max(1, total * len(groups))
        raws: dict[str, np.ndarray] = {}
        for g_i, (name, parts) in enumerate(groups.items()):
            done = g_i * total

            def report(frames: int, done: int = done) -> None:
                if progress is not None:
                    progress(0.99 * (done + frames) / work)

            raw = self._render_parts(parts, n_frames, total, report)
            raws[name] = _fold(raw, n_frames) if tail else raw
        if split:
            mix_raw = np.zeros((n_frames, 2), dtype=np.float64)
            for raw in raws.values():
                mix_raw += raw
        else:
            mix_raw = raws["mix"]
        peak = float(np.max(np.abs(mix_raw))) if n_frames else 0.0
        # Softer music is rendered softer, not only sparser (the level of `layers` matters).
        gain = TARGET_PEAK / peak if peak > 0.0 else 1.0
        gain *= 10.0 ** (-ENERGY_TRIM_DB * (1.0 - composition.energy) / 20.0)
        fades = None if looping else _fades(n_frames, self.sample_rate)
        if not split:
            out = raws["mix"]
            out *= np.float32(gain)
            if fades is not None:
                _apply_fades(out, *fades)
            if progress is not None:
                progress(1.0)
            return out, {}
        stems: dict[str, np.ndarray] = {}
        mix = np.zeros((n_frames, 2), dtype=np.float64)
        for name, raw in raws.items():
            stem = raw * np.float32(gain)
            if fades is not None:
                _apply_fades(stem, *fades)
            stems[name] = stem
            mix += stem  # float64: the mix is the stems' exact sum, rounded once
        if progress is not None:
            progress(1.0)
        return mix.astype(np.float32), stems

    def _render_parts(
        self,
        parts: Sequence[Part],
        n_notes: int,
        n_frames: int,
        progress: Callable[[int], None],
    ) -> np.ndarray:
        """Synthesize `parts` (notes starting before frame `n_notes`) plus reverb, unscaled."""
        self._reset(parts)
        out = np.zeros((n_frames, 2), dtype=np.float32)
        view = memoryview(out).cast("B")  # type: ignore[arg-type]
        events = self._events(parts, n_notes)
        synth, block = self._synth, self.block_frames
        i, pos, block_start = 0, 0, 0
        while pos < n_frames:
            while i < len(events) and events[i][0] <= pos:
                _, kind, ch, key, vel = events[i]
                if kind == _ON:
                    synth.noteon(ch, key, vel)
                else:
                    synth.noteoff(ch, key)
                i += 1
            block_end = min(n_frames, block_start + block)
            end = min(block_end, events[i][0] if i < len(events) else n_frames)
            synth.generate_simple(
                end - pos, buffer=view[pos * _BYTES_PER_FRAME : end * _BYTES_PER_FRAME]
            )
            pos = end
            if pos == block_end:
                if self._reverb is not None:
                    dry = out[block_start:block_end].astype(np.float64)
                    out[block_start:block_end] = dry + self._reverb.process(dry)
                block_start = block_end
                if pos < n_frames:
                    progress(pos)
        synth.notes_off()
        return out


def _fold(raw: np.ndarray, n: int) -> np.ndarray:
    """A loop of `n` frames from a longer render: what rang past the end wraps to the start."""
    out = raw[:n].copy()
    for k in range(1, -(-len(raw) // max(1, n))):
        seg = raw[k * n : (k + 1) * n]
        out[: len(seg)] += seg
    return out


def _fades(n: int, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Short fades so a song starts and ends without clicks: (fade-in ramp, fade-out ramp)."""
    fade_in = min(n, 64)
    fade_out = min(n, max(1, int(min(0.5, 0.1 * n / sample_rate) * sample_rate)))
    # Raised cosine: no slope discontinuity where the fade begins.
    ramp_out = 0.5 * (1.0 + np.cos(np.linspace(0.0, np.pi, fade_out)))
    return np.linspace(0.0, 1.0, fade_in), ramp_out


def _apply_fades(out: np.ndarray, ramp_in: np.ndarray, ramp_out: np.ndarray) -> None:
    n = len(out)
    out[: len(ramp_in)] *= ramp_in.astype(out.dtype)[:, None]
    out[n - len(ramp_out) :] *= ramp_out.astype(out.dtype)[:, None]
