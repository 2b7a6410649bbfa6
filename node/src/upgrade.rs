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

use hsm_proto::{Actor, EventBody, NodeId, RequestId};
use hsm_raft_store::StateMachineStore;
use rand::RngCore;
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
            let target = sm.read(|a| {
                hsm_state::protocol::raise_to(&a.state, me, |n| network.peer_protocol(n))
            });
            let Some(version) = target else { continue };
            let from = sm.read(|a| a.state.protocol());
            tracing::info!(
                from,
                to = version,
                "every member speaks a newer Raft protocol: raising the cluster's"
            );
            let mut request = [0u8; 16];
            rand::rngs::OsRng.fill_bytes(&mut request);
            let written = writer
                .write(
                    RequestId(request),
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
