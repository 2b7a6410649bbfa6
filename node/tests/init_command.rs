//! `hsm-node init` and `start` as an operator runs them on a first host:
//! with a new self-signed CA, or with the operator's own CA.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use hsm_client::{Client, KeyAttributes, KeySpec, Role, Username};
use hsm_node::config::NodeConfig;
use hsm_node::transport::ClusterCa;
use hsm_proto::mechanism::SignMechanism;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_hsm-node")
}

fn user(n: &str) -> Username {
    Username::new(n).expect("name")
}

fn free_port() -> u16 {
    hsm_node::local::free_ports(1).expect("a free port")
}

fn write_config(dir: &Path) -> std::path::PathBuf {
    let mut config = NodeConfig::new(1, dir.join("data"));
    config.listen = ([127, 0, 0, 1], free_port()).into();
    config.zone = "rack-1".into();
    let path = dir.join("node.toml");
    std::fs::write(&path, toml::to_string(&config).expect("toml")).expect("write");
    path
}

fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .expect("run hsm-node")
}

fn start(dir: &Path) -> Child {
    Command::new(bin())
        .args(["start", "--config", "node.toml"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start")
}

/// Activates the one-node cluster and signs with a new key.
async fn activate_and_sign(dir: &Path, one_time: &str) {
    let config = dir.join("cluster.toml");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let admin = loop {
        match Client::connect_file(&config).await {
            Ok(c) => break c,
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let info = admin.cluster_info().await.expect("info");
    assert_eq!(info.members[0].zone, "rack-1");
    assert!(!info.activated);
    admin.login(user("admin"), one_time).await.expect("login");
    admin
        .change_own_password(one_time, "admin-password-1")
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
            KeySpec::Ed25519,
            KeyAttributes {
                sign: true,
                verify: true,
                ..KeyAttributes::default()
            },
            false,
        )
        .await
        .expect("key");
    let sig = app
        .sign(key.id, SignMechanism::Ed25519, b"m".to_vec())
        .await
        .expect("sign");
    assert!(app
        .verify(key.id, SignMechanism::Ed25519, b"m".to_vec(), sig)
        .await
        .expect("verify"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_with_a_new_ca_prints_a_one_time_password_and_the_node_serves() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path());
    let out = run(dir.path(), &["init", "--config", "node.toml"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let password = stdout
        .lines()
        .find_map(|l| l.split("activation replaces it): ").nth(1))
        .expect("a one-time password is printed")
        .trim()
        .to_owned();
    // The new CA's key is written once, readable by its owner only.
    let mode = std::fs::metadata(dir.path().join("cluster-ca/ca.key"))
        .expect("ca.key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(dir.path().join("cluster.toml").exists());
    // The password is on no disk.
    for entry in walk(dir.path()) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        assert!(
            !bytes
                .windows(password.len())
                .any(|w| w == password.as_bytes()),
            "the one-time password is in {}",
            entry.display()
        );
    }
    // A second init on the same directory is refused and changes nothing.
    let again = run(
        dir.path(),
        &[
            "init",
            "--config",
            "node.toml",
            "--client-config",
            "other.toml",
        ],
        &[],
    );
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("exists already")
            || String::from_utf8_lossy(&again.stderr).contains("holds a node already"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    let mut node = start(dir.path());
    activate_and_sign(dir.path(), &password).await;
    let _ = node.kill();
    let _ = node.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_with_the_operators_ca_issues_the_node_certificate_from_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path());
    let ca = ClusterCa::generate("operator root").expect("ca");
    std::fs::write(dir.path().join("my-ca.pem"), ca.cert_pem()).expect("write");
    std::fs::write(dir.path().join("my-ca.key"), ca.key_pem().as_bytes()).expect("write");
    // A CA key others may read is refused, naming the fix.
    let chmod = |name: &str, mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path().join(name), std::fs::Permissions::from_mode(mode))
            .expect("chmod");
    };
    let init = || {
        run(
            dir.path(),
            &[
                "init",
                "--config",
                "node.toml",
                "--ca-cert",
                "my-ca.pem",
                "--ca-key",
                "my-ca.key",
            ],
            &[("HSM_ADMIN_PASSWORD", "given-admin-pw")],
        )
    };
    chmod("my-ca.key", 0o644);
    let refused = init();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("chmod 600"),
        "a world-readable CA key was used: {stderr}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "a refused init wrote files"
    );
    chmod("my-ca.key", 0o600);
    let out = init();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.path().join("cluster-ca").exists(), "no new CA");
    let installed = std::fs::read_to_string(dir.path().join("data/tls/ca.pem")).expect("ca.pem");
    assert_eq!(installed, ca.cert_pem());
    // A weak password from the environment is refused up front.
    let weak_dir = tempfile::tempdir().expect("tempdir");
    write_config(weak_dir.path());
    let weak = run(
        weak_dir.path(),
        &["init", "--config", "node.toml"],
        &[("HSM_ADMIN_PASSWORD", "short")],
    );
    assert!(!weak.status.success());

    // A node whose TLS key others may read refuses to start.
    chmod("data/tls/node.key", 0o640);
    let refused = run(dir.path(), &["start", "--config", "node.toml"], &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success()
            && stderr.contains("node TLS key")
            && stderr.contains("chmod 600"),
        "a node started with a group-readable TLS key: {stderr}"
    );
    chmod("data/tls/node.key", 0o600);

    let mut node = start(dir.path());
    activate_and_sign(dir.path(), "given-admin-pw").await;
    let _ = node.kill();
    let _ = node.wait();
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
