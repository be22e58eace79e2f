//! WatchPodStatus checks: the snapshot / `initial_sync_complete` / changes sequence of a new
//! subscriber, and fan-out of the same sequence to concurrent subscribers.
//!
//! Per-pod revision ordering and "exactly one initial_sync_complete" are enforced by
//! [`crate::watch::StatusWatch`] on every event of every subscriber of every check.

use std::sync::Arc;

use super::{CallContext, CheckDef, CheckError, check, ensure};
use crate::{
    context::Ctx,
    watch::{Event, StatusWatch, all_terminated, distinct_uids},
};

pub(super) fn checks() -> Vec<CheckDef> {
    vec![
        check!(
            "status_stream/snapshot",
            None,
            "a new subscriber gets the snapshot of existing pods, then exactly one initial_sync_complete whose \
             pod_count matches, then changes",
            snapshot
        ),
        check!(
            "status_stream/fan_out",
            None,
            "two concurrent subscribers both receive the same sequence of a pod's revisions",
            fan_out
        ),
    ]
}

async fn snapshot(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let pod = ctx.new_pod();
    ctx.create_pod(&pod)
        .await
        .context("CreatePod before subscribing")?;
    let uid = pod.uid.as_str();

    let mut watch = StatusWatch::open(ctx.provider(), "new subscriber");
    watch.validate_pod(&pod);
    let pod_count = watch.sync(ctx.deadline()).await?;
    let uids = distinct_uids(watch.snapshot());
    ensure!(
        uids.contains(uid),
        "the snapshot of a new subscriber does not contain pod {uid}, which CreatePod accepted before the \
         subscription; rule: on subscribe the provider sends the current status of every pod it has"
    );
    ensure!(
        usize::try_from(pod_count).ok() == Some(uids.len()),
        "initial_sync_complete.pod_count is {pod_count} but the snapshot before it held {} pods ({} statuses); \
         rule: pod_count is the number of pods in the snapshot",
        uids.len(),
        watch.snapshot().len()
    );

    ctx.note(format!("the snapshot held {} pods", uids.len()));

    // Then changes: the pod reaches running (unless it already ran in the snapshot) and, once
    // deleted, reports its terminal status or `removed`.
    watch.wait_running(uid, ctx.deadline()).await?;
    ctx.delete_pod(&pod)
        .await
        .context("DeletePod after the snapshot")?;
    watch
        .wait_for(
            uid,
            ctx.deadline(),
            "a change after DeletePod (terminated or `removed`)",
            |e| match e {
                Event::Status(s) => all_terminated(s),
                Event::Removed(_) => true,
                Event::Synced(_) => false,
            },
        )
        .await?;
    Ok(())
}

async fn fan_out(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let mut a = ctx.synced_watch("subscriber A").await?;
    let mut b = ctx.synced_watch("subscriber B").await?;
    let pod = ctx.new_pod();
    let uid = pod.uid.as_str();
    a.validate_pod(&pod);
    b.validate_pod(&pod);
    ctx.create_pod(&pod).await.context("CreatePod")?;

    let running = a.wait_running(uid, ctx.deadline()).await?;
    let revision = running.revision;
    let what = format!("revision {revision} (the running status subscriber A received)");
    b.wait_for(
        uid,
        ctx.deadline(),
        &what,
        |e| matches!(e, Event::Status(s) if s.revision >= revision),
    )
    .await?;
    ensure!(
        a.revisions(uid) == b.revisions(uid),
        "two concurrent subscribers received different sequences for pod {uid}: A got revisions {:?}, B got {:?}; \
         rule: any number of subscribers may exist and each gets the full sequence",
        a.revisions(uid),
        b.revisions(uid)
    );
    Ok(())
}
