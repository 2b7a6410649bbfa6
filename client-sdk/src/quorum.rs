//! Quorum approvals and second factors: typed methods for the operations
//! of client protocol 3.

use hsm_proto::client::{ErrorKind, Operation, QuorumReport, Reply, Secret};
use hsm_proto::quorum::{login_statement, Intent, Service, Token};
use hsm_proto::{Signature, TokenId, Username};

use crate::client::{Client, Session};
use crate::error::Result;
use crate::ops::{unexpected, LOGIN_TRIES};

impl Client {
    /// Logs in with a password and a second factor: asks the cluster for a
    /// challenge (a login attempt reserved for `username`), has `sign`
    /// sign its statement ([`login_statement`]) with the user's registered
    /// Ed25519 key, and logs in with both. A wrong password or signature
    /// is a failed login, counted toward the lockout. Works for users
    /// without a second factor too (the signature is then not looked at).
    /// Needs nodes that speak client protocol 3.
    ///
    /// # Errors
    /// As [`Client::login`].
    pub async fn login_mfa(
        &self,
        username: Username,
        password: impl Into<Secret>,
        sign: impl Fn(&[u8]) -> Signature,
    ) -> Result<Session> {
        let password = password.into();
        let mut tries = 0;
        loop {
            tries += 1;
            let challenge = Operation::LoginChallenge {
                username: username.clone(),
            };
            let (cluster_id, reservation, at_ms) = match self.call(challenge).await? {
                Reply::LoginChallenge {
                    cluster_id,
                    reservation,
                    reserved_at_ms,
                } => (cluster_id, reservation, reserved_at_ms),
                other => return Err(unexpected("login-challenge", "login-challenge", &other)),
            };
            let signature = sign(&login_statement(cluster_id, &username, reservation, at_ms));
            let op = Operation::LoginMfa {
                username: username.clone(),
                password: password.clone(),
                reservation,
                signature,
            };
            match self.call(op).await {
                Err(e) if e.kind() == Some(ErrorKind::Conflict) && tries < LOGIN_TRIES => {}
                Err(e) => return Err(e),
                Ok(Reply::LoggedIn {
                    token,
                    username,
                    role,
                    expires_ms,
                }) => {
                    self.set_session(Some(token));
                    return Ok(Session {
                        username,
                        role,
                        expires_ms,
                    });
                }
                Ok(other) => return Err(unexpected("login-mfa", "logged-in", &other)),
            }
        }
    }

    /// Sets or changes (`Some`, a raw Ed25519 public key) or clears
    /// (`None`) the logged-in user's second factor, proving the current
    /// password (counted as a login attempt). From then on the user logs
    /// in with [`Client::login_mfa`].
    ///
    /// # Errors
    /// As [`Client::change_own_password`].
    pub async fn set_own_mfa(
        &self,
        current_password: impl Into<Secret>,
        key: Option<[u8; 32]>,
    ) -> Result<()> {
        self.done(Operation::SetOwnMfa {
            current_password: current_password.into(),
            key,
        })
        .await
    }

    /// Clears another user's second factor (crypto officer; under the
    /// user service's quorum).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn reset_mfa(&self, username: Username) -> Result<()> {
        self.done(Operation::ResetMfa { username }).await
    }

    /// Sets (`Some`, a raw Ed25519 public key) or clears the logged-in
    /// officer's own approval key, proving its current password (counted
    /// as a login attempt); the first one needs nothing more, a change the
    /// approvals of the largest quorum value.
    ///
    /// # Errors
    /// As [`Client::change_own_password`].
    pub async fn set_own_approval_key(
        &self,
        username: Username,
        current_password: impl Into<Secret>,
        key: Option<[u8; 32]>,
    ) -> Result<()> {
        self.done(Operation::SetApprovalKey {
            username,
            key,
            current_password: Some(current_password.into()),
        })
        .await
    }

    /// Sets or clears another officer's approval key (under the largest
    /// quorum value).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn set_approval_key(&self, username: Username, key: Option<[u8; 32]>) -> Result<()> {
        self.done(Operation::SetApprovalKey {
            username,
            key,
            current_password: None,
        })
        .await
    }

    /// Asks for a quorum token for `intent` (crypto officer): the token,
    /// the bytes its approvers sign, and how many approvals it needs.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn generate_quorum_token(&self, intent: Intent) -> Result<(Token, Vec<u8>, u8)> {
        self.token(Operation::GenerateQuorumToken { intent }).await
    }

    /// Hands in `approver`'s signature over a token's statement; returns
    /// the token with its approvals (and its statement and need).
    ///
    /// # Errors
    /// As [`Client::call`]; `PermissionDenied` for an approval that does
    /// not verify with the approver's registered key.
    pub async fn approve_quorum_token(
        &self,
        token: TokenId,
        approver: Username,
        signature: Signature,
    ) -> Result<(Token, Vec<u8>, u8)> {
        self.token(Operation::ApproveQuorumToken {
            token,
            approver,
            signature,
        })
        .await
    }

    /// Deletes one of one's own tokens.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn delete_quorum_token(&self, token: TokenId) -> Result<()> {
        self.done(Operation::DeleteQuorumToken { token }).await
    }

    /// Sets a service's quorum value (under the quorum service's own).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn set_quorum_value(&self, service: Service, value: u8) -> Result<()> {
        self.done(Operation::SetQuorumValue { service, value })
            .await
    }

    /// Quorum values, approvers, users with a second factor, and tokens.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn quorum_status(&self) -> Result<QuorumReport> {
        match self.call(Operation::QuorumStatus).await? {
            Reply::Quorum(report) => Ok(report),
            other => Err(unexpected("quorum-status", "quorum", &other)),
        }
    }

    async fn token(&self, op: Operation) -> Result<(Token, Vec<u8>, u8)> {
        let name = op.name();
        match self.call(op).await? {
            Reply::QuorumToken {
                token,
                statement,
                needed,
            } => Ok((token, statement, needed)),
            other => Err(unexpected(name, "quorum-token", &other)),
        }
    }
}
