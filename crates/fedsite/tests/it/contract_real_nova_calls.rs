//! Contract tests, sim against the REAL Nova API and Cinder API of
//! `scripts/peers.sh start`, for the calls fedsite makes that
//! contract_real_nova.rs does not compare: the version documents and the
//! microversion headers (and the 406 above the max), `servers/detail` before
//! and from 2.47, changes-since with deleted servers and marker paging, a
//! server, a project's usage, flavors (2.60 vs 2.61, one flavor, its extra
//! specs, flavor access), quota sets and limits as cloudinfo and the
//! `openstack` crate ask for them, and `volumes/detail` at 3.0 and 3.60.
//! Raw HTTP (reqwest), the same request on both sides; same keys and JSON
//! types (tests/it/common/shape.rs), same values where the seed makes them equal,
//! apart from the [`KNOWN`] differences. A missing peer fails the test.

use crate::common;

use std::collections::BTreeSet;

use common::shape::shape_diff;
use serde_json::Value;

/// Differences between real Nova / Cinder and the sim that are accepted:
/// (calls whose name starts with, path, reason); also in docs/sim.md.
const KNOWN: &[(&str, &str, &str)] =
    &[("servers/detail", "servers[].image", BOOT_FROM_VOLUME), ("servers/{id}", "server.image", BOOT_FROM_VOLUME)];

const BOOT_FROM_VOLUME: &str = "data, not API: a server booted from a volume has `\"image\": \"\"` in real Nova \
     too; only the sim's scenario has such servers (every seeded real server has an image)";

/// One side: the real services or the in-process sim.
struct Side {
    label: &'static str,
    http: reqwest::Client,
    token: String,
    /// `…/v2.1`, `…/v3` (no project id), Cinder's root (`…/` above `v3`).
    compute: String,
    volume: String,
    volume_root: String,
    /// The usage window the side's data lives in.
    window: &'static str,
    _sim: Option<sim::SimHandle>,
}

/// What a GET answered.
struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Reply {
    /// Every value of header `name`, split at commas, trimmed.
    fn header_items(&self, name: &str) -> BTreeSet<String> {
        self.headers
            .get_all(name)
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("").split(',').map(|s| s.trim().to_string()).collect::<Vec<_>>())
            .filter(|s| !s.is_empty())
            .collect()
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_string())
    }
}

async fn token(http: &reqwest::Client, ks: &str, password: &str) -> String {
    let body = serde_json::json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}});
    let resp = http.post(format!("{ks}/auth/tokens")).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 201, "token from {ks}");
    resp.headers()["x-subject-token"].to_str().unwrap().to_string()
}

impl Side {
    async fn real() -> Side {
        let http = reqwest::Client::new();
        let volume = common::real_cinder();
        Side {
            label: "real",
            token: token(&http, &common::real_keystone(), &common::real_admin_password()).await,
            compute: common::real_nova(),
            volume_root: format!("{}/", volume.trim_end_matches("/v3")),
            volume,
            window: "start=2026-11-01T00:00:00&end=2026-12-01T00:00:00",
            http,
            _sim: None,
        }
    }

    async fn sim() -> Side {
        let http = reqwest::Client::new();
        let h = common::start_sim().await;
        Side {
            label: "sim",
            token: token(&http, h.auth_url().trim_end_matches('/'), sim::scenario::PASSWORD).await,
            compute: format!("{}/compute/v2.1", h.base_url()),
            volume: format!("{}/volume/v3", h.base_url()),
            volume_root: format!("{}/volume/", h.base_url()),
            window: "start=2023-05-01T00:00:00&end=2023-06-01T00:00:00",
            http,
            _sim: Some(h),
        }
    }

    /// GET `url` with the token and, when given, `OpenStack-API-Version: <version>`.
    async fn get(&self, url: &str, version: Option<&str>) -> Reply {
        let mut req = self.http.get(url).header("X-Auth-Token", &self.token);
        if let Some(v) = version {
            req = req.header("OpenStack-API-Version", v);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{}: GET {url}: {e}", self.label));
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        let body = resp.json().await.unwrap_or(Value::Null);
        Reply { status, headers, body }
    }

    /// GET that must answer `want`; the body.
    async fn expect(&self, want: u16, url: &str, version: Option<&str>) -> Value {
        let r = self.get(url, version).await;
        assert_eq!(r.status, want, "{}: GET {url} ({version:?}): {}", self.label, r.body);
        r.body
    }

    async fn ok(&self, url: &str, version: Option<&str>) -> Value {
        self.expect(200, url, version).await
    }

    /// A project that has servers (the first one listed).
    async fn project_with_servers(&self) -> String {
        let list = self.ok(&format!("{}/servers/detail?all_tenants=1", self.compute), Some("compute 2.79")).await;
        list["servers"][0]["tenant_id"].as_str().unwrap_or_else(|| panic!("{}: no servers: {list}", self.label)).into()
    }
}

async fn both() -> (Side, Side) {
    (Side::real().await, Side::sim().await)
}

/// Shape differences of one call, `KNOWN` entries for `what` applied.
fn diff(what: &str, real: &Value, sim: &Value) -> Vec<String> {
    let known: Vec<(&str, &str)> =
        KNOWN.iter().filter(|(w, _, _)| what.starts_with(w)).map(|(_, p, why)| (*p, *why)).collect();
    shape_diff(real, sim, &known).into_iter().map(|d| format!("{what}: {d}")).collect()
}

#[track_caller]
fn assert_no_diffs(diffs: &[String]) {
    assert!(diffs.is_empty(), "the sim's answers differ from real Nova's / Cinder's:\n  {}", diffs.join("\n  "));
}

/// The minor of `"2.104"` / `"3.71"`.
fn minor(v: &Value) -> u32 {
    v.as_str().and_then(|s| s.split_once('.')).and_then(|(_, m)| m.parse().ok()).unwrap_or_else(|| panic!("{v}"))
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().cloned().collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn compute_version_document_microversion_headers_and_406_above_the_max() {
    let (real, sim) = both().await;
    let mut diffs = Vec::new();
    let mut docs = Vec::new();
    for side in [&real, &sim] {
        // What the openstack crate reads to negotiate (`<compute>/`), no version asked.
        let doc = side.ok(&format!("{}/", side.compute), None).await;
        let v = &doc["version"];
        assert_eq!((v["id"].as_str(), v["status"].as_str()), (Some("v2.1"), Some("CURRENT")), "{}", side.label);
        assert_eq!(v["min_version"], "2.1", "{}", side.label);
        assert!(minor(&v["version"]) >= 79, "{}: the openstack crate asks for 2.79: {doc}", side.label);
        docs.push(doc);
    }
    diffs.extend(diff("GET /v2.1/", &docs[0], &docs[1]));

    for side in [&real, &sim] {
        let url = format!("{}/servers/detail?all_tenants=1&limit=1", side.compute);
        for (asked, legacy, echoed) in
            [(None, None, "2.1"), (Some("compute 2.47"), None, "2.47"), (Some("compute 2.79"), None, "2.79")]
                .into_iter()
                .chain([(None, Some("2.60"), "2.60")])
        {
            let r = match legacy {
                None => side.get(&url, asked).await,
                Some(l) => {
                    let resp = side
                        .http
                        .get(&url)
                        .header("X-Auth-Token", &side.token)
                        .header("X-OpenStack-Nova-API-Version", l)
                        .send()
                        .await
                        .unwrap();
                    Reply { status: resp.status().as_u16(), headers: resp.headers().clone(), body: Value::Null }
                }
            };
            assert_eq!(r.status, 200, "{}: {asked:?} {legacy:?}", side.label);
            assert_eq!(r.header("openstack-api-version"), Some(format!("compute {echoed}")), "{}", side.label);
            assert_eq!(r.header("x-openstack-nova-api-version").as_deref(), Some(echoed), "{}", side.label);
            assert_eq!(
                r.header_items("vary"),
                BTreeSet::from(["OpenStack-API-Version", "X-OpenStack-Nova-API-Version"].map(String::from)),
                "{}",
                side.label
            );
        }
    }

    // One above the side's own max: 406, the same fault body, the asked version echoed.
    let mut faults = Vec::new();
    for (side, doc) in [&real, &sim].into_iter().zip(&docs) {
        let above = format!("2.{}", minor(&doc["version"]["version"]) + 1);
        let r = side.get(&format!("{}/servers/detail", side.compute), Some(&format!("compute {above}"))).await;
        assert_eq!(r.status, 406, "{}: {}", side.label, r.body);
        let msg = r.body["computeFault"]["message"].as_str().unwrap_or_default().to_string();
        assert_eq!(
            msg,
            format!(
                "Version {above} is not supported by the API. Minimum is 2.1 and maximum is {}.",
                doc["version"]["version"].as_str().unwrap()
            ),
            "{}",
            side.label
        );
        assert_eq!(r.header("openstack-api-version"), Some(format!("compute {above}")), "{}: 406", side.label);
        assert_eq!(r.header("x-openstack-nova-api-version"), Some(above.clone()), "{}: 406", side.label);
        faults.push(r.body);
    }
    diffs.extend(diff("406", &faults[0], &faults[1]));
    assert_no_diffs(&diffs);
}

#[tokio::test(flavor = "multi_thread")]
async fn servers_detail_embeds_flavor_ids_before_2_47_and_flavor_copies_from_2_47() {
    let (real, sim) = both().await;
    let seed = common::real_nova_seed();
    let mut diffs = Vec::new();
    for (version, want) in [
        ("2.46", vec!["id", "links"]),
        ("2.47", vec!["disk", "ephemeral", "extra_specs", "original_name", "ram", "swap", "vcpus"]),
    ] {
        let mut bodies = Vec::new();
        for side in [&real, &sim] {
            let url = format!("{}/servers/detail?all_tenants=1", side.compute);
            let body = side.ok(&url, Some(&format!("compute {version}"))).await;
            let servers = body["servers"].as_array().unwrap();
            assert!(!servers.is_empty(), "{}", side.label);
            for s in servers {
                let got: Vec<String> = keys(&s["flavor"]).into_iter().collect();
                assert_eq!(got, want, "{} at {version}: {}", side.label, s["flavor"]);
            }
            bodies.push(body);
        }
        // The real site: the flavor id (2.46) and name (2.47) the seed gave web-active.
        let web = bodies[0]["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == seed["servers"]["web-active"])
            .expect("web-active listed");
        if version == "2.46" {
            assert_eq!(web["flavor"]["id"], seed["flavors"]["m1.small"]);
        } else {
            assert_eq!(web["flavor"]["original_name"], "m1.small");
        }
        diffs.extend(diff(&format!("servers/detail {version}"), &bodies[0], &bodies[1]));
    }
    assert_no_diffs(&diffs);
}

/// Every page of `url` by its `servers_links` next href: (pages, servers).
async fn all_pages(side: &Side, url: &str, limit: usize) -> (Vec<Value>, Vec<Value>) {
    let (mut pages, mut servers) = (Vec::new(), Vec::new());
    let mut next = Some(url.to_string());
    while let Some(url) = next.take() {
        assert!(pages.len() < 50, "{}: runaway paging at {url}", side.label);
        let page = side.ok(&url, Some("compute 2.79")).await;
        let items = page["servers"].as_array().unwrap().clone();
        assert!(items.len() <= limit, "{}: {} servers on a page of {limit}", side.label, items.len());
        if let Some(href) = page["servers_links"]
            .as_array()
            .and_then(|l| l.iter().find(|x| x["rel"] == "next").and_then(|x| x["href"].as_str()).map(String::from))
        {
            let last = items.last().unwrap_or_else(|| panic!("{}: a next link on an empty page", side.label));
            let q: Vec<(String, String)> =
                url::Url::parse(&href).unwrap().query_pairs().map(|(k, v)| (k.into(), v.into())).collect();
            let get = |k: &str| q.iter().find(|(qk, _)| qk == k).map(|(_, v)| v.as_str());
            assert_eq!(get("marker"), last["id"].as_str(), "{}: the marker is the page's last server", side.label);
            assert_eq!(get("all_tenants"), Some("1"), "{}: {href}", side.label);
            assert_eq!(get("limit"), Some(limit.to_string().as_str()), "{}: {href}", side.label);
            assert!(get("changes-since").is_some(), "{}: the filter is kept: {href}", side.label);
            next = Some(href);
        }
        servers.extend(items);
        pages.push(page);
    }
    (pages, servers)
}

#[tokio::test(flavor = "multi_thread")]
async fn servers_detail_changes_since_lists_deleted_servers_and_pages_by_marker() {
    let (real, sim) = both().await;
    let seed = common::real_nova_seed();
    let mut diffs = Vec::new();
    let mut deleted_bodies = Vec::new();
    let mut first_pages = Vec::new();
    for side in [&real, &sim] {
        let base = format!("{}/servers/detail?all_tenants=1&changes-since=2000-01-01T00:00:00Z", side.compute);
        let whole = side.ok(&base, Some("compute 2.79")).await;
        let whole = whole["servers"].as_array().unwrap();
        let (pages, paged) = all_pages(side, &format!("{base}&limit=3"), 3).await;
        assert!(pages.len() >= 3, "{}: several pages: {}", side.label, paged.len());
        let ids = |v: &[Value]| v.iter().map(|s| s["id"].as_str().unwrap().to_string()).collect::<Vec<_>>();
        let unique: BTreeSet<String> = ids(&paged).into_iter().collect();
        assert_eq!(unique.len(), paged.len(), "{}: a server on two pages", side.label);
        assert_eq!(ids(&paged), ids(whole), "{}: the pages, in order, are the whole listing", side.label);

        let deleted: Vec<Value> = paged.iter().filter(|s| s["status"] == "DELETED").cloned().collect();
        assert!(!deleted.is_empty(), "{}: changes-since lists deleted servers", side.label);
        for d in &deleted {
            assert_eq!(d["OS-EXT-STS:vm_state"], "deleted", "{}: {d}", side.label);
            assert!(d["OS-SRV-USG:terminated_at"].is_string(), "{}: {d}", side.label);
        }
        // Without changes-since: no deleted server.
        let alive = side.ok(&format!("{}/servers/detail?all_tenants=1", side.compute), Some("compute 2.79")).await;
        let alive = alive["servers"].as_array().unwrap();
        assert_eq!(alive.len() + deleted.len(), paged.len(), "{}", side.label);
        assert!(alive.iter().all(|s| s["status"] != "DELETED"), "{}", side.label);
        deleted_bodies.push(serde_json::json!({ "servers": deleted }));
        first_pages.push(pages[0].clone());
    }
    let real_deleted: BTreeSet<&str> =
        deleted_bodies[0]["servers"].as_array().unwrap().iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(
        real_deleted,
        [&seed["servers"]["deleted"], &seed["servers"]["deleted-early"]].iter().filter_map(|v| v.as_str()).collect()
    );
    diffs.extend(diff("servers/detail deleted", &deleted_bodies[0], &deleted_bodies[1]));
    diffs.extend(diff("servers/detail changes-since page", &first_pages[0], &first_pages[1]));
    assert_no_diffs(&diffs);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_server_and_one_projects_usage_have_the_real_shape() {
    let (real, sim) = both().await;
    let mut diffs = Vec::new();
    let mut got: Vec<Vec<Value>> = Vec::new();
    for side in [&real, &sim] {
        let project = side.project_with_servers().await;
        let list = side.ok(&format!("{}/servers/detail?all_tenants=1", side.compute), Some("compute 2.79")).await;
        let id = list["servers"][0]["id"].as_str().unwrap();
        let server = side.ok(&format!("{}/servers/{id}", side.compute), Some("compute 2.79")).await;
        assert_eq!(server["server"]["id"], id, "{}", side.label);
        let usage_url = format!("{}/os-simple-tenant-usage/{project}?{}", side.compute, side.window);
        let usage = side.ok(&usage_url, Some("compute 2.40")).await;
        assert_eq!(usage["tenant_usage"]["tenant_id"], project.as_str(), "{}: {usage}", side.label);
        let paged = side.ok(&format!("{usage_url}&limit=1"), Some("compute 2.40")).await;
        assert_eq!(paged["tenant_usage"]["server_usages"].as_array().map(Vec::len), Some(1), "{}", side.label);
        got.push(vec![server, usage, paged]);
    }
    for (i, what) in
        ["servers/{id}", "os-simple-tenant-usage/{id}", "os-simple-tenant-usage/{id} paged"].into_iter().enumerate()
    {
        diffs.extend(diff(what, &got[0][i], &got[1][i]));
    }
    assert_no_diffs(&diffs);
}

#[tokio::test(flavor = "multi_thread")]
async fn flavors_extra_specs_from_2_61_one_flavor_its_specs_and_flavor_access() {
    let (real, sim) = both().await;
    let seed = common::real_nova_seed();
    let mut diffs = Vec::new();
    let mut got: Vec<Vec<Value>> = Vec::new();
    for side in [&real, &sim] {
        let url = format!("{}/flavors/detail?is_public=None", side.compute);
        let at60 = side.ok(&url, Some("compute 2.60")).await;
        let at61 = side.ok(&url, Some("compute 2.61")).await;
        let (f60, f61) = (at60["flavors"].as_array().unwrap(), at61["flavors"].as_array().unwrap());
        assert!(!f60.is_empty() && f60.len() == f61.len(), "{}", side.label);
        assert!(f60.iter().all(|f| f.get("extra_specs").is_none()), "{}: extra_specs before 2.61", side.label);
        assert!(f61.iter().all(|f| f["extra_specs"].is_object()), "{}: extra_specs from 2.61", side.label);

        // What the openstack crate sends: 2.79 (swap `0` from 2.75, `""` before when none).
        let at79 = side.ok(&url, Some("compute 2.79")).await;
        let f79 = at79["flavors"].as_array().unwrap();
        assert!(f61.iter().any(|f| f["swap"] == "") && f79.iter().all(|f| f["swap"].is_number()), "{}", side.label);
        let with_specs = f79
            .iter()
            .find(|f| f["extra_specs"].as_object().is_some_and(|m| !m.is_empty()))
            .unwrap_or_else(|| panic!("{}: a flavor with extra specs", side.label));
        let id = with_specs["id"].as_str().unwrap();
        let one = side.ok(&format!("{}/flavors/{id}", side.compute), Some("compute 2.79")).await;
        assert_eq!(one["flavor"], *with_specs, "{}: the flavor as listed", side.label);
        let specs = side.ok(&format!("{}/flavors/{id}/os-extra_specs", side.compute), Some("compute 2.79")).await;
        assert_eq!(specs["extra_specs"], with_specs["extra_specs"], "{}", side.label);

        let private = f79
            .iter()
            .find(|f| f["os-flavor-access:is_public"] == false)
            .unwrap_or_else(|| panic!("{}: a private flavor", side.label));
        let pid = private["id"].as_str().unwrap();
        let access = side.ok(&format!("{}/flavors/{pid}/os-flavor-access", side.compute), Some("compute 2.79")).await;
        let entries = access["flavor_access"].as_array().unwrap();
        assert!(!entries.is_empty(), "{}: {access}", side.label);
        assert!(entries.iter().all(|e| e["flavor_id"] == pid), "{}: {access}", side.label);
        let is_project_id =
            |t: &Value| t.as_str().is_some_and(|t| t.len() == 32 && t.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(entries.iter().all(|e| is_project_id(&e["tenant_id"])), "{}: project ids: {access}", side.label);
        if side.label == "real" {
            assert_eq!(pid, seed["flavors"]["p1.private"]);
            let tenants: BTreeSet<&str> = entries.iter().filter_map(|e| e["tenant_id"].as_str()).collect();
            let want: BTreeSet<&str> =
                ["vo-access", "vo-biomed"].iter().map(|p| seed["projects"][p].as_str().unwrap()).collect();
            assert_eq!(tenants, want);
        }
        let public = f79.iter().find(|f| f["os-flavor-access:is_public"] == true).unwrap();
        let url = format!("{}/flavors/{}/os-flavor-access", side.compute, public["id"].as_str().unwrap());
        let refused = side.expect(404, &url, Some("compute 2.79")).await;
        assert_eq!(
            refused["itemNotFound"]["message"], "Access list not available for public flavors.",
            "{}",
            side.label
        );
        got.push(vec![at60, at61, at79, one, specs, access, refused]);
    }
    let whats = [
        "flavors/detail 2.60",
        "flavors/detail 2.61",
        "flavors/detail 2.79",
        "flavors/{id}",
        "flavors/{id}/os-extra_specs",
        "os-flavor-access",
        "os-flavor-access public",
    ];
    for (i, what) in whats.into_iter().enumerate() {
        diffs.extend(diff(what, &got[0][i], &got[1][i]));
    }
    assert_no_diffs(&diffs);
}

#[tokio::test(flavor = "multi_thread")]
async fn quota_sets_and_limits_have_the_real_shape_at_the_versions_fedsite_sends() {
    let (real, sim) = both().await;
    let mut diffs = Vec::new();
    let mut got: Vec<Vec<Value>> = Vec::new();
    // (what, path under compute, version): cloudinfo reads quotas unversioned (2.1),
    // the openstack crate at 2.79.
    let calls = |p: &str| {
        vec![
            ("os-quota-sets/{id} 2.1", format!("/os-quota-sets/{p}"), None),
            ("os-quota-sets/{id} 2.79", format!("/os-quota-sets/{p}"), Some("compute 2.79")),
            ("os-quota-sets/{id}/detail 2.79", format!("/os-quota-sets/{p}/detail"), Some("compute 2.79")),
            ("limits?tenant_id 2.79", format!("/limits?tenant_id={p}"), Some("compute 2.79")),
            ("limits 2.1", "/limits".to_string(), None),
        ]
    };
    for side in [&real, &sim] {
        let project = side.project_with_servers().await;
        let mut bodies = Vec::new();
        for (what, path, version) in calls(&project) {
            let body = side.ok(&format!("{}{path}", side.compute), version).await;
            if what.starts_with("os-quota-sets") {
                assert_eq!(body["quota_set"]["id"], project.as_str(), "{}: {what}", side.label);
            }
            if what.contains("detail") {
                let used = body["quota_set"]["instances"]["in_use"].as_i64().unwrap_or(-1);
                assert!(used > 0, "{}: {what}: the project's servers count: {body}", side.label);
            }
            bodies.push(body);
        }
        got.push(bodies);
    }
    for (i, (what, _, _)) in calls("p").into_iter().enumerate() {
        diffs.extend(diff(what, &got[0][i], &got[1][i]));
    }
    assert_no_diffs(&diffs);
}

#[tokio::test(flavor = "multi_thread")]
async fn cinder_version_documents_headers_and_volumes_at_3_0_and_3_60() {
    let (real, sim) = both().await;
    let seed = common::real_nova_seed();
    let mut diffs = Vec::new();
    let mut got: Vec<Vec<Value>> = Vec::new();
    for side in [&real, &sim] {
        // What the openstack crate reads to negotiate: `<volume>/`; and the root's list (300).
        let doc = side.ok(&format!("{}/", side.volume), None).await;
        let v3 = doc["versions"].as_array().and_then(|a| a.iter().find(|v| v["id"] == "v3.0")).cloned();
        let v3 = v3.unwrap_or_else(|| panic!("{}: no v3.0 in {doc}", side.label));
        assert_eq!(v3["min_version"], "3.0", "{}", side.label);
        let max = minor(&v3["version"]);
        assert!(max >= 60, "{}: the openstack crate asks for 3.60: {doc}", side.label);
        // Every Cinder answer carries the version headers: the root's 300 and a 406 too.
        let r = side.get(&side.volume_root, None).await;
        assert_eq!(r.status, 300, "{}: {}", side.label, r.body);
        assert_eq!(r.header("openstack-api-version").as_deref(), Some("volume 3.0"), "{}: root", side.label);
        assert_eq!(r.header_items("vary"), BTreeSet::from(["OpenStack-API-Version".to_string()]), "{}", side.label);
        let root = r.body;

        let url = format!("{}/volumes/detail?all_tenants=1", side.volume);
        let r = side.get(&url, Some("volume 3.60")).await;
        assert_eq!(r.status, 200, "{}", side.label);
        assert_eq!(r.header("openstack-api-version").as_deref(), Some("volume 3.60"), "{}", side.label);
        assert_eq!(r.header_items("vary"), BTreeSet::from(["OpenStack-API-Version".to_string()]), "{}", side.label);
        let at360 = r.body;
        let r = side.get(&url, None).await;
        assert_eq!(r.status, 200, "{}", side.label);
        assert_eq!(r.header("openstack-api-version").as_deref(), Some("volume 3.0"), "{}", side.label);
        let at30 = r.body;
        let (k30, k360) = (keys(&at30["volumes"][0]), keys(&at360["volumes"][0]));
        assert!(k30.is_subset(&k360) && k30.len() < k360.len(), "{}: 3.60 adds fields: {k30:?} {k360:?}", side.label);
        assert!(
            at360["volumes"].as_array().unwrap().iter().all(|v| v["os-vol-tenant-attr:tenant_id"].is_string()),
            "{}: all_tenants, as admin: the owner",
            side.label
        );
        let id = at360["volumes"][0]["id"].as_str().unwrap();
        let one = side.ok(&format!("{}/volumes/{id}", side.volume), Some("volume 3.60")).await;
        assert_eq!(one["volume"]["id"], id, "{}", side.label);

        let above = format!("3.{}", max + 1);
        let r = side.get(&url, Some(&format!("volume {above}"))).await;
        assert_eq!(r.status, 406, "{}: {}", side.label, r.body);
        assert_eq!(r.header("openstack-api-version"), Some(format!("volume {above}")), "{}: 406", side.label);
        assert_eq!(r.header_items("vary"), BTreeSet::from(["OpenStack-API-Version".to_string()]), "{}", side.label);
        let fault = r.body;
        if side.label == "real" {
            let names: BTreeSet<&str> =
                at360["volumes"].as_array().unwrap().iter().filter_map(|v| v["name"].as_str()).collect();
            assert_eq!(names, BTreeSet::from(["data-in-use", "notebooks-home", "scratch-available"]));
            assert!(seed["volumes"]["data-in-use"].is_string());
        }
        got.push(vec![doc, root, at30, at360, one, fault]);
    }
    let whats = ["GET /v3/", "GET / (300)", "volumes/detail 3.0", "volumes/detail 3.60", "volumes/{id} 3.60", "406"];
    for (i, what) in whats.into_iter().enumerate() {
        diffs.extend(diff(&format!("cinder {what}"), &got[0][i], &got[1][i]));
    }
    assert_no_diffs(&diffs);
}
