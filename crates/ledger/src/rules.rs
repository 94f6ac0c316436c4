//! The ledger's rules shared by every backend: what a snapshot must hold,
//! and what storing one does given the stored version.

use crate::{Error, Snapshot, Upsert, is_month};

pub(crate) fn invalid(loc: &str, op: &str, reason: impl Into<String>) -> Error {
    Error::Invalid { location: loc.to_string(), op: op.to_string(), reason: reason.into() }
}

pub(crate) fn validate_snapshot(loc: &str, op: &str, s: &Snapshot) -> Result<(), Error> {
    for (what, v) in [("kind", &s.kind), ("key", &s.key), ("project_id", &s.project_id), ("site", &s.site)] {
        if v.is_empty() {
            return Err(invalid(loc, op, format!("snapshot {}/{}: empty {what}", s.kind, s.key)));
        }
    }
    if let Some(m) = &s.month
        && !is_month(m)
    {
        return Err(invalid(loc, op, format!("snapshot {}/{}: month {m:?} is not YYYY-MM", s.kind, s.key)));
    }
    Ok(())
}

/// What an upsert of a snapshot measured at `measured` with body hash `sha`
/// does, given the stored (measured_at, sha): never back to an older state.
/// `T` is the backend's time form (both order as time).
pub(crate) fn decide<T: PartialOrd + ?Sized>(stored: Option<(&T, &str)>, measured: &T, sha: &str) -> Upsert {
    match stored {
        None => Upsert::Inserted,
        Some((_, h)) if h == sha => Upsert::Unchanged,
        Some((m, _)) if measured < m => Upsert::KeptNewer,
        Some(_) => Upsert::Replaced,
    }
}
