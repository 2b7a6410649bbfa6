//! The Raft protocol version a cluster runs, as the state records it: what
//! this build can apply, and when the leader may raise it.
//!
//! A cluster's replicated state records the version whose rules `apply`
//! follows ([`State::protocol`], 1 until raised). Replicas of different
//! builds apply every event alike as long as each speaks that version, so
//! a rolling upgrade mixes builds freely; the leader raises the version
//! ([`EventBody::ProtocolRaised`]) only once every member speaks the next
//! one ([`raise_to`]). A build never applies rules it does not know: it
//! stops before an event that raises the version past its own
//! ([`check_event`]) and refuses to run on a state recorded under such a
//! version ([`check_state`]), so a downgrade cannot silently fork a
//! replica.

use std::ops::RangeInclusive;

use hsm_proto::protocol::{describe, Version, RAFT};
use hsm_proto::{EventBody, NodeId};

use crate::State;

/// The Raft protocol versions whose rules this build applies.
pub const SPOKEN: RangeInclusive<Version> = RAFT;

/// The cluster runs a Raft protocol version this build does not speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the cluster runs Raft protocol {cluster}, and this build speaks {}: run a build that speaks {cluster}",
    describe(&SPOKEN)
)]
pub struct Unspoken {
    /// The version the cluster runs (or is being raised to).
    pub cluster: Version,
}

/// Whether this build may apply `body`: not a raise past [`SPOKEN`].
///
/// # Errors
/// [`Unspoken`] for such a raise: the replica must stop, not refuse it (the
/// members that speak the version apply it).
pub fn check_event(body: &EventBody) -> Result<(), Unspoken> {
    match body {
        EventBody::ProtocolRaised { version } if !SPOKEN.contains(version) => {
            Err(Unspoken { cluster: *version })
        }
        _ => Ok(()),
    }
}

/// Whether this build may run on `state` (loaded from its store, a
/// snapshot or a backup).
///
/// # Errors
/// [`Unspoken`] if the state was recorded under a version past [`SPOKEN`].
pub fn check_state(state: &State) -> Result<(), Unspoken> {
    let cluster = state.protocol();
    if SPOKEN.contains(&cluster) {
        Ok(())
    } else {
        Err(Unspoken { cluster })
    }
}

/// The version a leader may raise the cluster to: the newest that it and
/// every member speak, when above the one the cluster runs. `speaks`
/// gives the newest version a member was found to speak (the version its
/// connection agreed on; `None` if not known yet: then no raise).
pub fn raise_to(
    state: &State,
    me: NodeId,
    speaks: impl Fn(NodeId) -> Option<Version>,
) -> Option<Version> {
    state.cluster()?;
    let mut newest = *SPOKEN.end();
    for node in state.nodes() {
        if node.id != me {
            newest = newest.min(speaks(node.id)?);
        }
    }
    (newest > state.protocol()).then_some(newest)
}
