//! The entity registry: enterprises and the roles people hold in them.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::grades::RolesLock;
use super::request_log::{self, Replay, RequestKey};
use super::sql::{bind_all, multi_insert, placeholders, Val};
use super::{now_millis, stored_code, stored_date, Backend, Result, Store};
use crate::domain::codes::{EnterpriseKind, EnterpriseStatus, GradeChangeCause, RoleKind};
use crate::domain::enterprise::{Enterprise, Role};
use crate::domain::ids::{MaskedId, PersonKey, PersonRef, Uscc};

/// Filters for listing enterprises; all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnterpriseFilter {
    pub region_code: Option<String>,
    /// Matches codes starting with this prefix.
    pub industry_code: Option<String>,
    pub status: Option<EnterpriseStatus>,
}

const ENTERPRISE_COLUMNS: &[&str] = &[
    "uscc",
    "display_name",
    "former_names",
    "kind",
    "status",
    "established_date",
    "region_code",
    "industry_code",
    "in_bankruptcy_restructuring",
    "updated_at",
];

const ROLE_COLUMNS: &[&str] = &[
    "uscc",
    "role",
    "person_key",
    "person_name",
    "masked_id",
    "start_date",
    "end_date",
];

fn role_vals(uscc: &Uscc, r: &Role) -> Vec<Val> {
    vec![
        uscc.as_str().into(),
        r.kind.code().into(),
        r.person.key.as_str().into(),
        r.person.name.clone().into(),
        r.person.masked_id.as_str().into(),
        r.start.map(|d| d.to_string()).into(),
        r.end.map(|d| d.to_string()).into(),
    ]
}

fn opt_date(s: Option<String>) -> Result<Option<NaiveDate>> {
    s.as_deref().map(stored_date).transpose()
}

fn role_from_row(row: &AnyRow) -> Result<(String, Role)> {
    let kind: String = row.try_get("role")?;
    Ok((
        row.try_get("uscc")?,
        Role {
            kind: stored_code(&kind, RoleKind::from_code)?,
            person: PersonRef {
                key: PersonKey::from_stored(row.try_get("person_key")?),
                name: row.try_get("person_name")?,
                masked_id: MaskedId::from_stored(row.try_get("masked_id")?),
            },
            start: opt_date(row.try_get("start_date")?)?,
            end: opt_date(row.try_get("end_date")?)?,
        },
    ))
}

fn enterprise_from_row(row: &AnyRow) -> Result<Enterprise> {
    let uscc: String = row.try_get("uscc")?;
    let former: String = row.try_get("former_names")?;
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    let restructuring: i64 = row.try_get("in_bankruptcy_restructuring")?;
    Ok(Enterprise {
        uscc: Uscc::parse(&uscc).map_err(|e| super::Error::Corrupt(e.to_string()))?,
        display_name: row.try_get("display_name")?,
        former_names: serde_json::from_str(&former)
            .map_err(|e| super::Error::Corrupt(e.to_string()))?,
        kind: stored_code(&kind, EnterpriseKind::from_code)?,
        status: stored_code(&status, EnterpriseStatus::from_code)?,
        established: opt_date(row.try_get("established_date")?)?,
        region_code: row.try_get("region_code")?,
        industry_code: row.try_get("industry_code")?,
        in_bankruptcy_restructuring: restructuring != 0,
        roles: Vec::new(),
        updated_at: row.try_get("updated_at")?,
    })
}

/// A stored tenure restated with a corrected name or start date.
struct Correction {
    uscc: Uscc,
    kind: RoleKind,
    person_key: String,
    name: String,
    /// `None` keeps the stored start date.
    start: Option<NaiveDate>,
    /// The start date the row has now: with `end`, which row this is.
    stored_start: Option<NaiveDate>,
    /// Which tenure: the one that ended that day, or (`None`) the current one.
    end: Option<NaiveDate>,
}

/// What a batch does to the stored roles of its enterprises.
struct RolesPlan {
    /// Current roles the batch ends: enterprise, role, person key, end date, and the
    /// start date the batch gives the ended tenure (kept as stored when None).
    ends: Vec<(Uscc, RoleKind, String, NaiveDate, Option<NaiveDate>)>,
    /// Stored tenures the batch restates with a corrected name or start date.
    corrections: Vec<Correction>,
    /// Role rows to insert.
    inserts: Vec<Vec<Val>>,
    /// Legal representatives replaced: the enterprises they still represent may owe a
    /// related-party reason to the one they left.
    former_representatives: Vec<String>,
}

impl RolesPlan {
    /// Whether the batch writes role rows, and so must hold the roles lock alone: a
    /// correction too, since two at once would each match the row as it was read, and
    /// the second would find it changed and correct nothing.
    fn changes_roles(&self) -> bool {
        !self.ends.is_empty() || !self.inserts.is_empty() || !self.corrections.is_empty()
    }
}

impl Store {
    /// Compares the roles `batch` gives with the stored ones: for each enterprise the
    /// roles given without an end date become its current roles; a current role no
    /// longer given is ended `today` rather than deleted, so history is kept.
    async fn plan_roles(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        batch: &[Enterprise],
        today: NaiveDate,
    ) -> Result<RolesPlan> {
        let usccs: Vec<&Uscc> = batch.iter().map(|e| &e.uscc).collect();
        let mut existing: HashMap<String, Vec<Role>> = HashMap::new();
        for chunk in usccs.chunks(1000) {
            let sql = format!(
                "SELECT * FROM enterprise_roles WHERE uscc IN ({})",
                placeholders(self.backend, 1, chunk.len())
            );
            let vals = chunk.iter().map(|u| Val::from(u.as_str())).collect();
            for row in bind_all(sqlx::query(&sql), vals)
                .fetch_all(&mut **tx)
                .await?
            {
                let (uscc, role) = role_from_row(&row)?;
                existing.entry(uscc).or_default().push(role);
            }
        }
        let mut inserts = Vec::new();
        let mut ends = Vec::new();
        let mut corrections = Vec::new();
        // Legal representatives replaced here: the enterprises they still represent may
        // owe a related-party reason to the one they left.
        let mut former_representatives: Vec<String> = Vec::new();
        for e in batch {
            let stored = existing.remove(e.uscc.as_str()).unwrap_or_default();
            let given_current: HashSet<(RoleKind, &str)> = e
                .roles
                .iter()
                .filter(|r| r.end.is_none())
                .map(|r| (r.kind, r.person.key.as_str()))
                .collect();
            // A stored current role the batch gives as ended ends on the given date
            // (that given role is then this row, not another); one it leaves out
            // ends today.
            let mut ended_as_given: Vec<&Role> = Vec::new();
            for old in stored.iter().filter(|r| r.end.is_none()) {
                if !given_current.contains(&(old.kind, old.person.key.as_str())) {
                    if old.kind == RoleKind::LegalRepresentative {
                        former_representatives.push(old.person.key.as_str().to_string());
                    }
                    // The given tenure ending it gives its start date too: the
                    // stored row may lack one (a current legal representative is
                    // registered without one), or the batch corrects it. One that
                    // ended by the day the stored tenure began is another, earlier one
                    // (unless it began that day too: a tenure of one day).
                    // A given tenure already stored as an ended row is that row (the
                    // history sent back as read), not this one; of the others, the
                    // latest ending.
                    let given_end = e
                        .roles
                        .iter()
                        .filter(|r| {
                            r.kind == old.kind
                                && r.person.key == old.person.key
                                && r.end.is_some()
                                && old
                                    .start
                                    .is_none_or(|s| r.end > Some(s) || r.start == Some(s))
                        })
                        .filter(|r| {
                            !stored.iter().any(|s| {
                                s.end.is_some()
                                    && s.kind == r.kind
                                    && s.person.key == r.person.key
                                    && s.end == r.end
                            })
                        })
                        .max_by_key(|r| r.end);
                    let (end, start) = match given_end {
                        Some(given) => {
                            ended_as_given.push(given);
                            (given.end.expect("found with an end"), given.start)
                        }
                        None => (today, None),
                    };
                    ends.push((
                        e.uscc.clone(),
                        old.kind,
                        old.person.key.as_str().to_string(),
                        end,
                        start,
                    ));
                }
            }
            for role in &e.roles {
                if ended_as_given
                    .iter()
                    .any(|given| std::ptr::eq(*given, role))
                {
                    continue;
                }
                // The same person's tenures in one role never end the same day: an
                // ended tenure given with the end of a stored one is that one (sent
                // again, or with its start given or corrected), not another.
                // (A store written before this rule may hold two such rows: the one
                // with the given start is that tenure.)
                let same_tenure = |old: &&Role| {
                    old.kind == role.kind
                        && old.person.key == role.person.key
                        && old.end == role.end
                };
                let known = stored
                    .iter()
                    .filter(same_tenure)
                    .find(|old| role.start.is_none() || old.start == role.start)
                    .or_else(|| stored.iter().find(same_tenure));
                match known {
                    None => inserts.push(role_vals(&e.uscc, role)),
                    // The same tenure restated with a corrected name or start date:
                    // the row takes the correction.
                    Some(old)
                        if old.person.name != role.person.name
                            || role.start.is_some_and(|s| old.start != Some(s)) =>
                    {
                        corrections.push(Correction {
                            uscc: e.uscc.clone(),
                            kind: role.kind,
                            person_key: role.person.key.as_str().to_string(),
                            name: role.person.name.clone(),
                            start: role.start,
                            stored_start: old.start,
                            end: old.end,
                        });
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(RolesPlan {
            ends,
            corrections,
            inserts,
            former_representatives,
        })
    }
}

impl Store {
    /// Inserts or replaces a batch of enterprises atomically. For each enterprise the
    /// roles given without an end date become its current roles; a current role no
    /// longer given is ended `today` rather than deleted, so history is kept.
    pub async fn upsert_enterprises(
        &self,
        batch: Vec<Enterprise>,
        today: NaiveDate,
        request: Option<RequestKey>,
        encode: &(dyn Fn(&[Enterprise]) -> Vec<u8> + Send + Sync),
    ) -> Result<Replay<Vec<Enterprise>>> {
        request_log::retrying_races(|| async {
            // Most batches (a registry sync of names and statuses) change no role:
            // those take the roles lock shared, beside record submissions, and only a
            // batch that turns out to change roles runs again holding it exclusively.
            let first = match self.backend {
                Backend::Postgres => RolesLock::Shared,
                Backend::Sqlite => RolesLock::Exclusive,
            };
            match self
                .upsert_enterprises_once(&batch, today, request.as_ref(), encode, first)
                .await?
            {
                Some(done) => Ok(done),
                None => self
                    .upsert_enterprises_once(
                        &batch,
                        today,
                        request.as_ref(),
                        encode,
                        RolesLock::Exclusive,
                    )
                    .await?
                    .ok_or_else(unreachable_roles_lock),
            }
        })
        .await
    }

    /// One attempt holding the roles lock as `lock`; `None` (nothing written) when
    /// the batch changes roles and `lock` is shared.
    async fn upsert_enterprises_once(
        &self,
        batch: &[Enterprise],
        today: NaiveDate,
        request: Option<&RequestKey>,
        encode: &(dyn Fn(&[Enterprise]) -> Vec<u8> + Send + Sync),
        lock: RolesLock,
    ) -> Result<Option<Replay<Vec<Enterprise>>>> {
        let mut tx = self.begin_write().await?;
        if let Some(key) = request {
            if let Some(bytes) = request_log::find(&mut tx, key).await? {
                return Ok(Some(Replay::Replayed(bytes)));
            }
        }
        self.lock_roles(&mut tx, lock).await?;
        let plan = self.plan_roles(&mut tx, batch, today).await?;
        if lock == RolesLock::Shared && plan.changes_roles() {
            return Ok(None);
        }
        let now = now_millis();
        let rows = batch
            .iter()
            .map(|e| {
                vec![
                    e.uscc.as_str().into(),
                    e.display_name.clone().into(),
                    serde_json::to_string(&e.former_names)
                        .expect("strings serialize")
                        .into(),
                    e.kind.code().into(),
                    e.status.code().into(),
                    e.established.map(|d| d.to_string()).into(),
                    e.region_code.clone().into(),
                    e.industry_code.clone().into(),
                    (e.in_bankruptcy_restructuring as i64).into(),
                    now.into(),
                ]
            })
            .collect();
        let upsert = " ON CONFLICT (uscc) DO UPDATE SET display_name = excluded.display_name, \
             former_names = excluded.former_names, kind = excluded.kind, status = excluded.status, \
             established_date = excluded.established_date, region_code = excluded.region_code, \
             industry_code = excluded.industry_code, \
             in_bankruptcy_restructuring = excluded.in_bankruptcy_restructuring, \
             updated_at = excluded.updated_at";
        for (sql, vals) in multi_insert(self.backend, "enterprises", ENTERPRISE_COLUMNS, rows) {
            bind_all(sqlx::query(&(sql + upsert)), vals)
                .execute(&mut *tx)
                .await?;
        }

        for (uscc, kind, person_key, end, start) in &plan.ends {
            sqlx::query(
                "UPDATE enterprise_roles SET end_date = $1, start_date = COALESCE($2, start_date) \
                 WHERE uscc = $3 AND role = $4 AND person_key = $5 AND end_date IS NULL",
            )
            .bind(end.to_string())
            .bind(start.map(|s| s.to_string()))
            .bind(uscc.as_str())
            .bind(kind.code())
            .bind(person_key.as_str())
            .execute(&mut *tx)
            .await?;
        }
        for c in &plan.corrections {
            // The row by its dates as stored; NULL matches nothing with `=`.
            let mut dates = Vec::new();
            let mut vals = Vec::new();
            for (column, date) in [("end_date", c.end), ("start_date", c.stored_start)] {
                match date {
                    None => dates.push(format!("{column} IS NULL")),
                    Some(d) => {
                        dates.push(format!("{column} = ${}", 6 + vals.len()));
                        vals.push(d.to_string());
                    }
                }
            }
            let sql = format!(
                "UPDATE enterprise_roles SET person_name = $1, \
                 start_date = COALESCE($2, start_date) \
                 WHERE uscc = $3 AND role = $4 AND person_key = $5 AND {}",
                dates.join(" AND ")
            );
            let mut update = sqlx::query(&sql)
                .bind(c.name.as_str())
                .bind(c.start.map(|d| d.to_string()))
                .bind(c.uscc.as_str())
                .bind(c.kind.code())
                .bind(c.person_key.as_str());
            for v in vals {
                update = update.bind(v);
            }
            update.execute(&mut *tx).await?;
        }
        let inserts = plan.inserts;
        let former_representatives = plan.former_representatives;
        for (sql, vals) in multi_insert(self.backend, "enterprise_roles", ROLE_COLUMNS, inserts) {
            bind_all(sqlx::query(&sql), vals).execute(&mut *tx).await?;
        }
        let usccs: Vec<&Uscc> = batch.iter().map(|e| &e.uscc).collect();
        let mut targets: super::Targets = usccs
            .iter()
            .map(|u| ((*u).clone(), (GradeChangeCause::RegistryChanged, None)))
            .collect();
        let still_represented = self
            .represented_by(&mut tx, former_representatives.iter().map(String::as_str))
            .await?;
        for u in still_represented.into_values().flatten() {
            targets
                .entry(super::grades::uscc_of(u)?)
                .or_insert((GradeChangeCause::RelatedPartyChanged, None));
        }
        let regraded = self.regrade(&mut tx, targets, true, today).await?;
        let stored = enterprises_in(self.backend, &mut tx, &usccs).await?;
        if let Some(key) = request {
            request_log::remember(&mut tx, key, encode(&stored)).await?;
        }
        self.commit_regraded(tx, &regraded).await?;
        Ok(Some(Replay::Fresh(stored)))
    }

    /// One enterprise with its roles.
    pub async fn get_enterprise(&self, uscc: &Uscc) -> Result<Option<Enterprise>> {
        let mut conn = self.read.acquire().await?;
        Ok(enterprises_in(self.backend, &mut conn, &[uscc])
            .await?
            .pop())
    }

    /// Which of `usccs` are in the registry.
    pub(super) async fn known_usccs(
        backend: super::Backend,
        conn: &mut AnyConnection,
        usccs: &[&Uscc],
    ) -> Result<HashSet<String>> {
        let mut known = HashSet::new();
        for chunk in usccs.chunks(1000) {
            let sql = format!(
                "SELECT uscc FROM enterprises WHERE uscc IN ({})",
                placeholders(backend, 1, chunk.len())
            );
            let vals = chunk.iter().map(|u| Val::from(u.as_str())).collect();
            for row in bind_all(sqlx::query(&sql), vals)
                .fetch_all(&mut *conn)
                .await?
            {
                known.insert(row.try_get::<String, _>("uscc")?);
            }
        }
        Ok(known)
    }

    /// A page of enterprises in USCC order, starting after `after`.
    pub async fn list_enterprises(
        &self,
        filter: &EnterpriseFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Enterprise>> {
        let mut sql = String::from("SELECT uscc FROM enterprises WHERE 1 = 1");
        let mut vals: Vec<Val> = Vec::new();
        let mut cond = |sql: &mut String, clause: &str, v: Val| {
            vals.push(v);
            sql.push_str(&clause.replace('?', &format!("${}", vals.len())));
        };
        if let Some(region) = &filter.region_code {
            cond(&mut sql, " AND region_code = ?", region.clone().into());
        }
        if let Some(industry) = &filter.industry_code {
            cond(
                &mut sql,
                " AND industry_code LIKE ?",
                format!("{industry}%").into(),
            );
        }
        if let Some(status) = filter.status {
            cond(&mut sql, " AND status = ?", status.code().into());
        }
        if let Some(after) = after {
            cond(&mut sql, " AND uscc > ?", after.to_string().into());
        }
        sql.push_str(&format!(" ORDER BY uscc LIMIT {limit}"));
        let usccs: Vec<Uscc> = bind_all(sqlx::query(&sql), vals)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|row| {
                let code: String = row.try_get("uscc")?;
                Uscc::parse(&code).map_err(|e| super::Error::Corrupt(e.to_string()))
            })
            .collect::<Result<_>>()?;
        let refs: Vec<&Uscc> = usccs.iter().collect();
        let mut conn = self.read.acquire().await?;
        enterprises_in(self.backend, &mut conn, &refs).await
    }

    /// How many enterprises the registry holds.
    pub async fn count_enterprises(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM enterprises")
            .fetch_one(&self.read)
            .await?)
    }
}

/// Loads enterprises with their roles, in the order of `usccs`; unknown ones are skipped.
pub(super) async fn enterprises_in(
    backend: super::Backend,
    conn: &mut AnyConnection,
    usccs: &[&Uscc],
) -> Result<Vec<Enterprise>> {
    let mut found: HashMap<String, Enterprise> = HashMap::new();
    for chunk in usccs.chunks(1000) {
        let vals: Vec<Val> = chunk.iter().map(|u| Val::from(u.as_str())).collect();
        let sql = format!(
            "SELECT * FROM enterprises WHERE uscc IN ({})",
            placeholders(backend, 1, chunk.len())
        );
        for row in bind_all(sqlx::query(&sql), vals.clone())
            .fetch_all(&mut *conn)
            .await?
        {
            let e = enterprise_from_row(&row)?;
            found.insert(e.uscc.as_str().to_string(), e);
        }
        // A role without a start date first on both backends (PostgreSQL sorts NULL last).
        let sql = format!(
            "SELECT * FROM enterprise_roles WHERE uscc IN ({}) \
                 ORDER BY uscc, role, start_date IS NOT NULL, start_date, person_key",
            placeholders(backend, 1, chunk.len())
        );
        for row in bind_all(sqlx::query(&sql), vals)
            .fetch_all(&mut *conn)
            .await?
        {
            let (uscc, role) = role_from_row(&row)?;
            if let Some(e) = found.get_mut(&uscc) {
                e.roles.push(role);
            }
        }
    }
    Ok(usccs
        .iter()
        .filter_map(|u| found.remove(u.as_str()))
        .collect())
}

/// An exclusive attempt never asks for the lock again; if it did, the call fails as a
/// race rather than looping.
fn unreachable_roles_lock() -> super::Error {
    super::Error::Unavailable(sqlx::Error::Protocol(
        "registry upsert asked twice for the exclusive roles lock".into(),
    ))
}
