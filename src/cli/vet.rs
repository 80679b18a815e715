//! `credit-hub vet`: the vetting officers' client for the credit cross-check
//! (信用联查互证). It reads a candidate list as Excel exports it, streams the check with a
//! progress bar, prints a summary and writes the report as CSV and as a printable page.
//!
//! Privacy: the input's ID numbers go into the request and nowhere else. Everything
//! printed or written comes from the service's results, which carry masked ID numbers,
//! and passes through [`scrub_result`] first, so that a full ID number reaching a
//! free-text field (a swapped column, a careless message) is masked before it is shown.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

use super::{connect, enum_name, explain, ClientArgs};
use crate::proto::v1 as pb;
use pb::cross_check_response::Event;
use pb::vetting_service_client::VettingServiceClient;

/// Most candidates one cross-check accepts (the contract's limit).
pub const MAX_CANDIDATES: usize = 10_000;

/// UTF-8 byte order mark: Excel needs it to read a CSV file as UTF-8, and writes it.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Headers (trimmed, lower-cased) recognised for each column.
const NAME_HEADERS: &[&str] = &["姓名", "name"];
const ID_HEADERS: &[&str] = &["身份证号", "身份证号码", "公民身份号码", "id_number", "id"];
const DECLARED_HEADERS: &[&str] = &[
    "申报企业",
    "企业",
    "统一社会信用代码",
    "declared_enterprises",
];

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

/// One candidate as read from the file.
#[derive(Clone, PartialEq, Eq)]
pub struct CandidateRow {
    /// Line of the file the candidate starts on (the header is line 1), so an officer
    /// can find the row in Excel.
    pub line: u64,
    /// Name as written, trimmed.
    pub name: String,
    /// ID number as written, trimmed; deliberately not validated here (the service marks
    /// a malformed one INVALID without failing the whole list).
    pub id_number: String,
    /// USCCs the candidate declares, as written.
    pub declared_enterprises: Vec<String>,
}

// Hand-written so that a `{:?}` someone adds later cannot print a full ID number.
impl std::fmt::Debug for CandidateRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CandidateRow")
            .field("line", &self.line)
            .field("name", &self.name)
            .field("id_number", &"[REDACTED]")
            .field("declared_enterprises", &self.declared_enterprises)
            .finish()
    }
}

impl CandidateRow {
    fn to_proto(&self) -> pb::Candidate {
        pb::Candidate {
            name: self.name.clone(),
            id_number: self.id_number.clone(),
            declared_enterprises: self.declared_enterprises.clone(),
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
    let report = Report {
        purpose: args.purpose,
        case_reference: args.case_reference.trim().to_string(),
        time: chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string(),
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
    let mut stream = client
        .cross_check(request)
        .await
        .map_err(explain)
        .context("the service refused the check")?
        .into_inner();
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
// Reading the candidate list

/// Reads and parses a candidate file; errors name the file, never a candidate's ID.
pub fn load_candidates(path: &Path) -> anyhow::Result<Vec<CandidateRow>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = decode_text(&bytes).with_context(|| format!("cannot decode {}", path.display()))?;
    let rows = parse_candidates(&text)
        .with_context(|| format!("cannot read candidates from {}", path.display()))?;
    if rows.is_empty() {
        bail!("{} lists no candidates", path.display());
    }
    if rows.len() > MAX_CANDIDATES {
        bail!(
            "{} lists {} candidates; one check takes at most {MAX_CANDIDATES}: split the list",
            path.display(),
            rows.len()
        );
    }
    Ok(rows)
}

/// The text of a CSV file as Excel may have saved it: UTF-8 with or without a BOM, else
/// GBK (Excel's "CSV (逗号分隔)" on Chinese Windows).
pub fn decode_text(bytes: &[u8]) -> anyhow::Result<Cow<'_, str>> {
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        bail!("the file is UTF-16 (Excel's \"Unicode text\"); save it as \"CSV UTF-8\" instead");
    }
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok(Cow::Borrowed(text));
    }
    encoding_rs::GBK
        .decode_without_bom_handling_and_without_replacement(bytes)
        .context("the file is neither UTF-8 nor GBK text; save it as \"CSV UTF-8\"")
}

/// Where the columns are, found by their headers.
struct Columns {
    name: usize,
    id: usize,
    declared: Option<usize>,
}

impl Columns {
    fn find(headers: &csv::StringRecord) -> anyhow::Result<Self> {
        let find = |names: &[&str]| {
            headers
                .iter()
                .position(|h| names.contains(&h.trim().to_lowercase().as_str()))
        };
        let (name, id) = (find(NAME_HEADERS), find(ID_HEADERS));
        if let (Some(name), Some(id)) = (name, id) {
            return Ok(Columns {
                name,
                id,
                declared: find(DECLARED_HEADERS),
            });
        }
        let mut missing = Vec::new();
        if name.is_none() {
            missing.push(NAME_HEADERS.join("/"));
        }
        if id.is_none() {
            missing.push(ID_HEADERS.join("/"));
        }
        // A file without a header row starts with a candidate: say so rather than list
        // the "columns", which would be a person's name and ID number.
        let looks_like_id = |h: &str| h.bytes().filter(u8::is_ascii_digit).count() >= 15;
        if headers.iter().any(looks_like_id) {
            bail!(
                "the first row looks like a candidate, not a header; add a header row with the columns {}",
                missing.join(" and ")
            );
        }
        let found: Vec<_> = headers.iter().map(|h| format!("{:?}", h.trim())).collect();
        bail!(
            "no column {} in the header row; columns found: {}",
            missing.join(" and no column "),
            found.join(", ")
        )
    }
}

/// Parses CSV text with a header row into candidates, skipping empty rows.
pub fn parse_candidates(text: &str) -> anyhow::Result<Vec<CandidateRow>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .delimiter(sniff_delimiter(text))
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .context("cannot read the header row")?
        .clone();
    if headers.iter().all(|h| h.trim().is_empty()) {
        bail!("no header row (e.g. 姓名,身份证号,申报企业)");
    }
    let columns = Columns::find(&headers)?;
    let mut lines = LineCounter::new(text);
    let mut rows = Vec::new();
    for record in reader.records() {
        // csv's messages give positions, never field contents.
        let record = record.context("not a readable CSV file")?;
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let cell = |i: usize| record.get(i).unwrap_or("").trim();
        rows.push(CandidateRow {
            line: record.position().map_or(0, |p| lines.line_at(p.byte())),
            name: cell(columns.name).to_string(),
            id_number: cell(columns.id).to_string(),
            declared_enterprises: columns
                .declared
                .map(|i| split_declared(cell(i)))
                .unwrap_or_default(),
        });
    }
    Ok(rows)
}

/// File line numbers of rows, from their byte offsets. csv's own `Position::line` is one
/// short after CRLF line ends (Excel's): it places a row's start before the `\n` that ends
/// the previous row.
struct LineCounter<'a> {
    text: &'a [u8],
    offset: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a str) -> Self {
        LineCounter {
            text: text.as_bytes(),
            offset: 0,
            line: 1,
        }
    }

    /// The line of the row starting at `byte`; rows must be asked for in file order.
    fn line_at(&mut self, byte: u64) -> u64 {
        let byte = usize::try_from(byte)
            .unwrap_or(usize::MAX)
            .min(self.text.len());
        let skipped = self.text[byte..]
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        let start = (byte + skipped).max(self.offset);
        let breaks = self.text[self.offset..start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.line += breaks as u64;
        self.offset = start;
        self.line
    }
}

/// Tab when the header line has tabs and no commas (Excel's "text" export), else comma.
fn sniff_delimiter(text: &str) -> u8 {
    let header = text.lines().next().unwrap_or("");
    if header.contains('\t') && !header.contains(',') {
        b'\t'
    } else {
        b','
    }
}

/// The USCCs in a declared-enterprises cell: officers separate them with whatever their
/// keyboard gives (; ； 、 , ， or spaces, also line breaks inside the cell).
pub fn split_declared(cell: &str) -> Vec<String> {
    cell.split(|c: char| matches!(c, ';' | '；' | '、' | ',' | '，') || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------
// Results

/// Puts the results in input order (the stream need not be) and checks there is exactly
/// one per candidate, so that a report never silently leaves someone out.
pub fn order_results(
    mut results: Vec<pb::CandidateResult>,
    total: usize,
) -> anyhow::Result<Vec<pb::CandidateResult>> {
    results.sort_by_key(|r| r.index);
    // After sorting, one result per candidate means position i holds index i.
    let mismatch = (0..total.max(results.len())).find(|&i| {
        i >= total || results.get(i).and_then(|r| usize::try_from(r.index).ok()) != Some(i)
    });
    if let Some(i) = mismatch {
        bail!(
            "the service returned {} results for {total} candidates (at position {}: missing, repeated or extra)",
            results.len(),
            i + 1
        );
    }
    Ok(results)
}

/// Masks anything in a result that could be a full ID number: the masked number itself
/// if it came back unmasked, and ID-shaped text in the name, descriptions, document
/// numbers and invalid reasons.
pub fn scrub_result(mut r: pb::CandidateResult) -> pb::CandidateResult {
    r.name = scrub(&r.name).into_owned();
    r.masked_id_number = mask_id_field(&r.masked_id_number);
    for f in &mut r.findings {
        f.description = scrub(&f.description).into_owned();
        if let Some(record) = &mut f.record {
            record.document_number = scrub(&record.document_number).into_owned();
        }
    }
    for reason in &mut r.invalid_reasons {
        *reason = scrub(reason).into_owned();
    }
    r
}

/// The masked-ID field as shown: kept when it is masked, else masked here as the service
/// does (first 6 and last 4 characters kept).
fn mask_id_field(value: &str) -> String {
    if value.contains('*') {
        return scrub(value).into_owned();
    }
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= 10 {
        return "*".repeat(chars.len());
    }
    let keep_end = chars.len() - 4;
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < 6 || i >= keep_end { *c } else { '*' })
        .collect()
}

/// Masks every resident ID number in `text` (18 characters, or 15 digits of the old
/// form, with a plausible birth date), keeping its first 6 and last 4 characters.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !is_id_char(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_id_char(bytes[i]) {
            i += 1;
        }
        // Runs are ASCII, so these byte offsets are character boundaries.
        let run = &text[start..i];
        if looks_like_id(run) {
            let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
            out.push_str(&text[copied..start]);
            out.push_str(&run[..6]);
            out.push_str(&"*".repeat(run.len() - 10));
            out.push_str(&run[run.len() - 4..]);
            copied = i;
        }
    }
    match out {
        Some(mut out) => {
            out.push_str(&text[copied..]);
            Cow::Owned(out)
        }
        None => Cow::Borrowed(text),
    }
}

fn is_id_char(b: u8) -> bool {
    b.is_ascii_digit() || b == b'X' || b == b'x'
}

/// 18 characters (17 digits and a digit or X) with a date at 7-14, or 15 digits with a
/// date at 7-12. The date check keeps all-digit USCCs (e.g. 914403001922038216) readable.
fn looks_like_id(run: &str) -> bool {
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let month_day = |s: &str| {
        let (m, d) = (s[..2].parse::<u32>(), s[2..4].parse::<u32>());
        matches!((m, d), (Ok(1..=12), Ok(1..=31)))
    };
    match run.len() {
        18 => {
            digits(&run[..17])
                && matches!(run[6..8].parse::<u32>(), Ok(18..=20))
                && month_day(&run[10..14])
        }
        15 => digits(run) && month_day(&run[8..12]),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------
// Rendering

/// A finished check, as the outputs show it.
pub struct Report {
    /// Purpose of the vetting.
    pub purpose: VettingPurposeArg,
    /// The office's case reference.
    pub case_reference: String,
    /// When the check finished, local time.
    pub time: String,
    /// The file line of each candidate, by index.
    pub lines: Vec<u64>,
    /// Results in input order, already passed through [`scrub_result`].
    pub results: Vec<pb::CandidateResult>,
    /// The service's totals.
    pub summary: pb::CrossCheckSummary,
}

impl Report {
    fn line_of(&self, r: &pb::CandidateResult) -> u64 {
        usize::try_from(r.index)
            .ok()
            .and_then(|i| self.lines.get(i).copied())
            .unwrap_or(0)
    }
}

fn verdict(n: i32) -> pb::Verdict {
    pb::Verdict::try_from(n).unwrap_or(pb::Verdict::Unspecified)
}

fn verdict_label(n: i32) -> &'static str {
    match verdict(n) {
        pb::Verdict::Clear => "通过",
        pb::Verdict::Review => "需复核",
        pb::Verdict::Adverse => "不通过",
        pb::Verdict::Invalid => "无效",
        pb::Verdict::Unspecified => "未知",
    }
}

/// A finding's own verdict: a CLEAR finding is one the policy notes but does not count.
fn finding_verdict_label(n: i32) -> &'static str {
    match verdict(n) {
        pb::Verdict::Clear => "仅供参考",
        _ => verdict_label(n),
    }
}

fn verdict_code(n: i32) -> &'static str {
    verdict(n).as_str_name().trim_start_matches("VERDICT_")
}

fn role_label(n: i32) -> Option<&'static str> {
    match pb::RoleKind::try_from(n) {
        Ok(pb::RoleKind::LegalRepresentative) => Some("法定代表人"),
        Ok(pb::RoleKind::Shareholder) => Some("股东"),
        Ok(pb::RoleKind::Executive) => Some("高管"),
        _ => None,
    }
}

fn record_kind_label(n: i32) -> &'static str {
    use pb::RecordKind as K;
    match K::try_from(n) {
        Ok(K::AdministrativeLicense) => "行政许可",
        Ok(K::AdministrativePenalty) => "行政处罚",
        Ok(K::AdministrativeCoerciveMeasure) => "行政强制措施",
        Ok(K::SpotCheckResult) => "双随机抽查结果",
        Ok(K::AbnormalOperationsListing) => "列入经营异常名录",
        Ok(K::SeriousDishonestyListing) => "列入严重违法失信名单",
        Ok(K::AnnualReportFiling) => "年度报告公示",
        Ok(K::Honor) => "荣誉表彰",
        Ok(K::DishonestJudgmentDebtor) => "失信被执行人",
        Ok(K::ConsumptionRestriction) => "限制消费令",
        Ok(K::MajorTaxViolation) => "重大税收违法失信主体",
        Ok(K::TaxCreditRating) => "纳税信用等级评价",
        Ok(K::SocialSecuritySeriousDishonesty) => "社会保险领域严重失信",
        Ok(K::SocialSecurityArrears) => "欠缴社会保险费",
        Ok(K::EducationViolation) => "教育领域违法违规",
        Ok(K::Unspecified) | Err(_) => "信用记录",
    }
}

fn tier_label(n: i32) -> Option<&'static str> {
    match pb::Tier::try_from(n) {
        Ok(pb::Tier::Minor) => Some("轻微"),
        Ok(pb::Tier::Moderate) => Some("一般"),
        Ok(pb::Tier::Serious) => Some("严重"),
        _ => None,
    }
}

fn grade_label(n: i32) -> &'static str {
    match pb::Grade::try_from(n) {
        Ok(pb::Grade::A) => "A 类",
        Ok(pb::Grade::B) => "B 类",
        Ok(pb::Grade::C) => "C 类",
        Ok(pb::Grade::D) => "D 类",
        _ => "未分类",
    }
}

/// What one line says about a candidate: the invalid reasons, or the finding behind
/// the verdict (the first with the candidate's own verdict, else the first).
fn headline(r: &pb::CandidateResult) -> String {
    if verdict(r.verdict) == pb::Verdict::Invalid {
        return r.invalid_reasons.join("；");
    }
    let first = r
        .findings
        .iter()
        .find(|f| f.verdict == r.verdict)
        .or_else(|| r.findings.first());
    match (first, r.findings.len()) {
        (None, _) => String::new(),
        (Some(f), 1) => f.description.clone(),
        (Some(f), n) => format!("{}（另 {} 项）", f.description, n - 1),
    }
}

/// Every finding's description (or the invalid reasons), for the CSV's 发现 column.
fn all_findings(r: &pb::CandidateResult) -> String {
    if verdict(r.verdict) == pb::Verdict::Invalid {
        return r.invalid_reasons.join("；");
    }
    r.findings
        .iter()
        .map(|f| f.description.as_str())
        .collect::<Vec<_>>()
        .join("；")
}

fn needs_attention(r: &pb::CandidateResult) -> bool {
    matches!(
        verdict(r.verdict),
        pb::Verdict::Review | pb::Verdict::Adverse | pb::Verdict::Invalid
    )
}

/// `s` padded to `width` terminal columns, counting CJK characters as two.
fn pad(s: &str, width: usize) -> String {
    let used: usize = s.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum();
    format!("{s}{}", " ".repeat(width.saturating_sub(used)))
}

/// The summary officers read in the terminal.
pub fn render_table(report: &Report) -> String {
    let s = &report.summary;
    let mut out = String::new();
    let _ = writeln!(out, "联审报告    {}", s.report);
    let _ = writeln!(out, "政策版本    {}", s.policy_version);
    let _ = writeln!(out, "通过 CLEAR       {:>6}", s.clear_count);
    let _ = writeln!(out, "需复核 REVIEW    {:>6}", s.review_count);
    let _ = writeln!(out, "不通过 ADVERSE   {:>6}", s.adverse_count);
    let _ = writeln!(out, "无效 INVALID     {:>6}", s.invalid_count);
    let flagged: Vec<_> = report
        .results
        .iter()
        .filter(|r| needs_attention(r))
        .collect();
    if flagged.is_empty() {
        let _ = writeln!(out, "\n没有需复核、不通过或无效的候选人");
        return out;
    }
    let _ = writeln!(
        out,
        "\n{}{}{}{}{}说明",
        pad("序号", 7),
        pad("行号", 7),
        pad("姓名", 12),
        pad("身份证号（脱敏）", 20),
        pad("结论", 8)
    );
    for r in flagged {
        let _ = writeln!(
            out,
            "{}{}{}{}{}{}",
            pad(&(r.index + 1).to_string(), 7),
            pad(&report.line_of(r).to_string(), 7),
            pad(&r.name, 12),
            pad(&r.masked_id_number, 20),
            pad(verdict_label(r.verdict), 8),
            headline(r)
        );
    }
    out
}

/// JSON lines for scripts: `{"result": …}` per candidate in input order, then
/// `{"summary": …}`, shaped like the stream's messages in gRPC's JSON mapping.
pub fn render_json_lines(report: &Report) -> anyhow::Result<String> {
    let mut out = String::new();
    for r in &report.results {
        let value = serde_json::json!({ "result": result_json(r, report.line_of(r)) });
        out.push_str(&serde_json::to_string(&value)?);
        out.push('\n');
    }
    let s = &report.summary;
    let value = serde_json::json!({ "summary": {
        "report": s.report,
        "policy_version": s.policy_version,
        "clear_count": s.clear_count,
        "review_count": s.review_count,
        "adverse_count": s.adverse_count,
        "invalid_count": s.invalid_count,
    }});
    out.push_str(&serde_json::to_string(&value)?);
    out.push('\n');
    Ok(out)
}

fn result_json(r: &pb::CandidateResult, line: u64) -> serde_json::Value {
    let findings: Vec<_> = r
        .findings
        .iter()
        .map(|f| {
            serde_json::json!({
                "code": f.code,
                "verdict": verdict_code(f.verdict),
                "description": f.description,
                "role": enum_name(f.role, pb::RoleKind::as_str_name, "ROLE_KIND_"),
                "role_start_date": f.role_start_date,
                "role_end_date": f.role_end_date,
                "declared": f.declared,
                "enterprise": f.enterprise.as_ref().map(|e| serde_json::json!({
                    "uscc": e.uscc,
                    "display_name": e.display_name,
                    "grade": enum_name(e.grade, pb::Grade::as_str_name, "GRADE_"),
                })),
                "record": f.record.as_ref().map(|rec| serde_json::json!({
                    "record": rec.record,
                    "kind": enum_name(rec.kind, pb::RecordKind::as_str_name, "RECORD_KIND_"),
                    "tier": enum_name(rec.tier, pb::Tier::as_str_name, "TIER_"),
                    "agency": rec.agency,
                    "document_number": rec.document_number,
                    "decision_date": rec.decision_date,
                    "publicity_end_date": rec.publicity_end_date,
                })),
            })
        })
        .collect();
    serde_json::json!({
        "index": r.index,
        "line": line,
        "name": r.name,
        "masked_id_number": r.masked_id_number,
        "verdict": verdict_code(r.verdict),
        "findings": findings,
        "invalid_reasons": r.invalid_reasons,
    })
}

/// Guards a CSV cell against spreadsheet formula injection: Excel runs a cell starting
/// with = + - @ as a formula, and names and descriptions are not ours to trust.
fn csv_text(s: &str) -> Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{s}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// The report as a CSV file Excel opens directly: UTF-8 with a BOM.
pub fn render_csv(report: &Report) -> anyhow::Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(BOM.to_vec());
    writer.write_record(["序号", "姓名", "身份证号（脱敏）", "结论", "发现"])?;
    for r in &report.results {
        let index = (r.index + 1).to_string();
        let name = csv_text(&r.name);
        let findings = all_findings(r);
        let findings = csv_text(&findings);
        writer.write_record([
            index.as_str(),
            name.as_ref(),
            r.masked_id_number.as_str(),
            verdict_label(r.verdict),
            findings.as_ref(),
        ])?;
    }
    writer.into_inner().context("cannot finish the CSV report")
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

const HTML_STYLE: &str = r#"
body { font-family: "Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei", "SimSun", sans-serif; font-size: 14px; color: #111; margin: 2em auto; max-width: 60em; line-height: 1.5; }
h1 { font-size: 1.5em; text-align: center; margin-bottom: 0.5em; }
table.meta { border-collapse: collapse; margin: 0 auto 1.5em; }
table.meta th, table.meta td { border: 1px solid #999; padding: 0.25em 0.75em; text-align: left; }
table.meta th { background: #f0f0f0; white-space: nowrap; }
section.candidate { border: 1px solid #bbb; border-left-width: 6px; padding: 0.5em 1em; margin: 0 0 0.75em; }
section.candidate h2 { font-size: 1.05em; margin: 0.25em 0; }
.idx { display: inline-block; min-width: 3em; color: #555; }
.masked { font-family: monospace; margin: 0 1em; }
.verdict { font-weight: bold; padding: 0 0.4em; border: 1px solid currentColor; border-radius: 3px; }
.candidate.v-CLEAR { border-left-color: #2e7d32; } .v-CLEAR > h2 .verdict { color: #2e7d32; } .finding.v-CLEAR .verdict { color: #555; }
.candidate.v-REVIEW { border-left-color: #c77700; } .v-REVIEW > h2 .verdict, .finding.v-REVIEW .verdict { color: #c77700; }
.candidate.v-ADVERSE { border-left-color: #c62828; } .v-ADVERSE > h2 .verdict, .finding.v-ADVERSE .verdict { color: #c62828; }
.candidate.v-INVALID { border-left-color: #666; } .v-INVALID > h2 .verdict { color: #666; }
ol.findings { margin: 0.25em 0; padding-left: 1.5em; }
.finding { margin: 0.4em 0; }
.code { font-family: monospace; color: #555; margin-right: 0.5em; }
.path { margin-top: 0.2em; }
.step { display: inline-block; border: 1px solid #ccc; border-radius: 3px; padding: 0 0.4em; background: #fafafa; }
.arrow { margin: 0 0.3em; color: #777; }
.none { color: #555; margin: 0.25em 0; }
footer { margin-top: 2em; font-size: 0.85em; color: #555; text-align: center; }
@page { size: A4; margin: 15mm; }
@media print {
  body { margin: 0; max-width: none; font-size: 10.5pt; }
  section.candidate { break-inside: avoid; page-break-inside: avoid; }
  .step { background: none; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"#;

/// The report as a self-contained page to print and file: no external resources.
pub fn render_html(report: &Report) -> String {
    let s = &report.summary;
    let e = |v: &str| html_escape(v).into_owned();
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n<title>信用联查互证报告 {}</title>\n<style>{HTML_STYLE}</style>\n</head>\n<body>\n<h1>信用联查互证报告</h1>\n<table class=\"meta\">\n",
        e(&s.report)
    );
    let counts = format!(
        "通过 {} · 需复核 {} · 不通过 {} · 无效 {} · 共 {} 人",
        s.clear_count,
        s.review_count,
        s.adverse_count,
        s.invalid_count,
        report.results.len()
    );
    for (label, value) in [
        ("联审事由", report.purpose.label()),
        ("案卷编号", report.case_reference.as_str()),
        ("报告编号", s.report.as_str()),
        ("政策版本", s.policy_version.as_str()),
        ("生成时间", report.time.as_str()),
        ("结论统计", counts.as_str()),
    ] {
        let _ = writeln!(out, "<tr><th>{label}</th><td>{}</td></tr>", e(value));
    }
    out.push_str("</table>\n<main>\n");
    for r in &report.results {
        render_candidate_html(&mut out, r);
    }
    out.push_str("</main>\n<footer>本报告含个人信息，仅供资格联审使用，请妥善保管。身份证号已脱敏。</footer>\n</body>\n</html>\n");
    out
}

fn render_candidate_html(out: &mut String, r: &pb::CandidateResult) {
    let e = |v: &str| html_escape(v).into_owned();
    let _ = writeln!(
        out,
        "<section class=\"candidate v-{}\">\n<h2><span class=\"idx\">{}</span>{}<span class=\"masked\">{}</span><span class=\"verdict\">{}</span></h2>",
        verdict_code(r.verdict),
        r.index + 1,
        e(&r.name),
        e(&r.masked_id_number),
        verdict_label(r.verdict)
    );
    if verdict(r.verdict) == pb::Verdict::Invalid {
        let _ = writeln!(
            out,
            "<p class=\"none\">未核查，输入有误：{}</p>",
            e(&r.invalid_reasons.join("；"))
        );
    } else if r.findings.is_empty() {
        out.push_str("<p class=\"none\">未发现需关注的信用记录</p>\n");
    } else {
        out.push_str("<ol class=\"findings\">\n");
        for f in &r.findings {
            render_finding_html(out, &r.name, f);
        }
        out.push_str("</ol>\n");
    }
    out.push_str("</section>\n");
}

/// One finding as its evidence path: person → role → enterprise → record.
fn render_finding_html(out: &mut String, person: &str, f: &pb::Finding) {
    let e = |v: &str| html_escape(v).into_owned();
    let _ = writeln!(
        out,
        "<li class=\"finding v-{}\"><div><span class=\"code\">{}</span><span class=\"verdict\">{}</span> {}</div>",
        verdict_code(f.verdict),
        e(&f.code),
        finding_verdict_label(f.verdict),
        e(&f.description)
    );
    let mut steps = vec![format!("本人 {}", e(person))];
    if let Some(role) = role_step(f) {
        steps.push(e(&role));
    }
    if let Some(ent) = &f.enterprise {
        steps.push(format!(
            "{}（{}，信用风险分类 {}）",
            e(&ent.display_name),
            e(&ent.uscc),
            grade_label(ent.grade)
        ));
    }
    if let Some(rec) = &f.record {
        steps.push(e(&record_step(rec)));
    }
    let path: Vec<_> = steps
        .iter()
        .map(|s| format!("<span class=\"step\">{s}</span>"))
        .collect();
    let _ = writeln!(
        out,
        "<div class=\"path\">{}</div></li>",
        path.join("<span class=\"arrow\">→</span>")
    );
}

/// The role step of a path, e.g. "法定代表人（2019-03-01 至今）" or "申报"; none when the
/// record is about the person themself.
fn role_step(f: &pb::Finding) -> Option<String> {
    let dates = match (f.role_start_date.as_str(), f.role_end_date.as_str()) {
        ("", "") => String::new(),
        (start, "") => format!("（{start} 至今）"),
        ("", end) => format!("（至 {end}）"),
        (start, end) => format!("（{start} 至 {end}）"),
    };
    match (role_label(f.role), f.declared) {
        (Some(role), false) => Some(format!("{role}{dates}")),
        (Some(role), true) => Some(format!("{role}{dates}，申报")),
        (None, true) => Some("申报".to_string()),
        (None, false) if f.enterprise.is_some() => Some("关联".to_string()),
        (None, false) => None,
    }
}

fn record_step(rec: &pb::EvidenceRecord) -> String {
    let mut parts = vec![record_kind_label(rec.kind).to_string()];
    if let Some(tier) = tier_label(rec.tier) {
        parts.push(format!("{tier}等级"));
    }
    let labelled = [
        ("报送部门", rec.agency.trim_start_matches("agencies/")),
        ("文书号", rec.document_number.as_str()),
        ("决定日期", rec.decision_date.as_str()),
        ("公示截止", rec.publicity_end_date.as_str()),
    ];
    parts.extend(
        labelled
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(label, v)| format!("{label} {v}")),
    );
    parts.join(" · ")
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
        std::fs::write(path, bytes).with_context(|| {
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

    // Valid GB 11643 numbers (check digits computed), so they look exactly like the real
    // thing to every check in this module.
    const ID_A: &str = "11010519491231002X";
    const ID_B: &str = "440305198001010013";
    const ID_C: &str = "310104199912310015";

    fn list() -> String {
        format!(
            "序号,姓名,身份证号码,申报企业\n1,张三,{ID_A},914403001922038216；91440300708461136T\n,,,\n2,李四,{ID_B},\n3,王五,{ID_C},91330100716105852F 、914403001922038216\n"
        )
    }

    #[test]
    fn gbk_and_utf8_with_bom_give_the_same_candidates() {
        let text = list();
        let (gbk, _, had_errors) = encoding_rs::GBK.encode(&text);
        assert!(!had_errors);
        assert!(
            std::str::from_utf8(&gbk).is_err(),
            "test data must not be UTF-8"
        );
        let mut utf8 = BOM.to_vec();
        utf8.extend_from_slice(text.as_bytes());

        let from_gbk = parse_candidates(&decode_text(&gbk).unwrap()).unwrap();
        let from_utf8 = parse_candidates(&decode_text(&utf8).unwrap()).unwrap();
        let plain = parse_candidates(&decode_text(text.as_bytes()).unwrap()).unwrap();

        assert_eq!(from_gbk, from_utf8);
        assert_eq!(from_utf8, plain);
        assert_eq!(from_utf8.len(), 3, "the empty row is skipped");
        assert_eq!(from_utf8[0].name, "张三");
        assert_eq!(from_utf8[0].id_number, ID_A);
        assert_eq!(
            from_utf8[1].line, 4,
            "lines count the header and the empty row"
        );
    }

    #[test]
    fn lines_are_counted_as_excel_numbers_rows() {
        let text =
            format!("姓名,身份证号\r\n张三,{ID_A}\r\n\r\n,\r\n\"李\r\n四\",{ID_B}\r\n王五,{ID_C}");
        let lines: Vec<_> = parse_candidates(&text)
            .unwrap()
            .iter()
            .map(|r| r.line)
            .collect();
        assert_eq!(lines, [2, 5, 7]);
        let lf = text.replace("\r\n", "\n");
        let lines: Vec<_> = parse_candidates(&lf)
            .unwrap()
            .iter()
            .map(|r| r.line)
            .collect();
        assert_eq!(lines, [2, 5, 7]);
    }

    #[test]
    fn undecodable_bytes_are_an_error() {
        assert!(decode_text(b"\xFF\xFF\xFF").is_err());
        assert!(decode_text(b"\xFF\xFEn\0a\0").is_err());
    }

    #[test]
    fn declared_enterprises_split_on_every_separator() {
        let got = split_declared(" A1;A2；A3、A4,A5，A6 A7\tA8\nA9　A10 ;; ");
        let want: Vec<String> = (1..=10).map(|i| format!("A{i}")).collect();
        assert_eq!(got, want);
        assert!(split_declared("").is_empty());
    }

    #[test]
    fn headers_are_matched_trimmed_and_case_insensitively() {
        let rows = parse_candidates(&format!(
            " Name , ID ,Declared_Enterprises\nZhang San,{ID_A},\n"
        ))
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].name, "Zhang San");
        assert_eq!(rows[0].id_number, ID_A);
        assert!(rows[0].declared_enterprises.is_empty());
    }

    #[test]
    fn ids_are_passed_on_unvalidated() {
        let rows = parse_candidates("姓名,身份证号\n张三,12345\n李四,\n").unwrap();
        assert_eq!(rows[0].id_number, "12345");
        assert_eq!(rows[1].id_number, "");
    }

    #[test]
    fn a_missing_column_is_named_with_the_columns_found() {
        let err = parse_candidates("序号,名字,身份证号\n1,张三,x\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("姓名/name"), "{err}");
        assert!(err.contains("\"序号\", \"名字\", \"身份证号\""), "{err}");
        assert!(
            !err.contains("公民身份号码"),
            "the ID column was found: {err}"
        );
    }

    #[test]
    fn a_file_without_header_is_refused_without_echoing_the_id() {
        let err = parse_candidates(&format!("张三,{ID_A}\n李四,{ID_B}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("header"), "{err}");
        assert!(!err.contains(ID_A), "{err}");
    }

    #[test]
    fn tab_separated_text_is_read() {
        let rows = parse_candidates(&format!("姓名\t身份证号\n张三\t{ID_A}\n")).unwrap();
        assert_eq!(rows[0].id_number, ID_A);
    }

    #[test]
    fn candidate_debug_hides_the_id() {
        let rows = parse_candidates(&list()).unwrap();
        assert!(!format!("{rows:?}").contains(ID_A));
    }

    #[test]
    fn scrub_masks_ids_but_not_usccs() {
        assert_eq!(
            scrub(&format!("身份证{ID_A}号")),
            "身份证110105********002X号"
        );
        assert_eq!(scrub("旧证 110105491231002 止"), "旧证 110105*****1002 止");
        let uscc = "企业 914403001922038216 与 91440300708461136T";
        assert_eq!(scrub(uscc), uscc);
        assert!(matches!(scrub("无"), Cow::Borrowed(_)));
        assert_eq!(mask_id_field(ID_B), "440305********0013");
        assert_eq!(mask_id_field("440305********0013"), "440305********0013");
    }

    #[test]
    fn results_are_put_in_input_order_and_must_cover_every_candidate() {
        let r = |index| pb::CandidateResult {
            index,
            ..Default::default()
        };
        let ordered = order_results(vec![r(2), r(0), r(1)], 3).unwrap();
        assert_eq!(
            ordered.iter().map(|r| r.index).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert!(order_results(vec![r(0), r(2)], 3).is_err());
        assert!(order_results(vec![r(0), r(0), r(1)], 3).is_err());
        assert!(order_results(vec![r(0), r(1), r(2)], 2).is_err());
    }

    fn report() -> Report {
        let finding = pb::Finding {
            code: "DISHONEST_JUDGMENT_DEBTOR".into(),
            verdict: pb::Verdict::Adverse as i32,
            description: "法定代表人任职企业为失信被执行人 <script>alert(1)</script>".into(),
            role: pb::RoleKind::LegalRepresentative as i32,
            role_start_date: "2019-03-01".into(),
            role_end_date: String::new(),
            declared: true,
            enterprise: Some(pb::EvidenceEnterprise {
                enterprise: "enterprises/914403001922038216".into(),
                uscc: "914403001922038216".into(),
                display_name: "深圳市\"甲乙\"&丙丁有限公司".into(),
                grade: pb::Grade::D as i32,
            }),
            record: Some(pb::EvidenceRecord {
                record: "records/r1".into(),
                kind: pb::RecordKind::DishonestJudgmentDebtor as i32,
                agency: "agencies/court-1".into(),
                document_number: "(2023)粤0305执123号".into(),
                decision_date: "2023-05-01".into(),
                publicity_end_date: "2026-05-01".into(),
                tier: pb::Tier::Serious as i32,
            }),
        };
        let results = vec![
            pb::CandidateResult {
                index: 0,
                name: "张三".into(),
                masked_id_number: "110105********002X".into(),
                verdict: pb::Verdict::Adverse as i32,
                findings: vec![finding],
                invalid_reasons: vec![],
            },
            pb::CandidateResult {
                index: 1,
                name: "=李四".into(),
                masked_id_number: "440305********0013".into(),
                verdict: pb::Verdict::Clear as i32,
                ..Default::default()
            },
            pb::CandidateResult {
                index: 2,
                name: "王<五>".into(),
                masked_id_number: "310104********0015".into(),
                verdict: pb::Verdict::Invalid as i32,
                invalid_reasons: vec!["candidates[2].id_number: check digit should be 2".into()],
                ..Default::default()
            },
        ];
        Report {
            purpose: VettingPurposeArg::VillageCommittee,
            case_reference: "2026-组织-017".into(),
            time: "2026-03-01 10:00:00".into(),
            lines: vec![2, 4, 5],
            results: results.into_iter().map(scrub_result).collect(),
            summary: pb::CrossCheckSummary {
                report: "vettingReports/0195-abc".into(),
                policy_version: "village-committee@1".into(),
                clear_count: 1,
                review_count: 0,
                adverse_count: 1,
                invalid_count: 1,
            },
        }
    }

    #[test]
    fn html_escapes_every_value() {
        let html = render_html(&report());
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<meta charset=\"utf-8\">"));
        assert!(html.contains("@media print"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("深圳市&quot;甲乙&quot;&amp;丙丁有限公司"));
        assert!(html.contains("王&lt;五&gt;"));
        assert!(
            !html.contains("src=") && !html.contains("href="),
            "no external resources"
        );
        assert!(html.contains("法定代表人（2019-03-01 至今），申报"));
        assert!(html
            .contains("失信被执行人 · 严重等级 · 报送部门 court-1 · 文书号 (2023)粤0305执123号"));
        assert!(html.contains("信用风险分类 D 类"));
        assert!(html.contains("村（居）委会换届候选人"));
        assert_eq!(html_escape("a&'b"), "a&amp;&#39;b");
    }

    #[test]
    fn csv_starts_with_a_bom_and_neutralises_formulas() {
        let bytes = render_csv(&report()).unwrap();
        assert!(bytes.starts_with(BOM));
        let text = std::str::from_utf8(&bytes[BOM.len()..]).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("序号,姓名,身份证号（脱敏）,结论,发现"));
        assert!(lines
            .next()
            .unwrap()
            .starts_with("1,张三,110105********002X,不通过,"));
        assert_eq!(lines.next(), Some("2,'=李四,440305********0013,通过,"));
        assert!(lines
            .next()
            .unwrap()
            .contains("无效,candidates[2].id_number"));
    }

    #[test]
    fn table_lists_only_candidates_needing_attention() {
        let table = render_table(&report());
        assert!(table.contains("vettingReports/0195-abc"));
        assert!(table.contains("village-committee@1"));
        assert!(table.contains("张三"));
        assert!(!table.contains("李四"), "clear candidates are only counted");
        assert!(table.contains("check digit should be 2"));
    }

    #[test]
    fn json_lines_end_with_the_summary() {
        let text = render_json_lines(&report()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0]["result"]["verdict"], "ADVERSE");
        assert_eq!(lines[0]["result"]["line"], 2);
        assert_eq!(lines[3]["summary"]["report"], "vettingReports/0195-abc");
    }

    #[test]
    fn no_output_contains_a_full_id_number() {
        let mut report = report();
        // A service that echoes a full number in free text or leaves it unmasked.
        let leaky = scrub_result(pb::CandidateResult {
            index: 3,
            name: ID_B.into(),
            masked_id_number: ID_C.into(),
            verdict: pb::Verdict::Invalid as i32,
            invalid_reasons: vec![format!("candidates[3].id_number: {ID_A} is not valid")],
            ..Default::default()
        });
        report.results.push(leaky);
        report.lines.push(6);
        let outputs = [
            render_table(&report),
            render_json_lines(&report).unwrap(),
            String::from_utf8(render_csv(&report).unwrap()).unwrap(),
            render_html(&report),
        ];
        for output in &outputs {
            for id in [ID_A, ID_B, ID_C] {
                assert!(!output.contains(id), "full ID number in output:\n{output}");
            }
        }
        assert!(outputs[3].contains("110105********002X"));
    }

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
    fn too_many_candidates_are_refused_before_sending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.csv");
        let mut text = String::from("姓名,身份证号\n");
        for i in 0..=MAX_CANDIDATES {
            text.push_str(&format!("人{i},{i}\n"));
        }
        std::fs::write(&path, text).unwrap();
        let err = load_candidates(&path).unwrap_err().to_string();
        assert!(err.contains("10001 candidates"), "{err}");
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
