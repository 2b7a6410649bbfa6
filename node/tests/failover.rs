//! Writes keep their chain across a leader crash: every acknowledged write
//! survives, and the new leader takes writes within seconds.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use hsm_node::transport::ClusterCa;
use hsm_proto::{Actor, ClusterId, EventBody, NodeId, RequestId, Role, Username};

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";

fn request(n: u64) -> RequestId {
    let mut id = [0u8; 16];
    id[8..].copy_from_slice(&n.to_be_bytes());
    RequestId(id)
}

fn admin() -> Actor {
    Actor::User(Username::new("admin").expect("valid"))
}

/// `count` user creations proposed concurrently on `member`; all must be
/// acknowledged as applied.
async fn create_users(member: &Arc<Member>, prefix: &str, count: u64, first_request: u64) -> u64 {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let m = member.clone();
        let name = Username::new(format!("{prefix}{i}")).expect("valid");
        tasks.spawn(async move {
            m.proposer
                .propose(
                    request(first_request + i),
                    admin(),
                    EventBody::UserCreated {
                        username: name,
                        role: Role::Cu,
                        password_hash: HASH.into(),
                    },
                    1_000 + i,
                )
                .await
        });
    }
    let mut last_index = 0;
    while let Some(done) = tasks.join_next().await {
        let reply = done.expect("task").expect("write acknowledged");
        assert_eq!(reply.result, Ok(()), "write refused: {reply:?}");
        last_index = last_index.max(reply.index);
    }
    last_index
}

/// Initializes the cluster with every member founding (their signing keys
/// and TLS key pins) and activates it, through the leader's proposer
/// (requests 0 to 2).
async fn init_and_activate(members: &BTreeMap<NodeId, Arc<Member>>, leader: NodeId) {
    let l = &members[&leader];
    let init = EventBody::ClusterInitialized {
        cluster_id: ClusterId([4; 16]),
        first_node: l.record(),
        other_nodes: members
            .values()
            .filter(|m| m.id != leader)
            .map(|m| m.record())
            .collect(),
        admin_password_hash: HASH.into(),
        domain_check: domain().check(),
    };
    let setup = vec![
        (Actor::Node(leader), init),
        // The check of admin's current password (request 1), reserved as
        // a login; the change names it.
        (
            Actor::Node(leader),
            EventBody::LoginFailed {
                username: Username::new("admin").expect("valid"),
            },
        ),
        (
            admin(),
            EventBody::OwnPasswordChanged {
                username: Username::new("admin").expect("valid"),
                password_hash: HASH.into(),
                reservation: request(1),
            },
        ),
    ];
    for (n, (actor, body)) in setup.into_iter().enumerate() {
        let reply = l
            .proposer
            .propose(request(n as u64), actor, body, 10)
            .await
            .expect("setup write");
        assert_eq!(reply.result, Ok(()), "setup step {n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_continues_the_chain_and_no_acknowledged_write_is_lost() {
    let ca = ClusterCa::generate("failover").expect("ca");
    let (mut members, leader) = start_cluster(3, &ca).await;
    let l = members[&leader].clone();

    // Before init, a write is refused without being proposed, so it cannot
    // leave an unchainable event in the log.
    let early = l
        .proposer
        .propose(
            request(9_999),
            admin(),
            EventBody::UserDeleted {
                username: Username::new("nobody").expect("valid"),
            },
            5,
        )
        .await;
    assert!(
        matches!(
            early,
            Err(hsm_node::proposer::ProposeError::Refused(
                hsm_proto::Rejection::NotInitialized
            ))
        ),
        "{early:?}"
    );

    init_and_activate(&members, leader).await;

    create_users(&l, "before", 20, 100).await;

    // The leader dies.
    drop(l);
    let dead = Arc::try_unwrap(members.remove(&leader).expect("leader"))
        .unwrap_or_else(|_| panic!("leader still shared"));
    dead.kill().await;

    let survivor = members.values().next().expect("a survivor").clone();
    let new_leader = wait_for("a new leader", Duration::from_secs(10), || {
        survivor
            .raft
            .metrics()
            .borrow()
            .current_leader
            .filter(|l| *l != leader)
    })
    .await;
    let nl = members[&new_leader].clone();
    let last = create_users(&nl, "after", 10, 200).await;

    for m in members.values() {
        wait_for(
            &format!("{} to apply", m.id),
            Duration::from_secs(10),
            || (*m.sm.applied_index().borrow() >= last).then_some(()),
        )
        .await;
        let users = m.sm.read(|a| a.state.users().count());
        assert_eq!(users, 1 + 20 + 10, "on {}", m.id);
    }
    let digests: Vec<_> = members.values().map(|m| m.sm.digest()).collect();
    assert_eq!(digests[0], digests[1], "survivors differ");

    // A write entering at the follower is forwarded to the new leader.
    let follower = members
        .values()
        .find(|m| m.id != new_leader)
        .expect("a follower");
    let token = session_of(follower, "admin");
    let via_follower = || {
        follower.writer.write(
            request(300),
            admin(),
            Some(&token),
            EventBody::UserCreated {
                username: Username::new("via-follower").expect("valid"),
                role: Role::Cu,
                password_hash: HASH.into(),
            },
            Duration::from_secs(10),
        )
    };
    let reply = via_follower().await.expect("forwarded write applied");
    assert_eq!(reply.result, Ok(()));
    // Retried with the same request id (as the SDK would after a timeout):
    // answered as a replay, applied once.
    let again = via_follower().await.expect("retry answered");
    assert!(again.replayed && again.result.is_ok(), "{again:?}");
    wait_for("the follower to apply", Duration::from_secs(10), || {
        (*follower.sm.applied_index().borrow() >= again.index).then_some(())
    })
    .await;
    assert_eq!(
        follower.sm.read(|a| a.state.users().count()),
        1 + 20 + 10 + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_without_a_majority_fails_at_its_deadline_instead_of_hanging() {
    let ca = ClusterCa::generate("no-quorum").expect("ca");
    let (mut members, leader) = start_cluster(3, &ca).await;
    let l = members[&leader].clone();
    let init = EventBody::ClusterInitialized {
        cluster_id: ClusterId([5; 16]),
        first_node: l.record(),
        other_nodes: vec![],
        admin_password_hash: HASH.into(),
        domain_check: domain().check(),
    };
    let reply = l
        .proposer
        .propose(request(1), Actor::Node(leader), init, 1)
        .await
        .expect("init");
    assert_eq!(reply.result, Ok(()));

    // Both followers die: the leader can no longer commit anything.
    let followers: Vec<_> = members.keys().copied().filter(|id| *id != leader).collect();
    for id in followers {
        let m = Arc::try_unwrap(members.remove(&id).expect("member"))
            .unwrap_or_else(|_| panic!("member still shared"));
        m.kill().await;
    }

    let started = std::time::Instant::now();
    let write = l.writer.write(
        request(2),
        Actor::Node(leader),
        None,
        EventBody::LoginFailed {
            username: Username::new("admin").expect("valid"),
        },
        Duration::from_millis(800),
    );
    let outcome = tokio::time::timeout(Duration::from_secs(10), write)
        .await
        .expect("the write must give up at its deadline, not hang");
    assert!(
        matches!(
            outcome,
            Err(hsm_node::writer::WriteError::Unavailable { .. })
        ),
        "{outcome:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

/// Group commit: writes proposed at once share log entries, and every one
/// is answered, also when other callers give up while theirs wait (their
/// writes are then left out or applied, never the reason another write
/// waits forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_at_once_share_entries_and_each_is_answered_when_others_give_up() {
    let ca = ClusterCa::generate("group-commit").expect("ca");
    let (members, leader) = start_cluster(3, &ca).await;
    init_and_activate(&members, leader).await;
    let l = members[&leader].clone();
    let user = |prefix: &str, i: u64| EventBody::UserCreated {
        username: Username::new(format!("{prefix}{i}")).expect("valid"),
        role: Role::Cu,
        password_hash: HASH.into(),
    };

    const AT_ONCE: u64 = 300;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..AT_ONCE {
        let (l, body) = (l.clone(), user("many", i));
        tasks.spawn(async move {
            l.proposer
                .propose(request(100 + i), admin(), body, 50)
                .await
        });
    }
    let mut entries = BTreeSet::new();
    while let Some(done) = tasks.join_next().await {
        let reply = done.expect("task").expect("write acknowledged");
        assert_eq!(reply.result, Ok(()), "{reply:?}");
        entries.insert(reply.index);
    }
    assert!(
        entries.len() < AT_ONCE as usize / 2,
        "{AT_ONCE} writes at once took {} log entries",
        entries.len()
    );

    // Half the callers give up at once, while their writes wait.
    let mut kept = Vec::new();
    for i in 0..200u64 {
        let (l, body) = (l.clone(), user("some", i));
        let task = tokio::spawn(async move {
            l.proposer
                .propose(request(1_000 + i), admin(), body, 60)
                .await
        });
        if i % 2 == 0 {
            task.abort();
        } else {
            kept.push(task);
        }
    }
    let answered = tokio::time::timeout(Duration::from_secs(30), async {
        for task in kept {
            let reply = task.await.expect("task").expect("write acknowledged");
            assert_eq!(reply.result, Ok(()), "{reply:?}");
        }
    })
    .await;
    assert!(answered.is_ok(), "a write was never answered");
    let users = l.sm.read(|a| a.state.users().count());
    assert!(
        users > 1 + AT_ONCE as usize + 100 - 1,
        "{users} users after the kept writes"
    );
}
