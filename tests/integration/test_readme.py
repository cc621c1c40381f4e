"""The README's SDK example runs as written against the real stack."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from infra.stack import LocalStack

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_sdk_example_runs(stack: LocalStack, tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 1, "README should hold exactly one runnable Python example"
    script = tmp_path / "example.py"
    script.write_text(blocks[0])
    proc = subprocess.run(
        [sys.executable, str(script)],
        env=stack.child_env(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "review because: ['human review required by the request']" in proc.stdout
    assert "published" in proc.stdout and "s3://tunesmith-published/" in proc.stdout
