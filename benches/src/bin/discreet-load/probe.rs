//! `discreet-load probe`: a light open-loop client that runs beside a flood and records
//! what one well-behaved caller sees: every call's scheduled start, latency and
//! `grpc-status`, so the overload benchmark can tell admitted calls from shed ones.
//!
//! Open loop: calls start on a fixed schedule whatever the gateway does (each in its own
//! task, so a slow answer never delays the next call). Latency is measured from when the
//! call is sent, not from its slot in the schedule: tokio's timer is 1 ms coarse, and its
//! lateness is the client's, not the gateway's.
//!
//! `--connections N` spreads the calls over N connections; with a high `--rate` this is
//! also the overload benchmark's flood, smoother than `h2load --rps` (which sends each
//! client's calls in bursts). Calls not started by the end of `--seconds` (the client
//! fell behind) are not sent. Prints a summary line (scheduled, calls sent, ok, shed,
//! ok_per_s, ok p50 and p99); with `--log`, writes to it a first line `# start_unix_us=N` (when the schedule began, to line
//! the calls up with the flood's timeline) and then `start_us<TAB>latency_us<TAB>code`
//! lines; `code` is the grpc-status, or 4294967295 for a transport error.
use std::{
    io::Write,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;

use crate::{
    Error, Flags,
    drive::{Plan, connect, one_call, read_headers},
};

pub(crate) fn run(args: &[String]) -> Result<(), Error> {
    let flags = Flags::parse(args)?;
    let rate: u32 = flags.num("rate", 200)?;
    let seconds: f64 = flags.num("seconds", 30.0)?;
    if rate == 0 || !seconds.is_finite() || seconds <= 0.0 {
        return Err("--rate and --seconds must be positive".into());
    }
    let log_path = flags.get("log").map(str::to_owned);
    let connections: usize = flags.num("connections", 1)?;
    let plan = Arc::new(Plan::new(
        flags.req("target")?.to_owned(),
        flags.req("method")?.to_owned(),
        Bytes::from(std::fs::read(flags.req("body")?)?),
        read_headers(Path::new(flags.req("headers")?))?,
    ));
    let interval = Duration::from_secs(1) / rate;
    let calls = (seconds * f64::from(rate)) as usize;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let begun = Instant::now();
    let (start_unix_us, records) = runtime.block_on(async move {
        let senders = connect(&plan.target, connections.max(1)).await?;
        let records = Arc::new(Mutex::new(Vec::with_capacity(calls)));
        let started = Instant::now();
        let start_unix_us = micros(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default(),
        );
        let mut tasks = Vec::with_capacity(calls);
        // A client that falls behind its schedule (a flood on a busy machine, or one held
        // back by the gateway's stream limit) stops at the schedule's end rather than
        // sending its backlog after it: the calls it could not send in time are not sent,
        // and the summary says how many were.
        let end = started + Duration::from_secs_f64(seconds);
        for i in 0..calls {
            let scheduled = started + interval * u32::try_from(i).unwrap_or(u32::MAX);
            tokio::time::sleep_until(scheduled.into()).await;
            if Instant::now() >= end {
                break;
            }
            let send = senders[i % senders.len()].clone();
            let (mut send, plan, records) = (send, plan.clone(), records.clone());
            tasks.push(tokio::spawn(async move {
                let sent = Instant::now();
                // Not on the wire by the schedule's end (a flood waiting for the
                // gateway's stream limit, or the client itself behind): not sent.
                match tokio::time::timeout_at(end.into(), send.clone().ready()).await {
                    Ok(Ok(ready)) => send = ready,
                    _ => return,
                }
                let code = one_call(&mut send, &plan, usize::MAX)
                    .await
                    .unwrap_or(u32::MAX);
                let record = (micros(sent - started), micros(sent.elapsed()), code);
                if let Ok(mut r) = records.lock() {
                    r.push(record);
                }
            }));
        }
        for t in tasks {
            t.await?;
        }
        let records = std::mem::take(&mut *records.lock().map_err(|_| "records poisoned")?);
        Ok::<_, Error>((start_unix_us, records))
    })?;
    if let Some(path) = &log_path {
        let mut log = std::io::BufWriter::new(std::fs::File::create(path)?);
        writeln!(log, "# start_unix_us={start_unix_us}")?;
        for (start, latency, code) in &records {
            writeln!(log, "{start}\t{latency}\t{code}")?;
        }
        log.flush()?;
    }
    // Until the last answer: calls still queued when the schedule ends count against the rate.
    let elapsed = begun.elapsed().as_secs_f64();
    let mut ok: Vec<u64> = records.iter().filter(|r| r.2 == 0).map(|r| r.1).collect();
    ok.sort_unstable();
    let shed = records.iter().filter(|r| r.2 == 8).count();
    println!(
        "scheduled={calls} calls={} ok={} shed={shed} other={} seconds={seconds} elapsed={elapsed:.3} ok_per_s={:.0} ok_p50_us={} ok_p99_us={}",
        records.len(),
        ok.len(),
        records.len() - ok.len() - shed,
        ok.len() as f64 / elapsed,
        crate::drive::percentile(&ok, 50.0),
        crate::drive::percentile(&ok, 99.0),
    );
    Ok(())
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
