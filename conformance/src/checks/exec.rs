//! Exec checks (CAPABILITY_EXEC) and the attach check (CAPABILITY_ATTACH).
//!
//! The suite assumes every provider runs `["sh", "-c", script]` with POSIX shell semantics for
//! two scripts: `exit 3` (exit code 3) and `echo hello` (writes `hello` to stdout, exit code 0).
//! Every exec stream must end with exactly one `exit` message and nothing after it.

use std::sync::Arc;

use vk_provider_sdk::pb::{self, Capability, exec_response::Output};

use super::{CheckDef, CheckError, NOT_FOUND_RULE, check, ensure, expect_not_found};
use crate::{context::Ctx, fixtures::CONTAINER, stream::Recv};

pub(super) fn checks() -> Vec<CheckDef> {
    let exec = Some(Capability::Exec);
    vec![
        check!(
            "exec/exit_code",
            exec,
            "Exec of [\"sh\",\"-c\",\"exit 3\"] ends with exactly one exit message carrying exit code 3",
            exit_code
        ),
        check!(
            "exec/stdout",
            exec,
            "Exec of [\"sh\",\"-c\",\"echo hello\"] writes \"hello\" to stdout and exits 0",
            stdout
        ),
        check!(
            "exec/unknown_pod",
            exec,
            "Exec into an unknown pod returns NOT_FOUND",
            exec_unknown_pod
        ),
        check!(
            "attach/unknown_pod",
            Some(Capability::Attach),
            "Attach to an unknown pod returns NOT_FOUND",
            attach_unknown_pod
        ),
    ]
}

const EXIT_RULE: &str = "rule: the exec stream ends with exactly one `exit` message carrying the exit code, \
                         always the last message";

/// What an exec session produced.
struct ExecResult {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    exit: pb::ProcessExit,
}

fn start(pod: &pb::Pod, command: &[&str]) -> pb::ExecStart {
    pb::ExecStart {
        uid: pod.uid.clone(),
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        container: CONTAINER.to_owned(),
        command: command.iter().map(|s| (*s).to_owned()).collect(),
        stdin: false,
        stdout: true,
        stderr: true,
        tty: false,
        terminal_size: None,
        ..Default::default()
    }
}

/// Runs a command through Exec and reads the whole session, enforcing the exit-message rules.
async fn run_exec(ctx: &Ctx, pod: &pb::Pod, command: &[&str]) -> Result<ExecResult, CheckError> {
    let (tx, mut pump) = ctx.provider().exec(start(pod, command))?;
    let mut requests = Some(tx);
    let until = ctx.deadline();
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut exit: Option<pb::ProcessExit> = None;
    let mut opened = false;
    loop {
        match pump.next_data(until, &mut opened).await {
            Some(Recv::Msg(m)) => {
                if exit.is_some() {
                    let kind = match m.output {
                        Some(Output::Stdout(_)) => "stdout data",
                        Some(Output::Stderr(_)) => "stderr data",
                        Some(Output::Exit(_)) => "a second exit message",
                        None => "an empty message",
                    };
                    return Err(CheckError::fail(format!(
                        "Exec of {command:?} sent {kind} after the exit message; {EXIT_RULE}"
                    )));
                }
                match m.output {
                    Some(Output::Stdout(b)) => stdout.extend_from_slice(&b),
                    Some(Output::Stderr(b)) => stderr.extend_from_slice(&b),
                    Some(Output::Exit(e)) => {
                        exit = Some(e);
                        // Half-close our side, as a client does once the process ended.
                        requests = None;
                    }
                    None => {
                        return Err(CheckError::fail(format!(
                            "Exec of {command:?} sent a message with no output set"
                        )));
                    }
                }
            }
            Some(Recv::End) | Some(Recv::Opened) => break,
            Some(Recv::Status(s)) => {
                let when = if exit.is_some() {
                    " after the exit message"
                } else {
                    ""
                };
                return Err(CheckError::fail(format!(
                    "Exec of {command:?} failed{when}: {}; {EXIT_RULE}",
                    pump.describe(&s)
                )));
            }
            None => {
                let waiting = if exit.is_some() {
                    "end after its exit message"
                } else {
                    "send an exit message"
                };
                return Err(CheckError::fail(format!(
                    "Exec of {command:?} did not {waiting} within the timeout (timeout); {EXIT_RULE}"
                )));
            }
        }
    }
    drop(requests);
    let exit = exit.ok_or_else(|| {
        CheckError::fail(format!(
            "Exec of {command:?} ended without an exit message; {EXIT_RULE}"
        ))
    })?;
    Ok(ExecResult {
        stdout,
        stderr,
        exit,
    })
}

async fn exit_code(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let (pod, _watch, _) = ctx.running_pod().await?;
    let result = run_exec(&ctx, &pod, &["sh", "-c", "exit 3"]).await?;
    ensure!(
        result.exit.exit_code == 3,
        "Exec of [\"sh\", \"-c\", \"exit 3\"] reported exit code {} (message {:?}), expected 3; rule: \
         ProcessExit.exit_code is the exit code of the process",
        result.exit.exit_code,
        result.exit.message
    );
    Ok(())
}

async fn stdout(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let (pod, _watch, _) = ctx.running_pod().await?;
    let result = run_exec(&ctx, &pod, &["sh", "-c", "echo hello"]).await?;
    let out = String::from_utf8_lossy(&result.stdout);
    ensure!(
        out.contains("hello"),
        "Exec of [\"sh\", \"-c\", \"echo hello\"] wrote {out:?} to stdout (stderr {:?}), expected it to contain \
         \"hello\"; rule: the provider answers with the process's stdout data",
        String::from_utf8_lossy(&result.stderr)
    );
    ensure!(
        result.exit.exit_code == 0,
        "Exec of [\"sh\", \"-c\", \"echo hello\"] reported exit code {} (message {:?}), expected 0",
        result.exit.exit_code,
        result.exit.message
    );
    Ok(())
}

async fn exec_unknown_pod(ctx: Arc<Ctx>) -> Result<(), CheckError> {
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
    let (_tx, mut pump) = ctx.provider().exec(start)?;
    expect_not_found(
        &mut pump,
        ctx.deadline(),
        "Exec into an unknown pod",
        NOT_FOUND_RULE,
    )
    .await
}

async fn attach_unknown_pod(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let uid = ctx.unknown_uid();
    let start = pb::AttachStart {
        uid: uid.clone(),
        namespace: ctx.config().namespace.clone(),
        name: uid,
        container: CONTAINER.to_owned(),
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    let (_tx, mut pump) = ctx.provider().attach(start)?;
    expect_not_found(
        &mut pump,
        ctx.deadline(),
        "Attach to an unknown pod",
        NOT_FOUND_RULE,
    )
    .await
}
