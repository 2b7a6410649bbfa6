//! The operator socket: what only someone on a member's host may ask of the
//! cluster, through that node.
//!
//! A running node listens on `<data_dir>/operator.sock`, a Unix socket
//! only the node's own user (and root) may open: mode 0600, and each
//! connection's peer credentials are checked against the socket's owner
//! too. Today it takes one request, `hsm-node unlock-user`: strangers can
//! lock out `admin` with wrong passwords (its name is public), and when no
//! other crypto officer is left nothing else unlocks it. The node writes
//! the unlock as [`Actor::Operator`], a signed event like any other, so the
//! event log says who did it; the state machine lets that actor do nothing
//! but unlock (`hsm_state`'s `operator_rules`).
//!
//! Host access is the right bar: whoever has it can read the node's sealed
//! keys and the storage key that opens them, so the socket grants nothing
//! that host access does not already give.
//!
//! The protocol is one JSON line each way, at most [`MAX_REQUEST_BYTES`]
//! in, answered within [`TIMEOUT`].

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hsm_proto::Username;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

use crate::service::Service;

/// The socket's file name in the data directory.
pub const SOCKET_NAME: &str = "operator.sock";

/// The longest request line read.
pub const MAX_REQUEST_BYTES: u64 = 4096;

/// How long one request may take, reading it and writing through Raft
/// included.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// What an operator asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum OperatorRequest {
    /// Unlock a user locked after failed logins.
    UnlockUser {
        /// The user.
        username: Username,
    },
}

/// The node's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OperatorReply {
    /// Done.
    Done,
    /// Refused or failed, and why.
    Error(String),
}

/// The operator socket of the node whose data directory is `data_dir`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// Listens on the operator socket of `data_dir` and serves each request
/// with `service`. A socket left by an earlier run of this node is
/// replaced.
///
/// # Errors
/// When the socket cannot be made (its path too long for a Unix socket, or
/// the directory not writable).
pub fn spawn(data_dir: &Path, service: Arc<Service>) -> Result<JoinHandle<()>> {
    let path = socket_path(data_dir);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot replace {}", path.display())),
    }
    let listener = UnixListener::bind(&path)
        .with_context(|| format!("cannot listen on the operator socket {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", path.display()))?;
    let owner = std::fs::metadata(&path)?.uid();
    Ok(tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                // Out of file descriptors, say: wait rather than spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let service = service.clone();
            tokio::spawn(async move {
                let answer = match tokio::time::timeout(
                    TIMEOUT,
                    serve(&mut stream, owner, &service),
                )
                .await
                {
                    Ok(answer) => answer,
                    Err(_) => OperatorReply::Error(format!("no answer within {TIMEOUT:?}")),
                };
                let _ = reply(stream, &answer).await;
            });
        }
    }))
}

async fn serve(stream: &mut UnixStream, owner: u32, service: &Service) -> OperatorReply {
    let started = tokio::time::Instant::now();
    // Read first (bounded), so that a refusal reaches a caller that is
    // still writing.
    let request = read_request(stream).await;
    let uid = match stream.peer_cred() {
        Ok(cred) if cred.uid() == owner || cred.uid() == 0 => cred.uid(),
        Ok(cred) => {
            return OperatorReply::Error(format!(
                "uid {} may not use this node's operator socket",
                cred.uid()
            ))
        }
        Err(e) => return OperatorReply::Error(format!("cannot tell who is asking: {e}")),
    };
    let request = match request {
        Ok(r) => r,
        Err(e) => return OperatorReply::Error(format!("{e:#}")),
    };
    match request {
        OperatorRequest::UnlockUser { username } => {
            // Within what is left of the request's time, so the answer says
            // whether it was done.
            let left = TIMEOUT
                .saturating_sub(started.elapsed())
                .saturating_sub(Duration::from_millis(500));
            match service.unlock_for_operator(username.clone(), left).await {
                Ok(()) => {
                    tracing::info!(%username, uid, "unlocked by this host's operator");
                    OperatorReply::Done
                }
                Err(e) => OperatorReply::Error(e.message),
            }
        }
    }
}

async fn read_request(stream: &mut UnixStream) -> Result<OperatorRequest> {
    let mut line = String::new();
    BufReader::new(stream)
        .take(MAX_REQUEST_BYTES)
        .read_line(&mut line)
        .await
        .context("cannot read the request")?;
    if !line.ends_with('\n') {
        bail!("a request is one line of at most {MAX_REQUEST_BYTES} bytes");
    }
    serde_json::from_str(&line).context("not a request")
}

async fn reply(mut stream: UnixStream, answer: &OperatorReply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(answer).map_err(std::io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line).await?;
    stream.shutdown().await
}

/// Sends `request` to the node whose data directory is `data_dir` and
/// returns its answer.
///
/// # Errors
/// When the node is not running (no socket), or does not answer.
pub async fn ask(data_dir: &Path, request: &OperatorRequest) -> Result<OperatorReply> {
    let path = socket_path(data_dir);
    let mut stream = UnixStream::connect(&path).await.with_context(|| {
        format!(
            "cannot reach the node's operator socket {}: is the node running? \
             (if not, run this on another member's host)",
            path.display()
        )
    })?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    let exchange = async {
        // A node that refuses may close before reading it all: its answer
        // still says why.
        let _ = stream.write_all(&line).await;
        let mut answer = String::new();
        BufReader::new(&mut stream)
            .take(64 * 1024)
            .read_line(&mut answer)
            .await?;
        anyhow::Ok(answer)
    };
    let answer = tokio::time::timeout(TIMEOUT + Duration::from_secs(5), exchange)
        .await
        .context("the node did not answer in time")??;
    serde_json::from_str(&answer).with_context(|| format!("not an answer: {answer:?}"))
}
