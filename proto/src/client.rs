//! The client protocol: what the SDK and the `hsm` command line send to a
//! node, and what they get back.
//!
//! One request per QUIC stream under the `hsm-client/1` ALPN: the client
//! writes one length-prefixed [`Request`] frame, the node answers with one
//! [`Response`] frame. Every request names its idempotency id; a write sent
//! again with the same id (to any node) is applied once and answered with
//! the first outcome.
//!
//! Consistency: every response carries the node's applied log index (after
//! a write, at least the write's own index). A request with
//! [`Request::min_index`] is served only once the node has applied that
//! index, so a client that passes the highest index it has seen reads its
//! own writes on every node. Beyond that, every request but cluster info is
//! linearizable: the node first learns from the leader (confirmed by a
//! quorum) what was committed before the request arrived and serves only
//! once it has applied that.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::mechanism::{
    DeriveMechanism, DigestAlgorithm, EncryptMechanism, SignMechanism, WrapMechanism,
};
use crate::{
    BackupId, BackupInfo, BackupList, BackupVerified, ClusterId, KeyAttribute, KeyAttributes,
    KeyFlag, KeyId, KeyProvenance, KeySpec, NodeId, NodeRecord, Rejection, RequestId, Role,
    Username,
};

/// Secret bytes on the wire: a password, a session token, plaintext key
/// material or decrypted data. Zeroized on drop; `Debug` shows only the
/// length.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps bytes (which the caller should not keep another copy of).
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }

    /// The secret bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The bytes as UTF-8 text (passwords), if they are.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.as_bytes().to_vec())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s.into_bytes())
    }
}

impl From<Vec<u8>> for Secret {
    fn from(v: Vec<u8>) -> Secret {
        Secret(v)
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes redacted>)", self.0.len())
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        let buf = serde_bytes::ByteBuf::deserialize(d)?;
        Ok(Secret(buf.into_vec()))
    }
}

/// One request from a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The session token from [`Reply::LoggedIn`]; `None` before login.
    pub session: Option<Secret>,
    /// Idempotency id. A write retried with the same id, on any node, is
    /// applied once. Reads ignore it.
    pub request_id: RequestId,
    /// Serve only once this node has applied this log index (0: no wait).
    pub min_index: u64,
    /// What to do.
    pub op: Operation,
}

/// Most users or keys one listing page holds.
pub const MAX_PAGE: u32 = 1000;

/// Most keys a node looks at for one page of [`Operation::ListKeys`]: the
/// work one request does under the state's lock is bounded, whatever the
/// filter and however many keys the cluster holds.
pub const MAX_PAGE_SCAN: u32 = 10 * MAX_PAGE;

/// Which keys [`Operation::ListKeys`] returns. Every field set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFilter {
    /// Exact label.
    pub label: Option<String>,
    /// Exact id attribute bytes.
    pub id: Option<Vec<u8>>,
    /// Key type and size.
    pub spec: Option<KeySpec>,
    /// Owner.
    pub owner: Option<Username>,
    /// Boolean attributes and the value each must have.
    pub flags: Vec<(KeyFlag, bool)>,
}

impl KeyFilter {
    /// Whether `key` passes the filter.
    pub fn matches(&self, key: &KeyInfo) -> bool {
        self.label
            .as_ref()
            .is_none_or(|l| *l == key.attributes.label)
            && self.id.as_ref().is_none_or(|i| *i == key.attributes.id)
            && self.spec.is_none_or(|s| s == key.spec)
            && self.owner.as_ref().is_none_or(|o| *o == key.owner)
            && self
                .flags
                .iter()
                .all(|(flag, value)| key.attributes.flag(*flag) == *value)
    }
}

/// Everything a client can ask. Which role may do what is the role table
/// in `hsm-state`'s `authz` module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operation {
    /// Log in; the reply carries a session token any node accepts. A wrong
    /// password is recorded cluster-wide; the fifth in a row locks the user.
    Login {
        /// User name.
        username: Username,
        /// Password.
        password: Secret,
    },
    /// Members, leader, zones and activation. Needs no session; key and
    /// user counts only with one.
    ClusterInfo,
    /// Approve a new member (crypto officer). The node must already hold a
    /// certificate from the cluster CA for its id.
    AddNode {
        /// The new member's id, public keys, zone and address.
        node: NodeRecord,
    },
    /// Remove a member (crypto officer). The leader then rotates the
    /// domain key on its own.
    RemoveNode {
        /// The member.
        node: NodeId,
    },
    /// Replace the domain key with a new generation, sealed to the current
    /// members only (crypto officer). Every session ends; the leader then
    /// re-wraps every key's material under it and retires the old one.
    RotateDomainKey,
    /// Change another user's password (crypto officer). One's own needs
    /// the current password: [`Operation::ChangeOwnPassword`].
    ChangePassword {
        /// Whose password.
        username: Username,
        /// The new password.
        new_password: Secret,
    },
    /// Create a user (crypto officer).
    CreateUser {
        /// Name.
        username: Username,
        /// Role: crypto officer, crypto user or appliance user.
        role: Role,
        /// Initial password.
        password: Secret,
    },
    /// Delete a user that owns no keys (crypto officer).
    DeleteUser {
        /// Name.
        username: Username,
    },
    /// List users (crypto officer), one page: in name order, at most
    /// `limit` of them (the node gives at most [`MAX_PAGE`]).
    ListUsers {
        /// Start after this name: the previous page's `next`; `None` for
        /// the first page.
        after: Option<Username>,
        /// Most users wanted.
        limit: u32,
    },
    /// Unlock a locked user (crypto officer).
    UnlockUser {
        /// Name.
        username: Username,
    },
    /// Generate a key in the HSM; the caller owns it.
    GenerateKey {
        /// Type and size.
        spec: KeySpec,
        /// Initial attributes.
        attributes: KeyAttributes,
        /// Refuse if the caller already owns a key with this label.
        unique_label: bool,
    },
    /// Import plaintext key material. The key is marked as known outside
    /// the cluster ([`KeyProvenance`]`::local` false), whatever its
    /// attributes say.
    ImportKey {
        /// Type and size.
        spec: KeySpec,
        /// Attributes.
        attributes: KeyAttributes,
        /// Raw bytes for AES and generic secrets; PKCS#8 DER for private
        /// keys.
        material: Secret,
        /// As for [`Operation::GenerateKey`].
        unique_label: bool,
    },
    /// Import a key that [`Operation::WrapKey`] wrapped (in this cluster or
    /// another one): the copy gets the type, usages, one-way attributes
    /// and provenance the wrapped key carries (`hsm_state::policy`).
    UnwrapKey {
        /// The unwrapping key (needs the `unwrap` attribute).
        wrapping_key: KeyId,
        /// How it was wrapped.
        mechanism: WrapMechanism,
        /// The wrapped material.
        wrapped: Vec<u8>,
        /// Type and size of the wrapped key: refused unless it is what the
        /// wrapped key carries; `None` takes what it carries (PKCS#11's
        /// `C_UnwrapKey` names at most a type).
        spec: Option<KeySpec>,
        /// Label and id of the new key; usages, if any are set, narrow
        /// the carried ones (none set: the carried ones); `sensitive`,
        /// `wrap_with_trusted` true and `extractable` false tighten them.
        attributes: KeyAttributes,
        /// As for [`Operation::GenerateKey`].
        unique_label: bool,
    },
    /// Export a key wrapped under another key in the HSM (owner only; the
    /// key must be extractable).
    WrapKey {
        /// The wrapping key (needs the `wrap` attribute).
        wrapping_key: KeyId,
        /// The key to export.
        key: KeyId,
        /// How to wrap it.
        mechanism: WrapMechanism,
    },
    /// Agree a secret with a peer's public key and keep a new key derived
    /// from it in the HSM.
    DeriveKey {
        /// Our private key (X25519, P-256 or P-384, with `derive`).
        key: KeyId,
        /// Key derivation.
        mechanism: DeriveMechanism,
        /// The peer's public key, SubjectPublicKeyInfo DER.
        peer_public_key: Vec<u8>,
        /// Context bytes for the key derivation.
        context: Vec<u8>,
        /// The new key's type and size (AES or generic secret).
        spec: KeySpec,
        /// The new key's attributes.
        attributes: KeyAttributes,
        /// As for [`Operation::GenerateKey`].
        unique_label: bool,
    },
    /// One key's metadata.
    GetKey {
        /// The key.
        key: KeyId,
    },
    /// Keys visible to the caller that match the filter, one page: in id
    /// order, at most `limit` of them (the node gives at most
    /// [`MAX_PAGE`], and looks at no more than [`MAX_PAGE_SCAN`] keys for
    /// one page, so a page may be short, even empty, with more to come).
    ListKeys {
        /// The filter.
        filter: KeyFilter,
        /// Start after this key: the previous page's `next`; `None` for
        /// the first page.
        after: Option<KeyId>,
        /// Most keys wanted.
        limit: u32,
    },
    /// The public half of a pair, DER and PEM.
    ExportPublicKey {
        /// The key.
        key: KeyId,
    },
    /// Share a key with another crypto user (owner only).
    ShareKey {
        /// The key.
        key: KeyId,
        /// The user.
        with: Username,
    },
    /// Stop sharing a key (owner only).
    UnshareKey {
        /// The key.
        key: KeyId,
        /// The user.
        with: Username,
    },
    /// Change one attribute (owner; `trusted` by a crypto officer).
    SetKeyAttribute {
        /// The key.
        key: KeyId,
        /// The change.
        attribute: KeyAttribute,
    },
    /// Delete a key (owner only).
    DeleteKey {
        /// The key.
        key: KeyId,
    },
    /// Sign a message (or compute an HMAC).
    Sign {
        /// The key (needs `sign`).
        key: KeyId,
        /// Mechanism.
        mechanism: SignMechanism,
        /// The message, unhashed.
        message: Vec<u8>,
    },
    /// Verify a signature (or an HMAC).
    Verify {
        /// The key (needs `verify`).
        key: KeyId,
        /// Mechanism.
        mechanism: SignMechanism,
        /// The message, unhashed.
        message: Vec<u8>,
        /// The signature.
        signature: Vec<u8>,
    },
    /// Encrypt. For AES-GCM the HSM picks the IV; the output is
    /// `iv || ciphertext || tag`.
    Encrypt {
        /// The key (needs `encrypt`).
        key: KeyId,
        /// Mechanism.
        mechanism: EncryptMechanism,
        /// The data.
        plaintext: Secret,
        /// Associated data (AES-GCM) or OAEP label (RSA).
        aad: Vec<u8>,
    },
    /// Decrypt.
    Decrypt {
        /// The key (needs `decrypt`).
        key: KeyId,
        /// Mechanism.
        mechanism: EncryptMechanism,
        /// As [`Operation::Encrypt`] produced it.
        ciphertext: Vec<u8>,
        /// The same associated data or label.
        aad: Vec<u8>,
    },
    /// Hash data.
    Digest {
        /// Algorithm.
        algorithm: DigestAlgorithm,
        /// The data.
        data: Vec<u8>,
    },
    /// Random bytes from the HSM's generator.
    Random {
        /// How many, at most 65536.
        len: u32,
    },
    /// Take a backup of the cluster state now, to the node's backup
    /// destination (reflecting every write acknowledged before the request).
    CreateBackup,
    /// List the backups at the node's backup destination.
    ListBackups,
    /// One backup's manifest.
    DescribeBackup {
        /// The backup.
        id: BackupId,
    },
    /// Check a backup without restoring it: the manifest's signature and
    /// every chunk's size and hash.
    VerifyBackup {
        /// The backup.
        id: BackupId,
    },
    /// Delete a backup (refused while it is marked keep-forever).
    DeleteBackup {
        /// The backup.
        id: BackupId,
    },
    /// Mark a backup keep-forever (retention leaves it), or clear the mark.
    KeepBackup {
        /// The backup.
        id: BackupId,
        /// Set (`true`) or clear the mark.
        forever: bool,
    },
    /// Log out: end this request's session on every node, or with
    /// `everywhere` every session of its user issued so far.
    Logout {
        /// End all of the user's sessions, not only this one.
        everywhere: bool,
    },
    /// Change the caller's own password, proving the current one: the
    /// check counts toward the lockout as a login does (a wrong current
    /// password is a failed login), so a stolen session token cannot take
    /// the account over nor guess its password. Every session of the user
    /// ends, this one too. The unactivated `admin` changing its own
    /// activates the cluster.
    ChangeOwnPassword {
        /// The password now.
        current_password: Secret,
        /// The new password.
        new_password: Secret,
    },
    /// Import a public key alone (SubjectPublicKeyInfo DER), for
    /// verification, RSA-OAEP encryption and wrapping to an outside
    /// party; the type and size are read from it. The key's origin is
    /// [`crate::KeyOrigin::PublicImported`]: it may not sign, decrypt,
    /// unwrap or derive.
    ImportPublicKey {
        /// SubjectPublicKeyInfo DER.
        #[serde(with = "serde_bytes")]
        public_key: Vec<u8>,
        /// Attributes.
        attributes: KeyAttributes,
        /// As for [`Operation::GenerateKey`].
        unique_label: bool,
    },
    /// Sign many messages with one key in one request (at most
    /// [`MAX_SIGN_MANY`], [`MAX_SIGN_MANY_RSA`] with an RSA key), each with
    /// its own result
    /// ([`Reply::Signatures`]): the key, the caller and the session are
    /// checked once, and one round trip serves them all.
    SignMany {
        /// The key (needs `sign`).
        key: KeyId,
        /// Mechanism.
        mechanism: SignMechanism,
        /// The messages, unhashed.
        messages: Vec<ByteBuf>,
    },
    /// Move leadership to another voter without stopping the leader
    /// (`hsm node transfer-leader`): to `to`, or to the lowest-numbered
    /// voter that has every entry. Served by the leader (another node
    /// answers `unavailable`, naming it); writes wait a moment meanwhile,
    /// none fails. From client protocol 2 on. Crypto officers.
    TransferLeadership {
        /// The voter to lead next; `None`: any caught-up voter.
        to: Option<NodeId>,
    },
    /// Each member as the leader sees it: how far behind it is, which Raft
    /// protocol version its connection with the leader agreed on, and the
    /// cluster's version and last backup ([`Reply::Members`]). Served by
    /// the leader (another node answers `unavailable`, naming it). From
    /// client protocol 2 on. Any signed-in user.
    MemberStatus,
    // From client protocol 3 on.
    /// Start a login with a second factor: the node reserves the attempt
    /// (counted as a failure until its outcome) under this request's id
    /// and answers it ([`Reply::LoginChallenge`]); the user signs
    /// `quorum::login_statement` for it and sends [`Operation::LoginMfa`]
    /// while the reservation lives (30 s).
    LoginChallenge {
        /// User name.
        username: Username,
    },
    /// Log in with a password and a second factor: the Ed25519 signature,
    /// with the user's registered key, over the login statement of the
    /// challenge `reservation`. A wrong signature is a failed login, as a
    /// wrong password is. A user without a second factor may log in this
    /// way too (the signature is then not looked at).
    LoginMfa {
        /// User name.
        username: Username,
        /// Password.
        password: Secret,
        /// The challenge ([`Reply::LoginChallenge`]).
        reservation: RequestId,
        /// The signature.
        signature: crate::Signature,
    },
    /// Set, change (`Some`) or clear (`None`) one's own second factor,
    /// proving the current password (counted as a login attempt).
    SetOwnMfa {
        /// The password now.
        current_password: Secret,
        /// The Ed25519 public key (raw 32 bytes), or `None`.
        key: Option<[u8; 32]>,
    },
    /// Clear another user's second factor (crypto officer; under the user
    /// service's quorum).
    ResetMfa {
        /// The user.
        username: Username,
    },
    /// Set or clear an officer's approval key: one's own with the current
    /// password (counted as a login attempt; the first one needs nothing
    /// more), anything else under the largest quorum value.
    SetApprovalKey {
        /// The officer.
        username: Username,
        /// The Ed25519 public key (raw 32 bytes), or `None`.
        key: Option<[u8; 32]>,
        /// The caller's current password, for its own key.
        current_password: Option<Secret>,
    },
    /// Ask for a quorum token for an operation (crypto officer); its id
    /// is this request's id ([`Reply::QuorumToken`]).
    GenerateQuorumToken {
        /// The operation.
        intent: crate::quorum::Intent,
    },
    /// Record an officer's approval of a token: its signature over the
    /// token's statement (any crypto officer may hand it in).
    ApproveQuorumToken {
        /// The token.
        token: crate::TokenId,
        /// The approving officer.
        approver: Username,
        /// Its signature.
        signature: crate::Signature,
    },
    /// Delete one's own token.
    DeleteQuorumToken {
        /// The token.
        token: crate::TokenId,
    },
    /// Set a service's quorum value (under the quorum service's quorum).
    SetQuorumValue {
        /// The service.
        service: crate::quorum::Service,
        /// The new value, 1 to [`crate::quorum::MAX_QUORUM`].
        value: u8,
    },
    /// Quorum values, approvers and live tokens ([`Reply::Quorum`]);
    /// crypto officers.
    QuorumStatus,
    // From client protocol 4 on.
    /// A key's versions ([`Reply::KeyVersions`]).
    KeyVersions {
        /// The key.
        key: KeyId,
    },
    /// Give a key a new version (owner): new material generated inside
    /// the cluster signs and encrypts from now on; the older versions
    /// decrypt and verify while they are at or above the minimum
    /// decryption version ([`Reply::KeyVersions`]). A pair's certificate
    /// is cleared (it certified the old public key).
    RotateKey {
        /// The key.
        key: KeyId,
    },
    /// Set the oldest version that may still decrypt and verify (owner).
    SetMinDecryptionVersion {
        /// The key.
        key: KeyId,
        /// The version, from the oldest kept to the latest.
        version: u32,
    },
    /// Delete a key's versions older than `below` for good (owner);
    /// `below` may not be above the minimum decryption version.
    TrimKeyVersions {
        /// The key.
        key: KeyId,
        /// The oldest version to keep.
        below: u32,
    },
    /// Encrypt many items with one key's latest version, each with its
    /// own result ([`Reply::Encrypted`]).
    EncryptBatch {
        /// The key (needs `encrypt`).
        key: KeyId,
        /// Mechanism.
        mechanism: EncryptMechanism,
        /// The items, at most [`MAX_BATCH`].
        items: Vec<EncryptItem>,
    },
    /// Decrypt many items, each with the version it names
    /// ([`Reply::Decrypted`]).
    DecryptBatch {
        /// The key (needs `decrypt`).
        key: KeyId,
        /// Mechanism.
        mechanism: EncryptMechanism,
        /// The items, at most [`MAX_BATCH`] ([`MAX_SIGN_MANY_RSA`] with an
        /// RSA key).
        items: Vec<DecryptItem>,
    },
    /// Sign many messages with one key's latest version, each with its
    /// own result ([`Reply::Signed`]).
    SignBatch {
        /// The key (needs `sign`).
        key: KeyId,
        /// Mechanism.
        mechanism: SignMechanism,
        /// The messages, unhashed, at most [`MAX_BATCH`]
        /// ([`MAX_SIGN_MANY_RSA`] with an RSA key).
        messages: Vec<ByteBuf>,
    },
    /// Verify many signatures, each with the version it names
    /// ([`Reply::Verifications`]).
    VerifyBatch {
        /// The key (needs `verify`).
        key: KeyId,
        /// Mechanism.
        mechanism: SignMechanism,
        /// The items, at most [`MAX_BATCH`].
        items: Vec<VerifyItem>,
    },
    /// A new AES data key for envelope encryption, encrypted with AES-GCM
    /// under the key's latest version ([`Reply::DataKey`]); the key needs
    /// `encrypt` and is an AES key.
    GenerateDataKey {
        /// The key that encrypts the data key.
        key: KeyId,
        /// The data key's size: 128, 192 or 256 bits.
        bits: u16,
        /// Associated data bound into its encryption.
        aad: ByteBuf,
        /// Also return the data key itself (else only its encrypted form,
        /// for a holder to decrypt later).
        plaintext: bool,
    },
    /// The event chain's head as this node's replica has it
    /// ([`Reply::AuditHead`]; crypto officers): keep it apart from the
    /// archive, and `hsm audit verify --cluster-head` shows the archive
    /// still holds that event, so its end was not cut off.
    AuditHead,
}

/// Bytes in a list ([`Operation::SignMany`], [`Reply::Signatures`]).
pub use serde_bytes::ByteBuf;

/// Most messages in one [`Operation::SignMany`].
pub const MAX_SIGN_MANY: usize = 1024;
/// Most messages in one [`Operation::SignMany`] with an RSA key: each is a
/// private-key operation of milliseconds, and one request should not hold
/// a core for long.
pub const MAX_SIGN_MANY_RSA: usize = 64;

impl Operation {
    /// Short name of the operation, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Login { .. } => "login",
            Operation::ClusterInfo => "cluster-info",
            Operation::AddNode { .. } => "add-node",
            Operation::RemoveNode { .. } => "remove-node",
            Operation::RotateDomainKey => "rotate-domain-key",
            Operation::ChangePassword { .. } => "change-password",
            Operation::CreateUser { .. } => "create-user",
            Operation::DeleteUser { .. } => "delete-user",
            Operation::ListUsers { .. } => "list-users",
            Operation::UnlockUser { .. } => "unlock-user",
            Operation::GenerateKey { .. } => "generate-key",
            Operation::ImportKey { .. } => "import-key",
            Operation::ImportPublicKey { .. } => "import-public-key",
            Operation::UnwrapKey { .. } => "unwrap-key",
            Operation::WrapKey { .. } => "wrap-key",
            Operation::DeriveKey { .. } => "derive-key",
            Operation::GetKey { .. } => "get-key",
            Operation::ListKeys { .. } => "list-keys",
            Operation::ExportPublicKey { .. } => "export-public-key",
            Operation::ShareKey { .. } => "share-key",
            Operation::UnshareKey { .. } => "unshare-key",
            Operation::SetKeyAttribute { .. } => "set-key-attribute",
            Operation::DeleteKey { .. } => "delete-key",
            Operation::Sign { .. } => "sign",
            Operation::Verify { .. } => "verify",
            Operation::Encrypt { .. } => "encrypt",
            Operation::Decrypt { .. } => "decrypt",
            Operation::Digest { .. } => "digest",
            Operation::Random { .. } => "random",
            Operation::CreateBackup => "create-backup",
            Operation::ListBackups => "list-backups",
            Operation::DescribeBackup { .. } => "describe-backup",
            Operation::VerifyBackup { .. } => "verify-backup",
            Operation::DeleteBackup { .. } => "delete-backup",
            Operation::KeepBackup { .. } => "keep-backup",
            Operation::Logout { .. } => "logout",
            Operation::ChangeOwnPassword { .. } => "change-own-password",
            Operation::SignMany { .. } => "sign-many",
            Operation::TransferLeadership { .. } => "transfer-leadership",
            Operation::MemberStatus => "member-status",
            Operation::LoginChallenge { .. } => "login-challenge",
            Operation::LoginMfa { .. } => "login-mfa",
            Operation::SetOwnMfa { .. } => "set-own-mfa",
            Operation::ResetMfa { .. } => "reset-mfa",
            Operation::SetApprovalKey { .. } => "set-approval-key",
            Operation::GenerateQuorumToken { .. } => "generate-quorum-token",
            Operation::ApproveQuorumToken { .. } => "approve-quorum-token",
            Operation::DeleteQuorumToken { .. } => "delete-quorum-token",
            Operation::SetQuorumValue { .. } => "set-quorum-value",
            Operation::QuorumStatus => "quorum-status",
            Operation::KeyVersions { .. } => "key-versions",
            Operation::RotateKey { .. } => "rotate-key",
            Operation::SetMinDecryptionVersion { .. } => "set-min-decryption-version",
            Operation::TrimKeyVersions { .. } => "trim-key-versions",
            Operation::EncryptBatch { .. } => "encrypt-batch",
            Operation::DecryptBatch { .. } => "decrypt-batch",
            Operation::SignBatch { .. } => "sign-batch",
            Operation::VerifyBatch { .. } => "verify-batch",
            Operation::GenerateDataKey { .. } => "generate-data-key",
            Operation::AuditHead => "audit-head",
        }
    }

    /// The client protocol version that brought this operation: a node
    /// serves it only on a connection that agreed on that version or a
    /// newer one (`crate::protocol`). Every variant is listed, so a new
    /// operation does not compile until it names its version.
    pub fn since(&self) -> crate::protocol::Version {
        match self {
            Operation::KeyVersions { .. }
            | Operation::RotateKey { .. }
            | Operation::SetMinDecryptionVersion { .. }
            | Operation::TrimKeyVersions { .. }
            | Operation::EncryptBatch { .. }
            | Operation::DecryptBatch { .. }
            | Operation::SignBatch { .. }
            | Operation::VerifyBatch { .. }
            | Operation::GenerateDataKey { .. }
            | Operation::AuditHead => 4,
            Operation::LoginChallenge { .. }
            | Operation::LoginMfa { .. }
            | Operation::SetOwnMfa { .. }
            | Operation::ResetMfa { .. }
            | Operation::SetApprovalKey { .. }
            | Operation::GenerateQuorumToken { .. }
            | Operation::ApproveQuorumToken { .. }
            | Operation::DeleteQuorumToken { .. }
            | Operation::SetQuorumValue { .. }
            | Operation::QuorumStatus => 3,
            Operation::TransferLeadership { .. } | Operation::MemberStatus => 2,
            Operation::Login { .. }
            | Operation::ClusterInfo
            | Operation::AddNode { .. }
            | Operation::RemoveNode { .. }
            | Operation::RotateDomainKey
            | Operation::ChangePassword { .. }
            | Operation::CreateUser { .. }
            | Operation::DeleteUser { .. }
            | Operation::ListUsers { .. }
            | Operation::UnlockUser { .. }
            | Operation::GenerateKey { .. }
            | Operation::ImportKey { .. }
            | Operation::ImportPublicKey { .. }
            | Operation::UnwrapKey { .. }
            | Operation::WrapKey { .. }
            | Operation::DeriveKey { .. }
            | Operation::GetKey { .. }
            | Operation::ListKeys { .. }
            | Operation::ExportPublicKey { .. }
            | Operation::ShareKey { .. }
            | Operation::UnshareKey { .. }
            | Operation::SetKeyAttribute { .. }
            | Operation::DeleteKey { .. }
            | Operation::Sign { .. }
            | Operation::Verify { .. }
            | Operation::Encrypt { .. }
            | Operation::Decrypt { .. }
            | Operation::Digest { .. }
            | Operation::Random { .. }
            | Operation::CreateBackup
            | Operation::ListBackups
            | Operation::DescribeBackup { .. }
            | Operation::VerifyBackup { .. }
            | Operation::DeleteBackup { .. }
            | Operation::KeepBackup { .. }
            | Operation::Logout { .. }
            | Operation::ChangeOwnPassword { .. }
            | Operation::SignMany { .. } => 1,
        }
    }
}

/// A node's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The log index this node had applied when it answered; after a write,
    /// at least that write's index. Pass the highest seen as
    /// [`Request::min_index`] to read your writes anywhere.
    pub applied_index: u64,
    /// The outcome.
    pub result: Result<Reply, ClientError>,
}

/// A user as [`Operation::ListUsers`] shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// Name.
    pub username: Username,
    /// Role.
    pub role: Role,
    /// Locked after too many failed logins.
    pub locked: bool,
    /// Consecutive failed logins.
    pub failed_logins: u8,
}

/// A key's metadata. Never its material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// Id.
    pub id: KeyId,
    /// Type and size.
    pub spec: KeySpec,
    /// Owner.
    pub owner: Username,
    /// Crypto users it is shared with.
    pub shared_with: Vec<Username>,
    /// Attributes.
    pub attributes: KeyAttributes,
    /// Where its material has been (local, always sensitive, ...).
    pub provenance: KeyProvenance,
    /// Public key (SubjectPublicKeyInfo DER) of a pair; empty otherwise.
    #[serde(with = "serde_bytes")]
    pub public_key: Vec<u8>,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: u64,
    /// The X.509 certificate (DER) of a pair's public key, if one was set
    /// ([`crate::KeyAttribute::Certificate`]); empty otherwise.
    #[serde(with = "serde_bytes")]
    pub certificate: Vec<u8>,
}

/// A member as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Node id.
    pub id: NodeId,
    /// `host:port` for clients.
    pub address: String,
    /// Zone label.
    pub zone: String,
    /// Whether it votes (a new member first catches up as a learner).
    pub voter: bool,
    /// The pin of its TLS key, from its member record: the client talks to
    /// it only if its certificate carries that key.
    pub transport_key: [u8; 32],
}

/// What [`Operation::ClusterInfo`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The cluster id, once initialized.
    pub cluster_id: Option<ClusterId>,
    /// Whether `admin` has set its password.
    pub activated: bool,
    /// The node that answered.
    pub answered_by: NodeId,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// Its current Raft term.
    pub term: u64,
    /// Members, voters and learners, in id order.
    pub members: Vec<MemberInfo>,
    /// Keys in the cluster (0 when asked without a session).
    pub keys: u64,
    /// Users in the cluster (0 when asked without a session).
    pub users: u64,
    /// The domain key's generations (`None` before init and when asked
    /// without a session).
    pub domain_key: Option<DomainKeyStatus>,
}

/// Where the domain key's rotation stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainKeyStatus {
    /// The generation in use for new material, sessions and backups.
    pub generation: u32,
    /// Keys whose material is still wrapped under an older generation
    /// (a rotation in progress).
    pub keys_to_rewrap: u64,
    /// Older generations still in use.
    pub older_generations: Vec<u32>,
    /// A member was removed and the leader has not rotated yet.
    pub rotation_due: bool,
}

/// The successful answer to each [`Operation`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The write was applied (or had been, for a retry).
    Done,
    /// The domain key was rotated to this generation.
    DomainKeyRotated {
        /// The new generation.
        generation: u32,
    },
    /// A session for the user.
    LoggedIn {
        /// Bearer token for [`Request::session`].
        token: Secret,
        /// The user.
        username: Username,
        /// Its role.
        role: Role,
        /// When the token stops working, ms since the Unix epoch.
        expires_ms: u64,
    },
    /// Cluster status.
    ClusterInfo(ClusterStatus),
    /// A page of users, in name order.
    Users {
        /// The users.
        users: Vec<UserInfo>,
        /// Where the next page starts (its `after`); `None` at the end.
        next: Option<Username>,
    },
    /// A key (created, or looked up).
    Key(KeyInfo),
    /// A page of keys, in id order.
    Keys {
        /// The keys.
        keys: Vec<KeyInfo>,
        /// Where the next page starts (its `after`); `None` at the end.
        next: Option<KeyId>,
    },
    /// A public key.
    PublicKey {
        /// SubjectPublicKeyInfo DER.
        #[serde(with = "serde_bytes")]
        der: Vec<u8>,
        /// The same as PEM (`-----BEGIN PUBLIC KEY-----`).
        pem: String,
    },
    /// Wrapped key material.
    Wrapped(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A signature or MAC.
    Signature(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Whether a signature verified.
    Verified(bool),
    /// Ciphertext.
    Ciphertext(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Decrypted data.
    Plaintext(Secret),
    /// A digest.
    Digest(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Random bytes.
    Random(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A backup (created or described).
    Backup(BackupInfo),
    /// The backups at the destination.
    Backups(BackupList),
    /// A backup passed every check.
    BackupVerified(BackupVerified),
    /// One result per message of an [`Operation::SignMany`], in order.
    Signatures(Vec<Result<ByteBuf, ClientError>>),
    /// Leadership moved ([`Operation::TransferLeadership`]).
    LeadershipMoved {
        /// The member that leads now.
        leader: NodeId,
    },
    /// The members as the leader sees them ([`Operation::MemberStatus`]).
    Members(MembersReport),
    /// A login attempt reserved ([`Operation::LoginChallenge`]).
    LoginChallenge {
        /// The cluster (the statement names it).
        cluster_id: ClusterId,
        /// The attempt: sign `quorum::login_statement` for it.
        reservation: RequestId,
        /// The leader time the attempt was reserved at (the statement
        /// names it).
        reserved_at_ms: u64,
    },
    /// A quorum token and the bytes its approvers sign.
    QuorumToken {
        /// The token.
        token: crate::quorum::Token,
        /// Approvals its operation needs now.
        needed: u8,
        /// `Token::statement` for this cluster.
        #[serde(with = "serde_bytes")]
        statement: Vec<u8>,
    },
    /// Quorum values, approvers and tokens ([`Operation::QuorumStatus`]).
    Quorum(QuorumReport),
    /// A key's versions ([`Operation::KeyVersions`] and the changes to
    /// them).
    KeyVersions(KeyVersionsInfo),
    /// One result per item of an [`Operation::EncryptBatch`], in order,
    /// all made with the key's `version`.
    Encrypted {
        /// The key version that encrypted them (the latest).
        version: u32,
        /// The ciphertexts, as [`Operation::Encrypt`] makes them.
        results: Vec<Result<ByteBuf, ClientError>>,
    },
    /// One result per item of an [`Operation::DecryptBatch`], in order.
    Decrypted(Vec<Result<Secret, ClientError>>),
    /// One result per message of an [`Operation::SignBatch`], in order,
    /// all made with the key's `version`.
    Signed {
        /// The key version that signed them (the latest).
        version: u32,
        /// The signatures.
        results: Vec<Result<ByteBuf, ClientError>>,
    },
    /// One result per item of an [`Operation::VerifyBatch`], in order:
    /// whether its signature verified.
    Verifications(Vec<Result<bool, ClientError>>),
    /// A new data key ([`Operation::GenerateDataKey`]).
    DataKey {
        /// The key version that encrypted it (the latest).
        version: u32,
        /// The data key encrypted with AES-GCM under that version, as
        /// [`Operation::Encrypt`] makes it: decrypt it with
        /// [`Operation::DecryptBatch`] naming `version`.
        wrapped: ByteBuf,
        /// The data key itself, when asked for.
        plaintext: Option<Secret>,
    },
    /// The event chain's head ([`Operation::AuditHead`]).
    AuditHead {
        /// Events in the chain: the number of the last one.
        events: u64,
        /// The last event's hash.
        head: crate::EventHash,
    },
}

/// A key's versions ([`Reply::KeyVersions`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyVersionsInfo {
    /// The key.
    pub key: KeyId,
    /// The version that signs and encrypts. A key never rotated is at 1.
    pub latest: u32,
    /// The oldest version that may still decrypt and verify.
    pub min_decryption: u32,
    /// The versions kept, oldest first, each with when it was made (ms
    /// since the Unix epoch).
    pub versions: Vec<(u32, u64)>,
}

/// One item of an [`Operation::EncryptBatch`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptItem {
    /// The data.
    pub plaintext: Secret,
    /// Associated data (AES-GCM) or OAEP label (RSA).
    pub aad: ByteBuf,
}

/// One item of an [`Operation::DecryptBatch`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecryptItem {
    /// The key version that encrypted it (a versioned ciphertext says
    /// which: [`crate::versioned`]); `None`: the latest.
    pub version: Option<u32>,
    /// The ciphertext.
    pub ciphertext: ByteBuf,
    /// The same associated data or label as for encryption.
    pub aad: ByteBuf,
}

/// One item of an [`Operation::VerifyBatch`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyItem {
    /// The key version that signed it; `None`: the latest.
    pub version: Option<u32>,
    /// The message, unhashed.
    pub message: ByteBuf,
    /// The signature.
    pub signature: ByteBuf,
}

/// Most items in one batch ([`Operation::EncryptBatch`] and the rest):
/// as [`MAX_SIGN_MANY`], and [`MAX_SIGN_MANY_RSA`] for RSA private-key
/// work (signing and decrypting).
pub const MAX_BATCH: usize = MAX_SIGN_MANY;

/// What [`Operation::QuorumStatus`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumReport {
    /// The cluster (approval statements name it).
    pub cluster_id: ClusterId,
    /// Each service's quorum value.
    pub values: Vec<(crate::quorum::Service, u8)>,
    /// Crypto officers with an approval key, and the key.
    pub approvers: Vec<(Username, [u8; 32])>,
    /// Users with a second factor.
    pub mfa_users: Vec<Username>,
    /// Tokens not yet used or deleted (expired ones too, until they are
    /// pruned), in id order.
    pub tokens: Vec<crate::quorum::Token>,
}

/// What [`Operation::MemberStatus`] returns: the leader's view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersReport {
    /// The leader that answered.
    pub leader: NodeId,
    /// Its term.
    pub term: u64,
    /// The index of the last entry in its log.
    pub last_log_index: u64,
    /// The Raft protocol version the cluster runs.
    pub raft_protocol: crate::protocol::Version,
    /// The newest Raft protocol version the leader's build speaks.
    pub leader_speaks: crate::protocol::Version,
    /// When the newest backup of the cluster the leader knows of was taken
    /// (by any member), ms since the Unix epoch (`None`: none known, or
    /// backups are off).
    pub last_backup_ms: Option<u64>,
    /// Members, voters and learners, in id order.
    pub members: Vec<MemberState>,
}

/// One member in a [`MembersReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberState {
    /// Node id.
    pub id: NodeId,
    /// `host:port`.
    pub address: String,
    /// Zone label (empty if the state records none yet).
    pub zone: String,
    /// Whether it votes.
    pub voter: bool,
    /// The index of the last entry of the leader's log it has (the
    /// leader's own for the leader); `None` while not known.
    pub matched_index: Option<u64>,
    /// Entries of the leader's log it still lacks; `None` while not known.
    pub lag: Option<u64>,
    /// The Raft protocol version its connection with the leader agreed on
    /// (the newest both speak; the leader's own for the leader); `None`
    /// without a live connection.
    pub raft_protocol: Option<crate::protocol::Version>,
}

/// The class of a failure: what the caller should do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorKind {
    /// No session, or the session is not valid (expired, forged, or ended
    /// by a password change or deletion): log in again.
    Unauthenticated,
    /// Wrong user name or password.
    LoginFailed,
    /// The user is locked after too many failed logins; a crypto officer
    /// must unlock it.
    Locked,
    /// The cluster's `admin` has not set its password yet.
    NotActivated,
    /// The caller's role or relation to the key does not allow this.
    PermissionDenied,
    /// No such user, key or node (or not visible to the caller).
    NotFound,
    /// Exists already, or in use.
    Conflict,
    /// The request is malformed or asks for something unsupported.
    InvalidInput,
    /// The cluster could not serve it in time (no leader, node catching
    /// up); retrying later, or elsewhere, may succeed.
    Unavailable,
    /// Stored data failed an integrity check (a backup's manifest,
    /// signature or chunk); the message names the object.
    Damaged,
    /// A fault in the node; see its log.
    Internal,
}

impl ErrorKind {
    /// Stable lowercase name for output and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::LoginFailed => "login-failed",
            ErrorKind::Locked => "locked",
            ErrorKind::NotActivated => "not-activated",
            ErrorKind::PermissionDenied => "permission-denied",
            ErrorKind::NotFound => "not-found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::InvalidInput => "invalid-input",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Damaged => "damaged",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request failed: a class and a message for people. Messages name
/// users, keys and rules, never secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ClientError {
    /// The class.
    pub kind: ErrorKind,
    /// What went wrong.
    pub message: String,
}

impl ClientError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ClientError {
        ClientError {
            kind,
            message: message.into(),
        }
    }

    /// [`ErrorKind::InvalidInput`].
    pub fn invalid(message: impl Into<String>) -> ClientError {
        ClientError::new(ErrorKind::InvalidInput, message)
    }

    /// [`ErrorKind::PermissionDenied`].
    pub fn denied(message: impl Into<String>) -> ClientError {
        ClientError::new(ErrorKind::PermissionDenied, message)
    }

    /// [`ErrorKind::NotFound`].
    pub fn not_found(message: impl Into<String>) -> ClientError {
        ClientError::new(ErrorKind::NotFound, message)
    }

    /// [`ErrorKind::Unavailable`].
    pub fn unavailable(message: impl Into<String>) -> ClientError {
        ClientError::new(ErrorKind::Unavailable, message)
    }

    /// [`ErrorKind::Internal`].
    pub fn internal(message: impl Into<String>) -> ClientError {
        ClientError::new(ErrorKind::Internal, message)
    }
}

impl crate::KeyPolicyError {
    /// The kind of error a caller sees: a use the key's attributes or
    /// trust do not allow is denied; a request that can never be right
    /// (conflicting attributes, a copy wider than its original) is invalid.
    pub fn kind(&self) -> ErrorKind {
        use crate::KeyPolicyError as P;
        match self {
            P::NotAllowed { .. }
            | P::TrustedKeyFrozen(_)
            | P::CreatedTrusted
            | P::NotExtractable(_)
            | P::NeedsTrustedWrappingKey { .. }
            | P::WrappingKeyKnownOutside { .. } => ErrorKind::PermissionDenied,
            P::Conflict(..)
            | P::UnwrapWidens(_)
            | P::UnwrapSpecMismatch { .. }
            | P::InconsistentProvenance
            | P::PublicKeyOnly(_) => ErrorKind::InvalidInput,
        }
    }
}

impl From<crate::KeyPolicyError> for ClientError {
    fn from(p: crate::KeyPolicyError) -> ClientError {
        ClientError::new(p.kind(), p.to_string())
    }
}

impl From<Rejection> for ClientError {
    fn from(r: Rejection) -> ClientError {
        use Rejection as R;
        let kind = match &r {
            R::RoleDenied { .. }
            | R::Denied { .. }
            | R::NotOwner { .. }
            | R::OwnerOnly { .. }
            | R::CannotDeleteSelf
            | R::CurrentPasswordNeeded => ErrorKind::PermissionDenied,
            R::UnknownActor(_) | R::NoSuchActor(_) | R::OperatorOnlyUnlocks(_) => {
                ErrorKind::Unauthenticated
            }
            R::Locked(_) => ErrorKind::Locked,
            R::NotActivated => ErrorKind::NotActivated,
            R::UserNotFound(_) | R::KeyNotFound(_) | R::NodeNotFound(_) => ErrorKind::NotFound,
            R::UserExists(_)
            | R::KeyExists(_)
            | R::LabelNotUnique(_)
            | R::NodeExists(_)
            | R::UserOwnsKeys { .. }
            | R::NotLocked(_)
            | R::RequestIdReused => ErrorKind::Conflict,
            R::InvalidRole(_)
            | R::InvalidKeySpec
            | R::InvalidKey(_)
            | R::InvalidShare(..)
            | R::AttributeRatchet(_)
            | R::Membership(_)
            | R::KeyInvalid(_)
            | R::ShareRefused(..)
            | R::MembershipRefused(_)
            | R::InvalidPasswordHash => ErrorKind::InvalidInput,
            R::KeyPolicy(p) => p.kind(),
            R::DomainKey(
                crate::DomainKeyError::NotLive(_)
                | crate::DomainKeyError::NotCurrent(_)
                | crate::DomainKeyError::RotationDue,
            ) => ErrorKind::Unavailable,
            R::DomainKey(_) => ErrorKind::Conflict,
            R::NotInitialized | R::ChainMismatch | R::LoginsInProgress(_) | R::LoginExpired(_) => {
                ErrorKind::Unavailable
            }
            R::BadSignature(_)
            | R::UnknownSigner(_)
            | R::AlreadyInitialized
            | R::ProtocolNotRaised { .. } => ErrorKind::Internal,
            R::RaiseNotByLeader(_) => ErrorKind::PermissionDenied,
            R::NeedsProtocol { .. } => ErrorKind::Unavailable,
            R::QuorumNeeded { .. } | R::ApprovalRefused(..) => ErrorKind::PermissionDenied,
            R::TokenNotFound(_) => ErrorKind::NotFound,
            R::TokenExpired(_)
            | R::QuorumRefused(_)
            | R::TooManyTokens { .. }
            | R::WeakPublicKey(_) => ErrorKind::InvalidInput,
            R::KeyVersionRefused(_, crate::VersionDefect::NotKept { .. }) => ErrorKind::NotFound,
            R::KeyVersionRefused(_, crate::VersionDefect::NotNext { .. }) => ErrorKind::Conflict,
            R::KeyVersionRefused(_, _) => ErrorKind::InvalidInput,
            R::KeyUsesMalformed { .. } => ErrorKind::Internal,
        };
        ClientError::new(kind, r.to_string())
    }
}

/// A node as the client config lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientNode {
    /// Node id.
    pub id: u64,
    /// `host:port` of its QUIC endpoint.
    pub address: String,
    /// Zone label.
    pub zone: String,
    /// The pin of the node's TLS key (its member record's
    /// `transport_key`), hex: the client talks to this node only if the
    /// node's certificate carries that key.
    #[serde(with = "pin_hex")]
    pub transport_key: [u8; 32],
}

impl ClientNode {
    /// The node a member record describes.
    pub fn of_record(record: &NodeRecord) -> ClientNode {
        ClientNode {
            id: record.id.0,
            address: record.address.clone(),
            zone: record.zone.clone(),
            transport_key: record.transport_key,
        }
    }

    /// The node cluster info describes.
    pub fn of_member(member: &MemberInfo) -> ClientNode {
        ClientNode {
            id: member.id.0,
            address: member.address.clone(),
            zone: member.zone.clone(),
            transport_key: member.transport_key,
        }
    }
}

/// A 32-byte key pin as 64 hex digits (readable in a config file).
mod pin_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(pin: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(pin))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(&text).map_err(serde::de::Error::custom)?;
        bytes.try_into().map_err(|_| {
            serde::de::Error::custom("expected 64 hex digits (the 32-byte pin of a TLS key)")
        })
    }
}

/// The client config file that `hsm-node init` and `hsm-node dev` write and
/// the SDK and `hsm` read (TOML): where the nodes are and which CA to trust.
/// The SDK learns later membership changes from the cluster itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The cluster id, hex.
    pub cluster_id: String,
    /// The cluster CA certificate, PEM.
    pub ca_cert_pem: String,
    /// The caller's zone: nodes in it are preferred. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Nodes to contact first.
    pub nodes: Vec<ClientNode>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    #[test]
    fn secrets_are_redacted_and_round_trip() {
        let s = Secret::from("correct horse battery staple");
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("horse"), "{dbg}");
        let bytes = codec::encode("secret", &s).expect("encodes");
        let back: Secret = codec::decode("secret", &bytes).expect("decodes");
        assert_eq!(back.expose_str(), Some("correct horse battery staple"));
        let req = Request {
            session: Some(Secret::from("token-bytes")),
            request_id: RequestId([7; 16]),
            min_index: 3,
            op: Operation::Login {
                username: Username::new("alice").expect("name"),
                password: Secret::from("hunter2hunter2"),
            },
        };
        let dbg = format!("{req:?}");
        assert!(
            !dbg.contains("hunter2") && !dbg.contains("token-bytes"),
            "{dbg}"
        );
        let bytes = codec::encode("request", &req).expect("encodes");
        assert_eq!(
            codec::decode::<Request>("request", &bytes).expect("decodes"),
            req
        );
    }

    #[test]
    fn every_rejection_maps_to_a_kind_callers_can_act_on() {
        let alice = Username::new("alice").expect("name");
        let cases = [
            (
                Rejection::RoleDenied {
                    role: Role::Co,
                    action: "use keys".into(),
                },
                ErrorKind::PermissionDenied,
            ),
            (Rejection::Locked(alice.clone()), ErrorKind::Locked),
            (Rejection::KeyNotFound(KeyId(1)), ErrorKind::NotFound),
            (Rejection::UserExists(alice), ErrorKind::Conflict),
            (Rejection::InvalidKeySpec, ErrorKind::InvalidInput),
            (Rejection::NotActivated, ErrorKind::NotActivated),
        ];
        for (rejection, kind) in cases {
            assert_eq!(ClientError::from(rejection).kind, kind);
        }
    }
}
