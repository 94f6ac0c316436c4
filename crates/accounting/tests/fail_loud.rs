//! No record is built on a swallowed error (issue #16): one endpoint of the simulated site
//! fails every time, the run goes on, and each project either fails with the failing call
//! named (checkpoint kept, nothing of it spooled) or, where docs/compat.md documents a
//! degradation, keeps every record a clean run gives except the documented field, with a
//! warning kept in the ledger's run. Each case asserts the fault was hit (the failing endpoint
//! was requested) and that it was visible (a failed project or a warning), so a fault that
//! nothing noticed fails the test.

use std::collections::BTreeMap;

use accounting::ExtractConfig;
use accounting::pipeline::{RunReport, SpoolConfig, Windows};
use apel::{ApelText, Record, RecordKind, SiteName, Window};
use sim::EndpointFault;

/// Every project of `tiny` has a VO but `novo` (it fails with "no VO mapping" on every run,
/// faults or not): the window of the cASO vectors.
const NOVO: &str = "5d1e2f3a4b5c6d7e8f90a1b2c3d4e5f6";

fn window() -> Window {
    Window::new("2023-05-21T00:00:00Z".parse().unwrap(), "2023-05-25T00:00:00Z".parse().unwrap()).unwrap()
}

type Records = BTreeMap<String, BTreeMap<(RecordKind, String), Record>>;

/// One run of the pipeline on a fresh ledger and spool against `tiny` with `faults`: its report,
/// every spooled record by project, and how often the faulted endpoints were requested.
async fn run(nova_max_minor: u32, faults: &[EndpointFault]) -> (RunReport, Records, usize) {
    run_on(sim::scenario::builtin("tiny").unwrap().generate(), nova_max_minor, faults).await.0
}

/// [`run`] against `scenario`; also every request the sim saw (method and path).
async fn run_on(
    scenario: sim::Scenario,
    nova_max_minor: u32,
    faults: &[EndpointFault],
) -> ((RunReport, Records, usize), Vec<String>) {
    let mut cfg = sim::SimConfig::new(scenario);
    cfg.endpoint_faults = faults.to_vec();
    cfg.nova_max_minor = nova_max_minor;
    let sim = sim::start(cfg).await.unwrap();
    let c =
        openstack::CloudConfig::from_clouds_yaml(&sim.clouds_yaml(), None, "sim-accounting", "clouds.yaml").unwrap();
    let session = openstack::Session::connect(&c).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger::Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    let spool = SpoolConfig::new(dir.path().join("spool"));
    let extract = ExtractConfig::new(SiteName::new("TEST-SITE").unwrap(), ApelText::new("TEST-SITE-cloud").unwrap());
    let (report, _) =
        accounting::pipeline::run(&session, &extract, ledger, Windows::Fixed(window()), &spool).await.unwrap();
    let mut records = Records::new();
    for p in &report.projects {
        for element in &p.messages {
            let bytes = std::fs::read(spool.spool().join(element)).unwrap();
            let (kind, recs) = apel::parse_message(&bytes).unwrap();
            for r in recs {
                records.entry(p.project_id.clone()).or_default().insert((kind, r.key()), r);
            }
        }
    }
    let hits = sim
        .requests()
        .iter()
        .filter(|r| r.injected.as_deref().is_some_and(|i| i.starts_with("endpoint fault")))
        .count();
    let requests = sim.requests().iter().map(|r| format!("{} {}", r.method, r.uri)).collect();
    sim.stop().await;
    ((report, records, hits), requests)
}

/// What a case must show.
enum Expect {
    /// Every project that needs the call fails, its error naming the call.
    Fails(&'static str),
    /// A documented degradation: the run goes on, every record equal to a clean run's but for
    /// `fields` (in every record kind that has them), and a warning containing `warning` is kept.
    Degrades { fields: &'static [&'static str], warning: &'static str },
}

/// The newest Nova microversion the simulator serves by default.
const NEWEST: u32 = 79;

async fn case(name: &str, faults: Vec<EndpointFault>, expect: Expect) {
    case_on(name, NEWEST, faults, expect).await
}

/// [`case`] against a Nova whose newest microversion is 2.`nova_max_minor`.
async fn case_on(name: &str, nova_max_minor: u32, faults: Vec<EndpointFault>, expect: Expect) {
    let (clean, clean_records, _) = run(nova_max_minor, &[]).await;
    let (report, records, hits) = run(nova_max_minor, &faults).await;
    assert!(hits > 0, "{name}: the faulted endpoint was never requested: the case tests nothing");
    let failed: Vec<&str> = report
        .projects
        .iter()
        .filter(|p| p.error.is_some() && p.project_id != NOVO)
        .map(|p| p.project_id.as_str())
        .collect();
    match expect {
        Expect::Fails(named) => {
            assert!(!failed.is_empty(), "{name}: no project failed; warnings {:?}", report.warnings);
            for p in report.projects.iter().filter(|p| failed.contains(&p.project_id.as_str())) {
                let e = p.error.as_deref().unwrap();
                assert!(e.contains(named), "{name}: project {} failed without naming {named:?}: {e}", p.project_id);
                assert!(p.messages.is_empty(), "{name}: a failed project spooled {:?}", p.messages);
            }
            // The projects that did not fail did not need the call: their records are a clean run's.
            for p in report.projects.iter().filter(|p| p.error.is_none()) {
                assert_eq!(records.get(&p.project_id), clean_records.get(&p.project_id), "{name}: {}", p.project_id);
            }
        }
        Expect::Degrades { fields, warning } => {
            assert!(failed.is_empty(), "{name}: projects failed: {:?}", report.projects);
            assert!(
                report.warnings.iter().any(|(_, w)| w.contains(warning)),
                "{name}: no warning with {warning:?} kept: {:?}",
                report.warnings
            );
            let strip = |rs: &Records| -> BTreeMap<String, BTreeMap<(RecordKind, String), serde_json::Value>> {
                rs.iter()
                    .map(|(p, m)| {
                        let m = m
                            .iter()
                            .map(|(k, r)| {
                                let mut v = serde_json::to_value(r).unwrap();
                                for f in fields {
                                    v["record"].as_object_mut().unwrap().remove(*f);
                                }
                                (k.clone(), v)
                            })
                            .collect();
                        (p.clone(), m)
                    })
                    .collect()
            };
            assert_eq!(strip(&records), strip(&clean_records), "{name}: records differ beyond {fields:?}");
            assert_ne!(records, clean_records, "{name}: the degradation changed nothing: the case tests nothing");
        }
    }
    assert_eq!(clean.projects.len(), report.projects.len(), "{name}");
}

fn get(path: &str, status: u16) -> EndpointFault {
    EndpointFault::new("GET", path, status)
}

#[tokio::test(flavor = "multi_thread")]
async fn flavor_listing() {
    case("flavor listing", vec![get("/compute/v2.1/flavors/detail", 500)], Expect::Fails("listing flavors")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn users_refused_is_the_documented_degradation() {
    case(
        "users 403",
        vec![get("/identity/v3/users", 403), get("/identity/v3/users/*", 403)],
        // GlobalUserName of cloud, IP and accelerator records; UserIdentity of storage records.
        Expect::Degrades { fields: &["global_user_name", "user_identity"], warning: "GlobalUserName is left out" },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn users_failing() {
    case("users 500", vec![get("/identity/v3/users", 500), get("/identity/v3/users/*", 500)], Expect::Fails("user"))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn instance_actions() {
    case(
        "instance actions",
        vec![get("/compute/v2.1/servers/*/os-instance-actions", 500)],
        Expect::Fails("instance actions"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn volumes() {
    case(
        "volumes",
        vec![get("/volume/v3/volumes/detail", 500), get("/volume/v3/*/volumes/detail", 500)],
        Expect::Fails("volumes"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn floating_ips() {
    case("floating IPs", vec![get("/network/v2.0/floatingips", 500)], Expect::Fails("floating IPs")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn usage() {
    case(
        "usage",
        vec![get("/compute/v2.1/os-simple-tenant-usage", 500), get("/compute/v2.1/os-simple-tenant-usage/*", 500)],
        Expect::Fails("usage"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn images() {
    case("images", vec![get("/image/v2/images", 500), get("/image/v2/images/*", 500)], Expect::Fails("image")).await;
}

/// On an older Nova (Queens: 2.60, flavor listings without extra specs) the extra specs are
/// read one flavor at a time; that call failing fails the projects.
#[tokio::test(flavor = "multi_thread")]
async fn extra_specs_on_an_older_nova() {
    case_on(
        "extra specs (Nova 2.60)",
        60,
        vec![get("/compute/v2.1/flavors/*/os-extra_specs", 500)],
        Expect::Fails("extra specs of flavor"),
    )
    .await;
}

/// A flavor deleted after a server used it, on a Nova older than 2.47 (servers name their
/// flavor by id only): the flavor is not in the listing, so it is looked up by id. Its 404
/// is a fact: the server's record goes out without the flavor's benchmark, as cASO's does
/// (docs/compat.md row 13; vm-ñandú is usage-only, so its sizes are the usage's); that
/// lookup failing otherwise (500) fails the project, the call named, nothing of it spooled.
#[tokio::test(flavor = "multi_thread")]
async fn flavor_lookup_by_id_of_a_deleted_flavor() {
    const EGI_PROJ: &str = "e91c0a2f4b7c4d1e8f9a0b1c2d3e4f51";
    const NANDU: &str = "e0000008-0000-4000-8000-000000000008";
    let tiny = || sim::scenario::builtin("tiny").unwrap().generate();
    let deleted = || {
        let mut sc = tiny();
        let gone = sc.site.delete_flavor("f-int").expect("tiny has flavor f-int");
        assert_eq!(gone.name, "hep.int");
        // vm-ñandú was built on it (vm-resized was resized to it).
        assert!(sc.site.servers.iter().any(|s| s.id == NANDU && s.flavor.id == "f-int"));
        sc
    };
    let nandu = |records: &Records| {
        records[EGI_PROJ]
            .iter()
            .find(|((kind, key), _)| *kind == RecordKind::Cloud && key.starts_with(NANDU))
            .map(|(_, r)| serde_json::to_value(r).unwrap()["record"].clone())
            .expect("vm-ñandú's cloud record")
    };
    let lookup = "GET /compute/v2.1/flavors/f-int";

    // f-int is private: the system-scoped listing leaves it out, it is looked up by id.
    let ((_, before, _), requests) = run_on(tiny(), 46, &[]).await;
    assert!(requests.iter().any(|r| r == lookup), "{requests:?}");
    let before = nandu(&before);
    assert_eq!((&before["benchmark"], &before["benchmark_type"]), (&99.0.into(), &"HEPscore23".into()));

    // The 404: a fact, not an error.
    let ((report, records, _), requests) = run_on(deleted(), 46, &[]).await;
    assert!(requests.iter().any(|r| r == lookup), "the flavor was looked up by id: {requests:?}");
    let p = report.projects.iter().find(|p| p.project_id == EGI_PROJ).unwrap();
    assert!(p.error.is_none(), "{:?}", p.error);
    let after = nandu(&records);
    assert!(after["benchmark"].is_null() && after["benchmark_type"].is_null(), "{after:#}");
    for k in ["cpu_count", "memory", "disk", "wall_duration"] {
        assert_eq!(after[k], before[k], "{k}: the usage's");
    }

    // The lookup failing: the project fails naming it, nothing of it spooled.
    let ((report, records, hits), _) = run_on(deleted(), 46, &[get("/compute/v2.1/flavors/f-int", 500)]).await;
    assert!(hits > 0, "the fault was hit");
    let p = report.projects.iter().find(|p| p.project_id == EGI_PROJ).unwrap();
    let e = p.error.as_deref().expect("egi-proj fails");
    assert!(e.contains("reading flavor f-int"), "{e}");
    assert!(p.messages.is_empty() && !records.contains_key(EGI_PROJ), "{:?}", p.messages);
}
