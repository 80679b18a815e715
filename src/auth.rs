//! Caller identity: a tower layer that resolves the bearer token of every call (except
//! health, reflection and the public certificate look-ups) to an [`Agency`] before any
//! handler runs, so no RPC can forget to authenticate. Scope checks happen in handlers
//! through [`caller`], before any resource is looked up.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tonic::{Request, Status};
use tower::{Layer, Service};

use crate::api::error::status;
use crate::domain::agency::{Agency, Scope};
use crate::store::Store;

/// gRPC paths callable without a token.
const PUBLIC_PREFIXES: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/credithub.v1.CertificateService/VerifyCertificate",
    "/credithub.v1.CertificateService/ListIssuerKeys",
];

/// Whether `path` (`/package.Service/Method`) needs no token.
pub fn is_public(path: &str) -> bool {
    PUBLIC_PREFIXES.iter().any(|p| path.starts_with(p))
}

/// How long a resolved token is trusted without asking the database again. A revoked
/// token stops working within this time on every replica.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(5);

/// Agencies recently resolved, by token hash (never by the token itself).
#[derive(Clone, Default)]
struct TokenCache(Arc<Mutex<HashMap<String, (Agency, Instant)>>>);

impl TokenCache {
    fn get(&self, hash: &str) -> Option<Agency> {
        let map = self.0.lock().expect("token cache lock");
        map.get(hash)
            .filter(|(_, at)| at.elapsed() < TOKEN_CACHE_TTL)
            .map(|(a, _)| a.clone())
    }

    fn put(&self, hash: String, agency: Agency) {
        let mut map = self.0.lock().expect("token cache lock");
        if map.len() > 10_000 {
            map.retain(|_, (_, at)| at.elapsed() < TOKEN_CACHE_TTL);
        }
        map.insert(hash, (agency, Instant::now()));
    }
}

/// The layer; wraps every service on the server.
#[derive(Clone)]
pub struct AuthLayer {
    store: Store,
    cache: TokenCache,
}

impl AuthLayer {
    /// Authenticates against the agencies in `store`.
    pub fn new(store: Store) -> Self {
        AuthLayer {
            store,
            cache: TokenCache::default(),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authenticate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticate {
            inner,
            store: self.store.clone(),
            cache: self.cache.clone(),
        }
    }
}

/// The service the layer produces.
#[derive(Clone)]
pub struct Authenticate<S> {
    inner: S,
    store: Store,
    cache: TokenCache,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> Service<http::Request<B>> for Authenticate<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        // The ready inner service is the one we were polled for; leave a clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let store = self.store.clone();
        let cache = self.cache.clone();
        Box::pin(async move {
            if is_public(req.uri().path()) {
                return inner.call(req).await;
            }
            match authenticate(&store, &cache, req.headers()).await {
                Ok(agency) => {
                    req.extensions_mut().insert(agency);
                    inner.call(req).await
                }
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

async fn authenticate(
    store: &Store,
    cache: &TokenCache,
    headers: &http::HeaderMap,
) -> Result<Agency, Status> {
    let unauthenticated = |message: &str| {
        status(
            tonic::Code::Unauthenticated,
            message,
            "UNAUTHENTICATED",
            tonic_types::ErrorDetails::new(),
        )
    };
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Err(unauthenticated(
            "missing bearer token: send metadata `authorization: Bearer <token>`",
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unauthenticated("authorization metadata must be `Bearer <token>`"))?;
    let hash = crate::store::token_hash(token);
    if let Some(agency) = cache.get(&hash) {
        return Ok(agency);
    }
    match store.agency_by_token(token).await {
        Ok(Some(agency)) => {
            cache.put(hash, agency.clone());
            Ok(agency)
        }
        Ok(None) => Err(unauthenticated("unknown or revoked token")),
        Err(e) => Err(e.into()),
    }
}

/// The authenticated agency of a call, after checking it holds `scope`.
pub fn caller<T>(req: &Request<T>, scope: Scope) -> Result<Agency, Status> {
    let agency = req
        .extensions()
        .get::<Agency>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no authenticated caller"))?;
    agency.require(scope)?;
    Ok(agency)
}
