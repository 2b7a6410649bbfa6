//! The `hsm` command line driven as a new user would, against three real
//! `hsm-node` processes: activate, create crypto users, generate every key
//! type, sign and check the signatures with OpenSSL against the exported
//! PEM, encrypt and decrypt, share a key with a second user who can use it
//! but not delete it; and the mistakes people make (wrong password, locked
//! user, ambiguous or unknown key filter, missing login, unreachable
//! cluster), each with its exit code and JSON error.
//!
//! The `hsm` runner is `procs::cli`.

mod procs;

use std::path::Path;

use procs::cli::{message, Hsm};
use procs::{openssl, Cluster, ADMIN_PASSWORD};

const ADMIN_NEW_PASSWORD: &str = "admin-password-after-activation";
const ALICE_PASSWORD: &str = "alice-password-1";
const BOB_PASSWORD: &str = "bob-password-1";

/// A key to generate: label, `key` subcommand arguments, and for signing
/// keys the `crypto sign` mechanism arguments with OpenSSL's digest flag.
type MoreKey<'a> = (&'a str, Vec<&'a str>, Option<(&'a [&'a str], &'a str)>);

/// OpenSSL's verdict on `sig` over `data` with the public key in `pem`.
fn openssl_verifies(dir: &Path, ed25519: bool, pem: &str, data: &str, sig: &str) -> bool {
    let (ok, out) = if ed25519 {
        openssl(
            dir,
            &[
                "pkeyutl", "-verify", "-pubin", "-inkey", pem, "-rawin", "-in", data, "-sigfile",
                sig,
            ],
        )
    } else {
        openssl(
            dir,
            &["dgst", "-sha256", "-verify", pem, "-signature", sig, data],
        )
    };
    assert!(ok || out.contains("Verif"), "openssl failed to run: {out}");
    ok
}

/// `user` MACs message.txt with its HMAC key `mac-key` into `out`.
fn hmac_sign(hsm: &Hsm, user: Option<(&str, &str)>, out: &str) -> serde_json::Value {
    hsm.run(
        user,
        &[
            "crypto",
            "sign",
            "hmac",
            "--hash-function",
            "sha384",
            "--key-filter",
            "attr.label=mac-key",
            "--data-path",
            "message.txt",
            "--signature-path",
            out,
        ],
        &[],
    )
    .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_user_goes_from_activation_to_signatures_openssl_verifies() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let work = tempfile::tempdir().expect("tempdir");
    let hsm = Hsm {
        config: cluster.client_config(),
        dir: work.path().to_path_buf(),
    };
    let admin = Some(("admin", ADMIN_NEW_PASSWORD));
    let alice = Some(("alice", ALICE_PASSWORD));
    let bob = Some(("bob", BOB_PASSWORD));

    // The cluster as a newcomer first sees it: no login needed.
    let info = hsm.run(None, &["cluster", "info"], &[]).ok();
    assert_eq!(info["activated"], false);
    assert_eq!(info["members"].as_array().map(Vec::len), Some(3));
    assert!(info["leader"].is_u64(), "{info}");
    assert!(
        info["members"]
            .as_array()
            .expect("members")
            .iter()
            .all(|m| m["health"] == "ok" && m["voter"] == true),
        "{info}"
    );

    // Activation: admin's one-time password, then its own.
    let activated = hsm
        .run(
            Some(("admin", ADMIN_PASSWORD)),
            &["cluster", "activate", "--new-password-env", "NEW_ADMIN"],
            &[("NEW_ADMIN", ADMIN_NEW_PASSWORD)],
        )
        .ok();
    assert_eq!(activated["activated"], true);
    hsm.run(
        Some(("admin", ADMIN_PASSWORD)),
        &["cluster", "activate", "--new-password-env", "NEW_ADMIN"],
        &[("NEW_ADMIN", "another-password")],
    )
    .fails(4, "conflict");
    let who = hsm.run(admin, &["login"], &[]).ok();
    assert_eq!(
        (who["username"].as_str(), who["role"].as_str()),
        (Some("admin"), Some("admin"))
    );

    // Two crypto users.
    for (name, password) in [("alice", ALICE_PASSWORD), ("bob", BOB_PASSWORD)] {
        let created = hsm
            .run(
                admin,
                &[
                    "user",
                    "create",
                    "--username",
                    name,
                    "--role",
                    "crypto-user",
                    "--password-env",
                    "NEW_USER_PASSWORD",
                ],
                &[("NEW_USER_PASSWORD", password)],
            )
            .ok();
        assert_eq!(created["role"], "crypto-user");
    }
    let users = hsm.run(admin, &["user", "list"], &[]).ok();
    let names: Vec<&str> = users["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(|u| u["username"].as_str())
        .collect();
    assert_eq!(names, ["admin", "alice", "bob"]);

    // Every key type alice needs.
    let generate = |args: &[&str]| {
        let data = hsm.run(alice, args, &[]).ok();
        data["key"]["key-reference"]
            .as_str()
            .expect("key reference")
            .to_string()
    };
    generate(&[
        "key",
        "generate-asymmetric-pair",
        "rsa",
        "--modulus-size-bits",
        "2048",
        "--label",
        "rsa-signing",
    ]);
    generate(&[
        "key",
        "generate-asymmetric-pair",
        "ec",
        "--curve",
        "prime256v1",
        "--label",
        "ec-signing",
    ]);
    let ed = generate(&[
        "key",
        "generate-asymmetric-pair",
        "ed25519",
        "--label",
        "ed-signing",
    ]);
    generate(&[
        "key",
        "generate-symmetric",
        "aes",
        "--key-length-bytes",
        "32",
        "--label",
        "aes-data",
    ]);
    let listed = hsm.run(alice, &["key", "list"], &[]).ok();
    assert_eq!(listed["total_key_count"], 4, "{listed}");
    let ec_only = hsm
        .run(alice, &["key", "list", "--filter", "attr.key-type=ec"], &[])
        .ok();
    assert_eq!(ec_only["total_key_count"], 1);
    assert_eq!(
        ec_only["matched_keys"][0]["attributes"]["curve"],
        "prime256v1"
    );
    // The leader raises a new cluster's Raft protocol one version a
    // second, to the newest every member speaks.
    let newest = *hsm_proto::protocol::RAFT.end();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let counted = loop {
        let info = hsm.run(alice, &["cluster", "info"], &[]).ok();
        if info["raft-protocol"] == newest || std::time::Instant::now() > deadline {
            break info;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(
        (counted["keys"].as_u64(), counted["users"].as_u64()),
        (Some(4), Some(3))
    );
    // Signed in, the leader's view too: each member's lag (none of them
    // far behind on a calm cluster) and the Raft protocol version its
    // connection agreed on, and the version the cluster runs.
    assert_eq!(counted["raft-protocol"], newest, "{counted}");
    assert_eq!(counted["leader-speaks-raft-protocol"], newest, "{counted}");
    for m in counted["members"].as_array().expect("members") {
        assert!(m["lag-entries"].as_u64().is_some_and(|l| l < 50), "{m}");
        assert_eq!(m["raft-protocol"], newest, "{m}");
    }

    // Sign in the HSM; OpenSSL verifies with the exported PEM.
    std::fs::write(hsm.file("message.txt"), b"release 1.2.3 of the firmware\n").expect("write");
    let cases: [(&str, &[&str]); 3] = [
        ("rsa-signing", &["rsa-pkcs", "--hash-function", "sha256"]),
        ("ec-signing", &["ecdsa", "--hash-function", "sha256"]),
        ("ed-signing", &["ed25519"]),
    ];
    for (label, mechanism) in cases {
        let filter = format!("attr.label={label}");
        let sig = format!("{label}.sig");
        let pem = format!("{label}.pem");
        let mut sign = vec!["crypto", "sign"];
        sign.extend_from_slice(mechanism);
        sign.extend_from_slice(&[
            "--key-filter",
            &filter,
            "--data-path",
            "message.txt",
            "--signature-path",
            &sig,
        ]);
        let signed = hsm.run(alice, &sign, &[]).ok();
        assert!(signed["signature"].as_str().is_some_and(|s| !s.is_empty()));
        let exported = hsm
            .run(
                alice,
                &[
                    "key",
                    "generate-file",
                    "--encoding",
                    "pem",
                    "--path",
                    &pem,
                    "--key-filter",
                    &filter,
                ],
                &[],
            )
            .ok();
        assert_eq!(exported["encoding"], "pem");
        let text = std::fs::read_to_string(hsm.file(&pem)).expect("pem written");
        assert!(text.starts_with("-----BEGIN PUBLIC KEY-----"), "{text}");
        let ed25519 = label == "ed-signing";
        assert!(
            openssl_verifies(work.path(), ed25519, &pem, "message.txt", &sig),
            "openssl did not verify the {label} signature"
        );
        std::fs::write(hsm.file("tampered.txt"), b"release 6.6.6\n").expect("write");
        assert!(!openssl_verifies(
            work.path(),
            ed25519,
            &pem,
            "tampered.txt",
            &sig
        ));

        // The HSM verifies it too, and refuses a tampered message.
        let mut verify = vec!["crypto", "verify"];
        verify.extend_from_slice(mechanism);
        verify.extend_from_slice(&["--key-filter", &filter, "--signature-path", &sig]);
        let mut good = verify.clone();
        good.extend_from_slice(&["--data-path", "message.txt"]);
        assert_eq!(hsm.run(alice, &good, &[]).ok()["verified"], true);
        let mut bad = verify.clone();
        bad.extend_from_slice(&["--data", "release 6.6.6"]);
        hsm.run(alice, &bad, &[]).fails(4, "verification-failed");
    }

    // A public key alone, imported from the PEM file: it verifies the
    // signature of the pair it came from and signs nothing.
    let imported = hsm
        .run(
            alice,
            &[
                "key",
                "import-public",
                "--path",
                "ec-signing.pem",
                "--label",
                "ec-public",
            ],
            &[],
        )
        .ok();
    let attributes = &imported["key"]["attributes"];
    assert_eq!(attributes["origin"], "public-imported", "{imported}");
    assert_eq!(
        (attributes["verify"].as_bool(), attributes["sign"].as_bool()),
        (Some(true), Some(false)),
        "{imported}"
    );
    let check = [
        "crypto",
        "verify",
        "ecdsa",
        "--hash-function",
        "sha256",
        "--key-filter",
        "attr.label=ec-public",
        "--signature-path",
        "ec-signing.sig",
        "--data-path",
        "message.txt",
    ];
    assert_eq!(hsm.run(alice, &check, &[]).ok()["verified"], true);
    hsm.run(
        alice,
        &[
            "crypto",
            "sign",
            "ecdsa",
            "--hash-function",
            "sha256",
            "--key-filter",
            "attr.label=ec-public",
            "--data-path",
            "message.txt",
        ],
        &[],
    )
    .fails(4, "invalid-input");
    hsm.run(
        alice,
        &["key", "delete", "--key-filter", "attr.label=ec-public"],
        &[],
    )
    .ok();

    // The other key types and sizes: EC P-384 and secp256k1 and RSA-3072
    // sign as OpenSSL expects; a generic secret computes HMACs; X25519 and
    // RSA-4096 are generated.
    let more: [MoreKey; 6] = [
        (
            "ec-384",
            vec!["generate-asymmetric-pair", "ec", "--curve", "secp384r1"],
            Some((&["ecdsa", "--hash-function", "sha384"], "-sha384")),
        ),
        (
            "ec-k1",
            vec!["generate-asymmetric-pair", "ec", "--curve", "secp256k1"],
            Some((&["ecdsa", "--hash-function", "sha256"], "-sha256")),
        ),
        (
            "rsa-3072",
            vec![
                "generate-asymmetric-pair",
                "rsa",
                "--modulus-size-bits",
                "3072",
            ],
            Some((&["rsa-pss", "--hash-function", "sha256"], "-sha256")),
        ),
        (
            "rsa-4096",
            vec![
                "generate-asymmetric-pair",
                "rsa",
                "--modulus-size-bits",
                "4096",
            ],
            None,
        ),
        ("x-agree", vec!["generate-asymmetric-pair", "x25519"], None),
        (
            "mac-key",
            vec![
                "generate-symmetric",
                "generic-secret",
                "--key-length-bytes",
                "48",
            ],
            None,
        ),
    ];
    for (label, kind, signing) in more {
        let mut args = vec!["key"];
        args.extend(kind);
        args.extend(["--label", label]);
        generate(&args);
        let Some((mechanism, digest)) = signing else {
            continue;
        };
        let filter = format!("attr.label={label}");
        let (sig, pem) = (format!("{label}.sig"), format!("{label}.pem"));
        let mut sign = vec!["crypto", "sign"];
        sign.extend_from_slice(mechanism);
        sign.extend([
            "--key-filter",
            &filter,
            "--data-path",
            "message.txt",
            "--signature-path",
            &sig,
        ]);
        hsm.run(alice, &sign, &[]).ok();
        hsm.run(
            alice,
            &[
                "key",
                "generate-file",
                "--encoding",
                "pem",
                "--path",
                &pem,
                "--key-filter",
                &filter,
            ],
            &[],
        )
        .ok();
        let mut check = vec![
            "dgst",
            digest,
            "-verify",
            pem.as_str(),
            "-signature",
            sig.as_str(),
        ];
        if label == "rsa-3072" {
            check.extend([
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:-1",
            ]);
        }
        check.push("message.txt");
        let (ok, out) = openssl(work.path(), &check);
        assert!(ok, "openssl did not verify the {label} signature: {out}");
    }
    let mac = hmac_sign(&hsm, alice, "mac.bin");
    assert!(mac["signature"].as_str().is_some_and(|s| !s.is_empty()));
    let checked = hsm
        .run(
            alice,
            &[
                "crypto",
                "verify",
                "hmac",
                "--hash-function",
                "sha384",
                "--key-filter",
                "attr.label=mac-key",
                "--data-path",
                "message.txt",
                "--signature-path",
                "mac.bin",
            ],
            &[],
        )
        .ok();
    assert_eq!(checked["verified"], true);

    // AES-GCM round trip through files.
    let secret = b"database master key \x00\x01\x02 and more".to_vec();
    std::fs::write(hsm.file("plain.bin"), &secret).expect("write");
    let enc = hsm
        .run(
            alice,
            &[
                "crypto",
                "encrypt",
                "aes-gcm",
                "--key-filter",
                "attr.label=aes-data",
                "--data-path",
                "plain.bin",
                "--aad",
                "table=users",
                "--path",
                "cipher.bin",
            ],
            &[],
        )
        .ok();
    assert_eq!(enc["bytes"], secret.len() + 12 + 16);
    let decrypt = |aad: &str| {
        hsm.run(
            alice,
            &[
                "crypto",
                "decrypt",
                "aes-gcm",
                "--key-filter",
                "attr.label=aes-data",
                "--data-path",
                "cipher.bin",
                "--aad",
                aad,
                "--path",
                "decrypted.bin",
            ],
            &[],
        )
    };
    decrypt("table=users").ok();
    assert_eq!(
        std::fs::read(hsm.file("decrypted.bin")).expect("read"),
        secret
    );
    decrypt("table=orders").fails(4, "invalid-input");

    // Keyless crypto.
    let digest = hsm
        .run(alice, &["crypto", "digest", "sha256", "--data", "abc"], &[])
        .ok();
    assert_eq!(
        digest["digest-hex"],
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let random = hsm
        .run(
            alice,
            &["crypto", "random", "--length", "48", "--path", "r.bin"],
            &[],
        )
        .ok();
    assert_eq!(random["bytes"], 48);
    assert_eq!(std::fs::metadata(hsm.file("r.bin")).expect("r").len(), 48);

    // Sharing: bob can sign with alice's key but not delete it.
    let bob_signs = |extra: &[&str]| {
        let mut args = vec![
            "crypto",
            "sign",
            "ed25519",
            "--key-filter",
            "attr.label=ed-signing",
            "--data-path",
            "message.txt",
        ];
        args.extend_from_slice(extra);
        hsm.run(bob, &args, &[])
    };
    bob_signs(&[]).fails(4, "not-found");
    let shared = hsm
        .run(
            alice,
            &[
                "key",
                "share",
                "--key-filter",
                "attr.label=ed-signing",
                "--username",
                "bob",
            ],
            &[],
        )
        .ok();
    assert_eq!(shared["key-reference"], ed.as_str());
    let bobs = bob_signs(&["--signature-path", "bob.sig"]).ok();
    assert_eq!(bobs["key-reference"], ed.as_str());
    assert!(openssl_verifies(
        work.path(),
        true,
        "ed-signing.pem",
        "message.txt",
        "bob.sig"
    ));
    let denied = hsm
        .run(
            bob,
            &["key", "delete", "--key-filter", "attr.label=ed-signing"],
            &[],
        )
        .fails(3, "permission-denied");
    assert!(message(&denied).contains("bob"), "{denied}");

    // Filters that do not select exactly one key say so.
    let many = hsm
        .run(
            alice,
            &["key", "delete", "--key-filter", "attr.sign=true"],
            &[],
        )
        .fails(4, "ambiguous-key-filter");
    assert!(message(&many).contains("exactly one"), "{many}");
    hsm.run(
        alice,
        &["key", "delete", "--key-filter", "attr.label=no-such-key"],
        &[],
    )
    .fails(4, "not-found");
    let unknown = hsm
        .run(alice, &["key", "list", "--filter", "attr.colour=red"], &[])
        .fails(4, "invalid-input");
    assert!(
        message(&unknown).contains("unknown key filter"),
        "{unknown}"
    );

    // A crypto officer cannot use keys.
    hsm.run(admin, &["crypto", "random", "--length", "8"], &[])
        .fails(3, "permission-denied");

    // A wrong password; five lock the user; a crypto officer unlocks it.
    let wrong = hsm
        .run(Some(("bob", "not-bobs-password")), &["key", "list"], &[])
        .fails(3, "login-failed");
    assert!(message(&wrong).contains("bob"), "{wrong}");
    for _ in 0..4 {
        hsm.run(Some(("bob", "not-bobs-password")), &["key", "list"], &[]);
    }
    let locked = hsm.run(bob, &["key", "list"], &[]).fails(3, "locked");
    assert!(message(&locked).contains("user unlock"), "{locked}");
    hsm.run(admin, &["user", "unlock", "--username", "bob"], &[])
        .ok();
    hsm.run(bob, &["key", "list"], &[]).ok();

    // Bob changes his own password: the one he logs in with is checked as
    // the current one. Then back, so the rest of the tour runs as before.
    for (from, to) in [
        (BOB_PASSWORD, "bob-password-2"),
        ("bob-password-2", BOB_PASSWORD),
    ] {
        let changed = hsm
            .run(
                Some(("bob", from)),
                &["user", "change-password", "--password-env", "NEW_BOB"],
                &[("NEW_BOB", to)],
            )
            .ok();
        assert_eq!(changed["username"], "bob", "{changed}");
        hsm.run(Some(("bob", from)), &["key", "list"], &[])
            .fails(3, "login-failed");
        hsm.run(Some(("bob", to)), &["key", "list"], &[]).ok();
    }

    // People read tables.
    let table = hsm.run(alice, &["--output", "table", "key", "list"], &[]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(
        table.stdout.contains("rsa-2048") && table.stdout.contains("ed-signing"),
        "{}",
        table.stdout
    );

    // Alice deletes her own key.
    hsm.run(
        alice,
        &["key", "delete", "--key-filter", "attr.label=rsa-signing"],
        &[],
    )
    .ok();

    // A crypto officer rotates the domain key; a crypto user may not. Keys
    // keep working (each command logs in again).
    hsm.run(alice, &["cluster", "rotate-domain-key"], &[])
        .fails(3, "permission-denied");
    let rotated = hsm.run(admin, &["cluster", "rotate-domain-key"], &[]).ok();
    assert_eq!(rotated["domain-key-generation"], 1, "{rotated}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let info = hsm.run(admin, &["cluster", "info"], &[]).ok();
        let d = &info["domain-key"];
        assert_eq!(d["generation"], 1, "{info}");
        if d["older-generations"].as_array().is_some_and(Vec::is_empty) {
            assert_eq!(d["keys-to-rewrap"], 0, "{info}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{info}");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let anonymous = hsm.run(None, &["cluster", "info"], &[]).ok();
    assert!(anonymous["domain-key"].is_null(), "{anonymous}");
    hmac_sign(&hsm, alice, "mac-after-rotation.bin");
    assert_eq!(
        std::fs::read(work.path().join("mac.bin")).expect("mac"),
        std::fs::read(work.path().join("mac-after-rotation.bin")).expect("mac"),
        "the same key after the rotation"
    );

    // alice ends every session she has (node/tests/logout.rs shows a
    // copied token refused after it); the next command logs in again.
    let out = hsm.run(alice, &["logout"], &[]).ok();
    assert!(message(&out).contains("every session of alice"), "{out}");
    hmac_sign(&hsm, alice, "mac-after-logout.bin");
}

#[test]
fn mistakes_before_any_cluster_answers_have_their_own_exit_codes() {
    let work = tempfile::tempdir().expect("tempdir");
    // A cluster whose only node is a closed port.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let address = closed.local_addr().expect("address").to_string();
    drop(closed);
    let ca = rcgen::generate_simple_self_signed(vec!["hsm-test-ca".into()]).expect("ca");
    let config = work.path().join("cluster.toml");
    std::fs::write(
        &config,
        format!(
            "cluster_id = \"{}\"\nca_cert_pem = \"\"\"\n{}\"\"\"\n\n[[nodes]]\nid = 1\n\
             address = \"{address}\"\nzone = \"a\"\ntransport_key = \"{}\"\n",
            "ab".repeat(16),
            ca.cert.pem(),
            "cd".repeat(32),
        ),
    )
    .expect("write config");
    let hsm = Hsm {
        config,
        dir: work.path().to_path_buf(),
    };

    let error = hsm
        .run(None, &["--timeout-secs", "3", "cluster", "info"], &[])
        .fails(5, "unavailable");
    assert_eq!(error["tried"][0]["address"], address.as_str(), "{error}");
    assert!(message(&error).contains(&address), "{error}");

    // No login given for a command that needs one.
    let missing = hsm.run(None, &["key", "list"], &[]).fails(2, "usage");
    assert!(message(&missing).contains("HSM_USER"), "{missing}");

    // Wrong flags are clap's: exit code 2 and a message on stderr.
    let wrong = hsm.run(
        None,
        &["key", "generate-symmetric", "aes", "--label", "k"],
        &[],
    );
    assert_eq!(wrong.code, 2);
    assert!(
        wrong.stderr.contains("--key-length-bytes"),
        "{}",
        wrong.stderr
    );
    assert_eq!(hsm.run(None, &["key", "frobnicate"], &[]).code, 2);

    // Help works; logout needs to know whose sessions end.
    assert_eq!(hsm.run(None, &["--help"], &[]).code, 0);
    let logout = hsm.run(None, &["logout"], &[]).fails(2, "usage");
    assert!(message(&logout).contains("HSM_USER"), "{logout}");
}
