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
//! - `GET /health/ready`: 200 when the node would serve a request now (it
//!   is in touch with a quorum: the same rule that refuses requests from
//!   a node out of touch) and has applied its log to within
//!   [`READY_MAX_BEHIND`] entries; 503 with the reason otherwise. For load
//!   balancers and systemd.
//!
//! Request counters are updated by [`Service::handle`]; everything else is
//! read when scraped.

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
use tokio::task::JoinHandle;

use crate::raft::Raft;
use crate::service::Service;

/// A node that has applied its log to within this many entries of its end
/// is caught up, for readiness.
pub const READY_MAX_BEHIND: u64 = 64;

/// How long one HTTP connection may take to send its request.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

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
            // 100 µs to about 3.3 s, doubling.
            latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_1, 2.0, 16))
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

/// Values read from the node at each scrape.
#[derive(Default)]
struct Gauges {
    term: Gauge,
    leader: Gauge,
    is_leader: Gauge,
    last_log_index: Gauge,
    applied_index: Gauge,
    snapshot_index: Gauge,
    voters: Gauge,
    learners: Gauge,
    quorum_ack_age: Gauge<f64, AtomicU64>,
    follower_lag: Family<MemberLabels, Gauge>,
    ready: Gauge,
    users: Gauge,
    locked_users: Gauge,
    users_with_failed_logins: Gauge,
    keys: Gauge,
    events: Gauge,
    store_bytes: Gauge,
    backup_last_success: Gauge<f64, AtomicU64>,
    backup_last_duration: Gauge<f64, AtomicU64>,
}

/// The endpoint's view of the node.
struct Endpoint {
    registry: Registry,
    gauges: Gauges,
    raft: Raft,
    service: Arc<Service>,
    data_dir: PathBuf,
}

impl Endpoint {
    fn new(raft: Raft, service: Arc<Service>, data_dir: PathBuf) -> Endpoint {
        let mut registry = Registry::with_prefix("hsm");
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
        let gauges: [(&str, &str, &Gauge); 15] = [
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
        ];
        for (name, help, gauge) in gauges {
            registry.register(name, help, gauge.clone());
        }
        registry.register(
            "raft_quorum_ack_age_seconds",
            "On the leader: time since a quorum last acknowledged it",
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
            "backup_last_duration_seconds",
            "How long this node's last completed backup took",
            g.backup_last_duration.clone(),
        );
        Endpoint {
            registry,
            gauges: g,
            raft,
            service,
            data_dir,
        }
    }

    /// Reads the node into the gauges.
    fn refresh(&self) {
        let g = &self.gauges;
        {
            let m = self.raft.metrics();
            let m = m.borrow();
            g.term.set(as_i64(m.current_term));
            g.leader.set(as_i64(m.current_leader.map_or(0, |l| l.0)));
            g.is_leader.set(i64::from(m.current_leader == Some(m.id)));
            let last = m.last_log_index.unwrap_or(0);
            g.last_log_index.set(as_i64(last));
            g.applied_index
                .set(as_i64(m.last_applied.map_or(0, |l| l.index)));
            g.snapshot_index
                .set(as_i64(m.snapshot.map_or(0, |l| l.index)));
            let membership = m.membership_config.membership();
            let voters = membership.voter_ids().count();
            let learners = membership.learner_ids().count();
            g.voters.set(as_i64(voters as u64));
            g.learners.set(as_i64(learners as u64));
            g.quorum_ack_age.set(
                m.millis_since_quorum_ack
                    .map_or(0.0, |ms| ms as f64 / 1000.0),
            );
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
        g.ready.set(i64::from(self.readiness().is_ok()));
        let counts = self.service.state_counts();
        g.users.set(as_i64(counts.users));
        g.locked_users.set(as_i64(counts.locked_users));
        g.users_with_failed_logins
            .set(as_i64(counts.users_with_failed_logins));
        g.keys.set(as_i64(counts.keys));
        g.events.set(as_i64(counts.events));
        g.store_bytes.set(as_i64(dir_bytes(&self.data_dir)));
        if let Some((at_ms, took)) = self.service.last_backup() {
            g.backup_last_success.set(at_ms as f64 / 1000.0);
            g.backup_last_duration.set(took.as_secs_f64());
        }
    }

    /// Whether the node serves now, or why not.
    fn readiness(&self) -> Result<(), String> {
        self.service.check_fresh().map_err(|e| e.message)?;
        let m = self.raft.metrics();
        let m = m.borrow();
        let last = m.last_log_index.unwrap_or(0);
        let applied = m.last_applied.map_or(0, |l| l.index);
        if last.saturating_sub(applied) > READY_MAX_BEHIND {
            return Err(format!(
                "node {} has applied up to {applied} of {last} entries in its log",
                m.id
            ));
        }
        Ok(())
    }

    fn answer(&self, req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
        }
        match req.uri().path() {
            "/metrics" => {
                self.refresh();
                let mut body = String::new();
                match prometheus_client::encoding::text::encode(&mut body, &self.registry) {
                    Ok(()) => {
                        let mut r = text(StatusCode::OK, body);
                        r.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static(
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            ),
                        );
                        r
                    }
                    Err(_) => text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "cannot encode the metrics\n".into(),
                    ),
                }
            }
            "/health/live" => text(StatusCode::OK, "live\n".into()),
            "/health/ready" => match self.readiness() {
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

/// Binds `addr` and serves the endpoint there until the task is aborted;
/// returns the bound address (the port may have been 0).
///
/// # Errors
/// If the address cannot be bound.
pub async fn spawn(
    addr: SocketAddr,
    raft: Raft,
    service: Arc<Service>,
    data_dir: PathBuf,
) -> Result<(SocketAddr, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot bind the metrics address {addr}"))?;
    let bound = listener.local_addr()?;
    let endpoint = Arc::new(Endpoint::new(raft, service, data_dir));
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let task = tokio::spawn(async move {
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
                    let answer = endpoint.answer(&req);
                    async move { Ok::<_, Infallible>(answer) }
                });
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT);
                let io = hyper_util::rt::TokioIo::new(stream);
                if let Err(e) = http.serve_connection(io, service).await {
                    tracing::debug!(error = %e, "metrics endpoint: connection ended");
                }
            });
        }
    });
    Ok((bound, task))
}
