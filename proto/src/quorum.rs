//! Quorum approvals and the second factor: which officer operations a
//! quorum guards, the tokens approvers sign, and the exact bytes every
//! signature covers.
//!
//! An approver's key and a user's second factor are Ed25519 public keys
//! (the 32 bytes of an `openssl genpkey -algorithm ed25519` key's
//! SubjectPublicKeyInfo). Every statement here starts with its own
//! context line, so a signature made for one purpose is never valid for
//! another, and names the cluster, so it is valid in no other cluster.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{
    codec, ClusterId, KeyId, NodeId, NodeRecord, RequestId, Role, Signature, TokenId, Username,
};

/// What a quorum value guards (CloudHSM's quorum services).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Service {
    /// User management: create, delete, set another's password, unlock,
    /// set or clear another's approval key, reset another's second factor.
    User,
    /// The cluster: add and remove members, rotate the domain key, mark
    /// keys trusted.
    Cluster,
    /// Quorum values themselves.
    Quorum,
}

impl Service {
    /// Every service.
    pub const ALL: [Service; 3] = [Service::User, Service::Cluster, Service::Quorum];

    /// The name used on the command line and in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::User => "user",
            Service::Cluster => "cluster",
            Service::Quorum => "quorum",
        }
    }

    /// The service of a name, if it is one.
    pub fn parse(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The largest quorum value a service may have.
pub const MAX_QUORUM: u8 = 16;

/// How long a token stays usable after it is issued, in ms of leader time:
/// long enough for approvers to be reached and sign, short enough that a
/// forgotten approved token does not wait for an attacker.
pub const TOKEN_LIFETIME_MS: u64 = 30 * 60 * 1000;

/// Most live tokens one officer may hold at once.
pub const MAX_TOKENS_PER_OFFICER: usize = 16;

/// An operation a quorum may guard, as its approvers see it: everything
/// they judge, nothing secret (a new password is the initiator's to
/// choose; the approvers approve that it is set).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Intent {
    /// Create `username` with `role`.
    CreateUser {
        /// The new user.
        username: Username,
        /// Its role.
        role: Role,
    },
    /// Delete `username`.
    DeleteUser {
        /// The user.
        username: Username,
    },
    /// Set `username`'s password (another user's).
    ChangePassword {
        /// The user.
        username: Username,
    },
    /// Unlock `username`.
    UnlockUser {
        /// The user.
        username: Username,
    },
    /// Set (`Some`) or clear `username`'s approval key, when that is not
    /// an officer registering its first one (under the largest quorum
    /// value: it makes or changes an approver).
    SetApprovalKey {
        /// The officer.
        username: Username,
        /// The Ed25519 public key, or `None` to clear it.
        key: Option<[u8; 32]>,
    },
    /// Clear `username`'s second factor (a lost device).
    ResetMfa {
        /// The user.
        username: Username,
    },
    /// Approve the member `node` describes, exactly.
    AddNode {
        /// The member record.
        node: NodeRecord,
    },
    /// Remove member `node`.
    RemoveNode {
        /// The member.
        node: NodeId,
    },
    /// Rotate the domain key.
    RotateDomainKey,
    /// Set `key`'s `trusted` attribute to `trusted`.
    SetTrusted {
        /// The key.
        key: KeyId,
        /// The new value.
        trusted: bool,
    },
    /// Set `service`'s quorum value to `value`.
    SetQuorum {
        /// The service.
        service: Service,
        /// The new value.
        value: u8,
    },
}

impl Intent {
    /// The service whose quorum value guards it.
    pub fn service(&self) -> Service {
        match self {
            Intent::CreateUser { .. }
            | Intent::DeleteUser { .. }
            | Intent::ChangePassword { .. }
            | Intent::UnlockUser { .. }
            | Intent::SetApprovalKey { .. }
            | Intent::ResetMfa { .. } => Service::User,
            Intent::AddNode { .. }
            | Intent::RemoveNode { .. }
            | Intent::RotateDomainKey
            | Intent::SetTrusted { .. } => Service::Cluster,
            Intent::SetQuorum { .. } => Service::Quorum,
        }
    }
}

impl fmt::Display for Intent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Intent::CreateUser { username, role } => {
                write!(f, "create user {username} with role {role}")
            }
            Intent::DeleteUser { username } => write!(f, "delete user {username}"),
            Intent::ChangePassword { username } => write!(f, "set the password of {username}"),
            Intent::UnlockUser { username } => write!(f, "unlock user {username}"),
            Intent::SetApprovalKey {
                username,
                key: Some(key),
            } => write!(
                f,
                "set the approval key of {username} to ed25519 {}",
                hex::encode(key)
            ),
            Intent::SetApprovalKey {
                username,
                key: None,
            } => {
                write!(f, "clear the approval key of {username}")
            }
            Intent::ResetMfa { username } => {
                write!(f, "clear the second factor of {username}")
            }
            Intent::AddNode { node } => write!(
                f,
                "add member {} at {} in zone {:?} (signing key {}, TLS key pin {})",
                node.id,
                node.address,
                node.zone,
                hex::encode(node.signing_key),
                hex::encode(node.transport_key)
            ),
            Intent::RemoveNode { node } => write!(f, "remove member {node}"),
            Intent::RotateDomainKey => f.write_str("rotate the domain key"),
            Intent::SetTrusted { key, trusted } => {
                write!(f, "set trusted={trusted} on key {key}")
            }
            Intent::SetQuorum { service, value } => {
                write!(f, "set the quorum value of service {service} to {value}")
            }
        }
    }
}

/// A token as the cluster keeps it and shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// Its id, chosen by the leader.
    pub id: TokenId,
    /// The officer that asked for it; only it may use it.
    pub initiator: Username,
    /// What it approves.
    pub intent: Intent,
    /// Leader time it was issued, ms since the Unix epoch.
    pub issued_ms: u64,
    /// Leader time after which it is refused.
    pub expires_ms: u64,
    /// The approvals recorded so far: each approver and the key it signed
    /// with (an approval counts while that is still its key).
    pub approvals: Vec<Approval>,
}

impl Token {
    /// The bytes each approver signs for this token in `cluster`.
    pub fn statement(&self, cluster: ClusterId) -> Vec<u8> {
        approval_statement(
            cluster,
            self.id,
            &self.initiator,
            &self.intent,
            self.expires_ms,
        )
    }
}

/// One recorded approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The officer that approved.
    pub approver: Username,
    /// The approval key it signed with.
    pub key: [u8; 32],
    /// Its Ed25519 signature over the token's statement.
    pub signature: Signature,
}

/// The context line of an approval statement.
pub const APPROVAL_CONTEXT: &[u8] = b"hsm-cluster quorum approval v1\n";

/// The context line of a second-factor login statement.
pub const LOGIN_CONTEXT: &[u8] = b"hsm-cluster second factor login v1\n";

/// The bytes an approver signs to approve token `token` of `cluster`,
/// asked for by `initiator` to do `intent`, valid until `expires_ms`.
pub fn approval_statement(
    cluster: ClusterId,
    token: TokenId,
    initiator: &Username,
    intent: &Intent,
    expires_ms: u64,
) -> Vec<u8> {
    let mut out = APPROVAL_CONTEXT.to_vec();
    // Plain data of bounded size: encoding cannot fail.
    let body = codec::encode("approval", &(cluster, token, initiator, intent, expires_ms))
        .unwrap_or_default();
    out.extend_from_slice(&body);
    out
}

/// The bytes a user with a second factor signs to log in to `cluster` as
/// `username` under the login attempt `reservation`, which the cluster
/// reserved at leader time `reserved_at_ms` (the challenge it gave): valid
/// for that one reservation only, even should the same id be reserved
/// again once the first is long forgotten.
pub fn login_statement(
    cluster: ClusterId,
    username: &Username,
    reservation: RequestId,
    reserved_at_ms: u64,
) -> Vec<u8> {
    let mut out = LOGIN_CONTEXT.to_vec();
    let body = codec::encode("login", &(cluster, username, reservation, reserved_at_ms))
        .unwrap_or_default();
    out.extend_from_slice(&body);
    out
}

/// What an approval statement says: the cluster, the token, its
/// initiator, the operation and the expiry; `None` for bytes that are not
/// one. What an approver reads before it signs.
pub fn parse_approval_statement(
    statement: &[u8],
) -> Option<(ClusterId, TokenId, Username, Intent, u64)> {
    let body = statement.strip_prefix(APPROVAL_CONTEXT)?;
    codec::decode("approval", body).ok()
}

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410).
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The raw key of an Ed25519 SubjectPublicKeyInfo (DER), if that is what
/// `der` is.
pub fn ed25519_from_spki(der: &[u8]) -> Option<[u8; 32]> {
    let raw = der.strip_prefix(&ED25519_SPKI_PREFIX[..])?;
    raw.try_into().ok()
}

/// The Ed25519 SubjectPublicKeyInfo (DER) of a raw key.
pub fn ed25519_to_spki(key: &[u8; 32]) -> Vec<u8> {
    let mut out = ED25519_SPKI_PREFIX.to_vec();
    out.extend_from_slice(key);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Username {
        Username::new("alice").expect("name")
    }

    #[test]
    fn statements_differ_by_purpose_cluster_token_and_intent() {
        let c1 = ClusterId([1; 16]);
        let c2 = ClusterId([2; 16]);
        let t = TokenId([9; 16]);
        let intent = Intent::RotateDomainKey;
        let base = approval_statement(c1, t, &alice(), &intent, 5);
        assert!(base.starts_with(APPROVAL_CONTEXT));
        assert_ne!(base, approval_statement(c2, t, &alice(), &intent, 5));
        assert_ne!(
            base,
            approval_statement(c1, TokenId([8; 16]), &alice(), &intent, 5)
        );
        assert_ne!(
            base,
            approval_statement(
                c1,
                t,
                &alice(),
                &Intent::SetQuorum {
                    service: Service::User,
                    value: 1
                },
                5
            )
        );
        assert_ne!(base, approval_statement(c1, t, &alice(), &intent, 6));
        let login = login_statement(c1, &alice(), RequestId([9; 16]), 5);
        assert_ne!(login, login_statement(c1, &alice(), RequestId([9; 16]), 6));
        assert_eq!(
            parse_approval_statement(&base),
            Some((c1, t, alice(), intent.clone(), 5))
        );
        assert_eq!(parse_approval_statement(&login), None);
        assert!(login.starts_with(LOGIN_CONTEXT));
        assert!(!login.starts_with(APPROVAL_CONTEXT));
    }

    #[test]
    fn ed25519_keys_round_trip_through_spki_and_nothing_else_parses() {
        let key = [7u8; 32];
        let der = ed25519_to_spki(&key);
        assert_eq!(der.len(), 44);
        assert_eq!(ed25519_from_spki(&der), Some(key));
        assert_eq!(ed25519_from_spki(&der[..43]), None);
        let mut longer = der.clone();
        longer.push(0);
        assert_eq!(ed25519_from_spki(&longer), None);
        let mut x25519 = der;
        x25519[8] = 0x6e; // 1.3.101.110 is X25519
        assert_eq!(ed25519_from_spki(&x25519), None);
    }

    #[test]
    fn token_ids_parse_from_hex_only() {
        let id: TokenId = "000102030405060708090a0b0c0d0e0f".parse().expect("hex");
        assert_eq!(id.0[15], 15);
        assert_eq!(id.to_string(), "000102030405060708090a0b0c0d0e0f");
        assert!("00".parse::<TokenId>().is_err());
        assert!("zz".repeat(16).parse::<TokenId>().is_err());
    }

    #[test]
    fn every_intent_names_its_service() {
        let u = alice();
        assert_eq!(Intent::UnlockUser { username: u }.service(), Service::User);
        assert_eq!(Intent::RotateDomainKey.service(), Service::Cluster);
        assert_eq!(
            Intent::SetQuorum {
                service: Service::Cluster,
                value: 2
            }
            .service(),
            Service::Quorum
        );
        for s in Service::ALL {
            assert_eq!(Service::parse(s.as_str()), Some(s));
        }
    }
}
