//! The state that the pod controller (`pods`) and the status writer (`status`) share, owned by
//! neither: the node's pods as Kubernetes has them
//! ([`cache`]), what the provider last reported about each ([`view`]), why vk-host refused a pod
//! ([`failures`]), and the two work queues ([`queue`]) named for the direction of data flow.
//! `pods` and `status` never call each other; they meet here.

pub mod cache;
pub mod failures;
pub mod queue;
pub mod view;

use cache::PodCache;
use failures::Failures;
use queue::Queue;
use view::ProviderView;

/// The shared state; cheap to clone (every part is shared).
#[derive(Clone, Default)]
pub struct Store {
    /// The node's pods, from the API server's watch.
    pub pods: PodCache,
    /// The provider's latest status per pod, and whether its snapshot is complete.
    pub view: ProviderView,
    /// Failures the status writer renders.
    pub failures: Failures,
    /// Pods whose desired state may need provider calls: the pod controller's work (queued by
    /// the pod watch, by provider events that can finish a deletion, and by resyncs).
    pub sync_to_provider: Queue,
    /// Pods whose status may need writing: the status writer's work (queued by provider events
    /// and by recorded failures).
    pub status_to_kubernetes: Queue,
}
