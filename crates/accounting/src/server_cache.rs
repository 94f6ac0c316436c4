//! The ledger-side cache of listed servers: what the all-projects `servers/detail` listings
//! said of each server, so an hourly run need not list the live servers again for the
//! servers only os-simple-tenant-usage names (on `large`, 130 pages in a chain after the
//! changed-server and usage listings).
//!
//! The rule. Nova saves the instance on every change (a resize, a rename, an action, a
//! deletion: each moves `updated`), and `changes-since=S` lists every server whose `updated`
//! is at or after S, deleted ones included. The cache as a whole carries `valid_at` (our clock,
//! taken before a run's first listing): every entry is the server's state at `valid_at` or a
//! later state. A run whose complete changed-server listing starts at S' with
//! `S' + SKEW_MARGIN <= valid_at` proves every server absent from it unchanged since S', so
//! since before `valid_at`: its entry is its current state, what the live listing would give.
//! After such a run every server it listed is stored again (the deleted ones removed), so the
//! invariant holds for the run's own start, which becomes `valid_at`. A run whose listing
//! starts later than that (a window that jumped forward) cannot prove it and starts the cache
//! afresh. An entry is only ever used in place of the live listing, never for a server in the
//! changed listing, and its project is checked against the usage entry as the listing's is.
//!
//! With the cache on, the changed-server listing starts [`SKEW_MARGIN`] before the earliest
//! window (the servers it adds are served from that listing, not fetched one by one), so an
//! hourly run whose window starts where the previous run's ended can use what that run stored.
//! The pipeline (`pipeline::run`, with a ledger) is the only user.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use ledger::{ListedServerEntry, ListedServers, ListedServersUpdate};

use crate::kept::{KeptServer, ServersById};

/// How far our clock (which stamps `valid_at`) and the clocks that stamp Nova's `updated`
/// may differ, plus Nova's one-second resolution: the changed-server listing starts this much
/// before the window so a change just after a run's start is never missed.
pub const SKEW_MARGIN: TimeDelta = TimeDelta::minutes(5);

/// Reads the entries of some servers (`None`: the read failed, a warning; nothing is used).
pub type Lookup<'a> = &'a (dyn Fn(&[&str]) -> Option<ListedServers> + Sync);

/// Whether a cache valid at `valid_at` may stand in for the live listing of a run whose
/// changed-server listing started at `listed_since`.
pub fn usable(valid_at: Option<DateTime<Utc>>, listed_since: DateTime<Utc>) -> bool {
    valid_at.is_some_and(|v| listed_since + SKEW_MARGIN <= v)
}

/// What one run listed, to store back (see [`Capture::update`]).
pub(crate) struct Capture {
    /// Taken before the run's first listing.
    pub started_at: DateTime<Utc>,
    /// Where the changed-server listing started.
    pub listed_since: DateTime<Utc>,
    /// The complete changed-server listing, by project.
    pub changed: Arc<HashMap<String, Vec<KeptServer>>>,
    /// Servers the live listing gave this run (not those taken from the cache).
    pub live: Option<Arc<ServersById>>,
    /// Entries used in place of the live listing.
    pub used: usize,
}

/// The counts of what a run did with the cache, for its report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerCacheReport {
    /// Usage-only servers taken from the cache.
    pub used: usize,
    /// Entries stored (or kept unchanged) and removed.
    pub stored: usize,
    pub removed: usize,
    /// The cache could not stand in for this run's live listing and was started afresh.
    pub reset: bool,
    /// Storing failed (a warning of the run).
    pub error: Option<String>,
}

/// Servers looked up, and stored, per ledger call: the stored form of a whole site's servers
/// (tens of thousands, with their flavors' extra specs) is never held at once.
pub const BATCH: usize = 5_000;

impl Capture {
    /// The changes to store, given the cache's `valid_at` before the run, as a sequence of
    /// updates each of at most [`BATCH`] servers, to apply in order: every server the run listed
    /// (deleted ones removed), and `valid_at` moved to the run's start by the last one only; with
    /// a cache that could not be proved current (see [`usable`]), every older entry deleted by
    /// the first. Applied one transaction each, any prefix keeps the cache's invariant: an entry
    /// stored is a state at or after the run's start, and `valid_at` moves only once every
    /// server listed since the old one is stored (before that it stays the old one, or the epoch
    /// after a reset: never usable).
    pub fn updates(&self, valid_at: Option<DateTime<Utc>>) -> impl Iterator<Item = ListedServersUpdate> + '_ {
        let reset = !usable(valid_at, self.listed_since);
        let keep = valid_at.filter(|_| !reset).unwrap_or(DateTime::UNIX_EPOCH);
        let mut seen = std::collections::HashSet::new();
        let mut remove = Vec::new();
        // Each stored server with its project: a deleted server, or one without a project
        // (which a usage entry could never match), is removed instead.
        let mut listed: Vec<(&KeptServer, &str)> = self
            .changed
            .values()
            .flatten()
            .chain(self.live.iter().flat_map(|l| l.iter()))
            .filter(|s| seen.insert(s.id()))
            .filter_map(|s| match s.tenant_id() {
                Some(project) if !s.is_deleted() => Some((s, project)),
                _ => {
                    remove.push(s.id().to_string());
                    None
                }
            })
            .collect();
        // In id order: the store's key order, so each batch walks its pages once.
        listed.sort_unstable_by_key(|(s, _)| s.id());
        let batches = listed.len().div_ceil(BATCH).max(1);
        let started_at = self.started_at;
        let mut remove = Some(remove);
        (0..batches).map(move |i| ListedServersUpdate {
            valid_at: if i + 1 == batches { started_at } else { keep },
            reset: reset && i == 0,
            put: listed
                .iter()
                .skip(i * BATCH)
                .take(BATCH)
                .map(|(s, project)| ListedServerEntry {
                    server_id: s.id().to_string(),
                    project_id: project.to_string(),
                    body: s.encode(),
                })
                .collect(),
            // The removals go with the first update (`take` leaves none for the others).
            remove: remove.take().unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn capture(n: usize, started_at: DateTime<Utc>) -> Capture {
        let mut i = crate::kept::Interner::default();
        let mut server = |id: String, status: &str| {
            let item = serde_json::json!({"id": id, "status": status, "tenant_id": "p1",
                "created": "2023-05-01T00:00:00Z", "updated": "2023-05-02T00:00:00Z"});
            KeptServer::new(serde_json::from_value(item).unwrap(), &mut i)
        };
        let mut servers: Vec<KeptServer> = (0..n).map(|k| server(format!("s{k}"), "ACTIVE")).collect();
        servers.push(server("gone".into(), "DELETED"));
        Capture {
            started_at,
            listed_since: t("2026-01-01T11:00:00Z"),
            changed: Arc::new(HashMap::from([("p1".to_string(), servers)])),
            live: None,
            used: 0,
        }
    }

    #[test]
    fn a_run_is_stored_in_batches_moving_valid_at_with_the_last_only() {
        let start = t("2026-01-01T12:00:00Z");
        let c = capture(2 * BATCH + 1, start);
        // A cache proved current: kept, valid_at unchanged until the last batch.
        let old = t("2026-01-01T11:30:00Z");
        let u: Vec<_> = c.updates(Some(old)).collect();
        assert_eq!(u.iter().map(|u| u.put.len()).collect::<Vec<_>>(), [BATCH, BATCH, 1]);
        assert_eq!(u.iter().map(|u| u.valid_at).collect::<Vec<_>>(), [old, old, start]);
        assert!(u.iter().all(|u| !u.reset));
        assert_eq!((u[0].remove.clone(), u[1].remove.len(), u[2].remove.len()), (vec!["gone".to_string()], 0, 0));
        let back = KeptServer::decode(
            "s7",
            &u.iter().flat_map(|u| &u.put).find(|e| e.server_id == "s7").unwrap().body,
            &mut Default::default(),
        )
        .unwrap();
        assert_eq!(back.server().updated, Some(t("2023-05-02T00:00:00Z")));
        // Not proved current (or never stored): reset by the first, never usable until the last.
        for before in [None, Some(t("2026-01-01T11:04:59Z"))] {
            let u: Vec<_> = c.updates(before).collect();
            assert_eq!(u.iter().map(|u| u.reset).collect::<Vec<_>>(), [true, false, false]);
            assert!(!usable(Some(u[1].valid_at), t("1970-01-01T00:00:00Z")) && u[2].valid_at == start);
        }
        // A small run: one update.
        let u: Vec<_> = capture(3, start).updates(Some(old)).collect();
        assert_eq!((u.len(), u[0].put.len(), u[0].valid_at), (1, 3, start));
    }

    #[test]
    fn usable_only_when_the_listing_starts_a_margin_before_the_cache_was_valid() {
        let since = t("2026-01-01T11:55:00Z");
        assert!(usable(Some(t("2026-01-01T12:00:00Z")), since), "exactly the margin");
        assert!(usable(Some(t("2026-01-01T13:00:00Z")), since));
        assert!(!usable(Some(t("2026-01-01T11:59:59Z")), since));
        assert!(!usable(None, since), "never stored");
    }
}
