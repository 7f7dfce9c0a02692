"""Prometheus metrics of DESIGN §5 (names, types, help). Served by the daemon's HTTP server."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    gc_collector,
    platform_collector,
    process_collector,
)

REGISTRY = CollectorRegistry()
process_collector.ProcessCollector(registry=REGISTRY)
platform_collector.PlatformCollector(registry=REGISTRY)
gc_collector.GCCollector(registry=REGISTRY)

PHASES = ("starting", "waiting_for_lock", "snapshot", "catchup", "streaming", "cutover",
          "bridge", "done", "reverse", "rollback", "failed")

phase = Gauge("wacdc_phase", "1 for the phase the daemon is in, 0 for the others",
              ["phase"], registry=REGISTRY)
lag_seconds = Gauge("wacdc_lag_seconds", "Seconds since the commit of the oldest unapplied "
                    "source transaction, in every phase (during the snapshot: since the read "
                    "view opened, once the source has moved past it); 0 when everything up "
                    "to the source head is applied", registry=REGISTRY)
lag_bytes = Gauge("wacdc_lag_bytes", "Binlog bytes between the applied position (before "
                  "streaming: where streaming will start) and the source head",
                  registry=REGISTRY)
lag_known = Gauge("wacdc_lag_known", "1 when wacdc_lag_seconds/bytes are current figures; 0 "
                  "when they cannot be known (no source head polled yet, waiting for the "
                  "writer lock, failed): then they read 0", registry=REGISTRY)
last_applied_timestamp = Gauge("wacdc_last_applied_timestamp_seconds", "Source commit time "
                               "(unix seconds) of the last applied transaction",
                               registry=REGISTRY)
rows_applied = Counter("wacdc_rows_applied_total", "Row changes applied to PostgreSQL",
                       ["table", "op"], registry=REGISTRY)
transactions = Counter("wacdc_transactions_total", "Source transactions applied",
                       registry=REGISTRY)
apply_batch_seconds = Histogram("wacdc_apply_batch_seconds", "Time to apply and commit one "
                                "batch", registry=REGISTRY,
                                buckets=(.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
snapshot_rows = Counter("wacdc_snapshot_rows_total", "Rows copied by the snapshot", ["table"],
                        registry=REGISTRY)
snapshot_rows_estimated = Gauge("wacdc_snapshot_rows_estimated", "Estimated rows per table "
                                "(information_schema)", ["table"], registry=REGISTRY)
values_coerced = Counter("wacdc_values_coerced_total", "Values replaced under the bad-value "
                         "policy (docs/types.md)", ["table", "column", "reason"],
                         registry=REGISTRY)
decoder_fallback = Counter("wacdc_decoder_fallback_total", "Row events the compiled decoder "
                           "left to mysql-replication (a type or event it does not cover)",
                           ["table", "reason"], registry=REGISTRY)
errors = Counter("wacdc_errors_total", "Errors by kind", ["kind"], registry=REGISTRY)
reconnects = Counter("wacdc_reconnects_total", "Reconnects by side (source, target)", ["side"],
                     registry=REGISTRY)
writes_after_cutover = Counter("wacdc_writes_after_cutover_total", "Row changes that reached "
                               "MySQL after the cutover (WACDC_FENCE=none): applied to "
                               "PostgreSQL too, each one an alarm", ["table", "op"],
                               registry=REGISTRY)
reverse_lag_seconds = Gauge("wacdc_reverse_lag_seconds", "Reverse replication (PostgreSQL -> "
                            "MySQL, after the cutover): seconds since the capture of the oldest "
                            "change not yet in MySQL; 0 when none is pending", registry=REGISTRY)
reverse_lag_bytes = Gauge("wacdc_reverse_lag_bytes", "Reverse replication: PostgreSQL WAL bytes "
                          "written since the oldest change not yet in MySQL", registry=REGISTRY)
reverse_rows_applied = Counter("wacdc_reverse_rows_applied_total", "Row changes the app made in "
                               "PostgreSQL, applied to MySQL by reverse replication",
                               ["table", "op"], registry=REGISTRY)
reverse_transactions = Counter("wacdc_reverse_batches_total", "Batches (the app's PostgreSQL "
                               "transactions committed between two polls) applied to MySQL",
                               registry=REGISTRY)
bridge_conflicts = Counter("wacdc_bridge_conflicts_total", "Bridge window: rows changed in "
                           "MySQL and in PostgreSQL before either change reached the other "
                           "store; PostgreSQL's change won", ["table"], registry=REGISTRY)
bridge_mysql_writes = Counter("wacdc_bridge_mysql_writes_total", "Bridge window: row changes "
                              "the app still made in MySQL (replicated to PostgreSQL); the "
                              "window closes after a quiet period without any",
                              ["table"], registry=REGISTRY)
bridge_open = Gauge("wacdc_bridge_open", "1 while a bridge window is open (both stores "
                    "written by the app)", registry=REGISTRY)
rollback_freeze_seconds = Gauge("wacdc_rollback_freeze_seconds", "Write pause of the last "
                                "rollback (PostgreSQL locked to unlocked)", registry=REGISTRY)
cutover_ready = Gauge("wacdc_cutover_ready", "1 while streaming with lag 0", registry=REGISTRY)
cutover_freeze_seconds = Gauge("wacdc_cutover_freeze_seconds", "Write pause of the last "
                               "cutover (freeze to unlock)", registry=REGISTRY)


OPS = ("insert", "update", "delete")
SIDES = ("source", "target")


def start_series(tables: list[str]) -> None:
    """Every labelled series of the configured tables (and sides) exists from the start,
    at 0: an idle table is a flat 0 on a dashboard, not "no data", and rate() sees its
    first change."""
    for table in tables:
        snapshot_rows.labels(table=table)
        for op in OPS:
            rows_applied.labels(table=table, op=op)
    for side in SIDES:
        reconnects.labels(side=side)


def set_phase(current: str) -> None:
    for name in PHASES:
        phase.labels(phase=name).set(1 if name == current else 0)
