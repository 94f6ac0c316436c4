//! The ledger-side cache of Nova instance actions (SuspendDuration): a server's action list
//! is listed again only when its `updated` moved since the list was fetched, so an hourly run
//! on the same ledger lists the actions of the few servers that changed, not of every one.
//!
//! The rule: Nova saves the instance (so moves `updated`) on every action (each one sets
//! `task_state`), so a list fetched when the server's `updated` was U is still complete while
//! `updated` is U. It is stored and reused only when U is older than the moment the list was
//! fetched by [`SAFETY_MARGIN`] (see there). A 404 (purged) or failed fetch is never cached.
//! Only the action names and start times are kept: all `suspend::suspended_seconds` reads.
//! The pipeline (`pipeline::run`, with a ledger) is the only user; `dry_run` and
//! `accounting::Extract` list every list as before.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use ledger::{CachedAction, CachedActions, StoredActions};
use openstack::nova::{InstanceAction, Server};

/// How much older than its fetch a server's `updated` must be for its action list to be
/// stored (and reused). Two things can make a list fetched just after an action miss it or a
/// later one: Nova's timestamps have one-second resolution (a second action in the same second
/// leaves `updated` unchanged) and Nova saves the instance *before* it records the action (a
/// list fetched in between lacks it); and our clock, which stamps the fetch, may be ahead of
/// the Nova database's clock that stamps `updated`. Five minutes covers both with room: any
/// action after the fetch then moves `updated` past the stored value. A server acted on within
/// the margin is simply listed again by the next run.
pub const SAFETY_MARGIN: TimeDelta = TimeDelta::minutes(5);

/// Cached lists no run has stored or reused for this long are deleted at the end of a run
/// (`Store::prune_cached_actions`): the servers are gone (deleted, or outside every window
/// extracted since). Losing an entry only costs one request if the server comes back.
pub const PRUNE_AFTER: TimeDelta = TimeDelta::days(30);

/// A reused list's `seen_at` is written again only when it is older than this, so an hourly
/// run does not rewrite every entry it reuses.
pub const TOUCH_EVERY: TimeDelta = TimeDelta::days(1);

/// Reads the cached lists of some servers of one project (the pipeline's reads the ledger;
/// a failed read is a warning and no hits).
pub type Lookup<'a> = &'a (dyn Fn(&str, &[&str]) -> Vec<StoredActions> + Sync);

/// What one project's extraction learnt for the cache, handed to the pipeline in
/// [`crate::ProjectOutcome::action_cache`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActionCacheUpdate {
    /// Lists fetched this run that may be stored.
    pub fresh: Vec<CachedActions>,
    /// Servers whose cached list was reused and should be marked seen.
    pub touch: Vec<String>,
    /// Lists taken from the cache.
    pub reused: usize,
    /// Lists fetched from Nova (stored or not).
    pub fetched: usize,
}

/// `updated` as the ledger stores it (microseconds).
fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// Whether a list fetched at `fetched_at` while the server's `updated` was `updated` may be
/// stored: `updated` is older than the fetch by more than [`SAFETY_MARGIN`].
pub fn storable(updated: Option<DateTime<Utc>>, fetched_at: DateTime<Utc>) -> bool {
    updated.is_some_and(|u| u + SAFETY_MARGIN < fetched_at)
}

/// Whether a cached list still holds every action of a server now listed with `updated`.
pub fn reusable(cached: &CachedActions, updated: Option<DateTime<Utc>>) -> bool {
    updated.is_some_and(|u| micros(u) == cached.updated) && storable(Some(cached.updated), cached.fetched_at)
}

/// One project's view of the cache while its servers' facts are gathered.
pub(crate) struct ProjectCache {
    project: String,
    now: DateTime<Utc>,
    hits: HashMap<String, StoredActions>,
    update: Mutex<ActionCacheUpdate>,
}

impl ProjectCache {
    /// Looks the servers `ids` (those that may need their actions) up in one batch.
    pub fn load(lookup: Lookup, project: &str, ids: &[&str]) -> ProjectCache {
        let hits = if ids.is_empty() { Vec::new() } else { lookup(project, ids) };
        ProjectCache {
            project: project.to_string(),
            now: Utc::now(),
            hits: hits.into_iter().map(|h| (h.cached.server_id.clone(), h)).collect(),
            update: Mutex::new(ActionCacheUpdate::default()),
        }
    }

    /// The cached list of `server`, if it is still complete (see [`reusable`]).
    pub fn reuse(&self, server: &Server) -> Option<Vec<InstanceAction>> {
        let hit = self.hits.get(&server.id).filter(|h| reusable(&h.cached, server.updated))?;
        let mut u = self.update.lock().unwrap();
        u.reused += 1;
        if hit.seen_at + TOUCH_EVERY < self.now {
            u.touch.push(server.id.clone());
        }
        Some(
            hit.cached
                .actions
                .iter()
                .map(|a| InstanceAction {
                    action: a.action.clone(),
                    instance_uuid: None,
                    request_id: String::new(),
                    user_id: None,
                    project_id: None,
                    start_time: Some(a.start_time),
                    updated_at: None,
                    message: None,
                    events: None,
                })
                .collect(),
        )
    }

    /// A list fetched from Nova at `fetched_at` (taken before the request): kept for the
    /// ledger when [`storable`].
    pub fn fetched(&self, server: &Server, fetched_at: DateTime<Utc>, actions: &[InstanceAction]) {
        let mut u = self.update.lock().unwrap();
        u.fetched += 1;
        let Some(updated) = server.updated.filter(|_| storable(server.updated, fetched_at)) else { return };
        u.fresh.push(CachedActions {
            server_id: server.id.clone(),
            project_id: self.project.clone(),
            updated: micros(updated),
            fetched_at,
            actions: actions
                .iter()
                .filter_map(|a| a.start_time.map(|t| CachedAction { action: a.action.clone(), start_time: t }))
                .collect(),
        });
    }

    pub fn finish(self) -> ActionCacheUpdate {
        self.update.into_inner().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn cached(updated: &str, fetched_at: &str) -> CachedActions {
        CachedActions {
            server_id: "s".into(),
            project_id: "p".into(),
            updated: t(updated),
            fetched_at: t(fetched_at),
            actions: vec![],
        }
    }

    #[test]
    fn a_list_is_stored_only_when_updated_is_older_than_the_fetch_by_the_margin() {
        let fetched = t("2026-01-01T12:00:00Z");
        assert!(storable(Some(t("2026-01-01T11:54:59Z")), fetched));
        assert!(!storable(Some(t("2026-01-01T11:55:00Z")), fetched), "exactly the margin: not stored");
        assert!(!storable(Some(t("2026-01-01T11:59:59Z")), fetched));
        assert!(!storable(Some(t("2026-01-01T12:00:01Z")), fetched), "clock skew: updated after the fetch");
        assert!(!storable(None, fetched));
    }

    #[test]
    fn a_list_is_reused_only_for_the_same_updated_and_outside_the_margin() {
        let c = cached("2026-01-01T11:00:00Z", "2026-01-01T12:00:00Z");
        assert!(reusable(&c, Some(t("2026-01-01T11:00:00Z"))));
        assert!(!reusable(&c, Some(t("2026-01-01T11:00:01Z"))), "updated moved: an action since");
        assert!(!reusable(&c, Some(t("2026-01-01T10:59:59Z"))));
        assert!(!reusable(&c, None));
        // Nanoseconds beyond what the ledger keeps do not count.
        assert!(reusable(&c, Some(t("2026-01-01T11:00:00.0000001Z"))));
        // A list stored by a build with a smaller margin is not trusted.
        let close = cached("2026-01-01T11:58:00Z", "2026-01-01T12:00:00Z");
        assert!(!reusable(&close, Some(t("2026-01-01T11:58:00Z"))));
    }
}
