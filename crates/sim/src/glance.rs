//! The simulated Glance v2 image API (mounted at `/image`), as Glance 33
//! answers with the file store: versions, images (list/show/create/PATCH/
//! delete/upload/download/actions/tags), members, schemas and `/v2/info/*`.
//!
//! The four schemas under `glance/schemas/*.json` were captured verbatim from
//! a real Glance 33.0.0 (`enabled_backends = fs:file`). `os_hidden`,
//! `virtual_size` and member times live in `Site::image_extras`. Active images
//! without uploaded data (scenario images) download as a deterministic
//! pattern of `size` bytes: byte `i` is `i % 251` ([`pattern_byte`]).

mod images;
mod members;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::auth;
use crate::error::{ApiError, ApiResult};
use crate::model::{Image, ImageExtra, Site};
use crate::state::{AppState, Service, TokenInfo};

const S: Service = Service::Image;

/// Routes of this service, mounted under `Service::Image.prefix()`.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(versions_root))
        .route("/versions", get(versions_explicit))
        .route("/v2", get(v2_redirect))
        .route("/v2/schemas/{name}", get(schema))
        .route("/v2/info/import", get(info_import))
        .route("/v2/info/stores", get(info_stores))
        .route("/v2/images", get(images::list).post(images::create))
        .route("/v2/images/{id}", get(images::show).patch(images::update).delete(images::delete))
        .route("/v2/images/{id}/file", get(images::download).put(images::upload).layer(DefaultBodyLimit::disable()))
        .route("/v2/images/{id}/actions/{action}", post(images::action))
        .route("/v2/images/{id}/tags/{tag}", put(images::tag_add).delete(images::tag_delete))
        .route("/v2/images/{id}/members", get(members::list).post(members::create))
        .route("/v2/images/{id}/members/{member}", get(members::show).put(members::update).delete(members::delete))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::map_response(request_id))
}

/// Glance stamps every answer with `x-openstack-request-id: req-<uuid>`.
async fn request_id(mut resp: Response) -> Response {
    if let Ok(v) = format!("req-{}", uuid::Uuid::new_v4()).parse() {
        resp.headers_mut().insert("x-openstack-request-id", v);
    }
    resp
}

async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    err(StatusCode::METHOD_NOT_ALLOWED, format!("The method {method} is not allowed for this resource. "))
}

/// Byte `i` of the data served for an image without uploaded data.
pub fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8
}

/// Unknown paths get Glance's 404. (`/image/` with the slash never gets
/// here: axum's `nest` sends it to the outer router.)
async fn not_found() -> ApiError {
    err(StatusCode::NOT_FOUND, "The resource could not be found.")
}

pub(crate) fn err(status: StatusCode, msg: impl Into<String>) -> ApiError {
    ApiError::new(S, status, msg)
}

/// A policy refusal, worded as Glance's policy layer words it.
pub(crate) fn denied(action: &str) -> ApiError {
    err(StatusCode::FORBIDDEN, format!("You are not authorized to complete {action} action."))
}

fn versions_body(state: &AppState) -> Value {
    let href = format!("{}{}/v2/", state.base_url, S.prefix());
    let v = |id: &str, status: &str| json!({"id": id, "status": status, "links": [{"rel": "self", "href": href}]});
    let mut list: Vec<Value> =
        ["v2.15", "v2.13", "v2.12", "v2.11", "v2.10", "v2.9", "v2.8"].iter().map(|id| v(id, "SUPPORTED")).collect();
    list.push(v("v2.17", "CURRENT"));
    list.extend(["v2.7", "v2.6", "v2.5", "v2.4", "v2.3", "v2.2", "v2.1", "v2.0"].iter().map(|id| v(id, "SUPPORTED")));
    json!({"versions": list})
}

/// `GET /image` → 300. lib.rs may also route `/image/` here (axum's `nest`
/// does not send the trailing-slash form to this router).
pub(crate) async fn versions_root(State(state): State<Arc<AppState>>) -> Response {
    (StatusCode::MULTIPLE_CHOICES, axum::Json(versions_body(&state))).into_response()
}

async fn versions_explicit(State(state): State<Arc<AppState>>) -> Response {
    axum::Json(versions_body(&state)).into_response()
}

async fn v2_redirect(State(state): State<Arc<AppState>>, headers: HeaderMap) -> ApiResult<Response> {
    auth::authenticate(&state, S, &headers).await?;
    let loc = format!("{}{}/v2/", state.base_url, S.prefix());
    Ok((StatusCode::FOUND, [(header::LOCATION, loc)], "").into_response())
}

const SCHEMA_IMAGE: &str = include_str!("glance/schemas/image.json");
const SCHEMA_IMAGES: &str = include_str!("glance/schemas/images.json");
const SCHEMA_MEMBER: &str = include_str!("glance/schemas/member.json");
const SCHEMA_MEMBERS: &str = include_str!("glance/schemas/members.json");

async fn schema(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> ApiResult<Response> {
    auth::authenticate(&state, S, &headers).await?;
    let body = match name.as_str() {
        "image" => SCHEMA_IMAGE,
        "images" => SCHEMA_IMAGES,
        "member" => SCHEMA_MEMBER,
        "members" => SCHEMA_MEMBERS,
        _ => {
            return Err(err(StatusCode::NOT_FOUND, "The resource could not be found."));
        }
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn info_import(State(state): State<Arc<AppState>>, headers: HeaderMap) -> ApiResult<Response> {
    auth::authenticate(&state, S, &headers).await?;
    Ok(axum::Json(json!({"import-methods": {
        "description": "Import methods available.",
        "type": "array",
        "value": ["glance-direct", "web-download", "copy-image"]
    }}))
    .into_response())
}

async fn info_stores(State(state): State<Arc<AppState>>, headers: HeaderMap) -> ApiResult<Response> {
    auth::authenticate(&state, S, &headers).await?;
    Ok(axum::Json(json!({"stores": [{"id": "fs", "default": "true"}]})).into_response())
}

/// Who is asking, as Glance's request context sees it.
pub(crate) struct Ctx {
    pub token: TokenInfo,
}

impl Ctx {
    pub async fn new(state: &AppState, headers: &HeaderMap) -> ApiResult<Ctx> {
        Ok(Ctx { token: auth::authenticate(state, S, headers).await? })
    }
    pub fn is_admin(&self) -> bool {
        self.token.is_admin()
    }
    /// The project the token is scoped to (Glance's `context.owner`).
    pub fn owner(&self) -> Option<&str> {
        self.token.project_id()
    }
    pub fn reader(&self) -> bool {
        self.is_admin() || self.token.has_role("reader") || self.token.has_role("member")
    }
    pub fn member(&self) -> bool {
        self.is_admin() || self.token.has_role("member")
    }
    /// admin, or a member of the image's owning project (`ADMIN_OR_PROJECT_MEMBER`).
    pub fn owns(&self, img: &Image) -> bool {
        self.is_admin() || (self.token.has_role("member") && self.owner() == Some(img.owner.as_str()))
    }
    /// Glance's `is_image_visible`: admin, public/community, owner, or any
    /// member of a shared image (whatever the member status).
    pub fn can_see(&self, img: &Image) -> bool {
        if self.is_admin() || img.visibility == "public" || img.visibility == "community" {
            return true;
        }
        match self.owner() {
            Some(o) if o == img.owner => true,
            Some(o) => img.visibility == "shared" && img.members.iter().any(|(m, _)| m == o),
            None => false,
        }
    }
}

/// `2023-05-01T00:00:00Z`
pub(crate) fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The stored extras of an image, or defaults.
pub(crate) fn extra_of(site: &Site, id: &str) -> ImageExtra {
    site.image_extras.get(id).cloned().unwrap_or_default()
}

/// Whether the image has data in the store (so `stores` is shown).
fn has_location(img: &Image) -> bool {
    img.data.is_some() || (img.size.is_some() && matches!(img.status.as_str(), "active" | "deactivated"))
}

/// An image as Glance's ResponseSerializer renders it: extra properties flat,
/// then the base attributes.
pub(crate) fn image_json(img: &Image, extra: &ImageExtra) -> Value {
    let mut m = Map::new();
    for (k, v) in &img.properties {
        if k != "os_glance_stage_host" && k != "os_glance_hash_op_host" {
            m.insert(k.clone(), v.clone());
        }
    }
    let base = json!({
        "name": if extra.name_is_null { Value::Null } else { json!(img.name) },
        "disk_format": img.disk_format,
        "container_format": img.container_format,
        "visibility": img.visibility,
        "size": img.size,
        "virtual_size": extra.virtual_size,
        "status": img.status,
        "checksum": img.checksum,
        "protected": img.protected,
        "min_ram": img.min_ram,
        "min_disk": img.min_disk,
        "owner": img.owner,
        "os_hidden": extra.os_hidden,
        "os_hash_algo": img.os_hash_algo,
        "os_hash_value": img.os_hash_value,
        "id": img.id,
        "created_at": fmt_time(img.created_at),
        "updated_at": fmt_time(img.updated_at),
        "tags": sorted_tags(img),
        "self": format!("/v2/images/{}", img.id),
        "file": format!("/v2/images/{}/file", img.id),
        "schema": "/v2/schemas/image",
    });
    if let Value::Object(b) = base {
        m.extend(b);
    }
    if has_location(img) {
        m.insert("stores".into(), json!("fs"));
    }
    Value::Object(m)
}

fn sorted_tags(img: &Image) -> Vec<String> {
    let mut t = img.tags.clone();
    t.sort();
    t.dedup();
    t
}

/// Parses a JSON request body as Glance's JSONRequestDeserializer does.
pub(crate) fn json_body(body: &[u8]) -> ApiResult<Value> {
    if body.is_empty() {
        return Err(err(StatusCode::BAD_REQUEST, "Body expected in request."));
    }
    serde_json::from_slice(body).map_err(|_| err(StatusCode::BAD_REQUEST, "Malformed JSON in request body."))
}

/// Python's repr of a JSON value, as jsonschema messages print it.
pub(crate) fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("'{s}'"),
        Value::Array(a) => format!("[{}]", a.iter().map(py_repr).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => {
            format!("{{{}}}", o.iter().map(|(k, v)| format!("'{k}': {}", py_repr(v))).collect::<Vec<_>>().join(", "))
        }
    }
}
