//! Property tests: random event sequences against an independent, simple
//! model of the rules, and replica determinism.
//!
//! The model below is written from the rules as specified, with plain maps
//! and no calls into `hsm_state`'s rule code. After every step the real
//! state's verdict (accepted, or which refusal) and its observable
//! projection must agree with the model's.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{diff, init_body, node_key, node_record, HASH, HASH2};
use hsm_proto::{
    Actor, Event, EventBody, EventHash, KeyAttribute, KeyAttributes, KeyFlag, KeyId,
    KeyPolicyError, KeySpec, NodeId, NodeRecord, Rejection, RequestId, Role, SignedEvent, Username,
};
use hsm_state::{sign_event, Applied, EntityKey, State, LOGIN_RESERVATION_TTL_MS};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

// ---------------------------------------------------------------- operations

/// The user universe: index 0 is `admin`.
const USERS: [&str; 4] = ["admin", "u1", "u2", "u3"];
const LOCK_AFTER: u8 = 5;
const MAX_MEMBERS: usize = 28;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    /// A user of the universe.
    User(usize),
    /// A user name that is never created.
    Ghost,
    /// The i-th current member node (mod the number of members).
    Member(usize),
    /// A node that is never a member.
    NonMember,
    /// The owner of the key the op names (else as `CryptoUser(0)`).
    KeyOwner,
    /// The i-th crypto user (mod their number; `admin` if there is none).
    CryptoUser(usize),
    /// A user the op's key is shared with (else as `KeyOwner`).
    Sharee,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Label {
    A,
    B,
    /// Over the 127 byte limit.
    Long,
}

impl Label {
    fn text(self) -> String {
        match self {
            Label::A => "a".into(),
            Label::B => "b".into(),
            Label::Long => "x".repeat(128),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Aes,
    Ed,
    /// AES with an unsupported size.
    BadSpec,
    NoMaterial,
    /// A symmetric key with a public half.
    AesWithPublic,
    /// A pair without its public half.
    EdWithoutPublic,
}

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Init {
        good_hash: bool,
        by_first: bool,
    },
    CreateUser {
        user: usize,
        role: Role,
        good_hash: bool,
    },
    DeleteUser {
        user: usize,
    },
    ChangePassword {
        user: usize,
        good_hash: bool,
    },
    /// The actor's change of `user`'s password as its own, the current
    /// password checked under the reservation `attempt`.
    ChangeOwnPassword {
        user: usize,
        good_hash: bool,
        attempt: Attempt,
    },
    LoginFailed {
        user: usize,
    },
    LoginRejected {
        user: usize,
        attempt: Attempt,
    },
    LoginSucceeded {
        user: usize,
        attempt: Attempt,
    },
    Unlock {
        user: usize,
    },
    CreateKey {
        key: u64,
        kind: KeyKind,
        label: Label,
        unique: bool,
        trusted: bool,
        sensitive: bool,
        extractable: bool,
    },
    Share {
        key: u64,
        /// `None`: a crypto user that may get it, chosen when applied.
        with: Option<usize>,
    },
    Unshare {
        key: u64,
        /// `None`: a user the key is shared with, chosen when applied.
        with: Option<usize>,
    },
    SetLabel {
        key: u64,
        label: Label,
    },
    SetFlag {
        key: u64,
        flag: KeyFlag,
        value: bool,
    },
    DeleteKey {
        key: u64,
    },
    AddNode {
        node: u64,
        /// Carry node 1's signing key instead of its own.
        reuse_key: bool,
    },
    RemoveNode {
        node: u64,
    },
}

/// The reservation an outcome names.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Attempt {
    /// The i-th login attempt made so far, newest first (modulo their
    /// number; any user's, live, expired or refused), chosen when applied.
    Pick(usize),
    /// A request id no attempt was made under.
    Ghost,
    /// The request id of a `LoginFailed` event (or of none).
    Id(u128),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tamper {
    /// A flipped signature bit.
    Signature,
    /// A `prev_hash` that is not the head.
    PrevHash,
    /// Signed by a node that is not a member.
    Signer,
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// A well-formed event.
    Do(Who, Op),
    /// A retry: the request id, actor and body of an earlier step (index
    /// taken modulo the steps so far), re-chained and re-signed.
    Retry(usize),
    /// A well-formed event, then tampered with.
    Tampered(Tamper, Who, Op),
    /// A well-formed event after the leader's clock moved on this many ms
    /// (around a login reservation's time-to-live).
    Later(u64, Who, Op),
}

fn user_index() -> impl Strategy<Value = usize> {
    0..USERS.len()
}

/// Login events mostly target u1, so lockouts happen.
fn login_target() -> impl Strategy<Value = usize> {
    prop_oneof![3 => Just(1usize), 2 => user_index()]
}

/// Key 1 and 2 are the busy ones.
fn key_id() -> impl Strategy<Value = u64> {
    prop_oneof![2 => Just(1u64), 2 => Just(2u64), 1 => 3..=4u64]
}

fn label() -> impl Strategy<Value = Label> {
    prop_oneof![8 => Just(Label::A), 8 => Just(Label::B), 1 => Just(Label::Long)]
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![
        1 => Just(Role::Preco),
        3 => Just(Role::Co),
        5 => Just(Role::Cu),
        2 => Just(Role::Au),
    ]
}

fn key_kind() -> impl Strategy<Value = KeyKind> {
    prop_oneof![
        8 => Just(KeyKind::Aes),
        4 => Just(KeyKind::Ed),
        1 => Just(KeyKind::BadSpec),
        1 => Just(KeyKind::NoMaterial),
        1 => Just(KeyKind::AesWithPublic),
        1 => Just(KeyKind::EdWithoutPublic),
    ]
}

fn flag() -> impl Strategy<Value = KeyFlag> {
    prop_oneof![
        Just(KeyFlag::Sensitive),
        Just(KeyFlag::Extractable),
        Just(KeyFlag::Trusted),
        Just(KeyFlag::Sign),
    ]
}

fn rarely(p_true: f64) -> impl Strategy<Value = bool> {
    proptest::bool::weighted(p_true)
}

/// The actor of a user event: mostly a user, now and then someone else.
fn user_actor() -> impl Strategy<Value = Who> {
    prop_oneof![
        20 => user_index().prop_map(Who::User),
        1 => Just(Who::Ghost),
        1 => (0..3usize).prop_map(Who::Member),
    ]
}

/// The actor of a login event: mostly a member node.
fn node_actor() -> impl Strategy<Value = Who> {
    prop_oneof![
        12 => (0..3usize).prop_map(Who::Member),
        1 => Just(Who::NonMember),
        1 => user_index().prop_map(Who::User),
    ]
}

fn user_op() -> impl Strategy<Value = (Who, Op)> {
    let create_key = (
        key_id(),
        key_kind(),
        label(),
        rarely(0.4),
        rarely(0.05),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(key, kind, label, unique, trusted, sensitive, extractable)| Op::CreateKey {
                key,
                kind,
                label,
                unique,
                trusted,
                sensitive,
                extractable,
            },
        );
    let user_op = prop_oneof![
        3 => (user_index(), role(), rarely(0.9))
            .prop_map(|(user, role, good_hash)| Op::CreateUser { user, role, good_hash }),
        2 => user_index().prop_map(|user| Op::DeleteUser { user }),
        2 => (user_index(), rarely(0.9))
            .prop_map(|(user, good_hash)| Op::ChangePassword { user, good_hash }),
        2 => (user_index(), rarely(0.9), attempt())
            .prop_map(|(user, good_hash, attempt)| Op::ChangeOwnPassword { user, good_hash, attempt }),
        2 => user_index().prop_map(|user| Op::Unlock { user }),
        2 => (1..=4u64, rarely(0.15)).prop_map(|(node, reuse_key)| Op::AddNode { node, reuse_key }),
        1 => (1..=4u64).prop_map(|node| Op::RemoveNode { node }),
    ];
    let user_op = (user_actor(), user_op, any::<bool>()).prop_map(|(who, op, own)| {
        match (who, op) {
            // A password change is often the actor's own.
            (Who::User(u), Op::ChangePassword { good_hash, .. }) if own => {
                (who, Op::ChangePassword { user: u, good_hash })
            }
            (
                Who::User(u),
                Op::ChangeOwnPassword {
                    good_hash, attempt, ..
                },
            ) if own => (
                who,
                Op::ChangeOwnPassword {
                    user: u,
                    good_hash,
                    attempt,
                },
            ),
            (who, op) => (who, op),
        }
    });
    // Key management, half of the time by the key's owner.
    let key_op = prop_oneof![
        4 => (key_id(), proptest::option::weighted(0.5, user_index()))
            .prop_map(|(key, with)| Op::Share { key, with }),
        3 => (key_id(), proptest::option::weighted(0.3, user_index()))
            .prop_map(|(key, with)| Op::Unshare { key, with }),
        2 => (key_id(), label()).prop_map(|(key, label)| Op::SetLabel { key, label }),
        5 => (key_id(), flag(), any::<bool>())
            .prop_map(|(key, flag, value)| Op::SetFlag { key, flag, value }),
        2 => key_id().prop_map(|key| Op::DeleteKey { key }),
    ];
    let key_actor = prop_oneof![
        6 => Just(Who::KeyOwner),
        1 => Just(Who::Sharee),
        3 => user_actor(),
    ];
    let creator = prop_oneof![2 => (0..3usize).prop_map(Who::CryptoUser), 1 => user_actor()];
    prop_oneof![
        6 => user_op,
        3 => (creator, create_key),
        6 => (key_actor, key_op),
    ]
}

fn node_op() -> impl Strategy<Value = (Who, Op)> {
    let op = prop_oneof![
        4 => login_target().prop_map(|user| Op::LoginFailed { user }),
        3 => (login_target(), attempt()).prop_map(|(user, attempt)| Op::LoginRejected { user, attempt }),
        1 => (login_target(), attempt()).prop_map(|(user, attempt)| Op::LoginSucceeded { user, attempt }),
    ];
    (node_actor(), op)
}

/// Mostly one of the newest attempts, as a node answers its own.
fn attempt() -> impl Strategy<Value = Attempt> {
    prop_oneof![
        8 => (0..3usize).prop_map(Attempt::Pick),
        2 => any::<usize>().prop_map(Attempt::Pick),
        1 => Just(Attempt::Ghost),
    ]
}

/// A pause around a reservation's time-to-live.
fn pause() -> impl Strategy<Value = u64> {
    let ttl = LOGIN_RESERVATION_TTL_MS;
    prop_oneof![
        Just(ttl - 11),
        Just(ttl - 10),
        Just(ttl),
        Just(ttl / 2),
        0..2 * ttl,
    ]
}

fn init_op() -> impl Strategy<Value = (Who, Op)> {
    (rarely(0.8), rarely(0.8)).prop_map(|(good_hash, by_first)| {
        (
            Who::Member(0),
            Op::Init {
                good_hash,
                by_first,
            },
        )
    })
}

fn any_op() -> impl Strategy<Value = (Who, Op)> {
    prop_oneof![12 => user_op(), 4 => node_op(), 1 => init_op()]
}

fn step() -> impl Strategy<Value = Step> {
    let tamper = prop_oneof![
        Just(Tamper::Signature),
        Just(Tamper::PrevHash),
        Just(Tamper::Signer)
    ];
    prop_oneof![
        40 => any_op().prop_map(|(w, o)| Step::Do(w, o)),
        4 => any::<usize>().prop_map(Step::Retry),
        2 => (tamper, any_op()).prop_map(|(t, (w, o))| Step::Tampered(t, w, o)),
        3 => (pause(), any_op()).prop_map(|(ms, (w, o))| Step::Later(ms, w, o)),
    ]
}

/// A start that gets somewhere most of the time: init, activation, users.
fn prefix() -> impl Strategy<Value = Vec<Step>> {
    let init = Step::Do(
        Who::Member(0),
        Op::Init {
            good_hash: true,
            by_first: true,
        },
    );
    // Admin's current password checked, then set anew.
    let check = Step::Do(Who::Member(0), Op::LoginFailed { user: 0 });
    let activate = Step::Do(
        Who::User(0),
        Op::ChangeOwnPassword {
            user: 0,
            good_hash: true,
            attempt: Attempt::Pick(0),
        },
    );
    let roles = proptest::collection::vec(
        prop_oneof![1 => Just(Role::Co), 3 => Just(Role::Cu), 1 => Just(Role::Au)],
        3,
    );
    let (i1, c1, a1, i2) = (init.clone(), check.clone(), activate.clone(), init.clone());
    prop_oneof![
        1 => Just(vec![]),
        1 => Just(vec![init]),
        1 => Just(vec![i2, check, activate]),
        12 => (roles, any::<[bool; 4]>()).prop_map(move |(roles, flags)| {
            let mut v = vec![i1.clone(), c1.clone(), a1.clone()];
            for (i, role) in roles.into_iter().enumerate() {
                let op = Op::CreateUser { user: i + 1, role, good_hash: true };
                v.push(Step::Do(Who::User(0), op));
            }
            for key in [1u64, 2] {
                let op = Op::CreateKey {
                    key,
                    kind: KeyKind::Aes,
                    label: Label::A,
                    unique: false,
                    trusted: false,
                    sensitive: flags[key as usize],
                    extractable: flags[key as usize + 1],
                };
                v.push(Step::Do(Who::CryptoUser(key as usize), op));
            }
            v.push(Step::Do(Who::KeyOwner, Op::Share { key: 1, with: None }));
            v
        }),
    ]
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    (prefix(), proptest::collection::vec(step(), 10..60)).prop_map(|(mut p, rest)| {
        p.extend(rest);
        p
    })
}

// ---------------------------------------------------------------- the model

/// A refusal as the model predicts it: the variant and its simple payload.
#[derive(Debug, Clone, PartialEq, Eq)]
enum R {
    RequestIdReused,
    BadSignature(u64),
    UnknownSigner(u64),
    ChainMismatch,
    NotInitialized,
    AlreadyInitialized,
    NotActivated,
    UnknownActor,
    RoleDenied(Role),
    Locked(String),
    LoginsInProgress(String),
    LoginExpired(String),
    UserExists(String),
    UserNotFound(String),
    InvalidRole(Role),
    UserOwnsKeys(String, usize),
    CannotDeleteSelf,
    NotLocked(String),
    KeyExists(u64),
    KeyNotFound(u64),
    NotOwner(u64),
    LabelNotUnique(String),
    AttributeRatchet(KeyFlag),
    InvalidKeySpec,
    InvalidKey,
    InvalidShare(String),
    NodeExists(u64),
    NodeNotFound(u64),
    Membership,
    InvalidPasswordHash,
    CurrentPasswordNeeded,
    Policy(KeyPolicyError),
    /// A member was removed and the domain key not rotated (the model
    /// never rotates).
    RotationDue,
}

/// The real refusal, reduced to what the model predicts.
fn reduce(r: &Rejection) -> R {
    match r {
        Rejection::BadSignature(n) => R::BadSignature(n.0),
        Rejection::UnknownSigner(n) => R::UnknownSigner(n.0),
        Rejection::ChainMismatch => R::ChainMismatch,
        Rejection::NotInitialized => R::NotInitialized,
        Rejection::AlreadyInitialized => R::AlreadyInitialized,
        Rejection::NotActivated => R::NotActivated,
        Rejection::UnknownActor(_) => R::UnknownActor,
        Rejection::RoleDenied { role, .. } => R::RoleDenied(*role),
        Rejection::Locked(u) => R::Locked(u.to_string()),
        Rejection::LoginsInProgress(u) => R::LoginsInProgress(u.to_string()),
        Rejection::LoginExpired(u) => R::LoginExpired(u.to_string()),
        Rejection::UserExists(u) => R::UserExists(u.to_string()),
        Rejection::UserNotFound(u) => R::UserNotFound(u.to_string()),
        Rejection::InvalidRole(r) => R::InvalidRole(*r),
        Rejection::UserOwnsKeys { user, keys } => R::UserOwnsKeys(user.to_string(), *keys),
        Rejection::CannotDeleteSelf => R::CannotDeleteSelf,
        Rejection::NotLocked(u) => R::NotLocked(u.to_string()),
        Rejection::KeyExists(k) => R::KeyExists(k.0),
        Rejection::KeyNotFound(k) => R::KeyNotFound(k.0),
        Rejection::NotOwner { key, .. } => R::NotOwner(key.0),
        Rejection::LabelNotUnique(l) => R::LabelNotUnique(l.clone()),
        Rejection::AttributeRatchet(f) => R::AttributeRatchet(*f),
        Rejection::InvalidKeySpec => R::InvalidKeySpec,
        Rejection::InvalidKey(_) => R::InvalidKey,
        Rejection::InvalidShare(u, _) => R::InvalidShare(u.to_string()),
        Rejection::NodeExists(n) => R::NodeExists(n.0),
        Rejection::NodeNotFound(n) => R::NodeNotFound(n.0),
        Rejection::Membership(_) => R::Membership,
        Rejection::InvalidPasswordHash => R::InvalidPasswordHash,
        Rejection::CurrentPasswordNeeded => R::CurrentPasswordNeeded,
        Rejection::RequestIdReused => R::RequestIdReused,
        Rejection::KeyPolicy(p) => R::Policy(p.clone()),
        Rejection::DomainKey(hsm_proto::DomainKeyError::RotationDue) => R::RotationDue,
        other => panic!("a rejection the model does not know: {other:?}"),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct MUser {
    role: Role,
    locked: bool,
    /// Logins checked and refused since the last success or unlock.
    failures: u8,
    /// (request id, leader time) of each attempt reserved and not
    /// answered yet, oldest first.
    reservations: Vec<(u128, u64)>,
    epoch: u64,
    /// Leader time of creation.
    created: u64,
}

impl MUser {
    fn new(role: Role, created: u64) -> MUser {
        MUser {
            role,
            locked: false,
            failures: 0,
            reservations: Vec::new(),
            epoch: 0,
            created,
        }
    }

    /// The request id an outcome of attempt `attempt` of this user (named
    /// `name`) is recorded under: one per attempt and account.
    fn outcome_id(&self, name: &str, attempt: u128) -> u128 {
        let mut u = hsm_state::User::new(username(name), self.role, String::new(), self.created);
        u.password_epoch = self.epoch;
        u128::from_be_bytes(hsm_state::login_outcome_id(RequestId(attempt.to_be_bytes()), &u).0)
    }

    /// Forgets the reservations made `LOGIN_RESERVATION_TTL_MS` or more
    /// before `now` (none made after it).
    fn expire(&mut self, now: u64) {
        self.reservations
            .retain(|(_, at)| now < at + LOGIN_RESERVATION_TTL_MS);
    }

    /// Locked: flagged, or five failures with nothing in progress.
    fn locked_at(&self, now: u64) -> bool {
        let mut u = self.clone();
        u.expire(now);
        u.locked
            || (u.failures + u.reservations.len() as u8 >= LOCK_AFTER && u.reservations.is_empty())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct MKey {
    /// What it was created as (its material, as the state compares it).
    kind: KeyKind,
    owner: String,
    shares: BTreeSet<String>,
    label: String,
    sensitive: bool,
    extractable: bool,
    trusted: bool,
    sign: bool,
}

/// Who the model thinks acted.
#[derive(Debug, Clone, PartialEq)]
enum MActor {
    User(String),
    Node(u64),
}

#[derive(Debug, Clone, Default)]
struct Model {
    initialized: bool,
    activated: bool,
    events: u64,
    users: BTreeMap<String, MUser>,
    keys: BTreeMap<u64, MKey>,
    /// Member id -> the id of the node whose signing key it carries.
    nodes: BTreeMap<u64, u64>,
    /// Ids of removed members, never given out again.
    retired: BTreeSet<u64>,
    /// A member was removed: new key material waits for a rotation.
    rotation_due: bool,
    /// Outcome of each request id, with the actor and operation it was for.
    results: BTreeMap<u128, (Result<(), R>, MActor, Op)>,
}

type Out = Result<(), R>;

fn need(ok: bool, r: R) -> Out {
    if ok {
        Ok(())
    } else {
        Err(r)
    }
}

/// Whether two actors are the same as the state's fingerprint sees them
/// for `op`: login bookkeeping is any member's.
fn same_actor(a: &MActor, b: &MActor, op: &Op) -> bool {
    let login = matches!(
        op,
        Op::LoginFailed { .. } | Op::LoginRejected { .. } | Op::LoginSucceeded { .. }
    );
    a == b || (login && matches!((a, b), (MActor::Node(_), MActor::Node(_))))
}

/// Whether two ops are the same request as the state's fingerprint sees it:
/// equal but for what a node makes fresh on each attempt (password hashes,
/// reservations).
fn same_intent(a: &Op, b: &Op) -> bool {
    fn intent(op: &Op) -> Op {
        let mut op = op.clone();
        match &mut op {
            Op::Init { good_hash, .. }
            | Op::CreateUser { good_hash, .. }
            | Op::ChangePassword { good_hash, .. } => *good_hash = true,
            Op::ChangeOwnPassword {
                good_hash, attempt, ..
            } => {
                // A retry reserves its check afresh.
                *good_hash = true;
                *attempt = Attempt::Ghost;
            }
            // Keys here are imported: the state compares their material
            // with the key the first attempt made, and the kinds differ in
            // type or public key too, so a kind is part of the intent.
            _ => {}
        }
        op
    }
    intent(a) == intent(b)
}

impl Model {
    /// Applies one event; returns the verdict and whether it was a replay.
    fn apply(
        &mut self,
        (req, now): (u128, u64),
        actor: &MActor,
        op: &Op,
        signer: (u64, u64),
        tamper: Option<Tamper>,
    ) -> (Out, bool) {
        let is_init = matches!(op, Op::Init { .. });
        // Only a linked event extends the chain; then authenticity.
        if tamper == Some(Tamper::PrevHash) {
            return (Err(R::ChainMismatch), false);
        }
        self.events += 1;
        if let Err(r) = self.authenticate(is_init, signer, tamper) {
            return (Err(r), false);
        }
        if let Some((r, a, o)) = self.results.get(&req) {
            // The same request again is a replay; another request under a
            // used id is refused.
            // A key created with the caller's material is that request's
            // only while the key now under its id holds that material.
            let other_material = match op {
                Op::CreateKey { key, kind, .. } if r.is_ok() => {
                    self.keys.get(key).is_some_and(|k| k.kind != *kind)
                }
                _ => false,
            };
            if same_actor(a, actor, op) && same_intent(o, op) && !other_material {
                return (r.clone(), true);
            }
            return (Err(R::RequestIdReused), false);
        }
        let mut next = self.clone();
        let out = next.rules(actor, op, signer.0, (req, now));
        if out.is_ok() {
            *self = next;
        }
        // A refusal during a rotation, or while the user's logins are
        // being checked, is not remembered: a retry is decided again.
        if out != Err(R::RotationDue) && !matches!(out, Err(R::LoginsInProgress(_))) {
            self.results
                .insert(req, (out.clone(), actor.clone(), op.clone()));
        }
        (out, false)
    }

    fn authenticate(
        &self,
        is_init: bool,
        (signer, key_of): (u64, u64),
        tamper: Option<Tamper>,
    ) -> Out {
        if !self.initialized && !is_init {
            return Err(R::NotInitialized);
        }
        let expected_key = if self.initialized {
            *self.nodes.get(&signer).ok_or(R::UnknownSigner(signer))?
        } else if signer == 1 {
            1
        } else {
            return Err(R::UnknownSigner(signer));
        };
        need(
            expected_key == key_of && tamper != Some(Tamper::Signature),
            R::BadSignature(signer),
        )
    }

    fn user(&self, i: usize) -> Result<&MUser, R> {
        self.users
            .get(USERS[i])
            .ok_or_else(|| R::UserNotFound(USERS[i].into()))
    }

    fn user_mut(&mut self, i: usize) -> &mut MUser {
        self.users.get_mut(USERS[i]).unwrap()
    }

    /// The key if `me` owns it; "not found" if `me` cannot see it.
    fn my_key(&mut self, me: &str, key: u64) -> Result<&mut MKey, R> {
        let k = self.keys.get_mut(&key).ok_or(R::KeyNotFound(key))?;
        if k.owner != me && !k.shares.contains(me) {
            return Err(R::KeyNotFound(key));
        }
        need(k.owner == me, R::NotOwner(key))?;
        Ok(k)
    }

    /// The rules; may leave `self` half changed on a refusal (the caller
    /// throws the copy away).
    fn rules(&mut self, actor: &MActor, op: &Op, signer: u64, (req, now): (u128, u64)) -> Out {
        match op {
            Op::Init { good_hash, .. } => {
                need(!self.initialized, R::AlreadyInitialized)?;
                need(*actor == MActor::Node(1), R::UnknownActor)?;
                need(*good_hash, R::InvalidPasswordHash)?;
                self.initialized = true;
                self.nodes.insert(1, 1);
                self.users
                    .insert("admin".into(), MUser::new(Role::Preco, now));
                return Ok(());
            }
            Op::LoginFailed { user }
            | Op::LoginRejected { user, .. }
            | Op::LoginSucceeded { user, .. } => {
                let member = matches!(actor, MActor::Node(n) if self.nodes.contains_key(n));
                need(member, R::UnknownActor)?;
                self.user(*user)?;
                let name = USERS[*user];
                let u = self.user_mut(*user);
                u.expire(now);
                let answering = match op {
                    Op::LoginRejected { attempt, .. } | Op::LoginSucceeded { attempt, .. } => {
                        let Attempt::Id(id) = attempt else {
                            unreachable!("resolved before applying")
                        };
                        Some(*id)
                    }
                    _ => None,
                };
                if let Some(id) = answering {
                    // Under the attempt's outcome id for the account only.
                    need(req == u.outcome_id(name, id), R::LoginExpired(name.into()))?;
                    // Only a live reservation of this user is answered.
                    let at = u.reservations.iter().position(|(r, _)| *r == id);
                    let at = at.ok_or_else(|| R::LoginExpired(name.into()))?;
                    u.reservations.remove(at);
                }
                match op {
                    Op::LoginFailed { .. } => {
                        need(!u.locked, R::Locked(name.into()))?;
                        let pending = u.reservations.len() as u8;
                        let at_limit = u.failures + pending >= LOCK_AFTER;
                        need(!(at_limit && pending > 0), R::LoginsInProgress(name.into()))?;
                        if at_limit {
                            u.locked = true;
                        } else {
                            u.reservations.push((req, now));
                        }
                    }
                    Op::LoginRejected { .. } => u.failures += 1,
                    _ => {
                        need(!u.locked, R::Locked(name.into()))?;
                        u.failures = 0;
                    }
                }
                return Ok(());
            }
            _ => {}
        }
        let MActor::User(me) = actor else {
            return Err(R::UnknownActor);
        };
        let me = me.clone();
        let mine = self.users.get(&me).ok_or(R::UnknownActor)?.clone();
        need(!mine.locked_at(now), R::Locked(me.clone()))?;
        let own_password = matches!(op, Op::ChangeOwnPassword { user, .. } if USERS[*user] == me);
        need(self.activated || own_password, R::NotActivated)?;
        let co = need(mine.role == Role::Co, R::RoleDenied(mine.role));
        let cu = need(mine.role == Role::Cu, R::RoleDenied(mine.role));
        match op {
            Op::Init { .. }
            | Op::LoginFailed { .. }
            | Op::LoginRejected { .. }
            | Op::LoginSucceeded { .. } => unreachable!(),
            Op::CreateUser {
                user,
                role,
                good_hash,
            } => {
                co?;
                need(
                    self.user(*user).is_err(),
                    R::UserExists(USERS[*user].into()),
                )?;
                need(*role != Role::Preco, R::InvalidRole(*role))?;
                need(*good_hash, R::InvalidPasswordHash)?;
                self.users
                    .insert(USERS[*user].into(), MUser::new(*role, now));
            }
            Op::DeleteUser { user } => {
                co?;
                self.user(*user)?;
                let name = USERS[*user];
                need(name != me, R::CannotDeleteSelf)?;
                let owned = self.keys.values().filter(|k| k.owner == name).count();
                need(owned == 0, R::UserOwnsKeys(name.into(), owned))?;
                for k in self.keys.values_mut() {
                    k.shares.remove(name);
                }
                self.users.remove(name);
            }
            Op::ChangePassword { user, good_hash } => {
                need(USERS[*user] != me, R::CurrentPasswordNeeded)?;
                co?;
                self.user(*user)?;
                need(*good_hash, R::InvalidPasswordHash)?;
                self.set_password(*user);
            }
            Op::ChangeOwnPassword {
                user,
                good_hash,
                attempt,
            } => {
                need(own_password, R::RoleDenied(mine.role))?;
                need(*good_hash, R::InvalidPasswordHash)?;
                let Attempt::Id(id) = attempt else {
                    unreachable!("resolved before applying")
                };
                let u = self.user_mut(*user);
                u.expire(now);
                let at = u.reservations.iter().position(|(r, _)| r == id);
                let at = at.ok_or_else(|| R::LoginExpired(me.clone()))?;
                u.reservations.remove(at);
                u.failures = 0;
                self.set_password(*user);
            }
            Op::Unlock { user } => {
                need(USERS[*user] != me, R::RoleDenied(mine.role))?;
                co?;
                self.user(*user)?;
                let u = self.user_mut(*user);
                u.expire(now);
                let failed = u.failures as usize + u.reservations.len();
                need(u.locked || failed > 0, R::NotLocked(USERS[*user].into()))?;
                u.locked = false;
                u.failures = 0;
                u.reservations.clear();
            }
            Op::CreateKey {
                key,
                kind,
                label,
                unique,
                trusted,
                sensitive,
                extractable,
            } => {
                cu?;
                need(!self.keys.contains_key(key), R::KeyExists(*key))?;
                need(!self.rotation_due, R::RotationDue)?;
                need(*kind != KeyKind::BadSpec, R::InvalidKeySpec)?;
                need(*label != Label::Long, R::InvalidKey)?;
                need(!trusted, R::Policy(KeyPolicyError::CreatedTrusted))?;
                need(*kind != KeyKind::NoMaterial, R::InvalidKey)?;
                need(
                    !matches!(kind, KeyKind::AesWithPublic | KeyKind::EdWithoutPublic),
                    R::InvalidKey,
                )?;
                let label = label.text();
                let taken = self
                    .keys
                    .values()
                    .any(|k| k.owner == me && k.label == label);
                need(!(*unique && taken), R::LabelNotUnique(label.clone()))?;
                let k = MKey {
                    kind: *kind,
                    owner: me,
                    shares: BTreeSet::new(),
                    label,
                    sensitive: *sensitive,
                    extractable: *extractable,
                    trusted: false,
                    sign: false,
                };
                self.keys.insert(*key, k);
            }
            Op::Share { key, with } => {
                cu?;
                self.my_key(&me, *key)?;
                let target = self.user(with.unwrap())?.clone();
                let with = USERS[with.unwrap()].to_string();
                need(target.role == Role::Cu, R::InvalidShare(with.clone()))?;
                need(with != me, R::InvalidShare(with.clone()))?;
                let k = self.my_key(&me, *key)?;
                need(k.shares.insert(with.clone()), R::InvalidShare(with))?;
            }
            Op::Unshare { key, with } => {
                cu?;
                let with = USERS[with.unwrap()];
                let k = self.my_key(&me, *key)?;
                need(k.shares.remove(with), R::InvalidShare(with.into()))?;
            }
            Op::SetLabel { key, label } => {
                cu?;
                let k = self.my_key(&me, *key)?;
                need(
                    !k.trusted,
                    R::Policy(KeyPolicyError::TrustedKeyFrozen(KeyId(*key))),
                )?;
                need(*label != Label::Long, R::InvalidKey)?;
                k.label = label.text();
            }
            Op::SetFlag {
                key,
                flag: KeyFlag::Trusted,
                value,
            } => {
                co?;
                self.keys.get_mut(key).ok_or(R::KeyNotFound(*key))?.trusted = *value;
            }
            Op::SetFlag { key, flag, value } => {
                cu?;
                let k = self.my_key(&me, *key)?;
                need(
                    !k.trusted,
                    R::Policy(KeyPolicyError::TrustedKeyFrozen(KeyId(*key))),
                )?;
                let slot = match flag {
                    KeyFlag::Sensitive => {
                        need(k.sensitive <= *value, R::AttributeRatchet(*flag))?;
                        &mut k.sensitive
                    }
                    KeyFlag::Extractable => {
                        need(k.extractable >= *value, R::AttributeRatchet(*flag))?;
                        &mut k.extractable
                    }
                    KeyFlag::Sign => &mut k.sign,
                    other => panic!("flag {other:?} is not generated"),
                };
                *slot = *value;
            }
            Op::DeleteKey { key } => {
                cu?;
                self.my_key(&me, *key)?;
                self.keys.remove(key);
            }
            Op::AddNode { node, reuse_key } => {
                co?;
                need(!self.nodes.contains_key(node), R::NodeExists(*node))?;
                need(!self.retired.contains(node), R::Membership)?;
                need(self.nodes.len() < MAX_MEMBERS, R::Membership)?;
                let key_of = if *reuse_key { 1 } else { *node };
                need(!self.nodes.values().any(|k| *k == key_of), R::Membership)?;
                self.nodes.insert(*node, key_of);
            }
            Op::RemoveNode { node } => {
                co?;
                need(self.nodes.contains_key(node), R::NodeNotFound(*node))?;
                // A node never signs its own removal.
                need(*node != signer, R::Membership)?;
                need(self.nodes.len() > 1, R::Membership)?;
                self.nodes.remove(node);
                self.retired.insert(*node);
                self.rotation_due = true;
            }
        }
        Ok(())
    }

    /// A new password: the epoch moves, checks in flight are void, and
    /// the unactivated admin activates the cluster.
    fn set_password(&mut self, user: usize) {
        let u = self.user_mut(user);
        u.epoch += 1;
        u.reservations.clear();
        if u.role == Role::Preco {
            u.role = Role::Co;
            self.activated = true;
        }
    }

    fn projection(&self) -> Projection {
        Projection {
            initialized: self.initialized,
            activated: self.activated,
            events: self.events,
            users: self
                .users
                .iter()
                .map(|(n, u)| {
                    let view = (
                        u.role,
                        u.locked,
                        u.failures,
                        u.reservations.clone(),
                        u.epoch,
                    );
                    (n.clone(), view)
                })
                .collect(),
            keys: self
                .keys
                .iter()
                .map(|(id, k)| {
                    let flags = [k.sensitive, k.extractable, k.trusted, k.sign];
                    (
                        *id,
                        (k.owner.clone(), k.shares.clone(), k.label.clone(), flags),
                    )
                })
                .collect(),
            nodes: self
                .nodes
                .iter()
                .map(|(id, key_of)| (*id, node_key(*key_of).verifying_key().to_bytes()))
                .collect(),
        }
    }
}

type UserView = (Role, bool, u8, Vec<(u128, u64)>, u64);
type KeyView = (String, BTreeSet<String>, String, [bool; 4]);

/// What both the model and the real state can show.
#[derive(Debug, PartialEq, Eq)]
struct Projection {
    initialized: bool,
    activated: bool,
    events: u64,
    users: BTreeMap<String, UserView>,
    keys: BTreeMap<u64, KeyView>,
    nodes: BTreeMap<u64, [u8; 32]>,
}

fn project(s: &State) -> Projection {
    Projection {
        initialized: s.cluster().is_some(),
        activated: s.cluster().is_some_and(|c| c.activated),
        events: s.events(),
        users: s
            .users()
            .map(|u| {
                let reservations = u
                    .reservations
                    .iter()
                    .map(|r| (u128::from_be_bytes(r.id.0), r.at_ms))
                    .collect();
                let view = (u.role, u.locked, u.failures, reservations, u.password_epoch);
                (u.username.to_string(), view)
            })
            .collect(),
        keys: s
            .keys()
            .map(|k| {
                let a = &k.attributes;
                let shares = k.shared_with.iter().map(|u| u.to_string()).collect();
                let flags = [a.sensitive, a.extractable, a.trusted, a.sign];
                (
                    k.id.0,
                    (k.owner.to_string(), shares, a.label.clone(), flags),
                )
            })
            .collect(),
        nodes: s.nodes().map(|n| (n.id.0, n.signing_key)).collect(),
    }
}

// ---------------------------------------------------------------- driving

fn username(name: &str) -> Username {
    Username::new(name).unwrap()
}

fn body(op: &Op) -> EventBody {
    let hash = |good: bool| {
        if good {
            HASH2.to_string()
        } else {
            "$argon2i$nope".into()
        }
    };
    match op {
        Op::Init { good_hash, .. } => init_body(1, if *good_hash { HASH } else { "plain" }),
        Op::CreateUser {
            user,
            role,
            good_hash,
        } => EventBody::UserCreated {
            username: username(USERS[*user]),
            role: *role,
            password_hash: hash(*good_hash),
        },
        Op::DeleteUser { user } => EventBody::UserDeleted {
            username: username(USERS[*user]),
        },
        Op::ChangePassword { user, good_hash } => EventBody::PasswordChanged {
            username: username(USERS[*user]),
            password_hash: hash(*good_hash),
        },
        Op::ChangeOwnPassword {
            user,
            good_hash,
            attempt,
        } => EventBody::OwnPasswordChanged {
            username: username(USERS[*user]),
            password_hash: hash(*good_hash),
            reservation: attempt_id(*attempt),
        },
        Op::LoginFailed { user } => EventBody::LoginFailed {
            username: username(USERS[*user]),
        },
        Op::LoginRejected { user, attempt } => EventBody::LoginRejected {
            username: username(USERS[*user]),
            reservation: attempt_id(*attempt),
        },
        Op::LoginSucceeded { user, attempt } => EventBody::LoginSucceeded {
            username: username(USERS[*user]),
            reservation: attempt_id(*attempt),
        },
        Op::Unlock { user } => EventBody::UserUnlocked {
            username: username(USERS[*user]),
        },
        Op::CreateKey {
            key,
            kind,
            label,
            unique,
            trusted,
            sensitive,
            extractable,
        } => {
            let (spec, material, public) = match kind {
                KeyKind::Aes => (KeySpec::Aes { bits: 256 }, vec![1; 40], vec![]),
                KeyKind::Ed => (KeySpec::Ed25519, vec![2; 40], vec![3; 44]),
                KeyKind::BadSpec => (KeySpec::Aes { bits: 512 }, vec![1; 40], vec![]),
                KeyKind::NoMaterial => (KeySpec::Aes { bits: 128 }, vec![], vec![]),
                KeyKind::AesWithPublic => (KeySpec::Aes { bits: 128 }, vec![1; 40], vec![3; 44]),
                KeyKind::EdWithoutPublic => (KeySpec::Ed25519, vec![2; 40], vec![]),
            };
            EventBody::KeyCreated {
                key: KeyId(*key),
                spec,
                attributes: KeyAttributes {
                    label: label.text(),
                    trusted: *trusted,
                    sensitive: *sensitive,
                    extractable: *extractable,
                    ..KeyAttributes::default()
                },
                provenance: hsm_proto::KeyProvenance::known_outside(hsm_proto::KeyOrigin::Imported),
                domain_generation: 0,
                wrapped_material: material,
                public_key: public,
                unique_label: *unique,
            }
        }
        Op::Share { key, with } => EventBody::KeyShared {
            key: KeyId(*key),
            with: username(USERS[with.unwrap()]),
        },
        Op::Unshare { key, with } => EventBody::KeyUnshared {
            key: KeyId(*key),
            with: username(USERS[with.unwrap()]),
        },
        Op::SetLabel { key, label } => EventBody::KeyAttributeSet {
            key: KeyId(*key),
            attribute: KeyAttribute::Label(label.text()),
        },
        Op::SetFlag { key, flag, value } => EventBody::KeyAttributeSet {
            key: KeyId(*key),
            attribute: KeyAttribute::Flag(*flag, *value),
        },
        Op::DeleteKey { key } => EventBody::KeyDeleted { key: KeyId(*key) },
        Op::AddNode { node, reuse_key } => {
            let mut record: NodeRecord = node_record(*node);
            if *reuse_key {
                record.signing_key = node_record(1).signing_key;
            }
            EventBody::NodeAdded { node: record }
        }
        Op::RemoveNode { node } => EventBody::NodeRemoved {
            node: NodeId(*node),
        },
    }
}

/// The request id an outcome names (resolved before it is built).
fn attempt_id(attempt: Attempt) -> RequestId {
    match attempt {
        Attempt::Id(id) => RequestId(id.to_be_bytes()),
        other => unreachable!("{other:?} is resolved before the event is built"),
    }
}

/// A request id no step uses (steps count up from 1).
const GHOST_ATTEMPT: u128 = u128::MAX;

/// The key an op names (0, never a key, if none).
fn op_key(op: &Op) -> u64 {
    match op {
        Op::CreateKey { key, .. }
        | Op::Share { key, .. }
        | Op::Unshare { key, .. }
        | Op::SetLabel { key, .. }
        | Op::SetFlag { key, .. }
        | Op::DeleteKey { key } => *key,
        _ => 0,
    }
}

/// Feeds steps to a real state and the model side by side.
struct Driver {
    state: State,
    model: Model,
    /// Request id, actor and op of every step so far.
    history: Vec<(u128, Who, Op)>,
    next_request: u128,
    now_ms: u64,
}

/// One step's outcome.
struct Outcome {
    signed: SignedEvent,
    applied: Applied,
    expected: (Out, bool),
}

impl Driver {
    fn new() -> Driver {
        Driver {
            state: State::new(),
            model: Model::default(),
            history: Vec::new(),
            next_request: 0,
            now_ms: 1_000,
        }
    }

    fn actor(&self, who: Who, op: &Op) -> MActor {
        if let Op::Init { by_first, .. } = op {
            return MActor::Node(if *by_first { 1 } else { 2 });
        }
        match who {
            Who::User(i) => MActor::User(USERS[i].into()),
            Who::Ghost => MActor::User("ghost".into()),
            Who::Member(i) => {
                let members: Vec<u64> = self.model.nodes.keys().copied().collect();
                MActor::Node(if members.is_empty() {
                    1
                } else {
                    members[i % members.len()]
                })
            }
            Who::NonMember => MActor::Node(9),
            Who::KeyOwner => {
                let owner = self.model.keys.get(&op_key(op)).map(|k| k.owner.clone());
                match owner {
                    Some(owner) => MActor::User(owner),
                    None => self.actor(Who::CryptoUser(0), op),
                }
            }
            Who::Sharee => match self.model.keys.get(&op_key(op)) {
                Some(k) if !k.shares.is_empty() => {
                    MActor::User(k.shares.iter().next().unwrap().clone())
                }
                _ => self.actor(Who::KeyOwner, op),
            },
            Who::CryptoUser(i) => {
                let cus: Vec<&String> = self
                    .model
                    .users
                    .iter()
                    .filter(|(_, u)| u.role == Role::Cu)
                    .map(|(n, _)| n)
                    .collect();
                MActor::User(if cus.is_empty() {
                    "admin".into()
                } else {
                    cus[i % cus.len()].clone()
                })
            }
        }
    }

    /// The lowest member signs (node 1 before init); with the key that
    /// member's record carries.
    fn signer(&self) -> (u64, u64) {
        self.model
            .nodes
            .iter()
            .next()
            .map_or((1, 1), |(id, k)| (*id, *k))
    }

    /// Fills in choices that depend on the current state.
    fn resolve(&self, op: Op) -> Op {
        let attempt = |attempt: Attempt| match attempt {
            Attempt::Pick(i) => {
                let made: Vec<u128> = self
                    .history
                    .iter()
                    .rev()
                    .filter(|(_, _, op)| matches!(op, Op::LoginFailed { .. }))
                    .map(|(req, _, _)| *req)
                    .collect();
                Attempt::Id(if made.is_empty() {
                    GHOST_ATTEMPT
                } else {
                    made[i % made.len()]
                })
            }
            Attempt::Ghost => Attempt::Id(GHOST_ATTEMPT),
            id @ Attempt::Id(_) => id,
        };
        match op {
            Op::LoginRejected { user, attempt: a } => Op::LoginRejected {
                user,
                attempt: attempt(a),
            },
            Op::LoginSucceeded { user, attempt: a } => Op::LoginSucceeded {
                user,
                attempt: attempt(a),
            },
            Op::ChangeOwnPassword {
                user,
                good_hash,
                attempt: a,
            } => Op::ChangeOwnPassword {
                user,
                good_hash,
                attempt: attempt(a),
            },
            Op::Unshare { key, with: None } => {
                let shared = self
                    .model
                    .keys
                    .get(&key)
                    .and_then(|k| k.shares.iter().next());
                let with = shared.map_or(1, |u| USERS.iter().position(|n| n == u).unwrap());
                Op::Unshare {
                    key,
                    with: Some(with),
                }
            }
            Op::Share { key, with: None } => {
                let k = self.model.keys.get(&key);
                let fits = |(_, name): &(usize, &&str)| {
                    let cu = self
                        .model
                        .users
                        .get(**name)
                        .is_some_and(|u| u.role == Role::Cu);
                    cu && k.is_none_or(|k| k.owner != **name && !k.shares.contains(**name))
                };
                let with = USERS.iter().enumerate().find(fits).map_or(1, |(i, _)| i);
                Op::Share {
                    key,
                    with: Some(with),
                }
            }
            op => op,
        }
    }

    fn step(&mut self, step: &Step) -> Outcome {
        let (req, who, op, tamper) = match step {
            Step::Do(who, op) => (None, *who, op.clone(), None),
            Step::Later(ms, who, op) => {
                self.now_ms += ms;
                (None, *who, op.clone(), None)
            }
            Step::Tampered(t, who, op) => (None, *who, op.clone(), Some(*t)),
            Step::Retry(i) if !self.history.is_empty() => {
                let (req, who, op) = self.history[i % self.history.len()].clone();
                (Some(req), who, op, None)
            }
            Step::Retry(_) => {
                let op = Op::ChangePassword {
                    user: 0,
                    good_hash: true,
                };
                (None, Who::User(0), op, None)
            }
        };
        let op = self.resolve(op);
        // A node records a login outcome under the attempt's outcome id.
        let outcome_id = match &op {
            Op::LoginRejected {
                user,
                attempt: Attempt::Id(id),
            }
            | Op::LoginSucceeded {
                user,
                attempt: Attempt::Id(id),
            } => self
                .model
                .users
                .get(USERS[*user])
                .map(|u| u.outcome_id(USERS[*user], *id)),
            _ => None,
        };
        let req = req.or(outcome_id).unwrap_or_else(|| {
            self.next_request += 1;
            self.next_request
        });
        self.history.push((req, who, op.clone()));
        let actor = self.actor(who, &op);
        let signer = if tamper == Some(Tamper::Signer) {
            (9, 9)
        } else {
            self.signer()
        };
        self.now_ms += 10;
        let event = Event {
            request_id: RequestId(req.to_be_bytes()),
            timestamp_ms: self.now_ms,
            actor: match &actor {
                MActor::User(u) => Actor::User(username(u)),
                MActor::Node(n) => Actor::Node(NodeId(*n)),
            },
            prev_hash: if tamper == Some(Tamper::PrevHash) {
                EventHash([0x5A; 32])
            } else {
                self.state.head()
            },
            body: body(&op),
        };
        let mut signed = sign_event(event, NodeId(signer.0), &node_key(signer.1));
        if tamper == Some(Tamper::Signature) {
            signed.signature.0[17] ^= 0x04;
        }
        let applied = self.state.apply(&signed);
        let expected = self
            .model
            .apply((req, self.now_ms), &actor, &op, signer, tamper);
        Outcome {
            signed,
            applied,
            expected,
        }
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        max_shrink_iters: 4096,
        // Failing cases are saved next to this file (model.proptest-regressions)
        // and replayed first on the next run.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// The real state agrees with the model on every verdict and on the
    /// observable state after every step; `changed` is exact.
    #[test]
    fn the_state_machine_agrees_with_the_model(steps in steps()) {
        let mut d = Driver::new();
        for (i, step) in steps.iter().enumerate() {
            let before = d.state.clone();
            let out = d.step(step);
            let got = (out.applied.result.as_ref().map_err(reduce).cloned(), out.applied.replayed);
            prop_assert_eq!(&got, &out.expected, "verdict at step {} {:?}", i, step);
            prop_assert_eq!(project(&d.state), d.model.projection(), "state after step {} {:?}", i, step);
            prop_assert_eq!(&out.applied.changed, &diff(&before, &d.state), "changed at step {}", i);
            if out.applied.replayed {
                let extended = d.state.events() == before.events() + 1;
                prop_assert!(extended, "a replay extends the chain");
            }
            if out.applied.changed.is_empty() {
                prop_assert_eq!(&d.state, &before, "refused before the chain at step {}", i);
            } else if out.applied.result.is_err() || out.applied.replayed {
                // Refused by the rules, or a replay: only the chain moved.
                prop_assert_eq!(d.state.cluster(), before.cluster());
                prop_assert!(d.state.users().eq(before.users()), "users changed at step {}", i);
                prop_assert!(d.state.keys().eq(before.keys()), "keys changed at step {}", i);
                prop_assert!(d.state.nodes().eq(before.nodes()), "nodes changed at step {}", i);
                let only_chain = out
                    .applied
                    .changed
                    .iter()
                    .all(|k| matches!(k, EntityKey::Meta | EntityKey::Request(_)));
                prop_assert!(only_chain, "refusal changed {:?}", out.applied.changed);
            }
        }
    }

    /// Two replicas fed the same events agree after every step, and a state
    /// rebuilt from its entities is the same state.
    #[test]
    fn replicas_fed_the_same_events_agree(steps in steps()) {
        let mut d = Driver::new();
        let mut replica = State::new();
        for (i, step) in steps.iter().enumerate() {
            let out = d.step(step);
            let applied = replica.apply(&out.signed);
            prop_assert_eq!(&applied, &out.applied, "outcome at step {}", i);
            prop_assert_eq!(replica.digest(), d.state.digest(), "digest at step {}", i);
            let rebuilt = State::from_entities(d.state.entities()).unwrap();
            prop_assert_eq!(rebuilt.digest(), d.state.digest(), "rebuilt digest at step {}", i);
            prop_assert_eq!(&rebuilt, &d.state, "rebuilt state at step {}", i);
        }
    }
}
