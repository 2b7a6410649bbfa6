//! Signed events: the only thing the Raft log carries.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::quorum::{Intent, Service};
use crate::{
    ClusterId, EventHash, KeyAttribute, KeyAttributes, KeyId, KeyProvenance, KeySpec, NodeId,
    RequestId, Role, Signature, TokenId, Username,
};

/// A domain key generation sealed to one member's X25519 agreement key
/// (`NodeRecord::agreement_key`), for one cluster, member id and
/// generation: how a joining node receives the domain key, and how a
/// rotation hands the new generation to every member through the log.
/// Holds no secret in the clear; only that member opens it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SealedDomainKey {
    /// Format version, 1.
    pub version: u8,
    /// The sender's ephemeral X25519 public key.
    pub ephemeral_public: [u8; 32],
    /// AES-256-GCM-SIV nonce.
    pub nonce: [u8; 12],
    /// The domain key encrypted, with its tag.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for SealedDomainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedDomainKey")
            .field("version", &self.version)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// One key's material wrapped again under the current domain key
/// generation ([`EventBody::KeyMaterialRewrapped`]).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewrappedMaterial {
    /// The key.
    pub key: KeyId,
    /// Its material wrapped under the generation the event names.
    #[serde(with = "serde_bytes")]
    pub wrapped_material: Vec<u8>,
}

/// A cluster member as every replica knows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Raft node id.
    pub id: NodeId,
    /// ed25519 public key the node signs events with.
    pub signing_key: [u8; 32],
    /// x25519 public key the domain key is wrapped to for this node.
    pub agreement_key: [u8; 32],
    /// The pin of the node's TLS key: blake3 of its certificate's
    /// SubjectPublicKeyInfo. Members and clients accept a connection as
    /// this node only with that key: a certificate the same CA issued to
    /// anyone else for the same id is refused.
    pub transport_key: [u8; 32],
    /// Availability zone label that clients see.
    pub zone: String,
    /// Address (`host:port`) other members and clients reach it at.
    pub address: String,
}

/// Who asked for a change.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Actor {
    /// An authenticated user.
    User(Username),
    /// A node acting on its own (cluster init, login bookkeeping).
    Node(NodeId),
    /// Someone with access to member `NodeId`'s host, through that node's
    /// operator socket (`hsm-node unlock-user`). It may only unlock users
    /// (the rule is in `hsm_state`'s apply).
    Operator(NodeId),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::User(u) => write!(f, "user {u}"),
            Actor::Node(n) => write!(f, "node {n}"),
            Actor::Operator(n) => write!(f, "the operator of node {n}"),
        }
    }
}

/// What changes. Secrets never appear here in plain form: passwords only as
/// Argon2id PHC strings, key material only wrapped under the cluster domain
/// key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventBody {
    /// The cluster's first event: its id, its first member and the
    /// unactivated `admin` user.
    ClusterInitialized {
        /// New cluster id.
        cluster_id: ClusterId,
        /// The initializing node, which also signs this event.
        first_node: NodeRecord,
        /// Further founding members the operator set up together with the
        /// first (each holds the domain key from init); usually empty, as
        /// members are normally added later with a crypto officer's
        /// approval.
        other_nodes: Vec<NodeRecord>,
        /// Argon2id PHC string of the initial `admin` password.
        admin_password_hash: String,
        /// Check value of the first domain key generation (a blake3 subkey
        /// of it), so a member can tell that the domain key it holds is
        /// this cluster's.
        domain_check: [u8; 32],
    },
    /// A crypto officer created a user.
    UserCreated {
        /// New user's name.
        username: Username,
        /// New user's role (never [`Role::Preco`]).
        role: Role,
        /// Argon2id PHC string.
        password_hash: String,
    },
    /// A crypto officer deleted a user.
    UserDeleted {
        /// The user.
        username: Username,
    },
    /// A password changed (by its user, or by a crypto officer).
    PasswordChanged {
        /// Whose password.
        username: Username,
        /// Argon2id PHC string of the new password.
        password_hash: String,
    },
    /// A login attempt, recorded before its password is checked: a
    /// reservation, named by this event's request id and stamped with its
    /// leader time. It counts as a failure (and as in progress) until the
    /// check's outcome is recorded or it expires, so at most five checks
    /// are answered however many attempts arrive at once. The attempt
    /// after five failures locks the user.
    LoginFailed {
        /// The user named in the attempt.
        username: Username,
    },
    /// The password of an attempt was wrong: its reservation is no longer
    /// in progress and stays counted as a failure. Refused when the
    /// reservation expired or does not exist.
    LoginRejected {
        /// The user.
        username: Username,
        /// The request id of the attempt's [`EventBody::LoginFailed`].
        reservation: RequestId,
    },
    /// The password of an attempt was right: the failures before it no
    /// longer count (attempts still in progress do). Refused when the
    /// reservation expired or does not exist.
    LoginSucceeded {
        /// The user.
        username: Username,
        /// The request id of the attempt's [`EventBody::LoginFailed`].
        reservation: RequestId,
    },
    /// A crypto officer unlocked a locked user.
    UserUnlocked {
        /// The user.
        username: Username,
    },
    /// A crypto user created (generated, imported or unwrapped) a key, which
    /// it owns.
    KeyCreated {
        /// Id chosen by the leader.
        key: KeyId,
        /// Type and size.
        spec: KeySpec,
        /// Initial attributes.
        attributes: KeyAttributes,
        /// Where its material has been; fixed for the key's life.
        provenance: KeyProvenance,
        /// The domain key generation the material is wrapped under (bound
        /// into the wrapping as associated data).
        domain_generation: u32,
        /// Key material sealed under the cluster domain key.
        #[serde(with = "serde_bytes")]
        wrapped_material: Vec<u8>,
        /// Public half of a pair, DER encoded; empty for secret keys.
        #[serde(with = "serde_bytes")]
        public_key: Vec<u8>,
        /// Refuse the key if its owner already has a key with this label.
        unique_label: bool,
    },
    /// The owner shared a key with another crypto user.
    KeyShared {
        /// The key.
        key: KeyId,
        /// The user it is shared with.
        with: Username,
    },
    /// The owner stopped sharing a key.
    KeyUnshared {
        /// The key.
        key: KeyId,
        /// The user it was shared with.
        with: Username,
    },
    /// One attribute changed.
    KeyAttributeSet {
        /// The key.
        key: KeyId,
        /// The change.
        attribute: KeyAttribute,
    },
    /// The owner deleted a key.
    KeyDeleted {
        /// The key.
        key: KeyId,
    },
    /// The owner wrapped a key whose material was never known outside the
    /// cluster under a key that may be (a trusted key someone outside may
    /// hold): from now on the key counts as known outside, so it no longer
    /// protects sensitive keys on its own.
    KeyWrappedOut {
        /// The key that was wrapped.
        key: KeyId,
    },
    /// A crypto officer approved a new member.
    NodeAdded {
        /// The new member.
        node: NodeRecord,
    },
    /// A crypto officer removed a member.
    NodeRemoved {
        /// The member.
        node: NodeId,
    },
    /// A new domain key generation replaces the current one for new key
    /// material, sessions and backups. Its key travels only sealed to each
    /// member of the moment, so a removed member never learns it. Asked
    /// for by a crypto officer, or made by the leader after a member was
    /// removed.
    DomainKeyRotated {
        /// The new generation: the current one plus one.
        generation: u32,
        /// Check value of the new key.
        check: [u8; 32],
        /// The new key sealed to every member, by member id.
        sealed: std::collections::BTreeMap<NodeId, SealedDomainKey>,
    },
    /// The leader wrapped some keys' material again under the current
    /// generation (the material itself is unchanged).
    KeyMaterialRewrapped {
        /// The current generation.
        generation: u32,
        /// The keys and their material under it.
        keys: Vec<RewrappedMaterial>,
    },
    /// A generation no key's material uses any more is forgotten: members
    /// drop its key.
    DomainKeyRetired {
        /// The generation.
        generation: u32,
    },
    /// A user logged out: its session `token` ends on every node, or with
    /// `token` `None` every session it holds (issued before this event).
    SessionsEnded {
        /// The user, who is the actor.
        username: Username,
        /// The one session that ends, or `None` for all of them.
        token: Option<EndedSession>,
    },
    /// A user changed its own password, its current one checked: the
    /// node reserved the check as a login attempt (`LoginFailed`, named
    /// `reservation`) and found the password right, so this event takes
    /// that reservation as a successful login would, and sets the new
    /// password. The user is the actor.
    OwnPasswordChanged {
        /// The user.
        username: Username,
        /// Argon2id PHC string of the new password.
        password_hash: String,
        /// The reserved check of the current password.
        reservation: RequestId,
    },
    /// The cluster runs Raft protocol `version` from this event on (the
    /// leader raises it once every member speaks it). From Raft protocol
    /// 2 on; a build that does not speak `version` stops before applying
    /// it (`hsm_state::protocol`).
    ProtocolRaised {
        /// The new version.
        version: crate::protocol::Version,
    },
    // From Raft protocol 3 on (`EventBody::since`).
    /// An officer's approval key set or cleared: by the officer itself
    /// for its first one, its password checked; otherwise as
    /// [`Intent::SetApprovalKey`] under the largest quorum value.
    ApprovalKeySet {
        /// The officer.
        username: Username,
        /// Ed25519 public key; `None` clears it.
        key: Option<[u8; 32]>,
        /// The reserved check of the officer's current password, when it
        /// sets its own (as [`EventBody::OwnPasswordChanged`]).
        reservation: Option<RequestId>,
    },
    /// A user's second factor set, changed or cleared: by the user, its
    /// current password checked under `reservation` (as
    /// [`EventBody::OwnPasswordChanged`]); or cleared by an officer
    /// (`reservation` `None`, [`Intent::ResetMfa`] under the user
    /// service's quorum).
    MfaKeySet {
        /// The user.
        username: Username,
        /// Ed25519 public key; `None` clears it.
        key: Option<[u8; 32]>,
        /// The reserved check of the user's current password, when the
        /// user sets its own.
        reservation: Option<RequestId>,
    },
    /// An officer asked for a quorum token: the token's id is this
    /// event's request id.
    QuorumTokenIssued {
        /// What the token approves.
        intent: Intent,
    },
    /// An officer approved a token: its signature over the token's
    /// statement, made with its registered approval key.
    QuorumApproved {
        /// The token.
        token: TokenId,
        /// The approving officer.
        approver: Username,
        /// Ed25519 signature over `Token::statement`.
        signature: Signature,
    },
    /// Its initiator deleted a token.
    QuorumTokenDeleted {
        /// The token.
        token: TokenId,
    },
    /// A service's quorum value changed ([`Intent::SetQuorum`]).
    QuorumValueSet {
        /// The service.
        service: Service,
        /// Approvals its operations need from now on (1: the officer alone).
        value: u8,
    },
    // From Raft protocol 4 on (`EventBody::since`).
    /// The owner rotated a key: new material, generated inside the
    /// cluster, becomes its latest version (the one that signs and
    /// encrypts); the versions before it stay for decryption and
    /// verification at or above the key's minimum decryption version.
    KeyRotated {
        /// The key.
        key: KeyId,
        /// The new version: the latest one plus one.
        version: u32,
        /// The domain key generation the new material is wrapped under.
        domain_generation: u32,
        /// The new material sealed under the cluster domain key.
        #[serde(with = "serde_bytes")]
        wrapped_material: Vec<u8>,
        /// The new public half of a pair, DER; empty for secret keys.
        #[serde(with = "serde_bytes")]
        public_key: Vec<u8>,
    },
    /// The owner set the oldest version of a key that may still decrypt
    /// and verify.
    KeyMinDecryptionSet {
        /// The key.
        key: KeyId,
        /// The version.
        version: u32,
    },
    /// The owner deleted a key's versions older than `below` (at most its
    /// minimum decryption version): their material is gone for good.
    KeyVersionsTrimmed {
        /// The key.
        key: KeyId,
        /// The oldest version kept.
        below: u32,
    },
    /// The leader wrapped the material of some keys' older versions again
    /// under the current generation (as [`EventBody::KeyMaterialRewrapped`]
    /// does for their latest versions).
    KeyVersionsRewrapped {
        /// The current generation.
        generation: u32,
        /// The versions and their material under it.
        versions: Vec<RewrappedVersion>,
    },
    /// A member's count of what users did with keys through it since its
    /// last count (the member is the actor): operations by key, user and
    /// kind, never the data. Each member that served any writes one every
    /// `backup.key_use_interval_s`, so the audit trail shows who used
    /// which key how often. Changes no state.
    KeyUsesCounted {
        /// The counts, in (key, user, kind) order, each from 1, at most
        /// [`MAX_KEY_USES`].
        uses: Vec<KeyUses>,
    },
}

/// Most counts one [`EventBody::KeyUsesCounted`] carries (a member with
/// more writes several).
pub const MAX_KEY_USES: usize = 512;

/// How many operations of one kind a user did with one key through one
/// member ([`EventBody::KeyUsesCounted`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeyUses {
    /// The key.
    pub key: KeyId,
    /// The user.
    pub user: Username,
    /// What it did.
    pub kind: KeyUseKind,
    /// How many times (items of a batch each count).
    pub count: u64,
}

/// What a user did with a key ([`KeyUses`]). Counts are ordered by it
/// (`hsm_state::versions::check_key_uses`): new kinds go at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum KeyUseKind {
    /// Signed (or computed a MAC).
    Sign,
    /// Verified a signature (or a MAC).
    Verify,
    /// Encrypted.
    Encrypt,
    /// Decrypted.
    Decrypt,
    /// Wrapped another key with it.
    Wrap,
    /// Unwrapped a key with it.
    Unwrap,
    /// Derived a key by agreement with it.
    Derive,
    /// Encrypted a new data key with it.
    DataKey,
}

impl KeyUseKind {
    /// The name people use: `sign`, `verify`, `encrypt`, `decrypt`,
    /// `wrap`, `unwrap`, `derive`, `data-key`.
    pub fn name(self) -> &'static str {
        match self {
            KeyUseKind::Sign => "sign",
            KeyUseKind::Verify => "verify",
            KeyUseKind::Encrypt => "encrypt",
            KeyUseKind::Decrypt => "decrypt",
            KeyUseKind::Wrap => "wrap",
            KeyUseKind::Unwrap => "unwrap",
            KeyUseKind::Derive => "derive",
            KeyUseKind::DataKey => "data-key",
        }
    }
}

/// One older key version's material wrapped again under the current domain
/// key generation ([`EventBody::KeyVersionsRewrapped`]).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewrappedVersion {
    /// The key.
    pub key: KeyId,
    /// The version.
    pub version: u32,
    /// Its material wrapped under the generation the event names.
    #[serde(with = "serde_bytes")]
    pub wrapped_material: Vec<u8>,
}

/// A session ended before its expiry (a logout), remembered until then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EndedSession {
    /// The token's random id (its claims name it).
    pub token_id: [u8; 16],
    /// When the token would have expired, on the cluster's time: after
    /// that it needs no remembering.
    pub expires_ms: u64,
}

impl EventBody {
    /// Short name of the event kind, for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::ClusterInitialized { .. } => "cluster-initialized",
            EventBody::UserCreated { .. } => "user-created",
            EventBody::UserDeleted { .. } => "user-deleted",
            EventBody::PasswordChanged { .. } => "password-changed",
            EventBody::LoginFailed { .. } => "login-failed",
            EventBody::LoginRejected { .. } => "login-rejected",
            EventBody::LoginSucceeded { .. } => "login-succeeded",
            EventBody::UserUnlocked { .. } => "user-unlocked",
            EventBody::KeyCreated { .. } => "key-created",
            EventBody::KeyShared { .. } => "key-shared",
            EventBody::KeyUnshared { .. } => "key-unshared",
            EventBody::KeyAttributeSet { .. } => "key-attribute-set",
            EventBody::KeyDeleted { .. } => "key-deleted",
            EventBody::KeyWrappedOut { .. } => "key-wrapped-out",
            EventBody::NodeAdded { .. } => "node-added",
            EventBody::NodeRemoved { .. } => "node-removed",
            EventBody::DomainKeyRotated { .. } => "domain-key-rotated",
            EventBody::KeyMaterialRewrapped { .. } => "key-material-rewrapped",
            EventBody::DomainKeyRetired { .. } => "domain-key-retired",
            EventBody::SessionsEnded { .. } => "sessions-ended",
            EventBody::OwnPasswordChanged { .. } => "own-password-changed",
            EventBody::ProtocolRaised { .. } => "protocol-raised",
            EventBody::ApprovalKeySet { .. } => "approval-key-set",
            EventBody::MfaKeySet { .. } => "mfa-key-set",
            EventBody::QuorumTokenIssued { .. } => "quorum-token-issued",
            EventBody::QuorumApproved { .. } => "quorum-approved",
            EventBody::QuorumTokenDeleted { .. } => "quorum-token-deleted",
            EventBody::QuorumValueSet { .. } => "quorum-value-set",
            EventBody::KeyRotated { .. } => "key-rotated",
            EventBody::KeyMinDecryptionSet { .. } => "key-min-decryption-set",
            EventBody::KeyVersionsTrimmed { .. } => "key-versions-trimmed",
            EventBody::KeyVersionsRewrapped { .. } => "key-versions-rewrapped",
            EventBody::KeyUsesCounted { .. } => "key-uses-counted",
        }
    }

    /// The Raft protocol version that brought this kind of event: a leader
    /// proposes it, and `apply` accepts it, only in a cluster that runs
    /// that version or a newer one (a replica of an older build could not
    /// even decode it). Every variant is listed.
    pub fn since(&self) -> crate::protocol::Version {
        match self {
            EventBody::KeyRotated { .. }
            | EventBody::KeyMinDecryptionSet { .. }
            | EventBody::KeyVersionsTrimmed { .. }
            | EventBody::KeyVersionsRewrapped { .. }
            | EventBody::KeyUsesCounted { .. } => 4,
            EventBody::ApprovalKeySet { .. }
            | EventBody::MfaKeySet { .. }
            | EventBody::QuorumTokenIssued { .. }
            | EventBody::QuorumApproved { .. }
            | EventBody::QuorumTokenDeleted { .. }
            | EventBody::QuorumValueSet { .. } => 3,
            // Raft protocol 2 brought it, and it is what moves a cluster
            // of any version to the next (its own rule:
            // `hsm_state::protocol::check_raise`).
            EventBody::ProtocolRaised { .. }
            | EventBody::ClusterInitialized { .. }
            | EventBody::UserCreated { .. }
            | EventBody::UserDeleted { .. }
            | EventBody::PasswordChanged { .. }
            | EventBody::LoginFailed { .. }
            | EventBody::LoginRejected { .. }
            | EventBody::LoginSucceeded { .. }
            | EventBody::UserUnlocked { .. }
            | EventBody::KeyCreated { .. }
            | EventBody::KeyShared { .. }
            | EventBody::KeyUnshared { .. }
            | EventBody::KeyAttributeSet { .. }
            | EventBody::KeyDeleted { .. }
            | EventBody::KeyWrappedOut { .. }
            | EventBody::NodeAdded { .. }
            | EventBody::NodeRemoved { .. }
            | EventBody::DomainKeyRotated { .. }
            | EventBody::KeyMaterialRewrapped { .. }
            | EventBody::DomainKeyRetired { .. }
            | EventBody::SessionsEnded { .. }
            | EventBody::OwnPasswordChanged { .. } => 1,
        }
    }
}

/// Debug shows the kind and the names involved, never hashes or wrapped
/// material, so an event can be logged as it is.
impl fmt::Debug for EventBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct(self.kind());
        match self {
            EventBody::ClusterInitialized {
                cluster_id,
                first_node,
                ..
            } => d
                .field("cluster_id", cluster_id)
                .field("first_node", &first_node.id),
            EventBody::UserCreated { username, role, .. } => {
                d.field("username", username).field("role", role)
            }
            EventBody::UserDeleted { username }
            | EventBody::PasswordChanged { username, .. }
            | EventBody::LoginFailed { username }
            | EventBody::UserUnlocked { username } => d.field("username", username),
            EventBody::LoginRejected {
                username,
                reservation,
            }
            | EventBody::LoginSucceeded {
                username,
                reservation,
            }
            | EventBody::OwnPasswordChanged {
                username,
                reservation,
                ..
            } => d
                .field("username", username)
                .field("reservation", reservation),
            EventBody::KeyCreated { key, spec, .. } => d.field("key", key).field("spec", spec),
            EventBody::KeyShared { key, with } | EventBody::KeyUnshared { key, with } => {
                d.field("key", key).field("with", with)
            }
            EventBody::KeyAttributeSet { key, attribute } => {
                d.field("key", key).field("attribute", attribute)
            }
            EventBody::KeyDeleted { key } | EventBody::KeyWrappedOut { key } => d.field("key", key),
            EventBody::NodeAdded { node } => d.field("node", &node.id),
            EventBody::NodeRemoved { node } => d.field("node", node),
            EventBody::DomainKeyRotated {
                generation, sealed, ..
            } => d
                .field("generation", generation)
                .field("members", &sealed.keys().collect::<Vec<_>>()),
            EventBody::KeyMaterialRewrapped { generation, keys } => d
                .field("generation", generation)
                .field("keys", &keys.iter().map(|k| k.key).collect::<Vec<_>>()),
            EventBody::DomainKeyRetired { generation } => d.field("generation", generation),
            EventBody::ProtocolRaised { version } => d.field("version", version),
            EventBody::SessionsEnded { username, token } => {
                d.field("username", username).field("all", &token.is_none())
            }
            EventBody::ApprovalKeySet { username, key, .. }
            | EventBody::MfaKeySet { username, key, .. } => {
                d.field("username", username).field("set", &key.is_some())
            }
            EventBody::QuorumTokenIssued { intent } => d.field("intent", intent),
            EventBody::QuorumApproved {
                token, approver, ..
            } => d.field("token", token).field("approver", approver),
            EventBody::QuorumTokenDeleted { token } => d.field("token", token),
            EventBody::QuorumValueSet { service, value } => {
                d.field("service", service).field("value", value)
            }
            EventBody::KeyRotated { key, version, .. }
            | EventBody::KeyMinDecryptionSet { key, version } => {
                d.field("key", key).field("version", version)
            }
            EventBody::KeyVersionsTrimmed { key, below } => {
                d.field("key", key).field("below", below)
            }
            EventBody::KeyVersionsRewrapped {
                generation,
                versions,
            } => d.field("generation", generation).field(
                "versions",
                &versions
                    .iter()
                    .map(|v| (v.key, v.version))
                    .collect::<Vec<_>>(),
            ),
            EventBody::KeyUsesCounted { uses } => d.field(
                "uses",
                &uses
                    .iter()
                    .map(|u| (u.key, &u.user, u.kind, u.count))
                    .collect::<Vec<_>>(),
            ),
        };
        d.finish_non_exhaustive()
    }
}

/// An event before signing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Idempotency id: a retried write carries the same id.
    pub request_id: RequestId,
    /// The leader's clock when it built the event, in ms since the Unix
    /// epoch. The state machine never reads a clock itself.
    pub timestamp_ms: u64,
    /// Who asked for it.
    pub actor: Actor,
    /// Hash of the previous signed event in the log.
    pub prev_hash: EventHash,
    /// What changes.
    pub body: EventBody,
}

/// An event with the ed25519 signature of the node that built it, over the
/// canonical encoding of [`Event`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedEvent {
    /// The event.
    pub event: Event,
    /// The node that signed it.
    pub signer: NodeId,
    /// Signature over `codec::encode(&event)`.
    pub signature: Signature,
}

/// A leader's signature over the chain hashes of the events of one log
/// entry, in order: its word, checked once, for every event in the entry
/// that it signed itself (each still carries its own signature).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchSeal {
    /// The node that sealed the entry.
    pub signer: NodeId,
    /// Signature over the batch statement (`hsm_state::seal_batch`).
    pub signature: Signature,
}
