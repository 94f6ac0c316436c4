//! The sender: one pass over the outgoing spool as cron runs `ssmsend` — lock, read, drop
//! records the ledger holds newer, sign (and encrypt), publish several per request with
//! bounded concurrency, and only after AMS answered 200 with an id: ledger `mark_sent`, remove.
//! Owns the retry/split/quarantine policy, the quarantine directory and `spool status`.
//!
//! Before anything is signed, every element is parsed and checked with the APEL loader's
//! rules (`apel::parse_message` + `apel::validate`); one that fails is quarantined with the
//! rule it broke and never leaves the site (`SenderOptions::validate = false` keeps SSM's
//! send-anything behaviour).
//!
//! A failure every message would meet stops the run at once and blames no message: the
//! token exchange refused or not found, 401/403, 404 (no such project or topic), AMS
//! unreachable, DNS or TLS errors ([`AmsError::systemic`]); and the first messages of a run
//! all refused with the same answer before any was accepted (a configuration error, not
//! many bad messages). Every element stays in the spool; [`SendReport::stopped`] says what
//! to fix.
//!
//! Outcomes per element otherwise (one element never stops the others):
//! * 200 → `mark_sent(element, id)` (elements the ledger does not know, e.g. cASO's, are sent
//!   too and stay foreign: nothing is recorded for them), then the element is removed;
//! * 5xx/408/429/network/garbled answer → retried in later rounds with exponential backoff and
//!   full jitter, bounded by attempts and elapsed time; then unlocked and left for the next run;
//! * 413 (or over the client's request limit) → split in two along record boundaries into new
//!   spool elements; the ledger records the halves with the original's record links and
//!   quarantines the original with reason `split after 413 into A, B`; the original is removed;
//!   the halves are sent in the same run. A single record too large is quarantined;
//! * 400/409/other client errors about this message → the element moves to the quarantine
//!   directory with the AMS error, `ledger.quarantine(element, reason)`;
//! * locked by another process → skipped (and counted: the run is not a full success).
//!   `purge` (stale `.tmp` 300 s, stale locks 600 s) runs at the start and at the end (SSM: at
//!   the end); `fedsite send` holds the spool's run lock, so no other fedsite sender is working
//!   on it.

use std::collections::{HashMap, VecDeque};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use apel::{Record, RecordKind};
use chrono::{DateTime, Utc};
use ledger::{Ledger, MessageState, NewMessage, RecordRef};
use rand::Rng as _;

use crate::ams::{self, AmsClient, AmsError, ErrorClass, OutgoingMessage, PublishRequest};
use crate::config::PathType;
use crate::dirq::{self, QueueSimple};
use smime::{Recipient, Signer};

/// Reason prefixes of ledger messages quarantined as bookkeeping (split after 413, every
/// record superseded): the ledger's, so that readers of the ledger need not know the sender.
pub use ledger::{SPLIT_REASON, SUPERSEDED_REASON};

pub mod run;
pub use run::send_recorded;

/// Reason prefix of an element refused by the APEL loader's rules before sending.
pub const INVALID_REASON: &str = "not sent: APEL would refuse it:";
/// How many messages, refused with the same answer before any was accepted, make the answer
/// a configuration error rather than bad messages.
pub const SAME_REFUSAL_STOP: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("spool {}: {reason}", path.display())]
    Spool { path: PathBuf, reason: String },
    #[error(transparent)]
    Ledger(#[from] ledger::Error),
}

fn spool_err(path: &Path, e: impl std::fmt::Display) -> SendError {
    SendError::Spool { path: path.to_owned(), reason: e.to_string() }
}

/// Exponential backoff with full jitter: attempt n waits a random time in
/// `[d/2, d]`, `d = min(initial · 2^(n-1), max_delay)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = no retry).
    pub max_retries: u32,
    pub initial: Duration,
    pub max_delay: Duration,
    /// No retry round starts after this much time since the run began.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 6,
            initial: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            max_elapsed: Duration::from_secs(600),
        }
    }
}

impl RetryPolicy {
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self.initial.saturating_mul(1u32 << attempt.saturating_sub(1).min(20)).min(self.max_delay);
        let ms = exp.as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(ms / 2..=ms.max(1)))
    }
}

/// Where and how to send.
#[derive(Debug, Clone)]
pub struct SenderOptions {
    pub spool: PathBuf,
    pub path_type: PathType,
    /// AMS topic (`[messaging] destination`).
    pub topic: String,
    /// Plain directory: `<dir>_<file>` (the message) and `<dir>_<file>.error` (why).
    pub quarantine: PathBuf,
    pub retry: RetryPolicy,
    /// Elements signed and published per round (memory bound; publish requests inside a round
    /// run `client.config().concurrency` at a time).
    pub chunk: usize,
    /// Style used to re-render a message (split halves, superseded records dropped).
    pub style: apel::Style,
    pub purge_maxtemp: Duration,
    pub purge_maxlock: Duration,
    /// Parse and check every element with the APEL loader's rules before signing; quarantine
    /// those that fail (default). `false`: send whatever is in the spool, as SSM does.
    pub validate: bool,
}

impl SenderOptions {
    pub fn new(spool: impl Into<PathBuf>, topic: &str) -> SenderOptions {
        let spool = spool.into();
        SenderOptions {
            quarantine: default_quarantine(&spool),
            spool,
            path_type: PathType::Dirq,
            topic: topic.to_owned(),
            retry: RetryPolicy::default(),
            chunk: 200,
            style: apel::Style::Fedsite,
            purge_maxtemp: dirq::DEFAULT_MAXTEMP,
            purge_maxlock: dirq::DEFAULT_MAXLOCK,
            validate: true,
        }
    }
}

/// `<spool>.quarantine`, beside the spool (e.g. /var/spool/apel/outgoing.quarantine).
pub fn default_quarantine(spool: &Path) -> PathBuf {
    crate::quarantine::default_dir(spool)
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendReport {
    /// Elements published (AMS id received) and removed.
    pub sent: usize,
    /// Publish attempts repeated after a retryable error.
    pub retried: usize,
    /// Elements split in two after a 413.
    pub split: usize,
    /// Elements moved to the quarantine directory (`invalid` included).
    pub quarantined: usize,
    /// Of those, elements the APEL loader's rules refuse (never sent).
    pub invalid: usize,
    pub skipped_locked: usize,
    /// Elements the ledger already had as sent (removal failed last time): removed, not resent.
    pub already_sent: usize,
    /// Records left out because the ledger holds a newer snapshot of them.
    pub superseded_records: usize,
    /// Elements removed because all their records were superseded.
    pub superseded_messages: usize,
    /// Elements given up on for this run (retries exhausted): left in the spool.
    pub deferred: usize,
    /// Elements not tried or not settled because the run stopped: left in the spool.
    pub left: usize,
    /// Messages AMS stored twice: published ahead of a too-large one in a request answered 413
    /// (AMS does not say which were stored) and therefore sent again.
    pub duplicates: usize,
    /// Set when a failure every message would meet stopped the run: the error and what to
    /// fix. Nothing was quarantined for it; the elements stay in the spool.
    pub stopped: Option<String>,
    pub errors: Vec<String>,
}

impl SendReport {
    /// True when everything that was in the spool was sent (or had been sent already, or
    /// was superseded): nothing quarantined, deferred, skipped, left, and no error.
    pub fn complete(&self) -> bool {
        self.stopped.is_none()
            && self.errors.is_empty()
            && self.quarantined == 0
            && self.deferred == 0
            && self.skipped_locked == 0
            && self.left == 0
    }

    /// Adds `other`'s counts and errors (another spool's run, e.g. another destination's) to
    /// this report; `label` prefixes its errors and stop reason.
    pub fn merge(&mut self, other: SendReport, label: &str) {
        self.sent += other.sent;
        self.retried += other.retried;
        self.split += other.split;
        self.quarantined += other.quarantined;
        self.invalid += other.invalid;
        self.skipped_locked += other.skipped_locked;
        self.already_sent += other.already_sent;
        self.superseded_records += other.superseded_records;
        self.superseded_messages += other.superseded_messages;
        self.deferred += other.deferred;
        self.left += other.left;
        self.duplicates += other.duplicates;
        if self.stopped.is_none() {
            self.stopped = other.stopped.map(|s| format!("{label}: {s}"));
        }
        self.errors.extend(other.errors.into_iter().map(|e| format!("{label}: {e}")));
    }

    /// One line for logs and the command's output.
    pub fn summary(&self) -> String {
        format!(
            "sent {}, retried {}, split {}, quarantined {} ({} invalid), skipped-locked {}, \
             deferred {}, left {}, already-sent {}, superseded {} record(s) ({} message(s) \
             dropped), AMS duplicates {}",
            self.sent,
            self.retried,
            self.split,
            self.quarantined,
            self.invalid,
            self.skipped_locked,
            self.deferred,
            self.left,
            self.already_sent,
            self.superseded_records,
            self.superseded_messages,
            self.duplicates
        )
    }
}

/// The outgoing spool: a dirq QueueSimple or SSM's flat directory.
pub enum Spool {
    Dirq(QueueSimple),
    Directory(PathBuf),
}

impl Spool {
    pub fn open(path: &Path, ty: PathType) -> Result<Spool, SendError> {
        match ty {
            PathType::Dirq => Ok(Spool::Dirq(QueueSimple::open(path).map_err(|e| spool_err(path, e))?)),
            PathType::Directory => {
                std::fs::create_dir_all(path).map_err(|e| spool_err(path, e))?;
                Ok(Spool::Directory(path.to_owned()))
            }
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            Spool::Dirq(q) => q.path(),
            Spool::Directory(p) => p,
        }
    }

    /// Element names in sending order (dirq: by name = time; directory: by mtime).
    pub fn names(&self) -> Result<Vec<String>, SendError> {
        match self {
            Spool::Dirq(q) => Ok(q.iter().map_err(|e| spool_err(q.path(), e))?.into_iter().map(String::from).collect()),
            Spool::Directory(p) => {
                let mut v = Vec::new();
                for e in std::fs::read_dir(p).map_err(|e| spool_err(p, e))? {
                    let e = e.map_err(|e| spool_err(p, e))?;
                    let name = e.file_name().to_string_lossy().into_owned();
                    if name.starts_with('.') || name.ends_with(".tmp") {
                        continue;
                    }
                    if let Ok(m) = e.metadata()
                        && m.is_file()
                    {
                        v.push((m.modified().ok(), name));
                    }
                }
                v.sort();
                Ok(v.into_iter().map(|(_, n)| n).collect())
            }
        }
    }

    pub fn lock(&self, name: &str) -> Result<bool, SendError> {
        match self {
            Spool::Dirq(q) => q.lock(name, true).map_err(|e| spool_err(q.path(), e)),
            Spool::Directory(p) => Ok(p.join(name).is_file()),
        }
    }

    pub fn unlock(&self, name: &str) {
        if let Spool::Dirq(q) = self
            && let Err(e) = q.unlock(name, true)
        {
            tracing::warn!(element = name, "cannot unlock: {e}");
        }
    }

    pub fn get(&self, name: &str) -> Result<Vec<u8>, SendError> {
        match self {
            Spool::Dirq(q) => q.get(name).map_err(|e| spool_err(q.path(), e)),
            Spool::Directory(p) => std::fs::read(p.join(name)).map_err(|e| spool_err(p, e)),
        }
    }

    pub fn remove(&self, name: &str) -> Result<(), SendError> {
        match self {
            Spool::Dirq(q) => q.remove(name).map_err(|e| spool_err(q.path(), e)),
            Spool::Directory(p) => std::fs::remove_file(p.join(name)).map_err(|e| spool_err(p, e)),
        }
    }

    /// Adds a new element (directory: a uuid4-named file, written to `.tmp` then renamed).
    pub fn add(&self, data: &[u8]) -> Result<String, SendError> {
        match self {
            Spool::Dirq(q) => q.add(data).map(String::from).map_err(|e| spool_err(q.path(), e)),
            Spool::Directory(p) => {
                let name = uuid4();
                write_durably(&p.join(&name), data).map_err(|e| spool_err(p, e))?;
                Ok(name)
            }
        }
    }

    pub fn purge(&self, maxtemp: Duration, maxlock: Duration) -> Result<(), SendError> {
        if let Spool::Dirq(q) = self {
            let r = q.purge(maxtemp, maxlock).map_err(|e| spool_err(q.path(), e))?;
            for u in &r.unlocked {
                tracing::info!(element = %u, "stale lock released by purge");
            }
        }
        Ok(())
    }
}

fn uuid4() -> String {
    let b: [u8; 16] = rand::rng().random();
    let h = hex::encode(b);
    format!("{}-{}-4{}-{:x}{}-{}", &h[0..8], &h[8..12], &h[13..16], 8 | (b[8] & 3), &h[17..20], &h[20..32])
}

/// Writes `path` atomically and durably: `<path>.tmp`, fsync, rename, fsync the directory.
pub(crate) fn write_durably(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// One element ready to publish.
struct Item {
    name: String,
    /// What is signed (the element, minus superseded records).
    payload: Vec<u8>,
    parsed: Option<(RecordKind, Vec<Record>)>,
    msg: OutgoingMessage,
    /// The ledger knows this element (state spooled).
    known: bool,
    attempts: u32,
    /// AMS stored it already without giving its id (ahead of a 413 in the same request).
    stored_before: bool,
}

struct Run<'a> {
    opts: &'a SenderOptions,
    spool: Spool,
    ledger: Option<&'a mut Ledger>,
    signer: &'a Signer,
    encrypt: Option<&'a Recipient>,
    report: SendReport,
    started: Instant,
    /// Messages refused (client error about the message) before any message of the run was
    /// accepted, held until it is clear whether the refusal is theirs or the configuration's.
    held: Vec<(Item, AmsError)>,
    /// Elements the APEL loader's rules refuse: (name, content, rule). Quarantined at the end
    /// of a run that was not stopped; left in the spool (unlocked) by a stopped one.
    invalid: Vec<(String, Vec<u8>, String)>,
}

/// One pass over the spool (see the module doc). `ledger` is optional: without it nothing is
/// recorded and no record is checked for a newer snapshot.
pub async fn send_all(
    opts: &SenderOptions,
    client: &AmsClient,
    signer: &Signer,
    encrypt: Option<&Recipient>,
    ledger: Option<&mut Ledger>,
) -> Result<SendReport, SendError> {
    let spool = Spool::open(&opts.spool, opts.path_type)?;
    let mut run = Run {
        opts,
        spool,
        ledger,
        signer,
        encrypt,
        report: SendReport::default(),
        started: Instant::now(),
        held: Vec::new(),
        invalid: Vec::new(),
    };
    // Locks left by a killed run are released before the run, not only after it.
    if let Err(e) = run.spool.purge(opts.purge_maxtemp, opts.purge_maxlock) {
        run.report.errors.push(e.to_string());
    }
    let mut fresh: VecDeque<(String, bool)> = run.spool.names()?.into_iter().map(|n| (n, false)).collect();
    // A failing token exchange is met by every message: found before anything is touched.
    if !fresh.is_empty()
        && let Err(e) = client.token().await
        && let Some(fix) = e.systemic()
    {
        run.stop(format!("{e}; to fix: {fix}"));
        run.report.left = fresh.len();
        return Ok(run.report);
    }
    let mut retry: Vec<Item> = Vec::new();
    let mut round = 0u32;
    let mut learned_413: Option<usize> = None;
    let mut last_retryable: Option<String> = None;
    while run.report.stopped.is_none() && (!fresh.is_empty() || !retry.is_empty()) {
        let batch: Vec<Item> = if !fresh.is_empty() {
            let mut unsigned = Vec::new();
            while unsigned.len() < opts.chunk.max(1)
                && let Some((name, locked)) = fresh.pop_front()
            {
                if let Some(u) = run.prepare(&name, locked)? {
                    unsigned.push(u);
                }
            }
            // Signing is the CPU of a send: the chunk's messages are signed on every core.
            let signed = sign_all(run.signer, &unsigned);
            let mut items = Vec::with_capacity(unsigned.len());
            for (u, sig) in unsigned.into_iter().zip(signed) {
                if let Some(item) = run.finish_prepare(u, sig)? {
                    items.push(item);
                }
            }
            items
        } else {
            round += 1;
            let elapsed = run.started.elapsed();
            if elapsed >= opts.retry.max_elapsed {
                for it in retry.drain(..) {
                    run.defer(&it.name, "retry time exhausted");
                }
                break;
            }
            let wait = opts.retry.delay(round).min(opts.retry.max_elapsed - elapsed);
            tracing::info!(
                messages = retry.len(),
                wait_ms = wait.as_millis() as u64,
                last_error = %last_retryable.as_deref().unwrap_or(""),
                "retrying after retryable AMS errors"
            );
            tokio::time::sleep(wait).await;
            std::mem::take(&mut retry)
        };
        let mut halves = Vec::new();
        let results = publish_round(client, &opts.topic, batch, &mut learned_413).await;
        // Successes first: a message accepted in the same round clears the held refusals.
        let (ok, failed): (Vec<_>, Vec<_>) = results.into_iter().partition(|(_, r)| r.is_ok());
        for (item, result) in ok {
            if let Ok(id) = result {
                run.finish_sent(&item, &id);
            }
        }
        if run.report.sent > 0 {
            run.release_held()?;
        }
        for (item, result) in failed {
            let Err(e) = result else { continue };
            if run.report.stopped.is_some() {
                run.leave(&item.name);
                continue;
            }
            if let Some(fix) = e.systemic() {
                run.stop(format!("{e}; to fix: {fix}"));
                run.leave(&item.name);
                continue;
            }
            match e.class() {
                ErrorClass::Retryable => {
                    last_retryable = Some(e.to_string());
                    let mut item = item;
                    item.attempts += 1;
                    if item.attempts > opts.retry.max_retries {
                        run.defer(&item.name, &format!("giving up for this run: {e}"));
                    } else {
                        run.report.retried += 1;
                        retry.push(item);
                    }
                }
                ErrorClass::TooLarge => halves.extend(run.split(&item, &e)?),
                ErrorClass::Permanent => run.refused(item, e)?,
            }
        }
        for h in halves {
            fresh.push_front((h, true));
        }
    }
    if run.report.stopped.is_some() {
        for (it, _) in std::mem::take(&mut run.held) {
            run.leave(&it.name);
        }
        for (name, _, _) in std::mem::take(&mut run.invalid) {
            run.leave(&name);
        }
    } else {
        // Fewer than SAME_REFUSAL_STOP refusals and nothing accepted: theirs, not the setup's.
        run.release_held()?;
        for (name, data, why) in std::mem::take(&mut run.invalid) {
            run.report.invalid += 1;
            run.quarantine(&name, &data, &format!("{INVALID_REASON} {why}"))?;
        }
    }
    for it in retry {
        if run.report.stopped.is_some() {
            run.leave(&it.name);
        } else {
            run.defer(&it.name, "run stopped");
        }
    }
    for (name, locked) in fresh {
        if locked {
            run.spool.unlock(&name);
        }
        run.report.left += 1;
    }
    if let Err(e) = run.spool.purge(opts.purge_maxtemp, opts.purge_maxlock) {
        run.report.errors.push(e.to_string());
    }
    tracing::info!("send: {}", run.report.summary());
    Ok(run.report)
}

/// A request-level refusal that one message of a batch may have caused.
fn isolate(e: &AmsError) -> bool {
    match e.class() {
        ErrorClass::TooLarge => true,
        ErrorClass::Permanent => e.systemic().is_none() && e.status().is_some(),
        ErrorClass::Retryable => false,
    }
}

/// Publishes `items` through [`AmsClient::publish_requests`] (the client's one planner).
/// A request refused with 413 (or 400/404/...) that carried several messages is re-sent one
/// message per request (AMS stores the messages of a request one by one until the refused one:
/// those before it are then stored twice and counted in `report.duplicates`).
async fn publish_round(
    client: &AmsClient,
    topic: &str,
    items: Vec<Item>,
    learned_413: &mut Option<usize>,
) -> Vec<(Item, Result<String, AmsError>)> {
    // Once AMS refused a message of n bytes alone, larger ones are split without asking again
    // (each attempt in a batch would store the messages ahead of it twice).
    let (big, mut items): (Vec<Item>, Vec<Item>) =
        items.into_iter().partition(|i| learned_413.is_some_and(|l| i.msg.data.len() >= l));
    let mut out: Vec<(Item, Result<String, AmsError>)> = big
        .into_iter()
        .map(|it| {
            let e = AmsError::TooLargeLocal {
                what: format!("publishing {} (AMS refused a message this large with 413)", it.name),
                size: it.msg.data.len(),
                limit: learned_413.unwrap_or(0),
            };
            (it, Err(e))
        })
        .collect();
    let limit = client.config().max_request_bytes;
    let mut results: Vec<Option<Result<String, AmsError>>> = vec![None; items.len()];
    let msgs: Vec<OutgoingMessage> = items.iter().map(|i| i.msg.clone()).collect();
    let mut split_again = Vec::new();
    for request in client.publish_requests(topic, &msgs).await {
        match request {
            PublishRequest::TooLarge { index: i, encoded_size } => {
                results[i] = Some(Err(AmsError::TooLargeLocal {
                    what: format!("publishing {}", items[i].name),
                    size: encoded_size,
                    limit,
                }))
            }
            PublishRequest::Sent { messages: r, result: Ok(ids) } => {
                r.zip(ids).for_each(|(i, id)| results[i] = Some(Ok(id)))
            }
            // Which message AMS refused is not said: each is tried alone (413, 400, 404...).
            PublishRequest::Sent { messages: r, result: Err(e) } if r.len() > 1 && isolate(&e) => {
                split_again.push((r, e.class() == ErrorClass::TooLarge))
            }
            PublishRequest::Sent { messages: r, result: Err(e) } => r.for_each(|i| results[i] = Some(Err(e.clone()))),
        }
    }
    for (r, was_413) in split_again {
        for i in r.clone() {
            results[i] =
                Some(client.publish_batch(topic, std::slice::from_ref(&msgs[i])).await.map(|mut ids| ids.remove(0)));
        }
        // Only a 413 comes after AMS stored the messages ahead of the refused one: those are
        // stored twice once they are sent again (now or after a retry).
        let culprit = r.clone().find(|&i| matches!(&results[i], Some(Err(e)) if e.class() == ErrorClass::TooLarge));
        for i in r.clone() {
            if matches!(&results[i], Some(Err(e)) if e.status() == Some(413)) {
                let n = msgs[i].data.len();
                *learned_413 = Some(learned_413.map_or(n, |l| l.min(n)));
            }
        }
        if let (true, Some(c)) = (was_413, culprit) {
            for item in &mut items[r.start..c] {
                item.stored_before = true;
            }
        }
    }
    out.extend(items.into_iter().zip(results).map(|(it, r)| (it, r.expect("every message has a result"))));
    out
}

/// An element read and filtered, to be signed.
struct Unsigned {
    name: String,
    payload: Vec<u8>,
    parsed: Option<(RecordKind, Vec<Record>)>,
    known: bool,
}

/// Signs every payload, on as many threads as there are cores (in order).
fn sign_all(signer: &Signer, items: &[Unsigned]) -> Vec<Result<Vec<u8>, smime::SmimeError>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(items.len()).max(1);
    if threads == 1 {
        return items.iter().map(|u| signer.sign(&u.payload)).collect();
    }
    let per = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(per)
            .map(|part| scope.spawn(move || part.iter().map(|u| signer.sign(&u.payload)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(v) => v,
                Err(p) => std::panic::resume_unwind(p),
            })
            .collect()
    })
}

impl Run<'_> {
    /// Locks (unless `locked`) and reads an element; settles what needs no publishing.
    fn prepare(&mut self, name: &str, locked: bool) -> Result<Option<Unsigned>, SendError> {
        if !locked && !self.spool.lock(name)? {
            tracing::info!(element = name, "locked by another process: skipped");
            self.report.skipped_locked += 1;
            return Ok(None);
        }
        let data = match self.spool.get(name) {
            Ok(d) => d,
            Err(e) => {
                self.report.errors.push(e.to_string());
                self.spool.unlock(name);
                return Ok(None);
            }
        };
        let known = match self.ledger.as_deref().map(|l| l.message(name)).transpose()? {
            None | Some(None) => false,
            Some(Some(m)) => match m.state {
                MessageState::Spooled => true,
                MessageState::Sent | MessageState::Acknowledged => {
                    tracing::info!(element = name, ams_id = ?m.ams_id, "already sent: removing");
                    self.report.already_sent += 1;
                    self.remove(name);
                    return Ok(None);
                }
                MessageState::Quarantined => {
                    // Split, superseded or quarantined before the removal: the decision stands.
                    tracing::info!(element = name, reason = ?m.reason, "settled earlier: removing");
                    if !m
                        .reason
                        .as_deref()
                        .is_some_and(|r| r.starts_with(SPLIT_REASON) || r.starts_with(SUPERSEDED_REASON))
                    {
                        self.write_quarantine(name, &data, m.reason.as_deref().unwrap_or("")).ok();
                    }
                    self.remove(name);
                    return Ok(None);
                }
            },
        };
        let mut payload = data;
        let mut parsed = match apel::parse_message(&payload) {
            Ok((kind, records)) => {
                match records.iter().enumerate().find_map(|(i, r)| apel::validate(r).err().map(|e| (i, e))) {
                    Some((i, e)) if self.opts.validate => {
                        self.refuse_invalid(name, &payload, &format!("record {i}: {e}"))?;
                        return Ok(None);
                    }
                    _ => Some((kind, records)),
                }
            }
            Err(e) if self.opts.validate => {
                self.refuse_invalid(name, &payload, &e.to_string())?;
                return Ok(None);
            }
            Err(_) => None,
        };
        if let (Some(l), Some((kind, records))) = (self.ledger.as_deref(), parsed.as_mut()) {
            let before = records.len();
            let refs = if known { l.message_records(name)? } else { Vec::new() };
            let keep = superseded_filter(l, name, *kind, records, &refs)?;
            let mut i = 0;
            records.retain(|_| {
                i += 1;
                keep[i - 1]
            });
            let dropped = before - records.len();
            if dropped > 0 {
                self.report.superseded_records += dropped;
                if records.is_empty() {
                    tracing::info!(element = name, "every record superseded by a newer snapshot: dropped");
                    self.report.superseded_messages += 1;
                    if known {
                        self.ledger_quarantine(
                            name,
                            &format!("{SUPERSEDED_REASON} the ledger holds newer snapshots of all {before} records"),
                        );
                    }
                    self.remove(name);
                    return Ok(None);
                }
                tracing::info!(element = name, dropped, "records superseded by newer snapshots left out");
                payload = apel::render_message(*kind, records, self.opts.style).unwrap_or(payload);
            }
        }
        Ok(Some(Unsigned { name: name.to_owned(), payload, parsed, known }))
    }

    /// The element signed (`signed`), encrypted when configured: the item to publish.
    fn finish_prepare(
        &mut self,
        u: Unsigned,
        signed: Result<Vec<u8>, smime::SmimeError>,
    ) -> Result<Option<Item>, SendError> {
        let Unsigned { name, payload, parsed, known } = u;
        let name = name.as_str();
        let mut signed = match signed {
            Ok(s) => s,
            Err(e) => {
                self.quarantine(name, &payload, &format!("signing failed: {e}"))?;
                return Ok(None);
            }
        };
        if let Some(r) = self.encrypt {
            signed = match r.encrypt(&signed) {
                Ok(s) => s,
                Err(e) => {
                    self.quarantine(name, &payload, &format!("encryption failed: {e}"))?;
                    return Ok(None);
                }
            };
        }
        Ok(Some(Item {
            name: name.to_owned(),
            msg: OutgoingMessage::ssm(name, &signed),
            payload,
            parsed,
            known,
            attempts: 0,
            stored_before: false,
        }))
    }

    fn finish_sent(&mut self, item: &Item, id: &str) {
        tracing::debug!(element = %item.name, ams_id = id, "sent");
        if item.known
            && let Some(l) = self.ledger.as_deref_mut()
            && let Err(e) = l.mark_sent(&item.name, id)
        {
            self.report.errors.push(e.to_string());
        }
        self.report.sent += 1;
        if item.stored_before {
            self.report.duplicates += 1;
        }
        self.remove(&item.name);
    }

    fn remove(&mut self, name: &str) {
        if let Err(e) = self.spool.remove(name) {
            tracing::error!(element = name, "cannot remove: {e}");
            self.report.errors.push(e.to_string());
        }
    }

    /// An element the APEL loader would refuse: never signed nor sent; quarantined at the end
    /// of the run unless the run stops (a configuration error moves nothing aside).
    fn refuse_invalid(&mut self, name: &str, data: &[u8], why: &str) -> Result<(), SendError> {
        tracing::warn!(element = name, "the APEL loader would refuse it, not sending: {why}");
        self.invalid.push((name.to_owned(), data.to_vec(), why.to_owned()));
        Ok(())
    }

    /// Stops the run for a failure every message would meet (reported once).
    fn stop(&mut self, why: String) {
        tracing::error!("stopping the run, every element stays in the spool: {why}");
        self.report.stopped = Some(why);
    }

    /// Left in the spool, unsettled, because the run stopped.
    fn leave(&mut self, name: &str) {
        self.report.left += 1;
        self.spool.unlock(name);
    }

    /// A client error about one message. Before any message of the run was accepted, refusals
    /// are held: SAME_REFUSAL_STOP of them with the same answer stop the run (configuration);
    /// a different answer, or an accepted message, settles them as the messages' own.
    fn refused(&mut self, item: Item, e: AmsError) -> Result<(), SendError> {
        if self.report.sent > 0 {
            return self.quarantine(&item.name, &item.payload, &e.to_string());
        }
        if self.held.first().is_some_and(|(_, first)| first.to_string() != e.to_string()) {
            self.release_held()?;
        }
        self.held.push((item, e));
        if self.held.len() >= SAME_REFUSAL_STOP {
            let (_, e) = &self.held[0];
            let why = format!(
                "the first {} messages of the run were all refused with the same answer, and \
                 none was accepted: a configuration or AMS problem, not {} bad messages: {e}",
                self.held.len(),
                self.held.len()
            );
            self.stop(why);
            for (it, _) in std::mem::take(&mut self.held) {
                self.leave(&it.name);
            }
        }
        Ok(())
    }

    /// Settles the held refusals as the messages' own: quarantined.
    fn release_held(&mut self) -> Result<(), SendError> {
        for (it, e) in std::mem::take(&mut self.held) {
            self.quarantine(&it.name, &it.payload, &e.to_string())?;
        }
        Ok(())
    }

    fn defer(&mut self, name: &str, why: &str) {
        tracing::warn!(element = name, "left in the spool: {why}");
        self.report.deferred += 1;
        self.spool.unlock(name);
    }

    fn ledger_quarantine(&mut self, name: &str, reason: &str) {
        if let Some(l) = self.ledger.as_deref_mut()
            && let Err(e) = l.quarantine(name, reason)
        {
            self.report.errors.push(e.to_string());
        }
    }

    fn write_quarantine(&self, name: &str, data: &[u8], reason: &str) -> std::io::Result<()> {
        crate::quarantine::write(&self.opts.quarantine, &self.opts.spool, name, data, reason)
    }

    /// Quarantine directory first, then the ledger, then the spool element goes.
    fn quarantine(&mut self, name: &str, data: &[u8], reason: &str) -> Result<(), SendError> {
        tracing::warn!(element = name, "quarantined: {reason}");
        if let Err(e) = self.write_quarantine(name, data, reason) {
            self.report.errors.push(format!("cannot quarantine {name}: {e}"));
            self.spool.unlock(name);
            return Ok(());
        }
        if self.ledger.as_deref().map(|l| l.message(name)).transpose()?.flatten().is_some() {
            self.ledger_quarantine(name, reason);
        }
        self.report.quarantined += 1;
        self.remove(name);
        Ok(())
    }

    /// 413: two new elements along record boundaries; returns their names (locked).
    fn split(&mut self, item: &Item, e: &AmsError) -> Result<Vec<String>, SendError> {
        let Some((kind, records)) = item.parsed.as_ref() else {
            self.quarantine(&item.name, &item.payload, &format!("{e}; not an APEL message fedsite can split"))?;
            return Ok(Vec::new());
        };
        if records.len() < 2 {
            self.quarantine(&item.name, &item.payload, &format!("{e}; a single record cannot be split"))?;
            return Ok(Vec::new());
        }
        let mid = records.len() / 2;
        let parts = [&records[..mid], &records[mid..]];
        let mut bodies = Vec::new();
        for p in parts {
            match apel::render_message(*kind, p, self.opts.style) {
                Ok(b) => bodies.push(b),
                Err(err) => {
                    self.quarantine(&item.name, &item.payload, &format!("{e}; re-rendering failed: {err}"))?;
                    return Ok(Vec::new());
                }
            }
        }
        let refs: HashMap<String, RecordRef> = match (item.known, self.ledger.as_deref()) {
            (true, Some(l)) => l.message_records(&item.name)?.into_iter().map(|r| (r.key.clone(), r)).collect(),
            _ => HashMap::new(),
        };
        let mut names = Vec::new();
        for (p, body) in parts.iter().zip(&bodies) {
            let name = self.spool.add(body)?;
            if item.known
                && let Some(l) = self.ledger.as_deref_mut()
            {
                let m = NewMessage {
                    element: name.clone(),
                    kind: kind.as_str().to_owned(),
                    created_at: Utc::now(),
                    records: p.iter().filter_map(|r| refs.get(&r.key()).cloned()).collect(),
                };
                l.record_message(&m, None)?;
            }
            names.push(name);
        }
        let reason = format!("{SPLIT_REASON} {} ({e})", names.join(", "));
        tracing::info!(element = %item.name, "{reason}");
        if item.known {
            self.ledger_quarantine(&item.name, &reason);
        }
        self.report.split += 1;
        self.remove(&item.name);
        let mut locked = Vec::new();
        for n in names {
            if self.spool.lock(&n)? {
                locked.push(n);
            }
        }
        Ok(locked)
    }
}

/// Which records of an element to keep: false where the ledger holds a NEWER version of the
/// same (kind, key) that is, or will be, delivered by another message.
/// * element known to the ledger: its link gives the version it carries (`measured_at`, body
///   hash); dropped when another non-quarantined message carries a version with a later
///   `measured_at` and a different body;
/// * foreign element (or a record without a link), cloud records only: dropped when the
///   ledger's current snapshot is in a non-quarantined message and its APEL measurement time
///   is later than this record's.
pub fn superseded_filter(
    ledger: &Ledger,
    element: &str,
    kind: RecordKind,
    records: &[Record],
    refs: &[RecordRef],
) -> Result<Vec<bool>, ledger::Error> {
    let by_key: HashMap<&str, &RecordRef> = refs.iter().map(|r| (r.key.as_str(), r)).collect();
    let mut keep = Vec::with_capacity(records.len());
    for r in records {
        let key = r.key();
        let deliveries = ledger.deliveries(kind.as_str(), &key)?;
        let live = |d: &&ledger::Delivery| d.element != element && d.state != MessageState::Quarantined;
        let newer = match by_key.get(key.as_str()) {
            Some(mine) => deliveries
                .iter()
                .filter(live)
                .any(|d| d.measured_at > mine.measured_at && d.body_sha256 != mine.body_sha256),
            None => match r {
                Record::Cloud(c) if deliveries.iter().filter(live).any(|d| d.is_current) => {
                    let theirs = ledger
                        .snapshot(kind.as_str(), &key)?
                        .and_then(|s| apel::parse_message(s.snapshot.body.as_bytes()).ok())
                        .and_then(|(_, rs)| match rs.into_iter().next() {
                            Some(Record::Cloud(c)) => c.measurement_time(),
                            _ => None,
                        });
                    matches!((theirs, c.measurement_time()), (Some(t), Some(m)) if t > m)
                }
                _ => false,
            },
        };
        keep.push(!newer);
    }
    Ok(keep)
}

/// The exact publish request bodies a send would make now, without locking, signing state
/// changes, ledger writes or network (each message is signed, so signatures differ per run).
pub fn dry_run(
    opts: &SenderOptions,
    signer: &Signer,
    encrypt: Option<&Recipient>,
    max_request_bytes: usize,
) -> Result<Vec<String>, SendError> {
    let spool = Spool::open(&opts.spool, opts.path_type)?;
    let mut encoded = Vec::new();
    for name in spool.names()? {
        let path = match &spool {
            Spool::Dirq(q) => q.path().join(&name),
            Spool::Directory(p) => p.join(&name),
        };
        let Ok(data) = std::fs::read(&path) else { continue };
        let mut signed = signer.sign(&data).map_err(|e| spool_err(&path, e))?;
        if let Some(r) = encrypt {
            signed = r.encrypt(&signed).map_err(|e| spool_err(&path, e))?;
        }
        encoded.push(OutgoingMessage::ssm(&name, &signed).to_json());
    }
    let sizes: Vec<usize> = encoded.iter().map(String::len).collect();
    Ok(ams::plan_batches(&sizes, max_request_bytes)
        .into_iter()
        .map(|p| match p {
            Ok(r) => ams::publish_body(&encoded[r]),
            Err(i) => ams::publish_body(&encoded[i..=i]),
        })
        .collect())
}

/// The lock file of `fedsite send` runs on a spool: `.fedsite-send.lock` inside a dirq spool
/// (dirq readers only see its hexadecimal directories), `<spool>.fedsite-send.lock` beside a
/// flat directory spool (whose every file is a message to SSM).
pub fn spool_lock_path(spool: &Path, ty: PathType) -> PathBuf {
    match ty {
        PathType::Dirq => spool.join(".fedsite-send.lock"),
        PathType::Directory => {
            let mut s = spool.as_os_str().to_owned();
            s.push(".fedsite-send.lock");
            PathBuf::from(s)
        }
    }
}

/// Takes the spool's send lock (one `fedsite send` at a time per spool), waiting up to `wait`.
pub fn lock_spool(opts: &SenderOptions, wait: Duration) -> Result<ledger::RunLock, ledger::LockError> {
    Spool::open(&opts.spool, opts.path_type).map_err(|e| ledger::LockError::Io {
        path: opts.spool.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let path = spool_lock_path(&opts.spool, opts.path_type);
    ledger::runlock::lock_file(&path, &format!("spool {} (send runs)", opts.spool.display()), wait)
}

/// What an operator must hear about a run that did not send everything, one line each (the
/// summary line gives the counts): why it stopped and what to fix, errors, what was left.
pub fn problems(r: &SendReport, opts: &SenderOptions) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(why) = &r.stopped {
        out.push(format!(
            "stopped: {why}. Nothing was quarantined for it; {} element(s) left in the spool \
             for the next run",
            r.left
        ));
    }
    out.extend(r.errors.iter().cloned());
    if r.deferred > 0 {
        out.push(format!("{} element(s) left in the spool after their retries; the next run sends them", r.deferred));
    }
    if r.quarantined > 0 {
        out.push(format!(
            "{} element(s) quarantined in {} ({} refused by the APEL loader's rules); see \
             `fedsite spool status`, and `fedsite spool requeue` once the cause is fixed",
            r.quarantined,
            opts.quarantine.display(),
            r.invalid
        ));
    }
    if r.skipped_locked > 0 {
        out.push(format!("{} element(s) locked by another process were skipped", r.skipped_locked));
    }
    out
}

/// What `fedsite spool status` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpoolStatus {
    pub elements: usize,
    pub locked: usize,
    /// `.tmp` files (being written, or left by a crash).
    pub temporary: usize,
    /// Oldest element and when it was added (from its dirq name, or the file's mtime).
    pub oldest: Option<(String, DateTime<Utc>)>,
    pub quarantined: usize,
    /// (quarantined name, reason) of the quarantine directory, oldest first.
    pub quarantine: Vec<(String, String)>,
    /// The quarantine by reason: (reason, element names), most frequent first.
    pub by_reason: Vec<(String, Vec<String>)>,
}

pub fn spool_status(spool: &Path, ty: PathType, quarantine: &Path) -> Result<SpoolStatus, SendError> {
    let s = Spool::open(spool, ty)?;
    let names = s.names()?;
    let mut st = SpoolStatus { elements: names.len(), ..Default::default() };
    if let Some(first) = names.first() {
        let t = match ty {
            PathType::Dirq => {
                u32::from_str_radix(&first[9..17], 16).ok().and_then(|s| DateTime::from_timestamp(s as i64, 0))
            }
            PathType::Directory => {
                std::fs::metadata(spool.join(first)).and_then(|m| m.modified()).ok().map(DateTime::<Utc>::from)
            }
        };
        if let Some(t) = t {
            st.oldest = Some((first.clone(), t));
        }
    }
    if ty == PathType::Dirq
        && let Ok(dirs) = std::fs::read_dir(spool)
    {
        for d in dirs.flatten() {
            if !dirq::is_dir_name(&d.file_name().to_string_lossy()) {
                continue;
            }
            for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
                let n = f.file_name().to_string_lossy().into_owned();
                if let Some(b) = n.strip_suffix(dirq::LOCKED_SUFFIX)
                    && dirq::is_element_file_name(b)
                {
                    st.locked += 1;
                }
                if let Some(b) = n.strip_suffix(dirq::TEMPORARY_SUFFIX)
                    && dirq::is_element_file_name(b)
                {
                    st.temporary += 1;
                }
            }
        }
    }
    let q = crate::quarantine::list(quarantine)?;
    st.quarantined = q.len();
    st.by_reason = crate::quarantine::by_reason(&q);
    st.quarantine = q.into_iter().map(|q| (q.file, q.reason)).collect();
    Ok(st)
}
