"""Streaming benchmarks (part of `make bench`).

1. Burst: N row changes are committed on MySQL at full speed while wacdc is
   stopped; then `wacdc run --exit-when-caught-up` applies them, with the compiled
   decoder (the default) and with WACDC_DECODER=library. changes/s is compared with
   decoding the very same binlog range alone (every row image decoded, nothing
   applied) by mysql-replication as it ships and by wacdc's compiled decoder, all
   measured in the same run.
2. Steady: a writer commits ~R changes/s (one row per transaction) while the
   daemon streams; each row's apply latency is the time from its commit until it
   is visible in PostgreSQL. p50/p99 reported, and the daemon's peak RSS.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pymysql

from bench import wacdc_process
from wacdc.config import parse_url
from wacdc.events import BinlogPosition
from wacdc.source.binlog import open_stream, row_changes
from wacdc.source.connection import connect
from wacdc.source.position import current_position

REPO = Path(__file__).resolve().parent.parent
TABLE = "WhatsAppMessage"


def _env(source_url: str, target_url: str, decoder: str = "compiled",
         decode_process: bool = False) -> dict[str, str]:
    return {**os.environ, "WACDC_SOURCE_URL": source_url, "WACDC_TARGET_URL": target_url,
            "WACDC_LOG_FORMAT": "json", "WACDC_TABLES": TABLE, "WACDC_DECODER": decoder,
            "WACDC_METRICS_PORT": "0",
            "WACDC_DECODE_IN": "process" if decode_process else "inline"}


def _wacdc(args: list[str], env: dict[str, str]) -> tuple[float, float, float | None]:
    """Run wacdc to completion: (seconds, peak RSS MiB, seconds of streaming).

    The last one is from the daemon's own log, "streaming" to "caught up with the source
    head": the pipeline's work without process start-up, imports and catalog reads —
    like the raw decode it is compared with, which excludes connecting too."""
    run = wacdc_process.run_wacdc(args, env)
    err = run["stderr"]
    stamps = {}
    for line in err.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            stamps.setdefault(event.get("event"), event.get("timestamp"))
    streaming = None
    if stamps.get("streaming") and stamps.get("caught up with the source head"):
        begin, end = (dt.datetime.fromisoformat(stamps[k].replace("Z", "+00:00"))
                      for k in ("streaming", "caught up with the source head"))
        streaming = (end - begin).total_seconds()
    return run["seconds"], run["peak_rss_mib"], streaming


def _burst(source_url: str, changes: int) -> None:
    """Inserts, updates and deletes in 100-row transactions, at full speed."""
    url = parse_url(source_url, "mysql")
    with pymysql.connect(host=url.host, port=url.port, user=url.user, password=url.password,
                         database=url.database, charset="utf8mb4") as conn, conn.cursor() as cur:
        done = 0
        while done < changes:
            ids = [str(uuid.uuid4()) for _ in range(40)]
            cur.executemany(
                f"INSERT INTO {TABLE} (id, message, status, payload, `to`, updatedAt) VALUES "
                "(%s, %s, 'sent', %s, 'whatsapp:+91', NOW(3))",
                [(i, "hello 🙏 " * 20, '{"entry": [{"changes": [{"value": {"messages": '
                  '[{"type": "text", "text": {"body": "hi"}}]}}]}], "object": "x"}')
                 for i in ids])
            cur.execute(f"UPDATE {TABLE} SET status = 'read', deliveredAt = NOW(3) "
                        f"WHERE id IN ({', '.join(['%s'] * 40)})", ids)
            cur.execute(f"DELETE FROM {TABLE} WHERE id IN ({', '.join(['%s'] * 20)})", ids[:20])
            conn.commit()
            done += 100


def _raw_decode(source_url: str, start, end,  # type: ignore[no-untyped-def]
                decoder: str) -> tuple[float, int]:
    """One decoder alone over [start, end): (seconds to decode every row image, images)."""
    url = parse_url(source_url, "mysql")
    stream = open_stream(url, 77001, start, [TABLE], blocking=False, decoder=decoder)
    started = time.monotonic()
    images = 0
    try:
        for change in row_changes(stream):
            images += (change.before is not None) + (change.after is not None)
            if change.position >= end:
                break
    finally:
        stream.close()
    return time.monotonic() - started, images


def _apply_burst(source_url: str, target_url: str, changes: int, decoder: str,
                 decode_process: bool = False
                 ) -> tuple[float, float, float, BinlogPosition, BinlogPosition]:
    """Snapshot, commit a burst, apply it: (streaming s, process s, peak RSS, start, end)."""
    env = _env(source_url, target_url, decoder, decode_process)
    _wacdc(["run", "--exit-when-caught-up"], env)  # snapshot + caught up
    with connect(parse_url(source_url, "mysql")) as conn:
        start = current_position(conn)
    _burst(source_url, changes)
    with connect(parse_url(source_url, "mysql")) as conn:
        end = current_position(conn)
    seconds, rss, streaming = _wacdc(["run", "--exit-when-caught-up"], env)
    return streaming or seconds, seconds, rss, start, end


def burst(source_url: str, target_url: str, changes: int) -> dict:
    streaming, seconds, rss, start, end = _apply_burst(source_url, target_url, changes,
                                                       "compiled")
    library_e2e = _apply_burst(source_url, target_url, changes, "library")[0]
    two_processes = _apply_burst(source_url, target_url, changes, "compiled", True)[0]
    library, images = _raw_decode(source_url, start, end, "library")
    compiled, _ = _raw_decode(source_url, start, end, "compiled")
    return {"changes": changes, "row_images": images, "seconds": streaming,
            "process_seconds": seconds,
            "changes_per_s": changes / streaming, "process_changes_per_s": changes / seconds,
            "library_e2e_changes_per_s": changes / library_e2e,
            "decode_process_e2e_changes_per_s": changes / two_processes,
            "library_decode_images_per_s": images / library,
            "compiled_decode_images_per_s": images / compiled,
            "raw_decode_changes_per_s": changes / compiled,
            "library_decode_changes_per_s": changes / library,
            "decode_speedup": library / compiled,
            "e2e_over_library_decode": library / streaming,
            "ratio_to_raw_decode": compiled / streaming, "peak_rss_mib": rss}


def steady(source_url: str, target_url: str, rate: int, seconds: float) -> dict:
    """`rate` row changes/s, in transactions of one row up to 1,000/s and of rate/1,000
    rows above (one writer connection commits at most ~1,000-2,000 times a second);
    latency = commit -> visible in PostgreSQL, per row."""
    env = {**_env(source_url, target_url), "WACDC_METRICS_PORT": "0"}
    per_txn = max(1, rate // 1000)
    prefix = f"lat{rate}-"  # each rate its own keys: one source serves every rate
    proc = subprocess.Popen([sys.executable, "-m", "wacdc.cli", "run"], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    for line in proc.stderr:  # measure the steady state: start once the daemon streams
        if b'"event": "streaming"' in line:
            break
    threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe drained
    committed: dict[str, float] = {}
    seen: dict[str, float] = {}
    stop = threading.Event()
    url = parse_url(source_url, "mysql")

    failures: list[BaseException] = []

    def writer() -> None:
        try:
            write()
        except BaseException as exc:  # noqa: BLE001 - raised below, once the threads are joined
            failures.append(exc)
            stop.set()

    def write() -> None:
        with pymysql.connect(host=url.host, port=url.port, user=url.user,
                             password=url.password, database=url.database,
                             autocommit=True) as conn, conn.cursor() as cur:
            interval = per_txn / rate
            next_at = time.monotonic()
            n = 0
            while not stop.is_set():
                keys = [f"{prefix}{k:08d}" for k in range(n, n + per_txn)]
                cur.executemany(f"INSERT INTO {TABLE} (id, status, updatedAt) VALUES "
                                "(%s, 'sent', NOW(3))", [(k,) for k in keys])
                at = time.monotonic()
                committed.update(dict.fromkeys(keys, at))
                n += per_txn
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

    def poller() -> None:
        with psycopg.connect(target_url, autocommit=True) as pg:
            last = ""
            while not stop.is_set() or len(seen) < len(committed):
                rows = pg.execute(f'SELECT id FROM "{TABLE}" WHERE id > %s AND id LIKE %s '
                                  "ORDER BY id", (last, prefix + "%")).fetchall()
                now = time.monotonic()
                for (key,) in rows:
                    seen.setdefault(key, now)
                    last = key
                time.sleep(0.005)
                if stop.is_set() and time.monotonic() - now > 10:
                    break

    threads = [threading.Thread(target=writer), threading.Thread(target=poller)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    proc.send_signal(15)
    _, _, usage = os.wait4(proc.pid, 0)
    if failures:
        raise RuntimeError(f"the steady writer failed at {rate}/s") from failures[0]
    latencies = sorted(seen[k] - committed[k] for k in committed if k in seen)
    achieved = len(committed) / seconds
    return {"rate_target": rate, "rate_achieved": achieved, "rows": len(committed),
            "rows_per_transaction": per_txn,
            "p50_s": statistics.median(latencies),
            "p99_s": latencies[int(len(latencies) * 0.99) - 1],
            "max_s": latencies[-1], "missing": len(committed) - len(latencies),
            "peak_rss_mib": usage.ru_maxrss / 1024}
