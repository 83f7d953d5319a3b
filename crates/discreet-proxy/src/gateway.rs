//! Starting and stopping the gateway from a [`GatewayConfig`].
use std::{net::SocketAddr, sync::Arc, time::Duration};

use discreet_config::{GatewayConfig, Upstream};
use discreet_consent::ConsentService;
use discreet_schema::{Schema, SchemaMapping};
use tokio::{
    net::TcpListener,
    sync::{Semaphore, watch},
    task::JoinHandle,
};
use tonic_health::ServingStatus;

use discreet_telemetry::SpanIds;

use crate::{
    Clock, DecisionIds, access::AuditState, caller::CallerAuth,
    collector_headers::CollectorHeadersState, collector_tls::CollectorTlsState,
    local::LocalServices, plans::PlanCache, policy_state::PolicyState, route::MethodTable, server,
    service::Core, shadow::ShadowPolicy, tls::TlsServer, upstream::UpstreamClient,
};

fn count_reload(metrics: &discreet_telemetry::metrics::GatewayMetrics, applied: bool) {
    metrics
        .policy_reloads
        .get_or_create(&discreet_telemetry::metrics::ResultLabels {
            result: if applied { "applied" } else { "rejected" },
        })
        .inc();
}

fn random_seed() -> u64 {
    use rand_core::{OsRng, RngCore};
    OsRng.next_u64()
}

/// Shortest wait at shutdown for queued access spans to be exported: they get what is
/// left of `shutdown_grace` after the drain, and at least this (the Deployment's
/// termination grace period allows `shutdown_grace` plus this).
const AUDIT_FLUSH: Duration = Duration::from_secs(5);

/// What a shutdown could not finish.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Access spans of calls already served that the collector had not accepted when the
    /// flush gave up (it was unreachable or refusing): their audit records are lost.
    pub audit_spans_lost: u64,
}

/// How often the policy file is polled besides file-system events.
const POLICY_POLL: Duration = Duration::from_secs(1);

/// Start-up choices that are not configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// The clock for record guards.
    pub clock: Clock,
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    local_addr: SocketAddr,
    upstream_addr: String,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
    core: Arc<Core>,
    policy_watch: Option<JoinHandle<()>>,
    shadow_watch: Option<JoinHandle<()>>,
    tls_watch: Option<JoinHandle<()>>,
    collector_tls_watch: Option<JoinHandle<()>>,
    collector_headers_watch: Option<JoinHandle<()>>,
    /// Turns health to SERVING once every key and revocation source has been read (only
    /// while one has not).
    readiness: Option<JoinHandle<()>>,
    /// The routed services, whose health is reported with the server's.
    services: Vec<String>,
    /// The embedded store: stopped only after the gateway has drained, since the calls
    /// being drained still read from it.
    embedded: Option<EmbeddedStore>,
    metrics_addr: Option<SocketAddr>,
    audit_export: JoinHandle<()>,
}

impl Gateway {
    /// Validates `config`, loads schema, policy, keys and secret, connects nothing yet
    /// (the store connection is made on the first call), and starts serving on `listener`.
    /// Every problem with the configuration is reported here, before a call is accepted.
    pub async fn start(
        config: &GatewayConfig,
        listener: TcpListener,
        options: Options,
    ) -> Result<Gateway, String> {
        // Checked again here, not only when the file is loaded: an embedder may build or
        // change the configuration in code, and every rule (a credential never over
        // cleartext, bounds that keep memory bounded) must hold for it too.
        config.validate().map_err(|e| e.to_string())?;
        let schema = Arc::new(load_schema(config)?);
        let routes = MethodTable::build(&schema, &config.methods)?;
        let policy = Arc::new(PolicyState::load(&config.policy.file, Arc::clone(&schema))?);
        // Valid, but every record of these types is refused for these purposes: said at
        // start (and by serve --check-config) rather than found in production.
        for (record_type, purposes) in
            routes.jurisdiction_unknowable(&schema, &policy.current().policy)
        {
            tracing::warn!(
                record_type = %record_type,
                purposes = %purposes.join(","),
                "records of this type have no field labelled ROLE_JURISDICTION, and these \
                 purposes have rules or a minimum age per jurisdiction: every such record \
                 is refused for them"
            );
        }
        let secret = discreet_config::load_pseudonym_secret(&config.pseudonym.secret_file)
            .map_err(|e| e.to_string())?;
        let consent = ConsentService::start(&config.consent)
            .await
            .map_err(|e| format!("consent: {}", e.0))?;
        let callers = CallerAuth::start(&config.identity).await?;
        let audit_key = std::fs::read(&config.audit.key_file)
            .map_err(|e| {
                format!(
                    "{}: cannot read audit key: {}",
                    config.audit.key_file.display(),
                    e.kind()
                )
            })
            .and_then(|raw| {
                discreet_telemetry::AuditKey::from_file_contents(&raw)
                    .map_err(|e| format!("{}: {e}", config.audit.key_file.display()))
            })?;
        let metrics = Arc::new(discreet_telemetry::metrics::GatewayMetrics::new(
            audit_key.key_id(),
        ));
        // An https:// collector without an `audit.tls` section is verified against the
        // Mozilla roots under the endpoint's host name, as a browser would.
        let collector_tls = if config.audit.endpoint_is_tls() {
            let host = config.audit.endpoint_host().ok_or_else(|| {
                format!(
                    "audit.endpoint {}: expected https://host:port",
                    config.audit.endpoint
                )
            })?;
            let files = config.audit.tls.clone().unwrap_or_default();
            Some(CollectorTlsState::load(&files, host)?)
        } else {
            None
        };
        let collector_headers = CollectorHeadersState::load(&config.audit.headers)?;
        let (trail, audit_export) = discreet_telemetry::AuditTrail::start(
            &discreet_telemetry::ExportSettings {
                endpoint: config.audit.endpoint.clone(),
                mode: match config.audit.mode {
                    discreet_config::AuditModeConfig::Strict => {
                        discreet_telemetry::AuditMode::Strict
                    }
                    discreet_config::AuditModeConfig::Relaxed => {
                        discreet_telemetry::AuditMode::Relaxed
                    }
                },
                queue_capacity: config.audit.queue_capacity,
                queue_bytes: usize::try_from(config.audit.queue_bytes).unwrap_or(usize::MAX),
                max_batch: config.audit.max_batch,
                export_timeout: config.audit.export_timeout,
                batch_delay: config.audit.batch_delay,
                service_name: config.audit.service_name.clone(),
                service_instance: std::env::var("HOSTNAME").unwrap_or_else(|_| "local".to_owned()),
                tls: collector_tls.as_ref().map(CollectorTlsState::exporter_tls),
                headers: collector_headers
                    .as_ref()
                    .map(CollectorHeadersState::exporter_headers),
            },
            Arc::clone(&metrics.audit),
        )?;
        let shadow = match &config.audit.shadow_policy {
            Some(path) => Some(Arc::new(ShadowPolicy {
                state: Arc::new(
                    PolicyState::load(path, Arc::clone(&schema))
                        .map_err(|e| format!("audit.shadow_policy: {e}"))?,
                ),
                plans: PlanCache::new(
                    config.limits.plan_cache_entries,
                    Arc::clone(&schema),
                    Arc::from(secret.clone()),
                    None,
                ),
            })),
            None => None,
        };
        let metrics_listener = match &config.metrics {
            Some(m) => Some(
                TcpListener::bind(m.listen)
                    .await
                    .map_err(|e| format!("metrics.listen {}: {e}", m.listen))?,
            ),
            None => None,
        };
        let local = LocalServices::new(&schema.pool().encode_to_vec())?;
        let tls = config.tls.as_ref().map(TlsServer::start).transpose()?;
        let (stop, stop_rx) = watch::channel(false);
        let (upstream_addr, connect_timeout, embedded) = match &config.upstream {
            Upstream::Embedded { profiles } => {
                let (addr, store) = EmbeddedStore::start(*profiles, options.clock.now()).await?;
                (addr, Duration::from_secs(2), Some(store))
            }
            Upstream::Remote {
                address,
                connect_timeout,
            } => {
                let authority = address
                    .strip_prefix("http://")
                    .ok_or_else(|| {
                        format!("upstream address {address}: expected http://host:port")
                    })?
                    .trim_end_matches('/')
                    .to_owned();
                (authority, *connect_timeout, None)
            }
        };
        let serving_threads = crate::workers::count(config.limits.worker_threads);
        let upstream = UpstreamClient::new(
            upstream_addr.clone(),
            connect_timeout,
            serving_threads,
            metrics.upstream_retries.clone(),
        )?;
        let core = Arc::new(Core {
            routes,
            policy: Arc::clone(&policy),
            plans: Arc::new(PlanCache::new(
                config.limits.plan_cache_entries,
                Arc::clone(&schema),
                Arc::from(secret),
                Some(&metrics),
            )),
            callers,
            consent,
            upstream,
            limits: config.limits.clone(),
            admission: admission(&config.limits, &metrics),
            caller_shares: crate::caller_share::CallerShares::new(
                config.limits.max_calls_per_caller,
            ),
            request_buffer: Arc::new(Semaphore::new(
                crate::service::REQUEST_BUFFER_BUDGET
                    .max(config.limits.max_message_bytes.saturating_add(16)),
            )),
            clock: options.clock,
            local,
            decision_ids: DecisionIds::new(),
            audit: AuditState {
                trail,
                key_id: Arc::from(audit_key.key_id()),
                key: audit_key,
                span_ids: SpanIds::new(random_seed()),
                max_subject_events: config.audit.max_subject_events,
                other_label: Arc::from("other"),
            },
            metrics: Arc::clone(&metrics),
            shadow: shadow.clone(),
        });
        let active = policy.current();
        metrics.set_policy_version(&active.version, &active.digest_hex);
        let services: Vec<String> = config
            .methods
            .keys()
            .filter_map(|m| m.strip_prefix('/').and_then(|m| m.split_once('/')))
            .map(|(s, _)| s.to_owned())
            .collect();
        // Not ready while a key or revocation source (a URL: a file that does not load
        // refuses the start) has never been read: every call needing it would be refused,
        // and a rollout must not move traffic to such a pod.
        let ready = sources_loaded(&core);
        set_health(&core, &services, ready).await;
        // Everything that can fail is done before the first task below is spawned: a start
        // that fails leaves no watcher, no metrics endpoint and no server behind (the
        // embedded store stops when dropped, the consent sources' tasks likewise).
        let local_addr = listener.local_addr().map_err(|e| e.to_string())?;
        let metrics_addr = metrics_listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()
            .map_err(|e| e.to_string())?;
        let workers = server::start_workers(serving_threads, tls.clone(), &core, &config.limits)?;
        let policy_watch = config.policy.watch.then(|| {
            let m = Arc::clone(&metrics);
            Arc::clone(&policy).watch(POLICY_POLL, "policy", move |active, applied| {
                count_reload(&m, applied);
                m.set_policy_version(&active.version, &active.digest_hex);
            })
        });
        // Always watched: a renewed certificate must reach new connections without a
        // restart (`tls.rs`).
        let tls_watch = tls
            .as_ref()
            .map(|tls| Arc::clone(tls).watch(POLICY_POLL, Arc::clone(&metrics)));
        let collector_tls_watch =
            collector_tls.and_then(|tls| tls.watch(POLICY_POLL, Arc::clone(&metrics)));
        let collector_headers_watch =
            collector_headers.and_then(|headers| headers.watch(POLICY_POLL, Arc::clone(&metrics)));
        let shadow_watch = shadow.map(|shadow| {
            let m = Arc::clone(&metrics);
            let candidate = shadow.state.current();
            m.set_shadow_policy_version(&candidate.version, &candidate.digest_hex);
            Arc::clone(&shadow.state).watch(POLICY_POLL, "shadow policy", move |active, _| {
                m.set_shadow_policy_version(&active.version, &active.digest_hex);
            })
        });
        let readiness =
            (!ready).then(|| tokio::spawn(become_ready(Arc::clone(&core), services.clone())));
        if let Some(listener) = metrics_listener {
            tokio::spawn(crate::admin::serve_metrics(
                listener,
                Arc::clone(&core),
                stop.subscribe(),
            ));
        }
        let mut shutdown = stop_rx;
        let server = tokio::spawn(server::serve(listener, workers, async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        }));
        let active = policy.current();
        tracing::info!(
            listen = %local_addr,
            metrics = %metrics_addr.map_or_else(|| "off".to_owned(), |a| a.to_string()),
            upstream = %upstream_addr,
            policy.version = %active.policy.version,
            // The host only: an endpoint URL could carry a credential.
            audit.collector = %config.audit.endpoint_host().map_or("?", |h| h),
            audit.tls = config.audit.endpoint_is_tls(),
            // The names only: the values may be credentials.
            audit.headers = %config.audit.headers.keys().map(String::as_str).collect::<Vec<_>>().join(","),
            "discreet gateway serving"
        );
        Ok(Gateway {
            local_addr,
            upstream_addr,
            stop,
            server,
            core,
            policy_watch,
            shadow_watch,
            tls_watch,
            collector_tls_watch,
            collector_headers_watch,
            readiness,
            services,
            embedded,
            metrics_addr,
            audit_export,
        })
    }

    /// Where `/metrics` is served, if configured.
    #[must_use]
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Where the gateway accepts calls.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The store's `host:port` (for `embedded`, the in-process store's loopback port).
    #[must_use]
    pub fn upstream_addr(&self) -> &str {
        &self.upstream_addr
    }

    /// Stops accepting, tells health checkers, and drains calls in flight (up to the
    /// configured grace period).
    #[must_use = "lost access spans must be reported"]
    pub async fn shutdown(self) -> ShutdownReport {
        let started = std::time::Instant::now();
        // Stopped first, and waited for, so that it cannot turn health back to SERVING.
        if let Some(readiness) = self.readiness {
            readiness.abort();
            let _ = readiness.await;
        }
        // The server and each service: a client checking a service by name sees the
        // drain too.
        set_health(&self.core, &self.services, false).await;
        let _ = self.stop.send(true);
        let _ = self.server.await;
        for w in [
            self.policy_watch,
            self.shadow_watch,
            self.tls_watch,
            self.collector_tls_watch,
            self.collector_headers_watch,
        ]
        .into_iter()
        .flatten()
        {
            w.abort();
        }
        // The calls in flight are drained (or cut at the grace period): now the embedded
        // store may go. Stopped together, its own graceful shutdown raced the drain.
        if let Some(store) = self.embedded {
            store.stop().await;
        }
        // The last spans: the export task ends once every sender (the core's trail) is
        // gone and the queue is drained. A collector that is away cannot hold the
        // shutdown past the grace period (or AUDIT_FLUSH after a drain that used it all);
        // what is left then is lost, and said so with its count.
        let flush = self
            .core
            .limits
            .shutdown_grace
            .saturating_sub(started.elapsed())
            .max(AUDIT_FLUSH);
        let backlog = self.core.audit.trail.backlog();
        drop(self.core);
        // The queue takes no more spans; the exporter ends once what it holds is out,
        // though a metrics connection may still hold a sender.
        backlog.close();
        let mut export = self.audit_export;
        let lost = match tokio::time::timeout(flush, &mut export).await {
            Ok(Ok(())) => return ShutdownReport::default(),
            // The export task failed: whatever it had not sent is lost.
            Ok(Err(_)) => backlog.spans(),
            Err(_) => {
                export.abort();
                backlog.spans()
            }
        };
        if lost == 0 {
            return ShutdownReport::default();
        }
        tracing::error!(
            spans = lost,
            "audit export did not drain within {flush:?} (the collector is unreachable \
             or refusing): {lost} access spans of calls already served are lost"
        );
        ShutdownReport {
            audit_spans_lost: lost,
        }
    }

    /// Serves until SIGTERM or Ctrl-C, then shuts down gracefully.
    #[must_use = "lost access spans must be reported"]
    pub async fn run_until_signal(self) -> ShutdownReport {
        shutdown_signal().await;
        tracing::info!("shutting down: draining calls in flight");
        self.shutdown().await
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn load_schema(config: &GatewayConfig) -> Result<Schema, String> {
    let s = &config.schema;
    let mut schema = if s.protos.is_empty() {
        Schema::from_descriptor_set(discreet_proto::FILE_DESCRIPTOR_SET)
    } else {
        Schema::from_protos(&s.protos, &s.includes)
    }
    .map_err(|e| e.to_string())?;
    if let Some(path) = &s.mapping {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mapping = SchemaMapping::parse(path, &text).map_err(|e| e.to_string())?;
        schema
            .apply_mapping(&mapping, path)
            .map_err(|e| e.to_string())?;
    }
    Ok(schema)
}

/// The reference store, in-process on a loopback port: the quick start and tests get a
/// real gRPC upstream without a second process. Its records are dated relative to the
/// gateway's clock, so the demo shows the same ages and freshness on any day.
/// The embedded reference store, serving on a loopback port. Dropped without [`stop`]
/// (a start-up that fails after it started), its stop signal's sender goes with it, which
/// stops it the same graceful way: a failed start leaves no store listening.
///
/// [`stop`]: EmbeddedStore::stop
#[derive(Debug)]
struct EmbeddedStore {
    task: JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl EmbeddedStore {
    /// Generates `profiles` profiles as of `now` and serves them; returns the address.
    async fn start(profiles: usize, now: i64) -> Result<(String, EmbeddedStore), String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("embedded store: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let store =
            profile_store::ProfileStore::new(profile_store::Dataset::generate_at(profiles, now));
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            // Resolves when told to stop, or when the sender is dropped.
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = profile_store::serve(store, listener, shutdown).await {
                tracing::error!(error = %e, "embedded profile store stopped");
            }
        });
        Ok((addr.to_string(), EmbeddedStore { task, stop }))
    }

    /// Stops gracefully (calls still being answered finish) and waits until it has.
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The concurrency limit: fixed at `max_concurrent_calls`, or adaptive below it.
fn admission(
    limits: &discreet_config::Limits,
    metrics: &Arc<discreet_telemetry::metrics::GatewayMetrics>,
) -> Arc<crate::admission::Admission> {
    let adaptive = &limits.adaptive_concurrency;
    let settings = adaptive.enabled.then(|| {
        let mut settings = crate::limit::LimitSettings::new(
            adaptive.min_calls,
            limits.max_concurrent_calls,
            f64::from(adaptive.latency_buffer_percent) / 100.0,
        );
        settings.probe_interval = adaptive.probe_interval;
        settings
    });
    crate::admission::Admission::new(limits.max_concurrent_calls, settings, Arc::clone(metrics))
}

/// Every key and revocation source the gateway uses, by name, and how it is doing.
pub(crate) fn sources(core: &Core) -> Vec<(&'static str, discreet_consent::SourceHealth)> {
    let mut sources = core.consent.source_health();
    sources.extend(core.callers.source_health());
    sources
}

/// Whether every key and revocation source the gateway uses has been read at least once.
fn sources_loaded(core: &Core) -> bool {
    sources(core)
        .iter()
        .all(|(_, health)| health.age_seconds.is_some())
}

/// Health of the whole server (`""`) and of each routed service.
async fn set_health(core: &Core, services: &[String], serving: bool) {
    let status = if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    for service in services {
        core.local
            .reporter
            .set_service_status(service, status)
            .await;
    }
    core.local.reporter.set_service_status("", status).await;
}

/// Waits until every key and revocation source has been read, then reports SERVING.
async fn become_ready(core: Arc<Core>, services: Vec<String>) {
    let unread: Vec<_> = sources(&core)
        .into_iter()
        .filter(|(_, h)| h.age_seconds.is_none())
        .map(|(name, _)| name)
        .collect();
    tracing::warn!(
        sources = %unread.join(","),
        "not ready: health answers NOT_SERVING until these key or revocation sources have been read once"
    );
    while !sources_loaded(&core) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    set_health(&core, &services, true).await;
    tracing::info!("ready: every key and revocation source has been read");
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    /// Whether something accepts connections on `addr` within a second.
    async fn listening(addr: &str) -> bool {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    #[tokio::test]
    async fn an_embedded_store_dropped_by_a_failed_start_stops_listening() {
        let (addr, store) = EmbeddedStore::start(5, 0).await.unwrap();
        tokio::net::TcpStream::connect(&addr).await.unwrap();
        drop(store);
        assert!(!listening(&addr).await, "the store still listens on {addr}");
    }

    #[tokio::test]
    async fn an_embedded_store_stopped_gracefully_stops_listening() {
        let (addr, store) = EmbeddedStore::start(5, 0).await.unwrap();
        store.stop().await;
        assert!(tokio::net::TcpStream::connect(&addr).await.is_err());
    }
}
