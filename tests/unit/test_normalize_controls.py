"""Request → ControlTokens: open controls, templates, melody, reference, products, bad input."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from activities.controls.inputs import analyse_local_inputs
from activities.controls.midi import parse_midi
from activities.controls.normalize import ControlInputs, normalize_request
from activities.controls.reference import analyse_reference
from schemas.errors import InvalidRequestError

BUCKET = "tunesmith-inputs"


def midi_bytes(
    pitches: list[int], *, tempo: float = 100.0, beats_each: float = 1.0, numerator: int = 4
) -> bytes:
    """A one-track melody, one note per `beats_each` quarter notes, in the given meter."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(numerator, 4, 0.0))
    inst = pretty_midi.Instrument(program=73, name="flute")
    beat = 60.0 / tempo
    for i, pitch in enumerate(pitches):
        start = i * beats_each * beat
        inst.notes.append(pretty_midi.Note(96, pitch, start, start + 0.9 * beats_each * beat))
    pm.instruments.append(inst)
    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue()


D_MINOR_TUNE = [62, 64, 65, 67, 69, 65, 62, 61, 62, 69, 70, 69, 67, 65, 64, 62]


def test_defaults_fill_open_controls() -> None:
    _, t = normalize_request({"prompt": "x"})
    assert (t.tempo_bpm, t.key_name, t.meter, t.duration_s, t.product) == (
        120.0, "C major", "4/4", 30.0, "track",
    )  # fmt: skip
    assert [i.name for i in t.instruments] == ["piano", "bass", "drums"]
    assert t.controls_version == "controls-2"


def test_same_request_same_tokens() -> None:
    request = {"prompt": "x", "template": "lofi-loop", "meter": "3/4", "seed": 4}
    assert normalize_request(request)[1] == normalize_request(dict(request))[1]


def test_mood_sets_energy_and_mode_unless_explicit() -> None:
    _, dark = normalize_request({"prompt": "x", "mood": "Dark"})
    assert dark.mood == "dark" and dark.mode == "minor" and dark.energy == 0.5
    _, explicit = normalize_request({"prompt": "x", "mood": "dark", "key": "D major",
                                     "energy": 0.9})  # fmt: skip
    assert explicit.key_name == "D major" and explicit.energy == 0.9


def test_instrument_families_expand() -> None:
    _, t = normalize_request({"prompt": "x", "instruments": ["string-quartet", "Drums"]})
    assert [i.name for i in t.instruments] == ["violin", "viola", "cello", "drums"]


@pytest.mark.parametrize(
    ("meter", "tempo", "duration", "bars", "seconds"),
    [
        ("4/4", 120.0, 10.0, 5, 10.0),  # 2 s bars
        ("4/4", 120.0, 10.9, 5, 10.0),  # rounds to the nearest whole bar
        ("4/4", 120.0, 11.1, 6, 12.0),
        ("6/8", 100.0, 10.0, 6, 10.8),  # 1.8 s bars
        ("3/4", 90.0, 0.5, 1, 2.0),  # at least one bar
    ],
)
def test_loops_are_whole_bars(
    meter: str, tempo: float, duration: float, bars: int, seconds: float
) -> None:
    _, t = normalize_request({"prompt": "x", "product": "loop", "meter": meter,
                              "tempo_bpm": tempo, "duration_s": duration})  # fmt: skip
    assert t.loop and t.bars == bars
    assert t.duration_s == pytest.approx(seconds)


def test_layers_default_and_order() -> None:
    _, t = normalize_request({"prompt": "x", "product": "layers"})
    assert [layer.name for layer in t.layers] == ["calm", "tense", "combat"]
    _, t = normalize_request({"prompt": "x", "product": "layers", "layers": ["boss", "Ambient"]})
    assert [(layer.name, layer.energy) for layer in t.layers] == [("ambient", 0.15), ("boss", 1.0)]


def test_template_renders_prompt_and_defaults_and_explicit_wins() -> None:
    _, t = normalize_request({"template": "podcast-intro", "variables": {"brand": "Acme"}})
    assert "Acme" in t.prompt
    assert (t.template_id, t.template_version) == ("podcast-intro", 2)
    _, pinned = normalize_request({"template": "podcast-intro@1", "variables": {"brand": "A"},
                                   "tempo_bpm": 140, "prompt": "with bells"})  # fmt: skip
    assert pinned.template_version == 1 and pinned.tempo_bpm == 140
    assert pinned.prompt.endswith("with bells")


@pytest.mark.parametrize(
    ("request_data", "message"),
    [
        ({"template": "no-such-template"}, "unknown template"),
        ({"template": "podcast-intro"}, "brand"),
        ({"template": "podcast-intro", "variables": {"brand": "x", "colour": "red"}}, "colour"),
        ({"prompt": "x", "variables": {"a": "b"}}, "only used with a template"),
        ({"prompt": "x", "meter": "0/4"}, "beats per bar"),
        ({"prompt": "x", "meter": "7/3"}, "beat unit"),
        ({"prompt": "x", "meter": "fast"}, "time signature"),
        ({"prompt": "x", "mood": "grumpy"}, "unknown mood"),
        ({"prompt": "x", "structure": ["intro", "solo"]}, "solo"),
        ({"prompt": "x", "layers": ["calm"]}, "only for product 'layers'"),
        ({"prompt": "x", "product": "layers", "layers": ["calm", "calm"]}, "repeat"),
        ({"prompt": "x", "product": "layers", "layers": ["medium"]}, "unknown layer"),
        ({"prompt": "x", "instruments": ["kazoo"]}, "kazoo"),
        ({"prompt": "x", "midi": "/tmp/tune.mid"}, "s3://"),
        ({"prompt": "x", "energy": 1.5}, "energy"),
        ({"prompt": "x", "product": "loop", "duration_s": 900}, "limit"),
        ({"prompt": "x", "model": "no-such-model"}, "unknown model"),
        ({"prompt": "x", "model": "musicgen-small", "product": "stems"}, "cannot render stems"),
        ({"prompt": "x", "model": "stable-audio-open-1.0", "duration_s": 60}, "limit of 47"),
        ({"prompt": "x", "model": "Bad Id"}, "model"),
    ],
)
def test_bad_requests_fail_with_clear_errors(request_data: dict, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        normalize_request(request_data)


def test_named_inputs_must_be_loaded() -> None:
    with pytest.raises(InvalidRequestError, match="not loaded"):
        normalize_request({"prompt": "x", "midi": "s3://tunesmith-inputs/midi/abc.mid"})


def _melody_inputs(data: bytes) -> tuple[dict, ControlInputs]:
    return {"prompt": "x", "midi": "s3://tunesmith-inputs/midi/t.mid"}, ControlInputs(
        melody=parse_midi(data)
    )


def test_melody_fills_tempo_meter_key_and_duration() -> None:
    request, inputs = _melody_inputs(midi_bytes(D_MINOR_TUNE, tempo=100.0, numerator=3))
    _, t = normalize_request(request, inputs)
    assert t.tempo_bpm == pytest.approx(100.0)
    assert t.meter == "3/4"
    assert t.key_name == "D minor"
    assert [n.pitch for n in t.melody] == D_MINOR_TUNE
    # 16 beats of melody = 6 bars of 3/4 (rounded up) + one bar to end on.
    assert t.bars == 7 and t.duration_s == pytest.approx(7 * 3 * 0.6)
    assert len(t.melody_chroma) == round(t.duration_s / 0.6 * 4)
    assert t.melody_chroma[0] == 2  # D


def test_melody_transposed_into_requested_key_only_when_asked() -> None:
    request, inputs = _melody_inputs(midi_bytes(D_MINOR_TUNE))
    with pytest.raises(InvalidRequestError, match=r"contradictory controls.*transpose_melody"):
        normalize_request({**request, "key": "E minor"}, inputs)
    _, t = normalize_request({**request, "key": "E minor", "transpose_melody": True}, inputs)
    assert t.melody_transpose == 2
    assert [n.pitch for n in t.melody] == [p + 2 for p in D_MINOR_TUNE]
    # The relative major uses the same notes: no transposition needed, none applied.
    _, rel = normalize_request({**request, "key": "F major"}, inputs)
    assert rel.melody_transpose == 0 and rel.key_name == "F major"


def test_melody_needs_a_model_that_follows_one() -> None:
    request, inputs = _melody_inputs(midi_bytes(D_MINOR_TUNE))
    with pytest.raises(InvalidRequestError, match="cannot follow a MIDI melody"):
        normalize_request({**request, "model": "musicgen-small"}, inputs)
    _, t = normalize_request({**request, "model": "musicgen-melody"}, inputs)
    assert t.model_id == "musicgen-melody" and t.melody_chroma


def test_tiers_resolve_to_configured_models(monkeypatch: pytest.MonkeyPatch) -> None:
    from activities.models.settings import get_model_settings

    monkeypatch.setenv("TUNESMITH_FINAL_MODEL", "musicgen-small")
    get_model_settings.cache_clear()
    try:
        assert normalize_request({"prompt": "x", "tier": "final"})[1].model_id == "musicgen-small"
        assert normalize_request({"prompt": "x"})[1].model_id == "draft"
    finally:
        get_model_settings.cache_clear()


def test_melody_longer_than_track_is_contradictory() -> None:
    request, inputs = _melody_inputs(midi_bytes(D_MINOR_TUNE, tempo=100.0))
    with pytest.raises(InvalidRequestError, match=r"melody is 15.9 beats .* only 8.3+ beats"):
        normalize_request({**request, "duration_s": 5.0}, inputs)


def _tone_file(path: Path, *, seconds: float = 8.0, bpm: float = 100.0) -> Path:
    """A-minor arpeggio on the beat with a click track: clear tempo and key."""
    rate = 22050
    t = np.arange(int(seconds * rate)) / rate
    y = np.zeros_like(t)
    beat = 60.0 / bpm
    for i, midi in enumerate([57, 60, 64, 69] * int(seconds / beat / 4 + 1)):
        start = int(i * beat * rate)
        if start >= len(t):
            break
        n = min(len(t) - start, int(0.9 * beat * rate))
        env = np.exp(-np.arange(n) / (0.3 * rate))
        y[start : start + n] += 0.3 * env * np.sin(2 * np.pi * 440 * 2 ** ((midi - 69) / 12)
                                                   * np.arange(n) / rate)  # fmt: skip
        y[start : start + 200] += 0.5 * np.random.default_rng(i).standard_normal(200)
    sf.write(path, y, rate)
    return path


def test_reference_fills_only_open_controls(tmp_path: Path) -> None:
    path = _tone_file(tmp_path / "ref.wav")
    uri = f"s3://{BUCKET}/reference/x.wav"
    summary = analyse_reference(path, uri)
    inputs = ControlInputs(reference=summary)
    _, t = normalize_request({"prompt": "x", "reference": uri}, inputs)
    assert t.reference is not None and t.reference.filled == ["tempo_bpm", "key"]
    assert t.tempo_bpm == pytest.approx(summary.tempo_bpm)
    assert t.key_name == summary.key
    _, explicit = normalize_request(
        {"prompt": "x", "reference": uri, "tempo_bpm": 140, "key": "E major"}, inputs
    )
    assert explicit.tempo_bpm == 140 and explicit.key_name == "E major"
    assert explicit.reference is not None and explicit.reference.filled == []


def test_local_inputs_are_checked_before_upload(tmp_path: Path) -> None:
    good = tmp_path / "tune.mid"
    good.write_bytes(midi_bytes(D_MINOR_TUNE))
    fields, inputs = analyse_local_inputs(good, None, BUCKET)
    assert fields["midi"].startswith(f"s3://{BUCKET}/midi/") and fields["midi"].endswith(".mid")
    assert inputs.melody is not None and inputs.melody.note_count == len(D_MINOR_TUNE)
    corrupt = tmp_path / "corrupt.mid"
    corrupt.write_bytes(b"MThd not really a midi file")
    with pytest.raises(InvalidRequestError, match="MIDI"):
        analyse_local_inputs(corrupt, None, BUCKET)
    huge = tmp_path / "huge.mid"
    huge.write_bytes(b"\0" * (2 * 2**20))
    with pytest.raises(InvalidRequestError, match="limit"):
        analyse_local_inputs(huge, None, BUCKET)
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio")
    with pytest.raises(InvalidRequestError, match="audio"):
        analyse_local_inputs(None, text, BUCKET)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(22050 * 5), 22050)
    with pytest.raises(InvalidRequestError, match="silent"):
        analyse_local_inputs(None, silent, BUCKET)
    with pytest.raises(InvalidRequestError, match="no such file"):
        analyse_local_inputs(tmp_path / "missing.mid", None, BUCKET)
