//! Credit records (信用记录): the facts departments publish about a subject, with the
//! rules every submission must satisfy whatever the transport.

use chrono::{Datelike, Months, NaiveDate};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::codes::{
    AbnormalCause, AgencyKind, PenaltyMeasure, RecordKind, RecordStatus, RegulatoryDomain,
    SeriousListingCause, SpotCheckOutcome, Tier,
};
use super::error::Violations;
use super::ids::{MaskedId, PersonKey, PersonRef, Uscc};

/// Longest accepted free-text field (names, document numbers, summaries), in characters.
pub const MAX_TEXT_CHARS: usize = 1_000;
/// Longest accepted agency-side record id.
pub const MAX_SOURCE_ID_CHARS: usize = 128;

/// Highest revision a source may give a record: 2^53 - 1, so that every revision survives
/// a trip through JSON numbers in partners' systems, and "submit revision n + 1" can
/// always be said.
pub const MAX_REVISION: i64 = (1 << 53) - 1;

/// Who or what a record is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Enterprise(Uscc),
    Person(PersonRef),
}

impl Subject {
    /// The key records are filed under: the USCC or the person key.
    pub fn key(&self) -> &str {
        match self {
            Subject::Enterprise(u) => u.as_str(),
            Subject::Person(p) => p.key.as_str(),
        }
    }

    /// How audit entries name the subject: `enterprises/{uscc}` or
    /// `persons/{person_key}` (never an ID number).
    pub fn audit_name(&self) -> String {
        match self {
            Subject::Enterprise(u) => u.resource_name(),
            Subject::Person(p) => format!("persons/{}", p.key.as_str()),
        }
    }
}

/// Kind-specific facts of a record. Absent fields do not apply to the record's kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attributes {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub penalty_measures: Vec<PenaltyMeasure>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fine_amount_fen: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abnormal_cause: Option<AbnormalCause>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serious_listing_cause: Option<SeriousListingCause>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_year: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot_check_outcome: Option<SpotCheckOutcome>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// What an agency asserts in one revision of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordContent {
    pub subject: Subject,
    pub kind: RecordKind,
    pub tier: Tier,
    pub domain: RegulatoryDomain,
    pub decision_date: NaiveDate,
    pub document_number: String,
    pub deciding_authority: String,
    pub summary: String,
    pub publicity_end: NaiveDate,
    pub attributes: Attributes,
}

impl RecordContent {
    /// Whether `revised` leaves unchanged everything a repair decision about this
    /// record weighed (subject, kind, tier, decision date, measures): only then does the
    /// decision still hold for the corrected record.
    pub fn repair_still_holds(&self, revised: &RecordContent) -> bool {
        self.subject == revised.subject
            && self.kind == revised.kind
            && self.tier == revised.tier
            && self.decision_date == revised.decision_date
            && same_set(
                &self.attributes.penalty_measures,
                &revised.attributes.penalty_measures,
            )
    }

    /// Whether `revised`, sent without a publicity end, should keep this revision's
    /// defaulted one: everything the default depends on (kind, tier, decision date,
    /// measures) is unchanged, and this revision's end is the default under the
    /// counting before the Civil Code's (one day short of today's default). A
    /// correction of a summary then moves no window, and undoes no certificate that
    /// states the record.
    pub fn keeps_earlier_default(&self, revised: &RecordContent) -> bool {
        self.kind == revised.kind
            && self.tier == revised.tier
            && self.decision_date == revised.decision_date
            && same_set(
                &self.attributes.penalty_measures,
                &revised.attributes.penalty_measures,
            )
            && self.publicity_end.succ_opt() == Some(revised.publicity_end)
    }

    /// The content with its set-valued lists (penalty measures) in one order: the
    /// same record listed otherwise is the same record, and digests alike.
    pub fn normalised(mut self) -> Self {
        self.attributes.penalty_measures.sort();
        self
    }

    /// A digest of everything the agency asserted, to tell a true resubmission of a
    /// revision from a different record reusing its revision number.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for part in [
            self.subject.key(),
            self.kind.code(),
            self.tier.code(),
            self.domain.code(),
            &self.decision_date.to_string(),
            &self.document_number,
            &self.deciding_authority,
            &self.summary,
            &self.publicity_end.to_string(),
            &serde_json::to_string(&self.attributes).expect("attributes serialize"),
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        if let Subject::Person(p) = &self.subject {
            h.update(p.name.as_bytes());
        }
        hex::encode(h.finalize())
    }
}

/// Whether two lists hold the same items, in whatever order.
fn same_set<T: Ord + Clone>(a: &[T], b: &[T]) -> bool {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort();
    b.sort();
    a == b
}

/// A validated submission: content plus the agency's own identity for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    pub source_record_id: String,
    pub revision: i64,
    pub content: RecordContent,
    /// The filer gave no publicity end: the default for its kind and tier was filled
    /// in. Defaults change with the rules; the same record sent again unchanged is
    /// then still the same record.
    pub publicity_end_defaulted: bool,
}

/// A stored record, at its current revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: String,
    pub agency_id: String,
    pub source_record_id: String,
    pub revision: i64,
    pub content: RecordContent,
    pub status: RecordStatus,
    pub withdrawal_reason: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub updated_at: i64,
}

impl Record {
    /// The resource name `records/{id}`.
    pub fn resource_name(&self) -> String {
        format!("records/{}", self.id)
    }

    /// The status a reader sees on `today`: an active record whose publicity window has
    /// ended reads as expired, without anyone having to rewrite it.
    pub fn status_on(&self, today: NaiveDate) -> RecordStatus {
        status_on(self.status, self.content.publicity_end, today)
    }
}

/// A stored status as it stands on `today`: an active record whose publicity window has
/// ended counts as expired.
pub fn status_on(stored: RecordStatus, publicity_end: NaiveDate, today: NaiveDate) -> RecordStatus {
    if stored == RecordStatus::Active && publicity_end <= today {
        RecordStatus::Expired
    } else {
        stored
    }
}

/// The person fields of a stored record, as storage gives them back.
pub fn stored_person(key: String, name: String, masked: String) -> Subject {
    Subject::Person(PersonRef {
        key: PersonKey::from_stored(key),
        name,
        masked_id: MaskedId::from_stored(masked),
    })
}

/// How far before a serious-dishonesty listing the abnormal-operations listings that led
/// to it are looked for: the three years on the abnormal list, and a year's slack.
pub const ABNORMAL_LOOKBACK_YEARS: u32 = 4;

/// The latest year whose annual report is late on `date`: a year's report is due by 30
/// June of the next, so on a day in the first half of 2024 it is 2022's, later in 2024
/// 2023's.
pub fn latest_late_report_year(date: NaiveDate) -> i32 {
    if date.month() <= 6 {
        date.year() - 2
    } else {
        date.year() - 1
    }
}

/// The year whose annual report an abnormal-operations listing for a missed report is
/// about. New listings must name it; one stored before that rule (without it) is about
/// the latest report already late on its decision date (the year before the listing's
/// would not be late yet in its first half).
pub fn missed_report_year(listing: &RecordContent) -> i32 {
    listing
        .attributes
        .report_year
        .unwrap_or_else(|| latest_late_report_year(listing.decision_date))
}

/// The publicity end of a listing that stands until it is removed: an
/// abnormal-operations listing filed without an end date.
pub fn until_removed() -> NaiveDate {
    NaiveDate::from_ymd_opt(9999, 12, 31).expect("a valid date")
}

/// The first day after a period of `months` that begins with an event on `from`,
/// counted as the Civil Code counts periods (Art. 201–202): the event's own day is not
/// counted, and the period's last day is the corresponding day of its last month (that
/// month's last day when it has none). A penalty decided on 2026-05-20 and published for
/// a year is published through 2027-05-20: its window ends, exclusive, on 2027-05-21.
pub fn day_after_period(from: NaiveDate, months: u32) -> NaiveDate {
    from.checked_add_months(Months::new(months))
        .and_then(|last| last.succ_opt())
        .unwrap_or(NaiveDate::MAX)
}

/// The end of the publicity window when the agency gives none: warnings are never
/// published; otherwise minor items 3 months, moderate 1 year, serious 3 years
/// (SAMR Order 107 tiers). An abnormal-operations listing is not an Order 107 item:
/// removal requires the matching cure, so it stands, whatever its tier, until the
/// enterprise cures its cause (a repair or a withdrawal ends it) and has no end date
/// ([`until_removed`]); after three full years on it for a missed annual report the
/// bureau moves the enterprise to the serious-dishonesty list. A court's dishonest-judgment-debtor listing is
/// not one either: the Supreme People's Court lists a debtor for two years (SPC 2017,
/// causes 2–6; a court that extends it, or lists until performance, sends the date).
pub fn default_publicity_end(
    kind: RecordKind,
    tier: Tier,
    decision_date: NaiveDate,
    measures: &[PenaltyMeasure],
) -> NaiveDate {
    if !measures.is_empty() && measures.iter().all(|m| *m == PenaltyMeasure::Warning) {
        return decision_date;
    }
    let months = match (kind, tier) {
        (RecordKind::AbnormalOperationsListing, _) => return until_removed(),
        (RecordKind::DishonestJudgmentDebtor, _) => 24,
        (_, Tier::Minor) => 3,
        (_, Tier::Moderate) => 12,
        (_, Tier::Serious) => 36,
    };
    day_after_period(decision_date, months)
}

/// Checks the rules that tie a record's fields together, appending violations under
/// `path` (e.g. `records[3]`). Field formats were already checked while parsing.
pub fn check_consistency(
    path: &str,
    content: &RecordContent,
    today: NaiveDate,
    v: &mut Violations,
) {
    let a = &content.attributes;
    if let Subject::Person(_) = content.subject {
        if !content.kind.may_concern_person() {
            v.add(
                format!("{path}.subject.person"),
                format!(
                    "a {} record must concern an enterprise, not a person",
                    content.kind.code()
                ),
            );
        }
    }
    // The lists are serious by definition: a lower tier would end a listing's
    // publicity after months and let it be repaired under a lighter rule.
    if matches!(
        content.kind,
        RecordKind::SeriousDishonestyListing
            | RecordKind::MajorTaxViolation
            | RecordKind::DishonestJudgmentDebtor
            | RecordKind::SocialSecuritySeriousDishonesty
    ) && content.tier != Tier::Serious
    {
        v.add(
            format!("{path}.tier"),
            format!("a {} record is TIER_SERIOUS", content.kind.code()),
        );
    }
    match content.kind {
        RecordKind::AdministrativePenalty if a.penalty_measures.is_empty() => v.add(
            format!("{path}.penalty_measures"),
            "an administrative penalty needs at least one measure",
        ),
        RecordKind::AbnormalOperationsListing if a.abnormal_cause.is_none() => v.add(
            format!("{path}.abnormal_cause"),
            "an abnormal-operations listing needs its cause",
        ),
        RecordKind::SeriousDishonestyListing if a.serious_listing_cause.is_none() => v.add(
            format!("{path}.serious_listing_cause"),
            "a serious-dishonesty listing needs its cause",
        ),
        RecordKind::AbnormalOperationsListing
            if a.abnormal_cause == Some(AbnormalCause::AnnualReportNotFiled) =>
        {
            let late = latest_late_report_year(content.decision_date);
            match a.report_year {
                None => v.add(
                    format!("{path}.report_year"),
                    format!(
                        "a listing for a missed annual report names the year it missed (on {} the latest report already late is {late}'s)",
                        content.decision_date
                    ),
                ),
                Some(year) if year > late => v.add(
                    format!("{path}.report_year"),
                    format!(
                        "the {year} annual report was not yet late on {} (due by 30 June of the next year); the latest late one is {late}'s",
                        content.decision_date
                    ),
                ),
                Some(_) => {}
            }
        }
        RecordKind::AnnualReportFiling if a.report_year.is_none() => v.add(
            format!("{path}.report_year"),
            "an annual-report filing needs the year it reports on",
        ),
        RecordKind::SpotCheckResult if a.spot_check_outcome.is_none() => v.add(
            format!("{path}.spot_check_outcome"),
            "a spot-check result needs its outcome",
        ),
        _ => {}
    }
    if let Some(year) = a.report_year {
        // (A filing can only report on a year before its own, whose report is filed
        // from 1 January of the next; one naming its own year was accepted once and
        // is still taken as sent, so that resending it fails no batch, but counts
        // for no remediation: see `certificate::remediation_statements`.)
        if year < 1980 || year > content.decision_date.year() {
            v.add(
                format!("{path}.report_year"),
                "must be a past year no later than the filing date's year",
            );
        }
    }
    // A measure list on another kind would mean nothing but could still decide its
    // window: a warning alone is never published, so a dishonest-debtor record given
    // [WARNING] would expire the day it was filed and never count.
    if content.kind != RecordKind::AdministrativePenalty && !a.penalty_measures.is_empty() {
        v.add(
            format!("{path}.penalty_measures"),
            format!(
                "only an administrative penalty carries measures, not a {} record",
                content.kind.code()
            ),
        );
    }
    if let Some(i) = (1..a.penalty_measures.len())
        .find(|&i| a.penalty_measures[..i].contains(&a.penalty_measures[i]))
    {
        v.add(
            format!("{path}.penalty_measures[{i}]"),
            format!("{} is listed twice", a.penalty_measures[i].code()),
        );
    }
    // Each kind's own details, and no other's: a cause or outcome on the wrong kind
    // would be stored and shown as if it meant something.
    let misplaced = [
        (
            "abnormal_cause",
            a.abnormal_cause.is_some(),
            content.kind == RecordKind::AbnormalOperationsListing,
        ),
        (
            "serious_listing_cause",
            a.serious_listing_cause.is_some(),
            content.kind == RecordKind::SeriousDishonestyListing,
        ),
        (
            "spot_check_outcome",
            a.spot_check_outcome.is_some(),
            content.kind == RecordKind::SpotCheckResult,
        ),
        // Filings report on a year; a listing for a missed report may name it.
        (
            "report_year",
            a.report_year.is_some(),
            content.kind == RecordKind::AnnualReportFiling
                || a.abnormal_cause == Some(AbnormalCause::AnnualReportNotFiled),
        ),
    ];
    for (field, given, belongs) in misplaced {
        if given && !belongs {
            v.add(
                format!("{path}.{field}"),
                format!("does not apply to a {} record", content.kind.code()),
            );
        }
    }
    let fined = a.penalty_measures.contains(&PenaltyMeasure::Fine);
    if a.fine_amount_fen < 0 {
        v.add(format!("{path}.fine_amount_fen"), "must not be negative");
    } else if a.fine_amount_fen > 0 && !fined {
        v.add(
            format!("{path}.fine_amount_fen"),
            "is set only with a FINE measure: add FINE to penalty_measures, or leave it 0",
        );
    } else if fined && a.fine_amount_fen == 0 {
        v.add(
            format!("{path}.fine_amount_fen"),
            "a FINE measure needs its amount, in fen",
        );
    }
    if content.decision_date > today {
        v.add(
            format!("{path}.decision_date"),
            format!("must not be in the future (today is {today})"),
        );
    }
    if content.publicity_end < content.decision_date {
        v.add(
            format!("{path}.publicity_end_date"),
            "must not be before decision_date",
        );
    }
    // Order 107 caps how long a penalty or coercive measure decided under it is
    // published; an agency may end it sooner, never later (a later end would also keep
    // it from being repaired, as an item that ends by itself). One decided before it
    // came into force keeps the end its own rules gave: Order 45 published warnings
    // not at all and other penalties up to 3 years, a practice ban as long as it lasts.
    let order_107 = NaiveDate::from_ymd_opt(2025, 12, 25).expect("a valid date");
    let warnings_only = !a.penalty_measures.is_empty()
        && a.penalty_measures
            .iter()
            .all(|m| *m == PenaltyMeasure::Warning);
    let longest = match content.kind {
        RecordKind::AdministrativePenalty | RecordKind::AdministrativeCoerciveMeasure
            if content.decision_date >= order_107 =>
        {
            Some(default_publicity_end(
                content.kind,
                content.tier,
                content.decision_date,
                &a.penalty_measures,
            ))
        }
        RecordKind::AdministrativePenalty | RecordKind::AdministrativeCoerciveMeasure
            if warnings_only =>
        {
            Some(content.decision_date)
        }
        RecordKind::AdministrativePenalty | RecordKind::AdministrativeCoerciveMeasure
            if !a.penalty_measures.contains(&PenaltyMeasure::PracticeBan) =>
        {
            Some(day_after_period(content.decision_date, 36))
        }
        _ => None,
    };
    if let Some(longest) = longest {
        if content.publicity_end > longest {
            v.add(
                format!("{path}.publicity_end_date"),
                if longest == content.decision_date {
                    format!("must be empty or {longest}: a penalty of warnings alone is not published (SAMR Order 107)")
                } else {
                    if content.decision_date >= order_107 {
                        format!(
                            "must not be after {longest} (published through {}): a {} item is published at most {} (SAMR Order 107)",
                            longest.pred_opt().unwrap_or(longest),
                            content.tier.code().to_lowercase(),
                            match content.tier {
                                Tier::Minor => "3 months",
                                Tier::Moderate => "1 year",
                                Tier::Serious => "3 years",
                            }
                        )
                    } else {
                        format!("must not be after {longest}: a penalty decided before 2025-12-25 was published at most 3 years (SAMR Order 45)")
                    }
                },
            );
        }
    }
}

/// Order 107's shortest publicity, checked when a record is created or revised (a
/// resend of what was accepted before is never refused for it): a moderate item is
/// published at least 3 months and a serious one, a serious-dishonesty listing too, at
/// least a year; what ends sooner ends by repair or withdrawal, which leave their
/// trace, never by a date that skips the wait. Records decided before Order 107 came
/// into force (2025-12-25) keep the ends their own rules gave.
pub fn check_shortest_publicity(path: &str, content: &RecordContent, v: &mut Violations) {
    let order_107 = NaiveDate::from_ymd_opt(2025, 12, 25).expect("a valid date");
    let measures = &content.attributes.penalty_measures;
    let warnings_only =
        !measures.is_empty() && measures.iter().all(|m| *m == PenaltyMeasure::Warning);
    if content.decision_date < order_107 {
        return;
    }
    let shortest = match (content.kind, content.tier) {
        (RecordKind::AdministrativePenalty | RecordKind::AdministrativeCoerciveMeasure, _)
            if warnings_only =>
        {
            None
        }
        (RecordKind::AdministrativePenalty | RecordKind::AdministrativeCoerciveMeasure, tier) => {
            match tier {
                Tier::Minor => None,
                Tier::Moderate => Some((3, "a moderate item is published at least 3 months")),
                Tier::Serious => Some((12, "a serious item is published at least 1 year")),
            }
        }
        (RecordKind::SeriousDishonestyListing, _) => Some((
            12,
            "a serious-dishonesty listing is published at least 1 year",
        )),
        _ => None,
    };
    if let Some((months, rule)) = shortest {
        let shortest = day_after_period(content.decision_date, months);
        if content.publicity_end < shortest && content.publicity_end >= content.decision_date {
            v.add(
                format!("{path}.publicity_end_date"),
                format!(
                    "must not be before {shortest} (published through {}): {rule} (SAMR Order 107); an earlier end is a repair or a withdrawal",
                    shortest.pred_opt().unwrap_or(shortest)
                ),
            );
        }
    }
}

/// Refuses a record of a kind the submitting agency may not file.
pub fn check_filer(kind: RecordKind, filer: AgencyKind) -> Result<(), String> {
    if kind.filed_by() == filer {
        Ok(())
    } else {
        Err(format!(
            "{} records may only be filed by {} agencies, not {}",
            kind.code(),
            kind.filed_by().label(),
            filer.label()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn default_publicity_follows_the_tiers() {
        let day = d("2026-01-31");
        assert_eq!(
            default_publicity_end(RecordKind::AdministrativePenalty, Tier::Minor, day, &[]),
            d("2026-05-01")
        );
        assert_eq!(
            default_publicity_end(RecordKind::AdministrativePenalty, Tier::Moderate, day, &[]),
            d("2027-02-01")
        );
        assert_eq!(
            default_publicity_end(RecordKind::AdministrativePenalty, Tier::Serious, day, &[]),
            d("2029-02-01")
        );
    }

    #[test]
    fn a_listing_for_a_missed_report_names_a_year_already_late() {
        let listing = |date: &str, year: Option<i32>| RecordContent {
            subject: Subject::Enterprise(
                crate::domain::ids::Uscc::parse("914403001922038216").unwrap(),
            ),
            kind: RecordKind::AbnormalOperationsListing,
            tier: Tier::Moderate,
            domain: RegulatoryDomain::BusinessRegistration,
            decision_date: d(date),
            document_number: String::new(),
            deciding_authority: String::new(),
            summary: String::new(),
            publicity_end: d("2030-01-01"),
            attributes: Attributes {
                report_year: year,
                abnormal_cause: Some(AbnormalCause::AnnualReportNotFiled),
                ..Default::default()
            },
        };
        // The 2023 report is due by 2024-06-30: before then the latest late is 2022's.
        assert_eq!(latest_late_report_year(d("2024-03-15")), 2022);
        assert_eq!(latest_late_report_year(d("2024-06-30")), 2022);
        assert_eq!(latest_late_report_year(d("2024-07-01")), 2023);
        // A listing stored without its year is about the latest report late then.
        assert_eq!(missed_report_year(&listing("2024-03-15", None)), 2022);
        assert_eq!(missed_report_year(&listing("2024-09-15", None)), 2023);
        assert_eq!(missed_report_year(&listing("2024-03-15", Some(2021))), 2021);
        // New ones must name it, and a year already late.
        let mut v = Violations::default();
        check_consistency("r", &listing("2024-03-15", None), d("2024-04-01"), &mut v);
        check_consistency(
            "r",
            &listing("2024-03-15", Some(2023)),
            d("2024-04-01"),
            &mut v,
        );
        check_consistency(
            "r",
            &listing("2024-03-15", Some(2022)),
            d("2024-04-01"),
            &mut v,
        );
        let Err(crate::domain::Error::InvalidArgument(found)) = v.finish(()) else {
            panic!("refused")
        };
        assert_eq!(found.len(), 2, "{found:?}");
    }

    #[test]
    fn an_abnormal_listing_stands_until_removed_whatever_its_tier() {
        let day = d("2026-01-31");
        for tier in [Tier::Minor, Tier::Moderate, Tier::Serious] {
            assert_eq!(
                default_publicity_end(RecordKind::AbnormalOperationsListing, tier, day, &[]),
                d("9999-12-31")
            );
        }
    }

    #[test]
    fn a_dishonest_debtor_is_listed_for_two_years() {
        assert_eq!(
            default_publicity_end(
                RecordKind::DishonestJudgmentDebtor,
                Tier::Serious,
                d("2026-01-31"),
                &[]
            ),
            d("2028-02-01")
        );
    }

    #[test]
    fn a_social_security_dishonesty_listing_is_serious() {
        let mut v = Violations::default();
        let content = RecordContent {
            subject: Subject::Enterprise(
                crate::domain::ids::Uscc::parse("914403001922038216").unwrap(),
            ),
            kind: RecordKind::SocialSecuritySeriousDishonesty,
            tier: Tier::Minor,
            domain: RegulatoryDomain::SocialSecurity,
            decision_date: d("2026-02-01"),
            document_number: "人社失信〔2026〕1号".into(),
            deciding_authority: String::new(),
            summary: String::new(),
            publicity_end: d("2029-02-01"),
            attributes: Attributes::default(),
        };
        check_consistency("records[0]", &content, d("2026-03-01"), &mut v);
        let Err(crate::domain::Error::InvalidArgument(found)) = v.finish(()) else {
            panic!("a minor social-security dishonesty listing is refused")
        };
        assert!(
            found.iter().any(|f| f.field == "records[0].tier"),
            "{found:?}"
        );
    }

    #[test]
    fn penalties_decided_before_order_107_keep_order_45s_limits() {
        let refused = |decided: &str, end: &str, measures: Vec<PenaltyMeasure>| {
            let mut v = Violations::default();
            let content = RecordContent {
                subject: Subject::Enterprise(
                    crate::domain::ids::Uscc::parse("914403001922038216").unwrap(),
                ),
                kind: RecordKind::AdministrativePenalty,
                tier: Tier::Minor,
                domain: RegulatoryDomain::FoodProduction,
                decision_date: d(decided),
                document_number: String::new(),
                deciding_authority: String::new(),
                summary: String::new(),
                publicity_end: d(end),
                attributes: Attributes {
                    penalty_measures: measures,
                    ..Default::default()
                },
            };
            check_consistency("r", &content, d("2026-12-01"), &mut v);
            match v.finish(()) {
                Ok(()) => None,
                Err(crate::domain::Error::InvalidArgument(found)) => Some(found[0].field.clone()),
                Err(e) => panic!("{e:?}"),
            }
        };
        let ban = vec![PenaltyMeasure::PracticeBan];
        let warning = vec![PenaltyMeasure::Warning];
        let confiscation = vec![PenaltyMeasure::Confiscation];
        // Order 45: up to 3 years, whatever the tier; a ban as long as it lasts.
        // Three years after 2025-06-01 run through 2028-06-01: the end is the day after.
        assert_eq!(
            refused("2025-06-01", "2028-06-02", confiscation.clone()),
            None
        );
        assert_eq!(
            refused("2025-06-01", "2028-06-03", confiscation.clone()),
            Some("r.publicity_end_date".into())
        );
        assert_eq!(refused("2025-06-01", "2035-06-01", ban), None);
        assert_eq!(
            refused("2025-06-01", "2025-07-01", warning.clone()),
            Some("r.publicity_end_date".into())
        );
        // Order 107 from 2025-12-25: a minor item 3 months.
        assert_eq!(
            refused("2026-01-05", "2026-06-01", confiscation),
            Some("r.publicity_end_date".into())
        );
        assert_eq!(refused("2026-01-05", "2026-01-05", warning), None);
    }

    #[test]
    fn warnings_are_never_published() {
        let day = d("2026-03-01");
        assert_eq!(
            default_publicity_end(
                RecordKind::AdministrativePenalty,
                Tier::Minor,
                day,
                &[PenaltyMeasure::Warning]
            ),
            day
        );
    }

    #[test]
    fn tax_bureau_cannot_file_court_records() {
        assert!(check_filer(RecordKind::DishonestJudgmentDebtor, AgencyKind::Tax).is_err());
        assert!(check_filer(RecordKind::DishonestJudgmentDebtor, AgencyKind::Court).is_ok());
    }
}
