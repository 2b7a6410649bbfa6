//! RSASSA-PKCS1-v1_5 signature padding over the caller's bytes: PKCS#11's
//! `CKM_RSA_PKCS`, where the caller brings the DigestInfo (of any hash,
//! SHA-1 included) or other data of at most `k - 11` bytes.
//!
//! aws-lc-rs signs only a hash it knows (and adds the DigestInfo itself),
//! so this, the crate's one unsafe module, calls AWS-LC's `EVP_PKEY_sign`
//! and `EVP_PKEY_verify` with PKCS#1 padding and no digest, which is that
//! operation (type-1 padding: a signature, never a decryption oracle). The
//! key is parsed from its PKCS#8 (or SubjectPublicKeyInfo) DER for each
//! call and freed after it; AWS-LC clears private key memory on free.
//! `sign`'s usual path (a SHA-256/384/512 DigestInfo) never comes here.

use aws_lc_sys as sys;
use std::ptr::NonNull;

use crate::error::{CryptoError, Result};

/// An `EVP_PKEY` owned here, freed on drop.
struct Pkey(NonNull<sys::EVP_PKEY>);

impl Drop for Pkey {
    fn drop(&mut self) {
        // SAFETY: the pointer came from EVP_parse_*_key and is freed once.
        unsafe { sys::EVP_PKEY_free(self.0.as_ptr()) }
    }
}

/// An `EVP_PKEY_CTX` owned here, freed on drop.
struct Ctx(NonNull<sys::EVP_PKEY_CTX>);

impl Drop for Ctx {
    fn drop(&mut self) {
        // SAFETY: the pointer came from EVP_PKEY_CTX_new and is freed once.
        unsafe { sys::EVP_PKEY_CTX_free(self.0.as_ptr()) }
    }
}

fn parse(der: &[u8], private: bool) -> Result<Pkey> {
    let mut cbs = std::mem::MaybeUninit::<sys::CBS>::uninit();
    // SAFETY: CBS_init initialises the CBS over `der`, which outlives it;
    // the parser reads only within it and returns an owned key or null.
    let key = unsafe {
        sys::CBS_init(cbs.as_mut_ptr(), der.as_ptr(), der.len());
        if private {
            sys::EVP_parse_private_key(cbs.as_mut_ptr())
        } else {
            sys::EVP_parse_public_key(cbs.as_mut_ptr())
        }
    };
    let Some(key) = NonNull::new(key) else {
        clear_errors();
        return Err(CryptoError::BadKey("rsa key"));
    };
    let key = Pkey(key);
    // SAFETY: the key is valid; EVP_PKEY_id only reads it.
    if unsafe { sys::EVP_PKEY_id(key.0.as_ptr()) } != sys::EVP_PKEY_RSA {
        return Err(CryptoError::BadKey("not an rsa key"));
    }
    Ok(key)
}

/// A context for `key` with PKCS#1 v1.5 padding, set up by `init`.
fn context(key: &Pkey, init: unsafe extern "C" fn(*mut sys::EVP_PKEY_CTX) -> i32) -> Result<Ctx> {
    let internal = || CryptoError::Internal("rsa pkcs1 raw");
    // SAFETY: the key is valid for the context's life (the context takes
    // its own reference).
    let ctx = unsafe { sys::EVP_PKEY_CTX_new(key.0.as_ptr(), std::ptr::null_mut()) };
    let ctx = Ctx(NonNull::new(ctx).ok_or_else(internal)?);
    // SAFETY: ctx is a valid context.
    let ok = unsafe {
        init(ctx.0.as_ptr()) == 1
            && sys::EVP_PKEY_CTX_set_rsa_padding(ctx.0.as_ptr(), sys::RSA_PKCS1_PADDING) == 1
    };
    if ok {
        Ok(ctx)
    } else {
        clear_errors();
        Err(internal())
    }
}

/// The PKCS#1 v1.5 signature of `input` (at most `k - 11` bytes) with the
/// private key in `pkcs8`.
///
/// # Errors
/// [`CryptoError::BadLength`] for an input too long for the modulus.
pub(crate) fn sign(pkcs8: &[u8], input: &[u8]) -> Result<Vec<u8>> {
    let key = parse(pkcs8, true)?;
    // SAFETY: the key is valid; EVP_PKEY_size only reads it.
    let k = usize::try_from(unsafe { sys::EVP_PKEY_size(key.0.as_ptr()) })
        .map_err(|_| CryptoError::Internal("rsa size"))?;
    if input.len() + 11 > k {
        return Err(CryptoError::BadLength {
            what: "data to sign",
            len: input.len(),
            allowed: "at most the modulus length less 11 bytes",
        });
    }
    let ctx = context(&key, sys::EVP_PKEY_sign_init)?;
    let mut out = vec![0u8; k];
    let mut len = out.len();
    // SAFETY: `out` has room for `len` (= the key size) bytes; `input` is
    // read for its length; the context is valid.
    let ok = unsafe {
        sys::EVP_PKEY_sign(
            ctx.0.as_ptr(),
            out.as_mut_ptr(),
            &mut len,
            input.as_ptr(),
            input.len(),
        )
    };
    if ok != 1 || len != k {
        clear_errors();
        return Err(CryptoError::Internal("rsa pkcs1 raw sign"));
    }
    Ok(out)
}

/// Whether `sig` is the PKCS#1 v1.5 signature of `input` under the public
/// key in `spki`.
///
/// # Errors
/// [`CryptoError::BadKey`] for a key that is not RSA.
pub(crate) fn verify(spki: &[u8], input: &[u8], sig: &[u8]) -> Result<bool> {
    let key = parse(spki, false)?;
    let ctx = context(&key, sys::EVP_PKEY_verify_init)?;
    // SAFETY: both buffers are read for their lengths; the context is valid.
    let ok = unsafe {
        sys::EVP_PKEY_verify(
            ctx.0.as_ptr(),
            sig.as_ptr(),
            sig.len(),
            input.as_ptr(),
            input.len(),
        )
    };
    // AWS-LC queues an error for a signature that does not verify; clear
    // it so it is not reported by a later, unrelated call.
    clear_errors();
    Ok(ok == 1)
}

/// Clears this thread's AWS-LC error queue after a failed call, so a later
/// unrelated call does not report it.
fn clear_errors() {
    // SAFETY: only touches this thread's error queue.
    unsafe { sys::ERR_clear_error() }
}
