//! HTTP-level tests of the simulated Neutron v2.0 API against hand-built
//! sites: visibility by project, rendering, filters, fields and paging.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::Value;
use sim::model::{FipAssociation, FloatingIp, Network, Port, Site};
use sim::state::{TokenInfo, TokenScope};

const P1: &str = "0b9f3b2a1c8d4e6f9a0b1c2d3e4f5a6b";
const P2: &str = "1c0a4c3b2d9e5f7a0b1c2d3e4f5a6b7c";
const ADMIN_P: &str = "2d1b5d4c3e0f6a8b1c2d3e4f5a6b7c8d";
const EXT: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const NET1: &str = "aaaaaaaa-0000-4000-8000-000000000002";
const NET2: &str = "aaaaaaaa-0000-4000-8000-000000000003";
const SERVER: &str = "11111111-1111-4111-8111-111111111111";
const PORT1: &str = "bbbbbbbb-0000-4000-8000-000000000001";

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn net(id: &str, name: &str, project: &str, external: bool, cidrs: &[&str]) -> Network {
    Network {
        id: id.into(),
        name: name.into(),
        project_id: project.into(),
        external,
        shared: false,
        cidrs: cidrs.iter().map(|c| c.to_string()).collect(),
        created_at: t("2023-01-01T00:00:00Z"),
    }
}

fn port(id: &str, project: &str, network: &str, device: &str, ip: &str) -> Port {
    Port {
        id: id.into(),
        name: String::new(),
        project_id: project.into(),
        network_id: network.into(),
        device_id: device.into(),
        device_owner: if device.is_empty() { String::new() } else { "compute:nova".into() },
        mac_address: "fa:16:3e:00:00:01".into(),
        fixed_ips: vec![ip.into()],
        created_at: t("2023-05-01T00:00:00Z"),
        deleted_at: None,
    }
}

fn fip(id: &str, project: &str, address: &str, created: &str) -> FloatingIp {
    FloatingIp {
        id: id.into(),
        project_id: project.into(),
        floating_network_id: EXT.into(),
        address: address.into(),
        version: if address.contains(':') { 6 } else { 4 },
        created_at: t(created),
        deleted_at: None,
        associations: vec![],
        description: String::new(),
    }
}

fn site(extra_ports: usize) -> Site {
    let mut f1 = fip("cccccccc-0000-4000-8000-000000000001", P1, "192.0.2.10", "2023-05-01T00:00:00Z");
    f1.associations.push(FipAssociation {
        port_id: PORT1.into(),
        fixed_ip: "10.0.0.5".into(),
        from: t("2023-05-20T10:05:00Z"),
        to: None,
    });
    let mut gone = fip("cccccccc-0000-4000-8000-000000000009", P1, "192.0.2.99", "2023-04-01T00:00:00Z");
    gone.deleted_at = Some(t("2023-04-02T00:00:00Z"));
    let mut deleted_port = port("bbbbbbbb-0000-4000-8000-000000000009", P1, NET1, "", "10.0.0.99");
    deleted_port.deleted_at = Some(t("2023-05-02T00:00:00Z"));
    let mut ports = vec![
        port(PORT1, P1, NET1, SERVER, "10.0.0.5"),
        port("bbbbbbbb-0000-4000-8000-000000000002", P2, NET2, "", "10.1.0.7"),
        deleted_port,
    ];
    for i in 0..extra_ports {
        ports.push(port(&format!("dddddddd-0000-4000-8000-{i:012x}"), P1, NET1, "", "10.0.0.200"));
    }
    Site {
        region: "RegionOne".into(),
        networks: vec![
            net(EXT, "public", ADMIN_P, true, &["192.0.2.0/24", "2001:db8::/64"]),
            net(NET1, "private", P1, false, &["10.0.0.0/24"]),
            net(NET2, "other", P2, false, &["10.1.0.0/24"]),
        ],
        ports,
        floating_ips: vec![
            f1,
            fip("cccccccc-0000-4000-8000-000000000002", P1, "192.0.2.11", "2023-05-02T00:00:00Z"),
            fip("cccccccc-0000-4000-8000-000000000003", P1, "2001:db8::1", "2023-05-03T00:00:00Z"),
            fip("cccccccc-0000-4000-8000-000000000004", P2, "192.0.2.20", "2023-05-04T00:00:00Z"),
            gone,
        ],
        ..Default::default()
    }
}

fn token(project: Option<&str>, roles: &[&str]) -> TokenInfo {
    TokenInfo {
        user_id: "u-caso".into(),
        user_name: "caso".into(),
        user_domain_id: "default".into(),
        scope: match project {
            Some(p) => TokenScope::Project { id: p.into(), name: "proj".into(), domain_id: "default".into() },
            None => TokenScope::System,
        },
        roles: roles.iter().map(|r| r.to_string()).collect(),
        methods: vec!["password".into()],
        issued_at: Utc::now() - Duration::hours(1),
        expires_at: Utc::now() + Duration::days(3650),
    }
}

struct Env {
    sim: sim::SimHandle,
    http: reqwest::Client,
}

impl Env {
    async fn new(site: Site) -> Env {
        let reference = Utc.with_ymd_and_hms(2023, 6, 1, 0, 0, 0).unwrap();
        let scenario = sim::Scenario { name: "hand".into(), seed: 1, reference_time: reference, site };
        let sim = sim::start(sim::SimConfig::new(scenario)).await.unwrap();
        sim.insert_token("reader", token(Some(P1), &["reader"]));
        sim.insert_token("admin", token(Some(ADMIN_P), &["admin", "member", "reader"]));
        sim.insert_token("system-reader", token(None, &["reader"]));
        Env { sim, http: reqwest::Client::new() }
    }

    async fn get(&self, tok: Option<&str>, path: &str) -> (u16, Value) {
        let mut req = self.http.get(format!("{}{path}", self.sim.base_url()));
        if let Some(tok) = tok {
            req = req.header("X-Auth-Token", tok);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

fn field(body: &Value, coll: &str, key: &str) -> Vec<String> {
    body[coll].as_array().unwrap().iter().map(|o| o[key].as_str().unwrap_or_default().to_string()).collect()
}

#[tokio::test]
async fn caso_floatingips_call_shows_a_reader_only_its_projects_ips_in_exact_time_format() {
    let env = Env::new(site(0)).await;
    let (status, body) = env.get(Some("reader"), "/network/v2.0/floatingips").await;
    assert_eq!(status, 200);
    assert_eq!(field(&body, "floatingips", "floating_ip_address"), vec!["192.0.2.10", "192.0.2.11", "2001:db8::1"]);
    assert_eq!(
        field(&body, "floatingips", "created_at"),
        vec!["2023-05-01T00:00:00Z", "2023-05-02T00:00:00Z", "2023-05-03T00:00:00Z"]
    );
    assert!(field(&body, "floatingips", "project_id").iter().all(|p| p == P1));
    assert!(field(&body, "floatingips", "tenant_id").iter().all(|p| p == P1));
    assert!(body.get("floatingips_links").is_none(), "no limit, no links");
}

#[tokio::test]
async fn admin_and_system_reader_see_every_project_but_not_deleted_ips() {
    let env = Env::new(site(0)).await;
    for tok in ["admin", "system-reader"] {
        let (_, body) = env.get(Some(tok), "/network/v2.0/floatingips").await;
        let ips = field(&body, "floatingips", "floating_ip_address");
        assert_eq!(ips.len(), 4, "{tok}: {ips:?}");
        assert!(!ips.contains(&"192.0.2.99".to_string()));
    }
    let (_, body) = env.get(Some("admin"), &format!("/network/v2.0/floatingips?project_id={P2}")).await;
    assert_eq!(field(&body, "floatingips", "floating_ip_address"), vec!["192.0.2.20"]);
    let (_, body) = env.get(Some("admin"), &format!("/network/v2.0/floatingips?tenant_id={P2}")).await;
    assert_eq!(field(&body, "floatingips", "floating_ip_address"), vec!["192.0.2.20"]);
    // A reader asking for another project gets nothing.
    let (_, body) = env.get(Some("reader"), &format!("/network/v2.0/floatingips?project_id={P2}")).await;
    assert_eq!(body["floatingips"], serde_json::json!([]));
}

#[tokio::test]
async fn associated_and_free_floating_ips_render_as_neutron() {
    let env = Env::new(site(0)).await;
    let (status, body) =
        env.get(Some("reader"), "/network/v2.0/floatingips/cccccccc-0000-4000-8000-000000000001").await;
    assert_eq!(status, 200);
    let f = &body["floatingip"];
    assert_eq!(f["status"], "ACTIVE");
    assert_eq!(f["port_id"], PORT1);
    assert_eq!(f["fixed_ip_address"], "10.0.0.5");
    assert_eq!(f["floating_network_id"], EXT);
    assert_eq!(f["router_id"].as_str().unwrap().len(), 36);
    assert_eq!(f["updated_at"], "2023-05-20T10:05:00Z");
    assert_eq!(f["revision_number"], 1);
    let pd = &f["port_details"];
    assert_eq!((pd["device_id"].as_str(), pd["device_owner"].as_str()), (Some(SERVER), Some("compute:nova")));
    assert_eq!((pd["network_id"].as_str(), pd["status"].as_str()), (Some(NET1), Some("ACTIVE")));
    assert_eq!(pd["mac_address"], "fa:16:3e:00:00:01");

    let (_, body) = env.get(Some("reader"), "/network/v2.0/floatingips/cccccccc-0000-4000-8000-000000000003").await;
    let f = &body["floatingip"];
    assert_eq!(f["status"], "DOWN");
    assert_eq!(f["port_details"], Value::Null);
    assert_eq!(f["router_id"], Value::Null);
    assert_eq!(f["floating_ip_address"], "2001:db8::1");

    for id in ["cccccccc-0000-4000-8000-000000000004", "cccccccc-0000-4000-8000-000000000009", "nope"] {
        let (status, body) = env.get(Some("reader"), &format!("/network/v2.0/floatingips/{id}")).await;
        assert_eq!(status, 404);
        assert_eq!(body["NeutronError"]["type"], "FloatingIPNotFound");
        assert_eq!(body["NeutronError"]["message"], format!("Floating IP {id} could not be found"));
    }
}

#[tokio::test]
async fn limit_marker_pagination_follows_next_and_previous_links() {
    let env = Env::new(site(0)).await;
    let (_, body) = env.get(Some("admin"), "/network/v2.0/floatingips?limit=2").await;
    let first = field(&body, "floatingips", "id");
    assert_eq!(first, vec!["cccccccc-0000-4000-8000-000000000001", "cccccccc-0000-4000-8000-000000000002"]);
    let links = body["floatingips_links"].as_array().unwrap();
    let next = links.iter().find(|l| l["rel"] == "next").unwrap()["href"].as_str().unwrap();
    assert!(next.starts_with(&format!("{}/network/v2.0/floatingips?", env.sim.base_url())), "{next}");
    assert!(next.contains("marker=cccccccc-0000-4000-8000-000000000002") && next.contains("limit=2"));

    let (_, body) = env.get(Some("admin"), next.trim_start_matches(env.sim.base_url())).await;
    assert_eq!(
        field(&body, "floatingips", "id"),
        vec!["cccccccc-0000-4000-8000-000000000003", "cccccccc-0000-4000-8000-000000000004"]
    );
    let links = body["floatingips_links"].as_array().unwrap();
    let prev = links.iter().find(|l| l["rel"] == "previous").unwrap()["href"].as_str().unwrap();
    assert!(prev.contains("page_reverse=True") && prev.contains("marker=cccccccc-0000-4000-8000-000000000003"));
    let (_, back) = env.get(Some("admin"), prev.trim_start_matches(env.sim.base_url())).await;
    assert_eq!(field(&back, "floatingips", "id"), first);

    // The page after a full last page is empty and ends the walk.
    let next = links.iter().find(|l| l["rel"] == "next").unwrap()["href"].as_str().unwrap();
    let (_, body) = env.get(Some("admin"), next.trim_start_matches(env.sim.base_url())).await;
    assert_eq!(body["floatingips"], serde_json::json!([]));
    assert!(body["floatingips_links"].as_array().unwrap().iter().all(|l| l["rel"] != "next"));

    let (_, body) =
        env.get(Some("admin"), "/network/v2.0/floatingips?sort_key=floating_ip_address&sort_dir=desc").await;
    assert_eq!(field(&body, "floatingips", "floating_ip_address")[0], "2001:db8::1");
}

#[tokio::test]
async fn filters_fields_and_bad_parameters() {
    let env = Env::new(site(0)).await;
    let (_, body) = env.get(Some("reader"), "/network/v2.0/floatingips?status=ACTIVE").await;
    assert_eq!(field(&body, "floatingips", "floating_ip_address"), vec!["192.0.2.10"]);
    let (_, body) = env.get(Some("reader"), &format!("/network/v2.0/floatingips?port_id={PORT1}")).await;
    assert_eq!(field(&body, "floatingips", "floating_ip_address"), vec!["192.0.2.10"]);
    let (_, body) = env
        .get(Some("reader"), "/network/v2.0/floatingips?floating_ip_address=192.0.2.11&floating_ip_address=2001:db8::1")
        .await;
    assert_eq!(field(&body, "floatingips", "floating_ip_address").len(), 2);
    let (_, body) = env.get(Some("reader"), "/network/v2.0/floatingips?fields=id&fields=floating_ip_address").await;
    let keys: Vec<&String> = body["floatingips"][0].as_object().unwrap().keys().collect();
    assert_eq!(keys, vec!["floating_ip_address", "id"]);

    let (status, body) = env.get(Some("reader"), "/network/v2.0/floatingips?limit=ten").await;
    assert_eq!(status, 400);
    assert_eq!(body["NeutronError"]["type"], "BadRequest");
    assert!(body["NeutronError"]["message"].as_str().unwrap().starts_with("Bad limit request"));
    let (status, body) = env.get(Some("reader"), "/network/v2.0/floatingips?colour=blue").await;
    assert_eq!(status, 400);
    assert!(body["NeutronError"]["message"].as_str().unwrap().contains("colour"));
    let (status, _) = env.get(Some("reader"), "/network/v2.0/floatingips?sort_key=id").await;
    assert_eq!(status, 400, "sort_key needs a sort_dir");
    let (status, body) = env.get(Some("reader"), "/network/v2.0/floatingips?limit=1&marker=missing").await;
    assert_eq!(status, 404);
    assert_eq!(body["NeutronError"]["type"], "FloatingIPNotFound");
    let (status, _) = env.get(None, "/network/v2.0/floatingips").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn ports_networks_and_subnets_agree_on_derived_ids() {
    let env = Env::new(site(0)).await;
    let (_, body) = env.get(Some("reader"), "/network/v2.0/ports").await;
    assert_eq!(field(&body, "ports", "id"), vec![PORT1], "own, not deleted");
    let (_, body) = env.get(Some("reader"), &format!("/network/v2.0/ports?device_id={SERVER}")).await;
    let p = &body["ports"][0];
    assert_eq!(p["status"], "ACTIVE");
    assert_eq!(p["fixed_ips"][0]["ip_address"], "10.0.0.5");
    let subnet_id = p["fixed_ips"][0]["subnet_id"].as_str().unwrap().to_string();
    let (_, body) = env.get(Some("reader"), "/network/v2.0/ports?fixed_ips=ip_address%3D10.0.0.5").await;
    assert_eq!(field(&body, "ports", "id"), vec![PORT1]);
    let (_, body) = env.get(Some("reader"), "/network/v2.0/ports?fixed_ips=ip_address%3D10.9.9.9").await;
    assert_eq!(body["ports"], serde_json::json!([]));

    let (_, body) = env.get(Some("reader"), "/network/v2.0/networks").await;
    let names = field(&body, "networks", "name");
    assert_eq!(names.len(), 2, "own and external: {names:?}");
    let (_, body) = env.get(Some("reader"), "/network/v2.0/networks?router:external=True").await;
    assert_eq!(field(&body, "networks", "id"), vec![EXT]);
    assert_eq!(body["networks"][0]["subnets"].as_array().unwrap().len(), 2);
    let (_, body) = env.get(Some("reader"), &format!("/network/v2.0/networks/{NET1}")).await;
    assert_eq!(body["network"]["subnets"][0], subnet_id.as_str());
    assert!(body["network"].get("provider:network_type").is_none());

    let (_, body) = env.get(Some("admin"), &format!("/network/v2.0/subnets?network_id={EXT}")).await;
    let s: Vec<&Value> = body["subnets"].as_array().unwrap().iter().collect();
    assert_eq!(s.len(), 2);
    let v6 = s.iter().find(|s| s["ip_version"] == 6).unwrap();
    assert_eq!(v6["gateway_ip"], "2001:db8::1");
    let v4 = s.iter().find(|s| s["ip_version"] == 4).unwrap();
    assert_eq!(v4["gateway_ip"], "192.0.2.1");
    assert_eq!(v4["allocation_pools"][0]["end"], "192.0.2.254");
    let (status, body) = env.get(Some("reader"), &format!("/network/v2.0/subnets/{subnet_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["subnet"]["cidr"], "10.0.0.0/24");
}

#[tokio::test]
async fn quotas_versions_and_extensions() {
    let env = Env::new(site(0)).await;
    let (_, body) = env.get(Some("reader"), &format!("/network/v2.0/quotas/{P1}")).await;
    assert_eq!(body["quota"]["floatingip"], 50);
    let (_, body) = env.get(Some("reader"), &format!("/network/v2.0/quotas/{P1}/details")).await;
    assert_eq!(body["quota"]["floatingip"]["used"], 3);
    assert_eq!(body["quota"]["port"]["used"], 1);
    let (status, body) = env.get(Some("reader"), &format!("/network/v2.0/quotas/{P2}")).await;
    assert_eq!(status, 403);
    assert!(body["NeutronError"].is_object());

    let (status, body) = env.get(None, "/network").await;
    assert_eq!(status, 200);
    assert_eq!(body["versions"][0]["id"], "v2.0");
    assert_eq!(body["versions"][0]["links"][0]["href"], format!("{}/network/v2.0/", env.sim.base_url()));
    let (_, body) = env.get(None, "/network/v2.0/").await;
    assert!(field(&body, "resources", "collection").contains(&"floatingips".to_string()));
    let (_, body) = env.get(Some("reader"), "/network/v2.0/extensions").await;
    let aliases = field(&body, "extensions", "alias");
    for a in
        ["router", "external-net", "standard-attr-timestamp", "pagination", "sorting", "project-id", "fip-port-details"]
    {
        assert!(aliases.contains(&a.to_string()), "{a}");
    }
    let (_, body) = env.get(Some("reader"), "/network/v2.0/routers").await;
    assert_eq!(field(&body, "routers", "project_id"), vec![P1]);
}

#[tokio::test]
async fn twenty_thousand_ports_filter_and_page() {
    let env = Env::new(site(20_000)).await;
    let (_, body) = env.get(Some("reader"), &format!("/network/v2.0/ports?device_id={SERVER}")).await;
    assert_eq!(field(&body, "ports", "id"), vec![PORT1]);
    let (_, body) = env.get(Some("reader"), "/network/v2.0/ports?limit=100").await;
    assert_eq!(body["ports"].as_array().unwrap().len(), 100);
}
