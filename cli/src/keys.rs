//! Keys as the command line names and shows them: key types, attribute
//! names, the attributes of a new key, and a key's JSON form.

use hsm_client::{KeyAttributes, KeyFlag, KeyId, KeyInfo, KeyProvenance, KeySpec};
use serde_json::{json, Map, Value};

use crate::args::{Curve, KeyType, KeyTypeArgs, NewKeyArgs};
use crate::error::{CliError, Result};
use crate::io::b64;
use hsm_cli::pem::PublicAlgorithm;

/// The boolean attributes by their command line names.
pub const FLAGS: &[(&str, KeyFlag)] = &[
    ("encrypt", KeyFlag::Encrypt),
    ("decrypt", KeyFlag::Decrypt),
    ("sign", KeyFlag::Sign),
    ("verify", KeyFlag::Verify),
    ("wrap", KeyFlag::Wrap),
    ("unwrap", KeyFlag::Unwrap),
    ("derive", KeyFlag::Derive),
    ("extractable", KeyFlag::Extractable),
    ("sensitive", KeyFlag::Sensitive),
    ("trusted", KeyFlag::Trusted),
    ("wrap-with-trusted", KeyFlag::WrapWithTrusted),
];

/// The usage attributes (what `--attributes` lists).
const USAGES: &[KeyFlag] = &[
    KeyFlag::Encrypt,
    KeyFlag::Decrypt,
    KeyFlag::Sign,
    KeyFlag::Verify,
    KeyFlag::Wrap,
    KeyFlag::Unwrap,
    KeyFlag::Derive,
];

/// The flag named `name` (with or without `attr.`).
pub fn flag(name: &str) -> Option<KeyFlag> {
    FLAGS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// The command line name of a flag.
pub fn flag_name(flag: KeyFlag) -> &'static str {
    FLAGS
        .iter()
        .find(|(_, f)| *f == flag)
        .map(|(n, _)| *n)
        .unwrap_or("unknown")
}

fn flag_list() -> String {
    FLAGS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// Parses `true|false` (and yes/no, 1/0) for `what`.
pub fn parse_bool(value: &str, what: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Ok(true),
        "false" | "no" | "0" | "off" => Ok(false),
        _ => Err(CliError::invalid(format!(
            "{what} must be true or false, got {value:?}"
        ))),
    }
}

/// Parses hex bytes (an optional `0x` prefix) for `what`.
pub fn parse_hex(value: &str, what: &str) -> Result<Vec<u8>> {
    let digits = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
        .unwrap_or(value);
    hex::decode(digits)
        .map_err(|e| CliError::invalid(format!("{what} must be hex bytes, got {value:?}: {e}")))
}

/// Parses a key reference: `0x` and 16 hex digits as hsm prints it, or a
/// decimal number.
pub fn parse_key_reference(value: &str) -> Result<KeyId> {
    let parsed = match value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => value.parse::<u64>(),
    };
    parsed.map(KeyId).map_err(|_| {
        CliError::invalid(format!(
            "key-reference must be 0x followed by hex digits (as `hsm key list` shows it), \
             got {value:?}"
        ))
    })
}

/// The key type name (`attr.key-type`) of a spec.
pub fn type_name(spec: KeySpec) -> &'static str {
    match spec {
        KeySpec::Aes { .. } => "aes",
        KeySpec::GenericSecret { .. } => "generic-secret",
        KeySpec::Rsa { .. } => "rsa",
        KeySpec::EcP256 | KeySpec::EcP384 | KeySpec::EcSecp256k1 => "ec",
        KeySpec::Ed25519 => "ed25519",
        KeySpec::X25519 => "x25519",
    }
}

/// The key type names `attr.key-type` accepts.
pub const TYPE_NAMES: &[&str] = &["aes", "generic-secret", "rsa", "ec", "ed25519", "x25519"];

/// The spec of an EC key on `curve`.
pub fn ec_spec(curve: Curve) -> KeySpec {
    match curve {
        Curve::Prime256v1 => KeySpec::EcP256,
        Curve::Secp384r1 => KeySpec::EcP384,
        Curve::Secp256k1 => KeySpec::EcSecp256k1,
    }
}

fn curve_name(spec: KeySpec) -> Option<&'static str> {
    match spec {
        KeySpec::EcP256 => Some("prime256v1"),
        KeySpec::EcP384 => Some("secp384r1"),
        KeySpec::EcSecp256k1 => Some("secp256k1"),
        _ => None,
    }
}

/// An AES spec from a length in bytes, checked here so the message names
/// the flag.
pub fn aes_spec(bytes: u16) -> Result<KeySpec> {
    if !matches!(bytes, 16 | 24 | 32) {
        return Err(CliError::invalid(format!(
            "--key-length-bytes for AES must be 16, 24 or 32, got {bytes}"
        )));
    }
    Ok(KeySpec::Aes { bits: bytes * 8 })
}

/// A generic secret spec from a length in bytes.
pub fn generic_secret_spec(bytes: u16) -> Result<KeySpec> {
    if !(1..=800).contains(&bytes) {
        return Err(CliError::invalid(format!(
            "--key-length-bytes for a generic secret must be 1 to 800, got {bytes}"
        )));
    }
    Ok(KeySpec::GenericSecret { bytes })
}

/// An RSA spec from a modulus size.
pub fn rsa_spec(bits: u16) -> Result<KeySpec> {
    if !matches!(bits, 2048 | 3072 | 4096) {
        return Err(CliError::invalid(format!(
            "--modulus-size-bits must be 2048, 3072 or 4096, got {bits}"
        )));
    }
    Ok(KeySpec::Rsa { bits })
}

/// The spec named by `--key-type` and its size flags; `material_len` is
/// the default size of a symmetric key (import).
pub fn spec_from_args(args: &KeyTypeArgs, material_len: Option<usize>) -> Result<KeySpec> {
    let symmetric_len = || -> Result<u16> {
        match (args.key_length_bytes, material_len) {
            (Some(n), _) => Ok(n),
            (None, Some(len)) => u16::try_from(len)
                .map_err(|_| CliError::invalid(format!("key file of {len} bytes is too long"))),
            (None, None) => Err(CliError::usage(
                "--key-type aes and generic-secret need --key-length-bytes",
            )),
        }
    };
    match args.key_type {
        KeyType::Aes => aes_spec(symmetric_len()?),
        KeyType::GenericSecret => generic_secret_spec(symmetric_len()?),
        KeyType::Rsa => match args.modulus_size_bits {
            Some(bits) => rsa_spec(bits),
            None => Err(CliError::usage("--key-type rsa needs --modulus-size-bits")),
        },
        KeyType::Ec => match args.curve {
            Some(curve) => Ok(ec_spec(curve)),
            None => Err(CliError::usage(
                "--key-type ec needs --curve prime256v1|secp384r1|secp256k1",
            )),
        },
        KeyType::Ed25519 => Ok(KeySpec::Ed25519),
        KeyType::X25519 => Ok(KeySpec::X25519),
    }
}

/// The usages a new key of `spec` gets when `--attributes` is not given.
pub fn default_usages(spec: KeySpec) -> &'static [KeyFlag] {
    match spec {
        KeySpec::Aes { .. } => &[KeyFlag::Encrypt, KeyFlag::Decrypt],
        KeySpec::X25519 => &[KeyFlag::Derive],
        _ => &[KeyFlag::Sign, KeyFlag::Verify],
    }
}

/// The usages a public key alone gets when the command line names none.
pub fn public_usages(algorithm: PublicAlgorithm) -> &'static [KeyFlag] {
    match algorithm {
        PublicAlgorithm::Rsa => &[KeyFlag::Verify, KeyFlag::Encrypt, KeyFlag::Wrap],
        PublicAlgorithm::X25519 => &[],
        PublicAlgorithm::Ec | PublicAlgorithm::Ed25519 => &[KeyFlag::Verify],
    }
}

/// How a new key comes to be, for its command-line defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewKey {
    /// Generated: the type's default usages, sensitive.
    Generate(KeySpec),
    /// Imported from plaintext: the type's default usages, not sensitive
    /// unless asked (its material is known outside the cluster either way).
    Import(KeySpec),
    /// Unwrapped: the usages the wrapped key carries unless `--attributes`
    /// narrows them; the carried one-way attributes are restored.
    Unwrap,
    /// A public key alone: verify, and for RSA encrypt and wrap.
    PublicImport(PublicAlgorithm),
}

/// The attributes of a new key from the command line.
pub fn new_attributes(args: &NewKeyArgs, new: NewKey) -> Result<KeyAttributes> {
    let mut attributes = KeyAttributes {
        label: args.label.clone(),
        sensitive: matches!(new, NewKey::Generate(_) | NewKey::Unwrap),
        ..KeyAttributes::default()
    };
    if let Some(id) = &args.id {
        attributes.id = parse_hex(id, "--id")?;
    }
    let tokens: Vec<&str> = args
        .attributes
        .iter()
        .flat_map(|a| a.split([',', ' ']))
        .filter(|t| !t.is_empty())
        .collect();
    if tokens.is_empty() {
        let usages = match new {
            NewKey::Generate(spec) | NewKey::Import(spec) => default_usages(spec),
            NewKey::PublicImport(algorithm) => public_usages(algorithm),
            NewKey::Unwrap => &[],
        };
        for usage in usages {
            attributes.set_flag(*usage, true);
        }
    }
    for token in tokens {
        let (name, value) = match token.split_once('=') {
            Some((n, v)) => (n, parse_bool(v, n)?),
            None => (token, true),
        };
        let name = name.strip_prefix("attr.").unwrap_or(name);
        let flag = flag(name).ok_or_else(|| {
            CliError::invalid(format!(
                "unknown attribute {name:?} in --attributes: expected {}",
                flag_list()
            ))
        })?;
        attributes.set_flag(flag, value);
    }
    if let Some(v) = args.extractable {
        attributes.extractable = v;
    }
    if let Some(v) = args.sensitive {
        attributes.sensitive = v;
    }
    if let Some(v) = args.wrap_with_trusted {
        attributes.wrap_with_trusted = v;
    }
    Ok(attributes)
}

/// A key's attributes as JSON, CloudHSM-style names.
pub fn attributes_json(spec: KeySpec, a: &KeyAttributes, p: &KeyProvenance) -> Value {
    let mut map = Map::new();
    map.insert("key-type".into(), json!(type_name(spec)));
    map.insert("label".into(), json!(a.label));
    map.insert("id".into(), json!(hex::encode(&a.id)));
    match spec {
        KeySpec::Aes { bits } => {
            map.insert("key-length-bytes".into(), json!(bits / 8));
        }
        KeySpec::GenericSecret { bytes } => {
            map.insert("key-length-bytes".into(), json!(bytes));
        }
        KeySpec::Rsa { bits } => {
            map.insert("modulus-size-bits".into(), json!(bits));
        }
        other => {
            if let Some(curve) = curve_name(other) {
                map.insert("curve".into(), json!(curve));
            }
        }
    }
    for (name, flag) in FLAGS {
        map.insert((*name).into(), json!(a.flag(*flag)));
    }
    map.insert("origin".into(), json!(p.origin.name()));
    map.insert("local".into(), json!(p.local));
    map.insert("always-sensitive".into(), json!(p.always_sensitive));
    map.insert("never-extractable".into(), json!(p.never_extractable));
    Value::Object(map)
}

/// A key as JSON: `key-reference`, `key-info` (owner, shared users,
/// creation time) and `attributes`.
pub fn key_json(key: &KeyInfo) -> Value {
    let mut value = json!({
        "key-reference": key.id.to_string(),
        "key-info": {
            "key-owners": [{ "username": key.owner.as_str() }],
            "shared-users": key.shared_with.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
            "created-ms": key.created_ms,
        },
        "attributes": attributes_json(key.spec, &key.attributes, &key.provenance),
    });
    if !key.public_key.is_empty() {
        if let Some(map) = value.as_object_mut() {
            map.insert("public-key".into(), json!(b64(&key.public_key)));
        }
    }
    value
}

/// A short description of a key type and size, for tables.
pub fn spec_text(spec: KeySpec) -> String {
    match spec {
        KeySpec::Aes { bits } => format!("aes-{bits}"),
        KeySpec::GenericSecret { bytes } => format!("generic-secret-{bytes}B"),
        KeySpec::Rsa { bits } => format!("rsa-{bits}"),
        other => match curve_name(other) {
            Some(curve) => format!("ec-{curve}"),
            None => type_name(other).to_string(),
        },
    }
}

/// A key as aligned lines, for `--output table`.
pub fn key_table(key: &KeyInfo) -> String {
    let a = &key.attributes;
    let shared: Vec<&str> = key.shared_with.iter().map(|u| u.as_str()).collect();
    let or_dash = |s: String| if s.is_empty() { "-".to_string() } else { s };
    let lines = [
        ("key-reference", key.id.to_string()),
        ("key-type", spec_text(key.spec)),
        ("label", or_dash(a.label.clone())),
        ("id", or_dash(hex::encode(&a.id))),
        ("owner", key.owner.to_string()),
        ("shared-users", or_dash(shared.join(", "))),
        ("usages", usages_text(a)),
        ("extractable", a.extractable.to_string()),
        ("sensitive", a.sensitive.to_string()),
        ("trusted", a.trusted.to_string()),
        ("wrap-with-trusted", a.wrap_with_trusted.to_string()),
        ("created-ms", key.created_ms.to_string()),
    ];
    lines
        .iter()
        .map(|(k, v)| format!("{k:17}  {v}\n"))
        .collect()
}

/// The usages a key has, comma separated, for tables.
pub fn usages_text(a: &KeyAttributes) -> String {
    let set: Vec<&str> = USAGES
        .iter()
        .filter(|f| a.flag(**f))
        .map(|f| flag_name(*f))
        .collect();
    if set.is_empty() {
        "-".into()
    } else {
        set.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(attributes: &[&str]) -> NewKeyArgs {
        NewKeyArgs {
            label: "k".into(),
            id: Some("0a0b".into()),
            attributes: attributes.iter().map(|s| s.to_string()).collect(),
            extractable: None,
            sensitive: None,
            wrap_with_trusted: None,
            unique_label: false,
        }
    }

    #[test]
    fn new_keys_get_type_defaults_or_exactly_the_listed_usages() {
        let a =
            new_attributes(&args(&[]), NewKey::Generate(KeySpec::Aes { bits: 256 })).expect("ok");
        assert!(a.encrypt && a.decrypt && !a.sign && a.sensitive && a.extractable);
        assert_eq!(a.id, vec![10, 11]);
        let a = new_attributes(
            &args(&["sign", "verify=false", "attr.wrap"]),
            NewKey::Generate(KeySpec::EcP256),
        )
        .expect("ok");
        assert!(a.sign && !a.verify && a.wrap && !a.encrypt);
        let bad = new_attributes(&args(&["sing"]), NewKey::Generate(KeySpec::EcP256))
            .expect_err("unknown");
        assert!(bad.message.contains("sing") && bad.message.contains("sign"));
    }

    #[test]
    fn imports_are_not_sensitive_unless_asked_and_unwraps_keep_the_carried_usages() {
        let a = new_attributes(&args(&[]), NewKey::Import(KeySpec::Ed25519)).expect("ok");
        assert!(!a.sensitive && a.sign);
        let mut sensitive = args(&[]);
        sensitive.sensitive = Some(true);
        let a = new_attributes(&sensitive, NewKey::Import(KeySpec::Ed25519)).expect("ok");
        assert!(a.sensitive);
        let a = new_attributes(&args(&[]), NewKey::Unwrap).expect("ok");
        assert!(!a.encrypt && !a.decrypt && a.sensitive, "{a:?}");
        let a = new_attributes(&args(&["decrypt"]), NewKey::Unwrap).expect("ok");
        assert!(a.decrypt && !a.encrypt);
    }

    #[test]
    fn a_public_key_alone_verifies_and_an_rsa_one_encrypts_and_wraps() {
        let a = new_attributes(&args(&[]), NewKey::PublicImport(PublicAlgorithm::Ec)).expect("ok");
        assert!(a.verify && !a.sign && !a.encrypt && !a.wrap && !a.sensitive);
        let a = new_attributes(&args(&[]), NewKey::PublicImport(PublicAlgorithm::Rsa)).expect("ok");
        assert!(a.verify && a.encrypt && a.wrap && !a.decrypt && !a.unwrap && !a.sign);
    }

    #[test]
    fn sizes_are_checked_with_the_flag_named() {
        assert_eq!(aes_spec(32).expect("ok"), KeySpec::Aes { bits: 256 });
        assert!(aes_spec(20)
            .expect_err("bad")
            .message
            .contains("16, 24 or 32"));
        assert!(rsa_spec(1024).is_err());
        let import = KeyTypeArgs {
            key_type: KeyType::Aes,
            key_length_bytes: None,
            modulus_size_bits: None,
            curve: None,
        };
        assert_eq!(
            spec_from_args(&import, Some(16)).expect("from length"),
            KeySpec::Aes { bits: 128 }
        );
        assert!(spec_from_args(&import, None).is_err());
    }

    #[test]
    fn key_references_parse_as_printed() {
        let id = KeyId(0x17966db339d683b);
        assert_eq!(parse_key_reference(&id.to_string()).expect("hex"), id);
        assert_eq!(parse_key_reference("12").expect("decimal"), KeyId(12));
        assert!(parse_key_reference("0xzz").is_err());
    }
}
