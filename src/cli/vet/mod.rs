//! `credit-hub vet`: the vetting officers' client for the credit cross-check
//! (信用联查互证). It reads a candidate list as Excel exports it, streams the check with a
//! progress bar, prints a summary and writes the report as CSV and as a printable page.
//!
//! Privacy: the input's ID numbers go into the request and nowhere else. Everything
//! printed or written comes from the service's results, which carry masked ID numbers,
//! and passes through [`scrub_result`] first, so that a full ID number reaching a
//! free-text field (a swapped column, a careless message) is masked before it is shown.

mod input;
pub(crate) mod report;

use input::{load_candidates, CandidateRow};
use report::{
    order_results, render_csv, render_html, render_json_lines, render_table, scrub_result, Report,
};

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

use super::{connect, explain, ClientArgs};
use crate::proto::v1 as pb;
use pb::cross_check_response::Event;
use pb::vetting_service_client::VettingServiceClient;

/// Most candidates one cross-check accepts (the contract's limit).
pub const MAX_CANDIDATES: usize = 10_000;

/// UTF-8 byte order mark: Excel needs it to read a CSV file as UTF-8, and writes it.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Arguments of `credit-hub vet`.
#[derive(clap::Args, Debug)]
pub struct VetArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// CSV file of candidates (UTF-8, with or without BOM, or GBK as Excel saves it) with
    /// a header row: 姓名/name, 身份证号/身份证号码/公民身份号码/id_number/id, and optionally
    /// 申报企业/企业/统一社会信用代码/declared_enterprises (USCCs separated by ; ， 、 or spaces).
    pub file: PathBuf,
    /// Purpose of the vetting; selects the policy the service applies.
    #[arg(long, value_enum, env = "CREDIT_HUB_VETTING_PURPOSE")]
    pub purpose: VettingPurposeArg,
    /// The office's case or batch reference (文号 / 批次号), at most 128 characters.
    #[arg(long = "case", env = "CREDIT_HUB_CASE_REFERENCE")]
    pub case_reference: String,
    /// Directory the report files (<report id>.csv and .html) are written to.
    #[arg(long, env = "CREDIT_HUB_VETTING_OUT_DIR", default_value = ".")]
    pub out_dir: PathBuf,
    /// Idempotency key: running again with the id printed by a run that broke off gets
    /// that run's report instead of checking twice. A new one is made when left out.
    // No environment variable on purpose: one left set would silently replay an old
    // report for every later check.
    #[arg(long)]
    pub request_id: Option<String>,
}

/// The purposes a command line names, as `--purpose` takes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum VettingPurposeArg {
    /// Developing party members (发展党员).
    PartyMember,
    /// Village (community) committee candidates (村(居)委会换届候选人).
    VillageCommittee,
    /// Representatives of the non-public economy (非公有制经济代表人士).
    NonPublicEconomy,
    /// Nominees for public honours (评优评先).
    PublicHonor,
    /// Any other purpose, under the default policy (其他).
    Other,
}

impl VettingPurposeArg {
    /// The contract's enum value.
    pub fn proto(self) -> pb::VettingPurpose {
        match self {
            Self::PartyMember => pb::VettingPurpose::PartyMemberDevelopment,
            Self::VillageCommittee => pb::VettingPurpose::VillageCommitteeCandidate,
            Self::NonPublicEconomy => pb::VettingPurpose::NonPublicEconomyRepresentative,
            Self::PublicHonor => pb::VettingPurpose::PublicHonorNomination,
            Self::Other => pb::VettingPurpose::Other,
        }
    }

    /// How the report names the purpose.
    pub fn label(self) -> &'static str {
        match self {
            Self::PartyMember => "发展党员",
            Self::VillageCommittee => "村（居）委会换届候选人",
            Self::NonPublicEconomy => "非公有制经济代表人士",
            Self::PublicHonor => "评优评先",
            Self::Other => "其他",
        }
    }
}

/// `credit-hub vet FILE --purpose P --case REF`.
pub async fn run(args: &VetArgs) -> anyhow::Result<()> {
    if args.case_reference.trim().is_empty() {
        bail!("--case cannot be empty");
    }
    let rows = load_candidates(&args.file)?;
    let request_id = args
        .request_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let request = pb::CrossCheckRequest {
        purpose: args.purpose.proto() as i32,
        case_reference: args.case_reference.trim().to_string(),
        candidates: rows.iter().map(CandidateRow::to_proto).collect(),
        request_id: request_id.clone(),
    };
    let (channel, bearer) = connect(&args.client).await?;
    let mut client = VettingServiceClient::with_interceptor(channel, bearer);
    eprintln!(
        "checking {} candidates (request id {request_id})",
        rows.len()
    );
    let (results, summary) = stream_check(&mut client, request, rows.len()).await?;
    // The report's own time: a replayed one (run again with its request id) states
    // the verdicts as of its first run, not of today.
    let made = summary
        .create_time
        .as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(|t| t.with_timezone(&chrono::Local))
        .unwrap_or_else(chrono::Local::now);
    let report = Report {
        purpose: args.purpose,
        case_reference: args.case_reference.trim().to_string(),
        time: made.format("%Y-%m-%d %H:%M:%S").to_string(),
        lines: rows.iter().map(|r| r.line).collect(),
        results: order_results(results, rows.len())?
            .into_iter()
            .map(scrub_result)
            .collect(),
        summary,
    };
    let text = if args.client.json {
        render_json_lines(&report)?
    } else {
        render_table(&report)
    };
    // A reader that stopped early (`| head`) must not cost the officer the report files.
    if let Err(e) = std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e).context("cannot write to stdout");
        }
    }
    let (csv_path, html_path) = write_report_files(&args.out_dir, &report)?;
    eprintln!("{}", csv_path.display());
    eprintln!("{}", html_path.display());
    Ok(())
}

type Client = VettingServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, super::Bearer>,
>;

/// Runs the check and collects the stream, showing progress on stderr. Fails if the
/// service refuses the request or the stream ends without its summary; the latter says
/// how to get the report without checking everyone twice.
async fn stream_check(
    client: &mut Client,
    request: pb::CrossCheckRequest,
    total: usize,
) -> anyhow::Result<(Vec<pb::CandidateResult>, pb::CrossCheckSummary)> {
    let retry = format!(
        "run again with --request-id {} to get this check's report",
        request.request_id
    );
    let mut stream = match client.cross_check(request).await {
        Ok(response) => response.into_inner(),
        // At capacity, over the office's rate, or its database away: nothing ran.
        Err(status)
            if matches!(
                status.code(),
                tonic::Code::ResourceExhausted | tonic::Code::Unavailable
            ) =>
        {
            return Err(explain(status).context(format!("the service is busy; {retry}")));
        }
        Err(status) => return Err(explain(status).context("the service refused the check")),
    };
    let bar = progress_bar(total);
    let mut results = Vec::with_capacity(total);
    let mut summary = None;
    loop {
        let message = match stream.message().await {
            Ok(Some(message)) => message,
            Ok(None) => break,
            Err(status) => {
                bar.abandon();
                let context = if is_refusal(status.code()) {
                    "the service refused the check".to_string()
                } else {
                    format!(
                        "the stream broke off after {} of {total} results; {retry}",
                        results.len()
                    )
                };
                return Err(explain(status).context(context));
            }
        };
        if summary.is_some() {
            bar.abandon();
            bail!("the service sent a message after the summary");
        }
        match message.event {
            Some(Event::Result(result)) => {
                results.push(result);
                bar.inc(1);
            }
            Some(Event::Summary(s)) => summary = Some(s),
            // An event this client does not know (a newer contract) decodes as none.
            None => {}
        }
    }
    let Some(summary) = summary else {
        bar.abandon();
        bail!(
            "the stream ended after {} of {total} results without a summary; {retry}",
            results.len()
        );
    };
    bar.finish_and_clear();
    Ok((results, summary))
}

/// Codes by which the service turns the request down (possibly only once streaming),
/// as opposed to the call breaking, after which a retry may help.
fn is_refusal(code: tonic::Code) -> bool {
    use tonic::Code as C;
    matches!(
        code,
        C::InvalidArgument
            | C::PermissionDenied
            | C::Unauthenticated
            | C::NotFound
            | C::FailedPrecondition
            | C::ResourceExhausted
            | C::OutOfRange
            | C::Unimplemented
    )
}

fn progress_bar(total: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} candidates {elapsed}")
            .expect("valid template"),
    );
    // Ticks keep the elapsed time moving while the service gathers the first results.
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

// ---------------------------------------------------------------------------------
// Files

/// The `{id}` of `vettingReports/{id}`, checked to be safe as a file name since it comes
/// from the network.
pub fn report_id(name: &str) -> anyhow::Result<&str> {
    let id = name.strip_prefix("vettingReports/").unwrap_or_default();
    let safe = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !safe {
        bail!("the service named the report {name:?}, which cannot name a file");
    }
    Ok(id)
}

/// Writes `<id>.csv` and `<id>.html` into `dir` (created if missing); returns their paths.
fn write_report_files(dir: &Path, report: &Report) -> anyhow::Result<(PathBuf, PathBuf)> {
    let name = &report.summary.report;
    let id = report_id(name)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let csv_path = dir.join(format!("{id}.csv"));
    let html_path = dir.join(format!("{id}.html"));
    let write = |path: &Path, bytes: &[u8]| {
        crate::cli::write_file(path, bytes).with_context(|| {
            format!(
                "cannot write {} (the report is kept by the service as {name})",
                path.display()
            )
        })
    };
    write(&csv_path, &render_csv(report)?)?;
    write(&html_path, render_html(report).as_bytes())?;
    Ok((csv_path, html_path))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn report_ids_must_be_safe_file_names() {
        assert_eq!(report_id("vettingReports/0195-abc").unwrap(), "0195-abc");
        for bad in [
            "vettingReports/../x",
            "vettingReports/a/b",
            "vettingReports/",
            "reports/x",
            "",
        ] {
            assert!(report_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_purpose_maps_to_a_contract_value() {
        use clap::ValueEnum;
        for p in VettingPurposeArg::value_variants() {
            assert_ne!(p.proto(), pb::VettingPurpose::Unspecified);
        }
        let names: Vec<_> = VettingPurposeArg::value_variants()
            .iter()
            .filter_map(|p| p.to_possible_value())
            .map(|v| v.get_name().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "party-member",
                "village-committee",
                "non-public-economy",
                "public-honor",
                "other"
            ]
        );
    }
}

/// The stream handling against a stand-in service, over a real local connection.
#[cfg(test)]
mod stream_tests {
    use super::*;
    use pb::vetting_service_server::{VettingService, VettingServiceServer};
    use tonic::{Code, Status};

    type Messages = Vec<Result<pb::CrossCheckResponse, Status>>;

    /// Answers every CrossCheck with the messages its function gives.
    struct StandIn(fn() -> Messages);

    #[tonic::async_trait]
    impl VettingService for StandIn {
        async fn cross_check(
            &self,
            _: tonic::Request<pb::CrossCheckRequest>,
        ) -> Result<tonic::Response<tonic::codegen::BoxStream<pb::CrossCheckResponse>>, Status>
        {
            Ok(tonic::Response::new(Box::pin(tokio_stream::iter(
                (self.0)(),
            ))))
        }
    }

    async fn client(messages: fn() -> Messages) -> Client {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(VettingServiceServer::new(StandIn(messages)))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        VettingServiceClient::with_interceptor(channel, super::super::Bearer::none())
    }

    fn result(index: i32) -> Result<pb::CrossCheckResponse, Status> {
        Ok(pb::CrossCheckResponse {
            event: Some(Event::Result(pb::CandidateResult {
                index,
                verdict: pb::Verdict::Clear as i32,
                ..Default::default()
            })),
        })
    }

    fn summary() -> Result<pb::CrossCheckResponse, Status> {
        Ok(pb::CrossCheckResponse {
            event: Some(Event::Summary(pb::CrossCheckSummary {
                report: "vettingReports/r1".into(),
                clear_count: 2,
                ..Default::default()
            })),
        })
    }

    fn request() -> pb::CrossCheckRequest {
        pb::CrossCheckRequest {
            request_id: "req-7".into(),
            ..Default::default()
        }
    }

    async fn check(messages: fn() -> Messages) -> anyhow::Result<usize> {
        let (results, summary) = stream_check(&mut client(messages).await, request(), 2).await?;
        assert_eq!(summary.report, "vettingReports/r1");
        Ok(results.len())
    }

    #[tokio::test]
    async fn results_in_any_order_then_the_summary_complete_the_check() {
        let n = check(|| vec![result(1), result(0), summary()])
            .await
            .unwrap();
        assert_eq!(n, 2);
    }

    #[tokio::test]
    async fn a_stream_without_summary_fails_with_a_retry_hint() {
        let err = check(|| vec![result(0), result(1)]).await.unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("without a summary"), "{text}");
        assert!(text.contains("--request-id req-7"), "{text}");
    }

    #[tokio::test]
    async fn a_stream_that_breaks_fails_with_a_retry_hint() {
        let err = check(|| vec![result(0), Err(Status::unavailable("gone"))])
            .await
            .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("broke off after 1 of 2"), "{text}");
        assert!(text.contains("--request-id req-7"), "{text}");
    }

    #[tokio::test]
    async fn a_refusal_says_so_without_a_retry_hint() {
        let err = check(|| vec![Err(Status::new(Code::PermissionDenied, "no vetting:run"))])
            .await
            .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("refused"), "{text}");
        assert!(text.contains("no vetting:run"), "{text}");
        assert!(!text.contains("--request-id"), "{text}");
    }

    #[tokio::test]
    async fn a_message_after_the_summary_is_an_error() {
        let err = check(|| vec![result(0), result(1), summary(), result(1)])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("after the summary"), "{err}");
    }
}
