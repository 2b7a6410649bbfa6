//! Domain key rotation rules: a removed member makes a rotation due; a new
//! generation must be sealed to exactly the members of the moment; key
//! material moves to it in batches; an old generation is retired only once
//! no key uses it; and what comes next follows from the state alone, so a
//! new leader continues where a killed one stopped.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use common::*;
use hsm_proto::{
    Actor, DomainKeyError, EventBody, KeyId, NodeId, Rejection, RewrappedMaterial, Role,
};
use hsm_state::domain::{DomainWork, MAX_LIVE_GENERATIONS, MAX_REWRAP_KEYS};

fn none() -> BTreeSet<KeyId> {
    BTreeSet::new()
}

fn refused(e: DomainKeyError) -> Result<(), Rejection> {
    Err(Rejection::DomainKey(e))
}

/// Members 1, 2 and 3; bob owns keys 10, 11 and 12 (generation 0).
fn three_members_with_keys() -> Cluster {
    let mut c = Cluster::with_users(&[("bob", Role::Cu)]);
    for id in [2, 3] {
        c.add_member(id);
    }
    for id in [10, 11, 12] {
        c.create_key("bob", id, &format!("k{id}"));
    }
    c
}

fn rewrap(generation: u32, keys: &[u64]) -> EventBody {
    EventBody::KeyMaterialRewrapped {
        generation,
        keys: keys
            .iter()
            .map(|k| RewrappedMaterial {
                key: KeyId(*k),
                wrapped_material: vec![generation as u8 + 1; 48],
            })
            .collect(),
    }
}

fn generations(c: &Cluster) -> Vec<u32> {
    let d = &c.state.cluster().unwrap().domain;
    d.generations.keys().copied().collect()
}

#[test]
fn removing_a_member_makes_a_rotation_due_sealed_to_exactly_the_remaining_members() {
    let mut c = three_members_with_keys();
    assert_eq!(c.state.domain_work(8, &none()), None);
    c.by("admin", EventBody::NodeRemoved { node: NodeId(3) })
        .result
        .unwrap();
    assert!(c.state.cluster().unwrap().domain.rotation_due);
    assert_eq!(c.state.domain_work(8, &none()), Some(DomainWork::Rotate));

    // Sealed to the removed member too, or to too few: refused.
    for to in [&[1, 2, 3][..], &[1][..], &[1, 2, 4][..]] {
        let before = c.state.clone();
        assert_eq!(
            c.by_node(1, rotation(1, to)).result,
            refused(DomainKeyError::MembersChanged),
            "sealed to {to:?}"
        );
        assert_only_chain_changed(&before, &c.state);
    }
    // Another generation than the next: refused.
    assert_eq!(
        c.by_node(1, rotation(2, &[1, 2])).result,
        refused(DomainKeyError::WrongGeneration {
            expected: 1,
            got: 2
        })
    );
    // A malformed sealed key: refused.
    let mut bad = rotation(1, &[1, 2]);
    if let EventBody::DomainKeyRotated { sealed, .. } = &mut bad {
        sealed.get_mut(&NodeId(2)).unwrap().ciphertext.pop();
    }
    assert_eq!(
        c.by_node(1, bad).result,
        refused(DomainKeyError::MalformedSealedKey(NodeId(2)))
    );

    c.by_node(1, rotation(1, &[1, 2])).result.unwrap();
    let d = &c.state.cluster().unwrap().domain;
    assert_eq!(d.current, 1);
    assert!(!d.rotation_due);
    assert_eq!(d.generations[&1].check, [1; 32]);
    assert_eq!(
        d.generations[&1].sealed.keys().collect::<Vec<_>>(),
        vec![&NodeId(1), &NodeId(2)]
    );
    assert_eq!(generations(&c), vec![0, 1]);
}

#[test]
fn nodes_rotate_only_when_due_and_users_only_as_crypto_officers() {
    let mut c = three_members_with_keys();
    assert_eq!(
        c.by_node(1, rotation(1, &[1, 2, 3])).result,
        refused(DomainKeyError::NotDue)
    );
    assert!(matches!(
        c.by("bob", rotation(1, &[1, 2, 3])).result,
        Err(Rejection::RoleDenied { role: Role::Cu, .. })
    ));
    // A node that is no member cannot act.
    assert!(matches!(
        c.submit(Actor::Node(NodeId(9)), rotation(1, &[1, 2, 3]))
            .result,
        Err(Rejection::UnknownActor(_))
    ));
    c.by("admin", rotation(1, &[1, 2, 3])).result.unwrap();
    // One rotation at a time: the next waits for the re-wrap.
    assert_eq!(
        c.by("admin", rotation(2, &[1, 2, 3])).result,
        refused(DomainKeyError::RotationInProgress)
    );
}

#[test]
fn material_moves_to_the_new_generation_in_batches_then_the_old_one_is_retired() {
    let mut c = three_members_with_keys();
    c.by("admin", rotation(1, &[1, 2, 3])).result.unwrap();
    assert_eq!(
        c.state.domain_work(2, &none()),
        Some(DomainWork::Rewrap(vec![KeyId(10), KeyId(11)]))
    );
    assert_eq!(c.state.keys_to_rewrap(), 3);
    // Not under an old generation, not by a user, not too many at once.
    assert_eq!(
        c.by_node(1, rewrap(0, &[10])).result,
        refused(DomainKeyError::NotCurrent(1))
    );
    assert!(matches!(
        c.by("bob", rewrap(1, &[10])).result,
        Err(Rejection::UnknownActor(_))
    ));
    let many: Vec<u64> = (0..=MAX_REWRAP_KEYS as u64).map(|i| 10 + i).collect();
    assert_eq!(
        c.by_node(1, rewrap(1, &many)).result,
        refused(DomainKeyError::TooManyKeys {
            max: MAX_REWRAP_KEYS
        })
    );
    // Retiring generation 0 while keys use it: refused.
    assert_eq!(
        c.by_node(1, EventBody::DomainKeyRetired { generation: 0 })
            .result,
        refused(DomainKeyError::StillInUse {
            generation: 0,
            keys: 3
        })
    );

    c.by_node(1, rewrap(1, &[10, 11])).result.unwrap();
    let k10 = c.state.key(KeyId(10)).unwrap();
    assert_eq!(k10.domain_generation, 1);
    assert_eq!(k10.wrapped_material, vec![2; 48]);
    assert_eq!(c.state.keys_to_rewrap(), 1);
    // A key deleted meanwhile, and a batch a killed leader already
    // applied: skipped, nothing else changes.
    c.by("bob", EventBody::KeyDeleted { key: KeyId(12) })
        .result
        .unwrap();
    let again = EventBody::KeyMaterialRewrapped {
        generation: 1,
        keys: vec![
            RewrappedMaterial {
                key: KeyId(10),
                wrapped_material: vec![0xEE; 48],
            },
            RewrappedMaterial {
                key: KeyId(12),
                wrapped_material: vec![0xEE; 48],
            },
        ],
    };
    c.by_node(1, again).result.unwrap();
    assert_eq!(
        c.state.key(KeyId(10)).unwrap().wrapped_material,
        vec![2; 48]
    );
    assert!(c.state.key(KeyId(12)).is_none());

    assert_eq!(c.state.domain_work(8, &none()), Some(DomainWork::Retire(0)));
    c.by_node(1, EventBody::DomainKeyRetired { generation: 0 })
        .result
        .unwrap();
    assert_eq!(generations(&c), vec![1]);
    assert_eq!(c.state.domain_work(8, &none()), None);
    // The current generation is never retired; new material uses a
    // generation in use.
    assert!(matches!(
        c.by_node(1, EventBody::DomainKeyRetired { generation: 1 })
            .result,
        Err(Rejection::DomainKey(DomainKeyError::StillInUse { .. }))
    ));
    assert_eq!(
        c.by("bob", aes_key(20, "old", false)).result,
        refused(DomainKeyError::NotCurrent(1))
    );
    c.by("bob", aes_key_at(20, "new", false, 1)).result.unwrap();
    // The next rotation may start now.
    c.by("admin", rotation(2, &[1, 2, 3])).result.unwrap();
}

#[test]
fn material_wrapped_under_an_old_generation_is_refused_and_its_retry_decided_again() {
    let mut c = three_members_with_keys();
    c.by("admin", rotation(1, &[1, 2, 3])).result.unwrap();
    // A node wrapped it before it applied the rotation: refused, even
    // though generation 0 is still in use, and not remembered.
    let id = c.next_request_id();
    let stale = c.event_with_id(id, as_user("bob"), aes_key(13, "late", false));
    let stale = c.sign(stale);
    let before = c.state.clone();
    let a = c.apply(&stale);
    assert_eq!(a.result, refused(DomainKeyError::NotCurrent(1)));
    assert!(!a.replayed);
    assert_only_chain_changed(&before, &c.state);
    assert!(
        c.state.request(&id).is_none(),
        "a transient refusal is not remembered"
    );
    // The retry, wrapped under generation 1, is decided again.
    let retry = c.event_with_id(id, as_user("bob"), aes_key_at(13, "late", false, 1));
    let retry = c.sign(retry);
    let a = c.apply(&retry);
    assert_eq!(a.result, Ok(()));
    assert!(!a.replayed);
    assert_eq!(c.state.key(KeyId(13)).unwrap().domain_generation, 1);
}

#[test]
fn a_rotation_retried_under_its_request_id_is_the_same_request() {
    let mut c = three_members_with_keys();
    let id = c.next_request_id();
    let first = c.event_with_id(id, as_user("admin"), rotation(1, &[1, 2, 3]));
    let first = c.sign(first);
    c.apply(&first).result.unwrap();
    // The retry is built again by another node, which may already see the
    // first attempt applied: another key, other seals, the next generation.
    let mut retry = rotation(2, &[1, 2]);
    if let EventBody::DomainKeyRotated { check, .. } = &mut retry {
        *check = [0xAA; 32];
    }
    let retry = c.event_with_id(id, as_user("admin"), retry);
    let retry = c.sign(retry);
    let a = c.apply(&retry);
    assert!(a.replayed);
    assert_eq!(a.result, Ok(()));
    assert_eq!(
        c.state.cluster().unwrap().domain.generations[&1].check,
        [1; 32]
    );
}

#[test]
fn a_removal_during_a_rewrap_rotates_at_once_and_no_new_material_waits_for_it() {
    let mut c = three_members_with_keys();
    c.by("admin", rotation(1, &[1, 2, 3])).result.unwrap();
    c.by_node(1, rewrap(1, &[10])).result.unwrap();
    // Node 3 holds generation 1, the current one: removing it makes a
    // rotation due at once, ahead of the re-wrap.
    c.by("admin", EventBody::NodeRemoved { node: NodeId(3) })
        .result
        .unwrap();
    assert_eq!(c.state.domain_work(8, &none()), Some(DomainWork::Rotate));
    // Meanwhile no new key material is recorded, under any generation.
    for generation in [0, 1] {
        assert_eq!(
            c.by("bob", aes_key_at(30, "meanwhile", false, generation))
                .result,
            refused(DomainKeyError::RotationDue)
        );
    }
    c.by_node(1, rotation(2, &[1, 2])).result.unwrap();
    assert_eq!(generations(&c), vec![0, 1, 2]);
    // Keys of both older generations move to generation 2; both retire.
    assert_eq!(
        c.state.domain_work(8, &none()),
        Some(DomainWork::Rewrap(vec![KeyId(10), KeyId(11), KeyId(12)]))
    );
    c.by_node(1, rewrap(2, &[10, 11, 12])).result.unwrap();
    assert_eq!(c.state.domain_work(8, &none()), Some(DomainWork::Retire(0)));
    c.by_node(1, EventBody::DomainKeyRetired { generation: 0 })
        .result
        .unwrap();
    assert_eq!(c.state.domain_work(8, &none()), Some(DomainWork::Retire(1)));
    c.by_node(1, EventBody::DomainKeyRetired { generation: 1 })
        .result
        .unwrap();
    assert_eq!(generations(&c), vec![2]);
    assert_eq!(c.state.domain_work(8, &none()), None);
}

#[test]
fn a_key_the_leader_cannot_rewrap_holds_back_only_its_own_generation() {
    let mut c = three_members_with_keys();
    c.by("admin", rotation(1, &[1, 2, 3])).result.unwrap();
    let damaged = BTreeSet::from([KeyId(10)]);
    assert_eq!(
        c.state.domain_work(8, &damaged),
        Some(DomainWork::Rewrap(vec![KeyId(11), KeyId(12)]))
    );
    c.by_node(1, rewrap(1, &[11, 12])).result.unwrap();
    // Generation 0 still wraps key 10: not retired, nothing else to do.
    assert_eq!(c.state.domain_work(8, &damaged), None);
    assert_eq!(c.state.keys_to_rewrap(), 1);
    // A removal still rotates.
    c.by("admin", EventBody::NodeRemoved { node: NodeId(3) })
        .result
        .unwrap();
    assert_eq!(c.state.domain_work(8, &damaged), Some(DomainWork::Rotate));
}

#[test]
fn generations_in_use_are_bounded() {
    let mut c = three_members_with_keys();
    let mut members = vec![1, 2, 3];
    for id in 4..=40u64 {
        // Add and remove members to stack rotations without re-wrapping.
        c.add_member(id);
        members.push(id);
        let gone = members.remove(1);
        c.by("admin", EventBody::NodeRemoved { node: NodeId(gone) })
            .result
            .unwrap();
        let generation = c.state.cluster().unwrap().domain.current + 1;
        let a = c.by_node(members[0], rotation(generation, &members));
        if (generation as usize) < MAX_LIVE_GENERATIONS {
            a.result.unwrap();
        } else {
            assert_eq!(
                a.result,
                refused(DomainKeyError::TooManyGenerations(MAX_LIVE_GENERATIONS))
            );
            assert_eq!(
                c.state
                    .domain_work(8, &none())
                    .map(|w| matches!(w, DomainWork::Rewrap(_))),
                Some(true)
            );
            return;
        }
    }
    panic!("never reached the bound");
}

#[test]
fn a_member_whose_agreement_key_is_a_low_order_point_is_refused() {
    let mut c = three_members_with_keys();
    let mut weak = node_record(7);
    weak.agreement_key = [0; 32];
    let before = c.state.clone();
    assert!(matches!(
        c.by("admin", EventBody::NodeAdded { node: weak }).result,
        Err(Rejection::Membership(_))
    ));
    assert_only_chain_changed(&before, &c.state);
    // The same at init, for a founding member.
    let mut fresh = Cluster::new();
    let mut body = init_body(1, HASH);
    if let EventBody::ClusterInitialized { other_nodes, .. } = &mut body {
        let mut founder = node_record(2);
        founder.agreement_key = [0; 32];
        founder.agreement_key[0] = 1;
        other_nodes.push(founder);
    }
    assert!(matches!(
        fresh.by_node(1, body).result,
        Err(Rejection::Membership(_))
    ));
    assert!(fresh.state.cluster().is_none());
}

#[test]
fn a_key_generation_retried_at_another_generation_is_the_same_request() {
    // Generated material is the node's own draw: a retry built after a
    // rotation carries other material under another generation.
    let generated = |generation: u32, material: u8| {
        let mut body = aes_key(40, "once", false);
        if let EventBody::KeyCreated {
            domain_generation,
            wrapped_material,
            provenance,
            attributes,
            ..
        } = &mut body
        {
            *provenance = hsm_proto::KeyProvenance::generated(attributes);
            *domain_generation = generation;
            *wrapped_material = vec![material; 48];
        }
        body
    };
    let mut c = three_members_with_keys();
    let id = c.next_request_id();
    let first = c.event_with_id(id, as_user("bob"), generated(0, 0xAB));
    let first = c.sign(first);
    c.apply(&first).result.unwrap();
    let retry = c.event_with_id(id, as_user("bob"), generated(1, 0x11));
    let retry = c.sign(retry);
    let a = c.apply(&retry);
    assert!(a.replayed, "{a:?}");
    assert_eq!(a.result, Ok(()));
}

#[test]
fn an_import_retried_is_the_same_request_only_with_the_same_wrapping() {
    // Imported material is the caller's: its copy is rebuilt under the
    // generation the first attempt used (the node tries those in use),
    // and wraps alike; wrapped otherwise, it is another request.
    let mut c = three_members_with_keys();
    let id = c.next_request_id();
    let first = c.event_with_id(id, as_user("bob"), aes_key(40, "once", false));
    let first = c.sign(first);
    c.apply(&first).result.unwrap();
    let mut other = aes_key(40, "once", false);
    if let EventBody::KeyCreated {
        domain_generation,
        wrapped_material,
        ..
    } = &mut other
    {
        *domain_generation = 1;
        *wrapped_material = vec![0x11; 48];
    }
    assert_eq!(
        c.state.same_request(id, &as_user("bob"), &other),
        Some(false)
    );
    let retry = c.event_with_id(id, as_user("bob"), other);
    let retry = c.sign(retry);
    assert_eq!(c.apply(&retry).result, Err(Rejection::RequestIdReused));
    let copy = aes_key(40, "once", false);
    assert_eq!(c.state.same_request(id, &as_user("bob"), &copy), Some(true));
    let copy = c.event_with_id(id, as_user("bob"), copy);
    let copy = c.sign(copy);
    let a = c.apply(&copy);
    assert!(a.replayed, "{a:?}");
    assert_eq!(a.result, Ok(()));
}

#[test]
fn an_import_retried_after_its_generation_was_retired_is_the_same_request() {
    // A rotation re-wraps the key and retires the generation its first
    // attempt used: a copy can only be built under the new generation,
    // where it wraps as the re-wrap did (same key id, generation and
    // material). It is answered as the first attempt, applied once; other
    // material under the same id is still another request.
    let mut c = three_members_with_keys();
    let id = c.next_request_id();
    let first = c.event_with_id(id, as_user("bob"), aes_key(40, "once", false));
    let first = c.sign(first);
    c.apply(&first).result.unwrap();
    c.by("admin", rotation(1, &[1, 2, 3])).result.unwrap();
    c.by_node(1, rewrap(1, &[10, 11, 12, 40])).result.unwrap();
    c.by_node(1, EventBody::DomainKeyRetired { generation: 0 })
        .result
        .unwrap();
    assert_eq!(generations(&c), vec![1]);
    let before = c.state.clone();
    let at_one = |material: Vec<u8>| {
        let mut copy = aes_key_at(40, "once", false, 1);
        if let EventBody::KeyCreated {
            wrapped_material, ..
        } = &mut copy
        {
            *wrapped_material = material;
        }
        copy
    };
    let rewrapped = c.state.key(KeyId(40)).unwrap().wrapped_material.clone();

    let mut other = rewrapped.clone();
    other[0] ^= 1;
    let other = at_one(other);
    assert_eq!(
        c.state.same_request(id, &as_user("bob"), &other),
        Some(false)
    );
    let other = c.event_with_id(id, as_user("bob"), other);
    let other = c.sign(other);
    assert_eq!(c.apply(&other).result, Err(Rejection::RequestIdReused));
    assert_only_chain_changed(&before, &c.state);

    let before = c.state.clone();
    let copy = at_one(rewrapped);
    assert_eq!(c.state.same_request(id, &as_user("bob"), &copy), Some(true));
    let copy = c.event_with_id(id, as_user("bob"), copy);
    let copy = c.sign(copy);
    let a = c.apply(&copy);
    assert!(a.replayed, "{a:?}");
    assert_eq!(a.result, Ok(()));
    assert_only_chain_changed(&before, &c.state);
}

#[test]
fn an_import_retried_after_its_key_was_deleted_is_answered_as_the_first_and_creates_nothing() {
    // Nothing is left to compare the copy's material with, and nothing to
    // confuse it with: it is answered as the first attempt was (the node
    // then says the key is gone), and no key comes back.
    let mut c = three_members_with_keys();
    let id = c.next_request_id();
    let first = c.event_with_id(id, as_user("bob"), aes_key(40, "once", false));
    let first = c.sign(first);
    c.apply(&first).result.unwrap();
    c.by("bob", EventBody::KeyDeleted { key: KeyId(40) })
        .result
        .unwrap();
    let before = c.state.clone();
    let mut copy = aes_key(40, "once", false);
    if let EventBody::KeyCreated {
        wrapped_material, ..
    } = &mut copy
    {
        wrapped_material[0] ^= 1;
    }
    assert_eq!(c.state.same_request(id, &as_user("bob"), &copy), Some(true));
    let copy = c.event_with_id(id, as_user("bob"), copy);
    let copy = c.sign(copy);
    let a = c.apply(&copy);
    assert!(a.replayed, "{a:?}");
    assert!(c.state.key(KeyId(40)).is_none());
    assert_only_chain_changed(&before, &c.state);
}
