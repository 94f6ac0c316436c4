//! Nova's small read-only endpoints: version discovery, quota sets, limits,
//! availability zones and the (empty) extension list.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde_json::{Value, json};

use super::{Ctx, MIN_MINOR, Mv, Query, base, policy};
use crate::error::ApiResult;
use crate::model::{Quota, Site};
use crate::state::AppState;

fn v21(state: &AppState) -> Value {
    json!({
        "id": "v2.1",
        "status": "CURRENT",
        "version": format!("2.{}", state.nova_max_minor),
        "min_version": format!("2.{MIN_MINOR}"),
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": format!("{}/v2.1/", base(state))}],
    })
}

/// `GET /` — both API versions.
pub async fn versions(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({"versions": [
        {
            "id": "v2.0",
            "status": "SUPPORTED",
            "version": "",
            "min_version": "",
            "updated": "2011-01-21T11:33:21Z",
            "links": [{"rel": "self", "href": format!("{}/v2/", base(&state))}],
        },
        v21(&state),
    ]}))
}

/// `GET /v2.1` — the version document (no token needed).
pub async fn version_doc(State(state): State<Arc<AppState>>, mv: Mv) -> ApiResult<Json<Value>> {
    mv.0?;
    let mut v = v21(&state);
    v["links"].as_array_mut().unwrap().push(json!({
        "rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"
    }));
    v["media-types"] =
        json!([{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}]);
    Ok(Json(json!({"version": v})))
}

/// Instances, cores and RAM of a project's servers that are not deleted at
/// `now` (Nova counts every non-deleted instance, shelved ones included).
pub fn usage_of(site: &Site, project: &str, now: chrono::DateTime<chrono::Utc>) -> (i64, i64, i64) {
    site.servers
        .iter()
        .filter(|s| s.project_id == project)
        .filter_map(|s| s.view_at(now))
        .filter(|v| !v.deleted)
        .fold((0, 0, 0), |(n, c, r), v| (n + 1, c + v.flavor.vcpus as i64, r + v.flavor.ram as i64))
}

/// `(name, limit, in_use)` of every quota shown at microversion `mv`.
fn quota_items(q: &Quota, used: (i64, i64, i64), mv: u32) -> Vec<(&'static str, i64, i64)> {
    let mut items = vec![
        ("instances", q.instances, used.0),
        ("cores", q.cores, used.1),
        ("ram", q.ram, used.2),
        ("key_pairs", q.key_pairs, 0),
        ("metadata_items", q.metadata_items, 0),
        ("server_groups", q.server_groups, 0),
        ("server_group_members", q.server_group_members, 0),
    ];
    if mv < 57 {
        items.extend([
            ("injected_files", 5, 0),
            ("injected_file_content_bytes", 10240, 0),
            ("injected_file_path_bytes", 255, 0),
        ]);
    }
    if mv < 36 {
        items.extend([
            ("fixed_ips", -1, 0),
            ("floating_ips", -1, 0),
            ("security_groups", -1, 0),
            ("security_group_rules", -1, 0),
        ]);
    }
    items
}

fn quota_body(state: &AppState, ctx: &Ctx, project: &str, detail: bool, defaults: bool) -> Value {
    let site = state.site.read().unwrap();
    let q = if defaults { Quota::default() } else { site.quotas.get(project).cloned().unwrap_or_default() };
    let used = usage_of(&site, project, state.now());
    let mut set = serde_json::Map::new();
    set.insert("id".into(), json!(project));
    for (k, limit, in_use) in quota_items(&q, used, ctx.mv) {
        let v = if detail { json!({"in_use": in_use, "limit": limit, "reserved": 0}) } else { json!(limit) };
        set.insert(k.into(), v);
    }
    json!({"quota_set": set})
}

/// `GET /os-quota-sets/{project}`
pub async fn quota_show(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(project): Path<String>,
) -> ApiResult<Json<Value>> {
    if !ctx.can_read_project(&project) {
        return Err(policy("os_compute_api:os-quota-sets:show"));
    }
    Ok(Json(quota_body(&state, &ctx, &project, false, false)))
}

/// `GET /os-quota-sets/{project}/detail`
pub async fn quota_detail(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(project): Path<String>,
) -> ApiResult<Json<Value>> {
    if !ctx.can_read_project(&project) {
        return Err(policy("os_compute_api:os-quota-sets:detail"));
    }
    Ok(Json(quota_body(&state, &ctx, &project, true, false)))
}

/// `GET /os-quota-sets/{project}/defaults` (any token)
pub async fn quota_defaults(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(project): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(quota_body(&state, &ctx, &project, false, true)))
}

/// `GET /limits` (optionally `?tenant_id=` for admins)
pub async fn limits(State(state): State<Arc<AppState>>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Json<Value>> {
    let q = Query::parse(q.as_deref());
    let project = match q.get("tenant_id") {
        Some(t) if ctx.is_admin() => t.to_string(),
        _ => ctx.token.project_id().unwrap_or_default().to_string(),
    };
    let site = state.site.read().unwrap();
    let quota = site.quotas.get(&project).cloned().unwrap_or_default();
    let (n, c, r) = usage_of(&site, &project, state.now());
    let mut abs = json!({
        "maxServerMeta": quota.metadata_items,
        "maxTotalKeypairs": quota.key_pairs,
        "maxServerGroups": quota.server_groups,
        "maxServerGroupMembers": quota.server_group_members,
        "maxTotalCores": quota.cores,
        "maxTotalInstances": quota.instances,
        "maxTotalRAMSize": quota.ram,
        "totalCoresUsed": c,
        "totalInstancesUsed": n,
        "totalRAMUsed": r,
        "totalServerGroupsUsed": 0,
    });
    if ctx.mv < 57 {
        abs["maxPersonality"] = json!(5);
        abs["maxPersonalitySize"] = json!(10240);
    }
    if ctx.mv < 39 {
        abs["maxImageMeta"] = json!(128);
    }
    if ctx.mv < 36 {
        for (k, v) in [
            ("maxSecurityGroups", -1),
            ("maxSecurityGroupRules", -1),
            ("maxTotalFloatingIps", -1),
            ("totalFloatingIpsUsed", 0),
            ("totalSecurityGroupsUsed", 0),
        ] {
            abs[k] = json!(v);
        }
    }
    Ok(Json(json!({"limits": {"rate": [], "absolute": abs}})))
}

/// `GET /os-availability-zone`: `nova` plus any zone a server uses.
pub async fn availability_zones(State(state): State<Arc<AppState>>, _ctx: Ctx) -> Json<Value> {
    let site = state.site.read().unwrap();
    let mut zones = std::collections::BTreeSet::from(["nova".to_string()]);
    zones.extend(site.servers.iter().map(|s| s.availability_zone.clone()).filter(|z| !z.is_empty()));
    let info: Vec<Value> =
        zones.into_iter().map(|z| json!({"zoneName": z, "zoneState": {"available": true}, "hosts": null})).collect();
    Json(json!({"availabilityZoneInfo": info}))
}

/// `GET /os-availability-zone/detail` (admin): zones with their hosts' services.
pub async fn availability_zones_detail(State(state): State<Arc<AppState>>, ctx: Ctx) -> ApiResult<Json<Value>> {
    if !ctx.is_admin() {
        return Err(policy("os_compute_api:os-availability-zone:detail"));
    }
    let now = state.now();
    let site = state.site.read().unwrap();
    let svc = |names: &[&str]| {
        let m: serde_json::Map<String, Value> = names
            .iter()
            .map(|n| (n.to_string(), json!({"available": true, "active": true, "updated_at": super::naive_us(now)})))
            .collect();
        Value::Object(m)
    };
    let mut zones: std::collections::BTreeMap<String, serde_json::Map<String, Value>> = Default::default();
    zones.entry("nova".into()).or_default();
    for s in &site.servers {
        let host = super::servers::host_name(s);
        if !host.is_empty() {
            let z = if s.availability_zone.is_empty() { "nova" } else { s.availability_zone.as_str() };
            zones.entry(z.to_string()).or_default().insert(host, svc(&["nova-compute"]));
        }
    }
    let mut info = vec![json!({
        "zoneName": "internal", "zoneState": {"available": true},
        "hosts": {"controller": svc(&["nova-conductor", "nova-scheduler"])},
    })];
    info.extend(
        zones.into_iter().map(|(z, hosts)| json!({"zoneName": z, "zoneState": {"available": true}, "hosts": hosts})),
    );
    Ok(Json(json!({"availabilityZoneInfo": info})))
}

/// `GET /extensions` — the list is empty since extensions were removed.
pub async fn extensions(_ctx: Ctx) -> Json<Value> {
    Json(json!({"extensions": []}))
}
