//! Session tokens that any node of the cluster can verify.
//!
//! A token is `version(1) || codec(SessionClaims) || MAC(32)`, where the MAC
//! is a keyed blake3 hash of everything before it under a key derived from
//! the domain key. Verification checks length, version and MAC (in constant
//! time) before decoding anything, then expiry. Whether the claims still
//! match the user (same role, password epoch and account) is the caller's
//! check, against its replica: [`SessionClaims::is_current`].

use std::fmt;
use std::time::Duration;

use hsm_proto::{codec, Role, Username};
use hsm_state::User;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{DomainKey, Keyring};

/// 2: claims carry the session epoch (logout).
const VERSION: u8 = 2;
const MAC_LEN: usize = 32;
/// Longest token [`verify`] looks at. Real tokens are about 130 bytes.
pub const MAX_TOKEN_LEN: usize = 512;

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Not a token: wrong length, unknown version, or undecodable claims.
    #[error("session token is malformed")]
    Malformed,
    /// The MAC does not match: changed, forged, or from another cluster.
    #[error("session token failed authentication")]
    BadMac,
    /// The token is authentic but past its expiry time.
    #[error("session token has expired")]
    Expired,
}

/// What a session token asserts. Not secret (without the MAC it proves
/// nothing), so `Debug` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    /// The logged-in user.
    pub username: Username,
    /// Its role at login.
    pub role: Role,
    /// Its password epoch at login; a password change bumps it.
    pub password_epoch: u64,
    /// Its `created_ms` at login, so a token does not survive the user being
    /// deleted and a new user of the same name created.
    pub user_created_ms: u64,
    /// When the token was issued, on the cluster's time (the leader's
    /// clock, `crate::cluster_time`), ms since the epoch.
    pub issued_ms: u64,
    /// When it stops being accepted, on the cluster's time, ms since the
    /// epoch.
    pub expires_ms: u64,
    /// Random id: a logout names the session by it.
    pub token_id: [u8; 16],
    /// The user's session epoch at login; a logout everywhere moves it on.
    pub session_epoch: u64,
}

impl SessionClaims {
    /// Claims for `user` logging in at `now_ms`, valid for `lifetime`, with a
    /// fresh random token id.
    pub fn new(user: &User, now_ms: u64, lifetime: Duration) -> SessionClaims {
        let lifetime_ms = u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX);
        let mut token_id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut token_id);
        SessionClaims {
            username: user.username.clone(),
            role: user.role,
            password_epoch: user.password_epoch,
            user_created_ms: user.created_ms,
            issued_ms: now_ms,
            expires_ms: now_ms.saturating_add(lifetime_ms),
            token_id,
            session_epoch: user.session_epoch,
        }
    }

    /// Whether these claims still describe `user` as the replica has it:
    /// same name, same account (creation time), same role and password
    /// epoch, and not ended by a logout. A password change, role change,
    /// re-creation or logout voids a token; a deleted user has no record
    /// to pass here.
    pub fn is_current(&self, user: &User) -> bool {
        self.username == user.username
            && self.user_created_ms == user.created_ms
            && self.role == user.role
            && self.password_epoch == user.password_epoch
            && !user.session_ended(&self.token_id, self.session_epoch, self.expires_ms)
    }
}

/// An issued token: a bearer credential. Zeroized on drop; `Debug` is
/// redacted.
pub struct SessionToken(Zeroizing<Vec<u8>>);

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

impl SessionToken {
    /// The bytes to hand to the client.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes, still zeroizing.
    pub fn into_bytes(self) -> Zeroizing<Vec<u8>> {
        self.0
    }
}

fn mac(domain: &DomainKey, signed: &[u8]) -> blake3::Hash {
    blake3::keyed_hash(&domain.session_mac_key(), signed)
}

/// Issues a token for `claims`, MAC'd under `domain`.
pub fn issue(domain: &DomainKey, claims: &SessionClaims) -> SessionToken {
    let mut bytes = Zeroizing::new(Vec::with_capacity(MAX_TOKEN_LEN));
    bytes.push(VERSION);
    // Cannot fail: claims are about 100 bytes (a name of at most 32
    // characters and fixed-size fields) and the codec fails only above 64 MiB.
    let encoded = codec::encode("session claims", claims).expect("session claims encode");
    bytes.extend_from_slice(&encoded);
    let tag = mac(domain, &bytes);
    bytes.extend_from_slice(tag.as_bytes());
    SessionToken(bytes)
}

/// Verifies `token` under `domain` at `now_ms` and returns its claims.
/// Never panics, whatever the bytes.
///
/// # Errors
/// [`SessionError::Malformed`] for a wrong length or version or claims that
/// do not decode, [`SessionError::BadMac`] if the MAC does not match (checked
/// in constant time, before decoding), [`SessionError::Expired`] once
/// `now_ms` reaches the expiry time.
pub fn verify(
    domain: &DomainKey,
    token: &[u8],
    now_ms: u64,
) -> Result<SessionClaims, SessionError> {
    if token.len() < 1 + MAC_LEN || token.len() > MAX_TOKEN_LEN {
        return Err(SessionError::Malformed);
    }
    let (signed, tag) = token.split_at(token.len() - MAC_LEN);
    if signed[0] != VERSION {
        return Err(SessionError::Malformed);
    }
    let tag: [u8; MAC_LEN] = tag.try_into().map_err(|_| SessionError::Malformed)?;
    // blake3::Hash equality is constant time.
    if mac(domain, signed) != blake3::Hash::from(tag) {
        return Err(SessionError::BadMac);
    }
    let claims: SessionClaims =
        codec::decode("session claims", &signed[1..]).map_err(|_| SessionError::Malformed)?;
    if now_ms >= claims.expires_ms {
        return Err(SessionError::Expired);
    }
    Ok(claims)
}

/// What a node can tell of a token before it has caught up with the
/// leader ([`judge`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Authentic under the generation this replica issues sessions under:
    /// the rest (expiry, the account as it is) is checked once caught up.
    Authentic,
    /// Authentic under an older generation: a rotation ended it.
    Ended,
    /// Authentic under no generation this replica holds: forged, of another
    /// cluster, or of a generation this node has not applied yet. Only
    /// catching up tells; until then it waits like a password check.
    Unknown,
}

/// What `token` is to `keyring` and `state` before any wait: refused as
/// malformed at once, else [`Standing`]. Cheap (one MAC per generation
/// held) and never panics.
///
/// # Errors
/// [`SessionError::Malformed`] for a wrong length or version.
pub fn judge(
    keyring: &Keyring,
    state: &hsm_state::State,
    token: &[u8],
) -> Result<Standing, SessionError> {
    if token.len() < 1 + MAC_LEN || token.len() > MAX_TOKEN_LEN || token[0] != VERSION {
        return Err(SessionError::Malformed);
    }
    let (signed, tag) = token.split_at(token.len() - MAC_LEN);
    let tag: [u8; MAC_LEN] = tag.try_into().map_err(|_| SessionError::Malformed)?;
    let authentic = |domain: &DomainKey| mac(domain, signed) == blake3::Hash::from(tag);
    let Ok(current) = keyring.for_new_secrets(state) else {
        // Between a member's removal and the rotation that follows (or
        // before the cluster is initialized) sessions are checked under
        // nothing: the check after catching up says so.
        return Ok(Standing::Unknown);
    };
    if authentic(&current) {
        return Ok(Standing::Authentic);
    }
    let older = keyring
        .in_use(state)
        .unwrap_or_default()
        .iter()
        .any(|domain| authentic(domain));
    Ok(if older {
        Standing::Ended
    } else {
        Standing::Unknown
    })
}

/// Why a token does not prove its user now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unproven {
    /// The token itself is refused.
    #[error("{0}")]
    Token(#[from] SessionError),
    /// Authentic, but the account changed since (password, role,
    /// deletion and re-creation).
    #[error("the session has ended (logged out, password changed or user deleted)")]
    Ended,
    /// The user is locked.
    #[error("user {0} is locked")]
    Locked(Username),
    /// This node cannot check sessions now: it does not hold the current
    /// domain key generation (yet).
    #[error("this node cannot check sessions now: {0}")]
    Unavailable(String),
}

/// The user `token` proves in `state` at `now_ms`, the cluster's time
/// (`crate::cluster_time`; never a follower's own clock): an authentic, unexpired
/// token under the current domain key generation, for the account exactly
/// as the state has it, not locked, not logged out; with the token's
/// claims. What the node checks for every request, and the leader for
/// every write a member forwards in a user's name. A rotation ends every
/// session issued before it.
///
/// # Errors
/// [`Unproven`] says why not.
pub fn authenticate<'s>(
    keyring: &Keyring,
    state: &'s hsm_state::State,
    token: &[u8],
    now_ms: u64,
) -> Result<(&'s User, SessionClaims), Unproven> {
    let domain = keyring
        .for_new_secrets(state)
        .map_err(|e| Unproven::Unavailable(e.to_string()))?;
    let claims = verify(&domain, token, now_ms)?;
    match state.user(&claims.username) {
        Some(user) if claims.is_current(user) => {
            if user.is_locked() {
                Err(Unproven::Locked(user.username.clone()))
            } else {
                Ok((user, claims))
            }
        }
        _ => Err(Unproven::Ended),
    }
}

#[cfg(test)]
mod tests;
