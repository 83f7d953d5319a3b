//! The export pipeline: a bounded queue of finished access spans and one task that sends
//! them, batched, to the collector with `opentelemetry-otlp`.
//!
//! The queue is ours rather than the SDK's batch processor because strict mode needs to
//! know, *before* a call releases data, that its span has a place: a call reserves a
//! slot when it starts ([`AuditTrail::reserve`]) and fills it when it ends. A batch that
//! fails to export is retried (with backoff) and not dropped, so while the collector is
//! down the queue fills, and then strict mode refuses new calls until it drains. Relaxed
//! mode serves them and counts the spans it could not queue.
use std::{sync::Arc, time::Duration};

use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::{
    Resource,
    trace::{SpanData, SpanExporter},
};
use tokio::sync::mpsc;

use crate::{
    metrics::AuditCounters,
    record::{AccessRecord, SubjectEvent},
    span,
};

/// What happens when an access cannot be queued for export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditMode {
    /// The call is refused (`UNAVAILABLE`): nothing is served unaudited.
    Strict,
    /// The call is served and the lost span is counted.
    Relaxed,
}

impl AuditMode {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            AuditMode::Strict => "strict",
            AuditMode::Relaxed => "relaxed",
        }
    }
}

/// How the pipeline runs.
#[derive(Debug, Clone)]
pub struct ExportSettings {
    /// The collector's OTLP/gRPC endpoint, `http://host:4317`.
    pub endpoint: String,
    pub mode: AuditMode,
    /// Spans held for export (including the slots reserved by calls in flight).
    pub queue_capacity: usize,
    /// Most spans sent in one export request.
    pub max_batch: usize,
    /// Longest one export request may take.
    pub export_timeout: Duration,
    /// `service.name` and `service.instance.id` of the resource.
    pub service_name: String,
    pub service_instance: String,
}

/// The queue's sending side, shared by all calls.
#[derive(Debug, Clone)]
pub struct AuditTrail {
    tx: mpsc::Sender<SpanData>,
    mode: AuditMode,
    scope: InstrumentationScope,
    counters: Arc<AuditCounters>,
    capacity: usize,
}

/// Why a call could not be audited.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the audit trail is not accepting spans (export queue full); retry with backoff")]
pub struct AuditUnavailable;

/// A place in the queue for one call's span, reserved when the call started (strict mode
/// always has one; relaxed mode has one when the queue had room).
#[derive(Debug)]
pub struct AuditSlot {
    permit: Option<mpsc::OwnedPermit<SpanData>>,
    trail: AuditTrail,
}

impl AuditTrail {
    /// Starts the export task on the current Tokio runtime. The exporter connects lazily:
    /// a collector that is down at start is retried like one that goes down later.
    pub fn start(
        settings: &ExportSettings,
        counters: Arc<AuditCounters>,
    ) -> Result<(AuditTrail, tokio::task::JoinHandle<()>), String> {
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(settings.endpoint.clone())
            .with_timeout(settings.export_timeout)
            // Retries are ours (below): the exporter's own would hold the task inside
            // one export while the queue fills behind it.
            .with_retry_policy(opentelemetry_otlp::RetryPolicy::default().with_max_retries(0))
            .build()
            .map_err(|e| format!("audit exporter for {}: {e}", settings.endpoint))?;
        exporter.set_resource(
            &Resource::builder_empty()
                .with_attributes([
                    KeyValue::new("service.name", settings.service_name.clone()),
                    KeyValue::new("service.instance.id", settings.service_instance.clone()),
                    KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
                ])
                .build(),
        );
        let capacity = settings.queue_capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        counters.set_mode(settings.mode);
        let task = tokio::spawn(run_export(
            exporter,
            rx,
            settings.max_batch.max(1),
            Arc::clone(&counters),
        ));
        let trail = AuditTrail {
            tx,
            mode: settings.mode,
            scope: span::scope(),
            counters,
            capacity,
        };
        Ok((trail, task))
    }

    #[must_use]
    pub fn mode(&self) -> AuditMode {
        self.mode
    }

    /// Spans queued or reserved and not yet exported.
    #[must_use]
    pub fn queue_depth(&self) -> usize {
        self.capacity.saturating_sub(self.tx.capacity())
    }

    /// Reserves the span of a call that is starting. Strict mode: `Err` when the queue is
    /// full, and the call must be refused. Relaxed mode: never `Err`.
    pub fn reserve(&self) -> Result<AuditSlot, AuditUnavailable> {
        match self.tx.clone().try_reserve_owned() {
            Ok(permit) => Ok(AuditSlot {
                permit: Some(permit),
                trail: self.clone(),
            }),
            Err(_) if self.mode == AuditMode::Relaxed => Ok(AuditSlot {
                permit: None,
                trail: self.clone(),
            }),
            Err(_) => {
                self.counters.refused.inc();
                Err(AuditUnavailable)
            }
        }
    }

    /// A slot for a call refused before it could reserve one: its span is queued if
    /// there is room and counted as dropped otherwise. The call released nothing.
    #[must_use]
    pub fn best_effort(&self) -> AuditSlot {
        AuditSlot {
            permit: self.tx.clone().try_reserve_owned().ok(),
            trail: self.clone(),
        }
    }

    fn send_unreserved(&self, span: SpanData) {
        if self.tx.try_send(span).is_err() {
            self.counters.dropped.inc();
        }
    }

    /// Queues a continuation span of `record` with `events` (see `attr::SUBJECTS_SPAN`).
    /// Strict mode: `Err` when it has no place, and the call must stop.
    pub fn continuation(
        &self,
        record: &AccessRecord,
        span_id: [u8; 8],
        events: &[SubjectEvent],
    ) -> Result<(), AuditUnavailable> {
        let span = span::subjects_span(record, span_id, events, &self.scope);
        match self.tx.try_send(span) {
            Ok(()) => Ok(()),
            Err(_) if self.mode == AuditMode::Relaxed => {
                self.counters.dropped.inc();
                Ok(())
            }
            Err(_) => {
                self.counters.refused.inc();
                Err(AuditUnavailable)
            }
        }
    }
}

impl AuditSlot {
    /// Queues the finished call's span.
    pub fn record(self, record: &AccessRecord) {
        let span = span::access_span(record, &self.trail.scope);
        match self.permit {
            Some(permit) => {
                permit.send(span);
            }
            None => self.trail.send_unreserved(span),
        }
    }
}

/// The export task: takes what is queued (up to `max_batch`), exports it, and on failure
/// retries the same batch with backoff (100 ms doubling to 5 s) before taking more.
async fn run_export(
    exporter: opentelemetry_otlp::SpanExporter,
    mut rx: mpsc::Receiver<SpanData>,
    max_batch: usize,
    counters: Arc<AuditCounters>,
) {
    let mut batch = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        let mut backoff = Duration::from_millis(100);
        loop {
            counters
                .in_export
                .set(i64::try_from(batch.len()).unwrap_or(i64::MAX));
            match exporter.export(batch.clone()).await {
                Ok(()) => {
                    counters.exported.inc_by(batch.len() as u64);
                    break;
                }
                Err(e) => {
                    let failures = counters.export_failures.inc();
                    // Logged on the first failure and then every 50th, not per retry.
                    if failures.is_multiple_of(50) {
                        tracing::warn!(
                            spans = batch.len(),
                            "audit export failed ({e}); retrying, spans stay queued"
                        );
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        counters.in_export.set(0);
        batch.clear();
    }
}
