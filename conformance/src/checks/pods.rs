//! Pod lifecycle checks: CreatePod idempotency, reaching a running container, GetPodStatus and
//! DeletePod of unknown UIDs, deletion through to `removed`, and UpdatePod of a label.

use std::sync::Arc;

use tonic::Code;
use vk_provider_sdk::pb::{self, Capability, container_state::State};

use super::{CallContext, CheckDef, CheckError, check, ensure};
use crate::{
    client::{CallError, code_name},
    context::Ctx,
    fixtures::container_names,
    watch::{Event, all_terminated, describe_status, state},
};

pub(super) fn checks() -> Vec<CheckDef> {
    vec![
        check!(
            "pods/create_idempotent",
            None,
            "CreatePod twice with the same UID returns OK both times, ListPods lists the UID once, and a \
             further CreatePod of the running pod changes nothing",
            create_idempotent
        ),
        check!(
            "pods/create_running",
            None,
            "after CreatePod, WatchPodStatus shows the app container running, with increasing revisions and \
             containers named as in the spec; GetPodStatus and ListPods agree",
            create_running
        ),
        check!(
            "pods/get_status_unknown",
            None,
            "GetPodStatus of an unknown UID returns NOT_FOUND",
            get_status_unknown
        ),
        check!(
            "pods/delete_unknown",
            None,
            "DeletePod of an unknown UID returns OK (NOT_FOUND tolerated)",
            delete_unknown
        ),
        check!(
            "pods/delete_removes",
            None,
            "DeletePod (grace 0) of a running pod leads to every container terminated and/or `removed`; after \
             `removed` the pod is gone from GetPodStatus and ListPods; a second DeletePod returns OK",
            delete_removes
        ),
        check!(
            "pods/update_labels",
            Some(Capability::UpdatePod),
            "UpdatePod with a new label on a running pod returns OK (or FAILED_PRECONDITION) and the pod stays",
            update_labels
        ),
    ]
}

const IDEMPOTENCY_RULE: &str = "rule: CreatePod is idempotent by UID — creating a UID the provider already has returns \
                                OK and changes nothing";

/// Runs a CreatePod that must succeed because of idempotency.
async fn create_again(ctx: &Ctx, pod: &pb::Pod, which: &str) -> Result<(), CheckError> {
    match ctx.create_pod(pod).await {
        Ok(()) => Ok(()),
        Err(e @ CallError::Status { .. }) => Err(CheckError::fail(format!(
            "{which} CreatePod of the same UID failed: {e}; {IDEMPOTENCY_RULE}"
        ))),
        Err(e) => Err(CheckError::fail(format!(
            "{which} CreatePod of the same UID: {e}"
        ))),
    }
}

async fn create_idempotent(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let mut watch = ctx.synced_watch("subscriber").await?;
    let pod = ctx.new_pod();
    watch.validate_pod(&pod);
    ctx.create_pod(&pod).await.context("first CreatePod")?;
    create_again(&ctx, &pod, "second").await?;

    let list = ctx
        .provider()
        .list_pods()
        .await
        .context("ListPods after two CreatePod calls")?;
    let count = list.pods.iter().filter(|p| p.uid == pod.uid).count();
    ensure!(
        count == 1,
        "ListPods lists UID {} {count} times after two CreatePod calls of it; rule: CreatePod is idempotent by \
         UID and ListPods returns every pod once",
        pod.uid
    );

    let running = watch.wait_running(&pod.uid, ctx.deadline()).await?;
    create_again(&ctx, &pod, "third (once running)").await?;
    let after = ctx
        .provider()
        .get_pod_status(&pod.uid)
        .await
        .context("GetPodStatus after re-creating a running pod")?
        .status
        .ok_or_else(|| CheckError::fail("GetPodStatus returned no status"))?;
    for (before, now) in running.containers.iter().zip(&after.containers) {
        let (Some(State::Running(b)), Some(State::Running(n))) = (state(before), state(now)) else {
            return Err(CheckError::fail(format!(
                "container {} is no longer running after a repeated CreatePod (now: {}); {IDEMPOTENCY_RULE}",
                now.name,
                describe_status(&after)
            )));
        };
        ensure!(
            b.started_at == n.started_at && before.restart_count == now.restart_count,
            "container {} was restarted by a repeated CreatePod (started_at {:?} -> {:?}, restart_count {} -> \
             {}); {IDEMPOTENCY_RULE}",
            now.name,
            b.started_at,
            n.started_at,
            before.restart_count,
            now.restart_count
        );
    }
    Ok(())
}

async fn create_running(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let (pod, _watch, _running) = ctx.running_pod().await?;
    let status = ctx
        .provider()
        .get_pod_status(&pod.uid)
        .await
        .context("GetPodStatus of a running pod")?
        .status
        .ok_or_else(|| CheckError::fail("GetPodStatus of a running pod returned no status"))?;
    ensure!(
        status.uid == pod.uid,
        "GetPodStatus({}) returned the status of UID {:?}",
        pod.uid,
        status.uid
    );
    let names: Vec<String> = status.containers.iter().map(|c| c.name.clone()).collect();
    ensure!(
        names == container_names(&pod),
        "GetPodStatus of a running pod lists containers {names:?}, expected {:?}; rule: app container states, \
         in spec order",
        container_names(&pod)
    );
    let list = ctx
        .provider()
        .list_pods()
        .await
        .context("ListPods with a running pod")?;
    ensure!(
        list.pods.iter().any(|p| p.uid == pod.uid),
        "ListPods does not list the running pod {}; rule: ListPods returns every pod the provider runs",
        pod.uid
    );
    Ok(())
}

async fn get_status_unknown(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let uid = ctx.unknown_uid();
    match ctx.provider().get_pod_status(&uid).await {
        Err(e) if e.code() == Some(Code::NotFound) => Ok(()),
        Ok(_) => Err(CheckError::fail(format!(
            "GetPodStatus of never-created UID {uid} returned OK with a status; rule: NOT_FOUND if the UID is \
             unknown"
        ))),
        Err(e @ CallError::Status { .. }) => Err(CheckError::fail(format!(
            "GetPodStatus of unknown UID: {e}; rule: NOT_FOUND if the UID is unknown"
        ))),
        Err(e) => Err(e.into()),
    }
}

async fn delete_unknown(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let uid = ctx.unknown_uid();
    match ctx
        .provider()
        .delete_pod(&uid, &ctx.config().namespace, &uid, Some(0))
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if e.code() == Some(Code::NotFound) => {
            ctx.note("DeletePod of an unknown UID returned NOT_FOUND (tolerated: vk-host treats it as success)");
            Ok(())
        }
        Err(e @ CallError::Status { .. }) => Err(CheckError::fail(format!(
            "DeletePod of unknown UID: {e}; rule: DeletePod of a UID the provider does not know returns OK \
             (NOT_FOUND is tolerated)"
        ))),
        Err(e) => Err(e.into()),
    }
}

async fn delete_removes(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let (pod, mut watch, _) = ctx.running_pod().await?;
    let uid = pod.uid.as_str();
    ctx.delete_pod(&pod)
        .await
        .context("DeletePod (grace 0) of a running pod")?;

    let first = watch
        .wait_for(
            uid,
            ctx.deadline(),
            "every container terminated or `removed` after DeletePod",
            |e| match e {
                Event::Status(s) => all_terminated(s),
                Event::Removed(_) => true,
                Event::Synced(_) => false,
            },
        )
        .await?;
    let mut removed = matches!(first, Event::Removed(_));
    if !removed {
        let until = ctx.deadline();
        while let Some(event) = watch.next(until).await? {
            match event {
                Event::Removed(r) if r.uid == uid => {
                    removed = true;
                    break;
                }
                Event::Status(s) if s.uid == uid => {
                    if let Some(c) = s
                        .containers
                        .iter()
                        .find(|c| matches!(state(c), Some(State::Running(_))))
                    {
                        return Err(CheckError::fail(format!(
                            "container {} runs again after DeletePod reported every container terminated; rule: \
                             DeletePod stops the pod (it is not restarted)",
                            c.name
                        )));
                    }
                }
                _ => {}
            }
        }
    }

    if removed {
        match ctx.provider().get_pod_status(uid).await {
            Err(e) if e.code() == Some(Code::NotFound) => {}
            Ok(_) => {
                return Err(CheckError::fail(format!(
                    "GetPodStatus still returns pod {uid} after WatchPodStatus reported it `removed`; rule: \
                     NOT_FOUND once the provider forgot the pod"
                )));
            }
            Err(e) => {
                return Err(CheckError::fail(format!(
                    "GetPodStatus after `removed`: {e}; rule: NOT_FOUND once the provider forgot the pod"
                )));
            }
        }
        let list = ctx
            .provider()
            .list_pods()
            .await
            .context("ListPods after `removed`")?;
        ensure!(
            !list.pods.iter().any(|p| p.uid == uid),
            "ListPods still lists pod {uid} after WatchPodStatus reported it `removed`; rule: `removed` means the \
             provider forgot the pod"
        );
    } else {
        ctx.note(format!(
            "no `removed` within {}: the provider still remembers the terminated pod (allowed)",
            crate::format_duration(ctx.timeout())
        ));
        match ctx.provider().get_pod_status(uid).await {
            Ok(r) => {
                let st = r.status.unwrap_or_default();
                ensure!(
                    all_terminated(&st),
                    "GetPodStatus of a deleted pod the provider still remembers is not terminal ({}); rule: after \
                     DeletePod every container ends terminated",
                    describe_status(&st)
                );
            }
            Err(e) if e.code() == Some(Code::NotFound) => {}
            Err(e) => {
                return Err(CheckError::fail(format!(
                    "GetPodStatus of a deleted pod: {e}"
                )));
            }
        }
    }

    match ctx.delete_pod(&pod).await {
        Ok(()) => Ok(()),
        Err(e) if removed && e.code() == Some(Code::NotFound) => {
            ctx.note("second DeletePod of a forgotten pod returned NOT_FOUND (tolerated)");
            Ok(())
        }
        Err(e @ CallError::Status { .. }) => Err(CheckError::fail(format!(
            "second DeletePod of the same UID: {e}; rule: DeletePod may be called several times for the same UID \
             and returns OK"
        ))),
        Err(e) => Err(e.into()),
    }
}

async fn update_labels(ctx: Arc<Ctx>) -> Result<(), CheckError> {
    let (pod, _watch, _) = ctx.running_pod().await?;
    let mut updated = pod.clone();
    let mut json: serde_json::Value = serde_json::from_slice(&pod.pod_json)
        .map_err(|e| CheckError::fail(format!("internal: test pod JSON: {e}")))?;
    if let Some(labels) = json
        .pointer_mut("/metadata/labels")
        .and_then(serde_json::Value::as_object_mut)
    {
        labels.insert("vk-conformance.io/updated".to_owned(), "true".into());
    }
    if let Some(meta) = json
        .pointer_mut("/metadata")
        .and_then(serde_json::Value::as_object_mut)
    {
        meta.insert("resourceVersion".to_owned(), "2".into());
    }
    updated.pod_json = json.to_string().into_bytes();
    updated.resource_version = "2".to_owned();
    match ctx.provider().update_pod(updated).await {
        Ok(()) => {}
        Err(e) if e.code() == Some(Code::FailedPrecondition) => {
            ctx.note(format!(
                "UpdatePod of a label returned {}",
                code_name(Code::FailedPrecondition)
            ));
        }
        other => other.context("UpdatePod with a new label")?,
    }
    match ctx.provider().get_pod_status(&pod.uid).await {
        Ok(_) => Ok(()),
        Err(e) => Err(CheckError::fail(format!(
            "GetPodStatus after UpdatePod: {e}"
        ))),
    }
}
