//! The SQLite file itself: 0600 creation, WAL, schema version and time text format on
//! reopen, errors name the path, readers during another connection's write. (Two connections
//! at once and reopening run on both backends in store.rs.)

use chrono::{DateTime, Duration, TimeZone, Utc};
use ledger::*;
use std::path::Path;

fn t(d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 10, d, 0, 0, 0).unwrap()
}

fn snap(vm: &str, project: &str, at: DateTime<Utc>, wall: u64) -> Snapshot {
    Snapshot {
        kind: "cloud".into(),
        key: format!("{vm}/2026-10"),
        project_id: project.into(),
        vo: Some("vo.a".into()),
        site: "SITE-A".into(),
        measured_at: at,
        month: Some("2026-10".into()),
        start_time: Some(t(1)),
        end_time: None,
        wall_seconds: Some(wall),
        cpu_seconds: Some(wall),
        status: Some("started".into()),
        body: format!("{vm} {wall}"),
        fingerprint: None,
    }
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
#[cfg(unix)]
fn new_ledger_file_and_its_wal_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let mut l = Ledger::open(&path).unwrap();
    l.upsert_snapshot(&snap("vm1", "p1", t(2), 1), None).unwrap();
    assert_eq!(mode(&path), 0o600);
    let wal = dir.path().join("ledger.sqlite-wal");
    assert!(wal.exists(), "WAL mode keeps a -wal file while open");
    assert_eq!(mode(&wal), 0o600);
}

#[test]
fn reopen_keeps_everything_and_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let (run, s) = {
        let mut l = Ledger::open(&path).unwrap();
        let run =
            l.begin_run(&NewRun { command: "extract".into(), window_from: Some(t(1)), window_to: Some(t(2)) }).unwrap();
        let s = snap("vm1", "p1", t(2), 42);
        l.commit_project(&ProjectCommit {
            run: Some(run),
            project_id: "p1".into(),
            checkpoint_kind: "nova".into(),
            snapshots: vec![s.clone()],
            messages: vec![NewMessage {
                element: "e/1".into(),
                kind: "cloud".into(),
                created_at: t(2),
                records: vec![RecordRef::of(&s)],
            }],
            unchanged: Vec::new(),
            checkpoint_to: Some(t(2) + Duration::microseconds(1_500_123)),
        })
        .unwrap();
        l.mark_sent("e/1", "ams-9").unwrap();
        l.finish_run(run, RunOutcome::Succeeded, None).unwrap();
        (run, s)
    };
    let l = Ledger::open(&path).unwrap();
    assert_eq!(l.checkpoint("p1", "nova").unwrap(), Some(t(2) + Duration::microseconds(1_500_123)));
    assert_eq!(l.snapshot("cloud", "vm1/2026-10").unwrap().unwrap().snapshot, s);
    let m = l.message("e/1").unwrap().unwrap();
    assert_eq!((m.state, m.ams_id.as_deref(), m.record_count), (MessageState::Sent, Some("ams-9"), 1));
    assert_eq!(l.run(run).unwrap().unwrap().outcome, Some(RunOutcome::Succeeded));
    assert_eq!(l.message_records("e/1").unwrap(), [RecordRef::of(&s)]);

    let raw = rusqlite::Connection::open(&path).unwrap();
    let v: i64 = raw.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    let jm: String = raw.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!((v, jm.as_str()), (5, "wal"));
    // Times are stored as fixed-width RFC 3339 UTC text.
    let stored: String = raw.query_row("SELECT checkpoint FROM checkpoints", [], |r| r.get(0)).unwrap();
    assert_eq!(stored, "2026-10-02T00:00:01.500123Z");
}

#[test]
fn a_newer_schema_is_refused_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    drop(Ledger::open(&path).unwrap());
    rusqlite::Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
    let err = Ledger::open(&path).err().unwrap();
    assert!(matches!(err, Error::SchemaTooNew { found: 99, supported: 5, .. }), "{err}");
    assert!(err.to_string().contains(&path.display().to_string()));
}

#[test]
fn open_in_a_missing_directory_names_path_and_operation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/ledger.sqlite");
    let err = Ledger::open(&path).err().unwrap();
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()) && text.contains("create"), "{text}");
}

#[test]
fn reader_sees_last_commit_while_a_writer_holds_the_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let mut writer = Ledger::open(&path).unwrap();
    writer.advance_checkpoint("p1", "nova", t(2), None).unwrap();
    let mut reader = LedgerOptions {
        sqlite: SqliteOptions { busy_timeout: std::time::Duration::from_millis(100) },
        ..Default::default()
    }
    .open(&path)
    .unwrap();

    // Another process is in the middle of a write transaction.
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute_batch("BEGIN IMMEDIATE; UPDATE checkpoints SET checkpoint = '2026-10-09T00:00:00.000000Z';").unwrap();
    assert_eq!(reader.checkpoint("p1", "nova").unwrap(), Some(t(2)), "WAL readers see the last committed state");
    let err = reader.advance_checkpoint("p1", "nova", t(5), None).unwrap_err();
    assert!(err.to_string().contains("advance checkpoint"), "{err}");
    raw.execute_batch("ROLLBACK").unwrap();
    assert!(reader.advance_checkpoint("p1", "nova", t(5), None).unwrap());
    assert_eq!(writer.checkpoint("p1", "nova").unwrap(), Some(t(5)));
}

#[test]
fn a_version_1_ledger_is_migrated_to_keep_run_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let run = {
        let mut l = Ledger::open(&path).unwrap();
        l.begin_run(&NewRun { command: "accounting extract".into(), ..Default::default() }).unwrap()
    };
    // Back to the first schema, as a ledger written before run warnings existed.
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute_batch(
        "DROP TABLE run_warnings; DROP INDEX runs_by_command; DROP TABLE instance_actions; \
         DROP TABLE listed_servers; DROP TABLE listed_servers_state; ALTER TABLE snapshots DROP COLUMN record_fp; \
         PRAGMA user_version = 1;",
    )
    .unwrap();
    drop(raw);
    let mut l = Ledger::open(&path).unwrap();
    l.add_run_warning(run, "warn", "kept").unwrap();
    assert_eq!(l.run_warnings(run).unwrap()[0].message, "kept");
    let v: i64 = rusqlite::Connection::open(&path).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v, 5);
}

#[test]
fn a_version_2_ledger_is_migrated_to_keep_its_data_and_cache_instance_actions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let s = snap("vm1", "p1", t(2), 42);
    {
        let mut l = Ledger::open(&path).unwrap();
        l.upsert_snapshot(&s, None).unwrap();
        l.advance_checkpoint("p1", "accounting", t(2), None).unwrap();
    }
    // Back to the second schema, as a ledger written before the action cache existed.
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute_batch(
        "DROP TABLE instance_actions; DROP TABLE listed_servers; DROP TABLE listed_servers_state; \
         ALTER TABLE snapshots DROP COLUMN record_fp; PRAGMA user_version = 2;",
    )
    .unwrap();
    drop(raw);
    let mut l = Ledger::open(&path).unwrap();
    assert_eq!(l.snapshot("cloud", &s.key).unwrap().unwrap().snapshot, s);
    assert_eq!(l.checkpoint("p1", "accounting").unwrap(), Some(t(2)));
    let c = CachedActions {
        server_id: "srv".into(),
        project_id: "p1".into(),
        updated: t(1),
        fetched_at: t(2),
        actions: vec![CachedAction { action: "suspend".into(), start_time: t(1) }],
    };
    l.store_cached_actions("p1", std::slice::from_ref(&c), &[], t(3)).unwrap();
    assert_eq!(l.cached_actions("p1", &["srv"]).unwrap(), [StoredActions { cached: c, seen_at: t(3) }]);
    let raw = rusqlite::Connection::open(&path).unwrap();
    let v: i64 = raw.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    let stored: String = raw.query_row("SELECT actions FROM instance_actions", [], |r| r.get(0)).unwrap();
    assert_eq!((v, stored.as_str()), (5, r#"[["suspend",1790812800000000]]"#));
}

#[test]
fn a_version_4_ledger_is_migrated_to_hold_fingerprints_and_cluster_cached_actions_by_project() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let s = snap("vm1", "p1", t(2), 42);
    let cached = |server: &str, project: &str| CachedActions {
        server_id: server.into(),
        project_id: project.into(),
        updated: t(1),
        fetched_at: t(2),
        actions: vec![CachedAction { action: "suspend".into(), start_time: t(1) }],
    };
    {
        let mut l = Ledger::open(&path).unwrap();
        l.upsert_snapshot(&s, None).unwrap();
    }
    // Back to the fourth schema: no fingerprints, the action cache keyed by server alone.
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute_batch(
        "ALTER TABLE snapshots DROP COLUMN record_fp; DROP TABLE instance_actions; \
         CREATE TABLE instance_actions (server_id TEXT PRIMARY KEY, project_id TEXT NOT NULL, updated TEXT NOT NULL, \
             fetched_at TEXT NOT NULL, seen_at TEXT NOT NULL, actions TEXT NOT NULL) WITHOUT ROWID; \
         CREATE INDEX instance_actions_by_seen ON instance_actions (seen_at); \
         INSERT INTO instance_actions VALUES ('srv-b', 'p2', '2026-10-01T00:00:00.000000Z', \
             '2026-10-02T00:00:00.000000Z', '2026-10-03T00:00:00.000000Z', '[[\"suspend\",1790812800000000]]'), \
             ('srv-a', 'p1', '2026-10-01T00:00:00.000000Z', '2026-10-02T00:00:00.000000Z', \
             '2026-10-03T00:00:00.000000Z', '[[\"suspend\",1790812800000000]]'); \
         PRAGMA user_version = 4;",
    )
    .unwrap();
    drop(raw);
    let mut l = Ledger::open(&path).unwrap();
    assert_eq!(l.snapshot("cloud", &s.key).unwrap().unwrap().snapshot, s);
    assert!(l.fingerprints("cloud", "p1").unwrap().is_empty(), "stored before fingerprints");
    assert_eq!(
        l.cached_actions("p1", &["srv-a", "srv-b"]).unwrap(),
        [StoredActions { cached: cached("srv-a", "p1"), seen_at: t(3) }]
    );
    assert_eq!(l.cached_actions("p2", &["srv-b"]).unwrap()[0].cached, cached("srv-b", "p2"));
    // Still one list per server: a server fetched under another project replaces its row.
    let mut moved = cached("srv-b", "p1");
    moved.fetched_at = t(4);
    l.store_cached_actions("p1", std::slice::from_ref(&moved), &[], t(4)).unwrap();
    assert!(l.cached_actions("p2", &["srv-b"]).unwrap().is_empty());
    assert_eq!(l.cached_actions("p1", &["srv-b"]).unwrap()[0].cached, moved);
    // An unchanged commit stores the fingerprint it is given.
    let with_fp = Snapshot { fingerprint: Some("f1".into()), ..s.clone() };
    l.upsert_snapshot(&with_fp, None).unwrap();
    assert_eq!(l.fingerprints("cloud", "p1").unwrap()[&s.key].fingerprint, "f1");
    let v: i64 = rusqlite::Connection::open(&path).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v, 5);
}

#[test]
fn a_version_3_ledger_is_migrated_to_keep_its_caches_and_hold_listed_servers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let c = CachedActions {
        server_id: "srv".into(),
        project_id: "p1".into(),
        updated: t(1),
        fetched_at: t(2),
        actions: vec![CachedAction { action: "suspend".into(), start_time: t(1) }],
    };
    {
        let mut l = Ledger::open(&path).unwrap();
        l.store_cached_actions("p1", std::slice::from_ref(&c), &[], t(3)).unwrap();
    }
    // Back to the third schema, as a ledger written before the listed-server cache existed.
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute_batch(
        "DROP TABLE listed_servers; DROP TABLE listed_servers_state; ALTER TABLE snapshots DROP COLUMN record_fp; \
         PRAGMA user_version = 3;",
    )
    .unwrap();
    drop(raw);
    let mut l = Ledger::open(&path).unwrap();
    assert_eq!(l.cached_actions("p1", &["srv"]).unwrap(), [StoredActions { cached: c, seen_at: t(3) }]);
    assert_eq!(l.listed_servers(&["srv"]).unwrap(), ListedServers::default(), "empty, never valid");
    let e = ListedServerEntry { server_id: "srv".into(), project_id: "p1".into(), body: "{}".into() };
    l.store_listed_servers(&ListedServersUpdate { valid_at: t(4), put: vec![e.clone()], ..Default::default() })
        .unwrap();
    assert_eq!(l.listed_servers(&["srv"]).unwrap(), ListedServers { valid_at: Some(t(4)), found: vec![e] });
    let v: i64 = rusqlite::Connection::open(&path).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v, 5);
}

#[test]
fn open_as_creates_for_writers_and_refuses_a_missing_file_for_readers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new").join("ledger.sqlite");
    let err = ledger::LedgerOptions::mode(ledger::OpenMode::MustExist).open(&path).unwrap_err();
    assert!(matches!(err, ledger::Error::Missing { .. }), "{err}");
    assert_eq!(err.to_string(), format!("ledger {} does not exist", path.display()));
    assert!(!path.exists() && !path.parent().unwrap().exists(), "a reader creates nothing");
    drop(ledger::LedgerOptions::mode(ledger::OpenMode::CreateIfMissing).open(&path).unwrap());
    assert!(path.exists(), "a writer creates the file and its directory");
    drop(ledger::LedgerOptions::mode(ledger::OpenMode::MustExist).open(&path).unwrap());
}
