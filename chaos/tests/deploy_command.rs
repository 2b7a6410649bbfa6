//! `hsm-chaos deploy` as CI runs it: the operator guide's deployment of the
//! largest cluster there is (28 nodes) on hosts of its own in 3 zones,
//! with the real `hsm-node` and `hsm`; zone-aware routing, a zone cut off
//! and the leader killed; then nothing left behind.
//!
//! Without root, `deploy` must refuse clearly instead.

mod common;

use std::process::Command;

use common::sibling;

#[test]
fn twenty_eight_nodes_deployed_by_the_guide_across_three_zones() {
    let out = tempfile::tempdir().expect("tempdir");
    let dir = out.path().join("deploy");
    let child = Command::new(env!("CARGO_BIN_EXE_hsm-chaos"))
        .args(["deploy", "--nodes", "28", "--zones", "3", "--out"])
        .arg(&dir)
        .arg("--hsm-node")
        .arg(sibling("hsm-node"))
        .arg("--hsm")
        .arg(sibling("hsm"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run hsm-chaos");
    let pid = child.id();
    let result = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&result.stderr);
    if !hsm_chaos::run::net::can_make_namespaces() {
        assert_eq!(
            result.status.code(),
            Some(2),
            "without root, deploy must refuse"
        );
        assert!(stderr.contains("needs root"), "{stderr}");
        eprintln!(
            "SKIPPED: the 28-node deployment needs root (network namespaces); CI runs it as root"
        );
        return;
    }
    if !result.status.success() {
        let kept = out.keep();
        panic!(
            "the deployment failed: {stderr}\nits directory is kept in {}",
            kept.display()
        );
    }
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("deploy.json")).expect("deploy.json"),
    )
    .expect("json");
    assert_eq!(report["nodes"], 28, "{report}");
    // Each zone's client was served in its own zone, every signature.
    for (i, zone) in ["zone-a", "zone-b", "zone-c"].iter().enumerate() {
        let routed = &report["routing"][i];
        assert_eq!(routed["client_zone"], *zone, "{report}");
        assert_eq!(routed["by_zone"][zone], 3, "{report}");
    }
    // With zone b cut off, its client was served by the other zones: its
    // nodes' counters, read after healing, made none of the signatures.
    let cut = &report["zone_cut"]["by_zone"];
    assert_eq!(cut["zone-b"], 0, "{report}");
    assert_eq!(
        cut["zone-a"].as_u64().unwrap_or(0) + cut["zone-c"].as_u64().unwrap_or(0),
        3,
        "{report}"
    );
    // The transcript follows the guide's commands.
    let transcript = std::fs::read_to_string(dir.join("transcript.txt")).expect("transcript");
    for step in [
        "hsm-node init --config",
        "hsm cluster activate --new-password-env NEW_PW",
        "hsm-node prepare --config",
        "openssl verify -CAfile",
        "hsm node add --request",
        "--join 10.77.0.10:7400 --join-pin",
        "hsm crypto sign ecdsa",
    ] {
        assert!(transcript.contains(step), "no `{step}` in the transcript");
    }
    // 27 nodes joined, then node 28 replaced on its host by node 29.
    assert_eq!(transcript.matches("hsm node add --request").count(), 28);
    assert!(transcript.contains("hsm node remove --node-id 28"));
    assert_eq!(report["replaced"], serde_json::json!([28, 29]), "{report}");
    // Nothing is left: no namespace of the run, no node process.
    common::assert_nothing_left(pid, &dir);
}
