//! GetStats checks (CAPABILITY_STATS): the running test pod and its container are listed with
//! CPU and a positive memory working set, and cumulative CPU counters never decrease between two
//! calls 1.5 s apart.
//!
//! Stats have no stream, so the suite calls GetStats once a second (up to the timeout) until the
//! freshly started pod shows up: backends often publish metrics a little after a start.

use std::{sync::Arc, time::Duration};

use tokio::time::Instant;
use vk_provider_sdk::pb::{self, Capability};

use super::{CallContext, CheckDef, CheckError, check, ensure};
use crate::{context::Ctx, fixtures::CONTAINER, format_duration};

pub(super) fn checks() -> Vec<CheckDef> {
    let stats = Some(Capability::Stats);
    vec![
        check!(
            "stats/running_pod",
            stats,
            "GetStats lists the running test pod and its container, with CPU and a memory working set > 0",
            running_pod
        ),
        check!(
            "stats/cpu_monotonic",
            stats,
            "cumulative CPU usage (container, pod, node) never decreases between two calls 1.5 s apart",
            cpu_monotonic
        ),
    ]
}

/// Time between the two samples of the monotonicity check.
const SAMPLE_GAP: Duration = Duration::from_millis(1500);

fn find<'a>(
    stats: &'a pb::GetStatsResponse,
    uid: &str,
) -> Option<(&'a pb::PodStats, &'a pb::ContainerStats)> {
    let pod = stats.pods.iter().find(|p| p.uid == uid)?;
    let container = pod.containers.iter().find(|c| c.name == CONTAINER)?;
    Some((pod, container))
}

/// Calls GetStats until the pod and its container are listed, or the timeout.
async fn stats_with_pod(ctx: &Ctx, uid: &str) -> Result<pb::GetStatsResponse, CheckError> {
    let until = Instant::now() + ctx.timeout();
    loop {
        let stats = ctx.provider().get_stats().await.context("GetStats")?;
        if find(&stats, uid).is_some() {
            return Ok(stats);
        }
        if Instant::now() + Duration::from_secs(1) > until {
            let listed = stats.pods.iter().find(|p| p.uid == uid);
            return Err(CheckError::fail(match listed {
                None => format!(
                    "GetStats did not list the running test pod {uid} within {}; rule: GetStats returns usage for \
                     each running pod and container",
                    format_duration(ctx.timeout())
                ),
                Some(p) => format!(
                    "GetStats lists pod {uid} with containers {:?}, without {CONTAINER:?}; rule: GetStats returns \
                     usage for each running container",
                    p.containers
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                ),
            }));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn running_pod(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let (pod, _watch, _) = ctx.running_pod().await?;
    let stats = stats_with_pod(&ctx, &pod.uid).await?;
    let Some((_, container)) = find(&stats, &pod.uid) else {
        return Err(CheckError::fail("internal: pod vanished from stats"));
    };
    ensure!(
        container.cpu.is_some(),
        "container {CONTAINER} of running pod {} has no CPU stats; rule: GetStats returns usage for each running \
         container",
        pod.uid
    );
    let memory = container.memory.as_ref().ok_or_else(|| {
        CheckError::fail(format!(
            "container {CONTAINER} of running pod {} has no memory stats; rule: GetStats returns usage for each \
             running container",
            pod.uid
        ))
    })?;
    ensure!(
        memory.working_set_bytes > 0,
        "container {CONTAINER} of running pod {} reports a memory working set of 0 bytes; a running container \
         uses memory",
        pod.uid
    );
    Ok(())
}

fn cpu(stats: Option<&pb::CpuStats>) -> Option<u64> {
    stats.map(|c| c.usage_core_nanoseconds)
}

async fn cpu_monotonic(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let (pod, _watch, _) = ctx.running_pod().await?;
    let uid = pod.uid.as_str();
    let first = stats_with_pod(&ctx, uid).await?;
    tokio::time::sleep(SAMPLE_GAP).await;
    let second = ctx
        .provider()
        .get_stats()
        .await
        .context("second GetStats")?;
    let (Some((pod1, c1)), Some((pod2, c2))) = (find(&first, uid), find(&second, uid)) else {
        return Err(CheckError::fail(format!(
            "the running test pod {uid} (container {CONTAINER}) disappeared from GetStats between two calls \
             {} apart",
            format_duration(SAMPLE_GAP)
        )));
    };
    let pairs = [
        ("container", cpu(c1.cpu.as_ref()), cpu(c2.cpu.as_ref())),
        ("pod", cpu(pod1.cpu.as_ref()), cpu(pod2.cpu.as_ref())),
        (
            "node",
            cpu(first.node.as_ref().and_then(|n| n.cpu.as_ref())),
            cpu(second.node.as_ref().and_then(|n| n.cpu.as_ref())),
        ),
    ];
    ensure!(
        pairs[0].1.is_some() && pairs[0].2.is_some(),
        "container {CONTAINER} of running pod {uid} has no CPU stats; rule: GetStats returns usage for each \
         running container"
    );
    for (what, a, b) in pairs {
        if let (Some(a), Some(b)) = (a, b) {
            ensure!(
                b >= a,
                "{what} CPU usage_core_nanoseconds decreased from {a} to {b} between two calls {} apart; rule: CPU \
                 is a cumulative counter that never decreases while the container (or node) lives",
                format_duration(SAMPLE_GAP)
            );
        }
    }
    Ok(())
}
