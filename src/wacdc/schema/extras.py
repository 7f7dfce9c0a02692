"""The profile's PostgreSQL extras: full-text and array indexes, materialized views.

Created after the cutover (and by `wacdc schema --apply --extras`); every statement
is idempotent. Materialized views marked `refresh` are refreshed CONCURRENTLY by the
daemon on a schedule once PostgreSQL is the primary (WACDC_MATVIEW_REFRESH).
"""

from __future__ import annotations

import os

import psycopg
from psycopg import sql

from wacdc.log import get_logger
from wacdc.schema.profile import Extra, Profile

log = get_logger("wacdc.extras")


# The application's own switch (its seed sets ENABLE_POSTGRES_FULL_TEXT_SEARCH=false when
# it does not query PostgreSQL's full-text search): then the full-text index is not built.
FULL_TEXT_SWITCH = "ENABLE_POSTGRES_FULL_TEXT_SEARCH"
_OFF = ("false", "0", "no", "off")


def full_text_search_enabled() -> bool:
    """False when ENABLE_POSTGRES_FULL_TEXT_SEARCH is false (or 0/no/off); on otherwise."""
    return os.environ.get(FULL_TEXT_SWITCH, "").strip().lower() not in _OFF


def is_full_text(extra: Extra) -> bool:
    """A full-text extra: one whose statements build a tsvector (to_tsvector, tsvector
    columns), as the prisma profile's WhatsAppMessage_message_fts_idx."""
    return any("tsvector" in text.lower() for text in extra.statements)


def extras_for(profile: Profile, tables: set[str]) -> list[Extra]:
    """The extras whose tables are all replicated; without the full-text ones when
    ENABLE_POSTGRES_FULL_TEXT_SEARCH=false."""
    wanted = [e for e in profile.extras if set(e.tables) <= tables]
    if not full_text_search_enabled():
        skipped = [e.name for e in wanted if is_full_text(e)]
        if skipped:
            log.info("full-text extras left out", names=skipped,
                     reason=f"{FULL_TEXT_SWITCH}=false")
        wanted = [e for e in wanted if not is_full_text(e)]
    return wanted


def _statement(text: str, schema: str) -> sql.SQL:
    quoted = sql.Identifier(schema).as_string(None)
    return sql.SQL(text.replace("{schema}", quoted))


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
