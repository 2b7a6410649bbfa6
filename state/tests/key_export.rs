//! The key-export property, tested the strong way: random sequences of
//! what two crypto users (who work together, as one attacker) and a crypto
//! officer can do — generate, import, wrap, unwrap, encrypt, decrypt,
//! change attributes, share, trust — run against the real state machine
//! (`State::apply`), the real key policy (`hsm_state::policy`) and the real
//! cryptography and wrapped-key format (`hsm-crypto`), exactly as the node
//! composes them (`node/src/service/keys.rs`). The attacker also works
//! offline: it makes wrapped keys and ciphertexts of its own from material
//! it knows, and opens everything it holds with every key it knows.
//!
//! The property: the material of a key generated sensitive or
//! wrap-with-trusted is never learned, except through a wrapping under a
//! key a crypto officer had marked trusted (what such a key wraps is the
//! officer's to vouch for, so anything learned from it is set aside).
//!
//! Besides the random operations, after every step the attacker tries
//! everything its keys allow online (every wrap, unwrap and decryption) and
//! offline (wrapped keys claiming the strongest provenance under every key
//! and public key it knows), so a hole needs only the few random steps that
//! set it up. Checked by planting holes in `policy`: dropping the
//! never-known-outside rule for wrapping sensitive keys (or weakening it to
//! `local`), trusting any unwrap's provenance, trusting RSA-OAEP unwraps,
//! or dropping the wrap-with-trusted rule each makes the random sequences
//! fail within 64 cases; dropping the restore of wrap-with-trusted on
//! unwrap is caught by the fixed sequences below.
//!
//! `PROPTEST_CASES` raises the number of sequences (default 64 here), e.g.
//! `PROPTEST_CASES=5000 cargo test -p hsm-state --test key_export` for a
//! longer search.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use common::Cluster;
use hsm_crypto::{EncryptMechanism, KeyMaterial, LoadedKey, WrapMechanism};
use hsm_proto::{
    EventBody, KeyAttribute, KeyAttributes, KeyFlag, KeyId, KeyOrigin, KeyProvenance, KeySpec,
    Role, Username,
};
use hsm_state::policy::{self, KeyUse};
use hsm_state::Key;
use proptest::prelude::*;

const USERS: [&str; 2] = ["eve", "mallory"];

/// Key types the sequences use. RSA keys come from a small pool made once
/// (RSA generation is slow), each handed to at most one key per sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Aes128,
    Aes256,
    Rsa,
}

fn spec_of(kind: Kind) -> KeySpec {
    match kind {
        Kind::Aes128 => KeySpec::Aes { bits: 128 },
        Kind::Aes256 => KeySpec::Aes { bits: 256 },
        Kind::Rsa => KeySpec::Rsa { bits: 2048 },
    }
}

const RSA_POOL: usize = 3;

fn rsa_pool() -> &'static Vec<KeyMaterial> {
    static POOL: OnceLock<Vec<KeyMaterial>> = OnceLock::new();
    POOL.get_or_init(|| {
        (0..RSA_POOL)
            .map(|_| KeyMaterial::generate(KeySpec::Rsa { bits: 2048 }).unwrap())
            .collect()
    })
}

#[derive(Debug, Clone)]
enum Op {
    Generate {
        by: usize,
        kind: Kind,
        usages: u8,
        sensitive: bool,
        extractable: bool,
        wwt: bool,
    },
    Import {
        by: usize,
        kind: Kind,
        usages: u8,
        sensitive: bool,
    },
    Wrap {
        by: usize,
        wrapping: usize,
        target: usize,
        mechanism: usize,
    },
    Unwrap {
        by: usize,
        unwrapping: usize,
        blob: usize,
        mechanism: usize,
        usages: u8,
        kind: Kind,
    },
    Encrypt {
        by: usize,
        key: usize,
        data: usize,
        aad: usize,
    },
    Decrypt {
        by: usize,
        key: usize,
        data: usize,
        aad: usize,
    },
    SetFlag {
        by: usize,
        key: usize,
        flag: usize,
        value: bool,
    },
    Share {
        key: usize,
    },
    Trust {
        key: usize,
        value: bool,
    },
    /// Offline: a wrapped key in the cluster's format, made by the
    /// attacker from material it knows (as wrapping key and as payload),
    /// carrying whatever attributes it likes.
    Craft {
        kek: usize,
        payload: usize,
        mechanism: usize,
        claims: u8,
    },
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::Aes128), Just(Kind::Aes256), Just(Kind::Rsa)]
}

/// Usage sets worth trying (as `usages_from` bits): the ones keys are
/// made with in practice, the conflicting ones, and any at all.
fn usages() -> impl Strategy<Value = u8> {
    prop_oneof![
        Just(0b011_0000), // wrap, unwrap
        Just(0b001_0000), // wrap
        Just(0b010_0000), // unwrap
        Just(0b000_0011), // encrypt, decrypt
        Just(0b000_0010), // decrypt
        Just(0b000_0001), // encrypt
        Just(0b001_0010), // wrap, decrypt (conflict)
        Just(0b010_0001), // unwrap, encrypt (conflict)
        any::<u8>(),
    ]
}

/// Mostly the first user (ownership matters for wrapping).
fn by() -> impl Strategy<Value = usize> {
    prop_oneof![4 => Just(0usize), 1 => Just(1usize)]
}

/// An index into keys or items, mostly among the most recent few.
fn i() -> impl Strategy<Value = usize> {
    0usize..8
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (by(), kind(), usages(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
            |(by, kind, usages, sensitive, extractable, wwt)| Op::Generate {
                by,
                kind,
                usages,
                sensitive,
                extractable,
                wwt
            }
        ),
        2 => (by(), kind(), usages(), any::<bool>()).prop_map(|(by, kind, usages, sensitive)| {
            Op::Import {
                by,
                kind,
                usages,
                sensitive,
            }
        }),
        5 => (by(), i(), i(), 0usize..4).prop_map(|(by, wrapping, target, mechanism)| Op::Wrap {
            by,
            wrapping,
            target,
            mechanism
        }),
        3 => (by(), i(), i(), 0usize..4, usages(), kind()).prop_map(
            |(by, unwrapping, blob, mechanism, usages, kind)| Op::Unwrap {
                by,
                unwrapping,
                blob,
                mechanism,
                usages,
                kind
            }
        ),
        2 => (by(), i(), i(), i()).prop_map(|(by, key, data, aad)| Op::Encrypt {
            by,
            key,
            data,
            aad
        }),
        3 => (by(), i(), i(), i()).prop_map(|(by, key, data, aad)| Op::Decrypt {
            by,
            key,
            data,
            aad
        }),
        3 => (by(), i(), 0usize..10, any::<bool>()).prop_map(|(by, key, flag, value)| {
            Op::SetFlag {
                by,
                key,
                flag,
                value,
            }
        }),
        1 => i().prop_map(|key| Op::Share { key }),
        2 => (i(), any::<bool>()).prop_map(|(key, value)| Op::Trust { key, value }),
        2 => (i(), i(), 0usize..4, any::<u8>()).prop_map(|(kek, payload, mechanism, claims)| {
            Op::Craft {
                kek,
                payload,
                mechanism,
                claims,
            }
        }),
    ]
}

const SETTABLE: [KeyFlag; 10] = [
    KeyFlag::Encrypt,
    KeyFlag::Decrypt,
    KeyFlag::Sign,
    KeyFlag::Verify,
    KeyFlag::Wrap,
    KeyFlag::Unwrap,
    KeyFlag::Derive,
    KeyFlag::Extractable,
    KeyFlag::Sensitive,
    KeyFlag::WrapWithTrusted,
];

fn usages_from(bits: u8) -> KeyAttributes {
    let mut a = KeyAttributes::default();
    for (i, flag) in policy::USAGES.iter().enumerate() {
        if bits & (1 << i) != 0 {
            a.set_flag(*flag, true);
        }
    }
    a
}

/// Bytes the attacker holds; `sanctioned` when they came (however
/// indirectly) from a wrapping under a trusted key.
#[derive(Debug, Clone)]
struct Item {
    bytes: Vec<u8>,
    sanctioned: bool,
}

struct World {
    cluster: Cluster,
    /// Plaintext material of every key, by id (the node keeps it sealed
    /// under the domain key; the test keeps it to check the property).
    material: BTreeMap<u64, KeyMaterial>,
    ids: Vec<u64>,
    next_id: u64,
    rsa_used: usize,
    /// Everything the attacker has seen.
    items: Vec<Item>,
    /// Materials that must stay secret: generated sensitive or
    /// wrap-with-trusted.
    protected: Vec<(u64, Vec<u8>)>,
    log: Vec<String>,
    /// What `saturate` has tried already (so it tries each thing once per
    /// state of the keys involved).
    tried: std::collections::BTreeSet<String>,
}

/// The most keys a sequence makes (unwraps stop there).
const MAX_KEYS: usize = 16;

fn user(i: usize) -> &'static str {
    USERS[i % USERS.len()]
}

impl World {
    fn new() -> World {
        let cluster = Cluster::with_users(&[(USERS[0], Role::Cu), (USERS[1], Role::Cu)]);
        World {
            cluster,
            material: BTreeMap::new(),
            ids: Vec::new(),
            next_id: 1,
            rsa_used: 0,
            items: Vec::new(),
            protected: Vec::new(),
            log: Vec::new(),
            tried: std::collections::BTreeSet::new(),
        }
    }

    /// The `i`-th most recent key (wrapping around).
    fn key(&self, i: usize) -> Option<Key> {
        if self.ids.is_empty() {
            return None;
        }
        let id = self.ids[self.ids.len() - 1 - i % self.ids.len()];
        self.cluster.state.key(KeyId(id)).cloned()
    }

    fn usable(&self, by: usize, i: usize) -> Option<Key> {
        let me = Username::new(user(by)).unwrap();
        self.key(i)
            .filter(|k| hsm_state::authz::can_use_key(&me, k))
    }

    fn owned(&self, by: usize, i: usize) -> Option<Key> {
        let me = Username::new(user(by)).unwrap();
        self.key(i)
            .filter(|k| hsm_state::authz::can_manage_key(&me, k))
    }

    /// The `i`-th most recent item (wrapping around).
    fn item(&self, i: usize) -> Option<Item> {
        if self.items.is_empty() {
            None
        } else {
            Some(self.items[self.items.len() - 1 - i % self.items.len()].clone())
        }
    }

    fn learn(&mut self, bytes: Vec<u8>, sanctioned: bool) {
        if !self
            .items
            .iter()
            .any(|it| it.bytes == bytes && (sanctioned || !it.sanctioned))
        {
            self.items.push(Item { bytes, sanctioned });
        }
    }

    fn loaded(&self, key: &Key) -> LoadedKey {
        LoadedKey::load(&self.material[&key.id.0]).unwrap()
    }

    /// Records a key created by `by` through the state machine, as the
    /// node does; returns whether it was applied.
    fn create(
        &mut self,
        by: usize,
        material: KeyMaterial,
        attributes: KeyAttributes,
        provenance: KeyProvenance,
    ) -> bool {
        let spec = material.spec();
        if policy::check_new_key(spec, &attributes, &provenance).is_err() {
            return false;
        }
        let id = self.next_id;
        self.next_id += 1;
        let public_key = material
            .public_key()
            .map(|p| p.der().to_vec())
            .unwrap_or_default();
        let body = EventBody::KeyCreated {
            key: KeyId(id),
            spec,
            attributes: attributes.clone(),
            provenance,
            // The node seals the material under the domain key; the
            // state machine only stores it.
            domain_generation: 0,
            wrapped_material: vec![0xEE; 40],
            public_key,
            unique_label: false,
        };
        let applied = self.cluster.by(user(by), body);
        assert_eq!(
            applied.result,
            Ok(()),
            "a key the policy allowed was refused"
        );
        // Public halves are public: the attacker exports them.
        if let Some(public) = material.public_key() {
            self.learn(public.der().to_vec(), false);
        }
        if provenance.origin == KeyOrigin::Generated
            && (attributes.sensitive || attributes.wrap_with_trusted)
        {
            self.protected.push((id, material.secret().to_vec()));
        }
        self.material.insert(id, material);
        self.ids.push(id);
        true
    }

    fn run(&mut self, op: &Op) {
        match op {
            Op::Generate { .. } | Op::Import { .. } if self.ids.len() >= MAX_KEYS => {}
            Op::Generate {
                by,
                kind,
                usages,
                sensitive,
                extractable,
                wwt,
            } => {
                let material = match kind {
                    Kind::Rsa if self.rsa_used < RSA_POOL => {
                        self.rsa_used += 1;
                        rsa_pool()[self.rsa_used - 1].clone()
                    }
                    Kind::Rsa => return,
                    _ => KeyMaterial::generate(spec_of(*kind)).unwrap(),
                };
                let attributes = KeyAttributes {
                    sensitive: *sensitive,
                    extractable: *extractable,
                    wrap_with_trusted: *wwt,
                    ..usages_from(*usages)
                };
                let provenance = KeyProvenance::generated(&attributes);
                let ok = self.create(*by, material, attributes, provenance);
                self.log.push(format!("{op:?} -> {ok}"));
            }
            Op::Import {
                by,
                kind,
                usages,
                sensitive,
            } => {
                if *kind == Kind::Rsa {
                    // An RSA key the attacker knows: made here, imported.
                    let material = KeyMaterial::generate(KeySpec::Rsa { bits: 2048 });
                    let Ok(material) = material else { return };
                    self.import(*by, material, *usages, *sensitive, op);
                } else {
                    let material = KeyMaterial::generate(spec_of(*kind)).unwrap();
                    self.import(*by, material, *usages, *sensitive, op);
                }
            }
            Op::Wrap {
                by,
                wrapping,
                target,
                mechanism,
            } => {
                let (Some(w), Some(t)) = (self.usable(*by, *wrapping), self.owned(*by, *target))
                else {
                    return;
                };
                if policy::check_wrap(&w, &t).is_err() {
                    self.log.push(format!("{op:?} -> refused"));
                    return;
                }
                let t = self.wrapped_out(*by, &w, t);
                let carried = policy::carried(&t);
                let blob = self.loaded(&w).wrap_key(
                    mechanism_for(*mechanism, w.spec),
                    &carried,
                    &self.material[&t.id.0],
                );
                if let Ok(blob) = blob {
                    self.log.push(format!("{op:?} -> wrapped"));
                    self.learn(blob, w.attributes.trusted);
                }
            }
            Op::Unwrap {
                by,
                unwrapping,
                blob,
                mechanism,
                usages,
                kind,
            } => {
                let (Some(u), Some(item)) = (self.usable(*by, *unwrapping), self.item(*blob))
                else {
                    return;
                };
                if policy::check_use(&u, KeyUse::Unwrap).is_err() {
                    return;
                }
                let mechanism = mechanism_for(*mechanism, u.spec);
                let Ok((carried, material)) = self.loaded(&u).unwrap_key(mechanism, &item.bytes)
                else {
                    return;
                };
                let template = KeyAttributes {
                    sensitive: false,
                    ..usages_from(*usages & 0x7f)
                };
                let public = mechanism == WrapMechanism::RsaOaepSha256;
                let Ok((attributes, provenance)) =
                    policy::unwrapped(&carried, &u, public, spec_of(*kind), &template).or_else(
                        |_| policy::unwrapped(&carried, &u, public, carried.spec, &template),
                    )
                else {
                    return;
                };
                let ok = self.create(*by, material, attributes, provenance);
                self.log.push(format!("{op:?} -> {ok}"));
            }
            Op::Encrypt { by, key, data, aad } => {
                let (Some(k), Some(data)) = (self.usable(*by, *key), self.item(*data)) else {
                    return;
                };
                if policy::check_use(&k, KeyUse::Encrypt).is_err() {
                    return;
                }
                let aad = self.item(*aad).unwrap_or(Item {
                    bytes: Vec::new(),
                    sanctioned: false,
                });
                let mechanism = encrypt_mechanism(k.spec);
                if let Ok(ct) = self.loaded(&k).encrypt(mechanism, &data.bytes, &aad.bytes) {
                    self.learn(ct, data.sanctioned || aad.sanctioned);
                }
            }
            Op::Decrypt { by, key, data, aad } => {
                let (Some(k), Some(data)) = (self.usable(*by, *key), self.item(*data)) else {
                    return;
                };
                if policy::check_use(&k, KeyUse::Decrypt).is_err() {
                    return;
                }
                // The associated data: none, an item, or the wrapped-key
                // header of the ciphertext (the AES-GCM wrapping's AAD).
                let header = hsm_crypto::WrappedKey::parse(&data.bytes)
                    .map(|w| (w.prefix.to_vec(), w.body.to_vec()))
                    .ok();
                let mut tries: Vec<(Vec<u8>, Vec<u8>, bool)> =
                    vec![(data.bytes.clone(), Vec::new(), data.sanctioned)];
                if let Some(it) = self.item(*aad) {
                    tries.push((
                        data.bytes.clone(),
                        it.bytes,
                        data.sanctioned || it.sanctioned,
                    ));
                }
                if let Some((prefix, body)) = header {
                    tries.push((body.clone(), prefix.clone(), data.sanctioned));
                    let mut label = b"hsm-cluster wrapped key v1".to_vec();
                    label.extend_from_slice(blake3::hash(&prefix).as_bytes());
                    tries.push((body, label, data.sanctioned));
                }
                let mechanism = encrypt_mechanism(k.spec);
                let loaded = self.loaded(&k);
                for (ct, aad, sanctioned) in tries {
                    if let Ok(pt) = loaded.decrypt(mechanism, &ct, &aad) {
                        self.log.push(format!("{op:?} -> decrypted"));
                        self.learn(pt.to_vec(), sanctioned);
                    }
                }
            }
            Op::SetFlag {
                by,
                key,
                flag,
                value,
            } => {
                let Some(k) = self.key(*key) else { return };
                let flag = SETTABLE[flag % SETTABLE.len()];
                let body = EventBody::KeyAttributeSet {
                    key: k.id,
                    attribute: KeyAttribute::Flag(flag, *value),
                };
                let r = self.cluster.by(user(*by), body);
                self.log.push(format!("{op:?} -> {:?}", r.result.is_ok()));
            }
            Op::Share { key } => {
                let Some(k) = self.key(*key) else { return };
                let other = if k.owner.as_str() == USERS[0] {
                    USERS[1]
                } else {
                    USERS[0]
                };
                let body = EventBody::KeyShared {
                    key: k.id,
                    with: Username::new(other).unwrap(),
                };
                let owner = k.owner.to_string();
                let _ = self.cluster.by(&owner, body);
            }
            Op::Trust { key, value } => {
                let Some(k) = self.key(*key) else { return };
                let body = EventBody::KeyAttributeSet {
                    key: k.id,
                    attribute: KeyAttribute::Flag(KeyFlag::Trusted, *value),
                };
                let r = self.cluster.by("admin", body);
                self.log.push(format!("{op:?} -> {:?}", r.result.is_ok()));
            }
            Op::Craft {
                kek,
                payload,
                mechanism,
                claims,
            } => {
                let (Some(kek), Some(payload)) = (self.item(*kek), self.item(*payload)) else {
                    return;
                };
                let spec = hsm_crypto::PublicKey::from_der(&kek.bytes)
                    .map(|p| p.spec())
                    .ok()
                    .or_else(|| as_key(&kek.bytes).map(|k| k.spec()))
                    .unwrap_or(KeySpec::Ed25519);
                let mechanism = mechanism_for(*mechanism, spec);
                let Some(blob) = craft(&kek.bytes, &payload.bytes, mechanism, *claims) else {
                    return;
                };
                self.learn(blob, kek.sanctioned || payload.sanctioned);
            }
        }
    }

    /// As the node does before wrapping `t` under `w`: a key never known
    /// outside that goes out under a key that may be is marked so first.
    fn wrapped_out(&mut self, by: usize, w: &Key, t: Key) -> Key {
        if !policy::exposes(w, &t) {
            return t;
        }
        let applied = self
            .cluster
            .by(user(by), EventBody::KeyWrappedOut { key: t.id });
        assert_eq!(applied.result, Ok(()));
        self.cluster.state.key(t.id).cloned().unwrap_or(t)
    }

    fn import(&mut self, by: usize, material: KeyMaterial, usages: u8, sensitive: bool, op: &Op) {
        let attributes = KeyAttributes {
            sensitive,
            ..usages_from(usages)
        };
        self.learn(material.secret().to_vec(), false);
        let ok = self.create(
            by,
            material,
            attributes,
            KeyProvenance::known_outside(KeyOrigin::Imported),
        );
        self.log.push(format!("{op:?} -> {ok}"));
    }

    /// What the attacker can open offline with what it knows: every item
    /// tried as a wrapped key and as AES-GCM or RSA-OAEP data under every
    /// known key, until nothing new comes out. Sanctioned items are left
    /// out: what a trusted key released is the officer's responsibility.
    /// The attacker tries everything it may online, in the current state:
    /// every wrap its keys allow, every unwrap and decryption of every item
    /// it holds under every key it may use, and (offline) a wrapped key
    /// claiming the strongest provenance under every key it knows, for
    /// every payload it knows. Each attempt once per state of its keys.
    fn saturate(&mut self) {
        let keys: Vec<Key> = self.cluster.state.keys().cloned().collect();
        for by in 0..USERS.len() {
            let me = Username::new(user(by)).unwrap();
            let usable: Vec<&Key> = keys
                .iter()
                .filter(|k| hsm_state::authz::can_use_key(&me, k))
                .collect();
            for w in &usable {
                for t in keys.iter().filter(|k| k.owner == me) {
                    if policy::check_wrap(w, t).is_err() {
                        continue;
                    }
                    for mechanism in fitting(w.spec) {
                        let memo = format!("wrap {:?} {:?} {mechanism:?}", w, t);
                        if !self.tried.insert(memo) {
                            continue;
                        }
                        let t = &self.wrapped_out(by, w, t.clone());
                        let carried = policy::carried(t);
                        if let Ok(blob) =
                            self.loaded(w)
                                .wrap_key(mechanism, &carried, &self.material[&t.id.0])
                        {
                            self.log
                                .push(format!("saturate: wrap {} under {}", t.id, w.id));
                            self.learn(blob, w.attributes.trusted);
                        }
                    }
                }
            }
            let items = self.items.clone();
            for k in &usable {
                for item in &items {
                    let digest = blake3::hash(&item.bytes);
                    if policy::check_use(k, KeyUse::Decrypt).is_ok() {
                        let memo = format!("decrypt {} {digest}", k.id);
                        if self.tried.insert(memo) {
                            let m = encrypt_mechanism(k.spec);
                            if let Ok(pt) = self.loaded(k).decrypt(m, &item.bytes, b"") {
                                self.learn(pt.to_vec(), item.sanctioned);
                            }
                        }
                    }
                    if policy::check_use(k, KeyUse::Unwrap).is_ok() && self.ids.len() < MAX_KEYS {
                        for mechanism in fitting(k.spec) {
                            let memo = format!("unwrap {:?} {digest} {mechanism:?}", k);
                            if !self.tried.insert(memo) {
                                continue;
                            }
                            let Ok((carried, material)) =
                                self.loaded(k).unwrap_key(mechanism, &item.bytes)
                            else {
                                continue;
                            };
                            let public = mechanism == WrapMechanism::RsaOaepSha256;
                            let template = KeyAttributes {
                                sensitive: false,
                                ..KeyAttributes::default()
                            };
                            if let Ok((attributes, provenance)) =
                                policy::unwrapped(&carried, k, public, carried.spec, &template)
                            {
                                let ok = self.create(by, material, attributes, provenance);
                                self.log
                                    .push(format!("saturate: unwrap under {} -> {ok}", k.id));
                            }
                        }
                    }
                }
            }
        }
        // Offline: the strongest claims under every known key.
        let known: Vec<Item> = self
            .items
            .iter()
            .filter(|i| !i.sanctioned)
            .cloned()
            .collect();
        // Sensitive and wrap-with-trusted (bits 0, 1), then usages: wrap and
        // unwrap, or encrypt and decrypt.
        let claims = [(0b11_0000u8 << 2) | 0b11, (0b11 << 2) | 0b11];
        for kek in &known {
            let spec = match hsm_crypto::PublicKey::from_der(&kek.bytes) {
                Ok(public) => public.spec(),
                Err(_) => match as_key(&kek.bytes) {
                    Some(k) => k.spec(),
                    None => continue,
                },
            };
            for payload in known.iter().filter(|i| matches!(i.bytes.len(), 16 | 32)) {
                for mechanism in fitting(spec) {
                    for claim in claims {
                        let memo = format!(
                            "craft {} {} {mechanism:?} {claim}",
                            blake3::hash(&kek.bytes),
                            blake3::hash(&payload.bytes)
                        );
                        if !self.tried.insert(memo) {
                            continue;
                        }
                        if let Some(blob) = craft(&kek.bytes, &payload.bytes, mechanism, claim) {
                            self.learn(blob, false);
                        }
                    }
                }
            }
        }
    }

    fn closure(&mut self) {
        loop {
            let known: Vec<Vec<u8>> = self
                .items
                .iter()
                .filter(|i| !i.sanctioned)
                .map(|i| i.bytes.clone())
                .collect();
            let keys: Vec<LoadedKey> = known.iter().filter_map(|b| as_key(b)).collect();
            let mut found = Vec::new();
            for key in &keys {
                for blob in &known {
                    for m in WrapMechanism::ALL {
                        if let Ok((_, material)) = key.unwrap_key(*m, blob) {
                            found.push(material.secret().to_vec());
                        }
                    }
                    let mechanism = encrypt_mechanism(key.spec());
                    if let Ok(pt) = key.decrypt(mechanism, blob, b"") {
                        found.push(pt.to_vec());
                    }
                }
            }
            let before = self.items.len();
            for f in found {
                self.learn(f, false);
            }
            if self.items.len() == before {
                return;
            }
        }
    }

    fn leaked(&self) -> Option<u64> {
        self.protected
            .iter()
            .find(|(_, secret)| {
                self.items
                    .iter()
                    .any(|i| !i.sanctioned && i.bytes == *secret)
            })
            .map(|(id, _)| *id)
    }
}

/// Mechanism `i` (any of them, so mismatches are tried too), or for 3 the
/// one that fits a key of `spec`.
fn mechanism_for(i: usize, spec: KeySpec) -> WrapMechanism {
    match (i, spec) {
        (3, KeySpec::Rsa { .. }) => WrapMechanism::RsaOaepSha256,
        (3, _) => WrapMechanism::AesGcm,
        (i, _) => WrapMechanism::ALL[i % WrapMechanism::ALL.len()],
    }
}

/// The wrapping mechanisms a key of `spec` takes.
fn fitting(spec: KeySpec) -> Vec<WrapMechanism> {
    match spec {
        KeySpec::Rsa { .. } => vec![WrapMechanism::RsaOaepSha256],
        KeySpec::Aes { .. } => vec![WrapMechanism::AesKeyWrapPad, WrapMechanism::AesGcm],
        _ => Vec::new(),
    }
}

fn encrypt_mechanism(spec: KeySpec) -> EncryptMechanism {
    if matches!(spec, KeySpec::Rsa { .. }) {
        EncryptMechanism::RsaOaepSha256
    } else {
        EncryptMechanism::AesGcm
    }
}

/// Known bytes as a key: AES of that length, or an RSA private key.
fn as_key(bytes: &[u8]) -> Option<LoadedKey> {
    let spec = match bytes.len() {
        16 => KeySpec::Aes { bits: 128 },
        24 => KeySpec::Aes { bits: 192 },
        32 => KeySpec::Aes { bits: 256 },
        _ => KeySpec::Rsa { bits: 2048 },
    };
    LoadedKey::parse(spec, bytes).ok()
}

/// A wrapped key in the cluster's format made offline from known bytes,
/// claiming whatever `claims` picks.
fn craft(kek: &[u8], payload: &[u8], mechanism: WrapMechanism, claims: u8) -> Option<Vec<u8>> {
    let spec = match payload.len() {
        16 => KeySpec::Aes { bits: 128 },
        32 => KeySpec::Aes { bits: 256 },
        _ => return None,
    };
    let material = KeyMaterial::import(spec, payload).ok()?;
    let attributes = KeyAttributes {
        sensitive: claims & 1 != 0,
        wrap_with_trusted: claims & 2 != 0,
        ..usages_from(claims >> 2)
    };
    let carried = hsm_proto::CarriedAttributes {
        spec,
        attributes,
        provenance: KeyProvenance {
            origin: KeyOrigin::Generated,
            local: true,
            always_sensitive: claims & 1 != 0,
            never_extractable: false,
        },
    };
    if let Ok(public) = hsm_crypto::PublicKey::from_der(kek) {
        return public.wrap_key(mechanism, &carried, &material).ok();
    }
    as_key(kek)?.wrap_key(mechanism, &carried, &material).ok()
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_sequence_lets_a_crypto_user_learn_a_protected_key(
        ops in proptest::collection::vec(op(), 1..40)
    ) {
        let mut world = World::new();
        for op in &ops {
            world.run(op);
            world.saturate();
            world.closure();
            if let Some(id) = world.leaked() {
                prop_assert!(
                    false,
                    "key {} leaked after:\n{}",
                    id,
                    world.log.join("\n")
                );
            }
        }
    }
}

/// The attacks from the review, as fixed sequences: each must be refused
/// somewhere along the way, and the property must hold after it. Key and
/// item indices count back from the most recent (0).
#[test]
fn the_reviewed_attacks_as_sequences_leak_nothing() {
    const WRAP_UNWRAP: u8 = 0b011_0000;
    const WRAP: u8 = 0b001_0000;
    const UNWRAP: u8 = 0b010_0000;
    const ENC_DEC: u8 = 0b000_0011;
    let (kwp, gcm) = (0, 1);
    let (encrypt, decrypt, sensitive) = (0, 1, 8);
    let generate = |kind, usages, sensitive, wwt| Op::Generate {
        by: 0,
        kind,
        usages,
        sensitive,
        extractable: true,
        wwt,
    };
    let import = |usages| Op::Import {
        by: 0,
        kind: Kind::Aes256,
        usages,
        sensitive: false,
    };
    let wrap = |wrapping, target, mechanism| Op::Wrap {
        by: 0,
        wrapping,
        target,
        mechanism,
    };
    let set = |key, flag, value| Op::SetFlag {
        by: 0,
        key,
        flag,
        value,
    };
    let wrap_then_decrypt = vec![
        generate(Kind::Aes256, ENC_DEC, true, false),
        generate(Kind::Aes256, WRAP_UNWRAP, true, false),
        wrap(0, 1, gcm),
        set(0, decrypt, true),
        Op::Decrypt {
            by: 0,
            key: 0,
            data: 0,
            aad: 0,
        },
    ];
    let rsa_wrap_then_decrypt = vec![
        generate(Kind::Aes128, ENC_DEC, true, false),
        generate(Kind::Rsa, WRAP_UNWRAP, true, false),
        wrap(0, 1, 2),
        set(0, decrypt, true),
        Op::Decrypt {
            by: 0,
            key: 0,
            data: 0,
            aad: 0,
        },
    ];
    let encrypt_then_unwrap = vec![
        generate(Kind::Aes256, UNWRAP, true, false),
        set(0, encrypt, true),
        import(0),
        Op::Encrypt {
            by: 0,
            key: 1,
            data: 0,
            aad: 0,
        },
        Op::Unwrap {
            by: 0,
            unwrapping: 1,
            blob: 0,
            mechanism: gcm,
            usages: 0,
            kind: Kind::Aes256,
        },
    ];
    let untrusted_then_unwrap = vec![
        generate(Kind::Aes256, WRAP_UNWRAP, true, false),
        // Not sensitive, so only wrap-with-trusted stands in the way.
        generate(Kind::Aes128, ENC_DEC, false, true),
        Op::Trust {
            key: 1,
            value: true,
        },
        wrap(1, 0, kwp),
        Op::Trust {
            key: 1,
            value: false,
        },
        Op::Unwrap {
            by: 0,
            unwrapping: 1,
            blob: 0,
            mechanism: kwp,
            usages: 0,
            kind: Kind::Aes128,
        },
        import(WRAP),
        wrap(0, 1, kwp),
    ];
    let leaky_once_not_sensitive = vec![
        // A key generated not sensitive wraps out under an imported key,
        // becomes sensitive, and would then protect a sensitive key.
        import(WRAP),
        generate(Kind::Aes256, WRAP, false, false),
        wrap(1, 0, kwp),
        set(0, sensitive, true),
        generate(Kind::Aes256, ENC_DEC, true, false),
        wrap(1, 0, kwp),
    ];
    let imported_wraps_sensitive = vec![
        import(WRAP),
        generate(Kind::Aes256, ENC_DEC, true, false),
        wrap(1, 0, kwp),
        wrap(1, 0, gcm),
    ];
    for sequence in [
        wrap_then_decrypt,
        rsa_wrap_then_decrypt,
        encrypt_then_unwrap,
        untrusted_then_unwrap,
        leaky_once_not_sensitive,
        imported_wraps_sensitive,
    ] {
        let mut world = World::new();
        for op in &sequence {
            world.run(op);
            world.closure();
        }
        assert_eq!(world.leaked(), None, "{}", world.log.join("\n"));
        assert!(!world.protected.is_empty(), "{}", world.log.join("\n"));
    }
    // The officer's trust is what releases a key: a sensitive key wrapped
    // under a trusted key the attacker imported is learned, and set aside
    // as sanctioned.
    let mut world = World::new();
    for op in [
        import(WRAP),
        generate(Kind::Aes256, ENC_DEC, true, false),
        wrap(1, 0, kwp),
        Op::Trust {
            key: 1,
            value: true,
        },
        wrap(1, 0, kwp),
    ] {
        world.run(&op);
        world.closure();
    }
    assert_eq!(world.leaked(), None);
    assert!(
        world.items.iter().any(|i| i.sanctioned),
        "the trusted wrap is recorded as sanctioned: {}",
        world.log.join("\n")
    );
    for i in &mut world.items {
        i.sanctioned = false;
    }
    world.closure();
    assert!(
        world.leaked().is_some(),
        "without the trust mark the same knowledge is a leak"
    );
}
