//! Logins, passwords and user management.

use std::sync::OnceLock;

use hsm_proto::client::{ClientError, ErrorKind, Reply, Secret, UserInfo, MAX_PAGE};
use hsm_proto::{Actor, EventBody, Rejection, RequestId, Role, Username};
use tokio::time::Instant;

use super::{Attempt, Ctx, Outcome, Service, LOGIN_OUTCOME_DEADLINE};
use hsm_state::{LoginOutcome, User};

use crate::cluster_time::ClusterTime;
use crate::secrets::{
    check_password_policy, hash_password, hash_request_password, session, verify_password,
};

/// A real Argon2id hash of a random password, checked when a login names
/// no user, so that answer takes as long as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let mut bytes = [0u8; 24];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        let password: String = bytes.iter().map(|b| char::from(b'a' + b % 26)).collect();
        hash_password(&password).unwrap_or_default()
    })
}

fn locked_error(username: &Username) -> ClientError {
    ClientError::new(
        ErrorKind::Locked,
        format!(
            "user {username} is locked after too many failed logins; a crypto officer must unlock it \
             (or, with no officer left, an operator on a member's host: hsm-node unlock-user)"
        ),
    )
}

/// A fresh id for an event the node writes on its own behalf (an
/// operator's unlock, the check of the current password in one's own
/// change): never a client's id, which a client could send again. (A
/// login's reservation is the client's id: a copy is the same attempt.)
fn random_request_id() -> RequestId {
    let mut id = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
    RequestId(id)
}

fn login_failed() -> ClientError {
    ClientError::new(ErrorKind::LoginFailed, "wrong user name or password")
}

/// The answer to a copy of a login (its request id) whose attempt let its
/// user in, when this copy's own check is not what was recorded (another
/// copy's was, or the writer's retry of this one found it written):
/// whatever password the copy carries.
fn answered_already() -> ClientError {
    ClientError::new(
        ErrorKind::Conflict,
        "this login was answered already; log in again under a new request id",
    )
}

/// The answer when a checked password's outcome was not recorded,
/// whatever the check said.
fn not_recorded(username: &Username) -> ClientError {
    ClientError::unavailable(format!(
        "the password check of user {username} could not be recorded in time; try again"
    ))
}

/// A password checked under a login reservation, its outcome not yet
/// recorded.
struct PasswordCheck {
    /// The reservation (the `LoginFailed` write's request id).
    reservation: RequestId,
    /// The account as it was checked.
    user: User,
    /// Whether the password was right.
    right: bool,
}

impl Service {
    /// Unlocks `username` for the operator of this node's host (the
    /// operator socket, [`crate::operator`]), as [`Actor::Operator`]: the
    /// state machine allows that actor nothing else.
    ///
    /// # Errors
    /// When the user is unknown or not locked, or no leader applied the
    /// unlock within `timeout`.
    pub async fn unlock_for_operator(
        &self,
        username: Username,
        timeout: std::time::Duration,
    ) -> Result<(), ClientError> {
        self.write_as(
            random_request_id(),
            Actor::Operator(self.node),
            None,
            EventBody::UserUnlocked { username },
            Instant::now() + timeout,
        )
        .await
        .map(|_| ())
    }

    /// Checks the new password request `ctx` sets for `username` against
    /// the policy and hashes it, if an Argon2 slot is free before the
    /// request's deadline: alike for every attempt of the request
    /// ([`hash_request_password`]), so the state machine answers a retry
    /// as one and refuses another password under the same id.
    async fn new_password_hash(
        &self,
        ctx: &Ctx,
        username: &Username,
        password: Secret,
    ) -> Result<String, ClientError> {
        let text = password
            .expose_str()
            .ok_or_else(|| ClientError::invalid("a password must be UTF-8 text"))?;
        check_password_policy(text).map_err(|e| ClientError::invalid(e.to_string()))?;
        let (username, request_id) = (username.clone(), ctx.request_id);
        self.argon2(ctx.deadline, move || {
            let text = password.expose_str().unwrap_or_default();
            hash_request_password(text, &username, request_id)
        })
        .await?
        .map_err(|e| ClientError::internal(e.to_string()))
    }

    /// Logs a user in. The attempt is first recorded as a failure through
    /// Raft (a reservation, named by the request's id); only then is the
    /// password checked (if an Argon2 slot is free within the request's
    /// deadline), and its outcome recorded with a deadline of its own
    /// ([`LOGIN_OUTCOME_DEADLINE`]), under the attempt's outcome id
    /// ([`hsm_state::login_outcome_id`]): a wrong password stays a failure,
    /// a right one clears the count. So at most five guesses are ever
    /// answered per lockout, however many arrive at once on however many
    /// nodes.
    ///
    /// The answer is always the attempt's recorded outcome
    /// ([`hsm_state::State::login_outcome`]), never this check's alone. A
    /// copy of the request (the client's retry, through any node, or a late
    /// one) is the same attempt: its reservation is the first one, and one
    /// outcome is recorded for all copies, so one attempt resets the count
    /// once, before any copy is answered. A copy that finds a wrong or
    /// refused outcome is answered with it without a check; one that finds
    /// the attempt let its user in is answered `conflict` without a check
    /// (the client logs in again under a new id); one that finds no
    /// outcome checks its password and records its outcome, and tells what
    /// its check found only if its own write recorded it; otherwise (another
    /// copy's did first, or its writer's retry found its own first try
    /// written) it gets the attempt's outcome as a later copy does: a
    /// wrong one told, a right one `conflict`, and if none could be
    /// recorded (the reservation expired, was voided by an unlock or a
    /// password change) `unavailable`, whatever its check said. So
    /// no answer is told of a password whose check
    /// was not counted, and the reservation expires
    /// ([`hsm_state::LOGIN_RESERVATION_TTL_MS`]) instead of holding the
    /// user back for good. The token is issued for the account exactly as
    /// it was checked, at the cluster's time `time` (the leader's clock).
    ///
    /// A user with a second factor logs in only with it
    /// ([`Operation::LoginMfa`](hsm_proto::client::Operation::LoginMfa)):
    /// a plain login is refused before anything is reserved or checked,
    /// and a wrong signature is a wrong answer like a wrong password
    /// (`hsm_state`'s `State::second_factor_passes` decides).
    pub(super) async fn login(
        &self,
        attempt: Attempt,
        username: Username,
        password: Secret,
        time: ClusterTime,
        deadline: Instant,
    ) -> Outcome {
        let Attempt {
            reservation: request_id,
            second_factor,
        } = attempt;
        if second_factor.is_none() && self.state(|s| s.needs_second_factor(&username)) {
            return Err(ClientError::new(
                ErrorKind::LoginFailed,
                format!(
                    "user {username} logs in with a second factor: `hsm login --mfa-key FILE` \
                     (client protocol 3)"
                ),
            ));
        }
        let Some(user) = self
            .reserve_check(&username, &password, request_id, time.now_ms(), deadline)
            .await?
        else {
            return Err(login_failed());
        };
        // Whether this copy's check is the attempt's recorded outcome (its
        // own write recorded it): only then may the answer tell what the
        // check found. Every other copy is answered with the attempt's
        // outcome, whatever password it carries.
        let (right, recorded_here) = match self.state(|s| s.login_outcome(request_id, &user)) {
            None => {
                let right = self.password_is(&user, password, deadline).await?
                    && self.state(|s| {
                        s.second_factor_passes(&username, request_id, second_factor.as_ref())
                    });
                let check = PasswordCheck {
                    reservation: request_id,
                    user: user.clone(),
                    right,
                };
                let here = matches!(self.record_check(&username, &check).await, Ok(true));
                (right, here)
            }
            // A copy of an attempt that let its user in is not checked (its
            // check would be an uncounted answer to whoever learnt the id)
            // and records nothing (a copy the client gave up on must not
            // reset the count after the client's answer): the client logs
            // in again under a new id, as the SDK does on this answer.
            Some(LoginOutcome::Right) => return Err(answered_already()),
            Some(LoginOutcome::Wrong | LoginOutcome::Refused) => (false, false),
        };
        match self.state(|s| s.login_outcome(request_id, &user)) {
            None | Some(LoginOutcome::Refused) => return Err(not_recorded(&username)),
            Some(LoginOutcome::Wrong) => {
                return Err(self.wrong_password(&username, "wrong user name or password"))
            }
            Some(LoginOutcome::Right) if !(right && recorded_here) => {
                return Err(answered_already())
            }
            Some(LoginOutcome::Right) => {}
        }
        // Issue only for the account as it was checked: a password change,
        // a re-creation or a lock in the meantime voids this login.
        let checked = user;
        let now = self.state(|s| s.user(&username).cloned());
        let unchanged = now.as_ref().is_some_and(|u| {
            u.password_epoch == checked.password_epoch
                && u.created_ms == checked.created_ms
                && u.password_hash == checked.password_hash
                && u.role == checked.role
                && !u.is_locked()
        });
        if !unchanged {
            return Err(ClientError::new(
                ErrorKind::LoginFailed,
                "the account changed during login; try again",
            ));
        }
        let claims = session::SessionClaims::new(&checked, time.now_ms(), self.session_lifetime);
        let expires_ms = claims.expires_ms;
        let token = session::issue(&*self.domain_key(None)?, &claims);
        tracing::info!(user = %username, "login");
        Ok(Reply::LoggedIn {
            token: Secret::new(token.as_bytes().to_vec()),
            username,
            role: checked.role,
            expires_ms,
        })
    }

    /// Checks `username`'s password as a login does, counted toward the
    /// lockout ([`Service::reserve_check`], then [`Service::password_is`]),
    /// under a reservation of its own. `None` for a user that does not
    /// exist. The caller records the outcome before it answers.
    async fn check_password(
        &self,
        username: &Username,
        password: Secret,
        time: ClusterTime,
        deadline: Instant,
    ) -> Result<Option<PasswordCheck>, ClientError> {
        let reservation = random_request_id();
        let Some(user) = self
            .reserve_check(username, &password, reservation, time.now_ms(), deadline)
            .await?
        else {
            return Ok(None);
        };
        let right = self.password_is(&user, password, deadline).await?;
        Ok(Some(PasswordCheck {
            reservation,
            user,
            right,
        }))
    }

    /// [`Service::check_password`] of the caller's own password, which it
    /// proves to change its own credentials.
    async fn check_own_password(
        &self,
        ctx: &Ctx,
        current: Secret,
    ) -> Result<PasswordCheck, ClientError> {
        let username = &ctx.caller.username;
        self.check_password(username, current, ctx.time, ctx.deadline)
            .await?
            .ok_or_else(|| {
                ClientError::new(
                    ErrorKind::Unauthenticated,
                    format!("user {username} no longer exists"),
                )
            })
    }

    /// Reserves a check of `username`'s password through Raft, as
    /// `reservation` (so at most five wrong answers between resets,
    /// whatever arrives where; a reservation made already is the same
    /// attempt), and returns the account as it is once reserved. `None`
    /// for a user that does not exist, after a decoy check of `password`
    /// that takes as long as a real one.
    async fn reserve_check(
        &self,
        username: &Username,
        password: &Secret,
        reservation: RequestId,
        now_ms: u64,
        deadline: Instant,
    ) -> Result<Option<User>, ClientError> {
        let reserved = self
            .reserve_attempt(username, reservation, now_ms, deadline)
            .await?;
        if reserved.is_none() {
            let password = password.clone();
            let _ = self
                .argon2(deadline, move || {
                    verify_password(password.expose_str().unwrap_or(""), decoy_hash())
                })
                .await?;
        }
        Ok(reserved)
    }

    /// Reserves a login attempt of `username` through Raft, as
    /// `reservation`, and returns the account as it is once reserved;
    /// `None` for a user that does not exist (nothing is reserved).
    async fn reserve_attempt(
        &self,
        username: &Username,
        reservation: RequestId,
        now_ms: u64,
        deadline: Instant,
    ) -> Result<Option<User>, ClientError> {
        // The replica is caught up (the request passed the read barrier):
        // a new attempt against a locked user, or one at the limit with
        // attempts in progress, is refused here, without a Raft entry, so
        // guesses against it cost the cluster nothing and push no
        // remembered outcome out. (`apply` refuses the attempt anyway.) A
        // copy of an attempt already reserved is not held back by the
        // attempts in progress, one of which is its own: its write is
        // answered as the attempt's.
        let reserve = EventBody::LoginFailed {
            username: username.clone(),
        };
        let (known, refused) = self.state(|s| {
            let new = s
                .same_request(reservation, &Actor::Node(self.node), &reserve)
                .is_none();
            s.user(username).map_or((false, None), |u| {
                let refused = u
                    .refuses_new_attempt(now_ms)
                    .filter(|r| new || matches!(r, Rejection::Locked(_)));
                (true, refused)
            })
        });
        match refused {
            Some(Rejection::Locked(_)) => return Err(locked_error(username)),
            Some(rejection) => return Err(rejection.into()),
            None => {}
        }
        if !known {
            return Ok(None);
        }
        let reserved = self
            .write_as(reservation, Actor::Node(self.node), None, reserve, deadline)
            .await;
        match reserved {
            Ok(_) => {}
            Err(e) if e.kind == ErrorKind::Locked => return Err(locked_error(username)),
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
        let Some(user) = self.state(|s| s.user(username).cloned()) else {
            return Ok(None);
        };
        if user.is_locked() {
            return Err(locked_error(username));
        }
        Ok(Some(user))
    }

    /// Whether `password` is `user`'s, checked in an Argon2 slot if one is
    /// free before `deadline`.
    async fn password_is(
        &self,
        user: &User,
        password: Secret,
        deadline: Instant,
    ) -> Result<bool, ClientError> {
        let phc = user.password_hash.clone();
        self.argon2(deadline, move || {
            verify_password(password.expose_str().unwrap_or(""), &phc)
        })
        .await
    }

    /// Records a checked password's outcome (`check` names the
    /// reservation) with its own deadline, under the attempt's outcome id:
    /// `true` when this write recorded it, `false` when the write found it
    /// recorded already (by another copy of the attempt, or by its own
    /// first try that timed out). The caller then answers with what is
    /// recorded, never with its check: an outcome not recorded is
    /// `unavailable`, whatever the check said.
    async fn record_check(
        &self,
        username: &Username,
        check: &PasswordCheck,
    ) -> Result<bool, ClientError> {
        let outcome = if check.right {
            EventBody::LoginSucceeded {
                username: username.clone(),
                reservation: check.reservation,
            }
        } else {
            EventBody::LoginRejected {
                username: username.clone(),
                reservation: check.reservation,
            }
        };
        let recorded = self
            .write_applied(
                hsm_state::login_outcome_id(check.reservation, &check.user),
                Actor::Node(self.node),
                None,
                outcome,
                Instant::now() + LOGIN_OUTCOME_DEADLINE,
            )
            .await;
        recorded.map(|(_, replayed)| !replayed).map_err(|e| {
            tracing::debug!(user = %username, error = %e, "password check outcome not recorded");
            not_recorded(username)
        })
    }

    /// The answer to a wrong password whose failure is recorded: `locked`
    /// if that failure locked the user.
    fn wrong_password(&self, username: &Username, message: &str) -> ClientError {
        let now_locked = self.state(|s| s.user(username).is_some_and(User::is_locked));
        if now_locked {
            ClientError::new(
                ErrorKind::Locked,
                format!("wrong password; user {username} is now locked"),
            )
        } else {
            ClientError::new(ErrorKind::LoginFailed, message)
        }
    }

    /// Starts a login with a second factor: reserves the attempt under
    /// `request_id` (counted as a failure until its outcome, as any
    /// login's) and answers it as the challenge the user signs. A user
    /// that does not exist gets a challenge too, and nothing is reserved
    /// (its login then fails as a wrong password does).
    pub(super) async fn login_challenge(
        &self,
        request_id: RequestId,
        username: Username,
        time: ClusterTime,
        deadline: Instant,
    ) -> Outcome {
        let cluster_id = self
            .state(|s| s.cluster().map(|c| c.cluster_id))
            .ok_or_else(|| ClientError::unavailable("the cluster is not initialized"))?;
        let user = self
            .reserve_attempt(&username, request_id, time.now_ms(), deadline)
            .await?;
        let reserved_at_ms = user
            .and_then(|u| {
                u.reservations
                    .iter()
                    .find(|r| r.id == request_id)
                    .map(|r| r.at_ms)
            })
            .unwrap_or_else(|| time.now_ms());
        Ok(Reply::LoginChallenge {
            cluster_id,
            reservation: request_id,
            reserved_at_ms,
        })
    }

    /// Sets, changes or clears the caller's own second factor, its
    /// current password checked and counted as a login attempt, as
    /// [`Service::change_own_password`] does.
    pub(super) async fn set_own_mfa(
        &self,
        ctx: &Ctx,
        current: Secret,
        key: Option<[u8; 32]>,
    ) -> Outcome {
        let username = ctx.caller.username.clone();
        if key.is_some_and(|k| !hsm_state::quorum::is_usable_key(&k)) {
            // Refused before the password is checked: the change would be.
            return Err(Rejection::WeakPublicKey(username).into());
        }
        self.with_own_password(ctx, current, |reservation| EventBody::MfaKeySet {
            username: username.clone(),
            key,
            reservation: Some(reservation),
        })
        .await
    }

    /// Writes the change `change(reservation)` of the caller's own
    /// credentials once its current password is checked under
    /// `reservation` (counted as a login attempt: a wrong one is a failed
    /// login, and the change then takes nothing). A retry of a decided
    /// request gets its first outcome.
    pub(super) async fn with_own_password(
        &self,
        ctx: &Ctx,
        current: Secret,
        change: impl Fn(RequestId) -> EventBody,
    ) -> Outcome {
        let username = ctx.caller.username.clone();
        if self.remembered(ctx.request_id) {
            return self.write_done(ctx, change(RequestId([0; 16]))).await;
        }
        // A change the cluster cannot take yet (its Raft protocol is older
        // than the change's) is refused before the password is checked: a
        // check whose change is then refused stays counted as a failure
        // until its reservation expires, and the client's retries would
        // pile those up and lock the user out of logging in meanwhile.
        let (needs, cluster) = (
            change(RequestId([0; 16])).since(),
            self.state(hsm_state::State::protocol),
        );
        if needs > cluster {
            return Err(Rejection::NeedsProtocol { needs, cluster }.into());
        }
        let check = self.check_own_password(ctx, current).await?;
        if !check.right {
            let _recorded = self.record_check(&username, &check).await?;
            return Err(self.wrong_password(&username, "wrong current password"));
        }
        self.write_as(
            ctx.request_id,
            Actor::User(username.clone()),
            Some(&ctx.session),
            change(check.reservation),
            Instant::now() + LOGIN_OUTCOME_DEADLINE,
        )
        .await
        .map_err(|e| {
            tracing::debug!(user = %username, error = %e, "own credentials change not applied");
            if e.kind == ErrorKind::Unavailable {
                not_recorded(&username)
            } else {
                e
            }
        })?;
        Ok(Reply::Done)
    }

    /// Changes the caller's own password, its current one checked and
    /// counted as a login attempt ([`Service::check_password`]): a wrong
    /// current password is a failed login (the fifth locks the user), a
    /// right one lets the change take the reservation, so a stolen session
    /// token alone can neither set a password nor guess one beyond the
    /// lockout. The new password is checked against the policy and hashed
    /// before anything is reserved.
    pub(super) async fn change_own_password(
        &self,
        ctx: &Ctx,
        current: Secret,
        new_password: Secret,
    ) -> Outcome {
        let username = ctx.caller.username.clone();
        let change = |password_hash: String, reservation| EventBody::OwnPasswordChanged {
            username: username.clone(),
            password_hash,
            reservation,
        };
        if self.remembered(ctx.request_id) {
            // A retry whose first attempt was decided: its first outcome,
            // whatever new password it carries. The fingerprint leaves the
            // hash and the reservation out (telling another password apart
            // would answer guesses at the one set without counting them),
            // and a body with neither can only be replayed, never applied.
            return self
                .write_done(ctx, change(String::new(), RequestId([0; 16])))
                .await;
        }
        let password_hash = self.new_password_hash(ctx, &username, new_password).await?;
        let check = self.check_own_password(ctx, current).await?;
        if !check.right {
            // A reservation of its own: recorded by this write.
            let _recorded = self.record_check(&username, &check).await?;
            // Another copy of this very request (a client's retry through
            // another node) may have changed the password after this copy
            // looked for its id above: then that change is the answer, not
            // this check of the password it replaced.
            let actor = Actor::User(username.clone());
            let blank = change(String::new(), RequestId([0; 16]));
            if let Some(first) = self.state(|s| s.outcome_of(ctx.request_id, &actor, &blank)) {
                return first.map(|()| Reply::Done).map_err(ClientError::from);
            }
            return Err(self.wrong_password(&username, "wrong current password"));
        }
        // The change is the right answer's outcome: written with the same
        // deadline as any outcome, and when it is not applied the answer is
        // the one a wrong password gets when its outcome is not recorded,
        // so a guess learns nothing from it (the reservation then expires,
        // counted as a failure meanwhile, as an unrecorded wrong one is).
        let written = self
            .write_as(
                ctx.request_id,
                Actor::User(username.clone()),
                Some(&ctx.session),
                change(password_hash, check.reservation),
                Instant::now() + LOGIN_OUTCOME_DEADLINE,
            )
            .await;
        written.map_err(|e| {
            tracing::debug!(user = %username, error = %e, "own password change not applied");
            not_recorded(&username)
        })?;
        Ok(Reply::Done)
    }

    /// Changes another user's password (a crypto officer's action). One's
    /// own name is refused before any work, by the state's own rule
    /// ([`Service::change_own_password`] is the way).
    pub(super) async fn change_password(
        &self,
        ctx: &Ctx,
        username: Username,
        new_password: Secret,
    ) -> Outcome {
        hsm_state::authz::check_password_reset(&ctx.caller.username, &username)
            .map_err(ClientError::from)?;
        let password_hash = self.new_password_hash(ctx, &username, new_password).await?;
        self.write(
            ctx,
            EventBody::PasswordChanged {
                username,
                password_hash,
            },
        )
        .await?;
        Ok(Reply::Done)
    }

    pub(super) async fn create_user(
        &self,
        ctx: &Ctx,
        username: Username,
        role: Role,
        password: Secret,
    ) -> Outcome {
        if role == Role::Preco {
            return Err(ClientError::invalid(
                "the precrypto officer exists only before activation; choose admin, crypto-user or appliance-user",
            ));
        }
        let exists = self.state(|s| s.user(&username).is_some());
        if exists && !self.remembered(ctx.request_id) {
            return Err(ClientError::new(
                ErrorKind::Conflict,
                format!("user {username} exists already"),
            ));
        }
        let password_hash = self.new_password_hash(ctx, &username, password).await?;
        self.write(
            ctx,
            EventBody::UserCreated {
                username,
                role,
                password_hash,
            },
        )
        .await?;
        Ok(Reply::Done)
    }

    /// Every user, its failed logins counted at the cluster's time
    /// `now_ms` (expired reservations no longer count).
    pub(super) fn list_users(&self, now_ms: u64, after: Option<&Username>, limit: u32) -> Reply {
        let limit = limit.min(MAX_PAGE) as usize;
        let page = self.state(|s| {
            s.user_page(after, limit, limit, |u| {
                Some(UserInfo {
                    username: u.username.clone(),
                    role: u.role,
                    locked: u.is_locked(),
                    failed_logins: u.failed_logins(now_ms),
                })
            })
        });
        Reply::Users {
            users: page.items,
            next: page.next,
        }
    }
}
