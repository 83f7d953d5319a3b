//! `profile-store`: the reference store on its own, for the benchmarks and for trying
//! Discreet against a separate upstream.
#![forbid(unsafe_code)]

use std::{net::SocketAddr, process::ExitCode};

use clap::Parser;
use profile_store::{Dataset, ProfileStore, serve};

/// Serves deterministic synthetic profiles and the rule-exercising personas over gRPC.
#[derive(Debug, Parser)]
#[command(name = "profile-store", version, about)]
struct Args {
    /// Address to listen on. Keep it on loopback: the store enforces nothing.
    #[arg(long, default_value = "127.0.0.1:50061")]
    listen: SocketAddr,
    /// How many synthetic profiles besides the personas.
    #[arg(long, default_value_t = 5000)]
    count: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(2);
        }
    };
    // Dated relative to now, so a gateway on the system clock sees the personas as
    // intended (the minor a minor, stale data stale) on any day.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(profile_store::REFERENCE_NOW, |d| {
            i64::try_from(d.as_secs()).unwrap_or(profile_store::REFERENCE_NOW)
        });
    let store = ProfileStore::new(Dataset::generate_at(args.count, now));
    eprintln!(
        "profile-store: {} synthetic profiles and 6 personas on {}",
        args.count, args.listen
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match serve(store, listener, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
