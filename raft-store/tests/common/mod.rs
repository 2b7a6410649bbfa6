//! Drives a store directly (no Raft) with real signed events.
#![allow(dead_code)]

use ed25519_dalek::SigningKey;
use hsm_proto::{
    Actor, ClusterId, Event, EventBody, EventHash, KeyAttributes, KeyId, KeySpec, NodeId,
    NodeRecord, RequestId, Role, SignedEvent, Username,
};
use hsm_raft_store::{ApplyResponse, EventBatch, LogStore, StateMachineStore, TypeConfig};
use hsm_state::{event_hash, sign_event};
use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId};

pub const NODE: NodeId = NodeId(1);
pub const ADMIN_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$YWRtaW5zYWx0$known-admin-hash-0001";
pub const ALICE_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$YWxpY2VzYWx0$known-alice-hash-0002";

/// Builds a chain of signed events from one node, as a leader would.
#[derive(Clone)]
pub struct Chain {
    key: SigningKey,
    head: EventHash,
    next_request: u64,
    pub next_index: u64,
}

impl Chain {
    pub fn new() -> Chain {
        Chain {
            key: SigningKey::from_bytes(&[42; 32]),
            head: EventHash::GENESIS,
            next_request: 1,
            next_index: 1,
        }
    }

    pub fn event(&mut self, actor: Actor, body: EventBody) -> SignedEvent {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.next_request.to_be_bytes());
        self.next_request += 1;
        let signed = sign_event(
            Event {
                request_id: RequestId(id),
                timestamp_ms: 1_700_000_000_000 + self.next_request,
                actor,
                prev_hash: self.head,
                body,
            },
            NODE,
            &self.key,
        );
        self.head = event_hash(&signed);
        signed
    }

    /// The node's signing key.
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    pub fn entry(&mut self, signed: SignedEvent) -> Entry<TypeConfig> {
        let index = self.next_index;
        self.next_index += 1;
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, NODE), index),
            payload: EntryPayload::Normal(EventBatch::one(signed)),
        }
    }

    pub fn node_record(&self) -> NodeRecord {
        NodeRecord {
            id: NODE,
            signing_key: self.key.verifying_key().to_bytes(),
            agreement_key: [9; 32],
            transport_key: [9; 32],
            zone: "zone-a".into(),
            address: "127.0.0.1:7000".into(),
        }
    }
}

pub fn user(name: &str) -> Username {
    Username::new(name).expect("valid name")
}

/// init, activate admin (its current password checked), create crypto user `alice-known`, and have her
/// create an AES key whose stored material is `material`.
pub fn setup_events(chain: &mut Chain, material: &[u8]) -> Vec<Entry<TypeConfig>> {
    let admin = Actor::User(user("admin"));
    let alice = Actor::User(user("alice-known"));
    let init = chain.event(
        Actor::Node(NODE),
        EventBody::ClusterInitialized {
            cluster_id: ClusterId([3; 16]),
            first_node: chain.node_record(),
            other_nodes: vec![],
            admin_password_hash: ADMIN_HASH.into(),
            domain_check: [0; 32],
        },
    );
    // The node reserves the check of admin's current password; the change
    // names that reservation.
    let check = chain.event(
        Actor::Node(NODE),
        EventBody::LoginFailed {
            username: user("admin"),
        },
    );
    let check_id = check.event.request_id;
    let events = vec![
        init,
        check,
        chain.event(
            admin.clone(),
            EventBody::OwnPasswordChanged {
                username: user("admin"),
                password_hash: ADMIN_HASH.replace("0001", "0003"),
                reservation: check_id,
            },
        ),
        chain.event(
            admin,
            EventBody::UserCreated {
                username: user("alice-known"),
                role: Role::Cu,
                password_hash: ALICE_HASH.into(),
            },
        ),
        chain.event(
            alice,
            EventBody::KeyCreated {
                key: KeyId(0x5eed),
                spec: KeySpec::Aes { bits: 256 },
                attributes: KeyAttributes {
                    label: "known-label-tde-master".into(),
                    encrypt: true,
                    decrypt: true,
                    ..KeyAttributes::default()
                },
                provenance: hsm_proto::KeyProvenance::known_outside(hsm_proto::KeyOrigin::Imported),
                domain_generation: 0,
                wrapped_material: material.to_vec(),
                public_key: Vec::new(),
                unique_label: true,
            },
        ),
    ];
    events.into_iter().map(|e| chain.entry(e)).collect()
}

/// Appends entries to the log and applies them, as Raft would once they
/// commit.
pub async fn append_and_apply(
    log: &mut LogStore,
    sm: &mut StateMachineStore,
    entries: Vec<Entry<TypeConfig>>,
) -> Vec<ApplyResponse> {
    log.blocking_append(entries.clone()).await.expect("append");
    let last = entries.last().map(|e| e.log_id);
    let out = sm.apply(entries).await.expect("apply");
    log.save_committed(last).await.expect("save committed");
    out.into_iter().flat_map(|b| b.events).collect()
}

/// Every file under `dir`, recursively, with its bytes.
pub fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read file");
                out.push((path, bytes));
            }
        }
    }
    out
}

/// A network for a cluster of one: there is never anyone to call.
pub struct NoPeers;

fn unreachable<E: std::error::Error>() -> RPCError<NodeId, BasicNode, E> {
    RPCError::Unreachable(Unreachable::new(&std::io::Error::other(
        "a single-node test cluster has no peers",
    )))
}

impl RaftNetworkFactory<TypeConfig> for NoPeers {
    type Network = NoPeers;

    async fn new_client(&mut self, _target: NodeId, _node: &BasicNode) -> NoPeers {
        NoPeers
    }
}

impl RaftNetwork<TypeConfig> for NoPeers {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        Err(unreachable())
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        Err(unreachable())
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        Err(unreachable())
    }
}
