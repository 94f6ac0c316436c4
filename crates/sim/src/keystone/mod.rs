//! The simulated Keystone v3 API (mounted at `/identity`): version discovery,
//! tokens and catalog, projects/users/roles/grants/domains, application
//! credentials and OS-FEDERATION, with policies close to Keystone 30 defaults.
//!
//! Submodules: `tokens` (auth, catalog, services/endpoints), `resources`
//! (projects, users, roles, assignments, domains, app credentials),
//! `federation` (identity providers, mappings, protocols).

mod federation;
pub(crate) mod oidc;
mod resources;
mod tokens;

pub(crate) use oidc::access_token_subject;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use md5::{Digest, Md5};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::model::{Domain, Project, Role, Site, User};
use crate::state::{AppState, Service, TokenInfo, TokenScope};

pub(crate) type St = State<Arc<AppState>>;
pub(crate) type Query = axum::extract::Query<HashMap<String, String>>;

/// Routes of this service, mounted under `Service::Identity.prefix()`.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(versions))
        .route("/v3", get(version_v3))
        .route("/v3/", get(version_v3))
        .merge(tokens::routes())
        .merge(resources::routes())
        .merge(federation::routes())
        .merge(oidc::routes())
        .fallback(fallback)
}

fn v3_doc(state: &AppState) -> Value {
    json!({
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{}/identity/v3/", state.base_url)}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
    })
}

/// `GET /identity` (and `/identity/`, which lib.rs must route: axum's nest
/// does not): 300 with the v3 version document.
pub(crate) async fn versions(State(state): St) -> Response {
    let mut resp =
        (StatusCode::MULTIPLE_CHOICES, axum::Json(json!({"versions": {"values": [v3_doc(&state)]}}))).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{}/identity/v3/", state.base_url)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

async fn version_v3(State(state): St) -> Response {
    axum::Json(json!({"version": v3_doc(&state)})).into_response()
}

async fn fallback() -> ApiError {
    err(StatusCode::NOT_FOUND, "The resource could not be found.")
}

// ---------- errors ----------

pub(crate) fn err(status: StatusCode, msg: impl Into<String>) -> ApiError {
    ApiError::new(Service::Identity, status, msg)
}
pub(crate) fn bad_request(msg: impl Into<String>) -> ApiError {
    err(StatusCode::BAD_REQUEST, msg)
}
pub(crate) fn not_found(kind: &str, id: &str) -> ApiError {
    err(StatusCode::NOT_FOUND, format!("Could not find {kind}: {id}."))
}
pub(crate) fn conflict(msg: impl Into<String>) -> ApiError {
    err(StatusCode::CONFLICT, format!("Conflict occurred attempting to store {}", msg.into()))
}
pub(crate) fn unauthorized() -> ApiError {
    ApiError::unauthorized(Service::Identity)
}
/// Keystone's 403 naming the policy rule, e.g. `identity:list_users`.
pub(crate) fn forbidden(rule: &str) -> ApiError {
    err(StatusCode::FORBIDDEN, format!("You are not authorized to perform the requested action: identity:{rule}."))
}
/// Ok when `allowed`, else the 403 of `rule`.
pub(crate) fn enforce(allowed: bool, rule: &str) -> ApiResult<()> {
    if allowed { Ok(()) } else { Err(forbidden(rule)) }
}

// ---------- request helpers ----------

pub(crate) async fn auth(state: &AppState, headers: &HeaderMap) -> ApiResult<TokenInfo> {
    crate::auth::authenticate(state, Service::Identity, headers).await
}

/// Parses a JSON request body (Keystone's 400 when it is not JSON).
pub(crate) fn parse_body(body: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(body).map_err(|_| {
        bad_request(
            "Expecting to find valid JSON in request body. The server could not comply with the \
             request since it is either malformed or otherwise incorrect. The client is assumed \
             to be in error.",
        )
    })
}

/// The object under `key` in a request body (400 naming it when missing).
pub(crate) fn member<'a>(body: &'a Value, key: &str) -> ApiResult<&'a serde_json::Map<String, Value>> {
    body.get(key).and_then(Value::as_object).ok_or_else(|| bad_request(format!("'{key}' is a required property")))
}

/// An optional string field (400 naming it when of another type).
pub(crate) fn opt_str(obj: &serde_json::Map<String, Value>, entity: &str, key: &str) -> ApiResult<Option<String>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(bad_request(format!(
            "Invalid input for field/attribute {entity}. Value: {v}. '{key}' must be a string"
        ))),
    }
}

pub(crate) fn opt_bool(obj: &serde_json::Map<String, Value>, entity: &str, key: &str) -> ApiResult<Option<bool>> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(bad_request(format!(
            "Invalid input for field/attribute {entity}. Value: {v}. '{key}' must be a boolean"
        ))),
    }
}

/// Keystone's boolean query values: 0/false/f/no/n/off are false.
pub(crate) fn parse_bool(v: &str) -> bool {
    !matches!(v.to_ascii_lowercase().as_str(), "0" | "false" | "f" | "no" | "n" | "off")
}

/// `query_filter_is_true`: present and not `0`/`false`.
pub(crate) fn flag(q: &HashMap<String, String>, key: &str) -> bool {
    q.get(key).is_some_and(|v| parse_bool(v))
}

pub(crate) fn v3_url(state: &AppState, path: &str) -> String {
    format!("{}/identity/v3{path}", state.base_url)
}

/// `links` of a collection: self is the request URL.
pub(crate) fn list_links(state: &AppState, uri: &OriginalUri) -> Value {
    let pq = uri.0.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    json!({"next": null, "self": format!("{}{pq}", state.base_url), "previous": null})
}

pub(crate) fn created(v: Value) -> Response {
    (StatusCode::CREATED, axum::Json(v)).into_response()
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A stable 32-hex id derived from a name (catalog entries, missing roles).
pub(crate) fn stable_id(name: &str) -> String {
    hex::encode(Md5::digest(name.as_bytes()))
}

/// Keystone's token time format: microseconds always zero.
pub(crate) fn token_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S.000000Z").to_string()
}

// ---------- policy helpers ----------

/// `role:reader and system_scope:all`
pub(crate) fn system_reader(t: &TokenInfo) -> bool {
    t.is_system() && t.has_role("reader")
}

/// Domain id of a domain-scoped token.
pub(crate) fn token_domain(t: &TokenInfo) -> Option<&str> {
    match &t.scope {
        TokenScope::Domain { id, .. } => Some(id),
        _ => None,
    }
}

/// `role:reader and domain_id:<domain>` (domain-scoped token).
pub(crate) fn domain_reader(t: &TokenInfo, domain: &str) -> bool {
    t.has_role("reader") && token_domain(t) == Some(domain)
}

/// `admin_required or system reader or domain reader of <domain>`; with
/// `domain = None` any domain reader passes (lists are then filtered).
pub(crate) fn admin_or_reader(t: &TokenInfo, domain: Option<&str>) -> bool {
    t.is_admin()
        || system_reader(t)
        || match domain {
            Some(d) => domain_reader(t, d),
            None => t.has_role("reader") && token_domain(t).is_some(),
        }
}

/// Domain a domain-scoped non-admin reader's lists are limited to.
pub(crate) fn list_domain_limit(t: &TokenInfo) -> Option<String> {
    if t.is_admin() || system_reader(t) { None } else { token_domain(t).map(String::from) }
}

// ---------- roles ----------

/// Keystone 30 bootstrap's implied roles: admin ⇒ manager ⇒ member ⇒ reader
/// (manager only when the site defines it).
const IMPLIED: [(&str, &str); 4] =
    [("admin", "manager"), ("admin", "member"), ("manager", "member"), ("member", "reader")];

/// Roles `name` implies directly.
pub(crate) fn implied_by(site: &Site, name: &str) -> Vec<(String, String)> {
    IMPLIED.iter().filter(|(p, _)| *p == name).filter_map(|(_, c)| role_ref(site, c)).collect()
}

/// (id, name) of a role name: the site's role, or a stable id for the
/// built-in admin/member/reader when the site lacks them.
pub(crate) fn role_ref(site: &Site, name: &str) -> Option<(String, String)> {
    match site.role_by_name(name) {
        Some(r) => Some((r.id.clone(), r.name.clone())),
        None if matches!(name, "admin" | "member" | "reader") => {
            Some((stable_id(&format!("role:{name}")), name.to_string()))
        }
        None => None,
    }
}

/// Direct role ids plus everything they imply, as (id, name), no duplicates.
pub(crate) fn expand_roles(site: &Site, direct: &[String]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut queue: Vec<(String, String)> =
        direct.iter().filter_map(|id| site.role(id).map(|r| (r.id.clone(), r.name.clone()))).collect();
    while let Some(r) = (!queue.is_empty()).then(|| queue.remove(0)) {
        if out.iter().any(|o| o.0 == r.0) {
            continue;
        }
        queue.extend(implied_by(site, &r.1));
        out.push(r);
    }
    out
}

// ---------- renders ----------

pub(crate) fn project_json(state: &AppState, p: &Project) -> Value {
    let mut v = json!({
        "id": p.id,
        "name": p.name,
        "domain_id": p.domain_id,
        "description": p.description,
        "enabled": p.enabled,
        "parent_id": p.domain_id,
        "is_domain": false,
        "tags": p.tags,
        "options": {},
        "links": {"self": v3_url(state, &format!("/projects/{}", p.id))},
    });
    let obj = v.as_object_mut().expect("object");
    for (k, val) in &p.extra {
        obj.entry(k.clone()).or_insert_with(|| val.clone());
    }
    v
}

pub(crate) fn user_json(state: &AppState, u: &User) -> Value {
    let mut v = json!({
        "id": u.id,
        "name": u.name,
        "domain_id": u.domain_id,
        "enabled": u.enabled,
        "password_expires_at": null,
        "options": {},
        "links": {"self": v3_url(state, &format!("/users/{}", u.id))},
    });
    if let Some(e) = &u.email {
        v["email"] = json!(e);
    }
    v
}

pub(crate) fn role_json(state: &AppState, r: &Role) -> Value {
    json!({
        "id": r.id,
        "name": r.name,
        "domain_id": null,
        "description": null,
        "options": {},
        "links": {"self": v3_url(state, &format!("/roles/{}", r.id))},
    })
}

pub(crate) fn domain_json(state: &AppState, site: &Site, d: &Domain) -> Value {
    // The model keeps no description: the default domain's and the one
    // Keystone writes for domains it creates for identity providers.
    let description = if d.id == "default" {
        "The default domain".to_string()
    } else if let Some(idp) = site.identity_providers.iter().find(|i| i["domain_id"] == json!(d.id)) {
        format!("Auto generated federated domain for Identity Provider: {}", idp["id"].as_str().unwrap_or(""))
    } else {
        String::new()
    };
    json!({
        "id": d.id,
        "name": d.name,
        "description": description,
        "enabled": d.enabled,
        "tags": [],
        "options": {},
        "links": {"self": v3_url(state, &format!("/domains/{}", d.id))},
    })
}

/// `{"id", "name"}` of a domain (by id), for token and name-included bodies.
pub(crate) fn domain_ref(site: &Site, id: &str) -> Value {
    let name = site.domains.iter().find(|d| d.id == id).map(|d| d.name.as_str()).unwrap_or(id);
    json!({"id": id, "name": name})
}
