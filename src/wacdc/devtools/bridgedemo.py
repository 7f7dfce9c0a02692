"""`wacdc demo --bridge`: the app "redeployed" under traffic inside a bridge window.

The cutover opens a bridge window instead of fencing MySQL; the old app instances keep
writing MySQL while the new ones start writing PostgreSQL; then the old ones go away,
the window closes by itself once MySQL is quiet, and not one write failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TextIO

import psycopg

from wacdc.cutover import control
from wacdc.devtools.traffic import AppTraffic
from wacdc.devtools.wayback import PgTraffic, status_of, wait_until
from wacdc.errors import WacdcError

QUIET_S = 5  # the demo's WACDC_BRIDGE_QUIET: the window closes this long after MySQL's last write


def _show(port: int, old: AppTraffic, new: PgTraffic | None, out: TextIO) -> None:
    status = status_of(port) or {}
    bridge = status.get("bridge") or {}
    print(f"{time.strftime('%H:%M:%S')}  phase {status.get('phase', '?'):<8} app writes: "
          f"MySQL {old.writes:,} (old instances), PostgreSQL {new.writes if new else 0:,} "
          f"(new)  conflicts {bridge.get('conflicts', 0)}  reverse lag "
          f"{(bridge.get('reverse') or {}).get('lag_seconds', 0):.3f}s", file=out, flush=True)


def _latest(target_url: str, cutover_id: int) -> dict[str, Any]:
    with psycopg.connect(target_url, autocommit=True) as conn:
        doc = control.latest(conn)
    assert doc is not None and doc["id"] == cutover_id
    return doc


def bridge_cutover(port: int, target_url: str, old: AppTraffic, rate: float,
                   duration: float, alive: Callable[[], bool], out: TextIO) -> dict[str, Any]:
    """The window from its opening to its close; the final cutover row."""
    with psycopg.connect(target_url, autocommit=True) as conn:
        cutover_id = control.request(conn, "wacdc demo --bridge", bridge_max=900)
    wait_until("the bridge window", lambda s: s["phase"] == "bridge", port, alive)
    print("bridge window open: PostgreSQL is the primary, MySQL still takes the old "
          "instances' writes; deploying the new ones ...", file=out, flush=True)
    new = PgTraffic(target_url, rate, seed=13)  # the way back's traffic has its own
    new.start()
    try:
        until = time.monotonic() + duration
        while time.monotonic() < until:
            _show(port, old, new, out)
            time.sleep(1)
        old.stop.set()  # the deploy is done: the last old instance is gone
        old.join(timeout=10)
        print(f"old instances stopped; the window closes after {QUIET_S} s without a "
              "MySQL write ...", file=out, flush=True)
        while _latest(target_url, cutover_id)["status"] == control.CutoverStatus.BRIDGE:
            if not alive():
                raise WacdcError("wacdc run exited inside the bridge window")
            _show(port, old, new, out)
            time.sleep(1)
        wait_until("phase reverse", lambda s: s["phase"] == "reverse", port, alive)
    finally:
        new.stop.set()
        new.join(timeout=10)
    failed = [f"{who}: {why}" for who, why in (
        ("MySQL", old.error or (old.fenced_at and "a write refused by the fence")),
        ("PostgreSQL", new.error or (new.fenced_at and "a write refused by the fence")))
        if why]
    if failed:
        raise WacdcError("a write failed inside the bridge window: " + "; ".join(failed))
    print(f"the window closed: no write failed ({old.writes:,} to MySQL, {new.writes:,} to "
          "PostgreSQL); MySQL is fenced, and reverse replication goes on", file=out,
          flush=True)
    return _latest(target_url, cutover_id)
