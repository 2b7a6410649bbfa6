//! A cluster of real `hsm-node` processes on loopback, for tests.
//!
//! `hsm-node dev --setup-only` creates the files (exactly what the README's
//! first command does), then each node runs as its own
//! `hsm-node start --config node<i>.toml` process that a test can kill
//! (SIGKILL, as a crash) and restart. Logs go to `node<i>.log` in the
//! cluster directory and are printed when a test fails.
#![allow(dead_code)]

pub mod cli;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hsm_client::{Client, ClientOptions};
use hsm_proto::client::{ClientConfig, ErrorKind, Operation, Request, Response, Secret};
use hsm_proto::{codec, RequestId, Username};

/// The unactivated admin's password in test clusters.
pub const ADMIN_PASSWORD: &str = "initial-admin-pw";

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub nodes: u64,
    procs: BTreeMap<u64, Child>,
    env: Vec<(String, String)>,
    /// Environment for one node's process only, at every start.
    node_env: BTreeMap<u64, Vec<(String, String)>>,
    /// The `hsm-node` binary each node runs when it starts: this build's
    /// unless set otherwise (an earlier build, for upgrades).
    node_bin: BTreeMap<u64, PathBuf>,
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_hsm-node")
}

/// Attributes of a key for signing and verifying, labelled `label`.
pub fn signing(label: &str) -> hsm_proto::KeyAttributes {
    hsm_proto::KeyAttributes {
        label: label.into(),
        sign: true,
        verify: true,
        ..hsm_proto::KeyAttributes::default()
    }
}

/// `GET path` over HTTP/1.0 (the connection closes after the answer):
/// status code and body. For a node's metrics and health endpoint.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_owned());
    Ok((status, body))
}

/// Whether `child` has ended (a zombie not yet reaped, or gone), read
/// from /proc so a shared borrow will do.
fn has_exited(child: &Child) -> bool {
    match std::fs::read_to_string(format!("/proc/{}/stat", child.id())) {
        // The state follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

/// A base port with `n` free loopback ports after it
/// ([`hsm_node::local::free_ports`]: below the ephemeral range, none
/// handed out twice in this process).
fn free_ports(n: u64) -> u16 {
    hsm_node::local::free_ports(u16::try_from(n).expect("few ports")).expect("free ports")
}

impl Cluster {
    /// Creates an `n`-node cluster and starts every node.
    pub fn start(n: u64) -> Cluster {
        Cluster::start_with_env(n, &[])
    }

    /// As [`Cluster::start`], with extra environment (such as `HSM_NODE_*`
    /// overrides) for every node process.
    pub fn start_with_env(n: u64, env: &[(&str, &str)]) -> Cluster {
        Cluster::start_with_node_env(n, env, |_| Vec::new())
    }

    /// As [`Cluster::start_with_env`], with `node_env(i)` added to node
    /// `i`'s environment at every start (such as an address of its own).
    pub fn start_with_node_env(
        n: u64,
        env: &[(&str, &str)],
        node_env: impl Fn(u64) -> Vec<(String, String)>,
    ) -> Cluster {
        Cluster::start_built_by(Path::new(bin()), n, env, node_env)
    }

    /// As [`Cluster::start_with_node_env`], with `node_bin` (another build
    /// of `hsm-node`, such as the one an upgrade starts from) creating the
    /// cluster and running every node until [`Cluster::set_node_bin`].
    pub fn start_built_by(
        node_bin: &Path,
        n: u64,
        env: &[(&str, &str)],
        node_env: impl Fn(u64) -> Vec<(String, String)>,
    ) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = free_ports(n);
        let out = Command::new(node_bin)
            .args([
                "dev",
                "--setup-only",
                "--nodes",
                &n.to_string(),
                "--base-port",
            ])
            .arg(base.to_string())
            .arg("--dir")
            .arg(dir.path())
            .env("HSM_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .output()
            .expect("run hsm-node dev");
        assert!(
            out.status.success(),
            "hsm-node dev --setup-only failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut c = Cluster {
            dir,
            nodes: n,
            procs: BTreeMap::new(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            node_env: (1..=n).map(|i| (i, node_env(i))).collect(),
            node_bin: (1..=n).map(|i| (i, node_bin.to_path_buf())).collect(),
        };
        for i in 1..=n {
            c.start_node(i);
        }
        c
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn client_config(&self) -> PathBuf {
        self.path().join("client.toml")
    }

    pub fn config_file(&self, i: u64) -> PathBuf {
        self.path().join(format!("node{i}.toml"))
    }

    pub fn log_file(&self, i: u64) -> PathBuf {
        self.path().join(format!("node{i}.log"))
    }

    /// From its next start on, node `i` runs the `hsm-node` at `path`
    /// (an upgrade or a downgrade).
    pub fn set_node_bin(&mut self, i: u64, path: &Path) {
        self.node_bin.insert(i, path.to_path_buf());
    }

    /// Starts node `i` (again) as its own process.
    pub fn start_node(&mut self, i: u64) {
        self.start_node_with(i, &[]);
    }

    pub fn start_node_with(&mut self, i: u64, extra: &[&str]) {
        self.spawn_node(i, extra, &[]);
    }

    /// Starts node `i` (again) with `env` added to its process's
    /// environment only (such as libfaketime for a wrong clock).
    pub fn start_node_with_env(&mut self, i: u64, env: &[(&str, &str)]) {
        self.spawn_node(i, &[], env);
    }

    fn spawn_node(&mut self, i: u64, extra: &[&str], env: &[(&str, &str)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_file(i))
            .expect("log file");
        let program = self
            .node_bin
            .get(&i)
            .cloned()
            .unwrap_or_else(|| PathBuf::from(bin()));
        let child = Command::new(program)
            .arg("start")
            .arg("--config")
            .arg(self.config_file(i))
            .args(extra)
            .env("HSM_LOG", "info,openraft=warn")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(
                self.node_env
                    .get(&i)
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn hsm-node");
        self.procs.insert(i, child);
    }

    /// The address node `i` listens on.
    pub fn member_address(&self, i: u64) -> String {
        let text = std::fs::read_to_string(self.config_file(i)).expect("config");
        let config = hsm_node::config::NodeConfig::from_toml_str(&text).expect("parse");
        config.listen.to_string()
    }

    /// The pin of node `i`'s TLS key (as its member record holds it).
    pub fn member_pin(&self, i: u64) -> [u8; 32] {
        let text = std::fs::read_to_string(self.config_file(i)).expect("config");
        let config = hsm_node::config::NodeConfig::from_toml_str(&text).expect("parse");
        let pem = std::fs::read_to_string(config.node_cert()).expect("node certificate");
        hsm_node::transport::key_pin_of_pem(&pem).expect("pin")
    }

    /// Writes node `i`'s configuration and prepares it with the cluster CA
    /// (`hsm-node prepare`), as an operator adding a node does; returns its
    /// join request.
    pub fn prepare_node(&mut self, i: u64, zone: &str) -> hsm_proto::NodeRecord {
        let port = free_ports(1);
        let mut config = hsm_node::config::NodeConfig::new(i, self.path().join(format!("node{i}")));
        config.listen = ([127, 0, 0, 1], port).into();
        config.zone = zone.to_owned();
        config.raft.heartbeat_interval_ms = 100;
        config.raft.election_timeout_min_ms = 500;
        config.raft.election_timeout_max_ms = 1000;
        std::fs::write(self.config_file(i), toml::to_string(&config).expect("toml"))
            .expect("write config");
        let out = Command::new(bin())
            .arg("prepare")
            .arg("--config")
            .arg(self.config_file(i))
            .arg("--ca-cert")
            .arg(self.path().join("ca/ca.pem"))
            .arg("--ca-key")
            .arg(self.path().join("ca/ca.key"))
            .output()
            .expect("run hsm-node prepare");
        assert!(
            out.status.success(),
            "prepare failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(config.data_dir.join("join-request.toml"))
            .expect("join request");
        self.nodes = self.nodes.max(i);
        toml::from_str(&text).expect("parse join request")
    }

    /// Rewrites node `i`'s configuration so that its election timer runs
    /// out at 500-550 ms instead of 500-1000 ms, taking effect at its next
    /// start. Once its leader is gone it usually asks first and asks again
    /// sooner, so its term passes the other candidates': tests that need a
    /// given node to win an election make it the one whose vote every
    /// winner needs and whose term is highest. The lower bound stays every
    /// member's, as the leader's read lease assumes (docs/decisions.md,
    /// "Every request passes a read barrier"): no member stands sooner, and
    /// 550 ms of refusing votes still outlasts the lease.
    pub fn hasten_elections(&self, i: u64) {
        let path = self.config_file(i);
        let text = std::fs::read_to_string(&path).expect("config");
        let mut config = hsm_node::config::NodeConfig::from_toml_str(&text).expect("parse");
        config.raft.election_timeout_max_ms = 550;
        std::fs::write(&path, toml::to_string(&config).expect("toml")).expect("write config");
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to node `i`'s process.
    pub fn signal(&self, i: u64, signal: &str) {
        let child = self.procs.get(&i).expect("running node");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Stops node `i` as an operator does (`systemctl stop`: SIGTERM) and
    /// waits for its process to end; fails if it takes longer than 30 s.
    pub fn stop(&mut self, i: u64) -> std::process::ExitStatus {
        self.signal(i, "TERM");
        let mut child = self.procs.remove(&i).expect("running node");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "node {i} did not stop within 30 s of SIGTERM:\n{}",
                    self.log_tail(i)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `within` for node `i`'s process to end on its own
    /// (a node that refuses to start); its exit status, or `None` if it
    /// still runs (it is left running).
    pub fn wait_exit(&mut self, i: u64, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            let child = self.procs.get_mut(&i).expect("started node");
            if let Some(status) = child.try_wait().expect("wait") {
                self.procs.remove(&i);
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills node `i` with SIGKILL, as a crash.
    pub fn kill(&mut self, i: u64) {
        if let Some(mut child) = self.procs.remove(&i) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A client of the whole cluster.
    pub async fn client(&self) -> Client {
        self.client_with(ClientOptions::default()).await
    }

    pub async fn client_with(&self, options: ClientOptions) -> Client {
        let text = std::fs::read_to_string(self.client_config()).expect("client config");
        let config: ClientConfig = toml::from_str(&text).expect("parse client config");
        Client::connect(config, options).await.expect("connect")
    }

    /// A client that talks to node `i` only.
    pub async fn client_of(&self, i: u64) -> Client {
        self.try_client_of(i).await.expect("connect")
    }

    /// [`Cluster::client_of`], or the error if node `i` did not answer in
    /// time (a node still starting on a loaded machine).
    pub async fn try_client_of(&self, i: u64) -> hsm_client::Result<Client> {
        self.try_client_of_with(i, ClientOptions::default()).await
    }

    /// [`Cluster::try_client_of`] with `options` (membership is never
    /// followed: the client stays on node `i`).
    pub async fn try_client_of_with(
        &self,
        i: u64,
        options: ClientOptions,
    ) -> hsm_client::Result<Client> {
        let text = std::fs::read_to_string(self.client_config()).expect("client config");
        let mut config: ClientConfig = toml::from_str(&text).expect("parse client config");
        config.nodes.retain(|n| n.id == i);
        if config.nodes.is_empty() {
            // A node added after the cluster was created.
            config.nodes.push(hsm_proto::client::ClientNode {
                id: i,
                address: self.member_address(i),
                zone: String::new(),
                transport_key: self.member_pin(i),
            });
        }
        Client::connect(config, options.follow_membership(false)).await
    }

    /// Sends one request to node `i` over the client protocol, without the
    /// SDK (the caller picks the node and the session token). Asked again
    /// while the node answers `unavailable` (a node just started, still
    /// catching up), for up to 20 s.
    pub async fn ask(&self, i: u64, session: Option<&Secret>, op: Operation) -> Response {
        self.ask_as(i, session, RequestId(rand::random()), op).await
    }

    /// [`Cluster::ask`] once, whatever the answer.
    pub async fn ask_once(&self, i: u64, session: Option<&Secret>, op: Operation) -> Response {
        self.ask_until(i, session, RequestId(rand::random()), op, Instant::now())
            .await
    }

    /// [`Cluster::ask_once`] under request id `request_id`.
    pub async fn ask_once_as(
        &self,
        i: u64,
        session: Option<&Secret>,
        request_id: RequestId,
        op: Operation,
    ) -> Response {
        self.ask_until(i, session, request_id, op, Instant::now())
            .await
    }

    /// [`Cluster::ask`] under request id `request_id` (asked again under
    /// the same id, as a client retries).
    pub async fn ask_as(
        &self,
        i: u64,
        session: Option<&Secret>,
        request_id: RequestId,
        op: Operation,
    ) -> Response {
        let deadline = Instant::now() + Duration::from_secs(20);
        self.ask_until(i, session, request_id, op, deadline).await
    }

    /// Asks until an answer other than `unavailable`, or `deadline`.
    async fn ask_until(
        &self,
        i: u64,
        session: Option<&Secret>,
        request_id: RequestId,
        op: Operation,
        deadline: Instant,
    ) -> Response {
        let text = std::fs::read_to_string(self.client_config()).expect("client config");
        let config: ClientConfig = toml::from_str(&text).expect("parse client config");
        let addr: std::net::SocketAddr = self.member_address(i).parse().expect("address");
        let tls = hsm_node::transport::client_tls(&config.ca_cert_pem).expect("tls");
        let endpoint = hsm_node::transport::client_endpoint(addr, tls).expect("endpoint");
        let conn = endpoint
            .connect(addr, hsm_node::transport::SERVER_NAME)
            .expect("connect")
            .await
            .expect("handshake");
        loop {
            let request = Request {
                session: session.cloned(),
                request_id,
                min_index: 0,
                op: op.clone(),
            };
            let bytes = codec::encode("request", &request).expect("encode");
            let (mut send, mut recv) = conn.open_bi().await.expect("stream");
            hsm_node::transport::write_frame(&mut send, &bytes)
                .await
                .expect("write");
            let reply = hsm_node::transport::read_frame(&mut recv, 1 << 20)
                .await
                .expect("answer");
            let response: Response = codec::decode("response", &reply).expect("response");
            match &response.result {
                Err(e) if e.kind == ErrorKind::Unavailable && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                _ => return response,
            }
        }
    }

    /// Waits until every running node reports a leader and all members are
    /// voters.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut unready = Vec::new();
            for (i, child) in &self.procs {
                assert!(
                    !has_exited(child),
                    "node {i} exited while the cluster formed:\n{}",
                    self.log_tail(*i)
                );
                let info = match self.try_client_of(*i).await {
                    Ok(client) => client.cluster_info().await,
                    Err(e) => Err(e),
                };
                match info {
                    Ok(s)
                        if s.leader.is_some()
                            && s.members.len() as u64 == self.nodes
                            && s.members.iter().all(|m| m.voter) => {}
                    _ => unready.push(*i),
                }
            }
            if unready.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "cluster not ready (nodes {unready:?} are not):\n{}{}",
                unready
                    .iter()
                    .map(|i| self.log_tail(*i))
                    .collect::<String>(),
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The ids of the keys user `name` sees on node `i` once that node has
    /// applied `index`.
    pub async fn key_ids_on(
        &self,
        i: u64,
        name: &str,
        password: &str,
        index: u64,
    ) -> std::collections::BTreeSet<hsm_proto::KeyId> {
        let c = self.client_of(i).await;
        c.observe_index(index);
        c.login(user(name), password).await.expect("login");
        c.list_keys(hsm_proto::client::KeyFilter::default())
            .await
            .expect("list")
            .into_iter()
            .map(|k| k.id)
            .collect()
    }

    /// The leader as node `i` sees it.
    pub async fn leader(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for i in self.procs.keys() {
                let Ok(client) = self.try_client_of(*i).await else {
                    continue;
                };
                if let Ok(s) = client.cluster_info().await {
                    if let Some(l) = s.leader {
                        if self.procs.contains_key(&l.0) {
                            return l.0;
                        }
                    }
                }
            }
            assert!(Instant::now() < deadline, "no leader:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every node's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        let mut ids: Vec<u64> = std::fs::read_dir(self.path())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_prefix("node")?
                    .strip_suffix(".log")?
                    .parse()
                    .ok()
            })
            .collect();
        ids.sort_unstable();
        for i in ids {
            out.push_str(&self.log_tail(i));
        }
        out
    }

    /// The last lines of node `i`'s log, under a heading.
    pub fn log_tail(&self, i: u64) -> String {
        let Ok(text) = std::fs::read_to_string(self.log_file(i)) else {
            return format!("---- node {i}: no log\n");
        };
        let tail: Vec<&str> = text.lines().rev().take(60).collect();
        let mut out = format!("---- node {i} (last lines)\n");
        for line in tail.into_iter().rev() {
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    /// Activates the cluster (admin sets `admin_password`), creates alice,
    /// a crypto user with `alice_password`, and gives her one Ed25519 key
    /// for signing, labelled `label`: (admin, alice, key), both clients
    /// logged in.
    pub async fn with_alice(
        &self,
        admin_password: &str,
        alice_password: &str,
        label: &str,
    ) -> (Client, Client, hsm_proto::KeyId) {
        let admin = self.activate(admin_password).await;
        admin
            .create_user(user("alice"), hsm_proto::Role::Cu, alice_password)
            .await
            .expect("create alice");
        let alice = self.client().await;
        alice
            .login(user("alice"), alice_password)
            .await
            .expect("login as alice");
        let key = alice
            .generate_key(hsm_proto::KeySpec::Ed25519, signing(label), false)
            .await
            .expect("key");
        (admin, alice, key.id)
    }

    /// Activates the cluster (admin sets `password`) and returns a client
    /// logged in as that crypto officer.
    pub async fn activate(&self, password: &str) -> Client {
        let admin = self.client().await;
        admin
            .login(user("admin"), ADMIN_PASSWORD)
            .await
            .expect("admin login");
        admin
            .change_own_password(ADMIN_PASSWORD, password)
            .await
            .expect("activate");
        admin.login(user("admin"), password).await.expect("login");
        admin
    }
}

/// Runs `hsm-node restore` for a new node `id` in `dir` (its config
/// `node<id>.toml`, data `node<id>/`, CA `ca/`, client config `client.toml`)
/// from `backup` with `recovery_key`, with extra arguments `args` and
/// environment `env`.
pub fn restore_command(
    dir: &Path,
    id: u64,
    backup: &str,
    recovery_key: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let port = free_ports(1);
    let mut config = hsm_node::config::NodeConfig::new(id, dir.join(format!("node{id}")));
    config.listen = ([127, 0, 0, 1], port).into();
    config.raft.heartbeat_interval_ms = 100;
    config.raft.election_timeout_min_ms = 500;
    config.raft.election_timeout_max_ms = 1000;
    let config_file = dir.join(format!("node{id}.toml"));
    std::fs::write(&config_file, toml::to_string(&config).expect("toml")).expect("write config");
    Command::new(bin())
        .arg("restore")
        .arg("--config")
        .arg(&config_file)
        .arg("--backup")
        .arg(backup)
        .arg("--recovery-key")
        .arg(recovery_key)
        .arg("--ca-dir")
        .arg(dir.join("ca"))
        .arg("--client-config")
        .arg(dir.join("client.toml"))
        .args(args)
        .env("HSM_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .expect("run hsm-node restore")
}

impl Cluster {
    /// A new one-node cluster restored from `backup` (node id `id`), its
    /// node started; also what `hsm-node restore` printed.
    pub fn restore(backup: &str, recovery_key: &Path, id: u64) -> (Cluster, String) {
        Cluster::restore_with_env(backup, recovery_key, id, &[])
    }

    /// As [`Cluster::restore`], with extra environment for `hsm-node
    /// restore` (such as S3 credentials).
    pub fn restore_with_env(
        backup: &str,
        recovery_key: &Path,
        id: u64,
        env: &[(&str, &str)],
    ) -> (Cluster, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = restore_command(dir.path(), id, backup, recovery_key, &[], env);
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "hsm-node restore failed: {printed}");
        let mut c = Cluster {
            dir,
            nodes: 1,
            procs: BTreeMap::new(),
            env: Vec::new(),
            node_env: BTreeMap::new(),
            node_bin: BTreeMap::new(),
        };
        c.start_node(id);
        (c, printed)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, mut child) in std::mem::take(&mut self.procs) {
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(child.id().to_string())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn user(name: &str) -> Username {
    Username::new(name).expect("user name")
}

/// Copies a directory tree (a backup destination, say) to `to`.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Runs the OpenSSL command line in `dir` (`./x` installs it): whether it
/// succeeded, and what it printed.
pub fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (./x installs it)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
