//! The role table: which role may do what, and who may touch which key.
//!
//! Both the node (pre-checking a request, and serving crypto from its
//! replica) and [`State::apply`](crate::State::apply) (re-checking every
//! write on every replica) use these functions, so there is one table.

pub use hsm_proto::Action;
use hsm_proto::{Attempt, ClusterId, NodeId, Rejection, Role, Username};

use crate::records::Key;

/// The role table. Every role may read cluster info, change its own
/// password and log out. A precrypto officer may do only that;
/// a crypto officer manages users, membership, backups and quorum
/// approvals but never uses keys; a crypto user manages and uses keys;
/// both may set their own second factor. An appliance user (a role no
/// longer given, docs/decisions.md) may do only what every role may.
pub fn permits(role: Role, action: Action) -> bool {
    use Action as A;
    match role {
        Role::Preco => matches!(
            action,
            A::ReadClusterInfo | A::ChangeOwnPassword | A::EndOwnSessions
        ),
        Role::Co => matches!(
            action,
            A::ReadClusterInfo
                | A::ChangeOwnPassword
                | A::EndOwnSessions
                | A::ListUsers
                | A::CreateUser
                | A::DeleteUser
                | A::ChangeOtherPassword
                | A::UnlockUser
                | A::SetTrusted
                | A::AddNode
                | A::RemoveNode
                | A::RotateDomainKey
                | A::ListKeys
                | A::ManageBackups
                | A::TransferLeadership
                | A::ManageQuorum
                | A::ChangeOwnMfa
        ),
        Role::Cu => matches!(
            action,
            A::ReadClusterInfo
                | A::ChangeOwnPassword
                | A::EndOwnSessions
                | A::ListKeys
                | A::CreateKey
                | A::UseKey
                | A::ManageKey
                | A::KeylessCrypto
                | A::ChangeOwnMfa
        ),
        // `CloneToNode` was never checked by anything: members join with
        // their own identities and the domain key sealed to them.
        Role::Au => matches!(
            action,
            A::ReadClusterInfo | A::ChangeOwnPassword | A::EndOwnSessions
        ),
    }
}

/// Whether `me` may set `target`'s password without
/// proving the current one: never its own. One's own changes only with
/// the current password checked (`OwnPasswordChanged`), so a stolen
/// session token cannot take its account over.
///
/// # Errors
/// [`Rejection::CurrentPasswordNeeded`] for one's own name.
pub fn check_password_reset(me: &Username, target: &Username) -> Result<(), Rejection> {
    if me == target {
        Err(Rejection::CurrentPasswordNeeded)
    } else {
        Ok(())
    }
}

/// Whether `me` (of role `role`) may unlock `target`: never itself. An
/// officer's stolen session could otherwise clear its own failed logins
/// between guesses at its password, and guess without end.
///
/// # Errors
/// [`Rejection::Denied`] for one's own name.
pub fn check_unlock(me: &Username, role: Role, target: &Username) -> Result<(), Rejection> {
    if me == target {
        Err(Rejection::Denied {
            role,
            attempt: Attempt::UnlockSelf,
        })
    } else {
        Ok(())
    }
}

/// Whether `user` may see and use `key`: it owns it or it is shared with it.
pub fn can_use_key(user: &Username, key: &Key) -> bool {
    key.owner == *user || key.shared_with.contains(user)
}

/// Whether `user` may manage `key` (share, unshare, set attributes, wrap,
/// delete): only its owner.
pub fn can_manage_key(user: &Username, key: &Key) -> bool {
    key.owner == *user
}

/// How a node that presented a CA-certified TLS key relates to the members
/// a state records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerStanding {
    /// A member, holding the key its record pins.
    Member,
    /// The id of a member, but another key: a certificate the same CA
    /// issued to someone else (another cluster, a removed host).
    WrongKey,
    /// A removed member, holding the key it had: Raft may still need its
    /// answers until its removal commits; it may send nothing.
    Retired,
    /// No member has that id.
    NotMember,
    /// The state records no cluster, so nothing can be checked: only a
    /// replica with neither a cluster nor a roster (the first member before
    /// its first event; a joining member checks against its roster).
    NoClusterYet,
}

/// Whether node `id` presenting a TLS key whose pin is `key_pin` is a
/// member of the cluster `state` records. A CA is not an identity: the
/// member record pins the key.
pub fn peer_standing(state: &crate::State, id: NodeId, key_pin: &[u8; 32]) -> PeerStanding {
    if state.cluster().is_none() {
        return PeerStanding::NoClusterYet;
    }
    let retired = state
        .cluster()
        .and_then(|c| c.retired_transport_keys.get(&id));
    match (state.node(id), retired) {
        (Some(record), _) if record.transport_key == *key_pin => PeerStanding::Member,
        (Some(_), _) => PeerStanding::WrongKey,
        (None, Some(pin)) if pin == key_pin => PeerStanding::Retired,
        (None, Some(_)) => PeerStanding::WrongKey,
        (None, None) => PeerStanding::NotMember,
    }
}

/// The state a replica checks its peers (and the snapshots they send)
/// against: its own, unless `roster`, the member records a member handed
/// it when it joined, is further along the event chain. A joining member
/// can install a snapshot older than that roster, one that misses members
/// added since, even the leader that sends it; until its replica has
/// applied as many events as the roster records, the roster is the newer
/// word on who the members are (so a removal the roster records is not
/// undone by an older snapshot either). An empty replica has applied no
/// event, so a roster always decides for it.
pub fn members_view<'a>(
    replica: &'a crate::State,
    roster: Option<&'a crate::State>,
) -> &'a crate::State {
    match roster {
        Some(roster) if supersedes(roster, replica) => roster,
        _ => replica,
    }
}

/// Whether `roster`, member records a member sent, is a newer word on who
/// the members are than `view` (what this replica goes by,
/// [`members_view`]): it is further along the event chain. A member that
/// was away while a node was added and elected comes back to a leader its
/// replica does not list; it asks the members it knows for their roster
/// and keeps one that supersedes its view (checked first with
/// [`check_roster`]). One that does not is of no use: its replica, or the
/// roster it keeps, knows as much.
pub fn supersedes(roster: &crate::State, view: &crate::State) -> bool {
    roster.events() > view.events()
}

/// Whether `roster` (`State::roster`, handed to joining node `me` with the
/// domain key of `cluster` by the server whose TLS key pin is
/// `server_pin`) is one the node may trust until its replica records the
/// cluster: a roster of that cluster, recording `me` with this node's own
/// signing key, and the server as a member holding the key the operator
/// pinned.
///
/// # Errors
/// What is wrong with the roster.
pub fn check_roster(
    roster: &crate::State,
    cluster: ClusterId,
    me: NodeId,
    my_signing_key: &[u8; 32],
    server_pin: &[u8; 32],
) -> Result<(), String> {
    match roster.cluster() {
        Some(c) if c.cluster_id == cluster => {}
        Some(c) => return Err(format!("it is of cluster {}, not {cluster}", c.cluster_id)),
        None => return Err("it records no cluster".into()),
    }
    match roster.node(me) {
        Some(record) if record.signing_key == *my_signing_key => {}
        Some(_) => return Err(format!("it records another signing key for {me}")),
        None => return Err(format!("it does not record {me}")),
    }
    if !roster.nodes().any(|n| n.transport_key == *server_pin) {
        return Err("no member in it holds the pinned TLS key".into());
    }
    Ok(())
}

/// Whether `user` (of `role`) sees who else `key` is shared with: its owner
/// and crypto officers do; a user it is shared with does not.
pub fn sees_share_list(user: &Username, role: Role, key: &Key) -> bool {
    role == Role::Co || can_manage_key(user, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crypto_officers_never_use_keys_and_crypto_users_never_manage_users() {
        for a in [Action::UseKey, Action::CreateKey, Action::ManageKey] {
            assert!(!permits(Role::Co, a));
        }
        for a in [
            Action::CreateUser,
            Action::DeleteUser,
            Action::UnlockUser,
            Action::AddNode,
        ] {
            assert!(!permits(Role::Cu, a));
        }
    }

    #[test]
    fn precrypto_officer_can_only_read_change_its_password_and_log_out() {
        let allowed: Vec<_> = Action::ALL
            .into_iter()
            .filter(|a| permits(Role::Preco, *a))
            .collect();
        assert_eq!(
            allowed,
            vec![
                Action::ReadClusterInfo,
                Action::ChangeOwnPassword,
                Action::EndOwnSessions
            ]
        );
    }
}
