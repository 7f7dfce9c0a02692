"""`wacdc check`: a preflight of source, binlog settings, privileges, tables and target.

`binlog`, `privileges`, `tables`, `transport` and `target` each check one thing and
yield findings (`findings`); this module runs them in order and holds `--fix`.
"""

from __future__ import annotations

import pymysql

from wacdc.check.binlog import BINLOG_VARIABLES, MIN_RETENTION_S, variable_checks
from wacdc.check.findings import OK, PROBLEM, WARN, Finding, FixResult, exit_code
from wacdc.check.privileges import parse_grants, privilege_checks, server_id_check
from wacdc.check.reverse import reverse_checks
from wacdc.check.tables import table_checks
from wacdc.check.target import MIN_PG_VERSION, target_checks
from wacdc.check.transport import is_loopback_host, plaintext_finding, source_transport_checks
from wacdc.config import Settings
from wacdc.errors import WacdcError
from wacdc.log import redact
from wacdc.schema.profile import Profile
from wacdc.source.connection import connect, global_variables, server_info

__all__ = [
    "MIN_PG_VERSION", "MIN_RETENTION_S", "OK", "PROBLEM", "WARN", "Finding", "FixResult",
    "exit_code", "fix_settings", "is_loopback_host", "parse_grants", "plaintext_finding",
    "run_checks",
]


def run_checks(settings: Settings, profile: Profile, *,
               allow_plaintext: bool = False) -> list[Finding]:
    """All checks. An unreachable source or target raises ConnectError (exit 2).

    `allow_plaintext`: an unencrypted connection to a host that is not loopback is a
    warning instead of a problem (`wacdc check --allow-plaintext`)."""
    url = settings.source()
    settings.target()  # a malformed target URL is an error before anything connects
    conn = connect(url)
    with conn:
        info = server_info(conn)
        findings = [Finding(OK, "source reachable", f"{info} ({info.version}) at {url.redacted}")]
        findings.extend(source_transport_checks(settings, conn, url, allow_plaintext))
        variables = global_variables(conn, BINLOG_VARIABLES)
        findings.extend(variable_checks(info, variables))
        table_findings, table_names = table_checks(settings, profile, conn, url.database)
        findings.extend(privilege_checks(conn, url.database, table_names))
        findings.extend(server_id_check(conn, variables, settings.effective_server_id()))
        findings.extend(table_findings)
        target = list(target_checks(settings, allow_plaintext))
        findings.extend(target)
        if not any(f.status == PROBLEM and f.name == "target reachable" for f in target):
            findings.extend(reverse_checks(settings, conn, table_names))
    return findings


# Settings `--fix` may change online: variable -> wanted value.
_FIXABLE = {
    "binlog_format": "ROW",
    "binlog_row_image": "FULL",
    "binlog_row_metadata": "FULL",
    "binlog_row_value_options": "",
}


def fix_settings(settings: Settings) -> FixResult:
    """Set the binlog variables that can be changed online; say what changed."""
    url = settings.source()
    changed, notes = [], []
    conn = connect(url)
    with conn:
        info = server_info(conn)
        current = global_variables(conn, list(_FIXABLE))
        verb = "SET GLOBAL" if info.is_mariadb else "SET PERSIST"
        for name, want in _FIXABLE.items():
            have = current.get(name)
            if have is None or have.upper() == want.upper():
                continue
            literal = f"'{want}'" if want == "" else want
            try:
                with conn.cursor() as cur:
                    cur.execute(f"{verb} {name} = {literal}")
            except pymysql.err.MySQLError as exc:
                raise WacdcError(f"could not run {verb} {name} = {literal}: "
                                 f"{redact(str(exc.args[-1]))}; run it as an admin "
                                 "(needs SUPER or SYSTEM_VARIABLES_ADMIN)") from None
            changed.append(f"{verb} {name} = {literal} (was {have or 'empty'})")
        if changed:
            notes.append("global settings apply to new sessions: the application's open "
                         "connections keep the old values until they reconnect")
            if info.is_mariadb:
                notes.append("MariaDB has no SET PERSIST: add the same settings to the server's "
                             "my.cnf so they survive a restart")
    return FixResult(changed, notes)
