//! Snapshots between members: the leader signs each snapshot it sends, and
//! a follower installs one only once the seal verifies under the sender's
//! member record (the rule is `hsm_state::snapshot`). openraft assembles
//! the chunks here rather than inside `Raft::install_snapshot`, so the
//! check comes before the state machine is touched: a refused snapshot is
//! an answer to the sender, not a storage error that would stop this node.

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use hsm_proto::{ClusterId, NodeId};
use hsm_raft_store::{snapshot_statement, StateMachineStore, TypeConfig};
use hsm_state::snapshot::{check_snapshot, seal_snapshot, SnapshotSeal};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::network::snapshot_transport::{Chunked, SnapshotTransport, Streaming};
use openraft::raft::{InstallSnapshotRequest, InstallSnapshotResponse};
use openraft::{BasicNode, SnapshotMeta};

use super::Raft;

/// What this node signs with when it sends a snapshot: its id, its
/// event-signing key and its replica (for the cluster id).
#[derive(Clone)]
pub struct SnapshotSigner {
    /// This node.
    pub node: NodeId,
    /// Its event-signing key.
    pub key: SigningKey,
    /// Its replica.
    pub sm: StateMachineStore,
}

impl SnapshotSigner {
    /// The seal for the snapshot at `meta` whose data starts with `data`.
    ///
    /// # Errors
    /// If `data` has no snapshot header.
    pub fn seal(
        &self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        data: &[u8],
    ) -> Result<SnapshotSeal, String> {
        let (position, digest) =
            snapshot_statement(meta, data).map_err(|e| format!("cannot seal: {e}"))?;
        let cluster = self
            .sm
            .read(|a| a.state.cluster().map(|c| c.cluster_id))
            .unwrap_or(ClusterId([0; 16]));
        Ok(seal_snapshot(
            cluster, &position, &digest, self.node, &self.key,
        ))
    }
}

/// Why a snapshot chunk was not taken.
#[derive(Debug)]
pub enum InboxError {
    /// openraft refused or failed (as `Raft::install_snapshot` would).
    Raft(RaftError<NodeId, InstallSnapshotError>),
    /// The seal does not vouch for it.
    Refused(String),
}

/// The snapshot being received, shared by every RPC stream of this node.
#[derive(Clone)]
pub struct SnapshotInbox {
    sm: StateMachineStore,
    streaming: Arc<tokio::sync::Mutex<Option<Streaming<TypeConfig>>>>,
}

impl SnapshotInbox {
    /// An inbox that checks seals against the member records of `sm`.
    pub fn new(sm: StateMachineStore) -> SnapshotInbox {
        SnapshotInbox {
            sm,
            streaming: Arc::default(),
        }
    }

    fn check(
        &self,
        sender: NodeId,
        seal: &SnapshotSeal,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        data: &[u8],
    ) -> Result<(), String> {
        let (position, digest) = snapshot_statement(meta, data).map_err(|e| e.to_string())?;
        self.sm
            .read(|a| check_snapshot(a.trusted(), sender, seal, &position, &digest))
            .map_err(|e| e.to_string())
    }

    /// Takes one chunk from the authenticated member `sender`. The first
    /// chunk of a snapshot (it carries the header and so the digest) and
    /// the assembled snapshot are both checked against `seal`; only then
    /// does openraft install it.
    ///
    /// # Errors
    /// [`InboxError::Refused`] if the seal does not vouch for the chunk or
    /// the snapshot; [`InboxError::Raft`] as `Raft::install_snapshot`.
    pub async fn receive(
        &self,
        raft: &Raft,
        sender: NodeId,
        chunk: InstallSnapshotRequest<TypeConfig>,
        seal: &SnapshotSeal,
    ) -> Result<InstallSnapshotResponse<NodeId>, InboxError> {
        let my_vote = raft.metrics().borrow().vote;
        if chunk.vote < my_vote {
            // An old leader: openraft answers with the newer vote.
            return Ok(InstallSnapshotResponse { vote: my_vote });
        }
        if chunk.offset == 0 {
            self.check(sender, seal, &chunk.meta, &chunk.data)
                .map_err(InboxError::Refused)?;
        }
        let vote = chunk.vote;
        let finished = {
            let mut streaming = self.streaming.lock().await;
            Chunked::receive_snapshot(&mut streaming, raft, chunk)
                .await
                .map_err(InboxError::Raft)?
        };
        let Some(snapshot) = finished else {
            return Ok(InstallSnapshotResponse { vote: my_vote });
        };
        self.check(sender, seal, &snapshot.meta, snapshot.snapshot.get_ref())
            .map_err(InboxError::Refused)?;
        let installed = raft
            .install_full_snapshot(vote, snapshot)
            .await
            .map_err(|f| InboxError::Raft(RaftError::Fatal(f)))?;
        Ok(InstallSnapshotResponse {
            vote: installed.vote,
        })
    }
}
