//! `dbsync-exporter file-sd`, the real binary: a Koios topology (emoji and spaces in names,
//! `ssl` on some entries, bad entries) becomes a file_sd file that `promtool check config`
//! accepts and a real Prometheus scrapes; a topology without one usable entry leaves the
//! previous file untouched.

use std::collections::BTreeSet;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{require_tool, Exporter, TempDir};
use crate::prometheus::Prometheus;

fn file_sd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dbsync-exporter"))
        .arg("file-sd")
        .args(args)
        .output()
        .unwrap()
}

fn stderr_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_koios_topology_becomes_targets_prometheus_scrapes() {
    // An exporter to be the one reachable instance (its database is unreachable: it still
    // serves /metrics, which is all a scrape needs).
    let mut config =
        dbsync_exporter::Config::with_database("postgres://x@127.0.0.1:1/x".parse().unwrap());
    config.db.connect_timeout = Duration::from_secs(1);
    let exporter = Exporter::start(config).await;
    let port = exporter.addr.port().to_string();

    let dir = TempDir::new("file-sd");
    let topology = dir.join("topology-preprod.json");
    std::fs::write(
        &topology,
        json!({"public": [
            {"name": "Local 🦄 Koios", "addr": "127.0.0.1", "port": 8453, "ssl": true},
            {"name": "Far Away Pool", "addr": "192.0.2.7", "port": 8053},
            {"name": "no port", "addr": "192.0.2.8"},
            {"name": "url", "addr": "https://koios.example", "port": 8053},
            {"name": "again", "addr": "127.0.0.1", "port": 8053}
        ]})
        .to_string(),
    )
    .unwrap();
    let output_path = dir.join("koios-preprod.json");
    let output = output_path.to_str().unwrap();
    let run = file_sd(&[
        "--koios-topology",
        topology.to_str().unwrap(),
        "--port",
        &port,
        "--output",
        output,
    ]);
    assert_eq!(run.status.code(), Some(0), "{:?}", stderr_lines(&run));
    assert!(run.stdout.is_empty());
    assert_eq!(
        stderr_lines(&run),
        [
            "file-sd: skipped public[2]: \"no port\": \"port\" is not a port number (1-65535)".to_owned(),
            "file-sd: skipped public[3]: \"url\": \"addr\" \"https://koios.example\" is not a host name or IP address".to_owned(),
            format!("file-sd: skipped public[4]: 127.0.0.1:{port} is listed already"),
            format!("file-sd: 2 targets for preprod written to {output}, 3 entries skipped"),
        ]
    );
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(&output_path).unwrap()).unwrap();
    assert_eq!(
        written,
        json!([
            {"targets": [format!("127.0.0.1:{port}")],
             "labels": {"koios_port": "8453", "network": "preprod", "operator": "Local 🦄 Koios"}},
            {"targets": [format!("192.0.2.7:{port}")],
             "labels": {"koios_port": "8053", "network": "preprod", "operator": "Far Away Pool"}}
        ])
    );

    // Nothing usable: exit 2, one line, the previous file intact and no temp file left.
    let before = std::fs::read(&output_path).unwrap();
    let broken = dir.join("broken.json");
    std::fs::write(
        &broken,
        r#"{"public": [{"name": "x", "addr": "-bad-", "port": 1}]}"#,
    )
    .unwrap();
    let refused = file_sd(&[
        "--koios-topology",
        broken.to_str().unwrap(),
        "--network",
        "preprod",
        "--output",
        output,
    ]);
    assert_eq!(refused.status.code(), Some(2));
    assert_eq!(
        stderr_lines(&refused),
        [
            "file-sd: skipped public[0]: \"x\": \"addr\" \"-bad-\" is not a host name or IP address",
            "error: invalid value for '--koios-topology': no usable instance in it (1 skipped); nothing written",
        ]
    );
    assert_eq!(std::fs::read(&output_path).unwrap(), before);
    let names: BTreeSet<String> = std::fs::read_dir(&dir.path)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(
            ["broken.json", "koios-preprod.json", "topology-preprod.json"].map(String::from)
        )
    );

    // promtool accepts the config and the file_sd file it names.
    let file_sd_body = String::from_utf8(before).unwrap();
    let prometheus_yml = |dir: &std::path::Path, _port: u16| {
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: koios\n    file_sd_configs:\n      - files: ['{}/koios-*.json']\n",
            dir.display()
        )
    };
    std::fs::write(dir.join("prometheus.yml"), prometheus_yml(&dir.path, 0)).unwrap();
    let check = Command::new(require_tool("promtool"))
        .args(["check", "config"])
        .arg(dir.join("prometheus.yml"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    // A real Prometheus discovers both targets with their labels and scrapes the live one.
    let prometheus =
        Prometheus::start(&[("koios-preprod.json", file_sd_body)], prometheus_yml).await;
    let up = prometheus
        .wait_for(
            Duration::from_secs(60),
            "the local instance scraped",
            || async {
                let samples = prometheus.query("up{job=\"koios\"}").await?;
                let live = samples.iter().any(|sample| {
                    sample["metric"]["operator"] == "Local 🦄 Koios" && sample["value"][1] == "1"
                });
                if live && samples.len() == 2 {
                    Ok(samples)
                } else {
                    Err(format!("{samples:?}"))
                }
            },
        )
        .await;
    let labels: BTreeSet<(String, String, String, String)> = up
        .iter()
        .map(|sample| {
            let metric = &sample["metric"];
            let text = |name: &str| metric[name].as_str().unwrap_or("").to_owned();
            (
                text("instance"),
                text("operator"),
                text("network"),
                text("koios_port"),
            )
        })
        .collect();
    assert_eq!(
        labels,
        BTreeSet::from([
            (
                format!("127.0.0.1:{port}"),
                "Local 🦄 Koios".into(),
                "preprod".into(),
                "8453".into()
            ),
            (
                format!("192.0.2.7:{port}"),
                "Far Away Pool".into(),
                "preprod".into(),
                "8053".into()
            ),
        ])
    );
    exporter.shutdown().await;
}

#[test]
fn bad_flags_exit_2_with_one_line_naming_the_flag() {
    let dir = TempDir::new("file-sd-flags");
    let unnamed = dir.join("instances.json");
    std::fs::write(&unnamed, r#"{"public": []}"#).unwrap();
    let huge = dir.join("topology-mainnet.json");
    std::fs::write(&huge, vec![b' '; 1024 * 1024 + 1]).unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["--koios-topology", unnamed.to_str().unwrap()],
            "'--network'",
        ),
        (
            &[
                "--koios-topology",
                unnamed.to_str().unwrap(),
                "--network",
                "Main Net",
            ],
            "'--network'",
        ),
        (
            &["--koios-topology", huge.to_str().unwrap()],
            "'--koios-topology'",
        ),
        (
            &["--koios-topology", "/nonexistent/topology-mainnet.json"],
            "'--koios-topology'",
        ),
        (
            &["--koios-topology", huge.to_str().unwrap(), "--port", "0"],
            "'--port",
        ),
    ];
    for (args, flag) in cases {
        let run = file_sd(args);
        let lines = stderr_lines(&run);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {lines:?}");
        assert_eq!(lines.len(), 1, "{args:?}: {lines:?}");
        assert!(lines[0].contains(flag), "{args:?}: {lines:?}");
    }
}
