//! `RegistryService`: the entity registry, maintained by market regulation.

use std::collections::HashMap;

use tonic::{Request, Response, Status};

use super::convert::{enterprise_in, enterprise_name, enterprise_out, filter_enum};
use super::paging::{decode_token, next_page, page_size, size_within_bytes};
use super::subjects::noting_on_refusal;
use super::{batch_size, replayed, request_key, Shared};
use crate::audit::AuditNote;
use crate::auth::caller;
use crate::domain::agency::Scope;
use crate::domain::codes::{AgencyKind, EnterpriseStatus};
use crate::domain::enterprise::{is_industry_code, is_region_code, Enterprise};
use crate::domain::{Error, Violations};
use crate::proto::v1::{self as pb, registry_service_server::RegistryService};
use crate::store::{EnterpriseFilter, Replay};

/// The registry service.
#[derive(Debug, Clone)]
pub struct RegistryApi {
    state: Shared,
}

impl RegistryApi {
    /// Serves the registry from shared state.
    pub fn new(state: Shared) -> Self {
        RegistryApi { state }
    }
}

/// The audit subjects an enterprise's entry shows: the enterprise and every person
/// holding or having held one of its roles (the response names them all), each once.
fn shown(e: &Enterprise) -> impl Iterator<Item = String> + '_ {
    let mut persons: Vec<&str> = e.roles.iter().map(|r| r.person.key.as_str()).collect();
    persons.sort_unstable();
    persons.dedup();
    std::iter::once(e.uscc.resource_name())
        .chain(persons.into_iter().map(|key| format!("persons/{key}")))
}

#[tonic::async_trait]
impl RegistryService for RegistryApi {
    async fn batch_upsert_enterprises(
        &self,
        req: Request<pb::BatchUpsertEnterprisesRequest>,
    ) -> Result<Response<pb::BatchUpsertEnterprisesResponse>, Status> {
        let agency = caller(&req, Scope::RegistryWrite, &self.state.keyer)?;
        let note = AuditNote::of(&req);
        let body = req.into_inner();
        note.request_id(&body.request_id);
        let today = self.state.clock.today();
        let (key, batch) = noting_on_refusal(&note, &body, &self.state.keyer, || {
            agency.require_kind(AgencyKind::MarketRegulation, "maintain the registry")?;
            batch_size("enterprises", body.enterprises.len())?;
            let key = request_key(
                &self.state,
                &agency.id,
                "BatchUpsertEnterprises",
                &body.request_id,
                &body,
            )?;
            let mut v = Violations::default();
            // Compared as parsing will read them: a USCC is case-insensitive.
            let mut seen: HashMap<String, usize> = HashMap::new();
            let mut batch = Vec::with_capacity(body.enterprises.len());
            for (i, e) in body.enterprises.iter().enumerate() {
                let path = format!("enterprises[{i}]");
                if let Some(first) = seen.insert(e.uscc.trim().to_ascii_uppercase(), i) {
                    v.add(
                        format!("{path}.uscc"),
                        format!("repeats enterprises[{first}].uscc"),
                    );
                }
                if let Some(parsed) = enterprise_in(&mut v, &self.state.keyer, &path, e, today) {
                    batch.push(parsed);
                }
            }
            Ok((key, v.finish(batch)?))
        })?;
        note.subjects(batch.iter().flat_map(shown))
            .count(batch.len());
        let encode = |stored: &[crate::domain::enterprise::Enterprise]| {
            prost::Message::encode_to_vec(&pb::BatchUpsertEnterprisesResponse {
                enterprises: stored.iter().map(enterprise_out).collect(),
            })
        };
        let response = match self
            .state
            .store
            .upsert_enterprises(batch, today, key, &encode)
            .await?
        {
            Replay::Fresh(stored) => {
                // The answer also shows whom the registry already held (former holders
                // of the roles, those this batch ended).
                note.replace_subjects(stored.iter().flat_map(shown));
                pb::BatchUpsertEnterprisesResponse {
                    enterprises: stored.iter().map(enterprise_out).collect(),
                }
            }
            Replay::Replayed(bytes) => replayed(&bytes)?,
        };
        Ok(Response::new(response))
    }

    async fn get_enterprise(
        &self,
        req: Request<pb::GetEnterpriseRequest>,
    ) -> Result<Response<pb::GetEnterpriseResponse>, Status> {
        caller(&req, Scope::RegistryRead, &self.state.keyer)?;
        let note = AuditNote::of(&req);
        let uscc = enterprise_name("name", &req.get_ref().name)?;
        note.subject(uscc.resource_name());
        let enterprise = self
            .state
            .store
            .get_enterprise(&uscc)
            .await?
            .ok_or_else(|| Error::NotFound(uscc.resource_name()))?;
        note.replace_subjects(shown(&enterprise)).count(1);
        Ok(Response::new(pb::GetEnterpriseResponse {
            enterprise: Some(enterprise_out(&enterprise)),
        }))
    }

    async fn list_enterprises(
        &self,
        req: Request<pb::ListEnterprisesRequest>,
    ) -> Result<Response<pb::ListEnterprisesResponse>, Status> {
        caller(&req, Scope::RegistryRead, &self.state.keyer)?;
        let note = AuditNote::of(&req);
        let body = req.into_inner();
        let limit = page_size(body.page_size)?;
        let mut v = Violations::default();
        if !body.region_code.is_empty() && !is_region_code(&body.region_code) {
            v.add("region_code", "must be a six-digit GB/T 2260 division code");
        }
        if !body.industry_code.is_empty() && !is_industry_code(&body.industry_code) {
            v.add(
                "industry_code",
                "must be a GB/T 4754 code prefix: a section letter A-T and up to four digits",
            );
        }
        v.finish(())?;
        let filter = EnterpriseFilter {
            region_code: Some(body.region_code.clone()).filter(|s| !s.is_empty()),
            industry_code: Some(body.industry_code.clone()).filter(|s| !s.is_empty()),
            status: filter_enum("status", body.status, EnterpriseStatus::from_number)?,
        };
        let query = format!("{filter:?}");
        let after: Option<String> = decode_token(&query, &body.page_token)?;
        let mut page = self
            .state
            .store
            .list_enterprises(&filter, after.as_deref(), limit + 1)
            .await?;
        let limit = size_within_bytes(&page, limit, |e| {
            prost::Message::encoded_len(&enterprise_out(e))
        });
        let next_page_token = next_page(&mut page, limit, &query, |e| e.uscc.as_str().to_string());
        // Whom the page shows: "who looked at this enterprise, at this person" finds a
        // listing that showed them, as it finds a GetEnterprise.
        note.subjects(page.iter().flat_map(shown)).count(page.len());
        Ok(Response::new(pb::ListEnterprisesResponse {
            enterprises: page.iter().map(enterprise_out).collect(),
            next_page_token,
        }))
    }
}
