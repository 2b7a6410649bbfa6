//! A real S3-compatible server on loopback for tests: s3s-fs from
//! crates.io (installed by `backup/tests/s3_server.sh` on first use), or
//! moto's server when s3s-fs cannot be had. `HSM_TEST_S3_SERVER=s3s-fs|moto`
//! picks one. Shared by `backup/tests/s3.rs` and the node's backup test
//! (included there by path).
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BUCKET: &str = "hsm-backups";
pub const ACCESS_KEY: &str = "AKIDHSMTEST";
pub const SECRET_KEY: &str = "hsm-test-secret-key";

/// A server process, stopped (by its own handle) when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// `s3s-fs` or `moto`.
    pub name: &'static str,
    _data: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn wait_until_listening(child: &mut Child, port: u16, name: &str) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{name} exited at start: {status}"));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("{name} did not listen on {addr} within 30 s"))
}

fn s3s_fs_binary() -> Result<PathBuf, String> {
    // From this crate or another of the workspace that includes this file.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../backup/tests/s3_server.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg("path")
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {script}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{script} path failed ({})", out.status));
    }
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok(PathBuf::from(path))
}

fn start_s3s_fs() -> Result<Server, String> {
    let bin = s3s_fs_binary()?;
    let data = tempfile::tempdir().map_err(|e| e.to_string())?;
    // s3s-fs serves each directory under its root as a bucket.
    std::fs::create_dir(data.path().join(BUCKET)).map_err(|e| e.to_string())?;
    let port = free_port();
    let mut child = Command::new(&bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .arg(data.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    wait_until_listening(&mut child, port, "s3s-fs")?;
    Ok(Server {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
        name: "s3s-fs",
        _data: data,
    })
}

fn start_moto() -> Result<Server, String> {
    let port = free_port();
    let mut child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start moto_server: {e}"))?;
    wait_until_listening(&mut child, port, "moto_server")?;
    // moto takes any credentials and starts empty: create the bucket.
    let status = Command::new("curl")
        .args([
            "-sf",
            "-X",
            "PUT",
            &format!("http://127.0.0.1:{port}/{BUCKET}"),
        ])
        .status()
        .map_err(|e| format!("cannot run curl to create the bucket: {e}"))?;
    if !status.success() {
        return Err(format!("creating the bucket on moto failed: {status}"));
    }
    Ok(Server {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
        name: "moto",
        _data: tempfile::tempdir().map_err(|e| e.to_string())?,
    })
}

/// The server `HSM_TEST_S3_SERVER` names (`s3s-fs` or `moto`), else s3s-fs
/// and moto when s3s-fs cannot be had; `Err` with every reason when none
/// starts.
pub fn start_server() -> Result<Server, String> {
    match std::env::var("HSM_TEST_S3_SERVER").as_deref() {
        Ok("s3s-fs") => start_s3s_fs(),
        Ok("moto") => start_moto(),
        Ok(other) => Err(format!(
            "HSM_TEST_S3_SERVER={other:?}: expected s3s-fs or moto"
        )),
        Err(_) => match start_s3s_fs() {
            Ok(s) => Ok(s),
            Err(s3s) => start_moto().map_err(|moto| format!("s3s-fs: {s3s}; moto: {moto}")),
        },
    }
}

/// A server from [`start_server`]; `None` (said on stderr) only when
/// `HSM_TEST_S3_SKIP` is set and none starts. Panics with every reason
/// otherwise: a test of the S3 path never passes without one.
pub fn server_or_skip() -> Option<Server> {
    match start_server() {
        Ok(s) => {
            eprintln!("S3 server: {} at {}", s.name, s.endpoint);
            Some(s)
        }
        Err(reason) if std::env::var_os("HSM_TEST_S3_SKIP").is_some() => {
            eprintln!("SKIPPED (HSM_TEST_S3_SKIP set): no S3-compatible server: {reason}");
            None
        }
        Err(reason) => panic!(
            "no S3-compatible server could be started on loopback: {reason} \
             (set HSM_TEST_S3_SKIP=1 to skip this test explicitly)"
        ),
    }
}
