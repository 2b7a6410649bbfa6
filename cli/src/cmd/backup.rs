//! `backup create|list|describe|verify|delete|keep`: sealed backups, by a
//! crypto officer, through the node's snapshotter.

use std::time::Duration;

use hsm_client::{BackupId, BackupInfo};
use serde_json::{json, Value};

use crate::args::BackupCommand;
use crate::error::{CliError, Result};
use crate::output::{table, Outcome};
use crate::session::Context;

/// Shortest wait for a backup to be written or checked: a large state
/// takes minutes, and the default call timeout is seconds.
const LONG_CALL: Duration = Duration::from_secs(30 * 60);

fn parse_id(text: &str) -> Result<BackupId> {
    text.parse()
        .map_err(|e: hsm_client::hsm_proto::ParseBackupIdError| CliError::invalid(e.to_string()))
}

fn backup_json(b: &BackupInfo) -> Value {
    json!({
        "backup-id": b.id.to_string(),
        "location": b.location,
        "cluster-id": b.cluster_id.to_string(),
        "applied-index": b.applied_index,
        "term": b.term,
        "created-ms": b.created_ms,
        "created": rfc3339(b.created_ms),
        "writer-node-id": b.writer.0,
        "writer-key": b.writer_key,
        "writer-is-member": b.writer_is_member,
        "plain-bytes": b.plain_bytes,
        "stored-bytes": b.stored_bytes,
        "chunks": b.chunks,
        "recovery-key-fingerprints": b.recovery_keys,
        "keep-forever": b.keep_forever,
    })
}

/// UTC time of `ms` since the Unix epoch, as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn backup_table(b: &BackupInfo) -> String {
    let rows: Vec<Vec<String>> = [
        ("backup-id", b.id.to_string()),
        ("location", b.location.clone()),
        ("cluster-id", b.cluster_id.to_string()),
        ("applied-index", b.applied_index.to_string()),
        ("term", b.term.to_string()),
        ("created", rfc3339(b.created_ms)),
        (
            "writer",
            format!(
                "node {}{}",
                b.writer.0,
                if b.writer_is_member {
                    ""
                } else {
                    " (not a current member)"
                }
            ),
        ),
        ("writer-key", b.writer_key.clone()),
        ("stored-bytes", b.stored_bytes.to_string()),
        ("chunks", b.chunks.to_string()),
        ("recovery-keys", b.recovery_keys.join(", ")),
        ("keep-forever", b.keep_forever.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| vec![k.to_owned(), v])
    .collect();
    table(&["field".to_owned(), "value".to_owned()], &rows)
}

pub(super) async fn run(ctx: &Context, command: BackupCommand) -> Result<Outcome> {
    let me = ctx.login(None).await?;
    let long = me.client.with_deadline(ctx.timeout.max(LONG_CALL));
    match command {
        BackupCommand::Create => {
            let b = long.create_backup().await.map_err(|e| me.explain(e))?;
            Ok(Outcome::new(json!({ "backup": backup_json(&b) })).with_table(backup_table(&b)))
        }
        BackupCommand::List => {
            let list = me.client.list_backups().await.map_err(|e| me.explain(e))?;
            let header: Vec<String> = [
                "backup-id",
                "created",
                "applied-index",
                "stored-bytes",
                "writer",
                "keep-forever",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let mut rows: Vec<Vec<String>> = list
                .backups
                .iter()
                .map(|b| {
                    vec![
                        b.id.to_string(),
                        rfc3339(b.created_ms),
                        b.applied_index.to_string(),
                        b.stored_bytes.to_string(),
                        format!("node {}", b.writer.0),
                        b.keep_forever.to_string(),
                    ]
                })
                .collect();
            rows.extend(list.unreadable.iter().map(|u| {
                vec![
                    u.id.to_string(),
                    format!("UNREADABLE: {}", u.problem),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ]
            }));
            let data = json!({
                "destination": list.destination,
                "other-clusters": list.other_clusters,
                "backups": list.backups.iter().map(backup_json).collect::<Vec<_>>(),
                "unreadable": list.unreadable.iter().map(|u| json!({
                    "backup-id": u.id.to_string(),
                    "problem": u.problem,
                })).collect::<Vec<_>>(),
            });
            Ok(Outcome::new(data).with_table(format!(
                "destination: {} ({} backups of other clusters not shown)\n{}",
                list.destination,
                list.other_clusters,
                table(&header, &rows)
            )))
        }
        BackupCommand::Describe { backup_id } => {
            let id = parse_id(&backup_id)?;
            let b = me
                .client
                .describe_backup(id)
                .await
                .map_err(|e| me.explain(e))?;
            Ok(Outcome::new(json!({ "backup": backup_json(&b) })).with_table(backup_table(&b)))
        }
        BackupCommand::Verify { backup_id } => {
            let id = parse_id(&backup_id)?;
            let v = long.verify_backup(id).await.map_err(|e| me.explain(e))?;
            let data = json!({
                "backup": backup_json(&v.backup),
                "verified": true,
                "chunks-checked": v.chunks_checked,
                "bytes-checked": v.bytes_checked,
            });
            let text = format!(
                "backup {} verified: manifest signature and {} chunks ({} bytes) check out\n{}",
                v.backup.id,
                v.chunks_checked,
                v.bytes_checked,
                backup_table(&v.backup)
            );
            Ok(Outcome::new(data).with_table(text))
        }
        BackupCommand::Delete { backup_id } => {
            let id = parse_id(&backup_id)?;
            me.client
                .delete_backup(id)
                .await
                .map_err(|e| me.explain(e))?;
            Ok(Outcome::new(
                json!({ "backup-id": id.to_string(), "deleted": true }),
            ))
        }
        BackupCommand::Keep { backup_id, clear } => {
            let id = parse_id(&backup_id)?;
            let b = me
                .client
                .keep_backup(id, !clear)
                .await
                .map_err(|e| me.explain(e))?;
            Ok(Outcome::new(json!({ "backup": backup_json(&b) })).with_table(backup_table(&b)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn times_are_shown_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_996_799_999), "2026-11-29T23:59:59Z");
    }
}
