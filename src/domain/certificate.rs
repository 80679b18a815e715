//! Credit certificates (信用证明): which enterprise may have which kind, what each kind
//! states, the W3C Verifiable Credential that carries the statements, and what a
//! verifier concludes from a presented document. Signing is in `data_integrity`.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Months, NaiveDate, Utc};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::codes::{code_enum, AbnormalCause, RecordKind, RecordStatus, SeriousListingCause};
use super::data_integrity::ProofError;
use super::ids::Uscc;
use super::record::{missed_report_year, Record, RecordContent, ABNORMAL_LOOKBACK_YEARS};
use super::{Error, PreconditionViolation};

code_enum! {
    /// What a certificate attests.
    pub enum CertificateKind {
        CreditStatus = 1 => "CREDIT_STATUS",
        AnnualReportRemediation = 2 => "ANNUAL_REPORT_REMEDIATION",
    }
}

code_enum! {
    /// Where an issued certificate stands. `Expired` is derived from `valid_until` when
    /// read; the others are stored.
    pub enum CertificateStatus {
        Valid = 1 => "VALID",
        Revoked = 2 => "REVOKED",
        Suspended = 3 => "SUSPENDED",
        Superseded = 4 => "SUPERSEDED",
        Expired = 5 => "EXPIRED",
    }
}

code_enum! {
    /// What verifying a presented document concluded.
    pub enum VerificationResult {
        Valid = 1 => "VALID",
        Tampered = 2 => "TAMPERED",
        Expired = 3 => "EXPIRED",
        Revoked = 4 => "REVOKED",
        Suspended = 5 => "SUSPENDED",
        UnknownKey = 6 => "UNKNOWN_KEY",
        Superseded = 7 => "SUPERSEDED",
        NotRegistered = 8 => "NOT_REGISTERED",
    }
}

/// Longest period a credit-status certificate covers.
pub const MAX_PERIOD_YEARS: u32 = 5;

/// The W3C context every certificate is expressed in; terms of its own fall under the
/// context's `@vocab`, so no further context needs fetching.
pub const VC_CONTEXT: &str = "https://www.w3.org/ns/credentials/v2";

/// How a certificate's serial number becomes its credential id.
const ID_PREFIX: &str = "urn:credithub:certificate:";

/// Who signs certificates and where their status is checked.
#[derive(Debug, Clone)]
pub struct Issuer {
    /// The issuer's URL or DID; key ids are fragments of it.
    pub id: String,
    /// The issuing bureau's name, printed on certificates.
    pub name: String,
    /// Where a relying party checks a certificate's current status online.
    pub status_service: String,
}

impl Issuer {
    /// The `verificationMethod` URL of the key with `key_id`.
    pub fn verification_method(&self, key_id: &str) -> String {
        format!("{}#{key_id}", self.id)
    }
}

/// Checks a requested credit-status period: both ends given, in order, not in the
/// future and at most [`MAX_PERIOD_YEARS`] long.
pub fn check_period(
    start: Option<NaiveDate>,
    end: Option<NaiveDate>,
    today: NaiveDate,
) -> Result<(NaiveDate, NaiveDate), Error> {
    let start = start.ok_or_else(|| {
        Error::invalid(
            "period_start_date",
            "is required for a credit-status certificate (YYYY-MM-DD)",
        )
    })?;
    let end = end.ok_or_else(|| {
        Error::invalid(
            "period_end_date",
            "is required for a credit-status certificate (YYYY-MM-DD)",
        )
    })?;
    if end < start {
        return Err(Error::invalid(
            "period_end_date",
            "must not be before period_start_date",
        ));
    }
    if end > today {
        return Err(Error::invalid(
            "period_end_date",
            format!("must not be in the future (today is {today}): a certificate states what has happened"),
        ));
    }
    let earliest = end
        .checked_sub_months(Months::new(12 * MAX_PERIOD_YEARS))
        .unwrap_or(NaiveDate::MIN);
    if start < earliest {
        return Err(Error::invalid(
            "period_start_date",
            format!("the period may cover at most {MAX_PERIOD_YEARS} years: start on or after {earliest}"),
        ));
    }
    Ok((start, end))
}

/// A record as a certificate states it. Never carries a grade or a score.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Stated {
    record: String,
    kind: &'static str,
    document_number: String,
    deciding_authority: String,
    decision_date: String,
    publicity_end_date: String,
    summary: String,
    /// Repaired (信用修复) items are stated, and marked as such.
    repaired: bool,
    /// A serious-dishonesty listing's cause (its code), so that a reader sees why.
    #[serde(skip_serializing_if = "Option::is_none")]
    cause: Option<&'static str>,
    /// A repaired serious-dishonesty listing: the day it was removed from the list,
    /// which ends its time in force sooner than its publicity end.
    #[serde(skip_serializing_if = "Option::is_none")]
    removed_on: Option<String>,
}

impl Stated {
    fn of(r: &Record) -> Self {
        Stated {
            record: r.resource_name(),
            kind: r.content.kind.code(),
            document_number: r.content.document_number.clone(),
            deciding_authority: r.content.deciding_authority.clone(),
            decision_date: r.content.decision_date.to_string(),
            publicity_end_date: r.content.publicity_end.to_string(),
            summary: r.content.summary.clone(),
            repaired: r.status == RecordStatus::Repaired,
            cause: r.content.attributes.serious_listing_cause.map(|c| c.code()),
            removed_on: None,
        }
    }
}

/// The day each repaired record was repaired (China time), by record id: a repaired
/// serious-dishonesty listing was in force only until then.
pub type RepairDays = HashMap<String, NaiveDate>;

/// The first day a serious-dishonesty listing was no longer in force: its publicity end,
/// or the day after it was removed on repair when that came first (the enterprise was
/// listed for part of the removal day).
fn in_force_until(r: &Record, repaired_on: &RepairDays) -> NaiveDate {
    let end = r.content.publicity_end;
    match (r.status, repaired_on.get(&r.id)) {
        (RecordStatus::Repaired, Some(day)) => end.min(day.succ_opt().unwrap_or(*day)),
        _ => end,
    }
}

/// Whether a record is still stated: in publicity, or repaired (and marked so) until
/// its publicity would have ended anyway, so that repairing never leaves a certificate
/// worse than waiting. Withdrawn records never happened; records whose publicity ended
/// are no longer published anywhere.
fn stated_on(r: &Record, today: NaiveDate) -> bool {
    match r.status_on(today) {
        RecordStatus::Active => true,
        RecordStatus::Repaired => r.content.publicity_end > today,
        _ => false,
    }
}

/// Whether revising `before` into `after` can leave what a certificate said of it
/// untrue: it moved to another enterprise, or changed kind, decision date, publicity
/// end (a listing's time in force), listing cause or repair.
pub fn revision_undoes(before: &Record, after: &Record) -> bool {
    let (b, a) = (&before.content, &after.content);
    b.subject != a.subject
        || b.kind != a.kind
        || b.decision_date != a.decision_date
        || b.publicity_end != a.publicity_end
        || b.attributes.serious_listing_cause != a.attributes.serious_listing_cause
        || before.status != after.status
}

/// Whether a credit-status certificate over `start..=end` states the record: penalties
/// and coercive measures decided in the period; serious-dishonesty listings in force at
/// any time in it (in force until `listed_until`), however long before it they were
/// decided (an enterprise listed the whole period was not clean in it).
fn in_period(c: &RecordContent, listed_until: NaiveDate, start: NaiveDate, end: NaiveDate) -> bool {
    match c.kind {
        RecordKind::SeriousDishonestyListing => c.decision_date <= end && listed_until > start,
        _ => (start..=end).contains(&c.decision_date),
    }
}

fn is_active(r: &Record, today: NaiveDate) -> bool {
    r.status_on(today) == RecordStatus::Active
}

/// The statements of a credit-status certificate (专项信用报告 style) over
/// `start..=end`: administrative penalties and coercive measures decided in it,
/// serious-dishonesty listings in force during it (a repaired one until the day it was
/// removed, `repaired_on`), repaired items marked. `records` are the enterprise's own.
pub fn credit_status_statements(
    records: &[Record],
    repaired_on: &RepairDays,
    start: NaiveDate,
    end: NaiveDate,
    today: NaiveDate,
) -> Value {
    let stated_in_period = |kind: RecordKind| -> Vec<Stated> {
        let mut found: Vec<&Record> = records
            .iter()
            .filter(|r| r.content.kind == kind && stated_on(r, today))
            .filter(|r| in_period(&r.content, in_force_until(r, repaired_on), start, end))
            .collect();
        found.sort_by_key(|r| (r.content.decision_date, r.id.clone()));
        found
            .into_iter()
            .map(|r| Stated {
                removed_on: (kind == RecordKind::SeriousDishonestyListing
                    && r.status == RecordStatus::Repaired)
                    .then(|| repaired_on.get(&r.id).map(NaiveDate::to_string))
                    .flatten(),
                ..Stated::of(r)
            })
            .collect()
    };
    let penalties = stated_in_period(RecordKind::AdministrativePenalty);
    let coercive = stated_in_period(RecordKind::AdministrativeCoerciveMeasure);
    let listings = stated_in_period(RecordKind::SeriousDishonestyListing);
    let listed_now = records
        .iter()
        .any(|r| r.content.kind == RecordKind::SeriousDishonestyListing && is_active(r, today));
    let part = |items: &[Stated], what: &str| {
        let open = items.iter().filter(|s| !s.repaired).count();
        match (items.len(), open) {
            (0, _) => format!("无{what}记录"),
            (n, o) if o == n => format!("有{what}记录{n}条"),
            (n, o) => format!("有{what}记录{n}条（其中{}条已信用修复）", n - o),
        }
    };
    // Listed today only for three years on the abnormal list over missed annual
    // reports: that reason is said outright, with its way off the list.
    let listed_causes: BTreeSet<Option<SeriousListingCause>> = records
        .iter()
        .filter(|r| r.content.kind == RecordKind::SeriousDishonestyListing && is_active(r, today))
        .map(|r| r.content.attributes.serious_listing_cause)
        .collect();
    let annual_report_only = listed_now
        && listed_causes == BTreeSet::from([Some(SeriousListingCause::AbnormalListThreeYears)]);
    let summary = format!(
        "{start}至{end}期间，{}；{}；{}。截至出具日{}严重违法失信名单{}。本证明不含刑事犯罪记录。",
        part(&penalties, "行政处罚"),
        part(&coercive, "行政强制"),
        part(&listings, "列入严重违法失信名单"),
        if listed_now { "仍在" } else { "不在" },
        if annual_report_only {
            "，列入原因仅为未按时报送年度报告"
        } else {
            ""
        }
    );
    let mut serious = json!({
        "listedOnIssueDate": listed_now,
        "listingsInPeriod": listings,
    });
    if annual_report_only {
        serious["onlyForMissedAnnualReports"] = true.into();
        serious["repairPath"] = "补报所缺年度报告并公示后，可申请移出严重违法失信名单（信用修复）；补报后亦可申请年报补报情况证明。".into();
    }
    json!({
        "period": { "startDate": start.to_string(), "endDate": end.to_string() },
        "administrativePenalties": penalties,
        "administrativeCoerciveMeasures": coercive,
        "seriousDishonesty": serious,
        // This service gathers no criminal records (courts and procuratorates keep
        // them): the certificate says so rather than seeming to cover them.
        "criminalRecords": {
            "covered": false,
            "note": "本平台不归集刑事犯罪记录，本证明不作证明；如需请向有关机关查询。",
        },
        "summary": summary,
    })
}

/// The year an annual-report abnormal listing is about (see [`missed_report_year`]).
fn missed_year(listing: &Record) -> i32 {
    missed_report_year(&listing.content)
}

/// The statements of an annual-report remediation certificate, or every unmet
/// condition: every active serious-dishonesty listing has the annual-report cause, the
/// abnormal-operations listings behind it were for missed annual reports, and every
/// report owed since the first one missed (see [`super::repair::reports_owed`]) has
/// since been filed.
/// The reports owed are those already late on `reports_due_by`: today when issuing,
/// the issue date when checking an issued certificate (a report falling due since
/// makes it no less true).
pub fn remediation_statements(
    uscc: &Uscc,
    records: &[Record],
    today: NaiveDate,
    reports_due_by: NaiveDate,
) -> Result<Value, Vec<PreconditionViolation>> {
    let subject = uscc.resource_name();
    let mut unmet = Vec::new();
    let mut listings: Vec<&Record> = records
        .iter()
        .filter(|r| r.content.kind == RecordKind::SeriousDishonestyListing && is_active(r, today))
        .collect();
    listings.sort_by_key(|r| (r.content.decision_date, r.id.clone()));
    if listings.is_empty() {
        unmet.push(PreconditionViolation {
            kind: "NOT_ON_SERIOUS_DISHONESTY_LIST".into(),
            subject: subject.clone(),
            description: "The enterprise is not on the serious-dishonesty list, so there is nothing to remediate (企业不在严重违法失信名单中); issue a credit-status certificate instead.".into(),
        });
        return Err(unmet);
    }
    for l in &listings {
        if l.content.attributes.serious_listing_cause
            != Some(SeriousListingCause::AbnormalListThreeYears)
        {
            unmet.push(PreconditionViolation {
                kind: "LISTING_CAUSE_NOT_ANNUAL_REPORT".into(),
                subject: l.resource_name(),
                description: format!(
                    "Serious-dishonesty listing {} ({}) is not for three years on the abnormal-operations list over missed annual reports (列入原因不是未报年报); only that cause can be remediated by filing.",
                    l.content.document_number, l.content.decision_date
                ),
            });
        }
    }
    let first_listed = listings[0].content.decision_date;
    let since = first_listed
        .checked_sub_months(Months::new(12 * ABNORMAL_LOOKBACK_YEARS))
        .unwrap_or(NaiveDate::MIN);
    // The listings of the years before the serious listing, and any older one still
    // in force: a listing left uncured since then is behind it as much as a recent one.
    let mut abnormal: Vec<&Record> = records
        .iter()
        .filter(|r| r.content.kind == RecordKind::AbnormalOperationsListing)
        .filter(|r| r.status != RecordStatus::Withdrawn)
        .filter(|r| {
            r.content.decision_date <= today
                && (r.content.decision_date >= since || r.status == RecordStatus::Active)
        })
        .collect();
    abnormal.sort_by_key(|r| (r.content.decision_date, r.id.clone()));
    for a in &abnormal {
        // A listing for another cause stands in the way until it is cured: once
        // repaired (removed from the list on remedy) it is not behind the serious
        // listing. Its publicity window ending is no cure.
        if a.content.attributes.abnormal_cause != Some(AbnormalCause::AnnualReportNotFiled)
            && a.status != RecordStatus::Repaired
        {
            unmet.push(PreconditionViolation {
                kind: "ABNORMAL_CAUSE_NOT_ANNUAL_REPORT".into(),
                subject: a.resource_name(),
                description: format!(
                    "Abnormal-operations listing {} ({}) has cause {}, not a missed annual report (经营异常原因不是未报年报); cure that cause first.",
                    a.content.document_number,
                    a.content.decision_date,
                    a.content.attributes.abnormal_cause.map_or("UNKNOWN", |c| c.code())
                ),
            });
        }
    }
    let missed: Vec<&Record> = abnormal
        .iter()
        .copied()
        .filter(|a| {
            a.content.attributes.abnormal_cause == Some(AbnormalCause::AnnualReportNotFiled)
        })
        .collect();
    if missed.is_empty() {
        unmet.push(PreconditionViolation {
            kind: "MISSED_ANNUAL_REPORTS_NOT_RECORDED".into(),
            subject: subject.clone(),
            description: "No abnormal-operations listing for a missed annual report is on record, so the filings cannot be matched to what was missed (无未报年报的经营异常记录); the market-regulation bureau must record those listings first.".into(),
        });
    }
    let mut reports = Vec::new();
    // Every year from the first one missed, those that fell due while listed included.
    let owed = super::repair::reports_owed(missed.iter().copied(), reports_due_by);
    for &year in &owed {
        // The listing for that year, when the bureau recorded one.
        let listed = missed.iter().find(|a| missed_year(a) == year);
        let filing = records
            .iter()
            .filter(|r| super::repair::reports_on(r, year))
            .filter(|r| r.status != RecordStatus::Withdrawn)
            .min_by_key(|r| r.content.decision_date);
        match filing {
            // Filed on time while listed: owed, and not missed.
            Some(f) if listed.is_none() && super::repair::filed_on_time(f, year) => {}
            Some(f) => reports.push(json!({
                "reportYear": year,
                "abnormalListing": listed.map(|a| Stated::of(a)),
                "filing": {
                    "record": f.resource_name(),
                    "documentNumber": f.content.document_number,
                    "filedDate": f.content.decision_date.to_string(),
                },
            })),
            None => unmet.push(PreconditionViolation {
                kind: "ANNUAL_REPORT_NOT_FILED".into(),
                subject: subject.clone(),
                description: format!(
                    "The {year} annual report has not been filed ({year}年度年报未报送): file it through the National Enterprise Credit Information Publicity System, then request the certificate again."
                ),
            }),
        }
    }
    if !unmet.is_empty() {
        return Err(unmet);
    }
    let years: Vec<String> = reports
        .iter()
        .filter_map(|r| r["reportYear"].as_i64())
        .map(|y| y.to_string())
        .collect();
    let summary = format!(
        "该企业因被列入经营异常名录届满3年仍未履行相关义务被列入严重违法失信名单，列入原因仅为未按时报送年度报告；所缺{}年度年报均已补报公示。该企业尚未移出严重违法失信名单，本证明据实说明上述情况。",
        years.join("、")
    );
    Ok(json!({
        "seriousDishonestyListings": listings.iter().map(|l| {
            let mut v = serde_json::to_value(Stated::of(l)).expect("serializes");
            v["cause"] = SeriousListingCause::AbnormalListThreeYears.code().into();
            v
        }).collect::<Vec<_>>(),
        "missedAnnualReports": reports,
        "summary": summary,
    }))
}

/// Whether a new record contradicts a credit-status certificate over `start..=end`: a
/// penalty or coercive measure (of any tier: the certificate counts them all) decided
/// inside the period, or a serious-dishonesty listing in force during it, that the
/// certificate could not state, and still in publicity
/// `today`. One whose publicity has ended (an old record filed late, or a correction of
/// one) is left off a certificate issued today as well, so it contradicts nothing.
pub fn contradicts(record: &Record, start: NaiveDate, end: NaiveDate, today: NaiveDate) -> bool {
    let c = &record.content;
    could_contradict(c) && is_active(record, today) && in_period(c, c.publicity_end, start, end)
}

/// Whether a record of this kind is one a credit-status certificate states the absence
/// of (see [`contradicts`]): a serious-dishonesty listing, a penalty or a coercive
/// measure, whatever its tier (the certificate says "无行政处罚记录" only if it had
/// none). No other record needs the certificate register read.
pub fn could_contradict(c: &RecordContent) -> bool {
    matches!(
        c.kind,
        RecordKind::SeriousDishonestyListing
            | RecordKind::AdministrativePenalty
            | RecordKind::AdministrativeCoerciveMeasure
    )
}

/// The day (in China, as every date a certificate states) a certificate issued at
/// `millis` since the Unix epoch was issued on.
pub fn issue_date(millis: i64) -> Option<NaiveDate> {
    let cst = chrono::FixedOffset::east_opt(8 * 3600).expect("valid offset");
    DateTime::from_timestamp_millis(millis).map(|t| t.with_timezone(&cst).date_naive())
}

/// Whether any object inside the signed `document`, at any depth, satisfies `found`.
fn any_object(document: &str, found: impl Fn(&serde_json::Map<String, Value>) -> bool) -> bool {
    fn walk(v: &Value, found: &dyn Fn(&serde_json::Map<String, Value>) -> bool) -> bool {
        match v {
            Value::Object(fields) => found(fields) || fields.values().any(|v| walk(v, found)),
            Value::Array(items) => items.iter().any(|v| walk(v, found)),
            _ => false,
        }
    }
    serde_json::from_str::<Value>(document).is_ok_and(|v| walk(&v, &found))
}

/// Whether a certificate's signed `document` says the enterprise was (`listed`) or was
/// not on the serious-dishonesty list on its issue date.
fn says_listed_on_issue_date_is(document: &str, listed: bool) -> bool {
    any_object(document, |fields| {
        fields.get("listedOnIssueDate") == Some(&Value::Bool(listed))
    })
}

/// Whether a new record contradicts what a credit-status certificate issued on
/// `issued_on` says about that day: a serious-dishonesty listing in force on it (decided
/// by then, its window not yet ended) on a certificate whose signed `document` says the
/// enterprise was not listed. It can come from outside the certified period.
pub fn contradicts_issue_day(record: &Record, issued_on: NaiveDate, document: &str) -> bool {
    record.status == RecordStatus::Active
        && listing_in_force_on(record, issued_on)
        && says_listed_on_issue_date_is(document, false)
}

/// Whether a certificate's signed `document` says the enterprise was on the
/// serious-dishonesty list on its issue date.
pub fn says_listed_on_issue_date(document: &str) -> bool {
    says_listed_on_issue_date_is(document, true)
}

/// Whether `record` is a serious-dishonesty listing in force on `day` (decided by then,
/// its window not yet ended), as it now stands.
pub fn listing_in_force_on(record: &Record, day: NaiveDate) -> bool {
    let c = &record.content;
    c.kind == RecordKind::SeriousDishonestyListing
        && c.decision_date <= day
        && day < c.publicity_end
}

/// Whether a certificate's signed `document` names `record` among its statements at
/// all, however it stood then.
pub fn mentions(document: &str, record: &Record) -> bool {
    let name = record.resource_name();
    any_object(document, |fields| {
        fields.get("record").and_then(Value::as_str) == Some(name.as_str())
    })
}

/// Whether a certificate's signed `document` states `record` as it now stands: names it
/// among its statements, decided on the same day and repaired or not as it is now. A
/// later revision correcting, say, its summary contradicts nothing the certificate
/// says; one that undoes its repair (the certificate says 已信用修复), moves its
/// decision date or makes it another kind of record (counted in another section) does.
pub fn states(document: &str, record: &Record) -> bool {
    let stated = serde_json::to_value(Stated::of(record)).expect("serializes");
    any_object(document, |fields| {
        let same = |key: &str| fields.get(key) == stated.get(key);
        same("record") && same("kind") && same("decisionDate") && same("repaired")
    })
}

/// The missed reports a remediation certificate's statements name: (report year, the
/// filing record that cured it), in order.
pub fn stated_reports(statements: &Value) -> Vec<(i64, String)> {
    fn find(v: &Value) -> Option<&Vec<Value>> {
        match v {
            Value::Object(fields) => match fields.get("missedAnnualReports") {
                Some(Value::Array(items)) => Some(items),
                _ => fields.values().find_map(find),
            },
            Value::Array(items) => items.iter().find_map(find),
            _ => None,
        }
    }
    let mut found: Vec<(i64, String)> = find(statements)
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["reportYear"].as_i64().unwrap_or_default(),
                r["filing"]["record"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    found.sort();
    found
}

/// [`stated_reports`] of a signed certificate document.
pub fn stated_reports_in(document: &str) -> Vec<(i64, String)> {
    serde_json::from_str::<Value>(document)
        .map(|v| stated_reports(&v))
        .unwrap_or_default()
}

/// A new serial number: the issue date (in China, as every date the certificate
/// states) and 40 random bits, e.g. `XY-20261201-9F3A7C21D4`.
pub fn serial(issued: DateTime<Utc>, random: u64) -> String {
    let cst = chrono::FixedOffset::east_opt(8 * 3600).expect("valid offset");
    format!(
        "XY-{}-{:010X}",
        issued.with_timezone(&cst).format("%Y%m%d"),
        random & 0xFF_FFFF_FFFF
    )
}

/// A certificate about to be signed.
#[derive(Debug, Clone)]
pub struct Draft {
    pub serial: String,
    pub uscc: Uscc,
    pub enterprise_name: String,
    pub kind: CertificateKind,
    pub issued: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    /// The kind's statements, from [`credit_status_statements`] or
    /// [`remediation_statements`].
    pub statements: Value,
}

/// Seconds-precision UTC, as `validFrom`, `validUntil` and `created` carry it.
pub fn xsd_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The unsigned credential of `draft`.
pub fn credential(draft: &Draft, issuer: &Issuer) -> Map<String, Value> {
    let (type_name, title) = match draft.kind {
        CertificateKind::CreditStatus => ("CreditStatusCertificate", "信用状况证明"),
        CertificateKind::AnnualReportRemediation => {
            ("AnnualReportRemediationCertificate", "年报补报信用情况证明")
        }
    };
    let mut subject = Map::new();
    subject.insert(
        "id".into(),
        format!("urn:uscc:{}", draft.uscc.as_str()).into(),
    );
    subject.insert("uscc".into(), draft.uscc.as_str().into());
    subject.insert("name".into(), draft.enterprise_name.clone().into());
    if let Value::Object(statements) = &draft.statements {
        subject.extend(statements.clone());
    }
    let doc = json!({
        "@context": [VC_CONTEXT],
        "id": format!("{ID_PREFIX}{}", draft.serial),
        "type": ["VerifiableCredential", type_name],
        "name": title,
        "issuer": { "id": issuer.id, "name": issuer.name },
        "validFrom": xsd_time(draft.issued),
        "validUntil": xsd_time(draft.valid_until),
        "credentialSubject": subject,
        "credentialStatus": {
            "type": "CreditHubCertificateStatus",
            "statusPurpose": "revocation",
            "serialNumber": draft.serial,
            "statusService": issuer.status_service,
        },
    });
    match doc {
        Value::Object(map) => map,
        _ => unreachable!("json! object literal"),
    }
}

/// An issued certificate as the register keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub serial: String,
    pub uscc: Uscc,
    pub enterprise_name: String,
    pub kind: CertificateKind,
    pub period: Option<(NaiveDate, NaiveDate)>,
    /// Stored status: never `Expired`, which [`Certificate::status_at`] derives.
    pub status: CertificateStatus,
    pub status_reason: String,
    /// Milliseconds since the Unix epoch.
    pub issued_at: i64,
    pub valid_from: i64,
    pub valid_until: i64,
    pub key_id: String,
    /// The signed credential, exactly as handed out.
    pub document: String,
    pub revocation_reason: Option<String>,
    pub revoked_at: Option<i64>,
    /// The agency that issued it.
    pub agency_id: String,
}

impl Certificate {
    /// The resource name `certificates/{serial}`.
    pub fn resource_name(&self) -> String {
        format!("certificates/{}", self.serial)
    }

    /// The status a reader sees at `now_ms`: a valid certificate past its validity reads
    /// as expired.
    pub fn status_at(&self, now_ms: i64) -> CertificateStatus {
        if self.status == CertificateStatus::Valid && now_ms >= self.valid_until {
            CertificateStatus::Expired
        } else {
            self.status
        }
    }
}

/// What can be read from a presented document before trusting it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Presented {
    pub serial: Option<String>,
    pub key_id: Option<String>,
    pub valid_until: Option<DateTime<Utc>>,
    /// When the proof says it was signed.
    pub created: Option<DateTime<Utc>>,
}

/// Reads the serial, key id and validity end of a document (a JSON object).
pub fn presented(doc: &Value) -> Presented {
    let serial = doc
        .get("id")
        .and_then(Value::as_str)
        .and_then(|id| id.strip_prefix(ID_PREFIX))
        .map(String::from);
    let key_id = doc
        .pointer("/proof/verificationMethod")
        .and_then(Value::as_str)
        .and_then(|m| m.rsplit_once('#'))
        .map(|(_, k)| k.to_string());
    let valid_until = doc
        .get("validUntil")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    let created = doc
        .pointer("/proof/created")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    Presented {
        serial,
        key_id,
        valid_until,
        created,
    }
}

/// Whether `presented` is the document the register holds as `stored`: the same JSON
/// value, whatever whitespace, key order or escapes it travelled with. A genuine
/// signature over anything else under a registered serial (new content, a later
/// `validUntil`) was made outside the service, with a key that leaked.
pub fn is_registered_document(presented: &Value, stored: &str) -> bool {
    serde_json::from_str::<Value>(stored).is_ok_and(|s| {
        crate::domain::jcs::canonicalize(&s) == crate::domain::jcs::canonicalize(presented)
    })
}

/// The verdict on a document: its proof first (a document that fails it says nothing
/// trustworthy), then the issuer's register, then time. `register` is the stored
/// status and its reason, when the issuer knows the serial.
pub fn judge(
    proof: Result<(), ProofError>,
    presented: &Presented,
    register: Option<(CertificateStatus, String)>,
    now: DateTime<Utc>,
) -> (VerificationResult, String) {
    use VerificationResult as R;
    match proof {
        Err(ProofError::UnknownKey(method)) => {
            return (
                R::UnknownKey,
                format!("signed with a key this issuer does not list ({method})"),
            )
        }
        Err(e) => return (R::Tampered, format!("do not trust this document: {e}")),
        Ok(()) => {}
    }
    match register {
        Some((CertificateStatus::Revoked, reason)) => {
            return (R::Revoked, format!("revoked by the issuer: {reason}"))
        }
        Some((CertificateStatus::Suspended, reason)) => {
            return (R::Suspended, format!("suspended by the issuer: {reason}"))
        }
        Some((CertificateStatus::Superseded, reason)) => {
            return (R::Superseded, format!("superseded: {reason}"))
        }
        _ => {}
    }
    match presented.valid_until {
        Some(until) if now >= until => {
            (R::Expired, format!("validity ended at {}", xsd_time(until)))
        }
        Some(_) => (R::Valid, String::new()),
        None => (
            R::Tampered,
            "the document has no readable validUntil".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::codes::{RegulatoryDomain, Tier};
    use crate::domain::record::{Attributes, RecordContent, Subject};

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn uscc() -> Uscc {
        Uscc::complete("91371002MA3C0000").unwrap()
    }

    fn record(id: &str, kind: RecordKind, date: &str, attributes: Attributes) -> Record {
        Record {
            id: id.into(),
            agency_id: "market".into(),
            source_record_id: id.into(),
            revision: 1,
            content: RecordContent {
                subject: Subject::Enterprise(uscc()),
                kind,
                tier: Tier::Serious,
                domain: RegulatoryDomain::BusinessRegistration,
                decision_date: d(date),
                document_number: format!("doc-{id}"),
                deciding_authority: "威海经开区市场监管局".into(),
                summary: String::new(),
                publicity_end: d("2029-12-31"),
                attributes,
            },
            status: RecordStatus::Active,
            withdrawal_reason: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn abnormal(id: &str, date: &str, year: i32) -> Record {
        record(
            id,
            RecordKind::AbnormalOperationsListing,
            date,
            Attributes {
                abnormal_cause: Some(AbnormalCause::AnnualReportNotFiled),
                report_year: Some(year),
                ..Default::default()
            },
        )
    }

    fn listing(id: &str, cause: SeriousListingCause) -> Record {
        record(
            id,
            RecordKind::SeriousDishonestyListing,
            "2026-07-10",
            Attributes {
                serious_listing_cause: Some(cause),
                ..Default::default()
            },
        )
    }

    fn filing(id: &str, year: i32) -> Record {
        record(
            id,
            RecordKind::AnnualReportFiling,
            "2026-09-01",
            Attributes {
                report_year: Some(year),
                ..Default::default()
            },
        )
    }

    #[test]
    fn periods_are_bounded_and_ordered() {
        let today = d("2026-12-01");
        assert!(check_period(Some(d("2021-12-01")), Some(today), today).is_ok());
        assert!(check_period(Some(d("2021-11-30")), Some(today), today).is_err());
        assert!(check_period(Some(d("2026-02-01")), Some(d("2026-01-01")), today).is_err());
        assert!(check_period(Some(d("2026-01-01")), Some(d("2026-12-02")), today).is_err());
        assert!(check_period(None, Some(today), today).is_err());
    }

    #[test]
    fn remediation_needs_every_missed_report_filed() {
        let today = d("2026-12-01");
        let mut records = vec![
            listing("s1", SeriousListingCause::AbnormalListThreeYears),
            abnormal("a1", "2023-07-01", 2022),
            abnormal("a2", "2024-07-01", 2023),
            filing("f1", 2022),
        ];
        // 2024 and 2025 fell due while the enterprise stood listed: owed too, though
        // no listing of their own names them.
        let unfiled = |records: &[Record]| -> Vec<bool> {
            let unmet = remediation_statements(&uscc(), records, today, today).unwrap_err();
            assert!(unmet.iter().all(|u| u.kind == "ANNUAL_REPORT_NOT_FILED"));
            [2023, 2024, 2025]
                .iter()
                .map(|y| unmet.iter().any(|u| u.description.contains(&y.to_string())))
                .collect()
        };
        assert_eq!(unfiled(&records), [true, true, true]);
        records.push(filing("f2", 2023));
        assert_eq!(unfiled(&records), [false, true, true]);
        records.push(filing("f3", 2024));
        records.push(filing("f4", 2025));
        let statements = remediation_statements(&uscc(), &records, today, today).unwrap();
        let reports = statements["missedAnnualReports"].as_array().unwrap();
        let years: Vec<i64> = reports
            .iter()
            .map(|r| r["reportYear"].as_i64().unwrap())
            .collect();
        assert_eq!(years, [2022, 2023, 2024, 2025]);
        assert_eq!(reports[1]["abnormalListing"]["documentNumber"], "doc-a2");
        assert!(reports[2]["abnormalListing"].is_null());
        assert!(statements["summary"]
            .as_str()
            .unwrap()
            .contains("2022、2023、2024、2025"));
        assert_eq!(
            statements["seriousDishonestyListings"][0]["cause"],
            "ABNORMAL_LIST_THREE_YEARS"
        );
    }

    /// A certificate issued before 1 July is checked against the reports owed on its
    /// issue date: the next year's report falling due does not make it untrue.
    #[test]
    fn remediation_is_judged_by_the_reports_due_on_its_issue_date() {
        let records = vec![
            listing("s1", SeriousListingCause::AbnormalListThreeYears),
            abnormal("a1", "2023-07-01", 2022),
            filing("f1", 2022),
            filing("f2", 2023),
            filing("f3", 2024),
            filing("f4", 2025),
        ];
        let issued = d("2027-05-10");
        let at_issue = remediation_statements(&uscc(), &records, issued, issued).unwrap();
        let later = d("2027-07-02");
        let checked = remediation_statements(&uscc(), &records, later, issued).unwrap();
        assert_eq!(stated_reports(&at_issue), stated_reports(&checked));
        // Issued today, the 2026 report is owed too.
        assert!(remediation_statements(&uscc(), &records, later, later).is_err());
    }

    /// A listing repaired long ago does not make every year since "missed"; a year
    /// filed on time while listed is owed but was not missed, and is not stated so.
    #[test]
    fn only_missed_years_are_stated_as_missed() {
        let today = d("2026-12-01");
        // Cured: 2021 (no filing on record) is not owed because of it.
        let mut cured = abnormal("a0", "2022-08-01", 2020);
        cured.status = RecordStatus::Repaired;
        let mut on_time = filing("f4", 2024);
        on_time.content.decision_date = d("2025-05-01");
        let records = vec![
            listing("s1", SeriousListingCause::AbnormalListThreeYears),
            cured,
            filing("f0", 2020),
            abnormal("a1", "2023-07-01", 2022),
            filing("f1", 2022),
            filing("f2", 2023),
            on_time,
            filing("f5", 2025),
        ];
        let statements = remediation_statements(&uscc(), &records, today, today).unwrap();
        let years: Vec<i64> = stated_reports(&statements)
            .iter()
            .map(|(y, _)| *y)
            .collect();
        assert_eq!(years, [2020, 2022, 2023, 2025]);
    }

    /// A revision undoes what a certificate said of a record when it changes what the
    /// certificate states, not when it corrects a summary.
    #[test]
    fn revisions_that_change_a_statement_undo_it() {
        let before = listing("s1", SeriousListingCause::AbnormalListThreeYears);
        let mut summary = before.clone();
        summary.content.summary = "更正摘要".into();
        assert!(!revision_undoes(&before, &summary));
        let mut cause = before.clone();
        cause.content.attributes.serious_listing_cause =
            Some(SeriousListingCause::SeriousViolation);
        assert!(revision_undoes(&before, &cause));
        let mut ended = before.clone();
        ended.content.publicity_end = d("2026-08-01");
        assert!(revision_undoes(&before, &ended));
    }

    /// The kinds of unmet condition a remediation certificate for `records` meets.
    fn unmet_kinds(records: &[Record], today: NaiveDate) -> Vec<String> {
        remediation_statements(&uscc(), records, today, today)
            .unwrap_err()
            .into_iter()
            .map(|v| v.kind)
            .collect()
    }

    #[test]
    fn remediation_lists_every_unmet_condition() {
        let today = d("2026-12-01");
        let mut unreachable = abnormal("a2", "2024-07-01", 2023);
        unreachable.content.attributes.abnormal_cause = Some(AbnormalCause::UnreachableAddress);
        let records = vec![
            listing("s1", SeriousListingCause::AbnormalListThreeYears),
            listing("s2", SeriousListingCause::SeriousViolation),
            abnormal("a1", "2023-07-01", 2022),
            unreachable,
            filing("f3", 2023),
            filing("f4", 2024),
            filing("f5", 2025),
        ];
        let kinds = unmet_kinds(&records, today);
        assert_eq!(
            kinds,
            [
                "LISTING_CAUSE_NOT_ANNUAL_REPORT",
                "ABNORMAL_CAUSE_NOT_ANNUAL_REPORT",
                "ANNUAL_REPORT_NOT_FILED"
            ]
        );
        let none = remediation_statements(&uscc(), &[], today, today).unwrap_err();
        assert_eq!(none[0].kind, "NOT_ON_SERIOUS_DISHONESTY_LIST");

        // Once the other cause is cured it no longer stands in the way.
        let mut records = records;
        records[3].status = RecordStatus::Repaired;
        let kinds = unmet_kinds(&records, today);
        assert_eq!(
            kinds,
            ["LISTING_CAUSE_NOT_ANNUAL_REPORT", "ANNUAL_REPORT_NOT_FILED"]
        );
    }

    #[test]
    fn credit_status_marks_repairs_and_leaves_out_withdrawn_and_ended_records() {
        let today = d("2026-12-01");
        let mut repaired = record(
            "p1",
            RecordKind::AdministrativePenalty,
            "2025-03-01",
            Attributes::default(),
        );
        repaired.status = RecordStatus::Repaired;
        let active = record(
            "p2",
            RecordKind::AdministrativePenalty,
            "2026-03-01",
            Attributes::default(),
        );
        let mut withdrawn = record(
            "p3",
            RecordKind::AdministrativePenalty,
            "2026-04-01",
            Attributes::default(),
        );
        withdrawn.status = RecordStatus::Withdrawn;
        let mut ended = record(
            "p4",
            RecordKind::AdministrativePenalty,
            "2024-04-01",
            Attributes::default(),
        );
        ended.content.publicity_end = d("2025-04-01");
        let mut repaired_and_ended = ended.clone();
        repaired_and_ended.id = "p6".into();
        repaired_and_ended.status = RecordStatus::Repaired;
        let before = record(
            "p5",
            RecordKind::AdministrativePenalty,
            "2020-01-01",
            Attributes::default(),
        );
        let s = credit_status_statements(
            &[
                repaired,
                active,
                withdrawn,
                ended,
                before,
                repaired_and_ended,
            ],
            &RepairDays::new(),
            d("2022-01-01"),
            today,
            today,
        );
        let penalties = s["administrativePenalties"].as_array().unwrap();
        assert_eq!(penalties.len(), 2);
        assert_eq!(penalties[0]["record"], "records/p1");
        assert_eq!(penalties[0]["repaired"], true);
        assert_eq!(penalties[1]["repaired"], false);
        assert_eq!(s["seriousDishonesty"]["listedOnIssueDate"], false);
        assert!(s["summary"].as_str().unwrap().contains("其中1条已信用修复"));
    }

    #[test]
    fn penalties_of_any_tier_inside_the_period_contradict_it() {
        let (start, end) = (d("2025-01-01"), d("2025-12-31"));
        let mut p = record(
            "p",
            RecordKind::AdministrativePenalty,
            "2025-06-01",
            Attributes::default(),
        );
        let today = d("2026-03-01");
        assert!(contradicts(&p, start, end, today));
        let mut ended = p.clone();
        ended.content.publicity_end = d("2026-02-28");
        assert!(
            !contradicts(&ended, start, end, today),
            "its publicity ended"
        );
        // The certificate counts every penalty ("无行政处罚记录" only with none).
        p.content.tier = Tier::Moderate;
        assert!(contradicts(&p, start, end, today));
        let mut honour = p.clone();
        honour.content.kind = RecordKind::Honor;
        assert!(!contradicts(&honour, start, end, today));
        let late = record(
            "s",
            RecordKind::SeriousDishonestyListing,
            "2026-02-01",
            Attributes::default(),
        );
        assert!(!contradicts(&late, start, end, today));
        // A listing decided before the period and in force during it.
        let mut early = late.clone();
        early.content.decision_date = d("2024-01-10");
        early.content.publicity_end = d("2027-01-10");
        assert!(contradicts(&early, start, end, today));
        let s = credit_status_statements(&[early.clone()], &RepairDays::new(), start, end, today);
        assert_eq!(
            s["seriousDishonesty"]["listingsInPeriod"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert!(s["summary"]
            .as_str()
            .unwrap()
            .contains("有列入严重违法失信名单记录1条"));
        // Removed from the list on repair before the period began, it was not in force
        // in it; removed on its first day or later, it was, and the day it left is
        // stated.
        let mut repaired = early.clone();
        repaired.status = RecordStatus::Repaired;
        let stated = |removed: &str| {
            let days = RepairDays::from([(repaired.id.clone(), d(removed))]);
            credit_status_statements(&[repaired.clone()], &days, start, end, today)
        };
        let before = stated("2024-12-31");
        assert_eq!(before["seriousDishonesty"]["listingsInPeriod"], json!([]));
        assert!(before["summary"]
            .as_str()
            .unwrap()
            .contains("无列入严重违法失信名单记录"));
        let inside = stated("2025-01-01");
        let listings = inside["seriousDishonesty"]["listingsInPeriod"]
            .as_array()
            .unwrap();
        assert_eq!(listings.len(), 1);
        assert_eq!(listings[0]["removedOn"], "2025-01-01");
        assert_eq!(listings[0]["repaired"], true);
    }

    #[test]
    fn verdicts_put_the_proof_first_then_the_register_then_time() {
        let now = Utc::now();
        let live = Presented {
            valid_until: Some(now + chrono::Duration::days(1)),
            ..Default::default()
        };
        let past = Presented {
            valid_until: Some(now - chrono::Duration::days(1)),
            ..Default::default()
        };
        use VerificationResult as R;
        assert_eq!(judge(Ok(()), &live, None, now).0, R::Valid);
        assert_eq!(judge(Ok(()), &past, None, now).0, R::Expired);
        assert_eq!(
            judge(Err(ProofError::BadSignature), &live, None, now).0,
            R::Tampered
        );
        let revoked = Some((CertificateStatus::Revoked, "错误出具".to_string()));
        assert_eq!(judge(Ok(()), &past, revoked.clone(), now).0, R::Revoked);
        assert_eq!(
            judge(Err(ProofError::BadSignature), &live, revoked, now).0,
            R::Tampered
        );
    }

    #[test]
    fn serials_carry_the_date_and_fit_the_printed_form() {
        let t = DateTime::parse_from_rfc3339("2026-12-01T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(serial(t, u64::MAX), "XY-20261201-FFFFFFFFFF");
        // 07:30 in Beijing on 2 December is still 1 December in UTC.
        let early = DateTime::parse_from_rfc3339("2026-12-01T23:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(serial(early, 0), "XY-20261202-0000000000");
    }
}
