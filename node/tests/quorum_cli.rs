//! Quorum approvals and second factors through the `hsm` command line, as
//! officers would use them, against real `hsm-node` processes: Ed25519
//! keys made by OpenSSL, approval keys registered, a quorum value of 2 on
//! user management; an operation refused alone and with one approval,
//! applied with two (one signed by `hsm`, one by `openssl pkeyutl`); a
//! used token refused the second time, an expired one refused (the
//! cluster's clock moved by libfaketime); a second factor that logins need,
//! a wrong one counted as a failed login.
//!
//! The `hsm` runner is `procs::cli`.

mod procs;

use std::path::Path;

use procs::cli::{message, Hsm};
use procs::{openssl, Cluster, ADMIN_PASSWORD};

const ADMIN: &str = "admin-password-quorum";
const CAROL: &str = "carol-password-quorum";
const DAVE: &str = "dave-password-quorum";
const BOB: &str = "bob-password-quorum";

/// One test at a time: each runs a cluster, and three at once on a small
/// machine slow every login past its deadlines.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Where Debian's `faketime` package puts the library (`./x` installs it).
const LIBFAKETIME: [&str; 2] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
];

/// An Ed25519 key pair made by OpenSSL: `name.pem` and `name.pub`.
fn keypair(dir: &Path, name: &str) {
    let pem = format!("{name}.pem");
    let (ok, out) = openssl(dir, &["genpkey", "-algorithm", "ed25519", "-out", &pem]);
    assert!(ok, "{out}");
    let public = format!("{name}.pub");
    let (ok, out) = openssl(dir, &["pkey", "-in", &pem, "-pubout", "-out", &public]);
    assert!(ok, "{out}");
}

fn activate(hsm: &Hsm) {
    hsm.run(
        Some(("admin", ADMIN_PASSWORD)),
        &["cluster", "activate", "--new-password-env", "NEW_ADMIN"],
        &[("NEW_ADMIN", ADMIN)],
    )
    .ok();
}

fn create_user(hsm: &Hsm, name: &str, role: &str, password: &str) {
    hsm.run(
        Some(("admin", ADMIN)),
        &[
            "user",
            "create",
            "--username",
            name,
            "--role",
            role,
            "--password-env",
            "NEW_PW",
        ],
        &[("NEW_PW", password)],
    )
    .ok();
}

/// Officers admin, carol and dave, each with an approval key (made by
/// OpenSSL, registered by the officer itself); the user service at 2.
fn officers_with_quorum_2(hsm: &Hsm) {
    activate(hsm);
    create_user(hsm, "carol", "admin", CAROL);
    create_user(hsm, "dave", "admin", DAVE);
    for (name, password) in [("admin", ADMIN), ("carol", CAROL), ("dave", DAVE)] {
        keypair(&hsm.dir, name);
        let public = format!("{name}.pub");
        let registered = hsm
            .run(
                Some((name, password)),
                &[
                    "user",
                    "change-quorum",
                    "token-sign",
                    "register",
                    "--public-key",
                    &public,
                ],
                &[],
            )
            .ok();
        assert_eq!(registered["username"], name);
    }
    hsm.run(
        Some(("admin", ADMIN)),
        &["quorum", "set-value", "--service", "user", "--value", "2"],
        &[],
    )
    .ok();
}

fn create_bob(hsm: &Hsm) -> procs::cli::Run {
    hsm.run(
        Some(("admin", ADMIN)),
        &[
            "user",
            "create",
            "--username",
            "bob",
            "--role",
            "crypto-user",
            "--password-env",
            "NEW_PW",
        ],
        &[("NEW_PW", BOB)],
    )
}

fn generate(hsm: &Hsm, file: &str, operation: &[&str]) -> serde_json::Value {
    let mut args = vec!["quorum", "token-sign", "generate", "--out", file];
    args.extend_from_slice(operation);
    hsm.run(Some(("admin", ADMIN)), &args, &[]).ok()
}

/// `approver` signs the token file with its key through `hsm` (offline).
fn sign_with_hsm(hsm: &Hsm, file: &str, approver: &str) {
    let key = format!("{approver}.pem");
    hsm.run(
        None,
        &[
            "quorum",
            "token-sign",
            "sign",
            "--token",
            file,
            "--approver",
            approver,
            "--private-key",
            &key,
        ],
        &[],
    )
    .ok();
}

/// `approver` signs the token's statement with `openssl pkeyutl`, and the
/// signature is added to the token file.
fn sign_with_openssl(hsm: &Hsm, file: &str, approver: &str) {
    let text = std::fs::read_to_string(hsm.file(file)).expect("token file");
    let token: serde_json::Value = serde_json::from_str(&text).expect("json");
    std::fs::write(
        hsm.file("statement.b64"),
        token["statement"].as_str().expect("statement"),
    )
    .expect("write");
    let (ok, out) = openssl(
        &hsm.dir,
        &[
            "base64",
            "-d",
            "-A",
            "-in",
            "statement.b64",
            "-out",
            "statement.bin",
        ],
    );
    assert!(ok, "{out}");
    let key = format!("{approver}.pem");
    let sig = format!("{approver}.sig");
    let (ok, out) = openssl(
        &hsm.dir,
        &[
            "pkeyutl",
            "-sign",
            "-rawin",
            "-inkey",
            &key,
            "-in",
            "statement.bin",
            "-out",
            &sig,
        ],
    );
    assert!(ok, "{out}");
    hsm.run(
        None,
        &[
            "quorum",
            "token-sign",
            "sign",
            "--token",
            file,
            "--approver",
            approver,
            "--signature",
            &sig,
        ],
        &[],
    )
    .ok();
}

fn approve(hsm: &Hsm, file: &str) -> serde_json::Value {
    hsm.run(
        Some(("admin", ADMIN)),
        &["quorum", "token-sign", "approve", "--token", file],
        &[],
    )
    .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_officer_operation_under_quorum_2_needs_two_officers_and_a_token_serves_once() {
    let _one = ONE_AT_A_TIME.lock().await;
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let work = tempfile::tempdir().expect("tempdir");
    let hsm = Hsm {
        config: cluster.client_config(),
        dir: work.path().to_path_buf(),
    };
    officers_with_quorum_2(&hsm);

    // Alone: refused, saying what is needed.
    let alone = create_bob(&hsm).fails(3, "permission-denied");
    assert!(
        message(&alone).contains("approval of 2 crypto officers"),
        "{alone}"
    );

    let token = generate(
        &hsm,
        "bob.json",
        &["user-create", "--username", "bob", "--role", "crypto-user"],
    );
    assert_eq!(token["needs"], 2, "{token}");
    assert!(
        token["operation"]
            .as_str()
            .is_some_and(|o| o.contains("create user bob")),
        "{token}"
    );

    // An approver signs what the statement says, not what the file's
    // words say: a friendly "create user bob" over the statement of a
    // token to remove a member is refused before anything is signed.
    generate(&hsm, "other.json", &["node-remove", "--node-id", "2"]);
    let other: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(hsm.file("other.json")).expect("read"))
            .expect("json");
    let mut lying: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(hsm.file("bob.json")).expect("read"))
            .expect("json");
    lying["statement"] = other["statement"].clone();
    std::fs::write(hsm.file("lying.json"), lying.to_string()).expect("write");
    let refused = hsm
        .run(
            None,
            &[
                "quorum",
                "token-sign",
                "sign",
                "--token",
                "lying.json",
                "--approver",
                "carol",
                "--private-key",
                "carol.pem",
            ],
            &[],
        )
        .fails(4, "invalid-input");
    assert!(message(&refused).contains("not signed"), "{refused}");
    let other_token = other["token"].as_str().expect("token").to_owned();
    hsm.run(
        Some(("admin", ADMIN)),
        &["quorum", "token-sign", "delete", "--token", &other_token],
        &[],
    )
    .ok();

    // One approval (carol, signed by hsm): still refused.
    sign_with_hsm(&hsm, "bob.json", "carol");
    let one = approve(&hsm, "bob.json");
    assert_eq!(one["approvals"], serde_json::json!(["carol"]), "{one}");
    let with_one = create_bob(&hsm).fails(3, "permission-denied");
    assert!(message(&with_one).contains("has 1"), "{with_one}");

    // A forged approval: dave's name, carol's signature.
    let forged_file = "forged.json";
    std::fs::copy(hsm.file("bob.json"), hsm.file(forged_file)).expect("copy");
    let text = std::fs::read_to_string(hsm.file(forged_file)).expect("read");
    let mut forged: serde_json::Value = serde_json::from_str(&text).expect("json");
    forged["approvals"][0]["approver"] = "dave".into();
    std::fs::write(hsm.file(forged_file), forged.to_string()).expect("write");
    let refused = hsm
        .run(
            Some(("admin", ADMIN)),
            &["quorum", "token-sign", "approve", "--token", forged_file],
            &[],
        )
        .fails(3, "permission-denied");
    assert!(message(&refused).contains("does not verify"), "{refused}");

    // The second (dave, signed by openssl): applied.
    sign_with_openssl(&hsm, "bob.json", "dave");
    let two = approve(&hsm, "bob.json");
    assert_eq!(two["approvals"].as_array().map(Vec::len), Some(2), "{two}");
    create_bob(&hsm).ok();
    let who = hsm.run(Some(("bob", BOB)), &["login"], &[]).ok();
    assert_eq!(who["role"], "crypto-user");

    // The token is used up: the same token file again approves nothing.
    let tokens = hsm
        .run(
            Some(("admin", ADMIN)),
            &["quorum", "token-sign", "list"],
            &[],
        )
        .ok();
    assert_eq!(tokens["tokens"], serde_json::json!([]), "{tokens}");
    hsm.run(
        Some(("admin", ADMIN)),
        &["quorum", "token-sign", "approve", "--token", "bob.json"],
        &[],
    )
    .fails(4, "invalid-input");

    // Reuse: one token sets bob's password once.
    let reset = |password: &str| {
        hsm.run(
            Some(("admin", ADMIN)),
            &[
                "user",
                "change-password",
                "--username",
                "bob",
                "--password-env",
                "NEW_PW",
            ],
            &[("NEW_PW", password)],
        )
    };
    generate(
        &hsm,
        "reset.json",
        &["user-change-password", "--username", "bob"],
    );
    sign_with_hsm(&hsm, "reset.json", "carol");
    sign_with_hsm(&hsm, "reset.json", "dave");
    approve(&hsm, "reset.json");
    reset("bob-second-password").ok();
    let reused = reset("bob-third-password").fails(3, "permission-denied");
    assert!(message(&reused).contains("has 0"), "{reused}");

    // Lowering the quorum alone is the quorum service's business: at 1,
    // admin alone may; what the user service needs stays 2 until then.
    let show = hsm
        .run(Some(("admin", ADMIN)), &["quorum", "show"], &[])
        .ok();
    assert_eq!(show["values"]["user"], 2, "{show}");
    assert_eq!(show["approvers"].as_array().map(Vec::len), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_factor_is_needed_at_login_and_a_wrong_one_is_a_failed_login() {
    let _one = ONE_AT_A_TIME.lock().await;
    let cluster = Cluster::start(1);
    cluster.wait_ready().await;
    let work = tempfile::tempdir().expect("tempdir");
    let hsm = Hsm {
        config: cluster.client_config(),
        dir: work.path().to_path_buf(),
    };
    activate(&hsm);
    create_user(&hsm, "carol", "admin", CAROL);
    keypair(&hsm.dir, "phone");
    keypair(&hsm.dir, "other");
    let carol = Some(("carol", CAROL));

    let set = hsm
        .run(
            carol,
            &["user", "change-mfa", "--public-key", "phone.pub"],
            &[],
        )
        .ok();
    assert_eq!(set["mfa"], true);

    // Without the second factor: refused, and not counted.
    let plain = hsm.run(carol, &["login"], &[]).fails(3, "login-failed");
    assert!(message(&plain).contains("second factor"), "{plain}");
    // With it: in.
    let with = hsm
        .run(carol, &["--mfa-key", "phone.pem", "login"], &[])
        .ok();
    assert_eq!(with["role"], "admin");
    // With another key: failed logins, counted toward the lockout as wrong
    // passwords are: five lock the user, whose right key then no longer
    // helps.
    for _ in 0..5 {
        let wrong = hsm.run(carol, &["--mfa-key", "other.pem", "login"], &[]);
        assert_eq!(wrong.code, 3, "{}", wrong.stdout);
    }
    let users = hsm.run(Some(("admin", ADMIN)), &["user", "list"], &[]).ok();
    let row = users["users"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["username"] == "carol")
        .cloned()
        .expect("carol");
    assert_eq!(row["locked"], true, "{users}");
    hsm.run(carol, &["--mfa-key", "phone.pem", "login"], &[])
        .fails(3, "locked");
    hsm.run(
        Some(("admin", ADMIN)),
        &["user", "unlock", "--username", "carol"],
        &[],
    )
    .ok();
    hsm.run(carol, &["--mfa-key", "phone.pem", "login"], &[])
        .ok();
    // The key file through the environment, as a service would pass it.
    hsm.run(carol, &["login"], &[("HSM_MFA_KEY", "phone.pem")])
        .ok();

    // A lost device: an officer clears it.
    hsm.run(
        Some(("admin", ADMIN)),
        &["user", "change-mfa", "--username", "carol", "--disable"],
        &[],
    )
    .ok();
    hsm.run(carol, &["login"], &[]).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refused() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(libfaketime) = LIBFAKETIME.into_iter().find(|p| Path::new(p).exists()) else {
        eprintln!(
            "skipped: libfaketime is not installed at any of {LIBFAKETIME:?} \
             (Debian package faketime; ./x installs it)"
        );
        return;
    };
    // The node's clock comes from a file this test rewrites: the cluster's
    // time (the leader stamps it into every event) moves on by 31 minutes
    // at once, past the token's 30.
    let clock = tempfile::tempdir().expect("tempdir");
    let offset = clock.path().join("offset");
    std::fs::write(&offset, "+0").expect("write");
    let offset_path = offset.to_string_lossy().into_owned();
    let cluster = Cluster::start_with_env(
        1,
        &[
            ("LD_PRELOAD", libfaketime),
            ("FAKETIME_TIMESTAMP_FILE", offset_path.as_str()),
            ("FAKETIME_CACHE_DURATION", "1"),
            ("DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    cluster.wait_ready().await;
    let work = tempfile::tempdir().expect("tempdir");
    let hsm = Hsm {
        config: cluster.client_config(),
        dir: work.path().to_path_buf(),
    };
    officers_with_quorum_2(&hsm);
    generate(
        &hsm,
        "bob.json",
        &["user-create", "--username", "bob", "--role", "crypto-user"],
    );
    sign_with_hsm(&hsm, "bob.json", "carol");
    sign_with_hsm(&hsm, "bob.json", "dave");
    approve(&hsm, "bob.json");

    std::fs::write(&offset, "+31m").expect("write");
    // Give libfaketime's one-second cache time to read it.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let expired = create_bob(&hsm).fails(4, "invalid-input");
    assert!(message(&expired).contains("expired"), "{expired}");
}
