//! What the harness's command tests share.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A binary built next to `hsm-chaos` (`cargo test --workspace` builds
/// them all).
pub fn sibling(name: &str) -> PathBuf {
    let chaos = PathBuf::from(env!("CARGO_BIN_EXE_hsm-chaos"));
    let path = chaos.with_file_name(name);
    assert!(
        path.exists(),
        "{} not found: `cargo test --workspace` builds it (or cargo build -p hsm-node)",
        path.display()
    );
    path
}

/// Asserts that the harness process `pid` left no namespace of its own and
/// no process whose command line names `dir`.
pub fn assert_nothing_left(pid: u32, dir: &Path) {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip");
    let namespaces: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("hsmc{pid}-")))
        .map(str::to_owned)
        .collect();
    assert!(namespaces.is_empty(), "namespaces left: {namespaces:?}");
    let ps = Command::new("pgrep")
        .args(["-f", &dir.display().to_string()])
        .output()
        .expect("pgrep");
    assert!(
        ps.stdout.is_empty(),
        "processes left: {}",
        String::from_utf8_lossy(&ps.stdout)
    );
}
