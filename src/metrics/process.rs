//! The exporter's own process, in the Prometheus convention (`process_*`, as client_golang
//! and node_exporter name them): CPU, memory, descriptors and start time, read from
//! `/proc/self` at scrape time (no database, a few small reads, at most once a second with the
//! render cache), so an operator can alert on the exporter's memory or descriptor use.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use super::{counter_value, family, gauge, NO_LABELS};

/// Linux reports CPU times in USER_HZ, 100 per second on every architecture it runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// One reading of the process.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProcessStats {
    /// User + system CPU time.
    pub cpu_seconds: f64,
    /// Resident set size.
    pub resident_bytes: u64,
    /// Virtual memory size.
    pub virtual_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The soft open-files limit.
    pub max_fds: u64,
    /// Unix time the process started.
    pub start_time_seconds: f64,
}

/// Where the readings come from: `/proc/self` ([`SelfProcess`]), or fixed ones in tests.
pub trait ProcessSource: Send + Sync {
    /// A reading now; `None` where `/proc` cannot be read.
    fn read(&self) -> Option<ProcessStats>;
}

impl ProcessSource for ProcessStats {
    fn read(&self) -> Option<ProcessStats> {
        Some(*self)
    }
}

/// This process, through `/proc/self`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SelfProcess;

impl ProcessSource for SelfProcess {
    fn read(&self) -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split(' ').collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        let cpu_ticks = field(14)? + field(15)?;
        let start_ticks = field(22)?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let kib = |name: &str| -> Option<u64> {
            let line = status.lines().find_map(|line| line.strip_prefix(name))?;
            line.split_whitespace().next()?.parse::<u64>().ok()
        };
        let boot_time: u64 = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|line| line.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        let (max_fds, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).ok()?;
        Some(ProcessStats {
            cpu_seconds: cpu_ticks as f64 / TICKS_PER_SECOND,
            resident_bytes: kib("VmRSS:")? * 1024,
            virtual_bytes: kib("VmSize:")? * 1024,
            // The directory listing itself holds one descriptor.
            open_fds: open_fds.saturating_sub(1),
            max_fds,
            start_time_seconds: boot_time as f64 + start_ticks as f64 / TICKS_PER_SECOND,
        })
    }
}

pub(super) fn encode(encoder: &mut DescriptorEncoder, source: &dyn ProcessSource) -> fmt::Result {
    let Some(stats) = source.read() else {
        return Ok(());
    };
    family(
        encoder,
        "process_cpu_seconds",
        "Total user and system CPU time spent in seconds.",
        MetricType::Counter,
        [(NO_LABELS, stats.cpu_seconds)],
        counter_value,
    )?;
    gauge(
        encoder,
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        stats.resident_bytes as i64,
    )?;
    gauge(
        encoder,
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes.",
        stats.virtual_bytes as i64,
    )?;
    gauge(
        encoder,
        "process_open_fds",
        "Number of open file descriptors.",
        stats.open_fds as i64,
    )?;
    gauge(
        encoder,
        "process_max_fds",
        "Maximum number of open file descriptors (the soft limit).",
        i64::try_from(stats.max_fds).unwrap_or(i64::MAX),
    )?;
    gauge(
        encoder,
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        stats.start_time_seconds,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_can_be_read() {
        let stats = SelfProcess.read().expect("/proc/self is readable on Linux");
        assert!(stats.resident_bytes > 1024 * 1024, "{stats:?}");
        assert!(stats.virtual_bytes >= stats.resident_bytes, "{stats:?}");
        assert!(
            stats.open_fds >= 3 && stats.open_fds < stats.max_fds,
            "{stats:?}"
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            stats.start_time_seconds <= now + 1.0 && stats.start_time_seconds > now - 3600.0,
            "{stats:?}"
        );
    }
}
