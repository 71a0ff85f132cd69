//! The process's own figures for `/metrics` (the `process_*` families Prometheus client
//! libraries export), read from `/proc/self` on Linux; elsewhere only the start time.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Clock ticks per second of the CPU times in `/proc/self/stat` (Linux's `USER_HZ`, 100
/// on every architecture Freshet builds for).
const TICKS_PER_SECOND: f64 = 100.0;

static STARTED: OnceLock<f64> = OnceLock::new();

/// Remember when the process started; `main` calls this first.
pub fn record_start() {
    STARTED.get_or_init(now_seconds);
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// What the process uses now; a figure the system does not offer is `None`.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    /// User and system CPU time, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident memory, in bytes.
    pub resident_bytes: Option<f64>,
    /// Virtual memory, in bytes.
    pub virtual_bytes: Option<f64>,
    /// Open file descriptors.
    pub open_fds: Option<f64>,
    /// The soft limit on open file descriptors.
    pub max_fds: Option<f64>,
    /// Threads.
    pub threads: Option<f64>,
    /// When the process started, in seconds since the epoch.
    pub start_time_seconds: f64,
}

/// Read the figures now.
pub fn read() -> ProcessStats {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    ProcessStats {
        cpu_seconds: cpu_seconds(&stat),
        resident_bytes: status_kib(&status, "VmRSS:").map(|k| k * 1024.0),
        virtual_bytes: status_kib(&status, "VmSize:").map(|k| k * 1024.0),
        open_fds: std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as f64),
        max_fds: limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse().ok()),
        threads: status_kib(&status, "Threads:"),
        start_time_seconds: *STARTED.get_or_init(now_seconds),
    }
}

/// The number after `key` in `/proc/self/status` (memory figures are in KiB).
fn status_kib(status: &str, key: &str) -> Option<f64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// utime + stime from `/proc/self/stat`. The command name (field 2) is in parentheses and
/// may hold spaces, so fields are counted after its closing parenthesis.
fn cpu_seconds(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11); // fields 3..=13 come first
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((user + system) / TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_after_a_command_name_with_spaces() {
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 9 0";
        assert_eq!(cpu_seconds(stat), Some(3.0));
        assert_eq!(cpu_seconds("garbage"), None);
    }

    #[test]
    fn this_process_has_memory_threads_and_descriptors() {
        let stats = read();
        if cfg!(target_os = "linux") {
            assert!(stats.resident_bytes.is_some_and(|b| b > 1e5), "{stats:?}");
            assert!(stats.threads.is_some_and(|t| t >= 1.0), "{stats:?}");
            assert!(stats.open_fds.is_some_and(|n| n >= 3.0), "{stats:?}");
            assert!(stats.max_fds.is_some_and(|n| n >= 3.0), "{stats:?}");
            assert!(stats.cpu_seconds.is_some(), "{stats:?}");
        }
        assert!(stats.start_time_seconds > 1.6e9);
    }
}
