//! SQLite backend of the ledger (bundled SQLite via rusqlite): schema and migrations
//! (`PRAGMA user_version`), WAL mode, busy timeout, 0600 file creation, and every
//! [`Store`] operation. Writes use `BEGIN IMMEDIATE` so two processes never deadlock.

use crate::rules::{decide, invalid, validate_snapshot};
use crate::*;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params, params_from_iter};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

/// Schema migrations; `PRAGMA user_version` = number applied. Only ever append.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    command     TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    outcome     TEXT CHECK (outcome IN ('succeeded', 'partial', 'failed')),
    detail      TEXT,
    window_from TEXT,
    window_to   TEXT
);
CREATE TABLE checkpoints (
    project_id TEXT NOT NULL,
    kind       TEXT NOT NULL,
    checkpoint TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    run_id     INTEGER REFERENCES runs(id),
    PRIMARY KEY (project_id, kind)
);
CREATE TABLE snapshots (
    kind          TEXT NOT NULL,
    key           TEXT NOT NULL,
    project_id    TEXT NOT NULL,
    vo            TEXT,
    site          TEXT NOT NULL,
    measured_at   TEXT NOT NULL,
    month         TEXT NOT NULL,
    start_time    TEXT,
    end_time      TEXT,
    wall_seconds  INTEGER,
    cpu_seconds   INTEGER,
    status        TEXT,
    body          TEXT NOT NULL,
    body_sha256   TEXT NOT NULL,
    first_seen_at TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    run_id        INTEGER REFERENCES runs(id),
    PRIMARY KEY (kind, key)
);
CREATE INDEX snapshots_by_project ON snapshots (kind, project_id);
CREATE INDEX snapshots_by_measured ON snapshots (measured_at);
CREATE INDEX snapshots_by_month ON snapshots (month, vo);
CREATE TABLE messages (
    element         TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    record_count    INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    run_id          INTEGER REFERENCES runs(id),
    state           TEXT NOT NULL CHECK (state IN ('spooled', 'sent', 'acknowledged', 'quarantined')),
    ams_id          TEXT,
    sent_at         TEXT,
    acknowledged_at TEXT,
    quarantined_at  TEXT,
    reason          TEXT
);
CREATE INDEX messages_by_state ON messages (state, created_at);
CREATE TABLE message_records (
    element     TEXT NOT NULL REFERENCES messages(element),
    kind        TEXT NOT NULL,
    key         TEXT NOT NULL,
    measured_at TEXT NOT NULL,
    body_sha256 TEXT NOT NULL,
    PRIMARY KEY (element, key)
);
CREATE INDEX message_records_by_record ON message_records (kind, key);
"#,
    r#"
CREATE TABLE run_warnings (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id  INTEGER NOT NULL REFERENCES runs(id),
    at      TEXT NOT NULL,
    level   TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX run_warnings_by_run ON run_warnings (run_id, id);
CREATE INDEX runs_by_command ON runs (command, id);
"#,
    r#"
CREATE TABLE instance_actions (
    server_id  TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    updated    TEXT NOT NULL,
    fetched_at TEXT NOT NULL,
    seen_at    TEXT NOT NULL,
    actions    TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX instance_actions_by_seen ON instance_actions (seen_at);
"#,
    r#"
CREATE TABLE listed_servers (
    server_id  TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    body       TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE listed_servers_state (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    valid_at TEXT NOT NULL
);
"#,
    r#"
ALTER TABLE snapshots ADD COLUMN record_fp TEXT;
CREATE TABLE instance_actions_by_project (
    server_id  TEXT NOT NULL,
    project_id TEXT NOT NULL,
    updated    TEXT NOT NULL,
    fetched_at TEXT NOT NULL,
    seen_at    TEXT NOT NULL,
    actions    TEXT NOT NULL,
    PRIMARY KEY (project_id, server_id)
) WITHOUT ROWID;
INSERT INTO instance_actions_by_project (server_id, project_id, updated, fetched_at, seen_at, actions)
    SELECT server_id, project_id, updated, fetched_at, seen_at, actions FROM instance_actions;
DROP TABLE instance_actions;
ALTER TABLE instance_actions_by_project RENAME TO instance_actions;
CREATE UNIQUE INDEX instance_actions_by_server ON instance_actions (server_id);
CREATE INDEX instance_actions_by_seen ON instance_actions (seen_at);
"#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// How long a writer waits for another connection's write lock (default 10 s).
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions { busy_timeout: Duration::from_secs(10) }
    }
}

pub struct SqliteStore {
    conn: Connection,
    loc: String,
    path: std::path::PathBuf,
}

fn db<'a>(loc: &'a str, op: &'a str) -> impl Fn(rusqlite::Error) -> Error + 'a {
    move |e| Error::Backend { location: loc.to_string(), op: op.to_string(), source: Box::new(e) }
}

fn ts(t: DateTime<Utc>) -> String {
    format_time(t)
}

fn ots(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(format_time)
}

fn conv_err(idx: usize, msg: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, msg.into())
}

fn get_time(row: &Row, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    let s: String = row.get(idx)?;
    parse_time(&s).ok_or_else(|| conv_err(idx, format!("not an RFC 3339 time: {s:?}")))
}

fn get_otime(row: &Row, idx: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let s: Option<String> = row.get(idx)?;
    s.map(|s| parse_time(&s).ok_or_else(|| conv_err(idx, format!("not an RFC 3339 time: {s:?}")))).transpose()
}

fn get_ou64(row: &Row, idx: usize) -> rusqlite::Result<Option<u64>> {
    let v: Option<i64> = row.get(idx)?;
    v.map(|v| u64::try_from(v).map_err(|_| conv_err(idx, format!("negative count {v}")))).transpose()
}

fn get_state(row: &Row, idx: usize) -> rusqlite::Result<MessageState> {
    let s: String = row.get(idx)?;
    MessageState::parse(&s).ok_or_else(|| conv_err(idx, format!("unknown message state {s:?}")))
}

fn opt_i64(loc: &str, op: &str, what: &str, v: Option<u64>) -> Result<Option<i64>> {
    v.map(|v| i64::try_from(v).map_err(|_| invalid(loc, op, format!("{what} {v} is too large")))).transpose()
}

const SNAPSHOT_COLS: &str = "s.kind, s.key, s.project_id, s.vo, s.site, s.measured_at, s.month, s.start_time, \
     s.end_time, s.wall_seconds, s.cpu_seconds, s.status, s.body, s.body_sha256, s.first_seen_at, s.updated_at, s.run_id, s.record_fp";

fn snapshot_row(row: &Row) -> rusqlite::Result<StoredSnapshot> {
    Ok(StoredSnapshot {
        snapshot: Snapshot {
            kind: row.get(0)?,
            key: row.get(1)?,
            project_id: row.get(2)?,
            vo: row.get(3)?,
            site: row.get(4)?,
            measured_at: get_time(row, 5)?,
            month: Some(row.get(6)?),
            start_time: get_otime(row, 7)?,
            end_time: get_otime(row, 8)?,
            wall_seconds: get_ou64(row, 9)?,
            cpu_seconds: get_ou64(row, 10)?,
            status: row.get(11)?,
            body: row.get(12)?,
            fingerprint: row.get(17)?,
        },
        body_sha256: row.get(13)?,
        first_seen_at: get_time(row, 14)?,
        updated_at: get_time(row, 15)?,
        run_id: row.get::<_, Option<i64>>(16)?.map(RunId),
    })
}

const MESSAGE_COLS: &str = "element, kind, record_count, created_at, run_id, state, ams_id, sent_at, \
     acknowledged_at, quarantined_at, reason";

fn message_row(row: &Row) -> rusqlite::Result<Message> {
    Ok(Message {
        element: row.get(0)?,
        kind: row.get(1)?,
        record_count: get_ou64(row, 2)?.unwrap_or(0),
        created_at: get_time(row, 3)?,
        run_id: row.get::<_, Option<i64>>(4)?.map(RunId),
        state: get_state(row, 5)?,
        ams_id: row.get(6)?,
        sent_at: get_otime(row, 7)?,
        acknowledged_at: get_otime(row, 8)?,
        quarantined_at: get_otime(row, 9)?,
        reason: row.get(10)?,
    })
}

const RUN_COLS: &str = "id, command, started_at, finished_at, outcome, detail, window_from, window_to";

fn run_row(row: &Row) -> rusqlite::Result<Run> {
    let outcome: Option<String> = row.get(4)?;
    Ok(Run {
        id: RunId(row.get(0)?),
        command: row.get(1)?,
        started_at: get_time(row, 2)?,
        finished_at: get_otime(row, 3)?,
        outcome: outcome
            .map(|o| RunOutcome::parse(&o).ok_or_else(|| conv_err(4, format!("unknown outcome {o:?}"))))
            .transpose()?,
        detail: row.get(5)?,
        window_from: get_otime(row, 6)?,
        window_to: get_otime(row, 7)?,
    })
}

/// WHERE clause (over alias `s`) and its parameters for a snapshot filter.
fn filter_sql(f: &SnapshotFilter) -> (String, Vec<String>) {
    let mut clauses = vec!["1 = 1".to_string()];
    let mut ps = Vec::new();
    let mut add = |clause: &str, v: String| {
        ps.push(v);
        clauses.push(format!("{clause} ?{}", ps.len()));
    };
    if let Some(t) = f.from {
        add("s.measured_at >=", ts(t));
    }
    if let Some(t) = f.to {
        add("s.measured_at <", ts(t));
    }
    if let Some(p) = &f.project {
        add("s.project_id =", p.clone());
    }
    if let Some(k) = &f.kind {
        add("s.kind =", k.clone());
    }
    if let Some(v) = &f.vo {
        add("s.vo =", v.clone());
    }
    if let Some(m) = &f.month {
        add("s.month =", m.clone());
    }
    (clauses.join(" AND "), ps)
}

impl SqliteStore {
    /// Open or create the ledger file (0600 on creation), set WAL, busy timeout, migrate.
    pub fn open(path: &Path, opts: SqliteOptions) -> Result<SqliteStore> {
        let loc = path.display().to_string();
        create_private(path).map_err(|e| Error::Io { location: loc.clone(), op: "create".into(), source: e })?;
        let mut conn = Connection::open(path).map_err(db(&loc, "open"))?;
        conn.busy_timeout(opts.busy_timeout).map_err(db(&loc, "set busy timeout"))?;
        let mode: String =
            conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(db(&loc, "set WAL journal mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(invalid(&loc, "set WAL journal mode", format!("SQLite kept journal mode {mode:?}")));
        }
        conn.pragma_update(None, "synchronous", "FULL").map_err(db(&loc, "set synchronous"))?;
        conn.pragma_update(None, "foreign_keys", true).map_err(db(&loc, "enable foreign keys"))?;
        migrate(&mut conn, &loc)?;
        Ok(SqliteStore { conn, loc, path: path.to_owned() })
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<i64> {
        self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(db(&self.loc, "read schema version"))
    }

    fn write_tx(&mut self, op: &str) -> Result<rusqlite::Transaction<'_>> {
        self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db(&self.loc, op))
    }

    fn messages_where(&self, op: &str, clause: &str, p: &[&str]) -> Result<Vec<Message>> {
        let sql = format!("SELECT {MESSAGE_COLS} FROM messages WHERE {clause} ORDER BY created_at, element");
        let mut st = self.conn.prepare_cached(&sql).map_err(db(&self.loc, op))?;
        st.query_map(params_from_iter(p), message_row).and_then(|rows| rows.collect()).map_err(db(&self.loc, op))
    }

    fn snapshots_where(&self, op: &str, f: &SnapshotFilter, extra: &str) -> Result<Vec<StoredSnapshot>> {
        let (clause, ps) = filter_sql(f);
        // With a project, its index finds the rows and they are sorted after: ordered by the
        // primary key, SQLite would walk every row of the kind to keep the project's (a run
        // reads each project's storage snapshots: that was quadratic in the ledger's size).
        let order = if f.project.is_some() { "+s.kind, +s.key" } else { "s.kind, s.key" };
        let sql = format!("SELECT {SNAPSHOT_COLS} FROM snapshots s WHERE {clause} {extra} ORDER BY {order}");
        let mut st = self.conn.prepare_cached(&sql).map_err(db(&self.loc, op))?;
        st.query_map(params_from_iter(ps), snapshot_row).and_then(|rows| rows.collect()).map_err(db(&self.loc, op))
    }

    fn transition(&mut self, element: &str, to: MessageState, set: &str, p: &[&str]) -> Result<()> {
        let op = format!("mark message {to}");
        let loc = self.loc.clone();
        let tx = self.write_tx(&op)?;
        let state = tx
            .query_row("SELECT state FROM messages WHERE element = ?1", [element], |r| get_state(r, 0))
            .optional()
            .map_err(db(&loc, &op))?
            .ok_or_else(|| Error::UnknownMessage { location: loc.clone(), element: element.to_string() })?;
        if !state.can_go_to(to) {
            return Err(Error::InvalidTransition { location: loc, element: element.to_string(), from: state, to });
        }
        let now = ts(Utc::now());
        let mut vals: Vec<&str> = vec![element, to.as_str(), &now];
        vals.extend_from_slice(p);
        tx.execute(&format!("UPDATE messages SET state = ?2, {set} WHERE element = ?1"), params_from_iter(vals))
            .map_err(db(&loc, &op))?;
        tx.commit().map_err(db(&loc, &op))
    }
}

#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(not(unix))]
fn create_private(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

fn migrate(conn: &mut Connection, loc: &str) -> Result<()> {
    let op = "migrate schema";
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db(loc, op))?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(db(loc, op))?;
    if found > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew { location: loc.to_string(), found, supported: SCHEMA_VERSION });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let step = format!("migrate schema to version {}", i + 1);
        tx.execute_batch(sql).map_err(db(loc, &step))?;
        tx.pragma_update(None, "user_version", (i + 1) as i64).map_err(db(loc, &step))?;
    }
    tx.commit().map_err(db(loc, op))
}

/// The stored (measured_at, body_sha256, record_fp) of one snapshot.
fn stored_version(
    conn: &Connection,
    loc: &str,
    op: &str,
    kind: &str,
    key: &str,
) -> Result<Option<(String, String, Option<String>)>> {
    conn.prepare_cached("SELECT measured_at, body_sha256, record_fp FROM snapshots WHERE kind = ?1 AND key = ?2")
        .and_then(|mut st| st.query_row([kind, key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).optional())
        .map_err(db(loc, op))
}

/// An unchanged snapshot measured at `measured`: its `measured_at` moves forward, if older.
fn touch(
    conn: &Connection,
    loc: &str,
    kind: &str,
    key: &str,
    measured: &str,
    now: &str,
    run: Option<i64>,
) -> Result<()> {
    conn.prepare_cached(
        "UPDATE snapshots SET measured_at = ?3, updated_at = ?4, run_id = COALESCE(?5, run_id)
         WHERE kind = ?1 AND key = ?2 AND measured_at < ?3",
    )
    .and_then(|mut st| st.execute(params![kind, key, measured, now, run]))
    .map_err(db(loc, "upsert snapshot"))?;
    Ok(())
}

fn upsert(conn: &Connection, loc: &str, s: &Snapshot, run: Option<RunId>) -> Result<Upsert> {
    let op = "upsert snapshot";
    validate_snapshot(loc, op, s)?;
    let wall = opt_i64(loc, op, "wall_seconds", s.wall_seconds)?;
    let cpu = opt_i64(loc, op, "cpu_seconds", s.cpu_seconds)?;
    let measured = ts(s.measured_at);
    let sha = s.body_sha256();
    let stored = stored_version(conn, loc, op, &s.kind, &s.key)?;
    let outcome = decide(stored.as_ref().map(|(m, h, _)| (m.as_str(), h.as_str())), measured.as_str(), &sha);
    let now = ts(Utc::now());
    let run = run.map(|r| r.0);
    match outcome {
        Upsert::KeptNewer => {}
        Upsert::Unchanged => {
            touch(conn, loc, &s.kind, &s.key, &measured, &now, run)?;
            // The same body: a fingerprint given for it is stored (a ledger written before
            // fingerprints, or by a build whose fingerprint version differs, gains it here).
            if let Some(fp) = &s.fingerprint {
                conn.prepare_cached(
                    "UPDATE snapshots SET record_fp = ?3 WHERE kind = ?1 AND key = ?2 AND record_fp IS NOT ?3",
                )
                .and_then(|mut st| st.execute(params![s.kind, s.key, fp]))
                .map_err(db(loc, op))?;
            }
        }
        Upsert::Inserted | Upsert::Replaced => {
            let month = s.month.clone().unwrap_or_else(|| month_of(s.measured_at));
            conn.prepare_cached(
                "INSERT INTO snapshots (kind, key, project_id, vo, site, measured_at, month, start_time, end_time,
                     wall_seconds, cpu_seconds, status, body, body_sha256, first_seen_at, updated_at, run_id, record_fp)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15, ?16, ?17)
                 ON CONFLICT (kind, key) DO UPDATE SET project_id = excluded.project_id, vo = excluded.vo,
                     site = excluded.site, measured_at = excluded.measured_at, month = excluded.month,
                     start_time = excluded.start_time, end_time = excluded.end_time,
                     wall_seconds = excluded.wall_seconds, cpu_seconds = excluded.cpu_seconds,
                     status = excluded.status, body = excluded.body, body_sha256 = excluded.body_sha256,
                     updated_at = excluded.updated_at, run_id = excluded.run_id, record_fp = excluded.record_fp",
            )
            .and_then(|mut st| {
                st.execute(params![
                    s.kind,
                    s.key,
                    s.project_id,
                    s.vo,
                    s.site,
                    measured,
                    month,
                    ots(s.start_time),
                    ots(s.end_time),
                    wall,
                    cpu,
                    s.status,
                    s.body,
                    sha,
                    now,
                    run,
                    s.fingerprint
                ])
            })
            .map_err(db(loc, op))?;
        }
    }
    Ok(outcome)
}

fn advance(
    conn: &Connection,
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
    let to = ts(to);
    let changed = conn
        .execute(
            "INSERT INTO checkpoints (project_id, kind, checkpoint, updated_at, run_id) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (project_id, kind) DO UPDATE SET checkpoint = excluded.checkpoint,
                 updated_at = excluded.updated_at, run_id = excluded.run_id
             WHERE excluded.checkpoint > checkpoints.checkpoint",
            params![project, kind, to, ts(Utc::now()), run.map(|r| r.0)],
        )
        .map_err(db(loc, op))?;
    Ok(changed > 0)
}

fn insert_message(conn: &Connection, loc: &str, m: &NewMessage, run: Option<RunId>) -> Result<()> {
    let op = "record message";
    if m.element.is_empty() || m.kind.is_empty() {
        return Err(invalid(loc, op, "empty spool element name or kind"));
    }
    let exists = conn
        .prepare_cached("SELECT 1 FROM messages WHERE element = ?1")
        .and_then(|mut st| st.query_row([&m.element], |_| Ok(())).optional())
        .map_err(db(loc, op))?;
    if exists.is_some() {
        return Err(invalid(loc, op, format!("spool element {:?} is already recorded", m.element)));
    }
    let mut keys = std::collections::HashSet::new();
    if let Some(dup) = m.records.iter().find(|r| !keys.insert(r.key.as_str())) {
        return Err(invalid(loc, op, format!("message {:?} lists record {:?} twice", m.element, dup.key)));
    }
    conn.prepare_cached(
        "INSERT INTO messages (element, kind, record_count, created_at, run_id, state) VALUES (?1, ?2, ?3, ?4, ?5, 'spooled')",
    )
    .and_then(|mut st| st.execute(params![m.element, m.kind, m.records.len() as i64, ts(m.created_at), run.map(|r| r.0)]))
    .map_err(db(loc, op))?;
    let mut st = conn
        .prepare_cached(
            "INSERT INTO message_records (element, kind, key, measured_at, body_sha256) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(db(loc, op))?;
    for r in &m.records {
        st.execute(params![m.element, m.kind, r.key, ts(r.measured_at), r.body_sha256]).map_err(db(loc, op))?;
    }
    Ok(())
}

impl Store for SqliteStore {
    fn location(&self) -> &str {
        &self.loc
    }

    fn begin_run(&mut self, run: &NewRun) -> Result<RunId> {
        let op = "begin run";
        if run.command.is_empty() {
            return Err(invalid(&self.loc, op, "empty command"));
        }
        self.conn
            .execute(
                "INSERT INTO runs (command, started_at, window_from, window_to) VALUES (?1, ?2, ?3, ?4)",
                params![run.command, ts(Utc::now()), ots(run.window_from), ots(run.window_to)],
            )
            .map_err(db(&self.loc, op))?;
        Ok(RunId(self.conn.last_insert_rowid()))
    }

    fn finish_run(&mut self, id: RunId, outcome: RunOutcome, detail: Option<&str>) -> Result<()> {
        let op = "finish run";
        let loc = self.loc.clone();
        let tx = self.write_tx(op)?;
        let current: Option<Option<String>> = tx
            .query_row("SELECT outcome FROM runs WHERE id = ?1", [id.0], |r| r.get(0))
            .optional()
            .map_err(db(&loc, op))?;
        match current {
            None => {
                return Err(Error::UnknownRun { location: loc, run: id.0 });
            }
            Some(Some(done)) => {
                return Err(Error::RunAlreadyFinished { location: loc, run: id.0, outcome: done });
            }
            Some(None) => {}
        }
        tx.execute(
            "UPDATE runs SET finished_at = ?2, outcome = ?3, detail = ?4 WHERE id = ?1",
            params![id.0, ts(Utc::now()), outcome.as_str(), detail],
        )
        .map_err(db(&loc, op))?;
        tx.commit().map_err(db(&loc, op))
    }

    fn run(&self, id: RunId) -> Result<Option<Run>> {
        self.conn
            .query_row(&format!("SELECT {RUN_COLS} FROM runs WHERE id = ?1"), [id.0], run_row)
            .optional()
            .map_err(db(&self.loc, "read run"))
    }

    fn runs(&self, limit: usize) -> Result<Vec<Run>> {
        let op = "list runs";
        let mut st = self
            .conn
            .prepare(&format!("SELECT {RUN_COLS} FROM runs ORDER BY id DESC LIMIT ?1"))
            .map_err(db(&self.loc, op))?;
        st.query_map([limit.min(i64::MAX as usize) as i64], run_row)
            .and_then(|rows| rows.collect())
            .map_err(db(&self.loc, op))
    }

    fn checkpoint(&self, project: &str, kind: &str) -> Result<Option<DateTime<Utc>>> {
        self.conn
            .query_row("SELECT checkpoint FROM checkpoints WHERE project_id = ?1 AND kind = ?2", [project, kind], |r| {
                get_time(r, 0)
            })
            .optional()
            .map_err(db(&self.loc, "read checkpoint"))
    }

    fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        let op = "list checkpoints";
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT project_id, kind, checkpoint, updated_at FROM checkpoints ORDER BY project_id, kind",
            )
            .map_err(db(&self.loc, op))?;
        st.query_map([], |r| {
            Ok(Checkpoint {
                project_id: r.get(0)?,
                kind: r.get(1)?,
                checkpoint: get_time(r, 2)?,
                updated_at: get_time(r, 3)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(db(&self.loc, op))
    }

    fn advance_checkpoint(&mut self, project: &str, kind: &str, to: DateTime<Utc>, run: Option<RunId>) -> Result<bool> {
        let loc = self.loc.clone();
        let tx = self.write_tx("advance checkpoint")?;
        let moved = advance(&tx, &loc, project, kind, to, run)?;
        tx.commit().map_err(db(&loc, "advance checkpoint"))?;
        Ok(moved)
    }

    fn reset_checkpoint(&mut self, project: &str, kind: &str, to: Option<DateTime<Utc>>) -> Result<()> {
        let op = "reset checkpoint";
        match to {
            None => self.conn.execute("DELETE FROM checkpoints WHERE project_id = ?1 AND kind = ?2", [project, kind]),
            Some(t) => self.conn.execute(
                "INSERT INTO checkpoints (project_id, kind, checkpoint, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (project_id, kind) DO UPDATE SET checkpoint = excluded.checkpoint,
                     updated_at = excluded.updated_at, run_id = NULL",
                params![project, kind, ts(t), ts(Utc::now())],
            ),
        }
        .map_err(db(&self.loc, op))?;
        Ok(())
    }

    fn upsert_snapshot(&mut self, s: &Snapshot, run: Option<RunId>) -> Result<Upsert> {
        let loc = self.loc.clone();
        let tx = self.write_tx("upsert snapshot")?;
        let u = upsert(&tx, &loc, s, run)?;
        tx.commit().map_err(db(&loc, "upsert snapshot"))?;
        Ok(u)
    }

    fn preview_snapshots(&self, snapshots: &[Snapshot]) -> Result<Vec<Upsert>> {
        let op = "preview snapshots";
        // Later entries for the same key see earlier ones, as in a real commit.
        let mut pending: std::collections::HashMap<(&str, &str), (String, String)> = Default::default();
        snapshots
            .iter()
            .map(|s| {
                validate_snapshot(&self.loc, op, s)?;
                let k = (s.kind.as_str(), s.key.as_str());
                let stored = match pending.get(&k) {
                    Some(v) => Some(v.clone()),
                    None => stored_version(&self.conn, &self.loc, op, &s.kind, &s.key)?.map(|(m, h, _)| (m, h)),
                };
                let (m, sha) = (ts(s.measured_at), s.body_sha256());
                let u = decide(stored.as_ref().map(|(m, h)| (m.as_str(), h.as_str())), m.as_str(), &sha);
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

    fn preview(&self, snapshots: &[Snapshot]) -> Result<Vec<Preview>> {
        let op = "preview snapshots";
        // The stored versions of each (kind, project) at hand in one statement: a project's
        // rows were written together, so this reads their pages once instead of seeking each
        // key. A key stored under another project is looked up alone.
        type Version = (String, String, Option<String>);
        let mut stored: HashMap<&str, HashMap<String, Version>> = HashMap::new();
        let groups: BTreeSet<(&str, &str)> =
            snapshots.iter().map(|s| (s.kind.as_str(), s.project_id.as_str())).collect();
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT key, measured_at, body_sha256, record_fp FROM snapshots WHERE kind = ?1 AND project_id = ?2",
            )
            .map_err(db(&self.loc, op))?;
        for (kind, project) in groups {
            let rows = st
                .query_map([kind, project], |r| Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))))
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(db(&self.loc, op))?;
            stored.entry(kind).or_default().extend(rows);
        }
        // Later entries for the same key see earlier ones, as in a real commit.
        let mut pending: HashMap<(&str, &str), Version> = HashMap::new();
        let mut last_measured: Option<(DateTime<Utc>, String)> = None;
        snapshots
            .iter()
            .map(|s| {
                validate_snapshot(&self.loc, op, s)?;
                let k = (s.kind.as_str(), s.key.as_str());
                let before = match pending.get(&k) {
                    Some(v) => Some(v.clone()),
                    None => match stored.get(k.0).and_then(|m| m.get(k.1)) {
                        Some(v) => Some(v.clone()),
                        None => stored_version(&self.conn, &self.loc, op, &s.kind, &s.key)?,
                    },
                };
                let m = match &last_measured {
                    Some((t, m)) if *t == s.measured_at => m.clone(),
                    _ => {
                        let m = ts(s.measured_at);
                        last_measured = Some((s.measured_at, m.clone()));
                        m
                    }
                };
                let sha = s.body_sha256();
                let upsert = decide(before.as_ref().map(|(m, h, _)| (m.as_str(), h.as_str())), m.as_str(), &sha);
                let writes = match (upsert, &before) {
                    // The same body: written if measured later, or to store a new fingerprint.
                    (Upsert::Unchanged, Some((old, _, fp))) => {
                        *old < m || (s.fingerprint.is_some() && *fp != s.fingerprint)
                    }
                    (Upsert::KeptNewer, _) => false,
                    _ => true,
                };
                let next = match (upsert, before) {
                    (Upsert::Inserted | Upsert::Replaced, _) => (m, sha, s.fingerprint.clone()),
                    (Upsert::Unchanged, Some((old, h, fp))) => (old.max(m), h, s.fingerprint.clone().or(fp)),
                    (_, Some(v)) => v,
                    (_, None) => (m, sha, s.fingerprint.clone()), // not reached: only Inserted has nothing stored
                };
                pending.insert(k, next);
                Ok(Preview { upsert, writes })
            })
            .collect()
    }

    fn fingerprints(&self, kind: &str, project: &str) -> Result<HashMap<String, StoredFingerprint>> {
        let op = "read record fingerprints";
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT key, measured_at, record_fp FROM snapshots
                 WHERE kind = ?1 AND project_id = ?2 AND record_fp IS NOT NULL",
            )
            .map_err(db(&self.loc, op))?;
        st.query_map([kind, project], |r| {
            Ok((r.get::<_, String>(0)?, StoredFingerprint { measured_at: get_time(r, 1)?, fingerprint: r.get(2)? }))
        })
        .and_then(|rows| rows.collect())
        .map_err(db(&self.loc, op))
    }

    fn commit_project(&mut self, c: &ProjectCommit) -> Result<CommitReport> {
        let op = "commit project";
        let loc = self.loc.clone();
        if let Some(s) = c.snapshots.iter().find(|s| s.project_id != c.project_id) {
            return Err(invalid(
                &loc,
                op,
                format!("snapshot {}/{} belongs to project {:?}, not {:?}", s.kind, s.key, s.project_id, c.project_id),
            ));
        }
        let tx = self.write_tx(op)?;
        let mut report = CommitReport::default();
        for s in &c.snapshots {
            report.upserts.push(upsert(&tx, &loc, s, c.run)?);
        }
        if !c.unchanged.is_empty() {
            let now = ts(Utc::now());
            for u in &c.unchanged {
                touch(&tx, &loc, &u.kind, &u.key, &ts(u.measured_at), &now, c.run.map(|r| r.0))?;
            }
        }
        for m in &c.messages {
            insert_message(&tx, &loc, m, c.run)?;
        }
        report.messages = c.messages.len();
        if let Some(to) = c.checkpoint_to {
            report.checkpoint_advanced = advance(&tx, &loc, &c.project_id, &c.checkpoint_kind, to, c.run)?;
        }
        tx.commit().map_err(db(&loc, op))?;
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
        self.conn
            .query_row(
                &format!("SELECT {SNAPSHOT_COLS} FROM snapshots s WHERE s.kind = ?1 AND s.key = ?2"),
                [kind, key],
                snapshot_row,
            )
            .optional()
            .map_err(db(&self.loc, "read snapshot"))
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
            if on { c.to_string() } else { "NULL".to_string() }
        };
        let group = if cols.is_empty() { String::new() } else { format!("GROUP BY {0} ORDER BY {0}", cols.join(", ")) };
        let sql = format!(
            "SELECT {}, {}, {}, COUNT(*), COALESCE(SUM(s.wall_seconds), 0), COALESCE(SUM(s.cpu_seconds), 0)
             FROM snapshots s WHERE {clause} {group}",
            pick(by.vo, "s.vo"),
            pick(by.project, "s.project_id"),
            pick(by.month, "s.month"),
        );
        let mut st = self.conn.prepare(&sql).map_err(db(&self.loc, op))?;
        let rows: Vec<UsageRow> = st
            .query_map(params_from_iter(ps), |r| {
                Ok(UsageRow {
                    vo: r.get(0)?,
                    project_id: r.get(1)?,
                    month: r.get(2)?,
                    records: get_ou64(r, 3)?.unwrap_or(0),
                    wall_seconds: get_ou64(r, 4)?.unwrap_or(0),
                    cpu_seconds: get_ou64(r, 5)?.unwrap_or(0),
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(db(&self.loc, op))?;
        Ok(rows.into_iter().filter(|r| r.records > 0).collect())
    }

    fn seen(&self, kind: &str, project: &str) -> Result<Vec<SeenKey>> {
        let op = "list seen keys";
        let mut st = self
            .conn
            .prepare_cached(
                // `+key`: sort the project's rows (found through `snapshots_by_project`) rather
                // than walk every row of the kind in key order, which SQLite otherwise picks.
                "SELECT key, measured_at, status, end_time FROM snapshots WHERE kind = ?1 AND project_id = ?2 ORDER BY +key",
            )
            .map_err(db(&self.loc, op))?;
        st.query_map([kind, project], |r| {
            Ok(SeenKey { key: r.get(0)?, measured_at: get_time(r, 1)?, status: r.get(2)?, end_time: get_otime(r, 3)? })
        })
        .and_then(|rows| rows.collect())
        .map_err(db(&self.loc, op))
    }

    fn record_message(&mut self, m: &NewMessage, run: Option<RunId>) -> Result<()> {
        let loc = self.loc.clone();
        let tx = self.write_tx("record message")?;
        insert_message(&tx, &loc, m, run)?;
        tx.commit().map_err(db(&loc, "record message"))
    }

    fn mark_sent(&mut self, element: &str, ams_id: &str) -> Result<()> {
        if ams_id.is_empty() {
            return Err(invalid(&self.loc, "mark message sent", format!("empty AMS message id for {element:?}")));
        }
        self.transition(element, MessageState::Sent, "sent_at = ?3, ams_id = ?4", &[ams_id])
    }

    fn mark_acknowledged(&mut self, element: &str) -> Result<()> {
        self.transition(element, MessageState::Acknowledged, "acknowledged_at = ?3", &[])
    }

    fn quarantine(&mut self, element: &str, reason: &str) -> Result<()> {
        self.transition(element, MessageState::Quarantined, "quarantined_at = ?3, reason = ?4", &[reason])
    }

    fn requeue(&mut self, element: &str) -> Result<()> {
        let op = "requeue message";
        let loc = self.loc.clone();
        let tx = self.write_tx(op)?;
        let state = tx
            .query_row("SELECT state FROM messages WHERE element = ?1", [element], |r| get_state(r, 0))
            .optional()
            .map_err(db(&loc, op))?
            .ok_or_else(|| Error::UnknownMessage { location: loc.clone(), element: element.to_string() })?;
        if state != MessageState::Quarantined {
            return Err(Error::InvalidTransition {
                location: loc,
                element: element.to_string(),
                from: state,
                to: MessageState::Spooled,
            });
        }
        tx.execute(
            "UPDATE messages SET state = 'spooled', ams_id = NULL, sent_at = NULL, \
             acknowledged_at = NULL, quarantined_at = NULL, reason = NULL WHERE element = ?1",
            [element],
        )
        .map_err(db(&loc, op))?;
        tx.commit().map_err(db(&loc, op))
    }

    fn run_lock(&mut self, kind: &str, wait: std::time::Duration) -> Result<crate::RunLock, crate::LockError> {
        let mut file = self.path.as_os_str().to_owned();
        file.push(format!(".{kind}.lock"));
        crate::runlock::lock_file(Path::new(&file), &format!("ledger {} ({kind} runs)", self.loc), wait)
    }

    fn message(&self, element: &str) -> Result<Option<Message>> {
        Ok(self.messages_where("read message", "element = ?1", &[element])?.pop())
    }

    fn pending(&self) -> Result<Vec<Message>> {
        self.messages_where("list pending messages", "state IN ('spooled', 'sent')", &[])
    }

    fn messages_in_state(&self, state: MessageState) -> Result<Vec<Message>> {
        self.messages_where("list messages", "state = ?1", &[state.as_str()])
    }

    fn message_records(&self, element: &str) -> Result<Vec<RecordRef>> {
        let op = "list message records";
        if self.message(element)?.is_none() {
            return Err(Error::UnknownMessage { location: self.loc.clone(), element: element.to_string() });
        }
        let mut st = self
            .conn
            .prepare_cached("SELECT key, measured_at, body_sha256 FROM message_records WHERE element = ?1 ORDER BY key")
            .map_err(db(&self.loc, op))?;
        st.query_map([element], |r| {
            Ok(RecordRef { key: r.get(0)?, measured_at: get_time(r, 1)?, body_sha256: r.get(2)? })
        })
        .and_then(|rows| rows.collect())
        .map_err(db(&self.loc, op))
    }

    fn deliveries(&self, kind: &str, key: &str) -> Result<Vec<Delivery>> {
        let op = "list deliveries";
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT r.element, m.state, r.measured_at, r.body_sha256, COALESCE(r.body_sha256 = s.body_sha256, 0),
                        m.ams_id, m.sent_at
                 FROM message_records r JOIN messages m ON m.element = r.element
                 LEFT JOIN snapshots s ON s.kind = r.kind AND s.key = r.key
                 WHERE r.kind = ?1 AND r.key = ?2 ORDER BY m.created_at, r.element",
            )
            .map_err(db(&self.loc, op))?;
        st.query_map([kind, key], |r| {
            Ok(Delivery {
                element: r.get(0)?,
                state: get_state(r, 1)?,
                measured_at: get_time(r, 2)?,
                body_sha256: r.get(3)?,
                is_current: r.get(4)?,
                ams_id: r.get(5)?,
                sent_at: get_otime(r, 6)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(db(&self.loc, op))
    }
    fn add_run_warning(&mut self, run: RunId, level: &str, message: &str) -> Result<()> {
        let op = "add run warning";
        if level.is_empty() || message.is_empty() {
            return Err(invalid(&self.loc, op, "empty level or message"));
        }
        if self.run(run)?.is_none() {
            return Err(Error::UnknownRun { location: self.loc.clone(), run: run.0 });
        }
        self.conn
            .execute(
                "INSERT INTO run_warnings (run_id, at, level, message) VALUES (?1, ?2, ?3, ?4)",
                params![run.0, ts(Utc::now()), level, message],
            )
            .map_err(db(&self.loc, op))?;
        Ok(())
    }

    fn run_warnings(&self, run: RunId) -> Result<Vec<RunWarning>> {
        let op = "list run warnings";
        let mut st = self
            .conn
            .prepare_cached("SELECT run_id, at, level, message FROM run_warnings WHERE run_id = ?1 ORDER BY id")
            .map_err(db(&self.loc, op))?;
        st.query_map([run.0], |r| {
            Ok(RunWarning { run: RunId(r.get(0)?), at: get_time(r, 1)?, level: r.get(2)?, message: r.get(3)? })
        })
        .and_then(|rows| rows.collect())
        .map_err(db(&self.loc, op))
    }

    fn last_run(&self, command: &str, outcome: Option<RunOutcome>) -> Result<Option<Run>> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {RUN_COLS} FROM runs WHERE command = ?1 AND (?2 IS NULL OR outcome = ?2) ORDER BY id DESC LIMIT 1"
                ),
                params![command, outcome.map(RunOutcome::as_str)],
                run_row,
            )
            .optional()
            .map_err(db(&self.loc, "read last run"))
    }

    fn cached_actions(&self, project: &str, servers: &[&str]) -> Result<Vec<StoredActions>> {
        let op = "look up cached instance actions";
        // The rows are stored in (project, server) order: the project's range is read in one
        // statement (a few pages) instead of seeking each server across the table.
        let wanted: HashSet<&str> = servers.iter().copied().collect();
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT server_id, project_id, updated, fetched_at, seen_at, actions FROM instance_actions
                 WHERE project_id = ?1",
            )
            .map_err(db(&self.loc, op))?;
        let mut rows = st.query([project]).map_err(db(&self.loc, op))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(db(&self.loc, op))? {
            let server_id: String = r.get(0).map_err(db(&self.loc, op))?;
            if !wanted.contains(server_id.as_str()) {
                continue;
            }
            let read = || -> rusqlite::Result<_> {
                Ok((r.get(1)?, get_time(r, 2)?, get_time(r, 3)?, get_time(r, 4)?, r.get::<_, String>(5)?))
            };
            let (project_id, updated, fetched_at, seen_at, actions) = read().map_err(db(&self.loc, op))?;
            let actions = crate::actions::decode(&server_id, &actions).map_err(|e| Error::Corrupt {
                location: self.loc.clone(),
                op: op.into(),
                reason: e.to_string(),
            })?;
            out.push(StoredActions {
                cached: CachedActions { server_id, project_id, updated, fetched_at, actions },
                seen_at,
            });
        }
        Ok(out)
    }

    fn store_cached_actions(
        &mut self,
        project: &str,
        fresh: &[CachedActions],
        reused: &[&str],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let op = "store cached instance actions";
        let loc = self.loc.clone();
        crate::actions::validate(&loc, op, project, fresh)?;
        let now = ts(now);
        let tx = self.write_tx(op)?;
        {
            let mut put = tx
                .prepare_cached(
                    "INSERT INTO instance_actions (server_id, project_id, updated, fetched_at, seen_at, actions)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (server_id) DO UPDATE SET project_id = excluded.project_id,
                         updated = excluded.updated, fetched_at = excluded.fetched_at,
                         seen_at = excluded.seen_at, actions = excluded.actions
                     WHERE excluded.fetched_at >= instance_actions.fetched_at",
                )
                .map_err(db(&loc, op))?;
            for c in fresh {
                put.execute(params![
                    c.server_id,
                    c.project_id,
                    ts(c.updated),
                    ts(c.fetched_at),
                    now,
                    crate::actions::encode(&c.actions)
                ])
                .map_err(db(&loc, op))?;
            }
            let mut touch = tx
                .prepare_cached(
                    "UPDATE instance_actions SET seen_at = ?3 WHERE server_id = ?1 AND project_id = ?2 AND seen_at < ?3",
                )
                .map_err(db(&loc, op))?;
            for server in reused {
                touch.execute(params![server, project, now]).map_err(db(&loc, op))?;
            }
        }
        tx.commit().map_err(db(&loc, op))
    }

    fn prune_cached_actions(&mut self, before: DateTime<Utc>) -> Result<u64> {
        let op = "prune cached instance actions";
        let n = self
            .conn
            .execute("DELETE FROM instance_actions WHERE seen_at < ?1", [ts(before)])
            .map_err(db(&self.loc, op))?;
        Ok(n as u64)
    }

    fn listed_servers(&self, servers: &[&str]) -> Result<ListedServers> {
        let op = "look up listed servers";
        let valid_at = self
            .conn
            .query_row("SELECT valid_at FROM listed_servers_state WHERE id = 1", [], |r| get_time(r, 0))
            .optional()
            .map_err(db(&self.loc, op))?;
        let mut found = Vec::new();
        if valid_at.is_none() {
            return Ok(ListedServers { valid_at, found });
        }
        let mut st = self
            .conn
            .prepare_cached("SELECT project_id, body FROM listed_servers WHERE server_id = ?1")
            .map_err(db(&self.loc, op))?;
        for server in servers {
            let row = st
                .query_row([*server], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .optional()
                .map_err(db(&self.loc, op))?;
            if let Some((project_id, body)) = row {
                found.push(ListedServerEntry { server_id: server.to_string(), project_id, body });
            }
        }
        Ok(ListedServers { valid_at, found })
    }

    fn store_listed_servers(&mut self, u: &ListedServersUpdate) -> Result<()> {
        let op = "store listed servers";
        let loc = self.loc.clone();
        crate::servers::validate(&loc, op, u)?;
        let tx = self.write_tx(op)?;
        {
            if u.reset {
                tx.execute("DELETE FROM listed_servers", []).map_err(db(&loc, op))?;
            }
            let mut del = tx.prepare_cached("DELETE FROM listed_servers WHERE server_id = ?1").map_err(db(&loc, op))?;
            for id in &u.remove {
                del.execute([id]).map_err(db(&loc, op))?;
            }
            // An entry stored with the same project and body is left as it is (nothing to write).
            let mut put = tx
                .prepare_cached(
                    "INSERT INTO listed_servers (server_id, project_id, body) VALUES (?1, ?2, ?3)
                     ON CONFLICT (server_id) DO UPDATE SET project_id = excluded.project_id, body = excluded.body
                     WHERE listed_servers.project_id != excluded.project_id OR listed_servers.body != excluded.body",
                )
                .map_err(db(&loc, op))?;
            for e in &u.put {
                put.execute(params![e.server_id, e.project_id, e.body]).map_err(db(&loc, op))?;
            }
            tx.execute(
                "INSERT INTO listed_servers_state (id, valid_at) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET valid_at = excluded.valid_at",
                [ts(u.valid_at)],
            )
            .map_err(db(&loc, op))?;
        }
        tx.commit().map_err(db(&loc, op))
    }

    fn message_counts(&self) -> Result<Vec<MessageCount>> {
        let op = "count messages";
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT kind, state, COUNT(*), COALESCE(SUM(record_count), 0) FROM messages GROUP BY kind, state ORDER BY kind, state",
            )
            .map_err(db(&self.loc, op))?;
        st.query_map([], |r| {
            Ok(MessageCount {
                kind: r.get(0)?,
                state: get_state(r, 1)?,
                messages: get_ou64(r, 2)?.unwrap_or(0),
                records: get_ou64(r, 3)?.unwrap_or(0),
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(db(&self.loc, op))
    }
}
