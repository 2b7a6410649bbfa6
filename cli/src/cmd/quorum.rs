//! `quorum token-sign generate|sign|approve|list|delete`, `quorum
//! set-value|show`: M-of-N approvals of officer operations.
//!
//! A token file is JSON: the token's id, the cluster, who asked, what for
//! (in words), when it expires, the statement approvers sign (base64) and
//! the signatures gathered so far. `sign` works offline; the private key
//! stays with its approver.

use std::path::Path;

use hsm_client::hsm_proto::quorum::{parse_approval_statement, Intent, Service, Token};
use hsm_client::hsm_proto::{NodeId, Signature, TokenId};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::approval::{public_key_file, KeyFile};
use crate::args::{IntentCommand, QuorumCommand, ServiceArg, TokenSignCommand};
use crate::error::{CliError, Result};
use crate::io::{b64, from_b64, read_file, write_file};
use crate::keys::parse_key_reference;
use crate::output::{table, Outcome};
use crate::session::{username, Context};

/// A token file.
#[derive(Debug, Serialize, Deserialize)]
struct TokenFile {
    /// The token id, hex.
    token: String,
    /// The cluster, hex.
    cluster_id: String,
    /// The officer that asked for it.
    initiator: String,
    /// What it approves, in words.
    operation: String,
    /// When it expires, ms since the Unix epoch.
    expires_ms: u64,
    /// The bytes approvers sign, base64.
    statement: String,
    /// Signatures gathered.
    approvals: Vec<ApprovalEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ApprovalEntry {
    approver: String,
    /// 64-byte Ed25519 signature, base64.
    signature: String,
}

pub(super) fn service(arg: ServiceArg) -> Service {
    match arg {
        ServiceArg::User => Service::User,
        ServiceArg::Cluster => Service::Cluster,
        ServiceArg::Quorum => Service::Quorum,
    }
}

fn read_token_file(path: &Path) -> Result<TokenFile> {
    let bytes = read_file(path)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        CliError::invalid(format!(
            "{} is not a token file as `hsm quorum token-sign generate` writes it: {e}",
            path.display()
        ))
    })
}

fn write_token_file(path: &Path, file: &TokenFile) -> Result<()> {
    let text = serde_json::to_string_pretty(file)
        .map_err(|e| CliError::invalid(format!("cannot write the token file: {e}")))?;
    write_file(path, format!("{text}\n").as_bytes(), false)
}

fn token_json(token: &Token) -> Value {
    json!({
        "token": token.id.to_string(),
        "initiator": token.initiator.as_str(),
        "operation": token.intent.to_string(),
        "expires-ms": token.expires_ms,
        "approvals": token.approvals.iter().map(|a| a.approver.as_str()).collect::<Vec<_>>(),
    })
}

/// The intent a command line names.
fn intent(command: IntentCommand) -> Result<Intent> {
    Ok(match command {
        IntentCommand::UserCreate { username: u, role } => Intent::CreateUser {
            username: username(&u)?,
            role: super::user::role(role),
        },
        IntentCommand::UserDelete { username: u } => Intent::DeleteUser {
            username: username(&u)?,
        },
        IntentCommand::UserChangePassword { username: u } => Intent::ChangePassword {
            username: username(&u)?,
        },
        IntentCommand::UserUnlock { username: u } => Intent::UnlockUser {
            username: username(&u)?,
        },
        IntentCommand::UserResetMfa { username: u } => Intent::ResetMfa {
            username: username(&u)?,
        },
        IntentCommand::UserChangeQuorum {
            username: u,
            public_key,
        } => Intent::SetApprovalKey {
            username: username(&u)?,
            key: public_key.as_deref().map(public_key_file).transpose()?,
        },
        IntentCommand::NodeAdd { request } => Intent::AddNode {
            node: super::node::join_request(&request)?,
        },
        IntentCommand::NodeRemove { node_id } => Intent::RemoveNode {
            node: NodeId(node_id),
        },
        IntentCommand::RotateDomainKey => Intent::RotateDomainKey,
        IntentCommand::KeySetTrusted {
            key_reference,
            value,
        } => Intent::SetTrusted {
            key: parse_key_reference(&key_reference)?,
            trusted: value,
        },
        IntentCommand::SetValue { service: s, value } => Intent::SetQuorum {
            service: service(s),
            value,
        },
    })
}

pub(super) async fn run(ctx: &Context, command: QuorumCommand) -> Result<Outcome> {
    match command {
        QuorumCommand::TokenSign(c) => token_sign(ctx, c).await,
        QuorumCommand::SetValue { service: s, value } => {
            let me = ctx.login(None).await?;
            me.client
                .set_quorum_value(service(s), value)
                .await
                .map_err(|e| me.explain(e))?;
            Ok(Outcome::new(json!({
                "service": service(s).as_str(),
                "value": value,
            })))
        }
        QuorumCommand::Show => {
            let me = ctx.login(None).await?;
            let report = me.client.quorum_status().await.map_err(|e| me.explain(e))?;
            let values: serde_json::Map<String, Value> = report
                .values
                .iter()
                .map(|(s, v)| (s.as_str().to_string(), json!(v)))
                .collect();
            let rows: Vec<Vec<String>> = report
                .values
                .iter()
                .map(|(s, v)| vec![s.as_str().to_string(), v.to_string()])
                .collect();
            let header = vec!["service".to_string(), "quorum-value".to_string()];
            Ok(Outcome::new(json!({
                "cluster-id": report.cluster_id.to_string(),
                "values": values,
                "approvers": report.approvers.iter().map(|(u, k)| json!({
                    "username": u.as_str(),
                    "public-key": hex::encode(k),
                })).collect::<Vec<_>>(),
                "mfa-users": report.mfa_users.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
                "tokens": report.tokens.iter().map(token_json).collect::<Vec<_>>(),
            }))
            .with_table(table(&header, &rows)))
        }
    }
}

async fn token_sign(ctx: &Context, command: TokenSignCommand) -> Result<Outcome> {
    match command {
        TokenSignCommand::Generate { out, operation } => {
            let intent = intent(operation)?;
            let me = ctx.login(None).await?;
            let (token, statement, needed) = me
                .client
                .generate_quorum_token(intent)
                .await
                .map_err(|e| me.explain(e))?;
            let report = me.client.quorum_status().await.map_err(|e| me.explain(e))?;
            let file = TokenFile {
                token: token.id.to_string(),
                cluster_id: report.cluster_id.to_string(),
                initiator: token.initiator.to_string(),
                operation: token.intent.to_string(),
                expires_ms: token.expires_ms,
                statement: b64(&statement),
                approvals: Vec::new(),
            };
            write_token_file(&out, &file)?;
            Ok(Outcome::new(json!({
                "token": file.token,
                "operation": file.operation,
                "expires-ms": file.expires_ms,
                "path": out.display().to_string(),
                "needs": needed,
            })))
        }
        TokenSignCommand::Sign {
            token,
            approver,
            private_key,
            signature,
        } => {
            let mut file = read_token_file(&token)?;
            let approver_name = username(&approver)?;
            let statement = from_b64(&file.statement, "the token file's statement")?;
            // What is signed is the statement, not the file's words: read
            // the operation from the statement itself, and refuse a file
            // whose words say anything else.
            let (cluster, id, initiator, intent, expires_ms) = parse_approval_statement(&statement)
                .ok_or_else(|| {
                    CliError::invalid(format!(
                        "{}: its statement is not a quorum approval statement",
                        token.display()
                    ))
                })?;
            let said = (
                file.token.as_str(),
                file.cluster_id.as_str(),
                file.initiator.as_str(),
                file.operation.as_str(),
                file.expires_ms,
            );
            let (id_text, cluster_text, operation) =
                (id.to_string(), cluster.to_string(), intent.to_string());
            let signed = (
                id_text.as_str(),
                cluster_text.as_str(),
                initiator.as_str(),
                operation.as_str(),
                expires_ms,
            );
            if said != signed {
                return Err(CliError::invalid(format!(
                    "{}: the file says token {} by {} to {:?}, but its statement is token {} by {} to \
                     {:?} (cluster {}): not signed",
                    token.display(),
                    file.token,
                    file.initiator,
                    file.operation,
                    id_text,
                    initiator,
                    operation,
                    cluster_text
                )));
            }
            let signature = match (private_key, signature) {
                (Some(key), _) => KeyFile::open(&key)?.sign(&statement),
                (None, Some(sig)) => {
                    let bytes = read_file(&sig)?;
                    let raw: [u8; 64] = bytes.as_slice().try_into().map_err(|_| {
                        CliError::invalid(format!(
                            "{}: an Ed25519 signature is 64 bytes, not {}",
                            sig.display(),
                            bytes.len()
                        ))
                    })?;
                    Signature(raw)
                }
                (None, None) => return Err(CliError::usage("give --private-key or --signature")),
            };
            file.approvals
                .retain(|a| a.approver != approver_name.as_str());
            file.approvals.push(ApprovalEntry {
                approver: approver_name.to_string(),
                signature: b64(&signature.0),
            });
            write_token_file(&token, &file)?;
            Ok(Outcome::new(json!({
                "token": file.token,
                "operation": file.operation,
                "approver": approver_name.as_str(),
                "signatures": file.approvals.len(),
            })))
        }
        TokenSignCommand::Approve { token } => {
            let file = read_token_file(&token)?;
            let id: TokenId = file.token.parse().map_err(CliError::invalid)?;
            if file.approvals.is_empty() {
                return Err(CliError::invalid(format!(
                    "{} holds no signatures: approvers sign it first (hsm quorum token-sign sign)",
                    token.display()
                )));
            }
            let me = ctx.login(None).await?;
            let gone =
                || CliError::invalid(format!("token {id} is gone (used, deleted or expired)"));
            let status = me.client.quorum_status().await.map_err(|e| me.explain(e))?;
            let mut current = status
                .tokens
                .into_iter()
                .find(|t| t.id == id)
                .ok_or_else(gone)?;
            for entry in &file.approvals {
                // Handed in before (this command run again): skipped.
                if current
                    .approvals
                    .iter()
                    .any(|a| a.approver.as_str() == entry.approver)
                {
                    continue;
                }
                let raw = from_b64(&entry.signature, "a signature in the token file")?;
                let raw: [u8; 64] = raw.as_slice().try_into().map_err(|_| {
                    CliError::invalid(format!(
                        "the signature of {} is not 64 bytes",
                        entry.approver
                    ))
                })?;
                let (token, _, _) = me
                    .client
                    .approve_quorum_token(id, username(&entry.approver)?, Signature(raw))
                    .await
                    .map_err(|e| {
                        me.explain(e)
                            .context(format!("approval by {}", entry.approver))
                    })?;
                current = token;
            }
            Ok(Outcome::new(token_json(&current)))
        }
        TokenSignCommand::List => {
            let me = ctx.login(None).await?;
            let report = me.client.quorum_status().await.map_err(|e| me.explain(e))?;
            let rows: Vec<Vec<String>> = report
                .tokens
                .iter()
                .map(|t| {
                    vec![
                        t.id.to_string(),
                        t.initiator.to_string(),
                        t.intent.to_string(),
                        t.approvals.len().to_string(),
                    ]
                })
                .collect();
            let header: Vec<String> = ["token", "initiator", "operation", "approvals"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            Ok(Outcome::new(json!({
                "tokens": report.tokens.iter().map(token_json).collect::<Vec<_>>(),
            }))
            .with_table(table(&header, &rows)))
        }
        TokenSignCommand::Delete { token } => {
            let id: TokenId = token.parse().map_err(CliError::invalid)?;
            let me = ctx.login(None).await?;
            me.client
                .delete_quorum_token(id)
                .await
                .map_err(|e| me.explain(e))?;
            Ok(Outcome::new(json!({ "token": token, "deleted": true })))
        }
    }
}
