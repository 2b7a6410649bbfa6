//! `State::apply`: verification, the rules, and the change set.

use std::collections::BTreeSet;

use hsm_proto::{
    Actor, Attempt, BatchSeal, EventBody, EventHash, KeyAttribute, KeyChange, KeyDefect, KeyFlag,
    KeyId, KeyOrigin, MembershipDefect, NodeId, NodeRecord, Rejection, RequestId, Role,
    ShareDefect, SignedEvent, Username, MAX_KEY_BLOB_LEN,
};

use crate::authz::{self, Action};
use crate::domain;
use crate::entity::EntityKey;
use crate::policy;
use crate::records::{
    login_outcome_id, ClusterInfo, DomainKeys, Key, LoginOutcome, LoginReservation, RequestRecord,
    User, MAX_FAILED_LOGINS,
};
use crate::sign::{event_hash, BatchVouch, NoVouch, Vouch};
use crate::state::{Applied, State, MAX_NODES, MAX_REMEMBERED_REQUESTS};

mod quorum;
mod versions;

/// The name of the first user of every cluster.
pub const ADMIN: &str = "admin";

type Rule = Result<(), Rejection>;

impl State {
    /// Applies one signed event.
    ///
    /// Order of checks: the chain link first; an event that does not point
    /// at the current head is refused and changes nothing at all. Every
    /// linked event extends the chain, authentic or not, so the chain is
    /// the chain of the log and a leader can always build on the last event
    /// in its log. Then the signature: it must be a member's (for the first
    /// event, the node it introduces); an inauthentic event changes nothing
    /// but the chain head. Then the request id: if it was applied before,
    /// the first outcome is returned and nothing else changes. Then the
    /// role table and the rules; a refusal changes nothing but the chain
    /// head and the remembered outcome (a transient one, during a domain
    /// key rotation, is not remembered: see `domain::is_transient`).
    pub fn apply(&mut self, signed: &SignedEvent) -> Applied {
        self.apply_vouched(signed, &NoVouch)
    }

    /// What the seal of a log entry carrying `events` vouches for: when
    /// `seal` is a member's valid signature over the events' chain hashes
    /// (checked once, with the key that member is registered under now),
    /// those events are taken as signed by it with that key
    /// ([`State::apply_vouched`] still compares it with each event's
    /// signer's key when that event applies). `None` when the seal does not
    /// verify, or its signer is not a member.
    pub fn vouch_for_batch(
        &mut self,
        events: &[SignedEvent],
        seal: &BatchSeal,
    ) -> Option<BatchVouch> {
        let key = self.nodes.get(&seal.signer)?.signing_key;
        let hashes: Vec<EventHash> = events.iter().map(event_hash).collect();
        if !self.verifying_keys.verify_seal(&hashes, seal, &key) {
            return None;
        }
        let own = events
            .iter()
            .zip(hashes)
            .filter(|(e, _)| e.signer == seal.signer)
            .map(|(_, h)| h)
            .collect();
        Some(BatchVouch::new(key, own))
    }

    /// [`State::apply`], except that an event `vouch` says it signed
    /// itself, with the key the signer is registered under, is not
    /// verified again: the leader applying the events it signed. Every
    /// other check is the same, and so is the outcome, since such an
    /// event's signature is valid.
    pub fn apply_vouched(&mut self, signed: &SignedEvent, vouch: &impl Vouch) -> Applied {
        let mut changed = BTreeSet::new();
        if signed.event.prev_hash != self.meta.head {
            return Applied {
                result: Err(Rejection::ChainMismatch),
                replayed: false,
                changed,
            };
        }
        let hash = event_hash(signed);
        self.meta.head = hash;
        self.meta.events += 1;
        changed.insert(EntityKey::Meta);
        if let Err(reason) = self.check_signature(signed, vouch.signed_with(&hash)) {
            return Applied {
                result: Err(reason),
                replayed: false,
                changed,
            };
        }

        let request_id = signed.event.request_id;
        let fingerprint = request_fingerprint(&signed.event.actor, &signed.event.body);
        if let Some(prior) = self.requests.get(&request_id) {
            // A retry is the same request again; another request under a
            // used id is refused rather than answered with the first
            // request's outcome (and silently not applied).
            let same = self.is_retry_of(prior, &signed.event.actor, &signed.event.body);
            let (result, replayed) = if same {
                (prior.result.clone(), true)
            } else {
                (Err(Rejection::RequestIdReused), false)
            };
            return Applied {
                result,
                replayed,
                changed,
            };
        }

        // The rules of the version the cluster ran when the event came.
        let protocol = self.protocol();
        let mut tx = Tx {
            state: self,
            changed: &mut changed,
            now_ms: signed.event.timestamp_ms,
            signer: signed.signer,
            request_id,
        };
        let result = tx
            .rules(&signed.event.actor, &signed.event.body)
            .map_err(|r| r.as_of(protocol));
        if !result.as_ref().is_err_and(is_transient) {
            self.remember(request_id, fingerprint, result.clone(), &mut changed);
        }
        Applied {
            result,
            replayed: false,
            changed,
        }
    }

    /// Whether `body` written by `actor` under `request_id` is the request
    /// remembered under that id (`Some(true)`: it is answered with that
    /// request's outcome), another request under a used id (`Some(false)`:
    /// refused as [`Rejection::RequestIdReused`]), or new (`None`).
    #[must_use]
    pub fn same_request(
        &self,
        request_id: RequestId,
        actor: &Actor,
        body: &EventBody,
    ) -> Option<bool> {
        self.requests
            .get(&request_id)
            .map(|r| self.is_retry_of(r, actor, body))
    }

    /// The outcome remembered for `request_id` when `body` by `actor` is
    /// that request again ([`State::same_request`]); `None` when the id is
    /// new or names another request. What a copy of a request answers when
    /// a check it made ahead of its write failed because the request itself
    /// applied meanwhile (state only moves forward: look after the check).
    #[must_use]
    pub fn outcome_of(
        &self,
        request_id: RequestId,
        actor: &Actor,
        body: &EventBody,
    ) -> Option<Result<(), Rejection>> {
        self.requests
            .get(&request_id)
            .filter(|r| self.is_retry_of(r, actor, body))
            .map(|r| r.result.clone())
    }

    /// Whether `body` by `actor` is the request remembered as `prior`
    /// again: the same intent ([`request_fingerprint`]) and, for key
    /// material the caller gave, the same material ([`State::same_material`]).
    fn is_retry_of(&self, prior: &RequestRecord, actor: &Actor, body: &EventBody) -> bool {
        prior.fingerprint == request_fingerprint(actor, body) && self.same_material(prior, body)
    }

    /// For a key whose material the caller gave (imported, unwrapped,
    /// derived), sent again under the id of the request `prior` that
    /// created it: whether it carries the same material as that key.
    /// Material is wrapped under a nonce drawn from the key id and the
    /// domain key generation (AES-256-GCM-SIV), so at the key's generation
    /// the same material wraps to the same bytes, and only the same: the
    /// key as it is now, which a rotation re-wraps under the new generation
    /// just as a copy built after it is. When the first attempt made no key
    /// (it was refused), or its key is gone (deleted since), there is
    /// nothing to compare or to confuse, and the first outcome stands.
    /// Anything else is the fingerprint's alone ([`request_fingerprint`]).
    fn same_material(&self, prior: &RequestRecord, body: &EventBody) -> bool {
        if prior.result.is_err() {
            return true;
        }
        match body {
            EventBody::KeyCreated {
                key,
                provenance,
                domain_generation,
                wrapped_material,
                ..
            } if provenance.origin != KeyOrigin::Generated => {
                // The material the key was created with: its first
                // version, beside it once the key was rotated (nothing to
                // compare once that version is trimmed).
                let first = match self.versions.get(key) {
                    Some(v) => v
                        .older
                        .get(&1)
                        .map(|o| (o.domain_generation, &o.wrapped_material)),
                    None => self
                        .keys
                        .get(key)
                        .map(|k| (k.domain_generation, &k.wrapped_material)),
                };
                first.is_none_or(|(generation, material)| {
                    generation == *domain_generation && material == wrapped_material
                })
            }
            _ => true,
        }
    }

    /// What is recorded for the login attempt `reservation` of `user` (as
    /// the account is now), if anything: the one outcome of the attempt,
    /// which every copy of it is answered with.
    #[must_use]
    pub fn login_outcome(&self, reservation: RequestId, user: &User) -> Option<LoginOutcome> {
        let record = self.requests.get(&login_outcome_id(reservation, user))?;
        if record.result.is_err() {
            return Some(LoginOutcome::Refused);
        }
        let node = Actor::Node(NodeId(0));
        let username = user.username.clone();
        let right = EventBody::LoginSucceeded {
            username: username.clone(),
            reservation,
        };
        let wrong = EventBody::LoginRejected {
            username,
            reservation,
        };
        if record.fingerprint == request_fingerprint(&node, &right) {
            Some(LoginOutcome::Right)
        } else if record.fingerprint == request_fingerprint(&node, &wrong) {
            Some(LoginOutcome::Wrong)
        } else {
            // Another request under that id (a client chose it): no
            // outcome of this attempt can ever be recorded.
            Some(LoginOutcome::Refused)
        }
    }

    /// `vouched`: the public key a [`Vouch`] says the event was signed with.
    fn check_signature(&mut self, signed: &SignedEvent, vouched: Option<[u8; 32]>) -> Rule {
        let signer_key = match (&signed.event.body, &self.meta.cluster) {
            (EventBody::ClusterInitialized { first_node, .. }, None) => {
                if first_node.id != signed.signer {
                    return Err(Rejection::UnknownSigner(signed.signer));
                }
                first_node.signing_key
            }
            (_, None) => return Err(Rejection::NotInitialized),
            (_, Some(_)) => self.member_key(signed)?,
        };
        if vouched == Some(signer_key) || self.verifying_keys.verify(signed, &signer_key) {
            Ok(())
        } else {
            Err(Rejection::BadSignature(signed.signer))
        }
    }

    fn member_key(&self, signed: &SignedEvent) -> Result<[u8; 32], Rejection> {
        self.nodes
            .get(&signed.signer)
            .map(|n| n.signing_key)
            .ok_or(Rejection::UnknownSigner(signed.signer))
    }

    fn remember(
        &mut self,
        request_id: hsm_proto::RequestId,
        fingerprint: [u8; 32],
        result: Rule,
        changed: &mut BTreeSet<EntityKey>,
    ) {
        let seq = self.meta.events;
        self.requests.insert(
            request_id,
            RequestRecord {
                request_id,
                seq,
                fingerprint,
                result,
            },
        );
        self.request_order.insert(seq, request_id);
        changed.insert(EntityKey::Request(request_id));
        while self.requests.len() > MAX_REMEMBERED_REQUESTS {
            let Some((_, oldest)) = self.request_order.pop_first() else {
                break;
            };
            self.requests.remove(&oldest);
            changed.insert(EntityKey::Request(oldest));
        }
    }
}

/// One event's rule evaluation. Checks first, mutations last, so a refusal
/// leaves the state as it was.
struct Tx<'a> {
    state: &'a mut State,
    changed: &'a mut BTreeSet<EntityKey>,
    now_ms: u64,
    signer: NodeId,
    /// The event's request id (a login reservation's name).
    request_id: RequestId,
}

impl Tx<'_> {
    /// The event's kind must exist in the cluster's Raft protocol; a
    /// quorum that guards it must have approved it (a token, used up only
    /// if the event applies); then its own rules.
    fn rules(&mut self, actor: &Actor, body: &EventBody) -> Rule {
        let (needs, cluster) = (body.since(), self.state.protocol());
        if needs > cluster {
            return Err(Rejection::NeedsProtocol { needs, cluster });
        }
        let approved_by = self.quorum_gate(actor, body)?;
        self.event_rules(actor, body)?;
        if let Some(token) = approved_by {
            self.use_token(token);
        }
        Ok(())
    }

    fn event_rules(&mut self, actor: &Actor, body: &EventBody) -> Rule {
        if let Actor::Operator(node) = actor {
            return self.operator_rules(*node, body);
        }
        match body {
            EventBody::ClusterInitialized {
                cluster_id,
                first_node,
                other_nodes,
                admin_password_hash,
                domain_check,
            } => {
                if self.state.meta.cluster.is_some() {
                    return Err(Rejection::AlreadyInitialized);
                }
                if *actor != Actor::Node(first_node.id) {
                    return Err(Rejection::NoSuchActor(actor.clone()));
                }
                check_password_hash(admin_password_hash)?;
                let founders: Vec<&NodeRecord> =
                    std::iter::once(first_node).chain(other_nodes).collect();
                if founders.len() > MAX_NODES {
                    return Err(Rejection::MembershipRefused(
                        MembershipDefect::TooManyFounders { max: MAX_NODES },
                    ));
                }
                let ids: BTreeSet<NodeId> = founders.iter().map(|n| n.id).collect();
                let keys: BTreeSet<[u8; 32]> = founders.iter().map(|n| n.signing_key).collect();
                let pins: BTreeSet<[u8; 32]> = founders.iter().map(|n| n.transport_key).collect();
                for node in &founders {
                    check_agreement_key(node)?;
                }
                if ids.len() != founders.len()
                    || keys.len() != founders.len()
                    || pins.len() != founders.len()
                {
                    return Err(Rejection::MembershipRefused(
                        MembershipDefect::FoundersNotDistinct,
                    ));
                }
                for node in other_nodes {
                    self.put_node(node.clone());
                }
                let admin = admin_name();
                self.state.meta.cluster = Some(ClusterInfo {
                    cluster_id: *cluster_id,
                    created_ms: self.now_ms,
                    activated: false,
                    retired_nodes: BTreeSet::new(),
                    retired_transport_keys: std::collections::BTreeMap::new(),
                    domain: DomainKeys::first(*domain_check),
                });
                self.put_node(first_node.clone());
                self.put_user(User::new(
                    admin,
                    Role::Preco,
                    admin_password_hash.clone(),
                    self.now_ms,
                ));
                Ok(())
            }
            EventBody::LoginFailed { username } => {
                // Recorded before the password is checked (the node reserves
                // the attempt, named by this event's request id), so at most
                // MAX_FAILED_LOGINS outcomes are ever recorded between
                // resets, however many attempts arrive at once. At the
                // limit, an attempt waits while others are being checked
                // (one may succeed), and locks the user once all of them
                // failed. A reservation left unanswered (its node died, or
                // missed its deadline) stops counting after
                // LOGIN_RESERVATION_TTL_MS.
                self.node_actor(actor)?;
                let mut user = self.current_user(username)?;
                if user.locked {
                    return Err(Rejection::Locked(username.clone()));
                }
                if user.logins_busy(self.now_ms) {
                    return Err(Rejection::LoginsInProgress(username.clone()));
                }
                if user.failed_logins(self.now_ms) >= MAX_FAILED_LOGINS {
                    user.locked = true;
                } else {
                    user.reservations.push(LoginReservation {
                        id: self.request_id,
                        at_ms: self.now_ms,
                    });
                }
                self.put_user(user);
                Ok(())
            }
            EventBody::LoginRejected {
                username,
                reservation,
            } => {
                self.node_actor(actor)?;
                let mut user = self.current_user(username)?;
                self.outcome_of(&user, *reservation)?;
                take_reservation(&mut user, *reservation)?;
                user.failures = user.failures.saturating_add(1);
                self.put_user(user);
                Ok(())
            }
            EventBody::LoginSucceeded {
                username,
                reservation,
            } => {
                self.node_actor(actor)?;
                let mut user = self.current_user(username)?;
                // The reservation first, so that a late outcome is refused
                // alike whether the password was right or wrong.
                self.outcome_of(&user, *reservation)?;
                take_reservation(&mut user, *reservation)?;
                if user.locked {
                    return Err(Rejection::Locked(username.clone()));
                }
                // The failures before this attempt no longer count; the
                // attempts still being checked do, until they are.
                user.failures = 0;
                self.put_user(user);
                Ok(())
            }
            EventBody::DomainKeyRotated {
                generation,
                check,
                sealed,
            } => {
                if let Actor::User(_) = actor {
                    let (_, role) = self.user_actor(actor)?;
                    self.activated()?;
                    allow(role, Action::RotateDomainKey)?;
                } else {
                    self.node_actor(actor)?;
                    if !self.domain()?.rotation_due {
                        return Err(Rejection::DomainKey(hsm_proto::DomainKeyError::NotDue));
                    }
                }
                let members = self.state.nodes.keys().copied().collect();
                domain::check_rotation(self.domain()?, &members, *generation, sealed)?;
                self.update_domain(|d| {
                    d.current = *generation;
                    d.rotation_due = false;
                    d.generations.insert(
                        *generation,
                        crate::records::DomainGeneration {
                            check: *check,
                            sealed: sealed.clone(),
                        },
                    );
                });
                Ok(())
            }
            EventBody::KeyMaterialRewrapped { generation, keys } => {
                self.node_actor(actor)?;
                domain::check_rewrap(self.domain()?, *generation, keys.iter().map(|k| k.key))?;
                for k in keys {
                    if k.wrapped_material.is_empty() || k.wrapped_material.len() > MAX_KEY_BLOB_LEN
                    {
                        return Err(Rejection::KeyInvalid(KeyDefect::MaterialSize));
                    }
                }
                // Keys deleted meanwhile, or already re-wrapped by an
                // earlier leader's event, are skipped.
                for k in keys {
                    self.update_key(k.key, |key| {
                        if key.domain_generation != *generation {
                            key.domain_generation = *generation;
                            key.wrapped_material.clone_from(&k.wrapped_material);
                        }
                    });
                }
                Ok(())
            }
            EventBody::KeyVersionsRewrapped {
                generation,
                versions,
            } => {
                self.node_actor(actor)?;
                self.rewrap_versions(*generation, versions)
            }
            EventBody::KeyUsesCounted { uses } => {
                // A member's own count, for the trail; nothing changes.
                self.node_actor(actor)?;
                crate::versions::check_key_uses(uses)
            }
            EventBody::DomainKeyRetired { generation } => {
                self.node_actor(actor)?;
                let keys = self.state.materials_under(*generation);
                domain::check_retire(self.domain()?, *generation, keys)?;
                self.update_domain(|d| {
                    d.generations.remove(generation);
                });
                Ok(())
            }
            EventBody::ProtocolRaised { version } => {
                // The leader raises it once every member speaks `version`;
                // a replica whose build does not stops before this event
                // (`crate::protocol::check_event`).
                crate::protocol::check_raise(self.state, self.signer, actor, *version)?;
                self.state.protocol = Some(*version);
                self.changed.insert(EntityKey::Protocol);
                Ok(())
            }
            _ => {
                let (name, role) = self.user_actor(actor)?;
                self.user_rules(&name, role, body)
            }
        }
    }

    /// What the operator of member `node`'s host (its operator socket) may
    /// do: unlock a user, the last crypto officer included, activated or
    /// not, and nothing else. Strangers who lock out `admin` (a public
    /// name) then lock it out only until an operator acts. Host access
    /// already gives the node's sealed keys and the file that opens them,
    /// so this grants nothing that host access does not.
    fn operator_rules(&mut self, node: NodeId, body: &EventBody) -> Rule {
        let actor = Actor::Operator(node);
        if !self.state.nodes.contains_key(&node) {
            return Err(Rejection::NoSuchActor(actor.clone()));
        }
        match body {
            EventBody::UserUnlocked { username } => self.unlock(username),
            _ => Err(Rejection::OperatorOnlyUnlocks(node)),
        }
    }

    /// Unlocks `username`: no failed logins, no attempts in progress (their
    /// outcomes are refused, so they reveal nothing).
    fn unlock(&mut self, username: &Username) -> Rule {
        let mut user = self.current_user(username)?;
        if !user.locked && user.failed_logins(self.now_ms) == 0 {
            return Err(Rejection::NotLocked(username.clone()));
        }
        user.locked = false;
        user.failures = 0;
        user.reservations.clear();
        self.put_user(user);
        Ok(())
    }

    fn activated(&self) -> Rule {
        let activated = self
            .state
            .meta
            .cluster
            .as_ref()
            .is_some_and(|c| c.activated);
        if activated {
            Ok(())
        } else {
            Err(Rejection::NotActivated)
        }
    }

    fn domain(&self) -> Result<&DomainKeys, Rejection> {
        self.state
            .meta
            .cluster
            .as_ref()
            .map(|c| &c.domain)
            .ok_or(Rejection::NotInitialized)
    }

    fn update_domain(&mut self, f: impl FnOnce(&mut DomainKeys)) {
        if let Some(c) = self.state.meta.cluster.as_mut() {
            f(&mut c.domain);
            self.changed.insert(EntityKey::Meta);
        }
    }

    fn user_rules(&mut self, me: &Username, role: Role, body: &EventBody) -> Rule {
        // An unactivated admin may set its password (that activates the
        // cluster) and log out, nothing else.
        let own_credentials = matches!(
            body,
            EventBody::OwnPasswordChanged { username, .. } | EventBody::SessionsEnded { username, .. }
                if username == me
        );
        if !own_credentials {
            self.activated()?;
        }
        if let Some(rule) = self.quorum_rules(me, role, body) {
            return rule;
        }
        if let Some(rule) = self.version_rules(me, role, body) {
            return rule;
        }
        match body {
            EventBody::SessionsEnded { username, token } => {
                // Only one's own: an officer ends others' sessions by
                // changing their password, or deleting or locking them.
                if username != me {
                    return Err(Rejection::Denied {
                        role,
                        attempt: Attempt::EndOtherSessions,
                    });
                }
                allow(role, Action::EndOwnSessions)?;
                let mut user = self.current_user(username)?;
                user.end_sessions(*token, self.now_ms);
                self.put_user(user);
                Ok(())
            }
            EventBody::UserCreated {
                username,
                role: new_role,
                password_hash,
            } => {
                allow(role, Action::CreateUser)?;
                if self.state.users.contains_key(username) {
                    return Err(Rejection::UserExists(username.clone()));
                }
                if *new_role == Role::Preco {
                    return Err(Rejection::InvalidRole(*new_role));
                }
                // From Raft protocol 3 on the role is gone (nothing ever
                // needed it: docs/decisions.md); older rules keep it.
                if *new_role == Role::Au && self.state.protocol() >= 3 {
                    return Err(Rejection::Denied {
                        role,
                        attempt: Attempt::CreateApplianceUser,
                    });
                }
                check_password_hash(password_hash)?;
                self.put_user(User::new(
                    username.clone(),
                    *new_role,
                    password_hash.clone(),
                    self.now_ms,
                ));
                Ok(())
            }
            EventBody::UserDeleted { username } => {
                allow(role, Action::DeleteUser)?;
                self.existing_user(username)?;
                if username == me {
                    return Err(Rejection::CannotDeleteSelf);
                }
                let owned = self.state.owned.get(username).map_or(0, BTreeSet::len);
                if owned > 0 {
                    return Err(Rejection::UserOwnsKeys {
                        user: username.clone(),
                        keys: owned,
                    });
                }
                self.check_approvers_left(username)?;
                self.forget_quorum_records(username);
                let shared: Vec<KeyId> = self
                    .state
                    .keys
                    .values()
                    .filter(|k| k.shared_with.contains(username))
                    .map(|k| k.id)
                    .collect();
                for id in shared {
                    self.update_key(id, |k| {
                        k.shared_with.remove(username);
                    });
                }
                self.state.users.remove(username);
                self.changed.insert(EntityKey::User(username.clone()));
                Ok(())
            }
            EventBody::PasswordChanged {
                username,
                password_hash,
            } => {
                authz::check_password_reset(me, username)?;
                allow(role, Action::ChangeOtherPassword)?;
                let user = self.current_user(username)?;
                check_password_hash(password_hash)?;
                self.set_password(user, password_hash);
                Ok(())
            }
            EventBody::OwnPasswordChanged {
                username,
                password_hash,
                reservation,
            } => {
                if username != me {
                    return Err(Rejection::Denied {
                        role,
                        attempt: Attempt::ChangeOtherPasswordAsOwn,
                    });
                }
                allow(role, Action::ChangeOwnPassword)?;
                let mut user = self.current_user(username)?;
                check_password_hash(password_hash)?;
                // The check of the current password was reserved as a
                // login attempt; its success is recorded here, as a
                // LoginSucceeded would (an expired reservation voids it).
                take_reservation(&mut user, *reservation)?;
                user.failures = 0;
                self.set_password(user, password_hash);
                Ok(())
            }
            EventBody::UserUnlocked { username } => {
                authz::check_unlock(me, role, username)?;
                allow(role, Action::UnlockUser)?;
                self.unlock(username)
            }
            EventBody::KeyCreated {
                key,
                spec,
                attributes,
                provenance,
                domain_generation,
                wrapped_material,
                public_key,
                unique_label,
            } => {
                allow(role, Action::CreateKey)?;
                if self.state.keys.contains_key(key) {
                    return Err(Rejection::KeyExists(*key));
                }
                domain::check_new_material(self.domain()?, *domain_generation)?;
                policy::check_new_key(*spec, attributes, provenance)?;
                if wrapped_material.len() > MAX_KEY_BLOB_LEN || public_key.len() > MAX_KEY_BLOB_LEN
                {
                    return Err(Rejection::KeyInvalid(KeyDefect::MaterialTooLarge));
                }
                if wrapped_material.is_empty() {
                    return Err(Rejection::KeyInvalid(KeyDefect::NoMaterial));
                }
                if spec.is_asymmetric() == public_key.is_empty() {
                    return Err(Rejection::KeyInvalid(KeyDefect::PublicKeyMismatch));
                }
                if *unique_label
                    && self
                        .state
                        .labels
                        .contains_key(&(me.clone(), attributes.label.clone()))
                {
                    return Err(Rejection::LabelNotUnique(attributes.label.clone()));
                }
                let k = Key {
                    id: *key,
                    spec: *spec,
                    owner: me.clone(),
                    shared_with: BTreeSet::new(),
                    attributes: attributes.clone(),
                    provenance: *provenance,
                    domain_generation: *domain_generation,
                    wrapped_material: wrapped_material.clone(),
                    public_key: public_key.clone(),
                    created_ms: self.now_ms,
                    certificate: Vec::new(),
                };
                self.state.index_key(&k);
                self.state.keys.insert(*key, k);
                self.changed.insert(EntityKey::Key(*key));
                Ok(())
            }
            EventBody::KeyShared { key, with } | EventBody::KeyUnshared { key, with } => {
                let share = matches!(body, EventBody::KeyShared { .. });
                allow(role, Action::ManageKey)?;
                let k = self.managed_key(
                    me,
                    *key,
                    if share {
                        KeyChange::Share
                    } else {
                        KeyChange::Unshare
                    },
                )?;
                let is_shared = k.shared_with.contains(with);
                if share {
                    let target = self.existing_user(with)?;
                    if target.role != Role::Cu {
                        return Err(Rejection::ShareRefused(
                            with.clone(),
                            ShareDefect::NotCryptoUser,
                        ));
                    }
                    if with == me {
                        return Err(Rejection::ShareRefused(with.clone(), ShareDefect::Owner));
                    }
                    if is_shared {
                        return Err(Rejection::ShareRefused(
                            with.clone(),
                            ShareDefect::AlreadyShared,
                        ));
                    }
                } else if !is_shared {
                    return Err(Rejection::ShareRefused(
                        with.clone(),
                        ShareDefect::NotShared,
                    ));
                }
                self.update_key(*key, |k| {
                    if share {
                        k.shared_with.insert(with.clone());
                    } else {
                        k.shared_with.remove(with);
                    }
                });
                Ok(())
            }
            EventBody::KeyAttributeSet { key, attribute } => {
                self.set_attribute(me, role, *key, attribute)
            }
            EventBody::KeyWrappedOut { key } => {
                allow(role, Action::ManageKey)?;
                self.managed_key(me, *key, KeyChange::Wrap)?;
                self.update_key(*key, |k| {
                    k.provenance.local = false;
                    k.provenance.always_sensitive = false;
                });
                Ok(())
            }
            EventBody::KeyDeleted { key } => {
                allow(role, Action::ManageKey)?;
                let k = self.managed_key(me, *key, KeyChange::Delete)?.clone();
                self.state.unindex_key(&k);
                self.state.keys.remove(key);
                self.changed.insert(EntityKey::Key(*key));
                self.forget_versions(*key);
                Ok(())
            }
            EventBody::NodeAdded { node } => {
                allow(role, Action::AddNode)?;
                if self.state.nodes.contains_key(&node.id) {
                    return Err(Rejection::NodeExists(node.id));
                }
                let retired = self
                    .state
                    .meta
                    .cluster
                    .as_ref()
                    .is_some_and(|c| c.retired_nodes.contains(&node.id));
                if retired {
                    return Err(Rejection::MembershipRefused(MembershipDefect::IdReused(
                        node.id,
                    )));
                }
                if self.state.nodes.len() >= MAX_NODES {
                    return Err(Rejection::MembershipRefused(MembershipDefect::Full {
                        max: MAX_NODES,
                    }));
                }
                check_agreement_key(node)?;
                if self
                    .state
                    .nodes
                    .values()
                    .any(|n| n.signing_key == node.signing_key)
                {
                    return Err(Rejection::MembershipRefused(
                        MembershipDefect::SigningKeyInUse,
                    ));
                }
                if self
                    .state
                    .nodes
                    .values()
                    .any(|n| n.transport_key == node.transport_key)
                {
                    return Err(Rejection::MembershipRefused(MembershipDefect::TlsKeyInUse));
                }
                self.put_node(node.clone());
                Ok(())
            }
            EventBody::NodeRemoved { node } => {
                allow(role, Action::RemoveNode)?;
                if !self.state.nodes.contains_key(node) {
                    return Err(Rejection::NodeNotFound(*node));
                }
                if *node == self.signer {
                    // Its own pipelined events after this one would no
                    // longer verify and would break the chain for good.
                    return Err(Rejection::MembershipRefused(MembershipDefect::OwnRemoval));
                }
                if self.state.nodes.len() == 1 {
                    return Err(Rejection::MembershipRefused(MembershipDefect::LastMember));
                }
                let removed = self.state.nodes.remove(node);
                self.changed.insert(EntityKey::Node(*node));
                if let Some(c) = self.state.meta.cluster.as_mut() {
                    c.retired_nodes.insert(*node);
                    if let Some(r) = removed {
                        c.retired_transport_keys.insert(*node, r.transport_key);
                    }
                    // It keeps the domain key it holds: the leader makes a
                    // new one, sealed to the remaining members only.
                    c.domain.rotation_due = true;
                }
                self.changed.insert(EntityKey::Meta);
                Ok(())
            }
            EventBody::ClusterInitialized { .. }
            | EventBody::LoginFailed { .. }
            | EventBody::LoginRejected { .. }
            | EventBody::LoginSucceeded { .. }
            | EventBody::DomainKeyRotated { .. }
            | EventBody::KeyMaterialRewrapped { .. }
            | EventBody::DomainKeyRetired { .. }
            | EventBody::ProtocolRaised { .. }
            | EventBody::ApprovalKeySet { .. }
            | EventBody::MfaKeySet { .. }
            | EventBody::QuorumTokenIssued { .. }
            | EventBody::QuorumApproved { .. }
            | EventBody::QuorumTokenDeleted { .. }
            | EventBody::QuorumValueSet { .. }
            | EventBody::KeyRotated { .. }
            | EventBody::KeyMinDecryptionSet { .. }
            | EventBody::KeyVersionsTrimmed { .. }
            | EventBody::KeyVersionsRewrapped { .. }
            | EventBody::KeyUsesCounted { .. } => {
                // Handled in `rules` (or `quorum_rules`) before a user actor is resolved, so
                // never reached (the words builds before versioning had).
                Err(Rejection::UnknownActor(me.to_string()))
            }
        }
    }

    fn set_attribute(
        &mut self,
        me: &Username,
        role: Role,
        key: KeyId,
        attr: &KeyAttribute,
    ) -> Rule {
        if let KeyAttribute::Flag(KeyFlag::Trusted, value) = attr {
            allow(role, Action::SetTrusted)?;
            self.existing_key(key)?;
            let value = *value;
            self.update_key(key, |k| k.attributes.trusted = value);
            return Ok(());
        }
        allow(role, Action::ManageKey)?;
        let current = self.managed_key(me, key, KeyChange::SetAttributes)?;
        if let KeyAttribute::Certificate(certificate) = attr {
            policy::check_certificate(current, certificate)?;
            if current.certificate != *certificate {
                let certificate = certificate.clone();
                self.update_key(key, |k| k.certificate = certificate);
            }
            return Ok(());
        }
        let next = policy::changed_by_owner(current, attr)?;
        let current = &current.attributes;
        if next == *current {
            return Ok(());
        }
        // Re-index around a label change.
        let mut k = self.existing_key(key)?.clone();
        self.state.unindex_key(&k);
        k.attributes = next;
        self.state.index_key(&k);
        self.state.keys.insert(key, k);
        self.changed.insert(EntityKey::Key(key));
        Ok(())
    }

    /// Gives `user` the new password `password_hash`: every session it
    /// holds ends (the password epoch moves), the checks of its old
    /// password still in flight are void (their outcomes find no
    /// reservation, and their logins are not answered), and the
    /// unactivated `admin` setting its own activates the cluster.
    fn set_password(&mut self, mut user: User, password_hash: &str) {
        user.password_hash = password_hash.to_owned();
        user.password_epoch += 1;
        user.reservations.clear();
        if user.role == Role::Preco {
            user.role = Role::Co;
            if let Some(c) = self.state.meta.cluster.as_mut() {
                c.activated = true;
            }
        }
        self.put_user(user);
    }

    fn node_actor(&self, actor: &Actor) -> Rule {
        match actor {
            Actor::Node(n) if self.state.nodes.contains_key(n) => Ok(()),
            _ => Err(Rejection::NoSuchActor(actor.clone())),
        }
    }

    fn user_actor(&self, actor: &Actor) -> Result<(Username, Role), Rejection> {
        let Actor::User(name) = actor else {
            return Err(Rejection::NoSuchActor(actor.clone()));
        };
        let user = self
            .state
            .users
            .get(name)
            .ok_or_else(|| Rejection::NoSuchActor(actor.clone()))?;
        if user.is_locked() {
            return Err(Rejection::Locked(name.clone()));
        }
        Ok((name.clone(), user.role))
    }

    fn existing_user(&self, name: &Username) -> Result<&User, Rejection> {
        self.state
            .users
            .get(name)
            .ok_or_else(|| Rejection::UserNotFound(name.clone()))
    }

    /// A copy of a user about to be written, its expired login
    /// reservations dropped (they are dropped whenever a user record is
    /// written, so it never carries them for long).
    fn current_user(&self, name: &Username) -> Result<User, Rejection> {
        let mut user = self.existing_user(name)?.clone();
        user.drop_expired_reservations(self.now_ms);
        Ok(user)
    }

    fn existing_key(&self, id: KeyId) -> Result<&Key, Rejection> {
        self.state.keys.get(&id).ok_or(Rejection::KeyNotFound(id))
    }

    /// The key if `me` owns it. A key `me` cannot even see is "not found",
    /// so refusals do not reveal other users' keys.
    fn managed_key(&self, me: &Username, id: KeyId, action: KeyChange) -> Result<&Key, Rejection> {
        let key = self.existing_key(id)?;
        if !authz::can_use_key(me, key) {
            return Err(Rejection::KeyNotFound(id));
        }
        if !authz::can_manage_key(me, key) {
            return Err(Rejection::OwnerOnly {
                key: id,
                change: action,
            });
        }
        Ok(key)
    }

    // The writers below list an entity in `changed` only if its value really
    // changes, so `changed` is exactly the set of entities that differ.

    fn put_user(&mut self, user: User) {
        if self.state.users.get(&user.username) == Some(&user) {
            return;
        }
        self.changed.insert(EntityKey::User(user.username.clone()));
        self.state.users.insert(user.username.clone(), user);
    }

    fn put_node(&mut self, node: NodeRecord) {
        if self.state.nodes.get(&node.id) == Some(&node) {
            return;
        }
        self.changed.insert(EntityKey::Node(node.id));
        self.state.nodes.insert(node.id, node);
    }

    /// An outcome of the login attempt `reservation` of `user` is recorded
    /// under [`login_outcome_id`] only: so one outcome per attempt is ever
    /// recorded, and every other copy of the attempt (checked again by a
    /// retry) is answered with it. One under another id (checked against
    /// the account before it changed) finds the attempt gone.
    fn outcome_of(&self, user: &User, reservation: RequestId) -> Rule {
        if self.request_id == login_outcome_id(reservation, user) {
            Ok(())
        } else {
            Err(Rejection::LoginExpired(user.username.clone()))
        }
    }

    fn update_key(&mut self, id: KeyId, f: impl FnOnce(&mut Key)) {
        if let Some(k) = self.state.keys.get_mut(&id) {
            let before = k.clone();
            f(k);
            if *k != before {
                self.changed.insert(EntityKey::Key(id));
            }
        }
    }
}

/// blake3 over the canonical encoding of who asked for what: equal for a
/// retry of the same request, different for any other request.
fn request_fingerprint(actor: &Actor, body: &EventBody) -> [u8; 32] {
    // A retry of a write is built again by whichever node receives it, so
    // what that node makes fresh each time (generated key material and its
    // wrapping, the reservation of a password check, what a domain key
    // rotation draws) differs between attempts of the same request; the
    // fingerprint leaves those out and keeps the caller's intent. A password an
    // officer sets (a new user, a reset) stays in: its hash's salt is drawn
    // from the request id, so every attempt hashes the same password alike
    // and another password under a used id is another request. One's own
    // new password is left out: telling a retry with another one apart
    // would answer guesses at it without the lockout that counts them.
    // A login attempt and its outcome are the node's writes: a retry
    // through another node is the same attempt ([`login_outcome_id`]).
    let actor = match (actor, body) {
        (
            Actor::Node(_),
            EventBody::LoginFailed { .. }
            | EventBody::LoginRejected { .. }
            | EventBody::LoginSucceeded { .. },
        ) => &Actor::Node(NodeId(0)),
        _ => actor,
    };
    let mut intent = body.clone();
    match &mut intent {
        EventBody::OwnPasswordChanged {
            password_hash,
            reservation,
            ..
        } => {
            password_hash.clear();
            *reservation = RequestId([0; 16]);
        }
        EventBody::MfaKeySet {
            reservation: Some(reservation),
            ..
        }
        | EventBody::ApprovalKeySet {
            reservation: Some(reservation),
            ..
        } => {
            // The check of the current password is the node's own draw.
            *reservation = RequestId([0; 16]);
        }
        EventBody::KeyCreated {
            wrapped_material,
            public_key,
            domain_generation,
            provenance,
            ..
        } => {
            // Generated material is the node's own draw. Material the
            // caller gave (imported, unwrapped, derived with its peer) is
            // its intent, but its wrapping depends on the generation a
            // node built the attempt under: it is compared with the key
            // the first attempt made ([`State::same_material`]); its
            // public key, where it has one, stays in.
            if provenance.origin == KeyOrigin::Generated {
                public_key.clear();
            }
            wrapped_material.clear();
            *domain_generation = 0;
        }
        EventBody::DomainKeyRotated {
            generation,
            check,
            sealed,
        } => {
            // "Rotate the domain key", whichever generation the node that
            // built the attempt saw.
            *generation = 0;
            *check = [0; 32];
            sealed.clear();
        }
        EventBody::KeyMaterialRewrapped { keys, .. } => {
            for k in keys {
                k.wrapped_material.clear();
            }
        }
        EventBody::KeyVersionsRewrapped { versions, .. } => {
            for v in versions {
                v.wrapped_material.clear();
            }
        }
        EventBody::KeyRotated {
            version,
            domain_generation,
            wrapped_material,
            public_key,
            ..
        } => {
            // New material is the node's own draw, and the version it
            // names is the latest it saw plus one: "rotate this key".
            *version = 0;
            *domain_generation = 0;
            wrapped_material.clear();
            public_key.clear();
        }
        _ => {}
    }
    // Encoding in-memory event parts cannot fail (they are far below the
    // codec's size limit once the event itself decoded).
    let bytes = hsm_proto::codec::encode("request", &(actor, &intent)).unwrap_or_default();
    *blake3::hash(&bytes).as_bytes()
}

/// Whether a refusal may pass by the time the same request is sent again,
/// so it is not remembered as the request's outcome: a domain key rotation
/// under way, or logins of the user being checked (a retried login is
/// reserved once they are answered).
fn is_transient(rejection: &Rejection) -> bool {
    domain::is_transient(rejection)
        || matches!(
            rejection,
            Rejection::LoginsInProgress(_)
                // Another rotation of the key came first: a retry names
                // the version after it.
                | Rejection::KeyVersionRefused(_, hsm_proto::VersionDefect::NotNext { .. })
        )
}

/// Removes the reservation `id` from `user` (already rid of expired ones):
/// an outcome is recorded only for an attempt that was reserved and whose
/// reservation still counts. Otherwise the node that checked the password
/// must not reveal the answer: the attempt was not counted as a failure.
fn take_reservation(user: &mut User, id: RequestId) -> Rule {
    let at = user.reservations.iter().position(|r| r.id == id);
    match at {
        Some(i) => {
            user.reservations.remove(i);
            Ok(())
        }
        None => Err(Rejection::LoginExpired(user.username.clone())),
    }
}

fn allow(role: Role, action: Action) -> Rule {
    if authz::permits(role, action) {
        Ok(())
    } else {
        Err(Rejection::Denied {
            role,
            attempt: Attempt::Action(action),
        })
    }
}

fn admin_name() -> Username {
    // "admin" satisfies the user name rules.
    Username::new(ADMIN).unwrap_or_else(|_| unreachable!("admin is a valid user name"))
}

/// A member's X25519 agreement key must be one a domain key can be sealed
/// to secretly.
fn check_agreement_key(node: &NodeRecord) -> Rule {
    if domain::is_usable_agreement_key(&node.agreement_key) {
        Ok(())
    } else {
        Err(Rejection::MembershipRefused(
            MembershipDefect::LowOrderAgreementKey(node.id),
        ))
    }
}

fn check_password_hash(phc: &str) -> Rule {
    if phc.starts_with("$argon2id$") && phc.len() <= 512 {
        Ok(())
    } else {
        Err(Rejection::InvalidPasswordHash)
    }
}
