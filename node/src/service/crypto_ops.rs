//! Crypto operations served from this node's replica with no Raft round
//! trip: sign, verify, encrypt, decrypt, digest, random.

use hsm_crypto::MAX_RANDOM_LEN;
use hsm_proto::client::{ClientError, Operation, Reply};
use hsm_proto::KeyFlag;

use super::keys::{crypto_error, plaintext_reply, require};
use super::{blocking, Ctx, Outcome, Service};

impl Service {
    pub(super) async fn crypto(&self, ctx: &Ctx, op: Operation) -> Outcome {
        use Operation as O;
        match op {
            O::Sign {
                key,
                mechanism,
                message,
            } => {
                let k = self.usable_key(&ctx.caller, key)?;
                require(&k, KeyFlag::Sign, "signing")?;
                let loaded = self.loaded(&k).await?;
                let sig = blocking(move || loaded.sign(mechanism, &message))
                    .await?
                    .map_err(crypto_error)?;
                Ok(Reply::Signature(sig))
            }
            O::Verify {
                key,
                mechanism,
                message,
                signature,
            } => {
                let k = self.usable_key(&ctx.caller, key)?;
                require(&k, KeyFlag::Verify, "verification")?;
                let loaded = self.loaded(&k).await?;
                let ok = blocking(move || loaded.verify(mechanism, &message, &signature))
                    .await?
                    .map_err(crypto_error)?;
                Ok(Reply::Verified(ok))
            }
            O::Encrypt {
                key,
                mechanism,
                plaintext,
                aad,
            } => {
                let k = self.usable_key(&ctx.caller, key)?;
                require(&k, KeyFlag::Encrypt, "encryption")?;
                let loaded = self.loaded(&k).await?;
                let out = blocking(move || loaded.encrypt(mechanism, plaintext.expose(), &aad))
                    .await?
                    .map_err(crypto_error)?;
                Ok(Reply::Ciphertext(out))
            }
            O::Decrypt {
                key,
                mechanism,
                ciphertext,
                aad,
            } => {
                let k = self.usable_key(&ctx.caller, key)?;
                require(&k, KeyFlag::Decrypt, "decryption")?;
                let loaded = self.loaded(&k).await?;
                let out = blocking(move || loaded.decrypt(mechanism, &ciphertext, &aad))
                    .await?
                    .map_err(crypto_error)?;
                Ok(plaintext_reply(out))
            }
            O::Digest { algorithm, data } => Ok(Reply::Digest(
                blocking(move || hsm_crypto::digest(algorithm, &data)).await?,
            )),
            O::Random { len } => {
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                if len > MAX_RANDOM_LEN {
                    return Err(ClientError::invalid(format!(
                        "at most {MAX_RANDOM_LEN} random bytes per request"
                    )));
                }
                let bytes = hsm_crypto::random_bytes(len).map_err(crypto_error)?;
                Ok(Reply::Random(bytes))
            }
            other => Err(ClientError::internal(format!(
                "operation {} reached the crypto handler",
                other.name()
            ))),
        }
    }
}
