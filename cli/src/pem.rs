//! Private key files for `key import`: PKCS#8 as DER or PEM.
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
    let mut body = Zeroizing::new(String::new());
    let mut ended = false;
    for line in lines {
        if line == "-----END PRIVATE KEY-----" {
            ended = true;
            break;
        }
        body.push_str(line);
    }
    if !ended {
        return Err("the PEM key file has no -----END PRIVATE KEY----- line".into());
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
}
