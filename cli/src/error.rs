//! The command line's errors: a stable kind, a message for people, and the
//! exit code a script acts on.

use hsm_client::{Error as SdkError, ErrorKind};
use serde_json::{json, Value};

/// The class of a failure, which fixes the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Anything else: a fault in a node, a protocol mismatch, local IO.
    Other,
    /// The command line itself is wrong, or something it needs is missing
    /// (clap reports most of these itself, also with exit code 2).
    Usage,
    /// Authentication, permission or a locked user.
    Auth,
    /// No such key or user, a conflict, or invalid input.
    Input,
    /// The cluster could not be reached or could not serve in time.
    Unavailable,
}

impl Class {
    /// The process exit code: 1 other, 2 usage, 3 auth/permission/locked,
    /// 4 not found/conflict/invalid input, 5 cluster unavailable.
    pub fn exit_code(self) -> u8 {
        match self {
            Class::Other => 1,
            Class::Usage => 2,
            Class::Auth => 3,
            Class::Input => 4,
            Class::Unavailable => 5,
        }
    }

    /// The class of a refusal from the cluster.
    pub fn of(kind: ErrorKind) -> Class {
        match kind {
            ErrorKind::Unauthenticated
            | ErrorKind::LoginFailed
            | ErrorKind::Locked
            | ErrorKind::NotActivated
            | ErrorKind::PermissionDenied => Class::Auth,
            ErrorKind::NotFound
            | ErrorKind::Conflict
            | ErrorKind::InvalidInput
            | ErrorKind::Damaged => Class::Input,
            ErrorKind::Unavailable => Class::Unavailable,
            ErrorKind::Internal => Class::Other,
        }
    }
}

/// Why a command failed.
#[derive(Debug, Clone, PartialEq)]
pub struct CliError {
    /// Stable lowercase kind: the cluster's error kinds (`login-failed`,
    /// `permission-denied`, ...) and the command line's own (`usage`,
    /// `io`, `ambiguous-key-filter`, ...).
    pub kind: &'static str,
    /// What went wrong, for people. Never secret bytes.
    pub message: String,
    /// Which exit code.
    pub class: Class,
    /// Extra fields for the JSON error object (such as the addresses tried).
    pub details: Option<Box<(&'static str, Value)>>,
}

impl CliError {
    /// An error of `kind` and `class`.
    pub fn new(class: Class, kind: &'static str, message: impl Into<String>) -> CliError {
        CliError {
            kind,
            message: message.into(),
            class,
            details: None,
        }
    }

    /// A usage mistake the parser cannot see (exit code 2).
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError::new(Class::Usage, "usage", message)
    }

    /// Invalid input (exit code 4).
    pub fn invalid(message: impl Into<String>) -> CliError {
        CliError::new(Class::Input, ErrorKind::InvalidInput.as_str(), message)
    }

    /// A file that cannot be read or written (exit code 4: the path is the
    /// caller's).
    pub fn io(path: &std::path::Path, action: &str, e: &std::io::Error) -> CliError {
        CliError::new(
            Class::Input,
            "io",
            format!("cannot {action} {}: {e}", path.display()),
        )
    }

    /// Puts `context` in front of the message.
    pub fn context(mut self, context: impl AsRef<str>) -> CliError {
        self.message = format!("{}: {}", context.as_ref(), self.message);
        self
    }

    /// Appends a hint to the message.
    pub fn hint(mut self, hint: impl AsRef<str>) -> CliError {
        self.message = format!("{} ({})", self.message, hint.as_ref());
        self
    }

    /// The JSON error object: `{"kind": ..., "message": ...}` and any
    /// details.
    pub fn to_json(&self) -> Value {
        let mut error = json!({ "kind": self.kind, "message": self.message });
        if let (Some(details), Some(map)) = (&self.details, error.as_object_mut()) {
            let (name, value) = &**details;
            map.insert((*name).to_string(), value.clone());
        }
        error
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.kind)
    }
}

impl From<SdkError> for CliError {
    fn from(e: SdkError) -> CliError {
        match e {
            SdkError::Server(e) => {
                let mut err = CliError::new(Class::of(e.kind), e.kind.as_str(), e.message);
                if e.kind == ErrorKind::NotActivated {
                    err = err.hint("activate it first with `hsm cluster activate`");
                }
                err
            }
            SdkError::Unavailable { tried } => {
                let list = if tried.is_empty() {
                    "no node known".to_string()
                } else {
                    tried
                        .iter()
                        .map(|(address, reason)| format!("{address} ({reason})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let details = tried
                    .iter()
                    .map(|(address, reason)| json!({ "address": address, "reason": reason }))
                    .collect();
                CliError {
                    details: Some(Box::new(("tried", Value::Array(details)))),
                    ..CliError::new(
                        Class::Unavailable,
                        "unavailable",
                        format!("the cluster is unreachable; tried {list}"),
                    )
                }
            }
            SdkError::DeadlineExceeded => CliError::new(
                Class::Unavailable,
                "deadline-exceeded",
                "no node answered before the deadline (raise it with --timeout-secs)",
            ),
            SdkError::Config(m) => CliError::new(Class::Input, "config", m),
            SdkError::Protocol(m) => CliError::new(Class::Other, "protocol", m),
            other => CliError::new(Class::Other, "other", other.to_string()),
        }
    }
}

/// `Result` with [`CliError`].
pub type Result<T, E = CliError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use hsm_client::ClientError;

    #[test]
    fn refusals_map_to_exit_codes_by_class() {
        let cases = [
            (ErrorKind::LoginFailed, 3),
            (ErrorKind::Locked, 3),
            (ErrorKind::PermissionDenied, 3),
            (ErrorKind::NotFound, 4),
            (ErrorKind::Conflict, 4),
            (ErrorKind::InvalidInput, 4),
            (ErrorKind::Unavailable, 5),
            (ErrorKind::Internal, 1),
        ];
        for (kind, code) in cases {
            let e = CliError::from(SdkError::Server(ClientError::new(kind, "x")));
            assert_eq!(e.class.exit_code(), code, "{kind}");
            assert_eq!(e.kind, kind.as_str());
        }
    }

    #[test]
    fn unavailable_lists_every_address_tried() {
        let e = CliError::from(SdkError::Unavailable {
            tried: vec![("127.0.0.1:9".into(), "connection refused".into())],
        });
        assert_eq!(e.class.exit_code(), 5);
        assert!(e.message.contains("127.0.0.1:9 (connection refused)"));
        let json = e.to_json();
        assert_eq!(json["kind"], "unavailable");
        assert_eq!(json["tried"][0]["address"], "127.0.0.1:9");
    }
}
