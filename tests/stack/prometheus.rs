//! A real Prometheus server (`/usr/bin/prometheus`) as a child process: the pull model's
//! server, or in agent mode the push model's operator side.

use std::ops::Deref;
use std::path::Path;

use crate::process::{Api, Server, Spec};

pub struct Prometheus {
    api: Api,
    pub server: Server,
}

impl Prometheus {
    /// Writes `files` (name, content) and `prometheus.yml` (made by `config` from the temp
    /// dir's path and the server's port) into a fresh temp dir, starts Prometheus on a free port and waits until it
    /// is ready.
    pub async fn start(
        files: &[(&str, String)],
        config: impl Fn(&Path, u16) -> String,
    ) -> Prometheus {
        Prometheus::start_mode(false, files, config).await
    }

    /// Like [`Prometheus::start`], in agent mode (Prometheus 2.x: `--enable-feature=agent`):
    /// it scrapes and remote-writes, it keeps no TSDB and evaluates no rules.
    pub async fn start_agent(
        files: &[(&str, String)],
        config: impl Fn(&Path, u16) -> String,
    ) -> Prometheus {
        Prometheus::start_mode(true, files, config).await
    }

    async fn start_mode(
        agent: bool,
        files: &[(&str, String)],
        config: impl Fn(&Path, u16) -> String,
    ) -> Prometheus {
        // The config needs the dir's path, which only exists once the server's dir does:
        // write it from the argument builder, which runs in that dir first.
        let files = files
            .iter()
            .map(|(name, content)| (name.to_string(), content.clone()))
            .collect();
        let server = Server::start(Spec {
            name: if agent {
                "prometheus-agent"
            } else {
                "prometheus"
            },
            binary: "prometheus",
            files,
            args: Box::new(move |dir, port| {
                let config_path = dir.join("prometheus.yml");
                std::fs::write(&config_path, config(dir, port)).unwrap();
                let mut args = vec![
                    format!("--config.file={}", config_path.display()),
                    format!("--web.listen-address=127.0.0.1:{port}"),
                    "--log.level=info".to_owned(),
                ];
                if agent {
                    args.push("--enable-feature=agent".to_owned());
                    args.push(format!(
                        "--storage.agent.path={}",
                        dir.join("wal").display()
                    ));
                } else {
                    args.push(format!(
                        "--storage.tsdb.path={}",
                        dir.join("data").display()
                    ));
                    args.push("--storage.tsdb.retention.time=1h".to_owned());
                }
                args
            }),
            ready_path: "/-/ready",
        })
        .await;
        Prometheus {
            api: server.api(),
            server,
        }
    }
}

impl Deref for Prometheus {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}
