#!/bin/sh
# Make sure promtool (Prometheus's rule checker) is there for tests/test_deploy_monitoring.py,
# which runs `promtool check rules` and `promtool test rules deploy/prometheus/alerts.test.yml`.
#
#   scripts/ensure-promtool.sh     find promtool, else fetch it once; print where it is
#   WACDC_PROMTOOL_DIR=/path ...   another cache directory for it
#
# promtool on PATH is used as it is. Otherwise only /usr/bin/promtool is taken out of Debian's
# `prometheus` package (`apt-get download` + `dpkg-deb -x`, nothing installed, no service
# started) into ${XDG_CACHE_HOME:-~/.cache}/wacdc/promtool, where the tests look after PATH.
# Root is needed only to refresh missing package lists. Without apt the promtool tests are
# skipped on a developer machine and fail on CI (CI=true); this script then says why and
# exits 0, so the rest of `make test` still runs.
set -eu

dir="${WACDC_PROMTOOL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/wacdc/promtool}"

version_of() {
    "$1" --version 2>&1 | head -n 1
}
works() {
    "$1" --version >/dev/null 2>&1
}
unavailable() {
    echo "promtool unavailable: $1." >&2
    echo "  the promtool tests (tests/test_deploy_monitoring.py) will be skipped here and" \
        "fail on CI; put promtool on PATH (Prometheus release, or apt-get install" \
        "prometheus) or run this script where apt-get works" >&2
    exit 0
}

if bin=$(command -v promtool 2>/dev/null) && works "$bin"; then
    echo "promtool: $bin ($(version_of "$bin"))"
    exit 0
fi
if [ -x "$dir/promtool" ] && works "$dir/promtool"; then
    echo "promtool: $dir/promtool ($(version_of "$dir/promtool"))"
    exit 0
fi

command -v apt-get >/dev/null 2>&1 || unavailable "no apt-get on this machine"
command -v dpkg-deb >/dev/null 2>&1 || unavailable "no dpkg-deb on this machine"

export DEBIAN_FRONTEND=noninteractive
if ! apt-cache show prometheus >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ]; then
        echo "promtool: refreshing the package lists (apt-get update)"
        apt-get update -qq || unavailable "apt-get update failed"
    fi
    apt-cache show prometheus >/dev/null 2>&1 ||
        unavailable "no 'prometheus' package in the apt lists (as root: apt-get update)"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# As root, apt fetches as the sandbox user _apt, which must be able to write here.
if [ "$(id -u)" = "0" ] && id _apt >/dev/null 2>&1; then
    chown _apt "$tmp"
fi
echo "promtool: downloading Debian's prometheus package to take promtool out of it"
(cd "$tmp" && apt-get download -qq prometheus) || unavailable "apt-get download prometheus failed"
deb=$(ls "$tmp"/prometheus_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || unavailable "apt-get download left no prometheus .deb"
mkdir -p "$tmp/x"
dpkg-deb -x "$deb" "$tmp/x"
[ -x "$tmp/x/usr/bin/promtool" ] || unavailable "the prometheus package has no /usr/bin/promtool"
works "$tmp/x/usr/bin/promtool" ||
    unavailable "the packaged promtool does not run here ($(version_of "$tmp/x/usr/bin/promtool"))"

mkdir -p "$dir"
cp "$tmp/x/usr/bin/promtool" "$dir/promtool.tmp.$$"
mv -f "$dir/promtool.tmp.$$" "$dir/promtool"  # atomic: a parallel run sees old or new
basename "$deb" >"$dir/SOURCE"
echo "promtool: $dir/promtool ($(version_of "$dir/promtool"), from $(basename "$deb"))"
