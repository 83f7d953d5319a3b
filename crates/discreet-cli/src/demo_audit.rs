//! The demo's last part: the audit trail its reads left behind.
use discreet_config::GatewayConfig;
use discreet_telemetry::receiver::OtlpReceiver;

/// Waits for the access spans of the demo's reads, writes them as OTLP JSON (what an
/// OpenTelemetry Collector's file exporter writes), and shows one person's subject
/// access report from them.
pub(crate) async fn show(
    receiver: &OtlpReceiver,
    config: &GatewayConfig,
    subject: &str,
) -> Result<(), String> {
    // Spans are exported in batches as calls end: give the last ones a moment.
    let mut seen = 0;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let now = receiver.spans().len();
        if now == seen && now > 0 {
            break;
        }
        seen = now;
    }
    // Beside the audit key the pseudonyms were made with (the keyring directory, which is
    // this checkout's own and not committed): a shared temporary path would let another
    // checkout's demo, with other keys, overwrite it.
    let file = config.audit.key_file.parent().map_or_else(
        || "demo-spans.json".into(),
        |dir| dir.join("demo-spans.json"),
    );
    receiver
        .write_otlp_json(&file)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    println!(
        "Every read above left an access span ({} exported over OTLP/gRPC to the demo's in-process",
        receiver.spans().len()
    );
    println!("receiver, written to {} as OTLP JSON).", file.display());
    let key = std::fs::read(&config.audit.key_file).map_err(|e| e.to_string())?;
    let key = discreet_audit::AuditKey::from_file_contents(&key).map_err(|e| e.to_string())?;
    let mut spans = Vec::new();
    let input = std::io::BufReader::new(std::fs::File::open(&file).map_err(|e| e.to_string())?);
    discreet_audit::SpanReader::default()
        .read(&file.display().to_string(), input, &mut spans)
        .map_err(|e| e.to_string())?;
    let trail = discreet_audit::AuditTrail::from_spans(spans);
    let report = discreet_audit::report_text(&discreet_audit::SubjectReport::build(
        &trail,
        subject,
        &key.pseudonym(subject),
        Some(key.key_id()),
        &discreet_audit::Filter::default(),
    ));
    println!("What {subject} would get from a subject access request:\n");
    println!("{report}");
    println!("The same from the command line:");
    println!(
        "  cargo run -q -p discreet-cli -- audit report --id {subject} --key-file {} {}",
        config.audit.key_file.display(),
        file.display()
    );
    println!();
    Ok(())
}
