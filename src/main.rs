//! The `credit-hub` command: the server, its administration, and the client commands.

#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::Datelike;
use clap::{Parser, Subcommand};

use credit_hub::audit::AuditSettings;
use credit_hub::cli::{self, ClientArgs};
use credit_hub::config::StorageArgs;
use credit_hub::domain::agency::{PurposePolicy, Scope};
use credit_hub::domain::codes::AgencyKind;
use credit_hub::domain::id_scan::{
    contains_id_number_loosely, mask_id_numbers, mask_id_numbers_loosely,
};
use credit_hub::seed::{self, SeedPlan};
use credit_hub::store::{NewAgency, Store};
use credit_hub::{Server, ShutdownPolicy};

/// credit-hub: enterprise credit information shared between government departments.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log format: text or json.
    #[arg(
        long,
        global = true,
        env = "CREDIT_HUB_LOG_FORMAT",
        default_value = "text",
        value_parser = ["text", "json"]
    )]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    storage: StorageArgs,
    /// Address to listen on.
    #[arg(long, env = "CREDIT_HUB_LISTEN", default_value = "127.0.0.1:50051")]
    listen: String,
    /// Seconds between reporting NOT_SERVING on shutdown and refusing new connections.
    #[arg(long, env = "CREDIT_HUB_SHUTDOWN_ANNOUNCE_SECS", default_value_t = 0.5)]
    shutdown_announce_secs: f64,
    /// Longest wait, in seconds, for in-flight calls to finish on shutdown.
    #[arg(long, env = "CREDIT_HUB_DRAIN_SECS", default_value_t = 20.0)]
    drain_secs: f64,
    /// Milliseconds a looked-up grade is served from memory (0 disables). This replica's
    /// own changes are seen at once; other replicas' and tools' within this time.
    #[arg(long, env = "CREDIT_HUB_GRADE_CACHE_MS", default_value_t = 1000)]
    grade_cache_ms: u64,
    /// Requests per second each agency may make unless `agency add --rate-limit` set
    /// its own; 0 means unlimited. Over it, calls get RESOURCE_EXHAUSTED with RetryInfo.
    #[arg(long, env = "CREDIT_HUB_DEFAULT_RATE_LIMIT", default_value_t = 0)]
    default_rate_limit: u32,
    /// Most calls handled at once; beyond it new calls get RESOURCE_EXHAUSTED with
    /// RetryInfo at once (health and reflection are never refused).
    #[arg(long, env = "CREDIT_HUB_MAX_CONCURRENT_CALLS", default_value_t = credit_hub::overload::DEFAULT_MAX_CONCURRENT_CALLS)]
    max_concurrent_calls: usize,
    /// Most writes of one agency arriving or waiting for the database at once (each
    /// holds one of --max-concurrent-calls, and its request body in memory); more get RESOURCE_EXHAUSTED with RetryInfo at once, so
    /// one partner's burst cannot crowd the others out.
    #[arg(long, env = "CREDIT_HUB_MAX_QUEUED_WRITES_PER_AGENCY", default_value_t = credit_hub::overload::DEFAULT_MAX_QUEUED_WRITES_PER_AGENCY, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_queued_writes_per_agency: usize,
    /// Seconds any request body has to arrive, whatever its size; past it, a call whose
    /// body is still arriving gets DEADLINE_EXCEEDED (REQUEST_TOO_SLOW), so a slow
    /// sender cannot hold a call slot. See --request-body-min-rate.
    #[arg(long, env = "CREDIT_HUB_REQUEST_BODY_GRACE_SECS", default_value_t = credit_hub::pace::DEFAULT_GRACE.as_secs_f64())]
    request_body_grace_secs: f64,
    /// Bytes per second: each byte of a request body received gives it 1 / this many
    /// seconds more than the grace period.
    #[arg(long, env = "CREDIT_HUB_REQUEST_BODY_MIN_RATE", default_value_t = credit_hub::pace::DEFAULT_MIN_RATE, value_parser = clap::value_parser!(u64).range(1..))]
    request_body_min_rate: u64,
    /// PostgreSQL only: seconds any one statement of the server may run, lock waits
    /// included, before PostgreSQL stops it and its call gets UNAVAILABLE (0: no
    /// limit). A call's own deadline stops its work in the server; this also stops a
    /// statement it left running.
    #[arg(
        long,
        env = "CREDIT_HUB_STATEMENT_TIMEOUT_SECS",
        default_value_t = 30.0
    )]
    statement_timeout_secs: f64,
    /// Audit log: on, or off (only to measure its cost in benchmarks).
    #[arg(long, env = "CREDIT_HUB_AUDIT_LOG", default_value = "on", value_parser = ["on", "off"])]
    audit_log: String,
    /// Seconds between signed checkpoints of the audit chain's head.
    #[arg(long, env = "CREDIT_HUB_AUDIT_CHECKPOINT_SECS", default_value_t = 60)]
    audit_checkpoint_secs: u64,
    /// Seconds after which a write's saved audit entry that its call never chained is
    /// chained by the audit writer (at its next checkpoint interval). Longer than any
    /// call takes, and than the clock difference between replicas; at least 31, past
    /// the longest a write waits for its turn (30 s): an entry chained while its call
    /// still runs would be logged with the outcome it had when saved.
    #[arg(
        long,
        env = "CREDIT_HUB_AUDIT_RECOVER_AFTER_SECS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(31..)
    )]
    audit_recover_after_secs: u64,
    /// Which purposes each agency kind may declare (TOML; default: the shipped
    /// `policies/purposes.toml`).
    #[arg(long, env = "CREDIT_HUB_PURPOSES_FILE")]
    purposes_file: Option<PathBuf>,
    /// Serve TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "CREDIT_HUB_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "CREDIT_HUB_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// CA certificates (PEM) that sign agencies' client certificates (mutual TLS).
    /// Clients without a certificate still authenticate by token.
    #[arg(long, env = "CREDIT_HUB_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// A gateway whose forwarded client certificates are believed (repeatable): a name
    /// its own client certificate carries, or the address or CIDR block its connections
    /// come from when they present no client certificate. Forwarded certificates from
    /// anyone else are ignored.
    #[arg(
        long = "trusted-gateway",
        env = "CREDIT_HUB_TRUSTED_GATEWAYS",
        value_delimiter = ','
    )]
    trusted_gateways: Vec<credit_hub::peer::Gateway>,
    /// The header a trusted gateway puts the client certificate in (Envoy's format).
    #[arg(long, env = "CREDIT_HUB_FORWARDED_CERT_HEADER", default_value = credit_hub::peer::DEFAULT_FORWARDED_CERT_HEADER)]
    forwarded_cert_header: String,
    #[command(flatten)]
    certificates: credit_hub::config::CertificateArgs,
    /// Credit-repair rules (TOML; default: the shipped `policies/repair.toml`).
    #[arg(long, env = "CREDIT_HUB_REPAIR_POLICY_FILE")]
    repair_policy_file: Option<PathBuf>,
    /// Spot-check defaults: ratios per grade, inspectors per visit, non-on-site domains
    /// (TOML; default: the shipped `policies/spotcheck.toml`).
    #[arg(long, env = "CREDIT_HUB_SPOTCHECK_POLICY_FILE")]
    spotcheck_policy_file: Option<PathBuf>,
    /// Directory of working-day calendars, one `<year>.toml` each (default: the shipped
    /// `policies/calendar/`, 2026 and 2027).
    #[arg(long, env = "CREDIT_HUB_CALENDAR_DIR")]
    calendar_dir: Option<PathBuf>,
    /// Seconds a client connection lives before the server asks the client to reconnect,
    /// so clients spread over new replicas after a scale-out.
    #[arg(
        long,
        env = "CREDIT_HUB_MAX_CONNECTION_AGE_SECS",
        default_value_t = 300
    )]
    max_connection_age_secs: u64,
    /// Address of the Prometheus `/metrics` endpoint (its own port); empty disables it.
    #[arg(
        long,
        env = "CREDIT_HUB_METRICS_LISTEN",
        default_value = "127.0.0.1:9090"
    )]
    metrics_listen: String,
    /// Seconds between checks for records whose publicity window ended.
    #[arg(long, env = "CREDIT_HUB_REGRADE_INTERVAL_SECS", default_value_t = 60.0)]
    regrade_interval_secs: f64,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gRPC API (SQLite is created and migrated on first start; PostgreSQL
    /// must have been migrated with `credit-hub migrate`).
    Serve(ServeArgs),
    /// Migrate, seed demo data if the database is empty, and serve: the quick start.
    Demo {
        #[command(flatten)]
        serve: ServeArgs,
        /// Seed of the demo data generator.
        #[arg(long, env = "CREDIT_HUB_SEED", default_value_t = 1)]
        seed: u64,
    },
    /// Apply pending database migrations.
    Migrate {
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Fill an empty database with deterministic demo data and demo agencies.
    Seed {
        #[command(flatten)]
        storage: StorageArgs,
        /// Seed of the generator: the same seed gives the same data.
        #[arg(long, env = "CREDIT_HUB_SEED", default_value_t = 1)]
        seed: u64,
        /// Number of enterprises.
        #[arg(long, env = "CREDIT_HUB_SEED_ENTERPRISES", default_value_t = 50_000)]
        enterprises: usize,
        /// Number of records.
        #[arg(long, env = "CREDIT_HUB_SEED_RECORDS", default_value_t = 40_000)]
        records: usize,
    },
    /// Manage the agencies allowed to call the service.
    Agency {
        #[command(subcommand)]
        command: AgencyCommand,
    },
    /// Look up enterprises in the registry (client).
    Enterprise {
        #[command(subcommand)]
        command: EnterpriseCommand,
    },
    /// Submit and list credit records (client).
    Records {
        #[command(subcommand)]
        command: RecordsCommand,
    },
    /// Show credit grades with their reasons (client).
    Grade {
        #[command(flatten)]
        client: ClientArgs,
        /// Unified social credit codes.
        usccs: Vec<String>,
        /// A file with one USCC per line.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Grading model; default general.
        #[arg(long, env = "CREDIT_HUB_MODEL", default_value = "")]
        model: String,
        /// Declared purpose of the look-up.
        #[arg(long, env = "CREDIT_HUB_PURPOSE", default_value = "daily-supervision")]
        purpose: String,
    },
    /// Watch grade changes and report distributions (client).
    Grades {
        #[command(subcommand)]
        command: GradesCommand,
    },
    /// Regrade every enterprise under every model (after a model change).
    Reclassify {
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// The audit log: verify its chain, list or export entries.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Regrade enterprises whose records' publicity windows have ended.
    Regrade {
        #[command(flatten)]
        storage: StorageArgs,
        /// Regrade what is due now (the server also does this on its own schedule).
        #[arg(long, required = true)]
        due: bool,
    },
    /// Cross-check candidates for a public role against credit records (client; needs
    /// the vetting:run scope): prints a summary and writes the report as CSV and HTML.
    Vet(cli::vet::VetArgs),
    /// Credit certificates: issue, get, list, revoke (client), verify (online, or
    /// offline with --issuer-keys), keys, and render a printable page.
    Cert {
        #[command(subcommand)]
        command: cli::cert::CertCommand,
    },
    /// Credit repair (client): checkup, apply, interview, decide, list, candidates.
    Repair {
        #[command(subcommand)]
        command: cli::repair::RepairCommand,
    },
    /// "Double random" spot checks: plan, draw, verify, merge, result, published.
    Spotcheck {
        #[command(subcommand)]
        command: cli::spotcheck::SpotCheckCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the whole chain and its signed checkpoints in the configured database
    /// (server running or not); exits non-zero naming the first broken or missing entry.
    Verify {
        #[command(flatten)]
        storage: StorageArgs,
        /// Also trust checkpoints signed by this public key (hex); repeatable. The
        /// configured signing key's public half is always trusted.
        #[arg(long, value_parser = public_key_hex)]
        trust_key: Vec<String>,
    },
    /// List entries (client; needs the audit:read scope): e.g. who looked at an
    /// enterprise in the last year: `audit list --enterprise USCC --since-days 365`.
    List {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        query: cli::audit::AuditQuery,
        /// Show at most this many.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Stream every matching entry as JSON lines (client; needs the audit:read scope).
    Export {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        query: cli::audit::AuditQuery,
    },
}

#[derive(Subcommand)]
enum GradesCommand {
    /// Print grade changes as they happen; resume with the last cursor printed.
    Watch {
        #[command(flatten)]
        client: ClientArgs,
        /// Resume after this cursor; empty starts from now.
        #[arg(long, env = "CREDIT_HUB_CURSOR", default_value = "")]
        cursor: String,
        /// Only this model's changes.
        #[arg(long, env = "CREDIT_HUB_MODEL", default_value = "")]
        model: String,
        /// Declared purpose.
        #[arg(long, env = "CREDIT_HUB_PURPOSE", default_value = "daily-supervision")]
        purpose: String,
    },
    /// Count enterprises per grade.
    Stats {
        #[command(flatten)]
        client: ClientArgs,
        /// Grading model; default general.
        #[arg(long, env = "CREDIT_HUB_MODEL", default_value = "")]
        model: String,
        /// Group by administrative division.
        #[arg(long)]
        by_region: bool,
        /// Group by industry section (GB/T 4754 letter).
        #[arg(long)]
        by_industry: bool,
    },
}

#[derive(Subcommand)]
enum AgencyCommand {
    /// Create an agency; prints its bearer token, alone, on stdout. The token is not
    /// stored and cannot be shown again.
    Add {
        #[command(flatten)]
        storage: StorageArgs,
        /// Display name, e.g. "威海经开区人民法院".
        #[arg(long)]
        name: String,
        /// market-regulation, court, tax, social-security, education or vetting-office.
        #[arg(long)]
        kind: String,
        /// A scope to grant (repeatable, or comma-separated); without any, the kind's
        /// defaults. registry:write, certificates:issue and certificates:revoke serve only
        /// market-regulation agencies, vetting:run only vetting offices.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Requests per second this agency may make (default: the server's
        /// --default-rate-limit): at least 1 (leave it out for the server's default),
        /// at most 2,147,483,647, what PostgreSQL's column holds.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(i32::MAX)))]
        rate_limit: Option<u32>,
        /// A name its TLS client certificate carries (subject Common Name, or a DNS,
        /// URI or e-mail Subject Alternative Name): connections presenting such a
        /// certificate, signed by the server's --tls-client-ca, act as this agency
        /// without a token.
        #[arg(long)]
        cert_subject: Option<String>,
    },
    /// List agencies (never tokens).
    List {
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Revoke an agency's token.
    Revoke {
        #[command(flatten)]
        storage: StorageArgs,
        /// The agency id, as `agency list` shows it.
        id: String,
    },
    /// Give an agency a new token (a leaked one, say), printed alone on stdout; the old
    /// one stops working within 5 s. The agency keeps its id, records and history.
    RotateToken {
        #[command(flatten)]
        storage: StorageArgs,
        /// The agency id, as `agency list` shows it.
        id: String,
    },
}

#[derive(Subcommand)]
enum EnterpriseCommand {
    /// Show one enterprise.
    Get {
        #[command(flatten)]
        client: ClientArgs,
        /// Its unified social credit code.
        uscc: String,
    },
}

#[derive(Subcommand)]
enum RecordsCommand {
    /// Submit records from a JSON-lines file in atomic batches of 1,000.
    Submit {
        #[command(flatten)]
        client: ClientArgs,
        /// The file, one record per line.
        file: PathBuf,
    },
    /// List the records about an enterprise, newest decision first.
    List {
        #[command(flatten)]
        client: ClientArgs,
        /// Its unified social credit code.
        #[arg(long)]
        subject: String,
        /// Show at most this many.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CREDIT_HUB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=error"));
    // Colours only on a terminal: in a log file or a collector they are escape codes.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    // The default hook prints a panic's message as it is, and it may quote a value the
    // code held: logged masked, in the log's own format, instead.
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_string();
        let panic = credit_hub::catch_panic::panic_message(info.payload());
        // Captured only when RUST_BACKTRACE asks, as the default hook does.
        let backtrace = std::backtrace::Backtrace::capture();
        if tracing::enabled!(tracing::Level::ERROR) {
            tracing::error!(%panic, at, thread, %backtrace, "panicked");
        } else {
            eprintln!("thread '{thread}' panicked at {at}: {panic}\n{backtrace}");
        }
    }));
}

/// The server allocates and frees small buffers on every call, often on different
/// threads; glibc's allocator serialised those frees on its arena locks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The secret flags on this command line, by name: a flag's value is visible to every
/// local user (`ps`, /proc), an environment variable or a `*_FILE` is not.
fn secrets_on_command_line(args: &[String]) -> Vec<&'static str> {
    let mut found = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f, Some(v)),
            None => (arg.as_str(), None),
        };
        let value = || inline.or(args.get(i + 1).map(String::as_str)).unwrap_or("");
        match flag {
            "--hmac-key" => found.push("--hmac-key (use CREDIT_HUB_HMAC_KEY_FILE)"),
            "--token" => found.push("--token (use CREDIT_HUB_TOKEN)"),
            // A URL holding a password (user:password@host).
            "--database-url"
                if value()
                    .split_once("://")
                    .and_then(|(_, rest)| rest.split_once('@'))
                    .is_some_and(|(user, _)| user.contains(':')) =>
            {
                found.push("--database-url with a password (use CREDIT_HUB_DATABASE_URL_FILE)")
            }
            _ => {}
        }
    }
    found
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    for flag in secrets_on_command_line(&args) {
        eprintln!("warning: a secret given as {flag}: other local users can read a command line");
    }
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    match cli.command {
        Command::Serve(args) => serve(args, None).await,
        Command::Demo { serve: args, seed } => serve(args, Some(seed)).await,
        Command::Migrate { storage } => {
            let store = storage.open_store().await?;
            let before = store.schema_version().await?;
            store.migrate().await.context("migration failed")?;
            let after = store.schema_version().await?.unwrap_or(0);
            match before {
                Some(v) if v == after => {
                    eprintln!("the database is up to date (migration {after}); nothing to apply")
                }
                Some(v) => eprintln!("applied migrations {} to {after}", v + 1),
                None => eprintln!("created the database schema (migrations 1 to {after})"),
            }
            Ok(())
        }
        Command::Seed {
            storage,
            seed,
            enterprises,
            records,
        } => {
            let store = storage.open_store().await?;
            store.migrate().await?;
            run_seed(
                &storage,
                &store,
                SeedPlan {
                    seed,
                    enterprises,
                    records,
                },
            )
            .await
        }
        Command::Agency { command } => agency(command).await,
        Command::Enterprise {
            command: EnterpriseCommand::Get { client, uscc },
        } => cli::enterprise_get(&client, &uscc).await,
        Command::Grade {
            client,
            mut usccs,
            file,
            model,
            purpose,
        } => {
            // Every code is checked before any is looked up, so a bad line is named
            // by its place (FILE:LINE) instead of as an index into some batch after
            // a thousand grades have already been printed.
            // Kept in canonical form, as the service names them back.
            let mut bad = Vec::new();
            for (i, u) in usccs.iter_mut().enumerate() {
                match credit_hub::domain::ids::Uscc::parse(u.trim_start_matches("enterprises/")) {
                    Ok(parsed) => *u = parsed.as_str().to_string(),
                    Err(e) => bad.push(format!("argument {}: {e}", i + 1)),
                }
            }
            if let Some(file) = file {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
                for (n, line) in text.lines().enumerate() {
                    let line = line.trim();
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    match credit_hub::domain::ids::Uscc::parse(
                        line.trim_start_matches("enterprises/"),
                    ) {
                        Ok(parsed) => usccs.push(parsed.as_str().to_string()),
                        Err(e) => bad.push(format!("{}:{}: {e}", file.display(), n + 1)),
                    }
                }
            }
            if !bad.is_empty() {
                bail!(
                    "{} invalid unified social credit code(s); nothing was looked up:\n  {}",
                    bad.len(),
                    bad.join("\n  ")
                );
            }
            if usccs.is_empty() {
                bail!("name at least one USCC, or --file");
            }
            cli::grades::grade(&client, usccs, &model, &purpose).await
        }
        Command::Grades { command } => match command {
            GradesCommand::Watch {
                client,
                cursor,
                model,
                purpose,
            } => cli::grades::watch(&client, &cursor, &model, &purpose).await,
            GradesCommand::Stats {
                client,
                model,
                by_region,
                by_industry,
            } => cli::grades::stats(&client, &model, by_region, by_industry).await,
        },
        Command::Audit { command } => match command {
            AuditCommand::Verify { storage, trust_key } => audit_verify(&storage, trust_key).await,
            AuditCommand::List {
                client,
                query,
                limit,
            } => cli::audit::list(&client, &query, limit).await,
            AuditCommand::Export { client, query } => cli::audit::export(&client, &query).await,
        },
        Command::Reclassify { storage } => {
            let store = storage.open_existing_store().await?;
            let total = store.count_enterprises().await? as u64;
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "reclassifying {bar:40} {pos}/{len} {elapsed} ({per_sec})",
                )
                .expect("valid template"),
            );
            let started = Instant::now();
            let (done, changes) = store
                .reclassify(credit_hub::api::today(), &|n| bar.set_position(n as u64))
                .await?;
            bar.finish_and_clear();
            eprintln!("reclassified {done} enterprises under {} models in {:.1}s; {changes} grade changes", store.models().all().len(), started.elapsed().as_secs_f64());
            Ok(())
        }
        Command::Regrade { storage, due: _ } => {
            let store = storage.open_existing_store().await?;
            let n = store.regrade_due(credit_hub::api::today()).await?;
            eprintln!("processed {n} records whose publicity window ended");
            Ok(())
        }
        Command::Records { command } => match command {
            RecordsCommand::Submit { client, file } => cli::records_submit(&client, &file).await,
            RecordsCommand::List {
                client,
                subject,
                limit,
            } => cli::records_list(&client, &subject, limit).await,
        },
        Command::Vet(args) => cli::vet::run(&args).await,
        Command::Cert { command } => cli::cert::run(command).await,
        Command::Repair { command } => cli::repair::run(command).await,
        Command::Spotcheck { command } => cli::spotcheck::run(command).await,
    }
}

/// Refuses a person key other than the one the database's persons were keyed with.
async fn confirm_person_key(
    store: &Store,
    keyer: &credit_hub::domain::ids::PersonKeyer,
) -> anyhow::Result<()> {
    use credit_hub::store::PersonKeyCheck;
    let check = store.confirm_person_key(&keyer.fingerprint()).await?;
    if let PersonKeyCheck::RecordedNow {
        persons_before: true,
    } = check
    {
        tracing::warn!("recorded this HMAC key as the one the database's persons are keyed with; persons were stored before any key was recorded, so if any stored person is no longer found, this is not the key they were keyed with");
    }
    if check == PersonKeyCheck::Other {
        bail!(
            "this database's persons were keyed with another HMAC key: with this one no stored \
             person would be found. Restore the key it was created with (--hmac-key, \
             --hmac-key-file, or hmac.key in the data directory)"
        );
    }
    Ok(())
}

async fn run_seed(storage: &StorageArgs, store: &Store, plan: SeedPlan) -> anyhow::Result<()> {
    let keyer = storage.keyer()?;
    confirm_person_key(store, &keyer).await?;
    let bar = indicatif::ProgressBar::new((plan.enterprises + plan.records) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("seeding {bar:40} {pos}/{len} {elapsed}")
            .expect("valid template"),
    );
    let started = Instant::now();
    let report = seed::seed(store, &keyer, plan, credit_hub::api::today(), &|done, _| {
        bar.set_position(done as u64)
    })
    .await?;
    bar.finish_and_clear();
    let market_token = report
        .agencies
        .iter()
        .find(|(kind, _, _)| kind == AgencyKind::MarketRegulation.label())
        .map(|(_, _, token)| token.clone())
        .context("the seed made no market-regulation agency")?;
    let market = store
        .agency_by_token(&market_token)
        .await?
        .context("the demo market-regulation agency is missing")?;
    let case = seed::remediation_case(store, &keyer, &market, credit_hub::api::today()).await?;
    let path = seed::write_tokens(&storage.data_dir, &report)?;
    eprintln!(
        "seeded {} enterprises and {} records in {:.1}s; demo tokens in {}",
        report.enterprises,
        report.records,
        started.elapsed().as_secs_f64(),
        path.display()
    );
    eprintln!(
        "annual-report remediation demo case: enterprise {case} (try `credit-hub cert issue --kind annual-report-remediation --enterprise {case}`)"
    );
    Ok(())
}

/// An Ed25519 public key as checkpoints carry it: 64 hex characters (lowercased). A
/// mistyped key must fail loudly: trusting nothing while saying the chain is intact
/// would mislead an auditor.
fn public_key_hex(value: &str) -> Result<String, String> {
    let key = value.trim().to_ascii_lowercase();
    if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "must be an Ed25519 public key in hex (64 characters), got {} characters",
            value.trim().chars().count()
        ));
    }
    Ok(key)
}

/// `credit-hub audit verify`.
async fn audit_verify(storage: &StorageArgs, mut trusted: Vec<String>) -> anyhow::Result<()> {
    // A signing key generated into the data directory lies beside the database it
    // vouches for: whoever can rewrite one can read the other and sign with it.
    let beside_the_data = storage.audit_key_file.is_none()
        && !storage.uses_postgres()
        && storage.data_dir.join("audit-signing.key").exists();
    // A key the operator named (not merely found beside the data) says checkpoints
    // are expected.
    let named_key = !trusted.is_empty() || storage.audit_key_file.is_some();
    trusted.extend(storage.audit_public_key()?);
    let store = storage.open_existing_store().await?;
    match store.verify_audit(&trusted).await? {
        Ok(v) if named_key && v.checkpoints == 0 && v.entries > 0 => {
            // Whoever could rewrite the whole chain could also delete every checkpoint:
            // with none left, the signatures vouch for nothing.
            bail!(
                "audit chain unverified: its {} entries hash together, but no signed checkpoint exists yet to check them against the trusted key (a running server signs the first one --audit-checkpoint-secs after it starts, then one per interval; if the entries are older than that, the checkpoints were deleted)",
                v.entries
            )
        }
        Ok(v) if trusted.is_empty() && v.checkpoints > 0 => {
            // Anyone able to rewrite the tables could also have re-signed the checkpoints
            // with a key of their own: without a key to trust, they prove nothing, and a
            // script reading the exit status must not take the chain for verified.
            bail!(
                "audit chain unverified: its {} entries hash together, but no trusted key was given to check the {} signed checkpoints against (give the servers' --audit-key-file / CREDIT_HUB_AUDIT_KEY_FILE, or --trust-key HEX)",
                v.entries,
                v.checkpoints
            )
        }
        Ok(v) => {
            credit_hub::out!(
                "audit chain intact: {} entries, {} signed checkpoints",
                v.entries,
                v.checkpoints
            );
            // What a signature protects: entries after the newest checkpoint could have
            // been rewritten, and newer checkpoints deleted, without breaking the chain.
            let covered = v.last_checkpoint.unwrap_or(0);
            if v.entries > covered {
                credit_hub::out!(
                    "entries {} to {} come after the last signed checkpoint: the hash chain alone holds them (a running server signs one every --audit-checkpoint-secs)",
                    covered + 1,
                    v.entries
                );
            }
            if beside_the_data && v.checkpoints > 0 {
                eprintln!(
                    "warning: the checkpoint signing key is kept in the data directory beside the database ({}): whoever could rewrite the database could read it and re-sign the checkpoints, so they prove nothing against such a person. Keep the key outside the data directory (--audit-key-file, e.g. a mounted secret)",
                    storage.data_dir.join("audit-signing.key").display()
                );
            }
            Ok(())
        }
        Err(broken) => bail!("audit chain broken: {broken}"),
    }
}

async fn serve(args: ServeArgs, demo_seed: Option<u64>) -> anyhow::Result<()> {
    let keyer = args.storage.keyer()?;
    let vetting = args.storage.vetting_policy()?;
    let certificates = args.certificates.settings(&args.storage)?;
    let (repair, calendar) = credit_hub::config::repair_rules(
        args.repair_policy_file.as_deref(),
        args.calendar_dir.as_deref(),
    )?;
    let spotcheck = match &args.spotcheck_policy_file {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            credit_hub::domain::spotcheck::SpotCheckPolicy::parse(&text)
                .map_err(|e| anyhow::anyhow!("invalid spot-check policy {}: {e}", file.display()))?
        }
        None => credit_hub::domain::spotcheck::SpotCheckPolicy::builtin(),
    };
    if !calendar.knows(credit_hub::api::today().year()) {
        tracing::warn!("the working-day calendar has no file for this year: repair deadlines count Monday to Friday only");
    }
    if args.audit_log != "on" {
        tracing::warn!(
            "the audit log is off: no call is recorded and `audit verify` will find none; \
             for measuring its cost only, never for a service partners use"
        );
    }
    let audit = AuditSettings {
        enabled: args.audit_log == "on",
        signing_key: args.storage.audit_key()?,
        checkpoint_every: Duration::from_secs(args.audit_checkpoint_secs.max(1)),
        orphan_after: Duration::from_secs(args.audit_recover_after_secs),
        queue: credit_hub::audit::DEFAULT_QUEUE,
    };
    let purposes = match &args.purposes_file {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            PurposePolicy::parse(&text)
                .map_err(|e| anyhow::anyhow!("invalid purpose policy {}: {e}", file.display()))?
        }
        None => PurposePolicy::builtin(),
    };
    let policy = ShutdownPolicy {
        announce: seconds("--shutdown-announce-secs", args.shutdown_announce_secs)?,
        drain: seconds("--drain-secs", args.drain_secs)?,
    };
    let statement_timeout = Some(seconds(
        "--statement-timeout-secs",
        args.statement_timeout_secs,
    )?)
    .filter(|t| !t.is_zero());
    if demo_seed.is_some() || !args.storage.uses_postgres() {
        // Before the serving store, whose statement timeout would cut a migration that
        // waits for a lock, or a long one, short.
        let setup = args.storage.open_store().await?;
        setup.migrate().await.context("migration failed")?;
        if let Some(seed) = demo_seed {
            if setup.count_enterprises().await? == 0 {
                run_seed(
                    &args.storage,
                    &setup,
                    SeedPlan {
                        seed,
                        ..SeedPlan::default()
                    },
                )
                .await?;
            }
            let tokens = args.storage.data_dir.join("demo-tokens.txt");
            if tokens.exists() {
                eprintln!("demo tokens: {}", tokens.display());
            } else {
                // The seed writes the tokens last: without them the data here was not
                // seeded by a finished demo (one interrupted part way leaves some of
                // the data and no way in), or the file was removed.
                eprintln!(
                    "warning: {} does not exist: this database was not seeded by a finished `demo` or `seed` (an interrupted one leaves part of the data; start again on an empty --data-dir / database), or the file was removed; `credit-hub agency add` makes a token",
                    tokens.display()
                );
            }
        }
        setup.close().await;
    }
    let store = args
        .storage
        .open_store_bounded(statement_timeout)
        .await?
        .with_grade_cache(Duration::from_millis(args.grade_cache_ms));
    if !store.is_migrated().await? {
        bail!("the PostgreSQL schema is not up to date: run `credit-hub migrate` first");
    }
    confirm_person_key(&store, &keyer).await?;
    let peers = credit_hub::peer::PeerPolicy::new(
        args.trusted_gateways.clone(),
        &args.forwarded_cert_header,
    )
    .map_err(|e| anyhow::anyhow!("--forwarded-cert-header: {e}"))?;
    let mut server = Server::bind(store, keyer, &args.listen)
        .await?
        .peers(peers)
        .vetting_policy(vetting)
        .certificates(certificates)
        .repair(repair, calendar)
        .spotcheck_policy(spotcheck)
        .regrade_every(Duration::from_secs_f64(args.regrade_interval_secs.max(1.0)))
        .audit(audit)
        .purposes(purposes)
        .default_rate_limit(Some(args.default_rate_limit).filter(|r| *r > 0))
        .max_concurrent_calls(args.max_concurrent_calls)
        .max_queued_writes_per_agency(args.max_queued_writes_per_agency)
        .request_body_pace(credit_hub::pace::BodyPace {
            grace: positive_seconds("--request-body-grace-secs", args.request_body_grace_secs)?,
            min_rate: args.request_body_min_rate,
            ..Default::default()
        })
        .max_connection_age(Duration::from_secs(args.max_connection_age_secs.max(1)));
    if !args.metrics_listen.is_empty() {
        server = server.metrics(&args.metrics_listen).await?;
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let read = |path: &PathBuf| {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
        };
        server = server.tls(credit_hub::TlsFiles {
            cert: read(cert)?,
            key: read(key)?,
            client_ca: args.tls_client_ca.as_ref().map(read).transpose()?,
        });
    }
    tracing::info!(
        addr = %server.local_addr(),
        tls = args.tls_cert.is_some(),
        mutual_tls = args.tls_client_ca.is_some(),
        "credit-hub serving"
    );
    server.run(shutdown_signal(), policy).await
}

/// A flag's seconds as a duration; refused unless finite and not negative.
fn seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| anyhow::anyhow!("{flag} {value}: give a number of seconds, 0 or more"))
}

/// [`seconds`], more than 0.
fn positive_seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    let d = seconds(flag, value)?;
    if d.is_zero() {
        bail!("{flag} {value}: give a number of seconds more than 0");
    }
    Ok(d)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}

async fn agency(command: AgencyCommand) -> anyhow::Result<()> {
    match command {
        AgencyCommand::Add {
            storage,
            name,
            kind,
            scopes,
            rate_limit,
            cert_subject,
        } => {
            let name = name.trim().to_owned();
            if name.is_empty() {
                bail!("--name cannot be empty: it is how the agency appears in lists and the audit log");
            }
            if contains_id_number_loosely(&name) {
                bail!(
                    "--name must not contain a resident ID number (the database holds none): {}",
                    mask_id_numbers_loosely(&name)
                );
            }
            let shown = |value: &str| mask_id_numbers(value);
            let kind = AgencyKind::from_label(&kind).with_context(|| {
                let kinds: Vec<_> = AgencyKind::ALL.iter().map(|k| k.label()).collect();
                format!(
                    "unknown kind {:?}; one of {}",
                    shown(&kind),
                    kinds.join(", ")
                )
            })?;
            // `--scope a,b` as well as `--scope a --scope b`.
            let scopes = scopes
                .iter()
                .flat_map(|s| s.split(','))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    let scope = Scope::from_code(s).with_context(|| {
                        let all: Vec<_> = Scope::ALL.iter().map(|s| s.code()).collect();
                        format!("unknown scope {:?}; one of {}", shown(s), all.join(", "))
                    })?;
                    match scope.only_for() {
                        Some(only) if only != kind => bail!(
                            "scope {scope} serves only {} agencies (the service checks the \
                             caller's kind too), not {}",
                            only.label(),
                            kind.label()
                        ),
                        _ => Ok(scope),
                    }
                })
                .collect::<anyhow::Result<BTreeSet<_>>>()?;
            let cert_subject = cert_subject.map(|c| c.trim().to_owned());
            if cert_subject.as_deref() == Some("") {
                bail!("--cert-subject cannot be empty");
            }
            // Stored and listed as it is: a personal certificate's subject may carry
            // its holder's ID number, which the service keeps nowhere.
            if cert_subject
                .as_deref()
                .is_some_and(contains_id_number_loosely)
            {
                bail!(
                    "--cert-subject must not contain a resident ID number (身份证号): bind \
                     the agency by a name of its certificate that carries none (its DNS or \
                     URI subject alternative name)"
                );
            }
            let store = storage.open_existing_store().await?;
            let (agency, token) = store
                .create_agency(NewAgency {
                    display_name: name,
                    kind,
                    scopes,
                    cert_subject,
                })
                .await?;
            if rate_limit.is_some() {
                // The token is shown only below: an agency whose limit could not be
                // set is revoked rather than left behind, usable by nobody.
                if let Err(e) = store.set_agency_rate_limit(&agency.id, rate_limit).await {
                    let _ = store.revoke_agency(&agency.id).await;
                    return Err(anyhow::Error::from(e).context(format!(
                        "cannot set the rate limit of agencies/{}, which was revoked; run \
                         the command again",
                        agency.id
                    )));
                }
            }

            eprintln!(
                "created agencies/{} ({})",
                agency.id,
                agency
                    .scopes
                    .iter()
                    .map(|s| s.code())
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            credit_hub::out!("{token}");
            Ok(())
        }
        AgencyCommand::List { storage } => {
            let store = storage.open_existing_store().await?;
            for listing in store.list_agencies().await? {
                let a = &listing.agency;
                credit_hub::out!(
                    "{:<28} {:<18} {:<8} {:<24} {}{}",
                    a.id,
                    a.kind.label(),
                    if listing.revoked { "revoked" } else { "active" },
                    a.display_name,
                    a.scopes
                        .iter()
                        .map(|s| s.code())
                        .collect::<Vec<_>>()
                        .join(" "),
                    listing
                        .cert_subject
                        .map(|c| format!("  certificate: {c}"))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        AgencyCommand::Revoke { storage, id } => {
            let id = id.trim_start_matches("agencies/");
            let store = storage.open_existing_store().await?;
            store.revoke_agency(id).await?;
            eprintln!("revoked agencies/{id}");
            Ok(())
        }
        AgencyCommand::RotateToken { storage, id } => {
            let id = id.trim_start_matches("agencies/");
            let store = storage.open_existing_store().await?;
            let token = store.rotate_agency_token(id).await?;
            eprintln!("agencies/{id} has a new token; the old one stops working within 5 s");
            credit_hub::out!("{token}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::secrets_on_command_line;

    fn found(args: &[&str]) -> usize {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        secrets_on_command_line(&args).len()
    }

    /// Secret values given as flags are named; a database URL without a password and
    /// the `*_FILE` forms are not.
    #[test]
    fn secret_flags_are_named() {
        assert_eq!(
            found(&["credit-hub", "serve", "--hmac-key", "0123456789abcdef"]),
            1
        );
        assert_eq!(found(&["credit-hub", "grade", "--token=abc"]), 1);
        assert_eq!(
            found(&[
                "credit-hub",
                "migrate",
                "--database-url",
                "postgres://u:pw@db/ch"
            ]),
            1
        );
        assert_eq!(
            found(&["credit-hub", "migrate", "--database-url=postgres://u@db/ch"]),
            0
        );
        assert_eq!(found(&["credit-hub", "serve", "--hmac-key-file", "/k"]), 0);
    }
}
