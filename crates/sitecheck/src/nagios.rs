//! The Nagios plugin contract ARGO runs probes in: one status line
//! `SERVICE STATUS - text | perfdata`, optional long output lines, exit code
//! 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. Owns the rendering (quoting of
//! perfdata labels, no `|` or newline inside the text, secrets blanked) and
//! the mapping of a `fedsite check` report onto one result.

use std::fmt::Write as _;

use crate::check::{Report, Status};

/// A plugin's state, ordered by how bad it is for a merged result
/// (`Ok < Warning < Unknown < Critical`); the exit code is Nagios's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    Ok,
    Warning,
    /// The probe itself could not run (no credentials, endpoint unreachable, bad options).
    Unknown,
    Critical,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Warning => "WARNING",
            State::Critical => "CRITICAL",
            State::Unknown => "UNKNOWN",
        }
    }
    /// 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    pub fn exit_code(self) -> u8 {
        match self {
            State::Ok => 0,
            State::Warning => 1,
            State::Critical => 2,
            State::Unknown => 3,
        }
    }
}

impl From<Status> for State {
    /// A skipped check is not a failure: OK.
    fn from(s: Status) -> State {
        match s {
            Status::Ok | Status::Skipped => State::Ok,
            Status::Warning => State::Warning,
            Status::Critical => State::Critical,
        }
    }
}

/// One performance value, `'label'=value[UOM];[warn];[crit];[min];[max]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Perf {
    pub label: String,
    pub value: f64,
    /// `s`, `ms`, `B`, `%`, `c` or empty.
    pub uom: &'static str,
    pub warn: Option<f64>,
    pub crit: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Perf {
    pub fn new(label: impl Into<String>, value: f64, uom: &'static str) -> Perf {
        Perf { label: label.into(), value, uom, warn: None, crit: None, min: None, max: None }
    }
    /// Seconds, minimum 0.
    pub fn seconds(label: impl Into<String>, secs: f64) -> Perf {
        Perf { min: Some(0.0), ..Perf::new(label, secs, "s") }
    }
    pub fn thresholds(mut self, warn: Option<f64>, crit: Option<f64>) -> Perf {
        self.warn = warn;
        self.crit = crit;
        self
    }
    pub fn min(mut self, min: f64) -> Perf {
        self.min = Some(min);
        self
    }
    pub fn max(mut self, max: f64) -> Perf {
        self.max = Some(max);
        self
    }

    /// The label in single quotes (a quote inside doubled), `=` and `'` kept
    /// out of the way as the plugin guidelines require; trailing empty fields dropped.
    pub fn render(&self) -> String {
        let label: String = self.label.chars().map(|c| if c == '=' || c.is_control() { '_' } else { c }).collect();
        let mut fields = vec![format!("{}{}", num(self.value), self.uom)];
        for v in [self.warn, self.crit, self.min, self.max] {
            fields.push(v.map(num).unwrap_or_default());
        }
        while fields.len() > 1 && fields.last().is_some_and(String::is_empty) {
            fields.pop();
        }
        format!("'{}'={}", label.replace('\'', "''"), fields.join(";"))
    }
}

/// A number as perfdata wants it: no exponent, at most 3 decimals, no trailing zeros.
fn num(v: f64) -> String {
    if !v.is_finite() {
        return "U".into();
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_string() }
}

/// What a probe found: the state, one line of text, perfdata, long output.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The service name the status line starts with (`SWIFT`, `VM`, `FEDSITE`).
    pub service: String,
    pub state: State,
    pub summary: String,
    pub perf: Vec<Perf>,
    /// Further lines (what was done, the fix).
    pub long: Vec<String>,
}

impl Outcome {
    pub fn new(service: impl Into<String>, state: State, summary: impl Into<String>) -> Outcome {
        Outcome { service: service.into(), state, summary: summary.into(), perf: Vec::new(), long: Vec::new() }
    }
    pub fn ok(service: impl Into<String>, summary: impl Into<String>) -> Outcome {
        Outcome::new(service, State::Ok, summary)
    }
    pub fn critical(service: impl Into<String>, summary: impl Into<String>) -> Outcome {
        Outcome::new(service, State::Critical, summary)
    }
    pub fn unknown(service: impl Into<String>, summary: impl Into<String>) -> Outcome {
        Outcome::new(service, State::Unknown, summary)
    }
    pub fn with_perf(mut self, p: Perf) -> Outcome {
        self.perf.push(p);
        self
    }
    pub fn with_line(mut self, line: impl Into<String>) -> Outcome {
        self.long.push(line.into());
        self
    }
    pub fn exit_code(&self) -> u8 {
        self.state.exit_code()
    }

    /// Replaces every occurrence of each non-empty secret by `***` (the text may quote a
    /// request or an answer that carried one).
    pub fn redact(mut self, secrets: &[&str]) -> Outcome {
        let blank = |s: &mut String| {
            for secret in secrets.iter().filter(|s| s.len() >= 4) {
                if s.contains(secret) {
                    *s = s.replace(secret, "***");
                }
            }
        };
        blank(&mut self.summary);
        self.long.iter_mut().for_each(blank);
        self
    }

    /// The plugin output: `SERVICE STATUS - summary | perfdata`, then the long lines.
    pub fn render(&self) -> String {
        let mut out = format!("{} {} - {}", self.service, self.state.as_str(), one_line(&self.summary));
        if !self.perf.is_empty() {
            let perf: Vec<String> = self.perf.iter().map(Perf::render).collect();
            let _ = write!(out, " | {}", perf.join(" "));
        }
        out.push('\n');
        for l in &self.long {
            for part in l.lines() {
                let _ = writeln!(out, "{}", part.replace('|', "/"));
            }
        }
        out
    }
}

/// The text on one line, without the `|` that would start perfdata.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "/")
}

/// A `fedsite check` report as one result: the worst status; the summary names the
/// failing checks (or counts them all when every check passed); perfdata counts each
/// status; one long line per check with its fix.
pub fn from_report(service: &str, report: &Report) -> Outcome {
    let state = State::from(report.worst());
    let failing: Vec<String> = report
        .checks
        .iter()
        .filter(|c| c.status >= Status::Warning)
        .map(|c| format!("{}: {}", c.id, c.message))
        .collect();
    let counts = report.counts();
    let n = |s: Status| counts.iter().find(|(k, _)| *k == s).map_or(0, |(_, n)| *n);
    let summary = if failing.is_empty() {
        format!("{} checks ok, {} skipped", n(Status::Ok), n(Status::Skipped))
    } else {
        format!("{} failing of {}: {}", failing.len(), report.checks.len(), failing.join("; "))
    };
    let total = report.checks.len() as f64;
    let mut o = Outcome::new(service, state, summary);
    for s in [Status::Ok, Status::Warning, Status::Critical, Status::Skipped] {
        o.perf.push(Perf::new(s.as_str(), n(s) as f64, "").min(0.0).max(total));
    }
    for c in &report.checks {
        let mut line = format!("{} {}: {}", c.status.as_str().to_uppercase(), c.id, c.message);
        if let Some(f) = c.fix.as_ref().filter(|_| c.status >= Status::Warning) {
            let _ = write!(line, " (fix: {f})");
        }
        o.long.push(line);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Check;

    #[test]
    fn status_line_perfdata_and_long_output() {
        let o = Outcome::critical("SWIFT", "write refused |405|\nread skipped")
            .with_perf(Perf::seconds("time", 1.25).thresholds(Some(10.0), None))
            .with_perf(Perf::new("it's=odd", 3.0, "c"))
            .with_line("PUT container-1 | refused");
        assert_eq!(
            o.render(),
            "SWIFT CRITICAL - write refused /405/ read skipped | 'time'=1.25s;10;;0 'it''s_odd'=3c\nPUT container-1 / refused\n"
        );
        assert_eq!(o.exit_code(), 2);
        assert_eq!(Outcome::unknown("VM", "x").exit_code(), 3);
        assert_eq!(Outcome::ok("VM", "x").render(), "VM OK - x\n");
        assert_eq!(num(0.1 + 0.2), "0.3");
        assert_eq!(num(f64::NAN), "U");
    }

    #[test]
    fn secrets_are_blanked() {
        let o = Outcome::unknown("VM", "token eyJabc refused").with_line("sent eyJabc").redact(&["eyJabc", ""]);
        assert_eq!(o.render(), "VM UNKNOWN - token *** refused\nsent ***\n");
    }

    #[test]
    fn a_report_becomes_one_result() {
        let mut r = Report::default();
        r.checks.push(Check::ok("catalog.compute", "t", "answers"));
        r.checks.push(Check::skipped("vm", "t", "disabled"));
        let o = from_report("FEDSITE", &r);
        assert_eq!(o.state, State::Ok);
        assert!(
            o.render().starts_with("FEDSITE OK - 1 checks ok, 1 skipped | 'ok'=1;;;0;2 'warning'=0;;;0;2"),
            "{}",
            o.render()
        );
        r.checks.push(Check::critical("ports.network", "t", "cannot connect", "open it"));
        r.checks.push(Check::warning("accounting.last-send", "t", "10 days", "send"));
        let o = from_report("FEDSITE", &r);
        assert_eq!((o.state, o.exit_code()), (State::Critical, 2));
        let text = o.render();
        assert!(
            text.starts_with(
                "FEDSITE CRITICAL - 2 failing of 4: ports.network: cannot connect; accounting.last-send: 10 days |"
            ),
            "{text}"
        );
        assert!(text.contains("\nCRITICAL ports.network: cannot connect (fix: open it)\n"), "{text}");
    }
}
