//! The `dbsync-exporter` binary: parse flags, set up logging, bind, run; or, given the
//! `file-sd` subcommand, write a Prometheus file_sd file from a Koios topology and exit.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use dbsync_exporter::config::{Args, Config};
use dbsync_exporter::file_sd::{self, FileSdArgs};

#[tokio::main]
async fn main() -> ExitCode {
    // The subcommand is added here, not in `Args`, so that the exporter's own flags (and
    // `Args::defaults`) stay exactly as they are when no subcommand is given.
    let command = Args::command()
        .subcommand(FileSdArgs::command())
        .args_conflicts_with_subcommands(true);
    let matches = match command.try_get_matches() {
        Ok(matches) => matches,
        Err(error) => return usage_error(error),
    };
    if let Some(("file-sd", sub)) = matches.subcommand() {
        return match FileSdArgs::from_arg_matches(sub) {
            Ok(args) => file_sd_main(&args),
            Err(error) => usage_error(error),
        };
    }
    let args = match Args::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(error) => return usage_error(error),
    };
    if let Err(error) = dbsync_exporter::logging::init(&args.log.level, args.log.format) {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    let config = match Config::from_args(args) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    // systemd's and most shells' soft limit is 1024: raise it to the hard limit, so that a pile
    // of idle sockets cannot starve the database pool of descriptors.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open-files limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open-files limit"),
    }
    let listener = match tokio::net::TcpListener::bind(config.web.listen_address).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!(
                "error: cannot listen on {} (--web.listen-address): {error}",
                config.web.listen_address
            );
            return ExitCode::FAILURE;
        }
    };
    match dbsync_exporter::run(config, listener, dbsync_exporter::shutdown::signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error @ dbsync_exporter::RunError::WebConfig(..)) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
        Err(error) => {
            tracing::error!(%error, "exporter stopped");
            ExitCode::FAILURE
        }
    }
}

/// `file-sd`: the file_sd JSON on stdout (or in `--output`), one line per skipped entry and
/// a summary on stderr.
fn file_sd_main(args: &FileSdArgs) -> ExitCode {
    match file_sd::run(
        args,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// clap's errors span several lines; operators get one line that names the flag.
fn usage_error(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            ExitCode::SUCCESS
        }
        _ => {
            let rendered = error.render().to_string();
            let line = rendered
                .lines()
                .find(|line| !line.trim().is_empty())
                .unwrap_or("error: invalid arguments");
            eprintln!("{line}");
            ExitCode::from(2)
        }
    }
}
