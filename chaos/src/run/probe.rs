//! `hsm-chaos probe`: what the runner asks the cluster, from inside a
//! client host (the runner itself is on no host of the run): activate the
//! admin, name the leader, or wait until every node takes a write.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hsm_client::{Client, ClientOptions};
use hsm_proto::client::ClientConfig;
use hsm_proto::{NodeId, NodeRecord, Username};

use super::net::{Host, Net};

/// What to ask.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Probe {
    /// Log the admin in with its initial password and set the officer's
    /// password (`HSM_CHAOS_OFFICER_PASSWORD`).
    Activate {
        /// The initial password.
        #[arg(long)]
        initial: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout_s: u64,
    },
    /// Print the leader's node id.
    Leader {
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 10)]
        timeout_s: u64,
    },
    /// Wait until the officer can log in (a replicated write) through
    /// each of these nodes; print the milliseconds it took.
    Ready {
        /// Node ids, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<u64>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 30)]
        timeout_s: u64,
    },
    /// As the officer, take a backup; print one JSON line: when it was
    /// asked for and answered (ms since `epoch_unix_ms`), its outcome
    /// (`ok`, `failed` or `unknown`) and, when ok, its location.
    Backup {
        /// The run's start, ms since the Unix epoch.
        #[arg(long)]
        epoch_unix_ms: u64,
        /// The call's deadline, seconds.
        #[arg(long, default_value_t = 30)]
        timeout_s: u64,
    },
    /// As the officer, print the labels of every key, one JSON array.
    Labels {
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 30)]
        timeout_s: u64,
    },
    /// As the officer, remove member `node` from the cluster (done when it
    /// is no member any more).
    RemoveNode {
        /// Its id.
        #[arg(long)]
        node: u64,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 30)]
        timeout_s: u64,
    },
    /// As the officer, approve the node whose join request (written by
    /// `hsm-node prepare`) is in `request` (done when it is a member).
    AddNode {
        /// The join request file.
        #[arg(long)]
        request: std::path::PathBuf,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 30)]
        timeout_s: u64,
    },
}

/// Runs `hsm-chaos probe --config CONFIG ARGS` in `host` and returns what it
/// printed.
///
/// # Errors
/// If it cannot run or exits non-zero (with what it printed).
pub fn run_in(host: &Host, hsm_chaos: &Path, config: &Path, args: &[&str]) -> Result<String> {
    let out = command(host, hsm_chaos, config, args)
        .output()
        .context("cannot run hsm-chaos probe")?;
    if !out.status.success() {
        bail!(
            "hsm-chaos probe {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `hsm-chaos probe --config CONFIG ARGS` in `host`, as the officer.
fn command(host: &Host, hsm_chaos: &Path, config: &Path, args: &[&str]) -> std::process::Command {
    let mut c = Net::command(host, hsm_chaos);
    c.arg("probe")
        .arg("--config")
        .arg(config)
        .args(args)
        .env("HSM_CHAOS_OFFICER_PASSWORD", super::OFFICER_PASSWORD)
        .stdin(Stdio::null());
    c
}

/// Starts `hsm-chaos probe --config CONFIG ARGS` in `host` without waiting
/// for it; its output is piped.
///
/// # Errors
/// If it cannot start.
pub fn spawn_in(
    host: &Host,
    hsm_chaos: &Path,
    config: &Path,
    args: &[&str],
) -> Result<std::process::Child> {
    command(host, hsm_chaos, config, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run hsm-chaos probe")
}

fn officer_password() -> Result<String> {
    std::env::var("HSM_CHAOS_OFFICER_PASSWORD").context("HSM_CHAOS_OFFICER_PASSWORD is not set")
}

fn admin() -> Username {
    Username::new("admin").expect("a valid name")
}

async fn connect(config: &ClientConfig, node: Option<u64>) -> hsm_client::Result<Client> {
    let mut config = config.clone();
    let mut options = ClientOptions::default()
        .deadline(Duration::from_secs(3))
        .connect_timeout(Duration::from_secs(1));
    if let Some(n) = node {
        config.nodes.retain(|m| m.id == n);
        options = options.follow_membership(false);
    }
    Client::connect(config, options).await
}

/// Answers `probe` for the cluster of client config `config`.
///
/// # Errors
/// If the answer does not come within the probe's timeout.
pub async fn answer(config: &Path, probe: &Probe) -> Result<String> {
    let text = std::fs::read_to_string(config)
        .with_context(|| format!("cannot read {}", config.display()))?;
    let config: ClientConfig = toml::from_str(&text).context("cannot parse the client config")?;
    let started = Instant::now();
    let timeout = |s: u64| started + Duration::from_secs(s);
    let mut last = String::from("no attempt");
    match probe {
        Probe::Activate { initial, timeout_s } => {
            let officer = officer_password()?;
            while Instant::now() < timeout(*timeout_s) {
                match activate(&config, initial, &officer).await {
                    Ok(()) => return Ok("activated\n".into()),
                    Err(e) => last = e.to_string(),
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        Probe::Leader { timeout_s } => {
            while Instant::now() < timeout(*timeout_s) {
                match connect(&config, None).await {
                    Ok(c) => match c.cluster_info().await {
                        Ok(s) => match s.leader {
                            Some(l) => return Ok(format!("{}\n", l.0)),
                            None => last = "no leader".into(),
                        },
                        Err(e) => last = e.to_string(),
                    },
                    Err(e) => last = e.to_string(),
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Probe::Ready { nodes, timeout_s } => {
            // Every node at once; those that did not take the write yet
            // again after a moment.
            let officer = officer_password()?;
            let mut pending: Vec<u64> = nodes.clone();
            while Instant::now() < timeout(*timeout_s) {
                let mut tries = tokio::task::JoinSet::new();
                for n in pending {
                    let (config, officer) = (config.clone(), officer.clone());
                    tries.spawn(async move {
                        let ok = match connect(&config, Some(n)).await {
                            Ok(c) => c.login(admin(), officer.as_str()).await.map(|_| ()),
                            Err(e) => Err(e),
                        };
                        (n, ok)
                    });
                }
                let mut still = Vec::new();
                while let Some(done) = tries.join_next().await {
                    let (n, ok) = done.context("a probe task failed")?;
                    if let Err(e) = ok {
                        last = format!("node {n}: {e}");
                        still.push(n);
                    }
                }
                pending = still;
                if pending.is_empty() {
                    return Ok(format!("{}\n", started.elapsed().as_millis()));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Probe::Backup {
            epoch_unix_ms,
            timeout_s,
        } => {
            let officer = officer_password()?;
            let since = |_: ()| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                now.saturating_sub(*epoch_unix_ms)
            };
            let invoke_ms = since(());
            let deadline = Duration::from_secs(*timeout_s);
            let taken = async {
                let c = connect(&config, None).await?;
                c.login(admin(), officer.as_str()).await?;
                c.with_deadline(deadline).create_backup().await
            };
            let answer = tokio::time::timeout(deadline, taken).await;
            let complete_ms = since(());
            let (outcome, location, error) = match answer {
                Ok(Ok(info)) => ("ok", Some(info.location), None),
                Ok(Err(e)) if e.is_transient() => ("unknown", None, Some(e.to_string())),
                Ok(Err(e)) => ("failed", None, Some(e.to_string())),
                Err(_) => ("unknown", None, Some("no answer in time".to_owned())),
            };
            let line = serde_json::json!({
                "invoke_ms": invoke_ms,
                "complete_ms": complete_ms,
                "outcome": outcome,
                "location": location,
                "error": error,
            });
            return Ok(format!("{line}\n"));
        }
        Probe::Labels { timeout_s } => {
            let officer = officer_password()?;
            while Instant::now() < timeout(*timeout_s) {
                let listed = async {
                    let c = connect(&config, None).await?;
                    c.login(admin(), officer.as_str()).await?;
                    c.list_keys(hsm_client::KeyFilter::default()).await
                };
                match listed.await {
                    Ok(keys) => {
                        let labels: Vec<&str> =
                            keys.iter().map(|k| k.attributes.label.as_str()).collect();
                        return Ok(format!("{}\n", serde_json::to_string(&labels)?));
                    }
                    Err(e) => last = e.to_string(),
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        Probe::RemoveNode { node, timeout_s } => {
            let officer = officer_password()?;
            while Instant::now() < timeout(*timeout_s) {
                match membership(&config, &officer, Change::Remove(*node)).await {
                    Ok(()) => return Ok("removed\n".into()),
                    // Refused for good (the leader cannot sign its own
                    // removal): no use asking again.
                    Err(e) if refused(&e) => bail!("{e}"),
                    Err(e) => last = e.to_string(),
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        Probe::AddNode { request, timeout_s } => {
            let officer = officer_password()?;
            let text = std::fs::read_to_string(request)
                .with_context(|| format!("cannot read {}", request.display()))?;
            let record: NodeRecord = toml::from_str(&text).context("not a join request")?;
            while Instant::now() < timeout(*timeout_s) {
                match membership(&config, &officer, Change::Add(record.clone())).await {
                    Ok(()) => return Ok("added\n".into()),
                    Err(e) => last = e.to_string(),
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
    bail!("no answer in time: {last}")
}

/// A membership change.
enum Change {
    Remove(u64),
    Add(NodeRecord),
}

/// Whether the cluster refused a request as invalid (asking again would
/// get the same answer).
fn refused(e: &anyhow::Error) -> bool {
    e.downcast_ref::<hsm_client::Error>()
        .is_some_and(|e| e.kind() == Some(hsm_proto::client::ErrorKind::InvalidInput))
}

/// Makes `change` as the officer, and checks that it took effect (a retry
/// of a change whose answer was lost finds it made).
async fn membership(config: &ClientConfig, officer: &str, change: Change) -> Result<()> {
    let c = connect(config, None).await?;
    c.login(admin(), officer).await?;
    let is_member = |info: &hsm_proto::client::ClusterStatus, id: u64| {
        info.members.iter().any(|m| m.id.0 == id)
    };
    match change {
        Change::Remove(id) => {
            if is_member(&c.cluster_info().await?, id) {
                c.remove_node(NodeId(id)).await?;
            }
            if is_member(&c.cluster_info().await?, id) {
                bail!("node {id} is still a member");
            }
        }
        Change::Add(record) => {
            let id = record.id.0;
            if !is_member(&c.cluster_info().await?, id) {
                c.add_node(record).await?;
            }
            if !is_member(&c.cluster_info().await?, id) {
                bail!("node {id} is no member yet");
            }
        }
    }
    Ok(())
}

async fn activate(config: &ClientConfig, initial: &str, officer: &str) -> Result<()> {
    let c = connect(config, None).await?;
    match c.login(admin(), initial).await {
        Ok(_) => {
            c.change_own_password(initial, officer).await?;
            Ok(())
        }
        // Done already, by an earlier attempt whose answer was lost.
        Err(e) if e.kind() == Some(hsm_proto::client::ErrorKind::LoginFailed) => {
            c.login(admin(), officer).await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
