//! The `dbsync-sim` binary: flags, then one library call per subcommand.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use dbsync_fixture::{Cluster, IndexSet, SchemaVersion};
use dbsync_sim::time::{parse_duration, rfc3339};
use dbsync_sim::{
    connect, follow_with, generate_on, init, FaultSet, FollowOptions, GenerateOptions, InitOptions,
    Network, Rollbacks, Scale, SimError,
};

/// A simulated cardano-db-sync database: schema, history, planted faults, live blocks.
#[derive(Debug, Parser)]
#[command(name = "dbsync-sim", version, about, long_about = None)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct Db {
    /// PostgreSQL URL of the database to write (a superuser or the owner of the schema).
    #[arg(long, env = "DBSYNC_SIM_DATABASE_URL", hide_env_values = true)]
    database_url: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the db-sync schema, schema_version, meta and the genesis block.
    Init {
        #[command(flatten)]
        db: Db,
        /// db-sync release whose schema to create.
        #[arg(long, default_value = "13.6")]
        schema: SchemaVersion,
        /// Network (genesis constants, era boundaries).
        #[arg(long, value_enum, default_value_t = NetworkName::Mainnet)]
        network: NetworkName,
        /// Indexes to start with; `generate` adds the near-tip ones after its bulk load.
        #[arg(long, value_enum, default_value_t = Indexes::InitialSync)]
        indexes: Indexes,
    },
    /// Write a history shaped like the network up to now (or --until-unix).
    Generate {
        #[command(flatten)]
        db: Db,
        /// small (~50 k blocks, seconds), mainnet (the network's natural size), or a block count.
        #[arg(long, default_value = "small")]
        scale: Scale,
        /// Faults to plant: any of missing-mir, orphan-mir, missing-refund, broken-ada-pots,
        /// missing-ada-pots, wrong-block-tx-count, owner-less-pool-update, future-block,
        /// block-number-gap, block-time-disorder, epoch-table-mismatch, tx-imbalance,
        /// double-spend, withdrawal-excess (comma-separated), or all.
        #[arg(long, default_value = "")]
        faults: FaultSet,
        /// Seed of every random choice.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// End the history at this Unix time instead of now.
        #[arg(long)]
        until_unix: Option<i64>,
        /// Leave out the near-tip (stage-4) indexes: a database still in initial sync.
        #[arg(long)]
        skip_near_tip_indexes: bool,
        /// No progress bars.
        #[arg(long)]
        quiet: bool,
    },
    /// Keep adding blocks (epoch boundaries, rollbacks, stalls) until interrupted.
    Follow {
        #[command(flatten)]
        db: Db,
        /// Chain clock speed (1 = real time, one block per ~20 s; 10 = ten times faster).
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Roll back 1–3 blocks this often (e.g. 2m). Default: occasionally, after about one
        /// block in 30 (every ~10 minutes at speed 1).
        #[arg(long, conflicts_with = "no_rollbacks", value_parser = parse_duration)]
        rollback_every: Option<Duration>,
        /// Never roll back.
        #[arg(long)]
        no_rollbacks: bool,
        /// Stop producing after this long and stay idle (e.g. 5m), to show a stale tip.
        #[arg(long, value_parser = parse_duration)]
        stall_after: Option<Duration>,
        /// Exit after this many blocks.
        #[arg(long)]
        max_blocks: Option<u64>,
        /// Seed (mixed with the clock).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Start a throwaway PostgreSQL (as user postgres when run as root), create a database,
    /// print its URLs and keep it alive until interrupted; then stop it and remove its files.
    Cluster {
        /// Also write `DATABASE_URL=…` and `READER_URL=…` lines to this file (atomically).
        #[arg(long)]
        url_file: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum NetworkName {
    Mainnet,
    Preprod,
    Preview,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Indexes {
    /// Stage 1–3 only: what db-sync has during initial sync.
    InitialSync,
    /// Everything, including the stage-4 indexes and run-time constraints.
    NearTip,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), SimError> {
    match command {
        Command::Init {
            db,
            schema,
            network,
            indexes,
        } => {
            let client = connect(&db.database_url).await?;
            let network = Network::known(match network {
                NetworkName::Mainnet => "mainnet",
                NetworkName::Preprod => "preprod",
                NetworkName::Preview => "preview",
            })?;
            let indexes = match indexes {
                Indexes::InitialSync => IndexSet::InitialSync,
                Indexes::NearTip => IndexSet::NearTip,
            };
            init(
                &client,
                &InitOptions {
                    version: schema,
                    network: network.clone(),
                    indexes,
                },
            )
            .await?;
            println!(
                "initialised a db-sync {schema} schema for {} ({indexes:?} indexes)",
                network.name()
            );
            Ok(())
        }
        Command::Generate {
            db,
            scale,
            faults,
            seed,
            until_unix,
            skip_near_tip_indexes,
            quiet,
        } => {
            // Two connections: chain and stake distribution are written side by side.
            let client = connect(&db.database_url).await?;
            let second = connect(&db.database_url).await?;
            let report = generate_on(
                &client,
                &second,
                &GenerateOptions {
                    scale,
                    faults,
                    seed,
                    until_unix,
                    near_tip_indexes: !skip_near_tip_indexes,
                    progress: !quiet,
                },
            )
            .await?;
            println!(
                "generated {} ({} schema, scale {scale}) up to {} (epoch {}) in {:.1}s",
                report.network,
                report.version,
                rfc3339(report.until_unix),
                report.tip_epoch,
                report.elapsed.as_secs_f64()
            );
            for (table, rows) in &report.counts {
                println!("  {table:<22} {rows:>12}");
            }
            for planted in &report.planted {
                println!("{planted}");
            }
            println!("expected integrity metrics:");
            for e in &report.expectations {
                println!("  {} {}", e.series, e.value);
            }
            Ok(())
        }
        Command::Follow {
            db,
            speed,
            rollback_every,
            no_rollbacks,
            stall_after,
            max_blocks,
            seed,
        } => {
            let shutdown = shutdown_signal()?;
            let mut client = connect(&db.database_url).await?;
            let rollbacks = match (rollback_every, no_rollbacks) {
                (Some(every), _) => Rollbacks::Every(every),
                (None, true) => Rollbacks::Never,
                (None, false) => Rollbacks::Occasional,
            };
            let report = follow_with(
                &mut client,
                &FollowOptions {
                    speed,
                    rollback_every: None,
                    stall_after,
                    max_blocks,
                    seed,
                    log: true,
                },
                rollbacks,
                shutdown,
            )
            .await?;
            println!(
                "stopped after {} blocks, {} rollbacks, {} epoch boundaries",
                report.blocks,
                report.rollbacks.len(),
                report.epochs_entered.len()
            );
            Ok(())
        }
        Command::Cluster { url_file } => cluster(url_file).await,
    }
}

/// Runs a throwaway cluster until SIGINT/SIGTERM.
async fn cluster(url_file: Option<PathBuf>) -> Result<(), SimError> {
    // Listening before the cluster exists: a signal during its start still stops and
    // removes it instead of killing this process and leaving the files behind.
    let shutdown = shutdown_signal()?;
    // Starting is blocking process work (initdb, pg_ctl); keep it off the runtime threads.
    let cluster = tokio::task::spawn_blocking(Cluster::start_private)
        .await
        .map_err(|e| SimError::Invalid(format!("starting PostgreSQL: {e}")))?
        .map_err(|e| SimError::Invalid(format!("starting PostgreSQL: {e}")))?;
    let db = cluster.create_database("dbsync_sim").await;
    let lines = format!(
        "DATABASE_URL={}\nREADER_URL={}\n",
        db.superuser_url(),
        db.reader_url()
    );
    print!("{lines}");
    if let Some(path) = url_file {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &lines)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| SimError::Invalid(format!("writing {}: {e}", path.display())))?;
    }
    eprintln!(
        "PostgreSQL on {}:{} (data in a temp dir); Ctrl-C stops it and removes its files",
        cluster.host(),
        cluster.port()
    );
    shutdown.await;
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .map_err(|e| SimError::Invalid(format!("stopping PostgreSQL: {e}")))?;
    Ok(())
}

/// Starts listening for SIGINT (Ctrl-C) and SIGTERM (`kill`, `docker stop`, the demo
/// script's cleanup); the returned future resolves on the first of them.
///
/// The handlers are installed here, not when the future is first polled, so a signal that
/// arrives in between is not lost (nor does it take the process down with its default
/// action).
fn shutdown_signal() -> Result<impl Future<Output = ()>, SimError> {
    use tokio::signal::unix::{signal, SignalKind};
    let listen = |kind| {
        signal(kind).map_err(|e| SimError::Invalid(format!("cannot listen for signals: {e}")))
    };
    let mut interrupt = listen(SignalKind::interrupt())?;
    let mut terminate = listen(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
