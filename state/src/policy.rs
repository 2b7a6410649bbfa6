//! The key policy: what a key may do, which attributes may sit together on
//! one key, how they may change, what a wrapped copy may become. One table;
//! the node asks it before every key operation and `State::apply` asks it
//! again for every key written.
//!
//! The rules, and why each closes a way to get key material out:
//!
//! - **Conflicts** ([`CONFLICTS`]): `wrap` with `decrypt`, and `unwrap`
//!   with `encrypt`, never sit on one key, at creation, import, unwrap or
//!   any later change (PKCS#11's conflicting attributes): otherwise a key
//!   could wrap a secret and then decrypt the result as data, or encrypt
//!   chosen bytes and unwrap them as a "secret" key. (The wrapped format is
//!   also apart from data encryption in `hsm-crypto`; this is the second
//!   wall.)
//! - **One-way attributes**: `sensitive` and `wrap-with-trusted` only
//!   turn on, `extractable` only turns off.
//! - **Trusted keys are frozen**: while a key is `trusted`, its owner
//!   changes nothing about it; a crypto officer removes `trusted` first.
//! - **Who may wrap a sensitive key**: a key `trusted` by a crypto
//!   officer, or a key whose material was never known outside the cluster
//!   (generated here and sensitive ever since, [`KeyProvenance`]). A key
//!   someone imported, derived with a peer, unwrapped from data it made,
//!   or could once wrap out while not sensitive might be known, so it
//!   protects nothing.
//! - **Wrap-with-trusted**: only a trusted key wraps such a key.
//! - **Wrapping out marks the key**: a key never known outside that is
//!   wrapped under a key that may be (allowed because an officer trusts it)
//!   counts as known outside from then on ([`exposes`]).
//! - **A public key alone** (imported without its private half) never
//!   signs, decrypts, unwraps or derives, at creation, by any later
//!   change, or in use ([`PRIVATE_USAGES`]), and is never wrapped: there is
//!   no material behind it.
//! - **Unwrap restores**: a wrapped key carries its type, usages, one-way
//!   attributes and provenance ([`CarriedAttributes`]); the copy gets them
//!   back. The caller may narrow usages and tighten the one-way attributes,
//!   never widen them. The copy is local only when the wrapping proves it
//!   came from this cluster: a symmetric wrapping key never known outside.

use hsm_proto::{
    CarriedAttributes, KeyAttribute, KeyAttributes, KeyDefect, KeyFlag, KeyOrigin, KeyPolicyError,
    KeyProvenance, KeySpec, Rejection, MAX_CERTIFICATE_LEN,
};

use crate::records::Key;

/// Pairs of capabilities that never sit on one key.
pub const CONFLICTS: [(KeyFlag, KeyFlag); 2] = [
    (KeyFlag::Wrap, KeyFlag::Decrypt),
    (KeyFlag::Unwrap, KeyFlag::Encrypt),
];

/// The usage attributes, in the order errors name them.
pub const USAGES: [KeyFlag; 7] = [
    KeyFlag::Encrypt,
    KeyFlag::Decrypt,
    KeyFlag::Sign,
    KeyFlag::Verify,
    KeyFlag::Wrap,
    KeyFlag::Unwrap,
    KeyFlag::Derive,
];

/// The usages that need a private (or secret) half: a public key alone
/// ([`KeyProvenance::public_only`]) never has them.
pub const PRIVATE_USAGES: [KeyFlag; 4] = [
    KeyFlag::Sign,
    KeyFlag::Decrypt,
    KeyFlag::Unwrap,
    KeyFlag::Derive,
];

/// Whether a key of `spec` and `provenance` may have `attributes`: a
/// public key alone has none of [`PRIVATE_USAGES`], and only an RSA one
/// encrypts or wraps (to its holder, with RSA-OAEP).
///
/// # Errors
/// [`KeyPolicyError::PublicKeyOnly`] naming the first it may not have.
pub fn check_public_only(
    spec: KeySpec,
    attributes: &KeyAttributes,
    provenance: &KeyProvenance,
) -> Result<(), KeyPolicyError> {
    if !provenance.public_only() {
        return Ok(());
    }
    let rsa = matches!(spec, KeySpec::Rsa { .. });
    let refused = |f: &KeyFlag| {
        PRIVATE_USAGES.contains(f) || (!rsa && matches!(f, KeyFlag::Encrypt | KeyFlag::Wrap))
    };
    match USAGES.iter().find(|f| attributes.flag(**f) && refused(f)) {
        Some(flag) => Err(KeyPolicyError::PublicKeyOnly(*flag)),
        None => Ok(()),
    }
}

/// Something a caller does with a key it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// Encrypt data.
    Encrypt,
    /// Decrypt data.
    Decrypt,
    /// Sign, or compute an HMAC.
    Sign,
    /// Verify a signature or an HMAC.
    Verify,
    /// Wrap another key (see also [`check_wrap`]).
    Wrap,
    /// Unwrap a key into the cluster.
    Unwrap,
    /// Agree a key with a peer.
    Derive,
}

impl KeyUse {
    /// The attribute the use needs.
    pub fn flag(self) -> KeyFlag {
        match self {
            KeyUse::Encrypt => KeyFlag::Encrypt,
            KeyUse::Decrypt => KeyFlag::Decrypt,
            KeyUse::Sign => KeyFlag::Sign,
            KeyUse::Verify => KeyFlag::Verify,
            KeyUse::Wrap => KeyFlag::Wrap,
            KeyUse::Unwrap => KeyFlag::Unwrap,
            KeyUse::Derive => KeyFlag::Derive,
        }
    }
}

/// Whether `key`'s attributes allow `use_`.
///
/// # Errors
/// [`KeyPolicyError::NotAllowed`] when the attribute is false.
pub fn check_use(key: &Key, use_: KeyUse) -> Result<(), KeyPolicyError> {
    let flag = use_.flag();
    if key.provenance.public_only() && PRIVATE_USAGES.contains(&flag) {
        return Err(KeyPolicyError::PublicKeyOnly(flag));
    }
    if key.attributes.flag(flag) {
        Ok(())
    } else {
        Err(KeyPolicyError::NotAllowed { key: key.id, flag })
    }
}

/// Whether `wrapping` may wrap `target` (which the caller owns).
///
/// # Errors
/// The [`KeyPolicyError`] of the first rule that refuses.
pub fn check_wrap(wrapping: &Key, target: &Key) -> Result<(), KeyPolicyError> {
    check_use(wrapping, KeyUse::Wrap)?;
    if target.provenance.public_only() {
        return Err(KeyPolicyError::PublicKeyOnly(KeyFlag::Extractable));
    }
    let t = &target.attributes;
    if !t.extractable {
        return Err(KeyPolicyError::NotExtractable(target.id));
    }
    let trusted = wrapping.attributes.trusted;
    if t.wrap_with_trusted && !trusted {
        return Err(KeyPolicyError::NeedsTrustedWrappingKey {
            key: target.id,
            wrapping_key: wrapping.id,
        });
    }
    if t.sensitive && !trusted && !wrapping.provenance.never_known_outside() {
        return Err(KeyPolicyError::WrappingKeyKnownOutside {
            key: target.id,
            wrapping_key: wrapping.id,
        });
    }
    Ok(())
}

/// Whether wrapping `target` under `wrapping` (allowed by [`check_wrap`])
/// puts material that was never known outside the cluster under a key that
/// may be known outside (a trusted key someone outside may hold): then the
/// target must be marked known outside first (`KeyWrappedOut`), or
/// whoever holds the wrapping key would learn a key that still counts as
/// protecting sensitive keys on its own.
pub fn exposes(wrapping: &Key, target: &Key) -> bool {
    target.provenance.never_known_outside() && !wrapping.provenance.never_known_outside()
}

/// The first pair of conflicting capabilities `attributes` has, if any.
///
/// # Errors
/// [`KeyPolicyError::Conflict`].
pub fn check_conflicts(attributes: &KeyAttributes) -> Result<(), KeyPolicyError> {
    match CONFLICTS
        .iter()
        .find(|(a, b)| attributes.flag(*a) && attributes.flag(*b))
    {
        Some((a, b)) => Err(KeyPolicyError::Conflict(*a, *b)),
        None => Ok(()),
    }
}

/// Whether a new key of `spec` with `attributes` and `provenance` may be
/// created: a supported type, label and id within limits, not trusted, no
/// conflicting capabilities, and a provenance that fits its origin.
///
/// # Errors
/// [`Rejection::InvalidKeySpec`], [`Rejection::InvalidKey`] or
/// [`Rejection::KeyPolicy`].
pub fn check_new_key(
    spec: KeySpec,
    attributes: &KeyAttributes,
    provenance: &KeyProvenance,
) -> Result<(), Rejection> {
    if !spec.is_valid() {
        return Err(Rejection::InvalidKeySpec);
    }
    if !attributes.is_within_limits() {
        return Err(Rejection::KeyInvalid(KeyDefect::AttributeTooLong));
    }
    if attributes.trusted {
        return Err(Rejection::KeyPolicy(KeyPolicyError::CreatedTrusted));
    }
    if provenance.public_only() && !spec.is_asymmetric() {
        return Err(Rejection::KeyPolicy(KeyPolicyError::InconsistentProvenance));
    }
    check_public_only(spec, attributes, provenance).map_err(Rejection::KeyPolicy)?;
    check_conflicts(attributes).map_err(Rejection::KeyPolicy)?;
    if !provenance_fits(attributes, provenance) {
        return Err(Rejection::KeyPolicy(KeyPolicyError::InconsistentProvenance));
    }
    Ok(())
}

/// Whether a new key's provenance fits its origin and attributes. An
/// unwrapped key's claims come from its wrapped form, which only the node
/// that unwrapped it saw; they can only be as strong as the key's own
/// attributes.
fn provenance_fits(attributes: &KeyAttributes, p: &KeyProvenance) -> bool {
    let within = (!p.always_sensitive || attributes.sensitive)
        && (!p.never_extractable || !attributes.extractable);
    let by_origin = match p.origin {
        KeyOrigin::Generated => *p == KeyProvenance::generated(attributes),
        KeyOrigin::Imported | KeyOrigin::Derived | KeyOrigin::PublicImported => {
            *p == KeyProvenance::known_outside(p.origin)
        }
        KeyOrigin::Unwrapped => !p.never_extractable && (p.local || !p.always_sensitive),
    };
    within && by_origin
}

/// Whether the owner may give `key` this certificate (or, empty, remove
/// it): only a pair has one, of at most [`MAX_CERTIFICATE_LEN`] bytes, and a
/// trusted key's are frozen as its other attributes are. That it certifies
/// the key's public key is the node's check of the bytes it is handed.
///
/// # Errors
/// The [`Rejection`] of the first rule that refuses.
pub fn check_certificate(key: &Key, certificate: &[u8]) -> Result<(), Rejection> {
    if key.attributes.trusted {
        return Err(Rejection::KeyPolicy(KeyPolicyError::TrustedKeyFrozen(
            key.id,
        )));
    }
    if !certificate.is_empty() && !key.spec.is_asymmetric() {
        return Err(Rejection::KeyInvalid(KeyDefect::CertificateWithoutPair));
    }
    if certificate.len() > MAX_CERTIFICATE_LEN {
        return Err(Rejection::KeyInvalid(KeyDefect::CertificateTooLong));
    }
    Ok(())
}

/// The attributes after the owner's change `change` to a key that has
/// `current`.
///
/// # Errors
/// [`KeyPolicyError::TrustedKeyFrozen`] for a trusted key,
/// [`Rejection::AttributeRatchet`] for a one-way attribute moved back,
/// [`KeyPolicyError::Conflict`], [`Rejection::InvalidKey`] for a label or id
/// too long. `trusted` itself is the crypto officer's
/// ([`State::apply`](crate::State::apply) checks the role).
pub fn changed_by_owner(key: &Key, change: &KeyAttribute) -> Result<KeyAttributes, Rejection> {
    let current = &key.attributes;
    if current.trusted {
        return Err(Rejection::KeyPolicy(KeyPolicyError::TrustedKeyFrozen(
            key.id,
        )));
    }
    let mut next = current.clone();
    match change {
        KeyAttribute::Label(l) => next.label = l.clone(),
        KeyAttribute::Id(id) => next.id = id.clone(),
        KeyAttribute::Certificate(certificate) => check_certificate(key, certificate)?,
        KeyAttribute::Flag(flag, value) => {
            let backwards = match flag {
                KeyFlag::Sensitive => current.sensitive && !*value,
                KeyFlag::WrapWithTrusted => current.wrap_with_trusted && !*value,
                KeyFlag::Extractable => !current.extractable && *value,
                _ => false,
            };
            if backwards {
                return Err(Rejection::AttributeRatchet(*flag));
            }
            next.set_flag(*flag, *value);
        }
    }
    if !next.is_within_limits() {
        return Err(Rejection::KeyInvalid(KeyDefect::AttributeTooLong));
    }
    check_public_only(key.spec, &next, &key.provenance).map_err(Rejection::KeyPolicy)?;
    check_conflicts(&next).map_err(Rejection::KeyPolicy)?;
    Ok(next)
}

/// What a wrapping of `key` carries besides the material.
pub fn carried(key: &Key) -> CarriedAttributes {
    CarriedAttributes {
        spec: key.spec,
        attributes: KeyAttributes {
            label: String::new(),
            id: Vec::new(),
            trusted: false,
            ..key.attributes.clone()
        },
        provenance: key.provenance,
    }
}

/// The attributes and provenance of the key unwrapped from a wrapping that
/// carried `carried`, under `unwrapping`, asked for as `spec` with
/// `template`.
///
/// The template gives label and id. Its usages, if it names any, must be
/// among the carried ones (none named: the carried ones); its one-way
/// attributes may only be stricter than the carried ones. `public_wrap` is
/// whether anyone with the public key could have made the wrapping
/// (RSA-OAEP).
///
/// # Errors
/// [`KeyPolicyError::UnwrapSpecMismatch`], [`KeyPolicyError::UnwrapWidens`]
/// or [`KeyPolicyError::CreatedTrusted`].
pub fn unwrapped(
    carried: &CarriedAttributes,
    unwrapping: &Key,
    public_wrap: bool,
    spec: KeySpec,
    template: &KeyAttributes,
) -> Result<(KeyAttributes, KeyProvenance), KeyPolicyError> {
    if spec != carried.spec {
        return Err(KeyPolicyError::UnwrapSpecMismatch {
            wrapped: carried.spec,
            asked: spec,
        });
    }
    if template.trusted {
        return Err(KeyPolicyError::CreatedTrusted);
    }
    let from = &carried.attributes;
    let mut attributes = KeyAttributes {
        label: template.label.clone(),
        id: template.id.clone(),
        sensitive: from.sensitive || template.sensitive,
        wrap_with_trusted: from.wrap_with_trusted || template.wrap_with_trusted,
        extractable: from.extractable && template.extractable,
        trusted: false,
        ..from.clone()
    };
    let narrowed = USAGES.iter().any(|u| template.flag(*u));
    if narrowed {
        for usage in USAGES {
            let asked = template.flag(usage);
            if asked && !from.flag(usage) {
                return Err(KeyPolicyError::UnwrapWidens(usage));
            }
            attributes.set_flag(usage, asked);
        }
    }
    // The wrapping proves the material never left only when nobody
    // outside could have made it: a symmetric key never known outside.
    let proven = !public_wrap && unwrapping.provenance.never_known_outside();
    let p = &carried.provenance;
    let provenance = KeyProvenance {
        origin: KeyOrigin::Unwrapped,
        local: proven && p.local,
        always_sensitive: proven && p.local && p.always_sensitive,
        never_extractable: false,
    };
    Ok((attributes, provenance))
}
