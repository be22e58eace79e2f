//! GetContainerLogs checks (CAPABILITY_LOGS): a non-follow read ends, `tail_lines` is honoured,
//! a follow stream stays open and ends (or can be cancelled) once the pod is deleted, and
//! unknown pods and containers are NOT_FOUND.
//!
//! The test container runs `sleep 3600` and may write nothing, so the follow check does not wait
//! for a line: it requires that the stream stays open for 2 s without ending or failing.

use std::{sync::Arc, time::Duration};

use tokio::time::Instant;
use tonic::Code;
use vk_provider_sdk::pb::{self, Capability};

use super::{CallContext, CheckDef, CheckError, NOT_FOUND_RULE, check, expect_not_found};
use crate::{
    context::Ctx,
    fixtures::CONTAINER,
    format_duration,
    stream::{Pump, Recv},
};

pub(super) fn checks() -> Vec<CheckDef> {
    let logs = Some(Capability::Logs);
    vec![
        check!(
            "logs/non_follow",
            logs,
            "GetContainerLogs without follow returns and ends with OK",
            non_follow
        ),
        check!(
            "logs/tail_lines",
            logs,
            "tail_lines=1 returns at most one line",
            tail_lines
        ),
        check!(
            "logs/follow",
            logs,
            "with follow the stream stays open (no end, no error) for 2 s, then ends cleanly or can be \
             cancelled after the pod is deleted",
            follow
        ),
        check!(
            "logs/unknown_pod",
            logs,
            "GetContainerLogs of an unknown pod returns NOT_FOUND",
            unknown_pod
        ),
        check!(
            "logs/unknown_container",
            logs,
            "GetContainerLogs of an unknown container of a running pod returns NOT_FOUND",
            unknown_container
        ),
    ]
}

/// How long a follow stream must stay open.
const FOLLOW_HOLD: Duration = Duration::from_secs(2);

fn request(pod: &pb::Pod, container: &str) -> pb::GetContainerLogsRequest {
    pb::GetContainerLogsRequest {
        uid: pod.uid.clone(),
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        container: container.to_owned(),
        ..Default::default()
    }
}

/// Number of lines in a log message: one per LogLine, more if a LogLine's content holds
/// several newline-terminated lines.
fn count_lines(lines: &[pb::LogLine]) -> usize {
    lines
        .iter()
        .map(|l| {
            let body = l.content.strip_suffix(b"\n").unwrap_or(&l.content);
            1 + body.iter().filter(|&&b| b == b'\n').count()
        })
        .sum()
}

/// Reads a non-follow log stream to its end; returns the number of lines.
async fn read_to_end(
    pump: &mut Pump<pb::GetContainerLogsResponse>,
    until: Instant,
    what: &str,
) -> Result<usize, CheckError> {
    let mut lines = 0;
    let mut opened = false;
    loop {
        match pump.next_data(until, &mut opened).await {
            Some(Recv::Msg(m)) => lines += count_lines(&m.lines),
            Some(Recv::End) | Some(Recv::Opened) => return Ok(lines),
            Some(Recv::Status(s)) => {
                return Err(CheckError::fail(format!("{what}: {}", pump.describe(&s))));
            }
            None => {
                return Err(CheckError::fail(format!(
                    "{what} did not end within the timeout ({lines} lines received); rule: without follow the \
                     stream returns the log and ends"
                )));
            }
        }
    }
}

async fn non_follow(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let (pod, _watch, _) = ctx.running_pod().await?;
    let mut pump = ctx
        .provider()
        .get_container_logs(request(&pod, CONTAINER))?;
    let lines = read_to_end(&mut pump, ctx.deadline(), "GetContainerLogs (no follow)").await?;
    ctx.note(format!("{lines} log lines"));
    Ok(())
}

async fn tail_lines(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let (pod, _watch, _) = ctx.running_pod().await?;
    let mut req = request(&pod, CONTAINER);
    req.tail_lines = Some(1);
    let mut pump = ctx.provider().get_container_logs(req)?;
    let lines = read_to_end(&mut pump, ctx.deadline(), "GetContainerLogs (tail_lines=1)").await?;
    if lines > 1 {
        return Err(CheckError::fail(format!(
            "GetContainerLogs with tail_lines=1 returned {lines} lines; rule: only the last N lines"
        )));
    }
    Ok(())
}

async fn follow(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let (pod, _watch, _) = ctx.running_pod().await?;
    let mut req = request(&pod, CONTAINER);
    req.follow = true;
    let started = Instant::now();
    let mut pump = ctx.provider().get_container_logs(req)?;
    let mut opened = false;
    let mut lines = 0;
    let hold_until = started + FOLLOW_HOLD;
    loop {
        match pump.next_data(hold_until, &mut opened).await {
            None => break,
            Some(Recv::Msg(m)) => lines += count_lines(&m.lines),
            Some(Recv::Opened) => {}
            Some(Recv::End) => {
                return Err(CheckError::fail(format!(
                    "GetContainerLogs with follow ended after {} while the container is running; rule: with follow \
                     the stream stays open until the container terminates or the call is cancelled",
                    format_duration(started.elapsed())
                )));
            }
            Some(Recv::Status(s)) => {
                return Err(CheckError::fail(format!(
                    "GetContainerLogs with follow failed after {}: {}; rule: with follow the stream stays open \
                     until the container terminates or the call is cancelled",
                    format_duration(started.elapsed()),
                    pump.describe(&s)
                )));
            }
        }
    }

    ctx.delete_pod(&pod)
        .await
        .context("DeletePod while following the log")?;
    let until = ctx.deadline();
    loop {
        match pump.next_data(until, &mut opened).await {
            Some(Recv::Msg(m)) => lines += count_lines(&m.lines),
            Some(Recv::Opened) => {}
            Some(Recv::End) => break,
            Some(Recv::Status(s)) if s.code() == Code::Cancelled => {
                ctx.note("follow stream ended with CANCELLED after the pod was deleted");
                break;
            }
            Some(Recv::Status(s)) => {
                return Err(CheckError::fail(format!(
                    "after the pod was deleted, the follow stream ended with an error: {}; rule: a follow stream \
                     ends when the container terminates",
                    pump.describe(&s)
                )));
            }
            None => {
                ctx.note(format!(
                    "follow stream still open {} after the pod was deleted; the suite cancelled it",
                    format_duration(ctx.timeout())
                ));
                break;
            }
        }
    }
    drop(pump);
    ctx.note(format!("{lines} log lines while following"));
    Ok(())
}

async fn unknown_pod(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let uid = ctx.unknown_uid();
    let req = pb::GetContainerLogsRequest {
        uid: uid.clone(),
        namespace: ctx.config().namespace.clone(),
        name: uid,
        container: CONTAINER.to_owned(),
        ..Default::default()
    };
    let mut pump = ctx.provider().get_container_logs(req)?;
    expect_not_found(
        &mut pump,
        ctx.deadline(),
        "GetContainerLogs of an unknown pod",
        NOT_FOUND_RULE,
    )
    .await
}

async fn unknown_container(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let (pod, _watch, _) = ctx.running_pod().await?;
    let mut pump = ctx
        .provider()
        .get_container_logs(request(&pod, "no-such-container"))?;
    expect_not_found(
        &mut pump,
        ctx.deadline(),
        "GetContainerLogs of an unknown container of a running pod",
        NOT_FOUND_RULE,
    )
    .await
}
