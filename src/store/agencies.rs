//! Agencies and their bearer tokens (stored only as SHA-256 hashes).

use std::collections::BTreeSet;

use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{now_millis, stored_code, Error, Result, Store};
use crate::domain::agency::{Agency, Scope};
use crate::domain::codes::AgencyKind;

/// What `agency add` asks for.
#[derive(Debug, Clone)]
pub struct NewAgency {
    pub display_name: String,
    pub kind: AgencyKind,
    /// Empty means the kind's default scopes.
    pub scopes: BTreeSet<Scope>,
    /// A name its TLS client certificate carries (Common Name, or a DNS, URI or e-mail
    /// Subject Alternative Name); connections presenting it act as this agency. One
    /// name identifies at most one agency.
    pub cert_subject: Option<String>,
}

/// The SHA-256 of a token, hex: the only form a token is kept in.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `token` has the shape [`new_token`] gives every token: anything else is
/// refused without a database read.
pub fn token_shaped(token: &str) -> bool {
    token.strip_prefix("chub_").is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

fn new_token() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!(
        "chub_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// An agency with what only administrators see.
#[derive(Debug, Clone)]
pub struct AgencyListing {
    pub agency: Agency,
    pub revoked: bool,
    /// The client-certificate name bound to it, if any.
    pub cert_subject: Option<String>,
}

fn agency_from_row(row: &AnyRow) -> Result<Agency> {
    let kind: String = row.try_get("kind")?;
    let scopes: String = row.try_get("scopes")?;
    Ok(Agency {
        id: row.try_get("id")?,
        display_name: row.try_get("display_name")?,
        kind: stored_code(&kind, AgencyKind::from_code)?,
        scopes: scopes
            .split_whitespace()
            .map(|s| stored_code(s, Scope::from_code))
            .collect::<Result<_>>()?,
        rate_limit: row
            .try_get::<Option<i64>, _>("rate_limit")?
            .map(|r| r.clamp(0, u32::MAX as i64) as u32),
    })
}

impl Store {
    /// Creates an agency and returns it with its bearer token, which is shown once and
    /// never stored.
    pub async fn create_agency(&self, new: NewAgency) -> Result<(Agency, String)> {
        let scopes = if new.scopes.is_empty() {
            new.kind.default_scopes()
        } else {
            new.scopes
        };
        let mut suffix = [0u8; 4];
        rand::thread_rng().fill_bytes(&mut suffix);
        let agency = Agency {
            id: format!("{}-{}", new.kind.label(), hex::encode(suffix)),
            display_name: new.display_name,
            kind: new.kind,
            scopes,
            rate_limit: None,
        };
        if let Some(name) = &new.cert_subject {
            let taken: Option<String> =
                sqlx::query_scalar("SELECT id FROM agencies WHERE cert_subject = $1")
                    .bind(name)
                    .fetch_optional(&self.read)
                    .await?;
            if let Some(other) = taken {
                return Err(crate::domain::Error::AlreadyExists(format!(
                    "the certificate name {name:?} already identifies agencies/{other}"
                ))
                .into());
            }
        }
        let token = new_token();
        let scope_text = agency
            .scopes
            .iter()
            .map(|s| s.code())
            .collect::<Vec<_>>()
            .join(" ");
        sqlx::query(
            "INSERT INTO agencies (id, display_name, kind, scopes, token_hash, created_at, cert_subject) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&agency.id)
        .bind(&agency.display_name)
        .bind(agency.kind.code())
        .bind(scope_text)
        .bind(token_hash(&token))
        .bind(now_millis())
        .bind(&new.cert_subject)
        .execute(&self.write)
        .await
        .map_err(|e| match (&e, &new.cert_subject) {
            // Another `agency add` took the name between the check above and here.
            (sqlx::Error::Database(db), Some(name)) if db.is_unique_violation() => {
                crate::domain::Error::AlreadyExists(format!(
                    "the certificate name {name:?} already identifies another agency"
                ))
                .into()
            }
            _ => super::Error::from(e),
        })?;
        Ok((agency, token))
    }

    /// The active agency holding `token`, if any.
    pub async fn agency_by_token(&self, token: &str) -> Result<Option<Agency>> {
        let row = sqlx::query(
            "SELECT id, display_name, kind, scopes, rate_limit FROM agencies \
             WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(token_hash(token))
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(agency_from_row).transpose()
    }

    /// Agency `id` if it has not been revoked, as it is now (scopes may have changed).
    pub async fn active_agency(&self, id: &str) -> Result<Option<Agency>> {
        let row = sqlx::query(
            "SELECT id, display_name, kind, scopes, rate_limit FROM agencies \
             WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(agency_from_row).transpose()
    }

    /// Sets how many requests per second agency `id` may make (None: the server's
    /// default). Takes effect on every replica within the token cache's lifetime.
    pub async fn set_agency_rate_limit(&self, id: &str, limit: Option<u32>) -> Result<()> {
        let done = sqlx::query("UPDATE agencies SET rate_limit = $1 WHERE id = $2")
            .bind(limit.map(i64::from))
            .bind(id)
            .execute(&self.write)
            .await?;
        if done.rows_affected() == 0 {
            return Err(crate::domain::Error::NotFound(format!("agencies/{id}")).into());
        }
        Ok(())
    }

    /// The active agency whose certificate name is one of `names`.
    pub async fn agency_by_certificate(&self, names: &[String]) -> Result<Option<Agency>> {
        if names.is_empty() {
            return Ok(None);
        }
        let sql = format!(
            "SELECT id, display_name, kind, scopes, rate_limit FROM agencies \
             WHERE revoked_at IS NULL AND cert_subject IN ({}) ORDER BY id LIMIT 1",
            super::sql::placeholders(self.backend(), 1, names.len())
        );
        let mut query = sqlx::query(&sql);
        for name in names {
            query = query.bind(name);
        }
        let row = query.fetch_optional(&self.read).await?;
        row.as_ref().map(agency_from_row).transpose()
    }

    /// Every agency, as `agency list` shows it.
    pub async fn list_agencies(&self) -> Result<Vec<AgencyListing>> {
        let rows = sqlx::query(
            "SELECT id, display_name, kind, scopes, rate_limit, revoked_at, cert_subject \
             FROM agencies ORDER BY id",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|row| {
                let revoked: Option<i64> = row.try_get("revoked_at")?;
                Ok(AgencyListing {
                    agency: agency_from_row(row)?,
                    revoked: revoked.is_some(),
                    cert_subject: row.try_get("cert_subject")?,
                })
            })
            .collect()
    }

    /// Gives agency `id` a new token and returns it: the old one stops working (within
    /// the token cache's lifetime), while the agency, its records and its history stay
    /// the same (a revoked agency and a new one would split them, and the old agency's
    /// records could no longer be withdrawn or revised by anyone).
    pub async fn rotate_agency_token(&self, id: &str) -> Result<String> {
        let token = new_token();
        let done =
            sqlx::query("UPDATE agencies SET token_hash = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(token_hash(&token))
                .bind(id)
                .execute(&self.write)
                .await?;
        if done.rows_affected() == 0 {
            return Err(crate::domain::Error::NotFound(format!(
                "agencies/{id} (or it is revoked: a revoked agency is not given a new token)"
            ))
            .into());
        }
        Ok(token)
    }

    /// Revokes an agency's token; its calls fail as UNAUTHENTICATED from then on.
    pub async fn revoke_agency(&self, id: &str) -> Result<()> {
        let done =
            sqlx::query("UPDATE agencies SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now_millis())
                .bind(id)
                .execute(&self.write)
                .await?;
        if done.rows_affected() == 0 {
            let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM agencies WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.read)
                .await?;
            return Err(Error::Domain(match exists {
                Some(_) => crate::domain::Error::FailedPrecondition(vec![
                    crate::domain::error::PreconditionViolation {
                        kind: "ALREADY_REVOKED".into(),
                        subject: format!("agencies/{id}"),
                        description: format!("agencies/{id} is already revoked"),
                    },
                ]),
                None => crate::domain::Error::NotFound(format!("agencies/{id}")),
            }));
        }
        Ok(())
    }
}
