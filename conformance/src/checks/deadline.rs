//! Deadline check: a unary call with a 1 s deadline returns (with a result or
//! DEADLINE_EXCEEDED) within about 2 s.
//!
//! The suite's gRPC client (tonic) enforces `grpc-timeout` on its side too, so a provider that
//! does not answer within the deadline is seen as the call ending at the deadline; that is
//! reported as a note, not a failure, because a provider answering DEADLINE_EXCEEDED at the
//! deadline looks the same from here. The check fails if the call takes longer than 2.5 s in
//! total or fails with another status.

use std::{sync::Arc, time::Duration};

use tokio::time::Instant;
use tonic::Code;

use super::{CheckDef, CheckError, check};
use crate::{client::CallError, context::Ctx, format_duration};

pub(super) fn checks() -> Vec<CheckDef> {
    vec![check!(
        "deadline/list_pods",
        None,
        "ListPods with a 1 s deadline returns within about 2 s",
        list_pods
    )]
}

/// The deadline sent with the call.
const DEADLINE: Duration = Duration::from_secs(1);
/// How long the answer may take.
const LIMIT: Duration = Duration::from_millis(2500);
/// How long the suite waits before giving up on the call.
const GIVE_UP: Duration = Duration::from_secs(5);

async fn list_pods(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let started = Instant::now();
    let result = ctx.provider().list_pods_within(DEADLINE, GIVE_UP).await;
    let elapsed = started.elapsed();
    let rule = "rule: a provider honours the deadline of a unary call and returns DEADLINE_EXCEEDED rather than \
                block";
    match result {
        _ if elapsed > LIMIT => Err(CheckError::fail(format!(
            "ListPods with a {} deadline returned after {}; {rule}",
            format_duration(DEADLINE),
            format_duration(elapsed)
        ))),
        Ok(_) => Ok(()),
        Err(CallError::Timeout { .. }) => {
            ctx.note(
                "ListPods did not answer within its 1s deadline; the call ended at the deadline (the client also \
                 enforces grpc-timeout)",
            );
            Ok(())
        }
        Err(e) if e.code() == Some(Code::DeadlineExceeded) => {
            ctx.note("ListPods returned DEADLINE_EXCEEDED");
            Ok(())
        }
        Err(e) => Err(CheckError::fail(format!(
            "ListPods with a 1s deadline: {e}"
        ))),
    }
}
