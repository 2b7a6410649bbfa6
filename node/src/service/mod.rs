//! The client-facing service: authenticates each request, checks it
//! against the role table, and serves it from this node's replica (reads
//! and crypto) or through the leader (writes).
//!
//! One [`Request`] in, one [`Response`] out ([`Service::handle`]). Order of
//! checks for every request:
//!
//! 1. consistency: refuse at once when this node has lost touch with the
//!    cluster; then wait until it has applied `min_index` and the leader's
//!    quorum-confirmed read index taken after the request arrived
//!    ([`barrier`]), so nothing acknowledged before it (a revocation
//!    above all) is missing from the replica that serves it;
//! 2. authentication: the session token's MAC and expiry under the current
//!    domain key generation, then the user as this replica has it (same account, role and
//!    password epoch; not locked). Expiry is judged, and a login's token
//!    issued, on the cluster's time that the read index came with (the
//!    leader's clock, [`crate::cluster_time`]), never on a follower's own;
//! 3. authorization: the operation's [`Action`] against the role table
//!    ([`hsm_state::authz::permits`]), then the key's owner and share list;
//! 4. the operation. Writes are re-checked by every replica's state
//!    machine when applied.
//!
//! Invariants: passwords, tokens and plaintext key material exist only in
//! zeroizing buffers and never reach an error message or a log line; slow
//! work (Argon2id, key generation, RSA) runs on the blocking pool, so a
//! slow request never stalls others.

mod backups;
mod barrier;
mod cluster;
mod crypto_ops;
mod keys;
mod quorum;
mod shares;
mod users;
mod versions;

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hsm_proto::client::{ClientError, ErrorKind, Operation, Reply, Request, Response, Secret};
use hsm_proto::{Actor, EventBody, KeyFlag, KeyId, NodeId, RequestId, Role, Username};
use hsm_raft_store::StateMachineStore;
use hsm_state::authz::{self, Action};
use hsm_state::{Key, State};
use tokio::time::Instant;

use crate::backup::Snapshotter;
use crate::cluster_time::ClusterTime;
use crate::raft::{LeaderContact, LeaderReads, QuicNetwork, Raft};
use crate::secrets::{session, Keyring, SessionError};
use crate::writer::{WriteError, Writer};

pub use keys::KeyCache;

/// Longest a request may take on a node (waiting for an index, a write to
/// commit, an Argon2 slot) before it is answered [`ErrorKind::Unavailable`].
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// Longest a login's outcome write may take, from the end of its password
/// check, whatever is left of the request's deadline: the outcome is
/// recorded even when the check ended late, so the reservation does not
/// stay in progress until it expires. Fails as [`ErrorKind::Unavailable`]
/// and reveals nothing about the password.
pub const LOGIN_OUTCOME_DEADLINE: Duration = Duration::from_secs(5);

// An honest login records its outcome well before its reservation expires:
// reserved and checked within the request's deadline, recorded within the
// outcome's, with at least as much again to spare (forwarding, a new leader).
const _: () = assert!(
    2 * (REQUEST_DEADLINE.as_millis() + LOGIN_OUTCOME_DEADLINE.as_millis())
        <= hsm_state::LOGIN_RESERVATION_TTL_MS as u128
);

/// Longest cluster info waits for a first read-index round, on a node that
/// has had none since it started, to judge the caller's session (and show
/// it the counts); without one it answers without them.
const CLUSTER_INFO_ROUND: Duration = Duration::from_secs(2);

/// What a node needs to serve clients.
pub struct ServiceParts {
    /// This node.
    pub node: NodeId,
    /// Its Raft handle.
    pub raft: Raft,
    /// Its proposer, which steps aside while leadership moves.
    pub proposer: Arc<crate::proposer::Proposer>,
    /// Its state machine.
    pub sm: StateMachineStore,
    /// Where writes go.
    pub writer: Writer,
    /// For asking the leader for a read index.
    pub network: QuicNetwork,
    /// This node's read index when it leads.
    pub reads: LeaderReads,
    /// The domain key generations this node holds.
    pub keyring: Arc<Keyring>,
    /// How long a session token lasts.
    pub session_lifetime: Duration,
    /// How many unwrapped keys to keep loaded.
    pub key_cache_entries: usize,
    /// When this node last heard from a leader.
    pub contact: LeaderContact,
    /// Longest this node serves from its replica without hearing from a
    /// leader (as a follower) or from a quorum (as the leader).
    pub stale_after: Duration,
    /// The snapshotter, when `[backup]` names a destination.
    pub backups: Option<Arc<Snapshotter>>,
    /// The power-on self-tests' outcome: when one failed, the node serves
    /// no cryptography and says why ([`power_on_self_tests`]).
    pub self_tests: Result<(), String>,
    /// Most requests doing password work one source address may have in
    /// progress at once (`limits.max_password_checks_per_address`).
    pub password_checks_per_address: u32,
}

/// Runs the power-on self-tests ([`hsm_crypto::self_test`]) and logs the
/// outcome. A debug build takes `HSM_SELF_TEST_CORRUPT` (a test's name) to
/// change that test's known answer, so a test can show that a failing one
/// stops cryptography; a release build ignores it.
///
/// # Errors
/// Which test failed and how, in words.
pub fn power_on_self_tests() -> Result<(), String> {
    let corrupt = hsm_crypto::self_test::SELF_TESTS
        .iter()
        .copied()
        .find(|test| corrupting(test));
    match hsm_crypto::self_test::run_corrupting(corrupt) {
        Ok(tests) => {
            tracing::info!(tests, "power-on self-tests passed");
            Ok(())
        }
        Err(e) => {
            tracing::error!(test = e.test, how = %e.how, "power-on self-test failed: this node serves no cryptography");
            Err(e.to_string())
        }
    }
}

/// Whether a debug build was asked (`HSM_SELF_TEST_CORRUPT`) to make
/// self-test `test` fail; a release build never is.
fn corrupting(test: &str) -> bool {
    cfg!(debug_assertions) && std::env::var("HSM_SELF_TEST_CORRUPT").is_ok_and(|name| name == test)
}

/// Serves client requests on one node. Cheap to share (`Arc`).
pub struct Service {
    node: NodeId,
    raft: Raft,
    sm: StateMachineStore,
    writer: Writer,
    barrier: barrier::ReadBarrier,
    /// What moving leadership needs (`crate::handoff`), and a lock so one
    /// transfer runs at a time.
    proposer: Arc<crate::proposer::Proposer>,
    reads: LeaderReads,
    network: QuicNetwork,
    transfer: tokio::sync::Mutex<()>,
    keyring: Arc<Keyring>,
    session_lifetime: Duration,
    cache: KeyCache,
    contact: LeaderContact,
    stale_after: Duration,
    backups: Option<Arc<Snapshotter>>,
    /// Bounds concurrent Argon2id work (40 MiB and a core each) to the
    /// number of cores, so a flood of logins cannot exhaust memory or starve
    /// crypto on the blocking pool.
    argon2_slots: tokio::sync::Semaphore,
    /// Each source address's share of that work ([`shares`]).
    shares: shares::SourceShares,
    /// Why this node serves no cryptography, once a self-test failed: a
    /// power-on test, or the pairwise consistency test of a key pair it
    /// generated (FIPS 140-3's error state; it lasts until a restart).
    crypto_failure: std::sync::OnceLock<String>,
    /// A debug build's `HSM_SELF_TEST_CORRUPT=generated-key-pairs`: every
    /// key pair generated fails its pairwise consistency test, so a test
    /// can show what that does.
    corrupt_key_pairs: bool,
    /// Requests by operation and outcome, for the metrics endpoint.
    metrics: Arc<crate::metrics::RequestMetrics>,
    /// What users did with keys through this node, for the audit trail.
    key_uses: Arc<crate::key_uses::KeyUseCounter>,
}

/// Counts from this node's replica, for the metrics endpoint: never names.
#[derive(Debug, Clone, Copy, Default)]
pub struct StateCounts {
    /// Users.
    pub users: u64,
    /// Users locked after too many failed logins.
    pub locked_users: u64,
    /// Users with failed logins since their last success.
    pub users_with_failed_logins: u64,
    /// Keys.
    pub keys: u64,
    /// Events applied since the cluster began.
    pub events: u64,
    /// The Raft protocol version the cluster runs.
    pub protocol: u64,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// An authenticated user.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) username: Username,
    pub(crate) role: Role,
    /// The session the request came with, as a logout names it.
    pub(crate) session: hsm_proto::EndedSession,
}

pub(crate) type Outcome = Result<Reply, ClientError>;

impl Service {
    /// A service over the given parts.
    pub fn new(parts: ServiceParts) -> Service {
        let barrier = barrier::ReadBarrier::start(
            parts.node,
            parts.raft.clone(),
            parts.reads.clone(),
            parts.network.clone(),
        );
        Service {
            node: parts.node,
            raft: parts.raft,
            sm: parts.sm,
            writer: parts.writer,
            barrier,
            proposer: parts.proposer,
            reads: parts.reads,
            network: parts.network,
            transfer: tokio::sync::Mutex::new(()),
            keyring: parts.keyring,
            session_lifetime: parts.session_lifetime,
            cache: KeyCache::new(parts.key_cache_entries),
            contact: parts.contact,
            stale_after: parts.stale_after,
            backups: parts.backups,
            argon2_slots: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
            ),
            shares: shares::SourceShares::new(parts.node, parts.password_checks_per_address),
            crypto_failure: parts
                .self_tests
                .err()
                .map(OnceLock::from)
                .unwrap_or_default(),
            corrupt_key_pairs: corrupting("generated-key-pairs"),
            metrics: Arc::default(),
            key_uses: Arc::default(),
        }
    }

    /// The key use counts this service keeps (written to the trail by
    /// `crate::key_uses::spawn`).
    pub fn key_uses(&self) -> Arc<crate::key_uses::KeyUseCounter> {
        self.key_uses.clone()
    }

    /// The request counters this service keeps.
    pub fn request_metrics(&self) -> Arc<crate::metrics::RequestMetrics> {
        self.metrics.clone()
    }

    /// Counts from this node's replica.
    pub fn state_counts(&self) -> StateCounts {
        self.state(|s| {
            let mut counts = StateCounts {
                keys: s.key_count() as u64,
                events: s.events(),
                protocol: u64::from(s.protocol()),
                ..StateCounts::default()
            };
            for u in s.users() {
                counts.users += 1;
                counts.locked_users += u64::from(u.is_locked());
                counts.users_with_failed_logins += u64::from(u.failures > 0);
            }
            counts
        })
    }

    /// When this node's last backup completed (ms since the epoch) and how
    /// long it took.
    pub fn last_backup(&self) -> Option<(u64, Duration)> {
        self.backups.as_ref().and_then(|b| b.last_completed())
    }

    /// When the newest backup of this cluster this node knows of was taken
    /// ([`crate::backup::Snapshotter::newest_known`]).
    pub fn newest_backup(&self) -> Option<u64> {
        self.backups.as_ref().and_then(|b| b.newest_known())
    }

    /// Why this node serves no cryptography (a failed self-test), if so.
    pub fn crypto_failure(&self) -> Option<&str> {
        self.crypto_failure.get().map(String::as_str)
    }

    /// Whether this node serves requests now, or why not: it is in touch
    /// with the cluster (the rule that refuses requests otherwise), its
    /// self-tests passed, and it has applied the leader's commit index of
    /// a read-index round taken now, within `slack` entries. Asks the
    /// leader (a round shared with requests), waiting until `deadline`.
    pub async fn readiness(&self, slack: u64, deadline: Instant) -> Result<(), String> {
        self.check_fresh().map_err(|e| e.message)?;
        if let Some(why) = self.crypto_failure() {
            return Err(format!("a self-test failed: {why}"));
        }
        match self.barrier.read_index(deadline).await {
            Some(Ok(point)) => {
                let applied = self.applied_index();
                if applied.saturating_add(slack) < point.index {
                    Err(format!(
                        "node {} has applied up to {applied}; the cluster has committed {}",
                        self.node, point.index
                    ))
                } else {
                    Ok(())
                }
            }
            Some(Err(e)) => Err(format!(
                "cannot confirm it is up to date with the leader: {e}"
            )),
            None => Err("cannot confirm it is up to date with the leader in time".into()),
        }
    }

    /// Puts the node in its error state: from now on it serves no
    /// cryptography, and says `why`.
    pub(crate) fn fail_crypto(&self, why: String) {
        tracing::error!(%why, "a self-test failed: this node serves no cryptography until it restarts");
        let _ = self.crypto_failure.set(why);
    }

    /// Serves one request from `source` (the client's address, as the
    /// server counts connections). Never panics on any input; every
    /// failure is a typed [`ClientError`] in the response.
    pub async fn handle(&self, request: Request, source: IpAddr) -> Response {
        let deadline = Instant::now() + REQUEST_DEADLINE;
        let name = request.op.name();
        let result = self.serve(request, source, deadline).await;
        if let Err(e) = &result {
            if e.kind == ErrorKind::Internal {
                tracing::warn!(op = name, error = %e, "request failed");
            } else {
                tracing::debug!(op = name, error = %e, "request refused");
            }
        }
        Response {
            applied_index: self.applied_index(),
            result,
        }
    }

    async fn serve(&self, request: Request, source: IpAddr, deadline: Instant) -> Outcome {
        let Request {
            session,
            request_id,
            min_index,
            op,
        } = request;
        if matches!(op, Operation::ClusterInfo) {
            // Cluster info answers even from a node cut off (a client finds
            // the members through it), without a round: it carries no
            // right. Members and leader are for anyone who trusts the CA
            // (the client config lists them anyway); counts only for
            // users, their session judged on the last round's time. It
            // waits for `min_index` only when this node holds that entry
            // already (the client tries another node otherwise): nobody
            // parks a task here with an index far ahead.
            if min_index > self.last_log_index() {
                return Err(ClientError::unavailable(format!(
                    "node {} has not received index {min_index} yet; try another node",
                    self.node
                )));
            }
            self.wait_applied(min_index, deadline).await?;
            let time = match (&session, self.barrier.last_time()) {
                (_, Some(time)) => Some(time),
                // A node that has served nothing since it started has no
                // leader time yet to judge a session by: one round for it
                // (shared with any other request's), briefly.
                (Some(_), None) => {
                    let soon = deadline.min(Instant::now() + CLUSTER_INFO_ROUND);
                    match self.barrier.read_index(soon).await {
                        Some(Ok(point)) => Some(point.time),
                        _ => None,
                    }
                }
                (None, None) => None,
            };
            let signed_in = match (&session, time) {
                (Some(t), Some(time)) => self.authenticate(t.expose(), time).is_ok(),
                _ => false,
            };
            return Ok(self.cluster_info(signed_in));
        }
        // Password work takes a part of its address's share first, before
        // it waits for anything or reserves a login attempt.
        if let Operation::Login { username, password } = op {
            let _share = self.shares.take(source)?;
            self.check_fresh()?;
            let time = self.linearize(min_index, deadline).await?;
            let attempt = Attempt {
                reservation: request_id,
                second_factor: None,
            };
            return self
                .login(attempt, username, password, time, deadline)
                .await;
        }
        if let Operation::LoginMfa {
            username,
            password,
            reservation,
            signature,
        } = op
        {
            let _share = self.shares.take(source)?;
            self.check_fresh()?;
            let time = self.linearize(min_index, deadline).await?;
            let attempt = Attempt {
                reservation,
                second_factor: Some(signature),
            };
            return self
                .login(attempt, username, password, time, deadline)
                .await;
        }
        if let Operation::LoginChallenge { username } = op {
            let _share = self.shares.take(source)?;
            self.check_fresh()?;
            let time = self.linearize(min_index, deadline).await?;
            return self
                .login_challenge(request_id, username, time, deadline)
                .await;
        }
        // The session is judged as far as this replica can before anything
        // waits: no token, a malformed one, or one a rotation ended is
        // refused at once (a stranger parks nothing); one authentic under
        // no generation this node holds (forged, or issued under one it
        // has not applied yet) waits like a password check, within its
        // address's share.
        let token = session.ok_or_else(|| {
            ClientError::new(ErrorKind::Unauthenticated, "log in first: no session token")
        })?;
        let standing = self
            .state(|s| session::judge(&self.keyring, s, token.expose()))
            .map_err(|e| unproven(session::Unproven::Token(e)))?;
        if standing == session::Standing::Ended {
            return if matches!(op, Operation::Logout { .. }) {
                Ok(Reply::Done)
            } else {
                Err(unproven(session::Unproven::Ended))
            };
        }
        let _share = if does_password_work(&op) || standing == session::Standing::Unknown {
            Some(self.shares.take(source)?)
        } else {
            None
        };
        self.check_fresh()?;
        let time = self.linearize(min_index, deadline).await?;
        let caller = match self.session_of(token.expose(), time) {
            Ok(caller) => caller,
            // Logging out of a session that has ended already (a retry whose
            // first answer was lost, an expired token) is done.
            Err(session::Unproven::Ended | session::Unproven::Token(SessionError::Expired))
                if matches!(op, Operation::Logout { .. }) =>
            {
                return Ok(Reply::Done);
            }
            Err(e) => return Err(unproven(e)),
        };
        let action = action_of(&caller, &op);
        if !authz::permits(caller.role, action) {
            return Err(ClientError::denied(format!(
                "user {} has role {} ({}), which may not {}",
                caller.username,
                caller.role,
                role_name(caller.role),
                action.as_str()
            )));
        }
        let ctx = Ctx {
            caller,
            session: token,
            request_id,
            deadline,
            time,
        };
        let used = crate::key_uses::key_use(&op);
        let outcome = self.dispatch(&ctx, op).await;
        if let (Ok(reply), Some((key, kind))) = (&outcome, used) {
            let n = crate::key_uses::uses_in(reply);
            self.key_uses.add(key, &ctx.caller.username, kind, n);
        }
        outcome
    }

    async fn dispatch(&self, ctx: &Ctx, op: Operation) -> Outcome {
        use Operation as O;
        if uses_cryptography(&op) {
            if let Some(why) = self.crypto_failure.get() {
                return Err(ClientError::unavailable(format!(
                    "node {} serves no cryptography: {why}; another node may",
                    self.node
                )));
            }
        }
        match op {
            O::Login { .. } | O::LoginMfa { .. } | O::LoginChallenge { .. } | O::ClusterInfo => {
                Err(ClientError::internal("dispatched twice"))
            }
            O::SetOwnMfa {
                current_password,
                key,
            } => self.set_own_mfa(ctx, current_password, key).await,
            O::ResetMfa { username } => self.reset_mfa(ctx, username).await,
            O::SetApprovalKey {
                username,
                key,
                current_password,
            } => {
                self.set_approval_key(ctx, username, key, current_password)
                    .await
            }
            O::GenerateQuorumToken { intent } => self.generate_quorum_token(ctx, intent).await,
            O::ApproveQuorumToken {
                token,
                approver,
                signature,
            } => {
                self.approve_quorum_token(ctx, token, approver, signature)
                    .await
            }
            O::DeleteQuorumToken { token } => self.delete_quorum_token(ctx, token).await,
            O::SetQuorumValue { service, value } => {
                self.set_quorum_value(ctx, service, value).await
            }
            O::QuorumStatus => self.quorum_status(),
            O::AuditHead => Ok(self.state(|s| Reply::AuditHead {
                events: s.events(),
                head: s.head(),
            })),
            O::AddNode { node } => self.add_node(ctx, node).await,
            O::RemoveNode { node } => self.remove_node(ctx, node).await,
            O::RotateDomainKey => self.rotate_domain_key(ctx).await,
            O::TransferLeadership { to } => self.transfer_leadership(to).await,
            O::MemberStatus => self.member_status(),
            O::ChangePassword {
                username,
                new_password,
            } => self.change_password(ctx, username, new_password).await,
            O::ChangeOwnPassword {
                current_password,
                new_password,
            } => {
                self.change_own_password(ctx, current_password, new_password)
                    .await
            }
            O::CreateUser {
                username,
                role,
                password,
            } => self.create_user(ctx, username, role, password).await,
            O::DeleteUser { username } => {
                self.write_done(ctx, EventBody::UserDeleted { username })
                    .await
            }
            O::UnlockUser { username } => {
                self.write_done(ctx, EventBody::UserUnlocked { username })
                    .await
            }
            O::Logout { everywhere } => {
                let body = EventBody::SessionsEnded {
                    username: ctx.caller.username.clone(),
                    token: (!everywhere).then_some(ctx.caller.session),
                };
                self.write_done(ctx, body).await
            }
            O::ListUsers { after, limit } => {
                Ok(self.list_users(ctx.time.now_ms(), after.as_ref(), limit))
            }
            O::CreateBackup => self.create_backup().await,
            O::ListBackups => self.list_backups().await,
            O::DescribeBackup { id } => self.describe_backup(id).await,
            O::VerifyBackup { id } => self.verify_backup(id).await,
            O::DeleteBackup { id } => self.delete_backup(id).await,
            O::KeepBackup { id, forever } => self.keep_backup(id, forever).await,
            O::GenerateKey {
                spec,
                attributes,
                unique_label,
            } => self.generate_key(ctx, spec, attributes, unique_label).await,
            O::ImportKey {
                spec,
                attributes,
                material,
                unique_label,
            } => {
                self.import_key(ctx, spec, attributes, material, unique_label)
                    .await
            }
            O::ImportPublicKey {
                public_key,
                attributes,
                unique_label,
            } => {
                self.import_public_key(ctx, public_key, attributes, unique_label)
                    .await
            }
            O::UnwrapKey {
                wrapping_key,
                mechanism,
                wrapped,
                spec,
                attributes,
                unique_label,
            } => {
                let request = UnwrapRequest {
                    wrapping_key,
                    mechanism,
                    wrapped,
                    spec,
                    attributes,
                    unique_label,
                };
                self.unwrap_key(ctx, request).await
            }
            O::DeriveKey {
                key,
                mechanism,
                peer_public_key,
                context,
                spec,
                attributes,
                unique_label,
            } => {
                let request = DeriveRequest {
                    key,
                    mechanism,
                    peer_public_key,
                    context,
                    spec,
                    attributes,
                    unique_label,
                };
                self.derive_key(ctx, request).await
            }
            O::GetKey { key } => self.get_key(ctx, key),
            O::ListKeys {
                filter,
                after,
                limit,
            } => Ok(self.list_keys(&ctx.caller, &filter, after, limit)),
            O::ExportPublicKey { key } => self.export_public_key(ctx, key),
            O::WrapKey {
                wrapping_key,
                key,
                mechanism,
            } => self.wrap_key(ctx, wrapping_key, key, mechanism).await,
            O::ShareKey { key, with } => self.share_key(ctx, key, with, true).await,
            O::UnshareKey { key, with } => self.share_key(ctx, key, with, false).await,
            O::SetKeyAttribute { key, attribute } => {
                self.set_key_attribute(ctx, key, attribute).await
            }
            O::DeleteKey { key } => self.delete_key(ctx, key).await,
            O::Sign {
                key,
                mechanism,
                message,
            } => self.sign(ctx, key, mechanism, message).await,
            O::SignMany {
                key,
                mechanism,
                messages,
            } => self.sign_many(ctx, key, mechanism, messages).await,
            O::Verify {
                key,
                mechanism,
                message,
                signature,
            } => self.verify(ctx, key, mechanism, message, signature).await,
            O::Encrypt {
                key,
                mechanism,
                plaintext,
                aad,
            } => self.encrypt(ctx, key, mechanism, plaintext, aad).await,
            O::Decrypt {
                key,
                mechanism,
                ciphertext,
                aad,
            } => self.decrypt(ctx, key, mechanism, ciphertext, aad).await,
            O::Digest { algorithm, data } => Service::digest(algorithm, data).await,
            O::KeyVersions { key } => self.key_versions(ctx, key),
            O::RotateKey { key } => self.rotate_key(ctx, key).await,
            O::SetMinDecryptionVersion { key, version } => {
                self.set_min_decryption_version(ctx, key, version).await
            }
            O::TrimKeyVersions { key, below } => self.trim_key_versions(ctx, key, below).await,
            O::EncryptBatch {
                key,
                mechanism,
                items,
            } => self.encrypt_batch(ctx, key, mechanism, items).await,
            O::DecryptBatch {
                key,
                mechanism,
                items,
            } => self.decrypt_batch(ctx, key, mechanism, items).await,
            O::SignBatch {
                key,
                mechanism,
                messages,
            } => self.sign_batch(ctx, key, mechanism, messages).await,
            O::VerifyBatch {
                key,
                mechanism,
                items,
            } => self.verify_batch(ctx, key, mechanism, items).await,
            O::GenerateDataKey {
                key,
                bits,
                aad,
                plaintext,
            } => self.generate_data_key(ctx, key, bits, aad, plaintext).await,
            O::Random { len } => Service::random(len),
        }
    }

    // ------------------------------------------------------------ helpers

    /// Runs `f` against this node's applied state.
    pub(crate) fn state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        self.sm.read(|a| f(&a.state))
    }

    /// Whether this replica has applied a write under `request_id`.
    pub(crate) fn remembered(&self, request_id: RequestId) -> bool {
        self.state(|s| s.request(&request_id).is_some())
    }

    /// `check` (made ahead of a write, against the state the write
    /// changes), passed when it failed only because this very request was
    /// applied already: a retry is answered with the remembered outcome by
    /// the write itself, and the state machine checks everything again.
    /// `check` must be made first: state only moves forward, so a check
    /// that fails because of this request is followed by a remembered id.
    pub(crate) fn unless_retry<T>(
        &self,
        request_id: RequestId,
        check: Result<T, ClientError>,
    ) -> Result<(), ClientError> {
        match check {
            Ok(_) => Ok(()),
            Err(_) if self.remembered(request_id) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Runs Argon2id work in one of the bounded slots, if one is free
    /// before `deadline`; else answers unavailable without running it.
    pub(crate) async fn argon2<T: Send + 'static>(
        &self,
        deadline: Instant,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ClientError> {
        let _slot = tokio::time::timeout_at(deadline, self.argon2_slots.acquire())
            .await
            .map_err(|_| {
                ClientError::unavailable(format!(
                    "node {} is busy checking passwords; try again",
                    self.node
                ))
            })?
            .map_err(|_| ClientError::unavailable("the node is shutting down"))?;
        blocking(f).await
    }

    /// The last log index this node applied.
    pub fn applied_index(&self) -> u64 {
        *self.sm.applied_index().borrow()
    }

    /// The index of the last entry in this node's log (applied or not).
    fn last_log_index(&self) -> u64 {
        self.raft.metrics().borrow().last_log_index.unwrap_or(0)
    }

    /// Waits until this node has applied `index`.
    pub(crate) async fn wait_applied(
        &self,
        index: u64,
        deadline: Instant,
    ) -> Result<(), ClientError> {
        if index == 0 {
            return Ok(());
        }
        let mut rx = self.sm.applied_index();
        let waited =
            tokio::time::timeout_at(deadline, rx.wait_for(|applied| *applied >= index)).await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(ClientError::unavailable(format!(
                "node {} is shutting down",
                self.node
            ))),
            Err(_) => Err(ClientError::unavailable(format!(
                "node {} has applied up to index {}, the request needs {index}; try another node",
                self.node,
                self.applied_index()
            ))),
        }
    }

    /// Refuses to serve from a replica that may have missed revocations: a
    /// follower that has not heard from a leader, or a leader that has not
    /// heard from a quorum, within `stale_after`. The client retries on
    /// another node.
    pub(crate) fn check_fresh(&self) -> Result<(), ClientError> {
        let (leader_here, quorum_ack, voters) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            (
                m.current_leader == Some(self.node),
                m.millis_since_quorum_ack,
                m.membership_config.membership().voter_ids().count(),
            )
        };
        let fresh = if leader_here {
            voters <= 1 || quorum_ack.is_some_and(|ms| Duration::from_millis(ms) < self.stale_after)
        } else {
            self.contact.since().is_some_and(|d| d < self.stale_after)
        };
        if fresh {
            Ok(())
        } else {
            Err(ClientError::unavailable(format!(
                "node {} has not heard from the cluster recently and may be out of date; try another node",
                self.node
            )))
        }
    }

    /// Waits until this node has applied everything committed before now,
    /// as the leader confirms with a quorum ([`barrier`]); returns the
    /// cluster's time that came with the read index.
    ///
    /// `min_index` is the client's: no more than the leader's read index,
    /// which is at least every index applied anywhere before the request,
    /// so a larger one is refused at once rather than waited for (anyone,
    /// signed in or not, could otherwise park a task for the whole deadline
    /// on each of hundreds of streams).
    pub(crate) async fn linearize(
        &self,
        min_index: u64,
        deadline: Instant,
    ) -> Result<ClusterTime, ClientError> {
        let mut last = String::from("no leader known");
        loop {
            match self.barrier.read_index(deadline).await {
                Some(Ok(point)) => {
                    if min_index > point.index {
                        return Err(ClientError::invalid(format!(
                            "min_index {min_index} is past everything the cluster has \
                             committed ({})",
                            point.index
                        )));
                    }
                    self.wait_applied(point.index, deadline).await?;
                    return Ok(point.time);
                }
                Some(Err(e)) => last = e,
                None => {}
            }
            // Not worth waiting for: a node removed from the cluster (it
            // runs on, but no leader talks to it), or one that has not
            // heard from the cluster for longer than it may serve: the
            // caller is better served by another node now than at the
            // deadline.
            if self.state(|s| s.cluster().is_some() && s.node(self.node).is_none()) {
                return Err(ClientError::unavailable(format!(
                    "node {} is not a member in its replica (removed, or still joining); ask another node",
                    self.node
                )));
            }
            self.check_fresh()?;
            if Instant::now() + Duration::from_millis(50) >= deadline {
                return Err(ClientError::unavailable(format!(
                    "node {} could not confirm it is up to date with the leader: {last}",
                    self.node
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Generation `generation` of the domain key as this replica's state
    /// records it; for `None`, the current one for new secrets (sessions,
    /// key material), refused between a member's removal and the rotation
    /// that follows it (the removed member holds the current one).
    pub(crate) fn domain_key(
        &self,
        generation: Option<u32>,
    ) -> Result<Arc<crate::secrets::DomainKey>, ClientError> {
        self.state(|s| match generation {
            Some(g) => self.keyring.get(s, g),
            None => self.keyring.for_new_secrets(s),
        })
        .map_err(|e| {
            tracing::warn!(error = %e, "a domain key generation is not available on this node");
            ClientError::new(
                ErrorKind::Unavailable,
                format!("this node cannot serve that now: {e}"),
            )
        })
    }

    /// Checks a session token, at the cluster's time `time`, and returns
    /// its user.
    fn authenticate(&self, token: &[u8], time: ClusterTime) -> Result<Caller, ClientError> {
        self.session_of(token, time).map_err(unproven)
    }

    /// [`Service::authenticate`], saying why not as the session check does.
    fn session_of(&self, token: &[u8], time: ClusterTime) -> Result<Caller, session::Unproven> {
        let now_ms = time.now_ms();
        self.state(|s| {
            session::authenticate(&self.keyring, s, token, now_ms).map(|(user, claims)| Caller {
                username: user.username.clone(),
                role: user.role,
                session: hsm_proto::EndedSession {
                    token_id: claims.token_id,
                    expires_ms: claims.expires_ms,
                },
            })
        })
    }

    /// Writes one event as the caller and waits until this node has applied
    /// it; returns its log index.
    pub(crate) async fn write(&self, ctx: &Ctx, body: EventBody) -> Result<u64, ClientError> {
        self.write_as(
            ctx.request_id,
            Actor::User(ctx.caller.username.clone()),
            Some(&ctx.session),
            body,
            ctx.deadline,
        )
        .await
    }

    /// Writes one event as `actor`; `session` is the user's token when the
    /// actor is a user (the leader checks it again if this node forwards
    /// the write), `None` for this node's own writes.
    pub(crate) async fn write_as(
        &self,
        request_id: RequestId,
        actor: Actor,
        session: Option<&Secret>,
        body: EventBody,
        deadline: Instant,
    ) -> Result<u64, ClientError> {
        self.write_applied(request_id, actor, session, body, deadline)
            .await
            .map(|(index, _)| index)
    }

    /// [`Service::write_as`], and whether the write was only a replay of
    /// one applied before under its request id (whose outcome it got).
    pub(crate) async fn write_applied(
        &self,
        request_id: RequestId,
        actor: Actor,
        session: Option<&Secret>,
        body: EventBody,
        deadline: Instant,
    ) -> Result<(u64, bool), ClientError> {
        let left = deadline.saturating_duration_since(Instant::now());
        let applied = self
            .writer
            .write(request_id, actor, session, body, left)
            .await
            .map_err(|e| match e {
                WriteError::Refused(r) => ClientError::from(r),
                other => ClientError::unavailable(other.to_string()),
            })?;
        applied.result.map_err(ClientError::from)?;
        self.wait_applied(applied.index, deadline).await?;
        Ok((applied.index, applied.replayed))
    }

    async fn write_done(&self, ctx: &Ctx, body: EventBody) -> Outcome {
        self.write(ctx, body).await.map(|_| Reply::Done)
    }

    /// A key the caller may use (owns or is shared with). Others' keys are
    /// "not found", so a refusal does not reveal they exist.
    pub(crate) fn usable_key(&self, caller: &Caller, id: KeyId) -> Result<Key, ClientError> {
        self.state(|s| {
            s.key(id)
                .filter(|k| authz::can_use_key(&caller.username, k))
                .cloned()
        })
        .ok_or_else(|| ClientError::not_found(format!("no key {id}")))
    }
}

/// Whether `op` checks or hashes a password (Argon2id).
fn does_password_work(op: &Operation) -> bool {
    matches!(
        op,
        Operation::Login { .. }
            | Operation::LoginMfa { .. }
            | Operation::LoginChallenge { .. }
            | Operation::SetOwnMfa { .. }
            | Operation::ChangeOwnPassword { .. }
            | Operation::ChangePassword { .. }
            | Operation::CreateUser { .. }
    )
}

/// Whether `op` runs a cryptographic algorithm (what the power-on
/// self-tests vouch for).
fn uses_cryptography(op: &Operation) -> bool {
    use Operation as O;
    matches!(
        op,
        O::GenerateKey { .. }
            | O::ImportKey { .. }
            | O::ImportPublicKey { .. }
            | O::UnwrapKey { .. }
            | O::DeriveKey { .. }
            | O::WrapKey { .. }
            | O::Sign { .. }
            | O::SignMany { .. }
            | O::Verify { .. }
            | O::Encrypt { .. }
            | O::Decrypt { .. }
            | O::Digest { .. }
            | O::Random { .. }
            | O::RotateKey { .. }
            | O::EncryptBatch { .. }
            | O::DecryptBatch { .. }
            | O::SignBatch { .. }
            | O::VerifyBatch { .. }
            | O::GenerateDataKey { .. }
    )
}

/// An unwrap request's parts.
pub(crate) struct UnwrapRequest {
    pub(crate) wrapping_key: KeyId,
    pub(crate) mechanism: hsm_crypto::WrapMechanism,
    pub(crate) wrapped: Vec<u8>,
    pub(crate) spec: Option<hsm_proto::KeySpec>,
    pub(crate) attributes: hsm_proto::KeyAttributes,
    pub(crate) unique_label: bool,
}

/// A key derivation request's parts.
pub(crate) struct DeriveRequest {
    pub(crate) key: KeyId,
    pub(crate) mechanism: hsm_crypto::DeriveMechanism,
    pub(crate) peer_public_key: Vec<u8>,
    pub(crate) context: Vec<u8>,
    pub(crate) spec: hsm_proto::KeySpec,
    pub(crate) attributes: hsm_proto::KeyAttributes,
    pub(crate) unique_label: bool,
}

/// A login attempt: its reservation (the request's id, or the challenge
/// a login with a second factor answers), and the second factor's
/// signature, if one came.
pub(crate) struct Attempt {
    pub(crate) reservation: RequestId,
    pub(crate) second_factor: Option<hsm_proto::Signature>,
}

/// One authenticated request being served.
pub(crate) struct Ctx {
    pub(crate) caller: Caller,
    /// The caller's session token, which proves the caller to the leader
    /// when this node forwards a write.
    pub(crate) session: Secret,
    pub(crate) request_id: RequestId,
    pub(crate) deadline: Instant,
    /// The cluster's time that came with the request's read index.
    pub(crate) time: ClusterTime,
}

/// The client's view of why a session does not prove its user.
fn unproven(e: session::Unproven) -> ClientError {
    match e {
        session::Unproven::Locked(_) => ClientError::new(ErrorKind::Locked, e.to_string()),
        session::Unproven::Unavailable(_) => {
            ClientError::new(ErrorKind::Unavailable, e.to_string())
        }
        _ => ClientError::new(ErrorKind::Unauthenticated, format!("{e}; log in again")),
    }
}

/// The role-table action an operation needs from `caller`. Login and
/// cluster info need no session and are not mapped.
pub fn action_for(username: &Username, op: &Operation) -> Option<Action> {
    use Operation as O;
    Some(match op {
        O::Login { .. } | O::LoginChallenge { .. } | O::LoginMfa { .. } | O::ClusterInfo => {
            return None
        }
        O::SetOwnMfa { .. } => Action::ChangeOwnMfa,
        O::ResetMfa { .. }
        | O::SetApprovalKey { .. }
        | O::GenerateQuorumToken { .. }
        | O::ApproveQuorumToken { .. }
        | O::DeleteQuorumToken { .. }
        | O::SetQuorumValue { .. }
        | O::QuorumStatus => Action::ManageQuorum,
        O::Logout { .. } => Action::EndOwnSessions,
        O::AddNode { .. } => Action::AddNode,
        O::RemoveNode { .. } => Action::RemoveNode,
        O::RotateDomainKey => Action::RotateDomainKey,
        O::TransferLeadership { .. } => Action::TransferLeadership,
        O::MemberStatus => Action::ReadClusterInfo,
        O::ChangeOwnPassword { .. } => Action::ChangeOwnPassword,
        O::ChangePassword { username: u, .. } if u == username => Action::ChangeOwnPassword,
        O::ChangePassword { .. } => Action::ChangeOtherPassword,
        O::CreateUser { .. } => Action::CreateUser,
        O::DeleteUser { .. } => Action::DeleteUser,
        O::ListUsers { .. } => Action::ListUsers,
        O::UnlockUser { .. } => Action::UnlockUser,
        O::GenerateKey { .. }
        | O::ImportKey { .. }
        | O::ImportPublicKey { .. }
        | O::UnwrapKey { .. }
        | O::DeriveKey { .. } => Action::CreateKey,
        O::GetKey { .. } | O::ListKeys { .. } => Action::ListKeys,
        O::SetKeyAttribute {
            attribute: hsm_proto::KeyAttribute::Flag(KeyFlag::Trusted, _),
            ..
        } => Action::SetTrusted,
        O::WrapKey { .. }
        | O::ShareKey { .. }
        | O::UnshareKey { .. }
        | O::SetKeyAttribute { .. }
        | O::DeleteKey { .. }
        | O::RotateKey { .. }
        | O::SetMinDecryptionVersion { .. }
        | O::TrimKeyVersions { .. } => Action::ManageKey,
        O::ExportPublicKey { .. }
        | O::Sign { .. }
        | O::SignMany { .. }
        | O::Verify { .. }
        | O::Encrypt { .. }
        | O::Decrypt { .. }
        | O::KeyVersions { .. }
        | O::EncryptBatch { .. }
        | O::DecryptBatch { .. }
        | O::SignBatch { .. }
        | O::VerifyBatch { .. }
        | O::GenerateDataKey { .. } => Action::UseKey,
        O::Digest { .. } | O::Random { .. } => Action::KeylessCrypto,
        O::CreateBackup
        | O::ListBackups
        | O::DescribeBackup { .. }
        | O::VerifyBackup { .. }
        | O::DeleteBackup { .. }
        | O::KeepBackup { .. }
        | O::AuditHead => Action::ManageBackups,
    })
}

fn action_of(caller: &Caller, op: &Operation) -> Action {
    // Login and cluster info are served before a session is checked.
    action_for(&caller.username, op).unwrap_or(Action::ReadClusterInfo)
}

/// What a role is, in words (its short name `admin` is also a user's).
fn role_name(role: Role) -> &'static str {
    match role {
        Role::Preco => "the unactivated precrypto officer",
        Role::Co => "crypto officer",
        Role::Cu => "crypto user",
        Role::Au => "appliance user",
    }
}

/// This node's wall clock, ms since the Unix epoch. Sessions are not
/// judged by it on a follower: see [`crate::cluster_time`].
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Runs CPU-heavy work (Argon2id, key generation, RSA) off the async
/// workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ClientError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ClientError::internal("a worker task failed"))
}
