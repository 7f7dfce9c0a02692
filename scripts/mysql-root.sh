#!/bin/sh
# Build (once) a minimal Debian sid root holding Oracle MySQL 9.x, for the tests, the demo
# and the benchmarks on machines whose own distribution has no MySQL package.
#
# Debian unstable ships mysql-server-core 9.x, which needs a newer libc than a stable host
# has, so it lives in its own root and mysqld runs through `chroot` (sharing the network:
# it listens on a loopback port like any private server). ~1 minute, ~650 MB; cached
# outside the repository and reused by every later run on this machine.
#
#   scripts/mysql-root.sh          build it if missing; print its path
#   WACDC_MYSQL_ROOT=/path ...     another place for it
#
# Needs root (debootstrap, chroot). The mirror is the host's own Debian mirror, read from
# its apt configuration (override: WACDC_DEBIAN_MIRROR).
set -eu

root="${WACDC_MYSQL_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/wacdc/mysql-sid-root}"

if [ -x "$root/usr/sbin/mysqld" ] && [ -f "$root/.wacdc-ready" ]; then
    echo "$root"
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "building the Oracle MySQL root needs root (debootstrap, chroot); as root run: $0" >&2
    exit 3
fi

host_mirror() {
    # deb822 sources first (Debian 12+), then the one-line format; the first non-security URI.
    for file in /etc/apt/sources.list.d/*.sources; do
        [ -f "$file" ] || continue
        awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }' "$file"
    done
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$file" ] || continue
        awk '/^deb / { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; break } }' "$file"
    done
}
mirror="${WACDC_DEBIAN_MIRROR:-$(host_mirror | grep -v security | head -n 1)}"
if [ -z "$mirror" ]; then
    echo "no Debian mirror in the host's apt configuration; set WACDC_DEBIAN_MIRROR" >&2
    exit 2
fi

if ! command -v debootstrap >/dev/null 2>&1; then
    echo "installing debootstrap" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >&2
fi

mkdir -p "$(dirname "$root")"
exec 9>"$root.lock"
flock 9  # two builds at once (parallel CI jobs) would trample each other
if [ -f "$root/.wacdc-ready" ]; then
    echo "$root"
    exit 0
fi
echo "building an Oracle MySQL root in $root from $mirror (about a minute) ..." >&2
rm -rf "$root.tmp"
debootstrap --variant=minbase --include=mysql-server-core,mysql-client-core \
    sid "$root.tmp" "$mirror" >"$root.log" 2>&1 || {
    echo "debootstrap failed; last lines of $root.log:" >&2
    tail -n 20 "$root.log" >&2
    exit 2
}
# The server package (not installed: it would start a service) is what creates this user.
chroot "$root.tmp" sh -c 'getent group mysql >/dev/null || groupadd -r mysql;
    getent passwd mysql >/dev/null || useradd -r -g mysql -d /nonexistent -s /bin/false mysql'
mkdir -p "$root.tmp/var/lib/wacdc"
chroot "$root.tmp" /usr/sbin/mysqld --version >&2
rm -rf "$root"
mv "$root.tmp" "$root"
touch "$root/.wacdc-ready"
echo "$root"
