//! Demo data at the district's scale: enterprises with valid USCCs and synthetic,
//! checksum-valid legal representatives, records from every department across all 22
//! domains and every kind and tier, and one demo agency of each kind.
//!
//! Deterministic for a given `--seed` and day: record dates are placed relative to the
//! day the seed runs, so the demo always holds a realistic mix of active and expired
//! records. Tokens are random (they are secrets) and written to `demo-tokens.txt`.

use std::path::Path;

use anyhow::{bail, Context};
use chrono::{Duration, NaiveDate};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::domain::agency::Agency;
use crate::domain::codes::{
    AbnormalCause, AgencyKind, EnterpriseKind, EnterpriseStatus, PenaltyMeasure, RecordKind,
    RegulatoryDomain, RoleKind, SeriousListingCause, SpotCheckOutcome, Tier,
};
use crate::domain::enterprise::{Enterprise, Role};
use crate::domain::ids::{IdNumber, PersonKeyer, PersonRef, Uscc};
use crate::domain::record::{
    default_publicity_end, latest_late_report_year, Attributes, NewRecord, RecordContent, Subject,
};
use crate::domain::spotcheck::Inspector;
use crate::store::{NewAgency, Store};

/// How much demo data to create.
#[derive(Debug, Clone, Copy)]
pub struct SeedPlan {
    pub seed: u64,
    pub enterprises: usize,
    pub records: usize,
}

impl Default for SeedPlan {
    fn default() -> Self {
        SeedPlan {
            seed: 1,
            enterprises: 50_000,
            records: 40_000,
        }
    }
}

/// What the seed created.
#[derive(Debug)]
pub struct SeedReport {
    pub enterprises: usize,
    pub records: usize,
    /// (kind label, display name, token) of each demo agency.
    pub agencies: Vec<(String, String, String)>,
}

/// Districts of the demo (Weihai, Shandong): GB/T 2260 codes.
const REGIONS: &[&str] = &["371002", "371003", "371082", "371083", "371071", "371072"];
/// Address codes of the demo's ID numbers: 99xxxx belongs to no region, so no generated
/// number can be a real person's (GB 11643 check characters are still computed).
const SYNTHETIC_ADDRESS_CODES: &[&str] = &["990001", "990002", "990003", "990004"];
const INDUSTRIES: &[&str] = &[
    "C1391", "C1431", "F5211", "H6210", "P8331", "E4790", "C3581", "F5261", "O8010", "G5430",
    "C2710", "L7212",
];
const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "于", "丛", "谷",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "磊", "洋", "勇", "艳", "杰", "军", "涛", "明", "华", "霞",
];
const WORDS: &[&str] = &[
    "海", "威", "鑫", "泰", "华", "盛", "恒", "达", "宏", "远", "润", "东", "瑞", "祥", "丰",
];
const TRADES: &[&str] = &[
    "食品",
    "机械",
    "商贸",
    "餐饮",
    "教育咨询",
    "建筑工程",
    "医疗器械",
    "电梯",
    "水产",
    "纺织",
    "物流",
    "科技",
];

fn pick<'a, R: Rng>(rng: &mut R, items: &'a [&'a str]) -> &'a str {
    items.choose(rng).expect("non-empty list")
}

fn synthetic_id<R: Rng>(rng: &mut R) -> IdNumber {
    IdNumber::parse(&synthetic_id_text(rng)).expect("built to be valid")
}

/// A checksum-valid synthetic ID number, as text (demo data only).
fn synthetic_id_text<R: Rng>(rng: &mut R) -> String {
    let birth = NaiveDate::from_ymd_opt(1950, 1, 1).expect("valid")
        + Duration::days(rng.gen_range(0..18_000));
    let mut digits = format!(
        "{}{}{:03}",
        pick(rng, SYNTHETIC_ADDRESS_CODES),
        birth.format("%Y%m%d"),
        rng.gen_range(0..1000)
    );
    let check = IdNumber::check_char(digits.as_bytes());
    digits.push(check);
    digits
}

fn person<R: Rng>(rng: &mut R, keyer: &PersonKeyer) -> PersonRef {
    let name = format!(
        "{}{}{}",
        pick(rng, SURNAMES),
        pick(rng, GIVEN),
        pick(rng, GIVEN)
    );
    PersonRef::new(keyer, name, &synthetic_id(rng))
}

/// The legal representative of the `i`-th demo enterprise of seed `seed`: derived from
/// the two alone, so that benchmarks and demonstrations can cross-check people the demo
/// data holds without any ID number being stored to find them again. Returns the name
/// and the (synthetic) ID number as text.
pub fn demo_representative(seed: u64, i: usize) -> (String, String) {
    let mut rng = ChaCha8Rng::seed_from_u64(
        seed ^ 0x5EED_0000_0000_0000 ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    let name = format!(
        "{}{}{}",
        pick(&mut rng, SURNAMES),
        pick(&mut rng, GIVEN),
        pick(&mut rng, GIVEN)
    );
    let id = synthetic_id_text(&mut rng);
    (name, id)
}

fn enterprise<R: Rng>(
    rng: &mut R,
    keyer: &PersonKeyer,
    seed: u64,
    i: usize,
    today: NaiveDate,
) -> Enterprise {
    let (rep_name, rep_id) = demo_representative(seed, i);
    let rep_id = IdNumber::parse(&rep_id).expect("built to be valid");
    let region = pick(rng, REGIONS);
    // 9 = market regulation, 1 = enterprise; then the region and an organisation code
    // derived from the index so codes never collide.
    let prefix = format!("91{region}{:08}", 10_000_000 + i * 7 + rng.gen_range(0..7));
    let uscc = Uscc::complete(&prefix).expect("digits only");
    let trade = pick(rng, TRADES);
    let name = format!(
        "威海{}{}{}有限公司",
        pick(rng, WORDS),
        pick(rng, WORDS),
        trade
    );
    let mut roles = vec![Role {
        kind: RoleKind::LegalRepresentative,
        person: PersonRef::new(keyer, rep_name, &rep_id),
        start: Some(today - Duration::days(rng.gen_range(30..4000))),
        end: None,
    }];
    for _ in 0..rng.gen_range(0..3) {
        roles.push(Role {
            kind: if rng.gen_bool(0.5) {
                RoleKind::Shareholder
            } else {
                RoleKind::Executive
            },
            person: person(rng, keyer),
            start: Some(today - Duration::days(rng.gen_range(30..4000))),
            end: None,
        });
    }
    let kinds = EnterpriseKind::ALL;
    Enterprise {
        uscc,
        display_name: name,
        former_names: if rng.gen_bool(0.05) {
            vec![format!(
                "威海市{}{}{}有限公司",
                pick(rng, WORDS),
                pick(rng, WORDS),
                trade
            )]
        } else {
            vec![]
        },
        kind: if rng.gen_bool(0.8) {
            EnterpriseKind::LimitedLiabilityCompany
        } else {
            *kinds.choose(rng).expect("kinds")
        },
        status: if rng.gen_bool(0.95) {
            EnterpriseStatus::Operating
        } else {
            EnterpriseStatus::Deregistered
        },
        established: Some(today - Duration::days(rng.gen_range(100..9000))),
        region_code: region.to_string(),
        industry_code: pick(rng, INDUSTRIES).to_string(),
        in_bankruptcy_restructuring: rng.gen_bool(0.002),
        roles,
        updated_at: 0,
    }
}

/// The mix of record kinds the demo holds, with weights.
const KIND_MIX: &[(RecordKind, u32)] = &[
    (RecordKind::AdministrativeLicense, 18),
    (RecordKind::AdministrativePenalty, 16),
    (RecordKind::AdministrativeCoerciveMeasure, 3),
    (RecordKind::SpotCheckResult, 14),
    (RecordKind::AbnormalOperationsListing, 6),
    (RecordKind::SeriousDishonestyListing, 1),
    (RecordKind::AnnualReportFiling, 14),
    (RecordKind::Honor, 2),
    (RecordKind::DishonestJudgmentDebtor, 3),
    (RecordKind::ConsumptionRestriction, 2),
    (RecordKind::MajorTaxViolation, 1),
    (RecordKind::TaxCreditRating, 8),
    (RecordKind::SocialSecuritySeriousDishonesty, 1),
    (RecordKind::SocialSecurityArrears, 6),
    (RecordKind::EducationViolation, 5),
];

fn record<R: Rng>(
    rng: &mut R,
    i: usize,
    kind: RecordKind,
    subject: Subject,
    today: NaiveDate,
) -> NewRecord {
    let tier = *Tier::ALL.choose(rng).expect("tiers");
    let domain = match kind.filed_by() {
        AgencyKind::Court => RegulatoryDomain::JudicialEnforcement,
        AgencyKind::Tax => RegulatoryDomain::Taxation,
        AgencyKind::SocialSecurity => RegulatoryDomain::SocialSecurity,
        AgencyKind::Education => RegulatoryDomain::Education,
        _ if kind == RecordKind::AbnormalOperationsListing
            || kind == RecordKind::AnnualReportFiling =>
        {
            RegulatoryDomain::BusinessRegistration
        }
        // The market-side domains: the first 17 and construction (the last three are
        // the other departments').
        _ => {
            let n = (i * 7 + rng.gen_range(0..3)) % 18;
            if n == 17 {
                RegulatoryDomain::Construction
            } else {
                RegulatoryDomain::ALL[n]
            }
        }
    };
    let decision_date = today - Duration::days(rng.gen_range(1..1500));
    let mut a = Attributes::default();
    match kind {
        RecordKind::AdministrativePenalty => {
            let heavy = [
                PenaltyMeasure::LicenseRevoked,
                PenaltyMeasure::ProductionSuspended,
                PenaltyMeasure::PracticeBan,
            ];
            a.penalty_measures = match tier {
                Tier::Minor => vec![if rng.gen_bool(0.3) {
                    PenaltyMeasure::Warning
                } else {
                    PenaltyMeasure::Fine
                }],
                Tier::Moderate => vec![PenaltyMeasure::Fine, PenaltyMeasure::Confiscation],
                Tier::Serious => vec![PenaltyMeasure::Fine, *heavy.choose(rng).expect("heavy")],
            };
            // Drawn for every penalty, so the rest of the data set does not depend on
            // which ones fined; kept only where the measures include a fine.
            let amount = rng.gen_range(1..500) * 100_000;
            if a.penalty_measures.contains(&PenaltyMeasure::Fine) {
                a.fine_amount_fen = amount;
            }
        }
        RecordKind::AbnormalOperationsListing => {
            let cause = *AbnormalCause::ALL.choose(rng).expect("causes");
            a.abnormal_cause = Some(cause);
            if cause == AbnormalCause::AnnualReportNotFiled {
                a.report_year = Some(crate::domain::record::latest_late_report_year(
                    decision_date,
                ));
            }
        }
        RecordKind::SeriousDishonestyListing => {
            a.serious_listing_cause = Some(if rng.gen_bool(0.6) {
                SeriousListingCause::AbnormalListThreeYears
            } else {
                SeriousListingCause::SeriousViolation
            })
        }
        RecordKind::AnnualReportFiling => {
            a.report_year = Some(
                decision_date
                    .format("%Y")
                    .to_string()
                    .parse::<i32>()
                    .expect("year")
                    - 1,
            )
        }
        RecordKind::SpotCheckResult => {
            a.spot_check_outcome = Some(*SpotCheckOutcome::ALL.choose(rng).expect("outcomes"))
        }
        _ => {}
    }
    let tier = match kind {
        RecordKind::SeriousDishonestyListing
        | RecordKind::MajorTaxViolation
        | RecordKind::DishonestJudgmentDebtor
        | RecordKind::SocialSecuritySeriousDishonesty => Tier::Serious,
        _ => tier,
    };
    NewRecord {
        source_record_id: format!("DEMO-{}-{i:06}", kind.code()),
        revision: 1,
        publicity_end_defaulted: false,
        content: RecordContent {
            subject,
            kind,
            tier,
            domain,
            decision_date,
            document_number: format!(
                "威开{}〔{}〕{}号",
                &kind.code()[..3],
                decision_date.format("%Y"),
                i % 1000 + 1
            ),
            deciding_authority: format!("威海经济技术开发区{}", kind.filed_by().label()),
            summary: format!("演示数据：{}", kind.code()),
            publicity_end: default_publicity_end(kind, tier, decision_date, &a.penalty_measures),
            attributes: a,
        },
    }
}

/// Seeds an empty database. Refuses a database that already holds enterprises.
pub async fn seed(
    store: &Store,
    keyer: &PersonKeyer,
    plan: SeedPlan,
    today: NaiveDate,
    progress: &(dyn Fn(usize, usize) + Send + Sync),
) -> anyhow::Result<SeedReport> {
    if store.count_enterprises().await? > 0 {
        bail!("the database already holds enterprises; seed only fills an empty one");
    }
    if plan.enterprises == 0 && plan.records > 0 {
        bail!("records need enterprises to be about: give --enterprises 1 or more, or --records 0");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(plan.seed);
    let total = plan.enterprises + plan.records;

    let mut agencies: Vec<(Agency, String)> = Vec::new();
    for kind in AgencyKind::ALL {
        let display_name = format!("演示{}机构", kind.label());
        agencies.push(
            store
                .create_agency(NewAgency {
                    display_name,
                    kind: *kind,
                    scopes: Default::default(),
                    cert_subject: None,
                })
                .await?,
        );
    }

    let mut usccs = Vec::with_capacity(plan.enterprises);
    let mut persons = Vec::new();
    let mut done = 0;
    for start in (0..plan.enterprises).step_by(1000) {
        let end = (start + 1000).min(plan.enterprises);
        let batch: Vec<Enterprise> = (start..end)
            .map(|i| enterprise(&mut rng, keyer, plan.seed, i, today))
            .collect();
        for e in &batch {
            usccs.push(e.uscc.clone());
            if persons.len() < 2_000 && rng.gen_bool(0.05) {
                persons.push(e.roles[0].person.clone());
            }
        }
        store
            .upsert_enterprises(batch, today, None, &|_| Vec::new())
            .await
            .context("seeding enterprises")?;
        done += end - start;
        progress(done, total);
        if end % 50_000 == 0 {
            // Keep planner statistics in step with a large bulk load.
            store.analyze().await?;
        }
    }

    store.analyze().await?;
    let weights: u32 = KIND_MIX.iter().map(|(_, w)| w).sum();
    let mut by_agency: Vec<Vec<NewRecord>> = vec![Vec::new(); agencies.len()];
    for i in 0..plan.records {
        let mut roll = rng.gen_range(0..weights);
        let kind = KIND_MIX
            .iter()
            .find(|(_, w)| {
                if roll < *w {
                    true
                } else {
                    roll -= w;
                    false
                }
            })
            .map(|(k, _)| *k)
            .expect("weights cover the roll");
        let subject = if kind.may_concern_person() && !persons.is_empty() && rng.gen_bool(0.5) {
            Subject::Person(persons.choose(&mut rng).expect("persons").clone())
        } else {
            Subject::Enterprise(usccs.choose(&mut rng).expect("enterprises").clone())
        };
        let slot = agencies
            .iter()
            .position(|(a, _)| a.kind == kind.filed_by())
            .expect("one agency per kind");
        by_agency[slot].push(record(&mut rng, i, kind, subject, today));
    }
    for (slot, records) in by_agency.into_iter().enumerate() {
        let agency = &agencies[slot].0;
        let mut records = records.into_iter().peekable();
        while records.peek().is_some() {
            let batch: Vec<NewRecord> = records.by_ref().take(1000).collect();
            let n = batch.len();
            store
                .submit_records(agency, batch, today, None, &|_| Vec::new())
                .await
                .context("seeding records")?;
            done += n;
            progress(done, total);
        }
    }
    let bureau = &agencies
        .iter()
        .find(|(a, _)| a.kind == AgencyKind::MarketRegulation)
        .expect("one agency per kind")
        .0;
    store
        .upsert_inspectors(&bureau.id, &inspectors())
        .await
        .context("seeding inspectors")?;
    store.analyze().await?;
    Ok(SeedReport {
        enterprises: plan.enterprises,
        records: plan.records,
        agencies: agencies
            .into_iter()
            .map(|(a, token)| (a.kind.label().to_string(), a.display_name, token))
            .collect(),
    })
}

/// The market-regulation bureau's inspectors (执法检查人员名录库), so that a demo spot
/// check draws inspectors: 22, each qualified in three neighbouring domains, so that
/// every domain has three. Made without the seed's random stream, which the records
/// above already consumed: adding them changed no other demo data.
fn inspectors() -> Vec<Inspector> {
    const SURNAMES: [&str; 11] = [
        "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐",
    ];
    const GIVEN: [&str; 2] = ["建国", "晓梅"];
    let domains = RegulatoryDomain::ALL;
    (0..domains.len())
        .map(|i| Inspector {
            code: format!("J{:03}", i + 1),
            display_name: format!("{}{}", SURNAMES[i % 11], GIVEN[i / 11 % 2]),
            domains: (0..3).map(|k| domains[(i + k) % domains.len()]).collect(),
            conflicts: Vec::new(),
        })
        .collect()
}

/// Writes the demo agencies' tokens, a line per agency: kind, name, token (tab-separated).
pub fn write_tokens(data_dir: &Path, report: &SeedReport) -> anyhow::Result<std::path::PathBuf> {
    let path = data_dir.join("demo-tokens.txt");
    let mut text = String::from("# kind\tname\ttoken\n");
    for (kind, name, token) in &report.agencies {
        text.push_str(&format!("{kind}\t{name}\t{token}\n"));
    }
    std::fs::create_dir_all(data_dir)?;
    crate::config::write_private(&path, &text)?;
    Ok(path)
}

/// The unified social credit code of the demo's annual-report remediation case.
pub fn remediation_case_uscc() -> Uscc {
    Uscc::complete("9137100277777777").expect("digits only")
}

/// Adds the case the bureau meets most (see the certificates issue): an enterprise put
/// on the serious-dishonesty list only because it missed annual reports for three years
/// (two years' listings), which has since filed every report owed, so it qualifies for an annual-report remediation
/// certificate. Filed by `market`, a market-regulation agency. Returns its USCC.
pub async fn remediation_case(
    store: &Store,
    keyer: &PersonKeyer,
    market: &Agency,
    today: NaiveDate,
) -> anyhow::Result<Uscc> {
    use chrono::Datelike;
    let uscc = remediation_case_uscc();
    let (rep_name, rep_id) = demo_representative(0xA11, 0);
    let rep_id = IdNumber::parse(&rep_id).expect("built to be valid");
    store
        .upsert_enterprises(
            vec![Enterprise {
                uscc: uscc.clone(),
                display_name: "威海补报年报演示商贸有限公司".into(),
                former_names: vec![],
                kind: EnterpriseKind::LimitedLiabilityCompany,
                status: EnterpriseStatus::Operating,
                established: Some(today - Duration::days(3_000)),
                region_code: "371002".into(),
                industry_code: "F5191".into(),
                in_bankruptcy_restructuring: false,
                roles: vec![Role {
                    kind: RoleKind::LegalRepresentative,
                    person: PersonRef::new(keyer, rep_name, &rep_id),
                    start: Some(today - Duration::days(3_000)),
                    end: None,
                }],
                updated_at: 0,
            }],
            today,
            None,
            &|_| Vec::new(),
        )
        .await
        .context("registering the remediation case")?;
    let listed = today - Duration::days(200);
    let record = |source: &str, kind, tier, date: NaiveDate, attributes: Attributes| NewRecord {
        source_record_id: format!("DEMO-REMEDIATION-{source}"),
        revision: 1,
        publicity_end_defaulted: false,
        content: RecordContent {
            subject: Subject::Enterprise(uscc.clone()),
            kind,
            tier,
            domain: RegulatoryDomain::BusinessRegistration,
            decision_date: date,
            document_number: format!("威开市监{source}〔{}〕1号", date.year()),
            deciding_authority: "威海经济技术开发区市场监督管理局".into(),
            summary: format!("演示数据：年报补报案例 {source}"),
            publicity_end: default_publicity_end(kind, tier, date, &[]),
            attributes,
        },
    };
    let mut records = Vec::new();
    let mut first_missed = None;
    for (n, days_before) in [(1, 3 * 365 + 60), (2, 2 * 365 + 60)] {
        let date = listed - Duration::days(days_before);
        let year = latest_late_report_year(date);
        first_missed.get_or_insert(year);
        records.push(record(
            &format!("ABN{n}"),
            RecordKind::AbnormalOperationsListing,
            Tier::Moderate,
            date,
            Attributes {
                abnormal_cause: Some(AbnormalCause::AnnualReportNotFiled),
                report_year: Some(year),
                ..Attributes::default()
            },
        ));
    }
    // Every report owed since the first one missed is filed since the listing, those
    // that fell due while the enterprise stood listed too.
    let first_missed = first_missed.expect("two listings");
    for (n, year) in (first_missed..=latest_late_report_year(today)).enumerate() {
        records.push(record(
            &format!("AR{year}"),
            RecordKind::AnnualReportFiling,
            Tier::Minor,
            listed + Duration::days(30 * (n as i64 + 1)),
            Attributes {
                report_year: Some(year),
                ..Attributes::default()
            },
        ));
    }
    records.push(record(
        "SDL",
        RecordKind::SeriousDishonestyListing,
        Tier::Serious,
        listed,
        Attributes {
            serious_listing_cause: Some(SeriousListingCause::AbnormalListThreeYears),
            ..Attributes::default()
        },
    ));
    store
        .submit_records(market, records, today, None, &|_| Vec::new())
        .await
        .context("filing the remediation case")?;
    Ok(uscc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code the seeder can make for the demo's 50,000 enterprises is a USCC:
    /// each region, index and offset it may draw.
    #[test]
    fn every_code_the_seeder_can_draw_is_a_uscc() {
        for region in REGIONS {
            for i in 0..SeedPlan::default().enterprises {
                for offset in 0..7 {
                    let prefix = format!("91{region}{:08}", 10_000_000 + i * 7 + offset);
                    assert!(Uscc::complete(&prefix).is_some(), "{prefix}");
                }
            }
        }
    }
}
