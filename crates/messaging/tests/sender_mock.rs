//! `send_all` against a small mock AMS (axum, plain HTTP, static token): a publish answered
//! 400 for one message quarantines only that one, with AMS's error text; a spool element
//! carrying an older version of a record another live message carries newer is sent without it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apel::{CloudRecord, Record, RecordKind, SiteName, Style, VmStatus, VmUuid};
use axum::body::Bytes;
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use base64::Engine as _;
use chrono::{TimeZone, Utc};
use messaging::ams::{AmsClient, AmsConfig, Auth};
use messaging::config::PathType;
use messaging::dirq::QueueSimple;
use messaging::sender::{self, SenderOptions};
use smime::{Signer, Verifier};

const TOPIC: &str = "eu-egi-cloud-accounting";

/// (empaid, verified body) of every message the mock stored.
type Stored = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// Publish requests whose decoded data contains `poison` get AMS's 400; others are stored.
async fn mock_ams(poison: &'static str) -> (String, Stored, Arc<Mutex<usize>>) {
    let stored: Stored = Arc::default();
    let requests = Arc::new(Mutex::new(0usize));
    let verifier = Arc::new(Verifier::new(vectors().join("test-ca.pem")).unwrap());
    let (s, r) = (stored.clone(), requests.clone());
    let app = axum::Router::new().fallback(move |uri: Uri, body: Bytes| {
        let (stored, requests, verifier) = (s.clone(), r.clone(), verifier.clone());
        async move {
            assert!(uri.path().ends_with(&format!("/topics/{TOPIC}:publish")), "{uri}");
            *requests.lock().unwrap() += 1;
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let mut batch = Vec::new();
            for m in v["messages"].as_array().unwrap() {
                let data = base64::engine::general_purpose::STANDARD.decode(m["data"].as_str().unwrap()).unwrap();
                let body = verifier.verify(&data).unwrap().body;
                if String::from_utf8_lossy(&body).contains(poison) {
                    let e = serde_json::json!({"error": {"code": 400, "message": "Invalid Message Arguments", "status": "INVALID_ARGUMENT"}});
                    return (StatusCode::BAD_REQUEST, axum::Json(e)).into_response();
                }
                batch.push((m["attributes"]["empaid"].as_str().unwrap().to_string(), body));
            }
            let mut st = stored.lock().unwrap();
            let ids: Vec<String> = (st.len()..st.len() + batch.len()).map(|i| i.to_string()).collect();
            st.extend(batch);
            axum::Json(serde_json::json!({"messageIds": ids})).into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, stored, requests)
}

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ssm-4.0")
}

fn signer(dir: &Path) -> Signer {
    use std::os::unix::fs::PermissionsExt;
    let key = dir.join("key.pem");
    std::fs::copy(vectors().join("test-sender-key.pem"), &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    Signer::new(vectors().join("test-sender-cert.pem"), key).unwrap()
}

fn client(url: &str) -> AmsClient {
    AmsClient::new(AmsConfig::new(url, "accounting", Auth::Token("t0ken".into())).unwrap()).unwrap()
}

fn opts(spool: &Path) -> SenderOptions {
    let mut o = SenderOptions::new(spool, TOPIC);
    o.retry.initial = Duration::from_millis(5);
    o.retry.max_retries = 2;
    o
}

fn vm(n: usize) -> String {
    format!("{n:08x}-0000-4000-8000-000000000000")
}

/// VM `n`'s record after `hours` hours of wall time (all in March 2026).
fn record(n: usize, hours: u64) -> Record {
    let mut r = CloudRecord::new(VmUuid::new(vm(n)).unwrap(), SiteName::new("TEST-SITE").unwrap());
    r.status = Some(VmStatus::Started);
    r.start_time = Some(Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap());
    r.wall_duration = Some(3600 * hours);
    r.cpu_count = Some(1);
    Record::Cloud(r)
}

fn body(recs: &[Record]) -> Vec<u8> {
    apel::render_message(RecordKind::Cloud, recs, Style::Fedsite).unwrap()
}

#[tokio::test]
async fn a_400_for_one_message_quarantines_only_that_one_with_the_ams_error() {
    let dir = tempfile::tempdir().unwrap();
    let poison = vm(3);
    let (url, stored, requests) = mock_ams(Box::leak(poison.clone().into_boxed_str())).await;
    let spool = dir.path().join("outgoing");
    let q = QueueSimple::open(&spool).unwrap();
    let names: Vec<String> = (0..6).map(|n| q.add(&body(&[record(n, 1)])).unwrap().to_string()).collect();
    let o = opts(&spool);
    let report = sender::send_all(&o, &client(&url), &signer(dir.path()), None, None).await.unwrap();
    assert_eq!(
        (report.sent, report.quarantined, report.retried, report.deferred),
        (5, 1, 0, 0),
        "{}",
        report.summary()
    );
    assert_eq!(q.count().unwrap(), 0);
    // One request for all six, refused; then each alone.
    assert_eq!(*requests.lock().unwrap(), 7);
    let got: BTreeMap<String, Vec<u8>> = stored.lock().unwrap().iter().cloned().collect();
    let expected: BTreeMap<String, Vec<u8>> =
        names.iter().enumerate().filter(|(n, _)| *n != 3).map(|(n, e)| (e.clone(), body(&[record(n, 1)]))).collect();
    assert_eq!(got, expected, "the other five were published once each");
    let flat = names[3].replace('/', "_");
    assert_eq!(std::fs::read(o.quarantine.join(&flat)).unwrap(), body(&[record(3, 1)]));
    let note = std::fs::read_to_string(o.quarantine.join(format!("{flat}.error"))).unwrap();
    assert!(note.contains(&format!("element: {}", names[3])), "{note}");
    assert!(note.contains("HTTP 400: Invalid Message Arguments (INVALID_ARGUMENT)"), "{note}");
    let st = sender::spool_status(&spool, PathType::Dirq, &o.quarantine).unwrap();
    assert_eq!((st.elements, st.quarantined), (0, 1));
    assert_eq!(st.quarantine[0].0, flat);
    assert!(st.quarantine[0].1.contains("Invalid Message Arguments"), "{:?}", st.quarantine);
}

#[tokio::test]
async fn a_record_another_live_message_carries_newer_is_left_out_of_the_older_message() {
    let dir = tempfile::tempdir().unwrap();
    let (url, stored, _) = mock_ams("no-poison").await;
    let spool = dir.path().join("outgoing");
    let q = QueueSimple::open(&spool).unwrap();
    let mut ledger = ledger::Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    let t = |h: u32| Utc.with_ymd_and_hms(2026, 3, 1, h, 0, 0).unwrap();
    let old = [record(1, 1), record(2, 1)];
    let new = [record(1, 5)];
    let mut add = |recs: &[Record], at: u32| {
        let b = body(recs);
        let name = q.add(&b).unwrap().to_string();
        let refs = recs
            .iter()
            .map(|r| ledger::RecordRef {
                key: r.key(),
                measured_at: t(at),
                body_sha256: ledger::sha256_hex(&String::from_utf8(body(std::slice::from_ref(r))).unwrap()),
            })
            .collect();
        ledger
            .record_message(
                &ledger::NewMessage { element: name.clone(), kind: "cloud".into(), created_at: t(at), records: refs },
                None,
            )
            .unwrap();
        name
    };
    let older = add(&old, 1);
    let newer = add(&new, 5);
    assert_eq!(old[0].key(), new[0].key(), "same VM, same month");
    let report =
        sender::send_all(&opts(&spool), &client(&url), &signer(dir.path()), None, Some(&mut ledger)).await.unwrap();
    assert_eq!((report.sent, report.superseded_records, report.superseded_messages), (2, 1, 0), "{}", report.summary());
    let got: BTreeMap<String, Vec<u8>> = stored.lock().unwrap().iter().cloned().collect();
    assert_eq!(got[&older], body(&old[1..]), "the older message went without VM 1's stale record");
    assert_eq!(got[&newer], body(&new));
    assert_eq!(ledger.message(&older).unwrap().unwrap().state, ledger::MessageState::Sent);
    assert_eq!(q.count().unwrap(), 0);
}

/// A 400 that every message of the run meets before any is accepted is a configuration or AMS
/// problem (issue #19), not six bad messages: after `SAME_REFUSAL_STOP` identical refusals the
/// run stops, nothing is quarantined, every element stays.
#[tokio::test]
async fn the_same_refusal_for_the_first_messages_stops_the_run_and_quarantines_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (url, stored, _) = mock_ams("").await;
    let spool = dir.path().join("outgoing");
    let q = QueueSimple::open(&spool).unwrap();
    for n in 0..6 {
        q.add(&body(&[record(n, 1)])).unwrap();
    }
    let o = opts(&spool);
    let report = sender::send_all(&o, &client(&url), &signer(dir.path()), None, None).await.unwrap();
    assert_eq!((report.sent, report.quarantined, report.left), (0, 0, 6), "{}", report.summary());
    let why = report.stopped.as_deref().expect("the run stopped");
    assert!(
        why.contains(&format!("the first {} messages", sender::SAME_REFUSAL_STOP))
            && why.contains("Invalid Message Arguments"),
        "{why}"
    );
    assert_eq!(q.count().unwrap(), 6);
    assert!(!o.quarantine.exists() || std::fs::read_dir(&o.quarantine).unwrap().count() == 0);
    assert!(stored.lock().unwrap().is_empty());
    let st = sender::spool_status(&spool, PathType::Dirq, &o.quarantine).unwrap();
    assert_eq!(st.locked, 0, "every element unlocked");
}

/// A refusal met before any message was accepted is held, and settled as that message's own
/// once another message of the run is accepted.
#[tokio::test]
async fn a_held_refusal_is_the_messages_own_once_another_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let poison = vm(0);
    let (url, stored, _) = mock_ams(Box::leak(poison.into_boxed_str())).await;
    let spool = dir.path().join("outgoing");
    let q = QueueSimple::open(&spool).unwrap();
    for n in 0..2 {
        q.add(&body(&[record(n, 1)])).unwrap();
    }
    let o = opts(&spool);
    let report = sender::send_all(&o, &client(&url), &signer(dir.path()), None, None).await.unwrap();
    assert_eq!((report.sent, report.quarantined, report.left), (1, 1, 0), "{}", report.summary());
    assert!(report.stopped.is_none());
    assert_eq!((q.count().unwrap(), stored.lock().unwrap().len()), (0, 1));
}

#[tokio::test]
async fn a_recorded_send_keeps_its_run_outcome_summary_and_warnings_in_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let poison = vm(2);
    let (url, _, _) = mock_ams(Box::leak(poison.into_boxed_str())).await;
    let spool = dir.path().join("outgoing");
    let q = QueueSimple::open(&spool).unwrap();
    for n in 0..4 {
        q.add(&body(&[record(n, 1)])).unwrap();
    }
    let mut ledger =
        ledger::LedgerOptions::mode(ledger::OpenMode::CreateIfMissing).open(dir.path().join("ledger.sqlite")).unwrap();
    let (o, label) = (opts(&spool), "destination compute: ");
    let report =
        sender::send_recorded(&o, &client(&url), &signer(dir.path()), None, Some(&mut ledger), label).await.unwrap();
    assert_eq!((report.sent, report.quarantined), (3, 1), "{}", report.summary());
    let run = ledger.last_run(ledger::runs::SEND, None).unwrap().expect("the send is a run");
    // Some sent, one quarantined: partial, with the summary and one warning, each labelled.
    assert_eq!(run.outcome, Some(ledger::RunOutcome::Partial));
    assert_eq!(run.detail, Some(format!("{label}{}", report.summary())));
    let warnings: Vec<(String, String)> =
        ledger.run_warnings(run.id).unwrap().into_iter().map(|w| (w.level, w.message)).collect();
    assert_eq!(
        warnings,
        [(
            "warn".to_string(),
            format!("{label}1 messages quarantined (0 refused by the APEL loader's rules before sending)")
        )]
    );

    // Everything delivered: succeeded, no warning.
    q.add(&body(&[record(7, 1)])).unwrap();
    let report =
        sender::send_recorded(&o, &client(&url), &signer(dir.path()), None, Some(&mut ledger), "").await.unwrap();
    assert_eq!(report.sent, 1);
    let run = ledger.last_run(ledger::runs::SEND, None).unwrap().unwrap();
    assert_eq!((run.outcome, run.detail), (Some(ledger::RunOutcome::Succeeded), Some(report.summary())));
    assert!(ledger.run_warnings(run.id).unwrap().is_empty());
}
