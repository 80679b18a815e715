//! `credit-hub repair …`: the credit check-up as a readable report, repair applications
//! (apply, interview, decide, list with overdue ones marked) and screening.

use anyhow::Context;

use super::{
    connect, enterprise_name, enum_name, explain, resource_name, walk_pages, Authed, ClientArgs,
};
use crate::proto::v1 as pb;
use pb::repair_service_client::RepairServiceClient;

/// `repair` subcommands.
#[derive(clap::Subcommand)]
pub enum RepairCommand {
    /// The credit check-up (信用体检) of an enterprise: what can be repaired, when, with
    /// what, and the grade afterwards.
    Checkup {
        #[command(flatten)]
        client: ClientArgs,
        /// The enterprise's unified social credit code.
        uscc: String,
    },
    /// Accept a repair application.
    Apply {
        #[command(flatten)]
        client: ClientArgs,
        /// The enterprise's unified social credit code.
        #[arg(long)]
        enterprise: String,
        /// A record to repair (`records/ID` or `ID`); repeatable.
        #[arg(long = "record", required = true)]
        records: Vec<String>,
        /// Reference to the credit commitment letter.
        #[arg(long)]
        commitment_letter: String,
        /// Reference to a proof of performance; repeatable.
        #[arg(long = "proof")]
        proofs: Vec<String>,
    },
    /// Record the credit interview (信用约谈) of an application.
    Interview {
        #[command(flatten)]
        client: ClientArgs,
        /// The application id (`repairApplications/ID` or `ID`).
        application: String,
        /// Date held, YYYY-MM-DD.
        #[arg(long)]
        date: String,
        /// The officer who held it.
        #[arg(long)]
        officer: String,
        /// What came of it.
        #[arg(long)]
        outcome: String,
    },
    /// Approve or reject an application (market-regulation agencies).
    Decide {
        #[command(flatten)]
        client: ClientArgs,
        /// The application id.
        application: String,
        /// approve or reject.
        #[arg(long, value_parser = ["approve", "reject"])]
        decision: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// List applications, newest first; overdue ones are marked.
    List {
        #[command(flatten)]
        client: ClientArgs,
        /// Only this enterprise's (USCC).
        #[arg(long)]
        enterprise: Option<String>,
    },
    /// Enterprises that could apply for repair today.
    Candidates {
        #[command(flatten)]
        client: ClientArgs,
        /// Only this administrative division (6 digits).
        #[arg(long, default_value = "")]
        region: String,
    },
}

/// Shows the application a call returned; a reply without one is an error.
fn show_returned(application: Option<pb::RepairApplication>, json: bool) -> anyhow::Result<()> {
    show(&application.context("empty response")?, json);
    Ok(())
}

fn show(a: &pb::RepairApplication, json: bool) {
    let state = enum_name(a.state, pb::RepairState::as_str_name, "REPAIR_STATE_");
    if json {
        crate::out!(
            "{}",
            serde_json::json!({
                "name": a.name,
                "enterprise": a.enterprise,
                "records": a.records,
                "state": state,
                "decision_deadline_date": a.decision_deadline_date,
                "overdue": a.overdue,
                "interview_required": a.interview_required,
                "decision_reason": a.decision_reason,
            })
        );
        return;
    }
    crate::out!(
        "{}{}  {}  {}  due {}  {} record(s){}{}",
        if a.overdue { "!! OVERDUE  " } else { "" },
        a.name,
        a.enterprise,
        state,
        a.decision_deadline_date,
        a.records.len(),
        if a.interview_required && a.interview.is_none() {
            "  (credit interview needed)"
        } else {
            ""
        },
        if a.decision_reason.is_empty() {
            String::new()
        } else {
            format!("  reason: {}", a.decision_reason)
        }
    );
}

async fn client(args: &ClientArgs) -> anyhow::Result<RepairServiceClient<Authed>> {
    let (channel, bearer) = connect(args).await?;
    Ok(RepairServiceClient::with_interceptor(channel, bearer))
}

/// Runs a `repair` subcommand.
pub async fn run(command: RepairCommand) -> anyhow::Result<()> {
    let request_id = || uuid::Uuid::now_v7().simple().to_string();
    match command {
        RepairCommand::Checkup { client: args, uscc } => {
            let c = client(&args)
                .await?
                .credit_checkup(pb::CreditCheckupRequest {
                    enterprise: enterprise_name(&uscc),
                })
                .await
                .map_err(explain)?
                .into_inner();
            // An agency not shown grades gets none (GRADE_UNSPECIFIED, score 0): said
            // so, not printed as a score of 0.
            // (The grade after repair is always set when grades are shown; the
            // current one is not for an enterprise not yet graded.)
            let graded = c.grade_after_repair != pb::Grade::Unspecified as i32;
            if args.json {
                let grade = |g: i32| enum_name(g, pb::Grade::as_str_name, "GRADE_");
                let grades = graded.then(|| {
                    serde_json::json!({
                        "current_grade": grade(c.current_grade),
                        "current_score": c.current_score,
                        "grade_after_repair": grade(c.grade_after_repair),
                        "score_after_repair": c.score_after_repair,
                    })
                });
                crate::out!(
                    "{}",
                    serde_json::json!({
                        "enterprise": c.enterprise,
                        "name": c.enterprise_display_name,
                        "in_bankruptcy_restructuring": c.in_bankruptcy_restructuring,
                        "grades": grades,
                        "items": c.items.iter().map(|i| serde_json::json!({
                            "record": i.record,
                            "document_number": i.document_number,
                            "kind": enum_name(i.kind, pb::RecordKind::as_str_name, "RECORD_KIND_"),
                            "tier": enum_name(i.tier, pb::Tier::as_str_name, "TIER_"),
                            "decision_date": i.decision_date,
                            "publicity_end_date": i.publicity_end_date,
                            "repairability": enum_name(i.repairability, pb::Repairability::as_str_name, "REPAIRABILITY_"),
                            "repairable_from_date": i.repairable_from_date,
                            "reason": i.reason,
                            "needs": i.requirements.iter().map(|q| enum_name(*q, pb::RepairRequirement::as_str_name, "REPAIR_REQUIREMENT_")).collect::<Vec<_>>(),
                        })).collect::<Vec<_>>(),
                    })
                );
                return Ok(());
            }
            let grade = |g: i32| enum_name(g, pb::Grade::as_str_name, "GRADE_");
            crate::out!(
                "信用体检报告  {}  {}",
                c.enterprise_display_name,
                c.enterprise
            );
            let restructuring = if c.in_bankruptcy_restructuring {
                "; in bankruptcy restructuring"
            } else {
                ""
            };
            if graded {
                crate::out!(
                    "grade now {} ({}); after repairing what can be repaired today or is applied for {} ({}){restructuring}",
                    grade(c.current_grade),
                    c.current_score,
                    grade(c.grade_after_repair),
                    c.score_after_repair,
                );
            } else {
                crate::out!(
                    "grades are not shown to this agency (they need grades:read and the CREDIT_REPAIR purpose){restructuring}"
                );
            }
            if c.items.is_empty() {
                crate::out!("no active negative records");
            }
            for i in &c.items {
                let needs: Vec<String> = i
                    .requirements
                    .iter()
                    .map(|q| {
                        enum_name(
                            *q,
                            pb::RepairRequirement::as_str_name,
                            "REPAIR_REQUIREMENT_",
                        )
                    })
                    .collect();
                crate::out!(
                    "- {} {} {} decided {} publicity to {}: {}{}\n    {}{}",
                    i.document_number,
                    enum_name(i.kind, pb::RecordKind::as_str_name, "RECORD_KIND_"),
                    enum_name(i.tier, pb::Tier::as_str_name, "TIER_"),
                    i.decision_date,
                    i.publicity_end_date,
                    enum_name(
                        i.repairability,
                        pb::Repairability::as_str_name,
                        "REPAIRABILITY_"
                    ),
                    if i.repairable_from_date.is_empty() {
                        String::new()
                    } else {
                        format!(" from {}", i.repairable_from_date)
                    },
                    i.reason,
                    if needs.is_empty() {
                        String::new()
                    } else {
                        format!("\n    needs: {}", needs.join(", "))
                    }
                );
            }
            Ok(())
        }
        RepairCommand::Apply {
            client: args,
            enterprise,
            records,
            commitment_letter,
            proofs,
        } => {
            let reply = client(&args)
                .await?
                .apply_for_repair(pb::ApplyForRepairRequest {
                    enterprise: enterprise_name(&enterprise),
                    records: records
                        .iter()
                        .map(|r| resource_name("records", r))
                        .collect(),
                    commitment_letter_reference: commitment_letter,
                    proof_references: proofs,
                    request_id: request_id(),
                })
                .await
                .map_err(explain)?
                .into_inner();
            show_returned(reply.application, args.json)
        }
        RepairCommand::Interview {
            client: args,
            application,
            date,
            officer,
            outcome,
        } => {
            let reply = client(&args)
                .await?
                .record_credit_interview(pb::RecordCreditInterviewRequest {
                    name: resource_name("repairApplications", &application),
                    interview: Some(pb::CreditInterview {
                        interview_date: date,
                        officer,
                        outcome,
                    }),
                    request_id: request_id(),
                })
                .await
                .map_err(explain)?
                .into_inner();
            show_returned(reply.application, args.json)
        }
        RepairCommand::Decide {
            client: args,
            application,
            decision,
            reason,
        } => {
            let decision = if decision == "approve" {
                pb::RepairDecision::Approve
            } else {
                pb::RepairDecision::Reject
            };
            let reply = client(&args)
                .await?
                .decide_repair(pb::DecideRepairRequest {
                    name: resource_name("repairApplications", &application),
                    decision: decision as i32,
                    reason,
                    request_id: request_id(),
                })
                .await
                .map_err(explain)?
                .into_inner();
            show_returned(reply.application, args.json)
        }
        RepairCommand::List {
            client: args,
            enterprise,
        } => {
            let mut api = client(&args).await?;
            walk_pages(
                async |page_token| {
                    let page = api
                        .list_repair_applications(pb::ListRepairApplicationsRequest {
                            enterprise: enterprise
                                .as_deref()
                                .map(enterprise_name)
                                .unwrap_or_default(),
                            page_size: 1000,
                            page_token,
                            ..Default::default()
                        })
                        .await
                        .map_err(explain)?
                        .into_inner();
                    Ok((page.applications, page.next_page_token))
                },
                |a| {
                    show(&a, args.json);
                    Ok(true)
                },
            )
            .await
            .map(drop)
        }
        RepairCommand::Candidates {
            client: args,
            region,
        } => {
            let mut api = client(&args).await?;
            walk_pages(
                async |page_token| {
                    let page = api
                        .list_repair_candidates(pb::ListRepairCandidatesRequest {
                            region_code: region.clone(),
                            page_size: 1000,
                            page_token,
                            ..Default::default()
                        })
                        .await
                        .map_err(explain)?
                        .into_inner();
                    Ok((page.candidates, page.next_page_token))
                },
                |c| {
                    if args.json {
                        crate::out!(
                            "{}",
                            serde_json::json!({
                                "enterprise": c.enterprise,
                                "name": c.enterprise_display_name,
                                "region_code": c.region_code,
                                "repairable_records": c.repairable_records,
                                "serious_listing_removable": c.serious_listing_removable,
                            })
                        );
                    } else {
                        crate::out!(
                            "{}  {}  {}  {} repairable record(s){}",
                            c.enterprise,
                            c.region_code,
                            c.enterprise_display_name,
                            c.repairable_records.len(),
                            if c.serious_listing_removable {
                                "  (serious-dishonesty listing removable)"
                            } else {
                                ""
                            }
                        );
                    }
                    Ok(true)
                },
            )
            .await
            .map(drop)
        }
    }
}
