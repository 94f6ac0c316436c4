//! A Swift object-store API subset (`/object-store/v1/AUTH_<project>`):
//! account GET/HEAD, container PUT/GET/HEAD/DELETE, object PUT/GET/HEAD/DELETE,
//! with Keystone tokens (a project's own account, or any account for admins).
//!
//! Shapes follow the Object Storage API reference: 201/202 on container PUT,
//! 201 + `Etag` (MD5 hex) on object PUT, 422 on an `Etag` mismatch, listings
//! as text or `?format=json`, 204 on HEAD, 409 deleting a non-empty container;
//! 405 on every write under the `swift_read_only` fault.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Extension, Router};
use chrono::{DateTime, Utc};
use md5::{Digest, Md5};
use serde_json::json;

use crate::state::{AppState, Service};

/// One stored object.
#[derive(Debug, Clone)]
struct Object {
    data: Bytes,
    etag: String,
    content_type: String,
    modified: DateTime<Utc>,
    meta: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default)]
struct Container {
    created: Option<DateTime<Utc>>,
    objects: BTreeMap<String, Object>,
}

/// Accounts → containers → objects, for one simulator.
#[derive(Debug, Default)]
struct Store {
    accounts: Mutex<BTreeMap<String, BTreeMap<String, Container>>>,
}

type St = State<Arc<AppState>>;
type Db = Extension<Arc<Store>>;

/// The Swift routes, nested under `/object-store`.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/info", axum::routing::get(info))
        .route("/v1/{account}", any(account))
        .route("/v1/{account}/", any(account))
        .route("/v1/{account}/{container}", any(container))
        .route("/v1/{account}/{container}/", any(container))
        .route("/v1/{account}/{container}/{*object}", any(object))
        .layer(Extension(Arc::new(Store::default())))
}

/// `GET /info`: the proxy's capabilities (no token), as Swift answers it.
async fn info() -> axum::response::Response {
    use axum::response::IntoResponse;
    axum::Json(serde_json::json!({
        "swift": {"version": "2.35.0", "max_file_size": 5368709122u64, "max_object_name_length": 1024,
                  "container_listing_limit": 10000, "account_listing_limit": 10000, "max_meta_count": 90,
                  "strict_cors_mode": true, "policies": [{"name": "Policy-0", "aliases": "Policy-0", "default": true}]},
        "tempurl": {"methods": ["GET", "HEAD", "PUT", "POST", "DELETE"]},
    }))
    .into_response()
}

/// Swift's short text/html error pages.
fn error(status: StatusCode) -> Response {
    let body = match status {
        StatusCode::UNAUTHORIZED => {
            "<html><h1>Unauthorized</h1><p>This server could not verify that you are authorized to access the document you requested.</p></html>"
        }
        StatusCode::FORBIDDEN => "<html><h1>Forbidden</h1><p>Access was denied to this resource.</p></html>",
        StatusCode::NOT_FOUND => "<html><h1>Not Found</h1><p>The resource could not be found.</p></html>",
        StatusCode::CONFLICT => {
            "<html><h1>Conflict</h1><p>There was a conflict when trying to complete your request.</p></html>"
        }
        StatusCode::UNPROCESSABLE_ENTITY => {
            "<html><h1>Unprocessable Entity</h1><p>Unable to process the contained instructions</p></html>"
        }
        StatusCode::BAD_REQUEST => {
            "<html><h1>Bad Request</h1><p>The server could not comply with the request since it is either malformed or otherwise incorrect.</p></html>"
        }
        _ => "<html><h1>Method Not Allowed</h1><p>The method is not allowed for this resource.</p></html>",
    };
    let mut r = (status, [(header::CONTENT_TYPE, "text/html; charset=UTF-8")], body).into_response();
    trans_id(r.headers_mut());
    r
}

/// The `read_only` middleware's answer to a write (fault `swift_read_only`).
fn read_only() -> Response {
    let mut r = (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
        "Writes are disabled for this account.",
    )
        .into_response();
    trans_id(r.headers_mut());
    r
}

fn trans_id(h: &mut HeaderMap) {
    let id = format!("tx{}-{:010x}", &uuid::Uuid::new_v4().simple().to_string()[..21], Utc::now().timestamp());
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert(HeaderName::from_static("x-trans-id"), v.clone());
        h.insert(HeaderName::from_static("x-openstack-request-id"), v);
    }
}

fn timestamp(t: DateTime<Utc>) -> String {
    format!("{}.{:05}", t.timestamp(), t.timestamp_subsec_micros() / 10)
}

fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn set(h: &mut HeaderMap, name: &str, value: impl AsRef<str>) {
    if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value.as_ref())) {
        h.insert(n, v);
    }
}

fn empty(status: StatusCode) -> Response {
    let mut r = (status, [(header::CONTENT_TYPE, "text/html; charset=UTF-8")], "").into_response();
    trans_id(r.headers_mut());
    r
}

/// Keystone token → may it act on `account` (`AUTH_<project id>`)?
async fn authorize(state: &AppState, headers: &HeaderMap, account: &str, write: bool) -> Result<(), Response> {
    let token =
        headers.get("x-auth-token").and_then(|v| v.to_str().ok()).ok_or_else(|| error(StatusCode::UNAUTHORIZED))?;
    let info =
        crate::auth::validate(state, Service::Identity, token).await.map_err(|_| error(StatusCode::UNAUTHORIZED))?;
    if write && state.site.read().unwrap().faults.swift_read_only {
        return Err(read_only());
    }
    let Some(project) = account.strip_prefix("AUTH_") else {
        return Err(error(StatusCode::FORBIDDEN));
    };
    let own = info.project_id() == Some(project);
    // keystoneauth middleware: operator roles write, the reader role reads.
    let allowed = info.is_admin() || (own && (info.has_role("member") || (!write && info.has_role("reader"))));
    if allowed { Ok(()) } else { Err(error(StatusCode::FORBIDDEN)) }
}

fn is_json(q: &Option<String>) -> bool {
    q.as_deref().is_some_and(|q| q.split('&').any(|kv| kv == "format=json"))
}

fn listing(names: Vec<(String, serde_json::Value)>, json_format: bool, mut headers: HeaderMap) -> Response {
    if json_format {
        let items: Vec<serde_json::Value> = names.into_iter().map(|(_, v)| v).collect();
        let body = serde_json::to_string(&items).unwrap_or_else(|_| "[]".into());
        set(&mut headers, "content-type", "application/json; charset=utf-8");
        trans_id(&mut headers);
        return (StatusCode::OK, headers, body).into_response();
    }
    trans_id(&mut headers);
    if names.is_empty() {
        return (StatusCode::NO_CONTENT, headers).into_response();
    }
    let body: String = names.into_iter().map(|(n, _)| n + "\n").collect();
    set(&mut headers, "content-type", "text/plain; charset=utf-8");
    (StatusCode::OK, headers, body).into_response()
}

async fn account(
    State(state): St,
    Extension(db): Db,
    method: Method,
    headers: HeaderMap,
    Path(account): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let write = !matches!(method, Method::GET | Method::HEAD);
    if let Err(r) = authorize(&state, &headers, &account, write).await {
        return r;
    }
    let accounts = db.accounts.lock().unwrap();
    let containers = accounts.get(&account).cloned().unwrap_or_default();
    drop(accounts);
    let objects: usize = containers.values().map(|c| c.objects.len()).sum();
    let bytes: usize = containers.values().flat_map(|c| c.objects.values()).map(|o| o.data.len()).sum();
    let mut h = HeaderMap::new();
    set(&mut h, "x-account-container-count", containers.len().to_string());
    set(&mut h, "x-account-object-count", objects.to_string());
    set(&mut h, "x-account-bytes-used", bytes.to_string());
    set(&mut h, "x-timestamp", timestamp(Utc::now()));
    match method {
        Method::HEAD => {
            trans_id(&mut h);
            (StatusCode::NO_CONTENT, h).into_response()
        }
        Method::GET => {
            let names = containers
                .iter()
                .map(|(name, c)| {
                    let bytes: usize = c.objects.values().map(|o| o.data.len()).sum();
                    (
                        name.clone(),
                        json!({"name": name, "count": c.objects.len(), "bytes": bytes,
                        "last_modified": c.created.map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string())}),
                    )
                })
                .collect();
            listing(names, is_json(&q), h)
        }
        _ => error(StatusCode::METHOD_NOT_ALLOWED),
    }
}

async fn container(
    State(state): St,
    Extension(db): Db,
    method: Method,
    headers: HeaderMap,
    Path((account, container)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let write = !matches!(method, Method::GET | Method::HEAD);
    if let Err(r) = authorize(&state, &headers, &account, write).await {
        return r;
    }
    if container.is_empty() || container.len() > 256 || container.contains('/') {
        return error(StatusCode::BAD_REQUEST);
    }
    let mut accounts = db.accounts.lock().unwrap();
    let containers = accounts.entry(account).or_default();
    match method {
        Method::PUT => {
            if containers.contains_key(&container) {
                return empty(StatusCode::ACCEPTED);
            }
            containers.insert(container, Container { created: Some(Utc::now()), objects: BTreeMap::new() });
            empty(StatusCode::CREATED)
        }
        Method::DELETE => match containers.get(&container) {
            None => error(StatusCode::NOT_FOUND),
            Some(c) if !c.objects.is_empty() => error(StatusCode::CONFLICT),
            Some(_) => {
                containers.remove(&container);
                empty(StatusCode::NO_CONTENT)
            }
        },
        Method::GET | Method::HEAD => {
            let Some(c) = containers.get(&container) else { return error(StatusCode::NOT_FOUND) };
            let mut h = HeaderMap::new();
            set(&mut h, "x-container-object-count", c.objects.len().to_string());
            let bytes: usize = c.objects.values().map(|o| o.data.len()).sum();
            set(&mut h, "x-container-bytes-used", bytes.to_string());
            if let Some(t) = c.created {
                set(&mut h, "x-timestamp", timestamp(t));
            }
            if method == Method::HEAD {
                trans_id(&mut h);
                return (StatusCode::NO_CONTENT, h).into_response();
            }
            let names = c
                .objects
                .iter()
                .map(|(name, o)| {
                    (
                        name.clone(),
                        json!({"name": name, "hash": o.etag, "bytes": o.data.len(),
                        "content_type": o.content_type,
                        "last_modified": o.modified.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()}),
                    )
                })
                .collect();
            listing(names, is_json(&q), h)
        }
        _ => error(StatusCode::METHOD_NOT_ALLOWED),
    }
}

fn object_headers(o: &Object) -> HeaderMap {
    let mut h = HeaderMap::new();
    set(&mut h, "content-type", &o.content_type);
    set(&mut h, "etag", &o.etag);
    set(&mut h, "last-modified", http_date(o.modified));
    set(&mut h, "x-timestamp", timestamp(o.modified));
    set(&mut h, "accept-ranges", "bytes");
    for (k, v) in &o.meta {
        set(&mut h, &format!("x-object-meta-{k}"), v);
    }
    trans_id(&mut h);
    h
}

async fn object(
    State(state): St,
    Extension(db): Db,
    method: Method,
    headers: HeaderMap,
    Path((account, container, object)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let write = !matches!(method, Method::GET | Method::HEAD);
    if let Err(r) = authorize(&state, &headers, &account, write).await {
        return r;
    }
    if object.len() > 1024 {
        return error(StatusCode::BAD_REQUEST);
    }
    let mut accounts = db.accounts.lock().unwrap();
    let Some(c) = accounts.get_mut(&account).and_then(|a| a.get_mut(&container)) else {
        return error(StatusCode::NOT_FOUND);
    };
    match method {
        Method::PUT => {
            let etag = hex::encode(Md5::digest(&body));
            if let Some(want) = headers.get("etag").and_then(|v| v.to_str().ok())
                && want.trim_matches('"').to_ascii_lowercase() != etag
            {
                return error(StatusCode::UNPROCESSABLE_ENTITY);
            }
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/octet-stream")
                .to_string();
            let meta = headers
                .iter()
                .filter_map(|(k, v)| {
                    let key = k.as_str().strip_prefix("x-object-meta-")?;
                    Some((key.to_string(), v.to_str().ok()?.to_string()))
                })
                .collect();
            let o = Object { data: body, etag: etag.clone(), content_type, modified: Utc::now(), meta };
            let mut h = HeaderMap::new();
            set(&mut h, "etag", &etag);
            set(&mut h, "last-modified", http_date(o.modified));
            set(&mut h, "content-type", "text/html; charset=UTF-8");
            trans_id(&mut h);
            c.objects.insert(object, o);
            (StatusCode::CREATED, h).into_response()
        }
        Method::GET | Method::HEAD => {
            let Some(o) = c.objects.get(&object) else { return error(StatusCode::NOT_FOUND) };
            let mut h = object_headers(o);
            if method == Method::HEAD {
                set(&mut h, "content-length", o.data.len().to_string());
                return (StatusCode::OK, h).into_response();
            }
            (StatusCode::OK, h, o.data.clone()).into_response()
        }
        Method::DELETE => match c.objects.remove(&object) {
            Some(_) => empty(StatusCode::NO_CONTENT),
            None => error(StatusCode::NOT_FOUND),
        },
        _ => error(StatusCode::METHOD_NOT_ALLOWED),
    }
}
