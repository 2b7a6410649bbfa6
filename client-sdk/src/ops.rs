//! Typed methods, one per [`Operation`], and batches.

use hsm_proto::client::{
    ByteBuf, ClusterStatus, ErrorKind, KeyFilter, KeyInfo, Operation, Reply, Secret, UserInfo,
    MAX_PAGE,
};
use hsm_proto::mechanism::{
    DeriveMechanism, DigestAlgorithm, EncryptMechanism, SignMechanism, WrapMechanism,
};
use hsm_proto::{
    BackupId, BackupInfo, BackupList, BackupVerified, KeyAttribute, KeyAttributes, KeyId, KeySpec,
    NodeId, NodeRecord, Role, Username,
};
use tokio::task::JoinSet;

use crate::classify::reply_name;
use crate::client::{Client, Session};
use crate::error::{Error, Result};

/// The error for a reply of the wrong type.
pub(crate) fn unexpected(op: &str, expected: &str, got: &Reply) -> Error {
    Error::Protocol(format!(
        "expected a {expected} reply to {op}, got {}",
        reply_name(got)
    ))
}

/// Unpacks the one reply variant an operation may get.
macro_rules! expect_reply {
    ($reply:expr, $op:literal, $expected:literal, $pattern:pat => $value:expr) => {
        match $reply {
            $pattern => Ok($value),
            other => Err(unexpected($op, $expected, &other)),
        }
    };
}

/// How many times [`Client::login`] logs in, each under a new request id,
/// while nodes answer that its attempt was answered already.
pub(crate) const LOGIN_TRIES: u32 = 3;

impl Client {
    pub(crate) async fn done(&self, op: Operation) -> Result<()> {
        let name = op.name();
        match self.call(op).await? {
            Reply::Done => Ok(()),
            other => Err(unexpected(name, "done", &other)),
        }
    }

    async fn key(&self, op: Operation) -> Result<KeyInfo> {
        let name = op.name();
        match self.call(op).await? {
            Reply::Key(key) => Ok(key),
            other => Err(unexpected(name, "key", &other)),
        }
    }

    /// Logs in and keeps the session token: later calls (on this client and
    /// its clones) carry it. A failed login keeps the previous session.
    /// When a node answers that this login was answered already (its first
    /// answer was lost on the way), it logs in once more under a new
    /// request id: a new attempt, counted toward the lockout as any.
    ///
    /// # Errors
    /// [`Error::Server`] of kind `LoginFailed`, `Locked` or `NotActivated`
    /// (`Conflict` when every one of its tries was answered already), or
    /// as [`Client::call`].
    pub async fn login(&self, username: Username, password: impl Into<Secret>) -> Result<Session> {
        let op = Operation::Login {
            username,
            password: password.into(),
        };
        // A node answers a copy of a login whose attempt was answered
        // already (to another copy, whose answer was lost on its way) with
        // a conflict and checks nothing: logging in again is a new attempt,
        // under a new id, counted as any. A few times at most.
        let mut tries = 0;
        let reply = loop {
            tries += 1;
            match self.call(op.clone()).await {
                Err(e) if e.kind() == Some(ErrorKind::Conflict) && tries < LOGIN_TRIES => {}
                other => break other?,
            }
        };
        expect_reply!(reply, "login", "logged-in",
        Reply::LoggedIn { token, username, role, expires_ms } => {
            self.set_session(Some(token));
            Session { username, role, expires_ms }
        })
    }

    /// Logs out: the session ends on every node (a copy of its token
    /// works nowhere after this returns), and the client forgets it; later
    /// calls are anonymous. The client forgets the token even when the
    /// cluster could not be told (the error says so; the token then lasts
    /// until it expires).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn logout(&self) -> Result<()> {
        self.end_sessions(false).await
    }

    /// Like [`Client::logout`], and every other session of the user issued
    /// so far ends too, whichever client holds it (after a token leaked,
    /// say).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn logout_everywhere(&self) -> Result<()> {
        self.end_sessions(true).await
    }

    async fn end_sessions(&self, everywhere: bool) -> Result<()> {
        if !self.is_logged_in() {
            return Ok(());
        }
        // A node answers a logout of a session that has ended already (a
        // retry after a lost answer) as done.
        let done = self.done(Operation::Logout { everywhere }).await;
        self.set_session(None);
        done
    }

    /// Members, leader and progress of the cluster; also refreshes the
    /// client's member list and leader. Needs no session.
    ///
    /// # Errors
    /// As [`Client::call`]; [`Error::Config`] if the cluster is not the one
    /// the config names.
    pub async fn cluster_info(&self) -> Result<ClusterStatus> {
        let reply = self.call(Operation::ClusterInfo).await?;
        expect_reply!(reply, "cluster-info", "cluster-info", Reply::ClusterInfo(s) => s)
    }

    /// Approves a new member (crypto officer).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn add_node(&self, node: NodeRecord) -> Result<()> {
        self.done(Operation::AddNode { node }).await
    }

    /// Takes a backup of the cluster state now, on the leader, to its
    /// backup destination (crypto officer). It holds every write
    /// acknowledged before the call. A large state takes a while: give the
    /// call a deadline to match ([`Client::with_deadline`]).
    ///
    /// # Errors
    /// As [`Client::call`]; `invalid-input` when the node has no backup
    /// destination.
    pub async fn create_backup(&self) -> Result<BackupInfo> {
        let reply = self.call(Operation::CreateBackup).await?;
        expect_reply!(reply, "create-backup", "backup", Reply::Backup(b) => b)
    }

    /// Lists the backups at the backup destination, newest first (crypto
    /// officer).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn list_backups(&self) -> Result<BackupList> {
        let reply = self.call(Operation::ListBackups).await?;
        expect_reply!(reply, "list-backups", "backups", Reply::Backups(b) => b)
    }

    /// One backup's manifest (crypto officer).
    ///
    /// # Errors
    /// As [`Client::call`]; `not-found`, or `damaged` naming the object.
    pub async fn describe_backup(&self, id: BackupId) -> Result<BackupInfo> {
        let reply = self.call(Operation::DescribeBackup { id }).await?;
        expect_reply!(reply, "describe-backup", "backup", Reply::Backup(b) => b)
    }

    /// Checks a backup's signature and every chunk without restoring it
    /// (crypto officer).
    ///
    /// # Errors
    /// As [`Client::call`]; `damaged` naming the first object that fails.
    pub async fn verify_backup(&self, id: BackupId) -> Result<BackupVerified> {
        let reply = self.call(Operation::VerifyBackup { id }).await?;
        expect_reply!(reply, "verify-backup", "backup-verified", Reply::BackupVerified(v) => v)
    }

    /// Deletes a backup (crypto officer).
    ///
    /// # Errors
    /// As [`Client::call`]; `conflict` while it is marked keep-forever.
    pub async fn delete_backup(&self, id: BackupId) -> Result<()> {
        self.done(Operation::DeleteBackup { id }).await
    }

    /// Marks a backup keep-forever, or clears the mark (crypto officer).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn keep_backup(&self, id: BackupId, forever: bool) -> Result<BackupInfo> {
        let reply = self.call(Operation::KeepBackup { id, forever }).await?;
        expect_reply!(reply, "keep-backup", "backup", Reply::Backup(b) => b)
    }

    /// Removes a member (crypto officer). The leader then rotates the
    /// domain key, which ends every session: log in again afterwards.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn remove_node(&self, node: NodeId) -> Result<()> {
        self.done(Operation::RemoveNode { node }).await?;
        // It runs on, but is no member: no write goes to it first, and the
        // members are read again soon.
        self.forget_member(node);
        Ok(())
    }

    /// Moves leadership to member `to`, or to any voter with every entry
    /// (crypto officer), without stopping the leader, and returns the
    /// member that leads now. Writes wait a moment meanwhile; none fails.
    /// Needs nodes that speak client protocol 2.
    ///
    /// # Errors
    /// As [`Client::call`]; `InvalidInput` if `to` is not a voter;
    /// `Unavailable` if leadership did not move in time.
    pub async fn transfer_leadership(&self, to: Option<NodeId>) -> Result<NodeId> {
        let reply = self.call(Operation::TransferLeadership { to }).await?;
        let leader = expect_reply!(reply, "transfer-leadership", "leadership-moved",
            Reply::LeadershipMoved { leader } => leader)?;
        self.learned_leader(leader);
        Ok(leader)
    }

    /// Each member as the leader sees it (any signed-in user): how many
    /// entries it lacks, which Raft protocol version it agreed on with the
    /// leader, and the cluster's version and the leader's last backup.
    /// Needs nodes that speak client protocol 2.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn member_status(&self) -> Result<hsm_proto::client::MembersReport> {
        let reply = self.call(Operation::MemberStatus).await?;
        expect_reply!(reply, "member-status", "members", Reply::Members(report) => report)
    }

    /// Replaces the domain key with a new generation sealed to the current
    /// members only (crypto officer), and returns the new generation. Every
    /// session ends (this one too: log in again); the leader then re-wraps
    /// every key's material and retires the old generation
    /// ([`ClusterStatus::domain_key`](hsm_proto::client::ClusterStatus)
    /// shows the progress).
    ///
    /// # Errors
    /// As [`Client::call`]; [`ErrorKind::Conflict`](hsm_proto::client::ErrorKind)
    /// while the previous rotation is still re-wrapping.
    pub async fn rotate_domain_key(&self) -> Result<u32> {
        let reply = self.call(Operation::RotateDomainKey).await?;
        expect_reply!(reply, "rotate-domain-key", "domain-key-rotated",
            Reply::DomainKeyRotated { generation } => generation)
    }

    /// Changes another user's password (crypto officer). Every session of
    /// that user ends. One's own needs the current password:
    /// [`Client::change_own_password`].
    ///
    /// # Errors
    /// As [`Client::call`]; `PermissionDenied` for one's own name.
    pub async fn change_password(
        &self,
        username: Username,
        new_password: impl Into<Secret>,
    ) -> Result<()> {
        self.done(Operation::ChangePassword {
            username,
            new_password: new_password.into(),
        })
        .await
    }

    /// Changes the logged-in user's own password, proving the current
    /// one. The check counts as a login: a wrong current password is a
    /// failed login (the fifth in a row locks the user). Every session of
    /// the user ends, this client's too: log in again with the new
    /// password. The unactivated `admin` activates the cluster this way.
    ///
    /// # Errors
    /// [`Error::Server`] of kind `LoginFailed` (wrong current password),
    /// `Locked`, or `InvalidInput` (the new password breaks the policy),
    /// or as [`Client::call`]. `LoginFailed` is definite: no copy of this
    /// request changed the password (a copy checked after its own change
    /// applied answers that change's outcome). After `Unavailable` or a
    /// lost answer the change may still have applied (a retry may then
    /// find the session ended by the change itself, `Unauthenticated`):
    /// log in to find out which password works.
    pub async fn change_own_password(
        &self,
        current_password: impl Into<Secret>,
        new_password: impl Into<Secret>,
    ) -> Result<()> {
        self.done(Operation::ChangeOwnPassword {
            current_password: current_password.into(),
            new_password: new_password.into(),
        })
        .await
    }

    /// Creates a user (crypto officer).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn create_user(
        &self,
        username: Username,
        role: Role,
        password: impl Into<Secret>,
    ) -> Result<()> {
        self.done(Operation::CreateUser {
            username,
            role,
            password: password.into(),
        })
        .await
    }

    /// Deletes a user that owns no keys (crypto officer).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn delete_user(&self, username: Username) -> Result<()> {
        self.done(Operation::DeleteUser { username }).await
    }

    /// Lists users, in name order (crypto officer), a page at a time
    /// ([`Client::list_users_page`]) until the last.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn list_users(&self) -> Result<Vec<UserInfo>> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let (users, next) = self.list_users_page(after, MAX_PAGE).await?;
            all.extend(users);
            match next {
                Some(n) => after = Some(n),
                None => return Ok(all),
            }
        }
    }

    /// One page of users after `after` (`None` for the first), at most
    /// `limit` ([`MAX_PAGE`]); and where the next page starts, `None` at
    /// the end.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn list_users_page(
        &self,
        after: Option<Username>,
        limit: u32,
    ) -> Result<(Vec<UserInfo>, Option<Username>)> {
        let reply = self.call(Operation::ListUsers { after, limit }).await?;
        expect_reply!(reply, "list-users", "users",
            Reply::Users { users, next } => (users, next))
    }

    /// Unlocks a user locked after failed logins (crypto officer).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn unlock_user(&self, username: Username) -> Result<()> {
        self.done(Operation::UnlockUser { username }).await
    }

    /// Generates a key in the HSM, owned by the caller. With
    /// `unique_label`, refused if the caller owns a key with the same label.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn generate_key(
        &self,
        spec: KeySpec,
        attributes: KeyAttributes,
        unique_label: bool,
    ) -> Result<KeyInfo> {
        self.key(Operation::GenerateKey {
            spec,
            attributes,
            unique_label,
        })
        .await
    }

    /// Imports plaintext key material: raw bytes for AES and generic
    /// secrets, PKCS#8 DER for private keys. The key is marked as known
    /// outside the cluster (`provenance.local` false), so it wraps
    /// sensitive keys only once a crypto officer marks it trusted.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn import_key(
        &self,
        spec: KeySpec,
        attributes: KeyAttributes,
        material: Secret,
        unique_label: bool,
    ) -> Result<KeyInfo> {
        self.key(Operation::ImportKey {
            spec,
            attributes,
            material,
            unique_label,
        })
        .await
    }

    /// Imports a public key alone (SubjectPublicKeyInfo DER: what OpenSSL
    /// writes as "PUBLIC KEY"), for verification, RSA-OAEP encryption
    /// and wrapping to an outside party; its type and size come from the
    /// DER. `attributes` may not allow sign, decrypt, unwrap or derive:
    /// the cluster holds no private half.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn import_public_key(
        &self,
        public_key: Vec<u8>,
        attributes: KeyAttributes,
        unique_label: bool,
    ) -> Result<KeyInfo> {
        self.key(Operation::ImportPublicKey {
            public_key,
            attributes,
            unique_label,
        })
        .await
    }

    /// Imports a key that [`Client::wrap_key`] wrapped under
    /// `wrapping_key` (in this cluster or another): the copy gets the
    /// type, usages, one-way attributes and provenance the wrapped key
    /// carries; `attributes` gives label and id, and may only narrow the
    /// usages (none set: the carried ones) and tighten the rest.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn unwrap_key(
        &self,
        wrapping_key: KeyId,
        mechanism: WrapMechanism,
        wrapped: Vec<u8>,
        spec: KeySpec,
        attributes: KeyAttributes,
        unique_label: bool,
    ) -> Result<KeyInfo> {
        self.key(Operation::UnwrapKey {
            wrapping_key,
            mechanism,
            wrapped,
            spec: Some(spec),
            attributes,
            unique_label,
        })
        .await
    }

    /// Exports `key` wrapped under `wrapping_key` (owner only; the key must
    /// be extractable, and a sensitive key needs a wrapping key that is
    /// trusted or was never known outside the cluster), in the cluster's
    /// wrapped-key format, which carries the key's attributes.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn wrap_key(
        &self,
        wrapping_key: KeyId,
        key: KeyId,
        mechanism: WrapMechanism,
    ) -> Result<Vec<u8>> {
        let reply = self
            .call(Operation::WrapKey {
                wrapping_key,
                key,
                mechanism,
            })
            .await?;
        expect_reply!(reply, "wrap-key", "wrapped", Reply::Wrapped(w) => w)
    }

    /// Agrees a secret between `key` and a peer's public key
    /// (SubjectPublicKeyInfo DER) and keeps a key derived from it in the
    /// HSM. The arguments are those of [`Operation::DeriveKey`].
    ///
    /// # Errors
    /// As [`Client::call`].
    #[allow(clippy::too_many_arguments)]
    pub async fn derive_key(
        &self,
        key: KeyId,
        mechanism: DeriveMechanism,
        peer_public_key: Vec<u8>,
        context: Vec<u8>,
        spec: KeySpec,
        attributes: KeyAttributes,
        unique_label: bool,
    ) -> Result<KeyInfo> {
        self.key(Operation::DeriveKey {
            key,
            mechanism,
            peer_public_key,
            context,
            spec,
            attributes,
            unique_label,
        })
        .await
    }

    /// One key's metadata.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn get_key(&self, key: KeyId) -> Result<KeyInfo> {
        self.key(Operation::GetKey { key }).await
    }

    /// The keys visible to the caller that match `filter`, in id order, a
    /// page at a time ([`Client::list_keys_page`]) until the last. Pages
    /// are read one after another, so a key created or deleted meanwhile
    /// may or may not be listed.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn list_keys(&self, filter: KeyFilter) -> Result<Vec<KeyInfo>> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let (keys, next) = self.list_keys_page(filter.clone(), after, MAX_PAGE).await?;
            all.extend(keys);
            match next {
                Some(n) => after = Some(n),
                None => return Ok(all),
            }
        }
    }

    /// One page of the keys visible to the caller that match `filter`,
    /// after `after` (`None` for the first), at most `limit`
    /// ([`MAX_PAGE`]; a page may hold fewer, even none, with more to
    /// come); and where the next page starts, `None` at the end.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn list_keys_page(
        &self,
        filter: KeyFilter,
        after: Option<KeyId>,
        limit: u32,
    ) -> Result<(Vec<KeyInfo>, Option<KeyId>)> {
        let reply = self
            .call(Operation::ListKeys {
                filter,
                after,
                limit,
            })
            .await?;
        expect_reply!(reply, "list-keys", "keys", Reply::Keys { keys, next } => (keys, next))
    }

    /// The public half of a key pair: SubjectPublicKeyInfo DER and PEM.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn export_public_key(&self, key: KeyId) -> Result<(Vec<u8>, String)> {
        let reply = self.call(Operation::ExportPublicKey { key }).await?;
        expect_reply!(reply, "export-public-key", "public-key",
            Reply::PublicKey { der, pem } => (der, pem))
    }

    /// Shares a key with another crypto user (owner only).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn share_key(&self, key: KeyId, with: Username) -> Result<()> {
        self.done(Operation::ShareKey { key, with }).await
    }

    /// Stops sharing a key (owner only).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn unshare_key(&self, key: KeyId, with: Username) -> Result<()> {
        self.done(Operation::UnshareKey { key, with }).await
    }

    /// Changes one attribute of a key.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn set_key_attribute(&self, key: KeyId, attribute: KeyAttribute) -> Result<()> {
        self.done(Operation::SetKeyAttribute { key, attribute })
            .await
    }

    /// Deletes a key (owner only).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn delete_key(&self, key: KeyId) -> Result<()> {
        self.done(Operation::DeleteKey { key }).await
    }

    /// Signs a message (or computes an HMAC); the message is unhashed.
    /// Uses the key's latest version and does not say which: once keys
    /// are rotated, [`Client::sign_batch`] returns the version too.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn sign(
        &self,
        key: KeyId,
        mechanism: SignMechanism,
        message: impl Into<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        let reply = self
            .call(Operation::Sign {
                key,
                mechanism,
                message: message.into(),
            })
            .await?;
        expect_reply!(reply, "sign", "signature", Reply::Signature(s) => s)
    }

    /// Verifies a signature (or an HMAC) with the key's latest version
    /// ([`Client::verify_batch`] takes the version that signed). A
    /// signature that does not verify is `Ok(false)`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn verify(
        &self,
        key: KeyId,
        mechanism: SignMechanism,
        message: impl Into<Vec<u8>>,
        signature: impl Into<Vec<u8>>,
    ) -> Result<bool> {
        let reply = self
            .call(Operation::Verify {
                key,
                mechanism,
                message: message.into(),
                signature: signature.into(),
            })
            .await?;
        expect_reply!(reply, "verify", "verified", Reply::Verified(v) => v)
    }

    /// Encrypts with the key's latest version, without saying which
    /// ([`Client::encrypt_batch`] does). `aad` is the associated data
    /// (AES-GCM) or OAEP label (RSA). For AES-GCM the output is `iv ||
    /// ciphertext || tag`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn encrypt(
        &self,
        key: KeyId,
        mechanism: EncryptMechanism,
        plaintext: impl Into<Secret>,
        aad: impl Into<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        let reply = self
            .call(Operation::Encrypt {
                key,
                mechanism,
                plaintext: plaintext.into(),
                aad: aad.into(),
            })
            .await?;
        expect_reply!(reply, "encrypt", "ciphertext", Reply::Ciphertext(c) => c)
    }

    /// Decrypts what [`Client::encrypt`] produced, with the same `aad`, with
    /// the key's latest version ([`Client::decrypt_versioned`] takes the
    /// version that encrypted).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn decrypt(
        &self,
        key: KeyId,
        mechanism: EncryptMechanism,
        ciphertext: impl Into<Vec<u8>>,
        aad: impl Into<Vec<u8>>,
    ) -> Result<Secret> {
        let reply = self
            .call(Operation::Decrypt {
                key,
                mechanism,
                ciphertext: ciphertext.into(),
                aad: aad.into(),
            })
            .await?;
        expect_reply!(reply, "decrypt", "plaintext", Reply::Plaintext(p) => p)
    }

    /// Hashes `data`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn digest(
        &self,
        algorithm: DigestAlgorithm,
        data: impl Into<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        let reply = self
            .call(Operation::Digest {
                algorithm,
                data: data.into(),
            })
            .await?;
        expect_reply!(reply, "digest", "digest", Reply::Digest(d) => d)
    }

    /// `len` random bytes (at most 65536) from the HSM's generator.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn random(&self, len: u32) -> Result<Vec<u8>> {
        let reply = self.call(Operation::Random { len }).await?;
        expect_reply!(reply, "random", "random", Reply::Random(r) => r)
    }

    /// Runs many operations concurrently, within the client's in-flight
    /// bound, and returns their results in the order given. Each has its
    /// own request id and deadline, counted from when it starts. Dropping
    /// the future cancels the operations not yet done.
    pub async fn call_many(&self, ops: impl IntoIterator<Item = Operation>) -> Vec<Result<Reply>> {
        let window = self.max_in_flight();
        let mut results: Vec<Option<Result<Reply>>> = Vec::new();
        let mut running = JoinSet::new();
        for (i, op) in ops.into_iter().enumerate() {
            results.push(None);
            // At most `window` tasks exist at once: memory stays bounded
            // however many operations come.
            if running.len() >= window {
                collect(&mut running, &mut results).await;
            }
            let client = self.clone();
            running.spawn(async move { (i, client.call(op).await) });
        }
        while !running.is_empty() {
            collect(&mut running, &mut results).await;
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::Protocol("call task failed".into()))))
            .collect()
    }

    /// Signs many messages with one key; one result per message, in
    /// order. Messages go [`SIGN_MANY_CHUNK`] at a time (fewer when large)
    /// in one [`Operation::SignMany`] request each, the requests
    /// concurrently (see [`Client::call_many`]): the key and the session
    /// are checked once per request, and one round trip serves them all.
    pub async fn sign_many(
        &self,
        key: KeyId,
        mechanism: SignMechanism,
        messages: impl IntoIterator<Item = Vec<u8>>,
    ) -> Vec<Result<Vec<u8>>> {
        let mut chunks: Vec<Vec<ByteBuf>> = Vec::new();
        let mut bytes = 0usize;
        for message in messages {
            let fits = chunks.last().is_some_and(|c| {
                c.len() < SIGN_MANY_CHUNK && bytes + message.len() <= SIGN_MANY_CHUNK_BYTES
            });
            if !fits {
                chunks.push(Vec::new());
                bytes = 0;
            }
            bytes += message.len();
            if let Some(chunk) = chunks.last_mut() {
                chunk.push(ByteBuf::from(message));
            }
        }
        let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
        let ops = chunks.into_iter().map(|messages| Operation::SignMany {
            key,
            mechanism,
            messages,
        });
        let replies = self.call_many(ops).await;
        let mut out = Vec::new();
        for (reply, size) in replies.into_iter().zip(sizes) {
            match reply {
                Ok(Reply::Signatures(signatures)) if signatures.len() == size => out.extend(
                    signatures
                        .into_iter()
                        .map(|r| r.map(ByteBuf::into_vec).map_err(Error::Server)),
                ),
                Ok(other) => {
                    let e = Error::Protocol(format!(
                        "sign-many of {size} answered {} instead of {size} signatures",
                        match &other {
                            Reply::Signatures(s) => format!("{} signatures", s.len()),
                            _ => crate::classify::reply_name(&other).to_string(),
                        }
                    ));
                    out.extend(std::iter::repeat_n(Err(e), size));
                }
                Err(e) => out.extend(std::iter::repeat_n(Err(e), size)),
            }
        }
        out
    }
}

/// Most messages [`Client::sign_many`] puts in one request.
pub const SIGN_MANY_CHUNK: usize = 64;
/// Most message bytes [`Client::sign_many`] puts in one request (a larger
/// message goes alone), so that a request and its answer fit the smallest
/// frame a node may be configured to take.
pub const SIGN_MANY_CHUNK_BYTES: usize = 32 * 1024;

type Done = (usize, Result<Reply>);

async fn collect(running: &mut JoinSet<Done>, results: &mut [Option<Result<Reply>>]) {
    match running.join_next().await {
        Some(Ok((i, r))) => {
            if let Some(slot) = results.get_mut(i) {
                *slot = Some(r);
            }
        }
        // A task that panicked leaves its slot empty.
        Some(Err(e)) => tracing::warn!(error = %e, "call task failed"),
        None => {}
    }
}
