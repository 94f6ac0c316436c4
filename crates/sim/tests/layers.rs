//! The behaviour layer on the `tiny` scenario: injected errors, truncated
//! bodies, timeouts, the concurrency cap, fault determinism by seed, and the
//! request log with counts per endpoint.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sim::{Service, ServiceProfile, SimConfig, SimHandle};

fn tiny() -> sim::Scenario {
    sim::scenario::builtin("tiny").unwrap().generate()
}

async fn start_with(profiles: BTreeMap<Service, ServiceProfile>, seed: u64) -> SimHandle {
    let mut cfg = SimConfig::new(tiny());
    cfg.profiles = profiles;
    cfg.fault_seed = seed;
    sim::start(cfg).await.unwrap()
}

async fn admin_token(sim: &SimHandle) -> String {
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": "secret"}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}});
    let resp = reqwest::Client::new().post(format!("{}/auth/tokens", sim.auth_url())).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    resp.headers()["x-subject-token"].to_str().unwrap().to_string()
}

fn only(service: Service, profile: ServiceProfile) -> BTreeMap<Service, ServiceProfile> {
    BTreeMap::from([(service, profile)])
}

async fn get(sim: &SimHandle, token: &str, path: &str) -> reqwest::Result<reqwest::Response> {
    reqwest::Client::new().get(format!("{}{path}", sim.base_url())).header("X-Auth-Token", token).send().await
}

#[tokio::test]
async fn error_rate_one_answers_every_compute_request_with_500_503_or_429_and_spares_others() {
    let sim = start_with(only(Service::Compute, ServiceProfile { error_rate: 1.0, ..Default::default() }), 7).await;
    let token = admin_token(&sim).await;
    let mut seen = BTreeMap::new();
    for _ in 0..30 {
        let resp = get(&sim, &token, "/compute/v2.1/flavors").await.unwrap();
        let status = resp.status().as_u16();
        if status == 429 {
            assert_eq!(resp.headers()["retry-after"], "1");
        }
        let body: Value = resp.json().await.unwrap();
        // Nova's own fault shape.
        let fault = body.as_object().unwrap().values().next().unwrap();
        assert_eq!(fault["code"], status);
        *seen.entry(status).or_insert(0) += 1;
    }
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), vec![429, 500, 503], "{seen:?}");
    // Neutron has no faults configured.
    assert_eq!(get(&sim, &token, "/network/v2.0/floatingips").await.unwrap().status(), 200);
    let log = sim.requests();
    let injected = log.iter().filter(|r| r.injected.is_some()).count();
    assert_eq!(injected, 30);
    assert!(log.iter().all(|r| r.service != Some(Service::Compute) || r.injected.is_some()));
    sim.stop().await;
}

#[tokio::test]
async fn same_seed_injects_the_same_faults_and_another_seed_differs() {
    async fn statuses(seed: u64) -> Vec<u16> {
        let sim =
            start_with(only(Service::Compute, ServiceProfile { error_rate: 0.5, ..Default::default() }), seed).await;
        let token = admin_token(&sim).await;
        let mut out = Vec::new();
        for _ in 0..40 {
            out.push(get(&sim, &token, "/compute/v2.1/flavors").await.unwrap().status().as_u16());
        }
        sim.stop().await;
        out
    }
    let a = statuses(11).await;
    assert_eq!(a, statuses(11).await);
    assert_ne!(a, statuses(12).await);
    let ok = a.iter().filter(|s| **s == 200).count();
    assert!((8..=32).contains(&ok), "about half succeed: {a:?}");
}

#[tokio::test]
async fn truncated_bodies_are_half_of_the_real_answer() {
    let clean = start_with(BTreeMap::new(), 0).await;
    let token = admin_token(&clean).await;
    let full = get(&clean, &token, "/compute/v2.1/flavors/detail").await.unwrap().text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&full).is_ok());
    let clean_base = clean.base_url().to_string();
    clean.stop().await;

    let sim = start_with(only(Service::Compute, ServiceProfile { truncate_rate: 1.0, ..Default::default() }), 0).await;
    let token = admin_token(&sim).await;
    let resp = get(&sim, &token, "/compute/v2.1/flavors/detail").await.unwrap();
    assert_eq!(resp.status(), 200);
    let cut = resp.bytes().await.unwrap();
    // The same answer, but for the links naming the other simulator's port.
    let full = full.replace(&clean_base, sim.base_url()).into_bytes();
    assert_eq!(cut.len(), full.len() / 2);
    assert_eq!(&full[..cut.len()], &cut[..]);
    assert!(serde_json::from_slice::<Value>(&cut).is_err());
    sim.stop().await;
}

#[tokio::test]
async fn injected_timeouts_hang_then_drop_the_connection() {
    let profile = ServiceProfile { timeout_rate: 1.0, timeout_ms: 200, ..Default::default() };
    let sim = start_with(only(Service::Image, profile), 0).await;
    let token = admin_token(&sim).await;
    let started = Instant::now();
    let result = match get(&sim, &token, "/image/v2/images").await {
        Ok(resp) => resp.bytes().await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(result.is_err(), "the answer must fail");
    assert!(started.elapsed() >= Duration::from_millis(200));
    sim.stop().await;
}

#[tokio::test]
async fn the_concurrency_cap_serialises_requests_beyond_it() {
    let profile = ServiceProfile { latency_ms: 150, max_concurrent: 1, ..Default::default() };
    let sim = start_with(only(Service::Network, profile), 0).await;
    let token = admin_token(&sim).await;
    let started = Instant::now();
    let calls = (0..3).map(|_| get(&sim, &token, "/network/v2.0/floatingips"));
    for resp in futures::future::join_all(calls).await {
        assert_eq!(resp.unwrap().status(), 200);
    }
    // With one worker, three 150 ms requests cannot finish in under 450 ms.
    assert!(started.elapsed() >= Duration::from_millis(450), "{:?}", started.elapsed());
    sim.stop().await;
}

#[tokio::test]
async fn request_counts_group_by_endpoint_with_ids_hidden() {
    let sim = start_with(BTreeMap::new(), 0).await;
    let token = admin_token(&sim).await;
    for id in ["11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"] {
        get(&sim, &token, &format!("/compute/v2.1/servers/{id}")).await.unwrap();
    }
    let counts = sim.request_counts();
    assert_eq!(counts["GET /compute/v2.1/servers/{id}"], 2);
    assert_eq!(counts["POST /identity/v3/auth/tokens"], 1);
    // The control endpoints are not logged and serve the same counts.
    let served: BTreeMap<String, u64> =
        reqwest::get(format!("{}/sim/requests/counts", sim.base_url())).await.unwrap().json().await.unwrap();
    assert_eq!(served, counts);
    sim.stop().await;
}

#[tokio::test]
async fn moving_the_reference_time_makes_servers_come_and_go() {
    let sim = start_with(BTreeMap::new(), 0).await;
    let token = admin_token(&sim).await;
    let running = "/compute/v2.1/servers/11111111-1111-4111-8111-111111111111";
    assert_eq!(get(&sim, &token, running).await.unwrap().status(), 200);
    // vm-running is deleted on 2023-06-10 in the tiny scenario.
    let resp = reqwest::Client::new()
        .put(format!("{}/sim/now", sim.base_url()))
        .json(&json!({"now": "2023-06-11T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    // Tokens age with the reference time: the old one has expired.
    assert_eq!(get(&sim, &token, running).await.unwrap().status(), 401);
    let token = admin_token(&sim).await;
    assert_eq!(get(&sim, &token, running).await.unwrap().status(), 404);
    sim.stop().await;
}

#[tokio::test]
async fn malformed_answers_are_200s_whose_json_never_parses() {
    let sim = start_with(only(Service::Volume, ServiceProfile { malformed_rate: 1.0, ..Default::default() }), 3).await;
    let token = admin_token(&sim).await;
    let (mut html, mut empty, mut other) = (0, 0, 0);
    for _ in 0..24 {
        let resp = get(&sim, &token, "/volume/v3/").await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.bytes().await.unwrap();
        assert!(serde_json::from_slice::<Value>(&body).is_err(), "{}", String::from_utf8_lossy(&body));
        match () {
            _ if body.is_empty() => empty += 1,
            _ if body.starts_with(b"<html>") => html += 1,
            _ => other += 1,
        }
    }
    assert!(html > 0 && empty > 0 && other > 0, "html {html}, empty {empty}, broken JSON {other}");
    assert!(
        sim.requests()
            .iter()
            .filter(|r| r.service == Some(Service::Volume))
            .all(|r| r.injected.as_deref() == Some("malformed"))
    );
    sim.stop().await;
}

#[tokio::test]
async fn slow_bodies_arrive_whole_in_pieces() {
    use futures::StreamExt;
    let clean = start_with(BTreeMap::new(), 0).await;
    let token = admin_token(&clean).await;
    let full = get(&clean, &token, "/compute/v2.1/flavors/detail").await.unwrap().text().await.unwrap();
    let clean_base = clean.base_url().to_string();
    clean.stop().await;

    let profile = ServiceProfile { slow_body_rate: 1.0, slow_body_ms: 400, ..Default::default() };
    let sim = start_with(only(Service::Compute, profile), 0).await;
    let token = admin_token(&sim).await;
    let started = Instant::now();
    let resp = get(&sim, &token, "/compute/v2.1/flavors/detail").await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let (mut pieces, mut body) = (0, Vec::new());
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk.unwrap());
        pieces += 1;
    }
    assert!(pieces >= 2, "one piece");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(String::from_utf8(body).unwrap(), full.replace(&clean_base, sim.base_url()));
    assert_eq!(sim.requests().last().unwrap().injected.as_deref(), Some("slow body"));
    sim.stop().await;
}
