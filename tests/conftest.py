"""Shared fixtures: the real embedded stack on free ports in a temporary state dir."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from infra.settings import Settings
from infra.stack import LocalStack, free_port


def make_settings(home: Path, **overrides: object) -> Settings:
    """Settings for a private stack: its own state dir and free ports, never the defaults."""
    values: dict[str, object] = {
        "home": home,
        "temporal_port": free_port(),
        "temporal_ui_port": free_port(),
        "pg_port": free_port(),
        "s3_port": free_port(),
        "heartbeat_timeout_s": 3.0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def private_home(prefix: str) -> Path:
    """A state dir inside a fresh mode-700 directory, as root's home is: nothing may need its
    parents opened. `private_stack` removes both."""
    return Path(tempfile.mkdtemp(prefix=prefix)) / "state"


@contextmanager
def private_stack(settings: Settings, env: dict[str, str]) -> Iterator[LocalStack]:
    """Run a whole stack for `settings`; its worker processes read `env` too.

    Always stopped, its state dir removed and the environment restored, even when tests fail.
    """
    # Workers are child processes: they read the same settings from the environment.
    overrides = {"TUNESMITH_HEARTBEAT_TIMEOUT_S": str(settings.heartbeat_timeout_s), **env}
    previous = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    local = LocalStack(settings)
    try:
        local.up(log=lambda _msg: None)
        yield local
    finally:
        local.destroy(log=lambda _msg: None)
        if settings.home.name == "state":
            shutil.rmtree(settings.home.parent, ignore_errors=True)
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    """The whole embedded stack (Temporal, PostgreSQL, S3 store, CPU + GPU workers).

    Started once per test session and always stopped, even when tests fail.
    """
    settings = make_settings(private_home("tunesmith-test-"))
    with private_stack(settings, {"TUNESMITH_WEBHOOK_SECRET": "test-webhook-secret"}) as local:
        yield local


@pytest.fixture(scope="session")
def settings(stack: LocalStack) -> Settings:
    return stack.settings


@pytest.fixture(scope="session")
async def client(settings: Settings) -> AsyncIterator[object]:
    from tunesmith import Client

    yield await Client.connect(settings)


@pytest.fixture(scope="session")
async def db(settings: Settings) -> AsyncIterator[object]:
    from infra.db import Database

    database = await Database.open(settings)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture(scope="session")
def store(settings: Settings) -> object:
    from infra.store import ObjectStore

    return ObjectStore(settings)
