//! Spot checks: the inspector register, plans (seed kept secret until the draw), the
//! population a draw reads, and results written with their record in one transaction.

use chrono::NaiveDate;
use sqlx::any::AnyRow;
use sqlx::{Any, Row};

use super::request_log::{self, Replay, RequestKey};
use super::sql::{bind_all, fetch_json, multi_insert, placeholders, select_json, Val};
use super::{now_millis, stored_code, stored_date, Backend, Error, Result, Store};
use crate::domain::agency::Agency;
use crate::domain::codes::{RegulatoryDomain, SpotCheckOutcome};
use crate::domain::grading::{Grade, DEFAULT_MODEL};
use crate::domain::record::{NewRecord, Record};
use crate::domain::spotcheck::{
    Cycle, Drawn, InspectionItem, Inspector, Plan, SpotCheckResult, Target,
};
use crate::domain::{self, PreconditionViolation};

fn corrupt(what: &str, id: &str) -> Error {
    Error::Corrupt(format!("{what} {id}: unreadable"))
}

fn json<T: serde::de::DeserializeOwned>(text: &str, what: &str, id: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|_| corrupt(what, id))
}

fn inspector_from_row(row: &AnyRow) -> Result<Inspector> {
    let code: String = row.try_get("code")?;
    Ok(Inspector {
        display_name: row.try_get("display_name")?,
        domains: json(&row.try_get::<String, _>("domains")?, "inspector", &code)?,
        conflicts: json(&row.try_get::<String, _>("conflicts")?, "inspector", &code)?,
        code,
    })
}

fn plan_from_row(row: &AnyRow) -> Result<Plan> {
    let id: String = row.try_get("id")?;
    let cycle: String = row.try_get("cycle")?;
    let drawn = match (
        row.try_get::<Option<i64>, _>("drawn_at")?,
        row.try_get::<Option<String>, _>("inputs")?,
        row.try_get::<Option<String>, _>("targets")?,
    ) {
        (Some(drawn_at), Some(inputs), Some(targets)) => Some(Drawn {
            drawn_at,
            eligible: json(&inputs, "plan", &id)?,
            targets: json(&targets, "plan", &id)?,
        }),
        _ => None,
    };
    Ok(Plan {
        agency_id: row.try_get("agency_id")?,
        domain: stored_code(
            &row.try_get::<String, _>("domain")?,
            RegulatoryDomain::from_code,
        )?,
        cycle: Cycle::parse(&cycle).map_err(|_| corrupt("plan", &id))?,
        region_code: row.try_get("region_code")?,
        industry_code: row.try_get("industry_code")?,
        ratios: json(&row.try_get::<String, _>("ratios")?, "plan", &id)?,
        inspectors_per_visit: row.try_get::<i64, _>("inspectors_per_visit")? as u32,
        check_items: json(&row.try_get::<String, _>("check_items")?, "plan", &id)?,
        seed_commitment: row.try_get("seed_commitment")?,
        seed: row.try_get("seed")?,
        created_at: row.try_get("created_at")?,
        drawn,
        id,
    })
}

fn result_from_row(row: &AnyRow) -> Result<SpotCheckResult> {
    let plan_id: String = row.try_get("plan_id")?;
    Ok(SpotCheckResult {
        uscc: row.try_get("uscc")?,
        agency_id: row.try_get("agency_id")?,
        outcome: stored_code(
            &row.try_get::<String, _>("outcome")?,
            SpotCheckOutcome::from_code,
        )?,
        items: json::<Vec<InspectionItem>>(
            &row.try_get::<String, _>("items")?,
            "result",
            &plan_id,
        )?,
        inspection_date: stored_date(&row.try_get::<String, _>("inspection_date")?)?,
        published_at: row.try_get("published_at")?,
        publish_due: stored_date(&row.try_get::<String, _>("publish_due")?)?,
        record_id: row.try_get("record_id")?,
        plan_id,
    })
}

/// The refusal of a second draw of `plan`.
/// What became of a draw sent to [`Store::save_draw`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrawSaved {
    Saved,
    /// Another plan of an overlapping cycle was drawn meanwhile: draw again.
    Redraw,
    /// The plan was drawn already (by a copy of this call); nothing was saved.
    AlreadyDrawn,
}

/// What a draw must exclude, as read before it (see [`Store::cycle_activity`]).
#[derive(Debug, Default)]
pub struct CycleActivity {
    /// (agency, USCC): the enterprises each agency has drawn or checked this cycle.
    pub taken: Vec<(String, String)>,
    /// The drawn plans this was read from, to tell whether another was drawn since.
    drawn_plans: Vec<String>,
}

impl Store {
    /// Adds or replaces the department's inspectors, atomically.
    pub async fn upsert_inspectors(&self, agency_id: &str, inspectors: &[Inspector]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let now = now_millis();
        let rows: Vec<Vec<Val>> = inspectors
            .iter()
            .map(|i| {
                vec![
                    agency_id.into(),
                    i.code.clone().into(),
                    i.display_name.clone().into(),
                    serde_json::to_string(&i.domains)
                        .expect("domains serialize")
                        .into(),
                    serde_json::to_string(&i.conflicts)
                        .expect("conflicts serialize")
                        .into(),
                    now.into(),
                ]
            })
            .collect();
        let upsert = " ON CONFLICT (agency_id, code) DO UPDATE SET display_name = excluded.display_name, \
                      domains = excluded.domains, conflicts = excluded.conflicts, updated_at = excluded.updated_at";
        for (sql, vals) in multi_insert(
            self.backend,
            "inspectors",
            &[
                "agency_id",
                "code",
                "display_name",
                "domains",
                "conflicts",
                "updated_at",
            ],
            rows,
        ) {
            bind_all(sqlx::query(&(sql + upsert)), vals)
                .execute(&mut *tx)
                .await?;
        }
        self.commit(tx).await?;
        Ok(())
    }

    /// The department's inspectors by code, after `after`.
    pub async fn list_inspectors(
        &self,
        agency_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Inspector>> {
        let rows = sqlx::query(&format!(
            "SELECT * FROM inspectors WHERE agency_id = $1 AND code > $2 ORDER BY code LIMIT {limit}"
        ))
        .bind(agency_id)
        .bind(after.unwrap_or(""))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(inspector_from_row).collect()
    }

    /// Every inspector of `agency_id`.
    pub async fn inspectors_of(&self, agency_id: &str) -> Result<Vec<Inspector>> {
        self.list_inspectors(agency_id, None, i32::MAX as usize)
            .await
    }

    /// Stores a new plan (its seed stays secret until the draw). Refused while the
    /// department has a plan of the same domain not yet drawn in a cycle sharing days
    /// with this one (a year and its quarters) that has not ended: a plan is never
    /// dropped undrawn, so that a draw whose targets a department did not like (it
    /// learns how many a refused draw left without inspectors) cannot be replaced by
    /// another plan with a fresh seed.
    pub async fn insert_spot_check_plan(
        &self,
        plan: &Plan,
        today: NaiveDate,
        request: Option<&RequestKey>,
        encode: &(dyn Fn(&Plan) -> Vec<u8> + Send + Sync),
    ) -> Result<Replay<Plan>> {
        let mut tx = match request_log::begin(self, request).await? {
            Ok(tx) => tx,
            Err(bytes) => return Ok(Replay::Replayed(bytes)),
        };
        if self.backend == Backend::Postgres {
            // With the draws (see `save_draw`): two plans created at once both see the
            // other, or the draw that settled it.
            sqlx::query("SELECT pg_advisory_xact_lock(728306)")
                .execute(&mut *tx)
                .await?;
        }
        let labels = plan.cycle.overlapping_labels();
        let sql = format!(
            "SELECT id, cycle FROM spot_check_plans WHERE agency_id = {} AND domain = {} \
             AND state = 'CREATED' AND cycle IN ({}) ORDER BY created_at",
            placeholders(self.backend, 1, 1),
            placeholders(self.backend, 2, 1),
            placeholders(self.backend, 3, labels.len())
        );
        let mut vals = vec![
            Val::from(plan.agency_id.as_str()),
            Val::from(plan.domain.code()),
        ];
        vals.extend(labels.iter().map(|l| Val::from(l.as_str())));
        let mut pending = None;
        for row in bind_all(sqlx::query(&sql), vals)
            .fetch_all(&mut *tx)
            .await?
        {
            // One whose cycle has ended can no longer be drawn (CYCLE_ENDED).
            let cycle: String = row.try_get("cycle")?;
            if Cycle::parse(&cycle).is_ok_and(|c| c.end >= today) {
                pending = Some(row.try_get::<String, _>("id")?);
                break;
            }
        }
        if let Some(id) = pending {
            return Err(
                domain::Error::FailedPrecondition(vec![PreconditionViolation {
                    kind: "PLAN_NOT_DRAWN".into(),
                    subject: format!("spotCheckPlans/{id}"),
                    description: format!(
                        "spotCheckPlans/{id}, this department's plan for {} in a cycle sharing days \
                     with {}, is not drawn yet: draw it before planning that domain and \
                     cycle again (a plan is never dropped undrawn, so no draw is retried \
                     for other targets)",
                        plan.domain.code(),
                        plan.cycle.label
                    ),
                }])
                .into(),
            );
        }
        sqlx::query(
            "INSERT INTO spot_check_plans (id, agency_id, domain, cycle, region_code, industry_code, \
             ratios, inspectors_per_visit, check_items, seed_commitment, seed, state, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'CREATED', $12)",
        )
        .bind(&plan.id)
        .bind(&plan.agency_id)
        .bind(plan.domain.code())
        .bind(&plan.cycle.label)
        .bind(&plan.region_code)
        .bind(&plan.industry_code)
        .bind(serde_json::to_string(&plan.ratios).expect("ratios serialize"))
        .bind(i64::from(plan.inspectors_per_visit))
        .bind(serde_json::to_string(&plan.check_items).expect("items serialize"))
        .bind(&plan.seed_commitment)
        .bind(&plan.seed)
        .bind(plan.created_at)
        .execute(&mut *tx)
        .await?;
        if let Some(key) = request {
            request_log::remember(&mut tx, key, encode(plan)).await?;
        }
        self.commit(tx).await?;
        Ok(Replay::Fresh(plan.clone()))
    }

    /// One plan.
    pub async fn spot_check_plan(&self, id: &str) -> Result<Option<Plan>> {
        sqlx::query("SELECT * FROM spot_check_plans WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await?
            .map(|r| plan_from_row(&r))
            .transpose()
    }

    /// Operating enterprises with their general-model grade, filtered by region and
    /// industry prefix (empty: any), in no particular order (the draw sorts). Ungraded
    /// enterprises are left out.
    pub async fn spot_check_population(
        &self,
        region: &str,
        industry_prefix: &str,
    ) -> Result<Vec<(String, Grade)>> {
        // One aggregated JSON value: tens of thousands of rows cost little that way.
        let rows: Vec<(String, String)> = fetch_json(
            &self.read,
            &select_json(
                self.backend,
                &["e.uscc", "g.grade"],
                "enterprises e JOIN credit_grades g ON g.uscc = e.uscc AND g.model = $1 \
                 WHERE e.status = 'OPERATING' AND ($2 = '' OR e.region_code = $3) \
                 AND e.industry_code LIKE $4",
            ),
            vec![
                DEFAULT_MODEL.into(),
                region.into(),
                region.into(),
                format!("{industry_prefix}%").into(),
            ],
        )
        .await?;
        rows.into_iter()
            .map(|(u, g)| Ok((u, stored_code(&g, Grade::from_code)?)))
            .collect()
    }

    /// Who already has which enterprise this cycle, as a draw must know it: the
    /// targets of every drawn plan of an overlapping cycle (with the drawing agency),
    /// and every recorded result inside the cycle's dates.
    pub async fn cycle_activity(&self, cycle: &Cycle) -> Result<CycleActivity> {
        let mut activity = CycleActivity::default();
        for (id, agency, targets) in self.drawn_in(cycle, &self.read).await? {
            let targets: Vec<Target> = json(&targets, "plan", &id)?;
            activity
                .taken
                .extend(targets.into_iter().map(|t| (agency.clone(), t.uscc)));
            activity.drawn_plans.push(id);
        }
        let results: Vec<(String, String)> = sqlx::query_as(
            "SELECT agency_id, uscc FROM spot_check_results \
             WHERE inspection_date >= $1 AND inspection_date <= $2",
        )
        .bind(cycle.start.to_string())
        .bind(cycle.end.to_string())
        .fetch_all(&self.read)
        .await?;
        activity.taken.extend(results);
        Ok(activity)
    }

    /// The drawn plans of the cycles overlapping `cycle`: id, agency, targets (JSON),
    /// in id order.
    async fn drawn_in<'e>(
        &self,
        cycle: &Cycle,
        on: impl sqlx::Executor<'e, Database = Any>,
    ) -> Result<Vec<(String, String, String)>> {
        let labels = cycle.overlapping_labels();
        let sql = format!(
            "SELECT id, agency_id, COALESCE(targets, '') FROM spot_check_plans \
             WHERE cycle IN ({}) AND state = 'DRAWN' ORDER BY id",
            placeholders(self.backend, 1, labels.len())
        );
        let rows = bind_all(
            sqlx::query(&sql),
            labels.into_iter().map(Val::from).collect(),
        )
        .fetch_all(on)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
            .collect()
    }

    /// Fixes a plan's draw, unless it was drawn already. Saves nothing when another
    /// plan of an overlapping cycle was drawn since `activity` was read: its targets
    /// were not excluded, and the plan must be drawn again.
    pub async fn save_draw(
        &self,
        plan: &Plan,
        drawn: &Drawn,
        activity: &CycleActivity,
    ) -> Result<DrawSaved> {
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            // Draws one at a time (SQLite has one writer anyway), so that the check
            // below sees every draw committed before this one.
            sqlx::query("SELECT pg_advisory_xact_lock(728306)")
                .execute(&mut *tx)
                .await?;
        }
        let now_drawn: Vec<String> = self
            .drawn_in(&plan.cycle, &mut *tx)
            .await?
            .into_iter()
            .map(|(id, _, _)| id)
            .collect();
        if now_drawn.contains(&plan.id) {
            return Ok(DrawSaved::AlreadyDrawn);
        }
        if now_drawn != activity.drawn_plans {
            return Ok(DrawSaved::Redraw);
        }
        let done = sqlx::query(
            "UPDATE spot_check_plans SET state = 'DRAWN', drawn_at = $1, inputs = $2, targets = $3 \
             WHERE id = $4 AND state IN ('CREATED', 'TOO_LARGE')",
        )
        .bind(drawn.drawn_at)
        .bind(serde_json::to_string(&drawn.eligible).expect("inputs serialize"))
        .bind(serde_json::to_string(&drawn.targets).expect("targets serialize"))
        .bind(&plan.id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(DrawSaved::AlreadyDrawn);
        }
        self.commit(tx).await?;
        Ok(DrawSaved::Saved)
    }

    /// Notes that drawing `plan_id` was refused as too large for one answer. Such a plan
    /// no longer holds back a new plan of its domain and cycle (see
    /// [`Store::insert_spot_check_plan`]): its size follows from its population, ratios
    /// and inspectors per visit; its seed picks only which targets and inspector codes
    /// fill it, which could tip the balance only at the very edge. It may still be
    /// drawn, should other plans' draws leave it small enough.
    pub async fn mark_plan_too_large(&self, plan_id: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE spot_check_plans SET state = 'TOO_LARGE' WHERE id = $1 AND state = 'CREATED'",
        )
        .bind(plan_id)
        .execute(&mut *tx)
        .await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Writes a result and the record it becomes in one transaction (the record regrades
    /// the enterprise). The same result sent again (a retry after a lost answer) gets
    /// the stored one back; a different result for an enterprise the plan already has
    /// one for is refused: published results are never rewritten.
    pub async fn record_spot_check_result(
        &self,
        agency: &Agency,
        record: NewRecord,
        result: &SpotCheckResult,
        today: NaiveDate,
    ) -> Result<(Record, SpotCheckResult)> {
        // Two attempts side by side both find no result; the later one's record then
        // collides with the earlier's, and running it again finds the committed result.
        request_log::retrying_races(|| {
            self.record_spot_check_result_once(agency, record.clone(), result, today)
        })
        .await
    }

    async fn record_spot_check_result_once(
        &self,
        agency: &Agency,
        record: NewRecord,
        result: &SpotCheckResult,
        today: NaiveDate,
    ) -> Result<(Record, SpotCheckResult)> {
        let mut tx = self.begin_write().await?;
        let existing =
            sqlx::query("SELECT * FROM spot_check_results WHERE plan_id = $1 AND uscc = $2")
                .bind(&result.plan_id)
                .bind(&result.uscc)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(row) = existing {
            let stored = result_from_row(&row)?;
            drop(tx);
            let same = (
                &stored.agency_id,
                stored.outcome,
                &stored.items,
                stored.inspection_date,
            ) == (
                &result.agency_id,
                result.outcome,
                &result.items,
                result.inspection_date,
            );
            if !same {
                return Err(domain::Error::FailedPrecondition(vec![PreconditionViolation {
                    kind: "RESULT_ALREADY_RECORDED".into(),
                    subject: format!("enterprises/{}", result.uscc),
                    description: format!(
                        "spotCheckPlans/{} already has a different published result for enterprises/{}; results are never rewritten",
                        result.plan_id, result.uscc
                    ),
                }])
                .into());
            }
            let record = self.get_record(&stored.record_id).await?.ok_or_else(|| {
                Error::Corrupt(format!("result record {} missing", stored.record_id))
            })?;
            return Ok((record, stored));
        }
        let (written, regraded) = self
            .write_records(&mut tx, agency, &[record], today)
            .await?;
        let stored = written
            .records
            .into_iter()
            .next()
            .ok_or_else(|| Error::Corrupt("spot-check record not written".into()))?;
        let mut result = result.clone();
        result.record_id = stored.id.clone();
        sqlx::query(
            "INSERT INTO spot_check_results (plan_id, uscc, agency_id, outcome, items, \
             inspection_date, published_at, publish_due, record_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&result.plan_id)
        .bind(&result.uscc)
        .bind(&result.agency_id)
        .bind(result.outcome.code())
        .bind(serde_json::to_string(&result.items).expect("items serialize"))
        .bind(result.inspection_date.to_string())
        .bind(result.published_at)
        .bind(result.publish_due.to_string())
        .bind(&result.record_id)
        .execute(&mut *tx)
        .await?;
        self.commit_regraded(tx, &regraded).await?;
        Ok((stored, result))
    }

    /// Published results still in their publicity window on `today` (their record is
    /// active: not repaired, not withdrawn, not expired), newest first, after the
    /// cursor (publish time, plan, USCC) of a previous page; with each enterprise's
    /// registered name.
    pub async fn published_results(
        &self,
        plan_id: Option<&str>,
        uscc: Option<&str>,
        after: Option<(i64, String, String)>,
        limit: usize,
        today: chrono::NaiveDate,
    ) -> Result<Vec<(SpotCheckResult, String)>> {
        let mut sql = String::from(
            "SELECT r.*, e.display_name FROM spot_check_results r \
             JOIN enterprises e ON e.uscc = r.uscc \
             JOIN records rec ON rec.id = r.record_id \
             WHERE rec.status = 'ACTIVE' AND rec.publicity_end_date > $1",
        );
        let mut vals: Vec<Val> = vec![today.to_string().into()];
        let mut cond = |sql: &mut String, clause: &str, v: Val| {
            vals.push(v);
            sql.push_str(&clause.replace('?', &format!("${}", vals.len())));
        };
        if let Some(p) = plan_id {
            cond(&mut sql, " AND r.plan_id = ?", p.into());
        }
        if let Some(u) = uscc {
            cond(&mut sql, " AND r.uscc = ?", u.into());
        }
        if let Some((at, plan, u)) = after {
            cond(&mut sql, " AND (r.published_at < ?", at.into());
            cond(&mut sql, " OR (r.published_at = ?", at.into());
            cond(&mut sql, " AND (r.plan_id < ?", plan.clone().into());
            cond(&mut sql, " OR (r.plan_id = ?", plan.into());
            cond(&mut sql, " AND r.uscc < ?))))", u.into());
        }
        sql.push_str(&format!(
            " ORDER BY r.published_at DESC, r.plan_id DESC, r.uscc DESC LIMIT {limit}"
        ));
        let rows = bind_all(sqlx::query(&sql), vals)
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| Ok((result_from_row(r)?, r.try_get("display_name")?)))
            .collect()
    }

    /// The USCCs a plan has results for.
    pub async fn plan_results(&self, plan_id: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT uscc FROM spot_check_results WHERE plan_id = $1")
                .bind(plan_id)
                .fetch_all(&self.read)
                .await?;
        Ok(rows.into_iter().map(|(u,)| u).collect())
    }

    /// Several plans at once, in the order asked; NOT_FOUND names a missing one.
    pub async fn spot_check_plans(&self, ids: &[String]) -> Result<Vec<Plan>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(
                self.spot_check_plan(id)
                    .await?
                    .ok_or_else(|| domain::Error::NotFound(format!("spotCheckPlans/{id}")))?,
            );
        }
        Ok(out)
    }
}
