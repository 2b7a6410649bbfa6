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
use hsm_proto::{Actor, EventBody, NodeId, Rejection, SignedEvent};

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

/// The rule of [`EventBody::ProtocolRaised`]: the leader raises the
/// version, as itself (`actor` is the node that signs the event,
/// `signer`, and a member), by one step. A member cannot forward a raise
/// in its own name (the leader signs forwarded writes), so no one but the
/// leader can make replicas stop or old members fall behind. The leader
/// checks the same before proposing ([`check_proposal`]).
///
/// # Errors
/// [`Rejection::RaiseNotByLeader`] or [`Rejection::ProtocolNotRaised`].
pub fn check_raise(
    state: &State,
    signer: NodeId,
    actor: &Actor,
    version: Version,
) -> Result<(), Rejection> {
    if *actor != Actor::Node(signer) || state.node(signer).is_none() {
        return Err(Rejection::RaiseNotByLeader(actor.clone()));
    }
    let current = state.protocol();
    if Some(version) != current.checked_add(1) {
        return Err(Rejection::ProtocolNotRaised {
            current,
            asked: version,
        });
    }
    Ok(())
}

/// What a leader `me` proposes: no event the cluster's version does not
/// have ([`EventBody::since`]); a raise only its own ([`check_raise`]),
/// to a version it speaks. Anything else passes here (the rules apply
/// when it does).
///
/// # Errors
/// As [`check_raise`], and [`Rejection::ProtocolNotRaised`] for a version
/// this build does not speak.
pub fn check_proposal(
    state: &State,
    me: NodeId,
    actor: &Actor,
    body: &EventBody,
) -> Result<(), Rejection> {
    let (needs, cluster) = (body.since(), state.protocol());
    if needs > cluster {
        // Replicas of older builds could not even decode it.
        return Err(Rejection::NeedsProtocol { needs, cluster });
    }
    let EventBody::ProtocolRaised { version } = body else {
        return Ok(());
    };
    check_raise(state, me, actor, *version)?;
    if SPOKEN.contains(version) {
        Ok(())
    } else {
        Err(Rejection::ProtocolNotRaised {
            current: state.protocol(),
            asked: *version,
        })
    }
}

/// Whether this build may apply `signed`: not a raise past [`SPOKEN`]
/// that its signer made as itself (the only kind the rules accept; any
/// other is refused when it applies, like any event, and changes nothing).
///
/// # Errors
/// [`Unspoken`] for such a raise: the replica must stop, not refuse it (the
/// members that speak the version apply it).
pub fn check_event(signed: &SignedEvent) -> Result<(), Unspoken> {
    match &signed.event.body {
        EventBody::ProtocolRaised { version }
            if signed.event.actor == Actor::Node(signed.signer) && !SPOKEN.contains(version) =>
        {
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

/// The version a leader may raise the cluster to next: the one after the
/// cluster's, when it and every member speak it (raises go one step at a
/// time). `speaks` gives the newest version a member was found to speak
/// (the version its connection agreed on; `None` if not known yet: then
/// no raise).
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
    (newest > state.protocol()).then(|| state.protocol() + 1)
}

/// A member connection that agreed on Raft protocol `speaks`, older than
/// the `cluster`'s: the peer speaks nothing newer (the newest both ends
/// speak is agreed on), so it cannot apply the cluster's rules and is
/// refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooOld {
    /// The version the cluster runs.
    pub cluster: Version,
    /// The newest the peer speaks.
    pub speaks: Version,
}

impl TooOld {
    /// Whether a connection that agreed on `agreed` is too old for a
    /// cluster running `cluster`.
    pub fn check(agreed: Version, cluster: Version) -> Result<(), TooOld> {
        if agreed >= cluster {
            Ok(())
        } else {
            Err(TooOld {
                cluster,
                speaks: agreed,
            })
        }
    }

    /// Why, for the refusing node's log.
    pub fn here(&self) -> String {
        format!(
            "the cluster runs Raft protocol {} and that member speaks at most {}: upgrade it to a build that speaks {}",
            self.cluster, self.speaks, self.cluster
        )
    }

    /// Why, for the refused node (the connection's close reason).
    pub fn there(&self) -> String {
        format!(
            "the cluster runs Raft protocol {} and this node's build speaks at most {}: upgrade this node to a build that speaks {}",
            self.cluster, self.speaks, self.cluster
        )
    }
}
