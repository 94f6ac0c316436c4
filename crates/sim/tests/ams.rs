//! The simulated ARGO Messaging Service over HTTPS: the authx509 token
//! exchange (with/without/with a foreign client certificate), publish → pull
//! → acknowledge with attributes, cumulative acks and the 408 after the ack
//! deadline, 413 over the size limit, x-api-key vs ?key=, 401/403/404/409
//! answers in AMS's error shape, injected faults, and python
//! argo-ams-library 1.0.0 publishing and pulling against it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use sim::ams::{ADMIN_TOKEN, AmsConfig, DEFAULT_SUBSCRIPTION, DEFAULT_TOPIC, RECEIVER_TOKEN, SENDER_TOKEN};
use sim::{Service, ServiceProfile, SimConfig, SimHandle};

fn tiny() -> sim::Scenario {
    sim::scenario::builtin("tiny").unwrap().generate()
}

async fn start_with(dir: &Path, tweak: impl FnOnce(&mut AmsConfig)) -> SimHandle {
    let mut ams = AmsConfig::new(dir);
    tweak(&mut ams);
    let mut cfg = SimConfig::new(tiny());
    cfg.ams = Some(ams);
    sim::start(cfg).await.unwrap()
}

/// A client trusting only the sim CA, optionally presenting `identity` (PEM).
fn client(ca: &Path, identity: Option<&Path>) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    let mut b = reqwest::Client::builder().tls_certs_only([ca]).no_proxy();
    if let Some(id) = identity {
        b = b.identity(reqwest::Identity::from_pem(&std::fs::read(id).unwrap()).unwrap());
    }
    b.build().unwrap()
}

fn topic_url(sim: &SimHandle, topic: &str, op: &str) -> String {
    format!("{}/v1/projects/accounting/topics/{topic}{op}", sim.ams_url().unwrap())
}

fn sub_url(sim: &SimHandle, sub: &str, op: &str) -> String {
    format!("{}/v1/projects/accounting/subscriptions/{sub}{op}", sim.ams_url().unwrap())
}

async fn post(c: &reqwest::Client, url: &str, token: &str, body: Value) -> (u16, Value) {
    let resp = c.post(url).header("x-api-key", token).body(body.to_string()).send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
}

async fn get(c: &reqwest::Client, url: &str, token: &str) -> (u16, Value) {
    let resp = c.get(url).header("x-api-key", token).send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
}

fn ams_err(code: u16, message: &str, status: &str) -> Value {
    json!({"error": {"code": code, "message": message, "status": status}})
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn authx509_with_the_client_certificate_returns_the_bound_users_token() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_with(dir.path(), |_| {}).await;
    let ams = sim.ams().unwrap();
    for f in ["ca.pem", "client-cert.pem", "client-key.pem", "client.pem", "server-cert.pem"] {
        assert!(dir.path().join(f).exists(), "{f} written");
    }
    let c = client(&ams.ca_pem_path(), Some(&ams.client_identity_pem_path()));
    let resp = c.get(ams.authx509_url("localhost")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json; charset=utf-8");
    // argo-api-authn answers json.MarshalIndent(data, "", " ").
    assert_eq!(resp.text().await.unwrap(), format!("{{\n \"token\": \"{SENDER_TOKEN}\"\n}}"));
    assert_eq!(ams.counts().token_exchanges, 1);
    // The same token works on the data API.
    let (status, body) = get(&c, &topic_url(&sim, DEFAULT_TOPIC, ""), SENDER_TOKEN).await;
    assert_eq!((status, body), (200, json!({"name": "/projects/accounting/topics/eu-egi-cloud-accounting"})));
    sim.stop().await;
}

#[tokio::test]
async fn authx509_without_a_certificate_is_400_and_unknown_bindings_hosts_types_are_404() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_with(dir.path(), |_| {}).await;
    let ams = sim.ams().unwrap();
    let anon = client(&ams.ca_pem_path(), None);
    let resp = anon.get(ams.authx509_url("localhost")).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.text().await.unwrap(),
        "{\n \"error\": {\n  \"message\": \"No certificate provided\",\n  \"code\": 400,\n  \"status\": \"BAD REQUEST\"\n }\n}"
    );

    let (cert, _) = ams.issue_client_cert("stranger", "/C=XX/O=Test/CN=nobody.example.org").unwrap();
    let stranger = client(&ams.ca_pem_path(), Some(&cert.with_file_name("stranger.pem")));
    let (status, body) = get(&stranger, &ams.authx509_url("localhost"), "").await;
    assert_eq!(status, 404);
    assert_eq!(body, json!({"error": {"message": "Binding was not found", "code": 404, "status": "NOT FOUND"}}));

    let sender = client(&ams.ca_pem_path(), Some(&ams.client_identity_pem_path()));
    let (status, body) = get(&sender, &ams.authx509_url("msg.argo.grnet.gr"), "").await;
    assert_eq!((status, body["error"]["message"].clone()), (404, json!("Host was not found")));
    let url = format!("{}/v1/service-types/web/hosts/localhost:authx509", ams.authn_url());
    let (status, body) = get(&sender, &url, "").await;
    assert_eq!((status, body["error"]["message"].clone()), (404, json!("Service-type was not found")));
    sim.stop().await;
}

#[tokio::test]
async fn authx509_refuses_a_certificate_from_a_foreign_ca_at_the_handshake() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let sim = start_with(d1.path(), |_| {}).await;
    let other = start_with(d2.path(), |_| {}).await;
    let ams = sim.ams().unwrap();
    // Same DN, but issued by the other sim's CA.
    let foreign = client(&ams.ca_pem_path(), Some(&other.ams().unwrap().client_identity_pem_path()));
    let err = foreign.get(ams.authx509_url("localhost")).send().await.unwrap_err();
    assert!(err.is_connect() || err.is_request(), "{err:?}");
    assert_eq!(ams.counts().token_exchanges, 0);

    // Unless that CA is in the allowed list.
    let d3 = tempfile::tempdir().unwrap();
    let other_ca = other.ams().unwrap().ca_pem_path();
    let trusting = start_with(d3.path(), |c| c.client_ca_files = vec![other_ca]).await;
    let t = trusting.ams().unwrap();
    let foreign = client(&t.ca_pem_path(), Some(&other.ams().unwrap().client_identity_pem_path()));
    let (status, body) = get(&foreign, &t.authx509_url("localhost"), "").await;
    assert_eq!((status, body), (200, json!({"token": SENDER_TOKEN})));
    for s in [sim, other, trusting] {
        s.stop().await;
    }
}

#[tokio::test]
async fn publish_pull_acknowledge_round_trip_keeps_attributes_data_and_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_with(dir.path(), |_| {}).await;
    let ams = sim.ams().unwrap();
    let c = client(&ams.ca_pem_path(), None);

    // Several messages in one request, exactly as SSM's JSON (no Content-Type).
    let body = r#"{"messages": [{"attributes": {"empaid": "6b0bf3a4/6b0bf3de56c97b"}, "data": "QVBFTC1jbG91ZC1tZXNzYWdlOiB2MC40Cg=="}, {"attributes": {"z": "1", "a": "2"}, "data": "c2Vjb25k"}]}"#;
    let resp = c
        .post(topic_url(&sim, DEFAULT_TOPIC, ":publish"))
        .header("x-api-key", SENDER_TOKEN)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json; charset=utf-8");
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"messageIds": ["0", "1"]}));
    let (status, ids) = post(
        &c,
        &topic_url(&sim, DEFAULT_TOPIC, ":publish"),
        SENDER_TOKEN,
        json!({"messages": [{"data": b64("third")}]}),
    )
    .await;
    assert_eq!((status, ids), (200, json!({"messageIds": ["2"]})));

    let published = ams.published("accounting", DEFAULT_TOPIC);
    assert_eq!(published.len(), 3);
    assert_eq!(published[0].text().unwrap(), "APEL-cloud-message: v0.4\n");
    assert_eq!(published[0].attributes["empaid"], "6b0bf3a4/6b0bf3de56c97b");
    assert_eq!(published[0].publisher, "sender");
    assert_eq!(published[2].message_id(), "2");

    let (status, pulled) = post(
        &c,
        &sub_url(&sim, DEFAULT_SUBSCRIPTION, ":pull"),
        RECEIVER_TOKEN,
        json!({"maxMessages": "10", "returnImmediately": "false"}),
    )
    .await;
    assert_eq!(status, 200);
    let msgs = pulled["receivedMessages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[0]["ackId"], "projects/accounting/subscriptions/eu-egi-cloud-accounting-sub:0");
    let m0 = &msgs[0]["message"];
    assert_eq!(m0["messageId"], "0");
    assert_eq!(m0["attributes"], json!({"empaid": "6b0bf3a4/6b0bf3de56c97b"}));
    assert_eq!(m0["data"], "QVBFTC1jbG91ZC1tZXNzYWdlOiB2MC40Cg==");
    let t = m0["publishTime"].as_str().unwrap();
    assert!(t.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(t).is_ok(), "{t}");
    // Only the four keys argo-ams-library's AmsMessage(**message) accepts.
    let mut keys: Vec<&String> = m0.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["attributes", "data", "messageId", "publishTime"]);
    assert_eq!(msgs[1]["message"]["attributes"], json!({"a": "2", "z": "1"}));
    assert!(msgs[2]["message"].get("attributes").is_none(), "empty attributes are omitted");

    let ack_ids: Vec<Value> = msgs.iter().map(|m| m["ackId"].clone()).collect();
    let (status, body) =
        post(&c, &sub_url(&sim, DEFAULT_SUBSCRIPTION, ":acknowledge"), RECEIVER_TOKEN, json!({"ackIds": ack_ids}))
            .await;
    assert_eq!((status, body), (200, json!({})));
    let (status, offsets) = get(&c, &sub_url(&sim, DEFAULT_SUBSCRIPTION, ":offsets"), RECEIVER_TOKEN).await;
    assert_eq!((status, offsets), (200, json!({"max": 3, "min": 0, "current": 3})));
    let (_, empty) = post(
        &c,
        &sub_url(&sim, DEFAULT_SUBSCRIPTION, ":pull"),
        RECEIVER_TOKEN,
        json!({"maxMessages": "10", "returnImmediately": "true"}),
    )
    .await;
    assert_eq!(empty, json!({"receivedMessages": []}));
    let counts = ams.counts();
    assert_eq!(
        (counts.publish_requests, counts.messages_published, counts.messages_delivered, counts.acks),
        (2, 3, 3, 1)
    );
    assert_eq!(sim.request_counts().values().sum::<u64>(), sim.requests().len() as u64);
    assert!(sim.requests().iter().all(|r| r.service == Some(Service::Ams)));
    sim.stop().await;
}

#[tokio::test]
async fn unacknowledged_messages_come_back_and_acks_are_cumulative() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_with(dir.path(), |_| {}).await;
    let c = client(&sim.ams_ca_pem_path().unwrap(), None);
    let msgs: Vec<Value> = (0..4).map(|i| json!({"data": b64(&format!("m{i}"))})).collect();
    post(&c, &topic_url(&sim, DEFAULT_TOPIC, ":publish"), SENDER_TOKEN, json!({"messages": msgs})).await;
    let pull = json!({"maxMessages": "3", "returnImmediately": "true"});
    let ids = |v: &Value| -> Vec<String> {
        v["receivedMessages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["message"]["messageId"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, first) = post(&c, &sub_url(&sim, DEFAULT_SUBSCRIPTION, ":pull"), RECEIVER_TOKEN, pull.clone()).await;
    assert_eq!(ids(&first), ["0", "1", "2"]);
    let (_, again) = post(&c, &sub_url(&sim, DEFAULT_SUBSCRIPTION, ":pull"), RECEIVER_TOKEN, pull.clone()).await;
    assert_eq!(ids(&again), ["0", "1", "2"], "not acknowledged → delivered again");
    // Acking offset 1 alone acknowledges 0 and 1.
    let ack = |o: u32| json!({"ackIds": [format!("projects/accounting/subscriptions/{DEFAULT_SUBSCRIPTION}:{o}")]});
    let (status, _) = post(&c, &sub_url(&sim, DEFAULT_SUBSCRIPTION, ":acknowledge"), RECEIVER_TOKEN, ack(1)).await;
    assert_eq!(status, 200);
    assert_eq!(sim.ams().unwrap().subscription_offset("accounting", DEFAULT_SUBSCRIPTION), Some(2));
    // Nothing pulled since: AMS's store says "no ack pending" (a 500).
    let (status, body) = post(&c, &sub_url(&sim, DEFAULT_SUBSCRIPTION, ":acknowledge"), RECEIVER_TOKEN, ack(3)).await;
    assert_eq!((status, body), (500, ams_err(500, "no ack pending", "INTERNAL_SERVER_ERROR")));
    let (_, rest) = post(&c, &sub_url(&sim, DEFAULT_SUBSCRIPTION, ":pull"), RECEIVER_TOKEN, pull).await;
    assert_eq!(ids(&rest), ["2", "3"]);
    // An already acknowledged offset is a "wrong ack".
    let (status, body) = post(&c, &sub_url(&sim, DEFAULT_SUBSCRIPTION, ":acknowledge"), RECEIVER_TOKEN, ack(0)).await;
    assert_eq!((status, body), (500, ams_err(500, "wrong ack", "INTERNAL_SERVER_ERROR")));
    sim.stop().await;
}

#[tokio::test]
async fn ack_after_the_deadline_is_408_and_malformed_ack_ids_are_400() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_with(dir.path(), |c| c.subscriptions[0].ack_deadline_seconds = 1).await;
    let c = client(&sim.ams_ca_pem_path().unwrap(), None);
    post(&c, &topic_url(&sim, DEFAULT_TOPIC, ":publish"), SENDER_TOKEN, json!({"messages": [{"data": b64("x")}]}))
        .await;
    let (_, pulled) = post(
        &c,
        &sub_url(&sim, DEFAULT_SUBSCRIPTION, ":pull"),
        RECEIVER_TOKEN,
        json!({"maxMessages": "1", "returnImmediately": "true"}),
    )
    .await;
    let ack_id = pulled["receivedMessages"][0]["ackId"].clone();

    let url = sub_url(&sim, DEFAULT_SUBSCRIPTION, ":acknowledge");
    for bad in [
        json!({"ackIds": ["projects/accounting/subscriptions/other-sub:0"]}),
        json!({"ackIds": ["projects/accounting/subscriptions/eu-egi-cloud-accounting-sub:x"]}),
        json!({"ackIds": []}),
        json!({}),
    ] {
        let (status, body) = post(&c, &url, RECEIVER_TOKEN, bad.clone()).await;
        assert_eq!((status, body), (400, ams_err(400, "Invalid ack id", "INVALID_ARGUMENT")), "{bad}");
    }
    let (status, body) = post(&c, &url, RECEIVER_TOKEN, json!({"ackIds": "nope"})).await;
    assert_eq!((status, body), (400, ams_err(400, "Invalid ack parameter", "INVALID_ARGUMENT")));

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = post(&c, &url, RECEIVER_TOKEN, json!({"ackIds": [ack_id]})).await;
    assert_eq!((status, body), (408, ams_err(408, "ack timeout", "TIMEOUT")));
    assert_eq!(sim.ams().unwrap().subscription_offset("accounting", DEFAULT_SUBSCRIPTION), Some(0));
    sim.stop().await;
}

#[tokio::test]
async fn data_over_the_size_limit_is_413_and_earlier_messages_stay_published() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_with(dir.path(), |c| c.max_message_bytes = 100).await;
    let c = client(&sim.ams_ca_pem_path().unwrap(), None);
    let url = topic_url(&sim, DEFAULT_TOPIC, ":publish");
    let (status, _) = post(&c, &url, SENDER_TOKEN, json!({"messages": [{"data": "A".repeat(100)}]})).await;
    assert_eq!(status, 200, "exactly the limit is accepted");
    let (status, body) =
        post(&c, &url, SENDER_TOKEN, json!({"messages": [{"data": b64("small")}, {"data": "A".repeat(101)}]})).await;
    assert_eq!((status, body), (413, ams_err(413, "Message size is too large", "INVALID_ARGUMENT")));
    let published = sim.ams().unwrap().published("accounting", DEFAULT_TOPIC);
    assert_eq!(published.len(), 2);
    assert_eq!(published[1].text().unwrap(), "small");
    assert_eq!(sim.ams().unwrap().counts().too_large, 1);
    sim.stop().await;
}

#[tokio::test]
async fn the_default_limit_is_1_5_mb_of_base64_data() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_with(dir.path(), |_| {}).await;
    let c = client(&sim.ams_ca_pem_path().unwrap(), None);
    let url = topic_url(&sim, DEFAULT_TOPIC, ":publish");
    let (status, _) = post(&c, &url, SENDER_TOKEN, json!({"messages": [{"data": "A".repeat(1_500_000)}]})).await;
    assert_eq!(status, 200);
    let (status, _) = post(&c, &url, SENDER_TOKEN, json!({"messages": [{"data": "A".repeat(1_500_001)}]})).await;
    assert_eq!(status, 413);
    sim.stop().await;
}

#[tokio::test]
async fn token_in_x_api_key_or_key_query_and_401_without_a_valid_one() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_with(dir.path(), |_| {}).await;
    let c = client(&sim.ams_ca_pem_path().unwrap(), None);
    let url = topic_url(&sim, DEFAULT_TOPIC, "");
    let via_query = c.get(format!("{url}?key={SENDER_TOKEN}")).send().await.unwrap();
    assert_eq!(via_query.status(), 200);
    // An empty header falls back to ?key=; a wrong header wins over a good key.
    let empty_header = c.get(format!("{url}?key={SENDER_TOKEN}")).header("x-api-key", "").send().await.unwrap();
    assert_eq!(empty_header.status(), 200);
    let wrong = c.get(format!("{url}?key={SENDER_TOKEN}")).header("x-api-key", "nope").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let none = c.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let text = none.text().await.unwrap();
    assert!(text.contains("\n   \"error\": {\n      \"code\": 401"), "Go MarshalIndent, 3 spaces: {text}");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), ams_err(401, "Unauthorized", "UNAUTHORIZED"));
    let (status, body) = post(&c, &topic_url(&sim, DEFAULT_TOPIC, ":publish"), "bogus", json!({"messages": []})).await;
    assert_eq!((status, body), (401, ams_err(401, "Unauthorized", "UNAUTHORIZED")));
    sim.stop().await;
}

#[tokio::test]
async fn roles_and_acls_give_403_and_missing_things_404_in_the_ams_shape() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_with(dir.path(), |c| {
        c.users.push(sim::AmsUser::new("other-publisher", "tok-other", &["publisher"]));
    })
    .await;
    let c = client(&sim.ams_ca_pem_path().unwrap(), None);
    let publish = topic_url(&sim, DEFAULT_TOPIC, ":publish");
    let msg = json!({"messages": [{"data": b64("x")}]});
    let forbidden = ams_err(403, "Access to this resource is forbidden", "FORBIDDEN");
    assert_eq!(post(&c, &publish, "tok-other", msg.clone()).await, (403, forbidden.clone()), "not in the topic ACL");
    assert_eq!(post(&c, &publish, RECEIVER_TOKEN, msg.clone()).await, (403, forbidden.clone()), "consumer only");
    let pull = json!({"maxMessages": "1", "returnImmediately": "true"});
    assert_eq!(post(&c, &sub_url(&sim, DEFAULT_SUBSCRIPTION, ":pull"), SENDER_TOKEN, pull.clone()).await.0, 403);
    assert_eq!(post(&c, &publish, ADMIN_TOKEN, msg.clone()).await.0, 200, "project_admin bypasses ACLs");

    assert_eq!(
        post(&c, &topic_url(&sim, "nope", ":publish"), SENDER_TOKEN, msg.clone()).await,
        (404, ams_err(404, "Topic doesn't exist", "NOT_FOUND"))
    );
    assert_eq!(
        post(&c, &sub_url(&sim, "nope", ":pull"), RECEIVER_TOKEN, pull).await,
        (404, ams_err(404, "Subscription doesn't exist", "NOT_FOUND"))
    );
    assert_eq!(
        post(&c, &publish, SENDER_TOKEN, json!({"messages": "x"})).await,
        (400, ams_err(400, "Invalid Message Arguments", "INVALID_ARGUMENT"))
    );
    assert_eq!(
        post(&c, &sub_url(&sim, DEFAULT_SUBSCRIPTION, ":pull"), RECEIVER_TOKEN, json!({"maxMessages": 1})).await,
        (400, ams_err(400, "Invalid Pull Parameters Arguments", "INVALID_ARGUMENT"))
    );
    let resp = c.post(topic_url(&sim, DEFAULT_TOPIC, ":bogus")).header("x-api-key", SENDER_TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.text().await.unwrap(), "404 page not found\n");
    sim.stop().await;
}

#[tokio::test]
async fn topics_and_subscriptions_can_be_created_listed_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_with(dir.path(), |_| {}).await;
    let c = client(&sim.ams_ca_pem_path().unwrap(), None);
    let put = |url: String, body: &'static str| {
        let c = c.clone();
        async move {
            let r = c.put(url).header("x-api-key", ADMIN_TOKEN).body(body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(put(topic_url(&sim, "t2", ""), "").await, (200, json!({"name": "/projects/accounting/topics/t2"})));
    assert_eq!(put(topic_url(&sim, "t2", ""), "").await, (409, ams_err(409, "Topic already exists", "ALREADY_EXISTS")));
    // Messages before the subscription exists are not delivered to it.
    post(&c, &topic_url(&sim, "t2", ":publish"), ADMIN_TOKEN, json!({"messages": [{"data": b64("early")}]})).await;
    let (status, sub) =
        put(sub_url(&sim, "s2", ""), r#"{"topic": "projects/accounting/topics/t2", "ackDeadlineSeconds": 0}"#).await;
    assert_eq!(status, 200);
    assert_eq!(sub["name"], "/projects/accounting/subscriptions/s2");
    assert_eq!(sub["topic"], "/projects/accounting/topics/t2");
    assert_eq!(sub["ackDeadlineSeconds"], 10);
    assert_eq!(sub["pushConfig"]["pushEndpoint"], "");
    let (status, _) = put(sub_url(&sim, "s3", ""), r#"{"topic": "projects/accounting/topics/none"}"#).await;
    assert_eq!(status, 404);
    post(&c, &topic_url(&sim, "t2", ":publish"), ADMIN_TOKEN, json!({"messages": [{"data": b64("late")}]})).await;
    let (_, pulled) =
        post(&c, &sub_url(&sim, "s2", ":pull"), ADMIN_TOKEN, json!({"maxMessages": "5", "returnImmediately": "true"}))
            .await;
    assert_eq!(pulled["receivedMessages"].as_array().unwrap().len(), 1);
    assert_eq!(pulled["receivedMessages"][0]["message"]["messageId"], "1");

    let (_, topics) = get(&c, &format!("{}/v1/projects/accounting/topics", sim.ams_url().unwrap()), ADMIN_TOKEN).await;
    assert_eq!(topics["totalSize"], 2);
    // A publisher only lists the topics whose ACL holds it.
    let (_, mine) = get(&c, &format!("{}/v1/projects/accounting/topics", sim.ams_url().unwrap()), SENDER_TOKEN).await;
    assert_eq!(mine["topics"], json!([{"name": "/projects/accounting/topics/eu-egi-cloud-accounting"}]));
    let (_, subs) =
        get(&c, &format!("{}/v1/projects/accounting/subscriptions", sim.ams_url().unwrap()), ADMIN_TOKEN).await;
    assert_eq!(subs["totalSize"], 2);

    let del = c.delete(topic_url(&sim, "t2", "")).header("x-api-key", ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(del.status(), 200);
    let (status, body) = post(&c, &sub_url(&sim, "s2", ":pull"), ADMIN_TOKEN, json!({"maxMessages": "1"})).await;
    assert_eq!((status, body), (409, ams_err(409, "Subscription's topic doesn't exist", "CONFLICT")));
    let del = c.delete(sub_url(&sim, "s2", "")).header("x-api-key", ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(del.status(), 200);
    assert_eq!(get(&c, &sub_url(&sim, "s2", ""), ADMIN_TOKEN).await.0, 404);
    sim.stop().await;
}

#[tokio::test]
async fn a_waiting_pull_returns_when_a_message_is_published() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_with(dir.path(), |_| {}).await;
    let c = client(&sim.ams_ca_pem_path().unwrap(), None);
    let pull_url = sub_url(&sim, DEFAULT_SUBSCRIPTION, ":pull");
    let waiting = {
        let c = c.clone();
        tokio::spawn(async move {
            post(&c, &pull_url, RECEIVER_TOKEN, json!({"maxMessages": "1", "returnImmediately": "false"})).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished());
    post(&c, &topic_url(&sim, DEFAULT_TOPIC, ":publish"), SENDER_TOKEN, json!({"messages": [{"data": b64("wake")}]}))
        .await;
    let (status, body) = tokio::time::timeout(Duration::from_secs(3), waiting).await.unwrap().unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["receivedMessages"][0]["message"]["data"], b64("wake"));
    sim.stop().await;
}

#[tokio::test]
async fn injected_faults_on_ams_use_the_ams_error_shape() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig::new(tiny());
    cfg.ams = Some(AmsConfig::new(dir.path()));
    cfg.profiles.insert(Service::Ams, ServiceProfile { error_rate: 1.0, ..Default::default() });
    let sim = sim::start(cfg).await.unwrap();
    let c = client(&sim.ams_ca_pem_path().unwrap(), None);
    for _ in 0..6 {
        let (status, body) = post(
            &c,
            &topic_url(&sim, DEFAULT_TOPIC, ":publish"),
            SENDER_TOKEN,
            json!({"messages": [{"data": b64("x")}]}),
        )
        .await;
        assert!([500, 503, 429].contains(&status), "{status}");
        assert_eq!(body["error"]["code"], status);
        assert_eq!(body["error"]["message"], "injected fault");
        assert!(body["error"]["status"].is_string());
    }
    assert!(sim.ams().unwrap().published("accounting", DEFAULT_TOPIC).is_empty());
    assert!(sim.requests().iter().all(|r| r.service == Some(Service::Ams) && r.injected.is_some()));
    // The token exchange is a separate service, unaffected.
    let ams = sim.ams().unwrap();
    let sender = client(&ams.ca_pem_path(), Some(&ams.client_identity_pem_path()));
    assert_eq!(get(&sender, &ams.authx509_url("localhost"), "").await.0, 200);
    sim.stop().await;
}

fn python() -> PathBuf {
    let candidates: Vec<PathBuf> = std::env::var_os("FEDSITE_VENV")
        .map(|v| PathBuf::from(v).join("bin/python"))
        .into_iter()
        .chain([PathBuf::from("/tmp/pyprobe/venv/bin/python")])
        .collect();
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .unwrap_or_else(|| panic!("no python venv with argo-ams-library: set FEDSITE_VENV (tried {candidates:?})"))
}

const PY_CLIENT: &str = r#"
import json, sys
from argo_ams_library import ArgoMessagingService, AmsMessage, AmsServiceException
authn_port, data_host, cert, key, receiver_token = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
topic, sub = "eu-egi-cloud-accounting", "eu-egi-cloud-accounting-sub"
# Token via the X.509 exchange (as SSM without a configured token), then the data port.
ams = ArgoMessagingService(endpoint="localhost", project="accounting", cert=cert, key=key, authn_port=authn_port)
token = ams.token
ams.endpoint = data_host
ids = []
for i, text in enumerate(["APEL-cloud-message: v0.4\nSiteName: TEST\n%%\n", "caf\u00e9"]):
    r = ams.publish(topic, AmsMessage(data=text, attributes={"empaid": "6b0bf3a4/%d" % i}).dict(), retry=3, timeout=10)
    ids.extend(r["messageIds"])
r = ams.publish(topic, [AmsMessage(data="m2", attributes={"empaid": "x/2"}), AmsMessage(data="m3", attributes={"empaid": "x/3"})])
ids.extend(r["messageIds"])
try:
    ams.publish(topic, AmsMessage(data="A" * 1200000, attributes={"empaid": "big"}).dict())
    too_large = None
except AmsServiceException as e:
    too_large = [e.code, e.msg]
rcv = ArgoMessagingService(endpoint=data_host, token=receiver_token, project="accounting")
pulled = rcv.pull_sub(sub, num=10, return_immediately=True)
msgs = [{"ackId": a, "id": m.get_msgid(), "attributes": m.get_attr(), "data": m.get_data().decode("utf-8"),
         "time": m.get_publishtime()} for a, m in pulled]
acked = rcv.ack_sub(sub, [a for a, _ in pulled])
offsets = rcv.getoffsets_sub(sub)
again = rcv.pull_sub(sub, num=10, return_immediately=True)
try:
    ArgoMessagingService(endpoint=data_host, token="bogus", project="accounting").publish(topic, AmsMessage(data="x").dict())
    unauthorized = None
except AmsServiceException as e:
    unauthorized = [e.code, e.msg]
print(json.dumps({"token": token, "ids": ids, "msgs": msgs, "acked": acked, "offsets": offsets, "again": len(again),
                  "too_large": too_large, "unauthorized": unauthorized, "has_topic": ams.has_topic(topic)}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_argo_ams_library_publishes_and_pulls_against_the_sim() {
    let py = python();
    let dir = tempfile::tempdir().unwrap();
    let sim = start_with(dir.path(), |_| {}).await;
    let ams = sim.ams().unwrap();
    let out = tokio::process::Command::new(&py)
        .arg("-c")
        .arg(PY_CLIENT)
        .arg(ams.authn_port().to_string())
        .arg(ams.host())
        .arg(ams.client_cert_path())
        .arg(ams.client_key_path())
        .arg(RECEIVER_TOKEN)
        .env("REQUESTS_CA_BUNDLE", ams.ca_pem_path())
        .env("NO_PROXY", "localhost,127.0.0.1")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python failed: {stderr}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));

    assert_eq!(r["token"], SENDER_TOKEN);
    assert_eq!(r["ids"], json!(["0", "1", "2", "3"]));
    assert_eq!(r["too_large"][0], 413);
    assert_eq!(r["too_large"][1], "While trying the [topic_publish]: Message size is too large");
    let msgs = r["msgs"].as_array().unwrap();
    assert_eq!(msgs.len(), 4);
    assert_eq!(msgs[0]["data"], "APEL-cloud-message: v0.4\nSiteName: TEST\n%%\n");
    assert_eq!(msgs[0]["attributes"], json!({"empaid": "6b0bf3a4/0"}));
    assert_eq!(msgs[0]["ackId"], "projects/accounting/subscriptions/eu-egi-cloud-accounting-sub:0");
    assert_eq!(msgs[1]["data"], "café");
    assert_eq!(msgs[3]["id"], "3");
    assert_eq!(msgs[3]["attributes"], json!({"empaid": "x/3"}));
    assert!(msgs[3]["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(r["acked"], true);
    assert_eq!(r["offsets"], json!({"max": 4, "min": 0, "current": 4}));
    assert_eq!(r["again"], 0);
    assert_eq!(r["unauthorized"], json!([401, "While trying the [topic_publish]: Unauthorized"]));
    assert_eq!(r["has_topic"], true);

    // What the sim stored matches what python sent.
    let published = ams.published("accounting", DEFAULT_TOPIC);
    assert_eq!(published.len(), 4);
    assert_eq!(published[1].text().unwrap(), "café");
    assert!(published.iter().all(|m| m.publisher == "sender"));
    let counts = ams.counts();
    assert_eq!((counts.token_exchanges, counts.too_large, counts.acks), (1, 1, 1));
    sim.stop().await;
}
