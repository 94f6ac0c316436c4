//! Hybrid mode: the REAL Keystone fronts the simulated Nova, Cinder and
//! Neutron. The simulated services validate tokens with the real Keystone
//! (`GET /v3/auth/tokens`) and enforce scope and roles from its answer.

use crate::common;

use serde_json::{Value, json};

/// A token from the real Keystone, scoped to `project`.
async fn real_token(user: &str, project: &str) -> String {
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": common::real_admin_password()}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}});
    let resp = reqwest::Client::new()
        .post(format!("{}/auth/tokens", common::real_keystone()))
        .json(&body)
        .send()
        .await
        .expect("reaching the real Keystone");
    assert_eq!(resp.status(), 201, "real Keystone token for {user}/{project}");
    resp.headers()["x-subject-token"].to_str().unwrap().to_string()
}

async fn get(url: &str, token: &str) -> (u16, Value) {
    let resp = reqwest::Client::new().get(url).header("X-Auth-Token", token).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn simulated_services_accept_real_keystone_tokens_and_enforce_their_roles() {
    let admin = real_token("admin", "admin").await;
    let scenario = sim::scenario::builtin("tiny").unwrap().generate();
    let mut config = sim::SimConfig::new(scenario);
    config.external_keystone =
        Some(sim::ExternalKeystone { auth_url: common::real_keystone(), service_token: admin.clone() });
    let sim = sim::start(config).await.unwrap();
    let base = sim.base_url().to_string();

    // A real admin token lists every simulated server.
    let (status, body) = get(&format!("{base}/compute/v2.1/servers/detail?all_tenants=1"), &admin).await;
    assert_eq!(status, 200, "{body}");
    let names: Vec<&str> = body["servers"].as_array().unwrap().iter().filter_map(|s| s["name"].as_str()).collect();
    assert!(names.contains(&"vm-running") && names.contains(&"vm-quiet"), "{names:?}");
    let (status, body) = get(&format!("{base}/volume/v3/volumes/detail?all_tenants=1"), &admin).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["volumes"].as_array().unwrap().iter().any(|v| v["name"] == "data-vol"));

    // A real project reader is not allowed all_tenants, and sees only its own
    // (here: empty) project.
    let reader = real_token(common::REAL_READER_USER, common::REAL_READER_PROJECT).await;
    let (status, _) = get(&format!("{base}/compute/v2.1/servers/detail?all_tenants=1"), &reader).await;
    assert_eq!(status, 403);
    let (status, body) = get(&format!("{base}/compute/v2.1/servers/detail"), &reader).await;
    assert_eq!((status, body["servers"].as_array().map(Vec::len)), (200, Some(0)));

    // Tokens the real Keystone does not know are refused.
    let (status, _) = get(&format!("{base}/network/v2.0/floatingips"), "not-a-token").await;
    assert_eq!(status, 401);
    sim.stop().await;
}
