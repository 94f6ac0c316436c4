//! Microversions: the one place that knows which version each service's
//! calls are written for, how a version document is read, and how the
//! version sent is negotiated (highest the client supports up to the
//! server's max; none for services or clouds without microversions).

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::catalog::Service;

/// `major.minor`, e.g. `2.79`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Microversion {
    pub major: u32,
    pub minor: u32,
}

impl Microversion {
    pub const fn new(major: u32, minor: u32) -> Self {
        Microversion { major, minor }
    }
}

impl fmt::Display for Microversion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for Microversion {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (a, b) = s.trim().trim_start_matches('v').split_once('.').ok_or(())?;
        Ok(Microversion { major: a.parse().map_err(|_| ())?, minor: b.parse().map_err(|_| ())? })
    }
}

/// The microversion every call of a service is written for (the types
/// accept the older shapes too). Nova 2.79: embedded flavors (2.47),
/// paged usage (2.40), paged instance actions (2.58). Cinder 3.60:
/// `updated_at` comparison filters.
pub fn client_max(service: Service) -> Option<Microversion> {
    match service {
        Service::Compute => Some(Microversion::new(2, 79)),
        Service::Volume => Some(Microversion::new(3, 60)),
        _ => None,
    }
}

/// What a version document says: the range a server supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionRange {
    pub min: Microversion,
    pub max: Microversion,
}

/// Reads `{"version": {...}}` or `{"versions": [...]}` (or Keystone's
/// `{"versions": {"values": [...]}}`); picks the entry of `major`. None
/// when the server has no microversions (`version` empty or absent).
pub fn parse_version_doc(doc: &Value, major: u32) -> Option<VersionRange> {
    let entries: Vec<&Value> = if let Some(v) = doc.get("version") {
        vec![v]
    } else if let Some(arr) = doc.get("versions").and_then(Value::as_array) {
        arr.iter().collect()
    } else if let Some(arr) = doc.pointer("/versions/values").and_then(Value::as_array) {
        arr.iter().collect()
    } else {
        return None;
    };
    entries.into_iter().find_map(|e| {
        let id = e.get("id").and_then(Value::as_str).unwrap_or("");
        let m: Option<u32> = id.trim_start_matches('v').split('.').next().and_then(|s| s.parse().ok());
        if m.is_some_and(|m| m != major) {
            return None;
        }
        let max: Microversion = e.get("version").and_then(Value::as_str)?.parse().ok()?;
        let min = e
            .get("min_version")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .unwrap_or(Microversion::new(major, 0));
        Some(VersionRange { min, max })
    })
}

/// The version to send: `want` capped at the server's max and raised to its
/// min; None when the server has no microversions.
pub fn negotiate(want: Microversion, server: Option<VersionRange>) -> Option<Microversion> {
    let r = server?;
    if r.max.major != want.major {
        return None;
    }
    Some(want.min(r.max).max(r.min))
}

/// The headers carrying `v` for `service`.
pub fn headers(service: Service, v: Microversion) -> Vec<(&'static str, String)> {
    let mut h = vec![("OpenStack-API-Version", format!("{} {v}", service.as_str()))];
    if service == Service::Compute {
        h.push(("X-OpenStack-Nova-API-Version", v.to_string()));
    }
    h
}
