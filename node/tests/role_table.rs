//! Every operation of the client protocol, run as every role (and without a
//! session) against three `hsm-node` processes, compared with the role
//! table written out below. The table here is the product's promise; it is
//! deliberately not computed from the code under test.

mod procs;

use hsm_client::Client;
use hsm_proto::client::{ByteBuf, ErrorKind, KeyFilter, Operation, Secret};
use hsm_proto::mechanism::{
    DeriveMechanism, DigestAlgorithm, EncryptMechanism, SignMechanism, WrapMechanism,
};
use hsm_proto::{
    BackupId, KeyAttribute, KeyAttributes, KeyFlag, KeyId, KeySpec, NodeId, NodeRecord, Role,
};
use procs::{user, Cluster, ADMIN_PASSWORD};

/// Who asks: no session, or a user of a role.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Nobody,
    Preco,
    Co,
    Cu,
}

/// The role table: for each operation, whether it is allowed to
/// [nobody, precrypto officer, crypto officer, crypto user]. (No appliance
/// user can be created from Raft protocol 3 on; what one made earlier may
/// do is `hsm_state::authz`'s table, tested there.)
const TABLE: &[(&str, [bool; 4])] = &[
    ("cluster-info", [true, true, true, true]),
    ("change-own-password", [false, true, true, true]),
    ("change-other-password", [false, false, true, false]),
    ("create-user", [false, false, true, false]),
    ("list-users", [false, false, true, false]),
    ("unlock-user", [false, false, true, false]),
    ("delete-user", [false, false, true, false]),
    ("add-node", [false, false, true, false]),
    ("remove-node", [false, false, true, false]),
    ("rotate-domain-key", [false, false, true, false]),
    ("set-trusted", [false, false, true, false]),
    ("list-keys", [false, false, true, true]),
    ("get-key", [false, false, true, true]),
    ("generate-key", [false, false, false, true]),
    ("import-key", [false, false, false, true]),
    ("unwrap-key", [false, false, false, true]),
    ("derive-key", [false, false, false, true]),
    ("export-public-key", [false, false, false, true]),
    ("sign", [false, false, false, true]),
    ("verify", [false, false, false, true]),
    ("encrypt", [false, false, false, true]),
    ("decrypt", [false, false, false, true]),
    ("wrap-key", [false, false, false, true]),
    ("share-key", [false, false, false, true]),
    ("unshare-key", [false, false, false, true]),
    ("set-key-attribute", [false, false, false, true]),
    ("digest", [false, false, false, true]),
    ("random", [false, false, false, true]),
    ("delete-key", [false, false, false, true]),
    ("create-backup", [false, false, true, false]),
    ("list-backups", [false, false, true, false]),
    ("describe-backup", [false, false, true, false]),
    ("verify-backup", [false, false, true, false]),
    ("keep-backup", [false, false, true, false]),
    ("delete-backup", [false, false, true, false]),
    ("quorum-status", [false, false, true, false]),
    ("generate-quorum-token", [false, false, true, false]),
    ("set-own-mfa", [false, false, true, true]),
    ("key-versions", [false, false, false, true]),
    ("encrypt-batch", [false, false, false, true]),
    ("decrypt-batch", [false, false, false, true]),
    ("sign-batch", [false, false, false, true]),
    ("verify-batch", [false, false, false, true]),
    ("generate-data-key", [false, false, false, true]),
    ("rotate-key", [false, false, false, true]),
    ("set-min-decryption-version", [false, false, false, true]),
    ("trim-key-versions", [false, false, false, true]),
    ("audit-head", [false, false, true, false]),
];

fn allowed(op: &str, who: Who) -> bool {
    let row = TABLE
        .iter()
        .find(|(name, _)| *name == op)
        .unwrap_or_else(|| panic!("{op} is not in the table"));
    row.1[who as usize]
}

/// Keys owned by the crypto user `carol`, made before the run.
struct Keys {
    ec: KeyId,
    aes: KeyId,
    /// A wrapping key (wrap and unwrap conflict with decrypt and encrypt).
    kek: KeyId,
    x25519: KeyId,
    ciphertext: Vec<u8>,
    signature: Vec<u8>,
    wrapped: Vec<u8>,
    peer_public: Vec<u8>,
    doomed: KeyId,
    /// A backup made by the admin, which the crypto officer deletes.
    backup: BackupId,
    /// The log index after they were made.
    index: u64,
}

/// Every usage but wrap and unwrap, which conflict with encrypt and decrypt.
fn all_usages() -> KeyAttributes {
    KeyAttributes {
        encrypt: true,
        decrypt: true,
        sign: true,
        verify: true,
        derive: true,
        ..KeyAttributes::default()
    }
}

fn wrapping_usages() -> KeyAttributes {
    KeyAttributes {
        wrap: true,
        unwrap: true,
        ..KeyAttributes::default()
    }
}

/// One instance of every operation, in an order where each can succeed
/// for a role that may run it (`me` is the caller's own name).
fn operations(me: &str, keys: &Keys, round: u32) -> Vec<(&'static str, Operation)> {
    let other = if me == "carl" { "victim" } else { "carl" };
    vec![
        ("cluster-info", Operation::ClusterInfo),
        (
            "list-users",
            Operation::ListUsers {
                after: None,
                limit: 100,
            },
        ),
        (
            "create-user",
            Operation::CreateUser {
                username: user(&format!("made{round}")),
                role: Role::Cu,
                password: Secret::from("made-password-1"),
            },
        ),
        (
            "change-other-password",
            Operation::ChangePassword {
                username: user(other),
                new_password: Secret::from(format!("other-password-{round}").as_str()),
            },
        ),
        (
            "unlock-user",
            Operation::UnlockUser {
                username: user("victim"),
            },
        ),
        (
            "add-node",
            Operation::AddNode {
                node: NodeRecord {
                    id: NodeId(90 + u64::from(round)),
                    signing_key: [round as u8 + 1; 32],
                    agreement_key: [9; 32],
                    transport_key: [9; 32],
                    zone: "nowhere".into(),
                    address: "127.0.0.1:9".into(),
                },
            },
        ),
        (
            "set-trusted",
            Operation::SetKeyAttribute {
                key: keys.aes,
                attribute: KeyAttribute::Flag(KeyFlag::Trusted, true),
            },
        ),
        (
            "list-keys",
            Operation::ListKeys {
                filter: KeyFilter::default(),
                after: None,
                limit: 100,
            },
        ),
        ("get-key", Operation::GetKey { key: keys.ec }),
        (
            "generate-key",
            Operation::GenerateKey {
                spec: KeySpec::Aes { bits: 128 },
                attributes: KeyAttributes::default(),
                unique_label: false,
            },
        ),
        (
            "import-key",
            Operation::ImportKey {
                spec: KeySpec::Aes { bits: 128 },
                attributes: KeyAttributes {
                    sensitive: false,
                    ..KeyAttributes::default()
                },
                material: Secret::new(vec![7; 16]),
                unique_label: false,
            },
        ),
        (
            "unwrap-key",
            Operation::UnwrapKey {
                wrapping_key: keys.kek,
                mechanism: WrapMechanism::AesKeyWrapPad,
                wrapped: keys.wrapped.clone(),
                spec: Some(KeySpec::Aes { bits: 128 }),
                attributes: KeyAttributes::default(),
                unique_label: false,
            },
        ),
        (
            "derive-key",
            Operation::DeriveKey {
                key: keys.x25519,
                mechanism: DeriveMechanism::EcdhHkdfSha256,
                peer_public_key: keys.peer_public.clone(),
                context: b"ctx".to_vec(),
                spec: KeySpec::Aes { bits: 256 },
                attributes: KeyAttributes::default(),
                unique_label: false,
            },
        ),
        (
            "export-public-key",
            Operation::ExportPublicKey { key: keys.ec },
        ),
        (
            "sign",
            Operation::Sign {
                key: keys.ec,
                mechanism: SignMechanism::EcdsaSha256,
                message: b"m".to_vec(),
            },
        ),
        (
            "verify",
            Operation::Verify {
                key: keys.ec,
                mechanism: SignMechanism::EcdsaSha256,
                message: b"m".to_vec(),
                signature: keys.signature.clone(),
            },
        ),
        (
            "encrypt",
            Operation::Encrypt {
                key: keys.aes,
                mechanism: EncryptMechanism::AesGcm,
                plaintext: Secret::from("p"),
                aad: vec![],
            },
        ),
        (
            "decrypt",
            Operation::Decrypt {
                key: keys.aes,
                mechanism: EncryptMechanism::AesGcm,
                ciphertext: keys.ciphertext.clone(),
                aad: vec![],
            },
        ),
        (
            "wrap-key",
            Operation::WrapKey {
                wrapping_key: keys.kek,
                key: keys.doomed,
                mechanism: WrapMechanism::AesKeyWrapPad,
            },
        ),
        (
            "share-key",
            Operation::ShareKey {
                key: keys.ec,
                with: user("dora"),
            },
        ),
        (
            "unshare-key",
            Operation::UnshareKey {
                key: keys.ec,
                with: user("dora"),
            },
        ),
        (
            "set-key-attribute",
            Operation::SetKeyAttribute {
                key: keys.ec,
                attribute: KeyAttribute::Label(format!("relabelled-{round}")),
            },
        ),
        (
            "digest",
            Operation::Digest {
                algorithm: DigestAlgorithm::Sha256,
                data: b"d".to_vec(),
            },
        ),
        ("random", Operation::Random { len: 16 }),
        ("key-versions", Operation::KeyVersions { key: keys.aes }),
        (
            "encrypt-batch",
            Operation::EncryptBatch {
                key: keys.aes,
                mechanism: EncryptMechanism::AesGcm,
                items: vec![hsm_proto::client::EncryptItem {
                    plaintext: Secret::from("p"),
                    aad: ByteBuf::new(),
                }],
            },
        ),
        (
            "decrypt-batch",
            Operation::DecryptBatch {
                key: keys.aes,
                mechanism: EncryptMechanism::AesGcm,
                items: vec![hsm_proto::client::DecryptItem {
                    version: Some(1),
                    ciphertext: ByteBuf::from(keys.ciphertext.clone()),
                    aad: ByteBuf::new(),
                }],
            },
        ),
        (
            "sign-batch",
            Operation::SignBatch {
                key: keys.ec,
                mechanism: SignMechanism::EcdsaSha256,
                messages: vec![ByteBuf::from(b"m".to_vec())],
            },
        ),
        (
            "verify-batch",
            Operation::VerifyBatch {
                key: keys.ec,
                mechanism: SignMechanism::EcdsaSha256,
                items: vec![hsm_proto::client::VerifyItem {
                    version: None,
                    message: ByteBuf::from(b"m".to_vec()),
                    signature: ByteBuf::from(keys.signature.clone()),
                }],
            },
        ),
        (
            "generate-data-key",
            Operation::GenerateDataKey {
                key: keys.aes,
                bits: 256,
                aad: ByteBuf::new(),
                plaintext: true,
            },
        ),
        // Rotates a key no other operation here depends on.
        ("rotate-key", Operation::RotateKey { key: keys.x25519 }),
        (
            "set-min-decryption-version",
            Operation::SetMinDecryptionVersion {
                key: keys.x25519,
                version: 1,
            },
        ),
        (
            "trim-key-versions",
            Operation::TrimKeyVersions {
                key: keys.x25519,
                below: 1,
            },
        ),
        ("delete-key", Operation::DeleteKey { key: keys.doomed }),
        ("create-backup", Operation::CreateBackup),
        ("list-backups", Operation::ListBackups),
        (
            "describe-backup",
            Operation::DescribeBackup { id: keys.backup },
        ),
        ("verify-backup", Operation::VerifyBackup { id: keys.backup }),
        (
            "keep-backup",
            Operation::KeepBackup {
                id: keys.backup,
                forever: false,
            },
        ),
        ("delete-backup", Operation::DeleteBackup { id: keys.backup }),
        ("quorum-status", Operation::QuorumStatus),
        ("audit-head", Operation::AuditHead),
        (
            "generate-quorum-token",
            Operation::GenerateQuorumToken {
                intent: hsm_proto::quorum::Intent::RotateDomainKey,
            },
        ),
        (
            "delete-user",
            Operation::DeleteUser {
                username: user(&format!("made{round}")),
            },
        ),
    ]
}

/// Runs every operation as `client` and checks each verdict against the
/// table: refused for the role exactly when the table says so (and never
/// refused for another reason it could hide behind).
async fn check(
    client: &Client,
    who: Who,
    (me, password): (&str, &str),
    keys: &Keys,
    round: u32,
) -> Vec<String> {
    // Read what every earlier client wrote.
    client.observe_index(keys.index);
    let mut wrong = Vec::new();
    let mut ops = operations(me, keys, round);
    // Near the end: both end every session (removing a member makes the
    // leader rotate the domain key), so the client logs in again after.
    ops.push(("rotate-domain-key", Operation::RotateDomainKey));
    ops.push((
        "remove-node",
        Operation::RemoveNode {
            node: NodeId(90 + u64::from(round)),
        },
    ));
    ops.push((
        "set-own-mfa",
        Operation::SetOwnMfa {
            current_password: Secret::from(password),
            key: None,
        },
    ));
    // Last: it ends this session (and before activation, activates).
    ops.push((
        "change-own-password",
        Operation::ChangeOwnPassword {
            current_password: Secret::from(password),
            new_password: Secret::from(format!("{me}-password-{round}-new").as_str()),
        },
    ));
    for (name, op) in ops {
        if matches!(name, "remove-node" | "set-own-mfa" | "change-own-password") && who == Who::Co {
            // After its own rotation, and after the one its removal caused
            // (logins wait while a rotation is due).
            login_again(client, me, password).await;
        }
        let result = client.call(op).await;
        let refused_kind = match who {
            Who::Nobody => ErrorKind::Unauthenticated,
            _ => ErrorKind::PermissionDenied,
        };
        let refused = matches!(&result, Err(e) if e.kind() == Some(refused_kind));
        let expect = allowed(name, who);
        if refused == expect {
            wrong.push(format!(
                "{who:?} {name}: expected allowed={expect}, got {result:?}"
            ));
        } else if expect {
            // Allowed operations succeed, except unlocking a user that is
            // not locked, which is a conflict, and a rotation when the
            // leader already rotated after the removal just before.
            let conflict_ok = name == "unlock-user" || name == "rotate-domain-key";
            match &result {
                Err(e) if conflict_ok && e.kind() == Some(ErrorKind::Conflict) => {}
                Err(e) => wrong.push(format!("{who:?} {name}: allowed but failed: {e}")),
                Ok(_) => {}
            }
        }
    }
    wrong
}

/// Logs `client` in again, waiting out a rotation that is due.
async fn login_again(client: &Client, me: &str, password: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match client.login(user(me), password).await {
            Ok(_) => return,
            Err(e) => assert!(
                std::time::Instant::now() < deadline,
                "login after a rotation: {e}"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

async fn login(cluster: &Cluster, name: &str, password: &str) -> Client {
    let c = cluster.client().await;
    c.login(user(name), password).await.expect("login");
    c
}

async fn carol_keys(carol: &Client) -> Keys {
    let ec = carol
        .generate_key(KeySpec::EcP256, all_usages(), false)
        .await
        .expect("ec");
    let aes = carol
        .generate_key(KeySpec::Aes { bits: 256 }, all_usages(), false)
        .await
        .expect("aes");
    let x25519 = carol
        .generate_key(KeySpec::X25519, all_usages(), false)
        .await
        .expect("x25519");
    let kek = carol
        .generate_key(KeySpec::Aes { bits: 256 }, wrapping_usages(), false)
        .await
        .expect("kek");
    let doomed = carol
        .generate_key(KeySpec::Aes { bits: 128 }, all_usages(), false)
        .await
        .expect("doomed");
    let peer = carol
        .generate_key(KeySpec::X25519, all_usages(), false)
        .await
        .expect("peer");
    Keys {
        ec: ec.id,
        aes: aes.id,
        kek: kek.id,
        x25519: x25519.id,
        ciphertext: carol
            .encrypt(aes.id, EncryptMechanism::AesGcm, "p", vec![])
            .await
            .expect("encrypt"),
        signature: carol
            .sign(ec.id, SignMechanism::EcdsaSha256, b"m".to_vec())
            .await
            .expect("sign"),
        wrapped: carol
            .wrap_key(kek.id, doomed.id, WrapMechanism::AesKeyWrapPad)
            .await
            .expect("wrap"),
        peer_public: peer.public_key,
        doomed: doomed.id,
        backup: BackupId([7; 16]),
        index: carol.applied_index(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_operation_as_every_role_matches_the_role_table() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let no_keys = Keys {
        ec: KeyId(1),
        aes: KeyId(2),
        kek: KeyId(5),
        x25519: KeyId(3),
        ciphertext: vec![0; 40],
        signature: vec![0; 64],
        wrapped: vec![0; 24],
        peer_public: vec![0; 44],
        doomed: KeyId(4),
        backup: BackupId([7; 16]),
        index: 0,
    };
    let mut wrong = Vec::new();

    // Before activation: the precrypto officer, and nobody.
    let nobody = cluster.client().await;
    wrong.extend(check(&nobody, Who::Nobody, ("admin", ""), &no_keys, 0).await);
    let preco = login(&cluster, "admin", ADMIN_PASSWORD).await;
    // Its last operation (changing its own password) activates the cluster.
    wrong.extend(check(&preco, Who::Preco, ("admin", ADMIN_PASSWORD), &no_keys, 0).await);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    let admin = login(&cluster, "admin", "admin-password-0-new").await;
    for (name, role) in [
        ("carl", Role::Co),
        ("carol", Role::Cu),
        ("dora", Role::Cu),
        ("victim", Role::Cu),
    ] {
        admin
            .create_user(user(name), role, format!("{name}-password-0"))
            .await
            .expect("create");
    }
    let carol = login(&cluster, "carol", "carol-password-0").await;
    let mut keys = carol_keys(&carol).await;
    keys.backup = admin.create_backup().await.expect("backup").id;

    // Appliance users end with Raft protocol 3, which the leader raises a
    // new cluster to within seconds.
    let newest = *hsm_proto::protocol::RAFT.end();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while admin.member_status().await.expect("status").raft_protocol < newest {
        assert!(
            std::time::Instant::now() < deadline,
            "never raised to {newest}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let appliance = admin
        .create_user(user("abe"), Role::Au, "abe-password-0")
        .await;
    assert!(
        matches!(&appliance, Err(e) if e.kind() == Some(ErrorKind::PermissionDenied)),
        "an appliance user was created: {appliance:?}"
    );
    let nobody = cluster.client().await;
    wrong.extend(check(&nobody, Who::Nobody, ("carol", ""), &keys, 3).await);
    // The crypto user deletes its own key on the way.
    wrong.extend(check(&carol, Who::Cu, ("carol", "carol-password-0"), &keys, 4).await);
    // The crypto officer last: its removal and rotation end every session.
    let carl = login(&cluster, "carl", "carl-password-0").await;
    wrong.extend(check(&carl, Who::Co, ("carl", "carl-password-0"), &keys, 1).await);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
