//! The test pods the suite creates: a minimal but realistic pod, the way vk-host would resolve
//! it — a valid v1 Pod JSON with one container `main` (image `busybox`, command `sleep 3600`,
//! restartPolicy Always, a container port 8080), the resolved environment `CONFORMANCE=1` and
//! one small configMap volume file.

use std::{
    collections::hash_map::RandomState,
    hash::{BuildHasher, Hasher},
    time::{SystemTime, UNIX_EPOCH},
};

use serde_json::json;
use vk_provider_sdk::pb;

/// Name of the only container of a test pod.
pub(crate) const CONTAINER: &str = "main";
/// Image of the test container.
pub(crate) const IMAGE: &str = "busybox";
/// Name of the configMap volume of a test pod.
pub(crate) const VOLUME: &str = "conformance-config";

/// A short random hex string identifying one suite run, so UIDs never collide across runs.
pub(crate) fn run_id() -> String {
    let mut h = RandomState::new().build_hasher();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    h.write_u128(now.as_nanos());
    h.write_u32(std::process::id());
    format!("{:08x}", h.finish() & 0xffff_ffff)
}

/// Builds the test pod with this UID (also used as its name).
pub(crate) fn test_pod(uid: &str, namespace: &str, node_name: &str, check: &str) -> pb::Pod {
    let command = ["sleep", "3600"];
    let pod_json = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": uid,
            "namespace": namespace,
            "uid": uid,
            "resourceVersion": "1",
            "creationTimestamp": rfc3339_now(),
            "labels": { "app.kubernetes.io/name": "vk-conformance" },
            "annotations": { "vk-conformance.io/check": check },
        },
        "spec": {
            "nodeName": node_name,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "enableServiceLinks": false,
            "containers": [{
                "name": CONTAINER,
                "image": IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "command": command,
                "env": [{ "name": "CONFORMANCE", "value": "1" }],
                "ports": [{ "containerPort": 8080, "protocol": "TCP" }],
                "resources": {},
                "volumeMounts": [{ "name": VOLUME, "mountPath": "/etc/conformance", "readOnly": true }],
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
            }],
            "volumes": [{ "name": VOLUME, "configMap": { "name": VOLUME, "defaultMode": 420 } }],
            "tolerations": [{ "operator": "Exists" }],
        },
        "status": { "phase": "Pending", "qosClass": "BestEffort" },
    });
    pb::Pod {
        uid: uid.to_owned(),
        namespace: namespace.to_owned(),
        name: uid.to_owned(),
        pod_json: pod_json.to_string().into_bytes(),
        init_containers: Vec::new(),
        containers: vec![pb::ResolvedContainer {
            name: CONTAINER.to_owned(),
            env: vec![pb::EnvVar {
                name: "CONFORMANCE".to_owned(),
                value: "1".to_owned(),
                ..Default::default()
            }],
            image: IMAGE.to_owned(),
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            args: Vec::new(),
            ..Default::default()
        }],
        volumes: vec![pb::Volume {
            name: VOLUME.to_owned(),
            files: vec![pb::VolumeFile {
                path: "conformance.txt".to_owned(),
                content: b"vk conformance suite\n".to_vec(),
                mode: 0o644,
                ..Default::default()
            }],
            ..Default::default()
        }],
        image_pull_credentials: Vec::new(),
        resource_version: "1".to_owned(),
        host_ip: String::new(),
        ..Default::default()
    }
}

/// Names of the app containers of a pod, in spec order.
pub(crate) fn container_names(pod: &pb::Pod) -> Vec<String> {
    pod.containers.iter().map(|c| c.name.clone()).collect()
}

/// The current UTC time as RFC 3339 with second precision (`2026-01-02T03:04:05Z`).
fn rfc3339_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a (year, month, day) date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_json_is_a_valid_v1_pod() {
        let pod = test_pod("conformance-abc-1", "vk-conformance", "node-a", "pods/x");
        let v: serde_json::Value = serde_json::from_slice(&pod.pod_json).unwrap_or_default();
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["kind"], "Pod");
        assert_eq!(v["metadata"]["uid"], "conformance-abc-1");
        assert_eq!(v["spec"]["containers"][0]["name"], "main");
        assert_eq!(v["spec"]["restartPolicy"], "Always");
        assert_eq!(pod.containers[0].command, vec!["sleep", "3600"]);
        assert_eq!(pod.volumes[0].files.len(), 1);
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_ne!(run_id(), run_id());
    }
}
