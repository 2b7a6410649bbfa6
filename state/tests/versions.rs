//! Key versions: a rotation gives a key new material as its next version;
//! signing and encryption use the latest; decryption and verification take
//! any version kept at or above the minimum decryption version the owner
//! sets; trimmed versions are gone. Only the owner manages them, only in a
//! cluster at Raft protocol 4, and domain key rotation, reloads and
//! restores carry every version along.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::convert::Infallible;

use common::*;
use hsm_proto::{
    Attempt, EventBody, KeyChange, KeyDefect, KeyId, KeyOrigin, KeyProvenance, KeySpec, Rejection,
    RewrappedVersion, Role, VersionDefect,
};
use hsm_state::authz::Action;
use hsm_state::domain::DomainWork;
use hsm_state::versions::{VersionUse, MAX_KEY_VERSIONS};
use hsm_state::{EntityKey, RestoreTarget, State};

const KEY: u64 = 10;

fn raise_to_4(c: &mut Cluster) {
    for version in [2, 3, 4] {
        c.by_node(FIRST.0, EventBody::ProtocolRaised { version })
            .result
            .unwrap();
    }
}

/// bob owns AES key 10, shared with carol; olga is an officer; protocol 4.
fn owned() -> Cluster {
    let mut c = Cluster::with_users(&[("bob", Role::Cu), ("carol", Role::Cu), ("olga", Role::Co)]);
    raise_to_4(&mut c);
    c.create_key("bob", KEY, "tde");
    c.share("bob", KEY, "carol");
    c
}

fn rotate(version: u32, material: u8) -> EventBody {
    EventBody::KeyRotated {
        key: KeyId(KEY),
        version,
        domain_generation: 0,
        wrapped_material: vec![material; 48],
        public_key: Vec::new(),
    }
}

fn refused(defect: VersionDefect) -> Result<(), Rejection> {
    Err(Rejection::KeyVersionRefused(KeyId(KEY), defect))
}

/// The material `use_` reaches, or why not.
fn material(c: &Cluster, use_: VersionUse) -> Result<(u32, Vec<u8>), Rejection> {
    let key = c.state.key(KeyId(KEY)).unwrap();
    c.state
        .key_at_version(key, use_)
        .map(|(v, k)| (v, k.wrapped_material.clone()))
}

fn min(version: u32) -> EventBody {
    EventBody::KeyMinDecryptionSet {
        key: KeyId(KEY),
        version,
    }
}

fn trim(below: u32) -> EventBody {
    EventBody::KeyVersionsTrimmed {
        key: KeyId(KEY),
        below,
    }
}

#[test]
fn a_rotated_key_makes_with_its_latest_version_and_checks_with_any_kept_one() {
    let mut c = owned();
    assert_eq!(material(&c, VersionUse::Make), Ok((1, vec![0xAB; 48])));
    let info = c.state.key_versions_info(c.state.key(KeyId(KEY)).unwrap());
    assert_eq!(
        (info.latest, info.min_decryption, info.versions.len()),
        (1, 1, 1)
    );

    let a = c.by("bob", rotate(2, 2));
    assert_eq!(a.result, Ok(()));
    assert!(a.changed.contains(&EntityKey::Versions(KeyId(KEY))));
    c.by("bob", rotate(3, 3)).result.unwrap();

    // The key record is the latest version: what signs, encrypts, wraps.
    assert_eq!(
        c.state.key(KeyId(KEY)).unwrap().wrapped_material,
        vec![3; 48]
    );
    assert_eq!(material(&c, VersionUse::Make), Ok((3, vec![3; 48])));
    assert_eq!(material(&c, VersionUse::Check(None)), Ok((3, vec![3; 48])));
    assert_eq!(
        material(&c, VersionUse::Check(Some(1))),
        Ok((1, vec![0xAB; 48]))
    );
    assert_eq!(
        material(&c, VersionUse::Check(Some(2))),
        Ok((2, vec![2; 48]))
    );
    assert_eq!(
        material(&c, VersionUse::Check(Some(4))),
        Err(Rejection::KeyVersionRefused(
            KeyId(KEY),
            VersionDefect::NotKept {
                version: 4,
                oldest: 1,
                latest: 3
            }
        ))
    );
    let info = c.state.key_versions_info(c.state.key(KeyId(KEY)).unwrap());
    assert_eq!(info.latest, 3);
    assert_eq!(
        info.versions.iter().map(|v| v.0).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    // Everything else about the key stays: id, owner, shares, attributes.
    let key = c.state.key(KeyId(KEY)).unwrap();
    assert!(key.shared_with.contains(&user("carol")));
    assert_eq!(key.attributes.label, "tde");
}

#[test]
fn the_minimum_decryption_version_shuts_older_versions_out_and_trimming_deletes_them() {
    let mut c = owned();
    for v in 2..=4 {
        c.by("bob", rotate(v, v as u8)).result.unwrap();
    }
    // Within the kept versions only.
    assert_eq!(
        c.by("bob", min(5)).result,
        refused(VersionDefect::NotKept {
            version: 5,
            oldest: 1,
            latest: 4
        })
    );
    assert_eq!(
        c.by("bob", min(0)).result,
        refused(VersionDefect::NotKept {
            version: 0,
            oldest: 1,
            latest: 4
        })
    );
    c.by("bob", min(3)).result.unwrap();
    assert_eq!(
        material(&c, VersionUse::Check(Some(2))),
        Err(Rejection::KeyVersionRefused(
            KeyId(KEY),
            VersionDefect::BelowMinimum { version: 2, min: 3 }
        ))
    );
    assert_eq!(
        material(&c, VersionUse::Check(Some(3))),
        Ok((3, vec![3; 48]))
    );
    // The minimum may come back down while the versions are kept.
    c.by("bob", min(2)).result.unwrap();
    assert_eq!(
        material(&c, VersionUse::Check(Some(2))),
        Ok((2, vec![2; 48]))
    );

    // Trimming may not delete what may still decrypt.
    assert_eq!(
        c.by("bob", trim(3)).result,
        refused(VersionDefect::TrimAboveMinimum { below: 3, min: 2 })
    );
    c.by("bob", min(3)).result.unwrap();
    c.by("bob", trim(3)).result.unwrap();
    assert_eq!(
        material(&c, VersionUse::Check(Some(2))),
        Err(Rejection::KeyVersionRefused(
            KeyId(KEY),
            VersionDefect::NotKept {
                version: 2,
                oldest: 3,
                latest: 4
            }
        ))
    );
    // A trimmed version is gone for good: the minimum cannot go back to it.
    assert_eq!(
        c.by("bob", min(2)).result,
        refused(VersionDefect::NotKept {
            version: 2,
            oldest: 3,
            latest: 4
        })
    );
    let versions = c.state.key_versions(KeyId(KEY)).unwrap();
    assert_eq!(versions.older.keys().copied().collect::<Vec<_>>(), vec![3]);
}

#[test]
fn only_the_owner_manages_versions_and_only_at_protocol_4() {
    let mut c = Cluster::with_users(&[("bob", Role::Cu), ("carol", Role::Cu), ("olga", Role::Co)]);
    c.create_key("bob", KEY, "tde");
    c.share("bob", KEY, "carol");
    for version in [2, 3] {
        c.by_node(FIRST.0, EventBody::ProtocolRaised { version })
            .result
            .unwrap();
    }
    assert_eq!(
        c.by("bob", rotate(2, 2)).result,
        Err(Rejection::NeedsProtocol {
            needs: 4,
            cluster: 3
        })
    );
    c.by_node(FIRST.0, EventBody::ProtocolRaised { version: 4 })
        .result
        .unwrap();
    c.create_user("dave", Role::Cu);
    for body in [rotate(2, 2), min(1), trim(1)] {
        // A user it is shared with may use it, not manage it.
        assert_eq!(
            c.by("carol", body.clone()).result,
            Err(Rejection::OwnerOnly {
                key: KeyId(KEY),
                change: KeyChange::Versions
            })
        );
        // Someone who cannot see it learns nothing about it.
        assert_eq!(
            c.by("dave", body.clone()).result,
            Err(Rejection::KeyNotFound(KeyId(KEY)))
        );
        assert_eq!(
            c.by("olga", body).result,
            Err(Rejection::Denied {
                role: Role::Co,
                attempt: Attempt::Action(Action::ManageKey)
            })
        );
    }
    assert_eq!(c.state.latest_version(KeyId(KEY)), 1);
    c.by("bob", rotate(2, 2)).result.unwrap();
}

#[test]
fn a_rotation_must_be_the_next_version_of_a_key_with_material_of_the_right_kind() {
    let mut c = owned();
    // Not the next version (two rotations raced: the second is refused).
    assert_eq!(
        c.by("bob", rotate(3, 3)).result,
        refused(VersionDefect::NotNext { latest: 1 })
    );
    assert_eq!(
        c.by("bob", rotate(1, 3)).result,
        refused(VersionDefect::NotNext { latest: 1 })
    );
    let mut empty = rotate(2, 2);
    if let EventBody::KeyRotated {
        wrapped_material, ..
    } = &mut empty
    {
        wrapped_material.clear();
    }
    assert_eq!(
        c.by("bob", empty).result,
        Err(Rejection::KeyInvalid(KeyDefect::NoMaterial))
    );
    let mut with_public = rotate(2, 2);
    if let EventBody::KeyRotated { public_key, .. } = &mut with_public {
        *public_key = vec![0x30; 44];
    }
    assert_eq!(
        c.by("bob", with_public).result,
        Err(Rejection::KeyInvalid(KeyDefect::PublicKeyMismatch))
    );
    // A pair needs its new public half.
    c.by("bob", ed_key(11, "signer")).result.unwrap();
    let pair_without_public = EventBody::KeyRotated {
        key: KeyId(11),
        version: 2,
        domain_generation: 0,
        wrapped_material: vec![5; 64],
        public_key: Vec::new(),
    };
    assert_eq!(
        c.by("bob", pair_without_public).result,
        Err(Rejection::KeyInvalid(KeyDefect::PublicKeyMismatch))
    );
    // A public key alone has no material of ours to renew.
    let public_only = EventBody::KeyCreated {
        key: KeyId(12),
        spec: KeySpec::Ed25519,
        attributes: hsm_proto::KeyAttributes {
            label: "peer".into(),
            verify: true,
            ..hsm_proto::KeyAttributes::default()
        },
        provenance: KeyProvenance::known_outside(KeyOrigin::PublicImported),
        domain_generation: 0,
        wrapped_material: vec![0xCD; 32],
        public_key: vec![0x30; 44],
        unique_label: false,
    };
    c.by("bob", public_only).result.unwrap();
    assert_eq!(
        c.by(
            "bob",
            EventBody::KeyRotated {
                key: KeyId(12),
                version: 2,
                domain_generation: 0,
                wrapped_material: vec![5; 32],
                public_key: vec![0x30; 44],
            }
        )
        .result,
        Err(Rejection::KeyVersionRefused(
            KeyId(12),
            VersionDefect::PublicOnly
        ))
    );
}

#[test]
fn a_key_keeps_a_bounded_number_of_versions() {
    let mut c = owned();
    for v in 2..=MAX_KEY_VERSIONS {
        c.by("bob", rotate(v, v as u8)).result.unwrap();
    }
    assert_eq!(
        c.by("bob", rotate(MAX_KEY_VERSIONS + 1, 0)).result,
        refused(VersionDefect::TooMany {
            max: MAX_KEY_VERSIONS
        })
    );
    c.by("bob", min(2)).result.unwrap();
    c.by("bob", trim(2)).result.unwrap();
    c.by("bob", rotate(MAX_KEY_VERSIONS + 1, 0)).result.unwrap();
}

#[test]
fn a_retried_rotation_is_answered_as_the_first_not_applied_twice() {
    let mut c = owned();
    let id = c.next_request_id();
    let first = c.event_with_id(id, as_user("bob"), rotate(2, 2));
    let signed = c.sign(first);
    c.apply(&signed).result.unwrap();
    // The retry is built again by another node: new material, and the
    // version after the one it now sees.
    let retry = c.event_with_id(id, as_user("bob"), rotate(3, 3));
    let signed = c.sign(retry);
    let again = c.apply(&signed);
    assert_eq!((again.result, again.replayed), (Ok(()), true));
    assert_eq!(c.state.latest_version(KeyId(KEY)), 2);
}

#[test]
fn deleting_a_key_deletes_its_versions() {
    let mut c = owned();
    c.by("bob", rotate(2, 2)).result.unwrap();
    let a = c.by("bob", EventBody::KeyDeleted { key: KeyId(KEY) });
    a.result.unwrap();
    assert!(a.changed.contains(&EntityKey::Versions(KeyId(KEY))));
    assert!(c.state.key_versions(KeyId(KEY)).is_none());
    let reloaded = State::from_entities(c.state.entities()).unwrap();
    assert_eq!(reloaded.digest(), c.state.digest());
}

#[test]
fn domain_key_rotation_moves_older_versions_too_before_retiring_the_old_generation() {
    let mut c = owned();
    c.by("bob", rotate(2, 2)).result.unwrap();
    c.by("admin", rotation(1, &[1])).result.unwrap();
    let none = BTreeSet::new();
    assert_eq!(
        c.state.domain_work(8, &none),
        Some(DomainWork::Rewrap(vec![KeyId(KEY)]))
    );
    assert_eq!(c.state.keys_to_rewrap(), 2, "the latest and version 1");
    c.by_node(
        1,
        EventBody::KeyMaterialRewrapped {
            generation: 1,
            keys: vec![hsm_proto::RewrappedMaterial {
                key: KeyId(KEY),
                wrapped_material: vec![0x22; 48],
            }],
        },
    )
    .result
    .unwrap();
    // Version 1 still uses generation 0: it is not retired yet.
    assert_eq!(
        c.state.domain_work(8, &none),
        Some(DomainWork::RewrapVersions(vec![(KeyId(KEY), 1)]))
    );
    assert_eq!(
        c.by_node(1, EventBody::DomainKeyRetired { generation: 0 })
            .result,
        Err(Rejection::DomainKey(
            hsm_proto::DomainKeyError::StillInUse {
                generation: 0,
                keys: 1
            }
        ))
    );
    let rewrap = EventBody::KeyVersionsRewrapped {
        generation: 1,
        versions: vec![RewrappedVersion {
            key: KeyId(KEY),
            version: 1,
            wrapped_material: vec![0x11; 48],
        }],
    };
    // Only a member re-wraps.
    assert!(matches!(
        c.by("bob", rewrap.clone()).result,
        Err(Rejection::NoSuchActor(_))
    ));
    c.by_node(1, rewrap).result.unwrap();
    assert_eq!(
        material(&c, VersionUse::Check(Some(1))),
        Ok((1, vec![0x11; 48]))
    );
    let older = &c.state.key_versions(KeyId(KEY)).unwrap().older[&1];
    assert_eq!(older.domain_generation, 1);
    assert_eq!(c.state.domain_work(8, &none), Some(DomainWork::Retire(0)));
    c.by_node(1, EventBody::DomainKeyRetired { generation: 0 })
        .result
        .unwrap();
}

#[test]
fn versions_survive_a_reload_and_a_restore_rewraps_them() {
    let mut c = owned();
    c.by("bob", rotate(2, 2)).result.unwrap();
    c.by("bob", rotate(3, 3)).result.unwrap();
    c.by("bob", min(2)).result.unwrap();
    let reloaded = State::from_entities(c.state.entities()).unwrap();
    assert_eq!(reloaded.digest(), c.state.digest());
    assert_eq!(
        reloaded.key_versions(KeyId(KEY)),
        c.state.key_versions(KeyId(KEY))
    );

    // A versions record that apply could not have made is refused.
    let broken = c.state.entities().map(|e| match e {
        hsm_state::Entity::Versions(mut v) => {
            v.min_decryption = 9;
            hsm_state::Entity::Versions(v)
        }
        other => other,
    });
    assert!(State::from_entities(broken).is_err());
    let orphan = c
        .state
        .entities()
        .filter(|e| !matches!(e, hsm_state::Entity::Key(k) if k.id == KeyId(KEY)));
    assert!(State::from_entities(orphan).is_err());

    let target = RestoreTarget {
        cluster_id: hsm_proto::ClusterId([9; 16]),
        first_node: node_record(7),
        domain_check: [5; 32],
    };
    let mut seen = Vec::new();
    let restored = c
        .state
        .restored_as(target, |id, _generation, old: &[u8]| {
            seen.push((id, old.to_vec()));
            Ok::<_, Infallible>(old.iter().map(|b| b ^ 0xFF).collect())
        })
        .unwrap();
    assert!(seen.contains(&(KeyId(KEY), vec![0xAB; 48])), "version 1");
    assert!(seen.contains(&(KeyId(KEY), vec![2; 48])), "version 2");
    let key = restored.key(KeyId(KEY)).unwrap();
    let (v, old) = restored
        .key_at_version(key, VersionUse::Check(Some(2)))
        .unwrap();
    assert_eq!((v, old.wrapped_material.clone()), (2, vec![0xFD; 48]));
    assert_eq!(old.domain_generation, 0);
    assert_eq!(restored.key_versions(KeyId(KEY)).unwrap().min_decryption, 2);
}

#[test]
fn a_rotation_that_lost_a_race_is_decided_again_when_retried() {
    let mut c = owned();
    let id = c.next_request_id();
    // Built on version 1 while another rotation made version 2.
    c.by("bob", rotate(2, 2)).result.unwrap();
    let late = c.event_with_id(id, as_user("bob"), rotate(2, 3));
    let signed = c.sign(late);
    assert_eq!(
        c.apply(&signed).result,
        refused(VersionDefect::NotNext { latest: 2 })
    );
    // Its retry, built again on what the node now sees, applies.
    let retry = c.event_with_id(id, as_user("bob"), rotate(3, 3));
    let signed = c.sign(retry);
    let again = c.apply(&signed);
    assert_eq!((again.result, again.replayed), (Ok(()), false));
    assert_eq!(c.state.latest_version(KeyId(KEY)), 3);
}

#[test]
fn an_import_retried_after_its_key_was_rotated_is_still_the_same_request() {
    let mut c = owned();
    let id = c.next_request_id();
    let import = aes_key(11, "imported", false);
    let first = c.event_with_id(id, as_user("bob"), import.clone());
    let signed = c.sign(first);
    c.apply(&signed).result.unwrap();
    c.by(
        "bob",
        EventBody::KeyRotated {
            key: KeyId(11),
            version: 2,
            domain_generation: 0,
            wrapped_material: vec![9; 48],
            public_key: Vec::new(),
        },
    )
    .result
    .unwrap();
    let retry = c.event_with_id(id, as_user("bob"), import);
    let signed = c.sign(retry);
    let again = c.apply(&signed);
    assert_eq!((again.result, again.replayed), (Ok(()), true));
}

#[test]
fn key_use_counts_come_from_members_well_formed_and_change_nothing() {
    use hsm_proto::{KeyUseKind, KeyUses, MAX_KEY_USES};
    let mut c = owned();
    let uses = |entries: &[(u64, &str, KeyUseKind, u64)]| EventBody::KeyUsesCounted {
        uses: entries
            .iter()
            .map(|(k, u, kind, count)| KeyUses {
                key: KeyId(*k),
                user: user(u),
                kind: *kind,
                count: *count,
            })
            .collect(),
    };
    let good = uses(&[
        (KEY, "bob", KeyUseKind::Sign, 3),
        (KEY, "carol", KeyUseKind::Decrypt, 1),
        (KEY, "carol", KeyUseKind::DataKey, 2),
    ]);
    let before = c.state.digest();
    let a = c.by_node(1, good.clone());
    assert_eq!(a.result, Ok(()));
    // Only the chain head and the remembered outcome move.
    assert!(a
        .changed
        .iter()
        .all(|k| matches!(k, EntityKey::Meta | EntityKey::Request(_))));
    assert_ne!(c.state.digest(), before);
    // Not from a user, not from a stranger node.
    assert!(matches!(
        c.by("bob", good.clone()).result,
        Err(Rejection::NoSuchActor(_))
    ));
    assert!(matches!(
        c.by_node(9, good).result,
        Err(Rejection::NoSuchActor(_))
    ));
    let malformed = Err(Rejection::KeyUsesMalformed { max: MAX_KEY_USES });
    for bad in [
        uses(&[]),
        uses(&[(KEY, "bob", KeyUseKind::Sign, 0)]),
        uses(&[
            (KEY, "carol", KeyUseKind::Decrypt, 1),
            (KEY, "bob", KeyUseKind::Sign, 1),
        ]),
        uses(&[
            (KEY, "bob", KeyUseKind::Sign, 1),
            (KEY, "bob", KeyUseKind::Sign, 1),
        ]),
    ] {
        assert_eq!(c.by_node(1, bad).result, malformed);
    }
    let too_many: Vec<(u64, &str, KeyUseKind, u64)> = (0..=MAX_KEY_USES as u64)
        .map(|k| (k, "bob", KeyUseKind::Verify, 1))
        .collect();
    assert_eq!(c.by_node(1, uses(&too_many)).result, malformed);
}
