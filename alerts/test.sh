#!/bin/sh
# Validate and unit-test the dbsync Prometheus rules.
#   alerts/test.sh            (from anywhere; needs promtool, e.g. `apt-get install prometheus`)
# Exits non-zero if any rule file fails `promtool check rules` or any unit test
# in alerts/tests/*.test.yml fails.
set -eu
cd "$(dirname "$0")"

if ! command -v promtool >/dev/null 2>&1; then
    echo "promtool not found (apt-get install prometheus, or a Prometheus release tarball)" >&2
    exit 2
fi

echo "== promtool check rules"
promtool check rules ./*.rules.yml

echo "== promtool test rules"
promtool test rules tests/*.test.yml

echo "OK: all dbsync rule checks and unit tests passed"
