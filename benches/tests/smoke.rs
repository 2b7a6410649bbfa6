//! A tiny run of `hsm-bench` against a one-node cluster it starts itself,
//! so the load generator, the in-process limit, the OpenSSL and SoftHSM2
//! peers, the reports and the images cannot rot. The figures are not looked at (CI
//! machines are shared and noisy); only that every part produced them.

use std::process::Command;

#[test]
fn a_tiny_run_produces_every_report() {
    let out = tempfile::tempdir().expect("tempdir");
    let run = Command::new(env!("CARGO_BIN_EXE_hsm-bench"))
        .args([
            "run",
            "--nodes",
            "1",
            "--seconds",
            "1",
            "--concurrency",
            "2",
        ])
        .args([
            "--ops",
            "sign-p256,aes-gcm-1k,keygen,login",
            "--peers",
            "openssl,softhsm2",
        ])
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("run hsm-bench");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "hsm-bench failed:\n{stderr}");

    let json = std::fs::read_to_string(out.path().join("results.json")).expect("results.json");
    let report: serde_json::Value = serde_json::from_str(&json).expect("json");
    let rows = report["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 4, "{json}");
    for row in rows {
        let op = row["op"].as_str().unwrap_or("?");
        assert!(
            row["ours"]["ops"].as_u64().unwrap_or(0) > 0,
            "{op}: no calls"
        );
        assert_eq!(row["ours"]["errors"].as_u64(), Some(0), "{op}: {row}");
        if op != "login" {
            assert!(
                row["limit"]["ops"].as_u64().unwrap_or(0) > 0,
                "{op}: no limit"
            );
        }
    }
    let sign = &rows[0];
    assert!(
        sign["peers"]
            .as_array()
            .is_some_and(|p| p.iter().any(|f| f["peer"] == "openssl")),
        "no OpenSSL figure beside sign-p256: {sign}"
    );
    // SoftHSM2 through the project's own python-pkcs11 driver, on a token
    // made for the run (`./x test` installs both).
    assert!(
        sign["peers"]
            .as_array()
            .is_some_and(|p| p.iter().any(|f| f["peer"] == "softhsm2")),
        "no SoftHSM2 figure beside sign-p256: {sign}\n{stderr}"
    );
    let md = std::fs::read_to_string(out.path().join("results.md")).expect("results.md");
    assert!(md.contains("| sign-p256 | 2 |"), "{md}");
    for image in [
        "throughput.svg",
        "throughput.png",
        "latency.svg",
        "latency.png",
    ] {
        let len = std::fs::metadata(out.path().join(image))
            .unwrap_or_else(|e| panic!("{image}: {e}\n{stderr}"))
            .len();
        assert!(len > 1000, "{image} is {len} bytes");
    }
}
