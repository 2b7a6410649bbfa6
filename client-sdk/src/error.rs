//! The SDK's error type.

use hsm_proto::client::{ClientError, ErrorKind};

/// Why a call failed.
///
/// For a write, [`Error::Unavailable`] and [`Error::DeadlineExceeded`] leave
/// the outcome unknown: the write may or may not have been applied.
/// Sending it again with the same request id
/// ([`Client::call_with_request_id`](crate::Client::call_with_request_id))
/// applies it at most once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A node refused the request; [`Error::kind`] says why. Not retried:
    /// another node would answer the same.
    #[error("refused by the cluster: {0}")]
    Server(ClientError),
    /// No node served the request before the deadline: every node tried
    /// failed at the transport level or answered `unavailable`. Lists each
    /// address tried with the last reason it failed, in the order first
    /// tried.
    #[error("no node could serve the request: {}", list(tried))]
    Unavailable {
        /// `(address, reason)` for each node tried.
        tried: Vec<(String, String)>,
    },
    /// The client configuration or options are invalid, or the cluster is
    /// not the one the configuration names.
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// A node answered something the protocol does not allow here (an
    /// oversized or undecodable frame, or a reply of the wrong type): a
    /// version mismatch or a bug, not retried.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The call's deadline passed before any node failed: the attempt in
    /// flight (or the wait for an in-flight slot) took too long.
    #[error("deadline exceeded")]
    DeadlineExceeded,
}

fn list(tried: &[(String, String)]) -> String {
    if tried.is_empty() {
        return "no node known".to_string();
    }
    tried
        .iter()
        .map(|(addr, reason)| format!("{addr} ({reason})"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Error {
    /// The class of a [`Error::Server`] refusal; `None` for the other
    /// variants.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Error::Server(e) => Some(e.kind),
            _ => None,
        }
    }

    /// Whether trying the same call again later may succeed: the cluster
    /// could not be reached or could not serve it in time.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unavailable { .. } | Error::DeadlineExceeded => true,
            Error::Server(e) => e.kind == ErrorKind::Unavailable,
            Error::Config(_) | Error::Protocol(_) => false,
        }
    }
}

impl From<ClientError> for Error {
    fn from(e: ClientError) -> Error {
        Error::Server(e)
    }
}

/// `Result` with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_names_every_address_and_reason() {
        let e = Error::Unavailable {
            tried: vec![
                ("10.0.0.1:4000".into(), "connection lost".into()),
                ("10.0.0.2:4000".into(), "unavailable: no leader".into()),
            ],
        };
        assert_eq!(
            e.to_string(),
            "no node could serve the request: 10.0.0.1:4000 (connection lost), \
             10.0.0.2:4000 (unavailable: no leader)"
        );
        assert!(e.is_transient());
        assert_eq!(e.kind(), None);
        let s = Error::Server(ClientError::denied("role crypto-user may not do that"));
        assert_eq!(s.kind(), Some(ErrorKind::PermissionDenied));
        assert!(!s.is_transient());
    }
}
