//! Progress of long backups, verifies and restores: bytes done, total,
//! rate and time left, reported to a [`Progress`] sink.

use std::fmt;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hsm_proto::BackupId;

/// What is in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Writing a backup.
    Backup,
    /// Checking a backup's objects.
    Verify,
    /// Restoring a backup.
    Restore,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Backup => "backup",
            Phase::Verify => "verify",
            Phase::Restore => "restore",
        })
    }
}

/// One progress report.
#[derive(Debug, Clone)]
pub struct ProgressUpdate {
    /// What is in progress.
    pub phase: Phase,
    /// The backup concerned.
    pub backup_id: BackupId,
    /// Snapshot bytes done so far.
    pub done_bytes: u64,
    /// Snapshot bytes in all.
    pub total_bytes: u64,
    /// Time since the start.
    pub elapsed: Duration,
    /// Average rate so far, bytes per second.
    pub rate_bytes_per_s: f64,
    /// Estimated time left at that rate, once there is a rate.
    pub eta: Option<Duration>,
    /// True for the last report of a successful run.
    pub finished: bool,
}

/// Receives progress reports. Called from async code: implementations must
/// return quickly.
pub trait Progress: Send + Sync {
    /// One report; `finished` is set on the last one.
    fn update(&self, update: &ProgressUpdate);
}

/// Ignores all reports.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn update(&self, _: &ProgressUpdate) {}
}

/// Logs reports as structured `tracing` events (`info`), at most one per
/// interval, and always the last.
#[derive(Debug)]
pub struct LogProgress {
    every: Duration,
    last: Mutex<Option<Instant>>,
}

impl LogProgress {
    /// Logs at most once per `every`.
    pub fn new(every: Duration) -> LogProgress {
        LogProgress {
            every,
            last: Mutex::new(None),
        }
    }
}

impl Default for LogProgress {
    fn default() -> LogProgress {
        LogProgress::new(Duration::from_secs(10))
    }
}

/// Whether a throttled reporter should report now, and records it.
fn due(last: &Mutex<Option<Instant>>, every: Duration, finished: bool) -> bool {
    let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
    let now = Instant::now();
    if finished || last.is_none_or(|t| now.duration_since(t) >= every) {
        *last = Some(now);
        true
    } else {
        false
    }
}

impl Progress for LogProgress {
    fn update(&self, u: &ProgressUpdate) {
        if !due(&self.last, self.every, u.finished) {
            return;
        }
        tracing::info!(
            phase = %u.phase,
            backup_id = %u.backup_id,
            done_bytes = u.done_bytes,
            total_bytes = u.total_bytes,
            rate_bytes_per_s = u.rate_bytes_per_s.round() as u64,
            eta_s = u.eta.map(|d| d.as_secs()),
            elapsed_ms = u.elapsed.as_millis() as u64,
            finished = u.finished,
            "backup progress"
        );
    }
}

/// Redraws one line on stderr (`\r`), at most ten times a second, and ends
/// it with a newline when finished.
#[derive(Debug)]
pub struct TerminalProgress {
    last: Mutex<Option<Instant>>,
}

impl TerminalProgress {
    /// A line drawer for stderr.
    pub fn new() -> TerminalProgress {
        TerminalProgress {
            last: Mutex::new(None),
        }
    }
}

impl Default for TerminalProgress {
    fn default() -> TerminalProgress {
        TerminalProgress::new()
    }
}

impl Progress for TerminalProgress {
    fn update(&self, u: &ProgressUpdate) {
        if !due(&self.last, Duration::from_millis(100), u.finished) {
            return;
        }
        let mut err = std::io::stderr().lock();
        // A progress line that cannot be drawn is not worth failing for.
        let _ = write!(err, "\r{}\x1b[K", progress_line(u));
        if u.finished {
            let _ = writeln!(err);
        }
        let _ = err.flush();
    }
}

/// A line on a terminal when stderr is one, structured logs otherwise.
pub fn for_stderr() -> Box<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Box::new(TerminalProgress::new())
    } else {
        Box::new(LogProgress::default())
    }
}

/// `backup 1f2e… 12.0 MiB / 40.0 MiB  30%  8.0 MiB/s  4s left`
pub fn progress_line(u: &ProgressUpdate) -> String {
    let percent = u
        .done_bytes
        .saturating_mul(100)
        .checked_div(u.total_bytes)
        .unwrap_or(100);
    let id = u.backup_id.to_string();
    let left = match (u.finished, u.eta) {
        (true, _) => format!("done in {}", seconds(u.elapsed)),
        (false, Some(eta)) => format!("{} left", seconds(eta)),
        (false, None) => String::new(),
    };
    format!(
        "{} {}… {} / {} {percent:>3}% {}/s {left}",
        u.phase,
        &id[..8],
        size(u.done_bytes as f64),
        size(u.total_bytes as f64),
        size(u.rate_bytes_per_s),
    )
}

fn size(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn seconds(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}.{}s", s, d.subsec_millis() / 100)
    }
}

/// Tracks one run and builds its reports.
pub(crate) struct Meter<'a> {
    sink: &'a dyn Progress,
    phase: Phase,
    backup_id: BackupId,
    total_bytes: u64,
    done_bytes: u64,
    start: Instant,
}

impl<'a> Meter<'a> {
    pub(crate) fn new(
        sink: &'a dyn Progress,
        phase: Phase,
        backup_id: BackupId,
        total_bytes: u64,
    ) -> Meter<'a> {
        Meter {
            sink,
            phase,
            backup_id,
            total_bytes,
            done_bytes: 0,
            start: Instant::now(),
        }
    }

    fn report(&self, finished: bool) {
        let elapsed = self.start.elapsed();
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            self.done_bytes as f64 / secs
        } else {
            0.0
        };
        let eta = (rate > 0.0 && !finished).then(|| {
            Duration::from_secs_f64(self.total_bytes.saturating_sub(self.done_bytes) as f64 / rate)
        });
        self.sink.update(&ProgressUpdate {
            phase: self.phase,
            backup_id: self.backup_id,
            done_bytes: self.done_bytes,
            total_bytes: self.total_bytes,
            elapsed,
            rate_bytes_per_s: rate,
            eta,
            finished,
        });
    }

    /// `bytes` more are done.
    pub(crate) fn advance(&mut self, bytes: u64) {
        self.done_bytes = self.done_bytes.saturating_add(bytes);
        self.report(false);
    }

    /// The run completed.
    pub(crate) fn finish(&mut self) {
        self.report(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_show_bytes_percent_rate_and_time_left() {
        let u = ProgressUpdate {
            phase: Phase::Backup,
            backup_id: BackupId([0xab; 16]),
            done_bytes: 12 * 1024 * 1024,
            total_bytes: 40 * 1024 * 1024,
            elapsed: Duration::from_millis(1500),
            rate_bytes_per_s: 8.0 * 1024.0 * 1024.0,
            eta: Some(Duration::from_millis(3500)),
            finished: false,
        };
        assert_eq!(
            progress_line(&u),
            "backup abababab… 12.0 MiB / 40.0 MiB  30% 8.0 MiB/s 3.5s left"
        );
    }
}
