//! The only part of the resolver that calls the Kubernetes API: one `get` per referenced
//! ConfigMap / Secret / ServiceAccount in the pod's namespace (each at most once per resolve, a
//! few at a time), the Service list for service links, and TokenRequests. 404 means "not found";
//! any other failure (403 from the Node authorizer while its graph catches up, 5xx, network) is
//! kept as "unreadable" for the builders to turn into upstream's `FailedToRead…` reasons.

use std::collections::BTreeSet;

use futures::{StreamExt, stream};
use k8s_openapi::{
    NamespaceResourceScope,
    api::{
        authentication::v1::TokenRequest,
        core::v1::{ConfigMap, Secret, Service, ServiceAccount},
    },
};
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
};
use serde::de::DeserializeOwned;

use super::Objects;

/// Why an object could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// The error, for logs.
    pub message: String,
    /// The API answered 403.
    pub forbidden: bool,
}

/// The outcome of one `get`.
#[derive(Debug, Clone)]
pub(crate) enum Fetched<T> {
    /// The object.
    Found(T),
    /// 404.
    NotFound,
    /// Anything else.
    Unreadable(Failure),
}

impl<T> Fetched<T> {
    fn from_result(result: Result<Option<T>, kube::Error>) -> Self {
        match result {
            Ok(Some(obj)) => Fetched::Found(obj),
            Ok(None) => Fetched::NotFound,
            Err(kube::Error::Api(status)) => Fetched::Unreadable(Failure {
                message: format!("{} ({} {})", status.message, status.code, status.reason),
                forbidden: status.is_forbidden() || status.code == 403,
            }),
            Err(error) => Fetched::Unreadable(Failure {
                message: error.to_string(),
                forbidden: false,
            }),
        }
    }
}

/// Reads objects of one namespace.
pub(crate) struct Fetcher<'a> {
    client: &'a Client,
    namespace: &'a str,
    concurrency: usize,
}

impl<'a> Fetcher<'a> {
    /// A fetcher for `namespace`, with at most `concurrency` requests in flight.
    pub(crate) fn new(client: &'a Client, namespace: &'a str, concurrency: usize) -> Self {
        Fetcher {
            client,
            namespace,
            concurrency: concurrency.max(1),
        }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), self.namespace)
    }

    /// Reads the named ConfigMaps and Secrets.
    pub(crate) async fn objects(
        &self,
        config_maps: &BTreeSet<String>,
        secrets: &BTreeSet<String>,
    ) -> Objects {
        let (cms, ss) = futures::join!(
            get_all(self.api::<ConfigMap>(), config_maps, self.concurrency),
            get_all(self.api::<Secret>(), secrets, self.concurrency),
        );
        let mut objects = Objects::default();
        for (name, fetched) in cms {
            match fetched {
                Fetched::Found(cm) => {
                    objects.config_maps.insert(name, cm);
                }
                Fetched::NotFound => {}
                Fetched::Unreadable(f) => {
                    tracing::warn!(namespace = self.namespace, configmap = %name, error = %f.message, "cannot read ConfigMap");
                    objects.unreadable_config_maps.insert(name, f.message);
                }
            }
        }
        for (name, fetched) in ss {
            match fetched {
                Fetched::Found(s) => {
                    objects.secrets.insert(name, s);
                }
                Fetched::NotFound => {}
                Fetched::Unreadable(f) => {
                    tracing::warn!(namespace = self.namespace, secret = %name, error = %f.message, "cannot read Secret");
                    objects.unreadable_secrets.insert(name, f.message);
                }
            }
        }
        objects
    }

    /// Reads a ServiceAccount.
    pub(crate) async fn service_account(&self, name: &str) -> Fetched<ServiceAccount> {
        Fetched::from_result(self.api::<ServiceAccount>().get_opt(name).await)
    }

    /// Lists the Services of `namespace`, or only the one called `name`.
    pub(crate) async fn services(
        &self,
        namespace: &str,
        name: Option<&str>,
    ) -> Result<Vec<Service>, kube::Error> {
        let api: Api<Service> = Api::namespaced(self.client.clone(), namespace);
        let mut params = ListParams::default();
        if let Some(name) = name {
            params = params.fields(&format!("metadata.name={name}"));
        }
        match api.list(&params).await {
            Ok(list) => {
                tracing::debug!(namespace, count = list.items.len(), "listed services");
                Ok(list.items)
            }
            Err(error) => {
                tracing::warn!(namespace, %error, "cannot list services for service-link variables");
                Err(error)
            }
        }
    }

    /// Asks for a token of ServiceAccount `name`.
    pub(crate) async fn token(
        &self,
        name: &str,
        request: &TokenRequest,
    ) -> Result<TokenRequest, kube::Error> {
        let result = self
            .api::<ServiceAccount>()
            .create_token_request(name, &PostParams::default(), request)
            .await;
        if let Err(error) = &result {
            tracing::warn!(namespace = self.namespace, service_account = name, %error, "TokenRequest failed");
        }
        result
    }
}

/// `get`s every name, `concurrency` at a time.
async fn get_all<K>(
    api: Api<K>,
    names: &BTreeSet<String>,
    concurrency: usize,
) -> Vec<(String, Fetched<K>)>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    stream::iter(names.iter().cloned())
        .map(|name| {
            let api = api.clone();
            async move {
                let fetched = Fetched::from_result(api.get_opt(&name).await);
                (name, fetched)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_api_answers() {
        let status = |code: u16, reason: &str| {
            Err::<Option<()>, _>(kube::Error::Api(Box::new(kube::core::Status {
                code,
                reason: reason.into(),
                message: "nope".into(),
                ..Default::default()
            })))
        };
        assert!(matches!(
            Fetched::from_result(Ok(Some(1))),
            Fetched::Found(1)
        ));
        assert!(matches!(
            Fetched::<()>::from_result(Ok(None)),
            Fetched::NotFound
        ));
        let Fetched::Unreadable(f) = Fetched::from_result(status(403, "Forbidden")) else {
            panic!("403")
        };
        assert!(f.forbidden);
        assert_eq!(f.message, "nope (403 Forbidden)");
        let Fetched::Unreadable(f) = Fetched::from_result(status(500, "InternalError")) else {
            panic!("500")
        };
        assert!(!f.forbidden);
    }
}
