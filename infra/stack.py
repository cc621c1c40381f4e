"""The embedded local stack: Temporal dev server, PostgreSQL, S3 store and the two workers.

`up` is idempotent (a live service is left alone), `down` stops only what `up` started (by pid
file), and all state lives under the state dir so a `down` + `up` keeps every job, artifact and
workflow history.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from infra.credentials import ensure_local_secrets, read_local_secret
from infra.embedded_postgres import EmbeddedPostgres, pg_bin
from infra.processes import ManagedProcess, wait_until
from infra.settings import Settings
from schemas.names import SEARCH_ATTRIBUTES


def console_script(name: str) -> str:
    """A console script installed beside this interpreter (the venv), else on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name!r} is not installed; run `make install`")
    return found


def default_shared_buffers() -> str:
    """An eighth of physical memory, clamped to 128MB..4GB: the stack shares the host with
    Temporal, the object store and model workers (a dedicated server would give a quarter)."""
    total_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    return f"{min(max(total_mb // 8, 128), 4096)}MB"


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def worker_readyz(health_file: Path) -> bool:
    """Whether the worker whose health address is in `health_file` answers /readyz with 200."""
    try:
        address = health_file.read_text().strip()
        with urllib.request.urlopen(f"http://{address}/readyz", timeout=5) as resp:
            return bool(resp.status == 200)
    except (OSError, ValueError):  # no file yet, refused, 503 (HTTPError is an OSError)
        return False


def free_port() -> int:
    """An unused TCP port on 127.0.0.1 (for tests and parallel stacks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Dev-server tuning (measurements in docs/benchmarks.md). The history service
# reads new workflow/activity tasks from its transfer queue at most ~20 times a second per shard
# by default, and the dev server has a single shard, so past a small burst every task waits
# ~40-50 ms before a worker can even see it. Raising the read rates removes that wait.
TEMPORAL_DYNAMIC_CONFIG: dict[str, str] = {
    "history.transferProcessorMaxPollRPS": "1000",
    "history.visibilityProcessorMaxPollRPS": "1000",  # search attributes/lists update promptly
    "history.timerProcessorMaxPollRPS": "1000",
}
# SQLite in WAL mode: the default rollback journal fsyncs every commit and costs ~20 ms per
# workflow task. synchronous=NORMAL in WAL mode survives a crash of the server process (what a
# local stack sees); only an OS crash can lose the last transactions.
TEMPORAL_SQLITE_PRAGMAS: dict[str, str] = {"journal_mode": "wal", "synchronous": "normal"}


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str  # running | stopped | external
    pid: int | None
    detail: str


class LocalStack:
    """Start, stop and inspect the embedded stack described by `settings`."""

    def __init__(self, settings: Settings, *, tune_temporal: bool = True) -> None:
        """`tune_temporal=False` starts the dev server with stock settings (benchmarks)."""
        self.settings = settings
        self.tune_temporal = tune_temporal
        self.home = settings.resolved_home
        self.run_dir = self.home / "run"
        self.log_dir = self.home / "logs"

    def process(self, name: str) -> ManagedProcess:
        return ManagedProcess(name, self.run_dir, self.log_dir)

    # --- environment handed to every child -------------------------------------------------
    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["TUNESMITH_HOME"] = str(self.home)
        for field in ("temporal_port", "temporal_ui_port", "pg_port", "s3_port"):
            env[f"TUNESMITH_{field.upper()}"] = str(getattr(self.settings, field))
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    # --- services ----------------------------------------------------------------------------
    def _claim_ports(self, name: str, *ports: int) -> None:
        """Refuse to start over a port someone else holds (it would be silently adopted)."""
        for port in ports:
            if port_open(port):
                raise RuntimeError(
                    f"port {port} needed by {name} is already in use by another process; stop it "
                    "or choose other ports (TUNESMITH_TEMPORAL_PORT, _TEMPORAL_UI_PORT, _PG_PORT, "
                    "_S3_PORT)"
                )

    def _alive_and(self, name: str, check: Callable[[], bool]) -> Callable[[], bool]:
        """A readiness check that fails fast when our process has exited."""

        def ready() -> bool:
            if self.process(name).running_pid() is None:
                raise RuntimeError(f"{name} exited during start-up:\n{self.process(name).tail()}")
            return check()

        return ready

    def _start_temporal(self) -> None:
        s = self.settings
        data = self.home / "temporal"
        data.mkdir(parents=True, exist_ok=True, mode=0o700)
        argv = [
            console_script("temporal"), "server", "start-dev",
            "--ip", "127.0.0.1",
            "--port", str(s.temporal_port),
            "--ui-port", str(s.temporal_ui_port),
            "--db-filename", str(data / "temporal.db"),
            "--namespace", s.temporal_namespace,
            "--ui-disable-news-fetch",
            "--log-level", "warn",
        ]  # fmt: skip
        for name in SEARCH_ATTRIBUTES:
            argv += ["--search-attribute", f"{name}=Keyword"]
        if s.ui_codec_endpoint:  # the Web UI decrypts payloads through `tunesmith codec serve`
            argv += ["--ui-codec-endpoint", s.ui_codec_endpoint]
        if self.tune_temporal:
            for key, value in TEMPORAL_DYNAMIC_CONFIG.items():
                argv += ["--dynamic-config-value", f"{key}={value}"]
            for pragma, value in TEMPORAL_SQLITE_PRAGMAS.items():
                argv += ["--sqlite-pragma", f"{pragma}={value}"]
        self._claim_ports("temporal", s.temporal_port, s.temporal_ui_port)
        self.process("temporal").start(argv, env=self.child_env())
        wait_until(
            self._alive_and(
                "temporal", lambda: port_open(s.temporal_port) and port_open(s.temporal_ui_port)
            ),
            timeout_s=60,
            what="Temporal dev server",
        )

    def _postgres(self) -> EmbeddedPostgres:
        return EmbeddedPostgres.for_home(self.home)

    def _start_postgres(self) -> None:
        s = self.settings
        pg = self._postgres()
        # `_up` made the secrets before starting anything: read, never make, them here.
        pg.prepare(
            s.pg_password
            or read_local_secret(self.home, "pg_password", setting="TUNESMITH_PG_PASSWORD")
        )
        argv = pg.argv(s.pg_port, s.pg_shared_buffers or default_shared_buffers())
        self._claim_ports("postgres", s.pg_port)
        self.process("postgres").start(
            argv, env=self.child_env(), user=pg.user, cwd=pg.data_dir.parent
        )

        def ready() -> bool:
            probe = [pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(s.pg_port), "-q"]
            return subprocess.run(probe, check=False).returncode == 0

        wait_until(self._alive_and("postgres", ready), timeout_s=60, what="PostgreSQL")

    def _start_s3(self) -> None:
        s = self.settings
        data = self.home / "s3"
        data.mkdir(parents=True, exist_ok=True, mode=0o700)
        access_key, secret_key = s.s3_keys
        env = self.child_env() | {"NANIO_ACCESS_KEY": access_key, "NANIO_SECRET_KEY": secret_key}
        argv = [
            console_script("nanio"), "serve", "--data-dir", str(data), "--host", "127.0.0.1",
            "--port", str(s.s3_port), "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        self._claim_ports("s3", s.s3_port)
        self.process("s3").start(argv, env=env)
        wait_until(
            self._alive_and("s3", lambda: port_open(s.s3_port)),
            timeout_s=30,
            what="S3 store (nanio)",
        )

    def start_worker(self, kind: str) -> None:
        """Start one worker process and wait until it polls its task queue."""
        name = f"worker-{kind}"
        ready_file = self.run_dir / f"{name}.ready"
        ready_file.unlink(missing_ok=True)  # a crashed worker leaves its ready file behind
        argv = [sys.executable, "-m", "tunesmith", "worker", kind]
        env = self.child_env()
        if self.settings.health_port is None:  # two workers on one host: any free port each
            env["TUNESMITH_HEALTH_PORT"] = "0"
        self.process(name).start(argv, env=env, cwd=self.home)
        try:
            wait_until(self._alive_and(name, ready_file.exists), timeout_s=60, what=name)
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}\n{self.process(name).tail()}") from None

    def _services(self) -> list[tuple[str, bool, Callable[[], None]]]:
        s = self.settings
        return [
            ("temporal", s.embedded_temporal, self._start_temporal),
            ("postgres", s.embedded_database, self._start_postgres),
            ("s3", s.embedded_s3, self._start_s3),
        ]

    # --- public API ---------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One `up`/`down` at a time per state dir (two racing `up`s would orphan a process)."""
        self.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.run_dir / "stack.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def up(self, *, workers: bool = True, log: Callable[[str], None] = print) -> None:
        """Start whatever is not running yet, prepare DB schema and buckets, start workers."""
        with self._locked():
            self._up(workers=workers, log=log)

    def _up(self, *, workers: bool, log: Callable[[str], None]) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        # Private to the user: jobs, the ledger's database files, the store and the secrets.
        # (0711 only for an older root stack whose PostgreSQL data is inside the state dir.)
        self.home.chmod(0o711 if self._postgres().legacy_in_home else 0o700)
        ensure_local_secrets(self.home)
        for name, embedded, start in self._services():
            if not embedded:
                log(f"{name}: external, not started")
            elif (pid := self.process(name).running_pid()) is not None:
                log(f"{name}: already running (pid {pid})")
            else:
                try:
                    start()
                except Exception as exc:
                    raise RuntimeError(
                        f"{name} failed to start: {exc}\n{self.process(name).tail()}"
                    ) from exc
                log(f"{name}: started (pid {self.process(name).running_pid()})")
        asyncio.run(self.prepare())
        if workers:
            for kind in ("cpu", "gpu"):
                name = f"worker-{kind}"
                if (pid := self.process(name).running_pid()) is not None:
                    log(f"{name}: already running (pid {pid})")
                    continue
                self.start_worker(kind)
                log(f"{name}: started (pid {self.process(name).running_pid()})")

    async def prepare(self) -> None:
        """Apply DB migrations, create buckets, set up the Temporal namespace (all idempotent)."""
        from infra.db import apply_migrations, ensure_database
        from infra.store import ObjectStore
        from infra.temporal import connect_temporal, register_search_attributes, set_retention

        s = self.settings
        await ensure_database(s)
        await apply_migrations(s)
        await asyncio.to_thread(ObjectStore(s).ensure_buckets)
        client = await connect_temporal(s)
        await register_search_attributes(client, s.temporal_namespace)
        if s.embedded_temporal:
            await set_retention(client, s.temporal_namespace, s.local_retention_days)

    def down(self, *, log: Callable[[str], None] = print) -> None:
        """Stop what `up` started, workers first so they finish cleanly."""
        with self._locked():
            self._down(log=log)

    def _down(self, *, log: Callable[[str], None]) -> None:
        order = [("worker-gpu", signal.SIGTERM), ("worker-cpu", signal.SIGTERM),
                 ("temporal", signal.SIGTERM), ("s3", signal.SIGTERM),
                 ("postgres", signal.SIGINT)]  # fmt: skip  # SIGINT = postgres fast shutdown
        for name, sig in order:
            if self.process(name).stop(sig=sig):
                log(f"{name}: stopped")
            (self.run_dir / f"{name}.ready").unlink(missing_ok=True)
            (self.run_dir / f"{name}.health").unlink(missing_ok=True)

    def destroy(self, *, log: Callable[[str], None] = print) -> None:
        """Stop the stack and delete all its state: the state dir and, when PostgreSQL keeps
        its data outside it (root), that data too."""
        with self._locked():
            self._down(log=log)
            self._postgres().destroy()
        shutil.rmtree(self.home, ignore_errors=True)
        log(f"removed {self.home}")

    def status(self) -> list[ServiceStatus]:
        """Each part's state: running (our process, healthy), unhealthy (our process, failing
        its check), stopped, or external (configured elsewhere, not managed here)."""
        s = self.settings

        def pg_ready() -> bool:
            probe = [pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(s.pg_port), "-q"]
            return subprocess.run(probe, check=False).returncode == 0

        def worker_ready(kind: str) -> Callable[[], bool]:
            return lambda: worker_readyz(self.run_dir / f"worker-{kind}.health")

        def polling(kind: str) -> str:
            # The worker writes what it polls (queues, and its build for the CPU one) there.
            ready = self.run_dir / f"worker-{kind}.ready"
            try:
                return f"polling {ready.read_text().strip()}"
            except OSError:
                return f"polling tunesmith-{kind}"

        checks: dict[str, tuple[bool, Callable[[], bool], str]] = {
            "temporal": (
                s.embedded_temporal,
                lambda: port_open(s.temporal_port) and port_open(s.temporal_ui_port),
                f"{s.temporal_target}, Web UI {s.ui_url}",
            ),
            "postgres": (s.embedded_database, pg_ready, s.db_target),
            "s3": (s.embedded_s3, lambda: port_open(s.s3_port), s.s3_target),
            "worker-cpu": (True, worker_ready("cpu"), polling("cpu")),
            "worker-gpu": (True, worker_ready("gpu"), polling("gpu")),
        }
        out = []
        for name, (embedded, healthy, detail) in checks.items():
            if not embedded:
                out.append(ServiceStatus(name, "external", None, detail))
                continue
            pid = self.process(name).running_pid()
            if pid is None:
                state = "stopped"
            else:
                state = "running" if healthy() else "unhealthy"
            out.append(ServiceStatus(name, state, pid, detail))
        return out
