#!/bin/sh
# Validate and unit-test the dbsync Prometheus rules.
#   alerts/test.sh            (from anywhere; needs promtool, e.g. `apt-get install prometheus`)
# Exits non-zero if any rule file fails `promtool check rules` or `vmalert -dryRun`
# (needs victoria-metrics), any unit test in alerts/tests/*.test.yml fails, or a
# runbook_url is not its alert's RUNBOOK.md section under alerts/runbook-base-url.
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

if command -v vmalert >/dev/null 2>&1; then
    # MetricsQL is not PromQL: vmalert must parse every expression and template too.
    echo "== vmalert -dryRun"
    rules=""
    for f in ./*.rules.yml; do rules="$rules -rule=$f"; done
    # shellcheck disable=SC2086
    vmalert -dryRun $rules -loggerLevel=ERROR
else
    echo "vmalert not found (apt-get install victoria-metrics)" >&2
    exit 2
fi

echo "== runbook links"
# Every alert links its own RUNBOOK.md section under the one base URL in runbook-base-url.
base=$(cat runbook-base-url)
fail=0
for anchor in $(sed -n 's/^ *runbook_url: \(.*\)$/\1/p' ./*.rules.yml | sort -u); do
    case "$anchor" in
        "$base#"*) ;;
        *) echo "runbook_url $anchor is not under $base (alerts/set-runbook-base-url.sh)" >&2; fail=1; continue ;;
    esac
    section=${anchor#"$base#"}
    if ! grep -qix "## $section" RUNBOOK.md; then
        echo "RUNBOOK.md has no section for #$section" >&2
        fail=1
    fi
done
# Each alert's link is its own section (heading = alert name).
awk -v base="$base" '
    /^ *- alert:/ { name = tolower($3) }
    /^ *runbook_url:/ { if ($2 != base "#" name) { print "alert " name ": runbook_url " $2 >"/dev/stderr"; bad = 1 } }
    END { exit bad }' dbsync-alerts.rules.yml || fail=1
n_alerts=$(grep -c '^ *- alert:' dbsync-alerts.rules.yml)
n_runbooks=$(grep -c '^ *runbook_url: ' dbsync-alerts.rules.yml)
if [ "$n_alerts" != "$n_runbooks" ]; then
    echo "$n_alerts alerts but $n_runbooks runbook_url annotations" >&2
    fail=1
fi
[ "$fail" = 0 ] || exit 1

echo "OK: all dbsync rule checks and unit tests passed"
