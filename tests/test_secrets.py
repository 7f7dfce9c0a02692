"""No secret reaches the terminal: `wacdc check`, `run` and `status` as subprocesses.

The redactor masks URL passwords by shape; every other place a secret can show up is
covered only because the command line hands `settings.secrets()` (both URL passwords and
WACDC_ADMIN_TOKEN) to it. So each run below makes a server or wacdc itself echo a secret
*outside* a URL -- a database name the server reports as unknown, a table named in
WACDC_TABLES that does not exist -- and requires the message, with `***` in place of the
secret, and no secret anywhere on stdout or stderr. Without the hand-off they leak.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.harness import SourceDb, TargetDb, mysql_connect, run_cli, wacdc_env
from wacdc.config import parse_url

SOURCE_PW = "SrcPw-Kx7q2"
TARGET_PW = "PgPw-Vw93m"
TOKEN = "Tok-Hq5z8r"
SECRETS = (SOURCE_PW, TARGET_PW, TOKEN)


def assert_no_secret(output: str) -> None:
    for secret in SECRETS:
        assert secret not in output, f"{secret!r} printed:\n{output}"


@dataclass
class Secrets:
    source_url: str  # a MySQL user of its own, with SOURCE_PW
    target_url: str  # TARGET_PW (the test PostgreSQL trusts loopback: any password works)

    def env(self, **extra: str) -> dict[str, str]:
        return wacdc_env(self.source_url, self.target_url, WACDC_ADMIN_TOKEN=TOKEN, **extra)


@pytest.fixture
def secrets(source_db: SourceDb, target_db: TargetDb) -> Iterator[Secrets]:
    user = f"sec_{uuid.uuid4().hex[:8]}"
    with mysql_connect(source_db.server.url(""), database="") as conn, conn.cursor() as cur:
        for host in ("127.0.0.1", "localhost", "%"):
            cur.execute("CREATE USER %s@%s IDENTIFIED BY %s", (user, host, SOURCE_PW))
            cur.execute("GRANT ALL PRIVILEGES ON *.* TO %s@%s", (user, host))
    source = parse_url(source_db.url, "mysql")
    target = parse_url(target_db.url, "postgresql")
    try:
        yield Secrets(
            f"mysql://{user}:{SOURCE_PW}@{source.host}:{source.port}/{source.database}",
            f"postgresql://{target.user}:{TARGET_PW}@{target.host}:{target.port}/"
            f"{target.database}")
    finally:
        with mysql_connect(source_db.server.url(""), database="") as conn, \
                conn.cursor() as cur:
            for host in ("127.0.0.1", "localhost", "%"):
                cur.execute("DROP USER IF EXISTS %s@%s", (user, host))


def _with_database(url: str, database: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + database


def test_check_prints_no_secret_when_the_servers_echo_one(secrets: Secrets) -> None:
    # The source server names the unknown database, which holds the source password.
    missing = f"gone_{SOURCE_PW}"
    result = run_cli("check", env=secrets.env(
        WACDC_SOURCE_URL=_with_database(secrets.source_url, missing)))
    assert result.code == 2, result.output
    assert_no_secret(result.output)
    assert "cannot connect to the source" in result.output
    assert "gone_***" in result.output and "Unknown database" in result.output

    # The target server names the unknown database, which holds its password and the token.
    missing = f"gone_{TARGET_PW}_{TOKEN}"
    result = run_cli("check", env=secrets.env(
        WACDC_TARGET_URL=_with_database(secrets.target_url, missing)))
    assert result.code == 2, result.output
    assert_no_secret(result.output)
    assert "cannot connect to the target" in result.output
    assert 'database "gone_***_***" does not exist' in result.output, result.output

    # A wrong source password: refused, and not printed either.
    wrong = secrets.source_url.replace(SOURCE_PW, f"{SOURCE_PW}-wrong")
    result = run_cli("check", env=secrets.env(WACDC_SOURCE_URL=wrong))
    assert result.code == 2 and "cannot connect to the source" in result.output
    assert "Access denied" in result.output and ":***@" in result.output
    assert_no_secret(result.output)


def test_run_and_status_print_no_secret_in_logs_and_errors(secrets: Secrets,
                                                          source_db: SourceDb) -> None:
    # Told to replicate a table that does not exist, named with the token and the source
    # password: `wacdc run` logs its JSON lines, then fails naming the table.
    env = secrets.env(WACDC_TABLES=f"WhatsAppCustomer,gone_{TOKEN}_{SOURCE_PW}",
                      WACDC_LOG_LEVEL="debug")
    result = run_cli("run", "--exit-when-caught-up", env=env)
    assert result.code == 2, result.output
    assert_no_secret(result.output)
    assert "gone_***_***" in result.output and "WACDC_TABLES" in result.output

    # Schema changes whose statements carry all three secrets. The one it must stop at
    # is printed and recorded in the target, where `wacdc status` reads it.
    env = secrets.env(WACDC_TABLES="WhatsAppCustomer", WACDC_LOG_LEVEL="debug")
    result = run_cli("run", "--exit-when-caught-up", env=env)
    assert result.code == 0, result.output
    assert_no_secret(result.output)
    # An added column, named with all three secrets: applied, and logged with its statement.
    added = f"extra_{SOURCE_PW}_{TARGET_PW}_{TOKEN}"
    source_db.execute(f"ALTER TABLE WhatsAppCustomer ADD COLUMN `{added}` TEXT NULL")
    result = run_cli("run", "--exit-when-caught-up", env=env)
    assert result.code == 0, result.output
    assert_no_secret(result.output)
    assert '"schema change applied"' in result.output and "extra_***_***_***" in result.output
    renamed = f"notes_{SOURCE_PW}_{TARGET_PW}_{TOKEN}"
    source_db.execute(f"ALTER TABLE WhatsAppCustomer RENAME COLUMN notes TO `{renamed}`")
    result = run_cli("run", "--exit-when-caught-up", env=env)
    assert result.code == 2, result.output
    assert_no_secret(result.output)
    assert "RENAME COLUMN" in result.output and "WhatsAppCustomer" in result.output
    assert "notes_***_***_***" in result.output
    status = run_cli("status", env=env)
    assert status.code == 1, status.output
    assert_no_secret(status.output)
    assert "RENAME COLUMN" in status.output, status.output
    assert "notes_***_***_***" in status.output, status.output
