//! The snapshot byte format: a header and length-prefixed entities, streamed
//! so no single value has to fit the codec's size limit.
//!
//! `"HSMSNAP1" || state digest (32) || entity count (u64 BE) ||
//!  { entity length (u32 BE) || canonical entity }*`

use hsm_state::{Entity, State, StateDigest};

use crate::error::StoreError;

const MAGIC: &[u8; 8] = b"HSMSNAP1";
const HEADER_LEN: usize = 8 + 32 + 8;

fn bad(what: impl Into<String>) -> StoreError {
    StoreError::Inconsistent(format!("snapshot data: {}", what.into()))
}

/// Encodes the whole state.
pub(crate) fn encode(state: &State) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(HEADER_LEN + state.entity_count() * 128);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&state.digest().0);
    out.extend_from_slice(&(state.entity_count() as u64).to_be_bytes());
    for e in state.entities() {
        let bytes = e.to_bytes().map_err(StoreError::Encode)?;
        let len = u32::try_from(bytes.len()).map_err(|_| bad("entity over 4 GiB"))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    Ok(out)
}

/// The digest a snapshot's header promises, read from its first bytes
/// alone (`data` may be just the first chunk).
pub(crate) fn promised_digest(data: &[u8]) -> Result<StateDigest, StoreError> {
    if data.len() < 40 || &data[..8] != MAGIC {
        return Err(bad("missing or unknown header"));
    }
    let digest: [u8; 32] = data[8..40].try_into().map_err(|_| bad("short digest"))?;
    Ok(StateDigest(digest))
}

/// Decodes and checks a snapshot: every entity decodes, the records are
/// consistent, and the rebuilt state has the digest the header promises.
pub(crate) fn decode(data: &[u8]) -> Result<State, StoreError> {
    if data.len() < HEADER_LEN || &data[..8] != MAGIC {
        return Err(bad("missing or unknown header"));
    }
    let digest: [u8; 32] = data[8..40].try_into().map_err(|_| bad("short digest"))?;
    let count = u64::from_be_bytes(data[40..48].try_into().map_err(|_| bad("short count"))?);
    let mut rest = &data[HEADER_LEN..];
    // Each entity takes at least 5 bytes, which bounds the allocation below.
    if count > (rest.len() / 5) as u64 {
        return Err(bad(format!(
            "claims {count} entities in {} bytes",
            rest.len()
        )));
    }
    let mut entities = Vec::with_capacity(count.min(65_536) as usize);
    for i in 0..count {
        if rest.len() < 4 {
            return Err(bad(format!("truncated at entity {i}")));
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        rest = &rest[4..];
        if rest.len() < len {
            return Err(bad(format!("truncated inside entity {i}")));
        }
        let e = Entity::from_bytes(&rest[..len]).map_err(|source| StoreError::Decode {
            cf: "snapshot",
            record: format!("entity {i}"),
            source,
        })?;
        entities.push(e);
        rest = &rest[len..];
    }
    if !rest.is_empty() {
        return Err(bad(format!("{} trailing bytes", rest.len())));
    }
    let state = State::from_entities(entities).map_err(|e| bad(e.to_string()))?;
    if state.digest().0 != digest {
        return Err(bad("rebuilt state does not match the snapshot's digest"));
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    /// A state whose cluster runs a raised Raft protocol travels whole:
    /// the record of the version is counted and read back.
    #[test]
    fn a_raised_protocol_version_survives_a_snapshot() {
        let raised = State::from_entities([
            hsm_state::Entity::Meta(hsm_state::Meta::default()),
            hsm_state::Entity::Protocol(2),
        ])
        .expect("state");
        let back = decode(&encode(&raised).expect("encodes")).expect("decodes");
        assert_eq!(back.protocol(), 2);
        assert_eq!(back.digest(), raised.digest());
    }

    /// Any bytes, and any single-byte change or cut of a real snapshot,
    /// decode to an error or a state whose digest matches: never a panic,
    /// never a silently different state.
    #[test]
    fn damaged_or_random_snapshots_are_errors_not_panics() {
        let seed: u64 = rand::random();
        eprintln!("seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let good = encode(&State::new()).expect("encodes");
        assert!(decode(&good).is_ok());
        for _ in 0..2000 {
            let mut bytes = good.clone();
            match rng.gen_range(0..3) {
                0 => {
                    let i = rng.gen_range(0..bytes.len());
                    bytes[i] ^= rng.gen_range(1..=255u8);
                }
                1 => bytes.truncate(rng.gen_range(0..bytes.len())),
                _ => {
                    let len = rng.gen_range(0..200);
                    bytes = (0..len).map(|_| rng.gen()).collect();
                }
            }
            if let Ok(state) = decode(&bytes) {
                assert_eq!(state.digest().0[..], bytes[8..40], "seed {seed}");
            }
        }
    }
}
