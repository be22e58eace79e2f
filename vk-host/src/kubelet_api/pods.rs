//! `GET /pods` (the pods bound to this node, as the API server sent them), `GET /runningpods/`
//! (what the provider reports running, with the kubelet's minimal fields) and `GET /healthz`.

use std::sync::Arc;

use axum::{
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;
use vk_provider_sdk::pb;

use super::{
    ApiState, BoundPod,
    errors::{ApiError, provider_info},
};

fn json_response(body: Vec<u8>) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A `v1.PodList` around already serialised pods.
pub fn pod_list_json<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = br#"{"kind":"PodList","apiVersion":"v1","metadata":{},"items":["#.to_vec();
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.extend_from_slice(b"]}");
    out
}

/// The bytes of `namespace/name`, the order of `/pods` (not that of the `(namespace, name)`
/// pair: `-` and `.` sort before `/`).
fn key_bytes(pod: &dyn BoundPod) -> impl Iterator<Item = u8> + '_ {
    pod.namespace()
        .bytes()
        .chain(std::iter::once(b'/'))
        .chain(pod.name().bytes())
}

/// The `v1.PodList` of `pods`, sorted by `namespace/name`.
pub fn sorted_pod_list_json(mut pods: Vec<Arc<dyn BoundPod>>) -> Vec<u8> {
    pods.sort_by(|a, b| key_bytes(&**a).cmp(key_bytes(&**b)));
    pod_list_json(pods.iter().map(|p| p.json()))
}

/// `GET /pods`, sorted by `namespace/name`.
pub async fn pods(State(state): State<ApiState>) -> Response {
    json_response(sorted_pod_list_json(state.pods.all()))
}

/// Whether the provider reports `status` as running.
pub fn is_running(status: &pb::PodStatus) -> bool {
    status.phase == pb::PodPhase::Running as i32
        || status.containers.iter().any(|c| {
            matches!(
                c.state.as_ref().and_then(|s| s.state.as_ref()),
                Some(pb::container_state::State::Running(_))
            )
        })
}

/// The minimal pod of the kubelet's `/runningpods/`: name, namespace, UID, containers.
pub fn running_pod(status: &pb::PodStatus) -> serde_json::Value {
    let containers: Vec<serde_json::Value> = status
        .containers
        .iter()
        .map(|c| json!({"name": c.name, "image": c.image}))
        .collect();
    json!({
        "metadata": {"name": status.name, "namespace": status.namespace, "uid": status.uid},
        "spec": {"containers": containers},
        "status": {},
    })
}

/// `GET /runningpods/`.
pub async fn running_pods(State(state): State<ApiState>) -> Response {
    let result = async {
        let info = provider_info(&state)?;
        let mut statuses = state
            .provider
            .list_pods()
            .await
            .map_err(|e| ApiError::from_provider(e, &info.name, "listing pods"))?;
        statuses.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let items: Vec<Vec<u8>> = statuses
            .iter()
            .filter(|s| is_running(s))
            .map(|s| serde_json::to_vec(&running_pod(s)))
            .collect::<Result<_, _>>()
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok::<_, ApiError>(pod_list_json(items.iter().map(Vec::as_slice)))
    }
    .await;
    match result {
        Ok(body) => json_response(body),
        Err(e) => e.into_response(),
    }
}

/// `GET /healthz`.
pub async fn healthz() -> &'static str {
    "ok"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_list_wraps_items() {
        let list = pod_list_json([&br#"{"a":1}"#[..], &br#"{"b":2}"#[..]]);
        let v: serde_json::Value = serde_json::from_slice(&list).unwrap();
        assert_eq!(
            v,
            json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [{"a": 1}, {"b": 2}]})
        );
        let empty: serde_json::Value = serde_json::from_slice(&pod_list_json([])).unwrap();
        assert_eq!(empty["items"], json!([]));
    }

    #[test]
    fn pods_sort_by_the_namespace_slash_name_string() {
        let pod = |ns: &str, name: &str| json!({"metadata": {"namespace": ns, "name": name, "uid": format!("{ns}-{name}")}});
        // "a-b/x" < "a/x" as strings ('-' < '/'), though ("a", "x") < ("a-b", "x").
        let pods = crate::kubelet_api::test_pods::TestPods::shared(&[
            pod("a", "x"),
            pod("b", "a"),
            pod("a-b", "x"),
            pod("a", "w"),
        ]);
        let list: serde_json::Value =
            serde_json::from_slice(&sorted_pod_list_json(pods.all())).unwrap();
        let keys: Vec<&str> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["metadata"]["uid"].as_str().unwrap())
            .collect();
        assert_eq!(keys, ["a-b-x", "a-w", "a-x", "b-a"]);
    }

    #[test]
    fn running_pods_have_minimal_fields() {
        let status = pb::PodStatus {
            uid: "u".into(),
            namespace: "ns".into(),
            name: "p".into(),
            containers: vec![pb::ContainerStatus {
                name: "c".into(),
                image: "busybox".into(),
                state: Some(pb::ContainerState {
                    state: Some(pb::container_state::State::Running(
                        pb::ContainerStateRunning::default(),
                    )),
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(is_running(&status));
        assert_eq!(
            running_pod(&status),
            json!({
                "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                "status": {}
            })
        );
        assert!(!is_running(&pb::PodStatus::default()));
    }
}
