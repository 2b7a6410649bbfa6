//! Identifier newtypes. Each is its own type so a key id can never be passed
//! where a node id is expected.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A cluster member. Also the Raft node id.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

impl From<u64> for NodeId {
    fn from(v: u64) -> Self {
        NodeId(v)
    }
}

/// A key held by the cluster. Chosen by the leader when the key is created and
/// never reused while the key exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeyId(pub u64);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:016x}", self.0)
    }
}

/// A user name: 1 to 32 characters, ASCII letters, digits, `_`, `-` and `.`,
/// starting with a letter. Validated on construction and on decode.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

/// The longest user name accepted, in characters.
pub const MAX_USERNAME_LEN: usize = 32;

impl Username {
    /// Validates and wraps a user name.
    ///
    /// # Errors
    /// Returns a description of the rule the name breaks.
    pub fn new(name: impl Into<String>) -> Result<Self, String> {
        let name = name.into();
        let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
        let rest_ok = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if name.is_empty() || name.len() > MAX_USERNAME_LEN || !first_ok || !rest_ok {
            return Err(format!(
                "invalid user name {name:?}: expected 1 to {MAX_USERNAME_LEN} ASCII letters, \
                 digits, '_', '-' or '.', starting with a letter"
            ));
        }
        Ok(Username(name))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Username {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Username::new(s)
    }
}

impl From<Username> for String {
    fn from(u: Username) -> String {
        u.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! byte_id {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(#[serde(with = "serde_bytes")] pub [u8; $len]);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), hex::encode(self.0))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }
    };
}

byte_id!(
    /// Idempotency id of a write. A retried write carries the same id and is
    /// applied once.
    RequestId,
    16
);
byte_id!(
    /// Identity of a cluster, fixed at init and carried into its backups.
    ClusterId,
    16
);
byte_id!(
    /// blake3 hash of an event's canonical encoding; links each event to the
    /// previous one.
    EventHash,
    32
);
byte_id!(
    /// An ed25519 signature.
    Signature,
    64
);

byte_id!(
    /// A quorum token: an officer's operation waiting for approvals.
    TokenId,
    16
);

impl std::str::FromStr for TokenId {
    type Err = String;
    fn from_str(s: &str) -> Result<TokenId, String> {
        let wrong = || format!("a token id is 32 hex digits, not {s:?}");
        let bytes = hex::decode(s.trim()).map_err(|_| wrong())?;
        bytes.try_into().map(TokenId).map_err(|_| wrong())
    }
}

impl EventHash {
    /// The hash that the first event of a cluster points back to.
    pub const GENESIS: EventHash = EventHash([0; 32]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_validated_on_construction_and_decode() {
        assert!(Username::new("alice").is_ok());
        assert!(Username::new("a.b-c_9").is_ok());
        for bad in ["", "9lives", "has space", "ünï", &"x".repeat(33)] {
            assert!(Username::new(bad).is_err(), "{bad:?} accepted");
        }
        let bytes = crate::codec::encode("s", &String::from("no way")).expect("encodes");
        assert!(crate::codec::decode::<Username>("user", &bytes).is_err());
    }
}
