//! The listed-server cache (SQLite schema v4, PostgreSQL v5; tables `listed_servers` and
//! `listed_servers_state`): per server, the compact form of what a Nova listing said of it
//! (an opaque body the caller encodes), and for the whole cache the time `valid_at` every
//! entry is known to be current at or after. What makes an entry safe to use is the caller's
//! rule (see `accounting::server_cache`); the ledger stores, looks up and replaces.

use chrono::{DateTime, Utc};

use crate::Error;
use crate::rules::invalid;

/// One server as a listing gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedServerEntry {
    pub server_id: String,
    pub project_id: String,
    /// The caller's compact encoding of the listed fields.
    pub body: String,
}

/// What a lookup found: the cache's `valid_at` (None: never stored) and the entries of the
/// servers asked for that it holds, in no particular order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListedServers {
    pub valid_at: Option<DateTime<Utc>>,
    pub found: Vec<ListedServerEntry>,
}

/// One run's changes to the cache, applied in ONE transaction: with `reset`, every entry is
/// deleted first; then `remove` are deleted, `put` inserted or replaced, and `valid_at` set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListedServersUpdate {
    pub valid_at: DateTime<Utc>,
    pub reset: bool,
    pub put: Vec<ListedServerEntry>,
    pub remove: Vec<String>,
}

/// Entries with ids and projects, each server once.
pub(crate) fn validate(loc: &str, op: &str, u: &ListedServersUpdate) -> Result<(), Error> {
    let mut seen = std::collections::HashSet::new();
    for e in &u.put {
        if e.server_id.is_empty() || e.project_id.is_empty() {
            return Err(invalid(loc, op, format!("listed server {:?} without an id or a project", e.server_id)));
        }
        if !seen.insert(e.server_id.as_str()) {
            return Err(invalid(loc, op, format!("listed server {} given twice", e.server_id)));
        }
    }
    if let Some(id) = u.remove.iter().find(|id| seen.contains(id.as_str())) {
        return Err(invalid(loc, op, format!("listed server {id} both stored and removed")));
    }
    Ok(())
}
