//! Pure: given a pod as Kubernetes has it (or its absence), what vk-host last sent the provider,
//! and what the provider reports, decide the one next action. All deletion rules live here.

use std::time::Duration;

use k8s_openapi::{api::core::v1::Pod, jiff::Timestamp};

use crate::store::view::Known;

/// What vk-host last did with a pod at the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sent {
    /// Hash of the fields an update compares (see [`spec_hash`]).
    pub hash: u64,
    /// DeletePod was called.
    pub delete_requested: bool,
    /// The provider refused the pod (INVALID_ARGUMENT); not retried until the spec changes.
    pub refused: bool,
    /// When the resolved data (service-account tokens) must be refreshed with an update.
    pub refresh_at: Option<std::time::Instant>,
}

/// The next thing to do for a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do.
    Nothing,
    /// Resolve and CreatePod.
    Create,
    /// The provider already runs the pod (e.g. vk-host restarted): remember it, do not create.
    Adopt,
    /// Resolve and UpdatePod.
    Update,
    /// The spec changed but the provider cannot update in place: tell the user once.
    UpdateUnsupported,
    /// DeletePod with this grace period.
    Delete {
        /// Seconds.
        grace: Option<i64>,
    },
    /// Remove the API object now (grace 0, UID precondition): the provider has stopped it.
    Remove,
    /// Check again later (waiting for the grace period to expire).
    Wait(Duration),
    /// The pod is gone from Kubernetes: DeletePod (grace 0) at the provider.
    Cleanup,
}

/// The inputs of a decision.
#[derive(Debug)]
pub struct Inputs<'a> {
    /// The pod in Kubernetes, if it still exists.
    pub pod: Option<&'a Pod>,
    /// What vk-host sent.
    pub sent: Option<&'a Sent>,
    /// What the provider reports.
    pub provider: Known,
    /// Current hash of the pod's comparable fields.
    pub hash: u64,
    /// The provider implements UpdatePod.
    pub can_update: bool,
    /// The resolved data is due for a refresh (tokens about to expire).
    pub refresh_due: bool,
    /// Now.
    pub now: Timestamp,
}

/// Decides the next action.
pub fn decide(i: &Inputs<'_>) -> Action {
    let Some(pod) = i.pod else {
        return match (i.sent, i.provider) {
            (Some(_), _) | (None, Known::Has { .. }) => Action::Cleanup,
            _ => Action::Nothing,
        };
    };
    if let Some(deletion) = pod.metadata.deletion_timestamp.as_ref() {
        let never_sent = i.sent.is_none() || i.sent.is_some_and(|s| s.refused);
        return match i.provider {
            Known::Gone => Action::Remove,
            Known::Has { terminated: true } => Action::Remove,
            Known::Unknown if never_sent => Action::Wait(Duration::from_secs(1)),
            _ if !i.sent.is_some_and(|s| s.delete_requested) => Action::Delete {
                grace: pod.metadata.deletion_grace_period_seconds,
            },
            _ => match deletion.0.duration_since(i.now).try_into() {
                Ok(left) if left > Duration::ZERO => Action::Wait(left),
                _ => Action::Remove,
            },
        };
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if kube_values::PodPhase::is_terminal_field(phase) {
        return Action::Nothing;
    }
    match i.sent {
        None => match i.provider {
            Known::Has { .. } => Action::Adopt,
            _ => Action::Create,
        },
        Some(s) if s.hash != i.hash => {
            if s.refused {
                Action::Create
            } else if i.can_update {
                Action::Update
            } else {
                Action::UpdateUnsupported
            }
        }
        Some(s) if i.refresh_due && i.can_update && !s.refused => Action::Update,
        Some(_) => Action::Nothing,
    }
}

/// Hash of the fields whose change is sent to the provider as an update: containers, init and
/// ephemeral containers, activeDeadlineSeconds, labels, annotations.
pub fn spec_hash(pod: &Pod) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let spec = pod.spec.as_ref();
    let comparable = serde_json::json!({
        "c": spec.map(|s| &s.containers),
        "i": spec.map(|s| &s.init_containers),
        "e": spec.map(|s| &s.ephemeral_containers),
        "a": spec.map(|s| &s.active_deadline_seconds),
        "l": &pod.metadata.labels,
        "n": &pod.metadata.annotations,
    });
    let mut h = DefaultHasher::new();
    comparable.to_string().hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::{
        api::core::v1::{PodSpec, PodStatus},
        apimachinery::pkg::apis::meta::v1::Time,
    };

    use super::*;

    fn now() -> Timestamp {
        Timestamp::new(1_800_000_000, 0).unwrap()
    }

    fn pod() -> Pod {
        Pod {
            spec: Some(PodSpec::default()),
            ..Default::default()
        }
    }

    fn deleting(in_secs: i64) -> Pod {
        let mut p = pod();
        p.metadata.deletion_timestamp =
            Some(Time(Timestamp::new(1_800_000_000 + in_secs, 0).unwrap()));
        p.metadata.deletion_grace_period_seconds = Some(30);
        p
    }

    fn inputs<'a>(pod: Option<&'a Pod>, sent: Option<&'a Sent>, provider: Known) -> Inputs<'a> {
        Inputs {
            pod,
            sent,
            provider,
            hash: 1,
            can_update: true,
            refresh_due: false,
            now: now(),
        }
    }

    const SENT: Sent = Sent {
        hash: 1,
        delete_requested: false,
        refused: false,
        refresh_at: None,
    };

    #[test]
    fn new_pod_is_created_or_adopted() {
        let p = pod();
        assert_eq!(decide(&inputs(Some(&p), None, Known::Gone)), Action::Create);
        assert_eq!(
            decide(&inputs(Some(&p), None, Known::Unknown)),
            Action::Create
        );
        assert_eq!(
            decide(&inputs(Some(&p), None, Known::Has { terminated: false })),
            Action::Adopt
        );
        assert_eq!(
            decide(&inputs(
                Some(&p),
                Some(&SENT),
                Known::Has { terminated: false }
            )),
            Action::Nothing
        );
    }

    #[test]
    fn spec_change_updates_when_supported() {
        let p = pod();
        let old = Sent { hash: 9, ..SENT };
        assert_eq!(
            decide(&inputs(
                Some(&p),
                Some(&old),
                Known::Has { terminated: false }
            )),
            Action::Update
        );
        let mut i = inputs(Some(&p), Some(&old), Known::Has { terminated: false });
        i.can_update = false;
        assert_eq!(decide(&i), Action::UpdateUnsupported);
        let refused = Sent {
            hash: 9,
            refused: true,
            ..SENT
        };
        assert_eq!(
            decide(&inputs(Some(&p), Some(&refused), Known::Gone)),
            Action::Create
        );
    }

    #[test]
    fn deletion_asks_the_provider_then_removes_as_soon_as_it_stopped() {
        let p = deleting(30);
        assert_eq!(
            decide(&inputs(
                Some(&p),
                Some(&SENT),
                Known::Has { terminated: false }
            )),
            Action::Delete { grace: Some(30) }
        );
        let asked = Sent {
            delete_requested: true,
            ..SENT
        };
        assert_eq!(
            decide(&inputs(
                Some(&p),
                Some(&asked),
                Known::Has { terminated: false }
            )),
            Action::Wait(Duration::from_secs(30))
        );
        assert_eq!(
            decide(&inputs(
                Some(&p),
                Some(&asked),
                Known::Has { terminated: true }
            )),
            Action::Remove
        );
        assert_eq!(
            decide(&inputs(Some(&p), Some(&asked), Known::Gone)),
            Action::Remove
        );
    }

    #[test]
    fn expiring_tokens_are_refreshed_with_an_update() {
        let p = pod();
        let mut i = inputs(Some(&p), Some(&SENT), Known::Has { terminated: false });
        i.refresh_due = true;
        assert_eq!(decide(&i), Action::Update);
        i.can_update = false;
        assert_eq!(decide(&i), Action::Nothing);
    }

    #[test]
    fn grace_expiry_forces_removal() {
        let p = deleting(-1);
        let asked = Sent {
            delete_requested: true,
            ..SENT
        };
        assert_eq!(
            decide(&inputs(
                Some(&p),
                Some(&asked),
                Known::Has { terminated: false }
            )),
            Action::Remove
        );
    }

    #[test]
    fn pod_never_sent_is_removed_once_provider_confirms_absence() {
        let p = deleting(30);
        assert_eq!(decide(&inputs(Some(&p), None, Known::Gone)), Action::Remove);
        assert!(matches!(
            decide(&inputs(Some(&p), None, Known::Unknown)),
            Action::Wait(_)
        ));
        // vk-host restarted: the provider still runs a pod it was never told about this time.
        assert_eq!(
            decide(&inputs(Some(&p), None, Known::Has { terminated: false })),
            Action::Delete { grace: Some(30) }
        );
    }

    #[test]
    fn gone_from_kubernetes_is_cleaned_up_at_the_provider() {
        assert_eq!(
            decide(&inputs(None, Some(&SENT), Known::Gone)),
            Action::Cleanup
        );
        assert_eq!(
            decide(&inputs(None, None, Known::Has { terminated: true })),
            Action::Cleanup
        );
        assert_eq!(decide(&inputs(None, None, Known::Gone)), Action::Nothing);
    }

    #[test]
    fn terminal_pods_are_left_alone() {
        let mut p = pod();
        p.status = Some(PodStatus {
            phase: Some("Succeeded".into()),
            ..Default::default()
        });
        assert_eq!(
            decide(&inputs(Some(&p), None, Known::Gone)),
            Action::Nothing
        );
    }

    #[test]
    fn hash_tracks_labels_not_status() {
        let mut a = pod();
        let h = spec_hash(&a);
        a.status = Some(PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        });
        assert_eq!(spec_hash(&a), h);
        a.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
        assert_ne!(spec_hash(&a), h);
    }
}
