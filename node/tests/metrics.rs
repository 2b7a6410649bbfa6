//! The metrics and health endpoint, scraped by a real Prometheus server
//! (Debian's `prometheus`, which `./x test` installs) over a 3-node
//! cluster of real processes.

mod procs;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hsm_crypto::mechanism::SignMechanism;
use procs::{http_get as get, user, Cluster};
use tokio::time::Instant;

/// A free loopback port ([`hsm_node::local::free_ports`]).
fn free_tcp_port() -> u16 {
    hsm_node::local::free_ports(1).expect("a free port")
}

/// `s` percent-encoded for a URL's query.
fn encoded(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Prometheus server the test started; killed when dropped.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` every second, its data and
    /// log under `dir`.
    fn start(dir: &Path, targets: &[SocketAddr]) -> Prometheus {
        let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: hsm\n    static_configs:\n      - targets: [{}]\n",
            list.join(", ")
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("write config");
        let addr: SocketAddr = ([127, 0, 0, 1], free_tcp_port()).into();
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the prometheus server (apt-get install prometheus; ./x test installs it)");
        Prometheus { child, addr }
    }

    /// Prometheus's answer to an instant query, if it took the query.
    fn answer(&self, promql: &str) -> Option<serde_json::Value> {
        let (status, body) = get(
            self.addr,
            &format!("/api/v1/query?query={}", encoded(promql)),
        )
        .ok()?;
        if status != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (v["status"] == "success").then_some(v)
    }

    /// The value of an instant query that returns one sample, if it does.
    fn query(&self, promql: &str) -> Option<f64> {
        let v = self.answer(promql)?;
        let result = v["data"]["result"].as_array()?;
        let [one] = result.as_slice() else {
            return None;
        };
        one["value"][1].as_str()?.parse().ok()
    }

    /// How many series an instant query returns (`None` if Prometheus
    /// refuses it: bad PromQL).
    fn series(&self, promql: &str) -> Option<usize> {
        let v = self.answer(promql)?;
        Some(v["data"]["result"].as_array().map_or(0, Vec::len))
    }

    /// Waits (at most 60 s) until `promql` gives `want`.
    async fn until(&self, promql: &str, want: impl Fn(f64) -> bool, dir: &Path) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = None;
        while Instant::now() < deadline {
            last = self.query(promql);
            if last.is_some_and(&want) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
        panic!("{promql} never as expected, last {last:?}; prometheus log:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prometheus_scrapes_every_node_and_answers_about_the_cluster() {
    let ports: Vec<u16> = (0..3).map(|_| free_tcp_port()).collect();
    let targets: Vec<SocketAddr> = ports
        .iter()
        .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
        .collect();
    // Snapshots every few entries, so building (and, for a member that
    // falls behind, installing) them is timed too.
    let cluster =
        Cluster::start_with_node_env(3, &[("HSM_NODE_RAFT_SNAPSHOT_EVERY_LOGS", "5")], |i| {
            vec![(
                "HSM_NODE_METRICS_LISTEN".to_owned(),
                targets[usize::try_from(i - 1).expect("small")].to_string(),
            )]
        });
    cluster.wait_ready().await;

    // Some traffic: a user, a key, signatures, and a wrong password.
    let (admin, alice, key) = cluster
        .with_alice("admin-password-1", "alice-password-1", "metrics")
        .await;
    // A backup (to the cluster's file:// destination).
    admin.create_backup().await.expect("backup");
    for _ in 0..20 {
        alice
            .sign(key, SignMechanism::Ed25519, b"counted".to_vec())
            .await
            .expect("sign");
    }
    let stranger = cluster.client().await;
    assert!(stranger
        .login(user("alice"), "not-alices-password")
        .await
        .is_err());

    // Each node's own endpoint: ready, and counts without names or secrets.
    let mut signs_seen = 0.0;
    for (i, target) in targets.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = get(*target, "/health/ready").expect("ready endpoint");
            if status == 200 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {} not ready: {body}",
                i + 1
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (status, _) = get(*target, "/health/live").expect("live endpoint");
        assert_eq!(status, 200);
        let (status, body) = get(*target, "/metrics").expect("metrics endpoint");
        assert_eq!(status, 200);
        for name in [
            "hsm_raft_term",
            "hsm_raft_applied_index",
            "hsm_users",
            "hsm_keys",
            "hsm_crypto_failed 0",
        ] {
            assert!(body.contains(name), "node {} lacks {name}:\n{body}", i + 1);
        }
        let names_and_secrets = [
            "alice",
            "alice-password-1",
            "admin-password-1",
            "not-alices-password",
            "counted",
            "127.0.0.1",
            &key.to_string(),
        ];
        for secret in names_and_secrets {
            assert!(!body.contains(secret), "node {} shows {secret:?}", i + 1);
        }
        signs_seen += body
            .lines()
            .filter(|l| l.starts_with("hsm_requests_total{op=\"sign\",outcome=\"ok\"}"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .sum::<f64>();
        let (status, _) = get(*target, "/nothing").expect("any path");
        assert_eq!(status, 404);
        // Garbage is refused and changes nothing.
        let mut junk = TcpStream::connect(target).expect("connect");
        junk.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        junk.write_all(b"\x00\xff GARBAGE \r\n\r\n").expect("write");
        let mut answer = String::new();
        let _ = junk.read_to_string(&mut answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
            "{answer}"
        );
        let (status, _) = get(*target, "/health/live").expect("still serving");
        assert_eq!(status, 200);
    }
    assert_eq!(signs_seen, 20.0, "every signature counted once");

    // Prometheus scrapes all three and answers PromQL about the cluster.
    let dir = tempfile::tempdir().expect("tempdir");
    let prometheus = Prometheus::start(dir.path(), &targets);
    let d = dir.path();
    prometheus
        .until("count(up{job=\"hsm\"} == 1)", |v| v == 3.0, d)
        .await;
    prometheus
        .until("sum(hsm_raft_is_leader)", |v| v == 1.0, d)
        .await;
    prometheus
        .until("count(hsm_ready == 1)", |v| v == 3.0, d)
        .await;
    prometheus
        .until(
            "sum(hsm_requests_total{op=\"sign\",outcome=\"ok\"})",
            |v| v == 20.0,
            d,
        )
        .await;
    prometheus
        .until(
            "sum(hsm_requests_total{op=\"login\",outcome=\"login-failed\"})",
            |v| v >= 1.0,
            d,
        )
        .await;
    prometheus.until("max(hsm_keys)", |v| v == 1.0, d).await;
    prometheus
        .until(
            "count(count by (__name__) ({__name__=~\"hsm_request_duration_seconds_bucket\"}))",
            |v| v == 1.0,
            d,
        )
        .await;
    // Every member runs the Raft protocol its build speaks: the leader
    // raised it once all three spoke it.
    prometheus
        .until(
            "count(hsm_raft_protocol == hsm_raft_protocol_spoken)",
            |v| v == 3.0,
            d,
        )
        .await;
    prometheus
        .until("min(hsm_raft_protocol)", |v| v >= 2.0, d)
        .await;
    // The backup: when and how long, on the node that took it.
    prometheus
        .until("max(hsm_backup_newest_timestamp_seconds)", |v| v > 1.7e9, d)
        .await;
    prometheus
        .until("max(hsm_backup_last_duration_seconds)", |v| v > 0.0, d)
        .await;
    // Every member knows entries committed, at least as far as it applied.
    prometheus
        .until(
            "count(hsm_raft_commit_index >= hsm_raft_applied_index and hsm_raft_commit_index > 0)",
            |v| v == 3.0,
            d,
        )
        .await;
    // Each node says which build it runs.
    prometheus
        .until("count(hsm_build_info == 1)", |v| v == 3.0, d)
        .await;
    // The leader reports each follower's lag.
    prometheus
        .until("count(hsm_raft_follower_lag_entries)", |v| v == 2.0, d)
        .await;
    // Writes are timed from proposal to outcome where they were proposed
    // (the leader), applies and snapshot builds on every member.
    prometheus
        .until(
            "sum(hsm_raft_proposal_duration_seconds_count)",
            |v| v >= 3.0,
            d,
        )
        .await;
    prometheus
        .until(
            "count(hsm_raft_apply_duration_seconds_count > 0)",
            |v| v == 3.0,
            d,
        )
        .await;
    prometheus
        .until(
            "count(hsm_raft_snapshot_build_duration_seconds_count > 0)",
            |v| v == 3.0,
            d,
        )
        .await;
    prometheus
        .until(
            "count(hsm_raft_snapshot_install_duration_seconds_count)",
            |v| v == 3.0,
            d,
        )
        .await;

    // The Grafana dashboard the repository ships asks only what the nodes
    // export, in PromQL that Prometheus takes, and every panel shows data
    // (the backup's age too: a backup was taken above).
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../deploy/grafana/hsm-cluster.json"),
        )
        .expect("deploy/grafana/hsm-cluster.json"),
    )
    .expect("the dashboard is JSON");
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .collect();
    assert!(exprs.len() >= 10, "{exprs:?}");
    for expr in &exprs {
        let promql = expr
            .replace("$job", "hsm")
            .replace("$__rate_interval", "30s");
        let names: Vec<&str> = promql
            .match_indices("hsm_")
            .map(|(i, _)| {
                let rest = &promql[i..];
                &rest[..rest
                    .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                    .unwrap_or(rest.len())]
            })
            .collect();
        for name in names {
            prometheus
                .until(&format!("count({{__name__=\"{name}\"}})"), |v| v >= 1.0, d)
                .await;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = prometheus.series(&promql);
            assert!(got.is_some(), "Prometheus refuses the dashboard's {promql}");
            if got > Some(0) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the dashboard's {promql} shows nothing"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    // The operator guide's metrics table names exactly what a node exports.
    let guide = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operator-guide.md"),
    )
    .expect("docs/operator-guide.md");
    let in_guide: std::collections::BTreeSet<String> = guide
        .lines()
        .filter(|l| l.starts_with("| `hsm_"))
        .flat_map(|l| {
            let first = l.split('|').nth(1).unwrap_or("");
            first
                .split('`')
                .filter(|s| s.starts_with("hsm_"))
                .map(|s| s.split('{').next().unwrap_or(s).to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    let (_, scraped) = get(targets[0], "/metrics").expect("metrics endpoint");
    let exported: std::collections::BTreeSet<String> = scraped
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let (name, kind) = (parts.next()?, parts.next()?);
            Some(if kind == "counter" {
                format!("{name}_total")
            } else {
                name.to_owned()
            })
        })
        .collect();
    assert_eq!(
        in_guide, exported,
        "docs/operator-guide.md's metrics table and the metrics a node exports differ"
    );

    // A node cut off from the others is not ready, and says why.
    cluster.signal(1, "STOP");
    cluster.signal(2, "STOP");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = get(targets[2], "/health/ready").expect("ready endpoint");
        if status == 503 {
            assert!(body.contains("not ready"), "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 3 stayed ready alone: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster.signal(1, "CONT");
    cluster.signal(2, "CONT");
}
