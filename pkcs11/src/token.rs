//! A slot's token: one cluster, reached through the SDK.
//!
//! The SDK balances each call over the nodes and retries it elsewhere
//! (same request id) when a node fails, within its deadline, so a node
//! lost mid-session is not the application's problem. The token adds the
//! PKCS#11 login state (one login per application, shared by all its
//! sessions) and logs in again by itself when the cluster ended the
//! session (expiry, a domain key rotation), with the credentials it keeps
//! in memory for that (zeroized on logout and finalize; never written or
//! logged).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use cryptoki_sys::*;
use hsm_client::{Client, ClientOptions, Error};
use hsm_proto::client::{ErrorKind, KeyFilter, KeyInfo, Operation, Reply, Secret};
use hsm_proto::{KeyId, Role, Username};

use crate::config::SlotConfig;
use crate::objects::Part;
use crate::rv::Rv;

/// Who is logged in, and how to log in again.
struct Login {
    username: Username,
    password: Secret,
    role: Role,
}

/// Object handles: a stable number for each object seen, for the life of
/// the module, and the latest record of each key.
#[derive(Default)]
struct Handles {
    by_object: BTreeMap<(KeyId, Part), CK_OBJECT_HANDLE>,
    objects: Vec<(KeyId, Part)>,
    records: BTreeMap<KeyId, KeyInfo>,
}

/// One slot's token.
pub struct Token {
    /// Its `CK_SLOT_ID`.
    pub slot: CK_SLOT_ID,
    /// What the config says of it.
    pub config: SlotConfig,
    client: Client,
    login: Mutex<Option<Login>>,
    handles: Mutex<Handles>,
}

/// How long one cluster call may take, retries across nodes included.
pub const CALL_DEADLINE: Duration = Duration::from_secs(15);

impl Token {
    /// A token for `config` (no connection is made yet). Must be called
    /// inside the module's runtime (the SDK binds its socket there).
    ///
    /// # Errors
    /// The SDK's refusal of the config, as a message.
    pub fn new(slot: CK_SLOT_ID, config: SlotConfig) -> Result<Token, String> {
        let mut options = ClientOptions::default();
        options.deadline = CALL_DEADLINE;
        options.zone = config.cluster.zone.clone();
        let client = Client::new(config.cluster.clone(), options).map_err(|e| e.to_string())?;
        Ok(Token {
            slot,
            config,
            client,
            login: Mutex::new(None),
            handles: Mutex::new(Handles::default()),
        })
    }

    /// The logged-in user's role, if any.
    pub fn role(&self) -> Option<Role> {
        lock(&self.login).as_ref().map(|l| l.role)
    }

    /// The logged-in user, if any.
    pub fn user(&self) -> Option<Username> {
        lock(&self.login).as_ref().map(|l| l.username.clone())
    }

    /// Logs in as `username` with `password`.
    ///
    /// # Errors
    /// `CKR_PIN_INCORRECT`, `CKR_PIN_LOCKED`, `CKR_USER_PIN_NOT_INITIALIZED`
    /// (cluster not activated) or a device error.
    pub async fn login(&self, username: Username, password: Secret) -> Result<Role, Rv> {
        let session = self
            .client
            .login(username.clone(), password.clone())
            .await
            .map_err(|e| Rv::of_login(&e))?;
        // Records seen by a previous user are not this one's to read.
        lock(&self.handles).records.clear();
        *lock(&self.login) = Some(Login {
            username,
            password,
            role: session.role,
        });
        Ok(session.role)
    }

    /// Logs out: the session ends on every node and the credentials are
    /// dropped (zeroized).
    pub async fn logout(&self) {
        let had = lock(&self.login).take();
        lock(&self.handles).records.clear();
        if had.is_some() {
            // The token is forgotten even when the cluster cannot be told.
            let _ = self.client.logout().await;
        }
    }

    /// Makes `op`, logging in again once when the cluster says the session
    /// ended (it expired, or a rotation ended it) and credentials are kept;
    /// when that login is refused (the password changed elsewhere) the
    /// credentials are dropped, so they are not tried again toward the
    /// lockout, and the call fails as not logged in.
    ///
    /// # Errors
    /// The SDK's error.
    pub async fn call(&self, op: Operation) -> Result<Reply, Error> {
        match self.client.call(op.clone()).await {
            Err(e) if e.kind() == Some(ErrorKind::Unauthenticated) => {
                let again = lock(&self.login)
                    .as_ref()
                    .map(|l| (l.username.clone(), l.password.clone()));
                let Some((username, password)) = again else {
                    return Err(e);
                };
                if let Err(refused) = self.client.login(username, password).await {
                    // A password changed or reset elsewhere: trying it on
                    // every call would lock the user out. Logged out.
                    if matches!(
                        refused.kind(),
                        Some(ErrorKind::LoginFailed | ErrorKind::Locked)
                    ) {
                        lock(&self.login).take();
                        lock(&self.handles).records.clear();
                        return Err(e);
                    }
                    return Err(refused);
                }
                self.client.call(op).await
            }
            other => other,
        }
    }

    /// Every key the user sees, recorded; each key's objects.
    ///
    /// # Errors
    /// The SDK's error.
    pub async fn list(&self) -> Result<Vec<KeyInfo>, Error> {
        let mut all = Vec::new();
        let mut after = None;
        // Bounded: each page moves `after` forward, and a page holds up to
        // the node's page size; 100,000 pages is far past any real token.
        for _ in 0..100_000 {
            let reply = self
                .call(Operation::ListKeys {
                    filter: KeyFilter::default(),
                    after,
                    limit: hsm_proto::client::MAX_PAGE,
                })
                .await?;
            let Reply::Keys { keys, next } = reply else {
                return Err(Error::Protocol(
                    "list-keys answered with another reply".into(),
                ));
            };
            all.extend(keys);
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let mut h = lock(&self.handles);
        h.records.clear();
        for k in &all {
            h.records.insert(k.id, k.clone());
        }
        Ok(all)
    }

    /// The record of `key`, from the cluster.
    ///
    /// # Errors
    /// The SDK's error.
    pub async fn refresh(&self, key: KeyId) -> Result<KeyInfo, Error> {
        match self.call(Operation::GetKey { key }).await {
            Ok(Reply::Key(info)) => {
                lock(&self.handles).records.insert(key, info.clone());
                Ok(info)
            }
            Ok(_) => Err(Error::Protocol(
                "get-key answered with another reply".into(),
            )),
            Err(e) => {
                if e.kind() == Some(ErrorKind::NotFound) {
                    lock(&self.handles).records.remove(&key);
                }
                Err(e)
            }
        }
    }

    /// The latest record of `key` this token holds, if any.
    pub fn record(&self, key: KeyId) -> Option<KeyInfo> {
        lock(&self.handles).records.get(&key).cloned()
    }

    /// Forgets `key` (deleted).
    pub fn forget(&self, key: KeyId) {
        lock(&self.handles).records.remove(&key);
    }

    /// The handle of an object, made on first sight.
    pub fn handle(&self, key: KeyId, part: Part) -> CK_OBJECT_HANDLE {
        let mut h = lock(&self.handles);
        if let Some(handle) = h.by_object.get(&(key, part)) {
            return *handle;
        }
        h.objects.push((key, part));
        // Handles count from 1 (0 is CK_INVALID_HANDLE) and never repeat.
        let handle = h.objects.len() as CK_OBJECT_HANDLE;
        h.by_object.insert((key, part), handle);
        handle
    }

    /// The object a handle names.
    pub fn object(&self, handle: CK_OBJECT_HANDLE) -> Option<(KeyId, Part)> {
        let index = usize::try_from(handle).ok()?.checked_sub(1)?;
        lock(&self.handles).objects.get(index).copied()
    }
}

/// Locks `m`, carrying on with the data of a panicked holder: every value
/// kept under these locks is whole after each statement.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
