"""The local stack's secrets: generated once per state dir, kept there mode 0600, never guessed.

`tunesmith up` creates them (`ensure_local_secrets`); every other reader (workers, SDK, CLI)
only loads them (`read_local_secret`) and fails with `MissingSecretError` naming the file when
they are absent, so a command run against the wrong state dir says so instead of inventing a
fresh key that silently disagrees with the one the stack used.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Final

from schemas.errors import MissingSecretError

SECRETS_FILE: Final = "secrets.json"
# name -> number of random bytes (hex-encoded: safe in URLs, env vars and config files)
LOCAL_SECRETS: Final[dict[str, int]] = {
    "pg_password": 24,
    "s3_access_key": 10,
    "s3_secret_key": 24,
    "watermark_key": 32,
}


def secrets_path(home: Path) -> Path:
    return home / SECRETS_FILE


def ensure_local_secrets(home: Path) -> dict[str, str]:
    """Load the state dir's secrets, creating the missing ones (atomically, mode 0600).

    A key kept in the older `watermark.key` file is carried over, so audio watermarked before
    keeps being recognised.
    """
    path = secrets_path(home)
    current = _load(path) if path.is_file() else {}
    missing = {name: n for name, n in LOCAL_SECRETS.items() if not current.get(name)}
    if not missing:
        return current
    legacy_key = home / "watermark.key"
    for name, n_bytes in missing.items():
        if name == "watermark_key" and legacy_key.is_file():
            current[name] = legacy_key.read_text().strip()
        else:
            current[name] = secrets.token_hex(n_bytes)
    home.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(current, out, indent=1, sort_keys=True)
    if path.exists():
        os.replace(tmp, path)  # only `up` writes, under the stack lock
    else:
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # a racing `up` won: use its secrets
        tmp.unlink()
    return _load(path)


def read_local_secret(home: Path, name: str, *, setting: str) -> str:
    """One secret of the state dir's, or `MissingSecretError` saying where it was looked for.

    Args:
        home: the state dir.
        name: a key of `LOCAL_SECRETS`.
        setting: the `TUNESMITH_*` variable that supplies it instead (named in the error).
    """
    path = secrets_path(home)
    try:
        value = _load(path).get(name)
    except PermissionError:
        raise MissingSecretError(
            f"cannot read {path}: the local stack's secrets belong to another user "
            f"(run as that user, or set {setting})"
        ) from None
    except FileNotFoundError:
        value = None
    if not value:
        raise MissingSecretError(
            f"no {name} in {path}: this is not the state dir of a local stack that was started "
            f"(`tunesmith up` creates it; point TUNESMITH_HOME at the stack's state dir, or set "
            f"{setting})"
        )
    return str(value)


def _load(path: Path) -> dict[str, str]:
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise MissingSecretError(f"{path} is not a secrets file (expected a JSON object)")
    return {str(k): str(v) for k, v in data.items()}
