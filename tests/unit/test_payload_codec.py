"""Payload encryption: keys, rotation, refusals, and the codec server's protocol and guards."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from infra.codec import (
    EncryptionCodec,
    PayloadDecryptionError,
    PayloadKeyError,
    PayloadKeys,
    new_key_spec,
)
from tunesmith.codec_server import make_codec_server

PLAIN = Payload(metadata={"encoding": b"json/plain"}, data=b'{"prompt": "secret brief"}')


def codec(*specs: str) -> EncryptionCodec:
    return EncryptionCodec(PayloadKeys.parse(",".join(specs)))


def test_round_trip_hides_the_data_and_names_the_key() -> None:
    c = codec(new_key_spec("k1"))
    sealed = asyncio.run(c.encode([PLAIN]))[0]
    assert b"secret brief" not in sealed.SerializeToString()
    assert sealed.metadata["encryption-key-id"] == b"k1"
    assert asyncio.run(c.decode([sealed])) == [PLAIN]
    assert asyncio.run(c.decode([PLAIN])) == [PLAIN]  # unencrypted: from before, passes


def test_rotation_old_keys_still_decrypt() -> None:
    old, new = new_key_spec("2026-11"), new_key_spec("2026-12")
    sealed_old = codec(old).encrypt(PLAIN)
    rotated = codec(new, old)
    assert rotated.decrypt(sealed_old) == PLAIN
    assert rotated.encrypt(PLAIN).metadata["encryption-key-id"] == b"2026-12"


def test_a_wrong_or_missing_key_is_a_clear_error_never_garbage() -> None:
    sealed = codec(new_key_spec("k1")).encrypt(PLAIN)
    with pytest.raises(PayloadDecryptionError, match="does not decrypt with key 'k1'"):
        codec(new_key_spec("k1")).decrypt(sealed)  # same id, other key
    with pytest.raises(PayloadDecryptionError, match="key 'k1', which is not in"):
        codec(new_key_spec("k2")).decrypt(sealed)
    tampered = Payload(metadata=dict(sealed.metadata), data=sealed.data[:-1] + b"\x00")
    with pytest.raises(PayloadDecryptionError):
        codec(new_key_spec("k1")).decrypt(tampered)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nokey", "ID:BASE64"),
        ("bad id:" + base64.b64encode(b"x" * 32).decode(), "ID:BASE64"),
        ("k:not base64!", "not base64"),
        ("k:" + base64.b64encode(b"short").decode(), "has 5 bytes"),
        (f"k:{base64.b64encode(b'x' * 32).decode()},k:{base64.b64encode(b'y' * 32).decode()}",
         "appears twice"),
    ],
)  # fmt: skip
def test_malformed_keys_are_refused(spec: str, message: str) -> None:
    with pytest.raises(PayloadKeyError, match=message):
        PayloadKeys.parse(spec)


@pytest.fixture
def server() -> Iterator[tuple[str, EncryptionCodec]]:
    c = codec(new_key_spec("k1"))
    srv = make_codec_server(c, token="t0ken", origin="http://ui.example", port=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", c
    finally:
        srv.shutdown()
        srv.server_close()


def post(url: str, payloads: list[Payload], headers: dict[str, str]) -> tuple[int, dict, dict]:
    body = json_format.MessageToJson(Payloads(payloads=payloads)).encode()
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


def test_codec_server_decodes_for_the_token_holder_only(
    server: tuple[str, EncryptionCodec],
) -> None:
    base, c = server
    sealed = c.encrypt(PLAIN)
    auth = {"Authorization": "Bearer t0ken", "Content-Type": "application/json"}
    status, body, _ = post(f"{base}/decode", [sealed], auth)
    assert status == 200
    decoded = json_format.ParseDict(body, Payloads()).payloads
    assert list(decoded) == [PLAIN]
    status, body, _ = post(f"{base}/t0ken/decode", [sealed], {"Origin": "http://ui.example"})
    assert status == 200  # the token in the path, as the Web UI's endpoint setting carries it
    status, body, _ = post(f"{base}/t0ken/encode", [PLAIN], {})
    assert status == 200 and b"secret" not in json.dumps(body).encode()
    for url, headers in ((f"{base}/decode", {}), (f"{base}/decode", {"Authorization": "Bearer x"}),
                         (f"{base}/wrong/decode", {})):  # fmt: skip
        status, body, _ = post(url, [sealed], headers)
        assert status == 401 and "token" in body["message"]
    other = codec(new_key_spec("k1")).encrypt(PLAIN)
    status, body, _ = post(f"{base}/decode", [other], auth)
    assert status == 422 and "does not decrypt" in body["message"]


def test_codec_server_cors_answers_the_web_ui_origin_only(
    server: tuple[str, EncryptionCodec],
) -> None:
    base, _ = server
    for origin, allowed in (("http://ui.example", True), ("http://evil.example", False)):
        req = urllib.request.Request(f"{base}/t0ken/decode", method="OPTIONS",
                                     headers={"Origin": origin})  # fmt: skip
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert (resp.headers.get("Access-Control-Allow-Origin") == origin) is allowed
