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
          "done", "failed")

phase = Gauge("wacdc_phase", "1 for the phase the daemon is in, 0 for the others",
              ["phase"], registry=REGISTRY)
lag_seconds = Gauge("wacdc_lag_seconds", "Seconds since the commit of the oldest unapplied "
                    "source transaction; 0 when the applied position is the source head",
                    registry=REGISTRY)
lag_bytes = Gauge("wacdc_lag_bytes", "Binlog bytes between the applied position and the "
                  "source head", registry=REGISTRY)
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
cutover_ready = Gauge("wacdc_cutover_ready", "1 while streaming with lag 0", registry=REGISTRY)
cutover_freeze_seconds = Gauge("wacdc_cutover_freeze_seconds", "Write pause of the last "
                               "cutover (freeze to unlock)", registry=REGISTRY)


def set_phase(current: str) -> None:
    for name in PHASES:
        phase.labels(phase=name).set(1 if name == current else 0)
