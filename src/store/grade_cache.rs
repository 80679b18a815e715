//! A read-through cache of stored grades for the look-up path. This process's own
//! regrades evict what they rewrote as they commit; what other processes (replicas,
//! `credit-hub reclassify`) change is seen once an entry's time to live runs out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::grading::StoredGrade;

/// Entries kept before the cache is emptied and refilled.
const CAPACITY: usize = 200_000;

type Key = (String, String);

/// The cache. A reader notes the generation before it reads the database and stores
/// what it read only if no eviction happened meanwhile, so a grade read before a
/// concurrent commit can never outlive that commit's eviction.
#[derive(Debug)]
pub(super) struct GradeCache {
    ttl: Duration,
    generation: AtomicU64,
    entries: Mutex<HashMap<Key, (StoredGrade, Instant)>>,
}

impl GradeCache {
    /// A cache whose entries live `ttl`; zero disables caching.
    pub(super) fn new(ttl: Duration) -> Self {
        GradeCache {
            ttl,
            generation: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(super) fn get(&self, uscc: &str, model: &str) -> Option<StoredGrade> {
        let entries = self.entries.lock().expect("grade cache lock");
        entries
            .get(&(uscc.to_string(), model.to_string()))
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(g, _)| g.clone())
    }

    /// Stores grades read while the generation was `generation`.
    pub(super) fn put(&self, generation: u64, grades: impl Iterator<Item = StoredGrade>) {
        let mut entries = self.entries.lock().expect("grade cache lock");
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() > CAPACITY {
            entries.clear();
        }
        let now = Instant::now();
        for g in grades {
            entries.insert((g.uscc.as_str().to_string(), g.model.clone()), (g, now));
        }
    }

    /// Forgets the given (uscc, model) grades; called after their rewrite committed.
    pub(super) fn evict(&self, keys: &[Key]) {
        if keys.is_empty() {
            return;
        }
        let mut entries = self.entries.lock().expect("grade cache lock");
        self.generation.fetch_add(1, Ordering::AcqRel);
        for k in keys {
            entries.remove(k);
        }
    }
}
