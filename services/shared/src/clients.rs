//! AWS client setup, done once per process at init (never per message).
//!
//! `aws_config` reads region, credentials and `AWS_ENDPOINT_URL` from the environment, which is
//! how the local stack points the very same code at the emulator.
//!
//! # One HTTP client, root certificates read once (a cold-start cost)
//!
//! Every SDK client a function makes (the purchase worker makes seven) used to cost a full TLS
//! set-up at init: the SDK's default HTTP client builds (and throws away) a connector, with a
//! root store parsed from every root certificate, each time a client is constructed
//! (`aws-smithy-http-client` 1.5, `HttpClient::validate_base_client_config`: "Initialize the TCP
//! connector at this point so that native certs load at client initialization time"), and its
//! first load of the platform's roots (`rustls-native-certs` 0.8, `load_native_certs`) reads the
//! CA bundle *and* every file of the CA directory (on Debian ~150 certificates and ~150 hashed
//! links: some 300 `stat`s and `open`s). Here:
//! - the roots come from the platform's single CA bundle file, read and parsed once per process
//!   ([`roots`]): `SSL_CERT_FILE` if set, else the first of the files OpenSSL itself probes
//!   (`openssl-probe` 0.2, `CERTIFICATE_FILE_NAMES`: `/etc/ssl/certs/ca-certificates.crt` on
//!   Debian/Ubuntu, `/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem` or
//!   `/etc/pki/tls/certs/ca-bundle.crt` on the RHEL family, Amazon Linux included, which Lambda's
//!   `provided.al2023` runtime is; not checked on Lambda itself from here). The bundle and the hashed directory are two
//!   views of the same trust store on these systems (`update-ca-certificates(8)`,
//!   `update-ca-trust(8)`); a root placed only in the directory is not read. With
//!   `SSL_CERT_DIR` set, with no bundle found, or a bundle without a certificate, the platform
//!   loader is used as before;
//! - every SDK client shares one HTTP client ([`http_client`]) that sets up TLS once, when the
//!   first request needs a connection, from those roots (the SDK built that connector at the
//!   first request before too; what is gone is the throw-away one per client);
//! - the OTLP trace exporter's own client (`crate::otlp`) verifies with the same roots.
//!
//! What TLS checks is unchanged: rustls with aws-lc, the SDK's connector (timeouts, proxy from
//! the environment), the same platform roots, every certificate chain verified to one of them.

pub use aws_config::SdkConfig;

use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector};
use aws_smithy_runtime_api::client::runtime_components::{RuntimeComponents, RuntimeComponentsBuilder};
use aws_smithy_types::config_bag::ConfigBag;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The SDK configuration every function builds its clients from, with [`http_client`].
pub async fn load() -> SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http_client()).load().await
}

/// The CA bundle files OpenSSL probes, in its order (`openssl-probe` 0.2.2,
/// `CERTIFICATE_FILE_NAMES` for Linux).
pub const CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",                // Debian, Ubuntu, Gentoo
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // CentOS, RHEL 7
    "/etc/pki/tls/certs/ca-bundle.crt",                  // Fedora, RHEL 6
    "/etc/ssl/ca-bundle.pem",                            // OpenSUSE
    "/etc/pki/tls/cacert.pem",                           // OpenELEC
    "/etc/ssl/cert.pem",                                 // Alpine Linux
];

/// The root certificates read from one CA bundle.
#[derive(Debug)]
pub struct Roots {
    /// The file they were read from.
    pub bundle: PathBuf,
    /// The certificates rustls accepts as trust anchors (DER), in the file's order.
    pub certificates: Vec<CertificateDer<'static>>,
    /// The same certificates as PEM (what the SDK's trust store takes).
    pem: Vec<u8>,
}

/// The process's root certificates from a single CA bundle (see the module docs), read and
/// parsed at the first call; `None` when the platform loader is to be used instead
/// (`SSL_CERT_DIR` set, no bundle found, or no usable certificate in it).
pub fn roots() -> Option<&'static Roots> {
    static ROOTS: OnceLock<Option<Roots>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let bundle = bundle_path(std::env::var_os("SSL_CERT_FILE").map(PathBuf::from), std::env::var_os("SSL_CERT_DIR").is_some(), |p| p.is_file())?;
            read_roots(&bundle)
        })
        .as_ref()
}

/// Which bundle to read: `SSL_CERT_FILE`, else the first of [`CA_BUNDLES`] that `exists`;
/// none with `SSL_CERT_DIR` set (the platform loader reads that directory).
pub fn bundle_path(cert_file: Option<PathBuf>, cert_dir_set: bool, exists: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    if cert_dir_set {
        return None;
    }
    if let Some(file) = cert_file.filter(|f| !f.as_os_str().is_empty()) {
        return Some(file);
    }
    CA_BUNDLES.iter().map(PathBuf::from).find(|p| exists(p))
}

/// The certificates of the PEM file `bundle` that rustls accepts as trust anchors; `None` if
/// it cannot be read or holds none.
pub fn read_roots(bundle: &Path) -> Option<Roots> {
    let pem = std::fs::read(bundle).ok()?;
    let mut certificates = Vec::new();
    let mut skipped = 0usize;
    for der in CertificateDer::pem_slice_iter(&pem) {
        let Ok(der) = der else {
            skipped += 1;
            continue;
        };
        // The SDK's trust store panics on a certificate it cannot parse as a trust anchor
        // (`aws-smithy-http-client` 1.5, `rustls_root_certs`: "cert parsable"); the platform
        // loader skips those, and so is done here.
        if rustls::RootCertStore::empty().add(der.clone()).is_ok() {
            certificates.push(der);
        } else {
            skipped += 1;
        }
    }
    if certificates.is_empty() {
        return None;
    }
    // Re-encoded only when something was left out: the SDK is given exactly what passed.
    let pem = if skipped == 0 { pem } else { to_pem(&certificates) };
    Some(Roots { bundle: bundle.to_path_buf(), certificates, pem })
}

fn to_pem(certificates: &[CertificateDer<'_>]) -> Vec<u8> {
    use base64::Engine;
    let mut pem = String::new();
    for der in certificates {
        let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem.into_bytes()
}

/// The HTTP client all of a process's SDK clients share: the SDK's own hyper/rustls (aws-lc)
/// connector, as its default client builds it (`aws-smithy-runtime` 1.16,
/// `default_https_client`: proxy settings from the environment), trusting [`roots`] (or the
/// platform's roots when that is `None`), and setting TLS up once rather than once per client.
pub fn http_client() -> SharedHttpClient {
    static CLIENT: OnceLock<SharedHttpClient> = OnceLock::new();
    CLIENT.get_or_init(|| client_for(roots())).clone()
}

/// The client trusting `roots`, or the platform loader's roots with `None`.
fn client_for(roots: Option<&Roots>) -> SharedHttpClient {
    let trust = match roots {
        Some(roots) => TrustStore::empty().with_native_roots(false).with_pem_certificate(roots.pem.clone()),
        None => TrustStore::default(),
    };
    let context = TlsContext::builder().with_trust_store(trust).build().expect("a trust store is a valid TLS context");
    let inner = aws_smithy_http_client::Builder::new().build_with_connector_fn(move |settings, components| {
        let mut builder = aws_smithy_http_client::Connector::builder()
            .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
            .tls_context(context.clone());
        builder.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            builder.set_sleep_impl(components.sleep_impl());
        }
        builder.set_proxy_config(Some(aws_smithy_http_client::proxy::ProxyConfig::from_env()));
        builder.build()
    });
    SharedHttpClient::new(SetUpOnce { inner, platform_roots: roots.is_none(), validated: OnceLock::new() })
}

/// The SDK's HTTP client, whose client-construction hook (which builds a throw-away connector,
/// root store included, to load the platform's roots early) runs once per process instead of
/// once per SDK client.
#[derive(Debug)]
struct SetUpOnce {
    inner: SharedHttpClient,
    /// The platform loader reads the roots (in the SDK's hook, at init).
    platform_roots: bool,
    validated: OnceLock<()>,
}

impl HttpClient for SetUpOnce {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        // The inner client keeps one connector per settings (timeouts), made at first use.
        self.inner.http_connector(settings, components)
    }

    fn validate_base_client_config(&self, components: &RuntimeComponentsBuilder, cfg: &ConfigBag) -> Result<(), BoxError> {
        if self.validated.get().is_some() {
            return Ok(());
        }
        if self.platform_roots {
            // The platform loader: have it read the roots now, at init, as the SDK does.
            self.inner.validate_base_client_config(components, cfg)?;
        }
        let _ = self.validated.set(());
        Ok(())
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.inner.connector_metadata()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_is_ssl_cert_file_else_the_first_probed_file_and_none_with_ssl_cert_dir() {
        let only = |path: &'static str| move |p: &Path| p == Path::new(path);
        assert_eq!(bundle_path(None, false, only("/etc/pki/tls/certs/ca-bundle.crt")), Some("/etc/pki/tls/certs/ca-bundle.crt".into()));
        assert_eq!(bundle_path(None, false, |_| true), Some("/etc/ssl/certs/ca-certificates.crt".into()));
        assert_eq!(bundle_path(Some("/x/roots.pem".into()), false, |_| false), Some("/x/roots.pem".into()));
        assert_eq!(bundle_path(Some("".into()), false, only("/etc/ssl/cert.pem")), Some("/etc/ssl/cert.pem".into()));
        assert_eq!(bundle_path(Some("/x/roots.pem".into()), true, |_| true), None);
        assert_eq!(bundle_path(None, false, |_| false), None);
    }

    /// This machine's bundle (the platform's, as on Lambda) gives a non-empty root store with
    /// the root AWS's endpoints chain to, and an SDK client on the shared HTTP client builds its
    /// TLS connector from it and makes an HTTPS connection attempt (to a loopback port that
    /// hangs up: no internet here), failing as a connection error, not a panic.
    #[tokio::test]
    async fn the_platform_bundle_gives_roots_and_the_client_connects_with_them() {
        // The probed bundle, whatever SSL_CERT_* this shell has.
        let bundle = bundle_path(None, false, |p| p.is_file()).expect("a CA bundle on this machine (the ca-certificates package)");
        let roots = read_roots(&bundle).expect("roots in the bundle");
        assert!(roots.certificates.len() > 50, "{} roots from {}", roots.certificates.len(), roots.bundle.display());
        let mut store = rustls::RootCertStore::empty();
        let (valid, invalid) = store.add_parsable_certificates(CertificateDer::pem_slice_iter(&roots.pem).map(Result::unwrap));
        assert_eq!((valid, invalid), (roots.certificates.len(), 0));
        // Amazon Root CA 1 (Amazon Trust Services), which AWS's service endpoints chain to.
        assert!(
            store.roots.iter().any(|anchor| String::from_utf8_lossy(anchor.subject.as_ref()).contains("Amazon Root CA 1")),
            "Amazon Root CA 1 is trusted"
        );

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hang_up = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            drop(socket);
        });
        let config = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(aws_credential_types::Credentials::for_tests()))
            .endpoint_url(format!("https://127.0.0.1:{port}"))
            .http_client(client_for(Some(&roots)))
            .sleep_impl(aws_smithy_async::rt::sleep::default_async_sleep().unwrap())
            .time_source(aws_smithy_async::time::SystemTimeSource::new())
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        let error = dynamodb.list_tables().send().await.expect_err("the port hangs up");
        assert!(matches!(error, aws_sdk_dynamodb::error::SdkError::DispatchFailure(_)), "{error:?}");
        hang_up.await.unwrap();
    }

    #[test]
    fn an_unparsable_certificate_is_left_out_not_fatal() {
        let dir = std::env::temp_dir().join(format!("taskflow-roots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = std::fs::read(bundle_path(None, false, |p| p.is_file()).expect("a CA bundle")).unwrap();
        let first = CertificateDer::pem_slice_iter(&good).next().unwrap().unwrap();
        let mut mixed = to_pem(std::slice::from_ref(&first));
        mixed.extend_from_slice(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        let file = dir.join("mixed.pem");
        std::fs::write(&file, &mixed).unwrap();
        let read = read_roots(&file).expect("one good certificate");
        assert_eq!(read.certificates, vec![first.clone()]);
        assert_eq!(read.pem, to_pem(&[first]));
        std::fs::write(&file, b"not a certificate").unwrap();
        assert!(read_roots(&file).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
