//! The operations measured: each through the SDK against a cluster, and
//! (where it means something) the same work in-process with the crypto
//! library, the limit with no network, no consensus and no serialisation.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hsm_client::{Client, KeyAttributes, KeyId, KeySpec, Username};
use hsm_crypto::mechanism::{EncryptMechanism, SignMechanism};
use hsm_crypto::LoadedKey;
use serde::{Deserialize, Serialize};

use crate::load::Measured;

/// One measured operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// ECDSA P-256 with SHA-256 over 32 bytes.
    SignP256,
    /// Ed25519 over 32 bytes.
    SignEd25519,
    /// RSA-2048 PKCS#1 v1.5 with SHA-256 over 32 bytes.
    SignRsa2048,
    /// ECDSA P-256 with SHA-256 over 32 bytes, [`SIGN_MANY`] messages per
    /// call (`sign_many`: one request); counted per signature.
    SignManyP256,
    /// ECDSA P-256 verification.
    VerifyP256,
    /// AES-256-GCM encryption of 1 KiB.
    AesGcm1k,
    /// HMAC-SHA-256 over 64 bytes.
    HmacSha256,
    /// 32 random bytes.
    Random32,
    /// AES-256 key generation: a replicated write.
    Keygen,
    /// A login (Argon2id and a replicated write of the attempt).
    Login,
}

impl Op {
    /// Every operation, in the order measured: key generation last, as it
    /// grows the state (and the stores compact behind it).
    pub const ALL: [Op; 10] = [
        Op::SignP256,
        Op::SignManyP256,
        Op::SignEd25519,
        Op::SignRsa2048,
        Op::VerifyP256,
        Op::AesGcm1k,
        Op::HmacSha256,
        Op::Random32,
        Op::Login,
        Op::Keygen,
    ];

    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Op::SignP256 => "sign-p256",
            Op::SignManyP256 => "sign-many-p256",
            Op::SignEd25519 => "sign-ed25519",
            Op::SignRsa2048 => "sign-rsa2048",
            Op::VerifyP256 => "verify-p256",
            Op::AesGcm1k => "aes-gcm-1k",
            Op::HmacSha256 => "hmac-sha256",
            Op::Random32 => "random-32",
            Op::Keygen => "keygen",
            Op::Login => "login",
        }
    }

    /// Operations one call does.
    pub fn per_call(self) -> u64 {
        match self {
            Op::SignManyP256 => SIGN_MANY as u64,
            _ => 1,
        }
    }

    /// Parses a name as [`Op::name`] gives it.
    ///
    /// # Errors
    /// For any other name, listing the valid ones.
    pub fn parse(name: &str) -> Result<Op> {
        Op::ALL
            .into_iter()
            .find(|op| op.name() == name)
            .with_context(|| {
                let names: Vec<&str> = Op::ALL.iter().map(|o| o.name()).collect();
                format!(
                    "unknown operation {name:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// The keys the operations use, made once per run by the bench user.
#[derive(Debug, Clone)]
pub struct Keys {
    p256: KeyId,
    ed25519: KeyId,
    rsa2048: KeyId,
    aes: KeyId,
    hmac: KeyId,
    p256_signature: Vec<u8>,
}

const MESSAGE: [u8; 32] = [0x5a; 32];
/// Messages per `sign-many-p256` call.
pub const SIGN_MANY: usize = 64;
const HMAC_MESSAGE: [u8; 64] = [0x3c; 64];
const PLAINTEXT: [u8; 1024] = [0x42; 1024];

fn attrs(label: &str, sign: bool, encrypt: bool) -> KeyAttributes {
    KeyAttributes {
        label: label.to_owned(),
        sign,
        verify: sign,
        encrypt,
        decrypt: encrypt,
        ..KeyAttributes::default()
    }
}

impl Keys {
    /// The P-256 signing key.
    pub fn p256_id(&self) -> KeyId {
        self.p256
    }

    /// Generates the keys in the cluster.
    ///
    /// # Errors
    /// If a key cannot be generated or the first signature fails.
    pub async fn make(client: &Client) -> Result<Keys> {
        let gen = |spec, a| async move {
            client
                .generate_key(spec, a, false)
                .await
                .with_context(|| format!("cannot generate the bench's {spec} key"))
        };
        let p256 = gen(KeySpec::EcP256, attrs("hsm-bench-p256", true, false)).await?;
        let ed25519 = gen(KeySpec::Ed25519, attrs("hsm-bench-ed25519", true, false)).await?;
        let rsa2048 = gen(
            KeySpec::Rsa { bits: 2048 },
            attrs("hsm-bench-rsa2048", true, false),
        )
        .await?;
        let aes = gen(
            KeySpec::Aes { bits: 256 },
            attrs("hsm-bench-aes", false, true),
        )
        .await?;
        let hmac = gen(
            KeySpec::GenericSecret { bytes: 32 },
            attrs("hsm-bench-hmac", true, false),
        )
        .await?;
        let p256_signature = client
            .sign(p256.id, SignMechanism::EcdsaSha256, MESSAGE.to_vec())
            .await?;
        Ok(Keys {
            p256: p256.id,
            ed25519: ed25519.id,
            rsa2048: rsa2048.id,
            aes: aes.id,
            hmac: hmac.id,
            p256_signature,
        })
    }
}

/// Credentials for the login operation.
#[derive(Debug, Clone)]
pub struct Login {
    /// The user.
    pub username: Username,
    /// Its password.
    pub password: String,
}

/// Runs `op` once through the SDK.
///
/// # Errors
/// Whatever the cluster answers, or a verification that fails.
pub async fn call(op: Op, client: &Client, keys: &Keys, login: &Login) -> Result<()> {
    match op {
        Op::SignP256 => {
            client
                .sign(keys.p256, SignMechanism::EcdsaSha256, MESSAGE.to_vec())
                .await?;
        }
        Op::SignManyP256 => {
            let results = client
                .sign_many(
                    keys.p256,
                    SignMechanism::EcdsaSha256,
                    vec![MESSAGE.to_vec(); SIGN_MANY],
                )
                .await;
            for r in results {
                r?;
            }
        }
        Op::SignEd25519 => {
            client
                .sign(keys.ed25519, SignMechanism::Ed25519, MESSAGE.to_vec())
                .await?;
        }
        Op::SignRsa2048 => {
            client
                .sign(
                    keys.rsa2048,
                    SignMechanism::RsaPkcs1v15Sha256,
                    MESSAGE.to_vec(),
                )
                .await?;
        }
        Op::VerifyP256 => {
            let ok = client
                .verify(
                    keys.p256,
                    SignMechanism::EcdsaSha256,
                    MESSAGE.to_vec(),
                    keys.p256_signature.clone(),
                )
                .await?;
            if !ok {
                bail!("a valid signature did not verify");
            }
        }
        Op::AesGcm1k => {
            client
                .encrypt(
                    keys.aes,
                    EncryptMechanism::AesGcm,
                    hsm_client::Secret::new(PLAINTEXT.to_vec()),
                    vec![],
                )
                .await?;
        }
        Op::HmacSha256 => {
            client
                .sign(keys.hmac, SignMechanism::HmacSha256, HMAC_MESSAGE.to_vec())
                .await?;
        }
        Op::Random32 => {
            client.random(32).await?;
        }
        Op::Keygen => {
            client
                .generate_key(
                    KeySpec::Aes { bits: 256 },
                    attrs("hsm-bench-generated", false, true),
                    false,
                )
                .await?;
        }
        Op::Login => {
            client
                .login(login.username.clone(), login.password.as_str())
                .await?;
        }
    }
    Ok(())
}

/// The in-process limit of `op` on `threads` threads for `duration`: the
/// crypto library alone. `None` for operations that are not crypto
/// (a login is Argon2id and a write).
pub fn limit(op: Op, threads: usize, duration: Duration) -> Option<Measured> {
    let spec = match op {
        Op::SignP256 | Op::SignManyP256 | Op::VerifyP256 => KeySpec::EcP256,
        Op::SignEd25519 => KeySpec::Ed25519,
        Op::SignRsa2048 => KeySpec::Rsa { bits: 2048 },
        Op::AesGcm1k | Op::Keygen => KeySpec::Aes { bits: 256 },
        Op::HmacSha256 => KeySpec::GenericSecret { bytes: 32 },
        Op::Random32 => KeySpec::Aes { bits: 128 },
        Op::Login => return None,
    };
    let key = LoadedKey::generate(spec).ok()?;
    let signature = key.sign(SignMechanism::EcdsaSha256, &MESSAGE).ok();
    let once = |key: &LoadedKey| -> bool {
        match op {
            Op::SignP256 | Op::SignManyP256 => {
                key.sign(SignMechanism::EcdsaSha256, &MESSAGE).is_ok()
            }
            Op::SignEd25519 => key.sign(SignMechanism::Ed25519, &MESSAGE).is_ok(),
            Op::SignRsa2048 => key.sign(SignMechanism::RsaPkcs1v15Sha256, &MESSAGE).is_ok(),
            Op::VerifyP256 => signature.as_ref().is_some_and(|s| {
                key.verify(SignMechanism::EcdsaSha256, &MESSAGE, s)
                    .unwrap_or(false)
            }),
            Op::AesGcm1k => key
                .encrypt(EncryptMechanism::AesGcm, &PLAINTEXT, &[])
                .is_ok(),
            Op::HmacSha256 => key.sign(SignMechanism::HmacSha256, &HMAC_MESSAGE).is_ok(),
            Op::Random32 => hsm_crypto::random_bytes(32).is_ok(),
            Op::Keygen => LoadedKey::generate(KeySpec::Aes { bits: 256 }).is_ok(),
            Op::Login => false,
        }
    };
    let start = Instant::now();
    let deadline = start + duration;
    let parts: Vec<Measured> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                let key = &key;
                let once = &once;
                s.spawn(move || {
                    let mut m = Measured::default();
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        if once(key) {
                            m.record(t.elapsed());
                        } else {
                            m.errors += 1;
                        }
                    }
                    m
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut all = Measured::merge(parts);
    all.seconds = start.elapsed().as_secs_f64();
    Some(all)
}
