//! `hsm-chaos run`: a real cluster on hosts of its own, clients working
//! through the SDK, the nemesis's faults, and the checkers' verdict.
//!
//! 1. Hosts ([`net`]): a network namespace per node (`n1`..) and per
//!    client (`c1`..), on one bridge; leftovers of dead runs removed first.
//! 2. The cluster: created with the same steps `hsm-node dev` uses
//!    (`hsm_node::local::create_with`), one `hsm-node start` process per
//!    node inside its host, each logging to `DIR/logs/node<i>.log`.
//! 3. Clients: `hsm-chaos client` processes inside the client hosts (some
//!    pinned to one node), each writing its history as it goes.
//! 4. The nemesis ([`nemesis`]) carries out the seed's schedule, logging
//!    each step to `DIR/faults.jsonl`.
//! 5. At the end every fault is healed; the run asks every node for a
//!    leader and a write (liveness, timed from the healing while clients
//!    still work), waits for the clients, stops the nodes and
//!    reads each one's applied index, state digest and chain head from its
//!    store (convergence); then it runs every checker and writes
//!    `DIR/history.jsonl`, `DIR/nodes.json` and `DIR/summary.json`.
//!
//! Everything it started is stopped and every namespace removed on the way
//! out, also on an error or Ctrl-C.

pub mod disk;
pub mod nemesis;
pub mod net;
pub mod nodes;
pub mod probe;
pub mod restore;
pub mod scan;
pub mod summary;

mod faults;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::check::{self, NodeFinal};
use crate::history::{self, Entry};
use faults::{apply, heal};
use nemesis::{FaultKind, Topology};
use net::Net;
use nodes::{faketime_library, Nodes};
pub use summary::{Backups, Recovery, Summary};

/// The unactivated admin's password in a new cluster.
const INITIAL_ADMIN_PASSWORD: &str = "chaos-initial-admin-1";
/// The crypto officer's password after activation; clients create their
/// users with it.
pub const OFFICER_PASSWORD: &str = "chaos-officer-password-1";
/// The UDP port every node listens on (in its own host).
const NODE_PORT: u16 = 7400;
/// Longest the cluster may take to elect a leader and take a write on
/// every node after a fault. The write is a login, which a reservation
/// left by the fault (its node killed mid-login) may hold back for up to
/// its time-to-live (`hsm_state::LOGIN_RESERVATION_TTL_MS`, 30 s), so the
/// bound is twice that.
const RECOVERY_BOUND: Duration = Duration::from_secs(60);

/// How long the clients have, from the stop file, to finish what they have
/// in flight (each operation has a 5 s deadline; a login loop gives up at
/// the stop file) before they are killed.
const CLIENT_STOP_WAIT: Duration = Duration::from_secs(60);

/// What `hsm-chaos run` was asked for.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Decides the schedule and the workload.
    pub seed: u64,
    /// How long clients work (and faults happen).
    pub duration: Duration,
    /// Nodes.
    pub nodes: u64,
    /// Zones the nodes are spread over, in turn.
    pub zones: u64,
    /// Client processes.
    pub clients: u32,
    /// Which faults the nemesis may make.
    pub faults: Vec<FaultKind>,
    /// The output directory (must not exist or be empty).
    pub out: PathBuf,
    /// The `hsm-node` binary.
    pub hsm_node: PathBuf,
    /// The `hsm-chaos` binary (for the client processes).
    pub hsm_chaos: PathBuf,
}

/// Runs the whole thing; returns the summary (also written to
/// `DIR/summary.json`).
///
/// # Errors
/// If the hosts, the cluster or the clients cannot be set up, or the
/// output cannot be written. A checker's finding is not an error: it is in
/// the summary.
pub async fn run(opts: &RunOptions) -> Result<Summary> {
    if !net::can_make_namespaces() {
        bail!("hsm-chaos run makes network namespaces and needs root; run it as root (CI does)");
    }
    // Caught from the start: a Ctrl-C while the hosts and the cluster are
    // set up stops the run as soon as its faults would begin, so that what
    // it started (in process groups of their own, which a Ctrl-C at the
    // terminal does not reach) is stopped and removed on the way out.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot catch Ctrl-C")?;
    if opts.nodes == 0 || opts.nodes > 9 || opts.zones == 0 || opts.clients == 0 {
        bail!("--nodes must be 1 to 9, --zones and --clients at least 1");
    }
    if opts.faults.contains(&FaultKind::Clock) {
        faketime_library()
            .context("the clock fault needs libfaketime; or leave clock out of --faults")?;
    }
    if opts.faults.contains(&FaultKind::Loss) && !on_path("nft") {
        bail!("the loss fault needs nft (Debian package nftables; ./x installs it), or leave loss out of --faults");
    }
    let removed = net::remove_leftovers()?;
    if removed > 0 {
        eprintln!("removed {removed} namespaces left by earlier runs");
    }
    let unmounted = disk::remove_leftovers();
    if unmounted > 0 {
        eprintln!("unmounted {unmounted} node disks left by earlier runs");
    }
    let out = output_dir(&opts.out)?;
    let logs = out.join("logs");

    let mut names: Vec<String> = (1..=opts.nodes).map(|i| format!("n{i}")).collect();
    names.extend((1..=opts.clients).map(|j| format!("c{j}")));
    let mut net = Net::create(&names)?;

    // Created inside the first node's host: init runs the first node to
    // write the cluster's first event, on its own address.
    let mut setup = Net::command(net.host("n1")?, &opts.hsm_chaos);
    let cluster_dir = out.join("cluster");
    setup.arg("setup").arg("--dir").arg(&cluster_dir);
    for i in 0..opts.nodes {
        let host = net.host(&format!("n{}", i + 1))?;
        let listen = SocketAddr::from((host.ip, NODE_PORT));
        setup.args(["--member", &format!("{listen}/zone-{}", i % opts.zones + 1)]);
    }
    let made = setup
        .env("HSM_CHAOS_ADMIN_PASSWORD", INITIAL_ADMIN_PASSWORD)
        .stdin(Stdio::null())
        .output()
        .context("cannot run hsm-chaos setup")?;
    if !made.status.success() {
        bail!(
            "cannot create the cluster: {}",
            String::from_utf8_lossy(&made.stderr).trim()
        );
    }
    // Disks that can fill up, when the run makes that fault (dropped
    // after the nodes: declared before them).
    let mut disks = disk::Disks::default();
    let mut nodes = Nodes::new(
        opts.nodes,
        opts.hsm_node.clone(),
        cluster_dir.clone(),
        logs.clone(),
    );
    if opts.faults.contains(&FaultKind::DiskFull) {
        for i in 1..=opts.nodes {
            disks.mount(&nodes.data_dir(i)?)?;
        }
    }
    let client_config = hsm_node::local::client_config_path(&cluster_dir);
    for i in 1..=opts.nodes {
        nodes.start(&net, i)?;
    }
    let probe_host = net.host("c1")?.clone();
    let probe = |args: &[&str]| -> Result<String> {
        probe::run_in(&probe_host, &opts.hsm_chaos, &client_config, args)
    };
    probe(&[
        "activate",
        "--initial",
        INITIAL_ADMIN_PASSWORD,
        "--timeout-s",
        "60",
    ])?;

    // The clients: every other one pinned to a node, in turn.
    let epoch_unix_ms = u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    let run_start = Instant::now();
    let stop_file = out.join("stop");
    let mut clients = Vec::new();
    for j in 1..=opts.clients {
        let host = net.host(&format!("c{j}"))?;
        let mut cmd = Net::command(host, &opts.hsm_chaos);
        cmd.arg("client")
            .arg("--config")
            .arg(&client_config)
            .args(["--process", &j.to_string()])
            .args(["--seed", &(opts.seed ^ u64::from(j)).to_string()])
            // At most (the runner stops them through the stop file when
            // its faults are over; this bounds a run whose runner died).
            .args([
                "--duration-s",
                &(opts.duration.as_secs() * 3 + 300).to_string(),
            ])
            .arg("--stop-file")
            .arg(&stop_file)
            .args(["--epoch-unix-ms", &epoch_unix_ms.to_string()])
            .arg("--out")
            .arg(out.join(format!("history-{j}.jsonl")));
        if let Some(node) = pinned_node(j, opts.nodes) {
            cmd.args(["--node", &node.to_string()]);
        }
        let log = File::create(logs.join(format!("client{j}.log")))?;
        cmd.env("HSM_CHAOS_OFFICER_PASSWORD", OFFICER_PASSWORD)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        clients.push(cmd.spawn().context("cannot start a client")?);
    }

    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    // The nemesis. A step starts no earlier than planned and not before
    // the cluster serves again after the last one, so the faults can take
    // longer than the schedule's duration: the clients work until they
    // are over.
    let topology = Topology {
        nodes: opts.nodes,
        zones: opts.zones,
        pinned: (1..=opts.clients)
            .filter_map(|j| pinned_node(j, opts.nodes))
            .collect(),
    };
    let steps = nemesis::schedule(opts.seed, opts.duration, &topology, &opts.faults);
    let mut fault_log = File::create(out.join("faults.jsonl"))?;
    let mut made: BTreeMap<String, u64> = BTreeMap::new();
    let mut recoveries: Vec<Option<u64>> = Vec::new();
    let mut backup_log = File::create(out.join("backups.jsonl"))?;
    let mut backups: Vec<serde_json::Value> = Vec::new();
    let mut crashes: Vec<String> = Vec::new();
    let mut stopped_early = false;
    let mut not_healed = None;
    for (n, step) in steps.iter().enumerate() {
        let wait = Duration::from_millis(step.at_ms).saturating_sub(run_start.elapsed());
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = interrupt.recv() => { stopped_early = true; break; }
        }
        let started_ms = ms(run_start.elapsed());
        let applied = apply(&mut nodes, &mut net, &disks, step, &probe)?;
        let line = serde_json::json!({
            "start_ms": started_ms,
            "step": step,
            "acted_on": applied,
        });
        writeln!(fault_log, "{line}")?;
        *made.entry(step.fault.kind().to_string()).or_default() += 1;
        // Now and then a backup, asked for while the fault is in force.
        let backup = if n % restore::BACKUP_EVERY == restore::BACKUP_EVERY / 2 {
            Some(probe::spawn_in(
                &probe_host,
                &opts.hsm_chaos,
                &client_config,
                &[
                    "backup",
                    "--epoch-unix-ms",
                    &epoch_unix_ms.to_string(),
                    "--timeout-s",
                    "30",
                ],
            )?)
        } else {
            None
        };
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(step.lasts_ms)) => {}
            _ = interrupt.recv() => { stopped_early = true; }
        }
        // An operator step that fails (an officer cannot remove or add a
        // member: the cluster is down) ends the schedule; the run goes on
        // to its checks, and this is an anomaly.
        let unhealed = heal(&mut nodes, &mut net, &mut disks, &applied, &probe)
            .err()
            .map(|e| {
                format!(
                    "fault {n} ({}, at {started_ms} ms) could not be healed: {e:#}",
                    step.fault.kind()
                )
            });
        let healed = Instant::now();
        let healed_ms = ms(run_start.elapsed());
        for (slot, status) in nodes.exited() {
            let i = nodes.id(slot);
            crashes.push(format!(
                "node {i} ended by itself ({status}) during or after {}: see logs/node{i}.log",
                step.fault.kind()
            ));
            nodes.start(&net, slot)?;
        }
        // Recovery: a leader and a write through every node. A member
        // whose disk was full may still be stopping on the write that
        // failed: it is started again, as its supervisor would.
        let full_disk = match applied {
            faults::Applied::DiskFull { node, .. } => Some(node),
            _ => None,
        };
        let mut restarted = None;
        let mut unrecovered_why = None;
        let recovery_ms = if stopped_early {
            None
        } else {
            let args = ready_args(&nodes.ids());
            let check = probe::spawn_in(
                &probe_host,
                &opts.hsm_chaos,
                &client_config,
                &args.each_ref().map(String::as_str),
            )?;
            supervise(
                &mut nodes,
                &net,
                full_disk,
                check,
                &mut restarted,
                &mut crashes,
            )
            .await?
            .map(|()| ms(healed.elapsed()))
            .map_err(|why| unrecovered_why = Some(why))
            .ok()
        };
        if let Some(slot) = full_disk {
            nodes.may_exit.remove(&slot);
        }
        // (Not measured after a Ctrl-C: that is no failure to recover.)
        if !stopped_early {
            recoveries.push(recovery_ms);
        }
        if let Some(child) = backup {
            let answer = child.wait_with_output().context("the backup probe")?;
            let line: serde_json::Value =
                serde_json::from_slice(&answer.stdout).unwrap_or_else(|_| {
                    serde_json::json!({
                        "outcome": "unknown",
                        "error": String::from_utf8_lossy(&answer.stderr).trim(),
                    })
                });
            writeln!(backup_log, "{line}")?;
            backups.push(line);
        }
        writeln!(
            fault_log,
            "{}",
            serde_json::json!({
                "healed_ms": healed_ms,
                "recovery_ms": recovery_ms,
                "unrecovered": unrecovered_why,
                "restarted": restarted,
            })
        )?;
        if stopped_early {
            break;
        }
        if let Some(what) = unhealed {
            not_healed = Some(what);
            break;
        }
    }
    if stopped_early {
        // The clients stop as at the end of any run, through the stop
        // file, finishing what they have in flight: a killed client would
        // take operations a node may still apply out of the history.
        std::fs::write(&stop_file, b"")?;
    }
    // Liveness, from the last fault's healing (clients still at work,
    // unless the run was stopped): a leader and a write through every node.
    let faults_over = Instant::now();
    let recovery_ms = ready(&probe, &nodes.ids())
        .ok()
        .map(|()| ms(faults_over.elapsed()));
    // The same once more, recovered and with no fault (the clients may
    // still be at work): the floor under every recovery time.
    let calm = Instant::now();
    let calm_ms = ready(&probe, &nodes.ids())
        .ok()
        .map(|()| ms(calm.elapsed()));
    // The clients work for the duration at least (unless the run was
    // stopped: Ctrl-C, or a fault it could not heal), and stop now.
    if !stopped_early && not_healed.is_none() {
        tokio::time::sleep(opts.duration.saturating_sub(run_start.elapsed())).await;
    }
    std::fs::write(&stop_file, b"")?;
    let worked_s = run_start.elapsed().as_secs();
    let mut client_failures = Vec::new();
    let clients_due = Instant::now() + CLIENT_STOP_WAIT;
    for (j, c) in (1..).zip(&mut clients) {
        match wait_until(c, clients_due).await {
            Ok(Some(status)) if status.success() => {}
            Ok(Some(status)) => client_failures.push(format!(
                "client {j} ended with {status}: see logs/client{j}.log"
            )),
            Ok(None) => client_failures.push(format!(
                "client {j} did not stop within {} s of the stop file and was killed: \
                 what it had in flight is not in its history; see logs/client{j}.log",
                CLIENT_STOP_WAIT.as_secs()
            )),
            Err(e) => client_failures.push(format!("client {j}: {e}")),
        }
    }

    // Let the last writes reach every node before they stop.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (slot, status) in nodes.exited() {
        let i = nodes.id(slot);
        crashes.push(format!(
            "node {i} ended by itself ({status}): see logs/node{i}.log"
        ));
    }
    nodes.stop_all();
    let mut finals = Vec::new();
    let mut unreadable = Vec::new();
    for i in nodes.ids() {
        match node_final(&cluster_dir, i) {
            Ok(f) => finals.push(f),
            Err(e) => unreadable.push(format!("node {i}'s store could not be read: {e:#}")),
        }
    }
    drop(nodes);
    // The newest acknowledged backup, restored into a new cluster.
    let newest = backups
        .iter()
        .filter(|b| b["outcome"] == "ok")
        .max_by_key(|b| b["complete_ms"].as_u64());
    let restored = newest.map(|b| -> Result<_> {
        let taken = check::backup::BackupTaken {
            invoke_ms: b["invoke_ms"].as_u64().context("invoke_ms")?,
            complete_ms: b["complete_ms"].as_u64().context("complete_ms")?,
        };
        let location = b["location"].as_str().context("location")?;
        let labels = restore::restore_and_list(
            &net,
            &opts.hsm_node,
            &opts.hsm_chaos,
            &cluster_dir,
            &out,
            location,
        )?;
        Ok((taken, labels))
    });
    drop(net);
    disks.unmount_all()?;

    let mut history = Vec::new();
    for j in 1..=opts.clients {
        let path = out.join(format!("history-{j}.jsonl"));
        if let Ok(f) = File::open(&path) {
            history.extend(
                history::read_jsonl(BufReader::new(f))
                    .with_context(|| format!("cannot read {}", path.display()))?,
            );
        }
    }
    history.sort_by_key(|e: &Entry| (e.invoke_ms, e.process, e.id));
    history::write_jsonl(&history, File::create(out.join("history.jsonl"))?)?;
    std::fs::write(out.join("nodes.json"), serde_json::to_vec_pretty(&finals)?)?;

    let mut anomalies = check::all(&history, &finals);
    let restored_keys = match &restored {
        Some(Ok((_, labels))) => Some(labels.len() as u64),
        _ => None,
    };
    match restored {
        Some(Ok((taken, labels))) => {
            anomalies.extend(check::backup::restored(&history, taken, &labels));
        }
        Some(Err(e)) => anomalies.push(check::Anomaly {
            checker: "backup".into(),
            what: format!("the newest backup could not be restored and read: {e:#}"),
            ops: Vec::new(),
        }),
        None => {}
    }
    let backups_summary = Backups::of(&backups, restored_keys);
    if recovery_ms.is_none() {
        anomalies.push(check::Anomaly {
            checker: "liveness".into(),
            what: format!(
                "the cluster did not elect a leader and take a write on every node within {RECOVERY_BOUND:?} of the faults' end"
            ),
            ops: Vec::new(),
        });
    }
    for what in unreadable {
        anomalies.push(check::Anomaly {
            checker: "convergence".into(),
            what,
            ops: Vec::new(),
        });
    }
    if let Some(what) = not_healed {
        anomalies.push(check::Anomaly {
            checker: "liveness".into(),
            what,
            ops: Vec::new(),
        });
    }
    let unrecovered = recoveries.iter().filter(|r| r.is_none()).count();
    if unrecovered > 0 {
        anomalies.push(check::Anomaly {
            checker: "liveness".into(),
            what: format!(
                "after {unrecovered} of {} faults the cluster did not take a write on every node within {RECOVERY_BOUND:?} of the healing (faults.jsonl: recovery_ms null)",
                recoveries.len()
            ),
            ops: Vec::new(),
        });
    }
    // No password of the run in any of its files.
    anomalies.extend(scan::scan(
        &out,
        &[
            (
                "the admin's initial password",
                INITIAL_ADMIN_PASSWORD.as_bytes(),
            ),
            ("the crypto officer's password", OFFICER_PASSWORD.as_bytes()),
            (
                "a workload user's password",
                crate::workload::PASSWORD_MARK.as_bytes(),
            ),
        ],
    ));
    for what in crashes {
        anomalies.push(check::Anomaly {
            checker: "crash".into(),
            what,
            ops: Vec::new(),
        });
    }
    for what in client_failures {
        anomalies.push(check::Anomaly {
            checker: "client".into(),
            what,
            ops: Vec::new(),
        });
    }
    if !history.iter().any(|e| e.outcome.is_ok()) {
        anomalies.push(check::Anomaly {
            checker: "workload".into(),
            what: "no operation was acknowledged: the run checked nothing".into(),
            ops: Vec::new(),
        });
    }
    let mut operations: BTreeMap<String, u64> = BTreeMap::new();
    let mut operations_by_kind: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for e in &history {
        let outcome = match e.outcome {
            history::Outcome::Ok { .. } => "ok",
            history::Outcome::Failed { .. } => "failed",
            history::Outcome::Unknown => "unknown",
        };
        *operations.entry(outcome.to_owned()).or_default() += 1;
        *operations_by_kind
            .entry(e.op.kind().to_owned())
            .or_default()
            .entry(outcome.to_owned())
            .or_default() += 1;
    }
    let summary = Summary {
        seed: opts.seed,
        duration_s: opts.duration.as_secs(),
        worked_s,
        nodes: opts.nodes,
        zones: opts.zones,
        clients: opts.clients,
        faults: made,
        operations,
        operations_by_kind,
        recovery_ms,
        recovery: Recovery::of(&recoveries, calm_ms),
        backups: backups_summary,
        valid: anomalies.is_empty(),
        anomalies,
    };
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_vec_pretty(&summary)?,
    )?;
    if let Err(e) = crate::timeline::write(&out) {
        eprintln!("cannot draw the timeline: {e:#}");
    }
    if stopped_early {
        bail!("interrupted; what was recorded is in {}", out.display());
    }
    Ok(summary)
}

/// The node client `j` is pinned to, if any: every other client, to the
/// nodes in turn.
fn pinned_node(j: u32, nodes: u64) -> Option<u64> {
    (j % 2 == 0).then(|| u64::from(j / 2 - 1) % nodes + 1)
}

/// The probe that waits until a write went through each of the members
/// `ids`, at most [`RECOVERY_BOUND`].
fn ready_args(ids: &[u64]) -> [String; 5] {
    let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
    [
        "ready".into(),
        "--nodes".into(),
        ids.join(","),
        "--timeout-s".into(),
        RECOVERY_BOUND.as_secs().to_string(),
    ]
}

/// Waits until a write went through each of the members `ids`, at most
/// [`RECOVERY_BOUND`].
fn ready(probe: &dyn Fn(&[&str]) -> Result<String>, ids: &[u64]) -> Result<()> {
    let args = ready_args(ids);
    probe(&args.each_ref().map(String::as_str)).map(drop)
}

/// Waits for the recovery `check` (a `ready` probe) and answers whether it
/// succeeded, or what the probe last saw when it did not. Meanwhile the member in slot `full_disk`, if any, is
/// watched as its supervisor would: the first time it ends on the write
/// its full disk refused (during the fault, or after it when it was still
/// stopping), it is started again and `restarted` says which member; any
/// other end, or a second one, is a crash (and it is started again too).
async fn supervise(
    nodes: &mut Nodes,
    net: &Net,
    full_disk: Option<u64>,
    mut check: std::process::Child,
    restarted: &mut Option<u64>,
    crashes: &mut Vec<String>,
) -> Result<std::result::Result<(), String>> {
    let give_up = Instant::now() + RECOVERY_BOUND + Duration::from_secs(30);
    loop {
        if check.try_wait().context("the ready probe")?.is_some() {
            let out = check.wait_with_output().context("the ready probe")?;
            if out.status.success() {
                return Ok(Ok(()));
            }
            return Ok(Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()));
        }
        if Instant::now() > give_up {
            let _ = check.kill();
            let _ = check.wait();
            return Ok(Err("the ready probe did not end".to_owned()));
        }
        if let Some(slot) = full_disk.filter(|&slot| !nodes.running(slot)) {
            // Its last words are written before it ends.
            let on_full_disk = restarted.is_none() && nodes.stopped_on_full_disk(slot);
            if let Some(status) = nodes.restart_if_ended(net, slot)? {
                let i = nodes.id(slot);
                if on_full_disk {
                    *restarted = Some(i);
                } else {
                    crashes.push(format!(
                        "node {i} ended by itself ({status}) after disk-full: see logs/node{i}.log"
                    ));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether `program` is on the PATH.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Node `i`'s applied index, state digest and chain head, read from its
/// store (the node stopped).
fn node_final(cluster_dir: &Path, i: u64) -> Result<NodeFinal> {
    let config =
        hsm_node::config::NodeConfig::load(hsm_node::local::node_config_path(cluster_dir, i))?;
    let key = hsm_raft_store::StorageKey::load_file(&config.storage_key_file())?;
    let (_log, sm) = hsm_raft_store::open(&config.store_dir(), &key)
        .with_context(|| format!("cannot open node {i}'s store"))?;
    Ok(sm.read(|a| NodeFinal {
        node: i,
        applied: a.applied.map_or(0, |l| l.index),
        digest: hex::encode(a.state.digest().0),
        head: hex::encode(a.state.head().0),
    }))
}

/// Creates `out` (which must be new or empty) with a `logs` directory in
/// it; returns its absolute path.
///
/// # Errors
/// If it holds anything or cannot be made.
pub fn output_dir(out: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    if std::fs::read_dir(out)?.next().is_some() {
        bail!("{} is not empty", out.display());
    }
    let out = out.canonicalize()?;
    std::fs::create_dir_all(out.join("logs"))?;
    Ok(out)
}

/// `hsm-chaos setup`: creates the run's cluster in `dir` (run inside the
/// first node's host), members `ip:port/zone` in node id order.
///
/// # Errors
/// If a member does not parse or the cluster cannot be created.
pub async fn setup(dir: &Path, members: &[String], admin_password: &str) -> Result<()> {
    let members = members
        .iter()
        .map(|m| -> Result<_> {
            let (listen, zone) = m
                .split_once('/')
                .with_context(|| format!("a member is ip:port/zone, not {m:?}"))?;
            Ok(hsm_node::local::LocalMember {
                listen: listen
                    .parse()
                    .with_context(|| format!("bad address {listen:?}"))?,
                zone: zone.to_owned(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    hsm_node::local::create_with(dir, &members, admin_password).await?;
    Ok(())
}

/// `child`'s exit status once it ends, or `None` after killing it at
/// `due`.
async fn wait_until(
    child: &mut std::process::Child,
    due: Instant,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= due {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
