//! Claims of scheduled work on a PostgreSQL ledger: which replica of `fedsite central serve`
//! runs one (site, task, interval), so that replicas sharing the ledger never run it twice
//! and a claim whose replica died is finished by another. PostgreSQL only (a single process
//! needs no claims).
//!
//! Two PostgreSQL mechanisms, no consensus of our own:
//! * the row `central_claims(site, task, interval_start)` (primary key) records who claimed the
//!   work, when, and how it ended (`finished_at`, `outcome`, `detail`);
//! * a session advisory lock keyed by the ledger and the claim is held by the claiming
//!   session while the work runs. PostgreSQL releases it when the session ends, however it
//!   ends (`kill -9`, a lost connection), so an unfinished row whose lock can be taken has no
//!   live holder: the taker re-runs the work and records it (`taken_over_from`).
//!
//! The lock is always taken first, then the row is read and written in a transaction: the
//! lock serialises every claimer of one key, and the holder marks the row finished before it
//! releases the lock, so a later claimer sees the work done.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use crate::PgStore;
use crate::pg::{db, wait};

/// Why a claim operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error(transparent)]
    Ledger(#[from] crate::Error),
    /// `finish` of a claim this session does not hold (taken over after a lost connection).
    #[error("ledger {location}: the claim of {key} is not held by this replica ({replica}) any more")]
    NotHeld { location: String, key: ClaimKey, replica: String },
    #[error("ledger {location}: claim of {key}: stored row is corrupt: {reason}")]
    Corrupt { location: String, key: ClaimKey, reason: String },
}

/// One unit of scheduled work: a task of a site in one interval.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClaimKey {
    pub site: String,
    pub task: String,
    /// The interval's start (whole seconds, UTC).
    pub interval_start: DateTime<Utc>,
}

impl std::fmt::Display for ClaimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} at {}", self.site, self.task, self.interval_start.format("%Y-%m-%dT%H:%M:%SZ"))
    }
}

impl ClaimKey {
    /// The advisory lock's name (hashed with the ledger's identity in SQL).
    fn lock_name(&self) -> String {
        format!("{}\u{1f}{}\u{1f}{}", self.site, self.task, self.interval_start.timestamp())
    }
}

/// What [`PgStore::claim`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Claimed afresh: run the work, then [`PgStore::finish_claim`].
    New,
    /// Unfinished, and its holder's session is gone: claimed by this replica; run the work again.
    TakenOver { from: String },
    /// Another live session holds it (or this one does): look again later.
    Busy,
    /// Finished already (by whoever): nothing to do.
    Done,
}

/// A stored claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRow {
    pub key: ClaimKey,
    pub replica: String,
    pub claimed_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    pub detail: Option<String>,
    /// The replica whose unfinished claim this one took over.
    pub taken_over_from: Option<String>,
}

/// The advisory lock key: the ledger's identity (database, schema) and the claim.
const LOCK_KEY: &str =
    "hashtextextended('fedsite claim ' || current_database() || '.' || current_schema() || ' ' || $1, 0)";

impl PgStore {
    /// Claims `key` for `replica` (a name for people; the session is what holds it).
    pub fn claim(&mut self, key: &ClaimKey, replica: &str) -> Result<Claim, ClaimError> {
        let op = format!("claim {key}");
        let name = key.lock_name();
        let got: bool = wait(self.c().query_one(&format!("SELECT pg_try_advisory_lock({LOCK_KEY})"), &[&name]))
            .and_then(|r| r.try_get(0))
            .map_err(db(self.location_str(), &op))?;
        if !got {
            return Ok(Claim::Busy);
        }
        let at = key.interval_start;
        let decided = (|| {
            let (client, loc) = self.parts();
            let tx = wait(client.transaction()).map_err(db(loc, &op))?;
            let row = wait(tx.query_opt(
                "SELECT replica, session = pg_backend_pid(), finished_at IS NOT NULL FROM central_claims \
                 WHERE site = $1 AND task = $2 AND interval_start = $3 FOR UPDATE",
                &[&key.site, &key.task, &at],
            ))
            .map_err(db(loc, &op))?;
            let claim = match row {
                None => {
                    let n = wait(tx.execute(
                        "INSERT INTO central_claims (site, task, interval_start, replica, session, claimed_at) \
                         VALUES ($1, $2, $3, $4, pg_backend_pid(), now()) ON CONFLICT DO NOTHING",
                        &[&key.site, &key.task, &at, &replica],
                    ))
                    .map_err(db(loc, &op))?;
                    if n == 1 { Claim::New } else { Claim::Busy }
                }
                Some(r) => {
                    let from: String = r.try_get(0).map_err(db(loc, &op))?;
                    let mine: bool = r.try_get(1).map_err(db(loc, &op))?;
                    let finished: bool = r.try_get(2).map_err(db(loc, &op))?;
                    if finished {
                        Claim::Done
                    } else if mine {
                        // Session locks nest: this session holds it for the work under way.
                        Claim::Busy
                    } else {
                        wait(tx.execute(
                            "UPDATE central_claims SET replica = $4, session = pg_backend_pid(), claimed_at = now(), \
                             taken_over_from = $5 WHERE site = $1 AND task = $2 AND interval_start = $3",
                            &[&key.site, &key.task, &at, &replica, &from],
                        ))
                        .map_err(db(loc, &op))?;
                        Claim::TakenOver { from }
                    }
                }
            };
            wait(tx.commit()).map_err(db(loc, &op))?;
            Ok::<_, crate::Error>(claim)
        })();
        let keep = matches!(decided, Ok(Claim::New | Claim::TakenOver { .. }));
        if !keep {
            self.unlock(&name, &op)?;
        }
        Ok(decided?)
    }

    /// Records how the claimed work ended and releases the claim.
    pub fn finish_claim(
        &mut self,
        key: &ClaimKey,
        replica: &str,
        outcome: &str,
        detail: &str,
    ) -> Result<(), ClaimError> {
        let op = format!("finish claim {key}");
        let n = wait(self.c().execute(
            "UPDATE central_claims SET finished_at = now(), outcome = $4, detail = $5 \
             WHERE site = $1 AND task = $2 AND interval_start = $3 AND session = pg_backend_pid() \
             AND finished_at IS NULL",
            &[&key.site, &key.task, &key.interval_start, &outcome, &detail],
        ))
        .map_err(db(self.location_str(), &op))?;
        self.unlock(&key.lock_name(), &op)?;
        if n != 1 {
            return Err(ClaimError::NotHeld {
                location: self.location_str().to_owned(),
                key: key.clone(),
                replica: replica.to_owned(),
            });
        }
        Ok(())
    }

    /// The claims no one finished (held by a live replica, or orphaned by a dead one), oldest first.
    pub fn unfinished_claims(&self) -> Result<Vec<ClaimKey>, ClaimError> {
        Ok(self.claim_rows("finished_at IS NULL")?.into_iter().map(|r| r.key).collect())
    }

    /// Every stored claim, by interval, site and task.
    pub fn claims(&self) -> Result<Vec<ClaimRow>, ClaimError> {
        self.claim_rows("TRUE")
    }

    fn claim_rows(&self, filter: &str) -> Result<Vec<ClaimRow>, ClaimError> {
        let op = "list claims";
        let rows = wait(self.c().query(
            &format!(
                "SELECT site, task, interval_start, replica, claimed_at, finished_at, outcome, detail, \
                 taken_over_from FROM central_claims WHERE {filter} ORDER BY interval_start, site, task"
            ),
            &[],
        ))
        .map_err(db(self.location_str(), op))?;
        rows.iter().map(|r| self.claim_row(r)).collect()
    }

    fn claim_row(&self, r: &Row) -> Result<ClaimRow, ClaimError> {
        let op = "list claims";
        let key = ClaimKey {
            site: r.try_get(0).map_err(db(self.location_str(), op))?,
            task: r.try_get(1).map_err(db(self.location_str(), op))?,
            interval_start: r.try_get(2).map_err(db(self.location_str(), op))?,
        };
        let read = || -> Result<ClaimRow, tokio_postgres::Error> {
            Ok(ClaimRow {
                key: key.clone(),
                replica: r.try_get(3)?,
                claimed_at: r.try_get(4)?,
                finished_at: r.try_get(5)?,
                outcome: r.try_get(6)?,
                detail: r.try_get(7)?,
                taken_over_from: r.try_get(8)?,
            })
        };
        read().map_err(|e| ClaimError::Corrupt { location: self.location_str().to_owned(), key, reason: e.to_string() })
    }

    fn unlock(&self, name: &str, op: &str) -> Result<(), crate::Error> {
        wait(self.c().execute(&format!("SELECT pg_advisory_unlock({LOCK_KEY})"), &[&name]))
            .map(|_| ())
            .map_err(db(self.location_str(), op))
    }
}
