//! Timestamp parsing for every form the OpenStack APIs use: RFC 3339 with
//! `Z` or an offset, naive ISO (`2023-05-20T10:01:00.000000`, read as UTC),
//! and the space-separated Python `str(datetime)` form. Serde helpers included.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer};

/// Parses an OpenStack timestamp; naive forms are UTC.
pub fn parse(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    // No zone after the date (no `Z`, sign or offset): only the naive forms can match, so
    // skip the zoned attempts (Nova's `launched_at` and usage times, hundreds of thousands a run).
    if s.get(10..).is_some_and(|rest| !rest.contains(['Z', 'z', '+', '-'])) {
        return parse_naive(s);
    }
    parse_zoned(s)
}

/// Every form in order, zoned ones first.
fn parse_zoned(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in
        ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%:z"]
    {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Some(t.with_timezone(&Utc));
        }
    }
    parse_naive(s.strip_suffix('Z').unwrap_or(s))
}

/// The naive forms, read as UTC.
fn parse_naive(s: &str) -> Option<DateTime<Utc>> {
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
    }
    None
}

/// `YYYY-MM-DDTHH:MM:SSZ`, the form every service accepts in queries.
pub fn format_z(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Naive `YYYY-MM-DDTHH:MM:SS` (UTC), as os-simple-tenant-usage wants.
pub fn format_naive(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// Serde: a required timestamp.
pub fn de<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let s = String::deserialize(d)?;
    parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unrecognised timestamp {s:?}")))
}

/// Serde: an optional timestamp; null, missing and "" are None.
pub fn de_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Ok(None),
        Some(s) => parse(&s).map(Some).ok_or_else(|| serde::de::Error::custom(format!("unrecognised timestamp {s:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_naive_shortcut_reads_every_form_as_the_full_search_does() {
        let forms = [
            "2023-05-20T10:01:00.000000",
            "2023-05-20T10:01:00",
            "2023-05-20 10:01:00.123456",
            "2023-05-20T10:01",
            "2023-05-20T10:01:00Z",
            "2023-05-20T10:01:00z",
            "2023-05-20T10:01Z",
            "2023-05-20T10:01:00.5+02:00",
            "2023-05-20 10:01:00-0100",
            "2023-05-20T10:01:00+0000",
            "  2023-05-20T10:01:00.000000 ",
            "2023-05-20",
            "2023-05-20T25:01:00",
            "not a time at all",
            "",
        ];
        for f in forms {
            assert_eq!(parse(f), parse_zoned(f.trim()), "{f:?}");
        }
        assert_eq!(parse("2023-05-20T10:01:00.000000").map(|t| t.timestamp()), Some(1_684_576_860));
        assert_eq!(parse("2023-05-20T12:01:00+02:00"), parse("2023-05-20T10:01:00"));
    }
}
