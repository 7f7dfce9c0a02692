"""The query string of a MySQL source URL: TLS (ssl-mode semantics) and the connect timeout."""

from __future__ import annotations

from dataclasses import dataclass, field

from wacdc.config.urls import DatabaseUrl

# MySQL URLs take the MySQL clients' TLS parameters (`ssl-mode`, `ssl-ca`, `ssl-cert`,
# `ssl-key`; also spelled with underscores, and `sslmode`), or Prisma's (`sslaccept`,
# `sslcert` = the CA, `sslidentity` = a PKCS#12 client identity, `sslpassword`).
# (PostgreSQL URLs take libpq's: config/urls.py.) The pool and timeout settings an
# application's URL carries for its own driver are accepted and ignored; anything else
# is refused by name, never silently dropped.

SSL_MODES = ("DISABLED", "PREFERRED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY")
_SSL_MODE_SPELLINGS = {
    **{m: m for m in SSL_MODES},
    # libpq's words, for URLs copied between drivers
    "DISABLE": "DISABLED", "PREFER": "PREFERRED", "REQUIRE": "REQUIRED",
    "VERIFY_FULL": "VERIFY_IDENTITY",
}
# Pool and timeout settings of the application's driver (Prisma and friends): they say
# nothing wacdc has to honour (it opens a handful of connections of its own).
MYSQL_IGNORED_PARAMS = frozenset({
    "connection_limit", "pool_timeout", "socket_timeout", "max_connection_lifetime",
    "max_idle_connection_lifetime", "statement_cache_size", "prefer_socket",
})
_MYSQL_TLS_HELP = ("ssl-mode=DISABLED|PREFERRED|REQUIRED|VERIFY_CA|VERIFY_IDENTITY, ssl-ca, "
                   "ssl-cert, ssl-key, or Prisma's sslaccept, sslcert, sslidentity, "
                   "sslpassword")


@dataclass(frozen=True)
class MySQLTls:
    """How a source connection is encrypted (the MySQL client's ssl-mode semantics).

    DISABLED: plaintext. PREFERRED (the default): TLS when the server offers it, else
    plaintext; the certificate is not checked. REQUIRED: TLS or no connection, the
    certificate is not checked. VERIFY_CA: the certificate must chain to `ca` (or the
    system's CAs). VERIFY_IDENTITY: that, and it must name the host."""

    mode: str = "PREFERRED"
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    identity: str | None = None  # PKCS#12 file holding the client certificate and key
    password: str | None = field(default=None, repr=False)  # of `key` / `identity`
    source: str = "default"  # where the mode came from: default, ssl-mode, ssl-ca, prisma

    @property
    def verifies(self) -> bool:
        return self.mode in ("VERIFY_CA", "VERIFY_IDENTITY")

    def describe(self) -> str:
        what = {"DISABLED": "no TLS", "PREFERRED": "TLS if offered, certificate not checked",
                "REQUIRED": "TLS, certificate not checked",
                "VERIFY_CA": "TLS, certificate checked against "
                             + (self.ca or "the system's CAs"),
                "VERIFY_IDENTITY": "TLS, certificate and host name checked against "
                                   + (self.ca or "the system's CAs")}[self.mode]
        return f"ssl-mode={self.mode}: {what}"


@dataclass(frozen=True)
class MySQLOptions:
    """What a MySQL URL's query string says: TLS, the connect timeout."""

    tls: MySQLTls
    connect_timeout: float | None = None
    ignored: tuple[str, ...] = ()


def _mysql_key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def mysql_options(url: DatabaseUrl) -> MySQLOptions:
    """Read the query string of a MySQL URL; ValueError naming the parameter when wacdc
    cannot honour it (the message never holds a value but ssl-mode's)."""
    mysql_style: dict[str, str] = {}
    prisma: dict[str, str] = {}
    connect_timeout: float | None = None
    ignored: list[str] = []
    for raw_key, value in url.query:
        key = _mysql_key(raw_key)
        if key in ("ssl-mode", "sslmode"):
            mysql_style["mode"] = value
        elif key in ("ssl-ca", "ssl-cert", "ssl-key"):
            mysql_style[key[4:]] = value
        elif key in ("sslaccept", "sslcert", "sslidentity", "sslpassword"):
            prisma[key] = value
        elif key == "connect-timeout":
            try:
                seconds = float(value)
            except ValueError:
                raise ValueError(f"query parameter {raw_key} must be a number of seconds"
                                 ) from None
            connect_timeout = seconds if seconds > 0 else None
        elif key == "charset":
            if value.lower() not in ("utf8mb4", "utf8"):
                raise ValueError(f"query parameter {raw_key}={value}: wacdc always reads "
                                 "utf8mb4; drop the parameter")
            ignored.append(raw_key)
        elif key.replace("-", "_") in MYSQL_IGNORED_PARAMS:
            ignored.append(raw_key)
        elif key == "socket":
            raise ValueError(f"query parameter {raw_key}: Unix socket connections are not "
                             "supported; give the server's host and port")
        else:
            raise ValueError(f"unknown query parameter {raw_key!r}; wacdc takes "
                             f"{_MYSQL_TLS_HELP}, connect_timeout, and ignores "
                             f"{', '.join(sorted(MYSQL_IGNORED_PARAMS))}")
    if mysql_style and prisma:
        raise ValueError("mixes the MySQL client's TLS parameters (ssl-mode, ssl-ca, ...) "
                         "with Prisma's (sslaccept, sslcert, ...): use one set")
    tls = _prisma_tls(prisma) if prisma else _mysql_tls(mysql_style)
    return MySQLOptions(tls, connect_timeout, tuple(ignored))


def _mysql_tls(given: dict[str, str]) -> MySQLTls:
    ca, cert, key = given.get("ca") or None, given.get("cert") or None, given.get("key") or None
    if key and not cert:
        raise ValueError("ssl-key needs ssl-cert (the client certificate it belongs to)")
    if "mode" in given:
        spelled = given["mode"].strip().upper().replace("-", "_")
        if spelled not in _SSL_MODE_SPELLINGS:
            raise ValueError(f"ssl-mode={given['mode']} is not one of {', '.join(SSL_MODES)}")
        mode, source = _SSL_MODE_SPELLINGS[spelled], "ssl-mode"
    elif ca:
        mode, source = "VERIFY_CA", "ssl-ca"  # as the mysql client: a CA means verify
    elif cert:
        mode, source = "REQUIRED", "ssl-cert"
    else:
        mode, source = "PREFERRED", "default"
    if mode == "DISABLED" and (ca or cert):
        raise ValueError("ssl-mode=DISABLED contradicts ssl-ca/ssl-cert: drop them, or "
                         "choose a mode that uses TLS")
    if ca and mode in ("PREFERRED", "REQUIRED"):
        raise ValueError(f"ssl-ca is only used to verify the server (ssl-mode=VERIFY_CA or "
                         f"VERIFY_IDENTITY); with ssl-mode={mode} it would be ignored: "
                         "set ssl-mode=VERIFY_CA, or drop ssl-ca")
    if cert and mode == "PREFERRED":
        raise ValueError("a client certificate (ssl-cert) needs ssl-mode=REQUIRED or "
                         "stricter: PREFERRED may fall back to plaintext without it")
    return MySQLTls(mode=mode, ca=ca, cert=cert, key=key, source=source)


def _prisma_tls(given: dict[str, str]) -> MySQLTls:
    """Prisma's MySQL TLS parameters, as Prisma reads them: any of them means TLS;
    certificates are checked (chain and host name) only with sslaccept=strict, against
    sslcert (a CA file, not a client certificate) or the system's CAs."""
    accept = given.get("sslaccept", "accept_invalid_certs").strip().lower()
    if accept not in ("strict", "accept_invalid_certs"):
        raise ValueError("sslaccept must be strict or accept_invalid_certs")
    if given.get("sslpassword") and not given.get("sslidentity"):
        raise ValueError("sslpassword needs sslidentity (the PKCS#12 file it opens)")
    return MySQLTls(mode="VERIFY_IDENTITY" if accept == "strict" else "REQUIRED",
                    ca=given.get("sslcert") or None, identity=given.get("sslidentity") or None,
                    password=given.get("sslpassword") or None, source="prisma")
