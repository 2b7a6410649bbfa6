//! What went wrong on each node during one call.

use crate::error::Error;

/// The nodes that failed during one call: address and last reason, in the
/// order first tried.
#[derive(Debug, Default)]
pub(crate) struct Failures {
    tried: Vec<(String, String)>,
    /// Whether a node failed other than by the call's deadline passing.
    failed: bool,
}

impl Failures {
    /// A node failed for `reason`.
    pub(crate) fn push(&mut self, address: &str, reason: String) {
        self.failed = true;
        self.replace(address, reason);
    }

    /// Notes `reason` for a node without counting it as a failure of the
    /// node (the call's own deadline cut the attempt). A reason the node
    /// gave before stays: it says more ("unavailable: ..." from the node
    /// itself) than the deadline that ended the retries.
    pub(crate) fn record(&mut self, address: &str, reason: String) {
        if !self.tried.iter().any(|(a, _)| a == address) {
            self.tried.push((address.to_string(), reason));
        }
    }

    /// A node failed for `reason`, replacing any it gave before.
    fn replace(&mut self, address: &str, reason: String) {
        match self.tried.iter_mut().find(|(a, _)| a == address) {
            Some(entry) => entry.1 = reason,
            None => self.tried.push((address.to_string(), reason)),
        }
    }

    /// The error listing every node tried.
    pub(crate) fn unavailable(self) -> Error {
        Error::Unavailable { tried: self.tried }
    }

    /// The error when the deadline ends the call.
    pub(crate) fn at_deadline(self) -> Error {
        if self.failed {
            self.unavailable()
        } else {
            Error::DeadlineExceeded
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_keep_the_last_reason_per_address_in_first_tried_order() {
        let mut f = Failures::default();
        f.push("a:1", "connection lost".into());
        f.push("b:1", "unavailable: no leader".into());
        f.push("a:1", "handshake failed".into());
        assert_eq!(
            f.unavailable(),
            Error::Unavailable {
                tried: vec![
                    ("a:1".into(), "handshake failed".into()),
                    ("b:1".into(), "unavailable: no leader".into()),
                ]
            }
        );
        let mut cut = Failures::default();
        cut.record("a:1", "deadline exceeded".into());
        assert_eq!(cut.at_deadline(), Error::DeadlineExceeded);
        let mut both = Failures::default();
        both.push("a:1", "connection lost".into());
        both.record("b:1", "deadline exceeded".into());
        assert!(matches!(both.at_deadline(), Error::Unavailable { tried } if tried.len() == 2));
        // A node's own answer is what the caller learns, not the deadline
        // that ended the retries on it.
        let mut told = Failures::default();
        told.push("a:1", "unavailable: node n3 serves no cryptography".into());
        told.record("a:1", "deadline exceeded".into());
        assert_eq!(
            told.at_deadline(),
            Error::Unavailable {
                tried: vec![(
                    "a:1".into(),
                    "unavailable: node n3 serves no cryptography".into()
                )]
            }
        );
    }
}
