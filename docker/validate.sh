#!/bin/sh
# Validate the monitoring-stack configuration without Docker:
#   docker/validate.sh
# - promtool check config on the central Prometheus (incl. its rule files and file_sd
#   targets) and, in agent mode, on the operator-side agent config;
# - amtool check-config on the Alertmanager example (if amtool is installed);
# - haproxy -c on deploy/haproxy/haproxy.cfg (if haproxy is installed);
# - YAML parse of every compose/provisioning file and existence of the relative paths
#   they mount (if python3 with PyYAML is available; optional, skipped otherwise).
set -eu
cd "$(dirname "$0")"
fail=0
run() { echo "== $*"; "$@" || fail=1; }

command -v promtool >/dev/null || { echo "promtool not found" >&2; exit 2; }

run promtool check config central/prometheus.yml

# The agent config reads secrets/remote_write_password relative to itself; check a copy
# next to the example secret so the real secret is not needed.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/secrets"
cp agent/prometheus-agent.yml "$tmp/"
cp agent/secrets/remote_write_password.example "$tmp/secrets/remote_write_password"
run promtool check config --agent "$tmp/prometheus-agent.yml"

if command -v amtool >/dev/null; then
    # Alertmanager < 0.26 (Debian bookworm: 0.25) has no bot_token_file: check a copy with
    # the inline bot_token it takes instead (what tests/stack runs, too).
    am_version=$(amtool --version 2>&1 | sed -n 's/.*version \([0-9]*\.[0-9]*\).*/\1/p' | head -1)
    case "$am_version" in
        0.2[0-5]|0.1*)
            mkdir -p "$tmp/alertmanager"
            cp -r central/alertmanager/templates "$tmp/alertmanager/"
            sed 's|bot_token_file: .*|bot_token: "0:checked-by-validate-sh"|' \
                central/alertmanager/alertmanager.yml > "$tmp/alertmanager/alertmanager.yml"
            run amtool check-config "$tmp/alertmanager/alertmanager.yml" ;;
        *) run amtool check-config central/alertmanager/alertmanager.yml ;;
    esac
else
    echo "-- amtool not found, Alertmanager config not checked"
fi

if command -v haproxy >/dev/null; then
    run haproxy -c -f ../deploy/haproxy/haproxy.cfg
else
    echo "-- haproxy not found, deploy/haproxy/haproxy.cfg not checked"
fi

if python3 -c 'import yaml' 2>/dev/null; then
    echo "== compose / provisioning YAML"
    python3 - <<'PY' || fail=1
import glob, os, sys, yaml
bad = 0
files = sorted(set(glob.glob("**/*.yml", recursive=True)) - {"central/rules"})
for f in files:
    if f.startswith("central/rules/"):
        continue
    try:
        doc = yaml.safe_load(open(f))
    except Exception as e:
        print("FAIL yaml", f, e); bad = 1; continue
    if not os.path.basename(f).startswith("docker-compose"):
        continue
    d = os.path.dirname(f)
    services = doc.get("services", {})
    for inc in doc.get("include", []):
        p = inc if isinstance(inc, str) else inc.get("path")
        if not os.path.exists(os.path.join(d, p)):
            print("FAIL", f, "include missing:", p); bad = 1
        else:
            services.update(yaml.safe_load(open(os.path.join(d, p))).get("services", {}))
    for name, svc in doc.get("services", {}).items():
        for v in svc.get("volumes", []):
            src = v.split(":")[0]
            if src.startswith(".") and not os.path.exists(os.path.join(d, src)):
                if "/secrets/" in src:
                    print("note", f, name, "secret file to be created by the operator:", src)
                else:
                    print("FAIL", f, name, "mount source missing:", src); bad = 1
        deps = svc.get("depends_on", [])
        for dep in (deps if isinstance(deps, list) else deps.keys()):
            if dep not in services:
                print("FAIL", f, name, "depends on unknown service", dep); bad = 1
        b = svc.get("build")
        if b and not os.path.exists(os.path.join(d, b["context"], b["dockerfile"])):
            print("FAIL", f, name, "Dockerfile not found"); bad = 1
    for s in (doc.get("secrets") or {}).values():
        if not os.path.exists(os.path.join(d, s["file"] + ".example")):
            print("FAIL", f, "no example for secret", s["file"]); bad = 1
    print("ok", f)
sys.exit(bad)
PY
else
    echo "-- PyYAML not available, compose files not parsed"
fi

[ "$fail" = 0 ] && echo "OK: stack configuration valid" || { echo "FAILED" >&2; exit 1; }
