//! `hsm-chaos deploy`: the operator guide's multi-host deployment,
//! executed on hosts in network namespaces (the chaos harness's own
//! [`Net`]), then checked the way an operator would.
//!
//! Every node host is a namespace with a directory of its own standing
//! for its file system (`hosts/<host>/etc/hsm/node.toml`,
//! `hosts/<host>/var/lib/hsm`), and the zones are spread over them in turn
//! (`zone-a`, `zone-b`, ...). Each zone has a client host. The run follows
//! docs/operator-guide.md command by command, with the real `hsm-node` and
//! `hsm` binaries:
//!
//! 1. the first host: its `node.toml`, `hsm-node init` (the one-time admin
//!    password read from what it prints), `hsm-node start`;
//! 2. `hsm cluster activate`, a second crypto officer and a crypto user;
//! 3. every other host: `hsm-node prepare` with the CA, `openssl verify`
//!    of its certificate, `hsm node add --request` by an officer, and
//!    `hsm-node start --join <first node> --join-pin <its transport-key>`;
//! 4. every client's `cluster.toml`: the zone, and a member of each zone
//!    with its pin from `hsm cluster info`.
//!
//! Then the checks: the cluster formed (every member a voter, every one
//! answering); a client in each zone signs with `hsm crypto sign` (each
//! signature checked with `openssl dgst -verify`) and each node's
//! `hsm_requests_total` says the signatures were made in the client's own
//! zone; zone b is cut off from every other host and its client's calls
//! (signatures and a key generation) are served by the other zones; after
//! healing, the leader is killed (SIGKILL) and every zone's client signs
//! and generates a key again, under a new leader; the old leader comes
//! back; a member is replaced on its host (stopped, removed, wiped, added
//! again under a new id) and its zone's client is served. Last, no file of the run (logs, transcript, data directories)
//! holds a password, raw, hex or base64.
//!
//! `transcript.txt` lists every command in order with the host it ran on
//! (environment variable names only, never their values), for comparing
//! with the guide; `deploy.json` has the figures.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;
use serde_json::Value;

use crate::run::net::{self, Host, Net};

/// Each node's QUIC port (the guide's default).
const NODE_PORT: u16 = 7400;
/// Each node's metrics endpoint port.
const METRICS_PORT: u16 = 9464;
/// Passwords of the run's users (test accounts of a throwaway cluster).
const ADMIN_PASSWORD: &str = "deploy-admin-8c41f7";
const OFFICER_PASSWORD: &str = "deploy-officer-2e90b5";
const APP_PASSWORD: &str = "deploy-app-5d17aa";
/// Signatures each client makes per check.
const SIGNATURES: u32 = 3;
/// Longest any one command may run.
const COMMAND_LIMIT: Duration = Duration::from_secs(90);

/// What `hsm-chaos deploy` is asked to do.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// Nodes (1 to 28).
    pub nodes: u64,
    /// Zones (the nodes in turn); zone b is cut off, so at least 2.
    pub zones: u64,
    /// The output directory (new or empty).
    pub out: PathBuf,
    /// The `hsm-node` binary.
    pub hsm_node: PathBuf,
    /// The `hsm` binary.
    pub hsm: PathBuf,
}

/// What a deployment showed, in `deploy.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Nodes and zones.
    pub nodes: u64,
    /// Zones.
    pub zones: u64,
    /// From `init` to every member a voter and answering.
    pub formed_ms: u64,
    /// Signatures made by each zone's client, by zone, and where.
    pub routing: Vec<Routing>,
    /// Zone b cut off: its client's calls and where they were served.
    pub zone_cut: Routing,
    /// Slowest call of zone b's client while its zone was cut off.
    pub zone_cut_slowest_call_ms: u64,
    /// The leader killed.
    pub killed_leader: u64,
    /// The leader after.
    pub new_leader: u64,
    /// From the kill to the first key generated afterwards.
    pub leader_loss_write_ms: u64,
    /// The member replaced on its host, and its successor's id.
    pub replaced: (u64, u64),
    /// From stopping the member to its successor voting and its zone's
    /// client served.
    pub replace_ms: u64,
    /// The whole run.
    pub total_ms: u64,
}

/// Where one client's signatures were made.
#[derive(Debug, Clone, Serialize)]
pub struct Routing {
    /// The client's zone.
    pub client_zone: String,
    /// Signatures made, by the zone of the node that made them.
    pub by_zone: BTreeMap<String, u64>,
}

/// The zone of node `i` (1-based) when `zones` zones hold them in turn.
fn zone_name(i: u64, zones: u64) -> String {
    let z = (i - 1) % zones;
    let letter = char::from(b'a' + u8::try_from(z).unwrap_or(0));
    format!("zone-{letter}")
}

/// A host's directory, standing for its file system.
fn root(out: &Path, host: &str) -> PathBuf {
    out.join("hosts").join(host)
}

/// A command to run on a host, as an operator types it.
#[derive(Clone)]
struct Step {
    host: Host,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    cwd: Option<PathBuf>,
    /// What it prints is secret (`hsm-node init`'s one-time password):
    /// kept out of errors.
    secret_output: bool,
}

impl Step {
    fn new(host: &Host, program: impl Into<PathBuf>, args: &[&str]) -> Step {
        Step {
            host: host.clone(),
            program: program.into(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: Vec::new(),
            cwd: None,
            secret_output: false,
        }
    }

    fn secret_output(mut self) -> Step {
        self.secret_output = true;
        self
    }

    fn env(mut self, name: &'static str, value: &str) -> Step {
        self.env.push((name, value.to_owned()));
        self
    }

    fn cwd(mut self, dir: PathBuf) -> Step {
        self.cwd = Some(dir);
        self
    }
}

/// The run: hosts, processes and the transcript.
struct Deployment {
    opts: DeployOptions,
    out: PathBuf,
    net: Net,
    /// Node processes, by id.
    nodes: BTreeMap<u64, Child>,
    /// The host each member runs on, by id (a replaced member's successor
    /// runs on its host under a new id).
    host_of: BTreeMap<u64, String>,
    transcript: String,
    started: Instant,
    /// Every password of the run, the one-time one too: no file may hold
    /// one.
    secrets: Vec<String>,
}

impl Deployment {
    fn node_host(&self, id: u64) -> Result<&Host> {
        let name = self
            .host_of
            .get(&id)
            .with_context(|| format!("node {id} runs on no host"))?;
        self.net.host(name)
    }

    fn client_host(&self, zone: &str) -> Result<&Host> {
        self.net
            .host(&format!("client-{}", zone.trim_start_matches("zone-")))
    }

    fn node_ip(&self, id: u64) -> Result<Ipv4Addr> {
        Ok(self.node_host(id)?.ip)
    }

    /// Node `id`'s zone: its host's (hosts `n<i>` are in the zones in
    /// turn).
    fn node_zone(&self, id: u64) -> String {
        let slot = self
            .host_of
            .get(&id)
            .and_then(|h| h.strip_prefix('n')?.parse().ok())
            .unwrap_or(id);
        zone_name(slot, self.opts.zones)
    }

    /// Runs a step to its end (at most [`COMMAND_LIMIT`]) and returns what
    /// it printed on stdout; a failure carries its stderr.
    fn run(&mut self, step: Step) -> Result<String> {
        self.note(&step);
        let mut cmd = Net::command(&step.host, &step.program);
        cmd.args(&step.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &step.env {
            cmd.env(k, v);
        }
        if let Some(dir) = &step.cwd {
            cmd.current_dir(dir);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot run {}", step.program.display()))?;
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let output = match rx.recv_timeout(COMMAND_LIMIT) {
            Ok(out) => out.context("waiting for a command")?,
            Err(_) => {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                bail!(
                    "{} on {} ran longer than {COMMAND_LIMIT:?}",
                    shown(&step),
                    step.host.name
                );
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let _ = writeln!(self.transcript, "  -> {}", output.status);
        if !output.status.success() {
            let stdout = if step.secret_output {
                String::new()
            } else {
                stdout
            };
            bail!(
                "{} on {} failed ({}): {}{}",
                shown(&step),
                step.host.name,
                output.status,
                String::from_utf8_lossy(&output.stderr).trim(),
                stdout.trim()
            );
        }
        Ok(stdout)
    }

    /// Runs `step` until it succeeds, every 500 ms for at most `within`.
    fn run_until(&mut self, within: Duration, step: &Step) -> Result<String> {
        let due = Instant::now() + within;
        loop {
            match self.run(step.clone()) {
                Ok(out) => return Ok(out),
                Err(e) if Instant::now() >= due => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    fn note(&mut self, step: &Step) {
        let _ = writeln!(
            self.transcript,
            "[{:>7.1}s] {}$ {}",
            self.started.elapsed().as_secs_f64(),
            step.host.name,
            shown(step)
        );
    }

    /// Starts node `id`'s `hsm-node start` with `extra` arguments.
    fn start_node(&mut self, id: u64, extra: &[String]) -> Result<()> {
        let host = self.node_host(id)?.clone();
        let config = root(&self.out, &host.name).join("etc/hsm/node.toml");
        let mut args = vec!["start".to_owned(), "--config".to_owned(), path(&config)];
        args.extend(extra.iter().cloned());
        let hsm_node = self.opts.hsm_node.clone();
        let _ = writeln!(
            self.transcript,
            "[{:>7.1}s] {}$ {} {} &",
            self.started.elapsed().as_secs_f64(),
            host.name,
            hsm_node.display(),
            args.join(" ")
        );
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.out.join("logs").join(format!("n{id}.log")))?;
        let child = Net::command(&host, &hsm_node)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start hsm-node")?;
        self.nodes.insert(id, child);
        Ok(())
    }

    /// §4 of the guide on host `host_name`: node `id`'s `node.toml`,
    /// `hsm-node prepare` with the CA in `ca` (its key deleted after),
    /// `openssl verify`, `hsm node add --request` by the second officer
    /// from zone a's client, and `hsm-node start --join` with the member
    /// and its pin in `join`.
    fn add_node(&mut self, id: u64, host_name: &str, ca: &Path, join: (&str, &str)) -> Result<()> {
        self.host_of.insert(id, host_name.to_owned());
        let host = self.node_host(id)?.clone();
        let admin = self.client_host("zone-a")?.clone();
        let hsm_node = self.opts.hsm_node.clone();
        let hr = root(&self.out, &host.name);
        let ca_here = hr.join("root/ca");
        std::fs::create_dir_all(&ca_here)?;
        std::fs::copy(ca.join("ca.pem"), ca_here.join("ca.pem"))?;
        std::fs::copy(ca.join("ca.key"), ca_here.join("ca.key"))?;
        let config = hr.join("etc/hsm/node.toml");
        let data = hr.join("var/lib/hsm");
        std::fs::write(
            &config,
            node_config(id, &self.node_zone(id), host.ip, &data),
        )?;
        self.run(Step::new(
            &host,
            &hsm_node,
            &[
                "prepare",
                "--config",
                &path(&config),
                "--ca-cert",
                &path(&ca_here.join("ca.pem")),
                "--ca-key",
                &path(&ca_here.join("ca.key")),
            ],
        ))?;
        std::fs::remove_file(ca_here.join("ca.key"))?;
        let said = self.run(Step::new(
            &host,
            "openssl",
            &[
                "verify",
                "-CAfile",
                &path(&data.join("tls/ca.pem")),
                &path(&data.join("tls/node.pem")),
            ],
        ))?;
        ensure!(
            said.trim_end().ends_with("OK"),
            "openssl verify said {said}"
        );
        let request = data.join("join-request.toml");
        let step = self.hsm(
            &admin,
            Some(("officer2", OFFICER_PASSWORD)),
            &["node", "add", "--request", &path(&request)],
        );
        self.run(step)?;
        let (address, pin) = join;
        self.start_node(
            id,
            &[
                "--join".into(),
                address.into(),
                "--join-pin".into(),
                pin.into(),
            ],
        )
    }

    /// §5 of the guide, "Replacing a node" on the same host: stop member
    /// `old`, remove it, wipe its data directory, and add the host again
    /// under id `new`.
    fn replace_node(&mut self, old: u64, new: u64, ca: &Path, join: (&str, &str)) -> Result<()> {
        let host = self.node_host(old)?.clone();
        let admin = self.client_host("zone-a")?.clone();
        let _ = writeln!(self.transcript, "# {}: systemctl stop hsm-node", host.name);
        stop(self.nodes.remove(&old));
        let step = self.hsm(
            &admin,
            Some(("officer2", OFFICER_PASSWORD)),
            &["node", "remove", "--node-id", &old.to_string()],
        );
        self.run(step)?;
        let data = root(&self.out, &host.name).join("var/lib/hsm");
        let _ = writeln!(
            self.transcript,
            "# {}: rm -rf {}",
            host.name,
            data.display()
        );
        std::fs::remove_dir_all(&data)?;
        self.host_of.remove(&old);
        self.add_node(new, &host.name, ca, join)
    }

    /// `hsm` on `host` with `HSM_CLUSTER` set to that host's client config,
    /// logged in as `user` when given.
    fn hsm(&self, host: &Host, user: Option<(&str, &str)>, args: &[&str]) -> Step {
        let config = root(&self.out, &host.name).join("etc/hsm/cluster.toml");
        let mut step = Step::new(host, &self.opts.hsm, args).env("HSM_CLUSTER", &path(&config));
        if let Some((name, password)) = user {
            step = step.env("HSM_USER", name).env("HSM_PASSWORD", password);
        }
        step
    }

    /// `hsm cluster info` (logged in as the officer) from `host`, parsed.
    fn cluster_info(&mut self, host: &Host) -> Result<Value> {
        let step = self.hsm(host, Some(("admin", ADMIN_PASSWORD)), &["cluster", "info"]);
        let text = self.run(step)?;
        let doc: Value = serde_json::from_str(&text)
            .with_context(|| format!("hsm cluster info printed {text}"))?;
        Ok(doc["data"].clone())
    }

    /// Waits (at most `within`) until `hsm cluster info` from `host` shows
    /// `want` members, every one a voter, answering and seeing a leader,
    /// one of them not `not_leader`. Returns the leader.
    fn wait_formed(
        &mut self,
        host: &Host,
        want: usize,
        not_leader: Option<u64>,
        within: Duration,
    ) -> Result<u64> {
        let due = Instant::now() + within;
        loop {
            self.check_nodes_run()?;
            let last = match self.cluster_info(host) {
                Ok(info) => {
                    let members = info["members"].as_array().cloned().unwrap_or_default();
                    let all_ok = members
                        .iter()
                        .all(|m| m["voter"] == true && m["health"] == "ok");
                    let leader = info["leader"].as_u64();
                    if members.len() == want && all_ok {
                        if let Some(l) = leader.filter(|&l| Some(l) != not_leader) {
                            return Ok(l);
                        }
                    }
                    let waiting: Vec<String> = members
                        .iter()
                        .filter(|m| m["voter"] != true || m["health"] != "ok")
                        .map(|m| format!("{}: voter {} {}", m["node-id"], m["voter"], m["health"]))
                        .collect();
                    format!(
                        "{} members of {want}, leader {leader:?}; not yet: {waiting:?}",
                        members.len()
                    )
                }
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= due {
                bail!("the cluster did not form within {within:?}: {last}");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Fails if a node process of the run ended, with the end of its log.
    fn check_nodes_run(&mut self) -> Result<()> {
        for (id, child) in &mut self.nodes {
            if let Some(status) = child.try_wait()? {
                let host = self.host_of.get(id).cloned().unwrap_or_default();
                let log = std::fs::read_to_string(self.out.join("logs").join(format!("n{id}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(8).collect();
                bail!(
                    "node {id} on {host} exited ({status}); the end of its log:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
        Ok(())
    }

    /// Signatures made so far by each node (`hsm_requests_total` of
    /// `sign` with outcome `ok`), read from `from`'s host; nodes it cannot
    /// reach are left out.
    fn signatures_by_node(&mut self, from: &Host, ids: &[u64]) -> Result<BTreeMap<u64, u64>> {
        // A node answers scrapes from a copy of its figures up to this old.
        std::thread::sleep(hsm_node::metrics::FRESH_FOR + Duration::from_millis(100));
        let mut counts = BTreeMap::new();
        for &id in ids {
            let url = format!("http://{}:{METRICS_PORT}/metrics", self.node_ip(id)?);
            // Not in the transcript: an operator's monitoring, not a step.
            // A scrape may wait on a readiness check: three tries.
            let mut text = None;
            for _ in 0..3 {
                let out = Net::command(from, Path::new("curl"))
                    .args(["-sf", "--max-time", "5", &url])
                    .stdin(Stdio::null())
                    .output()
                    .context("cannot run curl")?;
                if out.status.success() {
                    text = Some(String::from_utf8_lossy(&out.stdout).into_owned());
                    break;
                }
            }
            let text = text
                .with_context(|| format!("cannot read node {id}'s metrics from {}", from.name))?;
            counts.insert(id, sign_count(&text));
        }
        Ok(counts)
    }

    /// The client of `zone` signs [`SIGNATURES`] times; each signature is
    /// checked with openssl. Returns the slowest call.
    fn sign_from(&mut self, zone: &str) -> Result<Duration> {
        let host = self.client_host(zone)?.clone();
        let dir = root(&self.out, &host.name);
        let data = dir.join("message.bin");
        std::fs::write(&data, format!("signed from {zone}\n"))?;
        let pem = root(&self.out, "client-a").join("deploy.pem");
        let mut slowest = Duration::ZERO;
        for k in 0..SIGNATURES {
            let sig = dir.join(format!("message-{k}.sig"));
            let _ = std::fs::remove_file(&sig);
            let began = Instant::now();
            let step = self.hsm(
                &host,
                Some(("app", APP_PASSWORD)),
                &[
                    "crypto",
                    "sign",
                    "ecdsa",
                    "--hash-function",
                    "sha256",
                    "--key-filter",
                    "attr.label=deploy",
                    "--data-path",
                    &path(&data),
                    "--signature-path",
                    &path(&sig),
                ],
            );
            self.run(step)?;
            slowest = slowest.max(began.elapsed());
            let verify = Step::new(
                &host,
                "openssl",
                &[
                    "dgst",
                    "-sha256",
                    "-verify",
                    &path(&pem),
                    "-signature",
                    &path(&sig),
                    &path(&data),
                ],
            );
            let said = self.run(verify)?;
            ensure!(said.contains("Verified OK"), "openssl said {said}");
        }
        Ok(slowest)
    }

    /// The client of `zone` generates a key (a replicated write).
    fn generate_from(&mut self, zone: &str, label: &str) -> Result<Duration> {
        let began = Instant::now();
        let step = self.generate_step(zone, label)?;
        self.run(step)?;
        Ok(began.elapsed())
    }

    /// `hsm key generate-asymmetric-pair` of a P-256 key labelled `label`
    /// by the crypto user, on the client of `zone`.
    fn generate_step(&self, zone: &str, label: &str) -> Result<Step> {
        let host = self.client_host(zone)?;
        Ok(self.hsm(
            host,
            Some(("app", APP_PASSWORD)),
            &[
                "key",
                "generate-asymmetric-pair",
                "ec",
                "--curve",
                "prime256v1",
                "--label",
                label,
            ],
        ))
    }

    /// Signatures made meanwhile, by the zone of the node, from counts
    /// before and after.
    fn by_zone(
        &self,
        before: &BTreeMap<u64, u64>,
        after: &BTreeMap<u64, u64>,
    ) -> BTreeMap<String, u64> {
        let mut by_zone = BTreeMap::new();
        for (id, a) in after {
            let b = before.get(id).copied().unwrap_or(0);
            *by_zone.entry(self.node_zone(*id)).or_insert(0) += a.saturating_sub(b);
        }
        by_zone
    }

    /// Stops every node (SIGTERM, then SIGKILL after 20 s).
    fn stop_nodes(&mut self) {
        stop(std::mem::take(&mut self.nodes).into_values());
    }
}

/// Stops node processes as systemd does: SIGTERM to each, then SIGKILL to
/// any still running after 20 s.
fn stop(children: impl IntoIterator<Item = Child>) {
    let mut children: Vec<Child> = children.into_iter().collect();
    for child in &children {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
    }
    let due = Instant::now() + Duration::from_secs(20);
    for child in &mut children {
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < due {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        self.stop_nodes();
        let _ = std::fs::write(self.out.join("transcript.txt"), &self.transcript);
    }
}

/// A step as the transcript shows it: environment variable names only.
fn shown(step: &Step) -> String {
    let env: Vec<String> = step.env.iter().map(|(k, _)| format!("{k}=...")).collect();
    let mut s = env.join(" ");
    if !s.is_empty() {
        s.push(' ');
    }
    s.push_str(&step.program.display().to_string());
    for a in &step.args {
        s.push(' ');
        s.push_str(a);
    }
    if let Some(dir) = &step.cwd {
        let _ = write!(s, "   (in {})", dir.display());
    }
    s
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// The signing requests served, `hsm_requests_total{op="sign",outcome="ok"}`
/// and `op="sign-batch"` (what `hsm crypto sign` sends), in a metrics
/// text.
fn sign_count(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("hsm_requests_total{")
                && (l.contains("op=\"sign\"") || l.contains("op=\"sign-batch\""))
                && l.contains("outcome=\"ok\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// A node's `node.toml`, as the guide writes it (with a metrics endpoint on
/// the host's own address, and Raft's defaults).
fn node_config(id: u64, zone: &str, ip: Ipv4Addr, data_dir: &Path) -> String {
    format!(
        "node_id = {id}\n\
         zone = \"{zone}\"\n\
         listen = \"0.0.0.0:{NODE_PORT}\"\n\
         advertise = \"{ip}:{NODE_PORT}\"\n\
         data_dir = \"{}\"\n\
         \n\
         [log]\n\
         level = \"info,openraft=warn\"\n\
         \n\
         [metrics]\n\
         listen = \"{ip}:{METRICS_PORT}\"\n",
        data_dir.display()
    )
}

/// Runs the deployment and its checks; `deploy.json` and `transcript.txt`
/// in `out`.
///
/// # Errors
/// On the first step or check that fails (what it started is stopped and
/// removed).
pub fn deploy(opts: &DeployOptions) -> Result<Report> {
    if !net::can_make_namespaces() {
        bail!("hsm-chaos deploy makes network namespaces and needs root; run it as root (CI does)");
    }
    if !(3..=28).contains(&opts.nodes) || !(2..=26).contains(&opts.zones) {
        bail!("--nodes must be 3 to 28 (the most a cluster has), --zones 2 to 26");
    }
    if opts.nodes < opts.zones {
        bail!("--nodes must be at least --zones (a node in every zone)");
    }
    let in_zone_b = (1..=opts.nodes)
        .filter(|&i| zone_name(i, opts.zones) == "zone-b")
        .count();
    if in_zone_b * 2 >= usize::try_from(opts.nodes)? {
        bail!("zone b (cut off during the run) must hold a minority of the nodes: use more zones");
    }
    let removed = net::remove_leftovers()?;
    if removed > 0 {
        eprintln!("removed {removed} namespaces left by earlier runs");
    }
    let out = crate::run::output_dir(&opts.out)?;
    let zones: Vec<String> = (1..=opts.zones).map(|z| zone_name(z, opts.zones)).collect();
    let mut names: Vec<String> = (1..=opts.nodes).map(|i| format!("n{i}")).collect();
    names.extend(
        zones
            .iter()
            .map(|z| format!("client-{}", z.trim_start_matches("zone-"))),
    );
    for name in &names {
        std::fs::create_dir_all(root(&out, name).join("etc/hsm"))?;
    }
    let net = Net::create(&names)?;
    let mut d = Deployment {
        opts: opts.clone(),
        out: out.clone(),
        net,
        nodes: BTreeMap::new(),
        host_of: BTreeMap::new(),
        transcript: String::new(),
        started: Instant::now(),
        secrets: [ADMIN_PASSWORD, OFFICER_PASSWORD, APP_PASSWORD]
            .map(str::to_owned)
            .to_vec(),
    };
    let report = d.go(&zones);
    d.stop_nodes();
    let _ = std::fs::write(out.join("transcript.txt"), &d.transcript);
    let secrets = std::mem::take(&mut d.secrets);
    drop(d);
    // Scanned whatever happened: a failed run's files are kept too.
    let leaked = leaked_secrets(&out, &secrets);
    let report = report?;
    leaked?;
    std::fs::write(
        out.join("deploy.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    Ok(report)
}

impl Deployment {
    fn go(&mut self, zones: &[String]) -> Result<Report> {
        let began = Instant::now();
        let n = self.opts.nodes;
        // 1. The first host: node.toml, init, start.
        self.host_of.insert(1, "n1".into());
        let h1 = root(&self.out, "n1");
        let init_dir = h1.join("root/hsm-init");
        std::fs::create_dir_all(&init_dir)?;
        let config1 = h1.join("etc/hsm/node.toml");
        std::fs::write(
            &config1,
            node_config(
                1,
                &self.node_zone(1),
                self.node_ip(1)?,
                &h1.join("var/lib/hsm"),
            ),
        )?;
        let host1 = self.node_host(1)?.clone();
        let hsm_node = self.opts.hsm_node.clone();
        let printed = self.run(
            Step::new(&host1, &hsm_node, &["init", "--config", &path(&config1)])
                .cwd(init_dir.clone())
                .secret_output(),
        )?;
        let otp = printed
            .lines()
            .find_map(|l| {
                l.strip_prefix("One-time admin password (shown once; activation replaces it): ")
            })
            .context("hsm-node init printed no one-time admin password")?
            .trim()
            .to_owned();
        self.secrets.push(otp.clone());
        self.start_node(1, &[])?;
        // The client config goes to every client host (the operator's
        // workstation is zone a's client).
        let cluster_toml = std::fs::read_to_string(init_dir.join("cluster.toml"))?;
        for z in zones {
            let host = self.client_host(z)?.name.clone();
            std::fs::write(
                root(&self.out, &host).join("etc/hsm/cluster.toml"),
                &cluster_toml,
            )?;
        }
        let admin = self.client_host(&zones[0])?.clone();
        let step = self.hsm(&admin, None, &["cluster", "info"]);
        self.run_until(Duration::from_secs(60), &step)?;
        // 2. Activation and users.
        let step = self
            .hsm(
                &admin,
                None,
                &["cluster", "activate", "--new-password-env", "NEW_PW"],
            )
            .env("HSM_PASSWORD", &otp)
            .env("NEW_PW", ADMIN_PASSWORD);
        self.run(step)?;
        for (name, role, pw) in [
            ("officer2", "admin", OFFICER_PASSWORD),
            ("app", "crypto-user", APP_PASSWORD),
        ] {
            let step = self
                .hsm(
                    &admin,
                    Some(("admin", ADMIN_PASSWORD)),
                    &[
                        "user",
                        "create",
                        "--username",
                        name,
                        "--role",
                        role,
                        "--password-env",
                        "NEW_PW",
                    ],
                )
                .env("NEW_PW", pw);
            self.run(step)?;
        }
        let info = self.cluster_info(&admin)?;
        let pin1 = info["members"][0]["transport-key"]
            .as_str()
            .context("cluster info shows no transport-key")?
            .to_owned();
        // 3. Every other host: prepare, verify, add (approved by the second
        // officer), start with --join.
        let ca = init_dir.join("cluster-ca");
        let join = format!("{}:{NODE_PORT}", self.node_ip(1)?);
        for id in 2..=n {
            self.add_node(id, &format!("n{id}"), &ca, (&join, &pin1))?;
        }
        let per_node = Duration::from_secs(5);
        let within = Duration::from_secs(60) + per_node * u32::try_from(n)?;
        let leader = self.wait_formed(&admin, usize::try_from(n)?, None, within)?;
        let formed_ms = ms(began.elapsed());
        eprintln!(
            "{n} nodes in {} zones formed in {formed_ms} ms; leader n{leader}",
            zones.len()
        );

        // 4. Client configs: the zone, and a member of each zone.
        let info = self.cluster_info(&admin)?;
        let mut config: hsm_proto::client::ClientConfig = toml::from_str(&cluster_toml)?;
        config.nodes.clear();
        for z in zones {
            let m = info["members"]
                .as_array()
                .and_then(|ms| ms.iter().find(|m| m["zone"] == z.as_str()))
                .with_context(|| format!("no member in {z}"))?;
            config.nodes.push(hsm_proto::client::ClientNode {
                id: m["node-id"].as_u64().context("node-id")?,
                address: m["address"].as_str().context("address")?.to_owned(),
                zone: z.clone(),
                transport_key: hex::decode(m["transport-key"].as_str().context("pin")?)?
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("a pin is 32 bytes"))?,
            });
        }
        for z in zones {
            let host = self.client_host(z)?.name.clone();
            let mut mine = config.clone();
            mine.zone = Some(z.clone());
            let file = root(&self.out, &host).join("etc/hsm/cluster.toml");
            std::fs::remove_file(&file)?;
            hsm_node::local::write_client_config(&file, &mine)?;
        }

        // 5. A key, its public half for openssl, and a signature from each
        // zone, made in that zone.
        self.generate_from(&zones[0], "deploy")?;
        let pem = root(&self.out, &admin.name).join("deploy.pem");
        let step = self.hsm(
            &admin,
            Some(("app", APP_PASSWORD)),
            &[
                "key",
                "generate-file",
                "--encoding",
                "pem",
                "--path",
                &path(&pem),
                "--key-filter",
                "attr.label=deploy",
            ],
        );
        self.run(step)?;
        let ids: Vec<u64> = (1..=n).collect();
        let mut routing = Vec::new();
        for z in zones {
            let host = self.client_host(z)?.clone();
            let before = self.signatures_by_node(&host, &ids)?;
            self.sign_from(z)?;
            let after = self.signatures_by_node(&host, &ids)?;
            let by_zone = self.by_zone(&before, &after);
            ensure!(
                by_zone.get(z).copied() == Some(u64::from(SIGNATURES))
                    && by_zone.values().sum::<u64>() == u64::from(SIGNATURES),
                "the client in {z} should be served in {z}: signatures by zone {by_zone:?}"
            );
            routing.push(Routing {
                client_zone: z.clone(),
                by_zone,
            });
        }

        // 6. Zone b cut off from every other host: its client is served by
        // the other zones, reads and writes.
        let cut_zone = zones[1].clone();
        let in_zone: Vec<String> = (1..=n)
            .filter(|&i| self.node_zone(i) == cut_zone)
            .map(|i| format!("n{i}"))
            .collect();
        let others: Vec<String> = self
            .net
            .hosts()
            .iter()
            .map(|h| h.name.clone())
            .filter(|h| !in_zone.contains(h))
            .collect();
        let before = self.signatures_by_node(&admin, &ids)?;
        self.net.partition(&in_zone, &others)?;
        eprintln!("{cut_zone} cut off ({})", in_zone.join(" "));
        let _ = writeln!(
            self.transcript,
            "# {cut_zone} cut off from every other host"
        );
        let mut slowest = self.sign_from(&cut_zone)?;
        slowest = slowest.max(self.generate_from(&cut_zone, "made-while-cut")?);
        self.net.heal()?;
        let _ = writeln!(self.transcript, "# healed");
        self.wait_formed(&admin, usize::try_from(n)?, None, Duration::from_secs(60))?;
        // Read from zone a's host once every node is reachable again: the
        // cut-off zone made none of them.
        let after = self.signatures_by_node(&admin, &ids)?;
        let by_zone = self.by_zone(&before, &after);
        ensure!(
            by_zone.get(&cut_zone).copied() == Some(0)
                && by_zone.values().sum::<u64>() == u64::from(SIGNATURES),
            "with {cut_zone} cut off, its client's signatures should be made elsewhere: {by_zone:?}"
        );
        let zone_cut = Routing {
            client_zone: cut_zone.clone(),
            by_zone,
        };

        // 7. The leader's host fails: every zone goes on under a new leader.
        let leader = self.cluster_info(&admin)?["leader"]
            .as_u64()
            .context("no leader")?;
        let killed = Instant::now();
        let mut child = self
            .nodes
            .remove(&leader)
            .with_context(|| format!("the leader n{leader} is no process of this run"))?;
        child.kill().context("cannot kill the leader")?;
        child.wait()?;
        eprintln!("killed the leader n{leader}");
        let _ = writeln!(self.transcript, "# the leader n{leader} killed (SIGKILL)");
        // The first write: a new `hsm` process right after the loss, again
        // (each within its own 10 s deadline) until one succeeds.
        let step = self.generate_step(&zones[0], "after-leader-loss")?;
        self.run_until(Duration::from_secs(30), &step)?;
        let leader_loss_write_ms = ms(killed.elapsed());
        for z in zones {
            self.sign_from(z)?;
            self.generate_from(z, &format!("after-leader-loss-{z}"))?;
        }
        self.start_node(leader, &[])?;
        let new_leader = self.wait_formed(
            &admin,
            usize::try_from(n)?,
            Some(leader),
            Duration::from_secs(60) + per_node * u32::try_from(n)?,
        )?;
        // 8. A node replaced on its host, wiped, under a new id (ids are
        // never reused): the cluster is whole again, and the client of
        // that host's zone is served.
        let old = n;
        let new = n + 1;
        let replaced_zone = self.node_zone(old);
        let began_replace = Instant::now();
        let pin = self.cluster_info(&admin)?["members"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| m["node-id"] == 1))
            .and_then(|m| m["transport-key"].as_str())
            .context("node 1's pin")?
            .to_owned();
        self.replace_node(old, new, &init_dir.join("cluster-ca"), (&join, &pin))?;
        self.wait_formed(&admin, usize::try_from(n)?, None, Duration::from_secs(90))?;
        let info = self.cluster_info(&admin)?;
        let members: Vec<u64> = info["members"]
            .as_array()
            .map(|ms| ms.iter().filter_map(|m| m["node-id"].as_u64()).collect())
            .unwrap_or_default();
        ensure!(
            members.contains(&new) && !members.contains(&old),
            "members after replacing {old} by {new}: {members:?}"
        );
        self.sign_from(&replaced_zone)?;
        let replace_ms = ms(began_replace.elapsed());
        eprintln!("node {old} replaced by {new} in {replace_ms} ms");

        let step = self.hsm(&admin, Some(("app", APP_PASSWORD)), &["key", "list"]);
        let listed = self.run(step)?;
        let listed: Value = serde_json::from_str(&listed)?;
        let keys = listed["data"]["total_key_count"].as_u64().unwrap_or(0);
        // deploy, made-while-cut, after-leader-loss, and one per zone.
        let made = 3 + u64::try_from(zones.len())?;
        ensure!(keys == made, "{keys} keys listed, {made} made");
        Ok(Report {
            nodes: n,
            zones: self.opts.zones,
            formed_ms,
            routing,
            zone_cut,
            zone_cut_slowest_call_ms: ms(slowest),
            killed_leader: leader,
            new_leader,
            leader_loss_write_ms,
            replaced: (old, new),
            replace_ms,
            total_ms: ms(began.elapsed()),
        })
    }
}

/// Fails if any file of the run holds one of `secrets`, raw, hex or
/// base64 (the project's one scanner, [`crate::run::scan`]).
fn leaked_secrets(out: &Path, secrets: &[String]) -> Result<()> {
    let named: Vec<(&str, &[u8])> = secrets
        .iter()
        .map(|s| ("a password of the deployment", s.as_bytes()))
        .collect();
    let found = crate::run::scan::scan(out, &named);
    ensure!(
        found.is_empty(),
        "{}",
        found
            .iter()
            .map(|a| a.what.clone())
            .collect::<Vec<_>>()
            .join("; ")
    );
    Ok(())
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_go_round_and_signatures_are_read_from_metrics() {
        let z: Vec<String> = (1..=5).map(|i| zone_name(i, 3)).collect();
        assert_eq!(z, ["zone-a", "zone-b", "zone-c", "zone-a", "zone-b"]);
        let text = "# HELP hsm_requests Client requests\n\
                    hsm_requests_total{op=\"sign\",outcome=\"ok\"} 7\n\
                    hsm_requests_total{op=\"sign\",outcome=\"invalid\"} 2\n\
                    hsm_requests_total{op=\"sign-batch\",outcome=\"ok\"} 3\n\
                    hsm_requests_total{op=\"sign-many\",outcome=\"ok\"} 5\n\
                    hsm_requests_total{op=\"login\",outcome=\"ok\"} 4\n";
        assert_eq!(sign_count(text), 10);
        assert_eq!(sign_count(""), 0);
    }

    #[test]
    fn a_password_in_any_file_of_the_run_is_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let logs = dir.path().join("hosts/n3/logs");
        std::fs::create_dir_all(&logs).expect("mkdir");
        std::fs::write(logs.join("n3.log"), "login user=app\n").expect("write");
        let secrets = vec!["hunter2-hunter2".to_owned()];
        leaked_secrets(dir.path(), &secrets).expect("nothing leaked");
        std::fs::write(logs.join("n3.log"), "password hunter2-hunter2 refused\n").expect("write");
        let e = leaked_secrets(dir.path(), &secrets).expect_err("leaked");
        assert!(e.to_string().contains("n3.log"), "{e}");
    }
}
