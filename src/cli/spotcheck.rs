//! `credit-hub spotcheck …`: create and draw plans, verify a draw, merge departments'
//! plans into joint visits, record results, and read the published results.

use anyhow::{bail, Context};
use tonic::transport::Channel;

use super::{connect, explain, walk_pages, Authed, ClientArgs};
use crate::proto::v1 as pb;
use pb::spot_check_service_client::SpotCheckServiceClient;

/// `spotcheck` subcommands.
#[derive(clap::Subcommand)]
pub enum SpotCheckCommand {
    /// Create a plan (its seed is committed now and revealed by `draw`).
    Plan {
        #[command(flatten)]
        client: ClientArgs,
        /// Regulatory domain, e.g. FOOD_PRODUCTION.
        #[arg(long)]
        domain: String,
        /// The cycle: 2026 or 2026-Q4.
        #[arg(long)]
        cycle: String,
        /// Only enterprises of this administrative division.
        #[arg(long, default_value = "")]
        region: String,
        /// Only enterprises whose industry code starts with this.
        #[arg(long, default_value = "")]
        industry: String,
        /// Ratios per grade, e.g. A=0.02,B=0.05,C=0.15,D=0.3 (default: configuration).
        #[arg(long, default_value = "")]
        ratios: String,
        /// Inspectors per visit (default: configuration).
        #[arg(long, default_value_t = 0)]
        inspectors_per_visit: i32,
        /// A check item; repeatable.
        #[arg(long = "item", required = true)]
        items: Vec<String>,
        /// Idempotency key: run again with the same one to get the same plan (default:
        /// a new one each run).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Draw a plan's targets and inspectors, revealing its seed.
    Draw {
        #[command(flatten)]
        client: ClientArgs,
        /// The plan id.
        plan: String,
    },
    /// Re-run a drawn plan from its published inputs (no token needed).
    Verify {
        /// The plan id.
        plan: String,
        /// Address of the service.
        #[arg(
            long,
            env = "CREDIT_HUB_ADDR",
            default_value = "http://127.0.0.1:50051"
        )]
        addr: String,
    },
    /// Merge drawn plans of one cycle into joint visits.
    Merge {
        #[command(flatten)]
        client: ClientArgs,
        /// Plan ids, two or more.
        #[arg(required = true, num_args = 2..)]
        plans: Vec<String>,
    },
    /// Record (and publish) the result of inspecting a target.
    Result {
        #[command(flatten)]
        client: ClientArgs,
        /// The plan id.
        #[arg(long)]
        plan: String,
        /// The enterprise's unified social credit code.
        #[arg(long)]
        enterprise: String,
        /// passed, problems-found or not-found-at-address.
        #[arg(long, value_parser = ["passed", "problems-found", "not-found-at-address"])]
        outcome: String,
        /// An item: `item` when it passed, `item=finding` when it did not; repeatable.
        #[arg(long = "item", required = true)]
        items: Vec<String>,
        /// Date inspected, YYYY-MM-DD.
        #[arg(long)]
        date: String,
    },
    /// Published results (no token needed), newest first.
    Published {
        /// Only this plan's.
        #[arg(long)]
        plan: Option<String>,
        /// Only this enterprise's (USCC).
        #[arg(long)]
        enterprise: Option<String>,
        /// Address of the service.
        #[arg(
            long,
            env = "CREDIT_HUB_ADDR",
            default_value = "http://127.0.0.1:50051"
        )]
        addr: String,
    },
}

fn plan_name(id: &str) -> String {
    let id = id.trim();
    if id.starts_with("spotCheckPlans/") {
        id.to_string()
    } else {
        format!("spotCheckPlans/{id}")
    }
}

fn grade_label(n: i32) -> &'static str {
    pb::Grade::try_from(n).map_or("?", |g| g.as_str_name().trim_start_matches("GRADE_"))
}

/// Parses `A=0.02,B=0.05,…`.
fn parse_ratios(text: &str) -> anyhow::Result<Vec<pb::GradeRatio>> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|pair| {
            let (g, r) = pair
                .split_once('=')
                .with_context(|| format!("{pair:?}: write GRADE=RATIO"))?;
            let grade = pb::Grade::from_str_name(&format!("GRADE_{}", g.trim().to_uppercase()))
                .with_context(|| format!("unknown grade {g:?}"))?;
            Ok(pb::GradeRatio {
                grade: grade as i32,
                ratio: r
                    .trim()
                    .parse()
                    .with_context(|| format!("{r:?} is not a number"))?,
            })
        })
        .collect()
}

/// A plan as one JSON document (snake_case keys, enum names without their prefix).
fn plan_json(p: &pb::SpotCheckPlan) -> serde_json::Value {
    serde_json::json!({
        "name": p.name,
        "department": p.department,
        "domain": super::enum_name(p.domain, pb::RegulatoryDomain::as_str_name, "REGULATORY_DOMAIN_"),
        "cycle": p.cycle,
        "region_code": p.region_code,
        "industry_code": p.industry_code,
        "inspectors_per_visit": p.inspectors_per_visit,
        "check_items": p.check_items,
        "state": super::enum_name(p.state, pb::SpotCheckPlanState::as_str_name, "SPOT_CHECK_PLAN_STATE_"),
        "seed_commitment": p.seed_commitment,
        "seed": p.seed,
        "overdue_count": p.overdue_count,
        "targets": p.targets.iter().map(|t| serde_json::json!({
            "enterprise": t.enterprise,
            "grade": grade_label(t.grade),
            "non_on_site": t.non_on_site,
            "inspectors": t.inspectors,
            "result_recorded": t.result_recorded,
            "overdue": t.overdue,
        })).collect::<Vec<_>>(),
    })
}

fn show_plan(p: &pb::SpotCheckPlan, json: bool) {
    if json {
        crate::out!("{}", plan_json(p));
        return;
    }
    crate::out!(
        "{}  {}  cycle {}  {} target(s){}  commitment {}",
        p.name,
        pb::RegulatoryDomain::try_from(p.domain).map_or("?", |d| d.as_str_name()),
        p.cycle,
        p.targets.len(),
        if p.overdue_count > 0 {
            format!("  !! {} OVERDUE", p.overdue_count)
        } else {
            String::new()
        },
        p.seed_commitment
    );
    if !p.seed.is_empty() {
        crate::out!("seed {}", p.seed);
    }
    for t in &p.targets {
        crate::out!(
            "  {}  {}  {}{}{}",
            t.enterprise,
            grade_label(t.grade),
            if t.non_on_site {
                "non-on-site"
            } else {
                "visit"
            },
            if t.inspectors.is_empty() {
                String::new()
            } else {
                format!("  inspectors {}", t.inspectors.join(", "))
            },
            if t.overdue { "  !! OVERDUE" } else { "" }
        );
    }
}

async fn authed(args: &ClientArgs) -> anyhow::Result<SpotCheckServiceClient<Authed>> {
    let (channel, bearer) = connect(args).await?;
    // Plans and merges are not paginated: up to 16 MiB, as the contract advises.
    Ok(SpotCheckServiceClient::with_interceptor(channel, bearer)
        .max_decoding_message_size(crate::MAX_MESSAGE_BYTES))
}

async fn public(addr: &str) -> anyhow::Result<SpotCheckServiceClient<Channel>> {
    Ok(SpotCheckServiceClient::new(
        super::public_channel(addr).await?,
    ))
}

/// Runs a `spotcheck` subcommand.
pub async fn run(command: SpotCheckCommand) -> anyhow::Result<()> {
    match command {
        SpotCheckCommand::Plan {
            client,
            domain,
            cycle,
            region,
            industry,
            ratios,
            inspectors_per_visit,
            items,
            request_id,
        } => {
            let request_id =
                request_id.unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string());
            let domain = pb::RegulatoryDomain::from_str_name(&format!(
                "REGULATORY_DOMAIN_{}",
                domain.trim().to_uppercase().replace('-', "_")
            ))
            .with_context(|| format!("unknown domain {domain:?}"))?;
            let plan = authed(&client)
                .await?
                .create_spot_check_plan(pb::CreateSpotCheckPlanRequest {
                    plan: Some(pb::SpotCheckPlan {
                        domain: domain as i32,
                        cycle,
                        region_code: region,
                        industry_code: industry,
                        ratios: parse_ratios(&ratios)?,
                        inspectors_per_visit,
                        check_items: items,
                        ..Default::default()
                    }),
                    request_id: request_id.clone(),
                })
                .await
                .map_err(|status| {
                    super::write_failed(status, "the plan may have been created", &request_id)
                })?
                .into_inner()
                .plan
                .context("empty response")?;
            show_plan(&plan, client.json);
            Ok(())
        }
        SpotCheckCommand::Draw { client, plan } => {
            let plan = authed(&client)
                .await?
                .draw_spot_check_plan(pb::DrawSpotCheckPlanRequest {
                    name: plan_name(&plan),
                })
                .await
                .map_err(explain)?
                .into_inner()
                .plan
                .context("empty response")?;
            show_plan(&plan, client.json);
            Ok(())
        }
        SpotCheckCommand::Verify { plan, addr } => {
            let v = public(&addr)
                .await?
                .verify_draw(pb::VerifyDrawRequest {
                    name: plan_name(&plan),
                })
                .await
                .map_err(explain)?
                .into_inner();
            crate::out!(
                "seed matches commitment: {}; same targets from the published inputs: {}",
                v.seed_matches_commitment,
                v.targets_match
            );
            crate::out!("  {} drawn of {} eligible", v.drawn_total, v.eligible_total);
            if !(v.seed_matches_commitment && v.targets_match) {
                bail!("the draw does not verify");
            }
            Ok(())
        }
        SpotCheckCommand::Merge { client, plans } => {
            let m = authed(&client)
                .await?
                .merge_plans(pb::MergePlansRequest {
                    plans: plans.iter().map(|p| plan_name(p)).collect(),
                })
                .await
                .map_err(explain)?
                .into_inner();
            if client.json {
                crate::out!(
                    "{}",
                    serde_json::json!({
                        "visits_before": m.visits_before,
                        "visits_after": m.visits_after,
                        "joint_visits": m.joint_visits,
                        "joint_share": m.joint_share,
                        "visits": m.visits.iter().map(|v| serde_json::json!({
                            "enterprise": v.enterprise,
                            "departments": v.departments,
                            "inspectors": v.inspectors,
                        })).collect::<Vec<_>>(),
                    })
                );
                return Ok(());
            }
            crate::out!(
                "{} visits before merging, {} after; {} joint ({:.2}%)",
                m.visits_before,
                m.visits_after,
                m.joint_visits,
                m.joint_share * 100.0
            );
            for v in &m.visits {
                crate::out!(
                    "  {}  {} department(s)  inspectors {}",
                    v.enterprise,
                    v.departments.len(),
                    v.inspectors.join(", ")
                );
            }
            Ok(())
        }
        SpotCheckCommand::Result {
            client,
            plan,
            enterprise,
            outcome,
            items,
            date,
        } => {
            let outcome = match outcome.as_str() {
                "passed" => pb::SpotCheckOutcome::Passed,
                "problems-found" => pb::SpotCheckOutcome::ProblemsFound,
                _ => pb::SpotCheckOutcome::NotFoundAtAddress,
            };
            let items = items
                .iter()
                .map(|i| match i.split_once('=') {
                    Some((item, finding)) => pb::InspectionItem {
                        item: item.into(),
                        passed: false,
                        finding: finding.into(),
                    },
                    None => pb::InspectionItem {
                        item: i.clone(),
                        passed: true,
                        finding: String::new(),
                    },
                })
                .collect();
            let r = authed(&client)
                .await?
                .record_spot_check_result(pb::RecordSpotCheckResultRequest {
                    plan: plan_name(&plan),
                    enterprise: super::enterprise_name(&enterprise),
                    outcome: outcome as i32,
                    items,
                    inspection_date: date,
                })
                .await
                .map_err(explain)?
                .into_inner();
            if client.json {
                crate::out!("{}", serde_json::json!({ "record": r.record }));
            } else {
                crate::out!("published; recorded as {}", r.record);
            }
            Ok(())
        }
        SpotCheckCommand::Published {
            plan,
            enterprise,
            addr,
        } => {
            let mut api = public(&addr).await?;
            walk_pages(
                async |page_token| {
                    let page = api
                        .list_published_results(pb::ListPublishedResultsRequest {
                            plan: plan.as_deref().map(plan_name).unwrap_or_default(),
                            enterprise: enterprise
                                .as_ref()
                                .map(|u| super::enterprise_name(u))
                                .unwrap_or_default(),
                            page_size: 1000,
                            page_token,
                        })
                        .await
                        .map_err(explain)?
                        .into_inner();
                    Ok((page.results, page.next_page_token))
                },
                |r| {
                    crate::out!(
                        "{}  {}  {}  {}  inspected {}{}",
                        r.enterprise,
                        r.enterprise_display_name,
                        pb::SpotCheckOutcome::try_from(r.outcome).map_or("?", |o| o
                            .as_str_name()
                            .trim_start_matches("SPOT_CHECK_OUTCOME_")),
                        r.items
                            .iter()
                            .map(|i| if i.passed {
                                i.item.clone()
                            } else {
                                format!("{}: {}", i.item, i.finding)
                            })
                            .collect::<Vec<_>>()
                            .join("; "),
                        r.inspection_date,
                        if r.published_late {
                            "  (published late)"
                        } else {
                            ""
                        }
                    );
                    Ok(true)
                },
            )
            .await
            .map(drop)
        }
    }
}
