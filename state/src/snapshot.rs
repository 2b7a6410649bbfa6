//! Who vouches for a snapshot before it replaces a replica's state.
//!
//! A snapshot bypasses `apply`: it is a whole state, taken on trust. So the
//! member that sends one signs, with its event-signing key, a statement
//! naming the cluster, the Raft position the snapshot stands for and the
//! state's digest ([`seal_snapshot`]); the receiving replica installs it
//! only if the sender is a member it knows and the seal verifies under
//! that member's recorded signing key ([`check_snapshot`]). The digest is
//! checked against the rebuilt state when the snapshot is decoded, so the
//! signature covers every entity.
//!
//! A member's TLS key alone (a certificate the cluster pins) is therefore
//! not enough to replace state: that takes its signing key, the same key
//! every event it writes needs.

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use hsm_proto::{ClusterId, NodeId, Signature};
use serde::{Deserialize, Serialize};

use crate::{State, StateDigest};

/// Derivation context of the statement a snapshot seal signs.
const STATEMENT_CONTEXT: &str = "hsm-cluster snapshot statement v1";

/// A member's signature over a snapshot it sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSeal {
    /// The cluster the snapshot's state belongs to.
    pub cluster: ClusterId,
    /// The member that signed (and sends) it.
    pub signer: NodeId,
    /// ed25519 over the statement (see [`seal_snapshot`]).
    pub signature: Signature,
}

/// Why a replica refused a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotRefused {
    /// The seal names a signer other than the member that sent it.
    #[error("the snapshot is signed by {signer}, not by {sender} that sent it")]
    NotTheSender {
        /// The seal's signer.
        signer: NodeId,
        /// The authenticated sender.
        sender: NodeId,
    },
    /// The seal names another cluster.
    #[error("the snapshot is of cluster {theirs}, this replica is of cluster {ours}")]
    OtherCluster {
        /// This replica's cluster.
        ours: ClusterId,
        /// The seal's cluster.
        theirs: ClusterId,
    },
    /// The signer is not a member this replica knows.
    #[error("{0} is not a member this replica knows")]
    UnknownSigner(NodeId),
    /// The signature does not verify under the signer's recorded key.
    #[error("the snapshot's signature is not {0}'s")]
    BadSignature(NodeId),
}

/// The 32 bytes a seal signs: the cluster, the snapshot's Raft position
/// (`meta`, the canonical encoding of its last log id and membership, as
/// the IO shell makes it) and the state digest.
fn statement(cluster: &ClusterId, meta: &[u8], digest: &StateDigest) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(STATEMENT_CONTEXT);
    h.update(&cluster.0);
    h.update(&(meta.len() as u64).to_be_bytes());
    h.update(meta);
    h.update(&digest.0);
    *h.finalize().as_bytes()
}

/// Signs a snapshot of `cluster` at `meta` with state digest `digest`, as
/// member `signer`.
pub fn seal_snapshot(
    cluster: ClusterId,
    meta: &[u8],
    digest: &StateDigest,
    signer: NodeId,
    key: &SigningKey,
) -> SnapshotSeal {
    let signature = Signature(key.sign(&statement(&cluster, meta, digest)).to_bytes());
    SnapshotSeal {
        cluster,
        signer,
        signature,
    }
}

/// Whether a replica whose state is `trust` may install a snapshot at
/// `meta` with digest `digest`, sent by the authenticated member `sender`
/// with `seal`.
///
/// The sender must be the signer; the seal must name `trust`'s cluster;
/// the signer must be a member in `trust` and the signature must verify
/// under its recorded signing key. A replica with no cluster yet has no
/// member keys to check against and accepts any seal (what admits its
/// sender is the transport's check, see `authz::peer_standing`).
///
/// # Errors
/// The first [`SnapshotRefused`] reason that applies.
pub fn check_snapshot(
    trust: &State,
    sender: NodeId,
    seal: &SnapshotSeal,
    meta: &[u8],
    digest: &StateDigest,
) -> Result<(), SnapshotRefused> {
    if seal.signer != sender {
        return Err(SnapshotRefused::NotTheSender {
            signer: seal.signer,
            sender,
        });
    }
    let Some(cluster) = trust.cluster() else {
        return Ok(());
    };
    if cluster.cluster_id != seal.cluster {
        return Err(SnapshotRefused::OtherCluster {
            ours: cluster.cluster_id,
            theirs: seal.cluster,
        });
    }
    let record = trust
        .node(seal.signer)
        .ok_or(SnapshotRefused::UnknownSigner(seal.signer))?;
    let key = VerifyingKey::from_bytes(&record.signing_key)
        .map_err(|_| SnapshotRefused::BadSignature(seal.signer))?;
    let signature = ed25519_dalek::Signature::from_bytes(&seal.signature.0);
    key.verify(&statement(&seal.cluster, meta, digest), &signature)
        .map_err(|_| SnapshotRefused::BadSignature(seal.signer))
}
