//! PortForward check (CAPABILITY_PORT_FORWARD): a stream to a port of a running pod opens, and
//! a `close_write` (or, failing that, cancelling) ends it without an error status.
//!
//! Whatever the pod answers (an echo, an HTTP error, nothing) is accepted; the suite only writes
//! a few bytes and closes its side. The port is `--port-forward-port` (default 8080, declared as
//! a containerPort in the test pod).

use std::sync::Arc;

use tonic::Code;
use vk_provider_sdk::pb::{
    self, Capability, port_forward_request::Input, port_forward_response::Output,
};

use super::{CheckDef, CheckError, check};
use crate::{context::Ctx, format_duration, stream::Recv};

pub(super) fn checks() -> Vec<CheckDef> {
    vec![check!(
        "port_forward/open_close",
        Some(Capability::PortForward),
        "a PortForward stream to the pod's port opens, and close_write (or cancel) ends it without an error \
         status other than CANCELLED",
        open_close
    )]
}

async fn open_close(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let (pod, _watch, _) = ctx.running_pod().await?;
    let port = ctx.config().port_forward_port;
    let start = pb::PortForwardStart {
        uid: pod.uid.clone(),
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        port,
        ..Default::default()
    };
    let (tx, mut pump) = ctx.provider().port_forward(start)?;
    for input in [
        Input::Data(b"vk-conformance ping\n".to_vec()),
        Input::CloseWrite(pb::CloseWrite::default()),
    ] {
        // A send fails only if the call already ended; the pump then reports how.
        if tx
            .send(pb::PortForwardRequest {
                input: Some(input),
                ..Default::default()
            })
            .await
            .is_err()
        {
            break;
        }
    }
    // Keep `tx` alive: the end must come from close_write, not from the request stream ending.
    let until = ctx.deadline();
    let mut opened = false;
    let mut received = 0usize;
    let mut pod_closed = false;
    loop {
        match pump.next(until).await {
            Some(Recv::Opened) => opened = true,
            Some(Recv::Msg(m)) => {
                opened = true;
                match m.output {
                    Some(Output::Data(d)) => {
                        if pod_closed {
                            return Err(CheckError::fail(
                                "PortForward sent data after its close_write; rule: close_write marks the end of \
                                 one direction",
                            ));
                        }
                        received += d.len();
                    }
                    Some(Output::CloseWrite(_)) => pod_closed = true,
                    None => {
                        return Err(CheckError::fail(
                            "PortForward sent a message with no output set",
                        ));
                    }
                }
            }
            Some(Recv::End) => break,
            Some(Recv::Status(s)) if s.code() == Code::Cancelled => {
                ctx.note("PortForward ended with CANCELLED");
                break;
            }
            Some(Recv::Status(s)) => {
                return Err(CheckError::fail(format!(
                    "PortForward to port {port} of a running pod {}: {}; rule: the stream carries one TCP \
                     connection and ends cleanly when either side closes",
                    if opened {
                        "ended with an error"
                    } else {
                        "failed to open"
                    },
                    pump.describe(&s)
                )));
            }
            None if opened => {
                ctx.note(format!(
                    "PortForward still open {} after close_write; the suite cancelled it",
                    format_duration(ctx.timeout())
                ));
                break;
            }
            None => {
                return Err(CheckError::fail(format!(
                    "PortForward to port {port} gave no sign of life (no headers, data or end) within {} of \
                     start, data and close_write (timeout)",
                    format_duration(ctx.timeout())
                )));
            }
        }
    }
    drop(pump);
    drop(tx);
    ctx.note(format!("{received} bytes received from port {port}"));
    Ok(())
}
