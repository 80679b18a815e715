//! The limit on RPCs anyone may call without a token (certificate verification, spot-check
//! draws and results): a request rate per client address, so no caller can starve the
//! others or the database.

use std::net::IpAddr;

use tonic::{Request, Status};
use tonic_types::ErrorDetails;

use super::error::status;
use crate::peer::{PeerPolicy, FORWARDED_FOR};
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
    /// QuotaFailure naming the address. The address is the client's as a trusted gateway
    /// forwards it (see [`PeerPolicy::client_address`]); an IPv6 address counts by its
    /// /64, which one host can fill with addresses.
    pub fn admit<T>(&self, req: &Request<T>, peers: &PeerPolicy) -> Result<(), Status> {
        // The last line: a gateway that appends its own line after the client's (rather
        // than extending one) puts what it saw last; an earlier line is the client's.
        let forwarded = req
            .metadata()
            .get_all(FORWARDED_FOR)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok());
        let Some(ip) = peers.client_address(req.extensions(), forwarded) else {
            return Ok(());
        };
        // An IPv6 client by its /64 (one subscriber's network); an IPv4 client reaching
        // a dual-stack listener (`::ffff:a.b.c.d`) by its own address, or every such
        // client would share the bucket of `::`.
        let ip = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
            },
            v4 => v4,
        };
        self.buckets.take(ip, self.rate).map_err(|retry| {
            let mut details = ErrorDetails::with_retry_info(Some(retry));
            details.add_quota_failure_violation(
                format!("clientAddress/{ip}"),
                "public calls per second from this address exceeded",
            );
            status(
                tonic::Code::ResourceExhausted,
                format!(
                    "too many public calls from {ip}; retry in {} ms",
                    retry.as_millis().max(1)
                ),
                "RATE_LIMITED",
                details,
            )
        })
    }
}
