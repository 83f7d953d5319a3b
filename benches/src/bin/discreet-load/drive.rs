//! `discreet-load drive`: saturate a gRPC endpoint over h2c from one thread, as `h2load -t1`
//! does, and check every response's `grpc-status`.
//!
//! `--fresh-consent KEYS` puts a different, never-seen consent token on every call (minted
//! before the clock starts), so each call pays for a full signature verification.
//!
//! Prints one line: `requests= ok= failed= seconds= rps= p50_us= p99_us= p999_us= codes=`.
use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use discreet_consent::keyring::DevKeyring;
use http::{HeaderName, HeaderValue, Request};

use crate::{Error, Flags, prepare};

pub(crate) struct Plan {
    pub(crate) target: String,
    method: String,
    body: Bytes,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// One consent token per call, when fresh tokens are asked for.
    fresh: Vec<HeaderValue>,
    requests: usize,
    next: AtomicUsize,
}

impl Plan {
    /// The same call every time (no fresh tokens), for clients that schedule their own.
    pub(crate) fn new(
        target: String,
        method: String,
        body: Bytes,
        headers: Vec<(HeaderName, HeaderValue)>,
    ) -> Plan {
        Plan {
            target,
            method,
            body,
            headers,
            fresh: Vec::new(),
            requests: 0,
            next: AtomicUsize::new(0),
        }
    }
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    /// (grpc-status, count); `u32::MAX` for a transport error.
    codes: Vec<(u32, usize)>,
}

impl Tally {
    fn code(&mut self, code: u32) {
        match self.codes.iter_mut().find(|(c, _)| *c == code) {
            Some((_, n)) => *n += 1,
            None => self.codes.push((code, 1)),
        }
    }
}

pub(crate) fn read_headers(path: &Path) -> Result<Vec<(HeaderName, HeaderValue)>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let (name, value) = line
                .split_once(": ")
                .ok_or_else(|| format!("{}: not `name: value`: {line:?}", path.display()))?;
            Ok((
                HeaderName::from_bytes(name.as_bytes())?,
                HeaderValue::from_str(value)?,
            ))
        })
        .collect()
}

pub(crate) async fn one_call(
    send: &mut h2::client::SendRequest<Bytes>,
    plan: &Plan,
    i: usize,
) -> Result<u32, Error> {
    let mut request = Request::post(format!("http://{}{}", plan.target, plan.method))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())?;
    let headers = request.headers_mut();
    for (name, value) in &plan.headers {
        if name != "x-discreet-consent" || plan.fresh.is_empty() {
            headers.append(name, value.clone());
        }
    }
    if let Some(token) = plan.fresh.get(i) {
        headers.append("x-discreet-consent", token.clone());
    }
    let mut ready = send.clone().ready().await?;
    let (response, mut body_out) = ready.send_request(request, false)?;
    body_out.send_data(plan.body.clone(), true)?;
    let response = response.await?;
    if let Some(code) = grpc_status(response.headers()) {
        return Ok(code); // trailers-only response
    }
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = body.trailers().await?.unwrap_or_default();
    Ok(grpc_status(&trailers).unwrap_or(u32::MAX - 1))
}

/// `n` HTTP/2 connections (h2c, no Nagle) to `target`, each driven by its own task.
pub(crate) async fn connect(
    target: &str,
    n: usize,
) -> Result<Vec<h2::client::SendRequest<Bytes>>, Error> {
    let mut senders = Vec::with_capacity(n);
    for _ in 0..n {
        let tcp = tokio::net::TcpStream::connect(target).await?;
        tcp.set_nodelay(true)?;
        let (send, connection) = h2::client::handshake(tcp).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        senders.push(send);
    }
    Ok(senders)
}

fn grpc_status(headers: &http::HeaderMap) -> Option<u32> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

async fn worker(mut send: h2::client::SendRequest<Bytes>, plan: Arc<Plan>) -> Tally {
    let mut tally = Tally::default();
    loop {
        let i = plan.next.fetch_add(1, Ordering::Relaxed);
        if i >= plan.requests {
            return tally;
        }
        let started = Instant::now();
        let code = one_call(&mut send, &plan, i).await.unwrap_or(u32::MAX);
        tally
            .latencies_us
            .push(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
        tally.code(code);
    }
}

pub(crate) fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub(crate) fn run(args: &[String]) -> Result<(), Error> {
    let flags = Flags::parse(args)?;
    let requests: usize = flags.num("requests", 10_000)?;
    let fresh = match flags.get("fresh-consent") {
        None => Vec::new(),
        Some(dir) => {
            let keys = DevKeyring::open(Path::new(dir))?;
            (0..requests)
                .map(|_| Ok(HeaderValue::from_str(&prepare::consent(&keys)?)?))
                .collect::<Result<_, Error>>()?
        }
    };
    let plan = Arc::new(Plan {
        target: flags.req("target")?.to_owned(),
        method: flags.req("method")?.to_owned(),
        body: Bytes::from(std::fs::read(flags.req("body")?)?),
        headers: read_headers(Path::new(flags.req("headers")?))?,
        fresh,
        requests,
        next: AtomicUsize::new(0),
    });
    let connections: usize = flags.num("connections", 4)?;
    let streams: usize = flags.num("streams", 16)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let senders = connect(&plan.target, connections).await?;
        let started = Instant::now();
        let mut workers = Vec::new();
        for send in &senders {
            for _ in 0..streams {
                workers.push(tokio::spawn(worker(send.clone(), plan.clone())));
            }
        }
        let mut total = Tally::default();
        for w in workers {
            let t = w.await?;
            total.latencies_us.extend(t.latencies_us);
            for (code, n) in t.codes {
                for _ in 0..n {
                    total.code(code);
                }
            }
        }
        report(&mut total, started.elapsed());
        Ok::<_, Error>(())
    })
}

fn report(total: &mut Tally, elapsed: Duration) {
    total.latencies_us.sort_unstable();
    let n = total.latencies_us.len();
    let ok = total
        .codes
        .iter()
        .find(|(c, _)| *c == 0)
        .map_or(0, |(_, n)| *n);
    total.codes.sort_unstable();
    let codes: Vec<String> = total
        .codes
        .iter()
        .map(|(c, n)| format!("{c}:{n}"))
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let rps = n as f64 / elapsed.as_secs_f64();
    println!(
        "requests={n} ok={ok} failed={} seconds={:.3} rps={rps:.0} p50_us={} p99_us={} p999_us={} codes={}",
        n - ok,
        elapsed.as_secs_f64(),
        percentile(&total.latencies_us, 50.0),
        percentile(&total.latencies_us, 99.0),
        percentile(&total.latencies_us, 99.9),
        codes.join(",")
    );
}
