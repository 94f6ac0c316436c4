//! SuspendDuration from Nova instance actions: the seconds a server spent
//! paused or suspended (and, when configured, stopped or shelved) between
//! its creation and the end of the record, read off the action history.
//!
//! Counted: `pause` → `unpause`, `suspend` → `resume`; with
//! [`InactiveTime::CountAsSuspended`] also `stop` → `start` and
//! `shelve`/`shelveOffload` → `unshelve`. An interval still open at the
//! horizon is closed there; `delete` closes any interval. Actions whose
//! `start_time` is after the horizon are ignored.

use chrono::{DateTime, Utc};
use openstack::nova::InstanceAction;

use crate::config::InactiveTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edge {
    Begin,
    End,
    Neutral,
}

fn edge(action: &str, inactive: InactiveTime) -> Edge {
    match action {
        "pause" | "suspend" => Edge::Begin,
        "unpause" | "resume" => Edge::End,
        "stop" | "shelve" | "shelveOffload" if inactive == InactiveTime::CountAsSuspended => Edge::Begin,
        "start" | "unshelve" if inactive == InactiveTime::CountAsSuspended => Edge::End,
        "delete" | "forceDelete" => Edge::End,
        _ => Edge::Neutral,
    }
}

/// Seconds suspended within `[created, horizon]`.
pub fn suspended_seconds(
    actions: &[InstanceAction],
    created: DateTime<Utc>,
    horizon: DateTime<Utc>,
    inactive: InactiveTime,
) -> u64 {
    if horizon <= created {
        return 0;
    }
    let mut acts: Vec<(&DateTime<Utc>, &str)> = actions
        .iter()
        .filter_map(|a| a.start_time.as_ref().map(|t| (t, a.action.as_str())))
        .filter(|(t, _)| **t <= horizon)
        .collect();
    acts.sort_by_key(|(t, _)| **t);
    let mut total = 0i64;
    let mut since: Option<DateTime<Utc>> = None;
    let clip = |t: DateTime<Utc>| t.max(created).min(horizon);
    for (t, name) in acts {
        match edge(name, inactive) {
            Edge::Begin if since.is_none() => since = Some(*t),
            Edge::End => {
                if let Some(s) = since.take() {
                    total += (clip(*t) - clip(s)).num_seconds().max(0);
                }
            }
            _ => {}
        }
    }
    if let Some(s) = since {
        total += (horizon - clip(s)).num_seconds().max(0);
    }
    total.max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn act(name: &str, at: &str) -> InstanceAction {
        serde_json::from_value(
            serde_json::json!({"action": name, "request_id": format!("req-{name}-{at}"), "start_time": at}),
        )
        .unwrap()
    }
    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn pause_and_suspend_intervals_are_summed_and_open_ones_close_at_the_horizon() {
        let a = vec![
            act("create", "2023-05-01T00:00:00Z"),
            act("pause", "2023-05-02T00:00:00Z"),
            act("unpause", "2023-05-02T06:00:00Z"),
            act("suspend", "2023-05-03T00:00:00Z"),
        ];
        let s =
            suspended_seconds(&a, t("2023-05-01T00:00:00Z"), t("2023-05-04T00:00:00Z"), InactiveTime::CountAsRunning);
        assert_eq!(s, 6 * 3600 + 24 * 3600);
    }

    #[test]
    fn stop_counts_only_when_configured() {
        let a = vec![act("stop", "2023-05-02T00:00:00Z"), act("start", "2023-05-03T00:00:00Z")];
        let c = t("2023-05-01T00:00:00Z");
        let h = t("2023-05-05T00:00:00Z");
        assert_eq!(suspended_seconds(&a, c, h, InactiveTime::CountAsRunning), 0);
        assert_eq!(suspended_seconds(&a, c, h, InactiveTime::CountAsSuspended), 86400);
    }

    #[test]
    fn actions_after_the_horizon_are_ignored() {
        let a = vec![act("suspend", "2023-05-10T00:00:00Z")];
        assert_eq!(
            suspended_seconds(&a, t("2023-05-01T00:00:00Z"), t("2023-05-05T00:00:00Z"), InactiveTime::CountAsRunning),
            0
        );
    }
}
