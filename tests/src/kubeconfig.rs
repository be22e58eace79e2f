//! Kubeconfig files for the components, the admin and test identities.
//!
//! Files are written as JSON (a subset of YAML, so kubectl, client-go and
//! kube-rs all read them) with the certificates embedded, so a kubeconfig can
//! be copied anywhere on the machine and still work.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::error::{Error, Result};
use crate::pki::{CertFiles, IssuedCert, read_file, write_file};

/// The context, cluster and user name used in every generated kubeconfig.
pub const CONTEXT_NAME: &str = "vk-tests";

/// Renders a kubeconfig for `server` trusting `ca_pem`, authenticating with
/// the given client certificate.
pub fn render(server: &str, ca_pem: &str, client: &IssuedCert, user: &str) -> String {
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": CONTEXT_NAME,
            "cluster": {
                "server": server,
                "certificate-authority-data": STANDARD.encode(ca_pem),
            },
        }],
        "users": [{
            "name": user,
            "user": {
                "client-certificate-data": STANDARD.encode(&client.cert_pem),
                "client-key-data": STANDARD.encode(&client.key_pem),
            },
        }],
        "contexts": [{
            "name": CONTEXT_NAME,
            "context": { "cluster": CONTEXT_NAME, "user": user },
        }],
        "current-context": CONTEXT_NAME,
        "preferences": {},
    });
    // `Value`'s Display cannot fail; pretty output keeps the file readable.
    format!("{doc:#}\n")
}

/// Renders a kubeconfig for `server` trusting `ca_pem`, with no credentials
/// (anonymous requests, e.g. health checks).
pub fn render_anonymous(server: &str, ca_pem: &str) -> String {
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": CONTEXT_NAME,
            "cluster": {
                "server": server,
                "certificate-authority-data": STANDARD.encode(ca_pem),
            },
        }],
        "users": [{ "name": "anonymous", "user": {} }],
        "contexts": [{
            "name": CONTEXT_NAME,
            "context": { "cluster": CONTEXT_NAME, "user": "anonymous" },
        }],
        "current-context": CONTEXT_NAME,
    });
    format!("{doc:#}\n")
}

/// Writes a kubeconfig (mode 0600) for a certificate already on disk.
pub fn write_from_files(
    path: &Path,
    server: &str,
    ca_cert: &Path,
    client: &CertFiles,
    user: &str,
) -> Result<()> {
    let ca_pem = read_file(ca_cert)?;
    let issued = IssuedCert {
        cert_pem: read_file(&client.cert)?,
        key_pem: read_file(&client.key)?,
    };
    write(path, server, &ca_pem, &issued, user)
}

/// Writes a kubeconfig (mode 0600).
pub fn write(
    path: &Path,
    server: &str,
    ca_pem: &str,
    client: &IssuedCert,
    user: &str,
) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("creating", parent, e))?;
    }
    write_file(path, &render(server, ca_pem, client, user), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_kubeconfig_is_readable_by_kube_rs() {
        let client = IssuedCert {
            cert_pem: "CERT".into(),
            key_pem: "KEY".into(),
        };
        let text = render("https://127.0.0.1:6443", "CA", &client, "system:node:n0");
        let parsed = kube::config::Kubeconfig::from_yaml(&text).expect("parse");
        assert_eq!(parsed.current_context.as_deref(), Some(CONTEXT_NAME));
        let cluster = parsed.clusters[0].cluster.as_ref().expect("cluster");
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        assert_eq!(parsed.auth_infos[0].name, "system:node:n0");
    }
}
