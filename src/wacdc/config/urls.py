"""Connection URLs: parsing, redaction, libpq conninfo and the PostgreSQL query rules.

Errors never echo the URL: the values that fail most often have passwords in them.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from wacdc.errors import ConfigError

MYSQL_SCHEMES = {"mysql", "mariadb", "mysql+pymysql"}
POSTGRES_SCHEMES = {"postgres", "postgresql", "postgresql+psycopg"}
# Pool and timeout settings of the application's driver (Prisma and friends), and Prisma's
# schema: they say nothing libpq has to honour.
POSTGRES_IGNORED_PARAMS = frozenset({
    "connection_limit", "pool_timeout", "socket_timeout", "max_connection_lifetime",
    "max_idle_connection_lifetime", "statement_cache_size", "schema", "pgbouncer",
})


@dataclass(frozen=True)
class DatabaseUrl:
    """A parsed connection URL. `str()` and `repr()` never show the password."""

    scheme: str
    host: str
    port: int
    user: str
    password: str
    database: str
    query: tuple[tuple[str, str], ...] = ()

    @property
    def redacted(self) -> str:
        auth = f"{self.user}:***@" if self.password else (f"{self.user}@" if self.user else "")
        return f"{self.scheme}://{auth}{self.host}:{self.port}/{self.database}"

    def __str__(self) -> str:
        return self.redacted

    def __repr__(self) -> str:
        return f"DatabaseUrl({self.redacted!r})"

    def with_database(self, database: str) -> DatabaseUrl:
        return DatabaseUrl(self.scheme, self.host, self.port, self.user, self.password,
                           database, self.query)

    def conninfo(self) -> str:
        """libpq keyword/value string for psycopg (PostgreSQL URLs only).

        Only libpq's own parameters pass (sslmode, sslrootcert, ...); the ones Prisma and
        poolers add (schema, connection_limit, pool_timeout, ...) stay out. Anything else
        is refused: `postgres_query_problem` names it before a connection is tried."""
        problem = postgres_query_problem(self)
        if problem:
            raise ConfigError(problem)
        parts = {"host": self.host, "port": str(self.port), "dbname": self.database,
                 "user": self.user}
        if self.password:
            parts["password"] = self.password
        known = libpq_keywords()
        parts.update({k: v for k, v in self.query if k in known})
        return " ".join(f"{k}={_libpq_quote(v)}" for k, v in parts.items() if v)

    def param(self, *names: str) -> str | None:
        """The last value of the first of these query parameters the URL has."""
        for name in names:
            values = [v for k, v in self.query if k == name]
            if values:
                return values[-1]
        return None


def _libpq_quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


@lru_cache(maxsize=1)
def libpq_keywords() -> frozenset[str]:
    """Every connection parameter the installed libpq knows."""
    import psycopg.pq

    return frozenset(d.keyword.decode() for d in psycopg.pq.Conninfo.get_defaults())


def postgres_query_problem(url: DatabaseUrl) -> str | None:
    """Why a PostgreSQL URL's query string cannot be used as it is, or None."""
    keys = [k for k, _ in url.query]
    for key in keys:
        if key in ("sslaccept", "sslidentity"):
            return (f"query parameter {key} is Prisma's; libpq (and wacdc) take sslmode="
                    "verify-full with sslrootcert=<CA file> (strict), sslmode=require "
                    "(accept_invalid_certs), sslcert+sslkey (a client certificate)")
        if key not in libpq_keywords() and key not in POSTGRES_IGNORED_PARAMS:
            return (f"unknown query parameter {key!r}: not a libpq parameter (sslmode, "
                    "sslrootcert, sslcert, sslkey, connect_timeout, ...), nor one wacdc "
                    f"ignores ({', '.join(sorted(POSTGRES_IGNORED_PARAMS))})")
    if "sslcert" in keys and "sslkey" not in keys:
        return ("sslcert without sslkey: to libpq sslcert is a client certificate and needs "
                "its sslkey; the CA that signed the server's certificate is sslrootcert "
                "(Prisma's sslcert)")
    return None


def url_query_secrets(url: DatabaseUrl) -> list[str]:
    """Passwords a URL carries in its query string (key passwords, libpq's password)."""
    return [v for k, v in url.query
            if v and k.lower().replace("-", "_") in ("sslpassword", "password",
                                                      "ssl_key_password")]


def parse_url(raw: str, kind: Literal["mysql", "postgresql"]) -> DatabaseUrl:
    """Parse `mysql://user:pass@host:port/db` or `postgresql://...`; errors never show the URL."""
    schemes = MYSQL_SCHEMES if kind == "mysql" else POSTGRES_SCHEMES
    example = ("mysql://user:password@host:3306/database" if kind == "mysql"
               else "postgresql://user:password@host:5432/database")
    try:
        parts = urlsplit(raw.strip())
        port = parts.port
    except ValueError as exc:
        # The message of urlsplit's ValueError does not contain the URL itself.
        raise ValueError(f"not a valid URL ({exc}); expected {example}") from None
    if parts.scheme not in schemes:
        shown = parts.scheme or "none"
        raise ValueError(f"scheme {shown!r} is not one of {sorted(schemes)}; expected {example}")
    if not parts.hostname:
        raise ValueError(f"no host in the URL; expected {example}")
    database = unquote(parts.path.lstrip("/"))
    if kind == "postgresql" and not database:
        raise ValueError(f"no database name in the URL; expected {example}")
    default_port = 3306 if kind == "mysql" else 5432
    return DatabaseUrl(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port or default_port,
        user=unquote(parts.username or ("root" if kind == "mysql" else "postgres")),
        password=unquote(parts.password or ""),
        database=database,
        query=tuple(parse_qsl(parts.query)),
    )


def derive_server_id(seed: str) -> int:
    """A stable replica server_id for this deployment (away from the small ids people pick)."""
    return 1_000_000 + zlib.crc32(seed.encode()) % 1_000_000_000
