//! Status pushed, not polled: Nomad's event stream (`/v1/event/stream`, topics Allocation,
//! Evaluation and Job of the provider's namespace) feeds the [`Tracker`] with every allocation
//! and evaluation change as it happens. The stream resumes from the last index it saw; after a
//! reconnect every tracked job is refreshed once, so nothing missed in between stays missed. A
//! Nomad without the event stream (disabled, or too old) is watched with blocking queries on
//! the job list instead. [`refresh`] reads one job's state with plain GETs.

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures::{StreamExt, stream};
use http_body_util::BodyExt;
use tokio::time::sleep;
use vk_provider_kit::errors::{BackendError, ErrorClass};

use crate::{
    client::Nomad,
    model::{Allocation, Evaluation, Event, Events, JobListStub, Node},
    tracker::Tracker,
    translate::JOB_PREFIX,
};

/// Refreshes running at once.
const REFRESH_CONCURRENCY: usize = 16;
/// How long the event stream may be silent (Nomad's heartbeat is 10 s) before it is
/// reconnected.
const STREAM_SILENCE: Duration = Duration::from_secs(45);
/// Wait of one blocking query in the fall-back.
const BLOCKING_WAIT: Duration = Duration::from_secs(60);

/// Reads `job_id`'s newest allocation (or, without one, its newest evaluation) into the tracker.
pub async fn refresh(nomad: &Nomad, tracker: &Tracker, job_id: &str) -> Result<(), BackendError> {
    let path = format!("/v1/job/{job_id}/allocations");
    let allocs = match nomad.get::<Vec<Allocation>>(&path, &[]).await {
        Ok(a) => a.value,
        Err(e) if e.class == ErrorClass::NotFound => {
            tracker.on_job_gone(job_id);
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let newest = allocs.into_iter().max_by_key(|a| a.create_index);
    match newest {
        Some(stub) => {
            let full = nomad
                .get::<Allocation>(&format!("/v1/allocation/{}", stub.id), &[])
                .await
                .map(|a| a.value)
                .unwrap_or(stub);
            let (job, id) = (full.job_id.clone(), full.id.clone());
            let ip = address(nomad, &full).await;
            tracker.on_alloc(full);
            if let Some(ip) = ip {
                tracker.on_ip(&job, &id, &ip);
            }
        }
        None => {
            let path = format!("/v1/job/{job_id}/evaluations");
            let evals = nomad.get::<Vec<Evaluation>>(&path, &[]).await?.value;
            // The newest evaluation that explains a placement failure, else the newest.
            let explained = evals
                .iter()
                .filter(|e| !e.failed_tg_allocs.is_empty())
                .max_by_key(|e| e.create_index)
                .cloned();
            match explained.or_else(|| evals.into_iter().max_by_key(|e| e.create_index)) {
                Some(e) => tracker.on_eval(e),
                None => tracker.on_unplaced(job_id),
            }
        }
    }
    Ok(())
}

/// Refreshes every tracked job (bounded concurrency); failures are logged.
pub async fn refresh_all(nomad: &Nomad, tracker: &Tracker) {
    let jobs = tracker.job_ids();
    stream::iter(jobs)
        .for_each_concurrent(REFRESH_CONCURRENCY, |job| async move {
            if let Err(e) = refresh(nomad, tracker, &job).await {
                tracing::warn!(job = %job, error = %e.message, "refreshing a job failed");
            }
        })
        .await;
}

/// The address of an allocation: its group network's, else (host networking without a network
/// block) its node's.
pub async fn address(nomad: &Nomad, alloc: &Allocation) -> Option<String> {
    if let Some(ip) = alloc.ip() {
        return Some(ip.to_string());
    }
    if alloc.node_id.is_empty() {
        return None;
    }
    match nomad
        .get::<Node>(&format!("/v1/node/{}", alloc.node_id), &[])
        .await
    {
        Ok(n) => n.value.ip().map(str::to_string),
        Err(e) => {
            tracing::debug!(node = %alloc.node_id, error = %e.message, "reading a node failed");
            None
        }
    }
}

/// Reads the address of `alloc` when an event did not carry it.
async fn fetch_ip(nomad: Nomad, tracker: Arc<Tracker>, job_id: String, alloc_id: String) {
    match nomad
        .get::<Allocation>(&format!("/v1/allocation/{alloc_id}"), &[])
        .await
    {
        Ok(a) => {
            if let Some(ip) = address(&nomad, &a.value).await {
                tracker.on_ip(&job_id, &alloc_id, &ip);
            }
        }
        Err(e) => {
            tracing::debug!(alloc = %alloc_id, error = %e.message, "reading an allocation failed")
        }
    }
}

/// Watches Nomad for the provider's lifetime.
pub async fn run(nomad: Nomad, tracker: Arc<Tracker>) {
    let mut index = 0u64;
    let mut failures = 0u32;
    loop {
        match follow_events(&nomad, &tracker, &mut index).await {
            Ok(()) => failures = 0,
            Err(e) if e.class == ErrorClass::NotFound || e.class == ErrorClass::Invalid => {
                tracing::warn!(error = %e.message, "Nomad's event stream is not available; watching with blocking queries");
                blocking(&nomad, &tracker).await;
                return;
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e.message, failures, "Nomad's event stream ended; reconnecting");
            }
        }
        let delay = Duration::from_millis(250u64 << failures.min(5));
        sleep(delay).await;
        // Catch up on what the gap may have hidden.
        refresh_all(&nomad, &tracker).await;
    }
}

/// One connection of the event stream, until it ends. `index` is advanced past every batch.
async fn follow_events(
    nomad: &Nomad,
    tracker: &Arc<Tracker>,
    index: &mut u64,
) -> Result<(), BackendError> {
    let from = index.saturating_add(u64::from(*index > 0)).to_string();
    let mut body = nomad
        .stream(
            "/v1/event/stream",
            &[
                ("topic", "Allocation:*"),
                ("topic", "Evaluation:*"),
                ("topic", "Job:*"),
                ("index", &from),
            ],
        )
        .await?;
    tracing::info!(index = %from, "following Nomad's event stream");
    let mut pending: Vec<u8> = Vec::new();
    loop {
        // Nomad sends a heartbeat every 10 s: a silent connection is a dead one.
        let Ok(next) = tokio::time::timeout(STREAM_SILENCE, body.frame()).await else {
            return Err(BackendError::new(
                ErrorClass::Timeout,
                format!("event stream silent for {STREAM_SILENCE:?}"),
            ));
        };
        let Some(frame) = next else { break };
        let frame = frame.map_err(|e| {
            BackendError::new(ErrorClass::Unavailable, format!("event stream: {e}"))
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = line.trim_ascii();
            if line.is_empty() || line == b"{}" {
                continue; // heartbeat
            }
            match serde_json::from_slice::<Events>(line) {
                Ok(batch) => {
                    *index = (*index).max(batch.index);
                    for event in batch.events {
                        apply(nomad, tracker, event);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "an event stream line was not understood"),
            }
        }
    }
    Ok(())
}

fn apply(nomad: &Nomad, tracker: &Arc<Tracker>, event: Event) {
    match event.topic.as_str() {
        "Allocation" => {
            let Some(alloc) = event.payload.allocation else {
                return;
            };
            if !alloc.job_id.starts_with(JOB_PREFIX) {
                return;
            }
            let (job, id) = (alloc.job_id.clone(), alloc.id.clone());
            if tracker.on_alloc(alloc) {
                tokio::spawn(fetch_ip(nomad.clone(), tracker.clone(), job, id));
            }
        }
        "Evaluation" => {
            if let Some(eval) = event.payload.evaluation
                && eval.job_id.starts_with(JOB_PREFIX)
            {
                tracker.on_eval(eval);
            }
        }
        "Job" if event.kind == "JobDeregistered" && tracker.has_job(&event.key) => {
            let (nomad, tracker, job) = (nomad.clone(), tracker.clone(), event.key);
            tokio::spawn(async move {
                if let Err(e) = refresh(&nomad, &tracker, &job).await {
                    tracing::debug!(job = %job, error = %e.message, "refreshing a job failed");
                }
            });
        }
        _ => {}
    }
}

/// The fall-back: a blocking query on vk's jobs; a job whose listing changed is refreshed.
async fn blocking(nomad: &Nomad, tracker: &Tracker) {
    let mut index = 0u64;
    let mut seen: HashMap<String, String> = HashMap::new();
    loop {
        let path = format!("/v1/jobs?prefix={JOB_PREFIX}");
        match nomad
            .get_blocking::<Vec<serde_json::Value>>(&path, index, BLOCKING_WAIT)
            .await
        {
            Ok(list) => {
                let previous = index;
                index = list.index.max(index);
                let mut present = HashMap::new();
                for raw in list.value {
                    let Ok(stub) = serde_json::from_value::<JobListStub>(raw.clone()) else {
                        continue;
                    };
                    present.insert(stub.id.clone(), raw.to_string());
                }
                // A wait that timed out (index unchanged) refreshes everything: task-level
                // changes of a running allocation do not show in the job list.
                let timed_out = list.index == previous;
                for job in tracker.job_ids() {
                    let now = present.get(&job);
                    let changed = now != seen.get(&job) || now.is_none() || timed_out;
                    if changed && let Err(e) = refresh(nomad, tracker, &job).await {
                        tracing::warn!(job = %job, error = %e.message, "refreshing a job failed");
                    }
                }
                seen = present;
            }
            Err(e) => {
                tracing::warn!(error = %e.message, "blocking query on Nomad's jobs failed");
                sleep(Duration::from_secs(2)).await;
            }
        }
    }
}
