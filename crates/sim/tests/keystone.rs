//! HTTP-level tests of the simulated Keystone v3: tokens per method and
//! scope, validation and revocation, catalog, projects (tags, flat extra
//! properties), users, roles and assignments, policy answers, application
//! credentials and OS-FEDERATION, against a small hand-built site.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use sim::model::*;
use sim::{Scenario, SimConfig, SimHandle};

const P1: &str = "0b9f3b2a1c8d4e6f9a0b1c2d3e4f5a6b";
const P2: &str = "1c0a4c3b2d9e5f7a0b1c2d3e4f5a6b7c";
const ADMIN_P: &str = "2d1b5d4c3e0f6a8b1c2d3e4f5a6b7c8d";

fn site() -> Site {
    let project = |id: &str, name: &str, tags: &[&str], vo: Option<&str>| Project {
        id: id.into(),
        name: name.into(),
        domain_id: "default".into(),
        description: format!("{name} project"),
        enabled: true,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        extra: vo.map(|v| BTreeMap::from([("egi.VO".to_string(), json!(v))])).unwrap_or_default(),
    };
    let user = |id: &str, name: &str| User {
        id: id.into(),
        name: name.into(),
        domain_id: "default".into(),
        password: "secret".into(),
        enabled: true,
        email: (name == "alice").then(|| "alice@example.org".to_string()),
    };
    let role = |id: &str, name: &str| Role { id: id.into(), name: name.into() };
    let grant = |u: &str, r: &str, scope: AssignmentScope| Assignment { user_id: u.into(), role_id: r.into(), scope };
    Site {
        region: "RegionOne".into(),
        domains: vec![
            Domain { id: "default".into(), name: "Default".into(), enabled: true },
            Domain { id: "d-other".into(), name: "Other".into(), enabled: true },
        ],
        projects: vec![
            project(ADMIN_P, "admin", &[], None),
            project(P1, "proj1", &["caso", "egi"], Some("vo.example.org")),
            project(P2, "proj2", &["egi"], Some("vo2.example.org")),
        ],
        users: vec![
            user("u-admin", "admin"),
            user("u-accounting", "accounting"),
            user("u-alice", "alice"),
            user("u-bob", "bob"),
        ],
        roles: vec![role("r-admin", "admin"), role("r-member", "member"), role("r-reader", "reader")],
        assignments: vec![
            grant("u-admin", "r-admin", AssignmentScope::Project(ADMIN_P.into())),
            grant("u-admin", "r-admin", AssignmentScope::System),
            grant("u-admin", "r-admin", AssignmentScope::Domain("default".into())),
            grant("u-accounting", "r-reader", AssignmentScope::System),
            grant("u-alice", "r-reader", AssignmentScope::Project(P1.into())),
            grant("u-bob", "r-member", AssignmentScope::Project(P1.into())),
            grant("u-bob", "r-reader", AssignmentScope::Domain("default".into())),
        ],
        ..Default::default()
    }
}

fn reference() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2023, 6, 1, 0, 0, 0).unwrap()
}

async fn start() -> SimHandle {
    let scenario = Scenario { name: "keystone-test".into(), seed: 1, reference_time: reference(), site: site() };
    sim::start(SimConfig::new(scenario)).await.expect("sim starts")
}

struct Api {
    http: Client,
    base: String,
}

impl Api {
    fn new(sim: &SimHandle) -> Self {
        Api { http: Client::new(), base: format!("{}/identity", sim.base_url()) }
    }

    /// Sends a request; returns status, headers and the JSON body (Null when empty).
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("X-Auth-Token", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let json =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, headers, json)
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let (s, _, b) = self.call(Method::GET, path, Some(token), None).await;
        (s, b)
    }

    async fn token_raw(&self, auth: Value) -> (StatusCode, Option<String>, Value) {
        let (s, h, b) = self.call(Method::POST, "/v3/auth/tokens", None, Some(json!({"auth": auth}))).await;
        (s, h.get("x-subject-token").map(|v| v.to_str().unwrap().to_string()), b)
    }

    /// Issues a password token; panics unless 201.
    async fn token(&self, user: &str, scope: Option<Value>) -> (String, Value) {
        let mut auth = json!({"identity": {"methods": ["password"], "password": {"user": {"name": user, "domain": {"id": "default"}, "password": "secret"}}}});
        if let Some(s) = scope {
            auth["scope"] = s;
        }
        let (s, tok, body) = self.token_raw(auth).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        (tok.expect("X-Subject-Token"), body)
    }
}

fn project_scope(id: &str) -> Option<Value> {
    Some(json!({"project": {"id": id}}))
}
fn system_scope() -> Option<Value> {
    Some(json!({"system": {"all": true}}))
}
fn role_names(token: &Value) -> Vec<String> {
    let mut v: Vec<String> =
        token["token"]["roles"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_string()).collect();
    v.sort();
    v
}
fn catalog_url(token: &Value, kind: &str, interface: &str) -> Option<String> {
    token["token"]["catalog"].as_array()?.iter().find(|s| s["type"] == kind)?["endpoints"]
        .as_array()?
        .iter()
        .find(|e| e["interface"] == interface)
        .map(|e| e["url"].as_str().unwrap().to_string())
}
fn ids(list: &Value) -> Vec<String> {
    let mut v: Vec<String> = list.as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap().to_string()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn version_discovery_answers_300_at_root_and_v3_document() {
    let sim = start().await;
    let api = Api::new(&sim);
    let (s, h, b) = api.call(Method::GET, "", None, None).await;
    assert_eq!(s, StatusCode::MULTIPLE_CHOICES);
    let href = format!("{}/identity/v3/", sim.base_url());
    assert_eq!(h["location"].to_str().unwrap(), href);
    assert_eq!(b["versions"]["values"][0]["id"], "v3.14");
    assert_eq!(b["versions"]["values"][0]["links"][0]["href"], href);
    for path in ["/v3", "/v3/"] {
        let (s, _, b) = api.call(Method::GET, path, None, None).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        assert_eq!(b["version"]["status"], "stable");
        assert_eq!(b["version"]["updated"], "2020-04-07T00:00:00Z");
        assert_eq!(b["version"]["media-types"][0]["type"], "application/vnd.openstack.identity-v3+json");
    }
    sim.stop().await;
}

#[tokio::test]
async fn password_project_token_by_names_has_keystone_body_and_implied_roles() {
    let sim = start().await;
    let api = Api::new(&sim);
    let scope = json!({"project": {"name": "admin", "domain": {"name": "Default"}}});
    let auth = json!({"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"name": "Default"}, "password": "secret"}}}, "scope": scope});
    let (s, tok, b) = api.token_raw(auth).await;
    assert_eq!(s, StatusCode::CREATED);
    assert!(tok.unwrap().len() > 32);
    let t = &b["token"];
    assert_eq!(t["methods"], json!(["password"]));
    assert_eq!(
        t["user"],
        json!({"domain": {"id": "default", "name": "Default"}, "id": "u-admin", "name": "admin", "password_expires_at": null})
    );
    assert_eq!(t["project"], json!({"domain": {"id": "default", "name": "Default"}, "id": ADMIN_P, "name": "admin"}));
    assert_eq!(t["is_domain"], false);
    assert_eq!(t["audit_ids"].as_array().unwrap().len(), 1);
    assert_eq!(t["audit_ids"][0].as_str().unwrap().len(), 22);
    let issued = t["issued_at"].as_str().unwrap();
    let expires = t["expires_at"].as_str().unwrap();
    // Token times follow the host clock (clients compare expiry with it), not
    // the scenario's reference time.
    let age = chrono::Utc::now() - DateTime::parse_from_rfc3339(issued).unwrap().with_timezone(&chrono::Utc);
    assert!(age >= Duration::zero() && age < Duration::seconds(30), "{issued}");
    assert!(issued.ends_with(".000000Z"), "{issued}");
    let parse = |s: &str| DateTime::parse_from_rfc3339(s).unwrap();
    assert_eq!(parse(expires) - parse(issued), Duration::hours(1));
    assert_eq!(role_names(&b), vec!["admin", "member", "reader"]);
    assert!(t["roles"].as_array().unwrap().iter().any(|r| r == &json!({"id": "r-member", "name": "member"})));
    sim.stop().await;
}

#[tokio::test]
async fn catalog_lists_every_service_with_three_interfaces_and_region() {
    let sim = start().await;
    let api = Api::new(&sim);
    let base = sim.base_url().to_string();
    let (_, b) = api.token("alice", project_scope(P1)).await;
    assert_eq!(role_names(&b), vec!["reader"]);
    for (kind, url) in [
        ("identity", format!("{base}/identity")),
        ("compute", format!("{base}/compute/v2.1")),
        ("volumev3", format!("{base}/volume/v3/{P1}")),
        ("block-storage", format!("{base}/volume/v3")),
        ("network", format!("{base}/network")),
        ("image", format!("{base}/image")),
    ] {
        for i in ["public", "internal", "admin"] {
            assert_eq!(catalog_url(&b, kind, i).as_deref(), Some(url.as_str()), "{kind} {i}");
        }
    }
    let ep = &b["token"]["catalog"][0]["endpoints"][0];
    assert_eq!(ep["region"], "RegionOne");
    assert_eq!(ep["region_id"], "RegionOne");
    assert_eq!(ep["id"].as_str().unwrap().len(), 32);

    // Ids are stable across tokens and match /v3/services and /v3/endpoints.
    let (admin, b2) = api.token("admin", system_scope()).await;
    assert_eq!(catalog_url(&b2, "volumev3", "public"), None, "volumev3 needs a project");
    let compute =
        |b: &Value| b["token"]["catalog"].as_array().unwrap().iter().find(|s| s["type"] == "compute").unwrap().clone();
    assert_eq!(compute(&b)["id"], compute(&b2)["id"]);
    let (s, services) = api.get("/v3/services", &admin).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        services["services"].as_array().unwrap().iter().any(|x| x["id"] == compute(&b)["id"] && x["name"] == "nova")
    );
    let (_, eps) = api.get("/v3/endpoints?interface=public", &admin).await;
    let eps = eps["endpoints"].as_array().unwrap();
    assert_eq!(eps.len(), 7);
    assert!(eps.iter().any(|e| e["url"] == format!("{base}/volume/v3/%(project_id)s")));
    assert!(eps.iter().any(|e| e["url"] == format!("{base}/object-store/v1/AUTH_%(project_id)s")));
    assert_eq!(catalog_url(&b2, "object-store", "public"), None, "object-store needs a project");
    let (_, regions) = api.get("/v3/regions", &admin).await;
    assert_eq!(regions["regions"][0]["id"], "RegionOne");
    sim.stop().await;
}

#[tokio::test]
async fn system_domain_and_unscoped_tokens_have_their_scope_only() {
    let sim = start().await;
    let api = Api::new(&sim);
    let (_, b) = api.token("accounting", system_scope()).await;
    assert_eq!(b["token"]["system"], json!({"all": true}));
    assert!(b["token"].get("project").is_none());
    assert_eq!(role_names(&b), vec!["reader"]);
    assert!(catalog_url(&b, "block-storage", "public").is_some());

    let (_, b) = api.token("admin", Some(json!({"domain": {"name": "Default"}}))).await;
    assert_eq!(b["token"]["domain"], json!({"id": "default", "name": "Default"}));
    assert_eq!(role_names(&b), vec!["admin", "member", "reader"]);

    let (_, b) = api.token("alice", None).await;
    assert!(b["token"].get("roles").is_none());
    assert!(b["token"].get("catalog").is_none());
    assert_eq!(b["token"]["user"]["id"], "u-alice");
    sim.stop().await;
}

#[tokio::test]
async fn scope_without_role_and_bad_credentials_answer_401_bad_body_400() {
    let sim = start().await;
    let api = Api::new(&sim);
    let pw = |user: &str, password: &str| json!({"methods": ["password"], "password": {"user": {"name": user, "domain": {"id": "default"}, "password": password}}});
    for (auth, why) in [
        (json!({"identity": pw("alice", "wrong")}), "wrong password"),
        (json!({"identity": pw("nobody", "secret")}), "unknown user"),
        (json!({"identity": pw("alice", "secret"), "scope": {"system": {"all": true}}}), "no system role"),
        (json!({"identity": pw("alice", "secret"), "scope": {"project": {"id": P2}}}), "no role on project"),
        (json!({"identity": pw("alice", "secret"), "scope": {"project": {"id": "nope"}}}), "unknown project"),
        (json!({"identity": pw("alice", "secret"), "scope": {"domain": {"id": "default"}}}), "no domain role"),
    ] {
        let (s, tok, b) = api.token_raw(auth).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{why}");
        assert!(tok.is_none());
        assert_eq!(
            b,
            json!({"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}})
        );
    }
    let (s, b) = {
        let (s, _, b) = api.call(Method::POST, "/v3/auth/tokens", None, Some(json!({"auth": {}}))).await;
        (s, b)
    };
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(b["error"]["message"], "'identity' is a required property");
    let resp = reqwest::Client::new()
        .post(format!("{}/identity/v3/auth/tokens", sim.base_url()))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let b: Value = resp.json().await.unwrap();
    assert!(b["error"]["message"].as_str().unwrap().starts_with("Expecting to find valid JSON"));
    let (s, _, b) = api.token_raw(json!({"identity": {"methods": ["password"]}})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["error"]["message"].as_str().unwrap().starts_with("Expecting to find password in identity"));
    sim.stop().await;
}

#[tokio::test]
async fn token_method_rescopes_keeping_expiry_and_audit_chain() {
    let sim = start().await;
    let api = Api::new(&sim);
    let (unscoped, b0) = api.token("alice", None).await;
    let (s, _, b) = api
        .token_raw(json!({"identity": {"methods": ["token"], "token": {"id": unscoped}}, "scope": {"project": {"name": "proj1", "domain": {"id": "default"}}}}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(b["token"]["methods"], json!(["token", "password"]));
    assert_eq!(b["token"]["expires_at"], b0["token"]["expires_at"]);
    assert_eq!(b["token"]["audit_ids"][1], b0["token"]["audit_ids"][0]);
    assert_eq!(b["token"]["project"]["id"], P1);
    let (s, _, _) = api.token_raw(json!({"identity": {"methods": ["token"], "token": {"id": "bogus"}}})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    sim.stop().await;
}

#[tokio::test]
async fn validate_check_revoke_and_expiry_follow_the_simulated_clock() {
    let sim = start().await;
    let api = Api::new(&sim);
    let (admin, _) = api.token("admin", project_scope(ADMIN_P)).await;
    let (alice, alice_body) = api.token("alice", project_scope(P1)).await;
    let subject = |t: &str, s: &str, m: Method| {
        let api = &api;
        let (t, s) = (t.to_string(), s.to_string());
        async move {
            let resp = api
                .http
                .request(m, format!("{}/v3/auth/tokens", api.base))
                .header("X-Auth-Token", t)
                .header("X-Subject-Token", &s)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let header = resp.headers().get("x-subject-token").map(|v| v.to_str().unwrap().to_string());
            let text = resp.text().await.unwrap();
            (status, header, serde_json::from_str::<Value>(&text).unwrap_or(Value::Null))
        }
    };
    let (s, h, b) = subject(&admin, &alice, Method::GET).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h.as_deref(), Some(alice.as_str()));
    assert_eq!(b, alice_body);
    let (s, _, _) = subject(&admin, &alice, Method::HEAD).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = subject(&alice, &alice, Method::GET).await;
    assert_eq!(s, StatusCode::OK, "the token's own user may validate it");
    let (s, _, b) = subject(&alice, &admin, Method::GET).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        b["error"]["message"],
        "You are not authorized to perform the requested action: identity:validate_token."
    );
    let (s, _, b) = subject(&admin, "bogus", Method::GET).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(b["error"]["code"], 404);

    let (s, _, _) = subject(&admin, &alice, Method::DELETE).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, b) = subject(&admin, &alice, Method::GET).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(b["error"]["message"], "Failed to validate token");
    let (s, _) = api.get(&format!("/v3/projects/{P1}"), &alice).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "a revoked token no longer authenticates");

    sim.set_now(reference() + Duration::hours(2));
    let (s, _) = api.get("/v3/users", &admin).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "an expired token no longer authenticates");
    sim.stop().await;
}

#[tokio::test]
async fn auth_catalog_projects_domains_and_system() {
    let sim = start().await;
    let api = Api::new(&sim);
    let (alice, b) = api.token("alice", project_scope(P1)).await;
    let (s, cat) = api.get("/v3/auth/catalog", &alice).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(cat["catalog"], b["token"]["catalog"]);
    let (_, projects) = api.get("/v3/auth/projects", &alice).await;
    assert_eq!(ids(&projects["projects"]), vec![P1]);
    let (_, domains) = api.get("/v3/auth/domains", &alice).await;
    assert_eq!(domains["domains"], json!([]));
    let (_, system) = api.get("/v3/auth/system", &alice).await;
    assert_eq!(system["system"], json!([]));
    let (acc, _) = api.token("accounting", system_scope()).await;
    let (_, system) = api.get("/v3/auth/system", &acc).await;
    assert_eq!(system["system"], json!([{"all": true}]));
    let (unscoped, _) = api.token("alice", None).await;
    let (s, _) = api.get("/v3/auth/catalog", &unscoped).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    sim.stop().await;
}

#[tokio::test]
async fn project_tag_filters_follow_keystone_semantics() {
    let sim = start().await;
    let api = Api::new(&sim);
    let (acc, _) = api.token("accounting", system_scope()).await;
    for (query, expected) in [
        ("tags=caso", vec![P1]),
        ("tags=caso,egi", vec![P1]),
        ("tags=egi", vec![P1, P2]),
        ("tags-any=caso,nothing", vec![P1]),
        ("not-tags=caso,egi", vec![ADMIN_P, P2]),
        ("not-tags-any=caso", vec![ADMIN_P, P2]),
        ("not-tags-any=egi", vec![ADMIN_P]),
        ("name=proj2", vec![P2]),
        ("domain_id=d-other", vec![]),
        ("enabled=false", vec![]),
    ] {
        let (s, b) = api.get(&format!("/v3/projects?{query}"), &acc).await;
        assert_eq!(s, StatusCode::OK, "{query}");
        let mut expected: Vec<String> = expected.into_iter().map(String::from).collect();
        expected.sort();
        assert_eq!(ids(&b["projects"]), expected, "{query}");
    }
    let (_, b) = api.get("/v3/projects?tags=caso", &acc).await;
    assert_eq!(b["links"]["self"], format!("{}/identity/v3/projects?tags=caso", sim.base_url()));
    sim.stop().await;
}

#[tokio::test]
async fn projects_carry_extra_properties_flat_and_patch_sets_them() {
    let sim = start().await;
    let api = Api::new(&sim);
    let (admin, _) = api.token("admin", project_scope(ADMIN_P)).await;
    let (s, b) = api.get(&format!("/v3/projects/{P1}"), &admin).await;
    assert_eq!(s, StatusCode::OK);
    let p = &b["project"];
    assert_eq!(p["egi.VO"], "vo.example.org");
    assert_eq!(p["parent_id"], "default");
    assert_eq!(p["is_domain"], false);
    assert_eq!(p["options"], json!({}));
    assert_eq!(p["tags"], json!(["caso", "egi"]));
    assert_eq!(p["links"]["self"], format!("{}/identity/v3/projects/{P1}", sim.base_url()));

    let (s, _, b) = api
        .call(
            Method::PATCH,
            &format!("/v3/projects/{P1}"),
            Some(&admin),
            Some(json!({"project": {"egi.VO": "vo.new.org", "description": "changed"}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["project"]["egi.VO"], "vo.new.org");
    assert_eq!(b["project"]["description"], "changed");
    let (_, b) = api.get(&format!("/v3/projects/{P1}"), &admin).await;
    assert_eq!(b["project"]["egi.VO"], "vo.new.org");

    let (s, _, b) = api
        .call(
            Method::POST,
            "/v3/projects",
            Some(&admin),
            Some(json!({"project": {"name": "vo3", "tags": ["caso"], "VO": "vo3.org"}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(b["project"]["VO"], "vo3.org");
    assert_eq!(b["project"]["domain_id"], "default");
    assert_eq!(b["project"]["id"].as_str().unwrap().len(), 32);
    let (s, _, b) =
        api.call(Method::POST, "/v3/projects", Some(&admin), Some(json!({"project": {"name": "vo3"}}))).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    let (s, _, b) =
        api.call(Method::POST, "/v3/projects", Some(&admin), Some(json!({"project": {"domain_id": "default"}}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["error"]["message"].as_str().unwrap().contains("'name' is a required property"));
    sim.stop().await;
}

#[tokio::test]
async fn project_tag_endpoints_read_and_write_the_tag_list() {
    let sim = start().await;
    let api = Api::new(&sim);
    let (admin, _) = api.token("admin", project_scope(ADMIN_P)).await;
    let path = format!("/v3/projects/{P2}/tags");
    let (s, b) = api.get(&path, &admin).await;
    assert_eq!((s, b["tags"].clone()), (StatusCode::OK, json!(["egi"])));
    let (s, _, _) = api.call(Method::PUT, &format!("{path}/caso"), Some(&admin), None).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _, _) = api.call(Method::GET, &format!("{path}/caso"), Some(&admin), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, b) = api.call(Method::GET, &format!("{path}/nope"), Some(&admin), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(b["error"]["message"], "Could not find project tag: nope.");
    let (s, _, b) = api.call(Method::PUT, &path, Some(&admin), Some(json!({"tags": ["a", "b"]}))).await;
    assert_eq!((s, b["tags"].clone()), (StatusCode::OK, json!(["a", "b"])));
    let (s, _, _) = api.call(Method::DELETE, &format!("{path}/a"), Some(&admin), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, b) = api.get(&format!("/v3/projects/{P2}"), &admin).await;
    assert_eq!(b["project"]["tags"], json!(["b"]));
    let (s, _, _) = api.call(Method::PUT, &format!("{path}/a,b"), Some(&admin), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    sim.stop().await;
}

#[tokio::test]
async fn project_reader_is_forbidden_to_list_users_and_projects_system_reader_is_not() {
    let sim = start().await;
    let api = Api::new(&sim);
    let (alice, _) = api.token("alice", project_scope(P1)).await;
    let (s, b) = api.get("/v3/users", &alice).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        b,
        json!({"error": {"code": 403, "message": "You are not authorized to perform the requested action: identity:list_users.", "title": "Forbidden"}})
    );
    let (s, b) = api.get("/v3/projects", &alice).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        b["error"]["message"],
        "You are not authorized to perform the requested action: identity:list_projects."
    );
    let (s, _) = api.get("/v3/role_assignments", &alice).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = api.get("/v3/services", &alice).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Own project, own user, own projects list: allowed.
    let (s, b) = api.get(&format!("/v3/projects/{P1}"), &alice).await;
    assert_eq!((s, b["project"]["egi.VO"].clone()), (StatusCode::OK, json!("vo.example.org")));
    let (s, _) = api.get(&format!("/v3/projects/{P2}"), &alice).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = api.get("/v3/users/u-alice", &alice).await;
    assert_eq!((s, b["user"]["email"].clone()), (StatusCode::OK, json!("alice@example.org")));
    let (s, _) = api.get("/v3/users/u-bob", &alice).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = api.get("/v3/users/u-alice/projects", &alice).await;
    assert_eq!((s, ids(&b["projects"])), (StatusCode::OK, vec![P1.to_string()]));

    let (acc, _) = api.token("accounting", system_scope()).await;
    let (s, b) = api.get("/v3/users", &acc).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&b["users"]), vec!["u-accounting", "u-admin", "u-alice", "u-bob"]);
    let u = b["users"].as_array().unwrap().iter().find(|u| u["id"] == "u-bob").unwrap();
    assert_eq!(
        u,
        &json!({"id": "u-bob", "name": "bob", "domain_id": "default", "enabled": true, "password_expires_at": null, "options": {},
                "links": {"self": format!("{}/identity/v3/users/u-bob", sim.base_url())}})
    );
    let (s, b) = api.get("/v3/users/u-alice", &acc).await;
    assert_eq!((s, b["user"]["name"].clone()), (StatusCode::OK, json!("alice")));
    let (s, _) = api.get("/v3/users/nope", &acc).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // A system reader may read but not write.
    let (s, _, b) = api.call(Method::POST, "/v3/users", Some(&acc), Some(json!({"user": {"name": "eve"}}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(b["error"]["message"], "You are not authorized to perform the requested action: identity:create_user.");
    // A domain reader sees its domain.
    let (bob, _) = api.token("bob", Some(json!({"domain": {"id": "default"}}))).await;
    let (s, b) = api.get("/v3/users", &bob).await;
    assert_eq!((s, b["users"].as_array().unwrap().len()), (StatusCode::OK, 4));
    // No token, bad token: 401.
    let (s, _, _) = api.call(Method::GET, "/v3/users", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = api.get("/v3/users", "bogus").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    sim.stop().await;
}

#[tokio::test]
async fn users_and_grants_round_trip_then_new_user_can_log_in() {
    let sim = start().await;
    let api = Api::new(&sim);
    let (admin, _) = api.token("admin", system_scope()).await;
    let (s, _, b) = api
        .call(
            Method::POST,
            "/v3/users",
            Some(&admin),
            Some(json!({"user": {"name": "carol", "domain_id": "default", "password": "pw", "email": "c@x.org"}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let carol = b["user"]["id"].as_str().unwrap().to_string();
    assert_eq!(b["user"]["email"], "c@x.org");
    let (s, _, _) = api.call(Method::POST, "/v3/users", Some(&admin), Some(json!({"user": {"name": "carol"}}))).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let grant = format!("/v3/projects/{P2}/users/{carol}/roles/r-member");
    let (s, _, _) = api.call(Method::HEAD, &grant, Some(&admin), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = api.call(Method::PUT, &grant, Some(&admin), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, _) = api.call(Method::HEAD, &grant, Some(&admin), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let auth = json!({"identity": {"methods": ["password"], "password": {"user": {"id": carol, "password": "pw"}}}, "scope": {"project": {"id": P2}}});
    let (s, _, b) = api.token_raw(auth.clone()).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(role_names(&b), vec!["member", "reader"]);
    let (s, _, b) = api
        .call(Method::PATCH, &format!("/v3/users/{carol}"), Some(&admin), Some(json!({"user": {"enabled": false}})))
        .await;
    assert_eq!((s, b["user"]["enabled"].clone()), (StatusCode::OK, json!(false)));
    let (s, _, _) = api.token_raw(auth).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "disabled user");
    let (s, _, _) = api.call(Method::DELETE, &grant, Some(&admin), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, _) = api.call(Method::DELETE, &format!("/v3/users/{carol}"), Some(&admin), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = api.get(&format!("/v3/users/{carol}"), &admin).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, b) = api.call(Method::POST, "/v3/roles", Some(&admin), Some(json!({"role": {"name": "reader"}}))).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(
        b["error"]["message"],
        "Conflict occurred attempting to store role - Duplicate entry found with name reader."
    );
    let (s, _, b) =
        api.call(Method::POST, "/v3/roles", Some(&admin), Some(json!({"role": {"name": "egi-role"}}))).await;
    assert_eq!((s, b["role"]["domain_id"].clone()), (StatusCode::CREATED, Value::Null));
    let (_, b) = api.get("/v3/roles", &admin).await;
    assert_eq!(b["roles"].as_array().unwrap().len(), 4);
    sim.stop().await;
}

#[tokio::test]
async fn role_assignments_filter_name_and_expand_implied_roles() {
    let sim = start().await;
    let api = Api::new(&sim);
    let (acc, _) = api.token("accounting", system_scope()).await;
    let (s, b) = api.get("/v3/role_assignments?user.id=u-alice&include_names=true", &acc).await;
    assert_eq!(s, StatusCode::OK);
    let base = sim.base_url();
    assert_eq!(
        b["role_assignments"],
        json!([{
            "links": {"assignment": format!("{base}/identity/v3/projects/{P1}/users/u-alice/roles/r-reader")},
            "scope": {"project": {"id": P1, "name": "proj1", "domain": {"id": "default", "name": "Default"}}},
            "user": {"id": "u-alice", "name": "alice", "domain": {"id": "default", "name": "Default"}},
            "role": {"id": "r-reader", "name": "reader"},
        }])
    );
    let (_, b) = api.get("/v3/role_assignments?scope.system", &acc).await;
    let users: Vec<&str> =
        b["role_assignments"].as_array().unwrap().iter().map(|a| a["user"]["id"].as_str().unwrap()).collect();
    assert_eq!(users, vec!["u-admin", "u-accounting"]);
    assert_eq!(b["role_assignments"][0]["scope"], json!({"system": {"all": true}}));
    let (_, b) = api.get(&format!("/v3/role_assignments?effective&scope.project.id={ADMIN_P}"), &acc).await;
    let rows = b["role_assignments"].as_array().unwrap();
    let roles: Vec<&str> = rows.iter().map(|a| a["role"]["id"].as_str().unwrap()).collect();
    assert_eq!(roles, vec!["r-admin", "r-member", "r-reader"]);
    assert!(rows[2]["links"]["prior_role"].as_str().unwrap().ends_with("/roles/r-member/implies/r-reader"));
    let (_, b) = api.get(&format!("/v3/role_assignments?role.id=r-member&scope.project.id={P1}"), &acc).await;
    assert_eq!(b["role_assignments"].as_array().unwrap().len(), 1);
    sim.stop().await;
}

#[tokio::test]
async fn application_credential_authenticates_restricted_to_its_project() {
    let sim = start().await;
    let api = Api::new(&sim);
    let (bob, _) = api.token("bob", project_scope(P1)).await;
    let path = "/v3/users/u-bob/application_credentials";
    let (s, _, b) = api
        .call(
            Method::POST,
            path,
            Some(&bob),
            Some(json!({"application_credential": {"name": "caso", "roles": [{"name": "reader"}]}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let ac = &b["application_credential"];
    let (id, secret) = (ac["id"].as_str().unwrap().to_string(), ac["secret"].as_str().unwrap().to_string());
    assert!(secret.len() >= 64);
    assert_eq!(ac["project_id"], P1);
    assert_eq!(ac["roles"][0]["name"], "reader");
    let (s, _, _) =
        api.call(Method::POST, path, Some(&bob), Some(json!({"application_credential": {"name": "caso"}}))).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _, b) = api
        .call(Method::POST, path, Some(&bob), Some(json!({"application_credential": {"name": "all", "roles": []}})))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let mut names: Vec<&str> =
        b["application_credential"]["roles"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, vec!["member", "reader"], "no roles given: the token's roles");
    let (s, _, _) = api
        .call(
            Method::POST,
            path,
            Some(&bob),
            Some(json!({"application_credential": {"name": "up", "roles": [{"name": "admin"}]}})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "no role the token lacks");
    let (s, b) = api.get(path, &bob).await;
    assert_eq!(s, StatusCode::OK);
    assert!(b["application_credentials"][0].get("secret").is_none(), "the secret is shown only at creation");
    let (alice, _) = api.token("alice", project_scope(P1)).await;
    let (s, _, _) =
        api.call(Method::POST, path, Some(&alice), Some(json!({"application_credential": {"name": "x"}}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "only the owner creates");

    let by_id = json!({"identity": {"methods": ["application_credential"], "application_credential": {"id": id, "secret": secret}}});
    let (s, tok, b) = api.token_raw(by_id.clone()).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(b["token"]["methods"], json!(["application_credential"]));
    assert_eq!(b["token"]["project"]["id"], P1);
    assert_eq!(role_names(&b), vec!["reader"], "restricted to the credential's roles");
    assert_eq!(b["token"]["application_credential"], json!({"id": id, "name": "caso", "restricted": true}));
    let by_name = json!({"identity": {"methods": ["application_credential"], "application_credential": {"name": "caso", "user": {"name": "bob", "domain": {"name": "Default"}}, "secret": secret}}});
    let (s, _, _) = api.token_raw(by_name).await;
    assert_eq!(s, StatusCode::CREATED);
    let wrong = json!({"identity": {"methods": ["application_credential"], "application_credential": {"id": id, "secret": "wrong"}}});
    assert_eq!(api.token_raw(wrong).await.0, StatusCode::UNAUTHORIZED);
    let mut scoped = by_id.clone();
    scoped["scope"] = json!({"project": {"id": P1}});
    assert_eq!(api.token_raw(scoped).await.0, StatusCode::UNAUTHORIZED, "app credentials cannot request a scope");

    let (s, _, _) = api.call(Method::DELETE, &format!("{path}/{id}"), Some(&bob), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = api.get(&format!("/v3/projects/{P1}"), &tok.unwrap()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "tokens of a deleted credential stop working");
    assert_eq!(api.token_raw(by_id).await.0, StatusCode::UNAUTHORIZED);
    sim.stop().await;
}

#[tokio::test]
async fn federation_objects_round_trip_with_validation() {
    let sim = start().await;
    let api = Api::new(&sim);
    let (admin, _) = api.token("admin", system_scope()).await;
    let f = "/v3/OS-FEDERATION";
    let call = |m: Method, p: String, b: Option<Value>| {
        let api = &api;
        let admin = admin.clone();
        async move {
            let (s, _, b) = api.call(m, &p, Some(&admin), b).await;
            (s, b)
        }
    };
    // Identity provider: created with a generated domain, PATCHed, listed.
    let (s, b) = call(
        Method::PUT,
        format!("{f}/identity_providers/egi"),
        Some(json!({"identity_provider": {"remote_ids": ["https://aai.egi.eu/auth/realms/egi"], "enabled": true}})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let idp = &b["identity_provider"];
    assert_eq!(idp["enabled"], true);
    assert_eq!(idp["description"], Value::Null);
    assert_eq!(idp["authorization_ttl"], Value::Null);
    // Keystone 30 links protocols in the list only, not on the resource.
    assert_eq!(idp["links"].as_object().unwrap().keys().collect::<Vec<_>>(), vec!["self"]);
    let (s, b) = api.get("/v3/OS-FEDERATION/identity_providers", &admin).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        b["identity_providers"][0]["links"]["protocols"]
            .as_str()
            .unwrap()
            .ends_with("/identity/v3/OS-FEDERATION/identity_providers/egi/protocols")
    );
    let domain = idp["domain_id"].as_str().unwrap().to_string();
    let (s, b) = api.get(&format!("/v3/domains/{domain}"), &admin).await;
    assert_eq!(
        (s, b["domain"]["description"].clone()),
        (StatusCode::OK, json!("Auto generated federated domain for Identity Provider: egi"))
    );
    let (s, _) = call(Method::PUT, format!("{f}/identity_providers/egi"), Some(json!({"identity_provider": {}}))).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = call(
        Method::PUT,
        format!("{f}/identity_providers/egi2"),
        Some(json!({"identity_provider": {"remote_ids": ["https://aai.egi.eu/auth/realms/egi"]}})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "remote ids are unique");
    let (s, b) =
        call(Method::PUT, format!("{f}/identity_providers/bad"), Some(json!({"identity_provider": {"bogus": 1}})))
            .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["error"]["message"].as_str().unwrap().contains("'bogus' was unexpected"));
    let (s, b) = call(
        Method::PUT,
        format!("{f}/identity_providers/bad"),
        Some(json!({"identity_provider": {"enabled": "yes"}})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["error"]["message"].as_str().unwrap().contains("enabled"));
    let (s, _) = call(
        Method::PUT,
        format!("{f}/identity_providers/bad"),
        Some(json!({"identity_provider": {"domain_id": "nope"}})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, b) = call(
        Method::PATCH,
        format!("{f}/identity_providers/egi"),
        Some(json!({"identity_provider": {"description": "EGI Check-in", "enabled": false}})),
    )
    .await;
    assert_eq!(
        (s, b["identity_provider"]["description"].clone(), b["identity_provider"]["enabled"].clone()),
        (StatusCode::OK, json!("EGI Check-in"), json!(false))
    );
    let (_, b) = call(Method::GET, format!("{f}/identity_providers"), None).await;
    assert_eq!(ids(&b["identity_providers"]), vec!["egi"]);

    // Mapping.
    let rules = json!([{"local": [{"user": {"name": "{0}"}}], "remote": [{"type": "OIDC-sub"}]}]);
    let (s, b) =
        call(Method::PUT, format!("{f}/mappings/egi-map"), Some(json!({"mapping": {"id": "egi-map", "rules": rules}})))
            .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(b["mapping"]["schema_version"], "1.0");
    assert_eq!(b["mapping"]["rules"], rules);
    let (s, b) = call(Method::PUT, format!("{f}/mappings/m2"), Some(json!({"mapping": {}}))).await;
    assert_eq!(
        (s, b["error"]["message"].clone()),
        (StatusCode::BAD_REQUEST, json!("'rules' is a required property\n"))
    );
    let (s, b) =
        call(Method::PUT, format!("{f}/mappings/m2"), Some(json!({"mapping": {"rules": [{"local": []}]}}))).await;
    assert_eq!(
        (s, b["error"]["message"].clone()),
        (StatusCode::BAD_REQUEST, json!("'remote' is a required property\n"))
    );
    let (s, _) = call(Method::PUT, format!("{f}/mappings/egi-map"), Some(json!({"mapping": {"rules": rules}}))).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let rules2 = json!([{"local": [{"user": {"name": "x"}}], "remote": [{"type": "OIDC-email"}]}]);
    let (s, b) =
        call(Method::PATCH, format!("{f}/mappings/egi-map"), Some(json!({"mapping": {"rules": rules2}}))).await;
    assert_eq!((s, b["mapping"]["rules"].clone()), (StatusCode::OK, rules2));

    // Protocol.
    let proto = format!("{f}/identity_providers/egi/protocols/openid");
    let (s, b) = call(
        Method::PUT,
        proto.clone(),
        Some(json!({"protocol": {"mapping_id": "egi-map", "remote_id_attribute": "OIDC-iss"}})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["protocol"]["mapping_id"], "egi-map");
    assert_eq!(b["protocol"]["remote_id_attribute"], "OIDC-iss");
    let (s, _) = call(Method::PUT, proto.clone(), Some(json!({"protocol": {"mapping_id": "egi-map"}}))).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, b) =
        call(Method::PUT, format!("{f}/identity_providers/egi/protocols/saml2"), Some(json!({"protocol": {}}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["error"]["message"].as_str().unwrap().contains("'mapping_id' is a required property"));
    let (s, b) = call(
        Method::PUT,
        format!("{f}/identity_providers/egi/protocols/saml2"),
        Some(json!({"protocol": {"mapping_id": "nope"}})),
    )
    .await;
    assert_eq!((s, b["error"]["message"].clone()), (StatusCode::BAD_REQUEST, json!("Invalid mapping id: nope")));
    let (s, _) = call(
        Method::PUT,
        format!("{f}/identity_providers/nope/protocols/openid"),
        Some(json!({"protocol": {"mapping_id": "egi-map"}})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) =
        call(Method::PATCH, proto.clone(), Some(json!({"protocol": {"remote_id_attribute": "OIDC-iss2"}}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "Keystone requires mapping_id on update too");
    let (s, b) = call(
        Method::PATCH,
        proto.clone(),
        Some(json!({"protocol": {"mapping_id": "egi-map", "remote_id_attribute": "OIDC-iss2"}})),
    )
    .await;
    assert_eq!((s, b["protocol"]["remote_id_attribute"].clone()), (StatusCode::OK, json!("OIDC-iss2")));
    let (_, b) = call(Method::GET, format!("{f}/identity_providers/egi/protocols"), None).await;
    assert_eq!(b["protocols"][0]["idp_id"], "egi");

    // A system reader reads, a project reader does not.
    let (acc, _) = api.token("accounting", system_scope()).await;
    assert_eq!(api.get(&format!("{f}/mappings"), &acc).await.0, StatusCode::OK);
    let (alice, _) = api.token("alice", project_scope(P1)).await;
    let (s, b) = api.get(&format!("{f}/identity_providers"), &alice).await;
    assert_eq!(
        (s, b["error"]["message"].clone()),
        (
            StatusCode::FORBIDDEN,
            json!("You are not authorized to perform the requested action: identity:list_identity_providers.")
        )
    );
    let (s, _, _) =
        api.call(Method::PUT, &format!("{f}/mappings/x"), Some(&acc), Some(json!({"mapping": {"rules": rules}}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Deletes.
    assert_eq!(call(Method::DELETE, proto.clone(), None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(call(Method::GET, proto, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(call(Method::DELETE, format!("{f}/mappings/egi-map"), None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(call(Method::DELETE, format!("{f}/identity_providers/egi"), None).await.0, StatusCode::NO_CONTENT);
    let (s, b) = call(Method::GET, format!("{f}/identity_providers/egi"), None).await;
    assert_eq!(
        (s, b["error"]["message"].clone()),
        (StatusCode::NOT_FOUND, json!("Could not find Identity Provider: egi."))
    );
    sim.stop().await;
}

#[tokio::test]
async fn domains_list_and_unknown_routes_answer_keystone_errors() {
    let sim = start().await;
    let api = Api::new(&sim);
    let (admin, _) = api.token("admin", system_scope()).await;
    let (s, b) = api.get("/v3/domains", &admin).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&b["domains"]), vec!["d-other", "default"]);
    let d = b["domains"].as_array().unwrap().iter().find(|d| d["id"] == "default").unwrap();
    assert_eq!(d["description"], "The default domain");
    let (s, b) = api.get("/v3/domains/nope", &admin).await;
    assert_eq!((s, b["error"]["message"].clone()), (StatusCode::NOT_FOUND, json!("Could not find domain: nope.")));
    let (s, b) = api.get("/v3/projects/nope", &admin).await;
    assert_eq!((s, b["error"]["message"].clone()), (StatusCode::NOT_FOUND, json!("Could not find project: nope.")));
    let (s, b) = api.get("/v3/nothing-here", &admin).await;
    assert_eq!((s, b["error"]["code"].clone()), (StatusCode::NOT_FOUND, json!(404)));
    sim.stop().await;
}
