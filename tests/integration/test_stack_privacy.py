"""The local stack is private to its user: password auth, generated keys, a closed state dir,
loopback only, and commands that say so when the stack's secrets are not where they look."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import asyncpg
import psutil
import pytest
from minio import Minio
from minio.error import S3Error

from infra.credentials import read_local_secret
from infra.embedded_postgres import EmbeddedPostgres
from infra.stack import LocalStack

pytestmark = pytest.mark.integration

OLD_DEFAULT_KEYS = ("tunesmith-local", "tunesmith-local-secret")  # before per-stack keys


def test_state_dir_and_secrets_are_the_users_alone(stack: LocalStack) -> None:
    home = stack.settings.resolved_home
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE(home.parent.stat().st_mode) == 0o700  # as root's home: never opened
    assert stat.S_IMODE((home / "secrets.json").stat().st_mode) == 0o600
    data = EmbeddedPostgres.for_home(home).data_dir
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


def test_every_service_listens_on_loopback_only(stack: LocalStack) -> None:
    ports: list[tuple[str, str, int]] = []
    for name in ("temporal", "postgres", "s3", "worker-cpu", "worker-gpu"):
        pid = stack.process(name).running_pid()
        assert pid is not None, name
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        for proc in procs:
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    ports.append((name, conn.laddr.ip, conn.laddr.port))
    assert {name for name, _, _ in ports} >= {"temporal", "postgres", "s3"}
    assert all(ip == "127.0.0.1" for _, ip, _ in ports), ports


async def test_postgres_demands_the_password(stack: LocalStack) -> None:
    s = stack.settings
    for password in (None, "", "wrong"):
        with pytest.raises(asyncpg.InvalidPasswordError):
            conn = await asyncpg.connect(
                host="127.0.0.1", port=s.pg_port, user="postgres", password=password,
                database="tunesmith", timeout=10,
            )  # fmt: skip
            await conn.close()
    conn = await asyncpg.connect(s.dsn)  # the state dir's password
    try:
        assert await conn.fetchval("SELECT current_setting('password_encryption')") == (
            "scram-sha-256"
        )
        hba = await conn.fetch("SELECT type, auth_method FROM pg_hba_file_rules")
        assert {(r["type"], r["auth_method"]) for r in hba} == {("host", "scram-sha-256")}
    finally:
        await conn.close()


def test_the_store_refuses_other_keys(stack: LocalStack) -> None:
    s = stack.settings
    for access, secret in (OLD_DEFAULT_KEYS, (s.s3_keys[0], "not-the-secret")):
        client = Minio(s.s3_target, access_key=access, secret_key=secret, secure=False)
        with pytest.raises(S3Error):
            client.list_objects(s.published_bucket)  # lazy: force the request
            list(client.list_objects(s.published_bucket))
    assert Minio(s.s3_target, *s.s3_keys, secure=False).bucket_exists(s.published_bucket)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another local user needs root")
def test_another_local_user_reads_nothing(stack: LocalStack) -> None:
    home = stack.settings.resolved_home
    data = EmbeddedPostgres.for_home(home).data_dir
    nobody = pwd.getpwnam("nobody")
    for argv in (
        ["ls", str(home)],
        ["cat", str(home / "secrets.json")],
        ["ls", str(home / "s3")],
        ["ls", str(data)],
    ):
        proc = subprocess.run(
            argv, capture_output=True, text=True, user=nobody.pw_uid, group=nobody.pw_gid,
            extra_groups=[], check=False,
        )  # fmt: skip
        assert proc.returncode != 0 and "Permission denied" in proc.stderr, argv


def test_commands_without_the_stacks_secrets_fail_clearly(
    stack: LocalStack, tmp_path: Path
) -> None:
    """Pointed at a directory that is not a started stack's state dir, a command names what is
    missing and where it looked, exits 2, and creates nothing there."""
    env = stack.child_env() | {"TUNESMITH_HOME": str(tmp_path)}
    for args in (["jobs", "list"], ["review", "list"], ["catalog", "list"]):
        proc = subprocess.run(
            [sys.executable, "-m", "tunesmith", *args],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "secrets.json" in proc.stderr and "tunesmith up" in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == []
    # the real state dir's secret is what the stack runs with
    assert (
        read_local_secret(
            stack.settings.resolved_home, "pg_password", setting="TUNESMITH_PG_PASSWORD"
        )
        in stack.settings.dsn
    )


REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3.11")  # Debian's, world-executable (pyenv's may be in /root)


def _runs_as(user: pwd.struct_passwd, python: str) -> bool:
    try:
        probe = subprocess.run(
            [python, "-c", "import tunesmith, infra.stack"], user=user.pw_uid,
            group=user.pw_gid, extra_groups=[], capture_output=True, cwd="/", check=False,
        )  # fmt: skip
    except PermissionError:
        return False
    return probe.returncode == 0


def _python_for(user: pwd.struct_passwd, workdir: Path) -> str:
    """An interpreter with tunesmith installed that `user` can run: ours when they can reach
    it, else a copy of this checkout with the locked dependencies on the system Python
    (root-owned and world-readable, as a shared install would be; built from uv's cache)."""
    if _runs_as(user, sys.executable):
        return sys.executable
    if not SYSTEM_PYTHON.exists():
        pytest.fail(f"{sys.executable} is not reachable by {user.pw_name} and {SYSTEM_PYTHON} "
                    "is missing: cannot run the stack as a normal user")  # fmt: skip
    src = workdir / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".tools", ".tunesmith", "out", "__pycache__", ".*_cache"))  # fmt: skip
    env = os.environ | {"UV_PROJECT_ENVIRONMENT": str(workdir / "venv")}  # hardlinks: fast
    synced = subprocess.run(
        [str(REPO / ".tools" / "bin" / "uv"), "sync", "--frozen", "--python", str(SYSTEM_PYTHON),
         "--no-dev", "--quiet"],
        cwd=src, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert synced.returncode == 0, synced.stderr
    python = str(workdir / "venv" / "bin" / "python")
    assert _runs_as(user, python)
    return python


@pytest.mark.skipif(os.geteuid() != 0, reason="running as another local user needs root")
def test_a_normal_user_runs_the_stack_from_a_private_directory() -> None:
    """`up`, a generation and `destroy` as a normal user whose state dir sits in a mode-700
    directory of theirs (PostgreSQL then runs as that user, data inside the state dir)."""
    from infra.stack import free_port

    user = pwd.getpwnam("nobody")
    workdir = Path(tempfile.mkdtemp(prefix="tunesmith-user-"))
    workdir.chmod(0o755)
    python = _python_for(user, workdir)
    private = workdir / "private"
    private.mkdir(mode=0o700)
    os.chown(private, user.pw_uid, user.pw_gid)
    home = private / "state"
    env = {
        "PATH": f"{Path(python).parent}:{os.environ['PATH']}",
        "HOME": str(private),
        "TUNESMITH_HOME": str(home),
        "TUNESMITH_TEMPORAL_PORT": str(free_port()),
        "TUNESMITH_TEMPORAL_UI_PORT": str(free_port()),
        "TUNESMITH_PG_PORT": str(free_port()),
        "TUNESMITH_S3_PORT": str(free_port()),
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [python, "-m", "tunesmith", *args], env=env, cwd=private,
            user=user.pw_uid, group=user.pw_gid, extra_groups=[],
            capture_output=True, text=True, timeout=240, check=False,
        )  # fmt: skip

    try:
        up = cli("up")
        assert up.returncode == 0, up.stdout + up.stderr
        gen = cli(
            "generate", "short test cue", "--duration", "5", "--seed", "3", "--wait",
            "--out", str(private / "out"),
        )  # fmt: skip
        assert gen.returncode == 0, gen.stdout + gen.stderr
        assert "published" in gen.stdout
        assert (home / "postgres" / "PG_VERSION").exists()  # runs as the user: data inside
        assert not (home / "postgres.location").exists()
        assert all(p.stat().st_uid == user.pw_uid for p in (home, home / "secrets.json"))
    finally:
        down = cli("destroy", "--yes")
        shutil.rmtree(workdir, ignore_errors=True)
    assert down.returncode == 0, down.stdout + down.stderr


def test_an_older_trust_auth_stack_moves_to_a_password() -> None:
    """A state dir made before credentials existed (trust auth, a watermark.key file) keeps its
    data and its watermark key, and from the next `up` on demands the password."""
    from tests.conftest import make_settings

    home = Path(tempfile.mkdtemp(prefix="tunesmith-legacy-"))
    settings = make_settings(home)
    pg = EmbeddedPostgres.for_home(home)
    data = home / "postgres"  # where older versions kept it, as root too
    data.mkdir(mode=0o700)
    if pg.user is not None:
        home.chmod(0o711)
        shutil.chown(data, pg.user, pg.user)
    subprocess.run(
        [pg.server_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
         "--locale=C"],
        check=True, capture_output=True, user=pg.user, cwd="/",
    )  # fmt: skip
    (home / "watermark.key").write_text("cd" * 32)
    stack = LocalStack(settings)
    try:
        stack.up(workers=False, log=lambda _m: None)
        assert EmbeddedPostgres.for_home(home).data_dir == data

        async def connect() -> None:
            with pytest.raises(asyncpg.InvalidPasswordError):
                await asyncpg.connect(host="127.0.0.1", port=settings.pg_port, user="postgres",
                                      database="tunesmith", timeout=10)  # fmt: skip
            conn = await asyncpg.connect(settings.dsn)
            assert await conn.fetchval("SELECT count(*) FROM schema_migrations") > 0
            await conn.close()

        asyncio.run(connect())
        assert read_local_secret(home, "watermark_key", setting="-") == "cd" * 32
    finally:
        stack.destroy(log=lambda _m: None)
