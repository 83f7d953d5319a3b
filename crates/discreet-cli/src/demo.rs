//! `discreet demo`: the quick start. Starts the embedded store and the gateway with
//! development keys, reads the same people as every purpose's caller, prints what each
//! received side by side, and keeps serving with the commands to try next.
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use clap::Args;
use discreet_config::GatewayConfig;
use discreet_consent::keyring::DevKeyring;
use discreet_policy::LegalBasis;
use discreet_proto::profile::v1::{
    GetProfileRequest, profile_service_client::ProfileServiceClient,
};
use prost::Message;
use tonic::{metadata::MetadataValue, transport::Channel};

use crate::demo_table::{Cell, Column, Released, flatten, print_grid};

/// Arguments of `discreet demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// The gateway configuration (its `keys/` directory is created with development keys
    /// if missing).
    #[arg(long, default_value = "config/discreet.yaml")]
    config: PathBuf,
    /// Listen here instead of the configuration's address.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Exit after the demonstration instead of serving on.
    #[arg(long)]
    exit: bool,
}

/// The person shown field by field.
const FEATURED: &str = "persona-eu";
/// The category the analytics purpose may receive with explicit consent.
const ETHNICITY: &str = "user.demographic.race_ethnicity";

pub(crate) fn run(args: &DemoArgs) -> Result<(), String> {
    crate::serve_cmd::init_logging_quiet();
    let config_dir = args.config.parent().map(PathBuf::from).unwrap_or_default();
    let keys = DevKeyring::open_or_create(&config_dir.join("keys")).map_err(|e| e.to_string())?;
    let mut config = GatewayConfig::load(&args.config).map_err(|e| e.to_string())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        // Access spans go to an in-process OTLP receiver (no collector needed for the
        // demo); at the end they are written as OTLP JSON for `discreet audit`.
        let receiver = discreet_telemetry::receiver::OtlpReceiver::start(
            tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        config.audit.endpoint = receiver.endpoint();
        if let Some(m) = &mut config.metrics {
            m.listen.set_port(0);
        }
        let listener = tokio::net::TcpListener::bind(config.listen).await.map_err(|e| {
            format!("cannot listen on {}: {e} (is a gateway already running? try --listen 127.0.0.1:0)", config.listen)
        })?;
        let gateway = discreet_proxy::Gateway::start(&config, listener, discreet_proxy::Options::default()).await?;
        let addr = gateway.local_addr();
        let policy_text = std::fs::read_to_string(&config.policy.file).map_err(|e| e.to_string())?;
        let schema = discreet_schema::Schema::from_descriptor_set(discreet_proto::FILE_DESCRIPTOR_SET).map_err(|e| e.to_string())?;
        let policy = discreet_policy::Policy::parse(&config.policy.file, &policy_text, &schema)
            .map_err(|d| d.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))?;
        let columns: Vec<Column> = policy
            .purposes
            .iter()
            .filter_map(|(name, p)| {
                let caller = p.callers.iter().find(|c| c.as_str() != "*")?;
                Some(Column {
                    purpose: name.clone(),
                    caller: caller.clone(),
                    consent: p.legal_basis == LegalBasis::Consent,
                })
            })
            .collect();
        let order: Vec<String> = policy
            .explain(&schema, "profile.v1.Profile", "personalize", &discreet_policy::ConsentGrant::default(), None)
            .map(|e| e.into_iter().map(|x| x.path).collect())
            .unwrap_or_default();
        let channel = Channel::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        let client = ProfileServiceClient::new(channel);

        println!("Discreet demo: gateway on {addr}, embedded profile store; policy {} version {}", config.policy.file.display(), policy.version);
        println!("Every read below is a real gRPC call through the gateway, as the purpose's caller, with a");
        println!("service-account token and the subject's consent token (development keys in {}).\n", keys.dir().display());

        let mut grid = Vec::new();
        for column in &columns {
            grid.push(read(&client, &keys, column, FEATURED, &[]).await);
        }
        println!("What each purpose received for the same person ({FEATURED}, adult resident of France):\n");
        print_grid(&columns, &grid, None, &order);

        println!("\nThe personas (what each purpose received, or why it was refused):\n");
        for persona in profile_store::PERSONAS.iter().filter(|p| p.subject_id != FEATURED) {
            let special: &[&str] = if persona.subject_id == "persona-ethnicity" { &[ETHNICITY] } else { &[] };
            let mut cells = Vec::new();
            for column in &columns {
                cells.push(read(&client, &keys, column, persona.subject_id, special).await);
            }
            println!("{}: {}", persona.subject_id, persona.about);
            let watch = watched_fields(persona.subject_id);
            print_grid(&columns, &cells, Some(watch), &order);
            println!();
        }

        crate::demo_audit::show(&receiver, &config, FEATURED).await?;

        // With --exit the gateway stops now: its addresses would lead nowhere.
        let serving = (!args.exit).then_some((addr, gateway.metrics_addr()));
        println!("{}", try_it(&args.config, keys.dir(), &config.policy.file, serving).join("\n"));
        if args.exit {
            let _ = gateway.shutdown().await;
            return Ok(());
        }
        println!("\nServing until Ctrl-C.");
        let _ = gateway.run_until_signal().await;
        Ok(())
    })
}

/// The commands to try next, with the keys and policy of the configuration the demo ran
/// with; the gateway's addresses only while it serves on (`serving`: gRPC and metrics).
fn try_it(
    config: &Path,
    keys: &Path,
    policy: &Path,
    serving: Option<(SocketAddr, Option<SocketAddr>)>,
) -> Vec<String> {
    let mut out = Vec::new();
    let (config, keys, policy) = (shell_word(config), shell_word(keys), shell_word(policy));
    match serving {
        Some((addr, _)) => out.push(format!(
            "Try it yourself while the demo serves on {addr}:\n"
        )),
        None => out.push("Try it yourself:\n".to_owned()),
    }
    out.push("  # a consent token for persona-eu, and a caller token for shop/web".to_owned());
    out.push(format!(
        "  CONSENT=$({CLI} token dev-consent --keys {keys} --sub persona-eu --purpose personalize)"
    ));
    out.push(format!(
        "  CALLER=$({CLI} token dev-caller --keys {keys} --caller shop/web)"
    ));
    match serving {
        Some((addr, metrics)) => {
            out.push(
                "  # with grpcurl, if you have it (reflection is served by the gateway):"
                    .to_owned(),
            );
            out.push("  grpcurl -plaintext -H \"authorization: Bearer $CALLER\" -H 'x-discreet-purpose: personalize' \\".to_owned());
            out.push(
                "    -H \"x-discreet-consent: $CONSENT\" -d '{\"subject_id\":\"persona-eu\"}' \\"
                    .to_owned(),
            );
            out.push(format!("    {addr} profile.v1.ProfileService/GetProfile"));
            if let Some(metrics) = metrics {
                out.push("  # the gateway's metrics:".to_owned());
                out.push(format!(
                    "  curl -s http://{metrics}/metrics | grep ^discreet_calls"
                ));
            }
        }
        None => {
            out.push("  # to call a gateway with them (grpcurl), keep the demo serving: run it without --exit".to_owned());
            out.push(format!("  {CLI} demo --config {config}"));
        }
    }
    out.push("  # what a purpose may see, and why:".to_owned());
    out.push(format!(
        "  {CLI} policy explain {policy} --purpose personalize --jurisdiction FR"
    ));
    out
}

/// How the printed commands run this binary: from the checkout, as the README does.
const CLI: &str = "cargo run -q -p discreet-cli --";

/// `path` as one shell word: as it is when that is safe, else single-quoted.
fn shell_word(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:,=@%".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// One call as `column`'s caller, for `subject`.
async fn read(
    client: &ProfileServiceClient<Channel>,
    keys: &DevKeyring,
    column: &Column,
    subject: &str,
    special: &[&str],
) -> Cell {
    let attempt = async {
        let mut request = tonic::Request::new(GetProfileRequest {
            subject_id: subject.into(),
        });
        let caller = keys
            .caller_token(&column.caller, Duration::from_secs(300))
            .map_err(|e| e.to_string())?;
        let (consent, _) = keys
            .consent_token(
                subject,
                &[column.purpose.as_str()],
                special,
                Duration::from_secs(300),
            )
            .map_err(|e| e.to_string())?;
        let md = request.metadata_mut();
        md.insert(
            "authorization",
            MetadataValue::try_from(format!("Bearer {caller}")).map_err(|e| e.to_string())?,
        );
        md.insert(
            "x-discreet-purpose",
            MetadataValue::try_from(column.purpose.as_str()).map_err(|e| e.to_string())?,
        );
        md.insert(
            "x-discreet-consent",
            MetadataValue::try_from(consent.as_str()).map_err(|e| e.to_string())?,
        );
        Ok::<_, String>(client.clone().get_profile(request).await)
    };
    match attempt.await {
        Ok(Ok(response)) => {
            // For a unary call tonic hands the trailers over as the response's metadata.
            let trailer = response
                .metadata()
                .get("x-discreet-withheld-fields")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let fields = flatten(&response.into_inner().encode_to_vec());
            Cell::Released(Released::new(fields, trailer.as_deref()))
        }
        Ok(Err(status)) => Cell::Refused(format!("{:?}, {}", status.code(), status.message())),
        Err(e) => Cell::Refused(e),
    }
}

/// The fields that show a persona's rule at work.
fn watched_fields(subject: &str) -> &'static [&'static str] {
    match subject {
        "persona-minor" => &["demographics.birth_date", "contact.email"],
        "persona-stale" => &["inferences.interests", "inferences.life_events"],
        "persona-pregnancy" => &["inferences.pregnancy_likelihood", "inferences.interests"],
        "persona-ethnicity" => &["demographics.ethnicity"],
        "persona-california" => &["orders", "jurisdiction"],
        _ => &[],
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_commands_to_try_use_the_demos_configuration() {
        let cfg = Path::new("/tmp/elsewhere/discreet.yaml");
        let keys = Path::new("/tmp/elsewhere/keys");
        let policy = Path::new("/tmp/elsewhere/policy.yaml");
        let stopped = try_it(cfg, keys, policy, None).join("\n");
        assert_eq!(
            stopped.matches("--keys /tmp/elsewhere/keys ").count(),
            2,
            "{stopped}"
        );
        assert!(
            stopped.contains("policy explain /tmp/elsewhere/policy.yaml "),
            "{stopped}"
        );
        assert!(
            stopped.contains("demo --config /tmp/elsewhere/discreet.yaml"),
            "{stopped}"
        );
        assert!(!stopped.contains("config/"), "{stopped}");
        // With --exit the gateway has stopped: no address of it.
        assert!(!stopped.contains("127.0.0.1"), "{stopped}");
        assert!(!stopped.contains("-plaintext"), "{stopped}");
        assert!(!stopped.contains("/metrics"), "{stopped}");

        let addr: SocketAddr = "127.0.0.1:50051".parse().unwrap();
        let metrics: SocketAddr = "127.0.0.1:9464".parse().unwrap();
        let serving = try_it(cfg, keys, policy, Some((addr, Some(metrics)))).join("\n");
        assert!(serving.contains("serves on 127.0.0.1:50051"), "{serving}");
        assert!(
            serving.contains("    127.0.0.1:50051 profile.v1."),
            "{serving}"
        );
        assert!(
            serving.contains("http://127.0.0.1:9464/metrics"),
            "{serving}"
        );
    }

    #[test]
    fn paths_are_quoted_for_the_shell_only_when_needed() {
        assert_eq!(shell_word(Path::new("config/keys")), "config/keys");
        assert_eq!(
            shell_word(Path::new("/tmp/my demo/it's")),
            r"'/tmp/my demo/it'\''s'"
        );
        assert_eq!(shell_word(Path::new("")), "''");
    }
}
