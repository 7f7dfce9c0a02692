"""What a connection pooler's refusal looks like, and the fix wacdc names for it."""

from __future__ import annotations

DIRECT_URL_FIX = ("point WACDC_TARGET_URL at the direct (non-pooled) URL, e.g. "
                  "POSTGRES_URL_NON_POOLING (Vercel/Neon), Supabase's direct connection on "
                  "port 5432, Prisma's directUrl")


def pooler_hint(message: str) -> str | None:
    """A hint for a connection error a pooler gives and PostgreSQL does not (PgBouncer
    refuses startup parameters it does not track, such as wacdc's `options`)."""
    lowered = message.lower()
    if "unsupported startup parameter" in lowered or "no such user" in lowered \
            or "pgbouncer" in lowered:
        return ("this looks like PgBouncer (a pooler), not PostgreSQL: " + DIRECT_URL_FIX)
    return None
