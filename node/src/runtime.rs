//! A running node: everything `hsm-node start` assembles from its
//! configuration, and the one-time setup that `hsm-node init` does.
//!
//! Files under the data directory (paths from [`NodeConfig`]):
//! - `storage.key`: the node storage key (0600), unless configured
//!   elsewhere;
//! - `identity.sealed`, `domain.sealed`: the node identity and the cluster
//!   domain key, sealed under a subkey of the storage key;
//! - `tls/ca.pem`, `tls/node.pem`, `tls/node.key` (0600): the cluster CA
//!   certificate and this node's certificate and key;
//! - `raft/`: the sealed RocksDB store.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use hsm_proto::{Actor, ClusterId, EventBody, NodeId, NodeRecord, RequestId};
use hsm_raft_store::{StateMachineStore, StorageKey};
use hsm_state::{authz, State};
use openraft::BasicNode;
use rand::RngCore;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use crate::backup::Snapshotter;
use crate::config::NodeConfig;
use crate::handoff::HandOff;
use crate::proposer::Proposer;
use crate::raft::{
    DomainSource, LeaderContact, LeaderReads, QuicNetwork, Raft, SnapshotInbox, SnapshotSigner,
};
use crate::secrets::{hash_password, DomainKey, Keyring, NodeIdentity};
use crate::server::{spawn_accept_loop, ConnectionLimits, Handlers};
use crate::service::{Service, ServiceParts};
use crate::transport::{
    client_endpoint, key_pin_of_pem, node_client_tls, server_endpoint, server_tls,
    with_stream_limit, ClusterCa, NodeCert,
};
use crate::writer::Writer;

/// Context of the subkey that seals the identity and domain key files.
const FILE_KEY_CONTEXT: &str = "hsm-node key files v1";

/// How many loaded keys a node keeps in memory.
const KEY_CACHE_ENTRIES: usize = 10_000;

/// The sealing key for a node's key files.
pub fn file_key(storage: &StorageKey) -> Zeroizing<[u8; 32]> {
    storage.subkey(FILE_KEY_CONTEXT)
}

/// A running node. Dropping it does not stop it; call
/// [`RunningNode::shutdown`].
pub struct RunningNode {
    /// This node's id.
    pub id: NodeId,
    /// Its Raft handle.
    pub raft: Raft,
    /// Its state machine.
    pub sm: StateMachineStore,
    /// The client service.
    pub service: Arc<Service>,
    /// Where writes go.
    pub writer: Writer,
    /// The address it listens on.
    pub local_addr: std::net::SocketAddr,
    /// The address of its metrics and health endpoint, when it has one.
    pub metrics_addr: Option<std::net::SocketAddr>,
    endpoint: quinn::Endpoint,
    network: QuicNetwork,
    proposer: Arc<Proposer>,
    reads: LeaderReads,
    /// The accept loop first, then background work.
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for RunningNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningNode")
            .field("id", &self.id)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

fn read_text(path: &Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

/// Reads a private key file (TLS key, CA key) that only its owner may
/// read: one that group or others can read is refused, naming the fix.
///
/// # Errors
/// If the file cannot be read or group or others can read it.
pub fn read_private(path: &Path, what: &str) -> Result<Zeroizing<String>> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "{what} {}: permissions are {mode:o}; expected 600 (readable by its owner only): \
             chmod 600 {}",
            path.display(),
            path.display()
        );
    }
    Ok(Zeroizing::new(read_text(path, what)?))
}

/// Writes a new file readable by its owner only; refuses to overwrite.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Writes a new public file (certificates, configs); refuses to overwrite.
pub fn write_public(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The host part of a `host:port` address (brackets of an IPv6 one
/// dropped): what a node's certificate names besides its id.
fn host_of(address: &str) -> String {
    address
        .rsplit_once(':')
        .map_or(address, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned()
}

/// Gives this node a new certificate from `ca` for the TLS key it has
/// (`hsm-node renew-cert`), so the pin in its member record stays valid:
/// the step of a CA rotation that moves each node to the new CA. The new
/// CA must be in the node's CA file already (and in every member's and
/// client's: the operator guide's order), else the node could not
/// verify peers whose certificates it issues. The certificate file is
/// replaced atomically; the previous one is kept beside it
/// (`<file>.previous`). Takes effect when the node starts again.
///
/// # Errors
/// If the files cannot be read or written, the new CA is not in the CA
/// file, or the certificate would not carry the node's key.
pub fn renew_certificate(config: &NodeConfig, ca: &ClusterCa) -> Result<PathBuf> {
    config.validate()?;
    let bundle = read_text(&config.ca_cert(), "CA file")?;
    let new_ca = ca.cert_pem();
    if !bundle.contains(new_ca.trim()) {
        bail!(
            "the new CA is not in {} yet: add it there (and to every member's CA file and every              client's ca_cert_pem), restart the members, then renew",
            config.ca_cert().display()
        );
    }
    let old_cert = read_text(&config.node_cert(), "node certificate")?;
    let key = read_private(&config.node_key(), "node key")?;
    let cert = ca.reissue_node(config.id(), &[host_of(&config.advertise_addr()?)], &key)?;
    if key_pin_of_pem(&cert.cert_pem)? != key_pin_of_pem(&old_cert)? {
        bail!(
            "{} and {} do not hold the same key: the new certificate would not match the              member record",
            config.node_cert().display(),
            config.node_key().display()
        );
    }
    let path = config.node_cert();
    let previous = path.with_extension("pem.previous");
    let fresh = path.with_extension("pem.new");
    let _ = std::fs::remove_file(&fresh);
    write_public(&fresh, cert.cert_pem.as_bytes())?;
    let _ = std::fs::remove_file(&previous);
    std::fs::copy(&path, &previous)
        .with_context(|| format!("cannot keep {} as {}", path.display(), previous.display()))?;
    std::fs::rename(&fresh, &path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(path)
}

/// What [`prepare`] made for a node that is to join (or found) a cluster.
#[derive(Debug)]
pub struct Prepared {
    /// The node as the cluster will record it.
    pub record: NodeRecord,
}

/// First step for every node: creates the storage key, the node identity
/// and the TLS files (certificate issued by `ca` for the advertised host)
/// under the data directory. Refuses a directory that holds a node already.
///
/// # Errors
/// If a file exists already or cannot be written, or the configuration is
/// incomplete.
pub fn prepare(config: &NodeConfig, ca: &ClusterCa) -> Result<Prepared> {
    config.validate()?;
    let address = config.advertise_addr()?;
    if config.identity_file().exists() || config.store_dir().exists() {
        bail!(
            "{} holds a node already; choose an empty data directory",
            config.data_dir.display()
        );
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let storage = StorageKey::create_file(&config.storage_key_file())?;
    let identity = NodeIdentity::generate();
    identity.save(&config.identity_file(), &file_key(&storage))?;
    let cert = ca.issue_node(config.id(), &[host_of(&address)])?;
    write_public(&config.ca_cert(), ca.cert_pem().as_bytes())?;
    write_public(&config.node_cert(), cert.cert_pem.as_bytes())?;
    write_private(&config.node_key(), cert.key_pem.as_bytes())?;
    Ok(Prepared {
        record: NodeRecord {
            id: config.id(),
            signing_key: identity.verifying_key_bytes(),
            agreement_key: identity.agreement_public().to_bytes(),
            transport_key: key_pin_of_pem(&cert.cert_pem)?,
            zone: config.zone.clone(),
            address,
        },
    })
}

/// Hands the domain key to a prepared founding member through the same
/// sealed transfer a joining node gets (X25519 to its agreement key, bound
/// to the cluster and node id), and stores it under that node's storage
/// key.
///
/// # Errors
/// If the member's files cannot be read or written.
pub fn install_domain_key(
    domain: &DomainKey,
    cluster: ClusterId,
    member: &NodeConfig,
) -> Result<()> {
    let storage = StorageKey::load_file(&member.storage_key_file())?;
    let identity = NodeIdentity::load(&member.identity_file(), &file_key(&storage))?;
    let sealed = domain.seal_for_node(&identity.agreement_public(), cluster, member.id())?;
    let opened = DomainKey::open_sealed(
        &sealed,
        identity.agreement_secret(),
        cluster,
        member.id(),
        domain.generation(),
    )?;
    opened.save(&member.domain_key_file(), &file_key(&storage))?;
    Ok(())
}

/// Records `roster` in `member`'s store (created if it has none yet), as
/// the members it trusts until its replica records the cluster.
///
/// # Errors
/// If the member's storage key or store does not open.
fn trust_roster_of(member: &NodeConfig, roster: &State) -> Result<()> {
    let storage = StorageKey::load_file(&member.storage_key_file())?;
    let (_, sm) = open_or_create_store(member, &storage)?;
    // Its replica is empty, or as far behind as the founders' first
    // event: it always takes the roster.
    sm.trust_roster(roster).with_context(|| {
        format!(
            "cannot record the members in {}",
            member.store_dir().display()
        )
    })?;
    Ok(())
}

/// Opens `member`'s store, or creates an empty one if it has none yet (a
/// founding member, or a node just added, which the leader then brings up
/// to date).
///
/// # Errors
/// If the store does not open or cannot be created.
fn open_or_create_store(
    member: &NodeConfig,
    storage: &StorageKey,
) -> Result<(hsm_raft_store::LogStore, StateMachineStore)> {
    let store = member.store_dir();
    if store.exists() {
        hsm_raft_store::open(&store, storage)
    } else {
        tracing::info!(dir = %store.display(), "creating an empty store for a new member");
        hsm_raft_store::create(&store, storage)
    }
    .with_context(|| format!("cannot open the store in {}", store.display()))
}

/// Creates a cluster: `first` (prepared) becomes its first member and
/// `others` (prepared, each given the domain key) its other founding
/// members; the cluster's `admin` gets `admin_password` (to be changed at
/// activation). Starts the first node just long enough to commit the
/// cluster's first event. Returns the cluster id.
///
/// # Errors
/// If a node's files cannot be created or the first node cannot commit.
pub async fn init_cluster(
    first: &NodeConfig,
    others: &[(NodeConfig, NodeRecord)],
    first_record: NodeRecord,
    admin_password: &str,
) -> Result<ClusterId> {
    let mut id = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id);
    let cluster_id = ClusterId(id);
    let storage = StorageKey::load_file(&first.storage_key_file())?;
    let domain = DomainKey::generate(0);
    domain.save(&first.domain_key_file(), &file_key(&storage))?;
    let domain_check = domain.check();
    for (config, _) in others {
        install_domain_key(&domain, cluster_id, config)?;
    }
    hsm_raft_store::create(&first.store_dir(), &storage)?;
    drop(storage);
    let admin_password_hash = hash_password(admin_password)?;

    let node = RunningNode::start(first).await?;
    let mut members: BTreeMap<NodeId, BasicNode> = BTreeMap::new();
    members.insert(
        first.id(),
        BasicNode {
            addr: first_record.address.clone(),
        },
    );
    for (_, record) in others {
        members.insert(
            record.id,
            BasicNode {
                addr: record.address.clone(),
            },
        );
    }
    let voters: BTreeSet<NodeId> = members.keys().copied().collect();
    if voters.len() == 1 {
        node.raft
            .initialize(members)
            .await
            .map_err(|e| anyhow!("cannot initialize raft: {e}"))?;
    } else {
        // The other founders are not running yet: start as a single voter,
        // then add them once they are (`RunningNode::start` on each and
        // the membership task do that).
        let mut only_first = BTreeMap::new();
        only_first.insert(
            first.id(),
            BasicNode {
                addr: first_record.address.clone(),
            },
        );
        node.raft
            .initialize(only_first)
            .await
            .map_err(|e| anyhow!("cannot initialize raft: {e}"))?;
    }
    let mut request = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut request);
    let reply = node
        .writer
        .write(
            RequestId(request),
            Actor::Node(first.id()),
            None,
            EventBody::ClusterInitialized {
                cluster_id,
                first_node: first_record,
                other_nodes: others.iter().map(|(_, r)| r.clone()).collect(),
                admin_password_hash,
                domain_check,
            },
            Duration::from_secs(30),
        )
        .await?;
    reply
        .result
        .map_err(|r| anyhow!("the cluster's first event was refused: {r}"))?;
    // The other founders start with empty replicas: they check their first
    // peers against the members the first event recorded.
    let roster = node.sm.read(|a| a.state.roster());
    node.shutdown().await;
    for (config, _) in others {
        trust_roster_of(config, &roster)?;
    }
    Ok(cluster_id)
}

impl RunningNode {
    /// Starts a node from its configuration: unseals its files, opens its
    /// store, joins Raft and serves members and clients on `listen`.
    ///
    /// # Errors
    /// If a file is missing or does not open, the store does not open, or
    /// the address cannot be bound.
    pub async fn start(config: &NodeConfig) -> Result<RunningNode> {
        RunningNode::start_joining(config, None).await
    }

    /// Starts a node; a node that has no domain key yet (one just added to
    /// the cluster) first fetches it from the member at `join`, waiting
    /// until a crypto officer has approved it.
    ///
    /// # Errors
    /// As [`RunningNode::start`]; also when the node has no domain key and
    /// `join` is `None`.
    pub async fn start_joining(
        config: &NodeConfig,
        join: Option<&JoinTarget>,
    ) -> Result<RunningNode> {
        config.validate()?;
        let id = config.id();
        // Bound first: a node whose metrics address is taken refuses to
        // start before it starts anything.
        let metrics_listener = match config.metrics.listen {
            Some(addr) => Some(crate::metrics::bind(addr).await?),
            None => None,
        };
        let storage = StorageKey::load_file(&config.storage_key_file())?;
        let files = file_key(&storage);
        let identity = NodeIdentity::load(&config.identity_file(), &files)?;
        let ca_pem = read_text(&config.ca_cert(), "CA certificate")?;
        let cert = NodeCert {
            cert_pem: read_text(&config.node_cert(), "node certificate")?,
            key_pem: read_private(&config.node_key(), "node TLS key")?,
        };
        let server = server_endpoint(
            config.listen,
            with_stream_limit(
                server_tls(&ca_pem, &cert)?,
                config.limits.max_in_flight_per_connection,
            ),
        )?;
        let local_addr = server.local_addr()?;
        let client = client_endpoint(local_addr, node_client_tls(&ca_pem, &cert)?)?;
        let network = QuicNetwork::new(client);
        let (log, sm) = open_or_create_store(config, &storage)?;
        let log_for_metrics = log.clone();
        let domain_file = config.domain_key_file();
        let domain = if domain_file.exists() {
            DomainKey::load(&domain_file, &files)?
        } else {
            let Some(join) = join else {
                bail!(
                    "this node has no domain key yet: start it with --join <address of a member> \
                     --join-pin <its transport-key from hsm cluster info>; it waits there until a \
                     crypto officer approves it"
                );
            };
            let (domain, roster) = fetch_domain_key(&network, &identity, id, join).await?;
            // The roster before the key: a node that has the key starts
            // without asking again, and without a roster it could check no
            // peer before its first entries.
            sm.trust_roster(&roster)
                .context("cannot record the cluster's members")?;
            domain.save(&domain_file, &files)?;
            domain
        };
        let keyring = Arc::new(Keyring::new(
            id,
            identity.agreement_secret().clone(),
            Arc::new(domain),
        ));
        drop(storage);
        network.act_as(SnapshotSigner {
            node: id,
            key: identity.signing_key().clone(),
            sm: sm.clone(),
        });
        let raft = Raft::new(
            id,
            Arc::new(config.raft_config()?),
            network.clone(),
            log.clone(),
            sm.clone(),
        )
        .await
        .map_err(|e| anyhow!("cannot start raft: {e}"))?;
        let timings = Arc::new(crate::metrics::RaftTimings::default());
        sm.observe_timings(timings.observer());
        let proposer = Arc::new(Proposer::new(
            raft.clone(),
            log,
            sm.clone(),
            id,
            identity.signing_key().clone(),
            timings.clone(),
        ));
        let writer = Writer::new(raft.clone(), proposer.clone(), network.clone());
        let contact = LeaderContact::default();
        let reads = LeaderReads::new(
            raft.clone(),
            Duration::from_millis(config.raft.election_timeout_min_ms),
        );
        let backups = Snapshotter::from_settings(
            &config.backup,
            id,
            sm.clone(),
            keyring.clone(),
            identity.signing_key().clone(),
        )?
        .map(Arc::new);
        let service = Arc::new(Service::new(ServiceParts {
            node: id,
            raft: raft.clone(),
            proposer: proposer.clone(),
            sm: sm.clone(),
            writer: writer.clone(),
            network: network.clone(),
            reads: reads.clone(),
            keyring: keyring.clone(),
            session_lifetime: Duration::from_secs(config.sessions.lifetime_s),
            key_cache_entries: KEY_CACHE_ENTRIES,
            contact: contact.clone(),
            stale_after: Duration::from_millis(2 * config.raft.election_timeout_max_ms),
            backups: backups.clone(),
            self_tests: crate::service::power_on_self_tests(),
            password_checks_per_address: config.limits.max_password_checks_per_address,
        }));
        let strangers = Arc::new(tokio::sync::Notify::new());
        let acceptor = spawn_accept_loop(
            server.clone(),
            Handlers {
                raft: raft.clone(),
                reads: reads.clone(),
                proposer: proposer.clone(),
                domain: Some(DomainSource {
                    keyring: keyring.clone(),
                    sm: sm.clone(),
                }),
                snapshots: SnapshotInbox::new(sm.clone()),
                contact,
                service: Some(service.clone()),
                max_client_frame: config.limits.max_client_frame_bytes,
                max_raft_frame: config.raft.max_frame_bytes,
                connections: ConnectionLimits {
                    total: config.limits.max_connections,
                    per_address: config.limits.max_connections_per_address,
                },
                strangers: strangers.clone(),
            },
        );
        let membership = crate::membership::spawn(raft.clone(), sm.clone(), id);
        let rotation =
            crate::rotation::spawn(raft.clone(), sm.clone(), writer.clone(), keyring, id);
        let roster = crate::roster::spawn(
            network.clone(),
            sm.clone(),
            id,
            identity.verifying_key_bytes(),
            strangers,
        );
        let upgrade = crate::upgrade::spawn(
            raft.clone(),
            sm.clone(),
            writer.clone(),
            network.clone(),
            id,
        );
        let key_uses = crate::key_uses::spawn(
            service.key_uses(),
            sm.clone(),
            writer.clone(),
            id,
            Duration::from_secs(config.backup.key_use_interval_s),
        );
        let mut tasks = vec![acceptor, membership, rotation, roster, upgrade, key_uses];
        // Not fatal: a node that serves without it is better than none.
        match crate::operator::spawn(&config.data_dir, service.clone()) {
            Ok(task) => tasks.push(task),
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "no operator socket: `hsm-node unlock-user` cannot reach this node"
            ),
        }
        let metrics_addr = match metrics_listener {
            Some(listener) => {
                let bound = listener.local_addr()?;
                tasks.push(crate::metrics::serve(
                    listener,
                    (raft.clone(), log_for_metrics.clone()),
                    service.clone(),
                    config.data_dir.clone(),
                    &timings,
                ));
                tracing::info!(addr = %bound, "metrics and health endpoint serving");
                Some(bound)
            }
            None => None,
        };
        if let Some(b) = backups {
            tracing::info!(destination = %b.destination(), interval_s = config.backup.interval_s, "backups enabled");
            tasks.push(crate::backup::spawn_scheduler(b.clone(), raft.clone(), id));
            tasks.push(crate::backup::spawn_archiver(b, raft.clone(), id));
        }
        tracing::info!(node = %id, addr = %local_addr, "node started");
        Ok(RunningNode {
            id,
            raft,
            sm,
            service,
            writer,
            local_addr,
            metrics_addr,
            endpoint: server,
            network,
            proposer,
            reads,
            tasks,
        })
    }

    /// Resolves when Raft stops on its own because of a fatal error (for
    /// example the store failed a write and refuses all further work), with
    /// the reason. The process should then exit, so a supervisor restarts it
    /// and the store's checks run again at open.
    pub async fn fatal(&self) -> String {
        let mut metrics = self.raft.metrics();
        loop {
            let failed = metrics
                .borrow()
                .running_state
                .as_ref()
                .err()
                .map(|e| e.to_string());
            if let Some(e) = failed {
                return e;
            }
            if metrics.changed().await.is_err() {
                return "raft stopped".into();
            }
        }
    }

    /// Stops serving and shuts Raft down. A leader first hands leadership
    /// to a caught-up voter (`crate::handoff`), so the others need not wait
    /// out its lease and an election.
    pub async fn shutdown(self) {
        // Background work first (membership changes, rotation, backups,
        // metrics): nothing but the hand-over may append to the log now.
        // The accept loop (tasks[0]) serves the successor's vote request.
        for t in self.tasks.iter().skip(1) {
            t.abort();
        }
        let parts = crate::handoff::Parts {
            me: self.id,
            raft: &self.raft,
            proposer: &self.proposer,
            reads: &self.reads,
            network: &self.network,
            sm: &self.sm,
        };
        match crate::handoff::hand_off(&parts, None, HANDOFF_WITHIN).await {
            HandOff::NotLeading | HandOff::Alone => {}
            HandOff::Done { to } => tracing::info!(%to, "handed leadership over before stopping"),
            HandOff::Failed(why) => {
                tracing::warn!(%why, "could not hand leadership over before stopping; the others will elect a leader");
            }
        }
        for t in &self.tasks {
            t.abort();
        }
        self.endpoint.close(0u32.into(), b"shutting down");
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft did not shut down cleanly");
        }
        if let Err(e) = self.sm.flush() {
            tracing::warn!(error = %e, "cannot flush the store");
        }
    }
}

/// Longest a stopping leader tries to hand leadership over.
const HANDOFF_WITHIN: Duration = Duration::from_secs(5);

/// How often a joining node asks again while it waits for approval.
const JOIN_RETRY: Duration = Duration::from_secs(1);

/// The member a new node fetches the domain key from.
#[derive(Debug, Clone)]
pub struct JoinTarget {
    /// Its address (`host:port`).
    pub address: String,
    /// The pin of its TLS key: the node talks to it only if it holds it.
    pub pin: [u8; 32],
}

/// Asks the member `join` for the domain key until a crypto officer has
/// approved this node, then opens it with this node's agreement key.
async fn fetch_domain_key(
    network: &QuicNetwork,
    identity: &NodeIdentity,
    me: NodeId,
    join: &JoinTarget,
) -> Result<(DomainKey, State)> {
    let mut told: Option<String> = None;
    loop {
        match network.fetch_domain_key(me, &join.address, join.pin).await {
            Ok(handoff) => {
                let domain = DomainKey::open_sealed(
                    &handoff.sealed,
                    identity.agreement_secret(),
                    handoff.cluster,
                    me,
                    handoff.generation,
                )?;
                let roster = State::from_entities(handoff.roster).map_err(|e| {
                    anyhow!(
                        "the member at {} sent a roster that does not load: {e}",
                        join.address
                    )
                })?;
                authz::check_roster(
                    &roster,
                    handoff.cluster,
                    me,
                    &identity.verifying_key_bytes(),
                    &join.pin,
                )
                .map_err(|e| {
                    anyhow!(
                        "the member at {} sent a roster this node cannot use: {e}",
                        join.address
                    )
                })?;
                tracing::info!(cluster = %handoff.cluster, generation = handoff.generation, "received the domain key; joining");
                return Ok((domain, roster));
            }
            Err(reason) => {
                if told.as_deref() != Some(reason.as_str()) {
                    tracing::info!(member = %join.address, %reason, "waiting for approval to join");
                    told = Some(reason);
                }
                tokio::time::sleep(JOIN_RETRY).await;
            }
        }
    }
}
