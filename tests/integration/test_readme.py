"""The examples of README.md and the docs/ pages it links to hold, as written.

- The one Python example (README, "A job from Python") runs against the real stack.
- The one CLI example (README, "A job from the CLI") runs against the real stack.
- Every `tunesmith …` command line the pages show names a real command and only options it has,
  and every command documented today is still documented somewhere.
- Every link between the pages points at a page (and heading) that exists, and every
  repository path they name exists.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.stack import LocalStack
from tests.integration.helpers import run_cli

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

# The reference pages the README links to; losing one loses documentation.
DOC_PAGES = {
    "architecture.md", "benchmarks.md", "cli.md", "controls.md", "development.md",
    "disclosure.md", "experiments.md", "guarantees.md", "models.md", "production.md",
    "review.md", "sdk.md", "settings.md", "similarity.md", "takedown.md",
}  # fmt: skip

# Every command the pages show in a code block today. A command missing from all of them
# means an example disappeared.
DOCUMENTED_COMMANDS = {
    "up", "destroy", "generate", "search", "jobs list", "jobs show", "worker cpu", "worker gpu",
    "templates list", "templates show", "models list", "models show", "models promote",
    "eval similarity", "eval watermark",
    "reviewers add", "reviewers list", "reviewers rotate", "reviewers remove",
    "review list", "review show", "review approve", "review reject", "review annotate",
    "review revise", "review open", "review stats", "review serve", "review proof",
    "codec new-key", "codec serve",
    "takedown file", "takedown list", "takedown show", "takedown dispute", "takedown decide",
    "catalog add", "catalog list", "catalog remove", "catalog reindex", "similarity check",
    "verify", "watermark detect",
    "experiments create", "experiments list", "experiments report",
    "rollout status", "rollout ramp", "rollout promote", "rollout unramp",
}  # fmt: skip

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", flags=re.S | re.M)


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def code_blocks(lang: str) -> list[tuple[Path, str]]:
    return [(page, body) for page in pages() for kind, body in FENCE.findall(page.read_text())
            if kind == lang]  # fmt: skip


def command_lines(block: str) -> list[str]:
    """The shell lines of a block, continuations joined, comments and blank lines dropped."""
    joined = block.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]  # fmt: skip


def cli_example() -> list[str]:
    """The README's one `tunesmith generate` example, as argv after `tunesmith`."""
    found = [
        line
        for page, body in code_blocks("bash")
        if page == README
        for line in command_lines(body)
        if line.startswith("tunesmith generate")
    ]
    assert len(found) == 1, f"README should hold exactly one CLI example, found {found}"
    return shlex.split(found[0])[1:]


def test_pages_and_examples_are_all_there() -> None:
    assert DOC_PAGES <= {p.name for p in DOCS.glob("*.md")}, "a docs/ page disappeared"
    readme = README.read_text()
    for name in DOC_PAGES:
        assert f"(docs/{name})" in readme, f"README does not link docs/{name}"
    assert "make run" in readme and "make test" in readme
    python = code_blocks("python")
    assert [page.name for page, _ in python] == ["README.md"], (
        "README should hold exactly one runnable Python example, and the docs pages none: "
        f"found {[page.name for page, _ in python]}"
    )
    assert cli_example()[0] == "generate"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    prose = FENCE.sub("", page.read_text())
    return {_slug(m) for m in re.findall(r"^#+ (.+)$", prose, flags=re.M)}


def test_links_between_pages_resolve() -> None:
    broken = []
    for page in pages():
        prose = FENCE.sub("", page.read_text())
        for target in re.findall(r"\]\(([^)\s]+)\)", prose):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken


def test_repository_paths_named_in_the_pages_exist() -> None:
    """`activities/…`, `infra/…` and the like: a moved file must take its docs along."""
    top = r"(?:schemas|workflows|activities|workers|infra|tunesmith|tests)/"
    missing = []
    for page in pages():
        for name in re.findall(rf"`({top}[^`\s]*)`", page.read_text()):
            path = re.split(r"[<{*@:]", name)[0]
            if path != name and not path.endswith("/"):
                path = path.rsplit("/", 1)[0]  # a placeholder inside the file name
            if not (ROOT / path).exists():
                missing.append(f"{page.name}: {name}")
    assert not missing, missing


def _command_tree() -> Any:
    import typer

    from tunesmith.cli import app

    return typer.main.get_command(app)


def _resolve(root: Any, words: list[str]) -> tuple[str, Any]:
    """The command path at the start of `words` and its (leaf) command."""
    node, path = root, list[str]()
    for word in words:
        children = getattr(node, "commands", None)
        if not children or word not in children:
            break
        node, path = children[word], [*path, word]
    return " ".join(path), node


def test_documented_commands_exist_with_their_options() -> None:
    root = _command_tree()
    documented, problems = set(), []
    for page, body in code_blocks("bash"):
        for line in command_lines(body):
            if not line.startswith("tunesmith "):
                continue
            words = shlex.split(line, comments=True)[1:]
            path, command = _resolve(root, words)
            if not path or getattr(command, "commands", None):
                problems.append(f"{page.name}: no such command: {line}")
                continue
            documented.add(path)
            known = {"--help"} | {
                opt
                for param in command.params
                for opt in [*param.opts, *getattr(param, "secondary_opts", [])]
            }
            for word in words:
                option = word.strip("[]").split("=")[0]
                if option.startswith("--") and option not in known:
                    problems.append(f"{page.name}: `tunesmith {path}` has no {option}: {line}")
    assert not problems, problems
    missing = DOCUMENTED_COMMANDS - documented
    assert not missing, f"no page shows these commands any more: {sorted(missing)}"


def test_readme_cli_example_runs(stack: LocalStack, tmp_path: Path) -> None:
    args = cli_example()
    assert "--out" in args
    args[args.index("--out") + 1] = str(tmp_path)
    proc = run_cli(stack, *args, timeout_s=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split()[1].startswith("job-")
    assert "published" in proc.stdout and "s3://tunesmith-published/" in proc.stdout
    assert list(tmp_path.glob("*.wav")) and (tmp_path / "provenance.json").exists()


def test_readme_sdk_example_runs(stack: LocalStack, tmp_path: Path) -> None:
    [(_, block)] = code_blocks("python")
    script = tmp_path / "example.py"
    script.write_text(block)
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
