//! Which operations are writes, and names of replies for errors.
//!
//! Both matches list every variant, so a new operation or reply does not
//! compile until it is classified here.

use hsm_proto::client::{Operation, Reply};

/// Whether `op` changes the replicated state (and so goes through the
/// leader and carries an idempotency id that matters). `Login` is a write:
/// a failed login is recorded cluster-wide.
pub(crate) fn is_write(op: &Operation) -> bool {
    match op {
        Operation::Login { .. }
        | Operation::AddNode { .. }
        | Operation::RemoveNode { .. }
        | Operation::RotateDomainKey
        | Operation::ChangePassword { .. }
        | Operation::ChangeOwnPassword { .. }
        | Operation::CreateUser { .. }
        | Operation::DeleteUser { .. }
        | Operation::UnlockUser { .. }
        | Operation::GenerateKey { .. }
        | Operation::ImportKey { .. }
        | Operation::ImportPublicKey { .. }
        | Operation::UnwrapKey { .. }
        | Operation::DeriveKey { .. }
        | Operation::ShareKey { .. }
        | Operation::UnshareKey { .. }
        | Operation::SetKeyAttribute { .. }
        | Operation::DeleteKey { .. }
        // Goes to the leader, which takes backups; a retry after a lost
        // answer may take a second one, which is harmless.
        | Operation::CreateBackup
        // Ending a session twice ends it once.
        | Operation::Logout { .. }
        // Not writes, but served by the leader: routed the same way.
        | Operation::TransferLeadership { .. }
        | Operation::MemberStatus
        | Operation::LoginChallenge { .. }
        | Operation::LoginMfa { .. }
        | Operation::SetOwnMfa { .. }
        | Operation::ResetMfa { .. }
        | Operation::SetApprovalKey { .. }
        | Operation::GenerateQuorumToken { .. }
        | Operation::ApproveQuorumToken { .. }
        | Operation::DeleteQuorumToken { .. }
        | Operation::SetQuorumValue { .. }
        | Operation::RotateKey { .. }
        | Operation::SetMinDecryptionVersion { .. }
        | Operation::TrimKeyVersions { .. } => true,
        Operation::ClusterInfo
        | Operation::ListUsers { .. }
        | Operation::WrapKey { .. }
        | Operation::GetKey { .. }
        | Operation::ListKeys { .. }
        | Operation::ExportPublicKey { .. }
        | Operation::Sign { .. }
        | Operation::SignMany { .. }
        | Operation::Verify { .. }
        | Operation::Encrypt { .. }
        | Operation::Decrypt { .. }
        | Operation::Digest { .. }
        | Operation::Random { .. }
        | Operation::ListBackups
        | Operation::QuorumStatus
        | Operation::DescribeBackup { .. }
        | Operation::VerifyBackup { .. }
        // Not replicated state: each member deletes or marks at the shared
        // destination, and doing either twice is harmless.
        | Operation::DeleteBackup { .. }
        | Operation::KeepBackup { .. }
        | Operation::KeyVersions { .. }
        | Operation::EncryptBatch { .. }
        | Operation::DecryptBatch { .. }
        | Operation::SignBatch { .. }
        | Operation::VerifyBatch { .. }
        | Operation::GenerateDataKey { .. }
        | Operation::AuditHead => false,
    }
}

/// A reply's variant name, without its contents (which may be secret).
pub(crate) fn reply_name(reply: &Reply) -> &'static str {
    match reply {
        Reply::Done => "done",
        Reply::DomainKeyRotated { .. } => "domain-key-rotated",
        Reply::LoggedIn { .. } => "logged-in",
        Reply::ClusterInfo(_) => "cluster-info",
        Reply::Users { .. } => "users",
        Reply::Key(_) => "key",
        Reply::Keys { .. } => "keys",
        Reply::PublicKey { .. } => "public-key",
        Reply::Wrapped(_) => "wrapped",
        Reply::Signature(_) => "signature",
        Reply::Verified(_) => "verified",
        Reply::Ciphertext(_) => "ciphertext",
        Reply::Plaintext(_) => "plaintext",
        Reply::Digest(_) => "digest",
        Reply::Random(_) => "random",
        Reply::Backup(_) => "backup",
        Reply::Backups(_) => "backups",
        Reply::BackupVerified(_) => "backup-verified",
        Reply::Signatures(_) => "signatures",
        Reply::LeadershipMoved { .. } => "leadership-moved",
        Reply::Members(_) => "members",
        Reply::LoginChallenge { .. } => "login-challenge",
        Reply::QuorumToken { .. } => "quorum-token",
        Reply::Quorum(_) => "quorum",
        Reply::KeyVersions(_) => "key-versions",
        Reply::Encrypted { .. } => "encrypted",
        Reply::Decrypted(_) => "decrypted",
        Reply::Signed { .. } => "signed",
        Reply::Verifications(_) => "verifications",
        Reply::DataKey { .. } => "data-key",
        Reply::AuditHead { .. } => "audit-head",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsm_proto::mechanism::SignMechanism;
    use hsm_proto::{KeyId, Username};

    #[test]
    fn state_changes_are_writes_and_crypto_is_not() {
        let alice = Username::new("alice").expect("name");
        assert!(is_write(&Operation::Login {
            username: alice.clone(),
            password: "pw".into()
        }));
        assert!(is_write(&Operation::DeleteKey { key: KeyId(1) }));
        assert!(!is_write(&Operation::ClusterInfo));
        assert!(!is_write(&Operation::Sign {
            key: KeyId(1),
            mechanism: SignMechanism::Ed25519,
            message: vec![]
        }));
        assert!(!is_write(&Operation::WrapKey {
            wrapping_key: KeyId(1),
            key: KeyId(2),
            mechanism: hsm_proto::mechanism::WrapMechanism::AesGcm
        }));
    }

    #[test]
    fn reply_names_never_show_contents() {
        let r = Reply::Plaintext("attack at dawn".into());
        assert_eq!(reply_name(&r), "plaintext");
    }
}
