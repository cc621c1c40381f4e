import pytest

from activities.controls.normalize import normalize_request
from schemas.errors import InvalidRequestError
from schemas.music import key_name, normalize_instrument, parse_key
from schemas.request import GenerationRequest, validate_request

VALID = {"prompt": "calm piano", "duration_s": 30, "tempo_bpm": 120, "key": "A minor",
         "instruments": ["piano", "bass", "drums"], "seed": 7}  # fmt: skip


def test_valid_request_fills_defaults_and_canonicalizes_instruments() -> None:
    req = validate_request({**VALID, "instruments": ["Grand Piano", "piano", "Electric Bass"]})
    assert req.instruments == ["piano", "bass"]
    assert req.tier.value == "draft" and req.review.value == "auto" and req.tenant == "default"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"prompt": "   "}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"duration_s": 0}, "duration_s"),
        ({"duration_s": -3}, "duration_s"),
        ({"duration_s": 601}, "over the draft backend's limit"),
        ({"tempo_bpm": 29.9}, "tempo_bpm"),
        ({"tempo_bpm": 301}, "tempo_bpm"),
        ({"key": "H minor"}, "unknown key"),
        ({"key": "A dorian"}, "unknown key"),
        ({"instruments": ["kazoo"]}, "unknown instrument"),
        ({"instruments": []}, "instruments"),
        ({"tier": "ultra"}, "tier"),
        ({"review": "maybe"}, "review"),
        ({"seed": -1}, "seed"),
        ({"tenant": "a b"}, "tenant"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_invalid_requests_name_the_problem(change: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        validate_request({**VALID, **change})
    assert field in str(info.value)
    assert info.value.problems


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InvalidRequestError) as info:
        validate_request({"prompt": "", "tempo_bpm": 999, "key": "Z"})
    assert len(info.value.problems) == 3


@pytest.mark.parametrize(
    ("text", "pc", "mode"),
    [("A minor", 9, "minor"), ("F# major", 6, "major"), ("Bbm", 10, "minor"), ("c", 0, "major"),
     ("Eb min", 3, "minor"), ("Cb", 11, "major")],
)  # fmt: skip
def test_parse_key(text: str, pc: int, mode: str) -> None:
    assert parse_key(text) == (pc, mode)


def test_key_names_use_the_conventional_accidentals() -> None:
    assert key_name(10, "major") == "Bb major"
    assert key_name(6, "minor") == "F# minor"
    assert key_name(3, "minor") == "D# minor"


def test_instrument_aliases() -> None:
    assert normalize_instrument("Bass Guitar") == "bass"
    assert normalize_instrument("percussion") == "drums"


def test_normalize_is_deterministic_and_versioned() -> None:
    _, a = normalize_request(VALID)
    _, b = normalize_request(dict(VALID))
    assert a == b
    assert a.controls_version == "controls-2"
    assert a.bars == 15  # 30 s at 120 BPM in 4/4 = 15 bars exactly
    assert [i.name for i in a.instruments] == ["piano", "bass", "drums"]
    assert a.instruments[2].is_drum and a.model_id == "draft"


def test_request_hash_ignores_spelling_of_equivalent_requests() -> None:
    a = validate_request(VALID)
    b = validate_request(
        {**VALID, "instruments": ["Piano", "bass", "drums"], "prompt": " calm piano "}
    )
    assert a.sha256() == b.sha256()
    assert a.sha256() != validate_request({**VALID, "seed": 8}).sha256()
    assert isinstance(a, GenerationRequest)
