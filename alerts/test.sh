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

echo "== runbook anchors"
fail=0
for anchor in $(sed -n 's/^ *runbook: alerts\/RUNBOOK.md#\([a-z0-9-]*\)$/\1/p' ./*.rules.yml | sort -u); do
    if ! grep -qix "## $anchor" RUNBOOK.md; then
        echo "RUNBOOK.md has no section for #$anchor" >&2
        fail=1
    fi
done
n_alerts=$(grep -c '^ *- alert:' dbsync-alerts.rules.yml)
n_runbooks=$(grep -c '^ *runbook: alerts/RUNBOOK.md#' dbsync-alerts.rules.yml)
if [ "$n_alerts" != "$n_runbooks" ]; then
    echo "$n_alerts alerts but $n_runbooks runbook annotations" >&2
    fail=1
fi
[ "$fail" = 0 ] || exit 1

echo "OK: all dbsync rule checks and unit tests passed"
