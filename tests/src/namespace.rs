//! One fresh namespace per test: unique name, a label to find leftovers, and
//! a wait until the namespace can hold pods (its `default` ServiceAccount
//! exists).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use crate::bootstrap;
use crate::error::{Error, Result};

/// Label carried by every namespace the harness creates.
pub const TEST_NAMESPACE_LABEL: &str = "vk-tests/test-namespace";

/// How long to wait for the namespace's `default` ServiceAccount.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A namespace created for one test.
#[derive(Clone)]
pub struct TestNamespace {
    name: String,
    client: Client,
}

impl std::fmt::Debug for TestNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestNamespace")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TestNamespace {
    /// Creates `<prefix>-<unique suffix>` and waits until pods can be created
    /// in it.
    pub async fn create(client: &Client, prefix: &str) -> Result<Self> {
        let name = unique_name(prefix);
        let namespace: Namespace = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": name, "labels": { TEST_NAMESPACE_LABEL: "true" } },
        }))
        .map_err(|source| Error::Json {
            what: "building namespace",
            path: "(inline)".into(),
            source,
        })?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .map_err(|e| Error::kube(format!("creating namespace {name}"), e))?;
        let start = Instant::now();
        loop {
            match bootstrap::default_service_account_exists(client, &name).await {
                Ok(true) => break,
                Ok(false) if start.elapsed() < READY_TIMEOUT => {}
                Ok(false) => {
                    return Err(Error::Timeout {
                        what: format!("ServiceAccount {name}/default"),
                        waited: start.elapsed(),
                        last: "not created (is kube-controller-manager running?)".into(),
                    });
                }
                Err(e) => return Err(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tracing::debug!(namespace = %name, "test namespace ready");
        Ok(TestNamespace {
            name,
            client: client.clone(),
        })
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The admin client it was created with.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A namespaced API handle, e.g. `ns.api::<Pod>()`.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Deletes the namespace (without waiting for finalisation). Optional:
    /// the whole cluster is thrown away at the end of the test binary.
    pub async fn delete(self) -> Result<()> {
        Api::<Namespace>::all(self.client.clone())
            .delete(&self.name, &DeleteParams::background())
            .await
            .map_err(|e| Error::kube(format!("deleting namespace {}", self.name), e))?;
        Ok(())
    }
}

/// `<prefix>-<suffix>`: a DNS-1123 label, unique within and across processes.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let mut clean: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    clean = clean.trim_matches('-').to_owned();
    if clean.is_empty() {
        clean = "test".to_owned();
    }
    clean.truncate(40);
    let clean = clean.trim_end_matches('-');
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{clean}-{:x}{:x}{n}",
        std::process::id() % 0xffff,
        nanos % 0xfff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_are_dns_labels() {
        let a = unique_name("My_Test::case");
        let b = unique_name("My_Test::case");
        assert_ne!(a, b);
        for name in [a, b, unique_name(""), unique_name(&"x".repeat(100))] {
            assert!(name.len() <= 63, "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{name}"
            );
            assert!(!name.starts_with('-') && !name.ends_with('-'), "{name}");
        }
    }
}
