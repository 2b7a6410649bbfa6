//! `hsm-chaos check DIR`: runs every checker on a recorded history
//! (`DIR/history.jsonl`, and `DIR/nodes.json` when present) and exits 0 only
//! when the verdict is valid.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use hsm_chaos::check::{self, NodeFinal};
use hsm_chaos::history;

#[derive(Parser)]
#[command(name = "hsm-chaos", about = "Checks a chaos run's recorded history")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    Ok(valid)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { dir } => check_dir(&dir),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
