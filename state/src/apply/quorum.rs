//! The rules of quorum approvals, approval keys and second factors
//! (`crate::quorum` has the pure checks they use).

use hsm_proto::quorum::{
    Approval, Intent, Token, MAX_QUORUM, MAX_TOKENS_PER_OFFICER, TOKEN_LIFETIME_MS,
};
use hsm_proto::{
    Actor, ApprovalDefect, Attempt, EventBody, QuorumDefect, Rejection, Role, TokenId, Username,
};

use super::{allow, take_reservation, Rule, Tx};
use crate::authz::Action;
use crate::entity::EntityKey;
use crate::quorum::{intent_of, is_usable_key, verifies, Credentials};

impl Tx<'_> {
    /// The token that approves `body`, when `actor` is a crypto officer
    /// and a quorum value above 1 guards what it asks for; `None` when no
    /// quorum applies. Checked before the event's own rules, and the token
    /// is used up only if they accept it.
    ///
    /// # Errors
    /// [`Rejection::QuorumNeeded`] without a live token of the officer for
    /// exactly this operation that enough officers approved;
    /// [`Rejection::TokenExpired`] when the only such tokens expired.
    pub(super) fn quorum_gate(
        &self,
        actor: &Actor,
        body: &EventBody,
    ) -> Result<Option<TokenId>, Rejection> {
        let Actor::User(me) = actor else {
            return Ok(None);
        };
        let is_officer = self
            .state
            .users
            .get(me)
            .is_some_and(|u| u.role == Role::Co && !u.is_locked());
        let Some(intent) = intent_of(body, me).filter(|_| is_officer) else {
            // Anyone else is refused by the event's own rules.
            return Ok(None);
        };
        if self.is_first_own_approval_key(me, &intent) {
            return Ok(None);
        }
        let needed = self.state.approvals_needed(&intent);
        if needed <= 1 {
            return Ok(None);
        }
        let mut best = 0;
        let mut expired = None;
        for token in self
            .state
            .tokens
            .values()
            .filter(|t| t.initiator == *me && t.intent == intent)
        {
            if token.expires_ms < self.now_ms {
                expired = Some(token.id);
                continue;
            }
            let approved = self.state.valid_approvals(token);
            if approved >= needed {
                return Ok(Some(token.id));
            }
            best = best.max(approved);
        }
        match expired {
            Some(id) if best == 0 => Err(Rejection::TokenExpired(id)),
            _ => Err(Rejection::QuorumNeeded {
                intent: Box::new(intent),
                needed,
                approved: best,
            }),
        }
    }

    /// An officer registering its first approval key: needs no approval
    /// (it could not approve anything before); its password is checked by
    /// the event's own rule.
    fn is_first_own_approval_key(&self, me: &Username, intent: &Intent) -> bool {
        matches!(intent, Intent::SetApprovalKey { username, key: Some(_) }
            if username == me
                && self.state.credentials.get(me).and_then(|c| c.approval_key).is_none())
    }

    /// `username`'s record once the check of its current password,
    /// reserved as a login attempt under `reservation`, is recorded as a
    /// right answer (as a `LoginSucceeded` would): the reservation taken,
    /// the failures cleared. An expired or unknown reservation refuses the
    /// change.
    fn password_checked(
        &self,
        username: &Username,
        reservation: hsm_proto::RequestId,
    ) -> Result<crate::records::User, Rejection> {
        let mut user = self.current_user(username)?;
        take_reservation(&mut user, reservation)?;
        user.failures = 0;
        Ok(user)
    }

    /// Uses up the token that approved an applied event.
    pub(super) fn use_token(&mut self, token: TokenId) {
        if self.state.tokens.remove(&token).is_some() {
            self.changed.insert(EntityKey::Token(token));
        }
    }

    /// The rules of the quorum and second-factor events; `None` for any
    /// other event.
    pub(super) fn quorum_rules(
        &mut self,
        me: &Username,
        role: Role,
        body: &EventBody,
    ) -> Option<Rule> {
        Some(match body {
            EventBody::ApprovalKeySet {
                username,
                key,
                reservation,
            } => self.set_approval_key(me, role, username, *key, *reservation),
            EventBody::MfaKeySet {
                username,
                key,
                reservation,
            } => self.set_mfa_key(me, role, username, *key, *reservation),
            EventBody::QuorumTokenIssued { intent } => self.issue_token(me, role, intent),
            EventBody::QuorumApproved {
                token,
                approver,
                signature,
            } => self.approve(role, *token, approver, signature),
            EventBody::QuorumTokenDeleted { token } => self.delete_token(me, role, *token),
            EventBody::QuorumValueSet { service, value } => {
                self.set_quorum_value(role, *service, *value)
            }
            _ => return None,
        })
    }

    fn set_approval_key(
        &mut self,
        me: &Username,
        role: Role,
        username: &Username,
        key: Option<[u8; 32]>,
        reservation: Option<hsm_proto::RequestId>,
    ) -> Rule {
        allow(role, Action::ManageQuorum)?;
        // One's own only with the current password checked, so a stolen
        // session cannot make its thief an approver; another's never with
        // a check (there is none to take).
        match (username == me, reservation) {
            (true, None) => return Err(Rejection::CurrentPasswordNeeded),
            (false, Some(_)) => {
                return Err(Rejection::Denied {
                    role,
                    attempt: Attempt::ChangeOtherPasswordAsOwn,
                })
            }
            _ => {}
        }
        let target = self.existing_user(username)?;
        if target.role != Role::Co {
            return Err(Rejection::ApprovalRefused(
                username.clone(),
                ApprovalDefect::NotOfficer,
            ));
        }
        if let Some(k) = key {
            if !is_usable_key(&k) {
                return Err(Rejection::WeakPublicKey(username.clone()));
            }
            let taken = self
                .state
                .credentials
                .values()
                .any(|c| c.username != *username && c.approval_key == Some(k));
            if taken {
                return Err(Rejection::ApprovalRefused(
                    username.clone(),
                    ApprovalDefect::KeyInUse,
                ));
            }
        } else {
            self.check_approvers_left(username)?;
        }
        if let Some(reservation) = reservation {
            let user = self.password_checked(username, reservation)?;
            self.put_user(user);
        }
        self.update_credentials(username, |c| c.approval_key = key);
        Ok(())
    }

    fn set_mfa_key(
        &mut self,
        me: &Username,
        role: Role,
        username: &Username,
        key: Option<[u8; 32]>,
        reservation: Option<hsm_proto::RequestId>,
    ) -> Rule {
        if username == me {
            allow(role, Action::ChangeOwnMfa)?;
            let Some(reservation) = reservation else {
                return Err(Rejection::CurrentPasswordNeeded);
            };
            if key.is_some_and(|k| !is_usable_key(&k)) {
                return Err(Rejection::WeakPublicKey(username.clone()));
            }
            let mut user = self.password_checked(username, reservation)?;
            // Sessions opened without the new factor (or with the old
            // one) end, when it changes.
            let current = self.state.credentials.get(username).and_then(|c| c.mfa_key);
            if current != key {
                user.end_sessions(None, self.now_ms);
            }
            self.put_user(user);
        } else {
            // An officer may only clear another's (a lost device), under
            // the user service's quorum.
            if role != Role::Co || key.is_some() || reservation.is_some() {
                return Err(Rejection::Denied {
                    role,
                    attempt: Attempt::SetOtherMfa,
                });
            }
            let mut user = self.current_user(username)?;
            if self.state.needs_second_factor(username) {
                user.end_sessions(None, self.now_ms);
                self.put_user(user);
            }
        }
        self.update_credentials(username, |c| c.mfa_key = key);
        Ok(())
    }

    fn issue_token(&mut self, me: &Username, role: Role, intent: &Intent) -> Rule {
        allow(role, Action::ManageQuorum)?;
        let id = TokenId(self.request_id.0);
        if self.state.tokens.contains_key(&id) {
            return Err(Rejection::RequestIdReused);
        }
        let expired: Vec<TokenId> = self
            .state
            .tokens
            .values()
            .filter(|t| t.expires_ms < self.now_ms)
            .map(|t| t.id)
            .collect();
        let live = self
            .state
            .tokens
            .values()
            .filter(|t| t.initiator == *me && t.expires_ms >= self.now_ms)
            .count();
        if live >= MAX_TOKENS_PER_OFFICER {
            return Err(Rejection::TooManyTokens {
                max: MAX_TOKENS_PER_OFFICER,
            });
        }
        for old in expired {
            self.use_token(old);
        }
        self.state.tokens.insert(
            id,
            Token {
                id,
                initiator: me.clone(),
                intent: intent.clone(),
                issued_ms: self.now_ms,
                expires_ms: self.now_ms.saturating_add(TOKEN_LIFETIME_MS),
                approvals: Vec::new(),
            },
        );
        self.changed.insert(EntityKey::Token(id));
        Ok(())
    }

    fn approve(
        &mut self,
        role: Role,
        id: TokenId,
        approver: &Username,
        signature: &hsm_proto::Signature,
    ) -> Rule {
        allow(role, Action::ManageQuorum)?;
        let token = self.live_token(id)?;
        let refused = |d| Err(Rejection::ApprovalRefused(approver.clone(), d));
        if self.existing_user(approver)?.role != Role::Co {
            return refused(ApprovalDefect::NotOfficer);
        }
        let Some(key) = self
            .state
            .credentials
            .get(approver)
            .and_then(|c| c.approval_key)
        else {
            return refused(ApprovalDefect::NoApprovalKey);
        };
        if token.approvals.iter().any(|a| a.approver == *approver) {
            return refused(ApprovalDefect::AlreadyApproved);
        }
        let cluster = self.cluster_id()?;
        if !verifies(&key, &token.statement(cluster), signature) {
            return refused(ApprovalDefect::BadSignature);
        }
        let approval = Approval {
            approver: approver.clone(),
            key,
            signature: *signature,
        };
        if let Some(t) = self.state.tokens.get_mut(&id) {
            t.approvals.push(approval);
            self.changed.insert(EntityKey::Token(id));
        }
        Ok(())
    }

    fn delete_token(&mut self, me: &Username, role: Role, id: TokenId) -> Rule {
        allow(role, Action::ManageQuorum)?;
        let token = self
            .state
            .tokens
            .get(&id)
            .ok_or(Rejection::TokenNotFound(id))?;
        if token.initiator != *me {
            return Err(Rejection::Denied {
                role,
                attempt: Attempt::UseOtherToken,
            });
        }
        self.use_token(id);
        Ok(())
    }

    fn set_quorum_value(
        &mut self,
        role: Role,
        service: hsm_proto::quorum::Service,
        value: u8,
    ) -> Rule {
        allow(role, Action::ManageQuorum)?;
        if value == 0 || value > MAX_QUORUM {
            return Err(Rejection::QuorumRefused(QuorumDefect::OutOfRange {
                value,
                max: MAX_QUORUM,
            }));
        }
        let approvers = self.state.approvers().count();
        if value > 1 && approvers < usize::from(value) {
            return Err(Rejection::QuorumRefused(QuorumDefect::TooFewApprovers {
                value,
                approvers,
            }));
        }
        if self.state.quorum_value(service) == value {
            return Ok(());
        }
        if value == 1 {
            self.state.quorum.remove(&service);
        } else {
            self.state.quorum.insert(service, value);
        }
        self.changed.insert(EntityKey::Quorum);
        Ok(())
    }

    /// Refuses taking `leaving`'s approvals away (its key cleared, or the
    /// officer deleted) when fewer officers with approval keys would be
    /// left than the largest quorum value needs: the cluster would lock
    /// itself out of every operation that value guards.
    pub(super) fn check_approvers_left(&self, leaving: &Username) -> Rule {
        let value = self.state.largest_quorum_value();
        if value <= 1 {
            return Ok(());
        }
        let approvers = self
            .state
            .approvers()
            .filter(|(u, _)| *u != leaving)
            .count();
        if approvers < usize::from(value) {
            return Err(Rejection::QuorumRefused(QuorumDefect::TooFewApprovers {
                value,
                approvers,
            }));
        }
        Ok(())
    }

    /// Forgets a deleted user's credentials and the tokens it asked for.
    pub(super) fn forget_quorum_records(&mut self, user: &Username) {
        if self.state.credentials.remove(user).is_some() {
            self.changed.insert(EntityKey::Credentials(user.clone()));
        }
        let own: Vec<TokenId> = self
            .state
            .tokens
            .values()
            .filter(|t| t.initiator == *user)
            .map(|t| t.id)
            .collect();
        for id in own {
            self.use_token(id);
        }
    }

    fn live_token(&self, id: TokenId) -> Result<&Token, Rejection> {
        let token = self
            .state
            .tokens
            .get(&id)
            .ok_or(Rejection::TokenNotFound(id))?;
        if token.expires_ms < self.now_ms {
            return Err(Rejection::TokenExpired(id));
        }
        Ok(token)
    }

    fn cluster_id(&self) -> Result<hsm_proto::ClusterId, Rejection> {
        self.state
            .meta
            .cluster
            .as_ref()
            .map(|c| c.cluster_id)
            .ok_or(Rejection::NotInitialized)
    }

    fn update_credentials(&mut self, user: &Username, f: impl FnOnce(&mut Credentials)) {
        let before = self.state.credentials.get(user).cloned();
        let mut c = before.clone().unwrap_or_else(|| Credentials {
            username: user.clone(),
            approval_key: None,
            mfa_key: None,
        });
        f(&mut c);
        let empty = c.approval_key.is_none() && c.mfa_key.is_none();
        if before.as_ref() == Some(&c) || (before.is_none() && empty) {
            return;
        }
        self.changed.insert(EntityKey::Credentials(user.clone()));
        if c.approval_key.is_none() && c.mfa_key.is_none() {
            self.state.credentials.remove(user);
        } else {
            self.state.credentials.insert(user.clone(), c);
        }
    }
}
