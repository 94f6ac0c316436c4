//! HTTP-level tests of the simulated Prometheus API (`/prometheus`): the
//! matrix/vector shapes, selector matching, the power series only while
//! ACTIVE, and Prometheus's bad_data errors (including the 11,000 points cap).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sim::model::{Flavor, Server, ServerEvent, Site};

const A: &str = "11111111-1111-4111-8111-111111111111";
const B: &str = "22222222-2222-4222-8222-222222222222";
const P1: &str = "0b9f3b2a1c8d4e6f9a0b1c2d3e4f5a6b";
const SEL_A: &str =
    r#"prometheus_value{type_instance="scaph_process_power_microwatts",uuid="11111111-1111-4111-8111-111111111111"}"#;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn ev(at: &str, action: &str, status: &str) -> ServerEvent {
    ServerEvent { at: t(at), action: action.into(), status: status.into(), flavor: None }
}

fn server(id: &str, vcpus: u32, created: &str, events: Vec<ServerEvent>) -> Server {
    Server {
        id: id.into(),
        name: format!("vm-{}", &id[..4]),
        project_id: P1.into(),
        user_id: "u-alice".into(),
        flavor: Flavor {
            id: "f1".into(),
            name: "m1".into(),
            vcpus,
            ram: 2048,
            disk: 20,
            ephemeral: 0,
            swap: 0,
            is_public: true,
            access: vec![],
            extra_specs: BTreeMap::new(),
            description: None,
        },
        image_id: Some("img1".into()),
        created: t(created),
        launched_at: events.iter().find(|e| e.status == "ACTIVE").map(|e| e.at),
        events,
        key_name: None,
        availability_zone: "nova".into(),
        host_id: "h1".into(),
        fixed_ips: vec![],
        metadata: BTreeMap::new(),
        volumes_attached: vec![],
    }
}

/// A: 2 vCPUs, ACTIVE from 2023-05-20T10:01, SHUTOFF 12:05–12:07 on the 25th.
/// B: 1 vCPU, deleted 2023-05-24T00:00.
fn site() -> Site {
    let a = server(
        A,
        2,
        "2023-05-20T10:00:00Z",
        vec![
            ev("2023-05-20T10:00:00Z", "create", "BUILD"),
            ev("2023-05-20T10:01:00Z", "create", "ACTIVE"),
            ev("2023-05-25T12:05:00Z", "stop", "SHUTOFF"),
            ev("2023-05-25T12:07:00Z", "start", "ACTIVE"),
        ],
    );
    let b = server(
        B,
        1,
        "2023-05-22T00:00:00Z",
        vec![ev("2023-05-22T00:00:00Z", "create", "ACTIVE"), ev("2023-05-24T00:00:00Z", "delete", "DELETED")],
    );
    Site { region: "RegionOne".into(), servers: vec![a, b], ..Default::default() }
}

async fn start() -> sim::SimHandle {
    let scenario =
        sim::Scenario { name: "hand".into(), seed: 1, reference_time: t("2023-06-01T00:00:00Z"), site: site() };
    sim::start(sim::SimConfig::new(scenario)).await.unwrap()
}

async fn get(h: &sim::SimHandle, path: &str, q: &[(&str, &str)]) -> (u16, Value) {
    let r = reqwest::Client::new().get(format!("{}/prometheus{path}", h.base_url())).query(q).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

fn values(body: &Value) -> Vec<(i64, String)> {
    body["data"]["result"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_i64().unwrap(), p[1].as_str().unwrap().to_string()))
        .collect()
}

#[tokio::test]
async fn query_range_answers_a_matrix_with_samples_only_while_active() {
    let h = start().await;
    // RFC 3339 start, unix float end (12:10), step as a duration string.
    let (st, body) = get(
        &h,
        "/api/v1/query_range",
        &[("query", SEL_A), ("start", "2023-05-25T12:00:00Z"), ("end", "1685016600.0"), ("step", "1m")],
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["status"], "success");
    assert_eq!(body["data"]["resultType"], "matrix");
    let result = body["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1);
    assert_eq!(
        result[0]["metric"],
        json!({"__name__": "prometheus_value", "job": "scaphandre", "project": P1,
               "type_instance": "scaph_process_power_microwatts", "uuid": A})
    );
    // 2 vCPUs × 7,401,000 µW × 116 % (noon hour) = 17,170,320 µW; 12:05 and
    // 12:06 are SHUTOFF: 9 of the 11 evaluation points carry a sample.
    let v = values(&body);
    let times: Vec<i64> = v.iter().map(|(t, _)| (t - 1_685_016_000) / 60).collect();
    assert_eq!(times, vec![0, 1, 2, 3, 4, 7, 8, 9, 10]);
    assert!(v.iter().all(|(_, x)| x == "17170320"), "{v:?}");
    assert_eq!(sim::prometheus::power_microwatts(A, 2, t("2023-05-25T12:00:00Z")), 17_170_320);
    // Requests go through the behaviour layer as the Prometheus service, with no token.
    assert!(h.requests().iter().any(|r| r.service == Some(sim::Service::Prometheus) && r.status == 200));
    h.stop().await;
}

#[tokio::test]
async fn query_range_accepts_a_form_post_and_follows_the_daily_wave() {
    let h = start().await;
    let r = reqwest::Client::new()
        .post(format!("{}/prometheus/api/v1/query_range", h.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs([("query", SEL_A), ("start", "1684972800"), ("end", "1684972800"), ("step", "30")])
                .finish(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    // 2023-05-25T00:00:00Z: 80 % of 2 × 7,401,000.
    assert_eq!(values(&body), vec![(1_684_972_800, "11841600".to_string())]);
    h.stop().await;
}

#[tokio::test]
async fn a_deleted_server_has_samples_only_before_its_deletion() {
    let h = start().await;
    let sel = format!(r#"prometheus_value{{uuid="{B}"}}"#);
    let (st, body) = get(
        &h,
        "/api/v1/query_range",
        &[("query", &sel), ("start", "2023-05-23T23:58:00Z"), ("end", "2023-05-24T00:02:00Z"), ("step", "60")],
    )
    .await;
    assert_eq!(st, 200);
    let v = values(&body);
    // 23:58 and 23:59 at 80 + 3 × 1 = 83 %; nothing from 00:00 (DELETED).
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].1, (11_535_000u64 * 83 / 100).to_string());
    let (_, after) = get(
        &h,
        "/api/v1/query_range",
        &[("query", &sel), ("start", "2023-05-25T00:00:00Z"), ("end", "2023-05-25T01:00:00Z"), ("step", "60")],
    )
    .await;
    assert_eq!(after["data"]["result"], json!([]));
    h.stop().await;
}

#[tokio::test]
async fn matchers_select_series_and_instant_queries_answer_a_vector() {
    let h = start().await;
    let q = [
        ("query", r#"prometheus_value{project="0b9f3b2a1c8d4e6f9a0b1c2d3e4f5a6b"}"#),
        ("time", "2023-05-23T12:00:00Z"),
    ];
    let (st, body) = get(&h, "/api/v1/query", &q).await;
    assert_eq!(st, 200);
    assert_eq!(body["data"]["resultType"], "vector");
    let r = body["data"]["result"].as_array().unwrap();
    assert_eq!(r.len(), 2, "both servers are ACTIVE then");
    assert_eq!(r[0]["value"], json!([1_684_843_200, "17170320"]));
    let (_, none) = get(&h, "/api/v1/query", &[("query", r#"other_metric{uuid="x"}"#), ("time", "1684843200")]).await;
    assert_eq!(none["data"]["result"], json!([]));
    let (_, ne) =
        get(&h, "/api/v1/query", &[("query", &format!(r#"prometheus_value{{uuid!="{A}"}}"#)), ("time", "1684843200")])
            .await;
    assert_eq!(ne["data"]["result"][0]["metric"]["uuid"], B);
    h.stop().await;
}

#[tokio::test]
async fn bad_parameters_get_prometheus_bad_data_errors() {
    let h = start().await;
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("query", SEL_A), ("end", "1"), ("step", "30")],
            "invalid parameter \"start\": cannot parse \"\" to a valid timestamp",
        ),
        (
            vec![("query", SEL_A), ("start", "10"), ("end", "1"), ("step", "30")],
            "end timestamp must not be before start time",
        ),
        (
            vec![("query", SEL_A), ("start", "1"), ("end", "10"), ("step", "0")],
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ),
        (
            vec![("query", SEL_A), ("start", "1"), ("end", "10"), ("step", "x")],
            "invalid parameter \"step\": cannot parse \"x\" to a valid duration",
        ),
        (
            vec![("query", SEL_A), ("start", "0"), ("end", "330030"), ("step", "30")],
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ),
    ];
    for (q, msg) in cases {
        let (st, body) = get(&h, "/api/v1/query_range", &q).await;
        assert_eq!(st, 400, "{q:?}");
        assert_eq!(body, json!({"status": "error", "errorType": "bad_data", "error": msg}));
    }
    let (st, body) =
        get(&h, "/api/v1/query_range", &[("query", "sum(rate(x[5m]))"), ("start", "1"), ("end", "2"), ("step", "1")])
            .await;
    assert_eq!(st, 400);
    assert_eq!(body["errorType"], "bad_data");
    assert!(body["error"].as_str().unwrap().starts_with("invalid parameter \"query\": 1:"), "{body}");
    h.stop().await;
}

#[tokio::test]
async fn exactly_11000_steps_give_11001_points() {
    let h = start().await;
    let from = t("2023-05-21T00:00:00Z").timestamp();
    let (s, e) = (from.to_string(), (from + 11_000 * 30).to_string());
    let (st, body) =
        get(&h, "/api/v1/query_range", &[("query", SEL_A), ("start", &s), ("end", &e), ("step", "30")]).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(values(&body).len(), 11_001);
    h.stop().await;
}
