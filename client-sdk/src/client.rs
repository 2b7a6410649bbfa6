//! The client handle: configuration, sessions, membership, and the retry
//! loop every call goes through.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hsm_proto::client::{
    ClientConfig, ClusterStatus, ErrorKind, Operation, Reply, Request, Response, Secret,
};
use hsm_proto::{codec, NodeId, RequestId};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::balancer::{Balancer, KnownNode, NodeStats, Outcome, Pick};
use crate::classify::is_write;
use crate::config::{load_config, load_config_from_env, validate_config};
use crate::connections::{exchange, AttemptError, Connections};
use crate::error::{Error, Result};
use crate::failures::Failures;
use crate::options::ClientOptions;
use crate::progress::AppliedIndex;
use crate::tls::client_config;

/// Pause after every node failed once, before the call tries them all
/// again; doubles per round up to [`MAX_ROUND_PAUSE`].
const ROUND_PAUSE: Duration = Duration::from_millis(50);
const MAX_ROUND_PAUSE: Duration = Duration::from_secs(1);
/// Least time between two member refreshes that failures trigger.
const MIN_REFRESH_GAP: Duration = Duration::from_secs(1);
/// Longest a background member refresh may take.
const REFRESH_DEADLINE: Duration = Duration::from_secs(5);
/// How long a new connection may take before another node is connected
/// to alongside it (a handshake takes one round trip: far less within a
/// region).
const HEDGE_AFTER: Duration = Duration::from_millis(250);
/// Connects made alongside a slow one that keep to the caller's zone;
/// later ones go to any zone.
const LOCAL_HEDGES: usize = 2;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A connection to an HSM cluster.
///
/// Cheap to clone: clones share the connections, the in-flight limit, the
/// session and the read-your-writes index. [`Client::with_deadline`] returns
/// such a clone with a different deadline. Every method is async and needs a tokio runtime.
///
/// Each call goes to one node; when that node fails at the transport level
/// (cannot connect, connection lost, stream reset, timeout) or answers
/// `unavailable`, the call is retried on another node until its deadline.
/// Writes are retried with the same request id, so they apply once. Any
/// other refusal is returned at once as [`Error::Server`].
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    deadline: Duration,
}

struct Inner {
    cluster_id: String,
    /// The config's node ids, when the client keeps to them
    /// ([`ClientOptions::follow_membership`] false).
    pinned: Option<std::collections::BTreeSet<u64>>,
    options: ClientOptions,
    balancer: Mutex<Balancer>,
    connections: Connections,
    permits: Semaphore,
    applied: AppliedIndex,
    session: Mutex<Option<Secret>>,
    refresh: RefreshState,
}

#[derive(Default)]
struct RefreshState {
    running: AtomicBool,
    stale: AtomicBool,
    last: Mutex<Option<Instant>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.connections.close_all();
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("cluster_id", &self.inner.cluster_id)
            .field("deadline", &self.deadline)
            .field("logged_in", &self.is_logged_in())
            .field("applied_index", &self.applied_index())
            .finish_non_exhaustive()
    }
}

/// The user a [`Client::login`] opened a session for. The token itself
/// stays inside the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The user.
    pub username: hsm_proto::Username,
    /// Its role.
    pub role: hsm_proto::Role,
    /// When the session ends, ms since the Unix epoch.
    pub expires_ms: u64,
}

/// Whose request this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Routing {
    /// The caller's: read-your-writes (and linearizable, as every request
    /// the node serves from its replica).
    Caller,
    /// The client's own member refresh: any node's view is good enough
    /// for routing, so no wait for an index or the leader.
    Refresh,
}

/// One attempt counted as outstanding on a node until it ends; dropped
/// unfinished (the call was cancelled), it ends as abandoned.
struct InFlight {
    inner: Arc<Inner>,
    id: NodeId,
    done: bool,
}

impl InFlight {
    fn new(inner: &Arc<Inner>, id: NodeId) -> InFlight {
        InFlight {
            inner: inner.clone(),
            id,
            done: false,
        }
    }

    fn finish(mut self, outcome: Outcome) {
        self.done = true;
        lock(&self.inner.balancer).finish(self.id, outcome, Instant::now());
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.done {
            lock(&self.inner.balancer).finish(self.id, Outcome::Abandoned, Instant::now());
        }
    }
}

/// How a hedged connect ended ([`Client::connect_hedged`]).
enum Hedged {
    /// Connected to this node, for the attempt.
    Connected(Pick, InFlight, quinn::Connection),
    /// Every node it tried failed, and none is left untried.
    NoneLeft,
    /// The attempt's time (the call's deadline, or its attempt timeout)
    /// ran out first.
    TimedOut,
}

/// A connect attempt and what it came to.
type Connecting = (
    Pick,
    InFlight,
    std::result::Result<quinn::Connection, AttemptError>,
);

impl Client {
    /// A client for the cluster `config` describes. Makes no connection:
    /// the first call connects, and learns the members from the cluster in
    /// the background.
    ///
    /// # Errors
    /// [`Error::Config`] if the config or options are invalid (see
    /// [`validate_config`]) or the CA certificate is unusable.
    pub fn new(config: ClientConfig, options: ClientOptions) -> Result<Client> {
        validate_config(&config)?;
        options.validate().map_err(Error::Config)?;
        let tls = client_config(&config.ca_cert_pem)?;
        let zone = options.zone.clone().or(config.zone.clone());
        let balancer = Balancer::new(
            config
                .nodes
                .iter()
                .map(|n| (NodeId(n.id), n.address.clone(), n.zone.clone())),
            zone,
        );
        let deadline = options.deadline;
        Ok(Client {
            inner: Arc::new(Inner {
                cluster_id: config.cluster_id.to_ascii_lowercase(),
                pinned: (!options.follow_membership)
                    .then(|| config.nodes.iter().map(|n| n.id).collect()),
                permits: Semaphore::new(options.max_in_flight),
                options,
                balancer: Mutex::new(balancer),
                connections: {
                    let c = Connections::new(tls);
                    c.set_pins(config.nodes.iter().map(|n| (NodeId(n.id), n.transport_key)));
                    c
                },
                applied: AppliedIndex::default(),
                session: Mutex::new(None),
                refresh: RefreshState::default(),
            }),
            deadline,
        })
    }

    /// A client for the cluster `config` describes, after the cluster has
    /// answered: the member list and leader are learned before it returns.
    ///
    /// # Errors
    /// As [`Client::new`]; [`Error::Unavailable`] or
    /// [`Error::DeadlineExceeded`] if no node answers within the deadline;
    /// [`Error::Config`] if the cluster is not the one the config names.
    pub async fn connect(config: ClientConfig, options: ClientOptions) -> Result<Client> {
        let client = Client::new(config, options)?;
        client.refresh_members().await?;
        Ok(client)
    }

    /// [`Client::connect`] with the config file at `path` and default
    /// options.
    ///
    /// # Errors
    /// As [`load_config`] and [`Client::connect`].
    pub async fn connect_file(path: impl AsRef<Path>) -> Result<Client> {
        Client::connect(load_config(path)?, ClientOptions::default()).await
    }

    /// [`Client::connect`] with the config file that the `HSM_CLUSTER`
    /// environment variable names, and `options`.
    ///
    /// # Errors
    /// As [`load_config_from_env`] and [`Client::connect`].
    pub async fn connect_env(options: ClientOptions) -> Result<Client> {
        Client::connect(load_config_from_env()?, options).await
    }

    /// A clone whose calls have `deadline` instead (sharing everything
    /// else).
    pub fn with_deadline(&self, deadline: Duration) -> Client {
        Client {
            deadline,
            ..self.clone()
        }
    }

    /// The deadline of this handle's calls.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// The highest log index seen applied in any response. Every request
    /// asks the node to have applied at least this much.
    pub fn applied_index(&self) -> u64 {
        self.inner.applied.current()
    }

    /// Makes later requests wait for `index` too, e.g. an index another
    /// client wrote at, to read its writes.
    pub fn observe_index(&self, index: u64) {
        self.inner.applied.observe(index);
    }

    /// The nodes the client knows, in id order, with their health and load
    /// as this client sees them.
    pub fn nodes(&self) -> Vec<KnownNode> {
        lock(&self.inner.balancer).snapshot(Instant::now())
    }

    /// Per-node counters of this client (shared by its clones): attempts
    /// each node answered or failed, requests in flight on it, and whether
    /// it is set aside after a failure. In id order.
    ///
    /// ```no_run
    /// # async fn run(client: hsm_client::Client) {
    /// for node in client.stats() {
    ///     println!("node {} served {} requests", node.id, node.completed);
    /// }
    /// # }
    /// ```
    pub fn stats(&self) -> Vec<NodeStats> {
        lock(&self.inner.balancer).stats(Instant::now())
    }

    /// The leader last reported by the cluster.
    pub fn leader(&self) -> Option<NodeId> {
        lock(&self.inner.balancer).leader()
    }

    /// `leader` leads now (it said so): writes go to it first.
    pub(crate) fn learned_leader(&self, leader: NodeId) {
        lock(&self.inner.balancer).set_leader(Some(leader));
    }

    /// `node` was removed: it is the leader no more (if it was), and the
    /// members are read again at the next call.
    pub(crate) fn forget_member(&self, node: NodeId) {
        {
            let mut balancer = lock(&self.inner.balancer);
            if balancer.leader() == Some(node) {
                balancer.set_leader(None);
            }
        }
        self.inner.refresh.stale.store(true, Ordering::Release);
    }

    /// Whether the client holds a session.
    pub fn is_logged_in(&self) -> bool {
        lock(&self.inner.session).is_some()
    }

    pub(crate) fn max_in_flight(&self) -> usize {
        self.inner.options.max_in_flight
    }

    pub(crate) fn set_session(&self, token: Option<Secret>) {
        *lock(&self.inner.session) = token;
    }

    /// Runs `op` with a fresh request id and returns the node's reply.
    /// The typed methods are built on this.
    ///
    /// # Errors
    /// [`Error::Server`] when the cluster refuses; [`Error::Unavailable`] or
    /// [`Error::DeadlineExceeded`] when no node served it in time;
    /// [`Error::Protocol`] for an answer the protocol does not allow, or a
    /// request too large to encode (over 64 MiB).
    pub async fn call(&self, op: Operation) -> Result<Reply> {
        self.call_with_request_id(RequestId(rand::random()), op)
            .await
    }

    /// Runs `op` with the caller's request id. Sending a write again with
    /// the id of an attempt whose outcome is unknown (after
    /// [`Error::Unavailable`] or [`Error::DeadlineExceeded`]) applies it
    /// at most once and returns the first outcome. A login is counted once
    /// too, but a success is told once only: a copy of a login that let its
    /// user in is answered `Conflict` ("answered already"), and logging in
    /// again takes a new id ([`Client::login`] does).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn call_with_request_id(
        &self,
        request_id: RequestId,
        op: Operation,
    ) -> Result<Reply> {
        self.send(request_id, op, Routing::Caller).await
    }

    /// Asks a node for the cluster status and adopts its member list and
    /// leader.
    pub(crate) async fn refresh_members(&self) -> Result<ClusterStatus> {
        *lock(&self.inner.refresh.last) = Some(Instant::now());
        match self
            .send(
                RequestId(rand::random()),
                Operation::ClusterInfo,
                Routing::Refresh,
            )
            .await?
        {
            Reply::ClusterInfo(status) => Ok(status),
            other => Err(crate::ops::unexpected(
                "cluster-info",
                "cluster-info",
                &other,
            )),
        }
    }

    /// Starts a background member refresh when one is due: every
    /// `refresh_interval`, or sooner after a failure.
    fn maybe_refresh(&self) {
        let refresh = &self.inner.refresh;
        let now = Instant::now();
        let due = match *lock(&refresh.last) {
            None => true,
            Some(last) => {
                let age = now.saturating_duration_since(last);
                age >= self.inner.options.refresh_interval
                    || (refresh.stale.load(Ordering::Acquire) && age >= MIN_REFRESH_GAP)
            }
        };
        if !due || refresh.running.swap(true, Ordering::AcqRel) {
            return;
        }
        refresh.stale.store(false, Ordering::Release);
        let client = self.with_deadline(self.deadline.min(REFRESH_DEADLINE));
        tokio::spawn(async move {
            if let Err(e) = client.refresh_members().await {
                tracing::debug!(error = %e, "member refresh failed");
            }
            client.inner.refresh.running.store(false, Ordering::Release);
        });
    }

    fn adopt(&self, status: &ClusterStatus) -> Result<()> {
        if let Some(id) = &status.cluster_id {
            if id.to_string() != self.inner.cluster_id {
                return Err(Error::Config(format!(
                    "node {} belongs to cluster {id}, but the config names cluster {}",
                    status.answered_by, self.inner.cluster_id
                )));
            }
        }
        let members: Vec<_> = match &self.inner.pinned {
            None => status.members.clone(),
            Some(ids) => status
                .members
                .iter()
                .filter(|m| ids.contains(&m.id.0))
                .cloned()
                .collect(),
        };
        self.inner
            .connections
            .set_pins(members.iter().map(|m| (m.id, m.transport_key)));
        let addresses = {
            let mut balancer = lock(&self.inner.balancer);
            balancer.set_members(&members);
            balancer.set_leader(status.leader);
            balancer.addresses()
        };
        self.inner.connections.retain(&addresses);
        Ok(())
    }

    /// Encodes the request once and runs it to completion.
    async fn send(&self, request_id: RequestId, op: Operation, routing: Routing) -> Result<Reply> {
        let deadline = Instant::now() + self.deadline;
        let _permit =
            match tokio::time::timeout_at(deadline.into(), self.inner.permits.acquire()).await {
                Ok(Ok(permit)) => permit,
                // The semaphore is never closed.
                Ok(Err(_)) => return Err(Error::Protocol("request limiter closed".into())),
                Err(_) => return Err(Error::DeadlineExceeded),
            };
        self.maybe_refresh();
        let write = is_write(&op);
        let name = op.name();
        let since = op.since();
        let session = match op {
            Operation::Login { .. } => None,
            _ => lock(&self.inner.session).clone(),
        };
        let min_index = match routing {
            Routing::Caller => self.inner.applied.current(),
            Routing::Refresh => 0,
        };
        let request = Request {
            session,
            request_id,
            min_index,
            op,
        };
        // The bytes hold passwords, tokens or plaintext: zeroized on drop.
        let bytes = Zeroizing::new(
            codec::encode("request", &request).map_err(|e| Error::Protocol(e.to_string()))?,
        );
        drop(request);
        let reply = self
            .attempts(&bytes, write, deadline, request_id, (name, since))
            .await?;
        if let Reply::ClusterInfo(status) = &reply {
            self.adopt(status)?;
        }
        Ok(reply)
    }

    /// Tries nodes until one answers, a refusal comes, or the deadline.
    async fn attempts(
        &self,
        request: &[u8],
        write: bool,
        deadline: Instant,
        request_id: RequestId,
        (op, since): (&'static str, hsm_proto::protocol::Version),
    ) -> Result<Reply> {
        let inner = &*self.inner;
        let mut failures = Failures::default();
        let mut tried: Vec<NodeId> = Vec::new();
        let mut round: u32 = 0;
        // Nodes of this round that do not speak the operation's version.
        let mut unsupported = 0usize;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(failures.at_deadline());
            }
            let (pick, prefer) = {
                let mut balancer = lock(&inner.balancer);
                let prefer = if write { balancer.leader() } else { None };
                (
                    balancer.pick(now, &tried, prefer, &mut rand::thread_rng()),
                    prefer,
                )
            };
            let Some(pick) = pick else {
                // No node speaks the operation's version: waiting helps
                // only if one is upgraded meanwhile; say so at once.
                if tried.is_empty() || unsupported == tried.len() {
                    return Err(failures.unavailable());
                }
                unsupported = 0;
                // Every node failed once: pause, then try them all again.
                round += 1;
                let pause = (ROUND_PAUSE * (1 << round.min(5))).min(MAX_ROUND_PAUSE);
                if now + pause >= deadline {
                    return Err(failures.unavailable());
                }
                tracing::debug!(%request_id, op, round, "every node failed; trying again");
                tokio::time::sleep(pause).await;
                tried.clear();
                continue;
            };
            tried.push(pick.id);
            let guard = InFlight::new(&self.inner, pick.id);
            let attempt_end = match inner.options.attempt_timeout {
                Some(t) => (now + t).min(deadline),
                None => deadline,
            };
            let connected = match inner.connections.cached(pick.id, &pick.address) {
                Some(conn) => Hedged::Connected(pick, guard, conn),
                None => {
                    self.connect_hedged(
                        (pick, guard),
                        &mut tried,
                        prefer,
                        (attempt_end, deadline),
                        &mut failures,
                    )
                    .await
                }
            };
            let (pick, guard, conn) = match connected {
                Hedged::Connected(pick, guard, conn) => (pick, guard, conn),
                Hedged::TimedOut if attempt_end >= deadline => return Err(failures.at_deadline()),
                Hedged::NoneLeft | Hedged::TimedOut => continue,
            };
            let result = tokio::time::timeout_at(
                attempt_end.into(),
                Self::attempt(&conn, request, op, since),
            )
            .await;
            let reason = match result {
                Ok(Ok(Response {
                    applied_index,
                    result,
                })) => {
                    inner.applied.observe(applied_index);
                    match result {
                        Ok(reply) => {
                            guard.finish(Outcome::Answered);
                            return Ok(reply);
                        }
                        Err(e) if e.kind == ErrorKind::Unavailable => {
                            guard.finish(Outcome::Failed);
                            format!("unavailable: {}", e.message)
                        }
                        Err(e) => {
                            guard.finish(Outcome::Answered);
                            return Err(Error::Server(e));
                        }
                    }
                }
                Ok(Err(AttemptError::Transport(reason))) => {
                    guard.finish(Outcome::Failed);
                    reason
                }
                Ok(Err(AttemptError::Unsupported(reason))) => {
                    // Up, but of an earlier build: not failed.
                    guard.finish(Outcome::Answered);
                    unsupported += 1;
                    reason
                }
                Ok(Err(AttemptError::Protocol(reason))) => {
                    guard.finish(Outcome::Answered);
                    return Err(Error::Protocol(format!(
                        "node {} at {}: {reason}",
                        pick.id, pick.address
                    )));
                }
                Err(_elapsed) if attempt_end >= deadline => {
                    guard.finish(Outcome::Failed);
                    failures.record(&pick.address, "deadline exceeded".into());
                    return Err(failures.at_deadline());
                }
                Err(_elapsed) => {
                    guard.finish(Outcome::Failed);
                    format!("no answer within {:?}", attempt_end - now)
                }
            };
            self.failed_on(&pick, prefer, &mut failures, reason);
        }
    }

    /// Notes that an attempt on `pick` failed for `reason`: the members are
    /// read again soon, and a leader that failed is no longer taken for it.
    fn failed_on(
        &self,
        pick: &Pick,
        prefer: Option<NodeId>,
        failures: &mut Failures,
        reason: String,
    ) {
        tracing::debug!(
            node_id = %pick.id, address = %pick.address, %reason,
            "attempt failed; trying another node"
        );
        self.inner.refresh.stale.store(true, Ordering::Release);
        if prefer == Some(pick.id) {
            // The leader it knew of failed it: no longer taken for the
            // leader until the members are read again.
            lock(&self.inner.balancer).set_leader(None);
        }
        failures.push(&pick.address, reason);
    }

    /// A connection for an attempt on `first`, which has none yet, made
    /// by `until` (the attempt's end, at most the call's `deadline`). A node that does not answer its
    /// handshake would hold the call for the whole connect timeout (a host
    /// down, a zone cut off: the balancer cannot know before it tries), and
    /// a call that met several such nodes in turn ran out of time before
    /// reaching one that answers. So while no connection is made, one more
    /// node the balancer picks is connected to alongside every
    /// [`HEDGE_AFTER`] (and at once when a connect fails): the first
    /// [`LOCAL_HEDGES`] from the caller's zone as usual, the next from any
    /// zone (when several nodes of the caller's zone are silent, often the
    /// whole zone is). The attempt goes to whichever connects first; nodes
    /// still connecting after a hedge step are suspects, passed over by
    /// later calls until their handshake ends, and the others are not
    /// counted as tried by this call. The other connects go on in the
    /// background: their outcome marks their nodes up or down, and a
    /// connection made is kept for later calls. Only connections are
    /// raced; the request itself is sent once.
    async fn connect_hedged(
        &self,
        first: (Pick, InFlight),
        tried: &mut Vec<NodeId>,
        prefer: Option<NodeId>,
        (until, deadline): (Instant, Instant),
        failures: &mut Failures,
    ) -> Hedged {
        let mut racing: tokio::task::JoinSet<Connecting> = tokio::task::JoinSet::new();
        // Connects under way: their task, node, and start.
        let mut pending: Vec<(tokio::task::Id, Pick, Instant)> = Vec::new();
        self.connect_one(&mut racing, &mut pending, first);
        let mut next = Instant::now() + HEDGE_AFTER;
        let mut hedges = 0usize;
        let mut more = true;
        loop {
            if racing.is_empty() && !more {
                return Hedged::NoneLeft;
            }
            tokio::select! {
                Some(joined) = racing.join_next_with_id() => {
                    let id = match &joined {
                        Ok((id, _)) => *id,
                        Err(e) => e.id(),
                    };
                    pending.retain(|(task, _, _)| *task != id);
                    // A connect task does not panic; one aborted left its
                    // attempt abandoned (its guard was dropped).
                    let Ok((_, (pick, guard, result))) = joined else { continue };
                    match result {
                        Ok(conn) => {
                            let now = Instant::now();
                            let mut balancer = lock(&self.inner.balancer);
                            for (_, p, since) in &pending {
                                if now.duration_since(*since) >= HEDGE_AFTER {
                                    balancer.suspect(p.id);
                                }
                            }
                            drop(balancer);
                            tried.retain(|t| !pending.iter().any(|(_, p, _)| p.id == *t));
                            Self::let_finish(racing);
                            return Hedged::Connected(pick, guard, conn);
                        }
                        Err(e) => {
                            guard.finish(Outcome::Failed);
                            self.failed_on(&pick, prefer, failures, e.reason());
                            next = Instant::now();
                        }
                    }
                }
                () = tokio::time::sleep_until(next.into()), if more => {
                    let now = Instant::now();
                    let pick = {
                        let mut balancer = lock(&self.inner.balancer);
                        let rng = &mut rand::thread_rng();
                        if hedges < LOCAL_HEDGES {
                            balancer.pick(now, tried, prefer, rng)
                        } else {
                            balancer.pick_anywhere(now, tried, prefer, rng)
                        }
                    };
                    match pick {
                        Some(pick) => {
                            hedges += 1;
                            tried.push(pick.id);
                            let guard = InFlight::new(&self.inner, pick.id);
                            self.connect_one(&mut racing, &mut pending, (pick, guard));
                            next = now + HEDGE_AFTER;
                        }
                        None => more = false,
                    }
                }
                () = tokio::time::sleep_until(until.into()) => {
                    for (_, p, _) in &pending {
                        if until >= deadline {
                            // The call's own time ran out, not the node's.
                            failures.record(&p.address, "deadline exceeded while connecting".into());
                        } else {
                            failures.push(&p.address, "no connection within the attempt timeout".into());
                        }
                    }
                    Self::let_finish(racing);
                    return Hedged::TimedOut;
                }
            }
        }
    }

    /// Connects to `pick` in a task of `racing`, noted in `pending`.
    fn connect_one(
        &self,
        racing: &mut tokio::task::JoinSet<Connecting>,
        pending: &mut Vec<(tokio::task::Id, Pick, Instant)>,
        (pick, guard): (Pick, InFlight),
    ) {
        let inner = self.inner.clone();
        let noted = pick.clone();
        let task = racing.spawn(async move {
            let made = inner
                .connections
                .connection(pick.id, &pick.address, inner.options.connect_timeout)
                .await;
            (pick, guard, made)
        });
        pending.push((task.id(), noted, Instant::now()));
    }

    /// Lets connects still under way finish in the background, each
    /// marking its node up or down.
    fn let_finish(mut racing: tokio::task::JoinSet<Connecting>) {
        if racing.is_empty() {
            return;
        }
        tokio::spawn(async move {
            while let Some(joined) = racing.join_next().await {
                if let Ok((_, guard, result)) = joined {
                    guard.finish(match result {
                        Ok(_) => Outcome::Reached,
                        Err(_) => Outcome::Failed,
                    });
                }
            }
        });
    }

    /// One try over `conn`: only if its agreed client protocol version
    /// has `op` (from version `since`); a node of an older build is passed
    /// over, saying why.
    async fn attempt(
        conn: &quinn::Connection,
        request: &[u8],
        op: &'static str,
        since: hsm_proto::protocol::Version,
    ) -> std::result::Result<Response, AttemptError> {
        let agreed = crate::tls::agreed_version(conn).unwrap_or(1);
        if agreed < since {
            return Err(AttemptError::Unsupported(format!(
                "it speaks client protocol {agreed}, and {op} needs {since}: upgrade the node"
            )));
        }
        exchange(conn, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_and_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}

    #[test]
    fn clients_and_their_calls_move_between_threads() {
        send_and_sync::<Client>();
        let config = ClientConfig {
            cluster_id: "00".repeat(16),
            ca_cert_pem: String::new(),
            zone: None,
            nodes: Vec::new(),
        };
        // Not a usable config; only the types matter here.
        if let Ok(client) = Client::new(config, ClientOptions::default()) {
            send(&client.call(Operation::ClusterInfo));
        }
    }
}
