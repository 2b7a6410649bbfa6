//! Raising the cluster's Raft protocol version, the IO side of
//! `hsm_state::protocol`.
//!
//! During a rolling upgrade members of two builds serve side by side, all
//! applying the rules of the version the cluster runs. Once every member
//! speaks a newer version (its Raft connection with the leader agreed on
//! it), the leader writes `EventBody::ProtocolRaised`, and every replica
//! follows the newer rules from that event on. Members that do not speak
//! the cluster's version are refused from then on (`crate::server`).

use std::time::Duration;

use hsm_proto::protocol::Version;
use hsm_proto::{Actor, ClusterId, EventBody, NodeId, RequestId};
use hsm_raft_store::StateMachineStore;
use tokio::task::JoinHandle;

use crate::raft::{QuicNetwork, Raft};
use crate::writer::Writer;

/// How often the leader looks.
const TICK: Duration = Duration::from_secs(1);

/// Longest a raise may take before the task tries again.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs on every node; it writes only while it leads.
pub fn spawn(
    raft: Raft,
    sm: StateMachineStore,
    writer: Writer,
    network: QuicNetwork,
    me: NodeId,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(TICK).await;
            if raft.metrics().borrow().current_leader != Some(me) {
                continue;
            }
            // Raft's members too: one approved but not yet in this
            // replica's records, or removed but still voting, must speak it.
            let in_raft: Vec<NodeId> = raft
                .metrics()
                .borrow()
                .membership_config
                .nodes()
                .map(|(id, _)| *id)
                .collect();
            let speaks = |n: NodeId| network.peer_protocol(n);
            let target = sm.read(|a| {
                let version = hsm_state::protocol::raise_to(&a.state, me, speaks)?;
                let all = in_raft
                    .iter()
                    .all(|n| *n == me || speaks(*n).is_some_and(|p| p >= version));
                let cluster = a.state.cluster()?.cluster_id;
                all.then_some((version, a.state.protocol(), cluster))
            });
            let Some((version, from, cluster)) = target else {
                continue;
            };
            tracing::info!(
                from,
                to = version,
                "every member speaks a newer Raft protocol: raising the cluster's"
            );
            let written = writer
                .write(
                    raise_id(cluster, me, version),
                    Actor::Node(me),
                    None,
                    EventBody::ProtocolRaised { version },
                    STEP_TIMEOUT,
                )
                .await;
            match written {
                Ok(applied) => match applied.result {
                    Ok(()) => tracing::info!(version, "the cluster runs Raft protocol {version}"),
                    Err(r) => tracing::warn!(reason = %r, "raising the Raft protocol was refused"),
                },
                Err(e) => tracing::warn!(error = %e, "raising the Raft protocol failed; retrying"),
            }
        }
    })
}

/// The request id of leader `me`'s raise of `cluster` to `version`: the
/// same for every try of this leader, so one that timed out but applied
/// is answered as applied when tried again (another leader's raise is
/// another request).
fn raise_id(cluster: ClusterId, me: NodeId, version: Version) -> RequestId {
    let mut h = blake3::Hasher::new_derive_key("hsm-cluster protocol raise v1");
    h.update(&cluster.0);
    h.update(&me.0.to_be_bytes());
    h.update(&version.to_be_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&h.finalize().as_bytes()[..16]);
    RequestId(id)
}
