//! The simulated Nova v2.1 API (mounted at `/compute`): version discovery,
//! microversions (2.1–2.79), servers, flavors, usage, instance actions,
//! quotas and limits, rendered per microversion as Nova does.
//!
//! This file owns the plumbing every handler shares: the layer that checks
//! the token and the microversion and echoes the version headers, query
//! parsing, time formats, links and pagination helpers.

mod flavors;
pub(crate) mod misc;
mod servers;
mod usage;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::auth;
use crate::error::ApiError;
use crate::state::{AppState, Service, TokenInfo};

/// Oldest and newest microversion (minor of 2.x) this simulator speaks.
pub const MIN_MINOR: u32 = 1;
pub const MAX_MINOR: u32 = 79;
/// `[api] max_limit` (osapi_max_limit).
pub const MAX_LIMIT: usize = 1000;

/// Routes of this service, mounted under `Service::Compute.prefix()`.
pub fn router() -> Router<Arc<AppState>> {
    let v = |p: &str| format!("/v2.1{p}");
    Router::new()
        .route("/", get(misc::versions))
        .route("/v2.1", get(misc::version_doc))
        .route("/v2.1/", get(misc::version_doc))
        .route(&v("/servers"), get(servers::list).post(servers::create))
        .route(&v("/servers/detail"), get(servers::list_detail))
        .route(&v("/servers/{id}"), get(servers::show).delete(servers::delete))
        .route(&v("/servers/{id}/action"), axum::routing::post(servers::action))
        .route(&v("/servers/{id}/os-instance-actions"), get(servers::instance_actions))
        .route(&v("/servers/{id}/os-instance-actions/{req}"), get(servers::instance_action))
        .route(&v("/flavors"), get(flavors::list))
        .route(&v("/flavors/detail"), get(flavors::list_detail))
        .route(&v("/flavors/{id}"), get(flavors::show))
        .route(&v("/flavors/{id}/os-extra_specs"), get(flavors::extra_specs))
        .route(&v("/flavors/{id}/os-extra_specs/{key}"), get(flavors::extra_spec))
        .route(&v("/flavors/{id}/os-flavor-access"), get(flavors::access))
        .route(&v("/os-simple-tenant-usage"), get(usage::index))
        .route(&v("/os-simple-tenant-usage/{tenant}"), get(usage::show))
        .route(&v("/os-quota-sets/{project}"), get(misc::quota_show))
        .route(&v("/os-quota-sets/{project}/detail"), get(misc::quota_detail))
        .route(&v("/os-quota-sets/{project}/defaults"), get(misc::quota_defaults))
        .route(&v("/limits"), get(misc::limits))
        .route(&v("/os-availability-zone"), get(misc::availability_zones))
        .route(&v("/os-availability-zone/detail"), get(misc::availability_zones_detail))
        .route(&v("/extensions"), get(misc::extensions))
        .fallback(|| async { err(StatusCode::NOT_FOUND, "The resource could not be found.") })
        .layer(axum::middleware::from_fn(version_layer))
}

/// Who is asking, at which microversion. Inserted by [`nova_layer`].
#[derive(Clone)]
pub struct Ctx {
    pub token: TokenInfo,
    /// Minor version of 2.x.
    pub mv: u32,
}

impl Ctx {
    pub fn at_least(&self, minor: u32) -> bool {
        self.mv >= minor
    }
    /// Nova's `context.is_admin` (role admin).
    pub fn is_admin(&self) -> bool {
        self.token.is_admin()
    }
    /// May list every project's resources (admin, system reader).
    pub fn all_projects(&self) -> bool {
        auth::can_list_all_projects(&self.token)
    }
    /// Owner-or-admin rules (`PROJECT_READER_OR_ADMIN`).
    pub fn can_read_project(&self, project_id: &str) -> bool {
        auth::can_access_project(&self.token, project_id) || self.all_projects()
    }
}

pub fn err(status: StatusCode, msg: impl Into<String>) -> ApiError {
    ApiError::new(Service::Compute, status, msg)
}

pub fn bad_request(msg: impl Into<String>) -> ApiError {
    err(StatusCode::BAD_REQUEST, msg)
}

pub fn policy(rule: &str) -> ApiError {
    err(StatusCode::FORBIDDEN, format!("Policy doesn't allow {rule} to be performed."))
}

/// The compute version asked for, as sent (`OpenStack-API-Version` first,
/// then the legacy header).
fn asked_version(headers: &HeaderMap) -> Option<String> {
    let new = headers.get_all("openstack-api-version").iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        v.split(',').find_map(|item| {
            let mut it = item.split_whitespace();
            (it.next()?.eq_ignore_ascii_case("compute")).then(|| it.next().unwrap_or("").to_string())
        })
    });
    let legacy =
        || headers.get("x-openstack-nova-api-version").and_then(|v| v.to_str().ok()).map(|s| s.trim().to_string());
    new.or_else(legacy)
}

/// Parses the requested microversion: `Ok(None)` when none was asked for.
fn requested_version(headers: &HeaderMap) -> Result<Option<u32>, ApiError> {
    let Some(raw) = asked_version(headers) else {
        return Ok(None);
    };
    if raw.eq_ignore_ascii_case("latest") {
        return Ok(Some(MAX_MINOR));
    }
    let invalid =
        || bad_request(format!("API Version String {raw} is of invalid format. Must be of format MajorNum.MinorNum."));
    let (major, minor) = raw.split_once('.').ok_or_else(invalid)?;
    let ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if !ok(major) || !ok(minor) || major == "0" {
        return Err(invalid());
    }
    let (major, minor): (u32, u32) = (major.parse().map_err(|_| invalid())?, minor.parse().map_err(|_| invalid())?);
    if major != 2 || !(MIN_MINOR..=MAX_MINOR).contains(&minor) {
        return Err(err(
            StatusCode::NOT_ACCEPTABLE,
            format!(
                "Version {major}.{minor} is not supported by the API. Minimum is 2.{MIN_MINOR} and maximum is 2.{MAX_MINOR}."
            ),
        ));
    }
    Ok(Some(minor))
}

/// The requested microversion, parsed once per request by [`version_layer`].
#[derive(Clone)]
pub struct Mv(pub Result<u32, ApiError>);

/// Parses the microversion and echoes the version headers on every answer,
/// as nova-api does. Errors (400/406) are raised by the handlers after the
/// token check, since keystonemiddleware answers 401 first.
async fn version_layer(mut req: Request, next: Next) -> Response {
    let mv = requested_version(req.headers()).map(|v| v.unwrap_or(MIN_MINOR));
    // A version out of range (406) is echoed as asked; a malformed one (400) is not.
    let echoed = match &mv {
        Ok(mv) => Some(format!("2.{mv}")),
        Err(e) if e.status == StatusCode::NOT_ACCEPTABLE => asked_version(req.headers()),
        Err(_) => None,
    };
    req.extensions_mut().insert(Mv(mv));
    let mut resp = next.run(req).await;
    if let Some(v) = echoed {
        let h = resp.headers_mut();
        if let (Ok(new), Ok(legacy)) = (HeaderValue::from_str(&format!("compute {v}")), HeaderValue::from_str(&v)) {
            h.insert("openstack-api-version", new);
            h.insert("x-openstack-nova-api-version", legacy);
            h.insert("vary", HeaderValue::from_static("OpenStack-API-Version, X-OpenStack-Nova-API-Version"));
        }
    }
    resp
}

impl FromRequestParts<Arc<AppState>> for Ctx {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let token = auth::authenticate(state, Service::Compute, &parts.headers).await?;
        let mv = parts.extensions.get::<Mv>().map(|m| m.0.clone()).unwrap_or(Ok(MIN_MINOR))?;
        if mv > state.nova_max_minor {
            // An older release (`SimConfig::nova_max_minor`) refuses what it does not know.
            return Err(err(
                StatusCode::NOT_ACCEPTABLE,
                format!(
                    "Version 2.{mv} is not supported by the API. Minimum is 2.{MIN_MINOR} and maximum is 2.{}.",
                    state.nova_max_minor
                ),
            ));
        }
        Ok(Ctx { token, mv })
    }
}

impl FromRequestParts<Arc<AppState>> for Mv {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &Arc<AppState>) -> Result<Self, ApiError> {
        Ok(parts.extensions.get::<Mv>().cloned().unwrap_or(Mv(Ok(MIN_MINOR))))
    }
}

/// A parsed query string keeping repeated keys.
#[derive(Debug, Default, Clone)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        Query(url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()).into_owned().collect())
    }
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }
    /// `(limit, marker)` as `common.get_limit_and_marker` reads them.
    pub fn limit_marker(&self) -> Result<(usize, Option<String>), ApiError> {
        let limit = match self.get("limit") {
            None => MAX_LIMIT,
            Some(v) => {
                let n: usize = v.trim().parse().map_err(|_| {
                    bad_request(format!(
                        "Invalid input for query parameters limit. Value: {v}. '{v}' does not match '^[0-9]*$'"
                    ))
                })?;
                n.min(MAX_LIMIT)
            }
        };
        Ok((limit, self.get("marker").map(String::from)))
    }
    /// The href of the next page: the same query sorted by key with the marker replaced.
    pub fn next_href(&self, base: &str, collection: &str, marker: &str) -> String {
        let mut params: Vec<(String, String)> = Vec::new();
        for (k, v) in &self.0 {
            if k != "marker" {
                // request.params.items() keeps one value per key
                if let Some(e) = params.iter_mut().find(|(pk, _)| pk == k) {
                    e.1 = v.clone();
                } else {
                    params.push((k.clone(), v.clone()));
                }
            }
        }
        params.sort_by(|a, b| a.0.cmp(&b.0));
        params.push(("marker".into(), marker.into()));
        let qs = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        format!("{base}/v2.1/{collection}?{qs}")
    }
    /// `[{"rel": "next", "href"}]` when a page is full, as `_get_collection_links`.
    pub fn collection_links(
        &self,
        base: &str,
        collection: &str,
        count: usize,
        last_id: Option<&str>,
    ) -> Option<serde_json::Value> {
        let max = self.get("limit").and_then(|l| l.trim().parse::<usize>().ok()).unwrap_or(MAX_LIMIT).min(MAX_LIMIT);
        match last_id {
            Some(id) if max > 0 && max == count => Some(serde_json::json!([
                {"rel": "next", "href": self.next_href(base, collection, id)}
            ])),
            _ => None,
        }
    }
}

/// `http://host:port/compute`
pub fn base(state: &AppState) -> String {
    format!("{}{}", state.base_url, Service::Compute.prefix())
}

/// `2023-05-20T10:00:00Z` (utils.isotime)
pub fn iso_z(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `2023-05-20T10:01:00.000000` (naive datetimes through jsonutils)
pub fn naive_us(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// `timeutils.parse_isotime`: ISO 8601 with `T` or a space, optional
/// fraction and offset (naive = UTC), or a bare date.
pub fn parse_isotime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    let t = s.replacen(' ', "T", 1);
    if let Ok(d) = DateTime::parse_from_rfc3339(&t) {
        return Some(d.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%#z", "%Y-%m-%dT%H:%M%#z"] {
        if let Ok(d) = DateTime::parse_from_str(&t, fmt) {
            return Some(d.with_timezone(&Utc));
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(&t, fmt) {
            return Some(d.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(|d| d.and_hms_opt(0, 0, 0).unwrap().and_utc())
}

/// `strutils.bool_from_string(strict=True)`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Some(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Some(false),
        _ => None,
    }
}

/// Case-insensitive search of a small regular expression subset (what
/// Nova's `REGEXP` filters get in practice): literals, `.`, `*`, `+`, `?`,
/// `^`, `$` and `\` escapes.
pub fn regex_search(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    if let Some(rest) = p.strip_prefix(&['^']) {
        return match_here(rest, &t);
    }
    (0..=t.len()).any(|i| match_here(&p, &t[i..]))
}

fn atom(p: &[char]) -> Option<(Option<char>, usize)> {
    match p.first()? {
        '\\' => Some((Some(*p.get(1).unwrap_or(&'\\')), if p.len() > 1 { 2 } else { 1 })),
        '.' => Some((None, 1)),
        c => Some((Some(*c), 1)),
    }
}

fn match_here(p: &[char], t: &[char]) -> bool {
    if p.is_empty() {
        return true;
    }
    if p == ['$'] {
        return t.is_empty();
    }
    let (a, n) = atom(p).unwrap();
    let m = |c: &char| a.is_none_or(|a| a == *c);
    match p.get(n) {
        Some('*') | Some('+') | Some('?') => {
            let op = p[n];
            let rest = &p[n + 1..];
            let max = if op == '?' { 1 } else { t.iter().take_while(|c| m(c)).count() };
            let max = max.min(t.len());
            let min = if op == '+' { 1 } else { 0 };
            (min..=max).rev().any(|k| t[..k].iter().all(m) && match_here(rest, &t[k..]))
        }
        _ => !t.is_empty() && m(&t[0]) && match_here(&p[n..], &t[1..]),
    }
}

/// Deterministic UUID-shaped string from some parts (request ids, MACs).
pub fn stable_uuid(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    let d = hex::encode(&h.finalize()[..16]);
    format!("{}-{}-4{}-8{}-{}", &d[0..8], &d[8..12], &d[13..16], &d[17..20], &d[20..32])
}

/// Nova's `hostId`: sha224(project + host), here sha256 cut to 56 hex chars.
pub fn host_id(host: &str, project: &str) -> String {
    use sha2::{Digest, Sha256};
    if host.is_empty() {
        return String::new();
    }
    hex::encode(Sha256::digest(format!("{project}{host}").as_bytes()))[..56].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_subset_matches_like_nova_name_filter() {
        assert!(regex_search("bob", "bobb"));
        assert!(regex_search("^vm-", "VM-1"));
        assert!(!regex_search("^vm-$", "vm-1"));
        assert!(regex_search("vm-.*9$", "vm-0009"));
        assert!(regex_search("a+b", "xaab"));
        assert!(regex_search(r"10\.0\.0\.5", "10.0.0.5"));
        assert!(!regex_search(r"10\.0\.0\.5", "10x0x0x5"));
    }

    #[test]
    fn isotime_accepts_caso_space_format_and_offsets() {
        let t = parse_isotime("2023-05-21 00:00:00").unwrap();
        assert_eq!(iso_z(t), "2023-05-21T00:00:00Z");
        assert_eq!(iso_z(parse_isotime("2023-05-21T02:00:00+02:00").unwrap()), "2023-05-21T00:00:00Z");
        assert_eq!(iso_z(parse_isotime("2023-05-21T00:00:00.5Z").unwrap()), "2023-05-21T00:00:00Z");
        assert!(parse_isotime("yesterday").is_none());
    }

    #[test]
    fn microversion_headers_parse_like_nova() {
        let mut h = HeaderMap::new();
        assert_eq!(requested_version(&h).unwrap(), None);
        h.insert("openstack-api-version", "volume 3.0, compute 2.47".parse().unwrap());
        assert_eq!(requested_version(&h).unwrap(), Some(47));
        h.insert("openstack-api-version", "compute latest".parse().unwrap());
        assert_eq!(requested_version(&h).unwrap(), Some(MAX_MINOR));
        h.insert("openstack-api-version", "compute 2.80".parse().unwrap());
        assert_eq!(requested_version(&h).unwrap_err().status, StatusCode::NOT_ACCEPTABLE);
        h.insert("openstack-api-version", "compute 2.latest".parse().unwrap());
        assert_eq!(requested_version(&h).unwrap_err().status, StatusCode::BAD_REQUEST);
        h.remove("openstack-api-version");
        h.insert("x-openstack-nova-api-version", "2.60".parse().unwrap());
        assert_eq!(requested_version(&h).unwrap(), Some(60));
    }
}
