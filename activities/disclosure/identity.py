"""The deployment's disclosure secrets: the watermark key and the C2PA signing identity.

Configured in settings for production; on a local stack both are created on first use in the
state dir (mode 0600) and reused, so `tunesmith watermark detect` and `tunesmith verify` on
the same machine recognise what its workers published.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from activities.disclosure.c2pa_signing import (
    IDENTITY_SUBDIR,
    SigningIdentity,
    ensure_signing_identity,
)
from infra.settings import Settings

WATERMARK_KEY_FILE = "watermark.key"


def watermark_key(settings: Settings) -> bytes:
    """The watermark key: `TUNESMITH_WATERMARK_KEY`, else the state dir's key file (created
    atomically on first use, so concurrent workers agree on one key)."""
    if settings.watermark_key:
        return settings.watermark_key.encode()
    path = settings.resolved_home / WATERMARK_KEY_FILE
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(secrets.token_hex(32))
        tmp.chmod(0o600)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # fails if another process won the race: use its key
        tmp.unlink()
    return path.read_text().strip().encode()


def signing_identity(settings: Settings) -> SigningIdentity:
    """The configured C2PA identity, else the local one in <home>/c2pa (created if missing)."""
    if settings.c2pa_cert_chain is not None and settings.c2pa_private_key is not None:
        return SigningIdentity.from_files(
            settings.c2pa_cert_chain, settings.c2pa_private_key, tsa_url=settings.c2pa_tsa_url
        )
    return ensure_signing_identity(Path(settings.resolved_home) / IDENTITY_SUBDIR)
