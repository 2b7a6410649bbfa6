//! `hsm-chaos`: the chaos harness.
//!
//! - `hsm-chaos run --seed N --duration 60s ... --out DIR`: a cluster on
//!   hosts of its own under the seed's faults, clients recording a history,
//!   and the checkers' verdict (`hsm_chaos::run`); needs root.
//! - `hsm-chaos deploy --nodes N --zones Z --out DIR`: the operator
//!   guide's deployment on hosts of its own across zones, and its checks
//!   (`hsm_chaos::deploy`); needs root.
//! - `hsm-chaos check DIR`: runs every checker on a recorded history
//!   (`DIR/history.jsonl`, and `DIR/nodes.json` when present), and draws
//!   the run's timeline in `DIR/timeline.svg` (`hsm_chaos::timeline`).
//! - `hsm-chaos client` and `hsm-chaos probe`: what `run` starts inside the
//!   client hosts.
//!
//! Exit status: 0 valid, 1 invalid (a checker found something), 2 error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use hsm_chaos::check::{self, NodeFinal};
use hsm_chaos::history;
use hsm_chaos::run::nemesis::FaultKind;
use hsm_chaos::run::RunOptions;

#[derive(Parser)]
#[command(
    name = "hsm-chaos",
    about = "The chaos harness: a cluster under faults, a recorded history, and checkers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a cluster on hosts of its own (network namespaces; needs root)
    /// under the seed's faults while clients work, then checks the history.
    Run {
        /// Decides the faults and the workload; the same seed replays them.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// How long the fault schedule is, e.g. 60s, 30m. Clients work
        /// until the last fault is healed and the cluster recovered from
        /// it, so a run takes longer (each fault's recovery is waited for).
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        duration: Duration,
        /// Nodes (1 to 9).
        #[arg(long, default_value_t = 5)]
        nodes: u64,
        /// Zones the nodes are spread over, in turn.
        #[arg(long, default_value_t = 3)]
        zones: u64,
        /// Client processes (every other one pinned to a node).
        #[arg(long, default_value_t = 4)]
        clients: u32,
        /// Faults the nemesis may make, comma-separated, or `all`, or
        /// `none`: kill, pause, isolate, partition, one-way, bridge,
        /// kill-majority, zone, loss, clock, disk-full.
        #[arg(long, default_value = "all")]
        faults: String,
        /// The output directory (new or empty).
        #[arg(long)]
        out: PathBuf,
        /// The hsm-node binary (default: next to this one).
        #[arg(long)]
        hsm_node: Option<PathBuf>,
    },
    /// One client process's workload (inside a client host): its history
    /// as JSON lines in OUT. The officer's password comes from
    /// `HSM_CHAOS_OFFICER_PASSWORD`.
    #[command(hide = true)]
    Client {
        /// The cluster's client config.
        #[arg(long)]
        config: PathBuf,
        /// This process's number.
        #[arg(long)]
        process: u32,
        /// Seed of its choices.
        #[arg(long)]
        seed: u64,
        /// Seconds to invoke operations for, at most.
        #[arg(long)]
        duration_s: u64,
        /// Invoke nothing more once this file exists.
        #[arg(long)]
        stop_file: Option<PathBuf>,
        /// The run's start, ms since the Unix epoch.
        #[arg(long)]
        epoch_unix_ms: u64,
        /// Talk to this node only.
        #[arg(long)]
        node: Option<u64>,
        /// Where the history goes.
        #[arg(long)]
        out: PathBuf,
    },
    /// Creates the run's cluster (inside the first node's host).
    #[command(hide = true)]
    Setup {
        /// The cluster directory.
        #[arg(long)]
        dir: PathBuf,
        /// A member, `ip:port/zone`, in node id order.
        #[arg(long = "member")]
        members: Vec<String>,
    },
    /// Answers the runner's questions from inside a client host.
    #[command(hide = true)]
    Probe {
        /// The cluster's client config.
        #[arg(long)]
        config: PathBuf,
        #[command(subcommand)]
        probe: hsm_chaos::run::probe::Probe,
    },
    /// Deploys a cluster as docs/operator-guide.md says, on hosts of its
    /// own in several zones (network namespaces; needs root), and checks
    /// it: formed, zone-aware routing, a zone cut off, the leader lost.
    Deploy {
        /// Nodes (1 to 28).
        #[arg(long, default_value_t = 5)]
        nodes: u64,
        /// Zones the nodes are spread over, in turn (2 to 26).
        #[arg(long, default_value_t = 3)]
        zones: u64,
        /// The output directory (new or empty).
        #[arg(long)]
        out: PathBuf,
        /// The hsm-node binary (default: next to this one).
        #[arg(long)]
        hsm_node: Option<PathBuf>,
        /// The hsm binary (default: next to this one).
        #[arg(long)]
        hsm: Option<PathBuf>,
    },
    /// Runs every checker on the history in DIR; exit 0 only when valid.
    Check {
        /// The run's output directory.
        dir: PathBuf,
    },
}

fn check_dir(dir: &std::path::Path) -> Result<bool> {
    let path = dir.join("history.jsonl");
    let file =
        std::fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let history = history::read_jsonl(std::io::BufReader::new(file))
        .with_context(|| format!("cannot read {}", path.display()))?;
    let nodes_path = dir.join("nodes.json");
    let nodes: Vec<NodeFinal> = if nodes_path.exists() {
        let text = std::fs::read_to_string(&nodes_path)
            .with_context(|| format!("cannot read {}", nodes_path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("cannot parse {}", nodes_path.display()))?
    } else {
        Vec::new()
    };
    let anomalies = check::all(&history, &nodes);
    let ok = history.iter().filter(|e| e.outcome.is_ok()).count();
    println!(
        "{} operations ({ok} acknowledged), {} nodes reported, {} anomalies",
        history.len(),
        nodes.len(),
        anomalies.len()
    );
    for a in &anomalies {
        println!("{}: {} (ops {:?})", a.checker, a.what, a.ops);
    }
    let valid = anomalies.is_empty();
    println!("verdict: {}", if valid { "valid" } else { "invalid" });
    // The picture is a help, not part of the verdict.
    match hsm_chaos::timeline::write(dir) {
        Ok(path) => println!("timeline: {}", path.display()),
        Err(e) => eprintln!("cannot draw the timeline: {e:#}"),
    }
    Ok(valid)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("not a duration: {s:?} (e.g. 90s, 30m, 2h)"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("not a duration: {s:?} (e.g. 90s, 30m, 2h)")),
    }
}

fn parse_faults(s: &str) -> Result<Vec<FaultKind>> {
    match s {
        "all" => Ok(FaultKind::ALL.to_vec()),
        "none" | "" => Ok(Vec::new()),
        _ => s
            .split(',')
            .map(|k| k.trim().parse::<FaultKind>().map_err(anyhow::Error::msg))
            .collect(),
    }
}

/// A binary next to this one.
fn sibling(name: &str) -> Result<PathBuf> {
    let me = std::env::current_exe().context("cannot find this executable")?;
    let path = me.with_file_name(name);
    if !path.exists() {
        anyhow::bail!(
            "{} not found; build it (cargo build -p hsm-node) or name it",
            path.display()
        );
    }
    Ok(path)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(command: Command) -> Result<bool> {
    match command {
        Command::Check { dir } => check_dir(&dir),
        Command::Deploy {
            nodes,
            zones,
            out,
            hsm_node,
            hsm,
        } => {
            let opts = hsm_chaos::deploy::DeployOptions {
                nodes,
                zones,
                out: out.clone(),
                hsm_node: match hsm_node {
                    Some(p) => p,
                    None => sibling("hsm-node")?,
                },
                hsm: match hsm {
                    Some(p) => p,
                    None => sibling("hsm")?,
                },
            };
            let report = hsm_chaos::deploy::deploy(&opts)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            println!("deployment: {}", out.display());
            Ok(true)
        }
        Command::Run {
            seed,
            duration,
            nodes,
            zones,
            clients,
            faults,
            out,
            hsm_node,
        } => {
            let opts = RunOptions {
                seed,
                duration,
                nodes,
                zones,
                clients,
                faults: parse_faults(&faults)?,
                out: out.clone(),
                hsm_node: match hsm_node {
                    Some(p) => p,
                    None => sibling("hsm-node")?,
                },
                hsm_chaos: std::env::current_exe().context("cannot find this executable")?,
            };
            let summary = runtime()?.block_on(hsm_chaos::run::run(&opts))?;
            println!(
                "seed {seed}: {} operations {:?}, faults {:?}, recovery {:?} ms",
                summary.operations.values().sum::<u64>(),
                summary.operations,
                summary.faults,
                summary.recovery_ms
            );
            for a in &summary.anomalies {
                println!("{}: {} (ops {:?})", a.checker, a.what, a.ops);
            }
            println!(
                "verdict: {} (details in {})",
                if summary.valid { "valid" } else { "invalid" },
                out.display()
            );
            Ok(summary.valid)
        }
        Command::Client {
            config,
            process,
            seed,
            duration_s,
            stop_file,
            epoch_unix_ms,
            node,
            out,
        } => {
            let password = std::env::var("HSM_CHAOS_OFFICER_PASSWORD")
                .context("HSM_CHAOS_OFFICER_PASSWORD is not set")?;
            let workload = hsm_chaos::workload::Workload {
                client_config: config,
                pinned_node: node,
                process,
                seed,
                duration: Duration::from_secs(duration_s),
                stop_file,
                epoch_unix_ms,
                officer: ("admin".into(), password),
                op_deadline: Duration::from_secs(5),
            };
            let mut file = std::io::BufWriter::new(
                std::fs::File::create(&out)
                    .with_context(|| format!("cannot create {}", out.display()))?,
            );
            let stats = runtime()?.block_on(hsm_chaos::workload::run(&workload, &mut file))?;
            println!(
                "client {process}: {} ok, {} failed, {} unknown",
                stats.ok, stats.failed, stats.unknown
            );
            Ok(true)
        }
        Command::Setup { dir, members } => {
            let password = std::env::var("HSM_CHAOS_ADMIN_PASSWORD")
                .context("HSM_CHAOS_ADMIN_PASSWORD is not set")?;
            runtime()?.block_on(hsm_chaos::run::setup(&dir, &members, &password))?;
            Ok(true)
        }
        Command::Probe { config, probe } => {
            let answer = runtime()?.block_on(hsm_chaos::run::probe::answer(&config, &probe))?;
            print!("{answer}");
            Ok(true)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = run(cli.command);
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
