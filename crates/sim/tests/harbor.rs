//! The simulated Harbor's rules (docs/sim.md "Registry (Harbor)"): the
//! token service's answers to anonymous and authenticated callers, what a
//! token opens, the challenges, and the lenient mode that turns it all off.

use serde_json::Value;
use sim::harbor::{ROBOT_PASSWORD, ROBOT_USER, RegistryMode};

async fn start(mode: RegistryMode) -> (sim::SimHandle, String) {
    let mut cfg = sim::SimConfig::new(sim::scenario::builtin("tiny").unwrap().generate());
    cfg.registry = mode;
    let sim = sim::start(cfg).await.unwrap();
    // A VO project: private in Harbor mode.
    let vo_repo = sim.registry().repositories.keys().find(|r| !r.starts_with("egi_vm_images/")).unwrap().clone();
    (sim, vo_repo)
}

fn challenge(r: &reqwest::Response) -> String {
    r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

#[tokio::test]
async fn tokens_open_what_the_caller_may_pull_and_nothing_more() {
    let (sim, vo_repo) = start(RegistryMode::default()).await;
    let http = reqwest::Client::new();
    let base = sim.base_url().to_string();
    let token_url = |scope: &str| format!("{base}/service/token?service=harbor-registry&scope=repository:{scope}:pull");
    let manifest =
        |repo: &str| format!("{base}/v2/{repo}/manifests/{}", sim.registry().repositories[repo].keys().next().unwrap());

    // GET /v2/ anonymous: a Bearer challenge without a scope.
    let root = http.get(format!("{base}/v2/")).send().await.unwrap();
    assert_eq!(root.status().as_u16(), 401);
    assert_eq!(challenge(&root), format!("Bearer realm=\"{base}/service/token\",service=\"harbor-registry\""));
    assert_eq!(root.headers()["docker-distribution-api-version"], "registry/2.0");
    // Anonymous without a scope: 401; with wrong credentials: 401.
    let none = http.get(format!("{base}/service/token?service=harbor-registry")).send().await.unwrap();
    assert_eq!(none.status().as_u16(), 401);
    let wrong = http.get(token_url(&vo_repo)).basic_auth(ROBOT_USER, Some("nope")).send().await.unwrap();
    assert_eq!(wrong.status().as_u16(), 401);

    // Anonymous with a private project's scope: 200, but the token opens nothing.
    let anon: Value = http.get(token_url(&vo_repo)).send().await.unwrap().json().await.unwrap();
    let t = anon["token"].as_str().unwrap();
    let refused = http.get(manifest(&vo_repo)).bearer_auth(t).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    assert_eq!(challenge(&refused), "Basic realm=\"harbor\"");
    // The robot's token for the same scope opens it, and only that repository.
    let robot: Value = http
        .get(token_url(&vo_repo))
        .basic_auth(ROBOT_USER, Some(ROBOT_PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let t = robot["token"].as_str().unwrap();
    assert_eq!(http.get(manifest(&vo_repo)).bearer_auth(t).send().await.unwrap().status().as_u16(), 200);
    let other = "egi_vm_images/ubuntu.22.04";
    assert_eq!(http.get(manifest(other)).bearer_auth(t).send().await.unwrap().status().as_u16(), 401);
    // Basic is accepted on /v2/* directly (the robot may read every project).
    let basic = http.get(manifest(&vo_repo)).basic_auth(ROBOT_USER, Some(ROBOT_PASSWORD)).send().await.unwrap();
    assert_eq!(basic.status().as_u16(), 200);
    // The REST API: anonymous sees the public project only.
    let projects: Value = http.get(format!("{base}/api/v2.0/projects")).send().await.unwrap().json().await.unwrap();
    let names: Vec<&str> = projects.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["egi_vm_images"]);
    sim.stop().await;
}

#[tokio::test]
async fn a_token_expires_after_its_allowed_uses() {
    let mode = RegistryMode::Harbor(sim::harbor::HarborConfig { token_max_uses: Some(2), ..Default::default() });
    let (sim, _) = start(mode).await;
    let http = reqwest::Client::new();
    let base = sim.base_url();
    let repo = "egi_vm_images/ubuntu.22.04";
    let tok: Value = http
        .get(format!("{base}/service/token?service=harbor-registry&scope=repository:{repo}:pull"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = format!("{base}/v2/{repo}/tags/list");
    let t = tok["token"].as_str().unwrap();
    let statuses: Vec<u16> = statuses_of(&http, &url, t, 3).await;
    assert_eq!(statuses, vec![200, 200, 401]);
    sim.stop().await;
}

async fn statuses_of(http: &reqwest::Client, url: &str, token: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(http.get(url).bearer_auth(token).send().await.unwrap().status().as_u16());
    }
    out
}

#[tokio::test]
async fn lenient_mode_is_a_plain_registry() {
    let (sim, vo_repo) = start(RegistryMode::Lenient).await;
    let http = reqwest::Client::new();
    let base = sim.base_url();
    let tag = sim.registry().repositories[&vo_repo].keys().next().unwrap().clone();
    let m = http.get(format!("{base}/v2/{vo_repo}/manifests/{tag}")).send().await.unwrap();
    assert_eq!(m.status().as_u16(), 200, "anonymous pull of a VO project");
    assert_eq!(http.get(format!("{base}/v2/_catalog")).send().await.unwrap().status().as_u16(), 200);
    let token = http.get(format!("{base}/service/token?scope=repository:{vo_repo}:pull")).send().await.unwrap();
    assert_eq!(token.status().as_u16(), 404);
    assert_eq!(http.get(format!("{base}/api/v2.0/projects")).send().await.unwrap().status().as_u16(), 404);
    sim.stop().await;
}
