//! What `central serve` shows of its work: every (site, task)'s last result, its age, its
//! error, from the claims every replica writes to the shared ledger (`ledger::claims`), as an
//! HTML status page and as Prometheus metrics per site and task (last success time, duration,
//! failures). Pure functions of the claims: the serving is the command's.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use ledger::ClaimRow;

/// One (site, task) as its claims tell it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskStatus {
    /// The site id.
    pub site: String,
    /// The task name.
    pub task: String,
    /// The last finished run: outcome, when it finished, how long it took, its detail.
    pub last: Option<Finished>,
    /// When the task last ended `ok`.
    pub last_success: Option<DateTime<Utc>>,
    /// Finished runs that ended `failed`.
    pub failures: u64,
    /// Finished runs in all.
    pub runs: u64,
    /// A run claimed and not finished yet (by this replica: the replica that holds it).
    pub running: Option<String>,
}

/// A finished run.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// `ok`, `skipped` or `failed`.
    pub outcome: String,
    /// When it finished.
    pub at: DateTime<Utc>,
    /// How long it ran, seconds.
    pub seconds: f64,
    /// What was done, or what went wrong.
    pub detail: String,
    /// The replica that ran it.
    pub replica: String,
}

/// Every (site, task) of `claims`, by site and task.
pub fn summarize(claims: &[ClaimRow]) -> Vec<TaskStatus> {
    let mut by: BTreeMap<(String, String), TaskStatus> = BTreeMap::new();
    let mut rows: Vec<&ClaimRow> = claims.iter().collect();
    rows.sort_by_key(|r| (r.finished_at, r.claimed_at));
    for r in rows {
        let s = by.entry((r.key.site.clone(), r.key.task.clone())).or_insert_with(|| TaskStatus {
            site: r.key.site.clone(),
            task: r.key.task.clone(),
            last: None,
            last_success: None,
            failures: 0,
            runs: 0,
            running: None,
        });
        match (r.finished_at, r.outcome.as_deref()) {
            (Some(at), Some(outcome)) => {
                s.runs += 1;
                if outcome == "failed" {
                    s.failures += 1;
                }
                if outcome == "ok" {
                    s.last_success = Some(s.last_success.map_or(at, |t| t.max(at)));
                }
                s.last = Some(Finished {
                    outcome: outcome.to_owned(),
                    at,
                    seconds: (at - r.claimed_at).num_milliseconds().max(0) as f64 / 1000.0,
                    detail: r.detail.clone().unwrap_or_default(),
                    replica: r.replica.clone(),
                });
            }
            _ => s.running = Some(r.replica.clone()),
        }
    }
    by.into_values().collect()
}

/// The HTML status page: one row per (site, task), failed rows first, then by site.
pub fn html(status: &[TaskStatus], now: DateTime<Utc>) -> String {
    let mut rows: Vec<&TaskStatus> = status.iter().collect();
    rows.sort_by_key(|s| (s.last.as_ref().is_none_or(|l| l.outcome != "failed"), s.site.clone(), s.task.clone()));
    let mut out = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>fedsite central</title>\
         <style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:left}\
         .failed{background:#fdd}.ok{background:#dfd}.skipped{background:#eee}</style></head><body>\n\
         <h1>fedsite central serve</h1>\n<table>\n<tr><th>site</th><th>task</th><th>last result</th>\
         <th>age</th><th>duration</th><th>last success</th><th>failures</th><th>detail</th></tr>\n",
    );
    for s in rows {
        let (class, result, ago, took, detail) = match &s.last {
            Some(l) => (
                l.outcome.as_str(),
                format!("{} ({})", l.outcome, escape(&l.replica)),
                age(now, l.at),
                format!("{:.1} s", l.seconds),
                escape(&l.detail),
            ),
            None => ("", "never finished".to_string(), "-".into(), "-".into(), String::new()),
        };
        let running = s.running.as_ref().map(|r| format!(" · running on {}", escape(r))).unwrap_or_default();
        let _ = writeln!(
            out,
            "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{result}{running}</td><td>{ago}</td><td>{took}</td>\
             <td>{}</td><td>{}/{}</td><td>{detail}</td></tr>",
            escape(&s.site),
            escape(&s.task),
            s.last_success.map_or("never".into(), |t| age(now, t)),
            s.failures,
            s.runs,
        );
    }
    out.push_str("</table>\n</body></html>\n");
    out
}

/// Prometheus text format, per site and task.
pub fn metrics(status: &[TaskStatus]) -> String {
    let mut out = String::new();
    let label = |s: &TaskStatus| format!("site=\"{}\",task=\"{}\"", label_value(&s.site), label_value(&s.task));
    out.push_str("# HELP fedsite_central_last_success_timestamp_seconds When the task last ended ok.\n");
    out.push_str("# TYPE fedsite_central_last_success_timestamp_seconds gauge\n");
    for s in status {
        if let Some(t) = s.last_success {
            let _ = writeln!(out, "fedsite_central_last_success_timestamp_seconds{{{}}} {}", label(s), t.timestamp());
        }
    }
    out.push_str("# HELP fedsite_central_last_duration_seconds How long the last finished run took.\n");
    out.push_str("# TYPE fedsite_central_last_duration_seconds gauge\n");
    for s in status {
        if let Some(l) = &s.last {
            let _ = writeln!(out, "fedsite_central_last_duration_seconds{{{}}} {:.3}", label(s), l.seconds);
        }
    }
    out.push_str("# HELP fedsite_central_last_failed Whether the last finished run failed (1) or not (0).\n");
    out.push_str("# TYPE fedsite_central_last_failed gauge\n");
    for s in status {
        if let Some(l) = &s.last {
            let _ = writeln!(out, "fedsite_central_last_failed{{{}}} {}", label(s), u8::from(l.outcome == "failed"));
        }
    }
    out.push_str("# HELP fedsite_central_failures_total Finished runs that failed.\n");
    out.push_str("# TYPE fedsite_central_failures_total counter\n");
    for s in status {
        let _ = writeln!(out, "fedsite_central_failures_total{{{}}} {}", label(s), s.failures);
    }
    out.push_str("# HELP fedsite_central_runs_total Finished runs.\n");
    out.push_str("# TYPE fedsite_central_runs_total counter\n");
    for s in status {
        let _ = writeln!(out, "fedsite_central_runs_total{{{}}} {}", label(s), s.runs);
    }
    out
}

fn age(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    let s = (now - t).num_seconds().max(0);
    match s {
        0..60 => format!("{s} s ago"),
        60..3600 => format!("{} min ago", s / 60),
        3600..172_800 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn label_value(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn t(m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 10, m, s).unwrap()
    }

    fn row(site: &str, task: &str, interval: u32, claimed: (u32, u32), done: Option<((u32, u32), &str)>) -> ClaimRow {
        ClaimRow {
            key: ledger::ClaimKey { site: site.into(), task: task.into(), interval_start: t(interval, 0) },
            replica: "a".into(),
            claimed_at: t(claimed.0, claimed.1),
            finished_at: done.map(|((m, s), _)| t(m, s)),
            outcome: done.map(|(_, o)| o.to_string()),
            detail: done.map(|(_, o)| format!("<{o}>")),
            taken_over_from: None,
        }
    }

    #[test]
    fn the_last_result_success_and_failures_per_site_and_task() {
        let claims = vec![
            row("S1", "info", 0, (0, 1), Some(((0, 3), "ok"))),
            row("S1", "info", 5, (5, 1), Some(((5, 4), "failed"))),
            row("S1", "info", 10, (10, 1), None),
            row("S2", "images", 0, (0, 1), Some(((0, 9), "ok"))),
        ];
        let st = summarize(&claims);
        assert_eq!(st.len(), 2);
        let s1 = &st[0];
        assert_eq!((s1.site.as_str(), s1.task.as_str(), s1.runs, s1.failures), ("S1", "info", 2, 1));
        assert_eq!(s1.last_success, Some(t(0, 3)));
        let last = s1.last.as_ref().unwrap();
        assert_eq!((last.outcome.as_str(), last.at, last.seconds), ("failed", t(5, 4), 3.0));
        assert_eq!(s1.running.as_deref(), Some("a"));

        let m = metrics(&st);
        assert!(m.contains(&format!(
            "fedsite_central_last_success_timestamp_seconds{{site=\"S1\",task=\"info\"}} {}",
            t(0, 3).timestamp()
        )));
        assert!(m.contains("fedsite_central_last_failed{site=\"S1\",task=\"info\"} 1"), "{m}");
        assert!(m.contains("fedsite_central_failures_total{site=\"S2\",task=\"images\"} 0"), "{m}");
        assert!(m.contains("fedsite_central_last_duration_seconds{site=\"S2\",task=\"images\"} 8.000"), "{m}");

        let page = html(&st, t(10, 4));
        // The failed row first, its detail escaped, its age and last success told.
        let failed = page.find("<tr class=\"failed\"><td>S1</td>").unwrap();
        assert!(failed < page.find("<td>S2</td>").unwrap());
        assert!(page.contains("&lt;failed&gt;") && !page.contains("<failed>"));
        assert!(page.contains("5 min ago") && page.contains("10 min ago") && page.contains("running on a"));
    }
}
