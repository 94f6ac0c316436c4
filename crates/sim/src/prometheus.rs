//! A Prometheus HTTP API subset under `/prometheus` (no Keystone token):
//! `/api/v1/query_range` and `/api/v1/query` over vector selectors, serving
//! one Scaphandre-like power series per server, derived from its id and history.
//!
//! The series of a server has the labels `__name__="prometheus_value"`,
//! `type_instance="scaph_process_power_microwatts"`, `uuid=<server id>`,
//! `project=<project id>`, `job="scaphandre"` (what cASO's defaults select).
//! Its value at `t` (µW) exists only while the server is ACTIVE at `t` (and
//! `t` ≤ the simulator's now): see [`power_microwatts`].

#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, TimeZone, Timelike, Utc};
use serde_json::{Value, json};

use crate::model::Server;
use crate::state::AppState;

/// Metric name and labels of the simulated series.
pub const METRIC: &str = "prometheus_value";
pub const TYPE_INSTANCE: &str = "scaph_process_power_microwatts";
/// Prometheus's limit of points per series in a range query.
pub const MAX_POINTS: i64 = 11_000;

/// Routes, mounted under `Service::Prometheus.prefix()`.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/query_range", get(query_range).post(query_range))
        .route("/api/v1/query", get(query).post(query))
}

/// FNV-1a 64 of the server id: the per-server factor.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// Power per vCPU of a server at 100 %: 4 W to 12 W in whole mW, from its id.
pub fn per_vcpu_microwatts(server_id: &str) -> u64 {
    4_000_000 + (fnv1a(server_id) % 8001) * 1000
}

/// Daily wave in percent by UTC hour: 80 % at midnight, 116 % at noon
/// (`80 + 3 × (12 − |h − 12|)`).
pub fn daily_percent(t: DateTime<Utc>) -> u64 {
    let h = t.hour() as i64;
    (80 + 3 * (12 - (h - 12).abs())) as u64
}

/// The power of an ACTIVE server with `vcpus` at `t`, in µW (an integer):
/// `vcpus × per_vcpu_microwatts(id) × daily_percent(t) / 100`.
pub fn power_microwatts(server_id: &str, vcpus: u32, t: DateTime<Utc>) -> u64 {
    vcpus as u64 * per_vcpu_microwatts(server_id) * daily_percent(t) / 100
}

/// The sample of `server` at `t`: only while ACTIVE (flavor of that time).
pub fn sample(server: &Server, t: DateTime<Utc>) -> Option<u64> {
    let v = server.view_at(t)?;
    (v.status == "ACTIVE").then(|| power_microwatts(&server.id, v.flavor.vcpus, t))
}

fn labels(s: &Server) -> Vec<(&'static str, String)> {
    vec![
        ("__name__", METRIC.to_string()),
        ("job", "scaphandre".to_string()),
        ("project", s.project_id.clone()),
        ("type_instance", TYPE_INSTANCE.to_string()),
        ("uuid", s.id.clone()),
    ]
}

// ------------------------------------------------------------- errors

fn error(status: StatusCode, kind: &str, msg: impl Into<String>) -> Response {
    let body = json!({"status": "error", "errorType": kind, "error": msg.into()});
    (status, axum::Json(body)).into_response()
}

fn bad_data(msg: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_data", msg)
}

// ------------------------------------------------------------- parameters

/// URL query and form body merged, as Prometheus's `r.FormValue`.
fn params(raw: Option<String>, body: &Bytes) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    if !body.is_empty() {
        out.extend(url::form_urlencoded::parse(body).into_owned());
    }
    if let Some(q) = raw {
        out.extend(url::form_urlencoded::parse(q.as_bytes()).into_owned());
    }
    out
}

fn param<'a>(p: &'a [(String, String)], name: &str) -> Option<&'a str> {
    p.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Prometheus's `parseTime`: unix seconds (float) or RFC 3339; in ms.
fn parse_time(s: &str) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() {
            return None;
        }
        let ms = (f * 1000.0).round();
        return (ms.abs() < 9.0e15).then_some(ms as i64);
    }
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_millis())
}

/// Prometheus's `parseDuration`: float seconds or `1h30m`-style; in ms.
fn parse_duration(s: &str) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>() {
        let ms = (f * 1000.0).round();
        return (f.is_finite() && ms.abs() < 9.0e15).then_some(ms as i64);
    }
    let units = [
        ("ms", 1i64),
        ("s", 1000),
        ("m", 60_000),
        ("h", 3_600_000),
        ("d", 86_400_000),
        ("w", 604_800_000),
        ("y", 31_536_000_000),
    ];
    let mut rest = s;
    let mut total: i64 = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, mult) = units.iter().find(|(u, _)| rest.starts_with(u) && !(*u == "m" && rest.starts_with("ms")))?;
        total = total.checked_add(n.checked_mul(*mult)?)?;
        rest = &rest[unit.len()..];
    }
    Some(total)
}

fn time_param(p: &[(String, String)], name: &str) -> Result<i64, Response> {
    let v = param(p, name).unwrap_or("");
    parse_time(v)
        .ok_or_else(|| bad_data(format!("invalid parameter \"{name}\": cannot parse \"{v}\" to a valid timestamp")))
}

// ------------------------------------------------------------- selectors

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq,
    Ne,
}

#[derive(Debug, Clone, PartialEq)]
struct Matcher {
    name: String,
    op: Op,
    value: String,
}

/// Parses `name{l="v",l2!="v2"}`, `name` or `{...}`; errors name the
/// 1-based column, as Prometheus's parser.
fn parse_selector(q: &str) -> Result<Vec<Matcher>, String> {
    let b = q.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1
        }
    };
    let err = |i: usize, m: &str| format!("1:{}: parse error: {m}", i + 1);
    let mut out = Vec::new();
    skip_ws(&mut i);
    if i == b.len() {
        return Err(err(i, "no expression found in input"));
    }
    let ident = |i: &mut usize, metric: bool| {
        let s = *i;
        while *i < b.len() && (b[*i].is_ascii_alphanumeric() || b[*i] == b'_' || (metric && b[*i] == b':')) {
            if *i == s && b[*i].is_ascii_digit() {
                break;
            }
            *i += 1;
        }
        q[s..*i].to_string()
    };
    let name = ident(&mut i, true);
    if !name.is_empty() {
        out.push(Matcher { name: "__name__".into(), op: Op::Eq, value: name });
    }
    skip_ws(&mut i);
    if i < b.len() && b[i] == b'{' {
        i += 1;
        loop {
            skip_ws(&mut i);
            if i < b.len() && b[i] == b'}' {
                i += 1;
                break;
            }
            let label = ident(&mut i, false);
            if label.is_empty() {
                return Err(err(i, "unexpected character inside braces, expected a label name"));
            }
            skip_ws(&mut i);
            let op = if q[i..].starts_with("!=") {
                i += 2;
                Op::Ne
            } else if q[i..].starts_with("=~") || q[i..].starts_with("!~") {
                return Err(err(i, "regular-expression matchers (=~, !~) are not supported by the simulator"));
            } else if q[i..].starts_with('=') {
                i += 1;
                Op::Eq
            } else {
                return Err(err(
                    i,
                    &format!("unexpected character after label {label:?}, expected a label matching operator"),
                ));
            };
            skip_ws(&mut i);
            let quote = match b.get(i) {
                Some(c @ (b'"' | b'\'' | b'`')) => *c,
                _ => return Err(err(i, "unexpected character, expected a quoted label value")),
            };
            i += 1;
            let mut value = String::new();
            loop {
                let Some(c) = q[i..].chars().next() else {
                    return Err(err(i, "unterminated quoted string"));
                };
                i += c.len_utf8();
                if c as u32 == quote as u32 {
                    break;
                }
                if c == '\\' && quote != b'`' {
                    let Some(e) = q[i..].chars().next() else {
                        return Err(err(i, "unterminated quoted string"));
                    };
                    i += e.len_utf8();
                    value.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    });
                } else {
                    value.push(c);
                }
            }
            out.push(Matcher { name: label, op, value });
            skip_ws(&mut i);
            match b.get(i) {
                Some(b',') => i += 1,
                Some(b'}') => {}
                _ => return Err(err(i, "unexpected character inside braces, expected \",\" or \"}\"")),
            }
        }
    }
    skip_ws(&mut i);
    if i < b.len() {
        return Err(err(i, "the simulator supports only vector selectors (metric{label=\"value\",...})"));
    }
    if out.is_empty() {
        return Err(err(0, "unexpected end of input"));
    }
    if !out.iter().any(|m| !m.value.is_empty() && m.op == Op::Eq) {
        return Err(err(0, "vector selector must contain at least one non-empty matcher"));
    }
    Ok(out)
}

fn matches(ms: &[Matcher], labels: &[(&str, String)]) -> bool {
    ms.iter().all(|m| {
        let v = labels.iter().find(|(k, _)| *k == m.name).map(|(_, v)| v.as_str()).unwrap_or("");
        (v == m.value) == (m.op == Op::Eq)
    })
}

fn metric_json(labels: &[(&str, String)]) -> Value {
    Value::Object(labels.iter().map(|(k, v)| (k.to_string(), Value::String(v.clone()))).collect())
}

/// A timestamp as Prometheus writes it: seconds, with `.mmm` only when needed.
fn ts_json(ms: i64) -> Value {
    if ms % 1000 == 0 { json!(ms / 1000) } else { json!(ms as f64 / 1000.0) }
}

fn query_param(p: &[(String, String)]) -> Result<Vec<Matcher>, Response> {
    let q = param(p, "query").unwrap_or("");
    parse_selector(q).map_err(|e| bad_data(format!("invalid parameter \"query\": {e}")))
}

fn at(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

// ------------------------------------------------------------- handlers

async fn query_range(State(state): State<Arc<AppState>>, RawQuery(raw): RawQuery, body: Bytes) -> Response {
    let p = params(raw, &body);
    let start = match time_param(&p, "start") {
        Ok(t) => t,
        Err(r) => return r,
    };
    let end = match time_param(&p, "end") {
        Ok(t) => t,
        Err(r) => return r,
    };
    if end < start {
        return bad_data("end timestamp must not be before start time");
    }
    let step_s = param(&p, "step").unwrap_or("");
    let Some(step) = parse_duration(step_s) else {
        return bad_data(format!("invalid parameter \"step\": cannot parse \"{step_s}\" to a valid duration"));
    };
    if step <= 0 {
        return bad_data("zero or negative query resolution step widths are not accepted. Try a positive integer");
    }
    if (end - start) / step > MAX_POINTS {
        return bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        );
    }
    let ms = match query_param(&p) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let now = state.now().timestamp_millis();
    let site = state.site.read().unwrap();
    let mut result = Vec::new();
    for s in &site.servers {
        let l = labels(s);
        if !matches(&ms, &l) {
            continue;
        }
        let mut values = Vec::new();
        let mut t = start;
        while t <= end && t <= now {
            if let Some(v) = at(t).and_then(|ts| sample(s, ts)) {
                values.push(json!([ts_json(t), v.to_string()]));
            }
            t += step;
        }
        if !values.is_empty() {
            result.push(json!({"metric": metric_json(&l), "values": values}));
        }
    }
    axum::Json(json!({"status": "success", "data": {"resultType": "matrix", "result": result}})).into_response()
}

async fn query(State(state): State<Arc<AppState>>, RawQuery(raw): RawQuery, body: Bytes) -> Response {
    let p = params(raw, &body);
    let now = state.now().timestamp_millis();
    let t = match param(&p, "time") {
        None | Some("") => now,
        Some(_) => match time_param(&p, "time") {
            Ok(t) => t,
            Err(r) => return r,
        },
    };
    let ms = match query_param(&p) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let site = state.site.read().unwrap();
    let mut result = Vec::new();
    for s in &site.servers {
        let l = labels(s);
        if t > now || !matches(&ms, &l) {
            continue;
        }
        if let Some(v) = at(t).and_then(|ts| sample(s, ts)) {
            result.push(json!({"metric": metric_json(&l), "value": [ts_json(t), v.to_string()]}));
        }
    }
    axum::Json(json!({"status": "success", "data": {"resultType": "vector", "result": result}})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse_like_casos_query() {
        let m =
            parse_selector(r#"prometheus_value{type_instance="scaph_process_power_microwatts",uuid="abc"}"#).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[2], Matcher { name: "uuid".into(), op: Op::Eq, value: "abc".into() });
        assert!(parse_selector("rate(x[5m])").unwrap_err().contains("parse error"));
        assert!(parse_selector(r#"x{uuid=~"a.*"}"#).is_err());
        assert!(parse_selector("").unwrap_err().contains("no expression"));
    }

    #[test]
    fn durations_and_times_parse_like_prometheus() {
        assert_eq!(parse_duration("30"), Some(30_000));
        assert_eq!(parse_duration("1m30s"), Some(90_000));
        assert_eq!(parse_duration("1.5"), Some(1500));
        assert_eq!(parse_duration("abc"), None);
        assert_eq!(parse_time("1685051946.5"), Some(1_685_051_946_500));
        assert_eq!(parse_time("2023-05-25T21:59:06Z"), Some(1_685_051_946_000));
    }

    #[test]
    fn power_is_vcpus_times_factor_times_wave() {
        let noon = Utc.with_ymd_and_hms(2023, 5, 25, 12, 0, 0).unwrap();
        let midnight = Utc.with_ymd_and_hms(2023, 5, 25, 0, 30, 0).unwrap();
        assert_eq!(daily_percent(noon), 116);
        assert_eq!(daily_percent(midnight), 80);
        let f = per_vcpu_microwatts("x");
        assert!((4_000_000..=12_000_000).contains(&f) && f.is_multiple_of(1000));
        assert_eq!(power_microwatts("x", 2, noon), 2 * f * 116 / 100);
    }
}
