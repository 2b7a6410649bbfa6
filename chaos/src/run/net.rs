//! Hosts for a chaos run: one Linux network namespace per host, each with
//! one interface (`eth0`, a veth pair) on a bridge that lives in a
//! namespace of its own, so nothing of the run touches the machine's own
//! network and every packet of the run stays between hosts the run made.
//!
//! Faults on the network are routes: a host that must not reach another
//! gets a blackhole route to it (packets silently dropped, as on a cut
//! link). A one-way cut is a route on one side only; a partition is routes
//! on both sides between every pair across it. Random packet loss is an
//! nftables table in the host's namespace that drops a share of what the
//! host sends and receives (`numgen random`). Healing removes them all.
//!
//! Every namespace is named `hsmc<pid>-<host>`, `<pid>` the harness's own
//! process: [`remove_leftovers`] deletes those of harness processes that no
//! longer run (after a crash or SIGKILL), with any process left in them.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The prefix of every namespace a run makes.
pub const PREFIX: &str = "hsmc";

/// A host of the run.
#[derive(Debug, Clone)]
pub struct Host {
    /// Its short name (`n1`, `c2`, ...).
    pub name: String,
    /// Its namespace.
    pub netns: String,
    /// Its address on the run's network.
    pub ip: Ipv4Addr,
}

/// The run's network: the bridge namespace and the hosts on it. Dropping
/// it deletes every namespace (which also ends the links and routes).
#[derive(Debug)]
pub struct Net {
    bridge: String,
    hosts: Vec<Host>,
    /// Blackholed (from, to) pairs, by host index.
    cut: BTreeSet<(usize, usize)>,
    /// Hosts losing packets, by index.
    lossy: BTreeSet<usize>,
}

/// The nftables table random loss lives in.
const LOSS_TABLE: &str = "hsmc_loss";

/// Runs `ip` with `args`; an error carries what it printed.
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs the nftables script `rules` inside namespace `ns`.
fn nft(ns: &str, rules: &str) -> Result<()> {
    use std::io::Write as _;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("cannot run nft (nftables)")?;
    child
        .stdin
        .take()
        .context("nft's input")?
        .write_all(rules.as_bytes())
        .context("cannot write to nft")?;
    let out = child.wait_with_output().context("nft")?;
    if !out.status.success() {
        bail!(
            "nft in {ns} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The namespaces that exist now.
fn namespaces() -> Result<Vec<String>> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .context("cannot run ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip netns list failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// Kills every process in namespace `ns` and deletes it.
fn remove_namespace(ns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
    let _ = ip(&["netns", "del", ns]);
}

/// Deletes the namespaces (and their processes) of harness runs whose
/// process is gone. Returns how many it removed.
///
/// # Errors
/// If the namespaces cannot be listed.
pub fn remove_leftovers() -> Result<usize> {
    let mut removed = 0;
    for ns in namespaces()? {
        let Some(rest) = ns.strip_prefix(PREFIX) else {
            continue;
        };
        let Some((pid, _)) = rest.split_once('-') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            remove_namespace(&ns);
            removed += 1;
        }
    }
    Ok(removed)
}

/// Whether this process may make namespaces (it runs as root).
pub fn can_make_namespaces() -> bool {
    // The effective uid, as /proc reports it (no libc call needed).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

impl Net {
    /// Makes a host per name in `names` (addresses 10.77.0.10 on, in
    /// order) on one bridge.
    ///
    /// # Errors
    /// If a namespace, link or address cannot be made (what was made is
    /// removed again).
    pub fn create(names: &[String]) -> Result<Net> {
        let me = std::process::id();
        let mut net = Net {
            bridge: format!("{PREFIX}{me}-br"),
            hosts: Vec::new(),
            cut: BTreeSet::new(),
            lossy: BTreeSet::new(),
        };
        ip(&["netns", "add", &net.bridge])?;
        ip(&["-n", &net.bridge, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &net.bridge, "link", "set", "br0", "up"])?;
        for (i, name) in names.iter().enumerate() {
            let host = Host {
                name: name.clone(),
                netns: format!("{PREFIX}{me}-{name}"),
                ip: Ipv4Addr::new(10, 77, 0, 10 + u8::try_from(i).context("too many hosts")?),
            };
            ip(&["netns", "add", &host.netns])?;
            net.hosts.push(host.clone());
            let port = format!("v{i}");
            ip(&[
                "-n",
                &net.bridge,
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &host.netns,
            ])?;
            ip(&["-n", &net.bridge, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &net.bridge, "link", "set", &port, "up"])?;
            let addr = format!("{}/24", host.ip);
            ip(&["-n", &host.netns, "addr", "add", &addr, "dev", "eth0"])?;
            ip(&["-n", &host.netns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &host.netns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    /// The hosts, in the order they were made.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The host named `name`.
    ///
    /// # Errors
    /// If there is none.
    pub fn host(&self, name: &str) -> Result<&Host> {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .with_context(|| format!("no host {name}"))
    }

    /// A command that runs `program` inside `host`'s namespace, in a
    /// process group of its own: a Ctrl-C at the terminal reaches the
    /// runner only, which stops what it started in its own order (clients
    /// through the stop file, so they finish what they have in flight).
    pub fn command(host: &Host, program: &std::path::Path) -> Command {
        use std::os::unix::process::CommandExt as _;
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &host.netns]).arg(program);
        c.process_group(0);
        c
    }

    fn index(&self, name: &str) -> Result<usize> {
        self.hosts
            .iter()
            .position(|h| h.name == name)
            .with_context(|| format!("no host {name}"))
    }

    /// Drops every packet `from` sends to `to` (one way).
    ///
    /// # Errors
    /// If the route cannot be added.
    pub fn cut_one_way(&mut self, from: &str, to: &str) -> Result<()> {
        let (f, t) = (self.index(from)?, self.index(to)?);
        if self.cut.insert((f, t)) {
            let dest = format!("{}/32", self.hosts[t].ip);
            ip(&[
                "-n",
                &self.hosts[f].netns,
                "route",
                "add",
                "blackhole",
                &dest,
            ])?;
        }
        Ok(())
    }

    /// Cuts every pair across the two sides, both ways.
    ///
    /// # Errors
    /// If a route cannot be added.
    pub fn partition(&mut self, side_a: &[String], side_b: &[String]) -> Result<()> {
        for a in side_a {
            for b in side_b {
                self.cut_one_way(a, b)?;
                self.cut_one_way(b, a)?;
            }
        }
        Ok(())
    }

    /// Drops `percent` of the packets `host` sends and receives, at random.
    ///
    /// # Errors
    /// If nftables is missing or refuses the rules.
    pub fn lose(&mut self, host: &str, percent: u8) -> Result<()> {
        let h = self.index(host)?;
        if !(1..=99).contains(&percent) || !self.lossy.insert(h) {
            bail!("cannot make {host} lose {percent}% (again)");
        }
        let rules = format!(
            "table inet {LOSS_TABLE} {{\n\
             chain input {{ type filter hook input priority 0; numgen random mod 100 < {percent} drop; }}\n\
             chain output {{ type filter hook output priority 0; numgen random mod 100 < {percent} drop; }}\n\
             }}\n"
        );
        nft(&self.hosts[h].netns, &rules)
    }

    /// Removes every cut and every loss.
    ///
    /// # Errors
    /// If a route or rule cannot be removed (the others are removed all
    /// the same).
    pub fn heal(&mut self) -> Result<()> {
        // Every rule is removed even when one fails: stopping at the first
        // error would leave the rest in force, forgotten, and the network
        // cut for the rest of the run.
        let mut failed = Vec::new();
        for h in std::mem::take(&mut self.lossy) {
            if let Err(e) = nft(
                &self.hosts[h].netns,
                &format!("delete table inet {LOSS_TABLE}\n"),
            ) {
                failed.push(format!("{e:#}"));
            }
        }
        for (f, t) in std::mem::take(&mut self.cut) {
            let dest = format!("{}/32", self.hosts[t].ip);
            if let Err(e) = ip(&[
                "-n",
                &self.hosts[f].netns,
                "route",
                "del",
                "blackhole",
                &dest,
            ]) {
                failed.push(format!("{e:#}"));
            }
        }
        if !failed.is_empty() {
            bail!("cannot heal the network: {}", failed.join("; "));
        }
        Ok(())
    }

    /// The cuts in force, as (from, to) host names.
    pub fn cuts(&self) -> Vec<(String, String)> {
        self.cut
            .iter()
            .map(|&(f, t)| (self.hosts[f].name.clone(), self.hosts[t].name.clone()))
            .collect()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for h in &self.hosts {
            remove_namespace(&h.netns);
        }
        remove_namespace(&self.bridge);
    }
}
