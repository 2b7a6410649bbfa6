//! Carrying out the nemesis's steps on the run's hosts and processes
//! ([`apply`]), and undoing them ([`heal`]).

use anyhow::{Context, Result};
use serde::Serialize;

use super::disk::Disks;
use super::nemesis::{Fault, Step, Target};
use super::net::Net;
use super::nodes::Nodes;

/// What a step did, to undo it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Applied {
    /// These nodes (ids) killed.
    Killed(Vec<u64>),
    Paused(u64),
    Cut,
    /// Restarted with its clock off.
    Clock(u64),
    /// Its disk filled with this many bytes.
    DiskFull {
        node: u64,
        bytes: u64,
    },
    /// Removed from the cluster (`removed`: the removal was acknowledged
    /// already) and its disk wiped.
    Gone {
        node: u64,
        removed: bool,
    },
}

/// Slot of the node `target` names (the leader's, resolved now).
fn resolve(
    nodes: &Nodes,
    target: Target,
    probe: &dyn Fn(&[&str]) -> Result<String>,
) -> Result<u64> {
    match target {
        Target::Node(slot) => Ok(slot),
        Target::Leader => {
            let leader = probe(&["leader", "--timeout-s", "10"])?;
            let id: u64 = leader
                .trim()
                .parse()
                .with_context(|| format!("no leader: {leader}"))?;
            nodes
                .slot_of(id)
                .with_context(|| format!("the leader, node {id}, is no member of the run"))
        }
    }
}

pub fn apply(
    nodes: &mut Nodes,
    net: &mut Net,
    disks: &Disks,
    step: &Step,
    probe: &dyn Fn(&[&str]) -> Result<String>,
) -> Result<Applied> {
    let n = |i: &u64| format!("n{i}");
    // Cut `inside` off from every other host.
    let cut_off = |net: &mut Net, inside: &[u64]| -> Result<()> {
        let inside: Vec<String> = inside.iter().map(n).collect();
        let others: Vec<String> = net
            .hosts()
            .iter()
            .map(|h| h.name.clone())
            .filter(|h| !inside.contains(h))
            .collect();
        net.partition(&inside, &others)
    };
    Ok(match &step.fault {
        Fault::Kill { target } => {
            let slot = resolve(nodes, *target, probe)?;
            nodes.kill(slot);
            Applied::Killed(vec![slot])
        }
        Fault::KillMajority { nodes: which } => {
            for &slot in which {
                nodes.kill(slot);
            }
            Applied::Killed(which.clone())
        }
        Fault::Pause { target } => {
            let slot = resolve(nodes, *target, probe)?;
            nodes.signal(slot, "STOP")?;
            nodes.paused.insert(slot);
            Applied::Paused(slot)
        }
        Fault::Isolate { target } => {
            let slot = resolve(nodes, *target, probe)?;
            cut_off(net, &[slot])?;
            Applied::Cut
        }
        Fault::Zone { nodes: inside, .. } => {
            cut_off(net, inside)?;
            Applied::Cut
        }
        Fault::Partition { minority } => {
            let majority: Vec<String> = (1..=nodes.slots)
                .filter(|i| !minority.contains(i))
                .map(|i| n(&i))
                .collect();
            let minority: Vec<String> = minority.iter().map(n).collect();
            net.partition(&minority, &majority)?;
            Applied::Cut
        }
        Fault::OneWay { from, to } => {
            net.cut_one_way(&n(from), &n(to))?;
            Applied::Cut
        }
        Fault::Bridge { a, b, .. } => {
            let a: Vec<String> = a.iter().map(n).collect();
            let b: Vec<String> = b.iter().map(n).collect();
            net.partition(&a, &b)?;
            Applied::Cut
        }
        Fault::Loss {
            nodes: which,
            percent,
        } => {
            for i in which {
                net.lose(&n(i), *percent)?;
            }
            Applied::Cut
        }
        Fault::Clock { target, offset_s } => {
            let slot = resolve(nodes, *target, probe)?;
            nodes.kill(slot);
            nodes.start_with_clock(net, slot, *offset_s)?;
            Applied::Clock(slot)
        }
        Fault::DiskFull { target } => {
            let slot = resolve(nodes, *target, probe)?;
            nodes.may_exit.insert(slot);
            let bytes = disks.fill(&nodes.data_dir(nodes.id(slot))?)?;
            Applied::DiskFull { node: slot, bytes }
        }
        Fault::Replace { slot } => {
            // An officer removes the member; then its host goes. A leader
            // cannot sign its own removal, and there is no leadership
            // transfer yet: the operator stops it first, so another leads.
            let id = nodes.id(*slot).to_string();
            nodes.may_exit.insert(*slot);
            let remove = ["remove-node", "--node", &id, "--timeout-s", "30"];
            if probe(&remove).is_err() {
                nodes.kill(*slot);
                probe(&remove)?;
            }
            nodes.kill(*slot);
            nodes.wipe(*slot)?;
            Applied::Gone {
                node: *slot,
                removed: true,
            }
        }
        Fault::Wipe { slot } => {
            nodes.kill(*slot);
            nodes.wipe(*slot)?;
            Applied::Gone {
                node: *slot,
                removed: false,
            }
        }
    })
}

pub fn heal(
    nodes: &mut Nodes,
    net: &mut Net,
    disks: &mut Disks,
    applied: &Applied,
    probe: &dyn Fn(&[&str]) -> Result<String>,
) -> Result<()> {
    match applied {
        Applied::Killed(which) => {
            for &slot in which {
                nodes.start(net, slot)?;
            }
            Ok(())
        }
        Applied::Paused(slot) => {
            nodes.paused.remove(slot);
            nodes.signal(*slot, "CONT")
        }
        Applied::Cut => net.heal(),
        Applied::Clock(slot) => {
            nodes.kill(*slot);
            nodes.start(net, *slot)
        }
        Applied::DiskFull { node: slot, .. } => {
            // A node that could not write stops (a supervisor would start
            // it again), perhaps only after this: the run's recovery check
            // watches it and starts it again (`supervise`).
            Disks::free(&nodes.data_dir(nodes.id(*slot))?)?;
            Ok(())
        }
        Applied::Gone {
            node: slot,
            removed,
        } => {
            // The operator's steps: remove the dead member (unless it was
            // removed first), prepare a new node on the host, have an
            // officer approve it, start it to join.
            if !removed {
                let id = nodes.id(*slot).to_string();
                probe(&["remove-node", "--node", &id, "--timeout-s", "30"])?;
            }
            let with_disk = !disks.is_empty();
            let record = nodes.prepare(*slot, disks, with_disk)?;
            let request = nodes.data_dir(record.id.0)?.join("join-request.toml");
            probe(&[
                "add-node",
                "--request",
                &request.display().to_string(),
                "--timeout-s",
                "30",
            ])?;
            nodes.joined(*slot, &record)?;
            nodes.start(net, *slot)?;
            nodes.may_exit.remove(slot);
            Ok(())
        }
    }
}
