//! PostgreSQL backend of the ledger (tokio-postgres on a private one-thread runtime, called
//! synchronously): schema and migrations (`schema_version` table), times as `timestamptz`,
//! writers serialised by a transaction-level advisory lock (like SQLite's `BEGIN IMMEDIATE`).
//!
//! The connection task runs on the store's own runtime thread; callers only wait on the
//! client's futures with `futures::executor::block_on`, so the store works the same from a
//! plain thread, a `spawn_blocking` thread or (blocking it) an async task: it never enters
//! or drops a tokio runtime on the caller's thread. Passwords never reach `location()`,
//! errors or `Debug` output: the location is rebuilt from the parsed config without them.

use crate::rules::{decide, invalid, validate_snapshot};
use crate::*;
use chrono::SubsecRound;
use std::future::Future;
use std::str::FromStr;
use std::sync::mpsc;
use std::time::Duration;
use tokio_postgres::config::Host;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Row, Transaction};

/// Schema migrations; `schema_version` holds one row per applied step. Only ever append.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE runs (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    command     TEXT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    outcome     TEXT CHECK (outcome IN ('succeeded', 'partial', 'failed')),
    detail      TEXT,
    window_from TIMESTAMPTZ,
    window_to   TIMESTAMPTZ
);
CREATE TABLE checkpoints (
    project_id TEXT COLLATE "C" NOT NULL,
    kind       TEXT COLLATE "C" NOT NULL,
    checkpoint TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    run_id     BIGINT REFERENCES runs(id),
    PRIMARY KEY (project_id, kind)
);
CREATE TABLE snapshots (
    kind          TEXT COLLATE "C" NOT NULL,
    key           TEXT COLLATE "C" NOT NULL,
    project_id    TEXT COLLATE "C" NOT NULL,
    vo            TEXT COLLATE "C",
    site          TEXT NOT NULL,
    measured_at   TIMESTAMPTZ NOT NULL,
    month         TEXT COLLATE "C" NOT NULL,
    start_time    TIMESTAMPTZ,
    end_time      TIMESTAMPTZ,
    wall_seconds  BIGINT CHECK (wall_seconds >= 0),
    cpu_seconds   BIGINT CHECK (cpu_seconds >= 0),
    status        TEXT,
    body          TEXT NOT NULL,
    body_sha256   TEXT NOT NULL,
    first_seen_at TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    run_id        BIGINT REFERENCES runs(id),
    PRIMARY KEY (kind, key)
);
CREATE INDEX snapshots_by_project ON snapshots (kind, project_id);
CREATE INDEX snapshots_by_measured ON snapshots (measured_at);
CREATE INDEX snapshots_by_month ON snapshots (month, vo);
CREATE TABLE messages (
    element         TEXT COLLATE "C" PRIMARY KEY,
    kind            TEXT NOT NULL,
    record_count    BIGINT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    run_id          BIGINT REFERENCES runs(id),
    state           TEXT NOT NULL CHECK (state IN ('spooled', 'sent', 'acknowledged', 'quarantined')),
    ams_id          TEXT,
    sent_at         TIMESTAMPTZ,
    acknowledged_at TIMESTAMPTZ,
    quarantined_at  TIMESTAMPTZ,
    reason          TEXT
);
CREATE INDEX messages_by_state ON messages (state, created_at);
CREATE TABLE message_records (
    element     TEXT COLLATE "C" NOT NULL REFERENCES messages(element),
    kind        TEXT COLLATE "C" NOT NULL,
    key         TEXT COLLATE "C" NOT NULL,
    measured_at TIMESTAMPTZ NOT NULL,
    body_sha256 TEXT NOT NULL,
    PRIMARY KEY (element, key)
);
CREATE INDEX message_records_by_record ON message_records (kind, key);
"#,
    r#"
CREATE TABLE run_warnings (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id  BIGINT NOT NULL REFERENCES runs(id),
    at      TIMESTAMPTZ NOT NULL,
    level   TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX run_warnings_by_run ON run_warnings (run_id, id);
CREATE INDEX runs_by_command ON runs (command, id);
"#,
    r#"
CREATE TABLE instance_actions (
    server_id  TEXT COLLATE "C" PRIMARY KEY,
    project_id TEXT COLLATE "C" NOT NULL,
    updated    TIMESTAMPTZ NOT NULL,
    fetched_at TIMESTAMPTZ NOT NULL,
    seen_at    TIMESTAMPTZ NOT NULL,
    actions    TEXT NOT NULL
);
CREATE INDEX instance_actions_by_seen ON instance_actions (seen_at);
"#,
    r#"
CREATE TABLE central_claims (
    site            TEXT COLLATE "C" NOT NULL,
    task            TEXT COLLATE "C" NOT NULL,
    interval_start  TIMESTAMPTZ NOT NULL,
    replica         TEXT NOT NULL,
    session         INTEGER NOT NULL,
    claimed_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ,
    outcome         TEXT CHECK (outcome IN ('ok', 'skipped', 'failed')),
    detail          TEXT,
    taken_over_from TEXT,
    PRIMARY KEY (site, task, interval_start)
);
CREATE INDEX central_claims_unfinished ON central_claims (interval_start) WHERE finished_at IS NULL;
"#,
    r#"
CREATE TABLE listed_servers (
    server_id  TEXT COLLATE "C" PRIMARY KEY,
    project_id TEXT COLLATE "C" NOT NULL,
    body       TEXT NOT NULL
);
CREATE TABLE listed_servers_state (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    valid_at TIMESTAMPTZ NOT NULL
);
"#,
    r#"
ALTER TABLE snapshots ADD COLUMN record_fp TEXT;
"#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Key of the advisory lock every write transaction (and migration) takes ("fedsite").
const WRITE_LOCK: i64 = 0x0066_6564_7369_7465;

#[derive(Debug, Clone)]
pub struct PgOptions {
    /// How long a writer waits for another writer's lock (default 10 s), like SQLite's
    /// busy timeout: PostgreSQL's `lock_timeout` for this connection.
    pub lock_timeout: Duration,
    /// Connect timeout when the connection string sets none (default 10 s).
    pub connect_timeout: Duration,
    /// A schema of its own (created when missing) instead of the connection's default
    /// (`public`): one database holds several ledgers, e.g. one per site of a central
    /// deployment. Its writers, run locks and claims are keyed by it, so two schemas never
    /// wait for each other.
    pub schema: Option<String>,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions { lock_timeout: Duration::from_secs(10), connect_timeout: Duration::from_secs(10), schema: None }
    }
}

pub struct PgStore {
    client: Option<Client>,
    rt: Option<tokio::runtime::Runtime>,
    /// Signalled when the connection task ends (so drop can close the session cleanly).
    closed: mpsc::Receiver<()>,
    loc: String,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore").field("location", &self.loc).finish()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Dropping the client sends Terminate; the connection task then ends by itself.
        drop(self.client.take());
        let _ = self.closed.recv_timeout(Duration::from_secs(2));
        if let Some(rt) = self.rt.take() {
            // Never blocks nor panics, even inside an async context.
            rt.shutdown_background();
        }
    }
}

/// Wait for a client future on the caller's thread (the connection runs on the store's runtime).
pub(crate) fn wait<F: Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

pub(crate) fn db<'a>(loc: &'a str, op: &'a str) -> impl Fn(tokio_postgres::Error) -> Error + 'a {
    move |e| Error::Backend { location: loc.to_string(), op: op.to_string(), source: Box::new(e) }
}

fn corrupt<E: std::fmt::Display>(loc: &str, op: &str) -> impl Fn(E) -> Error {
    let (loc, op) = (loc.to_string(), op.to_string());
    move |reason| Error::Corrupt { location: loc.clone(), op: op.clone(), reason: reason.to_string() }
}

/// Why a row does not read back as what was stored (the `reason` of [`Error::Corrupt`]).
#[derive(Debug, thiserror::Error)]
enum RowError {
    #[error("column {idx} ({name}): {source}")]
    Column { idx: usize, name: String, source: tokio_postgres::Error },
    #[error("negative count {value} in column {idx}")]
    Negative { value: i64, idx: usize },
    #[error("unknown message state {0:?}")]
    State(String),
    #[error("unknown outcome {0:?}")]
    Outcome(String),
    #[error("{0}")]
    Actions(#[from] crate::actions::ActionsError),
}

/// Times are stored with microsecond precision (as SQLite's text): truncate before storing
/// or comparing.
fn ts(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

fn ots(t: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    t.map(ts)
}

/// "postgresql://user@host:port/dbname", without the password (nor any other option).
fn describe(cfg: &Config) -> String {
    let hosts: Vec<String> = cfg
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                Host::Tcp(h) => h.clone(),
                #[cfg(unix)]
                Host::Unix(p) => p.display().to_string(),
            };
            let port = cfg.get_ports().get(i).or(cfg.get_ports().first()).copied().unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect();
    let user = cfg.get_user().map(|u| format!("{u}@")).unwrap_or_default();
    let dbname = cfg.get_dbname().or(cfg.get_user()).unwrap_or("");
    format!("postgresql://{user}{}/{dbname}", hosts.join(","))
}

type Params = Vec<Box<dyn ToSql + Sync + Send>>;

fn refs(ps: &Params) -> Vec<&(dyn ToSql + Sync)> {
    ps.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect()
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(r: &'a Row, idx: usize) -> std::result::Result<T, RowError> {
    r.try_get(idx).map_err(|source| RowError::Column { idx, name: r.columns()[idx].name().to_string(), source })
}

fn get_ou64(r: &Row, idx: usize) -> std::result::Result<Option<u64>, RowError> {
    let v: Option<i64> = get(r, idx)?;
    v.map(|v| u64::try_from(v).map_err(|_| RowError::Negative { value: v, idx })).transpose()
}

fn get_state(r: &Row, idx: usize) -> std::result::Result<MessageState, RowError> {
    let s: String = get(r, idx)?;
    MessageState::parse(&s).ok_or(RowError::State(s))
}

fn opt_i64(loc: &str, op: &str, what: &str, v: Option<u64>) -> Result<Option<i64>> {
    v.map(|v| i64::try_from(v).map_err(|_| invalid(loc, op, format!("{what} {v} is too large")))).transpose()
}

const SNAPSHOT_COLS: &str = "s.kind, s.key, s.project_id, s.vo, s.site, s.measured_at, s.month, s.start_time, \
     s.end_time, s.wall_seconds, s.cpu_seconds, s.status, s.body, s.body_sha256, s.first_seen_at, s.updated_at, s.run_id, s.record_fp";

fn snapshot_row(r: &Row) -> std::result::Result<StoredSnapshot, RowError> {
    Ok(StoredSnapshot {
        snapshot: Snapshot {
            kind: get(r, 0)?,
            key: get(r, 1)?,
            project_id: get(r, 2)?,
            vo: get(r, 3)?,
            site: get(r, 4)?,
            measured_at: get(r, 5)?,
            month: Some(get(r, 6)?),
            start_time: get(r, 7)?,
            end_time: get(r, 8)?,
            wall_seconds: get_ou64(r, 9)?,
            cpu_seconds: get_ou64(r, 10)?,
            status: get(r, 11)?,
            body: get(r, 12)?,
            fingerprint: get(r, 17)?,
        },
        body_sha256: get(r, 13)?,
        first_seen_at: get(r, 14)?,
        updated_at: get(r, 15)?,
        run_id: get::<Option<i64>>(r, 16)?.map(RunId),
    })
}

const MESSAGE_COLS: &str = "element, kind, record_count, created_at, run_id, state, ams_id, sent_at, \
     acknowledged_at, quarantined_at, reason";

fn message_row(r: &Row) -> std::result::Result<Message, RowError> {
    Ok(Message {
        element: get(r, 0)?,
        kind: get(r, 1)?,
        record_count: get_ou64(r, 2)?.unwrap_or(0),
        created_at: get(r, 3)?,
        run_id: get::<Option<i64>>(r, 4)?.map(RunId),
        state: get_state(r, 5)?,
        ams_id: get(r, 6)?,
        sent_at: get(r, 7)?,
        acknowledged_at: get(r, 8)?,
        quarantined_at: get(r, 9)?,
        reason: get(r, 10)?,
    })
}

const RUN_COLS: &str = "id, command, started_at, finished_at, outcome, detail, window_from, window_to";

fn run_row(r: &Row) -> std::result::Result<Run, RowError> {
    let outcome: Option<String> = get(r, 4)?;
    Ok(Run {
        id: RunId(get(r, 0)?),
        command: get(r, 1)?,
        started_at: get(r, 2)?,
        finished_at: get(r, 3)?,
        outcome: outcome.map(|o| RunOutcome::parse(&o).ok_or(RowError::Outcome(o))).transpose()?,
        detail: get(r, 5)?,
        window_from: get(r, 6)?,
        window_to: get(r, 7)?,
    })
}

/// The columns of listed-server entries, for one `UNNEST` insert.
fn listed_columns(put: &[ListedServerEntry]) -> (Vec<&str>, Vec<&str>, Vec<&str>) {
    let mut out = (Vec::with_capacity(put.len()), Vec::with_capacity(put.len()), Vec::with_capacity(put.len()));
    for e in put {
        out.0.push(e.server_id.as_str());
        out.1.push(e.project_id.as_str());
        out.2.push(e.body.as_str());
    }
    out
}

fn rows_to<T>(
    loc: &str,
    op: &str,
    rows: Vec<Row>,
    f: impl Fn(&Row) -> std::result::Result<T, RowError>,
) -> Result<Vec<T>> {
    rows.iter().map(|r| f(r).map_err(corrupt(loc, op))).collect()
}

/// WHERE clause (over alias `s`) and its parameters for a snapshot filter.
fn filter_sql(f: &SnapshotFilter) -> (String, Params) {
    let mut clauses = vec!["TRUE".to_string()];
    let mut ps: Params = Vec::new();
    let mut add = |clause: &str, v: Box<dyn ToSql + Sync + Send>| {
        ps.push(v);
        clauses.push(format!("{clause} ${}", ps.len()));
    };
    if let Some(t) = f.from {
        add("s.measured_at >=", Box::new(ts(t)));
    }
    if let Some(t) = f.to {
        add("s.measured_at <", Box::new(ts(t)));
    }
    if let Some(p) = &f.project {
        add("s.project_id =", Box::new(p.clone()));
    }
    if let Some(k) = &f.kind {
        add("s.kind =", Box::new(k.clone()));
    }
    if let Some(v) = &f.vo {
        add("s.vo =", Box::new(v.clone()));
    }
    if let Some(m) = &f.month {
        add("s.month =", Box::new(m.clone()));
    }
    (clauses.join(" AND "), ps)
}

/// Start a write transaction holding the ledger's write lock (one writer at a time).
fn write_tx<'c>(client: &'c mut Client, loc: &str, op: &str) -> Result<Transaction<'c>> {
    let tx = wait(client.transaction()).map_err(db(loc, op))?;
    // The default schema keeps the one key every version took; another schema has its own.
    wait(tx.execute(
        "SELECT pg_advisory_xact_lock(CASE WHEN current_schema() = 'public' THEN $1 \
         ELSE hashtextextended('fedsite write ' || current_schema(), 0) END)",
        &[&WRITE_LOCK],
    ))
    .map_err(db(loc, op))?;
    Ok(tx)
}

fn commit(tx: Transaction<'_>, loc: &str, op: &str) -> Result<()> {
    wait(tx.commit()).map_err(db(loc, op))
}

fn migrate(client: &mut Client, loc: &str) -> Result<()> {
    let op = "migrate schema";
    let tx = write_tx(client, loc, op)?;
    wait(tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version    INTEGER PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    ))
    .map_err(db(loc, op))?;
    let found: i64 = wait(tx.query_one("SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_version", &[]))
        .and_then(|r| r.try_get(0))
        .map_err(db(loc, op))?;
    if found > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew { location: loc.to_string(), found, supported: SCHEMA_VERSION });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let step = format!("migrate schema to version {}", i + 1);
        let v = (i + 1) as i32;
        wait(tx.batch_execute(sql)).map_err(db(loc, &step))?;
        wait(tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&v])).map_err(db(loc, &step))?;
    }
    commit(tx, loc, op)
}

type Version = (DateTime<Utc>, String);

const STORED_VERSION: &str = "SELECT measured_at, body_sha256 FROM snapshots WHERE kind = $1 AND key = $2";

fn version_of(loc: &str, op: &str, row: Option<Row>) -> Result<Option<Version>> {
    row.map(|r| Ok((get(&r, 0)?, get(&r, 1)?))).transpose().map_err(corrupt::<RowError>(loc, op))
}

/// An unchanged snapshot measured at `measured`: its `measured_at` moves forward, if older.
fn touch<T: tokio_postgres::types::ToSql + Sync>(
    tx: &Transaction<'_>,
    loc: &str,
    kind: &str,
    key: &str,
    measured: &T,
    now: &T,
    run: Option<i64>,
) -> Result<()> {
    wait(tx.execute(
        "UPDATE snapshots SET measured_at = $3, updated_at = $4, run_id = COALESCE($5, run_id)
         WHERE kind = $1 AND key = $2 AND measured_at < $3",
        &[&kind, &key, measured, now, &run],
    ))
    .map_err(db(loc, "upsert snapshot"))?;
    Ok(())
}

fn upsert(tx: &Transaction<'_>, loc: &str, s: &Snapshot, run: Option<RunId>) -> Result<Upsert> {
    let op = "upsert snapshot";
    validate_snapshot(loc, op, s)?;
    let wall = opt_i64(loc, op, "wall_seconds", s.wall_seconds)?;
    let cpu = opt_i64(loc, op, "cpu_seconds", s.cpu_seconds)?;
    let measured = ts(s.measured_at);
    let sha = s.body_sha256();
    // FOR UPDATE: the row cannot change under us (writers also hold the write lock).
    let row = wait(tx.query_opt(&format!("{STORED_VERSION} FOR UPDATE"), &[&s.kind, &s.key])).map_err(db(loc, op))?;
    let stored = version_of(loc, op, row)?;
    let outcome = decide(stored.as_ref().map(|(m, h)| (m, h.as_str())), &measured, &sha);
    let now = ts(Utc::now());
    let run = run.map(|r| r.0);
    match outcome {
        Upsert::KeptNewer => {}
        Upsert::Unchanged => {
            touch(tx, loc, &s.kind, &s.key, &measured, &now, run)?;
            // The same body: a fingerprint given for it is stored (see the SQLite store).
            if let Some(fp) = &s.fingerprint {
                wait(tx.execute(
                    "UPDATE snapshots SET record_fp = $3 WHERE kind = $1 AND key = $2 AND record_fp IS DISTINCT FROM $3",
                    &[&s.kind, &s.key, fp],
                ))
                .map_err(db(loc, op))?;
            }
        }
        Upsert::Inserted | Upsert::Replaced => {
            let month = s.month.clone().unwrap_or_else(|| month_of(s.measured_at));
            wait(tx.execute(
                "INSERT INTO snapshots (kind, key, project_id, vo, site, measured_at, month, start_time, end_time,
                     wall_seconds, cpu_seconds, status, body, body_sha256, first_seen_at, updated_at, run_id, record_fp)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15, $16, $17)
                 ON CONFLICT (kind, key) DO UPDATE SET project_id = excluded.project_id, vo = excluded.vo,
                     site = excluded.site, measured_at = excluded.measured_at, month = excluded.month,
                     start_time = excluded.start_time, end_time = excluded.end_time,
                     wall_seconds = excluded.wall_seconds, cpu_seconds = excluded.cpu_seconds,
                     status = excluded.status, body = excluded.body, body_sha256 = excluded.body_sha256,
                     updated_at = excluded.updated_at, run_id = excluded.run_id, record_fp = excluded.record_fp",
                &[
                    &s.kind,
                    &s.key,
                    &s.project_id,
                    &s.vo,
                    &s.site,
                    &measured,
                    &month,
                    &ots(s.start_time),
                    &ots(s.end_time),
                    &wall,
                    &cpu,
                    &s.status,
                    &s.body,
                    &sha,
                    &now,
                    &run,
                    &s.fingerprint,
                ],
            ))
            .map_err(db(loc, op))?;
        }
    }
    Ok(outcome)
}

fn advance(
    tx: &Transaction<'_>,
    loc: &str,
    project: &str,
    kind: &str,
    to: DateTime<Utc>,
    run: Option<RunId>,
) -> Result<bool> {
    let op = "advance checkpoint";
    if project.is_empty() || kind.is_empty() {
        return Err(invalid(loc, op, "empty project or checkpoint kind"));
    }
    let changed = wait(tx.execute(
        "INSERT INTO checkpoints (project_id, kind, checkpoint, updated_at, run_id) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (project_id, kind) DO UPDATE SET checkpoint = excluded.checkpoint,
             updated_at = excluded.updated_at, run_id = excluded.run_id
         WHERE excluded.checkpoint > checkpoints.checkpoint",
        &[&project, &kind, &ts(to), &ts(Utc::now()), &run.map(|r| r.0)],
    ))
    .map_err(db(loc, op))?;
    Ok(changed > 0)
}

fn insert_message(tx: &Transaction<'_>, loc: &str, m: &NewMessage, run: Option<RunId>) -> Result<()> {
    let op = "record message";
    if m.element.is_empty() || m.kind.is_empty() {
        return Err(invalid(loc, op, "empty spool element name or kind"));
    }
    let exists = wait(tx.query_opt("SELECT 1 FROM messages WHERE element = $1", &[&m.element])).map_err(db(loc, op))?;
    if exists.is_some() {
        return Err(invalid(loc, op, format!("spool element {:?} is already recorded", m.element)));
    }
    let mut keys = std::collections::HashSet::new();
    if let Some(dup) = m.records.iter().find(|r| !keys.insert(r.key.as_str())) {
        return Err(invalid(loc, op, format!("message {:?} lists record {:?} twice", m.element, dup.key)));
    }
    wait(tx.execute(
        "INSERT INTO messages (element, kind, record_count, created_at, run_id, state) VALUES ($1, $2, $3, $4, $5, 'spooled')",
        &[&m.element, &m.kind, &(m.records.len() as i64), &ts(m.created_at), &run.map(|r| r.0)],
    ))
    .map_err(db(loc, op))?;
    if m.records.is_empty() {
        return Ok(());
    }
    let st = wait(tx.prepare(
        "INSERT INTO message_records (element, kind, key, measured_at, body_sha256) VALUES ($1, $2, $3, $4, $5)",
    ))
    .map_err(db(loc, op))?;
    for r in &m.records {
        wait(tx.execute(&st, &[&m.element, &m.kind, &r.key, &ts(r.measured_at), &r.body_sha256]))
            .map_err(db(loc, op))?;
    }
    Ok(())
}

impl PgStore {
    /// Connect (URL `postgres://user:pass@host:port/db` or libpq `key=value` conninfo), set the
    /// session up (UTC, lock timeout) and migrate the schema.
    pub fn open(conninfo: &str, opts: PgOptions) -> Result<PgStore> {
        let mut cfg = Config::from_str(conninfo).map_err(|e| Error::Invalid {
            location: "postgresql".into(),
            op: "parse connection string".into(),
            reason: e.to_string(),
        })?;
        let mut loc = describe(&cfg);
        if let Some(schema) = &opts.schema {
            loc = format!("{loc} schema {schema}");
        }
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(opts.connect_timeout);
        }
        if cfg.get_application_name().is_none() {
            cfg.application_name("fedsite-ledger");
        }
        let io = |e: std::io::Error, op: &str| Error::Io { location: loc.clone(), op: op.into(), source: e };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ledger-postgres")
            .enable_all()
            .build()
            .map_err(|e| io(e, "start the PostgreSQL client runtime"))?;
        let (done_tx, closed) = mpsc::channel();
        let connect = rt.spawn(async move {
            let (client, connection) = cfg.connect(NoTls).await?;
            tokio::spawn(async move {
                let _ = connection.await;
                let _ = done_tx.send(());
            });
            Ok::<_, tokio_postgres::Error>(client)
        });
        let client = match wait(connect) {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                rt.shutdown_background();
                return Err(db(&loc, "connect")(e));
            }
            Err(join) => {
                rt.shutdown_background();
                return Err(io(std::io::Error::other(join.to_string()), "connect"));
            }
        };
        let mut store = PgStore { client: Some(client), rt: Some(rt), closed, loc };
        let lock_ms = opts.lock_timeout.as_millis().clamp(1, i32::MAX as u128);
        wait(store.c().batch_execute(&format!("SET TIME ZONE 'UTC'; SET lock_timeout = {lock_ms}")))
            .map_err(db(&store.loc, "set up session"))?;
        if let Some(schema) = &opts.schema {
            store.use_schema(schema)?;
        }
        let (client, loc) = store.parts();
        migrate(client, loc)?;
        Ok(store)
    }

    /// Creates `schema` when missing (serialised with every other writer: two replicas
    /// opening the same new schema at once must not both create it) and makes it this
    /// session's only search path.
    fn use_schema(&mut self, schema: &str) -> Result<()> {
        let op = "use schema";
        if schema.is_empty() || schema.len() > 63 || schema.contains('\0') {
            return Err(Error::Invalid {
                location: self.loc.clone(),
                op: op.into(),
                reason: format!("{schema:?} is not a PostgreSQL schema name (1 to 63 bytes)"),
            });
        }
        let quoted = format!("\"{}\"", schema.replace('"', "\"\""));
        let (client, loc) = self.parts();
        let tx = wait(client.transaction()).map_err(db(loc, op))?;
        wait(tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])).map_err(db(loc, op))?;
        wait(tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {quoted}"))).map_err(db(loc, op))?;
        commit(tx, loc, op)?;
        wait(self.c().batch_execute(&format!("SET search_path TO {quoted}"))).map_err(db(&self.loc, op))
    }

    pub(crate) fn location_str(&self) -> &str {
        &self.loc
    }

    pub(crate) fn c(&self) -> &Client {
        self.client.as_ref().expect("client is only taken in drop")
    }

    pub(crate) fn parts(&mut self) -> (&mut Client, &str) {
        (self.client.as_mut().expect("client is only taken in drop"), &self.loc)
    }

    /// The schema version of the database (highest applied migration).
    pub fn schema_version(&self) -> Result<i64> {
        wait(self.c().query_one("SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_version", &[]))
            .and_then(|r| r.try_get(0))
            .map_err(db(&self.loc, "read schema version"))
    }

    fn query(&self, op: &str, sql: &str, ps: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        wait(self.c().query(sql, ps)).map_err(db(&self.loc, op))
    }

    fn messages_where(&self, op: &str, clause: &str, p: &[&(dyn ToSql + Sync)]) -> Result<Vec<Message>> {
        let sql = format!("SELECT {MESSAGE_COLS} FROM messages WHERE {clause} ORDER BY created_at, element");
        let rows = self.query(op, &sql, p)?;
        rows_to(&self.loc, op, rows, message_row)
    }

    fn snapshots_where(&self, op: &str, f: &SnapshotFilter, extra: &str) -> Result<Vec<StoredSnapshot>> {
        let (clause, ps) = filter_sql(f);
        let sql = format!("SELECT {SNAPSHOT_COLS} FROM snapshots s WHERE {clause} {extra} ORDER BY s.kind, s.key");
        let rows = self.query(op, &sql, &refs(&ps))?;
        rows_to(&self.loc, op, rows, snapshot_row)
    }

    fn transition(&mut self, element: &str, to: MessageState, set: &str, extra: Option<&str>) -> Result<()> {
        let op = format!("mark message {to}");
        let (client, loc) = self.parts();
        let tx = write_tx(client, loc, &op)?;
        let row = wait(tx.query_opt("SELECT state FROM messages WHERE element = $1 FOR UPDATE", &[&element]))
            .map_err(db(loc, &op))?
            .ok_or_else(|| Error::UnknownMessage { location: loc.to_string(), element: element.to_string() })?;
        let state = get_state(&row, 0).map_err(corrupt(loc, &op))?;
        if !state.can_go_to(to) {
            return Err(Error::InvalidTransition {
                location: loc.to_string(),
                element: element.to_string(),
                from: state,
                to,
            });
        }
        let now = ts(Utc::now());
        let sql = format!("UPDATE messages SET state = $2, {set} WHERE element = $1");
        let to_s = to.as_str();
        let mut ps: Vec<&(dyn ToSql + Sync)> = vec![&element, &to_s, &now];
        if let Some(x) = &extra {
            ps.push(x);
        }
        wait(tx.execute(&sql, &ps)).map_err(db(loc, &op))?;
        commit(tx, loc, &op)
    }
}

impl Store for PgStore {
    fn location(&self) -> &str {
        &self.loc
    }

    fn begin_run(&mut self, run: &NewRun) -> Result<RunId> {
        let op = "begin run";
        if run.command.is_empty() {
            return Err(invalid(&self.loc, op, "empty command"));
        }
        let rows = self.query(
            op,
            "INSERT INTO runs (command, started_at, window_from, window_to) VALUES ($1, $2, $3, $4) RETURNING id",
            &[&run.command, &ts(Utc::now()), &ots(run.window_from), &ots(run.window_to)],
        )?;
        let id = rows
            .first()
            .ok_or_else(|| corrupt(&self.loc, op)("INSERT returned no id"))
            .and_then(|r| get::<i64>(r, 0).map_err(corrupt(&self.loc, op)))?;
        Ok(RunId(id))
    }

    fn finish_run(&mut self, id: RunId, outcome: RunOutcome, detail: Option<&str>) -> Result<()> {
        let op = "finish run";
        let (client, loc) = self.parts();
        let tx = write_tx(client, loc, op)?;
        let row =
            wait(tx.query_opt("SELECT outcome FROM runs WHERE id = $1 FOR UPDATE", &[&id.0])).map_err(db(loc, op))?;
        let Some(row) = row else {
            return Err(Error::UnknownRun { location: loc.to_string(), run: id.0 });
        };
        if let Some(done) = get::<Option<String>>(&row, 0).map_err(corrupt(loc, op))? {
            return Err(Error::RunAlreadyFinished { location: loc.to_string(), run: id.0, outcome: done });
        }
        wait(tx.execute(
            "UPDATE runs SET finished_at = $2, outcome = $3, detail = $4 WHERE id = $1",
            &[&id.0, &ts(Utc::now()), &outcome.as_str(), &detail],
        ))
        .map_err(db(loc, op))?;
        commit(tx, loc, op)
    }

    fn run(&self, id: RunId) -> Result<Option<Run>> {
        let op = "read run";
        let rows = self.query(op, &format!("SELECT {RUN_COLS} FROM runs WHERE id = $1"), &[&id.0])?;
        Ok(rows_to(&self.loc, op, rows, run_row)?.pop())
    }

    fn runs(&self, limit: usize) -> Result<Vec<Run>> {
        let op = "list runs";
        let limit = limit.min(i64::MAX as usize) as i64;
        let rows = self.query(op, &format!("SELECT {RUN_COLS} FROM runs ORDER BY id DESC LIMIT $1"), &[&limit])?;
        rows_to(&self.loc, op, rows, run_row)
    }

    fn checkpoint(&self, project: &str, kind: &str) -> Result<Option<DateTime<Utc>>> {
        let op = "read checkpoint";
        let rows = self.query(
            op,
            "SELECT checkpoint FROM checkpoints WHERE project_id = $1 AND kind = $2",
            &[&project, &kind],
        )?;
        Ok(rows_to(&self.loc, op, rows, |r| get::<DateTime<Utc>>(r, 0))?.pop())
    }

    fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        let op = "list checkpoints";
        let rows = self.query(
            op,
            "SELECT project_id, kind, checkpoint, updated_at FROM checkpoints ORDER BY project_id, kind",
            &[],
        )?;
        rows_to(&self.loc, op, rows, |r| {
            Ok(Checkpoint { project_id: get(r, 0)?, kind: get(r, 1)?, checkpoint: get(r, 2)?, updated_at: get(r, 3)? })
        })
    }

    fn advance_checkpoint(&mut self, project: &str, kind: &str, to: DateTime<Utc>, run: Option<RunId>) -> Result<bool> {
        let op = "advance checkpoint";
        let (client, loc) = self.parts();
        let tx = write_tx(client, loc, op)?;
        let moved = advance(&tx, loc, project, kind, to, run)?;
        commit(tx, loc, op)?;
        Ok(moved)
    }

    fn reset_checkpoint(&mut self, project: &str, kind: &str, to: Option<DateTime<Utc>>) -> Result<()> {
        let op = "reset checkpoint";
        match to {
            None => {
                self.query(op, "DELETE FROM checkpoints WHERE project_id = $1 AND kind = $2", &[&project, &kind])?
            }
            Some(t) => self.query(
                op,
                "INSERT INTO checkpoints (project_id, kind, checkpoint, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (project_id, kind) DO UPDATE SET checkpoint = excluded.checkpoint,
                     updated_at = excluded.updated_at, run_id = NULL",
                &[&project, &kind, &ts(t), &ts(Utc::now())],
            )?,
        };
        Ok(())
    }

    fn upsert_snapshot(&mut self, s: &Snapshot, run: Option<RunId>) -> Result<Upsert> {
        let op = "upsert snapshot";
        let (client, loc) = self.parts();
        let tx = write_tx(client, loc, op)?;
        let u = upsert(&tx, loc, s, run)?;
        commit(tx, loc, op)?;
        Ok(u)
    }

    fn preview_snapshots(&self, snapshots: &[Snapshot]) -> Result<Vec<Upsert>> {
        let op = "preview snapshots";
        // Later entries for the same key see earlier ones, as in a real commit.
        let mut pending: std::collections::HashMap<(&str, &str), Version> = Default::default();
        snapshots
            .iter()
            .map(|s| {
                validate_snapshot(&self.loc, op, s)?;
                let k = (s.kind.as_str(), s.key.as_str());
                let stored = match pending.get(&k) {
                    Some(v) => Some(v.clone()),
                    None => {
                        let row = self.query(op, STORED_VERSION, &[&s.kind, &s.key])?.pop();
                        version_of(&self.loc, op, row)?
                    }
                };
                let (m, sha) = (ts(s.measured_at), s.body_sha256());
                let u = decide(stored.as_ref().map(|(m, h)| (m, h.as_str())), &m, &sha);
                let next = match (u, stored) {
                    (Upsert::Inserted | Upsert::Replaced, _) => (m, sha),
                    (Upsert::Unchanged, Some((old, h))) => (old.max(m), h),
                    (_, Some(v)) => v,
                    (_, None) => (m, sha), // not reached: only Inserted has nothing stored
                };
                pending.insert(k, next);
                Ok(u)
            })
            .collect()
    }

    fn fingerprints(&self, kind: &str, project: &str) -> Result<HashMap<String, StoredFingerprint>> {
        let op = "read record fingerprints";
        let rows = self.query(
            op,
            "SELECT key, measured_at, record_fp FROM snapshots
             WHERE kind = $1 AND project_id = $2 AND record_fp IS NOT NULL",
            &[&kind, &project],
        )?;
        let rows = rows_to(&self.loc, op, rows, |r| {
            Ok((get::<String>(r, 0)?, StoredFingerprint { measured_at: get(r, 1)?, fingerprint: get(r, 2)? }))
        })?;
        Ok(rows.into_iter().collect())
    }

    fn commit_project(&mut self, c: &ProjectCommit) -> Result<CommitReport> {
        let op = "commit project";
        let (client, loc) = self.parts();
        if let Some(s) = c.snapshots.iter().find(|s| s.project_id != c.project_id) {
            return Err(invalid(
                loc,
                op,
                format!("snapshot {}/{} belongs to project {:?}, not {:?}", s.kind, s.key, s.project_id, c.project_id),
            ));
        }
        // Any early return drops `tx`, which rolls the whole commit back.
        let tx = write_tx(client, loc, op)?;
        let mut report = CommitReport::default();
        for s in &c.snapshots {
            report.upserts.push(upsert(&tx, loc, s, c.run)?);
        }
        if !c.unchanged.is_empty() {
            let now = ts(Utc::now());
            for u in &c.unchanged {
                touch(&tx, loc, &u.kind, &u.key, &ts(u.measured_at), &now, c.run.map(|r| r.0))?;
            }
        }
        for m in &c.messages {
            insert_message(&tx, loc, m, c.run)?;
        }
        report.messages = c.messages.len();
        if let Some(to) = c.checkpoint_to {
            report.checkpoint_advanced = advance(&tx, loc, &c.project_id, &c.checkpoint_kind, to, c.run)?;
        }
        commit(tx, loc, op)?;
        Ok(report)
    }

    fn latest_snapshots(&self, f: &SnapshotFilter) -> Result<Vec<StoredSnapshot>> {
        self.snapshots_where("list snapshots", f, "")
    }

    fn unsent_snapshots(&self, f: &SnapshotFilter) -> Result<Vec<StoredSnapshot>> {
        self.snapshots_where(
            "list unsent snapshots",
            f,
            "AND NOT EXISTS (SELECT 1 FROM message_records r JOIN messages m ON m.element = r.element
                 WHERE r.kind = s.kind AND r.key = s.key AND r.body_sha256 = s.body_sha256
                   AND m.state <> 'quarantined')",
        )
    }

    fn snapshot(&self, kind: &str, key: &str) -> Result<Option<StoredSnapshot>> {
        let op = "read snapshot";
        let rows = self.query(
            op,
            &format!("SELECT {SNAPSHOT_COLS} FROM snapshots s WHERE s.kind = $1 AND s.key = $2"),
            &[&kind, &key],
        )?;
        Ok(rows_to(&self.loc, op, rows, snapshot_row)?.pop())
    }

    fn usage_summary(&self, f: &SnapshotFilter, by: SummaryGroup) -> Result<Vec<UsageRow>> {
        let op = "summarise usage";
        let mut f = f.clone();
        f.kind.get_or_insert_with(|| "cloud".to_string());
        let (clause, ps) = filter_sql(&f);
        let cols: Vec<&str> = [(by.vo, "s.vo"), (by.project, "s.project_id"), (by.month, "s.month")]
            .into_iter()
            .filter_map(|(on, c)| on.then_some(c))
            .collect();
        let pick = |on: bool, c: &str| {
            if on { c.to_string() } else { "NULL::TEXT".to_string() }
        };
        // NULLS FIRST: the order SQLite gives.
        let group = if cols.is_empty() {
            String::new()
        } else {
            let order: Vec<String> = cols.iter().map(|c| format!("{c} NULLS FIRST")).collect();
            format!("GROUP BY {} ORDER BY {}", cols.join(", "), order.join(", "))
        };
        let sql = format!(
            "SELECT {}, {}, {}, COUNT(*), COALESCE(SUM(s.wall_seconds), 0)::BIGINT, COALESCE(SUM(s.cpu_seconds), 0)::BIGINT
             FROM snapshots s WHERE {clause} {group}",
            pick(by.vo, "s.vo"),
            pick(by.project, "s.project_id"),
            pick(by.month, "s.month"),
        );
        let rows = self.query(op, &sql, &refs(&ps))?;
        let rows = rows_to(&self.loc, op, rows, |r| {
            Ok(UsageRow {
                vo: get(r, 0)?,
                project_id: get(r, 1)?,
                month: get(r, 2)?,
                records: get_ou64(r, 3)?.unwrap_or(0),
                wall_seconds: get_ou64(r, 4)?.unwrap_or(0),
                cpu_seconds: get_ou64(r, 5)?.unwrap_or(0),
            })
        })?;
        Ok(rows.into_iter().filter(|r| r.records > 0).collect())
    }

    fn seen(&self, kind: &str, project: &str) -> Result<Vec<SeenKey>> {
        let op = "list seen keys";
        let rows = self.query(
            op,
            "SELECT key, measured_at, status, end_time FROM snapshots WHERE kind = $1 AND project_id = $2 ORDER BY key",
            &[&kind, &project],
        )?;
        rows_to(&self.loc, op, rows, |r| {
            Ok(SeenKey { key: get(r, 0)?, measured_at: get(r, 1)?, status: get(r, 2)?, end_time: get(r, 3)? })
        })
    }

    fn record_message(&mut self, m: &NewMessage, run: Option<RunId>) -> Result<()> {
        let op = "record message";
        let (client, loc) = self.parts();
        let tx = write_tx(client, loc, op)?;
        insert_message(&tx, loc, m, run)?;
        commit(tx, loc, op)
    }

    fn mark_sent(&mut self, element: &str, ams_id: &str) -> Result<()> {
        if ams_id.is_empty() {
            return Err(invalid(&self.loc, "mark message sent", format!("empty AMS message id for {element:?}")));
        }
        self.transition(element, MessageState::Sent, "sent_at = $3, ams_id = $4", Some(ams_id))
    }

    fn mark_acknowledged(&mut self, element: &str) -> Result<()> {
        self.transition(element, MessageState::Acknowledged, "acknowledged_at = $3", None)
    }

    fn quarantine(&mut self, element: &str, reason: &str) -> Result<()> {
        self.transition(element, MessageState::Quarantined, "quarantined_at = $3, reason = $4", Some(reason))
    }

    fn requeue(&mut self, element: &str) -> Result<()> {
        let op = "requeue message";
        let (client, loc) = self.parts();
        let tx = write_tx(client, loc, op)?;
        let row = wait(tx.query_opt("SELECT state FROM messages WHERE element = $1 FOR UPDATE", &[&element]))
            .map_err(db(loc, op))?
            .ok_or_else(|| Error::UnknownMessage { location: loc.to_string(), element: element.to_string() })?;
        let state = get_state(&row, 0).map_err(corrupt(loc, op))?;
        if state != MessageState::Quarantined {
            return Err(Error::InvalidTransition {
                location: loc.to_string(),
                element: element.to_string(),
                from: state,
                to: MessageState::Spooled,
            });
        }
        wait(tx.execute(
            "UPDATE messages SET state = 'spooled', ams_id = NULL, sent_at = NULL, \
             acknowledged_at = NULL, quarantined_at = NULL, reason = NULL WHERE element = $1",
            &[&element],
        ))
        .map_err(db(loc, op))?;
        commit(tx, loc, op)
    }

    fn run_lock(&mut self, kind: &str, wait_for: Duration) -> Result<crate::RunLock, crate::LockError> {
        let what = format!("ledger {} ({kind} runs)", self.loc);
        let op = "take the run lock";
        crate::runlock::poll(&what, wait_for, || {
            // Keyed by the ledger's identity (database, schema) and the run kind; a session
            // lock, so it holds until this connection closes.
            let row = wait(self.c().query_one(
                "SELECT pg_try_advisory_lock(hashtext('fedsite ledger ' || current_database() \
                 || '.' || current_schema()), hashtext($1))",
                &[&kind],
            ))
            .map_err(db(&self.loc, op))?;
            row.try_get::<_, bool>(0).map_err(db(&self.loc, op))
        })
    }

    fn message(&self, element: &str) -> Result<Option<Message>> {
        Ok(self.messages_where("read message", "element = $1", &[&element])?.pop())
    }

    fn pending(&self) -> Result<Vec<Message>> {
        self.messages_where("list pending messages", "state IN ('spooled', 'sent')", &[])
    }

    fn messages_in_state(&self, state: MessageState) -> Result<Vec<Message>> {
        self.messages_where("list messages", "state = $1", &[&state.as_str()])
    }

    fn message_records(&self, element: &str) -> Result<Vec<RecordRef>> {
        let op = "list message records";
        if self.message(element)?.is_none() {
            return Err(Error::UnknownMessage { location: self.loc.clone(), element: element.to_string() });
        }
        let rows = self.query(
            op,
            "SELECT key, measured_at, body_sha256 FROM message_records WHERE element = $1 ORDER BY key",
            &[&element],
        )?;
        rows_to(&self.loc, op, rows, |r| {
            Ok(RecordRef { key: get(r, 0)?, measured_at: get(r, 1)?, body_sha256: get(r, 2)? })
        })
    }

    fn deliveries(&self, kind: &str, key: &str) -> Result<Vec<Delivery>> {
        let op = "list deliveries";
        let rows = self.query(
            op,
            "SELECT r.element, m.state, r.measured_at, r.body_sha256, COALESCE(r.body_sha256 = s.body_sha256, FALSE),
                    m.ams_id, m.sent_at
             FROM message_records r JOIN messages m ON m.element = r.element
             LEFT JOIN snapshots s ON s.kind = r.kind AND s.key = r.key
             WHERE r.kind = $1 AND r.key = $2 ORDER BY m.created_at, r.element",
            &[&kind, &key],
        )?;
        rows_to(&self.loc, op, rows, |r| {
            Ok(Delivery {
                element: get(r, 0)?,
                state: get_state(r, 1)?,
                measured_at: get(r, 2)?,
                body_sha256: get(r, 3)?,
                is_current: get(r, 4)?,
                ams_id: get(r, 5)?,
                sent_at: get(r, 6)?,
            })
        })
    }
    fn add_run_warning(&mut self, run: RunId, level: &str, message: &str) -> Result<()> {
        let op = "add run warning";
        if level.is_empty() || message.is_empty() {
            return Err(invalid(&self.loc, op, "empty level or message"));
        }
        if self.run(run)?.is_none() {
            return Err(Error::UnknownRun { location: self.loc.clone(), run: run.0 });
        }
        self.query(
            op,
            "INSERT INTO run_warnings (run_id, at, level, message) VALUES ($1, $2, $3, $4)",
            &[&run.0, &ts(Utc::now()), &level, &message],
        )?;
        Ok(())
    }

    fn run_warnings(&self, run: RunId) -> Result<Vec<RunWarning>> {
        let op = "list run warnings";
        let rows = self.query(
            op,
            "SELECT run_id, at, level, message FROM run_warnings WHERE run_id = $1 ORDER BY id",
            &[&run.0],
        )?;
        rows_to(&self.loc, op, rows, |r| {
            Ok(RunWarning { run: RunId(get(r, 0)?), at: get(r, 1)?, level: get(r, 2)?, message: get(r, 3)? })
        })
    }

    fn last_run(&self, command: &str, outcome: Option<RunOutcome>) -> Result<Option<Run>> {
        let op = "read last run";
        let outcome = outcome.map(RunOutcome::as_str);
        let rows = self.query(
            op,
            &format!(
                "SELECT {RUN_COLS} FROM runs WHERE command = $1 AND ($2::TEXT IS NULL OR outcome = $2) ORDER BY id DESC LIMIT 1"
            ),
            &[&command, &outcome],
        )?;
        Ok(rows_to(&self.loc, op, rows, run_row)?.pop())
    }

    fn cached_actions(&self, project: &str, servers: &[&str]) -> Result<Vec<StoredActions>> {
        let op = "look up cached instance actions";
        if servers.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.query(
            op,
            "SELECT server_id, project_id, updated, fetched_at, seen_at, actions FROM instance_actions
             WHERE project_id = $1 AND server_id = ANY($2)",
            &[&project, &servers],
        )?;
        rows_to(&self.loc, op, rows, |r| {
            let server_id: String = get(r, 0)?;
            let actions = crate::actions::decode(&server_id, &get::<String>(r, 5)?)?;
            Ok(StoredActions {
                cached: CachedActions {
                    server_id,
                    project_id: get(r, 1)?,
                    updated: get(r, 2)?,
                    fetched_at: get(r, 3)?,
                    actions,
                },
                seen_at: get(r, 4)?,
            })
        })
    }

    fn store_cached_actions(
        &mut self,
        project: &str,
        fresh: &[CachedActions],
        reused: &[&str],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let op = "store cached instance actions";
        crate::actions::validate(&self.loc, op, project, fresh)?;
        let now = ts(now);
        let (client, loc) = self.parts();
        let tx = write_tx(client, loc, op)?;
        if !fresh.is_empty() {
            let put = wait(tx.prepare(
                "INSERT INTO instance_actions (server_id, project_id, updated, fetched_at, seen_at, actions)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (server_id) DO UPDATE SET project_id = excluded.project_id,
                     updated = excluded.updated, fetched_at = excluded.fetched_at,
                     seen_at = excluded.seen_at, actions = excluded.actions
                 WHERE excluded.fetched_at >= instance_actions.fetched_at",
            ))
            .map_err(db(loc, op))?;
            for c in fresh {
                let actions = crate::actions::encode(&c.actions);
                wait(
                    tx.execute(&put, &[&c.server_id, &c.project_id, &ts(c.updated), &ts(c.fetched_at), &now, &actions]),
                )
                .map_err(db(loc, op))?;
            }
        }
        if !reused.is_empty() {
            wait(tx.execute(
                "UPDATE instance_actions SET seen_at = $3 WHERE project_id = $2 AND server_id = ANY($1) AND seen_at < $3",
                &[&reused, &project, &now],
            ))
            .map_err(db(loc, op))?;
        }
        commit(tx, loc, op)
    }

    fn listed_servers(&self, servers: &[&str]) -> Result<ListedServers> {
        let op = "look up listed servers";
        let rows = self.query(op, "SELECT valid_at FROM listed_servers_state WHERE id = 1", &[])?;
        let valid_at = rows_to(&self.loc, op, rows, |r| get::<DateTime<Utc>>(r, 0))?.pop();
        if valid_at.is_none() || servers.is_empty() {
            return Ok(ListedServers { valid_at, found: Vec::new() });
        }
        let rows = self.query(
            op,
            "SELECT server_id, project_id, body FROM listed_servers WHERE server_id = ANY($1)",
            &[&servers],
        )?;
        let found = rows_to(&self.loc, op, rows, |r| {
            Ok(ListedServerEntry { server_id: get(r, 0)?, project_id: get(r, 1)?, body: get(r, 2)? })
        })?;
        Ok(ListedServers { valid_at, found })
    }

    fn store_listed_servers(&mut self, u: &ListedServersUpdate) -> Result<()> {
        let op = "store listed servers";
        crate::servers::validate(&self.loc, op, u)?;
        let (client, loc) = self.parts();
        let tx = write_tx(client, loc, op)?;
        if u.reset {
            wait(tx.execute("DELETE FROM listed_servers", &[])).map_err(db(loc, op))?;
        }
        if !u.remove.is_empty() {
            wait(tx.execute("DELETE FROM listed_servers WHERE server_id = ANY($1)", &[&u.remove]))
                .map_err(db(loc, op))?;
        }
        if !u.put.is_empty() {
            // An entry stored with the same project and body is left as it is (nothing to write).
            let (ids, projects, bodies): (Vec<&str>, Vec<&str>, Vec<&str>) = listed_columns(&u.put);
            wait(tx.execute(
                "INSERT INTO listed_servers (server_id, project_id, body)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[])
                 ON CONFLICT (server_id) DO UPDATE SET project_id = excluded.project_id, body = excluded.body
                 WHERE listed_servers.project_id <> excluded.project_id OR listed_servers.body <> excluded.body",
                &[&ids, &projects, &bodies],
            ))
            .map_err(db(loc, op))?;
        }
        wait(tx.execute(
            "INSERT INTO listed_servers_state (id, valid_at) VALUES (1, $1)
             ON CONFLICT (id) DO UPDATE SET valid_at = excluded.valid_at",
            &[&ts(u.valid_at)],
        ))
        .map_err(db(loc, op))?;
        commit(tx, loc, op)
    }

    fn prune_cached_actions(&mut self, before: DateTime<Utc>) -> Result<u64> {
        let op = "prune cached instance actions";
        let (client, loc) = self.parts();
        let tx = write_tx(client, loc, op)?;
        let n =
            wait(tx.execute("DELETE FROM instance_actions WHERE seen_at < $1", &[&ts(before)])).map_err(db(loc, op))?;
        commit(tx, loc, op)?;
        Ok(n)
    }

    fn message_counts(&self) -> Result<Vec<MessageCount>> {
        let op = "count messages";
        let rows = self.query(
            op,
            "SELECT kind, state, COUNT(*)::BIGINT, COALESCE(SUM(record_count), 0)::BIGINT FROM messages GROUP BY kind, state ORDER BY kind, state",
            &[],
        )?;
        rows_to(&self.loc, op, rows, |r| {
            Ok(MessageCount {
                kind: get(r, 0)?,
                state: get_state(r, 1)?,
                messages: get_ou64(r, 2)?.unwrap_or(0),
                records: get_ou64(r, 3)?.unwrap_or(0),
            })
        })
    }
}
