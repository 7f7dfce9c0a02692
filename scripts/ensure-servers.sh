#!/bin/sh
# Make sure MariaDB, Oracle MySQL and PostgreSQL server binaries (and promtool) are installed.
# The tests start private servers from them; nothing here starts a service.
set -eu

have_mysqld() {
    command -v mariadbd >/dev/null 2>&1 || command -v mysqld >/dev/null 2>&1 ||
        [ -x /usr/sbin/mariadbd ] || [ -x /usr/sbin/mysqld ]
}
have_postgres() {
    command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1 && return 0
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}

have_pgbouncer() {
    # For the pooled-target tests (tests/test_pooled_target.py): a private PgBouncer.
    command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]
}

have_oracle_mysql() {
    # An installed Oracle mysqld (not MariaDB's mysqld link), or the cached sid root.
    for bin in $(command -v mysqld 2>/dev/null) /usr/sbin/mysqld; do
        [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -qv -i mariadb && return 0
    done
    return 1
}

# Oracle MySQL (the application's real source): every real-server test runs on it too.
# Without an installed one, a Debian sid root with MySQL 9 (scripts/mysql-root.sh, cached
# outside the repo). Without root it cannot be built: the MySQL tests are then skipped
# on a developer machine, and fail on CI.
if [ -z "${WACDC_TEST_MYSQL_URL:-}" ] && ! have_oracle_mysql; then
    if [ "$(id -u)" = "0" ]; then
        sh "$(dirname "$0")/mysql-root.sh" >/dev/null
    else
        echo "no Oracle MySQL: the [mysql] tests will be skipped; as root run" \
            "scripts/mysql-root.sh, or install mysql-server 8.0+" >&2
    fi
fi

# promtool, for the alert-rule tests (tests/test_deploy_monitoring.py): on PATH, else taken
# once out of Debian's prometheus package into ~/.cache/wacdc/promtool (no service).
sh "$(dirname "$0")/ensure-promtool.sh"

missing=""
have_mysqld || missing="$missing mariadb-server"
have_postgres || missing="$missing postgresql"
have_pgbouncer || missing="$missing pgbouncer"
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
    exit 0
fi
echo "missing server binaries:$missing" >&2
if command -v apt-get >/dev/null 2>&1; then
    echo "run: sudo apt-get install -y$missing" >&2
elif command -v brew >/dev/null 2>&1; then
    echo "run: brew install mariadb postgresql@16 pgbouncer" >&2
elif command -v dnf >/dev/null 2>&1; then
    echo "run: sudo dnf install -y mariadb-server postgresql-server pgbouncer" >&2
else
    echo "install MariaDB (or MySQL 8) server and PostgreSQL 15+ with your package manager" >&2
fi
echo "or point the tests at existing servers: WACDC_TEST_MYSQL_URL / WACDC_TEST_PG_URL" >&2
exit 1
