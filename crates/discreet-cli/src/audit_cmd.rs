//! `discreet audit`: an auditor's questions over exported access spans (OTLP JSON).
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use discreet_audit::attr::decision;
use discreet_audit::time::{Bound, parse_time};
use discreet_audit::{
    AuditKey, AuditTrail, Filter, Format, ShadowSummary, SpanReader, SubjectReport, accesses_table,
    denials_table, report_table, report_text, shadow_table, shadow_text, subject_table,
};

/// Without a query, lists every access in the input. Files may come before the query,
/// after it, or both.
#[derive(Debug, Args)]
#[command(
    subcommand_precedence_over_arg = true,
    override_usage = "discreet audit [--format FORMAT] [FILES]... [QUERY [OPTIONS] [FILES]...]"
)]
pub(crate) struct AuditArgs {
    /// Output: aligned text, JSON or CSV (CSV and JSON carry every column).
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
    #[command(flatten)]
    input: Input,
    #[command(subcommand)]
    query: Option<AuditQuery>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OutputFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Subcommand)]
enum AuditQuery {
    /// Every access matching the filters, oldest first.
    Accesses(Query),
    /// Refused calls: denied whole, or refused for some subject.
    Denials(Query),
    /// Every access to one person's data, with what each did to it.
    Subject(SubjectQuery),
    /// A subject access report: for one person, in plain words, who accessed their data,
    /// when, for what and on which legal basis, what they received, what was refused.
    Report(SubjectQuery),
    /// What the candidate (shadow) policy would have released or withheld differently,
    /// per purpose and field path.
    Shadow(Query),
}

/// Span files: OTLP JSON Lines as the Collector's `file` exporter writes them, or JSON
/// documents. None, or `-`: standard input.
#[derive(Debug, Args)]
struct Input {
    #[arg(value_name = "FILES")]
    files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
struct Query {
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    input: Input,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("who").required(true).args(["id", "pseudonym"])))]
struct SubjectQuery {
    /// The person's subject id. Only its audit pseudonym is looked for.
    #[arg(long)]
    id: Option<String>,
    /// The audit key file (hex or raw bytes) the gateway made pseudonyms with.
    #[arg(long, value_name = "FILE", env = "DISCREET_AUDIT_KEY_FILE")]
    #[arg(default_value = "config/keys/audit.key")]
    key_file: PathBuf,
    /// The person's audit pseudonym (32 hex digits), instead of --id and the key.
    #[arg(long)]
    pseudonym: Option<String>,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    input: Input,
}

#[derive(Debug, Args)]
struct FilterArgs {
    /// Only this purpose (a parent such as `marketing` includes its children).
    #[arg(long)]
    purpose: Option<String>,
    /// Only this caller, `namespace/name` (`namespace/` for all of a namespace).
    #[arg(long)]
    caller: Option<String>,
    /// Only calls with this decision.
    #[arg(long, value_parser = [decision::ALLOWED, decision::PARTIAL, decision::DENIED])]
    decision: Option<String>,
    /// From this time on (RFC 3339 such as 2026-11-23T10:00:00Z, or a date).
    #[arg(long, value_name = "TIME", value_parser = since)]
    since: Option<u64>,
    /// Before this time (exclusive); a date includes that whole day.
    #[arg(long, value_name = "TIME", value_parser = until)]
    until: Option<u64>,
}

fn since(s: &str) -> Result<u64, String> {
    parse_time(s, Bound::Since).map_err(|e| e.to_string())
}

fn until(s: &str) -> Result<u64, String> {
    parse_time(s, Bound::Until).map_err(|e| e.to_string())
}

impl FilterArgs {
    fn filter(self) -> Filter {
        Filter {
            purpose: self.purpose,
            caller: self.caller,
            decision: self.decision,
            since: self.since,
            until: self.until,
        }
    }
}

pub(crate) fn run(args: AuditArgs) -> Result<ExitCode, String> {
    let format = match args.format {
        OutputFormat::Table => Format::Table,
        OutputFormat::Json => Format::Json,
        OutputFormat::Csv => Format::Csv,
    };
    let mut files = args.input.files;
    let mut query = args.query;
    if let Some(q) = &mut query {
        files.append(&mut q.input().files);
    }
    let read = || read_trail(&files);
    let out = match query {
        None => accesses_table(&read()?.accesses(&Filter::default())).render(format),
        Some(AuditQuery::Accesses(q)) => {
            accesses_table(&read()?.accesses(&q.filter.filter())).render(format)
        }
        Some(AuditQuery::Denials(q)) => {
            denials_table(&read()?.denials(&q.filter.filter())).render(format)
        }
        Some(AuditQuery::Shadow(q)) => {
            let summary = ShadowSummary::build(&read()?, &q.filter.filter());
            match format {
                Format::Table => shadow_text(&summary),
                Format::Csv => shadow_table(&summary).render(format),
                Format::Json => json(serde_json::to_string_pretty(&summary))?,
            }
        }
        Some(AuditQuery::Subject(q)) => {
            let (label, pseudonym, key_id) = who(&q)?;
            let trail = read()?;
            warn_other_keys(&trail, key_id.as_deref());
            let found = trail.subject(&pseudonym, &q.filter.filter());
            eprintln!("{label}: {} accesses", found.len());
            subject_table(&found).render(format)
        }
        Some(AuditQuery::Report(q)) => {
            let (label, pseudonym, key_id) = who(&q)?;
            let trail = read()?;
            let report = SubjectReport::build(
                &trail,
                &label,
                &pseudonym,
                key_id.as_deref(),
                &q.filter.filter(),
            );
            match format {
                Format::Table => report_text(&report),
                Format::Csv => report_table(&report).render(format),
                Format::Json => json(serde_json::to_string_pretty(&report))?,
            }
        }
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write the answer: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

/// The person as the report names them, their pseudonym, and the key id it was made with.
fn who(q: &SubjectQuery) -> Result<(String, String, Option<String>), String> {
    if let Some(p) = &q.pseudonym {
        let p = p.trim().to_ascii_lowercase();
        if p.len() != 32 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "--pseudonym {p:?} is not an audit pseudonym (32 hex digits)"
            ));
        }
        return Ok((format!("pseudonym {p}"), p, None));
    }
    let id = q.id.clone().unwrap_or_default();
    let key = read_key(&q.key_file)?;
    Ok((
        id.clone(),
        key.pseudonym(&id),
        Some(key.key_id().to_owned()),
    ))
}

fn read_key(path: &Path) -> Result<AuditKey, String> {
    let raw = std::fs::read(path)
        .map_err(|e| format!("cannot read the audit key file {}: {e}", path.display()))?;
    AuditKey::from_file_contents(&raw).map_err(|e| format!("{}: {e}", path.display()))
}

/// Accesses made under another audit key cannot match this key's pseudonym: say so.
fn warn_other_keys(trail: &AuditTrail, key_id: Option<&str>) {
    let Some(key_id) = key_id else { return };
    for (other, n) in trail.other_key_ids(key_id) {
        eprintln!(
            "note: {n} accesses were recorded under audit key {other}, not this key ({key_id}); \
             they cannot be searched with it"
        );
    }
}

impl AuditQuery {
    fn input(&mut self) -> &mut Input {
        match self {
            AuditQuery::Accesses(q) | AuditQuery::Denials(q) | AuditQuery::Shadow(q) => {
                &mut q.input
            }
            AuditQuery::Subject(q) | AuditQuery::Report(q) => &mut q.input,
        }
    }
}

/// Every input file (none: standard input) into one trail.
fn read_trail(files: &[PathBuf]) -> Result<AuditTrail, String> {
    let reader = SpanReader::default();
    let mut spans = Vec::new();
    let stdin = [PathBuf::from("-")];
    let files = if files.is_empty() { &stdin[..] } else { files };
    for path in files {
        let result = if path.as_os_str() == "-" {
            reader.read("<stdin>", std::io::stdin().lock(), &mut spans)
        } else {
            let file = std::fs::File::open(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let name = path.display().to_string();
            reader.read(&name, BufReader::with_capacity(1 << 16, file), &mut spans)
        };
        result.map_err(|e| e.to_string())?;
    }
    Ok(AuditTrail::from_spans(spans))
}

fn json(text: Result<String, serde_json::Error>) -> Result<String, String> {
    text.map(|s| s + "\n").map_err(|e| e.to_string())
}
