#!/bin/sh
# Point every alert's runbook_url at your copy of RUNBOOK.md:
#   alerts/set-runbook-base-url.sh https://git.example.org/ops/dbsync-exporter/blob/main/alerts/RUNBOOK.md
# Writes the base to alerts/runbook-base-url (the one place it is kept) and rewrites the
# runbook_url annotations of the rule files and the expected annotations of the unit
# tests to match; alerts/test.sh checks they agree.
set -eu
cd "$(dirname "$0")"
new=${1:?usage: $0 BASE_URL (the RUNBOOK.md URL, without #anchor)}
case "$new" in
    http://*|https://*) ;;
    *) echo "$0: $new is not an absolute http(s) URL" >&2; exit 2 ;;
esac
new=${new%/}
old=$(cat runbook-base-url)
for f in ./*.rules.yml tests/*.test.yml; do
    # '|' cannot occur in a URL unescaped; escape sed's own specials in the old base.
    sed -i "s|runbook_url: $(printf '%s' "$old" | sed 's/[.[\*^$]/\\&/g')#|runbook_url: $new#|" "$f"
done
printf '%s\n' "$new" > runbook-base-url
echo "runbook_url base is now $new; run alerts/test.sh"
