//! The result of one check: status (ok / warning / critical / skipped), what
//! was tested, what was found and, when it failed, the fix; a report of
//! checks with the worst status, its exit code and a text rendering.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// A check's outcome. Ordered by severity: `Ok < Skipped < Warning < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Not run: what it needs was not configured (the message says what).
    Skipped,
    Warning,
    Critical,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Skipped => "skipped",
            Status::Warning => "warning",
            Status::Critical => "critical",
        }
    }
    /// Exit code as Nagios/ARGO probes use them: 0 ok (or skipped),
    /// 1 warning, 2 critical.
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Ok | Status::Skipped => 0,
            Status::Warning => 1,
            Status::Critical => 2,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Stable id, `<family>.<name>` (e.g. `catalog.compute`).
    pub id: String,
    pub status: Status,
    /// What was tested.
    pub tested: String,
    /// What was found.
    pub message: String,
    /// How to fix it (set when the status is warning or critical).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn new(id: impl Into<String>, status: Status, tested: impl Into<String>, message: impl Into<String>) -> Check {
        Check { id: id.into(), status, tested: tested.into(), message: message.into(), fix: None }
    }
    pub fn ok(id: impl Into<String>, tested: impl Into<String>, message: impl Into<String>) -> Check {
        Check::new(id, Status::Ok, tested, message)
    }
    pub fn skipped(id: impl Into<String>, tested: impl Into<String>, why: impl Into<String>) -> Check {
        Check::new(id, Status::Skipped, tested, why)
    }
    pub fn warning(
        id: impl Into<String>,
        tested: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check::new(id, Status::Warning, tested, message).with_fix(fix)
    }
    pub fn critical(
        id: impl Into<String>,
        tested: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check::new(id, Status::Critical, tested, message).with_fix(fix)
    }
    pub fn with_fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }
    /// The family: the id up to the first dot.
    pub fn family(&self) -> &str {
        self.id.split('.').next().unwrap_or(&self.id)
    }
}

/// All checks of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// The worst status (`Ok` for an empty report).
    pub fn worst(&self) -> Status {
        self.checks.iter().map(|c| c.status).max().unwrap_or(Status::Ok)
    }
    pub fn exit_code(&self) -> u8 {
        self.worst().exit_code()
    }
    /// The check with this id.
    pub fn get(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }
    /// Checks whose id starts with `prefix`.
    pub fn family<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a Check> + 'a {
        self.checks.iter().filter(move |c| c.id == prefix || c.id.starts_with(&format!("{prefix}.")))
    }
    /// Counts by status, in severity order.
    pub fn counts(&self) -> [(Status, usize); 4] {
        let n = |s| self.checks.iter().filter(|c| c.status == s).count();
        [Status::Ok, Status::Skipped, Status::Warning, Status::Critical].map(|s| (s, n(s)))
    }
    /// JSON: `{"status": worst, "checks": [...]}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"status": self.worst(), "exit_code": self.exit_code(), "checks": self.checks})
    }
    /// One line per check, `STATUS id: message`, then the test and the fix
    /// indented, and a summary line.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let _ = writeln!(out, "{:<8} {}: {}", c.status.as_str().to_uppercase(), c.id, c.message);
            if c.status >= Status::Warning {
                let _ = writeln!(out, "         tested: {}", c.tested);
                if let Some(f) = &c.fix {
                    let _ = writeln!(out, "         fix: {f}");
                }
            }
        }
        let counts: Vec<String> = self.counts().iter().map(|(s, n)| format!("{n} {s}")).collect();
        let _ = writeln!(out, "{}: {}", self.worst().as_str().to_uppercase(), counts.join(", "));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_status_and_exit_code() {
        let mut r = Report::default();
        assert_eq!(r.exit_code(), 0);
        r.checks.push(Check::skipped("a.x", "t", "not configured"));
        assert_eq!((r.worst(), r.exit_code()), (Status::Skipped, 0));
        r.checks.push(Check::warning("a.y", "t", "m", "f"));
        assert_eq!((r.worst(), r.exit_code()), (Status::Warning, 1));
        r.checks.push(Check::ok("b", "t", "m"));
        r.checks.push(Check::critical("c.z", "t", "m", "f"));
        assert_eq!((r.worst(), r.exit_code()), (Status::Critical, 2));
        assert_eq!(r.family("a").count(), 2);
        assert_eq!(r.get("c.z").unwrap().family(), "c");
        let text = r.to_text();
        assert!(text.contains("CRITICAL c.z: m\n         tested: t\n         fix: f\n"), "{text}");
        assert!(text.ends_with("CRITICAL: 1 ok, 1 skipped, 1 warning, 1 critical\n"), "{text}");
        assert_eq!(r.to_json()["status"], "critical");
    }
}
