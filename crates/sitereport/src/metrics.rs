//! Prometheus metrics of fedsite runs, ledger and spool, rendered in the text exposition format
//! (0.0.4): written as a node_exporter textfile after a cron run (`--metrics-textfile`) and served
//! by `fedsite serve --metrics`. Rendered by hand, not with the `prometheus-client` crate: every
//! value is a snapshot read from a run report, the ledger or the spool when the text is made
//! (no live instruments to register), and the format needs only label escaping.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use accounting::pipeline::RunReport;
use chrono::{DateTime, Utc};
use ledger::{Ledger, RunOutcome, SnapshotFilter, SummaryGroup};
use messaging::sender::{SendReport, SpoolStatus};
use openstack::{CallStats, RouteKey};

/// Why the metrics could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A ledger query failed.
    #[error(transparent)]
    Ledger(#[from] ledger::Error),
    /// The textfile could not be written (`what`: the step, `path`: the file or directory).
    #[error("metrics textfile: {what} {}", path.display())]
    Textfile {
        /// The step that failed (creating, writing, renaming).
        what: &'static str,
        /// The file or directory.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

type Result<T, E = MetricsError> = std::result::Result<T, E>;

/// A stage of the site's pipeline: its metric label (`stage="extract"`) and the ledger's run
/// command of its runs ([`ledger::runs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// `accounting extract`.
    Extract,
    /// `send`.
    Send,
    /// `receive`.
    Receive,
}

impl Stage {
    /// The `stage` label.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Extract => "extract",
            Stage::Send => "send",
            Stage::Receive => "receive",
        }
    }

    /// The ledger's `command` of this stage's runs.
    pub fn run_command(self) -> &'static str {
        match self {
            Stage::Extract => ledger::runs::EXTRACT,
            Stage::Send => ledger::runs::SEND,
            Stage::Receive => ledger::runs::RECEIVE,
        }
    }
}

struct Family {
    help: &'static str,
    kind: &'static str,
    /// (metric name with suffix, labels) → value; sorted for a stable text.
    samples: BTreeMap<(String, Vec<(String, String)>), f64>,
}

/// A set of metric families, rendered in name order.
#[derive(Default)]
pub struct Metrics {
    families: BTreeMap<String, Family>,
}

impl Metrics {
    /// No metric yet.
    pub fn new() -> Metrics {
        Metrics::default()
    }

    fn add(
        &mut self,
        kind: &'static str,
        name: &str,
        suffix: &str,
        help: &'static str,
        labels: &[(&str, &str)],
        v: f64,
    ) {
        let f =
            self.families.entry(name.to_string()).or_insert_with(|| Family { help, kind, samples: BTreeMap::new() });
        let labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        *f.samples.entry((format!("{name}{suffix}"), labels)).or_insert(0.0) += v;
    }

    /// Adds `v` to a gauge (same labels twice: summed).
    pub fn gauge(&mut self, name: &str, help: &'static str, labels: &[(&str, &str)], v: f64) {
        self.add("gauge", name, "", help, labels, v)
    }

    /// Adds a sample of the counter `name` (`help` its HELP line) with `labels`.
    pub fn counter(&mut self, name: &str, help: &'static str, labels: &[(&str, &str)], v: f64) {
        self.add("counter", name, "", help, labels, v)
    }

    /// A summary without quantiles: `<name>_sum` and `<name>_count`.
    pub fn summary(&mut self, name: &str, help: &'static str, labels: &[(&str, &str)], sum: f64, count: f64) {
        self.add("summary", name, "_sum", help, labels, sum);
        self.add("summary", name, "_count", help, labels, count);
    }

    /// Adds every sample of `other` (same name and labels: summed).
    pub fn merge(&mut self, other: &Metrics) {
        for (name, f) in &other.families {
            let t = self.families.entry(name.clone()).or_insert_with(|| Family {
                help: f.help,
                kind: f.kind,
                samples: BTreeMap::new(),
            });
            for (k, v) in &f.samples {
                *t.samples.entry(k.clone()).or_insert(0.0) += v;
            }
        }
    }

    /// The value of one sample (tests read them back).
    #[cfg(test)]
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.families.values().find_map(|f| {
            f.samples.iter().find_map(|((n, l), v)| {
                (n == name
                    && l.len() == labels.len()
                    && labels.iter().all(|(k, v)| l.iter().any(|(a, b)| a == k && b == v)))
                .then_some(*v)
            })
        })
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, f) in &self.families {
            let _ = writeln!(out, "# HELP {name} {}", f.help);
            let _ = writeln!(out, "# TYPE {name} {}", f.kind);
            for ((n, labels), v) in &f.samples {
                out.push_str(n);
                if !labels.is_empty() {
                    out.push('{');
                    for (i, (k, v)) in labels.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{k}=\"{}\"", escape_label(v));
                    }
                    out.push('}');
                }
                let _ = writeln!(out, " {}", number(*v));
            }
        }
        out
    }

    /// Writes the text atomically (a temporary file in the same directory, fsync, rename), as
    /// node_exporter's textfile collector wants: it never reads a half-written file.
    pub fn write_textfile(&self, path: &Path) -> Result<()> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut tmp =
            tempfile::Builder::new().prefix(".fedsite-metrics-").suffix(".tmp").tempfile_in(dir).map_err(|source| {
                MetricsError::Textfile { what: "creating a temporary file in", path: dir.to_path_buf(), source }
            })?;
        tmp.write_all(self.render().as_bytes())
            .and_then(|_| tmp.as_file().sync_all())
            .map_err(|source| MetricsError::Textfile { what: "writing", path: tmp.path().to_path_buf(), source })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Readable by node_exporter (tempfile creates 0600).
            let _ = std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644));
        }
        tmp.persist(path).map_err(|e| MetricsError::Textfile {
            what: "renaming into",
            path: path.to_path_buf(),
            source: e.error,
        })?;
        Ok(())
    }
}

/// Label values escape `\`, `"` and newlines.
fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn secs(t: DateTime<Utc>) -> f64 {
    t.timestamp_micros() as f64 / 1e6
}

/// Last run, last success, outcome and warnings of `stage`, from the ledger's runs.
pub fn stage_from_ledger(m: &mut Metrics, ledger: &Ledger, stage: Stage) -> Result<()> {
    let command = stage.run_command();
    let labels = [("stage", stage.label())];
    if let Some(ok) = ledger.last_run(command, Some(RunOutcome::Succeeded))? {
        m.gauge(
            "fedsite_last_success_timestamp_seconds",
            "When the last successful run of the stage finished (Unix time).",
            &labels,
            secs(ok.finished_at.unwrap_or(ok.started_at)),
        );
    }
    if let Some(last) = ledger.last_run(command, None)? {
        m.gauge(
            "fedsite_last_run_timestamp_seconds",
            "When the last run of the stage started (Unix time).",
            &labels,
            secs(last.started_at),
        );
        m.gauge(
            "fedsite_last_run_success",
            "1 if the last finished run of the stage succeeded, 0 if it failed or was partial.",
            &labels,
            f64::from(u8::from(last.outcome == Some(RunOutcome::Succeeded))),
        );
        if let Some(done) = last.finished_at {
            m.gauge(
                "fedsite_last_run_duration_seconds",
                "How long the last run of the stage took.",
                &labels,
                (done - last.started_at).num_microseconds().unwrap_or(0) as f64 / 1e6,
            );
        }
        m.gauge(
            "fedsite_last_run_warnings",
            "Warnings and errors the last run of the stage recorded in the ledger.",
            &labels,
            ledger.run_warnings(last.id)?.len() as f64,
        );
    }
    Ok(())
}

/// `fedsite_last_success_timestamp_seconds{stage="<stage>"}` of a textfile written before.
fn previous_success(textfile: &Path, stage: &str) -> Option<f64> {
    let text = std::fs::read_to_string(textfile).ok()?;
    let prefix = format!("fedsite_last_success_timestamp_seconds{{stage=\"{stage}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok())
}

/// Stage metrics of a run that has no ledger: when it started, whether it succeeded, and the
/// last success (now, or carried over from the textfile it replaces).
pub fn stage_without_ledger(m: &mut Metrics, stage: Stage, started: DateTime<Utc>, ok: bool, textfile: &Path) {
    let labels = [("stage", stage.label())];
    m.gauge(
        "fedsite_last_run_timestamp_seconds",
        "When the last run of the stage started (Unix time).",
        &labels,
        secs(started),
    );
    m.gauge(
        "fedsite_last_run_success",
        "1 if the last finished run of the stage succeeded, 0 if it failed or was partial.",
        &labels,
        f64::from(u8::from(ok)),
    );
    let last = if ok { Some(secs(Utc::now())) } else { previous_success(textfile, stage.label()) };
    if let Some(t) = last {
        m.gauge(
            "fedsite_last_success_timestamp_seconds",
            "When the last successful run of the stage finished (Unix time).",
            &labels,
            t,
        );
    }
}

/// Records the ledger holds (latest state of each), by kind, project and VO.
/// Each project's last success per record kind: when its checkpoint last moved (a project
/// that fails keeps its older time, so a per-project staleness alert can fire while the
/// others succeed).
pub fn project_successes(m: &mut Metrics, ledger: &Ledger) -> Result<()> {
    for c in ledger.checkpoints()? {
        m.gauge(
            "fedsite_project_last_success_timestamp_seconds",
            "When each project's records of each kind were last extracted and committed (Unix time).",
            &[("project", c.project_id.as_str()), ("kind", c.kind.as_str())],
            secs(c.updated_at),
        );
    }
    Ok(())
}

/// The ledger's latest record states per kind (`fedsite_ledger_records`).
pub fn ledger_records(m: &mut Metrics, ledger: &Ledger) -> Result<()> {
    for kind in ["cloud", "ip", "accelerator", "storage", "energy"] {
        let f = SnapshotFilter { kind: Some(kind.into()), ..Default::default() };
        for r in ledger.usage_summary(&f, SummaryGroup { vo: true, project: true, month: false })? {
            m.gauge(
                "fedsite_ledger_records",
                "Records in the ledger (latest state of each), by kind, project and VO.",
                &[
                    ("kind", kind),
                    ("project", r.project_id.as_deref().unwrap_or("")),
                    ("vo", r.vo.as_deref().unwrap_or("")),
                ],
                r.records as f64,
            );
        }
    }
    Ok(())
}

/// Messages and their records in the ledger by kind and state (spooled, sent, acknowledged, quarantined).
pub fn ledger_messages(m: &mut Metrics, ledger: &Ledger) -> Result<()> {
    for kind in ["cloud", "ip", "accelerator", "storage"] {
        for state in ["spooled", "sent", "acknowledged", "quarantined"] {
            // Every state is present (0 when empty), so alerts on it need no absent().
            m.gauge(
                "fedsite_ledger_messages",
                "Messages in the ledger by kind and state.",
                &[("kind", kind), ("state", state)],
                0.0,
            );
        }
    }
    for c in ledger.message_counts()? {
        let labels = [("kind", c.kind.as_str()), ("state", c.state.as_str())];
        m.gauge("fedsite_ledger_messages", "Messages in the ledger by kind and state.", &labels, c.messages as f64);
        m.gauge(
            "fedsite_ledger_message_records",
            "Records carried by the ledger's messages, by kind and state.",
            &labels,
            c.records as f64,
        );
    }
    Ok(())
}

/// What one extraction run did, per project and kind.
pub fn extract_run(m: &mut Metrics, report: &RunReport) {
    let mut messages = 0usize;
    for p in &report.projects {
        let vo = p.vo.as_deref().unwrap_or("");
        for (kind, n) in &p.extracted {
            m.gauge(
                "fedsite_extract_records",
                "Records extracted by the last run, by kind and project (spooled or unchanged).",
                &[("kind", kind), ("project", &p.project_id), ("vo", vo)],
                *n as f64,
            );
        }
        for (kind, n) in &p.spooled {
            m.gauge(
                "fedsite_extract_records_spooled",
                "New or changed records the last run spooled, by kind and project.",
                &[("kind", kind), ("project", &p.project_id), ("vo", vo)],
                *n as f64,
            );
        }
        messages += p.messages.len();
        let result = if p.error.is_some() {
            "failed"
        } else if p.up_to_date {
            "up_to_date"
        } else {
            "ok"
        };
        m.gauge("fedsite_extract_projects", "Projects of the last run, by result.", &[("result", result)], 1.0);
    }
    for result in ["ok", "failed", "up_to_date"] {
        m.gauge("fedsite_extract_projects", "Projects of the last run, by result.", &[("result", result)], 0.0);
    }
    m.gauge("fedsite_extract_messages_spooled", "Messages the last extraction run spooled.", &[], messages as f64);
}

/// OpenStack API requests per endpoint (service, method, route template).
pub fn api(m: &mut Metrics, counters: &BTreeMap<RouteKey, CallStats>) {
    for (k, c) in counters {
        let labels = [("service", k.service.as_str()), ("method", k.method.as_str()), ("route", k.route.as_str())];
        m.counter("fedsite_api_requests_total", "OpenStack API calls, by endpoint.", &labels, c.calls as f64);
        m.counter(
            "fedsite_api_request_attempts_total",
            "HTTP attempts of the API calls (retries included), by endpoint.",
            &labels,
            c.attempts as f64,
        );
        m.counter(
            "fedsite_api_request_retries_total",
            "Retried HTTP attempts, by endpoint.",
            &labels,
            c.retries as f64,
        );
        m.counter(
            "fedsite_api_request_failures_total",
            "API calls that failed after their retries, by endpoint.",
            &labels,
            c.failures as f64,
        );
        m.summary(
            "fedsite_api_request_duration_seconds",
            "Wall time of the API calls (retries and backoff included), by endpoint.",
            &labels,
            c.latency_micros as f64 / 1e6,
            c.calls as f64,
        );
    }
}

/// Adds `b`'s counts into `a` (the serve loop keeps totals across runs).
pub fn add_counters(a: &mut BTreeMap<RouteKey, CallStats>, b: &BTreeMap<RouteKey, CallStats>) {
    for (k, s) in b {
        let t = a.entry(k.clone()).or_default();
        t.calls += s.calls;
        t.attempts += s.attempts;
        t.retries += s.retries;
        t.failures += s.failures;
        t.latency_micros = t.latency_micros.saturating_add(s.latency_micros);
    }
}

/// What one send run did.
pub fn send_run(m: &mut Metrics, r: &SendReport) {
    for (result, n) in [
        ("sent", r.sent),
        ("retried", r.retried),
        ("split", r.split),
        ("quarantined", r.quarantined),
        ("invalid", r.invalid),
        ("skipped_locked", r.skipped_locked),
        ("deferred", r.deferred),
        ("left", r.left),
        ("already_sent", r.already_sent),
        ("superseded", r.superseded_messages),
        ("ams_duplicates", r.duplicates),
    ] {
        m.gauge("fedsite_send_messages", "Messages of the last send run, by result.", &[("result", result)], n as f64);
    }
    m.gauge(
        "fedsite_send_superseded_records",
        "Records the last send run left out (the ledger holds newer).",
        &[],
        r.superseded_records as f64,
    );
    m.gauge("fedsite_send_stopped", "1 when the last send run stopped on a failure every message would meet (configuration, credentials, AMS unreachable).", &[], if r.stopped.is_some() { 1.0 } else { 0.0 });
}

/// The outgoing spool and its quarantine directory now; `destination` labels the gauges of one
/// of several fedsite.toml `[[destination]]` spools (None: the one spool, no label).
pub fn spool(m: &mut Metrics, s: &SpoolStatus, destination: Option<&str>) {
    let labels: &[(&str, &str)] = match &destination {
        Some(d) => &[("destination", d)],
        None => &[],
    };
    m.gauge("fedsite_spool_messages", "Messages waiting in the outgoing spool.", labels, s.elements as f64);
    m.gauge("fedsite_spool_locked", "Spool messages locked by a sender.", labels, s.locked as f64);
    m.gauge("fedsite_quarantine_messages", "Messages in the quarantine directory.", labels, s.quarantined as f64);
    if let Some((_, t)) = &s.oldest {
        m.gauge(
            "fedsite_spool_oldest_timestamp_seconds",
            "When the oldest spooled message was added (Unix time).",
            labels,
            secs(*t),
        );
    }
}

/// What one receive run did.
pub fn receive_run(m: &mut Metrics, r: &messaging::receiver::ReceiveReport) {
    for (result, n) in [
        ("pulled", r.pulled),
        ("accepted", r.accepted),
        ("rejected", r.rejected),
        ("redelivered", r.redelivered),
        ("acknowledged", r.acked),
    ] {
        m.gauge(
            "fedsite_receive_messages",
            "Messages of the last receive run, by result.",
            &[("result", result)],
            n as f64,
        );
    }
    m.gauge("fedsite_receive_records", "Records the last receive run stored.", &[], r.records as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_escaped_labels_and_sorted_families() {
        let mut m = Metrics::new();
        m.gauge("b_metric", "B.", &[("project", "a\"b\\c\nd")], 2.0);
        m.gauge("b_metric", "B.", &[("project", "a\"b\\c\nd")], 1.5);
        m.counter("a_total", "A.", &[], 7.0);
        m.summary("c_seconds", "C.", &[("route", "/x")], 0.25, 3.0);
        assert_eq!(
            m.render(),
            "# HELP a_total A.\n# TYPE a_total counter\na_total 7\n\
             # HELP b_metric B.\n# TYPE b_metric gauge\nb_metric{project=\"a\\\"b\\\\c\\nd\"} 3.5\n\
             # HELP c_seconds C.\n# TYPE c_seconds summary\nc_seconds_count{route=\"/x\"} 3\nc_seconds_sum{route=\"/x\"} 0.25\n"
        );
        assert_eq!(m.value("b_metric", &[("project", "a\"b\\c\nd")]), Some(3.5));
        assert_eq!(m.value("c_seconds_sum", &[("route", "/x")]), Some(0.25));
    }

    #[test]
    fn a_failed_run_without_ledger_keeps_the_last_success() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("receive.prom");
        let t0 = Utc::now();
        let mut m = Metrics::new();
        stage_without_ledger(&mut m, Stage::Receive, t0, true, &path);
        m.write_textfile(&path).unwrap();
        let ok_at = m.value("fedsite_last_success_timestamp_seconds", &[("stage", "receive")]).unwrap();
        assert!(ok_at >= secs(t0));
        let mut m = Metrics::new();
        stage_without_ledger(&mut m, Stage::Receive, Utc::now(), false, &path);
        assert_eq!(m.value("fedsite_last_success_timestamp_seconds", &[("stage", "receive")]), Some(ok_at));
        assert_eq!(m.value("fedsite_last_run_success", &[("stage", "receive")]), Some(0.0));
    }

    #[test]
    fn textfile_is_replaced_atomically_and_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fedsite.prom");
        std::fs::write(&path, "old").unwrap();
        let mut m = Metrics::new();
        m.gauge("x", "X.", &[], 1.0);
        m.write_textfile(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "# HELP x X.\n# TYPE x gauge\nx 1\n");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [std::ffi::OsString::from("fedsite.prom")], "no temporary file left");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
    }
}
