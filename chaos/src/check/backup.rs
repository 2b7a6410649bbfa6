//! The backup checker: a backup taken while faults ran, restored into a
//! new cluster at the end, holds exactly what the history allows. A
//! backup holds every write acknowledged before it was asked for (the node
//! takes a read index first), and nothing invoked after it was
//! acknowledged. Keys are matched by label (the workload's labels are
//! unique in a run); key ids are the same after a restore, but labels say
//! it without relying on that.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{anomaly, Anomaly};
use crate::history::{Entry, KeyId, Op, Outcome};

/// A backup the run took: when it was asked for and when acknowledged
/// (ms since the run started, the history's clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupTaken {
    /// When the backup was asked for.
    pub invoke_ms: u64,
    /// When it was acknowledged.
    pub complete_ms: u64,
}

/// The keys (by label) of a cluster restored from `backup` against the
/// history:
/// - a key whose creation was acknowledged before the backup was asked
///   for is there, unless a delete of it was invoked before the backup was
///   acknowledged;
/// - a key whose delete was acknowledged before the backup was asked for is
///   not there;
/// - every key there had a creation invoked before the backup was
///   acknowledged that did not definitely fail.
pub fn restored(history: &[Entry], backup: BackupTaken, labels: &BTreeSet<String>) -> Vec<Anomaly> {
    const CHECKER: &str = "backup";
    let mut creates: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    let mut deletes: BTreeMap<KeyId, Vec<&Entry>> = BTreeMap::new();
    for e in history {
        match &e.op {
            Op::CreateKey { label } => creates.entry(label.as_str()).or_default().push(e),
            Op::DeleteKey { key } => deletes.entry(*key).or_default().push(e),
            _ => {}
        }
    }
    let mut found = Vec::new();
    for (label, made) in &creates {
        for create in made {
            let Some(key) = create.key() else { continue };
            if create.complete_ms >= backup.invoke_ms {
                continue;
            }
            let dels = deletes.get(&key).map(Vec::as_slice).unwrap_or_default();
            let present = labels.contains(*label);
            if !present && !dels.iter().any(|d| d.invoke_ms < backup.complete_ms) {
                found.push(anomaly(
                    CHECKER,
                    format!(
                        "key {key} ({label}), created and acknowledged before the backup was asked for and not deleted, is not in the restored cluster"
                    ),
                    vec![create.id],
                ));
            }
            if let Some(d) = dels
                .iter()
                .find(|d| present && d.outcome.is_ok() && d.complete_ms < backup.invoke_ms)
            {
                found.push(anomaly(
                    CHECKER,
                    format!(
                        "key {key} ({label}), whose delete was acknowledged before the backup was asked for, is in the restored cluster"
                    ),
                    vec![create.id, d.id],
                ));
            }
        }
    }
    for label in labels {
        let made = creates
            .get(label.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let possible = made.iter().any(|c| {
            c.invoke_ms < backup.complete_ms && !matches!(c.outcome, Outcome::Failed { .. })
        });
        if !possible {
            found.push(anomaly(
                CHECKER,
                format!(
                    "the restored cluster has a key {label:?} that no creation invoked before the backup was acknowledged could have made"
                ),
                made.iter().map(|c| c.id).collect(),
            ));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Failure;

    fn entry(id: u64, op: Op, (invoke_ms, complete_ms): (u64, u64), outcome: Outcome) -> Entry {
        Entry {
            id,
            process: 1,
            actor: "alice".into(),
            node: None,
            op,
            invoke_ms,
            complete_ms,
            outcome,
        }
    }

    fn create(id: u64, key: KeyId, at: (u64, u64)) -> Entry {
        entry(
            id,
            Op::CreateKey {
                label: format!("k{key}"),
            },
            at,
            Outcome::Ok {
                created: Some(key),
                seen: None,
            },
        )
    }

    fn delete(id: u64, key: KeyId, at: (u64, u64), outcome: Outcome) -> Entry {
        entry(id, Op::DeleteKey { key }, at, outcome)
    }

    fn labels(l: &[&str]) -> BTreeSet<String> {
        l.iter().map(|s| (*s).to_owned()).collect()
    }

    const BACKUP: BackupTaken = BackupTaken {
        invoke_ms: 100,
        complete_ms: 200,
    };

    #[test]
    fn a_backup_that_holds_what_the_history_allows_is_valid() {
        let history = vec![
            // Acknowledged before: must be there.
            create(0, 1, (0, 10)),
            // Concurrent with the backup: either way.
            create(1, 2, (90, 150)),
            create(2, 3, (150, 250)),
            // Unknown, invoked before the end: may be there.
            entry(
                3,
                Op::CreateKey { label: "k4".into() },
                (120, 300),
                Outcome::Unknown,
            ),
            // Acknowledged before, deleted concurrently: either way.
            create(4, 5, (0, 10)),
            delete(5, 5, (150, 160), Outcome::DONE),
            // Deleted and acknowledged before: gone.
            create(6, 6, (0, 10)),
            delete(7, 6, (20, 30), Outcome::DONE),
            // After the backup: not there.
            create(8, 7, (250, 260)),
        ];
        assert!(restored(&history, BACKUP, &labels(&["k1", "k2", "k4"])).is_empty());
        assert!(restored(&history, BACKUP, &labels(&["k1", "k3", "k5"])).is_empty());
    }

    #[test]
    fn a_lost_key_a_resurrected_key_and_a_key_from_after_are_flagged() {
        let history = vec![
            create(0, 1, (0, 10)),
            create(1, 6, (0, 10)),
            delete(2, 6, (20, 30), Outcome::DONE),
            create(3, 7, (250, 260)),
            entry(
                4,
                Op::CreateKey { label: "k8".into() },
                (20, 30),
                Outcome::Failed {
                    failure: Failure::Forbidden,
                },
            ),
        ];
        // k1 lost.
        let lost = restored(&history, BACKUP, &labels(&[]));
        assert_eq!(lost.len(), 1, "{lost:?}");
        assert!(lost[0].what.contains("not in the restored"), "{lost:?}");
        // k6 deleted before, yet there.
        let back = restored(&history, BACKUP, &labels(&["k1", "k6"]));
        assert_eq!(back.len(), 1, "{back:?}");
        assert_eq!(back[0].ops, vec![1, 2]);
        // k7 from after the backup, k8 whose creation failed, k9 from
        // nowhere.
        let extra = restored(&history, BACKUP, &labels(&["k1", "k7", "k8", "k9"]));
        assert_eq!(extra.len(), 3, "{extra:?}");
        assert!(extra.iter().all(|a| a.checker == "backup"));
    }
}
