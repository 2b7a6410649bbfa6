//! Event signing and the event chain hash.

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use hsm_proto::{codec, Event, EventHash, NodeId, Signature, SignedEvent};

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
    let Ok(key) = VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    let sig = ed25519_dalek::Signature::from_bytes(&signed.signature.0);
    key.verify(&signing_message(&signed.event), &sig).is_ok()
}

/// The chain hash of a signed event: blake3 over its canonical encoding,
/// signature included. The next event's `prev_hash` must equal it.
pub fn event_hash(signed: &SignedEvent) -> EventHash {
    let bytes = codec::encode("signed event", signed).unwrap_or_default();
    EventHash(*blake3::hash(&bytes).as_bytes())
}
