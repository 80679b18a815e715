//! What the officer sees of a finished check: results put in input order, any full ID
//! number masked, and the summary table, JSON lines, CSV and printable HTML renderings.

use std::borrow::Cow;
use std::fmt::Write as _;

use anyhow::{bail, Context};

use super::super::enum_name;
use super::{VettingPurposeArg, BOM};
use crate::proto::v1 as pb;

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
    // Checksum-valid numbers in any form (full-width, in groups) first; then anything
    // shaped like one, typos included.
    let masked = crate::domain::id_scan::mask_id_numbers(text);
    if masked != text {
        return Cow::Owned(scrub_shapes(&masked).into_owned());
    }
    scrub_shapes(text)
}

/// [`scrub`] for ASCII runs shaped like an ID number, whether or not their check holds.
fn scrub_shapes(text: &str) -> Cow<'_, str> {
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

fn grade_label(n: i32) -> Option<&'static str> {
    match pb::Grade::try_from(n) {
        Ok(pb::Grade::A) => Some("A 类"),
        Ok(pb::Grade::B) => Some("B 类"),
        Ok(pb::Grade::C) => Some("C 类"),
        Ok(pb::Grade::D) => Some("D 类"),
        _ => None,
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

/// `s` padded to `width` terminal columns as the terminal draws them (CJK two, `·`
/// one), and always followed by at least one space, so that a long name cannot run
/// into the next column.
fn pad(s: &str, width: usize) -> String {
    let used = unicode_width::UnicodeWidthStr::width(s);
    format!("{s}{}", " ".repeat(width.saturating_sub(used).max(1)))
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
        // Every cell that comes from the service is text to Excel, never a formula.
        let name = csv_text(&r.name);
        let masked = csv_text(&r.masked_id_number);
        let findings = all_findings(r);
        let findings = csv_text(&findings);
        writer.write_record([
            index.as_str(),
            name.as_ref(),
            masked.as_ref(),
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
        // No grade is sent to an office without the grades scope: say nothing rather
        // than "unclassified".
        steps.push(match grade_label(ent.grade) {
            Some(grade) => format!(
                "{}（{}，信用风险分类 {}）",
                e(&ent.display_name),
                e(&ent.uscc),
                grade
            ),
            None => format!("{}（{}）", e(&ent.display_name), e(&ent.uscc)),
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    // The standard's documented example, and two synthetic numbers on the address codes
    // 990101/990102, which belong to no region (so to no one), with check characters
    // computed under GB 11643; the tests below assert none of them reaches any output.
    const ID_A: &str = "11010519491231002X";
    const ID_B: &str = "990101198001010014";
    const ID_C: &str = "990102199912310019";

    #[test]
    fn columns_are_measured_as_drawn_and_never_run_together() {
        // `·` is drawn one column wide, each Chinese character two.
        assert_eq!(pad("阿依古丽·买买提", 18), "阿依古丽·买买提   ");
        assert_eq!(pad("阿依古丽·买买提", 12), "阿依古丽·买买提 ");
        assert_eq!(pad("张三", 8), "张三    ");
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
        // Typed with an input method, or in groups.
        assert_eq!(
            scrub("张三 １１０１０５１９４９１２３１００２Ｘ"),
            "张三 110105********002X"
        );
        assert_eq!(scrub("110105 19491231 002X"), "110105********002X");
        assert_eq!(mask_id_field(ID_B), "990101********0014");
        assert_eq!(mask_id_field("990101********0014"), "990101********0014");
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
                masked_id_number: "990101********0014".into(),
                verdict: pb::Verdict::Clear as i32,
                ..Default::default()
            },
            pb::CandidateResult {
                index: 2,
                name: "王<五>".into(),
                masked_id_number: "990102********0019".into(),
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
                create_time: None,
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
        assert_eq!(lines.next(), Some("2,'=李四,990101********0014,通过,"));
        assert!(lines
            .next()
            .unwrap()
            .contains("无效,candidates[2].id_number"));
        // The masked number comes from the service too: never a formula either.
        let mut hostile = report();
        hostile.results[1].masked_id_number = "=HYPERLINK(\"http://x/\",\"*\")".into();
        let bytes = render_csv(&hostile).unwrap();
        let text = std::str::from_utf8(&bytes[BOM.len()..]).unwrap();
        assert!(text.contains(",\"'=HYPERLINK("), "{text}");
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
}
