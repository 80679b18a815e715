//! `CertificateService`: issuing signed credit certificates to enterprises, keeping their
//! register, and verifying presented documents for anyone (public, rate-limited per
//! client address).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};

use super::convert::{date, enterprise_name, filter_enum, prose, required_enum, timestamp};
use super::paging::{decode_token, next_page, page_size};
use super::public::PublicLimit;
use super::subjects::noting_on_refusal;
use super::{replayed, request_key, Shared};
use crate::audit::AuditNote;
use crate::auth::caller;
use crate::domain::agency::Scope;
use crate::domain::certificate::{
    check_period, credential, credit_status_statements, is_registered_document, judge, presented,
    remediation_statements, serial, Certificate, CertificateKind, CertificateStatus, Draft, Issuer,
    VerificationResult,
};
use crate::domain::codes::{AgencyKind, EnterpriseStatus};
use crate::domain::data_integrity::{self, public_key_multibase, ProofOptions};
use crate::domain::{Error, PreconditionViolation, Violations};
use crate::proto::v1::{self as pb, certificate_service_server::CertificateService};
use crate::store::{now_millis, CertificateFilter, Replay};

/// Largest document VerifyCertificate reads; certificates are a few kilobytes.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// How certificates are signed and verified.
#[derive(Clone)]
pub struct CertificateSettings {
    /// The key new certificates are signed with.
    pub signing_key: SigningKey,
    /// Its id, the fragment of the proof's `verificationMethod`.
    pub key_id: String,
    /// Who issues, and where status is checked.
    pub issuer: Issuer,
    /// How long a new certificate is valid (whole seconds count).
    pub validity: std::time::Duration,
    /// Public calls (verify, list keys) per second per client address.
    pub public_rate: u32,
}

impl std::fmt::Debug for CertificateSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateSettings")
            .field("signing_key", &"[REDACTED]")
            .field("key_id", &self.key_id)
            .field("issuer", &self.issuer)
            .field("validity", &self.validity)
            .field("public_rate", &self.public_rate)
            .finish()
    }
}

/// Default validity of a certificate, in days.
pub const DEFAULT_VALIDITY_DAYS: u32 = 90;
/// Default public calls per second per client address.
pub const DEFAULT_PUBLIC_RATE: u32 = 50;

impl Default for CertificateSettings {
    /// A key made up for this process (tests); servers pass a configured one.
    fn default() -> Self {
        let signing_key = crate::audit::random_key();
        CertificateSettings {
            key_id: key_fingerprint(&signing_key.verifying_key()),
            signing_key,
            issuer: Issuer {
                id: "did:web:credit-hub.localhost".into(),
                name: "市场监督管理局（credit-hub）".into(),
                status_service:
                    "grpc://127.0.0.1:50051/credithub.v1.CertificateService/VerifyCertificate"
                        .into(),
            },
            validity: std::time::Duration::from_secs(u64::from(DEFAULT_VALIDITY_DAYS) * 86_400),
            public_rate: DEFAULT_PUBLIC_RATE,
        }
    }
}

/// A key id derived from the public key, for keys configured without one.
pub fn key_fingerprint(key: &VerifyingKey) -> String {
    format!("key-{}", &hex::encode(Sha256::digest(key.as_bytes()))[..16])
}

/// The certificate service.
#[derive(Clone)]
pub struct CertificateApi {
    state: Shared,
    settings: Arc<CertificateSettings>,
    /// Issuer public keys by key id, filled from the register on first need.
    keys: Arc<RwLock<HashMap<String, VerifyingKey>>>,
    /// Key ids the register lacked when last read for them, and when: anyone may name
    /// one, and copies of a made-up id must not each become a read. The lock also
    /// makes calls that find the same new key read the register once.
    unknown_keys: Arc<tokio::sync::Mutex<HashMap<String, std::time::Instant>>>,
    public_calls: PublicLimit,
}

/// How long a key id the register lacked is answered as unknown without reading it
/// again.
const UNKNOWN_KEY_KEPT: std::time::Duration = std::time::Duration::from_secs(1);

/// Most unknown key ids remembered.
const UNKNOWN_KEYS_KEPT: usize = 1_024;

impl CertificateApi {
    pub fn new(state: Shared, settings: CertificateSettings) -> Self {
        CertificateApi {
            state,
            public_calls: PublicLimit::new(settings.public_rate),
            settings: Arc::new(settings),
            keys: Arc::default(),
            unknown_keys: Arc::default(),
        }
    }

    /// The public key of `key_id`, asking the register when it is not yet known here
    /// (another replica may have started signing with a new key).
    async fn key(&self, key_id: &str) -> Result<Option<VerifyingKey>, Status> {
        if let Some(k) = self.keys.read().expect("key cache").get(key_id) {
            return Ok(Some(*k));
        }
        // No configured key has such an id (see `config`): no read, nothing kept.
        if key_id.len() > 64 {
            return Ok(None);
        }
        let mut unknown = self.unknown_keys.lock().await;
        // Another call may have read the register while this one waited.
        if let Some(k) = self.keys.read().expect("key cache").get(key_id) {
            return Ok(Some(*k));
        }
        let now = std::time::Instant::now();
        if unknown
            .get(key_id)
            .is_some_and(|at| now.duration_since(*at) < UNKNOWN_KEY_KEPT)
        {
            return Ok(None);
        }
        let mut loaded = HashMap::new();
        for k in self.state.store.issuer_keys().await? {
            match data_integrity::parse_public_key(&k.public_key_multibase) {
                Ok(public) => {
                    loaded.insert(k.key_id, public);
                }
                Err(e) => tracing::error!(key_id = %k.key_id, error = %e, "unreadable issuer key"),
            }
        }
        let found = loaded.get(key_id).copied();
        *self.keys.write().expect("key cache") = loaded;
        if found.is_none() {
            if unknown.len() >= UNKNOWN_KEYS_KEPT {
                unknown.retain(|_, at| now.duration_since(*at) < UNKNOWN_KEY_KEPT);
                if unknown.len() >= UNKNOWN_KEYS_KEPT {
                    unknown.clear();
                }
            }
            unknown.insert(key_id.to_string(), now);
        }
        Ok(found)
    }

    /// Signs the certificate of `draft` for `agency_id`.
    fn sign(
        &self,
        draft: &Draft,
        period: Option<(chrono::NaiveDate, chrono::NaiveDate)>,
        agency_id: &str,
    ) -> Certificate {
        let s = &self.settings;
        let unsigned = credential(draft, &s.issuer);
        let signed = data_integrity::sign(
            &unsigned,
            &ProofOptions {
                verification_method: s.issuer.verification_method(&s.key_id),
                created: crate::domain::certificate::xsd_time(draft.issued),
            },
            &s.signing_key,
        );
        Certificate {
            serial: draft.serial.clone(),
            uscc: draft.uscc.clone(),
            enterprise_name: draft.enterprise_name.clone(),
            kind: draft.kind,
            period,
            status: CertificateStatus::Valid,
            status_reason: String::new(),
            issued_at: draft.issued.timestamp_millis(),
            valid_from: draft.issued.timestamp_millis(),
            valid_until: draft.valid_until.timestamp_millis(),
            key_id: s.key_id.clone(),
            document: signed.to_string(),
            revocation_reason: None,
            revoked_at: None,
            agency_id: agency_id.to_string(),
        }
    }
}

fn date_text(d: Option<chrono::NaiveDate>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

/// The proto form of a certificate as it stands at `now`.
pub fn certificate_out(c: &Certificate, now: i64) -> pb::Certificate {
    pb::Certificate {
        name: c.resource_name(),
        serial_number: c.serial.clone(),
        enterprise: c.uscc.resource_name(),
        enterprise_display_name: c.enterprise_name.clone(),
        kind: c.kind.number(),
        period_start_date: date_text(c.period.map(|p| p.0)),
        period_end_date: date_text(c.period.map(|p| p.1)),
        status: c.status_at(now).number(),
        status_reason: c.status_reason.clone(),
        issue_time: Some(timestamp(c.issued_at)),
        valid_from: Some(timestamp(c.valid_from)),
        valid_until: Some(timestamp(c.valid_until)),
        issuer_key_id: c.key_id.clone(),
        document: c.document.clone(),
        revocation_reason: c.revocation_reason.clone().unwrap_or_default(),
        revoke_time: c.revoked_at.map(timestamp),
    }
}

#[tonic::async_trait]
impl CertificateService for CertificateApi {
    async fn issue_certificate(
        &self,
        req: Request<pb::IssueCertificateRequest>,
    ) -> Result<Response<pb::IssueCertificateResponse>, Status> {
        let agency = caller(&req, Scope::CertificatesIssue, &self.state.keyer)?;
        let note = AuditNote::of(&req);
        let r = req.get_ref();
        noting_on_refusal(&note, r, &self.state.keyer, || {
            Ok(agency.require_kind(AgencyKind::MarketRegulation, "issue certificates")?)
        })?;
        let today = self.state.clock.today();
        let mut v = Violations::default();
        let uscc = v.check(enterprise_name("enterprise", &r.enterprise));
        if let Some(u) = &uscc {
            note.subject(u.resource_name());
        }
        let kind = required_enum(&mut v, "kind", r.kind, CertificateKind::from_number);
        let start = date(&mut v, "period_start_date", &r.period_start_date, false);
        let end = date(&mut v, "period_end_date", &r.period_end_date, false);
        if r.request_id.trim().is_empty() {
            v.add(
                "request_id",
                "is required: a retry with the same request_id returns the same certificate",
            );
        }
        let period = match (kind, start, end) {
            (Some(CertificateKind::CreditStatus), Some(s), Some(e)) => {
                v.check(check_period(s, e, today).map(Some))
            }
            (Some(CertificateKind::AnnualReportRemediation), Some(s), Some(e)) => {
                for (field, given) in [("period_start_date", s), ("period_end_date", e)] {
                    if given.is_some() {
                        v.add(
                            field,
                            "must be empty for an annual-report remediation certificate, which states the enterprise's current listing",
                        );
                    }
                }
                Some(None)
            }
            _ => None,
        };
        let key = v.check(request_key(
            &self.state,
            &agency.id,
            "IssueCertificate",
            &r.request_id,
            r,
        ));
        let (uscc, kind, period, key) = v.finish_all((uscc, kind, period, key.flatten()))?;
        note.request_id(&r.request_id);
        let now = now_millis();
        if let Some(existing) = self.state.store.certificate_by_request(&key).await? {
            note.count(1);
            return Ok(Response::new(pb::IssueCertificateResponse {
                certificate: Some(certificate_out(&existing, now)),
            }));
        }
        let issued: DateTime<Utc> =
            DateTime::from_timestamp_millis(now - now % 1000).unwrap_or_else(Utc::now);
        let valid_until = issued
            + chrono::Duration::seconds(self.settings.validity.as_secs().min(1 << 40) as i64);
        // Noted before the write (see `AuditNote`).
        note.count(1);
        let stored = self
            .state
            .store
            .issue_certificate(&uscc, &key, |enterprise, records, repaired_on| {
                // Read with the records, under the lock a registry update takes too:
                // a deregistration or new name is seen, or comes after.
                let enterprise = enterprise.ok_or_else(|| Error::NotFound(uscc.resource_name()))?;
                // A certificate is for resuming business: one that no longer exists
                // has none.
                if enterprise.status == EnterpriseStatus::Deregistered {
                    return Err(Error::FailedPrecondition(vec![PreconditionViolation {
                        kind: "ENTERPRISE_DEREGISTERED".into(),
                        subject: uscc.resource_name(),
                        description: format!(
                            "{} is deregistered (注销): no certificate is issued for it",
                            uscc.resource_name()
                        ),
                    }]));
                }
                let statements = match (kind, period) {
                    (CertificateKind::CreditStatus, Some((s, e))) => {
                        credit_status_statements(records, repaired_on, s, e, today)
                    }
                    (CertificateKind::AnnualReportRemediation, _) => {
                        remediation_statements(&uscc, records, today, today)
                            .map_err(Error::FailedPrecondition)?
                    }
                    (CertificateKind::CreditStatus, None) => {
                        return Err(Error::invalid("period_start_date", "is required"))
                    }
                };
                let draft = Draft {
                    serial: serial(issued, rand::random()),
                    uscc: uscc.clone(),
                    enterprise_name: enterprise.display_name.clone(),
                    kind,
                    issued,
                    valid_until,
                    statements,
                };
                Ok(self.sign(&draft, period, &agency.id))
            })
            .await?;
        Ok(Response::new(pb::IssueCertificateResponse {
            certificate: Some(certificate_out(&stored, now)),
        }))
    }

    async fn get_certificate(
        &self,
        req: Request<pb::GetCertificateRequest>,
    ) -> Result<Response<pb::GetCertificateResponse>, Status> {
        caller(&req, Scope::CertificatesIssue, &self.state.keyer)?;
        let serial = super::convert::resource_id("name", "certificates", &req.get_ref().name)?;
        let cert = self
            .state
            .store
            .certificate(serial)
            .await?
            .ok_or_else(|| Error::NotFound(format!("certificates/{serial}")))?;
        AuditNote::of(&req)
            .subject(cert.uscc.resource_name())
            .count(1);
        Ok(Response::new(pb::GetCertificateResponse {
            certificate: Some(certificate_out(&cert, now_millis())),
        }))
    }

    async fn list_certificates(
        &self,
        req: Request<pb::ListCertificatesRequest>,
    ) -> Result<Response<pb::ListCertificatesResponse>, Status> {
        caller(&req, Scope::CertificatesIssue, &self.state.keyer)?;
        let note = AuditNote::of(&req);
        let r = req.get_ref();
        let (size, uscc, status, query, after) =
            noting_on_refusal(&note, r, &self.state.keyer, || {
                let size = page_size(r.page_size)?;
                let uscc = if r.enterprise.is_empty() {
                    None
                } else {
                    Some(enterprise_name("enterprise", &r.enterprise)?)
                };
                let status = filter_enum("status", r.status, CertificateStatus::from_number)?;
                let query = format!(
                    "certificates?enterprise={}&status={}",
                    r.enterprise,
                    status.map_or("", |s| s.code())
                );
                let after: Option<(i64, String)> = decode_token(&query, &r.page_token)?;
                Ok((size, uscc, status, query, after))
            })?;
        // Asked about one enterprise, the entry names it even when nothing is found.
        if let Some(u) = &uscc {
            note.subject(u.resource_name());
        }
        let now = now_millis();
        let filter = CertificateFilter {
            uscc: uscc.as_ref().map(|u| u.as_str().to_string()),
            status,
        };
        let mut found = self
            .state
            .store
            .list_certificates(&filter, after, size + 1, now)
            .await?;
        let size = super::paging::size_within_bytes(&found, size, |c| {
            prost::Message::encoded_len(&certificate_out(c, now))
        });
        let next_page_token = next_page(&mut found, size, &query, |c| {
            (c.issued_at, c.serial.clone())
        });
        if uscc.is_none() {
            note.subjects(found.iter().map(|c| c.uscc.resource_name()));
        }
        note.count(found.len());
        Ok(Response::new(pb::ListCertificatesResponse {
            certificates: found.iter().map(|c| certificate_out(c, now)).collect(),
            next_page_token,
        }))
    }

    async fn revoke_certificate(
        &self,
        req: Request<pb::RevokeCertificateRequest>,
    ) -> Result<Response<pb::RevokeCertificateResponse>, Status> {
        let agency = caller(&req, Scope::CertificatesRevoke, &self.state.keyer)?;
        agency.require_kind(AgencyKind::MarketRegulation, "revoke certificates")?;
        let note = AuditNote::of(&req);
        let r = req.get_ref();
        let mut v = Violations::default();
        let serial =
            v.check(super::convert::resource_id("name", "certificates", &r.name).map(String::from));
        let reason = prose(&mut v, "reason", &r.reason, true, 500);
        let key = v.check(request_key(
            &self.state,
            &agency.id,
            "RevokeCertificate",
            &r.request_id,
            r,
        ));
        let (serial, reason, key) = v.finish_all((serial, reason, key))?;
        note.request_id(&r.request_id).count(1);
        // Noted before the write (see `AuditNote`); a retry that
        // replays the first answer names the enterprise too.
        if let Some(cert) = self.state.store.certificate(&serial).await? {
            note.subject(cert.uscc.resource_name());
        }
        let now = now_millis();
        let encode = move |c: &Certificate| {
            prost::Message::encode_to_vec(&pb::RevokeCertificateResponse {
                certificate: Some(certificate_out(c, now)),
            })
        };
        let response = match self
            .state
            .store
            .revoke_certificate(&serial, &reason, key.as_ref(), &encode)
            .await?
        {
            Replay::Fresh(cert) => pb::RevokeCertificateResponse {
                certificate: Some(certificate_out(&cert, now)),
            },
            Replay::Replayed(bytes) => replayed(&bytes)?,
        };
        Ok(Response::new(response))
    }

    async fn verify_certificate(
        &self,
        req: Request<pb::VerifyCertificateRequest>,
    ) -> Result<Response<pb::VerifyCertificateResponse>, Status> {
        self.public_calls.admit(&req, &self.state.peers)?;
        let document = &req.get_ref().document;
        if document.trim().is_empty() {
            return Err(Error::invalid("document", "is required: the certificate JSON").into());
        }
        if document.len() > MAX_DOCUMENT_BYTES {
            return Err(Error::invalid(
                "document",
                format!(
                    "is {} bytes; a certificate is at most {MAX_DOCUMENT_BYTES}",
                    document.len()
                ),
            )
            .into());
        }
        let tampered = |reason: &str| {
            Response::new(pb::VerifyCertificateResponse {
                result: VerificationResult::Tampered.number(),
                reason: reason.to_string(),
                ..Default::default()
            })
        };
        let Some(doc) = crate::domain::jcs::parse_strict(document) else {
            return Ok(tampered(
                "do not trust this document: it is not valid JSON, or names a field twice",
            ));
        };
        let shown = presented(&doc);
        // A key is known by its id alone: documents signed before the configured
        // issuer id changed (or by a replica configured with another during a
        // roll-out) name the same key under that id, as ListIssuerKeys lists it.
        let key = match shown.key_id.as_deref() {
            Some(id) => self.key(id).await?,
            None => None,
        };
        let proof = data_integrity::verify(&doc, |_| key).map(|_| ());
        let now = now_millis();
        let register = match (&proof, &shown.serial) {
            (Ok(()), Some(serial)) => self.state.store.certificate(serial).await?,
            _ => None,
        };
        // Every certificate this service signs is in its register, exactly as handed
        // out, before it is returned: a genuine signature over an unknown serial, or
        // over other content under a known one, was made with the key outside the
        // service (a retired key that leaked, say), whatever its dates say.
        let register = register.filter(|c| is_registered_document(&doc, &c.document));
        if proof.is_ok() && register.is_none() {
            return Ok(Response::new(pb::VerifyCertificateResponse {
                result: VerificationResult::NotRegistered.number(),
                reason: "do not trust this document: the signature is genuine, but the issuer's register holds no such certificate under this serial; ask the issuer".into(),
                serial_number: shown.serial.unwrap_or_default(),
                issuer_key_id: shown.key_id.unwrap_or_default(),
                status: 0,
            }));
        }
        let (result, reason) = judge(
            proof,
            &shown,
            register
                .as_ref()
                .map(|c| (c.status, c.status_reason.clone())),
            Utc::now(),
        );
        Ok(Response::new(pb::VerifyCertificateResponse {
            result: result.number(),
            reason,
            serial_number: shown.serial.unwrap_or_default(),
            issuer_key_id: shown.key_id.unwrap_or_default(),
            status: register.map_or(0, |c| c.status_at(now).number()),
        }))
    }

    async fn list_issuer_keys(
        &self,
        req: Request<pb::ListIssuerKeysRequest>,
    ) -> Result<Response<pb::ListIssuerKeysResponse>, Status> {
        self.public_calls.admit(&req, &self.state.peers)?;
        let keys = self.state.store.issuer_keys().await?;
        Ok(Response::new(pb::ListIssuerKeysResponse {
            keys: keys
                .into_iter()
                .map(|k| pb::IssuerKey {
                    key_id: k.key_id,
                    public_key_multibase: k.public_key_multibase,
                    valid_from: Some(timestamp(k.valid_from)),
                    valid_until: k.valid_until.map(timestamp),
                })
                .collect(),
        }))
    }
}

/// The multibase public key of the configured signing key.
pub fn signing_public_key(settings: &CertificateSettings) -> String {
    public_key_multibase(&settings.signing_key.verifying_key())
}
