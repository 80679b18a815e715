//! Tamper-evident query log (查询留痕): a tower layer that records every call on credit
//! data, answered or refused, and holds the response back until its entry is durable;
//! a writer that group-commits waiting entries into the hash chain in one transaction;
//! and signed checkpoints of the chain head. The chain rules are in `domain::audit`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use tokio::sync::{mpsc, oneshot};
use tonic::Status;
use tower::Service;

use crate::auth::{is_public, is_served};
use crate::domain::audit::AuditEvent;
use crate::domain::codes::Purpose;
use crate::domain::request_id::request_id_problem;
use crate::metrics::{CallId, REQUEST_ID};
use crate::middleware::{BoxFuture, HttpRequest, HttpResponse, Step};
use crate::store::{now_millis, CallAudit, Store};

mod checkpoints;
use checkpoints::{Checkpoints, Head};

/// The method an entry names for a call to a path this service does not have.
pub const UNKNOWN_METHOD: &str = "unknown";

/// Most entries one group commit writes.
const GROUP: usize = 1_000;

/// Entries that may wait for the writer by default: sixteen full groups.
pub const DEFAULT_QUEUE: usize = 16 * GROUP;

/// How the audit log runs.
#[derive(Clone)]
pub struct AuditSettings {
    /// Off only for benchmarking the log's own cost; a production server keeps it on.
    pub enabled: bool,
    /// Signs checkpoints of the chain head.
    pub signing_key: SigningKey,
    /// How often the head is checkpointed while entries are being written; as often,
    /// entries of committed writes that their calls never chained are chained.
    pub checkpoint_every: Duration,
    /// How old such an entry must be before another call's writer chains it: long
    /// enough that its own call (possibly on another replica) has given up.
    pub orphan_after: Duration,
    /// Entries that wait for the writer before calls queue behind them.
    pub queue: usize,
}

impl std::fmt::Debug for AuditSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSettings")
            .field("enabled", &self.enabled)
            .field("signing_key", &"[REDACTED]")
            .field("public_key", &public_key_hex(&self.signing_key))
            .field("checkpoint_every", &self.checkpoint_every)
            .field("orphan_after", &self.orphan_after)
            .field("queue", &self.queue)
            .finish()
    }
}

impl Default for AuditSettings {
    /// On, with a key made up for this process (tests); servers pass a configured key.
    fn default() -> Self {
        AuditSettings {
            enabled: true,
            signing_key: random_key(),
            checkpoint_every: Duration::from_secs(60),
            orphan_after: Duration::from_secs(60),
            queue: DEFAULT_QUEUE,
        }
    }
}

/// A fresh signing key from the operating system's random source.
pub fn random_key() -> SigningKey {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    SigningKey::from_bytes(&bytes)
}

/// A signing key's public half, lowercase hex, as checkpoints carry it.
pub fn public_key_hex(key: &SigningKey) -> String {
    hex::encode(key.verifying_key().to_bytes())
}

/// An entry to chain, the id its call's write saved it under (to remove in the same
/// commit), and who waits for the commit.
type Pending = (AuditEvent, Option<String>, oneshot::Sender<bool>);

/// Handle to the writer. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: Option<mpsc::Sender<Pending>>,
    stats: Arc<WriterStats>,
}

/// What the writer has done since the process started, for `/metrics`: from these an
/// operator reads the entries per group commit and the share of time the writer is busy.
#[derive(Debug, Default)]
struct WriterStats {
    groups: AtomicU64,
    entries: AtomicU64,
    /// Time spent appending groups (retries included), in microseconds.
    append_micros: AtomicU64,
    /// Groups that could not be written, whose calls were refused.
    refused_groups: AtomicU64,
    /// Entries of committed writes chained after their calls had not.
    recovered: AtomicU64,
}

/// A snapshot of the writer's counters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AuditCounters {
    /// Group commits written.
    pub groups: u64,
    /// Entries written.
    pub entries: u64,
    /// Seconds spent appending groups.
    pub append_seconds: f64,
    /// Groups that could not be written (their calls were refused).
    pub refused_groups: u64,
    /// Entries of committed writes chained after their calls had not (the process
    /// stopped first, or their append failed).
    pub recovered: u64,
}

impl WriterStats {
    fn record(&self, entries: usize, took: Duration, written: bool) {
        if written {
            self.groups.fetch_add(1, Ordering::Relaxed);
            self.entries.fetch_add(entries as u64, Ordering::Relaxed);
        } else {
            self.refused_groups.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.append_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

impl AuditLog {
    /// Starts the writer on `store`; it stops once every handle is dropped, after
    /// writing what is queued and a last checkpoint. The [`AuditWriter`] lets a shutdown
    /// wait for that before it closes the store.
    pub fn start(store: Store, settings: AuditSettings) -> (Self, AuditWriter) {
        let stats = Arc::new(WriterStats::default());
        if !settings.enabled {
            return (AuditLog { tx: None, stats }, AuditWriter(None));
        }
        let (tx, rx) = mpsc::channel(settings.queue.max(1));
        // The writer runs on a thread of its own. On the server's runtime it waited
        // behind every call in the run queue each time its commit returned, and every
        // call it answers waits for it: under load that wait was most of a group's time.
        let (finished, task) = oneshot::channel();
        let writer_stats = stats.clone();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the audit writer's runtime starts");
                runtime.block_on(writer(store, rx, settings, writer_stats));
                let _ = finished.send(());
            })
            .expect("the audit writer's thread starts");
        (
            AuditLog {
                tx: Some(tx),
                stats,
            },
            AuditWriter(Some(task)),
        )
    }

    /// What the writer has written so far.
    pub fn counters(&self) -> AuditCounters {
        let s = &self.stats;
        AuditCounters {
            groups: s.groups.load(Ordering::Relaxed),
            entries: s.entries.load(Ordering::Relaxed),
            append_seconds: s.append_micros.load(Ordering::Relaxed) as f64 / 1e6,
            refused_groups: s.refused_groups.load(Ordering::Relaxed),
            recovered: s.recovered.load(Ordering::Relaxed),
        }
    }

    /// Whether the writer is still taking entries (or the log is off): false once its
    /// thread has stopped, after which every audited call is refused.
    pub fn running(&self) -> bool {
        self.tx.as_ref().is_none_or(|tx| !tx.is_closed())
    }

    /// Entries queued and not yet committed.
    pub fn queue_depth(&self) -> usize {
        self.tx
            .as_ref()
            .map_or(0, |tx| tx.max_capacity() - tx.capacity())
    }

    /// Appends `event` and waits until it is committed. UNAVAILABLE when it cannot
    /// be: a call that cannot be accounted for is not answered.
    pub async fn record(&self, event: AuditEvent) -> Result<(), Status> {
        self.record_saved(event, None).await
    }

    /// Queues, without waiting, the entry of a call refused after its entry `event`
    /// was queued (the log could not confirm it in time): the same call, answered
    /// `status`, nothing returned. Should both be written, readers see the outcome the
    /// handler reached and then the one the caller heard.
    fn note_refusal(&self, mut event: AuditEvent, status: &Status) {
        let Some(tx) = &self.tx else { return };
        event.outcome = code_name(status.code()).to_string();
        event.result_count = 0;
        let (done, _) = oneshot::channel();
        if !enqueue(tx, (event, None, done)) {
            tracing::error!(
                "the audit queue is full: a refused call's second entry was not queued"
            );
        }
    }

    /// [`AuditLog::record`] for a call whose write saved its entry under `saved`.
    async fn record_saved(&self, event: AuditEvent, saved: Option<String>) -> Result<(), Status> {
        let Some(tx) = &self.tx else { return Ok(()) };
        let (done, committed) = oneshot::channel();
        let unavailable = audit_unavailable;
        // Queued at once, so an entry is written even if the call is dropped (deadline,
        // disconnect) before its commit is confirmed.
        if !enqueue(tx, (event, saved, done)) {
            return Err(unavailable());
        }
        match committed.await {
            Ok(true) => Ok(()),
            _ => Err(unavailable()),
        }
    }
}

/// Entries waiting for room in a full queue, each in a task of its own, at most
/// [`OVERFLOW`]: past that, calls are refused (UNAVAILABLE) rather than held in memory
/// without bound while the database is away.
static OVERFLOWING: AtomicU64 = AtomicU64::new(0);

/// Most entries that wait for room in a full queue.
const OVERFLOW: u64 = 4 * GROUP as u64;

/// Queues `pending` for the writer; false when the writer has stopped or too many
/// entries already wait. When the queue is full (the database stalled) a task of its own
/// waits for room: the caller may be gone by then (its deadline passed, it hung up), and
/// its entry must still be written.
fn enqueue(tx: &mpsc::Sender<Pending>, pending: Pending) -> bool {
    match tx.try_send(pending) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Closed(_)) => false,
        Err(mpsc::error::TrySendError::Full(pending)) => {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                tracing::error!("audit queue full outside the server: an entry was not written");
                return false;
            };
            if OVERFLOWING.fetch_add(1, Ordering::Relaxed) >= OVERFLOW {
                OVERFLOWING.fetch_sub(1, Ordering::Relaxed);
                tracing::error!("audit queue and its overflow are full: an entry was not queued");
                return false;
            }
            let tx = tx.clone();
            runtime.spawn(async move {
                if tx.send(pending).await.is_err() {
                    tracing::error!("the audit writer stopped: a queued entry was not written");
                }
                OVERFLOWING.fetch_sub(1, Ordering::Relaxed);
            });
            true
        }
    }
}

/// The running writer (its thread says when it has finished).
pub struct AuditWriter(Option<oneshot::Receiver<()>>);

impl AuditWriter {
    /// Waits, at most `bound`, for the writer to commit what is queued and sign the last
    /// checkpoint, which it does once every [`AuditLog`] handle is dropped. Closing the
    /// store before that would lose both.
    pub async fn finish(self, bound: Duration) {
        let Some(task) = self.0 else { return };
        if tokio::time::timeout(bound, task).await.is_err() {
            tracing::warn!(
                ?bound,
                "the audit writer was still running at exit; the head may lack its last checkpoint"
            );
        }
    }
}

/// What a streaming call discloses part by part: before each part is sent, an entry
/// of the call's own (agency, method, request id, purpose, case) names the subjects it
/// is about and how many items it holds, durable before the part goes out. The call's
/// own entry, written when its handler returns, cannot know what the stream will send.
#[derive(Clone)]
pub struct Disclosure {
    /// None when the call did not pass through the audit layer.
    log: Option<AuditLog>,
    template: AuditEvent,
    /// Set once the stream's end is recorded: a task that ends the stream itself just
    /// as the deadline passes would otherwise have it recorded twice.
    end_recorded: Arc<AtomicBool>,
}

impl Disclosure {
    /// Entries like `template` (its time, subjects and count are set per part) in
    /// `log`.
    pub fn new(log: Option<AuditLog>, template: AuditEvent) -> Self {
        Disclosure {
            log,
            template,
            end_recorded: Arc::default(),
        }
    }

    /// Records a part about `subjects` holding `count` items; UNAVAILABLE when the
    /// entry cannot be written, and then the part must not be sent.
    async fn record(&self, subjects: Vec<String>, count: usize) -> Result<(), Status> {
        let Some(log) = &self.log else { return Ok(()) };
        let mut event = self.template.clone();
        event.time = crate::store::now_millis();
        event.subjects = subjects;
        event.result_count = count as i64;
        log.record(event).await
    }

    /// Records a part about `subjects` holding `count` items before it is sent on `tx`:
    /// true when it may be sent; false when its entry cannot be written, and then the
    /// stream has been ended with that status.
    pub async fn admit<T>(
        &self,
        tx: &tokio::sync::mpsc::Sender<Result<T, Status>>,
        subjects: impl IntoIterator<Item = String>,
        count: usize,
    ) -> bool {
        match self.record(subjects.into_iter().collect(), count).await {
            Ok(()) => true,
            Err(status) => {
                self.end_stream(tx, status).await;
                false
            }
        }
    }

    /// Ends the stream that `tx` feeds with `status`, recorded as [`Self::ended`] says.
    pub async fn end_stream<T>(
        &self,
        tx: &tokio::sync::mpsc::Sender<Result<T, Status>>,
        status: Status,
    ) {
        self.ended(&status).await;
        let _ = tx.send(Err(status)).await;
    }

    /// Records that the stream was ended by `status` (its agency revoked, a defect,
    /// the server shutting down): the call's own entry, written when it opened, says
    /// OK.
    pub async fn ended(&self, status: &Status) {
        let Some(log) = &self.log else { return };
        if self.end_recorded.swap(true, Ordering::SeqCst) {
            return;
        }
        let mut event = self.template.clone();
        event.time = crate::store::now_millis();
        event.outcome = code_name(status.code()).to_string();
        // Nothing left to refuse: the stream ends with `status` either way.
        if log.record(event).await.is_err() {
            tracing::warn!("the end of a stream could not be audited");
        }
    }
}

/// UNAVAILABLE with RetryInfo: the call could not be accounted for, so it is not
/// answered.
fn audit_unavailable() -> Status {
    crate::api::error::status(
        tonic::Code::Unavailable,
        "the audit log cannot be written; retry shortly",
        "AUDIT_UNAVAILABLE",
        tonic_types::ErrorDetails::with_retry_info(Some(Duration::from_secs(1))),
    )
}

/// Attempts at writing one group of entries before its calls are refused.
const APPEND_ATTEMPTS: u32 = 3;

/// How many times in a row a group may find that another process moved the head.
const HEAD_MOVED_ATTEMPTS: u32 = 100;

/// Appends `events` after `head` (read from the database when unknown), and moves it.
/// A group that finds the head moved (another replica appended) is chained again after
/// the new head. A failed statement is retried: on SQLite a write lock held past the
/// busy timeout (say by abandoned work still finishing) fails it, and entries of calls
/// whose callers have gone (deadline, cancel) have nobody to refuse, so would be lost.
async fn append(
    store: &Store,
    events: Vec<AuditEvent>,
    saved: Vec<Option<String>>,
    head: &mut Head,
) -> bool {
    let mut failures = 0;
    let mut moved = 0;
    // Only groups holding writes pay for a transaction that removes their saved entries.
    let claims = saved.iter().any(Option::is_some);
    loop {
        let attempted = head.known().cloned();
        // How many entries the attempt chains: all of them, less (for a group holding
        // writes) those an orphan pass had chained already, which it learns as it runs.
        let mut chaining = (!claims).then_some(events.len());
        let result = match &attempted {
            Some(known) if claims => {
                store
                    .append_audit_claiming(known, &events, &saved, &mut chaining)
                    .await
            }
            Some(known) => store.append_audit(known, &events).await,
            None => match store.audit_head().await {
                Ok(read) => {
                    head.read(read);
                    continue;
                }
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(Some(new_head)) => {
                head.advanced(new_head);
                return true;
            }
            Ok(None) if moved < HEAD_MOVED_ATTEMPTS => {
                moved += 1;
                head.lost();
            }
            Ok(None) => {
                tracing::error!("the audit chain's head kept moving; refusing this group's calls");
                head.lost();
                return false;
            }
            Err(e) => {
                failures += 1;
                head.lost();
                // A commit that reported failure may still have landed; chaining the
                // group again would log its calls twice.
                let outcome = match (&attempted, chaining) {
                    // The attempt failed before its transaction could commit.
                    (None, _) | (Some(_), None) => Some(false),
                    // Every entry had been chained already, by an orphan pass: whether
                    // or not the attempt landed, acknowledging them logs each once.
                    (Some(_), Some(0)) => return true,
                    (Some(known), Some(len)) => landed(store, known, len).await,
                };
                match outcome {
                    Some(true) => {
                        tracing::warn!("an audit append that reported failure had been committed");
                        return true;
                    }
                    Some(false) => {}
                    None => {
                        tracing::error!(error = ?e, "cannot tell whether failed audit entries were written; refusing their calls");
                        return false;
                    }
                }
                if failures >= APPEND_ATTEMPTS {
                    tracing::error!(error = ?e, "audit entries could not be written; refusing their calls");
                    return false;
                }
                tracing::warn!(error = ?e, attempt = failures, "audit entries could not be written; retrying");
                tokio::time::sleep(Duration::from_millis(50 * u64::from(failures))).await;
            }
        }
    }
}

/// Whether the `len` entries whose append after `head` failed were written all the same;
/// `None` when the database cannot say within a few tries.
async fn landed(store: &Store, head: &(i64, String), len: usize) -> Option<bool> {
    for attempt in 1..=APPEND_ATTEMPTS {
        match store.audit_group_landed(head, len).await {
            Ok(answer) => return Some(answer),
            Err(e) => {
                tracing::warn!(error = ?e, attempt, "cannot tell yet whether failed audit entries were written");
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
        }
    }
    None
}

async fn writer(
    store: Store,
    mut rx: mpsc::Receiver<Pending>,
    settings: AuditSettings,
    stats: Arc<WriterStats>,
) {
    let mut head = Head::default();
    let mut checkpoints = Checkpoints::new(settings.signing_key.clone());
    // The check of entries this writer did not chain, when one runs; appends go on
    // meanwhile.
    let mut walk: Option<checkpoints::Walk> = None;
    let mut tick = tokio::time::interval(settings.checkpoint_every);
    tick.tick().await;
    chain_orphans(&store, settings.orphan_after, &mut head, &stats).await;
    loop {
        tokio::select! {
            first = rx.recv() => {
                let Some(first) = first else { break };
                let mut batch = vec![first];
                while batch.len() < GROUP {
                    match rx.try_recv() {
                        Ok(p) => batch.push(p),
                        Err(_) => break,
                    }
                }
                let mut events = Vec::with_capacity(batch.len());
                let mut saved = Vec::with_capacity(batch.len());
                let mut acks = Vec::with_capacity(batch.len());
                for (event, id, ack) in batch {
                    events.push(event);
                    saved.push(id);
                    acks.push(ack);
                }
                let (entries, began) = (events.len(), Instant::now());
                let ok = append(&store, events, saved, &mut head).await;
                stats.record(entries, began.elapsed(), ok);
                for ack in acks {
                    let _ = ack.send(ok);
                }
            }
            proved = async { walk.as_mut().expect("guarded").await }, if walk.is_some() => {
                walk = None;
                checkpoints.walked(&store, &mut head, proved).await;
            }
            _ = tick.tick() => {
                chain_orphans(&store, settings.orphan_after, &mut head, &stats).await;
                if walk.is_none() {
                    walk = checkpoints.walk(&store, &head);
                }
                checkpoints.sign(&store, &head).await;
            }
        }
    }
    // The last checkpoint: the check under way finishes, then one for the head as it
    // is now if that is still unchecked (not again after a check that failed).
    let mut held = true;
    if let Some(walk) = walk.take() {
        let proved = walk.await;
        held = proved.is_some();
        checkpoints.walked(&store, &mut head, proved).await;
    }
    if let Some(walk) = checkpoints.walk(&store, &head).filter(|_| held) {
        let proved = walk.await;
        checkpoints.walked(&store, &mut head, proved).await;
    }
    checkpoints.sign(&store, &head).await;
}

/// Chains the entries that writes saved at least `age` ago and their calls never chained
/// (their process stopped first, or the append failed), a thousand per group.
async fn chain_orphans(store: &Store, age: Duration, head: &mut Head, stats: &WriterStats) {
    let cutoff = now_millis() - i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
    for _ in 0..HEAD_MOVED_ATTEMPTS {
        let known = match head.known().cloned() {
            Some(known) => known,
            None => match store.audit_head().await {
                Ok(read) => {
                    head.read(read.clone());
                    read
                }
                Err(e) => {
                    tracing::warn!(error = ?e, "saved audit entries not chained yet; will retry");
                    return;
                }
            },
        };
        match store.chain_orphaned_audit(&known, cutoff).await {
            Ok(Some((new_head, 0))) => {
                head.advanced(new_head);
                return;
            }
            Ok(Some((new_head, n))) => {
                tracing::warn!(
                    entries = n,
                    "chained the audit entries of committed writes whose calls had not"
                );
                stats.recovered.fetch_add(n as u64, Ordering::Relaxed);
                head.advanced(new_head);
            }
            Ok(None) => head.lost(),
            Err(e) => {
                head.lost();
                tracing::warn!(error = ?e, "saved audit entries not chained yet; will retry");
                return;
            }
        }
    }
}

/// What handlers (and authentication) learn about a call for its audit entry. Shared
/// through the request's extensions; a request without one (a test calling a handler
/// directly) gets a detached note.
///
/// A handler that writes notes its subjects and count before the write: the write's
/// commit saves the entry as noted then, and that saved copy is what the log keeps if
/// the call never finishes (see `store::CallAudit`).
#[derive(Clone, Default)]
pub struct AuditNote(Arc<Mutex<Noted>>);

#[derive(Clone, Default)]
struct Noted {
    agency: String,
    request_id: String,
    subjects: Vec<String>,
    purpose: Option<Purpose>,
    case_reference: String,
    result_count: i64,
}

impl AuditNote {
    /// The note of `req`.
    pub fn of<T>(req: &tonic::Request<T>) -> AuditNote {
        req.extensions()
            .get::<AuditNote>()
            .cloned()
            .unwrap_or_default()
    }

    /// The note, even after a panic while it was held: a call that panicked is still
    /// audited, with whatever was noted.
    fn lock(&self) -> std::sync::MutexGuard<'_, Noted> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn with(&self, f: impl FnOnce(&mut Noted)) -> &Self {
        f(&mut self.lock());
        self
    }

    /// The authenticated agency's id.
    pub fn agency(&self, id: &str) -> &Self {
        self.with(|n| n.agency = id.to_string())
    }

    /// The request's own `request_id` (writes carry one): it replaces the call's
    /// `x-request-id`, which the entry keeps otherwise. An empty one changes nothing,
    /// nor does one the call will refuse (too long, or holding an ID number): noted
    /// before validation, it would otherwise enter the chain with the refusal.
    pub fn request_id(&self, id: &str) -> &Self {
        if id.is_empty() || request_id_problem(id).is_some() {
            return self;
        }
        self.with(|n| n.request_id = id.to_string())
    }

    /// The call's id as [`crate::metrics::Observe`] settled it, checked there already.
    fn checked_request_id(&self, id: &str) -> &Self {
        self.with(|n| n.request_id = id.to_string())
    }

    /// The request id the call's entries carry: its own `request_id` once noted, else
    /// its `x-request-id`. Streams give it to the entries of what they disclose.
    pub fn noted_request_id(&self) -> String {
        self.lock().request_id.clone()
    }

    /// A subject touched, as a resource name (`enterprises/{uscc}`, `persons/{key}`).
    pub fn subject(&self, name: String) -> &Self {
        self.with(|n| n.subjects.push(name))
    }

    pub fn subjects(&self, names: impl IntoIterator<Item = String>) -> &Self {
        self.with(|n| n.subjects.extend(names))
    }

    /// The subjects, in place of any noted before (a call that redoes its work, as a
    /// spot-check draw that lost a race, names only what its answer shows).
    pub fn replace_subjects(&self, names: impl IntoIterator<Item = String>) -> &Self {
        self.with(|n| {
            n.subjects.clear();
            n.subjects.extend(names);
        })
    }

    pub fn purpose(&self, purpose: Option<Purpose>, case_reference: &str) -> &Self {
        self.with(|n| {
            n.purpose = purpose;
            n.case_reference = case_reference.to_string();
        })
    }

    /// Items returned or written.
    pub fn count(&self, n: usize) -> &Self {
        self.with(|noted| noted.result_count = n as i64)
    }

    /// The entry of a call to `method` begun at `time` if it ended now with OK.
    fn snapshot(&self, method: &str, time: i64) -> AuditEvent {
        let noted = self.lock().clone();
        noted.into_event(method.to_string(), time, "OK", true)
    }

    fn take(&self) -> Noted {
        std::mem::take(&mut self.lock())
    }
}

impl Noted {
    /// The entry of a call to `method` begun at `time` that ended with `outcome`;
    /// without `counted`, it returned and wrote nothing.
    fn into_event(self, method: String, time: i64, outcome: &str, counted: bool) -> AuditEvent {
        AuditEvent {
            time,
            agency: self.agency,
            method,
            request_id: self.request_id,
            subjects: self.subjects,
            purpose: self.purpose,
            case_reference: self.case_reference,
            outcome: outcome.to_string(),
            result_count: if counted { self.result_count } else { 0 },
        }
    }
}

/// Answers go out this long before the caller's deadline, so that the answer
/// (DEADLINE_EXCEEDED) still reaches a caller that is about to give up.
const DEADLINE_MARGIN: Duration = Duration::from_millis(1);

/// Most of a call's budget kept back from its work for its entry's group commit (a
/// tenth of the budget when that is less).
const AUDIT_RESERVE: Duration = Duration::from_millis(50);

/// The caller's time budget from the `grpc-timeout` header: 1 to 8 digits and a unit
/// (`H`, `M`, `S`, `m`, `u`, `n`). None when absent or malformed (then no deadline).
pub fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// When a call's caller stops waiting (from its `grpc-timeout`), for the handlers of
/// streams, which outlive the step that keeps unary calls' deadlines.
#[derive(Debug, Clone, Copy)]
pub struct CallDeadline {
    at: Instant,
    budget: Duration,
}

impl CallDeadline {
    /// When the answer must end: just before the caller gives up, so it still hears why.
    pub fn end(&self) -> Instant {
        self.at.checked_sub(DEADLINE_MARGIN).unwrap_or(self.at)
    }

    /// The status that ends a stream whose deadline passed.
    pub fn exceeded(&self) -> Status {
        crate::api::error::status(
            tonic::Code::DeadlineExceeded,
            format!(
                "the caller's deadline ({} ms) passed and the stream ends there; a stream \
                 meant to run longer needs a later deadline or none",
                self.budget.as_millis()
            ),
            "DEADLINE_EXCEEDED",
            tonic_types::ErrorDetails::new(),
        )
    }
}

fn deadline_exceeded(budget: Duration) -> Status {
    crate::api::error::status(
        tonic::Code::DeadlineExceeded,
        format!(
            "the caller's deadline ({} ms) passed before the call finished and its work was stopped; \
             a write retried with the same request_id is applied at most once",
            budget.as_millis()
        ),
        "DEADLINE_EXCEEDED",
        tonic_types::ErrorDetails::new(),
    )
}

/// A call's entry while the call runs. If the call is dropped before it finishes (the
/// transport's own deadline, the client going away) the entry is still queued, as
/// DEADLINE_EXCEEDED or CANCELLED: an attempt is accounted for even when unanswered.
struct Unfinished {
    log: AuditLog,
    note: AuditNote,
    call: Arc<CallAudit>,
    method: String,
    time: i64,
    deadline: Option<Instant>,
    armed: bool,
}

impl Unfinished {
    fn event(&mut self, outcome: &str) -> AuditEvent {
        self.armed = false;
        // Handlers note a write's count before it commits; a call that failed before
        // any commit returned and wrote nothing.
        let counted = outcome == "OK" || self.call.saved().is_some();
        let method = std::mem::take(&mut self.method);
        self.note
            .take()
            .into_event(method, self.time, outcome, counted)
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let outcome = match self.deadline {
            Some(d) if Instant::now() + DEADLINE_MARGIN >= d => "DEADLINE_EXCEEDED",
            _ => "CANCELLED",
        };
        let event = self.event(outcome);
        if let Some(tx) = &self.log.tx {
            let (done, _) = oneshot::channel();
            let saved = self.call.saved().map(str::to_string);
            if !enqueue(tx, (event, saved, done)) {
                tracing::error!(
                    "the audit writer stopped: an abandoned call's entry was not written"
                );
            }
        }
    }
}

/// The step (wrap it in a `StepLayer`); wraps every service, outside authentication so
/// refusals are logged too. It also keeps the caller's deadline: past it the call's work
/// is dropped (its transaction rolls back) and the answer is DEADLINE_EXCEEDED.
#[derive(Clone)]
pub struct Audit {
    log: AuditLog,
}

impl Audit {
    pub fn new(log: AuditLog) -> Self {
        Audit { log }
    }
}

/// The gRPC status code name of a response: trailers-only errors carry `grpc-status`
/// in the headers; a response that starts with headers alone is being answered.
pub fn grpc_code_name(headers: &http::HeaderMap) -> &'static str {
    code_name(
        headers
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i32>().ok())
            .map_or(tonic::Code::Ok, tonic::Code::from_i32),
    )
}

/// A gRPC status code's name as the audit log writes outcomes (`PERMISSION_DENIED`).
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

impl Step for Audit {
    fn call<S>(&self, mut inner: S, mut req: HttpRequest) -> BoxFuture<HttpResponse, S::Error>
    where
        S: Service<HttpRequest, Response = HttpResponse> + Send + 'static,
        S::Future: Send + 'static,
    {
        let log = self.log.clone();
        Box::pin(async move {
            let path = req.uri().path();
            // Every other path is audited, one outside this service's package too
            // (`/grpc.health.x/y`): its refusal is an attempt like any other.
            if is_public(path) {
                return inner.call(req).await;
            }
            // The path comes from the caller before authentication: one the service
            // does not have is logged under a fixed name, so no one can write text of
            // their choosing (an ID number, say) into the chain.
            let method = if is_served(path) {
                path.to_string()
            } else {
                UNKNOWN_METHOD.to_string()
            };
            let note = AuditNote::default();
            // Every entry carries a request id an operator can find in the logs and the
            // caller in its own: the call's id as the outer `Observe` layer settled (and
            // checked) it, until a handler notes the request's own `request_id`. Without
            // that layer, the x-request-id header, checked here.
            if let Some(CallId(id)) = req.extensions().get::<CallId>() {
                note.checked_request_id(id);
            } else if let Some(id) = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()) {
                note.request_id(id);
            }
            req.extensions_mut().insert(note.clone());
            // Streaming handlers record what each part of their answer discloses.
            req.extensions_mut().insert(log.clone());
            let budget = grpc_timeout(req.headers());
            if let Some(budget) = budget {
                req.extensions_mut().insert(CallDeadline {
                    at: Instant::now() + budget,
                    budget,
                });
            }
            let time = now_millis();
            let call = CallAudit::new({
                let (note, method) = (note.clone(), method.clone());
                move || note.snapshot(&method, time)
            });
            let mut unfinished = Unfinished {
                log: log.clone(),
                note,
                call: call.clone(),
                method,
                time,
                deadline: budget.map(|b| Instant::now() + b),
                armed: true,
            };
            // With the log off (benchmarks only) writes save no entry that nobody chains.
            let work = inner.call(req);
            let audited = log.tx.is_some();
            let work = async move {
                if audited {
                    call.serve(work).await
                } else {
                    work.await
                }
            };
            let response = match budget {
                Some(budget) => {
                    // The entry's group commit needs a moment of the budget too: a call
                    // whose work took all of it would be answered only after its
                    // deadline, or not at all.
                    let reserve = (budget / 10).min(AUDIT_RESERVE);
                    let for_work = budget.saturating_sub(DEADLINE_MARGIN + reserve);
                    match tokio::time::timeout(for_work, work).await {
                        Ok(response) => response?,
                        Err(_) => deadline_exceeded(budget).into_http(),
                    }
                }
                None => work.await?,
            };
            let outcome = grpc_code_name(response.headers());
            let event = unfinished.event(outcome);
            let deadline = unfinished.deadline;
            let saved = unfinished.call.saved().map(str::to_string);
            // Kept only where the wait below can run out: a refusal after the entry was
            // queued needs a second entry (see `note_refusal`).
            let mut queued =
                (budget.is_some() && outcome != "DEADLINE_EXCEEDED" && outcome != "UNAVAILABLE")
                    .then(|| event.clone());
            let recorded = log.record_saved(event, saved);
            // While the database is away the entry cannot be made durable; the caller
            // hears so (UNAVAILABLE, retry later) before its deadline, not after it. A
            // call whose work itself ran out of time keeps its DEADLINE_EXCEEDED.
            let recorded = match (deadline, budget) {
                (Some(d), Some(budget)) => {
                    let left = d
                        .saturating_duration_since(Instant::now())
                        .saturating_sub(DEADLINE_MARGIN);
                    match tokio::time::timeout(left, recorded).await {
                        Ok(recorded) => recorded,
                        Err(_) if outcome == "DEADLINE_EXCEEDED" => Err(deadline_exceeded(budget)),
                        Err(_) => {
                            let refused = audit_unavailable();
                            // The entry queued above may still be written, saying what
                            // the call would have answered; a second one says what it
                            // did answer.
                            if let Some(event) = queued.take() {
                                log.note_refusal(event, &refused);
                            }
                            Err(refused)
                        }
                    }
                }
                _ => recorded.await,
            };
            match recorded {
                Ok(()) => Ok(response),
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_by_unit_and_malformed_ones_are_ignored() {
        let t = |v: &str| {
            let mut h = http::HeaderMap::new();
            h.insert("grpc-timeout", v.parse().unwrap());
            grpc_timeout(&h)
        };
        assert_eq!(t("100m"), Some(Duration::from_millis(100)));
        assert_eq!(t("2S"), Some(Duration::from_secs(2)));
        assert_eq!(t("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(t("250u"), Some(Duration::from_micros(250)));
        assert_eq!(t("123456789m"), None);
        assert_eq!(t("m"), None);
        assert_eq!(t("10x"), None);
        assert_eq!(t("-1S"), None);
        assert_eq!(grpc_timeout(&http::HeaderMap::new()), None);
    }

    #[test]
    fn outcomes_are_grpc_code_names() {
        let mut h = http::HeaderMap::new();
        assert_eq!(grpc_code_name(&h), "OK");
        h.insert("grpc-status", "7".parse().unwrap());
        assert_eq!(grpc_code_name(&h), "PERMISSION_DENIED");
        h.insert("grpc-status", "3".parse().unwrap());
        assert_eq!(grpc_code_name(&h), "INVALID_ARGUMENT");
    }
}
