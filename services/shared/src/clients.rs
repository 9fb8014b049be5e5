//! AWS client setup, done once per process at init (never per message).
//!
//! `aws_config` reads region, credentials and `AWS_ENDPOINT_URL` from the environment, which is
//! how the local stack points the very same code at the emulator.
//!
//! # One HTTP client, root certificates compiled in (a cold-start cost)
//!
//! Every SDK client a function makes (the purchase worker made six) used to cost a full TLS
//! set-up at init: the SDK's default HTTP client builds (and throws away) a connector, with a
//! root store parsed from every root certificate, each time a client is constructed
//! (`aws-smithy-http-client` 1.5, `HttpClient::validate_base_client_config`: "Initialize the TCP
//! connector at this point so that native certs load at client initialization time"), and its
//! first load of the platform's roots (`rustls-native-certs` 0.8, `load_native_certs`) reads the
//! CA bundle *and* every file of the CA directory (on Debian ~150 certificates and ~150 hashed
//! links: some 300 `stat`s and `open`s). Then the platform's bundle was read and every root in
//! it checked at init, and the SDK parsed the same roots again when it built its connector. Here:
//! - the roots are, by default, Mozilla's root program's set compiled into the binary
//!   (`webpki-root-certs`, the certificates `webpki-roots` is made from; [`Roots::mozilla`]):
//!   nothing is read, checked or encoded at init (`build.rs` writes the PEM; a unit test checks
//!   that rustls takes every one of them as a trust anchor). That set is where the platforms' bundles come from (Debian's
//!   and Amazon Linux's `ca-certificates` are Mozilla's list) and it holds Amazon Root CA 1–4,
//!   which AWS's service endpoints chain to (tested). A newer Mozilla list arrives with a
//!   dependency update and a rebuild, not with the platform's package;
//! - `SSL_CERT_FILE` set: that PEM file, read once per process, each root checked
//!   ([`read_roots`]); `SSL_CERT_DIR` set: the platform loader, as the SDK does by default;
//! - every SDK client shares one HTTP client ([`http_client`]) that sets up TLS once, when the
//!   first request needs a connection, from those roots (the SDK built that connector at the
//!   first request before too; what is gone is the throw-away one per client);
//! - the OTLP trace exporter's own client (`crate::otlp`) verifies with the same roots.
//!
//! What TLS checks is unchanged: rustls with aws-lc, the SDK's connector (timeouts, proxy from
//! the environment), every certificate chain verified to one of the trusted roots.

pub use aws_config::SdkConfig;

use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector};
use aws_smithy_runtime_api::client::runtime_components::{RuntimeComponents, RuntimeComponentsBuilder};
use aws_smithy_types::config_bag::ConfigBag;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where adapters get their SDK clients: every adapter's constructor takes `&impl ClientSource`.
///
/// An [`SdkConfig`] builds a new client for each adapter (what tests pass); [`SharedClients`]
/// builds one per service for the whole process and hands out clones (what the Lambdas pass). A
/// client is an `Arc` around its configuration and runtime plugins, made to be cloned and used
/// from any task. Each one built costs ~80 000 instructions at init (its configuration layers,
/// runtime plugins and their validation: callgrind on the release purchase binary,
/// 2026-11-30), and a function built up to seven DynamoDB clients (the sweeper) where one serves.
/// Shared: DynamoDB, S3, Step Functions and SQS, the services a function has several adapters
/// of; an adapter of another service builds its client from [`ClientSource::sdk_config`]. A
/// client here has the configuration's settings only: an adapter that needs its own (S3
/// path-style addressing, say) builds its client from `sdk_config()` too.
pub trait ClientSource {
    /// The configuration clients are built from (for services without a method here).
    fn sdk_config(&self) -> &SdkConfig;
    fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(self.sdk_config())
    }
    fn s3(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::new(self.sdk_config())
    }
    fn sfn(&self) -> aws_sdk_sfn::Client {
        aws_sdk_sfn::Client::new(self.sdk_config())
    }
    fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(self.sdk_config())
    }
    /// An SQS client built on its first use ([`crate::on_first_use`]), for adapters only a
    /// failure path calls (the workers' redelivery, the publisher's dead-letter queue): a cold
    /// start that meets no failure never builds it. Its own client, from [`Self::sdk_config`].
    fn sqs_on_first_use(&self) -> crate::on_first_use::OnFirstUse<aws_sdk_sqs::Client> {
        let config = self.sdk_config().clone();
        crate::on_first_use::OnFirstUse::new(move || aws_sdk_sqs::Client::new(&config))
    }
}

impl ClientSource for SdkConfig {
    fn sdk_config(&self) -> &SdkConfig {
        self
    }
}

/// One client per service, built at the first adapter that asks for it (at init), then cloned.
#[derive(Debug)]
pub struct SharedClients {
    config: SdkConfig,
    dynamodb: OnceLock<aws_sdk_dynamodb::Client>,
    s3: OnceLock<aws_sdk_s3::Client>,
    sfn: OnceLock<aws_sdk_sfn::Client>,
    sqs: OnceLock<aws_sdk_sqs::Client>,
}

impl SharedClients {
    pub fn new(config: SdkConfig) -> Self {
        Self { config, dynamodb: OnceLock::new(), s3: OnceLock::new(), sfn: OnceLock::new(), sqs: OnceLock::new() }
    }
}

impl ClientSource for SharedClients {
    fn sdk_config(&self) -> &SdkConfig {
        &self.config
    }
    fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        self.dynamodb.get_or_init(|| aws_sdk_dynamodb::Client::new(&self.config)).clone()
    }
    fn s3(&self) -> aws_sdk_s3::Client {
        self.s3.get_or_init(|| aws_sdk_s3::Client::new(&self.config)).clone()
    }
    fn sfn(&self) -> aws_sdk_sfn::Client {
        self.sfn.get_or_init(|| aws_sdk_sfn::Client::new(&self.config)).clone()
    }
    fn sqs(&self) -> aws_sdk_sqs::Client {
        self.sqs.get_or_init(|| aws_sdk_sqs::Client::new(&self.config)).clone()
    }
}

/// The process's clients: [`load`]'s configuration, one client per service ([`SharedClients`]).
pub async fn shared() -> SharedClients {
    SharedClients::new(load().await)
}

/// The SDK configuration every function builds its clients from, with [`http_client`].
///
/// `aws_config`'s default loader, given the region and credentials providers its default chains
/// would pick when the environment holds both (as Lambda's does, and the local host's): the
/// environment providers, the first link of each chain (`aws-config` 1.13, `default_provider`:
/// region env → profile → IMDS; credentials env → profile → web identity → ECS → IMDS). The
/// result is the same; what is saved at init is building the chains' other links (their IMDS
/// and container clients), ~0.2 ms of a cold start. Everything else (endpoint URL, retry,
/// timeouts, per-service settings) is the loader's as before; without both in the
/// environment, the full chains are used.
pub async fn load() -> SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http_client());
    if env_region_and_credentials(|name| std::env::var(name).ok()) {
        loader = loader
            .region(aws_config::environment::EnvironmentVariableRegionProvider::new())
            .credentials_provider(aws_config::environment::EnvironmentVariableCredentialsProvider::new());
    }
    loader.load().await
}

/// Whether the environment's region and credentials providers find both (what they read:
/// `AWS_REGION` or `AWS_DEFAULT_REGION`; `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` or
/// `SECRET_ACCESS_KEY`, each non-empty), so that the default chains would stop at them.
pub fn env_region_and_credentials(var: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
    (set("AWS_REGION") || set("AWS_DEFAULT_REGION")) && set("AWS_ACCESS_KEY_ID") && (set("AWS_SECRET_ACCESS_KEY") || set("SECRET_ACCESS_KEY"))
}

/// Where the trusted roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootSource {
    /// Mozilla's set, compiled in (`webpki-root-certs`): the default.
    Mozilla,
    /// A PEM file (`SSL_CERT_FILE`).
    File(PathBuf),
    /// The platform loader (`rustls-native-certs`, as the SDK's default client): `SSL_CERT_DIR`.
    Platform,
}

impl RootSource {
    /// `SSL_CERT_DIR` set (non-empty): the platform loader; else `SSL_CERT_FILE` set
    /// (non-empty): that file; else the compiled-in set.
    pub fn from(cert_file: Option<PathBuf>, cert_dir: Option<PathBuf>) -> RootSource {
        if cert_dir.is_some_and(|d| !d.as_os_str().is_empty()) {
            return RootSource::Platform;
        }
        match cert_file.filter(|f| !f.as_os_str().is_empty()) {
            Some(file) => RootSource::File(file),
            None => RootSource::Mozilla,
        }
    }

    pub fn from_env() -> RootSource {
        RootSource::from(std::env::var_os("SSL_CERT_FILE").map(PathBuf::from), std::env::var_os("SSL_CERT_DIR").map(PathBuf::from))
    }
}

/// Mozilla's root certificates as PEM, written by `build.rs` from `webpki-root-certs`.
pub static MOZILLA_ROOTS_PEM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/mozilla-roots.pem"));

/// The trusted root certificates.
#[derive(Debug)]
pub struct Roots {
    /// Where they come from ([`RootSource::Mozilla`] or [`RootSource::File`]).
    pub source: RootSource,
    /// Every certificate rustls accepts as a trust anchor, as PEM (what the SDK's trust store
    /// takes), in order.
    pem: Cow<'static, [u8]>,
}

impl Roots {
    /// Mozilla's root program's set, compiled in (see the module docs): nothing to read, check
    /// or encode.
    pub fn mozilla() -> Roots {
        Roots { source: RootSource::Mozilla, pem: Cow::Borrowed(MOZILLA_ROOTS_PEM) }
    }

    /// The certificates (DER), decoded from the PEM: for a client other than the SDK's (the
    /// OTLP exporter's), when it connects.
    pub fn certificates(&self) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(&self.pem).filter_map(Result::ok).collect()
    }
}

/// The process's root certificates (see the module docs), made at the first call; `None` when
/// the platform loader is to be used instead (`SSL_CERT_DIR` set, or an `SSL_CERT_FILE` that
/// cannot be read or holds no usable certificate).
pub fn roots() -> Option<&'static Roots> {
    static ROOTS: OnceLock<Option<Roots>> = OnceLock::new();
    ROOTS
        .get_or_init(|| match RootSource::from_env() {
            RootSource::Mozilla => Some(Roots::mozilla()),
            RootSource::File(file) => read_roots(&file),
            RootSource::Platform => None,
        })
        .as_ref()
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
    Some(Roots { source: RootSource::File(bundle.to_path_buf()), pem: Cow::Owned(pem) })
}

include!("pem.rs");

fn to_pem(certificates: &[CertificateDer<'_>]) -> Vec<u8> {
    pem_of(certificates.iter().map(|der| der.as_ref())).into_bytes()
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
///
/// The TLS context is made where the connector is built (at the first request, or in the SDK's
/// validation hook with the platform's roots), not here: the SDK's `TrustStore` takes the PEM
/// as an owned `Vec`, and the connector takes the context by value, so a context made here
/// (at init) cost a copy of the PEM (178 673 bytes, 118 certificates) at init (~180 000
/// instructions and 14–20 page faults: callgrind and `perf stat` on the release binaries,
/// 2026-11-30) and a second copy (`context.clone()`) at each connector build. Now each
/// connector build makes the one copy it made before, and init none. The roots are the same: what the connector trusts is
/// unchanged (the connection tests below build their connector this way).
fn client_for(roots: Option<&'static Roots>) -> SharedHttpClient {
    let inner = aws_smithy_http_client::Builder::new().build_with_connector_fn(move |settings, components| {
        let mut builder = aws_smithy_http_client::Connector::builder()
            .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
            .tls_context(tls_context(roots));
        builder.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            builder.set_sleep_impl(components.sleep_impl());
        }
        builder.set_proxy_config(Some(aws_smithy_http_client::proxy::ProxyConfig::from_env()));
        builder.build()
    });
    SharedHttpClient::new(SetUpOnce { inner, platform_roots: roots.is_none(), validated: OnceLock::new() })
}

/// The TLS context trusting `roots` (the platform loader's roots with `None`).
fn tls_context(roots: Option<&Roots>) -> TlsContext {
    let trust = match roots {
        Some(roots) => TrustStore::empty().with_native_roots(false).with_pem_certificate(roots.pem.as_ref()),
        None => TrustStore::default(),
    };
    TlsContext::builder().with_trust_store(trust).build().expect("a trust store is a valid TLS context")
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

    /// The Debian/Ubuntu bundle, this machine's (the ca-certificates package).
    const PLATFORM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

    /// `SharedClients` hands out clones of one client per service; an `SdkConfig` builds a new
    /// client at every call (a client's configuration lives behind its `Arc`: one address).
    #[tokio::test]
    async fn shared_clients_are_one_per_service_and_a_config_builds_one_per_call() {
        let config = SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .http_client(http_client())
            .build();
        let shared = SharedClients::new(config.clone());
        assert!(std::ptr::eq(shared.dynamodb().config(), shared.dynamodb().config()));
        assert!(std::ptr::eq(shared.s3().config(), shared.s3().config()));
        assert!(std::ptr::eq(shared.sfn().config(), shared.sfn().config()));
        assert!(std::ptr::eq(shared.sqs().config(), shared.sqs().config()));
        let by_ref = &shared;
        assert!(std::ptr::eq(by_ref.dynamodb().config(), shared.dynamodb().config()), "through a reference too");
        assert!(!std::ptr::eq(config.dynamodb().config(), config.dynamodb().config()));
        assert_eq!(shared.dynamodb().config().region().map(|r| r.as_ref()), Some("eu-west-1"));
    }

    #[test]
    fn the_environment_providers_are_used_only_when_they_find_region_and_credentials() {
        let env = |pairs: &'static [(&'static str, &'static str)]| move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
        assert!(env_region_and_credentials(env(&[("AWS_REGION", "eu-west-1"), ("AWS_ACCESS_KEY_ID", "AKIA"), ("AWS_SECRET_ACCESS_KEY", "s")])));
        assert!(env_region_and_credentials(env(&[("AWS_DEFAULT_REGION", "eu-west-1"), ("AWS_ACCESS_KEY_ID", "AKIA"), ("SECRET_ACCESS_KEY", "s")])));
        assert!(!env_region_and_credentials(env(&[("AWS_ACCESS_KEY_ID", "AKIA"), ("AWS_SECRET_ACCESS_KEY", "s")])));
        assert!(!env_region_and_credentials(env(&[("AWS_REGION", "eu-west-1"), ("AWS_ACCESS_KEY_ID", "AKIA")])));
        assert!(!env_region_and_credentials(env(&[("AWS_REGION", "eu-west-1"), ("AWS_ACCESS_KEY_ID", " "), ("AWS_SECRET_ACCESS_KEY", "s")])));
        assert!(!env_region_and_credentials(env(&[])));
    }

    #[test]
    fn the_roots_are_mozillas_unless_ssl_cert_file_or_ssl_cert_dir_say_otherwise() {
        assert_eq!(RootSource::from(None, None), RootSource::Mozilla);
        assert_eq!(RootSource::from(Some("".into()), Some("".into())), RootSource::Mozilla);
        assert_eq!(RootSource::from(Some("/x/roots.pem".into()), None), RootSource::File("/x/roots.pem".into()));
        assert_eq!(RootSource::from(Some("/x/roots.pem".into()), Some("/etc/ssl/certs".into())), RootSource::Platform);
        assert_eq!(RootSource::from(None, Some("/etc/ssl/certs".into())), RootSource::Platform);
    }

    /// The subjects of the trust anchors rustls makes of `pem`, failing on any it cannot take
    /// (the SDK's trust store would panic on it: `aws-smithy-http-client` 1.5,
    /// `rustls_root_certs`, "cert parsable").
    fn anchors(pem: &[u8]) -> Vec<String> {
        let mut store = rustls::RootCertStore::empty();
        for der in CertificateDer::pem_slice_iter(pem) {
            store.add(der.expect("valid PEM")).expect("a trust anchor rustls takes");
        }
        store.roots.iter().map(|anchor| String::from_utf8_lossy(anchor.subject.as_ref()).into_owned()).collect()
    }

    /// The compiled-in PEM is exactly `webpki-root-certs`' certificates, in order, every one a
    /// trust anchor rustls takes (so the SDK's trust store cannot panic on it), and it holds the
    /// Amazon Trust Services roots that AWS's service endpoints chain to.
    #[test]
    fn the_compiled_in_roots_are_mozillas_set_and_hold_amazons_roots() {
        let roots = Roots::mozilla();
        assert_eq!(roots.certificates(), webpki_root_certs::TLS_SERVER_ROOT_CERTS.to_vec());
        let subjects = anchors(MOZILLA_ROOTS_PEM);
        assert_eq!(subjects.len(), webpki_root_certs::TLS_SERVER_ROOT_CERTS.len());
        assert!(subjects.len() > 100, "{} roots", subjects.len());
        for amazon in ["Amazon Root CA 1", "Amazon Root CA 2", "Amazon Root CA 3", "Amazon Root CA 4"] {
            assert!(subjects.iter().any(|s| s.contains(amazon)), "{amazon} is trusted");
        }
        // Starfield's G2 root, which Amazon Root CA 1–4 are cross-signed by (older chains).
        assert!(subjects.iter().any(|s| s.contains("Starfield Services Root Certificate Authority - G2")));
    }

    /// An SDK client on the shared HTTP client with `roots` builds its TLS connector from them
    /// and makes an HTTPS connection attempt (to a loopback port that hangs up: no internet
    /// here), failing as a connection error, not a panic.
    async fn connects_with(roots: &'static Roots) {
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
            .http_client(client_for(Some(roots)))
            .sleep_impl(aws_smithy_async::rt::sleep::default_async_sleep().unwrap())
            .time_source(aws_smithy_async::time::SystemTimeSource::new())
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        let error = dynamodb.list_tables().send().await.expect_err("the port hangs up");
        assert!(matches!(error, aws_sdk_dynamodb::error::SdkError::DispatchFailure(_)), "{error:?}");
        hang_up.await.unwrap();
    }

    #[tokio::test]
    async fn the_client_connects_with_the_compiled_in_roots() {
        connects_with(Box::leak(Box::new(Roots::mozilla()))).await;
    }

    /// `SSL_CERT_FILE`: this machine's bundle gives a root store with Amazon Root CA 1, and the
    /// client connects with it.
    #[tokio::test]
    async fn an_ssl_cert_file_gives_roots_and_the_client_connects_with_them() {
        let roots = read_roots(Path::new(PLATFORM_BUNDLE)).expect("roots in this machine's bundle (the ca-certificates package)");
        assert_eq!(roots.source, RootSource::File(PLATFORM_BUNDLE.into()));
        let subjects = anchors(&roots.pem);
        assert!(subjects.len() > 50, "{} roots", subjects.len());
        assert_eq!(roots.certificates().len(), subjects.len());
        assert!(subjects.iter().any(|s| s.contains("Amazon Root CA 1")), "Amazon Root CA 1 is trusted");
        connects_with(Box::leak(Box::new(roots))).await;
    }

    #[test]
    fn an_unparsable_certificate_is_left_out_not_fatal() {
        let dir = std::env::temp_dir().join(format!("taskflow-roots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = webpki_root_certs::TLS_SERVER_ROOT_CERTS[0].clone();
        let mut mixed = to_pem(std::slice::from_ref(&first));
        mixed.extend_from_slice(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        let file = dir.join("mixed.pem");
        std::fs::write(&file, &mixed).unwrap();
        let read = read_roots(&file).expect("one good certificate");
        assert_eq!(read.certificates(), vec![first.clone()]);
        assert_eq!(read.pem.as_ref(), to_pem(&[first]).as_slice());
        std::fs::write(&file, b"not a certificate").unwrap();
        assert!(read_roots(&file).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
