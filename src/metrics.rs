//! Observability: a tower layer that gives every call a request id (`x-request-id`, taken
//! from the caller or generated, echoed in the response and on every log line of the
//! call) and counts and times it by method and status code; and a Prometheus `/metrics`
//! endpoint on its own port that also reports the database pool, the audit queue and the
//! grading lag.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tower::Service;
use tracing::Instrument;

use crate::audit::{grpc_code_name, AuditLog, UNKNOWN_METHOD};
use crate::middleware::{BoxFuture, HttpRequest, HttpResponse, Step};
use crate::store::Store;

/// A request's path as the access log shows it: a path this service does not serve is
/// the caller's free text (an ID number, say) and shows as `unknown`. Checked only when
/// the line is written.
struct Logged<'a>(&'a str);

impl std::fmt::Display for Logged<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if crate::auth::is_served(self.0) {
            f.write_str(self.0)
        } else {
            f.write_str(UNKNOWN_METHOD)
        }
    }
}

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The request-id metadata key.
pub const REQUEST_ID: &str = "x-request-id";

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    /// Observations at or below each bucket's bound.
    buckets: Vec<u64>,
}

/// Call counts and latencies by (method, status code). Cheap to clone.
#[derive(Clone, Default)]
pub struct Metrics(Arc<Mutex<BTreeMap<String, BTreeMap<&'static str, Series>>>>);

impl Metrics {
    fn observe(&self, method: &str, code: &'static str, seconds: f64) {
        let mut map = self.0.lock().expect("metrics lock");
        // Found by reference: building the owned key on every call allocated on the
        // look-up path; it is built once, at a method's first call.
        // A path from a caller (checked before authentication) gets a series of its
        // own only if the service has that method; checked once, when it would be
        // added, not on every call.
        let method = if map.contains_key(method) {
            method
        } else if crate::auth::is_served(method) {
            map.insert(method.to_string(), BTreeMap::new());
            method
        } else {
            map.entry(UNKNOWN.to_string()).or_default();
            UNKNOWN
        };
        let s = map
            .get_mut(method)
            .expect("inserted above")
            .entry(code)
            .or_default();
        if s.buckets.is_empty() {
            s.buckets = vec![0; BUCKETS.len()];
        }
        s.count += 1;
        s.sum += seconds;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                s.buckets[i] += 1;
            }
        }
    }

    /// The call series in the Prometheus text format.
    fn render_calls(&self, out: &mut String) {
        let map = self.0.lock().expect("metrics lock");
        out.push_str(
            "# HELP credithub_rpc_requests_total RPCs answered, by method and gRPC status code.\n",
        );
        out.push_str("# TYPE credithub_rpc_requests_total counter\n");
        for (method, code, s) in map
            .iter()
            .flat_map(|(m, codes)| codes.iter().map(move |(c, s)| (m, c, s)))
        {
            let _ = writeln!(
                out,
                "credithub_rpc_requests_total{{method=\"{method}\",code=\"{code}\"}} {}",
                s.count
            );
        }
        out.push_str("# HELP credithub_rpc_duration_seconds Time to answer an RPC (to its response headers), by method and gRPC status code.\n");
        out.push_str("# TYPE credithub_rpc_duration_seconds histogram\n");
        for (method, code, s) in map
            .iter()
            .flat_map(|(m, codes)| codes.iter().map(move |(c, s)| (m, c, s)))
        {
            let labels = format!("method=\"{method}\",code=\"{code}\"");
            for (bound, n) in BUCKETS.iter().zip(&s.buckets) {
                let _ = writeln!(
                    out,
                    "credithub_rpc_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "credithub_rpc_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "credithub_rpc_duration_seconds_sum{{{labels}}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "credithub_rpc_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
    }

    /// Everything `/metrics` shows.
    pub async fn render(
        &self,
        store: &Store,
        audit: &AuditLog,
        today: chrono::NaiveDate,
    ) -> String {
        let mut out = String::new();
        self.render_calls(&mut out);
        let (size, idle) = store.pool_use();
        // One unlabelled series of `kind` (gauge or counter).
        let series = |out: &mut String, kind: &str, name: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        series(
            &mut out,
            "gauge",
            "credithub_db_pool_connections",
            "Open database connections.",
            size.to_string(),
        );
        series(
            &mut out,
            "gauge",
            "credithub_db_pool_idle_connections",
            "Idle database connections.",
            idle.to_string(),
        );
        series(
            &mut out,
            "gauge",
            "credithub_audit_queue_depth",
            "Audit entries waiting to be committed.",
            audit.queue_depth().to_string(),
        );
        let written = audit.counters();
        series(
            &mut out,
            "counter",
            "credithub_audit_groups_total",
            "Audit group commits written (entries_total / groups_total: entries per group).",
            written.groups.to_string(),
        );
        series(
            &mut out,
            "counter",
            "credithub_audit_entries_total",
            "Audit entries written.",
            written.entries.to_string(),
        );
        series(
            &mut out,
            "counter",
            "credithub_audit_append_seconds_total",
            "Time the audit writer spent appending groups (its rate: the share of time it is busy).",
            written.append_seconds.to_string(),
        );
        series(
            &mut out,
            "counter",
            "credithub_audit_refused_groups_total",
            "Audit groups that could not be written; their calls were answered UNAVAILABLE.",
            written.refused_groups.to_string(),
        );
        series(
            &mut out,
            "counter",
            "credithub_audit_recovered_entries_total",
            "Audit entries of committed writes chained after their calls had not (the process stopped first, or the append failed).",
            written.recovered.to_string(),
        );
        // Unknown (the database is down) is reported as NaN rather than a stale number.
        let lag = match store.grading_lag(today).await {
            Ok(n) => n.to_string(),
            Err(_) => "NaN".into(),
        };
        series(
            &mut out,
            "gauge",
            "credithub_grading_lag_records",
            "Records whose publicity window has ended but whose subject is not yet regraded.",
            lag,
        );
        out
    }
}

/// Serves `GET /metrics` on `listener` until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    store: Store,
    audit: AuditLog,
    clock: crate::api::Clock,
) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        let store = store.clone();
        let audit = audit.clone();
        let clock = clock.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n =
                match tokio::time::timeout(std::time::Duration::from_secs(5), conn.read(&mut buf))
                    .await
                {
                    Ok(Ok(n)) => n,
                    _ => return,
                };
            let request = String::from_utf8_lossy(&buf[..n]);
            let (status, body) = if request.starts_with("GET /metrics ") {
                (
                    "200 OK",
                    metrics.render(&store, &audit, clock.today()).await,
                )
            } else {
                (
                    "404 Not Found",
                    "only /metrics is served here\n".to_string(),
                )
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(response.as_bytes()).await;
            let _ = conn.shutdown().await;
        });
    }
}

/// The series of calls to paths the service does not have. Paths come from callers
/// before authentication: one series per path would let anyone grow the map without
/// end, and a path may hold characters that break the exposition format.
const UNKNOWN: &str = "unknown";

/// The step (wrap it in a `StepLayer`); outermost, so every call is counted and carries
/// its request id.
#[derive(Clone)]
pub struct Observe {
    metrics: Metrics,
}

impl Observe {
    pub fn new(metrics: Metrics) -> Self {
        Observe { metrics }
    }
}

/// The call's request id as [`Observe`] settled it (the caller's, checked, or one made
/// up), for the layers inside it: they need not check it again.
#[derive(Debug, Clone)]
pub struct CallId(pub String);

/// A caller's request id if it is short printable ASCII without an ID number in it
/// (it goes into the audit chain, before authentication), else a new one.
fn request_id(headers: &http::HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| {
            !v.is_empty()
                && v.bytes().all(|b| b.is_ascii_graphic())
                && crate::domain::request_id::request_id_problem(v).is_none()
        })
        .map(String::from)
        // A version-7 UUID from the thread's generator: asking the kernel for random
        // bytes on every call was a system call per request.
        .unwrap_or_else(|| {
            let millis = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            uuid::Builder::from_unix_timestamp_millis(millis, &rand::random())
                .into_uuid()
                .simple()
                .to_string()
        })
}

impl Step for Observe {
    fn call<S>(&self, mut inner: S, mut req: HttpRequest) -> BoxFuture<HttpResponse, S::Error>
    where
        S: Service<HttpRequest, Response = HttpResponse> + Send + 'static,
        S::Future: Send + 'static,
    {
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let method = req.uri().path().to_string();
            let id = request_id(req.headers());
            let value = http::HeaderValue::from_str(&id).ok();
            if let Some(value) = &value {
                req.headers_mut().insert(REQUEST_ID, value.clone());
            }
            req.extensions_mut().insert(CallId(id.clone()));
            // At debug level: with it on, every line a call logs names its request id
            // and method; formatting the span on every call cost ~10% of a look-up.
            let span = tracing::debug_span!("rpc", request_id = %id, method = %Logged(&method));
            let started = Instant::now();
            let mut response = inner.call(req).instrument(span.clone()).await?;
            let code = grpc_code_name(response.headers());
            let seconds = started.elapsed().as_secs_f64();
            metrics.observe(&method, code, seconds);
            // The access log, at debug level so the look-up path does not pay for it.
            span.in_scope(|| tracing::debug!(code, millis = seconds * 1e3, "answered"));
            if let Some(value) = value {
                response.headers_mut().insert(REQUEST_ID, value);
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_when_sane_and_made_up_otherwise() {
        let mut h = http::HeaderMap::new();
        h.insert(REQUEST_ID, "abc-123".parse().unwrap());
        assert_eq!(request_id(&h), "abc-123");
        h.insert(REQUEST_ID, "has space".parse().unwrap());
        assert_ne!(request_id(&h), "has space");
        assert_eq!(request_id(&http::HeaderMap::new()).len(), 32);
    }

    #[test]
    fn only_the_services_methods_get_a_series_of_their_own() {
        let m = Metrics::default();
        // Every RPC of the contract, so a new one is not counted as unknown.
        use prost::Message as _;
        let set = prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET)
            .expect("descriptor");
        let mut served = vec!["/grpc.health.v1.Health/Check".to_string()];
        for file in set.file.iter().filter(|f| f.package() == "credithub.v1") {
            for service in &file.service {
                for method in &service.method {
                    served.push(format!(
                        "/credithub.v1.{}/{}",
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
        for path in &served {
            m.observe(path, "OK", 0.001);
        }
        for junk in ["/credithub.v1.GradeService/Nope", "/a\",code=\"OK\"}", "/x"] {
            m.observe(junk, "OK", 0.001);
        }
        let keys: Vec<String> = m.0.lock().unwrap().keys().cloned().collect();
        served.push(UNKNOWN.to_string());
        served.sort();
        assert_eq!(keys, served);
    }

    #[test]
    fn histograms_count_every_observation_in_cumulative_buckets() {
        let m = Metrics::default();
        m.observe("/credithub.v1.RegistryService/GetEnterprise", "OK", 0.003);
        m.observe("/credithub.v1.RegistryService/GetEnterprise", "OK", 0.2);
        let mut out = String::new();
        m.render_calls(&mut out);
        assert!(out.contains("credithub_rpc_requests_total{method=\"/credithub.v1.RegistryService/GetEnterprise\",code=\"OK\"} 2"));
        assert!(out.contains(
            "credithub_rpc_duration_seconds_bucket{method=\"/credithub.v1.RegistryService/GetEnterprise\",code=\"OK\",le=\"0.005\"} 1"
        ));
        assert!(out.contains(
            "credithub_rpc_duration_seconds_bucket{method=\"/credithub.v1.RegistryService/GetEnterprise\",code=\"OK\",le=\"0.25\"} 2"
        ));
        assert!(out.contains(
            "credithub_rpc_duration_seconds_bucket{method=\"/credithub.v1.RegistryService/GetEnterprise\",code=\"OK\",le=\"+Inf\"} 2"
        ));
    }
}
