//! Peer systems measured in the same run, each set up and driven by the
//! project's own code: OpenSSL `speed` (the CPU's crypto ceiling with a
//! mature C library), SoftHSM2 through PKCS#11 (a single-node software
//! HSM, no network; the project's python-pkcs11 driver on a token made
//! for the run) and a 3-member etcd cluster on loopback (a replicated
//! write; `benches/etcd-put` drives it). A peer that is missing is
//! reported as skipped with the reason; `./x bench-setup` installs them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::ops::Op;

/// A peer's figure for one operation at one parallelism.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerFigure {
    /// The peer.
    pub peer: String,
    /// What it ran, exactly.
    pub what: String,
    /// Operations per second.
    pub ops_per_s: f64,
    /// Median latency, ms, when the peer reports it.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency, ms, when the peer reports it.
    pub p99_ms: Option<f64>,
    /// CPU time the peer's servers spent per operation, µs (etcd: its
    /// three members), beside our nodes' figure.
    #[serde(default)]
    pub server_cpu_us: Option<f64>,
}

/// What the peers gave, per (operation, parallelism), and which were
/// skipped and why.
#[derive(Debug, Default, Serialize)]
pub struct PeerResults {
    /// Figures by operation and parallelism (processes, threads or
    /// clients).
    pub figures: BTreeMap<(Op, usize), Vec<PeerFigure>>,
    /// Peers that did not run, with the reason.
    pub skipped: Vec<(String, String)>,
}

impl PeerResults {
    fn add(&mut self, op: Op, parallel: usize, f: PeerFigure) {
        self.figures.entry((op, parallel)).or_default().push(f);
    }

    fn skip(&mut self, peer: &str, reason: impl Into<String>) {
        self.skipped.push((peer.to_owned(), reason.into()));
    }

    /// The figure of `peer` for `op` at `parallel`, if measured.
    pub fn get(&self, op: Op, parallel: usize, peer: &str) -> Option<&PeerFigure> {
        self.figures
            .get(&(op, parallel))?
            .iter()
            .find(|f| f.peer == peer)
    }
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The two per-second figures at the end of an `openssl speed` line that
/// starts with `prefix` (sign/s and verify/s).
fn speed_pair(text: &str, contains: &str) -> Option<(f64, f64)> {
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains(contains) && l.contains('s'))?;
    let nums: Vec<f64> = line
        .split_whitespace()
        .filter_map(|w| w.parse::<f64>().ok())
        .collect();
    match nums.as_slice() {
        [.., a, b] => Some((*a, *b)),
        _ => None,
    }
}

/// The ops/s of an `openssl speed -evp|-hmac ... -bytes <block>` table
/// line (one column, in 1000s of bytes per second).
fn speed_single(text: &str, row: &str, block: f64) -> Option<f64> {
    let line = text.lines().rev().find(|l| l.starts_with(row))?;
    let cell = line.split_whitespace().last()?;
    let kbytes: f64 = cell.trim_end_matches('k').parse().ok()?;
    Some(kbytes * 1000.0 / block)
}

/// OpenSSL `speed` with `parallel` processes (`-multi`) for the
/// operations it has.
pub fn openssl(results: &mut PeerResults, parallel: usize, seconds: u64, ops: &[Op]) {
    if Command::new("openssl").arg("version").output().is_err() {
        results.skip("openssl", "the openssl command is not installed");
        return;
    }
    let multi: Vec<String> = if parallel > 1 {
        vec!["-multi".into(), parallel.to_string()]
    } else {
        Vec::new()
    };
    let secs = seconds.max(1).to_string();
    let what = |t: &str| {
        let mut words = vec!["openssl speed -seconds".to_owned(), secs.clone()];
        words.extend(multi.iter().cloned());
        words.push(t.to_owned());
        words.join(" ")
    };
    let wants = |op: Op| ops.contains(&op);
    if [
        Op::SignP256,
        Op::VerifyP256,
        Op::SignEd25519,
        Op::SignRsa2048,
    ]
    .into_iter()
    .any(wants)
    {
        match run(Command::new("openssl")
            .args(["speed", "-seconds", &secs])
            .args(&multi)
            .args(["rsa2048", "ecdsap256", "ed25519"]))
        {
            Ok(text) => {
                let mut put = |op: Op, v: Option<f64>, t: &str| {
                    if let (true, Some(v)) = (wants(op), v) {
                        results.add(
                            op,
                            parallel,
                            PeerFigure {
                                peer: "openssl".into(),
                                what: what(t),
                                ops_per_s: v,
                                p50_ms: None,
                                p99_ms: None,
                                server_cpu_us: None,
                            },
                        );
                    }
                };
                let rsa = speed_pair(&text, "rsa 2048 bits");
                let ec = speed_pair(&text, "ecdsa (nistp256)");
                let ed = speed_pair(&text, "EdDSA (Ed25519)");
                put(Op::SignRsa2048, rsa.map(|p| p.0), "rsa2048");
                put(Op::SignP256, ec.map(|p| p.0), "ecdsap256");
                put(Op::VerifyP256, ec.map(|p| p.1), "ecdsap256");
                put(Op::SignEd25519, ed.map(|p| p.0), "ed25519");
            }
            Err(e) => results.skip("openssl", format!("{e:#}")),
        }
    }
    let tables = [
        (
            Op::AesGcm1k,
            vec!["-evp", "aes-256-gcm", "-bytes", "1024"],
            "AES-256-GCM",
            1024.0,
        ),
        (
            Op::HmacSha256,
            vec!["-hmac", "sha256", "-bytes", "64"],
            "hmac(sha256)",
            64.0,
        ),
    ];
    for (op, args, row, block) in tables {
        if !wants(op) {
            continue;
        }
        match run(Command::new("openssl")
            .args(["speed", "-seconds", &secs])
            .args(&multi)
            .args(&args))
        {
            Ok(text) => match speed_single(&text, row, block) {
                Some(v) => results.add(
                    op,
                    parallel,
                    PeerFigure {
                        peer: "openssl".into(),
                        what: what(&args.join(" ")),
                        ops_per_s: v,
                        p50_ms: None,
                        p99_ms: None,
                        server_cpu_us: None,
                    },
                ),
                None if text.contains("hmac(md5)") => results.skip(
                    "openssl",
                    format!(
                        "openssl speed -multi {parallel} -hmac sha256 measures hmac(md5) instead \
                         (an OpenSSL 3.0 bug), so there is no HMAC-SHA-256 figure at {parallel} processes"
                    ),
                ),
                None => results.skip("openssl", format!("no {row} line in openssl speed output")),
            },
            Err(e) => results.skip("openssl", format!("{e:#}")),
        }
    }
}

/// The SoftHSM2 benchmark's name for an operation.
fn softhsm_op(op: Op) -> Option<&'static str> {
    Some(match op {
        Op::SignRsa2048 => "rsa-sign",
        Op::SignP256 => "ec-sign",
        Op::SignEd25519 => "ed-sign",
        Op::AesGcm1k => "aes-gcm-1k",
        Op::Keygen => "keygen-aes",
        Op::Random32 => "random-16",
        _ => return None,
    })
}

/// python-pkcs11's driver of the project's PKCS#11 tests and comparison
/// (`pkcs11/tests/python/drive.py`): the same program for SoftHSM2 here
/// and for the module in `./x bench-pkcs11`.
fn drive_py() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pkcs11/tests/python/drive.py")
}

/// The Python with python-pkcs11 that `./x` makes in the target directory
/// (`<target>/pkcs11-python`), found from this executable
/// (`<target>/<profile>/hsm-bench`).
fn pkcs11_python() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let python = exe.parent()?.parent()?.join("pkcs11-python/bin/python3");
    python.is_file().then_some(python)
}

/// A fresh SoftHSM2 token in `dir` with the driver's keys; the
/// environment the driver needs to use it.
fn softhsm_token(python: &Path, dir: &Path) -> Result<Vec<(String, String)>> {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).context("token directory")?;
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n\
             slots.removable = false\n",
            tokens.display()
        ),
    )
    .context("softhsm2.conf")?;
    let env = vec![
        ("SOFTHSM2_CONF".to_owned(), conf.display().to_string()),
        ("PKCS11_MODULE".to_owned(), SOFTHSM_MODULE.to_owned()),
        ("PKCS11_PIN".to_owned(), "1234".to_owned()),
        ("PKCS11_TOKEN".to_owned(), "peer".to_owned()),
        ("PKCS11_GCM_IV".to_owned(), "counter".to_owned()),
    ];
    run(Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", "peer"])
        .args(["--pin", "1234", "--so-pin", "5678"])
        .envs(env.iter().cloned()))?;
    run(Command::new(python)
        .arg(drive_py())
        .arg("setup")
        .envs(env.iter().cloned()))?;
    Ok(env)
}

const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// SoftHSM2 through PKCS#11, `parallel` processes, each its own
/// `C_Initialize` and session, on a fresh token: the project's own driver
/// (`pkcs11/tests/python/drive.py bench`).
pub fn softhsm2(results: &mut PeerResults, parallel: usize, seconds: u64, ops: &[Op]) {
    if !Path::new(SOFTHSM_MODULE).exists() {
        results.skip(
            "softhsm2",
            "SoftHSM2 is not installed (./x test and ./x bench-setup install it: apt-get install softhsm2)",
        );
        return;
    }
    let Some(python) = pkcs11_python() else {
        results.skip(
            "softhsm2",
            "python-pkcs11 is not installed (./x test and ./x bench-setup make <target>/pkcs11-python)",
        );
        return;
    };
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            results.skip("softhsm2", format!("no temporary directory: {e}"));
            return;
        }
    };
    let env = match softhsm_token(&python, dir.path()) {
        Ok(env) => env,
        Err(e) => {
            results.skip("softhsm2", format!("cannot set up a token: {e:#}"));
            return;
        }
    };
    for op in ops {
        let Some(name) = softhsm_op(*op) else {
            continue;
        };
        let out = run(Command::new(&python)
            .arg(drive_py())
            .args(["bench", "--op", name, "--procs", &parallel.to_string()])
            .args(["--seconds", &seconds.max(1).to_string()])
            .envs(env.iter().cloned()));
        let parsed = out.and_then(|text| {
            let line = text.lines().last().unwrap_or("");
            let v: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("unexpected output {line:?}"))?;
            v["per_second"].as_f64().context("no per_second")
        });
        match parsed {
            Ok(v) => results.add(
                *op,
                parallel,
                PeerFigure {
                    peer: "softhsm2".into(),
                    what: format!("SoftHSM2 PKCS#11 {name}, {parallel} processes"),
                    ops_per_s: v,
                    p50_ms: None,
                    p99_ms: None,
                    server_cpu_us: None,
                },
            ),
            Err(e) => results.skip("softhsm2", format!("{name}: {e:#}")),
        }
    }
}

/// The etcd put driver (`benches/etcd-put`) that `./x bench-setup` builds
/// in the target directory (`<target>/etcd-put/release`), found from this
/// executable (`<target>/<profile>/hsm-bench`).
fn etcd_put() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe
        .parent()?
        .parent()?
        .join("etcd-put/release/hsm-etcd-put");
    bin.is_file().then_some(bin)
}

/// A 3-member etcd cluster on loopback, in a temporary directory of its
/// own, stopped (its members killed and waited for) when dropped.
struct Etcd {
    members: Vec<std::process::Child>,
    endpoints: Vec<String>,
    _dir: tempfile::TempDir,
}

/// `n` TCP ports on 127.0.0.1 that were free a moment ago.
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("no free port")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

impl Etcd {
    /// Process ids of the members.
    fn pids(&self) -> Vec<u32> {
        self.members.iter().map(std::process::Child::id).collect()
    }

    fn start() -> Result<Etcd> {
        let dir = tempfile::tempdir().context("temporary directory")?;
        let ports = free_ports(6)?;
        let url = |port: u16| format!("http://127.0.0.1:{port}");
        let initial: Vec<String> = (0..3)
            .map(|i| format!("m{i}={}", url(ports[3 + i])))
            .collect();
        let mut etcd = Etcd {
            members: Vec::new(),
            endpoints: (0..3).map(|i| url(ports[i])).collect(),
            _dir: dir,
        };
        for i in 0..3 {
            let base = etcd._dir.path();
            let member = Command::new("etcd")
                .args(["--name", &format!("m{i}")])
                .arg("--data-dir")
                .arg(base.join(format!("m{i}")))
                .args(["--listen-client-urls", &url(ports[i])])
                .args(["--advertise-client-urls", &url(ports[i])])
                .args(["--listen-peer-urls", &url(ports[3 + i])])
                .args(["--initial-advertise-peer-urls", &url(ports[3 + i])])
                .args(["--initial-cluster", &initial.join(",")])
                .args(["--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", "hsm-bench"])
                .args(["--logger", "zap", "--log-outputs"])
                .arg(base.join(format!("m{i}.log")))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .context("cannot run etcd")?;
            etcd.members.push(member);
        }
        // Bounded: 60 tries, half a second apart.
        for _ in 0..60 {
            if etcd.etcdctl(&["endpoint", "health"]).is_ok() {
                return Ok(etcd);
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        bail!("the 3 members were not healthy within 30 s")
    }

    fn etcdctl(&self, args: &[&str]) -> Result<String> {
        run(Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.endpoints.join(",")])
            .args(args))
    }

    /// The client URL of the member that leads.
    fn leader(&self) -> Result<String> {
        let text = self.etcdctl(&["endpoint", "status", "-w", "json"])?;
        let status: serde_json::Value =
            serde_json::from_str(&text).context("etcdctl endpoint status")?;
        status
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| {
                let s = &e["Status"];
                s["leader"].as_u64().is_some() && s["leader"] == s["header"]["member_id"]
            })
            .and_then(|e| e["Endpoint"].as_str())
            .map(str::to_owned)
            .context("no member says it leads")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for m in &mut self.members {
            let _ = m.kill();
            let _ = m.wait();
        }
    }
}

/// A 3-member etcd cluster on loopback; puts of 256-byte values from
/// `clients` concurrent clients to its leader over one gRPC connection
/// (the peer of a replicated write).
pub fn etcd(results: &mut PeerResults, clients: &[usize], seconds: u64) {
    if Command::new("etcd").arg("--version").output().is_err() {
        results.skip(
            "etcd",
            "etcd is not installed (./x bench-setup installs it: apt-get install etcd-server etcd-client)",
        );
        return;
    }
    let Some(driver) = etcd_put() else {
        results.skip(
            "etcd",
            "the etcd put driver is not built (./x bench-setup builds benches/etcd-put)",
        );
        return;
    };
    let cluster = match Etcd::start() {
        Ok(c) => c,
        Err(e) => {
            results.skip("etcd", format!("cannot start 3 members: {e:#}"));
            return;
        }
    };
    let leader = match cluster.leader() {
        Ok(l) => l,
        Err(e) => {
            results.skip("etcd", format!("no leader: {e:#}"));
            return;
        }
    };
    for &c in clients {
        let pids = cluster.pids();
        let cpu_before = crate::cpu_seconds(&pids);
        let out = run(Command::new(&driver)
            .args(["--endpoint", &leader, "--clients", &c.to_string()])
            .args(["--seconds", &seconds.max(1).to_string()])
            .args(["--val-size", "256"]));
        let parsed = out.and_then(|text| {
            let line = text.lines().last().unwrap_or("");
            let v: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("unexpected output {line:?}"))?;
            Ok((
                v["ops_per_s"].as_f64().context("no ops_per_s")?,
                v["p50_ms"].as_f64(),
                v["p99_ms"].as_f64(),
                v["ops"].as_f64(),
            ))
        });
        match parsed {
            Ok((ops, p50, p99, count)) => {
                // The members' CPU over the driver's whole run (its
                // connecting included, a sliver) per put it counted.
                let server_cpu_us = cpu_before
                    .zip(crate::cpu_seconds(&pids))
                    .zip(count.filter(|n| *n > 0.0))
                    .map(|((before, after), n)| (after - before) * 1e6 / n);
                results.add(
                    Op::Keygen,
                    c,
                    PeerFigure {
                        peer: "etcd".into(),
                        what: format!("etcd 3 members, put 256 B, {c} clients"),
                        ops_per_s: ops,
                        p50_ms: p50,
                        p99_ms: p99,
                        server_cpu_us,
                    },
                );
            }
            Err(e) => results.skip("etcd", format!("{c} clients: {e:#}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEED: &str = "\
                  sign    verify    sign/s verify/s
rsa 2048 bits 0.000221s 0.000014s   4531.3  72069.0
                              sign    verify    sign/s verify/s
 256 bits ecdsa (nistp256)   0.0000s   0.0000s  62399.0  22007.0
                              sign    verify    sign/s verify/s
 253 bits EdDSA (Ed25519)   0.0000s   0.0001s  44327.0  13152.0
";
    const EVP: &str = "\
type           1024 bytes
AES-256-GCM    1775411.20k
";

    #[test]
    fn openssl_speed_output_is_read() {
        assert_eq!(speed_pair(SPEED, "rsa 2048 bits"), Some((4531.3, 72069.0)));
        assert_eq!(
            speed_pair(SPEED, "ecdsa (nistp256)"),
            Some((62399.0, 22007.0))
        );
        assert_eq!(
            speed_pair(SPEED, "EdDSA (Ed25519)"),
            Some((44327.0, 13152.0))
        );
        let aes = speed_single(EVP, "AES-256-GCM", 1024.0).expect("aes");
        assert!((aes - 1_775_411.2 * 1000.0 / 1024.0).abs() < 1e-6);
        assert_eq!(speed_single(EVP, "hmac(sha256)", 64.0), None);
    }
}
