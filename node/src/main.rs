//! `hsm-node`: create, run and develop against an HSM cluster.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use ed25519_dalek::VerifyingKey;
use hsm_backup::{Destination, RecoveryKey};
use hsm_node::config::{LogFormat, NodeConfig};
use hsm_node::restore::{choose_backup, restore_cluster};
use hsm_node::runtime::{
    init_cluster, prepare, read_private, renew_certificate, write_private, write_public,
    JoinTarget, RunningNode,
};
use hsm_node::transport::ClusterCa;
use hsm_node::{local, operator};
use hsm_proto::client::{ClientConfig, ClientNode};
use hsm_proto::BackupId;
use rand::RngCore;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "hsm-node",
    version,
    about = "A node of a Raft-replicated HSM cluster"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new cluster with this node as its first member.
    Init {
        /// The node's configuration file.
        #[arg(long, env = "HSM_NODE_CONFIG")]
        config: PathBuf,
        /// Directory for a new self-signed cluster CA (`ca.pem`, and
        /// `ca.key`, which you then keep offline). Ignored with --ca-cert.
        #[arg(long, default_value = "cluster-ca")]
        ca_dir: PathBuf,
        /// Your own CA certificate (PEM) to issue node certificates from,
        /// instead of a new self-signed one.
        #[arg(long, requires = "ca_key")]
        ca_cert: Option<PathBuf>,
        /// The private key (PEM) of --ca-cert.
        #[arg(long, requires = "ca_cert")]
        ca_key: Option<PathBuf>,
        /// Where to write the client config file.
        #[arg(long, default_value = "cluster.toml")]
        client_config: PathBuf,
    },
    /// Run a node.
    Start {
        /// The node's configuration file.
        #[arg(long, env = "HSM_NODE_CONFIG")]
        config: PathBuf,
        /// For a node just added: the address of a member to fetch the
        /// domain key from once a crypto officer has approved this node.
        #[arg(long, requires = "join_pin")]
        join: Option<String>,
        /// With --join: that member's TLS key pin (64 hex digits, its
        /// `transport-key` in `hsm cluster info`). The node talks to the
        /// member only if it holds that key, so nobody else at that address
        /// (another cluster on the same CA) can hand it a domain key.
        #[arg(long, requires = "join", value_parser = parse_pin)]
        join_pin: Option<[u8; 32]>,
    },
    /// Prepare a node to join an existing cluster: creates its storage key,
    /// identity and certificate, and writes the join request
    /// (`<data_dir>/join-request.toml`) that a crypto officer approves with
    /// `hsm node add`.
    Prepare {
        /// The new node's configuration file.
        #[arg(long, env = "HSM_NODE_CONFIG")]
        config: PathBuf,
        /// The cluster CA certificate (PEM).
        #[arg(long)]
        ca_cert: PathBuf,
        /// The cluster CA private key (PEM).
        #[arg(long)]
        ca_key: PathBuf,
    },
    /// Give this node a new certificate from a (new) CA for the TLS key it
    /// has, so its member record's pin stays valid: the step of a CA
    /// rotation that moves each node to the new CA (operator guide,
    /// "Rotating the CA"). The new CA must be in the node's CA file
    /// already. Takes effect when the node starts again.
    RenewCert {
        /// The node's configuration file.
        #[arg(long, env = "HSM_NODE_CONFIG")]
        config: PathBuf,
        /// The CA certificate to issue from (PEM).
        #[arg(long)]
        ca_cert: PathBuf,
        /// Its private key (PEM).
        #[arg(long)]
        ca_key: PathBuf,
    },
    /// Build a new cluster from a backup: this node becomes its first
    /// member (new cluster id, domain key and node identity; the backup's
    /// users, passwords and keys). Add more nodes as usual.
    Restore {
        /// The new node's configuration file (an empty data directory, and
        /// a node id the backed-up cluster never used).
        #[arg(long, env = "HSM_NODE_CONFIG")]
        config: PathBuf,
        /// The backup destination (file:///dir or s3://bucket/prefix), or
        /// one backup's location (the destination followed by its id).
        #[arg(long, value_name = "URL")]
        backup: String,
        /// Which backup at the destination (default: the newest).
        #[arg(long, value_name = "ID")]
        id: Option<String>,
        /// The recovery private key file (`hsm-node recovery-key new`).
        #[arg(long, value_name = "FILE")]
        recovery_key: PathBuf,
        /// Refuse a backup not signed by one of these node signing keys (64
        /// hex digits; `hsm backup describe` shows the writer of a backup
        /// and restore prints it). Anyone who can write to the backup
        /// storage can seal a backup to a recovery public key; this tells
        /// whose backup it is. Repeatable.
        #[arg(long, value_name = "HEX")]
        trusted_writer_key: Vec<String>,
        /// Directory for a new self-signed cluster CA. Ignored with
        /// --ca-cert.
        #[arg(long, default_value = "cluster-ca")]
        ca_dir: PathBuf,
        /// Your own CA certificate (PEM) instead of a new one.
        #[arg(long, requires = "ca_key")]
        ca_cert: Option<PathBuf>,
        /// The private key (PEM) of --ca-cert.
        #[arg(long, requires = "ca_cert")]
        ca_key: Option<PathBuf>,
        /// Where to write the new cluster's client config file.
        #[arg(long, default_value = "cluster.toml")]
        client_config: PathBuf,
    },
    /// Unlock a user locked after failed logins, as the operator of this
    /// member's host: for when strangers locked out the last crypto
    /// officer (`admin`'s name is public). Talks to the running node
    /// through its operator socket (`<data_dir>/operator.sock`, open to the
    /// node's user and root only); the unlock is a signed event naming
    /// this node's operator.
    UnlockUser {
        /// The node's configuration file.
        #[arg(long)]
        config: PathBuf,
        /// The user to unlock.
        #[arg(long)]
        username: String,
    },
    /// Recovery keys for backups.
    #[command(subcommand)]
    RecoveryKey(RecoveryKeyCommand),
    /// Run a local cluster on loopback for development, until Ctrl-C.
    /// Creates it on first use; later runs restart it.
    Dev {
        /// Directory of the cluster's files.
        #[arg(long, default_value = "hsm-dev")]
        dir: PathBuf,
        /// Number of nodes.
        #[arg(long, default_value_t = 3)]
        nodes: u64,
        /// UDP port of the first node; the others follow.
        #[arg(long, default_value_t = 7401)]
        base_port: u16,
        /// Create the cluster's files and exit without serving (start each
        /// node with `hsm-node start --config <dir>/node<i>.toml`).
        #[arg(long)]
        setup_only: bool,
    },
}

#[derive(Subcommand)]
enum RecoveryKeyCommand {
    /// Create a recovery key pair: the private key (mode 0600; keep it
    /// offline, it restores every backup sealed to it) and the public key
    /// to list in every node's `[backup] recovery_keys`.
    New {
        /// The private key file to create.
        #[arg(long, value_name = "FILE")]
        private: PathBuf,
        /// The public key file to create.
        #[arg(long, value_name = "FILE")]
        public: PathBuf,
    },
}

fn init_logging(level: &str, format: LogFormat) -> Result<()> {
    let filter = match std::env::var("HSM_LOG") {
        Ok(directive) => EnvFilter::try_new(&directive)
            .with_context(|| format!("HSM_LOG={directive:?} is not a log filter"))?,
        Err(_) => EnvFilter::try_new(level)
            .with_context(|| format!("log.level {level:?} is not a log filter"))?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}

/// A one-time password for the unactivated `admin`, shown once.
fn activation_password() -> Result<String> {
    if let Ok(p) = std::env::var("HSM_ADMIN_PASSWORD") {
        hsm_node::secrets::check_password_policy(&p)
            .context("HSM_ADMIN_PASSWORD does not meet the password policy")?;
        return Ok(p);
    }
    let mut bytes = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("hsm-node: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Init {
            config,
            ca_dir,
            ca_cert,
            ca_key,
            client_config,
        } => {
            let config = NodeConfig::from_env_and_file(&config)?;
            init_logging(&config.log.level, config.log.format)?;
            init(config, ca_dir, ca_cert.zip(ca_key), client_config).await
        }
        Command::Start {
            config,
            join,
            join_pin,
        } => {
            let config = NodeConfig::from_env_and_file(&config)?;
            init_logging(&config.log.level, config.log.format)?;
            let target = join
                .zip(join_pin)
                .map(|(address, pin)| JoinTarget { address, pin });
            let node = RunningNode::start_joining(&config, target.as_ref()).await?;
            println!("node {} serving on {}", node.id, node.local_addr);
            tokio::select! {
                () = wait_for_shutdown() => {
                    node.shutdown().await;
                    Ok(())
                }
                reason = node.fatal() => {
                    tracing::error!(%reason, "raft stopped; exiting");
                    node.shutdown().await;
                    bail!("raft stopped: {reason}")
                }
            }
        }
        Command::UnlockUser { config, username } => {
            let config = NodeConfig::from_env_and_file(&config)?;
            let username = hsm_proto::Username::new(&username)
                .map_err(|e| anyhow::anyhow!("--username: {e}"))?;
            let request = operator::OperatorRequest::UnlockUser {
                username: username.clone(),
            };
            match operator::ask(&config.data_dir, &request).await? {
                operator::OperatorReply::Done => {
                    println!("{username} is unlocked");
                    Ok(())
                }
                operator::OperatorReply::Error(why) => bail!("{why}"),
            }
        }
        Command::Prepare {
            config,
            ca_cert,
            ca_key,
        } => {
            let config = NodeConfig::from_env_and_file(&config)?;
            let ca = load_ca(&ca_cert, &ca_key)?;
            let record = prepare(&config, &ca)?.record;
            let path = config.data_dir.join("join-request.toml");
            let text = toml::to_string(&record).context("cannot encode the join request")?;
            write_public(&path, text.as_bytes())?;
            println!(
                "Prepared node {}. Join request: {}",
                record.id,
                path.display()
            );
            println!(
                "Next: a crypto officer approves it: hsm node add --request {}",
                path.display()
            );
            println!(
                "then: hsm-node start --config <this config> --join <address of a member> \
                 --join-pin <its transport-key from hsm cluster info>"
            );
            Ok(())
        }
        Command::RenewCert {
            config,
            ca_cert,
            ca_key,
        } => {
            let config = NodeConfig::from_env_and_file(&config)?;
            let ca = load_ca(&ca_cert, &ca_key)?;
            let path = renew_certificate(&config, &ca)?;
            println!(
                "Node {} has a new certificate from {} in {} (the previous one is kept beside it); \
                 it takes effect when the node starts again.",
                config.id(),
                ca_cert.display(),
                path.display()
            );
            Ok(())
        }
        Command::Restore {
            config,
            backup,
            id,
            recovery_key,
            trusted_writer_key,
            ca_dir,
            ca_cert,
            ca_key,
            client_config,
        } => {
            let config = NodeConfig::from_env_and_file(&config)?;
            init_logging(&config.log.level, config.log.format)?;
            restore(
                config,
                &backup,
                id.as_deref(),
                &recovery_key,
                &trusted_writer_key,
                ca_dir,
                ca_cert.zip(ca_key),
                client_config,
            )
            .await
        }
        Command::RecoveryKey(RecoveryKeyCommand::New { private, public }) => {
            let key = RecoveryKey::generate();
            if public.exists() {
                bail!("{} exists already", public.display());
            }
            key.save(&private)?;
            key.public_key().save(&public)?;
            println!(
                "Recovery key {}: private key {} (keep it offline), public key {}",
                key.public_key().fingerprint(),
                private.display(),
                public.display()
            );
            println!("Next: list the public key in every node's [backup] recovery_keys.");
            Ok(())
        }
        Command::Dev {
            dir,
            nodes,
            base_port,
            setup_only,
        } => {
            init_logging("warn,hsm_node=info,openraft=off", LogFormat::Text)?;
            dev(dir, nodes, base_port, setup_only).await
        }
    }
}

async fn wait_for_shutdown() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn init(
    config: NodeConfig,
    ca_dir: PathBuf,
    own_ca: Option<(PathBuf, PathBuf)>,
    client_config: PathBuf,
) -> Result<()> {
    // Everything that could conflict is checked before anything is
    // written, so a refused init leaves the host as it was.
    check_new_cluster(&config, &client_config, &ca_dir, own_ca.as_ref())?;
    let (ca, new_ca) = cluster_ca(own_ca)?;
    if new_ca {
        save_new_ca(&ca_dir, &ca)?;
    }
    let record = prepare(&config, &ca)?.record;
    let password = activation_password()?;
    let cluster_id = init_cluster(&config, &[], record.clone(), &password).await?;
    local::write_client_config(
        &client_config,
        &ClientConfig {
            cluster_id: cluster_id.to_string(),
            ca_cert_pem: ca.cert_pem().to_owned(),
            zone: None,
            nodes: vec![ClientNode::of_record(&record)],
        },
    )?;
    println!(
        "Initialized cluster {cluster_id} with node {}.",
        config.id()
    );
    println!("Client config: {}", client_config.display());
    if std::env::var("HSM_ADMIN_PASSWORD").is_err() {
        println!("One-time admin password (shown once; activation replaces it): {password}");
    }
    println!(
        "Next: hsm-node start --config <this config>, then activate the cluster: log in as admin \
         with the one-time password and change it."
    );
    Ok(())
}

/// What `init` and `restore` check before they write anything: a valid
/// configuration, an empty data directory, no client config and (unless
/// the operator brings a CA) no CA where a new one would go.
fn check_new_cluster(
    config: &NodeConfig,
    client_config: &Path,
    ca_dir: &Path,
    own_ca: Option<&(PathBuf, PathBuf)>,
) -> Result<()> {
    config.validate()?;
    if client_config.exists() {
        bail!("{} exists already", client_config.display());
    }
    if config.identity_file().exists() || config.store_dir().exists() {
        bail!(
            "{} holds a node already (this host was initialized before); \
             choose an empty data directory to create another cluster",
            config.data_dir.display()
        );
    }
    if own_ca.is_none() && ca_dir.join("ca.key").exists() {
        bail!(
            "{} holds a CA already: pass --ca-cert and --ca-key to use it, or choose another --ca-dir",
            ca_dir.display()
        );
    }
    Ok(())
}

/// The operator's CA (`--ca-cert`, `--ca-key`), or a new one (`true`:
/// not yet written; see [`save_new_ca`]).
fn cluster_ca(own_ca: Option<(PathBuf, PathBuf)>) -> Result<(ClusterCa, bool)> {
    Ok(match own_ca {
        Some((cert, key)) => (load_ca(&cert, &key)?, false),
        None => (ClusterCa::generate("hsm-cluster")?, true),
    })
}

/// The CA certificate at `cert` with its private key at `key` (readable
/// by its owner only).
fn load_ca(cert: &Path, key: &Path) -> Result<ClusterCa> {
    let cert_pem =
        std::fs::read_to_string(cert).with_context(|| format!("cannot read {}", cert.display()))?;
    Ok(ClusterCa::from_pem(
        &cert_pem,
        &read_private(key, "CA key")?,
    )?)
}

/// Writes a new CA to `ca_dir`.
fn save_new_ca(ca_dir: &Path, ca: &ClusterCa) -> Result<()> {
    write_public(&ca_dir.join("ca.pem"), ca.cert_pem().as_bytes())?;
    write_private(&ca_dir.join("ca.key"), ca.key_pem().as_bytes())?;
    println!(
        "Created a cluster CA in {}: keep ca.key offline; you need it to add nodes.",
        ca_dir.display()
    );
    Ok(())
}

/// Splits `--backup`: a backup's location (the destination followed by
/// the id of a backup that is there), or a destination URL.
async fn backup_location(url: &str, id: Option<&str>) -> Result<(Destination, Option<BackupId>)> {
    if let Some(id) = id {
        return Ok((Destination::from_url(url)?, Some(id.parse()?)));
    }
    let trimmed = url.trim_end_matches('/');
    if let Some((dest, last)) = trimmed.rsplit_once('/') {
        if let Ok(id) = last.parse::<BackupId>() {
            if let Ok(d) = Destination::from_url(dest) {
                // A backup is there if its manifest is, readable or not (a
                // damaged one is reported by the restore, naming it).
                match hsm_backup::read_manifest(&d, id, None).await {
                    Err(hsm_backup::BackupError::NotFound { .. }) => {}
                    _ => return Ok((d, Some(id))),
                }
            }
        }
    }
    Ok((Destination::from_url(url)?, None))
}

/// Parses `--trusted-writer-key` values (64 hex digits each).
fn writer_keys(hex_keys: &[String]) -> Result<Vec<VerifyingKey>> {
    hex_keys
        .iter()
        .map(|h| {
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(h.trim(), &mut bytes)
                .ok()
                .and_then(|()| VerifyingKey::from_bytes(&bytes).ok())
                .with_context(|| format!("--trusted-writer-key {h:?}: expected an ed25519 public key as 64 hex digits"))
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn restore(
    config: NodeConfig,
    backup: &str,
    id: Option<&str>,
    recovery_key: &Path,
    trusted_writer_keys: &[String],
    ca_dir: PathBuf,
    own_ca: Option<(PathBuf, PathBuf)>,
    client_config: PathBuf,
) -> Result<()> {
    // What could conflict or fail cheaply is checked before anything is
    // read from the destination or written here.
    check_new_cluster(&config, &client_config, &ca_dir, own_ca.as_ref())?;
    let recovery = RecoveryKey::load(recovery_key)?;
    let trusted = writer_keys(trusted_writer_keys)?;
    let (dest, id) = backup_location(backup, id).await?;
    let id = choose_backup(
        &dest,
        id,
        (!trusted.is_empty()).then_some(trusted.as_slice()),
        hsm_node::service::now_ms(),
    )
    .await?;
    println!("Restoring backup {id} from {}", dest.url());
    // A new CA is written only once the restore succeeded.
    let (ca, new_ca) = cluster_ca(own_ca)?;
    let progress = hsm_backup::progress::for_stderr();
    let restored = restore_cluster(
        &config,
        &ca,
        &dest,
        id,
        &recovery,
        (!trusted.is_empty()).then_some(trusted.as_slice()),
        progress.as_ref(),
    )
    .await?;
    if new_ca {
        save_new_ca(&ca_dir, &ca)?;
    }
    local::write_client_config(
        &client_config,
        &ClientConfig {
            cluster_id: restored.cluster_id.to_string(),
            ca_cert_pem: ca.cert_pem().to_owned(),
            zone: None,
            nodes: vec![ClientNode::of_record(&restored.first_node)],
        },
    )?;
    let (writer, writer_key) = restored.writer;
    println!(
        "Restored backup {} of cluster {} (index {}, term {}, taken at {} ms) as new cluster {} with node {}.",
        restored.backup,
        restored.from_cluster,
        restored.applied_index,
        restored.term,
        restored.created_ms,
        restored.cluster_id,
        restored.first_node.id.0
    );
    println!(
        "  written by node {} with signing key {}{}",
        writer.0,
        hex::encode(writer_key),
        if trusted.is_empty() {
            " (not checked: pass --trusted-writer-key to require a known writer)"
        } else {
            " (trusted)"
        }
    );
    println!("  users: {}, keys: {}", restored.users, restored.keys);
    println!("  backup state digest: {}", restored.backup_digest);
    println!("  new cluster state digest: {}", restored.digest);
    println!("Client config: {}", client_config.display());
    println!(
        "Next: hsm-node start --config <this config>; users log in with their passwords. \
         Add nodes with hsm-node prepare, hsm node add and hsm-node start --join."
    );
    Ok(())
}

async fn dev(dir: PathBuf, nodes: u64, base_port: u16, setup_only: bool) -> Result<()> {
    if !local::exists(&dir) {
        let password = activation_password()?;
        let cluster = local::create(&dir, nodes, base_port, &password).await?;
        println!(
            "Created a {nodes}-node cluster {} in {}",
            cluster.cluster_id,
            cluster.dir.display()
        );
        if std::env::var("HSM_ADMIN_PASSWORD").is_err() {
            println!("admin password (one-time, until you activate): {password}");
        }
    }
    let client = local::client_config_path(&dir);
    if setup_only {
        println!("client config: {}", client.display());
        return Ok(());
    }
    let mut running = Vec::new();
    for file in local::config_files(&dir)? {
        let config = NodeConfig::from_env_and_file(&file)?;
        running.push(RunningNode::start(&config).await?);
    }
    println!("Serving {} nodes:", running.len());
    for node in &running {
        println!("  node {} on {}", node.id, node.local_addr);
    }
    println!("client config: {}", client.display());
    println!("Next, in another terminal (hsm is built next to hsm-node):");
    println!("  export HSM_CLUSTER={}", client.display());
    println!("  HSM_PASSWORD=<the admin password> hsm cluster activate");
    println!("Press Ctrl-C to stop.");
    let (failed_tx, mut failed_rx) = tokio::sync::mpsc::channel::<String>(running.len());
    let watchers: Vec<_> = running
        .iter()
        .map(|node| {
            let raft = node.raft.clone();
            let tx = failed_tx.clone();
            let id = node.id;
            tokio::spawn(async move {
                let mut metrics = raft.metrics();
                loop {
                    let failed = metrics
                        .borrow()
                        .running_state
                        .as_ref()
                        .err()
                        .map(|e| e.to_string());
                    if let Some(e) = failed {
                        let _ = tx.send(format!("node {id}: {e}")).await;
                        return;
                    }
                    if metrics.changed().await.is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    let failure = tokio::select! {
        () = wait_for_shutdown() => None,
        reason = failed_rx.recv() => reason,
    };
    for w in watchers {
        w.abort();
    }
    // stdout may be closed by now (a pipe whose reader left): not an error.
    let _ = writeln!(std::io::stdout(), "Stopping...");
    for node in running {
        node.shutdown().await;
    }
    match failure {
        Some(reason) => bail!("raft stopped: {reason}"),
        None => Ok(()),
    }
}

/// A TLS key pin as `hsm cluster info` shows it: 64 hex digits.
fn parse_pin(text: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(text.trim()).map_err(|e| format!("not hex: {e}"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("{} bytes; a pin is 32 (64 hex digits)", b.len()))
}
