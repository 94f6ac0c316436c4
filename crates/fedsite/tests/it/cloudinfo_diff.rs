//! Differential test: the real cloud-info-provider 1.2 (from the peers'
//! venv) and `fedsite info` describe the same simulated site; the two JSON
//! documents must be byte-identical once `CreationTime` values are masked.
//! The site has a share whose credentials fail (endpoint `warning`, the
//! other shares still published).

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::*;

const ROBOT_ENV: [(&str, &str); 4] = [
    ("OS_AUTH_TYPE", "password"),
    ("OS_USERNAME", "robot"),
    ("OS_PASSWORD", "robot-secret"),
    ("OS_USER_DOMAIN_NAME", "Default"),
];

pub async fn start_cloudinfo_sim() -> sim::SimHandle {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cloudinfo-site.toml");
    let scenario = sim::ScenarioSpec::load(&path).unwrap_or_else(|e| panic!("{e}")).generate();
    sim::start(sim::SimConfig::new(scenario)).await.expect("starting the sim")
}

/// sites/SIM-CLOUD.yaml: two working VO shares around one that fails.
fn site_yaml(sim: &sim::SimHandle) -> String {
    format!(
        "gocdb: {site}\nendpoint: {ep}\nimages:\n  sync: true\nvos:\n  - name: vo.access.egi.eu\n    auth:\n      project_id: aaaa0000000000000000000000000001\n  - name: vo.locked.eu\n    auth:\n      project_id: cccc0000000000000000000000000003\n  - name: biomed\n    auth:\n      project_id: bbbb0000000000000000000000000002\n",
        site = sim::gocdb::SITE_NAME,
        ep = sim.auth_url(),
    )
}

/// Every `"CreationTime": "<iso time>"` value replaced by `T`.
fn mask_times(doc: &str) -> String {
    common::mask_creation_time(doc.as_bytes())
}

async fn run_original(dir: &Path, sim: &sim::SimHandle, extra: &[&str], envs: &[(&str, &str)]) -> Output {
    let launcher = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/run_cloud_info_provider.py");
    let site = dir.join("site.yaml");
    let gocdb = format!("{}/gocdb/gocdbpi/public/", sim.base_url());
    let mut args = vec![launcher.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push(site.to_str().unwrap());
    let mut all: Vec<(&str, &str)> = ROBOT_ENV.to_vec();
    all.push(("FEDSITE_GOCDB_URL", &gocdb));
    all.extend_from_slice(envs);
    run_venv("python", &args, &all, Some(dir), Duration::from_secs(180)).await
}

async fn run_fedsite(dir: &Path, sim: &sim::SimHandle, extra: &[&str], envs: &[(&str, &str)]) -> Output {
    let gocdb = format!("{}/gocdb/gocdbpi/public/", sim.base_url());
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_fedsite"));
    cmd.arg("info").arg(dir.join("site.yaml")).args(["--gocdb-url", &gocdb]).args(extra);
    cmd.current_dir(dir).env_remove("OS_CLOUD").env("FEDSITE_LOG", "warn");
    for (k, v) in ROBOT_ENV.iter().chain(envs) {
        cmd.env(k, v);
    }
    let out =
        tokio::time::timeout(Duration::from_secs(120), cmd.output()).await.expect("fedsite info timed out").unwrap();
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn assert_same(original: &str, ours: &str) {
    if let Ok(dir) = std::env::var("FEDSITE_DUMP_DIR") {
        let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        std::fs::write(format!("{dir}/original-{n}.json"), original).unwrap();
        std::fs::write(format!("{dir}/fedsite-{n}.json"), ours).unwrap();
    }
    let (a, b) = (mask_times(original), mask_times(ours));
    if a != b {
        let ja: serde_json::Value = serde_json::from_str(&a).expect("original JSON");
        let jb: serde_json::Value = serde_json::from_str(&b).expect("fedsite JSON");
        panic!(
            "documents differ (as JSON too: {})\n--- cloud-info-provider\n{a}\n--- fedsite\n{b}",
            if ja == jb { "no, only bytes" } else { "yes" }
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_info_provider_and_fedsite_info_write_the_same_document() {
    let sim = start_cloudinfo_sim().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("site.yaml"), site_yaml(&sim)).unwrap();

    let original = run_original(dir.path(), &sim, &[], &[]).await;
    original.assert_success("cloud-info-provider-service");
    let ours = run_fedsite(dir.path(), &sim, &[], &[]).await;
    ours.assert_success("fedsite info");
    assert_same(&original.stdout, &ours.stdout);

    // What the shared document says (so a change on both sides still shows).
    let doc: serde_json::Value = serde_json::from_str(&ours.stdout).unwrap();
    let ep = &doc["CloudComputingEndpoint"][0];
    assert_eq!(ep["HealthState"], "warning");
    assert_eq!(ep["HealthStateInfo"], "An unknown exception occurred.");
    assert_eq!(ep["InterfaceVersion"], "2.0");
    assert_eq!(ep["IssuerCA"], "UNKNOWN");
    let shares: Vec<&str> = doc["Share"].as_array().unwrap().iter().map(|s| s["Name"].as_str().unwrap()).collect();
    assert_eq!(
        shares,
        [
            "vo.access.egi.eu - aaaa0000000000000000000000000001 share",
            "biomed - bbbb0000000000000000000000000002 share"
        ]
    );
    assert_eq!(doc["AccessPolicy"][0]["Rule"], serde_json::json!(["VO:vo.access.egi.eu", "VO:biomed"]));
    let svc = &doc["CloudComputingService"][0];
    assert_eq!(svc["OtherInfo"], serde_json::json!({"gocdb_id": sim::gocdb::SERVICE_ID, "site_name": "SIM-CLOUD"}));
    assert_eq!(svc["Complexity"], "endpointType=1,share=2");
    // vo-a: ACTIVE + ERROR running, SHUTOFF halted, SUSPENDED; vo-b: 1 ACTIVE.
    assert_eq!((svc["TotalVM"].as_i64(), svc["RunningVM"].as_i64()), (Some(5), Some(3)));
    assert_eq!((svc["HaltedVM"].as_i64(), svc["SuspendedVM"].as_i64()), (Some(1), Some(1)));
    // Manager: the last share's maxima (vo-b sees the private 32-vCPU flavor), minima 0.
    let mgr = &doc["CloudComputingManager"][0];
    assert_eq!((mgr["InstanceMaxCPU"].as_i64(), mgr["InstanceMinCPU"].as_i64()), (Some(32), Some(0)));
    let accs: Vec<&str> =
        doc["CloudComputingVirtualAccelerator"].as_array().unwrap().iter().map(|a| a["ID"].as_str().unwrap()).collect();
    assert_eq!(accs, ["g2_gpu", "hpc_gpu", "g2_gpu", "hpc_gpu"]);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_select_flavors_appdb_images_property_keys_and_auditor_match_too() {
    let sim = start_cloudinfo_sim().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("site.yaml"), site_yaml(&sim)).unwrap();
    let clouds = dir.path().join("clouds.yaml");
    common::write_private(&clouds, sim.clouds_yaml());
    let clouds_s = clouds.to_str().unwrap().to_string();
    let envs = [("OS_CLIENT_CONFIG_FILE", clouds_s.as_str())];
    let args = [
        "--select-flavors",
        "public",
        "--only-appdb-images",
        "--property-flavor-gpu-vendor",
        "Accelerator:Model",
        "--auditor-role-cloud",
        "sim",
    ];
    let original = run_original(dir.path(), &sim, &args, &envs).await;
    original.assert_success("cloud-info-provider-service");
    let ours = run_fedsite(dir.path(), &sim, &args, &envs).await;
    ours.assert_success("fedsite info");
    assert_same(&original.stdout, &ours.stdout);
    let doc: serde_json::Value = serde_json::from_str(&ours.stdout).unwrap();
    assert_eq!(doc["CloudComputingEndpoint"][0]["OtherInfo"], serde_json::json!({"auditor_role": true}));
    let images: Vec<&str> =
        doc["CloudComputingImage"].as_array().unwrap().iter().map(|i| i["ID"].as_str().unwrap()).collect();
    assert!(!images.contains(&"22222222-bbbb-4bbb-8bbb-000000000002"), "no marketplace URL: {images:?}");
    assert!(!doc["CloudComputingInstanceType"].as_array().unwrap().iter().any(|f| f["ID"] == "p1"));
    assert_eq!(doc["CloudComputingVirtualAccelerator"][0]["Vendor"], "Tesla V100");
    sim.stop().await;
}

/// The original's CA probe (`get_endpoint_ca_information`) on `url`.
async fn original_ca_info(url: &str, insecure: bool) -> (String, Vec<String>) {
    let code = "import json, sys\nfrom cloud_info_provider.providers.utils import get_endpoint_ca_information as g\n\
                print(json.dumps(g(sys.argv[1], sys.argv[2] == 'insecure')))";
    let out = run_venv(
        "python",
        &["-c", code, url, if insecure { "insecure" } else { "verify" }],
        &[],
        None,
        Duration::from_secs(60),
    )
    .await;
    out.assert_success("get_endpoint_ca_information");
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let cas = v["trusted_cas"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
    (v["issuer"].as_str().unwrap().to_string(), cas)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tls_probe_reads_the_issuer_and_client_cas_as_the_original() {
    let certs = tempfile::tempdir().unwrap();
    let scenario = sim::scenario::builtin("tiny").unwrap().generate();
    let mut cfg = sim::SimConfig::new(scenario);
    cfg.ams = Some(sim::AmsConfig::new(certs.path()));
    let sim = sim::start(cfg).await.unwrap();
    // The X.509 token exchange asks for (optional) client certificates.
    let url = sim.ams_authn_url().unwrap();
    let ca = sim.ams_ca_pem_path().unwrap();
    let timeout = Duration::from_secs(20);

    let (issuer, cas) = original_ca_info(&url, true).await;
    assert!(issuer.starts_with('/') && issuer.contains("CN="), "{issuer}");
    assert!(!cas.is_empty() && cas.iter().all(|c| c.starts_with('/')), "{cas:?}");
    let ours = cloudinfo::tls::probe(&url, true, None, timeout).await;
    assert_eq!((ours.issuer.as_str(), &ours.trusted_cas), (issuer.as_str(), &cas));
    // Verified against the sim CA: the same facts.
    assert_eq!(cloudinfo::tls::probe(&url, false, Some(&ca), timeout).await, ours);
    // Not verifiable with the system CAs: UNKNOWN on both sides.
    let (issuer, cas) = original_ca_info(&url, false).await;
    assert_eq!((issuer.as_str(), cas), ("UNKNOWN", vec!["UNKNOWN".to_string()]));
    assert_eq!(cloudinfo::tls::probe(&url, false, None, timeout).await, cloudinfo::tls::CaInfo::unknown());
    // Plain HTTP: UNKNOWN without a handshake.
    assert_eq!(cloudinfo::tls::probe(&sim.auth_url(), true, None, timeout).await, cloudinfo::tls::CaInfo::unknown());
    sim.stop().await;
}
