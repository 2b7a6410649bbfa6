//! Event signing and the event chain hash.

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use hsm_proto::{codec, BatchSeal, Event, EventHash, NodeId, Signature, SignedEvent};

/// Domain separation prefix for event signatures.
const SIGNING_CONTEXT: &[u8] = b"hsm-cluster event v1\0";

fn signing_message(event: &Event) -> Vec<u8> {
    let mut msg = SIGNING_CONTEXT.to_vec();
    // Encoding an in-memory event cannot fail: it has no maps with non-string
    // keys and is far below the codec's size limit.
    msg.extend(codec::encode("event", event).unwrap_or_default());
    msg
}

/// Signs `event` as node `signer`.
pub fn sign_event(event: Event, signer: NodeId, key: &SigningKey) -> SignedEvent {
    let signature = Signature(key.sign(&signing_message(&event)).to_bytes());
    SignedEvent {
        event,
        signer,
        signature,
    }
}

/// Whether `signed` carries a valid signature by `public_key`.
pub fn verify_signature(signed: &SignedEvent, public_key: &[u8; 32]) -> bool {
    VerifyingKey::from_bytes(public_key).is_ok_and(|key| verify_with(signed, &key))
}

fn verify_with(signed: &SignedEvent, key: &VerifyingKey) -> bool {
    let sig = ed25519_dalek::Signature::from_bytes(&signed.signature.0);
    key.verify(&signing_message(&signed.event), &sig).is_ok()
}

/// Who vouches for events without their signature being checked again
/// ([`crate::State::apply_vouched`]).
pub trait Vouch {
    /// The public key of the key this replica's own node signed the event
    /// of chain hash `hash` with, if it did. A hash names the signed
    /// event's exact bytes, signature included, so a match is that very
    /// signature.
    fn signed_with(&self, hash: &EventHash) -> Option<[u8; 32]>;
}

/// Domain separation prefix for batch seals.
const BATCH_CONTEXT: &[u8] = b"hsm-cluster event batch v1\0";

fn batch_message(hashes: &[EventHash]) -> Vec<u8> {
    let mut msg = BATCH_CONTEXT.to_vec();
    for h in hashes {
        msg.extend_from_slice(&h.0);
    }
    msg
}

/// Seals the events of one log entry, given their chain hashes in order,
/// as node `signer`.
pub fn seal_batch(hashes: &[EventHash], signer: NodeId, key: &SigningKey) -> BatchSeal {
    BatchSeal {
        signer,
        signature: Signature(key.sign(&batch_message(hashes)).to_bytes()),
    }
}

/// The events of a sealed entry whose seal verified: each one that names
/// the sealing node as its signer is vouched for with the key the seal
/// verified under ([`crate::State::vouch_for_batch`]).
#[derive(Debug, Clone)]
pub struct BatchVouch {
    key: [u8; 32],
    hashes: std::collections::HashSet<EventHash>,
}

impl BatchVouch {
    pub(crate) fn new(key: [u8; 32], hashes: Vec<EventHash>) -> BatchVouch {
        BatchVouch {
            key,
            hashes: hashes.into_iter().collect(),
        }
    }
}

impl Vouch for BatchVouch {
    fn signed_with(&self, hash: &EventHash) -> Option<[u8; 32]> {
        self.hashes.contains(hash).then_some(self.key)
    }
}

/// Either vouches: the first that does.
impl<A: Vouch, B: Vouch> Vouch for (A, B) {
    fn signed_with(&self, hash: &EventHash) -> Option<[u8; 32]> {
        self.0
            .signed_with(hash)
            .or_else(|| self.1.signed_with(hash))
    }
}

impl<V: Vouch> Vouch for Option<V> {
    fn signed_with(&self, hash: &EventHash) -> Option<[u8; 32]> {
        self.as_ref().and_then(|v| v.signed_with(hash))
    }
}

impl<V: Vouch + ?Sized> Vouch for &V {
    fn signed_with(&self, hash: &EventHash) -> Option<[u8; 32]> {
        (**self).signed_with(hash)
    }
}

/// Vouches for nothing: every signature is checked.
pub struct NoVouch;

impl Vouch for NoVouch {
    fn signed_with(&self, _: &EventHash) -> Option<[u8; 32]> {
        None
    }
}

/// The members' verifying keys, decoded once (decoding a point costs as
/// much as a third of a verification). Derived from the records, never
/// stored or digested; equal to any other memo.
#[derive(Clone, Default)]
pub(crate) struct KeyMemo(std::collections::BTreeMap<[u8; 32], VerifyingKey>);

/// Members come and go rarely; a memo past this is dropped and refilled.
const KEY_MEMO_MAX: usize = 256;

impl KeyMemo {
    /// [`verify_signature`], with the key decoded at most once.
    pub(crate) fn verify(&mut self, signed: &SignedEvent, public_key: &[u8; 32]) -> bool {
        if let Some(key) = self.0.get(public_key) {
            return verify_with(signed, key);
        }
        let Ok(key) = VerifyingKey::from_bytes(public_key) else {
            return false;
        };
        if self.0.len() >= KEY_MEMO_MAX {
            self.0.clear();
        }
        self.0.insert(*public_key, key);
        verify_with(signed, &key)
    }
}

impl KeyMemo {
    /// Whether `seal` is `public_key`'s signature over `hashes`.
    pub(crate) fn verify_seal(
        &mut self,
        hashes: &[EventHash],
        seal: &BatchSeal,
        public_key: &[u8; 32],
    ) -> bool {
        if !self.0.contains_key(public_key) {
            let Ok(key) = VerifyingKey::from_bytes(public_key) else {
                return false;
            };
            if self.0.len() >= KEY_MEMO_MAX {
                self.0.clear();
            }
            self.0.insert(*public_key, key);
        }
        let sig = ed25519_dalek::Signature::from_bytes(&seal.signature.0);
        self.0
            .get(public_key)
            .is_some_and(|key| key.verify(&batch_message(hashes), &sig).is_ok())
    }
}

impl PartialEq for KeyMemo {
    fn eq(&self, _: &KeyMemo) -> bool {
        true
    }
}

impl Eq for KeyMemo {}

impl std::fmt::Debug for KeyMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyMemo({} keys)", self.0.len())
    }
}

/// The chain hash of a signed event: blake3 over its canonical encoding,
/// signature included. The next event's `prev_hash` must equal it.
pub fn event_hash(signed: &SignedEvent) -> EventHash {
    event_hash_and_len(signed).0
}

/// [`event_hash`], and the length of the encoding it hashes (what the
/// event takes in a log entry).
pub fn event_hash_and_len(signed: &SignedEvent) -> (EventHash, usize) {
    let bytes = codec::encode("signed event", signed).unwrap_or_default();
    (EventHash(*blake3::hash(&bytes).as_bytes()), bytes.len())
}
