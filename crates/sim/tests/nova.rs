//! HTTP-level tests of the simulated Nova API against a hand-built site
//! shaped like the cASO 5.2.2 vectors (vm-running, vm-deleted, vm-quiet).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};
use sim::model::*;
use sim::state::{TokenInfo, TokenScope};

const P: &str = "0b9f3b2a1c8d4e6f9a0b1c2d3e4f5a6b";
const Q: &str = "1c0a4c3b2d9e5f7a0b1c2d3e4f5a6b7c";
const EMPTY: &str = "2d1b5d4c3e0f6a8b1c2d3e4f5a6b7c8d";
const RUNNING: &str = "11111111-1111-4111-8111-111111111111";
const DELETED: &str = "22222222-2222-4222-8222-222222222222";
const QUIET: &str = "33333333-3333-4333-8333-333333333333";
const OTHER: &str = "44444444-4444-4444-8444-444444444444";

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn flavor(id: &str, name: &str, vcpus: u32, ram: u64, disk: u64, eph: u64) -> Flavor {
    Flavor {
        id: id.into(),
        name: name.into(),
        vcpus,
        ram,
        disk,
        ephemeral: eph,
        swap: 0,
        is_public: true,
        access: vec![],
        extra_specs: BTreeMap::from([("accounting:benchmark_value".to_string(), "12.5".to_string())]),
        description: None,
    }
}

fn ev(at: &str, action: &str, status: &str) -> ServerEvent {
    ServerEvent { at: t(at), action: action.into(), status: status.into(), flavor: None }
}

fn server(id: &str, name: &str, project: &str, created: &str, events: Vec<ServerEvent>) -> Server {
    let launched = events.iter().find(|e| e.status == "ACTIVE").map(|e| e.at);
    Server {
        id: id.into(),
        name: name.into(),
        project_id: project.into(),
        user_id: "u-alice".into(),
        flavor: flavor("f1", "gpu.small", 2, 4096, 20, 10),
        image_id: Some("img1".into()),
        created: t(created),
        launched_at: launched,
        events,
        key_name: None,
        availability_zone: "nova".into(),
        host_id: "h1".into(),
        fixed_ips: vec![],
        metadata: BTreeMap::new(),
        volumes_attached: vec![],
    }
}

fn site() -> Site {
    let mut running = server(
        RUNNING,
        "vm-running",
        P,
        "2023-05-20T10:00:00Z",
        vec![
            ev("2023-05-20T10:00:00Z", "create", "BUILD"),
            ev("2023-05-20T10:01:00Z", "create", "ACTIVE"),
            ev("2023-05-21T12:00:00Z", "reboot", "ACTIVE"),
        ],
    );
    running.fixed_ips = vec![("private".into(), "10.0.0.5".into(), 4)];
    let deleted = server(
        DELETED,
        "vm-deleted",
        P,
        "2023-05-19T00:00:00Z",
        vec![
            ev("2023-05-19T00:00:00Z", "create", "BUILD"),
            ev("2023-05-19T00:01:00Z", "create", "ACTIVE"),
            ev("2023-05-22T06:00:00Z", "delete", "DELETED"),
        ],
    );
    // Resized to a 4-vCPU flavor snapshot ("old"), then stopped.
    let mut resize = ev("2023-04-01T12:00:00Z", "resize", "VERIFY_RESIZE");
    resize.flavor = Some(flavor("f-old", "old", 4, 8192, 30, 10));
    let quiet = server(
        QUIET,
        "vm-quiet",
        P,
        "2023-04-01T00:00:00Z",
        vec![
            ev("2023-04-01T00:00:00Z", "create", "BUILD"),
            ev("2023-04-01T00:01:00Z", "create", "ACTIVE"),
            resize,
            ev("2023-04-01T12:05:00Z", "confirmResize", "ACTIVE"),
            ev("2023-04-02T00:00:00Z", "stop", "SHUTOFF"),
        ],
    );
    let other = server(
        OTHER,
        "other-vm",
        Q,
        "2023-05-01T00:00:00Z",
        vec![ev("2023-05-01T00:00:00Z", "create", "BUILD"), ev("2023-05-01T00:01:00Z", "create", "ACTIVE")],
    );
    let mut private = flavor("f-priv", "private.big", 8, 16384, 40, 0);
    private.is_public = false;
    private.access = vec![P.into()];
    let mut hidden = flavor("f-hidden", "hidden", 1, 512, 1, 0);
    hidden.is_public = false;
    Site {
        region: "RegionOne".into(),
        flavors: vec![flavor("f1", "gpu.small", 2, 4096, 20, 10), private, hidden],
        images: vec![Image {
            id: "img1".into(),
            name: "ubuntu".into(),
            owner: P.into(),
            visibility: "public".into(),
            status: "active".into(),
            disk_format: Some("qcow2".into()),
            container_format: Some("bare".into()),
            size: Some(1),
            min_disk: 0,
            min_ram: 0,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            protected: false,
            created_at: t("2023-01-01T00:00:00Z"),
            updated_at: t("2023-01-01T00:00:00Z"),
            tags: vec![],
            properties: BTreeMap::new(),
            members: vec![],
            data: None,
        }],
        servers: vec![quiet, deleted, running, other],
        networks: vec![Network {
            id: "net1".into(),
            name: "private".into(),
            project_id: P.into(),
            external: false,
            shared: false,
            cidrs: vec!["10.0.0.0/24".into()],
            created_at: t("2023-01-01T00:00:00Z"),
        }],
        ports: vec![Port {
            id: "port-running".into(),
            name: String::new(),
            project_id: P.into(),
            network_id: "net1".into(),
            device_id: RUNNING.into(),
            device_owner: "compute:nova".into(),
            mac_address: "fa:16:3e:00:00:05".into(),
            fixed_ips: vec!["10.0.0.5".into()],
            created_at: t("2023-05-20T10:00:00Z"),
            deleted_at: None,
        }],
        floating_ips: vec![FloatingIp {
            id: "fip1".into(),
            project_id: P.into(),
            floating_network_id: "ext".into(),
            address: "192.0.2.10".into(),
            version: 4,
            created_at: t("2023-05-01T00:00:00Z"),
            deleted_at: None,
            associations: vec![FipAssociation {
                port_id: "port-running".into(),
                fixed_ip: "10.0.0.5".into(),
                from: t("2023-05-20T10:02:00Z"),
                to: None,
            }],
            description: String::new(),
        }],
        ..Default::default()
    }
}

fn token(user: &str, project: &str, roles: &[&str]) -> TokenInfo {
    TokenInfo {
        user_id: user.into(),
        user_name: user.into(),
        user_domain_id: "default".into(),
        scope: TokenScope::Project { id: project.into(), name: project.into(), domain_id: "default".into() },
        roles: roles.iter().map(|r| r.to_string()).collect(),
        methods: vec!["password".into()],
        issued_at: Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap(),
        expires_at: Utc.with_ymd_and_hms(2099, 1, 1, 0, 0, 0).unwrap(),
    }
}

async fn start_with(site: Site) -> sim::SimHandle {
    let scenario = sim::Scenario { name: "nova-test".into(), seed: 0, reference_time: t("2023-05-25T00:00:00Z"), site };
    let h = sim::start(sim::SimConfig::new(scenario)).await.unwrap();
    h.insert_token("admin-token", token("admin", "admin-project", &["admin", "member", "reader"]));
    h.insert_token("alice-token", token("u-alice", P, &["member", "reader"]));
    h.insert_token("carol-token", token("u-carol", Q, &["member", "reader"]));
    h.insert_token("empty-token", token("u-dave", EMPTY, &["reader"]));
    h
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn call(
    h: &sim::SimHandle,
    method: reqwest::Method,
    tok: &str,
    path: &str,
    mv: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let url = if path.starts_with("http") { path.to_string() } else { format!("{}/compute{path}", h.base_url()) };
    let mut r = reqwest::Client::new().request(method, url).header("X-Auth-Token", tok);
    if let Some(v) = mv {
        r = r.header("OpenStack-API-Version", format!("compute {v}"));
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    Answer { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::Null) }
}

async fn get(h: &sim::SimHandle, tok: &str, path: &str, mv: Option<&str>) -> Answer {
    call(h, reqwest::Method::GET, tok, path, mv, None).await
}

/// `POST path` with a JSON body.
async fn post(h: &sim::SimHandle, tok: &str, path: &str, mv: Option<&str>, body: Value) -> Answer {
    call(h, reqwest::Method::POST, tok, path, mv, Some(body)).await
}

/// The string `key` of each item of the array `v`.
fn strings(v: &Value, key: &str) -> Vec<String> {
    v.as_array().unwrap().iter().map(|s| s[key].as_str().unwrap().to_string()).collect()
}

fn names(v: &Value) -> Vec<String> {
    strings(v, "name")
}

#[tokio::test]
async fn caso_changes_since_listing_returns_changed_and_deleted_servers_of_the_project() {
    let h = start_with(site()).await;
    let a = get(&h, "alice-token", "/v2.1/servers/detail?changes-since=2023-05-21+00%3A00%3A00&limit=200", None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let servers = a.body["servers"].as_array().unwrap();
    // created_at desc: vm-running (05-20) before vm-deleted (05-19); vm-quiet unchanged since 04-02.
    assert_eq!(names(&a.body["servers"]), ["vm-running", "vm-deleted"]);
    assert!(a.body.get("servers_links").is_none());
    let running = &servers[0];
    assert_eq!(running["status"], "ACTIVE");
    assert_eq!(running["tenant_id"], P);
    assert_eq!(running["created"], "2023-05-20T10:00:00Z");
    assert_eq!(running["updated"], "2023-05-21T12:00:00Z");
    assert_eq!(running["OS-SRV-USG:launched_at"], "2023-05-20T10:01:00.000000");
    assert_eq!(running["OS-SRV-USG:terminated_at"], Value::Null);
    assert_eq!(running["flavor"]["id"], "f1");
    assert_eq!(running["image"]["id"], "img1");
    assert_eq!(running["OS-EXT-STS:vm_state"], "active");
    assert_eq!(running["OS-EXT-STS:power_state"], 1);
    assert_eq!(
        running["addresses"]["private"],
        json!([
            {"version": 4, "addr": "10.0.0.5", "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:05"},
            {"version": 4, "addr": "192.0.2.10", "OS-EXT-IPS:type": "floating", "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:05"},
        ])
    );
    assert!(running.get("OS-EXT-SRV-ATTR:host").is_none(), "extended attributes are admin-only");
    let deleted = &servers[1];
    assert_eq!(deleted["status"], "DELETED");
    assert_eq!(deleted["OS-SRV-USG:terminated_at"], "2023-05-22T06:00:00.000000");
    assert_eq!(deleted["updated"], "2023-05-22T06:00:00Z");
    assert_eq!(deleted["OS-EXT-STS:vm_state"], "deleted");

    // Without changes-since deleted servers are hidden, and so is a deleted server by id.
    let a = get(&h, "alice-token", "/v2.1/servers/detail", None).await;
    assert_eq!(names(&a.body["servers"]), ["vm-running", "vm-quiet"]);
    let a = get(&h, "alice-token", &format!("/v2.1/servers/{DELETED}"), None).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.body["itemNotFound"]["message"], format!("Instance {DELETED} could not be found."));
    // The usage-only server resolves by id, as cASO fetches it.
    let a = get(&h, "alice-token", &format!("/v2.1/servers/{QUIET}"), None).await;
    assert_eq!(a.body["server"]["status"], "SHUTOFF");
    assert_eq!(a.body["server"]["OS-EXT-STS:vm_state"], "stopped");
    h.stop().await;
}

#[tokio::test]
async fn non_admins_see_their_project_only_and_all_tenants_needs_admin() {
    let h = start_with(site()).await;
    let a = get(&h, "carol-token", "/v2.1/servers", None).await;
    assert_eq!(names(&a.body["servers"]), ["other-vm"]);
    assert_eq!(get(&h, "carol-token", &format!("/v2.1/servers/{RUNNING}"), None).await.status, 404);
    let a = get(&h, "alice-token", "/v2.1/servers/detail?all_tenants=1", None).await;
    assert_eq!(a.status, 403);
    assert!(a.body["forbidden"]["message"].as_str().unwrap().contains("get_all_tenants"));
    // project_id is ignored without all_tenants (lp:#1185290) and for non-admins.
    let a = get(&h, "alice-token", &format!("/v2.1/servers?project_id={Q}"), None).await;
    assert_eq!(names(&a.body["servers"]), ["vm-running", "vm-quiet"]);

    let a = get(&h, "admin-token", "/v2.1/servers/detail?all_tenants=True", None).await;
    assert_eq!(names(&a.body["servers"]), ["vm-running", "other-vm", "vm-quiet"]);
    assert_eq!(a.body["servers"][0]["OS-EXT-SRV-ATTR:instance_name"], "instance-00000003");
    // Admin listings across projects: (query, the servers listed in order).
    let listings: &[(&str, &[&str])] = &[
        (&format!("all_tenants=1&project_id={Q}"), &["other-vm"]),
        ("all_tenants=1&deleted=true", &["vm-deleted"]),
        ("all_tenants=1&status=shutoff", &["vm-quiet"]),
        ("all_tenants=1&name=%5Evm-r", &["vm-running"]),
        ("all_tenants=1&ip=192.0.2.10", &["vm-running"]),
    ];
    for (query, expected) in listings {
        let a = get(&h, "admin-token", &format!("/v2.1/servers/detail?{query}"), None).await;
        assert_eq!(a.status, 200, "{query}: {}", a.body);
        assert_eq!(names(&a.body["servers"]), *expected, "{query}");
    }
    let a = get(&h, "admin-token", "/v2.1/servers?all_tenants=1&sort_key=display_name&sort_dir=asc", None).await;
    assert_eq!(names(&a.body["servers"]), ["other-vm", "vm-quiet", "vm-running"]);
    let a = get(&h, "admin-token", "/v2.1/servers/detail?all_tenants=1&status=BOGUS", Some("2.38")).await;
    assert_eq!(a.status, 400);
    h.stop().await;
}

#[tokio::test]
async fn microversions_change_the_server_shape_and_are_echoed() {
    let h = start_with(site()).await;
    let old = get(&h, "alice-token", &format!("/v2.1/servers/{QUIET}"), None).await;
    assert_eq!(old.headers["openstack-api-version"], "compute 2.1");
    assert_eq!(old.headers["x-openstack-nova-api-version"], "2.1");
    assert!(old.headers["vary"].to_str().unwrap().contains("OpenStack-API-Version"));
    assert_eq!(old.body["server"]["flavor"]["id"], "f-old", "the flavor in effect after the resize");
    assert!(old.body["server"].get("locked").is_none());

    let new = get(&h, "alice-token", &format!("/v2.1/servers/{QUIET}"), Some("2.47")).await;
    assert_eq!(new.headers["openstack-api-version"], "compute 2.47");
    // The server's own flavor snapshot after its resize, not the current f1.
    assert_eq!(
        new.body["server"]["flavor"],
        json!({"vcpus": 4, "ram": 8192, "disk": 30, "ephemeral": 10, "swap": 0, "original_name": "old",
               "extra_specs": {"accounting:benchmark_value": "12.5"}})
    );
    assert_eq!(new.body["server"]["locked"], false);
    assert_eq!(new.body["server"]["tags"], json!([]));
    assert_eq!(new.body["server"]["description"], Value::Null);
    assert!(new.body["server"].get("server_groups").is_none(), "server_groups from 2.71");
    let v71 = get(&h, "alice-token", &format!("/v2.1/servers/{QUIET}"), Some("2.71")).await;
    assert_eq!(v71.body["server"]["server_groups"], json!([]), "2.71+: on show (real Nova 34 too)");

    let latest = get(&h, "alice-token", "/v2.1/servers", Some("latest")).await;
    assert_eq!(latest.headers["openstack-api-version"], "compute 2.79");
    let a = get(&h, "alice-token", "/v2.1/servers", Some("2.80")).await;
    assert_eq!(a.status, 406);
    assert!(a.body["computeFault"]["message"].as_str().unwrap().contains("maximum is 2.79"));
    // Refused as out of range, the asked version is echoed (as nova-api does); a malformed one is not.
    assert_eq!(a.headers["openstack-api-version"], "compute 2.80");
    assert_eq!(a.headers["x-openstack-nova-api-version"], "2.80");
    let bad = get(&h, "alice-token", "/v2.1/servers", Some("2.x")).await;
    assert_eq!(bad.status, 400);
    assert!(!bad.headers.contains_key("openstack-api-version"));
    // Unauthenticated requests are refused before the version is looked at.
    assert_eq!(get(&h, "bogus", "/v2.1/servers", Some("2.80")).await.status, 401);

    let doc = get(&h, "", "/v2.1/", None).await;
    assert_eq!(doc.body["version"]["version"], "2.79");
    assert_eq!(doc.body["version"]["min_version"], "2.1");
    // `/compute` (the outer router sends `/compute/` nowhere; see the report).
    let root = get(&h, "", &format!("{}/compute", h.base_url()), None).await;
    assert_eq!(root.status, 200);
    assert_eq!(root.body["versions"][1]["id"], "v2.1");
    assert_eq!(root.body["versions"][1]["version"], "2.79");
    let a = get(&h, "alice-token", "/v2.1/no-such-thing", None).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.body["itemNotFound"]["code"], 404);
    h.stop().await;
}

#[tokio::test]
async fn paging_2500_servers_with_limit_marker_and_next_links_visits_each_once() {
    let mut s = site();
    let t0 = t("2023-01-01T00:00:00Z");
    s.servers = (0..2500)
        .map(|i| {
            let at = t0 + Duration::minutes(i);
            let mut sv = server(
                &format!("00000000-0000-4000-8000-{i:012}"),
                &format!("vm-{i:04}"),
                P,
                "2023-01-01T00:00:00Z",
                vec![],
            );
            sv.created = at;
            sv.events = vec![ServerEvent { at, action: "create".into(), status: "ACTIVE".into(), flavor: None }];
            sv.launched_at = Some(at);
            sv
        })
        .collect();
    let h = start_with(s).await;
    let mut url = "/v2.1/servers/detail?limit=1000".to_string();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let a = get(&h, "alice-token", &url, None).await;
        assert_eq!(a.status, 200);
        pages += 1;
        seen.extend(names(&a.body["servers"]));
        match a.body["servers_links"][0]["href"].as_str() {
            Some(next) => {
                assert_eq!(a.body["servers_links"][0]["rel"], "next");
                assert!(next.contains("/compute/v2.1/servers/detail?limit=1000&marker="));
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..2500).rev().map(|i| format!("vm-{i:04}")).collect();
    assert_eq!(seen, expected);
    // Without limit, osapi_max_limit (1000) applies and a link follows.
    let a = get(&h, "alice-token", "/v2.1/servers", None).await;
    assert_eq!(a.body["servers"].as_array().unwrap().len(), 1000);
    assert!(
        a.body["servers_links"][0]["href"].as_str().unwrap().contains("marker=00000000-0000-4000-8000-000000001500")
    );
    let a = get(&h, "alice-token", "/v2.1/servers?marker=nope", None).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["badRequest"]["message"], "marker [nope] not found");
    h.stop().await;
}

#[tokio::test]
async fn usage_counts_hours_in_the_window_with_the_flavor_snapshot() {
    let h = start_with(site()).await;
    let a = get(
        &h,
        "alice-token",
        &format!("/v2.1/os-simple-tenant-usage/{P}?start=2023-05-21T00:00:00&end=2023-05-25T00:00:00"),
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let u = &a.body["tenant_usage"];
    assert_eq!(u["tenant_id"], P);
    assert_eq!(u["start"], "2023-05-21T00:00:00.000000");
    assert_eq!(u["stop"], "2023-05-25T00:00:00.000000");
    let su = u["server_usages"].as_array().unwrap();
    assert_eq!(strings(&u["server_usages"], "instance_id"), [RUNNING, DELETED, QUIET], "ordered by uuid");
    assert_eq!(su[0]["hours"], 96.0);
    assert_eq!(su[0]["state"], "active");
    assert_eq!(su[0]["started_at"], "2023-05-20T10:01:00.000000");
    assert_eq!(su[1]["hours"], 30.0);
    assert_eq!(su[1]["state"], "terminated");
    assert_eq!(su[1]["ended_at"], "2023-05-22T06:00:00.000000");
    assert_eq!(su[1]["uptime"], 3 * 86400 + 6 * 3600 - 60);
    assert_eq!(su[1]["local_gb"], 30);
    assert_eq!(
        (su[2]["vcpus"].clone(), su[2]["memory_mb"].clone(), su[2]["local_gb"].clone()),
        (json!(4), json!(8192), json!(40))
    );
    assert_eq!(su[2]["flavor"], "old");
    assert_eq!(su[2]["state"], "stopped");
    assert_eq!(u["total_vcpus_usage"], 2.0 * 96.0 + 2.0 * 30.0 + 4.0 * 96.0);
    assert_eq!(u["total_hours"], 222.0);

    // A window before the deletion excludes nothing launched later; one after it drops vm-deleted.
    let a = get(
        &h,
        "alice-token",
        &format!("/v2.1/os-simple-tenant-usage/{P}?start=2023-05-23T00:00:00&end=2023-05-24T00:00:00.000000"),
        None,
    )
    .await;
    assert_eq!(strings(&a.body["tenant_usage"]["server_usages"], "instance_id"), [RUNNING, QUIET]);

    let a = get(
        &h,
        "empty-token",
        &format!("/v2.1/os-simple-tenant-usage/{EMPTY}?start=2023-05-21T00:00:00&end=2023-05-25T00:00:00"),
        None,
    )
    .await;
    assert_eq!(a.body, json!({"tenant_usage": {}}));
    // Refused: another project's usage, all projects' without admin, a start not in ISO form.
    let refused = [
        (format!("/v2.1/os-simple-tenant-usage/{Q}"), 403),
        ("/v2.1/os-simple-tenant-usage".to_string(), 403),
        (format!("/v2.1/os-simple-tenant-usage/{P}?start=2023-05-21+00:00:00"), 400),
    ];
    for (path, status) in &refused {
        assert_eq!(get(&h, "alice-token", path, None).await.status, *status, "{path}");
    }

    let a = get(
        &h,
        "admin-token",
        "/v2.1/os-simple-tenant-usage?start=2023-05-21T00:00:00&end=2023-05-25T00:00:00&detailed=1",
        None,
    )
    .await;
    assert_eq!(strings(&a.body["tenant_usages"], "tenant_id"), [P, Q]);
    // From 2.40 the list pages by instance.
    let a = get(
        &h,
        "admin-token",
        "/v2.1/os-simple-tenant-usage?start=2023-05-21T00:00:00&end=2023-05-25T00:00:00&detailed=1&limit=2",
        Some("2.40"),
    )
    .await;
    assert_eq!(a.body["tenant_usages"][0]["server_usages"].as_array().unwrap().len(), 2);
    assert!(a.body["tenant_usages_links"][0]["href"].as_str().unwrap().contains(&format!("marker={DELETED}")));
    h.stop().await;
}

#[tokio::test]
async fn instance_actions_follow_the_server_history() {
    let h = start_with(site()).await;
    let a = get(&h, "alice-token", &format!("/v2.1/servers/{QUIET}/os-instance-actions"), None).await;
    assert_eq!(strings(&a.body["instanceActions"], "action"), ["stop", "confirmResize", "resize", "create"]);
    let create = &a.body["instanceActions"][3];
    assert_eq!(create["start_time"], "2023-04-01T00:00:00.000000");
    assert!(create.get("updated_at").is_none());
    let rid = create["request_id"].as_str().unwrap().to_string();

    let a = get(&h, "alice-token", &format!("/v2.1/servers/{QUIET}/os-instance-actions/{rid}"), Some("2.51")).await;
    let ev = &a.body["instanceAction"]["events"][0];
    assert_eq!(ev["event"], "compute__do_build_and_run_instance");
    assert_eq!(ev["finish_time"], "2023-04-01T00:01:00.000000");
    assert_eq!(ev["result"], "Success");
    assert!(ev.get("traceback").is_none());
    let a = get(&h, "alice-token", &format!("/v2.1/servers/{QUIET}/os-instance-actions/{rid}"), None).await;
    assert!(a.body["instanceAction"].get("events").is_none(), "events are admin-only before 2.51");

    let a = get(
        &h,
        "alice-token",
        &format!("/v2.1/servers/{QUIET}/os-instance-actions?limit=2&changes-since=2023-04-01T00:00:00Z"),
        Some("2.58"),
    )
    .await;
    assert_eq!(strings(&a.body["instanceActions"], "action"), ["stop", "confirmResize"]);
    assert_eq!(a.body["instanceActions"][0]["updated_at"], "2023-04-02T00:00:00.000000");
    assert!(a.body["links"][0]["href"].as_str().unwrap().contains("/os-instance-actions?"));

    // Deleted servers' actions from 2.21 only.
    assert_eq!(get(&h, "alice-token", &format!("/v2.1/servers/{DELETED}/os-instance-actions"), None).await.status, 404);
    let a = get(&h, "alice-token", &format!("/v2.1/servers/{DELETED}/os-instance-actions"), Some("2.21")).await;
    assert_eq!(a.body["instanceActions"][0]["action"], "delete");
    h.stop().await;
}

#[tokio::test]
async fn flavors_show_public_and_accessible_ones_per_microversion() {
    let h = start_with(site()).await;
    let a = get(&h, "alice-token", "/v2.1/flavors/detail", None).await;
    assert_eq!(strings(&a.body["flavors"], "id"), ["f-priv", "f1"]);
    let f1 = &a.body["flavors"][1];
    assert_eq!(f1["swap"], "");
    assert_eq!(f1["OS-FLV-EXT-DATA:ephemeral"], 10);
    assert_eq!(f1["os-flavor-access:is_public"], true);
    assert!(f1.get("extra_specs").is_none());
    let a = get(&h, "carol-token", "/v2.1/flavors", None).await;
    assert_eq!(a.body["flavors"].as_array().unwrap().len(), 1);
    let a = get(&h, "admin-token", "/v2.1/flavors?is_public=none", None).await;
    assert_eq!(a.body["flavors"].as_array().unwrap().len(), 3);
    let a = get(&h, "alice-token", "/v2.1/flavors/f1", Some("2.75")).await;
    assert_eq!(a.body["flavor"]["swap"], 0);
    assert_eq!(a.body["flavor"]["extra_specs"]["accounting:benchmark_value"], "12.5");
    let a = get(&h, "alice-token", "/v2.1/flavors/f1/os-extra_specs", None).await;
    assert_eq!(a.body, json!({"extra_specs": {"accounting:benchmark_value": "12.5"}}));
    assert_eq!(
        get(&h, "alice-token", "/v2.1/flavors/nope", None).await.body["itemNotFound"]["message"],
        "Flavor nope could not be found."
    );
    assert_eq!(get(&h, "admin-token", "/v2.1/flavors/f1/os-flavor-access", None).await.status, 404);
    let a = get(&h, "admin-token", "/v2.1/flavors/f-priv/os-flavor-access", None).await;
    assert_eq!(a.body["flavor_access"], json!([{"flavor_id": "f-priv", "tenant_id": P}]));
    let a = get(&h, "alice-token", "/v2.1/flavors?limit=1", None).await;
    assert!(a.body["flavors_links"][0]["href"].as_str().unwrap().ends_with("/v2.1/flavors?limit=1&marker=f-priv"));
    h.stop().await;
}

#[tokio::test]
async fn quotas_and_limits_count_the_projects_live_servers() {
    let h = start_with(site()).await;
    let a = get(&h, "alice-token", "/v2.1/limits", None).await;
    let abs = &a.body["limits"]["absolute"];
    assert_eq!(
        (abs["totalInstancesUsed"].clone(), abs["totalCoresUsed"].clone(), abs["totalRAMUsed"].clone()),
        (json!(2), json!(6), json!(12288))
    );
    assert_eq!(abs["maxTotalInstances"], 10);
    let a = get(&h, "alice-token", &format!("/v2.1/os-quota-sets/{P}/detail"), None).await;
    assert_eq!(a.body["quota_set"]["cores"], json!({"in_use": 6, "limit": 20, "reserved": 0}));
    let a = get(&h, "alice-token", &format!("/v2.1/os-quota-sets/{P}"), Some("2.57")).await;
    assert_eq!(a.body["quota_set"]["instances"], 10);
    assert!(a.body["quota_set"].get("injected_files").is_none());
    assert_eq!(get(&h, "alice-token", &format!("/v2.1/os-quota-sets/{Q}"), None).await.status, 403);
    h.stop().await;
}

#[tokio::test]
async fn a_created_server_builds_becomes_active_and_is_deleted() {
    let h = start_with(site()).await;
    // Refused creations: (flavorRef, imageRef, Nova's message).
    let refused =
        [("nope", "img1", "Flavor nope could not be found."), ("f1", "missing", "Can not find requested image")];
    for (flavor, image, message) in refused {
        let body = json!({"server": {"name": "probe", "flavorRef": flavor, "imageRef": image}});
        let bad = post(&h, "alice-token", "/v2.1/servers", None, body).await;
        assert_eq!(bad.status, 400, "{flavor}/{image}");
        assert_eq!(bad.body["badRequest"]["message"], message);
    }

    let body = json!({"server": {"name": "probe", "flavorRef": "f1", "imageRef": "img1", "networks": "auto"}});
    let a = post(&h, "alice-token", "/v2.1/servers", Some("2.37"), body).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let id = a.body["server"]["id"].as_str().unwrap().to_string();
    assert!(a.body["server"]["adminPass"].is_string());
    assert_eq!(a.body["server"]["security_groups"], json!([{"name": "default"}]));

    let s = get(&h, "alice-token", &format!("/v2.1/servers/{id}"), None).await;
    assert_eq!(s.body["server"]["status"], "BUILD");
    assert_eq!(s.body["server"]["addresses"], json!({}));
    h.set_now(h.now() + Duration::seconds(3));
    let s = get(&h, "alice-token", &format!("/v2.1/servers/{id}"), None).await;
    assert_eq!(s.body["server"]["status"], "ACTIVE");
    assert_eq!(s.body["server"]["addresses"]["private"][0]["addr"], "10.0.0.10");
    assert!(s.body["server"]["OS-SRV-USG:launched_at"].is_string());

    // Starting an active server is a conflict; stopping it is accepted.
    for (action, status) in [("os-start", 409), ("os-stop", 202)] {
        let a = post(&h, "alice-token", &format!("/v2.1/servers/{id}/action"), None, json!({ action: null })).await;
        assert_eq!(a.status, status, "{action}: {}", a.body);
    }
    h.set_now(h.now() + Duration::milliseconds(10));
    assert_eq!(get(&h, "alice-token", &format!("/v2.1/servers/{id}"), None).await.body["server"]["status"], "SHUTOFF");

    let a = call(&h, reqwest::Method::DELETE, "alice-token", &format!("/v2.1/servers/{id}"), None, None).await;
    assert_eq!(a.status, 204);
    h.set_now(h.now() + Duration::seconds(2));
    assert_eq!(get(&h, "alice-token", &format!("/v2.1/servers/{id}"), None).await.status, 404);
    let a = get(&h, "alice-token", "/v2.1/servers/detail?changes-since=2023-05-24T00:00:00Z", None).await;
    let probe = a.body["servers"].as_array().unwrap().iter().find(|s| s["id"] == id.as_str()).unwrap();
    assert_eq!(probe["status"], "DELETED");
    assert!(probe["OS-SRV-USG:terminated_at"].is_string());
    let a = get(&h, "alice-token", &format!("/v2.1/servers/{id}/os-instance-actions"), Some("2.21")).await;
    assert_eq!(strings(&a.body["instanceActions"], "action"), ["delete", "stop", "create"]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_20000_servers_pages_through_every_one_once() {
    let mut s = site();
    let t0 = t("2022-01-01T00:00:00Z");
    s.servers = (0..20_000)
        .map(|i| {
            let at = t0 + Duration::minutes(i);
            let project = if i % 2 == 0 { P } else { Q };
            let mut sv = server(
                &format!("00000000-0000-4000-8000-{i:012}"),
                &format!("vm-{i:05}"),
                project,
                "2022-01-01T00:00:00Z",
                vec![],
            );
            sv.created = at;
            sv.events = vec![
                ServerEvent { at, action: "create".into(), status: "ACTIVE".into(), flavor: None },
                ServerEvent {
                    at: at + Duration::days(3),
                    action: "delete".into(),
                    status: if i % 3 == 0 { "DELETED" } else { "ACTIVE" }.into(),
                    flavor: None,
                },
            ];
            sv.launched_at = Some(at);
            sv.fixed_ips = vec![("private".into(), format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256), 4)];
            sv
        })
        .collect();
    let h = start_with(s).await;
    let mut url = "/v2.1/servers/detail?all_tenants=1&changes-since=2022-01-01T00:00:00Z".to_string();
    let mut total = 0;
    loop {
        let a = get(&h, "admin-token", &url, Some("2.79")).await;
        assert_eq!(a.status, 200);
        total += a.body["servers"].as_array().unwrap().len();
        match a.body["servers_links"][0]["href"].as_str() {
            Some(next) => url = next.to_string(),
            None => break,
        }
    }
    assert_eq!(total, 20_000);
    let a = get(
        &h,
        "admin-token",
        "/v2.1/os-simple-tenant-usage?start=2022-01-01T00:00:00&end=2023-01-01T00:00:00",
        Some("2.1"),
    )
    .await;
    let n: usize =
        a.body["tenant_usages"].as_array().unwrap().iter().map(|u| u["total_hours"].as_f64().unwrap() as usize).sum();
    assert!(n > 0);
    h.stop().await;
}

async fn raw(h: &sim::SimHandle, tok: &str, path: &str, mv: Option<&str>) -> String {
    let mut r = reqwest::Client::new().get(format!("{}/compute{path}", h.base_url())).header("X-Auth-Token", tok);
    if let Some(v) = mv {
        r = r.header("OpenStack-API-Version", format!("compute {v}"));
    }
    r.send().await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn listed_servers_are_rendered_once_per_view_and_follow_changes() {
    let h = start_with(site()).await;
    let path = "/v2.1/servers/detail?limit=2";
    let first = raw(&h, "alice-token", path, None).await;
    let again = raw(&h, "alice-token", path, None).await;
    assert_eq!(first, again);
    // The bytes a compact serialization of the same JSON gives (sorted keys, no spaces).
    let v: Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again, v.to_string());
    assert!(v["servers_links"].is_array(), "a full page links the next one: {again}");
    // Each item answered from the view's rendered servers is the server as `show` renders it.
    let items = v["servers"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    for s in items {
        let shown = get(&h, "alice-token", &format!("/v2.1/servers/{}", s["id"].as_str().unwrap()), None).await;
        assert_eq!(&shown.body["server"], s);
    }
    // Another microversion is rendered on its own: the embedded flavor from 2.47.
    let newer: Value = serde_json::from_str(&raw(&h, "alice-token", path, Some("2.47")).await).unwrap();
    assert!(newer["servers"][0]["flavor"]["original_name"].is_string(), "{newer}");
    assert!(v["servers"][0]["flavor"]["original_name"].is_null());
    // A write ends the view: the stopped server is listed SHUTOFF, not from the old render.
    let all: Value = serde_json::from_str(&raw(&h, "alice-token", "/v2.1/servers/detail", None).await).unwrap();
    let status_of = |v: &Value, id: &str| {
        v["servers"].as_array().unwrap().iter().find(|s| s["id"] == id).map(|s| s["status"].clone())
    };
    assert_eq!(status_of(&all, RUNNING), Some(json!("ACTIVE")));
    let a = post(&h, "alice-token", &format!("/v2.1/servers/{RUNNING}/action"), None, json!({"os-stop": null})).await;
    assert_eq!(a.status, 202, "{}", a.body);
    h.set_now(h.now() + Duration::milliseconds(10));
    let all: Value = serde_json::from_str(&raw(&h, "alice-token", "/v2.1/servers/detail", None).await).unwrap();
    assert_eq!(status_of(&all, RUNNING), Some(json!("SHUTOFF")));
    h.stop().await;
}
