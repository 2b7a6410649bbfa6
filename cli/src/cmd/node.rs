//! `node add|remove`: membership approvals by a crypto officer.

use hsm_client::{NodeId, NodeRecord};
use serde_json::json;

use crate::args::NodeCommand;
use crate::error::{CliError, Result};
use crate::output::Outcome;
use crate::session::Context;

/// The member record in a join request file, as `hsm-node prepare`
/// writes it.
///
/// # Errors
/// `invalid-input` for anything else.
pub(super) fn join_request(request: &std::path::Path) -> Result<NodeRecord> {
    let text = std::fs::read_to_string(request).map_err(|e| CliError::io(request, "read", &e))?;
    toml::from_str(&text).map_err(|e| {
        CliError::invalid(format!(
            "{} is not a join request as `hsm-node prepare` writes it: {e}",
            request.display()
        ))
    })
}

pub(super) async fn run(ctx: &Context, command: NodeCommand) -> Result<Outcome> {
    match command {
        NodeCommand::Add { request } => {
            let record = join_request(&request)?;
            let me = ctx.login(None).await?;
            let (id, address, zone) = (record.id, record.address.clone(), record.zone.clone());
            me.client
                .add_node(record)
                .await
                .map_err(|e| me.explain(e))?;
            Ok(Outcome::new(json!({
                "node-id": id.0,
                "address": address,
                "zone": zone,
                "message": format!(
                    "node {id} approved; start it with `hsm-node start --join <member address>`"
                ),
            })))
        }
        NodeCommand::Remove { node_id } => {
            let me = ctx.login(None).await?;
            me.client
                .remove_node(NodeId(node_id))
                .await
                .map_err(|e| me.explain(e))?;
            Ok(Outcome::new(json!({ "node-id": node_id, "removed": true })))
        }
        NodeCommand::TransferLeader { to } => {
            let me = ctx.login(None).await?;
            let leader = me
                .client
                .transfer_leadership(to.map(NodeId))
                .await
                .map_err(|e| me.explain(e))?;
            Ok(Outcome::new(json!({ "leader": leader.0 })))
        }
    }
}
