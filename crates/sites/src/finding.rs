//! What validation reports: one [`Finding`] per problem, naming the file, the
//! key path inside it (`vos[2].auth.project_id`) and the reason, with a
//! [`Severity`]: an error makes that file's site unusable, a warning does not.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The file is read anyway (e.g. an unknown key, a value that looks wrong).
    Warning,
    /// The file's site is left out.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// The file it is in.
    pub file: PathBuf,
    /// Key path inside the file (`vos[2].auth.project_id`), or where in the
    /// file (`line 4 column 3`); none when the finding is about the whole file.
    pub key: Option<String>,
    /// What is wrong.
    pub reason: String,
}

impl Finding {
    /// True for [`Severity::Error`].
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// `error: sites/X.yaml: vos[2].auth.project_id: reason`
impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: ", self.severity, self.file.display())?;
        if let Some(k) = &self.key {
            write!(f, "{k}: ")?;
        }
        f.write_str(&self.reason)
    }
}

/// Collects the findings of one file.
#[derive(Debug)]
pub(crate) struct Findings {
    pub file: PathBuf,
    pub list: Vec<Finding>,
}

impl Findings {
    pub fn new(file: PathBuf) -> Findings {
        Findings { file, list: Vec::new() }
    }

    fn push(&mut self, severity: Severity, key: Option<String>, reason: String) {
        self.list.push(Finding { severity, file: self.file.clone(), key, reason });
    }

    pub fn error(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.push(Severity::Error, Some(key.into()), reason.into());
    }

    pub fn warn(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.push(Severity::Warning, Some(key.into()), reason.into());
    }

    pub fn file_error(&mut self, reason: impl Into<String>) {
        self.push(Severity::Error, None, reason.into());
    }

    pub fn has_errors(&self) -> bool {
        self.list.iter().any(Finding::is_error)
    }
}
