"""Background processes with pid files and logs under the state dir.

A pid file records the pid and the process start time, so `stop` never signals a process that
merely reused the pid of one we started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class ManagedProcess:
    """A named background process of the local stack."""

    name: str
    run_dir: Path
    log_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def running_pid(self) -> int | None:
        """The pid of our live process, or None (a stale pid file is removed)."""
        try:
            record = json.loads(self.pid_file.read_text())
            proc = psutil.Process(int(record["pid"]))
            if abs(proc.create_time() - float(record["started"])) < 1.0 and proc.status() not in (
                psutil.STATUS_ZOMBIE,
                psutil.STATUS_DEAD,
            ):
                return proc.pid
        except (FileNotFoundError, ValueError, KeyError, psutil.NoSuchProcess):
            pass
        self.pid_file.unlink(missing_ok=True)
        return None

    def start(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
    ) -> int:
        """Start `argv` detached in its own session, logging to the log file.

        With `user`, the process runs as that system user and its primary group only (no
        inherited root groups).
        """
        group: int | None = None
        extra_groups: list[int] | None = None
        if user is not None:
            import pwd

            group, extra_groups = pwd.getpwnam(user).pw_gid, []
        self.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with open(fd, "ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} start {argv}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                user=user,
                group=group,
                extra_groups=extra_groups,
                umask=0o077,  # what services write under the state dir is the user's alone
                start_new_session=True,  # survives the CLI exiting; not killed by its Ctrl-C
            )
        started = psutil.Process(proc.pid).create_time()
        self.pid_file.write_text(json.dumps({"pid": proc.pid, "started": started, "argv": argv}))
        return proc.pid

    def stop(self, *, sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> bool:
        """Stop our process (then its process group) if running. Returns whether it was running."""
        pid = self.running_pid()
        if pid is None:
            return False
        try:
            proc = psutil.Process(pid)
            try:
                proc.send_signal(sig)
            except psutil.AccessDenied:
                raise PermissionError(
                    f"{self.name} (pid {pid}) was started by another user; stop it as that user"
                ) from None
            try:
                proc.wait(timeout=timeout_s)
            except psutil.TimeoutExpired:
                os.killpg(pid, signal.SIGKILL)
                proc.wait(timeout=5)
        except psutil.NoSuchProcess:
            pass
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> None:
        """SIGKILL the process group at once (used to simulate a crash)."""
        pid = self.running_pid()
        if pid is not None:
            os.killpg(pid, signal.SIGKILL)
            psutil.Process(pid).wait(timeout=10)
            self.pid_file.unlink(missing_ok=True)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def wait_until(
    check: Callable[[], bool], *, timeout_s: float, interval_s: float = 0.1, what: str
) -> None:
    """Poll `check()` until it returns True, else raise TimeoutError naming `what`.

    `check` may raise to abort at once (e.g. the process it waits for has exited); only
    connection errors count as "not ready yet".
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return
        except (ConnectionError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not become ready within {timeout_s:g} s")
        time.sleep(interval_s)
