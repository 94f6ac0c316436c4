//! The instance-action cache (schema v3, table `instance_actions`): per server, the Nova
//! instance actions SuspendDuration needs (name and start time only), with the server's
//! `updated` they were listed at. Types, validation and the stored form shared by backends.
//!
//! Stored form of the actions: compact JSON `[["suspend",1684800000000000],...]`, each action
//! its name and start time in microseconds since the epoch, in Nova's order.

use chrono::{DateTime, Utc};

use crate::Error;
use crate::rules::invalid;

/// One instance action as cached: what `suspended_seconds` reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedAction {
    /// Nova's action name (`suspend`, `resume`, `pause`, ...).
    pub action: String,
    pub start_time: DateTime<Utc>,
}

/// A server's instance-action list as listed once, to reuse while the server's `updated`
/// does not move (the caller decides when that is safe; see `accounting::action_cache`).
#[derive(Debug, Clone, PartialEq)]
pub struct CachedActions {
    pub server_id: String,
    pub project_id: String,
    /// The server's `updated` (from the listing of the run that fetched the actions).
    pub updated: DateTime<Utc>,
    /// When the actions were fetched (taken just before the request was sent).
    pub fetched_at: DateTime<Utc>,
    pub actions: Vec<CachedAction>,
}

/// A cached list as stored, with when a run last stored or reused it (entries not seen for
/// long are pruned with [`crate::Store::prune_cached_actions`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredActions {
    pub cached: CachedActions,
    pub seen_at: DateTime<Utc>,
}

/// Lists of servers of `project` only, with ids.
pub(crate) fn validate(loc: &str, op: &str, project: &str, fresh: &[CachedActions]) -> Result<(), Error> {
    if project.is_empty() {
        return Err(invalid(loc, op, "empty project id"));
    }
    for c in fresh {
        if c.server_id.is_empty() {
            return Err(invalid(loc, op, "cached instance actions with an empty server id"));
        }
        if c.project_id != project {
            return Err(invalid(
                loc,
                op,
                format!(
                    "instance actions of server {} belong to project {:?}, not {project:?}",
                    c.server_id, c.project_id
                ),
            ));
        }
    }
    Ok(())
}

pub(crate) fn encode(actions: &[CachedAction]) -> String {
    let v: Vec<(&str, i64)> = actions.iter().map(|a| (a.action.as_str(), a.start_time.timestamp_micros())).collect();
    serde_json::to_string(&v).unwrap_or_else(|_| "[]".into()) // strings and integers always serialise
}

/// Why a server's stored instance actions are corrupt.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ActionsError {
    #[error("instance actions of server {server}: {source}")]
    Json { server: String, source: serde_json::Error },
    #[error("instance actions of server {server}: time {us} µs is out of range")]
    Time { server: String, us: i64 },
}

/// The stored form back, or why it is corrupt.
pub(crate) fn decode(server: &str, s: &str) -> Result<Vec<CachedAction>, ActionsError> {
    let v: Vec<(String, i64)> =
        serde_json::from_str(s).map_err(|source| ActionsError::Json { server: server.to_string(), source })?;
    v.into_iter()
        .map(|(action, us)| {
            let start_time = DateTime::from_timestamp_micros(us)
                .ok_or_else(|| ActionsError::Time { server: server.to_string(), us })?;
            Ok(CachedAction { action, start_time })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_form_is_compact_and_round_trips_to_the_microsecond() {
        let a = vec![
            CachedAction { action: "create".into(), start_time: "2023-05-01T00:00:00Z".parse().unwrap() },
            CachedAction { action: "sus\"pend".into(), start_time: "2023-05-02T00:00:00.123456Z".parse().unwrap() },
        ];
        let s = encode(&a);
        assert_eq!(s, r#"[["create",1682899200000000],["sus\"pend",1682985600123456]]"#);
        assert_eq!(decode("s1", &s).unwrap(), a);
        assert_eq!(decode("s1", "[]").unwrap(), vec![]);
    }

    #[test]
    fn a_corrupt_stored_form_is_an_error_naming_the_server() {
        for bad in ["", "{", r#"[["x"]]"#, r#"[["x", 1e300]]"#, r#"[["x", 9223372036854775807]]"#] {
            let e = decode("srv-9", bad).unwrap_err().to_string();
            assert!(e.contains("srv-9"), "{bad}: {e}");
        }
    }
}
