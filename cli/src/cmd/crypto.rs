//! `crypto sign|verify|encrypt|decrypt|digest|random`.

use hsm_client::hsm_proto::client::ByteBuf;
use hsm_client::mechanism::{DeriveMechanism, DigestAlgorithm, EncryptMechanism, SignMechanism};
use hsm_client::{DecryptItem, Secret, VerifyItem, Versioned};
use serde_json::json;

use super::key::insert_binary;
use crate::args::{
    BinaryDataArgs, CryptoCommand, DigestArg, EncryptMech, HashFunction, KeyFilterArgs, NewKeyArgs,
    SignMech, SignatureArgs, SymmetricType,
};
use crate::error::{Class, CliError, Result};
use crate::filter::Filter;
use crate::io::{b64, data, from_b64, read_file, write_file};
use crate::output::Outcome;
use crate::session::Context;

pub(super) async fn run(ctx: &Context, command: CryptoCommand) -> Result<Outcome> {
    match command {
        CryptoCommand::Sign {
            mechanism,
            hash_function,
            key,
            data: input,
            signature_path,
        } => {
            let mechanism = sign_mechanism(mechanism, hash_function)?;
            let filter = Filter::parse(&key.key_filter)?;
            let message = data(&input)?;
            let me = ctx.login(None).await?;
            let key = filter.one(&me.client, "--key-filter").await?;
            let signed = me
                .client
                .sign_batch(key.id, mechanism, vec![message.to_vec()])
                .await
                .and_then(one)
                .map_err(|e| me.explain(e))?;
            let signature = &signed.bytes;
            let mut out = json!({
                "key-reference": key.id.to_string(),
                "mechanism": mechanism.name(),
                "key-version": signed.version,
                "signature": b64(signature),
                "versioned-signature": signed.to_text(),
            });
            if let (Some(path), Some(map)) = (&signature_path, out.as_object_mut()) {
                write_file(path, signature, false)?;
                map.insert("signature-path".into(), json!(path.display().to_string()));
            }
            Ok(Outcome::new(out))
        }
        CryptoCommand::Verify {
            mechanism,
            hash_function,
            key,
            data: input,
            signature,
        } => {
            let mechanism = sign_mechanism(mechanism, hash_function)?;
            let filter = Filter::parse(&key.key_filter)?;
            let message = data(&input)?;
            let (version, signature) = signature_bytes(&signature)?;
            let me = ctx.login(None).await?;
            let key = filter.one(&me.client, "--key-filter").await?;
            let item = VerifyItem {
                version,
                message: ByteBuf::from(message.to_vec()),
                signature: ByteBuf::from(signature),
            };
            let verified = me
                .client
                .verify_batch(key.id, mechanism, vec![item])
                .await
                .and_then(one)
                .map_err(|e| me.explain(e))?;
            if !verified {
                let err = CliError::new(
                    Class::Input,
                    "verification-failed",
                    format!(
                        "the signature does not verify with key {} ({})",
                        key.id,
                        mechanism.name()
                    ),
                );
                return Err(plain_input_hint(&me.client, key.id, version, err).await);
            }
            Ok(Outcome::new(json!({
                "key-reference": key.id.to_string(),
                "mechanism": mechanism.name(),
                "verified": true,
            })))
        }
        CryptoCommand::Encrypt {
            mechanism,
            key,
            data: input,
            aad,
            path,
        } => {
            let mechanism = encrypt_mechanism(mechanism);
            let filter = Filter::parse(&key.key_filter)?;
            let plaintext = data(&input)?;
            let me = ctx.login(None).await?;
            let key = filter.one(&me.client, "--key-filter").await?;
            let item = (
                Secret::new(plaintext.to_vec()),
                aad.unwrap_or_default().into_bytes(),
            );
            let ciphertext = me
                .client
                .encrypt_batch(key.id, mechanism, vec![item])
                .await
                .and_then(one)
                .map_err(|e| me.explain(e))?;
            let text = ciphertext.to_text();
            let mut out = json!({
                "key-reference": key.id.to_string(),
                "mechanism": mechanism.name(),
                "key-version": ciphertext.version,
            });
            if let (Some(path), Some(map)) = (&path, out.as_object_mut()) {
                write_file(path, text.as_bytes(), false)?;
                map.insert("path".into(), json!(path.display().to_string()));
                map.insert("bytes".into(), json!(ciphertext.bytes.len()));
            } else if let Some(map) = out.as_object_mut() {
                map.insert("ciphertext".into(), json!(text));
            }
            Ok(Outcome::new(out))
        }
        CryptoCommand::Decrypt {
            mechanism,
            key,
            data: input,
            aad,
            path,
        } => {
            let mechanism = encrypt_mechanism(mechanism);
            let filter = Filter::parse(&key.key_filter)?;
            let (version, ciphertext) = ciphertext_input(&input)?;
            let me = ctx.login(None).await?;
            let key = filter.one(&me.client, "--key-filter").await?;
            let item = DecryptItem {
                version,
                ciphertext: ByteBuf::from(ciphertext),
                aad: ByteBuf::from(aad.unwrap_or_default().into_bytes()),
            };
            let plaintext = match me
                .client
                .decrypt_batch(key.id, mechanism, vec![item])
                .await
                .and_then(one)
            {
                Ok(plaintext) => plaintext,
                Err(e) => {
                    let err = me.explain(e);
                    return Err(plain_input_hint(&me.client, key.id, version, err).await);
                }
            };
            let mut out = json!({
                "key-reference": key.id.to_string(),
                "mechanism": mechanism.name(),
            });
            insert_binary(
                &mut out,
                "plaintext",
                plaintext.expose(),
                path.as_deref(),
                true,
            )?;
            Ok(Outcome::new(out))
        }
        CryptoCommand::Digest {
            algorithm,
            data: input,
        } => {
            let algorithm = digest_algorithm(algorithm);
            let bytes = data(&input)?;
            let me = ctx.login(None).await?;
            let digest = me
                .client
                .digest(algorithm, bytes.to_vec())
                .await
                .map_err(|e| me.explain(e))?;
            Ok(Outcome::new(json!({
                "algorithm": algorithm.name(),
                "digest": b64(&digest),
                "digest-hex": hex::encode(&digest),
            })))
        }
        CryptoCommand::GenerateDataKey {
            key,
            bits,
            aad,
            wrapped_only,
            path,
        } => {
            let filter = Filter::parse(&key.key_filter)?;
            let me = ctx.login(None).await?;
            let key = filter.one(&me.client, "--key-filter").await?;
            let data_key = me
                .client
                .generate_data_key(
                    key.id,
                    bits,
                    aad.unwrap_or_default().into_bytes(),
                    !wrapped_only,
                )
                .await
                .map_err(|e| me.explain(e))?;
            let mut out = json!({
                "key-reference": key.id.to_string(),
                "key-version": data_key.wrapped.version,
                "bits": bits,
                "wrapped": data_key.wrapped.to_text(),
            });
            if let Some(plaintext) = &data_key.plaintext {
                insert_binary(
                    &mut out,
                    "plaintext",
                    plaintext.expose(),
                    path.as_deref(),
                    true,
                )?;
            }
            Ok(Outcome::new(out))
        }
        CryptoCommand::Batch(batch) => super::batch::run(ctx, batch).await,
        CryptoCommand::Derive {
            mechanism,
            key,
            peer_public_key,
            context,
            key_type,
            key_length_bytes,
            new_key,
        } => {
            derive(
                ctx,
                &mechanism,
                &key,
                &peer_public_key,
                context,
                (key_type, key_length_bytes),
                &new_key,
            )
            .await
        }
        CryptoCommand::Random { length, path } => {
            let me = ctx.login(None).await?;
            let bytes = me.client.random(length).await.map_err(|e| me.explain(e))?;
            let mut out = json!({ "length": length });
            insert_binary(&mut out, "random", &bytes, path.as_deref(), true)?;
            Ok(Outcome::new(out))
        }
    }
}

/// The signature given, and the key version it names (`None`: a plain
/// signature, checked with the latest version).
fn signature_bytes(args: &SignatureArgs) -> Result<(Option<u32>, Vec<u8>)> {
    match (&args.signature_path, &args.signature) {
        (Some(path), _) => maybe_versioned(&read_file(path)?, "--signature-path"),
        (None, Some(text)) => versioned_or_b64(text, "--signature"),
        (None, None) => Err(CliError::usage(
            "give --signature-path FILE or --signature SIGNATURE",
        )),
    }
}

/// The ciphertext given (`hsm:v<N>:...` as `crypto encrypt` writes it, or
/// plain bytes for the latest version) and the version it names.
fn ciphertext_input(args: &BinaryDataArgs) -> Result<(Option<u32>, Vec<u8>)> {
    match (&args.data_path, &args.data) {
        (Some(path), _) => maybe_versioned(&read_file(path)?, "--data-path"),
        (None, Some(text)) => versioned_or_b64(text, "--data"),
        (None, None) => Err(CliError::usage("give --data-path FILE or --data TEXT")),
    }
}

/// A versioned value if `bytes` are one (its text), else the bytes
/// themselves.
pub(super) fn maybe_versioned(bytes: &[u8], what: &str) -> Result<(Option<u32>, Vec<u8>)> {
    match std::str::from_utf8(bytes).ok().and_then(Versioned::parse) {
        Some(parsed) => versioned(parsed, what),
        None => Ok((None, bytes.to_vec())),
    }
}

/// A versioned value if `text` is one, else base64.
pub(super) fn versioned_or_b64(text: &str, what: &str) -> Result<(Option<u32>, Vec<u8>)> {
    match Versioned::parse(text) {
        Some(parsed) => versioned(parsed, what),
        None => Ok((None, from_b64(text, what)?)),
    }
}

fn versioned(
    parsed: std::result::Result<Versioned, hsm_client::hsm_proto::versioned::VersionedError>,
    what: &str,
) -> Result<(Option<u32>, Vec<u8>)> {
    let v = parsed.map_err(|e| CliError::invalid(format!("{what}: {e}")))?;
    Ok((Some(v.version), v.bytes))
}

/// `err` with a hint when plain input (no version named) failed on a
/// rotated key: it was checked with the latest version only.
async fn plain_input_hint(
    client: &hsm_client::Client,
    key: hsm_client::KeyId,
    version: Option<u32>,
    err: CliError,
) -> CliError {
    if version.is_some() {
        return err;
    }
    match client.key_versions(key).await {
        Ok(info) if info.latest > 1 => err.hint(format!(
            "plain input is checked with the key's latest version, {}; give what an earlier \
             version made as hsm:v<N>:<base64> (before the key's first rotation: hsm:v1:...)",
            info.latest
        )),
        _ => err,
    }
}

/// The one result of a batch of one.
pub(super) fn one<T>(results: Vec<hsm_client::Result<T>>) -> hsm_client::Result<T> {
    results.into_iter().next().unwrap_or_else(|| {
        Err(hsm_client::Error::Protocol(
            "a batch of one answered nothing".into(),
        ))
    })
}

async fn derive(
    ctx: &Context,
    mechanism: &str,
    key: &KeyFilterArgs,
    peer: &std::path::Path,
    context: Option<String>,
    (key_type, len): (SymmetricType, u16),
    new_key: &NewKeyArgs,
) -> Result<Outcome> {
    let mechanism = DeriveMechanism::from_name(mechanism).ok_or_else(|| {
        CliError::usage(format!(
            "unknown key derivation {mechanism:?}: ecdh-hkdf-sha256, ecdh-blake3, \
             ecdh-x963-sha256 or ecdh-raw"
        ))
    })?;
    let spec = match key_type {
        SymmetricType::Aes => crate::keys::aes_spec(len)?,
        SymmetricType::GenericSecret => crate::keys::generic_secret_spec(len)?,
    };
    let peer = hsm_cli::pem::spki_der(&read_file(peer)?).map_err(CliError::invalid)?;
    let attributes = crate::keys::new_attributes(new_key, crate::keys::NewKey::Generate(spec))?;
    let filter = Filter::parse(&key.key_filter)?;
    let me = ctx.login(None).await?;
    let ours = filter.one(&me.client, "--key-filter").await?;
    let derived = me
        .client
        .derive_key(
            ours.id,
            mechanism,
            peer,
            context.unwrap_or_default().into_bytes(),
            spec,
            attributes,
            new_key.unique_label,
        )
        .await
        .map_err(|e| me.explain(e))?;
    Ok(super::key::key_outcome(&derived))
}

/// The mechanism for a family and hash function, or why the pair is
/// wrong.
pub(crate) fn sign_mechanism(
    family: SignMech,
    hash: Option<HashFunction>,
) -> Result<SignMechanism> {
    use HashFunction as H;
    use SignMech as F;
    use SignMechanism as M;
    let name = match family {
        F::RsaPkcs => "rsa-pkcs",
        F::RsaPss => "rsa-pss",
        F::Ecdsa => "ecdsa",
        F::Ed25519 => "ed25519",
        F::Hmac => "hmac",
    };
    let Some(hash) = hash else {
        return match family {
            F::Ed25519 => Ok(M::Ed25519),
            _ => Err(CliError::usage(format!(
                "{name} needs --hash-function sha256|sha384{}",
                if family == F::Ecdsa { "" } else { "|sha512" }
            ))),
        };
    };
    match (family, hash) {
        (F::RsaPkcs, H::Sha256) => Ok(M::RsaPkcs1v15Sha256),
        (F::RsaPkcs, H::Sha384) => Ok(M::RsaPkcs1v15Sha384),
        (F::RsaPkcs, H::Sha512) => Ok(M::RsaPkcs1v15Sha512),
        (F::RsaPss, H::Sha256) => Ok(M::RsaPssSha256),
        (F::RsaPss, H::Sha384) => Ok(M::RsaPssSha384),
        (F::RsaPss, H::Sha512) => Ok(M::RsaPssSha512),
        (F::Ecdsa, H::Sha256) => Ok(M::EcdsaSha256),
        (F::Ecdsa, H::Sha384) => Ok(M::EcdsaSha384),
        (F::Ecdsa, H::Sha512) => Err(CliError::invalid(
            "ecdsa supports --hash-function sha256 or sha384",
        )),
        (F::Ed25519, _) => Err(CliError::usage(
            "ed25519 signs the message itself: leave out --hash-function",
        )),
        (F::Hmac, H::Sha256) => Ok(M::HmacSha256),
        (F::Hmac, H::Sha384) => Ok(M::HmacSha384),
        (F::Hmac, H::Sha512) => Ok(M::HmacSha512),
    }
}

pub(super) fn encrypt_mechanism(m: EncryptMech) -> EncryptMechanism {
    match m {
        EncryptMech::AesGcm => EncryptMechanism::AesGcm,
        EncryptMech::RsaOaep => EncryptMechanism::RsaOaepSha256,
    }
}

fn digest_algorithm(d: DigestArg) -> DigestAlgorithm {
    match d {
        DigestArg::Sha256 => DigestAlgorithm::Sha256,
        DigestArg::Sha384 => DigestAlgorithm::Sha384,
        DigestArg::Sha512 => DigestAlgorithm::Sha512,
        DigestArg::Blake3 => DigestAlgorithm::Blake3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanism_and_hash_pairs_map_or_are_explained() {
        assert_eq!(
            sign_mechanism(SignMech::RsaPss, Some(HashFunction::Sha384)).expect("ok"),
            SignMechanism::RsaPssSha384
        );
        assert_eq!(
            sign_mechanism(SignMech::Ed25519, None).expect("ok"),
            SignMechanism::Ed25519
        );
        let e = sign_mechanism(SignMech::Ecdsa, None).expect_err("needs hash");
        assert!(e.message.contains("--hash-function"), "{}", e.message);
        assert_eq!(e.class.exit_code(), 2);
        assert!(sign_mechanism(SignMech::Ecdsa, Some(HashFunction::Sha512)).is_err());
        assert!(sign_mechanism(SignMech::Ed25519, Some(HashFunction::Sha256)).is_err());
    }
}
