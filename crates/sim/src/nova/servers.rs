//! Nova servers: list/detail with Nova's filters, sorting and paging, show,
//! the per-microversion server JSON, instance actions, and the lifecycle
//! calls a VM start probe needs (create, delete, start/stop/... actions).
//!
//! Listings in the default order filtered only by project, `deleted`,
//! `changes-since`/`-before` and paged by marker (what cASO and fedsite ask)
//! are answered from the view's [`ServerIndex`]; any other filter or sort
//! scans every server as before.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::{Ctx, Query, bad_request, base, err, iso_z, naive_us, parse_isotime, policy, regex_search, stable_uuid};
use crate::error::{ApiError, ApiResult};
use crate::index::{Rendered, ServerIndex};
use crate::model::{Flavor, Server, ServerEvent, ServerView, Site};
use crate::state::AppState;

/// `(vm_state, task_state, power_state)` behind an API status.
pub fn states(status: &str) -> (&'static str, Option<&'static str>, u8) {
    match status {
        "ACTIVE" => ("active", None, 1),
        "BUILD" => ("building", Some("spawning"), 0),
        "SHUTOFF" => ("stopped", None, 4),
        "SUSPENDED" => ("suspended", None, 7),
        "PAUSED" => ("paused", None, 3),
        "SHELVED" => ("shelved", None, 4),
        "SHELVED_OFFLOADED" => ("shelved_offloaded", None, 4),
        "DELETED" => ("deleted", None, 0),
        "SOFT_DELETED" => ("soft_deleted", None, 4),
        "VERIFY_RESIZE" => ("resized", None, 1),
        "REVERT_RESIZE" => ("resized", Some("resize_reverting"), 1),
        "RESIZE" => ("active", Some("resize_migrating"), 1),
        "REBOOT" => ("active", Some("rebooting"), 1),
        "HARD_REBOOT" => ("active", Some("rebooting_hard"), 1),
        "REBUILD" => ("active", Some("rebuilding"), 1),
        "MIGRATING" => ("active", Some("migrating"), 1),
        "PASSWORD" => ("active", Some("updating_password"), 1),
        "RESCUE" => ("rescued", None, 1),
        "ERROR" => ("error", None, 0),
        _ => ("error", None, 0),
    }
}

/// Statuses Nova can report (for the `status` filter).
const STATUSES: &[&str] = &[
    "ACTIVE",
    "BUILD",
    "SHUTOFF",
    "SUSPENDED",
    "PAUSED",
    "SHELVED",
    "SHELVED_OFFLOADED",
    "DELETED",
    "SOFT_DELETED",
    "VERIFY_RESIZE",
    "REVERT_RESIZE",
    "RESIZE",
    "REBOOT",
    "HARD_REBOOT",
    "REBUILD",
    "MIGRATING",
    "PASSWORD",
    "RESCUE",
    "ERROR",
    "UNKNOWN",
    "MIGRATING",
];

/// The compute host a server runs on, derived from its `host_id`.
pub fn host_name(s: &Server) -> String {
    if s.host_id.is_empty() {
        return String::new();
    }
    let n = s.host_id.bytes().fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(b as u32)) % 1000;
    format!("compute-{n:03}")
}

/// Whether a server has a host at `v` (not before launch, not offloaded).
fn on_host(v: &ServerView) -> bool {
    !(v.launched_at.is_none() || v.status == "SHELVED_OFFLOADED")
}

fn not_found(id: &str) -> ApiError {
    err(StatusCode::NOT_FOUND, format!("Instance {id} could not be found."))
}

/// Per-request lookups for the servers being rendered: MACs, floating IPs
/// and attached volumes, built once from only those servers.
pub struct Index<'a> {
    macs: HashMap<(&'a str, &'a str), &'a str>,
    /// server id → (fixed ip, floating address, version)
    fips: HashMap<&'a str, Vec<(&'a str, &'a str, u8)>>,
    vols: HashMap<&'a str, Vec<&'a str>>,
    /// Every volume id of the site, when indexed.
    volume_ids: Option<&'a HashSet<String>>,
}

impl<'a> Index<'a> {
    /// The lookups of `ids` from the view's index (`ix` built for `site`
    /// viewed at `now`), or by scanning when the index cannot tell ids apart.
    pub fn build(site: &'a Site, now: DateTime<Utc>, ids: &HashSet<&'a str>, ix: &'a ServerIndex) -> Index<'a> {
        if !ix.unique_ids {
            return Index::scan(site, now, ids);
        }
        let mut macs = HashMap::new();
        let mut fips: HashMap<&str, Vec<_>> = HashMap::new();
        let mut vols: HashMap<&str, Vec<&str>> = HashMap::new();
        for &sid in ids {
            for &p in ix.ports.get(sid).into_iter().flatten() {
                let p = &site.ports[p as usize];
                for ip in &p.fixed_ips {
                    macs.insert((p.device_id.as_str(), ip.as_str()), p.mac_address.as_str());
                }
            }
            if let Some(list) = ix.floating.get(sid) {
                let list = list.iter().map(|&(f, a)| {
                    let f = &site.floating_ips[f as usize];
                    let a = &f.associations[a as usize];
                    (a.fixed_ip.as_str(), f.address.as_str(), f.version)
                });
                fips.insert(sid, list.collect());
            }
            if let Some(list) = ix.attached.get(sid) {
                let ids = list.iter().map(|&v| site.volumes[v as usize].id.as_str());
                vols.insert(sid, ids.collect());
            }
        }
        Index { macs, fips, vols, volume_ids: Some(&ix.volume_ids) }
    }

    /// The lookups of `ids` from every port, floating IP and volume.
    fn scan(site: &'a Site, now: DateTime<Utc>, ids: &HashSet<&str>) -> Index<'a> {
        let mut macs = HashMap::new();
        let mut port_owner: HashMap<&str, &str> = HashMap::new();
        for p in site.ports.iter().filter(|p| ids.contains(p.device_id.as_str())) {
            for ip in &p.fixed_ips {
                macs.insert((p.device_id.as_str(), ip.as_str()), p.mac_address.as_str());
            }
            if p.visible_at(now) {
                port_owner.insert(p.id.as_str(), p.device_id.as_str());
            }
        }
        let mut fips: HashMap<&str, Vec<_>> = HashMap::new();
        for f in site.floating_ips.iter().filter(|f| f.visible_at(now)) {
            if let Some(a) = f.association_at(now)
                && let Some(sid) = port_owner.get(a.port_id.as_str())
            {
                fips.entry(*sid).or_default().push((a.fixed_ip.as_str(), f.address.as_str(), f.version));
            }
        }
        let mut vols: HashMap<&str, Vec<&str>> = HashMap::new();
        for v in site.volumes.iter().filter(|v| v.visible_at(now)) {
            for a in v.attachments_at(now).filter(|a| ids.contains(a.server_id.as_str())) {
                vols.entry(a.server_id.as_str()).or_default().push(v.id.as_str());
            }
        }
        Index { macs, fips, vols, volume_ids: None }
    }
}

fn mac_for(idx: &Index, sid: &str, addr: &str) -> String {
    idx.macs.get(&(sid, addr)).map(|m| m.to_string()).unwrap_or_else(|| {
        let h = stable_uuid(&[sid, addr]);
        format!("fa:16:3e:{}:{}:{}", &h[0..2], &h[2..4], &h[4..6])
    })
}

fn addresses(v: &ServerView, idx: &Index) -> Value {
    let s = v.server;
    // Nova hides addresses while building; a deleted instance's cache is gone.
    if v.status == "BUILD" || v.deleted {
        return json!({});
    }
    let mut nets: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    let fips = idx.fips.get(s.id.as_str());
    for (net, addr, ver) in &s.fixed_ips {
        let mac = mac_for(idx, &s.id, addr);
        let list = nets.entry(net.as_str()).or_default();
        list.push(json!({"version": ver, "addr": addr, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": mac}));
        for (_, fa, fv) in fips.into_iter().flatten().filter(|(fixed, _, _)| fixed == addr) {
            list.push(
                json!({"version": fv, "addr": fa, "OS-EXT-IPS:type": "floating", "OS-EXT-IPS-MAC:mac_addr": mac}),
            );
        }
    }
    json!(nets)
}

/// Volume ids attached at the view time: the server's own list, checked
/// against the volume's attachment history when the site models it.
fn volumes(v: &ServerView, site: &Site, idx: &Index) -> Vec<String> {
    if v.deleted {
        return vec![];
    }
    let s = v.server;
    let attached = idx.vols.get(s.id.as_str());
    let mut out: Vec<String> = s
        .volumes_attached
        .iter()
        .filter(|id| {
            let unknown = match idx.volume_ids {
                Some(all) => !all.contains(id.as_str()),
                None => site.volumes.iter().all(|vol| &vol.id != *id),
            };
            unknown || attached.is_some_and(|a| a.contains(&id.as_str()))
        })
        .cloned()
        .collect();
    for id in attached.into_iter().flatten() {
        if !out.iter().any(|o| o == id) {
            out.push(id.to_string());
        }
    }
    out
}

/// One server as Nova's view builder renders it at `ctx.mv`.
pub fn render(v: &ServerView, number: usize, idx: &Index, site: &Site, ctx: &Ctx, base: &str) -> Value {
    let s = v.server;
    let (vm_state, task_state, power_state) = states(v.status);
    let host = if on_host(v) { host_name(s) } else { String::new() };
    let flavor = if ctx.at_least(47) {
        json!({
            "vcpus": v.flavor.vcpus, "ram": v.flavor.ram, "disk": v.flavor.disk,
            "ephemeral": v.flavor.ephemeral, "swap": v.flavor.swap,
            "original_name": v.flavor.name, "extra_specs": v.flavor.extra_specs,
        })
    } else {
        json!({"id": v.flavor.id, "links": [{"rel": "bookmark", "href": format!("{base}/flavors/{}", v.flavor.id)}]})
    };
    let image = match &s.image_id {
        Some(id) if !id.is_empty() => {
            json!({"id": id, "links": [{"rel": "bookmark", "href": format!("{base}/images/{id}")}]})
        }
        _ => json!(""),
    };
    let mut o = json!({
        "id": s.id,
        "name": s.name,
        "status": v.status,
        "tenant_id": s.project_id,
        "user_id": s.user_id,
        "metadata": s.metadata,
        "hostId": if host.is_empty() { String::new() } else { s.host_id.clone() },
        "image": image,
        "flavor": flavor,
        "created": iso_z(s.created),
        "updated": iso_z(v.updated),
        "addresses": addresses(v, idx),
        "accessIPv4": "",
        "accessIPv6": "",
        "links": [
            {"rel": "self", "href": format!("{base}/v2.1/servers/{}", s.id)},
            {"rel": "bookmark", "href": format!("{base}/servers/{}", s.id)},
        ],
        "OS-DCF:diskConfig": "MANUAL",
        "OS-EXT-AZ:availability_zone": s.availability_zone,
        "config_drive": "",
        "key_name": s.key_name,
        "OS-SRV-USG:launched_at": v.launched_at.map(naive_us),
        "OS-SRV-USG:terminated_at": v.terminated_at.map(naive_us),
        "OS-EXT-STS:task_state": task_state,
        "OS-EXT-STS:vm_state": vm_state,
        "OS-EXT-STS:power_state": power_state,
    });
    if matches!(v.status, "ACTIVE" | "BUILD" | "REBUILD" | "RESIZE" | "VERIFY_RESIZE" | "MIGRATING") {
        o["progress"] = json!(0);
    }
    if !s.fixed_ips.is_empty() && !v.deleted {
        o["security_groups"] = json!([{"name": "default"}]);
    }
    let vols: Vec<Value> = volumes(v, site, idx)
        .into_iter()
        .map(|id| if ctx.at_least(3) { json!({"id": id, "delete_on_termination": false}) } else { json!({"id": id}) })
        .collect();
    o["os-extended-volumes:volumes_attached"] = json!(vols);
    if ctx.is_admin() {
        o["OS-EXT-SRV-ATTR:host"] = json!(if host.is_empty() { Value::Null } else { json!(host) });
        o["OS-EXT-SRV-ATTR:instance_name"] = json!(format!("instance-{:08x}", number));
        o["OS-EXT-SRV-ATTR:hypervisor_hostname"] = json!(if host.is_empty() { Value::Null } else { json!(host) });
        if ctx.at_least(3) {
            o["OS-EXT-SRV-ATTR:reservation_id"] = json!(format!("r-{}", &stable_uuid(&[&s.id, "r"])[..8]));
            o["OS-EXT-SRV-ATTR:launch_index"] = json!(0);
            o["OS-EXT-SRV-ATTR:hostname"] = json!(hostname(&s.name));
            o["OS-EXT-SRV-ATTR:kernel_id"] = json!("");
            o["OS-EXT-SRV-ATTR:ramdisk_id"] = json!("");
            o["OS-EXT-SRV-ATTR:root_device_name"] = json!("/dev/vda");
            o["OS-EXT-SRV-ATTR:user_data"] = Value::Null;
        }
        if ctx.at_least(16) {
            o["host_status"] = json!(if host.is_empty() { "" } else { "UP" });
        }
    }
    if ctx.at_least(9) {
        o["locked"] = json!(false);
    }
    if ctx.at_least(73) {
        o["locked_reason"] = Value::Null;
    }
    if ctx.at_least(19) {
        o["description"] = Value::Null;
    }
    if ctx.at_least(26) {
        o["tags"] = json!([]);
    }
    if ctx.at_least(63) {
        o["trusted_image_certificates"] = Value::Null;
    }
    o
}

/// The hostname Nova derives from a display name.
fn hostname(name: &str) -> String {
    let h: String =
        name.to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    let h = h.trim_matches('-').chars().take(63).collect::<String>();
    if h.is_empty() { "server".into() } else { h }
}

// ---------------------------------------------------------------- listing

/// Valid `sort_key`s and the ones Nova silently drops.
const SORT_KEYS: &[&str] = &[
    "access_ip_v4",
    "access_ip_v6",
    "auto_disk_config",
    "availability_zone",
    "config_drive",
    "created_at",
    "display_description",
    "display_name",
    "host",
    "hostname",
    "image_ref",
    "instance_type_id",
    "kernel_id",
    "key_name",
    "launch_index",
    "launched_at",
    "locked_by",
    "node",
    "power_state",
    "progress",
    "project_id",
    "ramdisk_id",
    "root_device_name",
    "task_state",
    "terminated_at",
    "updated_at",
    "user_id",
    "uuid",
    "vm_state",
];
const IGNORED_SORT_KEYS: &[&str] = &[
    "architecture",
    "cell_name",
    "cleaned",
    "default_ephemeral_device",
    "default_swap_device",
    "deleted",
    "deleted_at",
    "disable_terminate",
    "ephemeral_gb",
    "ephemeral_key_uuid",
    "id",
    "key_data",
    "launched_on",
    "locked",
    "memory_mb",
    "os_type",
    "reservation_id",
    "root_gb",
    "shutdown_terminate",
    "user_data",
    "vcpus",
    "vm_mode",
];

struct Row<'a> {
    pos: usize,
    v: ServerView<'a>,
}

fn key_cmp(key: &str, a: &Row, b: &Row) -> Ordering {
    let (x, y) = (&a.v, &b.v);
    let (sx, sy) = (x.server, y.server);
    match key {
        "created_at" => sx.created.cmp(&sy.created),
        "updated_at" => x.updated.cmp(&y.updated),
        "launched_at" => x.launched_at.cmp(&y.launched_at),
        "terminated_at" => x.terminated_at.cmp(&y.terminated_at),
        "display_name" => sx.name.cmp(&sy.name),
        "hostname" => hostname(&sx.name).cmp(&hostname(&sy.name)),
        "uuid" => sx.id.cmp(&sy.id),
        "project_id" => sx.project_id.cmp(&sy.project_id),
        "user_id" => sx.user_id.cmp(&sy.user_id),
        "availability_zone" => sx.availability_zone.cmp(&sy.availability_zone),
        "key_name" => sx.key_name.cmp(&sy.key_name),
        "image_ref" => sx.image_id.cmp(&sy.image_id),
        "instance_type_id" => x.flavor.id.cmp(&y.flavor.id),
        "host" | "node" => host_name(sx).cmp(&host_name(sy)),
        "vm_state" => states(x.status).0.cmp(states(y.status).0),
        "task_state" => states(x.status).1.cmp(&states(y.status).1),
        "power_state" => states(x.status).2.cmp(&states(y.status).2),
        "id" => a.pos.cmp(&b.pos),
        _ => Ordering::Equal,
    }
}

/// Servers of one listing request, filtered, sorted and cut to one page.
///
/// Scoping follows current Nova: without `all_tenants` a project token sees
/// its project (a project-less token its own user's servers) and
/// `project_id`/`tenant_id` are ignored; `all_tenants` needs the
/// `servers:{index,detail}:get_all_tenants` policy (admin; here also a system
/// reader) and is a 403 otherwise, not silently ignored. Non-admins lose the
/// admin-only filters (`deleted`, `user_id`, `host`, ...) as
/// `remove_invalid_options` does.
fn select<'a>(
    site: &'a Site,
    now: DateTime<Utc>,
    ctx: &Ctx,
    q: &Query,
    detail: bool,
    ix: &ServerIndex,
) -> ApiResult<Vec<Row<'a>>> {
    let admin = ctx.is_admin();
    let q = user_visible(q, admin);

    let statuses: Vec<String> = q.all("status").iter().map(|s| s.trim().to_ascii_uppercase()).collect();
    if !statuses.is_empty() && !statuses.iter().any(|s| STATUSES.contains(&s.as_str())) {
        if ctx.at_least(38) {
            return Err(bad_request("Invalid status value"));
        }
        return Ok(vec![]);
    }
    let (since, before) = changes_window(&q, ctx)?;
    // None: both deleted and not; Some(b): deleted == b.
    let mut deleted: Option<bool> = match q.get("deleted") {
        Some(d) => Some(super::parse_bool(d).unwrap_or(false)),
        None if since.is_none() && before.is_none() => Some(false),
        None => None,
    };
    if statuses.len() == 1 && statuses[0] == "DELETED" {
        if !admin {
            return Err(err(StatusCode::FORBIDDEN, "Only administrators may list deleted instances"));
        }
        deleted = Some(true);
    }
    let (project, user) = scope(&q, ctx, detail)?;

    let (keys, dirs) = sort_order(&q, admin)?;
    let (limit, marker) = q.limit_marker()?;

    let flavor_filter = q.get("flavor");
    if flavor_filter.is_some_and(|f| site.flavor(f).is_none()) {
        return Ok(vec![]); // FlavorNotFound → empty list
    }
    let name = q.get("name");
    let image = q.get("image");
    let ip = q.get("ip");
    let ip6 = q.get("ip6").filter(|_| ctx.at_least(5));
    let az = q.get("availability_zone");
    let key_name = q.get("key_name");
    let uuid = q.get("uuid");
    let host = q.get("host");
    let vm_states: Vec<&str> = q.all("vm_state");
    let tags = q.get("tags").filter(|_| ctx.at_least(26));
    let tags_any = q.get("tags-any").filter(|_| ctx.at_least(26));
    let locked = q.get("locked").filter(|_| ctx.at_least(73)).and_then(super::parse_bool);
    let plain = keys == ["created_at", "id"]
        && dirs == ["desc", "desc"]
        && statuses.is_empty()
        && [flavor_filter, name, image, ip, ip6, az, key_name, uuid, host, tags, tags_any].iter().all(Option::is_none)
        && vm_states.is_empty()
        && locked.is_none()
        && user.is_none();
    if plain && ix.unique_ids {
        let filter = Plain { project: project.as_deref(), deleted, since, before };
        return indexed(site, now, ix, &filter, marker.as_deref(), limit);
    }
    let need_fips = ip.is_some() || ip6.is_some();
    let fip_addrs = if need_fips { floating_addrs(site, now) } else { HashMap::new() };

    let rows: Vec<Row> = site
        .servers
        .iter()
        .enumerate()
        .filter(|(_, s)| project.as_deref().is_none_or(|p| s.project_id == p))
        .filter(|(_, s)| user.as_deref().is_none_or(|u| s.user_id == u))
        .filter_map(|(pos, s)| s.view_at(now).map(|v| Row { pos, v }))
        .filter(|r| {
            let (v, s) = (&r.v, r.v.server);
            deleted.is_none_or(|d| v.deleted == d)
                && since.is_none_or(|t| v.updated >= t)
                && before.is_none_or(|t| v.updated <= t)
                && (statuses.is_empty() || statuses.iter().any(|st| st == v.status))
                && name.is_none_or(|n| regex_search(n, &s.name))
                && image.is_none_or(|i| s.image_id.as_deref() == Some(i))
                && flavor_filter.is_none_or(|f| v.flavor.id == f)
                && az.is_none_or(|z| s.availability_zone == z)
                && key_name.is_none_or(|k| s.key_name.as_deref() == Some(k))
                && uuid.is_none_or(|u| s.id == u)
                && host.is_none_or(|h| on_host(v) && host_name(s) == h)
                && (vm_states.is_empty() || vm_states.contains(&states(v.status).0))
                && tags.is_none()
                && tags_any.is_none()
                && locked.is_none_or(|l| !l)
                && ip.is_none_or(|p| {
                    s.fixed_ips.iter().any(|(_, a, _)| regex_search(p, a))
                        || fip_addrs.get(s.id.as_str()).into_iter().flatten().any(|(a, _)| regex_search(p, a))
                })
                && ip6.is_none_or(|p| {
                    s.fixed_ips.iter().any(|(_, a, ver)| *ver == 6 && regex_search(p, a))
                        || fip_addrs
                            .get(s.id.as_str())
                            .into_iter()
                            .flatten()
                            .any(|(a, ver)| *ver == 6 && regex_search(p, a))
                })
        })
        .collect();

    page(site, now, rows, &keys, &dirs, marker.as_deref(), limit)
}

/// The `changes-since`/`changes-before` window (before only from 2.66 on);
/// a bad date or a window that ends before it starts is a 400.
fn changes_window(q: &Query, ctx: &Ctx) -> ApiResult<(Option<DateTime<Utc>>, Option<DateTime<Utc>>)> {
    let since = match q.get("changes-since") {
        Some(v) => Some(parse_isotime(v).ok_or_else(|| {
            bad_request(format!(
                "Invalid input for query parameters changes-since. Value: {v}. '{v}' is not a 'date-time'"
            ))
        })?),
        None => None,
    };
    let before = match q.get("changes-before").filter(|_| ctx.at_least(66)) {
        Some(v) => Some(parse_isotime(v).ok_or_else(|| {
            bad_request(format!(
                "Invalid input for query parameters changes-before. Value: {v}. '{v}' is not a 'date-time'"
            ))
        })?),
        None => None,
    };
    if let (Some(s), Some(b)) = (since, before)
        && b < s
    {
        return Err(bad_request("The value of changes-since must be less than or equal to changes-before."));
    }
    Ok((since, before))
}

/// Whose servers a listing sees, as (project, user) filters: with
/// `all_tenants` (policy-checked) the requested ones, else the token's project
/// (or, for a project-less token, its user).
fn scope(q: &Query, ctx: &Ctx, detail: bool) -> ApiResult<(Option<String>, Option<String>)> {
    let all_tenants = match q.0.iter().find(|(k, _)| k == "all_tenants") {
        None => false,
        Some((_, v)) if v.is_empty() => true,
        Some((_, v)) => super::parse_bool(v).ok_or_else(|| {
            bad_request(format!("Unrecognized value '{v}', acceptable values are: '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'"))
        })?,
    };
    Ok(if all_tenants {
        if !ctx.all_projects() {
            let what = if detail { "detail" } else { "index" };
            return Err(policy(&format!("os_compute_api:servers:{what}:get_all_tenants")));
        }
        (q.get("project_id").or(q.get("tenant_id")).map(String::from), q.get("user_id").map(String::from))
    } else if let Some(p) = ctx.token.project_id() {
        (Some(p.to_string()), q.get("user_id").map(String::from))
    } else {
        (None, Some(ctx.token.user_id.clone()))
    })
}

/// The sort keys and directions, validated before filtering (JSON schema):
/// ignored keys dropped, missing directions defaulted to the first given (or
/// `desc`), and `created_at`, `id` appended as tie-breakers.
fn sort_order(q: &Query, admin: bool) -> ApiResult<(Vec<String>, Vec<String>)> {
    let mut keys: Vec<String> = q.all("sort_key").into_iter().map(String::from).collect();
    let mut dirs: Vec<String> = q.all("sort_dir").into_iter().map(String::from).collect();
    for k in &keys {
        if !SORT_KEYS.contains(&k.as_str()) && !IGNORED_SORT_KEYS.contains(&k.as_str()) {
            return Err(bad_request(format!(
                "Invalid input for query parameters sort_key. Value: {k}. '{k}' is not one of the valid sort keys"
            )));
        }
        if (k == "host" || k == "node") && !admin {
            return Err(err(StatusCode::FORBIDDEN, format!("Only administrators can sort servers by {k}")));
        }
    }
    for d in &dirs {
        if d != "asc" && d != "desc" {
            return Err(bad_request(format!(
                "Invalid input for query parameters sort_dir. Value: {d}. '{d}' is not one of ['asc', 'desc']"
            )));
        }
    }
    while let Some(i) = keys.iter().position(|k| IGNORED_SORT_KEYS.contains(&k.as_str())) {
        if dirs.len() > i {
            dirs.remove(i);
        }
        keys.remove(i);
    }
    if dirs.len() > keys.len() {
        return Err(bad_request("Sort direction size exceeds sort key size"));
    }
    let default_dir = dirs.first().cloned().unwrap_or_else(|| "desc".into());
    while dirs.len() < keys.len() {
        dirs.push(default_dir.clone());
    }
    for k in ["created_at", "id"] {
        if !keys.iter().any(|x| x == k) {
            keys.push(k.into());
            dirs.push(default_dir.clone());
        }
    }
    Ok((keys, dirs))
}

/// Server id → the (address, IP version) of its floating IPs at `now`.
fn floating_addrs(site: &Site, now: DateTime<Utc>) -> HashMap<&str, Vec<(&str, u8)>> {
    let mut owner: HashMap<&str, &str> = HashMap::new();
    for p in site.ports.iter().filter(|p| p.visible_at(now)) {
        owner.insert(&p.id, &p.device_id);
    }
    let mut m: HashMap<&str, Vec<_>> = HashMap::new();
    for f in site.floating_ips.iter().filter(|f| f.visible_at(now)) {
        if let Some(sid) = f.association_at(now).and_then(|a| owner.get(a.port_id.as_str())) {
            m.entry(*sid).or_default().push((f.address.as_str(), f.version));
        }
    }
    m
}

/// Sorts the matching rows and cuts the page after `marker` (a 400 when the
/// marker is not a server that exists at `now`), at most `limit` long.
fn page<'a>(
    site: &'a Site,
    now: DateTime<Utc>,
    mut rows: Vec<Row<'a>>,
    keys: &[String],
    dirs: &[String],
    marker: Option<&str>,
    limit: usize,
) -> ApiResult<Vec<Row<'a>>> {
    let cmp = |a: &Row, b: &Row| -> Ordering {
        for (k, d) in keys.iter().zip(dirs) {
            let o = key_cmp(k, a, b);
            let o = if d == "desc" { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    };
    if let Some(m) = marker {
        let pos = site
            .servers
            .iter()
            .position(|s| s.id == m && s.exists_at(now))
            .ok_or_else(|| bad_request(format!("marker [{m}] not found")))?;
        let mk = Row { pos, v: site.servers[pos].view_at(now).unwrap() };
        rows.retain(|r| cmp(r, &mk) == Ordering::Greater);
    }
    if rows.len() > limit {
        rows.select_nth_unstable_by(limit, cmp);
        rows.truncate(limit);
    }
    rows.sort_by(cmp);
    Ok(rows)
}

/// `remove_invalid_options`: non-admins keep only the user filters.
fn user_visible(q: &Query, admin: bool) -> Query {
    let user_filters = [
        "reservation_id",
        "name",
        "status",
        "image",
        "flavor",
        "ip",
        "changes-since",
        "all_tenants",
        "ip6",
        "changes-before",
        "tags",
        "tags-any",
        "not-tags",
        "not-tags-any",
        "locked",
        "limit",
        "marker",
        "sort_key",
        "sort_dir",
    ];
    if admin {
        q.clone()
    } else {
        Query(q.0.iter().filter(|(k, _)| user_filters.contains(&k.as_str())).cloned().collect())
    }
}

/// The filters of a listing the index answers.
struct Plain<'q> {
    project: Option<&'q str>,
    deleted: Option<bool>,
    since: Option<DateTime<Utc>>,
    before: Option<DateTime<Utc>>,
}

/// One page of a plain listing (default order; project, `deleted` and time
/// filters) from the view's index: the marker's place by binary search, then
/// the list walked until the page is full, or, when few servers changed in
/// the time window, those few gathered and put in listing order.
fn indexed<'a>(
    site: &'a Site,
    now: DateTime<Utc>,
    ix: &ServerIndex,
    f: &Plain,
    marker: Option<&str>,
    limit: usize,
) -> ApiResult<Vec<Row<'a>>> {
    let list = ix.list(f.project, f.deleted);
    let after = match marker {
        Some(m) => Some(
            ix.existing(m)
                .map(|p| ix.rank[p as usize])
                .ok_or_else(|| bad_request(format!("marker [{m}] not found")))?,
        ),
        None => None,
    };
    let start = after.map_or(0, |r| list.partition_point(|&p| ix.rank[p as usize] <= r));
    let rest = &list[start..];
    let page: Vec<u32> = if f.since.is_none() && f.before.is_none() {
        rest.iter().take(limit).copied().collect()
    } else {
        let changed = ix.changed(f.since, f.before);
        if gather_is_cheaper(changed.len(), rest.len(), list.len(), limit) {
            let mut ranks: Vec<u32> = changed
                .iter()
                .map(|(_, r)| *r)
                .filter(|r| after.is_none_or(|a| *r > a))
                .filter(|r| {
                    let p = ix.order.all[*r as usize] as usize;
                    f.project.is_none_or(|pr| site.servers[p].project_id == pr)
                        && f.deleted.is_none_or(|d| ix.deleted[p] == d)
                })
                .collect();
            ranks.sort_unstable();
            ranks.truncate(limit);
            ranks.into_iter().map(|r| ix.order.all[r as usize]).collect()
        } else {
            let in_window = |p: &u32| {
                let u = ix.updated[*p as usize];
                f.since.is_none_or(|t| u >= t) && f.before.is_none_or(|t| u <= t)
            };
            rest.iter().copied().filter(in_window).take(limit).collect()
        }
    };
    Ok(page
        .into_iter()
        .filter_map(|p| {
            let v = site.servers.get(p as usize)?.view_at(now)?;
            Some(Row { pos: p as usize, v })
        })
        .collect())
}

/// Whether sorting the `changed` servers costs less than walking the list
/// (`rest` of `len` after the marker) until `limit` of them are found.
fn gather_is_cheaper(changed: usize, rest: usize, len: usize, limit: usize) -> bool {
    let gather = changed.saturating_mul(1 + changed.max(1).ilog2() as usize);
    let walk = rest.min((limit + 1).saturating_mul(len) / changed.max(1));
    gather < walk
}

async fn list_any(state: Arc<AppState>, ctx: Ctx, raw: Option<String>, detail: bool) -> ApiResult<Response> {
    let q = Query::parse(raw.as_deref());
    let now = state.now();
    let site = state.site.read().unwrap();
    let listings = state.listings(&site, now);
    let ix = listings.servers(&site);
    let b = base(&state);
    let rows = select(&site, now, &ctx, &q, detail, ix)?;
    let items: Vec<Arc<str>> = if detail {
        rendered(&site, now, &rows, ix, listings.servers_json(), &ctx, &b)
    } else {
        rows.iter()
            .map(|r| {
                let id = &r.v.server.id;
                json!({"id": id, "name": r.v.server.name, "links": [
                    {"rel": "self", "href": format!("{b}/v2.1/servers/{id}")},
                    {"rel": "bookmark", "href": format!("{b}/servers/{id}")},
                ]})
                .to_string()
                .into()
            })
            .collect()
    };
    // What serializing `{"servers": [...], "servers_links": [...]}` gives.
    let mut body = String::with_capacity(items.iter().map(|i| i.len() + 1).sum::<usize>() + 64);
    body.push_str("{\"servers\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(item);
    }
    body.push(']');
    let coll = if detail { "servers/detail" } else { "servers" };
    if let Some(l) = q.collection_links(&b, coll, rows.len(), rows.last().map(|r| r.v.server.id.as_str())) {
        body.push_str(",\"servers_links\":");
        body.push_str(&l.to_string());
    }
    body.push('}');
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response())
}

/// The JSON of each row as [`render`] makes it, from the view's rendered
/// servers where this variant (microversion, admin) was rendered before;
/// the others are rendered and kept. Not kept when the index cannot tell
/// ids apart (the lookups then scan).
fn rendered(
    site: &Site,
    now: DateTime<Utc>,
    rows: &[Row],
    ix: &ServerIndex,
    cache: &Rendered,
    ctx: &Ctx,
    base: &str,
) -> Vec<Arc<str>> {
    let variant = (u64::from(ctx.mv) << 1) | u64::from(ctx.is_admin());
    let position = |r: &Row| u32::try_from(r.pos).ok();
    let mut have = if ix.unique_ids && rows.iter().all(|r| position(r).is_some()) {
        cache.get_many(rows.iter().filter_map(position), variant)
    } else {
        vec![None; rows.len()]
    };
    let missing: HashSet<&str> =
        rows.iter().zip(&have).filter(|(_, h)| h.is_none()).map(|(r, _)| r.v.server.id.as_str()).collect();
    if !missing.is_empty() {
        let idx = Index::build(site, now, &missing, ix);
        let mut fresh = Vec::with_capacity(missing.len());
        for (r, h) in rows.iter().zip(have.iter_mut()).filter(|(_, h)| h.is_none()) {
            let json: Arc<str> = render(&r.v, r.pos + 1, &idx, site, ctx, base).to_string().into();
            fresh.push((r.pos, json.clone()));
            *h = Some(json);
        }
        if ix.unique_ids {
            cache.put(fresh.into_iter().filter_map(|(p, j)| Some((u32::try_from(p).ok()?, j))), variant);
        }
    }
    have.into_iter().flatten().collect()
}

/// `GET /servers`
pub async fn list(State(state): State<Arc<AppState>>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Response> {
    list_any(state, ctx, q, false).await
}

/// `GET /servers/detail`
pub async fn list_detail(State(state): State<Arc<AppState>>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Response> {
    list_any(state, ctx, q, true).await
}

/// The server `id` as the token may see it at `now` (404 otherwise); with
/// `read_deleted` a deleted server is found too.
fn lookup<'a>(
    site: &'a Site,
    ctx: &Ctx,
    id: &str,
    now: DateTime<Utc>,
    read_deleted: bool,
) -> ApiResult<ServerView<'a>> {
    visible(site.server(id), ctx, id, now, read_deleted)
}

/// The first server with this id and its position: from the index's id map
/// when ids are unique, else by scanning.
fn find<'a>(site: &'a Site, ix: &ServerIndex, id: &str) -> Option<(usize, &'a Server)> {
    if ix.unique_ids {
        let p = *ix.first.get(id)? as usize;
        site.servers.get(p).map(|s| (p, s))
    } else {
        site.servers.iter().enumerate().find(|(_, s)| s.id == id)
    }
}

/// The server found for `id` as the token may see it at `now` (404 otherwise).
fn visible<'a>(
    found: Option<&'a Server>,
    ctx: &Ctx,
    id: &str,
    now: DateTime<Utc>,
    read_deleted: bool,
) -> ApiResult<ServerView<'a>> {
    let v = found.and_then(|s| s.view_at(now)).ok_or_else(|| not_found(id))?;
    if (v.deleted && !read_deleted) || !(ctx.is_admin() || ctx.token.project_id() == Some(v.server.project_id.as_str()))
    {
        return Err(not_found(id));
    }
    Ok(v)
}

/// `GET /servers/{id}`
pub async fn show(State(state): State<Arc<AppState>>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let now = state.now();
    let site = state.site.read().unwrap();
    let listings = state.listings(&site, now);
    let ix = listings.servers(&site);
    let found = find(&site, ix, &id);
    let v = visible(found.map(|(_, s)| s), &ctx, &id, now, false)?;
    let ids = HashSet::from([v.server.id.as_str()]);
    let idx = Index::build(&site, now, &ids, ix);
    // Nova's internal instance id stands in as the server's position + 1.
    let number = found.map_or(0, |(p, _)| p + 1);
    let mut server = render(&v, number, &idx, &site, &ctx, &base(&state));
    if ctx.at_least(71) {
        // 2.71+: the server's groups, on show only (not in listings); the sim has no server groups.
        server["server_groups"] = json!([]);
    }
    Ok(Json(json!({ "server": server })))
}

// ------------------------------------------------------- instance actions

/// Statuses an action passes through before its final one: a later event
/// with the same action name continues it (BUILD → ACTIVE is one `create`).
const TRANSITIONAL: &[&str] = &["BUILD", "RESIZE", "REBOOT", "HARD_REBOOT", "REBUILD", "MIGRATING", "SHELVED"];

pub struct Action<'a> {
    pub name: &'a str,
    pub request_id: String,
    pub start: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub events: Vec<&'a ServerEvent>,
}

/// The server's instance actions up to `now`, oldest first.
pub fn actions_of(s: &Server, now: DateTime<Utc>) -> Vec<Action<'_>> {
    let mut out: Vec<Action> = Vec::new();
    for (i, e) in s.events.iter().enumerate().filter(|(_, e)| e.at <= now) {
        if let Some(last) = out.last_mut() {
            let prev = last.events.last().unwrap();
            if prev.action == e.action && TRANSITIONAL.contains(&prev.status.as_str()) {
                last.events.push(e);
                last.updated = e.at;
                continue;
            }
        }
        out.push(Action {
            name: &e.action,
            request_id: format!("req-{}", stable_uuid(&[&s.id, &i.to_string()])),
            start: e.at,
            updated: e.at,
            events: vec![e],
        });
    }
    out
}

fn event_name(action: &str) -> &'static str {
    match action {
        "create" => "compute__do_build_and_run_instance",
        "stop" => "compute_stop_instance",
        "start" => "compute_start_instance",
        "suspend" => "compute_suspend_instance",
        "resume" => "compute_resume_instance",
        "pause" => "compute_pause_instance",
        "unpause" => "compute_unpause_instance",
        "shelve" => "compute_shelve_instance",
        "shelveOffload" => "compute_shelve_offload_instance",
        "unshelve" => "compute_unshelve_instance",
        "resize" | "migrate" => "compute_finish_resize",
        "confirmResize" => "compute_confirm_resize",
        "revertResize" => "compute_revert_resize",
        "reboot" => "compute_reboot_instance",
        "rebuild" => "compute_rebuild_instance",
        "delete" => "compute_terminate_instance",
        "rescue" => "compute_rescue_instance",
        "unrescue" => "compute_unrescue_instance",
        _ => "compute_instance_action",
    }
}

fn action_json(a: &Action, s: &Server, ctx: &Ctx) -> Value {
    let mut v = json!({
        "action": a.name,
        "instance_uuid": s.id,
        "request_id": a.request_id,
        "user_id": s.user_id,
        "project_id": s.project_id,
        "start_time": naive_us(a.start),
        "message": null,
    });
    if ctx.at_least(58) {
        v["updated_at"] = json!(naive_us(a.updated));
    }
    v
}

/// `GET /servers/{id}/os-instance-actions`
pub async fn instance_actions(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let q = Query::parse(raw.as_deref());
    let now = state.now();
    let site = state.site.read().unwrap();
    let listings = state.listings(&site, now);
    let found = find(&site, listings.servers(&site), &id).map(|(_, s)| s);
    let v = visible(found, &ctx, &id, now, ctx.at_least(21))?;
    let s = v.server;
    let mut actions = actions_of(s, now);
    actions.reverse(); // newest first
    if !ctx.at_least(58) {
        let list: Vec<Value> = actions.iter().map(|a| action_json(a, s, &ctx)).collect();
        return Ok(Json(json!({"instanceActions": list})));
    }
    let time = |k: &str| -> ApiResult<Option<DateTime<Utc>>> {
        q.get(k)
            .map(|t| {
                parse_isotime(t).ok_or_else(|| {
                    bad_request(format!(
                        "Invalid input for query parameters {k}. Value: {t}. '{t}' is not a 'date-time'"
                    ))
                })
            })
            .transpose()
    };
    let since = time("changes-since")?;
    let before = if ctx.at_least(66) { time("changes-before")? } else { None };
    if let (Some(a), Some(b)) = (since, before)
        && b < a
    {
        return Err(bad_request("The value of changes-since must be less than or equal to changes-before."));
    }
    let (limit, marker) = q.limit_marker()?;
    if let Some(m) = &marker {
        let pos = actions
            .iter()
            .position(|a| &a.request_id == m)
            .ok_or_else(|| bad_request(format!("Marker {m} could not be found.")))?;
        actions.drain(..=pos);
    }
    actions.retain(|a| since.is_none_or(|t| a.updated >= t) && before.is_none_or(|t| a.updated <= t));
    actions.truncate(limit);
    let list: Vec<Value> = actions.iter().map(|a| action_json(a, s, &ctx)).collect();
    let mut body = json!({"instanceActions": list});
    let coll = format!("servers/{}/os-instance-actions", s.id);
    if let Some(l) =
        q.collection_links(&base(&state), &coll, actions.len(), actions.last().map(|a| a.request_id.as_str()))
    {
        body["links"] = l;
    }
    Ok(Json(body))
}

/// `GET /servers/{id}/os-instance-actions/{request_id}`
pub async fn instance_action(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path((id, req)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let now = state.now();
    let site = state.site.read().unwrap();
    let listings = state.listings(&site, now);
    let found = find(&site, listings.servers(&site), &id).map(|(_, s)| s);
    let v = visible(found, &ctx, &id, now, ctx.at_least(21))?;
    let s = v.server;
    let actions = actions_of(s, now);
    let a = actions
        .iter()
        .find(|a| a.request_id == req)
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("Action {req} not found")))?;
    let mut body = action_json(a, s, &ctx);
    let admin = ctx.is_admin();
    if admin || ctx.at_least(51) {
        let host = host_name(s);
        let last = a.events.last().unwrap();
        let mut ev = json!({
            "event": event_name(a.name),
            "start_time": naive_us(a.start),
            "finish_time": naive_us(last.at),
            "result": if last.status == "ERROR" { "Error" } else { "Success" },
        });
        if admin {
            ev["traceback"] = Value::Null;
            if ctx.at_least(62) {
                ev["host"] = json!(host);
            }
        }
        if ctx.at_least(62) {
            ev["hostId"] = json!(super::host_id(&host, &s.project_id));
        }
        body["events"] = json!([ev]);
    }
    Ok(Json(json!({"instanceAction": body})))
}

// -------------------------------------------------------------- lifecycle

/// Appends an event at `at`, dropping pending (future) transitions first.
fn push_event(s: &mut Server, now: DateTime<Utc>, at: DateTime<Utc>, action: &str, status: &str) {
    s.events.retain(|e| e.at <= now);
    if s.launched_at.is_some_and(|l| l > now) {
        s.launched_at = None;
    }
    s.events.push(ServerEvent { at, action: action.into(), status: status.into(), flavor: None });
}

/// `POST /servers`
pub async fn create(State(state): State<Arc<AppState>>, ctx: Ctx, body: axum::body::Bytes) -> ApiResult<Response> {
    let body: Value = serde_json::from_slice(&body).map_err(|e| bad_request(format!("Malformed request body: {e}")))?;
    let srv = body.get("server").filter(|v| v.is_object()).ok_or_else(|| {
        bad_request("Invalid input for field/attribute server. Value: None. 'server' is a required property")
    })?;
    let name = srv
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request("Invalid input for field/attribute server. 'name' is a required property"))?;
    if name.trim().is_empty() || name.len() > 255 {
        return Err(bad_request(format!("Invalid input for field/attribute name. Value: {name}.")));
    }
    let flavor_ref = srv
        .get("flavorRef")
        .and_then(|v| v.as_str().map(String::from).or_else(|| v.as_i64().map(|n| n.to_string())))
        .ok_or_else(|| bad_request("Invalid input for field/attribute server. 'flavorRef' is a required property"))?;
    let flavor_id = flavor_ref.rsplit('/').next().unwrap_or_default().to_string();
    let project = ctx.token.project_id().map(String::from).ok_or_else(|| policy("os_compute_api:servers:create"))?;
    let now = state.now();
    let mut site = state.site.write().unwrap();

    let flavor = site
        .flavor(&flavor_id)
        .filter(|f| f.is_public || f.access.contains(&project) || ctx.is_admin())
        .cloned()
        .ok_or_else(|| bad_request(format!("Flavor {flavor_id} could not be found.")))?;
    let image_ref = srv.get("imageRef").and_then(Value::as_str).unwrap_or("");
    let bdms = srv.get("block_device_mapping_v2").and_then(Value::as_array).cloned().unwrap_or_default();
    let volumes_attached = boot_volumes(&site, &bdms, &project, &ctx, now)?;
    let image_id = boot_image(&site, image_ref, &bdms, &flavor, &project, &ctx)?;

    check_quota(&site, &project, &flavor, now)?;

    let nets = requested_networks(&site, srv, &project, &ctx, now)?;

    let id = uuid::Uuid::new_v4().to_string();
    let launch = now + Duration::seconds(2);
    let fixed_ips = plug_ports(&mut site, &id, &nets, &project, now)?;
    let metadata: BTreeMap<String, String> = srv
        .get("metadata")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter().map(|(k, v)| (k.clone(), v.as_str().map(String::from).unwrap_or_else(|| v.to_string()))).collect()
        })
        .unwrap_or_default();
    let host = format!("compute-{:03}", (now.timestamp_subsec_nanos() / 1000) % 4);
    let never_active = site.faults.boot_never_active;
    site.servers.push(Server {
        id: id.clone(),
        name: name.to_string(),
        project_id: project.clone(),
        user_id: ctx.token.user_id.clone(),
        flavor,
        image_id,
        created: now,
        launched_at: (!never_active).then_some(launch),
        events: vec![
            ServerEvent { at: now, action: "create".into(), status: "BUILD".into(), flavor: None },
            ServerEvent { at: launch, action: "create".into(), status: "ACTIVE".into(), flavor: None },
        ]
        .into_iter()
        .filter(|e| !(never_active && e.status == "ACTIVE"))
        .collect(),
        key_name: srv.get("key_name").and_then(Value::as_str).map(String::from),
        availability_zone: srv.get("availability_zone").and_then(Value::as_str).unwrap_or("nova").to_string(),
        host_id: super::host_id(&host, &project),
        fixed_ips,
        metadata,
        volumes_attached,
    });
    let b = base(&state);
    let admin_pass: String = stable_uuid(&[&id, "pass"]).replace('-', "")[..12].to_string();
    let resp = json!({"server": {
        "id": id,
        "links": [
            {"rel": "self", "href": format!("{b}/v2.1/servers/{id}")},
            {"rel": "bookmark", "href": format!("{b}/servers/{id}")},
        ],
        "OS-DCF:diskConfig": "MANUAL",
        "security_groups": srv.get("security_groups").cloned().unwrap_or(json!([{"name": "default"}])),
        "adminPass": admin_pass,
    }});
    let mut r = (StatusCode::ACCEPTED, Json(resp)).into_response();
    if let Ok(h) = HeaderValue::from_str(&format!("{b}/v2.1/servers/{id}")) {
        r.headers_mut().insert(header::LOCATION, h);
    }
    Ok(r)
}

/// The volumes of the block device mapping (`source_type: volume`), each one
/// the project (or an admin) can see at `now`; a missing one is a 400.
fn boot_volumes(site: &Site, bdms: &[Value], project: &str, ctx: &Ctx, now: DateTime<Utc>) -> ApiResult<Vec<String>> {
    let mut volumes_attached = Vec::new();
    for b in bdms {
        if b.get("source_type").and_then(Value::as_str) == Some("volume") {
            let vid = b.get("uuid").and_then(Value::as_str).unwrap_or_default();
            let vol = site
                .volumes
                .iter()
                .find(|v| v.id == vid && v.visible_at(now) && (v.project_id == project || ctx.is_admin()));
            if vol.is_none() {
                return Err(bad_request(format!("Block Device Mapping is Invalid: failed to get volume {vid}.")));
            }
            volumes_attached.push(vid.to_string());
        }
    }
    Ok(volumes_attached)
}

/// The image a server boots from: `imageRef` (visible to the project, active,
/// fitting the flavor's disk and RAM), or None for a boot-from-volume request
/// whose mapping has a `boot_index` 0.
fn boot_image(
    site: &Site,
    image_ref: &str,
    bdms: &[Value],
    flavor: &Flavor,
    project: &str,
    ctx: &Ctx,
) -> ApiResult<Option<String>> {
    if image_ref.is_empty() {
        let boots =
            bdms.iter().any(|b| b.get("boot_index").is_some_and(|i| i.as_i64() == Some(0) || i.as_str() == Some("0")));
        if !boots {
            return Err(bad_request(
                "Block Device Mapping is Invalid: Boot sequence for the instance and image/block device mapping combination is not valid.",
            ));
        }
        Ok(None)
    } else {
        let iid = image_ref.rsplit('/').next().unwrap_or_default();
        let img = site
            .image(iid)
            .filter(|i| {
                ctx.is_admin()
                    || i.owner == project
                    || matches!(i.visibility.as_str(), "public" | "community")
                    || i.members.iter().any(|(p, st)| p == project && st == "accepted")
            })
            .ok_or_else(|| bad_request("Can not find requested image"))?;
        if img.status != "active" {
            return Err(bad_request(format!("Image {iid} is not active.")));
        }
        if flavor.disk > 0 && img.min_disk > flavor.disk {
            return Err(bad_request("Flavor's disk is too small for requested image."));
        }
        if img.min_ram > flavor.ram {
            return Err(bad_request("Flavor's memory is too small for requested image."));
        }
        Ok(Some(iid.to_string()))
    }
}

/// Quota, as `TooManyInstances`: one more instance of `flavor` must fit the
/// project's instances, cores and RAM limits (a negative limit is unlimited).
fn check_quota(site: &Site, project: &str, flavor: &Flavor, now: DateTime<Utc>) -> ApiResult<()> {
    let quota = site.quotas.get(project).cloned().unwrap_or_default();
    let (n, c, r) = super::misc::usage_of(site, project, now);
    for (res, used, want, limit) in [
        ("instances", n, 1, quota.instances),
        ("cores", c, flavor.vcpus as i64, quota.cores),
        ("ram", r, flavor.ram as i64, quota.ram),
    ] {
        if limit >= 0 && used + want > limit {
            return Err(err(
                StatusCode::FORBIDDEN,
                format!("Quota exceeded for {res}: Requested {want}, but already used {used} of {limit} {res}"),
            ));
        }
    }
    Ok(())
}

/// The networks a new server is plugged into: the listed ones (by network, or
/// by port), none, or with `auto` (before 2.37 also when absent) the
/// project's own private network, else a shared one.
fn requested_networks(
    site: &Site,
    srv: &Value,
    project: &str,
    ctx: &Ctx,
    now: DateTime<Utc>,
) -> ApiResult<Vec<String>> {
    let visible_net = |site: &Site, id: &str| {
        site.networks
            .iter()
            .any(|n| n.id == id && !n.external && (n.shared || n.project_id == project || ctx.is_admin()))
    };
    Ok(match srv.get("networks") {
        Some(Value::String(s)) if s == "none" => vec![],
        Some(Value::Array(list)) => {
            let mut ids = Vec::new();
            for n in list {
                if let Some(u) = n.get("uuid").and_then(Value::as_str) {
                    if !visible_net(site, u) {
                        return Err(bad_request(format!("Network {u} could not be found.")));
                    }
                    ids.push(u.to_string());
                } else if let Some(p) = n.get("port").and_then(Value::as_str) {
                    let port = site
                        .ports
                        .iter()
                        .find(|x| x.id == p && x.visible_at(now))
                        .ok_or_else(|| err(StatusCode::BAD_REQUEST, format!("Port {p} could not be found.")))?;
                    ids.push(port.network_id.clone());
                } else {
                    return Err(bad_request("Invalid input for field/attribute networks."));
                }
            }
            ids
        }
        None if ctx.at_least(37) => {
            return Err(bad_request("Invalid input for field/attribute server. 'networks' is a required property"));
        }
        Some(Value::String(s)) if s != "auto" => {
            return Err(bad_request(format!("Invalid input for field/attribute networks. Value: {s}.")));
        }
        _ => {
            let own: Vec<_> = site.networks.iter().filter(|n| !n.external && n.project_id == project).collect();
            let candidates =
                if own.is_empty() { site.networks.iter().filter(|n| !n.external && n.shared).collect() } else { own };
            match candidates.as_slice() {
                [] => vec![],
                [one] => vec![one.id.clone()],
                many if srv.get("networks").is_some() => vec![many[0].id.clone()],
                _ => {
                    return Err(err(
                        StatusCode::CONFLICT,
                        "Multiple possible networks found, use a Network ID to be more specific.",
                    ));
                }
            }
        }
    })
}

/// One compute port per network for server `id`, each with the network's
/// first free address; a full network is a 409.
fn plug_ports(
    site: &mut Site,
    id: &str,
    nets: &[String],
    project: &str,
    now: DateTime<Utc>,
) -> ApiResult<Vec<(String, String, u8)>> {
    let mut fixed_ips = Vec::new();
    for nid in nets {
        let net = site.networks.iter().find(|n| &n.id == nid).cloned().unwrap();
        let Some(addr) = next_free_ip(site, &net) else {
            return Err(err(StatusCode::CONFLICT, format!("No more IP addresses available on network {nid}.")));
        };
        let h = stable_uuid(&[id, nid]);
        site.ports.push(crate::model::Port {
            id: uuid::Uuid::new_v4().to_string(),
            name: String::new(),
            project_id: project.to_string(),
            network_id: nid.to_string(),
            device_id: id.to_string(),
            device_owner: "compute:nova".into(),
            mac_address: format!("fa:16:3e:{}:{}:{}", &h[0..2], &h[2..4], &h[4..6]),
            fixed_ips: vec![addr.clone()],
            created_at: now,
            deleted_at: None,
        });
        fixed_ips.push((net.name.clone(), addr, 4));
    }
    Ok(fixed_ips)
}

/// The first free IPv4 host address in the network's first v4 subnet.
fn next_free_ip(site: &Site, net: &crate::model::Network) -> Option<String> {
    let cidr = net.cidrs.iter().find(|c| !c.contains(':'))?;
    let (addr, len) = cidr.split_once('/')?;
    let base: std::net::Ipv4Addr = addr.parse().ok()?;
    let len: u32 = len.parse().ok()?;
    let size = 1u64 << (32 - len.min(30));
    let used: HashSet<&str> = site
        .ports
        .iter()
        .filter(|p| p.network_id == net.id && p.deleted_at.is_none())
        .flat_map(|p| p.fixed_ips.iter().map(String::as_str))
        .chain(site.servers.iter().flat_map(|s| s.fixed_ips.iter().filter(|f| f.0 == net.name).map(|f| f.1.as_str())))
        .collect();
    let start = u32::from(base);
    (10..size - 1).map(|i| std::net::Ipv4Addr::from(start + i as u32).to_string()).find(|a| !used.contains(a.as_str()))
}

/// `DELETE /servers/{id}` — DELETED a second later; its ports go, its
/// floating IPs and volumes are detached.
pub async fn delete(State(state): State<Arc<AppState>>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let now = state.now();
    let mut site = state.site.write().unwrap();
    lookup(&site, &ctx, &id, now, false)?;
    let at = now + Duration::seconds(1);
    let s = site.servers.iter_mut().find(|s| s.id == id).unwrap();
    push_event(s, now, at, "delete", "DELETED");
    let mut ports = Vec::new();
    for p in site.ports.iter_mut().filter(|p| p.device_id == id && p.deleted_at.is_none()) {
        p.deleted_at = Some(at);
        ports.push(p.id.clone());
    }
    for f in site.floating_ips.iter_mut() {
        for a in f.associations.iter_mut().filter(|a| ports.contains(&a.port_id) && a.to.is_none_or(|t| t > at)) {
            a.to = Some(at);
        }
    }
    for v in site.volumes.iter_mut() {
        for a in v.attachments.iter_mut().filter(|a| a.server_id == id && a.detached_at.is_none_or(|d| d > at)) {
            a.detached_at = Some(at);
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /servers/{id}/action` — os-stop, os-start, suspend, resume, pause,
/// unpause, shelve, shelveOffload, unshelve, reboot.
pub async fn action(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let body: Value = serde_json::from_slice(&body).map_err(|e| bad_request(format!("Malformed request body: {e}")))?;
    let key =
        body.as_object().and_then(|o| o.keys().next().cloned()).ok_or_else(|| bad_request("Malformed request body"))?;
    // (action name, allowed from, new status)
    let (name, from, to): (&str, &[&str], &str) = match key.as_str() {
        "os-stop" => ("stop", &["ACTIVE", "ERROR"], "SHUTOFF"),
        "os-start" => ("start", &["SHUTOFF"], "ACTIVE"),
        "suspend" => ("suspend", &["ACTIVE"], "SUSPENDED"),
        "resume" => ("resume", &["SUSPENDED"], "ACTIVE"),
        "pause" => ("pause", &["ACTIVE"], "PAUSED"),
        "unpause" => ("unpause", &["PAUSED"], "ACTIVE"),
        "shelve" => ("shelve", &["ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED"], "SHELVED_OFFLOADED"),
        "shelveOffload" => ("shelveOffload", &["SHELVED"], "SHELVED_OFFLOADED"),
        "unshelve" => ("unshelve", &["SHELVED", "SHELVED_OFFLOADED"], "ACTIVE"),
        "reboot" => ("reboot", &["ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED", "ERROR"], "ACTIVE"),
        other => return Err(bad_request(format!("There is no such action: {other}"))),
    };
    let now = state.now();
    let mut site = state.site.write().unwrap();
    let v = lookup(&site, &ctx, &id, now, false)?;
    if !from.contains(&v.status) {
        let (vm, task, _) = states(v.status);
        let (attr, st) = match task {
            Some(t) => ("task_state", t),
            None => ("vm_state", vm),
        };
        return Err(err(StatusCode::CONFLICT, format!("Cannot '{key}' instance {id} while it is in {attr} {st}")));
    }
    let s = site.servers.iter_mut().find(|s| s.id == id).unwrap();
    push_event(s, now, now, name, to);
    Ok(StatusCode::ACCEPTED)
}
