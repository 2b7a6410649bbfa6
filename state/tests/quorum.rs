//! Quorum approvals, approval keys and second factors, attacked: an
//! officer operation under quorum 2 needs two approvals by distinct
//! officers' registered keys over a token for exactly it, asked for by the
//! officer that acts, live, and used once; nothing else counts.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use ed25519_dalek::{Signer, SigningKey};
use hsm_proto::quorum::{Intent, Service, Token};
use hsm_proto::{
    ApprovalDefect, Attempt, ClusterId, EventBody, QuorumDefect, Rejection, RequestId, Role,
    Signature, TokenId,
};
use hsm_state::{Entity, State};

const CLUSTER: ClusterId = ClusterId([7; 16]);

fn approval_key(name: &str) -> SigningKey {
    let mut seed = [0u8; 32];
    seed[..name.len()].copy_from_slice(name.as_bytes());
    SigningKey::from_bytes(&seed)
}

fn raise_to_3(c: &mut Cluster) {
    for version in [2, 3] {
        c.by_node(FIRST.0, EventBody::ProtocolRaised { version })
            .result
            .unwrap();
    }
}

/// `name` registers its own approval key, its current password checked
/// (a login reservation taken by the change).
fn register(c: &mut Cluster, name: &str) -> hsm_state::Applied {
    let reservation = c.reserve_login(FIRST.0, name);
    c.by(
        name,
        EventBody::ApprovalKeySet {
            username: user(name),
            key: Some(approval_key(name).verifying_key().to_bytes()),
            reservation: Some(reservation),
        },
    )
}

/// Officers admin, carol and dave, each with an approval key; crypto user
/// cu; protocol 3.
fn officers() -> Cluster {
    let mut c = Cluster::with_users(&[("carol", Role::Co), ("dave", Role::Co), ("cu", Role::Cu)]);
    raise_to_3(&mut c);
    for name in ["admin", "carol", "dave"] {
        register(&mut c, name).result.unwrap();
    }
    c
}

fn set_value(c: &mut Cluster, service: Service, value: u8) -> hsm_state::Applied {
    c.by("admin", EventBody::QuorumValueSet { service, value })
}

fn issue(c: &mut Cluster, by: &str, intent: Intent) -> Token {
    let applied = c.by(by, EventBody::QuorumTokenIssued { intent });
    applied.result.unwrap();
    c.state
        .tokens()
        .max_by_key(|t| t.issued_ms)
        .unwrap()
        .clone()
}

fn sign(token: &Token, approver: &str) -> Signature {
    Signature(
        approval_key(approver)
            .sign(&token.statement(CLUSTER))
            .to_bytes(),
    )
}

fn approve(c: &mut Cluster, token: &Token, approver: &str) -> hsm_state::Applied {
    let signature = sign(token, approver);
    c.by(
        "admin",
        EventBody::QuorumApproved {
            token: token.id,
            approver: user(approver),
            signature,
        },
    )
}

fn create_bob(role: Role) -> EventBody {
    EventBody::UserCreated {
        username: user("bob"),
        role,
        password_hash: HASH.into(),
    }
}

fn bob_intent(role: Role) -> Intent {
    Intent::CreateUser {
        username: user("bob"),
        role,
    }
}

fn quorum_needed(approved: u8) -> impl Fn(&Rejection) -> bool {
    move |r| matches!(r, Rejection::QuorumNeeded { needed: 2, approved: a, .. } if *a == approved)
}

#[test]
fn an_officer_operation_under_quorum_2_needs_two_approvals_and_uses_its_token_once() {
    let mut c = officers();
    set_value(&mut c, Service::User, 2).result.unwrap();

    // Alone: refused, and nothing changed.
    let alone = c.by("admin", create_bob(Role::Co)).result.unwrap_err();
    assert!(quorum_needed(0)(&alone), "{alone}");
    assert!(c.state.user(&user("bob")).is_none());

    let token = issue(&mut c, "admin", bob_intent(Role::Co));
    approve(&mut c, &token, "carol").result.unwrap();
    let one = c.by("admin", create_bob(Role::Co)).result.unwrap_err();
    assert!(quorum_needed(1)(&one), "{one}");

    approve(&mut c, &token, "dave").result.unwrap();
    c.by("admin", create_bob(Role::Co)).result.unwrap();
    assert_eq!(c.state.user(&user("bob")).unwrap().role, Role::Co);
    assert!(c.state.token(token.id).is_none(), "the token is used up");

    // A token is good for one operation: setting carol's password twice
    // needs two tokens.
    let reset = EventBody::PasswordChanged {
        username: user("carol"),
        password_hash: HASH2.into(),
    };
    let token = issue(
        &mut c,
        "admin",
        Intent::ChangePassword {
            username: user("carol"),
        },
    );
    approve(&mut c, &token, "carol").result.unwrap();
    approve(&mut c, &token, "dave").result.unwrap();
    c.by("admin", reset.clone()).result.unwrap();
    let reused = c.by("admin", reset).result.unwrap_err();
    assert!(quorum_needed(0)(&reused), "{reused}");
}

#[test]
fn a_token_approves_only_its_own_operation_by_its_own_initiator() {
    let mut c = officers();
    set_value(&mut c, Service::User, 2).result.unwrap();
    let token = issue(&mut c, "admin", bob_intent(Role::Cu));
    approve(&mut c, &token, "carol").result.unwrap();
    approve(&mut c, &token, "dave").result.unwrap();

    // Approvers approved a crypto user, not an officer.
    let wider = c.by("admin", create_bob(Role::Co)).result.unwrap_err();
    assert!(quorum_needed(0)(&wider), "{wider}");
    // Another officer cannot use admin's approved token.
    let stolen = c.by("carol", create_bob(Role::Cu)).result.unwrap_err();
    assert!(quorum_needed(0)(&stolen), "{stolen}");
    // Nor delete it.
    let deleted = c
        .by("carol", EventBody::QuorumTokenDeleted { token: token.id })
        .result
        .unwrap_err();
    assert_eq!(
        deleted,
        Rejection::Denied {
            role: Role::Co,
            attempt: Attempt::UseOtherToken
        }
    );
    assert!(c.state.token(token.id).is_some());
    // Its initiator uses it for what it says.
    c.by("admin", create_bob(Role::Cu)).result.unwrap();
}

#[test]
fn forged_foreign_repeated_and_non_officer_approvals_count_for_nothing() {
    let mut c = officers();
    c.create_user("erin", Role::Co);
    set_value(&mut c, Service::User, 2).result.unwrap();
    let token = issue(&mut c, "admin", bob_intent(Role::Cu));
    let refused = |r: hsm_state::Applied, who: &str, d: ApprovalDefect| {
        assert_eq!(
            r.result.unwrap_err(),
            Rejection::ApprovalRefused(user(who), d)
        );
    };

    // carol's name, dave's signature.
    let forged = c.by(
        "admin",
        EventBody::QuorumApproved {
            token: token.id,
            approver: user("carol"),
            signature: sign(&token, "dave"),
        },
    );
    refused(forged, "carol", ApprovalDefect::BadSignature);

    // carol's key over the statement of another cluster.
    let mut elsewhere = token.statement(ClusterId([8; 16]));
    let foreign = Signature(approval_key("carol").sign(&elsewhere).to_bytes());
    let r = c.by(
        "admin",
        EventBody::QuorumApproved {
            token: token.id,
            approver: user("carol"),
            signature: foreign,
        },
    );
    refused(r, "carol", ApprovalDefect::BadSignature);
    // A flipped bit of the right signature.
    let mut flipped = sign(&token, "carol");
    flipped.0[10] ^= 1;
    let r = c.by(
        "admin",
        EventBody::QuorumApproved {
            token: token.id,
            approver: user("carol"),
            signature: flipped,
        },
    );
    refused(r, "carol", ApprovalDefect::BadSignature);
    elsewhere.clear();

    // The same officer twice is one approval.
    approve(&mut c, &token, "carol").result.unwrap();
    refused(
        approve(&mut c, &token, "carol"),
        "carol",
        ApprovalDefect::AlreadyApproved,
    );
    // A crypto user approves nothing, even with a key of its own.
    refused(
        approve(&mut c, &token, "cu"),
        "cu",
        ApprovalDefect::NotOfficer,
    );
    // An officer without an approval key neither.
    refused(
        approve(&mut c, &token, "erin"),
        "erin",
        ApprovalDefect::NoApprovalKey,
    );

    let r = c.by("admin", create_bob(Role::Cu)).result.unwrap_err();
    assert!(quorum_needed(1)(&r), "{r}");
}

#[test]
fn an_expired_token_is_refused_and_a_replaced_key_voids_its_approvals() {
    let mut c = officers();
    set_value(&mut c, Service::User, 2).result.unwrap();
    let token = issue(&mut c, "admin", bob_intent(Role::Cu));
    approve(&mut c, &token, "carol").result.unwrap();
    approve(&mut c, &token, "dave").result.unwrap();
    c.advance(hsm_proto::quorum::TOKEN_LIFETIME_MS + 1);
    assert_eq!(
        c.by("admin", create_bob(Role::Cu)).result.unwrap_err(),
        Rejection::TokenExpired(token.id)
    );
    assert_eq!(
        approve(&mut c, &token, "admin").result.unwrap_err(),
        Rejection::TokenExpired(token.id)
    );

    // A fresh token, approved by carol and dave; then dave's key changes
    // (under quorum, approved by admin and carol): dave's approval made with
    // the old key no longer counts.
    let token = issue(&mut c, "admin", bob_intent(Role::Cu));
    approve(&mut c, &token, "carol").result.unwrap();
    approve(&mut c, &token, "dave").result.unwrap();
    let new_key = approval_key("dave2").verifying_key().to_bytes();
    let change = Intent::SetApprovalKey {
        username: user("dave"),
        key: Some(new_key),
    };
    let t2 = issue(&mut c, "carol", change);
    approve(&mut c, &t2, "admin").result.unwrap();
    approve(&mut c, &t2, "carol").result.unwrap();
    c.by(
        "carol",
        EventBody::ApprovalKeySet {
            username: user("dave"),
            key: Some(new_key),
            reservation: None,
        },
    )
    .result
    .unwrap();
    let r = c.by("admin", create_bob(Role::Cu)).result.unwrap_err();
    assert!(quorum_needed(1)(&r), "{r}");
}

#[test]
fn the_cluster_cannot_lock_itself_out_of_a_quorum() {
    let mut c = Cluster::with_users(&[("carol", Role::Co)]);
    raise_to_3(&mut c);
    register(&mut c, "admin").result.unwrap();
    // One approver: quorum 2 would need two.
    assert_eq!(
        set_value(&mut c, Service::User, 2).result.unwrap_err(),
        Rejection::QuorumRefused(QuorumDefect::TooFewApprovers {
            value: 2,
            approvers: 1
        })
    );
    for bad in [0, hsm_proto::quorum::MAX_QUORUM + 1] {
        assert!(matches!(
            set_value(&mut c, Service::User, bad).result.unwrap_err(),
            Rejection::QuorumRefused(QuorumDefect::OutOfRange { .. })
        ));
    }
    register(&mut c, "carol").result.unwrap();
    // One person, two officer accounts, one key: counted once.
    c.create_user("mallory", Role::Co);
    let carols = approval_key("carol").verifying_key().to_bytes();
    let reservation = c.reserve_login(FIRST.0, "mallory");
    assert_eq!(
        c.by(
            "mallory",
            EventBody::ApprovalKeySet {
                username: user("mallory"),
                key: Some(carols),
                reservation: Some(reservation),
            }
        )
        .result
        .unwrap_err(),
        Rejection::ApprovalRefused(user("mallory"), ApprovalDefect::KeyInUse)
    );
    set_value(&mut c, Service::Cluster, 2).result.unwrap();
    // Now deleting carol, or clearing her key, would leave one approver:
    // refused even with the two approvals such a change needs.
    for (body, intent) in [
        (
            EventBody::UserDeleted {
                username: user("carol"),
            },
            Intent::DeleteUser {
                username: user("carol"),
            },
        ),
        (
            EventBody::ApprovalKeySet {
                username: user("carol"),
                key: None,
                reservation: None,
            },
            Intent::SetApprovalKey {
                username: user("carol"),
                key: None,
            },
        ),
    ] {
        let token = issue(&mut c, "admin", intent);
        approve(&mut c, &token, "admin").result.unwrap();
        approve(&mut c, &token, "carol").result.unwrap();
        assert!(matches!(
            c.by("admin", body).result.unwrap_err(),
            Rejection::QuorumRefused(QuorumDefect::TooFewApprovers { .. })
        ));
        assert!(
            c.state.token(token.id).is_some(),
            "a refused change uses no token"
        );
    }
}

#[test]
fn quorum_values_themselves_and_cluster_operations_are_guarded() {
    let mut c = officers();
    set_value(&mut c, Service::Quorum, 2).result.unwrap();
    // Lowering it back alone: refused.
    let r = set_value(&mut c, Service::Quorum, 1).result.unwrap_err();
    assert!(quorum_needed(0)(&r), "{r}");
    let intent = Intent::SetQuorum {
        service: Service::Cluster,
        value: 3,
    };
    let t = issue(&mut c, "admin", intent);
    approve(&mut c, &t, "dave").result.unwrap();
    approve(&mut c, &t, "carol").result.unwrap();
    set_value(&mut c, Service::Cluster, 3).result.unwrap();
    assert_eq!(c.state.quorum_value(Service::Cluster), 3);

    // Marking a key trusted now needs three.
    c.create_key("cu", 1, "k");
    let trust = set_flag(1, hsm_proto::KeyFlag::Trusted, true);
    let r = c.by("admin", trust.clone()).result.unwrap_err();
    assert!(
        matches!(r, Rejection::QuorumNeeded { needed: 3, .. }),
        "{r}"
    );
    let t = issue(
        &mut c,
        "admin",
        Intent::SetTrusted {
            key: hsm_proto::KeyId(1),
            trusted: true,
        },
    );
    for a in ["admin", "carol", "dave"] {
        approve(&mut c, &t, a).result.unwrap();
    }
    c.by("admin", trust).result.unwrap();
}

#[test]
fn quorum_events_need_protocol_3_and_appliance_users_end_with_it() {
    let mut c = Cluster::with_users(&[("carol", Role::Co)]);
    c.by_node(FIRST.0, EventBody::ProtocolRaised { version: 2 })
        .result
        .unwrap();
    assert_eq!(
        register(&mut c, "admin").result.unwrap_err(),
        Rejection::NeedsProtocol {
            needs: 3,
            cluster: 2
        }
    );
    let before = c.state.digest();
    assert!(hsm_state::protocol::check_proposal(
        &c.state,
        FIRST,
        &as_user("admin"),
        &EventBody::QuorumValueSet {
            service: Service::User,
            value: 1
        }
    )
    .is_err());
    assert_eq!(c.state.digest(), before);
    // Under protocol 2 an appliance user is still created as it was.
    c.create_user("au1", Role::Au);
    c.by_node(FIRST.0, EventBody::ProtocolRaised { version: 3 })
        .result
        .unwrap();
    let r = c
        .by(
            "admin",
            EventBody::UserCreated {
                username: user("au2"),
                role: Role::Au,
                password_hash: HASH.into(),
            },
        )
        .result
        .unwrap_err();
    assert_eq!(
        r,
        Rejection::Denied {
            role: Role::Co,
            attempt: Attempt::CreateApplianceUser
        }
    );
}

#[test]
fn a_second_factor_is_set_with_the_current_password_and_checked_at_login() {
    let mut c = officers();
    let key = approval_key("phone");
    let public = key.verifying_key().to_bytes();
    // Without the reserved check of the current password: refused.
    let r = c.by(
        "carol",
        EventBody::MfaKeySet {
            username: user("carol"),
            key: Some(public),
            reservation: None,
        },
    );
    assert_eq!(r.result.unwrap_err(), Rejection::CurrentPasswordNeeded);
    // Another officer may not set one for carol.
    let r = c.by(
        "admin",
        EventBody::MfaKeySet {
            username: user("carol"),
            key: Some(public),
            reservation: None,
        },
    );
    assert!(matches!(
        r.result.unwrap_err(),
        Rejection::Denied {
            attempt: Attempt::SetOtherMfa,
            ..
        }
    ));
    let reservation = c.reserve_login(FIRST.0, "carol");
    c.by(
        "carol",
        EventBody::MfaKeySet {
            username: user("carol"),
            key: Some(public),
            reservation: Some(reservation),
        },
    )
    .result
    .unwrap();
    assert!(c.state.needs_second_factor(&user("carol")));

    let attempt = c.reserve_login(FIRST.0, "carol");
    let at_ms = c
        .state
        .user(&user("carol"))
        .unwrap()
        .reservations
        .last()
        .unwrap()
        .at_ms;
    let statement = hsm_proto::quorum::login_statement(CLUSTER, &user("carol"), attempt, at_ms);
    let right = Signature(key.sign(&statement).to_bytes());
    assert!(c
        .state
        .second_factor_passes(&user("carol"), attempt, Some(&right)));
    assert!(!c.state.second_factor_passes(&user("carol"), attempt, None));
    // A signature of another attempt, or by another key, fails.
    assert!(!c
        .state
        .second_factor_passes(&user("carol"), RequestId([6; 16]), Some(&right)));
    let _ = at_ms;
    let other = Signature(approval_key("carol").sign(&statement).to_bytes());
    assert!(!c
        .state
        .second_factor_passes(&user("carol"), attempt, Some(&other)));
    // Users without one pass on the password alone.
    assert!(c.state.second_factor_passes(&user("dave"), attempt, None));

    // An officer clears a lost one (the user service at 1: alone).
    c.by(
        "admin",
        EventBody::MfaKeySet {
            username: user("carol"),
            key: None,
            reservation: None,
        },
    )
    .result
    .unwrap();
    assert!(!c.state.needs_second_factor(&user("carol")));
}

#[test]
fn quorum_records_survive_a_reload_and_a_deleted_officer_leaves_none() {
    let mut c = officers();
    c.create_user("erin", Role::Co);
    register(&mut c, "erin").result.unwrap();
    set_value(&mut c, Service::User, 2).result.unwrap();
    let token = issue(&mut c, "carol", Intent::RotateDomainKey);
    approve(&mut c, &token, "dave").result.unwrap();
    let reloaded = State::from_entities(c.state.entities()).unwrap();
    assert_eq!(reloaded.digest(), c.state.digest());
    assert_eq!(reloaded, c.state);
    assert_eq!(c.state.entity_count(), c.state.entities().count());
    assert!(c.state.entities().any(|e| matches!(e, Entity::Token(_))));

    // Deleting carol (under quorum) forgets her key and her tokens.
    let t = issue(
        &mut c,
        "admin",
        Intent::DeleteUser {
            username: user("carol"),
        },
    );
    approve(&mut c, &t, "dave").result.unwrap();
    approve(&mut c, &t, "erin").result.unwrap();
    c.by(
        "admin",
        EventBody::UserDeleted {
            username: user("carol"),
        },
    )
    .result
    .unwrap();
    assert!(c.state.credentials(&user("carol")).is_none());
    assert!(c.state.token(token.id).is_none());
    let tokens: Vec<TokenId> = c.state.tokens().map(|t| t.id).collect();
    assert!(tokens.is_empty(), "{tokens:?}");
}

#[test]
fn a_quorum_value_is_lowered_only_with_the_approvals_it_asks_for() {
    // Review H1 (a): one officer set the user service back to 1 alone.
    let mut c = officers();
    set_value(&mut c, Service::User, 2).result.unwrap();
    let r = set_value(&mut c, Service::User, 1).result.unwrap_err();
    assert!(quorum_needed(0)(&r), "{r}");
    assert_eq!(c.state.quorum_value(Service::User), 2);
}

#[test]
fn approvers_are_made_and_changed_only_under_the_largest_quorum_value() {
    // Review H1 (b): with only the cluster service at 2, one officer gave
    // itself a second approval by setting carol's approval key to one it
    // holds, or by creating an officer of its own.
    let mut c = officers();
    set_value(&mut c, Service::Cluster, 2).result.unwrap();
    let mine = approval_key("admin-spare").verifying_key().to_bytes();
    let r = c
        .by(
            "admin",
            EventBody::ApprovalKeySet {
                username: user("carol"),
                key: Some(mine),
                reservation: None,
            },
        )
        .result
        .unwrap_err();
    assert!(quorum_needed(0)(&r), "{r}");
    let r = c.by("admin", create_bob(Role::Co)).result.unwrap_err();
    assert!(quorum_needed(0)(&r), "{r}");
    for body in [
        EventBody::PasswordChanged {
            username: user("carol"),
            password_hash: HASH2.into(),
        },
        EventBody::MfaKeySet {
            username: user("carol"),
            key: None,
            reservation: None,
        },
        EventBody::UserDeleted {
            username: user("dave"),
        },
    ] {
        let r = c.by("admin", body).result.unwrap_err();
        assert!(quorum_needed(0)(&r), "{r}");
    }
    // A crypto user is the user service's business, at 1: alone.
    c.by("admin", create_bob(Role::Cu)).result.unwrap();
}

#[test]
fn an_officer_registers_its_first_approval_key_only_with_its_password() {
    // Review M2: a stolen session registered a key of the thief's choosing.
    let mut c = officers();
    c.create_user("erin", Role::Co);
    let r = c
        .by(
            "erin",
            EventBody::ApprovalKeySet {
                username: user("erin"),
                key: Some(approval_key("thief").verifying_key().to_bytes()),
                reservation: None,
            },
        )
        .result
        .unwrap_err();
    assert_eq!(r, Rejection::CurrentPasswordNeeded);
    register(&mut c, "erin").result.unwrap();
}

#[test]
fn a_login_signature_is_bound_to_the_reservation_the_cluster_made() {
    // Review M1: the statement named only the request id, which the client
    // chooses: once forgotten, the same id reserved again took the old
    // signature. Now it names the reservation's leader time too.
    let mut c = officers();
    let key = approval_key("phone");
    let reservation = c.reserve_login(FIRST.0, "carol");
    c.by(
        "carol",
        EventBody::MfaKeySet {
            username: user("carol"),
            key: Some(key.verifying_key().to_bytes()),
            reservation: Some(reservation),
        },
    )
    .result
    .unwrap();
    let attempt = c.reserve_login(FIRST.0, "carol");
    let at_ms = c
        .state
        .user(&user("carol"))
        .unwrap()
        .reservations
        .iter()
        .find(|r| r.id == attempt)
        .unwrap()
        .at_ms;
    let statement = hsm_proto::quorum::login_statement(CLUSTER, &user("carol"), attempt, at_ms);
    let signature = Signature(key.sign(&statement).to_bytes());
    assert!(c
        .state
        .second_factor_passes(&user("carol"), attempt, Some(&signature)));
    // The same id reserved again later (its first outcome forgotten): the
    // old signature no longer passes.
    c.by_node(FIRST.0, login_rejected("carol", attempt))
        .result
        .unwrap();
    let event = c.event_with_id(
        attempt,
        hsm_proto::Actor::Node(FIRST),
        login_attempt("carol"),
    );
    let _ = c.apply(&c.sign(event));
    assert!(!c
        .state
        .second_factor_passes(&user("carol"), attempt, Some(&signature)));
}

#[test]
fn setting_or_clearing_a_second_factor_ends_the_users_sessions() {
    let mut c = officers();
    let before = c.state.user(&user("carol")).unwrap().session_epoch;
    let reservation = c.reserve_login(FIRST.0, "carol");
    c.by(
        "carol",
        EventBody::MfaKeySet {
            username: user("carol"),
            key: Some(approval_key("phone").verifying_key().to_bytes()),
            reservation: Some(reservation),
        },
    )
    .result
    .unwrap();
    let after = c.state.user(&user("carol")).unwrap().session_epoch;
    assert!(after > before);
}

#[test]
fn locked_officers_approve_nothing_and_unchanged_records_are_not_rewritten() {
    let mut c = officers();
    set_value(&mut c, Service::User, 2).result.unwrap();
    let token = issue(&mut c, "admin", bob_intent(Role::Cu));
    approve(&mut c, &token, "carol").result.unwrap();
    approve(&mut c, &token, "dave").result.unwrap();
    c.fail_logins("dave", 5);
    let _ = c.try_reserve_login(FIRST.0, "dave");
    assert!(c.state.user(&user("dave")).unwrap().is_locked());
    let r = c.by("admin", create_bob(Role::Cu)).result.unwrap_err();
    assert!(quorum_needed(1)(&r), "{r}");

    // Setting a value it already has changes no record.
    let mut c = officers();
    let applied = set_value(&mut c, Service::Cluster, 1);
    applied.result.unwrap();
    assert!(!applied.changed.contains(&hsm_state::EntityKey::Quorum));
    // Nor does clearing a second factor nobody set.
    let applied = c.by(
        "admin",
        EventBody::MfaKeySet {
            username: user("cu"),
            key: None,
            reservation: None,
        },
    );
    applied.result.unwrap();
    assert!(!applied
        .changed
        .contains(&hsm_state::EntityKey::Credentials(user("cu"))));
    // An empty quorum record is not one apply could have made.
    let mut entities: Vec<Entity> = c.state.entities().collect();
    entities.push(Entity::Quorum(Default::default()));
    assert!(State::from_entities(entities).is_err());
}
