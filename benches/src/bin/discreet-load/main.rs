//! `discreet-load`: the Rust half of the load benchmark (`benches/load/run.sh`).
//!
//! - `prepare` writes what `h2load` sends: gRPC-framed request bodies and the header
//!   lines of a caller (service-account token, purpose, consent token), minted with the
//!   development keyring the gateway under test trusts.
//! - `sink` is the OTLP/gRPC collector the gateway exports its access spans to. It counts
//!   spans (so the script can check one span per call) and keeps nothing, so its memory
//!   stays flat however long the run.
//! - `drive` is a small HTTP/2 load generator for what `h2load` cannot do: a different
//!   consent token on every call (cold verification). It checks `grpc-status` of every
//!   response, which `h2load` does not read, so the script also uses it to prove each
//!   scenario's calls succeed.
//! - `probe` is one light open-loop caller beside a flood (the overload benchmark,
//!   `benches/load/overload.sh`): every call's latency and `grpc-status`, so admitted and
//!   shed calls are told apart.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod drive;
mod prepare;
mod probe;
mod sink;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("prepare") => prepare::run(&args[1..]),
        Some("sink") => sink::run(&args[1..]),
        Some("drive") => drive::run(&args[1..]),
        Some("probe") => probe::run(&args[1..]),
        _ => Err("usage: discreet-load prepare|sink|drive|probe [--flag value]...".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("discreet-load: {e}");
            ExitCode::from(2)
        }
    }
}

/// `--name value` pairs.
pub(crate) struct Flags(Vec<(String, String)>);

pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;

impl Flags {
    pub(crate) fn parse(args: &[String]) -> Result<Flags, Error> {
        let mut pairs = Vec::new();
        let mut it = args.iter();
        while let Some(name) = it.next() {
            let name = name
                .strip_prefix("--")
                .ok_or_else(|| format!("expected --flag, got {name:?}"))?;
            let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
            pairs.push((name.to_owned(), value.clone()));
        }
        Ok(Flags(pairs))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn req(&self, name: &str) -> Result<&str, Error> {
        self.get(name)
            .ok_or_else(|| format!("--{name} is required").into())
    }

    pub(crate) fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, Error> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name}: not a number: {v:?}").into()),
        }
    }
}
