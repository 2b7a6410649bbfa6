//! A local cluster on loopback, as `hsm-node dev` runs it: every node's
//! files under one directory, created with the same steps a real
//! deployment uses (a cluster CA, each node prepared with its own storage
//! key, identity and certificate, the domain key sealed to each founding
//! member's agreement key, one signed init event).
//!
//! Layout of the directory:
//! - `ca/ca.pem`, `ca/ca.key` (0600): the cluster CA;
//! - `node<i>.toml`: each node's configuration; `node<i>/`: its data;
//! - `client.toml`: the client config for the SDK and `hsm`;
//! - `backups/`: the backup destination (an hourly backup, and
//!   `hsm backup create`);
//! - `recovery/recovery.key` (0600), `recovery/recovery.pub`: the recovery
//!   key pair backups are sealed to (`hsm-node restore --recovery-key`).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use hsm_backup::RecoveryKey;
use hsm_proto::client::{ClientConfig, ClientNode};
use hsm_proto::ClusterId;

use crate::config::NodeConfig;
use crate::runtime::{init_cluster, prepare, write_private, write_public};
use crate::transport::ClusterCa;

/// Zones the local nodes are spread over, in turn.
const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];

/// What [`create`] made.
#[derive(Debug)]
pub struct LocalCluster {
    /// The directory.
    pub dir: PathBuf,
    /// Each node's configuration file.
    pub config_files: Vec<PathBuf>,
    /// The client config file.
    pub client_config: PathBuf,
    /// The cluster id.
    pub cluster_id: ClusterId,
}

/// The client config file of a local cluster directory.
pub fn client_config_path(dir: &Path) -> PathBuf {
    dir.join("client.toml")
}

/// The recovery private key of a local cluster directory.
pub fn recovery_key_path(dir: &Path) -> PathBuf {
    dir.join("recovery/recovery.key")
}

/// Node `i`'s configuration file in a local cluster directory.
pub fn node_config_path(dir: &Path, i: u64) -> PathBuf {
    dir.join(format!("node{i}.toml"))
}

/// Whether `dir` holds a local cluster made by [`create`].
pub fn exists(dir: &Path) -> bool {
    client_config_path(dir).exists()
}

/// The configuration files of the local cluster in `dir`, in node order.
///
/// # Errors
/// If `dir` holds no node configuration.
pub fn config_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for i in 1.. {
        let path = node_config_path(dir, i);
        if !path.exists() {
            break;
        }
        files.push(path);
    }
    if files.is_empty() {
        bail!("{} holds no node configuration", dir.display());
    }
    Ok(files)
}

/// Creates a local cluster of `nodes` members listening on
/// `127.0.0.1:<base_port + i - 1>`, spread over three zones, with
/// `admin_password` as the unactivated admin's password.
///
/// # Errors
/// If `dir` holds a cluster already, or a file cannot be written.
pub async fn create(
    dir: &Path,
    nodes: u64,
    base_port: u16,
    admin_password: &str,
) -> Result<LocalCluster> {
    if !(1..=28).contains(&nodes) {
        bail!("a cluster has 1 to 28 nodes");
    }
    let mut members = Vec::new();
    for i in 0..nodes {
        let port = base_port
            .checked_add(u16::try_from(i)?)
            .context("port out of range")?;
        members.push(LocalMember {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            zone: ZONES[usize::try_from(i % 3)?].to_owned(),
        });
    }
    create_with(dir, &members, admin_password).await
}

/// Where one member of [`create_with`] listens, and its zone.
#[derive(Debug, Clone)]
pub struct LocalMember {
    /// Its address (a specific one, not a wildcard: it is also the address
    /// the others reach it at).
    pub listen: SocketAddr,
    /// Its zone.
    pub zone: String,
}

/// Creates a cluster of `members` (node ids from 1, in order) with all its
/// files under `dir`, electing fast as on one machine or one network, with
/// `admin_password` as the unactivated admin's password. The chaos harness
/// uses it for members in network namespaces of their own.
///
/// # Errors
/// If `dir` holds a cluster already, or a file cannot be written.
pub async fn create_with(
    dir: &Path,
    members: &[LocalMember],
    admin_password: &str,
) -> Result<LocalCluster> {
    if exists(dir) {
        bail!("{} holds a cluster already", dir.display());
    }
    if !(1..=28).contains(&members.len()) {
        bail!("a cluster has 1 to 28 nodes");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let ca = ClusterCa::generate("hsm-cluster dev")?;
    write_public(&dir.join("ca/ca.pem"), ca.cert_pem().as_bytes())?;
    write_private(&dir.join("ca/ca.key"), ca.key_pem().as_bytes())?;
    let recovery = RecoveryKey::generate();
    std::fs::create_dir_all(dir.join("recovery"))
        .with_context(|| format!("cannot create {}", dir.join("recovery").display()))?;
    recovery.save(&recovery_key_path(&dir))?;
    let recovery_public = dir.join("recovery/recovery.pub");
    recovery.public_key().save(&recovery_public)?;
    let backups = dir.join("backups");
    std::fs::create_dir_all(&backups)
        .with_context(|| format!("cannot create {}", backups.display()))?;
    let backups_url = format!(
        "file://{}",
        backups
            .to_str()
            .context("the cluster directory's path is not valid unicode")?
    );

    let mut prepared = Vec::new();
    let mut config_files = Vec::new();
    for (i, member) in (1..).zip(members) {
        let mut config = NodeConfig::new(i, dir.join(format!("node{i}")));
        config.listen = member.listen;
        config.zone.clone_from(&member.zone);
        // One machine or one network: elect fast.
        config.raft.heartbeat_interval_ms = 100;
        config.raft.election_timeout_min_ms = 500;
        config.raft.election_timeout_max_ms = 1000;
        config.backup.destination = Some(backups_url.clone());
        config.backup.recovery_keys = vec![recovery_public.clone()];
        config.backup.interval_s = 3600;
        let text = toml::to_string(&config).context("cannot encode a node configuration")?;
        let path = node_config_path(&dir, i);
        write_public(&path, text.as_bytes())?;
        let record = prepare(&config, &ca)?.record;
        prepared.push((config, record));
        config_files.push(path);
    }
    let (first, first_record) = prepared.remove(0);
    let cluster_id = init_cluster(&first, &prepared, first_record.clone(), admin_password).await?;

    let mut members = vec![first_record];
    members.extend(prepared.iter().map(|(_, r)| r.clone()));
    let client = ClientConfig {
        cluster_id: cluster_id.to_string(),
        ca_cert_pem: ca.cert_pem().to_owned(),
        zone: None,
        nodes: members.iter().map(ClientNode::of_record).collect(),
    };
    let client_config = client_config_path(&dir);
    write_client_config(&client_config, &client)?;
    Ok(LocalCluster {
        dir,
        config_files,
        client_config,
        cluster_id,
    })
}

/// Writes a client config file.
///
/// # Errors
/// If it exists already or cannot be written.
pub fn write_client_config(path: &Path, config: &ClientConfig) -> Result<()> {
    let text = format!(
        "# Client configuration of HSM cluster {}: the SDK and `hsm` read it\n\
         # (point HSM_CLUSTER at this file).\n{}",
        config.cluster_id,
        toml::to_string(config).context("cannot encode the client configuration")?
    );
    write_public(path, text.as_bytes())
}

/// Loopback ports [`free_ports`] handed out in this process, never handed
/// out twice: the tests of one binary run side by side and each starts
/// nodes of its own.
static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// The first port of `n` consecutive loopback ports free for both UDP
/// (QUIC) and TCP (metrics), for a local cluster a test or benchmark
/// starts.
///
/// They are taken below the kernel's ephemeral range, so no socket bound
/// to port 0 (every QUIC client endpoint, the nodes' own included) can
/// take one between this check and the node binding it; within this
/// process none is handed out twice. Another program may still bind one
/// in that moment: this is for tests and benchmarks on a machine of their
/// own, not for production.
///
/// # Errors
/// If no such block is found after many tries.
pub fn free_ports(n: u16) -> std::io::Result<u16> {
    use std::net::{TcpListener, UdpSocket};
    let (low, high) = ports_below_ephemeral();
    let span = high.saturating_sub(low).saturating_sub(n);
    if n == 0 || span == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("no room for {n} ports between {low} and {high}"),
        ));
    }
    for _ in 0..1000 {
        let base = low + rand::random::<u16>() % span;
        let ports = base..base + n;
        let mut taken = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
        if ports.clone().any(|p| taken.contains(&p)) {
            continue;
        }
        let free = ports.clone().all(|p| {
            UdpSocket::bind((Ipv4Addr::LOCALHOST, p)).is_ok()
                && TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok()
        });
        if free {
            taken.extend(ports);
            return Ok(base);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!("no {n} free consecutive loopback ports between {low} and {high}"),
    ))
}

/// Ports from 10000 up to the start of the kernel's ephemeral range
/// (Linux: `/proc/sys/net/ipv4/ip_local_port_range`; elsewhere the IANA
/// range from 49152 is assumed).
fn ports_below_ephemeral() -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(49_152);
    if ephemeral_low > 11_000 {
        (10_000, ephemeral_low)
    } else {
        // A machine whose ephemeral range starts low: above it instead.
        let high = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|t| t.split_whitespace().nth(1)?.parse::<u16>().ok())
            .unwrap_or(u16::MAX);
        (high.saturating_add(1).max(1024), u16::MAX)
    }
}
