//! `dbsync-exporter file-sd`: turns a Koios topology file (the community's list of
//! instances) into a Prometheus file_sd file with one exporter target per instance.
//!
//! A tool of its own beside the exporter (it uses no other module): run from cron or the
//! packaged systemd timer, it reads at most [`MAX_TOPOLOGY_BYTES`], skips bad entries with
//! one line each on stderr, and with `--output` replaces the file atomically (a temporary
//! file in the same directory, then `rename`), so Prometheus never reads half a file. A
//! topology without a single usable instance is refused and the old file is kept: an empty
//! list would drop every target.

pub mod topology;

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use clap::{Parser, ValueEnum};

pub use topology::{convert, Converted, Options, TargetGroup, TopologyError};

/// The largest topology file read (Koios' mainnet file is a few KiB).
pub const MAX_TOPOLOGY_BYTES: u64 = 1024 * 1024;

/// Write a Prometheus file_sd file from a Koios topology file.
///
/// One target per instance in the topology's "public" list, at the instance's address and
/// the exporter's port, labelled operator (the entry's name), network and koios_port (the
/// instance's PostgREST/HAProxy port).
#[derive(Debug, Parser)]
#[command(name = "file-sd")]
pub struct FileSdArgs {
    /// Koios topology JSON (e.g. koios-artifacts' topology/topology-mainnet.json).
    #[arg(long = "koios-topology", value_name = "FILE")]
    pub koios_topology: PathBuf,

    /// The network label [default: from the file name topology-NAME.json].
    #[arg(long, value_name = "NAME")]
    pub network: Option<String>,

    /// The exporter's port on every instance.
    #[arg(long, default_value_t = 9895, value_parser = clap::value_parser!(u16).range(1..), value_name = "PORT")]
    pub port: u16,

    /// Scheme Prometheus scrapes the exporters with (written as __scheme__) [default: the
    /// scrape job's].
    #[arg(long, value_enum, value_name = "SCHEME")]
    pub scheme: Option<Scheme>,

    /// Write here (atomically) instead of to stdout.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// How Prometheus scrapes the exporters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// TLS.
    Https,
}

/// Why the command failed: one line for stderr, and the exit status.
#[derive(Debug, thiserror::Error)]
pub enum FileSdError {
    /// A flag or the file it names is unusable (exit 2).
    #[error("invalid value for '{flag}': {reason}")]
    Input {
        /// The flag.
        flag: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The output could not be written (exit 1).
    #[error("cannot write '--output' {path}: {error}")]
    Output {
        /// The output file.
        path: String,
        /// The cause.
        error: std::io::Error,
    },
}

impl FileSdError {
    /// The process exit status.
    pub fn exit_code(&self) -> u8 {
        match self {
            FileSdError::Input { .. } => 2,
            FileSdError::Output { .. } => 1,
        }
    }
}

fn input(flag: &'static str, reason: impl Into<String>) -> FileSdError {
    FileSdError::Input {
        flag,
        reason: reason.into(),
    }
}

/// Runs the command: the file_sd JSON to `stdout` (or `--output`); one line per skipped
/// entry, then a summary line, to `stderr`.
pub fn run(
    args: &FileSdArgs,
    stdout: &mut impl Write,
    stderr: &mut impl Write,
) -> Result<(), FileSdError> {
    let network = match &args.network {
        Some(network) if topology::valid_network(network) => network.clone(),
        Some(_) => {
            return Err(input(
                "--network",
                "use lower-case letters, digits, '-' and '_' (at most 32)",
            ))
        }
        None => args
            .koios_topology
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(topology::network_of_file_name)
            .ok_or_else(|| {
                input(
                    "--network",
                    "not given, and the topology's file name is not topology-NAME.json",
                )
            })?,
    };
    let text = read_bounded(&args.koios_topology)?;
    let options = Options {
        network,
        port: args.port,
        scheme: args.scheme.map(|scheme| match scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }),
    };
    let converted =
        convert(&text, &options).map_err(|error| input("--koios-topology", error.to_string()))?;
    // Diagnostics are best effort: a closed stderr must not stop the file being written.
    for line in &converted.skipped {
        let _ = writeln!(stderr, "file-sd: skipped {line}");
    }
    if converted.groups.is_empty() {
        return Err(input(
            "--koios-topology",
            format!(
                "no usable instance in it ({} skipped); nothing written",
                converted.skipped.len()
            ),
        ));
    }
    let mut body =
        serde_json::to_string_pretty(&converted.groups).expect("target groups serialise");
    body.push('\n');
    match &args.output {
        Some(path) => {
            write_atomically(path, body.as_bytes()).map_err(|error| FileSdError::Output {
                path: path.display().to_string(),
                error,
            })?
        }
        None => stdout
            .write_all(body.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(|error| FileSdError::Output {
                path: "-".into(),
                error,
            })?,
    }
    let _ = writeln!(
        stderr,
        "file-sd: {} targets for {}{}, {} entries skipped",
        converted.groups.len(),
        options.network,
        args.output
            .as_ref()
            .map_or_else(String::new, |path| format!(
                " written to {}",
                path.display()
            )),
        converted.skipped.len()
    );
    Ok(())
}

/// The topology's text, refusing files over [`MAX_TOPOLOGY_BYTES`] and non-UTF-8 ones.
fn read_bounded(path: &Path) -> Result<String, FileSdError> {
    let flag = "--koios-topology";
    let file =
        File::open(path).map_err(|error| input(flag, format!("{}: {error}", path.display())))?;
    let mut bytes = Vec::new();
    file.take(MAX_TOPOLOGY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| input(flag, format!("{}: {error}", path.display())))?;
    if bytes.len() as u64 > MAX_TOPOLOGY_BYTES {
        return Err(input(
            flag,
            format!(
                "{} is larger than {MAX_TOPOLOGY_BYTES} bytes",
                path.display()
            ),
        ));
    }
    String::from_utf8(bytes).map_err(|_| input(flag, format!("{} is not UTF-8", path.display())))
}

/// Replaces `path` with `body`: a temporary file in the same directory (same file system,
/// so the rename is atomic), synced, renamed over the target, then the directory synced.
fn write_atomically(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("not a file name"))?;
    let temp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut file = File::options().write(true).create_new(true).open(&temp)?;
        file.write_all(body)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written?;
    // The rename itself is durable once the directory is synced; failing that is not fatal.
    if let Ok(dir) = File::open(&dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}
