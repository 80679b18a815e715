//! The JSON-lines format `records submit` reads: one record per line, enum values by
//! their short names (`"kind": "ADMINISTRATIVE_PENALTY"`).

use std::path::Path;

use anyhow::{bail, Context};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::proto::v1 as pb;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonLine {
    name: String,
    id_number: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordLine {
    source_record_id: String,
    #[serde(default)]
    revision: i64,
    #[serde(default)]
    subject_enterprise: Option<String>,
    #[serde(default)]
    subject_person: Option<PersonLine>,
    kind: String,
    tier: String,
    domain: String,
    decision_date: String,
    document_number: String,
    deciding_authority: String,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    publicity_end_date: String,
    #[serde(default)]
    penalty_measures: Vec<String>,
    #[serde(default)]
    fine_amount_fen: i64,
    #[serde(default)]
    abnormal_cause: Option<String>,
    #[serde(default)]
    serious_listing_cause: Option<String>,
    #[serde(default)]
    report_year: i32,
    #[serde(default)]
    spot_check_outcome: Option<String>,
}

fn code<E>(
    value: &str,
    prefix: &str,
    parse: fn(&str) -> Option<E>,
    to_i32: fn(E) -> i32,
    what: &str,
) -> anyhow::Result<i32> {
    let full = format!("{prefix}{}", value.trim().to_ascii_uppercase());
    parse(&full)
        .map(to_i32)
        .with_context(|| format!("unknown {what} {:?}", withhold_long_numbers(value)))
}

fn opt_code<E>(
    value: &Option<String>,
    prefix: &str,
    parse: fn(&str) -> Option<E>,
    to_i32: fn(E) -> i32,
    what: &str,
) -> anyhow::Result<i32> {
    value
        .as_deref()
        .map_or(Ok(0), |v| code(v, prefix, parse, to_i32, what))
}

fn to_record(line: RecordLine) -> anyhow::Result<pb::Record> {
    let subject = match (line.subject_enterprise, line.subject_person) {
        (Some(u), None) => pb::subject::Subject::Enterprise(super::enterprise_name(&u)),
        (None, Some(p)) => pb::subject::Subject::Person(pb::Person {
            name: p.name,
            id_number: p.id_number,
            masked_id_number: String::new(),
        }),
        _ => bail!("give exactly one of subject_enterprise and subject_person"),
    };
    Ok(pb::Record {
        subject: Some(pb::Subject {
            subject: Some(subject),
        }),
        kind: code(
            &line.kind,
            "RECORD_KIND_",
            pb::RecordKind::from_str_name,
            |e| e as i32,
            "kind",
        )?,
        tier: code(
            &line.tier,
            "TIER_",
            pb::Tier::from_str_name,
            |e| e as i32,
            "tier",
        )?,
        domain: code(
            &line.domain,
            "REGULATORY_DOMAIN_",
            pb::RegulatoryDomain::from_str_name,
            |e| e as i32,
            "domain",
        )?,
        decision_date: line.decision_date,
        document_number: line.document_number,
        deciding_authority: line.deciding_authority,
        summary: line.summary,
        publicity_end_date: line.publicity_end_date,
        provenance: Some(pb::Provenance {
            agency: String::new(),
            source_record_id: line.source_record_id,
            revision: line.revision,
        }),
        penalty_measures: line
            .penalty_measures
            .iter()
            .map(|m| {
                code(
                    m,
                    "PENALTY_MEASURE_",
                    pb::PenaltyMeasure::from_str_name,
                    |e| e as i32,
                    "penalty measure",
                )
            })
            .collect::<anyhow::Result<_>>()?,
        fine_amount_fen: line.fine_amount_fen,
        abnormal_cause: opt_code(
            &line.abnormal_cause,
            "ABNORMAL_CAUSE_",
            pb::AbnormalCause::from_str_name,
            |e| e as i32,
            "abnormal cause",
        )?,
        serious_listing_cause: opt_code(
            &line.serious_listing_cause,
            "SERIOUS_LISTING_CAUSE_",
            pb::SeriousListingCause::from_str_name,
            |e| e as i32,
            "serious listing cause",
        )?,
        report_year: line.report_year,
        spot_check_outcome: opt_code(
            &line.spot_check_outcome,
            "SPOT_CHECK_OUTCOME_",
            pb::SpotCheckOutcome::from_str_name,
            |e| e as i32,
            "spot check outcome",
        )?,
        ..Default::default()
    })
}

/// Reads every record of a JSON-lines file; a malformed line stops with its line number.
pub fn read_records_file(path: &Path) -> anyhow::Result<Vec<pb::Record>> {
    Ok(read_numbered_records(path)?
        .into_iter()
        .map(|(_, r)| r)
        .collect())
}

/// [`read_records_file`], each record with the file line it came from (blank lines are
/// skipped, so record i is not always line i + 1).
pub fn read_numbered_records(path: &Path) -> anyhow::Result<Vec<(usize, pb::Record)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    // Notepad and Excel start UTF-8 files with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed: RecordLine = serde_json::from_str(line).map_err(|e| {
            anyhow::anyhow!(
                "{}:{}: not a record line: {}",
                path.display(),
                n + 1,
                withhold_long_numbers(&e.to_string())
            )
        })?;
        let record = to_record(parsed).with_context(|| format!("{}:{}", path.display(), n + 1))?;
        out.push((n + 1, record));
    }
    Ok(out)
}

/// `message` with every run of 15 or more digits (and a check character after it)
/// withheld, and any ID number written otherwise (full-width digits, spaced groups)
/// masked. A parser's message may quote the offending value, and an ID number typed
/// as a JSON number (as spreadsheets export them) must not reach the terminal.
fn withhold_long_numbers(message: &str) -> String {
    withhold_digit_runs(&crate::domain::id_scan::mask_id_numbers(message))
}

/// `message` with every run of 15 or more ASCII digits (and a check character after
/// it) withheld.
fn withhold_digit_runs(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if digits.len() >= 15 {
            out.push_str("<number withheld>");
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    for c in message.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else if digits.len() >= 15 && matches!(c, 'X' | 'x') {
            digits.push(c);
            flush(&mut digits, &mut out);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    out
}

/// The request id of a batch of records: a digest of the batch itself, so the same
/// batch sent again (a re-run after a failure) is recognised, and a batch whose file
/// changed meanwhile is a new request rather than a refused reuse of an old id.
///
/// A person's ID number goes into the digest only as far as the service keeps it
/// (address code and last four characters): the id is stored with the request and in
/// the audit log, beside every other field of the record, and a digest of the full
/// number could be reversed by trying every birth date. A stored batch that differs
/// from a new one only in the hidden digits makes the new one a refused reuse.
pub fn batch_request_id(records: &[crate::proto::v1::Record]) -> String {
    use crate::proto::v1::subject::Subject;
    let mut hasher = Sha256::new();
    for r in records {
        let mut r = r.clone();
        if let Some(Subject::Person(p)) = r.subject.as_mut().and_then(|s| s.subject.as_mut()) {
            p.id_number = kept_part(&p.id_number);
        }
        let bytes = prost::Message::encode_to_vec(&r);
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    format!("records-{}", hex::encode(&hasher.finalize()[..12]))
}

/// What the service keeps of an ID number as typed: its first six and last four
/// characters (all of it, if it is too short to be one).
fn kept_part(id: &str) -> String {
    let chars: Vec<char> = id.trim().chars().collect();
    if chars.len() <= 10 {
        return chars.into_iter().collect();
    }
    let mut kept: String = chars[..6].iter().collect();
    kept.push('*');
    kept.extend(&chars[chars.len() - 4..]);
    kept
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_batch_is_known_by_its_content() {
        let r = |source: &str| crate::proto::v1::Record {
            provenance: Some(crate::proto::v1::Provenance {
                source_record_id: source.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        // Nothing of an ID number beyond what the service keeps shapes the id: the
        // id is stored, and the rest of the record beside it.
        let person = |id: &str| crate::proto::v1::Record {
            subject: Some(crate::proto::v1::Subject {
                subject: Some(crate::proto::v1::subject::Subject::Person(
                    crate::proto::v1::Person {
                        name: "张三".into(),
                        id_number: id.into(),
                        ..Default::default()
                    },
                )),
            }),
            ..r("P")
        };
        assert_eq!(
            batch_request_id(&[person("990101198001010014")]),
            batch_request_id(&[person("990101199912310014")])
        );
        assert_ne!(
            batch_request_id(&[person("990101198001010014")]),
            batch_request_id(&[person("990101198001010023")])
        );
        let id = batch_request_id(&[r("A"), r("B")]);
        assert_eq!(id, batch_request_id(&[r("A"), r("B")]));
        assert_ne!(id, batch_request_id(&[r("A"), r("C")]));
        assert_ne!(id, batch_request_id(&[r("AB")]));
        assert!(id.starts_with("records-") && id.len() <= 128);
    }

    use super::*;

    const LINE: &str = r#"{"source_record_id":"P-1","subject_enterprise":"enterprises/913710021000006576","kind":"ADMINISTRATIVE_PENALTY","tier":"MODERATE","domain":"PRICING","decision_date":"2026-10-01","document_number":"罚〔2026〕1号","deciding_authority":"市场监督管理局"}"#;

    #[test]
    fn a_file_saved_with_a_byte_order_mark_reads_like_one_without() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bom.jsonl");
        std::fs::write(&path, format!("\u{feff}{LINE}\n")).unwrap();
        let records = read_records_file(&path).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(
            records[0].subject.as_ref().unwrap().subject,
            Some(pb::subject::Subject::Enterprise(
                "enterprises/913710021000006576".into()
            ))
        );
    }

    #[test]
    fn an_id_number_in_an_enum_field_is_not_echoed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.jsonl");
        std::fs::write(&path, LINE.replace("MODERATE", "990101198001014592")).unwrap();
        let err = format!("{:#}", read_records_file(&path).unwrap_err());
        assert!(err.contains("unknown tier"), "{err}");
        assert!(!err.contains("990101198001014592"), "{err}");
    }

    #[test]
    fn a_line_quoting_an_id_number_is_refused_without_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.jsonl");
        std::fs::write(
            &path,
            // A synthetic number (address code 99xxxx belongs to no region).
            r#"{"subject_person": {"name": "张伟", "id_number": 990101198001014592}}"#,
        )
        .unwrap();
        let err = format!("{:#}", read_records_file(&path).unwrap_err());
        assert!(err.contains(":1: not a record line"), "{err}");
        assert!(!err.contains("990101198001014592"), "{err}");
        assert_eq!(
            withhold_long_numbers("integer `99010119800101459X` at line 1 column 12"),
            "integer `<number withheld>` at line 1 column 12"
        );
        for typed in [
            "１１０１０５１９４９１２３１００２Ｘ",
            "110105 19491231 002X",
        ] {
            let shown = withhold_long_numbers(&format!("unknown tier {typed:?}"));
            assert!(
                !shown.contains("19491231") && !shown.contains("１９４９１２３１"),
                "{shown}"
            );
        }
    }
}
