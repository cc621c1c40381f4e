"""Worker Versioning settings: the build id and the CPU workers' deployment options."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.common import VersioningBehavior

from infra.settings import Settings
from workers import versioning


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_build_id_is_a_stable_hash_of_the_workflow_code(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"workflows/a.py": "x = 1\n", "schemas/b.py": "y = 2\n",
                            "activities/c.py": "z = 3\n"})  # fmt: skip
    first = versioning.code_build_id(root)
    assert first.startswith("wf-") and len(first) == 15
    assert versioning.code_build_id(root) == first
    # Activity code is not workflow code: changing it is not a new version.
    (root / "activities/c.py").write_text("z = 4\n")
    assert versioning.code_build_id(root) == first
    (root / "workflows/a.py").write_text("x = 2\n")
    changed = versioning.code_build_id(root)
    assert changed != first
    # A renamed file with the same bytes is a different tree too.
    (root / "workflows/a.py").rename(root / "workflows/renamed.py")
    assert versioning.code_build_id(root) not in {first, changed}


def test_this_checkouts_build_id_is_used_unless_one_is_set() -> None:
    assert versioning.build_id(Settings()) == versioning.code_build_id()
    assert versioning.build_id(Settings(build_id="git-abc123")) == "git-abc123"


def test_cpu_workers_join_the_deployment_with_auto_upgrade() -> None:
    config = versioning.deployment_config(Settings(build_id="b1", deployment_name="music"))
    assert config is not None and config.use_worker_versioning
    assert (config.version.deployment_name, config.version.build_id) == ("music", "b1")
    assert config.default_versioning_behavior is VersioningBehavior.AUTO_UPGRADE
    assert versioning.deployment_config(Settings(worker_versioning=False)) is None


@pytest.mark.parametrize(
    "field,value",
    [("build_id", "has space"), ("build_id", ""), ("deployment_name", "a:b"), ("rollout", "yolo")],
)
def test_bad_versioning_settings_are_refused(field: str, value: str) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings(**{field: value})  # type: ignore[arg-type]
