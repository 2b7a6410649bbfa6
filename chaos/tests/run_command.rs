//! `hsm-chaos run` as CI runs it: smoke runs of fixed seeds (nodes in
//! network namespaces of their own, client processes, every fault kind)
//! that must end valid, leave their output, and leave no namespace,
//! process or mounted disk behind.
//! Long runs are `./x chaos` (docs/chaos.md).
//!
//! Without root, `run` must refuse clearly instead.

mod common;

use std::process::Command;

/// Runs `hsm-chaos run` with `args` into a new directory; checks that it
/// ended valid with its files and left nothing behind. Returns the summary
/// (`None` without root, where run must refuse).
fn smoke(args: &[&str]) -> Option<(serde_json::Value, tempfile::TempDir)> {
    let out = tempfile::tempdir().expect("tempdir");
    let dir = out.path().join("run");
    let child = Command::new(env!("CARGO_BIN_EXE_hsm-chaos"))
        .arg("run")
        .args(args)
        .arg("--out")
        .arg(&dir)
        .arg("--hsm-node")
        .arg(common::sibling("hsm-node"))
        .spawn()
        .expect("run hsm-chaos");
    let pid = child.id();
    let result = child.wait_with_output().expect("wait");
    let code = result.status.code();
    if !hsm_chaos::run::net::can_make_namespaces() {
        assert_eq!(code, Some(2), "without root, run must refuse");
        return None;
    }
    let summary = std::fs::read_to_string(dir.join("summary.json")).unwrap_or_default();
    if code != Some(0) {
        // Kept for a look at the logs.
        let kept = out.keep();
        eprintln!("the run's directory is kept in {}", kept.display());
        panic!("the smoke run {args:?} was not valid; summary: {summary}");
    }
    assert_eq!(
        code,
        Some(0),
        "the smoke run {args:?} was not valid; summary: {summary}\nlogs in {}",
        dir.display()
    );
    let summary: serde_json::Value = serde_json::from_str(&summary).expect("summary.json");
    assert_eq!(summary["valid"], true, "{summary}");
    assert!(
        summary["operations"]["ok"].as_u64().unwrap_or(0) > 50,
        "{summary}"
    );
    assert!(summary["recovery_ms"].is_u64(), "{summary}");
    assert!(summary["recovery"]["p95_ms"].is_u64(), "{summary}");
    for file in [
        "history.jsonl",
        "nodes.json",
        "faults.jsonl",
        "backups.jsonl",
        "timeline.svg",
        "logs/node1.log",
    ] {
        assert!(dir.join(file).exists(), "{file} missing");
    }
    // The run's own namespaces are gone, and so are its node processes
    // and the nodes' disks (the data copied back).
    let config = dir.join("cluster");
    common::assert_nothing_left(pid, &config);
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    assert!(
        !mounts.contains(&config.display().to_string()),
        "disks left mounted: {mounts}"
    );
    assert!(
        config.join("node1/raft").is_dir(),
        "node 1's data was not kept"
    );
    Some((summary, out))
}

/// The issue's own command, `hsm-chaos run --seed 1 --duration 60s`, with
/// its defaults (5 nodes in 3 zones, 4 clients, every fault kind): valid,
/// and every kind of fault made. Then a second fixed seed on 3 nodes.
#[test]
fn fixed_seeds_under_every_fault_are_valid_and_clean_up() {
    let Some((summary, _dir)) = smoke(&["--seed", "1", "--duration", "60s"]) else {
        return;
    };
    assert_eq!(summary["nodes"], 5, "{summary}");
    assert!(
        summary["backups"]["restored_keys"].as_u64() > Some(0),
        "no backup taken during the faults was restored: {summary}"
    );
    assert_eq!(summary["zones"], 3, "{summary}");
    let made: Vec<&str> = summary["faults"]
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    for kind in hsm_chaos::run::nemesis::FaultKind::ALL {
        assert!(
            made.contains(&kind.to_string().as_str()),
            "no {kind} fault in seed 1's minute: {summary}"
        );
    }
    smoke(&[
        "--seed",
        "7",
        "--duration",
        "30s",
        "--nodes",
        "3",
        "--clients",
        "2",
    ]);
}
