//! `credit-hub audit list|export`: who looked at what, from the audit log (needs a
//! token with the `audit:read` scope).

use super::{connect, explain, walk_pages, ClientArgs};
use crate::proto::v1 as pb;
use crate::proto::v1::audit_service_client::AuditServiceClient;

/// Which entries to show.
#[derive(clap::Args, Clone, Default)]
pub struct AuditQuery {
    /// Entries touching this enterprise (USCC).
    #[arg(long)]
    pub enterprise: Option<String>,
    /// Entries touching the person with this resident ID number (matched by keyed
    /// hash; never stored or printed). Prefer the environment variable, which keeps the
    /// number out of the process list and the shell's history.
    #[arg(long, env = "CREDIT_HUB_PERSON_ID", hide_env_values = true)]
    pub person_id: Option<String>,
    /// Entries by this agency: its id as `agency list` prints it (`agencies/` optional).
    #[arg(long)]
    pub agency: Option<String>,
    /// Entries of this full gRPC method.
    #[arg(long)]
    pub method: Option<String>,
    /// Only the last N days (e.g. 365: "who looked at this enterprise in the last year"),
    /// 0 to 36,500.
    #[arg(long, value_parser = clap::value_parser!(i64).range(0..=36_500))]
    pub since_days: Option<i64>,
}

impl std::fmt::Debug for AuditQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditQuery")
            .field("enterprise", &self.enterprise)
            .field("person_id", &self.person_id.as_ref().map(|_| "<withheld>"))
            .field("agency", &self.agency)
            .field("method", &self.method)
            .field("since_days", &self.since_days)
            .finish()
    }
}

impl AuditQuery {
    fn fields(
        &self,
    ) -> (
        String,
        String,
        String,
        String,
        Option<prost_types::Timestamp>,
    ) {
        let start = self.since_days.map(|d| prost_types::Timestamp {
            seconds: chrono::Utc::now().timestamp() - d * 86_400,
            nanos: 0,
        });
        (
            self.agency
                .as_ref()
                .map(|a| format!("agencies/{}", a.trim_start_matches("agencies/")))
                .unwrap_or_default(),
            self.enterprise
                .as_ref()
                .map(|u| super::enterprise_name(u))
                .unwrap_or_default(),
            self.person_id.clone().unwrap_or_default(),
            self.method.clone().unwrap_or_default(),
            start,
        )
    }

    /// Says on stderr when a person filter applies: one set by a CREDIT_HUB_PERSON_ID
    /// left in the environment would otherwise narrow a listing or an archive unseen.
    fn say_person_filter(&self) {
        if self
            .person_id
            .as_deref()
            .is_some_and(|p| !p.trim().is_empty())
        {
            eprintln!(
                "only entries about one person (the ID number given by --person-id or \
                 CREDIT_HUB_PERSON_ID)"
            );
        }
    }
}

fn entry_json(e: &pb::AuditEntry) -> serde_json::Value {
    serde_json::json!({
        "sequence": e.sequence,
        "time": e.time.map(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos as u32).map(|d| d.to_rfc3339())),
        "agency": e.agency,
        "method": e.method,
        "request_id": e.request_id,
        "subjects": e.subjects,
        "purpose": pb::Purpose::try_from(e.purpose).map(|p| p.as_str_name().trim_start_matches("PURPOSE_")).unwrap_or(""),
        "case_reference": e.case_reference,
        "outcome": e.outcome,
        "result_count": e.result_count,
        "previous_hash": e.previous_hash,
        "hash": e.hash,
    })
}

/// `credit-hub audit list`: a page-by-page table (or JSON lines with `--json`).
/// An entry's subjects for a table: each once, with how often it was named when more
/// than once (a page of records names its enterprise per record).
fn subjects_text(subjects: &[String]) -> String {
    let mut counted: Vec<(&str, usize)> = Vec::new();
    let mut at: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for s in subjects {
        match at.get(s.as_str()) {
            Some(&i) => counted[i].1 += 1,
            None => {
                at.insert(s, counted.len());
                counted.push((s, 1));
            }
        }
    }
    counted
        .iter()
        .map(|(s, n)| {
            if *n > 1 {
                format!("{s} ×{n}")
            } else {
                s.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub async fn list(args: &ClientArgs, query: &AuditQuery, limit: usize) -> anyhow::Result<()> {
    let c = connect(args).await?;
    let mut client = AuditServiceClient::with_interceptor(c.0.clone(), c.1.clone());
    let (agency, enterprise, person, method, start) = query.fields();
    query.say_person_filter();
    let mut shown = 0;
    if !args.json {
        crate::out!(
            "{:>8}  {:<29}  {:<36}  {:<44}  {:<18}  SUBJECTS",
            "SEQ",
            "TIME",
            "AGENCY",
            "METHOD",
            "OUTCOME"
        );
    }
    let more = walk_pages(
        async |page_token| {
            let page = client
                .list_audit_entries(pb::ListAuditEntriesRequest {
                    agency: agency.clone(),
                    subject_enterprise: enterprise.clone(),
                    subject_person_id_number: person.clone(),
                    method: method.clone(),
                    start_time: start,
                    end_time: None,
                    page_size: 1000,
                    page_token,
                })
                .await
                .map_err(explain)?
                .into_inner();
            Ok((page.entries, page.next_page_token))
        },
        |e| {
            if shown == limit {
                return Ok(false);
            }
            shown += 1;
            let j = entry_json(&e);
            if args.json {
                crate::out!("{j}");
            } else {
                crate::out!(
                    "{:>8}  {:<29}  {:<36}  {:<44}  {:<18}  {}",
                    e.sequence,
                    j["time"].as_str().unwrap_or(""),
                    e.agency,
                    e.method.rsplit('.').next().unwrap_or(&e.method),
                    e.outcome,
                    subjects_text(&e.subjects)
                );
            }
            Ok(true)
        },
    )
    .await?;
    if !args.json {
        crate::out!("{shown} entries");
    }
    if more {
        eprintln!(
            "more entries match than the {limit} shown: raise --limit, or use `audit export`"
        );
    }
    Ok(())
}

/// `credit-hub audit export`: every matching entry as a JSON line, for archiving.
pub async fn export(args: &ClientArgs, query: &AuditQuery) -> anyhow::Result<()> {
    let c = connect(args).await?;
    let mut client = AuditServiceClient::with_interceptor(c.0.clone(), c.1.clone());
    let (agency, subject_enterprise, subject_person_id_number, method, start_time) = query.fields();
    query.say_person_filter();
    let mut stream = client
        .export_audit_entries(pb::ExportAuditEntriesRequest {
            agency,
            subject_enterprise,
            subject_person_id_number,
            method,
            start_time,
            end_time: None,
        })
        .await
        .map_err(explain)?
        .into_inner();
    while let Some(msg) = stream.message().await.map_err(explain)? {
        if let Some(e) = msg.entry {
            crate::out!("{}", entry_json(&e));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_subjects_are_counted_once() {
        let s = |v: &[&str]| subjects_text(&v.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(s(&["a", "b", "a", "a"]), "a ×3 b");
        assert_eq!(s(&[]), "");
    }
}
