//! A member whose wall clock is wrong (libfaketime preloaded into its
//! process, hours off; monotonic time untouched, so Raft runs true) must
//! judge sessions by the leader's clock, as the cluster stamps every event:
//! it neither honours a session past its expiry nor refuses the cluster's
//! sessions early, and a session it issues ends on the leader's time
//! wherever it is used.
//!
//! Each test starts three nodes, finds the leader, and restarts one
//! follower with its clock two hours ahead and the other two hours behind.
//! Sessions last the shortest lifetime a node accepts (60 s). Skipped, with
//! a message, where libfaketime is not installed.

mod procs;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hsm_proto::client::{ErrorKind, Operation, Reply, Response, Secret};
use procs::{user, Cluster};

/// Where Debian's `faketime` package puts the library (`./x` installs it).
const LIBFAKETIME: [&str; 2] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
];
const ADMIN: &str = "admin-password-clock";
const LIFETIME_S: u64 = 60;
const LIFETIME_MS: u64 = LIFETIME_S * 1000;
/// How far the skewed followers' clocks are off.
const SKEW: &str = "2h";

/// This process's clock, which libfaketime does not touch: the true time,
/// and so the leader's.
fn true_now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis(),
    )
    .expect("ms")
}

/// A three-node cluster (sessions of 60 s, activated) whose leader runs on
/// the true clock and whose followers run two hours `ahead` and `behind`.
struct Skewed {
    cluster: Cluster,
    leader: u64,
    ahead: u64,
    behind: u64,
}

impl Skewed {
    /// `None` (after saying why) when libfaketime is missing.
    async fn start() -> Option<Skewed> {
        let Some(libfaketime) = LIBFAKETIME.into_iter().find(|p| Path::new(p).exists()) else {
            eprintln!(
                "skipped: libfaketime is not installed at any of {LIBFAKETIME:?} \
                 (Debian package faketime; ./x installs it)"
            );
            return None;
        };
        let lifetime = LIFETIME_S.to_string();
        let mut cluster =
            Cluster::start_with_env(3, &[("HSM_NODE_SESSIONS_LIFETIME_S", lifetime.as_str())]);
        cluster.wait_ready().await;
        cluster.activate(ADMIN).await;
        let leader = cluster.leader().await;
        let followers: Vec<u64> = (1..=3).filter(|i| *i != leader).collect();
        let (ahead, behind) = (followers[0], followers[1]);
        for (node, offset) in [(ahead, format!("+{SKEW}")), (behind, format!("-{SKEW}"))] {
            cluster.kill(node);
            cluster.start_node_with_env(
                node,
                &[
                    ("LD_PRELOAD", libfaketime),
                    ("FAKETIME", offset.as_str()),
                    ("DONT_FAKE_MONOTONIC", "1"),
                ],
            );
        }
        cluster.wait_ready().await;
        let skewed = Skewed {
            cluster,
            leader,
            ahead,
            behind,
        };
        skewed.check_leader().await;
        Some(skewed)
    }

    /// The tests need the leader on the true clock: a leader change would
    /// change the cluster's time, and the results would mean something else.
    async fn check_leader(&self) {
        let now = self.cluster.leader().await;
        assert_eq!(
            now,
            self.leader,
            "the leader moved from node {} to node {now} (clock {}): this test needs the \
             leader on the true clock; run it again\n{}",
            self.leader,
            self.clock_of(now),
            self.cluster.logs()
        );
    }

    fn clock_of(&self, node: u64) -> String {
        if node == self.ahead {
            format!("{SKEW} ahead")
        } else if node == self.behind {
            format!("{SKEW} behind")
        } else {
            "true".into()
        }
    }

    fn name(&self, node: u64) -> String {
        format!("node {node} (clock {})", self.clock_of(node))
    }

    /// Logs `admin` in through `node`: the token and the expiry the node
    /// gave it, with the true time just before the login was sent.
    async fn login(&self, node: u64) -> Login {
        let sent_ms = true_now_ms();
        let op = Operation::Login {
            username: user("admin"),
            password: Secret::new(ADMIN.as_bytes().to_vec()),
        };
        let response = self.cluster.ask(node, None, op).await;
        match response.result {
            Ok(Reply::LoggedIn {
                token, expires_ms, ..
            }) => Login {
                token,
                expires_ms,
                sent_ms,
                answered_ms: true_now_ms(),
                through: node,
            },
            other => panic!(
                "login through {} failed: {other:?}\n{}",
                self.name(node),
                self.cluster.logs()
            ),
        }
    }

    /// Uses `login`'s session through `node` (listing users, which a crypto
    /// officer may do).
    async fn use_session(&self, login: &Login, node: u64) -> Response {
        self.cluster
            .ask(
                node,
                Some(&login.token),
                Operation::ListUsers {
                    after: None,
                    limit: 100,
                },
            )
            .await
    }
}

/// A session as a login through one node returned it.
struct Login {
    token: Secret,
    expires_ms: u64,
    /// The true time just before the login was sent, and when its answer
    /// came.
    sent_ms: u64,
    answered_ms: u64,
    through: u64,
}

impl Login {
    /// Why its expiry is not the leader's time of the login plus the
    /// lifetime (within the login's own duration and a second), if it is
    /// not.
    fn wrong_expiry(&self, skewed: &Skewed) -> Option<String> {
        let earliest = self.sent_ms + LIFETIME_MS;
        let latest = self.answered_ms + LIFETIME_MS + 1_000;
        (self.expires_ms < earliest || self.expires_ms > latest).then(|| {
            format!(
                "a session issued through {} expires {} s after the true time of its login, \
                 not {LIFETIME_S} s",
                skewed.name(self.through),
                (i128::from(self.expires_ms) - i128::from(self.sent_ms)) / 1000
            )
        })
    }
}

fn refused_as_expired(response: &Response) -> bool {
    matches!(&response.result, Err(e) if e.kind == ErrorKind::Unauthenticated
        && e.message.contains("expired"))
}

fn outcome(response: &Response) -> String {
    match &response.result {
        Ok(_) => "accepted".into(),
        Err(e) => format!("refused ({:?}: {})", e.kind, e.message),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_wrong_clock_honours_fresh_sessions_and_issues_them_on_leader_time() {
    let Some(skewed) = Skewed::start().await else {
        return;
    };
    let (leader, ahead, behind) = (skewed.leader, skewed.ahead, skewed.behind);
    let mut failures = Vec::new();

    // A session the leader issued a moment ago is good on every node,
    // whatever its clock says.
    let fresh = skewed.login(leader).await;
    failures.extend(fresh.wrong_expiry(&skewed));
    for node in [leader, ahead, behind] {
        let r = skewed.use_session(&fresh, node).await;
        if r.result.is_err() {
            failures.push(format!(
                "a session the leader issued a moment ago was {} by {}",
                outcome(&r),
                skewed.name(node)
            ));
        }
    }

    // Sessions issued through a node with a wrong clock expire on the
    // leader's time, and are good everywhere.
    for through in [ahead, behind] {
        let login = skewed.login(through).await;
        failures.extend(login.wrong_expiry(&skewed));
        for node in [leader, ahead, behind] {
            let r = skewed.use_session(&login, node).await;
            if r.result.is_err() {
                failures.push(format!(
                    "a session issued a moment ago through {} was {} by {}",
                    skewed.name(through),
                    outcome(&r),
                    skewed.name(node)
                ));
            }
        }
    }

    skewed.check_leader().await;
    assert!(
        failures.is_empty(),
        "sessions judged on the serving node's own clock:\n- {}\n{}",
        failures.join("\n- "),
        skewed.cluster.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_node_honours_a_session_past_its_expiry_on_leader_time() {
    let Some(skewed) = Skewed::start().await else {
        return;
    };
    let (leader, ahead, behind) = (skewed.leader, skewed.ahead, skewed.behind);
    let mut failures = Vec::new();

    // One session issued through the fast node, then one through the
    // leader: by the time the leader refuses its own, both have expired on
    // the leader's clock.
    let through_ahead = skewed.login(ahead).await;
    let through_leader = skewed.login(leader).await;
    let deadline = Instant::now() + Duration::from_secs(LIFETIME_S + 30);
    loop {
        let r = skewed.use_session(&through_leader, leader).await;
        if refused_as_expired(&r) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the leader still {} its own session {} s after it was issued for {LIFETIME_S} s",
            outcome(&r),
            LIFETIME_S + 30
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        true_now_ms() >= through_leader.expires_ms,
        "the leader refused its session before its expiry"
    );

    for login in [&through_leader, &through_ahead] {
        for node in [leader, ahead, behind] {
            let r = skewed.use_session(login, node).await;
            if !refused_as_expired(&r) {
                failures.push(format!(
                    "a session issued through {} {} s ago, for {LIFETIME_S} s, was {} by {}",
                    skewed.name(login.through),
                    true_now_ms().saturating_sub(login.sent_ms) / 1000,
                    outcome(&r),
                    skewed.name(node)
                ));
            }
        }
    }

    skewed.check_leader().await;
    assert!(
        failures.is_empty(),
        "sessions judged on the serving node's own clock:\n- {}\n{}",
        failures.join("\n- "),
        skewed.cluster.logs()
    );
}
