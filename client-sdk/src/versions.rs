//! Key versions and batches: typed methods for the operations of client
//! protocol 4. What a key version makes comes back [`Versioned`], so it
//! says which version to decrypt or verify it with (as text,
//! `hsm:v<N>:<base64>`).

use hsm_proto::client::{
    ByteBuf, DecryptItem, EncryptItem, KeyVersionsInfo, Operation, Reply, Secret, VerifyItem,
    MAX_BATCH,
};
use hsm_proto::mechanism::{EncryptMechanism, SignMechanism};
use hsm_proto::versioned::Versioned;
use hsm_proto::KeyId;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::ops::unexpected;

/// A data key from [`Client::generate_data_key`]. `Debug` shows neither
/// key.
pub struct DataKey {
    /// The data key encrypted under the key's latest version (AES-GCM):
    /// store it beside the data; [`Client::decrypt_versioned`] opens it.
    pub wrapped: Versioned,
    /// The data key itself, when asked for (zeroized when dropped).
    pub plaintext: Option<Secret>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("version", &self.wrapped.version)
            .field("plaintext", &self.plaintext.is_some())
            .finish_non_exhaustive()
    }
}

/// One result per item, checked to be as many as were sent.
fn per_item<T>(op: &str, sent: usize, results: Vec<T>) -> Result<Vec<T>> {
    if results.len() == sent {
        Ok(results)
    } else {
        Err(Error::Protocol(format!(
            "{op} of {sent} items answered {} results",
            results.len()
        )))
    }
}

/// Refuses, before sending, a batch no node takes.
fn check_len(op: &str, len: usize) -> Result<()> {
    if len > MAX_BATCH {
        return Err(Error::Server(hsm_proto::client::ClientError::invalid(
            format!("{op}: {len} items, more than one request carries ({MAX_BATCH}); split them"),
        )));
    }
    Ok(())
}

impl Client {
    /// A key's versions: the latest, the minimum decryption version and
    /// the versions kept.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn key_versions(&self, key: KeyId) -> Result<KeyVersionsInfo> {
        self.versions_call("key-versions", Operation::KeyVersions { key })
            .await
    }

    /// Gives a key a new version (owner): new material, generated in the
    /// HSM, signs and encrypts from now on; older versions still decrypt
    /// and verify down to the minimum decryption version.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn rotate_key(&self, key: KeyId) -> Result<KeyVersionsInfo> {
        self.versions_call("rotate-key", Operation::RotateKey { key })
            .await
    }

    /// Sets the oldest version that may still decrypt and verify (owner).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn set_min_decryption_version(
        &self,
        key: KeyId,
        version: u32,
    ) -> Result<KeyVersionsInfo> {
        self.versions_call(
            "set-min-decryption-version",
            Operation::SetMinDecryptionVersion { key, version },
        )
        .await
    }

    /// Deletes the versions older than `below` for good (owner); `below`
    /// may not be above the minimum decryption version.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn trim_key_versions(&self, key: KeyId, below: u32) -> Result<KeyVersionsInfo> {
        self.versions_call(
            "trim-key-versions",
            Operation::TrimKeyVersions { key, below },
        )
        .await
    }

    async fn versions_call(&self, name: &str, op: Operation) -> Result<KeyVersionsInfo> {
        match self.call(op).await? {
            Reply::KeyVersions(info) => Ok(info),
            other => Err(unexpected(name, "key-versions", &other)),
        }
    }

    /// Encrypts many items with the key's latest version in one request
    /// (at most [`MAX_BATCH`]); one result per item, in order. Each item
    /// is its plaintext and associated data (AES-GCM) or OAEP label.
    ///
    /// # Errors
    /// As [`Client::call`], for the request as a whole.
    pub async fn encrypt_batch(
        &self,
        key: KeyId,
        mechanism: EncryptMechanism,
        items: Vec<(Secret, Vec<u8>)>,
    ) -> Result<Vec<Result<Versioned>>> {
        check_len("encrypt-batch", items.len())?;
        let sent = items.len();
        let items = items
            .into_iter()
            .map(|(plaintext, aad)| EncryptItem {
                plaintext,
                aad: ByteBuf::from(aad),
            })
            .collect();
        let op = Operation::EncryptBatch {
            key,
            mechanism,
            items,
        };
        match self.call(op).await? {
            Reply::Encrypted { version, results } => per_item(
                "encrypt-batch",
                sent,
                results.into_iter().map(|r| versioned(version, r)).collect(),
            ),
            other => Err(unexpected("encrypt-batch", "encrypted", &other)),
        }
    }

    /// Decrypts many items in one request (at most [`MAX_BATCH`]), each
    /// with the version it names; one result per item, in order.
    ///
    /// # Errors
    /// As [`Client::call`], for the request as a whole.
    pub async fn decrypt_batch(
        &self,
        key: KeyId,
        mechanism: EncryptMechanism,
        items: Vec<DecryptItem>,
    ) -> Result<Vec<Result<Secret>>> {
        check_len("decrypt-batch", items.len())?;
        let sent = items.len();
        let op = Operation::DecryptBatch {
            key,
            mechanism,
            items,
        };
        match self.call(op).await? {
            Reply::Decrypted(results) => per_item(
                "decrypt-batch",
                sent,
                results
                    .into_iter()
                    .map(|r| r.map_err(Error::Server))
                    .collect(),
            ),
            other => Err(unexpected("decrypt-batch", "decrypted", &other)),
        }
    }

    /// Decrypts one versioned ciphertext with the version it names.
    ///
    /// # Errors
    /// As [`Client::call`]; the item's own error if it does not decrypt.
    pub async fn decrypt_versioned(
        &self,
        key: KeyId,
        mechanism: EncryptMechanism,
        ciphertext: &Versioned,
        aad: impl Into<Vec<u8>>,
    ) -> Result<Secret> {
        let item = DecryptItem {
            version: Some(ciphertext.version),
            ciphertext: ByteBuf::from(ciphertext.bytes.clone()),
            aad: ByteBuf::from(aad.into()),
        };
        one(self.decrypt_batch(key, mechanism, vec![item]).await?)
    }

    /// Signs many messages with the key's latest version in one request
    /// (at most [`MAX_BATCH`], 64 with an RSA key); one result per
    /// message, in order.
    ///
    /// # Errors
    /// As [`Client::call`], for the request as a whole.
    pub async fn sign_batch(
        &self,
        key: KeyId,
        mechanism: SignMechanism,
        messages: Vec<Vec<u8>>,
    ) -> Result<Vec<Result<Versioned>>> {
        check_len("sign-batch", messages.len())?;
        let sent = messages.len();
        let op = Operation::SignBatch {
            key,
            mechanism,
            messages: messages.into_iter().map(ByteBuf::from).collect(),
        };
        match self.call(op).await? {
            Reply::Signed { version, results } => per_item(
                "sign-batch",
                sent,
                results.into_iter().map(|r| versioned(version, r)).collect(),
            ),
            other => Err(unexpected("sign-batch", "signed", &other)),
        }
    }

    /// Verifies many signatures in one request (at most [`MAX_BATCH`]),
    /// each with the version it names; one result per item, in order:
    /// `Ok(false)` for a signature that does not verify.
    ///
    /// # Errors
    /// As [`Client::call`], for the request as a whole.
    pub async fn verify_batch(
        &self,
        key: KeyId,
        mechanism: SignMechanism,
        items: Vec<VerifyItem>,
    ) -> Result<Vec<Result<bool>>> {
        check_len("verify-batch", items.len())?;
        let sent = items.len();
        let op = Operation::VerifyBatch {
            key,
            mechanism,
            items,
        };
        match self.call(op).await? {
            Reply::Verifications(results) => per_item(
                "verify-batch",
                sent,
                results
                    .into_iter()
                    .map(|r| r.map_err(Error::Server))
                    .collect(),
            ),
            other => Err(unexpected("verify-batch", "verifications", &other)),
        }
    }

    /// A new AES data key of `bits` (128, 192 or 256) for envelope
    /// encryption, encrypted in the HSM with AES-GCM under the AES key
    /// `key`'s latest version with `aad`, in one round trip; with
    /// `plaintext`, the data key itself too (else only its encrypted form,
    /// for whoever decrypts it later).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn generate_data_key(
        &self,
        key: KeyId,
        bits: u16,
        aad: impl Into<Vec<u8>>,
        plaintext: bool,
    ) -> Result<DataKey> {
        let op = Operation::GenerateDataKey {
            key,
            bits,
            aad: ByteBuf::from(aad.into()),
            plaintext,
        };
        match self.call(op).await? {
            Reply::DataKey {
                version,
                wrapped,
                plaintext,
            } => Ok(DataKey {
                wrapped: Versioned {
                    version,
                    bytes: wrapped.into_vec(),
                },
                plaintext,
            }),
            other => Err(unexpected("generate-data-key", "data-key", &other)),
        }
    }
}

impl Client {
    /// The event chain's head as the answering node has it: the number of
    /// the last event and its hash (crypto officers). Kept apart from the
    /// audit archive, it shows later that the archive still reaches it.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn audit_head(&self) -> Result<(u64, hsm_proto::EventHash)> {
        match self.call(Operation::AuditHead).await? {
            Reply::AuditHead { events, head } => Ok((events, head)),
            other => Err(unexpected("audit-head", "audit-head", &other)),
        }
    }
}

fn versioned(
    version: u32,
    result: std::result::Result<ByteBuf, hsm_proto::client::ClientError>,
) -> Result<Versioned> {
    result
        .map(|bytes| Versioned {
            version,
            bytes: bytes.into_vec(),
        })
        .map_err(Error::Server)
}

/// The one result of a batch of one.
fn one<T>(results: Vec<Result<T>>) -> Result<T> {
    results
        .into_iter()
        .next()
        .unwrap_or_else(|| Err(Error::Protocol("a batch of one answered nothing".into())))
}
