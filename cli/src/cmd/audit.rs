//! `audit verify|list`: the event trail in the archive beside the backups,
//! opened with a recovery key and checked offline (`hsm_state::audit`): no
//! cluster, no node, nothing trusted but the events' own signatures and the
//! anchor the reader gives.

use hsm_backup::audit::{audit_destination, list_segments, read_segment};
use hsm_backup::{Destination, Opener, RecoveryKey};
use hsm_client::hsm_proto::{Actor, EventBody, EventHash, KeyId, SignedEvent, Username};
use hsm_state::audit::Verifier;
use hsm_state::{event_hash, State};
use serde_json::{json, Value};

use crate::args::{ArchiveArgs, AuditCommand};
use crate::error::{Class, CliError, Result};
use crate::keys::parse_key_reference;
use crate::output::{table, Outcome};
use crate::session::{username, Context};

/// The archive's events, oldest first, each with its number; segments
/// that did not read, with why; and events repeated by overlapping
/// segments (two leaders writing at once) folded when identical.
struct Trail {
    events: Vec<(u64, SignedEvent)>,
    unreadable: Vec<String>,
}

async fn read_trail(args: &ArchiveArgs) -> Result<Trail> {
    let dest = Destination::from_url(&args.from).map_err(|e| CliError::invalid(e.to_string()))?;
    let audit = audit_destination(&dest).map_err(|e| CliError::invalid(e.to_string()))?;
    let key =
        RecoveryKey::load(&args.recovery_key).map_err(|e| CliError::invalid(e.to_string()))?;
    let ranges = list_segments(&audit).await.map_err(|e| {
        CliError::new(
            Class::Unavailable,
            "unavailable",
            format!("cannot list the archive: {e}"),
        )
    })?;
    let mut events: Vec<(u64, SignedEvent)> = Vec::new();
    let mut unreadable = Vec::new();
    for range in ranges {
        match read_segment(&audit, range, Opener::RecoveryKey(&key), None).await {
            Ok(segment) => {
                for (i, event) in segment.events.into_iter().enumerate() {
                    let seq = segment.first_seq + i as u64;
                    // A copy of an event already read (segments of two
                    // leaders overlapping) is folded; anything else under a
                    // number already read stays, for the check to report.
                    let copy = events
                        .iter()
                        .rev()
                        .take_while(|(s, _)| *s >= seq)
                        .any(|(s, e)| *s == seq && event_hash(e) == event_hash(&event));
                    if !copy {
                        events.push((seq, event));
                    }
                }
            }
            Err(e) => unreadable.push(format!("events {} to {}: {e}", range.0, range.1)),
        }
    }
    Ok(Trail { events, unreadable })
}

pub(super) async fn run(ctx: &Context, command: AuditCommand) -> Result<Outcome> {
    match command {
        AuditCommand::Verify {
            archive,
            anchor,
            cluster_head,
        } => {
            let head = cluster_head.as_deref().map(parse_head).transpose()?;
            verify(&archive, anchor.as_deref(), head).await
        }
        AuditCommand::Head => {
            let me = ctx.login(None).await?;
            let (events, head) = me.client.audit_head().await.map_err(|e| me.explain(e))?;
            Ok(Outcome::new(json!({
                "events": events,
                "head": head.to_string(),
                "cluster-head": format!("{events}:{head}"),
            })))
        }
        AuditCommand::List {
            archive,
            since,
            until,
            user,
            key,
        } => {
            let user = user.as_deref().map(username).transpose()?;
            let key = key.as_deref().map(parse_key_reference).transpose()?;
            list(&archive, since, until, user.as_ref(), key).await
        }
    }
}

/// `N:HEX` as `hsm audit head` prints it.
fn parse_head(text: &str) -> Result<(u64, EventHash)> {
    let wrong = || {
        CliError::usage(format!(
            "--cluster-head is N:HEX as `hsm audit head` prints it, not {text:?}"
        ))
    };
    let (n, hex_hash) = text.trim().split_once(':').ok_or_else(wrong)?;
    let n: u64 = n.parse().map_err(|_| wrong())?;
    let bytes: [u8; 32] = hex::decode(hex_hash)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(wrong)?;
    Ok((n, EventHash(bytes)))
}

async fn verify(
    archive: &ArchiveArgs,
    anchor: Option<&str>,
    cluster_head: Option<(u64, EventHash)>,
) -> Result<Outcome> {
    let trail = read_trail(archive).await?;
    let mut verifier = Verifier::new();
    for (seq, event) in &trail.events {
        verifier.feed(*seq, event);
    }
    let summary = verifier.finish();
    let mut problems: Vec<String> = trail
        .unreadable
        .iter()
        .map(|u| format!("a segment does not read: {u}"))
        .collect();
    problems.extend(summary.findings.iter().map(ToString::to_string));
    let anchor_key = summary.anchor.map(|(_, k)| hex::encode(k));
    if let Some(expected) = anchor {
        if anchor_key.as_deref() != Some(expected.trim()) {
            problems.push(format!(
                "the trail starts from signing key {}, not the anchor given",
                anchor_key
                    .as_deref()
                    .unwrap_or("(none: it does not start with the cluster's first event)")
            ));
        }
    }
    if summary.events == 0 {
        problems.push("the archive holds no events".into());
    }
    if let Some((n, expected)) = cluster_head {
        match trail.events.iter().find(|(seq, _)| *seq == n) {
            None => problems.push(format!(
                "the trail does not hold event {n}, which the cluster had: its end was cut off, or the archive has not caught up yet"
            )),
            Some((_, event)) if event_hash(event) != expected => problems.push(
                format!("event {n} is not the one the cluster had (another hash)"),
            ),
            Some(_) => {}
        }
    }
    let report = json!({
        "intact": problems.is_empty(),
        "events": summary.events,
        "first": summary.range.map(|r| r.0),
        "last": summary.range.map(|r| r.1),
        "cluster-id": summary.cluster.map(|c| c.to_string()),
        "anchor-node": summary.anchor.map(|(n, _)| n.0),
        "anchor-key": anchor_key,
        "head": summary.head.map(|h| h.to_string()),
        "problems": problems,
    });
    if problems.is_empty() {
        Ok(Outcome::new(report))
    } else {
        let mut err = CliError::new(
            Class::Input,
            "damaged",
            format!(
                "the audit trail does not check out: {}",
                problems.join("; ")
            ),
        );
        err.details = Some(Box::new(("report", report)));
        Err(err)
    }
}

/// The user names an event is about, besides its actor.
fn names_user(body: &EventBody, user: &Username) -> bool {
    // Every body's `Debug` names the users it is about (and nothing
    // secret): `Username("alice")`.
    format!("{body:?}").contains(&format!("Username({:?})", user.as_str()))
}

/// The keys an event is about.
fn names_key(body: &EventBody, key: KeyId) -> bool {
    match body {
        EventBody::KeyCreated { key: k, .. }
        | EventBody::KeyShared { key: k, .. }
        | EventBody::KeyUnshared { key: k, .. }
        | EventBody::KeyAttributeSet { key: k, .. }
        | EventBody::KeyDeleted { key: k }
        | EventBody::KeyWrappedOut { key: k }
        | EventBody::KeyRotated { key: k, .. }
        | EventBody::KeyMinDecryptionSet { key: k, .. }
        | EventBody::KeyVersionsTrimmed { key: k, .. } => *k == key,
        EventBody::KeyMaterialRewrapped { keys, .. } => keys.iter().any(|k| k.key == key),
        EventBody::KeyVersionsRewrapped { versions, .. } => versions.iter().any(|v| v.key == key),
        EventBody::KeyUsesCounted { uses } => uses.iter().any(|u| u.key == key),
        _ => false,
    }
}

async fn list(
    archive: &ArchiveArgs,
    since: Option<u64>,
    until: Option<u64>,
    user: Option<&Username>,
    key: Option<KeyId>,
) -> Result<Outcome> {
    let trail = read_trail(archive).await?;
    // Replayed from the first event, the trail tells each request's
    // outcome as every replica applied it.
    let mut replay = trail
        .events
        .first()
        .filter(|(seq, _)| *seq == 1)
        .map(|_| State::new());
    let mut rows = Vec::new();
    let mut listed = Vec::new();
    for (seq, event) in &trail.events {
        let outcome = match replay.as_mut() {
            Some(state) if event.event.prev_hash == state.head() => {
                let applied = state.apply(event);
                match applied.result {
                    // A copy of a request applied before: nothing new.
                    Ok(()) if applied.replayed => "replayed".to_string(),
                    Ok(()) => "applied".to_string(),
                    Err(r) => format!("refused: {r}"),
                }
            }
            _ => {
                replay = None;
                "unknown".to_string()
            }
        };
        let e = &event.event;
        let in_time =
            since.is_none_or(|s| e.timestamp_ms >= s) && until.is_none_or(|u| e.timestamp_ms < u);
        let by_user = user
            .is_none_or(|u| matches!(&e.actor, Actor::User(a) if a == u) || names_user(&e.body, u));
        let on_key = key.is_none_or(|k| names_key(&e.body, k));
        if !(in_time && by_user && on_key) {
            continue;
        }
        let what = format!("{:?}", e.body);
        rows.push(vec![
            seq.to_string(),
            e.timestamp_ms.to_string(),
            e.actor.to_string(),
            e.body.kind().to_string(),
            outcome.clone(),
        ]);
        let mut entry = json!({
            "seq": seq,
            "time-ms": e.timestamp_ms,
            "actor": e.actor.to_string(),
            "kind": e.body.kind(),
            "event": what,
            "outcome": outcome,
            "signer": event.signer.0,
        });
        let counted = outcome == "applied" || outcome == "unknown";
        if let (EventBody::KeyUsesCounted { uses }, Some(map), true) =
            (&e.body, entry.as_object_mut(), counted)
        {
            // The counts the filters ask about, one by one.
            let uses: Vec<Value> = uses
                .iter()
                .filter(|u| key.is_none_or(|k| u.key == k) && user.is_none_or(|n| u.user == *n))
                .map(|u| {
                    json!({
                        "key-reference": u.key.to_string(),
                        "user": u.user.as_str(),
                        "operation": u.kind.name(),
                        "count": u.count,
                    })
                })
                .collect();
            map.insert("uses".into(), json!(uses));
        }
        listed.push(entry);
    }
    let header: Vec<String> = ["seq", "time-ms", "actor", "kind", "outcome"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let data: Value = json!({
        "events": listed,
        "unreadable-segments": trail.unreadable,
    });
    Ok(Outcome::new(data).with_table(table(&header, &rows)))
}
