//! The module's state and the PKCS#11 functions, in safe Rust.
//!
//! `ffi` turns each C call into a call here with plain Rust values (slices,
//! `Option` for a null output buffer) and writes back what comes out;
//! everything between is here: the one [`Module`] (tokens, sessions, the
//! tokio runtime the SDK runs on), sessions and their operations, and the
//! cluster calls. Every function returns `Result<_, Rv>`; nothing here
//! panics on a caller's input.
//!
//! Threads: any number may call at once. The module lock is held only to
//! clone the module's `Arc`; a session's lock is held for the length of
//! one call on that session (PKCS#11 asks applications to use a session
//! from one thread at a time; one that does not is serialised, not
//! corrupted). Cluster calls run on the calling thread, bounded, which
//! drives the module's runtime meanwhile ([`Driver`]).
//!
//! Fork: a child process does not inherit the runtime's threads. A module
//! initialised in another process answers `CKR_CRYPTOKI_NOT_INITIALIZED`
//! until `C_Initialize` is called in this one, which starts afresh
//! (sessions and login do not cross a fork, as PKCS#11 says).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cryptoki_sys::*;
use hsm_proto::client::{KeyInfo, Operation, Reply, Secret};
use hsm_proto::{KeyAttribute, KeyId, Role, Username};

use crate::driver::Driver;
use crate::mechanisms::{
    cipher_plan, derive_plan, digest_plan, info_of, sign_plan, wrap_plan, CipherPlan, Hasher, Info,
    Param, SignPlan, GCM_IV_LEN, GCM_TAG_LEN, MECHANISMS,
};
use crate::objects::{Object, Part, Unreadable};
use crate::public::{ecdsa_der_to_raw, ecdsa_raw_to_der, CertificateParts};
use crate::rv::{Doing, Rv};
use crate::templates::{self, Attr, NewKey};
use crate::token::{lock, Token, CALL_DEADLINE};

/// Most data one multi-part operation gathers (HMAC, Ed25519, AES-GCM and
/// the raw forms take their input whole).
pub const MAX_GATHERED: usize = 16 * 1024 * 1024;
/// Most sessions open at once.
pub const MAX_SESSIONS: usize = 4096;

static STATE: Mutex<Option<Arc<Module>>> = Mutex::new(None);

/// The initialised module.
pub struct Module {
    pid: u32,
    driver: Driver,
    tokens: Vec<Arc<Token>>,
    sessions: Mutex<BTreeMap<CK_SESSION_HANDLE, Arc<Mutex<Session>>>>,
    next_session: AtomicU64,
}

/// `C_Initialize`. With `own_threads`, a thread of the module's keeps
/// the connections alive between calls; without (the application set
/// `CKF_LIBRARY_CANT_CREATE_OS_THREADS`), nothing runs between calls.
///
/// # Errors
/// `CKR_CRYPTOKI_ALREADY_INITIALIZED`; `CKR_GENERAL_ERROR` when the config
/// cannot be read or the runtime cannot start.
pub fn initialize(own_threads: bool) -> Result<(), Rv> {
    let mut state = lock(&STATE);
    if let Some(m) = state.as_ref() {
        if m.pid == std::process::id() {
            return Err(Rv(CKR_CRYPTOKI_ALREADY_INITIALIZED));
        }
        // Forked: the parent's runtime threads do not exist here, so the
        // runtime cannot be shut down; leave it be.
        if let Some(old) = state.take() {
            std::mem::forget(old);
        }
    }
    let configs = crate::config::load().map_err(|message| {
        eprintln!("hsm-pkcs11: {message}");
        Rv(CKR_GENERAL_ERROR)
    })?;
    let driver = Driver::new(own_threads).map_err(|_| Rv(CKR_GENERAL_ERROR))?;
    let tokens = {
        let _entered = driver.enter();
        configs
            .into_iter()
            .enumerate()
            .map(|(i, c)| Token::new(i as CK_SLOT_ID, c).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|message| {
                eprintln!("hsm-pkcs11: {message}");
                Rv(CKR_GENERAL_ERROR)
            })?
    };
    *state = Some(Arc::new(Module {
        pid: std::process::id(),
        driver,
        tokens,
        sessions: Mutex::new(BTreeMap::new()),
        next_session: AtomicU64::new(1),
    }));
    Ok(())
}

/// `C_Finalize`: logs every token out and stops the runtime.
///
/// # Errors
/// `CKR_CRYPTOKI_NOT_INITIALIZED`.
pub fn finalize() -> Result<(), Rv> {
    let m = get()?;
    let _ = m.close_all_sessions(None);
    for t in m.tokens.clone() {
        let _ = m.block(async move { t.logout().await });
    }
    lock(&STATE).take();
    Ok(())
}

/// The module, when initialised in this process.
///
/// # Errors
/// `CKR_CRYPTOKI_NOT_INITIALIZED`.
pub fn get() -> Result<Arc<Module>, Rv> {
    match lock(&STATE).as_ref() {
        Some(m) if m.pid == std::process::id() => Ok(m.clone()),
        _ => Err(Rv(CKR_CRYPTOKI_NOT_INITIALIZED)),
    }
}

/// What an operation hands back for an output buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Out {
    /// Only the length was asked (null buffer): the operation goes on.
    Len(usize),
    /// The output: the operation is over.
    Bytes(Vec<u8>),
    /// The buffer is too short for this many bytes: the operation goes
    /// on, and the next call with a buffer this long gets them.
    TooSmall(usize),
}

/// Hands out the output kept in `kept` if it fits in `capacity` bytes;
/// else keeps it for the next call.
fn hand_out(kept: &mut Option<Vec<u8>>, capacity: usize) -> Out {
    match kept.take() {
        Some(out) if out.len() > capacity => {
            let len = out.len();
            *kept = Some(out);
            Out::TooSmall(len)
        }
        Some(out) => Out::Bytes(out),
        None => Out::Bytes(Vec::new()),
    }
}

/// The data of a sign or verify operation so far.
enum Gathered {
    Hash(Box<Hasher>),
    Bytes(Vec<u8>),
}

struct SignOp {
    key: KeyId,
    plan: SignPlan,
    data: Gathered,
    kept: Option<Vec<u8>>,
}

impl SignOp {
    fn update(&mut self, part: &[u8]) -> Result<(), Rv> {
        match &mut self.data {
            Gathered::Hash(h) => h.update(part),
            Gathered::Bytes(b) => {
                if b.len() + part.len() > MAX_GATHERED {
                    return Err(Rv(CKR_DATA_LEN_RANGE));
                }
                b.extend_from_slice(part);
            }
        }
        Ok(())
    }

    /// What the cluster signs for everything gathered.
    fn input(&mut self) -> Vec<u8> {
        let data = std::mem::replace(&mut self.data, Gathered::Bytes(Vec::new()));
        match (data, self.plan.input.hash()) {
            (Gathered::Hash(h), Some(hash)) => self.plan.input.from_hash(hash, h.finish()),
            (Gathered::Hash(h), None) => h.finish(),
            (Gathered::Bytes(b), _) => b,
        }
    }
}

struct CipherOp {
    key: KeyId,
    plan: CipherPlan,
    data: Vec<u8>,
    kept: Option<Vec<u8>>,
}

struct DigestOp {
    hasher: Option<Hasher>,
    len: usize,
    kept: Option<Vec<u8>>,
}

/// One session.
pub struct Session {
    token: Arc<Token>,
    rw: bool,
    find: Option<std::vec::IntoIter<CK_OBJECT_HANDLE>>,
    sign: Option<SignOp>,
    verify: Option<SignOp>,
    encrypt: Option<CipherOp>,
    decrypt: Option<CipherOp>,
    digest: Option<DigestOp>,
    /// Keys made with `CKA_TOKEN` false here: destroyed when it closes.
    session_keys: Vec<KeyId>,
}

/// What `C_GetSessionInfo` says.
#[derive(Debug, Clone, Copy)]
pub struct SessionInfo {
    /// The slot.
    pub slot: CK_SLOT_ID,
    /// `CKS_*`.
    pub state: CK_STATE,
    /// `CKF_SERIAL_SESSION`, and `CKF_RW_SESSION` if so.
    pub flags: CK_FLAGS,
}

/// What `C_GetTokenInfo` says that depends on the state.
#[derive(Debug, Clone)]
pub struct TokenStatus {
    /// The label.
    pub label: String,
    /// The cluster id (serial number: its first 16 hex digits).
    pub cluster_id: String,
    /// Sessions open on it.
    pub sessions: usize,
    /// Read-write sessions open on it.
    pub rw_sessions: usize,
}

fn is_session_key(session: &Session, key: KeyId) -> bool {
    session.session_keys.contains(&key)
}

impl Module {
    /// Runs `f` on the calling thread, bounded (see [`Driver`]).
    fn block<F>(&self, f: F) -> Result<F::Output, Rv>
    where
        F: Future + Send,
        F::Output: Send,
    {
        let bound = CALL_DEADLINE + Duration::from_secs(30);
        self.driver
            .run(async { tokio::time::timeout(bound, f).await })
            .ok_or(Rv(CKR_FUNCTION_FAILED))?
            .map_err(|_| Rv(CKR_DEVICE_ERROR))
    }

    /// Makes `op` on `token`.
    fn call(&self, token: &Arc<Token>, op: Operation, doing: Doing) -> Result<Reply, Rv> {
        let t = token.clone();
        self.block(async move { t.call(op).await })?
            .map_err(|e| Rv::of(&e, doing))
    }

    /// The slots.
    pub fn slots(&self) -> Vec<CK_SLOT_ID> {
        self.tokens.iter().map(|t| t.slot).collect()
    }

    fn token(&self, slot: CK_SLOT_ID) -> Result<&Arc<Token>, Rv> {
        self.tokens
            .iter()
            .find(|t| t.slot == slot)
            .ok_or(Rv(CKR_SLOT_ID_INVALID))
    }

    /// What `C_GetTokenInfo` needs.
    ///
    /// # Errors
    /// `CKR_SLOT_ID_INVALID`.
    pub fn token_status(&self, slot: CK_SLOT_ID) -> Result<TokenStatus, Rv> {
        let token = self.token(slot)?;
        let sessions: Vec<_> = lock(&self.sessions).values().cloned().collect();
        let (mut all, mut rw) = (0, 0);
        for s in sessions {
            let s = lock(&s);
            if Arc::ptr_eq(&s.token, token) {
                all += 1;
                rw += usize::from(s.rw);
            }
        }
        Ok(TokenStatus {
            label: token.config.label.clone(),
            cluster_id: token.config.cluster.cluster_id.clone(),
            sessions: all,
            rw_sessions: rw,
        })
    }

    /// `C_GetMechanismList`.
    ///
    /// # Errors
    /// `CKR_SLOT_ID_INVALID`.
    pub fn mechanisms(&self, slot: CK_SLOT_ID) -> Result<Vec<CK_MECHANISM_TYPE>, Rv> {
        self.token(slot)?;
        Ok(MECHANISMS.iter().map(|i| i.mechanism).collect())
    }

    /// `C_GetMechanismInfo`.
    ///
    /// # Errors
    /// `CKR_SLOT_ID_INVALID`, `CKR_MECHANISM_INVALID`.
    pub fn mechanism_info(&self, slot: CK_SLOT_ID, m: CK_MECHANISM_TYPE) -> Result<Info, Rv> {
        self.token(slot)?;
        info_of(m).ok_or(Rv(CKR_MECHANISM_INVALID))
    }

    /// `C_OpenSession`.
    ///
    /// # Errors
    /// `CKR_SLOT_ID_INVALID`, `CKR_SESSION_PARALLEL_NOT_SUPPORTED` without
    /// `CKF_SERIAL_SESSION`, `CKR_SESSION_COUNT` past [`MAX_SESSIONS`].
    pub fn open_session(&self, slot: CK_SLOT_ID, flags: CK_FLAGS) -> Result<CK_SESSION_HANDLE, Rv> {
        let token = self.token(slot)?.clone();
        if flags & CKF_SERIAL_SESSION == 0 {
            return Err(Rv(CKR_SESSION_PARALLEL_NOT_SUPPORTED));
        }
        let mut sessions = lock(&self.sessions);
        if sessions.len() >= MAX_SESSIONS {
            return Err(Rv(CKR_SESSION_COUNT));
        }
        let handle = self.next_session.fetch_add(1, Ordering::Relaxed) as CK_SESSION_HANDLE;
        sessions.insert(
            handle,
            Arc::new(Mutex::new(Session {
                token,
                rw: flags & CKF_RW_SESSION != 0,
                find: None,
                sign: None,
                verify: None,
                encrypt: None,
                decrypt: None,
                digest: None,
                session_keys: Vec::new(),
            })),
        );
        Ok(handle)
    }

    fn session(&self, handle: CK_SESSION_HANDLE) -> Result<Arc<Mutex<Session>>, Rv> {
        lock(&self.sessions)
            .get(&handle)
            .cloned()
            .ok_or(Rv(CKR_SESSION_HANDLE_INVALID))
    }

    /// Every open session, the module's list released before returning.
    fn all_sessions(&self) -> Vec<(CK_SESSION_HANDLE, Arc<Mutex<Session>>)> {
        lock(&self.sessions)
            .iter()
            .map(|(h, s)| (*h, s.clone()))
            .collect()
    }

    fn token_of(&self, handle: CK_SESSION_HANDLE) -> Result<Arc<Token>, Rv> {
        let session = self.session(handle)?;
        let token = lock(&session).token.clone();
        Ok(token)
    }

    /// `C_CloseSession`: its session objects are destroyed; the last
    /// session of a token logs it out, as PKCS#11 says.
    ///
    /// # Errors
    /// `CKR_SESSION_HANDLE_INVALID`.
    pub fn close_session(&self, handle: CK_SESSION_HANDLE) -> Result<(), Rv> {
        let session = lock(&self.sessions)
            .remove(&handle)
            .ok_or(Rv(CKR_SESSION_HANDLE_INVALID))?;
        let (token, keys) = {
            let mut s = lock(&session);
            (s.token.clone(), std::mem::take(&mut s.session_keys))
        };
        self.destroy_session_keys(&token, keys);
        // The module's session list is not held while a session is locked
        // (a session's lock lasts a whole cluster call).
        let last = !self
            .all_sessions()
            .iter()
            .any(|(_, s)| Arc::ptr_eq(&lock(s).token, &token));
        if last {
            let t = token.clone();
            let _ = self.block(async move { t.logout().await });
        }
        Ok(())
    }

    /// `C_CloseAllSessions` (all slots when `slot` is `None`).
    ///
    /// # Errors
    /// `CKR_SLOT_ID_INVALID`.
    pub fn close_all_sessions(&self, slot: Option<CK_SLOT_ID>) -> Result<(), Rv> {
        if let Some(slot) = slot {
            self.token(slot)?;
        }
        let handles: Vec<_> = self
            .all_sessions()
            .into_iter()
            .filter(|(_, s)| slot.is_none_or(|slot| lock(s).token.slot == slot))
            .map(|(h, _)| h)
            .collect();
        for h in handles {
            let _ = self.close_session(h);
        }
        Ok(())
    }

    /// `C_GetSessionInfo`.
    ///
    /// # Errors
    /// `CKR_SESSION_HANDLE_INVALID`.
    pub fn session_info(&self, handle: CK_SESSION_HANDLE) -> Result<SessionInfo, Rv> {
        let session = self.session(handle)?;
        let s = lock(&session);
        let state = match (s.token.role(), s.rw) {
            (None, false) => CKS_RO_PUBLIC_SESSION,
            (None, true) => CKS_RW_PUBLIC_SESSION,
            (Some(Role::Co), true) => CKS_RW_SO_FUNCTIONS,
            (Some(_), false) => CKS_RO_USER_FUNCTIONS,
            (Some(_), true) => CKS_RW_USER_FUNCTIONS,
        };
        Ok(SessionInfo {
            slot: s.token.slot,
            state,
            flags: CKF_SERIAL_SESSION | if s.rw { CKF_RW_SESSION } else { 0 },
        })
    }

    /// `C_Login`: the PIN is `username:password`. `CKU_SO` needs a crypto
    /// officer; `CKU_USER` takes any user (crypto users own keys).
    ///
    /// # Errors
    /// `CKR_USER_ALREADY_LOGGED_IN`, `CKR_USER_TYPE_INVALID`,
    /// `CKR_PIN_INCORRECT` (also for a PIN without `:` and for an SO login
    /// of a user who is none), `CKR_PIN_LOCKED`, `CKR_DEVICE_ERROR`.
    pub fn login(
        &self,
        handle: CK_SESSION_HANDLE,
        user_type: CK_USER_TYPE,
        pin: &[u8],
    ) -> Result<(), Rv> {
        self.login_as(handle, user_type, || split_pin(pin))
    }

    /// `C_LoginUser` (PKCS#11 3.0): the username apart from the password.
    /// An empty username makes it `C_Login`, the PIN being
    /// `username:password`.
    ///
    /// # Errors
    /// As [`Module::login`].
    pub fn login_user(
        &self,
        handle: CK_SESSION_HANDLE,
        user_type: CK_USER_TYPE,
        pin: &[u8],
        username: &[u8],
    ) -> Result<(), Rv> {
        if username.is_empty() {
            return self.login(handle, user_type, pin);
        }
        self.login_as(handle, user_type, || {
            let name = std::str::from_utf8(username).ok()?;
            Some((Username::new(name).ok()?, Secret::new(pin.to_vec())))
        })
    }

    fn login_as(
        &self,
        handle: CK_SESSION_HANDLE,
        user_type: CK_USER_TYPE,
        credentials: impl FnOnce() -> Option<(Username, Secret)>,
    ) -> Result<(), Rv> {
        let token = self.token_of(handle)?;
        if token.role().is_some() {
            return Err(Rv(CKR_USER_ALREADY_LOGGED_IN));
        }
        if user_type != CKU_USER && user_type != CKU_SO {
            return Err(Rv(CKR_USER_TYPE_INVALID));
        }
        let (username, password) = credentials().ok_or(Rv(CKR_PIN_INCORRECT))?;
        let t = token.clone();
        let role = self.block(async move { t.login(username, password).await })??;
        if user_type == CKU_SO && role != Role::Co {
            let t = token.clone();
            let _ = self.block(async move { t.logout().await });
            return Err(Rv(CKR_PIN_INCORRECT));
        }
        Ok(())
    }

    /// `C_Logout`: the application's session objects are destroyed first.
    ///
    /// # Errors
    /// `CKR_USER_NOT_LOGGED_IN`.
    pub fn logout(&self, handle: CK_SESSION_HANDLE) -> Result<(), Rv> {
        let token = self.token_of(handle)?;
        if token.role().is_none() {
            return Err(Rv(CKR_USER_NOT_LOGGED_IN));
        }
        // PKCS#11: logging out destroys the application's private session
        // objects (all of them are keys, so private), in every session.
        for (_, session) in self.all_sessions() {
            let keys = {
                let mut s = lock(&session);
                if !Arc::ptr_eq(&s.token, &token) {
                    continue;
                }
                std::mem::take(&mut s.session_keys)
            };
            self.destroy_session_keys(&token, keys);
        }
        let t = token.clone();
        self.block(async move { t.logout().await })?;
        Ok(())
    }

    /// Deletes session keys (best effort: one the cluster cannot delete now
    /// stays, owned by the user, as any key).
    fn destroy_session_keys(&self, token: &Arc<Token>, keys: Vec<KeyId>) {
        for key in keys {
            let _ = self.call(token, Operation::DeleteKey { key }, Doing::Object);
            token.forget(key);
        }
    }

    /// `C_SetPIN`: changes the logged-in user's own password. The old PIN
    /// is `username:password` (or the password alone); the new one is
    /// `username:password` of the same user or the new password alone.
    ///
    /// # Errors
    /// `CKR_USER_NOT_LOGGED_IN`, `CKR_PIN_INCORRECT`, `CKR_PIN_INVALID`
    /// (the cluster refuses the new password), `CKR_PIN_LOCKED`.
    pub fn set_pin(&self, handle: CK_SESSION_HANDLE, old: &[u8], new: &[u8]) -> Result<(), Rv> {
        let session = self.session(handle)?;
        let token = lock(&session).token.clone();
        let user = token.user().ok_or(Rv(CKR_USER_NOT_LOGGED_IN))?;
        let password_of = |pin: &[u8]| -> Result<Secret, Rv> {
            match split_pin(pin) {
                Some((name, password)) if name == user => Ok(password),
                Some(_) => Err(Rv(CKR_PIN_INCORRECT)),
                None => Ok(Secret::new(pin.to_vec())),
            }
        };
        let (current, new) = (password_of(old)?, password_of(new)?);
        let reply = self.call(
            &token,
            Operation::ChangeOwnPassword {
                current_password: current,
                new_password: new.clone(),
            },
            Doing::Other,
        );
        match reply {
            Ok(_) => {
                // Every session of the user ended: log in with the new one.
                let t = token.clone();
                self.block(async move { t.login(user, new).await })??;
                Ok(())
            }
            Err(Rv(CKR_FUNCTION_FAILED)) => Err(Rv(CKR_PIN_INVALID)),
            Err(e) => Err(e),
        }
    }

    fn logged_in(token: &Token) -> Result<(), Rv> {
        token.role().map(|_| ()).ok_or(Rv(CKR_USER_NOT_LOGGED_IN))
    }

    /// The record and part behind `object`, on `session`'s token.
    fn object_of(&self, s: &Session, object: CK_OBJECT_HANDLE) -> Result<(KeyInfo, Part), Rv> {
        let (key, part) = s
            .token
            .object(object)
            .ok_or(Rv(CKR_OBJECT_HANDLE_INVALID))?;
        let info = match s.token.record(key) {
            Some(info) => info,
            None => {
                let t = s.token.clone();
                self.block(async move { t.refresh(key).await })?
                    .map_err(|e| Rv::of(&e, Doing::Object))?
            }
        };
        Ok((info, part))
    }

    fn view<'a>(s: &Session, info: &'a KeyInfo, part: Part) -> Object<'a> {
        Object {
            key: info,
            part,
            owned: s.token.user().is_some_and(|u| u == info.owner),
            session: is_session_key(s, info.id),
        }
    }

    /// `C_FindObjectsInit`: every object of every key the user sees that
    /// matches the template (none before login).
    ///
    /// # Errors
    /// `CKR_OPERATION_ACTIVE`, `CKR_DEVICE_ERROR`.
    pub fn find_init(&self, handle: CK_SESSION_HANDLE, template: &[Attr]) -> Result<(), Rv> {
        let session = self.session(handle)?;
        let mut s = lock(&session);
        if s.find.is_some() {
            return Err(Rv(CKR_OPERATION_ACTIVE));
        }
        let mut found = Vec::new();
        if s.token.role().is_some() {
            let t = s.token.clone();
            let keys = self
                .block(async move { t.list().await })?
                .map_err(|e| Rv::of(&e, Doing::Other))?;
            for key in &keys {
                for part in Part::of(key) {
                    if Self::view(&s, key, *part).matches(template) {
                        found.push(s.token.handle(key.id, *part));
                    }
                }
            }
        }
        s.find = Some(found.into_iter());
        Ok(())
    }

    /// `C_FindObjects`.
    ///
    /// # Errors
    /// `CKR_OPERATION_NOT_INITIALIZED`.
    pub fn find(&self, handle: CK_SESSION_HANDLE, max: usize) -> Result<Vec<CK_OBJECT_HANDLE>, Rv> {
        let session = self.session(handle)?;
        let mut s = lock(&session);
        let it = s.find.as_mut().ok_or(Rv(CKR_OPERATION_NOT_INITIALIZED))?;
        Ok(it.take(max).collect())
    }

    /// `C_SessionCancel` (PKCS#11 3.0): ends the session's operations
    /// that `flags` name (`CKF_SIGN`, `CKF_VERIFY`, `CKF_ENCRYPT`,
    /// `CKF_DECRYPT`, `CKF_DIGEST`, `CKF_FIND_OBJECTS`); naming one that
    /// is not under way is no error.
    ///
    /// # Errors
    /// `CKR_SESSION_HANDLE_INVALID`.
    pub fn cancel(&self, handle: CK_SESSION_HANDLE, flags: CK_FLAGS) -> Result<(), Rv> {
        let session = self.session(handle)?;
        let mut s = lock(&session);
        if flags & CKF_SIGN != 0 {
            s.sign = None;
        }
        if flags & CKF_VERIFY != 0 {
            s.verify = None;
        }
        if flags & CKF_ENCRYPT != 0 {
            s.encrypt = None;
        }
        if flags & CKF_DECRYPT != 0 {
            s.decrypt = None;
        }
        if flags & CKF_DIGEST != 0 {
            s.digest = None;
        }
        if flags & CKF_FIND_OBJECTS != 0 {
            s.find = None;
        }
        Ok(())
    }

    /// `C_FindObjectsFinal`.
    ///
    /// # Errors
    /// `CKR_OPERATION_NOT_INITIALIZED`.
    pub fn find_final(&self, handle: CK_SESSION_HANDLE) -> Result<(), Rv> {
        let session = self.session(handle)?;
        let mut s = lock(&session);
        s.find
            .take()
            .map(|_| ())
            .ok_or(Rv(CKR_OPERATION_NOT_INITIALIZED))
    }

    /// `C_GetAttributeValue`: each attribute's value or why it has none.
    ///
    /// # Errors
    /// `CKR_OBJECT_HANDLE_INVALID`, `CKR_USER_NOT_LOGGED_IN`.
    pub fn attributes(
        &self,
        handle: CK_SESSION_HANDLE,
        object: CK_OBJECT_HANDLE,
        types: &[CK_ATTRIBUTE_TYPE],
    ) -> Result<Vec<Result<Vec<u8>, Unreadable>>, Rv> {
        let session = self.session(handle)?;
        let s = lock(&session);
        Self::logged_in(&s.token)?;
        let (info, part) = self.object_of(&s, object)?;
        let o = Self::view(&s, &info, part);
        Ok(types
            .iter()
            .map(|t| o.attribute(*t).map(|v| v.encode()))
            .collect())
    }

    /// `C_SetAttributeValue`: each change is one cluster write, in order.
    ///
    /// # Errors
    /// `CKR_SESSION_READ_ONLY`, `CKR_ATTRIBUTE_READ_ONLY` (also for a
    /// one-way attribute changed back, which the cluster refuses), the
    /// template errors, `CKR_ACTION_PROHIBITED` for a key the user does not
    /// own.
    pub fn set_attributes(
        &self,
        handle: CK_SESSION_HANDLE,
        object: CK_OBJECT_HANDLE,
        template: &[Attr],
    ) -> Result<(), Rv> {
        let session = self.session(handle)?;
        let s = lock(&session);
        Self::logged_in(&s.token)?;
        if !s.rw && !is_session_key(&s, s.token.object(object).map_or(KeyId(0), |o| o.0)) {
            return Err(Rv(CKR_SESSION_READ_ONLY));
        }
        let (info, _) = self.object_of(&s, object)?;
        let changes = template
            .iter()
            .map(templates::change)
            .collect::<Result<Vec<_>, _>>()
            .map_err(Rv)?;
        for attribute in changes {
            let result = self.call(
                &s.token,
                Operation::SetKeyAttribute {
                    key: info.id,
                    attribute,
                },
                Doing::Object,
            );
            match result {
                Ok(_) => {}
                Err(Rv(CKR_ATTRIBUTE_VALUE_INVALID)) => return Err(Rv(CKR_ATTRIBUTE_READ_ONLY)),
                Err(e) => return Err(e),
            }
        }
        let t = s.token.clone();
        let key = info.id;
        let _ = self.block(async move { t.refresh(key).await });
        Ok(())
    }

    /// `C_DestroyObject`: destroying a private or secret key deletes the
    /// cluster key; a public key goes with its pair; destroying a
    /// certificate removes it from its key.
    ///
    /// # Errors
    /// `CKR_SESSION_READ_ONLY`, `CKR_ACTION_PROHIBITED` (the public half of
    /// a pair, or a key the user does not own), `CKR_OBJECT_HANDLE_INVALID`.
    pub fn destroy(&self, handle: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE) -> Result<(), Rv> {
        let session = self.session(handle)?;
        let mut s = lock(&session);
        Self::logged_in(&s.token)?;
        let (key, part) = s
            .token
            .object(object)
            .ok_or(Rv(CKR_OBJECT_HANDLE_INVALID))?;
        if !s.rw && !is_session_key(&s, key) {
            return Err(Rv(CKR_SESSION_READ_ONLY));
        }
        match part {
            Part::Public => {
                // A pair's public half goes with its private half; a
                // public key imported alone is the whole key.
                let (info, _) = self.object_of(&s, object)?;
                if !info.provenance.public_only() {
                    return Err(Rv(CKR_ACTION_PROHIBITED));
                }
            }
            Part::Certificate => {
                self.call(
                    &s.token,
                    Operation::SetKeyAttribute {
                        key,
                        attribute: KeyAttribute::Certificate(Vec::new()),
                    },
                    Doing::Object,
                )?;
                let t = s.token.clone();
                let _ = self.block(async move { t.refresh(key).await });
                return Ok(());
            }
            Part::Private | Part::Secret => {}
        }
        self.call(&s.token, Operation::DeleteKey { key }, Doing::Object)?;
        s.token.forget(key);
        s.session_keys.retain(|k| *k != key);
        Ok(())
    }

    fn made(&self, s: &mut Session, new: &NewKey, reply: Reply) -> Result<KeyInfo, Rv> {
        let Reply::Key(info) = reply else {
            return Err(Rv(CKR_DEVICE_ERROR));
        };
        if !new.token {
            s.session_keys.push(info.id);
        }
        Ok(info)
    }

    fn writable(s: &Session, new: &NewKey) -> Result<(), Rv> {
        Self::logged_in(&s.token)?;
        if new.token && !s.rw {
            return Err(Rv(CKR_SESSION_READ_ONLY));
        }
        Ok(())
    }

    /// `C_GenerateKeyPair`: the handles of the public and the private key.
    ///
    /// # Errors
    /// The template errors of [`templates::key_pair`],
    /// `CKR_SESSION_READ_ONLY` for a token object in a read-only session,
    /// `CKR_USER_NOT_LOGGED_IN`, what the cluster refuses.
    pub fn generate_key_pair(
        &self,
        handle: CK_SESSION_HANDLE,
        mechanism: CK_MECHANISM_TYPE,
        public: &[Attr],
        private: &[Attr],
    ) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE), Rv> {
        let new = templates::key_pair(mechanism, public, private).map_err(Rv)?;
        let session = self.session(handle)?;
        let mut s = lock(&session);
        Self::writable(&s, &new)?;
        let reply = self.call(
            &s.token,
            Operation::GenerateKey {
                spec: new.spec,
                attributes: new.attributes.clone(),
                unique_label: false,
            },
            Doing::Making,
        )?;
        let info = self.made(&mut s, &new, reply)?;
        let t = s.token.clone();
        let id = info.id;
        let _ = self.block(async move { t.refresh(id).await });
        Ok((
            s.token.handle(info.id, Part::Public),
            s.token.handle(info.id, Part::Private),
        ))
    }

    /// `C_GenerateKey`.
    ///
    /// # Errors
    /// As [`Module::generate_key_pair`], with [`templates::secret_key`].
    pub fn generate_key(
        &self,
        handle: CK_SESSION_HANDLE,
        mechanism: CK_MECHANISM_TYPE,
        template: &[Attr],
    ) -> Result<CK_OBJECT_HANDLE, Rv> {
        let new = templates::secret_key(mechanism, template).map_err(Rv)?;
        let session = self.session(handle)?;
        let mut s = lock(&session);
        Self::writable(&s, &new)?;
        let reply = self.call(
            &s.token,
            Operation::GenerateKey {
                spec: new.spec,
                attributes: new.attributes.clone(),
                unique_label: false,
            },
            Doing::Making,
        )?;
        let info = self.made(&mut s, &new, reply)?;
        let t = s.token.clone();
        let id = info.id;
        let _ = self.block(async move { t.refresh(id).await });
        Ok(s.token.handle(info.id, Part::Secret))
    }

    /// The key behind `object` for a use: its record, checked to be the
    /// right kind of object (`part` allowed).
    fn key_for(
        &self,
        s: &Session,
        object: CK_OBJECT_HANDLE,
        parts: &[Part],
    ) -> Result<KeyInfo, Rv> {
        Self::logged_in(&s.token)?;
        let (info, part) = self.object_of(s, object).map_err(|e| {
            if e.0 == CKR_OBJECT_HANDLE_INVALID {
                Rv(CKR_KEY_HANDLE_INVALID)
            } else {
                e
            }
        })?;
        if !parts.contains(&part) {
            return Err(Rv(CKR_KEY_TYPE_INCONSISTENT));
        }
        Ok(info)
    }

    /// `C_SignInit` and `C_VerifyInit`.
    ///
    /// # Errors
    /// `CKR_OPERATION_ACTIVE`, `CKR_KEY_HANDLE_INVALID`, the errors of
    /// [`sign_plan`], `CKR_KEY_FUNCTION_NOT_PERMITTED` for a key without
    /// the usage.
    pub fn sign_init(
        &self,
        handle: CK_SESSION_HANDLE,
        verify: bool,
        mechanism: CK_MECHANISM_TYPE,
        param: &Param,
        key: CK_OBJECT_HANDLE,
    ) -> Result<(), Rv> {
        let session = self.session(handle)?;
        let mut s = lock(&session);
        let active = if verify {
            s.verify.is_some()
        } else {
            s.sign.is_some()
        };
        if active {
            return Err(Rv(CKR_OPERATION_ACTIVE));
        }
        let parts: &[Part] = if verify {
            &[Part::Public, Part::Secret]
        } else {
            &[Part::Private, Part::Secret]
        };
        let info = self.key_for(&s, key, parts)?;
        let plan = sign_plan(mechanism, param, info.spec).map_err(Rv)?;
        let allowed = if verify {
            info.attributes.verify
        } else {
            info.attributes.sign
        };
        if !allowed {
            return Err(Rv(CKR_KEY_FUNCTION_NOT_PERMITTED));
        }
        let op = SignOp {
            key: info.id,
            plan,
            data: match plan.input.hash() {
                Some(h) => Gathered::Hash(Box::new(Hasher::new(h))),
                None => Gathered::Bytes(Vec::new()),
            },
            kept: None,
        };
        if verify {
            s.verify = Some(op);
        } else {
            s.sign = Some(op);
        }
        Ok(())
    }

    /// `C_SignUpdate` and `C_VerifyUpdate`.
    ///
    /// # Errors
    /// `CKR_OPERATION_NOT_INITIALIZED`, `CKR_DATA_LEN_RANGE` past
    /// [`MAX_GATHERED`] (which ends the operation).
    pub fn sign_update(
        &self,
        handle: CK_SESSION_HANDLE,
        verify: bool,
        part: &[u8],
    ) -> Result<(), Rv> {
        let session = self.session(handle)?;
        let mut s = lock(&session);
        let slot = if verify { &mut s.verify } else { &mut s.sign };
        let op = slot.as_mut().ok_or(Rv(CKR_OPERATION_NOT_INITIALIZED))?;
        if let Err(e) = op.update(part) {
            *slot = None;
            return Err(e);
        }
        Ok(())
    }

    /// `C_Sign` (with `data`) and `C_SignFinal` (without). A null buffer
    /// (`capacity` `None`) asks the length only.
    ///
    /// # Errors
    /// `CKR_OPERATION_NOT_INITIALIZED`, `CKR_DATA_LEN_RANGE`, what the
    /// cluster refuses; any error but a short buffer ends the operation.
    pub fn sign(
        &self,
        handle: CK_SESSION_HANDLE,
        data: Option<&[u8]>,
        capacity: Option<usize>,
    ) -> Result<Out, Rv> {
        let session = self.session(handle)?;
        let mut s = lock(&session);
        let token = s.token.clone();
        let mut op = s.sign.take().ok_or(Rv(CKR_OPERATION_NOT_INITIALIZED))?;
        let Some(capacity) = capacity else {
            let len = op.kept.as_ref().map_or(op.plan.signature_len, Vec::len);
            s.sign = Some(op);
            return Ok(Out::Len(len));
        };
        if op.kept.is_none() {
            if let Some(data) = data {
                op.update(data)?;
            }
            let message = op.input();
            let reply = self.call(
                &token,
                Operation::Sign {
                    key: op.key,
                    mechanism: op.plan.mechanism,
                    message,
                },
                Doing::KeyUse,
            )?;
            let Reply::Signature(sig) = reply else {
                return Err(Rv(CKR_DEVICE_ERROR));
            };
            op.kept = Some(match op.plan.ecdsa_scalar_len {
                Some(n) => ecdsa_der_to_raw(&sig, n).ok_or(Rv(CKR_DEVICE_ERROR))?,
                None => sig,
            });
        }
        let out = hand_out(&mut op.kept, capacity);
        if matches!(out, Out::TooSmall(_)) {
            s.sign = Some(op);
        }
        Ok(out)
    }

    /// `C_Verify` (with `data`) and `C_VerifyFinal` (without).
    ///
    /// # Errors
    /// `CKR_SIGNATURE_INVALID`, `CKR_SIGNATURE_LEN_RANGE` (a signature of
    /// another length than the mechanism's), `CKR_OPERATION_NOT_INITIALIZED`,
    /// what the cluster refuses. The operation ends either way.
    pub fn verify(
        &self,
        handle: CK_SESSION_HANDLE,
        data: Option<&[u8]>,
        signature: &[u8],
    ) -> Result<(), Rv> {
        let session = self.session(handle)?;
        let mut s = lock(&session);
        let token = s.token.clone();
        let mut op = s.verify.take().ok_or(Rv(CKR_OPERATION_NOT_INITIALIZED))?;
        if signature.len() != op.plan.signature_len {
            return Err(Rv(CKR_SIGNATURE_LEN_RANGE));
        }
        if let Some(data) = data {
            op.update(data)?;
        }
        let signature = match op.plan.ecdsa_scalar_len {
            Some(n) => ecdsa_raw_to_der(signature, n).ok_or(Rv(CKR_SIGNATURE_INVALID))?,
            None => signature.to_vec(),
        };
        let message = op.input();
        let reply = self.call(
            &token,
            Operation::Verify {
                key: op.key,
                mechanism: op.plan.mechanism,
                message,
                signature,
            },
            Doing::KeyUse,
        )?;
        match reply {
            Reply::Verified(true) => Ok(()),
            Reply::Verified(false) => Err(Rv(CKR_SIGNATURE_INVALID)),
            _ => Err(Rv(CKR_DEVICE_ERROR)),
        }
    }

    /// `C_EncryptInit` and `C_DecryptInit`.
    ///
    /// # Errors
    /// `CKR_OPERATION_ACTIVE`, `CKR_KEY_HANDLE_INVALID`, the errors of
    /// [`cipher_plan`], `CKR_KEY_FUNCTION_NOT_PERMITTED`.
    pub fn cipher_init(
        &self,
        handle: CK_SESSION_HANDLE,
        decrypt: bool,
        mechanism: CK_MECHANISM_TYPE,
        param: &Param,
        key: CK_OBJECT_HANDLE,
    ) -> Result<(), Rv> {
        let session = self.session(handle)?;
        let mut s = lock(&session);
        let active = if decrypt {
            s.decrypt.is_some()
        } else {
            s.encrypt.is_some()
        };
        if active {
            return Err(Rv(CKR_OPERATION_ACTIVE));
        }
        let parts: &[Part] = if decrypt {
            &[Part::Private, Part::Secret]
        } else {
            &[Part::Public, Part::Secret]
        };
        let info = self.key_for(&s, key, parts)?;
        let plan = cipher_plan(mechanism, param, info.spec, decrypt).map_err(Rv)?;
        let allowed = if decrypt {
            info.attributes.decrypt
        } else {
            info.attributes.encrypt
        };
        if !allowed {
            return Err(Rv(CKR_KEY_FUNCTION_NOT_PERMITTED));
        }
        let op = CipherOp {
            key: info.id,
            plan,
            data: Vec::new(),
            kept: None,
        };
        if decrypt {
            s.decrypt = Some(op);
        } else {
            s.encrypt = Some(op);
        }
        Ok(())
    }

    /// `C_EncryptUpdate` and `C_DecryptUpdate`: the data is gathered (both
    /// mechanisms take it whole) and nothing is output until the end.
    ///
    /// # Errors
    /// `CKR_OPERATION_NOT_INITIALIZED`, `CKR_DATA_LEN_RANGE` past
    /// [`MAX_GATHERED`].
    pub fn cipher_update(
        &self,
        handle: CK_SESSION_HANDLE,
        decrypt: bool,
        part: &[u8],
    ) -> Result<(), Rv> {
        let session = self.session(handle)?;
        let mut s = lock(&session);
        let slot = if decrypt {
            &mut s.decrypt
        } else {
            &mut s.encrypt
        };
        let op = slot.as_mut().ok_or(Rv(CKR_OPERATION_NOT_INITIALIZED))?;
        if op.data.len() + part.len() > MAX_GATHERED {
            *slot = None;
            return Err(Rv(CKR_DATA_LEN_RANGE));
        }
        op.data.extend_from_slice(part);
        Ok(())
    }

    /// `C_Encrypt`/`C_EncryptFinal` and `C_Decrypt`/`C_DecryptFinal`.
    /// AES-GCM with the all-zero IV (the token's IV) puts the IV the
    /// cluster drew in front of the output (`iv || ciphertext || tag`) and
    /// takes it in front of the input to decrypt; with the caller's own IV
    /// (decryption only) the input is `ciphertext || tag`.
    ///
    /// # Errors
    /// `CKR_OPERATION_NOT_INITIALIZED`, `CKR_ENCRYPTED_DATA_INVALID` (a
    /// ciphertext that does not authenticate), `CKR_DATA_LEN_RANGE`, what
    /// the cluster refuses; any error but a short buffer ends the
    /// operation.
    pub fn cipher(
        &self,
        handle: CK_SESSION_HANDLE,
        decrypt: bool,
        data: Option<&[u8]>,
        capacity: Option<usize>,
    ) -> Result<Out, Rv> {
        let session = self.session(handle)?;
        let mut s = lock(&session);
        let token = s.token.clone();
        let slot = if decrypt {
            &mut s.decrypt
        } else {
            &mut s.encrypt
        };
        let mut op = slot.take().ok_or(Rv(CKR_OPERATION_NOT_INITIALIZED))?;
        let pending = op.data.len() + data.map_or(0, <[u8]>::len);
        let Some(capacity) = capacity else {
            let len = match (&op.kept, &op.plan, decrypt) {
                (Some(kept), _, _) => kept.len(),
                (None, CipherPlan::AesGcm { .. }, false) => pending + GCM_IV_LEN + GCM_TAG_LEN,
                (None, CipherPlan::AesGcm { iv, .. }, true) => {
                    let framing = if token_iv(iv) { GCM_IV_LEN } else { 0 } + GCM_TAG_LEN;
                    pending.saturating_sub(framing)
                }
                (None, CipherPlan::RsaOaep { modulus_len, .. }, _) => *modulus_len,
            };
            *slot = Some(op);
            return Ok(Out::Len(len));
        };
        if op.kept.is_none() {
            if let Some(data) = data {
                if pending > MAX_GATHERED {
                    return Err(Rv(CKR_DATA_LEN_RANGE));
                }
                op.data.extend_from_slice(data);
            }
            let input = std::mem::take(&mut op.data);
            let mechanism = op.plan.mechanism();
            let out = if decrypt {
                let (ciphertext, aad) = match &op.plan {
                    CipherPlan::AesGcm { aad, iv } if token_iv(iv) => {
                        if input.len() < GCM_IV_LEN + GCM_TAG_LEN {
                            return Err(Rv(CKR_ENCRYPTED_DATA_LEN_RANGE));
                        }
                        (input, aad.clone())
                    }
                    CipherPlan::AesGcm { aad, iv } => {
                        if input.len() < GCM_TAG_LEN || iv.len() != GCM_IV_LEN {
                            return Err(Rv(CKR_ENCRYPTED_DATA_LEN_RANGE));
                        }
                        let mut framed = iv.clone();
                        framed.extend_from_slice(&input);
                        (framed, aad.clone())
                    }
                    CipherPlan::RsaOaep { label, .. } => (input, label.clone()),
                };
                let reply = self.call(
                    &token,
                    Operation::Decrypt {
                        key: op.key,
                        mechanism,
                        ciphertext,
                        aad,
                    },
                    Doing::KeyUse,
                );
                match reply {
                    Ok(Reply::Plaintext(p)) => p.expose().to_vec(),
                    Ok(_) => return Err(Rv(CKR_DEVICE_ERROR)),
                    Err(Rv(CKR_DATA_INVALID)) => return Err(Rv(CKR_ENCRYPTED_DATA_INVALID)),
                    Err(e) => return Err(e),
                }
            } else {
                let aad = match &op.plan {
                    CipherPlan::AesGcm { aad, .. } => aad.clone(),
                    CipherPlan::RsaOaep { label, .. } => label.clone(),
                };
                let reply = self.call(
                    &token,
                    Operation::Encrypt {
                        key: op.key,
                        mechanism,
                        plaintext: Secret::new(input),
                        aad,
                    },
                    Doing::KeyUse,
                );
                let ciphertext = match reply {
                    Ok(Reply::Ciphertext(c)) => c,
                    Ok(_) => return Err(Rv(CKR_DEVICE_ERROR)),
                    Err(Rv(CKR_DATA_INVALID)) => return Err(Rv(CKR_DATA_LEN_RANGE)),
                    Err(e) => return Err(e),
                };
                // AES-GCM: the cluster's layout, iv || ciphertext || tag.
                ciphertext
            };
            op.kept = Some(out);
        }
        let out = hand_out(&mut op.kept, capacity);
        if matches!(out, Out::TooSmall(_)) {
            let slot = if decrypt {
                &mut s.decrypt
            } else {
                &mut s.encrypt
            };
            *slot = Some(op);
        }
        Ok(out)
    }

    /// `C_WrapKey`: `key` (a secret or private key the user owns, which
    /// must be extractable) wrapped under `wrapping` (a secret key, or an
    /// RSA public key), in the cluster's wrapped-key format. A null buffer
    /// asks the length: the wrapping is made to know it, and made again
    /// for the call that takes it.
    ///
    /// # Errors
    /// The errors of [`wrap_plan`]; `CKR_WRAPPING_KEY_HANDLE_INVALID`,
    /// `CKR_KEY_HANDLE_INVALID`; `CKR_KEY_NOT_WRAPPABLE` or
    /// `CKR_KEY_UNEXTRACTABLE` for what the key policy refuses.
    pub fn wrap_key(
        &self,
        handle: CK_SESSION_HANDLE,
        mechanism: CK_MECHANISM_TYPE,
        param: &Param,
        wrapping: CK_OBJECT_HANDLE,
        key: CK_OBJECT_HANDLE,
        capacity: Option<usize>,
    ) -> Result<Out, Rv> {
        let plan = wrap_plan(mechanism, param).map_err(Rv)?;
        let session = self.session(handle)?;
        let s = lock(&session);
        let wrapping = self
            .key_for(&s, wrapping, &[Part::Public, Part::Secret])
            .map_err(|e| match e.0 {
                CKR_KEY_HANDLE_INVALID | CKR_KEY_TYPE_INCONSISTENT => {
                    Rv(CKR_WRAPPING_KEY_HANDLE_INVALID)
                }
                _ => e,
            })?;
        let target = self.key_for(&s, key, &[Part::Private, Part::Secret])?;
        let reply = self.call(
            &s.token,
            Operation::WrapKey {
                wrapping_key: wrapping.id,
                key: target.id,
                mechanism: plan,
            },
            Doing::KeyUse,
        );
        let wrapped = match reply {
            Ok(Reply::Wrapped(w)) => w,
            Ok(_) => return Err(Rv(CKR_DEVICE_ERROR)),
            Err(Rv(CKR_KEY_FUNCTION_NOT_PERMITTED)) => return Err(Rv(CKR_KEY_UNEXTRACTABLE)),
            Err(Rv(CKR_DATA_INVALID)) => return Err(Rv(CKR_KEY_NOT_WRAPPABLE)),
            Err(e) => return Err(e),
        };
        Ok(match capacity {
            None => Out::Len(wrapped.len()),
            Some(c) if c < wrapped.len() => Out::TooSmall(wrapped.len()),
            Some(_) => Out::Bytes(wrapped),
        })
    }

    /// `C_UnwrapKey`: a key from what a cluster's `C_WrapKey` made, under
    /// `unwrapping` (a secret key, or an RSA private key). It gets the
    /// type, usages and one-way attributes the wrapped key carries (the
    /// template may only narrow them), and the template's label and id.
    ///
    /// # Errors
    /// The errors of [`templates::unwrap_template`];
    /// `CKR_UNWRAPPING_KEY_HANDLE_INVALID`; `CKR_WRAPPED_KEY_INVALID` for
    /// what does not unwrap; `CKR_TEMPLATE_INCONSISTENT` for a template
    /// the carried attributes refuse or a key type other than the carried
    /// one.
    pub fn unwrap_key(
        &self,
        handle: CK_SESSION_HANDLE,
        mechanism: CK_MECHANISM_TYPE,
        param: &Param,
        unwrapping: CK_OBJECT_HANDLE,
        wrapped: &[u8],
        template: &[Attr],
    ) -> Result<CK_OBJECT_HANDLE, Rv> {
        let plan = wrap_plan(mechanism, param).map_err(Rv)?;
        let asked = templates::unwrap_template(template).map_err(Rv)?;
        let session = self.session(handle)?;
        let mut s = lock(&session);
        if asked.token && !s.rw {
            return Err(Rv(CKR_SESSION_READ_ONLY));
        }
        let unwrapping = self
            .key_for(&s, unwrapping, &[Part::Private, Part::Secret])
            .map_err(|e| match e.0 {
                CKR_KEY_HANDLE_INVALID | CKR_KEY_TYPE_INCONSISTENT => {
                    Rv(CKR_UNWRAPPING_KEY_HANDLE_INVALID)
                }
                _ => e,
            })?;
        let reply = self.call(
            &s.token,
            Operation::UnwrapKey {
                wrapping_key: unwrapping.id,
                mechanism: plan,
                wrapped: wrapped.to_vec(),
                spec: asked.spec,
                attributes: asked.attributes.clone(),
                unique_label: false,
            },
            Doing::Making,
        );
        let info = match reply {
            Ok(Reply::Key(info)) => info,
            Ok(_) => return Err(Rv(CKR_DEVICE_ERROR)),
            Err(Rv(CKR_TEMPLATE_INCONSISTENT)) if !wrapped.starts_with(b"hsmw") => {
                return Err(Rv(CKR_WRAPPED_KEY_INVALID))
            }
            Err(e) => return Err(e),
        };
        let kind = if info.spec.is_asymmetric() {
            CKO_PRIVATE_KEY
        } else {
            CKO_SECRET_KEY
        };
        if crate::objects::key_type(info.spec) != asked.key_type || kind != asked.class {
            // Not the key the caller asked for: it does not stay.
            let _ = self.call(
                &s.token,
                Operation::DeleteKey { key: info.id },
                Doing::Object,
            );
            return Err(Rv(CKR_TEMPLATE_INCONSISTENT));
        }
        if !asked.token {
            s.session_keys.push(info.id);
        }
        let t = s.token.clone();
        let id = info.id;
        let _ = self.block(async move { t.refresh(id).await });
        let part = if info.spec.is_asymmetric() {
            Part::Private
        } else {
            Part::Secret
        };
        Ok(s.token.handle(info.id, part))
    }

    /// `C_DeriveKey` with `CKM_ECDH1_DERIVE`: a secret key agreed between
    /// `base` (the user's X25519, P-256 or P-384 private key, with
    /// `CKA_DERIVE`) and the peer's public point, through the KDF the
    /// parameter names. The peer derives the same key from its private key
    /// and this key's point.
    ///
    /// # Errors
    /// The errors of [`derive_plan`] and [`templates::derived_key`];
    /// `CKR_KEY_HANDLE_INVALID`; `CKR_MECHANISM_PARAM_INVALID` for a point
    /// that is not one of the key's curve (compressed points are not
    /// taken); what the cluster refuses.
    pub fn derive_key(
        &self,
        handle: CK_SESSION_HANDLE,
        mechanism: CK_MECHANISM_TYPE,
        param: &Param,
        base: CK_OBJECT_HANDLE,
        template: &[Attr],
    ) -> Result<CK_OBJECT_HANDLE, Rv> {
        let (plan, context, point) = derive_plan(mechanism, param).map_err(Rv)?;
        let new = templates::derived_key(template).map_err(Rv)?;
        let session = self.session(handle)?;
        let mut s = lock(&session);
        Self::writable(&s, &new)?;
        let base = self.key_for(&s, base, &[Part::Private])?;
        if !base.attributes.derive {
            return Err(Rv(CKR_KEY_FUNCTION_NOT_PERMITTED));
        }
        let peer =
            crate::public::spki_of_point(base.spec, &point).ok_or(Rv(CKR_DOMAIN_PARAMS_INVALID))?;
        let reply = self.call(
            &s.token,
            Operation::DeriveKey {
                key: base.id,
                mechanism: plan,
                peer_public_key: peer,
                context,
                spec: new.spec,
                attributes: new.attributes.clone(),
                unique_label: false,
            },
            Doing::Making,
        )?;
        let info = self.made(&mut s, &new, reply)?;
        let t = s.token.clone();
        let id = info.id;
        let _ = self.block(async move { t.refresh(id).await });
        Ok(s.token.handle(info.id, Part::Secret))
    }

    /// `C_DigestInit`: hashed here, no cluster call.
    ///
    /// # Errors
    /// `CKR_OPERATION_ACTIVE`, `CKR_MECHANISM_INVALID`.
    pub fn digest_init(
        &self,
        handle: CK_SESSION_HANDLE,
        mechanism: CK_MECHANISM_TYPE,
    ) -> Result<(), Rv> {
        let session = self.session(handle)?;
        let mut s = lock(&session);
        if s.digest.is_some() {
            return Err(Rv(CKR_OPERATION_ACTIVE));
        }
        let hash = digest_plan(mechanism).map_err(Rv)?;
        s.digest = Some(DigestOp {
            hasher: Some(Hasher::new(hash)),
            len: hash.output_len(),
            kept: None,
        });
        Ok(())
    }

    /// `C_DigestUpdate`.
    ///
    /// # Errors
    /// `CKR_OPERATION_NOT_INITIALIZED`.
    pub fn digest_update(&self, handle: CK_SESSION_HANDLE, part: &[u8]) -> Result<(), Rv> {
        let session = self.session(handle)?;
        let mut s = lock(&session);
        let op = s.digest.as_mut().ok_or(Rv(CKR_OPERATION_NOT_INITIALIZED))?;
        if let Some(h) = op.hasher.as_mut() {
            h.update(part);
        }
        Ok(())
    }

    /// `C_Digest` (with `data`) and `C_DigestFinal` (without).
    ///
    /// # Errors
    /// `CKR_OPERATION_NOT_INITIALIZED`.
    pub fn digest(
        &self,
        handle: CK_SESSION_HANDLE,
        data: Option<&[u8]>,
        capacity: Option<usize>,
    ) -> Result<Out, Rv> {
        let session = self.session(handle)?;
        let mut s = lock(&session);
        let mut op = s.digest.take().ok_or(Rv(CKR_OPERATION_NOT_INITIALIZED))?;
        let Some(capacity) = capacity else {
            let len = op.len;
            s.digest = Some(op);
            return Ok(Out::Len(len));
        };
        if let Some(mut h) = op.hasher.take() {
            if let Some(data) = data {
                h.update(data);
            }
            op.kept = Some(h.finish());
        }
        let out = hand_out(&mut op.kept, capacity);
        if matches!(out, Out::TooSmall(_)) {
            s.digest = Some(op);
        }
        Ok(out)
    }

    /// `C_GenerateRandom`: from the cluster's generator, 64 KiB per call.
    ///
    /// # Errors
    /// `CKR_SESSION_HANDLE_INVALID`, `CKR_DEVICE_ERROR`.
    pub fn random(&self, handle: CK_SESSION_HANDLE, len: usize) -> Result<Vec<u8>, Rv> {
        let token = self.token_of(handle)?;
        let mut out = Vec::with_capacity(len.min(MAX_GATHERED));
        while out.len() < len {
            let want = (len - out.len()).min(64 * 1024) as u32;
            match self.call(&token, Operation::Random { len: want }, Doing::Other)? {
                Reply::Random(bytes) if bytes.len() == want as usize => out.extend(bytes),
                _ => return Err(Rv(CKR_DEVICE_ERROR)),
            }
        }
        Ok(out)
    }

    /// `C_CreateObject`: imports a secret key (`CKO_SECRET_KEY` with
    /// `CKA_VALUE`) or a private key (`CKO_PRIVATE_KEY`: RSA with its CRT
    /// components, EC with its scalar, Ed25519 with its seed), each marked
    /// as known outside the cluster; or stores an
    /// X.509 certificate (`CKO_CERTIFICATE`) with the user's key pair whose
    /// public key it certifies: the certificate object then shares the
    /// pair's `CKA_ID` and label.
    ///
    /// # Errors
    /// `CKR_TEMPLATE_INCOMPLETE` without class or value;
    /// `CKR_ATTRIBUTE_VALUE_INVALID` for another class (public keys are
    /// not objects of their own in the cluster), or a certificate for no
    /// key pair the user owns; the template errors otherwise.
    pub fn create_object(
        &self,
        handle: CK_SESSION_HANDLE,
        template: &[Attr],
    ) -> Result<CK_OBJECT_HANDLE, Rv> {
        let (new, op, part) = match templates::class_of(template) {
            Some(CKO_CERTIFICATE) => return self.store_certificate(handle, template),
            Some(CKO_PUBLIC_KEY) => {
                let (new, public_key) = crate::import::public_key(template).map_err(Rv)?;
                let op = Operation::ImportPublicKey {
                    public_key,
                    attributes: new.attributes.clone(),
                    unique_label: false,
                };
                (new, op, Part::Public)
            }
            class => {
                let (new, material) = if class == Some(CKO_PRIVATE_KEY) {
                    crate::import::private_key(template).map_err(Rv)?
                } else {
                    templates::secret_import(template).map_err(Rv)?
                };
                let op = Operation::ImportKey {
                    spec: new.spec,
                    attributes: new.attributes.clone(),
                    material,
                    unique_label: false,
                };
                let part = if new.spec.is_asymmetric() {
                    Part::Private
                } else {
                    Part::Secret
                };
                (new, op, part)
            }
        };
        let session = self.session(handle)?;
        let mut s = lock(&session);
        Self::writable(&s, &new)?;
        let reply = self.call(&s.token, op, Doing::Making)?;
        let info = self.made(&mut s, &new, reply)?;
        let t = s.token.clone();
        let id = info.id;
        let _ = self.block(async move { t.refresh(id).await });
        Ok(s.token.handle(info.id, part))
    }

    fn store_certificate(
        &self,
        handle: CK_SESSION_HANDLE,
        template: &[Attr],
    ) -> Result<CK_OBJECT_HANDLE, Rv> {
        let der = templates::certificate(template).map_err(Rv)?;
        let parts = CertificateParts::parse(&der).ok_or(Rv(CKR_ATTRIBUTE_VALUE_INVALID))?;
        let session = self.session(handle)?;
        let s = lock(&session);
        Self::logged_in(&s.token)?;
        if !s.rw {
            return Err(Rv(CKR_SESSION_READ_ONLY));
        }
        let user = s.token.user();
        let t = s.token.clone();
        let keys = self
            .block(async move { t.list().await })?
            .map_err(|e| Rv::of(&e, Doing::Other))?;
        let key = keys
            .iter()
            .find(|k| user.as_ref() == Some(&k.owner) && k.public_key == parts.public_key)
            .ok_or(Rv(CKR_ATTRIBUTE_VALUE_INVALID))?;
        self.call(
            &s.token,
            Operation::SetKeyAttribute {
                key: key.id,
                attribute: KeyAttribute::Certificate(der),
            },
            Doing::Object,
        )?;
        let t = s.token.clone();
        let id = key.id;
        let _ = self.block(async move { t.refresh(id).await });
        Ok(s.token.handle(key.id, Part::Certificate))
    }
}

/// Whether an AES-GCM IV asks the token to choose (all zeros).
fn token_iv(iv: &[u8]) -> bool {
    iv.iter().all(|b| *b == 0)
}

/// Splits a `username:password` PIN.
fn split_pin(pin: &[u8]) -> Option<(Username, Secret)> {
    let colon = pin.iter().position(|b| *b == b':')?;
    let name = std::str::from_utf8(pin.get(..colon)?).ok()?;
    let username = Username::new(name).ok()?;
    Some((username, Secret::new(pin.get(colon + 1..)?.to_vec())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_user_colon_password() {
        let (user, password) = split_pin(b"alice:pass:word").expect("pin");
        assert_eq!(user.as_str(), "alice");
        assert_eq!(password.expose(), b"pass:word");
        assert!(split_pin(b"alice").is_none());
        assert!(split_pin(b":password").is_none());
    }

    #[test]
    fn an_output_too_long_for_the_buffer_is_kept_for_the_next_call() {
        let mut kept = Some(vec![1, 2, 3]);
        assert_eq!(hand_out(&mut kept, 2), Out::TooSmall(3));
        assert_eq!(hand_out(&mut kept, 3), Out::Bytes(vec![1, 2, 3]));
        assert_eq!(kept, None);
    }
}
