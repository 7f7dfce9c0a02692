#!/bin/sh
# Make sure MariaDB/MySQL server binaries and PostgreSQL binaries are installed.
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

missing=""
have_mysqld || missing="$missing mariadb-server"
have_postgres || missing="$missing postgresql"
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
    echo "run: brew install mariadb postgresql@16" >&2
elif command -v dnf >/dev/null 2>&1; then
    echo "run: sudo dnf install -y mariadb-server postgresql-server" >&2
else
    echo "install MariaDB (or MySQL 8) server and PostgreSQL 15+ with your package manager" >&2
fi
echo "or point the tests at existing servers: WACDC_TEST_MYSQL_URL / WACDC_TEST_PG_URL" >&2
exit 1
