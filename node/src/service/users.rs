//! Logins, passwords and user management.

use std::sync::OnceLock;

use hsm_proto::client::{ClientError, ErrorKind, Reply, Secret, UserInfo};
use hsm_proto::{Actor, EventBody, RequestId, Role, Username};
use tokio::time::Instant;

use super::{blocking, now_ms, Ctx, Outcome, Service};
use crate::secrets::{check_password_policy, hash_password, session, verify_password};

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

fn login_failed() -> ClientError {
    ClientError::new(ErrorKind::LoginFailed, "wrong user name or password")
}

/// Checks a new password against the policy and hashes it on the blocking
/// pool.
async fn new_password_hash(password: Secret) -> Result<String, ClientError> {
    let text = password
        .expose_str()
        .ok_or_else(|| ClientError::invalid("a password must be UTF-8 text"))?;
    check_password_policy(text).map_err(|e| ClientError::invalid(e.to_string()))?;
    blocking(move || {
        let text = password.expose_str().unwrap_or_default();
        hash_password(text)
    })
    .await?
    .map_err(|e| ClientError::internal(e.to_string()))
}

impl Service {
    /// Verifies a password against this node's replica (brought up to date
    /// with the leader first) and issues a session token. A wrong password
    /// is recorded as a replicated event before the caller is answered, so
    /// the lockout after five failures holds on every node.
    pub(super) async fn login(
        &self,
        request_id: RequestId,
        username: Username,
        password: Secret,
        deadline: Instant,
    ) -> Outcome {
        let user = self.state(|s| s.user(&username).cloned());
        let Some(user) = user else {
            let _ = blocking(move || {
                verify_password(password.expose_str().unwrap_or(""), decoy_hash())
            })
            .await;
            return Err(login_failed());
        };
        if user.locked {
            return Err(ClientError::new(
                ErrorKind::Locked,
                format!("user {username} is locked after too many failed logins; a crypto officer must unlock it"),
            ));
        }
        let phc = user.password_hash.clone();
        let ok =
            blocking(move || verify_password(password.expose_str().unwrap_or(""), &phc)).await?;
        let me = Actor::Node(self.node);
        if !ok {
            self.write_as(
                request_id,
                me,
                EventBody::LoginFailed {
                    username: username.clone(),
                },
                deadline,
            )
            .await?;
            let locked = self.state(|s| s.user(&username).is_some_and(|u| u.locked));
            if locked {
                return Err(ClientError::new(
                    ErrorKind::Locked,
                    format!("wrong password; user {username} is now locked"),
                ));
            }
            return Err(login_failed());
        }
        if user.failed_logins > 0 {
            self.write_as(
                request_id,
                me,
                EventBody::LoginSucceeded {
                    username: username.clone(),
                },
                deadline,
            )
            .await?;
        }
        // Issue against the user as it is now (the count reset above does
        // not change its epoch).
        let user = self
            .state(|s| s.user(&username).cloned())
            .ok_or_else(login_failed)?;
        let claims = session::SessionClaims::new(&user, now_ms(), self.session_lifetime);
        let expires_ms = claims.expires_ms;
        let token = session::issue(&self.domain, &claims);
        tracing::info!(user = %username, "login");
        Ok(Reply::LoggedIn {
            token: Secret::new(token.as_bytes().to_vec()),
            username,
            role: user.role,
            expires_ms,
        })
    }

    pub(super) async fn change_password(
        &self,
        ctx: &Ctx,
        username: Username,
        new_password: Secret,
    ) -> Outcome {
        let password_hash = new_password_hash(new_password).await?;
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
        if exists {
            return Err(ClientError::new(
                ErrorKind::Conflict,
                format!("user {username} exists already"),
            ));
        }
        let password_hash = new_password_hash(password).await?;
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

    pub(super) fn list_users(&self) -> Reply {
        Reply::Users(self.state(|s| {
            s.users()
                .map(|u| UserInfo {
                    username: u.username.clone(),
                    role: u.role,
                    locked: u.locked,
                    failed_logins: u.failed_logins,
                })
                .collect()
        }))
    }
}
