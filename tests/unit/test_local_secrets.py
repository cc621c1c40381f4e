"""The local stack's secrets: made once by `up`, private, and never invented by a reader."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from infra.credentials import LOCAL_SECRETS, ensure_local_secrets, read_local_secret
from infra.settings import Settings
from schemas.errors import MissingSecretError


def test_made_once_private_and_distinct_per_state_dir(tmp_path: Path) -> None:
    first = ensure_local_secrets(tmp_path / "a")
    assert set(first) == set(LOCAL_SECRETS)
    assert ensure_local_secrets(tmp_path / "a") == first  # a second `up` keeps them
    path = tmp_path / "a" / "secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    other = ensure_local_secrets(tmp_path / "b")
    assert all(first[name] != other[name] for name in LOCAL_SECRETS)
    assert len(set(first.values())) == len(first)


def test_an_older_watermark_key_is_carried_over(tmp_path: Path) -> None:
    (tmp_path / "watermark.key").write_text("ab" * 32 + "\n")
    assert ensure_local_secrets(tmp_path)["watermark_key"] == "ab" * 32


def test_a_missing_secret_names_the_file_and_the_setting(tmp_path: Path) -> None:
    with pytest.raises(MissingSecretError, match=r"secrets\.json.*tunesmith up.*TUNESMITH_X"):
        read_local_secret(tmp_path, "pg_password", setting="TUNESMITH_X")
    assert not (tmp_path / "secrets.json").exists()  # reading never creates one
    (tmp_path / "secrets.json").write_text(json.dumps({"pg_password": "p"}))
    with pytest.raises(MissingSecretError, match="no s3_secret_key"):
        read_local_secret(tmp_path, "s3_secret_key", setting="TUNESMITH_S3_SECRET_KEY")


def test_settings_read_the_state_dirs_credentials(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, pg_port=5999)
    with pytest.raises(MissingSecretError):
        _ = settings.dsn
    with pytest.raises(MissingSecretError):
        _ = settings.s3_keys
    made = ensure_local_secrets(tmp_path)
    assert settings.dsn == f"postgresql://postgres:{made['pg_password']}@127.0.0.1:5999/tunesmith"
    assert settings.s3_keys == (made["s3_access_key"], made["s3_secret_key"])
    assert made["pg_password"] not in settings.db_target


def test_configured_credentials_win_and_are_never_printed(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        database_url="postgresql://app:hunter2@db.internal:5432/tunesmith",
        s3_endpoint="s3.internal:9000",
        s3_access_key="AK",
        s3_secret_key="SK",
    )
    assert settings.dsn.endswith("app:hunter2@db.internal:5432/tunesmith")
    assert settings.db_target == "postgresql://app@db.internal:5432/tunesmith"
    assert settings.s3_keys == ("AK", "SK")
    with pytest.raises(MissingSecretError, match="TUNESMITH_S3_ACCESS_KEY"):
        _ = Settings(home=tmp_path, s3_endpoint="s3.internal:9000").s3_keys
