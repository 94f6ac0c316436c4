//! HTTP-level tests of the simulated Glance v2 API against a hand-built site:
//! visibility per project, filters, pagination, create/upload/patch/share/
//! delete, schemas and versions.

use chrono::{Duration, TimeZone, Utc};
use md5::{Digest, Md5};
use serde_json::{Value, json};
use sha2::Sha512;
use sim::model::{Image, Project, Site};
use sim::state::{TokenInfo, TokenScope};
use sim::{Scenario, SimConfig, SimHandle};

const P1: &str = "11111111111111111111111111111111";
const P2: &str = "22222222222222222222222222222222";
const P3: &str = "33333333333333333333333333333333";
const PADMIN: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const PATCH: &str = "application/openstack-images-v2.1-json-patch";

fn image(id: &str, name: &str, owner: &str, visibility: &str, age_h: i64) -> Image {
    let t = Utc.with_ymd_and_hms(2023, 5, 1, 0, 0, 0).unwrap() - Duration::hours(age_h);
    Image {
        id: id.into(),
        name: name.into(),
        owner: owner.into(),
        visibility: visibility.into(),
        status: "active".into(),
        disk_format: Some("qcow2".into()),
        container_format: Some("bare".into()),
        size: Some(1000),
        min_disk: 0,
        min_ram: 0,
        checksum: Some("0".repeat(32)),
        os_hash_algo: Some("sha512".into()),
        os_hash_value: Some("0".repeat(128)),
        protected: false,
        created_at: t,
        updated_at: t,
        tags: vec![],
        properties: Default::default(),
        members: vec![],
        data: None,
    }
}

fn project(id: &str, name: &str) -> Project {
    Project {
        id: id.into(),
        name: name.into(),
        domain_id: "default".into(),
        description: String::new(),
        enabled: true,
        tags: vec![],
        extra: Default::default(),
    }
}

const PUB: &str = "00000000-0000-4000-8000-000000000001";
const PRIV1: &str = "00000000-0000-4000-8000-000000000002";
const SHARED1: &str = "00000000-0000-4000-8000-000000000003";
const COMM1: &str = "00000000-0000-4000-8000-000000000004";
const HIDDEN: &str = "00000000-0000-4000-8000-000000000005";

fn site() -> Site {
    let mut shared = image(SHARED1, "shared-1", P1, "shared", 3);
    shared.members = vec![(P2.into(), "accepted".into()), (P3.into(), "pending".into())];
    let mut public = image(PUB, "EGI Ubuntu 22.04", PADMIN, "public", 1);
    public.tags = vec!["egi".into()];
    public.properties.insert("vmcatcher_event_ad_mpuri".into(), json!("https://appdb.egi.eu/store/vo/image/abc:1/"));
    public.properties.insert("os_distro".into(), json!("ubuntu"));
    let mut site = Site {
        region: "RegionOne".into(),
        projects: vec![project(P1, "vo1"), project(P2, "vo2"), project(P3, "vo3"), project(PADMIN, "admin")],
        images: vec![
            public,
            image(PRIV1, "private-1", P1, "private", 2),
            shared,
            image(COMM1, "community-1", P1, "community", 4),
            image(HIDDEN, "hidden", PADMIN, "public", 5),
        ],
        ..Default::default()
    };
    site.image_extras.insert(HIDDEN.into(), sim::model::ImageExtra { os_hidden: true, ..Default::default() });
    site
}

fn token(project: &str, roles: &[&str]) -> TokenInfo {
    let now = Utc::now();
    TokenInfo {
        user_id: format!("user-{project}"),
        user_name: format!("user-{project}"),
        user_domain_id: "default".into(),
        scope: TokenScope::Project { id: project.into(), name: project.into(), domain_id: "default".into() },
        roles: roles.iter().map(|r| r.to_string()).collect(),
        methods: vec!["password".into()],
        issued_at: now - Duration::days(1000),
        expires_at: now + Duration::days(1000),
    }
}

struct Env {
    sim: SimHandle,
    http: reqwest::Client,
}

impl Env {
    async fn new() -> Env {
        let scenario = Scenario {
            name: "glance-test".into(),
            seed: 1,
            reference_time: Utc.with_ymd_and_hms(2023, 6, 1, 0, 0, 0).unwrap(),
            site: site(),
        };
        let sim = sim::start(SimConfig::new(scenario)).await.unwrap();
        sim.insert_token("t-admin", token(PADMIN, &["admin", "member", "reader"]));
        sim.insert_token("t1", token(P1, &["member", "reader"]));
        sim.insert_token("t2", token(P2, &["member", "reader"]));
        sim.insert_token("t3", token(P3, &["member", "reader"]));
        Env { sim, http: reqwest::Client::new() }
    }
    fn url(&self, path: &str) -> String {
        format!("{}/image{path}", self.sim.base_url())
    }
    async fn req(
        &self,
        method: &str,
        tok: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut r = self.http.request(method.parse().unwrap(), self.url(path)).header("X-Auth-Token", tok);
        if let Some((ct, b)) = body {
            r = r.header("Content-Type", ct).body(b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)), headers)
    }
    async fn get(&self, tok: &str, path: &str) -> (u16, Value) {
        let (s, v, _) = self.req("GET", tok, path, None).await;
        (s, v)
    }
    async fn json(&self, method: &str, tok: &str, path: &str, body: Value) -> (u16, Value) {
        let (s, v, _) = self.req(method, tok, path, Some(("application/json", body.to_string().into_bytes()))).await;
        (s, v)
    }
    async fn patch(&self, tok: &str, path: &str, ops: Value) -> (u16, Value) {
        let (s, v, _) = self.req("PATCH", tok, path, Some((PATCH, ops.to_string().into_bytes()))).await;
        (s, v)
    }
    async fn names(&self, tok: &str, query: &str) -> Vec<String> {
        let (s, v) = self.get(tok, &format!("/v2/images{query}")).await;
        assert_eq!(s, 200, "{v}");
        v["images"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap_or("").to_string()).collect()
    }
}

#[tokio::test]
async fn versions_root_answers_300_with_v2_links_under_image() {
    let env = Env::new().await;
    let resp = env.http.get(format!("{}/image", env.sim.base_url())).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 300);
    assert!(resp.headers()["x-openstack-request-id"].to_str().unwrap().starts_with("req-"));
    let v: Value = resp.json().await.unwrap();
    let versions = v["versions"].as_array().unwrap();
    assert!(versions.iter().any(|x| x["id"] == "v2.17" && x["status"] == "CURRENT"));
    assert_eq!(versions[0]["links"][0]["href"], format!("{}/image/v2/", env.sim.base_url()));
    let resp = env.http.put(env.url("/v2/images")).header("X-Auth-Token", "t1").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert!(resp.text().await.unwrap().contains("The method PUT is not allowed for this resource."));
    let resp = env.http.get(env.url("/versions")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

#[tokio::test]
async fn schemas_are_glance_33_ones() {
    let env = Env::new().await;
    let (s, v) = env.get("t1", "/v2/schemas/image").await;
    assert_eq!(s, 200);
    assert_eq!(v["name"], "image");
    assert_eq!(v["additionalProperties"], json!({"type": "string"}));
    for k in ["id", "name", "status", "visibility", "os_hidden", "os_hash_value", "virtual_size", "stores", "locations"]
    {
        assert!(v["properties"].get(k).is_some(), "image schema lacks {k}");
    }
    let (_, v) = env.get("t1", "/v2/schemas/images").await;
    assert_eq!(v["properties"]["images"]["items"]["additionalProperties"], json!({"type": "string"}));
    let (_, v) = env.get("t1", "/v2/schemas/member").await;
    assert_eq!(v["name"], "member");
    let (_, v) = env.get("t1", "/v2/schemas/members").await;
    assert_eq!(v["name"], "members");
    let (s, _) = env.get("t1", "/v2/schemas/nope").await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn list_applies_glance_visibility_rules_per_project() {
    let env = Env::new().await;
    // Newest first: created_at desc.
    assert_eq!(env.names("t1", "").await, ["EGI Ubuntu 22.04", "private-1", "shared-1", "community-1"]);
    assert_eq!(env.names("t2", "").await, ["EGI Ubuntu 22.04", "shared-1"]);
    assert_eq!(env.names("t3", "").await, ["EGI Ubuntu 22.04"]);
    assert_eq!(env.names("t3", "?member_status=pending").await, ["EGI Ubuntu 22.04", "shared-1"]);
    assert_eq!(env.names("t3", "?visibility=community").await, ["community-1"]);
    assert_eq!(env.names("t3", "?os_hidden=true").await, ["hidden"]);
    // Admin: everything except other projects' community images.
    assert_eq!(env.names("t-admin", "").await, ["EGI Ubuntu 22.04", "private-1", "shared-1"]);
    assert_eq!(env.names("t-admin", "?visibility=all").await.len(), 4);
    // Show follows the same rules; a pending member may show the image.
    assert_eq!(env.get("t3", &format!("/v2/images/{SHARED1}")).await.0, 200);
    assert_eq!(env.get("t2", &format!("/v2/images/{PRIV1}")).await.0, 404);
    let (s, v) = env.get("t3", "/v2/images?visibility=wide").await;
    assert_eq!(s, 400);
    assert!(v.as_str().unwrap().contains("Invalid visibility value: wide"));
}

#[tokio::test]
async fn list_filters_by_property_tag_name_and_time() {
    let env = Env::new().await;
    let q = "?vmcatcher_event_ad_mpuri=https%3A%2F%2Fappdb.egi.eu%2Fstore%2Fvo%2Fimage%2Fabc%3A1%2F";
    assert_eq!(env.names("t2", q).await, ["EGI Ubuntu 22.04"]);
    assert!(env.names("t2", "?os_distro=centos").await.is_empty());
    assert_eq!(env.names("t1", "?tag=egi").await, ["EGI Ubuntu 22.04"]);
    assert_eq!(env.names("t1", "?name=in:private-1,shared-1").await, ["private-1", "shared-1"]);
    assert_eq!(env.names("t1", "?created_at=gte:2023-04-30T22:00:00Z").await, ["EGI Ubuntu 22.04", "private-1"]);
    assert_eq!(env.names("t1", "?visibility=private&owner=".to_string().as_str()).await.len(), 0);
    assert_eq!(env.names("t1", "?sort=name:asc").await, ["EGI Ubuntu 22.04", "community-1", "private-1", "shared-1"]);
    let (s, v) = env.get("t1", "/v2/images?sort_key=owner").await;
    assert_eq!(s, 400);
    assert!(v.as_str().unwrap().contains("Invalid sort key: owner"));
    let (s, _) = env.get("t1", "/v2/images?size_min=abc").await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn pagination_follows_next_until_a_short_page() {
    let env = Env::new().await;
    for i in 0..5 {
        let (s, _) = env
            .json(
                "POST",
                "t-admin",
                "/v2/images",
                json!({"name": format!("p{i}"), "visibility": "public", "tags": ["page"]}),
            )
            .await;
        assert_eq!(s, 201);
    }
    let mut next = Some("/v2/images?tag=page&limit=2".to_string());
    let mut seen = vec![];
    let mut pages = 0;
    while let Some(path) = next {
        let (s, v) = env.get("t3", &path).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["schema"], "/v2/schemas/images");
        assert_eq!(v["first"], "/v2/images?tag=page&limit=2");
        seen.extend(v["images"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()));
        next = v.get("next").and_then(|n| n.as_str()).map(String::from);
        if let Some(n) = &next {
            assert!(n.starts_with("/v2/images?tag=page&limit=2&marker="), "{n}");
        }
        pages += 1;
    }
    assert_eq!(pages, 3);
    seen.dedup();
    assert_eq!(seen.len(), 5);
    let (s, v) = env.get("t3", "/v2/images?marker=00000000-0000-4000-8000-00000000ffff").await;
    assert_eq!(s, 400);
    assert!(v.as_str().unwrap().contains("No image found with ID"));
}

fn qcow2(vsize: u64) -> Vec<u8> {
    let mut d = vec![0u8; 4096];
    d[..4].copy_from_slice(b"QFI\xfb");
    d[7] = 3;
    d[24..32].copy_from_slice(&vsize.to_be_bytes());
    d
}

#[tokio::test]
async fn create_upload_makes_image_active_with_hashes() {
    let env = Env::new().await;
    let (s, v, h) = env
        .req(
            "POST",
            "t1",
            "/v2/images",
            Some((
                "application/json",
                json!({"name": "EGI CentOS 9", "disk_format": "qcow2", "container_format": "bare",
                       "visibility": "private", "ad:appid": "1234", "tags": ["egi", "appdb"]})
                .to_string()
                .into_bytes(),
            )),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(h["location"].to_str().unwrap(), env.url(&format!("/v2/images/{id}")));
    assert!(h["openstack-image-store-ids"].to_str().unwrap().starts_with("fs"));
    assert_eq!(v["status"], "queued");
    assert_eq!(v["owner"], P1);
    assert_eq!(v["ad:appid"], "1234");
    assert_eq!(v["tags"], json!(["appdb", "egi"]));
    for k in ["checksum", "size", "virtual_size", "os_hash_algo", "os_hash_value"] {
        assert!(v[k].is_null(), "{k} should be null before upload");
    }
    assert_eq!(v["self"], format!("/v2/images/{id}"));
    assert_eq!(v["file"], format!("/v2/images/{id}/file"));
    assert!(v.get("stores").is_none());
    assert_eq!(env.get("t1", &format!("/v2/images/{id}/file")).await.0, 204);

    let data = qcow2(1 << 30);
    let (s, _, _) =
        env.req("PUT", "t1", &format!("/v2/images/{id}/file"), Some(("application/octet-stream", data.clone()))).await;
    assert_eq!(s, 204);
    let (_, v) = env.get("t1", &format!("/v2/images/{id}")).await;
    assert_eq!(v["status"], "active");
    assert_eq!(v["size"], 4096);
    assert_eq!(v["virtual_size"], 1u64 << 30);
    assert_eq!(v["checksum"], hex::encode(Md5::digest(&data)));
    assert_eq!(v["os_hash_algo"], "sha512");
    assert_eq!(v["os_hash_value"], hex::encode(Sha512::digest(&data)));
    assert_eq!(v["stores"], "fs");

    let resp =
        env.http.get(env.url(&format!("/v2/images/{id}/file"))).header("X-Auth-Token", "t1").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-md5"].to_str().unwrap(), hex::encode(Md5::digest(&data)));
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &data[..]);

    let (s, v, _) =
        env.req("PUT", "t1", &format!("/v2/images/{id}/file"), Some(("application/octet-stream", data))).await;
    assert_eq!(s, 409);
    assert!(v.as_str().unwrap().contains("Image status transition from active to saving is not allowed"));
}

#[tokio::test]
async fn create_rejects_bad_input_as_glance_does() {
    let env = Env::new().await;
    let cases = [
        (json!({"disk_format": "qcow3"}), 400, "'qcow3' is not one of"),
        (json!({"os_glance_x": "1"}), 403, "Attribute 'os_glance_x' is reserved."),
        (json!({"checksum": "1"}), 403, "Attribute 'checksum' is read-only."),
        (json!({"self": "x"}), 403, "Attribute 'self' is read-only."),
        (json!({"foo": 1}), 400, "1 is not of type 'string'"),
        (json!({"visibility": "public"}), 403, "publicize_image"),
        (json!({"id": PUB}), 409, "already exists"),
    ];
    for (body, status, text) in cases {
        let (s, v) = env.json("POST", "t1", "/v2/images", body.clone()).await;
        assert_eq!(s, status, "{body}: {v}");
        assert!(v.as_str().unwrap().contains(text), "{body}: {v}");
    }
    let (s, v, h) = env.req("POST", "t1", "/v2/images", Some(("application/json", b"{nope".to_vec()))).await;
    assert_eq!(s, 400);
    assert!(v.as_str().unwrap().contains("Malformed JSON in request body."));
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    let (s, v) = env.json("POST", "t1", "/v2/images", json!({})).await;
    assert_eq!(s, 201);
    assert_eq!(v["visibility"], "shared");
    assert!(v["name"].is_null());
}

#[tokio::test]
async fn patch_adds_replaces_and_removes_properties() {
    let env = Env::new().await;
    let (_, v) =
        env.json("POST", "t1", "/v2/images", json!({"name": "x", "sl:checksum": "abc", "ad:appid": "1"})).await;
    let path = format!("/v2/images/{}", v["id"].as_str().unwrap());
    let (s, v) = env
        .patch(
            "t1",
            &path,
            json!([{"op": "add", "path": "/vmcatcher_event_ad_mpuri", "value": "https://x"},
                   {"op": "replace", "path": "/sl:checksum", "value": "def"},
                   {"op": "remove", "path": "/ad:appid"},
                   {"op": "replace", "path": "/name", "value": "renamed"},
                   {"op": "replace", "path": "/min_ram", "value": 512}]),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["vmcatcher_event_ad_mpuri"], "https://x");
    assert_eq!(v["sl:checksum"], "def");
    assert!(v.get("ad:appid").is_none());
    assert_eq!(v["name"], "renamed");
    assert_eq!(v["min_ram"], 512);
    let errors = [
        (json!([{"op": "replace", "path": "/nope", "value": "1"}]), 409, "Property nope does not exist."),
        (json!([{"op": "remove", "path": "/name"}]), 403, "Property name may not be removed."),
        (json!([{"op": "replace", "path": "/status", "value": "active"}]), 403, "Attribute 'status' is read-only."),
        (json!([{"op": "move", "path": "/name"}]), 400, "Invalid operation: `move`"),
        (json!([{"op": "add", "path": "/x"}]), 400, "requires a member named \"value\""),
        (json!({}), 400, "must be a JSON array"),
    ];
    for (ops, status, text) in errors {
        let (s, v) = env.patch("t1", &path, ops.clone()).await;
        assert_eq!(s, status, "{ops}: {v}");
        assert!(v.as_str().unwrap().contains(text), "{ops}: {v}");
    }
    let (s, _, h) = env.req("PATCH", "t1", &path, Some(("application/json", b"[]".to_vec()))).await;
    assert_eq!(s, 415);
    assert!(h["accept-patch"].to_str().unwrap().contains("v2.1-json-patch"));
    let (s, _) = env.patch("t2", &path, json!([{"op": "add", "path": "/y", "value": "1"}])).await;
    assert_eq!(s, 404, "a shared image is invisible to non-members");
    let shared = format!("/v2/images/{SHARED1}");
    let (s, v) = env.patch("t2", &shared, json!([{"op": "add", "path": "/y", "value": "1"}])).await;
    assert_eq!(s, 403, "a member of the shared image may not modify it");
    assert!(v.as_str().unwrap().contains("modify_image"));
}

#[tokio::test]
async fn sharing_shows_the_image_to_the_member_once_accepted() {
    let env = Env::new().await;
    let (_, v) = env
        .json(
            "POST",
            "t1",
            "/v2/images",
            json!({"name": "vo-image", "visibility": "private", "disk_format": "raw", "container_format": "bare"}),
        )
        .await;
    let id = v["id"].as_str().unwrap().to_string();
    let (s, v) = env.json("POST", "t1", &format!("/v2/images/{id}/members"), json!({"member": P2})).await;
    assert_eq!(s, 403, "private images have no members: {v}");
    let (s, _) = env
        .patch("t1", &format!("/v2/images/{id}"), json!([{"op": "replace", "path": "/visibility", "value": "shared"}]))
        .await;
    assert_eq!(s, 200);
    let (s, m) = env.json("POST", "t1", &format!("/v2/images/{id}/members"), json!({"member": P2})).await;
    assert_eq!(s, 200);
    let mut keys: Vec<&String> = m.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["created_at", "image_id", "member_id", "schema", "status", "updated_at"]);
    assert_eq!(m["status"], "pending");
    assert_eq!(m["schema"], "/v2/schemas/member");
    assert_eq!(env.json("POST", "t1", &format!("/v2/images/{id}/members"), json!({"member": P2})).await.0, 409);
    assert!(!env.names("t2", "").await.contains(&"vo-image".to_string()));
    // Only the member sets its status.
    let st = format!("/v2/images/{id}/members/{P2}");
    assert_eq!(env.json("PUT", "t1", &st, json!({"status": "accepted"})).await.0, 403);
    assert_eq!(env.json("PUT", "t2", &st, json!({"status": "maybe"})).await.0, 400);
    let (s, m) = env.json("PUT", "t2", &st, json!({"status": "accepted"})).await;
    assert_eq!(s, 200);
    assert_eq!(m["status"], "accepted");
    assert!(env.names("t2", "").await.contains(&"vo-image".to_string()));
    assert!(!env.names("t3", "").await.contains(&"vo-image".to_string()));
    let (s, v) = env.get("t1", &format!("/v2/images/{id}/members")).await;
    assert_eq!(s, 200);
    assert_eq!(v["schema"], "/v2/schemas/members");
    assert_eq!(v["members"][0]["member_id"], P2);
    assert_eq!(env.get("t1", &format!("/v2/images/{id}/members/{P3}")).await.0, 404);
    assert_eq!(env.req("DELETE", "t2", &st, None).await.0, 403);
    assert_eq!(env.req("DELETE", "t1", &st, None).await.0, 204);
    assert!(!env.names("t2", "").await.contains(&"vo-image".to_string()));
}

#[tokio::test]
async fn delete_refuses_protected_images_and_others_projects() {
    let env = Env::new().await;
    let (_, v) = env.json("POST", "t1", "/v2/images", json!({"name": "p", "protected": true})).await;
    let path = format!("/v2/images/{}", v["id"].as_str().unwrap());
    let (s, v, _) = env.req("DELETE", "t1", &path, None).await;
    assert_eq!(s, 403);
    assert!(v.as_str().unwrap().contains("is protected and cannot be deleted"));
    assert_eq!(env.req("DELETE", "t3", &path, None).await.0, 404);
    env.patch("t1", &path, json!([{"op": "replace", "path": "/protected", "value": false}])).await;
    assert_eq!(env.req("DELETE", "t1", &path, None).await.0, 204);
    assert_eq!(env.get("t1", &path).await.0, 404);
    assert_eq!(env.req("DELETE", "t1", &path, None).await.0, 404);
    assert_eq!(env.req("DELETE", "t1", &format!("/v2/images/{PUB}"), None).await.0, 403);
}

#[tokio::test]
async fn image_json_has_glance_keys_and_scenario_data_is_a_pattern() {
    let env = Env::new().await;
    let (s, v) = env.get("t1", &format!("/v2/images/{PUB}")).await;
    assert_eq!(s, 200);
    for k in [
        "id",
        "name",
        "status",
        "visibility",
        "protected",
        "os_hidden",
        "owner",
        "checksum",
        "os_hash_algo",
        "os_hash_value",
        "size",
        "virtual_size",
        "min_ram",
        "min_disk",
        "disk_format",
        "container_format",
        "created_at",
        "updated_at",
        "tags",
        "self",
        "file",
        "schema",
        "stores",
    ] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    assert_eq!(v["created_at"], "2023-04-30T23:00:00Z");
    assert_eq!(v["os_distro"], "ubuntu");
    let resp =
        env.http.get(env.url(&format!("/v2/images/{PUB}/file"))).header("X-Auth-Token", "t1").send().await.unwrap();
    let md5 = resp.headers()["content-md5"].to_str().unwrap().to_string();
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len(), 1000);
    assert_eq!(body[252], 1);
    assert_eq!(md5, hex::encode(Md5::digest(&body)));
    assert_eq!(env.get("nope", "/v2/images").await.0, 401);
}

#[tokio::test]
async fn deactivated_images_refuse_download_to_non_admins() {
    let env = Env::new().await;
    let a = format!("/v2/images/{PRIV1}");
    assert_eq!(env.req("POST", "t1", &format!("{a}/actions/deactivate"), None).await.0, 204);
    assert_eq!(env.get("t1", &a).await.1["status"], "deactivated");
    assert_eq!(env.get("t1", &format!("{a}/file")).await.0, 403);
    assert_eq!(env.req("POST", "t1", &format!("{a}/actions/reactivate"), None).await.0, 204);
    assert_eq!(env.get("t1", &a).await.1["status"], "active");
    assert_eq!(env.req("PUT", "t1", &format!("{a}/tags/new"), None).await.0, 204);
    assert_eq!(env.get("t1", &a).await.1["tags"], json!(["new"]));
    assert_eq!(env.req("DELETE", "t1", &format!("{a}/tags/none"), None).await.0, 404);
}
