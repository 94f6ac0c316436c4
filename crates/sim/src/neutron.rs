//! The simulated Neutron v2.0 API (mounted at `/network`): versions,
//! extensions, floating IPs, ports, networks, subnets (derived from network
//! CIDRs), routers (derived from floating IP associations) and quotas.
//!
//! Owns Neutron's read rules: project-only visibility for non-admins,
//! attribute filters (validated), `fields`, `sort_key`/`sort_dir`, and
//! `limit`/`marker`/`page_reverse` paging with `<collection>_links`.
//! Floating IPs and ports listed by id, filtered at most by project, are
//! paged from the view's [`NetworkIndex`]; other listings sort what the
//! caller sees.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::auth;
use crate::cinder::stable_uuid;
use crate::error::{ApiError, ApiResult};
use crate::index::NetworkIndex;
use crate::model::{FloatingIp, Network, NetworkQuota, Port, Site};
use crate::state::{AppState, Service, TokenInfo};

const SVC: Service = Service::Network;

/// Routes of this service, mounted under `Service::Network.prefix()`.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(versions))
        .route("/v2.0", get(resources))
        .route("/v2.0/", get(resources))
        .route("/v2.0/{*rest}", get(dispatch))
        .fallback(|| async { ApiError::not_found(SVC, "The resource could not be found.").into_response() })
}

fn base(state: &AppState) -> String {
    format!("{}{}", state.base_url, SVC.prefix())
}

/// `GET /network`
pub(crate) async fn versions(State(state): State<Arc<AppState>>) -> Response {
    axum::Json(json!({"versions": [{
        "id": "v2.0", "status": "CURRENT",
        "links": [{"href": format!("{}/v2.0/", base(&state)), "rel": "self"}]
    }]}))
    .into_response()
}

const COLLECTIONS: &[(&str, &str)] = &[
    ("subnet", "subnets"),
    ("network", "networks"),
    ("port", "ports"),
    ("floatingip", "floatingips"),
    ("router", "routers"),
    ("subnetpool", "subnetpools"),
    ("security_group", "security-groups"),
    ("security_group_rule", "security-group-rules"),
    ("quota", "quotas"),
];

/// `GET /network/v2.0/`
async fn resources(State(state): State<Arc<AppState>>) -> Response {
    let b = base(&state);
    let list: Vec<Value> = COLLECTIONS
        .iter()
        .map(|(name, coll)| {
            json!({"name": name, "collection": coll, "links": [{"href": format!("{b}/v2.0/{coll}"), "rel": "self"}]})
        })
        .collect();
    axum::Json(json!({"resources": list})).into_response()
}

/// Extensions a ML2/OVN deployment lists (alias, name).
const EXTENSIONS: &[(&str, &str)] = &[
    ("address-scope", "Address scope"),
    ("agent", "agent"),
    ("allowed-address-pairs", "Allowed Address Pairs"),
    ("auto-allocated-topology", "Auto Allocated Topology Services"),
    ("availability_zone", "Availability Zone"),
    ("binding", "Port Binding"),
    ("default-subnetpools", "Default Subnetpools"),
    ("dns-integration", "DNS Integration"),
    ("external-net", "Neutron external network"),
    ("extra_dhcp_opt", "Neutron Extra DHCP options"),
    ("extraroute", "Neutron Extra Route"),
    ("filter-validation", "Filter parameters validation"),
    ("fip-port-details", "Floating IP Port Details Extension"),
    ("floatingip-pools", "Floating IP Pools Extension"),
    ("ip-substring-filtering", "IP address substring filtering"),
    ("l3_agent_scheduler", "L3 Agent Scheduler"),
    ("multi-provider", "Multi Provider Network"),
    ("net-mtu", "Network MTU"),
    ("network-ip-availability", "Network IP Availability"),
    ("pagination", "Pagination support"),
    ("port-security", "Port Security"),
    ("project-id", "project_id field enabled"),
    ("provider", "Provider Network"),
    ("qos", "Quality of Service"),
    ("quota_details", "Quota details management support"),
    ("quotas", "Quota management support"),
    ("rbac-policies", "RBAC Policies"),
    ("revision-if-match", "If-Match constraints based on revision_number"),
    ("router", "Neutron L3 Router"),
    ("security-group", "security-group"),
    ("sorting", "Sorting support"),
    ("standard-attr-description", "standard-attr-description"),
    ("standard-attr-revisions", "Resource revision numbers"),
    (
        "standard-attr-tag",
        "Tag support for resources with standard attribute: port, subnet, subnetpool, network, router, floatingip, policy, security_group, trunk, network_segment_range",
    ),
    ("standard-attr-timestamp", "Resource timestamps"),
    ("subnet_allocation", "Subnet Allocation"),
    ("subnet-service-types", "Subnet service types"),
];

fn render_extension(alias: &str, name: &str) -> Value {
    json!({"alias": alias, "name": name, "description": name, "updated": "2023-01-01T10:00:00-00:00", "links": []})
}

/// Who is asking and what they asked.
struct Ctx {
    token: TokenInfo,
    /// Admin or system reader: sees every project's objects.
    all: bool,
    admin: bool,
    query: Vec<(String, String)>,
    /// `{base}/v2.0/<path>` of the request, for pagination links.
    url: String,
    now: DateTime<Utc>,
}

impl Ctx {
    fn param(&self, k: &str) -> Option<&str> {
        self.query.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }
    fn sees(&self, project: &str) -> bool {
        self.all || self.token.project_id() == Some(project)
    }
}

async fn dispatch(
    State(state): State<Arc<AppState>>,
    Path(rest): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    match route(&state, &rest, raw, &headers).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn route(state: &AppState, rest: &str, raw: Option<String>, headers: &HeaderMap) -> ApiResult<Value> {
    let token = auth::authenticate(state, SVC, headers).await?;
    let path = rest.trim_end_matches('/').trim_end_matches(".json");
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let ctx = Ctx {
        all: auth::can_list_all_projects(&token),
        admin: token.is_admin(),
        token,
        query: url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect(),
        url: format!("{}/v2.0/{path}", base(state)),
        now: state.now(),
    };
    let site = state.site.read().unwrap_or_else(|e| e.into_inner());
    let listings = state.listings(&site, ctx.now);
    let net = listings.network(&site);
    let idx = std::cell::OnceCell::new();
    let idx = || idx.get_or_init(|| Index::new(&site, net, ctx.now));
    let fip = |p: u32| &site.floating_ips[p as usize];
    let port = |p: u32| &site.ports[p as usize];
    let find_fip = |id: &str| net.fip_by_id.get(id).map(|p| fip(*p)).filter(|f| ctx.sees(&f.project_id));
    let find_port = |id: &str| net.port_by_id.get(id).map(|p| port(*p)).filter(|p| ctx.sees(&p.project_id));
    let fips_of = |p: &str| net.project_fips.get(p).map_or(&[][..], Vec::as_slice);
    let ports_of = |p: &str| net.project_ports.get(p).map_or(&[][..], Vec::as_slice);
    let own = ctx.token.project_id();
    match segs.as_slice() {
        ["extensions"] => {
            Ok(json!({"extensions": EXTENSIONS.iter().map(|(a, n)| render_extension(a, n)).collect::<Vec<_>>()}))
        }
        ["extensions", alias] => EXTENSIONS
            .iter()
            .find(|(a, _)| a == alias)
            .map(|(a, n)| json!({"extension": render_extension(a, n)}))
            .ok_or_else(|| ApiError::not_found(SVC, format!("Extension with alias {alias} does not exist"))),
        ["floatingips"] if net.unique_ids => {
            let seen = if ctx.all { &net.fips } else { own.map_or(&[][..], fips_of) };
            let by_id = ById { seen, project: &fips_of, get: &fip, find: &find_fip };
            list(&ctx, &FIP, Items::ById(by_id), &|f| fip_json(&ctx, idx(), f))
        }
        ["floatingips"] => list(&ctx, &FIP, Items::All(fips(&ctx, &site)), &|f| fip_json(&ctx, idx(), f)),
        ["floatingips", id] => {
            let f = fips(&ctx, &site).into_iter().find(|f| f.id == *id).ok_or_else(|| FIP.not_found(id))?;
            show(&ctx, "floatingip", fip_json(&ctx, idx(), f))
        }
        ["ports"] if net.unique_ids => {
            let seen = if ctx.all { &net.ports } else { own.map_or(&[][..], ports_of) };
            let by_id = ById { seen, project: &ports_of, get: &port, find: &find_port };
            list(&ctx, &PORT, Items::ById(by_id), &|p| port_json(&ctx, idx(), p))
        }
        ["ports"] => list(&ctx, &PORT, Items::All(ports(&ctx, &site)), &|p| port_json(&ctx, idx(), p)),
        ["ports", id] => {
            let p = ports(&ctx, &site).into_iter().find(|p| p.id == *id).ok_or_else(|| PORT.not_found(id))?;
            show(&ctx, "port", port_json(&ctx, idx(), p))
        }
        ["networks"] => list(&ctx, &NET, Items::All(networks(&ctx, &site)), &|n| network_json(&ctx, n)),
        ["networks", id] => {
            let n = networks(&ctx, &site).into_iter().find(|n| n.id == *id).ok_or_else(|| NET.not_found(id))?;
            show(&ctx, "network", network_json(&ctx, n))
        }
        ["subnets"] => list(&ctx, &SUBNET, Items::All(subnets(&ctx, &site)), &|s| subnet_json(s)),
        ["subnets", id] => {
            let s = subnets(&ctx, &site).into_iter().find(|s| s.id == *id).ok_or_else(|| SUBNET.not_found(id))?;
            show(&ctx, "subnet", subnet_json(&s))
        }
        ["routers"] => list(&ctx, &ROUTER, Items::All(routers(&ctx, &site)), &|r| router_json(r)),
        ["routers", id] => {
            let r = routers(&ctx, &site).into_iter().find(|r| r.id == *id).ok_or_else(|| ROUTER.not_found(id))?;
            show(&ctx, "router", router_json(&r))
        }
        ["security-groups"] => Ok(json!({"security_groups": []})),
        ["subnetpools"] => Ok(json!({"subnetpools": []})),
        ["quotas"] => {
            if !ctx.all {
                return Err(policy_denied("get_quota"));
            }
            let list: Vec<Value> = site
                .network_quotas
                .iter()
                .map(|(p, q)| {
                    let mut v = quota_json(q, None);
                    v["project_id"] = json!(p);
                    v["tenant_id"] = json!(p);
                    v
                })
                .collect();
            Ok(json!({"quotas": list}))
        }
        ["quotas", project] => quota(&ctx, &site, idx(), project, false, false),
        ["quotas", project, "details"] => quota(&ctx, &site, idx(), project, true, false),
        ["quotas", project, "default"] => quota(&ctx, &site, idx(), project, false, true),
        _ => Err(ApiError::not_found(SVC, "The resource could not be found.")),
    }
}

fn policy_denied(rule: &str) -> ApiError {
    ApiError::forbidden(SVC, format!("(rule:{rule}) is disallowed by policy")).neutron("PolicyNotAuthorized")
}

/// `{"<singular>": obj}`, honouring `fields`.
fn show(ctx: &Ctx, key: &str, obj: Value) -> ApiResult<Value> {
    let fields = fields(ctx);
    Ok(json!({key: select(obj, &fields)}))
}

// ---------------------------------------------------------------- lookups

/// Per-request lookup tables (visible ports by id from the view's index,
/// networks by id).
struct Index<'a> {
    site: &'a Site,
    ports: &'a HashMap<String, u32>,
    networks: HashMap<&'a str, &'a Network>,
}

impl<'a> Index<'a> {
    fn new(site: &'a Site, net: &'a NetworkIndex, now: DateTime<Utc>) -> Self {
        Index {
            site,
            ports: &net.port_by_id,
            networks: site.networks.iter().filter(|n| n.created_at <= now).map(|n| (n.id.as_str(), n)).collect(),
        }
    }
    fn port(&self, id: &str) -> Option<&'a Port> {
        self.ports.get(id).and_then(|p| self.site.ports.get(*p as usize))
    }
}

fn fips<'a>(ctx: &Ctx, site: &'a Site) -> Vec<&'a FloatingIp> {
    site.floating_ips.iter().filter(|f| f.visible_at(ctx.now) && ctx.sees(&f.project_id)).collect()
}

fn ports<'a>(ctx: &Ctx, site: &'a Site) -> Vec<&'a Port> {
    site.ports.iter().filter(|p| p.visible_at(ctx.now) && ctx.sees(&p.project_id)).collect()
}

/// Own, shared and external networks (Neutron's `get_network` policy).
fn networks<'a>(ctx: &Ctx, site: &'a Site) -> Vec<&'a Network> {
    site.networks
        .iter()
        .filter(|n| n.created_at <= ctx.now && (n.shared || n.external || ctx.sees(&n.project_id)))
        .collect()
}

/// A subnet derived from one of a network's CIDRs.
#[derive(Clone)]
struct Subnet {
    id: String,
    name: String,
    network_id: String,
    project_id: String,
    cidr: String,
    version: u8,
    /// (gateway, pool start, pool end)
    addresses: Option<(IpAddr, IpAddr, IpAddr)>,
    created_at: DateTime<Utc>,
}

fn subnet_id(network_id: &str, cidr: &str) -> String {
    stable_uuid(&["subnet", network_id, cidr])
}

fn net_subnets(n: &Network) -> Vec<Subnet> {
    n.cidrs
        .iter()
        .map(|c| {
            let parsed = parse_cidr(c);
            Subnet {
                id: subnet_id(&n.id, c),
                name: format!("{}-subnet-v{}", n.name, if matches!(parsed, Some((IpAddr::V6(_), _))) { 6 } else { 4 }),
                network_id: n.id.clone(),
                project_id: n.project_id.clone(),
                cidr: c.clone(),
                version: if matches!(parsed, Some((IpAddr::V6(_), _))) { 6 } else { 4 },
                addresses: parsed.and_then(|(ip, len)| pool(ip, len)),
                created_at: n.created_at,
            }
        })
        .collect()
}

/// Subnets of own and shared networks (`get_subnet`: owner or shared).
fn subnets(ctx: &Ctx, site: &Site) -> Vec<Subnet> {
    site.networks
        .iter()
        .filter(|n| n.created_at <= ctx.now && (n.shared || ctx.sees(&n.project_id)))
        .flat_map(net_subnets)
        .collect()
}

fn parse_cidr(c: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = c.split_once('/')?;
    Some((ip.parse().ok()?, len.parse().ok()?))
}

fn to_bits(ip: IpAddr) -> (u128, u32) {
    match ip {
        IpAddr::V4(v) => (u32::from(v) as u128, 32),
        IpAddr::V6(v) => (u128::from(v), 128),
    }
}

fn from_bits(bits: u128, width: u32) -> IpAddr {
    if width == 32 { IpAddr::V4((bits as u32).into()) } else { IpAddr::V6(bits.into()) }
}

/// Gateway (first host), allocation pool start and end of a CIDR.
fn pool(ip: IpAddr, len: u8) -> Option<(IpAddr, IpAddr, IpAddr)> {
    let (bits, width) = to_bits(ip);
    let len = u32::from(len);
    if len + 2 > width {
        return None;
    }
    let host_mask = if width - len >= 128 { u128::MAX } else { (1u128 << (width - len)) - 1 };
    let net = bits & !host_mask;
    let last = net | host_mask;
    let end = if width == 32 { last - 1 } else { last };
    Some((from_bits(net + 1, width), from_bits(net + 2, width), from_bits(end, width)))
}

fn cidr_contains(cidr: &str, addr: &str) -> bool {
    let (Some((net, len)), Ok(ip)) = (parse_cidr(cidr), addr.parse::<IpAddr>()) else { return false };
    let ((nb, w1), (ib, w2)) = (to_bits(net), to_bits(ip));
    if w1 != w2 || u32::from(len) > w1 {
        return false;
    }
    let shift = w1 - u32::from(len);
    shift >= 128 || (nb >> shift) == (ib >> shift)
}

/// A router derived from a project's floating IPs on one external network.
struct Router_ {
    id: String,
    project_id: String,
    network_id: String,
    created_at: DateTime<Utc>,
}

fn router_id(project: &str, ext_net: &str) -> String {
    stable_uuid(&["router", project, ext_net])
}

fn routers(ctx: &Ctx, site: &Site) -> Vec<Router_> {
    let mut out: BTreeMap<String, Router_> = BTreeMap::new();
    for f in site.floating_ips.iter().filter(|f| ctx.sees(&f.project_id)) {
        for a in f.associations.iter().filter(|a| a.from <= ctx.now) {
            let id = router_id(&f.project_id, &f.floating_network_id);
            let r = out.entry(id.clone()).or_insert_with(|| Router_ {
                id,
                project_id: f.project_id.clone(),
                network_id: f.floating_network_id.clone(),
                created_at: a.from,
            });
            r.created_at = r.created_at.min(a.from);
        }
    }
    out.into_values().collect()
}

// -------------------------------------------------------------- rendering

/// Neutron's timestamp format (cASO parses exactly this).
fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn port_status(p: &Port) -> &'static str {
    if p.device_id.is_empty() { "DOWN" } else { "ACTIVE" }
}

fn fip_json(ctx: &Ctx, idx: &Index, f: &FloatingIp) -> Value {
    let assoc = f.association_at(ctx.now);
    let changes: Vec<DateTime<Utc>> =
        f.associations.iter().flat_map(|a| [Some(a.from), a.to]).flatten().filter(|t| *t <= ctx.now).collect();
    let updated = changes.iter().copied().max().unwrap_or(f.created_at).max(f.created_at);
    let port_details = assoc.and_then(|a| idx.port(&a.port_id)).map(|p| {
        json!({
            "name": p.name, "network_id": p.network_id, "mac_address": p.mac_address,
            "admin_state_up": true, "status": port_status(p), "device_id": p.device_id,
            "device_owner": p.device_owner,
        })
    });
    json!({
        "id": f.id,
        "tenant_id": f.project_id,
        "project_id": f.project_id,
        "floating_ip_address": f.address,
        "floating_network_id": f.floating_network_id,
        "router_id": assoc.map(|_| router_id(&f.project_id, &f.floating_network_id)),
        "port_id": assoc.map(|a| a.port_id.clone()),
        "fixed_ip_address": assoc.map(|a| a.fixed_ip.clone()),
        "status": f.status_at(ctx.now),
        "description": f.description,
        "tags": [],
        "created_at": ts(f.created_at),
        "updated_at": ts(updated),
        "revision_number": changes.len(),
        "port_details": port_details,
        "port_forwardings": [],
        "dns_domain": "",
        "dns_name": "",
        "qos_policy_id": Value::Null,
        "qos_network_policy_id": Value::Null,
    })
}

fn port_json(ctx: &Ctx, idx: &Index, p: &Port) -> Value {
    let net = idx.networks.get(p.network_id.as_str());
    let fixed: Vec<Value> = p
        .fixed_ips
        .iter()
        .map(|ip| {
            let cidr = net.and_then(|n| n.cidrs.iter().find(|c| cidr_contains(c, ip)));
            let sid = cidr.map(|c| subnet_id(&p.network_id, c));
            json!({"subnet_id": sid, "ip_address": ip})
        })
        .collect();
    let mut v = json!({
        "id": p.id,
        "name": p.name,
        "network_id": p.network_id,
        "tenant_id": p.project_id,
        "project_id": p.project_id,
        "mac_address": p.mac_address,
        "admin_state_up": true,
        "status": port_status(p),
        "device_id": p.device_id,
        "device_owner": p.device_owner,
        "fixed_ips": fixed,
        "allowed_address_pairs": [],
        "extra_dhcp_opts": [],
        "security_groups": if p.device_owner.starts_with("compute:") {
            json!([stable_uuid(&["security-group", &p.project_id, "default"])])
        } else { json!([]) },
        "description": "",
        "binding:vnic_type": "normal",
        "port_security_enabled": p.device_owner.starts_with("compute:"),
        "dns_name": "",
        "dns_assignment": [],
        "qos_policy_id": Value::Null,
        "qos_network_policy_id": Value::Null,
        "resource_request": Value::Null,
        "ip_allocation": "immediate",
        "propagate_uplink_status": false,
        "tags": [],
        "created_at": ts(p.created_at),
        "updated_at": ts(p.created_at),
        "revision_number": if p.device_id.is_empty() { 1 } else { 4 },
    });
    if ctx.admin {
        let m = v.as_object_mut().expect("object");
        let bound = !p.device_id.is_empty();
        m.insert("binding:host_id".into(), json!(if bound { "compute-0" } else { "" }));
        m.insert("binding:profile".into(), json!({}));
        m.insert("binding:vif_details".into(), json!({}));
        m.insert("binding:vif_type".into(), json!(if bound { "ovs" } else { "unbound" }));
    }
    v
}

fn network_json(ctx: &Ctx, n: &Network) -> Value {
    let mut v = json!({
        "id": n.id,
        "name": n.name,
        "tenant_id": n.project_id,
        "project_id": n.project_id,
        "admin_state_up": true,
        "status": "ACTIVE",
        "shared": n.shared,
        "router:external": n.external,
        "subnets": n.cidrs.iter().map(|c| subnet_id(&n.id, c)).collect::<Vec<_>>(),
        "mtu": if n.external { 1500 } else { 1442 },
        "availability_zone_hints": [],
        "availability_zones": ["nova"],
        "ipv4_address_scope": Value::Null,
        "ipv6_address_scope": Value::Null,
        "port_security_enabled": true,
        "qos_policy_id": Value::Null,
        "dns_domain": "",
        "l2_adjacency": true,
        "description": "",
        "tags": [],
        "created_at": ts(n.created_at),
        "updated_at": ts(n.created_at),
        "revision_number": 1 + n.cidrs.len(),
    });
    let m = v.as_object_mut().expect("object");
    if n.external {
        m.insert("is_default".into(), json!(false));
    }
    if ctx.admin {
        m.insert("provider:network_type".into(), json!(if n.external { "flat" } else { "geneve" }));
        m.insert("provider:physical_network".into(), if n.external { json!("public") } else { Value::Null });
        let seg = u32::from_str_radix(&stable_uuid(&["segment", &n.id])[..4], 16).unwrap_or(1) % 4000 + 1;
        m.insert("provider:segmentation_id".into(), if n.external { Value::Null } else { json!(seg) });
    }
    v
}

fn subnet_json(s: &Subnet) -> Value {
    let (gw, start, end) = match s.addresses {
        Some((g, a, b)) => (json!(g.to_string()), a.to_string(), b.to_string()),
        None => (Value::Null, String::new(), String::new()),
    };
    let v6 = s.version == 6;
    json!({
        "id": s.id,
        "name": s.name,
        "network_id": s.network_id,
        "tenant_id": s.project_id,
        "project_id": s.project_id,
        "ip_version": s.version,
        "cidr": s.cidr,
        "gateway_ip": gw,
        "allocation_pools": if start.is_empty() { json!([]) } else { json!([{"start": start, "end": end}]) },
        "enable_dhcp": true,
        "dns_nameservers": [],
        "host_routes": [],
        "ipv6_address_mode": if v6 { json!("slaac") } else { Value::Null },
        "ipv6_ra_mode": if v6 { json!("slaac") } else { Value::Null },
        "subnetpool_id": Value::Null,
        "segment_id": Value::Null,
        "service_types": [],
        "dns_publish_fixed_ip": false,
        "description": "",
        "tags": [],
        "created_at": ts(s.created_at),
        "updated_at": ts(s.created_at),
        "revision_number": 0,
    })
}

fn router_json(r: &Router_) -> Value {
    json!({
        "id": r.id,
        "name": format!("router-{}", &r.project_id.chars().take(8).collect::<String>()),
        "tenant_id": r.project_id,
        "project_id": r.project_id,
        "admin_state_up": true,
        "status": "ACTIVE",
        "external_gateway_info": {"network_id": r.network_id, "enable_snat": true, "external_fixed_ips": []},
        "routes": [],
        "description": "",
        "availability_zones": ["nova"],
        "availability_zone_hints": [],
        "flavor_id": Value::Null,
        "tags": [],
        "created_at": ts(r.created_at),
        "updated_at": ts(r.created_at),
        "revision_number": 3,
    })
}

fn quota_json(q: &NetworkQuota, used: Option<&BTreeMap<&str, usize>>) -> Value {
    let pairs = [
        ("floatingip", q.floatingip),
        ("network", q.network),
        ("port", q.port),
        ("rbac_policy", q.rbac_policy),
        ("router", q.router),
        ("security_group", q.security_group),
        ("security_group_rule", q.security_group_rule),
        ("subnet", q.subnet),
        ("subnetpool", q.subnetpool),
    ];
    let mut m = Map::new();
    for (k, limit) in pairs {
        let v = match used {
            Some(u) => json!({"limit": limit, "used": u.get(k).copied().unwrap_or(0), "reserved": 0}),
            None => json!(limit),
        };
        m.insert(k.into(), v);
    }
    Value::Object(m)
}

fn quota(ctx: &Ctx, site: &Site, idx: &Index, project: &str, details: bool, default: bool) -> ApiResult<Value> {
    if !ctx.all && ctx.token.project_id() != Some(project) {
        return Err(policy_denied("get_quota"));
    }
    let q =
        if default { NetworkQuota::default() } else { site.network_quotas.get(project).cloned().unwrap_or_default() };
    if !details {
        return Ok(json!({"quota": quota_json(&q, None)}));
    }
    let now = ctx.now;
    let mut used: BTreeMap<&str, usize> = BTreeMap::new();
    used.insert(
        "floatingip",
        site.floating_ips.iter().filter(|f| f.project_id == project && f.visible_at(now)).count(),
    );
    let ports = idx.ports.values().filter_map(|p| site.ports.get(*p as usize));
    used.insert("port", ports.filter(|p| p.project_id == project).count());
    let nets: Vec<&&Network> = idx.networks.values().filter(|n| n.project_id == project).collect();
    used.insert("network", nets.len());
    used.insert("subnet", nets.iter().map(|n| n.cidrs.len()).sum());
    let mut routers: BTreeSet<&str> = BTreeSet::new();
    for f in site.floating_ips.iter().filter(|f| f.project_id == project && !f.associations.is_empty()) {
        routers.insert(&f.floating_network_id);
    }
    used.insert("router", routers.len());
    Ok(json!({"quota": quota_json(&q, Some(&used))}))
}

// ------------------------------------------------------ generic list logic

/// A collection: its key, its attributes (valid for filters and sorting)
/// and its not-found error.
struct Kind {
    collection: &'static str,
    attrs: &'static [&'static str],
    error: &'static str,
    label: &'static str,
    period: bool,
}

impl Kind {
    fn not_found(&self, id: &str) -> ApiError {
        let dot = if self.period { "." } else { "" };
        ApiError::not_found(SVC, format!("{} {id} could not be found{dot}", self.label)).neutron(self.error)
    }
}

const STD: [&str; 7] = ["id", "project_id", "tenant_id", "description", "created_at", "updated_at", "revision_number"];

const FIP: Kind = Kind {
    collection: "floatingips",
    attrs: &[
        "floating_ip_address",
        "floating_network_id",
        "router_id",
        "port_id",
        "fixed_ip_address",
        "status",
        "dns_domain",
        "dns_name",
        "qos_policy_id",
        "subnet_id",
    ],
    error: "FloatingIPNotFound",
    label: "Floating IP",
    period: false,
};
const PORT: Kind = Kind {
    collection: "ports",
    attrs: &[
        "name",
        "network_id",
        "mac_address",
        "admin_state_up",
        "status",
        "device_id",
        "device_owner",
        "fixed_ips",
        "security_groups",
        "binding:host_id",
        "binding:vnic_type",
        "ip_allocation",
        "port_security_enabled",
        "dns_name",
        "qos_policy_id",
        "ip_address",
        "subnet_id",
    ],
    error: "PortNotFound",
    label: "Port",
    period: true,
};
const NET: Kind = Kind {
    collection: "networks",
    attrs: &[
        "name",
        "admin_state_up",
        "status",
        "shared",
        "router:external",
        "subnets",
        "mtu",
        "is_default",
        "provider:network_type",
        "provider:physical_network",
        "provider:segmentation_id",
        "port_security_enabled",
        "qos_policy_id",
        "dns_domain",
        "availability_zone_hints",
    ],
    error: "NetworkNotFound",
    label: "Network",
    period: true,
};
const SUBNET: Kind = Kind {
    collection: "subnets",
    attrs: &[
        "name",
        "network_id",
        "ip_version",
        "cidr",
        "gateway_ip",
        "enable_dhcp",
        "ipv6_address_mode",
        "ipv6_ra_mode",
        "subnetpool_id",
        "segment_id",
        "dns_publish_fixed_ip",
    ],
    error: "SubnetNotFound",
    label: "Subnet",
    period: true,
};
const ROUTER: Kind = Kind {
    collection: "routers",
    attrs: &["name", "admin_state_up", "status", "flavor_id", "external_gateway_info"],
    error: "RouterNotFound",
    label: "Router",
    period: true,
};

const RESERVED: &[&str] = &["fields", "limit", "marker", "page_reverse", "sort_key", "sort_dir"];
const TAG_FILTERS: &[&str] = &["tags", "tags-any", "not-tags", "not-tags-any"];

fn fields(ctx: &Ctx) -> Vec<String> {
    ctx.query
        .iter()
        .filter(|(k, v)| k == "fields" && !v.is_empty())
        .flat_map(|(_, v)| v.split(',').map(String::from))
        .collect()
}

fn select(obj: Value, fields: &[String]) -> Value {
    if fields.is_empty() {
        return obj;
    }
    match obj {
        Value::Object(m) => Value::Object(m.into_iter().filter(|(k, _)| fields.iter().any(|f| f == k)).collect()),
        other => other,
    }
}

fn bool_of(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "t" | "yes" | "y" | "on" => Some(true),
        "false" | "0" | "f" | "no" | "n" | "off" => Some(false),
        _ => None,
    }
}

/// Whether a rendered attribute equals a filter value, as Neutron converts it.
fn value_matches(v: &Value, want: &str) -> bool {
    match v {
        Value::Null => want.is_empty() || want == "None",
        Value::Bool(b) => bool_of(want) == Some(*b),
        Value::Number(n) => n.to_string() == want,
        Value::String(s) => s == want,
        Value::Array(a) => a.iter().any(|x| value_matches(x, want)),
        Value::Object(_) => false,
    }
}

/// `fixed_ips=ip_address=10.0.0.5` / `subnet_id=` / `ip_address_substr=`.
fn fixed_ips_match(obj: &Value, want: &str) -> bool {
    let (k, val) = want.split_once('=').unwrap_or(("ip_address", want));
    obj["fixed_ips"].as_array().is_some_and(|ips| {
        ips.iter().any(|ip| match k {
            "ip_address_substr" => ip["ip_address"].as_str().is_some_and(|a| a.contains(val)),
            _ => ip[k].as_str() == Some(val),
        })
    })
}

fn matches(obj: &Value, filters: &BTreeMap<String, Vec<String>>) -> bool {
    filters.iter().all(|(k, wants)| match k.as_str() {
        "fixed_ips" => wants.iter().all(|w| fixed_ips_match(obj, w)),
        "ip_address" | "subnet_id" if obj.get("fixed_ips").is_some() => {
            wants.iter().any(|w| fixed_ips_match(obj, &format!("{k}={w}")))
        }
        // No object carries tags.
        "tags" | "tags-any" => false,
        "not-tags" | "not-tags-any" => true,
        _ => obj.get(k).is_some_and(|v| wants.iter().any(|w| value_matches(v, w))),
    })
}

fn cmp_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            _ => 4,
        }
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => {
            x.as_f64().unwrap_or(0.0).partial_cmp(&y.as_f64().unwrap_or(0.0)).unwrap_or(Ordering::Equal)
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

fn cmp_objs(a: &Value, b: &Value, sorts: &[(String, bool)]) -> Ordering {
    for (k, desc) in sorts {
        let o = cmp_values(&a[k.as_str()], &b[k.as_str()]);
        let o = if *desc { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

trait HasId {
    fn id(&self) -> &str;
    /// A string attribute read without rendering, for cheap filtering.
    fn typed(&self, _key: &str) -> Option<&str> {
        None
    }
}
impl HasId for &FloatingIp {
    fn id(&self) -> &str {
        &self.id
    }
    fn typed(&self, key: &str) -> Option<&str> {
        match key {
            "project_id" => Some(&self.project_id),
            "floating_ip_address" => Some(&self.address),
            "floating_network_id" => Some(&self.floating_network_id),
            _ => None,
        }
    }
}
impl HasId for &Port {
    fn id(&self) -> &str {
        &self.id
    }
    fn typed(&self, key: &str) -> Option<&str> {
        match key {
            "project_id" => Some(&self.project_id),
            "device_id" => Some(&self.device_id),
            "device_owner" => Some(&self.device_owner),
            "network_id" => Some(&self.network_id),
            "mac_address" => Some(&self.mac_address),
            _ => None,
        }
    }
}
impl HasId for &Network {
    fn id(&self) -> &str {
        &self.id
    }
    fn typed(&self, key: &str) -> Option<&str> {
        match key {
            "project_id" => Some(&self.project_id),
            "name" => Some(&self.name),
            _ => None,
        }
    }
}
impl HasId for Subnet {
    fn id(&self) -> &str {
        &self.id
    }
    fn typed(&self, key: &str) -> Option<&str> {
        match key {
            "project_id" => Some(&self.project_id),
            "network_id" => Some(&self.network_id),
            _ => None,
        }
    }
}
impl HasId for Router_ {
    fn id(&self) -> &str {
        &self.id
    }
}

/// What a listing reads: every object the caller sees, or the view's index
/// of them by id.
enum Items<'a, T> {
    All(Vec<T>),
    ById(ById<'a, T>),
}

/// Visible objects by position in the site, each list ascending by id
/// (ids unique).
struct ById<'a, T> {
    /// Everything the caller sees.
    seen: &'a [u32],
    /// One project's objects, whoever sees them.
    project: &'a dyn Fn(&str) -> &'a [u32],
    get: &'a dyn Fn(u32) -> T,
    /// The object with this id, when the caller sees it.
    find: &'a dyn Fn(&str) -> Option<T>,
}

/// Lists a collection: validates and applies filters, sorts (by `id`
/// unless `sort_key` says otherwise), pages from `marker`, renders only the
/// page when no attribute filter or custom sort needs every object. From an
/// index by id, a listing by id filtered at most by one project reads only
/// its page.
fn list<T: HasId>(ctx: &Ctx, kind: &Kind, items: Items<T>, render: &dyn Fn(&T) -> Value) -> ApiResult<Value> {
    let valid = |k: &str| STD.contains(&k) || kind.attrs.contains(&k);
    // limit / page_reverse / marker
    let limit = match ctx.param("limit") {
        None => 0,
        Some(raw) => match raw.trim().parse::<i64>() {
            Ok(n) if n >= 0 => n as usize,
            _ => {
                return Err(ApiError::bad_request(
                    SVC,
                    format!("Bad limit request: Limit must be an integer 0 or greater and not '{raw}'."),
                )
                .neutron("BadRequest"));
            }
        },
    };
    let page_reverse = ctx.param("page_reverse").and_then(bool_of).unwrap_or(false);
    let marker = ctx.param("marker").filter(|m| !m.is_empty() && limit > 0);
    // sorting
    let keys: Vec<&str> = ctx.query.iter().filter(|(k, _)| k == "sort_key").map(|(_, v)| v.as_str()).collect();
    let dirs: Vec<&str> = ctx.query.iter().filter(|(k, _)| k == "sort_dir").map(|(_, v)| v.as_str()).collect();
    if keys.len() != dirs.len() {
        return Err(ApiError::bad_request(SVC, "The number of sort_keys and sort_dirs must be same"));
    }
    let bad_keys: Vec<&str> = keys.iter().copied().filter(|k| !valid(k)).collect();
    if !bad_keys.is_empty() {
        return Err(ApiError::bad_request(SVC, format!("{bad_keys:?} is invalid attribute for sort_keys")));
    }
    let bad_dirs: Vec<&str> = dirs.iter().copied().filter(|d| *d != "asc" && *d != "desc").collect();
    if !bad_dirs.is_empty() {
        return Err(ApiError::bad_request(
            SVC,
            format!("{bad_dirs:?} is invalid value for sort_dirs, valid value is 'asc' and 'desc'"),
        ));
    }
    let mut sorts: Vec<(String, bool)> = keys.iter().zip(&dirs).map(|(k, d)| (k.to_string(), *d == "desc")).collect();
    if !sorts.iter().any(|(k, _)| k == "id") {
        sorts.push(("id".into(), false));
    }
    // filters
    let mut filters: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in &ctx.query {
        if RESERVED.contains(&k.as_str()) {
            continue;
        }
        if !valid(k) && !TAG_FILTERS.contains(&k.as_str()) {
            return Err(
                ApiError::bad_request(SVC, format!("{k} is invalid attribute for filtering")).neutron("HTTPBadRequest")
            );
        }
        let k = if k == "tenant_id" { "project_id".to_string() } else { k.clone() };
        filters.entry(k).or_default().push(v.clone());
    }
    let items: Vec<T> = match items {
        Items::All(items) => items,
        Items::ById(ix) => {
            let projects = filters.get("project_id").filter(|_| filters.len() == 1);
            let one_project = projects.filter(|w| w.iter().all(|p| *p == w[0])).map(|w| w[0].as_str());
            if sorts.len() == 1 && !sorts[0].1 && (filters.is_empty() || one_project.is_some()) {
                if let Some(m) = marker
                    && (ix.find)(m).is_none()
                {
                    return Err(kind.not_found(m));
                }
                let list = match one_project {
                    None => ix.seen,
                    Some(p) if ctx.sees(p) => (ix.project)(p),
                    Some(_) => &[],
                };
                let id_at = |i: usize| list.get(i).map(|p| (ix.get)(*p));
                let pos = |m: &str| list.partition_point(|p| (ix.get)(*p).id() < m);
                let at_marker = marker.map(|m| (pos(m), id_at(pos(m)).is_some_and(|i| i.id() == m)));
                let (start, end) = window(list.len(), limit, at_marker, page_reverse);
                let page = list[start..end].iter().map(|p| render(&(ix.get)(*p))).collect();
                return Ok(page_answer(ctx, kind, page, limit, page_reverse));
            }
            ix.seen.iter().map(|p| (ix.get)(*p)).collect()
        }
    };
    // The marker may be any object the caller can see, filtered or not.
    let marker_item: Option<Value> = match marker {
        Some(m) => Some(items.iter().find(|i| i.id() == m).map(render).ok_or_else(|| kind.not_found(m))?),
        None => None,
    };
    // Cheap typed pre-filters (id, project, device, network...).
    let mut items: Vec<T> = items;
    if let Some(ids) = filters.remove("id") {
        items.retain(|i| ids.iter().any(|w| w == i.id()));
    }
    let typed_keys: Vec<String> =
        filters.keys().filter(|k| items.first().is_some_and(|i| i.typed(k).is_some())).cloned().collect();
    for k in typed_keys {
        let wants = filters.remove(&k).unwrap_or_default();
        items.retain(|i| i.typed(&k).is_some_and(|v| wants.iter().any(|w| w == v)));
    }
    let id_only = sorts.len() == 1;
    let page: Vec<Value> = if filters.is_empty() && id_only {
        let desc = sorts[0].1;
        items.sort_unstable_by(|a, b| if desc { b.id().cmp(a.id()) } else { a.id().cmp(b.id()) });
        let pos = |m: &str| items.partition_point(|i| if desc { i.id() > m } else { i.id() < m });
        let (start, end) = window(
            items.len(),
            limit,
            marker.map(|m| (pos(m), items.get(pos(m)).is_some_and(|i| i.id() == m))),
            page_reverse,
        );
        items[start..end].iter().map(render).collect()
    } else {
        let mut all: Vec<Value> = items.iter().map(render).filter(|o| matches(o, &filters)).collect();
        all.sort_by(|a, b| cmp_objs(a, b, &sorts));
        let pos = marker_item.as_ref().map(|m| {
            let p = all.partition_point(|o| cmp_objs(o, m, &sorts) == Ordering::Less);
            (p, all.get(p).is_some_and(|o| o["id"] == m["id"]))
        });
        let (start, end) = window(all.len(), limit, pos, page_reverse);
        all.drain(start..end).collect()
    };
    Ok(page_answer(ctx, kind, page, limit, page_reverse))
}

/// The page, with only the asked `fields`, and its links.
fn page_answer(ctx: &Ctx, kind: &Kind, page: Vec<Value>, limit: usize, page_reverse: bool) -> Value {
    let fields = fields(ctx);
    let ids: Vec<String> = page.iter().filter_map(|o| o["id"].as_str().map(String::from)).collect();
    let page: Vec<Value> = page.into_iter().map(|o| select(o, &fields)).collect();
    let mut out = json!({kind.collection: page});
    if limit > 0 {
        let links = pagination_links(ctx, &ids, limit, page_reverse);
        if !links.is_empty() {
            out[format!("{}_links", kind.collection)] = json!(links);
        }
    }
    out
}

/// The page's [start, end) in the sorted list. `marker` is (position of the
/// first item not before the marker, whether that item is the marker).
fn window(len: usize, limit: usize, marker: Option<(usize, bool)>, reverse: bool) -> (usize, usize) {
    let limit = if limit == 0 { usize::MAX } else { limit };
    match (marker, reverse) {
        (None, false) => (0, limit.min(len)),
        (None, true) => (len.saturating_sub(limit), len),
        (Some((p, is_marker)), false) => {
            let s = if is_marker { p + 1 } else { p };
            (s.min(len), s.saturating_add(limit).min(len))
        }
        (Some((p, _)), true) => (p.saturating_sub(limit), p),
    }
}

/// neutron.api.api_common.get_pagination_links
fn pagination_links(ctx: &Ctx, ids: &[String], limit: usize, reverse: bool) -> Vec<Value> {
    let href = |marker: Option<&String>, rev: bool| {
        let mut params: Vec<(String, String)> =
            ctx.query.iter().filter(|(k, _)| k != "marker" && k != "page_reverse").cloned().collect();
        if let Some(m) = marker {
            params.push(("marker".into(), m.clone()));
        }
        if rev {
            params.push(("page_reverse".into(), "True".into()));
        }
        let qs = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        format!("{}?{qs}", ctx.url)
    };
    let mut links = Vec::new();
    if ids.len() >= limit || reverse {
        links.push(json!({"rel": "next", "href": href(ids.last(), false)}));
    }
    if ids.len() >= limit || !reverse {
        links.push(json!({"rel": "previous", "href": href(ids.first(), true)}));
    }
    links
}
