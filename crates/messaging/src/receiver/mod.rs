//! The receiver: pull from an AMS subscription, base64-decode, decrypt if needed, verify the
//! S/MIME signature against CAs and the signer DN against an allowed list, parse with
//! `apel::parse_message`, store durably, and only then acknowledge. Owns the two stores:
//! python dirq's `Queue` layout (`incoming/` + `reject/`, as ssmreceive writes) and the
//! received-records SQLite file with APEL's semantics (latest cloud record per VM per month
//! replaces the earlier one; cloud summaries with per-VM deltas, as APEL's `schemas/cloud.sql` `SummariseVMs`): the pull
//! loop is here, the queue layout in `dirqueue`, the SQLite store in `store`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use apel::{Record, RecordKind};
use rand::Rng as _;

use crate::ams::{AmsClient, AmsError, ReceivedMessage};
use smime::{self, Signer, Verifier};

#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("store {}: {reason}", path.display())]
    Store { path: PathBuf, reason: String },
    #[error(transparent)]
    Ams(#[from] AmsError),
    /// A record of a message cannot be rendered back for its receipt (nothing of the message
    /// is stored; it stays unacknowledged).
    #[error("message {ams_id}: rendering {kind} record {key} for its receipt: {source}")]
    Render {
        ams_id: String,
        kind: &'static str,
        key: String,
        #[source]
        source: apel::Error,
    },
}

fn store_err(path: &Path, e: impl std::fmt::Display) -> ReceiveError {
    ReceiveError::Store { path: path.to_owned(), reason: e.to_string() }
}

mod dirqueue;
mod store;

pub use dirqueue::DirQueue;
pub use store::{CloudSummary, LoadOutcome, RecordStore, StoreCounts, parse_fqan};

// ---------------------------------------------------------------------------------------------
// The receive loop

/// Where accepted and rejected messages go.
pub enum Sink {
    /// `<path>/incoming` and `<path>/reject`, python dirq `Queue` layout (ssmreceive's).
    Queue { incoming: DirQueue, reject: DirQueue },
    /// The received-records store (rejects in its `rejected` table).
    Records(RecordStore),
}

impl Sink {
    pub fn queue(path: &Path) -> Result<Sink, ReceiveError> {
        Ok(Sink::Queue {
            incoming: DirQueue::open(path.join("incoming")).map_err(|e| store_err(path, e))?,
            reject: DirQueue::open(path.join("reject")).map_err(|e| store_err(path, e))?,
        })
    }
}

/// Takes the run lock of a receive store (one `fedsite receive` at a time per store): for a
/// dirq queue directory, `.fedsite-receive.lock` inside it (`dir`), for a records file,
/// `<file>.receive.lock` beside it; waiting up to `wait`.
pub fn lock_store(store: &Path, dir: bool, wait: Duration) -> Result<ledger::RunLock, ledger::LockError> {
    let path = if dir {
        std::fs::create_dir_all(store).map_err(|source| ledger::LockError::Io { path: store.to_owned(), source })?;
        store.join(".fedsite-receive.lock")
    } else {
        let mut s = store.as_os_str().to_owned();
        s.push(".receive.lock");
        PathBuf::from(s)
    };
    ledger::runlock::lock_file(&path, &format!("store {} (receive runs)", store.display()), wait)
}

#[derive(Debug, Clone)]
pub struct ReceiverOptions {
    pub subscription: String,
    /// `maxMessages` per pull.
    pub batch: u32,
    /// Signer DNs accepted (SSM's `dns` file), OpenSSL legacy form.
    pub allowed_dns: Vec<String>,
    /// Retries of a failed pull/acknowledge (retryable errors) before giving up.
    pub retries: u32,
    pub retry_initial: Duration,
}

impl ReceiverOptions {
    pub fn new(subscription: &str, allowed_dns: Vec<String>) -> ReceiverOptions {
        ReceiverOptions {
            subscription: subscription.into(),
            batch: 100,
            allowed_dns,
            retries: 5,
            retry_initial: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiveReport {
    pub pulled: usize,
    pub accepted: usize,
    pub rejected: usize,
    pub records: usize,
    /// Messages whose AMS id the store had already (ack lost or late): not counted again.
    pub redelivered: usize,
    pub acked: usize,
    /// Pull answers lost after AMS may have served them (garbled or cut-off
    /// bodies): their messages stay out until the subscription's ack deadline
    /// and come back on a later run. Non-zero means this run may have left
    /// messages behind.
    pub lost_pulls: usize,
}

impl ReceiveReport {
    pub fn summary(&self) -> String {
        format!(
            "pulled {}, accepted {} ({} records), rejected {}, redelivered {}, acknowledged {}",
            self.pulled, self.accepted, self.records, self.rejected, self.redelivered, self.acked
        )
    }
}

/// What a message turned out to be.
enum Verdict {
    Accept { signer: String, body: Vec<u8>, records: Vec<Record> },
    Reject { signer: Option<String>, body: Vec<u8>, error: String },
}

fn judge(m: &ReceivedMessage, verifier: &Verifier, decryptor: Option<&Signer>, allowed: &[String]) -> Verdict {
    let reject = |signer: Option<String>, body: Vec<u8>, error: String| Verdict::Reject { signer, body, error };
    let data = match &m.data {
        Ok(d) => d.clone(),
        Err(e) => return reject(None, Vec::new(), e.to_string()),
    };
    let signed = if smime::is_encrypted(&data) {
        match decryptor {
            None => return reject(None, data, "encrypted message, but no certificate/key to decrypt".into()),
            Some(d) => match d.decrypt(&data) {
                Ok(s) => s,
                Err(e) => return reject(None, data, format!("decryption failed: {e}")),
            },
        }
    } else {
        data
    };
    let v = match verifier.verify(&signed) {
        Ok(v) => v,
        Err(e) => return reject(None, signed, format!("signature verification failed: {e}")),
    };
    if !allowed.iter().any(|d| d == &v.signer_dn) {
        return reject(Some(v.signer_dn.clone()), v.body, format!("Signer not in valid DNs list: {}", v.signer_dn));
    }
    match apel::parse_message(&v.body) {
        Ok((_kind, records)) => Verdict::Accept { signer: v.signer_dn, body: v.body, records },
        Err(e) => reject(Some(v.signer_dn), v.body, format!("not a valid APEL message: {e}")),
    }
}

async fn with_retries<T, F, Fut>(opts: &ReceiverOptions, mut f: F) -> Result<T, AmsError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, AmsError>>,
{
    let mut attempt = 0;
    loop {
        match f().await {
            Err(e) if e.is_retryable() && attempt < opts.retries => {
                attempt += 1;
                let ms = (opts.retry_initial.as_millis() as u64) << (attempt - 1).min(10);
                let wait = rand::rng().random_range(ms / 2..=ms.max(1));
                tracing::info!("retrying in {wait} ms: {e}");
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            r => return r,
        }
    }
}

/// Stores one message; Err only when the store itself failed (then it must not be acked).
fn store(sink: &mut Sink, m: &ReceivedMessage, v: Verdict, report: &mut ReceiveReport) -> Result<(), ReceiveError> {
    let empaid = m.attributes.get("empaid").map(String::as_str).unwrap_or("N/A");
    match (sink, v) {
        (Sink::Queue { incoming, .. }, Verdict::Accept { signer, body, records }) => {
            incoming
                .add(&[("body", &body), ("signer", signer.as_bytes()), ("empaid", empaid.as_bytes())])
                .map_err(|e| store_err(incoming.path(), e))?;
            report.accepted += 1;
            report.records += records.len();
        }
        (Sink::Queue { reject, .. }, Verdict::Reject { signer, body, error }) => {
            let signer = signer.unwrap_or_else(|| "Not available.".into());
            reject
                .add(&[
                    ("body", &body),
                    ("signer", signer.as_bytes()),
                    ("empaid", empaid.as_bytes()),
                    ("error", error.as_bytes()),
                ])
                .map_err(|e| store_err(reject.path(), e))?;
            tracing::warn!(empaid, "rejected: {error}");
            report.rejected += 1;
        }
        (Sink::Records(s), Verdict::Accept { signer, body, records }) => {
            let o = s.load(&m.message_id, empaid, &signer, &body, &records)?;
            if o.redelivered {
                report.redelivered += 1;
            } else {
                report.accepted += 1;
                report.records += o.records;
            }
        }
        (Sink::Records(s), Verdict::Reject { signer, body, error }) => {
            tracing::warn!(empaid, "rejected: {error}");
            s.reject(&m.message_id, empaid, signer.as_deref(), &body, &error)?;
            report.rejected += 1;
        }
    }
    Ok(())
}

/// Pulls until the subscription is empty (`returnImmediately`), storing each message durably
/// and acknowledging each pulled batch only after all its messages are stored (AMS acks are
/// cumulative: a store failure acks only the messages before it, then the run stops with the
/// error, and AMS redelivers the rest).
pub async fn receive_once(
    opts: &ReceiverOptions,
    client: &AmsClient,
    verifier: &Verifier,
    decryptor: Option<&Signer>,
    sink: &mut Sink,
) -> Result<ReceiveReport, ReceiveError> {
    let mut report = ReceiveReport::default();
    loop {
        let lost = std::sync::atomic::AtomicUsize::new(0);
        let pulled = with_retries(opts, || async {
            let r = client.pull(&opts.subscription, opts.batch, true).await;
            // A success status with a broken body, or a connection dropped mid-answer:
            // AMS may have handed the batch out already.
            if matches!(r, Err(AmsError::Protocol { .. } | AmsError::Network { .. })) {
                lost.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            r
        })
        .await;
        report.lost_pulls += lost.into_inner();
        let pulled = pulled?;
        if pulled.is_empty() {
            break;
        }
        report.pulled += pulled.len();
        let mut acks = Vec::new();
        let mut failure = None;
        for m in &pulled {
            let v = judge(m, verifier, decryptor, &opts.allowed_dns);
            match store(sink, m, v, &mut report) {
                Ok(()) => acks.push(m.ack_id.clone()),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if !acks.is_empty() {
            match with_retries(opts, || client.acknowledge(&opts.subscription, &acks)).await {
                Ok(()) => report.acked += acks.len(),
                // Past the deadline: AMS will deliver them again; the store counts them once.
                Err(e) if e.status() == Some(408) => {
                    tracing::warn!("acknowledge too late, messages will come again: {e}")
                }
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
    }
    tracing::info!("receive: {}", report.summary());
    if report.lost_pulls > 0 {
        tracing::warn!(
            "{} pull answer(s) were lost after AMS may have served them: their messages come back after the subscription's ack deadline, on a later run",
            report.lost_pulls
        );
    }
    Ok(report)
}

/// Keeps receiving (long pulls) until `stop` resolves; `receive_once` rounds separated by
/// `idle` when the subscription is empty.
pub async fn receive_loop(
    opts: &ReceiverOptions,
    client: &AmsClient,
    verifier: &Verifier,
    decryptor: Option<&Signer>,
    sink: &mut Sink,
    idle: Duration,
    stop: impl std::future::Future<Output = ()>,
) -> Result<ReceiveReport, ReceiveError> {
    let mut total = ReceiveReport::default();
    tokio::pin!(stop);
    loop {
        let r = receive_once(opts, client, verifier, decryptor, sink).await?;
        total.pulled += r.pulled;
        total.accepted += r.accepted;
        total.rejected += r.rejected;
        total.records += r.records;
        total.redelivered += r.redelivered;
        total.acked += r.acked;
        total.lost_pulls += r.lost_pulls;
        tokio::select! {
            _ = &mut stop => return Ok(total),
            _ = tokio::time::sleep(idle) => {}
        }
    }
}

/// Kinds as strings for reports.
pub fn kind_name(k: RecordKind) -> &'static str {
    k.as_str()
}
