//! The node's metrics and health endpoint (issue 16), plain HTTP on
//! `[metrics] listen` (off unless set):
//!
//! - `GET /metrics`: Prometheus text (OpenMetrics 1.0): Raft term, leader,
//!   last log and applied index, membership, each follower's lag (on the
//!   leader), requests by operation and outcome with their latency, the
//!   state's users, locked users and keys, the store's size on disk, and
//!   the last backup this node took. Counts only: no user names, key ids,
//!   addresses or secrets ever become a label or a value.
//! - `GET /health/live`: 200 while the process serves at all.
//! - `GET /health/ready`: 200 when the node would serve a request now: it
//!   is in touch with the cluster (the rule that refuses requests from a
//!   node out of touch), its self-tests passed, and it has applied the
//!   leader's commit index of a read-index round taken for the check, to
//!   within [`READY_MAX_BEHIND`] entries; 503 with the reason otherwise.
//!   For load balancers; liveness probes use `/health/live` (a whole
//!   cluster restarting is not ready until a quorum is up).
//!
//! Requests are counted by `server::serve_client` for every stream a
//! client opens (frames that never arrive whole or do not decode as
//! `unsent` or `malformed`). Everything else is read when scraped, off the
//! async workers, at most once a second however many scrape: a scrape
//! within a second of the last gets the same text.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::raft::Raft;
use crate::service::Service;

/// A node that has applied the cluster's commit index to within this many
/// entries is caught up, for readiness.
pub const READY_MAX_BEHIND: u64 = 64;

/// How long one HTTP connection may take to send its request.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one HTTP connection may last in all (one request: no
/// keep-alive).
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a scrape's figures, or a readiness answer, are served again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// How long a readiness check waits for the leader.
const READY_ROUND: Duration = Duration::from_secs(2);

/// Connections served at once; more are closed at once (a scraper or a
/// health check needs one or two).
const MAX_CONNECTIONS: usize = 32;

/// Labels of a request counter: the operation's short name and how it
/// ended (`ok` or the error kind), both from fixed sets.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    op: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MemberLabels {
    member: u64,
}

/// What build a node runs: its version and the protocol versions it speaks.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    raft_protocols: String,
    client_protocols: String,
}

/// What requests did on this node; shared by the service, which counts,
/// and the endpoint, which reports.
#[derive(Debug)]
pub struct RequestMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<OpLabels, Histogram>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        RequestMetrics {
            requests: Family::default(),
            // 100 µs to about 13 s (past the 10 s request deadline),
            // doubling.
            latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_1, 2.0, 18))
            }),
        }
    }
}

impl RequestMetrics {
    /// Counts one request of operation `op` that ended with `outcome`
    /// after `elapsed`.
    pub fn observe(&self, op: &'static str, outcome: &'static str, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels { op, outcome })
            .inc();
        self.latency
            .get_or_create(&OpLabels { op })
            .observe(elapsed.as_secs_f64());
    }
}

/// How long the replicated store's work takes on this node: writes from
/// proposal to outcome (where they are proposed: the leader), applies of
/// committed entries, and snapshots built and installed. Shared by the
/// proposer and the state machine, which observe, and the endpoint.
#[derive(Debug)]
pub struct RaftTimings {
    proposal: Histogram,
    apply: Histogram,
    snapshot_build: Histogram,
    snapshot_install: Histogram,
}

impl Default for RaftTimings {
    fn default() -> Self {
        // 10 µs to about 42 s, quadrupling: an apply of one event takes
        // tens of µs, a snapshot of a million keys many seconds.
        let buckets = || Histogram::new(exponential_buckets(0.000_01, 4.0, 13));
        RaftTimings {
            proposal: buckets(),
            apply: buckets(),
            snapshot_build: buckets(),
            snapshot_install: buckets(),
        }
    }
}

impl RaftTimings {
    /// A write proposed on this node had its outcome after `elapsed`.
    pub fn proposed(&self, elapsed: Duration) {
        self.proposal.observe(elapsed.as_secs_f64());
    }

    /// What the state machine reports its work to
    /// ([`hsm_raft_store::StateMachineStore::observe_timings`]).
    pub fn observer(self: &Arc<Self>) -> hsm_raft_store::TimingObserver {
        let me = self.clone();
        Arc::new(move |what, elapsed: Duration| {
            let histogram = match what {
                hsm_raft_store::Timed::Apply => &me.apply,
                hsm_raft_store::Timed::SnapshotBuild => &me.snapshot_build,
                hsm_raft_store::Timed::SnapshotInstall => &me.snapshot_install,
            };
            histogram.observe(elapsed.as_secs_f64());
        })
    }

    fn register(&self, registry: &mut Registry) {
        for (name, help, histogram) in [
            (
                "raft_proposal_duration_seconds",
                "Writes proposed on this node (the leader), from proposal to outcome",
                &self.proposal,
            ),
            (
                "raft_apply_duration_seconds",
                "Batches of committed entries applied to this node's state machine",
                &self.apply,
            ),
            (
                "raft_snapshot_build_duration_seconds",
                "Snapshots this node built (copy, encode, store)",
                &self.snapshot_build,
            ),
            (
                "raft_snapshot_install_duration_seconds",
                "Snapshots from the leader installed on this node",
                &self.snapshot_install,
            ),
        ] {
            registry.register(name, help, histogram.clone());
        }
    }
}

/// Values read from the node at each scrape.
#[derive(Default)]
struct Gauges {
    term: Gauge,
    leader: Gauge,
    is_leader: Gauge,
    last_log_index: Gauge,
    commit_index: Gauge,
    applied_index: Gauge,
    snapshot_index: Gauge,
    voters: Gauge,
    learners: Gauge,
    quorum_ack_age: Gauge<f64, AtomicU64>,
    follower_lag: Family<MemberLabels, Gauge>,
    ready: Gauge,
    crypto_failed: Gauge,
    users: Gauge,
    locked_users: Gauge,
    users_with_failed_logins: Gauge,
    keys: Gauge,
    events: Gauge,
    store_bytes: Gauge,
    raft_protocol: Gauge,
    raft_protocol_spoken: Gauge,
    backup_last_success: Gauge<f64, AtomicU64>,
    backup_last_duration: Gauge<f64, AtomicU64>,
    backup_newest: Gauge<f64, AtomicU64>,
}

/// The endpoint's view of the node.
struct Endpoint {
    registry: Registry,
    gauges: Gauges,
    raft: Raft,
    log: hsm_raft_store::LogStore,
    service: Arc<Service>,
    data_dir: PathBuf,
    /// The last scrape's text and when it was taken; held while one is
    /// taken, so scrapes never run at once.
    scraped: Mutex<Option<(Instant, String)>>,
    /// The last readiness answer and when.
    readiness: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl Endpoint {
    fn new(
        (raft, log): (Raft, hsm_raft_store::LogStore),
        service: Arc<Service>,
        data_dir: PathBuf,
        timings: &RaftTimings,
    ) -> Endpoint {
        let mut registry = Registry::with_prefix("hsm");
        timings.register(&mut registry);
        let g = Gauges::default();
        let requests = service.request_metrics();
        registry.register(
            "requests",
            "Client requests served, by operation and outcome",
            requests.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from a request's arrival to its answer, by operation",
            requests.latency.clone(),
        );
        let gauges: [(&str, &str, &Gauge); 19] = [
            ("raft_term", "Current Raft term", &g.term),
            (
                "raft_leader",
                "Id of the leader this node knows of (0: none)",
                &g.leader,
            ),
            ("raft_is_leader", "1 if this node leads", &g.is_leader),
            (
                "raft_last_log_index",
                "Index of the last entry in this node's log",
                &g.last_log_index,
            ),
            (
                "raft_commit_index",
                "Index of the last entry this node knows is committed (on a majority)",
                &g.commit_index,
            ),
            (
                "raft_applied_index",
                "Index of the last entry this node applied",
                &g.applied_index,
            ),
            (
                "raft_snapshot_index",
                "Last index covered by this node's snapshot",
                &g.snapshot_index,
            ),
            (
                "raft_voters",
                "Voting members in the membership this node holds",
                &g.voters,
            ),
            (
                "raft_learners",
                "Members catching up before they vote",
                &g.learners,
            ),
            (
                "ready",
                "1 if this node serves requests now (see /health/ready)",
                &g.ready,
            ),
            (
                "crypto_failed",
                "1 if a self-test failed: the node serves no cryptography until restarted",
                &g.crypto_failed,
            ),
            ("users", "Users in the state", &g.users),
            (
                "locked_users",
                "Users locked after too many failed logins",
                &g.locked_users,
            ),
            (
                "users_with_failed_logins",
                "Users with failed logins since their last success",
                &g.users_with_failed_logins,
            ),
            ("keys", "Keys in the state", &g.keys),
            (
                "events",
                "Events applied since the cluster began",
                &g.events,
            ),
            (
                "store_bytes",
                "Size of the node's data directory on disk",
                &g.store_bytes,
            ),
            (
                "raft_protocol",
                "Raft protocol version the cluster runs (raised once every member speaks a newer one)",
                &g.raft_protocol,
            ),
            (
                "raft_protocol_spoken",
                "Newest Raft protocol version this node's build speaks",
                &g.raft_protocol_spoken,
            ),
        ];
        for (name, help, gauge) in gauges {
            registry.register(name, help, gauge.clone());
        }
        let build: Family<BuildLabels, Gauge> = Family::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                raft_protocols: hsm_proto::protocol::describe(&hsm_proto::protocol::RAFT),
                client_protocols: hsm_proto::protocol::describe(&hsm_proto::protocol::CLIENT),
            })
            .set(1);
        registry.register(
            "build_info",
            "Always 1; its labels say which build this node runs (for rolling upgrades)",
            build,
        );
        registry.register(
            "raft_quorum_ack_age_seconds",
            "On the leader: time since a quorum last acknowledged it (NaN elsewhere, or before any)",
            g.quorum_ack_age.clone(),
        );
        registry.register(
            "raft_follower_lag_entries",
            "On the leader: entries each follower still lacks",
            g.follower_lag.clone(),
        );
        registry.register(
            "backup_last_success_timestamp_seconds",
            "When this node last completed a backup (Unix time; 0: none since it started)",
            g.backup_last_success.clone(),
        );
        registry.register(
            "backup_newest_timestamp_seconds",
            "When the newest backup of this cluster this node knows of was taken, by any member (Unix time; 0: none known): on the leader, what it saw at the destination",
            g.backup_newest.clone(),
        );
        registry.register(
            "backup_last_duration_seconds",
            "How long this node's last completed backup took",
            g.backup_last_duration.clone(),
        );
        Endpoint {
            registry,
            gauges: g,
            raft,
            log,
            service,
            data_dir,
            scraped: Mutex::new(None),
            readiness: Mutex::new(None),
        }
    }

    /// The metrics text: the last scrape's if it is fresh, else a new one,
    /// taken on the blocking pool (it walks the data directory and counts
    /// users under the state lock).
    async fn scrape(self: &Arc<Self>) -> Option<String> {
        let mut last = self.scraped.lock().await;
        if let Some((at, text)) = last.as_ref() {
            if at.elapsed() < FRESH_FOR {
                return Some(text.clone());
            }
        }
        let ready = self.ready().await.is_ok();
        let me = self.clone();
        let text = tokio::task::spawn_blocking(move || {
            me.refresh(ready);
            let mut body = String::new();
            prometheus_client::encoding::text::encode(&mut body, &me.registry).ok()?;
            Some(body)
        })
        .await
        .ok()??;
        *last = Some((Instant::now(), text.clone()));
        Some(text)
    }

    /// Whether the node is ready, asked at most once a second.
    async fn ready(&self) -> Result<(), String> {
        let mut last = self.readiness.lock().await;
        if let Some((at, answer)) = last.as_ref() {
            if at.elapsed() < FRESH_FOR {
                return answer.clone();
            }
        }
        let answer = self
            .service
            .readiness(READY_MAX_BEHIND, Instant::now() + READY_ROUND)
            .await;
        *last = Some((Instant::now(), answer.clone()));
        answer
    }

    /// Reads the node into the gauges.
    fn refresh(&self, ready: bool) {
        let g = &self.gauges;
        {
            let m = self.raft.metrics();
            let m = m.borrow();
            g.term.set(as_i64(m.current_term));
            g.leader.set(as_i64(m.current_leader.map_or(0, |l| l.0)));
            g.is_leader.set(i64::from(m.current_leader == Some(m.id)));
            let last = m.last_log_index.unwrap_or(0);
            g.last_log_index.set(as_i64(last));
            g.commit_index.set(as_i64(self.log.committed_index()));
            g.applied_index
                .set(as_i64(m.last_applied.map_or(0, |l| l.index)));
            g.snapshot_index
                .set(as_i64(m.snapshot.map_or(0, |l| l.index)));
            let membership = m.membership_config.membership();
            let voters = membership.voter_ids().count();
            let learners = membership.learner_ids().count();
            g.voters.set(as_i64(voters as u64));
            g.learners.set(as_i64(learners as u64));
            let leads = m.current_leader == Some(m.id);
            g.quorum_ack_age.set(match m.millis_since_quorum_ack {
                Some(ms) if leads => ms as f64 / 1000.0,
                _ => f64::NAN,
            });
            g.follower_lag.clear();
            if let Some(replication) = &m.replication {
                // openraft lists the leader too; it lags nothing.
                for (member, matched) in replication.iter().filter(|(n, _)| **n != m.id) {
                    let lag = last.saturating_sub(matched.as_ref().map_or(0, |l| l.index));
                    g.follower_lag
                        .get_or_create(&MemberLabels { member: member.0 })
                        .set(as_i64(lag));
                }
            }
        }
        g.ready.set(i64::from(ready));
        g.crypto_failed
            .set(i64::from(self.service.crypto_failure().is_some()));
        let counts = self.service.state_counts();
        g.users.set(as_i64(counts.users));
        g.locked_users.set(as_i64(counts.locked_users));
        g.users_with_failed_logins
            .set(as_i64(counts.users_with_failed_logins));
        g.keys.set(as_i64(counts.keys));
        g.events.set(as_i64(counts.events));
        g.raft_protocol.set(as_i64(counts.protocol));
        g.raft_protocol_spoken
            .set(i64::from(*hsm_proto::protocol::RAFT.end()));
        g.store_bytes.set(as_i64(dir_bytes(&self.data_dir)));
        if let Some((at_ms, took)) = self.service.last_backup() {
            g.backup_last_success.set(at_ms as f64 / 1000.0);
            g.backup_last_duration.set(took.as_secs_f64());
        }
        if let Some(at_ms) = self.service.newest_backup() {
            g.backup_newest.set(at_ms as f64 / 1000.0);
        }
    }

    async fn answer(
        self: &Arc<Self>,
        req: Request<hyper::body::Incoming>,
    ) -> Response<Full<Bytes>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
        }
        match req.uri().path() {
            "/metrics" => match self.scrape().await {
                Some(body) => {
                    let mut r = text(StatusCode::OK, body);
                    r.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static(
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        ),
                    );
                    r
                }
                None => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "cannot read the metrics\n".into(),
                ),
            },
            "/health/live" => text(StatusCode::OK, "live\n".into()),
            "/health/ready" => match self.ready().await {
                Ok(()) => text(StatusCode::OK, "ready\n".into()),
                Err(why) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {why}\n"),
                ),
            },
            _ => text(
                StatusCode::NOT_FOUND,
                "not found: /metrics, /health/live or /health/ready\n".into(),
            ),
        }
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Bytes in the files under `dir` (the data directory: a few hundred files
/// at a million keys).
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// Binds the endpoint's address, before the node starts anything else, so
/// a node whose address is taken refuses to start at once.
///
/// # Errors
/// If the address cannot be bound.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot bind the metrics address {addr}"))
}

/// Serves the endpoint on `listener` until the task is aborted.
pub fn serve(
    listener: TcpListener,
    raft: (Raft, hsm_raft_store::LogStore),
    service: Arc<Service>,
    data_dir: PathBuf,
    timings: &RaftTimings,
) -> JoinHandle<()> {
    let endpoint = Arc::new(Endpoint::new(raft, service, data_dir, timings));
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                drop(stream);
                continue;
            };
            let endpoint = endpoint.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let service = hyper::service::service_fn(move |req| {
                    let endpoint = endpoint.clone();
                    async move { Ok::<_, Infallible>(endpoint.answer(req).await) }
                });
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .keep_alive(false);
                let io = hyper_util::rt::TokioIo::new(stream);
                let served =
                    tokio::time::timeout(CONNECTION_TIMEOUT, http.serve_connection(io, service))
                        .await;
                if let Ok(Err(e)) = served {
                    tracing::debug!(error = %e, "metrics endpoint: connection ended");
                }
            });
        }
    })
}
