//! Token buckets: each key (an agency, a client address) may make `rate` requests per
//! second on average, in bursts of up to one second's worth; keys never share a bucket,
//! so one caller's flood leaves the others untouched.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most keys remembered before idle ones (full buckets) are forgotten.
const MAX_KEYS: usize = 100_000;

/// Buckets by key. Cheap to clone; clones share the buckets.
#[derive(Clone)]
pub struct TokenBuckets<K> {
    buckets: Arc<Mutex<HashMap<K, (f64, Instant)>>>,
}

impl<K> Default for TokenBuckets<K> {
    fn default() -> Self {
        TokenBuckets {
            buckets: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

impl<K: Hash + Eq> TokenBuckets<K> {
    /// Takes one request from `key`'s bucket refilled at `rate` per second, or says how
    /// long until one is free.
    pub fn take(&self, key: K, rate: u32) -> Result<(), Duration> {
        let rate = f64::from(rate.max(1));
        let mut buckets = self.buckets.lock().expect("quota lock");
        let now = Instant::now();
        if buckets.len() >= MAX_KEYS {
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < rate
            });
        }
        let (tokens, at) = buckets.entry(key).or_insert((rate, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(rate);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_beyond_the_rate_waits_and_other_keys_are_untouched() {
        let buckets = TokenBuckets::default();
        for _ in 0..5 {
            assert!(buckets.take("a", 5).is_ok());
        }
        let wait = buckets.take("a", 5).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(200));
        assert!(buckets.take("b", 5).is_ok());
    }
}
