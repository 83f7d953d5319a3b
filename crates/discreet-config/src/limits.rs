//! The `limits` section: bounds that keep one caller, or one bad upstream reply, from
//! exhausting the gateway. Every field has a default sized for a sidecar beside one store.

use std::time::Duration;

use serde::Deserialize;

/// Resource limits. Omitted fields take the defaults below; `limits` may be omitted entirely.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest gRPC message accepted from the caller or the upstream, in bytes; larger ones
    /// are refused rather than buffered, since every message is decoded in memory to be
    /// rewritten. Default 4 MiB (4194304), gRPC's usual limit. Accepted: 1 KiB to 64 MiB.
    pub max_message_bytes: usize,
    /// Calls in flight at once, at most; calls beyond it are refused `RESOURCE_EXHAUSTED` at
    /// once instead of queueing, so overload shows up to callers immediately. With
    /// `adaptive_concurrency` turned on, the limit in force moves below this ceiling.
    /// Default 512.
    pub max_concurrent_calls: usize,
    /// How the concurrency limit follows load (see [`AdaptiveConcurrency`]).
    pub adaptive_concurrency: AdaptiveConcurrency,
    /// Deadline applied when the caller sends no `grpc-timeout`, so no call waits forever
    /// on the store. For a server stream it bounds each wait for the store's next message
    /// instead, so a long stream that keeps moving is not cut. Default `10s`.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub default_timeout: Duration,
    /// Caller deadlines are capped at this. Default `60s`. Must be at least
    /// `default_timeout`.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub max_timeout: Duration,
    /// Subjects in one batch read; bounds the consent checks and the work one call can
    /// cause. Default 1000.
    pub max_batch_subjects: usize,
    /// Consent tokens accepted in one call (each is a signature check). Default 1000.
    pub max_consent_tokens: usize,
    /// HTTP/2 header list (metadata) size limit in bytes, which also bounds consent tokens
    /// carried in metadata. Default 16 KiB (16384).
    pub max_header_list_bytes: u32,
    /// HTTP/2 streams per connection. Default 256.
    pub max_concurrent_streams: u32,
    /// Compiled enforcement plans cached (per method, purpose and policy version), so the
    /// schema walk is not repeated per call. Default 4096.
    pub plan_cache_entries: u64,
    /// On SIGTERM, in-flight calls are drained for this long before the process exits;
    /// keep it below the pod's `terminationGracePeriodSeconds`. Default `30s`; `0s` stops
    /// at once.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub shutdown_grace: Duration,
    /// Threads serving callers. Each runs its own event loop, and each caller connection
    /// stays on one of them (the one with the fewest connections when it arrived), with
    /// its own connection to the store: a call never waits for another thread, as in
    /// nginx or Envoy. So one connection is served by one core at most; a caller that needs
    /// more opens several. `0` (default): one per CPU the process may use (a container's
    /// CPU quota counts). Accepted: 0 to 256.
    pub worker_threads: usize,
    /// Caller connections open at once, all serving threads together; a connection past
    /// it is closed as soon as it is accepted (the caller sees UNAVAILABLE and retries
    /// with backoff). An idle HTTP/2 connection holds about 32 KiB (THREAT_MODEL.md), so
    /// this bounds what connections that never call can take. Default 2048 (about 64 MiB
    /// at most). Accepted: 1 to 1000000.
    pub max_connections: usize,
    /// A caller connection with no call open for this long is closed gracefully (GOAWAY,
    /// then close), freeing its place under `max_connections`; gRPC clients reconnect
    /// at their next call. Checked every quarter of it, so a connection goes after
    /// between 1x and 1.25x of it. Default `5m`; `0s`: never. Accepted: 0s, or 1s to 24h.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub connection_idle_timeout: Duration,
    /// A caller connection older than this (give or take 10%, so that connections made
    /// together do not all go together) is asked to go (GOAWAY); its calls in flight get
    /// up to `shutdown_grace` to finish, then it is closed. gRPC's `MaxConnectionAge`: a
    /// caller reconnects, so it is authenticated again (its client certificate checked
    /// against the CAs and expiry in force, with `tls.client_ca_file`) and spread again
    /// over the gateway's replicas. Default `0s`: never. Accepted: 0s, or 10s to 720h (30 days),
    /// with `shutdown_grace` of at least 1s.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub max_connection_age: Duration,
    /// Calls of one caller (`namespace/serviceaccount`) in flight at once; one more is
    /// refused `RESOURCE_EXHAUSTED` while other callers keep their places. Without it one
    /// caller that floods can take all of `max_concurrent_calls`. Checked once the caller
    /// is identified, so it bounds authenticated callers (the admission limit, checked
    /// before, bounds everyone). Default 0: no per-caller limit. Accepted: 0, or 1 to
    /// `max_concurrent_calls`.
    pub max_calls_per_caller: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 4 * 1024 * 1024,
            max_concurrent_calls: 512,
            adaptive_concurrency: AdaptiveConcurrency::default(),
            default_timeout: Duration::from_secs(10),
            max_timeout: Duration::from_secs(60),
            max_batch_subjects: 1000,
            max_consent_tokens: 1000,
            max_header_list_bytes: 16 * 1024,
            max_concurrent_streams: 256,
            plan_cache_entries: 4096,
            shutdown_grace: Duration::from_secs(30),
            worker_threads: 0,
            max_connections: 2048,
            connection_idle_timeout: Duration::from_secs(300),
            max_connection_age: Duration::ZERO,
            max_calls_per_caller: 0,
        }
    }
}

/// The adaptive concurrency limit (Envoy's gradient controller): the gateway measures the
/// latency of unary calls with few in flight (its no-load latency), then keeps as many
/// calls in flight as it can while their latency stays within `latency_buffer_percent` of
/// that. A call over the limit waits at most one no-load call's time for a place (to absorb
/// bursts; no more calls wait than the limit has places), then is refused
/// `RESOURCE_EXHAUSTED`. Calls waiting for their caller's request
/// message, and server streams once their response has begun, count only against
/// `max_concurrent_calls`: their time is set by the caller or the stream, not by load. Under a spike, admitted calls keep
/// their latency and the excess is shed fast, instead of every call queueing behind
/// `max_concurrent_calls` others.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdaptiveConcurrency {
    /// On: the limit adapts, between `min_calls` and `limits.max_concurrent_calls`. Off
    /// (default): `max_concurrent_calls` is the limit. Off by default because it trades
    /// throughput for latency: at saturation a client that keeps more calls in flight than
    /// the limit gets `RESOURCE_EXHAUSTED` for the excess instead of waiting its turn.
    /// Turn it on where callers have deadlines and retry elsewhere, and where floods
    /// happen (BENCHMARKS.md, "Overload").
    pub enabled: bool,
    /// The lowest limit, and the limit while the no-load latency is measured (at start and
    /// every `probe_interval`, for 25 calls); capped at `max_concurrent_calls`. Default 3 (as
    /// Envoy's `min_concurrency`).
    /// Accepted: 1 to 100000.
    pub min_calls: usize,
    /// How far above the no-load latency the p90 of admitted calls may go before the limit
    /// shrinks, in percent. Default 25. Accepted: 0 to 1000.
    pub latency_buffer_percent: u32,
    /// How often the no-load latency is measured again, so that a store that became slower
    /// for good is not mistaken for overload. Each measurement holds the limit at
    /// `min_calls` for 25 calls. Default `60s`. Accepted: 1s to 1h.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub probe_interval: Duration,
}

impl Default for AdaptiveConcurrency {
    fn default() -> Self {
        AdaptiveConcurrency {
            enabled: false,
            min_calls: 3,
            latency_buffer_percent: 25,
            probe_interval: Duration::from_secs(60),
        }
    }
}
