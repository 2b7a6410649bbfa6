//! What an actor tried: the role table's actions and the other things a
//! refusal names. Typed, so a refusal recorded in the replicated state
//! means the same on every replica and in every version. New variants go
//! at the end: the encoding numbers them.

use serde::{Deserialize, Serialize};

/// Everything a user can ask of the cluster, at the granularity the role
/// table distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Action {
    /// Read members, leader, zones and health.
    ReadClusterInfo,
    /// Change one's own password.
    ChangeOwnPassword,
    /// End one's own sessions (log out).
    EndOwnSessions,
    /// List users.
    ListUsers,
    /// Create a user.
    CreateUser,
    /// Delete a user.
    DeleteUser,
    /// Change another user's password.
    ChangeOtherPassword,
    /// Unlock a locked user.
    UnlockUser,
    /// Set or clear the `trusted` attribute of any key.
    SetTrusted,
    /// Approve a new member node.
    AddNode,
    /// Remove a member node.
    RemoveNode,
    /// Replace the domain key with a new generation.
    RotateDomainKey,
    /// Clone or synchronise the domain key to an approved node. Never
    /// granted, never checked: members join with their own identities and
    /// receive the domain key sealed to them (docs/decisions.md,
    /// "No appliance user"). Kept for the encoding.
    CloneToNode,
    /// List keys visible to the caller.
    ListKeys,
    /// Generate, import or unwrap a key.
    CreateKey,
    /// Use a key: encrypt, decrypt, sign, verify, derive, unwrap with it,
    /// export its public half.
    UseKey,
    /// Owner-only key management: share, unshare, set attributes, wrap
    /// (export), delete.
    ManageKey,
    /// Random bytes and digests, which touch no key.
    KeylessCrypto,
    /// Take, list, check, delete and mark backups.
    ManageBackups,
    /// Move leadership to another member.
    TransferLeadership,
    /// Quorum tokens, approvals, approval keys and quorum values.
    ManageQuorum,
    /// Set, change or clear one's own second factor.
    ChangeOwnMfa,
}

impl Action {
    /// Every action, for exhaustive tests.
    pub const ALL: [Action; 22] = [
        Action::ReadClusterInfo,
        Action::ChangeOwnPassword,
        Action::EndOwnSessions,
        Action::ListUsers,
        Action::CreateUser,
        Action::DeleteUser,
        Action::ChangeOtherPassword,
        Action::UnlockUser,
        Action::SetTrusted,
        Action::AddNode,
        Action::RemoveNode,
        Action::RotateDomainKey,
        Action::CloneToNode,
        Action::ListKeys,
        Action::CreateKey,
        Action::UseKey,
        Action::ManageKey,
        Action::KeylessCrypto,
        Action::ManageBackups,
        Action::TransferLeadership,
        Action::ManageQuorum,
        Action::ChangeOwnMfa,
    ];

    /// Lowercase description, used in rejections. Frozen: protocol 1
    /// records carry these words ([`crate::Rejection::as_of`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::ReadClusterInfo => "read cluster info",
            Action::ChangeOwnPassword => "change its own password",
            Action::EndOwnSessions => "end its own sessions",
            Action::ListUsers => "list users",
            Action::CreateUser => "create users",
            Action::DeleteUser => "delete users",
            Action::ChangeOtherPassword => "change other users' passwords",
            Action::UnlockUser => "unlock users",
            Action::SetTrusted => "set the trusted attribute",
            Action::AddNode => "add nodes",
            Action::RemoveNode => "remove nodes",
            Action::RotateDomainKey => "rotate the domain key",
            Action::CloneToNode => "clone to nodes",
            Action::ListKeys => "list keys",
            Action::CreateKey => "create keys",
            Action::UseKey => "use keys",
            Action::ManageKey => "manage keys",
            Action::KeylessCrypto => "use crypto",
            Action::ManageBackups => "manage backups",
            Action::TransferLeadership => "move leadership",
            Action::ManageQuorum => "manage quorum approvals",
            Action::ChangeOwnMfa => "change its own second factor",
        }
    }
}

/// What a role was refused: an action of the role table, or one no role
/// may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Attempt {
    /// An action of the role table that the role does not have.
    Action(Action),
    /// Ending another user's sessions (an officer changes the password,
    /// deletes or locks the user instead).
    EndOtherSessions,
    /// Changing another user's password through the own-password change.
    ChangeOtherPasswordAsOwn,
    /// Unlocking oneself.
    UnlockSelf,
    /// Setting another user's second factor (an officer may only clear
    /// one).
    SetOtherMfa,
    /// Using or deleting another officer's quorum token.
    UseOtherToken,
    /// Creating an appliance user (the role has no meaning any more).
    CreateApplianceUser,
}

impl Attempt {
    /// Lowercase description, used in rejections. Frozen: protocol 1
    /// records carry these words.
    pub fn as_str(self) -> &'static str {
        match self {
            Attempt::Action(a) => a.as_str(),
            Attempt::EndOtherSessions => "end another user's sessions",
            Attempt::ChangeOtherPasswordAsOwn => "change another user's password as its own",
            Attempt::UnlockSelf => "unlock itself",
            Attempt::SetOtherMfa => "set another user's second factor",
            Attempt::UseOtherToken => "use or delete another officer's quorum token",
            Attempt::CreateApplianceUser => {
                "create appliance users (the role does nothing; see docs/decisions.md)"
            }
        }
    }
}

/// A change to a key that only its owner may make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyChange {
    /// Share it with a crypto user.
    Share,
    /// Stop sharing it.
    Unshare,
    /// Wrap (export) it.
    Wrap,
    /// Delete it.
    Delete,
    /// Change its attributes.
    SetAttributes,
    /// Rotate it, or set or trim its versions (from Raft protocol 4 on).
    Versions,
}

impl KeyChange {
    /// Lowercase description, used in rejections. Frozen: protocol 1
    /// records carry these words.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyChange::Share => "share",
            KeyChange::Unshare => "unshare",
            KeyChange::Wrap => "wrap it",
            KeyChange::Delete => "delete it",
            KeyChange::SetAttributes => "set its attributes",
            KeyChange::Versions => "manage its versions",
        }
    }
}
