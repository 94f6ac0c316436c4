//! Claims of scheduled work (`ledger::claims`) on PostgreSQL: one claimer per (site, task,
//! interval) while its session lives, the work done once, and an unfinished claim whose
//! session ended taken over by another. The server is FEDSITE_TEST_PG.

mod common;

use chrono::{TimeZone, Utc};
use common::PgDb;
use ledger::*;

fn key(site: &str) -> ClaimKey {
    ClaimKey {
        site: site.into(),
        task: "info".into(),
        interval_start: Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap(),
    }
}

fn open(db: &PgDb) -> PgStore {
    PgStore::open(&db.url, PgOptions::default()).unwrap()
}

#[test]
fn one_claimer_at_a_time_and_finished_work_is_never_claimed_again() {
    let db = PgDb::create();
    let (mut a, mut b) = (open(&db), open(&db));
    assert_eq!(a.claim(&key("S1"), "a").unwrap(), Claim::New);
    // Held by a's live session: b waits, and a's own second look does not re-run it.
    assert_eq!(b.claim(&key("S1"), "b").unwrap(), Claim::Busy);
    assert_eq!(a.claim(&key("S1"), "a").unwrap(), Claim::Busy);
    assert_eq!(b.claim(&key("S2"), "b").unwrap(), Claim::New);
    assert_eq!(a.unfinished_claims().unwrap(), [key("S1"), key("S2")]);
    a.finish_claim(&key("S1"), "a", "ok", "done").unwrap();
    assert_eq!(b.claim(&key("S1"), "b").unwrap(), Claim::Done);
    assert_eq!(a.claim(&key("S1"), "a").unwrap(), Claim::Done);
    // a's lock on S1 is released (b saw it Done, not Busy, though a looked at it twice).
    let held: i64 = db
        .raw()
        .query_one(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
             WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(held, 1, "only b's claim of S2 is held");
    // Finishing a claim this session does not hold is refused.
    assert!(matches!(a.finish_claim(&key("S2"), "a", "ok", ""), Err(ClaimError::NotHeld { .. })));
    b.finish_claim(&key("S2"), "b", "failed", "no answer").unwrap();
    let rows = a.claims().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].replica.as_str(), rows[0].outcome.as_deref()), ("a", Some("ok")));
    assert_eq!((rows[1].replica.as_str(), rows[1].outcome.as_deref()), ("b", Some("failed")));
    assert!(rows.iter().all(|r| r.finished_at.is_some() && r.taken_over_from.is_none()));
}

#[test]
fn an_unfinished_claim_of_a_closed_session_is_taken_over() {
    let db = PgDb::create();
    let mut b = open(&db);
    {
        let mut a = open(&db);
        assert_eq!(a.claim(&key("S1"), "a").unwrap(), Claim::New);
        assert_eq!(b.claim(&key("S1"), "b").unwrap(), Claim::Busy);
    } // a's session ends without finishing: its advisory lock goes with it.
    // PostgreSQL ends a's backend (and frees its lock) a moment after the client closed the
    // connection: until then the claim is still busy, as a live replica retrying would see it.
    let started = std::time::Instant::now();
    let taken = loop {
        match b.claim(&key("S1"), "b").unwrap() {
            Claim::Busy if started.elapsed() < std::time::Duration::from_secs(10) => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            other => break other,
        }
    };
    assert_eq!(taken, Claim::TakenOver { from: "a".into() });
    let mut c = open(&db);
    assert_eq!(c.claim(&key("S1"), "c").unwrap(), Claim::Busy);
    b.finish_claim(&key("S1"), "b", "ok", "re-run").unwrap();
    assert_eq!(c.claim(&key("S1"), "c").unwrap(), Claim::Done);
    let rows = c.claims().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].replica, "b");
    assert_eq!(rows[0].taken_over_from.as_deref(), Some("a"));
    assert_eq!(rows[0].detail.as_deref(), Some("re-run"));
    assert!(c.unfinished_claims().unwrap().is_empty());
}
