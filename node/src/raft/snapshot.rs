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
use openraft::error::{InstallSnapshotError, RaftError, SnapshotMismatch};
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

/// The largest snapshot a node takes. openraft writes each chunk at the
/// offset it names into a buffer in memory, so without a bound one chunk
/// at offset 2^40 from any member (a retired one, or a stolen certificate)
/// would make the node allocate a terabyte and abort.
pub const MAX_SNAPSHOT_BYTES: u64 = 1 << 30;

/// The snapshot being received.
#[derive(Default)]
struct Inbound {
    streaming: Option<Streaming<TypeConfig>>,
    /// Its id and how many bytes of it have arrived, in order.
    progress: Option<(String, u64)>,
}

/// Why a snapshot chunk is not written.
#[derive(Debug, PartialEq, Eq)]
enum ChunkRefusal {
    /// It would end past [`MAX_SNAPSHOT_BYTES`].
    TooLarge(String),
    /// It does not continue what arrived: the sender starts again from
    /// offset 0 when told so (openraft's `SnapshotMismatch`), as after this
    /// node restarted mid-transfer.
    OutOfPlace(SnapshotMismatch),
}

/// Whether a chunk of snapshot `id` at `offset` with `len` bytes may be
/// written, given what has arrived (`progress`, updated): a new snapshot
/// starts at offset 0; later chunks continue it without a gap (a chunk sent
/// again after a lost answer may overlap); nothing ends past
/// [`MAX_SNAPSHOT_BYTES`].
fn accept_chunk(
    progress: &mut Option<(String, u64)>,
    id: &str,
    offset: u64,
    len: u64,
) -> Result<(), ChunkRefusal> {
    let end = offset
        .checked_add(len)
        .filter(|end| *end <= MAX_SNAPSHOT_BYTES)
        .ok_or_else(|| {
            ChunkRefusal::TooLarge(format!(
                "a snapshot chunk ending past {MAX_SNAPSHOT_BYTES} bytes (offset {offset})"
            ))
        })?;
    match progress {
        _ if offset == 0 => {
            *progress = Some((id.to_owned(), end));
            Ok(())
        }
        Some((current, got)) if current == id && offset <= *got => {
            *got = (*got).max(end);
            Ok(())
        }
        _ => {
            let expect = match progress {
                Some((current, got)) if current == id => (current.clone(), *got),
                _ => (id.to_owned(), 0),
            };
            Err(ChunkRefusal::OutOfPlace(SnapshotMismatch {
                expect: expect.into(),
                got: (id, offset).into(),
            }))
        }
    }
}

/// The snapshot being received, shared by every RPC stream of this node.
#[derive(Clone)]
pub struct SnapshotInbox {
    sm: StateMachineStore,
    inbound: Arc<tokio::sync::Mutex<Inbound>>,
}

impl SnapshotInbox {
    /// An inbox that checks seals against the member records of `sm`.
    pub fn new(sm: StateMachineStore) -> SnapshotInbox {
        SnapshotInbox {
            sm,
            inbound: Arc::default(),
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
            let mut inbound = self.inbound.lock().await;
            let len = chunk.data.len() as u64;
            accept_chunk(
                &mut inbound.progress,
                &chunk.meta.snapshot_id,
                chunk.offset,
                len,
            )
            .map_err(|r| match r {
                ChunkRefusal::TooLarge(why) => InboxError::Refused(why),
                ChunkRefusal::OutOfPlace(m) => InboxError::Raft(RaftError::APIError(
                    InstallSnapshotError::SnapshotMismatch(m),
                )),
            })?;
            let finished = Chunked::receive_snapshot(&mut inbound.streaming, raft, chunk)
                .await
                .map_err(InboxError::Raft)?;
            if finished.is_some() {
                inbound.progress = None;
            }
            finished
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

#[cfg(test)]
mod tests {
    use super::{accept_chunk, ChunkRefusal, MAX_SNAPSHOT_BYTES};

    #[test]
    fn chunks_continue_a_snapshot_from_zero_without_a_gap_and_within_the_bound() {
        let mut p = None;
        assert!(accept_chunk(&mut p, "s1", 5, 10).is_err(), "no start");
        assert!(accept_chunk(&mut p, "s1", 0, 10).is_ok());
        assert!(accept_chunk(&mut p, "s1", 10, 10).is_ok());
        assert!(accept_chunk(&mut p, "s1", 10, 10).is_ok(), "sent again");
        assert!(
            matches!(
                accept_chunk(&mut p, "s1", 30, 10),
                Err(ChunkRefusal::OutOfPlace(m)) if m.expect.offset == 20 && m.got.offset == 30
            ),
            "a gap: start again"
        );
        assert!(
            accept_chunk(&mut p, "s2", 20, 10).is_err(),
            "another snapshot"
        );
        assert!(accept_chunk(&mut p, "s1", 1 << 40, 1).is_err(), "far ahead");
        assert!(
            matches!(
                accept_chunk(&mut p, "s1", 20, MAX_SNAPSHOT_BYTES),
                Err(ChunkRefusal::TooLarge(_))
            ),
            "too big"
        );
        assert!(accept_chunk(&mut p, "s1", u64::MAX, 2).is_err(), "overflow");
        assert!(accept_chunk(&mut p, "s2", 0, 1).is_ok(), "a new one starts");
        assert_eq!(p, Some(("s2".to_owned(), 1)));
    }
}
