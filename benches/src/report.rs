//! The run's results as JSON (everything) and Markdown (the tables for
//! docs/benchmarks.md): each row our figure beside the in-process limit
//! and the peers, with the ratios.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::load::Figures;
use crate::ops::Op;
use crate::peers::{PeerFigure, PeerResults};

/// One operation at one concurrency.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// The operation.
    pub op: Op,
    /// Concurrent callers.
    pub concurrency: usize,
    /// Through the SDK against the cluster.
    pub ours: Figures,
    /// The first error, when calls failed.
    pub first_error: Option<String>,
    /// The crypto library in-process on as many threads as callers (at most
    /// the machine's cores).
    pub limit: Option<Figures>,
    /// Threads the limit ran on.
    pub limit_threads: usize,
    /// Peers' figures for the same operation and parallelism.
    pub peers: Vec<PeerFigure>,
    /// CPU time the cluster's nodes spent per operation, µs (local
    /// clusters only).
    #[serde(default)]
    pub node_cpu_us: Option<f64>,
    /// CPU time the calling process (hsm-bench, the SDK) spent per
    /// operation, µs.
    #[serde(default)]
    pub client_cpu_us: Option<f64>,
}

/// The scale run: the cluster with many keys.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScaleReport {
    /// Keys in the cluster.
    pub keys: u64,
    /// Time to load them, s.
    pub load_seconds: f64,
    /// Load rate, keys/s.
    pub load_keys_per_s: f64,
    /// Resident memory of each node, MiB.
    pub node_rss_mib: Vec<f64>,
    /// Snapshot size, MiB (the sealed payload of a backup taken after
    /// loading).
    pub snapshot_mib: Option<f64>,
    /// Time to take that backup (snapshot, seal, write), s.
    pub snapshot_seconds: Option<f64>,
    /// Data directory size of one node, MiB.
    pub data_dir_mib: f64,
    /// A node stopped and started again: time until it serves a signature.
    pub restart_to_serving_s: Option<f64>,
    /// P-256 signatures at 16 callers with that many keys.
    pub sign_at_scale: Option<Figures>,
    /// The same with only the bench's keys (measured in the same run).
    pub sign_small: Option<Figures>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The command line that produced it.
    pub command: String,
    /// When it started (UTC, RFC 3339).
    pub started: String,
    /// The machine.
    pub machine: Machine,
    /// Nodes in the cluster (0: an existing cluster).
    pub nodes: u64,
    /// Seconds per measurement.
    pub seconds: u64,
    /// The rows.
    pub rows: Vec<Row>,
    /// Peers that did not run, with why.
    pub skipped: Vec<(String, String)>,
    /// The scale run, when asked for.
    pub scale: Option<ScaleReport>,
    /// Signing while writes run, when both were measured.
    #[serde(default)]
    pub mixed: Option<Mixed>,
    /// The cluster the bench started: forming, memory, a leader's loss.
    #[serde(default)]
    pub cluster: Option<ClusterFacts>,
}

/// What a cluster the bench started (on this machine) did besides the
/// operations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterFacts {
    /// From starting the node processes (configured, their first member
    /// created) until every member votes and one leads, s.
    pub formed_s: f64,
    /// Resident memory of all the nodes after the operations, MiB.
    pub nodes_rss_mib: f64,
    /// The leader killed (SIGKILL) after the operations: until a key
    /// generation is acknowledged by the others, s; `None` for a one-node
    /// cluster or when none was within a minute.
    pub write_after_leader_loss_s: Option<f64>,
    /// Which node led and was killed.
    pub killed_leader: Option<u64>,
}

/// Signing alone and while key generation (replicated writes) runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mixed {
    /// Signing callers.
    pub sign_callers: usize,
    /// Key generation callers, during the second run.
    pub keygen_callers: usize,
    /// sign-p256 alone.
    pub alone: Figures,
    /// sign-p256 while key generation runs.
    pub with_writes: Figures,
    /// Key generation meanwhile.
    pub writes: Figures,
}

/// What the figures were measured on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// Logical CPUs.
    pub cores: usize,
    /// CPU model, from /proc/cpuinfo.
    pub cpu: String,
    /// Total memory, GiB.
    pub memory_gib: f64,
    /// Build profile of hsm-bench (release for real figures).
    pub profile: String,
}

impl Machine {
    /// This machine.
    pub fn here() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        Machine {
            cores: std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            cpu,
            memory_gib: kib / 1024.0 / 1024.0,
            profile: if cfg!(debug_assertions) {
                "debug (figures are not representative)".into()
            } else {
                "release".into()
            },
        }
    }
}

/// Attaches the peers' figures to each row.
pub fn attach_peers(rows: &mut [Row], peers: &PeerResults, cores: usize) {
    for r in rows {
        // Peers run as many processes as the limit has threads; etcd runs
        // as many clients as we have callers.
        let mut found: Vec<PeerFigure> = Vec::new();
        for (parallel, peer) in [
            (r.limit_threads, "openssl"),
            (r.limit_threads, "softhsm2"),
            (r.concurrency, "etcd"),
        ] {
            let parallel = if peer == "etcd" {
                parallel
            } else {
                parallel.clamp(1, cores)
            };
            if let Some(f) = peers.get(r.op, parallel, peer) {
                found.push(f.clone());
            }
        }
        r.peers = found;
    }
}

fn num(v: f64) -> String {
    if v >= 100.0 {
        let n = v.round() as u64;
        let s = n.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A peer's name, with its latency when it reports one.
fn peer_cell(p: &PeerFigure) -> String {
    let mut notes = Vec::new();
    if let (Some(p50), Some(p99)) = (p.p50_ms, p.p99_ms) {
        notes.push(format!("p50 {} ms, p99 {} ms", num(p50), num(p99)));
    }
    if let Some(cpu) = p.server_cpu_us {
        notes.push(format!("servers' CPU {} µs/op", num(cpu)));
    }
    if notes.is_empty() {
        p.peer.clone()
    } else {
        format!("{} ({})", p.peer, notes.join("; "))
    }
}

fn ratio(ours: f64, theirs: f64) -> String {
    if theirs > 0.0 {
        format!("{:.0}%", 100.0 * ours / theirs)
    } else {
        "—".into()
    }
}

fn rows_table(out: &mut String, report: &Report) {
    let _ = writeln!(
        out,
        "| operation | callers | ops/s | p50 ms | p99 ms | p99.9 ms | errors | nodes CPU µs/op | client CPU µs/op | in-process limit ops/s (threads) | of limit | peer | peer ops/s | ours / peer |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"
    );
    for r in &report.rows {
        let (limit, of_limit) = match &r.limit {
            Some(l) => (
                format!("{} ({})", num(l.ops_per_s), r.limit_threads),
                ratio(r.ours.ops_per_s, l.ops_per_s),
            ),
            None => ("—".into(), "—".into()),
        };
        let peers: Vec<&PeerFigure> = r.peers.iter().collect();
        let first = peers.first();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.op.name(),
            r.concurrency,
            num(r.ours.ops_per_s),
            num(r.ours.p50_ms),
            num(r.ours.p99_ms),
            num(r.ours.p999_ms),
            r.ours.errors,
            r.node_cpu_us.map_or("—".to_owned(), num),
            r.client_cpu_us.map_or("—".to_owned(), num),
            limit,
            of_limit,
            first.map_or("—".to_owned(), |p| peer_cell(p)),
            first.map_or("—".to_owned(), |p| num(p.ops_per_s)),
            first.map_or("—".to_owned(), |p| ratio(r.ours.ops_per_s, p.ops_per_s)),
        );
        for p in peers.iter().skip(1) {
            let _ = writeln!(
                out,
                "| | | | | | | | | | | | {} | {} | {} |",
                peer_cell(p),
                num(p.ops_per_s),
                ratio(r.ours.ops_per_s, p.ops_per_s)
            );
        }
    }
}

/// The Markdown tables.
pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let m = &report.machine;
    let _ = writeln!(
        out,
        "Measured {} on {} ({} cores, {:.0} GiB), hsm-bench built {}; {}-node cluster on loopback, {} s per figure.\n",
        report.started,
        m.cpu,
        m.cores,
        m.memory_gib,
        m.profile,
        report.nodes,
        report.seconds
    );
    let _ = writeln!(out, "Command: `{}`\n", report.command);
    if !report.rows.is_empty() {
        rows_table(&mut out, report);
    }
    let mut whats: Vec<&str> = report
        .rows
        .iter()
        .flat_map(|r| r.peers.iter().map(|p| p.what.as_str()))
        .collect();
    whats.sort_unstable();
    whats.dedup();
    if !whats.is_empty() {
        let _ = writeln!(out, "\nPeer commands:\n");
        for w in whats {
            let _ = writeln!(out, "- `{w}`");
        }
    }
    if !report.skipped.is_empty() {
        let _ = writeln!(out, "\nSkipped peers:\n");
        for (peer, why) in &report.skipped {
            let _ = writeln!(out, "- {peer}: {why}");
        }
    }
    let errors: Vec<&Row> = report.rows.iter().filter(|r| r.ours.errors > 0).collect();
    if !errors.is_empty() {
        let _ = writeln!(out, "\nErrors:\n");
        for r in errors {
            let _ = writeln!(
                out,
                "- {} at {} callers: {} failed, first: {}",
                r.op.name(),
                r.concurrency,
                r.ours.errors,
                r.first_error.as_deref().unwrap_or("?")
            );
        }
    }
    if let Some(c) = &report.cluster {
        let loss = match (c.killed_leader, c.write_after_leader_loss_s) {
            (Some(id), Some(s)) => format!(
                " Its leader (node {id}) killed with SIGKILL after the measurements: the next key generation was acknowledged {s:.1} s later."
            ),
            (Some(id), None) => format!(
                " Its leader (node {id}) killed with SIGKILL after the measurements: no key generation was acknowledged within a minute."
            ),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "\nThe {}-node cluster formed (every member voting, a leader) {:.1} s after its processes started; the nodes held {:.0} MiB resident in all after the measurements.{loss}",
            report.nodes, c.formed_s, c.nodes_rss_mib
        );
    }
    if let Some(x) = &report.mixed {
        let _ = writeln!(
            out,
            "\nSigning while writes run: sign-p256 at {} callers, alone and while keygen runs at {} callers\n",
            x.sign_callers, x.keygen_callers
        );
        let _ = writeln!(
            out,
            "| run | sign ops/s | sign p50 ms | sign p99 ms | keygen ops/s |\n|---|---:|---:|---:|---:|"
        );
        let _ = writeln!(
            out,
            "| alone | {} | {} | {} | — |",
            num(x.alone.ops_per_s),
            num(x.alone.p50_ms),
            num(x.alone.p99_ms)
        );
        let _ = writeln!(
            out,
            "| with keygen | {} | {} | {} | {} |",
            num(x.with_writes.ops_per_s),
            num(x.with_writes.p50_ms),
            num(x.with_writes.p99_ms),
            num(x.writes.ops_per_s)
        );
        let _ = writeln!(
            out,
            "\nsign p99 with writes / alone: {:.2}x",
            if x.alone.p99_ms > 0.0 {
                x.with_writes.p99_ms / x.alone.p99_ms
            } else {
                0.0
            }
        );
    }
    if let Some(s) = &report.scale {
        let _ = writeln!(out, "\nScale: {} keys\n", s.keys);
        let _ = writeln!(out, "| measure | value |\n|---|---:|");
        let _ = writeln!(
            out,
            "| load time | {:.0} s ({} keys/s) |",
            s.load_seconds,
            num(s.load_keys_per_s)
        );
        let rss: Vec<String> = s.node_rss_mib.iter().map(|v| format!("{v:.0}")).collect();
        let _ = writeln!(out, "| node resident memory, MiB | {} |", rss.join(" / "));
        let _ = writeln!(
            out,
            "| data directory of one node, MiB | {:.0} |",
            s.data_dir_mib
        );
        if let Some(v) = s.snapshot_mib {
            let _ = writeln!(out, "| snapshot, MiB | {v:.1} |");
        }
        if let Some(v) = s.snapshot_seconds {
            let _ = writeln!(
                out,
                "| backup of that snapshot (build, seal, write), s | {v:.1} |"
            );
        }
        if let Some(v) = s.restart_to_serving_s {
            let _ = writeln!(out, "| node restart to serving, s | {v:.1} |");
        }
        for (what, f) in [
            (
                "sign-p256 (16 callers) with the keys loaded",
                &s.sign_at_scale,
            ),
            ("sign-p256 (16 callers) before loading", &s.sign_small),
        ] {
            if let Some(f) = f {
                let _ = writeln!(
                    out,
                    "| {what} | {} ops/s, p99 {} ms |",
                    num(f.ops_per_s),
                    num(f.p99_ms)
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_and_ratios_are_percentages() {
        assert_eq!(num(1_234_567.4), "1,234,567");
        assert_eq!(num(999.6), "1,000");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(0.456), "0.46");
        assert_eq!(ratio(80.0, 100.0), "80%");
        assert_eq!(ratio(1.0, 0.0), "—");
    }
}
