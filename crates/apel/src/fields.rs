//! Field-level parsing shared by the formats: line numbers of byte offsets,
//! loader-style values (null spellings, strict ints, floats, datetimes) and
//! ISO-8601 times as StAR's `iso8601` reads them.

use crate::Error;
use crate::pyfmt::{parse_float, parse_int};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Timelike, Utc};

/// Maps byte offsets of a text to 1-based line numbers.
pub(crate) struct LineIndex(Vec<usize>);

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        LineIndex(text.bytes().enumerate().filter(|(_, b)| *b == b'\n').map(|(i, _)| i).collect())
    }
    pub fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|nl| *nl < offset) + 1
    }
}

/// The whole message must be ASCII (SSM and the receiver decode it as ASCII).
pub(crate) fn check_ascii(bytes: &[u8]) -> Result<&str, Error> {
    if let Some(offset) = bytes.iter().position(|b| !b.is_ascii()) {
        let line = bytes[..offset].iter().filter(|b| **b == b'\n').count() + 1;
        return Err(Error::NotAscii { offset, line, byte: bytes[offset] });
    }
    Ok(std::str::from_utf8(bytes).expect("ASCII is UTF-8"))
}

/// An integer field (Python `int()`), checked to fit `T`.
pub(crate) fn int<T: TryFrom<i128>>(field: &str, v: &str) -> Result<T, Error> {
    let i = parse_int(v).ok_or_else(|| Error::invalid(field, v, "invalid int value"))?;
    if i < 0 {
        return Err(Error::invalid(field, v, "negative value"));
    }
    T::try_from(i).map_err(|_| Error::invalid(field, v, "out of range"))
}

/// A float field (Python `float()`), finite.
pub(crate) fn float(field: &str, v: &str) -> Result<f64, Error> {
    let f = parse_float(v).ok_or_else(|| Error::invalid(field, v, "invalid float value"))?;
    if !f.is_finite() {
        return Err(Error::invalid(field, v, "not a finite number"));
    }
    Ok(f)
}

/// A float the loader stores but our record keeps as an integer count (CpuCount).
pub(crate) fn integral_float(field: &str, v: &str) -> Result<u32, Error> {
    let f = float(field, v)?;
    if f < 0.0 || f.fract() != 0.0 || f > u32::MAX as f64 {
        return Err(Error::invalid(field, v, "not a whole non-negative count"));
    }
    Ok(f as u32)
}

pub(crate) fn from_epoch(field: &str, v: &str, secs: i128) -> Result<DateTime<Utc>, Error> {
    i64::try_from(secs)
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .ok_or_else(|| Error::invalid(field, v, "epoch seconds out of range"))
}

/// A loader datetime: integer Unix seconds, or `YYYY-MM-DDTHH:MM:SS`
/// followed by a zone name `Z` / `UTC` / `GMT` (strptime `%Z`).
pub(crate) fn loader_datetime(field: &str, v: &str) -> Result<DateTime<Utc>, Error> {
    if let Some(secs) = parse_int(v) {
        return from_epoch(field, v, secs);
    }
    let upper = v.to_ascii_uppercase();
    let naive = ["UTC", "GMT", "Z"].iter().find_map(|z| upper.strip_suffix(z));
    naive
        .and_then(|n| NaiveDateTime::parse_from_str(n, "%Y-%m-%dT%H:%M:%S").ok())
        .map(|n| n.and_utc())
        .ok_or_else(|| Error::invalid(field, v, "Unknown datetime format (want epoch seconds or YYYY-MM-DDTHH:MM:SSZ)"))
}

/// An ISO-8601 time as python `iso8601.parse_date` reads it: date, optional
/// `T`/space time with optional fraction, optional `Z` / `±HH:MM` / `±HHMM` /
/// `±HH`; no zone means UTC.
pub(crate) fn iso_datetime(field: &str, v: &str) -> Result<DateTime<Utc>, Error> {
    let bad = || Error::invalid(field, v, "not an ISO-8601 date-time");
    if v.len() < 10 {
        return Err(bad());
    }
    let date = NaiveDate::parse_from_str(v.get(..10).ok_or_else(bad)?, "%Y-%m-%d").map_err(|_| bad())?;
    let rest = &v[10..];
    if rest.is_empty() {
        return Ok(date.and_time(NaiveTime::MIN).and_utc());
    }
    let rest = rest.strip_prefix(['T', 't', ' ']).ok_or_else(bad)?;
    // Split off the zone.
    let (time_s, zone) = match rest.find(['Z', 'z', '+', '-']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let time = NaiveTime::parse_from_str(time_s, "%H:%M:%S%.f")
        .or_else(|_| NaiveTime::parse_from_str(time_s, "%H:%M"))
        .map_err(|_| bad())?;
    // python iso8601 keeps whole microseconds of a longer fraction (datetime has no
    // nanoseconds); so must we, or a parsed record would not render back to itself.
    let time = time.with_nanosecond(time.nanosecond() / 1000 * 1000).ok_or_else(bad)?;
    let offset_secs: i64 = match zone {
        "" | "Z" | "z" => 0,
        z => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let d = z[1..].replace(':', "");
            if !(d.len() == 2 || d.len() == 4) || !d.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let h: i64 = d[..2].parse().map_err(|_| bad())?;
            let m: i64 = if d.len() == 4 { d[2..].parse().map_err(|_| bad())? } else { 0 };
            if h > 23 || m > 59 {
                return Err(bad());
            }
            sign * (h * 3600 + m * 60)
        }
    };
    let local = date.and_time(time).and_utc();
    local.checked_sub_signed(TimeDelta::seconds(offset_secs)).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_datetime_accepts_epoch_and_iso_with_zone_name() {
        let t = DateTime::from_timestamp(1684454400, 0).unwrap();
        assert_eq!(loader_datetime("StartTime", "1684454400").unwrap(), t);
        assert_eq!(loader_datetime("StartTime", "2023-05-19T00:00:00Z").unwrap(), t);
        assert_eq!(loader_datetime("StartTime", "2023-05-19T00:00:00UTC").unwrap(), t);
        let e = loader_datetime("StartTime", "2023-05-19T00:00:00").unwrap_err();
        assert!(e.to_string().contains("StartTime"), "{e}");
        assert!(loader_datetime("StartTime", "1684454400.5").is_err());
    }

    #[test]
    fn iso_datetime_reads_naive_as_utc_and_applies_offsets() {
        let t = DateTime::from_timestamp(1684627200, 0).unwrap();
        assert_eq!(iso_datetime("StartTime", "2023-05-21T00:00:00").unwrap(), t);
        assert_eq!(iso_datetime("StartTime", "2023-05-21T00:00:00Z").unwrap(), t);
        assert_eq!(iso_datetime("StartTime", "2023-05-21T02:00:00+02:00").unwrap(), t);
        assert_eq!(iso_datetime("StartTime", "2023-05-21").unwrap(), t);
        let f = iso_datetime("EndTime", "2026-11-29T09:44:35.785122").unwrap();
        assert_eq!(f.timestamp_subsec_micros(), 785122);
        assert!(iso_datetime("EndTime", "yesterday").is_err());
    }

    /// Found by fuzzing (fuzz/regressions/apel_message): a nanosecond fraction was kept, so
    /// the record rendered (microseconds) differed from the one parsed.
    #[test]
    fn fractions_finer_than_a_microsecond_are_cut_as_python_does() {
        let f = iso_datetime("EndTime", "2026-11-29T09:44:35.785129056Z").unwrap();
        assert_eq!(f.timestamp_subsec_nanos(), 785_129_000);
        let g = iso_datetime("EndTime", "2026-11-29T09:44:35.7851299999").unwrap();
        assert_eq!(g.timestamp_subsec_nanos(), 785_129_000);
    }

    #[test]
    fn line_index_counts_from_one() {
        let idx = LineIndex::new("a\nb\nc");
        assert_eq!(idx.line(0), 1);
        assert_eq!(idx.line(2), 2);
        assert_eq!(idx.line(4), 3);
    }
}
