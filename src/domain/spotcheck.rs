//! "Double random, one public" spot checks (双随机、一公开): cycles, the seeded draw of
//! targets with a sampling ratio per grade, inspectors drawn per visit without
//! conflicts and with even load, and merging departments' plans into joint visits.
//!
//! The draw is meant to be re-run by anyone from the published inputs, so it is
//! specified here exactly: a ChaCha20 generator keyed with the 32-byte seed; grades in
//! order A, B, C, D; for each, the eligible USCCs sorted ascending, `n = floor(ratio ×
//! eligible + 0.5 + 1e-9)` in IEEE 754 double arithmetic (the `1e-9` rounds a product
//! that is a half in decimal up, as decimal does: 0.29 × 50 computes to
//! 14.499999999999998 and draws 15) of them chosen by a partial Fisher–Yates shuffle
//! where step `i` swaps
//! position `i` with `i + (next_u64 mod (len − i))`; the first `n` are the targets.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{Datelike, NaiveDate};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::codes::RegulatoryDomain;
use super::grading::Grade;

/// Spot-check defaults from configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpotCheckPolicy {
    pub publish_working_days: u32,
    pub inspectors_per_visit: u32,
    pub non_on_site_domains: BTreeSet<RegulatoryDomain>,
    pub ratios: BTreeMap<Grade, f64>,
}

impl SpotCheckPolicy {
    /// The shipped defaults, `policies/spotcheck.toml`.
    pub fn builtin() -> Self {
        Self::parse(include_str!("../../policies/spotcheck.toml"))
            .expect("the shipped spot-check policy is valid")
    }

    /// Reads a policy; every grade needs a ratio in 0..=1.
    pub fn parse(text: &str) -> Result<Self, String> {
        let p: SpotCheckPolicy = toml::from_str(text).map_err(|e| e.to_string())?;
        check_ratios(&p.ratios).map_err(|(_, e)| e)?;
        if p.inspectors_per_visit == 0 {
            return Err("inspectors_per_visit must be at least 1".into());
        }
        Ok(p)
    }
}

/// Whether `ratios` draw every grade alike: such a plan's targets tell nothing of
/// their grades.
pub fn same_for_every_grade(ratios: &BTreeMap<Grade, f64>) -> bool {
    let mut values = ratios.values();
    let first = values.next();
    values.all(|r| Some(r) == first)
}

/// Refuses ratios that miss a grade, fall outside 0..=1, or sample a riskier grade
/// less than a safer one (the draw follows credit risk: 差异化抽查, A at most B at most
/// C at most D), naming the grade.
pub fn check_ratios(ratios: &BTreeMap<Grade, f64>) -> Result<(), (Grade, String)> {
    let mut safer: Option<(Grade, f64)> = None;
    for g in Grade::ALL {
        match ratios.get(g) {
            None => return Err((*g, format!("no ratio for grade {}", g.code()))),
            Some(r) if !(0.0..=1.0).contains(r) || r.is_nan() => {
                return Err((
                    *g,
                    format!("ratio for grade {} must be between 0 and 1", g.code()),
                ))
            }
            Some(r) => {
                if let Some((s, below)) = safer.filter(|(_, below)| r < below) {
                    return Err((
                        *g,
                        format!(
                            "ratio for grade {} ({r}) must be at least grade {}'s ({below}): \
                             riskier enterprises are checked at least as often",
                            g.code(),
                            s.code()
                        ),
                    ));
                }
                safer = Some((*g, *r));
            }
        }
    }
    Ok(())
}

/// An inspection cycle: a year (`2026`) or a quarter (`2026-Q4`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    pub label: String,
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl Cycle {
    /// Parses `YYYY` or `YYYY-Qn`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{} is not a cycle: write a year (2026) or a quarter (2026-Q4)",
                super::id_scan::quoted(text)
            )
        };
        let (year, quarter) = match text.split_once("-Q") {
            Some((y, q)) => (y, Some(q)),
            None => (text, None),
        };
        // Strictly one spelling per cycle ("2026-Q01" or "+202" would parse as numbers
        // yet name another cycle where plans are matched by label).
        if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let year: i32 = year.parse().map_err(|_| bad())?;
        let (first, last) = match quarter {
            None => (1, 12),
            Some(q @ ("1" | "2" | "3" | "4")) => {
                let q: u32 = q.parse().map_err(|_| bad())?;
                (3 * q - 2, 3 * q)
            }
            Some(_) => return Err(bad()),
        };
        let start = NaiveDate::from_ymd_opt(year, first, 1).ok_or_else(bad)?;
        let next = if last == 12 {
            NaiveDate::from_ymd_opt(year + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(year, last + 1, 1)
        }
        .ok_or_else(bad)?;
        Ok(Cycle {
            label: text.to_string(),
            start,
            end: next.pred_opt().ok_or_else(bad)?,
        })
    }

    pub fn contains(&self, day: NaiveDate) -> bool {
        (self.start..=self.end).contains(&day)
    }

    /// Whether the cycle is a year, or a quarter of `year`.
    pub fn year(&self) -> i32 {
        self.start.year()
    }

    /// The labels of every cycle that shares days with this one: a year and its four
    /// quarters overlap, quarters of a year do not overlap each other.
    pub fn overlapping_labels(&self) -> Vec<String> {
        let year = self.year();
        if self.label.contains("-Q") {
            vec![year.to_string(), self.label.clone()]
        } else {
            std::iter::once(year.to_string())
                .chain((1..=4).map(|q| format!("{year}-Q{q}")))
                .collect()
        }
    }
}

/// SHA-256 (hex) of the seed's hex text: the commitment recorded before the draw.
pub fn commitment(seed_hex: &str) -> String {
    hex::encode(Sha256::digest(seed_hex.as_bytes()))
}

/// How many of `eligible` a ratio draws: rounded half up.
pub fn sample_size(ratio: f64, eligible: usize) -> usize {
    // The small epsilon rounds a product that is a half in decimal up: 0.29 × 50
    // computes to 14.499999999999998, and 14.5 draws 15.
    ((ratio * eligible as f64) + 0.5 + 1e-9).floor() as usize
}

fn rng(seed: &[u8; 32]) -> ChaCha20Rng {
    ChaCha20Rng::from_seed(*seed)
}

/// Picks `n` of `items` (in their given order) by the partial Fisher–Yates shuffle the
/// module documents.
fn pick<T: Clone>(rng: &mut ChaCha20Rng, items: &[T], n: usize) -> Vec<T> {
    let mut pool = items.to_vec();
    let n = n.min(pool.len());
    for i in 0..n {
        let j = i + (rng.next_u64() % (pool.len() - i) as u64) as usize;
        pool.swap(i, j);
    }
    pool.truncate(n);
    pool
}

/// The draw: for each grade, `sample_size(ratio, eligible)` of its eligible USCCs
/// (sorted here, so the caller's order does not matter). Returns (USCC, grade) in draw
/// order.
pub fn draw(
    seed: &[u8; 32],
    eligible: &BTreeMap<Grade, Vec<String>>,
    ratios: &BTreeMap<Grade, f64>,
) -> Vec<(String, Grade)> {
    let mut rng = rng(seed);
    let mut out = Vec::new();
    for grade in Grade::ALL {
        let mut pool = eligible.get(grade).cloned().unwrap_or_default();
        pool.sort();
        pool.dedup();
        let n = sample_size(ratios.get(grade).copied().unwrap_or(0.0), pool.len());
        out.extend(pick(&mut rng, &pool, n).into_iter().map(|u| (u, *grade)));
    }
    out
}

/// Parses a 64-hex-character seed.
pub fn seed_bytes(seed_hex: &str) -> Option<[u8; 32]> {
    hex::decode(seed_hex).ok()?.try_into().ok()
}

/// An inspector as the draw sees one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qualified {
    /// Unique across departments: `agencies/{id}/inspectors/{code}`.
    pub key: String,
    pub department: String,
    pub domains: BTreeSet<RegulatoryDomain>,
    /// USCCs the inspector must never inspect.
    pub conflicts: BTreeSet<String>,
}

/// Draws up to `k` inspectors for each visit from `inspectors` qualified for the visit's
/// `(department, domain)` needs, never one with a conflict for that enterprise, always
/// the least-loaded so far, ties broken at random. A visit first gets one inspector per
/// need (each department checks its own items), then is filled from any need's pool.
pub fn assign_inspectors(
    seed: &[u8; 32],
    visits: &[(String, Vec<(String, RegulatoryDomain)>)],
    inspectors: &[Qualified],
    k: usize,
) -> Vec<Vec<String>> {
    let mut rng = rng(seed);
    let mut load: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(visits.len());
    for (uscc, needs) in visits {
        let mut chosen: Vec<String> = Vec::new();
        let eligible = |i: &&Qualified, dept: &str, domain: RegulatoryDomain| {
            i.department == dept && i.domains.contains(&domain) && !i.conflicts.contains(uscc)
        };
        let mut take = |candidates: Vec<&Qualified>,
                        chosen: &mut Vec<String>,
                        load: &mut HashMap<String, usize>| {
            let fresh: Vec<&Qualified> = candidates
                .into_iter()
                .filter(|i| !chosen.contains(&i.key))
                .collect();
            let least = fresh
                .iter()
                .map(|i| load.get(i.key.as_str()).copied().unwrap_or(0))
                .min();
            let Some(least) = least else { return };
            let tied: Vec<&Qualified> = fresh
                .into_iter()
                .filter(|i| load.get(i.key.as_str()).copied().unwrap_or(0) == least)
                .collect();
            let pickd = tied[(rng.next_u64() % tied.len() as u64) as usize];
            *load.entry(pickd.key.clone()).or_default() += 1;
            chosen.push(pickd.key.clone());
        };
        for (dept, domain) in needs {
            if chosen.len() >= k.max(needs.len()) {
                break;
            }
            let pool: Vec<&Qualified> = inspectors
                .iter()
                .filter(|i| eligible(i, dept, *domain))
                .collect();
            take(pool, &mut chosen, &mut load);
        }
        while chosen.len() < k {
            let before = chosen.len();
            let pool: Vec<&Qualified> = inspectors
                .iter()
                .filter(|i| needs.iter().any(|(d, dom)| eligible(i, d, *dom)))
                .collect();
            take(pool, &mut chosen, &mut load);
            if chosen.len() == before {
                break; // nobody left who may go
            }
        }
        out.push(chosen);
    }
    out
}

/// A drawn plan, as merging reads it.
#[derive(Debug, Clone)]
pub struct DrawnPlan {
    pub id: String,
    pub department: String,
    pub domain: RegulatoryDomain,
    pub check_items: Vec<String>,
    /// (USCC, non-on-site).
    pub targets: Vec<(String, bool)>,
    pub seed: [u8; 32],
}

/// One visit after merging.
#[derive(Debug, Clone, PartialEq)]
pub struct Visit {
    pub uscc: String,
    pub plans: Vec<String>,
    pub departments: Vec<String>,
    pub check_items: Vec<String>,
    pub inspectors: Vec<String>,
    pub non_on_site: bool,
}

/// Joint inspections from several departments' plans.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub visits: Vec<Visit>,
    pub visits_before: usize,
    pub joint_visits: usize,
}

impl Merged {
    pub fn joint_share(&self) -> f64 {
        if self.visits.is_empty() {
            0.0
        } else {
            self.joint_visits as f64 / self.visits.len() as f64
        }
    }
}

/// The seed of a merge: SHA-256 over the plans' seeds in plan-id order, so anyone can
/// re-derive it.
pub fn merge_seed(plans: &[DrawnPlan]) -> [u8; 32] {
    let mut sorted: Vec<&DrawnPlan> = plans.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    let mut h = Sha256::new();
    for p in sorted {
        h.update(p.seed);
    }
    h.finalize().into()
}

/// Merges plans into one visit per enterprise carrying every plan's check items, and
/// draws the inspectors of each visit.
pub fn merge(plans: &[DrawnPlan], inspectors: &[Qualified], k: usize) -> Merged {
    // In id order, like the seed: the same plans named in any order draw the same
    // inspectors.
    let mut ordered: Vec<&DrawnPlan> = plans.iter().collect();
    ordered.sort_by(|a, b| a.id.cmp(&b.id));
    let mut by_uscc: BTreeMap<&str, Vec<(&DrawnPlan, bool)>> = BTreeMap::new();
    for p in ordered {
        for (u, non_on_site) in &p.targets {
            by_uscc
                .entry(u.as_str())
                .or_default()
                .push((p, *non_on_site));
        }
    }
    let visits_before = plans.iter().map(|p| p.targets.len()).sum();
    let needs: Vec<(String, Vec<(String, RegulatoryDomain)>)> = by_uscc
        .iter()
        .map(|(u, ps)| {
            (
                u.to_string(),
                ps.iter()
                    .map(|(p, _)| (p.department.clone(), p.domain))
                    .collect(),
            )
        })
        .collect();
    let drawn = assign_inspectors(&merge_seed(plans), &needs, inspectors, k);
    let mut joint_visits = 0;
    let visits = by_uscc
        .into_iter()
        .zip(drawn)
        .map(|((u, ps), inspectors)| {
            let departments: BTreeSet<String> =
                ps.iter().map(|(p, _)| p.department.clone()).collect();
            if departments.len() > 1 {
                joint_visits += 1;
            }
            Visit {
                uscc: u.to_string(),
                plans: ps.iter().map(|(p, _)| p.id.clone()).collect(),
                departments: departments.into_iter().collect(),
                check_items: ps
                    .iter()
                    .flat_map(|(p, _)| {
                        p.check_items
                            .iter()
                            .map(|i| format!("{}: {i}", p.domain.code()))
                    })
                    .collect(),
                inspectors,
                non_on_site: ps.iter().all(|(_, n)| *n),
            }
        })
        .collect();
    Merged {
        visits,
        visits_before,
        joint_visits,
    }
}

/// An inspector in a department's register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspector {
    pub code: String,
    pub display_name: String,
    pub domains: Vec<RegulatoryDomain>,
    /// USCCs the inspector must never inspect.
    pub conflicts: Vec<String>,
}

impl Inspector {
    /// The inspector as the draw sees it, keyed `agencies/{department}/inspectors/{code}`.
    pub fn qualified(&self, department: &str) -> Qualified {
        Qualified {
            key: format!("agencies/{department}/inspectors/{}", self.code),
            department: department.to_string(),
            domains: self.domains.iter().copied().collect(),
            conflicts: self.conflicts.iter().cloned().collect(),
        }
    }
}

/// A drawn target.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Target {
    pub uscc: String,
    pub grade: Grade,
    pub non_on_site: bool,
    /// Inspector codes of the plan's department.
    pub inspectors: Vec<String>,
}

/// What a draw fixed: its published inputs and its targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Drawn {
    /// Milliseconds since the Unix epoch.
    pub drawn_at: i64,
    /// Eligible USCCs per grade after the cycle's exclusions, sorted.
    pub eligible: BTreeMap<Grade, Vec<String>>,
    pub targets: Vec<Target>,
}

/// A spot-check plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub id: String,
    /// The department (agency id).
    pub agency_id: String,
    pub domain: RegulatoryDomain,
    pub cycle: Cycle,
    pub region_code: String,
    pub industry_code: String,
    pub ratios: BTreeMap<Grade, f64>,
    pub inspectors_per_visit: u32,
    pub check_items: Vec<String>,
    pub seed_commitment: String,
    /// Secret until drawn; never shown before.
    pub seed: String,
    pub created_at: i64,
    pub drawn: Option<Drawn>,
}

impl Plan {
    /// The resource name `spotCheckPlans/{id}`.
    pub fn resource_name(&self) -> String {
        format!("spotCheckPlans/{}", self.id)
    }

    /// The seed's bytes.
    pub fn seed_bytes(&self) -> Option<[u8; 32]> {
        seed_bytes(&self.seed)
    }

    /// Draws the plan over `eligible`: targets, non-on-site marks and inspectors from
    /// the department's `inspectors`.
    pub fn draw(
        &self,
        eligible: BTreeMap<Grade, Vec<String>>,
        inspectors: &[Qualified],
        non_on_site_domains: &BTreeSet<RegulatoryDomain>,
        drawn_at: i64,
    ) -> Option<Drawn> {
        let seed = self.seed_bytes()?;
        let picked = draw(&seed, &eligible, &self.ratios);
        let needs: Vec<(String, Vec<(String, RegulatoryDomain)>)> = picked
            .iter()
            .map(|(u, _)| (u.clone(), vec![(self.agency_id.clone(), self.domain)]))
            .collect();
        // The inspectors' draw continues from a seed of its own, derived from the plan's.
        let inspector_seed: [u8; 32] = Sha256::digest(seed).into();
        let assigned = assign_inspectors(
            &inspector_seed,
            &needs,
            inspectors,
            self.inspectors_per_visit as usize,
        );
        let prefix = format!("agencies/{}/inspectors/", self.agency_id);
        let targets = picked
            .into_iter()
            .zip(assigned)
            .map(|((uscc, grade), keys)| Target {
                non_on_site: grade == Grade::A && non_on_site_domains.contains(&self.domain),
                inspectors: keys
                    .into_iter()
                    .map(|k| k.trim_start_matches(&prefix).to_string())
                    .collect(),
                uscc,
                grade,
            })
            .collect();
        Some(Drawn {
            drawn_at,
            eligible: eligible
                .into_iter()
                .map(|(g, mut v)| {
                    v.sort();
                    v.dedup();
                    (g, v)
                })
                .collect(),
            targets,
        })
    }
}

/// One inspected item of a result.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InspectionItem {
    pub item: String,
    pub passed: bool,
    pub finding: String,
}

/// A recorded, published result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpotCheckResult {
    pub plan_id: String,
    pub uscc: String,
    pub agency_id: String,
    pub outcome: super::codes::SpotCheckOutcome,
    pub items: Vec<InspectionItem>,
    pub inspection_date: NaiveDate,
    /// Milliseconds since the Unix epoch.
    pub published_at: i64,
    pub publish_due: NaiveDate,
    pub record_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn population(per_grade: usize) -> BTreeMap<Grade, Vec<String>> {
        Grade::ALL
            .iter()
            .map(|g| {
                (
                    *g,
                    (0..per_grade)
                        .map(|i| format!("{}{i:05}", g.code()))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn riskier_grades_are_sampled_at_least_as_often() {
        let ratios =
            |r: [f64; 4]| -> BTreeMap<Grade, f64> { Grade::ALL.iter().copied().zip(r).collect() };
        assert!(check_ratios(&ratios([0.02, 0.05, 0.15, 0.3])).is_ok());
        assert!(check_ratios(&ratios([1.0, 1.0, 1.0, 1.0])).is_ok());
        let (grade, why) = check_ratios(
            &ratios([0.0, 0.0, 0.0, 0.0])
                .into_iter()
                .chain([(Grade::B, 0.5)])
                .collect(),
        )
        .unwrap_err();
        assert_eq!(grade, Grade::C, "{why}");
        assert_eq!(
            check_ratios(&ratios([0.1, 0.05, 0.2, 0.3])).unwrap_err().0,
            Grade::B
        );
    }

    #[test]
    fn a_year_overlaps_its_quarters_and_a_quarter_only_its_year() {
        let year = Cycle::parse("2026").unwrap();
        assert_eq!(
            year.overlapping_labels(),
            ["2026", "2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4"]
        );
        assert_eq!(
            Cycle::parse("2026-Q3").unwrap().overlapping_labels(),
            ["2026", "2026-Q3"]
        );
    }

    #[test]
    fn a_cycle_has_one_spelling() {
        for other in ["2026-Q01", "2026-Q+1", "+202", "2026-Q", "2026-Q5"] {
            assert!(Cycle::parse(other).is_err(), "{other}");
        }
        assert_eq!(Cycle::parse("2026-Q1").unwrap().label, "2026-Q1");
    }

    #[test]
    fn cycles_are_years_or_quarters() {
        let q = Cycle::parse("2026-Q4").unwrap();
        assert_eq!((q.start, q.end), (d("2026-10-01"), d("2026-12-31")));
        let y = Cycle::parse("2026").unwrap();
        assert_eq!((y.start, y.end), (d("2026-01-01"), d("2026-12-31")));
        assert!(Cycle::parse("2026-Q5").is_err());
        assert!(Cycle::parse("26").is_err());
    }

    #[test]
    fn counts_follow_the_ratios_rounded_half_up() {
        assert_eq!(sample_size(0.15, 20), 3);
        assert_eq!(sample_size(0.05, 10), 1); // 0.5 rounds up
        assert_eq!(
            sample_size(0.29, 50),
            15,
            "14.5 in decimal, 14.499999999999998 computed"
        );
        assert_eq!(sample_size(0.02, 24), 0); // 0.48 rounds down
        let ratios = SpotCheckPolicy::builtin().ratios;
        let targets = draw(&[7; 32], &population(100), &ratios);
        let count = |g: Grade| targets.iter().filter(|(_, x)| *x == g).count();
        assert_eq!(
            [
                count(Grade::A),
                count(Grade::B),
                count(Grade::C),
                count(Grade::D)
            ],
            [2, 5, 15, 30]
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_draw_and_another_seed_another() {
        let ratios = SpotCheckPolicy::builtin().ratios;
        let mut shuffled = population(100);
        shuffled.get_mut(&Grade::C).unwrap().reverse();
        assert_eq!(
            draw(&[1; 32], &population(100), &ratios),
            draw(&[1; 32], &shuffled, &ratios)
        );
        assert_ne!(
            draw(&[1; 32], &population(100), &ratios),
            draw(&[2; 32], &population(100), &ratios)
        );
    }

    /// Upper 1% point of chi-square with `df` degrees of freedom (Wilson–Hilferty).
    fn chi2_critical_1pct(df: f64) -> f64 {
        let z = 2.326_347_874;
        let a = 2.0 / (9.0 * df);
        df * (1.0 - a + z * a.sqrt()).powi(3)
    }

    #[test]
    fn over_many_seeds_every_enterprise_of_a_grade_is_drawn_equally_often() {
        let per_grade = 50;
        let seeds = 2_000;
        let ratios = SpotCheckPolicy::builtin().ratios;
        let pop = population(per_grade);
        let mut counts: HashMap<String, u32> = HashMap::new();
        let mut per_grade_drawn: BTreeMap<Grade, u32> = BTreeMap::new();
        for s in 0..seeds {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(s as u64).to_le_bytes());
            for (u, g) in draw(&seed, &pop, &ratios) {
                *counts.entry(u).or_default() += 1;
                *per_grade_drawn.entry(g).or_default() += 1;
            }
        }
        for g in Grade::ALL {
            let n = sample_size(ratios[g], per_grade);
            // Each grade's selection frequency is its ratio (to the rounding).
            let frequency = f64::from(per_grade_drawn.get(g).copied().unwrap_or(0))
                / (seeds * per_grade) as f64;
            assert!((frequency - n as f64 / per_grade as f64).abs() < 1e-12);
            if n == 0 {
                continue;
            }
            // Within the grade, selections are uniform: chi-square at 1%.
            let expected = seeds as f64 * n as f64 / per_grade as f64;
            let chi2: f64 = pop[g]
                .iter()
                .map(|u| {
                    let o = f64::from(counts.get(u).copied().unwrap_or(0));
                    (o - expected).powi(2) / expected
                })
                .sum();
            let critical = chi2_critical_1pct((per_grade - 1) as f64);
            assert!(
                chi2 < critical,
                "grade {}: chi2 {chi2:.1} ≥ {critical:.1}",
                g.code()
            );
        }
    }

    fn inspector(key: &str, dept: &str, conflicts: &[&str]) -> Qualified {
        Qualified {
            key: key.into(),
            department: dept.into(),
            domains: [RegulatoryDomain::FoodProduction].into(),
            conflicts: conflicts.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn inspectors_skip_conflicts_and_share_the_load() {
        let people = vec![
            inspector("x", "m", &["U1"]),
            inspector("y", "m", &[]),
            inspector("z", "m", &[]),
        ];
        let visits: Vec<(String, Vec<(String, RegulatoryDomain)>)> = (1..=30)
            .map(|i| {
                (
                    format!("U{i}"),
                    vec![("m".to_string(), RegulatoryDomain::FoodProduction)],
                )
            })
            .collect();
        let drawn = assign_inspectors(&[3; 32], &visits, &people, 1);
        assert_eq!(drawn[0].len(), 1);
        assert_ne!(drawn[0][0], "x");
        let mut load: HashMap<&str, usize> = HashMap::new();
        for v in &drawn {
            *load.entry(v[0].as_str()).or_default() += 1;
        }
        assert!(load.values().all(|n| (9..=11).contains(n)), "{load:?}");
    }

    #[test]
    fn merging_gives_one_visit_per_enterprise_with_every_department() {
        let plan = |id: &str, dept: &str, targets: &[&str]| DrawnPlan {
            id: id.into(),
            department: dept.into(),
            domain: RegulatoryDomain::FoodProduction,
            check_items: vec![format!("{dept} item")],
            targets: targets.iter().map(|t| (t.to_string(), false)).collect(),
            seed: [9; 32],
        };
        let people = vec![inspector("a1", "a", &[]), inspector("b1", "b", &[])];
        let m = merge(
            &[
                plan("p1", "a", &["U1", "U2"]),
                plan("p2", "b", &["U2", "U3"]),
            ],
            &people,
            2,
        );
        assert_eq!(m.visits_before, 4);
        assert_eq!(m.visits.len(), 3);
        assert_eq!(m.joint_visits, 1);
        let joint = m.visits.iter().find(|v| v.uscc == "U2").unwrap();
        assert_eq!(joint.departments, ["a", "b"]);
        assert_eq!(joint.check_items.len(), 2);
        assert_eq!(joint.inspectors.len(), 2);
    }
}
