//! Driving an operation with N concurrent callers for a set time, and the
//! figures that come out: throughput and latency percentiles.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

/// What one run recorded: every successful call's latency.
#[derive(Debug, Default, Clone)]
pub struct Measured {
    /// Latency of each successful call, in microseconds.
    pub latencies_us: Vec<u32>,
    /// Calls that failed.
    pub errors: u64,
    /// Wall-clock length of the run.
    pub seconds: f64,
    /// The first error seen, for the report.
    pub first_error: Option<String>,
    /// Operations each successful call did (a batch's size); 0 counts as 1.
    pub per_call: u64,
}

impl Measured {
    /// Adds one successful call.
    pub fn record(&mut self, latency: Duration) {
        self.latencies_us
            .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
    }

    /// Puts several callers' records together (`seconds` is left 0).
    pub fn merge(parts: Vec<Measured>) -> Measured {
        let mut all = Measured::default();
        for p in parts {
            all.latencies_us.extend(p.latencies_us);
            all.errors += p.errors;
            if all.first_error.is_none() {
                all.first_error = p.first_error;
            }
        }
        all
    }

    /// The figures of this run.
    pub fn figures(&self) -> Figures {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let pct = |q: f64| -> f64 {
            if sorted.is_empty() {
                return 0.0;
            }
            let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
            f64::from(sorted[i.min(sorted.len() - 1)]) / 1000.0
        };
        let per_call = self.per_call.max(1);
        let ops = sorted.len() as u64 * per_call;
        Figures {
            ops,
            errors: self.errors,
            ops_per_s: if self.seconds > 0.0 {
                ops as f64 / self.seconds
            } else {
                0.0
            },
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
            p999_ms: pct(0.999),
        }
    }
}

/// Throughput and latency of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Figures {
    /// Successful operations (calls times their batch size).
    pub ops: u64,
    /// Failed calls.
    pub errors: u64,
    /// Successful operations per second.
    pub ops_per_s: f64,
    /// Median latency of a call, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// 99.9th percentile latency, ms.
    pub p999_ms: f64,
}

/// Runs `call` from `concurrency` tasks, each calling again as soon as its
/// previous call returns, for `warmup` (not recorded) and then `duration`.
pub async fn drive<F, Fut>(
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    call: F,
) -> Measured
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let call = Arc::new(call);
    let start = Instant::now() + warmup;
    let end = start + duration;
    let tasks: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut m = Measured::default();
                loop {
                    let t = Instant::now();
                    if t >= end {
                        break;
                    }
                    let result = call().await;
                    let done = Instant::now();
                    if t < start {
                        continue;
                    }
                    match result {
                        Ok(()) => m.record(done - t),
                        Err(e) => {
                            m.errors += 1;
                            if m.first_error.is_none() {
                                m.first_error = Some(format!("{e:#}"));
                            }
                        }
                    }
                }
                m
            })
        })
        .collect();
    let mut parts = Vec::new();
    for t in tasks {
        if let Ok(m) = t.await {
            parts.push(m);
        }
    }
    let mut all = Measured::merge(parts);
    // Calls that started before the end may finish after it: count the
    // time they took.
    all.seconds = Instant::now()
        .saturating_duration_since(start)
        .as_secs_f64();
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_sorted_latencies() {
        let mut m = Measured {
            seconds: 2.0,
            ..Measured::default()
        };
        for us in (1..=1000).rev() {
            m.record(Duration::from_micros(us));
        }
        let f = m.figures();
        assert_eq!(f.ops, 1000);
        assert!((f.ops_per_s - 500.0).abs() < 1e-9);
        assert!((f.p50_ms - 0.501).abs() < 1e-9, "{f:?}");
        assert!((f.p99_ms - 0.990).abs() < 1e-9, "{f:?}");
        assert!((f.p999_ms - 0.999).abs() < 1e-9, "{f:?}");
    }

    #[tokio::test]
    async fn drive_counts_only_after_the_warmup_and_stops_at_the_end() {
        let m = drive(
            4,
            Duration::from_millis(50),
            Duration::from_millis(200),
            || async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                Ok(())
            },
        )
        .await;
        let f = m.figures();
        // At most 4 callers x 21 calls of at least 10 ms fit in 200 ms (one
        // may start just before the end); a slow machine makes fewer.
        assert!(f.ops > 0 && f.ops <= 84, "{f:?}");
        assert!(m.seconds >= 0.2, "{}", m.seconds);
        assert!(f.p50_ms >= 10.0, "{f:?}");
    }
}
