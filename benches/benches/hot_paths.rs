//! Criterion micro-benchmarks of the hot inner paths: signing and
//! verifying an event, applying one to a state, sealing and opening key
//! material under the domain key, building and installing a snapshot, and
//! the Argon2id password check of a login beside the OWASP floor.
//!
//! `cargo bench -p hsm-bench --bench hot_paths` measures; `cargo test`
//! runs each once (criterion's test mode), so they cannot rot.

#![allow(missing_docs)]

#[path = "../../state/tests/common/mod.rs"]
mod common;

use common::{aes_key, as_user, node_key, Cluster, FIRST};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use hsm_node::secrets::DomainKey;
use hsm_proto::{KeyId, Role};
use hsm_state::{sign_event, verify_signature};

/// Keys in the state the snapshot benchmarks use.
const SNAPSHOT_KEYS: u64 = 10_000;

fn cluster_with_keys(n: u64) -> Cluster {
    let mut c = Cluster::with_users(&[("alice", Role::Cu)]);
    for id in 1..=n {
        c.create_key("alice", id, &format!("key-{id}"));
    }
    c
}

fn events(c: &mut Criterion) {
    let mut cluster = cluster_with_keys(10);
    let event = cluster.event(as_user("alice"), aes_key(1_000, "bench", false));
    let key = node_key(FIRST.0);
    let signed = sign_event(event.clone(), FIRST, &key);
    let public = key.verifying_key().to_bytes();
    c.bench_function("event/sign", |b| {
        b.iter(|| sign_event(black_box(event.clone()), FIRST, &key));
    });
    c.bench_function("event/verify", |b| {
        b.iter(|| assert!(verify_signature(black_box(&signed), &public)));
    });
    c.bench_function("event/apply (key created, 10 keys)", |b| {
        b.iter_batched(
            || {
                let mut c = cluster.clone();
                let next = c.event(as_user("alice"), aes_key(2_000, "bench", false));
                let signed = c.sign(next);
                (c, signed)
            },
            |(mut c, signed)| {
                let applied = c.apply(&signed);
                assert_eq!(applied.result, Ok(()));
                applied
            },
            BatchSize::SmallInput,
        );
    });
}

fn sealing(c: &mut Criterion) {
    let domain = DomainKey::generate(0);
    let material = [0x42u8; 32];
    let wrapped = domain.wrap_material(KeyId(7), &material).expect("wraps");
    c.bench_function("seal/wrap 32-byte key material", |b| {
        b.iter(|| domain.wrap_material(KeyId(7), black_box(&material)));
    });
    c.bench_function("seal/unwrap 32-byte key material", |b| {
        b.iter(|| domain.unwrap_material(KeyId(7), black_box(&wrapped)));
    });
}

fn passwords(c: &mut Criterion) {
    use argon2::password_hash::{PasswordHasher, SaltString};
    use argon2::{Algorithm, Argon2, Version};
    use hsm_node::secrets::password::{ARGON2_PARAMS, OWASP_FLOOR_PARAMS};
    let password = "correct horse battery staple";
    let salt = SaltString::encode_b64(&[7u8; 16]).expect("salt");
    let mut group = c.benchmark_group("argon2id login check");
    group.sample_size(10);
    for (name, params) in [
        ("owasp floor (m=19 MiB, t=2)", OWASP_FLOOR_PARAMS),
        ("this cluster (m=40 MiB, t=2)", ARGON2_PARAMS),
    ] {
        let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(password.as_bytes(), &salt)
            .expect("hash")
            .to_string();
        group.bench_function(name, |b| {
            b.iter(|| {
                assert!(hsm_node::secrets::verify_password(
                    black_box(password),
                    &phc
                ))
            });
        });
    }
    group.finish();
}

fn snapshots(c: &mut Criterion) {
    let cluster = cluster_with_keys(SNAPSHOT_KEYS);
    let bytes = hsm_raft_store::encode_snapshot(&cluster.state).expect("encodes");
    let mut group = c.benchmark_group("snapshot (10,000 keys)");
    group.sample_size(10);
    group.bench_function("build", |b| {
        b.iter(|| hsm_raft_store::encode_snapshot(black_box(&cluster.state)));
    });
    group.bench_function("install (decode and check the digest)", |b| {
        b.iter(|| hsm_raft_store::decode_snapshot(black_box(&bytes)).expect("decodes"));
    });
    group.finish();
}

criterion_group!(hot_paths, events, sealing, passwords, snapshots);
criterion_main!(hot_paths);
