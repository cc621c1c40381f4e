"""The deployment's disclosure secrets: the watermark key and the C2PA signing identity.

Configured in settings for production. On a local stack the watermark key is one of the state
dir's secrets, made by `tunesmith up` and only ever read here: a detector pointed at the wrong
state dir says it has no key instead of inventing one that finds nothing. The C2PA identity is
created in <home>/c2pa on first signing (its root certificate is what `tunesmith verify`
trusts; it holds no secret a verifier needs).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from activities.disclosure.c2pa_signing import (
    IDENTITY_SUBDIR,
    SigningIdentity,
    ensure_signing_identity,
)
from infra.credentials import read_local_secret, secrets_path
from infra.settings import Settings


@dataclass(frozen=True)
class WatermarkKey:
    secret: bytes
    source: str  # where it came from, for people: the setting or the secrets file

    @property
    def key_id(self) -> str:
        """A short public fingerprint of the key (tells two keys apart, reveals nothing)."""
        return hashlib.sha256(self.secret).hexdigest()[:12]


def watermark_key(settings: Settings) -> WatermarkKey:
    """`TUNESMITH_WATERMARK_KEY`, else the state dir's key.

    Raises:
        MissingSecretError: neither is there (nothing is created).
    """
    if settings.watermark_key:
        return WatermarkKey(settings.watermark_key.encode(), "TUNESMITH_WATERMARK_KEY")
    home = settings.resolved_home
    secret = read_local_secret(home, "watermark_key", setting="TUNESMITH_WATERMARK_KEY")
    return WatermarkKey(secret.encode(), str(secrets_path(home)))


def signing_identity(settings: Settings) -> SigningIdentity:
    """The configured C2PA identity, else the local one in <home>/c2pa (created if missing)."""
    if settings.c2pa_cert_chain is not None and settings.c2pa_private_key is not None:
        return SigningIdentity.from_files(
            settings.c2pa_cert_chain, settings.c2pa_private_key, tsa_url=settings.c2pa_tsa_url
        )
    return ensure_signing_identity(Path(settings.resolved_home) / IDENTITY_SUBDIR)
