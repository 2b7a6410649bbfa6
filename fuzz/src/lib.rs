//! What each fuzz target does with its input.
//!
//! One function per decoder that bytes from the network or the disk reach,
//! shared by the libFuzzer targets in `fuzz/fuzz_targets` (coverage-guided,
//! `cargo fuzz`, see docs/security-model.md) and by the replay of the
//! committed corpora in this crate's tests (`cargo test`, every build). A
//! target must never panic, abort or hang on any input: a panic reachable
//! from the network is a security bug. Beyond "no panic", each target
//! checks what its decoder promises (what decodes encodes back to the same
//! value; two ways to open a value agree).
//!
//! Backup chunks are sealed values (`sealed_value`) whose plaintext is the
//! snapshot format (`snapshot`); a node's other files are sealed values
//! too.

#![forbid(unsafe_code)]

use std::sync::OnceLock;

use ed25519_dalek::SigningKey;
use hsm_proto::client::{Request, Response};
use hsm_proto::{codec, ClusterId, Event, EventBody, KeySpec, NodeId, NodeRecord, RequestId};
use hsm_seal::recipient::{open_from, Sealed};
use hsm_seal::{SealKey, NONCE_LEN};
use hsm_state::{sign_event, Entity, State};

/// What a target does with one input.
pub type Target = fn(&[u8]);

/// Every target: its name (the folder of its corpus under `fuzz/corpus`
/// and its file under `fuzz/fuzz_targets`) and what it does with an input.
pub const TARGETS: &[(&str, Target)] = &[
    ("client_request", client_request),
    ("client_response", client_response),
    ("signed_event", signed_event),
    ("entities", entities),
    ("sealed_value", sealed_value),
    ("key_import", key_import),
    ("client_config", client_config),
    ("backup_manifest", backup_manifest),
    ("member_rpc", member_rpc),
    ("session_token", session_token),
    ("node_config", node_config),
    ("snapshot", snapshot),
    ("pem_key_file", pem_key_file),
];

/// A client's request frame, as a node reads it from a stream: what
/// decodes encodes back to the same request.
pub fn client_request(data: &[u8]) {
    round_trip::<Request>("request", data);
}

/// A node's answer, as the SDK reads it (a node of another cluster, or a
/// network in the middle, can send anything).
pub fn client_response(data: &[u8]) {
    round_trip::<Response>("response", data);
}

/// A member's RPC frame, as a node reads it from a member stream (before
/// the peer's standing decides what it may send), and the reply the
/// sender reads back. Neither type compares, so the promise checked is
/// that what decodes encodes to bytes that decode and encode to the same
/// bytes again.
pub fn member_rpc(data: &[u8]) {
    stable_encoding::<hsm_node::raft::RaftRpc>("raft rpc", data);
    stable_encoding::<hsm_node::raft::RaftReply>("raft reply", data);
}

fn stable_encoding<T>(what: &'static str, data: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let Ok(value) = codec::decode::<T>(what, data) else {
        return;
    };
    let once = codec::encode(what, &value).expect("what decoded encodes");
    let again = codec::decode::<T>(what, &once).expect("what encoded decodes");
    let twice = codec::encode(what, &again).expect("what decoded encodes");
    assert_eq!(once, twice, "{what} changed in a round trip");
}

/// A session token as a client presents it: the bytes as a token (never
/// accepted: the MAC is the domain key's), and the bytes as the claims of
/// a token the node issues, which it must then accept until it expires
/// with exactly those claims, and refuse with any byte changed.
pub fn session_token(data: &[u8]) {
    use hsm_node::secrets::session::{issue, verify, SessionClaims, SessionError};
    static DOMAIN: OnceLock<hsm_node::secrets::DomainKey> = OnceLock::new();
    let domain = DOMAIN.get_or_init(|| hsm_node::secrets::DomainKey::generate(1));
    assert!(
        verify(domain, data, 0).is_err(),
        "a token nobody issued was accepted"
    );
    let Ok(claims) = codec::decode::<SessionClaims>("session claims", data) else {
        return;
    };
    let token = issue(domain, &claims);
    let bytes = token.as_bytes();
    match verify(domain, bytes, claims.expires_ms.saturating_sub(1)) {
        Ok(back) => assert_eq!(back, claims, "a token's claims changed"),
        Err(SessionError::Expired) => assert_eq!(claims.expires_ms, 0, "expired early"),
        Err(e) => panic!("an issued token was refused: {e}"),
    }
    assert_eq!(
        verify(domain, bytes, claims.expires_ms),
        Err(SessionError::Expired),
        "a token outlived its expiry"
    );
    let at = usize::from(data.first().copied().unwrap_or(0)) % bytes.len();
    let mut changed = bytes.to_vec();
    changed[at] ^= 0x01;
    assert!(
        verify(domain, &changed, 0).is_err(),
        "a changed token was accepted"
    );
}

/// A node config file (TOML), as `hsm-node` reads it: parsing and
/// validating never panic, and a config that parses writes out to TOML
/// that parses to the same config.
pub fn node_config(data: &[u8]) {
    use hsm_node::config::NodeConfig;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = NodeConfig::from_toml_str(text) else {
        return;
    };
    let _ = config.validate();
    if let Ok(written) = toml::to_string(&config) {
        let back = NodeConfig::from_toml_str(&written).expect("a written config parses");
        assert_eq!(back, config, "a config changed in a round trip");
    }
}

/// Snapshot data, as a member installs it from a peer (after the
/// sender's seal), and a backup's plaintext, the payload (material keys)
/// around a snapshot, as a restore reads it: a payload that decodes
/// encodes back to the same bytes; a snapshot that decodes is the state
/// its header promises, and encodes to one that decodes to that state
/// again.
pub fn snapshot(data: &[u8]) {
    // A backup's plaintext: the payload (the material keys of each domain
    // key generation) around the snapshot.
    if let Ok((keys, inner)) = hsm_node::backup::decode_payload(data) {
        let generations: Vec<u32> = keys.keys().copied().collect();
        let keys: Vec<_> = keys.into_values().collect();
        let again = hsm_node::backup::encode_payload(&keys, inner).expect("a payload encodes");
        let (back, rest) =
            hsm_node::backup::decode_payload(&again).expect("an encoded payload decodes");
        assert_eq!(
            (back.keys().copied().collect::<Vec<_>>(), rest),
            (generations, inner),
            "a backup payload changed in a round trip"
        );
        snapshot_data(inner);
    }
    snapshot_data(data);
}

fn snapshot_data(data: &[u8]) {
    let Ok(state) = hsm_raft_store::decode_snapshot(data) else {
        return;
    };
    assert_eq!(
        &state.digest().0[..],
        &data[8..40],
        "a snapshot decoded to another state than its header promises"
    );
    let again = hsm_raft_store::encode_snapshot(&state).expect("a decoded state encodes");
    let back = hsm_raft_store::decode_snapshot(&again).expect("an encoded state decodes");
    assert_eq!(
        back.digest(),
        state.digest(),
        "a snapshot changed in a round trip"
    );
}

fn round_trip<T>(what: &'static str, data: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let Ok(value) = codec::decode::<T>(what, data) else {
        return;
    };
    let again = codec::encode(what, &value).expect("what decoded encodes");
    let back = codec::decode::<T>(what, &again).expect("what encoded decodes");
    assert_eq!(back, value, "{what} changed in a round trip");
}

/// The signing key of fuzzing's one member.
pub fn member_key() -> SigningKey {
    SigningKey::from_bytes(&[0x5a; 32])
}

/// A cluster state just after its init event, signed by [`member_key`]:
/// the state events are applied to.
pub fn initialized() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| {
        let key = member_key();
        let member = NodeRecord {
            id: NodeId(1),
            signing_key: key.verifying_key().to_bytes(),
            agreement_key: [1; 32],
            transport_key: [1; 32],
            zone: "zone-1".into(),
            address: "10.0.0.1:7000".into(),
        };
        let mut state = State::new();
        let event = Event {
            request_id: RequestId([1; 16]),
            timestamp_ms: 1_700_000_000_000,
            actor: hsm_proto::Actor::Node(NodeId(1)),
            prev_hash: state.head(),
            body: EventBody::ClusterInitialized {
                cluster_id: ClusterId([7; 16]),
                first_node: member,
                other_nodes: vec![],
                admin_password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA".into(),
                domain_check: [0; 32],
            },
        };
        let applied = state.apply(&sign_event(event, NodeId(1), &key));
        assert!(applied.result.is_ok(), "init: {:?}", applied.result);
        state
    })
}

/// A signed event as a member receives it in the log: applied as it is,
/// then chained to the state and signed by the member, so the rules see
/// every body the decoder lets through. Applying never panics, and a
/// second copy is a replay or refused, never applied twice.
pub fn signed_event(data: &[u8]) {
    let Ok(signed) = codec::decode::<hsm_proto::SignedEvent>("event", data) else {
        return;
    };
    let mut state = initialized().clone();
    let _ = state.apply(&signed);
    let mut state = initialized().clone();
    let mut event = signed.event;
    event.prev_hash = state.head();
    let first = state.apply(&sign_event(event.clone(), NodeId(1), &member_key()));
    event.prev_hash = state.head();
    let again = state.apply(&sign_event(event, NodeId(1), &member_key()));
    if first.result.is_ok() && again.result.is_ok() {
        assert!(again.replayed, "an event applied twice");
    }
    if again.replayed {
        assert_eq!(again.result, first.result, "a replay answered otherwise");
    }
}

/// Store values and snapshots hold entities: each part of the input (two
/// length bytes, then the part) decoded as one, and the decoded ones
/// loaded as a state, which a member does with a snapshot it installs.
pub fn entities(data: &[u8]) {
    let mut rest = data;
    let mut decoded = Vec::new();
    while let [a, b, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*a, *b])).min(tail.len());
        let (part, after) = tail.split_at(len);
        if let Ok(entity) = Entity::from_bytes(part) {
            decoded.push(entity);
        }
        rest = after;
    }
    if let Ok(state) = State::from_entities(decoded) {
        let reloaded = State::from_entities(state.entities()).expect("a loaded state loads again");
        assert_eq!(
            reloaded.digest(),
            state.digest(),
            "a reload changed the state"
        );
    }
}

/// A sealed value (a store value, a node key file, wrapped material, a
/// backup chunk): opened whole and in place, which must agree; and the same
/// bytes as a value sealed to a member's X25519 key.
pub fn sealed_value(data: &[u8]) {
    let key = SealKey::new(&[0x33; 32]);
    let whole = key.open(b"fuzz", data);
    let mut copy = data.to_vec();
    let in_place = key.open_in_place(b"fuzz", &mut copy).map(<[u8]>::to_vec);
    match (&whole, &in_place) {
        (Ok(a), Ok(b)) => assert_eq!(&a[..], &b[..], "the two openings differ"),
        (Err(a), Err(b)) => assert_eq!(a, b, "the two openings fail differently"),
        _ => panic!("one opening failed, the other did not"),
    }
    if data.len() >= 32 + NONCE_LEN {
        let (ephemeral, rest) = data.split_at(32);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let sealed = Sealed {
            ephemeral_public: ephemeral.try_into().expect("32 bytes"),
            nonce: nonce.try_into().expect("a nonce"),
            ciphertext: ciphertext.to_vec(),
        };
        let secret = x25519_dalek::StaticSecret::from([0x44; 32]);
        let _ = open_from(&secret, "fuzz", b"fuzz", &sealed);
    }
}

/// Key material a user imports (raw bytes, PKCS#8 DER), public keys
/// (DER, PEM) and wrapped-key blobs: the first byte picks the key type.
pub fn key_import(data: &[u8]) {
    const SPECS: [KeySpec; 12] = [
        KeySpec::Aes { bits: 128 },
        KeySpec::Aes { bits: 192 },
        KeySpec::Aes { bits: 256 },
        KeySpec::GenericSecret { bytes: 32 },
        KeySpec::EcP256,
        KeySpec::EcP384,
        KeySpec::EcSecp256k1,
        KeySpec::Ed25519,
        KeySpec::X25519,
        KeySpec::Rsa { bits: 2048 },
        KeySpec::Rsa { bits: 3072 },
        KeySpec::Rsa { bits: 4096 },
    ];
    let Some((&pick, material)) = data.split_first() else {
        return;
    };
    let spec = SPECS[usize::from(pick) % SPECS.len()];
    if let Ok(key) = hsm_crypto::import(spec, material) {
        assert_eq!(key.spec(), spec, "imported as another type");
        if let Some(public) = key.public_key() {
            let der = public.der().to_vec();
            let again = hsm_crypto::PublicKey::from_der(&der).expect("its own public key parses");
            assert_eq!(again.der(), &der[..], "public key changed in a round trip");
        }
    }
    let _ = hsm_crypto::PublicKey::from_der(material);
    if let Ok(text) = std::str::from_utf8(material) {
        let _ = hsm_crypto::PublicKey::from_pem(text);
    }
    let _ = hsm_crypto::WrappedKey::parse(material);
}

/// A private key file given to `hsm key import` (PKCS#8 as DER or PEM),
/// as the command line reads it before anything reaches the cluster: a
/// file that is no PEM is passed on as it is; a `PRIVATE KEY` block gives
/// the bytes its body encodes, which a block written from them gives back.
pub fn pem_key_file(data: &[u8]) {
    let Ok(der) = hsm_cli::pem::pkcs8_der(data) else {
        return;
    };
    let pem = std::str::from_utf8(data)
        .ok()
        .filter(|t| t.trim_start().starts_with("-----BEGIN "));
    if pem.is_none() {
        assert_eq!(der.as_slice(), data, "a DER file was changed");
        return;
    }
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_slice());
    let again = format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n");
    let again = hsm_cli::pem::pkcs8_der(again.as_bytes()).expect("a block it wrote reads back");
    assert_eq!(
        again.as_slice(),
        der.as_slice(),
        "PEM round trip changed the key"
    );
}

/// A client config file (TOML), as the SDK and `hsm` read it.
pub fn client_config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = hsm_client::parse_config(text);
    }
}

/// A backup manifest object, as restore and retention read it from a
/// destination anyone with write access there can fill: as it is, and its
/// body signed again by a known writer (so the checks past the signature
/// see every body the decoder lets through).
pub fn backup_manifest(data: &[u8]) {
    let _ = hsm_backup::decode_manifest(data, "fuzz", None);
    let Ok(mut manifest) = codec::decode::<hsm_backup::Manifest>("manifest", data) else {
        return;
    };
    let writer = SigningKey::from_bytes(&[0x66; 32]);
    manifest.writer_public_key = writer.verifying_key().to_bytes();
    let Ok(object) = hsm_backup::encode_manifest(&manifest, &writer) else {
        return;
    };
    if let Ok(back) = hsm_backup::decode_manifest(&object, "fuzz", Some(&[writer.verifying_key()]))
    {
        assert_eq!(back, manifest, "a manifest changed in a round trip");
    }
}
