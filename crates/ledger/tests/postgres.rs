//! The PostgreSQL backend itself: schema_version table and timestamptz columns, a newer
//! schema refused, passwords kept out of errors and Debug, a writer blocked by another
//! connection times out naming the operation while readers see the last commit, use from
//! tokio (spawn_blocking, and directly in an async task), and `Ledger::open` dispatch.
//! The server is FEDSITE_TEST_PG (scripts/test starts one); without it these tests fail.

mod common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::{PgDb, Place};
use ledger::*;

fn t(d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 10, d, 0, 0, 0).unwrap()
}

fn snap(vm: &str, at: DateTime<Utc>, wall: u64) -> Snapshot {
    Snapshot {
        kind: "cloud".into(),
        key: format!("{vm}/2026-10"),
        project_id: "p1".into(),
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

/// Exercise a ledger a little: one commit, one transition, reads.
fn use_ledger(l: &mut Ledger, n: u32) {
    let s = snap(&format!("vm{n}"), t(2), n as u64);
    l.commit_project(&ProjectCommit {
        project_id: "p1".into(),
        checkpoint_kind: format!("nova{n}"),
        snapshots: vec![s.clone()],
        messages: vec![NewMessage {
            element: format!("e/{n}"),
            kind: "cloud".into(),
            created_at: t(2),
            records: vec![RecordRef::of(&s)],
        }],
        unchanged: Vec::new(),
        checkpoint_to: Some(t(2)),
        ..Default::default()
    })
    .unwrap();
    l.mark_sent(&format!("e/{n}"), "ams").unwrap();
    assert_eq!(l.checkpoint("p1", &format!("nova{n}")).unwrap(), Some(t(2)));
    assert_eq!(l.snapshot("cloud", &s.key).unwrap().unwrap().snapshot, s);
}

#[test]
fn schema_version_table_records_the_migration_and_times_are_timestamptz() {
    let db = PgDb::create();
    let mut l = Ledger::open(&db.url).unwrap();
    l.advance_checkpoint("p1", "nova", t(2) + Duration::microseconds(1_500_123), None).unwrap();
    drop(l);
    drop(Ledger::open(&db.url).unwrap()); // reopening migrates nothing twice

    let mut raw = db.raw();
    let versions: Vec<i32> = raw
        .query("SELECT version FROM schema_version ORDER BY version", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6]);
    let types: Vec<(String, String)> = raw
        .query(
            "SELECT table_name::text || '.' || column_name::text, data_type::text
             FROM information_schema.columns
             WHERE table_schema = 'public' AND (column_name LIKE '%\\_at' OR column_name IN
                 ('checkpoint', 'start_time', 'end_time', 'window_from', 'window_to'))
             ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(types.len() >= 14, "{types:?}");
    assert!(types.iter().all(|(_, ty)| ty == "timestamp with time zone"), "{types:?}");
    let stored: DateTime<Utc> = raw.query_one("SELECT checkpoint FROM checkpoints", &[]).unwrap().get(0);
    assert_eq!(stored, t(2) + Duration::microseconds(1_500_123));
    let text: String = raw
        .query_one("SELECT to_char(checkpoint AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') FROM checkpoints", &[])
        .unwrap()
        .get(0);
    assert_eq!(text, "2026-10-02 00:00:01.500123");
}

#[test]
fn a_newer_schema_is_refused_naming_the_database() {
    let db = PgDb::create();
    drop(Ledger::open(&db.url).unwrap());
    db.raw().batch_execute("INSERT INTO schema_version (version) VALUES (99)").unwrap();
    let err = Ledger::open(&db.url).unwrap_err();
    assert!(matches!(err, Error::SchemaTooNew { found: 99, supported: 6, .. }), "{err}");
    assert!(err.to_string().contains(&db.name), "{err}");
}

#[test]
fn passwords_never_appear_in_errors_location_or_debug() {
    const PW: &str = "s3cr3t-Pw";
    // Nothing listens on port 1: the connect error names the place and the operation.
    for conninfo in [
        format!("postgresql://alice:{PW}@127.0.0.1:1/ledger"),
        format!("host=127.0.0.1 port=1 user=alice password={PW} dbname=ledger connect_timeout=5"),
    ] {
        let err = LedgerOptions { backend: Backend::Postgres, ..Default::default() }.open(&conninfo).unwrap_err();
        let (text, debug) = (err.to_string(), format!("{err:?}"));
        assert!(!text.contains(PW) && !debug.contains(PW), "{text} / {debug}");
        assert!(text.contains("postgresql://alice@127.0.0.1:1/ledger") && text.contains("connect"), "{text}");
    }
    // A malformed connection string is refused without echoing it.
    let err = Ledger::open(format!("postgresql://alice:{PW}@127.0.0.1:notaport/x")).unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    assert!(!err.to_string().contains(PW) && !format!("{err:?}").contains(PW), "{err}");

    // A working connection with a password (the test server trusts, so it is not checked).
    let db = PgDb::create();
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_password(Some(PW)).unwrap();
    let l = Ledger::open(url.as_str()).unwrap();
    assert!(!l.location().contains(PW), "{}", l.location());
    assert!(l.location().ends_with(&format!("/{}", db.name)), "{}", l.location());
    let debug = format!("{l:?}");
    assert!(!debug.contains(PW) && debug.contains(&db.name), "{debug}");
    drop(l);
    db.raw().batch_execute("INSERT INTO schema_version (version) VALUES (7)").unwrap();
    let err = Ledger::open(url.as_str()).unwrap_err();
    assert!(!err.to_string().contains(PW) && !format!("{err:?}").contains(PW), "{err}");
}

#[test]
fn a_blocked_writer_times_out_naming_the_operation_while_readers_see_the_last_commit() {
    let db = PgDb::create();
    let mut writer = Ledger::open(&db.url).unwrap();
    writer.advance_checkpoint("p1", "nova", t(2), None).unwrap();
    let mut other = LedgerOptions {
        postgres: PgOptions { lock_timeout: std::time::Duration::from_millis(200), ..Default::default() },
        ..Default::default()
    }
    .open(&db.url)
    .unwrap();

    // Another session is in the middle of a write transaction on the checkpoint row.
    let mut raw = db.raw();
    let mut tx = raw.transaction().unwrap();
    tx.batch_execute("UPDATE checkpoints SET checkpoint = '2026-10-09T00:00:00Z'").unwrap();
    assert_eq!(other.checkpoint("p1", "nova").unwrap(), Some(t(2)), "readers see the last committed state");
    let started = std::time::Instant::now();
    let err = other.advance_checkpoint("p1", "nova", t(5), None).unwrap_err();
    assert!(err.to_string().contains("advance checkpoint") && err.to_string().contains(&db.name), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    tx.rollback().unwrap();
    // The failed transaction was rolled back: the same connection works again.
    assert!(other.advance_checkpoint("p1", "nova", t(5), None).unwrap());
    assert_eq!(writer.checkpoint("p1", "nova").unwrap(), Some(t(5)));
}

#[test]
fn works_from_spawn_blocking_in_multi_thread_and_current_thread_runtimes() {
    let place = std::sync::Arc::new(Place::pg());
    for (n, rt) in [
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap(),
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
    ]
    .into_iter()
    .enumerate()
    {
        let p = place.clone();
        rt.block_on(async move {
            let mut l = tokio::task::spawn_blocking(move || {
                let mut l = p.open();
                use_ledger(&mut l, n as u32);
                l
            })
            .await
            .unwrap();
            // Handed back to the async side, used again on another blocking thread.
            let l = tokio::task::spawn_blocking(move || {
                l.mark_acknowledged(&format!("e/{n}")).unwrap();
                l
            })
            .await
            .unwrap();
            drop(l);
        });
    }
    let l = place.open();
    assert_eq!(l.messages_in_state(MessageState::Acknowledged).unwrap().len(), 2);
}

#[test]
fn works_and_drops_directly_inside_an_async_task() {
    let place = Place::pg();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        // Blocking the task, as SQLite does, but never panicking on tokio's runtime checks.
        let mut l = place.open();
        use_ledger(&mut l, 1);
        tokio::task::yield_now().await;
        use_ledger(&mut l, 2);
        drop(l);
    });
    assert_eq!(place.open().pending().unwrap().len(), 2);
}

#[test]
fn open_picks_postgres_for_postgres_urls_and_sqlite_otherwise() {
    let db = PgDb::create();
    assert!(Ledger::open(&db.url).unwrap().location().starts_with("postgresql://"));
    let alias = db.url.replacen("postgresql://", "postgres://", 1);
    assert!(alias.starts_with("postgres://"), "{alias}");
    assert!(Ledger::open(&alias).unwrap().location().ends_with(&db.name));
    assert!(is_postgres_url("PostgreSQL://h/db") && !is_postgres_url("/var/lib/ledger.sqlite"));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let l = Ledger::open(&path).unwrap();
    assert_eq!(l.location(), path.display().to_string());
    assert!(path.exists());
}

#[test]
fn a_missing_server_setting_fails_with_a_pointer_to_scripts_test() {
    let err = std::panic::catch_unwind(|| common::pg_url_from(None)).unwrap_err();
    let text = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(text.contains("FEDSITE_TEST_PG") && text.contains("scripts/test"), "{text}");
}

#[test]
fn a_version_2_database_is_migrated_to_keep_its_data_and_cache_instance_actions() {
    let db = PgDb::create();
    {
        let mut l = Ledger::open(&db.url).unwrap();
        l.advance_checkpoint("p1", "accounting", t(2), None).unwrap();
    }
    // Back to the second schema, as a database written before the action cache existed.
    db.raw()
        .batch_execute(
            "DROP TABLE instance_actions, central_claims, listed_servers, listed_servers_state; \
             ALTER TABLE snapshots DROP COLUMN record_fp; DELETE FROM schema_version WHERE version >= 3",
        )
        .unwrap();
    let mut l = Ledger::open(&db.url).unwrap();
    assert_eq!(l.checkpoint("p1", "accounting").unwrap(), Some(t(2)));
    let c = CachedActions {
        server_id: "srv".into(),
        project_id: "p1".into(),
        updated: t(1) + Duration::microseconds(3),
        fetched_at: t(2),
        actions: vec![CachedAction { action: "suspend".into(), start_time: t(1) }],
    };
    l.store_cached_actions("p1", std::slice::from_ref(&c), &[], t(3)).unwrap();
    assert_eq!(l.cached_actions("p1", &["srv"]).unwrap(), [StoredActions { cached: c, seen_at: t(3) }]);
    let mut raw = db.raw();
    let versions: Vec<i32> = raw
        .query("SELECT version FROM schema_version ORDER BY version", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6]);
    let stored: String = raw.query_one("SELECT actions FROM instance_actions", &[]).unwrap().get(0);
    assert_eq!(stored, r#"[["suspend",1790812800000000]]"#);
}

#[test]
fn a_version_4_database_is_migrated_to_hold_listed_servers() {
    let db = PgDb::create();
    {
        let mut l = Ledger::open(&db.url).unwrap();
        l.advance_checkpoint("p1", "accounting", t(2), None).unwrap();
    }
    // Back to the fourth schema, as a database written before the listed-server cache existed.
    db.raw()
        .batch_execute(
            "DROP TABLE listed_servers, listed_servers_state; ALTER TABLE snapshots DROP COLUMN record_fp; \
             DELETE FROM schema_version WHERE version >= 5",
        )
        .unwrap();
    let mut l = Ledger::open(&db.url).unwrap();
    assert_eq!(l.checkpoint("p1", "accounting").unwrap(), Some(t(2)));
    assert_eq!(l.listed_servers(&["srv"]).unwrap(), ListedServers::default(), "empty, never valid");
    let e = ListedServerEntry { server_id: "srv".into(), project_id: "p1".into(), body: "{}".into() };
    l.store_listed_servers(&ListedServersUpdate { valid_at: t(4), put: vec![e.clone()], ..Default::default() })
        .unwrap();
    assert_eq!(l.listed_servers(&["srv"]).unwrap(), ListedServers { valid_at: Some(t(4)), found: vec![e] });
    let versions: Vec<i32> = db
        .raw()
        .query("SELECT version FROM schema_version ORDER BY version", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6]);
}

#[test]
fn namespaced_ledgers_share_a_database_but_neither_data_nor_writer_locks() {
    let db = PgDb::create();
    let mut a =
        LedgerOptions { mode: OpenMode::CreateIfMissing, namespace: Some("SITE-A".into()), ..Default::default() }
            .open(&db.url)
            .unwrap();
    let mut b =
        LedgerOptions { mode: OpenMode::CreateIfMissing, namespace: Some("site \"b\"".into()), ..Default::default() }
            .open(&db.url)
            .unwrap();
    assert!(a.location().ends_with("schema SITE-A"), "{}", a.location());
    a.advance_checkpoint("p1", "nova", t(2), None).unwrap();
    b.advance_checkpoint("p1", "nova", t(5), None).unwrap();
    assert_eq!(a.checkpoint("p1", "nova").unwrap(), Some(t(2)));
    assert_eq!(b.checkpoint("p1", "nova").unwrap(), Some(t(5)));
    // The default schema is a third ledger, untouched.
    let plain = Ledger::open(&db.url).unwrap();
    assert_eq!(plain.checkpoint("p1", "nova").unwrap(), None);
    // Opening again (another replica) finds the schema and its data.
    let again = LedgerOptions { mode: OpenMode::MustExist, namespace: Some("SITE-A".into()), ..Default::default() }
        .open(&db.url)
        .unwrap();
    assert_eq!(again.checkpoint("p1", "nova").unwrap(), Some(t(2)));

    let mut a_short = LedgerOptions {
        postgres: PgOptions {
            lock_timeout: std::time::Duration::from_millis(200),
            schema: Some("SITE-A".into()),
            ..Default::default()
        },
        ..Default::default()
    }
    .open(&db.url)
    .unwrap();
    // A write transaction held open in SITE-A's schema (its writer lock taken) does not hold
    // up a writer of the other schema, and does hold up one of its own.
    let mut raw = db.raw();
    let mut tx = raw.transaction().unwrap();
    tx.batch_execute(
        "SET LOCAL search_path TO \"SITE-A\"; \
         SELECT pg_advisory_xact_lock(hashtextextended('fedsite write ' || current_schema(), 0))",
    )
    .unwrap();
    assert!(b.advance_checkpoint("p1", "nova", t(6), None).unwrap());
    let err = a_short.advance_checkpoint("p1", "nova", t(7), None).unwrap_err();
    assert!(err.to_string().contains("advance checkpoint"), "{err}");
    tx.rollback().unwrap();
    assert!(a_short.advance_checkpoint("p1", "nova", t(7), None).unwrap());

    // A name that is not one is refused, naming it, without the URL's password.
    let err = LedgerOptions { mode: OpenMode::CreateIfMissing, namespace: Some("../x".into()), ..Default::default() }
        .open(&db.url)
        .unwrap_err();
    assert!(err.to_string().contains("\"../x\"") && !err.to_string().contains(&db.url), "{err}");
}

#[test]
fn namespaced_sqlite_ledgers_are_files_in_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut a =
        LedgerOptions { mode: OpenMode::CreateIfMissing, namespace: Some("SITE-A".into()), ..Default::default() }
            .open(dir.path())
            .unwrap();
    a.advance_checkpoint("p1", "nova", t(2), None).unwrap();
    assert!(dir.path().join("SITE-A.sqlite").is_file());
    let err = LedgerOptions { mode: OpenMode::MustExist, namespace: Some("SITE-B".into()), ..Default::default() }
        .open(dir.path())
        .unwrap_err();
    assert!(matches!(err, Error::Missing { .. }), "{err}");
}
