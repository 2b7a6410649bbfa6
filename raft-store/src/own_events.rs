//! The events this node signed and has not applied yet: the leader does
//! not verify again, on apply, the signatures it just made
//! ([`hsm_state::State::apply_vouched`]). Every other member verifies them.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use hsm_proto::EventHash;
use hsm_state::Vouch;

/// Most events remembered; past it the oldest are forgotten (and, should
/// they still be applied, verified like any other).
const MAX_REMEMBERED: usize = 16_384;

/// Events signed here, by chain hash, with the public key they were
/// signed with. Cheap to share behind an `Arc`.
#[derive(Default)]
pub struct OwnEvents {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    keys: HashMap<EventHash, [u8; 32]>,
    order: VecDeque<EventHash>,
}

impl std::fmt::Debug for OwnEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnEvents").finish_non_exhaustive()
    }
}

impl OwnEvents {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that this node signed the event of chain hash `hash` with
    /// the key whose public half is `public_key`.
    pub fn signed(&self, hash: EventHash, public_key: [u8; 32]) {
        let mut inner = self.inner();
        if inner.keys.insert(hash, public_key).is_none() {
            inner.order.push_back(hash);
        }
        while inner.order.len() > MAX_REMEMBERED {
            if let Some(old) = inner.order.pop_front() {
                inner.keys.remove(&old);
            }
        }
    }
}

impl Vouch for OwnEvents {
    /// Answers once per event: an event is applied once.
    fn signed_with(&self, hash: &EventHash) -> Option<[u8; 32]> {
        self.inner().keys.remove(hash)
    }
}
