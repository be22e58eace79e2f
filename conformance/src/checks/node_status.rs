//! WatchNodeStatus check (CAPABILITY_NODE_STATUS_STREAM): the first message is the node's
//! current state, a valid node template.

use std::sync::Arc;

use vk_provider_sdk::pb::Capability;

use super::{CheckDef, CheckError, check, handshake::validate_node};
use crate::{context::Ctx, stream::Recv};

pub(super) fn checks() -> Vec<CheckDef> {
    vec![check!(
        "node_status/initial",
        Some(Capability::NodeStatusStream),
        "WatchNodeStatus sends the node's current state first, as a valid node template, and stays open",
        initial
    )]
}

async fn initial(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let mut pump = ctx.provider().watch_node_status()?;
    let mut opened = false;
    let first = match pump.next_data(ctx.deadline(), &mut opened).await {
        Some(Recv::Msg(m)) => m,
        Some(Recv::Status(s)) => return Err(CheckError::fail(pump.describe(&s))),
        Some(Recv::End) | Some(Recv::Opened) => {
            return Err(CheckError::fail(
                "WatchNodeStatus ended without a message; rule: the first message is the current state",
            ));
        }
        None => {
            return Err(CheckError::fail(
                "WatchNodeStatus sent no message within the timeout; rule: the first message is the current state",
            ));
        }
    };
    let node = first
        .node
        .ok_or_else(|| CheckError::fail("the first WatchNodeStatus message has no node"))?;
    validate_node(&node)
        .map_err(|e| CheckError::fail(format!("first WatchNodeStatus message: {e}")))
}
