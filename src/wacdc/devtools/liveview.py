"""The demo's live view: one line per second from the daemon's /status and /metrics."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any, TextIO

from wacdc.devtools.traffic import AppTraffic


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _per_table(metrics_text: str, metric: str) -> dict[str, float]:
    """Sum of a labelled metric per `table` label, from the Prometheus text format."""
    per_table: dict[str, float] = {}
    for line in metrics_text.splitlines():
        if line.startswith(metric + "{"):
            labels, value = line[len(metric) + 1:].rsplit("} ", 1)
            table = dict(p.split("=", 1) for p in labels.split(","))["table"].strip('"')
            per_table[table] = per_table.get(table, 0) + float(value)
    return per_table


class LiveView:
    """One status line per second: phase, snapshot progress, lag, busiest tables."""

    def __init__(self, port: int, out: TextIO) -> None:
        self.port, self.out = port, out
        self.last: dict[str, float] = {}
        self.last_at = time.monotonic()
        self.copied = 0.0

    def show(self, traffic: AppTraffic) -> dict[str, Any] | None:
        try:
            status = json.loads(_get(self.port, "/status")[1])
            metrics_text = _get(self.port, "/metrics")[1]
        except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
            return None
        now = time.monotonic()
        applied = _per_table(metrics_text, "wacdc_rows_applied_total")
        span = max(now - self.last_at, 1e-6)
        rates = {t: (n - self.last.get(t, 0)) / span for t, n in applied.items()}
        self.last, self.last_at = applied, now
        busiest = sorted(((r, t) for t, r in rates.items() if r > 0), reverse=True)[:3]
        tables = ", ".join(f"{t.removeprefix('WhatsApp')} {r:.0f}/s" for r, t in busiest)
        phase = status["phase"]
        detail = ""
        if phase == "snapshot":
            copied = sum(_per_table(metrics_text, "wacdc_snapshot_rows_total").values())
            estimate = sum(_per_table(metrics_text, "wacdc_snapshot_rows_estimated").values())
            rate = (copied - self.copied) / span
            self.copied = copied
            eta = (f", ETA {(estimate - copied) / rate:.0f}s" if rate > 0 and estimate > copied
                   else "")
            share = f" of ~{estimate:,.0f} ({min(copied / estimate, 1):.0%})" if estimate else ""
            detail = f"snapshot {copied:,.0f} rows{share}{eta}  "
        line = (f"{time.strftime('%H:%M:%S')}  phase {phase:<9} lag {status['lag_seconds']:.3f}s "
                f"({status['lag_bytes']:,} B)  app writes {traffic.writes:,}  {detail}{tables}")
        print(line, file=self.out, flush=True)
        return status
