//! Strangers lock out the only crypto officer (issue 13): `admin` is a
//! public name, and six wrong passwords from anyone, before or after
//! activation, lock it. With no other officer, only the operator of a
//! member's host can unlock it: `hsm-node unlock-user`, through the node's
//! operator socket, which nobody else on the host may use. Real `hsm-node`
//! processes on loopback.

#![allow(clippy::unwrap_used)]

mod procs;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hsm_client::Client;
use hsm_proto::client::ErrorKind;
use procs::{user, Cluster, ADMIN_PASSWORD};

const ADMIN_PW: &str = "admin-password-1";

/// Wrong passwords for `admin` from a client nobody logged in, until the
/// cluster says it is locked; then the right one, `right`, is refused too.
async fn strangers_lock_admin(stranger: &Client, right: &str) {
    let mut refused = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        match stranger.login(user("admin"), "a-wrong-guess-1").await {
            Err(e) if e.kind() == Some(ErrorKind::Locked) => break,
            Err(e) if e.kind() == Some(ErrorKind::LoginFailed) => refused += 1,
            // A loaded machine: the attempt may not be recorded in time.
            Err(e) if e.is_transient() && std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            other => panic!("a wrong password for admin: {other:?}"),
        }
        assert!(refused <= 5, "more than five wrong passwords were checked");
    }
    let e = stranger
        .login(user("admin"), right)
        .await
        .expect_err("a locked admin is refused");
    assert_eq!(e.kind(), Some(ErrorKind::Locked), "{e}");
}

fn unlock_command(config: &Path, username: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hsm-node"));
    c.args(["unlock-user", "--config"])
        .arg(config)
        .args(["--username", username]);
    c
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn data_dir(cluster: &Cluster, i: u64) -> PathBuf {
    hsm_node::config::NodeConfig::load(cluster.config_file(i))
        .expect("node config")
        .data_dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_hosts_operator_unlocks_the_only_officer_that_strangers_locked_out() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let admin = cluster.activate(ADMIN_PW).await;
    let stranger = cluster.client().await;
    strangers_lock_admin(&stranger, ADMIN_PW).await;
    // No officer is left to unlock it: its own session is refused too.
    let e = admin
        .unlock_user(user("admin"))
        .await
        .expect_err("a locked officer does nothing");
    assert_eq!(e.kind(), Some(ErrorKind::Locked), "{e}");

    // The operator of a follower's host unlocks it.
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|i| *i != leader).expect("a follower");
    let out = unlock_command(&cluster.config_file(follower), "admin")
        .output()
        .expect("hsm-node unlock-user");
    assert!(out.status.success(), "{}\n{}", text(&out), cluster.logs());
    assert!(text(&out).contains("admin is unlocked"), "{}", text(&out));

    admin
        .login(user("admin"), ADMIN_PW)
        .await
        .expect("admin logs in again");
    let info = admin.list_users().await.expect("list users");
    let me = info.iter().find(|u| u.username == user("admin")).unwrap();
    assert!(!me.locked && me.failed_logins == 0, "{me:?}");
    // The node says who did it (the event names the operator of
    // `follower` as its actor: state/tests/operator.rs).
    assert!(
        cluster.logs().contains("unlocked by this host's operator"),
        "{}",
        cluster.logs()
    );

    // Nothing to unlock: a clear refusal, not a success.
    let out = unlock_command(&cluster.config_file(leader), "admin")
        .output()
        .expect("hsm-node unlock-user");
    assert!(!out.status.success());
    assert!(text(&out).contains("not locked"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_officer_locked_out_before_activation_is_unlocked_and_activates() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let stranger = cluster.client().await;
    strangers_lock_admin(&stranger, ADMIN_PASSWORD).await;
    let out = unlock_command(&cluster.config_file(1), "admin")
        .output()
        .expect("hsm-node unlock-user");
    assert!(out.status.success(), "{}\n{}", text(&out), cluster.logs());
    cluster.activate(ADMIN_PW).await;
}

/// Nobody else on the host may use the operator socket: it is the node
/// user's alone (mode 0600), and even when its mode is opened the node
/// checks who connects. Needs root, to act as another user.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_user_on_the_host_cannot_unlock() {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !root {
        eprintln!("skipped: needs root to act as another user");
        return;
    }
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let stranger = cluster.client().await;
    strangers_lock_admin(&stranger, ADMIN_PASSWORD).await;

    let dir = data_dir(&cluster, 1);
    let socket = dir.join("operator.sock");
    let mode = std::fs::metadata(&socket)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");

    // Let `nobody` reach the socket and read a copy of the config.
    for d in [cluster.path(), dir.as_path()] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    let config = std::env::temp_dir().join(format!("operator-{}.toml", std::process::id()));
    std::fs::copy(cluster.config_file(1), &config).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let as_nobody = || {
        let mut c = unlock_command(&config, "admin");
        c.uid(65534).gid(65534);
        c.output().expect("hsm-node unlock-user as nobody")
    };
    let by_mode = as_nobody();
    assert!(!by_mode.status.success(), "{}", text(&by_mode));
    assert!(
        text(&by_mode).contains("operator socket"),
        "{}",
        text(&by_mode)
    );

    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let by_check = as_nobody();
    let _ = std::fs::remove_file(&config);
    assert!(!by_check.status.success(), "{}", text(&by_check));
    assert!(
        text(&by_check).contains("uid 65534 may not use"),
        "{}",
        text(&by_check)
    );
    let e = stranger
        .login(user("admin"), ADMIN_PASSWORD)
        .await
        .expect_err("admin is still locked");
    assert_eq!(e.kind(), Some(ErrorKind::Locked), "{e}");
}
