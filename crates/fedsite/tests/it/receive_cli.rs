//! The `fedsite receive --once` and `fedsite spool status --json` binaries against the AMS
//! simulator: printed counts, the records store's contents, APEL summaries, rejects; the
//! spool's counts, oldest element, locks and quarantine reasons as JSON.

use std::path::Path;
use std::process::Command;

use apel::{CloudRecord, Fqan, Record, RecordKind, SiteName, Style, VmStatus, VmUuid};
use chrono::{TimeZone, Utc};
use messaging::ams::{self, AmsClient, Auth, OutgoingMessage};
use messaging::dirq::QueueSimple;
use messaging::receiver::RecordStore;
use sim::ams::{DEFAULT_PROJECT, DEFAULT_SUBSCRIPTION, DEFAULT_TOPIC, TEST_CLIENT_DN};
use smime::Signer;

fn record(vm: usize, hours: u64) -> Record {
    let uuid = format!("{vm:08x}-0000-4000-8000-00000000cafe");
    let mut r = CloudRecord::new(VmUuid::new(uuid).unwrap(), SiteName::new("TEST-SITE").unwrap());
    r.fqan = Some(Fqan::new(if vm.is_multiple_of(2) { "vo.even.org" } else { "vo.odd.org" }).unwrap());
    r.status = Some(VmStatus::Started);
    r.start_time = Some(Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap());
    r.wall_duration = Some(3600 * hours);
    r.cpu_duration = Some(1800 * hours);
    r.cpu_count = Some(1);
    Record::Cloud(r)
}

fn body(recs: &[Record]) -> Vec<u8> {
    apel::render_message(RecordKind::Cloud, recs, Style::Fedsite).unwrap()
}

async fn start(dir: &Path) -> sim::SimHandle {
    let mut cfg = sim::SimConfig::new(sim::scenario::builtin("tiny").unwrap().generate());
    cfg.ams = Some(sim::AmsConfig::new(dir.join("pki")));
    sim::start(cfg).await.expect("sim with AMS starts")
}

fn publisher(a: &sim::ams::AmsHandle) -> AmsClient {
    let mut cfg = ams::AmsConfig::new(&a.url(), DEFAULT_PROJECT, Auth::Token(a.token("sender").unwrap())).unwrap();
    cfg.ca = Some(a.ca_pem_path());
    AmsClient::new(cfg).unwrap()
}

fn fedsite() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fedsite"));
    c.args(["--log", "warn"]);
    c
}

fn stdout_of(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_once_stores_latest_records_rejects_unknown_signers_and_prints_counts() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(dir.path()).await;
    let a = sim.ams().unwrap();
    let signer = Signer::new(a.client_cert_path(), a.client_key_path()).unwrap();
    let (ocert, okey) = a.issue_client_cert("other", "/C=XX/O=Test/CN=other.example.org").unwrap();
    let stranger = Signer::new(ocert, okey).unwrap();
    // Four accepted messages (VM 1 twice, the later one with more hours), one from a stranger.
    let bodies = [
        (&signer, body(&[record(1, 1), record(2, 2)])),
        (&signer, body(&[record(3, 3)])),
        (&stranger, body(&[record(4, 4)])),
        (&signer, body(&[record(1, 6)])),
        (&signer, body(&[record(5, 1), record(6, 1)])),
    ];
    let msgs: Vec<OutgoingMessage> = bodies
        .iter()
        .enumerate()
        .map(|(i, (s, b))| OutgoingMessage::ssm(&format!("00000000/m{i}"), &s.sign(b).unwrap()))
        .collect();
    assert!(publisher(a).publish(DEFAULT_TOPIC, &msgs).await.into_iter().all(|r| r.is_ok()));

    let dns = dir.path().join("dns");
    std::fs::write(&dns, format!("# allowed\n{TEST_CLIENT_DN}\n")).unwrap();
    let records = dir.path().join("received.sqlite");
    let receive = || {
        let mut c = fedsite();
        c.args([
            "receive",
            "--once",
            "--summaries",
            "--batch",
            "2",
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
        .arg(&records);
        c
    };
    let out = stdout_of(&mut receive());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "pulled 5, accepted 4 (6 records), rejected 1, redelivered 0, acknowledged 5", "{out}");
    // Latest per VM per month: VM 1 counts 6 h, not 1 + 6.
    assert!(lines[1].starts_with("VO"), "{out}");
    let row = |vo: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(vo))
            .unwrap_or_else(|| panic!("{vo} in {out}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row("vo.odd.org")[1..],
        ["2026-03", "3", "10.0", "5.0"],
        "VMs 1 (6 h), 3 (3 h), 5 (1 h), and the stranger's 4 not at all: {out}"
    );
    assert_eq!(row("vo.even.org")[1..], ["2026-03", "2", "3.0", "1.5"], "{out}");
    assert_eq!(a.subscription_offset(DEFAULT_PROJECT, DEFAULT_SUBSCRIPTION), Some(5), "all acknowledged");

    let store = RecordStore::open(&records).unwrap();
    let c = store.counts().unwrap();
    assert_eq!((c.messages, c.cloud_records, c.rejected, c.redeliveries), (4, 5, 1, 0));
    let rejects = store.rejects().unwrap();
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0].1, "00000000/m2");
    assert!(rejects[0].0.contains("Signer not in valid DNs list: /C=XX/O=Test/CN=other.example.org"), "{rejects:?}");
    drop(store);

    // Drained: a second run pulls nothing and changes nothing.
    let again = stdout_of(&mut receive());
    assert_eq!(
        again.lines().next().unwrap(),
        "pulled 0, accepted 0 (0 records), rejected 0, redelivered 0, acknowledged 0"
    );
    assert_eq!(RecordStore::open(&records).unwrap().counts().unwrap().messages, 4);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_status_json_reports_counts_oldest_locks_and_quarantine_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(dir.path()).await;
    let a = sim.ams().unwrap();
    let spool = dir.path().join("outgoing");
    let q = QueueSimple::open(&spool).unwrap();
    let before = Utc::now().timestamp();
    // The last two are messages APEL's loader refuses (a cloud record with no SiteName and a
    // VMUUID that is not one): the send quarantines them with the rule, never sends them.
    let names: Vec<String> = (0..4)
        .map(|i| {
            let b = if i < 2 { body(&[record(i, 1)]) } else { b"APEL-cloud-message: v0.4\nVMUUID: x\n%%\n".to_vec() };
            q.add(&b).unwrap().to_string()
        })
        .collect();
    let after = Utc::now().timestamp();
    // Lock the good ones first so the send skips them.
    assert!(q.lock(&names[0], true).unwrap() && q.lock(&names[1], true).unwrap());
    let sent = fedsite()
        .args([
            "send",
            "--ams-url",
            &a.url(),
            "--authn-url",
            &a.authn_url(),
            "--project",
            DEFAULT_PROJECT,
            "--topic",
            DEFAULT_TOPIC,
        ])
        .arg("--cert")
        .arg(a.client_cert_path())
        .arg("--key")
        .arg(a.client_key_path())
        .arg("--ca")
        .arg(a.ca_pem_path())
        .arg("--spool")
        .arg(&spool)
        .output()
        .unwrap();
    // Quarantined and skipped elements: not everything was sent.
    assert_eq!(sent.status.code(), Some(1), "{}", String::from_utf8_lossy(&sent.stderr));
    assert!(String::from_utf8_lossy(&sent.stdout).contains("sent 0,"));
    assert!(q.unlock(&names[1], true).unwrap());
    let out = stdout_of(fedsite().args(["spool", "status", "--json"]).arg("--spool").arg(&spool));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["elements"], 2, "{out}");
    assert_eq!(v["locked"], 1, "{out}");
    assert_eq!(v["temporary"], 0);
    assert_eq!(v["spool"], spool.to_str().unwrap());
    assert_eq!(v["quarantine"], format!("{}.quarantine", spool.display()));
    assert_eq!(v["quarantined"], 2);
    assert_eq!(v["oldest"]["element"], names[0].as_str());
    let added = chrono::DateTime::parse_from_rfc3339(v["oldest"]["added"].as_str().unwrap()).unwrap().timestamp();
    assert!((before..=after).contains(&added), "{added} in {before}..={after}");
    let reasons = v["quarantine_reasons"].as_array().unwrap();
    let quarantined: Vec<&str> = reasons.iter().map(|r| r["element"].as_str().unwrap()).collect();
    assert_eq!(quarantined, [names[2].replace('/', "_"), names[3].replace('/', "_")]);
    for r in reasons {
        let reason = r["reason"].as_str().unwrap();
        assert!(reason.starts_with(messaging::sender::INVALID_REASON) && reason.contains("VMUUID"), "{reason}");
    }
    sim.stop().await;
}

/// One receive per store (issue #19): AMS acknowledgements are cumulative, so a second puller
/// could acknowledge what the first has not stored. A second `fedsite receive` into a held
/// store exits 75 at once and pulls nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_receive_into_the_same_store_exits_75_and_pulls_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(dir.path()).await;
    let a = sim.ams().unwrap();
    let records = dir.path().join("received.sqlite");
    let held = messaging::receiver::lock_store(&records, false, std::time::Duration::ZERO).unwrap();
    let dns = dir.path().join("dns");
    std::fs::write(&dns, format!("{TEST_CLIENT_DN}\n")).unwrap();
    let out = fedsite()
        .args(["receive", "--ams-url", &a.url(), "--project", DEFAULT_PROJECT, "--subscription", DEFAULT_SUBSCRIPTION])
        .args(["--token", &a.token("receiver").unwrap(), "--once"])
        .arg("--capath")
        .arg(a.ca_pem_path())
        .arg("--dns")
        .arg(&dns)
        .arg("--records")
        .arg(&records)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(75), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by another fedsite run"));
    assert_eq!(a.counts().pull_requests, 0, "nothing pulled");
    drop(held);
    sim.stop().await;
}
