//! The records the state is made of.

use std::collections::{BTreeMap, BTreeSet};

use hsm_proto::{
    ClusterId, EndedSession, EventHash, KeyAttributes, KeyId, KeyProvenance, KeySpec, NodeId,
    Rejection, RequestId, Role, SealedDomainKey, Username,
};
use serde::{Deserialize, Serialize};

/// Most sessions of one user ended one by one that are remembered each
/// ([`User::end_sessions`]), so a user that logs in and out in a loop
/// grows nothing.
pub const MAX_ENDED_SESSIONS: usize = 64;

/// How long past its expiry an ended session is remembered: a later leader
/// whose clock is behind the one that forgot it must still refuse it.
pub const ENDED_SESSION_MARGIN_MS: u64 = 5 * 60 * 1000;

/// Consecutive failed logins that lock a user until a crypto officer unlocks it.
pub const MAX_FAILED_LOGINS: u8 = 5;

/// How long a login reservation counts (as in progress and as a failure)
/// without an outcome, in ms of leader time between the event that made
/// it and the event that judges it. Then it no longer counts, and an
/// outcome naming it is refused.
///
/// Longer than any honest login takes between its two writes: a node
/// checks a reserved password within its request's deadline (10 s) and
/// records the outcome within its own deadline (5 s, see
/// `hsm_node`'s `LOGIN_OUTCOME_DEADLINE`); the rest is margin for
/// forwarding and a leader change. Short enough that attempts whose node
/// died or missed a deadline hold a user back for half a minute, not for
/// good. Expiry gives a guesser nothing: a node reveals nothing about a
/// password until its outcome is recorded, and that outcome needs the
/// reservation still live.
pub const LOGIN_RESERVATION_TTL_MS: u64 = 30_000;

/// Cluster-wide facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// Fixed at init.
    pub cluster_id: ClusterId,
    /// Leader time of the init event, ms since the Unix epoch.
    pub created_ms: u64,
    /// Whether `admin` has set its password.
    pub activated: bool,
    /// Ids of members removed so far. An id is never given to another node:
    /// certificates name node ids, and an old host's certificate must not
    /// speak for a new member.
    pub retired_nodes: BTreeSet<NodeId>,
    /// The TLS key pins of members removed from this cluster: a member
    /// being removed stays in Raft's membership until that change commits,
    /// and the others may still talk to it then, but only to its own key.
    pub retired_transport_keys: BTreeMap<NodeId, [u8; 32]>,
    /// The domain key generations in use (see [`crate::domain`]).
    pub domain: DomainKeys,
}

/// The domain key generations of a cluster. The keys themselves never
/// appear here in the clear: only a check value of each, and for a
/// generation made by rotation, the key sealed to each member of that
/// moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainKeys {
    /// The generation new material, sessions and backups use.
    pub current: u32,
    /// Every generation still in use (the current one, and older ones that
    /// still wrap some key's material while a rotation re-wraps it).
    pub generations: BTreeMap<u32, DomainGeneration>,
    /// A member was removed since the current generation was made: the
    /// leader rotates as soon as no re-wrap is in progress.
    pub rotation_due: bool,
}

/// One domain key generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainGeneration {
    /// Check value of its key (a blake3 subkey of it).
    pub check: [u8; 32],
    /// Its key sealed to each member when it was made. Empty for a
    /// cluster's first generation: founding members got it at init,
    /// members added later get the current generation when they join.
    pub sealed: BTreeMap<NodeId, SealedDomainKey>,
}

impl DomainKeys {
    /// The first generation (0) of a new cluster, with check value `check`.
    pub fn first(check: [u8; 32]) -> DomainKeys {
        DomainKeys {
            current: 0,
            generations: BTreeMap::from([(
                0,
                DomainGeneration {
                    check,
                    sealed: BTreeMap::new(),
                },
            )]),
            rotation_due: false,
        }
    }

    /// Whether only the current generation is in use: no rotation is
    /// re-wrapping material.
    pub fn settled(&self) -> bool {
        self.generations.len() == 1
    }
}

/// The single record that changes with every event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Set by the init event.
    pub cluster: Option<ClusterInfo>,
    /// Hash of the last event that extended the chain.
    pub head: EventHash,
    /// Events that extended the chain so far.
    pub events: u64,
}

impl Default for Meta {
    fn default() -> Self {
        Meta {
            cluster: None,
            head: EventHash::GENESIS,
            events: 0,
        }
    }
}

/// A user account. `Debug` leaves out the password hash.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Login name.
    pub username: Username,
    /// What it may do.
    pub role: Role,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Bumped on every password change; sessions issued under an older epoch
    /// are void.
    pub password_epoch: u64,
    /// Consecutive logins checked and refused (since the last success or
    /// unlock). Attempts still being checked are in `reservations`; see
    /// [`User::failed_logins`] for both.
    pub failures: u8,
    /// Attempts reserved whose outcome has not been recorded, oldest
    /// first. At most [`MAX_FAILED_LOGINS`] minus `failures`: an attempt is
    /// reserved only below the limit. Expired ones are dropped whenever
    /// the record is next written, and never counted.
    pub reservations: Vec<LoginReservation>,
    /// Set by the first login attempt after [`MAX_FAILED_LOGINS`] failures;
    /// cleared by a crypto officer. See [`User::is_locked`].
    pub locked: bool,
    /// Leader time of creation.
    pub created_ms: u64,
    /// Bumped when the user ends all its sessions (a logout everywhere):
    /// sessions issued under an older epoch are void.
    pub session_epoch: u64,
    /// Sessions the user ended one by one (logouts), at most
    /// [`MAX_ENDED_SESSIONS`], each until [`ENDED_SESSION_MARGIN_MS`] past
    /// its expiry; see [`User::end_sessions`].
    pub ended_sessions: Vec<EndedSession>,
    /// Every session of this epoch that expires at or before this time is
    /// ended too: what `ended_sessions` could not keep when it was full.
    pub ended_expiring_by_ms: u64,
}

/// A key and its metadata. The material is sealed under the domain key.
/// `Debug` leaves out the material.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    /// Id.
    pub id: KeyId,
    /// Type and size.
    pub spec: KeySpec,
    /// The crypto user that created it.
    pub owner: Username,
    /// Crypto users it is shared with (may use, may not manage).
    pub shared_with: BTreeSet<Username>,
    /// Attributes.
    pub attributes: KeyAttributes,
    /// Where its material has been; fixed at creation.
    pub provenance: KeyProvenance,
    /// The domain key generation `wrapped_material` is wrapped under.
    pub domain_generation: u32,
    /// Material sealed under the cluster domain key.
    #[serde(with = "serde_bytes")]
    pub wrapped_material: Vec<u8>,
    /// DER public key of a pair; empty for secret keys.
    #[serde(with = "serde_bytes")]
    pub public_key: Vec<u8>,
    /// Leader time of creation.
    pub created_ms: u64,
    /// X.509 certificate (DER) of the pair's public key; empty for none.
    #[serde(with = "serde_bytes")]
    pub certificate: Vec<u8>,
}

/// The remembered outcome of a write, so a retry with the same request id is
/// answered without applying twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// The request id.
    pub request_id: RequestId,
    /// Position in the chain (the value of `Meta::events` when applied); the
    /// oldest records are forgotten first.
    pub seq: u64,
    /// blake3 of the request's actor and body, so a different request
    /// reusing the id is told apart from a retry.
    pub fingerprint: [u8; 32],
    /// The outcome the first time.
    pub result: Result<(), Rejection>,
}

/// The request id under which the outcome of the login attempt reserved
/// as `reservation` is recorded, when the password was checked against
/// `user` as it is now: one id per attempt and account, so however many
/// copies of an attempt are checked (a client's retries, through any
/// node, arriving in any order), one outcome is recorded and the others
/// are answered with it. A password change or a re-creation of the
/// account gives another id, which finds the reservation gone.
#[must_use]
pub fn login_outcome_id(reservation: RequestId, user: &User) -> RequestId {
    let mut h = blake3::Hasher::new_derive_key("hsm-cluster login outcome v1");
    h.update(&reservation.0);
    h.update(user.username.as_str().as_bytes());
    h.update(&[0]);
    h.update(&user.created_ms.to_le_bytes());
    h.update(&user.password_epoch.to_le_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&h.finalize().as_bytes()[..16]);
    RequestId(id)
}

/// What is recorded for a login attempt ([`crate::State::login_outcome`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    /// The password was right: the count was reset.
    Right,
    /// The password was wrong: a failure counted.
    Wrong,
    /// An outcome was refused (the attempt had expired, the account had
    /// changed): nothing about any password checked under it may be told.
    Refused,
}

/// A login attempt recorded before its password is checked
/// ([`hsm_proto::EventBody::LoginFailed`]), waiting for its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginReservation {
    /// The request id of the event that made it; the outcome names it.
    pub id: RequestId,
    /// Leader time of that event, ms since the Unix epoch.
    pub at_ms: u64,
}

impl LoginReservation {
    /// Whether it still counts at leader time `now_ms`: younger than
    /// [`LOGIN_RESERVATION_TTL_MS`]. A time before it was made (a new
    /// leader whose clock is behind) counts as no time at all.
    pub fn is_live(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.at_ms) < LOGIN_RESERVATION_TTL_MS
    }
}

impl User {
    /// A new account, created at leader time `created_ms`: no failed
    /// logins, not locked, no session ended.
    pub fn new(username: Username, role: Role, password_hash: String, created_ms: u64) -> User {
        User {
            username,
            role,
            password_hash,
            password_epoch: 0,
            failures: 0,
            reservations: Vec::new(),
            locked: false,
            created_ms,
            session_epoch: 0,
            ended_sessions: Vec::new(),
            ended_expiring_by_ms: 0,
        }
    }

    /// Whether a session of this user with token id `token_id`, issued
    /// under `session_epoch` and expiring at `expires_ms`, was ended by a
    /// logout. (Expiry, password changes and the rest are the session
    /// check's.)
    pub fn session_ended(&self, token_id: &[u8; 16], session_epoch: u64, expires_ms: u64) -> bool {
        session_epoch != self.session_epoch
            || expires_ms <= self.ended_expiring_by_ms
            || self.ended_sessions.iter().any(|e| e.token_id == *token_id)
    }

    /// Ends session `token` of this user at leader time `now_ms`, or with
    /// `None` every session issued so far. What is remembered stays
    /// bounded and never lets an ended session count again: an ended
    /// session is kept until [`ENDED_SESSION_MARGIN_MS`] past its expiry
    /// (a later leader's clock may be behind); when [`MAX_ENDED_SESSIONS`]
    /// are kept, the one that expires first leaves the list for
    /// `ended_expiring_by_ms`, which ends with it every session of the
    /// user that expires no later (the oldest ones, as every session lasts
    /// as long). Ending a session twice ends it once.
    pub fn end_sessions(&mut self, token: Option<EndedSession>, now_ms: u64) {
        let forgettable =
            |e: &EndedSession| e.expires_ms.saturating_add(ENDED_SESSION_MARGIN_MS) <= now_ms;
        self.ended_sessions.retain(|e| !forgettable(e));
        let Some(t) = token else {
            self.session_epoch += 1;
            self.ended_sessions.clear();
            self.ended_expiring_by_ms = 0;
            return;
        };
        if forgettable(&t)
            || t.expires_ms <= self.ended_expiring_by_ms
            || self.ended_sessions.iter().any(|e| e.token_id == t.token_id)
        {
            return;
        }
        if self.ended_sessions.len() >= MAX_ENDED_SESSIONS {
            let first = self
                .ended_sessions
                .iter()
                .map(|e| e.expires_ms)
                .min()
                .unwrap_or(0);
            self.ended_expiring_by_ms = self.ended_expiring_by_ms.max(first);
            let by = self.ended_expiring_by_ms;
            self.ended_sessions.retain(|e| e.expires_ms > by);
            if t.expires_ms <= by {
                return;
            }
        }
        self.ended_sessions.push(t);
    }

    /// Whether the user is locked out: flagged, or at the failure limit
    /// with every attempt checked and failed. Needs no time: five failures
    /// leave no room for a reservation, and expiry never removes a failure.
    pub fn is_locked(&self) -> bool {
        self.locked || self.failures >= MAX_FAILED_LOGINS
    }

    /// The reservations that still count at leader time `now_ms`.
    pub fn live_reservations(&self, now_ms: u64) -> impl Iterator<Item = &LoginReservation> {
        self.reservations.iter().filter(move |r| r.is_live(now_ms))
    }

    /// Attempts in progress at leader time `now_ms`.
    pub fn pending_logins(&self, now_ms: u64) -> u8 {
        // At most MAX_FAILED_LOGINS reservations exist.
        u8::try_from(self.live_reservations(now_ms).count()).unwrap_or(u8::MAX)
    }

    /// Consecutive failed logins at leader time `now_ms`: the checked
    /// ones and the attempts still in progress (each counts as a failure
    /// until its outcome says otherwise, or it expires).
    pub fn failed_logins(&self, now_ms: u64) -> u8 {
        self.failures.saturating_add(self.pending_logins(now_ms))
    }

    /// Whether, at leader time `now_ms`, the failure limit is reached with
    /// attempts still being checked: a new attempt waits (one of them may
    /// succeed, or expire).
    pub fn logins_busy(&self, now_ms: u64) -> bool {
        let pending = self.pending_logins(now_ms);
        !self.locked && pending > 0 && self.failures.saturating_add(pending) >= MAX_FAILED_LOGINS
    }

    /// Why a new login attempt (one not reserved yet) is refused at leader
    /// time `now_ms`, if it is: the user is locked (flagged, or at the
    /// limit of failures with none in progress), or at the limit with
    /// attempts still being checked. `apply` answers such an attempt's
    /// `LoginFailed` the same way (or, at the limit with none in progress,
    /// locks the user, after which this says locked), so a node asks this
    /// of its caught-up replica and refuses without a Raft entry: guesses
    /// against a locked or busy user cost the cluster nothing.
    pub fn refuses_new_attempt(&self, now_ms: u64) -> Option<Rejection> {
        if self.is_locked() {
            Some(Rejection::Locked(self.username.clone()))
        } else if self.logins_busy(now_ms) {
            Some(Rejection::LoginsInProgress(self.username.clone()))
        } else {
            None
        }
    }

    /// Drops the reservations that no longer count at leader time
    /// `now_ms`.
    pub fn drop_expired_reservations(&mut self, now_ms: u64) {
        self.reservations.retain(|r| r.is_live(now_ms));
    }
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("username", &self.username)
            .field("role", &self.role)
            .field("password_epoch", &self.password_epoch)
            .field("failures", &self.failures)
            .field("reservations", &self.reservations)
            .field("locked", &self.locked)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .field("spec", &self.spec)
            .field("owner", &self.owner)
            .field("shared_with", &self.shared_with)
            .field("attributes", &self.attributes)
            .field("provenance", &self.provenance)
            .finish_non_exhaustive()
    }
}
