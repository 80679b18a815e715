//! Records: atomic batch submission with revisions, withdrawal, and reads.

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::certificates::Undone;
use super::grades::{uscc_of, RolesLock, Targets};
use super::request_log::{self, Replay, RequestKey};
use super::sql::{bind_all, for_update, multi_insert, placeholders, Val};
use super::{now_millis, stored_code, stored_date, Error, Result, Store};
use crate::domain::agency::Agency;
use crate::domain::codes::{
    GradeChangeCause, RecordKind, RecordStatus, RegulatoryDomain, SubmitOutcome, Tier,
};
use crate::domain::ids::Uscc;
use crate::domain::record::{
    check_shortest_publicity, stored_person, Attributes, NewRecord, Record, RecordContent, Subject,
};
use crate::domain::{self, Violations};

/// What a batch submission did, record by record, in input order.
#[derive(Debug, Clone)]
pub struct SubmitResult {
    pub records: Vec<Record>,
    pub outcomes: Vec<SubmitOutcome>,
}

/// Filters for listing records: one subject's, optionally of one kind and status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordFilter {
    /// The enterprise USCC or person key the records are about.
    pub subject_key: String,
    pub kind: Option<RecordKind>,
    pub status: Option<RecordStatus>,
}

/// A record as one row (and as one history snapshot, serialized as JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct RecordRow {
    id: String,
    agency_id: String,
    source_record_id: String,
    revision: i64,
    content_digest: String,
    subject_type: String,
    subject_key: String,
    person_name: Option<String>,
    masked_id: Option<String>,
    kind: String,
    tier: String,
    domain: String,
    decision_date: String,
    document_number: String,
    deciding_authority: String,
    summary: String,
    publicity_end_date: String,
    attributes: String,
    status: String,
    withdrawal_reason: Option<String>,
    created_at: i64,
    updated_at: i64,
}

const RECORD_COLUMNS: &[&str] = &[
    "id",
    "agency_id",
    "source_record_id",
    "revision",
    "content_digest",
    "subject_type",
    "subject_key",
    "person_name",
    "masked_id",
    "kind",
    "tier",
    "domain",
    "decision_date",
    "document_number",
    "deciding_authority",
    "summary",
    "publicity_end_date",
    "attributes",
    "status",
    "withdrawal_reason",
    "created_at",
    "updated_at",
];

pub(super) const REVISION_COLUMNS: &[&str] =
    &["record_id", "revision", "change", "received_at", "snapshot"];

impl RecordRow {
    fn from_record(r: &Record) -> Self {
        let c = &r.content;
        let (subject_type, person_name, masked_id) = match &c.subject {
            Subject::Enterprise(_) => ("enterprise", None, None),
            Subject::Person(p) => (
                "person",
                Some(p.name.clone()),
                Some(p.masked_id.as_str().to_string()),
            ),
        };
        RecordRow {
            id: r.id.clone(),
            agency_id: r.agency_id.clone(),
            source_record_id: r.source_record_id.clone(),
            revision: r.revision,
            content_digest: c.digest(),
            subject_type: subject_type.into(),
            subject_key: c.subject.key().into(),
            person_name,
            masked_id,
            kind: c.kind.code().into(),
            tier: c.tier.code().into(),
            domain: c.domain.code().into(),
            decision_date: c.decision_date.to_string(),
            document_number: c.document_number.clone(),
            deciding_authority: c.deciding_authority.clone(),
            summary: c.summary.clone(),
            publicity_end_date: c.publicity_end.to_string(),
            attributes: serde_json::to_string(&c.attributes).expect("attributes serialize"),
            status: r.status.code().into(),
            withdrawal_reason: r.withdrawal_reason.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }

    pub(super) fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(RecordRow {
            id: row.try_get("id")?,
            agency_id: row.try_get("agency_id")?,
            source_record_id: row.try_get("source_record_id")?,
            revision: row.try_get("revision")?,
            content_digest: row.try_get("content_digest")?,
            subject_type: row.try_get("subject_type")?,
            subject_key: row.try_get("subject_key")?,
            person_name: row.try_get("person_name")?,
            masked_id: row.try_get("masked_id")?,
            kind: row.try_get("kind")?,
            tier: row.try_get("tier")?,
            domain: row.try_get("domain")?,
            decision_date: row.try_get("decision_date")?,
            document_number: row.try_get("document_number")?,
            deciding_authority: row.try_get("deciding_authority")?,
            summary: row.try_get("summary")?,
            publicity_end_date: row.try_get("publicity_end_date")?,
            attributes: row.try_get("attributes")?,
            status: row.try_get("status")?,
            withdrawal_reason: row.try_get("withdrawal_reason")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    pub(super) fn into_record(self) -> Result<Record> {
        let corrupt = |what: &str| Error::Corrupt(format!("record {}: {what}", self.id));
        let subject = match self.subject_type.as_str() {
            "enterprise" => Subject::Enterprise(
                Uscc::parse(&self.subject_key).map_err(|_| corrupt("bad uscc"))?,
            ),
            "person" => stored_person(
                self.subject_key.clone(),
                self.person_name
                    .clone()
                    .ok_or_else(|| corrupt("no person name"))?,
                self.masked_id
                    .clone()
                    .ok_or_else(|| corrupt("no masked id"))?,
            ),
            _ => return Err(corrupt("bad subject type")),
        };
        let attributes: Attributes =
            serde_json::from_str(&self.attributes).map_err(|_| corrupt("bad attributes"))?;
        Ok(Record {
            content: RecordContent {
                subject,
                kind: stored_code(&self.kind, RecordKind::from_code)?,
                tier: stored_code(&self.tier, Tier::from_code)?,
                domain: stored_code(&self.domain, RegulatoryDomain::from_code)?,
                decision_date: stored_date(&self.decision_date)?,
                document_number: self.document_number,
                deciding_authority: self.deciding_authority,
                summary: self.summary,
                publicity_end: stored_date(&self.publicity_end_date)?,
                attributes,
            },
            status: stored_code(&self.status, RecordStatus::from_code)?,
            id: self.id,
            agency_id: self.agency_id,
            source_record_id: self.source_record_id,
            revision: self.revision,
            withdrawal_reason: self.withdrawal_reason,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }

    fn vals(&self) -> Vec<Val> {
        vec![
            self.id.clone().into(),
            self.agency_id.clone().into(),
            self.source_record_id.clone().into(),
            self.revision.into(),
            self.content_digest.clone().into(),
            self.subject_type.clone().into(),
            self.subject_key.clone().into(),
            self.person_name.clone().into(),
            self.masked_id.clone().into(),
            self.kind.clone().into(),
            self.tier.clone().into(),
            self.domain.clone().into(),
            self.decision_date.clone().into(),
            self.document_number.clone().into(),
            self.deciding_authority.clone().into(),
            self.summary.clone().into(),
            self.publicity_end_date.clone().into(),
            self.attributes.clone().into(),
            self.status.clone().into(),
            self.withdrawal_reason.clone().into(),
            self.created_at.into(),
            self.updated_at.into(),
        ]
    }

    /// Sets the stored status, as of `at`.
    pub(super) fn set_status(&mut self, status: RecordStatus, at: i64) {
        self.status = status.code().into();
        self.updated_at = at;
    }

    pub(super) fn snapshot(&self, change: &str, at: i64) -> Vec<Val> {
        vec![
            self.id.clone().into(),
            self.revision.into(),
            change.into(),
            at.into(),
            serde_json::to_string(self).expect("row serializes").into(),
        ]
    }
}

/// Every record about subject `key` (a USCC or a person key), in any status, in id
/// order, read through `on` (the pool, or a transaction that must see its own writes).
pub(super) async fn records_with_key<'c>(
    on: impl sqlx::Executor<'c, Database = sqlx::Any>,
    key: &str,
) -> Result<Vec<Record>> {
    sqlx::query("SELECT * FROM records WHERE subject_key = $1 ORDER BY id")
        .bind(key)
        .fetch_all(on)
        .await?
        .iter()
        .map(|r| RecordRow::from_row(r)?.into_record())
        .collect()
}

fn new_record_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

impl Store {
    /// Submits a batch atomically for `agency`: all of it is written or none. A record
    /// is identified by (agency, source record id): the same revision again changes
    /// nothing, a higher one replaces the stored one (kept in history), a lower one is
    /// ignored as stale.
    pub async fn submit_records(
        &self,
        agency: &Agency,
        batch: Vec<NewRecord>,
        today: NaiveDate,
        request: Option<RequestKey>,
        encode: &(dyn Fn(&SubmitResult) -> Vec<u8> + Send + Sync),
    ) -> Result<Replay<SubmitResult>> {
        request_log::retrying_races(|| {
            self.submit_records_once(agency, &batch, today, request.as_ref(), encode)
        })
        .await
    }

    async fn submit_records_once(
        &self,
        agency: &Agency,
        batch: &[NewRecord],
        today: NaiveDate,
        request: Option<&RequestKey>,
        encode: &(dyn Fn(&SubmitResult) -> Vec<u8> + Send + Sync),
    ) -> Result<Replay<SubmitResult>> {
        let mut tx = match request_log::begin(self, request).await? {
            Ok(tx) => tx,
            Err(bytes) => return Ok(Replay::Replayed(bytes)),
        };
        let (result, regraded) = self.write_records(&mut tx, agency, batch, today).await?;
        if let Some(key) = request {
            request_log::remember(&mut tx, key, encode(&result)).await?;
        }
        self.commit_regraded(tx, &regraded).await?;
        Ok(Replay::Fresh(result))
    }

    /// Writes a batch inside `tx`: the records, their history, the regrade they cause and
    /// the certificates they contradict. Call [`Store::after_regrade`] once `tx` commits.
    pub(super) async fn write_records(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        agency: &Agency,
        batch: &[NewRecord],
        today: NaiveDate,
    ) -> Result<(SubmitResult, super::grades::Regraded)> {
        // Every enterprise a record is about must be registered.
        let mut usccs: Vec<&Uscc> = batch
            .iter()
            .filter_map(|r| match &r.content.subject {
                Subject::Enterprise(u) => Some(u),
                Subject::Person(_) => None,
            })
            .collect();
        usccs.sort();
        usccs.dedup();
        let known = Store::known_usccs(self.backend, tx, &usccs).await?;

        // What this agency already filed under the same source ids.
        let mut existing: HashMap<String, RecordRow> = HashMap::new();
        let source_ids: Vec<&str> = batch.iter().map(|r| r.source_record_id.as_str()).collect();
        for chunk in source_ids.chunks(1000) {
            // Locked on PostgreSQL, so that two revisions (or a revision and a
            // withdrawal) of one record arriving together are decided one after the
            // other, each on what the other left (SQLite's writer is alone anyway).
            let sql = format!(
                "SELECT * FROM records WHERE agency_id = {} AND source_record_id IN ({}){}",
                placeholders(self.backend, 1, 1),
                placeholders(self.backend, 2, chunk.len()),
                for_update(self.backend),
            );
            let mut vals = vec![Val::from(agency.id.as_str())];
            vals.extend(chunk.iter().map(|s| Val::from(*s)));
            for row in bind_all(sqlx::query(&sql), vals)
                .fetch_all(&mut **tx)
                .await?
            {
                let row = RecordRow::from_row(&row)?;
                existing.insert(row.source_record_id.clone(), row);
            }
        }

        // A revision older than the one stored is passed over (STALE), whatever it
        // is about.
        let mut violations = Violations::default();
        for (i, r) in batch.iter().enumerate() {
            let stale = existing
                .get(&r.source_record_id)
                .is_some_and(|old| old.revision > r.revision);
            if let Subject::Enterprise(u) = &r.content.subject {
                if !stale && !known.contains(u.as_str()) {
                    violations.add(
                        format!("records[{i}].subject.enterprise"),
                        format!("enterprise {u} is not in the registry"),
                    );
                }
            }
        }

        let now = now_millis();
        let mut inserts = Vec::new();
        let mut revised = Vec::new();
        let mut snapshots = Vec::new();
        // Revised records now about another subject, as they were: their old subject
        // is regraded too.
        let mut moved_from: Vec<Record> = Vec::new();
        // Every revised record as it was: one that was, say, a judgment-debtor listing
        // affected related enterprises even if its new revision does not.
        let mut replaced: Vec<Record> = Vec::new();
        let mut records = Vec::with_capacity(batch.len());
        let mut outcomes = Vec::with_capacity(batch.len());
        for (i, new) in batch.iter().enumerate() {
            let digest = new.content.digest();
            let (row, outcome) = match existing.get(&new.source_record_id) {
                None => {
                    let record = Record {
                        id: new_record_id(),
                        agency_id: agency.id.clone(),
                        source_record_id: new.source_record_id.clone(),
                        revision: new.revision,
                        content: new.content.clone(),
                        status: RecordStatus::Active,
                        withdrawal_reason: None,
                        created_at: now,
                        updated_at: now,
                    };
                    check_shortest_publicity(
                        &format!("records[{i}]"),
                        &record.content,
                        &mut violations,
                    );
                    let row = RecordRow::from_record(&record);
                    snapshots.push(row.snapshot("CREATED", now));
                    inserts.push(row.vals());
                    (row, SubmitOutcome::Created)
                }
                Some(old) if old.revision == new.revision => {
                    // Records stored before their lists were normalised digested them
                    // as listed: compare those as they read normalised. A publicity end
                    // the filer left to the service is compared as it was filled in
                    // then: the defaults may have changed since.
                    // The usual resend matches at once; only a mismatch pays for the
                    // other readings.
                    let unchanged = old.content_digest == digest || {
                        let as_filed = if new.publicity_end_defaulted {
                            let mut c = new.content.clone();
                            c.publicity_end = stored_date(&old.publicity_end_date)?;
                            c.digest()
                        } else {
                            digest.clone()
                        };
                        let normalised = old.clone().into_record()?.content.normalised().digest();
                        [&old.content_digest, &normalised]
                            .iter()
                            .any(|d| **d == digest || **d == as_filed)
                    };
                    if !unchanged {
                        violations.add(
                            format!("records[{i}].provenance.revision"),
                            format!(
                                "revision {} of source record {} was already submitted with \
                                 different content; submit revision {} to change it",
                                new.revision,
                                new.source_record_id,
                                old.revision + 1
                            ),
                        );
                    }
                    (old.clone(), SubmitOutcome::Unchanged)
                }
                Some(old) if old.revision > new.revision => (old.clone(), SubmitOutcome::Stale),
                Some(old) => {
                    // A filer's correction (a summary, a document number) does not undo
                    // the bureau's repair decision; one that changes what the decision
                    // weighed (subject, tier, measures, date) is a record nobody has
                    // decided on. A higher revision of a withdrawn record files it again.
                    let before = old.clone().into_record()?;
                    let status = if old.status == RecordStatus::Repaired.code()
                        && before.content.repair_still_holds(&new.content)
                    {
                        RecordStatus::Repaired
                    } else {
                        RecordStatus::Active
                    };
                    if old.subject_key != new.content.subject.key() {
                        moved_from.push(before.clone());
                    }
                    let mut content = new.content.clone();
                    if new.publicity_end_defaulted && before.content.keeps_earlier_default(&content)
                    {
                        content.publicity_end = before.content.publicity_end;
                    }
                    check_shortest_publicity(&format!("records[{i}]"), &content, &mut violations);
                    replaced.push(before);
                    let record = Record {
                        id: old.id.clone(),
                        agency_id: agency.id.clone(),
                        source_record_id: new.source_record_id.clone(),
                        revision: new.revision,
                        content,
                        status,
                        withdrawal_reason: None,
                        created_at: old.created_at,
                        updated_at: now,
                    };
                    let row = RecordRow::from_record(&record);
                    snapshots.push(row.snapshot("REVISED", now));
                    revised.push(row.clone());
                    (row, SubmitOutcome::Revised)
                }
            };
            records.push(row.into_record()?);
            outcomes.push(outcome);
        }
        if !violations.is_empty() {
            return Err(violations.finish(()).unwrap_err().into());
        }

        for (sql, vals) in multi_insert(self.backend, "records", RECORD_COLUMNS, inserts) {
            bind_all(sqlx::query(&sql), vals).execute(&mut **tx).await?;
        }
        for row in &revised {
            let sets: Vec<String> = RECORD_COLUMNS[1..]
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c} = ${}", i + 2))
                .collect();
            let sql = format!(
                "UPDATE records SET {}, expiry_graded = 0 WHERE id = $1",
                sets.join(", ")
            );
            bind_all(sqlx::query(&sql), row.vals())
                .execute(&mut **tx)
                .await?;
        }
        for (sql, vals) in multi_insert(
            self.backend,
            "record_revisions",
            REVISION_COLUMNS,
            snapshots,
        ) {
            bind_all(sqlx::query(&sql), vals).execute(&mut **tx).await?;
        }
        // A record filed after its window ended needs no regrade when the window ends.
        let written: Vec<&Record> = records
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| matches!(o, SubmitOutcome::Created | SubmitOutcome::Revised))
            .map(|(r, _)| r)
            .collect();
        let ended: Vec<&str> = written
            .iter()
            .filter(|r| r.content.publicity_end <= today)
            .map(|r| r.id.as_str())
            .collect();
        for chunk in ended.chunks(1000) {
            let sql = format!(
                "UPDATE records SET expiry_graded = 1 WHERE id IN ({})",
                placeholders(self.backend, 1, chunk.len())
            );
            bind_all(
                sqlx::query(&sql),
                chunk.iter().map(|s| Val::from(*s)).collect(),
            )
            .execute(&mut **tx)
            .await?;
        }
        let regrade_for: Vec<&Record> = written.iter().copied().chain(&moved_from).collect();
        let targets = self
            .record_targets(tx, &regrade_for, GradeChangeCause::RecordSubmitted)
            .await?;
        let related = self.affects_related(&regrade_for)
            || self.affects_related(&replaced.iter().collect::<Vec<_>>());
        let regraded = self.regrade(tx, targets, related, today).await?;
        self.suspend_contradicted(tx, &written, today).await?;
        // A revision that moves a record to another enterprise, or changes what a
        // certificate says of it, leaves that statement untrue as a withdrawal would.
        // (A change still inside a certificate's period suspended it just above: that
        // stands, as only valid certificates are superseded.)
        // By id: a batch may revise a thousand records.
        let after_by_id: HashMap<&str, &Record> = if replaced.is_empty() {
            HashMap::new()
        } else {
            written.iter().map(|w| (w.id.as_str(), *w)).collect()
        };
        for before in &replaced {
            let Some(&after) = after_by_id.get(before.id.as_str()) else {
                continue;
            };
            if crate::domain::certificate::revision_undoes(before, after) {
                self.supersede_stating_withdrawn(tx, before, Undone::Revised)
                    .await?;
                self.lift_suspensions(tx, before, Some(after), today)
                    .await?;
            }
        }
        Ok((SubmitResult { records, outcomes }, regraded))
    }

    /// Whether changing `records` can change other enterprises' related-party reasons:
    /// only records that make their enterprise hard-D under some model can.
    pub(super) fn affects_related(&self, records: &[&Record]) -> bool {
        records.iter().any(|r| {
            matches!(r.content.subject, Subject::Enterprise(_))
                && self
                    .models
                    .all()
                    .iter()
                    .any(|m| m.hard_d_kinds().contains(&r.content.kind))
        })
    }

    /// The enterprises to regrade after `records` changed: each enterprise a record is
    /// about, and each enterprise a person it is about represents.
    pub(super) async fn record_targets(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        records: &[&Record],
        cause: GradeChangeCause,
    ) -> Result<Targets> {
        let persons = records.iter().filter_map(|r| match &r.content.subject {
            Subject::Person(p) => Some(p.key.as_str()),
            Subject::Enterprise(_) => None,
        });
        // Before reading whom they represent: a role handed to one of them meanwhile
        // either committed before (and is read here) or waits for this transaction
        // (and its regrade then reads these records).
        self.lock_roles(tx, RolesLock::Shared).await?;
        let represented = self.represented_by(tx, persons).await?;
        let mut targets = Targets::new();
        // Records that can change other enterprises' grades (through a shared legal
        // representative): the cause those enterprises' changes name is their
        // enterprise's, so one of these is named first.
        let reaching: std::collections::HashSet<&str> = records
            .iter()
            .filter(|r| self.affects_related(&[**r]))
            .map(|r| r.id.as_str())
            .collect();
        let rank = |id: &Option<String>| {
            let id = id.as_deref().unwrap_or_default();
            (!reaching.contains(id), id.to_string())
        };
        for r in records {
            match &r.content.subject {
                Subject::Enterprise(u) => {
                    // A record about the enterprise itself outranks a related party's;
                    // of several, one that reaches related parties, then the least id,
                    // so the same change names the same record whatever order the
                    // batch listed them in.
                    let id = Some(r.id.clone());
                    let slot = targets.entry(u.clone()).or_insert((cause, id.clone()));
                    if slot.0 != cause || rank(&id) < rank(&slot.1) {
                        *slot = (cause, id);
                    }
                }
                // A record about a person changes the grades of the enterprises the
                // person represents as a related party.
                Subject::Person(p) => {
                    for u in represented.get(p.key.as_str()).into_iter().flatten() {
                        let id = Some(r.id.clone());
                        let related = GradeChangeCause::RelatedPartyChanged;
                        let slot = targets
                            .entry(uscc_of(u.clone())?)
                            .or_insert((related, id.clone()));
                        if slot.0 == related && id < slot.1 {
                            *slot = (related, id);
                        }
                    }
                }
            }
        }
        Ok(targets)
    }

    /// Withdraws a record on behalf of the agency that filed it; the withdrawn state is
    /// kept in history. Withdrawing a withdrawn record again with the same reason changes
    /// nothing; with another it is FAILED_PRECONDITION. With a `request`, a retry gets
    /// the response `encode` made of the first attempt's record.
    pub async fn withdraw_record(
        &self,
        agency: &Agency,
        id: &str,
        reason: &str,
        today: NaiveDate,
        request: Option<RequestKey>,
        encode: &(dyn Fn(&Record) -> Vec<u8> + Send + Sync),
    ) -> Result<Replay<Record>> {
        request_log::retrying_races(|| {
            self.withdraw_record_once(agency, id, reason, today, request.as_ref(), encode)
        })
        .await
    }

    async fn withdraw_record_once(
        &self,
        agency: &Agency,
        id: &str,
        reason: &str,
        today: NaiveDate,
        request: Option<&RequestKey>,
        encode: &(dyn Fn(&Record) -> Vec<u8> + Send + Sync),
    ) -> Result<Replay<Record>> {
        let mut tx = match request_log::begin(self, request).await? {
            Ok(tx) => tx,
            Err(bytes) => return Ok(Replay::Replayed(bytes)),
        };
        let sql = format!(
            "SELECT * FROM records WHERE id = $1{}",
            for_update(self.backend)
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| domain::Error::NotFound(format!("records/{id}")))?;
        let mut row = RecordRow::from_row(&row)?;
        if row.agency_id != agency.id {
            return Err(domain::Error::PermissionDenied(format!(
                "records/{id} was filed by another agency; only the agency that filed a \
                 record may withdraw it"
            ))
            .into());
        }
        if row.status == RecordStatus::Withdrawn.code() {
            // A repeat with the same reason is a retry and changes nothing; one with
            // another reason would let the caller believe that reason was recorded.
            if row.withdrawal_reason.as_deref() != Some(reason) {
                return Err(domain::Error::FailedPrecondition(vec![
                    domain::PreconditionViolation {
                        kind: "ALREADY_WITHDRAWN".into(),
                        subject: format!("records/{id}"),
                        description: format!(
                            "was withdrawn already, with the reason {:?}; the reason given now is not recorded",
                            row.withdrawal_reason.as_deref().unwrap_or_default()
                        ),
                    },
                ])
                .into());
            }
            let record = row.into_record()?;
            if let Some(key) = request {
                request_log::remember(&mut tx, key, encode(&record)).await?;
                self.commit(tx).await?;
            }
            return Ok(Replay::Fresh(record));
        }
        let now = now_millis();
        row.status = RecordStatus::Withdrawn.code().into();
        row.withdrawal_reason = Some(reason.to_string());
        row.updated_at = now;
        sqlx::query(
            "UPDATE records SET status = $1, withdrawal_reason = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(&row.status)
        .bind(reason)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let (sql, vals) = multi_insert(
            self.backend,
            "record_revisions",
            REVISION_COLUMNS,
            vec![row.snapshot("WITHDRAWN", now)],
        )
        .remove(0);
        bind_all(sqlx::query(&sql), vals).execute(&mut *tx).await?;
        let record = row.into_record()?;
        let targets = self
            .record_targets(&mut tx, &[&record], GradeChangeCause::RecordWithdrawn)
            .await?;
        let related = self.affects_related(&[&record]);
        let regraded = self.regrade(&mut tx, targets, related, today).await?;
        // After the regrade has taken the enterprise's grading lock: a certificate
        // being issued meanwhile has committed by then, and is found.
        self.supersede_stating_withdrawn(&mut tx, &record, Undone::Withdrawn)
            .await?;
        self.lift_suspensions(&mut tx, &record, None, today).await?;
        if let Some(key) = request {
            request_log::remember(&mut tx, key, encode(&record)).await?;
        }
        self.commit_regraded(tx, &regraded).await?;
        Ok(Replay::Fresh(record))
    }

    /// One record at its current revision.
    pub async fn get_record(&self, id: &str) -> Result<Option<Record>> {
        sqlx::query("SELECT * FROM records WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await?
            .map(|row| RecordRow::from_row(&row)?.into_record())
            .transpose()
    }

    /// A page of records, newest decision first, after the (decision date, id) cursor.
    pub async fn list_records(
        &self,
        filter: &RecordFilter,
        today: NaiveDate,
        after: Option<(NaiveDate, String)>,
        limit: usize,
    ) -> Result<Vec<Record>> {
        let mut sql = String::from("SELECT * FROM records WHERE 1 = 1");
        let mut vals: Vec<Val> = Vec::new();
        let mut push = |sql: &mut String, clause: &str, new: Vec<Val>| {
            let mut clause = clause.to_string();
            for v in new {
                vals.push(v);
                clause = clause.replacen('?', &format!("${}", vals.len()), 1);
            }
            sql.push_str(&clause);
        };
        push(
            &mut sql,
            " AND subject_key = ?",
            vec![filter.subject_key.clone().into()],
        );
        if let Some(kind) = filter.kind {
            push(&mut sql, " AND kind = ?", vec![kind.code().into()]);
        }
        let today = today.to_string();
        match filter.status {
            None => {}
            Some(RecordStatus::Active) => push(
                &mut sql,
                " AND status = 'ACTIVE' AND publicity_end_date > ?",
                vec![today.into()],
            ),
            Some(RecordStatus::Expired) => push(
                &mut sql,
                " AND status = 'ACTIVE' AND publicity_end_date <= ?",
                vec![today.into()],
            ),
            Some(other) => push(&mut sql, " AND status = ?", vec![other.code().into()]),
        }
        if let Some((date, id)) = after {
            let date = date.to_string();
            push(
                &mut sql,
                " AND (decision_date < ? OR (decision_date = ? AND id < ?))",
                vec![date.clone().into(), date.into(), id.into()],
            );
        }
        sql.push_str(&format!(
            " ORDER BY decision_date DESC, id DESC LIMIT {limit}"
        ));
        bind_all(sqlx::query(&sql), vals)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|row| RecordRow::from_row(row)?.into_record())
            .collect()
    }

    /// Every version a record went through, newest first, each with its place in that
    /// order; from just after `after` when given. Paged by that place, not by a count
    /// of versions skipped: a withdrawal or revision arriving between pages would shift
    /// a count and repeat a version. The primary key breaks ties (two changes of one
    /// revision in one millisecond), so the order is total.
    pub async fn list_record_revisions(
        &self,
        id: &str,
        after: Option<&RevisionPlace>,
        limit: usize,
    ) -> Result<Vec<(RevisionPlace, Record)>> {
        let mut sql = String::from(
            "SELECT received_at, revision, change, snapshot FROM record_revisions \
             WHERE record_id = $1",
        );
        if after.is_some() {
            sql.push_str(
                " AND (received_at < $2 OR (received_at = $2 AND (revision < $3 \
                 OR (revision = $3 AND change < $4))))",
            );
        }
        sql.push_str(&format!(
            " ORDER BY received_at DESC, revision DESC, change DESC LIMIT {limit}"
        ));
        let mut query = sqlx::query(&sql).bind(id);
        if let Some(place) = after {
            query = query
                .bind(place.received_at)
                .bind(place.revision)
                .bind(place.change.clone());
        }
        query
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|row| {
                let place = RevisionPlace {
                    received_at: row.try_get("received_at")?,
                    revision: row.try_get("revision")?,
                    change: row.try_get("change")?,
                };
                let text: String = row.try_get("snapshot")?;
                let snap: RecordRow = serde_json::from_str(&text)
                    .map_err(|e| Error::Corrupt(format!("revision snapshot: {e}")))?;
                Ok((place, snap.into_record()?))
            })
            .collect()
    }

    /// How many records are stored.
    pub async fn count_records(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM records")
            .fetch_one(&self.read)
            .await?)
    }
}

/// Where a version stands in a record's history, newest first: the page cursor of
/// [`Store::list_record_revisions`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RevisionPlace {
    pub received_at: i64,
    pub revision: i64,
    pub change: String,
}
