//! `kubectl logs` from Nomad's `/v1/client/fs/logs` (plain text): `--tail` reads back from the
//! end in growing windows until enough lines are found, `-f` follows the file until the task
//! stops, stdout and stderr are read separately (and merged when both are asked for). Nomad
//! keeps no time per line: a line already written is stamped with the start of the task's
//! current run, a followed line with its arrival; `--since` therefore keeps every line of a run
//! that was still going at that time. Nomad appends all runs of a task to one log, so
//! `--previous` is not offered (the log holds every run).

use std::{sync::Arc, time::SystemTime};

use futures::StreamExt;
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tonic::Status;
use vk_provider_kit::logs::{ByteBudget, LogSelection, send_lines};
use vk_provider_sdk::{pb, time::to_timestamp};

use crate::client::Nomad;

/// The largest window `--tail` reads back.
const MAX_TAIL_WINDOW: u64 = 16 * 1024 * 1024;

type Tx = mpsc::Sender<Result<pb::GetContainerLogsResponse, Status>>;

/// What to read.
#[derive(Debug, Clone)]
pub struct Source {
    /// Allocation ID.
    pub alloc: String,
    /// Task name.
    pub task: String,
    /// Start of the task's current run.
    pub started: SystemTime,
}

/// Streams the log `select` asks for to `tx`.
pub async fn stream(nomad: Nomad, source: Source, select: LogSelection, tx: Tx) {
    let kinds: Vec<pb::LogStream> = match select.stream {
        Some(s) => vec![s],
        None => vec![pb::LogStream::Stdout, pb::LogStream::Stderr],
    };
    let budget = Arc::new(tokio::sync::Mutex::new(ByteBudget::new(select.limit_bytes)));
    // Nomad has no per-line times: every line of the current run is kept for `since`.
    let mut tails = Vec::new();
    for kind in &kinds {
        match history(&nomad, &source, *kind, select.tail).await {
            Ok(lines) => tails.push(lines),
            Err(status) => {
                let _ = tx.send(Err(status)).await;
                return;
            }
        }
    }
    for lines in tails {
        let mut b = budget.lock().await;
        if !send_lines(&tx, lines, &mut b).await {
            return;
        }
    }
    if !select.follow {
        return;
    }
    let followers = kinds.into_iter().map(|kind| {
        let (nomad, source, tx, budget) =
            (nomad.clone(), source.clone(), tx.clone(), budget.clone());
        async move { follow(&nomad, &source, kind, &tx, &budget).await }
    });
    futures::future::join_all(followers).await;
}

fn kind_name(kind: pb::LogStream) -> &'static str {
    match kind {
        pb::LogStream::Stderr => "stderr",
        _ => "stdout",
    }
}

/// The lines already written (the last `tail` of them).
async fn history(
    nomad: &Nomad,
    source: &Source,
    kind: pb::LogStream,
    tail: Option<usize>,
) -> Result<Vec<pb::LogLine>, Status> {
    let path = format!("/v1/client/fs/logs/{}", source.alloc);
    let read = |origin: &'static str, offset: u64| {
        let path = path.clone();
        async move {
            let offset = offset.to_string();
            let body = nomad
                .stream(
                    &path,
                    &[
                        ("task", &source.task),
                        ("type", kind_name(kind)),
                        ("plain", "true"),
                        ("follow", "false"),
                        ("origin", origin),
                        ("offset", &offset),
                    ],
                )
                .await
                .map_err(Status::from)?;
            let bytes = body
                .collect()
                .await
                .map_err(|e| Status::unavailable(format!("reading the log from Nomad: {e}")))?
                .to_bytes();
            Ok::<_, Status>(bytes.to_vec())
        }
    };
    let (bytes, whole) = match tail {
        None => (read("start", 0).await?, true),
        Some(0) => return Ok(Vec::new()),
        Some(n) => {
            let mut window = (n as u64).saturating_mul(256).max(4096);
            loop {
                let bytes = read("end", window).await?;
                let whole = (bytes.len() as u64) < window;
                let lines = bytes.iter().filter(|b| **b == b'\n').count();
                if whole || lines > n || window >= MAX_TAIL_WINDOW {
                    break (bytes, whole);
                }
                window = window.saturating_mul(4).min(MAX_TAIL_WINDOW);
            }
        }
    };
    let mut lines = split_lines(&bytes, kind, source.started);
    if !whole && !lines.is_empty() {
        lines.remove(0); // the window began inside a line
    }
    if let Some(n) = tail
        && lines.len() > n
    {
        lines.drain(..lines.len() - n);
    }
    Ok(lines)
}

/// New lines until the task's log ends or the caller leaves.
async fn follow(
    nomad: &Nomad,
    source: &Source,
    kind: pb::LogStream,
    tx: &Tx,
    budget: &tokio::sync::Mutex<ByteBudget>,
) {
    let path = format!("/v1/client/fs/logs/{}", source.alloc);
    let body = nomad
        .stream(
            &path,
            &[
                ("task", &source.task),
                ("type", kind_name(kind)),
                ("plain", "true"),
                ("follow", "true"),
                ("origin", "end"),
                ("offset", "0"),
            ],
        )
        .await;
    let mut body = match body {
        Ok(b) => b.into_data_stream(),
        Err(e) => {
            let _ = tx.send(Err(e.into())).await;
            return;
        }
    };
    let mut partial: Vec<u8> = Vec::new();
    loop {
        let chunk = tokio::select! {
            c = body.next() => c,
            _ = tx.closed() => return,
        };
        let Some(Ok(chunk)) = chunk else { break };
        partial.extend_from_slice(&chunk);
        let Some(last) = partial.iter().rposition(|b| *b == b'\n') else {
            continue;
        };
        let complete: Vec<u8> = partial.drain(..=last).collect();
        let lines = split_lines(&complete, kind, SystemTime::now());
        let mut b = budget.lock().await;
        if !send_lines(tx, lines, &mut b).await || b.is_spent() {
            return;
        }
    }
    if !partial.is_empty() {
        let lines = split_lines(&partial, kind, SystemTime::now());
        let mut b = budget.lock().await;
        send_lines(tx, lines, &mut b).await;
    }
}

/// Splits `bytes` into lines (each with its newline, the last maybe without), stamped `at`.
fn split_lines(bytes: &[u8], kind: pb::LogStream, at: SystemTime) -> Vec<pb::LogLine> {
    let time = Some(to_timestamp(at));
    bytes
        .split_inclusive(|b| *b == b'\n')
        .map(|l| pb::LogLine {
            time,
            stream: kind as i32,
            content: l.to_vec(),
        })
        .collect()
}

/// Parses a task's start time (RFC 3339), falling back to `fallback`.
pub fn started(text: Option<&str>, fallback: SystemTime) -> SystemTime {
    crate::status::time(text).unwrap_or(fallback)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn lines_keep_their_newlines() {
        let lines = split_lines(b"a\nbb\nc", pb::LogStream::Stdout, SystemTime::UNIX_EPOCH);
        let text: Vec<&[u8]> = lines.iter().map(|l| l.content.as_slice()).collect();
        assert_eq!(text, vec![&b"a\n"[..], b"bb\n", b"c"]);
    }

    #[test]
    fn go_zero_time_falls_back() {
        let fb = SystemTime::UNIX_EPOCH + Duration::from_secs(5);
        assert_eq!(started(Some("0001-01-01T00:00:00Z"), fb), fb);
        let t = started(Some("2026-12-07T10:00:00.5Z"), fb);
        assert!(t > fb);
    }
}
