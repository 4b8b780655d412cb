#!/usr/bin/env python3
"""Generate the Grafana dashboards in this directory (stdlib only).

    python3 dashboards/generate.py      # rewrites fleet-overview.json, instance-detail.json, integrity.json,
                                        # fleet-trends.json

The JSON files are committed and are what Grafana imports/provisions; this script
just keeps the four dashboards consistent (variables, datasource references,
panel ids, layout).  Edit here, re-run, commit both.

Conventions (see README.md): a `datasource` variable of type datasource; every
panel and target uses {"type": "prometheus", "uid": "${datasource}"}; `network`
and `instance` variables come from dbsync:instance:info (every instance, also one
whose database never answered); no hard-coded instance; colour thresholds come from
../alerts/dbsync-thresholds.rules.yml.  Queries
only use dbsync-exporter metrics and the recording rules in ../alerts/.
"""
import json
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
DS = {"type": "prometheus", "uid": "${datasource}"}
INST = 'instance=~"$instance"'
# Every instance with its network ("unknown" while its database was never read): the
# recording rule dbsync:instance:info, fed by a series every exporter serves from its start.
INSTANCES = "dbsync:instance:info"
# Restrict anything to the selected networks/instances and give it a `network` label.
INFO_SEL = f'max by (instance, job, network) ({INSTANCES}{{network=~"$network", instance=~"$instance"}})'


def read_thresholds():
    """The dbsync:threshold:* constants of ../alerts/dbsync-thresholds.rules.yml, by name."""
    path = os.path.join(HERE, "..", "alerts", "dbsync-thresholds.rules.yml")
    pairs = re.findall(r"record:\s*dbsync:threshold:(\w+)\s*\n\s*expr:\s*vector\(([0-9.]+)\)", open(path).read())
    return {name: float(value) if "." in value else int(value) for name, value in pairs}


# Colours change where the alerts fire and the exporter's health policy drains/downs
# (the thresholds file holds the same numbers as the health defaults; tests/stack checks).
TH = read_thresholds()
TIP_AGE_STEPS = [(TH["tip_age_warning_seconds"], "orange"), (TH["tip_age_critical_seconds"], "red")]
FLEET_LAG_STEPS = [(TH["fleet_lag_blocks"], "orange"), (TH["fleet_lag_critical_blocks"], "red")]
LOVELACE = "suffix: lovelace"


def with_net(expr):
    """expr * the selected instances' network (filters by $network and $instance)."""
    return f"{expr} * on (instance, job) group_left (network) {INFO_SEL}"


class Board:
    def __init__(self):
        self.panels = []
        self.next_id = 1
        self.y = 0
        self.x = 0
        self.row_h = 0

    def add(self, panel, w, h):
        if self.x + w > 24:
            self.y += self.row_h
            self.x = 0
            self.row_h = 0
        panel["id"] = self.next_id
        self.next_id += 1
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        if panel["type"] != "row":
            panel.setdefault("datasource", DS)
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)
        return panel

    def row(self, title):
        if self.x:
            self.y += self.row_h
            self.x = 0
            self.row_h = 0
        self.add({"type": "row", "title": title, "collapsed": False, "panels": [], "datasource": DS}, 24, 1)
        self.y += 1
        self.x = 0
        self.row_h = 0


def target(expr, legend="", ref="A", instant=False, fmt="time_series"):
    t = {"datasource": DS, "refId": ref, "expr": expr, "legendFormat": legend or "__auto",
         "range": not instant, "instant": instant, "format": fmt, "editorMode": "code"}
    return t


def thresholds(*steps):
    st = [{"color": "green", "value": None}]
    for value, color in steps:
        st.append({"color": color, "value": value})
    return {"mode": "absolute", "steps": st}


def timeseries(title, targets, unit="short", description="", steps=(), stack=False, draw="line", minv=None, decimals=None):
    defaults = {"unit": unit, "thresholds": thresholds(*steps), "color": {"mode": "palette-classic"},
                "custom": {"drawStyle": draw, "lineWidth": 1, "fillOpacity": 10 if not stack else 40,
                           "showPoints": "never", "spanNulls": False,
                           "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                           "thresholdsStyle": {"mode": "dashed" if steps else "off"}}}
    if minv is not None:
        defaults["min"] = minv
    if decimals is not None:
        defaults["decimals"] = decimals
    return {"type": "timeseries", "title": title, "description": description, "targets": targets,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"],
                                   "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}}}


def stat(title, expr, unit="short", steps=(), mappings=None, legend="{{instance}}", description="", color_mode="background"):
    return {"type": "stat", "title": title, "description": description,
            "targets": [target(expr, legend, instant=True)],
            "fieldConfig": {"defaults": {"unit": unit, "thresholds": thresholds(*steps), "mappings": mappings or [],
                                         "color": {"mode": "thresholds"}}, "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": color_mode, "graphMode": "none", "textMode": "auto", "justifyMode": "auto",
                        "orientation": "auto"}}


def state_timeline(title, targets, mappings, steps=(), description=""):
    return {"type": "state-timeline", "title": title, "description": description, "targets": targets,
            "fieldConfig": {"defaults": {"mappings": mappings, "thresholds": thresholds(*steps),
                                         "color": {"mode": "thresholds"},
                                         "custom": {"fillOpacity": 80, "lineWidth": 0}}, "overrides": []},
            "options": {"showValue": "never", "mergeValues": True, "rowHeight": 0.9,
                        "legend": {"showLegend": False}, "tooltip": {"mode": "single"}}}


def text(title, content):
    return {"type": "text", "title": title, "options": {"mode": "markdown", "content": content.strip() + "\n"}}


def vmap(pairs):
    """[(value, text, color)] -> value mappings."""
    return [{"type": "value", "options": {str(v): {"text": t, "color": c, "index": i}
                                           for i, (v, t, c) in enumerate(pairs)}}]


HEALTH_MAP = vmap([(0, "UP", "green"), (1, "DRAIN", "orange"), (2, "DOWN", "red")])
OK_MAP = vmap([(1, "OK", "green"), (0, "FAIL", "red")])
BOOL_UP_MAP = vmap([(1, "UP", "green"), (0, "DOWN", "red")])


def override(name, *props):
    return {"matcher": {"id": "byName", "options": name},
            "properties": [{"id": k, "value": v} for k, v in props]}


def color_cell():
    return ("custom.cellOptions", {"type": "color-background", "mode": "basic"})


def table(title, targets, rename, order, overrides=(), description="", sort=None, hide=()):
    exclude = {"Time": True}
    for h in hide:
        exclude[h] = True
    panel = {"type": "table", "title": title, "description": description, "targets": targets,
             "transformations": [
                 {"id": "merge", "options": {}},
                 {"id": "organize", "options": {"excludeByName": exclude,
                                                "indexByName": {k: i for i, k in enumerate(order)},
                                                "renameByName": rename}}],
             "fieldConfig": {"defaults": {"custom": {"align": "auto", "cellOptions": {"type": "auto"},
                                                     "filterable": True},
                                          "thresholds": thresholds(), "color": {"mode": "thresholds"}},
                             "overrides": list(overrides)},
             "options": {"showHeader": True, "cellHeight": "sm",
                         "footer": {"show": False, "reducer": ["sum"], "fields": ""}}}
    if sort:
        panel["options"]["sortBy"] = [{"displayName": sort, "desc": True}]
    return panel


def templating(instance_multi=True):
    return {"list": [
        {"type": "datasource", "name": "datasource", "label": "Data source", "query": "prometheus",
         "current": {}, "hide": 0, "refresh": 1, "regex": "", "includeAll": False, "multi": False,
         "options": [], "skipUrlSync": False},
        {"type": "query", "name": "network", "label": "Network", "datasource": DS,
         "definition": f"label_values({INSTANCES}, network)",
         # plain string: Grafana migrates it to its editor model on load (an object with
         # qryType would need the editor's separate metric/label fields)
         "query": f"label_values({INSTANCES}, network)",
         "refresh": 2, "sort": 1, "includeAll": True, "multi": True, "allValue": ".*",
         "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
         "hide": 0, "options": [], "regex": "", "skipUrlSync": False},
        {"type": "query", "name": "instance", "label": "Instance", "datasource": DS,
         "definition": f'label_values({INSTANCES}{{network=~"$network"}}, instance)',
         "query": f'label_values({INSTANCES}{{network=~"$network"}}, instance)',
         "refresh": 2, "sort": 1, "includeAll": True, "multi": instance_multi,
         "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
         "hide": 0, "options": [], "regex": "", "skipUrlSync": False},
    ]}


def dashboard(uid, title, description, board, instance_multi=True, time_from="now-6h"):
    return {
        "uid": uid, "title": title, "description": description,
        "tags": ["dbsync", "cardano", "db-sync"], "editable": True, "graphTooltip": 1,
        "schemaVersion": 39, "version": 1, "timezone": "browser", "refresh": "1m",
        "time": {"from": time_from, "to": "now"}, "timepicker": {}, "fiscalYearStartMonth": 0,
        "liveNow": False, "weekStart": "",
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                                  "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                                  "name": "Annotations & Alerts", "type": "dashboard"}]},
        "links": [{"type": "dashboards", "tags": ["dbsync"], "asDropdown": True, "title": "dbsync dashboards",
                   "includeVars": True, "keepTime": True, "icon": "external link", "targetBlank": False,
                   "tooltip": "", "url": ""}],
        "templating": templating(instance_multi),
        "panels": board.panels,
    }


# =============================================================================
def fleet_overview():
    b = Board()
    sel = f'network=~"$network", {INST}'
    b.add(stat("Instances", f"count({INSTANCES}{{{sel}}})", legend="instances", color_mode="value"), 4, 4)
    b.add(stat("Health UP", f"count({with_net('dbsync:health_state:code')} == 0) or vector(0)",
               legend="up", color_mode="value"), 4, 4)
    b.add(stat("Health DRAIN", f"count({with_net('dbsync:health_state:code')} == 1) or vector(0)",
               legend="drain", steps=[(1, "orange")]), 4, 4)
    b.add(stat("Health DOWN", f"count({with_net('dbsync:health_state:code')} == 2) or vector(0)",
               legend="down", steps=[(1, "red")]), 4, 4)
    b.add(stat("Oldest tip", f"max(dbsync:tip_age_seconds:with_network{{{sel}}})", unit="s",
               legend="oldest", steps=TIP_AGE_STEPS), 4, 4)
    b.add(stat("Integrity problems", f"sum({with_net('dbsync:integrity_problems:count')}) or vector(0)",
               legend="problems", steps=[(1, "red")]), 4, 4)

    tq = lambda expr, ref: target(f"max by (network, instance) ({expr})", ref=ref, instant=True, fmt="table")
    fleet_table = table(
        "Instances",
        [
            # every instance, also one whose database never answered (network "unknown")
            target(f"max by (network, instance, operator) ({INSTANCES}{{{sel}}})",
                   ref="A", instant=True, fmt="table"),
            target(f'max by (network, instance, dbsync_release, schema) (dbsync_info{{{sel}}})',
                   ref="J", instant=True, fmt="table"),
            tq(with_net("dbsync:health_state:code"), "B"),
            tq(with_net("dbsync_up"), "C"),
            tq(f"dbsync:block_height:with_network{{{sel}}}", "D"),
            tq(f"dbsync:tip_age_seconds:with_network{{{sel}}}", "E"),
            tq(f"dbsync:blocks_behind_fleet{{{sel}}}", "F"),
            tq(with_net("dbsync:integrity_problems:count"), "G"),
            tq(with_net("dbsync:check_failures:count"), "H"),
            tq(with_net("dbsync_epoch_number"), "I"),
        ],
        rename={"network": "Network", "instance": "Instance", "operator": "Operator",
                "dbsync_release": "db-sync", "schema": "Schema",
                "Value #B": "Health", "Value #C": "DB", "Value #D": "Tip height", "Value #E": "Tip age",
                "Value #F": "Behind fleet (blocks)", "Value #G": "Integrity problems",
                "Value #H": "Failing checks", "Value #I": "Epoch"},
        order=["network", "instance", "operator", "Value #B", "Value #C", "Value #D", "Value #E", "Value #F",
               "Value #I", "dbsync_release", "schema", "Value #G", "Value #H"],
        hide=["Value #A", "Value #J"],
        sort="Behind fleet (blocks)",
        description="One row per instance on the selected networks, including instances whose database never "
                    "answered (network unknown, DB DOWN). Health: what HAProxy sees (UP/DRAIN/DOWN). "
                    "Behind fleet: blocks below the best instance of the same network (recording rule "
                    "dbsync:blocks_behind_fleet). Integrity problems: number of non-zero integrity series. "
                    "Failing checks: background checks whose last run failed.",
        overrides=[
            override("Health", color_cell(), ("mappings", HEALTH_MAP)),
            override("DB", color_cell(), ("mappings", BOOL_UP_MAP)),
            override("Tip height", ("unit", "none"), ("decimals", 0)),
            override("Tip age", ("unit", "s"), color_cell(), ("thresholds", thresholds(*TIP_AGE_STEPS))),
            override("Behind fleet (blocks)", ("unit", "none"), color_cell(),
                     ("thresholds", thresholds(*FLEET_LAG_STEPS))),
            override("Integrity problems", color_cell(), ("thresholds", thresholds((1, "red")))),
            override("Failing checks", color_cell(), ("thresholds", thresholds((1, "orange")))),
        ])
    b.add(fleet_table, 24, 12)

    b.add(timeseries("Tip age per instance", [
        target(f"dbsync:tip_age_seconds:with_network{{{sel}}}", "{{network}} {{instance}}")],
        unit="s", steps=TIP_AGE_STEPS, minv=0,
        description="Seconds since the slot time of each instance's newest block. 600 s is the Koios limit."), 12, 9)
    b.add(timeseries("Blocks behind the fleet's best (same network)", [
        target(f"dbsync:blocks_behind_fleet{{{sel}}}", "{{network}} {{instance}}")],
        unit="none", steps=FLEET_LAG_STEPS, minv=0,
        description="dbsync:blocks_behind_fleet: best height of the network minus this instance's height "
                    "(orange: drain and alert, red: the health policy takes it down)."), 12, 9)
    b.add(timeseries("Best block height per network", [
        target('dbsync:fleet_best_block_height:max{network=~"$network"}', "{{network}}")],
        unit="none", decimals=0), 8, 8)
    b.add(timeseries("Instances per health state", [
        target(f"sum by (state) ({with_net('dbsync_health_state')})", "{{state}}")],
        unit="none", stack=True, minv=0, decimals=0), 8, 8)
    b.add(timeseries("Failing checks per instance", [
        target(f"{with_net('dbsync:check_failures:count')} > 0", "{{network}} {{instance}}")],
        unit="none", minv=0, decimals=0,
        description="Only instances with at least one failing check are shown."), 8, 8)
    return dashboard("dbsync-fleet-overview", "dbsync / Fleet overview",
                     "All db-sync instances scraped by this Prometheus: health, tip, lag behind the fleet, "
                     "integrity and checks.", b)


# =============================================================================
def instance_detail():
    b = Board()
    i = INST
    b.add(stat("Health", f"dbsync:health_state:code{{{i}}}", mappings=HEALTH_MAP,
               steps=[(1, "orange"), (2, "red")]), 4, 4)
    b.add(stat("DB reachable", f"dbsync_up{{{i}}}", mappings=BOOL_UP_MAP, steps=[]), 4, 4)
    b.add(stat("Tip age", f"dbsync_tip_age_seconds{{{i}}}", unit="s", steps=TIP_AGE_STEPS), 4, 4)
    b.add(stat("Block height", f"dbsync_block_height{{{i}}}", unit="none", color_mode="value"), 4, 4)
    b.add(stat("Sync progress", f"dbsync_sync_progress_ratio{{{i}}}", unit="percentunit",
               color_mode="value"), 4, 4)
    b.add(stat("Epoch progress", f"dbsync_epoch_progress_ratio{{{i}}}", unit="percentunit",
               color_mode="value"), 4, 4)

    b.add(table("Versions", [
        target(f"max by (instance, network, dbsync_release, schema) (dbsync_info{{{i}}})", ref="A", instant=True,
               fmt="table"),
        target("max by (instance, exporter_version) (label_replace("
               f'dbsync_exporter_build_info{{{i}}}, "exporter_version", "$1", "version", "(.*)"))',
               ref="B", instant=True, fmt="table"),
        target("max by (instance, grest_version) (label_replace("
               f'dbsync_grest_info{{{i}}}, "grest_version", "$1", "version", "(.*)"))',
               ref="C", instant=True, fmt="table"),
    ], rename={"instance": "Instance", "network": "Network", "dbsync_release": "db-sync", "schema": "Schema",
               "exporter_version": "Exporter", "grest_version": "Koios gRest"},
        order=["instance", "network", "dbsync_release", "schema", "exporter_version", "grest_version"],
        hide=["Value #A", "Value #B", "Value #C"]), 24, 5)

    b.row("Tip")
    b.add(timeseries("Tip age", [target(f"dbsync_tip_age_seconds{{{i}}}", "{{instance}}")], unit="s",
                     steps=TIP_AGE_STEPS, minv=0,
                     description="Now minus the slot time of the newest block in the database."), 12, 8)
    b.add(timeseries("Slot lag", [target(f"dbsync_slot_lag{{{i}}}", "{{instance}}")], unit="none", minv=0,
                     description="Slot the chain should be at now (from genesis parameters) minus the tip slot."),
          12, 8)
    b.add(timeseries("Block height rate", [
        target(f"deriv(dbsync_block_height{{{i}}}[$__rate_interval]) * 60", "{{instance}}")],
        unit="none", description="Blocks per minute inserted by db-sync (~3/min when following mainnet; "
                                 "much higher while catching up)."), 12, 8)
    b.add(timeseries("Block height vs peers", [
        target(f"dbsync_block_height{{{i}}}", "{{instance}}", ref="A"),
        target(f"dbsync_peer_block_height{{{i}}}", "peer {{peer}}", ref="B")], unit="none", decimals=0), 12, 8)

    b.row("Rollbacks and epochs")
    b.add(timeseries("Rollbacks per hour", [
        target(f"increase(dbsync_rollbacks_total{{{i}}}[1h])", "{{instance}}")], unit="none", minv=0,
        steps=[(TH["rollbacks_per_hour"], "red")]), 8, 8)
    b.add(timeseries("Last rollback depth", [
        target(f"dbsync_last_rollback_depth_blocks{{{i}}}", "{{instance}}")], unit="none", minv=0,
        steps=[(TH["rollback_depth_blocks"], "orange")]), 8, 8)
    b.add(timeseries("Last epoch sync duration", [
        target(f"dbsync_last_epoch_sync_duration_seconds{{{i}}}", "{{instance}}")], unit="s", minv=0,
        description="Wall time db-sync spent on the last finished epoch (epoch_sync_time). About the epoch "
                    "length while following the tip; much less while catching up."), 8, 8)
    b.add(timeseries("Epoch", [
        target(f"dbsync_epoch_number{{{i}}}", "tip epoch {{instance}}", ref="A"),
        target(f"dbsync_last_synced_epoch_number{{{i}}}", "last synced epoch {{instance}}", ref="B")],
        unit="none", decimals=0), 12, 7)
    b.add(timeseries("Epoch progress", [
        target(f"dbsync_epoch_progress_ratio{{{i}}}", "{{instance}}")], unit="percentunit", minv=0), 12, 7)

    b.row("Background checks")
    b.add(table("Checks", [
        target(f"max by (instance, check) (dbsync_check_success{{{i}}})", ref="A", instant=True, fmt="table"),
        target(f"max by (instance, check) (time() - dbsync_check_last_success_timestamp_seconds{{{i}}})",
               ref="B", instant=True, fmt="table"),
        target(f"max by (instance, check) (dbsync_check_interval_seconds{{{i}}})", ref="C", instant=True,
               fmt="table"),
        target(f"max by (instance, check) (dbsync_check_duration_seconds{{{i}}})", ref="D", instant=True,
               fmt="table"),
        target(f"max by (instance, check) (dbsync_check_applicable{{{i}}})", ref="E", instant=True,
               fmt="table"),
    ], rename={"instance": "Instance", "check": "Check", "Value #A": "Last run", "Value #B": "Last success ago",
               "Value #C": "Interval", "Value #D": "Duration", "Value #E": "Applicable"},
        order=["instance", "check", "Value #E", "Value #A", "Value #B", "Value #C", "Value #D"],
        overrides=[override("Last run", color_cell(), ("mappings", OK_MAP)),
                   override("Applicable", ("mappings", vmap([(1, "yes", "green"), (0, "no", "text")]))),
                   override("Last success ago", ("unit", "s")), override("Interval", ("unit", "s")),
                   override("Duration", ("unit", "s"))]), 24, 8)
    b.add(timeseries("Check duration", [
        target(f"dbsync_check_duration_seconds{{{i}}}", "{{instance}} {{check}}")], unit="s", minv=0), 12, 8)
    b.add(timeseries("Check runs per hour by outcome", [
        target(f"sum by (instance, check, outcome) (increase(dbsync_check_runs_total{{{i}}}[1h]))",
               "{{instance}} {{check}} {{outcome}}")], unit="none", minv=0), 12, 8)

    b.row("Health and routing")
    b.add(state_timeline("Health state", [target(f"dbsync:health_state:code{{{i}}}", "{{instance}}")],
                         HEALTH_MAP, steps=[(1, "orange"), (2, "red")]), 12, 6)
    b.add(state_timeline("Active health reasons", [
        target(f"dbsync_health_reason{{{i}}} == 1", "{{instance}} {{reason}}")],
        vmap([(1, "active", "red")]), steps=[(1, "red")],
        description="Only reasons that were active in the time range are shown."), 12, 6)
    b.add(timeseries("Fleet lag (from configured peers)", [
        target(f"dbsync_fleet_lag_blocks{{{i}}}", "{{instance}}")], unit="none", minv=0,
        steps=FLEET_LAG_STEPS), 8, 7)
    b.add(state_timeline("Peers", [target(f"dbsync_peer_up{{{i}}}", "{{instance}} {{peer}}")], BOOL_UP_MAP,
                         steps=[]), 8, 7)
    b.add(timeseries("Koios gRest cache lag", [
        target(f"dbsync_grest_cache_lag_blocks{{{i}}}", "{{instance}} {{cache}}")], unit="none", minv=0,
        description="Blocks between the tip and what each gRest cache has processed (Koios drains an instance "
                    "when the stake-distribution cache is > 2000 blocks behind)."), 8, 7)
    b.add(timeseries("Koios gRest cache age", [
        target(f"time() - dbsync_grest_cache_last_update_timestamp_seconds{{{i}}}", "{{instance}} {{cache}}")],
        unit="s", minv=0, steps=[(1000, "orange")],
        description="Seconds since each gRest cache was last updated (Koios: pool history cache <= 1000 s)."),
        24, 7)

    b.row("Database connections")
    b.add(timeseries("Connections", [
        target(f"dbsync_db_connections{{{i}}}", "{{instance}} {{state}}", ref="A"),
        target(f"dbsync_db_max_connections{{{i}}}", "{{instance}} max", ref="B")], unit="none", minv=0), 24, 8)

    b.row("Database size and sessions")
    b.add(timeseries("Database size", [
        target(f"dbsync_database_size_bytes{{{i}}}", "{{instance}} database", ref="A"),
        target(f"dbsync_schema_size_bytes{{{i}}}", "{{instance}} {{schema}}", ref="B")], unit="bytes", minv=0,
        description="pg_database_size and the total size of the public and grest schemas (getmetrics.sh's "
                    "dbsize, pubschsize and grestschsize), read every --size-interval (5 min)."), 12, 8)
    b.add(timeseries("Sessions on the database", [
        target(f"dbsync_database_connections{{{i}}} > 0", "{{instance}} {{state}}")], unit="none", minv=0,
        stack=True,
        description="Client sessions of every role on this database by pg_stat_activity state (getmetrics.sh's "
                    "grestconns): db-sync, PostgREST, the exporter. unknown: sessions whose state the "
                    "exporter's role may not see (grant pg_read_all_stats)."), 12, 8)
    b.row("The exporter process")
    b.add(timeseries("Exporter memory", [
        target(f"process_resident_memory_bytes{{{i}}}", "{{instance}} resident", ref="A")], unit="bytes", minv=0,
        description="Resident memory of dbsync-exporter (process_resident_memory_bytes, from /proc). "
                    "About 10 MiB on a mainnet database; a steady climb is a leak worth reporting."), 12, 8)
    b.add(timeseries("Exporter file descriptors", [
        target(f"process_open_fds{{{i}}}", "{{instance}} open", ref="A"),
        target(f"process_max_fds{{{i}}}", "{{instance}} limit", ref="B")], unit="none", minv=0,
        description="Open descriptors against the soft limit (raised to the hard limit at start). "
                    "Idle and slow sockets are capped by --web.max-connections; alert: DbSyncExporterFdsNearLimit."), 12, 8)
    return dashboard("dbsync-instance-detail", "dbsync / Instance detail",
                     "One or more db-sync instances in detail: tip, rollbacks, epochs, checks, health, connections, database size, the exporter process.",
                     b)


# =============================================================================
# The integrity checks (their `check` label values), in the exporter's order.
INTEGRITY_CHECKS = ["mir", "pool_refunds", "ada_pots", "epoch_stake", "block_tx_counts", "pool_owners",
                    "tx_balance", "tx_in_double_spends", "withdrawals", "block_number_gaps",
                    "block_time_disorder", "blocks_in_future", "epoch_table"]
INTEGRITY_CHECK_SELECTOR = 'check=~"' + "|".join(INTEGRITY_CHECKS) + '"'

INTEGRITY_DOCS = [
    ("MIR payments without an instant reward",
     "dbsync_mir_unpaid_payments", "dbsync_mir_unpaid_lovelace", "{{instance}} {{pot}}",
     """
**`dbsync_mir_unpaid_payments{pot}`** / **`dbsync_mir_unpaid_lovelace{pot}`**

MIR certificates (from the *reserves* or *treasury* pot) paying a stake credential that was
registered at the next epoch boundary, but **no instant-reward row** exists for it
(`reward_rest` / `instant_reward` / `reward`, by db-sync version).

**Healthy: 0.** Non-zero: account reward histories served from this database are wrong.
Compare with another instance of the same network; roll back past the epoch or resync from a
good snapshot. Alert: `DbSyncMirUnpaid` (RUNBOOK.md).
"""),
    ("Instant rewards without a MIR certificate",
     "dbsync_mir_orphan_rewards", None, "{{instance}} {{pot}}",
     """
**`dbsync_mir_orphan_rewards{pot}`**

Instant-reward rows of type reserves/treasury that no MIR certificate explains (pre-Conway
epochs; Conway treasury withdrawals legitimately have no certificate).

**Healthy: 0.** Non-zero: left-overs of an incomplete rollback or duplicated rows. Verify
against another instance, then roll back or resync. Alert: `DbSyncMirOrphanRewards`.
"""),
    ("Pool deposit refunds missing",
     "dbsync_pool_refunds_missing", "dbsync_pool_refunds_missing_lovelace", "{{instance}}",
     """
**`dbsync_pool_refunds_missing`** / **`dbsync_pool_refunds_missing_lovelace`**

Effective pool retirements whose reward account was **registered** at the retirement epoch
but with **no `refund` row** in `reward`.

**Healthy: 0.** Non-zero: those accounts' balances/rewards are wrong. Check the ledger was
never disabled, compare with another instance, roll back/resync. Alert:
`DbSyncPoolRefundsMissing`.
"""),
    ("Unclaimed pool deposits (informational)",
     "dbsync_pool_refunds_unclaimed", None, "{{instance}}",
     """
**`dbsync_pool_refunds_unclaimed`** — *informational, not a fault*

Retirements whose reward account was **deregistered**: the ledger sent the deposit to the
treasury and db-sync correctly wrote no refund row. Expected to be non-zero on mainnet and
to grow slowly. **No alert.** Only a sudden jump together with
`dbsync_pool_refunds_missing` changes is worth a look.
"""),
    ("ada_pots: epochs that do not add up",
     "dbsync_ada_pots_inconsistent_epochs", None, "{{instance}}",
     """
**`dbsync_ada_pots_inconsistent_epochs`**

Epochs whose `ada_pots` row does not sum to the maximum supply (45 000 000 000 000 000
lovelace on mainnet/preprod/preview), or with duplicate rows.

**Healthy: 0.** Non-zero: the recorded ledger bookkeeping is broken for those epochs
(interrupted rollback, restored snapshot, db-sync bug). Roll back past the first bad epoch
or resync. Alert: `DbSyncAdaPotsInconsistent`.
"""),
    ("ada_pots: missing epochs",
     "dbsync_ada_pots_missing_epochs", None, "{{instance}}",
     """
**`dbsync_ada_pots_missing_epochs`**

Shelley-era epochs up to the tip without an `ada_pots` row (db-sync writes one with the first
block of every epoch).

**Healthy: 0.** Non-zero: epoch-boundary processing was skipped (ledger disabled for a
while, ledger-state problems). Resync with the ledger enabled. Alert: `DbSyncAdaPotsMissing`.
"""),
    ("ada_pots: deviation of the newest epoch",
     "dbsync_ada_pots_deviation_lovelace", None, "{{instance}}",
     """
**`dbsync_ada_pots_deviation_lovelace`**

Sum of all pots of the newest `ada_pots` epoch minus 45e15 lovelace. Signed: positive means
more ADA than can exist.

**Healthy: 0.** Non-zero: same causes as inconsistent epochs, visible immediately at the
newest epoch. Alert: `DbSyncAdaPotsDeviation` (tolerance in
`alerts/dbsync-thresholds.rules.yml`).
"""),
    ("Blocks whose tx_count is wrong",
     "dbsync_block_tx_count_mismatches", None, "{{instance}}",
     """
**`dbsync_block_tx_count_mismatches`**

Blocks (the genesis row and Byron EBBs included) whose `tx_count` differs from the number of
their `tx` rows (`cardano-db-tool validate`'s BlockTxs).

**Healthy: 0.** Non-zero: transactions lost or duplicated when those blocks were written.
Find the blocks (RUNBOOK), compare with another instance, roll back or resync. Alert:
`DbSyncBlockTxCountMismatch`.
"""),
    ("Pool certificates without owners",
     "dbsync_pool_updates_without_owner", None, "{{instance}}",
     """
**`dbsync_pool_updates_without_owner`**

Pool registration/update certificates (`pool_update` rows) without any `pool_owner` row
(`cardano-db-tool validate`'s PoolOwner, per certificate).

**Healthy: 0, or a constant floor** (the ledger allows a certificate without owners).
Growing: owners were lost (db-sync #251); compare the newest owner-less certificates with
another instance, roll back or resync. Alert: `DbSyncPoolUpdatesWithoutOwner` (on an
increase).
"""),
    ("Transactions that do not balance",
     "dbsync_tx_balance_mismatches", None, "{{instance}}",
     """
**`dbsync_tx_balance_mismatches`**

Non-genesis transactions with a recorded deposit whose inputs + withdrawals differ from
outputs + fee + deposit (+ treasury donation if the scripts passed), or whose `out_sum`
differs from their outputs (`cardano-db-tool validate`'s TxAccounting, every transaction).

**Healthy: 0.** Non-zero: inputs, outputs or withdrawals lost or duplicated. Find the
transactions (RUNBOOK), compare with another instance, roll back or resync. Alert:
`DbSyncTxBalanceMismatch`.
"""),
    ("Outputs spent more than once",
     "dbsync_tx_in_double_spends", None, "{{instance}}",
     """
**`dbsync_tx_in_double_spends`**

Outputs referenced by more than one `tx_in` row (db-tool's TotalSupply finds them only as a
supply difference). Absent in the `consumed_by_tx_id` variant, which cannot record them.

**Healthy: 0.** Non-zero: duplicated inputs (crash, restore, broken rollback); the UTxO is
wrong. Roll back past the first one or resync. Alert: `DbSyncTxInDoubleSpends`.
"""),
    ("Supply drift",
     "dbsync_supply_drift_lovelace", None, "{{instance}}",
     """
**`dbsync_supply_drift_lovelace`**

Genesis supply − (UTxO + fees + deposits + donations − withdrawals), signed, derived from the
two panels above (Σ per-transaction imbalance − Σ double-spent value) at no database cost.

**Healthy: 0.** Non-zero only together with one of the two counts above; its size is how far
supply figures are off. Alert: `DbSyncSupplyDrift`.
"""),
    ("Accounts that withdrew more than their rewards",
     "dbsync_withdrawal_excess_accounts", None, "{{instance}}",
     """
**`dbsync_withdrawal_excess_accounts`**

Stake addresses whose withdrawals up to some epoch exceed the rewards spendable to them by
that epoch: `reward` rows plus instant rewards (MIR, Conway treasury withdrawals, proposal
refunds), each from its spendable epoch on (`cardano-db-tool validate`'s Withdrawal, which
ignores instant rewards and timing). Each address counts once.

**Healthy: 0.** Non-zero: reward rows missing or late (or withdrawals duplicated); those
balances are wrong. Find the addresses (RUNBOOK), compare with another instance, roll back or
resync. Alert: `DbSyncWithdrawalExcess`.
"""),
    ("Gaps in the block numbering",
     "dbsync_block_number_gaps", None, "{{instance}}",
     """
**`dbsync_block_number_gaps`**

Pairs of consecutive main blocks (by `block_no`, then id; EBBs and the genesis row left out)
whose numbers do not differ by exactly 1: a run of lost blocks counts 1, a repeated number 2
(`cardano-db-tool validate`'s "block numbers contiguous"). Rollback id gaps do not count.

**Healthy: 0.** Non-zero: blocks lost or written twice. Find the first gap (RUNBOOK), roll
back past it or resync. Alert: `DbSyncBlockNumberGaps`.
"""),
    ("Block times out of order",
     "dbsync_block_time_disorder", None, "{{instance}}",
     """
**`dbsync_block_time_disorder`**

Main blocks (same order) whose `time` is not strictly later than the block before them; equal
times count (db-tool's own test only finds repeats). EBBs are left out.

**Healthy: 0.** Non-zero: corrupt block rows. Find them (RUNBOOK), compare with another
instance, roll back or resync. Alert: `DbSyncBlockTimeDisorder`.
"""),
    ("Blocks in the future",
     "dbsync_blocks_in_future", None, "{{instance}}",
     """
**`dbsync_blocks_in_future`**

Blocks whose `time` is more than 60 s after the database server's clock (compared in UTC,
whatever the TimeZone); read afresh on every run.

**Healthy: 0.** Non-zero with only the newest blocks: a clock behind on the database or
exporter host (fix NTP). Blocks years ahead: corrupt rows, resync. Alert:
`DbSyncBlocksInFuture`.
"""),
    ("Stored epoch rows that do not match",
     "dbsync_epoch_table_mismatches", None, "{{instance}}",
     """
**`dbsync_epoch_table_mismatches`**

Finished epochs whose stored row (`epoch` table up to 13.7.1, `epoch_finalized` from 13.7.2)
is missing or differs from their blocks and transactions in `out_sum`, `fees`, `tx_count`,
`blk_count`, `start_time` or `end_time`. The running epoch is never compared.

**Healthy: 0.** Non-zero: epoch summaries are wrong (db-sync #2118 in 13.7.0.x: upgrade to
13.7.1+, which repairs them); otherwise resync. Alert: `DbSyncEpochTableMismatch`.
"""),
]


def integrity():
    b = Board()
    i = INST
    b.add(table("Integrity status", [
        target(f"max by (network, instance) ({with_net('dbsync:integrity_problems:count')})", ref="A",
               instant=True, fmt="table"),
        target("max by (network, instance) ("
               + with_net(f'(dbsync_check_success{{{INTEGRITY_CHECK_SELECTOR}}} == bool 0)')
               + ")", ref="B", instant=True, fmt="table"),
        target(f"max by (network, instance) ({with_net('dbsync_epoch_stake_complete')})", ref="C", instant=True,
               fmt="table"),
        target(f"max by (network, instance) ({with_net('dbsync_pool_refunds_unclaimed')})", ref="D",
               instant=True, fmt="table"),
    ], rename={"network": "Network", "instance": "Instance", "Value #A": "Integrity problems",
               "Value #B": "Integrity check failing", "Value #C": "Stake distribution complete",
               "Value #D": "Unclaimed refunds (info)"},
        order=["network", "instance", "Value #A", "Value #B", "Value #C", "Value #D"],
        overrides=[override("Integrity problems", color_cell(), ("thresholds", thresholds((1, "red")))),
                   override("Integrity check failing", color_cell(),
                            ("mappings", vmap([(0, "no", "green"), (1, "yes", "red")]))),
                   override("Stake distribution complete", color_cell(),
                            ("mappings", vmap([(1, "yes", "green"), (0, "no", "orange")])))],
        description="Integrity problems = number of non-zero integrity series (recording rule "
                    "dbsync:integrity_problems:count). Integrity check failing = one of the integrity checks ("
                    + ", ".join(INTEGRITY_CHECKS) + ") failed its last run (its values are then stale)."), 24, 8)
    b.add(text("How to read this dashboard", """
Every series below is **0 on a healthy database** (except the informational unclaimed refunds
and the stake-distribution flag, which is 1 when complete). The exporter computes them with
background checks on long intervals (see *Integrity checks* at the bottom for their last
success); a value persists until the next run. A check that cannot apply (e.g. `ledger: disable`
in db-sync) exports `dbsync_check_applicable{check} 0` and no values. Per-alert procedures are
in `alerts/RUNBOOK.md`.
"""), 24, 3)

    for title, metric, amount, legend, doc in INTEGRITY_DOCS:
        b.row(title)
        b.add(text(f"About: {title}", doc), 8, 8)
        if amount:
            b.add(timeseries(title, [target(f"{metric}{{{i}}}", legend)], unit="none", minv=0, decimals=0,
                             steps=[] if "unclaimed" in metric else [(1, "red")]), 8, 8)
            b.add(timeseries(f"{title} (lovelace)", [target(f"{amount}{{{i}}}", legend)], unit=LOVELACE, minv=0),
                  8, 8)
        else:
            signed = "deviation" in metric or "drift" in metric
            steps = [] if ("unclaimed" in metric or signed or "without_owner" in metric) \
                else [(1, "red")]
            b.add(timeseries(title, [target(f"{metric}{{{i}}}", legend)],
                             unit=LOVELACE if metric.endswith("_lovelace") else "none", decimals=0,
                             minv=None if signed else 0, steps=steps), 16, 8)

    b.row("Stake distribution of the tip epoch")
    b.add(text("About: stake distribution", """
**`dbsync_epoch_stake_complete`** (with `dbsync_epoch_progress_ratio`)

1 when the stake distribution (`epoch_stake`) of the tip epoch is complete
(`epoch_stake_progress.completed`). db-sync writes it incrementally during the previous epoch,
so 0 early in an epoch can be normal. **Not complete after 1/6 of the epoch** (~20 h on mainnet)
breaks Koios' active-stake cache and pool/account stake endpoints. Alert:
`DbSyncEpochStakeIncomplete`: check db-sync is at the tip, restart it, resync if it never completes.
"""), 8, 8)
    b.add(state_timeline("Stake distribution complete", [
        target(f"dbsync_epoch_stake_complete{{{i}}}", "{{instance}}")],
        vmap([(1, "complete", "green"), (0, "incomplete", "orange")]), steps=[]), 8, 8)
    b.add(timeseries("Epoch progress", [target(f"dbsync_epoch_progress_ratio{{{i}}}", "{{instance}}")],
                     unit="percentunit", minv=0,
                     steps=[(TH["epoch_stake_incomplete_progress_ratio"], "orange")]), 8, 8)

    b.row("Integrity checks")
    chk = INTEGRITY_CHECK_SELECTOR
    b.add(state_timeline("Last run of the integrity checks", [
        target(f"dbsync_check_success{{{i}, {chk}}}", "{{instance}} {{check}}")], OK_MAP, steps=[]), 12, 8)
    b.add(timeseries("Time since last success", [
        target(f"time() - dbsync_check_last_success_timestamp_seconds{{{i}, {chk}}}", "{{instance}} {{check}}")],
        unit="s", minv=0), 12, 8)
    return dashboard("dbsync-integrity", "dbsync / Integrity",
                     "db-sync data integrity checks (MIR, pool refunds, ada_pots, stake distribution) per instance, "
                     "with explanations.", b)


# =============================================================================
# Long-term trends, from the cheap recording rules of the dbsync-trends-recording group
# (one sample per instance every 5 minutes). No network filter: those rules carry no
# network, and joining the current dbsync:instance:info would drop an instance that has
# since vanished; the instance variable already lists only the selected networks' instances.
AVAILABILITY = {"mode": "absolute", "steps": [{"color": "red", "value": None}, {"color": "orange", "value": 0.95},
                                              {"color": "green", "value": 0.99}]}


def per_day(panel):
    """One point per day: the rules already summarise a day (or an hour, averaged here)."""
    panel["interval"] = "1d"
    return panel


def fleet_trends():
    b = Board()
    i = INST
    avail = "dbsync:health_up:ratio_1h"
    b.row("Availability: share of the time the health state was up")
    b.add(table("Availability per provider", [
        target(f"max by (operator, instance) (avg_over_time({avail}{{{i}}}[{days}d]))", ref=ref, instant=True,
               fmt="table")
        for ref, days in (("A", 1), ("B", 7), ("C", 30))
    ], rename={"operator": "Operator", "instance": "Instance", "Value #A": "1 day", "Value #B": "7 days",
               "Value #C": "30 days"},
        order=["operator", "instance", "Value #A", "Value #B", "Value #C"],
        overrides=[override(col, ("unit", "percentunit"), ("decimals", 2), color_cell(),
                            ("thresholds", AVAILABILITY)) for col in ("1 day", "7 days", "30 days")],
        sort="30 days",
        description="Average of dbsync:health_up:ratio_1h (the share of each hour the exporter's health state "
                    "was up). An instance that sent nothing for a whole hour counts 0 for it, for a day after "
                    "its last sample (DbSyncInstanceVanished)."), 12, 10)
    b.add(per_day(timeseries("Availability per day", [
        target(f"max by (operator, instance) (avg_over_time({avail}{{{i}}}[1d]))", "{{operator}} {{instance}}")],
        unit="percentunit", minv=0, decimals=2,
        description="Each point: the share of the preceding day the instance was up.")), 12, 10)

    b.row("Tip, rollbacks and incidents per day")
    b.add(per_day(timeseries("Tip age p99 per day", [
        target(f"max by (operator, instance) (dbsync:tip_age_seconds:p99_1d{{{i}}})", "{{operator}} {{instance}}")],
        unit="s", minv=0, steps=TIP_AGE_STEPS,
        description="99th percentile of the tip age over the preceding day (recording rule "
                    "dbsync:tip_age_seconds:p99_1d).")), 8, 9)
    b.add(per_day(timeseries("Rollbacks per day", [
        target(f"sum by (operator, instance) (dbsync:rollbacks:increase_1d{{{i}}})", "{{operator}} {{instance}}")],
        unit="none", minv=0, draw="bars",
        description="Rollbacks the exporter saw during the preceding day (1-2 block forks are normal on "
                    "mainnet).")), 8, 9)
    b.add(per_day(timeseries("Integrity incidents per day", [
        target(f"max by (instance) (dbsync:integrity_problems:max_1d{{{i}}})", "{{instance}}")],
        unit="none", minv=0, decimals=0, draw="bars", steps=[(1, "red")],
        description="Most integrity series that were non-zero at once during the preceding day (0 = a clean "
                    "day).")), 8, 9)
    return dashboard("dbsync-fleet-trends", "dbsync / Fleet trends",
                     "Per-provider availability over 1, 7 and 30 days, and the daily tip age p99, rollbacks and "
                     "integrity incidents, from cheap recording rules.", b, time_from="now-30d")


def write(name, dash):
    with open(os.path.join(HERE, name), "w") as f:
        json.dump(dash, f, indent=2, sort_keys=False)
        f.write("\n")


if __name__ == "__main__":
    write("fleet-overview.json", fleet_overview())
    write("instance-detail.json", instance_detail())
    write("integrity.json", integrity())
    write("fleet-trends.json", fleet_trends())
