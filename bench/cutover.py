"""Cutover under load (part of `make bench`): the write pause at ~1,000 writes/s.

A fresh source is snapshotted and streamed; a writer commits one-row inserts at
the given rate (each acknowledged key remembered, each statement timed); then
`wacdc cutover --wait` runs. Reported: the freeze (lock -> fence) the daemon
recorded, the slowest write the app saw, and whether every acknowledged row is
in PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pymysql

from wacdc.config import parse_url

REPO = Path(__file__).resolve().parent.parent


def run(source_url: str, target_url: str, rate: int, warmup_s: float = 5) -> dict:
    env = {**os.environ, "WACDC_SOURCE_URL": source_url, "WACDC_TARGET_URL": target_url,
           "WACDC_LOG_FORMAT": "json", "WACDC_METRICS_PORT": "0",
           "WACDC_MATVIEW_REFRESH": "0"}
    daemon = subprocess.Popen([sys.executable, "-m", "wacdc.cli", "run"], env=env, cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert daemon.stderr is not None
    for line in daemon.stderr:  # until it streams
        if b'"event": "caught up: streaming"' in line:
            break
    threading.Thread(target=daemon.stderr.read, daemon=True).start()
    url = parse_url(source_url, "mysql")
    acked: list[str] = []
    slowest = [0.0]
    stop = threading.Event()
    failure: list[str] = []

    def writer() -> None:
        with pymysql.connect(host=url.host, port=url.port, user=url.user,
                             password=url.password, database=url.database,
                             autocommit=True) as conn, conn.cursor() as cur:
            started, n = time.monotonic(), 0
            while not stop.is_set():
                key = f"cut-{n:08d}"
                t0 = time.monotonic()
                try:
                    cur.execute("INSERT INTO WhatsAppMessage (id, status, updatedAt) VALUES "
                                "(%s, 'sent', NOW(3))", (key,))
                except pymysql.err.MySQLError as exc:  # the fence: the app must switch now
                    failure.append(str(exc.args))
                    return
                slowest[0] = max(slowest[0], time.monotonic() - t0)
                acked.append(key)
                n += 1
                delay = started + n / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(warmup_s)  # the load runs before the cutover is asked for
        sent_at = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "wacdc.cli", "cutover", "--wait"],
                                env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
        took = time.monotonic() - sent_at
        thread.join(timeout=30)
        daemon.send_signal(signal.SIGTERM)  # it replicates back to MySQL now (reverse)
        daemon.wait(timeout=60)
    finally:
        stop.set()
        thread.join()
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    if result.returncode != 0:
        raise RuntimeError(f"cutover failed: {result.stdout[-2000:]} {result.stderr[-2000:]}")
    doc = json.loads(result.stdout[result.stdout.index("{"):])
    with psycopg.connect(target_url) as pg:
        have = {r[0] for r in pg.execute(
            "SELECT id FROM \"WhatsAppMessage\" WHERE id LIKE 'cut-%'").fetchall()}
    return {"rate": rate, "writes_acked": len(acked),
            "achieved_rate": len(acked) / (warmup_s + took),
            "freeze_s": doc["freeze_seconds"], "slowest_write_s": slowest[0],
            "request_to_done_s": took, "lost": len(set(acked) - have),
            "writer_stopped_by": failure[0] if failure else None}
