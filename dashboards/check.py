#!/usr/bin/env python3
"""Lint the Grafana dashboards in this directory (stdlib only; uses promtool if present).

    python3 dashboards/check.py

Checks, for every *.json dashboard:
  * schemaVersion >= 39, no `__inputs`, unique panel ids, panels inside the 24-column grid;
  * a `datasource` variable (type datasource, query prometheus), and `network` / `instance`
    query variables fed by the recording rule dbsync:instance:info; every panel and target uses uid `${datasource}`;
  * no hard-coded instance (every `instance` matcher uses $instance);
  * every metric name in every expression is in the dbsync-exporter metric contract or is a
    recording rule defined in ../alerts/*.rules.yml;
  * every expression is valid PromQL (`promtool check rules` on a generated rule file, with the
    Grafana variables replaced by sample values), when promtool is installed.
Exits 1 on any problem.
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

CONTRACT = """
dbsync_up dbsync_info dbsync_exporter_build_info dbsync_block_height dbsync_slot_number dbsync_epoch_number
dbsync_tip_timestamp_seconds dbsync_tip_age_seconds dbsync_expected_slot_number dbsync_slot_lag
dbsync_sync_progress_ratio dbsync_epoch_progress_ratio dbsync_rollbacks_total dbsync_last_rollback_depth_blocks
dbsync_last_epoch_sync_duration_seconds dbsync_last_synced_epoch_number dbsync_check_success
dbsync_check_duration_seconds dbsync_check_last_success_timestamp_seconds dbsync_check_interval_seconds
dbsync_check_runs_total dbsync_check_applicable dbsync_db_connections dbsync_db_max_connections
dbsync_mir_unpaid_payments dbsync_mir_unpaid_lovelace dbsync_mir_orphan_rewards dbsync_pool_refunds_missing
dbsync_pool_refunds_missing_lovelace dbsync_pool_refunds_unclaimed dbsync_ada_pots_deviation_lovelace
dbsync_ada_pots_inconsistent_epochs dbsync_ada_pots_missing_epochs dbsync_epoch_stake_complete
dbsync_block_tx_count_mismatches dbsync_pool_updates_without_owner
dbsync_tx_balance_mismatches dbsync_tx_in_double_spends dbsync_supply_drift_lovelace
dbsync_withdrawal_excess_accounts
dbsync_block_number_gaps dbsync_block_time_disorder dbsync_blocks_in_future dbsync_epoch_table_mismatches
dbsync_health_state dbsync_health_reason dbsync_peer_block_height dbsync_peer_up dbsync_fleet_lag_blocks
dbsync_grest_info dbsync_grest_cache_lag_blocks dbsync_grest_cache_last_update_timestamp_seconds
dbsync_database_size_bytes dbsync_schema_size_bytes dbsync_database_connections
process_resident_memory_bytes process_virtual_memory_bytes process_open_fds process_max_fds dbsync_db_tls
""".split()

PROMQL_WORDS = set("""
by without on ignoring group_left group_right bool and or unless offset
abs absent absent_over_time ceil changes clamp clamp_max clamp_min day_of_month day_of_week day_of_year
days_in_month delta deriv exp floor histogram_quantile holt_winters hour idelta increase irate label_join
label_replace ln log2 log10 minute month predict_linear rate resets round scalar sgn sort sort_desc sqrt
time timestamp vector year avg_over_time min_over_time max_over_time sum_over_time count_over_time
quantile_over_time stddev_over_time stdvar_over_time last_over_time present_over_time
sum min max avg group stddev stdvar count count_values bottomk topk quantile
inf nan
""".split())

VAR_VALUES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "${datasource}": "x"}


def recording_rules():
    names = set()
    for path in glob.glob(os.path.join(HERE, "..", "alerts", "*.rules.yml")):
        names.update(re.findall(r"^\s*-?\s*record:\s*(\S+)", open(path).read(), re.M))
    return names


def metric_names(expr):
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)                     # strings
    e = re.sub(r"\{[^}]*\}", "", e)                                   # label matchers
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", e)
    e = re.sub(r"\[[^\]]*\]", "", e)                                  # ranges
    e = re.sub(r"(?<![A-Za-z0-9_:])\d+(\.\d+)?(e[+-]?\d+)?", "", e)    # numbers, not digits in names
    names = set()
    for tok in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        if tok.lower() not in PROMQL_WORDS:
            names.add(tok)
    return names


def walk_panels(panels):
    for p in panels:
        yield p
        yield from walk_panels(p.get("panels", []))


def main():
    problems = []
    allowed = set(CONTRACT) | recording_rules()
    exprs = []
    files = sorted(glob.glob(os.path.join(HERE, "*.json")))
    if not files:
        problems.append("no dashboards found")
    for path in files:
        name = os.path.basename(path)
        d = json.load(open(path))

        def bad(msg):
            problems.append(f"{name}: {msg}")

        if d.get("schemaVersion", 0) < 39:
            bad("schemaVersion < 39")
        if "__inputs" in d:
            bad("__inputs present (breaks file provisioning)")
        if re.search(r'instance\s*=~?\s*"(?!\$instance")', json.dumps(d).replace('\\"', '"')):
            bad("hard-coded instance matcher")
        vars_ = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
        ds = vars_.get("datasource")
        if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
            bad("missing datasource variable of type datasource/prometheus")
        for var, q in (("network", "label_values(dbsync:instance:info, network)"),
                       ("instance", 'label_values(dbsync:instance:info{network=~"$network"}, instance)')):
            v = vars_.get(var)
            query = v and (v["query"]["query"] if isinstance(v.get("query"), dict) else v.get("query"))
            if not v or v.get("type") != "query" or query != q:
                bad(f"variable {var} must be a query variable: {q}")
            elif v.get("datasource", {}).get("uid") != "${datasource}":
                bad(f"variable {var} does not use ${{datasource}}")
        ids = set()
        for p in walk_panels(d.get("panels", [])):
            pid = p.get("id")
            if pid in ids:
                bad(f"duplicate panel id {pid}")
            ids.add(pid)
            g = p.get("gridPos", {})
            if g.get("x", 0) + g.get("w", 0) > 24:
                bad(f"panel {pid} outside the grid")
            if p.get("type") != "row" and p.get("datasource", {}).get("uid") != "${datasource}":
                bad(f"panel {pid} ({p.get('title')}) does not use ${{datasource}}")
            for t in p.get("targets", []):
                if t.get("datasource", {}).get("uid") != "${datasource}":
                    bad(f"panel {pid} target {t.get('refId')} does not use ${{datasource}}")
                expr = t.get("expr", "")
                if not expr:
                    bad(f"panel {pid} target {t.get('refId')} has no expr")
                    continue
                for m in metric_names(expr):
                    if m not in allowed:
                        bad(f"panel {pid} ({p.get('title')}): unknown metric {m!r} in {expr}")
                exprs.append((f"{name} panel {pid} {t.get('refId')}", expr))

    promtool = shutil.which("promtool")
    if promtool and exprs:
        with tempfile.TemporaryDirectory() as tmp:
            rf = os.path.join(tmp, "dashboards.rules.yml")
            with open(rf, "w") as f:
                f.write("groups:\n  - name: dashboard-exprs\n    rules:\n")
                for i, (where, expr) in enumerate(exprs):
                    e = expr
                    for k, v in VAR_VALUES.items():
                        e = e.replace(k, v)
                    e = re.sub(r"\$\{?(network|instance)\}?", ".*", e)
                    if re.search(r"\$(?!\d)", e):  # $1 etc. are label_replace references
                        problems.append(f"{where}: unknown Grafana variable in {expr}")
                    f.write(f"      # {where}\n      - record: dashboard:expr_{i}\n        expr: {json.dumps(e)}\n")
            r = subprocess.run([promtool, "check", "rules", "--lint=none", rf], capture_output=True, text=True)
            if r.returncode != 0:
                problems.append("promtool rejected a dashboard expression:\n" + r.stdout + r.stderr)
    elif not promtool:
        print("warning: promtool not found, PromQL syntax not checked", file=sys.stderr)

    for p in problems:
        print("FAIL:", p)
    if problems:
        return 1
    print(f"OK: {len(files)} dashboards, {len(exprs)} expressions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
