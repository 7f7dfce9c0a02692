"""Process handling shared by the private servers: binaries, ports, start, stop, kill -9.

Each server lives in its own temp directory on a free loopback port. When the current
user is root, the servers run as the `mysql` / `postgres` system users (both refuse to
run as root). A started server is stopped and removed when this process exits, unless
detached (`wacdc demo --keep`).
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT_S = 60.0


class EmbeddedServerError(RuntimeError):
    """A private server could not be set up or started."""


def find_binary(name: str, extra_globs: tuple[str, ...] = ()) -> str | None:
    """Locate an executable on PATH, in sbin, or in versioned install dirs."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
    if found:
        return found
    for pattern in extra_globs:
        # Highest version first: /usr/lib/postgresql/16/bin before 15.
        for candidate in sorted(glob.glob(pattern), reverse=True):
            if os.access(candidate, os.X_OK):
                return candidate
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_user(name: str) -> str | None:
    """The system user to run a server as when we are root, else None (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(name)
    except KeyError as exc:
        raise EmbeddedServerError(
            f"running as root, but system user {name!r} does not exist; "
            f"install the server package (it creates the user) or run as a normal user"
        ) from exc
    return name


def make_owned_dir(prefix: str, owner: str | None) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if owner:
        entry = pwd.getpwnam(owner)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        # The parent (/tmp) is world-traversable; the dir itself stays private to the owner.
    return path


def _wait_for_port(port: int, proc: subprocess.Popen, log_path: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedServerError(
                f"{what} exited with code {proc.returncode} while starting; "
                f"last log lines:\n{_tail(log_path)}"
            )
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise EmbeddedServerError(f"{what} did not listen on port {port} within {START_TIMEOUT_S}s")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


@dataclass
class ServerProcess:
    """Common process handling: start, stop, kill -9, restart, cleanup."""

    base_dir: Path
    port: int
    run_as: str | None
    proc: subprocess.Popen | None = field(default=None, repr=False)
    removed: bool = False

    name = "server"

    def command(self) -> list[str]:
        raise NotImplementedError

    @property
    def log_path(self) -> Path:
        return self.base_dir / "server.log"

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        try:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                user=self.run_as,
                # Own process group: Ctrl-C in a terminal must not kill it behind our back.
                start_new_session=True,
            )
        finally:
            log.close()
        _wait_for_port(self.port, self.proc, self.log_path, self.name)
        self.wait_ready()
        # Stopped and removed when this process exits, however it exits (once per server).
        atexit.unregister(self._cleanup_at_exit)
        atexit.register(self._cleanup_at_exit)

    def wait_ready(self) -> None:
        """Hook: block until the server accepts real queries."""

    def stop(self, timeout: float = 30.0) -> None:
        """Clean shutdown (SIGTERM, then SIGKILL if it hangs)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """kill -9: the server gets no chance to flush or say goodbye."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def detach(self) -> None:
        """Leave the server running after this process exits (`wacdc demo --keep`)."""
        atexit.unregister(self._cleanup_at_exit)

    def cleanup(self) -> None:
        self.kill()
        if not self.removed:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.removed = True
        atexit.unregister(self._cleanup_at_exit)

    def _cleanup_at_exit(self) -> None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            self.cleanup()
