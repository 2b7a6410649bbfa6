//! Interoperability with an independent implementation: the OpenSSL 3
//! command line, run in a temporary directory per test.

use crate::common::{carried, hex, key, sign_input, Ossl, RSA_2048, SPECS};
use crate::roundtrip::sign_applies;
use hsm_crypto::*;

const MESSAGE: &[u8] = b"interop message: sign me, verify me\n";

fn md(mechanism: SignMechanism) -> &'static str {
    use SignMechanism as M;
    match mechanism {
        M::RsaPkcs1v15Sha256
        | M::RsaPssSha256
        | M::EcdsaSha256
        | M::HmacSha256
        | M::EcdsaPrehashed
        | M::RsaPkcs1v15Raw
        | M::RsaPssSha256Prehashed => "-sha256",
        M::RsaPkcs1v15Sha384 | M::RsaPssSha384 | M::EcdsaSha384 | M::HmacSha384 => "-sha384",
        M::RsaPssSha384Prehashed => "-sha384",
        M::RsaPkcs1v15Sha512 | M::RsaPssSha512 | M::HmacSha512 | M::RsaPssSha512Prehashed => {
            "-sha512"
        }
        M::Ed25519 => "",
    }
}

fn is_pss(mechanism: SignMechanism) -> bool {
    matches!(
        mechanism,
        SignMechanism::RsaPssSha256
            | SignMechanism::RsaPssSha384
            | SignMechanism::RsaPssSha512
            | SignMechanism::RsaPssSha256Prehashed
            | SignMechanism::RsaPssSha384Prehashed
            | SignMechanism::RsaPssSha512Prehashed
    )
}

/// Asks OpenSSL whether `sig` is a valid signature of `MESSAGE`.
fn openssl_verifies(o: &Ossl, public: &PublicKey, mechanism: SignMechanism, sig: &[u8]) -> bool {
    let pem = o.write("pub.pem", public.to_pem());
    let msg = o.write("msg.bin", MESSAGE);
    let sig = o.write("sig.bin", sig);
    let (ok, stdout, _) = if mechanism == SignMechanism::Ed25519 {
        o.try_run(&[
            "pkeyutl", "-verify", "-pubin", "-inkey", &pem, "-rawin", "-in", &msg, "-sigfile", &sig,
        ])
    } else {
        let mut args = vec!["dgst", md(mechanism), "-verify", &pem, "-signature", &sig];
        if is_pss(mechanism) {
            args.extend([
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:digest",
            ]);
        }
        args.push(&msg);
        o.try_run(&args)
    };
    let says_ok = String::from_utf8_lossy(&stdout).contains("Verified");
    ok && says_ok
}

/// OpenSSL signs `MESSAGE` with the PKCS#8 DER private key at `key_path`.
fn openssl_signs(o: &Ossl, key_path: &str, mechanism: SignMechanism) -> Vec<u8> {
    let msg = o.write("msg.bin", MESSAGE);
    let out = o.path("sig.out").to_str().expect("path").to_owned();
    if mechanism == SignMechanism::Ed25519 {
        o.run(&[
            "pkeyutl", "-sign", "-inkey", key_path, "-keyform", "DER", "-rawin", "-in", &msg,
            "-out", &out,
        ]);
    } else {
        let mut args = vec!["dgst", md(mechanism), "-sign", key_path, "-keyform", "DER"];
        if is_pss(mechanism) {
            args.extend([
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:digest",
            ]);
        }
        args.extend(["-out", &out, &msg]);
        o.run(&args);
    }
    o.read("sig.out")
}

/// OpenSSL generates a private key of `spec`; returns its PKCS#8 DER path.
fn openssl_genpkey(o: &Ossl, spec: KeySpec, name: &str) -> String {
    let path = o.path(name).to_str().expect("path").to_owned();
    let algorithm: &[&str] = match spec {
        KeySpec::Rsa { .. } => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        KeySpec::EcP256 => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        KeySpec::EcP384 => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
        KeySpec::EcSecp256k1 => &[
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:secp256k1",
        ],
        KeySpec::Ed25519 => &["-algorithm", "ED25519"],
        KeySpec::X25519 => &["-algorithm", "X25519"],
        _ => panic!("openssl_genpkey: {spec:?}"),
    };
    // OpenSSL 3.0 writes RSA and EC keys as PKCS#1 / SEC 1 in DER, but as
    // PKCS#8 in PEM; convert that PEM to PKCS#8 DER.
    let pem = o.path("genpkey.pem").to_str().expect("path").to_owned();
    let mut args = vec!["genpkey"];
    args.extend_from_slice(algorithm);
    args.extend(["-out", &pem]);
    o.run(&args);
    o.run(&[
        "pkcs8", "-topk8", "-nocrypt", "-in", &pem, "-outform", "DER", "-out", &path,
    ]);
    path
}

/// The SubjectPublicKeyInfo DER OpenSSL computes for a PKCS#8 DER file.
fn openssl_public_der(o: &Ossl, key_path: &str) -> Vec<u8> {
    let out = o.path("pub.der").to_str().expect("path").to_owned();
    o.run(&[
        "pkey", "-inform", "DER", "-in", key_path, "-pubout", "-outform", "DER", "-out", &out,
    ]);
    o.read("pub.der")
}

#[test]
fn our_signatures_verify_in_openssl() {
    let mut checked = 0;
    for spec in SPECS {
        let k = key(spec);
        let Some(public) = k.public_key() else {
            continue;
        };
        for &mechanism in SignMechanism::ALL {
            if !sign_applies(spec, mechanism) {
                continue;
            }
            let o = Ossl::new();
            let sig = k
                .sign(mechanism, &sign_input(mechanism, MESSAGE))
                .expect("sign");
            assert!(
                openssl_verifies(&o, public, mechanism, &sig),
                "{spec:?} {mechanism}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 30 + 9 + 1);
}

#[test]
fn openssl_refuses_a_tampered_signature_of_ours() {
    // The harness itself can fail.
    for (spec, mechanism) in [
        (RSA_2048, SignMechanism::RsaPssSha256),
        (KeySpec::EcP256, SignMechanism::EcdsaSha384),
        (KeySpec::Ed25519, SignMechanism::Ed25519),
    ] {
        let o = Ossl::new();
        let k = key(spec);
        let mut sig = k.sign(mechanism, MESSAGE).expect("sign");
        let mid = sig.len() / 2;
        sig[mid] ^= 0x10;
        assert!(
            !openssl_verifies(&o, k.public_key().expect("pk"), mechanism, &sig),
            "{spec:?}"
        );
    }
}

#[test]
fn openssl_signatures_verify_with_imported_keys() {
    let mut checked = 0;
    for spec in [
        RSA_2048,
        KeySpec::EcP256,
        KeySpec::EcP384,
        KeySpec::EcSecp256k1,
        KeySpec::Ed25519,
    ] {
        let o = Ossl::new();
        let key_path = openssl_genpkey(&o, spec, "key.der");
        let der = std::fs::read(&key_path).expect("read key");
        let ours = LoadedKey::parse(spec, &der).expect("import openssl key");
        let theirs = PublicKey::from_der(&openssl_public_der(&o, &key_path)).expect("spki");
        assert_eq!(
            Some(&theirs),
            ours.public_key(),
            "{spec:?}: same public key"
        );
        for &mechanism in SignMechanism::ALL {
            if !sign_applies(spec, mechanism) {
                continue;
            }
            let sig = openssl_signs(&o, &key_path, mechanism);
            let input = sign_input(mechanism, MESSAGE);
            assert!(
                ours.verify(mechanism, &input, &sig).expect("verify"),
                "{spec:?} {mechanism}"
            );
            assert!(theirs.verify(mechanism, &input, &sig).expect("verify"));
            let mut bad = sig.clone();
            bad[4] ^= 0x20;
            assert!(!theirs.verify(mechanism, &input, &bad).expect("verify"));
            let other = sign_input(mechanism, b"other");
            assert!(!theirs.verify(mechanism, &other, &sig).expect("verify"));
            checked += 1;
        }
    }
    assert_eq!(checked, 10 + 9 + 1);
}

/// ECDSA over a caller's hash of any usual length (SHA-1 to SHA-512, on
/// every curve: shorter than the order, as long, longer) verifies in
/// OpenSSL as a signature of the message with that hash.
#[test]
fn ecdsa_over_a_hash_of_any_length_verifies_in_openssl() {
    let mut checked = 0;
    for spec in [KeySpec::EcP256, KeySpec::EcP384, KeySpec::EcSecp256k1] {
        let k = key(spec);
        let pem_public = k.public_key().expect("public").to_pem();
        for (flag, hash) in [
            ("-sha1", openssl_hash("sha1")),
            ("-sha256", digest(DigestAlgorithm::Sha256, MESSAGE)),
            ("-sha384", digest(DigestAlgorithm::Sha384, MESSAGE)),
            ("-sha512", digest(DigestAlgorithm::Sha512, MESSAGE)),
        ] {
            let o = Ossl::new();
            let sig = k.sign(SignMechanism::EcdsaPrehashed, &hash).expect("sign");
            let pem = o.write("pub.pem", &pem_public);
            let msg = o.write("msg.bin", MESSAGE);
            let sig = o.write("sig.bin", sig);
            let (ok, stdout, _) =
                o.try_run(&["dgst", flag, "-verify", &pem, "-signature", &sig, &msg]);
            assert!(
                ok && String::from_utf8_lossy(&stdout).contains("Verified"),
                "{spec:?} {flag}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 12);
}

/// Raw PKCS#1 v1.5 over any bytes is what `openssl pkeyutl -sign` makes
/// without a digest: the same bytes both ways (the padding is
/// deterministic), and each verifies the other's.
#[test]
fn raw_pkcs1_matches_openssl_pkeyutl() {
    let o = Ossl::new();
    let key_path = openssl_genpkey(&o, RSA_2048, "key.der");
    let der = std::fs::read(&key_path).expect("read key");
    let ours = LoadedKey::parse(RSA_2048, &der).expect("import");
    // A SHA-1 DigestInfo, as pkcs11-tool and old TLS stacks bring.
    let mut input = hex_decode("3021300906052b0e03021a05000414");
    input.extend(openssl_hash("sha1"));
    let data = o.write("data.bin", &input);
    let out = o.path("sig.bin").to_str().expect("path").to_owned();
    o.run(&[
        "pkeyutl",
        "-sign",
        "-inkey",
        &key_path,
        "-keyform",
        "DER",
        "-pkeyopt",
        "rsa_padding_mode:pkcs1",
        "-in",
        &data,
        "-out",
        &out,
    ]);
    let theirs = o.read("sig.bin");
    let mine = ours
        .sign(SignMechanism::RsaPkcs1v15Raw, &input)
        .expect("sign");
    assert_eq!(mine, theirs);
    assert!(ours
        .public_key()
        .expect("public")
        .verify(SignMechanism::RsaPkcs1v15Raw, &input, &theirs)
        .expect("verify"));
    let pem = o.write("pub.pem", ours.public_key().expect("public").to_pem());
    let sig = o.write("mine.bin", &mine);
    let (ok, _, err) = o.try_run(&[
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        &pem,
        "-pkeyopt",
        "rsa_padding_mode:pkcs1",
        "-in",
        &data,
        "-sigfile",
        &sig,
    ]);
    assert!(ok, "{err}");
}

fn hex_decode(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// `openssl dgst -NAME -binary` of [`MESSAGE`].
fn openssl_hash(name: &str) -> Vec<u8> {
    let o = Ossl::new();
    let msg = o.write("msg.bin", MESSAGE);
    let out = o.path("hash.bin").to_str().expect("path").to_owned();
    o.run(&["dgst", &format!("-{name}"), "-binary", "-out", &out, &msg]);
    o.read("hash.bin")
}

#[test]
fn openssl_reads_our_private_keys() {
    for spec in SPECS.into_iter().filter(|s| s.is_asymmetric()) {
        let o = Ossl::new();
        let k = key(spec);
        let path = o.write("ours.der", k.material().secret());
        let public = openssl_public_der(&o, &path);
        assert_eq!(
            public.as_slice(),
            k.public_key().expect("pk").der(),
            "{spec:?}"
        );
    }
}

#[test]
fn rsa_oaep_interoperates_both_ways() {
    let oaep = [
        "-pkeyopt",
        "rsa_padding_mode:oaep",
        "-pkeyopt",
        "rsa_oaep_md:sha256",
        "-pkeyopt",
        "rsa_mgf1_md:sha256",
    ];
    for spec in [RSA_2048, KeySpec::Rsa { bits: 4096 }] {
        let k = key(spec);
        let o = Ossl::new();
        let pem = o.write("pub.pem", k.public_key().expect("pk").to_pem());
        let priv_path = o.write("key.der", k.material().secret());
        for label in [&b""[..], b"label bytes"] {
            let label_opt = format!("rsa_oaep_label:{}", hex(label));
            let mut extra: Vec<&str> = oaep.to_vec();
            if !label.is_empty() {
                extra.extend(["-pkeyopt", &label_opt]);
            }
            // OpenSSL encrypts, we decrypt.
            let pt = o.write("pt.bin", b"a secret for the hsm");
            let ct = o.path("ct.bin").to_str().expect("path").to_owned();
            let mut args = vec![
                "pkeyutl", "-encrypt", "-pubin", "-inkey", &pem, "-in", &pt, "-out", &ct,
            ];
            args.extend(&extra);
            o.run(&args);
            let plain = k
                .decrypt(EncryptMechanism::RsaOaepSha256, &o.read("ct.bin"), label)
                .expect("decrypt openssl ciphertext");
            assert_eq!(plain.as_slice(), b"a secret for the hsm");
            // We encrypt, OpenSSL decrypts.
            let ours = k
                .encrypt(EncryptMechanism::RsaOaepSha256, b"from us", label)
                .expect("enc");
            let ct = o.write("ours.bin", &ours);
            let out = o.path("dec.bin").to_str().expect("path").to_owned();
            let mut args = vec![
                "pkeyutl", "-decrypt", "-inkey", &priv_path, "-keyform", "DER", "-in", &ct, "-out",
                &out,
            ];
            args.extend(&extra);
            o.run(&args);
            assert_eq!(o.read("dec.bin"), b"from us");
        }
        // The body of an RSA-OAEP wrapped key is the raw key under OAEP,
        // with the format's label: OpenSSL opens it with the private key.
        let target = generate(KeySpec::Aes { bits: 256 }).expect("generate");
        let wrapped = k
            .wrap_key(WrapMechanism::RsaOaepSha256, &carried(&target), &target)
            .expect("wrap");
        let parts = WrappedKey::parse(&wrapped).expect("parse");
        let mut label = b"hsm-cluster wrapped key v1".to_vec();
        label.extend_from_slice(blake3::hash(parts.prefix).as_bytes());
        let label_opt = format!("rsa_oaep_label:{}", hex(&label));
        let ct = o.write("wrapped.bin", parts.body);
        let out = o.path("unwrapped.bin").to_str().expect("path").to_owned();
        let mut args = vec![
            "pkeyutl", "-decrypt", "-inkey", &priv_path, "-keyform", "DER", "-in", &ct, "-out",
            &out, "-pkeyopt", &label_opt,
        ];
        args.extend(oaep);
        o.run(&args);
        assert_eq!(o.read("unwrapped.bin"), target.secret());
    }
}

#[test]
fn ecdh_derives_what_openssl_derives() {
    let context = b"session 42";
    for spec in [KeySpec::X25519, KeySpec::EcP256, KeySpec::EcP384] {
        let o = Ossl::new();
        let ours = key(spec);
        let our_pem = o.write("ours.pem", ours.public_key().expect("pk").to_pem());
        let peer_path = openssl_genpkey(&o, spec, "peer.der");
        let peer_public = PublicKey::from_der(&openssl_public_der(&o, &peer_path)).expect("spki");
        // OpenSSL's raw shared secret.
        let secret_path = o.path("secret.bin").to_str().expect("path").to_owned();
        o.run(&[
            "pkeyutl",
            "-derive",
            "-inkey",
            &peer_path,
            "-keyform",
            "DER",
            "-peerkey",
            &our_pem,
            "-out",
            &secret_path,
        ]);
        let secret = o.read("secret.bin");
        assert_eq!(secret.len(), if spec == KeySpec::EcP384 { 48 } else { 32 });
        // HKDF-SHA-256 over it, by OpenSSL.
        let okm_path = o.path("okm.bin").to_str().expect("path").to_owned();
        let hexkey = format!("hexkey:{}", hex(&secret));
        let hexinfo = format!("hexinfo:{}", hex(context));
        o.run(&[
            "kdf",
            "-keylen",
            "32",
            "-kdfopt",
            "digest:SHA256",
            "-kdfopt",
            &hexkey,
            "-kdfopt",
            &hexinfo,
            "-binary",
            "-out",
            &okm_path,
            "HKDF",
        ]);
        let expected = o.read("okm.bin");
        let out = KeySpec::Aes { bits: 256 };
        let derived = ours
            .derive(DeriveMechanism::EcdhHkdfSha256, &peer_public, context, out)
            .expect("derive");
        assert_eq!(derived.secret(), expected.as_slice(), "{spec:?} hkdf");
        // The BLAKE3 derivation, computed here as documented.
        let mut hasher = blake3::Hasher::new_derive_key(BLAKE3_DERIVE_CONTEXT);
        hasher.update(&(context.len() as u64).to_le_bytes());
        hasher.update(context);
        hasher.update(&secret);
        let mut expected = [0u8; 32];
        hasher.finalize_xof().fill(&mut expected);
        let derived = ours
            .derive(DeriveMechanism::EcdhBlake3, &peer_public, context, out)
            .expect("derive");
        assert_eq!(derived.secret(), expected.as_slice(), "{spec:?} blake3");
        // The raw secret (leftmost bytes) and ANSI X9.63 over it, by
        // OpenSSL.
        let derived = ours
            .derive(
                DeriveMechanism::EcdhRaw,
                &peer_public,
                b"",
                KeySpec::Aes { bits: 128 },
            )
            .expect("derive raw");
        assert_eq!(derived.secret(), &secret[..16], "{spec:?} raw");
        let x963_path = o.path("x963.bin").to_str().expect("path").to_owned();
        o.run(&[
            "kdf",
            "-keylen",
            "48",
            "-kdfopt",
            "digest:SHA256",
            "-kdfopt",
            &hexkey,
            "-kdfopt",
            &hexinfo,
            "-binary",
            "-out",
            &x963_path,
            "X963KDF",
        ]);
        let derived = ours
            .derive(
                DeriveMechanism::EcdhX963Sha256,
                &peer_public,
                context,
                KeySpec::GenericSecret { bytes: 48 },
            )
            .expect("derive x9.63");
        assert_eq!(
            derived.secret(),
            o.read("x963.bin").as_slice(),
            "{spec:?} x9.63"
        );
        // And OpenSSL's key, imported, derives the same from our public key.
        let peer =
            LoadedKey::parse(spec, &std::fs::read(&peer_path).expect("read")).expect("import");
        let back = peer
            .derive(
                DeriveMechanism::EcdhHkdfSha256,
                ours.public_key().expect("pk"),
                context,
                out,
            )
            .expect("derive");
        assert_eq!(back.secret(), o.read("okm.bin").as_slice());
    }
}

#[test]
fn key_wrap_with_padding_matches_openssl() {
    // The body of an aes-key-wrap-pad wrapped key is RFC 5649 under the
    // wrapping subkey, over the digest of the header and the material.
    let p256 = key(KeySpec::EcP256).material().clone();
    for bits in [128u16, 192, 256] {
        let kek = LoadedKey::generate(KeySpec::Aes { bits }).expect("kek");
        let cipher = format!("-id-aes{bits}-wrap-pad");
        let kek_hex = hex(&wrapping_subkey(kek.material().secret()));
        for target in [
            generate(KeySpec::GenericSecret { bytes: 1 }).expect("g"),
            generate(KeySpec::GenericSecret { bytes: 7 }).expect("g"),
            generate(KeySpec::GenericSecret { bytes: 20 }).expect("g"),
            generate(KeySpec::Aes { bits: 256 }).expect("g"),
            p256.clone(),
        ] {
            let o = Ossl::new();
            let ours = kek
                .wrap_key(WrapMechanism::AesKeyWrapPad, &carried(&target), &target)
                .expect("wrap");
            let parts = WrappedKey::parse(&ours).expect("parse");
            let mut plain = blake3::hash(parts.prefix).as_bytes().to_vec();
            plain.extend_from_slice(target.secret());
            let input = o.write("in.bin", &plain);
            let out = o.path("out.bin").to_str().expect("path").to_owned();
            o.run(&[
                "enc", &cipher, "-K", &kek_hex, "-iv", "A65959A6", "-in", &input, "-out", &out,
            ]);
            assert_eq!(
                parts.body,
                o.read("out.bin"),
                "aes-{bits} {:?}",
                target.spec()
            );
            let back = o.path("back.bin").to_str().expect("path").to_owned();
            o.run(&[
                "enc", "-d", &cipher, "-K", &kek_hex, "-iv", "A65959A6", "-in", &out, "-out", &back,
            ]);
            assert_eq!(o.read("back.bin"), plain);
        }
    }
}

#[test]
fn hmac_and_digests_match_openssl() {
    let o = Ossl::new();
    let msg = o.write("msg.bin", MESSAGE);
    let k = LoadedKey::generate(KeySpec::GenericSecret { bytes: 77 }).expect("generate");
    let hexkey = format!("hexkey:{}", hex(k.material().secret()));
    for (mechanism, digest_name) in [
        (SignMechanism::HmacSha256, "SHA256"),
        (SignMechanism::HmacSha384, "SHA384"),
        (SignMechanism::HmacSha512, "SHA512"),
    ] {
        let out = o.path("tag.bin").to_str().expect("path").to_owned();
        o.run(&[
            "mac",
            "-digest",
            digest_name,
            "-macopt",
            &hexkey,
            "-in",
            &msg,
            "-binary",
            "-out",
            &out,
            "HMAC",
        ]);
        assert_eq!(
            k.sign(mechanism, MESSAGE).expect("hmac"),
            o.read("tag.bin"),
            "{mechanism}"
        );
    }
    for (alg, flag) in [
        (DigestAlgorithm::Sha256, "-sha256"),
        (DigestAlgorithm::Sha384, "-sha384"),
        (DigestAlgorithm::Sha512, "-sha512"),
    ] {
        let out = o.run(&["dgst", flag, "-binary", &msg]);
        assert_eq!(digest(alg, MESSAGE), out, "{alg}");
    }
}
