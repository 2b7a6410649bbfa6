//! Protocol versions: which ones a build speaks, how two ends agree on one,
//! and what a cluster's replicated state means.
//!
//! Two protocols, each numbered on its own:
//! - the **Raft protocol** (node to node): the messages members exchange
//!   and the rules the state machine applies. A cluster runs one Raft
//!   protocol version at a time, recorded in its replicated state (absent:
//!   1); the leader raises it once every member speaks the next one, so
//!   replicas of different builds never apply an event differently.
//! - the **client protocol** (SDK, CLI, PKCS#11 module to a node).
//!
//! Both ends agree on a version during the TLS handshake (ALPN): each
//! offers every version it speaks, the node picks the newest both speak.
//! With none in common the handshake fails with TLS's
//! `no_application_protocol` alert, which both sides report in words.

use std::ops::RangeInclusive;

/// A protocol version.
pub type Version = u16;

/// The Raft protocol versions this build speaks.
///
/// 1: the first (no version recorded in the state; refusal reasons of a
/// few kinds recorded in words). 2: refusal reasons typed; the version
/// recorded in the replicated state (`EventBody::ProtocolRaised`). 3:
/// quorum approvals, approval keys and second factors
/// (`EventBody::since`); no new appliance users. 4: key versions
/// (`EventBody::KeyRotated` and the rest).
pub const RAFT: RangeInclusive<Version> = 1..=4;

/// The client protocol versions this build speaks.
///
/// 1: the first. 2: adds `Operation::TransferLeadership` and
/// `Operation::MemberStatus`. 3: quorum tokens and approvals, second
/// factors (`Operation::LoginChallenge` and the rest). 4: key versions,
/// batches of encryptions, decryptions, signatures and verifications,
/// data keys (`Operation::RotateKey` and the rest). A node refuses
/// an operation newer than the version its connection agreed on
/// (`Operation::since`), and the SDK sends one only to nodes that speak it.
pub const CLIENT: RangeInclusive<Version> = 1..=4;

/// ALPN prefix of the Raft protocol: `hsm-raft/N`.
pub const RAFT_ALPN_PREFIX: &str = "hsm-raft/";

/// ALPN prefix of the client protocol: `hsm-client/N`.
pub const CLIENT_ALPN_PREFIX: &str = "hsm-client/";

/// The ALPN names of `versions`, newest first (a server picks the first of
/// its own list the client offers).
pub fn alpn_names(prefix: &str, versions: RangeInclusive<Version>) -> Vec<Vec<u8>> {
    versions
        .rev()
        .map(|v| format!("{prefix}{v}").into_bytes())
        .collect()
}

/// The version an ALPN name of `prefix` carries, if it is one.
pub fn alpn_version(prefix: &str, alpn: &[u8]) -> Option<Version> {
    let rest = alpn.strip_prefix(prefix.as_bytes())?;
    let digits = std::str::from_utf8(rest).ok()?;
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `lo..=hi` as people read it: "1", "1 to 2".
pub fn describe(versions: &RangeInclusive<Version>) -> String {
    if versions.start() == versions.end() {
        versions.start().to_string()
    } else {
        format!("{} to {}", versions.start(), versions.end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_newest_first() {
        let names = alpn_names(RAFT_ALPN_PREFIX, 1..=3);
        assert_eq!(
            names,
            vec![
                b"hsm-raft/3".to_vec(),
                b"hsm-raft/2".to_vec(),
                b"hsm-raft/1".to_vec()
            ]
        );
        for (name, v) in names.iter().zip([3, 2, 1]) {
            assert_eq!(alpn_version(RAFT_ALPN_PREFIX, name), Some(v));
            assert_eq!(alpn_version(CLIENT_ALPN_PREFIX, name), None);
        }
    }

    #[test]
    fn the_first_versions_keep_their_names() {
        // Builds before versioning offered exactly these.
        assert!(alpn_names(RAFT_ALPN_PREFIX, RAFT.clone()).contains(&b"hsm-raft/1".to_vec()));
        assert!(alpn_names(CLIENT_ALPN_PREFIX, CLIENT.clone()).contains(&b"hsm-client/1".to_vec()));
        assert_eq!(*RAFT.start(), 1);
        assert_eq!(*CLIENT.start(), 1);
    }

    #[test]
    fn odd_names_carry_no_version() {
        for bad in [
            &b"hsm-raft/"[..],
            b"hsm-raft/x",
            b"hsm-raft/+1",
            b"hsm-raft/99999999",
            b"hsm-raft/1 ",
            b"hsm-rafts/1",
        ] {
            assert_eq!(alpn_version(RAFT_ALPN_PREFIX, bad), None, "{bad:?}");
        }
    }
}
