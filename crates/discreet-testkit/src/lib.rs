//! Shared test support: a harness that starts the gateway (with the embedded reference
//! store, or a store you started) on `127.0.0.1:0` from the shipped `config/discreet.yaml`
//! and `config/policy.yaml`, with a fresh development keyring, and builds requests the
//! way a real caller does (service-account token, purpose, consent tokens).
//!
//! The shipped files are copied byte for byte into a temporary directory, so tests run in
//! parallel and may rewrite the policy there (hot reload) without touching the repository.
#![forbid(unsafe_code)]

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use discreet_config::GatewayConfig;
use discreet_consent::keyring::DevKeyring;
use discreet_proto::profile::v1::profile_service_client::ProfileServiceClient;
pub use discreet_proxy::{Clock, Gateway, Options};
use discreet_telemetry::{AuditKey, receiver::OtlpReceiver};
/// An access span as the receiver got it (OTLP protobuf).
pub use opentelemetry_proto::tonic::trace::v1::Span;
pub use profile_store::{Dataset, PERSONAS, REFERENCE_NOW};
use tonic::{metadata::MetadataValue, transport::Channel};

/// The repository's `config/` directory.
#[must_use]
pub fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

/// A temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty directory under the system's temporary directory.
    pub fn new(label: &str) -> std::io::Result<TempDir> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "discreet-{label}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }

    /// Its path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running gateway and what a test needs to call it.
#[derive(Debug)]
pub struct Harness {
    gateway: Option<Gateway>,
    /// The development keyring the gateway trusts.
    pub keys: DevKeyring,
    /// The configuration the gateway runs with (paths resolved into [`Harness::dir`]).
    pub config: GatewayConfig,
    /// The OTLP/gRPC receiver the gateway exports access spans to.
    pub receiver: OtlpReceiver,
    dir: TempDir,
}

/// Why the harness could not start.
pub type HarnessError = Box<dyn std::error::Error + Send + Sync>;

impl Harness {
    /// The shipped configuration with the embedded store (a few hundred profiles), on a
    /// free port, with the clock fixed at the data set's reference instant.
    pub async fn start() -> Result<Harness, HarnessError> {
        Harness::start_with(|_| {}).await
    }

    /// As [`Harness::start`], after `adjust` changes the loaded configuration.
    pub async fn start_with(
        adjust: impl FnOnce(&mut GatewayConfig),
    ) -> Result<Harness, HarnessError> {
        let dir = TempDir::new("harness")?;
        for file in ["discreet.yaml", "policy.yaml"] {
            std::fs::copy(config_dir().join(file), dir.path().join(file))?;
        }
        let keys = DevKeyring::open_or_create(&dir.path().join("keys"))?;
        let mut config = GatewayConfig::load(&dir.path().join("discreet.yaml"))?;
        config.listen = "127.0.0.1:0".parse()?;
        config.upstream = discreet_config::Upstream::Embedded { profiles: 300 };
        // Audit spans go to a real OTLP/gRPC receiver on a free port; metrics too.
        let receiver = OtlpReceiver::start(tokio::net::TcpListener::bind("127.0.0.1:0").await?)?;
        config.audit.endpoint = receiver.endpoint();
        config.metrics = Some(discreet_config::MetricsConfig {
            listen: "127.0.0.1:0".parse()?,
        });
        adjust(&mut config);
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let options = Options {
            clock: Clock::Fixed(REFERENCE_NOW),
        };
        let gateway = Gateway::start(&config, listener, options).await?;
        Ok(Harness {
            gateway: Some(gateway),
            keys,
            config,
            receiver,
            dir,
        })
    }

    /// Where `/metrics` is served (when the configuration has a `metrics` section).
    #[must_use]
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.gateway.as_ref().and_then(Gateway::metrics_addr)
    }

    /// The audit key the gateway makes span pseudonyms with.
    pub fn audit_key(&self) -> Result<AuditKey, HarnessError> {
        Ok(AuditKey::from_file_contents(&std::fs::read(
            &self.config.audit.key_file,
        )?)?)
    }

    /// Waits (up to 10 s) until the receiver holds at least `n` access spans, and
    /// returns every span it holds.
    pub async fn wait_for_spans(&self, n: usize) -> Result<Vec<Span>, HarnessError> {
        for _ in 0..400 {
            let spans = self.receiver.spans();
            if spans.len() >= n {
                return Ok(spans);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err(format!(
            "{} spans arrived, {n} expected",
            self.receiver.spans().len()
        )
        .into())
    }

    /// The gateway's address.
    #[must_use]
    pub fn addr(&self) -> std::net::SocketAddr {
        self.gateway
            .as_ref()
            .map_or_else(|| ([127, 0, 0, 1], 0).into(), Gateway::local_addr)
    }

    /// The store's `host:port` behind the gateway (to read records unenforced, as a
    /// reference).
    #[must_use]
    pub fn upstream_addr(&self) -> String {
        self.gateway
            .as_ref()
            .map_or_else(String::new, |g| g.upstream_addr().to_owned())
    }

    /// The temporary directory holding the configuration, policy and keys.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The policy file the gateway watches.
    #[must_use]
    pub fn policy_path(&self) -> PathBuf {
        self.dir.path().join("policy.yaml")
    }

    /// A tonic client connected to the gateway.
    pub async fn client(&self) -> Result<ProfileServiceClient<Channel>, HarnessError> {
        let channel = Channel::from_shared(format!("http://{}", self.addr()))?
            .connect()
            .await?;
        Ok(ProfileServiceClient::new(channel))
    }

    /// A consent token for `subject` granting `purposes`, valid for an hour.
    pub fn consent(&self, subject: &str, purposes: &[&str]) -> Result<String, HarnessError> {
        Ok(self
            .keys
            .consent_token(subject, purposes, &[], Duration::from_secs(3600))?
            .0)
    }

    /// A request as `caller` (a service-account token), declaring `purpose`, carrying
    /// `consents`.
    pub fn request<T>(
        &self,
        message: T,
        caller: &str,
        purpose: &str,
        consents: &[String],
    ) -> Result<tonic::Request<T>, HarnessError> {
        let mut request = tonic::Request::new(message);
        let token = self.keys.caller_token(caller, Duration::from_secs(3600))?;
        let md = request.metadata_mut();
        md.insert(
            "authorization",
            MetadataValue::try_from(format!("Bearer {token}"))?,
        );
        md.insert("x-discreet-purpose", MetadataValue::try_from(purpose)?);
        for c in consents {
            md.append("x-discreet-consent", MetadataValue::try_from(c.as_str())?);
        }
        Ok(request)
    }

    /// Stops the gateway, draining calls in flight.
    pub async fn shutdown(mut self) -> discreet_proxy::ShutdownReport {
        let report = match self.gateway.take() {
            Some(g) => g.shutdown().await,
            None => discreet_proxy::ShutdownReport::default(),
        };
        self.receiver.stop().await;
        report
    }
}
