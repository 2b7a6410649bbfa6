//! Why an event was refused.

use serde::{Deserialize, Serialize};

use crate::{KeyFlag, KeyId, KeySpec, NodeId, Role, Username};

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
