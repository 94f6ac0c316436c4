//! Delivery end to end against the simulated AMS: spool → `send_all` (faults, 413 splits,
//! quarantine, locks) → AMS sim → `receive_once` into the APEL-semantics records store; python
//! dirq writing into the spool while fedsite sends; the `fedsite send` binary SIGKILLed at
//! random points; the `fedsite receive` binary SIGKILLed at random points (the subscription
//! offset never passes a message the store lacks). The big send is the 5,000 messages
//! (about 2 minutes in a debug build); `FEDSITE_DELIVERY_MESSAGES=300` makes it quick by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use apel::{CloudRecord, Fqan, Record, RecordKind, SiteName, Style, VmStatus, VmUuid};
use chrono::{TimeZone, Utc};
use messaging::ams::{self, AmsClient, Auth};
use messaging::dirq::QueueSimple;
use messaging::receiver::{self, ReceiverOptions, RecordStore, Sink};
use messaging::sender::{self, SenderOptions};
use sim::ams::{DEFAULT_PROJECT, DEFAULT_SUBSCRIPTION, DEFAULT_TOPIC, TEST_CLIENT_DN};
use sim::{Service, ServiceProfile};
use smime::{Signer, Verifier};

fn record(msg: usize, i: usize) -> Record {
    let uuid = format!("{:08x}-0000-4000-8000-{:012x}", msg, i);
    let mut r = CloudRecord::new(VmUuid::new(uuid).unwrap(), SiteName::new("TEST-SITE").unwrap());
    r.fqan = Some(Fqan::new(format!("vo{}.example.org", msg % 3)).unwrap());
    r.status = Some(VmStatus::Started);
    r.start_time = Some(Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap());
    r.wall_duration = Some(3600 * (1 + (msg % 7) as u64));
    r.cpu_duration = Some(1800);
    r.cpu_count = Some(2);
    Record::Cloud(r)
}

/// Message `msg` with `n` records, and their keys.
fn message(msg: usize, n: usize) -> (Vec<u8>, Vec<String>) {
    let recs: Vec<Record> = (0..n).map(|i| record(msg, i)).collect();
    let keys = recs.iter().map(Record::key).collect();
    (apel::render_message(RecordKind::Cloud, &recs, Style::Fedsite).unwrap(), keys)
}

async fn start(dir: &Path, error_rate: f64, max_message_bytes: Option<usize>, latency_ms: u64) -> sim::SimHandle {
    let scenario = sim::scenario::builtin("tiny").unwrap().generate();
    let mut cfg = sim::SimConfig::new(scenario);
    let mut ams = sim::AmsConfig::new(dir.join("pki"));
    if let Some(m) = max_message_bytes {
        ams.max_message_bytes = m;
    }
    cfg.ams = Some(ams);
    cfg.profiles.insert(Service::Ams, ServiceProfile { error_rate, latency_ms, ..Default::default() });
    cfg.fault_seed = 20260;
    sim::start(cfg).await.expect("sim with AMS starts")
}

fn sender_client(sim: &sim::SimHandle) -> AmsClient {
    let a = sim.ams().unwrap();
    let auth = Auth::X509 {
        authn_base: a.authn_url().parse().unwrap(),
        host: "localhost".into(),
        cert: a.client_cert_path(),
        key: a.client_key_path(),
    };
    let mut cfg = ams::AmsConfig::new(&a.url(), DEFAULT_PROJECT, auth).unwrap();
    cfg.ca = Some(a.ca_pem_path());
    cfg.max_request_bytes = 200_000;
    AmsClient::new(cfg).unwrap()
}

fn opts(spool: &Path, topic: &str) -> SenderOptions {
    let mut o = SenderOptions::new(spool, topic);
    o.retry.initial = Duration::from_millis(5);
    o.retry.max_delay = Duration::from_millis(100);
    o.retry.max_retries = 30;
    o.chunk = 50;
    o
}

/// Receives everything into a records store at `path`.
async fn receive_all(sim: &sim::SimHandle, path: &Path) -> (RecordStore, receiver::ReceiveReport) {
    let a = sim.ams().unwrap();
    let mut cfg = ams::AmsConfig::new(&a.url(), DEFAULT_PROJECT, Auth::Token(a.token("receiver").unwrap())).unwrap();
    cfg.ca = Some(a.ca_pem_path());
    let client = AmsClient::new(cfg).unwrap();
    let verifier = Verifier::new(a.ca_pem_path()).unwrap();
    let mut ropts = ReceiverOptions::new(DEFAULT_SUBSCRIPTION, vec![TEST_CLIENT_DN.to_string()]);
    ropts.retries = 30;
    ropts.retry_initial = Duration::from_millis(5);
    let mut sink = Sink::Records(RecordStore::open(path).unwrap());
    let report = receiver::receive_once(&ropts, &client, &verifier, None, &mut sink).await.unwrap();
    let Sink::Records(store) = sink else { unreachable!() };
    (store, report)
}

fn signed_b64_len(signer: &Signer, body: &[u8]) -> usize {
    signer.sign(body).unwrap().len().div_ceil(3) * 4
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_ams_and_413s_end_with_every_record_received_exactly_once() {
    let n: usize = std::env::var("FEDSITE_DELIVERY_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
    let dir = tempfile::tempdir().unwrap();
    // The AMS limit sits between a 3-record and a 4-record message: 4 and 5 get 413.
    let pki_probe = start(dir.path(), 0.0, None, 0).await;
    let signer =
        Signer::new(pki_probe.ams().unwrap().client_cert_path(), pki_probe.ams().unwrap().client_key_path()).unwrap();
    let (three, four) = (signed_b64_len(&signer, &message(0, 3).0), signed_b64_len(&signer, &message(0, 4).0));
    pki_probe.stop().await;
    let sim = start(dir.path(), 0.2, Some((three + four) / 2), 0).await;
    let a = sim.ams().unwrap();
    let signer = Signer::new(a.client_cert_path(), a.client_key_path()).unwrap();

    let spool = dir.path().join("outgoing");
    let q = QueueSimple::open(&spool).unwrap();
    let mut all_keys = BTreeSet::new();
    let mut big = 0;
    for m in 0..n {
        let k = 1 + m % 5;
        big += usize::from(k >= 4);
        let (body, keys) = message(m, k);
        q.add(&body).unwrap();
        all_keys.extend(keys);
    }
    let client = sender_client(&sim);
    let report = sender::send_all(&opts(&spool, DEFAULT_TOPIC), &client, &signer, None, None).await.unwrap();
    assert_eq!(q.count().unwrap(), 0, "spool drained: {}", report.summary());
    assert_eq!(report.split, big, "every 4- and 5-record message split once");
    assert_eq!(report.quarantined, 0);
    assert!(report.retried > 0, "20% faults cause retries");
    assert_eq!(report.sent, n - big + 2 * big);

    let published = a.published(DEFAULT_PROJECT, DEFAULT_TOPIC);
    assert_eq!(
        published.len(),
        report.sent + report.duplicates,
        "AMS holds each sent message once, plus the counted duplicates"
    );
    let mut by_empaid: BTreeMap<String, usize> = BTreeMap::new();
    for p in &published {
        *by_empaid.entry(p.attributes["empaid"].clone()).or_default() += 1;
    }
    let dup_messages: usize = by_empaid.values().map(|c| c - 1).sum();
    assert_eq!(dup_messages, report.duplicates);

    let (store, rr) = receive_all(&sim, &dir.path().join("received.sqlite")).await;
    assert_eq!(rr.rejected, 0);
    let receipts = store.receipts().unwrap();
    let received: BTreeSet<String> = receipts.iter().map(|r| r.1.clone()).collect();
    assert_eq!(received, all_keys, "every record received");
    let extra: u64 = receipts.iter().map(|r| r.3 - 1).sum();
    let dup_records: usize = by_empaid
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(e, c)| {
            let p = published.iter().find(|p| &p.attributes["empaid"] == e).unwrap();
            (c - 1) * p.text().unwrap().matches("VMUUID: ").count()
        })
        .sum();
    assert_eq!(extra as usize, dup_records, "records arrive more than once only in counted AMS duplicates");
    assert_eq!(store.counts().unwrap().cloud_records as usize, all_keys.len());
    println!("{n} messages: {} ; receiver: {}", report.summary(), rr.summary());
    sim.stop().await;
}

#[tokio::test]
async fn a_missing_topic_stops_the_run_and_quarantines_nothing_and_locked_ones_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(dir.path(), 0.0, None, 0).await;
    let a = sim.ams().unwrap();
    let signer = Signer::new(a.client_cert_path(), a.client_key_path()).unwrap();
    let spool = dir.path().join("outgoing");
    let q = QueueSimple::open(&spool).unwrap();
    let names: Vec<String> = (0..3).map(|m| q.add(&message(m, 1).0).unwrap().to_string()).collect();
    let mut ledger = ledger::Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    ledger
        .record_message(
            &ledger::NewMessage {
                element: names[0].clone(),
                kind: "cloud".into(),
                created_at: Utc::now(),
                records: vec![],
            },
            None,
        )
        .unwrap();
    // Another sender holds the last one.
    assert!(q.lock(&names[2], true).unwrap());
    let o = opts(&spool, "no-such-topic");
    let report = sender::send_all(&o, &sender_client(&sim), &signer, None, Some(&mut ledger)).await.unwrap();
    // AMS's 404 "Topic doesn't exist" concerns every message: the run stops at once.
    assert_eq!(
        (report.quarantined, report.skipped_locked, report.sent, report.left),
        (0, 1, 0, 2),
        "{}",
        report.summary()
    );
    let why = report.stopped.as_deref().expect("the run stopped");
    assert!(why.contains("HTTP 404") && why.contains("Topic doesn't exist") && why.contains("--topic"), "{why}");
    assert!(!report.complete());
    assert_eq!(ledger.message(&names[0]).unwrap().unwrap().state, ledger::MessageState::Spooled);
    let st = sender::spool_status(&spool, messaging::config::PathType::Dirq, &o.quarantine).unwrap();
    assert_eq!((st.elements, st.locked, st.quarantined), (3, 1, 0));
    assert_eq!(sim.ams().unwrap().counts().messages_published, 0);
    sim.stop().await;
}

fn python() -> PathBuf {
    let v = std::env::var("FEDSITE_VENV").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from("/tmp/pyprobe/venv"));
    let p = v.join("bin/python");
    assert!(p.exists(), "no python venv with dirq at {} (set FEDSITE_VENV)", v.display());
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_dirq_writer_and_fedsite_sender_share_one_queue() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(dir.path(), 0.0, None, 0).await;
    let a = sim.ams().unwrap();
    let signer = Signer::new(a.client_cert_path(), a.client_key_path()).unwrap();
    let spool = dir.path().join("outgoing");
    let total = 120;
    let script = format!(
        "import sys, time\nfrom dirq.QueueSimple import QueueSimple\nq = QueueSimple(sys.argv[1])\n\
         for i in range({total}):\n    q.add(open(sys.argv[2] + '/m%d' % i, 'rb').read())\n    time.sleep(0.005)\n"
    );
    let msgs = dir.path().join("msgs");
    std::fs::create_dir_all(&msgs).unwrap();
    let mut expected = BTreeSet::new();
    for i in 0..total {
        let body = message(1000 + i, 1).0;
        std::fs::write(msgs.join(format!("m{i}")), &body).unwrap();
        expected.insert(body);
    }
    let mut writer =
        tokio::process::Command::new(python()).arg("-c").arg(&script).arg(&spool).arg(&msgs).spawn().unwrap();
    let client = sender_client(&sim);
    let o = opts(&spool, DEFAULT_TOPIC);
    let mut sent = 0;
    loop {
        let done = writer.try_wait().unwrap();
        sent += sender::send_all(&o, &client, &signer, None, None).await.unwrap().sent;
        if let Some(status) = done {
            assert!(status.success());
            break;
        }
    }
    sent += sender::send_all(&o, &client, &signer, None, None).await.unwrap().sent;
    assert_eq!(sent, total);
    let verifier = Verifier::new(a.ca_pem_path()).unwrap();
    let got: Vec<Vec<u8>> = a
        .published(DEFAULT_PROJECT, DEFAULT_TOPIC)
        .iter()
        .map(|p| verifier.verify(p.data.as_ref().unwrap()).unwrap().body)
        .collect();
    assert_eq!(got.len(), total, "nothing doubled");
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), expected, "nothing lost");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_sender_at_random_points_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(dir.path(), 0.1, None, 15).await;
    let a = sim.ams().unwrap();
    let spool = dir.path().join("outgoing");
    let ledger_path = dir.path().join("ledger.sqlite");
    let q = QueueSimple::open(&spool).unwrap();
    let mut ledger = ledger::Ledger::open(&ledger_path).unwrap();
    let mut all_keys = BTreeSet::new();
    for m in 0..200 {
        let (body, keys) = message(m, 2);
        let name = q.add(&body).unwrap().to_string();
        let refs = keys
            .iter()
            .map(|k| ledger::RecordRef { key: k.clone(), measured_at: Utc::now(), body_sha256: ledger::sha256_hex(k) })
            .collect();
        ledger
            .record_message(
                &ledger::NewMessage { element: name, kind: "cloud".into(), created_at: Utc::now(), records: refs },
                None,
            )
            .unwrap();
        all_keys.extend(keys);
    }
    drop(ledger);
    let run = || {
        let mut c = send_command(&sim, &spool, DEFAULT_TOPIC, &[]);
        c.arg("--authn-url")
            .arg(a.authn_url())
            .arg("--ca")
            .arg(a.ca_pem_path())
            .arg("--ledger")
            .arg(&ledger_path)
            .args([
                "--retry-initial-ms",
                "5",
                "--retry-max-ms",
                "50",
                "--max-retries",
                "30",
                "--chunk",
                "10",
                "--purge-maxlock-secs",
                "1",
            ])
            .stdout(std::process::Stdio::null());
        c
    };
    let mut seed = 0x5eed_u64;
    for _ in 0..6 {
        let mut child = run().spawn().unwrap();
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        tokio::time::sleep(Duration::from_millis(150 + (seed >> 33) % 600)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    // The killed runs' locks are stale after 1 s: the next run's final purge releases them
    // (dirq treats maxlock 0 as "never"), the run after sends them.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(2100)).await;
        if q.count().unwrap() == 0 {
            break;
        }
        let out = run().stdout(std::process::Stdio::piped()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        println!("rerun: {}", String::from_utf8_lossy(&out.stdout).trim());
    }
    assert_eq!(q.count().unwrap(), 0, "spool drained after the reruns");
    let (store, _) = receive_all(&sim, &dir.path().join("received.sqlite")).await;
    let received: BTreeSet<String> = store.receipts().unwrap().into_iter().map(|r| r.1).collect();
    assert_eq!(received, all_keys, "no record lost");
    let ledger = ledger::Ledger::open(&ledger_path).unwrap();
    assert!(ledger.pending().unwrap().iter().all(|m| m.state == ledger::MessageState::Sent));
    assert_eq!(ledger.messages_in_state(ledger::MessageState::Sent).unwrap().len(), 200);
    sim.stop().await;
}

/// (key, sha256 of the record rendered alone) of each record of an APEL message, as the
/// receiver's `receipts` table identifies record versions.
fn versions(body: &[u8]) -> Vec<(String, String)> {
    let (kind, recs) = apel::parse_message(body).unwrap();
    recs.iter()
        .map(|r| {
            let one = apel::render_message(kind, std::slice::from_ref(r), Style::Fedsite).unwrap();
            (r.key(), ledger::sha256_hex(&String::from_utf8(one).unwrap()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_receiver_at_random_points_loses_nothing_and_never_acks_unstored() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(dir.path(), 0.0, None, 10).await;
    let a = sim.ams().unwrap();
    let signer = Signer::new(a.client_cert_path(), a.client_key_path()).unwrap();
    let spool = dir.path().join("outgoing");
    let q = QueueSimple::open(&spool).unwrap();
    let client = sender_client(&sim);
    // 120 messages of 2 VMs each, then newer snapshots (more wall hours, same month) of the
    // first 20 messages' VMs, published after them.
    let (old, updated) = (120, 20);
    for m in 0..old {
        q.add(&message(m, 2).0).unwrap();
    }
    let r1 = sender::send_all(&opts(&spool, DEFAULT_TOPIC), &client, &signer, None, None).await.unwrap();
    let mut latest_wall: BTreeMap<String, u64> = BTreeMap::new();
    for m in 0..old {
        for i in 0..2 {
            let Record::Cloud(c) = record(m, i) else { unreachable!() };
            latest_wall.insert(c.vm_uuid.to_string(), c.wall_duration.unwrap());
        }
    }
    for m in 0..updated {
        let recs: Vec<Record> = (0..2)
            .map(|i| {
                let Record::Cloud(mut c) = record(m, i) else { unreachable!() };
                c.wall_duration = Some(c.wall_duration.unwrap() + 7200);
                latest_wall.insert(c.vm_uuid.to_string(), c.wall_duration.unwrap());
                Record::Cloud(c)
            })
            .collect();
        q.add(&apel::render_message(RecordKind::Cloud, &recs, Style::Fedsite).unwrap()).unwrap();
    }
    let r2 = sender::send_all(&opts(&spool, DEFAULT_TOPIC), &client, &signer, None, None).await.unwrap();
    assert_eq!((r1.sent, r2.sent, r1.duplicates + r2.duplicates), (old, updated, 0));

    let verifier = Verifier::new(a.ca_pem_path()).unwrap();
    let published = a.published(DEFAULT_PROJECT, DEFAULT_TOPIC);
    assert_eq!(published.len(), old + updated);
    let per_msg: Vec<Vec<(String, String)>> =
        published.iter().map(|p| versions(&verifier.verify(p.data.as_ref().unwrap()).unwrap().body)).collect();
    let all_versions: BTreeSet<(String, String)> = per_msg.iter().flatten().cloned().collect();
    assert_eq!(all_versions.len(), 2 * (old + updated));

    let dns = dir.path().join("dns");
    std::fs::write(&dns, format!("{TEST_CLIENT_DN}\n")).unwrap();
    let records = dir.path().join("received.sqlite");
    let run = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_fedsite"));
        c.args([
            "--log",
            "warn",
            "receive",
            "--once",
            "--batch",
            "3",
            "--ams-url",
            &a.url(),
            "--project",
            DEFAULT_PROJECT,
        ])
        .args(["--subscription", DEFAULT_SUBSCRIPTION, "--token", &a.token("receiver").unwrap()])
        .arg("--ca")
        .arg(a.ca_pem_path())
        .arg("--capath")
        .arg(a.ca_pem_path())
        .arg("--dns")
        .arg(&dns)
        .arg("--records")
        .arg(&records)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
        c
    };
    // After a kill: every message below the subscription offset is in the store (whole), and
    // the stored ones at or above it are bound to come again.
    let stored_unacked = |redeliver: &mut BTreeSet<usize>| -> u64 {
        // An acknowledge the killed receiver had already sent can still be applied by the
        // (in-process) AMS after the kill: read the offset once it has settled.
        let mut offset = a.subscription_offset(DEFAULT_PROJECT, DEFAULT_SUBSCRIPTION).unwrap();
        loop {
            std::thread::sleep(Duration::from_millis(150));
            let again = a.subscription_offset(DEFAULT_PROJECT, DEFAULT_SUBSCRIPTION).unwrap();
            if again == offset {
                break;
            }
            offset = again;
        }
        let have: BTreeSet<(String, String)> =
            RecordStore::open(&records).unwrap().receipts().unwrap().into_iter().map(|r| (r.1, r.2)).collect();
        for (i, vs) in per_msg.iter().enumerate() {
            let n = vs.iter().filter(|v| have.contains(v)).count();
            assert!(n == 0 || n == vs.len(), "message {i} stored in part: {n} of {}", vs.len());
            if (i as u64) < offset {
                assert_eq!(n, vs.len(), "message {i} acknowledged (offset {offset}) but not in the store");
            } else if n > 0 {
                redeliver.insert(i);
            }
        }
        offset
    };
    let mut redeliver = BTreeSet::new();
    let mut seed = 0xdead_beef_u64;
    let mut offsets = Vec::new();
    // A kill that found no progress waits longer next time (slow machines).
    let mut base = 40;
    for _ in 0..8 {
        let mut child = run().spawn().unwrap();
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        tokio::time::sleep(Duration::from_millis(base + (seed >> 33) % 400)).await;
        child.kill().unwrap(); // SIGKILL (a no-op if it already exited)
        child.wait().unwrap();
        let before = offsets.last().copied().unwrap_or(0);
        offsets.push(stored_unacked(&mut redeliver));
        if offsets.last() == Some(&before) {
            base += 150;
        }
    }
    assert!(
        offsets.iter().any(|&o| o > 0 && o < published.len() as u64),
        "some kill landed in the middle of the drain: {offsets:?}"
    );
    for _ in 0..5 {
        let out = run().output().unwrap();
        offsets.push(stored_unacked(&mut redeliver));
        if out.status.success() && *offsets.last().unwrap() == published.len() as u64 {
            break;
        }
    }
    assert_eq!(*offsets.last().unwrap(), published.len() as u64, "drained after the reruns: {offsets:?}");

    let store = RecordStore::open(&records).unwrap();
    let c = store.counts().unwrap();
    let receipts = store.receipts().unwrap();
    assert_eq!(c.messages as usize, published.len(), "each AMS message stored once");
    assert_eq!(
        receipts.iter().map(|r| (r.1.clone(), r.2.clone())).collect::<BTreeSet<_>>(),
        all_versions,
        "nothing lost"
    );
    assert!(receipts.iter().all(|r| r.3 == 1), "no record version counted twice");
    assert_eq!(c.cloud_records as usize, latest_wall.len(), "one record per VM and month");
    let wall: i64 = store.cloud_summaries().unwrap().iter().map(|s| s.wall_duration).sum();
    assert_eq!(wall as u64, latest_wall.values().sum::<u64>(), "the newer snapshot replaced the older one");
    let delivered = a.counts().messages_delivered;
    assert!(
        c.redeliveries as usize >= redeliver.len(),
        "redeliveries counted: {} < {}",
        c.redeliveries,
        redeliver.len()
    );
    assert!(c.redeliveries <= delivered - published.len() as u64);
    println!(
        "offsets after kills {offsets:?}; stored-but-unacked at a kill: {}; redeliveries counted {}; AMS deliveries {delivered}",
        redeliver.len(),
        c.redeliveries
    );
    drop(store);

    // Deterministically: rewind the subscription by 40 (as after lost acks); the receiver
    // counts 40 redeliveries and stores nothing twice.
    let ca = reqwest::Certificate::from_pem(&std::fs::read(a.ca_pem_path()).unwrap()).unwrap();
    let http = reqwest::Client::builder().add_root_certificate(ca).build().unwrap();
    let rewind = http
        .post(format!("{}/v1/projects/{DEFAULT_PROJECT}/subscriptions/{DEFAULT_SUBSCRIPTION}:modifyOffset", a.url()))
        .header("x-api-key", a.token("receiver").unwrap())
        .json(&serde_json::json!({"offset": published.len() - 40}))
        .send()
        .await
        .unwrap();
    assert!(rewind.status().is_success(), "{}", rewind.text().await.unwrap());
    let out = run().output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "pulled 40, accepted 0 (0 records), rejected 0, redelivered 40, acknowledged 40"
    );
    let store = RecordStore::open(&records).unwrap();
    let c2 = store.counts().unwrap();
    assert_eq!((c2.messages, c2.cloud_records, c2.redeliveries), (c.messages, c.cloud_records, c.redeliveries + 40));
    assert_eq!(store.receipts().unwrap(), receipts, "no record counted again");
    sim.stop().await;
}

// ---- Delivery safety through the `fedsite send` / `fedsite spool` binaries (issue #19) ----

/// A spool with `good` messages of 2 records each (known to a ledger beside it), then the
/// two elements APEL's loader refuses when `bad`: 3,000 random bytes and a cloud message
/// holding only a VMUUID. Returns the spool, the ledger path, the good elements and their keys.
fn safety_spool(dir: &Path, good: usize, bad: bool) -> (PathBuf, PathBuf, Vec<String>, BTreeSet<String>) {
    let spool = dir.join("outgoing");
    let ledger_path = dir.join("ledger.sqlite");
    let q = QueueSimple::open(&spool).unwrap();
    let mut ledger = ledger::Ledger::open(&ledger_path).unwrap();
    let (mut names, mut keys) = (Vec::new(), BTreeSet::new());
    for m in 0..good {
        let (body, k) = message(100 + m, 2);
        let name = q.add(&body).unwrap().to_string();
        let refs = k
            .iter()
            .map(|k| ledger::RecordRef { key: k.clone(), measured_at: Utc::now(), body_sha256: ledger::sha256_hex(k) })
            .collect();
        ledger
            .record_message(
                &ledger::NewMessage {
                    element: name.clone(),
                    kind: "cloud".into(),
                    created_at: Utc::now(),
                    records: refs,
                },
                None,
            )
            .unwrap();
        names.push(name);
        keys.extend(k);
    }
    if bad {
        let mut x = 0x19_u64;
        let noise: Vec<u8> = (0..3000)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (x >> 56) as u8
            })
            .collect();
        q.add(&noise).unwrap();
        q.add(b"APEL-cloud-message: v0.4\nVMUUID: x\n%%\n").unwrap();
    }
    (spool, ledger_path, names, keys)
}

/// `fedsite send` against the sim's AMS with the sim's host certificate.
fn fedsite_send(
    sim: &sim::SimHandle,
    spool: &Path,
    ledger: &Path,
    topic: &str,
    authn_url: &str,
    extra: &[&str],
) -> std::process::Output {
    let ca = sim.ams().unwrap().ca_pem_path();
    send_command(sim, spool, topic, &["--authn-url", authn_url, "--retry-initial-ms", "5", "--retry-max-ms", "50"])
        .arg("--ca")
        .arg(ca)
        .arg("--ledger")
        .arg(ledger)
        .args(extra)
        .output()
        .unwrap()
}

/// `fedsite send` to the sim's AMS data API with the sim's host certificate; `args` say the
/// rest (authn URL, CA, ledger…). REQUESTS_CA_BUNDLE is removed: the CA is what `args` give.
fn send_command(sim: &sim::SimHandle, spool: &Path, topic: &str, args: &[&str]) -> std::process::Command {
    let a = sim.ams().unwrap();
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_fedsite"));
    c.args(["--log", "warn", "send", "--ams-url", &a.url(), "--project", DEFAULT_PROJECT, "--topic", topic])
        .arg("--cert")
        .arg(a.client_cert_path())
        .arg("--key")
        .arg(a.client_key_path())
        .arg("--spool")
        .arg(spool)
        .args(args)
        .env_remove("REQUESTS_CA_BUNDLE");
    c
}

fn text(out: &std::process::Output) -> String {
    format!("stdout: {}\nstderr: {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn quarantine_files(spool: &Path) -> usize {
    std::fs::read_dir(sender::default_quarantine(spool)).map_or(0, |rd| rd.count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_exchange_url_stops_the_send_and_quarantines_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(dir.path(), 0.0, None, 0).await;
    let (spool, ledger_path, names, _) = safety_spool(dir.path(), 8, true);
    // The typo: the full authx509 URL the sim prints, where a base URL belongs (path twice).
    let authn = sim.ams().unwrap().authx509_url("localhost");
    let out = fedsite_send(&sim, &spool, &ledger_path, DEFAULT_TOPIC, &authn, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("X.509 token exchange") && stderr.contains("HTTP 404") && stderr.contains("--authn-url"),
        "{stderr}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("sent 0, retried 0, split 0, quarantined 0 (0 invalid)"),
        "{}",
        text(&out)
    );
    assert_eq!(quarantine_files(&spool), 0, "nothing quarantined");
    assert_eq!(QueueSimple::open(&spool).unwrap().count().unwrap(), 10, "every element where it was");
    let st =
        sender::spool_status(&spool, messaging::config::PathType::Dirq, &sender::default_quarantine(&spool)).unwrap();
    assert_eq!(st.locked, 0);
    let ledger = ledger::Ledger::open(&ledger_path).unwrap();
    assert!(names.iter().all(|n| ledger.message(n).unwrap().unwrap().state == ledger::MessageState::Spooled));
    assert_eq!(sim.ams().unwrap().counts().messages_published, 0);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misspelt_topic_stops_the_send_and_the_fixed_topic_sends_everything_once() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(dir.path(), 0.0, None, 0).await;
    let (spool, ledger_path, names, keys) = safety_spool(dir.path(), 4, false);
    let authn = sim.ams().unwrap().authn_url();
    let out = fedsite_send(&sim, &spool, &ledger_path, "eu-egi-cloud-acounting", &authn, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Topic doesn't exist") && stderr.contains("--topic"), "{stderr}");
    // Once: one log event and the command's final line, not once per message.
    assert_eq!(stderr.matches("Topic doesn't exist").count(), 2, "{stderr}");
    assert_eq!(quarantine_files(&spool), 0);
    assert_eq!(QueueSimple::open(&spool).unwrap().count().unwrap(), 4);
    // The ledger's run says why.
    let ledger = ledger::Ledger::open(&ledger_path).unwrap();
    let run = ledger.last_run("send", None).unwrap().unwrap();
    assert_eq!(run.outcome, Some(ledger::RunOutcome::Failed));
    assert!(ledger.run_warnings(run.id).unwrap().iter().any(|w| w.message.contains("stopped")));
    drop(ledger);

    let out = fedsite_send(&sim, &spool, &ledger_path, DEFAULT_TOPIC, &authn, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(QueueSimple::open(&spool).unwrap().count().unwrap(), 0);
    let ledger = ledger::Ledger::open(&ledger_path).unwrap();
    assert!(names.iter().all(|n| ledger.message(n).unwrap().unwrap().state == ledger::MessageState::Sent));
    let (store, _) = receive_all(&sim, &dir.path().join("received.sqlite")).await;
    let receipts = store.receipts().unwrap();
    assert_eq!(receipts.iter().map(|r| r.1.clone()).collect::<BTreeSet<_>>(), keys);
    assert!(receipts.iter().all(|r| r.3 == 1), "each record received exactly once");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elements_apel_would_refuse_are_quarantined_with_their_rule_and_the_good_ones_sent() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(dir.path(), 0.0, None, 0).await;
    let (spool, ledger_path, _, keys) = safety_spool(dir.path(), 8, true);
    let authn = sim.ams().unwrap().authn_url();
    let out = fedsite_send(&sim, &spool, &ledger_path, DEFAULT_TOPIC, &authn, &[]);
    assert_eq!(out.status.code(), Some(1), "quarantined elements make the run fail: {}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("sent 8,"), "{}", text(&out));
    assert_eq!(sim.ams().unwrap().counts().messages_published, 8, "the bad ones never left the site");
    let st =
        sender::spool_status(&spool, messaging::config::PathType::Dirq, &sender::default_quarantine(&spool)).unwrap();
    assert_eq!((st.elements, st.quarantined), (0, 2));
    let reasons: Vec<&str> = st.quarantine.iter().map(|(_, r)| r.as_str()).collect();
    assert!(reasons.iter().all(|r| r.starts_with(sender::INVALID_REASON)), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("record 0: line 2: VMUUID")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("non-ASCII byte")), "{reasons:?}");
    let (store, _) = receive_all(&sim, &dir.path().join("received.sqlite")).await;
    assert_eq!(store.receipts().unwrap().into_iter().map(|r| r.1).collect::<BTreeSet<_>>(), keys);

    // `spool status` lists them by reason; `requeue --reason` puts back the one asked for,
    // and `--no-validate` sends it as SSM would.
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_fedsite"))
        .args(["spool", "status", "--json", "--spool"])
        .arg(&spool)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["quarantine_by_reason"].as_array().unwrap().len(), 2, "{v}");
    let requeue = std::process::Command::new(env!("CARGO_BIN_EXE_fedsite"))
        .args(["spool", "requeue", "--reason", "VMUUID", "--spool"])
        .arg(&spool)
        .output()
        .unwrap();
    assert_eq!(requeue.status.code(), Some(0), "{}", text(&requeue));
    assert_eq!(QueueSimple::open(&spool).unwrap().count().unwrap(), 1);
    let out = fedsite_send(&sim, &spool, &ledger_path, DEFAULT_TOPIC, &authn, &["--no-validate"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(sim.ams().unwrap().counts().messages_published, 9);
    assert_eq!(quarantine_files(&spool), 2, "the random bytes stay quarantined (message + note)");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requeue_after_fixing_the_topic_sends_everything_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(dir.path(), 0.0, None, 0).await;
    let (spool, ledger_path, names, keys) = safety_spool(dir.path(), 6, false);
    // The backlog an older fedsite quarantined for a misspelt topic (404 per message).
    let q = QueueSimple::open(&spool).unwrap();
    let quarantine = sender::default_quarantine(&spool);
    let mut ledger = ledger::Ledger::open(&ledger_path).unwrap();
    let reason = "publishing 1 message(s) to topic eu-egi-cloud-acounting: HTTP 404: Topic doesn't exist (NOT_FOUND)";
    for n in &names {
        messaging::quarantine::write(&quarantine, &spool, n, &std::fs::read(spool.join(n)).unwrap(), reason).unwrap();
        ledger.quarantine(n, reason).unwrap();
        assert!(q.lock(n, false).unwrap());
        q.remove(n).unwrap();
    }
    drop(ledger);
    let fedsite = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_fedsite"))
            .args(["spool"])
            .args(args)
            .arg("--spool")
            .arg(&spool)
            .arg("--ledger")
            .arg(&ledger_path)
            .output()
            .unwrap()
    };
    let dry = fedsite(&["requeue", "--all", "--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
    assert!(String::from_utf8_lossy(&dry.stdout).contains("would requeue 6 element(s)"), "{}", text(&dry));
    assert_eq!((q.count().unwrap(), quarantine_files(&spool)), (0, 12), "a dry run changes nothing");

    let out = fedsite(&["requeue", "--reason", "Topic doesn't exist"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("requeued 6 element(s)"), "{}", text(&out));
    let mut back: Vec<String> = q.iter().unwrap().into_iter().map(String::from).collect();
    back.sort();
    let mut want = names.clone();
    want.sort();
    assert_eq!(back, want, "back under their own names");
    assert_eq!(quarantine_files(&spool), 0);
    let ledger = ledger::Ledger::open(&ledger_path).unwrap();
    assert!(names.iter().all(|n| ledger.message(n).unwrap().unwrap().state == ledger::MessageState::Spooled));
    drop(ledger);

    let authn = sim.ams().unwrap().authn_url();
    let out = fedsite_send(&sim, &spool, &ledger_path, DEFAULT_TOPIC, &authn, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let again = fedsite_send(&sim, &spool, &ledger_path, DEFAULT_TOPIC, &authn, &[]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(sim.ams().unwrap().counts().messages_published, 6);
    let (store, _) = receive_all(&sim, &dir.path().join("received.sqlite")).await;
    let receipts = store.receipts().unwrap();
    assert_eq!(receipts.iter().map(|r| r.1.clone()).collect::<BTreeSet<_>>(), keys);
    assert!(receipts.iter().all(|r| r.3 == 1), "each record received exactly once");
    let nothing = fedsite(&["requeue", "--all"]);
    assert!(String::from_utf8_lossy(&nothing.stdout).contains("requeued 0 element(s)"), "{}", text(&nothing));
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_send_on_the_same_spool_waits_or_exits_75() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(dir.path(), 0.0, None, 0).await;
    let (spool, ledger_path, _, _) = safety_spool(dir.path(), 2, false);
    let authn = sim.ams().unwrap().authn_url();
    // Another send holds the spool.
    let held = sender::lock_spool(&SenderOptions::new(&spool, DEFAULT_TOPIC), Duration::ZERO).unwrap();
    let out = fedsite_send(&sim, &spool, &ledger_path, DEFAULT_TOPIC, &authn, &[]);
    assert_eq!(out.status.code(), Some(75), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by another fedsite run (pid"), "{}", text(&out));
    assert_eq!(sim.ams().unwrap().counts().messages_published, 0);
    // With --wait it goes on once the holder ends.
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        drop(held);
    });
    let started = std::time::Instant::now();
    let out = fedsite_send(&sim, &spool, &ledger_path, DEFAULT_TOPIC, &authn, &["--wait", "30"]);
    release.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(started.elapsed() >= Duration::from_millis(600), "it waited for the holder");
    assert_eq!(sim.ams().unwrap().counts().messages_published, 2);
    sim.stop().await;
}

/// `fedsite send` with `--ca` / `--ams-url` / `--authn-url` as given (no defaults from the sim).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_and_untrusted_certificates_say_which_and_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(dir.path(), 0.0, None, 0).await;
    let (spool, _, _, _) = safety_spool(dir.path(), 3, false);
    let a = sim.ams().unwrap();
    let ca = a.ca_pem_path();
    // Nothing listens on the authn port given.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let refused = format!("https://localhost:{closed}");
    let out = send_command(&sim, &spool, DEFAULT_TOPIC, &["--authn-url", &refused, "--ca", ca.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("connection refused") && stderr.contains("--ams-url"), "{stderr}");
    // The system's roots do not trust the sim's CA.
    let out = send_command(&sim, &spool, DEFAULT_TOPIC, &["--authn-url", &a.authn_url()]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TLS handshake failed") && stderr.contains("--ca") && stderr.contains("REQUESTS_CA_BUNDLE"),
        "{stderr}"
    );
    assert_eq!(QueueSimple::open(&spool).unwrap().count().unwrap(), 3, "nothing moved");
    assert_eq!(quarantine_files(&spool), 0);
    sim.stop().await;
}
