//! Nova flavors: list/detail (is_public, minRam, minDisk, sort, paging),
//! show, extra specs and flavor access, rendered per microversion.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{Ctx, Query, bad_request, base, err, policy};
use crate::error::{ApiError, ApiResult};
use crate::model::Flavor;
use crate::state::AppState;

fn links(base: &str, id: &str) -> Value {
    json!([
        {"rel": "self", "href": format!("{base}/v2.1/flavors/{id}")},
        {"rel": "bookmark", "href": format!("{base}/flavors/{id}")},
    ])
}

/// A flavor as `GET /flavors/{id}` and `/flavors/detail` show it.
pub fn render(f: &Flavor, base: &str, mv: u32) -> Value {
    let mut v = json!({
        "id": f.id,
        "name": f.name,
        "ram": f.ram,
        "disk": f.disk,
        "vcpus": f.vcpus,
        "swap": if mv >= 75 || f.swap != 0 { json!(f.swap) } else { json!("") },
        "OS-FLV-EXT-DATA:ephemeral": f.ephemeral,
        "OS-FLV-DISABLED:disabled": false,
        "os-flavor-access:is_public": f.is_public,
        "rxtx_factor": 1.0,
        "links": links(base, &f.id),
    });
    if mv >= 55 {
        v["description"] = json!(f.description);
    }
    if mv >= 61 {
        v["extra_specs"] = json!(f.extra_specs);
    }
    v
}

fn not_found(id: &str) -> ApiError {
    err(StatusCode::NOT_FOUND, format!("Flavor {id} could not be found."))
}

/// Flavors the request may list, filtered, sorted and paged.
fn listed<'a>(flavors: &'a [Flavor], ctx: &Ctx, q: &Query) -> ApiResult<Vec<&'a Flavor>> {
    let project = ctx.token.project_id();
    // None = all; Some(b) = is_public == b (plus the project's own private ones when b).
    let is_public: Option<bool> = if ctx.is_admin() {
        match q.get("is_public") {
            None => Some(true),
            Some(v) if v.eq_ignore_ascii_case("none") => None,
            Some(v) => {
                Some(super::parse_bool(v).ok_or_else(|| bad_request(format!("Invalid is_public filter [{v}]")))?)
            }
        }
    } else {
        Some(true)
    };
    let int = |k: &str, what: &str| -> ApiResult<Option<u64>> {
        q.get(k)
            .map(|v| {
                v.trim()
                    .parse::<i64>()
                    .map(|n| n.max(0) as u64)
                    .map_err(|_| bad_request(format!("Invalid {what} filter [{v}]")))
            })
            .transpose()
    };
    let min_ram = int("minRam", "minRam")?;
    let min_disk = int("minDisk", "minDisk")?;
    let sort_key = q.get("sort_key").filter(|s| !s.is_empty()).unwrap_or("flavorid");
    let sort_dir = q.get("sort_dir").filter(|s| !s.is_empty()).unwrap_or("asc");
    let valid_keys = [
        "created_at",
        "description",
        "disabled",
        "ephemeral_gb",
        "flavorid",
        "id",
        "is_public",
        "memory_mb",
        "name",
        "root_gb",
        "rxtx_factor",
        "swap",
        "updated_at",
        "vcpu_weight",
        "vcpus",
    ];
    if !valid_keys.contains(&sort_key) {
        return Err(bad_request(format!(
            "Invalid input for query parameters sort_key. Value: {sort_key}. '{sort_key}' is not one of {valid_keys:?}"
        )));
    }
    if sort_dir != "asc" && sort_dir != "desc" {
        return Err(bad_request(format!(
            "Invalid input for query parameters sort_dir. Value: {sort_dir}. '{sort_dir}' is not one of ['asc', 'desc']"
        )));
    }
    let (limit, marker) = q.limit_marker()?;
    let mut out: Vec<(usize, &Flavor)> = flavors
        .iter()
        .enumerate()
        .filter(|(_, f)| match is_public {
            None => true,
            Some(true) => f.is_public || project.is_some_and(|p| f.access.iter().any(|a| a == p)),
            Some(false) => !f.is_public,
        })
        .filter(|(_, f)| min_ram.is_none_or(|m| f.ram >= m) && min_disk.is_none_or(|m| f.disk >= m))
        .collect();
    let cmp = |a: &(usize, &Flavor), b: &(usize, &Flavor)| {
        let (x, y) = (a.1, b.1);
        let o = match sort_key {
            "name" => x.name.cmp(&y.name),
            "memory_mb" => x.ram.cmp(&y.ram),
            "root_gb" => x.disk.cmp(&y.disk),
            "ephemeral_gb" => x.ephemeral.cmp(&y.ephemeral),
            "swap" => x.swap.cmp(&y.swap),
            "vcpus" => x.vcpus.cmp(&y.vcpus),
            "is_public" => x.is_public.cmp(&y.is_public),
            "description" => x.description.cmp(&y.description),
            "id" | "created_at" | "updated_at" => a.0.cmp(&b.0),
            _ => x.id.cmp(&y.id),
        };
        let o = o.then(a.0.cmp(&b.0));
        if sort_dir == "desc" { o.reverse() } else { o }
    };
    out.sort_by(cmp);
    if let Some(m) = marker {
        let pos =
            flavors.iter().position(|f| f.id == m).ok_or_else(|| bad_request(format!("marker [{m}] not found")))?;
        let mk = (pos, &flavors[pos]);
        out.retain(|x| cmp(x, &mk) == std::cmp::Ordering::Greater);
    }
    out.truncate(limit);
    Ok(out.into_iter().map(|(_, f)| f).collect())
}

fn list_body(state: &AppState, ctx: &Ctx, q: &Query, detail: bool) -> ApiResult<Value> {
    let site = state.site.read().unwrap();
    let b = base(state);
    let flavors = listed(&site.flavors, ctx, q)?;
    let items: Vec<Value> = flavors
        .iter()
        .map(|f| {
            if detail {
                render(f, &b, ctx.mv)
            } else {
                let mut v = json!({"id": f.id, "name": f.name, "links": links(&b, &f.id)});
                if ctx.mv >= 55 {
                    v["description"] = json!(f.description);
                }
                v
            }
        })
        .collect();
    let coll = if detail { "flavors/detail" } else { "flavors" };
    let mut body = json!({"flavors": items});
    if let Some(l) = q.collection_links(&b, coll, flavors.len(), flavors.last().map(|f| f.id.as_str())) {
        body["flavors_links"] = l;
    }
    Ok(body)
}

/// `GET /flavors`
pub async fn list(State(state): State<Arc<AppState>>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Json<Value>> {
    Ok(Json(list_body(&state, &ctx, &Query::parse(q.as_deref()), false)?))
}

/// `GET /flavors/detail`
pub async fn list_detail(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    Ok(Json(list_body(&state, &ctx, &Query::parse(q.as_deref()), true)?))
}

/// `GET /flavors/{id}` — any flavor by id, private ones included, as Nova.
pub async fn show(State(state): State<Arc<AppState>>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let site = state.site.read().unwrap();
    let f = site.flavor(&id).ok_or_else(|| not_found(&id))?;
    Ok(Json(json!({"flavor": render(f, &base(&state), ctx.mv)})))
}

/// `GET /flavors/{id}/os-extra_specs`
pub async fn extra_specs(
    State(state): State<Arc<AppState>>,
    _ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let site = state.site.read().unwrap();
    let f = site.flavor(&id).ok_or_else(|| not_found(&id))?;
    Ok(Json(json!({"extra_specs": f.extra_specs})))
}

/// `GET /flavors/{id}/os-extra_specs/{key}`
pub async fn extra_spec(
    State(state): State<Arc<AppState>>,
    _ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let site = state.site.read().unwrap();
    let f = site.flavor(&id).ok_or_else(|| not_found(&id))?;
    let v = f
        .extra_specs
        .get(&key)
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("Flavor {id} has no extra specs with key {key}.")))?;
    Ok(Json(json!({ key: v })))
}

/// `GET /flavors/{id}/os-flavor-access` (admin; 404 for public flavors)
pub async fn access(State(state): State<Arc<AppState>>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    if !ctx.is_admin() {
        return Err(policy("os_compute_api:os-flavor-access"));
    }
    let site = state.site.read().unwrap();
    let f = site.flavor(&id).ok_or_else(|| not_found(&id))?;
    if f.is_public {
        return Err(err(StatusCode::NOT_FOUND, "Access list not available for public flavors."));
    }
    let list: Vec<Value> = f.access.iter().map(|p| json!({"flavor_id": f.id, "tenant_id": p})).collect();
    Ok(Json(json!({"flavor_access": list})))
}
