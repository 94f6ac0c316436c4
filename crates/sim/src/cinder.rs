//! The simulated Cinder v3 block storage API (mounted at `/volume`): version
//! documents, volumes (list, detail, show), volume types, limits, quota sets
//! and empty snapshot/backup lists, rendered as Cinder renders them.
//!
//! Owns Cinder's rules: the `OpenStack-API-Version: volume 3.x` microversion,
//! "Malformed request url" on a project id mismatch, admin-only fields,
//! `all_tenants`, filter stripping for non-admins, sort/marker/limit paging.
//! Listings in the default order filtered at most by project come from the
//! view's [`VolumeIndex`](crate::index::VolumeIndex); others sort every
//! visible volume.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::auth;
use crate::error::{ApiError, ApiResult};
use crate::index::Listings;
use crate::model::{Site, Volume, VolumeQuota};
use crate::state::{AppState, Service, TokenInfo};

const SVC: Service = Service::Volume;
/// Highest microversion (Cinder 2024.1 and later).
pub const MAX_MINOR: u32 = 71;
/// `osapi_max_limit`
const MAX_LIMIT: usize = 1000;
const DEFAULT_TYPE: &str = "__DEFAULT__";
/// First path segments that name a resource (project-less URLs, 3.67+).
const RESOURCES: &[&str] =
    &["volumes", "types", "limits", "os-quota-sets", "snapshots", "backups", "os-availability-zone"];

/// Routes of this service, mounted under `Service::Volume.prefix()`.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(versions_all))
        .route("/v3", get(version_v3))
        .route("/v3/", get(version_v3))
        .route("/v3/{*rest}", get(dispatch))
        .fallback(fallback)
}

/// Unknown paths get Cinder's 404. (`/volume/` with its trailing slash never
/// reaches a nested router; lib.rs may route it to [`versions_all`].)
async fn fallback(State(state): State<Arc<AppState>>, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let p = uri.path().trim_start_matches(SVC.prefix());
    if p.is_empty() || p == "/" {
        return versions_all(State(state), headers).await;
    }
    with_version(ApiError::not_found(SVC, "The resource could not be found.").into_response(), &headers)
}

fn base(state: &AppState) -> String {
    format!("{}{}", state.base_url, SVC.prefix())
}

fn version_doc(state: &AppState) -> Value {
    json!({
        "id": "v3.0",
        "status": "CURRENT",
        "version": format!("3.{MAX_MINOR}"),
        "min_version": "3.0",
        "updated": "2023-08-31T00:00:00Z",
        "links": [
            {"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
            {"rel": "self", "href": format!("{}/v3/", base(state))}
        ],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.volume+json;version=3"}]
    })
}

/// `GET /volume`: 300 Multiple Choices, as Cinder's unversioned root (with
/// the version headers, as every Cinder answer).
pub(crate) async fn versions_all(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let resp = (StatusCode::MULTIPLE_CHOICES, axum::Json(json!({"versions": [version_doc(&state)]}))).into_response();
    with_version(resp, &headers)
}

/// `GET /volume/v3/`: the same list with 200.
async fn version_v3(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match microversion(&headers) {
        Ok(mv) => reply(mv, StatusCode::OK, json!({"versions": [version_doc(&state)]})),
        Err(e) => with_version(e.into_response(), &headers),
    }
}

/// The `volume` entry of `OpenStack-API-Version`, as sent.
fn asked_version(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(raw) = headers.get("openstack-api-version") else { return Ok(None) };
    let raw = raw.to_str().map_err(|_| ApiError::bad_request(SVC, "Invalid OpenStack-API-Version header"))?;
    Ok(raw.split(',').map(str::trim).find_map(|p| {
        let mut it = p.split_whitespace();
        (it.next().is_some_and(|s| s.eq_ignore_ascii_case("volume"))).then(|| it.next().unwrap_or("").to_string())
    }))
}

/// Adds the headers Cinder puts on every answer, errors included: the
/// version served, or the one asked for when it was refused as out of range
/// (406), and `Vary`. None for a malformed version.
fn with_version(mut resp: Response, headers: &HeaderMap) -> Response {
    let echoed = match microversion(headers) {
        Ok(mv) => Some(format!("3.{mv}")),
        Err(e) if e.status == StatusCode::NOT_ACCEPTABLE => asked_version(headers).ok().flatten(),
        Err(_) => None,
    };
    if let Some(v) = echoed.and_then(|v| HeaderValue::from_str(&format!("volume {v}")).ok()) {
        resp.headers_mut().insert("openstack-api-version", v);
        resp.headers_mut().insert("vary", HeaderValue::from_static("OpenStack-API-Version"));
    }
    resp
}

/// The requested microversion's minor number (3.x); 3.0 when absent.
pub fn microversion(headers: &HeaderMap) -> ApiResult<u32> {
    let Some(v) = asked_version(headers)? else {
        return Ok(0);
    };
    if v.eq_ignore_ascii_case("latest") {
        return Ok(MAX_MINOR);
    }
    let invalid = || {
        ApiError::bad_request(
            SVC,
            format!("API Version String {v} is of invalid format. Must be of format MajorNum.MinorNum."),
        )
    };
    let (maj, min) = v.split_once('.').ok_or_else(invalid)?;
    let (maj, min): (u32, u32) = (maj.parse().map_err(|_| invalid())?, min.parse().map_err(|_| invalid())?);
    if maj != 3 || min > MAX_MINOR {
        return Err(ApiError::new(
            SVC,
            StatusCode::NOT_ACCEPTABLE,
            format!("Version {v} is not supported by the API. Minimum is 3.0 and maximum is 3.{MAX_MINOR}."),
        ));
    }
    Ok(min)
}

/// A JSON answer with the microversion headers Cinder adds.
fn reply(mv: u32, status: StatusCode, body: Value) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("volume 3.{mv}")) {
        resp.headers_mut().insert("openstack-api-version", v);
    }
    resp.headers_mut().insert("vary", HeaderValue::from_static("OpenStack-API-Version"));
    resp
}

/// Who is asking and how.
struct Ctx {
    token: TokenInfo,
    mv: u32,
    /// The project id in the URL, if the URL has one.
    url_project: Option<String>,
    base: String,
    query: Vec<(String, String)>,
    raw_query: String,
    now: DateTime<Utc>,
}

impl Ctx {
    fn admin(&self) -> bool {
        self.token.is_admin()
    }
    fn param(&self, k: &str) -> Option<&str> {
        self.query.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }
    /// `{base}/v3/{project}/` or `{base}/v3/` for project-less URLs.
    fn v3(&self) -> String {
        match &self.url_project {
            Some(p) => format!("{}/v3/{p}", self.base),
            None => format!("{}/v3", self.base),
        }
    }
    fn links(&self, collection: &str, id: &str) -> Value {
        let bookmark = match &self.url_project {
            Some(p) => format!("{}/{p}/{collection}/{id}", self.base),
            None => format!("{}/{collection}/{id}", self.base),
        };
        json!([
            {"href": format!("{}/{collection}/{id}", self.v3()), "rel": "self"},
            {"href": bookmark, "rel": "bookmark"}
        ])
    }
}

async fn dispatch(
    State(state): State<Arc<AppState>>,
    Path(rest): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mv = match microversion(&headers) {
        Ok(mv) => mv,
        Err(e) => return with_version(e.into_response(), &headers),
    };
    match route(&state, &rest, raw, &headers, mv).await {
        Ok((status, body)) => reply(mv, status, body),
        Err(e) => with_version(e.into_response(), &headers),
    }
}

async fn route(
    state: &AppState,
    rest: &str,
    raw: Option<String>,
    headers: &HeaderMap,
    mv: u32,
) -> ApiResult<(StatusCode, Value)> {
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let (url_project, segs) = match segs.split_first() {
        Some((first, tail)) if !RESOURCES.contains(first) => (Some(first.to_string()), tail),
        _ => (None, &segs[..]),
    };
    let token = auth::authenticate(state, SVC, headers).await?;
    if let Some(p) = &url_project {
        // cinder.api.openstack.wsgi: any token (admin and system scope
        // included) whose project differs from the URL's is refused.
        if token.project_id() != Some(p.as_str()) {
            return Err(ApiError::bad_request(SVC, "Malformed request url"));
        }
    }
    let raw_query = raw.unwrap_or_default();
    let ctx = Ctx {
        token,
        mv,
        url_project,
        base: base(state),
        query: url::form_urlencoded::parse(raw_query.as_bytes()).into_owned().collect(),
        raw_query,
        now: state.now(),
    };
    let site = state.site.read().unwrap_or_else(|e| e.into_inner());
    let ok = |v: Value| Ok((StatusCode::OK, v));
    match segs {
        ["volumes"] => ok(list_volumes(&ctx, &site, false, &state.listings(&site, ctx.now))?),
        ["volumes", "detail"] => ok(list_volumes(&ctx, &site, true, &state.listings(&site, ctx.now))?),
        ["volumes", id] => ok(show_volume(&ctx, &site, id)?),
        ["types"] => ok(list_types(&ctx, &site)),
        ["types", id] => ok(show_type(&ctx, &site, id)?),
        ["limits"] => ok(limits(&ctx, &site)?),
        ["os-quota-sets", target] => ok(quota_set(&ctx, &site, target, false)?),
        ["os-quota-sets", target, "defaults"] => ok(quota_set(&ctx, &site, target, true)?),
        ["snapshots"] | ["snapshots", "detail"] => ok(json!({"snapshots": []})),
        ["backups"] | ["backups", "detail"] => ok(json!({"backups": []})),
        ["snapshots", id] => Err(ApiError::not_found(SVC, format!("Snapshot {id} could not be found."))),
        ["backups", id] => Err(ApiError::not_found(SVC, format!("Backup {id} could not be found."))),
        ["os-availability-zone"] => {
            let zones: BTreeSet<&str> = site.volumes.iter().map(|v| v.availability_zone.as_str()).collect();
            let zones: Vec<Value> =
                zones.iter().map(|z| json!({"zoneName": z, "zoneState": {"available": true}})).collect();
            ok(json!({"availabilityZoneInfo": zones}))
        }
        _ => Err(ApiError::not_found(SVC, "The resource could not be found.")),
    }
}

/// A deterministic UUID from a few strings (ids the model does not hold).
pub fn stable_uuid(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &x[0..8], &x[8..12], &x[12..16], &x[16..20], &x[20..32])
}

/// Cinder's timestamp format: naive, microseconds.
fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

fn type_name(v: &Volume) -> &str {
    if v.volume_type.is_empty() { DEFAULT_TYPE } else { &v.volume_type }
}

fn type_id(name: &str) -> String {
    stable_uuid(&["volume-type", name])
}

/// One volume as `GET /volumes/detail` shows it.
fn render_volume(ctx: &Ctx, v: &Volume) -> Value {
    let now = ctx.now;
    let admin = ctx.admin();
    let attachments: Vec<Value> = v
        .attachments_at(now)
        .map(|a| {
            json!({
                "id": v.id,
                "attachment_id": stable_uuid(&["attachment", &v.id, &a.server_id, &a.attached_at.to_rfc3339()]),
                "volume_id": v.id,
                "server_id": a.server_id,
                "host_name": Value::Null,
                "device": a.device,
                "attached_at": ts(a.attached_at),
            })
        })
        .collect();
    let tname = type_name(v);
    let mut o = json!({
        "id": v.id,
        "status": v.status_at(now),
        "size": v.size,
        "availability_zone": v.availability_zone,
        "created_at": ts(v.created_at),
        "updated_at": ts(v.updated_at(now)),
        "name": v.name,
        "description": Value::Null,
        "volume_type": tname,
        "snapshot_id": Value::Null,
        "source_volid": Value::Null,
        "metadata": {},
        "links": ctx.links("volumes", &v.id),
        "user_id": v.user_id,
        "bootable": if v.bootable { "true" } else { "false" },
        "encrypted": false,
        "replication_status": Value::Null,
        "consistencygroup_id": Value::Null,
        "multiattach": false,
        "attachments": attachments,
        "os-vol-tenant-attr:tenant_id": v.project_id,
    });
    let m = o.as_object_mut().expect("json object");
    if admin {
        m.insert("migration_status".into(), Value::Null);
        m.insert("os-vol-host-attr:host".into(), json!(format!("cinder@{tname}#{tname}")));
        m.insert("os-vol-mig-status-attr:migstat".into(), Value::Null);
        m.insert("os-vol-mig-status-attr:name_id".into(), Value::Null);
    }
    let mv = ctx.mv;
    if mv >= 13 {
        m.insert("group_id".into(), Value::Null);
    }
    if admin && mv >= 21 {
        m.insert("provider_id".into(), Value::Null);
    }
    if mv >= 48 {
        m.insert("shared_targets".into(), json!(mv < 69));
        m.insert("service_uuid".into(), json!(stable_uuid(&["cinder-volume", tname])));
    }
    if admin && mv >= 61 {
        m.insert("cluster_name".into(), Value::Null);
    }
    if mv >= 63 {
        m.insert("volume_type_id".into(), json!(type_id(tname)));
    }
    if mv >= 65 {
        m.insert("consumes_quota".into(), json!(true));
    }
    o
}

fn render_summary(ctx: &Ctx, v: &Volume) -> Value {
    json!({"id": v.id, "name": v.name, "links": ctx.links("volumes", &v.id)})
}

/// `limit`, `offset` as Cinder's `common.get_pagination_params` reads them.
fn int_param(ctx: &Ctx, name: &str) -> ApiResult<Option<usize>> {
    let Some(raw) = ctx.param(name) else { return Ok(None) };
    let n: i64 =
        raw.trim().parse().map_err(|_| ApiError::bad_request(SVC, format!("{name} param must be an integer")))?;
    if n < 0 {
        return Err(ApiError::bad_request(SVC, format!("{name} param must be positive")));
    }
    Ok(Some(n as usize))
}

#[derive(Clone, Copy, PartialEq)]
enum SortKey {
    Id,
    Name,
    CreatedAt,
    UpdatedAt,
    Size,
    Status,
    UserId,
    ProjectId,
    Zone,
    Bootable,
    VolumeType,
}

fn sort_key(name: &str) -> Option<SortKey> {
    Some(match name {
        "id" => SortKey::Id,
        "name" | "display_name" => SortKey::Name,
        "created_at" => SortKey::CreatedAt,
        "updated_at" => SortKey::UpdatedAt,
        "size" => SortKey::Size,
        "status" => SortKey::Status,
        "user_id" => SortKey::UserId,
        "project_id" => SortKey::ProjectId,
        "availability_zone" => SortKey::Zone,
        "bootable" => SortKey::Bootable,
        "volume_type_id" | "volume_type" => SortKey::VolumeType,
        _ => return None,
    })
}

/// `sort=k1:d1,k2` or `sort_key`/`sort_dir`, plus the default keys
/// (`created_at`, `id`) in the first direction given, else `desc`.
fn sort_params(ctx: &Ctx) -> ApiResult<Vec<(SortKey, bool)>> {
    let mut keys: Vec<String> = Vec::new();
    let mut dirs: Vec<String> = Vec::new();
    if let Some(sort) = ctx.param("sort") {
        if ctx.param("sort_key").is_some() || ctx.param("sort_dir").is_some() {
            return Err(ApiError::bad_request(
                SVC,
                "The 'sort_key' and 'sort_dir' parameters are deprecated and cannot be used with the 'sort' parameter.",
            ));
        }
        for part in sort.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, d) = part.split_once(':').map(|(k, d)| (k, Some(d))).unwrap_or((part, None));
            keys.push(k.trim().to_string());
            if let Some(d) = d {
                dirs.push(d.trim().to_lowercase());
            } else if !dirs.is_empty() {
                dirs.push(dirs[0].clone());
            }
        }
    } else {
        if let Some(k) = ctx.param("sort_key") {
            keys.push(k.to_string());
        }
        if let Some(d) = ctx.param("sort_dir") {
            dirs.push(d.to_lowercase());
        }
    }
    for d in &dirs {
        if d != "asc" && d != "desc" {
            return Err(ApiError::bad_request(
                SVC,
                "Invalid input received: Unknown sort direction, must be 'desc' or 'asc'.",
            ));
        }
    }
    if dirs.len() > keys.len() {
        return Err(ApiError::bad_request(
            SVC,
            "Invalid input received: Sort direction array size exceeds sort key array size.",
        ));
    }
    let default_desc = dirs.first().is_none_or(|d| d == "desc");
    let mut out = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let key = sort_key(k)
            .ok_or_else(|| ApiError::bad_request(SVC, format!("Invalid input received: Invalid sort key {k}")))?;
        let desc = dirs.get(i).map(|d| d == "desc").unwrap_or(default_desc);
        out.push((key, desc));
    }
    for key in [SortKey::CreatedAt, SortKey::Id] {
        if !out.iter().any(|(k, _)| *k == key) {
            out.push((key, default_desc));
        }
    }
    Ok(out)
}

fn compare(a: &Volume, b: &Volume, keys: &[(SortKey, bool)], now: DateTime<Utc>) -> Ordering {
    for (k, desc) in keys {
        let o = match k {
            SortKey::Id => a.id.cmp(&b.id),
            SortKey::Name => a.name.cmp(&b.name),
            SortKey::CreatedAt => a.created_at.cmp(&b.created_at),
            SortKey::UpdatedAt => a.updated_at(now).cmp(&b.updated_at(now)),
            SortKey::Size => a.size.cmp(&b.size),
            SortKey::Status => a.status_at(now).cmp(b.status_at(now)),
            SortKey::UserId => a.user_id.cmp(&b.user_id),
            SortKey::ProjectId => a.project_id.cmp(&b.project_id),
            SortKey::Zone => a.availability_zone.cmp(&b.availability_zone),
            SortKey::Bootable => a.bootable.cmp(&b.bootable),
            SortKey::VolumeType => type_name(a).cmp(type_name(b)),
        };
        let o = if *desc { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// Query keys that are paging/sorting, not filters.
const NON_FILTERS: &[&str] =
    &["limit", "marker", "offset", "sort", "sort_key", "sort_dir", "with_count", "all_tenants"];
/// Filters a non-admin may use (Cinder's default `resource_filters.json`).
const USER_FILTERS: &[&str] = &[
    "name",
    "status",
    "metadata",
    "bootable",
    "migration_status",
    "availability_zone",
    "group_id",
    "size",
    "created_at",
    "updated_at",
    "consumes_quota",
];
/// Columns of Cinder's Volume model an admin may filter on; any other key
/// makes Cinder's DB layer return no volumes at all.
const ADMIN_COLUMNS: &[&str] = &[
    "id",
    "user_id",
    "project_id",
    "host",
    "cluster_name",
    "size",
    "availability_zone",
    "status",
    "attach_status",
    "migration_status",
    "display_name",
    "display_description",
    "volume_type_id",
    "bootable",
    "multiattach",
    "snapshot_id",
    "source_volid",
    "replication_status",
    "consistencygroup_id",
    "group_id",
    "metadata",
    "glance_metadata",
    "created_at",
    "updated_at",
    "use_quota",
    "consumes_quota",
    "encryption_key_id",
    "provider_id",
    "service_uuid",
    "shared_targets",
];

fn bool_value(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Some(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Some(false),
        _ => None,
    }
}

fn list_volumes(ctx: &Ctx, site: &Site, detail: bool, listings: &Listings) -> ApiResult<Value> {
    let now = ctx.now;
    let limit = int_param(ctx, "limit")?;
    let offset = int_param(ctx, "offset")?.unwrap_or(0);
    let keys = sort_params(ctx)?;
    let all_tenants = ctx.param("all_tenants").is_some_and(|v| bool_value(v).unwrap_or(true) && !v.is_empty())
        && auth::can_list_all_projects(&ctx.token);
    let admin = ctx.admin() || auth::can_list_all_projects(&ctx.token);

    // Filters: non-admins silently lose the ones they may not use; an
    // admin's unknown key (e.g. cASO's `changes-since`) matches nothing.
    let mut filters: Vec<(String, String)> = Vec::new();
    let mut matches_nothing = false;
    for (k, v) in &ctx.query {
        if NON_FILTERS.contains(&k.as_str()) {
            continue;
        }
        let col = if k == "name" { "display_name" } else { k.as_str() };
        if !admin {
            if USER_FILTERS.contains(&k.as_str()) {
                filters.push((col.to_string(), v.clone()));
            }
        } else if ADMIN_COLUMNS.contains(&col) {
            filters.push((col.to_string(), v.clone()));
        } else {
            matches_nothing = true;
        }
    }
    let own = ctx.token.project_id();
    // The default order, filtered at most by project: from the index.
    let ix = listings.volumes(site);
    let indexed = ix.unique_ids
        && !matches_nothing
        && keys == [(SortKey::CreatedAt, true), (SortKey::Id, true)]
        && filters.iter().all(|(k, _)| k == "project_id");
    let sorted: Vec<u32>;
    let order: &[u32] = if indexed {
        // What the project must be: each filter's value and, without
        // all_tenants, the token's own project (None: no project matches).
        let wants: Vec<Option<&str>> =
            filters.iter().map(|(_, p)| Some(p.as_str())).chain((!all_tenants).then_some(own)).collect();
        match wants.split_first() {
            None => ix.list(None),
            Some((Some(p), rest)) if rest.iter().all(|w| *w == Some(*p)) => ix.list(Some(p)),
            Some(_) => &[],
        }
    } else if matches_nothing {
        &[]
    } else {
        let mut v: Vec<u32> = (0..site.volumes.len() as u32)
            .filter(|i| {
                let v = &site.volumes[*i as usize];
                v.visible_at(now)
                    && (all_tenants || own == Some(v.project_id.as_str()))
                    && filters.iter().all(|(k, val)| volume_matches(v, k, val, now))
            })
            .collect();
        v.sort_unstable_by(|a, b| compare(&site.volumes[*a as usize], &site.volumes[*b as usize], &keys, now));
        sorted = v;
        &sorted
    };

    let mut start = 0;
    if let Some(marker) = ctx.param("marker") {
        let m = site
            .volumes
            .iter()
            .find(|v| v.id == marker && v.visible_at(now))
            .ok_or_else(|| ApiError::not_found(SVC, format!("Volume {marker} could not be found.")))?;
        start = order.partition_point(|i| compare(&site.volumes[*i as usize], m, &keys, now) != Ordering::Greater);
    }
    let start = start.saturating_add(offset).min(order.len());
    let page_size = limit.unwrap_or(MAX_LIMIT).min(MAX_LIMIT);
    let end = start.saturating_add(page_size).min(order.len());
    let page: Vec<&Volume> = order[start..end].iter().map(|i| &site.volumes[*i as usize]).collect();
    let remaining = order.len() - start;

    let body: Vec<Value> =
        page.iter().map(|v| if detail { render_volume(ctx, v) } else { render_summary(ctx, v) }).collect();
    let mut out = json!({"volumes": body});
    // cinder.api.common.ViewBuilder._get_collection_links
    let next = match limit {
        Some(l) if l <= MAX_LIMIT => l > 0 && page.len() == l,
        _ => page.len() < remaining,
    };
    if next && let Some(last) = page.last() {
        let mut params: Vec<(String, String)> =
            url::form_urlencoded::parse(ctx.raw_query.as_bytes()).into_owned().filter(|(k, _)| k != "marker").collect();
        params.push(("marker".into(), last.id.clone()));
        let qs = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        let coll = if detail { "volumes/detail" } else { "volumes" };
        out["volumes_links"] = json!([{"rel": "next", "href": format!("{}/{coll}?{qs}", ctx.v3())}]);
    }
    if ctx.mv >= 45 && ctx.param("with_count").is_some_and(|v| bool_value(v) == Some(true)) {
        out["count"] = json!(order.len());
    }
    Ok(out)
}

fn volume_matches(v: &Volume, key: &str, val: &str, now: DateTime<Utc>) -> bool {
    match key {
        "display_name" => v.name == val,
        "status" => v.status_at(now) == val,
        "availability_zone" => v.availability_zone == val,
        "size" => val.parse::<u64>().is_ok_and(|s| s == v.size),
        "bootable" => bool_value(val).is_some_and(|b| b == v.bootable),
        "user_id" => v.user_id == val,
        "project_id" => v.project_id == val,
        "id" => v.id == val,
        "volume_type_id" => type_id(type_name(v)) == val,
        "multiattach" => bool_value(val) == Some(false),
        "group_id" | "consistencygroup_id" | "snapshot_id" | "source_volid" | "migration_status" => false,
        "consumes_quota" | "use_quota" => bool_value(val) != Some(false),
        // metadata, created_at/updated_at comparisons, host: not modelled.
        _ => true,
    }
}

fn show_volume(ctx: &Ctx, site: &Site, id: &str) -> ApiResult<Value> {
    let v = site
        .volumes
        .iter()
        .find(|v| v.id == id && v.visible_at(ctx.now))
        .filter(|v| ctx.admin() || ctx.token.project_id() == Some(v.project_id.as_str()))
        .ok_or_else(|| ApiError::not_found(SVC, format!("Volume {id} could not be found.")))?;
    Ok(json!({"volume": render_volume(ctx, v)}))
}

/// The default type plus every type the site's volumes use.
fn type_names(site: &Site) -> BTreeSet<&str> {
    let mut names: BTreeSet<&str> = site.volumes.iter().map(type_name).collect();
    names.insert(DEFAULT_TYPE);
    names
}

fn render_type(ctx: &Ctx, name: &str) -> Value {
    let mut t = json!({
        "id": type_id(name),
        "name": name,
        "description": if name == DEFAULT_TYPE { json!("Default Volume Type") } else { Value::Null },
        "is_public": true,
        "os-volume-type-access:is_public": true,
        "extra_specs": {},
    });
    if ctx.admin() {
        t["qos_specs_id"] = Value::Null;
        t["extra_specs"] = json!({"volume_backend_name": name});
    }
    t
}

fn list_types(ctx: &Ctx, site: &Site) -> Value {
    let types: Vec<Value> = type_names(site).into_iter().map(|n| render_type(ctx, n)).collect();
    json!({"volume_types": types})
}

fn show_type(ctx: &Ctx, site: &Site, id: &str) -> ApiResult<Value> {
    let name =
        if id == "default" { Some(DEFAULT_TYPE) } else { type_names(site).into_iter().find(|n| type_id(n) == id) };
    let name = name.ok_or_else(|| ApiError::not_found(SVC, format!("Volume type {id} could not be found.")))?;
    Ok(json!({"volume_type": render_type(ctx, name)}))
}

/// (volumes in use, gigabytes in use) of a project at `now`.
fn usage(site: &Site, project: &str, now: DateTime<Utc>) -> (u64, u64) {
    site.volumes
        .iter()
        .filter(|v| v.project_id == project && v.visible_at(now))
        .fold((0, 0), |(n, g), v| (n + 1, g + v.size))
}

fn limits(ctx: &Ctx, site: &Site) -> ApiResult<Value> {
    let own = ctx.token.project_id().unwrap_or_default().to_string();
    let project = match ctx.param("project_id") {
        Some(p) if ctx.mv >= 39 && ctx.admin() => p.to_string(),
        _ => own,
    };
    let q = site.volume_quotas.get(&project).cloned().unwrap_or_default();
    let (n, g) = usage(site, &project, ctx.now);
    Ok(json!({"limits": {"rate": [], "absolute": {
        "totalSnapshotsUsed": 0,
        "maxTotalBackups": q.backups,
        "maxTotalVolumeGigabytes": q.gigabytes,
        "maxTotalSnapshots": q.snapshots,
        "maxTotalBackupGigabytes": q.backup_gigabytes,
        "totalBackupGigabytesUsed": 0,
        "maxTotalVolumes": q.volumes,
        "totalVolumesUsed": n,
        "totalBackupsUsed": 0,
        "totalGigabytesUsed": g,
    }}}))
}

fn quota_set(ctx: &Ctx, site: &Site, target: &str, defaults: bool) -> ApiResult<Value> {
    if !ctx.admin() && ctx.token.project_id() != Some(target) {
        return Err(ApiError::forbidden(SVC, "Policy doesn't allow volume_extension:quotas:show to be performed."));
    }
    let q = if defaults { VolumeQuota::default() } else { site.volume_quotas.get(target).cloned().unwrap_or_default() };
    let usage_wanted = !defaults && ctx.param("usage").is_some_and(|v| bool_value(v) == Some(true));
    let (n, g) = usage(site, target, ctx.now);
    let mut per_type: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for name in type_names(site) {
        per_type.insert(name.to_string(), (0, 0));
    }
    for v in site.volumes.iter().filter(|v| v.project_id == target && v.visible_at(ctx.now)) {
        let e = per_type.entry(type_name(v).to_string()).or_default();
        e.0 += 1;
        e.1 += v.size;
    }
    let val = |limit: i64, used: u64| {
        if usage_wanted { json!({"limit": limit, "in_use": used, "reserved": 0}) } else { json!(limit) }
    };
    let mut set = serde_json::Map::new();
    set.insert("id".into(), json!(target));
    set.insert("volumes".into(), val(q.volumes, n));
    set.insert("gigabytes".into(), val(q.gigabytes, g));
    set.insert("snapshots".into(), val(q.snapshots, 0));
    set.insert("backups".into(), val(q.backups, 0));
    set.insert("backup_gigabytes".into(), val(q.backup_gigabytes, 0));
    set.insert("groups".into(), val(q.groups, 0));
    set.insert("per_volume_gigabytes".into(), val(q.per_volume_gigabytes, 0));
    for (name, (count, gigs)) in per_type {
        set.insert(format!("volumes_{name}"), val(-1, count));
        set.insert(format!("gigabytes_{name}"), val(-1, gigs));
        set.insert(format!("snapshots_{name}"), val(-1, 0));
    }
    Ok(json!({"quota_set": set}))
}
