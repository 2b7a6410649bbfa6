//! Key lifecycles: `alice` creates a key, signs and reads with it, turns
//! its one-way attributes, shares it with `bob` and stops, while `bob`
//! signs and reads with it too; then she deletes it and uses it once more.

use std::sync::Arc;

use anyhow::{anyhow, bail};
use hsm_client::{ErrorKind, KeyAttribute, KeyAttributes, KeyFlag, KeyId, KeyInfo, KeySpec};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinSet;

use super::classify::Class;
use super::verify::PublicKey;
use super::{password, Account, Ctx, Lane};
use crate::history::{KeySeen, Op, Outcome};

/// Steps between a key's creation and its deletion.
const STEPS: std::ops::RangeInclusive<u32> = 4..=14;

/// How often two steps run at once.
const TOGETHER: f64 = 0.25;

/// Sets up `alice` and `bob` and runs one key task per seed.
///
/// # Errors
/// Setting them up did not finish within the duration, or a task found
/// an answer no correct cluster gives.
pub(crate) async fn start(ctx: Arc<Ctx>, seeds: Vec<u64>) -> anyhow::Result<()> {
    let mut users = Vec::new();
    for who in ["alice", "bob"] {
        let name = format!("p{}-{who}", ctx.process);
        let user = match ctx.new_user(&name).await? {
            Some(user) => user,
            None => bail!("setting up {name} did not finish within the duration"),
        };
        if !ctx.login(&user, &password(&name, 0)).await? {
            bail!("logging {name} in did not finish within the duration");
        }
        users.push(user);
    }
    let (Some(bob), Some(alice)) = (users.pop(), users.pop()) else {
        bail!("two users expected");
    };
    let mut tasks = JoinSet::new();
    for (task, seed) in (0u32..).zip(seeds) {
        let keys = Keys {
            ctx: ctx.clone(),
            task,
            alice: alice.clone(),
            bob: bob.clone(),
            lane: Lane::default(),
        };
        tasks.spawn(async move { keys.run(StdRng::seed_from_u64(seed)).await });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| anyhow!("a key task failed: {e}"))??;
    }
    Ok(())
}

/// Who acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// The owner.
    Alice,
    /// The user it is shared with, or was, or not yet.
    Bob,
}

/// One step of a lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Sign(Who),
    Read(Who),
    SetSensitive,
    SetNotExtractable,
    Share,
    Unshare,
}

impl Step {
    /// A random step. `shared` is a guess at whether the key is shared
    /// with bob (`None`: no idea), only to make shares and unshares that
    /// change something the likelier ones.
    fn pick(rng: &mut StdRng, shared: Option<bool>) -> Step {
        let (share, unshare) = match shared {
            Some(true) => (4, 16),
            Some(false) => (16, 4),
            None => (10, 10),
        };
        let weighted = [
            (Step::Sign(Who::Alice), 20),
            (Step::Read(Who::Alice), 10),
            (Step::SetSensitive, 6),
            (Step::SetNotExtractable, 6),
            (Step::Share, share),
            (Step::Unshare, unshare),
            (Step::Sign(Who::Bob), 18),
            (Step::Read(Who::Bob), 12),
        ];
        let total: u32 = weighted.iter().map(|(_, w)| w).sum();
        let mut at = rng.gen_range(0..total);
        for (step, weight) in weighted {
            if at < weight {
                return step;
            }
            at -= weight;
        }
        Step::Sign(Who::Alice)
    }

    /// A use of the key: a signature or a read, by either user.
    fn pick_use(rng: &mut StdRng, who: Option<Who>) -> Step {
        let who = who.unwrap_or(if rng.gen_bool(0.5) {
            Who::Alice
        } else {
            Who::Bob
        });
        if rng.gen_bool(0.6) {
            Step::Sign(who)
        } else {
            Step::Read(who)
        }
    }

    /// The guess at whether the key is shared after this step ended in
    /// `outcome`: a refused share means it was shared already (or the key
    /// is gone), a refused unshare that it was not.
    fn sharing_after(self, shared: Option<bool>, outcome: &Outcome) -> Option<bool> {
        let to = match self {
            Step::Share => true,
            Step::Unshare => false,
            _ => return shared,
        };
        match outcome {
            Outcome::Ok { .. } | Outcome::Failed { .. } => Some(to),
            Outcome::Unknown => None,
        }
    }
}

/// A key as it was created.
struct Key {
    id: KeyId,
    public_der: Vec<u8>,
    public: PublicKey,
}

/// One key task of a process.
struct Keys {
    ctx: Arc<Ctx>,
    task: u32,
    alice: Account,
    bob: Account,
    lane: Lane,
}

impl Keys {
    async fn run(self, mut rng: StdRng) -> anyhow::Result<()> {
        let mut n = 0u32;
        while !self.ctx.stopped() {
            self.lifecycle(n, &mut rng).await?;
            n += 1;
        }
        Ok(())
    }

    fn account(&self, who: Who) -> &Account {
        match who {
            Who::Alice => &self.alice,
            Who::Bob => &self.bob,
        }
    }

    async fn lifecycle(&self, n: u32, rng: &mut StdRng) -> anyhow::Result<()> {
        let Some(key) = self.create(n, rng).await? else {
            return Ok(());
        };
        let mut shared = Some(false);
        for _ in 0..rng.gen_range(STEPS) {
            if self.ctx.stopped() {
                return Ok(());
            }
            let (a, b) = (Step::pick(rng, shared), Step::pick(rng, shared));
            let (ma, mb): ([u8; 32], [u8; 32]) = (rng.gen(), rng.gen());
            if rng.gen_bool(TOGETHER) {
                let (ra, rb) = tokio::join!(self.step(&key, a, &ma), self.step(&key, b, &mb));
                shared = a.sharing_after(shared, &ra?);
                shared = b.sharing_after(shared, &rb?);
                continue;
            }
            let outcome = self.step(&key, a, &ma).await?;
            shared = a.sharing_after(shared, &outcome);
            // Right after an acknowledged unshare, bob must already be
            // unable to use the key (the revocation checker looks).
            let probe = match a {
                Step::Unshare => 0.6,
                Step::Share => 0.3,
                _ => 0.0,
            };
            if outcome.is_ok() && rng.gen_bool(probe) && !self.ctx.stopped() {
                let next = Step::pick_use(rng, Some(Who::Bob));
                self.step(&key, next, &rng.gen()).await?;
            }
        }
        if self.ctx.stopped() {
            return Ok(());
        }
        let call = self.alice.client.delete_key(key.id);
        self.write(Op::DeleteKey { key: key.id.0 }, call).await?;
        // Once more after the delete: it must not be usable.
        if !self.ctx.stopped() {
            let last = Step::pick_use(rng, None);
            self.step(&key, last, &rng.gen()).await?;
        }
        Ok(())
    }

    /// Creates key number `n` of this task; `None` unless acknowledged.
    async fn create(&self, n: u32, rng: &mut StdRng) -> anyhow::Result<Option<Key>> {
        let spec = if rng.gen_bool(0.5) {
            KeySpec::Ed25519
        } else {
            KeySpec::EcP256
        };
        let label = format!(
            "p{}-t{}-k{n}-{:x}",
            self.ctx.process, self.task, self.ctx.run_tag
        );
        let attributes = KeyAttributes {
            label: label.clone(),
            sign: true,
            verify: true,
            sensitive: false,
            extractable: true,
            ..KeyAttributes::default()
        };
        let call = self.alice.client.generate_key(spec, attributes, true);
        let (entry, result) = self
            .ctx
            .record(
                &self.lane,
                &self.alice.name,
                Op::CreateKey { label },
                Class::Write,
                call,
                |info: &KeyInfo| Outcome::Ok {
                    created: Some(info.id.0),
                    seen: None,
                },
            )
            .await?;
        let info = match result {
            Ok(info) => info,
            Err(e) => {
                self.after(Who::Alice, Some(e)).await?;
                return Ok(None);
            }
        };
        let public = PublicKey::from_spki(spec, &info.public_key).map_err(|e| {
            anyhow!(
                "entry {}: key {} created with a bad public key: {e}",
                entry.id,
                info.id
            )
        })?;
        Ok(Some(Key {
            id: info.id,
            public_der: info.public_key,
            public,
        }))
    }

    /// Runs and records one step; returns its outcome.
    async fn step(&self, key: &Key, step: Step, message: &[u8; 32]) -> anyhow::Result<Outcome> {
        let id = key.id.0;
        let alice = &self.alice;
        let bob = self.bob.name.clone();
        match step {
            Step::Sign(who) => self.sign(key, who, message).await,
            Step::Read(who) => self.read(key, who).await,
            Step::SetSensitive => {
                let change = KeyAttribute::Flag(KeyFlag::Sensitive, true);
                let call = alice.client.set_key_attribute(key.id, change);
                self.write(Op::SetSensitive { key: id }, call).await
            }
            Step::SetNotExtractable => {
                let change = KeyAttribute::Flag(KeyFlag::Extractable, false);
                let call = alice.client.set_key_attribute(key.id, change);
                self.write(Op::SetNotExtractable { key: id }, call).await
            }
            Step::Share => {
                let op = Op::Share {
                    key: id,
                    user: bob.to_string(),
                };
                self.write(op, alice.client.share_key(key.id, bob)).await
            }
            Step::Unshare => {
                let op = Op::Unshare {
                    key: id,
                    user: bob.to_string(),
                };
                self.write(op, alice.client.unshare_key(key.id, bob)).await
            }
        }
    }

    /// Records a write by `alice` that returns nothing.
    async fn write(
        &self,
        op: Op,
        call: impl std::future::Future<Output = hsm_client::Result<()>>,
    ) -> anyhow::Result<Outcome> {
        let (entry, result) = self
            .ctx
            .record(&self.lane, &self.alice.name, op, Class::Write, call, |_| {
                Outcome::DONE
            })
            .await?;
        self.after(Who::Alice, result.err()).await?;
        Ok(entry.outcome)
    }

    /// Signs `message` as `who` and checks the signature.
    async fn sign(&self, key: &Key, who: Who, message: &[u8; 32]) -> anyhow::Result<Outcome> {
        let account = self.account(who);
        let call = account
            .client
            .sign(key.id, key.public.mechanism(), message.to_vec());
        let (entry, result) = self
            .ctx
            .record(
                &self.lane,
                &account.name,
                Op::Sign { key: key.id.0 },
                Class::Read,
                call,
                |_| Outcome::DONE,
            )
            .await?;
        match result {
            Ok(signature) if !key.public.verifies(message, &signature) => bail!(
                "entry {}: the signature {} got from key {} does not verify against the key's public key",
                entry.id,
                account.name,
                key.id
            ),
            Ok(_) => Ok(entry.outcome),
            Err(e) => {
                self.after(who, Some(e)).await?;
                Ok(entry.outcome)
            }
        }
    }

    /// Reads the key as `who` and records its one-way attributes.
    async fn read(&self, key: &Key, who: Who) -> anyhow::Result<Outcome> {
        let account = self.account(who);
        let call = account.client.get_key(key.id);
        let (entry, result) = self
            .ctx
            .record(
                &self.lane,
                &account.name,
                Op::ReadKey { key: key.id.0 },
                Class::Read,
                call,
                |info: &KeyInfo| Outcome::Ok {
                    created: None,
                    seen: Some(KeySeen {
                        sensitive: info.attributes.sensitive,
                        extractable: info.attributes.extractable,
                    }),
                },
            )
            .await?;
        match result {
            Ok(info) if info.id != key.id || info.public_key != key.public_der => bail!(
                "entry {}: {} read key {} and got key {} with another public key",
                entry.id,
                account.name,
                key.id,
                info.id
            ),
            Ok(_) => Ok(entry.outcome),
            Err(e) => {
                self.after(who, Some(e)).await?;
                Ok(entry.outcome)
            }
        }
    }

    /// After an error of `who`'s call: a session that ended (a domain key
    /// rotation ends them all) is opened again; `alice` and `bob` never
    /// change their passwords.
    async fn after(&self, who: Who, error: Option<hsm_client::Error>) -> anyhow::Result<()> {
        if error.is_some_and(|e| e.kind() == Some(ErrorKind::Unauthenticated)) {
            let account = self.account(who);
            self.ctx
                .login(account, &password(account.name.as_str(), 0))
                .await?;
        }
        Ok(())
    }
}
