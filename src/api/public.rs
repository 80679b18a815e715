//! The limit on RPCs anyone may call without a token (certificate verification, spot-check
//! draws and results): a request rate per client address, so no caller can starve the
//! others or the database.

use std::net::IpAddr;

use tonic::{Request, Status};
use tonic_types::ErrorDetails;

use super::error::status;
use crate::quota::TokenBuckets;

/// Requests per second per client address for the public RPCs.
#[derive(Clone)]
pub struct PublicLimit {
    rate: u32,
    buckets: TokenBuckets<IpAddr>,
}

impl PublicLimit {
    pub fn new(rate: u32) -> Self {
        PublicLimit {
            rate,
            buckets: TokenBuckets::default(),
        }
    }

    /// Refuses a call over its address's rate: RESOURCE_EXHAUSTED with RetryInfo and a
    /// QuotaFailure naming the address. Behind a gateway the address is the gateway's.
    pub fn admit<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let Some(addr) = req.remote_addr() else {
            return Ok(());
        };
        self.buckets.take(addr.ip(), self.rate).map_err(|retry| {
            let mut details = ErrorDetails::with_retry_info(Some(retry));
            details.add_quota_failure_violation(
                format!("clientAddress/{}", addr.ip()),
                "public calls per second from this address exceeded",
            );
            status(
                tonic::Code::ResourceExhausted,
                format!(
                    "too many public calls from {}; retry in {} ms",
                    addr.ip(),
                    retry.as_millis().max(1)
                ),
                "RATE_LIMITED",
                details,
            )
        })
    }
}
