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

from tests.support.harness import REPO, SourceDb
from wacdc.devtools.embedded import free_port


class Daemon:
    """`wacdc run` in a subprocess with its HTTP endpoint on a free port."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wacdc.cli", "run"],
            env={**env, "WACDC_METRICS_PORT": str(self.port)}, cwd=REPO,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.log = bytearray()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log += line

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

    def wait_for(self, what: str, condition, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"daemon exited:\n{self.log.decode()[-3000:]}"
            try:
                if condition():
                    return
            except (urllib.error.URLError, ConnectionError):
                pass  # not listening yet
            assert time.monotonic() < deadline, f"timed out waiting for {what}:\n" \
                                                f"{self.log.decode()[-3000:]}"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)


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
