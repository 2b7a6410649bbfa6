//! The systemd unit the repository ships (deploy/systemd/hsm-node.service)
//! is one systemd accepts, runs this build's `hsm-node`, and keeps its
//! hardening: `systemd-analyze verify` finds nothing, and
//! `systemd-analyze security` rates its exposure low.

use std::process::Command;

const UNIT: &str = include_str!("../../deploy/systemd/hsm-node.service");

/// The unit with `ExecStart` pointing at this build's binary, written to a
/// temporary directory under its own name.
fn unit_file(dir: &std::path::Path) -> std::path::PathBuf {
    let bin = env!("CARGO_BIN_EXE_hsm-node");
    let text = UNIT.replace("/usr/local/bin/hsm-node", bin);
    assert_ne!(
        text, UNIT,
        "the unit no longer runs /usr/local/bin/hsm-node"
    );
    let path = dir.join("hsm-node.service");
    std::fs::write(&path, text).expect("write unit");
    path
}

fn systemd_analyze(args: &[&str]) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(args)
        .output()
        .expect("systemd-analyze (apt-get install systemd; ./x test installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_shipped_unit_verifies_and_its_exposure_is_low() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = unit_file(dir.path());
    let unit = unit.to_str().expect("utf-8 path");

    let (ok, text) = systemd_analyze(&["verify", unit]);
    assert!(
        ok && text.trim().is_empty(),
        "systemd-analyze verify:\n{text}"
    );

    let (_, text) = systemd_analyze(&["security", "--offline=true", unit]);
    let exposure: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for hsm-node.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    // systemd calls 0 to 2 "OK", up to 5 "MEDIUM", then "EXPOSED".
    assert!(exposure <= 2.0, "exposure {exposure}:\n{text}");

    for setting in [
        "User=hsm",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=\n",
        "LimitCORE=0",
    ] {
        assert!(UNIT.contains(setting), "the unit lost {setting:?}");
    }
}
