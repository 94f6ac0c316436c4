//! Glance v2 image members: list, add, show, accept/reject, remove. Only
//! shared images have members; the owner adds them, the member project
//! alone sets its status.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use super::{Ctx, denied, err, fmt_time, json_body};
use crate::error::{ApiError, ApiResult};
use crate::model::{Image, Site};
use crate::state::AppState;

fn member_json(site: &Site, img: &Image, member: &str, status: &str) -> Value {
    let (c, u) = site
        .image_extras
        .get(&img.id)
        .and_then(|x| x.member_times.get(member).copied())
        .unwrap_or((img.created_at, img.created_at));
    json!({
        "member_id": member,
        "image_id": img.id,
        "status": status,
        "created_at": fmt_time(c),
        "updated_at": fmt_time(u),
        "schema": "/v2/schemas/member",
    })
}

/// `_lookup_image`: 404 for missing and invisible images alike.
fn lookup<'a>(site: &'a Site, ctx: &Ctx, id: &str) -> ApiResult<(usize, &'a Image)> {
    site.images
        .iter()
        .enumerate()
        .find(|(_, i)| i.id == id && ctx.can_see(i))
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("Image {id} not found.")))
}

fn member_missing(img: &Image, member: &str) -> ApiError {
    err(StatusCode::NOT_FOUND, format!("{member} not found in the member list of the image {}.", img.id))
}

/// `get_member(s)` policy: admin, a reader of the owner, or the member itself.
fn may_read(ctx: &Ctx, img: &Image, member: &str) -> bool {
    ctx.is_admin() || (ctx.reader() && (ctx.owner() == Some(img.owner.as_str()) || ctx.owner() == Some(member)))
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let ctx = Ctx::new(&state, &headers).await?;
    let site = state.site.read().unwrap();
    let (_, img) = lookup(&site, &ctx, &id)?;
    if img.visibility != "shared" {
        return Err(err(
            StatusCode::FORBIDDEN,
            format!("Not allowed to list members for image {id}: Only shared images have members."),
        ));
    }
    let members: Vec<Value> = img
        .members
        .iter()
        .filter(|(m, _)| may_read(&ctx, img, m))
        .map(|(m, s)| member_json(&site, img, m, s))
        .collect();
    Ok(axum::Json(json!({"members": members, "schema": "/v2/schemas/members"})).into_response())
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let ctx = Ctx::new(&state, &headers).await?;
    let body = json_body(&body)?;
    let member = match &body {
        Value::Object(o) => match o.get("member") {
            None => {
                return Err(err(StatusCode::BAD_REQUEST, "Member to be added not specified"));
            }
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::String(_)) | Some(Value::Null) => {
                return Err(err(StatusCode::BAD_REQUEST, "Member can't be empty"));
            }
            Some(other) => other.to_string(),
        },
        _ => {
            return Err(err(StatusCode::BAD_REQUEST, "Expected a member in the form: {\"member\": \"image_id\"}"));
        }
    };
    let now = state.now();
    let mut site = state.site.write().unwrap();
    let (idx, img) = lookup(&site, &ctx, &id)?;
    if img.visibility != "shared" {
        return Err(err(StatusCode::FORBIDDEN, format!("Not allowed to create members for image {id}.")));
    }
    if !ctx.owns(img) {
        return Err(denied("add_member"));
    }
    if img.members.iter().any(|(m, _)| *m == member) {
        return Err(err(StatusCode::CONFLICT, format!("Member {member} is duplicated for image {id}")));
    }
    site.images[idx].members.push((member.clone(), "pending".into()));
    site.image_extras.entry(id.clone()).or_default().member_times.insert(member.clone(), (now, now));
    let img = &site.images[idx];
    Ok(axum::Json(member_json(&site, img, &member, "pending")).into_response())
}

pub async fn show(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((id, member)): Path<(String, String)>,
) -> ApiResult<Response> {
    let ctx = Ctx::new(&state, &headers).await?;
    let site = state.site.read().unwrap();
    let (_, img) = lookup(&site, &ctx, &id)?;
    if img.visibility != "shared" {
        return Err(err(StatusCode::NOT_FOUND, "Only shared images have members."));
    }
    if !may_read(&ctx, img, &member) {
        return Err(err(
            StatusCode::NOT_FOUND,
            format!("You are not authorized to lookup the members of the image {id}."),
        ));
    }
    let (_, status) = img.members.iter().find(|(m, _)| *m == member).ok_or_else(|| member_missing(img, &member))?;
    Ok(axum::Json(member_json(&site, img, &member, status)).into_response())
}

pub async fn update(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((id, member)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let ctx = Ctx::new(&state, &headers).await?;
    let body = json_body(&body)?;
    let status = match &body {
        Value::Object(o) => match o.get("status") {
            None => return Err(err(StatusCode::BAD_REQUEST, "Status not specified")),
            Some(v) => v.as_str().map(String::from).unwrap_or_else(|| v.to_string()),
        },
        _ => {
            return Err(err(StatusCode::BAD_REQUEST, "Expected a status in the form: {\"status\": \"status\"}"));
        }
    };
    let now = state.now();
    let mut site = state.site.write().unwrap();
    let (idx, img) = lookup(&site, &ctx, &id)?;
    if img.visibility != "shared" {
        return Err(err(StatusCode::FORBIDDEN, format!("Not allowed to update members for image {id}.")));
    }
    let pos = img.members.iter().position(|(m, _)| *m == member).ok_or_else(|| member_missing(img, &member))?;
    if !(ctx.is_admin() || (ctx.member() && ctx.owner() == Some(member.as_str()))) {
        return Err(denied("modify_member"));
    }
    if !["pending", "accepted", "rejected"].contains(&status.as_str()) {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "Incorrect request: Status must be \"pending\", \"accepted\" or \"rejected\".",
        ));
    }
    let created = img.created_at;
    site.images[idx].members[pos].1 = status.clone();
    let times = site.image_extras.entry(id).or_default().member_times.entry(member.clone()).or_insert((created, now));
    times.1 = now;
    let img = &site.images[idx];
    Ok(axum::Json(member_json(&site, img, &member, &status)).into_response())
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((id, member)): Path<(String, String)>,
) -> ApiResult<Response> {
    let ctx = Ctx::new(&state, &headers).await?;
    let mut site = state.site.write().unwrap();
    let (idx, img) = lookup(&site, &ctx, &id)?;
    if img.visibility != "shared" {
        return Err(err(StatusCode::FORBIDDEN, format!("Not allowed to delete members for image {id}.")));
    }
    let pos = img.members.iter().position(|(m, _)| *m == member).ok_or_else(|| member_missing(img, &member))?;
    if !ctx.owns(img) {
        return Err(denied("delete_member"));
    }
    site.images[idx].members.remove(pos);
    if let Some(x) = site.image_extras.get_mut(&id) {
        x.member_times.remove(&member);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
