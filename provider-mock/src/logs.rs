//! Container logs, generated lazily: line `k` of a container instance is written at
//! `started_at + k × interval`, so no work is done for pods nobody reads, and any window
//! (since, tail, follow, previous instance) is computed from timestamps. Every fifth line goes to
//! stderr so stream selection can be tested.

use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tonic::Status;
use vk_provider_kit::logs::{ByteBudget, LogSelection, send_lines};
use vk_provider_sdk::{pb, time::to_timestamp};

use crate::{pod::Pod, store::Store};

/// Lines kept per container instance; older ones are "rotated away".
pub const RETAINED_LINES: u64 = 10_000;

/// The log of one container instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// Pod UID.
    pub uid: String,
    /// `namespace/pod/container`, written into every line.
    pub label: String,
    /// Container name.
    pub container: String,
    /// Restart number of the instance.
    pub instance: i32,
    /// When the instance started (line 0).
    pub started_at: SystemTime,
    /// When it exited; no lines after that.
    pub finished_at: Option<SystemTime>,
    /// Time between lines.
    pub interval: Duration,
}

impl Source {
    /// Finds the instance a request asks for.
    pub fn for_request(pod: &Pod, req: &pb::GetContainerLogsRequest) -> Result<Self, Status> {
        let c = pod.container(&req.container).ok_or_else(|| {
            Status::not_found(format!(
                "container {:?} is not valid for pod {}/{}",
                req.container, pod.spec.namespace, pod.spec.name
            ))
        })?;
        let instance = if req.previous {
            c.previous.ok_or_else(|| {
                Status::failed_precondition(format!(
                    "previous terminated container {:?} in pod {:?} not found",
                    c.name, pod.spec.name
                ))
            })?
        } else {
            c.current.ok_or_else(|| {
                let reason = match &c.state {
                    crate::pod::State::Waiting(r, _) => r.clone(),
                    _ => "ContainerCreating".into(),
                };
                Status::failed_precondition(format!(
                    "container {:?} in pod {:?} is waiting to start: {reason}",
                    c.name, pod.spec.name
                ))
            })?
        };
        Ok(Self {
            uid: pod.spec.uid.clone(),
            label: format!("{}/{}/{}", pod.spec.namespace, pod.spec.name, c.name),
            container: c.name.clone(),
            instance: instance.number,
            started_at: instance.started_at,
            finished_at: instance.finished_at,
            interval: c.behaviour.log_interval,
        })
    }

    /// When line `k` is written.
    pub fn time_of(&self, k: u64) -> SystemTime {
        self.started_at + self.interval.saturating_mul(k.min(u32::MAX as u64) as u32)
    }

    /// Number of lines written up to `t` (and before the instance finished).
    pub fn count_at(&self, t: SystemTime) -> u64 {
        let t = match self.finished_at {
            Some(f) if f < t => f,
            _ => t,
        };
        match t.duration_since(self.started_at) {
            Ok(d) => (d.as_nanos() / self.interval.as_nanos().max(1)) as u64 + 1,
            Err(_) => 0,
        }
    }

    /// Line `k`.
    pub fn line(&self, k: u64) -> pb::LogLine {
        pb::LogLine {
            time: Some(to_timestamp(self.time_of(k))),
            stream: Self::stream_of(k),
            content: format!("{} #{} line {k}\n", self.label, self.instance).into_bytes(),
        }
    }

    /// The stream line `k` is written to.
    fn stream_of(k: u64) -> i32 {
        if k % 5 == 4 {
            pb::LogStream::Stderr as i32
        } else {
            pb::LogStream::Stdout as i32
        }
    }

    /// The line numbers a selection picks among those written up to `now`.
    pub fn select(&self, selection: &LogSelection, now: SystemTime) -> Vec<u64> {
        let end = self.count_at(now);
        let mut first = end.saturating_sub(RETAINED_LINES);
        if let Some(since) = selection.since {
            let from = match since.duration_since(self.started_at) {
                Ok(d) => d.as_nanos().div_ceil(self.interval.as_nanos().max(1)) as u64,
                Err(_) => 0,
            };
            first = first.max(from);
        }
        let mut ks: Vec<u64> = (first..end)
            .filter(|k| selection.wants_stream(Self::stream_of(*k)))
            .collect();
        selection.apply_tail(&mut ks);
        ks
    }
}

/// Streams the log a request selects into `tx`, following if asked, until done or the receiver
/// goes away.
pub async fn stream(
    store: std::sync::Arc<Store>,
    mut source: Source,
    req: pb::GetContainerLogsRequest,
    tx: mpsc::Sender<Result<pb::GetContainerLogsResponse, Status>>,
) {
    let now = SystemTime::now();
    let selection = LogSelection::from_request(&req, now);
    let mut budget = ByteBudget::new(selection.limit_bytes);
    let initial = source.select(&selection, now);
    let mut next = source.count_at(now);
    let lines = initial.into_iter().map(|k| source.line(k)).collect();
    if !send_lines(&tx, lines, &mut budget).await || !selection.follow {
        return;
    }
    loop {
        if budget.is_spent() || source.finished_at.is_some() {
            return;
        }
        let wake = source.time_of(next);
        let wait = wake
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            .min(Duration::from_secs(1));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = tx.closed() => return,
        }
        // The instance may have exited (or the pod gone) meanwhile.
        let current = store.with_pod(&source.uid, |p| {
            p.container(&source.container)
                .and_then(|c| c.current)
                .filter(|i| i.number == source.instance)
        });
        match current {
            Some(Some(instance)) => source.finished_at = instance.finished_at,
            _ => source.finished_at = Some(SystemTime::now()),
        }
        let end = source.count_at(SystemTime::now());
        let lines = (next..end)
            .filter(|k| selection.wants_stream(Source::stream_of(*k)))
            .map(|k| source.line(k))
            .collect();
        if !send_lines(&tx, lines, &mut budget).await {
            return;
        }
        next = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(start: SystemTime) -> Source {
        Source {
            uid: "u".into(),
            label: "ns/p/c".into(),
            container: "c".into(),
            instance: 0,
            started_at: start,
            finished_at: None,
            interval: Duration::from_secs(1),
        }
    }

    fn pick(s: &Source, r: &pb::GetContainerLogsRequest, now: SystemTime) -> Vec<u64> {
        s.select(&LogSelection::from_request(r, now), now)
    }

    fn req() -> pb::GetContainerLogsRequest {
        pb::GetContainerLogsRequest::default()
    }

    #[test]
    fn counts_lines_by_time() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let s = source(t0);
        assert_eq!(s.count_at(t0 - Duration::from_secs(1)), 0);
        assert_eq!(s.count_at(t0), 1);
        assert_eq!(s.count_at(t0 + Duration::from_millis(9500)), 10);
    }

    #[test]
    fn tail_since_and_stream_select() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let s = source(t0);
        let now = t0 + Duration::from_millis(9500);
        assert_eq!(pick(&s, &req(), now), (0..10).collect::<Vec<_>>());
        assert_eq!(
            pick(
                &s,
                &pb::GetContainerLogsRequest {
                    tail_lines: Some(2),
                    ..req()
                },
                now
            ),
            vec![8, 9]
        );
        assert_eq!(
            pick(
                &s,
                &pb::GetContainerLogsRequest {
                    since_seconds: Some(3),
                    ..req()
                },
                now
            ),
            vec![7, 8, 9]
        );
        let stderr = pb::GetContainerLogsRequest {
            stream: pb::LogStream::Stderr as i32,
            ..req()
        };
        assert_eq!(pick(&s, &stderr, now), vec![4, 9]);
    }

    #[test]
    fn finished_instance_stops_writing() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let s = Source {
            finished_at: Some(t0 + Duration::from_secs(2)),
            ..source(t0)
        };
        assert_eq!(s.count_at(t0 + Duration::from_secs(60)), 3);
    }
}
