//! `discreet serve`: the gateway.
use std::path::PathBuf;

use clap::Args;
use discreet_config::GatewayConfig;

/// Arguments of `discreet serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The gateway configuration.
    #[arg(long, default_value = "config/discreet.yaml")]
    pub(crate) config: PathBuf,
    /// Check the configuration (and the policy, schema, methods and keys it names) and
    /// exit: 0 when it would start.
    #[arg(long)]
    pub(crate) check_config: bool,
    /// Listen here instead of the configuration's `listen` (a pod sets 0.0.0.0:PORT while
    /// the file keeps its loopback default).
    #[arg(long)]
    pub(crate) listen: Option<std::net::SocketAddr>,
    /// Forward to this store (`http://host:port`) instead of the configuration's
    /// `upstream`, so one configuration file serves the demo and a pod beside a store.
    #[arg(long)]
    pub(crate) upstream: Option<String>,
    /// Export access spans to this OTLP/gRPC collector (`http://host:4317`, or `https://`
    /// verified as `audit.tls` says) instead of the configuration's `audit.endpoint`.
    #[arg(long)]
    pub(crate) audit_endpoint: Option<String>,
    /// Serve `/metrics` here instead of the configuration's `metrics.listen`.
    #[arg(long)]
    pub(crate) metrics_listen: Option<std::net::SocketAddr>,
}

/// Logs go to stderr; `RUST_LOG` filters (default `info`), `DISCREET_LOG_FORMAT=json`
/// for machine-readable lines.
pub(crate) fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let filter = cap_wire_libraries(filter);
    // Colour only on a terminal: log files and CI output stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = if std::env::var("DISCREET_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// The HTTP/2 libraries log at `info` at most, whatever `RUST_LOG` asks: at `debug` and
/// `trace` they print the frames they exchange, and the bytes a peer puts in some of them
/// (a GOAWAY's debug data from the store, for one) are the peer's to choose. Our own
/// lines about the store say what failed without them (`upstream.rs` `StoreError`).
fn cap_wire_libraries(filter: tracing_subscriber::EnvFilter) -> tracing_subscriber::EnvFilter {
    ["h2=info", "hyper=info"]
        .into_iter()
        .filter_map(|d| d.parse().ok())
        .fold(filter, tracing_subscriber::EnvFilter::add_directive)
}

/// The demo's logging: warnings only, so the tables stay readable.
pub(crate) fn init_logging_quiet() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let filter = cap_wire_libraries(filter);
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

pub(crate) fn run(args: &ServeArgs) -> Result<(), String> {
    init_logging();
    let mut config = GatewayConfig::load(&args.config).map_err(|e| e.to_string())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(address) = &args.upstream {
        config.upstream = discreet_config::Upstream::Remote {
            address: address.clone(),
            connect_timeout: std::time::Duration::from_secs(2),
        };
    }
    if let Some(endpoint) = &args.audit_endpoint {
        config.audit.endpoint = endpoint.clone();
    }
    if let Some(listen) = args.metrics_listen {
        config.metrics = Some(discreet_config::MetricsConfig { listen });
    }
    // The overrides go through the same validation as the file.
    config
        .validate()
        .map_err(|e| format!("{} with command-line overrides: {e}", args.config.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        if args.check_config {
            // Start on an ephemeral loopback port: everything is loaded and checked the
            // same way as for real, nothing is exposed, and the gateway stops at once.
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| e.to_string())?;
            let mut check = config.clone();
            if matches!(check.upstream, discreet_config::Upstream::Embedded { .. }) {
                check.upstream = discreet_config::Upstream::Embedded { profiles: 1 };
            }
            if let Some(m) = &mut check.metrics {
                m.listen.set_port(0);
            }
            let gateway = discreet_proxy::Gateway::start(
                &check,
                listener,
                discreet_proxy::Options::default(),
            )
            .await
            .map_err(|e| format!("{}: {e}", args.config.display()))?;
            let _ = gateway.shutdown().await;
            eprintln!("{}: ok", args.config.display());
            return Ok(());
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        // Errors found at start (a method the schema lacks, a key file that does not
        // load) are named with the configuration file they come from.
        let gateway =
            discreet_proxy::Gateway::start(&config, listener, discreet_proxy::Options::default())
                .await
                .map_err(|e| format!("{}: {e}", args.config.display()))?;
        // Exits non-zero when access spans were lost: the audit trail misses calls that
        // were served, which whoever runs the gateway must learn of.
        match gateway.run_until_signal().await.audit_spans_lost {
            0 => Ok(()),
            lost => Err(format!(
                "{lost} access spans were not exported before shutdown: their audit records are lost"
            )),
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::EnvFilter;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What a subscriber filtered by `rust_log` (capped) writes for one debug line from
    /// h2, one from hyper and one of ours.
    fn logged(rust_log: &str) -> String {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(super::cap_wire_libraries(EnvFilter::new(rust_log)))
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "h2::codec::framed_read", "h2 frame");
            tracing::debug!(target: "hyper::proto", "hyper frame");
            tracing::debug!(target: "discreet_proxy::service", "ours");
            tracing::info!(target: "h2::proto", "h2 notice");
        });
        String::from_utf8(lines.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn the_http2_libraries_never_log_frames_whatever_rust_log_says() {
        for rust_log in [
            "trace",
            "debug",
            "h2=trace,hyper=trace,debug",
            "debug,h2=debug",
        ] {
            let text = logged(rust_log);
            assert!(text.contains("ours"), "{rust_log}: {text}");
            assert!(text.contains("h2 notice"), "{rust_log}: {text}");
            assert!(!text.contains("h2 frame"), "{rust_log}: {text}");
            assert!(!text.contains("hyper frame"), "{rust_log}: {text}");
        }
    }
}
