//! Repair applications, their decisions (an approval repairs the records and regrades
//! in one transaction), and the pool screening looks through.

use chrono::NaiveDate;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::records::{RecordRow, REVISION_COLUMNS};
use super::request_log::{self, Replay, RequestKey};
use super::sql::{bind_all, for_update, in_json, json_keys, multi_insert, placeholders, Val};
use super::{now_millis, stored_code, stored_date, Backend, Error, Result, Store};
use crate::domain::codes::{GradeChangeCause, RecordKind, RecordStatus};
use crate::domain::ids::Uscc;
use crate::domain::record::Record;
use crate::domain::repair::{Interview, RepairApplication, RepairState};
use crate::domain::{self, PreconditionViolation};

/// The applications still awaiting a decision, as an SQL condition.
const OPEN: &str = "state IN ('ACCEPTED', 'INTERVIEWED')";

/// Encodes a response for the request log.
pub type Encode<'a> = &'a (dyn Fn(&RepairApplication) -> Vec<u8> + Send + Sync);

/// Says whether an application's records (all the enterprise's records are given) may
/// be repaired now, or every reason why not.
pub type Approvable<'a> = &'a (dyn Fn(&RepairApplication, &[Record]) -> Result<(), Vec<PreconditionViolation>>
         + Send
         + Sync);

/// Filters for listing applications; all optional.
#[derive(Debug, Clone, Default)]
pub struct RepairFilter {
    pub uscc: Option<String>,
    pub state: Option<RepairState>,
}

/// An enterprise screening looks at, with every record about it.
#[derive(Debug, Clone)]
pub struct PoolEntry {
    pub uscc: Uscc,
    pub display_name: String,
    pub region_code: String,
    pub in_bankruptcy_restructuring: bool,
    pub records: Vec<Record>,
    /// Ids of its records in an open (accepted or interviewed) application.
    pub applied_for: std::collections::BTreeSet<String>,
}

fn application_from_row(row: &AnyRow) -> Result<RepairApplication> {
    let id: String = row.try_get("id")?;
    let corrupt = |what: &str| Error::Corrupt(format!("repair application {id}: {what}"));
    let json_list = |col: &str| -> Result<Vec<String>> {
        serde_json::from_str(&row.try_get::<String, _>(col)?).map_err(|_| corrupt(col))
    };
    let interview = match (
        row.try_get::<Option<String>, _>("interview_date")?,
        row.try_get::<Option<String>, _>("interview_officer")?,
        row.try_get::<Option<String>, _>("interview_outcome")?,
    ) {
        (Some(date), Some(officer), Some(outcome)) => Some(Interview {
            date: stored_date(&date)?,
            officer,
            outcome,
        }),
        _ => None,
    };
    Ok(RepairApplication {
        uscc: Uscc::parse(&row.try_get::<String, _>("uscc")?).map_err(|_| corrupt("uscc"))?,
        records: json_list("records")?,
        commitment_letter_reference: row.try_get("commitment_letter_reference")?,
        proof_references: json_list("proof_references")?,
        state: stored_code(&row.try_get::<String, _>("state")?, RepairState::from_code)?,
        agency_id: row.try_get("agency_id")?,
        accepted_at: row.try_get("accepted_at")?,
        accepted_date: stored_date(&row.try_get::<String, _>("accepted_date")?)?,
        deadline: stored_date(&row.try_get::<String, _>("deadline_date")?)?,
        interview_required: row.try_get::<i64, _>("interview_required")? != 0,
        interview,
        decision_reason: row.try_get("decision_reason")?,
        decided_at: row.try_get("decided_at")?,
        decided_by: row.try_get("decided_by")?,
        id,
    })
}

fn already_decided(app: &RepairApplication) -> Error {
    domain::Error::FailedPrecondition(vec![PreconditionViolation {
        kind: "APPLICATION_DECIDED".into(),
        subject: app.resource_name(),
        description: format!(
            "{} was already decided ({}); nothing more can be recorded on it",
            app.resource_name(),
            app.state.code()
        ),
    }])
    .into()
}

impl Store {
    /// Serializes repair writes about one enterprise on PostgreSQL (SQLite has one
    /// writer), so two applications cannot both claim the same record.
    async fn lock_enterprise(&self, tx: &mut Transaction<'static, Any>, uscc: &str) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(format!("repair:{uscc}"))
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// The application `id` inside `tx`, refused unless it is still open.
    async fn open_application_in(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: &str,
    ) -> Result<RepairApplication> {
        // Locked on PostgreSQL until the transaction ends, so that an interview and a
        // decision (or two decisions) arriving together act one after the other, the
        // second seeing the first's state; SQLite's writer is alone anyway.
        let sql = format!(
            "SELECT * FROM repair_applications WHERE id = $1{}",
            for_update(self.backend)
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| domain::Error::NotFound(format!("repairApplications/{id}")))?;
        let app = application_from_row(&row)?;
        if !app.is_open() {
            return Err(already_decided(&app));
        }
        Ok(app)
    }

    /// Records `app`, unless one of its records is already in an open application.
    pub async fn insert_repair_application(
        &self,
        app: &RepairApplication,
        request: Option<&RequestKey>,
        encode: Encode<'_>,
    ) -> Result<Replay<RepairApplication>> {
        let mut tx = match request_log::begin(self, request).await? {
            Ok(tx) => tx,
            Err(bytes) => return Ok(Replay::Replayed(bytes)),
        };
        self.lock_enterprise(&mut tx, app.uscc.as_str()).await?;
        let open = sqlx::query(&format!(
            "SELECT * FROM repair_applications WHERE uscc = $1 AND {OPEN}"
        ))
        .bind(app.uscc.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let mut taken = Vec::new();
        for row in &open {
            let other = application_from_row(row)?;
            for r in app.records.iter().filter(|r| other.records.contains(r)) {
                taken.push(PreconditionViolation {
                    kind: "RECORD_IN_OPEN_APPLICATION".into(),
                    subject: format!("records/{r}"),
                    description: format!(
                        "records/{r} is already in open application {}; decide that one first",
                        other.resource_name()
                    ),
                });
            }
        }
        if !taken.is_empty() {
            return Err(domain::Error::FailedPrecondition(taken).into());
        }
        sqlx::query(
            "INSERT INTO repair_applications (id, uscc, agency_id, records, \
             commitment_letter_reference, proof_references, state, accepted_at, accepted_date, \
             deadline_date, interview_required) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&app.id)
        .bind(app.uscc.as_str())
        .bind(&app.agency_id)
        .bind(serde_json::to_string(&app.records).expect("ids serialize"))
        .bind(&app.commitment_letter_reference)
        .bind(serde_json::to_string(&app.proof_references).expect("references serialize"))
        .bind(app.state.code())
        .bind(app.accepted_at)
        .bind(app.accepted_date.to_string())
        .bind(app.deadline.to_string())
        .bind(i64::from(app.interview_required))
        .execute(&mut *tx)
        .await?;
        if let Some(key) = request {
            request_log::remember(&mut tx, key, encode(app)).await?;
        }
        self.commit(tx).await?;
        Ok(Replay::Fresh(app.clone()))
    }

    /// One application.
    pub async fn repair_application(&self, id: &str) -> Result<Option<RepairApplication>> {
        sqlx::query("SELECT * FROM repair_applications WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await?
            .map(|r| application_from_row(&r))
            .transpose()
    }

    /// Applications newest first, after the id of a previous page's last one.
    pub async fn list_repair_applications(
        &self,
        filter: &RepairFilter,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RepairApplication>> {
        let mut sql = String::from("SELECT * FROM repair_applications WHERE 1 = 1");
        let mut vals: Vec<Val> = Vec::new();
        let mut cond = |sql: &mut String, clause: &str, v: Val| {
            vals.push(v);
            sql.push_str(&format!(" AND {clause} ${}", vals.len()));
        };
        if let Some(u) = &filter.uscc {
            cond(&mut sql, "uscc =", u.clone().into());
        }
        if let Some(s) = filter.state {
            cond(&mut sql, "state =", s.code().into());
        }
        if let Some(b) = before {
            cond(&mut sql, "id <", b.into());
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {limit}"));
        bind_all(sqlx::query(&sql), vals)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(application_from_row)
            .collect()
    }

    /// Records the credit interview of an open application.
    pub async fn record_credit_interview(
        &self,
        id: &str,
        interview: &Interview,
        request: Option<&RequestKey>,
        encode: Encode<'_>,
    ) -> Result<Replay<RepairApplication>> {
        let mut tx = match request_log::begin(self, request).await? {
            Ok(tx) => tx,
            Err(bytes) => return Ok(Replay::Replayed(bytes)),
        };
        let mut app = self.open_application_in(&mut tx, id).await?;
        // An interview on record is evidence the decision rests on: it is never
        // replaced. The same one again is a retry that changes nothing.
        if let Some(first) = &app.interview {
            if first != interview {
                return Err(
                    domain::Error::FailedPrecondition(vec![PreconditionViolation {
                        kind: "ALREADY_INTERVIEWED".into(),
                        subject: app.resource_name(),
                        description: format!(
                            "{} already has its credit interview, on {} by {}; a recorded \
                         interview is not replaced",
                            app.resource_name(),
                            first.date,
                            first.officer
                        ),
                    }])
                    .into(),
                );
            }
            if let Some(key) = request {
                request_log::remember(&mut tx, key, encode(&app)).await?;
            }
            self.commit(tx).await?;
            return Ok(Replay::Fresh(app));
        }
        if interview.date < app.accepted_date {
            return Err(domain::Error::invalid(
                "interview.interview_date",
                format!(
                    "must not be before the application was accepted ({})",
                    app.accepted_date
                ),
            )
            .into());
        }
        sqlx::query(
            "UPDATE repair_applications SET state = 'INTERVIEWED', interview_date = $1, \
             interview_officer = $2, interview_outcome = $3 WHERE id = $4",
        )
        .bind(interview.date.to_string())
        .bind(&interview.officer)
        .bind(&interview.outcome)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        app.state = RepairState::Interviewed;
        app.interview = Some(interview.clone());
        if let Some(key) = request {
            request_log::remember(&mut tx, key, encode(&app)).await?;
        }
        self.commit(tx).await?;
        Ok(Replay::Fresh(app))
    }

    /// Decides an open application. An approval first asks `check` whether its records
    /// (all the enterprise's records are given) may be repaired now, then marks them
    /// repaired, keeps the change in their history and regrades the enterprise, all in
    /// one transaction. A rejection only records the decision.
    #[allow(clippy::too_many_arguments)]
    pub async fn decide_repair(
        &self,
        id: &str,
        approve: bool,
        reason: &str,
        agency_id: &str,
        today: NaiveDate,
        check: Approvable<'_>,
        request: Option<&RequestKey>,
        encode: Encode<'_>,
    ) -> Result<Replay<RepairApplication>> {
        // Its record locks can meet a submission's (which locks by source id) in the
        // other order: PostgreSQL then aborts one of them, and it runs again.
        request_log::retrying_races(|| {
            self.decide_repair_once(
                id, approve, reason, agency_id, today, check, request, encode,
            )
        })
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn decide_repair_once(
        &self,
        id: &str,
        approve: bool,
        reason: &str,
        agency_id: &str,
        today: NaiveDate,
        check: Approvable<'_>,
        request: Option<&RequestKey>,
        encode: Encode<'_>,
    ) -> Result<Replay<RepairApplication>> {
        let mut tx = match request_log::begin(self, request).await? {
            Ok(tx) => tx,
            Err(bytes) => return Ok(Replay::Replayed(bytes)),
        };
        let mut app = self.open_application_in(&mut tx, id).await?;
        self.lock_enterprise(&mut tx, app.uscc.as_str()).await?;
        let now = now_millis();
        let mut regraded = None;
        if approve {
            // Locked on PostgreSQL: a revision moving one of these records to another
            // enterprise, or a withdrawal, committing between this read and the update
            // below would otherwise be repaired unseen (and the record's new subject
            // never regraded). Locked, the read waits for it and sees what it left.
            let sql = format!(
                "SELECT * FROM records WHERE subject_key = $1 ORDER BY id{}",
                for_update(self.backend)
            );
            let rows = sqlx::query(&sql)
                .bind(app.uscc.as_str())
                .fetch_all(&mut *tx)
                .await?;
            let mut all = Vec::with_capacity(rows.len());
            let mut repaired_rows = Vec::new();
            for row in &rows {
                let mut r = RecordRow::from_row(row)?;
                let record = r.clone().into_record()?;
                if app.records.contains(&record.id) {
                    r.set_status(RecordStatus::Repaired, now);
                    repaired_rows.push(r);
                }
                all.push(record);
            }
            check(&app, &all).map_err(domain::Error::FailedPrecondition)?;
            let sql = format!(
                "UPDATE records SET status = '{}', updated_at = {} WHERE {}",
                RecordStatus::Repaired.code(),
                placeholders(self.backend, 1, 1),
                in_json(self.backend, "id", 2)
            );
            bind_all(
                sqlx::query(&sql),
                vec![
                    Val::Int(now),
                    json_keys(app.records.iter().map(String::as_str)),
                ],
            )
            .execute(&mut *tx)
            .await?;
            let snapshots = repaired_rows
                .iter()
                .map(|r| r.snapshot("REPAIRED", now))
                .collect();
            for (sql, vals) in multi_insert(
                self.backend,
                "record_revisions",
                REVISION_COLUMNS,
                snapshots,
            ) {
                bind_all(sqlx::query(&sql), vals).execute(&mut *tx).await?;
            }
            let repaired: Vec<Record> = repaired_rows
                .into_iter()
                .map(RecordRow::into_record)
                .collect::<Result<_>>()?;
            let refs: Vec<&Record> = repaired.iter().collect();
            let targets = self
                .record_targets(&mut tx, &refs, GradeChangeCause::RecordRepaired)
                .await?;
            let related = self.affects_related(&refs);
            regraded = Some(self.regrade(&mut tx, targets, related, today).await?);
        }
        sqlx::query(
            "UPDATE repair_applications SET state = $1, decision_reason = $2, decided_at = $3, \
             decided_by = $4 WHERE id = $5",
        )
        .bind(if approve { "APPROVED" } else { "REJECTED" })
        .bind(reason)
        .bind(now)
        .bind(agency_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        app.state = if approve {
            RepairState::Approved
        } else {
            RepairState::Rejected
        };
        app.decision_reason = Some(reason.to_string());
        app.decided_at = Some(now);
        app.decided_by = Some(agency_id.to_string());
        if let Some(key) = request {
            request_log::remember(&mut tx, key, encode(&app)).await?;
        }
        match &regraded {
            Some(r) => self.commit_regraded(tx, r).await?,
            None => self.commit(tx).await?,
        }
        Ok(Replay::Fresh(app))
    }

    /// Up to `limit` registered enterprises after `after` (by USCC) that have an active,
    /// non-minor record of one of `kinds` (in `domain`, if given), in `region`, if given,
    /// each with every record about it: the pool screening assesses.
    pub async fn repair_pool(
        &self,
        kinds: &[RecordKind],
        region: Option<&str>,
        domain: Option<&str>,
        after: Option<&str>,
        today: NaiveDate,
        limit: usize,
    ) -> Result<Vec<PoolEntry>> {
        let b = self.backend;
        let mut vals: Vec<Val> = vec![
            today.to_string().into(),
            json_keys(kinds.iter().map(|k| k.code())),
        ];
        let mut sql = format!(
            "SELECT e.uscc, e.display_name, e.region_code, e.in_bankruptcy_restructuring \
             FROM enterprises e WHERE EXISTS (SELECT 1 FROM records r WHERE r.subject_key = e.uscc \
             AND r.status = 'ACTIVE' AND (r.tier <> 'MINOR' OR r.kind = 'ABNORMAL_OPERATIONS_LISTING') \
             AND r.publicity_end_date > {} AND {}",
            placeholders(b, 1, 1),
            in_json(b, "r.kind", 2)
        );
        let mut cond = |sql: &mut String, clause: &str, v: Val| {
            vals.push(v);
            sql.push_str(&format!(" AND {clause} {}", placeholders(b, vals.len(), 1)));
        };
        if let Some(d) = domain {
            cond(&mut sql, "r.domain =", d.into());
        }
        sql.push(')');
        if let Some(r) = region {
            cond(&mut sql, "e.region_code =", r.into());
        }
        if let Some(a) = after {
            cond(&mut sql, "e.uscc >", a.into());
        }
        sql.push_str(&format!(" ORDER BY e.uscc LIMIT {limit}"));
        let rows = bind_all(sqlx::query(&sql), vals)
            .fetch_all(&self.read)
            .await?;
        let mut pool = Vec::with_capacity(rows.len());
        for row in &rows {
            let uscc: String = row.try_get("uscc")?;
            let uscc = Uscc::parse(&uscc)
                .map_err(|_| Error::Corrupt(format!("enterprise {uscc}: bad uscc")))?;
            pool.push(PoolEntry {
                records: Vec::new(),
                applied_for: Default::default(),
                display_name: row.try_get("display_name")?,
                region_code: row.try_get("region_code")?,
                in_bankruptcy_restructuring: row
                    .try_get::<i64, _>("in_bankruptcy_restructuring")?
                    != 0,
                uscc,
            });
        }
        if pool.is_empty() {
            return Ok(pool);
        }
        let usccs = json_keys(pool.iter().map(|p| p.uscc.as_str()));
        let about_pool = |filter: &str, column: &str, order: &str| {
            let sql = format!(
                "SELECT * FROM {filter} {} {order}",
                in_json(self.backend, column, 1)
            );
            let usccs = usccs.clone();
            async move {
                bind_all(sqlx::query(&sql), vec![usccs])
                    .fetch_all(&self.read)
                    .await
            }
        };
        for row in &about_pool("records WHERE", "subject_key", "ORDER BY id").await? {
            let record = RecordRow::from_row(row)?.into_record()?;
            if let Some(entry) = pool
                .iter_mut()
                .find(|p| p.uscc.as_str() == record.content.subject.key())
            {
                entry.records.push(record);
            }
        }
        let open = format!("repair_applications WHERE {OPEN} AND");
        for row in &about_pool(&open, "uscc", "").await? {
            let app = application_from_row(row)?;
            if let Some(entry) = pool.iter_mut().find(|p| p.uscc == app.uscc) {
                entry.applied_for.extend(app.records);
            }
        }
        Ok(pool)
    }

    /// An enterprise's open (accepted or interviewed) repair applications.
    pub async fn open_repair_applications(&self, uscc: &Uscc) -> Result<Vec<RepairApplication>> {
        sqlx::query(&format!(
            "SELECT * FROM repair_applications WHERE uscc = $1 AND {OPEN} ORDER BY id"
        ))
        .bind(uscc.as_str())
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(application_from_row)
        .collect()
    }

    /// Every record about a subject key (a USCC or a person key), in any status.
    pub async fn records_about_key(&self, key: &str) -> Result<Vec<Record>> {
        super::records::records_with_key(&self.read, key).await
    }
}
