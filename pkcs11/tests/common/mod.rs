//! A real cluster for the module's tests: three `hsm-node` processes on
//! loopback (made as `hsm-node dev --setup-only` makes them), activated,
//! with one crypto user, set up with the `hsm` command line; and the
//! programs that load the module, run as a user runs them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const NODES: u64 = 3;
const ADMIN_INITIAL: &str = "initial-admin-pw";
const ADMIN_PASSWORD: &str = "officer-password-1";
/// The crypto user every test logs in as.
pub const USER: &str = "app";
pub const PASSWORD: &str = "app-password-1";
/// `C_Login`'s PIN for [`USER`].
pub const PIN: &str = "app:app-password-1";

/// A file cargo built next to this test's executable (`target/<profile>`).
pub fn built(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join(name))
        .expect("target directory");
    assert!(
        path.is_file(),
        "{} is missing: build the workspace first (`cargo build --workspace`; \
         `cargo test --workspace` builds it too)",
        path.display()
    );
    path
}

/// The module under test: the one cargo built for this test run, beside
/// the test executable in `target/<profile>/deps` (the copy one level up
/// is refreshed only by `cargo build`).
pub fn module() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let path = exe.with_file_name("libhsm_pkcs11.so");
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

/// A program the tests run, which `./x test` installs.
pub fn program(name: &str, package: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/bin", "/sbin"] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("{name} is not installed: `./x test` installs it (Debian package {package})");
}

/// A base port with `n` free loopback ports after it
/// ([`hsm_node::local::free_ports`]: below the ephemeral range, none
/// handed out twice in this process).
fn free_udp_ports(n: u16) -> u16 {
    hsm_node::local::free_ports(n).expect("free ports")
}

/// A free TCP port on 127.0.0.1.
pub fn free_tcp_port() -> u16 {
    hsm_node::local::free_ports(1).expect("a free port")
}

/// Runs `cmd`, asserting it succeeds; its stdout and stderr together.
pub fn run(cmd: &mut Command) -> String {
    let out = output(cmd);
    let text = text(&out);
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// Runs `cmd` with a bound of two minutes.
pub fn output(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} ran past two minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The node processes; killed when dropped, however the test ends.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    procs: Vec<Option<Child>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.procs.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Cluster {
    /// Three nodes, activated, with the crypto user [`USER`].
    pub fn start() -> Cluster {
        let node = built("hsm-node");
        let dir = tempfile::tempdir().expect("tempdir");
        run(Command::new(&node)
            .args(["dev", "--setup-only", "--nodes", &NODES.to_string()])
            .arg("--base-port")
            .arg(free_udp_ports(NODES as u16).to_string())
            .arg("--dir")
            .arg(dir.path())
            .env("HSM_ADMIN_PASSWORD", ADMIN_INITIAL));
        let mut cluster = Cluster {
            dir,
            procs: Vec::new(),
        };
        for i in 1..=NODES {
            let log = std::fs::File::create(cluster.log_file(i)).expect("log file");
            let child = Command::new(&node)
                .arg("start")
                .arg("--config")
                .arg(cluster.dir.path().join(format!("node{i}.toml")))
                .env("HSM_LOG", "info,openraft=warn")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn hsm-node start");
            cluster.procs.push(Some(child));
        }
        // Activation is the first write: retried until a leader takes it.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = output(
                cluster
                    .hsm()
                    .args(["cluster", "activate", "--new-password-env", "NEW_PW"])
                    .env("HSM_USER", "admin")
                    .env("HSM_PASSWORD", ADMIN_INITIAL)
                    .env("NEW_PW", ADMIN_PASSWORD),
            );
            if out.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "cannot activate the cluster:\n{}\n{}",
                text(&out),
                cluster.logs()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        run(cluster
            .hsm()
            .args([
                "user",
                "create",
                "--username",
                USER,
                "--role",
                "crypto-user",
            ])
            .args(["--password-env", "USER_PW"])
            .env("HSM_USER", "admin")
            .env("HSM_PASSWORD", ADMIN_PASSWORD)
            .env("USER_PW", PASSWORD));
        cluster
    }

    /// The cluster's client config file.
    pub fn client_config(&self) -> PathBuf {
        self.dir.path().join("client.toml")
    }

    /// The `hsm` command line, pointed at this cluster.
    pub fn hsm(&self) -> Command {
        let mut cmd = Command::new(built("hsm"));
        cmd.env("HSM_CLUSTER", self.client_config());
        cmd
    }

    /// `program`, with the module's environment (`HSM_CLUSTER`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("HSM_CLUSTER", self.client_config())
            .env_remove("HSM_PKCS11_CONFIG")
            .current_dir(self.dir.path());
        cmd
    }

    /// Kills node `i` (1-based), as a crash.
    pub fn kill(&mut self, i: u64) {
        if let Some(mut child) = self.procs[(i - 1) as usize].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_file(&self, i: u64) -> PathBuf {
        self.dir.path().join(format!("node{i}.log"))
    }

    /// The last lines of every node's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for i in 1..=NODES {
            let text = std::fs::read_to_string(self.log_file(i)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("---- node {i} (last lines)\n"));
            for line in &lines[lines.len().saturating_sub(30)..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// A path in the test's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `pkcs11-tool` with the module, logged in as [`USER`], and `args`.
    pub fn pkcs11_tool(&self, args: &[&str]) -> String {
        run(self
            .command(program("pkcs11-tool", "opensc"))
            .arg("--module")
            .arg(module())
            .args(["--login", "--pin", PIN])
            .args(args))
    }

    /// The public half of the key with PKCS#11 id `id` (hex), as the
    /// token gives it, written as PEM to `out` in the test's directory:
    /// read through the OpenSSL PKCS#11 engine.
    ///
    /// Not with `pkcs11-tool --read-object --type pubkey`: OpenSC 0.23
    /// (Debian 12) frees the parameters of an EC key before it builds the
    /// key from them, so it fails at random with "cannot create EVP_PKEY"
    /// (every time under `MALLOC_PERTURB_=165`, against SoftHSM2 as
    /// against this module), after the module answered correctly.
    pub fn public_key_pem(&self, id: &str, out: &str) {
        let id: String = id
            .as_bytes()
            .chunks(2)
            .map(|pair| format!("%{}", String::from_utf8_lossy(pair)))
            .collect();
        run(self
            .openssl()
            .args([
                "pkey", "-engine", "pkcs11", "-inform", "engine", "-pubin", "-in",
            ])
            // The module shows a user's objects once logged in.
            .arg(format!(
                "pkcs11:id={id};type=public?pin-value={}",
                PIN.replace(':', "%3A")
            ))
            .args(["-pubout", "-out", out]));
    }

    /// An OpenSSL config that loads the module through the PKCS#11 engine
    /// (libengine-pkcs11-openssl), written in the test's directory.
    pub fn openssl_conf(&self) -> PathBuf {
        let engine = ["/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so", "/usr/lib/aarch64-linux-gnu/engines-3/pkcs11.so"]
            .into_iter()
            .find(|p| Path::new(p).is_file())
            .unwrap_or_else(|| {
                panic!("the OpenSSL PKCS#11 engine is not installed: `./x test` installs it (libengine-pkcs11-openssl)")
            });
        let path = self.path("openssl.cnf");
        std::fs::write(
            &path,
            format!(
                "openssl_conf = conf\n[conf]\nengines = engines\n[engines]\npkcs11 = pkcs11\n\
                 [pkcs11]\nengine_id = pkcs11\ndynamic_path = {engine}\nMODULE_PATH = {}\ninit = 0\n\
                 [req]\ndistinguished_name = dn\n[dn]\n",
                module().display()
            ),
        )
        .expect("write openssl.cnf");
        path
    }

    /// `openssl` with the engine's config.
    pub fn openssl(&self) -> Command {
        let mut cmd = self.command("openssl");
        cmd.env("OPENSSL_CONF", self.openssl_conf());
        cmd
    }
}

/// The PKCS#11 URI of a private key by label, with the PIN.
pub fn key_uri(label: &str) -> String {
    format!(
        "pkcs11:object={label};type=private?pin-value={}",
        PIN.replace(':', "%3A")
    )
}
