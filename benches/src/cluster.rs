//! The cluster under test: one the bench starts itself (`hsm-node dev
//! --setup-only`, then one `hsm-node start` process per node on loopback,
//! as an operator would run them), or an existing one from a client config.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hsm_client::{Client, ClientConfig, ClientOptions, Role, Username};

/// The one-time admin password of clusters the bench starts.
const ADMIN_ONE_TIME: &str = "hsm-bench-initial-admin";
/// The admin's password after activation.
const ADMIN_PASSWORD: &str = "hsm-bench-admin-password";
/// The crypto user the bench creates and uses.
pub const BENCH_USER: &str = "bench";
/// Its password.
pub const BENCH_PASSWORD: &str = "hsm-bench-user-password";

/// Finds `hsm-node`: the given path, `HSM_NODE_BIN`, or next to this
/// executable (where cargo puts both).
///
/// # Errors
/// If none exists, saying how to build it.
pub fn node_binary(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("HSM_NODE_BIN") {
        return Ok(PathBuf::from(p));
    }
    let me = std::env::current_exe().context("cannot find this executable")?;
    let dir = me.parent().context("this executable has no directory")?;
    // Test binaries live one level further down (target/<profile>/deps).
    for d in [dir, dir.parent().unwrap_or(dir)] {
        let candidate = d.join("hsm-node");
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    bail!(
        "hsm-node not found next to {}: build it (cargo build --release -p hsm-node) or pass --hsm-node",
        me.display()
    )
}

/// A cluster of node processes on loopback, stopped when dropped.
pub struct LocalCluster {
    dir: tempfile::TempDir,
    node_bin: PathBuf,
    nodes: u64,
    procs: Vec<Option<Child>>,
}

/// `n` consecutive loopback ports below the ephemeral range
/// ([`hsm_node::local::free_ports`]).
fn free_base_port(n: u64) -> Result<u16> {
    Ok(hsm_node::local::free_ports(u16::try_from(n)?)?)
}

impl LocalCluster {
    /// Creates and starts an `nodes`-node cluster with `env` for every node
    /// process (such as `HSM_NODE_*` overrides).
    ///
    /// # Errors
    /// If `hsm-node` fails to create or start it.
    pub fn start(node_bin: &Path, nodes: u64, env: &[(&str, &str)]) -> Result<LocalCluster> {
        let dir = tempfile::Builder::new()
            .prefix("hsm-bench-cluster")
            .tempdir()
            .context("cannot create a directory for the cluster")?;
        let base = free_base_port(nodes)?;
        let out = Command::new(node_bin)
            .args(["dev", "--setup-only", "--nodes", &nodes.to_string()])
            .args(["--base-port", &base.to_string()])
            .arg("--dir")
            .arg(dir.path())
            .env("HSM_ADMIN_PASSWORD", ADMIN_ONE_TIME)
            .output()
            .with_context(|| format!("cannot run {}", node_bin.display()))?;
        if !out.status.success() {
            bail!(
                "hsm-node dev --setup-only failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut c = LocalCluster {
            dir,
            node_bin: node_bin.to_path_buf(),
            nodes,
            procs: Vec::new(),
        };
        for i in 1..=nodes {
            let child = c.spawn(i, env)?;
            c.procs.push(Some(child));
        }
        Ok(c)
    }

    fn spawn(&self, i: u64, env: &[(&str, &str)]) -> Result<Child> {
        let log = std::fs::File::create(self.dir.path().join(format!("node{i}.log")))
            .context("cannot create a node log")?;
        Command::new(&self.node_bin)
            .arg("start")
            .arg("--config")
            .arg(self.dir.path().join(format!("node{i}.toml")))
            .env("HSM_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start node {i}"))
    }

    /// The client config file.
    pub fn client_config(&self) -> PathBuf {
        self.dir.path().join("client.toml")
    }

    /// The cluster's directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Process ids of the running nodes.
    pub fn pids(&self) -> Vec<u32> {
        self.procs.iter().flatten().map(Child::id).collect()
    }

    /// Stops node `i` (SIGTERM, then waits).
    pub fn stop_node(&mut self, i: u64) {
        if let Some(Some(mut child)) = self.procs.get_mut((i - 1) as usize).map(Option::take) {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    /// Kills node `i` (SIGKILL: no goodbye to the others).
    pub fn kill_node(&mut self, i: u64) {
        if let Some(Some(mut child)) = self.procs.get_mut((i - 1) as usize).map(Option::take) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `i` again.
    ///
    /// # Errors
    /// If the process cannot be started.
    pub fn restart_node(&mut self, i: u64) -> Result<()> {
        let child = self.spawn(i, &[])?;
        self.procs[(i - 1) as usize] = Some(child);
        Ok(())
    }

    /// The last lines of every node's log, for errors.
    pub fn logs(&self) -> String {
        (1..=self.nodes)
            .map(|i| {
                let text = std::fs::read_to_string(self.dir.path().join(format!("node{i}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                format!(
                    "--- node {i}\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for mut child in self.procs.drain(..).flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads a client config file.
///
/// # Errors
/// If it does not read or parse.
pub fn read_config(path: &Path) -> Result<ClientConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{} is not a client config", path.display()))
}

/// A client of the cluster in `config` that lets `in_flight` calls run at
/// once.
///
/// # Errors
/// If it cannot connect.
pub async fn connect(config: &ClientConfig, in_flight: usize) -> Result<Client> {
    let options = ClientOptions::default()
        .deadline(Duration::from_secs(30))
        .max_in_flight(in_flight.max(64));
    Client::connect(config.clone(), options)
        .await
        .context("cannot connect to the cluster")
}

/// Waits until the cluster has a leader and `nodes` voting members.
///
/// # Errors
/// If it is not ready within `timeout`.
pub async fn wait_ready(config: &ClientConfig, nodes: u64, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(client) = connect(config, 1).await {
            if let Ok(s) = client.cluster_info().await {
                if s.leader.is_some()
                    && s.members.len() as u64 == nodes
                    && s.members.iter().all(|m| m.voter)
                {
                    return Ok(());
                }
            }
        }
        if Instant::now() > deadline {
            bail!("the cluster was not ready within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn user(name: &str) -> Result<Username> {
    Username::new(name).map_err(anyhow::Error::msg)
}

/// Activates a cluster the bench started and creates the bench's crypto
/// user; returns a client logged in as it.
///
/// # Errors
/// If any step is refused.
pub async fn set_up_user(config: &ClientConfig, in_flight: usize) -> Result<Client> {
    let admin = connect(config, 4).await?;
    admin
        .login(user("admin")?, ADMIN_ONE_TIME)
        .await
        .context("admin login")?;
    admin
        .change_own_password(ADMIN_ONE_TIME, ADMIN_PASSWORD)
        .await
        .context("activation")?;
    admin
        .login(user("admin")?, ADMIN_PASSWORD)
        .await
        .context("admin login")?;
    admin
        .create_user(user(BENCH_USER)?, Role::Cu, BENCH_PASSWORD)
        .await
        .context("creating the bench user")?;
    let client = connect(config, in_flight).await?;
    client
        .login(user(BENCH_USER)?, BENCH_PASSWORD)
        .await
        .context("bench user login")?;
    Ok(client)
}
