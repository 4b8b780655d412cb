//! The push model end to end, with Debian's real binaries and the repository's own files:
//! three exporters (two operators) scraped by three Prometheus servers in agent mode
//! (`docker/agent/prometheus-agent.yml`), remote-writing with basic auth through vmauth
//! (`docker/agent/hub/vmauth.yml`) into VictoriaMetrics; vmalert evaluating `alerts/` and
//! notifying Alertmanager (`docker/central/alertmanager/`), which delivers to a Telegram Bot
//! API recorder. The hub's command lines are read from `docker/agent/hub/docker-compose.yml`,
//! so the compose file and this test cannot drift apart; only addresses, secrets and
//! intervals are replaced (each replacement must match exactly once).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use crate::common::{config, repo, Exporter, Fleet, NETWORK};
use crate::dashboards;
use crate::delivery::{
    alertmanager_alerts, start_alertmanager, substitute, Recorder, ONCALL_CHAT, TEAM_CHAT,
};
use crate::process::{Api, Server, Spec};
use crate::prometheus::Prometheus;
use crate::queries::{check_dashboard_queries, SCRAPE_SECONDS, SETTLE};
use crate::rules::{fast_rule_files, runbook_url};

/// Seconds of silence after which the test's vmalert calls an instance vanished (the
/// shipped thresholds, 10 and 30 minutes, are too long for a test; see rules.rs).
const VANISHED_WARNING_SECONDS: f64 = 15.0;

/// One operator-side agent: whose credentials it uses, which `operator` external label it
/// claims, the `instance` label it gives its exporter.
struct AgentSpec<'a> {
    username: &'a str,
    password: &'a str,
    claims_operator: &'a str,
    instance: &'a str,
    exporter: SocketAddr,
}

/// `docker/agent/prometheus-agent.yml` for `agent`, remote-writing to vmauth at `hub`.
fn agent_config(agent: &AgentSpec, hub: &str, own_port: u16) -> String {
    let path = repo().join("docker/agent/prometheus-agent.yml");
    let text = std::fs::read_to_string(path).unwrap();
    let every = format!("{SCRAPE_SECONDS}s");
    substitute(
        "prometheus-agent.yml",
        &text,
        &[
            (
                "scrape_interval: 30s",
                &format!("scrape_interval: {every}"),
                1,
            ),
            (
                "scrape_timeout: 10s",
                &format!("scrape_timeout: {every}"),
                1,
            ),
            (
                "operator: operator-a",
                &format!("operator: {}", agent.claims_operator),
                1,
            ),
            (
                "targets: [\"dbsync-exporter:9895\"]",
                &format!("targets: [\"{}\"]", agent.exporter),
                1,
            ),
            (
                "instance: koios.operator-a.example",
                &format!("instance: {}", agent.instance),
                1,
            ),
            (
                "targets: [\"localhost:9090\"]",
                &format!("targets: [\"127.0.0.1:{own_port}\"]"),
                1,
            ),
            (
                "url: https://metrics.hub.example.org/api/v1/write",
                &format!("url: {hub}/api/v1/write"),
                1,
            ),
            (
                "username: operator-a",
                &format!("username: {}", agent.username),
                1,
            ),
            ("batch_send_deadline: 10s", "batch_send_deadline: 1s", 1),
        ],
    )
}

async fn start_agent(agent: &AgentSpec<'_>, hub: &str) -> Prometheus {
    // The config reads the password from secrets/remote_write_password next to it.
    Prometheus::start_agent(
        &[("secrets/remote_write_password", agent.password.to_owned())],
        |_, port| agent_config(agent, hub, port),
    )
    .await
}

/// The `command:` list of `service` in a compose file, `${VAR:-default}` expanded to the
/// default and trailing comments dropped.
fn compose_command(compose: &str, service: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join(compose)).unwrap();
    let mut lines = text
        .lines()
        .skip_while(|l| *l != format!("  {service}:"))
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("    "));
    lines
        .by_ref()
        .find(|l| l.trim() == "command:")
        .unwrap_or_else(|| panic!("{compose}: service {service} has no command"));
    lines
        .filter(|l| !l.trim_start().starts_with('#'))
        .take_while(|l| l.trim_start().starts_with("- "))
        .map(|l| {
            let arg = l.trim_start().trim_start_matches("- ");
            let arg = arg.split(" #").next().unwrap().trim().trim_matches('"');
            expand_default(arg)
        })
        .collect()
}

fn expand_default(arg: &str) -> String {
    match (arg.find("${"), arg.find(":-"), arg.find('}')) {
        (Some(open), Some(dash), Some(close)) if open < dash && dash < close => {
            format!(
                "{}{}{}",
                &arg[..open],
                &arg[dash + 2..close],
                &arg[close + 1..]
            )
        }
        _ => arg.to_owned(),
    }
}

/// `args` with the value of each `flag` (`-name`) replaced; each flag must be there once.
fn with_values(service: &str, args: Vec<String>, values: &[(&str, String)]) -> Vec<String> {
    for (flag, _) in values {
        let n = args
            .iter()
            .filter(|a| a.starts_with(&format!("{flag}=")))
            .count();
        assert_eq!(n, 1, "{service}: expected {flag}= once in {args:?}");
    }
    args.into_iter()
        .map(|arg| {
            let flag = arg.split('=').next().unwrap_or_default();
            match values.iter().find(|(f, _)| *f == flag) {
                Some((f, value)) => format!("{f}={value}"),
                None => arg,
            }
        })
        .collect()
}

const HUB_COMPOSE: &str = "docker/agent/hub/docker-compose.yml";
const PASSWORD_A: &str = "test-password-a";
const PASSWORD_B: &str = "test-password-b";

/// VictoriaMetrics as the hub runs it.
async fn start_victoria_metrics() -> Server {
    let args = compose_command(HUB_COMPOSE, "victoriametrics");
    Server::start(Spec {
        name: "victoria-metrics",
        binary: "victoria-metrics",
        files: Vec::new(),
        args: Box::new(move |dir, port| {
            let mut args = with_values(
                "victoriametrics",
                args.clone(),
                &[
                    (
                        "-storageDataPath",
                        dir.join("storage").display().to_string(),
                    ),
                    ("-httpListenAddr", format!("127.0.0.1:{port}")),
                ],
            );
            // Test only: data is queryable 1 s after it arrives (default 30 s, which would
            // hide every fresh sample from vmalert), and no result cache between polls.
            args.push("-search.latencyOffset=1s".to_owned());
            args.push("-search.disableCache".to_owned());
            args
        }),
        ready_path: "/health",
    })
    .await
}

/// vmauth with the hub's `vmauth.yml` (two operators) in front of `vm`.
async fn start_vmauth(vm: &Server) -> Server {
    let text = std::fs::read_to_string(repo().join("docker/agent/hub/vmauth.yml")).unwrap();
    let upstream = format!("url_prefix: \"{}/", vm.base);
    let config = substitute(
        "vmauth.yml",
        &text,
        &[
            ("url_prefix: \"http://victoriametrics:8428/", &upstream, 2),
            (
                "password: \"CHANGE_ME_a\"",
                &format!("password: \"{PASSWORD_A}\""),
                1,
            ),
            (
                "password: \"CHANGE_ME_b\"",
                &format!("password: \"{PASSWORD_B}\""),
                1,
            ),
        ],
    );
    let args = compose_command(HUB_COMPOSE, "vmauth");
    Server::start(Spec {
        name: "vmauth",
        binary: "vmauth",
        files: vec![("vmauth.yml".to_owned(), config)],
        args: Box::new(move |dir, port| {
            with_values(
                "vmauth",
                args.clone(),
                &[
                    ("-auth.config", dir.join("vmauth.yml").display().to_string()),
                    ("-httpListenAddr", format!("127.0.0.1:{port}")),
                ],
            )
        }),
        ready_path: "/health",
    })
    .await
}

/// vmalert as the hub runs it, on the fast copies of `alerts/*.rules.yml`.
async fn start_vmalert(vm: &Server, alertmanager: &Server) -> Server {
    let files = fast_rule_files(&[
        (
            "dbsync:threshold:instance_vanished_warning_seconds",
            VANISHED_WARNING_SECONDS,
        ),
        // Never within the test: one alert per instance keeps the messages countable.
        (
            "dbsync:threshold:instance_vanished_critical_seconds",
            86400.0,
        ),
    ]);
    let args = compose_command(HUB_COMPOSE, "vmalert");
    let (vm_url, am_url) = (vm.base.clone(), alertmanager.base.clone());
    Server::start(Spec {
        name: "vmalert",
        binary: "vmalert",
        files,
        args: Box::new(move |dir, port| {
            let mut args = with_values(
                "vmalert",
                args.clone(),
                &[
                    ("-datasource.url", vm_url.clone()),
                    ("-remoteWrite.url", vm_url.clone()),
                    ("-remoteRead.url", vm_url.clone()),
                    ("-notifier.url", am_url.clone()),
                    ("-rule", dir.join("*.rules.yml").display().to_string()),
                    ("-evaluationInterval", format!("{SCRAPE_SECONDS}s")),
                ],
            );
            args.push(format!("-httpListenAddr=127.0.0.1:{port}"));
            // Test only: recorded series are written back every second (default 5 s).
            args.push("-remoteWrite.flushInterval=1s".to_owned());
            args
        }),
        ready_path: "/health",
    })
    .await
}

/// `(label values…)` of every series `expr` returns, for the given labels.
async fn label_sets(
    api: &Api,
    expr: &str,
    labels: &[&str],
) -> Result<BTreeSet<Vec<String>>, String> {
    Ok(api
        .query(expr)
        .await?
        .iter()
        .map(|s| {
            labels
                .iter()
                .map(|l| s["metric"][l].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .collect())
}

/// Alertmanager's active alerts named `alertname`: their `instance` labels.
async fn alerting_instances(
    alertmanager: &Server,
    alertname: &str,
) -> Result<BTreeSet<String>, String> {
    let alerts: Vec<Value> = alertmanager_alerts(alertmanager).await?;
    Ok(alerts
        .iter()
        .filter(|a| a["labels"]["alertname"] == alertname && a["status"]["state"] == "active")
        .filter_map(|a| Some(a["labels"]["instance"].as_str()?.to_owned()))
        .collect())
}

fn strings(values: &[&str]) -> BTreeSet<String> {
    values.iter().map(|v| v.to_string()).collect()
}

/// The push model, as in the module doc, shows through the APIs that:
/// 1. every agent's series arrive in VictoriaMetrics with its `instance` and the `operator`
///    of its credentials (vmauth's `extra_label` beats an agent claiming another operator);
/// 2. the fleet lists the exporter whose database is down since start, network "unknown";
/// 3. every dashboard query, variables substituted, returns data from VictoriaMetrics, the
///    trends dashboard's included;
/// 4. vmalert's critical stale-tip alert reaches Alertmanager for the stalled instance only
///    and is delivered once to the on-call Telegram chat, with summary and runbook link;
/// 5. killing the stalled instance's agent fires `DbSyncInstanceVanished` for it alone,
///    delivered once to the team chat; restarting the agent resolves it, and one resolved
///    message follows.
///
/// It also prints what one exporter costs the hub (series), for docker/STACK.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_push_through_vmauth_and_vmalert_delivers_to_telegram() {
    let fleet = Fleet::start("stack_push").await;
    // An exporter whose database never answers: nothing listens on this port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let nodb = Exporter::start(config(
        &format!("postgres://exporter@127.0.0.1:{closed_port}/cexplorer"),
        &[],
    ))
    .await;

    let recorder = Recorder::start().await;
    let alertmanager = start_alertmanager(recorder.addr).await;
    let vm = start_victoria_metrics().await;
    let vm_api = vm.api();
    let vmauth = start_vmauth(&vm).await;
    let _vmalert = start_vmalert(&vm, &alertmanager).await;

    let (fresh, stalled, down) = ("fresh.operator-a", "stalled.operator-b", "nodb.operator-a");
    let agent_b = AgentSpec {
        username: "operator-b",
        password: PASSWORD_B,
        claims_operator: "operator-b",
        instance: stalled,
        exporter: fleet.stalled.addr,
    };
    let _agent_fresh = start_agent(
        &AgentSpec {
            username: "operator-a",
            password: PASSWORD_A,
            claims_operator: "operator-a",
            instance: fresh,
            exporter: fleet.fresh.addr,
        },
        &vmauth.base,
    )
    .await;
    // Writes with operator-a's credentials but claims to be operator-b.
    let _agent_down = start_agent(
        &AgentSpec {
            username: "operator-a",
            password: PASSWORD_A,
            claims_operator: "operator-b",
            instance: down,
            exporter: nodb.addr,
        },
        &vmauth.base,
    )
    .await;
    let mut agent_stalled = start_agent(&agent_b, &vmauth.base).await;

    // --- 1. both operators' series, labelled by their credentials -----------------------
    let want: BTreeSet<Vec<String>> = [
        ["operator-a", fresh, NETWORK],
        ["operator-a", down, NETWORK],
        ["operator-b", stalled, NETWORK],
    ]
    .iter()
    .map(|row| row.iter().map(|v| v.to_string()).collect())
    .collect();
    vm_api
        .wait_for(
            SETTLE,
            "every agent's series in VictoriaMetrics",
            || async {
                let found = label_sets(
                    &vm_api,
                    "dbsync_exporter_build_info",
                    &["operator", "instance", "network"],
                )
                .await?;
                (found == want).then_some(()).ok_or(format!("{found:?}"))
            },
        )
        .await;

    // --- 2. the instance whose database never answered is on the fleet ---------------------
    let listed: BTreeSet<Vec<String>> = [[fresh, NETWORK], [stalled, NETWORK], [down, "unknown"]]
        .iter()
        .map(|row| row.iter().map(|v| v.to_string()).collect())
        .collect();
    let fleet_table = dashboards::load()
        .into_iter()
        .find(|d| d.file == "fleet-overview.json")
        .unwrap()
        .targets()
        .into_iter()
        .find(|t| {
            t.expr
                .starts_with("max by (network, instance, operator) (dbsync:instance:info")
        })
        .expect("the fleet table's instance list");
    vm_api
        .wait_for(SETTLE, "the fleet table to list every instance", || async {
            let query = fleet_table
                .expr
                .replace("$network", ".*")
                .replace("$instance", ".*");
            let found = label_sets(&vm_api, &query, &["instance", "network"]).await?;
            (found == listed)
                .then_some(())
                .ok_or(format!("{query}: {found:?}"))
        })
        .await;

    // --- 3. every dashboard query answered by VictoriaMetrics ------------------------------
    check_dashboard_queries(
        &vm_api,
        &strings(&[NETWORK, "unknown"]),
        &strings(&[fresh, stalled, down]),
    )
    .await;

    // What one exporter costs the hub, measured (docker/STACK.md).
    for (instance, exporter) in [(fresh, &fleet.fresh), (stalled, &fleet.stalled)] {
        let body = exporter.metrics().await;
        let served = body
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .count();
        let stored = vm_api
            .query(&format!("count({{instance=\"{instance}\"}})"))
            .await
            .unwrap();
        eprintln!(
            "cost: {instance} serves {served} series; the hub stores {} for it",
            stored
                .first()
                .map(|s| s["value"][1].clone())
                .unwrap_or_default()
        );
    }

    // --- 4. the stale-tip alert, for the stalled instance only, delivered once --------------
    alertmanager_wait(&alertmanager, "DbSyncTipStale", &strings(&[stalled])).await;
    let fired = recorder
        .wait_for(SETTLE, "DbSyncTipStale", stalled, "FIRING", 1)
        .await;
    assert_eq!(fired.len(), 1, "{fired:#?}");
    assert_eq!(fired[0].chat_id(), ONCALL_CHAT, "{fired:#?}");
    let summary = format!("db-sync tip on {stalled} is stale (Koios would eject it)");
    for part in [summary.as_str(), &runbook_url("DbSyncTipStale")] {
        assert!(fired[0].text().contains(part), "{part:?} in {fired:#?}");
    }
    assert_eq!(
        alerting_instances(&alertmanager, "DbSyncTipStale")
            .await
            .unwrap(),
        strings(&[stalled])
    );

    // --- 5. an agent killed: its instance vanished; back: resolved ---------------------------
    agent_stalled.server.kill();
    alertmanager_wait(
        &alertmanager,
        "DbSyncInstanceVanished",
        &strings(&[stalled]),
    )
    .await;
    let vanished = recorder
        .wait_for(SETTLE, "DbSyncInstanceVanished", stalled, "FIRING", 1)
        .await;
    assert_eq!(vanished.len(), 1, "{vanished:#?}");
    assert_eq!(vanished[0].chat_id(), TEAM_CHAT, "{vanished:#?}");
    let summary = format!("No data from {stalled} (operator operator-b)");
    for part in [
        summary.as_str(),
        &runbook_url("DbSyncInstanceVanished"),
        "(warning)",
    ] {
        assert!(
            vanished[0].text().contains(part),
            "{part:?} in {vanished:#?}"
        );
    }
    agent_stalled = start_agent(&agent_b, &vmauth.base).await;
    let resolved = recorder
        .wait_for(SETTLE, "DbSyncInstanceVanished", stalled, "RESOLVED", 1)
        .await;
    assert_eq!(resolved.len(), 1, "{resolved:#?}");
    assert!(resolved[0].text().contains(&summary), "{resolved:#?}");
    let about = recorder.messages_about("DbSyncInstanceVanished", stalled);
    assert_eq!(about.len(), 2, "one fired, one resolved: {about:#?}");
    for other in [fresh, down] {
        let messages = recorder.messages_about("DbSyncInstanceVanished", other);
        assert!(messages.is_empty(), "{other} never vanished: {messages:#?}");
    }

    drop(agent_stalled);
    nodb.shutdown().await;
    fleet.shutdown().await;
}

/// Waits until Alertmanager's active `alertname` alerts are on exactly `instances`.
async fn alertmanager_wait(alertmanager: &Server, alertname: &str, instances: &BTreeSet<String>) {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let found = alerting_instances(alertmanager, alertname).await;
        if found.as_ref() == Ok(instances) {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            alertmanager.fail(&format!(
                "{alertname} in Alertmanager: want {instances:?}, have {found:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
