//! Three `hsm-node` processes on loopback, driven through the SDK:
//! activation, users and sessions, every key type and operation (checked
//! against OpenSSL where a standard format is promised), and the lockout
//! across nodes.

mod procs;

use hsm_client::{Client, Error};
use hsm_proto::client::{ErrorKind, KeyFilter, Secret};
use hsm_proto::mechanism::{
    DeriveMechanism, DigestAlgorithm, EncryptMechanism, SignMechanism, WrapMechanism,
};
use hsm_proto::{KeyAttribute, KeyAttributes, KeyFlag, KeyId, KeySpec, Role};
use procs::{openssl, user, Cluster, ADMIN_PASSWORD};

fn kind<T: std::fmt::Debug>(r: Result<T, Error>) -> ErrorKind {
    match r {
        Err(e) => e
            .kind()
            .unwrap_or_else(|| panic!("not a server refusal: {e}")),
        Ok(v) => panic!("expected a refusal, got {v:?}"),
    }
}

fn signing() -> KeyAttributes {
    KeyAttributes {
        sign: true,
        verify: true,
        ..KeyAttributes::default()
    }
}

fn labelled(label: &str, base: KeyAttributes) -> KeyAttributes {
    KeyAttributes {
        label: label.into(),
        ..base
    }
}

async fn logged_in(cluster: &Cluster, name: &str, password: &str) -> Client {
    let c = cluster.client().await;
    c.login(user(name), password).await.expect("login");
    c
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Verifies `sig` over `msg` with OpenSSL and the exported PEM.
fn openssl_verifies(pem: &str, mechanism: SignMechanism, msg: &[u8], sig: &[u8]) -> bool {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("pub.pem"), pem).expect("write");
    std::fs::write(dir.path().join("msg"), msg).expect("write");
    std::fs::write(dir.path().join("sig"), sig).expect("write");
    use SignMechanism as M;
    let digest = match mechanism {
        M::RsaPkcs1v15Sha256 | M::RsaPssSha256 | M::EcdsaSha256 => "-sha256",
        // Only whole-message forms are verified here (the hashed forms as
        // the whole-message form they equal).
        M::RsaPkcs1v15Sha384 | M::RsaPssSha384 | M::EcdsaSha384 => "-sha384",
        M::RsaPkcs1v15Sha512 | M::RsaPssSha512 => "-sha512",
        M::Ed25519 => {
            let (ok, out) = openssl(
                dir.path(),
                &[
                    "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-in", "msg",
                    "-sigfile", "sig",
                ],
            );
            assert!(ok || out.contains("Failure"), "openssl: {out}");
            return ok;
        }
        other => panic!("not a public-key mechanism: {other}"),
    };
    let mut args = vec!["dgst", digest, "-verify", "pub.pem", "-signature", "sig"];
    if matches!(
        mechanism,
        M::RsaPssSha256 | M::RsaPssSha384 | M::RsaPssSha512
    ) {
        args.extend([
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:-1",
        ]);
    }
    args.push("msg");
    let (ok, out) = openssl(dir.path(), &args);
    assert!(ok || out.contains("Verification failure"), "openssl: {out}");
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn activation_users_every_key_type_and_operation() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;

    // Before activation: admin is a precrypto officer that can only change
    // its own password.
    let pre = logged_in(&cluster, "admin", ADMIN_PASSWORD).await;
    let info = pre.cluster_info().await.expect("info");
    assert!(!info.activated);
    assert_eq!(info.members.len(), 3);
    let zones: Vec<&str> = info.members.iter().map(|m| m.zone.as_str()).collect();
    assert_eq!(zones, ["zone-a", "zone-b", "zone-c"]);
    assert_eq!(
        kind(
            pre.create_user(user("alice"), Role::Cu, "alice-password-1")
                .await
        ),
        ErrorKind::PermissionDenied
    );
    // Too short a password is refused before anything is written.
    assert_eq!(
        kind(pre.change_own_password(ADMIN_PASSWORD, "short").await),
        ErrorKind::InvalidInput
    );

    let admin = cluster.activate("admin-password-1").await;
    assert!(admin.cluster_info().await.expect("info").activated);
    // Activation changed the password: the precrypto session is over.
    assert_eq!(kind(pre.list_users().await), ErrorKind::Unauthenticated);

    for (name, role) in [
        ("alice", Role::Cu),
        ("bob", Role::Cu),
        ("carl", Role::Co),
        ("audrey", Role::Cu),
    ] {
        admin
            .create_user(user(name), role, format!("{name}-password-1"))
            .await
            .expect("create user");
    }
    assert_eq!(
        kind(
            admin
                .create_user(user("bob"), Role::Cu, "another-password")
                .await
        ),
        ErrorKind::Conflict
    );
    let users = admin.list_users().await.expect("list");
    let names: Vec<String> = users.iter().map(|u| u.username.to_string()).collect();
    assert_eq!(names, ["admin", "alice", "audrey", "bob", "carl"]);
    assert_eq!(
        kind(
            cluster
                .client()
                .await
                .login(user("alice"), "wrong-password")
                .await
        ),
        ErrorKind::LoginFailed
    );
    assert_eq!(
        kind(
            cluster
                .client()
                .await
                .login(user("nobody"), "wrong-password")
                .await
        ),
        ErrorKind::LoginFailed
    );

    let alice = logged_in(&cluster, "alice", "alice-password-1").await;
    let bob = logged_in(&cluster, "bob", "bob-password-1").await;
    let carl = logged_in(&cluster, "carl", "carl-password-1").await;
    // A crypto officer never uses keys; a crypto user never manages users.
    assert_eq!(
        kind(
            admin
                .generate_key(KeySpec::Aes { bits: 256 }, KeyAttributes::default(), false)
                .await
        ),
        ErrorKind::PermissionDenied
    );
    assert_eq!(kind(alice.list_users().await), ErrorKind::PermissionDenied);

    // Every key type.
    let specs = [
        KeySpec::Aes { bits: 128 },
        KeySpec::Aes { bits: 192 },
        KeySpec::Aes { bits: 256 },
        KeySpec::GenericSecret { bytes: 1 },
        KeySpec::GenericSecret { bytes: 32 },
        KeySpec::GenericSecret { bytes: 800 },
        KeySpec::EcP256,
        KeySpec::EcP384,
        KeySpec::EcSecp256k1,
        KeySpec::Ed25519,
        KeySpec::X25519,
        KeySpec::Rsa { bits: 2048 },
        KeySpec::Rsa { bits: 3072 },
        KeySpec::Rsa { bits: 4096 },
    ];
    let mut keys = Vec::new();
    for (i, spec) in specs.into_iter().enumerate() {
        let key = alice
            .generate_key(spec, labelled(&format!("k{i}"), signing()), true)
            .await
            .unwrap_or_else(|e| panic!("generate {spec:?}: {e}"));
        assert_eq!(key.spec, spec);
        assert_eq!(key.owner, user("alice"));
        assert!(key.attributes.sensitive, "sensitive by default");
        assert_eq!(key.public_key.is_empty(), !spec.is_asymmetric());
        keys.push(key);
    }
    assert_eq!(
        kind(
            alice
                .generate_key(KeySpec::Aes { bits: 256 }, labelled("k0", signing()), true)
                .await
        ),
        ErrorKind::Conflict,
        "unique label"
    );
    assert_eq!(
        kind(
            alice
                .generate_key(KeySpec::Aes { bits: 512 }, signing(), false)
                .await
        ),
        ErrorKind::InvalidInput
    );
    let key_of = |spec: KeySpec| keys.iter().find(|k| k.spec == spec).expect("key").id;

    // Signatures in standard formats: the HSM verifies them and so does
    // OpenSSL with the exported public key.
    let msg = b"code to sign".to_vec();
    let cases = [
        (
            KeySpec::Rsa { bits: 2048 },
            SignMechanism::RsaPkcs1v15Sha256,
        ),
        (
            KeySpec::Rsa { bits: 3072 },
            SignMechanism::RsaPkcs1v15Sha384,
        ),
        (
            KeySpec::Rsa { bits: 4096 },
            SignMechanism::RsaPkcs1v15Sha512,
        ),
        (KeySpec::Rsa { bits: 2048 }, SignMechanism::RsaPssSha256),
        (KeySpec::Rsa { bits: 2048 }, SignMechanism::RsaPssSha384),
        (KeySpec::Rsa { bits: 2048 }, SignMechanism::RsaPssSha512),
        (KeySpec::EcP256, SignMechanism::EcdsaSha256),
        (KeySpec::EcP384, SignMechanism::EcdsaSha384),
        (KeySpec::EcP384, SignMechanism::EcdsaSha256),
        (KeySpec::EcSecp256k1, SignMechanism::EcdsaSha256),
        (KeySpec::Ed25519, SignMechanism::Ed25519),
    ];
    for (spec, mechanism) in cases {
        let key = key_of(spec);
        let sig = alice.sign(key, mechanism, msg.clone()).await.expect("sign");
        assert!(alice
            .verify(key, mechanism, msg.clone(), sig.clone())
            .await
            .expect("verify"));
        assert!(!alice
            .verify(key, mechanism, b"other".to_vec(), sig.clone())
            .await
            .expect("verify"));
        let (_, pem) = alice.export_public_key(key).await.expect("export");
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
        assert!(
            openssl_verifies(&pem, mechanism, &msg, &sig),
            "OpenSSL rejects {mechanism} by {spec:?}"
        );
        assert!(!openssl_verifies(&pem, mechanism, b"tampered", &sig));
    }
    assert_eq!(
        kind(
            alice
                .sign(key_of(KeySpec::EcP256), SignMechanism::Ed25519, msg.clone())
                .await
        ),
        ErrorKind::InvalidInput,
        "mechanism that does not fit the key"
    );

    // Many messages in one request, each with its own result: P-256
    // signatures OpenSSL verifies, a prehashed message of the wrong
    // length refused on its own, another user's key refused whole, and a
    // request over the limit refused.
    let p256 = key_of(KeySpec::EcP256);
    let (_, p256_pem) = alice.export_public_key(p256).await.expect("export");
    let many: Vec<Vec<u8>> = (0..150u32).map(|i| format!("m{i}").into_bytes()).collect();
    let sigs = alice
        .sign_many(p256, SignMechanism::EcdsaSha256, many.clone())
        .await;
    assert_eq!(sigs.len(), many.len());
    for (m, sig) in many.iter().zip(&sigs) {
        let sig = sig.as_ref().expect("signed");
        assert!(openssl_verifies(
            &p256_pem,
            SignMechanism::EcdsaSha256,
            m,
            sig
        ));
    }
    let mixed = alice
        .sign_many(
            p256,
            SignMechanism::EcdsaPrehashed,
            vec![vec![7; 32], vec![7; 5], vec![8; 32]],
        )
        .await;
    assert!(mixed[0].is_ok() && mixed[2].is_ok(), "{mixed:?}");
    assert_eq!(
        mixed[1].as_ref().err().and_then(Error::kind),
        Some(ErrorKind::InvalidInput),
        "{mixed:?}"
    );
    let theirs = bob
        .sign_many(p256, SignMechanism::EcdsaSha256, vec![b"x".to_vec(); 3])
        .await;
    assert!(
        theirs
            .iter()
            .all(|r| r.as_ref().err().and_then(Error::kind) == Some(ErrorKind::NotFound)),
        "{theirs:?}"
    );
    let over = alice
        .call(hsm_proto::client::Operation::SignMany {
            key: p256,
            mechanism: SignMechanism::EcdsaSha256,
            messages: vec![b"x".to_vec().into(); hsm_proto::client::MAX_SIGN_MANY + 1],
        })
        .await;
    assert_eq!(kind(over), ErrorKind::InvalidInput);
    // With an RSA key (milliseconds per signature) at most 64 at once.
    let rsa_over = alice
        .call(hsm_proto::client::Operation::SignMany {
            key: key_of(KeySpec::Rsa { bits: 2048 }),
            mechanism: SignMechanism::RsaPssSha256,
            messages: vec![b"x".to_vec().into(); hsm_proto::client::MAX_SIGN_MANY_RSA + 1],
        })
        .await;
    assert_eq!(kind(rsa_over), ErrorKind::InvalidInput);

    // Signatures over a hash the caller computed (PKCS#11's CKM_ECDSA,
    // CKM_RSA_PKCS with a DigestInfo, CKM_RSA_PKCS_PSS): OpenSSL verifies
    // each as a signature of the message itself.
    let sha = |algorithm| {
        let alice = &alice;
        let msg = msg.clone();
        async move { alice.digest(algorithm, msg).await.expect("digest") }
    };
    let mut digest_info = vec![
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    digest_info.extend(sha(DigestAlgorithm::Sha256).await);
    let hashed_cases = [
        (
            KeySpec::EcP256,
            SignMechanism::EcdsaPrehashed,
            sha(DigestAlgorithm::Sha256).await,
            SignMechanism::EcdsaSha256,
        ),
        (
            KeySpec::EcP384,
            SignMechanism::EcdsaPrehashed,
            sha(DigestAlgorithm::Sha384).await,
            SignMechanism::EcdsaSha384,
        ),
        (
            KeySpec::Rsa { bits: 2048 },
            SignMechanism::RsaPkcs1v15Raw,
            digest_info,
            SignMechanism::RsaPkcs1v15Sha256,
        ),
        (
            KeySpec::Rsa { bits: 2048 },
            SignMechanism::RsaPssSha384Prehashed,
            sha(DigestAlgorithm::Sha384).await,
            SignMechanism::RsaPssSha384,
        ),
    ];
    for (spec, mechanism, hash, whole) in hashed_cases {
        let key = key_of(spec);
        let sig = alice
            .sign(key, mechanism, hash.clone())
            .await
            .expect("sign hash");
        assert!(alice
            .verify(key, mechanism, hash.clone(), sig.clone())
            .await
            .expect("verify"));
        assert!(alice
            .verify(key, whole, msg.clone(), sig.clone())
            .await
            .expect("verify"));
        let (_, pem) = alice.export_public_key(key).await.expect("export");
        assert!(
            openssl_verifies(&pem, whole, &msg, &sig),
            "OpenSSL rejects {mechanism} by {spec:?}"
        );
        // The same key rules as for a message: bob has no such key.
        assert_eq!(
            kind(bob.sign(key, mechanism, hash.clone()).await),
            ErrorKind::NotFound
        );
    }
    // A hash of the wrong length is the caller's error, and says so.
    let err = alice
        .sign(
            key_of(KeySpec::Rsa { bits: 2048 }),
            SignMechanism::RsaPssSha256Prehashed,
            vec![0; 20],
        )
        .await
        .expect_err("short hash");
    assert_eq!(err.kind(), Some(ErrorKind::InvalidInput));
    assert!(err.to_string().contains("hash is 20 bytes"), "{err}");
    // A key without the sign attribute signs no hash either.
    let verify_only = alice
        .generate_key(
            KeySpec::EcP256,
            KeyAttributes {
                verify: true,
                ..KeyAttributes::default()
            },
            false,
        )
        .await
        .expect("generate");
    assert_eq!(
        kind(
            alice
                .sign(
                    verify_only.id,
                    SignMechanism::EcdsaPrehashed,
                    sha(DigestAlgorithm::Sha256).await
                )
                .await
        ),
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        kind(
            alice
                .export_public_key(key_of(KeySpec::Aes { bits: 256 }))
                .await
        ),
        ErrorKind::InvalidInput
    );

    // HMAC with an imported (not sensitive) secret, against OpenSSL.
    let secret = b"0123456789abcdef0123456789abcdef".to_vec();
    let hmac_key = alice
        .import_key(
            KeySpec::GenericSecret { bytes: 32 },
            KeyAttributes {
                sensitive: false,
                ..signing()
            },
            Secret::new(secret.clone()),
            false,
        )
        .await
        .expect("import");
    for (mechanism, digest) in [
        (SignMechanism::HmacSha256, "sha256"),
        (SignMechanism::HmacSha384, "sha384"),
        (SignMechanism::HmacSha512, "sha512"),
    ] {
        let tag = alice
            .sign(hmac_key.id, mechanism, msg.clone())
            .await
            .expect("hmac");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("msg"), &msg).expect("write");
        let key_opt = format!("hexkey:{}", hex(&secret));
        let (ok, out) = openssl(
            dir.path(),
            &[
                "dgst",
                &format!("-{digest}"),
                "-mac",
                "HMAC",
                "-macopt",
                &key_opt,
                "msg",
            ],
        );
        assert!(ok, "{out}");
        assert!(out.trim().ends_with(&hex(&tag)), "{out} vs {}", hex(&tag));
        assert!(alice
            .verify(hmac_key.id, mechanism, msg.clone(), tag)
            .await
            .expect("verify"));
    }
    // A key imported sensitive is sensitive from now on, and marked as
    // known outside the cluster (not local, never always sensitive).
    let imported = alice
        .import_key(
            KeySpec::GenericSecret { bytes: 32 },
            signing(),
            Secret::new(secret.clone()),
            false,
        )
        .await
        .expect("import sensitive");
    assert!(imported.attributes.sensitive);
    assert_eq!(
        imported.provenance,
        hsm_client::KeyProvenance::known_outside(hsm_client::KeyOrigin::Imported)
    );

    // AES-GCM with associated data; the HSM picks the IV.
    let enc_attrs = KeyAttributes {
        encrypt: true,
        decrypt: true,
        ..KeyAttributes::default()
    };
    let aes = alice
        .generate_key(KeySpec::Aes { bits: 256 }, enc_attrs.clone(), false)
        .await
        .expect("aes");
    let ct1 = alice
        .encrypt(
            aes.id,
            EncryptMechanism::AesGcm,
            "database master key",
            b"tde".to_vec(),
        )
        .await
        .expect("encrypt");
    let ct2 = alice
        .encrypt(
            aes.id,
            EncryptMechanism::AesGcm,
            "database master key",
            b"tde".to_vec(),
        )
        .await
        .expect("encrypt");
    assert_ne!(ct1[..12], ct2[..12], "a fresh IV each time");
    let pt = alice
        .decrypt(
            aes.id,
            EncryptMechanism::AesGcm,
            ct1.clone(),
            b"tde".to_vec(),
        )
        .await
        .expect("decrypt");
    assert_eq!(pt.expose(), b"database master key");
    assert_eq!(
        kind(
            alice
                .decrypt(
                    aes.id,
                    EncryptMechanism::AesGcm,
                    ct1.clone(),
                    b"other".to_vec()
                )
                .await
        ),
        ErrorKind::InvalidInput
    );
    // Usage flags hold: a signing-only key does not encrypt.
    assert_eq!(
        kind(
            alice
                .encrypt(
                    key_of(KeySpec::Aes { bits: 256 }),
                    EncryptMechanism::AesGcm,
                    "x",
                    vec![]
                )
                .await
        ),
        ErrorKind::PermissionDenied
    );

    // RSA-OAEP: OpenSSL encrypts to the exported key, the HSM decrypts.
    let rsa = alice
        .generate_key(KeySpec::Rsa { bits: 2048 }, enc_attrs.clone(), false)
        .await
        .expect("rsa");
    let (_, pem) = alice.export_public_key(rsa.id).await.expect("export");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("pub.pem"), &pem).expect("write");
    std::fs::write(dir.path().join("pt"), b"wrapped secret").expect("write");
    let (ok, out) = openssl(
        dir.path(),
        &[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            "pub.pem",
            "-in",
            "pt",
            "-out",
            "ct",
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            "rsa_oaep_md:sha256",
            "-pkeyopt",
            "rsa_mgf1_md:sha256",
        ],
    );
    assert!(ok, "{out}");
    let ct = std::fs::read(dir.path().join("ct")).expect("ct");
    let pt = alice
        .decrypt(rsa.id, EncryptMechanism::RsaOaepSha256, ct, vec![])
        .await
        .expect("oaep decrypt");
    assert_eq!(pt.expose(), b"wrapped secret");

    // Digests and random bytes.
    let d = alice
        .digest(DigestAlgorithm::Sha256, b"abc".to_vec())
        .await
        .expect("digest");
    assert_eq!(
        hex(&d),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let d = alice
        .digest(DigestAlgorithm::Blake3, b"abc".to_vec())
        .await
        .expect("digest");
    assert_eq!(d, blake3::hash(b"abc").as_bytes().to_vec());
    for (alg, len) in [(DigestAlgorithm::Sha384, 48), (DigestAlgorithm::Sha512, 64)] {
        assert_eq!(
            alice
                .digest(alg, b"abc".to_vec())
                .await
                .expect("digest")
                .len(),
            len
        );
    }
    let r1 = alice.random(32).await.expect("random");
    let r2 = alice.random(32).await.expect("random");
    assert_eq!(r1.len(), 32);
    assert_ne!(r1, r2);
    assert_eq!(kind(alice.random(1 << 20).await), ErrorKind::InvalidInput);

    // ECDH with X25519 deriving a key in the HSM: the peer derives the same
    // secret on its side (blake3 derivation, checked through HMAC).
    let x = alice
        .generate_key(
            KeySpec::X25519,
            KeyAttributes {
                derive: true,
                ..KeyAttributes::default()
            },
            false,
        )
        .await
        .expect("x25519");
    let peer = x25519_dalek::StaticSecret::random_from_rng(rand::rngs::OsRng);
    let peer_public = x25519_dalek::PublicKey::from(&peer);
    let mut peer_spki = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00,
    ];
    peer_spki.extend_from_slice(peer_public.as_bytes());
    let derived = alice
        .derive_key(
            x.id,
            DeriveMechanism::EcdhBlake3,
            peer_spki,
            b"session 1".to_vec(),
            KeySpec::GenericSecret { bytes: 32 },
            signing(),
            false,
        )
        .await
        .expect("derive");
    let our_public = alice.export_public_key(x.id).await.expect("export").0;
    let our_public: [u8; 32] = our_public[our_public.len() - 32..].try_into().expect("32");
    let shared = peer.diffie_hellman(&x25519_dalek::PublicKey::from(our_public));
    let mut input = (b"session 1".len() as u64).to_le_bytes().to_vec();
    input.extend_from_slice(b"session 1");
    input.extend_from_slice(shared.as_bytes());
    let expected = blake3::derive_key(hsm_crypto::BLAKE3_DERIVE_CONTEXT, &input);
    let tag = alice
        .sign(derived.id, SignMechanism::HmacSha256, msg.clone())
        .await
        .expect("hmac");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("msg"), &msg).expect("write");
    let key_opt = format!("hexkey:{}", hex(&expected));
    let (ok, out) = openssl(
        dir.path(),
        &[
            "dgst", "-sha256", "-mac", "HMAC", "-macopt", &key_opt, "msg",
        ],
    );
    assert!(
        ok && out.trim().ends_with(&hex(&tag)),
        "derived keys differ: {out}"
    );

    // Wrap and unwrap, only as the attributes allow.
    let wrapping = alice
        .generate_key(
            KeySpec::Aes { bits: 256 },
            KeyAttributes {
                wrap: true,
                unwrap: true,
                ..KeyAttributes::default()
            },
            false,
        )
        .await
        .expect("wrapping key");
    for mechanism in [WrapMechanism::AesKeyWrapPad, WrapMechanism::AesGcm] {
        let wrapped = alice
            .wrap_key(wrapping.id, aes.id, mechanism)
            .await
            .expect("wrap");
        let copy = alice
            .unwrap_key(
                wrapping.id,
                mechanism,
                wrapped,
                KeySpec::Aes { bits: 256 },
                enc_attrs.clone(),
                false,
            )
            .await
            .expect("unwrap");
        let pt = alice
            .decrypt(
                copy.id,
                EncryptMechanism::AesGcm,
                ct2.clone(),
                b"tde".to_vec(),
            )
            .await
            .expect("the unwrapped copy decrypts");
        assert_eq!(pt.expose(), b"database master key");
    }
    // A key that may wrap never decrypts (whatever it wrapped would come
    // out as plaintext), from its creation on.
    let dual = alice
        .generate_key(
            KeySpec::Aes { bits: 256 },
            KeyAttributes {
                wrap: true,
                decrypt: true,
                ..KeyAttributes::default()
            },
            false,
        )
        .await;
    assert_eq!(kind(dual), ErrorKind::InvalidInput);
    // Not extractable: no wrap.
    alice
        .set_key_attribute(aes.id, KeyAttribute::Flag(KeyFlag::Extractable, false))
        .await
        .expect("set");
    assert_eq!(
        kind(
            alice
                .wrap_key(wrapping.id, aes.id, WrapMechanism::AesKeyWrapPad)
                .await
        ),
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        kind(
            alice
                .set_key_attribute(aes.id, KeyAttribute::Flag(KeyFlag::Extractable, true))
                .await
        ),
        ErrorKind::InvalidInput,
        "extractable only goes from true to false"
    );
    // Wrap-with-trusted: only a key a crypto officer marked trusted wraps it.
    let precious = alice
        .generate_key(
            KeySpec::Aes { bits: 128 },
            KeyAttributes {
                wrap_with_trusted: true,
                ..enc_attrs.clone()
            },
            false,
        )
        .await
        .expect("key");
    assert_eq!(
        kind(
            alice
                .wrap_key(wrapping.id, precious.id, WrapMechanism::AesKeyWrapPad)
                .await
        ),
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        kind(
            alice
                .set_key_attribute(wrapping.id, KeyAttribute::Flag(KeyFlag::Trusted, true))
                .await
        ),
        ErrorKind::PermissionDenied,
        "only a crypto officer sets trusted"
    );
    carl.set_key_attribute(wrapping.id, KeyAttribute::Flag(KeyFlag::Trusted, true))
        .await
        .expect("trusted");
    // Another client's write: alice reads it once she has seen its index.
    alice.observe_index(carl.applied_index());
    alice
        .wrap_key(wrapping.id, precious.id, WrapMechanism::AesKeyWrapPad)
        .await
        .expect("a trusted key wraps it");

    // RSA-OAEP wrapping with a key that wraps and unwraps but never
    // decrypts.
    let rsa_wrap = alice
        .generate_key(
            KeySpec::Rsa { bits: 2048 },
            KeyAttributes {
                wrap: true,
                unwrap: true,
                ..KeyAttributes::default()
            },
            false,
        )
        .await
        .expect("rsa wrapping key");
    let target = alice
        .generate_key(KeySpec::Aes { bits: 128 }, enc_attrs.clone(), false)
        .await
        .expect("target");
    let wrapped = alice
        .wrap_key(rsa_wrap.id, target.id, WrapMechanism::RsaOaepSha256)
        .await
        .expect("oaep wrap");
    let copy = alice
        .unwrap_key(
            rsa_wrap.id,
            WrapMechanism::RsaOaepSha256,
            wrapped,
            KeySpec::Aes { bits: 128 },
            enc_attrs.clone(),
            false,
        )
        .await
        .expect("oaep unwrap");
    let ct = alice
        .encrypt(target.id, EncryptMechanism::AesGcm, "through oaep", vec![])
        .await
        .expect("encrypt");
    let pt = alice
        .decrypt(copy.id, EncryptMechanism::AesGcm, ct, vec![])
        .await
        .expect("the copy decrypts");
    assert_eq!(pt.expose(), b"through oaep");

    // A public key alone. The holder of `rsa_wrap` stands for an outside
    // party: alice imports its public key, wraps a key to it and the
    // holder unwraps it; the imported key encrypts to the holder too. It
    // never decrypts, signs or unwraps, and is never wrapped itself.
    let (der, _) = alice.export_public_key(rsa_wrap.id).await.expect("export");
    let outside = alice
        .import_public_key(
            der.clone(),
            KeyAttributes {
                label: "outside".into(),
                encrypt: true,
                wrap: true,
                verify: true,
                ..KeyAttributes::default()
            },
            false,
        )
        .await
        .expect("import a public key");
    assert_eq!(outside.spec, KeySpec::Rsa { bits: 2048 });
    assert_eq!(
        outside.provenance.origin,
        hsm_proto::KeyOrigin::PublicImported
    );
    assert_eq!(outside.public_key, der);
    // The target is sensitive: a key someone outside holds protects it
    // only once a crypto officer trusts that key.
    assert_eq!(
        kind(
            alice
                .wrap_key(outside.id, target.id, WrapMechanism::RsaOaepSha256)
                .await
        ),
        ErrorKind::PermissionDenied
    );
    carl.set_key_attribute(outside.id, KeyAttribute::Flag(KeyFlag::Trusted, true))
        .await
        .expect("trusted");
    alice.observe_index(carl.applied_index());
    let wrapped = alice
        .wrap_key(outside.id, target.id, WrapMechanism::RsaOaepSha256)
        .await
        .expect("wrap to the outside holder");
    let second = alice
        .unwrap_key(
            rsa_wrap.id,
            WrapMechanism::RsaOaepSha256,
            wrapped,
            KeySpec::Aes { bits: 128 },
            enc_attrs.clone(),
            false,
        )
        .await
        .expect("the holder unwraps");
    let ct = alice
        .encrypt(target.id, EncryptMechanism::AesGcm, "to the holder", vec![])
        .await
        .expect("encrypt");
    assert_eq!(
        alice
            .decrypt(second.id, EncryptMechanism::AesGcm, ct, vec![])
            .await
            .expect("decrypt")
            .expose(),
        b"to the holder"
    );
    let sealed = alice
        .encrypt(
            outside.id,
            EncryptMechanism::RsaOaepSha256,
            "for the holder",
            vec![],
        )
        .await
        .expect("encrypt to the public key");
    assert_eq!(
        kind(
            alice
                .decrypt(outside.id, EncryptMechanism::RsaOaepSha256, sealed, vec![])
                .await
        ),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(
            alice
                .sign(outside.id, SignMechanism::RsaPssSha256, b"m".to_vec())
                .await
        ),
        ErrorKind::InvalidInput
    );
    let wrapper = alice
        .generate_key(
            KeySpec::Aes { bits: 256 },
            KeyAttributes {
                wrap: true,
                ..KeyAttributes::default()
            },
            false,
        )
        .await
        .expect("aes wrapping key");
    assert_eq!(
        kind(
            alice
                .wrap_key(wrapper.id, outside.id, WrapMechanism::AesKeyWrapPad)
                .await
        ),
        ErrorKind::InvalidInput
    );
    // Asked to sign, it is refused before anything is written.
    assert_eq!(
        kind(
            alice
                .import_public_key(
                    der,
                    KeyAttributes {
                        sign: true,
                        ..KeyAttributes::default()
                    },
                    false,
                )
                .await
        ),
        ErrorKind::InvalidInput
    );
    // An EC public key alone verifies what its private half signed.
    let signer = alice
        .generate_key(KeySpec::EcP256, signing(), false)
        .await
        .expect("signer");
    let (ec_der, _) = alice.export_public_key(signer.id).await.expect("export");
    let verifier = alice
        .import_public_key(
            ec_der,
            KeyAttributes {
                verify: true,
                ..KeyAttributes::default()
            },
            false,
        )
        .await
        .expect("import an EC public key");
    let sig = alice
        .sign(signer.id, SignMechanism::EcdsaSha256, b"signed".to_vec())
        .await
        .expect("sign");
    assert!(alice
        .verify(
            verifier.id,
            SignMechanism::EcdsaSha256,
            b"signed".to_vec(),
            sig.clone()
        )
        .await
        .expect("verify"));
    assert!(!alice
        .verify(
            verifier.id,
            SignMechanism::EcdsaSha256,
            b"other".to_vec(),
            sig
        )
        .await
        .expect("verify"));

    // ECDH on P-256 (HKDF): both parties inside the HSM derive the same
    // secret from their own private key and the other's public key.
    let derive_attrs = KeyAttributes {
        derive: true,
        ..KeyAttributes::default()
    };
    let p1 = alice
        .generate_key(KeySpec::EcP256, derive_attrs.clone(), false)
        .await
        .expect("p256");
    let p2 = alice
        .generate_key(KeySpec::EcP256, derive_attrs.clone(), false)
        .await
        .expect("p256");
    let mut tags = Vec::new();
    for (mine, theirs) in [(&p1, &p2), (&p2, &p1)] {
        let k = alice
            .derive_key(
                mine.id,
                DeriveMechanism::EcdhHkdfSha256,
                theirs.public_key.clone(),
                b"p256 session".to_vec(),
                KeySpec::GenericSecret { bytes: 32 },
                signing(),
                false,
            )
            .await
            .expect("derive");
        tags.push(
            alice
                .sign(k.id, SignMechanism::HmacSha256, msg.clone())
                .await
                .expect("hmac"),
        );
    }
    assert_eq!(tags[0], tags[1], "both sides derive the same key");

    // Sharing: bob may use a shared key but not manage it.
    let ed = key_of(KeySpec::Ed25519);
    assert_eq!(
        kind(bob.sign(ed, SignMechanism::Ed25519, msg.clone()).await),
        ErrorKind::NotFound
    );
    alice.share_key(ed, user("bob")).await.expect("share");
    bob.observe_index(alice.applied_index());
    let sig = bob
        .sign(ed, SignMechanism::Ed25519, msg.clone())
        .await
        .expect("bob signs with the shared key");
    assert!(alice
        .verify(ed, SignMechanism::Ed25519, msg.clone(), sig)
        .await
        .expect("verify"));
    assert_eq!(kind(bob.delete_key(ed).await), ErrorKind::PermissionDenied);
    assert_eq!(
        kind(bob.share_key(ed, user("bob")).await),
        ErrorKind::PermissionDenied
    );
    let bobs = bob.list_keys(KeyFilter::default()).await.expect("list");
    assert_eq!(bobs.iter().map(|k| k.id).collect::<Vec<_>>(), vec![ed]);
    alice.unshare_key(ed, user("bob")).await.expect("unshare");
    bob.observe_index(alice.applied_index());
    assert_eq!(
        kind(bob.sign(ed, SignMechanism::Ed25519, msg.clone()).await),
        ErrorKind::NotFound
    );

    // Listing with filters; attribute changes.
    let filter = KeyFilter {
        label: Some("k6".into()),
        ..KeyFilter::default()
    };
    let found = alice.list_keys(filter).await.expect("list");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].spec, KeySpec::EcP256);
    alice
        .set_key_attribute(found[0].id, KeyAttribute::Label("tls-frontend".into()))
        .await
        .expect("relabel");
    let filter = KeyFilter {
        label: Some("tls-frontend".into()),
        flags: vec![(KeyFlag::Sign, true)],
        ..KeyFilter::default()
    };
    assert_eq!(alice.list_keys(filter).await.expect("list").len(), 1);
    assert_eq!(
        kind(
            alice
                .set_key_attribute(found[0].id, KeyAttribute::Flag(KeyFlag::Sensitive, false))
                .await
        ),
        ErrorKind::InvalidInput,
        "sensitive stays sensitive"
    );

    // Deleting a key: gone on every node at once for this client.
    let gone = key_of(KeySpec::EcSecp256k1);
    alice.delete_key(gone).await.expect("delete");
    for i in 1..=3 {
        let c = cluster.client_of(i).await;
        c.login(user("alice"), "alice-password-1")
            .await
            .expect("login");
        assert_eq!(kind(c.get_key(gone).await), ErrorKind::NotFound);
        c.get_key(key_of(KeySpec::Ed25519))
            .await
            .expect("others stay");
    }
    assert_eq!(kind(alice.get_key(KeyId(12345)).await), ErrorKind::NotFound);
    // Cluster info needs no session, but says how many keys and users there
    // are only to a signed-in user.
    let anonymous = cluster.client().await.cluster_info().await.expect("info");
    assert_eq!((anonymous.keys, anonymous.users), (0, 0));
    let signed_in = alice.cluster_info().await.expect("info");
    assert!(signed_in.keys > 10 && signed_in.users == 5, "{signed_in:?}");

    // A password change ends the user's sessions on every node.
    let alice_elsewhere = cluster.client_of(3).await;
    alice_elsewhere
        .login(user("alice"), "alice-password-1")
        .await
        .expect("login");
    alice
        .change_own_password("alice-password-1", "alice-password-2")
        .await
        .expect("change");
    alice_elsewhere.observe_index(alice.applied_index());
    assert_eq!(
        kind(alice_elsewhere.random(8).await),
        ErrorKind::Unauthenticated
    );
    // A crypto officer resets bob's password, then deletes a key-less user.
    admin
        .change_password(user("bob"), "bob-password-2")
        .await
        .expect("reset");
    bob.observe_index(admin.applied_index());
    assert_eq!(kind(bob.random(8).await), ErrorKind::Unauthenticated);
    let audrey = logged_in(&cluster, "audrey", "audrey-password-1").await;
    admin
        .delete_user(user("audrey"))
        .await
        .expect("delete user");
    audrey.observe_index(admin.applied_index());
    assert_eq!(
        kind(
            audrey
                .change_own_password("audrey-password-1", "audrey-password-2")
                .await
        ),
        ErrorKind::Unauthenticated
    );
    assert_eq!(
        kind(admin.delete_user(user("alice")).await),
        ErrorKind::Conflict,
        "a user that owns keys stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_failed_logins_lock_a_user_on_every_node() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let admin = cluster.activate("admin-password-1").await;
    admin
        .create_user(user("dave"), Role::Cu, "dave-password-1")
        .await
        .expect("create");
    // Wrong passwords spread over the three nodes.
    for attempt in 0..5u64 {
        let node = attempt % 3 + 1;
        let c = cluster.client_of(node).await;
        let k = kind(c.login(user("dave"), "not-the-password").await);
        let expected = if attempt < 4 {
            ErrorKind::LoginFailed
        } else {
            ErrorKind::Locked
        };
        assert_eq!(k, expected, "attempt {attempt} on node {node}");
    }
    // Locked everywhere, even with the right password.
    for node in 1..=3 {
        let c = cluster.client_of(node).await;
        assert_eq!(
            kind(c.login(user("dave"), "dave-password-1").await),
            ErrorKind::Locked,
            "node {node}"
        );
    }
    let users = admin.list_users().await.expect("list");
    let dave = users
        .iter()
        .find(|u| u.username == user("dave"))
        .expect("dave");
    assert!(dave.locked);
    admin.unlock_user(user("dave")).await.expect("unlock");
    let c = cluster.client_of(2).await;
    c.login(user("dave"), "dave-password-1")
        .await
        .expect("unlocked");
    // A successful login resets the count.
    for node in 1..=3 {
        let c = cluster.client_of(node).await;
        assert_eq!(
            kind(c.login(user("dave"), "nope-nope-nope").await),
            ErrorKind::LoginFailed
        );
    }
    cluster
        .client()
        .await
        .login(user("dave"), "dave-password-1")
        .await
        .expect("login");
    let users = admin.list_users().await.expect("list");
    let dave = users
        .iter()
        .find(|u| u.username == user("dave"))
        .expect("dave");
    assert_eq!((dave.locked, dave.failed_logins), (false, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guesses_are_bounded_however_they_arrive() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let admin = cluster.activate("admin-password-1").await;
    for name in ["erin", "fred", "gina"] {
        admin
            .create_user(user(name), Role::Cu, format!("{name}-password-1"))
            .await
            .expect("create");
    }

    // The same request id over and over (a replayed login) is one attempt:
    // counted once, and every copy is answered with its outcome, whatever
    // password it carries (the right one too: no token, no uncounted
    // answer about it).
    let c = cluster.client().await;
    let id = hsm_proto::RequestId([42; 16]);
    let mut kinds = Vec::new();
    for i in 0..8 {
        let password = if i == 5 {
            "erin-password-1"
        } else {
            "guess-guess-guess"
        };
        let op = hsm_proto::client::Operation::Login {
            username: user("erin"),
            password: Secret::from(password),
        };
        kinds.push(kind(c.call_with_request_id(id, op).await));
    }
    assert!(
        kinds.iter().all(|k| *k == ErrorKind::LoginFailed),
        "{kinds:?}"
    );
    let erin = admin
        .list_users()
        .await
        .expect("list")
        .into_iter()
        .find(|u| u.username == user("erin"))
        .expect("erin");
    assert_eq!((erin.locked, erin.failed_logins), (false, 1));

    // Thirty guesses at once, spread over every node: at most five are
    // ever checked, the rest are refused as locked.
    let mut tasks = Vec::new();
    for i in 0..30u64 {
        let c = cluster.client_of(i % 3 + 1).await;
        tasks.push(tokio::spawn(async move {
            c.login(user("fred"), format!("wrong-guess-{i}")).await
        }));
    }
    let mut checked = 0;
    for t in tasks {
        match kind(t.await.expect("task")) {
            ErrorKind::LoginFailed => checked += 1,
            ErrorKind::Locked => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        checked <= 4,
        "{checked} guesses were answered as plain failures"
    );
    assert_eq!(
        kind(
            cluster
                .client()
                .await
                .login(user("fred"), "fred-password-1")
                .await
        ),
        ErrorKind::Locked
    );

    // Sixteen logins at once with the right password (a service starting
    // its workers): at most five are checked at a time, the others wait
    // (the SDK retries them), and all get in; the user is not locked.
    let mut tasks = Vec::new();
    for i in 0..16u64 {
        let c = cluster.client_of(i % 3 + 1).await;
        tasks.push(tokio::spawn(async move {
            c.login(user("gina"), "gina-password-1").await
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("a right password logs in");
    }
    let users = admin.list_users().await.expect("list");
    let gina = users
        .iter()
        .find(|u| u.username == user("gina"))
        .expect("gina");
    assert!(!gina.locked && gina.failed_logins == 0, "{gina:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn generating_slow_keys_does_not_stall_other_requests() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let admin = cluster.activate("admin-password-1").await;
    admin
        .create_user(user("gina"), Role::Cu, "gina-password-1")
        .await
        .expect("create");
    // Everything on one node: the one that generates.
    let gina = cluster.client_of(1).await;
    gina.login(user("gina"), "gina-password-1")
        .await
        .expect("login");
    let ed = gina
        .generate_key(KeySpec::Ed25519, signing(), false)
        .await
        .expect("key");
    // More RSA-4096 generations at once than the node has worker threads,
    // then signatures: signatures are served while the first generations
    // are still running (a generation on an async worker would hold it,
    // and nothing else on that worker would move until it finished).
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let count = 3 * cores + 3;
    let first_done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut slow = Vec::new();
    for _ in 0..count {
        let (gina, first_done) = (gina.clone(), first_done.clone());
        slow.push(tokio::spawn(async move {
            let r = gina
                .generate_key(KeySpec::Rsa { bits: 4096 }, signing(), false)
                .await;
            first_done.store(true, std::sync::atomic::Ordering::SeqCst);
            r
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let mut signed_meanwhile = 0;
    for _ in 0..200 {
        gina.sign(ed.id, SignMechanism::Ed25519, b"quick".to_vec())
            .await
            .expect("sign");
        if first_done.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
        signed_meanwhile += 1;
    }
    assert!(
        signed_meanwhile >= 5,
        "only {signed_meanwhile} signatures were served before the first RSA-4096 key was ready"
    );
    for t in slow {
        t.await.expect("task").expect("rsa-4096");
    }
}
