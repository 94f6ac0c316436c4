//! `os-simple-tenant-usage`: per-project usage over a window, following
//! Nova's `instance_get_active_by_window_joined` (launched before the end,
//! not terminated before the start, deleted instances included) and the
//! hours/uptime maths of `simple_tenant_usage.py`. Paginated from 2.40.
//! Pages are read from the view's index in (project, uuid) order: the marker
//! by binary search, then servers outside the window skipped until the page
//! is full.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value, json};

use super::{Ctx, MAX_LIMIT, Query, bad_request, base, naive_us, policy};
use crate::error::ApiResult;
use crate::index::ServerIndex;
use crate::model::{ServerView, Site};
use crate::state::AppState;

/// `_parse_datetime`: the three formats Nova accepts, naive = UTC; now when absent.
fn parse_dt(v: Option<&str>, now: DateTime<Utc>) -> ApiResult<DateTime<Utc>> {
    let Some(s) = v.filter(|s| !s.is_empty()) else {
        return Ok(now);
    };
    // strptime's `.%f` needs the dot; chrono's `%.f` would also take none.
    let with_fraction = s.get(19..20) == Some(".");
    let formats: &[&str] =
        if with_fraction { &["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] } else { &["%Y-%m-%dT%H:%M:%S"] };
    formats
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .map(|d| d.and_utc())
        .ok_or_else(|| bad_request("Invalid datetime string: Datetime is in invalid format"))
}

struct Window {
    start: DateTime<Utc>,
    stop: DateTime<Utc>,
    detailed: bool,
    limit: usize,
    marker: Option<String>,
}

fn window(q: &Query, now: DateTime<Utc>, ctx: &Ctx) -> ApiResult<Window> {
    // From 2.75 the query schema forbids other parameters.
    if ctx.at_least(75)
        && let Some((k, _)) =
            q.0.iter().find(|(k, _)| !["start", "end", "detailed", "limit", "marker"].contains(&k.as_str()))
    {
        return Err(bad_request(format!(
            "Invalid input for query parameters {k}. Value: Additional properties are not allowed ('{k}' was unexpected)"
        )));
    }
    let start = parse_dt(q.get("start"), now)?;
    let stop = parse_dt(q.get("end"), now)?;
    if start >= stop {
        return Err(bad_request("Invalid start time. The start time cannot occur after the end time."));
    }
    let (limit, marker) = if ctx.at_least(40) { q.limit_marker()? } else { (MAX_LIMIT, None) };
    Ok(Window { start, stop: stop.min(now), detailed: q.get("detailed") == Some("1"), limit, marker })
}

/// `_hours_for`
fn hours(v: &ServerView, start: DateTime<Utc>, stop: DateTime<Utc>) -> f64 {
    let Some(launched) = v.launched_at else {
        return 0.0;
    };
    if v.terminated_at.is_some_and(|t| t < start) || launched > stop {
        return 0.0;
    }
    let from = launched.max(start);
    let to = v.terminated_at.map_or(stop, |t| t.min(stop));
    (to - from).num_microseconds().unwrap_or(0) as f64 / 3.6e9
}

/// Instances active in the window, ordered by (project, uuid), paged.
fn instances<'a>(
    site: &'a Site,
    now: DateTime<Utc>,
    w: &Window,
    project: Option<&str>,
    ix: &ServerIndex,
) -> ApiResult<Vec<ServerView<'a>>> {
    let active =
        |v: &ServerView| v.terminated_at.is_none_or(|t| t > w.start) && v.launched_at.is_some_and(|l| l < w.stop);
    if ix.unique_ids {
        let order = ix.usage_of(site, project);
        let start = match &w.marker {
            Some(m) => {
                let mk = ix
                    .first
                    .get(m)
                    .and_then(|p| site.servers.get(*p as usize))
                    .ok_or_else(|| bad_request(format!("Marker {m} could not be found.")))?;
                let key = (&mk.project_id, &mk.id);
                order.partition_point(|p| {
                    let s = &site.servers[*p as usize];
                    (&s.project_id, &s.id) <= key
                })
            }
            None => 0,
        };
        return Ok(order[start..]
            .iter()
            .filter_map(|p| site.servers.get(*p as usize)?.view_at(now))
            .filter(active)
            .take(w.limit)
            .collect());
    }
    let mut list: Vec<ServerView> = site
        .servers
        .iter()
        .filter(|s| project.is_none_or(|p| s.project_id == p))
        .filter_map(|s| s.view_at(now))
        .filter(active)
        .collect();
    list.sort_by(|a, b| (&a.server.project_id, &a.server.id).cmp(&(&b.server.project_id, &b.server.id)));
    if let Some(m) = &w.marker {
        let mk = site.server(m).ok_or_else(|| bad_request(format!("Marker {m} could not be found.")))?;
        let key = (&mk.project_id, &mk.id);
        list.retain(|v| (&v.server.project_id, &v.server.id) > key);
    }
    list.truncate(w.limit);
    Ok(list)
}

/// `_tenant_usages_for_period`: per-project summaries (in first-seen order)
/// and every server usage.
fn usages(list: &[ServerView], w: &Window, now: DateTime<Utc>, detailed: bool) -> Vec<Value> {
    let mut out: Vec<Map<String, Value>> = Vec::new();
    for v in list {
        let s = v.server;
        let h = hours(v, w.start, w.stop);
        let f = v.flavor;
        let local_gb = f.disk + f.ephemeral;
        let started = v.launched_at.unwrap();
        let (state, uptime) = match v.terminated_at {
            Some(t) => ("terminated", t - started),
            None => (super::servers::states(v.status).0, now - started),
        };
        let info = json!({
            "hours": h,
            "flavor": f.name,
            "instance_id": s.id,
            "name": s.name,
            "tenant_id": s.project_id,
            "memory_mb": f.ram,
            "local_gb": local_gb,
            "vcpus": f.vcpus,
            "started_at": naive_us(started),
            "ended_at": v.terminated_at.map(naive_us),
            "state": state,
            "uptime": uptime.num_seconds(),
        });
        let pos = match out.iter().position(|m| m["tenant_id"] == s.project_id.as_str()) {
            Some(p) => p,
            None => {
                let mut m = Map::new();
                m.insert("tenant_id".into(), json!(s.project_id));
                if detailed {
                    m.insert("server_usages".into(), json!([]));
                }
                for k in ["total_local_gb_usage", "total_vcpus_usage", "total_memory_mb_usage", "total_hours"] {
                    m.insert(k.into(), json!(0.0));
                }
                m.insert("start".into(), json!(naive_us(w.start)));
                m.insert("stop".into(), json!(naive_us(w.stop)));
                out.push(m);
                out.len() - 1
            }
        };
        let m = &mut out[pos];
        let add = |m: &mut Map<String, Value>, k: &str, x: f64| {
            let cur = m[k].as_f64().unwrap_or(0.0);
            m.insert(k.into(), json!(cur + x));
        };
        add(m, "total_local_gb_usage", local_gb as f64 * h);
        add(m, "total_vcpus_usage", f.vcpus as f64 * h);
        add(m, "total_memory_mb_usage", f.ram as f64 * h);
        add(m, "total_hours", h);
        if detailed {
            m["server_usages"].as_array_mut().unwrap().push(info);
        }
    }
    out.into_iter().map(Value::Object).collect()
}

/// `GET /os-simple-tenant-usage` — every project (admin / system reader).
pub async fn index(State(state): State<Arc<AppState>>, ctx: Ctx, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    if !ctx.all_projects() {
        return Err(policy("os_compute_api:os-simple-tenant-usage:list"));
    }
    let q = Query::parse(raw.as_deref());
    let now = state.now();
    let w = window(&q, now, &ctx)?;
    let site = state.site.read().unwrap();
    let listings = state.listings(&site, now);
    let list = instances(&site, now, &w, None, listings.servers(&site))?;
    let mut body = json!({"tenant_usages": usages(&list, &w, now, w.detailed)});
    if ctx.at_least(40) {
        let last = list.last().map(|v| v.server.id.as_str());
        if let Some(l) = q.collection_links(&base(&state), "os-simple-tenant-usage", list.len(), last) {
            body["tenant_usages_links"] = l;
        }
    }
    Ok(Json(body))
}

/// `GET /os-simple-tenant-usage/{tenant_id}` — `{}` when the project has no usage.
pub async fn show(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(tenant): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    if !ctx.can_read_project(&tenant) {
        return Err(policy("os_compute_api:os-simple-tenant-usage:show"));
    }
    let q = Query::parse(raw.as_deref());
    let now = state.now();
    let w = window(&q, now, &ctx)?;
    let site = state.site.read().unwrap();
    let listings = state.listings(&site, now);
    let list = instances(&site, now, &w, Some(&tenant), listings.servers(&site))?;
    let usage = usages(&list, &w, now, true).into_iter().next().unwrap_or_else(|| json!({}));
    let mut body = json!({"tenant_usage": usage});
    if ctx.at_least(40) {
        let last = list.last().map(|v| v.server.id.as_str());
        if let Some(l) =
            q.collection_links(&base(&state), &format!("os-simple-tenant-usage/{tenant}"), list.len(), last)
        {
            body["tenant_usage_links"] = l;
        }
    }
    Ok(Json(body))
}
