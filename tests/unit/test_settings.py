"""Settings validation and the embedded PostgreSQL's memory default."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from infra.settings import Settings
from infra.stack import default_shared_buffers


def test_shared_buffers_default_is_an_eighth_of_memory_within_bounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def machine(total_mb: int) -> str:
        pages = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": total_mb * 2**20 // 4096}
        monkeypatch.setattr("os.sysconf", lambda name: pages[name])
        return default_shared_buffers()

    assert machine(24 * 1024) == "3072MB"
    assert machine(512) == "128MB"  # PostgreSQL's own default is the floor
    assert machine(256 * 1024) == "4096MB"


@pytest.mark.parametrize("value", ["lots", "0MB", "512", "1 GB", "-1GB", "2TB"])
def test_bad_shared_buffers_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="pg_shared_buffers"):
        Settings(pg_shared_buffers=value)


def test_shared_buffers_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNESMITH_PG_SHARED_BUFFERS", "512MB")
    assert Settings().pg_shared_buffers == "512MB"
