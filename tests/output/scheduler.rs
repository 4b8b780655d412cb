//! The scheduler under tokio's paused clock, with a stand-in for the database side of a run:
//! intervals, one run in flight, the client-side cap, retries after failures, a panicking
//! check, and what it takes to add a check (a type and one registration line).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dbsync_exporter::checks::{
    Cadence, Check, CheckError, CheckName, Context, Findings, RollbackStats, Verdict,
};
use dbsync_exporter::clock::Clock;
use dbsync_exporter::scheduler::{Runner, Scheduler, CLIENT_GRACE};
use tokio::sync::watch;
use tokio::time::Instant;

/// How a stand-in run of a check behaves.
#[derive(Clone, Copy)]
enum Script {
    /// Takes this long, then succeeds.
    Lasts(Duration),
    /// Panics on its first run, then succeeds at once.
    PanicsFirst,
}

/// A check for this test: its behaviour lives in the runner's script.
struct Scripted(CheckName);

impl Check for Scripted {
    fn name(&self) -> CheckName {
        self.0
    }

    async fn run(&mut self, _ctx: Context<'_>) -> Result<Verdict, CheckError> {
        unreachable!("the stand-in runner never opens a database transaction")
    }
}

/// Runs each check by its script and remembers when runs started and ended.
#[derive(Default)]
struct StandIn {
    scripts: HashMap<CheckName, Script>,
    log: Mutex<Log>,
}

#[derive(Default)]
struct Log {
    starts: HashMap<CheckName, Vec<Duration>>,
    in_flight: HashMap<CheckName, u32>,
    most_in_flight: HashMap<CheckName, u32>,
    dropped: HashMap<CheckName, u32>,
}

/// Counts a run as in flight until dropped; a drop before `done` is an abandoned run.
struct InFlight<'a> {
    log: &'a Mutex<Log>,
    name: CheckName,
    done: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut log = self.log.lock().unwrap();
        *log.in_flight.get_mut(&self.name).unwrap() -= 1;
        if !self.done {
            *log.dropped.entry(self.name).or_default() += 1;
        }
    }
}

impl Runner for StandIn {
    async fn run<C: Check>(&self, check: &mut C, _cadence: Cadence) -> Result<Verdict, CheckError> {
        let name = check.name();
        let (first, mut flight) = {
            let mut log = self.log.lock().unwrap();
            let elapsed = START.with(|start| start.elapsed());
            let starts = log.starts.entry(name).or_default();
            starts.push(elapsed);
            let first = starts.len() == 1;
            let in_flight = log.in_flight.entry(name).or_default();
            *in_flight += 1;
            let now = *in_flight;
            let most = log.most_in_flight.entry(name).or_default();
            *most = (*most).max(now);
            (
                first,
                InFlight {
                    log: &self.log,
                    name,
                    done: false,
                },
            )
        };
        match self.scripts[&name] {
            Script::Lasts(duration) => tokio::time::sleep(duration).await,
            Script::PanicsFirst if first => panic!("scripted panic"),
            Script::PanicsFirst => {}
        }
        flight.done = true;
        Ok(Verdict::Found(Findings::Rollback(RollbackStats::default())))
    }
}

thread_local! {
    /// The paused clock's zero for this test (the runtime is current-thread).
    static START: Instant = Instant::now();
}

fn every(seconds: u64, timeout: u64) -> Cadence {
    Cadence {
        interval: Duration::from_secs(seconds),
        timeout: Duration::from_secs(timeout),
    }
}

#[tokio::test(start_paused = true)]
async fn intervals_one_run_in_flight_the_cap_and_a_panic() {
    START.with(|_| ());
    let runner = Arc::new(StandIn {
        scripts: HashMap::from([
            (CheckName::Tip, Script::Lasts(Duration::from_secs(1))),
            (CheckName::Rollback, Script::Lasts(Duration::from_secs(25))),
            (CheckName::Info, Script::Lasts(Duration::from_secs(600))),
            (CheckName::Grest, Script::PanicsFirst),
        ]),
        log: Mutex::default(),
    });
    let mut scheduler = Scheduler::new(runner.clone(), Clock::pinned(1_000.0));
    // One line per check: its store slot comes with it.
    scheduler.spawn(Scripted(CheckName::Tip), every(10, 5));
    scheduler.spawn(Scripted(CheckName::Rollback), every(10, 30));
    scheduler.spawn(Scripted(CheckName::Info), every(60, 3));
    scheduler.spawn(Scripted(CheckName::Grest), every(10, 5));
    let (stop, stopped) = watch::channel(false);
    let (store, running) = scheduler.start(stopped);
    // Every first run starts within its jitter (at most 1 s here, 2 s for `info`); in 59 s
    // each check runs on its beat, and a failed run is retried after 1 s, doubling.
    tokio::time::sleep(Duration::from_secs(59)).await;

    {
        let log = runner.log.lock().unwrap();
        let gaps = |name: CheckName| -> Vec<Duration> {
            log.starts[&name]
                .windows(2)
                .map(|pair| pair[1] - pair[0])
                .collect()
        };
        // The interval: a run every 10 s after the jitter (at most a tenth of the interval).
        assert!(log.starts[&CheckName::Tip][0] <= Duration::from_secs(1));
        assert_eq!(gaps(CheckName::Tip), vec![Duration::from_secs(10); 5]);
        // One in flight: runs of 25 s on a 10 s interval follow each other, never overlap.
        assert_eq!(gaps(CheckName::Rollback), vec![Duration::from_secs(25); 2]);
        assert_eq!(log.most_in_flight[&CheckName::Rollback], 1);
        // The cap: a run that never answers is dropped at timeout + grace (5 s) and counted;
        // the retries come 1, 2, 4, 8 and 16 s after each failure, not an interval (60 s)
        // later. The sixth run is still in flight.
        let seconds = |list: &[u64]| {
            list.iter()
                .map(|s| Duration::from_secs(*s))
                .collect::<Vec<_>>()
        };
        assert_eq!(gaps(CheckName::Info), seconds(&[6, 7, 9, 13, 21]));
        assert_eq!(log.dropped[&CheckName::Info], 5);
        let info = store.state(CheckName::Info).unwrap();
        assert_eq!(info.runs, [0, 0, 5]);
        assert_eq!(
            info.last_error,
            Some(CheckError::Timeout(format!(
                "no answer within {:?}",
                Duration::from_secs(3) + CLIENT_GRACE
            )))
        );
        assert_eq!(
            info.last_duration,
            Some(Duration::from_secs(3) + CLIENT_GRACE)
        );
        // A panic is an error run, retried a second later; then the check keeps its beat.
        let grest = store.state(CheckName::Grest).unwrap();
        assert_eq!(
            grest.runs,
            [6, 1, 0],
            "seven runs in 59 s: the first panicked"
        );
        assert_eq!(gaps(CheckName::Grest), seconds(&[1, 10, 10, 10, 10, 10]));
        assert_eq!(grest.last_error, None);
        assert_eq!(grest.last_success_unix, Some(1_000.0));
    }
    let tip = store.state(CheckName::Tip).unwrap();
    assert_eq!(
        (tip.runs, tip.last_duration),
        ([6, 0, 0], Some(Duration::from_secs(1)))
    );

    stop.send(true).unwrap();
    running.join().await;
}
