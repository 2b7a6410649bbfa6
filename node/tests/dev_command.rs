//! The README's first command: `hsm-node dev` starts a three-node cluster
//! that serves until Ctrl-C, and starts the same cluster again next time.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use hsm_client::{Client, ClientOptions, KeyAttributes, KeySpec, Role, Username};
use hsm_proto::mechanism::SignMechanism;

fn user(n: &str) -> Username {
    Username::new(n).expect("name")
}

/// Runs `hsm-node dev` until it prints that it serves; returns the child
/// and the admin password it printed (if it created the cluster).
fn run_dev(dir: &std::path::Path, base_port: u16) -> (std::process::Child, Option<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hsm-node"))
        .args(["dev", "--base-port", &base_port.to_string(), "--dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hsm-node dev");
    let stdout = child.stdout.take().expect("stdout");
    let mut password = None;
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next() {
        let line = line.expect("line");
        if let Some(p) = line.strip_prefix("admin password (one-time, until you activate): ") {
            password = Some(p.trim().to_owned());
        }
        if line.starts_with("Press Ctrl-C") {
            // Keep reading what it prints later, as a terminal would.
            std::thread::spawn(move || lines.for_each(drop));
            return (child, password);
        }
    }
    let _ = child.kill();
    let status = child.wait();
    panic!("hsm-node dev exited before serving: {status:?}");
}

fn interrupt(child: &mut std::process::Child) {
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill -INT");
    let status = child.wait().expect("wait");
    assert!(status.success(), "hsm-node dev exited with {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_serves_a_three_node_cluster_until_interrupted_and_restarts_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = 21_000 + (std::process::id() % 20_000) as u16;
    let (mut child, password) = run_dev(dir.path(), base);
    let password = password.expect("a fresh cluster prints the admin password");
    assert_eq!(password.len(), 24, "a random one-time password");

    let config = dir.path().join("client.toml");
    let admin = Client::connect_file(&config).await.expect("connect");
    // The members join within moments of starting.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let info = admin.cluster_info().await.expect("info");
        if info.members.len() == 3 && info.members.iter().all(|m| m.voter) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{info:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    admin
        .login(user("admin"), password.as_str())
        .await
        .expect("login");
    admin
        .change_own_password(password.as_str(), "admin-password-1")
        .await
        .expect("activate");
    admin
        .login(user("admin"), "admin-password-1")
        .await
        .expect("login");
    admin
        .create_user(user("app"), Role::Cu, "app-password-1")
        .await
        .expect("user");
    let app = Client::connect_file(&config).await.expect("connect");
    app.login(user("app"), "app-password-1")
        .await
        .expect("login");
    let key = app
        .generate_key(
            KeySpec::EcP256,
            KeyAttributes {
                sign: true,
                verify: true,
                ..KeyAttributes::default()
            },
            false,
        )
        .await
        .expect("key");
    interrupt(&mut child);

    // Started again, it serves the same cluster and keys.
    let (mut child, password) = run_dev(dir.path(), base);
    assert!(password.is_none(), "an existing cluster prints no password");
    let app = Client::connect(
        hsm_client::load_config(&config).expect("config"),
        ClientOptions::default().deadline(Duration::from_secs(20)),
    )
    .await
    .expect("connect");
    app.login(user("app"), "app-password-1")
        .await
        .expect("login");
    let sig = app
        .sign(key.id, SignMechanism::EcdsaSha256, b"again".to_vec())
        .await
        .expect("sign after restart");
    assert!(app
        .verify(key.id, SignMechanism::EcdsaSha256, b"again".to_vec(), sig)
        .await
        .expect("verify"));
    interrupt(&mut child);
}

/// The founding members `init` sets up start with empty replicas; each
/// must already know the cluster's members (the roster the first event
/// recorded), so even its first Raft message is checked against pinned
/// keys.
#[test]
fn founding_members_know_the_cluster_s_members_before_their_first_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Away from the range the other test of this file uses.
    let base = 42_000 + (std::process::id() % 20_000) as u16;
    let out = Command::new(env!("CARGO_BIN_EXE_hsm-node"))
        .args(["dev", "--setup-only", "--nodes", "3", "--base-port"])
        .arg(base.to_string())
        .arg("--dir")
        .arg(dir.path())
        .env("HSM_ADMIN_PASSWORD", "founders-admin-password")
        .output()
        .expect("run hsm-node dev --setup-only");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for i in 2..=3 {
        let config = hsm_node::config::NodeConfig::load(dir.path().join(format!("node{i}.toml")))
            .expect("config");
        let storage =
            hsm_raft_store::StorageKey::load_file(&config.storage_key_file()).expect("storage key");
        let (_, sm) = hsm_raft_store::open(&config.store_dir(), &storage).expect("store");
        let (own, members) = sm.read(|a| {
            (
                a.state.cluster().is_some(),
                a.trusted().nodes().map(|n| n.id.0).collect::<Vec<_>>(),
            )
        });
        assert!(!own, "node {i} has no entries yet");
        assert_eq!(members, [1, 2, 3], "node {i} trusts its roster's members");
    }
}
