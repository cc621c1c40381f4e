"""Optional encryption of Temporal payloads (AES-256-GCM), for workers, SDK and CLI alike.

Temporal stores every workflow and activity input and result in its history; with
`TUNESMITH_PAYLOAD_KEYS` set, the client factory (`infra.temporal.connect_temporal`) encrypts
them all, so the server, its database and anyone reading histories see ciphertext only (search
attributes stay readable: they hold no prompt or user data). Keys are `id:base64` pairs,
comma-separated: the first encrypts, all decrypt, so a key is rotated by putting a new one first
and dropping the old one once no history needs it. Each payload records its key id.
Unencrypted payloads (histories from before encryption was switched on) pass through.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from schemas.errors import TunesmithError

ENCODING = b"binary/encrypted"
KEY_ID_META = "encryption-key-id"
_NONCE_BYTES = 12
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class PayloadKeyError(TunesmithError, ValueError):
    """`TUNESMITH_PAYLOAD_KEYS` is malformed."""


class PayloadDecryptionError(TunesmithError):
    """A payload cannot be decrypted with the configured keys (never returned as garbage)."""


@dataclass(frozen=True)
class PayloadKeys:
    """Key id -> 32-byte key; `current` encrypts."""

    current: str
    keys: dict[str, bytes]

    @classmethod
    def parse(cls, spec: str) -> PayloadKeys:
        """Parse `id:base64[,id:base64...]` (see the module docstring).

        Raises:
            PayloadKeyError: an entry is malformed, a key is not 32 bytes, or an id repeats.
        """
        keys: dict[str, bytes] = {}
        for entry in (e.strip() for e in spec.split(",")):
            key_id, sep, encoded = entry.partition(":")
            if not sep or not _KEY_ID.match(key_id):
                raise PayloadKeyError(
                    "TUNESMITH_PAYLOAD_KEYS: each entry is ID:BASE64 with ID of letters, digits, "
                    f"'_', '.', '-' (got {key_id or entry[:12]!r})"
                )
            try:
                key = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                raise PayloadKeyError(
                    f"TUNESMITH_PAYLOAD_KEYS: key {key_id!r} is not base64"
                ) from None
            if len(key) != 32:
                raise PayloadKeyError(
                    f"TUNESMITH_PAYLOAD_KEYS: key {key_id!r} has {len(key)} bytes; AES-256 "
                    "needs 32 (make one with `tunesmith codec new-key`)"
                )
            if key_id in keys:
                raise PayloadKeyError(f"TUNESMITH_PAYLOAD_KEYS: key id {key_id!r} appears twice")
            keys[key_id] = key
        return cls(current=next(iter(keys)), keys=keys)


def new_key_spec(key_id: str) -> str:
    """A fresh `id:base64` entry for `TUNESMITH_PAYLOAD_KEYS`."""
    if not _KEY_ID.match(key_id):
        raise PayloadKeyError(f"bad key id {key_id!r}: letters, digits, '_', '.', '-' only")
    return f"{key_id}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over each serialized payload; the key id rides in the metadata."""

    def __init__(self, keys: PayloadKeys) -> None:
        self._keys = keys
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.keys.items()}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(_NONCE_BYTES)
        key_id = self._keys.current
        sealed = self._ciphers[key_id].encrypt(nonce, payload.SerializeToString(), None)
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_META: key_id.encode()}, data=nonce + sealed
        )

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written before encryption was switched on
        key_id = payload.metadata.get(KEY_ID_META, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadDecryptionError(
                f"payload encrypted with key {key_id!r}, which is not in TUNESMITH_PAYLOAD_KEYS "
                f"(have: {', '.join(self._ciphers)})"
            )
        try:
            plain = cipher.decrypt(payload.data[:_NONCE_BYTES], payload.data[_NONCE_BYTES:], None)
        except InvalidTag:
            raise PayloadDecryptionError(
                f"payload does not decrypt with key {key_id!r}: a different key under that id, "
                "or the payload was altered"
            ) from None
        decoded = Payload()
        decoded.ParseFromString(plain)
        return decoded
