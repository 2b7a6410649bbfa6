//! The snapshotter: sealed backups of this node's applied state to the
//! destination in `[backup]`, on demand and on a schedule.
//!
//! A backup's sealed payload is this module's format:
//!
//! ```text
//! "HSMBKPL2" || n (1) || n × (generation (u32, big-endian) || material key (32))
//!            || snapshot ("HSMSNAP1" ..., raft-store)
//! ```
//!
//! A material key is a domain key generation's subkey that wraps key
//! material ([`DomainKey::material_key`]); the payload carries one for each
//! generation the state uses (two while a rotation re-wraps material).
//! With them, whoever opens the backup (a recovery key holder, at
//! `hsm-node restore`) can re-wrap every key for a new cluster. They cannot
//! sign sessions or open domain key transfers, so a recovery key gives no
//! hold on the running cluster. The backup key is also wrapped under
//! another subkey of the current domain key generation, so every member
//! can open the cluster's backups, and a member removed before a rotation
//! cannot open those taken after it.
//!
//! **Schedule.** Only the leader takes periodic backups, and it decides from
//! the destination: a backup is due when the newest backup of this cluster
//! there is `interval_s` old. So a new leader, or a restarted node, keeps
//! the schedule without any state of its own; before writing, the leader
//! confirms with a quorum that it still leads. After each backup, retention
//! runs.
//!
//! **Invariants:** the payload exists only in a zeroizing buffer; one backup
//! at a time per node; a failed or interrupted backup is never listed
//! (hsm-backup writes the manifest last).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use ed25519_dalek::{SigningKey, VerifyingKey};
use hsm_backup::{
    BackupDomainKey, BackupError, BackupKeys, BackupMeta, Destination, LogProgress, Manifest,
    RecoveryPublicKey, SnapshotSource,
};
use hsm_proto::{BackupId, BackupInfo, ClusterId, NodeId};
use hsm_raft_store::StateMachineStore;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use crate::config::BackupSettings;
use crate::raft::{read_index, Raft};
#[cfg(test)]
use crate::secrets::DomainKey;
use crate::secrets::{Keyring, MaterialKey};

/// Magic of the sealed payload, format 2.
const PAYLOAD_MAGIC: &[u8; 8] = b"HSMBKPL2";
/// One material key in the payload: its generation and its bytes.
const PAYLOAD_KEY_LEN: usize = 4 + 32;

/// How far in the future a backup's time may be (clocks differ) and still
/// count for the schedule.
const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// Longest wait after failed scheduled backups before trying again.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// How often progress of a long backup is logged.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// The sealed payload of a backup: the material keys and the snapshot.
///
/// # Errors
/// If there are no material keys or more than 255, or the buffer cannot be
/// reserved.
pub fn encode_payload(material: &[MaterialKey], snapshot: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let count = u8::try_from(material.len())
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| anyhow!("a backup carries 1 to 255 material keys"))?;
    let header = PAYLOAD_MAGIC.len() + 1 + material.len() * PAYLOAD_KEY_LEN;
    let mut out = Zeroizing::new(Vec::new());
    // Reserve once: growing would leave unzeroized copies of the keys.
    out.try_reserve_exact(header + snapshot.len())
        .map_err(|_| anyhow!("cannot reserve {} bytes for a backup", snapshot.len()))?;
    out.extend_from_slice(PAYLOAD_MAGIC);
    out.push(count);
    for key in material {
        out.extend_from_slice(&key.generation().to_be_bytes());
        out.extend_from_slice(key.expose());
    }
    out.extend_from_slice(snapshot);
    Ok(out)
}

/// Splits a restored payload into the material keys (by generation) and
/// the snapshot bytes.
///
/// # Errors
/// If it does not start with the payload magic, is too short, or names a
/// generation twice.
pub fn decode_payload(
    payload: &[u8],
) -> Result<(std::collections::BTreeMap<u32, MaterialKey>, &[u8])> {
    let unknown = || anyhow!("the backup does not hold an hsm-node payload (unknown format)");
    let rest = payload
        .strip_prefix(PAYLOAD_MAGIC.as_slice())
        .ok_or_else(unknown)?;
    let (&count, mut rest) = rest.split_first().ok_or_else(unknown)?;
    let mut keys = std::collections::BTreeMap::new();
    for _ in 0..count {
        if rest.len() < PAYLOAD_KEY_LEN {
            return Err(unknown());
        }
        let (entry, tail) = rest.split_at(PAYLOAD_KEY_LEN);
        let mut generation = [0u8; 4];
        generation.copy_from_slice(&entry[..4]);
        let generation = u32::from_be_bytes(generation);
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&entry[4..]);
        if keys
            .insert(generation, MaterialKey::from_bytes(generation, key))
            .is_some()
        {
            bail!("the backup's payload names domain key generation {generation} twice");
        }
        rest = tail;
    }
    if keys.is_empty() {
        return Err(unknown());
    }
    Ok((keys, rest))
}

/// Loads the recovery public keys named in `[backup]`.
///
/// # Errors
/// Naming the first file that does not read or parse.
pub fn load_recovery_keys(paths: &[impl AsRef<Path>]) -> Result<Vec<RecoveryPublicKey>> {
    paths
        .iter()
        .map(|p| {
            RecoveryPublicKey::load(p.as_ref()).with_context(|| {
                format!("backup.recovery_keys: cannot load {}", p.as_ref().display())
            })
        })
        .collect()
}

/// Takes, lists and manages the backups of one node.
pub struct Snapshotter {
    node: NodeId,
    dest: Destination,
    recovery: Vec<RecoveryPublicKey>,
    interval: Duration,
    keep_last: usize,
    max_age: Option<Duration>,
    audit_every: Duration,
    sm: StateMachineStore,
    keyring: Arc<Keyring>,
    signer: SigningKey,
    /// One backup at a time on this node.
    running: tokio::sync::Mutex<()>,
    /// When this node's last backup completed (ms since the epoch) and how
    /// long it took, for the metrics endpoint.
    last: std::sync::Mutex<Option<(u64, Duration)>>,
    /// When the newest backup of this cluster this node knows of was
    /// taken, by any member (ms since the epoch; 0: none known): seen when
    /// it listed the destination to schedule one, or taken itself.
    newest_known: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Snapshotter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshotter")
            .field("node", &self.node)
            .field("destination", &self.dest.url())
            .finish_non_exhaustive()
    }
}

impl Snapshotter {
    /// The snapshotter `[backup]` describes, or `None` without a
    /// destination.
    ///
    /// # Errors
    /// If the destination URL is not usable or a recovery key file does not
    /// load.
    pub fn from_settings(
        settings: &BackupSettings,
        node: NodeId,
        sm: StateMachineStore,
        keyring: Arc<Keyring>,
        signer: SigningKey,
    ) -> Result<Option<Snapshotter>> {
        let Some(url) = &settings.destination else {
            return Ok(None);
        };
        let dest = Destination::from_url(url).context("backup.destination")?;
        let recovery = load_recovery_keys(&settings.recovery_keys)?;
        Ok(Some(Snapshotter {
            node,
            dest,
            recovery,
            interval: Duration::from_secs(settings.interval_s),
            keep_last: usize::try_from(settings.keep_last).unwrap_or(usize::MAX),
            max_age: (settings.max_age_s > 0).then(|| Duration::from_secs(settings.max_age_s)),
            audit_every: Duration::from_secs(settings.audit_interval_s),
            sm,
            keyring,
            signer,
            running: tokio::sync::Mutex::new(()),
            last: std::sync::Mutex::new(None),
            newest_known: std::sync::atomic::AtomicU64::new(0),
        }))
    }

    /// The destination's URL.
    pub fn destination(&self) -> String {
        self.dest.url()
    }

    /// The destination itself.
    pub fn dest(&self) -> &Destination {
        &self.dest
    }

    pub(crate) fn cluster_id(&self) -> Option<ClusterId> {
        self.sm.read(|a| a.state.cluster().map(|c| c.cluster_id))
    }

    /// Signing keys of the current members, to tell whether a backup's
    /// writer is one of them.
    pub fn member_keys(&self) -> Vec<VerifyingKey> {
        self.sm.read(|a| {
            a.state
                .nodes()
                .filter_map(|n| VerifyingKey::from_bytes(&n.signing_key).ok())
                .collect()
        })
    }

    /// Backs up the state this node has applied now, then applies
    /// retention. The caller makes sure that state is recent enough (the
    /// service linearizes first; the scheduler runs on the leader).
    ///
    /// # Errors
    /// If the cluster is not initialized, the state cannot be exported, or
    /// the backup cannot be written ([`BackupError`] in the chain).
    pub async fn create(&self) -> Result<Manifest> {
        let _one = self.running.lock().await;
        let started = std::time::Instant::now();
        let Some(cluster_id) = self.cluster_id() else {
            bail!("the cluster is not initialized yet; there is nothing to back up");
        };
        let sm = self.sm.clone();
        let keyring = self.keyring.clone();
        let (payload, applied, current) = tokio::task::spawn_blocking(move || {
            let export = sm.export_with(|state| {
                // The backup key is wrapped under the generation for new
                // secrets: none between a removal and its rotation.
                let current = keyring.for_new_secrets(state)?;
                let in_use = keyring.in_use(state)?;
                anyhow::Ok((current, in_use))
            })?;
            let (snapshot, applied) = (export.snapshot, export.applied);
            let (current, keys) = export.made?;
            let material: Vec<MaterialKey> = keys.iter().map(|k| k.material_key()).collect();
            let payload = encode_payload(&material, &snapshot)?;
            let current = BackupDomainKey::new(current.backup_wrap_key());
            anyhow::Ok((payload, applied, current))
        })
        .await
        .map_err(|_| anyhow!("the snapshot task failed"))??;
        let applied = applied.ok_or_else(|| anyhow!("nothing applied yet"))?;
        let meta = BackupMeta {
            cluster_id,
            applied_index: applied.index,
            term: applied.leader_id.term,
            created_at_ms: crate::service::now_ms(),
            node_id: self.node,
        };
        let keys = BackupKeys {
            domain_key: &current,
            recovery_keys: &self.recovery,
            signer: &self.signer,
        };
        let manifest = hsm_backup::write_backup(
            &self.dest,
            &meta,
            SnapshotSource::from_bytes(&payload),
            &keys,
            &LogProgress::new(PROGRESS_EVERY),
        )
        .await?;
        drop(payload);
        tracing::info!(
            backup_id = %manifest.backup_id,
            applied_index = meta.applied_index,
            destination = %self.dest.url(),
            "backup written"
        );
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((crate::service::now_ms(), started.elapsed()));
        self.newest_known
            .fetch_max(meta.created_at_ms, std::sync::atomic::Ordering::Relaxed);
        self.apply_retention().await;
        Ok(manifest)
    }

    /// When this node's last backup completed (ms since the epoch) and how
    /// long it took; `None` if it took none since it started.
    pub fn last_completed(&self) -> Option<(u64, Duration)> {
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Deletes what retention says among this cluster's backups, logging
    /// what it did.
    async fn apply_retention(&self) {
        let Some(cluster) = self.cluster_id() else {
            return;
        };
        let members: Vec<[u8; 32]> = self.member_keys().iter().map(|k| k.to_bytes()).collect();
        let policy = hsm_backup::RetentionPolicy {
            cluster,
            trusted_writers: &members,
            keep_last: self.keep_last,
            max_age: self.max_age,
            now_ms: crate::service::now_ms(),
            clock_skew: CLOCK_SKEW,
        };
        let report = hsm_backup::apply_retention(&self.dest, &policy).await;
        match report {
            Ok(r) => {
                if !r.other_clusters.is_empty() {
                    tracing::warn!(
                        others = r.other_clusters.len(),
                        destination = %self.dest.url(),
                        "the backup destination holds other clusters' backups (left alone); give each cluster its own prefix"
                    );
                }
                for id in &r.deleted {
                    tracing::info!(backup_id = %id, "retention deleted a backup");
                }
                for (id, why) in r.unreadable.iter().chain(&r.failed).chain(&r.untrusted) {
                    tracing::warn!(backup_id = %id, reason = %why, "retention left a backup alone");
                }
            }
            Err(e) => tracing::warn!(error = %e, "retention could not run"),
        }
    }

    /// When the newest backup of this cluster at the destination was taken,
    /// ms since the Unix epoch; `None` if there is none. Only backups
    /// signed by a current member count, and a time more than
    /// [`CLOCK_SKEW`] in the future is not believed: neither a forged
    /// manifest nor a node with a fast clock can stop the schedule.
    async fn newest_ms(&self, now_ms: u64) -> Result<Option<u64>, BackupError> {
        let cluster = self.cluster_id();
        let members = self.member_keys();
        let listed = hsm_backup::list_backups(&self.dest).await?;
        let skew = CLOCK_SKEW.as_millis() as u64;
        let mut newest = None;
        for d in listed.iter().filter_map(|b| b.details.as_ref()) {
            if Some(d.cluster_id) != cluster
                || !members.iter().any(|k| k.as_bytes() == &d.writer_public_key)
            {
                continue;
            }
            if d.created_at_ms > now_ms.saturating_add(skew) {
                tracing::warn!(
                    created_at_ms = d.created_at_ms,
                    now_ms,
                    "a backup claims a time in the future; not counting it for the schedule"
                );
                continue;
            }
            newest = newest.max(Some(d.created_at_ms));
        }
        if let Some(ms) = newest {
            self.newest_known
                .fetch_max(ms, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(newest)
    }

    /// When the newest backup of this cluster this node knows of was taken
    /// (ms since the epoch), by any member: the newest it saw at the
    /// destination when it last listed it to schedule a backup (the
    /// leader does within a quarter of `interval_s`, at most a minute, of
    /// taking the lead) or took itself since it started. `None` if none.
    pub fn newest_known(&self) -> Option<u64> {
        match self.newest_known.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            ms => Some(ms),
        }
    }

    /// A backup as clients see it.
    pub fn info(&self, manifest: &Manifest, keep_forever: bool) -> BackupInfo {
        let members = self.member_keys();
        BackupInfo {
            id: manifest.backup_id,
            location: format!(
                "{}/{}",
                self.dest.url().trim_end_matches('/'),
                manifest.backup_id
            ),
            cluster_id: manifest.cluster_id,
            applied_index: manifest.applied_index,
            term: manifest.term,
            created_ms: manifest.created_at_ms,
            writer: manifest.writer_node_id,
            writer_key: hex::encode(manifest.writer_public_key),
            writer_is_member: members
                .iter()
                .any(|k| k.as_bytes() == &manifest.writer_public_key),
            plain_bytes: manifest.total_plain_bytes,
            stored_bytes: manifest.stored_bytes(),
            chunks: u32::try_from(manifest.chunks.len()).unwrap_or(u32::MAX),
            recovery_keys: manifest
                .recovery_fingerprints()
                .iter()
                .map(|f| f.to_string())
                .collect(),
            keep_forever,
        }
    }

    /// Looks up a backup by id.
    ///
    /// # Errors
    /// [`BackupError::NotFound`] and the other errors of reading a manifest.
    pub async fn describe(&self, id: BackupId) -> Result<BackupInfo, BackupError> {
        let d = hsm_backup::describe_backup(&self.dest, id).await?;
        Ok(self.info(&d.manifest, d.keep_forever))
    }
}

/// Most events in one audit segment.
pub const AUDIT_SEGMENT_EVENTS: usize = 5000;
/// Most encoded event bytes in one audit segment (its events are cut
/// there, so a segment stays well inside what a reader decodes,
/// `hsm_proto::codec::MAX_DECODE_BYTES`, whatever the events carry; an
/// event larger than this goes alone).
pub const AUDIT_SEGMENT_BYTES: usize = 16 * 1024 * 1024;

/// The events of `events` that go in one segment starting at `first`: a
/// run of consecutive numbers, at most [`AUDIT_SEGMENT_BYTES`] encoded
/// (at least one event).
fn segment_run(
    events: &[(u64, hsm_proto::SignedEvent)],
    first: u64,
    max_bytes: usize,
) -> Vec<hsm_proto::SignedEvent> {
    let mut bytes = 0usize;
    events
        .iter()
        .enumerate()
        .take_while(|(i, (seq, e))| {
            let next = Some(*seq) == first.checked_add(*i as u64);
            let len = hsm_proto::codec::encode("event", e).map_or(usize::MAX, |b| b.len());
            bytes = bytes.saturating_add(len);
            next && (*i == 0 || bytes <= max_bytes)
        })
        .map(|(_, (_, e))| e.clone())
        .collect()
}

impl Snapshotter {
    /// The audit archive beside this node's backups.
    ///
    /// # Errors
    /// If the destination cannot take the archive's folder.
    pub fn audit_dest(&self) -> Result<Destination, BackupError> {
        hsm_backup::audit::audit_destination(&self.dest)
    }

    /// Copies the events of this replica's trail after `tail` (the last
    /// event archived, as known) into the archive, a segment at a time (at
    /// most `segments`), and returns the new tail. Events this replica no
    /// longer holds (it installed a snapshot past them, or kept too few)
    /// leave a gap, which is logged and which `hsm audit verify` reports.
    ///
    /// # Errors
    /// If the trail cannot be read or a segment cannot be written (the
    /// tail stays where the last written segment ends).
    pub async fn archive_trail(&self, mut tail: u64, segments: usize) -> Result<u64> {
        let Some(cluster_id) = self.cluster_id() else {
            return Ok(tail);
        };
        let audit = self.audit_dest()?;
        for _ in 0..segments {
            let sm = self.sm.clone();
            let from = tail.saturating_add(1);
            let events =
                tokio::task::spawn_blocking(move || sm.audit_events(from, AUDIT_SEGMENT_EVENTS))
                    .await
                    .map_err(|_| anyhow!("the audit read task failed"))??;
            let Some(&(first, _)) = events.first() else {
                break;
            };
            if first != from {
                tracing::warn!(
                    archived_to = tail,
                    held_from = first,
                    "events missing from this replica's trail are not archived: the archive has a gap"
                );
            }
            // Only a run without holes goes in one segment, and no more
            // than a reader decodes.
            let run = segment_run(&events, first, AUDIT_SEGMENT_BYTES);
            let segment = hsm_proto::AuditSegment {
                cluster_id,
                first_seq: first,
                events: run,
            };
            let current = self
                .sm
                .read(|a| self.keyring.for_new_secrets(&a.state))
                .map_err(|e| anyhow!("no domain key for the archive now: {e}"))?;
            let domain = BackupDomainKey::new(current.backup_wrap_key());
            let keys = BackupKeys {
                domain_key: &domain,
                recovery_keys: &self.recovery,
                signer: &self.signer,
            };
            hsm_backup::audit::write_segment(
                &audit,
                &segment,
                self.node,
                crate::service::now_ms(),
                &keys,
            )
            .await?;
            tail = segment.last_seq();
            tracing::debug!(first, last = tail, "audit segment archived");
        }
        Ok(tail)
    }

    /// The last event in the archive, as its listing says (0: none).
    ///
    /// # Errors
    /// If the archive cannot be listed.
    /// Segments named past this replica's own trail (anyone who can
    /// write to the bucket can name a folder; a restore into the same
    /// destination starts a new history) are passed over, with a warning:
    /// trusting them would stop the archive for good.
    pub async fn archived_tail(&self) -> Result<u64> {
        let segments = hsm_backup::audit::list_segments(&self.audit_dest()?).await?;
        let applied = self.sm.read(|a| a.state.events());
        let ahead = segments.iter().filter(|(_, last)| *last > applied).count();
        if ahead > 0 {
            tracing::warn!(
                segments = ahead,
                applied,
                "the audit archive names segments past this cluster's trail (another history, or objects someone else put there); they are passed over"
            );
        }
        Ok(segments
            .iter()
            .map(|(_, last)| *last)
            .filter(|last| *last <= applied)
            .max()
            .unwrap_or(0))
    }
}

/// Runs the audit archiver: while this node leads, copies the event trail
/// into the archive beside the backups every `backup.audit_interval_s`;
/// the tail is read from the archive when it takes the lead, and again
/// after a failure.
pub fn spawn_archiver(snapshotter: Arc<Snapshotter>, raft: Raft, me: NodeId) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tail: Option<u64> = None;
        loop {
            tokio::time::sleep(snapshotter.audit_every).await;
            if raft.metrics().borrow().current_leader != Some(me) {
                tail = None;
                continue;
            }
            let known = match tail {
                Some(t) => t,
                None => match snapshotter.archived_tail().await {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot list the audit archive; retrying");
                        continue;
                    }
                },
            };
            match snapshotter.archive_trail(known, 20).await {
                Ok(t) => tail = Some(t),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "archiving the audit trail failed; retrying");
                    tail = None;
                }
            }
        }
    })
}

/// Runs the backup schedule: while this node leads, takes a backup when the
/// newest one at the destination is `interval_s` old, then applies
/// retention. Does nothing when the interval is 0.
pub fn spawn_scheduler(snapshotter: Arc<Snapshotter>, raft: Raft, me: NodeId) -> JoinHandle<()> {
    tokio::spawn(async move {
        let interval = snapshotter.interval;
        if interval.is_zero() {
            return;
        }
        // Check often enough to be on time, rarely enough not to load the
        // destination: a quarter of the interval, between 1 s and 60 s.
        let tick = (interval / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        // The newest backup seen, so the destination is listed only when a
        // backup may be due; reset when leadership is lost.
        let mut newest: Option<Option<u64>> = None;
        // After failures, wait (doubling, up to MAX_BACKOFF) before the next
        // try: each try exports the whole state.
        let mut failures = 0u32;
        let mut not_before = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(tick).await;
            let leading = raft.metrics().borrow().current_leader == Some(me);
            if !leading {
                newest = None;
                continue;
            }
            if tokio::time::Instant::now() < not_before {
                continue;
            }
            let now = crate::service::now_ms();
            let interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
            let due =
                |seen: Option<u64>| seen.is_none_or(|ms| now.saturating_sub(ms) >= interval_ms);
            if newest.is_some_and(|seen| !due(seen)) {
                continue;
            }
            // Due by what this node saw: look again, another leader may
            // have taken one since.
            let seen = match snapshotter.newest_ms(now).await {
                Ok(seen) => seen,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list backups to schedule the next one");
                    continue;
                }
            };
            newest = Some(seen);
            if !due(seen) {
                continue;
            }
            if let Err(e) = read_index(&raft).await {
                tracing::info!(reason = ?e, "not taking the scheduled backup: leadership not confirmed");
                continue;
            }
            match snapshotter.create().await {
                Ok(m) => {
                    newest = Some(Some(m.created_at_ms));
                    failures = 0;
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let wait = tick
                        .saturating_mul(2u32.saturating_pow(failures.min(16)))
                        .min(MAX_BACKOFF);
                    not_before = tokio::time::Instant::now() + wait;
                    tracing::warn!(
                        error = %format!("{e:#}"),
                        failures,
                        retry_in_s = wait.as_secs(),
                        "scheduled backup failed"
                    );
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64, material: usize) -> (u64, hsm_proto::SignedEvent) {
        use hsm_proto::{Actor, Event, EventBody, EventHash, NodeId, RequestId, Signature};
        let body = EventBody::KeyMaterialRewrapped {
            generation: 1,
            keys: vec![hsm_proto::RewrappedMaterial {
                key: hsm_proto::KeyId(seq),
                wrapped_material: vec![7; material],
            }],
        };
        let event = Event {
            request_id: RequestId([0; 16]),
            timestamp_ms: seq,
            actor: Actor::Node(NodeId(1)),
            prev_hash: EventHash([0; 32]),
            body,
        };
        let signed = hsm_proto::SignedEvent {
            event,
            signer: NodeId(1),
            signature: Signature([0; 64]),
        };
        (seq, signed)
    }

    #[test]
    fn a_segment_is_a_run_without_holes_cut_by_its_encoded_size() {
        let events: Vec<_> = [(5, 100), (6, 100), (7, 100), (9, 100)]
            .iter()
            .map(|(s, n)| event(*s, *n))
            .collect();
        let seqs = |run: &[hsm_proto::SignedEvent]| {
            run.iter().map(|e| e.event.timestamp_ms).collect::<Vec<_>>()
        };
        assert_eq!(seqs(&segment_run(&events, 5, usize::MAX)), vec![5, 6, 7]);
        let one = hsm_proto::codec::encode("event", &events[0].1)
            .expect("encodes")
            .len();
        assert_eq!(seqs(&segment_run(&events, 5, 2 * one)), vec![5, 6]);
        // An event larger than the cap still goes, alone.
        assert_eq!(seqs(&segment_run(&events, 5, 1)), vec![5]);
        assert!(segment_run(&events, 4, usize::MAX).is_empty());
    }

    #[test]
    fn the_payload_round_trips_and_refuses_other_bytes() {
        let (old, new) = (DomainKey::generate(3), DomainKey::generate(4));
        let payload = encode_payload(&[old.material_key(), new.material_key()], b"HSMSNAP1 state")
            .expect("encodes");
        let (keys, snapshot) = decode_payload(&payload).expect("decodes");
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[&3].expose(), old.material_key().expose());
        assert_eq!(keys[&4].expose(), new.material_key().expose());
        assert_eq!(keys[&4].generation(), 4);
        assert_eq!(snapshot, b"HSMSNAP1 state");
        assert!(encode_payload(&[], b"HSMSNAP1 state").is_err());
        let twice =
            encode_payload(&[old.material_key(), old.material_key()], b"x").expect("encodes");
        assert!(decode_payload(&twice).is_err(), "a generation twice");
        for bad in [
            &b""[..],
            b"HSMBKPL1",
            b"HSMBKPL2",
            b"HSMBKPL2\x00",
            b"HSMBKPL2\x01short",
            b"HSMSNAP1 and more bytes than a header holds",
        ] {
            assert!(decode_payload(bad).is_err());
        }
    }

    #[test]
    fn the_material_key_unwraps_what_the_domain_key_wrapped() {
        let domain = DomainKey::generate(0);
        let id = hsm_proto::KeyId(9);
        let wrapped = domain
            .wrap_material(id, b"secret key bytes")
            .expect("wraps");
        let opened = domain
            .material_key()
            .unwrap_material(id, &wrapped)
            .expect("opens");
        assert_eq!(&opened[..], b"secret key bytes");
        assert!(DomainKey::generate(0)
            .material_key()
            .unwrap_material(id, &wrapped)
            .is_err());
    }
}
