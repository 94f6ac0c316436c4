//! `fedsite central run --task accounting,send` against a simulated federation of three real
//! site files (one with application credentials), two of them opted in to central
//! accounting and sending to a simulated AMS: each run type in its own spool per site,
//! storage records only on the storage topic, every record of every site's ledger published
//! exactly once, checkpoints in each site's own namespace of the ledger (a second run
//! spools nothing new), the site that did not opt in skipped.

use std::collections::BTreeMap;
use std::path::Path;

use apel::RecordKind;
use ledger::SnapshotFilter;
use serde_json::Value;
use sim::ams::{DEFAULT_PROJECT, DEFAULT_TOPIC};

use crate::common;

const STORAGE_TOPIC: &str = "eu-egi-storage-accounting";
const OPTED_IN: [&str; 2] = ["CENI", "CREODIAS"];

fn private(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    common::write_private(&p, text);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opted_in_sites_are_extracted_per_vo_and_sent_each_run_type_to_its_topic_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let folder = d.join("real");
    std::fs::create_dir_all(&folder).unwrap();
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/catchall-2026-07/sites");
    for f in ["CENI.yaml", "CREODIAS.yaml", "ELKH-CLOUD.yaml"] {
        std::fs::copy(real.join(f), folder.join(f)).unwrap();
    }
    let fed = sim::federation::start(sim::federation::FederationConfig {
        sites_dir: folder,
        count: 0,
        out_dir: d.join("federation"),
        template: sim::scenario::builtin("tiny").unwrap().generate().anchored_at(chrono::Utc::now()),
        profiles: Default::default(),
        faults: Default::default(),
    })
    .await
    .unwrap();
    // One AMS with both topics.
    let mut cfg = sim::SimConfig::new(sim::scenario::builtin("tiny").unwrap().generate());
    let mut ams_cfg = sim::AmsConfig::new(d.join("ams"));
    ams_cfg.topics.push(sim::ams::AmsTopicSpec { name: STORAGE_TOPIC.into(), acl: vec!["sender".into()] });
    cfg.ams = Some(ams_cfg);
    let ams = sim::start(cfg).await.unwrap();
    let a = ams.ams().unwrap();
    let ams_host = a.url().trim_start_matches("https://").to_string();

    // Two sites opt in, with the AMS host in their file; ELKH-CLOUD does not.
    for id in OPTED_IN {
        let path = fed.sites_dir.join(format!("{id}.yaml"));
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            format!("{text}accounting:\n  enabled: true\n  site_name: CENTRAL-{id}\n  ams_host: \"{ams_host}\"\n"),
        )
        .unwrap();
    }
    let secret = private(d, "client-secret", &format!("{}\n", sim::OIDC_CLIENT_SECRET));
    let run = |tasks: &str| {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_fedsite"));
        c.args(["central", "run", "--json", "--task", tasks, "--client-id", sim::OIDC_CLIENT_ID])
            .arg("--sites-dir")
            .arg(&fed.sites_dir)
            .arg("--secrets-dir")
            .arg(&fed.secrets_dir)
            .arg("--checkin-discovery")
            .arg(format!("{}/.well-known/openid-configuration", fed.issuer()))
            .arg("--client-secret-file")
            .arg(&secret)
            .arg("--info-dir")
            .arg(d.join("info"))
            .arg("--accounting-ledger")
            .arg(d.join("ledger"))
            .arg("--spool-dir")
            .arg(d.join("spool"))
            .args(["--ams-project", DEFAULT_PROJECT])
            .arg("--ams-cert")
            .arg(a.client_cert_path())
            .arg("--ams-key")
            .arg(a.client_key_path())
            .arg("--ams-ca")
            .arg(a.ca_pem_path())
            .args(["--ams-authn-url", &a.authn_url(), "--site-timeout", "120"]);
        c
    };
    let rows = |out: std::process::Output| -> Vec<Value> {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_str(&stdout).unwrap();
        v["results"].as_array().unwrap().clone()
    };
    let row = |rows: &[Value], site: &str, task: &str| -> Value {
        rows.iter().find(|r| r["site"] == site && r["task"] == task).cloned().unwrap_or_else(|| panic!("{rows:?}"))
    };

    let first = rows(run("accounting").output().await.unwrap());
    for id in OPTED_IN {
        let r = row(&first, id, "accounting");
        assert_eq!(r["outcome"], "ok", "{r}");
        // Each run type in its own spool: compute without storage, block with storage only.
        let kinds = |run: &str| -> Vec<RecordKind> {
            common::dirq_elements(&d.join("spool").join(id).join(run))
                .iter()
                .map(|p| apel::parse_message(&std::fs::read(p).unwrap()).unwrap().0)
                .collect()
        };
        let (compute, block) = (kinds("compute"), kinds("block"));
        assert!(compute.contains(&RecordKind::Cloud) && !compute.contains(&RecordKind::Storage), "{id}: {compute:?}");
        assert!(!block.is_empty() && block.iter().all(|k| *k == RecordKind::Storage), "{id}: {block:?}");
    }
    let skipped = row(&first, "ELKH-CLOUD", "accounting");
    assert_eq!(skipped["outcome"], "skipped", "{skipped}");
    assert!(skipped["detail"].as_str().unwrap().contains("accounting.enabled"), "{skipped}");
    assert!(!d.join("spool").join("ELKH-CLOUD").exists());

    let sent = rows(run("send").output().await.unwrap());
    for id in OPTED_IN {
        let r = row(&sent, id, "send");
        assert_eq!(r["outcome"], "ok", "{r}");
        for run in ["compute", "block"] {
            assert!(common::dirq_elements(&d.join("spool").join(id).join(run)).is_empty(), "{id} {run} sent");
        }
    }
    let on_storage = common::ams_published(&ams, STORAGE_TOPIC);
    let on_cloud = common::ams_published(&ams, DEFAULT_TOPIC);
    assert!(!on_storage.is_empty() && on_storage.iter().all(|(k, _)| *k == RecordKind::Storage), "{on_storage:?}");
    assert!(on_cloud.iter().any(|(k, _)| *k == RecordKind::Cloud));
    assert!(on_cloud.iter().all(|(k, _)| *k != RecordKind::Storage), "{on_cloud:?}");

    // Every record of every opted-in site's ledger (its own namespace) arrived exactly once.
    let mut want: BTreeMap<(String, String), usize> = BTreeMap::new();
    for id in OPTED_IN {
        let ledger = ledger::LedgerOptions {
            mode: ledger::OpenMode::MustExist,
            namespace: Some(id.into()),
            ..Default::default()
        }
        .open(d.join("ledger"))
        .unwrap();
        let snaps = ledger.latest_snapshots(&SnapshotFilter::default()).unwrap();
        assert!(snaps.iter().any(|s| s.snapshot.kind == "cloud"), "{id}: records extracted");
        assert!(snaps.iter().all(|s| s.snapshot.site == format!("CENTRAL-{id}")), "{id}: site_name honoured");
        let projects: std::collections::BTreeSet<&str> = snaps.iter().map(|s| s.snapshot.project_id.as_str()).collect();
        let site = fed.sites.iter().find(|s| s.id == id).unwrap();
        assert!(
            projects.iter().all(|p| site.shares.iter().any(|(_, sp)| sp == p)),
            "{id}: only the VO shares' projects: {projects:?}"
        );
        for s in snaps {
            *want.entry((s.snapshot.kind.clone(), s.snapshot.key.clone())).or_default() += 1;
        }
    }
    let first_cloud = on_cloud.len();
    let mut got: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (kind, key) in on_storage.into_iter().chain(on_cloud) {
        *got.entry((kind.as_str().to_string(), key)).or_default() += 1;
    }
    assert_eq!(got, want, "each record published once, on its own topic");

    // An hourly run doing both tasks: a site's send follows its accounting (the running
    // VMs' records, updated, are spooled and sent in the same run), each on its own topic.
    // Windows end on whole seconds: two seconds later the running VMs' records have grown.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let again = rows(run("accounting,send").output().await.unwrap());
    for id in OPTED_IN {
        assert_eq!(row(&again, id, "accounting")["outcome"], "ok");
        let r = row(&again, id, "send");
        assert_eq!(r["outcome"], "ok", "{r}");
        let detail = r["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!("{DEFAULT_TOPIC}: sent "))
                && !detail.contains(&format!("{DEFAULT_TOPIC}: sent 0,")),
            "the updated cloud records were sent: {r}"
        );
        for run in ["compute", "block"] {
            assert!(common::dirq_elements(&d.join("spool").join(id).join(run)).is_empty(), "{id} {run} sent");
        }
    }
    assert!(common::ams_published(&ams, STORAGE_TOPIC).iter().all(|(k, _)| *k == RecordKind::Storage));
    assert!(common::ams_published(&ams, DEFAULT_TOPIC).iter().all(|(k, _)| *k != RecordKind::Storage));
    assert!(common::ams_published(&ams, DEFAULT_TOPIC).len() > first_cloud, "a second version arrived");
    ams.stop().await;
    fed.stop().await;
}
