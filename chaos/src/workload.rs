//! One client process's workload: operations through the Rust SDK, each
//! recorded as a history [`Entry`] the checkers understand.
//!
//! A process has its own users, named from its number (`p3-alice`, ...),
//! so processes never share one:
//!
//! - `alice` owns keys and `bob` is who she shares them with. Each of
//!   [`KEY_TASKS`] tasks runs key lifecycles one after another: create
//!   (unique label, Ed25519 or P-256, not sensitive, extractable), then a
//!   random mix of signs and reads by both users, `sensitive` on and
//!   `extractable` off, shares and unshares with bob (sometimes two steps
//!   at once), then delete and one more use. Every signature is checked
//!   against the key's public key.
//! - `carol<g>` changes her own password again and again, and logs in
//!   with the new and the old one; `lock<r>` is guessed at with a wrong
//!   password until it is locked. Both are replaced by a fresh user (the
//!   next `g`, `r`) rather than reset, because a reset the history does not
//!   show would mislead the lockout checker.
//!
//! Password number `n` of user `u` is the text [`password`]`(u, n)`; the
//! password a user is created with is number 0, each change sets a number
//! never used before, and a wrong guess is number [`WRONG_PASSWORD`],
//! which no change sets.
//!
//! Outcomes (see `classify`): failed only for a refusal that names a
//! reason; a write (or login) without an answer is unknown; a read without
//! one is failed, since it changed nothing. Within a task, each operation
//! is invoked in a later millisecond than the previous one completed, so
//! the history orders them.
//!
//! Setting users up and logging `alice` and `bob` in are not recorded.
//! Entries are written as they complete (so in completion order, not
//! invocation order), one JSON line each, flushed: a killed client leaves
//! every completed operation behind. When the process gives up (it saw
//! something no correct cluster does), the operations it had in flight are
//! written as [`Outcome::Unknown`]: a node may still apply them (a node
//! serves a request to its end whoever is waiting), and a checker that did
//! not know of them would call their effects lost or invented. The runner
//! stops its clients through the stop file, never by killing them, unless
//! one overstays its bound.

mod accounts;
mod classify;
mod keys;
mod verify;

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use hsm_client::{Client, ClientConfig, ClientOptions, ErrorKind, Role, Username};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::history::{Entry, Failure, Op, Outcome};
use classify::Class;

/// Key lifecycle tasks per process: keys in flight at once.
pub const KEY_TASKS: u32 = 3;

/// The password number of a wrong guess: no change ever sets it.
pub const WRONG_PASSWORD: u32 = u32::MAX;

/// Pause between two tries of a setup step.
const SETUP_PAUSE: Duration = Duration::from_millis(100);

/// Pause of a task after an operation that reached no node in time.
const UNREACHABLE_PAUSE: Duration = Duration::from_millis(50);

/// How long a process that gives up waits for its stopped tasks to let go
/// of their operations in flight.
const ABANDON_WAIT: Duration = Duration::from_secs(5);

/// Entries buffered between the tasks and the writer.
const ENTRY_QUEUE: usize = 256;

/// One client process's workload.
#[derive(Clone)]
pub struct Workload {
    /// The client config file (`client.toml`).
    pub client_config: PathBuf,
    /// Talk to this node only (recorded as [`Entry::node`]).
    pub pinned_node: Option<u64>,
    /// This client's number; its users are named from it.
    pub process: u32,
    /// Seed of every random choice.
    pub seed: u64,
    /// No operation is invoked after this much time from the start of
    /// [`run`].
    pub duration: Duration,
    /// Nor once this file exists (the runner's signal that its faults are
    /// over).
    pub stop_file: Option<PathBuf>,
    /// The run's start, ms since the Unix epoch: entry times count from it.
    pub epoch_unix_ms: u64,
    /// A crypto officer's user name and password, to create this
    /// process's users.
    pub officer: (String, String),
    /// Deadline of each operation; a write that runs out of it is
    /// [`Outcome::Unknown`].
    pub op_deadline: Duration,
}

impl std::fmt::Debug for Workload {
    /// Everything but the officer's password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workload")
            .field("client_config", &self.client_config)
            .field("pinned_node", &self.pinned_node)
            .field("process", &self.process)
            .field("seed", &self.seed)
            .field("duration", &self.duration)
            .field("stop_file", &self.stop_file)
            .field("epoch_unix_ms", &self.epoch_unix_ms)
            .field("officer", &self.officer.0)
            .field("op_deadline", &self.op_deadline)
            .finish_non_exhaustive()
    }
}

/// How the recorded operations ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Acknowledged.
    pub ok: u64,
    /// Definitely not applied.
    pub failed: u64,
    /// Outcome unknown.
    pub unknown: u64,
}

impl Stats {
    fn count(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Ok { .. } => self.ok += 1,
            Outcome::Failed { .. } => self.failed += 1,
            Outcome::Unknown => self.unknown += 1,
        }
    }
}

/// What every password of the workload has in it (and nothing else the
/// run writes): the secret scan looks for it.
pub const PASSWORD_MARK: &str = "/password-";

/// The text of password number `number` of `user`.
pub fn password(user: &str, number: u32) -> String {
    format!("{user}{PASSWORD_MARK}{number}")
}

/// Runs `workload` until its duration has passed and every operation in
/// flight has completed, writing each [`Entry`] to `out` as one JSON line,
/// flushed, as soon as it completes. Entry ids are `process << 32 | n`,
/// `n` counting invocations from 0.
///
/// # Errors
/// The client config cannot be read or does not list the pinned node; the
/// officer's password is refused, or setting up `alice` and `bob` did not
/// finish within the duration; writing to `out` fails; or the cluster
/// answered something no correct cluster does and no checker could see in
/// the history (the entry is written first, and the error names it): a
/// signature that does not verify against the key's public key, a read
/// returning another public key, a wrong password accepted, or the
/// password an acknowledged change set refused.
pub async fn run(w: &Workload, out: &mut impl Write) -> anyhow::Result<Stats> {
    let mut config = hsm_client::load_config(&w.client_config)?;
    let mut options = ClientOptions::default().deadline(w.op_deadline);
    if let Some(node) = w.pinned_node {
        config.nodes.retain(|n| n.id == node);
        if config.nodes.is_empty() {
            bail!("node {node} is not listed in {}", w.client_config.display());
        }
        options = options.follow_membership(false);
    }
    let start = Instant::now();
    let (entries, mut received) = mpsc::channel(ENTRY_QUEUE);
    let officer = Account::new(&config, &options, &w.officer.0)?;
    let ctx = Arc::new(Ctx {
        process: w.process,
        node: w.pinned_node,
        run_tag: w.epoch_unix_ms,
        start,
        start_ms: unix_ms().saturating_sub(w.epoch_unix_ms),
        stop_at: start + w.duration,
        stop_file: w.stop_file.clone(),
        next_id: AtomicU64::new(0),
        in_flight: Mutex::new(BTreeMap::new()),
        entries,
        config,
        options,
        officer: (officer, w.officer.1.clone()),
    });
    let mut rng = StdRng::seed_from_u64(w.seed);
    let mut tasks = JoinSet::new();
    {
        let ctx = ctx.clone();
        let rng = StdRng::seed_from_u64(rng.gen());
        tasks.spawn(async move { accounts::password_changes(ctx, rng).await });
    }
    {
        let ctx = ctx.clone();
        let rng = StdRng::seed_from_u64(rng.gen());
        tasks.spawn(async move { accounts::lockouts(ctx, rng).await });
    }
    let seeds: Vec<u64> = (0..KEY_TASKS).map(|_| rng.gen()).collect();
    {
        let ctx = ctx.clone();
        tasks.spawn(async move { keys::start(ctx, seeds).await });
    }
    let mut stats = Stats::default();
    loop {
        tokio::select! {
            biased;
            Some(entry) = received.recv() => write_entry(out, &entry, &mut stats)?,
            done = tasks.join_next() => {
                let Some(done) = done else { break };
                let failed = match done {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e),
                    Err(e) => Some(anyhow!("a workload task failed: {e}")),
                };
                if let Some(e) = failed {
                    tasks.abort_all();
                    while tasks.join_next().await.is_some() {}
                    // The tasks those spawned stop as their futures are
                    // dropped, each with its hold on the context.
                    let until = Instant::now() + ABANDON_WAIT;
                    while Arc::strong_count(&ctx) > 1 && Instant::now() < until {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    // A task still alive past the wait can send no more: what
                    // it has in flight is abandoned with the rest.
                    received.close();
                    while let Ok(entry) = received.try_recv() {
                        ctx.in_flight().remove(&entry.id);
                        write_entry(out, &entry, &mut stats)?;
                    }
                    for entry in ctx.abandon() {
                        write_entry(out, &entry, &mut stats)?;
                    }
                    return Err(e.context(format!("process {}", w.process)));
                }
            }
        }
    }
    // Every task has ended, and with it every send.
    while let Ok(entry) = received.try_recv() {
        write_entry(out, &entry, &mut stats)?;
    }
    Ok(stats)
}

fn write_entry(out: &mut impl Write, entry: &Entry, stats: &mut Stats) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, entry)?;
    out.write_all(b"\n")?;
    out.flush()?;
    stats.count(&entry.outcome);
    Ok(())
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A user and a client holding its session (clients of different users
/// share nothing, clones of one share the session).
#[derive(Clone)]
pub(crate) struct Account {
    pub(crate) name: Username,
    pub(crate) client: Client,
}

impl Account {
    fn new(config: &ClientConfig, options: &ClientOptions, name: &str) -> anyhow::Result<Account> {
        Ok(Account {
            name: Username::new(name).map_err(|e| anyhow!(e))?,
            client: Client::new(config.clone(), options.clone())?,
        })
    }
}

/// Operations one task runs one after another. Each is invoked in a later
/// millisecond than the one before completed, so the history (whose times
/// are whole milliseconds) orders them, and the checkers judge the later
/// one by the earlier.
#[derive(Debug, Default)]
pub(crate) struct Lane {
    last_complete_ms: AtomicU64,
}

/// An operation invoked and not yet completed.
#[derive(Clone)]
pub(crate) struct Invoked {
    id: u64,
    actor: String,
    op: Op,
    invoke_ms: u64,
}

/// What the tasks of one process share.
pub(crate) struct Ctx {
    pub(crate) process: u32,
    node: Option<u64>,
    /// Makes labels unique across runs against one cluster.
    pub(crate) run_tag: u64,
    start: Instant,
    /// `start` in ms since the run's epoch.
    start_ms: u64,
    stop_at: Instant,
    stop_file: Option<PathBuf>,
    next_id: AtomicU64,
    /// Invoked and not yet handed to the history writer, by entry id.
    in_flight: Mutex<BTreeMap<u64, Invoked>>,
    entries: mpsc::Sender<Entry>,
    config: ClientConfig,
    options: ClientOptions,
    officer: (Account, String),
}

impl Ctx {
    /// Ms since the run's epoch (monotonic within the process).
    fn now_ms(&self) -> u64 {
        let since = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.start_ms.saturating_add(since)
    }

    /// Whether the duration has passed or the stop file is there: invoke
    /// nothing more.
    pub(crate) fn stopped(&self) -> bool {
        Instant::now() >= self.stop_at || self.stop_file.as_ref().is_some_and(|f| f.exists())
    }

    /// Sleeps `pause`, or until the duration has passed.
    pub(crate) async fn pause(&self, pause: Duration) {
        tokio::time::sleep_until((Instant::now() + pause).min(self.stop_at).into()).await;
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Invoked>> {
        self.in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn invoke(&self, actor: &Username, op: Op) -> Invoked {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let invoked = Invoked {
            id: (u64::from(self.process) << 32) | n,
            actor: actor.to_string(),
            op,
            invoke_ms: self.now_ms(),
        };
        self.in_flight().insert(invoked.id, invoked.clone());
        invoked
    }

    fn entry(&self, invoked: Invoked, outcome: Outcome) -> Entry {
        Entry {
            id: invoked.id,
            process: self.process,
            actor: invoked.actor,
            node: self.node,
            op: invoked.op,
            invoke_ms: invoked.invoke_ms,
            complete_ms: self.now_ms(),
            outcome,
        }
    }

    async fn complete(&self, invoked: Invoked, outcome: Outcome) -> anyhow::Result<Entry> {
        let id = invoked.id;
        let entry = self.entry(invoked, outcome);
        self.entries
            .send(entry.clone())
            .await
            .map_err(|_| anyhow!("the history writer stopped"))?;
        // Only once the writer has it: a task stopped while sending leaves
        // its operation in flight, for [`Ctx::abandon`].
        self.in_flight().remove(&id);
        Ok(entry)
    }

    /// Every operation still in flight, as [`Outcome::Unknown`] entries
    /// completing now, and forgotten: what a process that gives up writes
    /// after its tasks have stopped.
    fn abandon(&self) -> Vec<Entry> {
        let abandoned = std::mem::take(&mut *self.in_flight());
        abandoned
            .into_values()
            .map(|invoked| self.entry(invoked, Outcome::Unknown))
            .collect()
    }

    /// Runs `call` as `actor` in `lane` and records it as `op`: `ok` says
    /// what an answer returned, [`classify::outcome`] what an error means
    /// for an operation of `class`.
    pub(crate) async fn record<T>(
        &self,
        lane: &Lane,
        actor: &Username,
        op: Op,
        class: Class,
        call: impl Future<Output = hsm_client::Result<T>>,
        ok: impl FnOnce(&T) -> Outcome,
    ) -> anyhow::Result<(Entry, hsm_client::Result<T>)> {
        let after_ms = lane.last_complete_ms.load(Ordering::Acquire);
        let wait_ms = after_ms.saturating_add(1).saturating_sub(self.start_ms);
        tokio::time::sleep_until((self.start + Duration::from_millis(wait_ms)).into()).await;
        let invoked = self.invoke(actor, op);
        let result = call.await;
        let outcome = match &result {
            Ok(value) => ok(value),
            Err(e) => classify::outcome(class, e),
        };
        let entry = self.complete(invoked, outcome).await?;
        lane.last_complete_ms
            .fetch_max(entry.complete_ms, Ordering::AcqRel);
        if result.as_ref().is_err_and(hsm_client::Error::is_transient) {
            // With every node set aside the client fails at once: no
            // busy loop of operations that cannot reach the cluster.
            self.pause(UNREACHABLE_PAUSE).await;
        }
        Ok((entry, result))
    }

    /// A new client for `name`.
    pub(crate) fn account(&self, name: &str) -> anyhow::Result<Account> {
        Account::new(&self.config, &self.options, name)
    }

    /// Logs `account` in with `password` (not recorded), trying again
    /// until it works; `false` if the duration passed first. A locked
    /// account is unlocked by the officer: only for users whose logins are
    /// never recorded.
    ///
    /// # Errors
    /// The password was refused.
    pub(crate) async fn login(&self, account: &Account, password: &str) -> anyhow::Result<bool> {
        loop {
            if self.stopped() {
                return Ok(false);
            }
            let e = match account.client.login(account.name.clone(), password).await {
                Ok(_) => return Ok(true),
                Err(e) => e,
            };
            match classify::outcome(Class::Login, &e) {
                Outcome::Failed {
                    failure: Failure::BadPassword,
                } => bail!("{}: the password was refused: {e}", account.name),
                Outcome::Failed { .. } => self.unlock(&account.name).await,
                _ => {}
            }
            self.pause(SETUP_PAUSE).await;
        }
    }

    /// Logs the officer in (not recorded), trying again until it works;
    /// `false` if the duration passed first.
    ///
    /// # Errors
    /// The password was refused, or the officer is locked.
    async fn officer_login(&self) -> anyhow::Result<bool> {
        let (officer, password) = &self.officer;
        loop {
            if self.stopped() {
                return Ok(false);
            }
            let e = match officer
                .client
                .login(officer.name.clone(), password.as_str())
                .await
            {
                Ok(_) => return Ok(true),
                Err(e) => e,
            };
            if let Outcome::Failed { .. } = classify::outcome(Class::Login, &e) {
                bail!("officer {}: cannot log in: {e}", officer.name);
            }
            self.pause(SETUP_PAUSE).await;
        }
    }

    /// Runs an officer call until it is answered (logging the officer in
    /// again whenever its session ended); `None` if the duration passed
    /// first.
    async fn as_officer<T, F, Fut>(&self, call: F) -> anyhow::Result<Option<hsm_client::Result<T>>>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = hsm_client::Result<T>>,
    {
        if !self.officer.0.client.is_logged_in() && !self.officer_login().await? {
            return Ok(None);
        }
        loop {
            if self.stopped() {
                return Ok(None);
            }
            match call(self.officer.0.client.clone()).await {
                Err(e) if e.kind() == Some(ErrorKind::Unauthenticated) => {
                    if !self.officer_login().await? {
                        return Ok(None);
                    }
                }
                Err(e) if e.is_transient() || e.kind() == Some(ErrorKind::Internal) => {
                    self.pause(SETUP_PAUSE).await;
                }
                answered => return Ok(Some(answered)),
            }
        }
    }

    /// Unlocks `user` (best effort, not recorded).
    async fn unlock(&self, user: &Username) {
        let _ = self
            .as_officer(|c| {
                let user = user.clone();
                async move { c.unlock_user(user).await }
            })
            .await;
    }

    /// Creates crypto user `name` with password number 0 (not recorded);
    /// a user of that name already there (an earlier attempt of this one,
    /// or an earlier run) gets password 0 and is unlocked. `None` if the
    /// duration passed first.
    ///
    /// # Errors
    /// The officer may not create users, or the name is invalid.
    pub(crate) async fn new_user(&self, name: &str) -> anyhow::Result<Option<Account>> {
        let account = self.account(name)?;
        let first = password(name, 0);
        let created = self
            .as_officer(|c| {
                let (user, first) = (account.name.clone(), first.clone());
                async move { c.create_user(user, Role::Cu, first).await }
            })
            .await?;
        match created {
            None => return Ok(None),
            Some(Ok(())) => return Ok(Some(account)),
            Some(Err(e)) if e.kind() == Some(ErrorKind::Conflict) => {}
            Some(Err(e)) => return Err(e).context(format!("creating user {name}")),
        }
        let reset = self
            .as_officer(|c| {
                let (user, first) = (account.name.clone(), first.clone());
                async move { c.change_password(user, first).await }
            })
            .await?;
        match reset {
            None => Ok(None),
            Some(Ok(())) => {
                self.unlock(&account.name).await;
                Ok(Some(account))
            }
            Some(Err(e)) => Err(e).context(format!("resetting user {name}")),
        }
    }

    /// Deletes a user this process no longer uses (best effort, not
    /// recorded), so long runs do not pile them up.
    pub(crate) async fn retire(&self, user: &Username) {
        if self.stopped() {
            return;
        }
        let _ = self
            .as_officer(|c| {
                let user = user.clone();
                async move { c.delete_user(user).await }
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload() -> Workload {
        Workload {
            client_config: PathBuf::from("client.toml"),
            pinned_node: Some(2),
            process: 3,
            seed: 7,
            duration: Duration::from_secs(1),
            stop_file: None,
            epoch_unix_ms: 0,
            officer: ("admin".into(), "officer secret".into()),
            op_deadline: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_workload_never_shows_the_officer_password() {
        let shown = format!("{:?}", workload());
        assert!(shown.contains("admin"), "{shown}");
        assert!(!shown.contains("officer secret"), "{shown}");
    }

    #[test]
    fn a_run_can_be_spawned() {
        fn send<T: Send>(_: &T) {}
        let w = workload();
        let mut out = Vec::new();
        send(&run(&w, &mut out));
    }

    #[test]
    fn passwords_differ_by_user_and_number_and_meet_the_policy() {
        let a = password("p1-carol0", 0);
        assert!(a.chars().count() >= 8);
        assert_ne!(a, password("p1-carol0", 1));
        assert_ne!(a, password("p1-carol1", 0));
        assert_ne!(a, password("p1-carol0", WRONG_PASSWORD));
    }
}
