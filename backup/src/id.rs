//! The backup id.

use std::fmt;
use std::str::FromStr;

use rand::RngCore;
use serde::{Deserialize, Serialize};

/// Identity of one backup: 16 random bytes, shown as 32 lowercase hex
/// digits, which is also the name of the backup's folder of objects.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BackupId(pub [u8; 16]);

impl BackupId {
    /// A fresh random id from the operating system's generator.
    pub fn random() -> BackupId {
        let mut id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        BackupId(id)
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BackupId({self})")
    }
}

/// Text that is not 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a backup id is 32 lowercase hex digits, got {0:?}")]
pub struct ParseBackupIdError(pub String);

impl FromStr for BackupId {
    type Err = ParseBackupIdError;

    fn from_str(s: &str) -> Result<BackupId, ParseBackupIdError> {
        let bad = || ParseBackupIdError(s.chars().take(64).collect());
        if s.len() != 32
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad());
        }
        let mut id = [0u8; 16];
        hex::decode_to_slice(s, &mut id).map_err(|_| bad())?;
        Ok(BackupId(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text_and_refuse_other_text() {
        let id = BackupId::random();
        assert_eq!(id.to_string().parse::<BackupId>(), Ok(id));
        for bad in ["", "00", &"A".repeat(32), &"0".repeat(33), &"g".repeat(32)] {
            assert!(bad.parse::<BackupId>().is_err(), "{bad:?} accepted");
        }
    }
}
