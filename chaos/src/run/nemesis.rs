//! The nemesis: which faults a run makes, when, and for how long, all
//! decided from the seed before the run starts (so a seed replays the same
//! schedule). Pure: the runner carries the steps out.
//!
//! One fault at a time: a quiet spell, a fault, its healing (and the
//! runner's wait for the cluster to serve again); until the run's duration
//! is over. Targets named [`Target::Leader`] are resolved when the step
//! starts (the leader then).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// A kind of fault `--faults` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// SIGKILL a node, restart it when the step ends.
    Kill,
    /// SIGSTOP a node, SIGCONT it when the step ends (a paused leader
    /// wakes up believing it leads).
    Pause,
    /// Cut one node off from every other host.
    Isolate,
    /// Split the nodes into a minority and a majority.
    Partition,
    /// Drop one node's packets to another, one way only.
    OneWay,
    /// Two sides that cannot reach each other, and one node that reaches
    /// both.
    Bridge,
    /// SIGKILL a majority of the nodes at once, restart them at the end.
    KillMajority,
    /// Cut every node of one zone off from every other host.
    Zone,
    /// Drop a share of the packets to and from some nodes, at random.
    Loss,
    /// Restart a node with its wall clock off by minutes (faketime); the
    /// end restarts it with the right time.
    Clock,
    /// Fill a node's data disk (a tmpfs of its own); the end frees it and
    /// restarts the node if it stopped.
    DiskFull,
    /// Remove a running member from the cluster and wipe its disk; the end
    /// adds a fresh member (a new id and identity) on the same host.
    Replace,
    /// SIGKILL a node and lose its disk; the end removes the dead member
    /// and adds a fresh one on the same host, as an operator would.
    Wipe,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 13] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Isolate,
        FaultKind::Partition,
        FaultKind::OneWay,
        FaultKind::Bridge,
        FaultKind::KillMajority,
        FaultKind::Zone,
        FaultKind::Loss,
        FaultKind::Clock,
        FaultKind::DiskFull,
        FaultKind::Replace,
        FaultKind::Wipe,
    ];

    fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Isolate => "isolate",
            FaultKind::Partition => "partition",
            FaultKind::OneWay => "one-way",
            FaultKind::Bridge => "bridge",
            FaultKind::KillMajority => "kill-majority",
            FaultKind::Zone => "zone",
            FaultKind::Loss => "loss",
            FaultKind::Clock => "clock",
            FaultKind::DiskFull => "disk-full",
            FaultKind::Replace => "replace",
            FaultKind::Wipe => "wipe",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = FaultKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown fault {s:?}; known: {}", names.join(", "))
            })
    }
}

/// A node a fault acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Whichever node leads when the step starts.
    Leader,
    /// Node `n`.
    Node(u64),
}

/// One fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "kebab-case")]
pub enum Fault {
    /// SIGKILL, restart at the end.
    Kill {
        /// Which node.
        target: Target,
    },
    /// SIGSTOP, SIGCONT at the end.
    Pause {
        /// Which node.
        target: Target,
    },
    /// Cut off from every other host (nodes and clients).
    Isolate {
        /// Which node.
        target: Target,
    },
    /// These nodes (a minority) cut off from the other nodes; clients reach
    /// both sides.
    Partition {
        /// The minority.
        minority: Vec<u64>,
    },
    /// `from`'s packets to `to` dropped.
    OneWay {
        /// Sender.
        from: u64,
        /// Receiver.
        to: u64,
    },
    /// `a` and `b` cannot reach each other; `bridge` reaches both.
    Bridge {
        /// The node in the middle.
        bridge: u64,
        /// One side.
        a: Vec<u64>,
        /// The other side.
        b: Vec<u64>,
    },
    /// SIGKILL all of these (a majority), restart them at the end.
    KillMajority {
        /// Which nodes.
        nodes: Vec<u64>,
    },
    /// The nodes of zone `zone` cut off from every other host (nodes and
    /// clients).
    Zone {
        /// The zone (1-based).
        zone: u64,
        /// Its nodes.
        nodes: Vec<u64>,
    },
    /// `percent` of the packets each of `nodes` sends or receives dropped,
    /// at random.
    Loss {
        /// Which nodes.
        nodes: Vec<u64>,
        /// The share dropped, 1-99.
        percent: u8,
    },
    /// Restarted with a wall clock `offset_s` seconds off (monotonic time
    /// untouched, as on a host whose clock was set wrong).
    Clock {
        /// Which node.
        target: Target,
        /// Seconds ahead (negative: behind).
        offset_s: i64,
    },
    /// The node's data disk filled up.
    DiskFull {
        /// Which node.
        target: Target,
    },
    /// The member in slot `slot` removed, its disk wiped; a fresh member
    /// added in its place at the end.
    Replace {
        /// Which slot (host).
        slot: u64,
    },
    /// The node in slot `slot` killed and its disk lost; at the end the
    /// dead member removed and a fresh one added in its place.
    Wipe {
        /// Which slot (host).
        slot: u64,
    },
}

impl Fault {
    /// Its kind.
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::Kill { .. } => FaultKind::Kill,
            Fault::Pause { .. } => FaultKind::Pause,
            Fault::Isolate { .. } => FaultKind::Isolate,
            Fault::Partition { .. } => FaultKind::Partition,
            Fault::OneWay { .. } => FaultKind::OneWay,
            Fault::Bridge { .. } => FaultKind::Bridge,
            Fault::KillMajority { .. } => FaultKind::KillMajority,
            Fault::Zone { .. } => FaultKind::Zone,
            Fault::Loss { .. } => FaultKind::Loss,
            Fault::Clock { .. } => FaultKind::Clock,
            Fault::DiskFull { .. } => FaultKind::DiskFull,
            Fault::Replace { .. } => FaultKind::Replace,
            Fault::Wipe { .. } => FaultKind::Wipe,
        }
    }
}

/// A step of the schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// When the fault starts, ms after the run started.
    pub at_ms: u64,
    /// How long it lasts, ms.
    pub lasts_ms: u64,
    /// What it is.
    #[serde(flatten)]
    pub fault: Fault,
}

/// The zone of node `i` when `zones` zones hold the nodes in turn.
pub fn zone_of(i: u64, zones: u64) -> u64 {
    (i - 1) % zones.max(1) + 1
}

/// What a schedule is made for. Nodes are named by slot (host) `1..=nodes`;
/// a slot keeps its host and zone when its member is replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Slots.
    pub nodes: u64,
    /// Zones, holding the slots in turn ([`zone_of`]).
    pub zones: u64,
    /// Slots whose member must stay (clients are pinned to it):
    /// membership faults leave them alone.
    pub pinned: Vec<u64>,
}

/// The schedule for `nodes` nodes (ids 1..=nodes, in `zones` zones in turn)
/// over `duration`, using only `kinds`: quiet spells of 0.5-1.5 s and faults
/// of 1-3 s, one at a time, every fault healed before the duration ends.
/// The times are planned ones: the runner starts a step no earlier than
/// planned and not before the cluster serves again after the last one.
/// The kinds come in rounds, each round every kind once in a shuffled
/// order, so a run long enough for as many faults as kinds makes every
/// kind. Empty without kinds.
pub fn schedule(
    seed: u64,
    duration: Duration,
    topology: &Topology,
    kinds: &[FaultKind],
) -> Vec<Step> {
    let Topology {
        nodes,
        zones,
        ref pinned,
    } = *topology;
    let mut rng = StdRng::seed_from_u64(seed);
    let end = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    let ids: Vec<u64> = (1..=nodes).collect();
    let mut steps = Vec::new();
    if kinds.is_empty() || nodes == 0 {
        return steps;
    }
    let mut round: Vec<FaultKind> = Vec::new();
    let mut t = 0u64;
    loop {
        t += rng.gen_range(500..=1_500);
        let lasts_ms = rng.gen_range(1_000..=3_000);
        if t + lasts_ms > end {
            break;
        }
        if round.is_empty() {
            round = kinds.to_vec();
            round.shuffle(&mut rng);
        }
        let Some(kind) = round.pop() else {
            break;
        };
        let target = |rng: &mut StdRng| {
            if rng.gen_bool(0.5) {
                Target::Leader
            } else {
                Target::Node(ids[rng.gen_range(0..ids.len())])
            }
        };
        let mut shuffled = ids.clone();
        shuffled.shuffle(&mut rng);
        let fault = match kind {
            FaultKind::Kill => Fault::Kill {
                target: target(&mut rng),
            },
            FaultKind::Pause => Fault::Pause {
                target: target(&mut rng),
            },
            FaultKind::Isolate => Fault::Isolate {
                target: target(&mut rng),
            },
            FaultKind::Partition if nodes >= 3 => {
                let minority = usize::try_from((nodes - 1) / 2).unwrap_or(1).max(1);
                let mut minority: Vec<u64> = shuffled[..minority].to_vec();
                minority.sort_unstable();
                Fault::Partition { minority }
            }
            FaultKind::OneWay | FaultKind::Partition if nodes >= 2 => Fault::OneWay {
                from: shuffled[0],
                to: shuffled[1],
            },
            FaultKind::Bridge if nodes >= 3 => {
                let bridge = shuffled[0];
                let rest = &shuffled[1..];
                let half = rest.len() / 2;
                let (mut a, mut b) = (rest[..half].to_vec(), rest[half..].to_vec());
                a.sort_unstable();
                b.sort_unstable();
                Fault::Bridge { bridge, a, b }
            }
            FaultKind::KillMajority => {
                let majority = usize::try_from(nodes / 2 + 1).unwrap_or(1);
                let mut chosen: Vec<u64> = shuffled[..majority].to_vec();
                chosen.sort_unstable();
                Fault::KillMajority { nodes: chosen }
            }
            FaultKind::Zone => {
                let zone = rng.gen_range(1..=zones.clamp(1, nodes));
                let in_zone = ids.iter().copied().filter(|&i| zone_of(i, zones) == zone);
                Fault::Zone {
                    zone,
                    nodes: in_zone.collect(),
                }
            }
            FaultKind::Loss => {
                // One node losing much, or every node losing some.
                if rng.gen_bool(0.5) {
                    Fault::Loss {
                        nodes: vec![shuffled[0]],
                        percent: rng.gen_range(30..=70),
                    }
                } else {
                    Fault::Loss {
                        nodes: ids.clone(),
                        percent: rng.gen_range(5..=25),
                    }
                }
            }
            FaultKind::Clock => {
                // Off by one to sixty minutes, either way.
                let minutes = rng.gen_range(1..=60);
                let sign = if rng.gen_bool(0.5) { 1 } else { -1 };
                Fault::Clock {
                    target: target(&mut rng),
                    offset_s: sign * minutes * 60,
                }
            }
            FaultKind::DiskFull => Fault::DiskFull {
                target: target(&mut rng),
            },
            FaultKind::Replace | FaultKind::Wipe
                if shuffled.iter().any(|s| !pinned.contains(s)) && nodes >= 3 =>
            {
                let slot = shuffled
                    .iter()
                    .copied()
                    .find(|s| !pinned.contains(s))
                    .unwrap_or(nodes);
                if kind == FaultKind::Replace {
                    Fault::Replace { slot }
                } else {
                    Fault::Wipe { slot }
                }
            }
            _ => Fault::Kill {
                target: target(&mut rng),
            },
        };
        steps.push(Step {
            at_ms: t,
            lasts_ms,
            fault,
        });
        t += lasts_ms;
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo(nodes: u64) -> Topology {
        Topology {
            nodes,
            zones: 3,
            pinned: vec![1, 2],
        }
    }

    #[test]
    fn a_seed_replays_the_same_schedule_and_another_seed_does_not() {
        let d = Duration::from_secs(120);
        let a = schedule(7, d, &topo(5), &FaultKind::ALL);
        assert_eq!(a, schedule(7, d, &topo(5), &FaultKind::ALL));
        assert_ne!(a, schedule(8, d, &topo(5), &FaultKind::ALL));
    }

    #[test]
    fn faults_come_one_at_a_time_and_end_within_the_run() {
        let d = Duration::from_secs(300);
        for seed in 0..50 {
            let steps = schedule(seed, d, &topo(5), &FaultKind::ALL);
            assert!(!steps.is_empty());
            let mut free_from = 0;
            for s in &steps {
                assert!(s.at_ms >= free_from + 500, "{steps:?}");
                free_from = s.at_ms + s.lasts_ms;
                assert!(free_from <= 300_000);
            }
        }
    }

    #[test]
    fn only_the_kinds_asked_for_and_valid_sides() {
        let steps = schedule(
            3,
            Duration::from_secs(600),
            &topo(5),
            &[FaultKind::Partition],
        );
        assert!(!steps.is_empty());
        for s in steps {
            let Fault::Partition { minority } = s.fault else {
                panic!("{s:?}");
            };
            assert_eq!(minority.len(), 2);
            assert!(minority.iter().all(|n| (1..=5).contains(n)));
        }
        let steps = schedule(3, Duration::from_secs(600), &topo(5), &[FaultKind::Bridge]);
        for s in steps {
            let Fault::Bridge { bridge, a, b } = s.fault else {
                panic!("{s:?}");
            };
            assert!(!a.is_empty() && !b.is_empty());
            assert!(!a.contains(&bridge) && !b.contains(&bridge));
            assert!(a.iter().all(|n| !b.contains(n)));
        }
        assert!(schedule(1, Duration::from_secs(60), &topo(3), &[]).is_empty());
    }

    #[test]
    fn every_kind_comes_once_there_is_room_for_as_many_faults() {
        for seed in 0..20 {
            let steps = schedule(seed, Duration::from_secs(60), &topo(5), &FaultKind::ALL);
            assert!(steps.len() >= FaultKind::ALL.len(), "{steps:?}");
            let kinds: std::collections::BTreeSet<FaultKind> = steps
                .iter()
                .take(FaultKind::ALL.len())
                .map(|s| s.fault.kind())
                .collect();
            assert_eq!(kinds.len(), FaultKind::ALL.len(), "seed {seed}: {kinds:?}");
        }
    }

    #[test]
    fn majorities_zones_losses_and_clocks_are_what_they_say() {
        for seed in 0..20 {
            for s in schedule(seed, Duration::from_secs(600), &topo(5), &FaultKind::ALL) {
                match s.fault {
                    Fault::KillMajority { nodes } => {
                        assert_eq!(nodes.len(), 3);
                        assert!(nodes.windows(2).all(|w| w[0] < w[1]));
                    }
                    Fault::Zone { zone, nodes } => {
                        assert!((1..=3).contains(&zone));
                        assert!(!nodes.is_empty());
                        assert!(nodes.iter().all(|&i| zone_of(i, 3) == zone));
                        // Zone 1 of five nodes in three zones: nodes 1 and 4.
                        if zone == 1 {
                            assert_eq!(nodes, vec![1, 4]);
                        }
                    }
                    Fault::Loss { nodes, percent } => {
                        assert!(!nodes.is_empty());
                        assert!((1..=99).contains(&percent));
                    }
                    Fault::Clock { offset_s, .. } => {
                        assert!(offset_s != 0 && offset_s.abs() <= 3_600);
                    }
                    Fault::Replace { slot } | Fault::Wipe { slot } => {
                        assert!((3..=5).contains(&slot), "a pinned slot: {slot}");
                    }
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn fault_names_parse_back() {
        for k in FaultKind::ALL {
            assert_eq!(k.to_string().parse::<FaultKind>(), Ok(k));
        }
        assert!("flood".parse::<FaultKind>().is_err());
    }
}
