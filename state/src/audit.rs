//! The audit trail: the signed, hash-chained events of a cluster, checked
//! end to end with nothing but what they carry.
//!
//! Every event that extended the chain has a position, its sequence number
//! (`State::events` after it applied: the first event is 1). An archive
//! hands the events over in order with their numbers; [`Verifier`] checks
//! that the numbers run on without a gap, that each event names its
//! predecessor's hash (so none was changed, dropped, inserted or moved),
//! and that each is signed by a member of the cluster as it stood then. The
//! members are learnt from the trail itself, by applying it to an empty
//! state with [`State::apply`], exactly as every replica did: so a trail
//! that starts with the cluster's first event needs no key from outside,
//! and the first event's signer is the anchor a reader compares with the
//! cluster it knows ([`Summary::anchor`]).

use std::fmt;

use hsm_proto::{ClusterId, EventBody, EventHash, NodeId, Rejection, SignedEvent};

use crate::sign::event_hash;
use crate::State;

/// What is wrong at one place of a trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Events `from..=to` are missing.
    Gap {
        /// The first missing sequence number.
        from: u64,
        /// The last missing one.
        to: u64,
    },
    /// The numbers go backwards or repeat: the trail is out of order.
    OutOfOrder {
        /// The number found.
        seq: u64,
        /// The number of the event before it.
        after: u64,
    },
    /// The event does not name its predecessor's hash: it, or the one
    /// before it, was changed, or events were moved.
    Unlinked {
        /// The event.
        seq: u64,
    },
    /// The event's signature is not its signer's, or its signer was no
    /// member then: it was changed, or forged.
    BadSignature {
        /// The event.
        seq: u64,
        /// The member it names as signer.
        signer: NodeId,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Gap { from, to } if from == to => write!(f, "event {from} is missing"),
            Finding::Gap { from, to } => write!(f, "events {from} to {to} are missing"),
            Finding::OutOfOrder { seq, after } => {
                write!(f, "event {seq} comes after event {after}: out of order")
            }
            Finding::Unlinked { seq } => write!(
                f,
                "event {seq} does not follow the event before it: one of them was changed, or events were moved"
            ),
            Finding::BadSignature { seq, signer } => write!(
                f,
                "event {seq}: the signature is not that of member {signer} (changed or forged)"
            ),
        }
    }
}

/// What a whole check found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    /// Events checked.
    pub events: u64,
    /// The first and last sequence numbers seen.
    pub range: Option<(u64, u64)>,
    /// The cluster the first event created, when the trail starts there.
    pub cluster: Option<ClusterId>,
    /// The first event's signer and its public key: the anchor of trust,
    /// to compare with a member the reader knows.
    pub anchor: Option<(NodeId, [u8; 32])>,
    /// The hash of the last event: equal to the cluster's chain head when
    /// the trail is complete up to now.
    pub head: Option<EventHash>,
    /// Everything wrong, in trail order.
    pub findings: Vec<Finding>,
}

impl Summary {
    /// Whether nothing is wrong.
    pub fn is_intact(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Checks a trail fed in order, one event at a time.
#[derive(Debug, Default)]
pub struct Verifier {
    /// The events applied so far, while the trail holds together from the
    /// first event on; `None` once it does not (a gap, a broken link, or
    /// a trail that does not start at 1): signatures are then checked
    /// against the members last known.
    replay: Option<State>,
    /// Members' signing keys as last known, for checks after `replay` ends.
    members: std::collections::BTreeMap<NodeId, [u8; 32]>,
    last: Option<(u64, EventHash)>,
    summary: Summary,
}

impl Verifier {
    /// A verifier expecting the trail's first event next.
    pub fn new() -> Verifier {
        Verifier {
            replay: Some(State::new()),
            ..Verifier::default()
        }
    }

    /// Checks the event numbered `seq`.
    pub fn feed(&mut self, seq: u64, signed: &SignedEvent) {
        let hash = event_hash(signed);
        let s = &mut self.summary;
        s.events += 1;
        s.range = Some(s.range.map_or((seq, seq), |(first, _)| (first, seq)));
        match self.last {
            // No event is numbered 0: a trail from outside may say so.
            _ if seq == 0 => {
                s.findings.push(Finding::OutOfOrder { seq, after: 0 });
                self.replay = None;
            }
            None if seq != 1 => {
                s.findings.push(Finding::Gap {
                    from: 1,
                    to: seq - 1,
                });
                self.replay = None;
            }
            None => {}
            Some((last, _)) if seq <= last => {
                s.findings.push(Finding::OutOfOrder { seq, after: last });
                self.replay = None;
            }
            Some((last, _)) if seq > last.saturating_add(1) => {
                s.findings.push(Finding::Gap {
                    from: last.saturating_add(1),
                    to: seq - 1,
                });
                self.replay = None;
            }
            Some((_, prev)) if signed.event.prev_hash != prev => {
                s.findings.push(Finding::Unlinked { seq });
                self.replay = None;
            }
            Some(_) => {}
        }
        if seq == 1 {
            if let EventBody::ClusterInitialized {
                cluster_id,
                first_node,
                ..
            } = &signed.event.body
            {
                s.cluster = Some(*cluster_id);
                s.anchor = Some((first_node.id, first_node.signing_key));
            }
        }
        self.check_signature(seq, signed);
        self.last = Some((seq, hash));
        self.summary.head = Some(hash);
    }

    fn check_signature(&mut self, seq: u64, signed: &SignedEvent) {
        let signer = signed.signer;
        let bad = Finding::BadSignature { seq, signer };
        if let Some(state) = self.replay.as_mut() {
            // Refused for any other reason: a refused request, which the
            // trail records as it was.
            let applied = state.apply(signed);
            if let Err(Rejection::BadSignature(_) | Rejection::UnknownSigner(_)) = applied.result {
                self.summary.findings.push(bad);
            }
            self.members = state.nodes().map(|n| (n.id, n.signing_key)).collect();
            if let EventBody::ClusterInitialized { first_node, .. } = &signed.event.body {
                self.members.insert(first_node.id, first_node.signing_key);
            }
            return;
        }
        // Past a break: the members last known vouch, best effort.
        let verified = self
            .members
            .get(&signer)
            .is_some_and(|key| crate::sign::verify_signature(signed, key));
        if !verified {
            self.summary.findings.push(bad);
        }
    }

    /// What the check found.
    pub fn finish(self) -> Summary {
        self.summary
    }
}
