//! `hsm-chaos run` as CI runs it: a short smoke run (3 nodes in network
//! namespaces of their own, 2 client processes, every fault kind) that must
//! end valid, leave its output, and leave no namespace or process behind.
//! Long runs are `./x chaos` (docs/chaos.md).
//!
//! Without root, `run` must refuse clearly instead.

use std::path::PathBuf;
use std::process::Command;

fn hsm_node() -> PathBuf {
    let chaos = PathBuf::from(env!("CARGO_BIN_EXE_hsm-chaos"));
    let node = chaos.with_file_name("hsm-node");
    assert!(
        node.exists(),
        "{} not found: `cargo test --workspace` builds it (or cargo build -p hsm-node)",
        node.display()
    );
    node
}

/// Namespaces a run of this process id would own.
fn namespaces_of(pid: u32) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("hsmc{pid}-")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_short_run_under_every_fault_is_valid_and_cleans_up() {
    let out = tempfile::tempdir().expect("tempdir");
    let dir = out.path().join("run");
    let child = Command::new(env!("CARGO_BIN_EXE_hsm-chaos"))
        .args([
            "run",
            "--seed",
            "7",
            "--duration",
            "20s",
            "--nodes",
            "3",
            "--zones",
            "3",
            "--clients",
            "2",
            "--faults",
            "all",
        ])
        .arg("--out")
        .arg(&dir)
        .arg("--hsm-node")
        .arg(hsm_node())
        .spawn()
        .expect("run hsm-chaos");
    let pid = child.id();
    let result = child.wait_with_output().expect("wait");
    let code = result.status.code();
    if !hsm_chaos::run::net::can_make_namespaces() {
        assert_eq!(code, Some(2), "without root, run must refuse");
        return;
    }
    let summary = std::fs::read_to_string(dir.join("summary.json")).unwrap_or_default();
    assert_eq!(
        code,
        Some(0),
        "the smoke run was not valid; summary: {summary}\nlogs in {}",
        dir.display()
    );
    let summary: serde_json::Value = serde_json::from_str(&summary).expect("summary.json");
    assert_eq!(summary["valid"], true, "{summary}");
    assert!(
        summary["operations"]["ok"].as_u64().unwrap_or(0) > 50,
        "{summary}"
    );
    assert!(summary["recovery_ms"].is_u64(), "{summary}");
    let faults: u64 = summary["faults"]
        .as_object()
        .map(|m| m.values().filter_map(serde_json::Value::as_u64).sum())
        .unwrap_or(0);
    assert!(faults >= 3, "too few faults in 20 s: {summary}");
    for file in [
        "history.jsonl",
        "nodes.json",
        "faults.jsonl",
        "logs/node1.log",
    ] {
        assert!(dir.join(file).exists(), "{file} missing");
    }
    // The run's own namespaces are gone, and so are its node processes.
    assert!(namespaces_of(pid).is_empty(), "{:?}", namespaces_of(pid));
    let config = dir.join("cluster");
    let ps = Command::new("pgrep")
        .args(["-f", &config.display().to_string()])
        .output()
        .expect("pgrep");
    assert!(
        ps.stdout.is_empty(),
        "node processes left: {}",
        String::from_utf8_lossy(&ps.stdout)
    );
}
