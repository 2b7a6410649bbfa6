//! A small test harness: one cluster state, deterministic node signing keys,
//! and helpers that build, chain, sign and apply events.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeSet;

use ed25519_dalek::SigningKey;
use hsm_proto::{
    Actor, ClusterId, Event, EventBody, KeyAttribute, KeyAttributes, KeyFlag, KeyId, KeySpec,
    NodeId, NodeRecord, Rejection, RequestId, Role, SignedEvent, Username,
};
use hsm_state::{sign_event, Applied, EntityKey, State};

/// A valid-looking Argon2id PHC string (apply only checks the prefix).
pub const HASH: &str = "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA";
/// Another one, for password changes.
pub const HASH2: &str = "$argon2id$v=19$m=8,t=1,p=1$c2FsdDI$aGFzaDI";
/// Not an Argon2id PHC string.
pub const BAD_HASH: &str = "$2b$12$notargon";

/// The first node of every test cluster.
pub const FIRST: NodeId = NodeId(1);

/// A user name (panics on an invalid one: test input only).
pub fn user(name: &str) -> Username {
    Username::new(name).unwrap()
}

/// The deterministic signing key of node `id`.
pub fn node_key(id: u64) -> SigningKey {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&id.to_be_bytes());
    bytes[8..16].copy_from_slice(b"testnode");
    SigningKey::from_bytes(&bytes)
}

/// The member record of node `id`, with its deterministic keys.
pub fn node_record(id: u64) -> NodeRecord {
    NodeRecord {
        id: NodeId(id),
        signing_key: node_key(id).verifying_key().to_bytes(),
        agreement_key: [id as u8; 32],
        transport_key: [id as u8; 32],
        zone: format!("zone-{}", id % 3),
        address: format!("10.0.0.{id}:7000"),
    }
}

/// The init event body for node `first`.
pub fn init_body(first: u64, admin_hash: &str) -> EventBody {
    EventBody::ClusterInitialized {
        cluster_id: ClusterId([7; 16]),
        first_node: node_record(first),
        other_nodes: vec![],
        admin_password_hash: admin_hash.into(),
        domain_check: [0; 32],
    }
}

/// A login attempt of `name`, recorded before its password is checked.
pub fn login_attempt(name: &str) -> EventBody {
    EventBody::LoginFailed {
        username: user(name),
    }
}

/// The password of the attempt `reservation` of `name` was wrong.
pub fn login_rejected(name: &str, reservation: RequestId) -> EventBody {
    EventBody::LoginRejected {
        username: user(name),
        reservation,
    }
}

/// The password of the attempt `reservation` of `name` was right.
pub fn login_ok(name: &str, reservation: RequestId) -> EventBody {
    EventBody::LoginSucceeded {
        username: user(name),
        reservation,
    }
}

/// `name`'s change of its own password to `hash`, its current one checked
/// under `reservation`.
pub fn own_pw(name: &str, hash: &str, reservation: RequestId) -> EventBody {
    EventBody::OwnPasswordChanged {
        username: user(name),
        password_hash: hash.into(),
        reservation,
    }
}

/// Attributes with a label and everything else at its default.
pub fn attrs(label: &str) -> KeyAttributes {
    KeyAttributes {
        label: label.into(),
        encrypt: true,
        decrypt: true,
        ..KeyAttributes::default()
    }
}

/// A valid AES-256 key creation.
pub fn aes_key(id: u64, label: &str, unique_label: bool) -> EventBody {
    EventBody::KeyCreated {
        key: KeyId(id),
        spec: KeySpec::Aes { bits: 256 },
        attributes: attrs(label),
        provenance: hsm_proto::KeyProvenance::known_outside(hsm_proto::KeyOrigin::Imported),
        domain_generation: 0,
        wrapped_material: vec![0xAB; 48],
        public_key: Vec::new(),
        unique_label,
    }
}

/// [`aes_key`] with its material under domain key generation `generation`.
pub fn aes_key_at(id: u64, label: &str, unique_label: bool, generation: u32) -> EventBody {
    let mut body = aes_key(id, label, unique_label);
    if let EventBody::KeyCreated {
        domain_generation, ..
    } = &mut body
    {
        *domain_generation = generation;
    }
    body
}

/// A valid Ed25519 key pair creation.
pub fn ed_key(id: u64, label: &str) -> EventBody {
    EventBody::KeyCreated {
        key: KeyId(id),
        spec: KeySpec::Ed25519,
        attributes: attrs(label),
        provenance: hsm_proto::KeyProvenance::known_outside(hsm_proto::KeyOrigin::Imported),
        domain_generation: 0,
        wrapped_material: vec![0xCD; 64],
        public_key: vec![0x30; 44],
        unique_label: false,
    }
}

/// A stand-in for a domain key sealed to a member (apply checks only its
/// version and size).
pub fn sealed_key() -> hsm_proto::SealedDomainKey {
    hsm_proto::SealedDomainKey {
        version: 1,
        ephemeral_public: [9; 32],
        nonce: [8; 12],
        ciphertext: vec![7; 48],
    }
}

/// A rotation to `generation`, sealed to nodes `to`.
pub fn rotation(generation: u32, to: &[u64]) -> EventBody {
    EventBody::DomainKeyRotated {
        generation,
        check: [generation as u8; 32],
        sealed: to.iter().map(|i| (NodeId(*i), sealed_key())).collect(),
    }
}

/// A flag change.
pub fn set_flag(id: u64, flag: KeyFlag, value: bool) -> EventBody {
    EventBody::KeyAttributeSet {
        key: KeyId(id),
        attribute: KeyAttribute::Flag(flag, value),
    }
}

/// The actor for user `name`.
pub fn as_user(name: &str) -> Actor {
    Actor::User(user(name))
}

/// A test cluster: the state plus the means to feed it well-formed events.
#[derive(Clone)]
pub struct Cluster {
    /// The state under test.
    pub state: State,
    /// The node that signs the next events.
    pub signer: NodeId,
    next_request: u64,
    now_ms: u64,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster::new()
    }
}

impl Cluster {
    /// An empty, uninitialized cluster state.
    pub fn new() -> Cluster {
        Cluster {
            state: State::new(),
            signer: FIRST,
            next_request: 0,
            now_ms: 1_700_000_000_000,
        }
    }

    /// An initialized (not activated) cluster.
    pub fn initialized() -> Cluster {
        let mut c = Cluster::new();
        c.init().result.unwrap();
        c
    }

    /// An initialized and activated cluster (`admin` is a crypto officer).
    pub fn activated() -> Cluster {
        let mut c = Cluster::initialized();
        c.activate();
        c
    }

    /// An activated cluster with the given extra users.
    pub fn with_users(users: &[(&str, Role)]) -> Cluster {
        let mut c = Cluster::activated();
        for (name, role) in users {
            c.create_user(name, *role);
        }
        c
    }

    /// A fresh request id (distinct from every earlier one of this cluster).
    pub fn next_request_id(&mut self) -> RequestId {
        self.next_request += 1;
        let mut id = [0u8; 16];
        id[8..].copy_from_slice(&self.next_request.to_be_bytes());
        RequestId(id)
    }

    /// An unsigned event with a fresh request id, the next timestamp and the
    /// current head as `prev_hash`.
    pub fn event(&mut self, actor: Actor, body: EventBody) -> Event {
        let request_id = self.next_request_id();
        self.event_with_id(request_id, actor, body)
    }

    /// Like [`Cluster::event`] with a given request id (for retries).
    pub fn event_with_id(&mut self, request_id: RequestId, actor: Actor, body: EventBody) -> Event {
        self.now_ms += 1_000;
        Event {
            request_id,
            timestamp_ms: self.now_ms,
            actor,
            prev_hash: self.state.head(),
            body,
        }
    }

    /// Signs as the current signer.
    pub fn sign(&self, event: Event) -> SignedEvent {
        sign_event(event, self.signer, &node_key(self.signer.0))
    }

    /// Builds, signs and applies one event.
    pub fn submit(&mut self, actor: Actor, body: EventBody) -> Applied {
        let event = self.event(actor, body);
        let signed = self.sign(event);
        self.state.apply(&signed)
    }

    /// Applies an already signed event.
    pub fn apply(&mut self, signed: &SignedEvent) -> Applied {
        self.state.apply(signed)
    }

    /// An event by user `name`.
    pub fn by(&mut self, name: &str, body: EventBody) -> Applied {
        self.submit(as_user(name), body)
    }

    /// An event by node `id` (login bookkeeping). A login outcome is
    /// written under its attempt's outcome id for the account as it is
    /// now ([`hsm_state::login_outcome_id`]), as a node does.
    pub fn by_node(&mut self, id: u64, body: EventBody) -> Applied {
        let outcome_of = match &body {
            EventBody::LoginRejected {
                username,
                reservation,
            }
            | EventBody::LoginSucceeded {
                username,
                reservation,
            } => self
                .state
                .user(username)
                .map(|u| hsm_state::login_outcome_id(*reservation, u)),
            _ => None,
        };
        match outcome_of {
            Some(request_id) => self.by_node_as(id, request_id, body),
            None => self.submit(Actor::Node(NodeId(id)), body),
        }
    }

    /// The id the outcome of `name`'s login attempt `reservation` is
    /// recorded under, for the account as it is now.
    pub fn outcome_id(&self, name: &str, reservation: RequestId) -> RequestId {
        let u = self.state.user(&user(name)).expect("the user exists");
        hsm_state::login_outcome_id(reservation, u)
    }

    /// An event by node `id` under request id `request_id`.
    pub fn by_node_as(&mut self, id: u64, request_id: RequestId, body: EventBody) -> Applied {
        let event = self.event_with_id(request_id, Actor::Node(NodeId(id)), body);
        let signed = self.sign(event);
        self.apply(&signed)
    }

    /// Initializes the cluster with node 1 and admin password [`HASH`].
    pub fn init(&mut self) -> Applied {
        self.signer = FIRST;
        self.by_node(FIRST.0, init_body(FIRST.0, HASH))
    }

    /// Admin changes its own password, which activates the cluster.
    pub fn activate(&mut self) {
        self.change_own_password("admin", HASH2).result.unwrap();
    }

    /// `name` changes its own password to `hash`: node 1 reserves the
    /// check of the current one, then the change names that reservation.
    pub fn change_own_password(&mut self, name: &str, hash: &str) -> Applied {
        let reservation = self.reserve_login(FIRST.0, name);
        self.by(name, own_pw(name, hash, reservation))
    }

    /// Admin approves member `id` ([`node_record`]; panics if refused).
    pub fn add_member(&mut self, id: u64) {
        self.by(
            "admin",
            EventBody::NodeAdded {
                node: node_record(id),
            },
        )
        .result
        .unwrap();
    }

    /// Admin creates a user (panics if refused).
    pub fn create_user(&mut self, name: &str, role: Role) {
        let a = self.by(
            "admin",
            EventBody::UserCreated {
                username: user(name),
                role,
                password_hash: HASH.into(),
            },
        );
        assert_eq!(a.result, Ok(()), "creating {name}");
    }

    /// `owner` creates an AES key (panics if refused).
    pub fn create_key(&mut self, owner: &str, id: u64, label: &str) {
        let a = self.by(owner, aes_key(id, label, false));
        assert_eq!(a.result, Ok(()), "creating key {id}");
    }

    /// `owner` shares key `id` with `with` (panics if refused).
    pub fn share(&mut self, owner: &str, id: u64, with: &str) {
        let a = self.by(
            owner,
            EventBody::KeyShared {
                key: KeyId(id),
                with: user(with),
            },
        );
        assert_eq!(a.result, Ok(()), "sharing key {id} with {with}");
    }

    /// The leader time of the last event built.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Moves the leader's clock `ms` on (the next event is built `ms` plus
    /// the usual second later).
    pub fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
    }

    /// A login attempt of `name` reserved by node `node`: applies it and
    /// returns the reservation (its request id), whatever the outcome.
    pub fn try_reserve_login(&mut self, node: u64, name: &str) -> (RequestId, Applied) {
        let id = self.next_request_id();
        let event = self.event_with_id(id, Actor::Node(NodeId(node)), login_attempt(name));
        let signed = self.sign(event);
        (id, self.apply(&signed))
    }

    /// [`Cluster::try_reserve_login`], asserting it was reserved.
    pub fn reserve_login(&mut self, node: u64, name: &str) -> RequestId {
        let (id, a) = self.try_reserve_login(node, name);
        assert_eq!(a.result, Ok(()), "reserving a login of {name}");
        id
    }

    /// `times` failed logins of `name`, reported by node 1: each attempt
    /// recorded, then its wrong password.
    pub fn fail_logins(&mut self, name: &str, times: usize) {
        for _ in 0..times {
            let id = self.reserve_login(FIRST.0, name);
            let a = self.by_node(FIRST.0, login_rejected(name, id));
            assert_eq!(a.result, Ok(()));
        }
    }

    /// Applies `body` by `actor` and asserts it is refused with `want` and
    /// changes nothing but the chain head, event count and request record.
    pub fn expect_refused(&mut self, actor: Actor, body: EventBody, want: Rejection) {
        let before = self.state.clone();
        let a = self.submit(actor, body);
        assert_eq!(a.result, Err(want));
        assert!(!a.replayed);
        assert_only_chain_changed(&before, &self.state);
    }

    /// Shorthand for [`Cluster::expect_refused`] by a user.
    pub fn refused(&mut self, name: &str, body: EventBody, want: Rejection) {
        self.expect_refused(as_user(name), body, want);
    }
}

/// Every entity key present in either state.
pub fn all_entity_keys(a: &State, b: &State) -> BTreeSet<EntityKey> {
    a.entities().chain(b.entities()).map(|e| e.key()).collect()
}

/// The entity keys whose value differs between `a` and `b`.
pub fn diff(a: &State, b: &State) -> BTreeSet<EntityKey> {
    all_entity_keys(a, b)
        .into_iter()
        .filter(|k| a.entity(k) != b.entity(k))
        .collect()
}

/// Asserts users, keys and nodes are equal and only the chain (meta) and at
/// most request records differ.
pub fn assert_only_chain_changed(before: &State, after: &State) {
    assert_eq!(
        before.users().collect::<Vec<_>>(),
        after.users().collect::<Vec<_>>()
    );
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        before.nodes().collect::<Vec<_>>(),
        after.nodes().collect::<Vec<_>>()
    );
    assert_eq!(before.cluster(), after.cluster());
    for k in diff(before, after) {
        assert!(
            matches!(k, EntityKey::Meta | EntityKey::Request(_)),
            "unexpected change to {k:?}"
        );
    }
}
