"""The daemon under test: `wacdc run` in a subprocess with its HTTP endpoint; a writer."""


from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client.parser import text_string_to_metric_families

from tests.support.harness import REPO, LogTail, SourceDb
from wacdc.devtools.embedded import free_port


class Daemon:
    """`wacdc run` in a subprocess: its log read as it comes (`log`, a LogTail), its HTTP
    endpoint on a free port."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wacdc.cli", "run"],
            env={**env, "WACDC_METRICS_PORT": str(self.port)}, cwd=REPO,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert self.proc.stderr is not None
        self.log = LogTail(self.proc.stderr)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def status(self) -> dict:
        return json.loads(self.get("/status")[1])

    def samples(self) -> dict[tuple[str, tuple], float]:
        code, text = self.get("/metrics")
        assert code == 200
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    def gauge(self, name: str) -> float:
        return self.samples()[(name, ())]

    def reconnects(self, side: str) -> float:
        return self.samples().get(("wacdc_reconnects_total", (("side", side),)), 0.0)

    def events(self) -> Iterator[dict]:
        """The daemon's JSON log lines so far."""
        for line in self.log.text.splitlines():
            if line.startswith("{"):
                yield json.loads(line)

    def wait_for(self, what: str, condition, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"daemon exited:\n{self.log.text[-3000:]}"
            try:
                if condition():
                    return
            except (urllib.error.URLError, ConnectionError):
                pass  # not listening yet
            assert time.monotonic() < deadline, f"timed out waiting for {what}:\n" \
                                                f"{self.log.text[-3000:]}"
            time.sleep(0.05)

    def wait_for_line(self, needle: str, timeout: float) -> None:
        """Until the daemon logs a line holding `needle`."""
        assert self.log.wait_for(needle, timeout), \
            f"no {needle!r} within {timeout:.0f}s:\n{self.log.text[-4000:]}"

    def stop(self, *, expect_clean_exit: bool = False) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        if expect_clean_exit:
            assert self.proc.returncode == 0, self.log.finish()[-4000:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def daemon(env: dict[str, str]) -> Iterator[Daemon]:
    d = Daemon(env)
    try:
        d.wait_for("phase streaming", lambda: d.status()["phase"] == "streaming")
        yield d
    finally:
        d.stop()
        if d.proc.poll() is None:
            d.proc.kill()


def _writes(db: SourceDb, stop: threading.Event, step, rate: float | None = None  # type: ignore[no-untyped-def]
            ) -> threading.Thread:
    """Call step(cursor) (then commit) until `stop`, at `rate` per second or flat out."""
    def loop() -> None:
        with db.connect(autocommit=False) as conn, conn.cursor() as cur:
            n, started = 0, time.monotonic()
            while not stop.is_set():
                step(cur, n)
                conn.commit()
                n += 1
                if rate:
                    ahead = started + n / rate - time.monotonic()
                    if ahead > 0:
                        stop.wait(ahead)
    thread = threading.Thread(target=loop)
    thread.start()
    return thread
