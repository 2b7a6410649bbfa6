//! Logins and password changes: `carol<g>` changes her own password and
//! logs in with the new and the old one; `lock<r>` is guessed at until it
//! is locked. Each is replaced by a fresh user once its state is no longer
//! known (a change with an unknown outcome) or it is locked: the officer
//! never resets or unlocks a user whose logins are recorded, since the
//! history would not show it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use rand::rngs::StdRng;
use rand::Rng;

use super::classify::Class;
use super::{password, Account, Ctx, Lane, WRONG_PASSWORD};
use crate::history::{Entry, Failure, Op, Outcome};

/// Logins in a row without an answer before `carol` is replaced.
const MAX_MISSES: u32 = 4;

/// Guesses at a `lock` user before giving up on locking it.
const MAX_GUESSES: u32 = 16;

/// Longest pause between two logins of a user (they are the expensive
/// requests: Argon2id on a node).
const MAX_PAUSE_MS: u64 = 100;

/// Changes passwords until the duration passes.
///
/// # Errors
/// The cluster refused the password an acknowledged change set.
pub(crate) async fn password_changes(ctx: Arc<Ctx>, mut rng: StdRng) -> anyhow::Result<()> {
    for generation in 0u32.. {
        if ctx.stopped() {
            break;
        }
        let name = format!("p{}-carol{generation}", ctx.process);
        let Some(user) = ctx.new_user(&name).await? else {
            break;
        };
        Churn {
            ctx: &ctx,
            user: &user,
            current: 0,
            next: 1,
            signed_in: false,
            lane: Lane::default(),
        }
        .run(&mut rng)
        .await?;
        ctx.retire(&user.name).await;
    }
    Ok(())
}

/// Locks users out until the duration passes.
///
/// # Errors
/// The cluster accepted a wrong password or refused the right one.
pub(crate) async fn lockouts(ctx: Arc<Ctx>, mut rng: StdRng) -> anyhow::Result<()> {
    for round in 0u32.. {
        if ctx.stopped() {
            break;
        }
        let name = format!("p{}-lock{round}", ctx.process);
        let Some(user) = ctx.new_user(&name).await? else {
            break;
        };
        lock_out(&ctx, &user, &mut rng).await?;
        ctx.retire(&user.name).await;
    }
    Ok(())
}

/// Logs `user` in with password number `number`, recorded.
async fn login(ctx: &Ctx, lane: &Lane, user: &Account, number: u32) -> anyhow::Result<Entry> {
    let op = Op::Login {
        user: user.name.to_string(),
        password: number,
    };
    let text = password(user.name.as_str(), number);
    let call = user.client.login(user.name.clone(), text);
    let (entry, _) = ctx
        .record(lane, &user.name, op, Class::Login, call, |_| Outcome::DONE)
        .await?;
    Ok(entry)
}

fn failure(entry: &Entry) -> Option<&Failure> {
    match &entry.outcome {
        Outcome::Failed { failure } => Some(failure),
        _ => None,
    }
}

async fn pace(ctx: &Ctx, rng: &mut StdRng) {
    ctx.pause(Duration::from_millis(rng.gen_range(0..=MAX_PAUSE_MS)))
        .await;
}

/// One `carol`, whose password is known for certain: every change so far
/// was acknowledged or certainly refused.
struct Churn<'a> {
    ctx: &'a Ctx,
    user: &'a Account,
    /// The password number she has.
    current: u32,
    /// The number the next change sets (never used before).
    next: u32,
    /// Whether her client holds a session from her current password.
    signed_in: bool,
    lane: Lane,
}

impl Churn<'_> {
    /// Until the duration passes, or her password or lock state is no
    /// longer known.
    async fn run(&mut self, rng: &mut StdRng) -> anyhow::Result<()> {
        let mut misses = 0;
        while !self.ctx.stopped() {
            if !self.signed_in || rng.gen_bool(0.3) {
                let entry = login(self.ctx, &self.lane, self.user, self.current).await?;
                match failure(&entry) {
                    None if entry.outcome.is_ok() => {
                        self.signed_in = true;
                        misses = 0;
                    }
                    Some(Failure::BadPassword) => bail!(
                        "entry {}: {} was refused password {}, which she was created with or \
                         an acknowledged change set",
                        entry.id,
                        self.user.name,
                        self.current
                    ),
                    Some(Failure::Locked) => return Ok(()),
                    _ => {
                        misses += 1;
                        if misses >= MAX_MISSES {
                            return Ok(());
                        }
                    }
                }
            } else if !self.change(rng).await? {
                return Ok(());
            }
            pace(self.ctx, rng).await;
        }
        Ok(())
    }

    /// Changes her password to the next number, then (mostly) tries the
    /// old one; `false` if the change's outcome is unknown.
    async fn change(&mut self, rng: &mut StdRng) -> anyhow::Result<bool> {
        let (name, to) = (&self.user.name, self.next);
        self.next += 1;
        let op = Op::ChangePassword {
            user: name.to_string(),
            to,
        };
        // Her own change proves her current password (a right password
        // check: it resets her count of failures, as a login does).
        let call = self.user.client.change_own_password(
            password(name.as_str(), self.current),
            password(name.as_str(), to),
        );
        let (entry, _) = self
            .ctx
            .record(&self.lane, name, op, Class::Write, call, |_| Outcome::DONE)
            .await?;
        match entry.outcome {
            Outcome::Ok { .. } => {
                let old = self.current;
                self.current = to;
                // The change ended her session.
                self.signed_in = false;
                if rng.gen_bool(0.7) && !self.ctx.stopped() {
                    pace(self.ctx, rng).await;
                    // Must be refused: the revocation checker flags a
                    // success. It counts as a wrong password, and the next
                    // login (with the new one) resets the count.
                    let entry = login(self.ctx, &self.lane, self.user, old).await?;
                    if failure(&entry) == Some(&Failure::Locked) {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Outcome::Failed { .. } => {
                self.signed_in = false;
                Ok(true)
            }
            Outcome::Unknown => Ok(false),
        }
    }
}

/// Guesses wrong passwords for `user` (now and then its right one, which
/// resets the count) until it is locked, then tries its right one once
/// more.
async fn lock_out(ctx: &Ctx, user: &Account, rng: &mut StdRng) -> anyhow::Result<()> {
    let lane = Lane::default();
    // Wrong passwords checked since the last login that worked.
    let mut wrong = 0u32;
    for _ in 0..MAX_GUESSES {
        if ctx.stopped() {
            return Ok(());
        }
        let number = if wrong < 4 && rng.gen_bool(0.15) {
            0
        } else {
            WRONG_PASSWORD
        };
        let entry = login(ctx, &lane, user, number).await?;
        match (failure(&entry), number) {
            (Some(Failure::Locked), _) => {
                if !ctx.stopped() {
                    pace(ctx, rng).await;
                    // Must be refused: the lockout checker flags a success.
                    login(ctx, &lane, user, 0).await?;
                }
                return Ok(());
            }
            (None, WRONG_PASSWORD) if entry.outcome.is_ok() => bail!(
                "entry {}: {} logged in with a wrong password",
                entry.id,
                user.name
            ),
            (None, _) if entry.outcome.is_ok() => wrong = 0,
            (Some(Failure::BadPassword), WRONG_PASSWORD) => wrong += 1,
            (Some(Failure::BadPassword), _) => bail!(
                "entry {}: {} was refused the password it was created with",
                entry.id,
                user.name
            ),
            _ => {}
        }
        pace(ctx, rng).await;
    }
    Ok(())
}
