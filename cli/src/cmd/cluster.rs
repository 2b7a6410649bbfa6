//! `cluster activate`, `cluster info` and `cluster rotate-domain-key`.

use std::collections::BTreeSet;
use std::time::Duration;

use hsm_client::{Client, ClientNode, ClusterStatus};
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::args::ClusterCommand;
use crate::error::{Class, CliError, Result};
use crate::output::Outcome;
use crate::session::{login, new_password, password_prompted, username, Context};

/// Longest a member's health check may take.
const HEALTH_DEADLINE: Duration = Duration::from_secs(3);

pub(super) async fn run(ctx: &Context, command: ClusterCommand) -> Result<Outcome> {
    match command {
        ClusterCommand::Activate { new_password_env } => {
            activate(ctx, new_password_env.as_deref()).await
        }
        ClusterCommand::Info => info(ctx).await,
        ClusterCommand::RotateDomainKey => {
            let me = ctx.login(None).await?;
            let generation = me
                .client
                .rotate_domain_key()
                .await
                .map_err(|e| me.explain(e))?;
            Ok(Outcome::new(json!({
                "domain-key-generation": generation,
                "message": format!(
                    "the domain key is now generation {generation}, sealed to the current members only; \
                     every session has ended (log in again); the leader re-wraps every key's \
                     material and then retires the old generation (see `hsm cluster info`)"
                ),
            })))
        }
    }
}

async fn activate(ctx: &Context, new_password_env: Option<&str>) -> Result<Outcome> {
    let client = ctx.connect().await?;
    let status = client.cluster_info().await?;
    if status.activated {
        return Err(CliError::new(
            Class::Input,
            "conflict",
            "the cluster is already activated: admin has set its password (log in as admin \
             with it; `hsm user change-password` changes it)",
        ));
    }
    let admin = username("admin")?;
    let one_time = password_prompted(&admin, "One-time password of admin: ")?;
    let new = new_password(new_password_env, "--new-password-env", "admin")?;
    login(&client, &admin, &one_time, None).await?;
    client
        .change_own_password(one_time.as_str(), new.as_str())
        .await?;
    Ok(Outcome::new(json!({
        "username": "admin",
        "role": "admin",
        "activated": true,
        "message": "the cluster is activated: admin is a crypto officer with the new password",
    })))
}

async fn info(ctx: &Context) -> Result<Outcome> {
    let config = ctx.config()?;
    // Key and user counts are shown to signed-in users only: log in when
    // a user is configured, else leave them out.
    let (client, signed_in) = match ctx.username {
        Some(_) => (ctx.login(None).await?.client, true),
        None => (Client::connect(config.clone(), ctx.options()).await?, false),
    };
    let status = client.cluster_info().await?;
    // The leader's view (lag, protocol versions, last backup), for
    // signed-in users, from nodes that speak client protocol 2.
    let report = if signed_in {
        Some(client.member_status().await.map_err(|e| e.to_string()))
    } else {
        None
    };
    let mut checks = JoinSet::new();
    for (i, member) in status.members.iter().enumerate() {
        let mut member_config = config.clone();
        member_config.nodes = vec![ClientNode::of_member(member)];
        let options = ctx
            .options()
            .follow_membership(false)
            .deadline(ctx.timeout.min(HEALTH_DEADLINE));
        checks.spawn(async move {
            let health = match Client::new(member_config, options) {
                Ok(c) => c.cluster_info().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            (i, health)
        });
    }
    let mut health: Vec<Option<Result<ClusterStatus, String>>> = vec![None; status.members.len()];
    while let Some(done) = checks.join_next().await {
        if let Ok((i, h)) = done {
            if let Some(slot) = health.get_mut(i) {
                *slot = Some(h);
            }
        }
    }
    let members: Vec<Value> = status
        .members
        .iter()
        .zip(health)
        .map(|(m, h)| {
            let (state, term, seen_leader) = match h {
                Some(Ok(s)) if s.leader.is_some() => ("ok".to_string(), Some(s.term), s.leader),
                Some(Ok(s)) => ("no leader known".to_string(), Some(s.term), None),
                Some(Err(e)) => (format!("unreachable: {e}"), None, None),
                None => ("unknown".to_string(), None, None),
            };
            let seen = match &report {
                Some(Ok(r)) => r.members.iter().find(|s| s.id == m.id),
                _ => None,
            };
            json!({
                "node-id": m.id.0,
                "address": m.address,
                "zone": m.zone,
                "transport-key": hex::encode(m.transport_key),
                "voter": m.voter,
                "leader": status.leader == Some(m.id),
                "health": state,
                "term": term,
                "sees-leader": seen_leader.map(|l| l.0),
                "lag-entries": seen.and_then(|s| s.lag),
                "raft-protocol": seen.and_then(|s| s.raft_protocol),
            })
        })
        .collect();
    let zones: BTreeSet<&str> = status.members.iter().map(|m| m.zone.as_str()).collect();
    let mut data = json!({
        "cluster-id": status.cluster_id.map(|c| c.to_string()),
        "activated": status.activated,
        "leader": status.leader.map(|l| l.0),
        "term": status.term,
        "answered-by": status.answered_by.0,
        "zones": zones,
        "keys": signed_in.then_some(status.keys),
        "users": signed_in.then_some(status.users),
        "domain-key": status.domain_key.as_ref().map(|d| json!({
            "generation": d.generation,
            "older-generations": d.older_generations,
            "keys-to-rewrap": d.keys_to_rewrap,
            "rotation-due": d.rotation_due,
        })),
        "members": members,
    });
    if let (Some(report), Some(map)) = (&report, data.as_object_mut()) {
        match report {
            Ok(r) => {
                map.insert("raft-protocol".into(), json!(r.raft_protocol));
                map.insert("leader-speaks-raft-protocol".into(), json!(r.leader_speaks));
                map.insert("last-log-index".into(), json!(r.last_log_index));
                map.insert("last-backup-ms".into(), json!(r.last_backup_ms));
            }
            Err(e) => {
                map.insert(
                    "member-status".into(),
                    json!(format!("the leader's view is not available: {e}")),
                );
            }
        }
    }
    if let (false, Some(map)) = (signed_in, data.as_object_mut()) {
        map.insert(
            "note".into(),
            json!(
                "key and user counts and the domain key are shown to signed-in users: set HSM_USER and HSM_PASSWORD"
            ),
        );
    }
    Ok(Outcome::new(data))
}
