"""The profile's PostgreSQL extras: full-text and array indexes, materialized views.

Created after the cutover (and by `wacdc schema --apply --extras`); every statement
is idempotent. Materialized views marked `refresh` are refreshed CONCURRENTLY by the
daemon on a schedule once PostgreSQL is the primary (WACDC_MATVIEW_REFRESH).
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from wacdc.log import get_logger
from wacdc.schema.profile import Extra, Profile

log = get_logger("wacdc.extras")


def extras_for(profile: Profile, tables: set[str]) -> list[Extra]:
    """The extras whose tables are all replicated."""
    return [e for e in profile.extras if set(e.tables) <= tables]


def _statement(text: str, schema: str) -> sql.Composed:
    quoted = sql.Identifier(schema).as_string(None)
    return sql.SQL(text.replace("{schema}", quoted))  # type: ignore[arg-type]


def apply_extras(conn: psycopg.Connection, profile: Profile, schema: str,
                 tables: set[str]) -> list[str]:
    """Create the extras (autocommit: CREATE INDEX CONCURRENTLY cannot run in a block)."""
    done = []
    for extra in extras_for(profile, tables):
        for text in extra.statements:
            conn.execute(_statement(text, schema))
        done.append(extra.name)
        log.info("extra created", name=extra.name, kind=extra.kind)
    return done


def refresh_views(conn: psycopg.Connection, profile: Profile, schema: str,
                  tables: set[str]) -> list[str]:
    refreshed = []
    for extra in extras_for(profile, tables):
        if extra.kind == "materialized_view" and extra.refresh:
            conn.execute(sql.SQL("REFRESH MATERIALIZED VIEW CONCURRENTLY {}.{}").format(
                sql.Identifier(schema), sql.Identifier(extra.name)))
            refreshed.append(extra.name)
    return refreshed
