//! Container logs: the `kubectl logs` options a provider applies itself, and a buffer for
//! providers whose backend hands out log lines (polled from a remote API, or simulated).
//!
//! - [`LogSelection`]: a `GetContainerLogsRequest` decoded once: stream filter, since limit
//!   (`since_seconds` or `since_time`), `tail_lines`, `limit_bytes`, `follow`, `previous`.
//! - [`LogBuffer`]: one container instance's lines in memory, served with every option, with
//!   `follow` until the instance ends. A provider keeps one buffer per instance (the current one
//!   and the previous one answer `previous`).
//!
//! vk-host applies `timestamps` (it prefixes the lines' time) and enforces `limit_bytes` again,
//! so a provider may ignore both; applying `limit_bytes` early saves sending lines nobody reads.

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, SystemTime},
};

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use vk_provider_sdk::{pb, time};

/// Lines sent per response message.
pub const LINES_PER_MESSAGE: usize = 256;

/// The response stream of `GetContainerLogs` served from a buffer.
pub type LogStream = ReceiverStream<Result<pb::GetContainerLogsResponse, Status>>;

/// The options of one `GetContainerLogs` call.
#[derive(Debug, Clone, PartialEq)]
pub struct LogSelection {
    /// Only lines of this stream; `None`: both.
    pub stream: Option<pb::LogStream>,
    /// Only lines written at or after this time.
    pub since: Option<SystemTime>,
    /// Only the last this many of the selected lines.
    pub tail: Option<usize>,
    /// Stop after this many bytes of line content.
    pub limit_bytes: Option<u64>,
    /// Keep sending new lines until the instance ends.
    pub follow: bool,
    /// The previous instance of the container, not the current one.
    pub previous: bool,
}

impl LogSelection {
    /// Decodes a request; `since_seconds` counts back from `now`.
    pub fn from_request(req: &pb::GetContainerLogsRequest, now: SystemTime) -> Self {
        let since = match (&req.since_time, req.since_seconds) {
            (Some(t), _) => Some(time::from_timestamp(t)),
            (None, Some(s)) => now.checked_sub(Duration::from_secs(s.max(0).unsigned_abs())),
            (None, None) => None,
        };
        let stream = match pb::LogStream::try_from(req.stream) {
            Ok(pb::LogStream::Stdout) => Some(pb::LogStream::Stdout),
            Ok(pb::LogStream::Stderr) => Some(pb::LogStream::Stderr),
            _ => None,
        };
        Self {
            stream,
            since,
            tail: req
                .tail_lines
                .map(|t| usize::try_from(t.max(0)).unwrap_or(usize::MAX)),
            limit_bytes: req.limit_bytes.map(|l| l.max(0).unsigned_abs()),
            follow: req.follow && !req.previous,
            previous: req.previous,
        }
    }

    /// Whether a line written to `stream` is wanted (a line of unspecified stream is stdout).
    pub fn wants_stream(&self, stream: i32) -> bool {
        let Some(wanted) = self.stream else {
            return true;
        };
        let line = match pb::LogStream::try_from(stream) {
            Ok(pb::LogStream::Stderr) => pb::LogStream::Stderr,
            _ => pb::LogStream::Stdout,
        };
        line == wanted
    }

    /// Whether a line written at `at` passes the since limit.
    pub fn wants_time(&self, at: SystemTime) -> bool {
        self.since.is_none_or(|since| at >= since)
    }

    /// Whether `line` passes the stream filter and the since limit (not `tail`: that depends on
    /// the other lines).
    pub fn wants(&self, line: &pb::LogLine) -> bool {
        self.wants_stream(line.stream)
            && line
                .time
                .as_ref()
                .is_none_or(|t| self.wants_time(time::from_timestamp(t)))
    }

    /// The lines of `lines` (oldest first) the selection asks for: of the wanted stream, at or
    /// after the since limit, then the last `tail` of those.
    pub fn select<'a>(&self, lines: &'a [pb::LogLine]) -> Vec<&'a pb::LogLine> {
        let mut out: Vec<&pb::LogLine> = lines.iter().filter(|l| self.wants(l)).collect();
        self.apply_tail(&mut out);
        out
    }

    /// Keeps only the last `tail` items of `selected`.
    pub fn apply_tail<T>(&self, selected: &mut Vec<T>) {
        if let Some(tail) = self.tail
            && selected.len() > tail
        {
            selected.drain(..selected.len() - tail);
        }
    }
}

/// Counts bytes against `limit_bytes` and cuts the line that crosses it.
#[derive(Debug, Clone)]
pub struct ByteBudget {
    left: Option<u64>,
}

impl ByteBudget {
    /// A budget of `limit` bytes (`None`: unlimited).
    pub fn new(limit: Option<u64>) -> Self {
        Self { left: limit }
    }

    /// Whether the budget is spent.
    pub fn is_spent(&self) -> bool {
        self.left == Some(0)
    }

    /// Takes `line` against the budget: the line, cut if it crosses the limit, or `None` once the
    /// budget is spent.
    pub fn take(&mut self, mut line: pb::LogLine) -> Option<pb::LogLine> {
        let Some(left) = self.left.as_mut() else {
            return Some(line);
        };
        if *left == 0 {
            return None;
        }
        let len = line.content.len() as u64;
        if len > *left {
            line.content
                .truncate(usize::try_from(*left).unwrap_or(usize::MAX));
        }
        *left = left.saturating_sub(len);
        Some(line)
    }
}

struct Lines {
    lines: Vec<pb::LogLine>,
    /// Lines dropped from the front because of `max_lines` (for followers' positions).
    dropped: usize,
}

/// One container instance's log, in memory. Cheap to clone (shared); safe for concurrent use.
/// Close it when the instance ends: followers then finish.
#[derive(Clone)]
pub struct LogBuffer {
    lines: Arc<Mutex<Lines>>,
    max_lines: usize,
    /// `true` once closed; bumped (`send_modify`) on every append to wake followers.
    changed: Arc<watch::Sender<bool>>,
}

impl Default for LogBuffer {
    fn default() -> Self {
        Self::new(10_000)
    }
}

impl LogBuffer {
    /// An empty, open buffer keeping at most `max_lines` (older lines are rotated away).
    pub fn new(max_lines: usize) -> Self {
        Self {
            lines: Arc::new(Mutex::new(Lines {
                lines: Vec::new(),
                dropped: 0,
            })),
            max_lines: max_lines.max(1),
            changed: Arc::new(watch::channel(false).0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Lines> {
        match self.lines.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Adds one line written at `at`. A newline is added if `content` lacks one. Appending to a
    /// closed buffer is ignored.
    pub fn append_at(&self, stream: pb::LogStream, content: impl Into<Vec<u8>>, at: SystemTime) {
        if self.is_closed() {
            return;
        }
        let mut content = content.into();
        if content.last() != Some(&b'\n') {
            content.push(b'\n');
        }
        {
            let mut buf = self.lock();
            buf.lines.push(pb::LogLine {
                time: Some(time::to_timestamp(at)),
                stream: stream as i32,
                content,
            });
            if buf.lines.len() > self.max_lines {
                let excess = buf.lines.len() - self.max_lines;
                buf.lines.drain(..excess);
                buf.dropped += excess;
            }
        }
        self.changed.send_modify(|_| {});
    }

    /// Adds one line written now.
    pub fn append(&self, stream: pb::LogStream, content: impl Into<Vec<u8>>) {
        self.append_at(stream, content, SystemTime::now());
    }

    /// Marks the instance ended.
    pub fn close(&self) {
        self.changed.send_replace(true);
    }

    /// Whether the instance ended.
    pub fn is_closed(&self) -> bool {
        *self.changed.borrow()
    }

    /// Number of lines held.
    pub fn len(&self) -> usize {
        self.lock().lines.len()
    }

    /// Whether no line is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lines from absolute position `from` on, and the position after the last.
    fn since_position(&self, from: usize) -> (Vec<pb::LogLine>, usize) {
        let buf = self.lock();
        let start = from.saturating_sub(buf.dropped).min(buf.lines.len());
        (buf.lines[start..].to_vec(), buf.dropped + buf.lines.len())
    }

    /// Serves one `GetContainerLogs` call: the selected lines, then with `follow` every new line
    /// until the buffer is closed or the caller goes away. Must be called inside a tokio runtime.
    pub fn serve(&self, req: &pb::GetContainerLogsRequest) -> LogStream {
        let selection = LogSelection::from_request(req, SystemTime::now());
        let (tx, rx) = mpsc::channel(16);
        let buffer = self.clone();
        tokio::spawn(async move { buffer.pump(selection, tx).await });
        ReceiverStream::new(rx)
    }

    async fn pump(
        self,
        selection: LogSelection,
        tx: mpsc::Sender<Result<pb::GetContainerLogsResponse, Status>>,
    ) {
        let mut changed = self.changed.subscribe();
        let mut budget = ByteBudget::new(selection.limit_bytes);
        changed.borrow_and_update();
        let (lines, mut position) = self.since_position(0);
        let first: Vec<pb::LogLine> = selection.select(&lines).into_iter().cloned().collect();
        if !send_lines(&tx, first, &mut budget).await {
            return;
        }
        while selection.follow && !budget.is_spent() {
            let closed = *changed.borrow_and_update();
            let (lines, next) = self.since_position(position);
            position = next;
            let new: Vec<pb::LogLine> = lines
                .into_iter()
                .filter(|l| selection.wants_stream(l.stream))
                .collect();
            if !send_lines(&tx, new, &mut budget).await || closed {
                return;
            }
            tokio::select! {
                result = changed.changed() => if result.is_err() { return },
                _ = tx.closed() => return,
            }
        }
    }
}

/// Sends `lines` in batches within the budget; false if the caller went away.
pub async fn send_lines(
    tx: &mpsc::Sender<Result<pb::GetContainerLogsResponse, Status>>,
    lines: Vec<pb::LogLine>,
    budget: &mut ByteBudget,
) -> bool {
    let mut batch = Vec::with_capacity(lines.len().min(LINES_PER_MESSAGE));
    for line in lines {
        let Some(line) = budget.take(line) else { break };
        batch.push(line);
        if batch.len() == LINES_PER_MESSAGE {
            let lines = std::mem::take(&mut batch);
            if tx
                .send(Ok(pb::GetContainerLogsResponse { lines }))
                .await
                .is_err()
            {
                return false;
            }
        }
    }
    batch.is_empty()
        || tx
            .send(Ok(pb::GetContainerLogsResponse { lines: batch }))
            .await
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn req() -> pb::GetContainerLogsRequest {
        pb::GetContainerLogsRequest::default()
    }

    fn contents(lines: &[&pb::LogLine]) -> Vec<String> {
        lines
            .iter()
            .map(|l| String::from_utf8_lossy(&l.content).trim_end().to_string())
            .collect()
    }

    fn buffer() -> (LogBuffer, SystemTime) {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let b = LogBuffer::new(100);
        for i in 0..6u64 {
            let stream = if i % 3 == 2 {
                pb::LogStream::Stderr
            } else {
                pb::LogStream::Stdout
            };
            b.append_at(stream, format!("l{i}"), t0 + Duration::from_secs(i));
        }
        (b, t0)
    }

    #[test]
    fn selection_filters_stream_since_and_tail() {
        let (b, t0) = buffer();
        let lines = b.since_position(0).0;
        let mut r = req();
        r.stream = pb::LogStream::Stderr as i32;
        let sel = LogSelection::from_request(&r, t0);
        assert_eq!(contents(&sel.select(&lines)), ["l2", "l5"]);
        let mut r = req();
        r.since_time = Some(time::to_timestamp(t0 + Duration::from_secs(3)));
        r.tail_lines = Some(2);
        let sel = LogSelection::from_request(&r, t0);
        assert_eq!(contents(&sel.select(&lines)), ["l4", "l5"]);
        let mut r = req();
        r.since_seconds = Some(2);
        let sel = LogSelection::from_request(&r, t0 + Duration::from_secs(5));
        assert_eq!(contents(&sel.select(&lines)), ["l3", "l4", "l5"]);
        let mut r = req();
        r.tail_lines = Some(0);
        assert!(LogSelection::from_request(&r, t0).select(&lines).is_empty());
    }

    #[test]
    fn previous_never_follows() {
        let mut r = req();
        r.follow = true;
        r.previous = true;
        assert!(!LogSelection::from_request(&r, SystemTime::now()).follow);
    }

    #[test]
    fn budget_cuts_the_line_that_crosses_the_limit() {
        let mut budget = ByteBudget::new(Some(5));
        let line = |s: &str| pb::LogLine {
            content: s.as_bytes().to_vec(),
            ..Default::default()
        };
        assert_eq!(budget.take(line("abc\n")).map(|l| l.content.len()), Some(4));
        assert_eq!(
            budget.take(line("defg\n")).map(|l| l.content),
            Some(b"d".to_vec())
        );
        assert!(budget.take(line("x\n")).is_none());
        assert!(budget.is_spent());
    }

    #[test]
    fn buffer_rotates_old_lines() {
        let b = LogBuffer::new(3);
        for i in 0..5 {
            b.append(pb::LogStream::Stdout, format!("{i}"));
        }
        let (lines, position) = b.since_position(0);
        assert_eq!(lines.len(), 3);
        assert_eq!(position, 5);
        assert_eq!(b.since_position(4).0.len(), 1);
    }

    #[tokio::test]
    async fn follow_sends_new_lines_until_closed() {
        let b = LogBuffer::new(100);
        b.append(pb::LogStream::Stdout, "first");
        let mut r = req();
        r.follow = true;
        let mut stream = b.serve(&r);
        let first = stream.next().await.and_then(Result::ok).map(|m| m.lines);
        assert_eq!(first.map(|l| l.len()), Some(1));
        b.append(pb::LogStream::Stdout, "second");
        let second = stream.next().await.and_then(Result::ok).map(|m| m.lines);
        assert_eq!(
            second.and_then(|l| l.first().map(|l| l.content.clone())),
            Some(b"second\n".to_vec())
        );
        b.close();
        b.append(pb::LogStream::Stdout, "ignored");
        let end = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
        assert!(matches!(end, Ok(None)), "{end:?}");
    }
}
