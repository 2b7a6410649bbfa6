//! The state: records, derived indexes, digest and (re)construction.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Bound;

use hsm_proto::protocol::Version;
use hsm_proto::quorum::{Service, Token};
use hsm_proto::{EventHash, KeyId, NodeId, NodeRecord, Rejection, RequestId, TokenId, Username};

use crate::entity::{Entity, EntityKey, LoadError};
use crate::quorum::Credentials;
use crate::records::{ClusterInfo, Key, Meta, RequestRecord, User};
use crate::versions::KeyVersions;

/// Most members a cluster may have.
pub const MAX_NODES: usize = 28;

/// How many write outcomes are remembered for idempotent retries. The oldest
/// are forgotten first; a retry arrives within seconds, long before that.
pub const MAX_REMEMBERED_REQUESTS: usize = 100_000;

/// blake3 digest of a whole state; equal on every replica that applied the
/// same events.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StateDigest(pub [u8; 32]);

impl fmt::Debug for StateDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StateDigest({self})")
    }
}

impl fmt::Display for StateDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// What applying one event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Accepted, or the reason it was refused.
    pub result: Result<(), Rejection>,
    /// The request id had been applied before; `result` is the outcome of
    /// that first time and nothing changed now except the chain head.
    pub replayed: bool,
    /// Entities to write (present in the state) or delete (absent).
    pub changed: BTreeSet<EntityKey>,
}

/// The replicated state of one cluster.
///
/// Fields are private: the only way to change a state is [`State::apply`]
/// (or rebuilding it with [`State::from_entities`], or deriving a new
/// cluster's first state with [`State::restored_as`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub(crate) meta: Meta,
    pub(crate) users: BTreeMap<Username, User>,
    pub(crate) keys: BTreeMap<KeyId, Key>,
    pub(crate) nodes: BTreeMap<NodeId, NodeRecord>,
    pub(crate) requests: BTreeMap<RequestId, RequestRecord>,
    /// Raised above 1 by `EventBody::ProtocolRaised`; `None` is 1.
    pub(crate) protocol: Option<Version>,
    /// Quorum values above 1 (`EventBody::QuorumValueSet`).
    pub(crate) quorum: BTreeMap<Service, u8>,
    pub(crate) credentials: BTreeMap<Username, Credentials>,
    pub(crate) tokens: BTreeMap<TokenId, Token>,
    /// Rotated keys' versions (`crate::versions`).
    pub(crate) versions: BTreeMap<KeyId, KeyVersions>,
    // Derived indexes, rebuilt on load; never stored or digested.
    pub(crate) request_order: BTreeMap<u64, RequestId>,
    pub(crate) owned: BTreeMap<Username, BTreeSet<KeyId>>,
    pub(crate) labels: BTreeMap<(Username, String), usize>,
    pub(crate) verifying_keys: crate::sign::KeyMemo,
}

impl State {
    /// An empty, uninitialized state.
    pub fn new() -> State {
        State::default()
    }

    /// Cluster facts, once initialized.
    pub fn cluster(&self) -> Option<&ClusterInfo> {
        self.meta.cluster.as_ref()
    }

    /// Hash of the last event that extended the chain; the next event must
    /// carry it as `prev_hash`.
    pub fn head(&self) -> EventHash {
        self.meta.head
    }

    /// Events that extended the chain so far.
    pub fn events(&self) -> u64 {
        self.meta.events
    }

    /// A user by name.
    pub fn user(&self, name: &Username) -> Option<&User> {
        self.users.get(name)
    }

    /// All users in name order.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// A key by id.
    pub fn key(&self, id: KeyId) -> Option<&Key> {
        self.keys.get(&id)
    }

    /// All keys in id order.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.keys.values()
    }

    /// One page of keys, in id order after `after`: those `keep` turns
    /// into an item, at most `limit`, looking at no more than `scan` keys
    /// (so a page may be short, even empty). The cursor is set while keys
    /// remain unseen.
    pub fn key_page<T>(
        &self,
        after: Option<KeyId>,
        limit: usize,
        scan: usize,
        keep: impl FnMut(&Key) -> Option<T>,
    ) -> Page<T, KeyId> {
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        page(self.keys.range((from, Bound::Unbounded)), limit, scan, keep)
    }

    /// One page of users, in name order after `after`, as
    /// [`State::key_page`] makes one of keys.
    pub fn user_page<T>(
        &self,
        after: Option<&Username>,
        limit: usize,
        scan: usize,
        keep: impl FnMut(&User) -> Option<T>,
    ) -> Page<T, Username> {
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        page(
            self.users.range::<Username, _>((from, Bound::Unbounded)),
            limit,
            scan,
            keep,
        )
    }

    /// Number of keys.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Keys owned by `user`.
    pub fn keys_owned_by(&self, user: &Username) -> impl Iterator<Item = &Key> {
        self.owned
            .get(user)
            .into_iter()
            .flatten()
            .filter_map(|id| self.keys.get(id))
    }

    /// The cluster record and the member records alone: what a node
    /// joining the cluster is told about its members, to check peers and
    /// snapshots against until its own replica records the cluster.
    pub fn roster(&self) -> State {
        State {
            meta: self.meta.clone(),
            nodes: self.nodes.clone(),
            protocol: self.protocol,
            ..State::default()
        }
    }

    /// The Raft protocol version the cluster runs: the rules `apply`
    /// follows and the oldest version a member must speak.
    pub fn protocol(&self) -> Version {
        self.protocol.unwrap_or(1)
    }

    /// A member by id.
    pub fn node(&self, id: NodeId) -> Option<&NodeRecord> {
        self.nodes.get(&id)
    }

    /// All members in id order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeRecord> {
        self.nodes.values()
    }

    /// The remembered outcome of a write, if still remembered.
    pub fn request(&self, id: &RequestId) -> Option<&RequestRecord> {
        self.requests.get(id)
    }

    /// The current entity at `key`, or `None` if absent (deleted).
    pub fn entity(&self, key: &EntityKey) -> Option<Entity> {
        match key {
            EntityKey::Meta => Some(Entity::Meta(self.meta.clone())),
            EntityKey::User(u) => self.users.get(u).cloned().map(Entity::User),
            EntityKey::Key(k) => self.keys.get(k).cloned().map(Entity::Key),
            EntityKey::Node(n) => self.nodes.get(n).cloned().map(Entity::Node),
            EntityKey::Request(r) => self.requests.get(r).cloned().map(Entity::Request),
            EntityKey::Protocol => self.protocol.map(Entity::Protocol),
            EntityKey::Quorum => {
                (!self.quorum.is_empty()).then(|| Entity::Quorum(self.quorum.clone()))
            }
            EntityKey::Credentials(u) => self.credentials.get(u).cloned().map(Entity::Credentials),
            EntityKey::Token(t) => self.tokens.get(t).cloned().map(Entity::Token),
            EntityKey::Versions(k) => self.versions.get(k).cloned().map(Entity::Versions),
        }
    }

    /// Every entity, in [`EntityKey`] order.
    pub fn entities(&self) -> impl Iterator<Item = Entity> + '_ {
        std::iter::once(Entity::Meta(self.meta.clone()))
            .chain(self.users.values().cloned().map(Entity::User))
            .chain(self.keys.values().cloned().map(Entity::Key))
            .chain(self.nodes.values().cloned().map(Entity::Node))
            .chain(self.requests.values().cloned().map(Entity::Request))
            .chain(self.protocol.map(Entity::Protocol))
            .chain((!self.quorum.is_empty()).then(|| Entity::Quorum(self.quorum.clone())))
            .chain(self.credentials.values().cloned().map(Entity::Credentials))
            .chain(self.tokens.values().cloned().map(Entity::Token))
            .chain(self.versions.values().cloned().map(Entity::Versions))
    }

    /// Number of entities [`State::entities`] yields.
    pub fn entity_count(&self) -> usize {
        1 + self.users.len()
            + self.keys.len()
            + self.nodes.len()
            + self.requests.len()
            + usize::from(self.protocol.is_some())
            + usize::from(!self.quorum.is_empty())
            + self.credentials.len()
            + self.tokens.len()
            + self.versions.len()
    }

    /// Rebuilds a state from stored entities, in any order.
    ///
    /// # Errors
    /// If an entity appears twice or a key refers to a missing user.
    pub fn from_entities(entities: impl IntoIterator<Item = Entity>) -> Result<State, LoadError> {
        let mut s = State::new();
        let mut seen_meta = false;
        for e in entities {
            let key = e.key();
            let dup = match e {
                Entity::Meta(m) => {
                    std::mem::replace(&mut seen_meta, true) || {
                        s.meta = m;
                        false
                    }
                }
                Entity::User(u) => s.users.insert(u.username.clone(), u).is_some(),
                Entity::Key(k) => s.keys.insert(k.id, k).is_some(),
                Entity::Node(n) => s.nodes.insert(n.id, n).is_some(),
                Entity::Request(r) => s.requests.insert(r.request_id, r).is_some(),
                // Only a raise records it, and only above 1: anything
                // else is not a state `apply` could have made.
                Entity::Protocol(v) if v < 2 => return Err(LoadError::UnraisedProtocol(v)),
                Entity::Protocol(v) => s.protocol.replace(v).is_some(),
                // Only values above 1 are recorded, and only while there
                // are some: anything else is not a state `apply` made.
                Entity::Quorum(values) if values.is_empty() => {
                    return Err(LoadError::Quorum("an empty quorum record".into()))
                }
                Entity::Quorum(values) => {
                    let dup = !s.quorum.is_empty();
                    s.quorum = values;
                    dup
                }
                Entity::Credentials(c) => s.credentials.insert(c.username.clone(), c).is_some(),
                Entity::Token(t) => s.tokens.insert(t.id, t).is_some(),
                Entity::Versions(v) => s.versions.insert(v.key, v).is_some(),
            };
            if dup {
                return Err(LoadError::Duplicate(key));
            }
        }
        for key in s.keys.values() {
            if !s.users.contains_key(&key.owner) {
                return Err(LoadError::DanglingOwner {
                    key: key.id,
                    owner: key.owner.clone(),
                });
            }
            if let Some(user) = key.shared_with.iter().find(|u| !s.users.contains_key(*u)) {
                return Err(LoadError::DanglingShare {
                    key: key.id,
                    user: user.clone(),
                });
            }
        }
        if let Some(v) = s
            .versions
            .values()
            .find(|v| !s.keys.contains_key(&v.key) || !v.is_consistent())
        {
            return Err(LoadError::Versions(v.key));
        }
        s.check_quorum_records()?;
        s.rebuild_indexes();
        Ok(s)
    }

    /// Records `apply` could have made: credentials and tokens of existing
    /// users, quorum values in range.
    fn check_quorum_records(&self) -> Result<(), LoadError> {
        let max = hsm_proto::quorum::MAX_QUORUM;
        if let Some((service, value)) = self.quorum.iter().find(|(_, v)| **v < 2 || **v > max) {
            return Err(LoadError::Quorum(format!(
                "service {service} has quorum value {value}"
            )));
        }
        if let Some(c) = self
            .credentials
            .keys()
            .find(|u| !self.users.contains_key(*u))
        {
            return Err(LoadError::Quorum(format!(
                "credentials of unknown user {c}"
            )));
        }
        if let Some(t) = self
            .tokens
            .values()
            .find(|t| !self.users.contains_key(&t.initiator))
        {
            return Err(LoadError::Quorum(format!(
                "token {} of unknown user {}",
                t.id, t.initiator
            )));
        }
        Ok(())
    }

    pub(crate) fn rebuild_indexes(&mut self) {
        self.request_order = self
            .requests
            .values()
            .map(|r| (r.seq, r.request_id))
            .collect();
        self.owned.clear();
        self.labels.clear();
        let keys: Vec<Key> = self.keys.values().cloned().collect();
        for key in &keys {
            self.index_key(key);
        }
    }

    pub(crate) fn index_key(&mut self, key: &Key) {
        self.owned
            .entry(key.owner.clone())
            .or_default()
            .insert(key.id);
        *self
            .labels
            .entry((key.owner.clone(), key.attributes.label.clone()))
            .or_default() += 1;
    }

    pub(crate) fn unindex_key(&mut self, key: &Key) {
        if let Some(set) = self.owned.get_mut(&key.owner) {
            set.remove(&key.id);
            if set.is_empty() {
                self.owned.remove(&key.owner);
            }
        }
        let label = (key.owner.clone(), key.attributes.label.clone());
        if let Some(n) = self.labels.get_mut(&label) {
            *n -= 1;
            if *n == 0 {
                self.labels.remove(&label);
            }
        }
    }

    /// blake3 over the canonical encoding of every entity in key order.
    pub fn digest(&self) -> StateDigest {
        let mut h = blake3::Hasher::new_derive_key("hsm-cluster state digest v1");
        for e in self.entities() {
            // Entities in memory always encode (they decoded or were built
            // within the codec's limits).
            let bytes = e.to_bytes().unwrap_or_default();
            h.update(&(bytes.len() as u64).to_be_bytes());
            h.update(&bytes);
        }
        StateDigest(*h.finalize().as_bytes())
    }
}

/// One page of a listing: its items, and the cursor the next page starts
/// after (`None` once nothing is left to see).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T, C> {
    /// The items.
    pub items: Vec<T>,
    /// The last entry looked at, when entries remain after it.
    pub next: Option<C>,
}

/// At most `limit` items `keep` makes of `entries`, looking at no more than
/// `scan` of them (each bound at least 1).
fn page<'a, C: Clone + 'a, V: 'a, T>(
    mut entries: impl Iterator<Item = (&'a C, &'a V)>,
    limit: usize,
    scan: usize,
    mut keep: impl FnMut(&V) -> Option<T>,
) -> Page<T, C> {
    let (limit, scan) = (limit.max(1), scan.max(1));
    let mut items = Vec::new();
    let mut last = None;
    for (seen, (cursor, value)) in (1..).zip(entries.by_ref()) {
        last = Some(cursor.clone());
        items.extend(keep(value));
        if items.len() >= limit || seen >= scan {
            break;
        }
    }
    let next = last.filter(|_| entries.next().is_some());
    Page { items, next }
}

#[cfg(test)]
mod page_tests {
    use super::page;
    use std::collections::BTreeMap;

    fn all_pages(map: &BTreeMap<u32, u32>, limit: usize, scan: usize) -> Vec<Vec<u32>> {
        let mut pages = Vec::new();
        let mut after = None;
        loop {
            let from = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
            let p = page(
                map.range((from, std::ops::Bound::Unbounded)),
                limit,
                scan,
                |v: &u32| (v % 3 == 0).then_some(*v),
            );
            pages.push(p.items);
            match p.next {
                Some(n) => after = Some(n),
                None => return pages,
            }
        }
    }

    #[test]
    fn pages_cover_every_kept_entry_once_within_both_bounds() {
        let map: BTreeMap<u32, u32> = (0..100).map(|i| (i, i)).collect();
        let wanted: Vec<u32> = (0..100).filter(|v| v % 3 == 0).collect();
        for (limit, scan) in [(1, 1), (5, 100), (5, 7), (1000, 10), (34, 1000), (0, 0)] {
            let pages = all_pages(&map, limit, scan);
            assert_eq!(pages.concat(), wanted, "limit {limit} scan {scan}");
            for p in &pages {
                assert!(p.len() <= limit.max(1), "limit {limit}");
            }
            // The scan bound: a page never looks past `scan` entries, so
            // with a scan of 7 and a third of entries kept, at most 3 items.
            if scan == 7 {
                assert!(pages.iter().all(|p| p.len() <= 3));
            }
        }
        // Nothing to list: one empty page, no cursor.
        assert_eq!(all_pages(&BTreeMap::new(), 10, 10), vec![Vec::<u32>::new()]);
        // A last page that is exactly full ends without an empty one after.
        let six: BTreeMap<u32, u32> = (0..6).map(|i| (i, i * 3)).collect();
        assert_eq!(
            all_pages(&six, 3, 100),
            vec![vec![0, 3, 6], vec![9, 12, 15]]
        );
    }
}
