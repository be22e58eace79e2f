//! Capability gating: one check per optional capability.
//!
//! The suite never calls an optional RPC the provider did not declare: every call goes through
//! the gate in [`crate::client::Provider`], which refuses it before anything is sent, and the
//! check is reported as `SKIP …: capability CAPABILITY_X not declared`. Because undeclared RPCs
//! are never called, a provider is free to answer them with UNIMPLEMENTED; that can never count
//! as a failure.
//!
//! For a *declared* capability the check makes one cheap call (on an unknown pod where a pod is
//! needed) and fails only if the provider answers UNIMPLEMENTED or does not answer at all:
//! declaring a capability promises the RPC exists. What the answer means is up to the other
//! checks.

use std::sync::Arc;

use tonic::Code;
use vk_provider_sdk::pb;

use super::{CheckDef, CheckError, check};
use crate::{
    client::{CallError, status_text},
    context::Ctx,
    fixtures::CONTAINER,
    stream::{Pump, Recv},
};

pub(super) fn checks() -> Vec<CheckDef> {
    vec![
        check!(
            "gating/logs",
            None,
            "GetContainerLogs is called only if CAPABILITY_LOGS is declared, and then is implemented",
            logs
        ),
        check!(
            "gating/logs_previous",
            None,
            "`previous` is sent only if CAPABILITY_LOGS_PREVIOUS is declared, and then is implemented",
            logs_previous
        ),
        check!(
            "gating/exec",
            None,
            "Exec is called only if CAPABILITY_EXEC is declared, and then is implemented",
            exec
        ),
        check!(
            "gating/attach",
            None,
            "Attach is called only if CAPABILITY_ATTACH is declared, and then is implemented",
            attach
        ),
        check!(
            "gating/port_forward",
            None,
            "PortForward is called only if CAPABILITY_PORT_FORWARD is declared, and then is implemented",
            port_forward
        ),
        check!(
            "gating/stats",
            None,
            "GetStats is called only if CAPABILITY_STATS is declared, and then is implemented",
            stats
        ),
        check!(
            "gating/update_pod",
            None,
            "UpdatePod is called only if CAPABILITY_UPDATE_POD is declared, and then is implemented",
            update_pod
        ),
        check!(
            "gating/node_status_stream",
            None,
            "WatchNodeStatus is called only if CAPABILITY_NODE_STATUS_STREAM is declared, and then is implemented",
            node_status_stream
        ),
    ]
}

/// Reads the first answer of a probe stream; fails on UNIMPLEMENTED or silence.
async fn probe<T>(ctx: &Ctx, mut pump: Pump<T>) -> Result<(), CheckError> {
    let mut opened = false;
    match pump.next_data(ctx.deadline(), &mut opened).await {
        Some(Recv::Status(s)) if s.code() == Code::Unimplemented => {
            Err(CheckError::fail(pump.describe(&s)))
        }
        Some(_) => Ok(()),
        None => Err(CheckError::fail(format!(
            "{} gave no answer (status, message or end) within the timeout",
            pump.rpc()
        ))),
    }
}

/// Fails on UNIMPLEMENTED (or a timeout) of a declared unary RPC; other answers are fine here.
fn unary_probe<T>(result: Result<T, CallError>) -> Result<(), CheckError> {
    match result {
        Ok(_) => Ok(()),
        Err(CallError::Status {
            rpc,
            capability,
            status,
        }) if status.code() == Code::Unimplemented => {
            Err(CheckError::fail(status_text(rpc, capability, &status)))
        }
        Err(e @ (CallError::NotDeclared(_) | CallError::Timeout { .. })) => Err(e.into()),
        Err(CallError::Status { .. }) => Ok(()),
    }
}

fn unknown_logs_request(ctx: &Ctx, previous: bool) -> pb::GetContainerLogsRequest {
    let uid = ctx.unknown_uid();
    pb::GetContainerLogsRequest {
        uid: uid.clone(),
        namespace: ctx.config().namespace.clone(),
        name: uid,
        container: CONTAINER.to_owned(),
        previous,
        ..Default::default()
    }
}

async fn logs(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let pump = ctx
        .provider()
        .get_container_logs(unknown_logs_request(&ctx, false))?;
    probe(&ctx, pump).await
}

async fn logs_previous(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let pump = ctx
        .provider()
        .get_container_logs(unknown_logs_request(&ctx, true))?;
    probe(&ctx, pump).await
}

async fn exec(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let uid = ctx.unknown_uid();
    let start = pb::ExecStart {
        uid: uid.clone(),
        namespace: ctx.config().namespace.clone(),
        name: uid,
        container: CONTAINER.to_owned(),
        command: vec!["sh".to_owned(), "-c".to_owned(), "exit 0".to_owned()],
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    let (_tx, pump) = ctx.provider().exec(start)?;
    probe(&ctx, pump).await
}

async fn attach(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let uid = ctx.unknown_uid();
    let start = pb::AttachStart {
        uid: uid.clone(),
        namespace: ctx.config().namespace.clone(),
        name: uid,
        container: CONTAINER.to_owned(),
        stdout: true,
        ..Default::default()
    };
    let (_tx, pump) = ctx.provider().attach(start)?;
    probe(&ctx, pump).await
}

async fn port_forward(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let uid = ctx.unknown_uid();
    let start = pb::PortForwardStart {
        uid: uid.clone(),
        namespace: ctx.config().namespace.clone(),
        name: uid,
        port: ctx.config().port_forward_port,
        ..Default::default()
    };
    let (_tx, pump) = ctx.provider().port_forward(start)?;
    probe(&ctx, pump).await
}

async fn stats(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    unary_probe(ctx.provider().get_stats().await)
}

async fn update_pod(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    // A pod the provider never saw; tracked anyway in case the provider creates it.
    let pod = ctx.new_pod();
    ctx.track(&pod);
    unary_probe(ctx.provider().update_pod(pod).await)
}

async fn node_status_stream(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let pump = ctx.provider().watch_node_status()?;
    probe(&ctx, pump).await
}
