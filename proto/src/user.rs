//! User roles.

use serde::{Deserialize, Serialize};

/// What a user may do. The role table itself lives in `hsm-state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Precrypto officer: the `admin` user of a cluster that is not yet
    /// activated. May only read and change its own password; doing so
    /// activates the cluster and makes it a crypto officer.
    Preco,
    /// Crypto officer: manages users. Never uses keys.
    Co,
    /// Crypto user: manages and uses keys it owns or that are shared with it.
    Cu,
    /// Appliance user: cloning and synchronisation only.
    Au,
}

impl Role {
    /// The name used on the command line and in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Preco => "precrypto-officer",
            Role::Co => "admin",
            Role::Cu => "crypto-user",
            Role::Au => "appliance-user",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
