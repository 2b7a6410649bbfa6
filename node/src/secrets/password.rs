//! Password hashing (Argon2id) and the password policy.
//!
//! Passwords arrive as `&str` (held by callers in `Zeroizing<String>`) and
//! are never logged or put into an error: errors state the rule broken.
//! Only the PHC string leaves this module; it is what `UserCreated` and
//! password-change events carry.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use hsm_proto::{RequestId, Username};
use rand::RngCore;

use super::SecretsError;

/// Argon2id memory cost in KiB: 40 MiB.
pub const ARGON2_M_COST_KIB: u32 = 40_960;
/// Argon2id passes over memory.
pub const ARGON2_T_COST: u32 = 2;
/// Argon2id lanes.
pub const ARGON2_P_COST: u32 = 1;

/// The parameters new hashes use: m = 40 MiB, t = 2, p = 1, twice the
/// memory of the OWASP Password Storage Cheat Sheet's floor for Argon2id
/// ([`OWASP_FLOOR_PARAMS`]) and about three times its time: a password
/// hash taken from a backup or a member costs an offline guesser that much
/// more per guess, and a login about 58 ms of one core instead of 18
/// (docs/benchmarks.md measures both in one run). Logins are rare (a
/// session lasts an hour) and bounded to one Argon2id slot per core, so a
/// node pays at most 40 MiB per core for them. Raising
/// them later is safe: a PHC string carries its own parameters, so older
/// hashes still verify (at their own cost, until their password changes).
pub const ARGON2_PARAMS: Params =
    match Params::new(ARGON2_M_COST_KIB, ARGON2_T_COST, ARGON2_P_COST, None) {
        Ok(p) => p,
        Err(_) => panic!("invalid Argon2 parameters"),
    };

/// The OWASP floor for Argon2id (m = 19456 KiB, t = 2, p = 1): the
/// reference the benchmark measures [`ARGON2_PARAMS`] against.
pub const OWASP_FLOOR_PARAMS: Params = match Params::new(19_456, 2, 1, None) {
    Ok(p) => p,
    Err(_) => panic!("invalid Argon2 parameters"),
};

/// Largest memory cost [`verify_password`] accepts from a PHC string, in KiB
/// (256 MiB), so a stored hash cannot make a login exhaust a node's memory.
pub const MAX_VERIFY_M_COST_KIB: u32 = 256 * 1024;
/// Largest time cost [`verify_password`] accepts from a PHC string.
pub const MAX_VERIFY_T_COST: u32 = 16;
/// Largest parallelism [`verify_password`] accepts from a PHC string.
pub const MAX_VERIFY_P_COST: u32 = 16;

/// Fewest characters a password may have.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Most characters a password may have (CloudHSM allows 32; we allow more
/// for passphrases).
pub const MAX_PASSWORD_CHARS: usize = 128;

fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, ARGON2_PARAMS)
}

/// Hashes `password` with Argon2id at [`ARGON2_PARAMS`] and a fresh random
/// 16-byte salt; returns the PHC string (`$argon2id$v=19$m=40960,t=2,p=1$...`).
/// Does not check the policy: call [`check_password_policy`] first.
///
/// # Errors
/// [`SecretsError::PasswordHash`] if Argon2 fails (for example, cannot
/// allocate its memory).
pub fn hash_password(password: &str) -> Result<String, SecretsError> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    hash_with_salt(password, &salt)
}

/// Hashes the password that request `request_id` sets for `username`, as
/// [`hash_password`] does but with the salt drawn from the two: every
/// attempt of one request (a retry, through any node) hashes the same
/// password to the same PHC string, so the state machine tells a retry
/// from another password sent under a used request id. Salts still differ
/// between users and between requests (request ids are random); only a
/// client that reuses its own id for its own user repeats one.
///
/// # Errors
/// As [`hash_password`].
pub fn hash_request_password(
    password: &str,
    username: &Username,
    request_id: RequestId,
) -> Result<String, SecretsError> {
    let mut input = Vec::with_capacity(username.as_str().len() + 17);
    input.extend_from_slice(username.as_str().as_bytes());
    input.push(0);
    input.extend_from_slice(&request_id.0);
    let drawn = blake3::derive_key("hsm-cluster 2026-12 password salt of a request", &input);
    let mut salt = [0u8; 16];
    salt.copy_from_slice(&drawn[..16]);
    hash_with_salt(password, &salt)
}

fn hash_with_salt(password: &str, salt: &[u8; 16]) -> Result<String, SecretsError> {
    let salt =
        SaltString::encode_b64(salt).map_err(|e| SecretsError::PasswordHash(e.to_string()))?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| SecretsError::PasswordHash(e.to_string()))
}

/// Whether `password` matches the Argon2id PHC string `phc`. The comparison
/// is constant time (argon2's own). Returns false for a PHC string that does
/// not parse, is not Argon2id version 19, or asks for more than the
/// `MAX_VERIFY_*` costs.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    if parsed.algorithm != argon2::ARGON2ID_IDENT || parsed.version != Some(Version::V0x13.into()) {
        return false;
    }
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    if params.m_cost() > MAX_VERIFY_M_COST_KIB
        || params.t_cost() > MAX_VERIFY_T_COST
        || params.p_cost() > MAX_VERIFY_P_COST
    {
        return false;
    }
    hasher()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Checks `password` against the policy: 8 to 128 characters, not all
/// whitespace.
///
/// # Errors
/// [`SecretsError::PasswordPolicy`] naming the rule broken (never the
/// password or its length).
pub fn check_password_policy(password: &str) -> Result<(), SecretsError> {
    let chars = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Err(SecretsError::PasswordPolicy(
            "a password must have 8 to 128 characters",
        ));
    }
    if password.chars().all(char::is_whitespace) {
        return Err(SecretsError::PasswordPolicy(
            "a password must not be only whitespace",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_the_right_password_only() {
        let phc = hash_password("correct horse").expect("hashes");
        assert!(phc.starts_with("$argon2id$v=19$m=40960,t=2,p=1$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("correct horsE", &phc));
        assert!(!verify_password("", &phc));
    }

    #[test]
    fn hashes_made_with_other_argon2id_parameters_still_verify() {
        let params = Params::new(64, 1, 1, None).expect("valid");
        let salt = SaltString::encode_b64(b"0123456789abcdef").expect("salt");
        let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"old password", &salt)
            .expect("hashes")
            .to_string();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert!(verify_password("old password", &phc));
        assert!(!verify_password("old passworD", &phc));
    }

    #[test]
    fn hashes_of_one_password_differ_by_salt() {
        // Kept cheap: the second hash is compared, not verified.
        let a = hash_password("same password").expect("hashes");
        let b = hash_password("same password").expect("hashes");
        assert_ne!(a, b);
    }

    #[test]
    fn a_request_hashes_its_password_alike_every_time_and_only_its_own() {
        let (carol, dave) = (
            Username::new("carol").expect("name"),
            Username::new("dave").expect("name"),
        );
        let (one, two) = (RequestId([1; 16]), RequestId([2; 16]));
        let first = hash_request_password("a password 1", &carol, one).expect("hashes");
        assert!(verify_password("a password 1", &first));
        assert_eq!(
            hash_request_password("a password 1", &carol, one).expect("hashes"),
            first,
            "a retry"
        );
        for other in [
            hash_request_password("a password 2", &carol, one),
            hash_request_password("a password 1", &carol, two),
            hash_request_password("a password 1", &dave, one),
        ] {
            assert_ne!(other.expect("hashes"), first);
        }
    }

    #[test]
    fn malformed_or_foreign_or_costly_phc_strings_never_verify() {
        for phc in [
            "",
            "$argon2id$",
            "not a hash",
            // argon2i and argon2d are refused even when well formed.
            "$argon2i$v=19$m=8,t=1,p=1$c29tZXNhbHQ$7Q1eiXIK9LNJ6vbvN4y+Kl1yRTNaXF1iVoiuYX6mCsE",
            "$argon2d$v=19$m=8,t=1,p=1$c29tZXNhbHQ$7Q1eiXIK9LNJ6vbvN4y+Kl1yRTNaXF1iVoiuYX6mCsE",
            // Far above the verify limits: refused before any work.
            "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHQ$7Q1eiXIK9LNJ6vbvN4y+Kl1yRTNaXF1iVoiuYX6mCsE",
            "$argon2id$v=19$m=8,t=1000,p=1$c29tZXNhbHQ$7Q1eiXIK9LNJ6vbvN4y+Kl1yRTNaXF1iVoiuYX6mCsE",
        ] {
            assert!(!verify_password("password", phc), "{phc}");
        }
    }

    #[test]
    fn policy_bounds_length_in_characters_and_refuses_blank() {
        assert!(check_password_policy("12345678").is_ok());
        assert!(check_password_policy(&"x".repeat(128)).is_ok());
        assert!(check_password_policy("ünïcödé").is_err(), "7 characters");
        assert!(check_password_policy("ünïcödé!").is_ok(), "8 characters");
        for bad in [
            "",
            "1234567",
            "        ",
            "\t\n \t\n \t\n",
            &"x".repeat(129),
        ] {
            let err = check_password_policy(bad).expect_err("refused");
            assert!(matches!(err, SecretsError::PasswordPolicy(_)));
            if !bad.trim().is_empty() {
                assert!(!err.to_string().contains(bad), "{err}");
            }
        }
    }
}
