//! Which node serves the next attempt: the client's view of each node's
//! health and load, and the choice made from it.
//!
//! Pure: no IO, no clock, no global randomness. The caller passes `now` and
//! a random number generator, so the tests drive it with a fixed seed and
//! made-up instants.
//!
//! - Reads and crypto: power of two choices on outstanding requests among
//!   the nodes that are up, restricted to the caller's zone when any node
//!   there is up ([`Balancer::pick_anywhere`], for connects made alongside
//!   a slow one, is not).
//! - Writes: the leader when it is up, else the same choice as a read.
//! - A node that failed is down for a backoff (1 s, doubling to 10 s while
//!   it keeps failing). When the backoff has passed, one attempt at a time
//!   may go to it (it is *probing*); its outcome brings it up or down again.
//! - A node slower to answer a handshake than another node's whole
//!   handshake is *suspect*: passed over until that handshake ends.
//! - When no node that is up remains untried, a down node is tried anyway
//!   (the one whose backoff ends first): a call never gives up on a node it
//!   has not tried.

use std::time::{Duration, Instant};

use hsm_proto::client::MemberInfo;
use hsm_proto::NodeId;
use rand::Rng;

/// Backoff after a node's first failure.
pub(crate) const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Longest backoff.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A node's health as this client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    /// Answering.
    Up,
    /// Failed; not chosen before `until` unless nothing else is left.
    Down { until: Instant, backoff: Duration },
    /// Backoff over; one attempt is finding out whether it is back.
    Probing { backoff: Duration },
    /// Up, but slower to answer a handshake than another node's whole
    /// handshake (a hedged connect): passed over until that handshake
    /// ends, which brings it up or down.
    Suspect,
}

#[derive(Debug, Clone)]
struct NodeState {
    id: NodeId,
    address: String,
    zone: String,
    outstanding: usize,
    health: Health,
    /// Attempts this node answered.
    completed: u64,
    /// Attempts that failed on this node.
    failed: u64,
}

/// How an attempt on a node ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The node answered (with a result or an error of the caller's).
    Answered,
    /// Transport failure, timeout or an `Unavailable` answer.
    Failed,
    /// The attempt was cancelled before it ended (the caller dropped it).
    Abandoned,
    /// A connection to the node was made for a call that went to another
    /// node meanwhile (a hedged connect, [`crate::client`]): the node is
    /// up, and answered nothing.
    Reached,
}

/// The node chosen for an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pick {
    pub(crate) id: NodeId,
    pub(crate) address: String,
}

/// A node as the client currently sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownNode {
    /// Node id.
    pub id: NodeId,
    /// `host:port` the client connects to.
    pub address: String,
    /// Zone label.
    pub zone: String,
    /// Whether the client considers it up (not in a failure backoff).
    pub up: bool,
    /// Requests of this client in flight on it.
    pub in_flight: usize,
}

/// What this client has seen of one node: its health, its load, and how
/// many attempts it answered or failed since the client was made.
///
/// Counted per attempt, not per call: a call that failed on one node and
/// was answered by another counts one failure on the first and one
/// completion on the second. The client's own member refreshes count too.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStats {
    /// Node id.
    pub id: NodeId,
    /// `host:port` the client connects to.
    pub address: String,
    /// Zone label.
    pub zone: String,
    /// Whether the client would choose it now (as [`KnownNode::up`]).
    pub up: bool,
    /// Requests of this client in flight on it.
    pub in_flight: usize,
    /// Attempts it answered, with a result or with a refusal of the
    /// caller's request (a node that answers is serving).
    pub completed: u64,
    /// Attempts that failed on it: transport failure, timeout, or an
    /// `unavailable` answer.
    pub failed: u64,
    /// While it is set aside after a failure, when its backoff ends;
    /// `None` when it is up or being probed.
    pub down_until: Option<Instant>,
}

/// Health, load and leader of every known node.
#[derive(Debug)]
pub(crate) struct Balancer {
    nodes: Vec<NodeState>,
    leader: Option<NodeId>,
    zone: Option<String>,
}

impl Balancer {
    /// A balancer over `(id, address, zone)` nodes, all up, preferring
    /// `zone` when given.
    pub(crate) fn new(
        nodes: impl IntoIterator<Item = (NodeId, String, String)>,
        zone: Option<String>,
    ) -> Balancer {
        let mut nodes: Vec<NodeState> = nodes
            .into_iter()
            .map(|(id, address, zone)| NodeState {
                id,
                address,
                zone,
                outstanding: 0,
                health: Health::Up,
                completed: 0,
                failed: 0,
            })
            .collect();
        nodes.sort_by_key(|n| n.id);
        nodes.dedup_by_key(|n| n.id);
        Balancer {
            nodes,
            leader: None,
            zone,
        }
    }

    /// Replaces the node list with the cluster's members, keeping the
    /// health and load of nodes that stay. An empty list (a cluster not
    /// initialized yet) is ignored.
    pub(crate) fn set_members(&mut self, members: &[MemberInfo]) {
        if members.is_empty() {
            return;
        }
        let mut next: Vec<NodeState> = members
            .iter()
            .map(|m| {
                let old = self.nodes.iter().find(|n| n.id == m.id);
                NodeState {
                    id: m.id,
                    address: m.address.clone(),
                    zone: m.zone.clone(),
                    outstanding: old.map_or(0, |n| n.outstanding),
                    health: match old {
                        // A new address is a new chance.
                        Some(n) if n.address == m.address => n.health,
                        _ => Health::Up,
                    },
                    completed: old.map_or(0, |n| n.completed),
                    failed: old.map_or(0, |n| n.failed),
                }
            })
            .collect();
        next.sort_by_key(|n| n.id);
        next.dedup_by_key(|n| n.id);
        self.nodes = next;
    }

    /// Records the leader a node reported.
    pub(crate) fn set_leader(&mut self, leader: Option<NodeId>) {
        self.leader = leader;
    }

    /// The leader last reported.
    pub(crate) fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// Ids and addresses of every known node.
    pub(crate) fn addresses(&self) -> Vec<(NodeId, String)> {
        self.nodes
            .iter()
            .map(|n| (n.id, n.address.clone()))
            .collect()
    }

    /// Every known node, in id order.
    pub(crate) fn snapshot(&self, now: Instant) -> Vec<KnownNode> {
        self.nodes
            .iter()
            .map(|n| KnownNode {
                id: n.id,
                address: n.address.clone(),
                zone: n.zone.clone(),
                up: Self::is_up(n.health, now),
                in_flight: n.outstanding,
            })
            .collect()
    }

    /// Every known node's counters, in id order.
    pub(crate) fn stats(&self, now: Instant) -> Vec<NodeStats> {
        self.nodes
            .iter()
            .map(|n| NodeStats {
                id: n.id,
                address: n.address.clone(),
                zone: n.zone.clone(),
                up: Self::is_up(n.health, now),
                in_flight: n.outstanding,
                completed: n.completed,
                failed: n.failed,
                down_until: match n.health {
                    Health::Down { until, .. } if now < until => Some(until),
                    _ => None,
                },
            })
            .collect()
    }

    fn is_up(health: Health, now: Instant) -> bool {
        match health {
            Health::Up => true,
            Health::Down { until, .. } => now >= until,
            Health::Probing { .. } | Health::Suspect => false,
        }
    }

    fn eligible(n: &NodeState, now: Instant, tried: &[NodeId]) -> bool {
        !tried.contains(&n.id) && Self::is_up(n.health, now)
    }

    /// Chooses the node for the next attempt of a call that has already
    /// tried `tried`, preferring `prefer` (the leader, for writes) when it
    /// is up. Counts the attempt as outstanding on the node chosen; the
    /// caller reports its end with [`Balancer::finish`]. `None` when every
    /// node has been tried.
    pub(crate) fn pick<R: Rng + ?Sized>(
        &mut self,
        now: Instant,
        tried: &[NodeId],
        prefer: Option<NodeId>,
        rng: &mut R,
    ) -> Option<Pick> {
        self.pick_in(now, tried, prefer, true, rng)
    }

    /// As [`Balancer::pick`], from every zone alike: for a connect made
    /// alongside a slow one, since a node of the caller's zone that is slow
    /// to answer a handshake often means the whole zone is cut off.
    pub(crate) fn pick_anywhere<R: Rng + ?Sized>(
        &mut self,
        now: Instant,
        tried: &[NodeId],
        prefer: Option<NodeId>,
        rng: &mut R,
    ) -> Option<Pick> {
        self.pick_in(now, tried, prefer, false, rng)
    }

    fn pick_in<R: Rng + ?Sized>(
        &mut self,
        now: Instant,
        tried: &[NodeId],
        prefer: Option<NodeId>,
        zone_first: bool,
        rng: &mut R,
    ) -> Option<Pick> {
        let index = self.choose(now, tried, prefer, zone_first, rng)?;
        let node = self.nodes.get_mut(index)?;
        node.outstanding += 1;
        if let Health::Down { until, backoff } = node.health {
            if now >= until {
                node.health = Health::Probing { backoff };
            }
        }
        Some(Pick {
            id: node.id,
            address: node.address.clone(),
        })
    }

    fn choose<R: Rng + ?Sized>(
        &self,
        now: Instant,
        tried: &[NodeId],
        prefer: Option<NodeId>,
        zone_first: bool,
        rng: &mut R,
    ) -> Option<usize> {
        if let Some(p) = prefer {
            if let Some(i) = self
                .nodes
                .iter()
                .position(|n| n.id == p && Self::eligible(n, now, tried))
            {
                return Some(i);
            }
        }
        let eligible: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| Self::eligible(&self.nodes[i], now, tried))
            .collect();
        let local: Vec<usize> = match self.zone.as_ref().filter(|_| zone_first) {
            Some(zone) => eligible
                .iter()
                .copied()
                .filter(|&i| self.nodes[i].zone == *zone)
                .collect(),
            None => Vec::new(),
        };
        let candidates = if local.is_empty() { eligible } else { local };
        match candidates.len() {
            0 => self.fallback(now, tried),
            1 => candidates.first().copied(),
            len => {
                // Two distinct candidates at random; the less loaded wins.
                let a = rng.gen_range(0..len);
                let mut b = rng.gen_range(0..len - 1);
                if b >= a {
                    b += 1;
                }
                let (a, b) = (candidates[a], candidates[b]);
                if self.nodes[b].outstanding < self.nodes[a].outstanding {
                    Some(b)
                } else {
                    Some(a)
                }
            }
        }
    }

    /// No node that is up remains untried: the untried node whose backoff
    /// ends first.
    fn fallback(&self, now: Instant, tried: &[NodeId]) -> Option<usize> {
        (0..self.nodes.len())
            .filter(|&i| !tried.contains(&self.nodes[i].id))
            .min_by_key(|&i| match self.nodes[i].health {
                Health::Down { until, .. } => until,
                Health::Up | Health::Probing { .. } | Health::Suspect => now,
            })
    }

    /// Passes over node `id`, which is up, until the handshake with it
    /// under way ends: it has taken longer than another node's whole
    /// handshake ([`crate::client`]'s hedged connect). That handshake's
    /// attempt then ends with [`Outcome::Reached`] (up again),
    /// [`Outcome::Failed`] (down) or [`Outcome::Abandoned`] (probed next).
    pub(crate) fn suspect(&mut self, id: NodeId) {
        if let Some(node) = self.nodes.iter_mut().find(|n| n.id == id) {
            if node.health == Health::Up {
                node.health = Health::Suspect;
            }
        }
    }

    /// Ends an attempt on `id` that [`Balancer::pick`] started.
    pub(crate) fn finish(&mut self, id: NodeId, outcome: Outcome, now: Instant) {
        let Some(node) = self.nodes.iter_mut().find(|n| n.id == id) else {
            // Removed from the membership while the attempt ran.
            return;
        };
        node.outstanding = node.outstanding.saturating_sub(1);
        match outcome {
            Outcome::Answered => node.completed = node.completed.saturating_add(1),
            Outcome::Failed => node.failed = node.failed.saturating_add(1),
            Outcome::Abandoned | Outcome::Reached => {}
        }
        node.health = match (outcome, node.health) {
            (Outcome::Answered, _) | (Outcome::Reached, Health::Suspect) => Health::Up,
            // A handshake proves the node reachable, not serving: it
            // overrides no failure another attempt saw, and a probe it
            // ended lets the next attempt probe.
            (Outcome::Reached, Health::Probing { backoff }) => Health::Down {
                until: now,
                backoff,
            },
            (Outcome::Reached, h) => h,
            (Outcome::Failed, Health::Up | Health::Suspect) => Health::Down {
                until: now + INITIAL_BACKOFF,
                backoff: INITIAL_BACKOFF,
            },
            // Many attempts in flight when a node dies all fail: one
            // failure episode, one backoff step.
            (Outcome::Failed, h @ Health::Down { until, .. }) if now < until => h,
            (Outcome::Failed, Health::Down { backoff, .. } | Health::Probing { backoff }) => {
                let backoff = (backoff * 2).min(MAX_BACKOFF);
                Health::Down {
                    until: now + backoff,
                    backoff,
                }
            }
            // A cancelled probe proves nothing: let the next attempt probe.
            (Outcome::Abandoned, Health::Probing { backoff }) => Health::Down {
                until: now,
                backoff,
            },
            (Outcome::Abandoned, Health::Suspect) => Health::Down {
                until: now,
                backoff: INITIAL_BACKOFF,
            },
            (Outcome::Abandoned, h) => h,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn balancer(zones: &[&str], zone: Option<&str>) -> Balancer {
        Balancer::new(
            zones.iter().enumerate().map(|(i, z)| {
                (
                    NodeId(i as u64 + 1),
                    format!("10.0.0.{}:4000", i + 1),
                    z.to_string(),
                )
            }),
            zone.map(str::to_string),
        )
    }

    fn pick(b: &mut Balancer, now: Instant, tried: &[NodeId], rng: &mut StdRng) -> NodeId {
        b.pick(now, tried, None, rng).expect("a node").id
    }

    #[test]
    fn nodes_in_the_callers_zone_are_preferred_while_any_is_up() {
        let mut rng = StdRng::seed_from_u64(1);
        let now = Instant::now();
        let mut b = balancer(&["a", "b", "b", "a"], Some("b"));
        for _ in 0..200 {
            let id = pick(&mut b, now, &[], &mut rng);
            assert!(id == NodeId(2) || id == NodeId(3), "picked {id}");
            b.finish(id, Outcome::Answered, now);
        }
        // Both local nodes fail: the other zone serves.
        for id in [NodeId(2), NodeId(3)] {
            let _ = b.pick(now, &[], Some(id), &mut rng);
            b.finish(id, Outcome::Failed, now);
        }
        for _ in 0..50 {
            let id = pick(&mut b, now, &[], &mut rng);
            assert!(id == NodeId(1) || id == NodeId(4), "picked {id}");
            b.finish(id, Outcome::Answered, now);
        }
    }

    #[test]
    fn a_pick_anywhere_leaves_the_zone_and_a_suspect_waits_for_its_handshake() {
        let mut rng = StdRng::seed_from_u64(3);
        let now = Instant::now();
        let mut b = balancer(&["a", "b", "b", "a"], Some("b"));
        let mut zones = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let id = b
                .pick_anywhere(now, &[], None, &mut rng)
                .expect("a node")
                .id;
            zones.insert(if id == NodeId(1) || id == NodeId(4) {
                "a"
            } else {
                "b"
            });
            b.finish(id, Outcome::Abandoned, now);
        }
        assert_eq!(zones.len(), 2, "both zones are picked");
        // Suspects are passed over until their handshake ends, however
        // long it takes...
        let _ = b.pick(now, &[], Some(NodeId(2)), &mut rng);
        b.suspect(NodeId(2));
        for s in 0..50 {
            let later = now + Duration::from_secs(s);
            assert_eq!(pick(&mut b, later, &[], &mut rng), NodeId(3));
            b.finish(NodeId(3), Outcome::Answered, later);
        }
        // ...and it ends well.
        b.finish(NodeId(2), Outcome::Reached, now);
        let seen: std::collections::BTreeSet<NodeId> = (0..50)
            .map(|_| {
                let id = pick(&mut b, now, &[], &mut rng);
                b.finish(id, Outcome::Answered, now);
                id
            })
            .collect();
        assert!(seen.contains(&NodeId(2)), "{seen:?}");
        // A node already down is not made a suspect, and a handshake
        // overrides no failure another attempt saw.
        let three_up = |b: &Balancer| {
            b.snapshot(now)
                .into_iter()
                .find(|n| n.id == NodeId(3))
                .map(|n| n.up)
        };
        let _ = b.pick(now, &[], Some(NodeId(3)), &mut rng);
        let _ = b.pick(now, &[], Some(NodeId(3)), &mut rng);
        b.finish(NodeId(3), Outcome::Failed, now);
        assert_eq!(three_up(&b), Some(false));
        b.suspect(NodeId(3));
        b.finish(NodeId(3), Outcome::Reached, now);
        assert_eq!(three_up(&b), Some(false));
        // A suspect whose handshake was cancelled is probed next.
        let _ = b.pick(now, &[], Some(NodeId(2)), &mut rng);
        b.suspect(NodeId(2));
        b.finish(NodeId(2), Outcome::Abandoned, now);
        let two = b
            .snapshot(now)
            .into_iter()
            .find(|n| n.id == NodeId(2))
            .expect("node 2");
        assert!(two.up, "{two:?}");
    }

    #[test]
    fn two_choices_never_picks_the_most_loaded_node() {
        let now = Instant::now();
        for seed in 0..100 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut b = balancer(&["z", "z", "z"], None);
            // Load node 1 with 5 requests, node 2 with 1.
            for (id, n) in [(NodeId(1), 5), (NodeId(2), 1)] {
                for _ in 0..n {
                    let got = b.pick(now, &[], Some(id), &mut rng).expect("a node");
                    assert_eq!(got.id, id);
                }
            }
            let id = pick(&mut b, now, &[], &mut rng);
            assert_ne!(id, NodeId(1), "seed {seed}: picked the most loaded node");
        }
        // With two nodes both are always compared: the idle one wins.
        let mut rng = StdRng::seed_from_u64(7);
        let mut b = balancer(&["z", "z"], None);
        let _ = b.pick(now, &[], Some(NodeId(2)), &mut rng);
        for _ in 0..50 {
            assert_eq!(pick(&mut b, now, &[], &mut rng), NodeId(1));
            b.finish(NodeId(1), Outcome::Answered, now);
        }
    }

    #[test]
    fn load_spreads_over_every_node() {
        let mut rng = StdRng::seed_from_u64(3);
        let now = Instant::now();
        let mut b = balancer(&["z", "z", "z", "z"], None);
        let mut counts = [0usize; 4];
        for _ in 0..400 {
            let id = pick(&mut b, now, &[], &mut rng);
            counts[id.0 as usize - 1] += 1;
        }
        // Nothing finished: two choices keeps the outstanding counts level.
        assert!(
            counts.iter().all(|&c| (90..=110).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn down_nodes_are_skipped_until_their_backoff_ends_then_probed_once() {
        let mut rng = StdRng::seed_from_u64(5);
        let t0 = Instant::now();
        let mut b = balancer(&["z", "z"], None);
        let _ = b.pick(t0, &[], Some(NodeId(1)), &mut rng);
        b.finish(NodeId(1), Outcome::Failed, t0);
        for _ in 0..50 {
            assert_eq!(pick(&mut b, t0, &[], &mut rng), NodeId(2));
            b.finish(NodeId(2), Outcome::Answered, t0);
        }
        assert!(!b.snapshot(t0)[0].up);
        // Backoff over: node 1 is chosen again, by one attempt at a time.
        let t1 = t0 + INITIAL_BACKOFF;
        assert!(b.snapshot(t1)[0].up);
        let _ = b.pick(t1, &[], Some(NodeId(2)), &mut rng);
        let _ = b.pick(t1, &[], Some(NodeId(2)), &mut rng);
        assert_eq!(pick(&mut b, t1, &[], &mut rng), NodeId(1));
        assert_eq!(pick(&mut b, t1, &[], &mut rng), NodeId(2));
        // The probe fails: the backoff doubles.
        b.finish(NodeId(1), Outcome::Failed, t1);
        let t2 = t1 + INITIAL_BACKOFF;
        assert!(!b.snapshot(t2)[0].up);
        assert!(b.snapshot(t1 + 2 * INITIAL_BACKOFF)[0].up);
        // A successful probe brings it back for good.
        let t3 = t1 + 2 * INITIAL_BACKOFF;
        let p = b.pick(t3, &[], Some(NodeId(1)), &mut rng).expect("a node");
        assert_eq!(p.id, NodeId(1));
        b.finish(NodeId(1), Outcome::Answered, t3);
        assert!(b.snapshot(t3)[0].up);
    }

    #[test]
    fn backoff_doubles_per_failure_episode_up_to_the_cap() {
        let mut rng = StdRng::seed_from_u64(9);
        let mut now = Instant::now();
        let mut b = balancer(&["z"], None);
        let mut expected = INITIAL_BACKOFF;
        for _ in 0..8 {
            // Many attempts in flight fail together: one step.
            for _ in 0..3 {
                let _ = b.pick(now, &[], None, &mut rng);
            }
            for _ in 0..3 {
                b.finish(NodeId(1), Outcome::Failed, now);
            }
            assert!(!b.snapshot(now + expected - Duration::from_millis(1))[0].up);
            assert!(b.snapshot(now + expected)[0].up);
            now += expected;
            expected = (expected * 2).min(MAX_BACKOFF);
        }
        assert_eq!(expected, MAX_BACKOFF);
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_attempt_probe() {
        let mut rng = StdRng::seed_from_u64(11);
        let t0 = Instant::now();
        let mut b = balancer(&["z"], None);
        let _ = b.pick(t0, &[], None, &mut rng);
        b.finish(NodeId(1), Outcome::Failed, t0);
        let t1 = t0 + INITIAL_BACKOFF;
        let _ = b.pick(t1, &[], None, &mut rng);
        b.finish(NodeId(1), Outcome::Abandoned, t1);
        assert!(b.snapshot(t1)[0].up);
        assert_eq!(b.snapshot(t1)[0].in_flight, 0);
    }

    #[test]
    fn when_every_untried_node_is_down_the_soonest_back_is_tried() {
        let mut rng = StdRng::seed_from_u64(13);
        let t0 = Instant::now();
        let mut b = balancer(&["z", "z", "z"], None);
        let t1 = t0 + Duration::from_millis(500);
        for (id, at) in [(NodeId(2), t0), (NodeId(1), t1)] {
            let _ = b.pick(at, &[], Some(id), &mut rng);
            b.finish(id, Outcome::Failed, at);
        }
        // Node 3 is up but tried already; node 2's backoff ends first.
        let t0 = t1;
        assert_eq!(pick(&mut b, t0, &[NodeId(3)], &mut rng), NodeId(2));
        assert_eq!(
            pick(&mut b, t0, &[NodeId(3), NodeId(2)], &mut rng),
            NodeId(1)
        );
        assert!(b
            .pick(t0, &[NodeId(1), NodeId(2), NodeId(3)], None, &mut rng)
            .is_none());
    }

    #[test]
    fn writes_prefer_the_leader_while_it_is_up() {
        let mut rng = StdRng::seed_from_u64(17);
        let now = Instant::now();
        let mut b = balancer(&["a", "b", "c"], Some("a"));
        b.set_leader(Some(NodeId(3)));
        let leader = b.leader();
        assert_eq!(b.pick(now, &[], leader, &mut rng).map(|p| p.id), leader);
        b.finish(NodeId(3), Outcome::Failed, now);
        // Leader down: the local node.
        assert_eq!(
            b.pick(now, &[], leader, &mut rng).map(|p| p.id),
            Some(NodeId(1))
        );
    }

    #[test]
    fn stats_count_each_nodes_answers_and_failures_per_attempt() {
        let mut rng = StdRng::seed_from_u64(23);
        let t0 = Instant::now();
        let mut b = balancer(&["a", "b"], None);
        for _ in 0..3 {
            let _ = b.pick(t0, &[], Some(NodeId(1)), &mut rng);
            b.finish(NodeId(1), Outcome::Answered, t0);
        }
        // Of three attempts on node 2, one is abandoned, one fails and one
        // is still in flight.
        for _ in 0..3 {
            let _ = b.pick(t0, &[], Some(NodeId(2)), &mut rng);
        }
        b.finish(NodeId(2), Outcome::Abandoned, t0);
        b.finish(NodeId(2), Outcome::Failed, t0);
        let s = b.stats(t0);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].id, s[0].zone.as_str()), (NodeId(1), "a"));
        assert_eq!((s[0].completed, s[0].failed, s[0].in_flight), (3, 0, 0));
        assert!(s[0].up && s[0].down_until.is_none());
        assert_eq!((s[1].completed, s[1].failed, s[1].in_flight), (0, 1, 1));
        assert!(!s[1].up);
        assert_eq!(s[1].down_until, Some(t0 + INITIAL_BACKOFF));
        // Backoff over: up again, no longer set aside.
        let t1 = t0 + INITIAL_BACKOFF;
        let s = b.stats(t1);
        assert!(s[1].up && s[1].down_until.is_none());
        // The counters survive a member refresh.
        let member = |id: u64| MemberInfo {
            id: NodeId(id),
            address: format!("10.0.0.{id}:4000"),
            zone: "c".into(),
            voter: true,
            transport_key: [0; 32],
        };
        b.set_members(&[member(1), member(2), member(3)]);
        let s = b.stats(t1);
        assert_eq!(
            s.iter()
                .map(|n| (n.id.0, n.completed, n.failed))
                .collect::<Vec<_>>(),
            vec![(1, 3, 0), (2, 0, 1), (3, 0, 0)]
        );
    }

    #[test]
    fn membership_changes_keep_the_state_of_nodes_that_stay() {
        let mut rng = StdRng::seed_from_u64(19);
        let now = Instant::now();
        let mut b = balancer(&["z", "z"], None);
        let _ = b.pick(now, &[], Some(NodeId(1)), &mut rng);
        b.finish(NodeId(1), Outcome::Failed, now);
        let _ = b.pick(now, &[], Some(NodeId(2)), &mut rng);
        let member = |id: u64, zone: &str| MemberInfo {
            id: NodeId(id),
            address: format!("10.0.0.{id}:4000"),
            zone: zone.into(),
            voter: true,
            transport_key: [0; 32],
        };
        b.set_members(&[member(1, "z"), member(2, "y"), member(5, "z")]);
        let s = b.snapshot(now);
        assert_eq!(s.iter().map(|n| n.id.0).collect::<Vec<_>>(), vec![1, 2, 5]);
        assert!(!s[0].up);
        assert_eq!((s[1].in_flight, s[1].zone.as_str()), (1, "y"));
        assert!(s[2].up);
        b.set_members(&[]);
        assert_eq!(b.snapshot(now).len(), 3);
        // An attempt on a node removed meanwhile ends quietly.
        b.set_members(&[member(5, "z")]);
        b.finish(NodeId(2), Outcome::Answered, now);
        assert_eq!(
            b.addresses(),
            vec![(NodeId(5), "10.0.0.5:4000".to_string())]
        );
    }
}
