"""Settings: environment first, then an optional TOML file (`--config`), then defaults.

Every variable of DESIGN §7 is here. Errors name the variable and never echo a
value, because the values that fail most often are URLs with passwords in them.
`urls` parses connection URLs, `mysql` reads a source URL's TLS parameters,
`settings` is the pydantic model and its loader; every public name is importable
from `wacdc.config`.
"""

from wacdc.config.mysql import (
    MYSQL_IGNORED_PARAMS,
    SSL_MODES,
    MySQLOptions,
    MySQLTls,
    mysql_options,
)
from wacdc.config.settings import Settings, load_settings
from wacdc.config.urls import (
    MYSQL_SCHEMES,
    POSTGRES_IGNORED_PARAMS,
    POSTGRES_SCHEMES,
    DatabaseUrl,
    derive_server_id,
    libpq_keywords,
    parse_url,
    postgres_query_problem,
    url_query_secrets,
)

__all__ = [
    "MYSQL_IGNORED_PARAMS", "MYSQL_SCHEMES", "POSTGRES_IGNORED_PARAMS", "POSTGRES_SCHEMES",
    "SSL_MODES", "DatabaseUrl", "MySQLOptions", "MySQLTls", "Settings", "derive_server_id",
    "libpq_keywords", "load_settings", "mysql_options", "parse_url", "postgres_query_problem",
    "url_query_secrets",
]
