//! Credit-risk grading (信用风险分级分类): grading models as data, and the pure function
//! that turns an enterprise's records into a grade with its reasons.
//!
//! Semantics: the score starts at the model's base; each counted record adds the points
//! of the first rule matching its kind (and tier or outcome when the rule names one);
//! deductions per kind are capped; related-party rules add points for what the legal
//! representative did; the thresholds map the score to A-D; overrides then force D or
//! cap the grade at C. Only records in their publicity window count.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::NaiveDate;
use serde::Deserialize;
use toml::Spanned;

use super::codes::{code_enum, RecordKind, RecordStatus, RegulatoryDomain, SpotCheckOutcome, Tier};
use super::record::{status_on, Record};

code_enum! {
    /// A credit-risk grade, A lowest risk to D highest.
    pub enum Grade {
        A = 1 => "A",
        B = 2 => "B",
        C = 3 => "C",
        D = 4 => "D",
    }
}

code_enum! {
    /// What an override does to the grade.
    pub enum Effect {
        ForceD = 1 => "D",
        AtBestC = 2 => "AT_BEST_C",
    }
}

code_enum! {
    /// Which related-party fact a rule looks at.
    pub enum Relation {
        LegalRepresentativeRecord = 1 => "LEGAL_REPRESENTATIVE_RECORD",
        LegalRepresentativeRepresentsD = 2 => "LEGAL_REPRESENTATIVE_REPRESENTS_D",
    }
}

/// A model file that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct ModelError {
    pub file: String,
    pub line: usize,
    pub reason: String,
}

/// Score thresholds: a score at or above `a` is A, at or above `b` is B, at or above
/// `c` is C, below is D.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub a: i32,
    pub b: i32,
    pub c: i32,
}

/// Points for records of one kind (optionally one tier or spot-check outcome).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointRule {
    pub code: String,
    pub kind: RecordKind,
    #[serde(default)]
    pub tier: Option<Tier>,
    #[serde(default)]
    pub outcome: Option<SpotCheckOutcome>,
    /// Points per record: negative deducts, positive adds.
    pub points: i32,
    /// Sentence for officers; `{count}` and `{points}` are filled in.
    pub description: String,
}

/// The most one kind of record may deduct, and add, in total: without a cap on
/// additions, enough honours would lift an enterprise with a serious penalty to A.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapRule {
    pub kind: RecordKind,
    #[serde(default)]
    pub max_deduction: Option<i32>,
    #[serde(default)]
    pub max_addition: Option<i32>,
}

/// A record kind whose presence forces the grade, whatever the score.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideRule {
    pub code: String,
    pub kind: RecordKind,
    pub effect: Effect,
    pub description: String,
}

/// A rule about the enterprise's current legal representative.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelatedRule {
    pub code: String,
    pub relation: Relation,
    /// For `LEGAL_REPRESENTATIVE_RECORD`: the kind of record about the person.
    #[serde(default)]
    pub kind: Option<RecordKind>,
    #[serde(default)]
    pub points: i32,
    #[serde(default)]
    pub effect: Option<Effect>,
    pub description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    name: Spanned<String>,
    version: String,
    description: String,
    #[serde(default)]
    domains: Vec<RegulatoryDomain>,
    #[serde(default = "default_weight")]
    other_domain_weight_percent: Spanned<i32>,
    #[serde(default = "default_base")]
    base_score: i32,
    thresholds: Spanned<Thresholds>,
    #[serde(default)]
    points: Vec<Spanned<PointRule>>,
    #[serde(default)]
    caps: Vec<Spanned<CapRule>>,
    #[serde(default)]
    overrides: Vec<Spanned<OverrideRule>>,
    #[serde(default)]
    related: Vec<Spanned<RelatedRule>>,
}

fn default_weight() -> Spanned<i32> {
    Spanned::new(0..0, 100)
}

fn default_base() -> i32 {
    100
}

/// A validated grading model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    pub name: String,
    pub version: String,
    pub description: String,
    /// The regulatory domains a domain model focuses on; empty for the general model.
    pub domains: Vec<RegulatoryDomain>,
    /// Weight, in percent, of domain-bound records outside `domains`.
    pub other_domain_weight_percent: i32,
    pub base_score: i32,
    pub thresholds: Thresholds,
    pub points: Vec<PointRule>,
    pub caps: Vec<CapRule>,
    pub overrides: Vec<OverrideRule>,
    pub related: Vec<RelatedRule>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl Model {
    /// Parses and validates a model file's text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Self, ModelError> {
        let err = |offset: usize, reason: String| ModelError {
            file: file.to_string(),
            line: line_of(text, offset),
            reason,
        };
        let raw: ModelFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            err(offset, e.message().trim().to_string())
        })?;
        let name_ok =
            !raw.name.get_ref().is_empty()
                && raw.name.get_ref().bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
        if !name_ok {
            return Err(err(
                raw.name.span().start,
                "name must be lowercase letters, digits, - or _".into(),
            ));
        }
        let t = raw.thresholds.get_ref();
        if !(t.a > t.b && t.b > t.c) {
            return Err(err(
                raw.thresholds.span().start,
                format!(
                    "thresholds must fall strictly from a to c, got a={} b={} c={}",
                    t.a, t.b, t.c
                ),
            ));
        }
        if !(0..=100).contains(raw.other_domain_weight_percent.get_ref()) {
            return Err(err(
                raw.other_domain_weight_percent.span().start,
                "other_domain_weight_percent must be between 0 and 100".into(),
            ));
        }
        let mut codes = BTreeSet::new();
        let mut check_code = |code: &str, offset: usize| -> Result<(), ModelError> {
            let valid = !code.is_empty()
                && code
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            if !valid {
                return Err(err(
                    offset,
                    format!("code {code:?} must be UPPER_SNAKE_CASE"),
                ));
            }
            if !codes.insert(code.to_string()) {
                return Err(err(offset, format!("code {code} is used twice")));
            }
            Ok(())
        };
        for p in &raw.points {
            let r = p.get_ref();
            check_code(&r.code, p.span().start)?;
            if r.points == 0 {
                return Err(err(
                    p.span().start,
                    format!("rule {} gives 0 points; leave it out", r.code),
                ));
            }
            if r.outcome.is_some() && r.kind != RecordKind::SpotCheckResult {
                return Err(err(
                    p.span().start,
                    format!("rule {}: outcome applies only to SPOT_CHECK_RESULT", r.code),
                ));
            }
        }
        for o in &raw.overrides {
            check_code(&o.get_ref().code, o.span().start)?;
        }
        for r in &raw.related {
            let rule = r.get_ref();
            check_code(&rule.code, r.span().start)?;
            match rule.relation {
                Relation::LegalRepresentativeRecord if rule.kind.is_none() => {
                    return Err(err(
                        r.span().start,
                        format!(
                            "related rule {} needs the kind of record about the person",
                            rule.code
                        ),
                    ))
                }
                _ => {}
            }
            if rule.points == 0 && rule.effect.is_none() {
                return Err(err(
                    r.span().start,
                    format!("related rule {} needs points or an effect", rule.code),
                ));
            }
        }
        for (i, c) in raw.caps.iter().enumerate() {
            let cap = c.get_ref();
            let why = match (cap.max_deduction, cap.max_addition) {
                (None, None) => Some("a cap needs max_deduction or max_addition".to_string()),
                (Some(d), _) if d <= 0 => Some("max_deduction must be positive".to_string()),
                (_, Some(a)) if a <= 0 => Some("max_addition must be positive".to_string()),
                // Only one cap per kind applies: a second would be ignored.
                _ if raw.caps[..i].iter().any(|e| e.get_ref().kind == cap.kind) => Some(format!(
                    "a second cap for {}: give max_deduction and max_addition in one",
                    cap.kind.code()
                )),
                _ => None,
            };
            if let Some(why) = why {
                return Err(err(c.span().start, why));
            }
        }
        Ok(Model {
            name: raw.name.into_inner(),
            version: raw.version,
            description: raw.description,
            domains: raw.domains,
            other_domain_weight_percent: raw.other_domain_weight_percent.into_inner(),
            base_score: raw.base_score,
            thresholds: raw.thresholds.into_inner(),
            points: raw.points.into_iter().map(Spanned::into_inner).collect(),
            caps: raw.caps.into_iter().map(Spanned::into_inner).collect(),
            overrides: raw.overrides.into_iter().map(Spanned::into_inner).collect(),
            related: raw.related.into_iter().map(Spanned::into_inner).collect(),
        })
    }

    /// Record kinds whose presence forces D: what makes an enterprise "graded D" for
    /// the related-party rule about its legal representative's other enterprises.
    pub fn hard_d_kinds(&self) -> Vec<RecordKind> {
        self.overrides
            .iter()
            .filter(|o| o.effect == Effect::ForceD)
            .map(|o| o.kind)
            .collect()
    }

    /// The grade a score maps to.
    pub fn grade_for(&self, score: i32) -> Grade {
        let t = self.thresholds;
        if score >= t.a {
            Grade::A
        } else if score >= t.b {
            Grade::B
        } else if score >= t.c {
            Grade::C
        } else {
            Grade::D
        }
    }
}

/// The models the service grades with; always holds `general`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSet {
    models: Vec<Model>,
}

/// The id of the model used when a caller names none.
pub const DEFAULT_MODEL: &str = "general";

impl ModelSet {
    /// Builds a set from parsed models: names must be unique and `general` present.
    pub fn new(mut models: Vec<Model>) -> Result<Self, ModelError> {
        models.sort_by(|a, b| a.name.cmp(&b.name));
        for pair in models.windows(2) {
            if pair[0].name == pair[1].name {
                return Err(ModelError {
                    file: pair[1].name.clone(),
                    line: 1,
                    reason: "two models share this name".into(),
                });
            }
        }
        if !models.iter().any(|m| m.name == DEFAULT_MODEL) {
            return Err(ModelError {
                file: "models".into(),
                line: 1,
                reason: "no model named general".into(),
            });
        }
        Ok(ModelSet { models })
    }

    /// The models shipped in `models/`, compiled into the binary.
    pub fn builtin() -> Self {
        let files: [(&str, &str); 5] = [
            (
                "models/general.toml",
                include_str!("../../models/general.toml"),
            ),
            (
                "models/food-production.toml",
                include_str!("../../models/food-production.toml"),
            ),
            (
                "models/education.toml",
                include_str!("../../models/education.toml"),
            ),
            (
                "models/social-security.toml",
                include_str!("../../models/social-security.toml"),
            ),
            (
                "models/construction.toml",
                include_str!("../../models/construction.toml"),
            ),
        ];
        let models = files
            .iter()
            .map(|(f, t)| Model::parse(f, t).expect("shipped models are valid"))
            .collect();
        Self::new(models).expect("shipped models form a set")
    }

    /// The model named `name`.
    pub fn get(&self, name: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.name == name)
    }

    /// Every model, by name.
    pub fn all(&self) -> &[Model] {
        &self.models
    }

    /// Names of every model, for error messages.
    pub fn names(&self) -> Vec<&str> {
        self.models.iter().map(|m| m.name.as_str()).collect()
    }
}

/// One rule that fired.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reason {
    /// Stable code for machines, e.g. `SERIOUS_DISHONESTY_LIST`.
    pub code: String,
    /// Ids of the records behind it.
    pub record_ids: Vec<String>,
    pub points: i32,
    /// A sentence in Chinese for officers.
    pub description: String,
}

/// A computed grade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graded {
    pub grade: Grade,
    pub score: i32,
    pub reasons: Vec<Reason>,
}

impl Graded {
    /// The records, of other enterprises, behind this grade's "the legal representative
    /// also represents a D enterprise" reasons under `model`: what regrading this
    /// enterprise alone (a what-if) must pass on as `represented_hard_d`.
    pub fn represented_hard_d(&self, model: &Model) -> Vec<String> {
        let codes: Vec<&str> = model
            .related
            .iter()
            .filter(|r| r.relation == Relation::LegalRepresentativeRepresentsD)
            .map(|r| r.code.as_str())
            .collect();
        self.reasons
            .iter()
            .filter(|r| codes.contains(&r.code.as_str()))
            .flat_map(|r| r.record_ids.iter().cloned())
            .collect()
    }
}

/// What grading reads of a record: enough to count it, none of its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub id: String,
    pub kind: RecordKind,
    pub tier: Tier,
    pub domain: RegulatoryDomain,
    pub decision_date: NaiveDate,
    pub publicity_end: NaiveDate,
    pub status: RecordStatus,
    /// Only spot-check results carry one.
    pub spot_check_outcome: Option<SpotCheckOutcome>,
}

impl Fact {
    /// The record's status on `today`, as [`Record::status_on`] gives it.
    pub fn status_on(&self, today: NaiveDate) -> RecordStatus {
        status_on(self.status, self.publicity_end, today)
    }
}

impl From<&Record> for Fact {
    fn from(r: &Record) -> Self {
        Fact {
            id: r.id.clone(),
            kind: r.content.kind,
            tier: r.content.tier,
            domain: r.content.domain,
            decision_date: r.content.decision_date,
            publicity_end: r.content.publicity_end,
            status: r.status,
            spot_check_outcome: r.content.attributes.spot_check_outcome,
        }
    }
}

/// Everything a grade depends on.
#[derive(Debug, Clone, Copy)]
pub struct GradeInput<'a> {
    /// Records about the enterprise.
    pub own: &'a [Fact],
    /// Records about its current legal representative.
    pub legal_representative: &'a [Fact],
    /// Ids of the records that make another enterprise of the same legal representative
    /// hard-D under this model.
    pub represented_hard_d: &'a [String],
    pub today: NaiveDate,
}

/// Whether a record's kind is bound to a regulatory domain (penalties, measures, checks).
fn domain_bound(kind: RecordKind) -> bool {
    matches!(
        kind,
        RecordKind::AdministrativePenalty
            | RecordKind::AdministrativeCoerciveMeasure
            | RecordKind::SpotCheckResult
    )
}

fn counted(records: &[Fact], today: NaiveDate) -> Vec<&Fact> {
    let mut out: Vec<&Fact> = records
        .iter()
        .filter(|r| r.status_on(today) == RecordStatus::Active)
        .collect();
    // Arrival order must not matter.
    out.sort_by(|a, b| (a.kind, a.decision_date, &a.id).cmp(&(b.kind, b.decision_date, &b.id)));
    out
}

/// Hundredths of a point as whole points, halves away from zero.
fn whole_points(hundredths: i32) -> i32 {
    let whole = hundredths.saturating_abs().saturating_add(50) / 100;
    if hundredths < 0 {
        -whole
    } else {
        whole
    }
}

fn describe(template: &str, count: usize, points: i32) -> String {
    template
        .replace("{count}", &count.to_string())
        .replace("{points}", &points.to_string())
}

/// Grades one enterprise under `model`.
pub fn grade(model: &Model, input: GradeInput<'_>) -> Graded {
    let own = counted(input.own, input.today);
    let mut score = model.base_score;
    let mut reasons = Vec::new();

    // Points: each record counts under the first rule that matches it, weighted in
    // hundredths of a point; a rule's total is rounded once, so five half-weight
    // records of -3 count -8 (-7.5), not five times -1.
    let mut by_rule: BTreeMap<usize, (Vec<String>, i32)> = BTreeMap::new();
    for r in &own {
        let c = *r;
        let Some((i, rule)) = model.points.iter().enumerate().find(|(_, p)| {
            p.kind == c.kind
                && p.tier.is_none_or(|t| t == c.tier)
                && p.outcome.is_none_or(|o| Some(o) == c.spot_check_outcome)
        }) else {
            continue;
        };
        let weight = if !model.domains.is_empty()
            && domain_bound(c.kind)
            && !model.domains.contains(&c.domain)
        {
            model.other_domain_weight_percent
        } else {
            100
        };
        let entry = by_rule.entry(i).or_default();
        entry.0.push(r.id.clone());
        // Saturating: no count of records may wrap a deduction into a bonus.
        entry.1 = entry.1.saturating_add(rule.points.saturating_mul(weight));
    }
    // Caps apply to the total deduction, and the total addition, of a kind, shared by
    // its rules in file order.
    let mut deducted: BTreeMap<RecordKind, i32> = BTreeMap::new();
    let mut added: BTreeMap<RecordKind, i32> = BTreeMap::new();
    for (i, (ids, hundredths)) in by_rule {
        let rule = &model.points[i];
        let mut points = whole_points(hundredths);
        let cap = model.caps.iter().find(|c| c.kind == rule.kind);
        if let Some(max) = cap.and_then(|c| c.max_deduction).filter(|_| points < 0) {
            let used = deducted.entry(rule.kind).or_default();
            points = points.max(-max.saturating_sub(*used));
            *used = used.saturating_sub(points);
        }
        if let Some(max) = cap.and_then(|c| c.max_addition).filter(|_| points > 0) {
            let used = added.entry(rule.kind).or_default();
            points = points.min(max.saturating_sub(*used));
            *used = used.saturating_add(points);
        }
        score = score.saturating_add(points);
        reasons.push(Reason {
            code: rule.code.clone(),
            description: describe(&rule.description, ids.len(), points),
            record_ids: ids,
            points,
        });
    }

    // Related parties.
    let rep = counted(input.legal_representative, input.today);
    let mut effects = Vec::new();
    for rule in &model.related {
        let ids: Vec<String> = match rule.relation {
            Relation::LegalRepresentativeRecord => rep
                .iter()
                .filter(|r| Some(r.kind) == rule.kind)
                .map(|r| r.id.clone())
                .collect(),
            Relation::LegalRepresentativeRepresentsD => {
                let mut ids = input.represented_hard_d.to_vec();
                ids.sort();
                ids.dedup();
                ids
            }
        };
        if ids.is_empty() {
            continue;
        }
        score = score.saturating_add(rule.points);
        if let Some(e) = rule.effect {
            effects.push(e);
        }
        reasons.push(Reason {
            code: rule.code.clone(),
            description: describe(&rule.description, ids.len(), rule.points),
            record_ids: ids,
            points: rule.points,
        });
    }

    // Overrides.
    for rule in &model.overrides {
        let ids: Vec<String> = own
            .iter()
            .filter(|r| r.kind == rule.kind)
            .map(|r| r.id.clone())
            .collect();
        if ids.is_empty() {
            continue;
        }
        effects.push(rule.effect);
        reasons.push(Reason {
            code: rule.code.clone(),
            description: describe(&rule.description, ids.len(), 0),
            record_ids: ids,
            points: 0,
        });
    }

    let mut grade = model.grade_for(score);
    for e in effects {
        grade = match e {
            Effect::ForceD => Grade::D,
            Effect::AtBestC => grade.max(Grade::C),
        };
    }
    reasons.sort_by(|a, b| a.code.cmp(&b.code));
    Graded {
        grade,
        score,
        reasons,
    }
}

/// A grade as kept for one enterprise under one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGrade {
    pub uscc: super::ids::Uscc,
    pub model: String,
    pub model_version: String,
    pub graded: Graded,
    /// Milliseconds since the Unix epoch.
    pub computed_at: i64,
}

/// One entry of grade history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GradeChange {
    /// Position in the history of all grades; watchers resume after it.
    pub seq: i64,
    pub uscc: super::ids::Uscc,
    pub model: String,
    pub model_version: String,
    /// The grade and score before, if the enterprise was graded before.
    pub previous: Option<(Grade, i32)>,
    pub grade: Grade,
    pub score: i32,
    pub cause: super::codes::GradeChangeCause,
    pub cause_record: Option<String>,
    pub changed_at: i64,
}

impl fmt::Display for Grade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn whole_points_never_overflow() {
        assert_eq!(whole_points(-150), -2);
        assert_eq!(whole_points(149), 1);
        assert_eq!(whole_points(i32::MIN), -(i32::MAX / 100));
        assert_eq!(whole_points(i32::MAX), i32::MAX / 100);
    }

    use super::*;
    use crate::domain::codes::PenaltyMeasure;
    use crate::domain::ids::Uscc;
    use crate::domain::record::{Attributes, RecordContent, Subject};
    use proptest::prelude::*;

    fn today() -> NaiveDate {
        "2026-11-30".parse().unwrap()
    }

    fn rec(id: &str, kind: RecordKind, tier: Tier) -> Fact {
        rec_with(id, kind, tier, |_| {})
    }

    fn rec_with(id: &str, kind: RecordKind, tier: Tier, f: impl FnOnce(&mut Record)) -> Fact {
        let decision: NaiveDate = "2026-06-01".parse().unwrap();
        let mut record = Record {
            id: id.into(),
            agency_id: "a".into(),
            source_record_id: id.into(),
            revision: 1,
            content: RecordContent {
                subject: Subject::Enterprise(Uscc::parse("914403001922038216").unwrap()),
                kind,
                tier,
                domain: RegulatoryDomain::FoodProduction,
                decision_date: decision,
                document_number: "x".into(),
                deciding_authority: "x".into(),
                summary: String::new(),
                publicity_end: "2029-01-01".parse().unwrap(),
                attributes: Attributes {
                    penalty_measures: vec![PenaltyMeasure::Fine],
                    ..Default::default()
                },
            },
            status: RecordStatus::Active,
            withdrawal_reason: None,
            created_at: 0,
            updated_at: 0,
        };
        f(&mut record);
        Fact::from(&record)
    }

    fn general() -> Model {
        ModelSet::builtin().get("general").unwrap().clone()
    }

    fn input(own: &[Fact]) -> GradeInput<'_> {
        GradeInput {
            own,
            legal_representative: &[],
            represented_hard_d: &[],
            today: today(),
        }
    }

    #[test]
    fn a_clean_enterprise_is_a() {
        let g = grade(&general(), input(&[]));
        assert_eq!(g.grade, Grade::A);
        assert!(g.reasons.is_empty());
    }

    #[test]
    fn bonuses_are_capped_so_they_cannot_outweigh_a_serious_penalty() {
        let mut own = vec![rec("p", RecordKind::AdministrativePenalty, Tier::Serious)];
        for i in 0..5 {
            own.push(rec(&format!("h{i}"), RecordKind::Honor, Tier::Minor));
            own.push(rec_with(
                &format!("s{i}"),
                RecordKind::SpotCheckResult,
                Tier::Minor,
                |r| {
                    r.content.attributes.penalty_measures.clear();
                    r.content.attributes.spot_check_outcome = Some(SpotCheckOutcome::Passed);
                },
            ));
        }
        let model = general();
        let g = grade(&model, input(&own));
        let points = |code: &str| {
            g.reasons
                .iter()
                .find(|r| r.code == code)
                .map(|r| (r.points, r.record_ids.len()))
        };
        assert_eq!(points("HONOR"), Some((6, 5)), "{g:?}");
        assert_eq!(points("SPOT_CHECK_PASSED"), Some((3, 5)), "{g:?}");
        assert_eq!(g.score, model.base_score - 20 + 6 + 3);
        assert_eq!(g.grade, Grade::B, "{g:?}");
    }

    #[test]
    fn a_cap_must_bound_something_and_by_a_positive_amount() {
        let base = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/general.toml"),
        )
        .unwrap();
        for (cap, why) in [
            (
                "kind = \"CONSUMPTION_RESTRICTION\"",
                "needs max_deduction or max_addition",
            ),
            (
                "kind = \"CONSUMPTION_RESTRICTION\"\nmax_addition = 0",
                "max_addition must be positive",
            ),
            (
                "kind = \"CONSUMPTION_RESTRICTION\"\nmax_deduction = -1",
                "max_deduction must be positive",
            ),
            (
                "kind = \"HONOR\"\nmax_deduction = 5",
                "a second cap for HONOR",
            ),
        ] {
            let text = format!("{base}\n[[caps]]\n{cap}\n");
            let e = Model::parse("general.toml", &text).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn one_moderate_penalty_gives_b_and_names_the_record() {
        let own = [rec("r1", RecordKind::AdministrativePenalty, Tier::Moderate)];
        let g = grade(&general(), input(&own));
        assert_eq!(g.grade, Grade::B);
        assert_eq!(g.reasons[0].record_ids, vec!["r1"]);
    }

    #[test]
    fn serious_dishonesty_forces_d_and_abnormal_listing_caps_at_c() {
        let own = [rec(
            "s",
            RecordKind::SeriousDishonestyListing,
            Tier::Serious,
        )];
        assert_eq!(grade(&general(), input(&own)).grade, Grade::D);
        let own = [rec(
            "ab",
            RecordKind::AbnormalOperationsListing,
            Tier::Minor,
        )];
        assert_eq!(grade(&general(), input(&own)).grade, Grade::C);
    }

    #[test]
    fn a_legal_representative_who_is_a_dishonest_debtor_adds_a_related_reason() {
        let rep = [rec("p", RecordKind::DishonestJudgmentDebtor, Tier::Serious)];
        let g = grade(
            &general(),
            GradeInput {
                own: &[],
                legal_representative: &rep,
                represented_hard_d: &[],
                today: today(),
            },
        );
        assert!(g
            .reasons
            .iter()
            .any(|r| r.code == "LEGAL_REPRESENTATIVE_DISHONEST_DEBTOR" && r.record_ids == ["p"]));
    }

    #[test]
    fn expired_and_withdrawn_records_do_not_count() {
        let mut old = rec("old", RecordKind::AdministrativePenalty, Tier::Moderate);
        old.publicity_end = today();
        let mut gone = rec("gone", RecordKind::AdministrativePenalty, Tier::Serious);
        gone.status = RecordStatus::Withdrawn;
        assert_eq!(grade(&general(), input(&[old, gone])).grade, Grade::A);
    }

    #[test]
    fn deductions_are_capped_per_kind() {
        let own: Vec<Fact> = (0..50)
            .map(|i| {
                rec(
                    &format!("r{i:02}"),
                    RecordKind::AdministrativePenalty,
                    Tier::Serious,
                )
            })
            .collect();
        let g = grade(&general(), input(&own));
        let cap = general()
            .caps
            .iter()
            .find(|c| c.kind == RecordKind::AdministrativePenalty)
            .unwrap()
            .max_deduction
            .unwrap();
        assert_eq!(g.score, general().base_score - cap);
    }

    #[test]
    fn records_outside_a_domain_model_count_at_their_weight_rounded_once() {
        let education = ModelSet::builtin().get("education").unwrap().clone();
        let minor = |n: usize| -> Vec<Fact> {
            (0..n)
                .map(|i| {
                    rec(
                        &format!("m{i}"),
                        RecordKind::AdministrativePenalty,
                        Tier::Minor,
                    )
                })
                .collect()
        };
        // Food production is outside the education model: -3 each at 50%.
        let one = grade(&education, input(&minor(1)));
        assert_eq!(one.score, education.base_score - 2, "-1.5 rounds to -2");
        let five = grade(&education, input(&minor(5)));
        assert_eq!(five.score, education.base_score - 8, "-7.5 rounds to -8");
        assert_eq!(five.reasons[0].points, -8);
        assert_eq!(five.reasons[0].record_ids.len(), 5);
    }

    #[test]
    fn halves_round_away_from_zero() {
        assert_eq!(
            [-750, -749, -150, -50, -49, 0, 49, 50, 150].map(whole_points),
            [-8, -7, -2, -1, 0, 0, 0, 1, 2]
        );
    }

    #[test]
    fn a_model_error_names_its_line() {
        let text = "name = \"x\"\nversion = \"1\"\ndescription = \"d\"\n[thresholds]\na = 90\nb = 95\nc = 60\n";
        let e = Model::parse("models/x.toml", text).unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        let text = "name = \"x\"\nversion = \"1\"\ndescription = \"d\"\n[thresholds]\na = 95\nb = 90\nc = 60\n[[points]]\ncode = \"P\"\nkind = \"NO_SUCH_KIND\"\npoints = -1\ndescription = \"d\"\n";
        let e = Model::parse("models/x.toml", text).unwrap_err();
        assert_eq!(e.line, 10, "{e}");
        assert!(e.to_string().starts_with("models/x.toml:10:"), "{e}");
        // The value's own line, not the first mention of its key.
        let text = "# other_domain_weight_percent: how much other domains count\nname = \"x\"\nversion = \"1\"\ndescription = \"d\"\nother_domain_weight_percent = 150\n[thresholds]\na = 95\nb = 90\nc = 60\n";
        let e = Model::parse("models/x.toml", text).unwrap_err();
        assert_eq!(e.line, 5, "{e}");
    }

    fn kinds() -> impl Strategy<Value = (RecordKind, Tier)> {
        (0usize..RecordKind::ALL.len(), 0usize..3)
            .prop_map(|(k, t)| (RecordKind::ALL[k], Tier::ALL[t]))
    }

    proptest! {
        #[test]
        fn the_same_records_give_the_same_grade_in_any_order(
            specs in proptest::collection::vec(kinds(), 0..30),
            seed in any::<u64>(),
        ) {
            let own: Vec<Fact> = specs.iter().enumerate().map(|(i, (k, t))| rec(&format!("r{i}"), *k, *t)).collect();
            let mut shuffled = own.clone();
            use rand::{seq::SliceRandom, SeedableRng};
            shuffled.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
            for model in ModelSet::builtin().all() {
                let a = grade(model, input(&own));
                let b = grade(model, input(&shuffled));
                prop_assert_eq!(&a, &b);
                for reason in &a.reasons {
                    for id in &reason.record_ids {
                        prop_assert!(own.iter().any(|r| &r.id == id));
                    }
                }
            }
        }
    }
}
