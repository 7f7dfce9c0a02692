"""The source user's privileges (SHOW GRANTS) and the replica server_id wacdc uses."""

from __future__ import annotations

from collections.abc import Iterator

import pymysql

from wacdc.check.findings import OK, PROBLEM, WARN, Finding
from wacdc.log import redact
from wacdc.source.grants import has_privilege, parse_grants


def privilege_checks(conn: pymysql.connections.Connection, database: str,
                     tables: list[str]) -> Iterator[Finding]:
    with conn.cursor() as cur:
        cur.execute("SHOW GRANTS")
        grants = parse_grants([row[0] for row in cur.fetchall()])
    missing = []
    if not (has_privilege(grants, "REPLICATION SLAVE", database)
            or has_privilege(grants, "REPLICATION REPLICA", database)):
        missing.append("REPLICATION SLAVE (read the binlog)")
    client_ok = any(has_privilege(grants, p, database) for p in
                    ("REPLICATION CLIENT", "BINLOG MONITOR", "SUPER"))
    if not client_ok:
        missing.append("REPLICATION CLIENT (read binlog positions)")
    if not has_privilege(grants, "SELECT", database, tables):
        missing.append(f"SELECT on {database}")
    if not (has_privilege(grants, "LOCK TABLES", database)
            or has_privilege(grants, "RELOAD", database)):
        missing.append(f"LOCK TABLES on {database} or RELOAD (snapshot position, cutover freeze)")
    if missing:
        user = conn.user.decode() if isinstance(conn.user, bytes) else conn.user
        yield Finding(PROBLEM, "privileges", "missing " + "; ".join(missing),
                      f"GRANT {', '.join(m.split(' (')[0].split(' on ')[0] for m in missing)} "
                      f"ON *.* TO '{user}'@'%' (run as an admin)")
    else:
        yield Finding(OK, "privileges", "REPLICATION SLAVE, REPLICATION CLIENT, SELECT, "
                      "LOCK TABLES/RELOAD present")


def server_id_check(conn: pymysql.connections.Connection, v: dict[str, str],
                    ours: int) -> Iterator[Finding]:
    source_id = int(v.get("server_id", "0") or 0)
    if source_id == ours:
        yield Finding(PROBLEM, "server_id", f"WACDC_SERVER_ID {ours} equals the source's "
                      "server_id", "set WACDC_SERVER_ID to a value no server or replica uses")
        return
    try:
        replica_ids = _replica_server_ids(conn)
    except pymysql.err.MySQLError as exc:
        yield Finding(WARN, "server_id", f"{ours} differs from the source's {source_id}; could "
                      f"not list other replicas ({redact(str(exc.args[-1]))})")
        return
    if ours in replica_ids:
        yield Finding(WARN, "server_id", f"a replica with server_id {ours} is connected: a "
                      "running wacdc of this deployment (fine), or a clash",
                      "if no wacdc is running, set a distinct WACDC_SERVER_ID")
    else:
        yield Finding(OK, "server_id", f"{ours} (source is {source_id})")


def _replica_server_ids(conn: pymysql.connections.Connection) -> set[int]:
    with conn.cursor() as cur:
        try:
            cur.execute("SHOW REPLICAS")  # MySQL >= 8.0.22
        except pymysql.err.ProgrammingError:
            cur.execute("SHOW SLAVE HOSTS")  # MariaDB, older MySQL
        return {int(row[0]) for row in cur.fetchall()}
