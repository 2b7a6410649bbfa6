//! Envelope encryption: a database master key in the HSM protects the data
//! keys that encrypt the data (the transparent data encryption, TDE, use
//! case).
//!
//! - The **master key** is an AES-256 key generated in the HSM with the
//!   `encrypt` and `decrypt` attributes (sensitive, not extractable). It
//!   never leaves the HSM.
//! - A **data key** (DEK) is 32 random bytes from the HSM's generator. The
//!   HSM encrypts it under the master key's latest version with AES-GCM
//!   ([`EnvelopeBox::create`] asks for both in one call;
//!   [`wrap_data_key`] seals a key you have); only that *sealed data key*
//!   is stored, next to the data, and it names the master key version
//!   that sealed it. To use the data, the HSM decrypts the sealed data key
//!   with that version ([`unwrap_data_key`]) and the plaintext data key
//!   lives in the application's memory (zeroized when dropped) while the
//!   database is open.
//! - **Data** (pages, blobs) is encrypted locally with the data key and
//!   AES-256-GCM-SIV ([`EnvelopeBox`]), so bulk encryption costs no round
//!   trip. Rotating the master key re-wraps the data keys
//!   ([`rewrap_data_key`]) without touching the data: to another master
//!   key, or to the same master key's latest version after
//!   `Client::rotate_key` (sealed data keys of older versions keep
//!   opening until the master key's minimum decryption version passes
//!   them).
//!
//! # Formats
//!
//! All integers are big-endian.
//!
//! **Sealed data key** (65 bytes): `0x02 || master key version (u32) ||`
//! what the HSM's AES-GCM encryption returns, `iv (12) || encrypted data
//! key (32) || tag (16)`, with the associated data `"hsm-client envelope
//! v1 data key\0" || master key id (u64) || context`. The context is the
//! caller's name for the key's purpose (`"db=orders"`): a sealed data key
//! opens only under the master key and context it was sealed for. The
//! first format (60 bytes, no version: the HSM's output alone) is still
//! read, as made by version 1 of the master key, which it was.
//!
//! **Sealed blob** ([`EnvelopeBox::encrypt`]): `version (1) = 0x01 ||
//! nonce (12) || ciphertext || tag (16)`, AES-256-GCM-SIV under the data
//! key with a random nonce and the associated data `"hsm-client envelope
//! v1 blob\0" || aad`, where `aad` is the caller's (a page number, a table
//! and row id) binding the blob to where it belongs. GCM-SIV stays safe if
//! a random nonce ever repeats.
//!
//! **Envelope** ([`seal_envelope`], self-contained, one data key per
//! envelope): `magic "HSME" || version (1) = 0x01 || master key id (u64)
//! || sealed data key length (u16) || sealed data key || sealed blob`.
//!
//! Neither the plaintext data key nor the data appears in any of these.
//!
//! # Example
//!
//! ```no_run
//! use hsm_client::envelope::EnvelopeBox;
//! use hsm_client::{Client, KeyAttributes, KeySpec};
//!
//! # async fn run(client: Client) -> Result<(), Box<dyn std::error::Error>> {
//! let master = client
//!     .generate_key(
//!         KeySpec::Aes { bits: 256 },
//!         KeyAttributes {
//!             label: "orders-db-master".into(),
//!             encrypt: true,
//!             decrypt: true,
//!             extractable: false,
//!             ..KeyAttributes::default()
//!         },
//!         true,
//!     )
//!     .await?;
//!
//! // Creating the database: a new data key; store its sealed form.
//! let db = EnvelopeBox::create(&client, master.id, b"db=orders").await?;
//! let stored_key = db.sealed_data_key().to_vec();
//! let page = db.encrypt(&7u64.to_be_bytes(), b"page 7 contents")?;
//!
//! // Opening it again: the HSM unseals the data key once.
//! let db = EnvelopeBox::load(&client, master.id, b"db=orders", &stored_key).await?;
//! let plain = db.decrypt(&7u64.to_be_bytes(), &page)?;
//! assert_eq!(plain.expose(), b"page 7 contents");
//! # Ok(())
//! # }
//! ```

use std::fmt;

use hsm_proto::client::Secret;
use hsm_proto::mechanism::EncryptMechanism;
use hsm_proto::versioned::Versioned;
use hsm_proto::KeyId;
use hsm_seal::{OpenError, SealKey};

use crate::client::Client;
use crate::error::Error;

/// Length of a data key: AES-256.
pub const DATA_KEY_LEN: usize = 32;
/// Length of a sealed data key: format, master key version, IV, encrypted
/// key and tag.
pub const SEALED_DATA_KEY_LEN: usize = 1 + 4 + SEALED_DATA_KEY_V1_LEN;
/// Length of a sealed data key of the first format: IV, encrypted key and
/// tag, made under the master key's version 1 (still read).
pub const SEALED_DATA_KEY_V1_LEN: usize = 12 + DATA_KEY_LEN + 16;
/// First byte of a sealed data key that names its master key version.
const SEALED_DATA_KEY_FORMAT: u8 = 2;
/// Format version of sealed blobs and envelopes.
pub const VERSION: u8 = 1;
/// First bytes of an envelope.
pub const ENVELOPE_MAGIC: &[u8; 4] = b"HSME";

/// Bytes a sealed blob has beyond its plaintext.
pub const BLOB_OVERHEAD: usize = hsm_seal::OVERHEAD;
/// Bytes before the sealed data key in an envelope.
const ENVELOPE_HEADER_LEN: usize = ENVELOPE_MAGIC.len() + 1 + 8 + 2;

const DATA_KEY_AAD: &[u8] = b"hsm-client envelope v1 data key\0";
const BLOB_AAD: &[u8] = b"hsm-client envelope v1 blob\0";

/// Why envelope encryption failed. No variant carries key or data bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The HSM call failed. A sealed data key that was changed, or sealed
    /// for another master key or context, is refused by the HSM as
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput); one
    /// naming a master key version the key does not keep as
    /// [`ErrorKind::NotFound`](crate::ErrorKind::NotFound), or below its
    /// minimum decryption version as `InvalidInput`.
    #[error("hsm call failed: {0}")]
    Client(#[from] Error),
    /// The bytes are not in the format this module writes.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being read.
        what: &'static str,
        /// What was expected and what came.
        reason: String,
    },
    /// A sealed blob did not open: wrong data key, wrong associated data,
    /// or changed bytes.
    #[error("sealed blob did not authenticate: wrong data key, associated data or changed bytes")]
    Authentication,
    /// A data key of the wrong length came back from the HSM.
    #[error("expected a {DATA_KEY_LEN}-byte data key, got {0} bytes")]
    DataKeyLength(usize),
    /// The plaintext is longer than AES-GCM-SIV encrypts (2^36 bytes).
    #[error("plaintext too long for aes-gcm-siv")]
    TooLong,
}

fn malformed(what: &'static str, reason: impl Into<String>) -> EnvelopeError {
    EnvelopeError::Malformed {
        what,
        reason: reason.into(),
    }
}

fn data_key_aad(master: KeyId, context: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(DATA_KEY_AAD.len() + 8 + context.len());
    aad.extend_from_slice(DATA_KEY_AAD);
    aad.extend_from_slice(&master.0.to_be_bytes());
    aad.extend_from_slice(context);
    aad
}

fn blob_aad(aad: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(BLOB_AAD.len() + aad.len());
    out.extend_from_slice(BLOB_AAD);
    out.extend_from_slice(aad);
    out
}

/// A new data key: [`DATA_KEY_LEN`] random bytes from the HSM's generator.
///
/// # Errors
/// [`EnvelopeError::Client`] if the HSM call fails;
/// [`EnvelopeError::DataKeyLength`] if it returns the wrong length.
pub async fn generate_data_key(client: &Client) -> Result<Secret, EnvelopeError> {
    // DATA_KEY_LEN is 32: the cast cannot truncate.
    let bytes = Secret::new(client.random(DATA_KEY_LEN as u32).await?);
    if bytes.len() != DATA_KEY_LEN {
        return Err(EnvelopeError::DataKeyLength(bytes.len()));
    }
    Ok(bytes)
}

/// Seals `data_key` under the master key's latest version in the HSM
/// (AES-GCM, with associated data naming the master key and `context`);
/// returns the [`SEALED_DATA_KEY_LEN`]-byte sealed data key to store.
///
/// # Errors
/// [`EnvelopeError::DataKeyLength`] for a key that is not
/// [`DATA_KEY_LEN`] bytes; [`EnvelopeError::Client`] if the HSM refuses
/// (the master key needs the `encrypt` attribute);
/// [`EnvelopeError::Malformed`] if the HSM's answer has the wrong length.
pub async fn wrap_data_key(
    client: &Client,
    master: KeyId,
    context: &[u8],
    data_key: &Secret,
) -> Result<Vec<u8>, EnvelopeError> {
    if data_key.len() != DATA_KEY_LEN {
        return Err(EnvelopeError::DataKeyLength(data_key.len()));
    }
    let item = (data_key.clone(), data_key_aad(master, context));
    let sealed = client
        .encrypt_batch(master, EncryptMechanism::AesGcm, vec![item])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| malformed("sealed data key", "the hsm answered nothing"))??;
    sealed_data_key(&sealed)
}

/// The stored form of a data key the HSM sealed.
fn sealed_data_key(sealed: &Versioned) -> Result<Vec<u8>, EnvelopeError> {
    if sealed.bytes.len() != SEALED_DATA_KEY_V1_LEN {
        return Err(malformed(
            "sealed data key",
            format!(
                "expected {SEALED_DATA_KEY_V1_LEN} bytes from the hsm, got {}",
                sealed.bytes.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(SEALED_DATA_KEY_LEN);
    out.push(SEALED_DATA_KEY_FORMAT);
    out.extend_from_slice(&sealed.version.to_be_bytes());
    out.extend_from_slice(&sealed.bytes);
    Ok(out)
}

/// The master key version and the HSM's output a stored sealed data key
/// holds.
fn parse_sealed_data_key(sealed: &[u8]) -> Result<Versioned, EnvelopeError> {
    let what = "sealed data key";
    match sealed.len() {
        SEALED_DATA_KEY_V1_LEN => Ok(Versioned {
            version: 1,
            bytes: sealed.to_vec(),
        }),
        SEALED_DATA_KEY_LEN if sealed.first() == Some(&SEALED_DATA_KEY_FORMAT) => {
            let version: [u8; 4] = sealed
                .get(1..5)
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| malformed(what, "short version"))?;
            Ok(Versioned {
                version: u32::from_be_bytes(version),
                bytes: sealed[5..].to_vec(),
            })
        }
        SEALED_DATA_KEY_LEN => Err(malformed(what, "unknown format")),
        n => Err(malformed(
            what,
            format!("expected {SEALED_DATA_KEY_LEN} (or {SEALED_DATA_KEY_V1_LEN}) bytes, got {n}"),
        )),
    }
}

/// Opens a sealed data key with the master key version that sealed it,
/// in the HSM.
///
/// # Errors
/// [`EnvelopeError::Malformed`] if `sealed` is not a sealed data key;
/// [`EnvelopeError::Client`] if the HSM refuses (changed bytes, another
/// master key or context, a master key without the `decrypt` attribute,
/// or a version it no longer keeps or that is below its minimum
/// decryption version); [`EnvelopeError::DataKeyLength`] if what it opens
/// is not a data key.
pub async fn unwrap_data_key(
    client: &Client,
    master: KeyId,
    context: &[u8],
    sealed: &[u8],
) -> Result<Secret, EnvelopeError> {
    let sealed = parse_sealed_data_key(sealed)?;
    let key = client
        .decrypt_versioned(
            master,
            EncryptMechanism::AesGcm,
            &sealed,
            data_key_aad(master, context),
        )
        .await?;
    if key.len() != DATA_KEY_LEN {
        return Err(EnvelopeError::DataKeyLength(key.len()));
    }
    Ok(key)
}

/// Re-seals a sealed data key under another master key, or under the same
/// master key's latest version after it was rotated (pass it as both):
/// the HSM opens it under `old_master` and seals it under `new_master`'s
/// latest version, with the same `context`. The data encrypted with the
/// data key stays as it is.
///
/// # Errors
/// As [`unwrap_data_key`] and [`wrap_data_key`].
pub async fn rewrap_data_key(
    client: &Client,
    old_master: KeyId,
    new_master: KeyId,
    context: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let key = unwrap_data_key(client, old_master, context, sealed).await?;
    wrap_data_key(client, new_master, context, &key).await
}

/// A data key in use: encrypts and decrypts blobs locally, and keeps the
/// sealed data key that is stored next to them. The plaintext data key is
/// held only inside the cipher, which zeroizes it when dropped; `Debug`
/// shows neither.
#[derive(Clone)]
pub struct EnvelopeBox {
    master: KeyId,
    context: Vec<u8>,
    sealed_key: Vec<u8>,
    cipher: SealKey,
}

impl fmt::Debug for EnvelopeBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvelopeBox")
            .field("master", &self.master)
            .field("context_len", &self.context.len())
            .finish_non_exhaustive()
    }
}

impl EnvelopeBox {
    /// A new data key made by the HSM and sealed there under `master`'s
    /// latest version for `context`, in one call
    /// (`Client::generate_data_key`). Store
    /// [`EnvelopeBox::sealed_data_key`] with the data.
    ///
    /// # Errors
    /// [`EnvelopeError::Client`] if the HSM refuses (the master key must
    /// be an AES key with the `encrypt` attribute);
    /// [`EnvelopeError::DataKeyLength`] or [`EnvelopeError::Malformed`] if
    /// its answer has the wrong lengths.
    pub async fn create(
        client: &Client,
        master: KeyId,
        context: &[u8],
    ) -> Result<EnvelopeBox, EnvelopeError> {
        // DATA_KEY_LEN is 32: 256 bits.
        let made = client
            .generate_data_key(master, 256, data_key_aad(master, context), true)
            .await?;
        let key = made
            .plaintext
            .ok_or_else(|| malformed("data key", "the hsm returned no plaintext"))?;
        let sealed = sealed_data_key(&made.wrapped)?;
        EnvelopeBox::from_parts(master, context, sealed, &key)
    }

    /// The data key `sealed` holds, opened by the HSM.
    ///
    /// # Errors
    /// As [`unwrap_data_key`].
    pub async fn load(
        client: &Client,
        master: KeyId,
        context: &[u8],
        sealed: &[u8],
    ) -> Result<EnvelopeBox, EnvelopeError> {
        let key = unwrap_data_key(client, master, context, sealed).await?;
        EnvelopeBox::from_parts(master, context, sealed.to_vec(), &key)
    }

    fn from_parts(
        master: KeyId,
        context: &[u8],
        sealed_key: Vec<u8>,
        key: &Secret,
    ) -> Result<EnvelopeBox, EnvelopeError> {
        let bytes: &[u8; DATA_KEY_LEN] = key
            .expose()
            .try_into()
            .map_err(|_| EnvelopeError::DataKeyLength(key.len()))?;
        let cipher = SealKey::new(bytes);
        Ok(EnvelopeBox {
            master,
            context: context.to_vec(),
            sealed_key,
            cipher,
        })
    }

    /// The master key in the HSM that seals the data key.
    pub fn master_key(&self) -> KeyId {
        self.master
    }

    /// The context the data key is sealed for.
    pub fn context(&self) -> &[u8] {
        &self.context
    }

    /// The sealed data key, to store next to the data.
    pub fn sealed_data_key(&self) -> &[u8] {
        &self.sealed_key
    }

    /// Encrypts `plaintext` with the data key, bound to `aad` (a page
    /// number, a row id): a sealed blob, [`BLOB_OVERHEAD`] bytes longer.
    ///
    /// # Errors
    /// [`EnvelopeError::TooLong`] past AES-GCM-SIV's limit.
    pub fn encrypt(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        self.cipher
            .seal(&blob_aad(aad), plaintext)
            .map_err(|_| EnvelopeError::TooLong)
    }

    /// Decrypts a sealed blob made by [`EnvelopeBox::encrypt`] with the
    /// same `aad`.
    ///
    /// # Errors
    /// [`EnvelopeError::Malformed`] if it is too short or of an unknown
    /// version; [`EnvelopeError::Authentication`] for another data key,
    /// other `aad` or changed bytes.
    pub fn decrypt(&self, aad: &[u8], blob: &[u8]) -> Result<Secret, EnvelopeError> {
        match self.cipher.open(&blob_aad(aad), blob) {
            Ok(mut plain) => Ok(Secret::new(std::mem::take(&mut *plain))),
            Err(OpenError::TooShort) => Err(malformed(
                "sealed blob",
                format!(
                    "expected at least {BLOB_OVERHEAD} bytes, got {}",
                    blob.len()
                ),
            )),
            Err(OpenError::UnknownVersion) => Err(malformed(
                "sealed blob",
                format!(
                    "expected version {VERSION}, got {}",
                    blob.first().copied().unwrap_or_default()
                ),
            )),
            Err(OpenError::Authentication) => Err(EnvelopeError::Authentication),
        }
    }
}

/// Encrypts `plaintext` into a self-contained envelope: a fresh data key
/// from the HSM, sealed under `master` for `context`, and the data sealed
/// with it (with `context` as the blob's associated data too). Costs one
/// HSM call; for many blobs under one key, use an [`EnvelopeBox`].
///
/// # Errors
/// As [`EnvelopeBox::create`] and [`EnvelopeBox::encrypt`].
pub async fn seal_envelope(
    client: &Client,
    master: KeyId,
    context: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let envelope_box = EnvelopeBox::create(client, master, context).await?;
    let blob = envelope_box.encrypt(context, plaintext)?;
    let sealed_key = envelope_box.sealed_data_key();
    let sealed_len = u16::try_from(sealed_key.len())
        .map_err(|_| malformed("sealed data key", "longer than 65535 bytes"))?;
    let mut out = Vec::with_capacity(ENVELOPE_HEADER_LEN + sealed_key.len() + blob.len());
    out.extend_from_slice(ENVELOPE_MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&master.0.to_be_bytes());
    out.extend_from_slice(&sealed_len.to_be_bytes());
    out.extend_from_slice(sealed_key);
    out.extend_from_slice(&blob);
    Ok(out)
}

/// The parts of an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvelopeParts<'a> {
    /// The master key its data key is sealed under.
    pub master: KeyId,
    /// The sealed data key.
    pub sealed_data_key: &'a [u8],
    /// The sealed blob.
    pub blob: &'a [u8],
}

/// Splits an envelope into its parts without any HSM call (to route it to
/// its master key, say, during a rotation).
///
/// # Errors
/// [`EnvelopeError::Malformed`] if it is not an envelope of this version.
pub fn parse_envelope(envelope: &[u8]) -> Result<EnvelopeParts<'_>, EnvelopeError> {
    let what = "envelope";
    let header = envelope.get(..ENVELOPE_HEADER_LEN).ok_or_else(|| {
        malformed(
            what,
            format!(
                "expected at least {ENVELOPE_HEADER_LEN} bytes, got {}",
                envelope.len()
            ),
        )
    })?;
    let (magic, rest) = header.split_at(ENVELOPE_MAGIC.len());
    if magic != ENVELOPE_MAGIC {
        return Err(malformed(what, "expected the magic \"HSME\""));
    }
    let (version, rest) = rest.split_at(1);
    if version != [VERSION] {
        return Err(malformed(
            what,
            format!("expected version {VERSION}, got {}", version[0]),
        ));
    }
    let (id, len) = rest.split_at(8);
    let master = KeyId(u64::from_be_bytes(
        id.try_into().map_err(|_| malformed(what, "short key id"))?,
    ));
    let sealed_len = usize::from(u16::from_be_bytes(
        len.try_into()
            .map_err(|_| malformed(what, "short length"))?,
    ));
    let body = &envelope[ENVELOPE_HEADER_LEN..];
    if body.len() < sealed_len {
        return Err(malformed(
            what,
            format!(
                "expected a {sealed_len}-byte sealed data key, got {} bytes",
                body.len()
            ),
        ));
    }
    let (sealed_data_key, blob) = body.split_at(sealed_len);
    Ok(EnvelopeParts {
        master,
        sealed_data_key,
        blob,
    })
}

/// Decrypts an envelope made by [`seal_envelope`] under `master` for
/// `context`.
///
/// # Errors
/// [`EnvelopeError::Malformed`] if it is not an envelope, or names another
/// master key; as [`EnvelopeBox::load`] and [`EnvelopeBox::decrypt`].
pub async fn open_envelope(
    client: &Client,
    master: KeyId,
    context: &[u8],
    envelope: &[u8],
) -> Result<Secret, EnvelopeError> {
    let parts = parse_envelope(envelope)?;
    if parts.master != master {
        return Err(malformed(
            "envelope",
            format!(
                "expected one sealed under master key {master}, got one under key {}",
                parts.master
            ),
        ));
    }
    let envelope_box = EnvelopeBox::load(client, master, context, parts.sealed_data_key).await?;
    envelope_box.decrypt(context, parts.blob)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local_box(key: [u8; 32]) -> EnvelopeBox {
        EnvelopeBox::from_parts(
            KeyId(9),
            b"ctx",
            vec![0; SEALED_DATA_KEY_LEN],
            &Secret::new(key.to_vec()),
        )
        .expect("box")
    }

    #[test]
    fn a_sealed_data_key_names_its_master_key_version_and_the_first_format_is_version_1() {
        let hsm_output = vec![0xAB; SEALED_DATA_KEY_V1_LEN];
        let stored = sealed_data_key(&Versioned {
            version: 7,
            bytes: hsm_output.clone(),
        })
        .expect("sealed");
        assert_eq!(stored.len(), SEALED_DATA_KEY_LEN);
        assert_eq!(
            parse_sealed_data_key(&stored).expect("parsed"),
            Versioned {
                version: 7,
                bytes: hsm_output.clone()
            }
        );
        assert_eq!(
            parse_sealed_data_key(&hsm_output).expect("first format"),
            Versioned {
                version: 1,
                bytes: hsm_output.clone()
            }
        );
        let mut unknown = stored.clone();
        unknown[0] = 3;
        assert!(matches!(
            parse_sealed_data_key(&unknown),
            Err(EnvelopeError::Malformed { .. })
        ));
        assert!(matches!(
            parse_sealed_data_key(&stored[..40]),
            Err(EnvelopeError::Malformed { .. })
        ));
        assert!(sealed_data_key(&Versioned {
            version: 1,
            bytes: vec![0; 12]
        })
        .is_err());
    }

    #[test]
    fn a_blob_opens_only_with_its_key_and_associated_data() {
        let b = local_box([7; 32]);
        let blob = b.encrypt(b"page 1", b"rows of page one").expect("seal");
        assert_eq!(blob.len(), BLOB_OVERHEAD + b"rows of page one".len());
        assert_eq!(
            b.decrypt(b"page 1", &blob).expect("open").expose(),
            b"rows of page one"
        );
        assert_eq!(
            b.decrypt(b"page 2", &blob),
            Err(EnvelopeError::Authentication)
        );
        assert_eq!(
            local_box([8; 32]).decrypt(b"page 1", &blob),
            Err(EnvelopeError::Authentication)
        );
        for i in 1..blob.len() {
            let mut changed = blob.clone();
            changed[i] ^= 1;
            assert_eq!(
                b.decrypt(b"page 1", &changed),
                Err(EnvelopeError::Authentication),
                "byte {i}"
            );
        }
        let mut other_version = blob.clone();
        other_version[0] = 2;
        assert!(matches!(
            b.decrypt(b"page 1", &other_version),
            Err(EnvelopeError::Malformed { .. })
        ));
        assert!(matches!(
            b.decrypt(b"page 1", &blob[..BLOB_OVERHEAD - 1]),
            Err(EnvelopeError::Malformed { .. })
        ));
    }

    #[test]
    fn the_same_page_encrypts_differently_each_time() {
        let b = local_box([7; 32]);
        let one = b.encrypt(b"p", b"same").expect("seal");
        let two = b.encrypt(b"p", b"same").expect("seal");
        assert_ne!(one, two);
    }

    #[test]
    fn debug_shows_no_key() {
        let b = local_box([0xAB; 32]);
        let text = format!("{b:?}");
        assert!(
            !text.to_lowercase().contains("ab, ab") && !text.contains("171"),
            "{text}"
        );
    }

    #[test]
    fn envelopes_that_are_not_ours_are_malformed_not_panics() {
        let mut env = Vec::new();
        env.extend_from_slice(ENVELOPE_MAGIC);
        env.push(VERSION);
        env.extend_from_slice(&5u64.to_be_bytes());
        env.extend_from_slice(&3u16.to_be_bytes());
        env.extend_from_slice(&[1, 2, 3, 4, 5]);
        let parts = parse_envelope(&env).expect("parses");
        assert_eq!(parts.master, KeyId(5));
        assert_eq!(parts.sealed_data_key, &[1, 2, 3]);
        assert_eq!(parts.blob, &[4, 5]);
        for len in 0..env.len() {
            let _ = parse_envelope(&env[..len]);
        }
        let mut long_claim = env.clone();
        long_claim[13..15].copy_from_slice(&100u16.to_be_bytes());
        assert!(matches!(
            parse_envelope(&long_claim),
            Err(EnvelopeError::Malformed { .. })
        ));
        let mut bad_magic = env.clone();
        bad_magic[0] = b'X';
        assert!(matches!(
            parse_envelope(&bad_magic),
            Err(EnvelopeError::Malformed { .. })
        ));
    }
}
