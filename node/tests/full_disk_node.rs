//! A node whose disk fills up: the write that cannot be stored fails, the
//! node process exits with an error (so a supervisor restarts it) instead
//! of running on with a dead store, and once there is space again it
//! starts with every acknowledged key.
//!
//! Needs to mount a small tmpfs, so it runs as root (as CI does, where it
//! must run); elsewhere it says that it was skipped and why.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hsm_client::{Client, ClientOptions, KeyAttributes, KeyFilter, KeySpec, Role, Username};
use hsm_node::config::NodeConfig;

fn user(n: &str) -> Username {
    Username::new(n).expect("name")
}

fn mount(dir: &Path, size: &str) -> bool {
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success())
}

struct Unmount<'a>(&'a Path);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

fn start(dir: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_hsm-node"))
        .args(["start", "--config", "node.toml"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("node.log")).expect("log"))
        .spawn()
        .expect("start")
}

async fn connect(dir: &Path) -> Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Client::connect(
            hsm_client::load_config(dir.join("cluster.toml")).expect("config"),
            ClientOptions::default().deadline(Duration::from_secs(5)),
        )
        .await
        {
            Ok(c) => return c,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "{e}\n{}",
                    std::fs::read_to_string(dir.join("node.log")).unwrap_or_default()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_node_and_loses_no_acknowledged_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    if !mount(&mnt, "24m") {
        assert!(
            std::env::var_os("CI").is_none(),
            "cannot mount a tmpfs under CI, so the full-disk test cannot run"
        );
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    }
    let _unmount = Unmount(&mnt);
    let mut config = NodeConfig::new(1, mnt.join("data"));
    let port = hsm_node::local::free_ports(1).expect("a free port");
    config.listen = ([127, 0, 0, 1], port).into();
    std::fs::write(
        dir.path().join("node.toml"),
        toml::to_string(&config).expect("toml"),
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_hsm-node"))
        .args(["init", "--config", "node.toml"])
        .current_dir(dir.path())
        .env("HSM_ADMIN_PASSWORD", "first-admin-pw")
        .output()
        .expect("init");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut node = start(dir.path());
    let admin = connect(dir.path()).await;
    admin
        .login(user("admin"), "first-admin-pw")
        .await
        .expect("login");
    admin
        .change_own_password("first-admin-pw", "admin-password-1")
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
    let app = connect(dir.path()).await;
    app.login(user("app"), "app-password-1")
        .await
        .expect("login");

    // Fill the disk, leaving a little room.
    let free = fs_free(&mnt);
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![0u8; free.saturating_sub(64 * 1024) as usize]).expect("fill");

    let mut acknowledged = Vec::new();
    let mut failure = None;
    for i in 0..5000 {
        let attributes = KeyAttributes {
            label: format!("k{i}-{}", "x".repeat(100)),
            ..KeyAttributes::default()
        };
        match app
            .generate_key(KeySpec::Rsa { bits: 2048 }, attributes, false)
            .await
        {
            Ok(k) => acknowledged.push(k.id),
            Err(e) => {
                failure = Some(e.to_string());
                break;
            }
        }
    }
    let failure = failure.expect("the disk filled up");
    assert!(!acknowledged.is_empty(), "some writes fitted first");
    // The process exits with an error rather than running on.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = node.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the node kept running after: {failure}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success());
    let log = std::fs::read_to_string(dir.path().join("node.log")).expect("log");
    assert!(log.contains("No space left on device"), "{log}");

    // Space again: the node starts and has every acknowledged key.
    std::fs::remove_file(&filler).expect("free space");
    let mut node = start(dir.path());
    let app = connect(dir.path()).await;
    app.login(user("app"), "app-password-1")
        .await
        .expect("login");
    let keys: std::collections::BTreeSet<_> = app
        .list_keys(KeyFilter::default())
        .await
        .expect("list")
        .into_iter()
        .map(|k| k.id)
        .collect();
    let missing: Vec<_> = acknowledged.iter().filter(|k| !keys.contains(k)).collect();
    assert!(missing.is_empty(), "lost acknowledged keys: {missing:?}");
    let _ = node.kill();
    let _ = node.wait();
}

fn fs_free(path: &Path) -> u64 {
    let out = Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(path)
        .output()
        .expect("df");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df output")
}
