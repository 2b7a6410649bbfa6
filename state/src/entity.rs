//! The state as a set of independently stored records.
//!
//! A store persists each changed [`Entity`] under its [`EntityKey`] in the
//! same write batch as the applied log index, and rebuilds the state from all
//! entities at open ([`State::from_entities`](crate::State::from_entities)).
//! Snapshots are the same entities in key order.

use hsm_proto::protocol::Version;
use hsm_proto::quorum::{Service, Token};
use hsm_proto::{codec, KeyId, NodeId, NodeRecord, RequestId, TokenId, Username};
use serde::{Deserialize, Serialize};

use crate::quorum::Credentials;
use crate::records::{Key, Meta, RequestRecord, User};
use crate::versions::KeyVersions;

/// Where an entity lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EntityKey {
    /// The cluster record and chain head.
    Meta,
    /// A user.
    User(Username),
    /// A key.
    Key(KeyId),
    /// A member node.
    Node(NodeId),
    /// A remembered write outcome.
    Request(RequestId),
    /// The Raft protocol version the cluster runs (absent: 1).
    Protocol,
    /// The quorum values (absent: every service's is 1).
    Quorum,
    /// A user's registered keys.
    Credentials(Username),
    /// A quorum token.
    Token(TokenId),
    /// A rotated key's versions.
    Versions(KeyId),
}

impl EntityKey {
    /// Canonical bytes of the key.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Encoding a small enum of ids cannot fail.
        codec::encode("entity key", self).unwrap_or_default()
    }
}

/// One stored record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entity {
    /// See [`Meta`].
    Meta(Meta),
    /// See [`User`].
    User(User),
    /// See [`Key`].
    Key(Key),
    /// See [`NodeRecord`].
    Node(NodeRecord),
    /// See [`RequestRecord`].
    Request(RequestRecord),
    /// The Raft protocol version the cluster runs, once raised above 1
    /// (`EventBody::ProtocolRaised`).
    Protocol(Version),
    /// The quorum values set above 1, by service.
    Quorum(std::collections::BTreeMap<Service, u8>),
    /// See [`Credentials`].
    Credentials(Credentials),
    /// See [`Token`].
    Token(Token),
    /// See [`KeyVersions`].
    Versions(KeyVersions),
}

impl Entity {
    /// The key this entity is stored under.
    pub fn key(&self) -> EntityKey {
        match self {
            Entity::Meta(_) => EntityKey::Meta,
            Entity::User(u) => EntityKey::User(u.username.clone()),
            Entity::Key(k) => EntityKey::Key(k.id),
            Entity::Node(n) => EntityKey::Node(n.id),
            Entity::Request(r) => EntityKey::Request(r.request_id),
            Entity::Protocol(_) => EntityKey::Protocol,
            Entity::Quorum(_) => EntityKey::Quorum,
            Entity::Credentials(c) => EntityKey::Credentials(c.username.clone()),
            Entity::Token(t) => EntityKey::Token(t.id),
            Entity::Versions(v) => EntityKey::Versions(v.key),
        }
    }

    /// Canonical bytes of the entity.
    ///
    /// # Errors
    /// Only if the entity exceeds the codec's size limit.
    pub fn to_bytes(&self) -> Result<Vec<u8>, codec::CodecError> {
        codec::encode("entity", self)
    }

    /// Decodes an entity.
    ///
    /// # Errors
    /// If the bytes are not a canonical entity.
    pub fn from_bytes(bytes: &[u8]) -> Result<Entity, codec::CodecError> {
        codec::decode("entity", bytes)
    }
}

/// Entities that do not form a consistent state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The same record appears twice.
    #[error("duplicate entity {0:?}")]
    Duplicate(EntityKey),
    /// A key names an owner that does not exist.
    #[error("key {key} is owned by unknown user {owner}")]
    DanglingOwner {
        /// The key.
        key: KeyId,
        /// The missing owner.
        owner: Username,
    },
    /// A recorded Raft protocol version below 2 (version 1 is recorded by
    /// no record at all).
    #[error("recorded Raft protocol version {0} was never raised to")]
    UnraisedProtocol(Version),
    /// Credentials or a token of a user that does not exist, or a quorum
    /// value out of range.
    #[error("inconsistent quorum records: {0}")]
    Quorum(String),
    /// A versions record of a key that does not exist, or one `apply`
    /// could not have made.
    #[error("key {0} has an inconsistent versions record")]
    Versions(KeyId),
    /// A key is shared with a user that does not exist.
    #[error("key {key} is shared with unknown user {user}")]
    DanglingShare {
        /// The key.
        key: KeyId,
        /// The missing user.
        user: Username,
    },
}
