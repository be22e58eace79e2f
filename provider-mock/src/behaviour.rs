//! Per-pod and per-container behaviour, configured through pod annotations.
//!
//! Every key lives under the `mock.vk.io/` prefix. Container keys can be given for one container
//! (`mock.vk.io/<container>.<key>`) or for every app container (`mock.vk.io/<key>`); init
//! containers only read the per-container form.
//!
//! | key | scope | meaning |
//! |---|---|---|
//! | `startup-delay` | pod | wait this long before starting the first container |
//! | `reject` | pod | refuse the pod: CreatePod fails with INVALID_ARGUMENT and this message |
//! | `graceful-stop` | pod | after DeletePod, take this long to stop (capped by the grace period) |
//! | `exit-after` | container | exit after running this long |
//! | `exit-code` | container | exit code used by `exit-after` (default 0) |
//! | `crash-loop` | container | `true`: exit 1 after 1 s, every time |
//! | `fail-start` | container | never start: waiting with reason `CreateContainerError` and this message |
//! | `stop-exit-code` | container | exit code reported when stopped by DeletePod (default 0) |
//! | `cpu` | container | CPU usage, as a quantity (`250m`, `0.5`); default `10m` |
//! | `memory` | container | memory working set, as a quantity (`64Mi`); default `16Mi` |
//! | `log-interval` | container | interval between generated log lines |

use std::{collections::BTreeMap, time::Duration};

use kube_values::{bytes, millicores, parse_duration};

/// Prefix of every annotation the mock reads.
pub const PREFIX: &str = "mock.vk.io/";

/// A wrong annotation value, with a message written for the user who set it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("annotation {key}: invalid value {value:?}: {expected}")]
pub struct BehaviourError {
    /// The full annotation key.
    pub key: String,
    /// The value found.
    pub value: String,
    /// What was expected.
    pub expected: &'static str,
}

/// What one container does.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerBehaviour {
    /// Exit after running this long; `None` runs until stopped.
    pub exit_after: Option<Duration>,
    /// Exit code for `exit_after`.
    pub exit_code: i32,
    /// If set, the container never starts; the message explains why.
    pub fail_start: Option<String>,
    /// Exit code when stopped by DeletePod.
    pub stop_exit_code: i32,
    /// CPU usage in millicores.
    pub cpu_millicores: u64,
    /// Memory working set in bytes.
    pub memory_bytes: u64,
    /// Interval between generated log lines.
    pub log_interval: Duration,
}

/// What the pod as a whole does.
#[derive(Debug, Clone, PartialEq)]
pub struct PodBehaviour {
    /// Delay before the first container starts.
    pub startup_delay: Duration,
    /// If set, CreatePod is refused with this message.
    pub reject: Option<String>,
    /// Time taken to stop after DeletePod (capped by the grace period).
    pub graceful_stop: Duration,
}

/// Defaults that do not come from annotations.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    /// Pod start-up delay.
    pub startup_delay: Duration,
    /// How long init containers run.
    pub init_duration: Duration,
    /// Log line interval.
    pub log_interval: Duration,
}

/// Reads the pod-level behaviour.
pub fn pod_behaviour(
    annotations: &BTreeMap<String, String>,
    defaults: &Defaults,
) -> Result<PodBehaviour, BehaviourError> {
    let get = |k: &str| {
        annotations
            .get(&format!("{PREFIX}{k}"))
            .map(|v| (format!("{PREFIX}{k}"), v))
    };
    Ok(PodBehaviour {
        startup_delay: match get("startup-delay") {
            Some((key, v)) => duration(&key, v)?,
            None => defaults.startup_delay,
        },
        reject: get("reject").map(|(_, v)| v.clone()),
        graceful_stop: match get("graceful-stop") {
            Some((key, v)) => duration(&key, v)?,
            None => Duration::ZERO,
        },
    })
}

/// Reads one container's behaviour. `init` containers ignore pod-wide keys and exit 0 after
/// `defaults.init_duration` unless told otherwise.
pub fn container_behaviour(
    annotations: &BTreeMap<String, String>,
    container: &str,
    init: bool,
    defaults: &Defaults,
) -> Result<ContainerBehaviour, BehaviourError> {
    let get = |k: &str| -> Option<(String, &String)> {
        let specific = format!("{PREFIX}{container}.{k}");
        if let Some(v) = annotations.get(&specific) {
            return Some((specific, v));
        }
        if init {
            return None;
        }
        let wide = format!("{PREFIX}{k}");
        annotations.get(&wide).map(|v| (wide, v))
    };
    let mut b = ContainerBehaviour {
        exit_after: init.then_some(defaults.init_duration),
        exit_code: 0,
        fail_start: None,
        stop_exit_code: 0,
        cpu_millicores: 10,
        memory_bytes: 16 * 1024 * 1024,
        log_interval: defaults.log_interval,
    };
    if let Some((key, v)) = get("crash-loop")
        && boolean(&key, v)?
    {
        b.exit_after = Some(Duration::from_secs(1));
        b.exit_code = 1;
    }
    if let Some((key, v)) = get("exit-after") {
        b.exit_after = Some(duration(&key, v)?);
    }
    if let Some((key, v)) = get("exit-code") {
        b.exit_code = integer(&key, v)?;
    }
    if let Some((_, v)) = get("fail-start") {
        b.fail_start = Some(if v.is_empty() {
            "the mock was told to fail this container".into()
        } else {
            v.clone()
        });
    }
    if let Some((key, v)) = get("stop-exit-code") {
        b.stop_exit_code = integer(&key, v)?;
    }
    if let Some((key, v)) = get("cpu") {
        b.cpu_millicores = millicores(v)
            .map_err(|_| err(&key, v, "expected a CPU quantity such as 250m or 0.5"))?;
    }
    if let Some((key, v)) = get("memory") {
        b.memory_bytes =
            bytes(v).map_err(|_| err(&key, v, "expected a memory quantity such as 64Mi or 1G"))?;
    }
    if let Some((key, v)) = get("log-interval") {
        let d = duration(&key, v)?;
        if d.is_zero() {
            return Err(err(&key, v, "must be greater than zero"));
        }
        b.log_interval = d;
    }
    Ok(b)
}

fn err(key: &str, value: &str, expected: &'static str) -> BehaviourError {
    BehaviourError {
        key: key.to_string(),
        value: value.to_string(),
        expected,
    }
}

fn duration(key: &str, v: &str) -> Result<Duration, BehaviourError> {
    parse_duration(v).map_err(|_| err(key, v, "expected a duration such as 500ms, 3s or 2m"))
}

fn integer(key: &str, v: &str) -> Result<i32, BehaviourError> {
    v.trim()
        .parse()
        .map_err(|_| err(key, v, "expected an integer"))
}

fn boolean(key: &str, v: &str) -> Result<bool, BehaviourError> {
    match v.trim() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(err(key, v, "expected true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Defaults {
        Defaults {
            startup_delay: Duration::ZERO,
            init_duration: Duration::from_millis(100),
            log_interval: Duration::from_secs(1),
        }
    }

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (format!("{PREFIX}{k}"), v.to_string()))
            .collect()
    }

    #[test]
    fn app_container_defaults_run_forever() {
        let b = container_behaviour(&BTreeMap::new(), "app", false, &defaults()).unwrap();
        assert_eq!(b.exit_after, None);
        assert_eq!(b.cpu_millicores, 10);
    }

    #[test]
    fn init_container_exits_after_default_duration_and_ignores_pod_wide_keys() {
        let a = ann(&[("exit-code", "3")]);
        let b = container_behaviour(&a, "setup", true, &defaults()).unwrap();
        assert_eq!(b.exit_after, Some(Duration::from_millis(100)));
        assert_eq!(b.exit_code, 0);
    }

    #[test]
    fn container_specific_key_wins_over_pod_wide() {
        let a = ann(&[
            ("exit-code", "3"),
            ("app.exit-code", "7"),
            ("exit-after", "2s"),
        ]);
        let b = container_behaviour(&a, "app", false, &defaults()).unwrap();
        assert_eq!(b.exit_code, 7);
        assert_eq!(b.exit_after, Some(Duration::from_secs(2)));
        let other = container_behaviour(&a, "sidecar", false, &defaults()).unwrap();
        assert_eq!(other.exit_code, 3);
    }

    #[test]
    fn crash_loop_is_a_shorthand() {
        let b = container_behaviour(&ann(&[("crash-loop", "true")]), "app", false, &defaults())
            .unwrap();
        assert_eq!(
            (b.exit_after, b.exit_code),
            (Some(Duration::from_secs(1)), 1)
        );
    }

    #[test]
    fn bad_values_name_the_annotation() {
        let e = container_behaviour(&ann(&[("exit-code", "three")]), "app", false, &defaults())
            .unwrap_err();
        assert_eq!(e.key, "mock.vk.io/exit-code");
        assert!(e.to_string().contains("expected an integer"));
        let e = pod_behaviour(&ann(&[("startup-delay", "soon")]), &defaults()).unwrap_err();
        assert!(e.to_string().contains("mock.vk.io/startup-delay"));
    }
}
