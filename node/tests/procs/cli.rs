//! The `hsm` command line run as a shell user would, for process tests.
//!
//! The `hsm` binary belongs to another package (`hsm-cli`): it is taken
//! from beside `hsm-node`, built first with cargo when it is not there.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

/// The `hsm` binary beside `hsm-node`, built (or brought up to date) once
/// per test process: `cargo test -p hsm-node` alone does not build another
/// package's binaries, and a stale `hsm` would test old code.
pub fn hsm_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let node = Path::new(env!("CARGO_BIN_EXE_hsm-node"));
        let bin = node.with_file_name(format!("hsm{}", std::env::consts::EXE_SUFFIX));
        let profile_dir = node.parent().expect("binary directory");
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            // `--workspace` resolves features as the workspace build does,
            // so nothing is recompiled for this build alone.
            .args(["build", "--quiet", "--workspace", "--bin", "hsm"])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        // CARGO_TARGET_DIR, when set, is inherited; otherwise build into
        // the target directory this test binary came from.
        if std::env::var_os("CARGO_TARGET_DIR").is_none() {
            if let Some(target) = profile_dir.parent() {
                cargo.arg("--target-dir").arg(target);
            }
        }
        let built = cargo.status().is_ok_and(|s| s.success());
        match (built, bin.exists()) {
            (true, true) => {}
            (false, true) => eprintln!(
                "warning: cargo build --bin hsm failed; testing the existing {}",
                bin.display()
            ),
            (_, false) => panic!("no {} and cargo build --bin hsm failed", bin.display()),
        }
        bin
    })
}

/// What one `hsm` invocation did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "output is not JSON ({e}):\n{}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    /// The `data` of a success.
    pub fn ok(&self) -> Value {
        let doc = self.json();
        assert_eq!(
            (self.code, doc["error_code"].as_i64()),
            (0, Some(0)),
            "expected success:\n{}\n{}",
            self.stdout,
            self.stderr
        );
        doc["data"].clone()
    }

    /// The `error` of a failure with exit code `code` and kind `kind`.
    pub fn fails(&self, code: i32, kind: &str) -> Value {
        let doc = self.json();
        assert_eq!(
            (
                self.code,
                doc["error_code"].as_i64(),
                doc["error"]["kind"].as_str()
            ),
            (code, Some(i64::from(code)), Some(kind)),
            "expected a {kind} failure with exit code {code}:\n{}\n{}",
            self.stdout,
            self.stderr
        );
        let message = doc["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !message.is_empty(),
            "error without message: {}",
            self.stdout
        );
        doc["error"].clone()
    }
}

pub fn message(error: &Value) -> &str {
    error["message"].as_str().unwrap_or_default()
}

/// `hsm` with a client config and a working directory, as a shell user
/// with `HSM_CLUSTER` exported.
pub struct Hsm {
    pub config: PathBuf,
    pub dir: PathBuf,
}

impl Hsm {
    pub fn run(&self, login: Option<(&str, &str)>, args: &[&str], env: &[(&str, &str)]) -> Run {
        self.run_by(hsm_bin(), login, args, env)
    }

    /// [`Hsm::run`] with the `hsm` at `bin` (an earlier build's).
    pub fn run_by(
        &self,
        bin: &Path,
        login: Option<(&str, &str)>,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Run {
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .current_dir(&self.dir)
            .env("HSM_CLUSTER", &self.config)
            .env_remove("HSM_USER")
            .env_remove("HSM_PASSWORD")
            .env_remove("HSM_OUTPUT")
            .env_remove("HSM_TIMEOUT_SECS")
            .env_remove("HSM_MFA_KEY")
            .envs(env.iter().copied());
        if let Some((user, password)) = login {
            cmd.env("HSM_USER", user).env("HSM_PASSWORD", password);
        }
        let out = cmd.output().expect("run hsm");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}
