//! Quorum approvals and second factors: which events a quorum guards, what
//! counts as an approval, and whether a login's second factor passes. Pure
//! functions of the state; `apply` enforces them on every replica, and the
//! node asks the same functions before it writes.
//!
//! A quorum value M of a service (`hsm_proto::quorum::Service`) means an
//! officer's operation of that service applies only when a live token the
//! officer asked for, for exactly that operation
//! (`hsm_proto::quorum::Intent`), carries approvals of M distinct crypto
//! officers: Ed25519 signatures over the token's statement, each with the
//! approval key that officer has registered now. The token is used up by
//! the operation. M is 1 (the officer alone) until a crypto officer sets
//! it, itself under the quorum service's value.

use hsm_proto::quorum::{Intent, Token};
use hsm_proto::{EventBody, KeyAttribute, KeyFlag, RequestId, Role, Signature, TokenId, Username};
use serde::{Deserialize, Serialize};

use crate::State;

/// The keys a user registered: its approval key (officers) and its second
/// factor. Stored while either is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// The user.
    pub username: Username,
    /// Ed25519 public key its quorum approvals are signed with.
    pub approval_key: Option<[u8; 32]>,
    /// Ed25519 public key its logins are signed with.
    pub mfa_key: Option<[u8; 32]>,
}

/// The operation a user's event asks for, as a quorum sees it; `None` for
/// events no quorum guards. `me` is the actor: clearing one's own second
/// factor is not resetting another's.
pub fn intent_of(body: &EventBody, me: &Username) -> Option<Intent> {
    Some(match body {
        EventBody::UserCreated { username, role, .. } => Intent::CreateUser {
            username: username.clone(),
            role: *role,
        },
        EventBody::UserDeleted { username } => Intent::DeleteUser {
            username: username.clone(),
        },
        EventBody::PasswordChanged { username, .. } => Intent::ChangePassword {
            username: username.clone(),
        },
        EventBody::UserUnlocked { username } => Intent::UnlockUser {
            username: username.clone(),
        },
        EventBody::ApprovalKeySet { username, key, .. } => Intent::SetApprovalKey {
            username: username.clone(),
            key: *key,
        },
        EventBody::MfaKeySet { username, .. } if username != me => Intent::ResetMfa {
            username: username.clone(),
        },
        EventBody::NodeAdded { node } => Intent::AddNode { node: node.clone() },
        EventBody::NodeRemoved { node } => Intent::RemoveNode { node: *node },
        EventBody::DomainKeyRotated { .. } => Intent::RotateDomainKey,
        EventBody::KeyAttributeSet {
            key,
            attribute: KeyAttribute::Flag(KeyFlag::Trusted, trusted),
        } => Intent::SetTrusted {
            key: *key,
            trusted: *trusted,
        },
        EventBody::QuorumValueSet { service, value } => Intent::SetQuorum {
            service: *service,
            value: *value,
        },
        _ => return None,
    })
}

/// Whether `key` is an Ed25519 public key signatures can be checked with:
/// a canonical point, not of small order (a weak key could "verify" forged
/// signatures).
pub fn is_usable_key(key: &[u8; 32]) -> bool {
    ed25519_dalek::VerifyingKey::from_bytes(key).is_ok_and(|k| !k.is_weak())
}

/// Whether `signature` is `key`'s over `statement` (strict verification:
/// no malleable or small-order forms).
pub fn verifies(key: &[u8; 32], statement: &[u8], signature: &Signature) -> bool {
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(key) else {
        return false;
    };
    let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
    key.verify_strict(statement, &signature).is_ok()
}

impl State {
    /// The quorum value of `service`: approvals its operations need (1:
    /// the officer alone).
    pub fn quorum_value(&self, service: hsm_proto::quorum::Service) -> u8 {
        self.quorum.get(&service).copied().unwrap_or(1)
    }

    /// The largest quorum value of any service.
    pub fn largest_quorum_value(&self) -> u8 {
        self.quorum.values().copied().max().unwrap_or(1)
    }

    /// The keys `user` registered, if any.
    pub fn credentials(&self, user: &Username) -> Option<&Credentials> {
        self.credentials.get(user)
    }

    /// Crypto officers with an approval key, and the key, in name order:
    /// who can approve.
    pub fn approvers(&self) -> impl Iterator<Item = (&Username, [u8; 32])> {
        self.credentials.values().filter_map(|c| {
            let officer = self.users.get(&c.username)?.role == Role::Co;
            Some((&c.username, c.approval_key.filter(|_| officer)?))
        })
    }

    /// Users with a second factor, in name order.
    pub fn mfa_users(&self) -> impl Iterator<Item = &Username> {
        self.credentials
            .values()
            .filter(|c| c.mfa_key.is_some())
            .map(|c| &c.username)
    }

    /// A quorum token.
    pub fn token(&self, id: TokenId) -> Option<&Token> {
        self.tokens.get(&id)
    }

    /// Every token, in id order.
    pub fn tokens(&self) -> impl Iterator<Item = &Token> {
        self.tokens.values()
    }

    /// Approvals `intent` needs now. An operation that makes, changes or
    /// removes an approver, or a quorum value, needs the largest value in
    /// force, whatever its service's: so no one lowers a value, or makes
    /// itself another approval, with fewer approvals than some value asks
    /// for. Anything else needs its service's value.
    pub fn approvals_needed(&self, intent: &Intent) -> u8 {
        let is_officer = |u: &Username| self.users.get(u).is_some_and(|u| u.role == Role::Co);
        let touches_approvers = match intent {
            Intent::SetQuorum { .. } | Intent::SetApprovalKey { .. } => true,
            Intent::CreateUser { role, .. } => *role == Role::Co,
            Intent::DeleteUser { username }
            | Intent::ChangePassword { username }
            | Intent::UnlockUser { username }
            | Intent::ResetMfa { username } => is_officer(username),
            Intent::AddNode { .. }
            | Intent::RemoveNode { .. }
            | Intent::RotateDomainKey
            | Intent::SetTrusted { .. } => false,
        };
        if touches_approvers {
            self.largest_quorum_value()
        } else {
            self.quorum_value(intent.service())
        }
    }

    /// The approvals of `token` that count now: each by a crypto officer,
    /// not locked, whose registered approval key is still the one it
    /// signed with.
    pub fn valid_approvals(&self, token: &Token) -> u8 {
        let n = token
            .approvals
            .iter()
            .filter(|a| {
                self.users
                    .get(&a.approver)
                    .is_some_and(|u| u.role == Role::Co && !u.is_locked())
                    && self
                        .credentials
                        .get(&a.approver)
                        .and_then(|c| c.approval_key)
                        == Some(a.key)
            })
            .count();
        u8::try_from(n).unwrap_or(u8::MAX)
    }

    /// Whether `username` must log in with a second factor.
    pub fn needs_second_factor(&self, username: &Username) -> bool {
        self.credentials
            .get(username)
            .is_some_and(|c| c.mfa_key.is_some())
    }

    /// Whether a login of `username` under the attempt `reservation`
    /// passes its second factor: the user has none, or `signature` is its
    /// key's over the login statement of this cluster and of that
    /// reservation as the user's record holds it now (its id and leader
    /// time: an id reserved again later is another reservation).
    pub fn second_factor_passes(
        &self,
        username: &Username,
        reservation: RequestId,
        signature: Option<&Signature>,
    ) -> bool {
        let Some(key) = self.credentials.get(username).and_then(|c| c.mfa_key) else {
            return true;
        };
        let reserved = self
            .users
            .get(username)
            .and_then(|u| u.reservations.iter().find(|r| r.id == reservation));
        let (Some(cluster), Some(signature), Some(reserved)) =
            (self.cluster(), signature, reserved)
        else {
            return false;
        };
        let statement = hsm_proto::quorum::login_statement(
            cluster.cluster_id,
            username,
            reservation,
            reserved.at_ms,
        );
        verifies(&key, &statement, signature)
    }
}
