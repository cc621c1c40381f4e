"""The embedded PostgreSQL: where its binaries and data live, and password (SCRAM) auth.

PostgreSQL refuses to run as root, so a root `tunesmith up` runs it as the system user
`tunesmith-pg`. That user cannot traverse root's home (mode 700 on most systems), where both the
checkout (with the `pgserver` wheel's binaries) and the state dir usually are. Opening the
user's directories is not ours to do, so as root the server's binaries are copied to, and its
data kept in, a directory of its own under `PG_ROOT` (mode 700, owned by that user); the state
dir records where (`postgres.location`), and `tunesmith destroy` removes it with the state dir.
Run as a normal user, the server runs as that user and keeps its data in the state dir.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

PG_SYSTEM_USER = "tunesmith-pg"
PG_ROOT = Path("/var/lib/tunesmith-pg")
LOCATION_FILE = "postgres.location"
# Loopback TCP only (the server has no socket), and every connection proves the password.
PG_HBA = (
    "# written by tunesmith: loopback TCP only, password (SCRAM) auth for every user\n"
    "host all all 127.0.0.1/32 scram-sha-256\n"
)


def _wheel_dir() -> Path:
    """site-packages/pgserver, located without importing it (its import warns on servers)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the pgserver wheel is not installed; run `make install`")
    return Path(spec.origin).parent


def pg_bin(name: str) -> str:
    """A PostgreSQL client binary of the `pgserver` wheel (run as the calling user)."""
    return str(_wheel_dir() / "pginstall" / "bin" / name)


def system_user() -> str | None:
    """The user the server runs as: `tunesmith-pg` (created if missing) under root, else us."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             PG_SYSTEM_USER],
            check=True, capture_output=True,
        )  # fmt: skip
    return PG_SYSTEM_USER


@dataclass(frozen=True)
class EmbeddedPostgres:
    """The server of one state dir: `home`'s data, run as `user` (None: the caller)."""

    home: Path
    user: str | None

    @classmethod
    def for_home(cls, home: Path) -> EmbeddedPostgres:
        return cls(home, system_user())

    @property
    def legacy_in_home(self) -> bool:
        """A root stack created before the data moved out of the state dir (kept working)."""
        return self.user is not None and (self.home / "postgres" / "PG_VERSION").exists()

    @property
    def data_dir(self) -> Path:
        if self.user is None or self.legacy_in_home:
            return self.home / "postgres"
        pointer = self.home / LOCATION_FILE
        if pointer.is_file():
            return Path(pointer.read_text().strip())
        return PG_ROOT / hashlib.sha256(str(self.home).encode()).hexdigest()[:16]

    @property
    def outside_home(self) -> bool:
        return self.home not in self.data_dir.parents

    def server_bin(self, name: str) -> str:
        """A server binary the server's user can execute (as root: a private copy, since the
        wheel usually sits in a checkout under root's home)."""
        if self.user is None:
            return pg_bin(name)
        wheel = _wheel_dir()
        copy = PG_ROOT / f"pgserver-{importlib.metadata.version('pgserver')}"
        if not copy.is_dir():
            self._private_root()
            tmp = copy.with_name(f".{copy.name}.{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            # The binaries find their libraries at $ORIGIN/../../../pgserver.libs: keep the layout.
            shutil.copytree(wheel / "pginstall", tmp / "pgserver" / "pginstall", symlinks=True)
            libs = wheel.parent / "pgserver.libs"
            if libs.is_dir():
                shutil.copytree(libs, tmp / "pgserver.libs", symlinks=True)
            try:
                tmp.rename(copy)  # atomic: a concurrent `up` of another state dir may win
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
        return str(copy / "pgserver" / "pginstall" / "bin" / name)

    def _private_root(self) -> None:
        PG_ROOT.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            shutil.chown(PG_ROOT, self.user, self.user)
        PG_ROOT.chmod(0o700)

    def _run(self, argv: list[str], *, stdin: str | None = None) -> None:
        proc = subprocess.run(
            argv, input=stdin, text=True, capture_output=True, user=self.user,
            group=self._group(), extra_groups=[] if self.user else None,
            cwd=self.data_dir.parent, umask=0o077,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"{Path(argv[0]).name} failed: {proc.stderr.strip()[-800:]}")

    def _group(self) -> int | None:
        return pwd.getpwnam(self.user).pw_gid if self.user else None

    def prepare(self, password: str) -> None:
        """Create the cluster with `password` for `postgres`, or move an older trust-auth
        cluster to password auth; either way write our pg_hba.conf."""
        data = self.data_dir
        if self.legacy_in_home:
            closed = [p for p in self.home.parents if not p.stat().st_mode & 0o001]
            if closed:
                raise RuntimeError(
                    f"this state dir keeps PostgreSQL's data inside it (made by an older "
                    f"tunesmith), and the system user {self.user!r} cannot traverse "
                    f"{closed[0]}; `tunesmith destroy` it and start afresh, or move it"
                )
        if not (data / "PG_VERSION").exists():
            if self.user is not None:
                self._private_root()
            data.mkdir(parents=True, exist_ok=True, mode=0o700)
            if self.user is not None:
                shutil.chown(data, self.user, self.user)
            data.chmod(0o700)
            if self.outside_home:
                (self.home / LOCATION_FILE).write_text(f"{data}\n")
            pwfile = data.parent / f".{data.name}.pwfile"
            pwfile.write_text(password + "\n")
            pwfile.chmod(0o600)
            if self.user is not None:
                shutil.chown(pwfile, self.user, self.user)
            try:
                self._run([
                    self.server_bin("initdb"), "-D", str(data), "-U", "postgres",
                    "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C",
                ])  # fmt: skip
            finally:
                pwfile.unlink(missing_ok=True)
        elif (data / "pg_hba.conf").read_text() != PG_HBA:  # made by an older tunesmith
            # Single-user mode sets the password before the server ever listens with it.
            self._run(
                [self.server_bin("postgres"), "--single", "-D", str(data), "postgres"],
                stdin=f"ALTER ROLE postgres PASSWORD '{password}';\n",
            )
        hba = data / "pg_hba.conf"
        hba.write_text(PG_HBA)
        if self.user is not None:
            shutil.chown(hba, self.user, self.user)

    def argv(self, port: int, shared_buffers: str) -> list[str]:
        return [
            self.server_bin("postgres"), "-D", str(self.data_dir),
            "-p", str(port), "-h", "127.0.0.1",
            "-c", "unix_socket_directories=",  # TCP only: socket paths under deep dirs are too long
            "-c", "password_encryption=scram-sha-256",
            "-c", "fsync=on", "-c", "max_connections=200",
            "-c", f"shared_buffers={shared_buffers}",
        ]  # fmt: skip

    def destroy(self) -> None:
        """Remove the data kept outside the state dir (the caller removes the state dir)."""
        if self.outside_home:
            shutil.rmtree(self.data_dir, ignore_errors=True)
