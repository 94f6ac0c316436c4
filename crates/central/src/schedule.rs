//! `fedsite central serve`: the tasks of every site, every interval, from one or several
//! replicas sharing a PostgreSQL ledger. Owns the scheduling loop; who runs what is decided
//! by the ledger's claims (`ledger::claims`: a row per (site, task, interval) and a session
//! advisory lock held while the work runs), never by the replicas talking to each other.
//!
//! Intervals are aligned to the Unix epoch (`floor(now / interval) * interval`), so every
//! replica names the same interval the same way without agreeing on anything. At each
//! interval a replica queues every (site, task); it then claims queued work one piece at a
//! time while it has a free slot (`max_sites`), so replicas share an interval's work
//! naturally. Work another live replica holds stays queued until it is finished (then it is
//! dropped) or its holder dies (then it is taken over and run again). Unfinished claims of
//! earlier intervals — a replica that died mid-work — are queued too, so a survivor finishes
//! them even after their interval ended.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use ledger::{Claim, ClaimError, ClaimKey, PgStore};

use crate::run::{Central, Task, TaskResult, run_task};

/// How often queued work held by another replica is looked at again.
const POLL: Duration = Duration::from_millis(250);

/// What to serve.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Whole seconds, at least 1.
    pub interval: Duration,
    /// The tasks run for each site every interval.
    pub tasks: Vec<Task>,
    /// Only these sites (id or GOCDB name) when not empty.
    pub only: Vec<String>,
    /// This replica's name in the claims (for people; the session holds the claim).
    pub replica: String,
    /// Stop after this many intervals (and the work queued in them); `None`: forever.
    pub once_intervals: Option<u32>,
}

/// Why serving stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The interval is under one second.
    #[error("--interval must be at least 1 second")]
    Interval,
    /// Claiming or recording a run in the ledger.
    #[error(transparent)]
    Claim(#[from] ClaimError),
}

/// One finished (site, task, interval).
#[derive(Debug, Clone)]
pub struct Finished {
    /// The (site, task, interval) claimed.
    pub key: ClaimKey,
    /// How the run ended.
    pub result: TaskResult,
    /// The replica whose unfinished claim this run took over.
    pub taken_over_from: Option<String>,
    /// Recording the end failed (the claim was lost, e.g. the ledger connection dropped).
    pub record_error: Option<String>,
}

/// The start of the interval `now` is in.
pub fn interval_start(now: DateTime<Utc>, interval: Duration) -> DateTime<Utc> {
    let step = interval.as_secs().max(1) as i64;
    let secs = now.timestamp().div_euclid(step) * step;
    Utc.timestamp_opt(secs, 0).single().unwrap_or(now)
}

/// Serves until `once_intervals` intervals are done (forever without it), calling `done` for
/// every (site, task, interval) this replica ran.
pub async fn serve(
    central: &Central,
    folder: &sites::Folder,
    store: &mut PgStore,
    cfg: &ServeConfig,
    mut done: impl FnMut(&Finished),
) -> Result<(), ServeError> {
    if cfg.interval.as_secs() == 0 {
        return Err(ServeError::Interval);
    }
    let chosen: BTreeMap<&str, &sites::LoadedSite> = folder
        .sites
        .iter()
        .filter(|s| cfg.only.is_empty() || cfg.only.iter().any(|o| *o == s.id || *o == s.site.gocdb.as_str()))
        .map(|s| (s.id.as_str(), s))
        .collect();
    let job = |key: &ClaimKey| -> Option<(&sites::LoadedSite, Task)> {
        let task = Task::parse(&key.task).filter(|t| cfg.tasks.contains(t))?;
        Some((*chosen.get(key.site.as_str())?, task))
    };
    let mut intervals = 0u32;
    let mut current: Option<DateTime<Utc>> = None;
    let mut queued: BTreeSet<ClaimKey> = BTreeSet::new();
    let mut running_keys: BTreeSet<ClaimKey> = BTreeSet::new();
    let mut running = FuturesUnordered::new();
    loop {
        let now = Utc::now();
        let start = interval_start(now, cfg.interval);
        if current != Some(start) && cfg.once_intervals.is_none_or(|n| intervals < n) {
            current = Some(start);
            intervals += 1;
            for site in chosen.keys() {
                for task in &cfg.tasks {
                    queued.insert(ClaimKey {
                        site: (*site).to_owned(),
                        task: task.as_str().to_owned(),
                        interval_start: start,
                    });
                }
            }
        }
        // Unfinished claims: held by a live replica (dropped once it finishes) or orphaned.
        for key in store.unfinished_claims()? {
            if !running_keys.contains(&key) && job(&key).is_some() {
                queued.insert(key);
            }
        }
        let mut looked = Vec::new();
        for key in &queued {
            if running.len() >= central.max_sites.max(1) {
                break;
            }
            let from = match store.claim(key, &cfg.replica)? {
                Claim::Busy => continue,
                Claim::Done => {
                    looked.push(key.clone());
                    continue;
                }
                Claim::New => None,
                Claim::TakenOver { from } => Some(from),
            };
            looked.push(key.clone());
            let Some((site, task)) = job(key) else { continue };
            running_keys.insert(key.clone());
            let key = key.clone();
            running.push(async move {
                let result = run_task(central, site, task, Utc::now()).await;
                (key, from, result)
            });
        }
        for key in looked {
            queued.remove(&key);
        }
        let all_started = cfg.once_intervals.is_some_and(|n| intervals >= n);
        if all_started && queued.is_empty() && running.is_empty() {
            return Ok(());
        }
        let next = start + chrono::Duration::seconds(cfg.interval.as_secs() as i64);
        let until_next = (next - Utc::now()).to_std().unwrap_or_default();
        let nap = if all_started { POLL } else { POLL.min(until_next) };
        let finished = if running.is_empty() {
            tokio::time::sleep(nap).await;
            None
        } else {
            tokio::select! {
                f = running.next() => f,
                () = tokio::time::sleep(nap) => None,
            }
        };
        if let Some((key, taken_over_from, result)) = finished {
            running_keys.remove(&key);
            let record_error = store
                .finish_claim(&key, &cfg.replica, result.outcome.as_str(), &result.detail)
                .err()
                .map(|e| e.to_string());
            done(&Finished { key, result, taken_over_from, record_error });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_are_aligned_to_the_epoch() {
        let at = |s| Utc.timestamp_opt(s, 0).single().unwrap();
        let hour = Duration::from_secs(3600);
        assert_eq!(interval_start(at(1_796_644_799), hour), at(1_796_641_200));
        assert_eq!(interval_start(at(1_796_644_800), hour), at(1_796_644_800));
        assert_eq!(interval_start(at(7), Duration::from_secs(2)), at(6));
        // A zero interval is read as one second, never a division by zero.
        assert_eq!(interval_start(at(7), Duration::ZERO), at(7));
    }
}
