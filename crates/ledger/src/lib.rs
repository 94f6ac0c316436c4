//! The ledger: the embedded store of runs, per-project checkpoints, record snapshots and
//! message states, shared by extraction and delivery. Owns the backend-neutral types and
//! the [`Store`] trait and [`LedgerOptions::open`] ([`Ledger::open`] with the defaults), which picks the backend: SQLite (`sqlite.rs`) for
//! a file path, PostgreSQL (`pg.rs`) for a `postgres://` / `postgresql://` URL.
//!
//! Conventions (every backend must keep them):
//! * All times are UTC; PostgreSQL stores them as `timestamptz`, SQLite as RFC 3339 text with exactly 6 fractional
//!   digits and a `Z` suffix (`2026-11-29T11:10:14.000000Z`): fixed width, so text order is
//!   time order. Inputs are truncated to microseconds before they are stored or compared.
//! * A snapshot is the LAST known state of one record (kind, key), as APEL keeps the last
//!   loaded cloud record per (VMUUID, month): a newer `measured_at` is never replaced by an
//!   older one (see [`Upsert`]).
//! * Checkpoints only move forward (except through [`Store::reset_checkpoint`]).
//! * Message states: `spooled → sent → acknowledged`, and `spooled|sent → quarantined`;
//!   every other transition is refused with [`Error::InvalidTransition`].
//! * The instance-action cache (`actions.rs`, schema v3) holds facts read from Nova, not
//!   records: it is looked up one project's batch of servers at a time (never loaded whole)
//!   and may be pruned at any time; losing it only costs requests.
//! * The listed-server cache (`servers.rs`, SQLite schema v4, PostgreSQL v5) holds what Nova
//!   listed of each server and when the whole of it was last known current; it is looked up
//!   by server id and replaced by whole runs. Losing it costs one listing.

mod actions;
pub mod claims;
mod pg;
mod rules;
pub mod runlock;
mod servers;
mod sqlite;

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

pub use actions::{CachedAction, CachedActions, StoredActions};
pub use claims::{Claim, ClaimError, ClaimKey, ClaimRow};
pub use pg::{PgOptions, PgStore};
pub use runlock::{LockError, RunLock};
pub use servers::{ListedServerEntry, ListedServers, ListedServersUpdate};
pub use sqlite::{SqliteOptions, SqliteStore};

/// Reason prefix of a quarantined message that the sender replaced by its two halves after
/// AMS answered 413: bookkeeping, not a failure.
pub const SPLIT_REASON: &str = "split after 413 into";
/// Reason prefix of a quarantined message whose every record was superseded by a newer
/// snapshot: bookkeeping, not a failure.
pub const SUPERSEDED_REASON: &str = "superseded:";

/// Errors name the ledger location (file path or connection name) and the operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("ledger {location}: {op}: {source}")]
    Backend {
        location: String,
        op: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("ledger {location}: {op}: {source}")]
    Io {
        location: String,
        op: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "ledger {location}: schema version {found} is newer than this fedsite supports ({supported}); upgrade fedsite"
    )]
    SchemaTooNew { location: String, found: i64, supported: i64 },
    #[error("ledger {location}: {op}: invalid input: {reason}")]
    Invalid { location: String, op: String, reason: String },
    #[error("ledger {location}: {op}: stored value is corrupt: {reason}")]
    Corrupt { location: String, op: String, reason: String },
    #[error("ledger {location}: unknown message (spool element) {element:?}")]
    UnknownMessage { location: String, element: String },
    #[error("ledger {location}: message {element:?} cannot go from {from} to {to}")]
    InvalidTransition { location: String, element: String, from: MessageState, to: MessageState },
    #[error("ledger {location} does not exist")]
    Missing { location: String },
    #[error("ledger {location}: unknown run {run}")]
    UnknownRun { location: String, run: i64 },
    #[error("ledger {location}: run {run} already finished ({outcome})")]
    RunAlreadyFinished { location: String, run: i64, outcome: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Id of a row in `runs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(pub i64);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A run being started: what command, and which extraction window (if any).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewRun {
    /// One of [`runs`] for fedsite's own runs.
    pub command: String,
    pub window_from: Option<DateTime<Utc>>,
    pub window_to: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// Everything done.
    Succeeded,
    /// Some projects/messages failed, others went through.
    Partial,
    Failed,
}

impl RunOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Succeeded => "succeeded",
            RunOutcome::Partial => "partial",
            RunOutcome::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "succeeded" => RunOutcome::Succeeded,
            "partial" => RunOutcome::Partial,
            "failed" => RunOutcome::Failed,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub id: RunId,
    pub command: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// None while the run is going on (or if it crashed before `finish_run`).
    pub outcome: Option<RunOutcome>,
    pub detail: Option<String>,
    pub window_from: Option<DateTime<Utc>>,
    pub window_to: Option<DateTime<Utc>>,
}

/// One warning or error a run reported (kept for `fedsite report`).
#[derive(Debug, Clone, PartialEq)]
pub struct RunWarning {
    pub run: RunId,
    pub at: DateTime<Utc>,
    /// "warn" or "error" (any non-empty string is accepted).
    pub level: String,
    pub message: String,
}

/// Messages and their records in one (kind, state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageCount {
    pub kind: String,
    pub state: MessageState,
    pub messages: u64,
    pub records: u64,
}

/// One record's state as extracted: the ledger does not know record types, only this.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// "cloud", "ip", "accelerator", "storage", "energy" (any non-empty string is accepted).
    pub kind: String,
    /// `apel::Record::key()`: cloud "<vmuuid>/<YYYY-MM>", storage "<volume uuid>", ...
    pub key: String,
    pub project_id: String,
    pub vo: Option<String>,
    pub site: String,
    /// When this state was measured (e.g. the window end of the run that produced it).
    pub measured_at: DateTime<Utc>,
    /// "YYYY-MM"; when None, the month of `measured_at` is stored.
    pub month: Option<String>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub wall_seconds: Option<u64>,
    pub cpu_seconds: Option<u64>,
    pub status: Option<String>,
    /// The rendered record (text or JSON), exactly as it would be spooled.
    pub body: String,
    /// The fingerprint of the record `body` renders (`apel::Record::fingerprint`), if the
    /// caller has one: stored beside the body so a later run can tell the same record without
    /// rendering it ([`Store::fingerprints`], [`ProjectCommit::unchanged`]).
    pub fingerprint: Option<String>,
}

impl Snapshot {
    /// Hex SHA-256 of `body`: how message links tell which version of a record was sent.
    pub fn body_sha256(&self) -> String {
        sha256_hex(&self.body)
    }
}

pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// A snapshot as stored, with bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSnapshot {
    pub snapshot: Snapshot,
    pub body_sha256: String,
    /// When the ledger first saw this (kind, key).
    pub first_seen_at: DateTime<Utc>,
    /// When the stored row last changed (insert, replace, or measured_at moved forward).
    pub updated_at: DateTime<Utc>,
    /// The run that last changed it, if it was written inside a run.
    pub run_id: Option<RunId>,
}

/// What the ledger holds of one snapshot's record ([`Store::fingerprints`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFingerprint {
    pub measured_at: DateTime<Utc>,
    pub fingerprint: String,
}

/// A snapshot whose record the caller found unchanged by its fingerprint: committing it moves
/// `measured_at` forward, as an unchanged upsert does, without its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unchanged {
    pub kind: String,
    pub key: String,
    pub measured_at: DateTime<Utc>,
}

/// What committing one snapshot would do ([`Store::preview`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preview {
    pub upsert: Upsert,
    /// False when committing it would leave the ledger as it is: the same body, stored with a
    /// `measured_at` that is not older (or [`Upsert::KeptNewer`]).
    pub writes: bool,
}

/// What `upsert_snapshot` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Upsert {
    /// No snapshot for (kind, key) existed.
    Inserted,
    /// The new snapshot is at least as recent and its body differs: it replaced the stored one
    /// (equal measured_at with a different body: the last loaded wins, as in APEL).
    Replaced,
    /// Same body: nothing to send again. If the new measured_at is later, the stored
    /// measured_at moves forward to it (so a later-arriving older, different body is refused).
    Unchanged,
    /// The stored snapshot is newer: it was kept, the given one dropped.
    KeptNewer,
}

/// Which snapshots to list. All set fields must match; times bound `measured_at` as `[from, to)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SnapshotFilter {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub project: Option<String>,
    pub kind: Option<String>,
    pub vo: Option<String>,
    /// "YYYY-MM"
    pub month: Option<String>,
}

/// Which columns `usage_summary` groups by (the others come back as None).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SummaryGroup {
    pub vo: bool,
    pub project: bool,
    pub month: bool,
}

impl SummaryGroup {
    pub const ALL: SummaryGroup = SummaryGroup { vo: true, project: true, month: true };
}

/// One row of `usage_summary`: sums over the latest snapshot of each key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub vo: Option<String>,
    pub project_id: Option<String>,
    pub month: Option<String>,
    /// Number of snapshots (for cloud: VM-months).
    pub records: u64,
    pub wall_seconds: u64,
    pub cpu_seconds: u64,
}

/// A (kind, key) the ledger has a snapshot for, with what closes it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenKey {
    pub key: String,
    pub measured_at: DateTime<Utc>,
    pub status: Option<String>,
    pub end_time: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageState {
    Spooled,
    Sent,
    Acknowledged,
    Quarantined,
}

impl MessageState {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Spooled => "spooled",
            MessageState::Sent => "sent",
            MessageState::Acknowledged => "acknowledged",
            MessageState::Quarantined => "quarantined",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "spooled" => MessageState::Spooled,
            "sent" => MessageState::Sent,
            "acknowledged" => MessageState::Acknowledged,
            "quarantined" => MessageState::Quarantined,
            _ => return None,
        })
    }
    /// The only allowed transitions. A message already `sent` is not sent again: if its spool
    /// element is still there (remove failed after publish), the sender removes it instead.
    pub fn can_go_to(self, to: MessageState) -> bool {
        use MessageState::*;
        matches!((self, to), (Spooled, Sent) | (Sent, Acknowledged) | (Spooled, Quarantined) | (Sent, Quarantined))
    }
}

impl fmt::Display for MessageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One project's checkpoint of one record kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub project_id: String,
    pub kind: String,
    /// The end of the last window committed.
    pub checkpoint: DateTime<Utc>,
    /// When it moved there (the project's last successful extraction of that kind).
    pub updated_at: DateTime<Utc>,
}

/// Which version of which record went into a message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordRef {
    pub key: String,
    pub measured_at: DateTime<Utc>,
    pub body_sha256: String,
}

impl RecordRef {
    pub fn of(s: &Snapshot) -> RecordRef {
        RecordRef { key: s.key.clone(), measured_at: s.measured_at, body_sha256: s.body_sha256() }
    }
}

/// A message just written to the spool.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// Spool element name, e.g. dirq "5f3a1b2c/5f3a1b2c3d4e5f". Unique in the ledger.
    pub element: String,
    pub kind: String,
    pub created_at: DateTime<Utc>,
    /// The records in the message (record count = `records.len()`); keys unique in a message.
    pub records: Vec<RecordRef>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub element: String,
    pub kind: String,
    pub record_count: u64,
    pub created_at: DateTime<Utc>,
    pub run_id: Option<RunId>,
    pub state: MessageState,
    pub ams_id: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub quarantined_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

/// One message that carried a version of a given record.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub element: String,
    pub state: MessageState,
    pub measured_at: DateTime<Utc>,
    pub body_sha256: String,
    /// True if this is the body of the snapshot the ledger holds now.
    pub is_current: bool,
    pub ams_id: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// Everything one project's extraction produced, committed in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProjectCommit {
    pub run: Option<RunId>,
    pub project_id: String,
    /// Checkpoint name, e.g. the extractor ("nova", "cinder") or record kind.
    pub checkpoint_kind: String,
    pub snapshots: Vec<Snapshot>,
    pub messages: Vec<NewMessage>,
    /// Snapshots of the project whose stored fingerprint matched: `measured_at` moved forward
    /// where it is older, nothing else written.
    pub unchanged: Vec<Unchanged>,
    /// Advance the checkpoint to this (only forward) once everything above is stored.
    pub checkpoint_to: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitReport {
    /// One entry per snapshot, in order.
    pub upserts: Vec<Upsert>,
    pub messages: usize,
    pub checkpoint_advanced: bool,
}

impl CommitReport {
    pub fn count(&self, u: Upsert) -> usize {
        self.upserts.iter().filter(|x| **x == u).count()
    }
}

/// The ledger operations. Implemented by [`SqliteStore`] and [`PgStore`] (synchronous: async
/// callers should run it on a blocking thread; both also work, blocking, from an async task).
pub trait Store: Send {
    /// Where this store lives (file path, or connection description), for messages.
    fn location(&self) -> &str;

    fn begin_run(&mut self, run: &NewRun) -> Result<RunId>;
    /// Finish a run once; a second finish is refused.
    fn finish_run(&mut self, id: RunId, outcome: RunOutcome, detail: Option<&str>) -> Result<()>;
    fn run(&self, id: RunId) -> Result<Option<Run>>;
    /// Most recent first.
    fn runs(&self, limit: usize) -> Result<Vec<Run>>;

    fn checkpoint(&self, project: &str, kind: &str) -> Result<Option<DateTime<Utc>>>;
    /// Every checkpoint, ordered by project then kind: when each project's records of each
    /// kind were last committed (its last success), for per-project metrics.
    fn checkpoints(&self) -> Result<Vec<Checkpoint>>;
    /// Move forward to `to`; returns false (and changes nothing) if `to` is not after the
    /// current checkpoint. Call only after the records up to `to` are durably spooled.
    fn advance_checkpoint(&mut self, project: &str, kind: &str, to: DateTime<Utc>, run: Option<RunId>) -> Result<bool>;
    /// Set the checkpoint to any value, backwards included (an operator's explicit reset).
    fn reset_checkpoint(&mut self, project: &str, kind: &str, to: Option<DateTime<Utc>>) -> Result<()>;

    fn upsert_snapshot(&mut self, s: &Snapshot, run: Option<RunId>) -> Result<Upsert>;
    /// What `upsert_snapshot` would do for each, without writing: lets a caller drop records
    /// that are older than the ledger's BEFORE spooling them (an older state after a newer one
    /// regresses APEL's data).
    fn preview_snapshots(&self, snapshots: &[Snapshot]) -> Result<Vec<Upsert>>;
    /// [`Store::preview_snapshots`], saying also which snapshots a commit would write at all,
    /// so a caller can leave the others out of [`Store::commit_project`] (an hourly run whose
    /// records did not change then writes nothing but its checkpoint). The default assumes
    /// every snapshot writes; SQLite reads the stored versions of each project and kind in one
    /// statement.
    fn preview(&self, snapshots: &[Snapshot]) -> Result<Vec<Preview>> {
        Ok(self.preview_snapshots(snapshots)?.into_iter().map(|upsert| Preview { upsert, writes: true }).collect())
    }
    /// The fingerprints stored with the snapshots of `kind` for `project` (key → fingerprint and
    /// `measured_at`; snapshots stored without one are left out). A caller whose record has the
    /// stored fingerprint knows its body is the stored one without rendering it, and commits it
    /// as [`ProjectCommit::unchanged`]. The default knows none, so every record is rendered and
    /// compared by its body (PostgreSQL: see `docs/decisions.md`).
    fn fingerprints(&self, _kind: &str, _project: &str) -> Result<HashMap<String, StoredFingerprint>> {
        Ok(HashMap::new())
    }
    /// In ONE transaction: upsert the snapshots, move the unchanged ones' `measured_at`, record
    /// the messages and their record links, advance the checkpoint. Any failure leaves the
    /// ledger as it was.
    fn commit_project(&mut self, c: &ProjectCommit) -> Result<CommitReport>;

    /// Stored snapshots matching the filter (one per (kind, key): the latest), ordered by
    /// kind, key.
    fn latest_snapshots(&self, f: &SnapshotFilter) -> Result<Vec<StoredSnapshot>>;
    /// Like `latest_snapshots`, but only those whose current body is in no message that is
    /// spooled, sent or acknowledged (quarantined messages do not count).
    fn unsent_snapshots(&self, f: &SnapshotFilter) -> Result<Vec<StoredSnapshot>>;
    fn snapshot(&self, kind: &str, key: &str) -> Result<Option<StoredSnapshot>>;
    /// Sums of wall/cpu seconds over the latest snapshot of each key matching the filter.
    /// These are the cumulative counters as the records carry them: for cloud records (key per
    /// VM per month) a VM running over several months contributes its total since start to each
    /// month; APEL's per-month deltas between successive records are not computed here.
    fn usage_summary(&self, f: &SnapshotFilter, by: SummaryGroup) -> Result<Vec<UsageRow>>;
    /// Keys of `kind` the ledger has seen for `project`, with status and end time, ordered by key.
    fn seen(&self, kind: &str, project: &str) -> Result<Vec<SeenKey>>;
    fn seen_keys(&self, kind: &str, project: &str) -> Result<Vec<String>> {
        Ok(self.seen(kind, project)?.into_iter().map(|s| s.key).collect())
    }

    /// Record a spooled message outside `commit_project` (e.g. a republish).
    fn record_message(&mut self, m: &NewMessage, run: Option<RunId>) -> Result<()>;
    fn mark_sent(&mut self, element: &str, ams_id: &str) -> Result<()>;
    fn mark_acknowledged(&mut self, element: &str) -> Result<()>;
    fn quarantine(&mut self, element: &str, reason: &str) -> Result<()>;
    /// An operator's requeue: a quarantined message goes back to `spooled` (its reason, AMS
    /// id and times cleared), so the next send sends it. Any other state is refused.
    fn requeue(&mut self, element: &str) -> Result<()>;
    fn message(&self, element: &str) -> Result<Option<Message>>;
    /// Messages not yet acknowledged nor quarantined (spooled or sent), oldest first.
    fn pending(&self) -> Result<Vec<Message>>;
    fn messages_in_state(&self, state: MessageState) -> Result<Vec<Message>>;
    fn message_records(&self, element: &str) -> Result<Vec<RecordRef>>;
    /// Which messages carried a version of (kind, key), oldest first.
    fn deliveries(&self, kind: &str, key: &str) -> Result<Vec<Delivery>>;

    /// Record a warning (or error) of a run; `level` and `message` must not be empty.
    fn add_run_warning(&mut self, run: RunId, level: &str, message: &str) -> Result<()>;
    /// The warnings of a run, in the order they were added.
    fn run_warnings(&self, run: RunId) -> Result<Vec<RunWarning>>;
    /// The most recent run of `command` (with that outcome, if given).
    fn last_run(&self, command: &str, outcome: Option<RunOutcome>) -> Result<Option<Run>>;
    /// Message and record counts per (kind, state), ordered by kind then state.
    fn message_counts(&self) -> Result<Vec<MessageCount>>;

    /// The cached instance-action lists the ledger holds for these servers of `project`
    /// (a list stored under another project is not returned), in no particular order.
    fn cached_actions(&self, project: &str, servers: &[&str]) -> Result<Vec<StoredActions>>;
    /// In ONE transaction: insert or replace the `fresh` lists (all of `project`; a stored
    /// list fetched later than the given one is kept), and mark the `reused` servers' lists
    /// as seen at `now`. The fresh lists are stored as seen at `now` too.
    fn store_cached_actions(
        &mut self,
        project: &str,
        fresh: &[CachedActions],
        reused: &[&str],
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// Delete the cached lists last seen before `before`; returns how many.
    fn prune_cached_actions(&mut self, before: DateTime<Utc>) -> Result<u64>;

    /// The listed-server cache's `valid_at` and the entries it holds for these servers.
    fn listed_servers(&self, servers: &[&str]) -> Result<ListedServers>;
    /// Applies one run's changes to the listed-server cache in ONE transaction (see
    /// [`ListedServersUpdate`]).
    fn store_listed_servers(&mut self, update: &ListedServersUpdate) -> Result<()>;

    /// Takes this ledger's run lock for runs of `kind` (e.g. [`RUN_LOCK_EXTRACT`]), waiting up
    /// to `wait` for a run holding it ([`runlock`]): SQLite, a lock file beside the database
    /// (`<file>.<kind>.lock`); PostgreSQL, a session advisory lock keyed by database, schema
    /// and kind, held until the ledger is closed.
    fn run_lock(&mut self, kind: &str, wait: std::time::Duration) -> Result<RunLock, LockError>;
}

/// The `command` of the runs fedsite records, one name per kind of run, for every writer and
/// reader of the runs table.
pub mod runs {
    pub const EXTRACT: &str = "accounting extract";
    pub const REPUBLISH: &str = "accounting republish";
    pub const SEND: &str = "send";
    pub const RECEIVE: &str = "receive";
}

/// The run lock `accounting extract` and `accounting republish` take: both write records into
/// the ledger and the spool.
pub const RUN_LOCK_EXTRACT: &str = "extract";

/// The ledger handle: a boxed [`Store`]; all operations are reached through `Deref`.
pub struct Ledger {
    store: Box<dyn Store>,
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ledger").field("location", &self.store.location()).finish()
    }
}

/// Whether a missing SQLite ledger is created ([`LedgerOptions::mode`]); PostgreSQL ignores it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OpenMode {
    /// Create a missing SQLite file (mode 0600), not its directory.
    #[default]
    CreateFile,
    /// Create a missing SQLite ledger and its directory: the commands that write records.
    CreateIfMissing,
    /// A missing SQLite ledger is [`Error::Missing`]: the commands that only read or repair it
    /// never leave an empty one behind.
    MustExist,
}

/// Which store a target names ([`LedgerOptions::backend`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Backend {
    /// A `postgres://` / `postgresql://` URL ([`is_postgres_url`]) is PostgreSQL, anything
    /// else a SQLite file path.
    #[default]
    Detect,
    /// Always PostgreSQL: the target may also be a libpq `key=value` conninfo.
    Postgres,
}

/// The one way to open a ledger: how, then [`LedgerOptions::open`]. [`Ledger::open`] is
/// `LedgerOptions::default().open(target)`.
#[derive(Debug, Clone, Default)]
pub struct LedgerOptions {
    /// Whether a missing SQLite ledger (and its directory) is created.
    pub mode: OpenMode,
    /// One ledger among several kept in one place, e.g. one per site of a central deployment:
    /// in a PostgreSQL database the schema `namespace` (created when missing, overriding
    /// `postgres.schema`); otherwise the target is a directory and the ledger the SQLite file
    /// `<namespace>.sqlite` in it. A plain file name of 1 to 63 bytes (no `/`, not starting
    /// with `.`).
    pub namespace: Option<String>,
    pub backend: Backend,
    pub sqlite: SqliteOptions,
    pub postgres: PgOptions,
}

impl LedgerOptions {
    /// Options with this [`OpenMode`], the rest default.
    pub fn mode(mode: OpenMode) -> LedgerOptions {
        LedgerOptions { mode, ..LedgerOptions::default() }
    }

    /// Opens (migrating its schema) the ledger at `target`: PostgreSQL for a URL (or always,
    /// with [`Backend::Postgres`]; the password never appears in errors, `location()` or
    /// `Debug`), otherwise a SQLite file, created or required as [`LedgerOptions::mode`] says.
    pub fn open(&self, target: impl AsRef<std::ffi::OsStr>) -> Result<Ledger> {
        let target = target.as_ref();
        let pg_url = match self.backend {
            Backend::Postgres => Some(target.to_string_lossy()),
            Backend::Detect => target.to_str().filter(|t| is_postgres_url(t)).map(std::borrow::Cow::Borrowed),
        };
        let Some(namespace) = &self.namespace else {
            return match pg_url {
                Some(conninfo) => self.open_postgres(&conninfo, self.postgres.schema.clone()),
                None => self.open_sqlite(Path::new(target)),
            };
        };
        if namespace.is_empty()
            || namespace.len() > 63
            || namespace.starts_with('.')
            || namespace.contains(['/', '\\', '\0'])
        {
            return Err(Error::Invalid {
                // Never the URL: it may hold the password.
                location: if pg_url.is_some() { "postgresql".into() } else { target.to_string_lossy().into_owned() },
                op: "open a namespaced ledger".into(),
                reason: format!(
                    "{namespace:?} is not a namespace (a plain name of 1 to 63 bytes, not starting with '.')"
                ),
            });
        }
        match pg_url {
            Some(conninfo) => self.open_postgres(&conninfo, Some(namespace.clone())),
            None => self.open_sqlite(&Path::new(target).join(format!("{namespace}.sqlite"))),
        }
    }

    fn open_postgres(&self, conninfo: &str, schema: Option<String>) -> Result<Ledger> {
        let opts = PgOptions { schema, ..self.postgres.clone() };
        Ok(Ledger { store: Box::new(PgStore::open(conninfo, opts)?) })
    }

    fn open_sqlite(&self, path: &Path) -> Result<Ledger> {
        match self.mode {
            OpenMode::MustExist if !path.exists() => {
                return Err(Error::Missing { location: path.display().to_string() });
            }
            OpenMode::CreateIfMissing => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                        location: path.display().to_string(),
                        op: format!("create directory {}", dir.display()),
                        source,
                    })?;
                }
            }
            OpenMode::MustExist | OpenMode::CreateFile => {}
        }
        Ok(Ledger { store: Box::new(SqliteStore::open(path, self.sqlite.clone())?) })
    }
}

impl Ledger {
    /// Opens the ledger at `target` with the default [`LedgerOptions`]: a `postgres://` or
    /// `postgresql://` URL opens PostgreSQL, anything else is a SQLite file (created if
    /// missing, with mode 0600).
    pub fn open(target: impl AsRef<std::ffi::OsStr>) -> Result<Ledger> {
        LedgerOptions::default().open(target)
    }
    pub fn from_store(store: Box<dyn Store>) -> Ledger {
        Ledger { store }
    }
}

impl std::ops::Deref for Ledger {
    type Target = dyn Store;
    fn deref(&self) -> &Self::Target {
        &*self.store
    }
}

impl std::ops::DerefMut for Ledger {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut *self.store
    }
}

/// True if `s` is a PostgreSQL URL (`postgres://` or `postgresql://`, any case), the form
/// [`Ledger::open`] sends to PostgreSQL.
pub fn is_postgres_url(s: &str) -> bool {
    let lower = s.get(..13).unwrap_or(s).to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// The stored form of a time in SQLite (see module doc).
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// "YYYY-MM" of a time.
pub fn month_of(t: DateTime<Utc>) -> String {
    t.format("%Y-%m").to_string()
}

/// True for "YYYY-MM" with a month 01..=12.
pub fn is_month(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 7
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..].iter().all(u8::is_ascii_digit)
        && matches!(s[5..].parse::<u8>(), Ok(1..=12))
}
