//! Crypto operations served from this node's replica with no Raft round
//! trip: sign, verify, encrypt, decrypt, digest, random.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hsm_crypto::{DigestAlgorithm, EncryptMechanism, SignMechanism, MAX_RANDOM_LEN};
use hsm_proto::client::{ByteBuf, ClientError, Reply, Secret};
use hsm_proto::{KeyId, KeySpec};
use hsm_state::policy::KeyUse;

use super::keys::{allow_use, crypto_error, plaintext_reply};
use super::{blocking, Ctx, Outcome, Service};

/// Inputs up to this size are processed on the async worker when the
/// operation is quick (see [`quick`]).
const INLINE_MAX_BYTES: usize = 16 * 1024;
/// Most signatures of one `SignMany` made on the async worker (a
/// millisecond or two at most); more go to the blocking pool.
pub(super) const INLINE_MAX_MESSAGES: usize = 4;

/// Set when the request it belongs to is dropped (its client gone, its
/// deadline passed), so work on the blocking pool stops early.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Whether an operation with a key of `spec` over `len` bytes takes a few
/// microseconds (EC, Ed25519, AES, HMAC on small inputs, and RSA public-key
/// operations): it then runs on the async worker, because handing it to
/// the blocking pool (a thread switch each way) would cost more than the
/// operation. RSA private-key operations (about 0.2 to 5 ms) and large
/// inputs go to the blocking pool, so they never stall other requests.
pub(super) fn quick(spec: KeySpec, private_rsa: bool, len: usize) -> bool {
    len <= INLINE_MAX_BYTES && !(private_rsa && matches!(spec, KeySpec::Rsa { .. }))
}

/// Runs `f` inline when `inline`, else on the blocking pool.
pub(super) async fn run<T: Send + 'static>(
    inline: bool,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ClientError> {
    if inline {
        Ok(f())
    } else {
        blocking(f).await
    }
}

/// Runs `f` over every item of a batch (on the blocking pool unless
/// `inline`), each with its own result, stopping early if the request is
/// dropped.
pub(super) async fn each<I: Send + 'static, T: Send + 'static>(
    inline: bool,
    items: Vec<I>,
    f: impl Fn(I) -> Result<T, ClientError> + Send + 'static,
) -> Result<Vec<Result<T, ClientError>>, ClientError> {
    let cancelled = Arc::new(AtomicBool::new(false));
    let _cancel = CancelOnDrop(cancelled.clone());
    run(inline, move || {
        items
            .into_iter()
            .map(|item| {
                if cancelled.load(Ordering::Relaxed) {
                    return Err(ClientError::unavailable("the request was dropped"));
                }
                f(item)
            })
            .collect()
    })
    .await
}

impl Service {
    pub(super) async fn sign(
        &self,
        ctx: &Ctx,
        key: KeyId,
        mechanism: SignMechanism,
        message: Vec<u8>,
    ) -> Outcome {
        let k = self.usable_key(&ctx.caller, key)?;
        allow_use(&k, KeyUse::Sign)?;
        let loaded = self.loaded(&k).await?;
        let inline = quick(k.spec, true, message.len());
        let sig = run(inline, move || loaded.sign(mechanism, &message))
            .await?
            .map_err(crypto_error)?;
        Ok(Reply::Signature(sig))
    }

    /// [`Service::sign`] for many messages (client protocol 1): what
    /// [`Service::sign_batch`] does, answered without the version.
    pub(super) async fn sign_many(
        &self,
        ctx: &Ctx,
        key: KeyId,
        mechanism: SignMechanism,
        messages: Vec<ByteBuf>,
    ) -> Outcome {
        match self.sign_batch(ctx, key, mechanism, messages).await? {
            Reply::Signed { results, .. } => Ok(Reply::Signatures(results)),
            _ => Err(ClientError::internal("sign-batch answered another reply")),
        }
    }

    pub(super) async fn verify(
        &self,
        ctx: &Ctx,
        key: KeyId,
        mechanism: SignMechanism,
        message: Vec<u8>,
        signature: Vec<u8>,
    ) -> Outcome {
        let k = self.usable_key(&ctx.caller, key)?;
        allow_use(&k, KeyUse::Verify)?;
        let loaded = self.loaded(&k).await?;
        let inline = quick(k.spec, false, message.len());
        let ok = run(inline, move || {
            loaded.verify(mechanism, &message, &signature)
        })
        .await?
        .map_err(crypto_error)?;
        Ok(Reply::Verified(ok))
    }

    pub(super) async fn encrypt(
        &self,
        ctx: &Ctx,
        key: KeyId,
        mechanism: EncryptMechanism,
        plaintext: Secret,
        aad: Vec<u8>,
    ) -> Outcome {
        let k = self.usable_key(&ctx.caller, key)?;
        allow_use(&k, KeyUse::Encrypt)?;
        let loaded = self.loaded(&k).await?;
        let inline = quick(k.spec, false, plaintext.expose().len() + aad.len());
        let out = run(inline, move || {
            loaded.encrypt(mechanism, plaintext.expose(), &aad)
        })
        .await?
        .map_err(crypto_error)?;
        Ok(Reply::Ciphertext(out))
    }

    pub(super) async fn decrypt(
        &self,
        ctx: &Ctx,
        key: KeyId,
        mechanism: EncryptMechanism,
        ciphertext: Vec<u8>,
        aad: Vec<u8>,
    ) -> Outcome {
        let k = self.usable_key(&ctx.caller, key)?;
        allow_use(&k, KeyUse::Decrypt)?;
        let loaded = self.loaded(&k).await?;
        let inline = quick(k.spec, true, ciphertext.len() + aad.len());
        let out = run(inline, move || loaded.decrypt(mechanism, &ciphertext, &aad))
            .await?
            .map_err(crypto_error)?;
        Ok(plaintext_reply(out))
    }

    pub(super) async fn digest(algorithm: DigestAlgorithm, data: Vec<u8>) -> Outcome {
        Ok(Reply::Digest(
            run(data.len() <= INLINE_MAX_BYTES, move || {
                hsm_crypto::digest(algorithm, &data)
            })
            .await?,
        ))
    }

    pub(super) fn random(len: u32) -> Outcome {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > MAX_RANDOM_LEN {
            return Err(ClientError::invalid(format!(
                "at most {MAX_RANDOM_LEN} random bytes per request"
            )));
        }
        let bytes = hsm_crypto::random_bytes(len).map_err(crypto_error)?;
        Ok(Reply::Random(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_quick_work_runs_on_the_async_workers() {
        assert!(quick(KeySpec::EcP256, true, 32));
        assert!(quick(KeySpec::Ed25519, true, 32));
        assert!(quick(KeySpec::Aes { bits: 256 }, false, 1024));
        assert!(quick(KeySpec::Rsa { bits: 2048 }, false, 32), "RSA verify");
        assert!(!quick(KeySpec::Rsa { bits: 2048 }, true, 32), "RSA sign");
        assert!(!quick(KeySpec::Rsa { bits: 4096 }, true, 32), "RSA decrypt");
        assert!(
            !quick(KeySpec::EcP256, true, INLINE_MAX_BYTES + 1),
            "large input"
        );
    }
}
