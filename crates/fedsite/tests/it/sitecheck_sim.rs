//! `fedsite check` against the simulated site: every family passes on a
//! healthy site (testdata/sitecheck/healthy.toml), and each breakage — a
//! service missing from the catalog, a closed port, a project without its VO
//! property, a stale spool, a certificate about to expire, a VM that never
//! becomes ACTIVE — fails its check with the right message and fix.

use crate::common;

use std::path::{Path, PathBuf};

use chrono::{Duration, Utc};
use serde_json::Value;

const HEALTHY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/sitecheck/healthy.toml");

fn healthy() -> sim::Scenario {
    sim::ScenarioSpec::load(HEALTHY).unwrap_or_else(|e| panic!("{e}")).generate()
}

struct Site {
    sim: sim::SimHandle,
    dir: tempfile::TempDir,
    clouds: PathBuf,
}

async fn start(scenario: sim::Scenario, ams: bool) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = sim::SimConfig::new(scenario);
    if ams {
        cfg.ams = Some(sim::AmsConfig::new(dir.path().join("ams")));
    }
    let sim = sim::start(cfg).await.expect("starting the sim");
    let clouds = dir.path().join("clouds.yaml");
    common::write_private(&clouds, sim.clouds_yaml());
    Site { sim, dir, clouds }
}

/// Runs `fedsite check --json <args>` against the site; (exit code, report).
async fn check(site: &Site, args: &[&str]) -> (i32, Value) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_fedsite"))
        .arg("check")
        .args(["--os-cloud", "sim", "--json", "--connect-timeout", "3"])
        .args(args)
        .env("OS_CLIENT_CONFIG_FILE", &site.clouds)
        .env("FEDSITE_LOG", "warn")
        .env_remove("OS_CLOUD")
        .output()
        .await
        .expect("running fedsite check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("fedsite check printed no JSON ({e}):\n{stdout}\n--- stderr\n{}", String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code().expect("exit code"), report)
}

fn get<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {report:#}"))
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_string()
}

/// A self-signed host certificate valid for `days`, key mode 0600.
fn host_cert(dir: &Path, days: i64) -> (PathBuf, PathBuf) {
    use chrono::Datelike;
    use std::os::unix::fs::PermissionsExt;
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["host.example.org".to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, "host.example.org");
    let from = Utc::now() - Duration::days(2);
    let to = Utc::now() + Duration::days(days);
    params.not_before = rcgen::date_time_ymd(from.year(), from.month() as u8, from.day() as u8);
    params.not_after = rcgen::date_time_ymd(to.year(), to.month() as u8, to.day() as u8);
    let cert = params.self_signed(&key).unwrap();
    let (c, k) = (dir.join(format!("hostcert-{days}.pem")), dir.join(format!("hostkey-{days}.pem")));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).unwrap();
    (c, k)
}

/// A ledger whose one message AMS took `age` ago.
fn ledger_sent(path: &Path, age: Duration) {
    let mut l = ledger::Ledger::open(path).unwrap();
    let msg = ledger::NewMessage {
        element: "5f000000/5f000000000000".into(),
        kind: "cloud".into(),
        created_at: Utc::now() - age,
        records: vec![],
    };
    l.record_message(&msg, None).unwrap();
    l.mark_sent(&msg.element, "ams-1").unwrap();
    drop(l);
    let db = rusqlite::Connection::open(path).unwrap();
    db.execute("UPDATE messages SET sent_at = ?1", [ledger::format_time(Utc::now() - age)]).unwrap();
}

/// A dirq element added `age` ago (its name carries the time).
fn spool_element(spool: &Path, age: Duration) {
    let t = (Utc::now() - age).timestamp() as u32;
    let dir = spool.join(format!("{:08x}", t - t % 60));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{t:08x}000001")), b"APEL-cloud-message: v0.4\n").unwrap();
}

fn glue(path: &Path, vos: &[&str]) {
    let policies: Vec<Value> = vos
        .iter()
        .map(|vo| serde_json::json!({"ID": format!("share_{vo}_Policy"), "Scheme": "org.glite.standard", "Rule": [format!("VO:{vo}")], "Associations": {"PolicyUserDomain": [vo]}}))
        .collect();
    std::fs::write(path, serde_json::to_vec(&serde_json::json!({"MappingPolicy": policies})).unwrap()).unwrap();
}

const VOS: [&str; 4] = ["--vo", "ops", "--vo", "vo.access.egi.eu"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_passes_on_a_healthy_site() {
    let site = start(healthy(), true).await;
    let d = site.dir.path();
    let (cert, key) = host_cert(d, 365);
    let ledger = d.join("ledger.sqlite");
    ledger_sent(&ledger, Duration::hours(5));
    let spool = d.join("outgoing");
    std::fs::create_dir_all(&spool).unwrap();
    spool_element(&spool, Duration::hours(1));
    let info = d.join("glue.json");
    glue(&info, &["ops", "vo.access.egi.eu"]);
    let ams_port = |u: String| u.rsplit(':').next().unwrap().to_string();
    let (p1, p2) = (ams_port(site.sim.ams_url().unwrap()), ams_port(site.sim.ams_authn_url().unwrap()));
    let ca = site.sim.ams_ca_pem_path().unwrap();
    let mut args: Vec<&str> = VOS.to_vec();
    args.extend([
        "--accounting-cloud",
        "sim-accounting",
        "--ams-host",
        "localhost",
        "--ams-port",
        &p1,
        "--ams-port",
        &p2,
        "--ams-ca",
        ca.to_str().unwrap(),
        "--ledger",
        ledger.to_str().unwrap(),
        "--spool",
        spool.to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--info",
        info.to_str().unwrap(),
        "--vm-timeout",
        "30",
        "--vm-poll",
        "0.2",
    ]);
    let (code, report) = check(&site, &args).await;
    let not_ok: Vec<&Value> = report["checks"].as_array().unwrap().iter().filter(|c| c["status"] != "ok").collect();
    assert!(not_ok.is_empty(), "not ok: {not_ok:#?}");
    assert_eq!((code, s(&report, "status")), (0, "ok".to_string()));
    let ids: Vec<String> = report["checks"].as_array().unwrap().iter().map(|c| s(c, "id")).collect();
    for want in [
        "catalog.identity",
        "catalog.compute",
        "catalog.volume",
        "catalog.image",
        "catalog.network",
        "ports.identity",
        "permissions.list-users",
        "permissions.list-projects",
        "permissions.projects",
        "projects.ops",
        "projects.vo.access.egi.eu",
        "flavors.benchmark",
        "flavors.accelerator",
        "accounting.last-send",
        "accounting.spool",
        "accounting.quarantine",
        "certificate.key-permissions",
        "certificate.key-matches",
        "certificate.expiry",
        "vm.start",
        "info.vos",
    ] {
        assert!(ids.iter().any(|i| i == want), "no {want} in {ids:?}");
    }
    assert!(ids.iter().any(|i| i == &format!("ams.{p1}")) && ids.iter().any(|i| i == &format!("ams.{p2}")), "{ids:?}");
    // The probe booted the monitoring image on the smallest flavor that fits it (m1.tiny's 512 MB does not).
    let vm = s(get(&report, "vm.start"), "message");
    assert!(
        vm.contains("EGI Small Ubuntu for Monitoring") && vm.contains("flavor m1.small") && vm.contains("ACTIVE in"),
        "{vm}"
    );
    assert!(s(get(&report, "flavors.accelerator"), "message").contains("all 1 GPU flavors"), "{report:#}");
    // Nothing is left running.
    let counts = site.sim.request_counts();
    assert_eq!(counts.get("DELETE /compute/v2.1/servers/{id}"), Some(&1), "{counts:?}");
    site.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_missing_from_the_catalog() {
    let mut sc = healthy();
    sc.site.faults.catalog_omit = vec!["network".into()];
    let site = start(sc, false).await;
    let (code, report) = check(&site, &["--only", "catalog"]).await;
    let c = get(&report, "catalog.network");
    assert_eq!((code, s(c, "status")), (2, "critical".to_string()));
    assert!(s(c, "message").starts_with("no public network endpoint in the catalog"), "{c:#}");
    assert!(
        s(c, "fix").starts_with("register it: openstack endpoint create --region RegionOne network public"),
        "{c:#}"
    );
    assert_eq!(get(&report, "catalog.compute")["status"], "ok");
    site.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut sc = healthy();
    sc.site.faults.catalog_urls.insert("network".into(), format!("http://127.0.0.1:{closed}/network"));
    let site = start(sc, false).await;
    let (code, report) = check(&site, &["--only", "ports,catalog"]).await;
    let c = get(&report, "ports.network");
    assert_eq!((code, s(c, "status")), (2, "critical".to_string()));
    assert!(s(c, "message").starts_with(&format!("cannot connect to 127.0.0.1:{closed} (Neutron")), "{c:#}");
    assert!(s(c, "fix").starts_with(&format!("open TCP {closed} inbound to 127.0.0.1")), "{c:#}");
    assert_eq!(get(&report, "ports.identity")["status"], "ok");
    assert_eq!(get(&report, "catalog.network")["status"], "critical");
    site.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_without_its_vo_property() {
    let mut sc = healthy();
    let ops = sc.site.projects.iter_mut().find(|p| p.name == "ops").unwrap();
    ops.extra.clear();
    let ops_id = ops.id.clone();
    let site = start(sc, false).await;
    let mut args = VOS.to_vec();
    args.extend(["--only", "projects"]);
    let (code, report) = check(&site, &args).await;
    let c = get(&report, "projects.ops");
    assert_eq!((code, s(c, "status")), (2, "critical".to_string()));
    assert_eq!(
        s(c, "message"),
        format!(
            "project ops ({ops_id}) of VO ops has no VO property (egi.VO, egi.eu:VO, egi.eu_VO, VO): its usage is not accounted to the VO"
        )
    );
    assert_eq!(s(c, "fix"), format!("openstack project set --property egi.VO=ops {ops_id}"));
    assert_eq!(get(&report, "projects.vo.access.egi.eu")["status"], "ok");
    site.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_spool() {
    let site = start(healthy(), false).await;
    let d = site.dir.path();
    let ledger = d.join("ledger.sqlite");
    ledger_sent(&ledger, Duration::days(40));
    let spool = d.join("outgoing");
    spool_element(&spool, Duration::days(12));
    let (code, report) = check(
        &site,
        &["--only", "accounting", "--ledger", ledger.to_str().unwrap(), "--spool", spool.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, 2);
    let last = get(&report, "accounting.last-send");
    assert_eq!(s(last, "status"), "critical");
    assert!(s(last, "message").starts_with("last send 40 days ago"), "{last:#}");
    assert!(s(last, "fix").starts_with("run `fedsite send --config /etc/apel/sender.cfg`"), "{last:#}");
    let sp = get(&report, "accounting.spool");
    assert_eq!(s(sp, "status"), "critical");
    assert!(s(sp, "message").starts_with("1 element(s) wait in") && s(sp, "message").contains("for 12 days"), "{sp:#}");
    // A send 10 days ago is a warning, as EGI's probe judges it.
    let ledger2 = d.join("ledger2.sqlite");
    ledger_sent(&ledger2, Duration::days(10));
    let (code, report) = check(&site, &["--only", "accounting", "--ledger", ledger2.to_str().unwrap()]).await;
    assert_eq!((code, s(get(&report, "accounting.last-send"), "status")), (1, "warning".to_string()));
    site.sim.stop().await;
}

/// With `[[destination]]` tables, every destination's spool is checked, each under its own id:
/// a message stuck in the second one is not hidden behind the first's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_spool_of_a_second_destination() {
    let site = start(healthy(), false).await;
    let d = site.dir.path();
    let ledger = d.join("ledger.sqlite");
    ledger_sent(&ledger, Duration::hours(2));
    std::fs::create_dir_all(d.join("compute")).unwrap();
    spool_element(&d.join("block"), Duration::days(12));
    let toml = d.join("fedsite.toml");
    common::write_private(
        &toml,
        format!(
            "[site]\nname = \"TEST-SITE\"\n\n[[destination]]\nname = \"compute\"\nrecord_types = [\"cloud\"]\n\
             spool = \"{d}/compute\"\n\n[[destination]]\nname = \"block\"\nrecord_types = [\"storage\"]\n\
             spool = \"{d}/block\"\n",
            d = d.display()
        ),
    );
    let (code, report) = check(
        &site,
        &["--config", toml.to_str().unwrap(), "--only", "accounting", "--ledger", ledger.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, 2, "{report:#}");
    let first = get(&report, "accounting.spool");
    assert_eq!(s(first, "status"), "ok", "{first:#}");
    assert!(s(first, "tested").contains(&format!("{}/compute", d.display())), "{first:#}");
    let block = get(&report, "accounting.spool.block");
    assert_eq!(s(block, "status"), "critical", "{block:#}");
    assert!(
        s(block, "message").starts_with("1 element(s) wait in") && s(block, "message").contains("/block"),
        "{block:#}"
    );
    site.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_about_to_expire() {
    let site = start(healthy(), false).await;
    let (cert, key) = host_cert(site.dir.path(), 10);
    let (code, report) =
        check(&site, &["--only", "certificate", "--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()])
            .await;
    let c = get(&report, "certificate.expiry");
    assert_eq!((code, s(c, "status")), (1, "warning".to_string()));
    let m = s(c, "message");
    assert!(
        m.contains("CN=host.example.org expires") && (m.ends_with("(9 days left)") || m.ends_with("(10 days left)")),
        "{m}"
    );
    assert!(s(c, "fix").starts_with("renew the host certificate"), "{c:#}");
    assert_eq!(get(&report, "certificate.key-matches")["status"], "ok");
    // A group-readable key and a key of another certificate are critical.
    use std::os::unix::fs::PermissionsExt;
    let (_, other_key) = host_cert(site.dir.path(), 400);
    std::fs::set_permissions(&other_key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (code, report) = check(
        &site,
        &["--only", "certificate", "--cert", cert.to_str().unwrap(), "--key", other_key.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, 2);
    assert_eq!(
        s(get(&report, "certificate.key-permissions"), "message"),
        "mode 0640: group or others can access the host key"
    );
    assert_eq!(s(get(&report, "certificate.key-matches"), "status"), "critical");
    site.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_that_never_becomes_active() {
    let mut sc = healthy();
    sc.site.faults.boot_never_active = true;
    let site = start(sc, false).await;
    let mut args = VOS.to_vec();
    args.extend(["--only", "vm", "--vm-timeout", "3", "--vm-poll", "0.5"]);
    let (code, report) = check(&site, &args).await;
    let c = get(&report, "vm.start");
    assert_eq!((code, s(c, "status")), (2, "critical".to_string()));
    let m = s(c, "message");
    assert!(
        m.starts_with("fedsite-probe-") && m.contains("flavor m1.small: still BUILD, not ACTIVE within 3 s"),
        "{m}"
    );
    assert!(m.ends_with("it was deleted"), "{m}");
    assert!(s(c, "fix").starts_with("look at why the server does not start: openstack server show"), "{c:#}");
    let counts = site.sim.request_counts();
    assert_eq!(counts.get("DELETE /compute/v2.1/servers/{id}"), Some(&1), "{counts:?}");
    site.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_information_document_without_a_vo() {
    let site = start(healthy(), false).await;
    let info = site.dir.path().join("glue.json");
    glue(&info, &["ops"]);
    let mut args = VOS.to_vec();
    args.extend(["--only", "info", "--info", info.to_str().unwrap()]);
    let (code, report) = check(&site, &args).await;
    let c = get(&report, "info.vos");
    assert_eq!((code, s(c, "status")), (2, "critical".to_string()));
    assert!(s(c, "message").ends_with("lacks VO(s) vo.access.egi.eu (it publishes: ops)"), "{c:#}");
    site.sim.stop().await;
}
