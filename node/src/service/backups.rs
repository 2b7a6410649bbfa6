//! `hsm backup ...`: backups on demand, listing, checking, deleting and the
//! keep-forever mark, through this node's snapshotter.

use std::sync::Arc;

use hsm_backup::BackupError;
use hsm_proto::client::{ClientError, ErrorKind, Reply};
use hsm_proto::{BackupId, BackupList, BackupVerified, UnreadableBackup};

use super::{Outcome, Service};
use crate::backup::Snapshotter;

/// A backup failure as the client sees it: damage is `damaged` and names
/// the object, a missing backup `not-found`, an unreachable destination
/// `unavailable`.
fn backup_error(e: &BackupError) -> ClientError {
    let kind = match e {
        BackupError::NotFound { .. } => ErrorKind::NotFound,
        BackupError::ObjectMissing { .. }
        | BackupError::ManifestDamaged { .. }
        | BackupError::ManifestSignature { .. }
        | BackupError::UntrustedSigner { .. }
        | BackupError::ChunkDamaged { .. }
        | BackupError::ChunkAuthentication { .. } => ErrorKind::Damaged,
        BackupError::KeepForever { .. } => ErrorKind::Conflict,
        BackupError::Store { .. } => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    };
    ClientError::new(kind, e.to_string())
}

impl Service {
    fn snapshotter(&self) -> Result<&Arc<Snapshotter>, ClientError> {
        self.backups.as_ref().ok_or_else(|| {
            ClientError::invalid(format!(
                "node {} has no backup destination: set [backup] destination and \
                 recovery_keys in its configuration",
                self.node
            ))
        })
    }

    pub(super) async fn create_backup(&self) -> Outcome {
        let snapshotter = self.snapshotter()?.clone();
        // Every write acknowledged before the request is in the backup: the
        // service passed the read barrier before it got here.
        // Run to the end even if the client goes away: an abandoned upload
        // would leave objects behind (never listed, but taking space).
        let task = tokio::spawn(async move {
            let manifest = snapshotter.create().await?;
            anyhow::Ok(snapshotter.info(&manifest, false))
        });
        match task.await {
            Ok(Ok(info)) => Ok(Reply::Backup(info)),
            Ok(Err(e)) => Err(match e.downcast_ref::<BackupError>() {
                Some(b) => backup_error(b),
                None => ClientError::new(ErrorKind::Internal, format!("backup failed: {e:#}")),
            }),
            Err(_) => Err(ClientError::internal("the backup task failed")),
        }
    }

    pub(super) async fn list_backups(&self) -> Outcome {
        let s = self.snapshotter()?;
        let cluster = s.cluster_id();
        let listed = hsm_backup::list_backups(s.dest())
            .await
            .map_err(|e| backup_error(&e))?;
        let mut list = BackupList {
            destination: s.destination(),
            backups: Vec::new(),
            unreadable: Vec::new(),
            other_clusters: 0,
        };
        for b in listed {
            match (b.details, b.problem) {
                (Some(d), _) if Some(d.cluster_id) != cluster => list.other_clusters += 1,
                (Some(_), _) if b.incomplete_chunks > 0 => list.unreadable.push(UnreadableBackup {
                    id: b.id,
                    problem: format!(
                        "{} chunk objects missing or of the wrong size: not restorable",
                        b.incomplete_chunks
                    ),
                }),
                (Some(_), _) => match s.describe(b.id).await {
                    Ok(info) => list.backups.push(info),
                    // Deleted or changed since it was listed.
                    Err(e) => list.unreadable.push(UnreadableBackup {
                        id: b.id,
                        problem: e.to_string(),
                    }),
                },
                (None, problem) => list.unreadable.push(UnreadableBackup {
                    id: b.id,
                    problem: problem.unwrap_or_else(|| "manifest does not read".into()),
                }),
            }
        }
        Ok(Reply::Backups(list))
    }

    /// Refuses a backup whose manifest names another cluster: one
    /// cluster's officers do not delete or mark another's backups. A
    /// backup whose manifest does not read may still be deleted.
    async fn check_ours(&self, s: &Snapshotter, id: BackupId) -> Result<(), ClientError> {
        match hsm_backup::describe_backup(s.dest(), id).await {
            Ok(d) if Some(d.manifest.cluster_id) != s.cluster_id() => {
                Err(ClientError::denied(format!(
                    "backup {id} belongs to cluster {}, not this one",
                    d.manifest.cluster_id
                )))
            }
            _ => Ok(()),
        }
    }

    pub(super) async fn describe_backup(&self, id: BackupId) -> Outcome {
        let s = self.snapshotter()?;
        let info = s.describe(id).await.map_err(|e| backup_error(&e))?;
        Ok(Reply::Backup(info))
    }

    pub(super) async fn verify_backup(&self, id: BackupId) -> Outcome {
        let s = self.snapshotter()?.clone();
        let task = tokio::spawn(async move {
            let report =
                hsm_backup::verify_backup(s.dest(), id, None, &hsm_backup::NoProgress).await?;
            let keep = hsm_backup::describe_backup(s.dest(), id)
                .await?
                .keep_forever;
            Ok::<_, BackupError>(BackupVerified {
                backup: s.info(&report.manifest, keep),
                chunks_checked: u32::try_from(report.chunks_checked).unwrap_or(u32::MAX),
                bytes_checked: report.object_bytes_checked,
            })
        });
        match task.await {
            Ok(Ok(v)) => Ok(Reply::BackupVerified(v)),
            Ok(Err(e)) => Err(backup_error(&e)),
            Err(_) => Err(ClientError::internal("the verify task failed")),
        }
    }

    pub(super) async fn delete_backup(&self, id: BackupId) -> Outcome {
        let s = self.snapshotter()?;
        self.check_ours(s, id).await?;
        hsm_backup::delete_backup(s.dest(), id)
            .await
            .map_err(|e| backup_error(&e))?;
        tracing::info!(backup_id = %id, "backup deleted on request");
        Ok(Reply::Done)
    }

    pub(super) async fn keep_backup(&self, id: BackupId, forever: bool) -> Outcome {
        let s = self.snapshotter()?;
        self.check_ours(s, id).await?;
        hsm_backup::set_keep_forever(s.dest(), id, forever)
            .await
            .map_err(|e| backup_error(&e))?;
        Ok(Reply::Backup(
            s.describe(id).await.map_err(|e| backup_error(&e))?,
        ))
    }
}
