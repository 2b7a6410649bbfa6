//! Key files for `key import` (PKCS#8) and `key import-public`
//! (SubjectPublicKeyInfo), as DER or PEM.
//!
//! Bytes from a file the user names, parsed here before the cluster sees
//! what they hold, so this is a library the fuzz target `pem_key_file`
//! reaches too (docs/security-model.md).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use zeroize::Zeroizing;

/// The PKCS#8 DER in a key file: the file itself when it is DER, the
/// decoded body when it is a PEM `PRIVATE KEY` block. Other PEM blocks are
/// refused with the command that converts them.
///
/// # Errors
/// What is wrong with the file, in words for the person who gave it (the
/// command line answers it as `invalid-input`). The message never quotes
/// the file's body.
pub fn pkcs8_der(file: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    let text = match std::str::from_utf8(file) {
        Ok(t) if t.trim_start().starts_with("-----BEGIN ") => t,
        // Not PEM: taken as DER; the cluster checks it.
        _ => return Ok(Zeroizing::new(file.to_vec())),
    };
    let mut lines = text.lines().map(str::trim).skip_while(|l| l.is_empty());
    let begin = lines.next().unwrap_or_default();
    let label = begin
        .strip_prefix("-----BEGIN ")
        .and_then(|l| l.strip_suffix("-----"))
        .unwrap_or_default();
    match label {
        "PRIVATE KEY" => {}
        "ENCRYPTED PRIVATE KEY" => {
            return Err("the key file is encrypted PKCS#8: decrypt it first \
                 (openssl pkcs8 -in key.pem -out plain.pem)"
                .into())
        }
        "RSA PRIVATE KEY" | "EC PRIVATE KEY" => {
            return Err(format!(
                "the key file is a traditional {label} block: convert it to PKCS#8 \
                 (openssl pkcs8 -topk8 -nocrypt -in key.pem -out pkcs8.pem)"
            ))
        }
        other => {
            return Err(format!(
                "the key file holds a {other:?} PEM block: expected PRIVATE KEY (PKCS#8)"
            ))
        }
    }
    block_body(lines, label)
}

/// The SubjectPublicKeyInfo DER in a public key file (`key
/// import-public`): the file itself when it is DER, the decoded body when
/// it is a PEM `PUBLIC KEY` block (what `openssl pkey -pubout` writes).
///
/// # Errors
/// What is wrong with the file, in words.
pub fn spki_der(file: &[u8]) -> Result<Vec<u8>, String> {
    let text = match std::str::from_utf8(file) {
        Ok(t) if t.trim_start().starts_with("-----BEGIN ") => t,
        _ => return Ok(file.to_vec()),
    };
    let mut lines = text.lines().map(str::trim).skip_while(|l| l.is_empty());
    let begin = lines.next().unwrap_or_default();
    match begin
        .strip_prefix("-----BEGIN ")
        .and_then(|l| l.strip_suffix("-----"))
        .unwrap_or_default()
    {
        "PUBLIC KEY" => block_body(lines, "PUBLIC KEY").map(|b| b.to_vec()),
        "RSA PUBLIC KEY" => Err("the key file is a PKCS#1 RSA PUBLIC KEY block: convert it \
             (openssl rsa -RSAPublicKey_in -in key.pem -pubout -out spki.pem)"
            .into()),
        "CERTIFICATE" => Err("the file is a certificate: take its public key first \
             (openssl x509 -in cert.pem -pubkey -noout > key.pem)"
            .into()),
        other => Err(format!(
            "the key file holds a {other:?} PEM block: expected PUBLIC KEY (SubjectPublicKeyInfo)"
        )),
    }
}

/// The family of a public key, by its SubjectPublicKeyInfo algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicAlgorithm {
    /// rsaEncryption.
    Rsa,
    /// id-ecPublicKey (any curve).
    Ec,
    /// Ed25519.
    Ed25519,
    /// X25519.
    X25519,
}

/// The family of the public key in `der` (SubjectPublicKeyInfo), for the
/// command line's default usages; the cluster reads and checks the key
/// itself.
///
/// # Errors
/// Not SubjectPublicKeyInfo, or an algorithm the cluster has no keys of.
pub fn public_algorithm(der: &[u8]) -> Result<PublicAlgorithm, String> {
    use spki::der::Decode as _;
    let info = spki::SubjectPublicKeyInfoRef::from_der(der)
        .map_err(|e| format!("the file is not a SubjectPublicKeyInfo public key: {e}"))?;
    match info.algorithm.oid.to_string().as_str() {
        "1.2.840.113549.1.1.1" => Ok(PublicAlgorithm::Rsa),
        "1.2.840.10045.2.1" => Ok(PublicAlgorithm::Ec),
        "1.3.101.112" => Ok(PublicAlgorithm::Ed25519),
        "1.3.101.110" => Ok(PublicAlgorithm::X25519),
        other => Err(format!(
            "the public key's algorithm {other} is not one the cluster has"
        )),
    }
}

/// The base64 body of a PEM block up to its END line, decoded.
fn block_body<'a>(
    lines: impl Iterator<Item = &'a str>,
    label: &str,
) -> Result<Zeroizing<Vec<u8>>, String> {
    let end = format!("-----END {label}-----");
    let mut body = Zeroizing::new(String::new());
    let mut ended = false;
    for line in lines {
        if line == end {
            ended = true;
            break;
        }
        body.push_str(line);
    }
    if !ended {
        return Err(format!("the PEM key file has no {end} line"));
    }
    STANDARD
        .decode(body.as_bytes())
        .map(Zeroizing::new)
        .map_err(|e| format!("the PEM key file's body is not base64: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_and_der_give_the_same_bytes() {
        let der = b"\x30\x2e\x02\x01\x00".to_vec();
        let pem = format!(
            "\n-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(&der)
        );
        assert_eq!(pkcs8_der(pem.as_bytes()).expect("pem").as_slice(), der);
        assert_eq!(pkcs8_der(&der).expect("der").as_slice(), der);
    }

    #[test]
    fn other_pem_blocks_say_how_to_convert() {
        let rsa = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        let e = pkcs8_der(rsa.as_bytes()).expect_err("refused");
        assert!(e.contains("-topk8"), "{e}");
        let cut = "-----BEGIN PRIVATE KEY-----\nAAAA\n";
        assert!(pkcs8_der(cut.as_bytes()).is_err());
    }

    #[test]
    fn public_key_files_are_pem_or_der() {
        let der = b"\x30\x59\x30\x13".to_vec();
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(&der)
        );
        assert_eq!(spki_der(pem.as_bytes()).expect("pem"), der);
        assert_eq!(spki_der(&der).expect("der"), der);
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(spki_der(cert.as_bytes())
            .expect_err("refused")
            .contains("-pubkey"));
        let private = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(spki_der(private.as_bytes()).is_err());
    }
}
