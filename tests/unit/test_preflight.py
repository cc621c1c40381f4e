"""The SDK's pre-flight: the activity's own checks, minus everything a deployment configures."""

from __future__ import annotations

from pathlib import Path

import pytest

from activities.controls.normalize import check_controls
from activities.models.settings import get_model_settings
from infra.settings import Settings
from schemas.errors import InvalidRequestError
from tests.unit.test_normalize_controls import D_MINOR_TUNE, _melody_inputs, midi_bytes
from tunesmith.preflight import check_request

SETTINGS = Settings()  # no store is made: local files only


@pytest.mark.parametrize(
    "request_data",
    [
        {"prompt": "x", "model": "no-such-model"},
        {"prompt": "x", "model": "musicgen-small", "product": "stems"},
        {"prompt": "x", "model": "stable-audio-open-1.0", "duration_s": 60},
    ],
)
def test_what_only_the_workers_know_is_left_to_them(request_data: dict) -> None:
    assert check_controls(request_data).model == request_data["model"]


def test_the_clients_tier_settings_are_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNESMITH_FINAL_MODEL", "no-such-model")
    get_model_settings.cache_clear()
    try:
        checked = check_request({"prompt": "x", "tier": "final"}, settings=SETTINGS)
    finally:
        get_model_settings.cache_clear()
    assert checked.request.tier.value == "final" and checked.midi is None


def test_contradictions_and_templates_are_still_refused() -> None:
    request, inputs = _melody_inputs(midi_bytes(D_MINOR_TUNE))
    with pytest.raises(InvalidRequestError, match="contradictory controls"):
        check_controls({**request, "key": "E minor"}, inputs)
    with pytest.raises(InvalidRequestError, match="melody is"):
        check_controls({**request, "duration_s": 3.0}, inputs)
    with pytest.raises(InvalidRequestError, match="brand"):
        check_controls({"template": "podcast-intro"})


def test_local_files_are_checked_and_named_by_their_upload_uri(tmp_path: Path) -> None:
    tune = tmp_path / "tune.mid"
    tune.write_bytes(midi_bytes(D_MINOR_TUNE))
    checked = check_request({"prompt": "x"}, midi=tune, settings=SETTINGS)
    assert checked.midi == tune
    assert (checked.request.midi or "").startswith(f"s3://{SETTINGS.inputs_bucket}/midi/")
    with pytest.raises(InvalidRequestError, match="melody is"):
        check_request({"prompt": "x", "duration_s": 3.0}, midi=tune, settings=SETTINGS)
    with pytest.raises(InvalidRequestError, match="not both"):
        check_request({"prompt": "x", "midi": "s3://tunesmith-inputs/midi/a.mid"}, midi=tune,
                      settings=SETTINGS)  # fmt: skip
    with pytest.raises(InvalidRequestError, match="no such file"):
        check_request({"prompt": "x"}, midi=tmp_path / "missing.mid", settings=SETTINGS)
    with pytest.raises(InvalidRequestError, match="tempo_bpm"):
        check_request({"prompt": "x", "tempo_bpm": 500}, settings=SETTINGS)
