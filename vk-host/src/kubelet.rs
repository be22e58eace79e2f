//! Adapts vk-host's store and provider to the kubelet API: the pod cache serves as
//! [`kubelet_api::BoundPods`], sharing each cached pod (an `Arc`, its JSON not copied).

use std::sync::Arc;

use crate::{
    kubelet_api::{BoundPod, BoundPods},
    store::cache::{CachedPod, PodCache},
};

impl BoundPod for CachedPod {
    fn uid(&self) -> &str {
        CachedPod::uid(self)
    }

    fn namespace(&self) -> &str {
        CachedPod::namespace(self)
    }

    fn name(&self) -> &str {
        CachedPod::name(self)
    }

    fn json(&self) -> &[u8] {
        &self.raw
    }
}

impl BoundPods for PodCache {
    fn find(&self, namespace: &str, name: &str) -> Option<Arc<dyn BoundPod>> {
        PodCache::find(self, namespace, name).map(|pod| pod as Arc<dyn BoundPod>)
    }

    fn all(&self) -> Vec<Arc<dyn BoundPod>> {
        PodCache::all(self)
            .into_iter()
            .map(|pod| pod as Arc<dyn BoundPod>)
            .collect()
    }
}

/// The kubelet API's view of `cache`.
pub fn bound_pods(cache: &PodCache) -> Arc<dyn BoundPods> {
    Arc::new(cache.clone())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;

    use super::*;

    fn pod(namespace: &str, name: &str, uid: &str) -> CachedPod {
        let mut pod = Pod::default();
        pod.metadata.namespace = Some(namespace.into());
        pod.metadata.name = Some(name.into());
        pod.metadata.uid = Some(uid.into());
        CachedPod::from_pod(&pod).expect("cached")
    }

    #[test]
    fn the_cache_serves_bound_pods_without_copying_them() {
        let cache = PodCache::default();
        cache.insert(pod("ns", "a", "u1"));
        cache.insert(pod("ns", "b", "u2"));
        let pods = bound_pods(&cache);
        let found = pods.find("ns", "a").expect("found");
        assert_eq!(
            (found.uid(), found.namespace(), found.name()),
            ("u1", "ns", "a")
        );
        let cached = cache.get("u1").expect("cached");
        assert_eq!(
            found.json().as_ptr(),
            cached.raw.as_ptr(),
            "shared, not copied"
        );
        assert!(pods.find("ns", "c").is_none());
        let mut uids: Vec<String> = pods.all().iter().map(|p| p.uid().to_string()).collect();
        uids.sort();
        assert_eq!(uids, ["u1", "u2"]);
    }
}
