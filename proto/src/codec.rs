//! The canonical binary encoding.
//!
//! Everything that is hashed, signed, stored or sent uses this one encoding:
//! bincode 2 with fixed-width big-endian integers. Encoding the same value
//! always yields the same bytes (the types use ordered maps and no floats),
//! which is what makes event signatures and state digests reproducible.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Largest value [`decode`] accepts, in bytes. Larger input is refused before
/// any allocation for its contents.
pub const MAX_DECODE_BYTES: usize = 64 * 1024 * 1024;

/// An encode or decode failure. The message names what was wrong with the
/// bytes, never the bytes themselves.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The value could not be encoded.
    #[error("cannot encode {what}: {reason}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// The bytes are not a valid encoding of the expected type.
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// The bytes decoded but were followed by unexpected trailing bytes.
    #[error("cannot decode {what}: {trailing} trailing bytes after the value")]
    Trailing {
        /// What was being decoded.
        what: &'static str,
        /// How many bytes were left over.
        trailing: usize,
    },
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_big_endian()
        .with_fixed_int_encoding()
        .with_limit::<MAX_DECODE_BYTES>()
}

/// Encodes `value` canonically.
///
/// # Errors
/// Fails only if the value is larger than [`MAX_DECODE_BYTES`] or a type's
/// `Serialize` impl fails.
pub fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, CodecError> {
    let bytes = bincode::serde::encode_to_vec(value, config()).map_err(|e| CodecError::Encode {
        what,
        reason: e.to_string(),
    })?;
    // Never produce what `decode` would refuse: a value written but
    // unreadable would be lost after it was acknowledged.
    if bytes.len() > MAX_DECODE_BYTES {
        return Err(CodecError::Encode {
            what,
            reason: format!(
                "{} bytes exceed the {MAX_DECODE_BYTES} byte limit",
                bytes.len()
            ),
        });
    }
    Ok(bytes)
}

/// Decodes a whole `T` from `bytes`; trailing bytes are an error.
///
/// # Errors
/// Returns [`CodecError`] for truncated, malformed, oversized or trailing input.
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, CodecError> {
    let (value, used) =
        bincode::serde::decode_from_slice(bytes, config()).map_err(|e| CodecError::Decode {
            what,
            reason: e.to_string(),
        })?;
    if used != bytes.len() {
        return Err(CodecError::Trailing {
            what,
            trailing: bytes.len() - used,
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyId, Username};

    #[test]
    fn round_trips_and_rejects_trailing_bytes() {
        let v = (KeyId(7), Username::new("alice").expect("valid"));
        let mut bytes = encode("pair", &v).expect("encodes");
        let back: (KeyId, Username) = decode("pair", &bytes).expect("decodes");
        assert_eq!(back, v);
        bytes.push(0);
        assert!(matches!(
            decode::<(KeyId, Username)>("pair", &bytes),
            Err(CodecError::Trailing { trailing: 1, .. })
        ));
    }

    #[test]
    fn damaged_events_are_errors_not_panics() {
        use crate::{
            Actor, Event, EventBody, EventHash, KeyAttributes, KeySpec, RequestId, Signature,
            SignedEvent,
        };
        let event = SignedEvent {
            event: Event {
                request_id: RequestId([1; 16]),
                timestamp_ms: 7,
                actor: Actor::User(Username::new("alice").expect("valid")),
                prev_hash: EventHash([2; 32]),
                body: EventBody::KeyCreated {
                    key: KeyId(9),
                    spec: KeySpec::Rsa { bits: 2048 },
                    attributes: KeyAttributes::default(),
                    provenance: crate::KeyProvenance::known_outside(crate::KeyOrigin::Imported),
                    domain_generation: 0,
                    wrapped_material: vec![3; 40],
                    public_key: vec![4; 30],
                    unique_label: true,
                },
            },
            signer: crate::NodeId(1),
            signature: Signature([5; 64]),
        };
        let good = encode("event", &event).expect("encodes");
        assert_eq!(
            decode::<SignedEvent>("event", &good).expect("decodes"),
            event
        );
        // A small xorshift with a fixed seed, so a failure reproduces.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let mut bytes = good.clone();
            let r = next();
            let i = (r as usize) % bytes.len();
            if r % 3 == 0 {
                bytes.truncate(i);
            } else {
                bytes[i] ^= ((r >> 32) as u8).max(1);
            }
            let _ = decode::<SignedEvent>("event", &bytes);
        }
    }

    #[test]
    fn encode_refuses_what_decode_would_refuse() {
        let too_big = vec![0u8; MAX_DECODE_BYTES];
        assert!(matches!(
            encode("blob", &too_big),
            Err(CodecError::Encode { .. })
        ));
    }

    #[test]
    fn truncated_and_garbage_input_is_an_error_not_a_panic() {
        let bytes = encode("s", &String::from("hello world")).expect("encodes");
        for cut in 0..bytes.len() {
            assert!(decode::<String>("s", &bytes[..cut]).is_err());
        }
        // A length prefix claiming 2^60 bytes must be refused, not allocated.
        let mut huge = vec![0x10, 0, 0, 0, 0, 0, 0, 0];
        huge.extend_from_slice(b"abc");
        assert!(decode::<Vec<u8>>("v", &huge).is_err());
    }
}
