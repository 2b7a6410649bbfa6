//! Each source address's share of a node's password work.
//!
//! A password check or hash (Argon2id: 40 MiB and a core for tens of
//! milliseconds) runs in one of a few slots per node, first come first
//! served. Without a share, one address sending logins as fast as it can
//! (for names that do not exist: no Raft write, no lockout, only the decoy
//! check) queues ahead of everyone, and the users' own logins wait past
//! their deadline. So an address may have at most a few requests that do
//! password work in progress on a node, waiting or running; beyond them
//! it is refused at once, before its request waits for anything or
//! reserves a login attempt. Everyone else waits behind at most that many
//! of its checks.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

use hsm_proto::client::ClientError;
use hsm_proto::NodeId;

/// The requests doing password work in progress on a node, per source
/// address (as the server counts connections: an IPv4 address, an IPv6
/// /64).
#[derive(Debug)]
pub(crate) struct SourceShares {
    node: NodeId,
    per_source: u32,
    held: Mutex<BTreeMap<IpAddr, u32>>,
}

/// One request's part of its address's share, given back when dropped.
#[derive(Debug)]
pub(crate) struct Share<'a> {
    shares: &'a SourceShares,
    source: IpAddr,
}

impl SourceShares {
    /// At most `per_source` (at least 1) at once from one address.
    pub(crate) fn new(node: NodeId, per_source: u32) -> SourceShares {
        SourceShares {
            node,
            per_source: per_source.max(1),
            held: Mutex::new(BTreeMap::new()),
        }
    }

    /// A part of `source`'s share for one request.
    ///
    /// # Errors
    /// Unavailable when `source` has its whole share in progress already.
    pub(crate) fn take(&self, source: IpAddr) -> Result<Share<'_>, ClientError> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let n = held.entry(source).or_insert(0);
        if *n >= self.per_source {
            return Err(ClientError::unavailable(format!(
                "node {} has {} requests from this address waiting to be checked already \
                 (passwords, or sessions it cannot judge yet); try again",
                self.node, self.per_source
            )));
        }
        *n += 1;
        Ok(Share {
            shares: self,
            source,
        })
    }

    /// Parts of shares in progress, all addresses together.
    #[cfg(test)]
    fn in_progress(&self) -> u32 {
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.values().sum()
    }
}

impl Drop for Share<'_> {
    fn drop(&mut self) {
        let mut held = self
            .shares
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = held.get_mut(&self.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_its_share_and_no_more_and_others_are_apart() {
        let shares = SourceShares::new(NodeId(1), 2);
        let a: IpAddr = "192.0.2.1".parse().expect("an address");
        let b: IpAddr = "192.0.2.2".parse().expect("an address");
        let first = shares.take(a).expect("first");
        let second = shares.take(a).expect("second");
        let refused = shares.take(a).expect_err("a third");
        assert_eq!(refused.kind, hsm_proto::client::ErrorKind::Unavailable);
        let other = shares.take(b).expect("another address");
        drop(first);
        let again = shares.take(a).expect("a part given back is taken again");
        assert_eq!(shares.in_progress(), 3);
        drop((second, again, other));
        assert_eq!(shares.in_progress(), 0);
        assert!(
            shares.held.lock().expect("lock").is_empty(),
            "no address kept"
        );
    }
}
