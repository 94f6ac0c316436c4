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

impl Capture {
    /// The changes to store, given the cache's `valid_at` before the run: every server the run
    /// listed (deleted ones removed), and `valid_at` moved to the run's start; with a cache
    /// that could not be proved current (see [`usable`]), every older entry deleted first.
    pub fn update(&self, valid_at: Option<DateTime<Utc>>) -> ListedServersUpdate {
        let mut put = Vec::new();
        let mut remove = Vec::new();
        let listed = self.changed.values().flatten().chain(self.live.iter().flat_map(|l| l.iter()));
        let mut seen = std::collections::HashSet::new();
        for s in listed {
            if !seen.insert(s.id()) {
                continue;
            }
            match s.tenant_id() {
                Some(project) if !s.is_deleted() => put.push(ListedServerEntry {
                    server_id: s.id().to_string(),
                    project_id: project.to_string(),
                    body: s.encode(),
                }),
                _ => remove.push(s.id().to_string()),
            }
        }
        ListedServersUpdate { valid_at: self.started_at, reset: !usable(valid_at, self.listed_since), put, remove }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
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
