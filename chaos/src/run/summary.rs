//! What a run reports in `DIR/summary.json`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::check;

/// `DIR/summary.json`.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// The seed.
    pub seed: u64,
    /// Seconds of the fault schedule (`--duration`).
    pub duration_s: u64,
    /// Seconds the clients worked: the schedule, stretched by the waits
    /// for recovery after each fault.
    pub worked_s: u64,
    /// Nodes.
    pub nodes: u64,
    /// Zones.
    pub zones: u64,
    /// Client processes.
    pub clients: u32,
    /// Faults made, by kind.
    pub faults: BTreeMap<String, u64>,
    /// Operations by outcome.
    pub operations: BTreeMap<String, u64>,
    /// Operations by kind, then outcome.
    pub operations_by_kind: BTreeMap<String, BTreeMap<String, u64>>,
    /// Milliseconds from the end of the faults until every node had a
    /// leader and took a write (`None`: not within the bound).
    pub recovery_ms: Option<u64>,
    /// The same after each fault's healing.
    pub recovery: Recovery,
    /// Backups asked for during faults.
    pub backups: Backups,
    /// What each checker found.
    pub anomalies: Vec<check::Anomaly>,
    /// Valid only when no checker found anything and the cluster recovered.
    pub valid: bool,
}

/// Backups asked for during faults, by outcome, and whether the newest
/// acknowledged one was restored and checked.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Backups {
    /// Asked for.
    pub asked: u64,
    /// Acknowledged.
    pub ok: u64,
    /// Definitely not taken.
    pub failed: u64,
    /// Not answered in time.
    pub unknown: u64,
    /// The keys of the newest acknowledged one, restored into a new
    /// cluster and checked against the history (`None`: none restored).
    pub restored_keys: Option<u64>,
}

impl Backups {
    pub(super) fn of(lines: &[serde_json::Value], restored_keys: Option<u64>) -> Backups {
        let count = |o: &str| lines.iter().filter(|b| b["outcome"] == o).count() as u64;
        Backups {
            asked: lines.len() as u64,
            ok: count("ok"),
            failed: count("failed"),
            unknown: count("unknown"),
            restored_keys,
        }
    }
}

/// Recovery times after each fault (from its healing until a write went
/// through every node), milliseconds.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Recovery {
    /// The same measure with no fault, after the last recovery.
    pub calm_ms: Option<u64>,
    /// Faults measured.
    pub faults: u64,
    /// Faults after which the cluster did not recover within the bound.
    pub not_recovered: u64,
    /// Median.
    pub p50_ms: Option<u64>,
    /// 95th percentile.
    pub p95_ms: Option<u64>,
    /// Longest.
    pub max_ms: Option<u64>,
}

impl Recovery {
    /// The figures of `times` (`None`: did not recover).
    pub fn of(times: &[Option<u64>], calm_ms: Option<u64>) -> Recovery {
        let mut ok: Vec<u64> = times.iter().flatten().copied().collect();
        ok.sort_unstable();
        // Nearest rank.
        let rank = |p: usize| {
            (!ok.is_empty()).then(|| ok[(ok.len() * p).div_ceil(100).clamp(1, ok.len()) - 1])
        };
        Recovery {
            calm_ms,
            faults: times.len() as u64,
            not_recovered: times.iter().filter(|t| t.is_none()).count() as u64,
            p50_ms: rank(50),
            p95_ms: rank(95),
            max_ms: ok.last().copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Recovery;

    #[test]
    fn recovery_figures_are_nearest_rank_over_the_faults_that_recovered() {
        let times: Vec<Option<u64>> = (1..=20).map(Some).chain([None]).collect();
        let r = Recovery::of(&times, Some(3));
        assert_eq!(
            r,
            Recovery {
                calm_ms: Some(3),
                faults: 21,
                not_recovered: 1,
                p50_ms: Some(10),
                p95_ms: Some(19),
                max_ms: Some(20),
            }
        );
        let none = Recovery::of(&[None], None);
        assert_eq!(
            (none.p50_ms, none.max_ms, none.not_recovered),
            (None, None, 1)
        );
    }
}
