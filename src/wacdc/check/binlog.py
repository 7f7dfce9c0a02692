"""The source's binlog settings `wacdc check` wants (format, image, metadata, retention)."""

from __future__ import annotations

from collections.abc import Iterator

from wacdc.check.findings import OK, PROBLEM, Finding
from wacdc.source.connection import ServerInfo

MIN_RETENTION_S = 24 * 3600

BINLOG_VARIABLES = [
    "log_bin", "binlog_format", "binlog_row_image", "binlog_row_metadata",
    "binlog_row_value_options", "binlog_transaction_compression", "log_bin_compress",
    "binlog_expire_logs_seconds", "expire_logs_days", "gtid_mode", "server_id",
    "gtid_binlog_pos", "enforce_gtid_consistency",
]


def variable_checks(info: ServerInfo, v: dict[str, str]) -> Iterator[Finding]:
    """One finding per binlog setting, in the order `wacdc check` prints them."""
    set_cmd = "SET GLOBAL" if info.is_mariadb else "SET PERSIST"
    yield from _format_checks(v, set_cmd)
    yield from _row_metadata_checks(info, v, set_cmd)
    yield from _compression_checks(v)
    yield _retention(v)
    yield _gtid_check(info, v)


def _format_checks(v: dict[str, str], set_cmd: str) -> Iterator[Finding]:
    if v.get("log_bin", "OFF").upper() not in ("ON", "1"):
        yield Finding(PROBLEM, "log_bin", "binary logging is off",
                      "start the server with log-bin (on Railway MySQL it is on by default); "
                      "this needs a restart")
    else:
        yield Finding(OK, "log_bin", "on")
    for name, want in (("binlog_format", "ROW"), ("binlog_row_image", "FULL")):
        have = v.get(name, "")
        if have.upper() == want:
            yield Finding(OK, name, have)
        else:
            yield Finding(PROBLEM, name, f"is {have or 'unset'}, must be {want}",
                          f"wacdc check --fix ({set_cmd} {name} = {want})")


def _row_metadata_checks(info: ServerInfo, v: dict[str, str],
                         set_cmd: str) -> Iterator[Finding]:
    metadata = v.get("binlog_row_metadata")
    if metadata is None:
        yield Finding(PROBLEM, "binlog_row_metadata",
                      f"{info} has no binlog_row_metadata; column names cannot come from the "
                      "binlog", "upgrade the source to MySQL >= 8.0.1 or MariaDB >= 10.5")
    elif metadata.upper() != "FULL":
        yield Finding(PROBLEM, "binlog_row_metadata", f"is {metadata}, must be FULL "
                      "(column names and enum labels come from the binlog)",
                      f"wacdc check --fix ({set_cmd} binlog_row_metadata = FULL)")
    else:
        yield Finding(OK, "binlog_row_metadata", "FULL")
    options = v.get("binlog_row_value_options")
    if options is not None and "PARTIAL_JSON" in options.upper():
        yield Finding(PROBLEM, "binlog_row_value_options",
                      "is PARTIAL_JSON: JSON updates would be logged as diffs wacdc cannot apply",
                      f"wacdc check --fix ({set_cmd} binlog_row_value_options = '')")
    elif options is not None:
        yield Finding(OK, "binlog_row_value_options", options or "(empty)")


def _compression_checks(v: dict[str, str]) -> Iterator[Finding]:
    if "binlog_transaction_compression" in v:
        # MySQL's compressed transactions (a session can turn them on for itself) are
        # decompressed and replicated (source/payload.py): reported, never a problem.
        state = v["binlog_transaction_compression"] or "OFF"
        yield Finding(OK, "binlog_transaction_compression",
                      f"{state} (compressed transactions are decompressed and replicated)")
    if "log_bin_compress" in v:
        # MariaDB's compressed events are decompressed and replicated (source/event_types.py).
        state = "ON" if (v["log_bin_compress"] or "").upper() in ("ON", "1") else "OFF"
        yield Finding(OK, "log_bin_compress",
                      f"{state} (compressed events are decompressed and replicated)")


def _gtid_check(info: ServerInfo, v: dict[str, str]) -> Finding:
    if info.is_mariadb:
        return Finding(OK, "gtid", f"MariaDB GTID position {v.get('gtid_binlog_pos') or '(empty)'}"
                       "; positions are tracked as file:pos and GTID")
    if v.get("gtid_mode", "OFF").upper() == "ON":
        return Finding(OK, "gtid_mode", "ON: GTID auto-position is used on reconnect")
    return Finding(OK, "gtid_mode", f"{v.get('gtid_mode', 'OFF')}: positions are file:pos "
                   "(fine; a failover to another source would then need a new snapshot)")


def _retention(v: dict[str, str]) -> Finding:
    seconds = int(float(v.get("binlog_expire_logs_seconds", "0") or 0))
    if not seconds:
        seconds = int(float(v.get("expire_logs_days", "0") or 0) * 86400)
    if seconds == 0:
        return Finding(OK, "binlog retention", "binlogs are never purged automatically")
    hours = seconds / 3600
    if seconds < MIN_RETENTION_S:
        return Finding(PROBLEM, "binlog retention", f"binlogs are purged after {hours:.1f} h; "
                       "an outage of wacdc longer than that needs a new snapshot",
                       "raise binlog_expire_logs_seconds to at least 86400 (3+ days is better)")
    return Finding(OK, "binlog retention", f"{hours:.0f} h")
