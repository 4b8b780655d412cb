//! `limit-server`: the ceiling for `/metrics` throughput in the benchmarks.
//!
//! It serves one fixed body, read once from a file at start, with a given `Content-Type`, on
//! `GET`/`HEAD /metrics`, using the same HTTP stack as the exporter (axum 0.8 on a
//! multi-threaded tokio runtime, HTTP/1 only). Whatever the exporter does per scrape beyond
//! that (snapshotting the store, encoding the text) is what separates it from this server.
//!
//! ```text
//! limit-server --body FILE [--content-type TYPE] [--listen ADDRESS]
//! ```
//! The default content type is the Prometheus text format 0.0.4, the default address
//! `127.0.0.1:9899`.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::body::Bytes;
use axum::http::header;
use axum::routing::get;
use axum::Router;

const DEFAULT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const DEFAULT_LISTEN: &str = "127.0.0.1:9899";
const USAGE: &str = "usage: limit-server --body FILE [--content-type TYPE] [--listen ADDRESS]";

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
struct Options {
    body: String,
    content_type: String,
    listen: SocketAddr,
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut body = None;
    let mut content_type = DEFAULT_CONTENT_TYPE.to_owned();
    let mut listen = DEFAULT_LISTEN.to_owned();
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--body" => body = Some(value()?),
            "--content-type" => content_type = value()?,
            "--listen" => listen = value()?,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(Options {
        body: body.ok_or_else(|| format!("--body is required\n{USAGE}"))?,
        content_type,
        listen: listen
            .parse()
            .map_err(|error| format!("--listen `{listen}`: {error}"))?,
    })
}

/// The router: the fixed body on `/metrics` (axum answers `HEAD` from the `GET` route).
fn router(body: Bytes, content_type: String) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let body = body.clone();
            let content_type = content_type.clone();
            async move { ([(header::CONTENT_TYPE, content_type)], body) }
        }),
    )
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let body = match std::fs::read(&options.body) {
        Ok(body) => Bytes::from(body),
        Err(error) => {
            eprintln!("cannot read {}: {error}", options.body);
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(options.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot listen on {}: {error}", options.listen);
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "limit-server: {} bytes of {} on http://{}/metrics",
        body.len(),
        options.content_type,
        options.listen
    );
    let app = router(body, options.content_type);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("limit-server: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn defaults_apply_when_only_the_body_is_given() {
        let options = parse(args(&["--body", "x.txt"])).unwrap();
        assert_eq!(options.body, "x.txt");
        assert_eq!(options.content_type, DEFAULT_CONTENT_TYPE);
        assert_eq!(options.listen, DEFAULT_LISTEN.parse().unwrap());
    }

    #[test]
    fn every_flag_is_read() {
        let options = parse(args(&[
            "--listen",
            "127.0.0.1:1",
            "--content-type",
            "text/x",
            "--body",
            "b",
        ]))
        .unwrap();
        assert_eq!(options.listen, "127.0.0.1:1".parse().unwrap());
        assert_eq!(options.content_type, "text/x");
    }

    #[test]
    fn mistakes_are_reported() {
        assert!(parse(args(&[])).unwrap_err().contains("--body is required"));
        assert!(parse(args(&["--body"]))
            .unwrap_err()
            .contains("needs a value"));
        assert!(parse(args(&["--bogus"])).unwrap_err().contains("unknown"));
        assert!(parse(args(&["--body", "b", "--listen", "nope"]))
            .unwrap_err()
            .contains("--listen"));
    }
}
