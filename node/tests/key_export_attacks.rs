//! The ways a crypto user once got a sensitive key out in plaintext, tried
//! through the `hsm` command line against a real node, each now refused:
//! wrap a key and then let the wrapping key decrypt (AES-GCM and
//! RSA-OAEP), encrypt chosen bytes and unwrap them as a "sensitive" key,
//! and unwrap an old blob after the wrapping key lost `trusted` to get a
//! copy without `wrap-with-trusted`; and what a user a key is shared with
//! sees of the key's other users.

mod procs;

use hsm_proto::Role;
use procs::cli::{message, Hsm};
use procs::{user, Cluster};

const ADMIN: &str = "admin-password-for-attacks";
const ALICE: &str = "alice-password-for-attacks";

/// A one-node cluster with crypto officer `admin` and crypto user `alice`,
/// and an `hsm` runner for it.
async fn cluster() -> (Cluster, Hsm, tempfile::TempDir) {
    let cluster = Cluster::start(1);
    cluster.wait_ready().await;
    let admin = cluster.activate(ADMIN).await;
    admin
        .create_user(user("alice"), Role::Cu, ALICE)
        .await
        .expect("create alice");
    let work = tempfile::tempdir().expect("tempdir");
    let hsm = Hsm {
        config: cluster.client_config(),
        dir: work.path().to_path_buf(),
    };
    (cluster, hsm, work)
}

const AS_ALICE: Option<(&str, &str)> = Some(("alice", ALICE));
const AS_ADMIN: Option<(&str, &str)> = Some(("admin", ADMIN));

fn generate(hsm: &Hsm, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["key"];
    all.extend_from_slice(args);
    hsm.run(AS_ALICE, &all, &[]).ok()
}

fn aes(hsm: &Hsm, label: &str, attributes: &str, more: &[&str]) {
    let mut args = vec![
        "generate-symmetric",
        "aes",
        "--key-length-bytes",
        "32",
        "--label",
        label,
        "--attributes",
        attributes,
    ];
    args.extend_from_slice(more);
    generate(hsm, &args);
}

fn filter(label: &str) -> String {
    format!("attr.label={label}")
}

/// `key wrap` as alice: the key labelled `target` under `wrapping`,
/// written to `path` (or into the JSON output when `None`).
fn wrap(
    hsm: &Hsm,
    mechanism: &str,
    wrapping: &str,
    target: &str,
    path: Option<&str>,
) -> procs::cli::Run {
    let (wrapping, target) = (filter(wrapping), filter(target));
    let mut args = vec![
        "key",
        "wrap",
        mechanism,
        "--wrapping-key-filter",
        &wrapping,
        "--key-filter",
        &target,
    ];
    if let Some(path) = path {
        args.extend(["--path", path]);
    }
    hsm.run(AS_ALICE, &args, &[])
}

/// `key unwrap` as alice of the AES-256 key in `path` under `wrapping`.
fn unwrap(hsm: &Hsm, mechanism: &str, wrapping: &str, path: &str, label: &str) -> procs::cli::Run {
    hsm.run(
        AS_ALICE,
        &[
            "key",
            "unwrap",
            mechanism,
            "--wrapping-key-filter",
            &filter(wrapping),
            "--data-path",
            path,
            "--key-type",
            "aes",
            "--key-length-bytes",
            "32",
            "--label",
            label,
        ],
        &[],
    )
}

/// `key import` as alice of the AES-256 key `material`, so alice knows it.
fn import_aes(hsm: &Hsm, label: &str, material: [u8; 32], attributes: &str) -> serde_json::Value {
    let file = format!("{label}.key");
    std::fs::write(hsm.file(&file), material).expect("write");
    hsm.run(
        AS_ALICE,
        &[
            "key",
            "import",
            "--key-type",
            "aes",
            "--key-length-bytes",
            "32",
            "--path",
            &file,
            "--label",
            label,
            "--attributes",
            attributes,
        ],
        &[],
    )
    .ok()
}

fn set(
    hsm: &Hsm,
    who: Option<(&str, &str)>,
    label: &str,
    name: &str,
    value: &str,
) -> procs::cli::Run {
    hsm.run(
        who,
        &[
            "key",
            "set-attribute",
            "--key-filter",
            &filter(label),
            "--name",
            name,
            "--value",
            value,
        ],
        &[],
    )
}

fn decrypt(hsm: &Hsm, mechanism: &str, label: &str, path: &str) -> procs::cli::Run {
    hsm.run(
        AS_ALICE,
        &[
            "crypto",
            "decrypt",
            mechanism,
            "--key-filter",
            &filter(label),
            "--data-path",
            path,
        ],
        &[],
    )
}

/// The attribute of the key labelled `label`, as `key list` shows it.
fn attribute(hsm: &Hsm, label: &str, name: &str) -> serde_json::Value {
    let listed = hsm
        .run(AS_ALICE, &["key", "list", "--filter", &filter(label)], &[])
        .ok();
    listed["matched_keys"][0]["attributes"][name].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrapped_key_never_decrypts_as_data() {
    let (_cluster, hsm, _work) = cluster().await;
    aes(&hsm, "target", "encrypt,decrypt", &[]);
    aes(&hsm, "kek", "wrap,unwrap", &[]);
    generate(
        &hsm,
        &[
            "generate-asymmetric-pair",
            "rsa",
            "--modulus-size-bits",
            "2048",
            "--label",
            "rsa-kek",
            "--attributes",
            "wrap,unwrap",
        ],
    );
    wrap(&hsm, "aes-gcm", "kek", "target", Some("target.gcm")).ok();
    wrap(&hsm, "rsa-oaep", "rsa-kek", "target", Some("target.oaep")).ok();

    // The attack: let the wrapping keys decrypt, then decrypt the blobs.
    for kek in ["kek", "rsa-kek"] {
        let refused = set(&hsm, AS_ALICE, kek, "decrypt", "true").fails(4, "invalid-input");
        assert!(
            message(&refused).contains("wrap") && message(&refused).contains("decrypt"),
            "{refused}"
        );
    }
    decrypt(&hsm, "aes-gcm", "kek", "target.gcm").fails(3, "permission-denied");
    decrypt(&hsm, "rsa-oaep", "rsa-kek", "target.oaep").fails(3, "permission-denied");

    // Nor can a key be made with both from the start.
    let both = hsm.run(
        AS_ALICE,
        &[
            "key",
            "generate-symmetric",
            "aes",
            "--key-length-bytes",
            "32",
            "--label",
            "both",
            "--attributes",
            "wrap,decrypt",
        ],
        &[],
    );
    both.fails(4, "invalid-input");

    // A data key never opens a wrapped blob, even one made under a key of
    // the same material: the formats are apart (checked in hsm-crypto);
    // here, a decrypt-only key of the same type refuses the blob as data.
    aes(&hsm, "data", "encrypt,decrypt", &[]);
    decrypt(&hsm, "aes-gcm", "data", "target.gcm").fails(4, "invalid-input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chosen_data_never_unwraps_as_a_sensitive_key() {
    let (_cluster, hsm, _work) = cluster().await;
    aes(&hsm, "kek", "wrap,unwrap", &[]);
    // The attack: let the unwrapping key encrypt bytes the caller chose,
    // then unwrap the ciphertext as a "sensitive" key.
    let refused = set(&hsm, AS_ALICE, "kek", "encrypt", "true").fails(4, "invalid-input");
    assert!(message(&refused).contains("encrypt"), "{refused}");

    // With a key that may encrypt and a separate one that unwraps, data
    // encrypted under one is no wrapped key for the other...
    aes(&hsm, "enc", "encrypt,decrypt", &[]);
    std::fs::write(hsm.file("chosen.bin"), [7u8; 32]).expect("write");
    hsm.run(
        AS_ALICE,
        &[
            "crypto",
            "encrypt",
            "aes-gcm",
            "--key-filter",
            &filter("enc"),
            "--data-path",
            "chosen.bin",
            "--path",
            "chosen.gcm",
        ],
        &[],
    )
    .ok();
    unwrap(&hsm, "aes-gcm", "kek", "chosen.gcm", "planted").fails(4, "invalid-input");

    // ...and a key whose material the caller knows is marked as such.
    let imported = import_aes(&hsm, "known", [9u8; 32], "wrap");
    assert_eq!(imported["key"]["attributes"]["local"], false, "{imported}");
    aes(&hsm, "secret", "encrypt,decrypt", &[]);
    let secret_local = attribute(&hsm, "secret", "local");
    assert_eq!(secret_local, true);
    let error =
        wrap(&hsm, "aes-key-wrap-pad", "known", "secret", None).fails(3, "permission-denied");
    assert!(message(&error).contains("trusted"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwrapping_an_old_blob_keeps_wrap_with_trusted() {
    let (_cluster, hsm, _work) = cluster().await;
    aes(&hsm, "kek", "wrap,unwrap", &[]);
    aes(
        &hsm,
        "precious",
        "encrypt,decrypt",
        &["--wrap-with-trusted", "true"],
    );
    set(&hsm, AS_ADMIN, "kek", "trusted", "true").ok();
    wrap(
        &hsm,
        "aes-key-wrap-pad",
        "kek",
        "precious",
        Some("precious.kwp"),
    )
    .ok();
    set(&hsm, AS_ADMIN, "kek", "trusted", "false").ok();

    let copy = unwrap(&hsm, "aes-key-wrap-pad", "kek", "precious.kwp", "copy").ok();
    assert_eq!(
        copy["key"]["attributes"]["wrap-with-trusted"], true,
        "{copy}"
    );
    // And the untrusted key cannot wrap the copy out again.
    wrap(&hsm, "aes-key-wrap-pad", "kek", "copy", None).fails(3, "permission-denied");
    // A trusted key's attributes stay as the officer left them.
    set(&hsm, AS_ADMIN, "kek", "trusted", "true").ok();
    let refused = set(&hsm, AS_ALICE, "kek", "label", "renamed").fails(3, "permission-denied");
    assert!(message(&refused).contains("trusted"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_a_key_is_shared_with_sees_no_other_users_of_it() {
    let (cluster, hsm, _work) = cluster().await;
    let admin = cluster.client().await;
    admin
        .login(user("admin"), ADMIN)
        .await
        .expect("admin login");
    for name in ["bob", "carol"] {
        admin
            .create_user(user(name), Role::Cu, "shared-user-password")
            .await
            .expect("create user");
    }
    aes(&hsm, "team", "encrypt,decrypt", &[]);
    for name in ["bob", "carol"] {
        hsm.run(
            AS_ALICE,
            &[
                "key",
                "share",
                "--key-filter",
                &filter("team"),
                "--username",
                name,
            ],
            &[],
        )
        .ok();
    }
    let shared = |who: Option<(&str, &str)>| {
        let listed = hsm
            .run(who, &["key", "list", "--filter", &filter("team")], &[])
            .ok();
        listed["matched_keys"][0]["key-info"]["shared-users"].clone()
    };
    assert_eq!(shared(AS_ALICE), serde_json::json!(["bob", "carol"]));
    assert_eq!(shared(AS_ADMIN), serde_json::json!(["bob", "carol"]));
    assert_eq!(
        shared(Some(("bob", "shared-user-password"))),
        serde_json::json!(["bob"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_wrapped_under_a_trusted_outside_key_protects_nothing_after() {
    let (_cluster, hsm, _work) = cluster().await;
    // A key-encryption key the caller knows (a partner HSM's, say), which
    // an officer trusts so alice may export keys under it.
    import_aes(&hsm, "partner", [5u8; 32], "wrap");
    set(&hsm, AS_ADMIN, "partner", "trusted", "true").ok();
    aes(&hsm, "kek", "wrap,unwrap", &[]);
    aes(&hsm, "secret", "encrypt,decrypt", &[]);
    assert_eq!(attribute(&hsm, "kek", "local"), true);
    // The kek goes out under the partner's key: whoever holds that key
    // now knows the kek...
    wrap(&hsm, "aes-key-wrap-pad", "partner", "kek", Some("kek.kwp")).ok();
    assert_eq!(attribute(&hsm, "kek", "local"), false);
    assert_eq!(attribute(&hsm, "kek", "always-sensitive"), false);
    // ...so it no longer wraps sensitive keys on its own.
    let error = wrap(&hsm, "aes-key-wrap-pad", "kek", "secret", None).fails(3, "permission-denied");
    assert!(message(&error).contains("known outside"), "{error}");
}
