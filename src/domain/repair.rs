//! Credit repair (信用修复): which records can be repaired and from when (the tier rules
//! of SAMR Order 107, as configuration), China's working-day calendar for decision
//! deadlines, and repair applications with their states.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, Months, NaiveDate, Weekday};
use serde::Deserialize;

use super::codes::SeriousListingCause;
use super::codes::{
    code_enum, AbnormalCause, PenaltyMeasure, RecordKind, RecordStatus, SpotCheckOutcome, Tier,
};
use super::ids::Uscc;
use super::record::{
    day_after_period, latest_late_report_year, missed_report_year, until_removed, Record,
    RecordContent, ABNORMAL_LOOKBACK_YEARS,
};

code_enum! {
    /// Whether and when a record can be repaired.
    pub enum Repairability {
        RepairableNow = 1 => "REPAIRABLE_NOW",
        RepairableLater = 2 => "REPAIRABLE_LATER",
        NeverEarly = 3 => "NEVER_EARLY",
        EndsByItself = 4 => "ENDS_BY_ITSELF",
        Applied = 5 => "APPLIED",
    }
}

code_enum! {
    /// What a repair application must carry.
    pub enum RepairRequirement {
        ProofOfPerformance = 1 => "PROOF_OF_PERFORMANCE",
        CreditCommitmentLetter = 2 => "CREDIT_COMMITMENT_LETTER",
        CreditInterview = 3 => "CREDIT_INTERVIEW",
    }
}

code_enum! {
    /// Where a repair application stands.
    pub enum RepairState {
        Accepted = 1 => "ACCEPTED",
        Interviewed = 2 => "INTERVIEWED",
        Approved = 3 => "APPROVED",
        Rejected = 4 => "REJECTED",
    }
}

/// The rules of one tier.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierRule {
    /// Publicity ends by itself; no application.
    #[serde(default)]
    pub ends_by_itself: bool,
    /// Months after the decision from which an application can be made.
    #[serde(default)]
    pub repairable_after_months: u32,
    pub requirements: Vec<RepairRequirement>,
}

/// The repair rules: tiers, repairable kinds, never-early measures, decision time.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepairPolicy {
    pub version: String,
    pub decision_working_days: u32,
    /// Working days to decide the removal of abnormal-operations listings (SAIC Order
    /// 68), when an application holds nothing else; default: `decision_working_days`.
    #[serde(default)]
    pub listing_decision_working_days: Option<u32>,
    pub kinds: BTreeSet<RecordKind>,
    pub never_early_measures: BTreeSet<PenaltyMeasure>,
    pub tiers: BTreeMap<Tier, TierRule>,
}

impl RepairPolicy {
    /// The first measure of a penalty that makes it heavier (较重): never repaired
    /// early, and one after a serious-dishonesty listing keeps the listing.
    fn heavier_measure(&self, c: &RecordContent) -> Option<PenaltyMeasure> {
        c.attributes
            .penalty_measures
            .iter()
            .copied()
            .find(|m| self.never_early_measures.contains(m))
    }

    /// The shipped policy, `policies/repair.toml`.
    pub fn builtin() -> Self {
        Self::parse(include_str!("../../policies/repair.toml"))
            .expect("the shipped repair policy is valid")
    }

    /// Reads a policy; every tier must have a rule.
    pub fn parse(text: &str) -> Result<Self, String> {
        let policy: RepairPolicy = toml::from_str(text).map_err(|e| e.to_string())?;
        for tier in Tier::ALL {
            if !policy.tiers.contains_key(tier) {
                return Err(format!("no rule for tier {}", tier.code()));
            }
        }
        if policy.decision_working_days == 0 || policy.listing_decision_working_days == Some(0) {
            return Err(
                "decision_working_days and listing_decision_working_days must be at least 1".into(),
            );
        }
        Ok(policy)
    }

    /// Working days to decide an application for `records`: the listings' own time
    /// when it holds only abnormal-operations listings, else the general one.
    pub fn decision_days(&self, records: &[&Record]) -> u32 {
        let listings_only = !records.is_empty()
            && records
                .iter()
                .all(|r| r.content.kind == RecordKind::AbnormalOperationsListing);
        match self.listing_decision_working_days {
            Some(days) if listings_only => days,
            _ => self.decision_working_days,
        }
    }

    fn tier(&self, tier: Tier) -> &TierRule {
        &self.tiers[&tier]
    }
}

/// What the check-up says about one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub repairability: Repairability,
    /// First day an application can be made (now or later).
    pub from: Option<NaiveDate>,
    pub requirements: Vec<RepairRequirement>,
    pub reason: String,
}

/// What an application to remove an abnormal-operations listing needs, whatever its
/// tier: proof that its cause was cured, and a credit commitment.
const LISTING_REQUIREMENTS: [RepairRequirement; 2] = [
    RepairRequirement::ProofOfPerformance,
    RepairRequirement::CreditCommitmentLetter,
];

/// Whether a record is a negative one the bureau repairs, active on `today`.
pub fn is_repair_subject(policy: &RepairPolicy, r: &Record, today: NaiveDate) -> bool {
    policy.kinds.contains(&r.content.kind)
        && r.status_on(today) == RecordStatus::Active
        && !(r.content.kind == RecordKind::SpotCheckResult
            && r.content.attributes.spot_check_outcome == Some(SpotCheckOutcome::Passed))
}

fn list_name(listing: &Record) -> &'static str {
    if listing.content.kind == RecordKind::SeriousDishonestyListing {
        "serious-dishonesty list"
    } else {
        "abnormal-operations list"
    }
}

fn is_listing(r: &Record) -> bool {
    matches!(
        r.content.kind,
        RecordKind::AbnormalOperationsListing | RecordKind::SeriousDishonestyListing
    )
}

/// Whether `filing` is an annual-report filing that reports on `year`: one naming the
/// year of its own decision is impossible (a year's report is filed in the next) and
/// files nothing that was missed.
pub fn reports_on(filing: &Record, year: i32) -> bool {
    filing.content.kind == RecordKind::AnnualReportFiling
        && filing.content.attributes.report_year == Some(year)
        && year < filing.content.decision_date.year()
}

/// The annual reports owed by an enterprise whose abnormal-operations listings for
/// missed reports are `behind`: each listing's year, and every year from the earliest
/// one still uncured (not repaired) through the latest report already late on
/// `due_by`. A year that fell due while the enterprise stood listed is owed as much as
/// the one that listed it: a listing is removed only once every unreported year is
/// filed (企业经营异常名录管理暂行办法: 补报未报年份的年度报告). Empty when `behind` is.
pub fn reports_owed<'a>(
    behind: impl IntoIterator<Item = &'a Record>,
    due_by: NaiveDate,
) -> BTreeSet<i32> {
    let behind: Vec<&Record> = behind.into_iter().collect();
    let mut years: BTreeSet<i32> = behind
        .iter()
        .map(|a| missed_report_year(&a.content))
        .collect();
    let uncured = behind
        .iter()
        .filter(|a| a.status != RecordStatus::Repaired)
        .map(|a| missed_report_year(&a.content))
        .min();
    if let Some(first) = uncured {
        years.extend(first..=latest_late_report_year(due_by));
    }
    years
}

/// Whether `filing` reported on `year` on time (by 30 June of the next year): that year
/// was not missed.
pub fn filed_on_time(filing: &Record, year: i32) -> bool {
    reports_on(filing, year)
        && NaiveDate::from_ymd_opt(year + 1, 6, 30)
            .is_some_and(|d| filing.content.decision_date <= d)
}

/// The reports a serious-dishonesty listing decided on `listed` for three years on the
/// abnormal list still waits for ([`reports_owed`] by the abnormal-operations listings
/// for missed reports in the years before it, less those a filing on record reports);
/// None when no such listing is on record, so nothing says which years were missed.
fn unfiled_report_years(
    listed: NaiveDate,
    records: &[Record],
    today: NaiveDate,
) -> Option<Vec<i32>> {
    let since = listed
        .checked_sub_months(Months::new(12 * ABNORMAL_LOOKBACK_YEARS))
        .unwrap_or(NaiveDate::MIN);
    let behind: Vec<&Record> = records
        .iter()
        .filter(|r| {
            r.content.kind == RecordKind::AbnormalOperationsListing
                && r.content.attributes.abnormal_cause == Some(AbnormalCause::AnnualReportNotFiled)
                && r.status_on(today) != RecordStatus::Withdrawn
                && r.content.decision_date <= listed
                // An older listing still in force was left uncured as long.
                && (r.content.decision_date >= since || r.status == RecordStatus::Active)
        })
        .collect();
    if behind.is_empty() {
        return None;
    }
    Some(
        reports_owed(behind, today)
            .into_iter()
            .filter(|year| {
                !records
                    .iter()
                    .any(|f| reports_on(f, *year) && f.status_on(today) != RecordStatus::Withdrawn)
            })
            .collect(),
    )
}

/// Assesses `record` among the enterprise's `records` (to see whether it is on the
/// abnormal or serious-dishonesty list). None when it is not a record the bureau
/// repairs. An enterprise in bankruptcy restructuring waits for no period, as Order
/// 107 allows; heavier penalties stay never-early for it too.
pub fn assess(
    policy: &RepairPolicy,
    record: &Record,
    records: &[Record],
    restructuring: bool,
    today: NaiveDate,
) -> Option<Assessment> {
    if !is_repair_subject(policy, record, today) {
        return None;
    }
    let c = &record.content;
    let rule = policy.tier(c.tier);
    let end = c.publicity_end;
    if c.kind == RecordKind::AdministrativePenalty {
        if let Some(m) = policy.heavier_measure(c) {
            return Some(Assessment {
                repairability: Repairability::NeverEarly,
                from: None,
                requirements: Vec::new(),
                reason: format!(
                    "A heavier penalty ({}) is never repaired early (较重行政处罚不予提前修复); its publicity ends by itself on {end}.",
                    m.code()
                ),
            });
        }
    }
    if c.kind == RecordKind::AdministrativePenalty {
        // Early repair needs no repeat penalty for the same kind of violation (Order 45
        // Art. 14); the regulatory domain stands for the kind of violation here.
        let repeat = records
            .iter()
            .filter(|r| {
                r.id != record.id
                    && r.content.kind == RecordKind::AdministrativePenalty
                    && r.content.domain == c.domain
                    && r.content.decision_date > c.decision_date
                    && r.status_on(today) != RecordStatus::Withdrawn
            })
            .min_by_key(|r| r.content.decision_date);
        if let Some(r) = repeat {
            return Some(Assessment {
                repairability: Repairability::NeverEarly,
                from: None,
                requirements: Vec::new(),
                reason: format!(
                    "Penalised again for the same kind of violation ({} on {}): not repaired early (再次因同类违法行为受到行政处罚的不予提前修复); its publicity ends by itself on {end}.",
                    r.content.document_number, r.content.decision_date
                ),
            });
        }
    }
    if c.kind == RecordKind::SeriousDishonestyListing {
        // Early removal from the list needs no new heavier penalty since the listing
        // (SAMR Order 44): one keeps the enterprise listed until its window ends.
        let heavier = records
            .iter()
            .filter(|r| {
                r.content.kind == RecordKind::AdministrativePenalty
                    && r.content.decision_date > c.decision_date
                    && r.status_on(today) != RecordStatus::Withdrawn
                    && policy.heavier_measure(&r.content).is_some()
            })
            .min_by_key(|r| r.content.decision_date);
        if let Some(r) = heavier {
            return Some(Assessment {
                repairability: Repairability::NeverEarly,
                from: None,
                requirements: Vec::new(),
                reason: format!(
                    "A heavier penalty followed the listing ({} on {}): not removed from the list early (列入后又受到较重行政处罚的不予提前移出); its publicity ends by itself on {end}.",
                    r.content.document_number, r.content.decision_date
                ),
            });
        }
    }
    if let (RecordKind::AbnormalOperationsListing, Some(AbnormalCause::AnnualReportNotFiled)) =
        (c.kind, c.attributes.abnormal_cause)
    {
        // Listed for a missed annual report: the cure is filing it (补报), and every
        // report that fell due since, and until they are on record no waiting period
        // makes the listing repairable. Listings stored before they had to say the
        // year are about the latest report late on their decision date, as
        // remediation certificates count it.
        let year = missed_report_year(c);
        let unfiled: Vec<String> = reports_owed([record], today)
            .into_iter()
            .filter(|y| {
                !records
                    .iter()
                    .any(|f| reports_on(f, *y) && f.status_on(today) != RecordStatus::Withdrawn)
            })
            .map(|y| y.to_string())
            .collect();
        if !unfiled.is_empty() {
            return Some(Assessment {
                repairability: Repairability::RepairableLater,
                from: None,
                // What the application will need once the reports are filed: a
                // listing's, whatever its tier.
                requirements: LISTING_REQUIREMENTS.to_vec(),
                reason: format!(
                    "Listed for not filing the {year} annual report: repaired once every report owed since is filed, now the {} annual report(s) (补报{}年度报告后方可申请修复).",
                    unfiled.join(", "),
                    unfiled.join("、")
                ),
            });
        }
    }
    if c.kind == RecordKind::AbnormalOperationsListing {
        // Not an Order 107 item: whatever its tier, a listing is removed once its cause
        // is cured (the missed report filed, the information published, the address
        // put right), on an application that shows the cure; no waiting period.
        return Some(Assessment {
            repairability: Repairability::RepairableNow,
            from: Some(c.decision_date),
            requirements: LISTING_REQUIREMENTS.to_vec(),
            reason: "An abnormal-operations listing is removed once its cause is cured (履行相关义务后申请移出): apply with proof of the cure.".into(),
        });
    }
    if c.kind == RecordKind::SeriousDishonestyListing
        && c.attributes.serious_listing_cause == Some(SeriousListingCause::AbnormalListThreeYears)
    {
        // Listed after three years on the abnormal list over missed annual reports: the
        // obligations must be met first, every missed report filed.
        let Some(unfiled) = unfiled_report_years(c.decision_date, records, today) else {
            return Some(Assessment {
                repairability: Repairability::RepairableLater,
                from: None,
                requirements: rule.requirements.clone(),
                reason: "Listed after three years on the abnormal-operations list over missed annual reports, but no abnormal-operations listing for a missed report is on record, so nothing says which reports are owed (无未报年报的经营异常记录): the market-regulation bureau must record those listings first.".into(),
            });
        };
        if !unfiled.is_empty() {
            let years: Vec<String> = unfiled.iter().map(i32::to_string).collect();
            return Some(Assessment {
                repairability: Repairability::RepairableLater,
                from: None,
                requirements: rule.requirements.clone(),
                reason: format!(
                    "Listed after three years on the abnormal-operations list over missed annual reports: file the {} annual report(s) first (补报{}年度报告后方可申请修复).",
                    years.join(", "),
                    years.join("、")
                ),
            });
        }
    }
    if rule.ends_by_itself {
        return Some(Assessment {
            repairability: Repairability::EndsByItself,
            from: None,
            requirements: Vec::new(),
            reason: format!(
                "A minor item needs no repair: its publicity ends by itself on {end} (轻微失信信息公示期满自动停止公示)."
            ),
        });
    }
    let waiting = if restructuring {
        c.decision_date
    } else {
        // "After N months" is once the N months have run their course, counted as the
        // Civil Code counts periods: from the day after the period's last day.
        day_after_period(c.decision_date, rule.repairable_after_months)
    };
    let mut from = waiting;
    let mut reason = if restructuring {
        "In bankruptcy restructuring: may apply without the waiting period (破产重整企业可申请修复).".to_string()
    } else {
        format!(
            "A {} item may be repaired {} months after the decision.",
            c.tier.code().to_lowercase(),
            rule.repairable_after_months
        )
    };
    if c.kind == RecordKind::AdministrativePenalty {
        // A penalty cannot be repaired while the enterprise is on a list.
        let blocking = records
            .iter()
            .filter(|l| is_listing(l) && l.status_on(today) == RecordStatus::Active)
            .max_by_key(|l| l.content.publicity_end);
        if let Some(l) = blocking.filter(|l| l.content.publicity_end == until_removed()) {
            // A listing that stands until it is removed holds the penalty until then;
            // the penalty's own window may end first.
            if from >= end {
                return Some(Assessment {
                    repairability: Repairability::EndsByItself,
                    from: None,
                    requirements: Vec::new(),
                    reason: format!("{reason} Its publicity ends on {end} before then, by itself."),
                });
            }
            return Some(Assessment {
                repairability: Repairability::RepairableLater,
                from: None,
                requirements: rule.requirements.clone(),
                reason: format!(
                    "Not repairable while the enterprise is on the {} (listing {}, until its cause is cured and it is removed): 列入名单期间不予修复行政处罚信息. Otherwise its publicity ends by itself on {end}.",
                    list_name(l),
                    l.content.document_number
                ),
            });
        }
        if let Some(l) = blocking {
            if l.content.publicity_end > from {
                from = l.content.publicity_end;
                reason = format!(
                    "Not repairable while the enterprise is on the {} (listing {}, until {}): 列入名单期间不予修复行政处罚信息.",
                    list_name(l),
                    l.content.document_number,
                    l.content.publicity_end
                );
            }
        }
    }
    if from >= end {
        return Some(Assessment {
            repairability: Repairability::EndsByItself,
            from: None,
            requirements: Vec::new(),
            reason: format!("{reason} Its publicity ends on {end} before then, by itself."),
        });
    }
    Some(Assessment {
        repairability: if from <= today {
            Repairability::RepairableNow
        } else {
            Repairability::RepairableLater
        },
        from: Some(from),
        requirements: rule.requirements.clone(),
        reason,
    })
}

/// One year of the working-day calendar.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarYear {
    pub year: i32,
    /// Days off that would otherwise be working days (and the weekends of a break).
    pub holidays: BTreeSet<NaiveDate>,
    /// Saturdays and Sundays worked instead (调休).
    pub working_weekends: BTreeSet<NaiveDate>,
}

/// China's working-day calendar: weekdays, less public holidays, plus weekend working
/// days, for each year it has a file for; other years count Monday to Friday.
#[derive(Debug, Clone, Default)]
pub struct WorkCalendar {
    years: BTreeMap<i32, CalendarYear>,
}

impl WorkCalendar {
    /// The shipped calendars, `policies/calendar/*.toml`.
    pub fn builtin() -> Self {
        Self::from_years(&[
            include_str!("../../policies/calendar/2026.toml"),
            include_str!("../../policies/calendar/2027.toml"),
        ])
        .expect("the shipped calendars are valid")
    }

    /// Reads one TOML text per year; every listed date must fall in its year.
    pub fn from_years(texts: &[&str]) -> Result<Self, String> {
        let mut years = BTreeMap::new();
        for text in texts {
            let y: CalendarYear = toml::from_str(text).map_err(|e| e.to_string())?;
            if let Some(d) = y
                .holidays
                .iter()
                .chain(&y.working_weekends)
                .find(|d| d.year() != y.year)
            {
                return Err(format!("{d} is not in {}", y.year));
            }
            if let Some(d) = y
                .working_weekends
                .iter()
                .find(|d| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun))
            {
                return Err(format!(
                    "{d} is listed as a working weekend but is a weekday"
                ));
            }
            years.insert(y.year, y);
        }
        Ok(WorkCalendar { years })
    }

    /// Whether the calendar knows `year`'s holidays.
    pub fn knows(&self, year: i32) -> bool {
        self.years.contains_key(&year)
    }

    /// Whether `day` is a working day.
    pub fn is_working_day(&self, day: NaiveDate) -> bool {
        let weekend = matches!(day.weekday(), Weekday::Sat | Weekday::Sun);
        match self.years.get(&day.year()) {
            Some(y) if y.working_weekends.contains(&day) => true,
            Some(y) if y.holidays.contains(&day) => false,
            _ => !weekend,
        }
    }

    /// The `n`th working day after `start` (the day of acceptance does not count).
    pub fn add_working_days(&self, start: NaiveDate, n: u32) -> NaiveDate {
        let mut day = start;
        let mut left = n;
        while left > 0 {
            day = day.succ_opt().unwrap_or(NaiveDate::MAX);
            if day == NaiveDate::MAX {
                return day;
            }
            if self.is_working_day(day) {
                left -= 1;
            }
        }
        day
    }
}

/// A credit interview (信用约谈).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interview {
    pub date: NaiveDate,
    pub officer: String,
    pub outcome: String,
}

/// A repair application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairApplication {
    pub id: String,
    pub uscc: Uscc,
    /// Record ids.
    pub records: Vec<String>,
    pub commitment_letter_reference: String,
    pub proof_references: Vec<String>,
    pub state: RepairState,
    pub agency_id: String,
    /// Milliseconds since the Unix epoch.
    pub accepted_at: i64,
    pub accepted_date: NaiveDate,
    pub deadline: NaiveDate,
    pub interview_required: bool,
    pub interview: Option<Interview>,
    pub decision_reason: Option<String>,
    pub decided_at: Option<i64>,
    pub decided_by: Option<String>,
}

impl RepairApplication {
    /// The resource name `repairApplications/{id}`.
    pub fn resource_name(&self) -> String {
        format!("repairApplications/{}", self.id)
    }

    /// Whether no decision has been made.
    pub fn is_open(&self) -> bool {
        matches!(self.state, RepairState::Accepted | RepairState::Interviewed)
    }

    /// Whether its deadline passed without a decision.
    pub fn overdue(&self, today: NaiveDate) -> bool {
        self.is_open() && today > self.deadline
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::codes::RegulatoryDomain;
    use crate::domain::record::{Attributes, RecordContent, Subject};

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn record(kind: RecordKind, tier: Tier, date: &str, end: &str) -> Record {
        Record {
            id: format!("{}-{date}", kind.code()),
            agency_id: "m".into(),
            source_record_id: "s".into(),
            revision: 1,
            content: RecordContent {
                subject: Subject::Enterprise(Uscc::complete("91371002MA3C0000").unwrap()),
                kind,
                tier,
                domain: RegulatoryDomain::FoodProduction,
                decision_date: d(date),
                document_number: "doc".into(),
                deciding_authority: "a".into(),
                summary: String::new(),
                publicity_end: d(end),
                attributes: Attributes {
                    penalty_measures: vec![PenaltyMeasure::Fine],
                    ..Default::default()
                },
            },
            status: RecordStatus::Active,
            withdrawal_reason: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn tiers_set_when_a_penalty_can_be_repaired() {
        let p = RepairPolicy::builtin();
        let today = d("2026-12-01");
        let minor = record(
            RecordKind::AdministrativePenalty,
            Tier::Minor,
            "2026-10-01",
            "2027-01-01",
        );
        let moderate = record(
            RecordKind::AdministrativePenalty,
            Tier::Moderate,
            "2026-10-01",
            "2027-10-01",
        );
        let serious = record(
            RecordKind::AdministrativePenalty,
            Tier::Serious,
            "2026-10-01",
            "2029-10-01",
        );
        let a = |r: &Record| assess(&p, r, &[], false, today).unwrap();
        assert_eq!(a(&minor).repairability, Repairability::EndsByItself);
        // Three months after 2026-10-01 run through 2027-01-01 (Civil Code Art. 201):
        // an application may be made from the day after.
        assert_eq!(a(&moderate).from, Some(d("2027-01-02")));
        assert_eq!(a(&moderate).repairability, Repairability::RepairableLater);
        assert_eq!(a(&serious).from, Some(d("2027-10-02")));
        assert!(a(&serious)
            .requirements
            .contains(&RepairRequirement::CreditInterview));
        let old = record(
            RecordKind::AdministrativePenalty,
            Tier::Moderate,
            "2026-08-01",
            "2027-08-01",
        );
        assert_eq!(a(&old).repairability, Repairability::RepairableNow);
        // Restructuring waives the wait.
        assert_eq!(
            assess(&p, &serious, &[], true, today)
                .unwrap()
                .repairability,
            Repairability::RepairableNow
        );
    }

    /// A listing for three years on the abnormal list with no listing for a missed
    /// report on record waits: nothing says which reports are owed, so nothing filed
    /// can be shown to cure it.
    #[test]
    fn a_three_year_listing_with_nothing_behind_it_waits() {
        let p = RepairPolicy::builtin();
        let today = d("2026-12-01");
        let mut listing = record(
            RecordKind::SeriousDishonestyListing,
            Tier::Serious,
            "2024-07-10",
            "2027-07-10",
        );
        listing.content.attributes.serious_listing_cause =
            Some(SeriousListingCause::AbnormalListThreeYears);
        let assessed = assess(&p, &listing, std::slice::from_ref(&listing), false, today).unwrap();
        assert_eq!(assessed.repairability, Repairability::RepairableLater);
        assert!(
            assessed.reason.contains("无未报年报的经营异常记录"),
            "{}",
            assessed.reason
        );
    }

    #[test]
    fn heavy_penalties_and_listed_enterprises_wait() {
        let p = RepairPolicy::builtin();
        let today = d("2026-12-01");
        let mut revoked = record(
            RecordKind::AdministrativePenalty,
            Tier::Serious,
            "2025-01-01",
            "2028-01-01",
        );
        revoked.content.attributes.penalty_measures = vec![PenaltyMeasure::LicenseRevoked];
        let a = assess(&p, &revoked, &[], false, today).unwrap();
        assert_eq!(a.repairability, Repairability::NeverEarly);
        assert!(a.reason.contains("LICENSE_REVOKED"));
        let penalty = record(
            RecordKind::AdministrativePenalty,
            Tier::Moderate,
            "2026-01-01",
            "2027-01-01",
        );
        let listing = record(
            RecordKind::AbnormalOperationsListing,
            Tier::Moderate,
            "2026-03-01",
            "2026-12-20",
        );
        let a = assess(
            &p,
            &penalty,
            &[penalty.clone(), listing.clone()],
            false,
            today,
        )
        .unwrap();
        assert_eq!(a.repairability, Repairability::RepairableLater);
        assert_eq!(a.from, Some(d("2026-12-20")));
        assert!(a.reason.contains("abnormal-operations list"));
        // A listing without an end holds it until the listing is removed.
        let mut standing = listing;
        standing.content.publicity_end = until_removed();
        let a = assess(
            &p,
            &penalty,
            &[penalty.clone(), standing.clone()],
            false,
            today,
        )
        .unwrap();
        assert_eq!(a.repairability, Repairability::RepairableLater);
        assert_eq!(a.from, None);
        assert!(a.reason.contains("until its cause is cured"), "{a:?}");
        assert!(!a.reason.contains("9999"), "{a:?}");
        // Unless its own window ends no later than it could be repaired.
        let short = record(
            RecordKind::AdministrativePenalty,
            Tier::Moderate,
            "2026-11-01",
            "2027-01-15",
        );
        let a = assess(&p, &short, &[short.clone(), standing], false, today).unwrap();
        assert_eq!(a.repairability, Repairability::EndsByItself, "{a:?}");
        assert!(!a.reason.contains("9999"), "{a:?}");
    }

    #[test]
    fn a_heavier_penalty_after_a_listing_keeps_it_listed() {
        let p = RepairPolicy::builtin();
        let today = d("2027-01-06");
        let listing = record(
            RecordKind::SeriousDishonestyListing,
            Tier::Serious,
            "2026-01-05",
            "2029-01-06",
        );
        let a = |records: &[Record]| assess(&p, &listing, records, false, today).unwrap();
        assert_eq!(a(&[]).repairability, Repairability::RepairableNow);
        // Its year runs through 2027-01-05: on that day it still waits.
        assert_eq!(
            assess(&p, &listing, &[], false, d("2027-01-05"))
                .unwrap()
                .repairability,
            Repairability::RepairableLater
        );
        let mut revoked = record(
            RecordKind::AdministrativePenalty,
            Tier::Serious,
            "2026-06-01",
            "2029-06-01",
        );
        revoked.content.attributes.penalty_measures = vec![PenaltyMeasure::LicenseRevoked];
        let after = a(&[revoked.clone()]);
        assert_eq!(after.repairability, Repairability::NeverEarly);
        assert!(after.reason.contains("2026-06-01"), "{after:?}");
        // A fine after it, or the heavier penalty that led to the listing, does not.
        let mut before = revoked.clone();
        before.content.decision_date = d("2025-11-01");
        let fine = record(
            RecordKind::AdministrativePenalty,
            Tier::Moderate,
            "2026-06-01",
            "2027-06-01",
        );
        assert_eq!(
            a(&[before, fine]).repairability,
            Repairability::RepairableNow
        );
        revoked.status = RecordStatus::Withdrawn;
        assert_eq!(a(&[revoked]).repairability, Repairability::RepairableNow);
    }

    #[test]
    fn a_deadline_across_national_day_skips_the_holiday_and_counts_the_worked_saturday() {
        let cal = WorkCalendar::builtin();
        // Accepted Tuesday 29 September 2026: 30 Sep, then 8, 9, 10 (a worked Saturday),
        // 12, 13, 14 October.
        assert_eq!(cal.add_working_days(d("2026-09-29"), 7), d("2026-10-14"));
        assert!(cal.is_working_day(d("2026-10-10")));
        assert!(!cal.is_working_day(d("2026-10-05")));
        // Unknown years count weekdays.
        assert_eq!(cal.add_working_days(d("2030-01-04"), 1), d("2030-01-07"));
    }

    #[test]
    fn bad_calendars_and_policies_are_refused() {
        assert!(WorkCalendar::from_years(&[
            "year = 2026\nholidays = [\"2027-01-01\"]\nworking_weekends = []"
        ])
        .is_err());
        assert!(WorkCalendar::from_years(&[
            "year = 2026\nholidays = []\nworking_weekends = [\"2026-01-05\"]"
        ])
        .is_err());
        assert!(RepairPolicy::parse("version = \"x\"\ndecision_working_days = 7\nkinds = []\nnever_early_measures = []\n[tiers.MINOR]\nrequirements = []").is_err());
    }
}
