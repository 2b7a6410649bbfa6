//! `user create|delete|list|change-password|unlock`.

use hsm_client::Role;
use serde_json::{json, Value};

use crate::approval::public_key_file;
use crate::args::{ApprovalKeyCommand, ChangeQuorumCommand, RoleArg, UserCommand};
use crate::error::{CliError, Result};
use crate::output::{table, Outcome};
use crate::session::{new_password, role_name, username, Context};

pub(super) fn role(arg: RoleArg) -> Role {
    match arg {
        RoleArg::Admin => Role::Co,
        RoleArg::CryptoUser => Role::Cu,
    }
}

pub(super) async fn run(ctx: &Context, command: UserCommand) -> Result<Outcome> {
    match command {
        UserCommand::Create {
            username: name,
            role: role_arg,
            password_env,
        } => {
            let target = username(&name)?;
            let me = ctx.login(None).await?;
            let password = new_password(password_env.as_deref(), "--password-env", &name)?;
            let role = role(role_arg);
            me.client
                .create_user(target, role, password.as_str())
                .await
                .map_err(|e| me.explain(e))?;
            Ok(Outcome::new(json!({
                "username": name,
                "role": role_name(role),
            })))
        }
        UserCommand::Delete { username: name } => {
            let target = username(&name)?;
            let me = ctx.login(None).await?;
            me.client
                .delete_user(target)
                .await
                .map_err(|e| me.explain(e))?;
            Ok(Outcome::new(json!({ "username": name, "deleted": true })))
        }
        UserCommand::List => {
            let me = ctx.login(None).await?;
            let users = me.client.list_users().await.map_err(|e| me.explain(e))?;
            let rows: Vec<Vec<String>> = users
                .iter()
                .map(|u| {
                    vec![
                        u.username.to_string(),
                        role_name(u.role).to_string(),
                        u.locked.to_string(),
                        u.failed_logins.to_string(),
                    ]
                })
                .collect();
            let header: Vec<String> = ["username", "role", "locked", "login-failure-count"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            let users: Vec<Value> = users
                .iter()
                .map(|u| {
                    json!({
                        "username": u.username.as_str(),
                        "role": role_name(u.role),
                        "locked": u.locked,
                        "login-failure-count": u.failed_logins,
                    })
                })
                .collect();
            Ok(Outcome::new(json!({ "users": users })).with_table(table(&header, &rows)))
        }
        UserCommand::ChangePassword {
            username: name,
            password_env,
        } => {
            // One's own change proves the current password: the one just
            // logged in with.
            let (me, current) = ctx.login_with_password(None).await?;
            let target = match &name {
                Some(n) => username(n)?,
                None => me.session.username.clone(),
            };
            let password =
                new_password(password_env.as_deref(), "--password-env", target.as_str())?;
            let changed = if target == me.session.username {
                me.client
                    .change_own_password(current.as_str(), password.as_str())
                    .await
            } else {
                me.client
                    .change_password(target.clone(), password.as_str())
                    .await
            };
            changed.map_err(|e| me.explain(e))?;
            Ok(Outcome::new(json!({
                "username": target.as_str(),
                "message": format!("password of {target} changed; its open sessions have ended"),
            })))
        }
        UserCommand::ChangeMfa {
            username: name,
            public_key,
            disable,
        } => {
            let key = match (&public_key, disable) {
                (Some(path), false) => Some(public_key_file(path)?),
                _ => None,
            };
            let (me, current) = ctx.login_with_password(None).await?;
            let target = match &name {
                Some(n) => username(n)?,
                None => me.session.username.clone(),
            };
            let changed = if target == me.session.username {
                me.client.set_own_mfa(current.as_str(), key).await
            } else if key.is_some() {
                return Err(CliError::invalid(
                    "a crypto officer may only clear another user's second factor (--disable); \
                     the user sets its own",
                ));
            } else {
                me.client.reset_mfa(target.clone()).await
            };
            changed.map_err(|e| me.explain(e))?;
            Ok(Outcome::new(json!({
                "username": target.as_str(),
                "mfa": key.is_some(),
                "message": if key.is_some() {
                    format!("{target} now logs in with its second factor (--mfa-key)")
                } else {
                    format!("{target} logs in with its password alone")
                },
            })))
        }
        UserCommand::ChangeQuorum(ChangeQuorumCommand::TokenSign(c)) => {
            let (name, key) = match &c {
                ApprovalKeyCommand::Register {
                    public_key,
                    username,
                } => (username.clone(), Some(public_key_file(public_key)?)),
                ApprovalKeyCommand::Unregister { username } => (username.clone(), None),
            };
            // One's own proves the current password: the one just logged
            // in with.
            let (me, current) = ctx.login_with_password(None).await?;
            let target = match &name {
                Some(n) => username(n)?,
                None => me.session.username.clone(),
            };
            let set = if target == me.session.username {
                me.client
                    .set_own_approval_key(target.clone(), current.as_str(), key)
                    .await
            } else {
                me.client.set_approval_key(target.clone(), key).await
            };
            set.map_err(|e| me.explain(e))?;
            Ok(Outcome::new(json!({
                "username": target.as_str(),
                "approval-key": key.map(hex::encode),
            })))
        }
        UserCommand::Unlock { username: name } => {
            let target = username(&name)?;
            let me = ctx.login(None).await?;
            me.client
                .unlock_user(target)
                .await
                .map_err(|e| me.explain(e))?;
            Ok(Outcome::new(json!({ "username": name, "locked": false })))
        }
    }
}
