//! Domain key upkeep, the IO side of `hsm_state::domain`.
//!
//! On every node, the keyring forgets generations the state retired. On the
//! leader, [`State::domain_work`] says what is next, and this task does it:
//! rotate after a member's removal (a new generation sealed to each member
//! of the moment), re-wrap key material of older generations in batches,
//! and retire a generation no key uses any more. Each step is one event
//! decided from the replicated state alone, so a leader killed mid-way
//! leaves nothing half done: the next leader picks up from the state.
//!
//! A crypto officer's `hsm cluster rotate-domain-key` builds its event with
//! [`new_generation`] too.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hsm_proto::{
    Actor, EventBody, KeyId, NodeId, RequestId, RewrappedMaterial, RewrappedVersion,
    SealedDomainKey,
};
use hsm_raft_store::StateMachineStore;
use hsm_state::domain::DomainWork;
use hsm_state::State;
use rand::RngCore;
use tokio::task::JoinHandle;

use crate::raft::Raft;
use crate::secrets::{DomainKey, Keyring};
use crate::writer::Writer;

/// How often each node looks at the state.
const TICK: Duration = Duration::from_millis(250);

/// Keys re-wrapped per event.
const REWRAP_BATCH: usize = 32;

/// Longest one step may take before the task tries again.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// A `DomainKeyRotated` event for the generation after `state`'s current
/// one: a fresh key, sealed to every member the state records.
///
/// Whether a rotation may happen now is the state machine's rule
/// (`hsm_state::domain::check_rotation`), checked when the event applies.
///
/// # Errors
/// A message if the cluster is not initialized or a member's agreement
/// key is unusable.
pub fn new_generation(state: &State) -> Result<EventBody, String> {
    let cluster = state
        .cluster()
        .ok_or("the cluster is not initialized yet")?;
    let generation = cluster
        .domain
        .current
        .checked_add(1)
        .ok_or("no generation is left")?;
    let key = DomainKey::generate(generation);
    let sealed = state
        .nodes()
        .map(|n| {
            key.seal_for_node(
                &x25519_dalek::PublicKey::from(n.agreement_key),
                cluster.cluster_id,
                n.id,
            )
            .map(|s| (n.id, s))
            .map_err(|e| e.to_string())
        })
        .collect::<Result<std::collections::BTreeMap<NodeId, SealedDomainKey>, String>>()?;
    Ok(EventBody::DomainKeyRotated {
        generation,
        check: key.check(),
        sealed,
    })
}

/// Runs the upkeep on this node; it writes only while it leads.
pub fn spawn(
    raft: Raft,
    sm: StateMachineStore,
    writer: Writer,
    keyring: Arc<Keyring>,
    me: NodeId,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        // Keys this node failed to re-wrap while leading: left out of later
        // batches so one damaged key does not stop the others (they stay
        // counted in `keys_to_rewrap`, and their generation stays in use).
        let skip = Mutex::new(BTreeSet::new());
        loop {
            tokio::time::sleep(TICK).await;
            sm.read(|a| keyring.forget_retired(&a.state));
            if raft.metrics().borrow().current_leader != Some(me) {
                continue;
            }
            match tokio::time::timeout(STEP_TIMEOUT, step(&sm, &writer, &keyring, me, &skip)).await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "domain key upkeep failed; retrying"),
                Err(_) => tracing::warn!("domain key upkeep not committed in time; retrying"),
            }
        }
    })
}

async fn step(
    sm: &StateMachineStore,
    writer: &Writer,
    keyring: &Keyring,
    me: NodeId,
    skip: &Mutex<BTreeSet<KeyId>>,
) -> Result<(), String> {
    let body = sm.read(|a| -> Result<Option<EventBody>, String> {
        let state = &a.state;
        let mut skip = skip
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(match state.domain_work(REWRAP_BATCH, &skip) {
            None => None,
            Some(DomainWork::Rotate) => {
                tracing::info!("a member was removed: rotating the domain key");
                Some(new_generation(state)?)
            }
            Some(DomainWork::Retire(generation)) => {
                tracing::info!(generation, "retiring a domain key generation no key uses");
                Some(EventBody::DomainKeyRetired { generation })
            }
            Some(DomainWork::Rewrap(ids)) => Some(rewrap(state, keyring, &ids, &mut skip)?),
            Some(DomainWork::RewrapVersions(versions)) => {
                Some(rewrap_versions(state, keyring, &versions, &mut skip)?)
            }
        })
    })?;
    let Some(body) = body else {
        return Ok(());
    };
    let mut request = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut request);
    let applied = writer
        .write(
            RequestId(request),
            Actor::Node(me),
            None,
            body,
            STEP_TIMEOUT,
        )
        .await
        .map_err(|e| e.to_string())?;
    applied.result.map_err(|r| r.to_string())
}

/// The material of keys `ids` wrapped again under the current generation.
/// A key whose material does not open is logged and added to `skip`.
fn rewrap(
    state: &State,
    keyring: &Keyring,
    ids: &[KeyId],
    skip: &mut BTreeSet<KeyId>,
) -> Result<EventBody, String> {
    let current = keyring.current(state).map_err(|e| e.to_string())?;
    let mut keys = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(key) = state.key(*id) else { continue };
        let opened = keyring
            .get(state, key.domain_generation)
            .map_err(|e| e.to_string())
            .and_then(|old| {
                old.unwrap_material(key.id, &key.wrapped_material)
                    .map_err(|e| e.to_string())
            });
        let plain = match opened {
            Ok(plain) => plain,
            Err(e) => {
                tracing::error!(key = %key.id, error = %e, "cannot re-wrap a key's material; leaving it under its old domain key generation");
                skip.insert(key.id);
                continue;
            }
        };
        let wrapped_material = current
            .wrap_material(key.id, &plain)
            .map_err(|e| e.to_string())?;
        keys.push(RewrappedMaterial {
            key: key.id,
            wrapped_material,
        });
    }
    tracing::info!(
        generation = current.generation(),
        keys = keys.len(),
        "re-wrapping key material under the current domain key"
    );
    Ok(EventBody::KeyMaterialRewrapped {
        generation: current.generation(),
        keys,
    })
}

/// The material of keys' older versions `versions` wrapped again under
/// the current generation. A key any of whose versions does not open is
/// logged and added to `skip`.
fn rewrap_versions(
    state: &State,
    keyring: &Keyring,
    versions: &[(KeyId, u32)],
    skip: &mut BTreeSet<KeyId>,
) -> Result<EventBody, String> {
    let current = keyring.current(state).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(versions.len());
    for (id, version) in versions {
        let Some(older) = state.key_versions(*id).and_then(|v| v.older.get(version)) else {
            continue;
        };
        let opened = keyring
            .get(state, older.domain_generation)
            .map_err(|e| e.to_string())
            .and_then(|old| {
                old.unwrap_material(*id, &older.wrapped_material)
                    .map_err(|e| e.to_string())
            });
        let plain = match opened {
            Ok(plain) => plain,
            Err(e) => {
                tracing::error!(key = %id, version, error = %e, "cannot re-wrap an older key version's material; leaving the key under its old domain key generation");
                skip.insert(*id);
                continue;
            }
        };
        let wrapped_material = current
            .wrap_material(*id, &plain)
            .map_err(|e| e.to_string())?;
        out.push(RewrappedVersion {
            key: *id,
            version: *version,
            wrapped_material,
        });
    }
    tracing::info!(
        generation = current.generation(),
        versions = out.len(),
        "re-wrapping older key versions' material under the current domain key"
    );
    Ok(EventBody::KeyVersionsRewrapped {
        generation: current.generation(),
        versions: out,
    })
}
