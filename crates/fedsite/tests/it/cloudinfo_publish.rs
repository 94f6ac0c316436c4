//! `fedsite info` publishing and options: the document uploaded to the sim's
//! Swift reads back equal to the one written; a failing share is skipped
//! (or fatal with --exit-on-share-errors); the documented fixes change only
//! what they say.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::Output;

async fn start() -> sim::SimHandle {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cloudinfo-site.toml");
    let scenario = sim::ScenarioSpec::load(&path).unwrap_or_else(|e| panic!("{e}")).generate();
    sim::start(sim::SimConfig::new(scenario)).await.expect("starting the sim")
}

fn write_site(dir: &Path, sim: &sim::SimHandle) {
    std::fs::write(
        dir.join("site.yaml"),
        format!(
            "gocdb: {}\nendpoint: {}\nvos:\n  - name: vo.access.egi.eu\n    auth:\n      project_id: aaaa0000000000000000000000000001\n  - name: vo.locked.eu\n    auth:\n      project_id: cccc0000000000000000000000000003\n  - name: biomed\n    auth:\n      project_id: bbbb0000000000000000000000000002\n",
            sim::gocdb::SITE_NAME,
            sim.auth_url()
        ),
    )
    .unwrap();
    common::write_private(dir.join("clouds.yaml"), sim.clouds_yaml());
}

async fn info(dir: &Path, sim: &sim::SimHandle, extra: &[&str]) -> Output {
    let gocdb = format!("{}/gocdb/gocdbpi/public/", sim.base_url());
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_fedsite"));
    cmd.arg("info").arg(dir.join("site.yaml")).args(["--gocdb-url", &gocdb]).args(extra);
    cmd.current_dir(dir)
        .env_remove("OS_CLOUD")
        .env("FEDSITE_LOG", "warn")
        .env("OS_CLIENT_CONFIG_FILE", dir.join("clouds.yaml"))
        .env("OS_USERNAME", "robot")
        .env("OS_PASSWORD", "robot-secret")
        .env("OS_USER_DOMAIN_NAME", "Default");
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output()).await.expect("timed out").unwrap();
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_uploaded_to_swift_reads_back_equal() {
    let sim = start().await;
    let dir = tempfile::tempdir().unwrap();
    write_site(dir.path(), &sim);
    let out_file = dir.path().join("site.json");
    let out = info(
        dir.path(),
        &sim,
        &["--output", out_file.to_str().unwrap(), "--swift-container", "cloud-info", "--swift-cloud", "sim"],
    )
    .await;
    out.assert_success("fedsite info --swift-container");
    assert_eq!(out.stdout, "", "nothing on stdout when publishing elsewhere");
    let written = std::fs::read(&out_file).unwrap();
    assert!(written.ends_with(b"}\n"));

    // Read it back through Swift as another client would (the `sim` cloud's account).
    let cfg = openstack::CloudConfig::from_clouds_yaml(&sim.clouds_yaml(), None, "sim", "clouds.yaml").unwrap();
    let session = openstack::Session::connect(&cfg).await.unwrap();
    let store = openstack::swift::ObjectStore::new(&session).await.unwrap();
    assert!(
        store.account_url.ends_with(&format!("/object-store/v1/AUTH_{}", session.project_id().await.unwrap().unwrap()))
    );
    let back = store.get_object("cloud-info", "SIM-CLOUD.json").await.unwrap();
    assert_eq!(back.data, written, "Swift holds exactly the document written");
    assert_eq!(back.content_type.as_deref(), Some("application/json"));
    let doc: serde_json::Value = serde_json::from_slice(&back.data).unwrap();
    assert_eq!(doc["Share"].as_array().unwrap().len(), 2);

    // A second run replaces the object (container already there: 202).
    let out = info(dir.path(), &sim, &["--swift-container", "cloud-info", "--swift-cloud", "sim"]).await;
    out.assert_success("second upload");
    let again = store.get_object("cloud-info", "SIM-CLOUD.json").await.unwrap();
    assert_ne!(again.data, written, "CreationTime moved on");
    assert_eq!(again.etag.as_deref().map(str::len), Some(32));

    // The robot (member of vo-a only) cannot write into the admin project's account.
    let robot = openstack::CloudConfig::from_clouds_yaml(
        &format!(
            "clouds:\n  robot:\n    auth:\n      auth_url: {}\n      username: robot\n      password: robot-secret\n      user_domain_name: Default\n      project_id: aaaa0000000000000000000000000001\n",
            sim.auth_url()
        ),
        None,
        "robot",
        "clouds.yaml",
    )
    .unwrap();
    let rs = openstack::Session::connect(&robot).await.unwrap();
    let mut other = openstack::swift::ObjectStore::new(&rs).await.unwrap();
    other.account_url = store.account_url.clone();
    let e = other.put_object("cloud-info", "x.json", b"{}".to_vec(), "application/json").await.unwrap_err();
    assert_eq!(e.status(), Some(403), "{e}");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_share_warns_or_fails_and_the_fixes_change_only_their_fields() {
    let sim = start().await;
    let dir = tempfile::tempdir().unwrap();
    write_site(dir.path(), &sim);

    let out = info(dir.path(), &sim, &["--exit-on-share-errors"]).await;
    assert!(!out.status.success(), "--exit-on-share-errors must fail: {}", out.stdout);
    assert!(out.stderr.contains("share of VO vo.locked.eu"), "{}", out.stderr);
    assert_eq!(out.stdout, "");

    let plain = info(dir.path(), &sim, &[]).await;
    plain.assert_success("fedsite info");
    let fixed =
        info(dir.path(), &sim, &["--fix-manager-sizes", "--publish-extra-properties", "--share-error-details"]).await;
    fixed.assert_success("fedsite info with fixes");
    let p: serde_json::Value = serde_json::from_str(&plain.stdout).unwrap();
    let f: serde_json::Value = serde_json::from_str(&fixed.stdout).unwrap();
    assert!(plain.stderr.contains("vo.locked.eu"), "the skipped share is logged: {}", plain.stderr);
    assert_eq!(p["CloudComputingEndpoint"][0]["HealthState"], "warning");
    assert_eq!(f["CloudComputingEndpoint"][0]["HealthState"], "warning");
    let detail = f["CloudComputingEndpoint"][0]["HealthStateInfo"].as_str().unwrap();
    assert!(detail.contains("401") && detail.contains("requires authentication"), "{detail}");
    // Manager: max over shares (vo-b's 32 vCPUs), min = the smallest flavor (1 vCPU, 2048 MiB).
    let m = &f["CloudComputingManager"][0];
    assert_eq!(
        (m["InstanceMaxCPU"].as_i64(), m["InstanceMinCPU"].as_i64(), m["InstanceMinRAM"].as_i64()),
        (Some(32), Some(1), Some(2048))
    );
    assert_eq!(p["CloudComputingManager"][0]["InstanceMinCPU"].as_i64(), Some(0));
    // InfiniBand only where the value matches ("true", not "yes").
    let nets: Vec<(String, Option<String>)> = f["CloudComputingInstanceType"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["ID"].as_str().unwrap().to_string(), t["NetworkInfo"].as_str().map(String::from)))
        .collect();
    assert!(nets.contains(&("g2".into(), Some("infiniband".into()))), "{nets:?}");
    assert!(nets.contains(&("hpc".into(), None)), "{nets:?}");
    assert!(p["CloudComputingInstanceType"].as_array().unwrap().iter().all(|t| t.get("NetworkInfo").is_none()));
    let acc = &f["CloudComputingVirtualAccelerator"][0];
    assert_eq!((acc["Memory"].as_i64(), acc["VirtualizationType"].as_str()), (Some(16384), Some("pci-passthrough")));
    let img = f["CloudComputingImage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["ID"] == "11111111-aaaa-4aaa-8aaa-000000000001")
        .unwrap();
    assert_eq!(img["OtherInfo"]["gpu_driver"], "550.54");
    assert_eq!(img["OtherInfo"]["gpu_cuda"], "12.4");
    // Everything else is the same document.
    let strip = |mut v: serde_json::Value| {
        for (class, keys) in [
            ("CloudComputingManager", &["InstanceMinCPU", "InstanceMinRAM", "CreationTime"][..]),
            ("CloudComputingEndpoint", &["HealthStateInfo", "CreationTime"][..]),
            ("CloudComputingInstanceType", &["NetworkInfo", "CreationTime"][..]),
            ("CloudComputingVirtualAccelerator", &["Memory", "VirtualizationType", "CreationTime"][..]),
        ] {
            for o in v[class].as_array_mut().unwrap() {
                for k in keys {
                    o.as_object_mut().unwrap().remove(*k);
                }
            }
        }
        for o in v["CloudComputingImage"].as_array_mut().unwrap() {
            if let Some(oi) = o.get_mut("OtherInfo").and_then(|x| x.as_object_mut()) {
                oi.remove("gpu_driver");
                oi.remove("gpu_cuda");
            }
        }
        for class in ["CloudComputingService", "Share", "CloudComputingImage", "MappingPolicy", "AccessPolicy"] {
            for o in v[class].as_array_mut().unwrap() {
                o.as_object_mut().unwrap().remove("CreationTime");
            }
        }
        v
    };
    assert_eq!(strip(p), strip(f));
    sim.stop().await;
}
