//! Synchronous signing with a key in the HSM, for libraries whose signer
//! traits are synchronous (rustls, rcgen).
//!
//! The [`Client`] is async; a [`BlockingSigner`] bridges to it. It captures
//! the handle of a **multi-thread** tokio runtime when it is made, and each
//! [`BlockingSigner::sign`] spawns the HSM call as a task on that runtime
//! and waits for its result on a channel, for at most the client's
//! deadline plus a margin. The wait:
//!
//! - on a thread outside any runtime (a plain `std::thread`, a
//!   `spawn_blocking` thread) simply blocks;
//! - on a multi-thread runtime's worker thread goes through
//!   [`tokio::task::block_in_place`], which hands the worker's other tasks
//!   to another thread first, so even a runtime with one worker keeps
//!   serving the call it waits for;
//! - on a current-thread runtime's thread is refused with
//!   [`RemoteKeyError::CurrentThreadRuntime`]: blocking there would stop
//!   the very runtime that has to finish the call.
//!
//! A runtime that has shut down ends the wait with
//! [`RemoteKeyError::RuntimeGone`]. Nothing here unwraps; the one panic
//! left is tokio's own, in `block_in_place`, for a thread that runs a
//! current-thread runtime *and* has entered a multi-thread runtime's
//! handle (`Handle::enter`) on top: do not sign from there.
//!
//! Requirement: create the [`Client`] and the signer on the same
//! multi-thread runtime (`#[tokio::main]` is one), and keep that runtime
//! running while the signer is used.

use std::fmt;
use std::sync::mpsc;
use std::time::Duration;

use hsm_proto::mechanism::SignMechanism;
use hsm_proto::{KeyId, KeySpec};
use tokio::runtime::{Handle, RuntimeFlavor};

use crate::client::Client;
use crate::error::Error;

/// How much longer than the client's deadline a blocked caller waits for
/// the task that makes the call, for scheduling delays.
const WAIT_MARGIN: Duration = Duration::from_secs(5);

/// Why a key in the HSM could not be used through a synchronous signer.
/// Messages name keys and key types, never secret bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteKeyError {
    /// The HSM call failed (refused, unavailable, past its deadline).
    #[error("hsm call failed: {0}")]
    Client(#[from] Error),
    /// Made outside a tokio runtime, with no handle to run HSM calls on.
    #[error("no tokio runtime: create the signer inside a multi-thread tokio runtime")]
    NoRuntime,
    /// A current-thread runtime cannot run the HSM call while its only
    /// thread waits for it.
    #[error(
        "a synchronous hsm signer cannot wait on a current-thread tokio runtime; \
         use a multi-thread runtime, or call it from a thread outside the runtime"
    )]
    CurrentThreadRuntime,
    /// The runtime shut down before the call finished.
    #[error("the tokio runtime that runs hsm calls has shut down")]
    RuntimeGone,
    /// The call did not finish within the wait bound.
    #[error("the hsm call did not finish within {0:?}")]
    TimedOut(Duration),
    /// The key cannot be used this way.
    #[error("key {key} ({spec:?}) cannot be used for {purpose}: {reason}")]
    UnsuitableKey {
        /// The key.
        key: KeyId,
        /// Its type and size.
        spec: KeySpec,
        /// What it was wanted for.
        purpose: &'static str,
        /// Why it does not fit.
        reason: String,
    },
    /// A certificate or public key did not parse, or does not belong to
    /// the key.
    #[error("certificate: {0}")]
    Certificate(String),
    /// A TLS configuration could not be built (feature `rustls`).
    #[error("tls configuration: {0}")]
    TlsConfig(String),
}

/// Signs with one key in the HSM from synchronous code. Cheap to clone.
/// See the [module documentation](self) for where it may be called.
#[derive(Clone)]
pub struct BlockingSigner {
    client: Client,
    key: KeyId,
    handle: Handle,
    wait: Duration,
}

impl fmt::Debug for BlockingSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingSigner")
            .field("key", &self.key)
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

impl BlockingSigner {
    /// A signer for `key` that runs its calls on the current runtime.
    ///
    /// # Errors
    /// [`RemoteKeyError::NoRuntime`] outside a tokio runtime;
    /// [`RemoteKeyError::CurrentThreadRuntime`] on a current-thread one.
    pub fn new(client: Client, key: KeyId) -> Result<BlockingSigner, RemoteKeyError> {
        let handle = Handle::try_current().map_err(|_| RemoteKeyError::NoRuntime)?;
        BlockingSigner::with_handle(client, key, handle)
    }

    /// A signer for `key` that runs its calls on the runtime of `handle`.
    ///
    /// # Errors
    /// [`RemoteKeyError::CurrentThreadRuntime`] if `handle` is a
    /// current-thread runtime's.
    pub fn with_handle(
        client: Client,
        key: KeyId,
        handle: Handle,
    ) -> Result<BlockingSigner, RemoteKeyError> {
        if handle.runtime_flavor() != RuntimeFlavor::MultiThread {
            return Err(RemoteKeyError::CurrentThreadRuntime);
        }
        let wait = client.deadline().saturating_add(WAIT_MARGIN);
        Ok(BlockingSigner {
            client,
            key,
            handle,
            wait,
        })
    }

    /// The key.
    pub fn key(&self) -> KeyId {
        self.key
    }

    /// The client the calls go through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Signs `message` (unhashed) with the key, blocking the calling
    /// thread until the HSM answers.
    ///
    /// # Errors
    /// [`RemoteKeyError::Client`] if the HSM call fails;
    /// [`RemoteKeyError::CurrentThreadRuntime`] when called on a
    /// current-thread runtime's thread; [`RemoteKeyError::RuntimeGone`] or
    /// [`RemoteKeyError::TimedOut`] if the runtime cannot finish the call.
    pub fn sign(
        &self,
        mechanism: SignMechanism,
        message: &[u8],
    ) -> Result<Vec<u8>, RemoteKeyError> {
        let inside = match Handle::try_current() {
            Ok(current) if current.runtime_flavor() != RuntimeFlavor::MultiThread => {
                return Err(RemoteKeyError::CurrentThreadRuntime)
            }
            Ok(_) => true,
            Err(_) => false,
        };
        // One slot: the task sends once and never waits for the receiver.
        let (tx, rx) = mpsc::sync_channel(1);
        let client = self.client.clone();
        let key = self.key;
        let message = message.to_vec();
        let task = self.handle.spawn(async move {
            let result = client.sign(key, mechanism, message).await;
            // The receiver is gone only if the caller stopped waiting.
            let _ = tx.send(result);
        });
        let wait = || rx.recv_timeout(self.wait);
        let received = if inside {
            tokio::task::block_in_place(wait)
        } else {
            wait()
        };
        match received {
            Ok(result) => Ok(result?),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                task.abort();
                Err(RemoteKeyError::TimedOut(self.wait))
            }
            // The task was dropped unrun or cancelled: the runtime is
            // shutting down.
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(RemoteKeyError::RuntimeGone),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::ClientOptions;
    use hsm_proto::client::{ClientConfig, ClientNode};

    /// A client of a cluster nobody serves: every call fails, quickly.
    fn unreachable_client() -> Client {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().expect("key");
        let ca = params.self_signed(&key).expect("ca");
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("free port")
            .port();
        let config = ClientConfig {
            cluster_id: "00".repeat(16),
            ca_cert_pem: ca.pem(),
            zone: None,
            nodes: vec![ClientNode {
                id: 1,
                address: format!("127.0.0.1:{port}"),
                zone: String::new(),
                transport_key: [0; 32],
            }],
        };
        let options = ClientOptions::default()
            .deadline(Duration::from_millis(300))
            .connect_timeout(Duration::from_millis(100))
            .attempt_timeout(Duration::from_millis(100))
            .follow_membership(false);
        Client::new(config, options).expect("client")
    }

    fn multi_thread(workers: usize) -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn needs_a_multi_thread_runtime_to_be_made() {
        let current = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let made = current.block_on(async { BlockingSigner::new(unreachable_client(), KeyId(1)) });
        assert_eq!(made.err(), Some(RemoteKeyError::CurrentThreadRuntime));

        let rt = multi_thread(1);
        let client = rt.block_on(async { unreachable_client() });
        assert_eq!(
            BlockingSigner::new(client.clone(), KeyId(1)).err(),
            Some(RemoteKeyError::NoRuntime)
        );
        assert!(BlockingSigner::with_handle(client, KeyId(1), rt.handle().clone()).is_ok());
    }

    #[test]
    fn refuses_to_wait_on_a_current_thread_runtime_instead_of_hanging() {
        let rt = multi_thread(1);
        let signer = rt
            .block_on(async { BlockingSigner::new(unreachable_client(), KeyId(1)) })
            .expect("signer");
        let current = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let result = current.block_on(async { signer.sign(SignMechanism::Ed25519, b"m") });
        assert_eq!(result.err(), Some(RemoteKeyError::CurrentThreadRuntime));
    }

    #[test]
    fn a_failed_call_comes_back_as_an_error_from_every_kind_of_caller() {
        // One worker: waiting inside a task on it must not starve the task
        // that makes the call.
        let rt = multi_thread(1);
        let signer = rt
            .block_on(async { BlockingSigner::new(unreachable_client(), KeyId(1)) })
            .expect("signer");

        let from_thread = {
            let signer = signer.clone();
            std::thread::spawn(move || signer.sign(SignMechanism::Ed25519, b"m"))
                .join()
                .expect("thread")
        };
        assert!(
            matches!(from_thread, Err(RemoteKeyError::Client(_))),
            "{from_thread:?}"
        );

        let from_task = rt
            .block_on(async {
                let signer = signer.clone();
                tokio::spawn(async move { signer.sign(SignMechanism::Ed25519, b"m") }).await
            })
            .expect("task");
        assert!(
            matches!(from_task, Err(RemoteKeyError::Client(_))),
            "{from_task:?}"
        );

        let from_block_on = rt.block_on(async { signer.sign(SignMechanism::Ed25519, b"m") });
        assert!(
            matches!(from_block_on, Err(RemoteKeyError::Client(_))),
            "{from_block_on:?}"
        );
    }

    #[test]
    fn a_runtime_that_shut_down_is_an_error_not_a_hang() {
        let rt = multi_thread(1);
        let signer = rt
            .block_on(async { BlockingSigner::new(unreachable_client(), KeyId(1)) })
            .expect("signer");
        rt.shutdown_timeout(Duration::from_secs(5));
        let result = signer.sign(SignMechanism::Ed25519, b"m");
        assert_eq!(result.err(), Some(RemoteKeyError::RuntimeGone));
    }
}
