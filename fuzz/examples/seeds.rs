//! Writes the seed inputs of every fuzz target: well-formed values of each
//! format, from which the fuzzer mutates its way into the decoders.
//!
//! `cargo run -p hsm-fuzz --example seeds -- fuzz/corpus` (from
//! the repository's root) writes `fuzz/corpus/<target>/seed-<n>`; the
//! files are committed, beside what fuzzing campaigns added (docs/security-model.md).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use ed25519_dalek::SigningKey;
use hsm_backup::{ChunkEntry, Manifest, WrappedKey, FORMAT_VERSION};
use hsm_fuzz::{initialized, member_key};
use hsm_proto::client::{
    ClientError, ErrorKind, KeyFilter, Operation, Reply, Request, Response, Secret,
};
use hsm_proto::mechanism::{EncryptMechanism, SignMechanism};
use hsm_proto::{
    codec, Actor, BackupId, ClusterId, Event, EventBody, KeyAttributes, KeyId, KeyProvenance,
    KeySpec, NodeId, RequestId, Role, Username,
};
use hsm_seal::recipient::seal_to;
use hsm_seal::SealKey;
use hsm_state::sign_event;

fn main() {
    let root = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus".into()),
    );
    let mut seeds: Vec<(&str, Vec<Vec<u8>>)> = Vec::new();
    seeds.push(("client_request", requests()));
    seeds.push(("client_response", responses()));
    seeds.push(("signed_event", events()));
    seeds.push(("entities", vec![entities()]));
    seeds.push(("sealed_value", sealed()));
    seeds.push(("key_import", keys()));
    seeds.push(("client_config", vec![CLIENT_CONFIG.as_bytes().to_vec()]));
    seeds.push(("backup_manifest", manifests()));
    seeds.push(("member_rpc", member_frames()));
    seeds.push(("session_token", vec![session_claims()]));
    seeds.push(("node_config", node_configs()));
    seeds.push(("snapshot", snapshots()));
    seeds.push(("pem_key_file", key_files()));
    for (target, inputs) in seeds {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (n, input) in inputs.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{n}")), input).unwrap();
        }
        println!("{target}: {} seeds", inputs.len());
    }
}

fn user(name: &str) -> Username {
    Username::new(name).unwrap()
}

fn request(session: bool, op: Operation) -> Vec<u8> {
    let request = Request {
        session: session.then(|| Secret::new(vec![0xA5; 64])),
        request_id: RequestId([9; 16]),
        min_index: 42,
        op,
    };
    codec::encode("request", &request).unwrap()
}

fn requests() -> Vec<Vec<u8>> {
    let attributes = KeyAttributes {
        label: "seed".into(),
        sign: true,
        verify: true,
        ..KeyAttributes::default()
    };
    vec![
        request(
            false,
            Operation::Login {
                username: user("admin"),
                password: Secret::new(b"not a real password".to_vec()),
            },
        ),
        request(
            true,
            Operation::GenerateKey {
                spec: KeySpec::EcP256,
                attributes: attributes.clone(),
                unique_label: true,
            },
        ),
        request(
            true,
            Operation::ImportKey {
                spec: KeySpec::Aes { bits: 256 },
                attributes,
                material: Secret::new(vec![1; 32]),
                unique_label: false,
            },
        ),
        request(
            true,
            Operation::Sign {
                key: KeyId(7),
                mechanism: SignMechanism::Ed25519,
                message: b"message".to_vec(),
            },
        ),
        request(
            true,
            Operation::Encrypt {
                key: KeyId(8),
                mechanism: EncryptMechanism::AesGcm,
                plaintext: Secret::new(b"plaintext".to_vec()),
                aad: b"aad".to_vec(),
            },
        ),
        request(
            true,
            Operation::ListKeys {
                filter: KeyFilter::default(),
                after: Some(KeyId(3)),
                limit: 100,
            },
        ),
        request(
            true,
            Operation::CreateUser {
                username: user("carol"),
                role: Role::Cu,
                password: Secret::new(b"a password".to_vec()),
            },
        ),
        request(
            true,
            Operation::ImportPublicKey {
                // A P-256 SubjectPublicKeyInfo's shape: the node parses it.
                public_key: [
                    &[
                        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02,
                        0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03,
                        0x42, 0x00, 0x04,
                    ][..],
                    &[0x11; 64][..],
                ]
                .concat(),
                attributes: KeyAttributes {
                    label: "outside".into(),
                    verify: true,
                    ..KeyAttributes::default()
                },
                unique_label: false,
            },
        ),
        request(
            true,
            Operation::SignMany {
                key: KeyId(3),
                mechanism: SignMechanism::EcdsaSha256,
                messages: vec![
                    b"one".to_vec().into(),
                    Vec::new().into(),
                    vec![7; 40].into(),
                ],
            },
        ),
        request(
            true,
            Operation::TransferLeadership {
                to: Some(NodeId(2)),
            },
        ),
        request(true, Operation::MemberStatus),
    ]
}

fn responses() -> Vec<Vec<u8>> {
    let answers = [
        Ok(Reply::LoggedIn {
            token: Secret::new(vec![0x5C; 80]),
            username: user("admin"),
            role: Role::Co,
            expires_ms: 1_700_000_900_000,
        }),
        Ok(Reply::Signature(vec![3; 64])),
        Ok(Reply::Done),
        Ok(Reply::Signatures(vec![
            Ok(vec![3; 64].into()),
            Err(ClientError::new(
                ErrorKind::InvalidInput,
                "message too long",
            )),
        ])),
        Ok(Reply::LeadershipMoved { leader: NodeId(2) }),
        Ok(Reply::Members(hsm_proto::client::MembersReport {
            leader: NodeId(1),
            term: 3,
            last_log_index: 40,
            raft_protocol: 2,
            leader_speaks: 2,
            last_backup_ms: Some(1_700_000_000_000),
            members: vec![hsm_proto::client::MemberState {
                id: NodeId(2),
                address: "10.0.0.2:7400".into(),
                zone: "b".into(),
                voter: true,
                matched_index: Some(38),
                lag: Some(2),
                raft_protocol: Some(2),
            }],
        })),
        Err(ClientError::new(
            ErrorKind::Conflict,
            "request id used already",
        )),
    ];
    answers
        .into_iter()
        .map(|result| {
            let response = Response {
                applied_index: 17,
                result,
            };
            codec::encode("response", &response).unwrap()
        })
        .collect()
}

fn events() -> Vec<Vec<u8>> {
    let head = initialized().head();
    let bodies = [
        (
            Actor::Node(NodeId(1)),
            EventBody::LoginFailed {
                username: user("admin"),
            },
        ),
        (
            Actor::User(user("admin")),
            EventBody::UserCreated {
                username: user("carol"),
                role: Role::Cu,
                password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA".into(),
            },
        ),
        (
            Actor::User(user("admin")),
            EventBody::KeyCreated {
                key: KeyId(5),
                spec: KeySpec::Aes { bits: 256 },
                attributes: KeyAttributes::default(),
                provenance: KeyProvenance::known_outside(hsm_proto::KeyOrigin::Imported),
                domain_generation: 0,
                wrapped_material: vec![1; 61],
                public_key: vec![],
                unique_label: false,
            },
        ),
        (
            Actor::User(user("admin")),
            EventBody::KeyDeleted { key: KeyId(5) },
        ),
        (
            Actor::Node(NodeId(1)),
            EventBody::ProtocolRaised { version: 2 },
        ),
    ];
    bodies
        .into_iter()
        .enumerate()
        .map(|(n, (actor, body))| {
            let event = Event {
                request_id: RequestId([u8::try_from(n).unwrap() + 2; 16]),
                timestamp_ms: 1_700_000_001_000,
                actor,
                prev_hash: head,
                body,
            };
            let signed = sign_event(event, NodeId(1), &member_key());
            codec::encode("event", &signed).unwrap()
        })
        .collect()
}

fn entities() -> Vec<u8> {
    let mut out = Vec::new();
    for entity in initialized().entities() {
        let bytes = entity.to_bytes().unwrap();
        out.extend_from_slice(&u16::try_from(bytes.len()).unwrap().to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

fn sealed() -> Vec<Vec<u8>> {
    let value = SealKey::new(&[0x33; 32])
        .seal(b"fuzz", b"a value sealed for fuzzing")
        .unwrap();
    let recipient = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from([0x44; 32]));
    let to = seal_to(&recipient, "fuzz", b"fuzz", &[0x21; 32]).unwrap();
    let mut to_member = to.ephemeral_public.to_vec();
    to_member.extend_from_slice(&to.nonce);
    to_member.extend_from_slice(&to.ciphertext);
    vec![value, to_member]
}

fn keys() -> Vec<Vec<u8>> {
    // The index of each type in the target's table of key types.
    let specs = [
        (2u8, KeySpec::Aes { bits: 256 }),
        (3, KeySpec::GenericSecret { bytes: 32 }),
        (4, KeySpec::EcP256),
        (5, KeySpec::EcP384),
        (6, KeySpec::EcSecp256k1),
        (7, KeySpec::Ed25519),
        (8, KeySpec::X25519),
        (9, KeySpec::Rsa { bits: 2048 }),
    ];
    let mut seeds = Vec::new();
    for (index, spec) in specs {
        let key = hsm_crypto::generate(spec).unwrap();
        let mut material = vec![index];
        material.extend_from_slice(key.secret());
        seeds.push(material);
        if let Some(public) = key.public_key() {
            let mut der = vec![index];
            der.extend_from_slice(public.der());
            seeds.push(der);
            let mut pem = vec![index];
            pem.extend_from_slice(public.to_pem().as_bytes());
            seeds.push(pem);
        }
    }
    seeds
}

/// Private key files as `hsm key import` reads them: PKCS#8 DER, the same
/// as a PEM block, and the blocks it refuses with advice.
fn key_files() -> Vec<Vec<u8>> {
    use base64::Engine as _;
    let key = hsm_crypto::generate(KeySpec::EcP256).unwrap();
    let der = key.secret().to_vec();
    let body = base64::engine::general_purpose::STANDARD.encode(&der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|l| std::str::from_utf8(l).unwrap())
        .collect();
    let block = |label: &str| {
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
        .into_bytes()
    };
    vec![
        der,
        block("PRIVATE KEY"),
        block("ENCRYPTED PRIVATE KEY"),
        block("EC PRIVATE KEY"),
        b"\n  -----BEGIN PRIVATE KEY-----\r\nAAAA\r\n".to_vec(),
    ]
}

fn manifests() -> Vec<Vec<u8>> {
    let writer = SigningKey::from_bytes(&[0x66; 32]);
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        backup_id: BackupId([1; 16]),
        cluster_id: ClusterId([2; 16]),
        applied_index: 10,
        term: 2,
        created_at_ms: 1_700_000_000_000,
        writer_node_id: NodeId(3),
        writer_public_key: writer.verifying_key().to_bytes(),
        chunk_bytes: 1024,
        total_plain_bytes: 1500,
        chunks: vec![
            ChunkEntry {
                plain_bytes: 1024,
                object_hash: [4; 32],
            },
            ChunkEntry {
                plain_bytes: 476,
                object_hash: [5; 32],
            },
        ],
        wrapped_keys: vec![WrappedKey::DomainKey {
            nonce: [6; 12],
            ciphertext: vec![7; 48],
        }],
    };
    vec![
        hsm_backup::encode_manifest(&manifest, &writer).unwrap(),
        codec::encode("manifest", &manifest).unwrap(),
    ]
}

/// A client config as the operator guide shows one (the certificate is
/// not a real one: the parser's checks of it are fuzzed from here).
const CLIENT_CONFIG: &str = r#"cluster_id = "ef14b5f87b0cce43744ef10868b17943"
ca_cert_pem = """
-----BEGIN CERTIFICATE-----
MIIBdzCCAR2gAwIBAgIUEXAMPLEEXAMPLEEXAMPLEEXAMPLEwCgYIKoZIzj0EAwIw
-----END CERTIFICATE-----
"""
zone = "eu-west-1a"

[[nodes]]
id = 1
address = "hsm-1.example.net:7400"
zone = "eu-west-1a"
transport_key = "2807d4a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d"

[[nodes]]
id = 2
address = "10.0.0.2:7400"
zone = "eu-west-1b"
transport_key = "0101010101010101010101010101010101010101010101010101010101010101"
"#;

fn member_frames() -> Vec<Vec<u8>> {
    use hsm_node::raft::{ForwardedWrite, RaftReply, RaftRpc, ReadIndexAnswer};
    use openraft::raft::{AppendEntriesRequest, VoteRequest, VoteResponse};
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};
    let vote = Vote::new_committed(3, NodeId(2));
    let log_id = |index| LogId::new(CommittedLeaderId::new(3, NodeId(2)), index);
    let signed = codec::decode::<hsm_proto::SignedEvent>("event", &events()[0]).unwrap();
    let rpcs = [
        RaftRpc::Vote(VoteRequest::new(Vote::new(4, NodeId(1)), Some(log_id(10)))),
        RaftRpc::AppendEntries(AppendEntriesRequest {
            vote,
            prev_log_id: Some(log_id(10)),
            entries: vec![
                Entry {
                    log_id: log_id(11),
                    payload: EntryPayload::Normal(hsm_raft_store::EventBatch::one(signed.clone())),
                },
                Entry {
                    log_id: log_id(12),
                    payload: EntryPayload::Blank,
                },
            ],
            leader_commit: Some(log_id(10)),
        }),
        RaftRpc::Forward(ForwardedWrite {
            request_id: RequestId([3; 16]),
            actor: Actor::User(user("admin")),
            session: Some(Secret::new(vec![0x5C; 80])),
            body: signed.event.body,
        }),
        RaftRpc::ReadIndexWithTime,
        RaftRpc::FetchDomainKey { node: NodeId(4) },
    ];
    let replies = [
        RaftReply::Vote(Ok(VoteResponse {
            vote,
            vote_granted: true,
            last_log_id: Some(log_id(12)),
        })),
        RaftReply::ReadIndexWithTime(Ok(ReadIndexAnswer {
            index: 12,
            leader_time_ms: 1_700_000_000_000,
        })),
        RaftReply::BadRequest("no whole frame".into()),
    ];
    let mut frames: Vec<Vec<u8>> = rpcs
        .iter()
        .map(|rpc| codec::encode("raft rpc", rpc).unwrap())
        .collect();
    frames.extend(
        replies
            .iter()
            .map(|reply| codec::encode("raft reply", reply).unwrap()),
    );
    frames
}

fn session_claims() -> Vec<u8> {
    let claims = hsm_node::secrets::SessionClaims {
        username: user("alice"),
        role: Role::Cu,
        password_epoch: 2,
        user_created_ms: 1_700_000_000_000,
        issued_ms: 1_700_000_100_000,
        expires_ms: 1_700_000_900_000,
        token_id: [7; 16],
        session_epoch: 1,
    };
    codec::encode("session claims", &claims).unwrap()
}

fn node_configs() -> Vec<Vec<u8>> {
    let mut config = hsm_node::config::NodeConfig::new(3, "/var/lib/hsm/node3");
    config.zone = "eu-west-1c".into();
    vec![
        toml::to_string(&config).unwrap().into_bytes(),
        NODE_CONFIG.as_bytes().to_vec(),
    ]
}

/// A node config with only what an operator must write.
const NODE_CONFIG: &str = r#"node_id = 2
listen = "0.0.0.0:7400"
advertise = "hsm-2.example.net:7400"
zone = "eu-west-1b"
data_dir = "/var/lib/hsm"

[raft]
heartbeat_interval_ms = 100
"#;

fn snapshots() -> Vec<Vec<u8>> {
    let snapshot = hsm_raft_store::encode_snapshot(initialized()).unwrap();
    // As a backup holds it: inside the payload with a material key.
    let key = hsm_node::secrets::MaterialKey::from_bytes(0, zeroize::Zeroizing::new([7; 32]));
    let payload = hsm_node::backup::encode_payload(&[key], &snapshot).unwrap();
    vec![
        payload.to_vec(),
        snapshot,
        hsm_raft_store::encode_snapshot(&hsm_state::State::new()).unwrap(),
    ]
}
