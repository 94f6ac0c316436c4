//! Validated value types shared by every record: `VmUuid`, `SiteName`,
//! `ApelText`, `Fqan`, `Window`, `VmStatus`. Constructors return `Result`;
//! serde goes through the same checks (`try_from = "String"`).

use crate::Error;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest string the APEL database stores (VARCHAR(255)).
pub const MAX_TEXT_LEN: usize = 255;

/// Values the APEL loader reads as NULL (compared lower-cased, after strip).
pub(crate) fn is_null_spelling(s: &str) -> bool {
    let t = s.trim();
    t.is_empty() || t.eq_ignore_ascii_case("none") || t.eq_ignore_ascii_case("null")
}

fn check_text(field: &str, s: &str) -> Result<(), Error> {
    if let Some((i, c)) = s.char_indices().find(|(_, c)| !c.is_ascii()) {
        return Err(Error::invalid(field, s, format!("non-ASCII character {c:?} at {i}")));
    }
    if let Some(b) = s.bytes().find(|b| b.is_ascii_control()) {
        return Err(Error::invalid(field, s, format!("control character 0x{b:02x}")));
    }
    if s.len() > MAX_TEXT_LEN {
        return Err(Error::invalid(field, s, format!("{} characters, more than {MAX_TEXT_LEN}", s.len())));
    }
    Ok(())
}

fn check_non_null(field: &str, s: &str) -> Result<(), Error> {
    if is_null_spelling(s) {
        return Err(Error::invalid(field, s, "empty or a null spelling (none/null)"));
    }
    if s.trim() != s {
        return Err(Error::invalid(field, s, "leading or trailing whitespace"));
    }
    Ok(())
}

macro_rules! string_newtype {
    ($(#[$m:meta])* $name:ident, $field:literal, $check:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `s`.
            pub fn new(s: impl Into<String>) -> Result<Self, Error> {
                let s: String = s.into();
                let check: fn(&str) -> Result<String, Error> = $check;
                Ok($name(check(&s)?))
            }
            /// The validated text.
            pub fn as_str(&self) -> &str { &self.0 }
            /// The validated text, owned.
            pub fn into_string(self) -> String { self.0 }
        }
        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(s: String) -> Result<Self, Error> { Self::new(s) }
        }
        impl TryFrom<&str> for $name {
            type Error = Error;
            fn try_from(s: &str) -> Result<Self, Error> { Self::new(s) }
        }
        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> { Self::new(s) }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String { v.0 }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str { &self.0 }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(&self.0) }
        }
        impl PartialEq<str> for $name {
            fn eq(&self, o: &str) -> bool { self.0 == o }
        }
        impl PartialEq<&str> for $name {
            fn eq(&self, o: &&str) -> bool { self.0 == *o }
        }
    };
}

string_newtype!(
    /// A VM UUID: 36 characters `8-4-4-4-12` hex, any version; stored lowercase
    /// (upper-case input is accepted and lowered).
    VmUuid, "VMUUID", |s| {
        let b = s.as_bytes();
        let ok = b.len() == 36
            && b.iter().enumerate().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => *c == b'-',
                _ => c.is_ascii_hexdigit(),
            });
        if ok { Ok(s.to_ascii_lowercase()) } else { Err(Error::invalid("VMUUID", s, "not a 36-character hyphenated UUID")) }
    }
);

string_newtype!(
    /// Free APEL text: printable ASCII only (no control characters, so no
    /// newline), at most 255 characters. May be empty (the loader reads an
    /// empty value as null; prefer `None`).
    ApelText, "text", |s| { check_text("text", s)?; Ok(s.to_string()) }
);

string_newtype!(
    /// A GOCDB site name: `ApelText`, non-empty, not a null spelling, no
    /// surrounding whitespace (the loader would read it as null or trim it).
    SiteName, "SiteName", |s| { check_text("SiteName", s)?; check_non_null("SiteName", s)?; Ok(s.to_string()) }
);

string_newtype!(
    /// A VO name or a VOMS FQAN (`/vo/group/Role=r/Capability=c`): `ApelText`,
    /// non-empty, not a null spelling, no surrounding whitespace.
    Fqan, "FQAN", |s| { check_text("FQAN", s)?; check_non_null("FQAN", s)?; Ok(s.to_string()) }
);

impl ApelText {
    /// Like cASO: drops every non-ASCII character; also drops control
    /// characters (cASO keeps them and breaks its message) and truncates to
    /// 255 characters. Never fails; the result may be empty.
    pub fn lossy(s: &str) -> ApelText {
        let mut out: String = s.chars().filter(|c| c.is_ascii() && !c.is_ascii_control()).collect();
        out.truncate(MAX_TEXT_LEN);
        ApelText(out)
    }
    /// Checks `s` as the field named `field` (so the error names it).
    pub fn for_field(field: &str, s: impl Into<String>) -> Result<ApelText, Error> {
        let s = s.into();
        check_text(field, &s)?;
        Ok(ApelText(s))
    }
}

/// A half-open extraction window `[from, to)`, `from < to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "WindowRaw")]
pub struct Window {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

#[derive(Deserialize)]
struct WindowRaw {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

impl TryFrom<WindowRaw> for Window {
    type Error = Error;
    fn try_from(r: WindowRaw) -> Result<Self, Error> {
        Window::new(r.from, r.to)
    }
}

impl Window {
    /// The window `[from, to)`; `from` must be before `to`.
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Window, Error> {
        if from >= to {
            return Err(Error::invalid("window", format!("{from} .. {to}"), "from must be before to"));
        }
        Ok(Window { from, to })
    }
    /// The start (included).
    pub fn from(&self) -> DateTime<Utc> {
        self.from
    }
    /// The end (excluded).
    pub fn to(&self) -> DateTime<Utc> {
        self.to
    }
}

/// The APEL cloud `Status` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VmStatus {
    /// Running or about to (Nova ACTIVE, BUILD, REBOOT, RESIZE, ...).
    Started,
    /// Over (Nova DELETED, and SHUTOFF as cASO maps it): the record is final.
    Completed,
    /// Nova ERROR.
    Error,
    /// Nova PAUSED.
    Paused,
    /// Nova SUSPENDED.
    Suspended,
    /// `stopped` (a status some clouds report; Nova says SHUTOFF).
    Stopped,
    /// Any other status (SHELVED, SOFT_DELETED, ...).
    Unknown,
}

impl VmStatus {
    /// The seven values, in APEL's order.
    pub const ALL: [VmStatus; 7] = [
        VmStatus::Started,
        VmStatus::Completed,
        VmStatus::Error,
        VmStatus::Paused,
        VmStatus::Suspended,
        VmStatus::Stopped,
        VmStatus::Unknown,
    ];

    /// The lowercase word sent as `Status`.
    pub fn as_str(&self) -> &'static str {
        match self {
            VmStatus::Started => "started",
            VmStatus::Completed => "completed",
            VmStatus::Error => "error",
            VmStatus::Paused => "paused",
            VmStatus::Suspended => "suspended",
            VmStatus::Stopped => "stopped",
            VmStatus::Unknown => "unknown",
        }
    }
}

impl std::str::FromStr for VmStatus {
    type Err = Error;
    /// Parses one of the seven APEL values (case-insensitive).
    fn from_str(s: &str) -> Result<VmStatus, Error> {
        VmStatus::ALL.into_iter().find(|v| v.as_str().eq_ignore_ascii_case(s)).ok_or_else(|| {
            Error::invalid("Status", s, "not one of started, completed, error, paused, suspended, stopped, unknown")
        })
    }
}

impl fmt::Display for VmStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
