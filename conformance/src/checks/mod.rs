//! The checks of the suite, one module per area, and the registry that lists them in run order.
//!
//! A check is an async function taking the check's [`Ctx`] and returning `Ok(())` (PASS) or a
//! [`CheckError`] (FAIL with a reason naming the violated rule, or SKIP). Checks that need an
//! optional capability declare it in their [`CheckDef`]; the runner skips them when the provider
//! did not declare it, and the client's gate refuses the RPC in any case.

use std::sync::Arc;

use futures::{FutureExt, future::BoxFuture};
use vk_provider_sdk::pb::Capability;

use crate::{client::CallError, context::Ctx};

mod deadline;
mod exec;
mod gating;
mod handshake;
mod logs;
mod node_status;
mod pods;
mod port_forward;
mod stats;
mod status_stream;

/// Why a check did not pass.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CheckError {
    /// The provider violated the contract; the message names the rule.
    #[error("{0}")]
    Fail(String),
    /// The check does not apply.
    #[error("{0}")]
    Skip(String),
}

impl CheckError {
    pub(crate) fn fail(message: impl Into<String>) -> Self {
        CheckError::Fail(message.into())
    }
}

impl From<CallError> for CheckError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::NotDeclared(_) => CheckError::Skip(e.to_string()),
            other => CheckError::Fail(other.to_string()),
        }
    }
}

/// Adds what the check was doing to a failed call, keeping gate refusals as SKIP.
pub(crate) trait CallContext<T> {
    fn context(self, doing: &str) -> Result<T, CheckError>;
}

impl<T> CallContext<T> for Result<T, CallError> {
    fn context(self, doing: &str) -> Result<T, CheckError> {
        self.map_err(|e| match e {
            CallError::NotDeclared(_) => CheckError::Skip(e.to_string()),
            other => CheckError::Fail(format!("{doing}: {other}")),
        })
    }
}

/// Fails the check with a formatted message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err($crate::checks::CheckError::Fail(format!($($arg)+)));
        }
    };
}
pub(crate) use ensure;

/// The function type of a check.
pub(crate) type CheckFn = fn(Arc<Ctx>) -> BoxFuture<'static, Result<(), CheckError>>;

/// One check in the registry.
pub(crate) struct CheckDef {
    pub(crate) name: &'static str,
    pub(crate) capability: Option<Capability>,
    pub(crate) summary: &'static str,
    pub(crate) run: CheckFn,
}

/// Builds a [`CheckDef`] from an `async fn(Arc<Ctx>) -> Result<(), CheckError>`.
macro_rules! check {
    ($name:expr, $cap:expr, $summary:expr, $f:path) => {
        $crate::checks::CheckDef {
            name: $name,
            capability: $cap,
            summary: $summary,
            run: |ctx| $crate::checks::boxed($f(ctx)),
        }
    };
}
pub(crate) use check;

pub(crate) fn boxed<F>(f: F) -> BoxFuture<'static, Result<(), CheckError>>
where
    F: std::future::Future<Output = Result<(), CheckError>> + Send + 'static,
{
    f.boxed()
}

/// Every check, in run order.
pub(crate) fn all() -> Vec<CheckDef> {
    let mut all = Vec::new();
    all.extend(handshake::checks());
    all.extend(pods::checks());
    all.extend(status_stream::checks());
    all.extend(logs::checks());
    all.extend(exec::checks());
    all.extend(port_forward::checks());
    all.extend(stats::checks());
    all.extend(node_status::checks());
    all.extend(gating::checks());
    all.extend(deadline::checks());
    all
}

/// Reads `pump` until its first message or terminal event and requires a NOT_FOUND status.
/// `what` describes the call ("GetContainerLogs of an unknown pod"), `rule` the contract rule.
pub(crate) async fn expect_not_found<T>(
    pump: &mut crate::stream::Pump<T>,
    until: tokio::time::Instant,
    what: &str,
    rule: &str,
) -> Result<(), CheckError> {
    use crate::stream::Recv;
    let mut opened = false;
    match pump.next_data(until, &mut opened).await {
        Some(Recv::Status(s)) if s.code() == tonic::Code::NotFound => Ok(()),
        Some(Recv::Status(s)) => Err(CheckError::fail(format!(
            "{what}: {}; {rule}",
            pump.describe(&s)
        ))),
        Some(Recv::Msg(_)) => Err(CheckError::fail(format!(
            "{what}: {} sent a message instead of failing with NOT_FOUND; {rule}",
            pump.rpc()
        ))),
        Some(Recv::End) | Some(Recv::Opened) => Err(CheckError::fail(format!(
            "{what}: {} ended with OK instead of NOT_FOUND; {rule}",
            pump.rpc()
        ))),
        None => Err(CheckError::fail(format!(
            "{what}: {} gave no answer within the timeout (expected NOT_FOUND)",
            pump.rpc()
        ))),
    }
}

/// The NOT_FOUND rule of the contract.
pub(crate) const NOT_FOUND_RULE: &str =
    "rule: NOT_FOUND when the pod (or container) is not known to the provider";
