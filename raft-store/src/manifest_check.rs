//! Checks every record checksum of RocksDB's MANIFEST before RocksDB opens it.
//!
//! RocksDB verifies these checksums itself, but with RocksDB 11.8 some
//! damaged MANIFESTs make `DB::open` loop forever instead of failing (found
//! by `tests/tamper.rs`). A node that hangs at start is as bad as one that
//! runs on damaged data, so the store reads the MANIFEST first, in RocksDB's
//! log format: 32 KiB blocks of records, each with a 7-byte header
//! (masked crc32c, length, type) or an 11-byte one for recyclable types.

use std::path::Path;

use crate::error::StoreError;

const BLOCK_BYTES: usize = 32 * 1024;
const HEADER_BYTES: usize = 7;
const RECYCLABLE_HEADER_BYTES: usize = 11;
const MASK_DELTA: u32 = 0xa282_ead8;

fn unmask(masked: u32) -> u32 {
    let rot = masked.wrapping_sub(MASK_DELTA);
    rot.rotate_left(15)
}

fn is_recyclable(record_type: u8) -> bool {
    matches!(record_type, 5..=8 | 11 | 131)
}

/// Verifies the MANIFEST that `CURRENT` names, if the directory has one.
pub(crate) fn check(dir: &Path) -> Result<(), StoreError> {
    let current = match std::fs::read_to_string(dir.join("CURRENT")) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(damaged("CURRENT", format!("unreadable: {e}"))),
    };
    let name = current.trim_end_matches('\n');
    if !name.starts_with("MANIFEST-") || name.contains('/') || name.contains('\0') {
        return Err(damaged("CURRENT", "does not name a MANIFEST".into()));
    }
    let bytes =
        std::fs::read(dir.join(name)).map_err(|e| damaged(name, format!("unreadable: {e}")))?;
    check_records(&bytes).map_err(|reason| damaged(name, reason))
}

fn damaged(file: &str, reason: String) -> StoreError {
    StoreError::Inconsistent(format!("rocksdb file {file} is damaged: {reason}"))
}

/// Walks the records of one log-format file, checking each checksum.
fn check_records(bytes: &[u8]) -> Result<(), String> {
    for (block_no, block) in bytes.chunks(BLOCK_BYTES).enumerate() {
        let mut pos = 0;
        while block.len() - pos >= HEADER_BYTES {
            let header = &block[pos..];
            let masked = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
            let length = usize::from(u16::from_le_bytes([header[4], header[5]]));
            let record_type = header[6];
            if record_type == 0 && length == 0 && masked == 0 {
                // Zero padding (preallocated or block trailer) ends the block.
                break;
            }
            let header_bytes = if is_recyclable(record_type) {
                RECYCLABLE_HEADER_BYTES
            } else {
                HEADER_BYTES
            };
            let offset = block_no * BLOCK_BYTES + pos;
            if header_bytes + length > block.len() - pos {
                return Err(format!("record at byte {offset} runs past its block"));
            }
            let covered = &block[pos + 6..pos + header_bytes + length];
            if crc32c::crc32c(covered) != unmask(masked) {
                return Err(format!("record at byte {offset} fails its checksum"));
            }
            pos += header_bytes + length;
        }
        if block[pos..].iter().any(|b| *b != 0) && block.len() - pos < HEADER_BYTES {
            return Err(format!(
                "non-zero trailer in block {block_no} after byte {}",
                block_no * BLOCK_BYTES + pos
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    #[test]
    fn random_bytes_are_checked_without_panicking() {
        let seed: u64 = rand::random();
        eprintln!("seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for _ in 0..2000 {
            let len = rng.gen_range(0..3 * BLOCK_BYTES / 2);
            let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let _ = check_records(&bytes);
        }
        assert!(
            check_records(&[]).is_ok(),
            "an empty file has no bad record"
        );
        assert!(
            check_records(&[0; 100]).is_ok(),
            "zero padding is not a record"
        );
    }

    #[test]
    fn a_record_with_a_wrong_checksum_is_named() {
        // type 1 (full), length 3, payload "abc", checksum of something else.
        let mut rec = vec![0, 0, 0, 0, 3, 0, 1];
        rec.extend_from_slice(b"abc");
        let err = check_records(&rec).expect_err("bad checksum");
        assert!(err.contains("byte 0"), "{err}");
        // The right masked checksum makes it pass.
        let crc = crc32c::crc32c(&rec[6..]);
        let masked = (crc.rotate_right(15)).wrapping_add(MASK_DELTA);
        rec[..4].copy_from_slice(&masked.to_le_bytes());
        assert!(check_records(&rec).is_ok());
    }
}
