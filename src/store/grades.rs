//! Credit grades: regrading enterprises inside the transaction that changed their
//! inputs, the grade history watchers tail, and the reads of the grade service.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::NaiveDate;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::sql::{
    bind_all, fetch_json, in_json, json_keys, multi_insert, placeholders, select_json, Val,
};
use super::{now_millis, stored_code, stored_date, Backend, Error, Result, Store};
use crate::domain::codes::{
    GradeChangeCause, RecordKind, RecordStatus, RegulatoryDomain, RoleKind, Tier,
};
use crate::domain::grading::{
    grade, Fact, Grade, GradeChange, GradeInput, Graded, Reason, StoredGrade,
};
use crate::domain::ids::Uscc;
use crate::domain::record::Attributes;

/// What one regrade wrote.
#[derive(Debug, Default)]
pub(super) struct Regraded {
    /// History entries written.
    pub changes: usize,
    /// (uscc, model) of every grade rewritten.
    pub rewritten: Vec<(String, String)>,
}

/// Why each enterprise is being regraded: its cause and the record behind it, if any.
pub type Targets = BTreeMap<Uscc, (GradeChangeCause, Option<String>)>;

/// How a transaction holds the roles lock (see [`Store::lock_roles`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RolesLock {
    /// Grading: reads who represents whom.
    Shared,
    /// Changing roles.
    Exclusive,
}

const GRADE_COLUMNS: &[&str] = &[
    "uscc",
    "model",
    "model_version",
    "grade",
    "score",
    "reasons",
    "computed_at",
];
const CHANGE_COLUMNS: &[&str] = &[
    "uscc",
    "model",
    "model_version",
    "previous_grade",
    "previous_score",
    "grade",
    "score",
    "cause",
    "cause_record",
    "changed_at",
];
/// Enterprises regraded per transaction in reclassify; bounds its memory.
const CHUNK: usize = 500;

/// Pages a PostgreSQL reclassify regrades at once.
const RECLASSIFY_WORKERS: usize = 3;

/// What [`fact_from_json`] reads of a record. Attributes are only needed (and parsed)
/// for spot-check results.
const FACT_COLUMNS: &[&str] = &[
    "subject_key",
    "id",
    "kind",
    "tier",
    "domain",
    "decision_date",
    "publicity_end_date",
    "status",
    "CASE WHEN kind = 'SPOT_CHECK_RESULT' THEN attributes END",
    "expiry_graded",
];
type FactRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
);

/// (subject key, fact, whether the end of its publicity window was graded) from a row
/// of [`FACT_COLUMNS`].
fn fact_from_json(row: FactRow) -> Result<(String, Fact, bool)> {
    let (subject, id, kind, tier, domain, decision, end, status, attributes, end_graded) = row;
    let spot_check_outcome = match attributes {
        Some(a) => {
            serde_json::from_str::<Attributes>(&a)
                .map_err(|e| Error::Corrupt(format!("record {id}: attributes: {e}")))?
                .spot_check_outcome
        }
        None => None,
    };
    Ok((
        subject,
        Fact {
            kind: stored_code(&kind, RecordKind::from_code)?,
            tier: stored_code(&tier, Tier::from_code)?,
            domain: stored_code(&domain, RegulatoryDomain::from_code)?,
            decision_date: stored_date(&decision)?,
            publicity_end: stored_date(&end)?,
            status: stored_code(&status, RecordStatus::from_code)?,
            spot_check_outcome,
            id,
        },
        end_graded != 0,
    ))
}

pub(super) fn uscc_of(s: String) -> Result<Uscc> {
    Uscc::parse(&s).map_err(|e| Error::Corrupt(e.to_string()))
}

fn grade_from_row(row: &AnyRow) -> Result<StoredGrade> {
    let grade: String = row.try_get("grade")?;
    let reasons: String = row.try_get("reasons")?;
    Ok(StoredGrade {
        uscc: uscc_of(row.try_get("uscc")?)?,
        model: row.try_get("model")?,
        model_version: row.try_get("model_version")?,
        graded: Graded {
            grade: stored_code(&grade, Grade::from_code)?,
            score: row.try_get::<i64, _>("score")? as i32,
            reasons: serde_json::from_str::<Vec<Reason>>(&reasons)
                .map_err(|e| Error::Corrupt(e.to_string()))?,
        },
        computed_at: row.try_get("computed_at")?,
    })
}

fn change_from_row(row: &AnyRow) -> Result<GradeChange> {
    let prev_grade: Option<String> = row.try_get("previous_grade")?;
    let prev_score: Option<i64> = row.try_get("previous_score")?;
    let grade: String = row.try_get("grade")?;
    let cause: String = row.try_get("cause")?;
    Ok(GradeChange {
        seq: row.try_get("seq")?,
        uscc: uscc_of(row.try_get("uscc")?)?,
        model: row.try_get("model")?,
        model_version: row.try_get("model_version")?,
        previous: match (prev_grade, prev_score) {
            (Some(g), Some(s)) => Some((stored_code(&g, Grade::from_code)?, s as i32)),
            _ => None,
        },
        grade: stored_code(&grade, Grade::from_code)?,
        score: row.try_get::<i64, _>("score")? as i32,
        cause: stored_code(&cause, GradeChangeCause::from_code)?,
        cause_record: row.try_get("cause_record")?,
        changed_at: row.try_get("changed_at")?,
    })
}

impl Store {
    /// Regrades `targets` under every model inside `tx`, writing the grades that changed
    /// and a history entry for each. With `related`, enterprises sharing a legal
    /// representative with a target are regraded too (their related-party reasons may
    /// depend on it). Call [`Store::after_regrade`] with the result once `tx` commits.
    pub(super) async fn regrade(
        &self,
        tx: &mut Transaction<'static, Any>,
        mut targets: Targets,
        related: bool,
        today: NaiveDate,
    ) -> Result<Regraded> {
        if targets.is_empty() {
            return Ok(Regraded::default());
        }
        let b = self.backend;
        self.lock_roles(tx, RolesLock::Shared).await?;
        let (reps, represented) = self.related_parties(tx, &mut targets, related).await?;
        // Transactions grading the same enterprise take turns, as SQLite's one writer
        // makes them: side by side, each would miss the other's uncommitted records and
        // the later upsert would keep a grade blind to the earlier commit. Locked before
        // the records are read, so that the reads see all that committed before.
        self.lock_grading(tx, targets.keys().map(Uscc::as_str))
            .await?;

        // Everything about the targets and their representatives; of the other
        // enterprises those representatives run, only what can make them hard-D.
        let mut subjects: BTreeSet<&str> = targets.keys().map(Uscc::as_str).collect();
        subjects.extend(reps.values().map(String::as_str));
        let others: BTreeSet<&str> = represented
            .values()
            .flatten()
            .map(String::as_str)
            .filter(|u| !subjects.contains(u))
            .collect();
        let mut hard_d_kinds: Vec<&str> = self
            .models
            .all()
            .iter()
            .flat_map(|m| m.hard_d_kinds())
            .map(|k| k.code())
            .collect();
        hard_d_kinds.sort();
        hard_d_kinds.dedup();
        let mut records: HashMap<String, Vec<Fact>> = HashMap::new();
        let facts = fetch_json(
            &mut **tx,
            &select_json(
                b,
                FACT_COLUMNS,
                &format!("records WHERE {}", in_json(b, "subject_key", 1)),
            ),
            vec![json_keys(subjects)],
        )
        .await?;
        let other_facts = fetch_json(
            &mut **tx,
            &select_json(
                b,
                FACT_COLUMNS,
                &format!(
                    "records WHERE {} AND status = '{}' AND {}",
                    in_json(b, "subject_key", 1),
                    RecordStatus::Active.code(),
                    in_json(b, "kind", 2)
                ),
            ),
            vec![json_keys(others), json_keys(hard_d_kinds)],
        )
        .await?;
        // Records this regrade counts as still public whose window's end was graded
        // already: a regrade dated before that end's (a call that began before
        // midnight, a replica's clock behind) counts them again, so the end is
        // graded again once due; marked, it never would be.
        let mut end_ungraded: Vec<String> = Vec::new();
        for row in facts.into_iter().chain(other_facts) {
            let (subject, fact, end_graded) = fact_from_json(row)?;
            if end_graded && fact.status == RecordStatus::Active && fact.publicity_end > today {
                end_ungraded.push(fact.id.clone());
            }
            records.entry(subject).or_default().push(fact);
        }
        if !end_ungraded.is_empty() {
            let sql = format!(
                "UPDATE records SET expiry_graded = 0 WHERE {}",
                in_json(b, "id", 1)
            );
            bind_all(
                sqlx::query(&sql),
                vec![json_keys(end_ungraded.iter().map(String::as_str))],
            )
            .execute(&mut **tx)
            .await?;
        }

        // What is stored now.
        let mut current: HashMap<(String, String), (Grade, i32, String, String)> = HashMap::new();
        let rows: Vec<(String, String, String, String, i64, String)> = fetch_json(
            &mut **tx,
            &select_json(
                b,
                &[
                    "uscc",
                    "model",
                    "model_version",
                    "grade",
                    "score",
                    "reasons",
                ],
                &format!("credit_grades WHERE {}", in_json(b, "uscc", 1)),
            ),
            vec![json_keys(targets.keys().map(Uscc::as_str))],
        )
        .await?;
        for (uscc, model, version, grade, score, reasons) in rows {
            current.insert(
                (uscc, model),
                (
                    stored_code(&grade, Grade::from_code)?,
                    score as i32,
                    version,
                    reasons,
                ),
            );
        }

        // Per model and legal representative: the hard-D records of the enterprises that
        // person represents, computed once rather than per target.
        let hard_d_by_rep: Vec<HashMap<&str, Vec<(&str, String)>>> = self
            .models
            .all()
            .iter()
            .map(|model| {
                let kinds = model.hard_d_kinds();
                let mut by_rep: HashMap<&str, Vec<(&str, String)>> = HashMap::new();
                for (key, usccs) in &represented {
                    for u in usccs {
                        for r in records.get(u).into_iter().flatten() {
                            if kinds.contains(&r.kind) && r.status_on(today) == RecordStatus::Active
                            {
                                by_rep
                                    .entry(key.as_str())
                                    .or_default()
                                    .push((u.as_str(), r.id.clone()));
                            }
                        }
                    }
                }
                by_rep
            })
            .collect();
        let now = now_millis();
        let empty: Vec<Fact> = Vec::new();
        let mut grade_rows = Vec::new();
        let mut change_rows = Vec::new();
        let mut rewritten = Vec::new();
        // Model index -> enterprises whose grade the model's current version confirmed.
        let mut confirmed: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
        for (uscc, (cause, cause_record)) in &targets {
            let own = records.get(uscc.as_str()).unwrap_or(&empty);
            let rep = reps.get(uscc.as_str());
            let rep_records = rep.and_then(|k| records.get(k)).unwrap_or(&empty);
            for (m, model) in self.models.all().iter().enumerate() {
                let represented_hard_d: Vec<String> = rep
                    .and_then(|k| hard_d_by_rep[m].get(k.as_str()))
                    .into_iter()
                    .flatten()
                    .filter(|(other, _)| *other != uscc.as_str())
                    .map(|(_, id)| id.clone())
                    .collect();
                let graded = grade(
                    model,
                    GradeInput {
                        own,
                        legal_representative: rep_records,
                        represented_hard_d: &represented_hard_d,
                        today,
                    },
                );
                let reasons = serde_json::to_string(&graded.reasons).expect("reasons serialize");
                let before = current.get(&(uscc.as_str().to_string(), model.name.clone()));
                if let Some((g, s, v, r)) = before {
                    if *g == graded.grade && *s == graded.score && *r == reasons {
                        if *v != model.version {
                            // A new model version that reaches the same grade, score and
                            // reasons: only the version and time move. Not a change of
                            // grade or score, so no history entry.
                            rewritten.push((uscc.as_str().to_string(), model.name.clone()));
                            confirmed.entry(m).or_default().push(uscc.as_str());
                        }
                        continue;
                    }
                }
                rewritten.push((uscc.as_str().to_string(), model.name.clone()));
                grade_rows.push(vec![
                    uscc.as_str().into(),
                    model.name.clone().into(),
                    model.version.clone().into(),
                    graded.grade.code().into(),
                    (graded.score as i64).into(),
                    reasons.into(),
                    now.into(),
                ]);
                // History holds changes of grade or score (the contract's
                // `GradeChange`); new reasons alone rewrite the grade only.
                let changed =
                    before.is_none_or(|(g, s, _, _)| *g != graded.grade || *s != graded.score);
                if changed {
                    change_rows.push(vec![
                        uscc.as_str().into(),
                        model.name.clone().into(),
                        model.version.clone().into(),
                        before.map(|b| b.0.code().to_string()).into(),
                        Val::OptInt(before.map(|b| b.1 as i64)),
                        graded.grade.code().into(),
                        (graded.score as i64).into(),
                        cause.code().into(),
                        cause_record.clone().into(),
                        now.into(),
                    ]);
                }
            }
        }
        let upsert =
            " ON CONFLICT (uscc, model) DO UPDATE SET model_version = excluded.model_version, \
             grade = excluded.grade, score = excluded.score, reasons = excluded.reasons, \
             computed_at = excluded.computed_at";
        for (sql, vals) in multi_insert(b, "credit_grades", GRADE_COLUMNS, grade_rows) {
            bind_all(sqlx::query(&(sql + upsert)), vals)
                .execute(&mut **tx)
                .await?;
        }
        // One statement per model for the confirmed grades. Neither column is indexed,
        // so PostgreSQL updates them in place (HOT) on pages with room (migration 0010).
        for (m, usccs) in confirmed {
            let model = &self.models.all()[m];
            let sql = format!(
                "UPDATE credit_grades SET model_version = {}, computed_at = {} WHERE model = {} AND {}",
                placeholders(b, 1, 1),
                placeholders(b, 2, 1),
                placeholders(b, 3, 1),
                in_json(b, "uscc", 4)
            );
            bind_all(
                sqlx::query(&sql),
                vec![
                    model.version.clone().into(),
                    now.into(),
                    model.name.clone().into(),
                    json_keys(usccs),
                ],
            )
            .execute(&mut **tx)
            .await?;
        }
        let changes = change_rows.len();
        if changes > 0 && b == Backend::Postgres {
            // History sequence numbers must become visible in order, so a watcher that
            // has seen N never later finds a smaller one: writers of history take turns.
            sqlx::query("SELECT pg_advisory_xact_lock(728301)")
                .execute(&mut **tx)
                .await?;
        }
        for (sql, vals) in multi_insert(b, "grade_changes", CHANGE_COLUMNS, change_rows) {
            bind_all(sqlx::query(&sql), vals).execute(&mut **tx).await?;
        }
        // Whatever regrades an enterprise may have taken it off the serious-dishonesty
        // list; a remediation certificate must not outlive that.
        self.supersede_remediations(tx, targets.keys().map(Uscc::as_str), today)
            .await?;
        Ok(Regraded { changes, rewritten })
    }

    /// What a committed regrade means for readers: evict the rewritten grades from the
    /// cache and wake watchers if history grew.
    /// Commits `tx`, which regraded as `regraded` says, and then evicts the rewritten
    /// grades from this process's cache and wakes the watchers, even when the caller
    /// goes away while the commit is under way: the commit may still land, and this
    /// replica must not go on serving the grades it replaced.
    pub(super) async fn commit_regraded(
        &self,
        tx: Transaction<'static, Any>,
        regraded: &Regraded,
    ) -> Result<()> {
        struct AfterCommit<'a>(&'a Store, &'a Regraded);
        impl Drop for AfterCommit<'_> {
            fn drop(&mut self) {
                // After a failed commit this only forgets grades that were still right.
                // Dropped mid-commit, it runs before the commit lands: a reader may then
                // cache the old grade again, but only for the cache's lifetime.
                self.0.after_regrade(self.1);
            }
        }
        let _after = AfterCommit(self, regraded);
        self.commit(tx).await
    }

    pub(super) fn after_regrade(&self, regraded: &Regraded) {
        self.grade_cache.evict(&regraded.rewritten);
        if regraded.changes > 0 {
            self.grade_events.send_modify(|n| *n += 1);
        }
    }

    /// (uscc, person key) of every current legal representative whose `column`
    /// (`uscc` or `person_key`) is one of `keys`.
    async fn legal_representations(
        &self,
        tx: &mut Transaction<'static, Any>,
        column: &str,
        keys: impl IntoIterator<Item = &str>,
    ) -> Result<Vec<(String, String)>> {
        let b = self.backend;
        fetch_json(
            &mut **tx,
            &select_json(
                b,
                &["uscc", "person_key"],
                &format!(
                    "enterprise_roles WHERE role = '{}' AND end_date IS NULL AND {}",
                    RoleKind::LegalRepresentative.code(),
                    in_json(b, column, 1)
                ),
            ),
            vec![json_keys(keys)],
        )
        .await
    }

    /// The current legal representatives of `targets` and everyone they represent;
    /// with `related`, those other enterprises join `targets` first, naming the record
    /// that reached them where one did.
    async fn related_parties(
        &self,
        tx: &mut Transaction<'static, Any>,
        targets: &mut Targets,
        related: bool,
    ) -> Result<(HashMap<String, String>, HashMap<String, Vec<String>>)> {
        let reps = self
            .legal_representatives(tx, targets.keys().map(Uscc::as_str))
            .await?;
        let represented = self
            .represented_by(tx, reps.values().map(String::as_str))
            .await?;
        if !related {
            return Ok((reps, represented));
        }
        // person key -> a record that changed one of the person's enterprises.
        let mut causes: HashMap<&str, String> = HashMap::new();
        for (uscc, (_, record)) in targets.iter() {
            if let (Some(person), Some(record)) = (reps.get(uscc.as_str()), record) {
                // The least id, so the same change names the same record every time.
                let cause = causes
                    .entry(person.as_str())
                    .or_insert_with(|| record.clone());
                if record < cause {
                    *cause = record.clone();
                }
            }
        }
        for (person, usccs) in &represented {
            let record = causes.get(person.as_str()).cloned();
            for u in usccs {
                targets
                    .entry(uscc_of(u.clone())?)
                    .or_insert((GradeChangeCause::RelatedPartyChanged, record.clone()));
            }
        }
        let reps = self
            .legal_representatives(tx, targets.keys().map(Uscc::as_str))
            .await?;
        Ok((reps, represented))
    }

    /// PostgreSQL: takes the roles lock for the rest of `tx`. Who represents which
    /// enterprise decides what a grade counts and which grades a change reaches, so
    /// a transaction that changes roles (exclusive) and one that grades (shared) never
    /// run side by side: each would grade without the other's uncommitted half (a
    /// record about a person, the role that makes him an enterprise's representative).
    /// Taken before reading any role, and by role changes before anything else, so it
    /// is never waited for while holding what the other side needs. A no-op on
    /// SQLite, whose one writer already serialises them.
    pub(super) async fn lock_roles(
        &self,
        tx: &mut Transaction<'static, Any>,
        mode: RolesLock,
    ) -> Result<()> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        let sql = match mode {
            RolesLock::Shared => "SELECT pg_advisory_xact_lock_shared(728305)",
            RolesLock::Exclusive => "SELECT pg_advisory_xact_lock(728305)",
        };
        sqlx::query(sql).execute(&mut **tx).await?;
        Ok(())
    }

    /// PostgreSQL: takes the grading locks of the enterprises `usccs` for the rest of
    /// `tx`, in one sorted statement, so that two transactions locking at once cannot
    /// each hold what the other waits for. A no-op on SQLite.
    pub(super) async fn lock_grading<'k>(
        &self,
        tx: &mut Transaction<'static, Any>,
        usccs: impl IntoIterator<Item = &'k str>,
    ) -> Result<()> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        let keys = serde_json::Value::from_iter(usccs).to_string();
        if keys == "[]" {
            return Ok(());
        }
        sqlx::query(
            "SELECT count(pg_advisory_xact_lock(728303, h)) FROM \
             (SELECT DISTINCT hashtext(value) AS h \
              FROM json_array_elements_text($1::json) ORDER BY h) AS keys",
        )
        .bind(keys)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn legal_representatives(
        &self,
        tx: &mut Transaction<'static, Any>,
        usccs: impl IntoIterator<Item = &str>,
    ) -> Result<HashMap<String, String>> {
        let rows = self.legal_representations(tx, "uscc", usccs).await?;
        Ok(rows.into_iter().collect())
    }

    /// person key -> the enterprises (USCCs) that person currently represents as legal
    /// representative, in one look-up for all of `person_keys`.
    pub(super) async fn represented_by(
        &self,
        tx: &mut Transaction<'static, Any>,
        person_keys: impl IntoIterator<Item = &str>,
    ) -> Result<HashMap<String, Vec<String>>> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for (uscc, key) in self
            .legal_representations(tx, "person_key", person_keys)
            .await?
        {
            out.entry(key).or_default().push(uscc);
        }
        Ok(out)
    }

    /// A receiver that changes whenever this process writes grade history.
    pub fn grade_events(&self) -> tokio::sync::watch::Receiver<u64> {
        self.grade_events.subscribe()
    }

    /// Regrades every enterprise under every model, a page at a time in USCC order
    /// (memory stays bounded by the pages in flight), recording changes as caused by a
    /// model change. Each page is its own transaction, so an interrupted run leaves every
    /// page either done or untouched, and running again finishes the job. Calls
    /// `progress(done)` as pages finish. Returns (enterprises, history entries).
    pub async fn reclassify(
        &self,
        today: NaiveDate,
        progress: &(dyn Fn(usize) + Send + Sync),
    ) -> Result<(usize, usize)> {
        // Windows that ended before the scheduler saw them are graded as what they
        // are first; the model change would otherwise take the credit for them.
        self.regrade_due(today).await?;
        // The tables a regrade reads and writes.
        self.analyze_tables(&[
            "enterprises",
            "enterprise_roles",
            "records",
            "credit_grades",
        ])
        .await?;
        // PostgreSQL regrades pages side by side: one page keeps a single server process
        // busy while this one grades. SQLite has one writer, so more would only queue.
        let workers = match self.backend {
            Backend::Sqlite => 1,
            Backend::Postgres => RECLASSIFY_WORKERS,
        };
        let mut running: tokio::task::JoinSet<Result<(usize, usize)>> = Default::default();
        let mut after = String::new();
        let (mut done, mut changes) = (0, 0);
        // A page's task ends only by finishing or panicking; a panic is passed on.
        let mut finish = |joined: Result<Result<(usize, usize)>, tokio::task::JoinError>| {
            let (n, c) = joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
            done += n;
            changes += c;
            progress(done);
            Ok::<_, Error>(())
        };
        loop {
            let page: Vec<String> = sqlx::query_scalar(&format!(
                "SELECT uscc FROM enterprises WHERE uscc > $1 ORDER BY uscc LIMIT {CHUNK}"
            ))
            .bind(&after)
            .fetch_all(&self.read)
            .await?;
            let Some(last) = page.last() else { break };
            after = last.clone();
            let targets = page
                .into_iter()
                .map(|u| Ok((uscc_of(u)?, (GradeChangeCause::ModelChanged, None))))
                .collect::<Result<Targets>>()?;
            if running.len() >= workers {
                if let Some(joined) = running.join_next().await {
                    finish(joined)?;
                }
            }
            let store = self.clone();
            running.spawn(async move {
                let n = targets.len();
                let mut tx = store.begin_write().await?;
                let regraded = store.regrade(&mut tx, targets, false, today).await?;
                tx.commit().await?;
                store.after_regrade(&regraded);
                Ok((n, regraded.changes))
            });
        }
        while let Some(joined) = running.join_next().await {
            finish(joined)?;
        }
        Ok((done, changes))
    }

    /// Regrades the subjects of records whose publicity window has ended by `today` and
    /// that were not yet regraded for it. Returns how many records were processed.
    pub async fn regrade_due(&self, today: NaiveDate) -> Result<usize> {
        let mut processed = 0;
        loop {
            let mut tx = self.begin_write().await?;
            let rows = sqlx::query(
                "SELECT id, subject_type, subject_key FROM records WHERE status = 'ACTIVE' \
                 AND expiry_graded = 0 AND publicity_end_date <= $1 ORDER BY publicity_end_date, id LIMIT 500",
            )
            .bind(today.to_string())
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                return Ok(processed);
            }
            let ids: Vec<String> = rows
                .iter()
                .map(|row| row.try_get("id"))
                .collect::<std::result::Result<_, _>>()?;
            // Marked before the regrade, for two reasons on PostgreSQL: the rows are
            // locked before the enterprises' locks, the order writers take them in (the
            // other order could deadlock with a revision); and a record revised since
            // it was read (its window moved on) is left for when its new window ends.
            // Only the rows this pass marked are its to regrade: every replica runs the
            // scheduler, and one that read the same rows finds them marked once the
            // first commits, and moves on.
            let sql = format!(
                "UPDATE records SET expiry_graded = 1 WHERE {} AND expiry_graded = 0 \
                 AND status = 'ACTIVE' AND publicity_end_date <= {} RETURNING id",
                in_json(self.backend, "id", 1),
                placeholders(self.backend, 2, 1)
            );
            let marked: HashSet<String> = bind_all(
                sqlx::query(&sql),
                vec![
                    json_keys(ids.iter().map(String::as_str)),
                    today.to_string().into(),
                ],
            )
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| row.try_get("id"))
            .collect::<std::result::Result<_, _>>()?;
            let mut targets = Targets::new();
            let mut persons: Vec<(String, String)> = Vec::new();
            let mut ended: Vec<(Uscc, String)> = Vec::new();
            for row in &rows {
                let id: String = row.try_get("id")?;
                if !marked.contains(&id) {
                    continue;
                }
                let kind: String = row.try_get("subject_type")?;
                let key: String = row.try_get("subject_key")?;
                if kind == "enterprise" {
                    // The least id, as for submissions: whichever of several records
                    // ending together is read last, the change names the same one.
                    let uscc = uscc_of(key)?;
                    if targets
                        .get(&uscc)
                        .and_then(|(_, r)| r.as_ref())
                        .is_none_or(|r| id < *r)
                    {
                        targets.insert(
                            uscc.clone(),
                            (GradeChangeCause::PublicityEnded, Some(id.clone())),
                        );
                    }
                    ended.push((uscc, id));
                } else {
                    persons.push((key, id));
                }
            }
            // Who represents whom, read under the roles lock like every grading write.
            self.lock_roles(&mut tx, RolesLock::Shared).await?;
            let represented = self
                .represented_by(&mut tx, persons.iter().map(|(key, _)| key.as_str()))
                .await?;
            for (key, id) in &persons {
                for u in represented.get(key).into_iter().flatten() {
                    targets
                        .entry(uscc_of(u.clone())?)
                        .or_insert((GradeChangeCause::PublicityEnded, Some(id.clone())));
                }
            }
            let regraded = self.regrade(&mut tx, targets, true, today).await?;
            self.lift_ended_suspensions(&mut tx, &ended, today).await?;
            tx.commit().await?;
            self.after_regrade(&regraded);
            processed += marked.len();
        }
    }

    /// The stored grades of `usccs` under `model`, in input order (None where ungraded).
    pub async fn grades(&self, usccs: &[&Uscc], model: &str) -> Result<Vec<Option<StoredGrade>>> {
        let cache = &self.grade_cache;
        let mut found: HashMap<String, StoredGrade> = HashMap::new();
        let mut missing: Vec<&Uscc> = Vec::new();
        for u in usccs {
            match cache
                .enabled()
                .then(|| cache.get(u.as_str(), model))
                .flatten()
            {
                Some(g) => {
                    found.insert(u.as_str().to_string(), g);
                }
                None => missing.push(u),
            }
        }
        let generation = cache.generation();
        let mut read = Vec::new();
        if let [one] = missing[..] {
            // The single-enterprise look-up, the hot path, stays prepared (uncached
            // GetCreditGrade on SQLite 13.8k -> 20.3k/s).
            if let Some(row) =
                sqlx::query("SELECT * FROM credit_grades WHERE model = $1 AND uscc = $2")
                    .bind(model)
                    .bind(one.as_str())
                    .fetch_optional(&self.read)
                    .await?
            {
                read.push(grade_from_row(&row)?);
            }
        } else if !missing.is_empty() {
            let b = self.backend;
            let rows: Vec<(String, String, String, String, i64, String, i64)> = fetch_json(
                &self.read,
                &select_json(
                    b,
                    GRADE_COLUMNS,
                    &format!(
                        "credit_grades WHERE model = {} AND {}",
                        placeholders(b, 1, 1),
                        in_json(b, "uscc", 2)
                    ),
                ),
                vec![model.into(), json_keys(missing.iter().map(|u| u.as_str()))],
            )
            .await?;
            for (uscc, model, model_version, grade, score, reasons, computed_at) in rows {
                read.push(StoredGrade {
                    uscc: uscc_of(uscc)?,
                    model,
                    model_version,
                    graded: Graded {
                        grade: stored_code(&grade, Grade::from_code)?,
                        score: score as i32,
                        reasons: serde_json::from_str(&reasons)
                            .map_err(|e| Error::Corrupt(e.to_string()))?,
                    },
                    computed_at,
                });
            }
        }
        if cache.enabled() {
            cache.put(generation, read.iter().cloned());
        }
        for g in read {
            found.insert(g.uscc.as_str().to_string(), g);
        }
        Ok(usccs
            .iter()
            .map(|u| found.get(u.as_str()).cloned())
            .collect())
    }

    /// One page of an enterprise's grade history under `model`, newest first, before
    /// sequence number `before`.
    pub async fn grade_history(
        &self,
        uscc: &Uscc,
        model: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<GradeChange>> {
        sqlx::query(&format!(
            "SELECT * FROM grade_changes WHERE uscc = $1 AND model = $2 AND seq < $3 ORDER BY seq DESC LIMIT {limit}"
        ))
        .bind(uscc.as_str())
        .bind(model)
        .bind(before.unwrap_or(i64::MAX))
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(change_from_row)
        .collect()
    }

    /// History entries after sequence number `after`, oldest first, optionally of one model.
    pub async fn grade_changes_after(
        &self,
        after: i64,
        model: Option<&str>,
        limit: usize,
    ) -> Result<Vec<GradeChange>> {
        let rows = match model {
            Some(m) => sqlx::query(&format!(
                "SELECT * FROM grade_changes WHERE seq > $1 AND model = $2 ORDER BY seq LIMIT {limit}"
            ))
            .bind(after)
            .bind(m)
            .fetch_all(&self.read)
            .await?,
            None => sqlx::query(&format!("SELECT * FROM grade_changes WHERE seq > $1 ORDER BY seq LIMIT {limit}"))
                .bind(after)
                .fetch_all(&self.read)
                .await?,
        };
        rows.iter().map(change_from_row).collect()
    }

    /// The newest history sequence number (0 when there is none).
    pub async fn latest_grade_change(&self) -> Result<i64> {
        let max: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM grade_changes")
            .fetch_one(&self.read)
            .await?;
        Ok(max.unwrap_or(0))
    }

    /// Counts of enterprises per grade under `model`, grouped as asked:
    /// (region or "", industry section or "", grade, count).
    pub async fn grade_distribution(
        &self,
        model: &str,
        by_region: bool,
        by_industry: bool,
    ) -> Result<Vec<(String, String, Grade, i64)>> {
        let region = if by_region { "e.region_code" } else { "''" };
        let section = if by_industry {
            "SUBSTR(e.industry_code, 1, 1)"
        } else {
            "''"
        };
        // PostgreSQL refuses constants in GROUP BY, so group only by real expressions.
        let mut group = vec!["g.grade"];
        if by_region {
            group.push(region);
        }
        if by_industry {
            group.push(section);
        }
        let sql = format!(
            "SELECT {region} AS region, {section} AS section, g.grade AS grade, COUNT(*) AS n \
             FROM credit_grades g JOIN enterprises e ON e.uscc = g.uscc WHERE g.model = $1 \
             AND e.status <> 'DEREGISTERED' \
             GROUP BY {} ORDER BY 1, 2, 3",
            group.join(", ")
        );
        sqlx::query(&sql)
            .bind(model)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|row| {
                let g: String = row.try_get("grade")?;
                Ok((
                    row.try_get("region")?,
                    row.try_get("section")?,
                    stored_code(&g, Grade::from_code)?,
                    row.try_get("n")?,
                ))
            })
            .collect()
    }
}
