//! `discreet demo`: the quick start. Starts the embedded store and the gateway with
//! development keys, reads the same people as every purpose's caller, prints what each
//! received side by side, and keeps serving with the commands to try next.
use std::{path::PathBuf, time::Duration};

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

        crate::demo_audit::show(&receiver, &config, FEATURED, gateway.metrics_addr()).await?;

        println!("Try it yourself while the demo serves on {addr}:\n");
        println!("  # a consent token for persona-eu, and a caller token for shop/web");
        println!("  CONSENT=$(cargo run -q -p discreet-cli -- token dev-consent --sub persona-eu --purpose personalize)");
        println!("  CALLER=$(cargo run -q -p discreet-cli -- token dev-caller --caller shop/web)");
        println!("  # with grpcurl, if you have it (reflection is served by the gateway):");
        println!("  grpcurl -plaintext -H \"authorization: Bearer $CALLER\" -H 'x-discreet-purpose: personalize' \\");
        println!("    -H \"x-discreet-consent: $CONSENT\" -d '{{\"subject_id\":\"persona-eu\"}}' \\");
        println!("    {addr} profile.v1.ProfileService/GetProfile");
        println!("  # what a purpose may see, and why:");
        println!("  cargo run -q -p discreet-cli -- policy explain config/policy.yaml --purpose personalize --jurisdiction FR");
        if args.exit {
            gateway.shutdown().await;
            return Ok(());
        }
        println!("\nServing until Ctrl-C.");
        gateway.run_until_signal().await;
        Ok(())
    })
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
