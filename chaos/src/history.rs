//! The recorded history: every operation a client invoked, when, on whose
//! behalf, and how it ended. Independent of the transport, so a simulated
//! cluster can record the same history and reuse the checkers.
//!
//! On disk, `history.jsonl`: one [`Entry`] per line, in invocation order
//! (each client process writes its own file in completion order; the
//! runner merges them).

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

/// A key as the workload names it: the id the cluster returned when it was
/// created.
pub type KeyId = u64;

/// What a client asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Op {
    /// Create a key with a unique label; its id is in the outcome.
    CreateKey {
        /// The label.
        label: String,
    },
    /// Turn `sensitive` on (a one-way ratchet).
    SetSensitive {
        /// The key.
        key: KeyId,
    },
    /// Turn `extractable` off (a one-way ratchet).
    SetNotExtractable {
        /// The key.
        key: KeyId,
    },
    /// Share the key with `user`.
    Share {
        /// The key.
        key: KeyId,
        /// The user.
        user: String,
    },
    /// Stop sharing the key with `user`.
    Unshare {
        /// The key.
        key: KeyId,
        /// The user.
        user: String,
    },
    /// Sign with the key (the signature is verified by the client).
    Sign {
        /// The key.
        key: KeyId,
    },
    /// Read the key's attributes.
    ReadKey {
        /// The key.
        key: KeyId,
    },
    /// Delete the key.
    DeleteKey {
        /// The key.
        key: KeyId,
    },
    /// Log in as `user` with the workload's password number `password`
    /// (a wrong password has a number no change ever set).
    Login {
        /// The user.
        user: String,
        /// Which password.
        password: u32,
    },
    /// Change `user`'s password to number `to`.
    ChangePassword {
        /// The user.
        user: String,
        /// The new password's number.
        to: u32,
    },
}

impl Op {
    /// Its kind, as `history.jsonl` names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::CreateKey { .. } => "create_key",
            Op::SetSensitive { .. } => "set_sensitive",
            Op::SetNotExtractable { .. } => "set_not_extractable",
            Op::Share { .. } => "share",
            Op::Unshare { .. } => "unshare",
            Op::Sign { .. } => "sign",
            Op::ReadKey { .. } => "read_key",
            Op::DeleteKey { .. } => "delete_key",
            Op::Login { .. } => "login",
            Op::ChangePassword { .. } => "change_password",
        }
    }
}

/// A key's attributes, as a read returned them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySeen {
    /// `sensitive`.
    pub sensitive: bool,
    /// `extractable`.
    pub extractable: bool,
}

/// Why an operation definitely did not apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", content = "detail", rename_all = "snake_case")]
pub enum Failure {
    /// The key does not exist, or the caller may not see it.
    NotFound,
    /// The caller may not do this.
    Forbidden,
    /// The password was checked and is wrong.
    BadPassword,
    /// The account is locked.
    Locked,
    /// Anything else the cluster refused.
    Other(String),
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Acknowledged; with what it returned.
    Ok {
        /// The id a create returned.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        created: Option<KeyId>,
        /// The attributes a read returned.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seen: Option<KeySeen>,
    },
    /// Definitely not applied.
    Failed {
        /// Why.
        failure: Failure,
    },
    /// Timed out or lost: it may or may not have applied.
    Unknown,
}

impl Outcome {
    /// An acknowledgement with nothing returned.
    pub const DONE: Outcome = Outcome::Ok {
        created: None,
        seen: None,
    };

    /// Whether the operation was acknowledged.
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok { .. })
    }
}

/// One operation of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Its number: unique in the run (the process number in the high 32
    /// bits, the process's count of invocations in the low ones).
    pub id: u64,
    /// The client process that ran it.
    pub process: u32,
    /// The user it acted as.
    pub actor: String,
    /// The node it was sent to, when the client was pinned to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<u64>,
    /// What it asked.
    pub op: Op,
    /// When it was invoked, ms since the run started.
    pub invoke_ms: u64,
    /// When it completed (for an unknown outcome: when the client gave
    /// up; it may still apply later).
    pub complete_ms: u64,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl Entry {
    /// The key it acts on, if any (for a create: the id it returned).
    pub fn key(&self) -> Option<KeyId> {
        match &self.op {
            Op::CreateKey { .. } => match self.outcome {
                Outcome::Ok { created, .. } => created,
                _ => None,
            },
            Op::SetSensitive { key }
            | Op::SetNotExtractable { key }
            | Op::Share { key, .. }
            | Op::Unshare { key, .. }
            | Op::Sign { key }
            | Op::ReadKey { key }
            | Op::DeleteKey { key } => Some(*key),
            Op::Login { .. } | Op::ChangePassword { .. } => None,
        }
    }

    /// Whether it certainly took effect before `other` was invoked.
    pub fn acked_before(&self, other: &Entry) -> bool {
        self.outcome.is_ok() && self.complete_ms < other.invoke_ms
    }
}

/// Writes `history` as JSON lines.
///
/// # Errors
/// If `out` fails.
pub fn write_jsonl(history: &[Entry], mut out: impl Write) -> anyhow::Result<()> {
    for e in history {
        serde_json::to_writer(&mut out, e)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Reads a history written by [`write_jsonl`].
///
/// # Errors
/// A line that is not an entry, named by its number.
pub fn read_jsonl(input: impl BufRead) -> anyhow::Result<Vec<Entry>> {
    let mut history = Vec::new();
    for (n, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let entry = serde_json::from_str(&line)
            .map_err(|e| anyhow::anyhow!("history line {}: {e}", n + 1))?;
        history.push(entry);
    }
    Ok(history)
}
