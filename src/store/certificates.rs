//! The certificate register: issuer keys, issued certificates (documents stored exactly
//! as signed), their status changes, and the hooks that keep them honest when records
//! change.

use chrono::NaiveDate;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::records::records_with_key;
use super::request_log::{self, Replay, RequestKey};
use super::sql::{bind_all, in_json, json_keys, placeholders, Val};
use super::{now_millis, stored_code, stored_date, Error, Result, Store};
use crate::domain::certificate::{
    contradicts, contradicts_issue_day, could_contradict, issue_date, listing_in_force_on,
    mentions, remediation_statements, says_listed_on_issue_date, stated_reports, stated_reports_in,
    states, Certificate, CertificateKind, CertificateStatus, RepairDays,
};
use crate::domain::codes::SeriousListingCause;
use crate::domain::codes::{RecordKind, RecordStatus};
use crate::domain::enterprise::Enterprise;
use crate::domain::ids::Uscc;
use crate::domain::record::{Attributes, Record, Subject};
use crate::domain::{self, PreconditionViolation};

/// A public key certificates are (or were) signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerKey {
    pub key_id: String,
    pub public_key_multibase: String,
    /// Milliseconds since the Unix epoch.
    pub valid_from: i64,
    /// When a newer key took over; None for the current key.
    pub valid_until: Option<i64>,
}

/// Filters for listing certificates; all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateFilter {
    pub uscc: Option<String>,
    /// `Valid` and `Expired` are told apart by `valid_until` at `now`.
    pub status: Option<CertificateStatus>,
}

/// The certificate an earlier request with `key` produced, read on `conn`; refuses a
/// request id reused for a different request.
async fn certificate_by_request_on(
    conn: &mut sqlx::AnyConnection,
    key: &RequestKey,
) -> Result<Option<Certificate>> {
    let row = sqlx::query("SELECT * FROM certificates WHERE agency_id = $1 AND request_id = $2")
        .bind(&key.agency_id)
        .bind(&key.request_id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let digest: String = row.try_get("request_digest")?;
    if digest != key.request_digest {
        return Err(domain::Error::invalid(
            "request_id",
            format!(
                "{} was already used to issue certificates/{} for a different request; use a new request_id",
                key.request_id,
                row.try_get::<String, _>("serial")?
            ),
        )
        .into());
    }
    Ok(Some(certificate_from_row(&row)?))
}

fn certificate_from_row(row: &AnyRow) -> Result<Certificate> {
    let serial: String = row.try_get("serial")?;
    let date = |col: &str| -> Result<Option<NaiveDate>> {
        row.try_get::<Option<String>, _>(col)?
            .map(|s| stored_date(&s))
            .transpose()
    };
    let period = match (date("period_start_date")?, date("period_end_date")?) {
        (Some(s), Some(e)) => Some((s, e)),
        _ => None,
    };
    let uscc: String = row.try_get("uscc")?;
    Ok(Certificate {
        uscc: Uscc::parse(&uscc)
            .map_err(|_| Error::Corrupt(format!("certificate {serial}: bad uscc")))?,
        enterprise_name: row.try_get("enterprise_name")?,
        kind: stored_code(
            &row.try_get::<String, _>("kind")?,
            CertificateKind::from_code,
        )?,
        period,
        status: stored_code(
            &row.try_get::<String, _>("status")?,
            CertificateStatus::from_code,
        )?,
        status_reason: row.try_get("status_reason")?,
        issued_at: row.try_get("issued_at")?,
        valid_from: row.try_get("valid_from")?,
        valid_until: row.try_get("valid_until")?,
        key_id: row.try_get("key_id")?,
        document: row.try_get("document")?,
        revocation_reason: row.try_get("revocation_reason")?,
        revoked_at: row.try_get("revoked_at")?,
        agency_id: row.try_get("agency_id")?,
        serial,
    })
}

/// When `record` was last repaired (its history's latest REPAIRED entry).
async fn repaired_at(tx: &mut Transaction<'static, Any>, record: &str) -> Result<Option<i64>> {
    Ok(sqlx::query(
        "SELECT MAX(received_at) AS at FROM record_revisions \
         WHERE record_id = $1 AND change = 'REPAIRED'",
    )
    .bind(record)
    .fetch_one(&mut **tx)
    .await?
    .try_get::<Option<i64>, _>("at")?)
}

/// Why a certificate saying the enterprise was listed on its issue date was superseded
/// when the one listing in force that day, which it does not name, was withdrawn.
const UNSTATED_LISTING_WITHDRAWN: &str = "证明出具日所据严重违法失信名单记录已撤回：the serious-dishonesty listing in force on the issue date was withdrawn after issue, so this certificate no longer describes the enterprise";

/// Why a certificate is suspended: `record`, filed after issue, falls inside its period
/// unstated, or (`listed_on`, its issue date) is a listing in force that day, which the
/// certificate says was not listed. The record's name comes last, followed by `)`:
/// [`Store::lift_suspensions`] finds the certificates a record suspended by it.
fn suspension_reason(record: &Record, listed_on: Option<NaiveDate>) -> String {
    let c = &record.content;
    match listed_on {
        None => format!(
            "证明期间内有未载明的失信记录：a {} record decided on {} (document {}, {}), which the certificate's period covers, arrived after issue and is not stated on the certificate",
            c.kind.code(),
            c.decision_date,
            c.document_number,
            record.resource_name()
        ),
        Some(issued_on) => format!(
            "出具日已在严重违法失信名单：a listing decided on {} (document {}, {}) was in force on the issue date {issued_on}, which the certificate says was not listed",
            c.decision_date,
            c.document_number,
            record.resource_name()
        ),
    }
}

/// Why a certificate suspended over a record filed after issue was superseded when that
/// record was withdrawn or corrected: its suspension named a decision no longer
/// published about this enterprise, which this reason does not repeat.
const SUSPENDING_RECORD_UNDONE: &str = "证明暂停所据记录已撤回或更正：the record filed after issue that suspended this certificate was withdrawn or corrected, so the suspension no longer says why; ask for a new certificate";

/// The same when that record's publicity window ended: it is no longer published, so
/// the reason shown to whoever verifies stops naming it, and a certificate issued now
/// would not state it.
const SUSPENDING_RECORD_ENDED: &str = "证明暂停所据记录公示期已满：the publicity of the record filed after issue that suspended this certificate has ended, so the suspension no longer says why; ask for a new certificate";

/// The same for a listing revised (moved to another enterprise, redated, made another
/// kind of record) after issue.
const UNSTATED_LISTING_REVISED: &str = "证明出具日所据严重违法失信名单记录已更正：the serious-dishonesty listing in force on the issue date was corrected after issue, so this certificate no longer describes the enterprise";

/// How a record a certificate may rest on was undone after issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Undone {
    /// Withdrawn by its agency.
    Withdrawn,
    /// Replaced by a revision that moved it to another enterprise, or changed its kind,
    /// decision date or repair: what a certificate said of it no longer holds.
    Revised,
}

impl Store {
    /// Makes `key_id` the signing key: registers it if new, retiring the key that signed
    /// until now (which keeps verifying what it signed). Refuses a key id or public key
    /// already registered with a different partner, which would make old certificates
    /// verify against the wrong key. Processes registering at once take turns, and the
    /// last to register signs: exactly one key is current. On PostgreSQL a key already
    /// retired stays retired: a process starting with it (an old replica restarted
    /// during a roll-out) must not retire the newer key every other replica signs
    /// with; it verifies, and issues nothing (SIGNING_KEY_RETIRED). Returns whether
    /// `key_id` is the current key.
    pub async fn register_issuer_key(
        &self,
        key_id: &str,
        public_key_multibase: &str,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        if self.backend == super::Backend::Postgres {
            // Registrations take turns, as SQLite's single writer makes them. Otherwise
            // two processes registering different keys at once would each retire only
            // the keys they can see, not the other's uncommitted one, and both keys
            // would stay current.
            sqlx::query("SELECT pg_advisory_xact_lock(728302)")
                .execute(&mut *tx)
                .await?;
        }
        let rows = sqlx::query(
            "SELECT key_id, public_key_multibase, valid_until FROM issuer_keys \
             WHERE key_id = $1 OR public_key_multibase = $2",
        )
        .bind(key_id)
        .bind(public_key_multibase)
        .fetch_all(&mut *tx)
        .await?;
        let mut current = false;
        for row in &rows {
            let id: String = row.try_get("key_id")?;
            let public: String = row.try_get("public_key_multibase")?;
            if id != key_id || public != public_key_multibase {
                return Err(Error::Corrupt(format!(
                    "issuer key id {key_id} or its public key is already registered as key {id} with public key {public}; give a new key a new id"
                )));
            }
            current = row.try_get::<Option<i64>, _>("valid_until")?.is_none();
        }
        if current {
            return Ok(true);
        }
        if !rows.is_empty() && self.backend == super::Backend::Postgres {
            // Retired, and it stays so: the other replicas sign with the newer key.
            return Ok(false);
        }
        let now = now_millis();
        sqlx::query(
            "UPDATE issuer_keys SET valid_until = $1 WHERE valid_until IS NULL AND key_id <> $2",
        )
        .bind(now)
        .bind(key_id)
        .execute(&mut *tx)
        .await?;
        if rows.is_empty() {
            sqlx::query(
                "INSERT INTO issuer_keys (key_id, public_key_multibase, valid_from, valid_until) \
                 VALUES ($1, $2, $3, NULL)",
            )
            .bind(key_id)
            .bind(public_key_multibase)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        } else {
            // SQLite serves from one process: a retired key it is given again (a
            // restored backup, a key file removed) signs again, as nothing else can.
            sqlx::query("UPDATE issuer_keys SET valid_until = NULL WHERE key_id = $1")
                .bind(key_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Every issuer key, oldest first.
    pub async fn issuer_keys(&self) -> Result<Vec<IssuerKey>> {
        let rows = sqlx::query(
            "SELECT key_id, public_key_multibase, valid_from, valid_until FROM issuer_keys \
             ORDER BY valid_from, key_id",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(IssuerKey {
                    key_id: r.try_get("key_id")?,
                    public_key_multibase: r.try_get("public_key_multibase")?,
                    valid_from: r.try_get("valid_from")?,
                    valid_until: r.try_get("valid_until")?,
                })
            })
            .collect()
    }

    /// The certificate an earlier request with `key` produced, if any. Refuses a
    /// request id reused for a different request.
    pub async fn certificate_by_request(&self, key: &RequestKey) -> Result<Option<Certificate>> {
        let mut conn = self.write.acquire().await?;
        certificate_by_request_on(&mut conn, key).await
    }

    /// Issues a certificate about `uscc` under `key`: `issue` builds and signs it from
    /// the enterprise and every record about it, read in the transaction that stores
    /// it (the enterprise None when it is not registered). The reads, the signing and
    /// the insert hold the enterprise's grading lock (PostgreSQL) or the write lock
    /// (SQLite), as a record submission or registry update does until it has checked
    /// the valid certificates it contradicts: a record arriving meanwhile is either on
    /// the certificate or suspends it, never neither, and a deregistration or new name
    /// is either seen or comes after. When an identical request got there first (a
    /// retry racing the original), its certificate is returned, before anything is
    /// judged again, so a request id yields exactly one certificate.
    pub async fn issue_certificate(
        &self,
        uscc: &Uscc,
        key: &RequestKey,
        issue: impl FnOnce(
            Option<&Enterprise>,
            &[Record],
            &RepairDays,
        ) -> std::result::Result<Certificate, domain::Error>,
    ) -> Result<Certificate> {
        let mut tx = self.begin_write().await?;
        self.lock_grading(&mut tx, [uscc.as_str()]).await?;
        if let Some(existing) = certificate_by_request_on(&mut tx, key).await? {
            return Ok(existing);
        }
        let enterprise = super::enterprises::enterprises_in(self.backend, &mut tx, &[uscc])
            .await?
            .pop();
        let records = records_with_key(&mut *tx, uscc.as_str()).await?;
        // A repaired listing was in force only until its repair; the records keep no
        // such date, their history does.
        let mut repaired_on = RepairDays::new();
        for r in records.iter().filter(|r| {
            r.status == RecordStatus::Repaired
                && r.content.kind == RecordKind::SeriousDishonestyListing
        }) {
            if let Some(day) = repaired_at(&mut tx, &r.id).await?.and_then(issue_date) {
                repaired_on.insert(r.id.clone(), day);
            }
        }
        let cert = issue(enterprise.as_ref(), &records, &repaired_on)?;
        // A key a newer one replaced signs nothing more: what it signed after its
        // retirement would not verify offline against the published key list, and a
        // server still holding it (a replica the rotation has not reached) must not
        // mint such certificates.
        let key_row = sqlx::query("SELECT valid_until FROM issuer_keys WHERE key_id = $1")
            .bind(&cert.key_id)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = key_row {
            if row.try_get::<Option<i64>, _>("valid_until")?.is_some() {
                return Err(
                    domain::Error::FailedPrecondition(vec![PreconditionViolation {
                        kind: "SIGNING_KEY_RETIRED".into(),
                        subject: format!("issuerKeys/{}", cert.key_id),
                        description: format!(
                        "this server signs with issuer key {}, which a newer key has replaced; \
                         it issues again once restarted with the current key, and a server \
                         holding that key can issue now",
                        cert.key_id
                    ),
                    }])
                    .into(),
                );
            }
        }
        let (start, end) = match cert.period {
            Some((s, e)) => (Some(s.to_string()), Some(e.to_string())),
            None => (None, None),
        };
        let inserted = sqlx::query(
            "INSERT INTO certificates (serial, uscc, enterprise_name, kind, period_start_date, \
             period_end_date, status, status_reason, issued_at, valid_from, valid_until, key_id, \
             document, revocation_reason, revoked_at, agency_id, request_id, request_digest) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, NULL, NULL, $14, $15, $16) \
             ON CONFLICT (agency_id, request_id) DO NOTHING",
        )
        .bind(&cert.serial)
        .bind(cert.uscc.as_str())
        .bind(&cert.enterprise_name)
        .bind(cert.kind.code())
        .bind(start)
        .bind(end)
        .bind(cert.status.code())
        .bind(&cert.status_reason)
        .bind(cert.issued_at)
        .bind(cert.valid_from)
        .bind(cert.valid_until)
        .bind(&cert.key_id)
        .bind(&cert.document)
        .bind(&cert.agency_id)
        .bind(&key.request_id)
        .bind(&key.request_digest)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 1 {
            self.commit(tx).await?;
            return Ok(cert);
        }
        drop(tx);
        self.certificate_by_request(key).await?.ok_or_else(|| {
            Error::Corrupt(format!(
                "certificate for request {} neither inserted nor found",
                key.request_id
            ))
        })
    }

    /// One certificate by serial number.
    pub async fn certificate(&self, serial: &str) -> Result<Option<Certificate>> {
        sqlx::query("SELECT * FROM certificates WHERE serial = $1")
            .bind(serial)
            .fetch_optional(&self.read)
            .await?
            .map(|r| certificate_from_row(&r))
            .transpose()
    }

    /// Certificates newest first, after the cursor (issue time, serial) of a previous
    /// page.
    pub async fn list_certificates(
        &self,
        filter: &CertificateFilter,
        after: Option<(i64, String)>,
        limit: usize,
        now: i64,
    ) -> Result<Vec<Certificate>> {
        let mut sql = String::from("SELECT * FROM certificates WHERE 1 = 1");
        let mut vals: Vec<Val> = Vec::new();
        let param = |vals: &mut Vec<Val>, v: Val| {
            vals.push(v);
            format!("${}", vals.len())
        };
        if let Some(u) = &filter.uscc {
            let p = param(&mut vals, u.clone().into());
            sql.push_str(&format!(" AND uscc = {p}"));
        }
        match filter.status {
            None => {}
            Some(CertificateStatus::Valid) => {
                let p = param(&mut vals, now.into());
                sql.push_str(&format!(" AND status = 'VALID' AND valid_until > {p}"));
            }
            Some(CertificateStatus::Expired) => {
                let p = param(&mut vals, now.into());
                sql.push_str(&format!(" AND status = 'VALID' AND valid_until <= {p}"));
            }
            Some(other) => {
                let p = param(&mut vals, other.code().into());
                sql.push_str(&format!(" AND status = {p}"));
            }
        }
        if let Some((issued, serial)) = after {
            let a = param(&mut vals, issued.into());
            let b = param(&mut vals, issued.into());
            let c = param(&mut vals, serial.into());
            sql.push_str(&format!(
                " AND (issued_at < {a} OR (issued_at = {b} AND serial < {c}))"
            ));
        }
        sql.push_str(&format!(
            " ORDER BY issued_at DESC, serial DESC LIMIT {}",
            limit
        ));
        bind_all(sqlx::query(&sql), vals)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(certificate_from_row)
            .collect()
    }

    /// Revokes a certificate for good, with the reason verifiers are shown. A retry with
    /// the same request returns the first answer; revoking a revoked certificate again
    /// without one is refused.
    pub async fn revoke_certificate(
        &self,
        serial: &str,
        reason: &str,
        request: Option<&RequestKey>,
        encode: &(dyn Fn(&Certificate) -> Vec<u8> + Send + Sync),
    ) -> Result<Replay<Certificate>> {
        // A retry racing its first attempt replays that attempt's answer.
        request_log::retrying_races(|| self.revoke_once(serial, reason, request, encode)).await
    }

    async fn revoke_once(
        &self,
        serial: &str,
        reason: &str,
        request: Option<&RequestKey>,
        encode: &(dyn Fn(&Certificate) -> Vec<u8> + Send + Sync),
    ) -> Result<Replay<Certificate>> {
        let mut tx = match request_log::begin(self, request).await? {
            Ok(tx) => tx,
            Err(bytes) => return Ok(Replay::Replayed(bytes)),
        };
        // Locked (PostgreSQL; SQLite has one writer) so that of two revocations at
        // once the second sees the first, and is refused instead of replacing its reason.
        let row = sqlx::query(&format!(
            "SELECT * FROM certificates WHERE serial = $1{}",
            super::sql::for_update(self.backend)
        ))
        .bind(serial)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| domain::Error::NotFound(format!("certificates/{serial}")))?;
        let mut cert = certificate_from_row(&row)?;
        if cert.status == CertificateStatus::Revoked {
            // A copy of this request that held the lock first has revoked it: the
            // copy answers as that one did.
            if let Some(key) = request {
                if let Some(bytes) = request_log::find(&mut tx, key).await? {
                    return Ok(Replay::Replayed(bytes));
                }
            }
            return Err(
                domain::Error::FailedPrecondition(vec![PreconditionViolation {
                    kind: "ALREADY_REVOKED".into(),
                    subject: cert.resource_name(),
                    description: format!(
                        "{} was already revoked: {}",
                        cert.resource_name(),
                        cert.revocation_reason.clone().unwrap_or_default()
                    ),
                }])
                .into(),
            );
        }
        let now = now_millis();
        sqlx::query(
            "UPDATE certificates SET status = 'REVOKED', status_reason = $1, \
             revocation_reason = $2, revoked_at = $3 WHERE serial = $4",
        )
        .bind(reason)
        .bind(reason)
        .bind(now)
        .bind(serial)
        .execute(&mut *tx)
        .await?;
        cert.status = CertificateStatus::Revoked;
        cert.status_reason = reason.to_string();
        cert.revocation_reason = Some(reason.to_string());
        cert.revoked_at = Some(now);
        if let Some(key) = request {
            request_log::remember(&mut tx, key, encode(&cert)).await?;
        }
        self.commit(tx).await?;
        Ok(Replay::Fresh(cert))
    }

    /// Suspends each valid credit-status certificate whose period a just-written record
    /// contradicts (a penalty, coercive measure or serious-dishonesty listing inside the
    /// certified period that it does not state), saying which record.
    /// Runs in the transaction that writes the records.
    pub(super) async fn suspend_contradicted(
        &self,
        tx: &mut Transaction<'static, Any>,
        written: &[&Record],
        today: NaiveDate,
    ) -> Result<usize> {
        // A batch of records none of which could contradict a certificate reads no
        // certificate at all.
        let counted: Vec<(&Uscc, &Record)> = written
            .iter()
            .filter_map(|r| match &r.content.subject {
                Subject::Enterprise(u) if could_contradict(&r.content) => Some((u, *r)),
                _ => None,
            })
            .collect();
        if counted.is_empty() {
            return Ok(0);
        }
        let now = now_millis();
        let sql = format!(
            "SELECT serial, uscc, period_start_date, period_end_date, issued_at, document FROM certificates \
             WHERE kind = 'CREDIT_STATUS' AND status = 'VALID' AND valid_until > {} AND {}",
            placeholders(self.backend, 1, 1),
            in_json(self.backend, "uscc", 2)
        );
        let rows = bind_all(
            sqlx::query(&sql),
            vec![
                Val::Int(now),
                json_keys(counted.iter().map(|(u, _)| u.as_str())),
            ],
        )
        .fetch_all(&mut **tx)
        .await?;
        let mut suspended = 0;
        for row in rows {
            let serial: String = row.try_get("serial")?;
            let uscc: String = row.try_get("uscc")?;
            let start = stored_date(&row.try_get::<String, _>("period_start_date")?)?;
            let end = stored_date(&row.try_get::<String, _>("period_end_date")?)?;
            let document: String = row.try_get("document")?;
            let issued_on = issue_date(row.try_get::<i64, _>("issued_at")?)
                .ok_or_else(|| Error::Corrupt(format!("certificate {serial}: issue time")))?;
            let in_period = counted.iter().find(|(u, r)| {
                u.as_str() == uscc && contradicts(r, start, end, today) && !states(&document, r)
            });
            let on_issue_day = || {
                counted.iter().find(|(u, r)| {
                    u.as_str() == uscc && contradicts_issue_day(r, issued_on, &document)
                })
            };
            let reason = match (in_period, in_period.is_none().then(on_issue_day).flatten()) {
                (Some((_, record)), _) => suspension_reason(record, None),
                (None, Some((_, record))) => suspension_reason(record, Some(issued_on)),
                (None, None) => continue,
            };
            sqlx::query(
                "UPDATE certificates SET status = 'SUSPENDED', status_reason = $1 \
                 WHERE serial = $2 AND status = 'VALID'",
            )
            .bind(reason)
            .bind(&serial)
            .execute(&mut **tx)
            .await?;
            suspended += 1;
        }
        Ok(suspended)
    }

    /// Marks superseded the valid credit-status certificates that state `record`, just
    /// withdrawn: a withdrawn decision is taken down (SAMR Order 45 Art. 11), and a
    /// certificate still stating it no longer describes the enterprise. So is one that
    /// says the enterprise was listed on its issue date when this listing was the only
    /// one in force that day. Runs in the transaction that withdraws it.
    pub(super) async fn supersede_stating_withdrawn(
        &self,
        tx: &mut Transaction<'static, Any>,
        record: &Record,
        undone: Undone,
    ) -> Result<u64> {
        let Subject::Enterprise(uscc) = &record.content.subject else {
            return Ok(0);
        };
        if !could_contradict(&record.content) {
            return Ok(0);
        }
        let rows = sqlx::query(
            "SELECT serial, document, issued_at FROM certificates \
             WHERE kind = 'CREDIT_STATUS' AND status = 'VALID' AND uscc = $1",
        )
        .bind(uscc.as_str())
        .fetch_all(&mut **tx)
        .await?;
        let reason = match undone {
            Undone::Withdrawn => format!(
                "证明所载记录已撤回：{} (document {}) was withdrawn after issue, so this certificate no longer describes the enterprise",
                record.resource_name(),
                record.content.document_number
            ),
            Undone::Revised => format!(
                "证明所载记录已更正：{} (document {}) was corrected after issue (its enterprise, kind or decision date changed), so this certificate no longer describes the enterprise",
                record.resource_name(),
                record.content.document_number
            ),
        };
        // The enterprise's records as they now stand (this one withdrawn), read once
        // and only for a listing.
        let mut others: Option<Vec<Record>> = None;
        let mut superseded = 0;
        for row in rows {
            let serial: String = row.try_get("serial")?;
            let document: String = row.try_get("document")?;
            let issued_at: i64 = row.try_get("issued_at")?;
            let issued_on = issue_date(issued_at)
                .ok_or_else(|| Error::Corrupt(format!("certificate {serial}: issue time")))?;
            let stated = mentions(&document, record);
            let listed_then = !stated
                && listing_in_force_on(record, issued_on)
                && says_listed_on_issue_date(&document);
            if listed_then {
                if others.is_none() {
                    others = Some(records_with_key(&mut **tx, uscc.as_str()).await?);
                }
                // Another listing in force that day keeps "listed on the issue date"
                // true: one still active, or one repaired (removed early) only after
                // the certificate was issued.
                let mut still = false;
                for r in others.iter().flatten() {
                    // The record as it now stands counts too when it was revised: a
                    // listing redated but still in force that day keeps it true.
                    if (r.id == record.id && undone == Undone::Withdrawn)
                        || !listing_in_force_on(r, issued_on)
                    {
                        continue;
                    }
                    still = match r.status {
                        RecordStatus::Active => true,
                        RecordStatus::Repaired => repaired_at(tx, &r.id)
                            .await?
                            .is_some_and(|at| at > issued_at),
                        _ => false,
                    };
                    if still {
                        break;
                    }
                }
                if still {
                    continue;
                }
            } else if !stated {
                continue;
            }
            superseded += sqlx::query(
                "UPDATE certificates SET status = 'SUPERSEDED', status_reason = $1 \
                 WHERE serial = $2 AND status = 'VALID'",
            )
            // Shown to anyone who verifies: a withdrawn record the certificate did not
            // state is not named (withdrawn decisions leave publicity).
            .bind(match (stated, undone) {
                (true, _) => reason.as_str(),
                (false, Undone::Withdrawn) => UNSTATED_LISTING_WITHDRAWN,
                (false, Undone::Revised) => UNSTATED_LISTING_REVISED,
            })
            .bind(&serial)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        }
        Ok(superseded)
    }

    /// Marks superseded the credit-status certificates suspended over `before`, now
    /// withdrawn (`after` None) or revised into `after` so that it no longer
    /// contradicts them: the suspension's reason names that record to whoever
    /// verifies, a decision no longer published about this enterprise, and no longer
    /// says why. One that another record of the enterprise still contradicts stays
    /// suspended, its reason naming that record instead. Runs in the transaction that
    /// withdraws or revises it, after [`Store::suspend_contradicted`]; returns how many
    /// certificates it changed. `lifted` is the reason a superseded one then gives.
    pub(super) async fn lift_suspensions(
        &self,
        tx: &mut Transaction<'static, Any>,
        before: &Record,
        after: Option<&Record>,
        today: NaiveDate,
    ) -> Result<u64> {
        self.lift_suspensions_as(tx, before, after, today, SUSPENDING_RECORD_UNDONE, None)
            .await
    }

    /// Lifts the suspensions that cite a record of `ended` (enterprise and record id)
    /// whose publicity window has ended by `today`, as [`Store::lift_suspensions`] does
    /// for a withdrawn one: a decision no longer published is no longer named to
    /// whoever verifies. Runs in the transaction that regrades the window's end.
    pub(super) async fn lift_ended_suspensions(
        &self,
        tx: &mut Transaction<'static, Any>,
        ended: &[(Uscc, String)],
        today: NaiveDate,
    ) -> Result<u64> {
        if ended.is_empty() {
            return Ok(0);
        }
        // Suspended certificates are few: one read tells whether any cites these.
        let sql = format!(
            "SELECT uscc, status_reason FROM certificates \
             WHERE kind = 'CREDIT_STATUS' AND status = 'SUSPENDED' AND {}",
            in_json(self.backend, "uscc", 1)
        );
        let suspended: Vec<(String, String)> = bind_all(
            sqlx::query(&sql),
            vec![json_keys(ended.iter().map(|(u, _)| u.as_str()))],
        )
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_>>()?;
        let mut changed = 0;
        for (uscc, id) in ended {
            let cited = format!("records/{id})");
            if !suspended
                .iter()
                .any(|(u, reason)| u == uscc.as_str() && reason.contains(&cited))
            {
                continue;
            }
            let records = records_with_key(&mut **tx, uscc.as_str()).await?;
            let Some(record) = records.iter().find(|r| r.id == *id).cloned() else {
                continue;
            };
            // The record as it stands: past its window it names no suspension.
            changed += self
                .lift_suspensions_as(
                    tx,
                    &record,
                    Some(&record),
                    today,
                    SUSPENDING_RECORD_ENDED,
                    Some(records),
                )
                .await?;
        }
        Ok(changed)
    }

    /// [`Store::lift_suspensions`], giving `lifted` as a superseded certificate's
    /// reason; `others` are the enterprise's records when the caller has read them.
    async fn lift_suspensions_as(
        &self,
        tx: &mut Transaction<'static, Any>,
        before: &Record,
        after: Option<&Record>,
        today: NaiveDate,
        lifted: &str,
        mut others: Option<Vec<Record>>,
    ) -> Result<u64> {
        let Subject::Enterprise(uscc) = &before.content.subject else {
            return Ok(0);
        };
        if !could_contradict(&before.content) {
            return Ok(0);
        }
        // A suspension's reason ends with the record it cites (see `suspend_contradicted`).
        let cited = format!("{})", before.resource_name());
        let suspended = sqlx::query(
            "SELECT serial, status_reason, period_start_date, period_end_date, issued_at, \
             document FROM certificates \
             WHERE kind = 'CREDIT_STATUS' AND status = 'SUSPENDED' AND uscc = $1",
        )
        .bind(uscc.as_str())
        .fetch_all(&mut **tx)
        .await?;
        let mut changed = 0;
        for row in suspended {
            if !row.try_get::<String, _>("status_reason")?.contains(&cited) {
                continue;
            }
            let serial: String = row.try_get("serial")?;
            let start = stored_date(&row.try_get::<String, _>("period_start_date")?)?;
            let end = stored_date(&row.try_get::<String, _>("period_end_date")?)?;
            let document: String = row.try_get("document")?;
            let issued_at: i64 = row.try_get("issued_at")?;
            let issued_on = issue_date(issued_at)
                .ok_or_else(|| Error::Corrupt(format!("certificate {serial}: issue time")))?;
            // The enterprise's records as they now stand (the revision included, a
            // withdrawn one left out): one still contradicting the certificate keeps it
            // suspended, its reason then naming that one.
            if others.is_none() {
                others = Some(records_with_key(&mut **tx, uscc.as_str()).await?);
            }
            let mut still = None;
            for r in others.iter().flatten() {
                // A record past its publicity window is no longer published: it names
                // no suspension, though a listing in force on the issue date stays
                // stored as ACTIVE.
                if (r.id == before.id && after.is_none()) || r.content.publicity_end <= today {
                    continue;
                }
                if contradicts(r, start, end, today) && !states(&document, r) {
                    still = Some(suspension_reason(r, None));
                } else if contradicts_issue_day(r, issued_on, &document)
                    // A listing in force on the issue date and repaired (removed early)
                    // only after it still makes "not listed that day" untrue.
                    || (r.status == RecordStatus::Repaired
                        && listing_in_force_on(r, issued_on)
                        && !says_listed_on_issue_date(&document)
                        && repaired_at(tx, &r.id)
                            .await?
                            .is_some_and(|at| at > issued_at))
                {
                    still = Some(suspension_reason(r, Some(issued_on)));
                }
                if still.is_some() {
                    break;
                }
            }
            let (status, reason) = match &still {
                Some(reason) => ("SUSPENDED", reason.as_str()),
                None => ("SUPERSEDED", lifted),
            };
            changed += sqlx::query(
                "UPDATE certificates SET status = $1, status_reason = $2 \
                 WHERE serial = $3 AND status = 'SUSPENDED'",
            )
            .bind(status)
            .bind(reason)
            .bind(&serial)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        }
        Ok(changed)
    }

    /// Marks superseded the valid annual-report remediation certificates of `usccs` whose
    /// statements no longer hold on `today`: the enterprise left the serious-dishonesty
    /// list, is listed for another cause too, or a filing or listing they rest on
    /// changed. Runs in the transaction that regrades them.
    pub(super) async fn supersede_remediations<'a>(
        &self,
        tx: &mut Transaction<'static, Any>,
        usccs: impl IntoIterator<Item = &'a str>,
        today: NaiveDate,
    ) -> Result<u64> {
        let usccs: Vec<&str> = usccs.into_iter().collect();
        // Few enterprises hold one: one read finds them, and the checks run only then.
        let sql = format!(
            "SELECT serial, uscc, document, issued_at FROM certificates \
             WHERE kind = 'ANNUAL_REPORT_REMEDIATION' AND status = 'VALID' AND {}",
            in_json(self.backend, "uscc", 1)
        );
        let valid = bind_all(sqlx::query(&sql), vec![json_keys(usccs.iter().copied())])
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|row| {
                Ok((
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                ))
            })
            .collect::<Result<Vec<(String, String, String, i64)>>>()?;
        if valid.is_empty() {
            return Ok(0);
        }
        let mut holders: Vec<&str> = valid.iter().map(|(_, u, _, _)| u.as_str()).collect();
        holders.sort_unstable();
        holders.dedup();
        let left = self.supersede_delisted(tx, &holders, today).await?;
        let relisted = self.supersede_relisted(tx, &holders, today).await?;
        Ok(left + relisted + self.supersede_unfounded(tx, &valid, today).await?)
    }

    /// Marks superseded the valid remediation certificates of `usccs` no longer on the
    /// serious-dishonesty list on `today`.
    async fn supersede_delisted(
        &self,
        tx: &mut Transaction<'static, Any>,
        usccs: &[&str],
        today: NaiveDate,
    ) -> Result<u64> {
        let sql = format!(
            "UPDATE certificates SET status = 'SUPERSEDED', status_reason = {} \
             WHERE kind = 'ANNUAL_REPORT_REMEDIATION' AND status = 'VALID' AND {} \
             AND NOT EXISTS (SELECT 1 FROM records r WHERE r.subject_key = certificates.uscc \
             AND r.kind = '{}' AND r.status = '{}' AND r.publicity_end_date > {})",
            placeholders(self.backend, 1, 1),
            in_json(self.backend, "uscc", 2),
            RecordKind::SeriousDishonestyListing.code(),
            RecordStatus::Active.code(),
            placeholders(self.backend, 3, 1),
        );
        let done = bind_all(
            sqlx::query(&sql),
            vec![
                Val::Text(format!(
                    "企业已移出严重违法失信名单（{today}）：the enterprise has left the serious-dishonesty list, so this certificate no longer describes it"
                )),
                json_keys(usccs.iter().copied()),
                Val::Text(today.to_string()),
            ],
        )
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected())
    }

    /// Marks superseded those of the `valid` remediation certificates (serial, USCC,
    /// document) still valid whose statements no longer hold: recomputed from the records
    /// as they are now, they fail (a filing withdrawn, an abnormal listing for another
    /// cause added) or name other reports or filings than the certificate does (another
    /// missed year listed since).
    async fn supersede_unfounded(
        &self,
        tx: &mut Transaction<'static, Any>,
        valid: &[(String, String, String, i64)],
        today: NaiveDate,
    ) -> Result<u64> {
        let mut superseded = 0;
        for (serial, uscc, document, issued_at) in valid {
            let records = records_with_key(&mut **tx, uscc).await?;
            let enterprise = Uscc::parse(uscc).map_err(|e| Error::Corrupt(e.to_string()))?;
            let issued_on = issue_date(*issued_at)
                .ok_or_else(|| Error::Corrupt(format!("certificate {serial}: issue time")))?;
            // The reports owed on its issue date: one falling due since makes it no
            // less true (a remediation certificate is not a promise about next year).
            let reason = match remediation_statements(&enterprise, &records, today, issued_on) {
                Err(unmet) => unmet.into_iter().next().map(|u| {
                    format!("证明所据情况已变化：{}", u.description)
                }),
                Ok(now) if stated_reports(&now) != stated_reports_in(document) => Some(
                    "证明所据情况已变化：the missed annual reports and filings it states are no longer those on record".to_string(),
                ),
                Ok(_) => None,
            };
            let Some(reason) = reason else { continue };
            let done = sqlx::query(
                "UPDATE certificates SET status = 'SUPERSEDED', status_reason = $1 \
                 WHERE serial = $2 AND status = 'VALID'",
            )
            .bind(reason)
            .bind(serial)
            .execute(&mut **tx)
            .await?;
            superseded += done.rows_affected();
        }
        Ok(superseded)
    }

    /// Marks superseded the valid remediation certificates of enterprises now on the
    /// serious-dishonesty list for a cause other than missed annual reports: such a
    /// certificate states that this is the only cause. Runs after
    /// [`Store::supersede_remediations`] in the same transaction.
    async fn supersede_relisted(
        &self,
        tx: &mut Transaction<'static, Any>,
        usccs: &[&str],
        today: NaiveDate,
    ) -> Result<u64> {
        let sql = format!(
            "SELECT r.id, r.subject_key, r.document_number, r.attributes FROM records r \
             JOIN certificates c ON c.uscc = r.subject_key \
             WHERE c.kind = 'ANNUAL_REPORT_REMEDIATION' AND c.status = 'VALID' AND {} \
             AND r.kind = '{}' AND r.status = '{}' AND r.publicity_end_date > {}",
            in_json(self.backend, "c.uscc", 1),
            RecordKind::SeriousDishonestyListing.code(),
            RecordStatus::Active.code(),
            placeholders(self.backend, 2, 1),
        );
        let rows = bind_all(
            sqlx::query(&sql),
            vec![
                json_keys(usccs.iter().copied()),
                Val::Text(today.to_string()),
            ],
        )
        .fetch_all(&mut **tx)
        .await?;
        let mut superseded = 0;
        for row in rows {
            let id: String = row.try_get("id")?;
            let attributes: Attributes =
                serde_json::from_str(&row.try_get::<String, _>("attributes")?)
                    .map_err(|_| Error::Corrupt(format!("record {id}: bad attributes")))?;
            if attributes.serious_listing_cause == Some(SeriousListingCause::AbnormalListThreeYears)
            {
                continue;
            }
            let document: String = row.try_get("document_number")?;
            let done = sqlx::query(
                "UPDATE certificates SET status = 'SUPERSEDED', status_reason = $1 \
                 WHERE kind = 'ANNUAL_REPORT_REMEDIATION' AND status = 'VALID' AND uscc = $2",
            )
            .bind(format!(
                "企业因其他原因列入严重违法失信名单（{document}，records/{id}）：the enterprise is now listed for a cause other than missed annual reports, so this certificate no longer describes it"
            ))
            .bind(row.try_get::<String, _>("subject_key")?)
            .execute(&mut **tx)
            .await?;
            superseded += done.rows_affected();
        }
        Ok(superseded)
    }
}
