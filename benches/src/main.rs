//! `hsm-bench`: the cluster through the SDK, measured beside the crypto
//! library in-process (the limit) and peer systems, in one run on one
//! machine. `docs/benchmarks.md` explains the method and holds a full run.
//!
//! ```text
//! hsm-bench run   [--nodes 1..28 | --cluster client.toml] [--ops ...] [--concurrency 1,8,32]
//!                 [--seconds 5] [--peers openssl,softhsm2,etcd|none] [--out DIR]
//! hsm-bench scale [--keys 1000000] [--nodes 3] [--out DIR]
//! ```

mod cluster;
mod load;
mod ops;
mod peers;
mod plot;
mod report;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use hsm_client::{Client, ClientConfig, ClientOptions, KeySpec, Username};
use hsm_crypto::mechanism::SignMechanism;

use crate::cluster::{LocalCluster, BENCH_PASSWORD, BENCH_USER};
use crate::load::{drive, Figures};
use crate::ops::{Keys, Login, Op};
use crate::peers::PeerResults;
use crate::report::{ClusterFacts, Machine, Report, Row, ScaleReport};

#[derive(Parser)]
#[command(
    name = "hsm-bench",
    about = "Benchmarks of the HSM cluster beside the in-process limit and peers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Throughput and latency per operation and concurrency.
    Run(RunArgs),
    /// Load many keys, then report memory, snapshot size and time, restart
    /// time and signing latency at that size.
    Scale(ScaleArgs),
    /// Render the Markdown and images again from a run's results.json.
    Report {
        /// The results.json of a run.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// Where to write them (default: beside results.json).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

#[derive(Args, Clone)]
struct Common {
    /// Nodes of the cluster the bench starts on loopback.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=28))]
    nodes: u64,
    /// An existing cluster's client config instead (log in as the crypto
    /// user HSM_USER with HSM_PASSWORD).
    #[arg(long, value_name = "FILE")]
    cluster: Option<PathBuf>,
    /// The hsm-node binary (default: next to hsm-bench).
    #[arg(long, value_name = "PATH")]
    hsm_node: Option<PathBuf>,
    /// Where the JSON, Markdown and images go.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// Operations, comma-separated, or `all`: sign-p256, sign-many-p256
    /// (64 signatures per call, counted per signature), sign-ed25519,
    /// sign-rsa2048, verify-p256, aes-gcm-1k, hmac-sha256, random-32,
    /// keygen, login.
    #[arg(long, default_value = "all")]
    ops: String,
    /// Concurrent callers, comma-separated.
    #[arg(long, default_value = "1,8,32")]
    concurrency: String,
    /// Peers, comma-separated (openssl, softhsm2, etcd), or `none`.
    #[arg(long, default_value = "openssl,softhsm2,etcd")]
    peers: String,
    /// Do not draw the images.
    #[arg(long)]
    no_images: bool,
}

#[derive(Args)]
struct ScaleArgs {
    #[command(flatten)]
    common: Common,
    /// Keys to load.
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// Concurrent callers while loading.
    #[arg(long, default_value_t = 64)]
    load_concurrency: usize,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let command: Vec<String> = std::env::args().collect();
    let command = command.join(" ");
    runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => run(args, command).await,
            Command::Scale(args) => scale(args, command).await,
            Command::Report { from, out } => {
                let text = std::fs::read_to_string(&from)
                    .with_context(|| format!("cannot read {}", from.display()))?;
                let report: Report = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not hsm-bench results", from.display()))?;
                let dir = out.unwrap_or_else(|| {
                    from.parent()
                        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
                });
                write_outputs(&report, &dir, true)
            }
        }
    })
}

fn say(text: impl AsRef<str>) {
    eprintln!("hsm-bench: {}", text.as_ref());
}

fn list<T>(text: &str, parse: impl Fn(&str) -> Result<T>) -> Result<Vec<T>> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse)
        .collect()
}

fn now_rfc3339() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output();
    out.ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The cluster under test and a client logged in as the bench's crypto
/// user.
struct Target {
    local: Option<LocalCluster>,
    /// How long a cluster the bench started took to form.
    formed: Option<Duration>,
    config: ClientConfig,
    client: Client,
    login: Login,
}

async fn target(common: &Common, in_flight: usize, env: &[(&str, &str)]) -> Result<Target> {
    if let Some(path) = &common.cluster {
        let config = cluster::read_config(path)?;
        let user = std::env::var("HSM_USER").context("--cluster needs HSM_USER (a crypto user)")?;
        let password = std::env::var("HSM_PASSWORD").context("--cluster needs HSM_PASSWORD")?;
        let client = cluster::connect(&config, in_flight).await?;
        let username = Username::new(user).map_err(anyhow::Error::msg)?;
        client.login(username.clone(), password.as_str()).await?;
        return Ok(Target {
            local: None,
            formed: None,
            config,
            client,
            login: Login { username, password },
        });
    }
    let bin = cluster::node_binary(common.hsm_node.as_deref())?;
    say(format!(
        "starting a {}-node cluster ({})",
        common.nodes,
        bin.display()
    ));
    let local = LocalCluster::start(&bin, common.nodes, env)?;
    let started = Instant::now();
    let config = cluster::read_config(&local.client_config())?;
    // Many nodes on few cores take longer to start and elect.
    let patience = Duration::from_secs(60 + 5 * common.nodes);
    if let Err(e) = cluster::wait_ready(&config, common.nodes, patience).await {
        bail!("{e:#}\n{}", local.logs());
    }
    let formed = started.elapsed();
    say(format!("formed in {:.1} s", formed.as_secs_f64()));
    let client = cluster::set_up_user(&config, in_flight).await?;
    Ok(Target {
        local: Some(local),
        formed: Some(formed),
        config,
        client,
        login: Login {
            username: Username::new(BENCH_USER).map_err(anyhow::Error::msg)?,
            password: BENCH_PASSWORD.to_owned(),
        },
    })
}

/// Measures `op` through the SDK at `concurrency`.
async fn measure(
    t: &Target,
    op: Op,
    keys: &Keys,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<load::Measured> {
    // A login replaces the session of the client it runs on: logins get
    // their own client.
    let client = if op == Op::Login {
        cluster::connect(&t.config, concurrency).await?
    } else {
        t.client.clone()
    };
    let shared = Arc::new((client, keys.clone(), t.login.clone()));
    let mut m = drive(concurrency, warmup, duration, move || {
        let shared = shared.clone();
        async move {
            let (client, keys, login) = &*shared;
            ops::call(op, client, keys, login).await
        }
    })
    .await;
    m.per_call = op.per_call();
    Ok(m)
}

/// Signing callers of the mixed run.
const MIXED_SIGNERS: usize = 8;
/// Key generation callers of the mixed run.
const MIXED_WRITERS: usize = 32;

async fn run(args: RunArgs, command: String) -> Result<()> {
    let ops: Vec<Op> = if args.ops == "all" {
        Op::ALL.to_vec()
    } else {
        list(&args.ops, Op::parse)?
    };
    let levels: Vec<usize> = list(&args.concurrency, |s| {
        s.parse::<usize>()
            .ok()
            .filter(|n| (1..=4096).contains(n))
            .with_context(|| format!("--concurrency: {s:?} is not a number from 1 to 4096"))
    })?;
    let peer_names: Vec<String> = if args.peers == "none" {
        Vec::new()
    } else {
        list(&args.peers, |s| match s {
            "openssl" | "softhsm2" | "etcd" => Ok(s.to_owned()),
            other => bail!("--peers: unknown peer {other:?} (openssl, softhsm2, etcd or none)"),
        })?
    };
    let c = &args.common;
    std::fs::create_dir_all(&c.out)
        .with_context(|| format!("cannot create {}", c.out.display()))?;
    let started = now_rfc3339();
    let machine = Machine::here();
    let duration = Duration::from_secs(c.seconds.max(1));
    let warmup = (duration / 5).min(Duration::from_secs(1));
    let max_level = levels.iter().copied().max().unwrap_or(1);

    let mut t = target(c, max_level, &[]).await?;
    let keys = Keys::make(&t.client).await?;
    let mut rows = Vec::new();
    for &op in &ops {
        for &level in &levels {
            say(format!("{} with {level} callers", op.name()));
            let pids = t.local.as_ref().map(LocalCluster::pids).unwrap_or_default();
            let cpu = CpuWatch::start(&pids);
            let m = measure(&t, op, &keys, level, warmup, duration).await?;
            let (node_cpu_us, client_cpu_us) = cpu.per_op(m.figures().ops_per_s);
            let threads = level.min(machine.cores);
            let limit = tokio::task::spawn_blocking(move || ops::limit(op, threads, duration))
                .await
                .context("the in-process measurement failed")?;
            rows.push(Row {
                op,
                concurrency: level,
                ours: m.figures(),
                first_error: m.first_error.clone(),
                limit: limit.map(|l| l.figures()),
                limit_threads: threads,
                peers: Vec::new(),
                node_cpu_us,
                client_cpu_us,
            });
        }
    }
    let mixed = if ops.contains(&Op::SignP256) && ops.contains(&Op::Keygen) {
        say(format!(
            "sign-p256 at {MIXED_SIGNERS} callers, alone and while keygen runs at {MIXED_WRITERS}"
        ));
        let alone = measure(&t, Op::SignP256, &keys, MIXED_SIGNERS, warmup, duration).await?;
        let (signs, writes) = tokio::join!(
            measure(&t, Op::SignP256, &keys, MIXED_SIGNERS, warmup, duration),
            measure(&t, Op::Keygen, &keys, MIXED_WRITERS, warmup, duration)
        );
        Some(report::Mixed {
            sign_callers: MIXED_SIGNERS,
            keygen_callers: MIXED_WRITERS,
            alone: alone.figures(),
            with_writes: signs?.figures(),
            writes: writes?.figures(),
        })
    } else {
        None
    };
    let nodes = if t.local.is_some() { c.nodes } else { 0 };
    let facts = match t.local {
        Some(_) => Some(cluster_facts(&mut t, &keys).await),
        None => None,
    };
    // The cluster stops before the peers run, so they have the machine.
    drop(t);

    let mut peers = PeerResults::default();
    let mut threads: Vec<usize> = levels.iter().map(|l| (*l).min(machine.cores)).collect();
    threads.sort_unstable();
    threads.dedup();
    for name in &peer_names {
        say(format!("peer {name}"));
        match name.as_str() {
            "openssl" => {
                for &n in &threads {
                    peers::openssl(&mut peers, n, c.seconds, &ops);
                }
            }
            "softhsm2" => {
                for &n in &threads {
                    peers::softhsm2(&mut peers, n, c.seconds, &ops);
                }
            }
            "etcd" if ops.contains(&Op::Keygen) => {
                peers::etcd(&mut peers, &levels, c.seconds);
            }
            _ => {}
        }
    }
    report::attach_peers(&mut rows, &peers, machine.cores);
    let mut skipped = peers.skipped.clone();
    skipped.sort();
    skipped.dedup();
    let report = Report {
        command,
        started,
        machine,
        nodes,
        seconds: c.seconds,
        rows,
        skipped,
        scale: None,
        mixed,
        cluster: facts,
    };
    write_outputs(&report, &c.out, !args.no_images)
}

/// Memory of the bench's own cluster, then its leader's loss: the leader
/// is killed and key generations are tried (each with the SDK's own
/// retries) until one is acknowledged, for at most a minute.
async fn cluster_facts(t: &mut Target, keys: &Keys) -> ClusterFacts {
    let pids = t.local.as_ref().map(LocalCluster::pids).unwrap_or_default();
    let nodes_rss_mib = pids.iter().filter_map(|p| rss_mib(*p)).sum();
    let formed_s = t.formed.map_or(0.0, |d| d.as_secs_f64());
    let leader = match t.client.cluster_info().await {
        Ok(info) if info.members.len() > 1 => info.leader.map(|l| l.0),
        _ => None,
    };
    let Some((leader, local)) = leader.zip(t.local.as_mut()) else {
        return ClusterFacts {
            formed_s,
            nodes_rss_mib,
            write_after_leader_loss_s: None,
            killed_leader: None,
        };
    };
    say(format!("killing the leader, node {leader}"));
    local.kill_node(leader);
    let killed = Instant::now();
    let mut acknowledged = None;
    while killed.elapsed() < Duration::from_secs(60) {
        if ops::call(Op::Keygen, &t.client, keys, &t.login)
            .await
            .is_ok()
        {
            acknowledged = Some(killed.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ClusterFacts {
        formed_s,
        nodes_rss_mib,
        write_after_leader_loss_s: acknowledged,
        killed_leader: Some(leader),
    }
}

fn write_outputs(report: &Report, out: &Path, images: bool) -> Result<()> {
    let json = serde_json::to_string_pretty(report).context("cannot encode the results")?;
    std::fs::write(out.join("results.json"), json).context("cannot write results.json")?;
    let md = report::markdown(report);
    std::fs::write(out.join("results.md"), &md).context("cannot write results.md")?;
    println!("{md}");
    if images && !report.rows.is_empty() {
        match plot::write_images(out, &report.rows, report.nodes) {
            Ok(files) => {
                for f in files {
                    say(format!("wrote {}", f.display()));
                }
            }
            Err(e) => say(format!("no images: {e:#}")),
        }
    }
    say(format!("results in {}", out.display()));
    Ok(())
}

/// CPU seconds (user and system) processes have used so far, from
/// /proc/<pid>/stat, in clock ticks of 1/100 s (Linux's USER_HZ).
pub(crate) fn cpu_seconds(pids: &[u32]) -> Option<f64> {
    let mut ticks = 0u64;
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which may hold spaces), from the
        // third: utime and stime are the 14th and 15th.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        ticks += fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    }
    Some(ticks as f64 / 100.0)
}

/// CPU used by the nodes and by this process while an operation runs.
struct CpuWatch {
    pids: Vec<u32>,
    nodes: Option<f64>,
    client: Option<f64>,
    wall: Instant,
}

impl CpuWatch {
    fn start(pids: &[u32]) -> CpuWatch {
        CpuWatch {
            pids: pids.to_vec(),
            nodes: if pids.is_empty() {
                None
            } else {
                cpu_seconds(pids)
            },
            client: cpu_seconds(&[std::process::id()]),
            wall: Instant::now(),
        }
    }

    /// µs of CPU per operation at `ops_per_s` (the rate also held during
    /// the warmup, which this watch includes), for the nodes and for this
    /// process.
    fn per_op(&self, ops_per_s: f64) -> (Option<f64>, Option<f64>) {
        let ops = ops_per_s * self.wall.elapsed().as_secs_f64();
        let per = |before: Option<f64>, now: Option<f64>| -> Option<f64> {
            let used = now? - before?;
            (ops > 0.0).then(|| used * 1e6 / ops)
        };
        (
            per(self.nodes, cpu_seconds(&self.pids)),
            per(self.client, cpu_seconds(&[std::process::id()])),
        )
    }
}

/// Resident memory of a process, MiB.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

fn dir_mib(dir: &Path) -> f64 {
    fn walk(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| {
                let p = e.path();
                if p.is_dir() {
                    walk(&p)
                } else {
                    e.metadata().map_or(0, |m| m.len())
                }
            })
            .sum()
    }
    walk(dir) as f64 / 1024.0 / 1024.0
}

async fn sign_figures(t: &Target, keys: &Keys, duration: Duration) -> Result<Figures> {
    let m = measure(t, Op::SignP256, keys, 16, duration / 5, duration).await?;
    Ok(m.figures())
}

async fn scale(args: ScaleArgs, command: String) -> Result<()> {
    let c = &args.common;
    if c.cluster.is_some() {
        bail!("scale starts its own cluster (it stops and restarts a node); drop --cluster");
    }
    std::fs::create_dir_all(&c.out)
        .with_context(|| format!("cannot create {}", c.out.display()))?;
    let started = now_rfc3339();
    let machine = Machine::here();
    let duration = Duration::from_secs(c.seconds.max(1));
    // Snapshots every 100,000 entries keep the log short while loading.
    let t = target(
        c,
        args.load_concurrency,
        &[("HSM_NODE_RAFT_SNAPSHOT_EVERY_LOGS", "100000")],
    )
    .await?;
    let keys = Keys::make(&t.client).await?;
    let sign_small = sign_figures(&t, &keys, duration).await?;

    say(format!("loading {} keys", args.keys));
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let target_keys = args.keys;
    let start = Instant::now();
    let client = t.client.clone();
    let workers: Vec<_> = (0..args.load_concurrency.max(1))
        .map(|_| {
            let client = client.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                loop {
                    let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= target_keys {
                        return Ok::<(), anyhow::Error>(());
                    }
                    client
                        .generate_key(
                            KeySpec::Aes { bits: 128 },
                            hsm_client::KeyAttributes {
                                label: format!("scale-{n}"),
                                encrypt: true,
                                decrypt: true,
                                ..hsm_client::KeyAttributes::default()
                            },
                            false,
                        )
                        .await
                        .with_context(|| format!("key {n}"))?;
                    if n % 50_000 == 0 && n > 0 {
                        say(format!("{n} keys"));
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.context("a loader failed")??;
    }
    let load_seconds = start.elapsed().as_secs_f64();
    let local = t.local.as_ref().context("no local cluster")?;
    let node_rss_mib: Vec<f64> = local.pids().into_iter().filter_map(rss_mib).collect();
    let data_dir_mib = dir_mib(&local.path().join("node1"));
    let sign_at_scale = sign_figures(&t, &keys, duration).await?;

    // Snapshot size and time: an on-demand backup seals the snapshot.
    let admin = cluster::connect(&t.config, 4).await?;
    admin
        .login(
            Username::new("admin").map_err(anyhow::Error::msg)?,
            "hsm-bench-admin-password",
        )
        .await?;
    let b0 = Instant::now();
    let backup = admin
        .with_deadline(Duration::from_secs(3600))
        .create_backup()
        .await;
    let snapshot = backup
        .ok()
        .map(|b| (b.plain_bytes, b0.elapsed().as_secs_f64()));

    // Restart the last node; time until it signs again.
    let n = c.nodes;
    let mut t = t;
    let restart_to_serving_s = if let Some(local) = t.local.as_mut() {
        local.stop_node(n);
        let r0 = Instant::now();
        local.restart_node(n)?;
        let mut pinned = t.config.clone();
        pinned.nodes.retain(|node| node.id == n);
        let deadline = r0 + Duration::from_secs(1800);
        loop {
            let ok = async {
                let client = Client::connect(
                    pinned.clone(),
                    ClientOptions::default()
                        .follow_membership(false)
                        .deadline(Duration::from_secs(5)),
                )
                .await?;
                client
                    .login(t.login.username.clone(), BENCH_PASSWORD)
                    .await?;
                client
                    .sign(keys.p256_id(), SignMechanism::EcdsaSha256, vec![1u8; 32])
                    .await?;
                anyhow::Ok(())
            }
            .await;
            if ok.is_ok() {
                break Some(r0.elapsed().as_secs_f64());
            }
            if Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    } else {
        None
    };

    let report = Report {
        command,
        started,
        machine,
        nodes: c.nodes,
        seconds: c.seconds,
        rows: Vec::new(),
        skipped: Vec::new(),
        scale: Some(ScaleReport {
            keys: args.keys,
            load_seconds,
            load_keys_per_s: args.keys as f64 / load_seconds.max(1e-9),
            node_rss_mib,
            snapshot_mib: snapshot.map(|(bytes, _)| bytes as f64 / 1024.0 / 1024.0),
            snapshot_seconds: snapshot.map(|(_, s)| s),
            data_dir_mib,
            restart_to_serving_s,
            sign_at_scale: Some(sign_at_scale),
            sign_small: Some(sign_small),
        }),
        mixed: None,
        cluster: None,
    };
    write_outputs(&report, &c.out, false)
}
