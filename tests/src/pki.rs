//! The cluster's PKI, generated with rcgen: the three authorities (cluster CA,
//! front-proxy CA, kubelet-serving CA), the service-account key pair, every
//! component certificate, and on-demand issuing of virtual-node serving
//! certificates and client certificates.
//!
//! All keys are ECDSA P-256 in PKCS#8 PEM, which every Go component accepts.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Common name of the apiserver's client certificate towards kubelets.
pub const APISERVER_KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";
/// Common name of the aggregation-layer (front-proxy) client certificate.
pub const FRONT_PROXY_CLIENT_USER: &str = "front-proxy-client";
/// User name metrics-server authenticates as (to the apiserver and to kubelets).
pub const METRICS_SERVER_USER: &str = "vk:metrics-server";
/// The admin user (group `system:masters`).
pub const ADMIN_USER: &str = "admin";

/// Which extended key usage a leaf certificate carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// TLS server (`serverAuth`).
    Server,
    /// TLS client (`clientAuth`).
    Client,
}

/// What to put in a leaf certificate.
#[derive(Debug, Clone)]
pub struct CertSpec {
    /// Subject common name (the user name for client certificates).
    pub common_name: String,
    /// Subject organisations (the groups for client certificates).
    pub organizations: Vec<String>,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// IP subject alternative names.
    pub ip_addresses: Vec<IpAddr>,
    /// Server or client certificate.
    pub usage: Usage,
}

impl CertSpec {
    /// A client certificate for `user` in `groups`.
    pub fn client(user: &str, groups: &[&str]) -> Self {
        CertSpec {
            common_name: user.to_owned(),
            organizations: groups.iter().map(|g| (*g).to_owned()).collect(),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            usage: Usage::Client,
        }
    }

    /// A serving certificate for the given names and addresses.
    pub fn server(common_name: &str, dns_names: &[&str], ip_addresses: &[IpAddr]) -> Self {
        CertSpec {
            common_name: common_name.to_owned(),
            organizations: Vec::new(),
            dns_names: dns_names.iter().map(|d| (*d).to_owned()).collect(),
            ip_addresses: ip_addresses.to_vec(),
            usage: Usage::Server,
        }
    }
}

/// A freshly issued certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The PKCS#8 private key, PEM.
    pub key_pem: String,
}

/// Where a certificate and its key were written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertFiles {
    /// The certificate file.
    pub cert: PathBuf,
    /// The private key file (mode 0600).
    pub key: PathBuf,
}

impl IssuedCert {
    /// Writes `<dir>/<base>.crt` and `<dir>/<base>.key`.
    pub fn write(&self, dir: &Path, base: &str) -> Result<CertFiles> {
        let files = CertFiles {
            cert: dir.join(format!("{base}.crt")),
            key: dir.join(format!("{base}.key")),
        };
        write_file(&files.cert, &self.cert_pem, false)?;
        write_file(&files.key, &self.key_pem, true)?;
        Ok(files)
    }
}

/// A certificate authority that can issue leaf certificates.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Generates a new self-signed CA named `common_name`.
    pub fn generate(common_name: &str) -> Result<Self> {
        let key = KeyPair::generate().map_err(|e| Error::pki(format!("{common_name} key"), e))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(common_name, &["vk-tests"]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .map_err(|e| Error::pki(format!("{common_name} certificate"), e))?;
        Ok(CertificateAuthority {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA previously written with [`CertificateAuthority::write`].
    pub fn load(files: &CertFiles) -> Result<Self> {
        let cert_pem = read_file(&files.cert)?;
        let key_pem = read_file(&files.key)?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| Error::pki(format!("parsing {}", files.key.display()), e))?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)
            .map_err(|e| Error::pki(format!("parsing {}", files.cert.display()), e))?;
        Ok(CertificateAuthority { issuer, cert_pem })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Writes the CA certificate and key as `<dir>/<base>.crt` / `.key`.
    pub fn write(&self, dir: &Path, base: &str) -> Result<CertFiles> {
        IssuedCert {
            cert_pem: self.cert_pem.clone(),
            key_pem: self.issuer.key().serialize_pem(),
        }
        .write(dir, base)
    }

    /// Issues a leaf certificate with a new key.
    pub fn issue(&self, spec: &CertSpec) -> Result<IssuedCert> {
        let what = format!("certificate for {}", spec.common_name);
        let key = KeyPair::generate().map_err(|e| Error::pki(what.clone(), e))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(
            &spec.common_name,
            &spec
                .organizations
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![match spec.usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        for dns in &spec.dns_names {
            let name = dns
                .clone()
                .try_into()
                .map_err(|e| Error::pki(format!("{what}: DNS name {dns}"), e))?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        for ip in &spec.ip_addresses {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| Error::pki(what, e))?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn distinguished_name(common_name: &str, organizations: &[&str]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for org in organizations {
        dn.push(DnType::OrganizationName, *org);
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Paths of every PKI file in a run folder's `pki/` directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PkiPaths {
    /// The `pki/` directory.
    pub dir: PathBuf,
    /// Cluster CA: the apiserver's `--client-ca-file`; signs every client cert.
    /// vk-host verifies client certificates at the kubelet port with it.
    pub ca: CertFiles,
    /// Front-proxy (aggregation layer) CA.
    pub front_proxy_ca: CertFiles,
    /// Kubelet-serving CA: signs virtual nodes' serving certificates; the
    /// apiserver and metrics-server verify kubelets with it.
    pub kubelet_ca: CertFiles,
    /// Service-account signing key (private, PKCS#8 PEM).
    pub service_account_key: PathBuf,
    /// Service-account verification key (public, PEM).
    pub service_account_pub: PathBuf,
    /// kube-apiserver serving certificate.
    pub apiserver: CertFiles,
    /// Admin client (CN=admin, O=system:masters).
    pub admin: CertFiles,
    /// kube-apiserver → kubelet client certificate.
    pub apiserver_kubelet_client: CertFiles,
    /// kube-controller-manager client certificate.
    pub controller_manager: CertFiles,
    /// kube-scheduler client certificate.
    pub scheduler: CertFiles,
    /// kube-controller-manager serving certificate (health port).
    pub controller_manager_serving: CertFiles,
    /// kube-scheduler serving certificate (health port).
    pub scheduler_serving: CertFiles,
    /// Front-proxy client certificate (aggregation layer).
    pub front_proxy_client: CertFiles,
    /// metrics-server serving certificate.
    pub metrics_server: CertFiles,
    /// metrics-server client certificate (to the apiserver and kubelets).
    pub metrics_server_client: CertFiles,
}

impl PkiPaths {
    /// The file layout under `dir`.
    pub fn new(dir: &Path) -> Self {
        let pair = |base: &str| CertFiles {
            cert: dir.join(format!("{base}.crt")),
            key: dir.join(format!("{base}.key")),
        };
        PkiPaths {
            dir: dir.to_path_buf(),
            ca: pair("ca"),
            front_proxy_ca: pair("front-proxy-ca"),
            kubelet_ca: pair("kubelet-ca"),
            service_account_key: dir.join("sa.key"),
            service_account_pub: dir.join("sa.pub"),
            apiserver: pair("apiserver"),
            admin: pair("admin"),
            apiserver_kubelet_client: pair("apiserver-kubelet-client"),
            controller_manager: pair("controller-manager"),
            scheduler: pair("scheduler"),
            controller_manager_serving: pair("controller-manager-serving"),
            scheduler_serving: pair("scheduler-serving"),
            front_proxy_client: pair("front-proxy-client"),
            metrics_server: pair("metrics-server"),
            metrics_server_client: pair("metrics-server-client"),
        }
    }
}

/// The authorities of a running cluster, able to issue more certificates.
#[derive(Debug)]
pub struct ClusterPki {
    /// Where everything is on disk.
    pub paths: PkiPaths,
    /// Cluster CA (client certificates).
    pub ca: CertificateAuthority,
    /// Kubelet-serving CA.
    pub kubelet_ca: CertificateAuthority,
}

impl ClusterPki {
    /// Generates the whole PKI into `dir` (created if needed).
    pub fn generate(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
        let paths = PkiPaths::new(dir);
        let loopback: IpAddr = IpAddr::from([127, 0, 0, 1]);
        let first_service_ip: IpAddr = IpAddr::from([10, 0, 0, 1]);

        let ca = CertificateAuthority::generate("vk-tests-cluster-ca")?;
        ca.write(dir, "ca")?;
        let front_proxy_ca = CertificateAuthority::generate("vk-tests-front-proxy-ca")?;
        front_proxy_ca.write(dir, "front-proxy-ca")?;
        let kubelet_ca = CertificateAuthority::generate("vk-tests-kubelet-serving-ca")?;
        kubelet_ca.write(dir, "kubelet-ca")?;

        let sa = KeyPair::generate().map_err(|e| Error::pki("service-account key", e))?;
        write_file(&paths.service_account_key, &sa.serialize_pem(), true)?;
        write_file(&paths.service_account_pub, &sa.public_key_pem(), false)?;

        ca.issue(&CertSpec::server(
            "kube-apiserver",
            &[
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
            &[loopback, first_service_ip],
        ))?
        .write(dir, "apiserver")?;
        ca.issue(&CertSpec::client(ADMIN_USER, &["system:masters"]))?
            .write(dir, "admin")?;
        ca.issue(&CertSpec::client(APISERVER_KUBELET_CLIENT_USER, &[]))?
            .write(dir, "apiserver-kubelet-client")?;
        ca.issue(&CertSpec::client("system:kube-controller-manager", &[]))?
            .write(dir, "controller-manager")?;
        ca.issue(&CertSpec::client("system:kube-scheduler", &[]))?
            .write(dir, "scheduler")?;
        for (name, base) in [
            ("kube-controller-manager", "controller-manager-serving"),
            ("kube-scheduler", "scheduler-serving"),
        ] {
            ca.issue(&CertSpec::server(name, &["localhost"], &[loopback]))?
                .write(dir, base)?;
        }
        front_proxy_ca
            .issue(&CertSpec::client(FRONT_PROXY_CLIENT_USER, &[]))?
            .write(dir, "front-proxy-client")?;
        ca.issue(&CertSpec::server(
            "metrics-server",
            &[
                "localhost",
                "metrics-server",
                "metrics-server.kube-system",
                "metrics-server.kube-system.svc",
            ],
            &[loopback],
        ))?
        .write(dir, "metrics-server")?;
        ca.issue(&CertSpec::client(METRICS_SERVER_USER, &[]))?
            .write(dir, "metrics-server-client")?;

        Ok(ClusterPki {
            paths,
            ca,
            kubelet_ca,
        })
    }

    /// Loads the authorities of a PKI generated earlier into `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let paths = PkiPaths::new(dir);
        Ok(ClusterPki {
            ca: CertificateAuthority::load(&paths.ca)?,
            kubelet_ca: CertificateAuthority::load(&paths.kubelet_ca)?,
            paths,
        })
    }

    /// A virtual node's kubelet serving certificate: CN=`system:node:<node>`,
    /// O=`system:nodes`, IP SAN 127.0.0.1, EKU serverAuth, signed by the
    /// kubelet-serving CA (what the apiserver and metrics-server verify).
    pub fn kubelet_serving_cert(&self, node_name: &str) -> Result<IssuedCert> {
        self.kubelet_serving_cert_for(node_name, &[])
    }

    /// [`ClusterPki::kubelet_serving_cert`] with more IP SANs (a routable node address).
    pub fn kubelet_serving_cert_for(&self, node_name: &str, ips: &[IpAddr]) -> Result<IssuedCert> {
        let mut all = vec![IpAddr::from([127, 0, 0, 1])];
        all.extend_from_slice(ips);
        let mut spec = CertSpec::server(&format!("system:node:{node_name}"), &[], &all);
        spec.organizations = vec!["system:nodes".to_owned()];
        self.kubelet_ca.issue(&spec)
    }

    /// A client certificate for `user` in `groups`, signed by the cluster CA.
    pub fn client_cert(&self, user: &str, groups: &[&str]) -> Result<IssuedCert> {
        self.ca.issue(&CertSpec::client(user, groups))
    }
}

/// Writes `contents` to `path`, with mode 0600 when `private`.
pub(crate) fn write_file(path: &Path, contents: &str, private: bool) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = fs::OpenOptions::new();
    options
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 });
    let mut file = options
        .open(path)
        .map_err(|e| Error::io("creating", path, e))?;
    file.write_all(contents.as_bytes())
        .map_err(|e| Error::io("writing", path, e))
}

pub(crate) fn read_file(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| Error::io("reading", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
    use webpki::{EndEntityCert, KeyUsage, anchor_from_trusted_cert};

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM certificate")
    }

    fn verify(ca_pem: &str, leaf_pem: &str, usage: KeyUsage) -> Result<(), webpki::Error> {
        let ca = der(ca_pem);
        let anchor = anchor_from_trusted_cert(&ca)?;
        let leaf = der(leaf_pem);
        let ee = EndEntityCert::try_from(&leaf)?;
        ee.verify_for_usage(
            &[webpki::ring::ECDSA_P256_SHA256],
            &[anchor],
            &[],
            UnixTime::now(),
            usage,
            None,
            None,
        )
        .map(|_| ())
    }

    fn subject(pem: &str) -> (String, Vec<String>) {
        let der = der(pem);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("X.509");
        let cn = cert
            .subject()
            .iter_common_name()
            .map(|a| a.as_str().expect("utf8").to_owned())
            .collect::<Vec<_>>()
            .join(",");
        let orgs = cert
            .subject()
            .iter_organization()
            .map(|a| a.as_str().expect("utf8").to_owned())
            .collect();
        (cn, orgs)
    }

    #[test]
    fn generated_pki_chains_verify() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = ClusterPki::generate(dir.path()).expect("generate");
        let p = &pki.paths;
        let read = |path: &Path| std::fs::read_to_string(path).expect("read");
        let ca = read(&p.ca.cert);

        let apiserver = read(&p.apiserver.cert);
        verify(&ca, &apiserver, KeyUsage::server_auth()).expect("apiserver chain");
        let ee_der = der(&apiserver);
        let ee = EndEntityCert::try_from(&ee_der).expect("parse");
        for name in [
            "127.0.0.1",
            "10.0.0.1",
            "localhost",
            "kubernetes.default.svc",
        ] {
            ee.verify_is_valid_for_subject_name(&ServerName::try_from(name).expect("name"))
                .unwrap_or_else(|e| panic!("apiserver cert not valid for {name}: {e}"));
        }
        // A client certificate must not pass as a server certificate.
        assert!(verify(&ca, &read(&p.admin.cert), KeyUsage::server_auth()).is_err());

        for (files, cn, orgs) in [
            (&p.admin, "admin", vec!["system:masters"]),
            (
                &p.apiserver_kubelet_client,
                APISERVER_KUBELET_CLIENT_USER,
                vec![],
            ),
            (
                &p.controller_manager,
                "system:kube-controller-manager",
                vec![],
            ),
            (&p.scheduler, "system:kube-scheduler", vec![]),
            (&p.metrics_server_client, METRICS_SERVER_USER, vec![]),
        ] {
            let pem = read(&files.cert);
            verify(&ca, &pem, KeyUsage::client_auth()).expect("client chain");
            assert_eq!(
                subject(&pem),
                (cn.to_owned(), orgs.into_iter().map(String::from).collect())
            );
        }
        verify(
            &read(&p.front_proxy_ca.cert),
            &read(&p.front_proxy_client.cert),
            KeyUsage::client_auth(),
        )
        .expect("front-proxy chain");
        // The front-proxy client is not trusted by the cluster CA.
        assert!(
            verify(
                &ca,
                &read(&p.front_proxy_client.cert),
                KeyUsage::client_auth()
            )
            .is_err()
        );
        for serving in [
            &p.metrics_server,
            &p.controller_manager_serving,
            &p.scheduler_serving,
        ] {
            verify(&ca, &read(&serving.cert), KeyUsage::server_auth()).expect("serving chain");
        }

        // Keys are private.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p.ca.key)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(read(&p.service_account_pub).contains("PUBLIC KEY"));
    }

    #[test]
    fn kubelet_serving_cert_is_signed_by_the_kubelet_ca_for_loopback() {
        let dir = tempfile::tempdir().expect("tempdir");
        ClusterPki::generate(dir.path()).expect("generate");
        // Issue through a reloaded PKI, as an attached process would.
        let pki = ClusterPki::load(dir.path()).expect("load");
        let serving = pki.kubelet_serving_cert("vk-node-0").expect("issue");
        let kubelet_ca = pki.kubelet_ca.cert_pem().to_owned();
        verify(&kubelet_ca, &serving.cert_pem, KeyUsage::server_auth()).expect("chain");
        assert!(
            verify(
                pki.ca.cert_pem(),
                &serving.cert_pem,
                KeyUsage::server_auth()
            )
            .is_err()
        );
        let leaf = der(&serving.cert_pem);
        let ee = EndEntityCert::try_from(&leaf).expect("parse");
        ee.verify_is_valid_for_subject_name(&ServerName::try_from("127.0.0.1").expect("ip"))
            .expect("IP SAN 127.0.0.1");
        assert_eq!(
            subject(&serving.cert_pem),
            (
                "system:node:vk-node-0".to_owned(),
                vec!["system:nodes".to_owned()]
            )
        );
        assert!(serving.key_pem.contains("PRIVATE KEY"));

        let client = pki
            .client_cert("system:node:vk-node-0", &["system:nodes"])
            .expect("client");
        verify(pki.ca.cert_pem(), &client.cert_pem, KeyUsage::client_auth()).expect("client chain");
    }
}
