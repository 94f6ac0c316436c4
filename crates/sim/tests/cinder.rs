//! HTTP-level tests of the simulated Cinder v3 API against hand-built sites:
//! cASO's request sequence, visibility rules, rendering and microversions.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::Value;
use sim::model::{Site, Volume, VolumeAttachment};
use sim::state::{TokenInfo, TokenScope};

const P1: &str = "0b9f3b2a1c8d4e6f9a0b1c2d3e4f5a6b";
const P2: &str = "1c0a4c3b2d9e5f7a0b1c2d3e4f5a6b7c";
const SERVER: &str = "11111111-1111-4111-8111-111111111111";

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn reference() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2023, 6, 1, 0, 0, 0).unwrap()
}

fn volume(id: &str, name: &str, project: &str, created: &str) -> Volume {
    Volume {
        id: id.into(),
        name: name.into(),
        project_id: project.into(),
        user_id: "u-alice".into(),
        size: 10,
        volume_type: String::new(),
        bootable: false,
        created_at: t(created),
        deleted_at: None,
        attachments: vec![],
        availability_zone: "nova".into(),
    }
}

fn vid(i: usize) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", i, i)
}

/// The cASO vector site plus `extra` filler volumes in P1 and two in P2.
fn site(extra: usize) -> Site {
    let mut data = volume("44444444-4444-4444-8444-444444444444", "data-vol", P1, "2023-05-10T00:00:00Z");
    data.size = 50;
    data.attachments.push(VolumeAttachment {
        server_id: SERVER.into(),
        attached_at: t("2023-05-20T11:00:00Z"),
        detached_at: None,
        device: "/dev/vdb".into(),
    });
    let mut scratch = volume("55555555-5555-4555-8555-555555555555", "scratch", P1, "2023-05-23T00:00:00Z");
    scratch.user_id = "u-bob".into();
    let mut gone = volume("66666666-6666-4666-8666-666666666666", "gone", P1, "2023-05-01T00:00:00Z");
    gone.deleted_at = Some(t("2023-05-15T00:00:00Z"));
    let mut vols = vec![data, scratch, gone];
    for i in 0..extra {
        vols.push(volume(&vid(i), &format!("filler-{i}"), P1, "2023-01-01T00:00:00Z"));
    }
    vols.push(volume("77777777-7777-4777-8777-777777777777", "other-a", P2, "2023-04-01T00:00:00Z"));
    let mut b = volume("88888888-8888-4888-8888-888888888888", "other-b", P2, "2023-04-02T00:00:00Z");
    b.volume_type = "ssd".into();
    vols.push(b);
    Site { region: "RegionOne".into(), volumes: vols, ..Default::default() }
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
        let scenario = sim::Scenario { name: "hand".into(), seed: 1, reference_time: reference(), site };
        let sim = sim::start(sim::SimConfig::new(scenario)).await.unwrap();
        sim.insert_token("reader", token(Some(P1), &["reader"]));
        sim.insert_token("admin", token(Some(P1), &["admin", "member", "reader"]));
        sim.insert_token("system-reader", token(None, &["reader"]));
        Env { sim, http: reqwest::Client::new() }
    }

    async fn get(&self, tok: Option<&str>, path: &str, mv: Option<&str>) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.get(format!("{}{path}", self.sim.base_url()));
        if let Some(tok) = tok {
            req = req.header("X-Auth-Token", tok);
        }
        if let Some(mv) = mv {
            req = req.header("OpenStack-API-Version", mv);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.json().await.unwrap_or(Value::Null);
        (status, headers, body)
    }
}

fn ids(body: &Value) -> Vec<String> {
    body["volumes"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn caso_sequence_gets_a_full_page_with_next_link_then_an_empty_page() {
    // 2 current vector volumes + 198 fillers = exactly 200 in P1.
    let env = Env::new(site(198)).await;
    let first = format!("/volume/v3/{P1}/volumes/detail?changes-since=2023-05-21+00%3A00%3A00&limit=200");
    let (status, headers, body) = env.get(Some("reader"), &first, None).await;
    assert_eq!(status, 200);
    assert_eq!(headers["openstack-api-version"], "volume 3.0");
    let got = ids(&body);
    assert_eq!(got.len(), 200);
    // Default order: created_at desc, id desc.
    assert_eq!(got[0], "55555555-5555-4555-8555-555555555555");
    assert_eq!(got[1], "44444444-4444-4444-8444-444444444444");
    assert!(!got.contains(&"66666666-6666-4666-8666-666666666666".to_string()));
    let last = got.last().unwrap().clone();
    assert_eq!(last, vid(0), "fillers share created_at and sort by id desc");
    let next = body["volumes_links"][0]["href"].as_str().unwrap();
    assert_eq!(body["volumes_links"][0]["rel"], "next");
    assert!(next.starts_with(&format!("{}/volume/v3/{P1}/volumes/detail?", env.sim.base_url())), "{next}");
    assert!(next.contains(&format!("marker={last}")) && next.contains("limit=200"), "{next}");

    let (status, _, body) = env.get(Some("reader"), &format!("{first}&marker={last}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["volumes"], serde_json::json!([]));
    assert!(body.get("volumes_links").is_none());
}

#[tokio::test]
async fn volume_renders_as_cinder_with_attachment_and_times() {
    let env = Env::new(site(0)).await;
    let (status, _, body) =
        env.get(Some("reader"), &format!("/volume/v3/{P1}/volumes/44444444-4444-4444-8444-444444444444"), None).await;
    assert_eq!(status, 200);
    let v = &body["volume"];
    assert_eq!(v["status"], "in-use");
    assert_eq!(v["size"], 50);
    assert_eq!(v["bootable"], "false");
    assert_eq!(v["encrypted"], false);
    assert_eq!(v["volume_type"], "__DEFAULT__");
    assert_eq!(v["created_at"], "2023-05-10T00:00:00.000000");
    assert_eq!(v["updated_at"], "2023-05-20T11:00:00.000000");
    assert_eq!(v["os-vol-tenant-attr:tenant_id"], P1);
    assert_eq!(v["user_id"], "u-alice");
    let a = &v["attachments"][0];
    assert_eq!(a["server_id"], SERVER);
    assert_eq!(a["volume_id"], "44444444-4444-4444-8444-444444444444");
    assert_eq!(a["attached_at"], "2023-05-20T11:00:00.000000");
    assert_eq!(a["device"], "/dev/vdb");
    assert_eq!(a["host_name"], Value::Null);
    assert!(a["attachment_id"].as_str().unwrap().len() == 36);
    assert_eq!(
        v["links"][0]["href"],
        format!("{}/volume/v3/{P1}/volumes/44444444-4444-4444-8444-444444444444", env.sim.base_url())
    );
    // Admin-only fields stay hidden from a reader.
    assert!(v.get("os-vol-host-attr:host").is_none());
    assert!(v.get("migration_status").is_none());

    let (_, _, body) = env.get(Some("reader"), &format!("/volume/v3/{P1}/volumes"), None).await;
    let s = &body["volumes"][0];
    assert_eq!(s.as_object().unwrap().len(), 3, "summary is id, name, links: {s}");
}

#[tokio::test]
async fn deleted_and_foreign_volumes_are_not_found() {
    let env = Env::new(site(0)).await;
    for id in ["66666666-6666-4666-8666-666666666666", "77777777-7777-4777-8777-777777777777"] {
        let (status, _, body) = env.get(Some("reader"), &format!("/volume/v3/{P1}/volumes/{id}"), None).await;
        assert_eq!(status, 404);
        assert_eq!(body["itemNotFound"]["message"], format!("Volume {id} could not be found."));
    }
    // Before its deletion time, the deleted volume exists.
    env.sim.set_now(t("2023-05-10T00:00:00Z"));
    let (status, _, _) =
        env.get(Some("reader"), &format!("/volume/v3/{P1}/volumes/66666666-6666-4666-8666-666666666666"), None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn all_tenants_lists_every_project_only_for_admin_and_system_reader() {
    let env = Env::new(site(0)).await;
    let (_, _, body) = env.get(Some("reader"), &format!("/volume/v3/{P1}/volumes/detail?all_tenants=1"), None).await;
    assert_eq!(ids(&body).len(), 2, "a reader's all_tenants is ignored");
    let (_, _, body) = env.get(Some("admin"), &format!("/volume/v3/{P1}/volumes/detail?all_tenants=1"), None).await;
    assert_eq!(ids(&body).len(), 4);
    assert!(body["volumes"][0].get("os-vol-host-attr:host").is_some());
    let (_, _, body) =
        env.get(Some("admin"), &format!("/volume/v3/{P1}/volumes/detail?all_tenants=1&project_id={P2}"), None).await;
    assert_eq!(ids(&body), vec!["88888888-8888-4888-8888-888888888888", "77777777-7777-4777-8777-777777777777"]);
    // A reader's project_id filter is stripped, not applied.
    let (_, _, body) = env.get(Some("reader"), &format!("/volume/v3/{P1}/volumes?project_id={P2}"), None).await;
    assert_eq!(ids(&body).len(), 2);
    // System scope: project-less URL (3.67+) with all_tenants.
    let (status, _, body) = env.get(Some("system-reader"), "/volume/v3/volumes/detail?all_tenants=True", None).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&body).len(), 4);
}

#[tokio::test]
async fn url_project_must_match_the_token_project() {
    let env = Env::new(site(0)).await;
    for tok in ["reader", "admin", "system-reader"] {
        let (status, _, body) = env.get(Some(tok), &format!("/volume/v3/{P2}/volumes"), None).await;
        assert_eq!(status, 400, "{tok}");
        assert_eq!(body["badRequest"]["message"], "Malformed request url");
    }
    let (status, _, _) = env.get(None, &format!("/volume/v3/{P1}/volumes"), None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn microversion_fields_appear_only_from_their_version() {
    let env = Env::new(site(0)).await;
    let path = format!("/volume/v3/{P1}/volumes/55555555-5555-4555-8555-555555555555");
    let (_, _, body) = env.get(Some("admin"), &path, None).await;
    for k in [
        "group_id",
        "provider_id",
        "service_uuid",
        "shared_targets",
        "cluster_name",
        "volume_type_id",
        "consumes_quota",
    ] {
        assert!(body["volume"].get(k).is_none(), "{k} at 3.0");
    }
    let (_, h, body) = env.get(Some("admin"), &path, Some("volume 3.21")).await;
    assert_eq!(h["openstack-api-version"], "volume 3.21");
    assert!(body["volume"].get("group_id").is_some() && body["volume"].get("provider_id").is_some());
    assert!(body["volume"].get("service_uuid").is_none());
    let (_, _, body) = env.get(Some("admin"), &path, Some("volume 3.65")).await;
    let v = &body["volume"];
    assert_eq!(v["shared_targets"], true);
    assert!(v.get("cluster_name").is_some());
    assert_eq!(v["volume_type_id"].as_str().unwrap().len(), 36);
    assert_eq!(v["consumes_quota"], true);
    // provider_id and cluster_name are admin-only.
    let (_, _, body) = env.get(Some("reader"), &path, Some("volume 3.65")).await;
    assert!(body["volume"].get("provider_id").is_none() && body["volume"].get("cluster_name").is_none());
    assert!(body["volume"].get("group_id").is_some());

    let (status, h, body) = env.get(Some("reader"), &path, Some("volume 3.72")).await;
    assert_eq!(status, 406);
    // Every Cinder answer, a refused version included, echoes the version and varies on it.
    assert_eq!(h["openstack-api-version"], "volume 3.72");
    assert_eq!(h["vary"], "OpenStack-API-Version");
    assert!(body["computeFault"]["message"].as_str().unwrap().contains("maximum is 3.71"));
    let (status, _, _) = env.get(Some("reader"), &path, Some("volume 3.x")).await;
    assert_eq!(status, 400);
    let (_, h, _) = env.get(Some("reader"), &path, Some("volume latest")).await;
    assert_eq!(h["openstack-api-version"], "volume 3.71");
}

#[tokio::test]
async fn bad_paging_parameters_are_named_in_400s_and_unknown_marker_is_404() {
    let env = Env::new(site(0)).await;
    let (status, _, body) = env.get(Some("reader"), &format!("/volume/v3/{P1}/volumes?limit=abc"), None).await;
    assert_eq!(status, 400);
    assert_eq!(body["badRequest"]["message"], "limit param must be an integer");
    let (status, _, body) = env.get(Some("reader"), &format!("/volume/v3/{P1}/volumes?offset=-1"), None).await;
    assert_eq!(status, 400);
    assert_eq!(body["badRequest"]["message"], "offset param must be positive");
    let (status, _, _) = env.get(Some("reader"), &format!("/volume/v3/{P1}/volumes?sort=name:sideways"), None).await;
    assert_eq!(status, 400);
    let (status, _, body) = env.get(Some("reader"), &format!("/volume/v3/{P1}/volumes?marker=nope"), None).await;
    assert_eq!(status, 404);
    assert_eq!(body["itemNotFound"]["message"], "Volume nope could not be found.");
    let (status, _, _) = env.get(Some("reader"), &format!("/volume/v3/{P1}/volumes?%ZZ=%%&limit"), None).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn filters_sorting_and_limit_pagination() {
    let env = Env::new(site(5)).await;
    let base = format!("/volume/v3/{P1}/volumes/detail");
    let (_, _, body) = env.get(Some("reader"), &format!("{base}?status=in-use"), None).await;
    assert_eq!(ids(&body), vec!["44444444-4444-4444-8444-444444444444"]);
    let (_, _, body) = env.get(Some("reader"), &format!("{base}?name=scratch"), None).await;
    assert_eq!(ids(&body), vec!["55555555-5555-4555-8555-555555555555"]);
    let (_, _, body) = env.get(Some("reader"), &format!("{base}?sort=name:asc&limit=3"), None).await;
    let names: Vec<&str> = body["volumes"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["data-vol", "filler-0", "filler-1"]);
    // Walk every page through the next links.
    let mut seen = Vec::new();
    let mut url = format!("{base}?limit=2");
    loop {
        let (_, _, body) = env.get(Some("reader"), &url, None).await;
        seen.extend(ids(&body));
        match body["volumes_links"][0]["href"].as_str() {
            Some(h) => url = h.trim_start_matches(env.sim.base_url()).to_string(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    let unique: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 7);
}

#[tokio::test]
async fn admin_unknown_filter_matches_nothing_as_cinder_does() {
    let env = Env::new(site(0)).await;
    let (status, _, body) = env
        .get(Some("admin"), &format!("/volume/v3/{P1}/volumes/detail?changes-since=2023-05-21+00%3A00%3A00"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["volumes"], serde_json::json!([]));
}

#[tokio::test]
async fn versions_types_limits_and_quotas() {
    let env = Env::new(site(0)).await;
    let (status, h, body) = env.get(None, "/volume", None).await;
    assert_eq!(status, 300, "{body}");
    assert_eq!(h["openstack-api-version"], "volume 3.0", "the root answers with the version headers too");
    assert_eq!(h["vary"], "OpenStack-API-Version");
    let v = &body["versions"][0];
    assert_eq!((v["id"].as_str(), v["status"].as_str()), (Some("v3.0"), Some("CURRENT")));
    assert_eq!((v["min_version"].as_str(), v["version"].as_str()), (Some("3.0"), Some("3.71")));
    assert_eq!(v["links"][1]["href"], format!("{}/volume/v3/", env.sim.base_url()));
    let (status, _, body) = env.get(None, "/volume/v3/", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["versions"][0]["id"], "v3.0");

    let (_, _, body) = env.get(Some("reader"), &format!("/volume/v3/{P1}/types"), None).await;
    let names: Vec<&str> =
        body["volume_types"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["__DEFAULT__", "ssd"]);

    let (_, _, body) = env.get(Some("reader"), &format!("/volume/v3/{P1}/limits"), None).await;
    let a = &body["limits"]["absolute"];
    assert_eq!((a["totalVolumesUsed"].as_u64(), a["totalGigabytesUsed"].as_u64()), (Some(2), Some(60)));
    assert_eq!(a["maxTotalVolumes"], 10);

    let (_, _, body) = env.get(Some("reader"), &format!("/volume/v3/{P1}/os-quota-sets/{P1}?usage=true"), None).await;
    assert_eq!(body["quota_set"]["volumes"]["in_use"], 2);
    assert_eq!(body["quota_set"]["gigabytes"]["limit"], 1000);
    let (status, _, _) = env.get(Some("reader"), &format!("/volume/v3/{P1}/os-quota-sets/{P2}"), None).await;
    assert_eq!(status, 403);
    let (_, _, body) = env.get(Some("admin"), &format!("/volume/v3/{P1}/os-quota-sets/{P2}"), None).await;
    assert_eq!(body["quota_set"]["volumes"], 10);
}

#[tokio::test]
async fn twenty_thousand_volumes_page_with_the_max_limit() {
    let env = Env::new(site(20_000)).await;
    let (status, _, body) = env.get(Some("reader"), &format!("/volume/v3/{P1}/volumes/detail?limit=200"), None).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&body).len(), 200);
    let (_, _, body) = env.get(Some("reader"), &format!("/volume/v3/{P1}/volumes/detail"), None).await;
    assert_eq!(ids(&body).len(), 1000, "capped at osapi_max_limit");
    assert!(body["volumes_links"][0]["href"].as_str().is_some());
}
