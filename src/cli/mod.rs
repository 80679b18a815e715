//! Client commands: the same binary calling a running service, for officers (tables) and
//! scripts (`--json`).

pub mod audit;
pub mod cert;
pub mod grades;
mod pages;
mod records_file;
pub mod repair;
pub mod spotcheck;
pub mod vet;

use std::time::Duration;

use anyhow::Context;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

use crate::proto::v1 as pb;
pub(crate) use pages::walk_pages;
use pb::record_service_client::RecordServiceClient;
use pb::registry_service_client::RegistryServiceClient;

pub use records_file::{read_numbered_records, read_records_file};

/// Prints a line on standard output like `println!`, but when the reader has gone (a
/// closed pipe, as with `| head`) exits quietly instead of panicking.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::print_line(format_args!($($arg)*))
    };
}

/// Writes one line to standard output for [`out!`].
pub fn print_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"))
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// Writes `bytes` to the file `path` whole or not at all: into a new file beside it,
/// flushed to disk, then renamed over it (keeping an existing file's permissions), so a
/// failure half-way (a full disk, a crash) never leaves a truncated certificate or
/// report where a complete one is expected. A path that is not a plain file (a device
/// such as /dev/stdout, a pipe, a symbolic link) is written through as it is. A new file
/// is readable by its owner alone: a vetting report names candidates and what was found
/// about them; `chmod` shares one on purpose.
pub fn write_file(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => return std::fs::write(path, bytes),
        _ => {}
    }
    if path.file_name().is_none() {
        return std::fs::write(path, bytes);
    }
    crate::config::replace_file(path, bytes, true)
}

/// Where the service is and who is calling.
#[derive(clap::Args, Clone)]
pub struct ClientArgs {
    /// Address of the service.
    #[arg(
        long,
        env = "CREDIT_HUB_ADDR",
        default_value = "http://127.0.0.1:50051"
    )]
    pub addr: String,
    /// Bearer token of the calling agency (see `agency add` or demo-tokens.txt); may be
    /// left out when --tls-client-cert identifies the agency.
    #[arg(
        long,
        env = "CREDIT_HUB_TOKEN",
        hide_env_values = true,
        required_unless_present = "tls_client_cert"
    )]
    pub token: Option<String>,
    /// CA certificate (PEM) that signed the server's certificate. Without it an
    /// `https://` --addr is checked against the system's trusted roots (a service
    /// behind a public gateway).
    #[arg(long, env = "CREDIT_HUB_TLS_CA")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// The agency's client certificate (PEM) for mutual TLS; needs --tls-client-key.
    #[arg(long, env = "CREDIT_HUB_TLS_CLIENT_CERT", requires = "tls_client_key")]
    pub tls_client_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --tls-client-cert.
    #[arg(long, env = "CREDIT_HUB_TLS_CLIENT_KEY", requires = "tls_client_cert")]
    pub tls_client_key: Option<std::path::PathBuf>,
    /// Print JSON lines instead of tables. The environment variable takes 1/0,
    /// true/false, yes/no or on/off, as scripts spell it.
    #[arg(long, env = "CREDIT_HUB_JSON", value_parser = clap::builder::BoolishValueParser::new())]
    pub json: bool,
}

impl std::fmt::Debug for ClientArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientArgs")
            .field("addr", &self.addr)
            .field("token", &"[REDACTED]")
            .field("tls_ca", &self.tls_ca)
            .field("tls_client_cert", &self.tls_client_cert)
            .finish()
    }
}

/// `text` padded with spaces to `width` terminal columns: a Chinese character takes two,
/// so `{:<width$}` (which counts characters) misaligns columns of Chinese text.
pub fn pad(text: &str, width: usize) -> String {
    let used = unicode_width::UnicodeWidthStr::width(text);
    format!("{text}{}", " ".repeat(width.saturating_sub(used)))
}

/// A resource name from a command-line argument that may already carry the prefix:
/// commands print `enterprises/{uscc}`, and pasting that back in must work.
pub fn resource_name(prefix: &str, id: &str) -> String {
    let id = id.trim();
    match id
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('/'))
    {
        Some(_) => id.to_string(),
        None => format!("{prefix}/{id}"),
    }
}

/// `enterprises/{uscc}` from a USCC argument, given with or without the prefix.
pub fn enterprise_name(uscc: &str) -> String {
    resource_name("enterprises", uscc)
}

/// Adds the bearer token, if any, to every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Bearer {
    /// A bearer for `token`; fails if the token cannot be sent as metadata.
    pub fn new(token: &str) -> anyhow::Result<Self> {
        Ok(Bearer(Some(
            format!("Bearer {token}")
                .parse()
                .context("token has invalid characters")?,
        )))
    }

    /// No token: the client certificate identifies the caller.
    pub fn none() -> Self {
        Bearer(None)
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            req.metadata_mut().insert("authorization", value.clone());
        }
        Ok(req)
    }
}

/// An authenticated channel to the service.
pub async fn connect(args: &ClientArgs) -> anyhow::Result<(Channel, Bearer)> {
    // The transport speaks TLS to https:// addresses only: over http:// these would be
    // ignored, and the token sent in the clear to a server never checked.
    let https = args
        .addr
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
    if (args.tls_ca.is_some() || args.tls_client_cert.is_some()) && !https {
        anyhow::bail!(
            "--tls-ca and --tls-client-cert need an https:// --addr (given {}): over http:// the connection would not be encrypted",
            args.addr
        );
    }
    let mut endpoint = Channel::from_shared(args.addr.clone())
        .context("--addr is not a URL")?
        .connect_timeout(Duration::from_secs(5));
    if https {
        let read = |path: &std::path::PathBuf| {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
        };
        let mut tls = tonic::transport::ClientTlsConfig::new();
        match &args.tls_ca {
            Some(ca) => {
                tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?))
            }
            // A service behind a public gateway: the system's trusted roots.
            None => tls = tls.with_native_roots(),
        }
        if let (Some(cert), Some(key)) = (&args.tls_client_cert, &args.tls_client_key) {
            tls = tls.identity(tonic::transport::Identity::from_pem(
                read(cert)?,
                read(key)?,
            ));
        }
        endpoint = endpoint.tls_config(tls).context("invalid TLS settings")?;
    }
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("cannot reach credit-hub at {}", args.addr))?;
    let bearer = match &args.token {
        Some(token) => Bearer::new(token)?,
        None => Bearer::none(),
    };
    Ok((channel, bearer))
}

/// A channel for the public RPCs (no credentials) at `addr`: over TLS with the
/// system's trusted roots for an `https://` address, as a bank verifying a certificate
/// reaches the service through its public gateway.
pub async fn public_channel(addr: &str) -> anyhow::Result<Channel> {
    let mut endpoint = Channel::from_shared(addr.to_string())
        .context("--addr is not a URL")?
        .connect_timeout(Duration::from_secs(5));
    if addr.starts_with("https://") {
        endpoint = endpoint
            .tls_config(tonic::transport::ClientTlsConfig::new().with_native_roots())
            .context("invalid TLS settings")?;
    }
    endpoint
        .connect()
        .await
        .with_context(|| format!("cannot reach credit-hub at {addr}"))
}

type Authed = InterceptedService<Channel, Bearer>;

fn registry(c: &(Channel, Bearer)) -> RegistryServiceClient<Authed> {
    RegistryServiceClient::with_interceptor(c.0.clone(), c.1.clone())
        .max_decoding_message_size(crate::MAX_MESSAGE_BYTES)
}

fn records(c: &(Channel, Bearer)) -> RecordServiceClient<Authed> {
    RecordServiceClient::with_interceptor(c.0.clone(), c.1.clone())
        .max_decoding_message_size(crate::MAX_MESSAGE_BYTES)
}

/// Turns a status into an error that says what the service said, field by field.
pub fn explain(status: Status) -> anyhow::Error {
    use tonic_types::StatusExt;
    let violations = status
        .get_details_bad_request()
        .map(|bad| bad.field_violations)
        .unwrap_or_default();
    // The message of a refused request lists the same violations the details do:
    // say it once, one field per line.
    let mut text = if violations.is_empty() {
        format!("{:?}: {}", status.code(), status.message())
    } else {
        format!("{:?}: the request was refused:", status.code())
    };
    for v in violations {
        text.push_str(&format!("\n  {}: {}", v.field, v.description));
    }
    if status.code() == tonic::Code::Internal && status.message().contains("h2 protocol error") {
        // What a client hears from something that is not a gRPC server.
        text.push_str("\n  (is --addr / CREDIT_HUB_ADDR the address of a credit-hub server?)");
    }
    if let Some(failed) = status.get_details_precondition_failure() {
        for v in failed.violations {
            text.push_str(&format!(
                "\n  {} ({}): {}",
                v.r#type, v.subject, v.description
            ));
        }
    }
    anyhow::anyhow!(text)
}

/// An enum value's name without its prefix (`MODERATE` for `TIER_MODERATE`), or the
/// number when this client does not know it.
fn enum_name<E: TryFrom<i32>>(n: i32, name: fn(&E) -> &'static str, prefix: &str) -> String {
    E::try_from(n)
        .map(|e| name(&e).trim_start_matches(prefix).to_string())
        .unwrap_or_else(|_| n.to_string())
}

/// `credit-hub enterprise get <USCC>`.
pub async fn enterprise_get(args: &ClientArgs, uscc: &str) -> anyhow::Result<()> {
    let c = connect(args).await?;
    let e = registry(&c)
        .get_enterprise(pb::GetEnterpriseRequest {
            name: enterprise_name(uscc),
        })
        .await
        .map_err(explain)?
        .into_inner()
        .enterprise
        .context("empty response")?;
    if args.json {
        crate::out!("{}", serde_json::to_string(&enterprise_json(&e))?);
        return Ok(());
    }
    let rep = e.legal_representative.as_ref();
    crate::out!("统一社会信用代码  {}", e.uscc);
    crate::out!("名称              {}", e.display_name);
    if !e.former_names.is_empty() {
        crate::out!("曾用名            {}", e.former_names.join("、"));
    }
    crate::out!(
        "类型              {}",
        enum_name(e.kind, pb::EnterpriseKind::as_str_name, "ENTERPRISE_KIND_")
    );
    crate::out!(
        "状态              {}",
        enum_name(
            e.status,
            pb::EnterpriseStatus::as_str_name,
            "ENTERPRISE_STATUS_"
        )
    );
    crate::out!("成立日期          {}", e.established_date);
    crate::out!("行政区划 / 行业   {} / {}", e.region_code, e.industry_code);
    if let Some(p) = rep {
        crate::out!("法定代表人        {} ({})", p.name, p.masked_id_number);
    }
    for r in &e.roles {
        let p = r.person.clone().unwrap_or_default();
        crate::out!(
            "  {:<22} {} ({}) {}..{}",
            enum_name(r.kind, pb::RoleKind::as_str_name, "ROLE_KIND_"),
            p.name,
            p.masked_id_number,
            r.start_date,
            r.end_date
        );
    }
    Ok(())
}

fn enterprise_json(e: &pb::Enterprise) -> serde_json::Value {
    serde_json::json!({
        "name": e.name,
        "uscc": e.uscc,
        "display_name": e.display_name,
        "former_names": e.former_names,
        "kind": enum_name(e.kind, pb::EnterpriseKind::as_str_name, "ENTERPRISE_KIND_"),
        "status": enum_name(e.status, pb::EnterpriseStatus::as_str_name, "ENTERPRISE_STATUS_"),
        "established_date": e.established_date,
        "region_code": e.region_code,
        "industry_code": e.industry_code,
        "legal_representative": e.legal_representative.as_ref().map(|p| serde_json::json!({"name": p.name, "masked_id_number": p.masked_id_number})),
        "roles": e.roles.iter().map(|r| {
            let p = r.person.clone().unwrap_or_default();
            serde_json::json!({"kind": enum_name(r.kind, pb::RoleKind::as_str_name, "ROLE_KIND_"), "name": p.name, "masked_id_number": p.masked_id_number, "start_date": r.start_date, "end_date": r.end_date})
        }).collect::<Vec<_>>(),
    })
}

fn record_json(r: &pb::Record) -> serde_json::Value {
    let subject = match r.subject.as_ref().and_then(|s| s.subject.as_ref()) {
        Some(pb::subject::Subject::Enterprise(n)) => serde_json::json!({"enterprise": n}),
        Some(pb::subject::Subject::Person(p)) => {
            serde_json::json!({"person": {"name": p.name, "masked_id_number": p.masked_id_number}})
        }
        None => serde_json::Value::Null,
    };
    let prov = r.provenance.clone().unwrap_or_default();
    serde_json::json!({
        "name": r.name,
        "subject": subject,
        "kind": enum_name(r.kind, pb::RecordKind::as_str_name, "RECORD_KIND_"),
        "tier": enum_name(r.tier, pb::Tier::as_str_name, "TIER_"),
        "domain": enum_name(r.domain, pb::RegulatoryDomain::as_str_name, "REGULATORY_DOMAIN_"),
        "decision_date": r.decision_date,
        "document_number": r.document_number,
        "deciding_authority": r.deciding_authority,
        "publicity_end_date": r.publicity_end_date,
        "status": enum_name(r.status, pb::RecordStatus::as_str_name, "RECORD_STATUS_"),
        "agency": prov.agency,
        "source_record_id": prov.source_record_id,
        "revision": prov.revision,
    })
}

/// `credit-hub records list --subject <USCC>`.
pub async fn records_list(args: &ClientArgs, subject: &str, limit: usize) -> anyhow::Result<()> {
    let c = connect(args).await?;
    let mut client = records(&c);
    let mut shown = 0;
    if !args.json {
        crate::out!(
            "{} {} {} {} {} 文号",
            pad("记录", 40),
            pad("类型", 34),
            pad("等级", 9),
            pad("决定日期", 11),
            pad("状态", 10)
        );
    }
    let more = walk_pages(
        async |page_token| {
            let page = client
                .list_records(pb::ListRecordsRequest {
                    subject_enterprise: enterprise_name(subject),
                    page_size: 200,
                    page_token,
                    ..Default::default()
                })
                .await
                .map_err(explain)?
                .into_inner();
            Ok((page.records, page.next_page_token))
        },
        |r| {
            if shown == limit {
                return Ok(false);
            }
            shown += 1;
            let j = record_json(&r);
            if args.json {
                crate::out!("{}", serde_json::to_string(&j)?);
            } else {
                crate::out!(
                    "{:<40} {:<34} {:<9} {:<11} {:<10} {}",
                    r.name,
                    j["kind"].as_str().unwrap_or(""),
                    j["tier"].as_str().unwrap_or(""),
                    r.decision_date,
                    j["status"].as_str().unwrap_or(""),
                    r.document_number
                );
            }
            Ok(true)
        },
    )
    .await?;
    if !args.json {
        crate::out!("({shown} records)");
    }
    if more {
        eprintln!("more records exist than the {limit} shown: raise --limit to see them");
    }
    Ok(())
}

/// `status` with each field violation about `records[i]` of a batch renamed to the file
/// line the record came from (`FILE:LINE: records[i].field`), which is what a clerk
/// can find in the file.
fn on_file_lines(status: Status, file: &std::path::Path, lines: &[usize]) -> Status {
    use tonic_types::{ErrorDetails, StatusExt};
    let Some(mut bad) = status.get_details_bad_request() else {
        return status;
    };
    for v in &mut bad.field_violations {
        let index = v
            .field
            .strip_prefix("records[")
            .and_then(|rest| rest.split_once(']'))
            .and_then(|(i, _)| i.parse::<usize>().ok());
        if let Some(line) = index.and_then(|i| lines.get(i)) {
            v.field = format!("{}:{line}: {}", file.display(), v.field);
        }
    }
    let mut details = ErrorDetails::new();
    details.set_bad_request(bad.field_violations);
    Status::with_error_details(status.code(), status.message(), details)
}

/// Most times a batch is sent again after RESOURCE_EXHAUSTED (the agency's quota) or
/// UNAVAILABLE (the service away for a moment).
const BATCH_RETRIES: u32 = 20;

/// Whether a batch answered `code` certainly left nothing written: refused for what it
/// is, not cut off (a lost connection or an unavailable database may have committed it).
fn refused_unwritten(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(
        code,
        InvalidArgument
            | FailedPrecondition
            | PermissionDenied
            | Unauthenticated
            | NotFound
            | AlreadyExists
            | OutOfRange
            | ResourceExhausted
            | Unimplemented
    )
}

/// A write's failure explained; when the answer was lost rather than refused (the
/// write may have happened), with how to find out without writing twice: the same
/// request id returns the first answer.
pub(crate) fn write_failed(status: tonic::Status, maybe: &str, request_id: &str) -> anyhow::Error {
    let unknown = matches!(
        status.code(),
        tonic::Code::Unavailable
            | tonic::Code::Unknown
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Cancelled
            | tonic::Code::Internal
    );
    let e = explain(status);
    if unknown {
        e.context(format!("{maybe}: run again with --request-id {request_id}"))
    } else {
        e
    }
}

/// `credit-hub records submit FILE.jsonl`: batches of 1,000 with a progress bar; each
/// batch is atomic and carries a request id derived from its own content, so running
/// the command again after a failure (or on a file grown or edited since) writes no
/// batch twice.
pub async fn records_submit(args: &ClientArgs, file: &std::path::Path) -> anyhow::Result<()> {
    let (lines, all): (Vec<usize>, Vec<pb::Record>) =
        read_numbered_records(file)?.into_iter().unzip();
    let c = connect(args).await?;
    let mut client = records(&c);
    let bar = indicatif::ProgressBar::new(all.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} records {elapsed}")
            .expect("valid template"),
    );
    // Notices go to stderr above the bar; without a terminal (a script, cron, `2>log`)
    // the bar draws nothing and would swallow them, so they are printed plainly.
    let notice = |line: String| {
        if bar.is_hidden() {
            eprintln!("{line}");
        } else {
            bar.println(line);
        }
    };
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for (b, chunk) in all.chunks(1000).enumerate() {
        let request = pb::BatchSubmitRecordsRequest {
            request_id: crate::cli::records_file::batch_request_id(chunk),
            records: chunk.to_vec(),
        };
        let mut retries = 0;
        let response = loop {
            match client.batch_submit_records(request.clone()).await {
                Ok(response) => break response.into_inner(),
                Err(s) => {
                    use tonic_types::StatusExt;
                    let told = s.get_details_retry_info().and_then(|r| r.retry_delay);
                    // Over quota: wait as told. Unavailable (a replica draining for a
                    // deploy, the database away, the connection lost): the batch's
                    // request id makes sending it again safe, whether or not the first
                    // attempt was written.
                    let wait = match s.code() {
                        tonic::Code::ResourceExhausted => told,
                        tonic::Code::Unavailable => Some(
                            told.unwrap_or(std::time::Duration::from_secs(1 << retries.min(4))),
                        ),
                        _ => None,
                    };
                    if let Some(wait) = wait.filter(|_| retries < BATCH_RETRIES) {
                        retries += 1;
                        if s.code() == tonic::Code::Unavailable {
                            notice(format!(
                                "batch {} not answered ({}); sending it again in {} s",
                                b + 1,
                                s.message(),
                                wait.as_secs_f64()
                            ));
                        }
                        tokio::time::sleep(wait.min(std::time::Duration::from_secs(30))).await;
                        continue;
                    }
                    bar.abandon();
                    let lines = &lines[b * 1000..b * 1000 + chunk.len()];
                    let what = if refused_unwritten(s.code()) {
                        "was refused; nothing of it was written"
                    } else {
                        "failed and may or may not have been written; run the same command \
                         again: a batch already written is recognised and not written twice"
                    };
                    return Err(explain(on_file_lines(s, file, lines)).context(format!(
                        "batch {} (lines {}-{}) {what}",
                        b + 1,
                        lines[0],
                        lines[lines.len() - 1]
                    )));
                }
            }
        };
        // Passed over, not written: say which lines, so the filer can look.
        for (k, o) in response.outcomes.iter().enumerate() {
            if *o == pb::SubmitOutcome::Stale as i32 {
                let given = chunk[k]
                    .provenance
                    .as_ref()
                    .map_or(1, |p| p.revision.max(1));
                let stored = response.records.get(k).and_then(|r| r.provenance.as_ref());
                notice(format!(
                    "{}:{}: stale: revision {given} is older than the stored revision {}; ignored",
                    file.display(),
                    lines[b * 1000 + k],
                    stored.map_or(0, |p| p.revision)
                ));
            }
        }
        for o in response.outcomes {
            *counts
                .entry(enum_name(
                    o,
                    pb::SubmitOutcome::as_str_name,
                    "SUBMIT_OUTCOME_",
                ))
                .or_default() += 1;
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish();
    if args.json {
        crate::out!("{}", serde_json::to_string(&counts)?);
    } else {
        for (outcome, n) in counts {
            crate::out!("{outcome:<10} {n}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn names(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A file is replaced whole, keeps its permissions, and leaves no partial file; a
    /// symbolic link is written through, not replaced.
    #[test]
    fn write_file_replaces_whole_and_keeps_what_stands_there() {
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("report.json");
        write_file(&report, b"first").unwrap();
        assert_eq!(std::fs::read(&report).unwrap(), b"first");
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&report), 0o600, "a new file is its owner's alone");
        std::fs::set_permissions(&report, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_file(&report, b"second, longer").unwrap();
        assert_eq!(std::fs::read(&report).unwrap(), b"second, longer");
        assert_eq!(mode(&report), 0o640);
        assert_eq!(names(dir.path()), ["report.json"], "no partial file left");

        let link = dir.path().join("latest.json");
        std::os::unix::fs::symlink(&report, &link).unwrap();
        write_file(&link, b"through the link").unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&report).unwrap(), b"through the link");

        // A failed write leaves nothing behind.
        let missing = dir.path().join("no-such-dir").join("x.json");
        assert!(write_file(&missing, b"x").is_err());
        assert_eq!(names(dir.path()), ["latest.json", "report.json"]);
    }
}
