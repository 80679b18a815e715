//! Grade commands for officers: one enterprise's grade with its reasons, a list of
//! them, a live feed of changes, and the distribution the bureau reports upward.

use anyhow::Context;
use tokio_stream::StreamExt;

use super::{connect, explain, ClientArgs};
use crate::proto::v1 as pb;
use pb::grade_service_client::GradeServiceClient;

/// The purpose a command line names (`daily-supervision`, ...), as the contract's enum.
pub fn purpose(label: &str) -> anyhow::Result<i32> {
    let name = format!(
        "PURPOSE_{}",
        label.trim().replace('-', "_").to_ascii_uppercase()
    );
    pb::Purpose::from_str_name(&name)
        .filter(|p| *p != pb::Purpose::Unspecified)
        .map(|p| p as i32)
        .with_context(|| format!("unknown purpose {label:?} (e.g. daily-supervision, administrative-licensing, judicial-enforcement)"))
}

fn grade_letter(n: i32) -> &'static str {
    match pb::Grade::try_from(n) {
        Ok(pb::Grade::A) => "A",
        Ok(pb::Grade::B) => "B",
        Ok(pb::Grade::C) => "C",
        Ok(pb::Grade::D) => "D",
        _ => "-",
    }
}

fn grade_json(g: &pb::CreditGrade) -> serde_json::Value {
    serde_json::json!({
        "enterprise": g.enterprise,
        "grade": grade_letter(g.grade),
        "score": g.score,
        "model": g.model,
        "model_version": g.model_version,
        "reasons": g.reasons.iter().map(|r| serde_json::json!({
            "code": r.code, "points": r.points, "records": r.records, "description": r.description,
        })).collect::<Vec<_>>(),
    })
}

fn print_grade(g: &pb::CreditGrade) {
    crate::out!(
        "{}  {} 类  {} 分  (模型 {} {})",
        g.enterprise.trim_start_matches("enterprises/"),
        grade_letter(g.grade),
        g.score,
        g.model,
        g.model_version
    );
    for r in &g.reasons {
        crate::out!("  {:<40} {:>5}  {}", r.code, r.points, r.description);
        for rec in &r.records {
            crate::out!("  {:<40}        {rec}", "");
        }
    }
}

/// `credit-hub grade USCC...` / `credit-hub grade --file list.txt`. An enterprise that
/// has no grade (not in the registry, or not yet graded under the model) is named on
/// stderr and the others are still looked up and printed, in input order; the command
/// then exits non-zero.
pub async fn grade(
    args: &ClientArgs,
    usccs: Vec<String>,
    model: &str,
    purpose_label: &str,
) -> anyhow::Result<()> {
    let c = connect(args).await?;
    let mut client = GradeServiceClient::with_interceptor(c.0.clone(), c.1.clone())
        .max_decoding_message_size(crate::MAX_MESSAGE_BYTES);
    let purpose = purpose(purpose_label)?;
    let mut ungraded = 0;
    for chunk in usccs.chunks(1000) {
        let mut names: Vec<String> = chunk.iter().map(|u| super::enterprise_name(u)).collect();
        let grades = loop {
            if names.is_empty() {
                break Vec::new();
            }
            let request = pb::BatchGetCreditGradesRequest {
                names: names.clone(),
                model: model.to_string(),
                purpose,
                case_reference: String::new(),
            };
            match client.batch_get_credit_grades(request).await {
                Ok(response) => break response.into_inner().grades,
                Err(status) => {
                    let missing = without_grade(&status);
                    let before = names.len();
                    names.retain(|n| !missing.iter().any(|(m, _)| m == n));
                    // Only a refusal naming enterprises of this batch is worked
                    // around; anything else (a bad model, a purpose not permitted, the
                    // service away) ends the command.
                    if usccs.len() == 1 || names.len() == before {
                        return Err(explain(status));
                    }
                    for (name, why) in missing {
                        eprintln!("{}: {why}", name.trim_start_matches("enterprises/"));
                    }
                    ungraded += before - names.len();
                }
            }
        };
        for g in &grades {
            if args.json {
                crate::out!("{}", grade_json(g));
            } else {
                print_grade(g);
            }
        }
    }
    if ungraded > 0 {
        anyhow::bail!(
            "{ungraded} of {} enterprises have no grade under model {} (named above); the \
             others were printed",
            usccs.len(),
            if model.is_empty() { "general" } else { model }
        );
    }
    Ok(())
}

/// The enterprises a refused grade look-up names as having no grade, with why: not in
/// the registry (NOT_FOUND names it in ResourceInfo) or not yet graded under the model
/// (a NOT_GRADED precondition violation).
fn without_grade(status: &tonic::Status) -> Vec<(String, String)> {
    use tonic_types::StatusExt;
    match status.code() {
        tonic::Code::NotFound => status
            .get_details_resource_info()
            .filter(|r| r.resource_type == "enterprises")
            .map(|r| vec![(r.resource_name, "not in the registry".to_string())])
            .unwrap_or_default(),
        tonic::Code::FailedPrecondition => status
            .get_details_precondition_failure()
            .map(|f| {
                f.violations
                    .into_iter()
                    .filter(|v| v.r#type == "NOT_GRADED")
                    .map(|v| (v.subject, v.description))
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// How often, in a row, a watch reconnects after the service went away before giving up.
const WATCH_RECONNECTS: u32 = 30;

/// `credit-hub grades watch`: prints changes as they happen; prints each change's cursor
/// so a script can resume with `--cursor`. When the service ends the stream as a
/// retryable UNAVAILABLE (a replica draining for a deploy, the database away), the
/// watch waits as told and resumes from the last cursor it printed or was given: no
/// gap, no repeat. With neither, it cannot resume without a gap, and ends.
pub async fn watch(
    args: &ClientArgs,
    cursor: &str,
    model: &str,
    purpose_label: &str,
) -> anyhow::Result<()> {
    let purpose = purpose(purpose_label)?;
    let mut cursor = cursor.to_string();
    let mut failures = 0;
    loop {
        let status = match connect(args).await {
            Ok(c) => {
                let mut client = GradeServiceClient::with_interceptor(c.0.clone(), c.1.clone());
                let request = pb::WatchGradeChangesRequest {
                    cursor: cursor.clone(),
                    model: model.to_string(),
                    purpose,
                };
                match client.watch_grade_changes(request).await {
                    Ok(stream) => {
                        let mut stream = stream.into_inner();
                        loop {
                            match stream.next().await {
                                Some(Ok(item)) => {
                                    let change = item.change.context("empty change")?;
                                    print_change(args.json, &change);
                                    cursor = change.cursor;
                                    failures = 0;
                                }
                                Some(Err(status)) => break status,
                                None => return Ok(()),
                            }
                        }
                    }
                    Err(status) => status,
                }
            }
            // Reconnecting after the service went away: it may not be back yet.
            Err(e) if failures > 0 => tonic::Status::unavailable(format!("{e:#}")),
            Err(e) => return Err(e),
        };
        let resume = || {
            if cursor.is_empty() {
                "no change was received yet".to_string()
            } else {
                format!("resume with --cursor {cursor}")
            }
        };
        // Without a cursor a new stream would start from the moment it opens: what
        // changed in between would be lost, so the caller decides.
        if status.code() != tonic::Code::Unavailable
            || failures >= WATCH_RECONNECTS
            || cursor.is_empty()
        {
            return Err(explain(status).context(resume()));
        }
        failures += 1;
        let wait = tonic_types::StatusExt::get_details_retry_info(&status)
            .and_then(|r| r.retry_delay)
            .unwrap_or(std::time::Duration::from_secs(1))
            .min(std::time::Duration::from_secs(30));
        eprintln!(
            "the stream ended ({}); reconnecting in {} s ({})",
            status.message(),
            wait.as_secs_f64(),
            resume()
        );
        tokio::time::sleep(wait).await;
    }
}

/// One grade change, as a line of the table or of JSON.
fn print_change(json: bool, change: &pb::GradeChange) {
    let cause = pb::GradeChangeCause::try_from(change.cause)
        .map(|c| {
            c.as_str_name()
                .trim_start_matches("GRADE_CHANGE_CAUSE_")
                .to_string()
        })
        .unwrap_or_default();
    if json {
        crate::out!(
            "{}",
            serde_json::json!({
                "cursor": change.cursor, "enterprise": change.enterprise, "model": change.model,
                "previous_grade": grade_letter(change.previous_grade), "grade": grade_letter(change.grade),
                "previous_score": change.previous_score, "score": change.score,
                "cause": cause, "cause_record": change.cause_record,
            })
        );
    } else {
        crate::out!(
            "{:>8}  {}  {:<16} {} -> {}  ({} -> {})  {} {}",
            change.cursor,
            change.enterprise.trim_start_matches("enterprises/"),
            change.model,
            grade_letter(change.previous_grade),
            grade_letter(change.grade),
            change.previous_score,
            change.score,
            cause,
            change.cause_record
        );
    }
}

/// `credit-hub grades stats`.
pub async fn stats(
    args: &ClientArgs,
    model: &str,
    by_region: bool,
    by_industry: bool,
) -> anyhow::Result<()> {
    let c = connect(args).await?;
    let mut client = GradeServiceClient::with_interceptor(c.0.clone(), c.1.clone());
    let d = client
        .get_grade_distribution(pb::GetGradeDistributionRequest {
            model: model.to_string(),
            group_by_region: by_region,
            group_by_industry: by_industry,
        })
        .await
        .map_err(explain)?
        .into_inner();
    if args.json {
        for r in &d.rows {
            crate::out!(
                "{}",
                serde_json::json!({"model": d.model, "region_code": r.region_code, "industry_section": r.industry_section,
                    "grade": grade_letter(r.grade), "enterprises": r.enterprise_count})
            );
        }
        return Ok(());
    }
    crate::out!(
        "模型 {} {}，共 {} 户",
        d.model,
        d.model_version,
        d.total_enterprises
    );
    crate::out!(
        "{} {} {} {}{}",
        super::pad("区划", 8),
        super::pad("门类", 6),
        super::pad("类别", 4),
        " ".repeat(8 - 4),
        "户数    占比"
    );
    for r in &d.rows {
        crate::out!(
            "{:<8} {:<6} {:<4} {:>8} {:>6.2}%",
            r.region_code,
            r.industry_section,
            grade_letter(r.grade),
            r.enterprise_count,
            100.0 * r.enterprise_count as f64 / d.total_enterprises.max(1) as f64
        );
    }
    Ok(())
}
