//! The export pipeline: a bounded queue of finished access spans (already encoded as OTLP
//! bytes, see `otlp.rs`) and one task that sends them, batched, to the collector.
//!
//! The queue is ours rather than the SDK's batch processor because strict mode needs to
//! know, *before* a call releases data, that its span has a place: a call reserves a
//! slot when it starts ([`AuditTrail::reserve`]) and fills it when it ends. A batch that
//! fails to export is retried (with backoff) and not dropped, so while the collector is
//! down the queue fills, and then strict mode refuses new calls until it drains. Relaxed
//! mode serves them and counts the spans it could not queue.
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::sync::{Notify, mpsc};

use crate::{
    collector::{CollectorClient, CollectorHeaders, CollectorTls},
    metrics::AuditCounters,
    otlp::ExportPrefix,
    record::{AccessRecord, SubjectEvent},
    span,
};

/// One encoded OTLP `Span`.
type EncodedSpan = Vec<u8>;

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
    /// The collector's OTLP/gRPC endpoint, `http://host:4317` or `https://host:4317`.
    pub endpoint: String,
    pub mode: AuditMode,
    /// Spans held for export (including the slots reserved by calls in flight).
    pub queue_capacity: usize,
    /// Bytes of encoded spans held for export (queued or being exported): no call starts
    /// while the queue holds this much (see [`AuditTrail::reserve`]).
    pub queue_bytes: usize,
    /// Spans in one batch: sent as soon as this many are queued (else after `batch_delay`).
    /// A backlog leaves up to `BACKLOG_BATCHES` batches per request (cut at 3 MiB).
    pub max_batch: usize,
    /// Longest one export request may take.
    pub export_timeout: Duration,
    /// Longest the first span of a batch waits for others before the batch is sent (a full
    /// batch goes at once). One request per span would cost the gateway and the collector
    /// more than the span itself.
    pub batch_delay: Duration,
    /// `service.name` and `service.instance.id` of the resource.
    pub service_name: String,
    pub service_instance: String,
    /// TLS for an `https://` endpoint (and only for one).
    pub tls: Option<CollectorTls>,
    /// Metadata for every export request (credentials, a tenant id).
    pub headers: Option<CollectorHeaders>,
}

/// The queue's sending side, shared by all calls.
#[derive(Debug, Clone)]
pub struct AuditTrail {
    tx: mpsc::Sender<EncodedSpan>,
    /// Spans sent and not yet taken by the exporter, and the signal that a batch is full:
    /// the exporter sleeps through its batch delay instead of waking for every span.
    queued: Arc<Queued>,
    mode: AuditMode,
    counters: Arc<AuditCounters>,
    capacity: usize,
}

/// Spans sent and not yet accepted by the collector (see [`AuditTrail::backlog`]).
#[derive(Debug, Clone)]
pub struct AuditBacklog {
    queued: Arc<Queued>,
}

impl AuditBacklog {
    /// Spans sent to the trail and not yet accepted by the collector: in the queue, or
    /// taken by the exporter (the request being tried and the rest of its batch).
    #[must_use]
    pub fn spans(&self) -> u64 {
        let queued = self.queued.spans.load(Ordering::Relaxed);
        let taken = self.queued.unexported.load(Ordering::Relaxed);
        (queued + taken) as u64
    }

    /// Shutdown: the trail takes no more spans, and the export task ends once it has
    /// exported what is queued, even while senders remain.
    pub fn close(&self) {
        self.queued.closing.store(true, Ordering::Release);
        self.queued.close.notify_one();
    }
}

/// Why a call could not be audited.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the audit trail is not accepting spans (export queue full); retry with backoff")]
pub struct AuditUnavailable;

/// A place in the queue for one call's span, reserved when the call started (strict mode
/// always has one; relaxed mode has one when the queue had room).
#[derive(Debug)]
pub struct AuditSlot {
    permit: Option<mpsc::OwnedPermit<EncodedSpan>>,
    trail: AuditTrail,
}

impl AuditTrail {
    /// Starts the export task on the current Tokio runtime. The exporter connects lazily:
    /// a collector that is down at start is retried like one that goes down later.
    pub fn start(
        settings: &ExportSettings,
        counters: Arc<AuditCounters>,
    ) -> Result<(AuditTrail, tokio::task::JoinHandle<()>), String> {
        let client = CollectorClient::new(
            &settings.endpoint,
            settings.export_timeout,
            settings.tls.clone(),
            settings.headers.clone(),
        )?;
        let prefix = ExportPrefix::new(
            &[
                ("service.name", &settings.service_name),
                ("service.instance.id", &settings.service_instance),
                ("service.version", env!("CARGO_PKG_VERSION")),
            ],
            span::SCOPE.0,
            span::SCOPE.1,
        );
        let capacity = settings.queue_capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let queued = Arc::new(Queued::new(
            settings.max_batch.max(1),
            settings.queue_bytes.max(1),
        ));
        counters.set_mode(settings.mode);
        let task = tokio::spawn(run_export(
            client,
            prefix,
            rx,
            Arc::clone(&queued),
            Batching {
                max: settings.max_batch.max(1),
                delay: settings.batch_delay,
            },
            Arc::clone(&counters),
        ));
        let trail = AuditTrail {
            tx,
            queued,
            mode: settings.mode,
            counters,
            capacity,
        };
        Ok((trail, task))
    }

    #[must_use]
    pub fn mode(&self) -> AuditMode {
        self.mode
    }

    /// A view of the spans not yet exported that, unlike the trail, does not keep the
    /// export task running: for counting what a shutdown leaves behind.
    #[must_use]
    pub fn backlog(&self) -> AuditBacklog {
        AuditBacklog {
            queued: Arc::clone(&self.queued),
        }
    }

    /// Spans queued or reserved and not yet exported.
    #[must_use]
    pub fn queue_depth(&self) -> usize {
        self.capacity.saturating_sub(self.tx.capacity())
    }

    /// Bytes of encoded spans queued or being exported.
    #[must_use]
    pub fn queue_bytes(&self) -> usize {
        self.queued.bytes.load(Ordering::Relaxed)
    }

    /// A place in the queue, if it has room by count and by bytes.
    fn place(&self) -> Option<mpsc::OwnedPermit<EncodedSpan>> {
        if !self.queued.has_room() {
            return None;
        }
        self.tx.clone().try_reserve_owned().ok()
    }

    /// Reserves the span of a call that is starting. Strict mode: `Err` when the queue is
    /// full (`queue_capacity` places reserved or `queue_bytes` held), and the call must be
    /// refused. Relaxed mode: never `Err`.
    ///
    /// The byte bound is checked here, before the call, and not when its span is sent:
    /// a call's span is known only once its data is out, and a span with a reserved place
    /// is never refused. So the queue may pass `queue_bytes` by the spans of the calls in
    /// flight when it was reached, and no further.
    pub fn reserve(&self) -> Result<AuditSlot, AuditUnavailable> {
        match self.place() {
            Some(permit) => Ok(AuditSlot {
                permit: Some(permit),
                trail: self.clone(),
            }),
            None if self.mode == AuditMode::Relaxed => Ok(AuditSlot {
                permit: None,
                trail: self.clone(),
            }),
            None => {
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
            permit: self.place(),
            trail: self.clone(),
        }
    }

    /// Queues a span that had no reserved place, if the queue has room by count and by
    /// bytes. Gives it back when it has not.
    fn try_send(&self, span: EncodedSpan) -> Result<(), EncodedSpan> {
        if !self.queued.has_room() {
            return Err(span);
        }
        let len = span.len();
        self.queued.add(len);
        self.tx.try_send(span).map_err(|e| {
            self.queued.take(1);
            self.queued.exported(len);
            e.into_inner()
        })
    }

    fn send_unreserved(&self, span: EncodedSpan) {
        if self.try_send(span).is_err() {
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
        let span = span::subjects_span(record, span_id, events);
        match self.try_send(span) {
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
        let span = span::access_span(record);
        match self.permit {
            Some(permit) => {
                self.trail.queued.add(span.len());
                permit.send(span);
            }
            None => self.trail.send_unreserved(span),
        }
    }
}

/// See [`AuditTrail::queued`].
#[derive(Debug)]
struct Queued {
    spans: AtomicUsize,
    /// `max_batch`.
    batch: usize,
    full: Notify,
    /// Bytes of the spans sent and not yet exported: in the queue, or taken by the
    /// exporter and not yet accepted by the collector (while it is away, the request
    /// being retried holds up to `BACKLOG_BATCHES` batches).
    bytes: AtomicUsize,
    /// `queue_bytes`.
    max_bytes: usize,
    /// Spans taken by the exporter and not yet accepted by the collector.
    unexported: AtomicUsize,
    /// Set at shutdown ([`AuditBacklog::close`]): the queue takes no more spans and the
    /// exporter ends once it has sent what it holds, whoever still has a sender (a
    /// metrics connection keeps the gateway's state, and with it the trail, alive).
    closing: AtomicBool,
    close: Notify,
}

impl Queued {
    fn new(batch: usize, max_bytes: usize) -> Queued {
        Queued {
            spans: AtomicUsize::new(0),
            batch,
            full: Notify::new(),
            bytes: AtomicUsize::new(0),
            max_bytes,
            unexported: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            close: Notify::new(),
        }
    }

    /// Counts a span of `len` bytes about to be sent (before, so the exporter never takes
    /// more than counted); wakes the exporter when that makes a full batch.
    fn add(&self, len: usize) {
        self.bytes.fetch_add(len, Ordering::Relaxed);
        if self.spans.fetch_add(1, Ordering::Relaxed) + 1 == self.batch {
            self.full.notify_one();
        }
    }

    /// `n` spans taken from the queue by the exporter (their bytes are still held).
    fn take(&self, n: usize) {
        self.unexported.fetch_add(n, Ordering::Relaxed);
        self.spans.fetch_sub(n, Ordering::Relaxed);
    }

    /// `len` bytes of spans exported (or never queued): no longer held.
    fn exported(&self, len: usize) {
        self.bytes.fetch_sub(len, Ordering::Relaxed);
    }

    fn has_room(&self) -> bool {
        self.bytes.load(Ordering::Relaxed) < self.max_bytes
    }
}

/// How spans are gathered into export requests.
#[derive(Debug, Clone, Copy)]
struct Batching {
    max: usize,
    delay: Duration,
}

/// How many batches' worth one request may carry when the exporter has fallen behind.
const BACKLOG_BATCHES: usize = 8;

/// Waits for the next batch: the first span, then more until `max` are queued or `delay`
/// has passed. Empty when the queue is closed and drained. While it waits it does not
/// wake per span (that cost a thread wake-up per call): only a full batch wakes it early.
///
/// When more than a batch is already queued (the exporter is behind: the collector was
/// slow or away), it takes up to [`BACKLOG_BATCHES`] batches at once. With one request in
/// flight, requests of `max` spans cap the export rate at `max` per collector round trip;
/// on a busy node that was below the rate of calls at saturation, and the queue grew
/// until strict mode would refuse calls (and held megabytes of spans meanwhile).
async fn next_batch(
    rx: &mut mpsc::Receiver<EncodedSpan>,
    queued: &Queued,
    batch: &mut Vec<EncodedSpan>,
    b: Batching,
) {
    let most = b.max.saturating_mul(BACKLOG_BATCHES);
    if queued.closing.load(Ordering::Acquire) {
        rx.close();
    }
    let received = tokio::select! {
        n = rx.recv_many(batch, most) => n,
        // Shutdown: no more spans come in; what is queued still goes out.
        () = queued.close.notified() => {
            rx.close();
            rx.recv_many(batch, most).await
        }
    };
    if received == 0 {
        return;
    }
    if batch.len() < b.max && !b.delay.is_zero() {
        let deadline = tokio::time::Instant::now() + b.delay;
        let _ = tokio::time::timeout_at(deadline, queued.full.notified()).await;
        while batch.len() < b.max {
            match rx.try_recv() {
                Ok(span) => batch.push(span),
                // A span is counted before it is sent (`Queued::add`): one counted and
                // not here yet is on its way. Taking the batch without it would leave it
                // alone in the queue, waiting out a whole delay for a batch that was full.
                Err(mpsc::error::TryRecvError::Empty)
                    if queued.spans.load(Ordering::Relaxed) > batch.len() =>
                {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(span)) => batch.push(span),
                        _ => break,
                    }
                }
                // Nothing more counted, or the queue closed (shutdown): send what there is.
                Err(_) => break,
            }
        }
    }
    queued.take(batch.len());
}

/// The export task: takes what is queued (a batch, more when behind: [`next_batch`]), exports
/// it in requests of at most [`MAX_REQUEST_BYTES`], and retries a failed request with
/// backoff before taking more.
async fn run_export(
    mut client: CollectorClient,
    prefix: ExportPrefix,
    mut rx: mpsc::Receiver<EncodedSpan>,
    queued: Arc<Queued>,
    batching: Batching,
    counters: Arc<AuditCounters>,
) {
    let mut batch = Vec::with_capacity(batching.max);
    // Lowered, for good, when the collector says a request was too large for it.
    let mut limit = MAX_REQUEST_BYTES;
    loop {
        next_batch(&mut rx, &queued, &mut batch, batching).await;
        if batch.is_empty() {
            break;
        }
        let mut rest = &batch[..];
        while !rest.is_empty() {
            let n = fitting(rest, limit);
            let request = prefix.request(&rest[..n]);
            let bytes = request.len();
            match export_with_retry(&mut client, request, n as u64, &counters).await {
                Exported::Yes => {
                    queued.unexported.fetch_sub(n, Ordering::Relaxed);
                    rest = &rest[n..];
                }
                Exported::TooLarge => {
                    limit = (bytes / 2).max(1);
                    tracing::warn!(
                        spans = n,
                        bytes,
                        "the collector refused an export request as too large; sending at most {limit} bytes per request from now on"
                    );
                }
            }
        }
        queued.exported(batch.iter().map(Vec::len).sum());
        batch.clear();
    }
}

/// Longest part of a collector's message that reaches our log.
const COLLECTOR_TEXT_MAX: usize = 200;

/// A collector's free-text message, fit for one log line: its first
/// [`COLLECTOR_TEXT_MAX`] characters, quoted with control characters escaped, so text
/// from outside cannot forge or split log lines.
fn collector_text(message: &str) -> String {
    let cut: String = message.chars().take(COLLECTOR_TEXT_MAX).collect();
    let more = if cut.len() < message.len() { "..." } else { "" };
    format!("{cut:?}{more}")
}

/// How one request ended.
enum Exported {
    Yes,
    /// Refused for its size, with more than one span in it: send fewer at a time. (One
    /// span too large for the collector is retried like any failure: it is never dropped,
    /// and strict mode shows the stall by refusing calls.)
    TooLarge,
}

/// Largest export request, in span bytes. Collectors refuse bigger gRPC messages (the
/// OpenTelemetry Collector's OTLP receiver accepts 4 MiB by default), and a refused batch
/// would be retried forever: 512 spans of long streams, a thousand subject events each,
/// are tens of megabytes.
const MAX_REQUEST_BYTES: usize = 3 * 1024 * 1024;

/// How many of `spans` go in the next request: as many as fit in `limit` bytes, and at
/// least one.
fn fitting(spans: &[EncodedSpan], limit: usize) -> usize {
    let mut total = 0usize;
    spans
        .iter()
        .take_while(|s| {
            total += s.len() + 8;
            total <= limit
        })
        .count()
        .max(1)
}

/// Sends one request until the collector takes it (backoff 100 ms doubling to 5 s), or
/// until it refuses a request of several spans as too large.
async fn export_with_retry(
    client: &mut CollectorClient,
    request: Vec<u8>,
    spans: u64,
    counters: &AuditCounters,
) -> Exported {
    // Shared, not copied, by each attempt.
    let request = bytes::Bytes::from(request);
    let mut backoff = Duration::from_millis(100);
    loop {
        counters
            .in_export
            .set(i64::try_from(spans).unwrap_or(i64::MAX));
        match client.export(request.clone()).await {
            Ok(accepted) => {
                counters.exported.inc_by(spans);
                if accepted.rejected_spans > 0 {
                    // The collector has them and will not keep them: retrying the
                    // same bytes would be refused again. Said loudly instead.
                    tracing::error!(
                        rejected = accepted.rejected_spans,
                        "the collector refused access spans: {}",
                        collector_text(&accepted.message)
                    );
                }
                break;
            }
            // grpc-go collectors answer RESOURCE_EXHAUSTED, tonic OUT_OF_RANGE.
            Err(e)
                if spans > 1
                    && matches!(
                        e.code(),
                        tonic::Code::ResourceExhausted | tonic::Code::OutOfRange
                    ) =>
            {
                counters.export_failures.inc();
                counters.in_export.set(0);
                return Exported::TooLarge;
            }
            Err(e) => {
                let failures = counters.export_failures.inc();
                // Logged on the first failure and then every 50th, not per retry.
                if failures.is_multiple_of(50) {
                    tracing::warn!(
                        spans,
                        "audit export failed ({}); retrying, spans stay queued",
                        // Partly the collector's own words: bounded, on one line.
                        collector_text(e.message())
                    );
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    counters.in_export.set(0);
    Exported::Yes
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::{
        AuditMode, AuditTrail, Batching, COLLECTOR_TEXT_MAX, Duration, ExportSettings, Queued,
        collector_text, fitting, mpsc, next_batch,
    };

    fn settings(mode: AuditMode, queue_capacity: usize, queue_bytes: usize) -> ExportSettings {
        ExportSettings {
            // Nothing listens on port 1: every export fails and is retried, so what is
            // sent stays held, as with a collector that is down.
            endpoint: "http://127.0.0.1:1".into(),
            mode,
            queue_capacity,
            queue_bytes,
            max_batch: 4,
            export_timeout: Duration::from_secs(1),
            batch_delay: Duration::ZERO,
            service_name: "test".into(),
            service_instance: "test-1".into(),
            tls: None,
            headers: None,
        }
    }

    #[tokio::test]
    async fn strict_mode_refuses_new_calls_once_the_queue_holds_its_bytes() {
        let (trail, task) =
            AuditTrail::start(&settings(AuditMode::Strict, 1000, 10_000), Arc::default()).unwrap();
        // Three spans of 3,000 bytes leave room; the fourth reaches the bound.
        for i in 0..4 {
            assert!(trail.reserve().is_ok(), "span {i}: the queue has room");
            trail.try_send(vec![0; 3_000]).unwrap();
        }
        assert_eq!(trail.queue_bytes(), 12_000);
        // The exporter has taken some of them into its failing request: still held.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(trail.queue_bytes(), 12_000);
        assert!(trail.reserve().is_err(), "a new call is refused");
        assert!(trail.best_effort().permit.is_none());
        assert!(trail.try_send(vec![0; 10]).is_err());
        assert_eq!(trail.counters.refused.get(), 1);
        task.abort();
    }

    #[tokio::test]
    async fn relaxed_mode_serves_and_drops_spans_past_the_bytes() {
        let (trail, task) =
            AuditTrail::start(&settings(AuditMode::Relaxed, 1000, 10_000), Arc::default()).unwrap();
        for _ in 0..10 {
            trail.send_unreserved(vec![0; 3_000]);
        }
        assert_eq!(trail.queue_bytes(), 12_000, "four sent, the rest dropped");
        assert_eq!(trail.counters.dropped.get(), 6);
        let slot = trail.reserve().unwrap();
        assert!(slot.permit.is_none(), "no place is promised past the bytes");
        task.abort();
    }

    #[tokio::test]
    async fn the_count_bound_still_holds_for_small_spans() {
        let (trail, task) =
            AuditTrail::start(&settings(AuditMode::Strict, 3, 1 << 20), Arc::default()).unwrap();
        let slots: Vec<_> = (0..3).map(|_| trail.reserve().unwrap()).collect();
        assert!(trail.reserve().is_err());
        drop(slots);
        assert!(trail.reserve().is_ok());
        task.abort();
    }

    #[tokio::test]
    async fn a_full_batch_waits_for_its_last_span_still_being_sent() {
        // The interleaving behind a CI failure: the eighth span is counted (which wakes
        // the exporter for a full batch) but not yet in the queue when the exporter looks.
        let (tx, mut rx) = mpsc::channel(16);
        let queued = Queued::new(8, 1 << 20);
        for _ in 0..8 {
            queued.add(1);
        }
        for i in 0..7u8 {
            tx.send(vec![i]).await.unwrap();
        }
        let last = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            tx.send(vec![7]).await.unwrap();
        });
        let b = Batching {
            max: 8,
            delay: Duration::from_secs(600),
        };
        let mut batch = Vec::new();
        tokio::time::timeout(
            Duration::from_secs(5),
            next_batch(&mut rx, &queued, &mut batch, b),
        )
        .await
        .unwrap();
        last.await.unwrap();
        assert_eq!(batch.len(), 8, "the batch left without its last span");
        assert_eq!(queued.spans.load(super::Ordering::Relaxed), 0);
    }

    #[test]
    fn collector_text_cannot_split_a_log_line_and_is_bounded() {
        let forged = "bad span\n2026-01-01T00:00:00Z  INFO discreet: all spans exported\u{1b}[2K";
        let shown = collector_text(forged);
        assert!(
            !shown.contains('\n') && !shown.contains('\u{1b}'),
            "{shown}"
        );
        assert!(shown.contains("bad span\\n2026"), "{shown}");
        let long = "é".repeat(5 * COLLECTOR_TEXT_MAX);
        let shown = collector_text(&long);
        assert_eq!(
            shown.chars().filter(|&c| c == 'é').count(),
            COLLECTOR_TEXT_MAX
        );
        assert!(shown.ends_with("\"..."), "{shown}");
        assert_eq!(collector_text("short"), "\"short\"");
    }

    #[test]
    fn requests_are_cut_by_size_but_always_carry_a_span() {
        let spans = vec![vec![0u8; 100]; 10];
        assert_eq!(fitting(&spans, 10_000), 10);
        assert_eq!(fitting(&spans, 350), 3);
        assert_eq!(
            fitting(&spans, 50),
            1,
            "a span bigger than the limit still goes"
        );
        assert_eq!(fitting(&spans[9..], 10_000), 1);
    }
}
