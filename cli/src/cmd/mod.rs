//! One module per command group; each turns parsed arguments into an
//! [`Outcome`] or a [`CliError`].

mod audit;
mod backup;
mod batch;
mod cluster;
mod crypto;
mod key;
mod node;
mod quorum;
mod user;

use serde_json::json;

use crate::args::{Command, LoginArgs};
use crate::error::Result;
use crate::output::Outcome;
use crate::session::{role_name, Context};

/// Runs one command.
///
/// # Errors
/// Whatever the command fails with.
pub async fn run(ctx: &Context, command: Command) -> Result<Outcome> {
    match command {
        Command::Login(args) => login(ctx, args).await,
        Command::Logout => logout(ctx).await,
        Command::Cluster(c) => cluster::run(ctx, c).await,
        Command::User(c) => user::run(ctx, c).await,
        Command::Key(c) => key::run(ctx, c).await,
        Command::Crypto(c) => crypto::run(ctx, c).await,
        Command::Node(c) => node::run(ctx, c).await,
        Command::Backup(c) => backup::run(ctx, c).await,
        Command::Quorum(c) => quorum::run(ctx, c).await,
        Command::Audit(c) => audit::run(ctx, c).await,
    }
}

async fn login(ctx: &Context, args: LoginArgs) -> Result<Outcome> {
    let logged_in = ctx.login(args.username.as_deref()).await?;
    let session = &logged_in.session;
    Ok(Outcome::new(json!({
        "username": session.username.as_str(),
        "role": role_name(session.role),
        "session-expires-ms": session.expires_ms,
        "note": "credentials are valid; hsm keeps no session between invocations, so every \
                 command logs in again with HSM_USER and HSM_PASSWORD",
    })))
}

async fn logout(ctx: &Context) -> Result<Outcome> {
    let logged_in = ctx.login(None).await?;
    logged_in
        .client
        .logout_everywhere()
        .await
        .map_err(|e| logged_in.explain(e))?;
    let user = logged_in.session.username.as_str();
    Ok(Outcome::new(json!({
        "username": user,
        "message": format!("every session of {user} issued so far has ended, on every node"),
    })))
}
