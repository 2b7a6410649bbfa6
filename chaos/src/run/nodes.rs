//! The node processes of a run, by slot: slot `s` is host `n<s>`, and runs
//! one member at a time. A slot starts with member `s`; a membership fault
//! removes that member and brings a new one (a new id, a new identity, an
//! empty disk) into the same slot, as an operator replaces a host's node.
//! The nemesis names slots; [`Nodes::id`] says which member is there now.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hsm_proto::client::{ClientConfig, ClientNode};
use hsm_proto::NodeRecord;

use super::disk::Disks;
use super::net::Net;

/// Where Debian's faketime package puts libfaketime.
const FAKETIME_LIBRARIES: [&str; 2] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
];

/// libfaketime, if installed.
///
/// # Errors
/// If it is not.
pub fn faketime_library() -> Result<&'static str> {
    FAKETIME_LIBRARIES
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .context("libfaketime is not installed (Debian package faketime; ./x installs it)")
}

/// The node processes.
pub struct Nodes {
    /// How many slots (1..=slots).
    pub slots: u64,
    hsm_node: PathBuf,
    /// The cluster directory (`hsm_node::local` layout).
    dir: PathBuf,
    logs: PathBuf,
    /// The member in each slot now.
    ids: BTreeMap<u64, u64>,
    next_id: u64,
    /// Running processes, by slot.
    procs: BTreeMap<u64, Child>,
    /// Slots whose process is stopped (SIGSTOP).
    pub paused: BTreeSet<u64>,
    /// Slots whose process may exit on its own now (their disk is full,
    /// or their member is being removed).
    pub may_exit: BTreeSet<u64>,
    /// Arguments for a slot's next start only (joining the cluster).
    first_start: BTreeMap<u64, Vec<String>>,
    /// Where each slot's process began writing in its member's log.
    log_from: BTreeMap<u64, u64>,
}

impl Nodes {
    /// Slots 1..=`slots` holding members 1..=`slots` of the cluster in
    /// `dir`, none started yet.
    pub fn new(slots: u64, hsm_node: PathBuf, dir: PathBuf, logs: PathBuf) -> Nodes {
        Nodes {
            slots,
            hsm_node,
            dir,
            logs,
            ids: (1..=slots).map(|s| (s, s)).collect(),
            next_id: slots + 1,
            procs: BTreeMap::new(),
            paused: BTreeSet::new(),
            may_exit: BTreeSet::new(),
            first_start: BTreeMap::new(),
            log_from: BTreeMap::new(),
        }
    }

    /// The member in slot `slot` now.
    pub fn id(&self, slot: u64) -> u64 {
        self.ids.get(&slot).copied().unwrap_or(slot)
    }

    /// The members now, in slot order.
    pub fn ids(&self) -> Vec<u64> {
        self.ids.values().copied().collect()
    }

    /// The slot member `id` is in, if it is a member now.
    pub fn slot_of(&self, id: u64) -> Option<u64> {
        self.ids.iter().find(|(_, &i)| i == id).map(|(&s, _)| s)
    }

    /// The data directory of member `id`.
    ///
    /// # Errors
    /// If its configuration cannot be read.
    pub fn data_dir(&self, id: u64) -> Result<PathBuf> {
        let path = hsm_node::local::node_config_path(&self.dir, id);
        Ok(hsm_node::config::NodeConfig::load(&path)?.data_dir)
    }

    /// Starts slot `slot`'s member.
    ///
    /// # Errors
    /// If the process cannot be started.
    pub fn start(&mut self, net: &Net, slot: u64) -> Result<()> {
        self.start_with_clock(net, slot, 0)
    }

    /// Starts slot `slot`'s member, its wall clock `offset_s` seconds off
    /// when not 0 (libfaketime preloaded into the node itself, monotonic
    /// time untouched so Raft's timers run true; the `faketime` wrapper
    /// forks, so a signal to it would miss the node).
    ///
    /// # Errors
    /// If the process cannot be started.
    pub fn start_with_clock(&mut self, net: &Net, slot: u64, offset_s: i64) -> Result<()> {
        let id = self.id(slot);
        let host = net.host(&format!("n{slot}"))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("node{id}.log")))
            .context("cannot open a node log")?;
        let from = log.metadata().map_or(0, |m| m.len());
        let mut command = Net::command(host, &self.hsm_node);
        if offset_s != 0 {
            command
                .env("LD_PRELOAD", faketime_library()?)
                .env("FAKETIME", format!("{offset_s:+}s"))
                .env("DONT_FAKE_MONOTONIC", "1");
        }
        let child = command
            .arg("start")
            .arg("--config")
            .arg(hsm_node::local::node_config_path(&self.dir, id))
            .args(self.first_start.remove(&slot).unwrap_or_default())
            .env("HSM_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("log")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start node {id}"))?;
        self.procs.insert(slot, child);
        self.log_from.insert(slot, from);
        Ok(())
    }

    /// Sends `signal` to slot `slot`'s process.
    ///
    /// # Errors
    /// If it does not run or `kill` fails.
    pub fn signal(&self, slot: u64, signal: &str) -> Result<()> {
        let child = self
            .procs
            .get(&slot)
            .with_context(|| format!("node {} is not running", self.id(slot)))?;
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .context("cannot run kill")?;
        if !status.success() {
            bail!("kill -{signal} node {} failed", self.id(slot));
        }
        Ok(())
    }

    /// SIGKILLs slot `slot`'s process (if it runs) and waits for it.
    pub fn kill(&mut self, slot: u64) {
        if let Some(mut child) = self.procs.remove(&slot) {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused.remove(&slot);
    }

    /// Slots whose process ended though nothing asked it to (no longer
    /// counted as running), with how it ended.
    pub fn exited(&mut self) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        for (&slot, child) in &mut self.procs {
            if self.may_exit.contains(&slot) {
                continue;
            }
            if let Ok(Some(status)) = child.try_wait() {
                out.push((slot, status.to_string()));
            }
        }
        for (slot, _) in &out {
            self.procs.remove(slot);
        }
        out
    }

    /// Whether slot `slot`'s process runs.
    pub fn running(&mut self, slot: u64) -> bool {
        self.procs
            .get_mut(&slot)
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Starts slot `slot`'s member again if its process ended (or never
    /// ran); returns how it ended.
    ///
    /// # Errors
    /// If it cannot start.
    pub fn restart_if_ended(&mut self, net: &Net, slot: u64) -> Result<Option<String>> {
        let ended = match self.procs.get_mut(&slot) {
            None => Some("not running".to_owned()),
            Some(child) => child.try_wait().ok().flatten().map(|s| s.to_string()),
        };
        if ended.is_some() {
            self.kill(slot);
            self.start(net, slot)?;
        }
        Ok(ended)
    }

    /// Whether slot `slot`'s last process ended on a write its full disk
    /// refused: its last words (`hsm-node: ...`, printed as it exits),
    /// among what it wrote itself to its member's log, say so.
    pub fn stopped_on_full_disk(&self, slot: u64) -> bool {
        // Not just the last lines: its other tasks go on logging while it
        // exits (78 KB after its last words once, in the long run on
        // d3ec69f, which a 16 KiB tail missed and counted as a crash).
        const TAIL: u64 = 4 * 1024 * 1024;
        let path = self.logs.join(format!("node{}.log", self.id(slot)));
        let Ok(mut file) = std::fs::File::open(path) else {
            return false;
        };
        let len = file.metadata().map_or(0, |m| m.len());
        let from = self.log_from.get(&slot).copied().unwrap_or(0);
        let mut tail = Vec::new();
        if file
            .seek(std::io::SeekFrom::Start(len.saturating_sub(TAIL).max(from)))
            .and_then(|_| file.read_to_end(&mut tail))
            .is_err()
        {
            return false;
        }
        String::from_utf8_lossy(&tail)
            .lines()
            .rev()
            .find(|l| l.starts_with("hsm-node: "))
            .is_some_and(|l| l.contains("No space left on device"))
    }

    /// Deletes everything on slot `slot`'s member's data disk (the node
    /// stopped), as when a host's disk is lost or replaced.
    ///
    /// # Errors
    /// If the files cannot be removed.
    pub fn wipe(&self, slot: u64) -> Result<()> {
        let dir = self.data_dir(self.id(slot))?;
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path)?;
            } else {
                std::fs::remove_file(&path)?;
            }
        }
        Ok(())
    }

    /// Makes a new member for slot `slot` (its member removed from the
    /// cluster, its disk gone): the next id, a configuration like the
    /// slot's last one, and its identity and certificate
    /// (`hsm-node prepare` with the cluster CA), its data directory on a
    /// disk of `disks` when there are any. Returns its join request, for
    /// an officer to approve; [`Nodes::joined`] then puts it in the slot.
    ///
    /// # Errors
    /// If a file cannot be written or `prepare` fails.
    pub fn prepare(&mut self, slot: u64, disks: &mut Disks, with_disk: bool) -> Result<NodeRecord> {
        let old = hsm_node::local::node_config_path(&self.dir, self.id(slot));
        let mut config = hsm_node::config::NodeConfig::load(&old)?;
        let id = self.next_id;
        self.next_id += 1;
        config.node_id = id;
        config.data_dir = self.dir.join(format!("node{id}"));
        std::fs::create_dir_all(&config.data_dir)?;
        if with_disk {
            disks.mount(&config.data_dir)?;
        }
        let path = hsm_node::local::node_config_path(&self.dir, id);
        std::fs::write(
            &path,
            toml::to_string(&config).context("cannot encode a node configuration")?,
        )?;
        let out = Command::new(&self.hsm_node)
            .arg("prepare")
            .arg("--config")
            .arg(&path)
            .arg("--ca-cert")
            .arg(self.dir.join("ca/ca.pem"))
            .arg("--ca-key")
            .arg(self.dir.join("ca/ca.key"))
            .stdin(Stdio::null())
            .output()
            .context("cannot run hsm-node prepare")?;
        if !out.status.success() {
            bail!(
                "hsm-node prepare for node {id} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let request = std::fs::read_to_string(config.data_dir.join("join-request.toml"))
            .context("prepare wrote no join request")?;
        toml::from_str(&request).context("cannot read the join request")
    }

    /// Puts the approved member `record` in slot `slot` (the slot's
    /// process stopped): the client configuration names it instead of the
    /// slot's last member, and its first start joins through another
    /// member, pinning that member's key.
    ///
    /// # Errors
    /// If the client configuration cannot be rewritten or no other member
    /// is known.
    pub fn joined(&mut self, slot: u64, record: &NodeRecord) -> Result<()> {
        let path = hsm_node::local::client_config_path(&self.dir);
        let text = std::fs::read_to_string(&path)?;
        let mut config: ClientConfig = toml::from_str(&text).context("the client config")?;
        let old = self.id(slot);
        config.nodes.retain(|n| n.id != old);
        let through = config
            .nodes
            .first()
            .cloned()
            .context("no other member to join through")?;
        config.nodes.push(ClientNode::of_record(record));
        let new = path.with_extension("toml.new");
        let _ = std::fs::remove_file(&new);
        hsm_node::local::write_client_config(&new, &config)?;
        std::fs::rename(&new, &path)?;
        self.ids.insert(slot, record.id.0);
        self.first_start.insert(
            slot,
            vec![
                "--join".into(),
                through.address,
                "--join-pin".into(),
                hex::encode(through.transport_key),
            ],
        );
        Ok(())
    }

    /// Stops every node: SIGCONT for paused ones, SIGTERM, then SIGKILL
    /// after a grace period.
    pub fn stop_all(&mut self) {
        for slot in std::mem::take(&mut self.paused) {
            let _ = self.signal(slot, "CONT");
        }
        for slot in self.procs.keys().copied().collect::<Vec<_>>() {
            let _ = self.signal(slot, "TERM");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for (_, mut child) in std::mem::take(&mut self.procs) {
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        self.stop_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes_with_log(text: &str) -> (Nodes, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(dir.path().join("node3.log"), text).expect("the log");
        let nodes = Nodes::new(
            5,
            PathBuf::from("hsm-node"),
            dir.path().to_owned(),
            dir.path().to_owned(),
        );
        (nodes, dir)
    }

    #[test]
    fn a_stop_on_a_full_disk_is_told_by_the_last_words_only() {
        let full = "INFO store opened\n\
                    ERROR store write failed: No space left on device\n\
                    hsm-node: raft stopped: rocksdb write failed: IO error: No space left on device\n";
        assert!(nodes_with_log(full).0.stopped_on_full_disk(3));
        // An earlier stop on a full disk, then a start and another end.
        let later =
            format!("{full}INFO store opened\nhsm-node: raft stopped: vote went backwards\n");
        assert!(!nodes_with_log(&later).0.stopped_on_full_disk(3));
        // A full disk mentioned, but the node did not stop on it (killed).
        let killed = "ERROR store write failed: No space left on device\nINFO node started\n";
        assert!(!nodes_with_log(killed).0.stopped_on_full_disk(3));
        // No log at all.
        assert!(!nodes_with_log(full).0.stopped_on_full_disk(4));
        // Started again after a stop on a full disk, then ended without
        // last words (a panic, a SIGKILL): not a stop on a full disk.
        let (mut nodes, _dir) = nodes_with_log(full);
        nodes.log_from.insert(3, full.len() as u64);
        let path = nodes.logs.join("node3.log");
        std::fs::write(&path, format!("{full}INFO store opened\n")).expect("the log");
        assert!(!nodes.stopped_on_full_disk(3));
    }

    #[test]
    fn a_stop_on_a_full_disk_is_told_however_much_is_logged_after_the_last_words() {
        // Its other tasks go on logging while it exits: 78 KB once, in the
        // long run on d3ec69f, which counted as a crash. Here 256 KiB.
        let line = "WARN raft: append to node 4 failed: connection lost\n";
        let after = line.repeat(256 * 1024 / line.len() + 1);
        let log = format!(
            "INFO store opened\n\
             hsm-node: raft stopped: rocksdb write failed: IO error: No space left on device\n\
             {after}"
        );
        assert!(after.len() > 256 * 1024);
        assert!(nodes_with_log(&log).0.stopped_on_full_disk(3));
        // The same volume after other last words is still not a full disk.
        let other =
            format!("INFO store opened\nhsm-node: raft stopped: vote went backwards\n{after}");
        assert!(!nodes_with_log(&other).0.stopped_on_full_disk(3));
    }
}
