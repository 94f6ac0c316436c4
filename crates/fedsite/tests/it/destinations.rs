//! Record kinds to their own destinations, end to end against the simulated site and AMS:
//! a fedsite.toml with a cloud and a storage `[[destination]]` → `accounting extract` (one
//! spool each) → `send` (each spool to its topic) → the sim AMS's topics, where the storage
//! topic holds only StAR storage messages, the cloud topic none, and every record of the
//! ledger arrives exactly once; one destination failing does not stop the other.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use apel::RecordKind;
use ledger::{Ledger, SnapshotFilter};
use sim::ams::{DEFAULT_PROJECT, DEFAULT_TOPIC};

const FEDSITE: &str = env!("CARGO_BIN_EXE_fedsite");
const STORAGE_TOPIC: &str = "eu-egi-storage-accounting";
/// tiny's two tagged projects with a VO (proj1, egi-proj).
const PROJECTS: [&str; 2] = ["0b9f3b2a1c8d4e6f9a0b1c2d3e4f5a6b", "e91c0a2f4b7c4d1e8f9a0b1c2d3e4f51"];

async fn start_sim(dir: &Path) -> sim::SimHandle {
    let scenario = sim::scenario::builtin("tiny").unwrap().generate();
    let mut cfg = sim::SimConfig::new(scenario);
    let mut ams = sim::AmsConfig::new(dir.join("ams"));
    ams.topics.push(sim::ams::AmsTopicSpec { name: STORAGE_TOPIC.into(), acl: vec!["sender".into()] });
    cfg.ams = Some(ams);
    sim::start(cfg).await.expect("sim with AMS starts")
}

/// fedsite.toml for the sim: cloud, ip and accelerator records to the cloud topic, storage
/// records to the storage topic (`storage_topic`), each with its own spool.
fn write_config(sim: &sim::SimHandle, d: &Path, storage_topic: &str) -> std::path::PathBuf {
    let a = sim.ams().unwrap();
    let q = |p: &Path| toml::Value::String(p.display().to_string()).to_string();
    let text = format!(
        r#"[site]
name = "TEST-SITE"

[cloud]
os_cloud = "sim-accounting"
clouds_yaml = {clouds}

[accounting]
tag = ""
projects = ["{p1}", "{p2}"]

[ledger]
path = {ledger}

[ams]
url = "{url}"
authn_url = "{authn}"
project = "{project}"
certificate = {cert}
key = {key}
ca = {ca}

[[destination]]
name = "compute"
record_types = ["cloud", "ip", "accelerator"]
spool = {cloud_spool}
topic = "{cloud_topic}"

[[destination]]
name = "block"
record_types = ["storage"]
spool = {storage_spool}
topic = "{storage_topic}"
"#,
        clouds = q(&d.join("clouds.yaml")),
        p1 = PROJECTS[0],
        p2 = PROJECTS[1],
        ledger = q(&d.join("ledger.sqlite")),
        url = a.url(),
        authn = a.authn_url(),
        project = DEFAULT_PROJECT,
        cert = q(&a.client_cert_path()),
        key = q(&a.client_key_path()),
        ca = q(&a.ca_pem_path()),
        cloud_spool = q(&d.join("spool-compute")),
        cloud_topic = DEFAULT_TOPIC,
        storage_spool = q(&d.join("spool-block")),
    );
    let path = d.join("fedsite.toml");
    common::write_private(&path, text);
    path
}

async fn fedsite(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(FEDSITE)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("OS_CLOUD")
        .env_remove("FEDSITE_LEDGER")
        .env_remove("FEDSITE_SPOOL")
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// The kind of every message of a spool.
fn spool_kinds(spool: &Path) -> Vec<RecordKind> {
    common::dirq_elements(spool).iter().map(|p| apel::parse_message(&std::fs::read(p).unwrap()).unwrap().0).collect()
}

async fn extract(sim: &sim::SimHandle, d: &Path, storage_topic: &str) -> std::path::PathBuf {
    common::write_private(d.join("clouds.yaml"), sim.clouds_yaml());
    let config = write_config(sim, d, storage_topic);
    let (code, out, err) =
        fedsite(&config, &["accounting", "extract", "--from", "2023-05-01", "--to", "2023-06-01"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    config
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_records_arrive_only_on_their_own_topic_and_every_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sim = start_sim(d).await;
    let config = extract(&sim, d, STORAGE_TOPIC).await;

    // Each kind in its destination's spool.
    let compute = spool_kinds(&d.join("spool-compute"));
    let block = spool_kinds(&d.join("spool-block"));
    assert!(compute.contains(&RecordKind::Cloud), "{compute:?}");
    assert!(!compute.contains(&RecordKind::Storage), "{compute:?}");
    assert!(!block.is_empty() && block.iter().all(|k| *k == RecordKind::Storage), "{block:?}");

    let (code, out, err) = fedsite(&config, &["send", "--retry-initial-ms", "100"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("destination compute: sent") && out.contains("destination block: sent"), "{out}");
    assert!(common::dirq_elements(&d.join("spool-compute")).is_empty());
    assert!(common::dirq_elements(&d.join("spool-block")).is_empty());

    let on_storage = common::ams_published(&sim, STORAGE_TOPIC);
    let on_cloud = common::ams_published(&sim, DEFAULT_TOPIC);
    assert!(!on_storage.is_empty() && on_storage.iter().all(|(k, _)| *k == RecordKind::Storage), "{on_storage:?}");
    assert!(on_cloud.iter().all(|(k, _)| *k != RecordKind::Storage), "{on_cloud:?}");
    assert!(on_cloud.iter().any(|(k, _)| *k == RecordKind::Cloud));

    // Every record the ledger holds (energy aside: not extracted here) arrived exactly once.
    let ledger = Ledger::open(d.join("ledger.sqlite")).unwrap();
    let mut want: BTreeMap<(String, String), usize> = BTreeMap::new();
    for s in ledger.latest_snapshots(&SnapshotFilter::default()).unwrap() {
        *want.entry((s.snapshot.kind.clone(), s.snapshot.key.clone())).or_default() += 1;
    }
    let mut got: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (kind, key) in on_storage.into_iter().chain(on_cloud) {
        *got.entry((kind.as_str().to_string(), key)).or_default() += 1;
    }
    assert_eq!(got, want, "each record published once, on its own topic");
    assert!(want.keys().any(|(k, _)| k == "storage") && want.keys().any(|(k, _)| k == "cloud"));
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_destination_failing_does_not_stop_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sim = start_sim(d).await;
    // The storage destination names a topic AMS does not have: its run stops.
    let config = extract(&sim, d, "no-such-topic").await;
    let (code, out, err) = fedsite(&config, &["send", "--retry-initial-ms", "100"]).await;
    assert_ne!(code, 0, "{out}\n{err}");
    assert!(err.contains("destination block"), "the failing destination is named\n{err}");
    // The compute destination was delivered all the same; the storage spool is kept.
    assert!(common::dirq_elements(&d.join("spool-compute")).is_empty(), "{out}\n{err}");
    assert!(!common::dirq_elements(&d.join("spool-block")).is_empty());
    assert!(common::ams_published(&sim, DEFAULT_TOPIC).iter().any(|(k, _)| *k == RecordKind::Cloud));
    assert!(common::ams_published(&sim, STORAGE_TOPIC).is_empty());
    // `spool status --destination` shows what is left there.
    let (code, out, err) = fedsite(&config, &["spool", "status", "--destination", "block", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["spool"], d.join("spool-block").display().to_string());
    assert_eq!(v["elements"].as_u64().unwrap() as usize, common::dirq_elements(&d.join("spool-block")).len());

    // `--destination` sends one of them.
    let (code, out, err) = fedsite(&config, &["send", "--destination", "compute"]).await;
    assert_eq!(code, 0, "nothing left to send there\n{out}\n{err}");
    assert!(out.contains("destination compute: sent 0") && !out.contains("block"), "{out}");
    sim.stop().await;
}
