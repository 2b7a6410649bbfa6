//! Quorum tokens, approvals, approval keys and quorum values: thin
//! writes; every rule is `hsm_state`'s (`quorum` and its apply).

use hsm_proto::client::{ClientError, QuorumReport, Reply, Secret};
use hsm_proto::quorum::{Intent, Service as QuorumService};
use hsm_proto::{EventBody, Signature, TokenId, Username};

use super::{Ctx, Outcome, Service};

impl Service {
    /// Asks for a token for `intent`: its id is the request's id, so a
    /// retry answers with the same token.
    pub(super) async fn generate_quorum_token(&self, ctx: &Ctx, intent: Intent) -> Outcome {
        self.write(ctx, EventBody::QuorumTokenIssued { intent })
            .await?;
        self.token_reply(TokenId(ctx.request_id.0))
    }

    /// Records `approver`'s signature over a token's statement.
    pub(super) async fn approve_quorum_token(
        &self,
        ctx: &Ctx,
        token: TokenId,
        approver: Username,
        signature: Signature,
    ) -> Outcome {
        self.write(
            ctx,
            EventBody::QuorumApproved {
                token,
                approver,
                signature,
            },
        )
        .await?;
        self.token_reply(token)
    }

    /// Sets or clears an approval key: another officer's as one write
    /// (under the largest quorum value), one's own with the current
    /// password checked first, counted as a login attempt.
    pub(super) async fn set_approval_key(
        &self,
        ctx: &Ctx,
        username: Username,
        key: Option<[u8; 32]>,
        current_password: Option<Secret>,
    ) -> Outcome {
        if username != ctx.caller.username {
            if current_password.is_some() {
                return Err(ClientError::invalid(
                    "a password is given only for one's own approval key",
                ));
            }
            let body = EventBody::ApprovalKeySet {
                username,
                key,
                reservation: None,
            };
            return self.write_done(ctx, body).await;
        }
        let current = current_password
            .ok_or_else(|| ClientError::from(hsm_proto::Rejection::CurrentPasswordNeeded))?;
        self.with_own_password(ctx, current, |reservation| EventBody::ApprovalKeySet {
            username: username.clone(),
            key,
            reservation: Some(reservation),
        })
        .await
    }

    pub(super) async fn set_quorum_value(
        &self,
        ctx: &Ctx,
        service: QuorumService,
        value: u8,
    ) -> Outcome {
        self.write_done(ctx, EventBody::QuorumValueSet { service, value })
            .await
    }

    pub(super) async fn delete_quorum_token(&self, ctx: &Ctx, token: TokenId) -> Outcome {
        self.write_done(ctx, EventBody::QuorumTokenDeleted { token })
            .await
    }

    /// Clears another user's second factor.
    pub(super) async fn reset_mfa(&self, ctx: &Ctx, username: Username) -> Outcome {
        let body = EventBody::MfaKeySet {
            username,
            key: None,
            reservation: None,
        };
        self.write_done(ctx, body).await
    }

    /// Quorum values, approvers, second factors and tokens.
    pub(super) fn quorum_status(&self) -> Outcome {
        self.state(|s| {
            let cluster_id = s
                .cluster()
                .map(|c| c.cluster_id)
                .ok_or_else(|| ClientError::unavailable("the cluster is not initialized"))?;
            Ok(Reply::Quorum(QuorumReport {
                cluster_id,
                values: QuorumService::ALL
                    .into_iter()
                    .map(|svc| (svc, s.quorum_value(svc)))
                    .collect(),
                approvers: s.approvers().map(|(u, k)| (u.clone(), k)).collect(),
                mfa_users: s.mfa_users().cloned().collect(),
                tokens: s.tokens().cloned().collect(),
            }))
        })
    }

    fn token_reply(&self, id: TokenId) -> Outcome {
        self.state(|s| {
            let cluster = s.cluster().map(|c| c.cluster_id);
            match (s.token(id), cluster) {
                (Some(token), Some(cluster)) => Ok(Reply::QuorumToken {
                    statement: token.statement(cluster),
                    needed: s.approvals_needed(&token.intent),
                    token: token.clone(),
                }),
                _ => Err(ClientError::not_found(format!(
                    "quorum token {id} is gone (used, deleted or pruned after expiry)"
                ))),
            }
        })
    }
}
