//! Scenario tests of the state machine's rules, one behaviour per test.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use common::*;
use hsm_proto::{
    Actor, EventBody, EventHash, KeyAttribute, KeyAttributes, KeyFlag, KeyId, KeyOrigin,
    KeyPolicyError, KeyProvenance, KeySpec, NodeId, Rejection, RequestId, Role, Signature,
};
use hsm_state::{
    sign_event, EntityKey, LoadError, LoginOutcome, State, LOGIN_RESERVATION_TTL_MS,
    MAX_FAILED_LOGINS, MAX_NODES,
};

fn role_denied(role: Role) -> impl Fn(&Result<(), Rejection>) -> bool {
    move |r| matches!(r, Err(Rejection::RoleDenied { role: got, .. }) if *got == role)
}

fn pw(name: &str, hash: &str) -> EventBody {
    EventBody::PasswordChanged {
        username: user(name),
        password_hash: hash.into(),
    }
}

fn create(name: &str, role: Role) -> EventBody {
    EventBody::UserCreated {
        username: user(name),
        role,
        password_hash: HASH.into(),
    }
}

fn delete(name: &str) -> EventBody {
    EventBody::UserDeleted {
        username: user(name),
    }
}

fn unlock(name: &str) -> EventBody {
    EventBody::UserUnlocked {
        username: user(name),
    }
}

fn share(id: u64, with: &str) -> EventBody {
    EventBody::KeyShared {
        key: KeyId(id),
        with: user(with),
    }
}

fn unshare(id: u64, with: &str) -> EventBody {
    EventBody::KeyUnshared {
        key: KeyId(id),
        with: user(with),
    }
}

fn set_label(id: u64, label: &str) -> EventBody {
    EventBody::KeyAttributeSet {
        key: KeyId(id),
        attribute: KeyAttribute::Label(label.into()),
    }
}

fn delete_key(id: u64) -> EventBody {
    EventBody::KeyDeleted { key: KeyId(id) }
}

fn add_node(id: u64) -> EventBody {
    EventBody::NodeAdded {
        node: node_record(id),
    }
}

fn remove_node(id: u64) -> EventBody {
    EventBody::NodeRemoved { node: NodeId(id) }
}

fn key_body(
    spec: KeySpec,
    attributes: KeyAttributes,
    material: Vec<u8>,
    public: Vec<u8>,
) -> EventBody {
    EventBody::KeyCreated {
        key: KeyId(50),
        spec,
        attributes,
        provenance: hsm_proto::KeyProvenance::known_outside(hsm_proto::KeyOrigin::Imported),
        domain_generation: 0,
        wrapped_material: material,
        public_key: public,
        unique_label: false,
    }
}

fn shares(c: &Cluster, id: u64) -> Vec<String> {
    c.state
        .key(KeyId(id))
        .unwrap()
        .shared_with
        .iter()
        .map(|u| u.to_string())
        .collect()
}

// ---------------------------------------------------------------- activation

#[test]
fn uninitialized_state_refuses_every_event_but_init_and_only_the_chain_moves() {
    let mut c = Cluster::new();
    for body in [
        create("bob", Role::Cu),
        own_pw("admin", HASH2, NO_RESERVATION),
        add_node(2),
    ] {
        let a = c.by("admin", body);
        assert_eq!(a.result, Err(Rejection::NotInitialized));
        assert_eq!(a.changed, BTreeSet::from([EntityKey::Meta]));
    }
    let a = c.by_node(1, login_attempt("admin"));
    assert_eq!(a.result, Err(Rejection::NotInitialized));
    assert!(c.state.cluster().is_none());
    assert_eq!(c.state.users().count() + c.state.nodes().count(), 0);
    assert_eq!(c.state.events(), 4);
    assert_ne!(c.state.head(), EventHash::GENESIS);
    // The chain is intact: an init linked to the last refusal works.
    assert_eq!(c.init().result, Ok(()));
}

#[test]
fn init_creates_the_first_node_and_an_unactivated_precrypto_admin() {
    let c = Cluster::initialized();
    let cluster = c.state.cluster().unwrap();
    assert!(!cluster.activated);
    let admin = c.state.user(&user("admin")).unwrap();
    assert_eq!(admin.role, Role::Preco);
    assert_eq!(admin.password_hash, HASH);
    assert_eq!(
        c.state.nodes().cloned().collect::<Vec<_>>(),
        vec![node_record(1)]
    );
    assert_eq!(c.state.users().count(), 1);
    assert_eq!(c.state.events(), 1);
}

#[test]
fn init_may_name_founding_members_that_then_sign_events() {
    let mut c = Cluster::new();
    let body = |others: Vec<hsm_proto::NodeRecord>| match init_body(1, HASH) {
        EventBody::ClusterInitialized {
            cluster_id,
            first_node,
            admin_password_hash,
            domain_check,
            ..
        } => EventBody::ClusterInitialized {
            cluster_id,
            first_node,
            other_nodes: others,
            admin_password_hash,
            domain_check,
        },
        other => other,
    };
    // The first node twice, or two members sharing a key: refused.
    let a = c.by_node(1, body(vec![node_record(1)]));
    assert!(matches!(a.result, Err(Rejection::Membership(_))), "{a:?}");
    let mut twin = node_record(3);
    twin.signing_key = node_record(2).signing_key;
    let a = c.by_node(1, body(vec![node_record(2), twin]));
    assert!(matches!(a.result, Err(Rejection::Membership(_))), "{a:?}");
    assert!(c.state.cluster().is_none());

    let a = c.by_node(1, body(vec![node_record(2), node_record(3)]));
    assert_eq!(a.result, Ok(()));
    assert_eq!(
        c.state.nodes().map(|n| n.id).collect::<Vec<_>>(),
        vec![NodeId(1), NodeId(2), NodeId(3)]
    );
    // A founding member's signature is accepted.
    c.signer = NodeId(3);
    let a = c.by_node(3, login_attempt("admin"));
    assert_eq!(a.result, Ok(()));
}

#[test]
fn init_must_be_signed_by_the_node_it_introduces() {
    // Signed by node 2, introducing node 1.
    let mut c = Cluster::new();
    c.signer = NodeId(2);
    let a = c.by_node(1, init_body(1, HASH));
    assert_eq!(a.result, Err(Rejection::UnknownSigner(NodeId(2))));
    assert_eq!(a.changed, BTreeSet::from([EntityKey::Meta]));
    assert!(c.state.cluster().is_none());
    assert!(!c
        .state
        .entities()
        .any(|e| matches!(e, hsm_state::Entity::Request(_))));

    // Claims to be node 1 but signed with node 2's key.
    let mut c = Cluster::new();
    let event = c.event(Actor::Node(NodeId(1)), init_body(1, HASH));
    let forged = sign_event(event, NodeId(1), &node_key(2));
    let a = c.apply(&forged);
    assert_eq!(a.result, Err(Rejection::BadSignature(NodeId(1))));
    assert!(c.state.cluster().is_none());
    assert_eq!(c.state.nodes().count(), 0);
}

#[test]
fn init_by_another_actor_or_with_a_bad_hash_is_refused_and_leaves_the_cluster_uninitialized() {
    let mut c = Cluster::new();
    let a = c.by_node(2, init_body(1, HASH));
    assert!(matches!(a.result, Err(Rejection::UnknownActor(_))));
    assert!(c.state.cluster().is_none());
    let a = c.by("admin", init_body(1, HASH));
    assert!(matches!(a.result, Err(Rejection::UnknownActor(_))));
    let a = c.by_node(1, init_body(1, BAD_HASH));
    assert_eq!(a.result, Err(Rejection::InvalidPasswordHash));
    assert!(c.state.cluster().is_none());
    assert_eq!(c.state.users().count(), 0);
    assert_eq!(c.state.nodes().count(), 0);
    // The refusals extended the chain; a correct init still works.
    assert_eq!(c.state.events(), 3);
    assert_eq!(c.init().result, Ok(()));
    assert!(c.state.cluster().is_some());
}

#[test]
fn a_second_init_is_refused_and_only_the_chain_moves() {
    let mut c = Cluster::activated();
    let before = c.state.clone();
    let a = c.by_node(1, init_body(1, HASH));
    assert_eq!(a.result, Err(Rejection::AlreadyInitialized));
    assert_only_chain_changed(&before, &c.state);
    assert_eq!(c.state.cluster(), before.cluster());
}

#[test]
fn before_activation_admin_may_only_change_its_own_password() {
    let mut c = Cluster::initialized();
    for body in [
        create("bob", Role::Cu),
        delete("admin"),
        pw("bob", HASH2),
        pw("admin", HASH2),
        unlock("admin"),
        aes_key(1, "a", false),
        share(1, "bob"),
        unshare(1, "bob"),
        set_label(1, "x"),
        set_flag(1, KeyFlag::Trusted, true),
        delete_key(1),
        add_node(2),
        remove_node(1),
    ] {
        c.refused("admin", body, Rejection::NotActivated);
    }
    // Not even a bad hash is looked at before the activation check.
    c.refused("admin", create("bob", Role::Cu), Rejection::NotActivated);
    assert!(!c.state.cluster().unwrap().activated);
}

#[test]
fn changing_its_own_password_activates_the_cluster_and_makes_admin_a_crypto_officer() {
    let mut c = Cluster::initialized();
    let a = c.change_own_password("admin", HASH2);
    assert_eq!(a.result, Ok(()));
    assert!(c.state.cluster().unwrap().activated);
    let admin = c.state.user(&user("admin")).unwrap();
    assert_eq!(admin.role, Role::Co);
    assert_eq!(admin.password_hash, HASH2);
    assert_eq!(admin.password_epoch, 1);
    // Now admin manages users.
    c.create_user("bob", Role::Cu);
}

#[test]
fn activation_requires_an_argon2id_hash() {
    let mut c = Cluster::initialized();
    let check = c.reserve_login(1, "admin");
    c.refused(
        "admin",
        own_pw("admin", BAD_HASH, check),
        Rejection::InvalidPasswordHash,
    );
    assert!(!c.state.cluster().unwrap().activated);
    assert_eq!(c.state.user(&user("admin")).unwrap().role, Role::Preco);
}

#[test]
fn password_changes_bump_the_epoch_and_keep_the_role() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    c.change_own_password("bob", HASH2).result.unwrap();
    c.by("admin", pw("bob", HASH)).result.unwrap();
    let bob = c.state.user(&user("bob")).unwrap();
    assert_eq!(bob.password_epoch, 2);
    assert_eq!(bob.password_hash, HASH);
    assert_eq!(bob.role, Role::Cu);
    c.refused(
        "admin",
        pw("nobody", HASH),
        Rejection::UserNotFound(user("nobody")),
    );
    let check = c.reserve_login(1, "bob");
    c.refused(
        "bob",
        own_pw("bob", "plain", check),
        Rejection::InvalidPasswordHash,
    );
}

#[test]
fn ones_own_password_changes_only_with_the_current_one_checked() {
    // A stolen session token alone must not take the account over: the
    // plain change is refused for one's own name, and the change with the
    // check needs a live reservation of that very user.
    let mut c = Cluster::with_users(&[("bob", Role::Cu), ("carol", Role::Cu)]);
    c.refused("bob", pw("bob", HASH2), Rejection::CurrentPasswordNeeded);
    c.refused(
        "admin",
        pw("admin", HASH2),
        Rejection::CurrentPasswordNeeded,
    );
    c.refused(
        "bob",
        own_pw("bob", HASH2, NO_RESERVATION),
        Rejection::LoginExpired(user("bob")),
    );
    let carols = c.reserve_login(1, "carol");
    c.refused(
        "bob",
        own_pw("bob", HASH2, carols),
        Rejection::LoginExpired(user("bob")),
    );
    c.refused(
        "bob",
        own_pw("carol", HASH2, carols),
        Rejection::RoleDenied {
            role: Role::Cu,
            action: "change another user's password as its own".into(),
        },
    );
    let late = c.reserve_login(1, "bob");
    c.advance(LOGIN_RESERVATION_TTL_MS);
    c.refused(
        "bob",
        own_pw("bob", HASH2, late),
        Rejection::LoginExpired(user("bob")),
    );

    // Two wrong guesses, then the change under a live check: it counts as
    // the right password (the failures reset) and sets the new one.
    c.fail_logins("bob", 2);
    let check = c.reserve_login(1, "bob");
    c.by("bob", own_pw("bob", HASH2, check)).result.unwrap();
    let bob = c.state.user(&user("bob")).unwrap();
    assert_eq!(
        (bob.password_hash.as_str(), bob.password_epoch, bob.failures),
        (HASH2, 1, 0)
    );
    assert!(bob.reservations.is_empty());
    // The reservation is taken: the same check changes nothing twice.
    c.refused(
        "bob",
        own_pw("bob", HASH, check),
        Rejection::LoginExpired(user("bob")),
    );
}

#[test]
fn no_one_unlocks_itself() {
    // A stolen officer session would otherwise guess four times, clear
    // its own failures, and guess again without end.
    let mut c = Cluster::with_users(&[("co2", Role::Co)]);
    c.fail_logins("admin", 4);
    c.refused(
        "admin",
        unlock("admin"),
        Rejection::RoleDenied {
            role: Role::Co,
            action: "unlock itself".into(),
        },
    );
    c.by("co2", unlock("admin")).result.unwrap();
    let admin = c.state.user(&user("admin")).unwrap();
    assert_eq!(admin.failures, 0);
}

#[test]
fn a_new_password_voids_the_checks_of_the_old_one_in_flight() {
    // A guess at bob's old password is being checked when an officer
    // resets it (or bob changes it): its outcome finds no reservation, so
    // the node answers nothing about the old password.
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    let guess = c.reserve_login(1, "bob");
    c.by("admin", pw("bob", HASH2)).result.unwrap();
    let a = c.by_node(1, login_rejected("bob", guess));
    assert_eq!(a.result, Err(Rejection::LoginExpired(user("bob"))));
    let bob = c.state.user(&user("bob")).unwrap();
    assert_eq!((bob.failures, bob.reservations.len()), (0, 0));

    let guess = c.reserve_login(1, "bob");
    c.change_own_password("bob", HASH).result.unwrap();
    let a = c.by_node(1, login_ok("bob", guess));
    assert_eq!(a.result, Err(Rejection::LoginExpired(user("bob"))));
}

// ---------------------------------------------------------------- role table

#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Co,
    Cu,
    Anyone,
}

/// For each role, a cluster where every user event would succeed if the role
/// permits it, then every event kind applied to a copy of it.
#[test]
fn role_table_is_enforced_for_every_event_kind_and_role() {
    for role in [Role::Co, Role::Cu, Role::Au] {
        let mut base = Cluster::with_users(&[
            ("actor", role),
            ("victim", Role::Cu),
            ("peer", Role::Cu),
            ("sharee", Role::Cu),
        ]);
        base.fail_logins("victim", 2);
        base.by("admin", add_node(2)).result.unwrap();
        let owner = if role == Role::Cu { "actor" } else { "peer" };
        base.create_key(owner, 1, "k");
        base.share(owner, 1, "sharee");
        let check = base.reserve_login(1, "actor");

        let cases: Vec<(&str, EventBody, Who)> = vec![
            ("create user", create("newbie", Role::Au), Who::Co),
            ("delete user", delete("victim"), Who::Co),
            ("change other password", pw("victim", HASH2), Who::Co),
            (
                "change own password",
                own_pw("actor", HASH2, check),
                Who::Anyone,
            ),
            ("unlock", unlock("victim"), Who::Co),
            ("create key", aes_key(2, "n", false), Who::Cu),
            ("share", share(1, "victim"), Who::Cu),
            ("unshare", unshare(1, "sharee"), Who::Cu),
            ("set label", set_label(1, "z"), Who::Cu),
            ("set flag", set_flag(1, KeyFlag::Sign, true), Who::Cu),
            ("set trusted", set_flag(1, KeyFlag::Trusted, true), Who::Co),
            ("delete key", delete_key(1), Who::Cu),
            ("add node", add_node(3), Who::Co),
            ("remove node", remove_node(2), Who::Co),
            ("rotate the domain key", rotation(1, &[1, 2]), Who::Co),
        ];
        for (what, body, who) in cases {
            let mut c = base.clone();
            let before = c.state.clone();
            let a = c.by("actor", body);
            let allowed = match who {
                Who::Co => role == Role::Co,
                Who::Cu => role == Role::Cu,
                Who::Anyone => true,
            };
            if allowed {
                assert_eq!(a.result, Ok(()), "{role:?} {what}");
            } else {
                assert!(
                    role_denied(role)(&a.result),
                    "{role:?} {what}: {:?}",
                    a.result
                );
                assert_only_chain_changed(&before, &c.state);
            }
        }
        // Login bookkeeping is never a user's event.
        for body in [login_attempt("victim"), login_ok("victim", NO_RESERVATION)] {
            let mut c = base.clone();
            c.expect_refused(
                as_user("actor"),
                body,
                Rejection::UnknownActor("user actor".into()),
            );
        }
    }
}

#[test]
fn an_unknown_user_actor_is_refused_for_every_user_event() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    c.create_key("bob", 1, "k");
    for body in [
        create("eve", Role::Co),
        delete("bob"),
        pw("ghost", HASH2),
        unlock("bob"),
        aes_key(2, "a", false),
        share(1, "bob"),
        set_flag(1, KeyFlag::Trusted, true),
        delete_key(1),
        add_node(2),
    ] {
        c.expect_refused(
            as_user("ghost"),
            body,
            Rejection::UnknownActor("user ghost".into()),
        );
    }
}

#[test]
fn a_node_actor_is_refused_for_user_events() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    for body in [
        create("eve", Role::Co),
        pw("bob", HASH2),
        add_node(2),
        aes_key(1, "a", false),
    ] {
        c.expect_refused(
            Actor::Node(NodeId(1)),
            body,
            Rejection::UnknownActor("node n1".into()),
        );
    }
}

#[test]
fn login_events_need_a_member_node_actor_and_an_existing_user() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    c.expect_refused(
        Actor::Node(NodeId(9)),
        login_attempt("bob"),
        Rejection::UnknownActor("node n9".into()),
    );
    c.expect_refused(
        as_user("admin"),
        login_attempt("bob"),
        Rejection::UnknownActor("user admin".into()),
    );
    c.expect_refused(
        Actor::Node(NodeId(1)),
        login_attempt("nobody"),
        Rejection::UserNotFound(user("nobody")),
    );
    c.expect_refused(
        Actor::Node(NodeId(1)),
        login_ok("nobody", NO_RESERVATION),
        Rejection::UserNotFound(user("nobody")),
    );
    // Another member node may report logins.
    c.by("admin", add_node(2)).result.unwrap();
    let attempt = c.reserve_login(2, "bob");
    assert_eq!(failed_and_pending(&c, "bob"), (1, 1));
    // And another member may record its outcome (a new leader's node
    // finishing it is the same node; the rule does not care which).
    c.by_node(1, login_rejected("bob", attempt)).result.unwrap();
    assert_eq!(failed_and_pending(&c, "bob"), (1, 0));
}

#[test]
fn user_creation_rules() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    c.refused(
        "admin",
        create("bob", Role::Au),
        Rejection::UserExists(user("bob")),
    );
    c.refused(
        "admin",
        create("admin", Role::Co),
        Rejection::UserExists(user("admin")),
    );
    c.refused(
        "admin",
        create("pre", Role::Preco),
        Rejection::InvalidRole(Role::Preco),
    );
    c.refused(
        "admin",
        EventBody::UserCreated {
            username: user("carol"),
            role: Role::Cu,
            password_hash: BAD_HASH.into(),
        },
        Rejection::InvalidPasswordHash,
    );
    for (name, role) in [("c1", Role::Co), ("c2", Role::Cu), ("c3", Role::Au)] {
        c.create_user(name, role);
        let u = c.state.user(&user(name)).unwrap();
        assert_eq!(
            (
                u.role,
                u.locked,
                u.failed_logins(c.now_ms()),
                u.password_epoch
            ),
            (role, false, 0, 0)
        );
    }
    // A second crypto officer manages users too.
    c.by("c1", create("c4", Role::Cu)).result.unwrap();
}

#[test]
fn user_deletion_rules() {
    let mut c = Cluster::with_users(&[("co2", Role::Co), ("bob", Role::Cu), ("carol", Role::Au)]);
    c.refused("admin", delete("admin"), Rejection::CannotDeleteSelf);
    c.refused(
        "admin",
        delete("nobody"),
        Rejection::UserNotFound(user("nobody")),
    );
    c.by("admin", delete("carol")).result.unwrap();
    assert!(c.state.user(&user("carol")).is_none());
    // A crypto officer may delete another one, even `admin`.
    c.by("co2", delete("admin")).result.unwrap();
    assert!(c.state.user(&user("admin")).is_none());
    // And the name can be reused (never as a precrypto officer).
    c.by("co2", create("admin", Role::Au)).result.unwrap();
    assert_eq!(c.state.user(&user("admin")).unwrap().role, Role::Au);
}

// ---------------------------------------------------------------- lockout

/// A request id no reservation was ever made under.
const NO_RESERVATION: RequestId = RequestId([0xEE; 16]);

/// `name`'s failed logins and attempts in progress at the cluster's last
/// event time.
fn failed_and_pending(c: &Cluster, name: &str) -> (u8, u8) {
    let u = c.state.user(&user(name)).unwrap();
    (u.failed_logins(c.now_ms()), u.pending_logins(c.now_ms()))
}

#[test]
fn five_consecutive_failed_logins_lock_a_user_out_of_its_own_events() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    c.fail_logins("bob", usize::from(MAX_FAILED_LOGINS) - 1);
    let bob = c.state.user(&user("bob")).unwrap();
    assert_eq!(
        (bob.failed_logins(c.now_ms()), bob.locked, bob.is_locked()),
        (4, false, false)
    );
    c.create_key("bob", 1, "k");
    c.fail_logins("bob", 1);
    let bob = c.state.user(&user("bob")).unwrap();
    assert_eq!((bob.failures, bob.is_locked()), (5, true));
    c.refused(
        "bob",
        aes_key(2, "k2", false),
        Rejection::Locked(user("bob")),
    );
    c.refused(
        "bob",
        own_pw("bob", HASH2, NO_RESERVATION),
        Rejection::Locked(user("bob")),
    );
    c.refused("bob", delete_key(1), Rejection::Locked(user("bob")));
    // The next attempt after the fifth failure sets the lock.
    let (_, a) = c.try_reserve_login(1, "bob");
    assert_eq!(a.result, Ok(()));
    let bob = c.state.user(&user("bob")).unwrap();
    assert_eq!((bob.failures, bob.locked), (MAX_FAILED_LOGINS, true));
    assert!(bob.reservations.is_empty(), "nothing to check: {bob:?}");
    // Then no attempt is recorded (none is checked) and no login succeeds.
    c.expect_refused(
        Actor::Node(NodeId(1)),
        EventBody::LoginFailed {
            username: user("bob"),
        },
        Rejection::Locked(user("bob")),
    );
    c.expect_refused(
        Actor::Node(NodeId(1)),
        login_ok("bob", NO_RESERVATION),
        Rejection::LoginExpired(user("bob")),
    );
    // Time does not unlock: failures never expire.
    c.advance(10 * LOGIN_RESERVATION_TTL_MS);
    c.expect_refused(
        Actor::Node(NodeId(1)),
        login_attempt("bob"),
        Rejection::Locked(user("bob")),
    );
    // Others are unaffected.
    c.create_user("carol", Role::Cu);
}

#[test]
fn a_successful_login_resets_the_failure_count() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    c.fail_logins("bob", 4);
    let attempt = c.reserve_login(1, "bob");
    c.by_node(1, login_ok("bob", attempt)).result.unwrap();
    assert_eq!(failed_and_pending(&c, "bob"), (0, 0));
    c.fail_logins("bob", 4);
    let bob = c.state.user(&user("bob")).unwrap();
    assert_eq!((bob.failed_logins(c.now_ms()), bob.locked), (4, false));
    // The fifth attempt is recorded before its password is checked: while
    // it is, the user is at the limit but not locked; when it was right,
    // the login succeeds and resets the count.
    let attempt = c.reserve_login(1, "bob");
    let bob = c.state.user(&user("bob")).unwrap();
    assert!(bob.logins_busy(c.now_ms()) && !bob.is_locked());
    c.by_node(1, login_ok("bob", attempt)).result.unwrap();
    let bob = c.state.user(&user("bob")).unwrap();
    assert_eq!((bob.failed_logins(c.now_ms()), bob.is_locked()), (0, false));
    // An outcome is recorded once: the reservation is gone.
    c.expect_refused(
        Actor::Node(NodeId(1)),
        login_ok("bob", attempt),
        Rejection::LoginExpired(user("bob")),
    );
}

#[test]
fn concurrent_logins_wait_at_the_limit_instead_of_locking_the_user() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    // Five attempts in progress at once (a service starting five workers).
    let attempts: Vec<RequestId> = (0..MAX_FAILED_LOGINS)
        .map(|_| c.reserve_login(1, "bob"))
        .collect();
    // A sixth waits: not checked, not locking.
    c.expect_refused(
        Actor::Node(NodeId(1)),
        login_attempt("bob"),
        Rejection::LoginsInProgress(user("bob")),
    );
    let bob = c.state.user(&user("bob")).unwrap();
    assert!(!bob.is_locked() && !bob.locked);
    // Its own events still go through: sessions are not ended by attempts.
    c.create_key("bob", 1, "k");
    // Four were wrong, one right: the count is back to zero.
    for attempt in &attempts[..4] {
        c.by_node(1, login_rejected("bob", *attempt))
            .result
            .unwrap();
    }
    c.by_node(1, login_ok("bob", attempts[4])).result.unwrap();
    let bob = c.state.user(&user("bob")).unwrap();
    assert_eq!(
        (
            bob.failed_logins(c.now_ms()),
            bob.pending_logins(c.now_ms()),
            bob.is_locked()
        ),
        (0, 0, false)
    );
}

#[test]
fn a_success_keeps_the_attempts_still_in_progress_counted() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    let first = c.reserve_login(1, "bob");
    let second = c.reserve_login(1, "bob");
    c.by_node(1, login_ok("bob", second)).result.unwrap();
    assert_eq!(failed_and_pending(&c, "bob"), (1, 1));
    // The other was wrong: it stays a failure.
    c.by_node(1, login_rejected("bob", first)).result.unwrap();
    assert_eq!(failed_and_pending(&c, "bob"), (1, 0));
}

#[test]
fn five_attempts_in_progress_that_all_fail_lock_the_user() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    let attempts: Vec<RequestId> = (0..5).map(|_| c.reserve_login(1, "bob")).collect();
    for attempt in attempts {
        c.by_node(1, login_rejected("bob", attempt)).result.unwrap();
    }
    assert!(c.state.user(&user("bob")).unwrap().is_locked());
    c.refused(
        "bob",
        aes_key(1, "k", false),
        Rejection::Locked(user("bob")),
    );
    // A later attempt is not checked, and sets the lock.
    c.by_node(1, login_attempt("bob")).result.unwrap();
    assert!(c.state.user(&user("bob")).unwrap().locked);
}

#[test]
fn unanswered_reservations_expire_and_the_user_logs_in() {
    // The chaos finding: five attempts reserved, their node killed before
    // any outcome was recorded. Before, the user was refused for good.
    let mut c = Cluster::with_users(&[("co2", Role::Co)]);
    let orphans: Vec<RequestId> = (0..5).map(|_| c.reserve_login(1, "admin")).collect();
    c.expect_refused(
        Actor::Node(NodeId(1)),
        login_attempt("admin"),
        Rejection::LoginsInProgress(user("admin")),
    );
    // Just before the time-to-live the oldest still counts...
    let oldest = c.state.user(&user("admin")).unwrap().reservations[0].at_ms;
    c.advance(oldest + LOGIN_RESERVATION_TTL_MS - c.now_ms() - 1_001);
    c.expect_refused(
        Actor::Node(NodeId(1)),
        login_attempt("admin"),
        Rejection::LoginsInProgress(user("admin")),
    );
    // ... and from then on it does not: one attempt gets through.
    let next = c.reserve_login(1, "admin");
    let admin = c.state.user(&user("admin")).unwrap();
    assert_eq!(admin.reservations.len(), 5, "the oldest was dropped");
    assert!(admin.reservations.iter().all(|r| r.id != orphans[0]));
    // Once all five are past it, nothing of them is left: not busy, no
    // failure, and a right password logs in.
    c.advance(LOGIN_RESERVATION_TTL_MS);
    let admin = c.state.user(&user("admin")).unwrap();
    let now = c.now_ms() + 1_000;
    assert_eq!(
        (admin.failed_logins(now), admin.pending_logins(now)),
        (0, 0)
    );
    assert!(!admin.logins_busy(now) && !admin.is_locked());
    let attempt = c.reserve_login(1, "admin");
    let admin = c.state.user(&user("admin")).unwrap();
    assert_eq!(admin.reservations.len(), 1, "expired ones are dropped");
    c.by_node(1, login_ok("admin", attempt)).result.unwrap();
    let admin = c.state.user(&user("admin")).unwrap();
    assert_eq!((admin.failures, admin.reservations.len()), (0, 0));
    // An outcome that comes after its reservation expired is refused,
    // right password or wrong: the node that checked it must not answer.
    for late in [next, orphans[1]] {
        c.expect_refused(
            Actor::Node(NodeId(1)),
            login_ok("admin", late),
            Rejection::LoginExpired(user("admin")),
        );
        c.expect_refused(
            Actor::Node(NodeId(1)),
            login_rejected("admin", late),
            Rejection::LoginExpired(user("admin")),
        );
    }
    // The officer acts again.
    c.by("admin", create("x", Role::Au)).result.unwrap();
}

#[test]
fn an_outcome_must_name_a_live_reservation_of_that_user() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu), ("carol", Role::Cu)]);
    let bobs = c.reserve_login(1, "bob");
    // Not carol's, not made up.
    for (name, id) in [("carol", bobs), ("bob", NO_RESERVATION)] {
        for body in [login_ok(name, id), login_rejected(name, id)] {
            c.expect_refused(
                Actor::Node(NodeId(1)),
                body,
                Rejection::LoginExpired(user(name)),
            );
        }
    }
    // One millisecond short of the time-to-live it is still answered.
    let at = c.state.user(&user("bob")).unwrap().reservations[0].at_ms;
    c.advance(at + LOGIN_RESERVATION_TTL_MS - 1 - c.now_ms() - 1_000);
    c.by_node(1, login_rejected("bob", bobs)).result.unwrap();
    assert_eq!(failed_and_pending(&c, "bob"), (1, 0));
    // A failure recorded stays when time passes; only reservations expire.
    c.advance(10 * LOGIN_RESERVATION_TTL_MS);
    let bob = c.state.user(&user("bob")).unwrap();
    assert_eq!(bob.failed_logins(c.now_ms() + 1_000), 1);
    // A reservation dated after the outcome (a new leader whose clock is
    // behind) still counts.
    let later = c.reserve_login(1, "bob");
    let outcome = c.outcome_id("bob", later);
    let mut ev = c.event_with_id(
        outcome,
        Actor::Node(NodeId(1)),
        login_rejected("bob", later),
    );
    ev.timestamp_ms -= 60_000;
    let a = c.apply(&c.sign(ev));
    assert_eq!(a.result, Ok(()));
    assert_eq!(failed_and_pending(&c, "bob"), (2, 0));
}

/// A login attempt sent again (a client's retry, through another node, or
/// a copy that arrives late) is the attempt: its reservation is the first
/// one, and one outcome is recorded per attempt and account, under the
/// attempt's outcome id only; a copy of it is answered with the first, and
/// the other outcome under that id is refused. So a late copy of a right
/// login neither resets the count again nor counts.
#[test]
fn a_copy_of_a_login_attempt_is_that_attempt() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    let two = EventBody::NodeAdded {
        node: node_record(2),
    };
    c.by("admin", two).result.unwrap();
    let attempt = c.reserve_login(1, "bob");
    let copy = c.by_node_as(2, attempt, login_attempt("bob"));
    assert_eq!((copy.result, copy.replayed), (Ok(()), true));
    assert_eq!(failed_and_pending(&c, "bob"), (1, 1));
    // Under any other id, the outcome is refused.
    let before = c.state.clone();
    let a = c.by_node_as(1, attempt, login_ok("bob", attempt));
    assert_eq!(a.result, Err(Rejection::RequestIdReused));
    let a = c.by_node_as(1, RequestId([7; 16]), login_ok("bob", attempt));
    assert_eq!(a.result, Err(Rejection::LoginExpired(user("bob"))));
    assert_only_chain_changed(&before, &c.state);
    // Right, through node 2; then four wrong ones.
    let outcome = |c: &Cluster, attempt| {
        let bob = c.state.user(&user("bob")).unwrap();
        c.state.login_outcome(attempt, bob)
    };
    assert_eq!(outcome(&c, attempt), None);
    c.by_node(2, login_ok("bob", attempt)).result.unwrap();
    assert_eq!(outcome(&c, attempt), Some(LoginOutcome::Right));
    let wrong = c.reserve_login(1, "bob");
    c.by_node(1, login_rejected("bob", wrong)).result.unwrap();
    assert_eq!(outcome(&c, wrong), Some(LoginOutcome::Wrong));
    c.fail_logins("bob", 3);
    assert_eq!(failed_and_pending(&c, "bob"), (4, 0));
    // The late copies: answered as the first, and nothing moves.
    let before = c.state.clone();
    let late = c.by_node_as(1, attempt, login_attempt("bob"));
    assert_eq!((late.result, late.replayed), (Ok(()), true));
    let late = c.by_node(1, login_ok("bob", attempt));
    assert_eq!((late.result, late.replayed), (Ok(()), true));
    let other = c.by_node(1, login_rejected("bob", attempt));
    assert_eq!(other.result, Err(Rejection::RequestIdReused));
    assert_only_chain_changed(&before, &c.state);
    assert_eq!(failed_and_pending(&c, "bob"), (4, 0));
    // After a password change the attempt's outcome id is another, and
    // finds the attempt gone.
    let attempt = c.reserve_login(1, "bob");
    c.by(
        "admin",
        EventBody::PasswordChanged {
            username: user("bob"),
            password_hash: HASH2.into(),
        },
    )
    .result
    .unwrap();
    assert_eq!(outcome(&c, attempt), None, "another id after the change");
    let a = c.by_node(1, login_ok("bob", attempt));
    assert_eq!(a.result, Err(Rejection::LoginExpired(user("bob"))));
    // Refused, for every copy after it, whatever it checked.
    assert_eq!(outcome(&c, attempt), Some(LoginOutcome::Refused));
    let copy = c.by_node(2, login_rejected("bob", attempt));
    assert_eq!(copy.result, Err(Rejection::RequestIdReused));
    assert_eq!(outcome(&c, attempt), Some(LoginOutcome::Refused));
}

/// A node refuses a new login attempt from its caught-up replica, without
/// writing its reservation, exactly when `apply` would refuse that
/// reservation (or lock the user with it): `User::refuses_new_attempt`.
#[test]
fn a_new_attempt_is_refused_before_its_reservation_as_apply_would() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    let refused = |c: &Cluster| {
        c.state
            .user(&user("bob"))
            .expect("bob")
            .refuses_new_attempt(c.now_ms())
    };
    // Room for attempts: none refused, and apply reserves one.
    c.fail_logins("bob", 3);
    assert_eq!(refused(&c), None);
    let checking = c.reserve_login(1, "bob");
    assert_eq!(refused(&c), None);
    let last = c.reserve_login(1, "bob");
    // At the limit with attempts in progress: in progress, as apply says.
    assert_eq!(refused(&c), Some(Rejection::LoginsInProgress(user("bob"))));
    let (_, a) = c.try_reserve_login(1, "bob");
    assert_eq!(a.result, Err(Rejection::LoginsInProgress(user("bob"))));
    // Both fail: locked, as apply has it.
    c.by_node(1, login_rejected("bob", checking))
        .result
        .unwrap();
    c.by_node(1, login_rejected("bob", last)).result.unwrap();
    assert_eq!(refused(&c), Some(Rejection::Locked(user("bob"))));
    let (_, a) = c.try_reserve_login(1, "bob");
    assert!(
        matches!(a.result, Err(Rejection::Locked(_)))
            || c.state.user(&user("bob")).expect("bob").locked,
        "{:?}",
        a.result
    );
}

/// While other attempts of the user are being checked at the limit, an
/// attempt is refused as in progress, and that refusal is not its outcome:
/// sent again once they are answered, it is reserved.
#[test]
fn an_attempt_refused_while_others_are_checked_is_decided_again() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    c.fail_logins("bob", 4);
    let two = EventBody::NodeAdded {
        node: node_record(2),
    };
    c.by("admin", two).result.unwrap();
    let checking = c.reserve_login(1, "bob");
    let (attempt, a) = c.try_reserve_login(1, "bob");
    assert_eq!(a.result, Err(Rejection::LoginsInProgress(user("bob"))));
    c.by_node(1, login_ok("bob", checking)).result.unwrap();
    let again = c.by_node_as(2, attempt, login_attempt("bob"));
    assert_eq!((again.result, again.replayed), (Ok(()), false));
    assert_eq!(failed_and_pending(&c, "bob"), (1, 1));
}

#[test]
fn a_crypto_officer_unlocks_and_resets_the_count() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu), ("co2", Role::Co)]);
    c.refused("admin", unlock("bob"), Rejection::NotLocked(user("bob")));
    c.refused(
        "admin",
        unlock("nobody"),
        Rejection::UserNotFound(user("nobody")),
    );
    c.fail_logins("bob", 5);
    c.refused("bob", unlock("bob"), Rejection::Locked(user("bob")));
    c.by("admin", unlock("bob")).result.unwrap();
    let bob = c.state.user(&user("bob")).unwrap();
    assert_eq!((bob.failed_logins(c.now_ms()), bob.locked), (0, false));
    c.create_key("bob", 1, "k");
    // Unlocking a user with failures that is not locked yet resets the count.
    c.fail_logins("bob", 2);
    c.by("admin", unlock("bob")).result.unwrap();
    assert_eq!(failed_and_pending(&c, "bob"), (0, 0));
    // Attempts in progress are dropped too; their outcomes are refused.
    let attempt = c.reserve_login(1, "bob");
    c.by("admin", unlock("bob")).result.unwrap();
    assert_eq!(failed_and_pending(&c, "bob"), (0, 0));
    c.expect_refused(
        Actor::Node(NodeId(1)),
        login_rejected("bob", attempt),
        Rejection::LoginExpired(user("bob")),
    );
    // Expired reservations are nothing to unlock.
    c.reserve_login(1, "bob");
    c.advance(LOGIN_RESERVATION_TTL_MS);
    c.refused("admin", unlock("bob"), Rejection::NotLocked(user("bob")));
    // A locked crypto officer cannot act; another one unlocks it.
    c.fail_logins("admin", 5);
    c.refused(
        "admin",
        create("x", Role::Au),
        Rejection::Locked(user("admin")),
    );
    c.by("co2", unlock("admin")).result.unwrap();
    c.create_user("x", Role::Au);
}

// ---------------------------------------------------------------- keys

#[test]
fn a_crypto_user_owns_the_keys_it_creates() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    c.create_key("bob", 1, "a");
    c.by("bob", ed_key(2, "b")).result.unwrap();
    let k = c.state.key(KeyId(1)).unwrap();
    assert_eq!(k.owner, user("bob"));
    assert!(k.shared_with.is_empty());
    assert_eq!(k.attributes.label, "a");
    let owned: Vec<_> = c.state.keys_owned_by(&user("bob")).map(|k| k.id).collect();
    assert_eq!(owned, vec![KeyId(1), KeyId(2)]);
}

#[test]
fn key_creation_validates_the_key() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu), ("carol", Role::Cu)]);
    c.create_key("carol", 7, "x");
    c.refused(
        "bob",
        aes_key(7, "y", false),
        Rejection::KeyExists(KeyId(7)),
    );
    let mat = vec![1; 32];
    c.refused(
        "bob",
        key_body(KeySpec::Aes { bits: 100 }, attrs("a"), mat.clone(), vec![]),
        Rejection::InvalidKeySpec,
    );
    c.refused(
        "bob",
        key_body(
            KeySpec::Rsa { bits: 1024 },
            attrs("a"),
            mat.clone(),
            vec![1],
        ),
        Rejection::InvalidKeySpec,
    );
    let cases = [
        key_body(KeySpec::Aes { bits: 128 }, attrs("a"), vec![], vec![]),
        key_body(
            KeySpec::Aes { bits: 128 },
            attrs("a"),
            mat.clone(),
            vec![1, 2],
        ),
        key_body(KeySpec::EcP256, attrs("a"), mat.clone(), vec![]),
        key_body(
            KeySpec::Aes { bits: 128 },
            attrs(&"l".repeat(128)),
            mat.clone(),
            vec![],
        ),
    ];
    for body in cases {
        let before = c.state.clone();
        let a = c.by("bob", body);
        assert!(
            matches!(a.result, Err(Rejection::InvalidKey(_))),
            "{:?}",
            a.result
        );
        assert_only_chain_changed(&before, &c.state);
    }
    // The valid counterparts are accepted.
    c.by(
        "bob",
        key_body(KeySpec::EcP256, attrs("a"), mat.clone(), vec![1]),
    )
    .result
    .unwrap();
    c.by(
        "bob",
        EventBody::KeyCreated {
            key: KeyId(51),
            spec: KeySpec::GenericSecret { bytes: 32 },
            attributes: attrs(&"l".repeat(127)),
            provenance: hsm_proto::KeyProvenance::known_outside(hsm_proto::KeyOrigin::Imported),
            domain_generation: 0,
            wrapped_material: mat,
            public_key: vec![],
            unique_label: false,
        },
    )
    .result
    .unwrap();
}

#[test]
fn a_shared_user_sees_the_key_but_cannot_manage_it() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu), ("carol", Role::Cu), ("dave", Role::Cu)]);
    c.create_key("bob", 1, "k");
    c.share("bob", 1, "carol");
    assert_eq!(shares(&c, 1), vec!["carol"]);
    let not_owner = |r: &Result<(), Rejection>| matches!(r, Err(Rejection::NotOwner { key, .. }) if *key == KeyId(1));
    for body in [
        delete_key(1),
        share(1, "dave"),
        unshare(1, "carol"),
        set_label(1, "mine"),
        set_flag(1, KeyFlag::Sign, true),
    ] {
        let before = c.state.clone();
        let a = c.by("carol", body);
        assert!(not_owner(&a.result), "{:?}", a.result);
        assert_only_chain_changed(&before, &c.state);
    }
    // A user the key is not shared with cannot even see it.
    for body in [
        delete_key(1),
        share(1, "carol"),
        unshare(1, "carol"),
        set_label(1, "m"),
    ] {
        c.refused("dave", body, Rejection::KeyNotFound(KeyId(1)));
    }
    // A key that does not exist is not found either.
    c.refused("bob", delete_key(9), Rejection::KeyNotFound(KeyId(9)));
    // Unsharing makes it invisible again.
    c.by("bob", unshare(1, "carol")).result.unwrap();
    c.refused("carol", delete_key(1), Rejection::KeyNotFound(KeyId(1)));
    // The owner deletes it.
    c.by("bob", delete_key(1)).result.unwrap();
    assert!(c.state.key(KeyId(1)).is_none());
    // And the id may be used again.
    c.create_key("carol", 1, "k");
}

#[test]
fn sharing_rules() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu), ("carol", Role::Cu), ("ann", Role::Au)]);
    c.create_key("bob", 1, "k");
    let invalid_share = |r: &Result<(), Rejection>, who: &str| matches!(r, Err(Rejection::InvalidShare(u, _)) if *u == user(who));
    for (with, body) in [
        ("ann", share(1, "ann")),
        ("admin", share(1, "admin")),
        ("bob", share(1, "bob")),
        ("carol", unshare(1, "carol")),
    ] {
        let before = c.state.clone();
        let a = c.by("bob", body);
        assert!(invalid_share(&a.result, with), "{with}: {:?}", a.result);
        assert_only_chain_changed(&before, &c.state);
    }
    c.refused(
        "bob",
        share(1, "nobody"),
        Rejection::UserNotFound(user("nobody")),
    );
    c.share("bob", 1, "carol");
    let a = c.by("bob", share(1, "carol"));
    assert!(invalid_share(&a.result, "carol"));
    assert_eq!(shares(&c, 1), vec!["carol"]);
}

#[test]
fn deleting_a_user_removes_it_from_share_lists() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu), ("carol", Role::Cu), ("dave", Role::Cu)]);
    c.create_key("bob", 1, "k1");
    c.create_key("bob", 2, "k2");
    c.create_key("dave", 3, "k3");
    c.share("bob", 1, "carol");
    c.share("bob", 2, "carol");
    c.share("bob", 2, "dave");
    c.share("dave", 3, "carol");
    let a = c.by("admin", delete("carol"));
    assert_eq!(a.result, Ok(()));
    assert_eq!(shares(&c, 1), Vec::<String>::new());
    assert_eq!(shares(&c, 2), vec!["dave"]);
    assert_eq!(shares(&c, 3), Vec::<String>::new());
    let want: BTreeSet<EntityKey> = [
        EntityKey::Meta,
        EntityKey::User(user("carol")),
        EntityKey::Key(KeyId(1)),
        EntityKey::Key(KeyId(2)),
        EntityKey::Key(KeyId(3)),
    ]
    .into_iter()
    .collect();
    let got: BTreeSet<EntityKey> = a
        .changed
        .into_iter()
        .filter(|k| !matches!(k, EntityKey::Request(_)))
        .collect();
    assert_eq!(got, want);
    // A new user of the same name does not inherit the shares.
    c.create_user("carol", Role::Cu);
    c.refused("carol", delete_key(1), Rejection::KeyNotFound(KeyId(1)));
    // The state reloads (no dangling shares).
    assert_eq!(State::from_entities(c.state.entities()).unwrap(), c.state);
}

#[test]
fn a_user_that_owns_keys_cannot_be_deleted() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    c.create_key("bob", 1, "a");
    c.create_key("bob", 2, "b");
    c.refused(
        "admin",
        delete("bob"),
        Rejection::UserOwnsKeys {
            user: user("bob"),
            keys: 2,
        },
    );
    c.by("bob", delete_key(1)).result.unwrap();
    c.refused(
        "admin",
        delete("bob"),
        Rejection::UserOwnsKeys {
            user: user("bob"),
            keys: 1,
        },
    );
    c.by("bob", delete_key(2)).result.unwrap();
    c.by("admin", delete("bob")).result.unwrap();
    assert!(c.state.user(&user("bob")).is_none());
}

// ---------------------------------------------------------------- attributes

fn key_with(c: &mut Cluster, owner: &str, id: u64, sensitive: bool, extractable: bool) {
    let attributes = KeyAttributes {
        sensitive,
        extractable,
        ..attrs("r")
    };
    let body = EventBody::KeyCreated {
        key: KeyId(id),
        spec: KeySpec::Aes { bits: 128 },
        attributes,
        provenance: hsm_proto::KeyProvenance::known_outside(hsm_proto::KeyOrigin::Imported),
        domain_generation: 0,
        wrapped_material: vec![9; 32],
        public_key: vec![],
        unique_label: false,
    };
    c.by(owner, body).result.unwrap();
}

fn flag(c: &Cluster, id: u64, f: KeyFlag) -> bool {
    c.state.key(KeyId(id)).unwrap().attributes.flag(f)
}

#[test]
fn sensitive_may_only_go_from_false_to_true() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    key_with(&mut c, "bob", 1, false, true);
    c.by("bob", set_flag(1, KeyFlag::Sensitive, false))
        .result
        .unwrap();
    c.by("bob", set_flag(1, KeyFlag::Sensitive, true))
        .result
        .unwrap();
    assert!(flag(&c, 1, KeyFlag::Sensitive));
    c.refused(
        "bob",
        set_flag(1, KeyFlag::Sensitive, false),
        Rejection::AttributeRatchet(KeyFlag::Sensitive),
    );
    c.by("bob", set_flag(1, KeyFlag::Sensitive, true))
        .result
        .unwrap();
    assert!(flag(&c, 1, KeyFlag::Sensitive));
}

#[test]
fn extractable_may_only_go_from_true_to_false() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    key_with(&mut c, "bob", 1, true, true);
    c.by("bob", set_flag(1, KeyFlag::Extractable, true))
        .result
        .unwrap();
    c.by("bob", set_flag(1, KeyFlag::Extractable, false))
        .result
        .unwrap();
    assert!(!flag(&c, 1, KeyFlag::Extractable));
    c.refused(
        "bob",
        set_flag(1, KeyFlag::Extractable, true),
        Rejection::AttributeRatchet(KeyFlag::Extractable),
    );
    c.by("bob", set_flag(1, KeyFlag::Extractable, false))
        .result
        .unwrap();
    // A key created non-extractable can never become extractable.
    key_with(&mut c, "bob", 2, true, false);
    c.refused(
        "bob",
        set_flag(2, KeyFlag::Extractable, true),
        Rejection::AttributeRatchet(KeyFlag::Extractable),
    );
}

#[test]
fn wrap_with_trusted_once_set_stays_set() {
    // Otherwise the owner could clear it and wrap the key under a key of
    // its own (PKCS#11 makes CKA_WRAP_WITH_TRUSTED one-way too).
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    key_with(&mut c, "bob", 1, true, true);
    c.by("bob", set_flag(1, KeyFlag::WrapWithTrusted, false))
        .result
        .unwrap();
    c.by("bob", set_flag(1, KeyFlag::WrapWithTrusted, true))
        .result
        .unwrap();
    c.refused(
        "bob",
        set_flag(1, KeyFlag::WrapWithTrusted, false),
        Rejection::AttributeRatchet(KeyFlag::WrapWithTrusted),
    );
    assert!(flag(&c, 1, KeyFlag::WrapWithTrusted));
}

#[test]
fn other_flags_label_and_id_change_both_ways() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    key_with(&mut c, "bob", 1, true, true);
    let usages = [
        KeyFlag::Encrypt,
        KeyFlag::Decrypt,
        KeyFlag::Sign,
        KeyFlag::Verify,
        KeyFlag::Wrap,
        KeyFlag::Unwrap,
        KeyFlag::Derive,
    ];
    for f in usages {
        c.by("bob", set_flag(1, f, false)).result.unwrap();
    }
    for f in usages {
        for v in [true, false, true, false] {
            c.by("bob", set_flag(1, f, v)).result.unwrap();
            assert_eq!(flag(&c, 1, f), v, "{f:?}");
        }
    }
    c.by("bob", set_label(1, "new")).result.unwrap();
    c.by(
        "bob",
        EventBody::KeyAttributeSet {
            key: KeyId(1),
            attribute: KeyAttribute::Id(vec![1, 2, 3]),
        },
    )
    .result
    .unwrap();
    let a = &c.state.key(KeyId(1)).unwrap().attributes;
    assert_eq!(
        (a.label.as_str(), a.id.as_slice()),
        ("new", &[1u8, 2, 3][..])
    );
    let before = c.state.clone();
    let r = c.by("bob", set_label(1, &"x".repeat(200)));
    assert!(matches!(r.result, Err(Rejection::InvalidKey(_))));
    assert_only_chain_changed(&before, &c.state);
}

#[test]
fn only_a_crypto_officer_sets_trusted() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu), ("ann", Role::Au)]);
    c.create_key("bob", 1, "k");
    for who in ["bob", "ann"] {
        let before = c.state.clone();
        let a = c.by(who, set_flag(1, KeyFlag::Trusted, true));
        assert!(
            matches!(a.result, Err(Rejection::RoleDenied { .. })),
            "{who}"
        );
        assert_only_chain_changed(&before, &c.state);
    }
    c.by("admin", set_flag(1, KeyFlag::Trusted, true))
        .result
        .unwrap();
    assert!(flag(&c, 1, KeyFlag::Trusted));
    c.by("admin", set_flag(1, KeyFlag::Trusted, false))
        .result
        .unwrap();
    assert!(!flag(&c, 1, KeyFlag::Trusted));
    c.refused(
        "admin",
        set_flag(9, KeyFlag::Trusted, true),
        Rejection::KeyNotFound(KeyId(9)),
    );
}

#[test]
fn a_key_cannot_be_created_trusted() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    let body = EventBody::KeyCreated {
        key: KeyId(1),
        spec: KeySpec::Aes { bits: 256 },
        attributes: KeyAttributes {
            trusted: true,
            ..attrs("t")
        },
        provenance: hsm_proto::KeyProvenance::known_outside(hsm_proto::KeyOrigin::Imported),
        domain_generation: 0,
        wrapped_material: vec![1; 32],
        public_key: vec![],
        unique_label: false,
    };
    let before = c.state.clone();
    let a = c.by("bob", body);
    assert_eq!(
        a.result,
        Err(Rejection::KeyPolicy(KeyPolicyError::CreatedTrusted))
    );
    assert_only_chain_changed(&before, &c.state);
}

fn created(id: u64, attributes: KeyAttributes, provenance: KeyProvenance) -> EventBody {
    EventBody::KeyCreated {
        key: KeyId(id),
        spec: KeySpec::Aes { bits: 256 },
        attributes,
        provenance,
        domain_generation: 0,
        wrapped_material: vec![1; 32],
        public_key: vec![],
        unique_label: false,
    }
}

fn usages(flags: &[KeyFlag]) -> KeyAttributes {
    let mut a = KeyAttributes {
        label: "k".into(),
        ..KeyAttributes::default()
    };
    for f in flags {
        a.set_flag(*f, true);
    }
    a
}

#[test]
fn wrap_with_decrypt_and_unwrap_with_encrypt_are_refused_at_creation() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    for (pair, conflict) in [
        (
            [KeyFlag::Wrap, KeyFlag::Decrypt],
            KeyPolicyError::Conflict(KeyFlag::Wrap, KeyFlag::Decrypt),
        ),
        (
            [KeyFlag::Unwrap, KeyFlag::Encrypt],
            KeyPolicyError::Conflict(KeyFlag::Unwrap, KeyFlag::Encrypt),
        ),
    ] {
        let a = usages(&pair);
        for provenance in [
            KeyProvenance::generated(&a),
            KeyProvenance::known_outside(KeyOrigin::Imported),
        ] {
            let before = c.state.clone();
            let r = c.by("bob", created(1, a.clone(), provenance));
            assert_eq!(r.result, Err(Rejection::KeyPolicy(conflict.clone())));
            assert_only_chain_changed(&before, &c.state);
        }
    }
    // Each on its own, and wrap with encrypt, unwrap with decrypt, are fine.
    let fine = usages(&[KeyFlag::Wrap, KeyFlag::Unwrap, KeyFlag::Sign]);
    c.by(
        "bob",
        created(2, fine.clone(), KeyProvenance::generated(&fine)),
    )
    .result
    .unwrap();
    let fine = usages(&[KeyFlag::Encrypt, KeyFlag::Decrypt]);
    c.by(
        "bob",
        created(3, fine.clone(), KeyProvenance::generated(&fine)),
    )
    .result
    .unwrap();
}

#[test]
fn no_attribute_change_makes_a_wrapping_key_decrypt_or_an_unwrapping_key_encrypt() {
    // The attack this closes: wrap a secret under W, let W decrypt, and
    // decrypt the wrapped secret as data; or let W encrypt chosen bytes
    // and unwrap them as a "sensitive" key.
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    let kek = usages(&[KeyFlag::Wrap, KeyFlag::Unwrap]);
    c.by(
        "bob",
        created(1, kek.clone(), KeyProvenance::generated(&kek)),
    )
    .result
    .unwrap();
    let data = usages(&[KeyFlag::Encrypt, KeyFlag::Decrypt]);
    c.by(
        "bob",
        created(2, data.clone(), KeyProvenance::generated(&data)),
    )
    .result
    .unwrap();
    for (key, flag, conflict) in [
        (1, KeyFlag::Decrypt, (KeyFlag::Wrap, KeyFlag::Decrypt)),
        (1, KeyFlag::Encrypt, (KeyFlag::Unwrap, KeyFlag::Encrypt)),
        (2, KeyFlag::Wrap, (KeyFlag::Wrap, KeyFlag::Decrypt)),
        (2, KeyFlag::Unwrap, (KeyFlag::Unwrap, KeyFlag::Encrypt)),
    ] {
        let before = c.state.clone();
        let r = c.by("bob", set_flag(key, flag, true));
        assert_eq!(
            r.result,
            Err(Rejection::KeyPolicy(KeyPolicyError::Conflict(
                conflict.0, conflict.1
            ))),
            "key {key} {flag:?}"
        );
        assert_only_chain_changed(&before, &c.state);
    }
    // Dropping one side first makes the other allowed.
    c.by("bob", set_flag(1, KeyFlag::Wrap, false))
        .result
        .unwrap();
    c.by("bob", set_flag(1, KeyFlag::Decrypt, true))
        .result
        .unwrap();
}

#[test]
fn a_trusted_keys_attributes_change_only_after_an_officer_removes_trusted() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    let kek = usages(&[KeyFlag::Wrap, KeyFlag::Unwrap]);
    c.by(
        "bob",
        created(1, kek.clone(), KeyProvenance::generated(&kek)),
    )
    .result
    .unwrap();
    c.by("admin", set_flag(1, KeyFlag::Trusted, true))
        .result
        .unwrap();
    let frozen = Rejection::KeyPolicy(KeyPolicyError::TrustedKeyFrozen(KeyId(1)));
    for change in [
        set_flag(1, KeyFlag::Wrap, false),
        set_flag(1, KeyFlag::Sign, true),
        set_flag(1, KeyFlag::Sensitive, true),
        set_flag(1, KeyFlag::Extractable, false),
        set_label(1, "renamed"),
    ] {
        c.refused("bob", change, frozen.clone());
    }
    c.by("admin", set_flag(1, KeyFlag::Trusted, false))
        .result
        .unwrap();
    c.by("bob", set_label(1, "renamed")).result.unwrap();
}

#[test]
fn a_new_keys_provenance_must_fit_how_it_was_made() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    let a = usages(&[KeyFlag::Encrypt]);
    let bad = [
        // Generated keys are local, and always sensitive iff sensitive.
        KeyProvenance {
            local: false,
            ..KeyProvenance::generated(&a)
        },
        KeyProvenance {
            always_sensitive: false,
            ..KeyProvenance::generated(&a)
        },
        // Imported and derived keys are known outside.
        KeyProvenance {
            local: true,
            ..KeyProvenance::known_outside(KeyOrigin::Imported)
        },
        KeyProvenance {
            always_sensitive: true,
            local: true,
            ..KeyProvenance::known_outside(KeyOrigin::Derived)
        },
        // An unwrapped copy is never "never extractable", and always
        // sensitive only when local.
        KeyProvenance {
            origin: KeyOrigin::Unwrapped,
            local: false,
            always_sensitive: true,
            never_extractable: false,
        },
        KeyProvenance {
            origin: KeyOrigin::Unwrapped,
            local: true,
            always_sensitive: true,
            never_extractable: true,
        },
    ];
    for p in bad {
        c.refused(
            "bob",
            created(1, a.clone(), p),
            Rejection::KeyPolicy(KeyPolicyError::InconsistentProvenance),
        );
    }
    // Always sensitive needs sensitive.
    let open = KeyAttributes {
        sensitive: false,
        ..a.clone()
    };
    c.refused(
        "bob",
        created(
            1,
            open,
            KeyProvenance {
                origin: KeyOrigin::Unwrapped,
                local: true,
                always_sensitive: true,
                never_extractable: false,
            },
        ),
        Rejection::KeyPolicy(KeyPolicyError::InconsistentProvenance),
    );
    let copy = KeyProvenance {
        origin: KeyOrigin::Unwrapped,
        local: true,
        always_sensitive: true,
        never_extractable: false,
    };
    c.by("bob", created(1, a.clone(), copy)).result.unwrap();
    assert_eq!(c.state.key(KeyId(1)).unwrap().provenance, copy);
}

#[test]
fn attribute_changes_never_touch_provenance() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    let a = KeyAttributes {
        sensitive: false,
        ..usages(&[KeyFlag::Encrypt])
    };
    let p = KeyProvenance::generated(&a);
    c.by("bob", created(1, a, p)).result.unwrap();
    c.by("bob", set_flag(1, KeyFlag::Sensitive, true))
        .result
        .unwrap();
    c.by("bob", set_flag(1, KeyFlag::Extractable, false))
        .result
        .unwrap();
    let key = c.state.key(KeyId(1)).unwrap();
    assert!(key.attributes.sensitive && !key.attributes.extractable);
    assert_eq!(
        key.provenance, p,
        "once not sensitive, never always sensitive"
    );
    assert!(!key.provenance.never_known_outside());
}

// ---------------------------------------------------------------- labels

#[test]
fn a_unique_label_is_refused_if_the_owner_has_a_key_with_that_label() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu), ("carol", Role::Cu)]);
    c.create_key("bob", 1, "a");
    c.refused(
        "bob",
        aes_key(2, "a", true),
        Rejection::LabelNotUnique("a".into()),
    );
    // Without the flag duplicates are fine.
    c.by("bob", aes_key(2, "a", false)).result.unwrap();
    // Another owner's label does not count, even if shared.
    c.share("bob", 1, "carol");
    c.by("carol", aes_key(3, "a", true)).result.unwrap();
    // A label freed by a relabel or a delete is available again.
    c.by("bob", aes_key(4, "b", true)).result.unwrap();
    c.refused(
        "bob",
        aes_key(5, "b", true),
        Rejection::LabelNotUnique("b".into()),
    );
    c.by("bob", set_label(4, "c")).result.unwrap();
    c.refused(
        "bob",
        aes_key(5, "c", true),
        Rejection::LabelNotUnique("c".into()),
    );
    c.by("bob", aes_key(5, "b", true)).result.unwrap();
    c.by("bob", delete_key(1)).result.unwrap();
    c.refused(
        "bob",
        aes_key(6, "a", true),
        Rejection::LabelNotUnique("a".into()),
    );
    c.by("bob", delete_key(2)).result.unwrap();
    c.by("bob", aes_key(6, "a", true)).result.unwrap();
}

// ---------------------------------------------------------------- replay

#[test]
fn the_same_request_id_twice_applies_once_and_replays_the_result() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    let id = c.next_request_id();
    let event = c.event_with_id(id, as_user("bob"), aes_key(1, "a", false));
    let first = c.apply(&c.sign(event));
    assert_eq!(first.result, Ok(()));
    assert!(!first.replayed);
    let before = c.state.clone();

    let event = c.event_with_id(id, as_user("bob"), aes_key(1, "a", false));
    let again = c.apply(&c.sign(event));
    assert_eq!(again.result, first.result);
    assert!(again.replayed);
    assert_eq!(again.changed, [EntityKey::Meta].into_iter().collect());
    assert_only_chain_changed(&before, &c.state);
    assert_eq!(c.state.events(), before.events() + 1);
    assert_ne!(c.state.head(), before.head());
    assert_eq!(c.state.request(&id), before.request(&id));
    assert_eq!(c.state.key_count(), 1);
}

#[test]
fn a_retry_rebuilt_with_fresh_material_is_still_a_replay() {
    // A retried write may be rebuilt by another node: new key material
    // (or the same, wrapped afresh), a new reservation of a password check.
    // It is the same request.
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    let id = c.next_request_id();
    let with_material = |material: u8| match aes_key(1, "a", false) {
        EventBody::KeyCreated {
            key,
            spec,
            attributes,
            unique_label,
            ..
        } => EventBody::KeyCreated {
            key,
            spec,
            provenance: KeyProvenance::generated(&attributes),
            attributes,
            domain_generation: 0,
            wrapped_material: vec![material; 40],
            public_key: vec![],
            unique_label,
        },
        other => other,
    };
    let event = c.event_with_id(id, as_user("bob"), with_material(1));
    assert_eq!(c.apply(&c.sign(event)).result, Ok(()));
    let event = c.event_with_id(id, as_user("bob"), with_material(2));
    let again = c.apply(&c.sign(event));
    assert!(again.replayed);
    let key = c.state.key(hsm_proto::KeyId(1)).expect("key");
    assert_eq!(
        key.wrapped_material,
        vec![1; 40],
        "the first material stays"
    );

    // A retry of one's own password change reserves its check afresh.
    let id = c.next_request_id();
    let check = c.reserve_login(1, "bob");
    let event = c.event_with_id(id, as_user("bob"), own_pw("bob", HASH2, check));
    assert_eq!(c.apply(&c.sign(event)).result, Ok(()));
    let check = c.reserve_login(1, "bob");
    let event = c.event_with_id(id, as_user("bob"), own_pw("bob", HASH2, check));
    let again = c.apply(&c.sign(event));
    assert!(again.replayed);
}

#[test]
fn a_request_id_reused_with_other_material_the_caller_gave_is_refused() {
    // Imported, unwrapped or derived material is the caller's: it wraps
    // alike for the same key id and generation, so a copy carries the same
    // bytes, and other material under a used id is another request,
    // refused rather than answered with the first key as if imported.
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    let with_material = |material: u8, public: u8| match ed_key(1, "a") {
        EventBody::KeyCreated {
            key,
            spec,
            attributes,
            provenance,
            unique_label,
            ..
        } => EventBody::KeyCreated {
            key,
            spec,
            attributes,
            provenance,
            domain_generation: 0,
            wrapped_material: vec![material; 64],
            public_key: vec![public; 44],
            unique_label,
        },
        other => other,
    };
    let id = c.next_request_id();
    let event = c.event_with_id(id, as_user("bob"), with_material(1, 1));
    assert_eq!(c.apply(&c.sign(event)).result, Ok(()));
    let before = c.state.clone();
    for (other_material, public) in [(2, 1), (1, 2)] {
        let body = with_material(other_material, public);
        assert_eq!(
            c.state.same_request(id, &as_user("bob"), &body),
            Some(false)
        );
        let event = c.event_with_id(id, as_user("bob"), body);
        let other = c.apply(&c.sign(event));
        assert_eq!(
            (other.result, other.replayed),
            (Err(Rejection::RequestIdReused), false)
        );
    }
    assert_only_chain_changed(&before, &c.state);
    let copy = with_material(1, 1);
    assert_eq!(c.state.same_request(id, &as_user("bob"), &copy), Some(true));
    let event = c.event_with_id(id, as_user("bob"), copy);
    assert!(c.apply(&c.sign(event)).replayed, "the true copy");
    let fresh = c.next_request_id();
    assert_eq!(
        c.state
            .same_request(fresh, &as_user("bob"), &with_material(1, 1)),
        None
    );
}

#[test]
fn a_request_id_reused_with_another_password_an_officer_sets_is_refused() {
    // The password an officer sets (a reset, a new user) is part of the
    // request: hashed with a salt drawn from the request id, every attempt
    // of one request hashes it alike. Under a used id, another password is
    // another request: refused, never answered with the first one's
    // outcome as if applied.
    let mut c = Cluster::with_users(&[("bob", Role::Cu), ("carol", Role::Cu)]);
    let id = c.next_request_id();
    let event = c.event_with_id(id, as_user("admin"), pw("carol", HASH2));
    assert_eq!(c.apply(&c.sign(event)).result, Ok(()));
    let before = c.state.clone();
    let event = c.event_with_id(id, as_user("admin"), pw("carol", HASH));
    let other = c.apply(&c.sign(event));
    assert_eq!(
        (other.result, other.replayed),
        (Err(Rejection::RequestIdReused), false)
    );
    assert_only_chain_changed(&before, &c.state);
    let event = c.event_with_id(id, as_user("admin"), pw("carol", HASH2));
    assert!(c.apply(&c.sign(event)).replayed, "the true retry");

    let id = c.next_request_id();
    let dave = |hash: &str| EventBody::UserCreated {
        username: user("dave"),
        role: Role::Cu,
        password_hash: hash.into(),
    };
    let event = c.event_with_id(id, as_user("admin"), dave(HASH));
    assert_eq!(c.apply(&c.sign(event)).result, Ok(()));
    let event = c.event_with_id(id, as_user("admin"), dave(HASH2));
    assert_eq!(
        c.apply(&c.sign(event)).result,
        Err(Rejection::RequestIdReused)
    );

    // One's own new password is not: a retry is answered with the first
    // outcome whatever it carries, and sets nothing (refusing another one
    // would answer guesses at the password set, uncounted).
    let id = c.next_request_id();
    let check = c.reserve_login(1, "bob");
    let event = c.event_with_id(id, as_user("bob"), own_pw("bob", HASH2, check));
    assert_eq!(c.apply(&c.sign(event)).result, Ok(()));
    let check = c.reserve_login(1, "bob");
    let event = c.event_with_id(id, as_user("bob"), own_pw("bob", HASH, check));
    assert!(c.apply(&c.sign(event)).replayed);
    let bob = c.state.user(&user("bob")).expect("bob");
    assert_eq!(bob.password_hash, HASH2);
}

#[test]
fn a_replayed_refusal_stays_refused_even_if_it_would_now_succeed() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu), ("carol", Role::Cu)]);
    c.create_key("carol", 5, "c");
    let id = c.next_request_id();
    let ev = c.event_with_id(id, as_user("bob"), aes_key(5, "b", false));
    let first = c.apply(&c.sign(ev));
    assert_eq!(first.result, Err(Rejection::KeyExists(KeyId(5))));
    c.by("carol", delete_key(5)).result.unwrap();
    let before = c.state.clone();
    // The same request again returns the first outcome; a different body
    // under the same id is refused as a reused id.
    let ev = c.event_with_id(id, as_user("bob"), aes_key(5, "b", false));
    let a = c.apply(&c.sign(ev));
    assert_eq!((a.result, a.replayed), (first.result.clone(), true));
    let ev = c.event_with_id(id, as_user("bob"), aes_key(6, "b", false));
    let a = c.apply(&c.sign(ev));
    assert_eq!(
        (a.result, a.replayed),
        (Err(Rejection::RequestIdReused), false)
    );
    assert_only_chain_changed(&before, &c.state);
    assert_eq!(c.state.key_count(), 0);
}

#[test]
fn an_event_refused_before_the_chain_is_not_remembered() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    let id = c.next_request_id();
    let mut ev = c.event_with_id(id, as_user("bob"), aes_key(1, "a", false));
    ev.prev_hash = EventHash([3; 32]);
    let a = c.apply(&c.sign(ev));
    assert_eq!(a.result, Err(Rejection::ChainMismatch));
    assert!(c.state.request(&id).is_none());
    let ev = c.event_with_id(id, as_user("bob"), aes_key(1, "a", false));
    let a = c.apply(&c.sign(ev));
    assert_eq!((a.result, a.replayed), (Ok(()), false));
    assert_eq!(c.state.key_count(), 1);
}

// ---------------------------------------------------------------- authenticity

fn assert_nothing_changed(c: &Cluster, before: &State, a: &hsm_state::Applied) {
    assert!(a.changed.is_empty(), "{:?}", a.changed);
    assert!(!a.replayed);
    assert_eq!(c.state.digest(), before.digest());
    assert_eq!(&c.state, before);
}

/// An inauthentic but linked event: the chain moves (so later events can
/// link to it), nothing else does, and its request id is not remembered.
fn assert_only_chain_moved(c: &Cluster, before: &State, a: &hsm_state::Applied) {
    assert_eq!(
        a.changed,
        BTreeSet::from([EntityKey::Meta]),
        "{:?}",
        a.changed
    );
    assert!(!a.replayed);
    assert_eq!(c.state.events(), before.events() + 1);
    assert_only_chain_changed(before, &c.state);
}

#[test]
fn a_tampered_signature_is_refused_and_only_the_chain_moves() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    let ev = c.event(as_user("bob"), aes_key(1, "a", false));
    let mut signed = c.sign(ev);
    signed.signature.0[10] ^= 1;
    let before = c.state.clone();
    let a = c.apply(&signed);
    assert_eq!(a.result, Err(Rejection::BadSignature(FIRST)));
    assert_only_chain_moved(&c, &before, &a);

    // A body changed after signing.
    let ev = c.event(as_user("bob"), aes_key(1, "a", false));
    let mut signed = c.sign(ev);
    signed.event.actor = as_user("admin");
    let before = c.state.clone();
    let a = c.apply(&signed);
    assert_eq!(a.result, Err(Rejection::BadSignature(FIRST)));
    assert_only_chain_moved(&c, &before, &a);

    // An all-zero signature.
    let ev = c.event(as_user("bob"), aes_key(1, "a", false));
    let mut signed = c.sign(ev);
    signed.signature = Signature([0; 64]);
    let before = c.state.clone();
    let a = c.apply(&signed);
    assert_eq!(a.result, Err(Rejection::BadSignature(FIRST)));
    assert_only_chain_moved(&c, &before, &a);
}

/// A cluster with the crypto user bob, and bob's next key creation with
/// its signature damaged after signing.
fn bob_and_a_forged_key_event() -> (Cluster, hsm_proto::SignedEvent) {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    let ev = c.event(as_user("bob"), aes_key(1, "a", false));
    let mut forged = c.sign(ev);
    forged.signature.0[10] ^= 1;
    (c, forged)
}

/// Vouches for one event hash with one key, as a leader does for the
/// events it signed itself.
struct VouchFor(EventHash, [u8; 32]);

impl hsm_state::Vouch for VouchFor {
    fn signed_with(&self, hash: &EventHash) -> Option<[u8; 32]> {
        (*hash == self.0).then_some(self.1)
    }
}

#[test]
fn a_vouched_event_applies_as_its_verified_copy_does() {
    let mut verified = Cluster::with_users(&[("bob", Role::Cu)]);
    let mut vouched = Cluster::with_users(&[("bob", Role::Cu)]);
    let ev = verified.event(as_user("bob"), aes_key(1, "a", false));
    let signed = verified.sign(ev);
    let key = node_key(FIRST.0).verifying_key().to_bytes();
    let a = verified.apply(&signed);
    let b = vouched
        .state
        .apply_vouched(&signed, &VouchFor(hsm_state::event_hash(&signed), key));
    assert_eq!(a, b);
    assert_eq!(a.result, Ok(()));
    assert_eq!(verified.state.digest(), vouched.state.digest());
}

#[test]
fn a_vouch_with_the_signers_registered_key_is_taken_without_verifying() {
    // Which is why only the node's own signing may vouch (OwnEvents in
    // hsm-raft-store): a vouch is believed, not checked.
    let (mut c, forged) = bob_and_a_forged_key_event();
    let key = node_key(FIRST.0).verifying_key().to_bytes();
    let a = c
        .state
        .apply_vouched(&forged, &VouchFor(hsm_state::event_hash(&forged), key));
    assert_eq!(a.result, Ok(()));
}

#[test]
fn a_sealed_batch_vouches_for_the_events_its_sealer_signed() {
    use hsm_state::Vouch;
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    let first = c.event(as_user("bob"), aes_key(1, "a", false));
    let first = c.sign(first);
    let second = hsm_state::sign_event(
        hsm_proto::Event {
            prev_hash: hsm_state::event_hash(&first),
            ..c.event(as_user("bob"), aes_key(2, "b", false))
        },
        FIRST,
        &node_key(FIRST.0),
    );
    let mut forged = second.clone();
    forged.signature.0[7] ^= 1;
    // An event of another signer in the same entry.
    let other = hsm_state::sign_event(
        c.event(as_user("bob"), aes_key(3, "c", false)),
        NodeId(7),
        &node_key(7),
    );
    let events = [first.clone(), forged.clone(), other.clone()];
    let hashes: Vec<EventHash> = events.iter().map(hsm_state::event_hash).collect();
    let seal = hsm_state::seal_batch(&hashes, FIRST, &node_key(FIRST.0));
    let vouch = c
        .state
        .vouch_for_batch(&events, &seal)
        .expect("a member's valid seal");
    let key = node_key(FIRST.0).verifying_key().to_bytes();
    assert_eq!(vouch.signed_with(&hashes[0]), Some(key));
    assert_eq!(vouch.signed_with(&hashes[1]), Some(key));
    assert_eq!(
        vouch.signed_with(&hashes[2]),
        None,
        "not the sealer's event"
    );

    // The seal is the sealer's word for what it sealed: the damaged
    // signature is not checked again (as the leader's own are not).
    let a = c.state.apply_vouched(&first, &vouch);
    assert_eq!(a.result, Ok(()));
    let a = c.state.apply_vouched(&forged, &vouch);
    assert_eq!(a.result, Ok(()));
}

#[test]
fn a_seal_that_does_not_verify_or_is_not_a_members_vouches_for_nothing() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    let ev = c.event(as_user("bob"), aes_key(1, "a", false));
    let events = [c.sign(ev)];
    let hashes: Vec<EventHash> = events.iter().map(hsm_state::event_hash).collect();
    // Signed with another key than the sealer is registered under.
    let wrong_key = hsm_state::seal_batch(&hashes, FIRST, &node_key(7));
    assert!(c.state.vouch_for_batch(&events, &wrong_key).is_none());
    // Over other events.
    let other = hsm_state::seal_batch(&[EventHash([3; 32])], FIRST, &node_key(FIRST.0));
    assert!(c.state.vouch_for_batch(&events, &other).is_none());
    // By a node that is not a member.
    let stranger = hsm_state::seal_batch(&hashes, NodeId(7), &node_key(7));
    assert!(c.state.vouch_for_batch(&events, &stranger).is_none());
    // A damaged seal.
    let mut damaged = hsm_state::seal_batch(&hashes, FIRST, &node_key(FIRST.0));
    damaged.signature.0[0] ^= 1;
    assert!(c.state.vouch_for_batch(&events, &damaged).is_none());
}

#[test]
fn a_vouch_with_another_key_than_the_signers_is_no_vouch() {
    // A forged signature, vouched for by a key that is not the one the
    // signer is registered under (another node's, or the signer's before
    // it was replaced): verified, and refused.
    let (mut c, forged) = bob_and_a_forged_key_event();
    let other = node_key(7).verifying_key().to_bytes();
    let before = c.state.clone();
    let a = c
        .state
        .apply_vouched(&forged, &VouchFor(hsm_state::event_hash(&forged), other));
    assert_eq!(a.result, Err(Rejection::BadSignature(FIRST)));
    assert_only_chain_moved(&c, &before, &a);

    // And a vouch for another event vouches for nothing here.
    let (mut c, forged) = bob_and_a_forged_key_event();
    let key = node_key(FIRST.0).verifying_key().to_bytes();
    let a = c
        .state
        .apply_vouched(&forged, &VouchFor(EventHash([9; 32]), key));
    assert_eq!(a.result, Err(Rejection::BadSignature(FIRST)));
}

#[test]
fn an_unknown_signer_is_refused_and_only_the_chain_moves() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    c.signer = NodeId(9);
    let before = c.state.clone();
    let a = c.by("bob", aes_key(1, "a", false));
    assert_eq!(a.result, Err(Rejection::UnknownSigner(NodeId(9))));
    assert_only_chain_moved(&c, &before, &a);
    // A member's id with a non-member's key.
    let ev = c.event(as_user("bob"), aes_key(1, "a", false));
    let before = c.state.clone();
    let a = c.apply(&sign_event(ev, FIRST, &node_key(9)));
    assert_eq!(a.result, Err(Rejection::BadSignature(FIRST)));
    assert_only_chain_moved(&c, &before, &a);
}

#[test]
fn a_wrong_prev_hash_is_refused_and_changes_nothing() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    let stale = c.state.head();
    c.create_user("carol", Role::Cu);
    let before = c.state.clone();
    for prev in [stale, EventHash::GENESIS, EventHash([0xFF; 32])] {
        let mut ev = c.event(as_user("bob"), aes_key(1, "a", false));
        ev.prev_hash = prev;
        let a = c.apply(&c.sign(ev));
        assert_eq!(a.result, Err(Rejection::ChainMismatch));
        assert_nothing_changed(&c, &before, &a);
    }
    // The same event applied twice: the second no longer extends the chain.
    let signed = {
        let ev = c.event(as_user("bob"), aes_key(1, "a", false));
        c.sign(ev)
    };
    assert_eq!(c.apply(&signed).result, Ok(()));
    let before = c.state.clone();
    let a = c.apply(&signed);
    assert_eq!(a.result, Err(Rejection::ChainMismatch));
    assert_nothing_changed(&c, &before, &a);
}

#[test]
fn a_rule_refusal_changes_nothing_but_the_chain_head() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu), ("carol", Role::Cu)]);
    c.create_key("bob", 1, "a");
    c.share("bob", 1, "carol");
    let before = c.state.clone();
    let a = c.by("carol", delete_key(1));
    assert!(a.result.is_err());
    assert_eq!(
        c.state.users().collect::<Vec<_>>(),
        before.users().collect::<Vec<_>>()
    );
    assert_eq!(
        c.state.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    assert_ne!(c.state.head(), before.head());
    assert_eq!(c.state.events(), before.events() + 1);
    let rid: BTreeSet<_> = diff(&before, &c.state);
    assert_eq!(rid.len(), 2, "{rid:?}");
    assert!(rid.contains(&EntityKey::Meta));
    assert_eq!(a.changed, rid);
}

#[test]
fn signatures_follow_membership() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    c.by("admin", add_node(2)).result.unwrap();
    c.signer = NodeId(2);
    c.create_user("carol", Role::Cu);
    c.by("admin", remove_node(1)).result.unwrap();
    let before = c.state.clone();
    c.signer = FIRST;
    let a = c.by("admin", create("dave", Role::Cu));
    assert_eq!(a.result, Err(Rejection::UnknownSigner(FIRST)));
    assert_only_chain_moved(&c, &before, &a);
}

// ---------------------------------------------------------------- nodes

#[test]
fn nodes_are_added_up_to_the_maximum() {
    let mut c = Cluster::activated();
    for id in 2..=MAX_NODES as u64 {
        c.by("admin", add_node(id)).result.unwrap();
    }
    assert_eq!(c.state.nodes().count(), MAX_NODES);
    let before = c.state.clone();
    let a = c.by("admin", add_node(100));
    assert!(
        matches!(a.result, Err(Rejection::Membership(_))),
        "{:?}",
        a.result
    );
    assert_only_chain_changed(&before, &c.state);
    c.refused("admin", add_node(2), Rejection::NodeExists(NodeId(2)));
    // After a removal there is room again.
    c.by("admin", remove_node(5)).result.unwrap();
    c.by("admin", add_node(100)).result.unwrap();
    assert_eq!(c.state.node(NodeId(100)), Some(&node_record(100)));
}

#[test]
fn a_node_must_bring_its_own_signing_key() {
    let mut c = Cluster::activated();
    let mut node = node_record(2);
    node.signing_key = node_record(1).signing_key;
    let before = c.state.clone();
    let a = c.by("admin", EventBody::NodeAdded { node });
    assert!(
        matches!(a.result, Err(Rejection::Membership(_))),
        "{:?}",
        a.result
    );
    assert_only_chain_changed(&before, &c.state);
}

#[test]
fn nodes_are_removed_but_never_the_last() {
    let mut c = Cluster::activated();
    c.refused("admin", remove_node(7), Rejection::NodeNotFound(NodeId(7)));
    let before = c.state.clone();
    let a = c.by("admin", remove_node(1));
    assert!(
        matches!(a.result, Err(Rejection::Membership(_))),
        "{:?}",
        a.result
    );
    assert_only_chain_changed(&before, &c.state);
    c.by("admin", add_node(2)).result.unwrap();
    // Node 1 signs; it may not sign its own removal (its pipelined events
    // would stop verifying and break the chain). Node 2 may remove it.
    let before = c.state.clone();
    let a = c.by("admin", remove_node(1));
    assert!(
        matches!(&a.result, Err(Rejection::Membership(m)) if m.contains("own removal")),
        "{:?}",
        a.result
    );
    assert_only_chain_changed(&before, &c.state);
    c.signer = NodeId(2);
    c.by("admin", remove_node(1)).result.unwrap();
    assert_eq!(
        c.state.nodes().map(|n| n.id).collect::<Vec<_>>(),
        vec![NodeId(2)]
    );
    let a = c.by("admin", remove_node(2));
    assert!(
        matches!(a.result, Err(Rejection::Membership(_))),
        "{:?}",
        a.result
    );
    // A removed node's id is never given out again: certificates name
    // node ids. A new member gets a new id.
    let a = c.by("admin", add_node(1));
    assert!(
        matches!(&a.result, Err(Rejection::Membership(m)) if m.contains("never reused")),
        "{:?}",
        a.result
    );
    c.by("admin", add_node(3)).result.unwrap();
}

// ---------------------------------------------------------------- entities

/// A cluster that has been through a bit of everything.
fn busy_cluster() -> Cluster {
    let mut c = Cluster::with_users(&[
        ("co2", Role::Co),
        ("bob", Role::Cu),
        ("carol", Role::Cu),
        ("ann", Role::Au),
        ("gone", Role::Cu),
    ]);
    c.by("admin", add_node(2)).result.unwrap();
    c.by("admin", add_node(3)).result.unwrap();
    c.create_key("bob", 1, "a");
    c.by("bob", ed_key(2, "b")).result.unwrap();
    c.create_key("carol", 3, "a");
    // A removal and its rotation, with the keys still to re-wrap.
    c.by("admin", remove_node(2)).result.unwrap();
    c.by_node(1, rotation(1, &[1, 3])).result.unwrap();
    c.share("bob", 1, "carol");
    c.share("bob", 2, "gone");
    c.share("carol", 3, "bob");
    c.by("bob", set_flag(1, KeyFlag::Extractable, false))
        .result
        .unwrap();
    c.by("admin", set_flag(3, KeyFlag::Trusted, true))
        .result
        .unwrap();
    c.by("bob", set_label(2, "relabelled")).result.unwrap();
    c.by("admin", delete("gone")).result.unwrap();
    c.fail_logins("ann", 5);
    c.fail_logins("carol", 2);
    let _ = c.by("carol", delete_key(1));
    let _ = c.by("bob", aes_key(4, "a", true));
    c.by("bob", delete_key(2)).result.unwrap();
    c
}

#[test]
fn from_entities_reproduces_the_same_state_and_digest() {
    let c = busy_cluster();
    let entities: Vec<_> = c.state.entities().collect();
    assert_eq!(entities.len(), c.state.entity_count());
    let rebuilt = State::from_entities(entities.clone()).unwrap();
    assert_eq!(rebuilt, c.state);
    assert_eq!(rebuilt.digest(), c.state.digest());
    // In any order, and through the byte encoding.
    let mut reversed = entities.clone();
    reversed.reverse();
    let rebuilt = State::from_entities(reversed).unwrap();
    assert_eq!(rebuilt, c.state);
    let decoded: Vec<_> = entities
        .iter()
        .map(|e| hsm_state::Entity::from_bytes(&e.to_bytes().unwrap()).unwrap())
        .collect();
    assert_eq!(
        State::from_entities(decoded).unwrap().digest(),
        c.state.digest()
    );
    // The rebuilt state keeps applying the same way (indexes were rebuilt).
    let mut a = c.clone();
    let mut b = c.clone();
    b.state = State::from_entities(c.state.entities()).unwrap();
    for cl in [&mut a, &mut b] {
        assert_eq!(
            cl.by("admin", delete("bob")).result,
            Err(Rejection::UserOwnsKeys {
                user: user("bob"),
                keys: 1
            })
        );
        assert_eq!(
            cl.by("bob", aes_key_at(9, "a", true, 1)).result,
            Err(Rejection::LabelNotUnique("a".into()))
        );
    }
    assert_eq!(a.state, b.state);
}

#[test]
fn from_entities_rejects_inconsistent_entities() {
    let c = busy_cluster();
    let mut entities: Vec<_> = c.state.entities().collect();
    entities.push(entities[1].clone());
    assert!(matches!(
        State::from_entities(entities),
        Err(LoadError::Duplicate(_))
    ));
    let without_bob = c
        .state
        .entities()
        .filter(|e| e.key() != EntityKey::User(user("bob")));
    assert!(matches!(
        State::from_entities(without_bob),
        Err(LoadError::DanglingOwner { .. } | LoadError::DanglingShare { .. })
    ));
}

#[test]
fn digests_differ_when_states_differ_and_agree_when_equal() {
    let a = busy_cluster();
    let b = busy_cluster();
    assert_eq!(a.state.digest(), b.state.digest());
    assert_ne!(a.state.digest(), Cluster::activated().state.digest());
}

// ---------------------------------------------------------------- changed

/// [`checked`] for an event with request id `id`.
fn checked_with_id(
    c: &mut Cluster,
    id: RequestId,
    actor: Actor,
    body: EventBody,
) -> Result<(), Rejection> {
    let before = c.state.clone();
    let event = c.event_with_id(id, actor, body);
    let a = c.apply(&c.sign(event));
    assert_eq!(a.changed, diff(&before, &c.state), "{:?}", a.result);
    a.result
}

/// Applies and checks that `changed` lists exactly the entities that differ.
fn checked(c: &mut Cluster, actor: Actor, body: EventBody) -> Result<(), Rejection> {
    let before = c.state.clone();
    let a = c.submit(actor, body);
    assert_eq!(a.changed, diff(&before, &c.state), "{:?}", a.result);
    a.result
}

#[test]
fn changed_lists_exactly_the_entities_that_differ() {
    let mut c = Cluster::new();
    let n1 = || Actor::Node(NodeId(1));
    let u = as_user;
    checked(&mut c, u("admin"), create("x", Role::Cu)).unwrap_err();
    checked(&mut c, n1(), init_body(1, BAD_HASH)).unwrap_err();
    checked(&mut c, n1(), init_body(1, HASH)).unwrap();
    checked(&mut c, u("admin"), create("x", Role::Cu)).unwrap_err();
    checked(&mut c, u("admin"), pw("admin", HASH2)).unwrap_err();
    let check = c.next_request_id();
    checked_with_id(&mut c, check, n1(), login_attempt("admin")).unwrap();
    checked(&mut c, u("admin"), own_pw("admin", HASH2, check)).unwrap();
    for (name, role) in [("bob", Role::Cu), ("carol", Role::Cu), ("co2", Role::Co)] {
        checked(&mut c, u("admin"), create(name, role)).unwrap();
    }
    let steps: Vec<(Actor, EventBody)> = vec![
        (u("bob"), aes_key(1, "a", false)),
        (u("bob"), aes_key(2, "a", true)),
        (u("bob"), ed_key(2, "b")),
        (u("bob"), share(1, "carol")),
        (u("bob"), share(1, "carol")),
        (u("carol"), delete_key(1)),
        (u("bob"), set_label(1, "c")),
        (u("bob"), set_label(1, "c")),
        (u("bob"), set_flag(1, KeyFlag::Sensitive, true)),
        (u("bob"), set_flag(1, KeyFlag::Extractable, false)),
        (u("bob"), set_flag(1, KeyFlag::Extractable, false)),
        (u("admin"), set_flag(1, KeyFlag::Trusted, false)),
        (u("admin"), set_flag(1, KeyFlag::Trusted, true)),
        (u("admin"), set_flag(1, KeyFlag::Trusted, true)),
    ];
    for (actor, body) in steps {
        let _ = checked(&mut c, actor, body);
    }
    // Logins: outcomes name their reservation (the attempt's request id).
    let mut attempts = Vec::new();
    checked(&mut c, n1(), login_ok("carol", RequestId([0xEE; 16]))).unwrap_err();
    for _ in 0..7 {
        let id = c.next_request_id();
        let _ = checked_with_id(&mut c, id, n1(), login_attempt("carol"));
        attempts.push(id);
    }
    let outcome = |c: &Cluster, i: usize| c.outcome_id("carol", attempts[i]);
    let first = outcome(&c, 0);
    checked(&mut c, n1(), login_ok("carol", attempts[0])).unwrap_err();
    checked_with_id(&mut c, first, n1(), login_ok("carol", attempts[0])).unwrap();
    // A copy is answered with the first outcome; another outcome is not.
    checked_with_id(&mut c, first, n1(), login_ok("carol", attempts[0])).unwrap();
    checked_with_id(&mut c, first, n1(), login_rejected("carol", attempts[0])).unwrap_err();
    let second = outcome(&c, 1);
    checked_with_id(&mut c, second, n1(), login_rejected("carol", attempts[1])).unwrap();
    // Past the time-to-live: an outcome is refused; the next write of the
    // user drops the expired reservations.
    c.advance(LOGIN_RESERVATION_TTL_MS);
    let third = outcome(&c, 2);
    checked_with_id(&mut c, third, n1(), login_rejected("carol", attempts[2])).unwrap_err();
    checked(&mut c, n1(), login_attempt("carol")).unwrap();
    let steps: Vec<(Actor, EventBody)> = vec![
        (u("admin"), unlock("carol")),
        (u("admin"), unlock("carol")),
        (u("admin"), pw("carol", HASH)),
        (u("admin"), add_node(2)),
        (u("admin"), add_node(2)),
        (u("admin"), remove_node(2)),
        (u("bob"), unshare(1, "carol")),
        (u("bob"), share(2, "carol")),
        (u("admin"), delete("carol")),
        (u("admin"), delete("bob")),
        (u("bob"), delete_key(1)),
        (u("bob"), delete_key(2)),
        (u("admin"), delete("bob")),
        (n1(), init_body(1, HASH)),
    ];
    for (actor, body) in steps {
        let _ = checked(&mut c, actor, body);
    }
    // Tampered: only the chain moves, and only that is listed.
    let ev = c.event(as_user("admin"), create("y", Role::Au));
    let mut s = c.sign(ev);
    s.signature.0[0] ^= 0x80;
    let before = c.state.clone();
    let a = c.apply(&s);
    assert_eq!(a.changed, BTreeSet::from([EntityKey::Meta]));
    assert_eq!(diff(&before, &c.state), a.changed);
    // Unlinked: nothing changes and nothing is listed.
    let mut ev = c.event(as_user("admin"), create("y", Role::Au));
    ev.prev_hash = EventHash([9; 32]);
    let before = c.state.clone();
    let a = c.apply(&c.sign(ev));
    assert!(a.changed.is_empty());
    assert_eq!(diff(&before, &c.state), BTreeSet::new());
}

#[test]
fn oversized_key_material_is_refused() {
    let mut c = Cluster::with_users(&[("alice", Role::Cu)]);
    let mut body = aes_key(9, "big", false);
    if let EventBody::KeyCreated {
        wrapped_material, ..
    } = &mut body
    {
        *wrapped_material = vec![1; hsm_proto::MAX_KEY_BLOB_LEN + 1];
    }
    let before = c.state.clone();
    let a = c.by("alice", body);
    assert!(
        matches!(&a.result, Err(Rejection::InvalidKey(m)) if m.contains("too large")),
        "{:?}",
        a.result
    );
    assert_only_chain_changed(&before, &c.state);
}

#[test]
fn a_different_request_reusing_an_id_is_refused_not_answered_as_a_replay() {
    let mut c = Cluster::with_users(&[("alice", Role::Cu)]);
    let id = c.next_request_id();
    let first = c.event_with_id(id, as_user("alice"), aes_key(1, "one", false));
    let first = c.sign(first);
    assert_eq!(c.apply(&first).result, Ok(()));

    // Same id, another body: refused, nothing but the chain moves.
    let before = c.state.clone();
    let other = c.event_with_id(id, as_user("alice"), aes_key(2, "two", false));
    let other = c.sign(other);
    let a = c.apply(&other);
    assert_eq!(a.result, Err(Rejection::RequestIdReused));
    assert!(!a.replayed);
    assert_only_chain_changed(&before, &c.state);
    assert!(c.state.key(hsm_proto::KeyId(2)).is_none());

    // The real retry is still answered as a replay.
    let retry = c.event_with_id(id, as_user("alice"), aes_key(1, "one", false));
    let retry = c.sign(retry);
    let a = c.apply(&retry);
    assert!(a.replayed);
    assert_eq!(a.result, Ok(()));
}

#[test]
fn a_removed_member_keeps_its_key_pin_and_nothing_else() {
    use hsm_state::authz::{peer_standing, PeerStanding};
    let mut c = Cluster::activated();
    c.by("admin", add_node(2)).result.unwrap();
    let pin = node_record(2).transport_key;
    assert_eq!(
        peer_standing(&c.state, NodeId(2), &pin),
        PeerStanding::Member
    );
    assert_eq!(
        peer_standing(&c.state, NodeId(2), &[0xEE; 32]),
        PeerStanding::WrongKey
    );
    c.by("admin", remove_node(2)).result.unwrap();
    // Raft may still need its answers until the removal commits: its own
    // key is known as retired, any other key for its id is an impostor.
    assert_eq!(
        peer_standing(&c.state, NodeId(2), &pin),
        PeerStanding::Retired
    );
    assert_eq!(
        peer_standing(&c.state, NodeId(2), &[0xEE; 32]),
        PeerStanding::WrongKey
    );
    assert_eq!(
        peer_standing(&c.state, NodeId(9), &pin),
        PeerStanding::NotMember
    );
    assert_eq!(
        peer_standing(&State::new(), NodeId(2), &pin),
        PeerStanding::NoClusterYet
    );
}

/// A member that joins hands over a roster (the cluster and member
/// records of the member it joined through); its first snapshot may be
/// older than that roster and miss members added since, the leader among
/// them. It checks peers against whichever is further along the chain.
#[test]
fn a_joiner_checks_peers_against_the_newer_of_its_replica_and_its_roster() {
    use hsm_state::authz::{members_view, peer_standing, PeerStanding};
    let mut c = Cluster::activated();
    let old_snapshot = c.state.clone();
    c.by("admin", add_node(2)).result.unwrap();
    let roster = c.state.roster();
    let pin2 = node_record(2).transport_key;

    // The snapshot predates node 2: the roster decides, and node 2 (the
    // leader sending the snapshot, say) is a member.
    let view = members_view(&old_snapshot, Some(&roster));
    assert_eq!(view.events(), roster.events());
    assert_eq!(peer_standing(view, NodeId(2), &pin2), PeerStanding::Member);
    // An empty replica knows no one: the roster decides.
    assert_eq!(
        members_view(&State::new(), Some(&roster)).events(),
        roster.events()
    );
    // Without a roster, the replica decides, old as it is.
    assert_eq!(
        peer_standing(members_view(&old_snapshot, None), NodeId(2), &pin2),
        PeerStanding::NotMember
    );

    // Once the replica has caught up with the roster and moved on (node 2
    // removed), the replica decides: a roster never keeps a removed member.
    c.by("admin", remove_node(2)).result.unwrap();
    let view = members_view(&c.state, Some(&roster));
    assert_eq!(view.events(), c.state.events());
    assert_eq!(peer_standing(view, NodeId(2), &pin2), PeerStanding::Retired);
}

/// Node 3, away while node 2 was added and elected, comes back to a
/// leader its replica does not list. It takes a member's roster only when
/// that roster is further along the chain than what it goes by, and
/// recorded as its own (`check_roster`); then node 2 is a member to it.
#[test]
fn a_member_back_from_away_takes_only_a_roster_further_along_than_its_view() {
    use hsm_state::authz::{check_roster, members_view, peer_standing, supersedes, PeerStanding};
    let mut c = Cluster::activated();
    c.by("admin", add_node(3)).result.unwrap();
    let away = c.state.clone();
    c.by("admin", add_node(2)).result.unwrap();
    let roster = c.state.roster();
    let pin2 = node_record(2).transport_key;
    let me = node_record(3);

    assert_eq!(
        peer_standing(&away, NodeId(2), &pin2),
        PeerStanding::NotMember
    );
    assert!(supersedes(&roster, &away));
    let cluster = roster.cluster().expect("cluster").cluster_id;
    check_roster(&roster, cluster, me.id, &me.signing_key, &pin2)
        .expect("a roster of its own cluster");
    let view = members_view(&away, Some(&roster));
    assert_eq!(peer_standing(view, NodeId(2), &pin2), PeerStanding::Member);

    // A roster no further along than the view (its own replica, a member
    // as far behind) is of no use; nor is one older than a roster it keeps.
    assert!(!supersedes(&away.roster(), &away));
    assert!(!supersedes(&away.roster(), view));
    // A roster that no longer records it (removed while away) is refused.
    c.by("admin", remove_node(3)).result.unwrap();
    let without_me = c.state.roster();
    assert!(supersedes(&without_me, view));
    assert!(check_roster(&without_me, cluster, me.id, &me.signing_key, &pin2).is_err());
}

#[test]
fn founding_members_need_distinct_tls_keys() {
    let mut twin = node_record(2);
    twin.transport_key = node_record(1).transport_key;
    let mut c = Cluster::new();
    let body = EventBody::ClusterInitialized {
        cluster_id: hsm_proto::ClusterId([1; 16]),
        first_node: node_record(1),
        other_nodes: vec![twin.clone()],
        admin_password_hash: HASH.into(),
        domain_check: [0; 32],
    };
    let a = c.by_node(1, body);
    assert!(
        matches!(a.result, Err(Rejection::Membership(_))),
        "{:?}",
        a.result
    );
    let mut c = Cluster::activated();
    c.refused(
        "admin",
        EventBody::NodeAdded { node: twin },
        Rejection::Membership("TLS key already used by a member".into()),
    );
}

#[test]
fn a_key_wrapped_out_counts_as_known_outside_from_then_on() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu), ("carl", Role::Cu)]);
    let kek = usages(&[KeyFlag::Wrap, KeyFlag::Unwrap]);
    c.by(
        "bob",
        created(1, kek.clone(), KeyProvenance::generated(&kek)),
    )
    .result
    .unwrap();
    assert!(c
        .state
        .key(KeyId(1))
        .unwrap()
        .provenance
        .never_known_outside());
    // Only the owner records it.
    let a = c.by("carl", EventBody::KeyWrappedOut { key: KeyId(1) });
    assert_eq!(a.result, Err(Rejection::KeyNotFound(KeyId(1))));
    c.by("bob", EventBody::KeyWrappedOut { key: KeyId(1) })
        .result
        .unwrap();
    let p = c.state.key(KeyId(1)).unwrap().provenance;
    assert!(
        !p.local && !p.always_sensitive && !p.never_known_outside(),
        "{p:?}"
    );
}

/// A copy of a password change whose check of the current password fails
/// after the change itself applied (a client's retry made it through
/// another node) answers the change's outcome: the state tells that copy
/// its request was applied, and nothing about another request or another
/// user's request under that id.
#[test]
fn a_request_applied_meanwhile_gives_its_outcome_to_its_other_copies() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu), ("carol", Role::Cu)]);
    let check = c.reserve_login(1, "bob");
    let request = c.next_request_id();
    let change = c.event_with_id(request, as_user("bob"), own_pw("bob", HASH2, check));
    let signed = c.sign(change);
    assert_eq!(c.apply(&signed).result, Ok(()));

    // Another copy carries another new password and no reservation of its
    // own yet: it is the same request all the same.
    let copy = own_pw("bob", "", RequestId([0; 16]));
    assert_eq!(
        c.state.outcome_of(request, &as_user("bob"), &copy),
        Some(Ok(()))
    );
    assert_eq!(c.state.outcome_of(request, &as_user("carol"), &copy), None);
    assert_eq!(
        c.state
            .outcome_of(request, &as_user("bob"), &aes_key(9, "other", false)),
        None
    );
    let unknown = c.next_request_id();
    assert_eq!(c.state.outcome_of(unknown, &as_user("bob"), &copy), None);

    // A refused request's copies are told its refusal.
    let refused = c.next_request_id();
    let late = c.event_with_id(refused, as_user("carol"), own_pw("carol", HASH2, check));
    let signed = c.sign(late);
    let result = c.apply(&signed).result;
    assert!(result.is_err(), "{result:?}");
    assert_eq!(
        c.state.outcome_of(
            refused,
            &as_user("carol"),
            &own_pw("carol", "", RequestId([0; 16]))
        ),
        Some(result)
    );
}

// ------------------------------------------------------------- certificates

fn set_certificate(id: u64, certificate: Vec<u8>) -> EventBody {
    EventBody::KeyAttributeSet {
        key: KeyId(id),
        attribute: KeyAttribute::Certificate(certificate),
    }
}

#[test]
fn the_owner_of_a_pair_sets_its_certificate_and_no_one_else_can() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu), ("carol", Role::Cu), ("dave", Role::Cu)]);
    c.by("bob", ed_key(2, "pair")).result.unwrap();
    c.create_key("bob", 1, "secret");
    c.share("bob", 2, "carol");
    let a = c.by("bob", set_certificate(2, vec![0x30; 100]));
    assert_eq!(a.result, Ok(()));
    assert!(
        a.changed.contains(&EntityKey::Key(KeyId(2))),
        "{:?}",
        a.changed
    );
    assert_eq!(c.state.key(KeyId(2)).unwrap().certificate, vec![0x30; 100]);
    // The same again changes nothing but the chain.
    let before = c.state.clone();
    c.by("bob", set_certificate(2, vec![0x30; 100]))
        .result
        .unwrap();
    assert_only_chain_changed(&before, &c.state);
    // A user it is shared with may use it, not change its certificate; one
    // it is not shared with does not see it.
    let a = c.by("carol", set_certificate(2, vec![1]));
    assert!(
        matches!(a.result, Err(Rejection::NotOwner { .. })),
        "{:?}",
        a.result
    );
    c.refused(
        "dave",
        set_certificate(2, vec![1]),
        Rejection::KeyNotFound(KeyId(2)),
    );
    // A secret key has none; none is longer than the limit.
    let a = c.by("bob", set_certificate(1, vec![0x30; 10]));
    assert!(
        matches!(a.result, Err(Rejection::InvalidKey(_))),
        "{:?}",
        a.result
    );
    let a = c.by(
        "bob",
        set_certificate(2, vec![0x30; hsm_proto::MAX_CERTIFICATE_LEN + 1]),
    );
    assert!(
        matches!(a.result, Err(Rejection::InvalidKey(_))),
        "{:?}",
        a.result
    );
    assert_eq!(c.state.key(KeyId(2)).unwrap().certificate, vec![0x30; 100]);
    assert_eq!(c.state.key(KeyId(1)).unwrap().certificate, Vec::<u8>::new());
    // Empty removes it.
    c.by("bob", set_certificate(2, Vec::new())).result.unwrap();
    assert!(c.state.key(KeyId(2)).unwrap().certificate.is_empty());
    // A trusted key's certificate is frozen as its other attributes are.
    c.by("admin", set_flag(2, KeyFlag::Trusted, true))
        .result
        .unwrap();
    let a = c.by("bob", set_certificate(2, vec![0x30; 5]));
    assert!(
        matches!(
            a.result,
            Err(Rejection::KeyPolicy(KeyPolicyError::TrustedKeyFrozen(_)))
        ),
        "{:?}",
        a.result
    );
}

/// A public key imported alone: `KeyOrigin::PublicImported`.
fn public_only_key(id: u64, spec: KeySpec, attributes: KeyAttributes) -> EventBody {
    EventBody::KeyCreated {
        key: KeyId(id),
        spec,
        attributes,
        provenance: KeyProvenance::known_outside(KeyOrigin::PublicImported),
        domain_generation: 0,
        wrapped_material: vec![0xCD; 32],
        public_key: vec![0x30; 44],
        unique_label: false,
    }
}

#[test]
fn a_public_key_alone_never_signs_decrypts_unwraps_derives_or_is_wrapped() {
    use hsm_state::policy::{self, KeyUse};
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    let verify_only = KeyAttributes {
        label: "peer".into(),
        verify: true,
        encrypt: true,
        wrap: true,
        ..KeyAttributes::default()
    };
    // Created with a private usage: refused, whichever it is.
    for flag in policy::PRIVATE_USAGES {
        let mut a = verify_only.clone();
        a.encrypt = false;
        a.wrap = false;
        a.set_flag(flag, true);
        c.refused(
            "bob",
            public_only_key(3, KeySpec::Rsa { bits: 2048 }, a),
            Rejection::KeyPolicy(KeyPolicyError::PublicKeyOnly(flag)),
        );
    }
    // Only an RSA public key encrypts or wraps (RSA-OAEP to its holder).
    for flag in [KeyFlag::Encrypt, KeyFlag::Wrap] {
        let mut a = KeyAttributes {
            verify: true,
            ..KeyAttributes::default()
        };
        a.set_flag(flag, true);
        c.refused(
            "bob",
            public_only_key(3, KeySpec::EcP256, a),
            Rejection::KeyPolicy(KeyPolicyError::PublicKeyOnly(flag)),
        );
    }
    // A secret key cannot be a public key alone.
    c.refused(
        "bob",
        public_only_key(3, KeySpec::Aes { bits: 256 }, verify_only.clone()),
        Rejection::KeyPolicy(KeyPolicyError::InconsistentProvenance),
    );
    // Verify, encrypt and wrap: created.
    c.by(
        "bob",
        public_only_key(3, KeySpec::Rsa { bits: 2048 }, verify_only.clone()),
    )
    .result
    .unwrap();
    // No later change gives it a private usage.
    for flag in policy::PRIVATE_USAGES {
        c.refused(
            "bob",
            set_flag(3, flag, true),
            Rejection::KeyPolicy(KeyPolicyError::PublicKeyOnly(flag)),
        );
    }
    let key = c.state.key(KeyId(3)).unwrap().clone();
    for use_ in [KeyUse::Verify, KeyUse::Encrypt, KeyUse::Wrap] {
        assert_eq!(policy::check_use(&key, use_), Ok(()), "{use_:?}");
    }
    // Even with the flag forced on (a record from elsewhere), the uses
    // that need the private half are refused.
    let mut forced = key.clone();
    for flag in policy::PRIVATE_USAGES {
        forced.attributes.set_flag(flag, true);
    }
    for (use_, flag) in [
        (KeyUse::Sign, KeyFlag::Sign),
        (KeyUse::Decrypt, KeyFlag::Decrypt),
        (KeyUse::Unwrap, KeyFlag::Unwrap),
        (KeyUse::Derive, KeyFlag::Derive),
    ] {
        assert_eq!(
            policy::check_use(&forced, use_),
            Err(KeyPolicyError::PublicKeyOnly(flag))
        );
    }
    // It wraps another key to its outside holder, and is never wrapped:
    // there is no material behind it.
    c.create_key("bob", 4, "secret");
    let secret = c.state.key(KeyId(4)).unwrap().clone();
    let mut extractable_secret = secret.clone();
    extractable_secret.attributes.sensitive = false;
    assert_eq!(policy::check_wrap(&key, &extractable_secret), Ok(()));
    let mut wrapper = secret.clone();
    wrapper.attributes.wrap = true;
    assert_eq!(
        policy::check_wrap(&wrapper, &key),
        Err(KeyPolicyError::PublicKeyOnly(KeyFlag::Extractable))
    );
}
