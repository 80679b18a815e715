//! Proto <-> domain conversion: every field of a request is parsed here once, and every
//! problem becomes a field violation naming its path.

use chrono::NaiveDate;

use crate::domain::codes::{
    AbnormalCause, EnterpriseKind, EnterpriseStatus, PenaltyMeasure, RecordKind, RecordStatus,
    RegulatoryDomain, RoleKind, SeriousListingCause, SpotCheckOutcome, Tier,
};
use crate::domain::enterprise::{is_industry_code, is_region_code, Enterprise, Role};
use crate::domain::id_scan::{
    contains_id_number, contains_id_number_loosely, contains_long_number, contains_old_id_number,
};
use crate::domain::ids::{IdNumber, PersonKeyer, PersonRef, Uscc};
use crate::domain::record::{
    day_after_period, default_publicity_end, Attributes, NewRecord, Record, RecordContent, Subject,
    MAX_REVISION, MAX_SOURCE_ID_CHARS, MAX_TEXT_CHARS,
};
use crate::domain::{Error, Violations};
use crate::proto::v1 as pb;

/// Milliseconds since the epoch as a protobuf timestamp.
pub fn timestamp(millis: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: millis.div_euclid(1000),
        nanos: (millis.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// Parses `enterprises/{uscc}`.
pub fn enterprise_name(field: &str, name: &str) -> Result<Uscc, Error> {
    let Some(code) = name.strip_prefix("enterprises/") else {
        return Err(Error::invalid(
            field,
            "must be a resource name enterprises/{uscc}",
        ));
    };
    Uscc::parse(code).map_err(|e| Error::invalid(field, format!("invalid USCC: {e}")))
}

/// Parses `prefix/{id}` where id is a plain token (letters, digits, `-`, `_`).
pub fn resource_id<'a>(field: &str, prefix: &str, name: &'a str) -> Result<&'a str, Error> {
    name.strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('/'))
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .ok_or_else(|| Error::invalid(field, format!("must be a resource name {prefix}/{{id}}")))
}

/// `items` when there are at most `max`, otherwise none, after recording why. A list past
/// its bound is refused whole without checking its items one by one: a 16 MiB message of
/// bad items would otherwise cost millions of checks before the answer.
pub fn bounded_list<'a, T>(v: &mut Violations, field: &str, items: &'a [T], max: usize) -> &'a [T] {
    if items.len() > max {
        v.add(field, format!("holds {} items; at most {max}", items.len()));
        &[]
    } else {
        items
    }
}

/// Most former names an enterprise lists.
pub const MAX_FORMER_NAMES: usize = 50;
/// Most roles (shareholders, executives, past representatives) an enterprise lists.
pub const MAX_ROLES: usize = 500;

/// Checks free text: trimmed, at most `max` characters, no control characters, no
/// resident ID number.
/// Returns `None` (after recording why) when the text breaks a rule.
pub fn text(
    v: &mut Violations,
    field: &str,
    value: &str,
    required: bool,
    max: usize,
) -> Option<String> {
    let value = value.trim();
    if value.is_empty() {
        if required {
            v.add(field, "is required");
            return None;
        }
        return Some(String::new());
    }
    if value.chars().count() > max {
        v.add(field, format!("must be at most {max} characters"));
        return None;
    }
    if value.chars().any(|c| c.is_control()) {
        v.add(field, "must not contain control characters");
        return None;
    }
    if contains_id_number(value) {
        v.add(field, ID_IN_TEXT);
        return None;
    }
    Some(value.to_string())
}

/// Checks prose (a summary, a reason, a finding) as [`text`] does, and also refuses a
/// first-generation (15-digit) ID number standing alone in it.
pub fn prose(
    v: &mut Violations,
    field: &str,
    value: &str,
    required: bool,
    max: usize,
) -> Option<String> {
    let checked = text(v, field, value, required, max)?;
    refusing(v, field, checked, contains_old_id_number, ID_IN_TEXT)
}

/// Checks a case reference, which an officer types about the person or enterprise it
/// concerns and which goes into the audit chain for good: as [`prose`], and an ID number
/// written with separators (`110105-19491231-002X`) is refused too, as in a name.
pub fn case_reference_text(
    v: &mut Violations,
    field: &str,
    value: &str,
    required: bool,
    max: usize,
) -> Option<String> {
    let checked = prose(v, field, value, required, max)?;
    refusing(v, field, checked, contains_id_number_loosely, ID_IN_TEXT)
}

/// `checked` text, unless `refused` finds something in it: then None, with `why`
/// recorded against `field`.
fn refusing(
    v: &mut Violations,
    field: &str,
    checked: String,
    refused: fn(&str) -> bool,
    why: &str,
) -> Option<String> {
    if refused(&checked) {
        v.add(field, why);
        return None;
    }
    Some(checked)
}

/// Checks a name (a person's, an enterprise's, an officer's) as [`text`] does, and
/// also refuses an ID number whose groups are joined by dashes, dots or slashes: a
/// name holds no document number that could look like one.
pub fn name_text(
    v: &mut Violations,
    field: &str,
    value: &str,
    required: bool,
    max: usize,
) -> Option<String> {
    let name = text(v, field, value, required, max)?;
    refusing(v, field, name, contains_id_number_loosely, ID_IN_TEXT)
}

/// Checks a person's name as [`name_text`] does, and also refuses any number of 15
/// digits or more: a person's name holds none, and one may be an ID number with a
/// digit mistyped (its check fails) typed into the wrong field. (An enterprise's name
/// may quote an old 15-digit registration number.)
pub fn person_name_text(
    v: &mut Violations,
    field: &str,
    value: &str,
    required: bool,
    max: usize,
) -> Option<String> {
    let name = name_text(v, field, value, required, max)?;
    refusing(
        v,
        field,
        name,
        contains_long_number,
        "must not hold a number of 15 or more digits: a name holds none, and this one may \
         be an ID number (身份证号) typed into the wrong field",
    )
}

/// Why free text holding an ID number is refused: the service stores none.
pub const ID_IN_TEXT: &str = "must not contain a resident ID number (身份证号): the service \
     stores none; name a person as a record's subject or an enterprise's role, where the \
     number is kept only masked";

/// Parses a `YYYY-MM-DD` date; empty is `Some(None)` unless required.
pub fn date(
    v: &mut Violations,
    field: &str,
    value: &str,
    required: bool,
) -> Option<Option<NaiveDate>> {
    if value.is_empty() {
        if required {
            v.add(field, "is required (YYYY-MM-DD)");
            return None;
        }
        return Some(None);
    }
    // Exactly four digits of year, no sign: dates are stored as this text and compared
    // as text, which orders them only when every one is written alike.
    let shaped = value.len() == 10
        && value.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        })
        && !value.starts_with("0000");
    match NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        Ok(d) if shaped => Some(Some(d)),
        _ => {
            v.add(field, "must be a real date written YYYY-MM-DD");
            None
        }
    }
}

/// Parses a required enum value; 0 (unspecified) and unknown numbers are refused.
pub fn required_enum<T>(
    v: &mut Violations,
    field: &str,
    number: i32,
    parse: fn(i32) -> Option<T>,
) -> Option<T> {
    if number == 0 {
        v.add(field, "is required");
        return None;
    }
    let parsed = parse(number);
    if parsed.is_none() {
        v.add(field, format!("{number} is not a known value"));
    }
    parsed
}

/// Parses an optional enum value; 0 means absent.
fn optional_enum<T>(
    v: &mut Violations,
    field: &str,
    number: i32,
    parse: fn(i32) -> Option<T>,
) -> Option<T> {
    if number == 0 {
        return None;
    }
    let parsed = parse(number);
    if parsed.is_none() {
        v.add(field, format!("{number} is not a known value"));
    }
    parsed
}

/// Parses an optional filter enum for list requests.
pub fn filter_enum<T>(
    field: &str,
    number: i32,
    parse: fn(i32) -> Option<T>,
) -> Result<Option<T>, Error> {
    let mut v = Violations::default();
    let parsed = optional_enum(&mut v, field, number, parse);
    v.finish(parsed)
}

/// Parses an ID number given in a request body; its birth date must have come by
/// today, China Standard Time.
pub fn id_number(v: &mut Violations, field: &str, value: &str) -> Option<IdNumber> {
    if value.trim().is_empty() {
        v.add(field, "is required");
        return None;
    }
    match IdNumber::parse_on(value, super::today()) {
        Ok(id) => Some(id),
        Err(e) => {
            v.add(field, format!("invalid resident ID number: {e}"));
            None
        }
    }
}

fn person(
    v: &mut Violations,
    keyer: &PersonKeyer,
    path: &str,
    p: Option<&pb::Person>,
) -> Option<PersonRef> {
    let Some(p) = p else {
        v.add(path, "is required");
        return None;
    };
    let name = person_name_text(v, &format!("{path}.name"), &p.name, true, 100);
    let id = id_number(v, &format!("{path}.id_number"), &p.id_number);
    Some(PersonRef::new(keyer, name?, &id?))
}

fn person_out(p: &PersonRef) -> pb::Person {
    pb::Person {
        name: p.name.clone(),
        id_number: String::new(),
        masked_id_number: p.masked_id.as_str().to_string(),
    }
}

/// Parses one enterprise of an upsert at `path` (e.g. `enterprises[2]`).
pub fn enterprise_in(
    v: &mut Violations,
    keyer: &PersonKeyer,
    path: &str,
    e: &pb::Enterprise,
    today: NaiveDate,
) -> Option<Enterprise> {
    let uscc = match Uscc::parse(&e.uscc) {
        Ok(u) => Some(u),
        Err(err) => {
            v.add(format!("{path}.uscc"), format!("invalid USCC: {err}"));
            None
        }
    };
    if let Some(u) = &uscc {
        if !e.name.is_empty() && !e.name.eq_ignore_ascii_case(&u.resource_name()) {
            v.add(
                format!("{path}.name"),
                "must be empty or enterprises/{uscc} of this uscc",
            );
        }
    }
    let display_name = name_text(
        v,
        &format!("{path}.display_name"),
        &e.display_name,
        true,
        200,
    );
    let mut former_names = Vec::new();
    let names = bounded_list(
        v,
        &format!("{path}.former_names"),
        &e.former_names,
        MAX_FORMER_NAMES,
    );
    for (i, n) in names.iter().enumerate() {
        if let Some(n) = name_text(v, &format!("{path}.former_names[{i}]"), n, true, 200) {
            former_names.push(n);
        }
    }
    let kind = required_enum(
        v,
        &format!("{path}.kind"),
        e.kind,
        EnterpriseKind::from_number,
    );
    let status = required_enum(
        v,
        &format!("{path}.status"),
        e.status,
        EnterpriseStatus::from_number,
    );
    let established = date(
        v,
        &format!("{path}.established_date"),
        &e.established_date,
        true,
    );
    if let Some(Some(d)) = established {
        if d > today {
            v.add(
                format!("{path}.established_date"),
                format!("must not be in the future (today is {today})"),
            );
        }
    }
    if !is_region_code(&e.region_code) {
        v.add(
            format!("{path}.region_code"),
            "must be a six-digit GB/T 2260 division code",
        );
    }
    if !is_industry_code(&e.industry_code) {
        v.add(
            format!("{path}.industry_code"),
            "must be a GB/T 4754 code: a section letter A-T and up to four digits",
        );
    }
    let mut roles = Vec::new();
    if let Some(rep) = person(
        v,
        keyer,
        &format!("{path}.legal_representative"),
        e.legal_representative.as_ref(),
    ) {
        roles.push(Role {
            kind: RoleKind::LegalRepresentative,
            person: rep,
            start: None,
            end: None,
        });
    }
    let mut listed: Vec<(usize, Role)> = Vec::new();
    let given_roles = bounded_list(v, &format!("{path}.roles"), &e.roles, MAX_ROLES);
    for (i, r) in given_roles.iter().enumerate() {
        let rpath = format!("{path}.roles[{i}]");
        let kind = required_enum(v, &format!("{rpath}.kind"), r.kind, RoleKind::from_number);
        let p = person(v, keyer, &format!("{rpath}.person"), r.person.as_ref());
        let start = date(v, &format!("{rpath}.start_date"), &r.start_date, false);
        let end = date(v, &format!("{rpath}.end_date"), &r.end_date, false);
        if let (Some(Some(s)), Some(Some(e))) = (start, end) {
            if e < s {
                v.add(format!("{rpath}.end_date"), "must not be before start_date");
            }
        }
        // The register records what is so: a role held until a later date is current
        // (no end_date) until then, and one not yet begun is not a role yet.
        if let Some(Some(s)) = start {
            if s > today {
                v.add(
                    format!("{rpath}.start_date"),
                    format!("must not be in the future (today is {today})"),
                );
            }
        }
        if let Some(Some(e)) = end {
            if e > today {
                v.add(
                    format!("{rpath}.end_date"),
                    format!(
                        "must not be in the future (today is {today}); a role still held has no end_date"
                    ),
                );
            }
        }
        if kind == Some(RoleKind::LegalRepresentative) && matches!(end, Some(None)) {
            v.add(
                format!("{rpath}.kind"),
                "the current legal representative goes in legal_representative; roles may only hold past ones (with end_date)",
            );
        }
        if let (Some(kind), Some(person), Some(start), Some(end)) = (kind, p, start, end) {
            // A person holds a role at most once at a time, so two of his tenures in
            // one role never end the same day: a repeat would be stored and shown twice
            // (and the store tells tenures apart by their end).
            let repeated = listed.iter().find(|(_, r): &&(usize, Role)| {
                r.kind == kind && r.person.key == person.key && r.end == end
            });
            if let Some((j, _)) = repeated {
                v.add(
                    rpath.clone(),
                    format!(
                        "repeats roles[{j}]: the same person in the same role at the same time \
                         (two tenures in one role cannot end the same day)"
                    ),
                );
            }
            let role = Role {
                kind,
                person,
                start,
                end,
            };
            listed.push((i, role.clone()));
            roles.push(role);
        }
    }
    Some(Enterprise {
        uscc: uscc?,
        display_name: display_name?,
        former_names,
        kind: kind?,
        status: status?,
        established: established?,
        region_code: e.region_code.clone(),
        industry_code: e.industry_code.clone(),
        in_bankruptcy_restructuring: e.in_bankruptcy_restructuring,
        roles,
        updated_at: 0,
    })
}

/// An enterprise as the contract returns it: persons masked.
pub fn enterprise_out(e: &Enterprise) -> pb::Enterprise {
    let rep = e.legal_representative();
    pb::Enterprise {
        name: e.uscc.resource_name(),
        uscc: e.uscc.as_str().to_string(),
        display_name: e.display_name.clone(),
        former_names: e.former_names.clone(),
        kind: e.kind.number(),
        status: e.status.number(),
        established_date: e.established.map(|d| d.to_string()).unwrap_or_default(),
        region_code: e.region_code.clone(),
        industry_code: e.industry_code.clone(),
        legal_representative: rep.map(|r| person_out(&r.person)),
        roles: e
            .roles
            .iter()
            .filter(|r| !(r.kind == RoleKind::LegalRepresentative && r.end.is_none()))
            .map(|r| pb::EnterpriseRole {
                kind: r.kind.number(),
                person: Some(person_out(&r.person)),
                start_date: r.start.map(|d| d.to_string()).unwrap_or_default(),
                end_date: r.end.map(|d| d.to_string()).unwrap_or_default(),
            })
            .collect(),
        in_bankruptcy_restructuring: e.in_bankruptcy_restructuring,
        update_time: Some(timestamp(e.updated_at)),
    }
}

/// Parses one submitted record at `path` (e.g. `records[3]`).
/// The SPC's provisions on publishing dishonest judgment debtors (2017) exclude minors:
/// a person under 18 on the decision date is never listed. Only the birth date in the
/// ID number says so, and it is not kept, so this is checked here, at the edge.
fn minor_never_listed(v: &mut Violations, path: &str, r: &pb::Record, decided: NaiveDate) {
    let Some(pb::subject::Subject::Person(p)) = r.subject.as_ref().and_then(|s| s.subject.as_ref())
    else {
        return;
    };
    let Ok(id) = IdNumber::parse(&p.id_number) else {
        return; // refused as such already
    };
    // Full years (周岁) count from the day after the birthday (SPC, 法释〔2006〕1号 Art.
    // 2): on the 18th birthday itself the person is still treated as a minor.
    if decided < day_after_period(id.birth_date(), 18 * 12) {
        v.add(
            format!("{path}.subject.person"),
            "a minor is never listed as a dishonest judgment debtor (SPC 2017): the person \
             was under 18 on the decision date (18 full years count from the day after the \
             18th birthday)",
        );
    }
}

/// The beginning of the source record ids of spot-check results' records.
pub const SPOT_CHECK_PREFIX: &str = "SPOTCHECK-";

pub fn record_in(
    v: &mut Violations,
    keyer: &PersonKeyer,
    path: &str,
    r: &pb::Record,
) -> Option<NewRecord> {
    let subject = match r.subject.as_ref().and_then(|s| s.subject.as_ref()) {
        None => {
            v.add(
                format!("{path}.subject"),
                "is required: an enterprise or a person",
            );
            None
        }
        Some(pb::subject::Subject::Enterprise(name)) => v
            .check(enterprise_name(&format!("{path}.subject.enterprise"), name))
            .map(Subject::Enterprise),
        Some(pb::subject::Subject::Person(p)) => {
            person(v, keyer, &format!("{path}.subject.person"), Some(p)).map(Subject::Person)
        }
    };
    let kind = required_enum(v, &format!("{path}.kind"), r.kind, RecordKind::from_number);
    let tier = required_enum(v, &format!("{path}.tier"), r.tier, Tier::from_number);
    let domain = required_enum(
        v,
        &format!("{path}.domain"),
        r.domain,
        RegulatoryDomain::from_number,
    );
    let decision_date = date(v, &format!("{path}.decision_date"), &r.decision_date, true);
    if let (Some(RecordKind::DishonestJudgmentDebtor), Some(Some(decided))) = (kind, decision_date)
    {
        minor_never_listed(v, path, r, decided);
    }
    let document_number = text(
        v,
        &format!("{path}.document_number"),
        &r.document_number,
        false,
        200,
    );
    let deciding_authority = name_text(
        v,
        &format!("{path}.deciding_authority"),
        &r.deciding_authority,
        false,
        200,
    );
    let summary = prose(
        v,
        &format!("{path}.summary"),
        &r.summary,
        false,
        MAX_TEXT_CHARS,
    );
    let publicity_end = date(
        v,
        &format!("{path}.publicity_end_date"),
        &r.publicity_end_date,
        false,
    );
    let (source_record_id, revision) = match &r.provenance {
        None => {
            v.add(
                format!("{path}.provenance"),
                "is required: source_record_id and revision",
            );
            (None, None)
        }
        Some(p) => {
            let mut id = text(
                v,
                &format!("{path}.provenance.source_record_id"),
                &p.source_record_id,
                true,
                MAX_SOURCE_ID_CHARS,
            );
            // The ids RecordSpotCheckResult files its records under: one taken here
            // would leave a result pointing at some other record.
            if id.as_deref().is_some_and(|id| {
                id.get(..SPOT_CHECK_PREFIX.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(SPOT_CHECK_PREFIX))
            }) {
                v.add(
                    format!("{path}.provenance.source_record_id"),
                    format!("must not begin with {SPOT_CHECK_PREFIX}: spot-check results are recorded with SpotCheckService.RecordSpotCheckResult"),
                );
                id = None;
            }
            let revision = match p.revision {
                n if n < 0 => {
                    v.add(
                        format!("{path}.provenance.revision"),
                        "must not be negative",
                    );
                    None
                }
                0 => Some(1),
                n if n > MAX_REVISION => {
                    v.add(
                        format!("{path}.provenance.revision"),
                        format!("must be at most {MAX_REVISION}"),
                    );
                    None
                }
                n => Some(n),
            };
            (id, revision)
        }
    };
    let mut penalty_measures = Vec::new();
    // Each measure at most once: a longer list cannot be valid.
    let measures = bounded_list(
        v,
        &format!("{path}.penalty_measures"),
        &r.penalty_measures,
        PenaltyMeasure::ALL.len(),
    );
    for (i, m) in measures.iter().enumerate() {
        if let Some(m) = required_enum(
            v,
            &format!("{path}.penalty_measures[{i}]"),
            *m,
            PenaltyMeasure::from_number,
        ) {
            penalty_measures.push(m);
        }
    }
    let attributes = Attributes {
        abnormal_cause: optional_enum(
            v,
            &format!("{path}.abnormal_cause"),
            r.abnormal_cause,
            AbnormalCause::from_number,
        ),
        serious_listing_cause: optional_enum(
            v,
            &format!("{path}.serious_listing_cause"),
            r.serious_listing_cause,
            SeriousListingCause::from_number,
        ),
        spot_check_outcome: optional_enum(
            v,
            &format!("{path}.spot_check_outcome"),
            r.spot_check_outcome,
            SpotCheckOutcome::from_number,
        ),
        report_year: (r.report_year != 0).then_some(r.report_year),
        fine_amount_fen: r.fine_amount_fen,
        penalty_measures,
    };
    let (kind, tier, decision_date) = (kind?, tier?, decision_date??);
    let given_end = publicity_end?;
    let publicity_end = given_end.unwrap_or_else(|| {
        default_publicity_end(kind, tier, decision_date, &attributes.penalty_measures)
    });
    Some(NewRecord {
        source_record_id: source_record_id?,
        revision: revision?,
        publicity_end_defaulted: given_end.is_none(),
        content: RecordContent {
            subject: subject?,
            kind,
            tier,
            domain: domain?,
            decision_date,
            document_number: document_number?,
            deciding_authority: deciding_authority?,
            summary: summary?,
            publicity_end,
            attributes,
        },
    })
}

/// A record as the contract returns it, with its status as of `today`.
pub fn record_out(r: &Record, today: NaiveDate) -> pb::Record {
    let c = &r.content;
    let subject = match &c.subject {
        Subject::Enterprise(u) => pb::subject::Subject::Enterprise(u.resource_name()),
        Subject::Person(p) => pb::subject::Subject::Person(person_out(p)),
    };
    let a = &c.attributes;
    pb::Record {
        name: r.resource_name(),
        subject: Some(pb::Subject {
            subject: Some(subject),
        }),
        kind: c.kind.number(),
        tier: c.tier.number(),
        domain: c.domain.number(),
        decision_date: c.decision_date.to_string(),
        document_number: c.document_number.clone(),
        deciding_authority: c.deciding_authority.clone(),
        summary: c.summary.clone(),
        publicity_end_date: c.publicity_end.to_string(),
        status: r.status_on(today).number(),
        provenance: Some(pb::Provenance {
            agency: format!("agencies/{}", r.agency_id),
            source_record_id: r.source_record_id.clone(),
            revision: r.revision,
        }),
        penalty_measures: a.penalty_measures.iter().map(|m| m.number()).collect(),
        fine_amount_fen: a.fine_amount_fen,
        abnormal_cause: a.abnormal_cause.map_or(0, |x| x.number()),
        serious_listing_cause: a.serious_listing_cause.map_or(0, |x| x.number()),
        report_year: a.report_year.unwrap_or(0),
        spot_check_outcome: a.spot_check_outcome.map_or(0, |x| x.number()),
        withdrawal_reason: r.withdrawal_reason.clone().unwrap_or_default(),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
    }
}

/// The record status filter of a list request.
pub fn record_status_filter(number: i32) -> Result<Option<RecordStatus>, Error> {
    filter_enum("status", number, RecordStatus::from_number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Domain codes and contract enum names must agree value for value, so storage
    /// codes and wire numbers can never drift apart.
    #[test]
    fn domain_enums_match_the_contract() {
        macro_rules! same {
            ($domain:ty, $proto:ty, $prefix:literal) => {
                for v in <$domain>::ALL {
                    let p = <$proto>::try_from(v.number()).expect("number exists in proto");
                    assert_eq!(p.as_str_name(), format!("{}{}", $prefix, v.code()));
                }
            };
        }
        same!(RecordKind, pb::RecordKind, "RECORD_KIND_");
        same!(Tier, pb::Tier, "TIER_");
        same!(RegulatoryDomain, pb::RegulatoryDomain, "REGULATORY_DOMAIN_");
        same!(RecordStatus, pb::RecordStatus, "RECORD_STATUS_");
        same!(PenaltyMeasure, pb::PenaltyMeasure, "PENALTY_MEASURE_");
        same!(AbnormalCause, pb::AbnormalCause, "ABNORMAL_CAUSE_");
        same!(
            SeriousListingCause,
            pb::SeriousListingCause,
            "SERIOUS_LISTING_CAUSE_"
        );
        same!(
            SpotCheckOutcome,
            pb::SpotCheckOutcome,
            "SPOT_CHECK_OUTCOME_"
        );
        same!(EnterpriseKind, pb::EnterpriseKind, "ENTERPRISE_KIND_");
        same!(EnterpriseStatus, pb::EnterpriseStatus, "ENTERPRISE_STATUS_");
        same!(RoleKind, pb::RoleKind, "ROLE_KIND_");
        same!(
            crate::domain::codes::AgencyKind,
            pb::AgencyKind,
            "AGENCY_KIND_"
        );
        same!(
            crate::domain::codes::SubmitOutcome,
            pb::SubmitOutcome,
            "SUBMIT_OUTCOME_"
        );
        same!(crate::domain::codes::Purpose, pb::Purpose, "PURPOSE_");
        let _ = pb::Record::default().encode_to_vec();
    }

    #[test]
    fn a_date_has_four_digits_of_year_and_no_sign() {
        for good in ["2026-05-20", "1900-02-28", "2024-02-29"] {
            let mut v = Violations::default();
            assert!(date(&mut v, "d", good, true).flatten().is_some(), "{good}");
        }
        for bad in [
            "-001-01-01",
            "+001-01-01",
            "0000-01-01",
            "2026-5-20",
            "2023-02-29",
            "２０２６-05-20",
        ] {
            let mut v = Violations::default();
            assert_eq!(date(&mut v, "d", bad, true), None, "{bad}");
            assert!(!v.is_empty(), "{bad}");
        }
    }

    #[test]
    fn a_list_past_its_bound_is_refused_whole() {
        let mut v = Violations::default();
        assert_eq!(bounded_list(&mut v, "xs", &[1, 2, 3], 3), &[1, 2, 3]);
        assert!(v.is_empty());
        assert!(bounded_list(&mut v, "xs", &[1, 2, 3, 4], 3).is_empty());
        let Err(Error::InvalidArgument(found)) = v.finish(()) else {
            panic!("refused")
        };
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].field, "xs");
        assert!(found[0].description.contains("at most 3"));
    }
}
