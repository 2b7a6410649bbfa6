//! Key versions, data keys, batches and key derivation through the `hsm`
//! command line, as a crypto user would use them, against real `hsm-node`
//! processes: a key rotated, what each version made still opening with
//! it; a minimum decryption version that shuts version 1 out and trimming
//! that deletes it; a signing key rotated, its old signatures still
//! verifying by the version they name; a data key made in the HSM and
//! opened again; batches of encryptions, decryptions, signatures and
//! verifications with an item that fails on its own; two ECDH keys
//! deriving the same AES key; and a user the key is shared with, who may
//! use its versions but not manage them.
//!
//! The `hsm` runner is `procs::cli`.

mod procs;

use procs::cli::{message, Hsm};
use procs::{Cluster, ADMIN_PASSWORD};
use serde_json::{json, Value};

const ADMIN: &str = "admin-password-versions";
const ALICE: &str = "alice-password-versions";
const BOB: &str = "bob-password-versions";

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64")
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not text: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_and_every_kept_version_opens_what_it_made() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let work = tempfile::tempdir().expect("tempdir");
    let hsm = Hsm {
        config: cluster.client_config(),
        dir: work.path().to_path_buf(),
    };
    let admin = Some(("admin", ADMIN));
    let alice = Some(("alice", ALICE));
    let bob = Some(("bob", BOB));
    hsm.run(
        Some(("admin", ADMIN_PASSWORD)),
        &["cluster", "activate", "--new-password-env", "NEW_ADMIN"],
        &[("NEW_ADMIN", ADMIN)],
    )
    .ok();
    for (name, password) in [("alice", ALICE), ("bob", BOB)] {
        hsm.run(
            admin,
            &[
                "user",
                "create",
                "--username",
                name,
                "--role",
                "crypto-user",
                "--password-env",
                "NEW_PW",
            ],
            &[("NEW_PW", password)],
        )
        .ok();
    }

    // An AES key; what version 1 encrypts says so.
    hsm.run(
        alice,
        &[
            "key",
            "generate-symmetric",
            "aes",
            "--key-length-bytes",
            "32",
            "--label",
            "tde",
        ],
        &[],
    )
    .ok();
    let tde = ["--key-filter", "attr.label=tde"];
    let encrypt = |user, plaintext: &str| {
        let mut args = vec!["crypto", "encrypt", "aes-gcm", "--data", plaintext];
        args.extend(tde);
        hsm.run(user, &args, &[])
    };
    let decrypt = |user, ciphertext: &str| {
        let mut args = vec!["crypto", "decrypt", "aes-gcm", "--data", ciphertext];
        args.extend(tde);
        hsm.run(user, &args, &[])
    };
    let opened = |run: procs::cli::Run| unb64(text(&run.ok()["plaintext"]));
    let v1 = encrypt(alice, "written under version 1").ok();
    assert_eq!(v1["key-version"], 1);
    let v1 = text(&v1["ciphertext"]).to_string();
    assert!(v1.starts_with("hsm:v1:"), "{v1}");

    // Rotate: version 2 encrypts from now on, version 1 still opens its own.
    let rotated = hsm.run(alice, &["key", "rotate", tde[0], tde[1]], &[]).ok();
    assert_eq!(rotated["latest-version"], 2, "{rotated}");
    assert_eq!(rotated["min-decryption-version"], 1);
    let v2 = encrypt(alice, "written under version 2").ok();
    assert_eq!(v2["key-version"], 2);
    let v2 = text(&v2["ciphertext"]).to_string();
    assert_eq!(opened(decrypt(alice, &v1)), b"written under version 1");
    assert_eq!(opened(decrypt(alice, &v2)), b"written under version 2");
    // Plain bytes mean the latest version: version 1's do not open so.
    let v1_plain = b64(&unb64(v1.trim_start_matches("hsm:v1:")));
    let v2_plain = b64(&unb64(v2.trim_start_matches("hsm:v2:")));
    assert_eq!(
        opened(decrypt(alice, &v2_plain)),
        b"written under version 2"
    );
    let e = decrypt(alice, &v1_plain).fails(4, "invalid-input");
    assert!(message(&e).contains("hsm:v1:"), "a hint names the way: {e}");
    // A version the key never had.
    let v7 = v2.replacen("hsm:v2:", "hsm:v7:", 1);
    let e = decrypt(alice, &v7).fails(4, "not-found");
    assert!(message(&e).contains("version 7 is not kept"), "{e}");

    // A user the key is shared with uses every version, manages none.
    hsm.run(
        alice,
        &["key", "share", tde[0], tde[1], "--username", "bob"],
        &[],
    )
    .ok();
    assert_eq!(opened(decrypt(bob, &v1)), b"written under version 1");
    let shown = hsm.run(bob, &["key", "versions", tde[0], tde[1]], &[]).ok();
    assert_eq!(
        shown["versions"].as_array().map(Vec::len),
        Some(2),
        "{shown}"
    );
    hsm.run(bob, &["key", "rotate", tde[0], tde[1]], &[])
        .fails(3, "permission-denied");

    // The minimum decryption version shuts version 1 out, and lets it back.
    let min = |version: &str| {
        hsm.run(
            alice,
            &[
                "key",
                "set-min-decryption-version",
                tde[0],
                tde[1],
                "--version",
                version,
            ],
            &[],
        )
    };
    assert_eq!(min("2").ok()["min-decryption-version"], 2);
    let e = decrypt(alice, &v1).fails(4, "invalid-input");
    assert!(
        message(&e).contains("below the minimum decryption version 2"),
        "{e}"
    );
    assert_eq!(opened(decrypt(alice, &v2)), b"written under version 2");
    min("1").ok();
    assert_eq!(opened(decrypt(alice, &v1)), b"written under version 1");
    // Trimming: not while version 1 may still decrypt; then for good.
    let trim = |below: &str| {
        hsm.run(
            alice,
            &["key", "trim-versions", tde[0], tde[1], "--below", below],
            &[],
        )
    };
    trim("2").fails(4, "invalid-input");
    min("2").ok();
    let trimmed = trim("2").ok();
    assert_eq!(trimmed["versions"], json!([trimmed["versions"][0]]));
    assert_eq!(trimmed["versions"][0]["version"], 2);
    decrypt(alice, &v1).fails(4, "not-found");
    min("1").fails(4, "not-found");

    // A data key: made and encrypted in the HSM, opened again by decrypt.
    let data_key = hsm
        .run(
            alice,
            &[
                "crypto",
                "generate-data-key",
                tde[0],
                tde[1],
                "--aad",
                "db=orders",
            ],
            &[],
        )
        .ok();
    assert_eq!(data_key["key-version"], 2);
    assert_eq!(unb64(text(&data_key["plaintext"])).len(), 32);
    let wrapped = text(&data_key["wrapped"]).to_string();
    assert!(wrapped.starts_with("hsm:v2:"), "{wrapped}");
    let mut args = vec![
        "crypto",
        "decrypt",
        "aes-gcm",
        "--data",
        &wrapped,
        "--aad",
        "db=orders",
    ];
    args.extend(tde);
    let again = hsm.run(alice, &args, &[]).ok();
    assert_eq!(again["plaintext"], data_key["plaintext"]);
    decrypt(alice, &wrapped).fails(4, "invalid-input");
    let only = hsm
        .run(
            alice,
            &[
                "crypto",
                "generate-data-key",
                tde[0],
                tde[1],
                "--bits",
                "128",
                "--wrapped-only",
            ],
            &[],
        )
        .ok();
    assert!(only.get("plaintext").is_none(), "{only}");
    assert_eq!(only["bits"], 128);

    // Batches: each item with its own result.
    let batch = |user, op: &str, mechanism: &[&str], key: &str, items: &Value| {
        let name = format!("{op}-items.json");
        std::fs::write(hsm.file(&name), items.to_string()).expect("write items");
        let mut args = vec!["crypto", "batch", op];
        args.extend(mechanism);
        args.extend(["--key-filter", key, "--input", &name]);
        hsm.run(user, &args, &[]).ok()
    };
    let sealed = batch(
        alice,
        "encrypt",
        &["aes-gcm"],
        "attr.label=tde",
        &json!([
            {"data": "row 1"},
            {"data-base64": b64(b"row 2 \x00\x01"), "aad": "page=2"},
            {"data": "row 3", "aad": "page=3"},
        ]),
    );
    assert_eq!(
        (sealed["items"].as_u64(), sealed["failed"].as_u64()),
        (Some(3), Some(0))
    );
    let c = |i: usize| text(&sealed["results"][i]["ciphertext"]).to_string();
    let opened_batch = batch(
        bob,
        "decrypt",
        &["aes-gcm"],
        "attr.label=tde",
        &json!([
            {"ciphertext": c(0)},
            {"ciphertext": c(1), "aad": "page=2"},
            {"ciphertext": c(2), "aad": "page=4"},
            {"ciphertext": v1},
        ]),
    );
    assert_eq!(opened_batch["failed"], 2, "{opened_batch}");
    let r = &opened_batch["results"];
    assert_eq!(unb64(text(&r[0]["plaintext-base64"])), b"row 1");
    assert_eq!(unb64(text(&r[1]["plaintext-base64"])), b"row 2 \x00\x01");
    assert_eq!(r[2]["error"]["kind"], "invalid-input", "{opened_batch}");
    assert_eq!(r[3]["error"]["kind"], "not-found", "{opened_batch}");

    // A signing key rotated: old signatures verify by the version they name.
    hsm.run(
        alice,
        &[
            "key",
            "generate-asymmetric-pair",
            "ed25519",
            "--label",
            "signer",
        ],
        &[],
    )
    .ok();
    let signer = "attr.label=signer";
    let signed = batch(
        alice,
        "sign",
        &["ed25519"],
        signer,
        &json!([{"data": "release 1.0"}, {"data": "release 1.1"}]),
    );
    let sig = |i: usize| text(&signed["results"][i]["versioned-signature"]).to_string();
    assert!(sig(0).starts_with("hsm:v1:"), "{signed}");
    hsm.run(alice, &["key", "rotate", "--key-filter", signer], &[])
        .ok();
    let one = hsm
        .run(
            alice,
            &[
                "crypto",
                "sign",
                "ed25519",
                "--key-filter",
                signer,
                "--data",
                "release 2.0",
            ],
            &[],
        )
        .ok();
    assert_eq!(one["key-version"], 2);
    let checked = batch(
        alice,
        "verify",
        &["ed25519"],
        signer,
        &json!([
            {"data": "release 1.0", "signature": sig(0)},
            {"data": "release 1.1", "signature": sig(0)},
            {"data": "release 2.0", "signature": one["versioned-signature"]},
            {"data": "release 2.0", "signature": one["signature"]},
            {"data": "release 1.0", "signature": text(&signed["results"][0]["signature"])},
        ]),
    );
    let verified: Vec<Value> = (0..5)
        .map(|i| checked["results"][i]["verified"].clone())
        .collect();
    assert_eq!(
        verified,
        vec![
            json!(true),
            json!(false),
            json!(true),
            json!(true),
            json!(false)
        ],
        "{checked}"
    );
    // One signature through `crypto verify`, by the version it names.
    hsm.run(
        alice,
        &[
            "crypto",
            "verify",
            "ed25519",
            "--key-filter",
            signer,
            "--data",
            "release 1.0",
            "--signature",
            &sig(0),
        ],
        &[],
    )
    .ok();

    // Key agreement: two X25519 keys derive the same AES key.
    for label in ["dh-a", "dh-b"] {
        hsm.run(
            alice,
            &[
                "key",
                "generate-asymmetric-pair",
                "x25519",
                "--label",
                label,
            ],
            &[],
        )
        .ok();
        let pem = format!("{label}.pem");
        hsm.run(
            alice,
            &[
                "key",
                "generate-file",
                "--key-filter",
                &format!("attr.label={label}"),
                "--path",
                &pem,
            ],
            &[],
        )
        .ok();
    }
    for (ours, peer, label) in [
        ("dh-a", "dh-b.pem", "shared-a"),
        ("dh-b", "dh-a.pem", "shared-b"),
    ] {
        let derived = hsm
            .run(
                alice,
                &[
                    "crypto",
                    "derive",
                    "ecdh-hkdf-sha256",
                    "--key-filter",
                    &format!("attr.label={ours}"),
                    "--peer-public-key",
                    peer,
                    "--context",
                    "session 1",
                    "--key-type",
                    "aes",
                    "--key-length-bytes",
                    "32",
                    "--label",
                    label,
                ],
                &[],
            )
            .ok();
        assert_eq!(
            derived["key"]["attributes"]["origin"], "derived",
            "{derived}"
        );
    }
    let sealed = hsm
        .run(
            alice,
            &[
                "crypto",
                "encrypt",
                "aes-gcm",
                "--key-filter",
                "attr.label=shared-a",
                "--data",
                "agreed",
            ],
            &[],
        )
        .ok();
    let opened_b = hsm
        .run(
            alice,
            &[
                "crypto",
                "decrypt",
                "aes-gcm",
                "--key-filter",
                "attr.label=shared-b",
                "--data",
                text(&sealed["ciphertext"]),
            ],
            &[],
        )
        .ok();
    assert_eq!(unb64(text(&opened_b["plaintext"])), b"agreed");
}
