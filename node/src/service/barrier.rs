//! The read barrier: a node serves a request from its replica only after it
//! has applied everything the cluster committed before the request arrived.
//!
//! That is Raft's read index: the leader confirms with a quorum that it
//! still leads (so no other leader can have committed anything it does not
//! know) and answers its commit index; the node waits until it has applied
//! that far. It closes the window in which a revocation (a password change,
//! an unshare, a deleted key, a rotation ending sessions) is acknowledged by
//! the leader while a follower that has not heard of it yet, or a paused
//! leader that does not know it was deposed, still serves the old right.
//! Followers hold no lease; the leader answers from one
//! (`crate::raft::LeaderReads`) only within the time no other leader can
//! be elected.
//!
//! Each round also gives the cluster's time (`crate::cluster_time`): the
//! leader's clock, stamped on its answer, counted on with this node's
//! monotonic clock from when the round asked. Sessions are issued and
//! judged by it, never by a follower's own wall clock.
//!
//! Concurrent requests share rounds. A request needs a round that *started*
//! after it arrived; one round runs at a time, and every request that
//! arrived while it ran is answered by the next one. So a node asks the
//! leader at most once per round trip, however many requests it serves.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hsm_proto::NodeId;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::cluster_time::ClusterTime;
use crate::raft::{address_of, ForwardRefused, LeaderReads, QuicNetwork, Raft};

/// Longest one round may take before its requests are told it failed (each
/// then retries until its own deadline).
const ROUND_TIMEOUT: Duration = Duration::from_secs(3);

/// What a round gives the requests it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReadPoint {
    /// The leader's read index: what the node must have applied.
    pub(crate) index: u64,
    /// The cluster's time, for sessions.
    pub(crate) time: ClusterTime,
}

/// How a round ended: the leader's read index and time, or why there is
/// none.
#[derive(Debug, Clone)]
struct Round {
    /// Rounds are numbered from 1; 0 is "none yet".
    id: u64,
    read: Result<ReadPoint, String>,
    /// The time of the last round that succeeded, this one or an earlier.
    last_time: Option<ClusterTime>,
}

/// Shared read-index rounds for one node (see the module docs).
#[derive(Debug)]
pub(crate) struct ReadBarrier {
    /// The number the next round to start will have.
    next: Arc<AtomicU64>,
    demand: Arc<Notify>,
    done: watch::Receiver<Round>,
}

/// Where a round gets the read index: this node when it leads, else the
/// leader it knows of.
struct Source {
    node: NodeId,
    raft: Raft,
    reads: LeaderReads,
    network: QuicNetwork,
}

impl ReadBarrier {
    /// A barrier for node `node`, asking itself (`reads`) when it leads and
    /// the leader (over `network`) otherwise.
    pub(crate) fn start(
        node: NodeId,
        raft: Raft,
        reads: LeaderReads,
        network: QuicNetwork,
    ) -> ReadBarrier {
        let source = Arc::new(Source {
            node,
            raft,
            reads,
            network,
        });
        ReadBarrier::with_rounds(move || {
            let source = source.clone();
            async move { source.read_index().await }
        })
    }

    /// Starts the task that runs rounds, each one call of `round`; it ends
    /// when the barrier is dropped.
    fn with_rounds<F, Fut>(round: F) -> ReadBarrier
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<ReadPoint, String>> + Send,
    {
        let next = Arc::new(AtomicU64::new(1));
        let demand = Arc::new(Notify::new());
        let (tx, done) = watch::channel(Round {
            id: 0,
            read: Err("no round yet".into()),
            last_time: None,
        });
        let (task_next, task_demand) = (next.clone(), demand.clone());
        tokio::spawn(async move {
            let mut last_time = None;
            loop {
                tokio::select! {
                    () = task_demand.notified() => {}
                    () = tx.closed() => return,
                }
                let id = task_next.fetch_add(1, Ordering::SeqCst);
                let read = match tokio::time::timeout(ROUND_TIMEOUT, round()).await {
                    Ok(r) => r,
                    Err(_) => Err(format!("no answer within {ROUND_TIMEOUT:?}")),
                };
                if let Ok(point) = &read {
                    last_time = Some(point.time);
                }
                if tx
                    .send(Round {
                        id,
                        read,
                        last_time,
                    })
                    .is_err()
                {
                    return;
                }
            }
        });
        ReadBarrier { next, demand, done }
    }

    /// The cluster's time as the last round that succeeded gave it, for
    /// what is served without a round of its own (cluster info); `None`
    /// before the first.
    pub(crate) fn last_time(&self) -> Option<ClusterTime> {
        self.done.borrow().last_time
    }

    /// The read index and time of a round that started after this call,
    /// or why that round found none; `None` when `deadline` passed first.
    pub(crate) async fn read_index(&self, deadline: Instant) -> Option<Result<ReadPoint, String>> {
        // A round numbered `need` or later starts after this load: its
        // leader confirms the quorum after this request arrived.
        let need = self.next.load(Ordering::SeqCst);
        self.demand.notify_one();
        let mut done = self.done.clone();
        let waited = tokio::time::timeout_at(deadline, done.wait_for(|r| r.id >= need)).await;
        match waited {
            Ok(Ok(round)) => Some(round.read.clone()),
            Ok(Err(_)) => Some(Err("the node is shutting down".into())),
            Err(_) => None,
        }
    }
}

impl Source {
    /// The read index and the cluster's time: this node's own when it
    /// leads, else the leader's answer, its time counted on from when the
    /// question left.
    async fn read_index(&self) -> Result<ReadPoint, String> {
        let leader = self.raft.metrics().borrow().current_leader;
        let answer = match leader {
            None => return Err("no leader known".into()),
            Some(l) if l == self.node => self.reads.read_index().await.map(|index| ReadPoint {
                index,
                time: ClusterTime::Leading,
            }),
            Some(l) => {
                let addr = address_of(&self.raft, l).ok_or("the leader is not a member")?;
                let asked_at = Instant::now();
                let answer = self
                    .network
                    .read_index(l, &addr)
                    .await
                    .map_err(|e| format!("leader {l}: {e}"))?;
                answer.map(|a| ReadPoint {
                    index: a.index,
                    time: ClusterTime::Asked {
                        leader_ms: a.leader_time_ms,
                        asked_at,
                    },
                })
            }
        };
        answer.map_err(|e| match e {
            ForwardRefused::NotLeader(_) => "leader changed".into(),
            e => e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::time::Instant;

    use super::{ReadBarrier, ReadPoint};
    use crate::cluster_time::ClusterTime;

    /// A round's answer on the leader.
    fn at(index: u64) -> ReadPoint {
        ReadPoint {
            index,
            time: ClusterTime::Leading,
        }
    }

    /// A leader whose commit index is a counter: each round answers the
    /// index committed when it started, after a delay like a round trip.
    fn leader(committed: Arc<AtomicU64>, rounds: Arc<AtomicU64>) -> ReadBarrier {
        ReadBarrier::with_rounds(move || {
            let index = committed.load(Ordering::SeqCst);
            rounds.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok(at(index))
            }
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn every_request_gets_an_index_taken_after_it_arrived() {
        let committed = Arc::new(AtomicU64::new(0));
        let rounds = Arc::new(AtomicU64::new(0));
        let barrier = Arc::new(leader(committed.clone(), rounds.clone()));
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let (barrier, committed) = (barrier.clone(), committed.clone());
            tasks.push(tokio::spawn(async move {
                let mut seen = Vec::new();
                for _ in 0..20 {
                    // A write acknowledged before the request.
                    let acknowledged = committed.fetch_add(1, Ordering::SeqCst) + 1;
                    let deadline = Instant::now() + Duration::from_secs(10);
                    let index = barrier.read_index(deadline).await.expect("in time");
                    seen.push((acknowledged, index.expect("answered").index));
                }
                seen
            }));
        }
        for t in tasks {
            for (acknowledged, index) in t.await.expect("task") {
                assert!(
                    index >= acknowledged,
                    "a read got index {index}, older than a write acknowledged before it \
                     ({acknowledged})"
                );
            }
        }
        // 1,280 requests shared far fewer rounds.
        let rounds = rounds.load(Ordering::SeqCst);
        assert!(rounds < 1_280 / 4, "{rounds} rounds for 1,280 requests");
    }

    #[tokio::test]
    async fn a_failed_round_is_reported_and_the_next_one_runs() {
        let calls = Arc::new(AtomicU64::new(0));
        let counted = calls.clone();
        let barrier = ReadBarrier::with_rounds(move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err("leader changed".to_string())
                } else {
                    Ok(at(7))
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        assert_eq!(
            barrier.read_index(deadline).await,
            Some(Err("leader changed".into()))
        );
        assert_eq!(barrier.last_time(), None);
        assert_eq!(barrier.read_index(deadline).await, Some(Ok(at(7))));
    }

    #[tokio::test]
    async fn each_request_gets_the_time_of_its_round_and_a_failed_round_keeps_the_last() {
        let leader_ms = Arc::new(AtomicU64::new(1_000));
        let stamps = leader_ms.clone();
        let asked_at = Instant::now();
        let barrier = ReadBarrier::with_rounds(move || {
            let stamp = stamps.fetch_add(1_000, Ordering::SeqCst);
            async move {
                if stamp == 3_000 {
                    return Err("leader changed".to_string());
                }
                Ok(ReadPoint {
                    index: 1,
                    time: ClusterTime::Asked {
                        leader_ms: stamp,
                        asked_at,
                    },
                })
            }
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        let stamp_of = |r: Option<Result<ReadPoint, String>>| match r {
            Some(Ok(ReadPoint {
                time: ClusterTime::Asked { leader_ms, .. },
                ..
            })) => leader_ms,
            other => panic!("no leader time: {other:?}"),
        };
        assert_eq!(stamp_of(barrier.read_index(deadline).await), 1_000);
        assert_eq!(stamp_of(barrier.read_index(deadline).await), 2_000);
        assert!(barrier
            .read_index(deadline)
            .await
            .expect("in time")
            .is_err());
        assert_eq!(
            barrier.last_time(),
            Some(ClusterTime::Asked {
                leader_ms: 2_000,
                asked_at
            })
        );
        assert_eq!(stamp_of(barrier.read_index(deadline).await), 4_000);
    }

    #[tokio::test]
    async fn a_round_that_never_answers_gives_way_at_the_deadline() {
        let barrier = ReadBarrier::with_rounds(std::future::pending);
        let deadline = Instant::now() + Duration::from_millis(100);
        assert_eq!(barrier.read_index(deadline).await, None);
    }
}
