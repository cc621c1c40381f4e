"""C2PA signing: local identity, sign + verify for WAV/MP3/FLAC, tamper, unsigned, bad format."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from activities.disclosure import c2pa_signing as cs

FORMATS = {"wav": "WAV", "mp3": "MP3", "flac": "FLAC"}


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> cs.SigningIdentity:
    return cs.ensure_signing_identity(tmp_path_factory.mktemp("c2pa"))


def _audio(path: Path) -> Path:
    rng = np.random.default_rng(0)
    samples = (rng.standard_normal((44_100, 2)) * 0.1).astype(np.float32)
    sf.write(path, samples, 44_100, format=FORMATS[path.suffix[1:]])
    return path


def _sign(src: Path, dst: Path, identity: cs.SigningIdentity) -> None:
    cs.sign_file(
        src,
        dst,
        identity=identity,
        title="Test track",
        job_id="job-42",
        model_id="draft",
        model_version="draft-1.0.0",
        assertions={"watermark": {"payload": "0badcafe"}},
    )


def test_identity_is_created_once(tmp_path: Path) -> None:
    first = cs.ensure_signing_identity(tmp_path)
    chain = first.cert_chain.read_bytes()
    again = cs.ensure_signing_identity(tmp_path)
    assert again.cert_chain.read_bytes() == chain  # reused, not re-issued
    assert chain.count(b"BEGIN CERTIFICATE") == 2  # leaf + root
    assert stat.S_IMODE(first.private_key.stat().st_mode) == 0o600
    assert first.trust_anchors is not None and first.trust_anchors.is_file()


@pytest.mark.parametrize("ext", sorted(FORMATS))
def test_sign_and_verify_round_trip(tmp_path: Path, identity: cs.SigningIdentity, ext: str) -> None:
    src, dst = _audio(tmp_path / f"in.{ext}"), tmp_path / f"out.{ext}"
    _sign(src, dst, identity)
    # Still the same audio to a decoder.
    assert sf.info(dst).frames == sf.info(src).frames

    result = cs.verify_file(dst)
    assert result.valid and result.has_manifest and result.state == "Valid"
    assert result.ai_generated
    assert result.model == {"id": "draft", "version": "draft-1.0.0"}
    assert result.job_id == "job-42"
    assert result.signer == "Tunesmith Publisher"
    assert not result.trusted and result.warnings  # local root is not on a trust list
    assert result.errors == []
    generation = next(a for a in result.claims["assertions"] if a["label"] == cs.GENERATION_LABEL)
    assert generation["data"]["watermark"] == {"payload": "0badcafe"}

    trusted = cs.verify_file(dst, trust_anchors=identity.trust_anchors)
    assert trusted.valid and trusted.trusted and trusted.state == "Trusted"
    assert trusted.warnings == []


@pytest.mark.parametrize("ext", sorted(FORMATS))
def test_tampered_file_fails_validation(
    tmp_path: Path, identity: cs.SigningIdentity, ext: str
) -> None:
    src, dst = _audio(tmp_path / f"in.{ext}"), tmp_path / f"out.{ext}"
    _sign(src, dst, identity)
    data = bytearray(dst.read_bytes())
    data[len(data) // 2] ^= 0xFF  # in the audio: the manifest is far smaller than it
    dst.write_bytes(bytes(data))
    result = cs.verify_file(dst)
    assert result.has_manifest and not result.valid
    assert result.state == "Invalid"
    assert any("mismatch" in e for e in result.errors)


def test_unsigned_file_reports_no_manifest(tmp_path: Path) -> None:
    result = cs.verify_file(_audio(tmp_path / "plain.wav"))
    assert not result.valid and not result.has_manifest
    assert result.state == "NoManifest" and result.errors == ["no manifest"]


def test_unsupported_format_is_a_clear_error(tmp_path: Path, identity: cs.SigningIdentity) -> None:
    ogg = tmp_path / "x.ogg"
    ogg.write_bytes(b"OggS")
    with pytest.raises(cs.UnsupportedFormatError, match=r"\.ogg.*\.flac, \.mp3, \.wav"):
        _sign(ogg, tmp_path / "y.ogg", identity)
    with pytest.raises(cs.UnsupportedFormatError):
        cs.verify_file(ogg)
    wav = _audio(tmp_path / "in.wav")
    with pytest.raises(cs.UnsupportedFormatError, match="same format"):
        _sign(wav, tmp_path / "out.mp3", identity)


def test_missing_or_corrupt_input(tmp_path: Path, identity: cs.SigningIdentity) -> None:
    with pytest.raises(cs.C2paSigningError, match="no such file"):
        _sign(tmp_path / "missing.wav", tmp_path / "out.wav", identity)
    with pytest.raises(cs.C2paSigningError, match="no such file"):
        cs.verify_file(tmp_path / "missing.wav")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"not a wav file at all")
    with pytest.raises(cs.C2paSigningError):
        _sign(garbage, tmp_path / "out.wav", identity)
    assert not (tmp_path / "out.wav").exists()


def test_real_identity_files_must_exist(tmp_path: Path) -> None:
    with pytest.raises(cs.C2paSigningError, match="not found"):
        cs.SigningIdentity.from_files(tmp_path / "chain.pem", tmp_path / "key.pem")


def test_bad_key_is_a_clear_error(tmp_path: Path, identity: cs.SigningIdentity) -> None:
    bad_key = tmp_path / "bad.key"
    bad_key.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    broken = cs.SigningIdentity.from_files(identity.cert_chain, bad_key)
    with pytest.raises(cs.C2paSigningError, match="signing identity"):
        _sign(_audio(tmp_path / "in.wav"), tmp_path / "out.wav", broken)
