//! `crypto sign|verify|encrypt|decrypt|digest|random`.

use hsm_client::mechanism::{DigestAlgorithm, EncryptMechanism, SignMechanism};
use serde_json::json;

use super::key::insert_binary;
use crate::args::{CryptoCommand, DigestArg, EncryptMech, HashFunction, SignMech, SignatureArgs};
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
            let signature = me
                .client
                .sign(key.id, mechanism, message.to_vec())
                .await
                .map_err(|e| me.explain(e))?;
            let mut out = json!({
                "key-reference": key.id.to_string(),
                "mechanism": mechanism.name(),
                "signature": b64(&signature),
            });
            if let (Some(path), Some(map)) = (&signature_path, out.as_object_mut()) {
                write_file(path, &signature, false)?;
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
            let signature = signature_bytes(&signature)?;
            let me = ctx.login(None).await?;
            let key = filter.one(&me.client, "--key-filter").await?;
            let verified = me
                .client
                .verify(key.id, mechanism, message.to_vec(), signature)
                .await
                .map_err(|e| me.explain(e))?;
            if !verified {
                return Err(CliError::new(
                    Class::Input,
                    "verification-failed",
                    format!(
                        "the signature does not verify with key {} ({})",
                        key.id,
                        mechanism.name()
                    ),
                ));
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
            let ciphertext = me
                .client
                .encrypt(
                    key.id,
                    mechanism,
                    plaintext.to_vec(),
                    aad.unwrap_or_default().into_bytes(),
                )
                .await
                .map_err(|e| me.explain(e))?;
            let mut out = json!({
                "key-reference": key.id.to_string(),
                "mechanism": mechanism.name(),
            });
            insert_binary(&mut out, "ciphertext", &ciphertext, path.as_deref(), false)?;
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
            let ciphertext = crate::io::binary_data(&input)?;
            let me = ctx.login(None).await?;
            let key = filter.one(&me.client, "--key-filter").await?;
            let plaintext = me
                .client
                .decrypt(
                    key.id,
                    mechanism,
                    ciphertext.to_vec(),
                    aad.unwrap_or_default().into_bytes(),
                )
                .await
                .map_err(|e| me.explain(e))?;
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
        CryptoCommand::Random { length, path } => {
            let me = ctx.login(None).await?;
            let bytes = me.client.random(length).await.map_err(|e| me.explain(e))?;
            let mut out = json!({ "length": length });
            insert_binary(&mut out, "random", &bytes, path.as_deref(), true)?;
            Ok(Outcome::new(out))
        }
    }
}

fn signature_bytes(args: &SignatureArgs) -> Result<Vec<u8>> {
    match (&args.signature_path, &args.signature) {
        (Some(path), _) => Ok(read_file(path)?.to_vec()),
        (None, Some(text)) => from_b64(text, "--signature"),
        (None, None) => Err(CliError::usage(
            "give --signature-path FILE or --signature BASE64",
        )),
    }
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

fn encrypt_mechanism(m: EncryptMech) -> EncryptMechanism {
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
