//! Why an event was refused.

use serde::{Deserialize, Serialize};

use crate::protocol::Version;
use crate::quorum::Intent;
use crate::{Actor, Attempt, KeyChange, KeyFlag, KeyId, KeySpec, NodeId, Role, TokenId, Username};

/// The typed reason a state machine refused an event. A refused event changes
/// nothing; every replica refuses it for the same reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The signature does not verify under the signer's key.
    #[error("event signature from {0} does not verify")]
    BadSignature(NodeId),
    /// The request id was used before for a different request.
    #[error("request id was already used for a different request")]
    RequestIdReused,
    /// The signer is not a cluster member.
    #[error("event signed by {0}, which is not a cluster member")]
    UnknownSigner(NodeId),
    /// The event does not point back at the previous event.
    #[error("event does not extend the event chain")]
    ChainMismatch,
    /// The cluster has not been initialized.
    #[error("cluster is not initialized")]
    NotInitialized,
    /// The cluster was initialized already.
    #[error("cluster is already initialized")]
    AlreadyInitialized,
    /// The cluster's `admin` has not set its password yet.
    #[error("cluster is not activated: the admin user must change its password first")]
    NotActivated,
    /// The actor is not a user of this cluster.
    #[error("unknown actor {0}")]
    UnknownActor(String),
    /// The actor's role does not allow this.
    #[error("role {role} may not {action}")]
    RoleDenied {
        /// The actor's role.
        role: Role,
        /// What it tried.
        action: String,
    },
    /// The actor is locked out.
    #[error("user {0} is locked")]
    Locked(Username),
    /// As many login attempts as failures allow are being checked for the
    /// user; one more waits until they are (transient).
    #[error("user {0} has as many logins in progress as are allowed at once; try again shortly")]
    LoginsInProgress(Username),
    /// A user of that name exists already.
    #[error("user {0} exists already")]
    UserExists(Username),
    /// No user of that name.
    #[error("no user named {0}")]
    UserNotFound(Username),
    /// The role cannot be given to a new user.
    #[error("cannot create a user with role {0}")]
    InvalidRole(Role),
    /// The user owns keys and cannot be deleted.
    #[error("user {user} owns {keys} keys and cannot be deleted")]
    UserOwnsKeys {
        /// The user.
        user: Username,
        /// How many keys it owns.
        keys: usize,
    },
    /// A user may not delete itself.
    #[error("a user cannot delete itself")]
    CannotDeleteSelf,
    /// The user is not locked.
    #[error("user {0} is not locked")]
    NotLocked(Username),
    /// The key id is in use.
    #[error("key {0} exists already")]
    KeyExists(KeyId),
    /// No such key, or not visible to the actor.
    #[error("no key {0}")]
    KeyNotFound(KeyId),
    /// Only the key's owner may do this.
    #[error("only the owner of key {key} may {action}")]
    NotOwner {
        /// The key.
        key: KeyId,
        /// What was tried.
        action: String,
    },
    /// The owner has a key with this label already.
    #[error("label {0:?} is already used by another key of this owner")]
    LabelNotUnique(String),
    /// The attribute may only move one way.
    #[error("attribute {} may not change in that direction", .0.name())]
    AttributeRatchet(KeyFlag),
    /// The key spec is not supported.
    #[error("unsupported key type or size")]
    InvalidKeySpec,
    /// A label or id attribute is too long, or material is missing.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// Shares go to other crypto users.
    #[error("cannot share a key with {0}: {1}")]
    InvalidShare(Username, String),
    /// A node with that id exists already.
    #[error("node {0} is already a member")]
    NodeExists(NodeId),
    /// No member with that id.
    #[error("node {0} is not a member")]
    NodeNotFound(NodeId),
    /// Cluster size limits.
    #[error("membership change refused: {0}")]
    Membership(String),
    /// A password hash that is not an Argon2id PHC string.
    #[error("password hash is not an Argon2id PHC string")]
    InvalidPasswordHash,
    /// The key policy refuses it (`hsm_state::policy`).
    #[error("{0}")]
    KeyPolicy(KeyPolicyError),
    /// The domain key rules refuse it (`hsm_state::domain`).
    #[error("{0}")]
    DomainKey(DomainKeyError),
    /// A login's outcome came after its reservation expired (or names none
    /// the user has): it is not recorded, and the login must not be
    /// answered (transient: a new attempt is reserved afresh).
    #[error("the login attempt of user {0} was not checked in time; try again")]
    LoginExpired(Username),
    /// One's own password changes only with proof of the current one
    /// ([`EventBody::OwnPasswordChanged`](crate::EventBody::OwnPasswordChanged)).
    #[error("changing one's own password needs the current password (change-own-password)")]
    CurrentPasswordNeeded,
    // Typed reasons, recorded from Raft protocol 2 on. The worded variants
    // above (UnknownActor, RoleDenied, NotOwner, InvalidKey, InvalidShare,
    // Membership) are what protocol 1 records, so they stay for records
    // and backups of that version ([`Rejection::as_of`]).
    /// The actor is not a user or member of this cluster, or may not act
    /// as it does.
    #[error("unknown actor {0}")]
    NoSuchActor(Actor),
    /// The operator of a member's host may only unlock users.
    #[error("{} may only unlock users", Actor::Operator(*.0))]
    OperatorOnlyUnlocks(NodeId),
    /// The actor's role does not allow this.
    #[error("role {role} may not {}", .attempt.as_str())]
    Denied {
        /// The actor's role.
        role: Role,
        /// What it tried.
        attempt: Attempt,
    },
    /// Only the key's owner may do this.
    #[error("only the owner of key {key} may {}", .change.as_str())]
    OwnerOnly {
        /// The key.
        key: KeyId,
        /// What was tried.
        change: KeyChange,
    },
    /// The key's material, public key, label or certificate is wrong.
    #[error("invalid key: {0}")]
    KeyInvalid(KeyDefect),
    /// Shares go to other crypto users, once.
    #[error("cannot share a key with {0}: {1}")]
    ShareRefused(Username, ShareDefect),
    /// Cluster size, distinct member keys, removals.
    #[error("membership change refused: {0}")]
    MembershipRefused(MembershipDefect),
    /// Only the leader raises the Raft protocol, as itself, in an event it
    /// signs.
    #[error("{0} may not raise the Raft protocol: only the leader does, as itself")]
    RaiseNotByLeader(Actor),
    /// A protocol raise must name the version after the cluster's.
    #[error("the cluster runs Raft protocol {current}; it cannot be raised to {asked}")]
    ProtocolNotRaised {
        /// The version the cluster runs.
        current: Version,
        /// The version the event named.
        asked: Version,
    },
    // From Raft protocol 3 on.
    /// The event is of a kind the cluster's Raft protocol does not have.
    #[error("this needs Raft protocol {needs} and the cluster runs {cluster}: upgrade every member to a build that speaks {needs}")]
    NeedsProtocol {
        /// The version that brought the event.
        needs: Version,
        /// The version the cluster runs.
        cluster: Version,
    },
    /// An officer operation under a quorum value above 1 came without a
    /// live token of its initiator for exactly it, approved often enough.
    #[error("to {intent} needs the approval of {needed} crypto officers (the quorum of service {}); your best live token for it has {approved}: get one with `hsm quorum token-sign generate` and have it approved", .intent.service())]
    QuorumNeeded {
        /// The operation.
        intent: Box<Intent>,
        /// Approvals it needs.
        needed: u8,
        /// Valid approvals the best matching token has.
        approved: u8,
    },
    /// No such quorum token.
    #[error("no quorum token {0}")]
    TokenNotFound(TokenId),
    /// The token expired.
    #[error("quorum token {0} expired; generate a new one")]
    TokenExpired(TokenId),
    /// An approval is refused.
    #[error("approval by {0} refused: {1}")]
    ApprovalRefused(Username, ApprovalDefect),
    /// A quorum value is refused.
    #[error("quorum value refused: {0}")]
    QuorumRefused(QuorumDefect),
    /// Not an Ed25519 public key anyone could sign with (a small-order or
    /// non-canonical point).
    #[error("the key given for {0} is not a usable Ed25519 public key")]
    WeakPublicKey(Username),
    /// An officer holds as many live tokens as it may.
    #[error("you hold {max} live quorum tokens already; delete one or let one expire")]
    TooManyTokens {
        /// The most an officer may hold.
        max: usize,
    },
    // From Raft protocol 4 on.
    /// A key version change is refused.
    #[error("key {0}: {1}")]
    KeyVersionRefused(KeyId, VersionDefect),
    /// Key use counts that are not in order, not distinct, zero, or too
    /// many for one event.
    #[error("malformed key use counts: in (key, user, kind) order, distinct, each from 1, at most {max}")]
    KeyUsesMalformed {
        /// The most one event carries.
        max: usize,
    },
}

/// Why a key version change, or the use of a version, is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum VersionDefect {
    /// A rotation must name the version after the latest.
    #[error("the latest version is {latest}; a rotation makes version {}", .latest.saturating_add(1))]
    NotNext {
        /// The key's latest version.
        latest: u32,
    },
    /// A public key alone has no material of the cluster's to renew.
    #[error("a public key alone cannot be rotated; import the new one as a new key")]
    PublicOnly,
    /// As many versions are kept as a key may keep.
    #[error("it keeps {max} versions already; trim the old ones first (hsm key trim-versions)")]
    TooMany {
        /// The most a key keeps.
        max: u32,
    },
    /// The version is not one the key keeps.
    #[error("version {version} is not kept: versions {oldest} to {latest} are")]
    NotKept {
        /// The version asked for.
        version: u32,
        /// The oldest version kept.
        oldest: u32,
        /// The latest version.
        latest: u32,
    },
    /// The version is older than the key's minimum decryption version.
    #[error("version {version} is below the minimum decryption version {min}")]
    BelowMinimum {
        /// The version asked for.
        version: u32,
        /// The minimum decryption version.
        min: u32,
    },
    /// Trimming may not delete versions that may still decrypt.
    #[error("versions below {below} cannot be trimmed while the minimum decryption version is {min}: raise it first")]
    TrimAboveMinimum {
        /// The oldest version to keep.
        below: u32,
        /// The minimum decryption version.
        min: u32,
    },
}

/// Why an approval, or an approval key, is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ApprovalDefect {
    /// Only crypto officers approve and hold approval keys.
    #[error("not a crypto officer")]
    NotOfficer,
    /// The approver has no approval key registered.
    #[error("no approval key registered (hsm user change-quorum token-sign register)")]
    NoApprovalKey,
    /// The signature does not verify under the approver's key.
    #[error("the signature does not verify with the approver's registered key over this token")]
    BadSignature,
    /// The approver approved this token already.
    #[error("already approved this token")]
    AlreadyApproved,
    /// Another officer's approval key: one person would count twice.
    #[error("the key is another officer's approval key")]
    KeyInUse,
}

/// Why a quorum value is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum QuorumDefect {
    /// Outside 1 to the maximum.
    #[error("a quorum value is 1 to {max}, not {value}")]
    OutOfRange {
        /// The value asked for.
        value: u8,
        /// The largest allowed.
        max: u8,
    },
    /// More approvals than there are officers with approval keys: the
    /// cluster would lock itself out.
    #[error("{value} approvals needed but only {approvers} crypto officers have approval keys")]
    TooFewApprovers {
        /// The value asked for, or the largest in force.
        value: u8,
        /// Officers with approval keys after the change.
        approvers: usize,
    },
}

impl Rejection {
    /// The rejection as Raft protocol `version` records it: from version 2
    /// on, itself; in version 1, the typed reasons that version recorded
    /// in words become those words (the same words, letter for letter, so
    /// replicas of builds before and after typing agree on every record
    /// and digest while the cluster runs version 1).
    #[must_use]
    pub fn as_of(self, version: Version) -> Rejection {
        if version >= 2 {
            return self;
        }
        match self {
            Rejection::NoSuchActor(actor) => Rejection::UnknownActor(actor.to_string()),
            Rejection::OperatorOnlyUnlocks(node) => {
                Rejection::UnknownActor(format!("{} may only unlock users", Actor::Operator(node)))
            }
            Rejection::Denied { role, attempt } => Rejection::RoleDenied {
                role,
                action: attempt.as_str().into(),
            },
            Rejection::OwnerOnly { key, change } => Rejection::NotOwner {
                key,
                action: change.as_str().into(),
            },
            Rejection::KeyInvalid(d) => Rejection::InvalidKey(d.to_string()),
            Rejection::ShareRefused(user, d) => Rejection::InvalidShare(user, d.to_string()),
            Rejection::MembershipRefused(d) => Rejection::Membership(d.to_string()),
            other => other,
        }
    }
}

/// What is wrong with a key an event records. The words are frozen:
/// protocol 1 records carry them ([`Rejection::as_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum KeyDefect {
    /// Re-wrapped material that is empty or too large.
    #[error("key material size")]
    MaterialSize,
    /// New material larger than a key blob may be.
    #[error("key material too large")]
    MaterialTooLarge,
    /// No material.
    #[error("no key material")]
    NoMaterial,
    /// A pair without a public key, or a secret key with one.
    #[error("a public key is required for key pairs and only for them")]
    PublicKeyMismatch,
    /// A label or id attribute over its limit.
    #[error("label or id attribute too long")]
    AttributeTooLong,
    /// A certificate on a key that is not a pair.
    #[error("only a key pair has a certificate")]
    CertificateWithoutPair,
    /// A certificate over its limit.
    #[error("certificate too long")]
    CertificateTooLong,
}

/// Why a key cannot be shared with, or unshared from, a user. The words
/// are frozen: protocol 1 records carry them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ShareDefect {
    /// Keys are shared with crypto users only.
    #[error("not a crypto user")]
    NotCryptoUser,
    /// The user owns the key.
    #[error("owner of the key")]
    Owner,
    /// Shared with the user already.
    #[error("already shared")]
    AlreadyShared,
    /// Not shared with the user.
    #[error("not shared")]
    NotShared,
}

/// Why a membership change is refused. The words are frozen: protocol 1
/// records carry them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum MembershipDefect {
    /// More founding members than a cluster may have.
    #[error("a cluster has at most {max} members")]
    TooManyFounders {
        /// The most members a cluster may have.
        max: usize,
    },
    /// Two founders share an id, a signing key or a TLS key.
    #[error("founding members need distinct ids, signing keys and TLS keys")]
    FoundersNotDistinct,
    /// The id was a removed member's.
    #[error("node id {0} belonged to a removed member; ids are never reused")]
    IdReused(NodeId),
    /// The cluster is full.
    #[error("the cluster has {max} members already")]
    Full {
        /// The most members a cluster may have.
        max: usize,
    },
    /// Another member has that signing key.
    #[error("signing key already used by a member")]
    SigningKeyInUse,
    /// Another member has that TLS key.
    #[error("TLS key already used by a member")]
    TlsKeyInUse,
    /// A member signing its own removal.
    #[error("a node cannot sign its own removal; move leadership first")]
    OwnRemoval,
    /// The last member.
    #[error("cannot remove the last member")]
    LastMember,
    /// An X25519 key nothing could be sealed to.
    #[error("node {0}'s agreement key is a low-order point: nothing could be sealed to it")]
    LowOrderAgreementKey(NodeId),
}

/// Why a domain key rotation step was refused. Typed, so every replica and
/// every version words it alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum DomainKeyError {
    /// A member was removed and the domain key not rotated yet: new key
    /// material waits for the new generation (the removed member knows the
    /// current one).
    #[error("the domain key is being rotated after a member's removal; try again in a moment")]
    RotationDue,
    /// Too many generations in use at once.
    #[error("{0} domain key generations are in use; the next rotation waits for re-wrapping")]
    TooManyGenerations(usize),
    /// A rotation must name the generation after the current one.
    #[error("the next domain key generation is {expected}, not {got}")]
    WrongGeneration {
        /// The generation a rotation must name now.
        expected: u32,
        /// The one it named.
        got: u32,
    },
    /// The previous rotation is still re-wrapping key material (a rotation
    /// after a member's removal does not wait).
    #[error("the previous domain key rotation is still re-wrapping key material; try again once it is done")]
    RotationInProgress,
    /// The new key must be sealed to exactly the members of the moment.
    #[error("a new domain key must be sealed to exactly the current members (a member was added or removed meanwhile); try again")]
    MembersChanged,
    /// Nodes rotate on their own only after a member was removed.
    #[error("no member was removed since the last rotation")]
    NotDue,
    /// The generation is not in use (never was, or was retired).
    #[error("domain key generation {0} is not in use")]
    NotLive(u32),
    /// Key material is recorded (created or re-wrapped) only under the
    /// current generation.
    #[error("key material is wrapped only under the current domain key generation {0}; try again")]
    NotCurrent(u32),
    /// A generation is retired only once no key's material uses it.
    #[error("domain key generation {generation} still wraps the material of {keys} keys")]
    StillInUse {
        /// The generation.
        generation: u32,
        /// How many keys still use it.
        keys: usize,
    },
    /// More keys in one re-wrap event than allowed, or a key twice.
    #[error("a re-wrap event names at most {max} distinct keys")]
    TooManyKeys {
        /// The most allowed.
        max: usize,
    },
    /// A sealed key of an unknown version or the wrong size.
    #[error("the domain key sealed to node {0} is malformed")]
    MalformedSealedKey(NodeId),
}

/// Why the key policy refused an operation or a change. One variant per
/// rule, each typed, so every replica and every version words it alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum KeyPolicyError {
    /// The key's attribute for this use is false.
    #[error("key {key} does not allow {} (its {} attribute is false)", use_name(*.flag), .flag.name())]
    NotAllowed {
        /// The key.
        key: KeyId,
        /// The attribute the use needs.
        flag: KeyFlag,
    },
    /// Two capabilities that may not be on one key.
    #[error("a key may not have both {} and {}: whatever one produces the other would turn into plaintext", .0.name(), .1.name())]
    Conflict(KeyFlag, KeyFlag),
    /// A trusted key's attributes are frozen.
    #[error(
        "key {0} is trusted: its attributes change only after a crypto officer removes trusted"
    )]
    TrustedKeyFrozen(KeyId),
    /// A key cannot be created trusted.
    #[error("only a crypto officer may mark a key trusted, after it exists")]
    CreatedTrusted,
    /// The key is not extractable.
    #[error("key {0} is not extractable")]
    NotExtractable(KeyId),
    /// A wrap-with-trusted key and a wrapping key that is not trusted.
    #[error(
        "key {key} may only be wrapped by a trusted key, and key {wrapping_key} is not trusted"
    )]
    NeedsTrustedWrappingKey {
        /// The key to wrap.
        key: KeyId,
        /// The wrapping key.
        wrapping_key: KeyId,
    },
    /// A sensitive key and a wrapping key whose material may be known
    /// outside the cluster.
    #[error("key {key} is sensitive and key {wrapping_key} may be known outside the cluster (imported, derived, unwrapped from outside data, or once not sensitive): it wraps sensitive keys only once a crypto officer marks it trusted")]
    WrappingKeyKnownOutside {
        /// The key to wrap.
        key: KeyId,
        /// The wrapping key.
        wrapping_key: KeyId,
    },
    /// Unwrap asked for a usage the wrapped key did not have.
    #[error("the wrapped key does not allow {}; an unwrapped copy may only have fewer usages", .0.name())]
    UnwrapWidens(KeyFlag),
    /// Unwrap named another key type than the wrapped key's.
    #[error("the wrapped key is {wrapped}, not {asked}")]
    UnwrapSpecMismatch {
        /// The type the wrapped key carries.
        wrapped: KeySpec,
        /// The type the caller named.
        asked: KeySpec,
    },
    /// The provenance of a new key does not fit how it was made.
    #[error("the provenance of a new key does not fit how it was made")]
    InconsistentProvenance,
    /// A public key alone ([`crate::KeyOrigin::PublicImported`]) cannot
    /// have or use what needs the private half (sign, decrypt, unwrap,
    /// derive), and has no material to wrap (extractable).
    #[error("a public key alone has no private half in the cluster: it cannot be used for {}", use_name(*.0))]
    PublicKeyOnly(KeyFlag),
}

/// What an attribute allows, in words.
fn use_name(flag: KeyFlag) -> &'static str {
    match flag {
        KeyFlag::Encrypt => "encryption",
        KeyFlag::Decrypt => "decryption",
        KeyFlag::Sign => "signing",
        KeyFlag::Verify => "verification",
        KeyFlag::Wrap => "wrapping",
        KeyFlag::Unwrap => "unwrapping",
        KeyFlag::Derive => "key derivation",
        KeyFlag::Extractable => "export",
        KeyFlag::Sensitive | KeyFlag::Trusted | KeyFlag::WrapWithTrusted => flag.name(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Action;

    fn user(name: &str) -> Username {
        Username::new(name).expect("valid name")
    }

    /// Every typed reason, as protocol 1 records it: the very words the
    /// builds before typing wrote (copied from them). A replica of such a
    /// build must compute the same records and digest, so none of these
    /// may ever change.
    #[test]
    fn protocol_1_records_typed_reasons_in_the_words_it_always_did() {
        let worded = |r: Rejection| r.as_of(1);
        assert_eq!(
            worded(Rejection::NoSuchActor(Actor::User(user("mallory")))),
            Rejection::UnknownActor("user mallory".into())
        );
        assert_eq!(
            worded(Rejection::NoSuchActor(Actor::Node(NodeId(4)))),
            Rejection::UnknownActor("node n4".into())
        );
        assert_eq!(
            worded(Rejection::OperatorOnlyUnlocks(NodeId(2))),
            Rejection::UnknownActor("the operator of node n2 may only unlock users".into())
        );
        let denied = |attempt| match worded(Rejection::Denied {
            role: Role::Cu,
            attempt,
        }) {
            Rejection::RoleDenied {
                role: Role::Cu,
                action,
            } => action,
            other => panic!("{other:?}"),
        };
        let actions = [
            (Action::ReadClusterInfo, "read cluster info"),
            (Action::ChangeOwnPassword, "change its own password"),
            (Action::EndOwnSessions, "end its own sessions"),
            (Action::ListUsers, "list users"),
            (Action::CreateUser, "create users"),
            (Action::DeleteUser, "delete users"),
            (Action::ChangeOtherPassword, "change other users' passwords"),
            (Action::UnlockUser, "unlock users"),
            (Action::SetTrusted, "set the trusted attribute"),
            (Action::AddNode, "add nodes"),
            (Action::RemoveNode, "remove nodes"),
            (Action::RotateDomainKey, "rotate the domain key"),
            (Action::CloneToNode, "clone to nodes"),
            (Action::ListKeys, "list keys"),
            (Action::CreateKey, "create keys"),
            (Action::UseKey, "use keys"),
            (Action::ManageKey, "manage keys"),
            (Action::KeylessCrypto, "use crypto"),
            (Action::ManageBackups, "manage backups"),
            (Action::TransferLeadership, "move leadership"),
        ];
        // Every action but the two protocol 3 brought, which no protocol 1
        // record can name.
        let protocol_3 = [Action::ManageQuorum, Action::ChangeOwnMfa];
        assert_eq!(actions.len(), Action::ALL.len() - protocol_3.len());
        for (action, words) in actions {
            assert_eq!(denied(Attempt::Action(action)), words);
        }
        assert_eq!(
            denied(Attempt::EndOtherSessions),
            "end another user's sessions"
        );
        assert_eq!(
            denied(Attempt::ChangeOtherPasswordAsOwn),
            "change another user's password as its own"
        );
        assert_eq!(denied(Attempt::UnlockSelf), "unlock itself");
        for (change, words) in [
            (KeyChange::Share, "share"),
            (KeyChange::Unshare, "unshare"),
            (KeyChange::Wrap, "wrap it"),
            (KeyChange::Delete, "delete it"),
            (KeyChange::SetAttributes, "set its attributes"),
        ] {
            assert_eq!(
                worded(Rejection::OwnerOnly {
                    key: KeyId(9),
                    change
                }),
                Rejection::NotOwner {
                    key: KeyId(9),
                    action: words.into()
                }
            );
        }
        for (defect, words) in [
            (KeyDefect::MaterialSize, "key material size"),
            (KeyDefect::MaterialTooLarge, "key material too large"),
            (KeyDefect::NoMaterial, "no key material"),
            (
                KeyDefect::PublicKeyMismatch,
                "a public key is required for key pairs and only for them",
            ),
            (
                KeyDefect::AttributeTooLong,
                "label or id attribute too long",
            ),
            (
                KeyDefect::CertificateWithoutPair,
                "only a key pair has a certificate",
            ),
            (KeyDefect::CertificateTooLong, "certificate too long"),
        ] {
            assert_eq!(
                worded(Rejection::KeyInvalid(defect)),
                Rejection::InvalidKey(words.into())
            );
        }
        for (defect, words) in [
            (ShareDefect::NotCryptoUser, "not a crypto user"),
            (ShareDefect::Owner, "owner of the key"),
            (ShareDefect::AlreadyShared, "already shared"),
            (ShareDefect::NotShared, "not shared"),
        ] {
            assert_eq!(
                worded(Rejection::ShareRefused(user("bob"), defect)),
                Rejection::InvalidShare(user("bob"), words.into())
            );
        }
        for (defect, words) in [
            (
                MembershipDefect::TooManyFounders { max: 28 },
                "a cluster has at most 28 members",
            ),
            (
                MembershipDefect::FoundersNotDistinct,
                "founding members need distinct ids, signing keys and TLS keys",
            ),
            (
                MembershipDefect::IdReused(NodeId(3)),
                "node id n3 belonged to a removed member; ids are never reused",
            ),
            (
                MembershipDefect::Full { max: 28 },
                "the cluster has 28 members already",
            ),
            (
                MembershipDefect::SigningKeyInUse,
                "signing key already used by a member",
            ),
            (
                MembershipDefect::TlsKeyInUse,
                "TLS key already used by a member",
            ),
            (
                MembershipDefect::OwnRemoval,
                "a node cannot sign its own removal; move leadership first",
            ),
            (
                MembershipDefect::LastMember,
                "cannot remove the last member",
            ),
            (
                MembershipDefect::LowOrderAgreementKey(NodeId(5)),
                "node n5's agreement key is a low-order point: nothing could be sealed to it",
            ),
        ] {
            assert_eq!(
                worded(Rejection::MembershipRefused(defect)),
                Rejection::Membership(words.into())
            );
        }
    }

    #[test]
    fn from_protocol_2_on_a_typed_reason_stays_typed_and_reads_the_same() {
        let typed = Rejection::OwnerOnly {
            key: KeyId(9),
            change: KeyChange::Wrap,
        };
        assert_eq!(typed.clone().as_of(2), typed);
        assert_eq!(typed.to_string(), typed.clone().as_of(1).to_string());
        let other = Rejection::KeyNotFound(KeyId(1));
        assert_eq!(other.clone().as_of(1), other);
    }
}
